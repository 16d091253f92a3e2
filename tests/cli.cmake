# Command-line behaviour and the train -> generate round trip (tests/cli/test_cli.sh).
add_test(NAME cli COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/test_cli.sh $<TARGET_FILE:calm>)
set_tests_properties(cli PROPERTIES ENVIRONMENT "CALM_THREADS=1" TIMEOUT 600)
