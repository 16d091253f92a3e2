# PyTorch reference fixtures (tests/torch_ref/, Debian python3-torch).
#
#   torch_ref_check    self-checks of the reference: gradcheck, RoPE vs complex
#                      rotation, GQA vs MHA, and that the C test's tolerance
#                      catches injected bugs (tests/torch_ref/check_ref.py)
#   torch_fixture_gen  writes <build>/tests/fixtures/{plain,gqa,tied}/ (model dir + fixture)
#   torch_fixture      tests/test_torch_fixture.c against them (registered by the
#                      test_*.c glob in CMakeLists.txt; here it gets the fixture)
#
# Debian's torch is only importable from the system interpreter, not from a
# pyenv/venv python3 that may come first on PATH.
set(CALM_TORCH_PYTHON /usr/bin/python3 CACHE FILEPATH "Python with torch (Debian python3-torch) for the reference tests")
set(CALM_FIXTURE_DIR ${CMAKE_CURRENT_BINARY_DIR}/fixtures)
set(CALM_TORCH_REF ${CMAKE_CURRENT_SOURCE_DIR}/torch_ref)

add_test(NAME torch_ref_check COMMAND ${CALM_TORCH_PYTHON} ${CALM_TORCH_REF}/check_ref.py)
set_tests_properties(torch_ref_check PROPERTIES TIMEOUT 600)

add_test(NAME torch_fixture_gen
         COMMAND sh -c "set -e
           rm -rf '${CALM_FIXTURE_DIR}'
           '${CALM_TORCH_PYTHON}' '${CALM_TORCH_REF}/make_fixture.py' '${CALM_FIXTURE_DIR}/plain'
           '${CALM_TORCH_PYTHON}' '${CALM_TORCH_REF}/make_fixture.py' '${CALM_FIXTURE_DIR}/gqa' --gqa
           '${CALM_TORCH_PYTHON}' '${CALM_TORCH_REF}/make_fixture.py' '${CALM_FIXTURE_DIR}/tied' --tied")
set_tests_properties(torch_fixture_gen PROPERTIES FIXTURES_SETUP torch_fixtures TIMEOUT 600)

if(TEST torch_fixture)
  set_tests_properties(torch_fixture PROPERTIES FIXTURES_REQUIRED torch_fixtures
                       ENVIRONMENT "CALM_FIXTURE_DIR=${CALM_FIXTURE_DIR};CALM_THREADS=2")
endif()
