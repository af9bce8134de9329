es_add_fuzz_target(NAME chat_template
  SOURCES ${CMAKE_SOURCE_DIR}/tests/fuzz/chat_template_fuzz.cc
  DEPS es_chat_template
  CORPUS ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/chat_template)
