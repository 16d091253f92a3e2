# PyTorch reference fixtures (tests/torch_ref/, Debian python3-torch).
#
#   torch_ref_check    self-checks of the reference: gradcheck, RoPE vs complex
#                      rotation, GQA vs MHA, and that the C test's tolerance
#                      catches injected bugs (torch_ref.check_ref)
#   torch_fixture_gen  writes <build>/tests/fixtures/{plain,gqa,tied}/ (model dir + fixture)
#   torch_fixture      tests/test_torch_fixture.c against them (registered by the
#                      test_*.c glob in CMakeLists.txt; here it gets the fixture)
#
# Debian's torch is only importable from the system interpreter, not from a
# pyenv/venv python3 that may come first on PATH. tests/torch_ref is a Python
# package: these entries run its modules with -m and tests/ on PYTHONPATH.
set(CALM_TORCH_PYTHON /usr/bin/python3 CACHE FILEPATH "Python with torch (Debian python3-torch) for the reference tests")
set(CALM_FIXTURE_DIR ${CMAKE_CURRENT_BINARY_DIR}/fixtures)
set(CALM_TORCH_REF_ENV PYTHONPATH=${CMAKE_CURRENT_SOURCE_DIR})

add_test(NAME torch_ref_check COMMAND ${CALM_TORCH_PYTHON} -m torch_ref.check_ref)
set_tests_properties(torch_ref_check PROPERTIES TIMEOUT 600 ENVIRONMENT "${CALM_TORCH_REF_ENV}")

add_test(NAME torch_fixture_gen
         COMMAND sh -c "set -e
           rm -rf '${CALM_FIXTURE_DIR}'
           '${CALM_TORCH_PYTHON}' -m torch_ref.make_fixture '${CALM_FIXTURE_DIR}/plain'
           '${CALM_TORCH_PYTHON}' -m torch_ref.make_fixture '${CALM_FIXTURE_DIR}/gqa' --gqa
           '${CALM_TORCH_PYTHON}' -m torch_ref.make_fixture '${CALM_FIXTURE_DIR}/tied' --tied")
set_tests_properties(torch_fixture_gen PROPERTIES FIXTURES_SETUP torch_fixtures TIMEOUT 600
                     ENVIRONMENT "${CALM_TORCH_REF_ENV}")

if(TEST torch_fixture)
  set_tests_properties(torch_fixture PROPERTIES FIXTURES_REQUIRED torch_fixtures
                       ENVIRONMENT "CALM_FIXTURE_DIR=${CALM_FIXTURE_DIR};CALM_THREADS=2")
endif()

# A checkpoint shaped like a real Llama 3 release (BF16 shards + index,
# rope_scaling llama3, attention_bias, head_dim != C/NH, tied): torch's logits
# against calm's frozen 16-bit path (tests/test_torch_real.c).
set(CALM_REAL_FIXTURE_DIR ${CMAKE_CURRENT_BINARY_DIR}/fixtures_real)
add_test(NAME torch_real_gen
         COMMAND sh -c "set -e
           rm -rf '${CALM_REAL_FIXTURE_DIR}'
           '${CALM_TORCH_PYTHON}' -m torch_ref.make_real_fixture '${CALM_REAL_FIXTURE_DIR}'")
set_tests_properties(torch_real_gen PROPERTIES FIXTURES_SETUP torch_real_fixture TIMEOUT 600
                     ENVIRONMENT "${CALM_TORCH_REF_ENV}")
if(TEST torch_real)
  set_tests_properties(torch_real PROPERTIES FIXTURES_REQUIRED torch_real_fixture
                       ENVIRONMENT "CALM_REAL_FIXTURE_DIR=${CALM_REAL_FIXTURE_DIR};CALM_THREADS=1")
endif()
