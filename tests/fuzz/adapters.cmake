# Fuzz targets of engine/adapters/ (included by tests/fuzz/CMakeLists.txt).
es_add_fuzz_target(NAME reroute
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/reroute_fuzz.cc
  DEPS es_adapters_core
  CORPUS ${CMAKE_CURRENT_LIST_DIR}/corpus/reroute)
es_add_fuzz_target(NAME expert_cfg
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/expert_cfg_fuzz.cc
  DEPS es_adapters_core nlohmann_json::nlohmann_json
  CORPUS ${CMAKE_CURRENT_LIST_DIR}/corpus/expert_cfg)
