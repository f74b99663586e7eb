# Writes OUT, the man page of the lab LAB: help2man over its --help and --version, with its
# --explain text as the DESCRIPTION section.
execute_process(COMMAND ${LAB} --explain OUTPUT_VARIABLE explain RESULT_VARIABLE failed)
if(failed)
  message(FATAL_ERROR "${LAB} --explain failed")
endif()
string(REPLACE "\\" "\\\\" explain "${explain}")
string(REGEX REPLACE "\n\n" "\n.PP\n" explain "${explain}")
file(WRITE ${OUT}.include "[DESCRIPTION]\n${explain}\n[SEE ALSO]\noslab(1); the labs' docs in /usr/share/doc/oslab.\n")
execute_process(COMMAND ${HELP2MAN} --no-info --no-discard-stderr --section=1 --include=${OUT}.include
                        --output=${OUT} ${LAB}
                RESULT_VARIABLE failed)
if(failed)
  message(FATAL_ERROR "help2man failed on ${LAB}")
endif()
