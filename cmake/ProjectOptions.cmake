# Compiler flags shared by every project target: es_target_defaults(target).
set(ES_WARNING_FLAGS -Wall -Wextra -Wpedantic -Wno-unused-parameter
    -Wno-missing-field-initializers)
if(EXPERTSERVE_WERROR)
  list(APPEND ES_WARNING_FLAGS -Werror)
endif()

if(EXPERTSERVE_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer
                      -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()

function(es_target_defaults target)
  get_target_property(type ${target} TYPE)
  if(type STREQUAL "INTERFACE_LIBRARY")
    return()
  endif()
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:${ES_WARNING_FLAGS}>)
  target_include_directories(${target} PUBLIC
    $<BUILD_INTERFACE:${CMAKE_SOURCE_DIR}>
    $<BUILD_INTERFACE:${CMAKE_BINARY_DIR}/generated>)
endfunction()

# libFuzzer steers by coverage: with EXPERTSERVE_FUZZ (a separate clang build
# dir, tests/fuzz/run_fuzzers.sh) every library is instrumented, not just the
# fuzz entry points.
if(EXPERTSERVE_FUZZ AND CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined)
  add_link_options(-fsanitize=address,undefined)
endif()
