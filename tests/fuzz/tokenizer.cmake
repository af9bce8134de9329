# The tokenizer.json loader and encode/decode/detokenize paths of
# engine/tokenizer; included by tests/fuzz/CMakeLists.txt.
es_add_fuzz_target(NAME tokenizer
  SOURCES ${CMAKE_SOURCE_DIR}/tests/fuzz/tokenizer_fuzz.cc
  DEPS es_tokenizer nlohmann_json::nlohmann_json
  CORPUS ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/tokenizer)
