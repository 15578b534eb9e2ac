# Provides ORT_INCLUDE_DIR: the ONNX Runtime C/C++ API headers.
#
# The onnxruntime Python wheel carries the library but no headers. They come from
# the npm registry package com.github.asus4.onnxruntime, which bundles the
# official ONNX Runtime framework and its headers (C API version 29). A header of
# API version N works with any library of version >= N (the wheel here: 1.32).
#
# The package is pinned by version AND by the sha256 of its tarball: `npm pack`
# fetches it (through the npm registry configured for npm), and configuration fails
# unless the tarball's sha256 is the pinned one.
# The verified headers are extracted once into LIF_ORT_HEADERS_CACHE_DIR (a path
# that includes the hash) and reused; a stamp file there records the verified hash.
#
# Offline: -DLIF_ORT_HEADERS_TARBALL=path/to/com.github.asus4.onnxruntime-0.4.9.tgz uses
# that file instead of `npm pack` (it is verified against the same sha256).
#
# Also usable in script mode, to fetch or check the headers without a build:
#   cmake [-DLIF_ORT_HEADERS_CACHE_DIR=DIR] [-DLIF_ORT_HEADERS_TARBALL=FILE] -P cpp/cmake/OrtHeaders.cmake
#
# To move to another release, change both pins below (the hash: `npm pack
# com.github.asus4.onnxruntime@VERSION` and `sha256sum` of the tarball it writes).
if(NOT DEFINED LIF_ORT_HEADERS_VERSION)
  set(LIF_ORT_HEADERS_VERSION "0.4.9")
endif()
if(NOT DEFINED LIF_ORT_HEADERS_SHA256)
  set(LIF_ORT_HEADERS_SHA256 "e59788788818fdde1b2e522e766a21ba0f7d8391de55737abf81e32cc801785d")
endif()
set(LIF_ORT_HEADERS_PACKAGE "com.github.asus4.onnxruntime@${LIF_ORT_HEADERS_VERSION}")

if(DEFINED ENV{XDG_CACHE_HOME} AND NOT "$ENV{XDG_CACHE_HOME}" STREQUAL "")
  set(_lif_cache_root "$ENV{XDG_CACHE_HOME}/lif_export")
elseif(DEFINED ENV{HOME} AND NOT "$ENV{HOME}" STREQUAL "")
  set(_lif_cache_root "$ENV{HOME}/.cache/lif_export")
else()
  set(_lif_cache_root "${CMAKE_BINARY_DIR}/lif_export_cache")
endif()
string(SUBSTRING "${LIF_ORT_HEADERS_SHA256}" 0 16 _lif_short_hash)
if(NOT DEFINED LIF_ORT_HEADERS_CACHE_DIR)
  set(LIF_ORT_HEADERS_CACHE_DIR "${_lif_cache_root}/ort-headers-${LIF_ORT_HEADERS_VERSION}-${_lif_short_hash}"
      CACHE PATH "where the verified ONNX Runtime headers are kept")
endif()
if(NOT DEFINED ORT_INCLUDE_DIR)
  set(ORT_INCLUDE_DIR "" CACHE PATH "ONNX Runtime headers (set to skip the download)")
endif()

# Fetches the pinned tarball into a scratch folder, verifies it, and extracts its headers into
# `dest` (staged, then renamed into place), with the stamp file dest/.sha256.
function(lif_fetch_ort_headers dest)
  string(RANDOM LENGTH 8 _tag)
  set(work "${LIF_ORT_HEADERS_CACHE_DIR}/.work-${_tag}")
  file(REMOVE_RECURSE "${work}")
  file(MAKE_DIRECTORY "${work}")
  if(LIF_ORT_HEADERS_TARBALL)
    if(NOT EXISTS "${LIF_ORT_HEADERS_TARBALL}")
      message(FATAL_ERROR "ONNX Runtime headers: LIF_ORT_HEADERS_TARBALL=${LIF_ORT_HEADERS_TARBALL} does not exist")
    endif()
    get_filename_component(tarball "${LIF_ORT_HEADERS_TARBALL}" ABSOLUTE)
    message(STATUS "ONNX Runtime headers from ${tarball}")
  else()
    find_program(NPM npm)
    if(NOT NPM)
      file(REMOVE_RECURSE "${work}")
      message(FATAL_ERROR "ONNX Runtime headers: npm is needed to fetch ${LIF_ORT_HEADERS_PACKAGE} (install it, "
                          "e.g. with scripts/install_system_deps.sh), or set LIF_ORT_HEADERS_TARBALL or ORT_INCLUDE_DIR")
    endif()
    message(STATUS "Fetching ONNX Runtime headers from npm package ${LIF_ORT_HEADERS_PACKAGE}")
    execute_process(COMMAND "${NPM}" pack "${LIF_ORT_HEADERS_PACKAGE}" --silent
                    WORKING_DIRECTORY "${work}" OUTPUT_VARIABLE tarball OUTPUT_STRIP_TRAILING_WHITESPACE
                    RESULT_VARIABLE rc ERROR_VARIABLE err)
    string(REGEX REPLACE ".*\n" "" tarball "${tarball}")  # the last line is the tarball's name
    if(NOT rc EQUAL 0 OR NOT EXISTS "${work}/${tarball}")
      file(REMOVE_RECURSE "${work}")
      message(FATAL_ERROR "ONNX Runtime headers: `npm pack ${LIF_ORT_HEADERS_PACKAGE}` failed (${rc}): ${err}")
    endif()
    set(tarball "${work}/${tarball}")
  endif()
  file(SHA256 "${tarball}" actual)
  if(NOT actual STREQUAL LIF_ORT_HEADERS_SHA256)
    file(REMOVE_RECURSE "${work}")
    message(FATAL_ERROR
      "ONNX Runtime headers: sha256 mismatch for ${LIF_ORT_HEADERS_PACKAGE} (${tarball}):\n"
      "  expected ${LIF_ORT_HEADERS_SHA256} (pinned in cpp/cmake/OrtHeaders.cmake)\n"
      "  got      ${actual}\n"
      "The tarball is not the one pinned (a changed registry package, or a corrupt or wrong file); "
      "refusing to use it.")
  endif()
  set(headers "package/Plugins/iOS~/onnxruntime.xcframework/ios-arm64/onnxruntime.framework/Headers")
  execute_process(COMMAND tar xzf "${tarball}" "${headers}" WORKING_DIRECTORY "${work}" RESULT_VARIABLE rc)
  file(GLOB header_files "${work}/${headers}/*.h")
  if(NOT rc EQUAL 0 OR NOT EXISTS "${work}/${headers}/onnxruntime_cxx_api.h")
    file(REMOVE_RECURSE "${work}")
    message(FATAL_ERROR "ONNX Runtime headers: ${LIF_ORT_HEADERS_PACKAGE} has no ${headers}/onnxruntime_cxx_api.h")
  endif()
  file(MAKE_DIRECTORY "${work}/include")
  file(COPY ${header_files} DESTINATION "${work}/include")
  file(WRITE "${work}/include/.sha256" "${LIF_ORT_HEADERS_SHA256}\n")
  file(REMOVE_RECURSE "${dest}")
  file(RENAME "${work}/include" "${dest}")
  file(REMOVE_RECURSE "${work}")
  message(STATUS "ONNX Runtime headers: ${LIF_ORT_HEADERS_PACKAGE} verified (sha256 ${actual}), in ${dest}")
endfunction()

if(NOT ORT_INCLUDE_DIR)
  set(ORT_INCLUDE_DIR "${LIF_ORT_HEADERS_CACHE_DIR}/include")
  set(_lif_stamp "${ORT_INCLUDE_DIR}/.sha256")
  set(_lif_verified FALSE)
  if(EXISTS "${_lif_stamp}" AND EXISTS "${ORT_INCLUDE_DIR}/onnxruntime_cxx_api.h")
    file(READ "${_lif_stamp}" _lif_stamped)
    string(STRIP "${_lif_stamped}" _lif_stamped)
    if(_lif_stamped STREQUAL LIF_ORT_HEADERS_SHA256)
      set(_lif_verified TRUE)
    endif()
  endif()
  if(NOT _lif_verified)
    # One fetch at a time, also across concurrent configures of several build folders.
    file(MAKE_DIRECTORY "${LIF_ORT_HEADERS_CACHE_DIR}")
    file(LOCK "${LIF_ORT_HEADERS_CACHE_DIR}/.lock" TIMEOUT 600 RESULT_VARIABLE _lif_lock)
    if(NOT _lif_lock EQUAL 0)
      message(FATAL_ERROR "ONNX Runtime headers: cannot lock ${LIF_ORT_HEADERS_CACHE_DIR}/.lock: ${_lif_lock}")
    endif()
    set(_lif_stamped "")
    if(EXISTS "${_lif_stamp}")
      file(READ "${_lif_stamp}" _lif_stamped)
      string(STRIP "${_lif_stamped}" _lif_stamped)
    endif()
    if(NOT _lif_stamped STREQUAL LIF_ORT_HEADERS_SHA256 OR NOT EXISTS "${ORT_INCLUDE_DIR}/onnxruntime_cxx_api.h")
      lif_fetch_ort_headers("${ORT_INCLUDE_DIR}")
    endif()
    file(LOCK "${LIF_ORT_HEADERS_CACHE_DIR}/.lock" RELEASE)
  endif()
endif()
if(NOT EXISTS "${ORT_INCLUDE_DIR}/onnxruntime_cxx_api.h")
  message(FATAL_ERROR "ORT_INCLUDE_DIR=${ORT_INCLUDE_DIR} has no onnxruntime_cxx_api.h")
endif()
