# shard-tool: `calm shard ...` as a stand-alone program (shard_main from
# shards/shard_cli.c), for the figures in docs/performance.md and for using
# shard stores before the calm CLI is linked. Included from tests/CMakeLists.txt.
set(CALM_SHARD_TOOL_MAIN ${CMAKE_CURRENT_BINARY_DIR}/shard_tool_main.c)
file(WRITE ${CALM_SHARD_TOOL_MAIN}.in
     "#include \"shards.h\"\nint main(int argc, char **argv) { argv[0] = \"shard\"; return shard_main(argc, argv); }\n")
configure_file(${CALM_SHARD_TOOL_MAIN}.in ${CALM_SHARD_TOOL_MAIN} COPYONLY)
add_executable(shard-tool ${CALM_SHARD_TOOL_MAIN})
target_link_libraries(shard-tool PRIVATE calmshards calmcore)
