# Command-line behaviour and the train -> generate round trip (tests/cli/test_cli.sh).
add_test(NAME cli COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/test_cli.sh $<TARGET_FILE:calm>)
set_tests_properties(cli PROPERTIES ENVIRONMENT "CALM_THREADS=1" TIMEOUT 600)
# Hugging Face models end to end: 16-bit shards, a real tokenizer, stores, refusals, composition (test_hf_models.sh).
add_test(NAME hf_models COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/test_hf_models.sh $<TARGET_FILE:calm>)
set_tests_properties(hf_models PROPERTIES TIMEOUT 600)
