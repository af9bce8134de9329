# The semantic router (router/): prompts, chats, specs and truncation;
# included by tests/fuzz/CMakeLists.txt.
es_add_fuzz_target(NAME router
  SOURCES ${CMAKE_SOURCE_DIR}/tests/fuzz/router_fuzz.cc
  DEPS es_router
  CORPUS ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/router)
