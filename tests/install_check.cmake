# The README's "use it from your program" commands, verbatim: install into
# a temporary prefix, build examples/embed.c with pkg-config, run it.
# -DREADME= -DSRC=<source dir> -DBUILD=<this build dir> -DCC=<compiler
# and the sanitizer flags of this build> -DWORK=<scratch dir>
file(READ ${README} readme)
string(REGEX MATCH
       "<!-- install-commands:[^\n]*\n```sh\n(.*)```" m "${readme}")
if(NOT m)
  message(FATAL_ERROR "README.md: no install-commands block")
endif()
string(REGEX REPLACE "\n```.*" "" script "${CMAKE_MATCH_1}")
# the README builds in build/release; this test uses its own build dir
string(REPLACE "build/release" "${BUILD}" script "${script}")
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK}/home)
file(WRITE ${WORK}/commands.sh "set -e\n${script}\n")
file(COPY ${SRC}/examples DESTINATION ${WORK})
execute_process(
  COMMAND env -u PKG_CONFIG_PATH HOME=${WORK}/home CC=${CC}
          sh ${WORK}/commands.sh
  WORKING_DIRECTORY ${WORK}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message(STATUS "${out}${err}")
if(NOT rc EQUAL 0 OR NOT out MATCHES "embed: OK")
  message(FATAL_ERROR "the README's install commands failed (${rc})")
endif()
file(STRINGS ${WORK}/home/.local/tdpmmu/lib/pkgconfig/tdpmmu.pc pc
     REGEX "^prefix=")
if(NOT pc MATCHES "pcfiledir")
  message(FATAL_ERROR "tdpmmu.pc is not relocatable: ${pc}")
endif()
file(REMOVE_RECURSE ${WORK})
