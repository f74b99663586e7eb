# Writes OUTPUT: one `{number, "name"},` line per system call of this architecture, from the
# __NR_ macros <sys/syscall.h> defines (so the table is the C library's, not a hand-kept one).
execute_process(COMMAND ${CC} -dM -E -x c -
                INPUT_FILE ${INPUT}
                OUTPUT_VARIABLE defines
                RESULT_VARIABLE failed)
if(failed)
  message(FATAL_ERROR "could not preprocess <sys/syscall.h> with ${CC}")
endif()
string(REGEX MATCHALL "#define __NR_[a-z0-9_]+ [0-9]+" lines "${defines}")
set(table "")
foreach(line IN LISTS lines)
  string(REGEX REPLACE "#define __NR_([a-z0-9_]+) ([0-9]+)" "{\\2, \"\\1\"},\n" entry "${line}")
  string(APPEND table "${entry}")
endforeach()
file(WRITE ${OUTPUT}.tmp "${table}")
file(COPY_FILE ${OUTPUT}.tmp ${OUTPUT} ONLY_IF_DIFFERENT)
