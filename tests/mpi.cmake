# Tests launched with mpirun (--oversubscribe: more ranks than cores here).
add_test(NAME dp_train COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/mpi/test_dp_train.sh $<TARGET_FILE:calm>)
set_tests_properties(dp_train PROPERTIES TIMEOUT 300)
add_test(NAME pipeline COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/mpi/test_pipeline.sh $<TARGET_FILE:calm>)
set_tests_properties(pipeline PROPERTIES TIMEOUT 600)
add_test(NAME pipeline_fail COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/mpi/test_pipeline_fail.sh $<TARGET_FILE:calm>)
set_tests_properties(pipeline_fail PROPERTIES TIMEOUT 120)
# calm analyze: CKA between two models' layers on 1 and 2 ranks (tests/mpi/test_analyze.sh).
add_test(NAME analyze COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/mpi/test_analyze.sh $<TARGET_FILE:calm>)
set_tests_properties(analyze PROPERTIES TIMEOUT 300)
# calm compose --init-proj lstsq: against NumPy, 1 vs 2 ranks vs a pipeline, the first loss, resume.
add_test(NAME init_proj COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/mpi/test_init_proj.sh $<TARGET_FILE:calm>)
set_tests_properties(init_proj PROPERTIES TIMEOUT 300)
