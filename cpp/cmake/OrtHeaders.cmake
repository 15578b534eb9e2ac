# Provides ORT_INCLUDE_DIR: the ONNX Runtime C/C++ API headers.
#
# The onnxruntime Python wheel carries the library but no headers. They come from
# the npm registry package com.github.asus4.onnxruntime, which bundles the
# official ONNX Runtime framework and its headers (C API version 29). A header of
# API version N works with any library of version >= N (the wheel here: 1.32).
# The headers are extracted once into LIF_ORT_HEADERS_CACHE and reused.
set(LIF_ORT_HEADERS_PACKAGE "com.github.asus4.onnxruntime@0.4.9" CACHE STRING "npm package with the ORT headers")
set(LIF_ORT_HEADERS_CACHE "$ENV{HOME}/.cache/lif_export/ort-headers-0.4.9" CACHE PATH "where the headers are kept")
set(ORT_INCLUDE_DIR "" CACHE PATH "ONNX Runtime headers (set to skip the download)")

if(NOT ORT_INCLUDE_DIR)
  set(ORT_INCLUDE_DIR ${LIF_ORT_HEADERS_CACHE}/include)
  if(NOT EXISTS ${ORT_INCLUDE_DIR}/onnxruntime_cxx_api.h)
    find_program(NPM npm REQUIRED)
    set(work ${LIF_ORT_HEADERS_CACHE}/download)
    file(REMOVE_RECURSE ${work})
    file(MAKE_DIRECTORY ${work})
    message(STATUS "Fetching ONNX Runtime headers from npm package ${LIF_ORT_HEADERS_PACKAGE}")
    execute_process(COMMAND ${NPM} pack ${LIF_ORT_HEADERS_PACKAGE} --silent
                    WORKING_DIRECTORY ${work} OUTPUT_VARIABLE tarball OUTPUT_STRIP_TRAILING_WHITESPACE
                    COMMAND_ERROR_IS_FATAL ANY)
    set(headers "package/Plugins/iOS~/onnxruntime.xcframework/ios-arm64/onnxruntime.framework/Headers")
    execute_process(COMMAND tar xzf ${tarball} ${headers} WORKING_DIRECTORY ${work} COMMAND_ERROR_IS_FATAL ANY)
    file(MAKE_DIRECTORY ${LIF_ORT_HEADERS_CACHE}/staging)
    file(GLOB header_files ${work}/${headers}/*.h)
    file(COPY ${header_files} DESTINATION ${LIF_ORT_HEADERS_CACHE}/staging)
    file(REMOVE_RECURSE ${ORT_INCLUDE_DIR})
    file(RENAME ${LIF_ORT_HEADERS_CACHE}/staging ${ORT_INCLUDE_DIR})
    file(REMOVE_RECURSE ${work})
  endif()
endif()
if(NOT EXISTS ${ORT_INCLUDE_DIR}/onnxruntime_cxx_api.h)
  message(FATAL_ERROR "ORT_INCLUDE_DIR=${ORT_INCLUDE_DIR} has no onnxruntime_cxx_api.h")
endif()
