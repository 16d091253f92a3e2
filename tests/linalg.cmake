# mpi/linalg.h against NumPy on 1, 2 and 4 ranks (tests/linalg/test_linalg.sh).
add_executable(la_run linalg/la_run.c)
target_include_directories(la_run PRIVATE ${CMAKE_SOURCE_DIR})
target_link_libraries(la_run PRIVATE calm_mpi)
add_test(NAME linalg COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/linalg/test_linalg.sh $<TARGET_FILE:la_run>)
set_tests_properties(linalg PROPERTIES TIMEOUT 300)
