# Fuzz targets of memory/ (included by tests/fuzz/CMakeLists.txt).
es_add_fuzz_target(NAME expert_slots
  SOURCES ${CMAKE_SOURCE_DIR}/tests/fuzz/expert_slots_fuzz.cc
  DEPS es_memory
  CORPUS ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/expert_slots)
