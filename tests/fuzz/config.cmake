# The server config parser; included by tests/fuzz/CMakeLists.txt.
es_add_fuzz_target(NAME config
  SOURCES ${CMAKE_SOURCE_DIR}/tests/fuzz/config_fuzz.cc
  DEPS es_server_config
  CORPUS ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/config)
