#!/bin/bash
# Builds the backward GPU test binaries (tests/gpu/test_backward_reference.cu
# over backward_reference_kernel.cu) into $1 (default tests/gpu/bin-backward)
# with nvcc only; no GPU needed. Also compiles every kernel variant to cubin
# for sm_80 and sm_90 with NVRTC's flags (-std=c++17 --use_fast_math) and
# fails on any local-memory spill; the ptxas report goes to $1/ptxas.log.
# Run from the repository root.
#
#   tests/gpu/build_backward.sh [out dir] [name ...]
#
# Names: the variants below (default: all). Each is one binary test_bwd_<name>.
set -euo pipefail
out=${1:-tests/gpu/bin-backward}
shift || true
cuda=${CUDA_HOME:-/usr/local/cuda}
nvcc=$cuda/bin/nvcc
arch=${ATTNC_GPU_ARCH:-sm_90}
jobs=${ATTNC_BUILD_JOBS:-2}
mkdir -p "$out"
includes=(-Iruntime/device -Iruntime/include/attnc/runtime)

# name: defines. MHA = Hq == Hkv; GQA 8/2 is the configurations' default.
declare -A variants=(
  [causal_bf16_d128_gqa_atomic]="-DATTNC_REFERENCE_CAUSAL_GQA"
  [causal_bf16_d128_gqa_det]="-DATTNC_REFERENCE_CAUSAL_GQA -DATTNC_TEST_DETERMINISTIC=1"
  [causal_fp16_d64_mha_atomic]="-DATTNC_REFERENCE_CAUSAL_GQA -DATTNC_TEST_BF16=0 -DATTNC_TEST_HEAD_DIM=64 -DATTNC_TEST_QUERY_HEADS=4 -DATTNC_TEST_KV_HEADS=4"
  [causal_fp16_d64_mha_det]="-DATTNC_REFERENCE_CAUSAL_GQA -DATTNC_TEST_BF16=0 -DATTNC_TEST_HEAD_DIM=64 -DATTNC_TEST_QUERY_HEADS=4 -DATTNC_TEST_KV_HEADS=4 -DATTNC_TEST_DETERMINISTIC=1"
  [dense_bf16_d64_mqa_atomic]="-DATTNC_REFERENCE_CAUSAL_GQA -DATTNC_TEST_DENSE=1 -DATTNC_TEST_HEAD_DIM=64 -DATTNC_TEST_QUERY_HEADS=4 -DATTNC_TEST_KV_HEADS=1"
  [table_fp16_d64_gqa_atomic]="-DATTNC_REFERENCE_WINDOW_TABLE"
  [table_fp16_d64_gqa_det]="-DATTNC_REFERENCE_WINDOW_TABLE -DATTNC_TEST_DETERMINISTIC=1"
  [table_bf16_d128_mha_atomic]="-DATTNC_REFERENCE_WINDOW_TABLE -DATTNC_TEST_BF16=1 -DATTNC_TEST_HEAD_DIM=128 -DATTNC_TEST_QUERY_HEADS=4 -DATTNC_TEST_KV_HEADS=4"
  [table_bf16_d128_mha_det]="-DATTNC_REFERENCE_WINDOW_TABLE -DATTNC_TEST_BF16=1 -DATTNC_TEST_HEAD_DIM=128 -DATTNC_TEST_QUERY_HEADS=4 -DATTNC_TEST_KV_HEADS=4 -DATTNC_TEST_DETERMINISTIC=1"
  # Timing (run with --bench-only): B2 H16 N8192, as PEERS.md.
  [bench_causal_d128_atomic]="-DATTNC_REFERENCE_CAUSAL_GQA -DATTNC_TEST_QUERY_HEADS=16 -DATTNC_TEST_KV_HEADS=16"
  [bench_dense_d128_atomic]="-DATTNC_REFERENCE_CAUSAL_GQA -DATTNC_TEST_DENSE=1 -DATTNC_TEST_QUERY_HEADS=16 -DATTNC_TEST_KV_HEADS=16"
  [bench_causal_d64_atomic]="-DATTNC_REFERENCE_CAUSAL_GQA -DATTNC_TEST_HEAD_DIM=64 -DATTNC_TEST_QUERY_HEADS=16 -DATTNC_TEST_KV_HEADS=16"
  [bench_dense_d64_atomic]="-DATTNC_REFERENCE_CAUSAL_GQA -DATTNC_TEST_DENSE=1 -DATTNC_TEST_HEAD_DIM=64 -DATTNC_TEST_QUERY_HEADS=16 -DATTNC_TEST_KV_HEADS=16"
  [bench_causal_d128_det]="-DATTNC_REFERENCE_CAUSAL_GQA -DATTNC_TEST_QUERY_HEADS=16 -DATTNC_TEST_KV_HEADS=16 -DATTNC_TEST_DETERMINISTIC=1"
  [bench_dense_d128_det]="-DATTNC_REFERENCE_CAUSAL_GQA -DATTNC_TEST_DENSE=1 -DATTNC_TEST_QUERY_HEADS=16 -DATTNC_TEST_KV_HEADS=16 -DATTNC_TEST_DETERMINISTIC=1"
)
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  mapfile -t names < <(printf '%s\n' "${!variants[@]}" | sort)
fi

# One binary: nvcc for $arch with the harness; then NVRTC-flag cubins for sm_80 and sm_90.
build() { # name
  local name=$1 defs=${variants[$1]:?unknown variant $1} log="$out/ptxas_$1.log"
  # shellcheck disable=SC2086
  "$nvcc" -std=c++17 -O3 -arch="$arch" -lineinfo "${includes[@]}" $defs \
    tests/gpu/test_backward_reference.cu -o "$out/test_bwd_$name" >"$log" 2>&1 || { cat "$log"; return 1; }
  for a in sm_80 sm_90; do
    echo "== $name $a $defs" >>"$log"
    # shellcheck disable=SC2086
    "$nvcc" -std=c++17 --use_fast_math -arch="$a" -cubin -Xptxas -v "${includes[@]}" $defs \
      tests/gpu/backward_reference_kernel.cu -o "$out/.$name.$a.cubin" 2>&1 |
      grep -E "error|Compiling entry|registers|spill" >>"$log" || true
    rm -f "$out/.$name.$a.cubin"
  done
}

failed=0
running=0
for n in "${names[@]}"; do
  build "$n" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || failed=$((failed + 1))
    running=$((running - 1))
  fi
done
while [ "$running" -gt 0 ]; do
  wait -n || failed=$((failed + 1))
  running=$((running - 1))
done
# One line per kernel: variant, arch, kernel, registers, spills.
cat "$out"/ptxas_*.log | awk '
  /^== / { name = $2; arch = $3; next }
  /Compiling entry function/ { kernel = $0; sub(/.*function ./, "", kernel); sub(/. for .*/, "", kernel) }
  /spill/ { spill = $0; gsub(/^ +/, "", spill) }
  /Used [0-9]+ registers/ { match($0, /Used [0-9]+ registers/); printf "%-28s %s %-34s %s, %s\n", name, arch, kernel, substr($0, RSTART, RLENGTH), spill }
' >"$out/ptxas.log"
cat "$out/ptxas.log"
if grep -vE "0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads" "$out/ptxas.log" | grep -q .; then
  echo "FAIL: spills or a stack frame in some kernel (above)"
  failed=$((failed + 1))
fi
echo "build_backward: $failed failure(s)"
exit "$failed"
