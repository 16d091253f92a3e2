# A real one-node Slurm cluster (needs root; exit 77 = skipped, with the reason printed).
add_test(NAME slurm_requeue COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/slurm/test_slurm.sh $<TARGET_FILE:calm>)
set_tests_properties(slurm_requeue PROPERTIES TIMEOUT 1200 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
# jobs/scaling/run.sh's sweep as a Slurm job array on the same one-node cluster, collected (about 20 s).
add_test(NAME scaling_sweep COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/slurm/test_scaling_sweep.sh $<TARGET_FILE:calm>)
set_tests_properties(scaling_sweep PROPERTIES TIMEOUT 600 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
