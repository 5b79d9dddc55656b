# Fails unless the shared library's dynamic symbol table defines exactly
# the functions that include/tdpmmu.h marks TDP_API: no internal symbol
# leaks to an embedder (who may have an rmap_add of its own), and no API
# function is missing.  -DLIB=libtdpmmu.so -DHEADER=include/tdpmmu.h
execute_process(COMMAND nm -D --defined-only ${LIB}
                OUTPUT_VARIABLE nm_out RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "nm -D ${LIB} failed (${rc})")
endif()
string(REGEX MATCHALL "[0-9a-f]+ [A-Za-z] [^\n]+" rows "${nm_out}")
set(exported "")
foreach(row ${rows})
  string(REGEX REPLACE "^[0-9a-f]+ [A-Za-z] " "" name "${row}")
  list(APPEND exported "${name}")
endforeach()
file(READ ${HEADER} hdr)
string(REGEX MATCHALL "TDP_API[^;(]*[ *](tdp_[a-z0-9_]+)\\(" decls "${hdr}")
set(api "")
foreach(d ${decls})
  string(REGEX REPLACE ".*[ *](tdp_[a-z0-9_]+)\\($" "\\1" name "${d}")
  list(APPEND api "${name}")
endforeach()
list(LENGTH api n_api)
if(n_api LESS 10)
  message(FATAL_ERROR "found only ${n_api} TDP_API functions in ${HEADER}")
endif()
set(extra ${exported})
list(REMOVE_ITEM extra ${api})
set(missing ${api})
list(REMOVE_ITEM missing ${exported})
if(extra OR missing)
  message(FATAL_ERROR "libtdpmmu.so exports what the API does not declare: "
                      "[${extra}]; the API declares what it does not "
                      "export: [${missing}]")
endif()
list(LENGTH exported n)
message(STATUS "exports: the ${n} functions of the API, nothing else")
