# Checkpoints: resume equals the uninterrupted run, crash safety, corrupt files.
add_test(NAME ckpt_resume COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/ckpt/test_resume.sh $<TARGET_FILE:calm>)
set_tests_properties(ckpt_resume PROPERTIES TIMEOUT 900 LABELS ckpt)
