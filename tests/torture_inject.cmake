# Runs `tdpmmu torture --inject INJ` and passes only if the torture FAILED
# by itself within 30 seconds; prints which oracle caught the bug and when.
# Usage: cmake -DCLI=path -DINJ=name [-DSEED=n] [-DARGS="opts"] -P ...
if(NOT SEED)
  set(SEED 1)
endif()
separate_arguments(extra UNIX_COMMAND "${ARGS}")
execute_process(
  COMMAND ${CLI} torture --inject ${INJ} --duration 30 --seed ${SEED} --quiet
          ${extra}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 120)
string(REGEX MATCH "FAILED: oracle=([^\n]*) at ([0-9.]+) s" verdict "${out}")
if(rc EQUAL 0 OR NOT verdict)
  message(FATAL_ERROR "injection ${INJ} was NOT detected (exit ${rc}):\n${out}")
endif()
set(oracle "${CMAKE_MATCH_1}")
set(when "${CMAKE_MATCH_2}")
if(when GREATER 30)
  message(FATAL_ERROR "injection ${INJ} detected too late: ${when} s")
endif()
message(STATUS "injection ${INJ}: caught by ${oracle} after ${when} s")
