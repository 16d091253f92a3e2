# A real one-node Slurm cluster (needs root; exit 77 = skipped, with the reason printed).
add_test(NAME slurm_requeue COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/slurm/test_slurm.sh $<TARGET_FILE:calm>)
set_tests_properties(slurm_requeue PROPERTIES TIMEOUT 1200 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
