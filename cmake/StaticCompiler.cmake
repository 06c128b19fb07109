# ATTNC_STATIC_COMPILER: programs that link libattnc (attnc, examples/host_jit)
# carry MLIR, LLVM, zlib, zstd, libstdc++ and libgcc inside them and need only
# glibc, so that binaries built on Debian 12 run on the GPU machine, which has
# CUDA but no MLIR (tools/gpu-bundle.sh builds and packs them). Included by
# MLIR.cmake after find_package(MLIR).
#
# Debian's MLIR and LLVM packages link the LLVM dylib: LLVMConfig sets
# LLVM_LINK_LLVM_DYLIB and every imported MLIR* target names "LLVM" in its link
# interface. Here:
#   - attnc's own LLVM-style targets link LLVM's static component libraries
#     (LLVM_LINK_LLVM_DYLIB OFF);
#   - the imported MLIR* targets name those component libraries instead of
#     "LLVM" (never both: CONVENTIONS.md, "Option registered more than once");
#   - LLVMSupport links libz.a and libzstd.a instead of the shared libraries,
#     and not libz3.so (only LLVM's SMT solver API uses it; attnc never calls it);
#   - every program links libstdc++ and libgcc statically.
# The binaries keep glibc (and libdl, libpthread, librt, libm) dynamic: a
# program built against glibc 2.36 runs on any glibc >= 2.36.

# LLVM components that MLIR's IR, parser, pass and dialect libraries use; each
# is a static archive, so naming more than needed costs link time only.
set(ATTNC_STATIC_LLVM_COMPONENTS
  support core demangle targetparser binaryformat bitstreamreader remarks)
llvm_map_components_to_libnames(ATTNC_STATIC_LLVM_LIBS ${ATTNC_STATIC_LLVM_COMPONENTS})

set(LLVM_LINK_LLVM_DYLIB OFF)

foreach(mlirTarget IN LISTS MLIR_EXPORTED_TARGETS)
  if(NOT TARGET ${mlirTarget})
    continue()
  endif()
  get_target_property(deps ${mlirTarget} INTERFACE_LINK_LIBRARIES)
  if(deps)
    list(TRANSFORM deps REPLACE "^LLVM$" "${ATTNC_STATIC_LLVM_LIBS}")
    set_target_properties(${mlirTarget} PROPERTIES INTERFACE_LINK_LIBRARIES "${deps}")
  endif()
endforeach()

# The static archives of LLVMSupport's compression libraries (libz-dev,
# libzstd-dev).
find_library(ATTNC_STATIC_ZLIB libz.a REQUIRED)
find_library(ATTNC_STATIC_ZSTD libzstd.a REQUIRED)
get_target_property(supportDeps LLVMSupport INTERFACE_LINK_LIBRARIES)
list(FILTER supportDeps EXCLUDE REGEX "libz3\\.so")
list(TRANSFORM supportDeps REPLACE "^ZLIB::ZLIB$" "${ATTNC_STATIC_ZLIB}")
list(TRANSFORM supportDeps REPLACE "^zstd::libzstd_shared$" "${ATTNC_STATIC_ZSTD}")
set_target_properties(LLVMSupport PROPERTIES INTERFACE_LINK_LIBRARIES "${supportDeps}")

add_link_options(-static-libstdc++ -static-libgcc)
list(JOIN ATTNC_STATIC_LLVM_COMPONENTS " " components)
message(STATUS "attnc: static compiler: MLIR, LLVM (${components}), zlib, zstd, "
               "libstdc++ and libgcc linked statically")
