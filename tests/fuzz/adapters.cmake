# Fuzz targets of engine/adapters/ (included by tests/fuzz/CMakeLists.txt).
es_add_fuzz_target(NAME reroute
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/reroute_fuzz.cc
  DEPS es_adapters_reroute
  CORPUS ${CMAKE_CURRENT_LIST_DIR}/corpus/reroute)
