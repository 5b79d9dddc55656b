# Tests of a controlled-scheduler build (TDP_SCHED; `make check-sched`,
# part of `make check`).  Every test here is deterministic: a controlled
# run is a function of its command line (src/sched/sched.h), so each gives
# the same verdict and schedule hash every time, and each test runs its
# command twice and requires both (tests/sched_replay.cmake).
set(_replay ${PROJECT_SOURCE_DIR}/tests/sched_replay.cmake)
set(_cli $<TARGET_FILE:tdpmmu_cli>)

# Clean controlled runs in every mode, under both strategies: every oracle
# must hold, and the run must replay.
set(_modes "wp:" "wp-lazy:--log wp-lazy" "dbit:--log dbit" "off:--log off"
           "dbit-walk:--log dbit-walk" "ring:--log ring" "ring-pml:--log ring-pml"
           "legacy:--engine legacy" "confidential:--confidential" "nx:--nx")
foreach(m ${_modes})
  string(REPLACE ":" ";" m "${m}")
  list(GET m 0 name)
  list(LENGTH m n)
  set(opts "")
  if(n GREATER 1)
    list(GET m 1 opts)
  endif()
  foreach(strat random pct)
    add_test(NAME sched_clean_${name}_${strat}
      COMMAND ${CMAKE_COMMAND} -DCLI=${_cli} -DEXPECT=PASSED
              "-DARGS=--sched ${strat} --steps 1000000 --seed 1 --mem 8M ${opts}"
              -P ${_replay})
    set_tests_properties(sched_clean_${name}_${strat} PROPERTIES TIMEOUT 600)
  endforeach()
endforeach()

# Every bug injection, under the controlled scheduler with a fixed seed
# (tests/injections-sched.list): it must be caught, within the list's step
# bound, and the failure must replay.
# (an edit of the list configures again)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             ${PROJECT_SOURCE_DIR}/tests/injections-sched.list)
file(STRINGS ${PROJECT_SOURCE_DIR}/tests/injections-sched.list _lines
     REGEX "^[a-z]")
foreach(line ${_lines})
  string(REPLACE " " ";" words "${line}")
  list(GET words 0 inj)
  list(GET words 1 strat)
  list(GET words 2 bound)
  list(REMOVE_AT words 0 1 2)
  string(REPLACE ";" " " opts "${words}")
  add_test(NAME sched_inject_${inj}
    COMMAND ${CMAKE_COMMAND} -DCLI=${_cli} -DEXPECT=FAILED -DMAX_STEPS=${bound}
            "-DARGS=--sched ${strat} --steps ${bound} --seed 1 --inject ${inj} ${opts}"
            -P ${_replay})
  set_tests_properties(sched_inject_${inj} PROPERTIES TIMEOUT 600)
endforeach()

# Bad input: exit status 2 and a message, never a run.
foreach(bad "--sched fifo" "--sched pct --depth 0" "--sched pct --depth 17"
            "--sched random --steps 0" "--sched random --steps 10 --max-steps 5"
            "--sched random --checkpoint-steps 10" "")
  string(MAKE_C_IDENTIFIER "sched_bad_${bad}" name)
  separate_arguments(args UNIX_COMMAND "${bad}")
  add_test(NAME ${name} COMMAND tdpmmu_cli torture ${args} --quiet)
  set_tests_properties(${name} PROPERTIES WILL_FAIL TRUE)
endforeach()
# this build runs nothing else
add_test(NAME sched_only_torture COMMAND tdpmmu_cli demo)
set_tests_properties(sched_only_torture PROPERTIES
  PASS_REGULAR_EXPRESSION "only 'tdpmmu torture --sched' runs here")
