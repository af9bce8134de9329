# Every third-party dependency, from Debian packages (scripts/install_deps.sh).
find_package(Threads REQUIRED)
find_package(absl REQUIRED CONFIG)
find_package(yaml-cpp REQUIRED CONFIG)
find_package(nlohmann_json 3.10 REQUIRED CONFIG)
find_package(PkgConfig REQUIRED)
pkg_check_modules(HWY REQUIRED IMPORTED_TARGET libhwy)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
# oneDNN (libdnnl-dev) for the larger GEMMs. Found by hand: Debian's CMake
# config would also require the OpenCL development files.
find_path(ONEDNN_INCLUDE_DIR oneapi/dnnl/dnnl.h REQUIRED)
find_library(ONEDNN_LIBRARY dnnl REQUIRED)
add_library(OneDnn::dnnl UNKNOWN IMPORTED)
set_target_properties(OneDnn::dnnl PROPERTIES
  IMPORTED_LOCATION "${ONEDNN_LIBRARY}"
  INTERFACE_INCLUDE_DIRECTORIES "${ONEDNN_INCLUDE_DIR}")
if(EXPERTSERVE_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
find_package(benchmark QUIET CONFIG)

# Debian's yaml-cpp config exports a plain library name rather than a target.
if(NOT TARGET yaml-cpp::yaml-cpp)
  if(TARGET yaml-cpp)
    add_library(yaml-cpp::yaml-cpp ALIAS yaml-cpp)
  else()
    add_library(yaml-cpp::yaml-cpp INTERFACE IMPORTED)
    target_link_libraries(yaml-cpp::yaml-cpp INTERFACE ${YAML_CPP_LIBRARIES})
    target_include_directories(yaml-cpp::yaml-cpp INTERFACE ${YAML_CPP_INCLUDE_DIR})
  endif()
endif()

# gRPC, Protobuf and prometheus-cpp are needed only by server/ and tools that
# speak the API; they are found there (cmake/Grpc.cmake) so the core builds
# without them.
