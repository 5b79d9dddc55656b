# Runs one controlled torture command (tdpmmu torture --sched ...) RUNS
# times and passes only if every run reaches the EXPECT verdict (PASSED,
# or FAILED: the injected bug caught) and every run prints the same
# verdict line and the same schedule hash (trace=<hex>): the run is a
# function of its command line.  For FAILED, also the step count at which
# the bug was caught must be at most MAX_STEPS, if given.
# Usage: cmake -DCLI=path -DARGS="torture options" -DEXPECT=PASSED|FAILED
#              [-DRUNS=n] [-DMAX_STEPS=n] -P sched_replay.cmake
if(NOT RUNS)
  set(RUNS 2)
endif()
separate_arguments(args UNIX_COMMAND "${ARGS}")
set(first "")
foreach(i RANGE 1 ${RUNS})
  execute_process(COMMAND ${CLI} torture ${args} --quiet
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 280)
  # the verdict (without the virtual time, which the hash covers) and the
  # schedule's hash (on an abort, from the scheduler's dump)
  string(REGEX MATCH "torture: (PASSED|FAILED: oracle=[^\n]*)" verdict "${out}")
  string(REGEX REPLACE " at [0-9.]+ s" "" verdict "${verdict}")
  # addresses differ between runs (ASLR); the hash covers the schedule
  string(REGEX REPLACE "0x[0-9a-f]+" "0x_" verdict "${verdict}")
  string(REGEX MATCH "trace=[0-9a-f]+" trace "${out}")
  string(REGEX MATCH "([0-9]+) steps, trace=|sched: step ([0-9]+), trace=" steps "${out}")
  set(steps "${CMAKE_MATCH_1}${CMAKE_MATCH_2}")
  if(NOT verdict OR NOT trace)
    message(FATAL_ERROR "run ${i}: no verdict or trace (exit ${rc}):\n${out}\n${err}")
  endif()
  if(EXPECT STREQUAL "PASSED" AND NOT verdict STREQUAL "torture: PASSED")
    message(FATAL_ERROR "run ${i} failed:\n${out}\n${err}")
  endif()
  if(EXPECT STREQUAL "FAILED" AND verdict STREQUAL "torture: PASSED")
    message(FATAL_ERROR "the injected bug was NOT caught in ${steps} steps:\n${out}")
  endif()
  if(EXPECT STREQUAL "FAILED" AND MAX_STEPS AND steps GREATER MAX_STEPS)
    message(FATAL_ERROR "caught only at step ${steps} (> ${MAX_STEPS}):\n${out}")
  endif()
  if(i EQUAL 1)
    set(first "${verdict} ${trace}")
    message(STATUS "${verdict}; ${trace}; ${steps} steps")
  elseif(NOT first STREQUAL "${verdict} ${trace}")
    message(FATAL_ERROR "run ${i} differs from run 1: '${verdict} ${trace}' "
                        "against '${first}': the schedule is not replayed")
  endif()
endforeach()
