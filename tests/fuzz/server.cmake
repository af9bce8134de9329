# The server's request validation/conversion (server/proto_convert).
es_add_fuzz_target(
  NAME request
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/request_fuzz.cc
  DEPS es_server
  CORPUS ${CMAKE_CURRENT_LIST_DIR}/corpus/request)
