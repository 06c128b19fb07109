# Finds nlohmann/json (and tells where GoogleTest and the prebuilt attnc
# programs may be) the normal way first, then in fallbacks for machines that
# lack them, such as the GPU machine (CUDA, cmake, ninja; no MLIR,
# nlohmann/json or GoogleTest):
#
#   ATTNC_BUNDLE_DIR   the folder tools/gpu-bundle.sh assembles, a prefix:
#                      bin/ (self-contained attnc and host_jit),
#                      include/ + share/cmake/nlohmann_json/ (nlohmann/json),
#                      include/ + lib/x86_64-linux-gnu/ (GoogleTest, static).
#                      It is searched after every other prefix, so a library
#                      installed on the machine wins.
#   ATTNC_NLOHMANN_JSON_INCLUDE_DIR
#                      a folder holding nlohmann/json.hpp (header only), for
#                      a copy without CMake package files.

set(ATTNC_BUNDLE_DIR "" CACHE PATH
    "Prefix searched last for nlohmann/json, GoogleTest and prebuilt attnc programs (tools/gpu-bundle.sh)")
if(ATTNC_BUNDLE_DIR)
  get_filename_component(ATTNC_BUNDLE_DIR "${ATTNC_BUNDLE_DIR}" ABSOLUTE)
  if(NOT EXISTS "${ATTNC_BUNDLE_DIR}/BUNDLE.txt")
    message(FATAL_ERROR "ATTNC_BUNDLE_DIR=${ATTNC_BUNDLE_DIR} is not a bundle of "
                        "tools/gpu-bundle.sh (no BUNDLE.txt)")
  endif()
  list(APPEND CMAKE_SYSTEM_PREFIX_PATH "${ATTNC_BUNDLE_DIR}")
  message(STATUS "attnc: bundle ${ATTNC_BUNDLE_DIR} searched last")
endif()

# The oldest nlohmann/json attnc is tested with.
set(ATTNC_NLOHMANN_JSON_MIN_VERSION 3.10)

find_package(nlohmann_json ${ATTNC_NLOHMANN_JSON_MIN_VERSION} QUIET)
if(nlohmann_json_FOUND)
  message(STATUS "attnc: nlohmann/json ${nlohmann_json_VERSION} from ${nlohmann_json_DIR}")
  return()
endif()

find_path(ATTNC_NLOHMANN_JSON_INCLUDE_DIR nlohmann/json.hpp
          DOC "Folder holding nlohmann/json.hpp, used where no nlohmann_json CMake package is found")
if(NOT ATTNC_NLOHMANN_JSON_INCLUDE_DIR)
  message(FATAL_ERROR "attnc: nlohmann/json ${ATTNC_NLOHMANN_JSON_MIN_VERSION} or later not found. "
    "Install it (Debian: nlohmann-json3-dev), or pass -DATTNC_BUNDLE_DIR=<tools/gpu-bundle.sh output> "
    "or -DATTNC_NLOHMANN_JSON_INCLUDE_DIR=<folder holding nlohmann/json.hpp>.")
endif()

# The version macros sit in detail/abi_macros.hpp from 3.11 on, in json.hpp before.
set(version "")
foreach(header detail/abi_macros.hpp json.hpp)
  set(path "${ATTNC_NLOHMANN_JSON_INCLUDE_DIR}/nlohmann/${header}")
  if(version OR NOT EXISTS "${path}")
    continue()
  endif()
  file(STRINGS "${path}" defines REGEX "^ *#define NLOHMANN_JSON_VERSION_(MAJOR|MINOR|PATCH) +[0-9]+")
  foreach(part MAJOR MINOR PATCH)
    string(REGEX MATCH "NLOHMANN_JSON_VERSION_${part} +([0-9]+)" found "${defines}")
    if(found)
      list(APPEND version "${CMAKE_MATCH_1}")
    endif()
  endforeach()
endforeach()
list(JOIN version "." version)
if(NOT version MATCHES "^[0-9]+\\.[0-9]+\\.[0-9]+$")
  message(FATAL_ERROR "attnc: cannot read the nlohmann/json version in ${ATTNC_NLOHMANN_JSON_INCLUDE_DIR}")
endif()
if(version VERSION_LESS ATTNC_NLOHMANN_JSON_MIN_VERSION)
  message(FATAL_ERROR "attnc: nlohmann/json ${version} in ${ATTNC_NLOHMANN_JSON_INCLUDE_DIR} is older "
                      "than ${ATTNC_NLOHMANN_JSON_MIN_VERSION}")
endif()
add_library(nlohmann_json::nlohmann_json INTERFACE IMPORTED)
set_target_properties(nlohmann_json::nlohmann_json PROPERTIES
  INTERFACE_INCLUDE_DIRECTORIES "${ATTNC_NLOHMANN_JSON_INCLUDE_DIR}")
message(STATUS "attnc: nlohmann/json ${version} (headers only) from ${ATTNC_NLOHMANN_JSON_INCLUDE_DIR}")
