# The KV block manager (engine/kv_cache); included by tests/fuzz/CMakeLists.txt.
es_add_fuzz_target(NAME block_manager
  SOURCES ${CMAKE_SOURCE_DIR}/tests/fuzz/block_manager_fuzz.cc
  DEPS es_kv_cache
  CORPUS ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/block_manager)
