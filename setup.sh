#!/usr/bin/env bash
# attnc setup: installs the Debian packages attnc needs (only the missing
# ones), then configures and builds into ./build with CMake and Ninja.
# Idempotent: a second run installs nothing and rebuilds only what changed.
#
#   bash setup.sh            # install + configure + build
#   BUILD_DIR=out bash setup.sh
set -euo pipefail
cd "$(dirname "$0")"
BUILD_DIR=${BUILD_DIR:-build}

packages=(
  cmake ninja-build g++ python3
  libmlir-22-dev mlir-22-tools llvm-22-dev llvm-22-tools   # MLIR/LLVM 22, lit, FileCheck
  nlohmann-json3-dev libgtest-dev libzstd-dev
  librsvg2-dev librsvg2-bin pkg-config fonts-dejavu-core    # --emit=png; rsvg-convert in tests
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

cuda_root=${CUDA_HOME:-/usr/local/cuda}
cmake -S . -B "$BUILD_DIR" -G Ninja \
  -DCMAKE_BUILD_TYPE=Release \
  -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir \
  -DLLVM_EXTERNAL_LIT=/usr/lib/llvm-22/bin/lit \
  -DCUDAToolkit_ROOT="$cuda_root" >/dev/null
cmake --build "$BUILD_DIR"
echo "setup: built attnc in $BUILD_DIR/bin"
