# gRPC, Protobuf and prometheus-cpp (Debian packages), and protobuf/gRPC code
# generation. Included by server/ (the only place, with tools/cli and tests,
# that may depend on generated code), so the core builds without them.
# Per directory: imported targets are directory-scoped, so each user
# (server/, tools/cli/, tests) includes this file itself.
include_guard(DIRECTORY)

find_package(Protobuf REQUIRED)
find_package(gRPC CONFIG REQUIRED)
find_package(prometheus-cpp CONFIG REQUIRED)
find_program(ES_GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED)
if(TARGET protobuf::protoc)
  set(ES_PROTOC $<TARGET_FILE:protobuf::protoc>)
else()
  find_program(ES_PROTOC protoc REQUIRED)
endif()

# es_grpc_proto_library(NAME lib ROOT dir PROTOS a.proto b.proto ...)
# Generates C++ messages and gRPC services (callback API included) for PROTOS
# (paths relative to ROOT, which is also the import root) into the build tree
# and builds them as one static library whose users include
# "<path relative to ROOT>.pb.h" / ".grpc.pb.h".
function(es_grpc_proto_library)
  cmake_parse_arguments(ARG "" "NAME;ROOT" "PROTOS" ${ARGN})
  set(out ${CMAKE_CURRENT_BINARY_DIR}/${ARG_NAME}_gen)
  set(srcs)
  foreach(proto ${ARG_PROTOS})
    string(REGEX REPLACE "\\.proto$" "" stem ${proto})
    set(gen ${out}/${stem}.pb.cc ${out}/${stem}.pb.h
            ${out}/${stem}.grpc.pb.cc ${out}/${stem}.grpc.pb.h)
    add_custom_command(
      OUTPUT ${gen}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${out}
      COMMAND ${ES_PROTOC} -I ${ARG_ROOT} --cpp_out=${out} --grpc_out=${out}
              --plugin=protoc-gen-grpc=${ES_GRPC_CPP_PLUGIN}
              ${ARG_ROOT}/${proto}
      DEPENDS ${ARG_ROOT}/${proto}
      COMMENT "protoc ${proto}"
      VERBATIM)
    list(APPEND srcs ${gen})
  endforeach()
  add_library(${ARG_NAME} STATIC ${srcs})
  # Generated code is not ours: no -Werror / pedantic on it.
  target_include_directories(${ARG_NAME} SYSTEM PUBLIC ${out})
  target_link_libraries(${ARG_NAME} PUBLIC gRPC::grpc++ protobuf::libprotobuf)
endfunction()
