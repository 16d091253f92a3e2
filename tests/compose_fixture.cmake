# CALM composition against the independent PyTorch reference (tests/torch_ref/compose_ref.py).
#
#   compose_fixture_gen  writes <build>/tests/compose_fixture/{augment,anchor,comp}/ and
#                        fixture.safetensors (torch_ref.make_compose_fixture)
#   compose_fixture      tests/test_compose_fixture.c against it (registered by the
#                        test_*.c glob in CMakeLists.txt; here it gets the fixture)
#
# The composition directory records the models' absolute paths and sha256, so the
# fixture is regenerated in place by every run rather than copied around.
set(CALM_TORCH_PYTHON /usr/bin/python3 CACHE FILEPATH "Python with torch (Debian python3-torch) for the reference tests")
set(CALM_COMPOSE_FIXTURE_DIR ${CMAKE_CURRENT_BINARY_DIR}/compose_fixture)

add_test(NAME compose_fixture_gen
         COMMAND sh -c "set -e
           rm -rf '${CALM_COMPOSE_FIXTURE_DIR}'
           '${CALM_TORCH_PYTHON}' -m torch_ref.make_compose_fixture '${CALM_COMPOSE_FIXTURE_DIR}'")
set_tests_properties(compose_fixture_gen PROPERTIES FIXTURES_SETUP compose_fixtures TIMEOUT 600
                     ENVIRONMENT "PYTHONPATH=${CMAKE_CURRENT_SOURCE_DIR}")

if(TEST compose_fixture)
  set_tests_properties(compose_fixture PROPERTIES FIXTURES_REQUIRED compose_fixtures
                       ENVIRONMENT "CALM_COMPOSE_FIXTURE_DIR=${CALM_COMPOSE_FIXTURE_DIR};CALM_THREADS=1")
endif()
