# es_add_test(NAME name SOURCES a.cc ... DEPS lib ... LABELS unit|integration|e2e [cuda])
# One GoogleTest binary, registered with CTest under its labels.
include(GoogleTest)
function(es_add_test)
  cmake_parse_arguments(ARG "" "NAME;TIMEOUT" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SOURCES})
  es_target_defaults(${ARG_NAME})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS} GTest::gmock GTest::gtest_main)
  set_target_properties(${ARG_NAME} PROPERTIES
    RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  add_test(NAME ${ARG_NAME} COMMAND ${ARG_NAME}
           WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  set_tests_properties(${ARG_NAME} PROPERTIES LABELS "${ARG_LABELS}"
                       TIMEOUT ${ARG_TIMEOUT}
                       ENVIRONMENT "ES_SOURCE_DIR=${CMAKE_SOURCE_DIR};ES_BINARY_DIR=${CMAKE_BINARY_DIR}")
endfunction()

# es_add_fuzz_target(NAME name SOURCES a.cc DEPS lib CORPUS dir)
# Always builds a replay binary (a ctest that feeds every file of the checked-in
# corpus through LLVMFuzzerTestOneInput); with EXPERTSERVE_FUZZ=ON and clang it
# also builds the libFuzzer binary NAME_fuzzer.
function(es_add_fuzz_target)
  cmake_parse_arguments(ARG "" "NAME;CORPUS" "SOURCES;DEPS" ${ARGN})
  add_executable(${ARG_NAME}_replay ${ARG_SOURCES}
                 ${CMAKE_SOURCE_DIR}/tests/fuzz/replay_main.cc)
  es_target_defaults(${ARG_NAME}_replay)
  target_link_libraries(${ARG_NAME}_replay PRIVATE ${ARG_DEPS})
  set_target_properties(${ARG_NAME}_replay PROPERTIES
    RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  add_test(NAME ${ARG_NAME}_replay COMMAND ${ARG_NAME}_replay ${ARG_CORPUS})
  set_tests_properties(${ARG_NAME}_replay PROPERTIES LABELS "unit;fuzz")
  if(EXPERTSERVE_FUZZ)
    add_executable(${ARG_NAME}_fuzzer ${ARG_SOURCES})
    es_target_defaults(${ARG_NAME}_fuzzer)
    target_compile_options(${ARG_NAME}_fuzzer PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_options(${ARG_NAME}_fuzzer PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_libraries(${ARG_NAME}_fuzzer PRIVATE ${ARG_DEPS})
  endif()
endfunction()
