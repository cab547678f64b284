# Writes the man page and the completion scripts into OUT with the runbook just built:
# cmake -DRUNBOOK=<runbook> -DOUT=<dir> -P cli_docs.cmake
file(MAKE_DIRECTORY ${OUT})
foreach(pair "man;runbook.1" "completion;bash;runbook.bash" "completion;zsh;_runbook" "completion;fish;runbook.fish")
  list(POP_BACK pair file)
  execute_process(COMMAND ${RUNBOOK} ${pair} OUTPUT_FILE ${OUT}/${file}.tmp RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${RUNBOOK} ${pair} failed (${rc})")
  endif()
  file(RENAME ${OUT}/${file}.tmp ${OUT}/${file})
endforeach()
