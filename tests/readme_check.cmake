# Fails unless README.md contains examples/embed.c verbatim.
file(READ ${README} readme)
file(READ ${EXAMPLE} example)
string(FIND "${readme}" "${example}" pos)
if(pos EQUAL -1)
  message(FATAL_ERROR "README.md does not quote examples/embed.c verbatim")
endif()
