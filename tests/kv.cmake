# The kv-arithmetic pipeline at preset tiny (jobs/kv/kv-arithmetic.sh).
add_test(NAME kv_tiny COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/kv/test_kv_tiny.sh $<TARGET_FILE:calm>
         ${CMAKE_CURRENT_BINARY_DIR}/kv-tiny)
set_tests_properties(kv_tiny PROPERTIES TIMEOUT 900)
# calm data kv: distinct table, held-out keys, correct targets, optional sets.
add_test(NAME kv_data COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/kv/test_kv_data.sh $<TARGET_FILE:calm>
         ${CMAKE_CURRENT_BINARY_DIR}/kv-data)
