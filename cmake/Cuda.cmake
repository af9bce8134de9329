# EXPERTSERVE_CUDA=AUTO builds the CUDA backend when a toolkit is found, ON
# requires it, OFF skips it. CUDA code compiles and links without a device;
# its tests skip at run time when cudaGetDeviceCount reports none.
set(ES_HAVE_CUDA OFF)
if(NOT EXPERTSERVE_CUDA STREQUAL "OFF")
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      # One real architecture keeps CI compile time low; set
      # -DCMAKE_CUDA_ARCHITECTURES=native (or a list) for a real deployment.
      set(CMAKE_CUDA_ARCHITECTURES 80)
    endif()
    set(CMAKE_CUDA_STANDARD 17)  # CMake 3.25 does not know CUDA20 for nvcc
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(ES_HAVE_CUDA ON)
  elseif(EXPERTSERVE_CUDA STREQUAL "ON")
    message(FATAL_ERROR "EXPERTSERVE_CUDA=ON but no CUDA compiler was found")
  endif()
endif()
message(STATUS "expertserve: CUDA backend ${ES_HAVE_CUDA}")
