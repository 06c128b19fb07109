#!/usr/bin/env bash
# Builds the self-contained compiler and packs, into one folder, what a GPU
# machine without MLIR, nlohmann/json or GoogleTest needs beside the sources.
# The folder is a prefix for cmake -DATTNC_BUNDLE_DIR (cmake/Dependencies.cmake):
#
#   bin/attnc, bin/host_jit   attnc and examples/host_jit with MLIR, LLVM, zlib,
#                             zstd, libattnrt, the CUDA runtime, libstdc++ and
#                             libgcc linked in (-DATTNC_STATIC_COMPILER=ON),
#                             stripped; they need glibc only
#   include/nlohmann/, share/cmake/nlohmann_json/      nlohmann/json (headers)
#   include/gtest/, lib/<multiarch>/libgtest*.a, lib/<multiarch>/cmake/GTest/
#                             GoogleTest (Debian's static libraries)
#   BUNDLE.txt                the commit, the glibc the programs need, sizes
#
# Usage (run from anywhere; needs what setup.sh installs):
#
#   tools/gpu-bundle.sh [OUT]                  OUT defaults to build-gpubundle
#   BUILD_DIR=/tmp/build-static tools/gpu-bundle.sh
#
# build-gpubundle is git-ignored (/build*/): name it in the device tool's
# `carry`. There, from the repository root:
#
#   cmake -S . -B build-gpu -G Ninja -DATTNC_ENABLE_MLIR=OFF -DATTNC_BUNDLE_DIR=$PWD/build-gpubundle
#   cmake --build build-gpu && ctest --test-dir build-gpu -L gpu --output-on-failure
#   build-gpubundle/bin/host_jit --target cuda
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-build-gpubundle}")
build=${BUILD_DIR:-build-static}
cuda_root=${CUDA_HOME:-/usr/local/cuda}
# The bundle travels inside the 64 MiB that the device tool carries, with the
# sources (a few MiB) beside it.
max_bundle_bytes=$((40 * 1024 * 1024))
# The only shared libraries the programs may need: glibc's.
allowed_needed='^(libc\.so\.6|libm\.so\.6|libdl\.so\.2|libpthread\.so\.0|librt\.so\.1|ld-linux-x86-64\.so\.2)$'

die() {
  echo "gpu-bundle: $*" >&2
  exit 1
}

# 1. The static compiler build.
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir -DLLVM_EXTERNAL_LIT=/usr/lib/llvm-22/bin/lit \
  -DCUDAToolkit_ROOT="$cuda_root" -DATTNC_STATIC_COMPILER=ON -DATTNC_ENABLE_TESTS=OFF >/dev/null
cmake --build "$build" --target attnc host_jit

# 2. The folder (an earlier bundle is replaced; any other folder is left alone).
if [ -e "$out" ]; then
  [ -f "$out/BUNDLE.txt" ] || die "$out exists and is not a bundle: not replacing it"
  rm -rf "$out"
fi
mkdir -p "$out/bin"
echo "incomplete: tools/gpu-bundle.sh did not finish" >"$out/BUNDLE.txt"
for program in attnc host_jit; do
  strip --strip-unneeded -o "$out/bin/$program" "$build/bin/$program"
done
multiarch=$(gcc -print-multiarch)
lib=/usr/lib/$multiarch
for path in /usr/include/nlohmann /usr/share/cmake/nlohmann_json /usr/include/gtest \
  "$lib/libgtest.a" "$lib/libgtest_main.a" "$lib/cmake/GTest"; do
  [ -e "$path" ] || die "$path is missing (install nlohmann-json3-dev and libgtest-dev: setup.sh)"
  mkdir -p "$out/$(dirname "${path#/usr/}")"
  cp -r "$path" "$out/${path#/usr/}"
done
# GoogleMock comes with libgmock-dev where installed; the tests use GoogleTest
# only, and GTestConfig.cmake loads GMockTargets.cmake only if it is there.
rm -f "$out/lib/$multiarch/cmake/GTest/GMock"*

# 3. Checks: glibc only, and both programs work here.
glibc_needed=""
for program in attnc host_jit; do
  while read -r needed; do
    [[ $needed =~ $allowed_needed ]] || die "$program needs $needed: it is not self-contained"
  done < <(readelf -d "$out/bin/$program" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
  glibc_needed+=$(readelf -V "$out/bin/$program" | grep -o 'GLIBC_[0-9.]*')$'\n'
done
glibc_needed=$(sort -uV <<<"$glibc_needed" | tail -1)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"$out/bin/attnc" specs/examples/causal.json --emit=package --target=cuda -o "$scratch/causal-cuda" ||
  die "bin/attnc failed on specs/examples/causal.json"
[ -s "$scratch/causal-cuda/manifest.json" ] || die "bin/attnc wrote no package"
ATTNC_CACHE_DIR="$scratch/cache" "$out/bin/host_jit" || die "bin/host_jit (CPU) failed"

bytes=$(du -sb "$out" | cut -f1)
((bytes <= max_bundle_bytes)) || die "$out holds $bytes bytes, over $max_bundle_bytes"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] || commit+="+local changes"
{
  echo "attnc GPU bundle, made by tools/gpu-bundle.sh"
  echo "commit: $commit"
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "built on: $(. /etc/os-release && echo "$PRETTY_NAME"), $(ldd --version | head -1)"
  echo "programs need: $glibc_needed or later (glibc only)"
  echo "sizes (bytes):"
  (cd "$out" && du -sb bin/attnc bin/host_jit include lib share | sed 's/^/  /')
  echo "total: $bytes"
} >"$out/BUNDLE.txt"
cat "$out/BUNDLE.txt"
echo "gpu-bundle: $out is ready (carry it; cmake -DATTNC_BUNDLE_DIR=<its path> there)"
