# Finds Debian's MLIR 22 and sets up TableGen and LLVM's flags.
# Pitfalls (CONVENTIONS.md): find_package(MLIR 22) is rejected because
# major.minor must match, so check the major version by hand; LLVM_DEFINITIONS
# is one string; lit is not at the default llvm-lit path.
if(NOT MLIR_DIR AND EXISTS /usr/lib/llvm-22/lib/cmake/mlir)
  set(MLIR_DIR /usr/lib/llvm-22/lib/cmake/mlir)
endif()
find_package(MLIR REQUIRED CONFIG)
if(NOT LLVM_VERSION_MAJOR EQUAL 22)
  message(FATAL_ERROR "attnc needs LLVM/MLIR 22, found ${LLVM_PACKAGE_VERSION} at ${MLIR_DIR}")
endif()
message(STATUS "attnc: MLIR ${LLVM_PACKAGE_VERSION} from ${MLIR_DIR}")

set(LLVM_RUNTIME_OUTPUT_INTDIR ${CMAKE_BINARY_DIR}/bin)
set(LLVM_LIBRARY_OUTPUT_INTDIR ${CMAKE_BINARY_DIR}/lib)
set(MLIR_BINARY_DIR ${CMAKE_BINARY_DIR})
list(APPEND CMAKE_MODULE_PATH "${MLIR_CMAKE_DIR}" "${LLVM_CMAKE_DIR}")
include(TableGen)
include(AddLLVM)
include(AddMLIR)
include(HandleLLVMOptions)

include_directories(SYSTEM ${LLVM_INCLUDE_DIRS} ${MLIR_INCLUDE_DIRS})
separate_arguments(ATTNC_LLVM_DEFINITIONS NATIVE_COMMAND "${LLVM_DEFINITIONS}")
add_definitions(${ATTNC_LLVM_DEFINITIONS})

if(NOT LLVM_EXTERNAL_LIT)
  find_program(LLVM_EXTERNAL_LIT NAMES lit llvm-lit
    HINTS ${LLVM_TOOLS_BINARY_DIR} /usr/lib/llvm-22/bin REQUIRED)
endif()
find_program(ATTNC_FILECHECK FileCheck HINTS ${LLVM_TOOLS_BINARY_DIR} /usr/lib/llvm-22/bin REQUIRED)

# ATTNC_STATIC_COMPILER: link MLIR and LLVM statically (and libstdc++/libgcc),
# so that libattnc-based programs (examples/host_jit, attnc-run) run on
# machines without MLIR, such as the GPU machine. Debian's MLIR targets link
# the LLVM dylib ("LLVM"); point them at LLVM's static component libraries.
option(ATTNC_STATIC_COMPILER "Link MLIR/LLVM statically into attnc's programs" OFF)
if(ATTNC_STATIC_COMPILER)
  llvm_map_components_to_libnames(ATTNC_LLVM_STATIC_LIBS
    support core demangle targetparser binaryformat bitstreamreader remarks)
  get_property(ATTNC_IMPORTED DIRECTORY PROPERTY IMPORTED_TARGETS)
  foreach(mlirTarget IN LISTS MLIR_EXPORTED_TARGETS)
    if(TARGET ${mlirTarget})
      get_target_property(deps ${mlirTarget} INTERFACE_LINK_LIBRARIES)
      if(deps)
        list(TRANSFORM deps REPLACE "^LLVM$" "${ATTNC_LLVM_STATIC_LIBS}")
        set_target_properties(${mlirTarget} PROPERTIES INTERFACE_LINK_LIBRARIES "${deps}")
      endif()
    endif()
  endforeach()
  add_link_options(-static-libstdc++ -static-libgcc)
  set(LLVM_LINK_LLVM_DYLIB OFF)
endif()
