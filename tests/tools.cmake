# Tests of the command-line tool and of the documentation.

# The README must quote examples/embed.c verbatim.
add_test(NAME readme_example_in_sync
  COMMAND ${CMAKE_COMMAND} -DREADME=${PROJECT_SOURCE_DIR}/README.md
          -DEXAMPLE=${PROJECT_SOURCE_DIR}/examples/embed.c
          -P ${CMAKE_CURRENT_SOURCE_DIR}/readme_check.cmake)

# A short demo run: must verify every byte.
if(TARGET tdpmmu_cli)
  add_test(NAME cli_demo_short COMMAND tdpmmu_cli demo --mem 64M --seconds 2)
  set_tests_properties(cli_demo_short PROPERTIES
    PASS_REGULAR_EXPRESSION "all [0-9]+ bytes verified" TIMEOUT 300)
  add_test(NAME cli_unknown_command COMMAND tdpmmu_cli frobnicate)
  set_tests_properties(cli_unknown_command PROPERTIES WILL_FAIL TRUE)
endif()
