# The layers of CMakeLists.txt: an upward #include must fail to compile.
add_test(NAME layering COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/tools/check_layers.sh ${CMAKE_C_COMPILER}
         ${CMAKE_BINARY_DIR}/layers ${CMAKE_SOURCE_DIR})
