#!/bin/bash
# Builds the GPU test binaries and the NVRTC compile check into $1 (default
# tests/gpu/bin), with nvcc only; no GPU needed. ptxas' register and spill
# report of every kernel goes to $1/ptxas.log. Run from the repository root.
#
#   tests/gpu/build.sh [out dir] [variant ...]
#
# test_causal_wgmma and test_table_wgmma are the same kernels with the Hopper
# wgmma tile config (sm_90a).
#
# A variant BMxBNxWARPSxSTAGESxMINBLOCKS (e.g. 64x64x4x2x2) builds
# test_causal_<variant> with other tile sizes for the causal kernel; none: the
# default set below.
set -euo pipefail
out=${1:-tests/gpu/bin}
shift || true
variants=("$@")
if [ ${#variants[@]} -eq 0 ]; then
  variants=(128x64x8x2x1 128x128x8x2x1 128x96x8x2x1 128x32x4x2x1 64x32x4x2x3)
fi
cuda=${CUDA_HOME:-/usr/local/cuda}
nvcc=$cuda/bin/nvcc
arch=${ATTNC_GPU_ARCH:-sm_90}
mkdir -p "$out"
flags=(-std=c++17 -O3 -arch="$arch" -lineinfo -Xptxas -v -Iruntime/device -Iruntime/include/attnc/runtime)
: >"$out/ptxas.log"

build() { # name, defines...
  local name=$1
  shift
  echo "== $name $*" >>"$out/ptxas.log"
  "$nvcc" "${flags[@]}" "$@" tests/gpu/test_reference_kernel.cu -o "$out/$name" 2>&1 |
    grep -E "error|attnc_forward_kernel|registers|spill" >>"$out/ptxas.log" || true
  test -x "$out/$name"
}

build test_causal -DATTNC_REFERENCE_CAUSAL_GQA &
build test_table -DATTNC_REFERENCE_WINDOW_TABLE &
wait
# The Hopper wgmma mainloop (attnc_cuda_sm90.cuh) of both kernels: the sm_90a target only.
portable=("${flags[@]}")
flags=("${flags[@]/-arch=$arch/-gencode=arch=compute_90a,code=sm_90a}")
build test_causal_wgmma -DATTNC_REFERENCE_CAUSAL_GQA -DATTNC_TUNE_WGMMA -DATTNC_TUNE_BLOCK_M=128 \
  -DATTNC_TUNE_BLOCK_N=128 -DATTNC_TUNE_NUM_WARPS=8 -DATTNC_TUNE_MIN_BLOCKS=1 &
build test_table_wgmma -DATTNC_REFERENCE_WINDOW_TABLE -DATTNC_TUNE_WGMMA &
wait
flags=("${portable[@]}")
for v in "${variants[@]}"; do
  IFS=x read -r bm bn w s mb <<<"$v"
  build "test_causal_$v" -DATTNC_REFERENCE_CAUSAL_GQA -DATTNC_TUNE_BLOCK_M="$bm" \
    -DATTNC_TUNE_BLOCK_N="$bn" -DATTNC_TUNE_NUM_WARPS="$w" -DATTNC_TUNE_STAGES="$s" \
    -DATTNC_TUNE_MIN_BLOCKS="${mb:-1}"
done
g++ -std=c++17 -O1 -I"$cuda/include" tests/gpu/nvrtc_check.cpp -L"$cuda/lib64" -lnvrtc \
  -Wl,-rpath,"$cuda/lib64" -o "$out/nvrtc_check"
cat "$out/ptxas.log"
