#!/bin/bash
# Runs the backward GPU tests built by build_backward.sh (in $1, default
# tests/gpu/bin-backward) on a GPU machine: numerics and determinism of every
# test_bwd_* variant, the timing of the bench_* variants beside
# FlashAttention-2's backward (sdpa_backward_peer.py), compute-sanitizer
# memcheck and racecheck on small cases of an atomic and a deterministic
# variant, and optionally an Nsight Compute profile of the dK/dV kernel. Logs go
# to $OUT (default tests/gpu/out-backward). Exit status: failures counted over
# the steps.
#
#   tests/gpu/run_backward_device.sh [bin dir] [--no-tests] [--no-bench] [--no-sanitizer] [--no-peer] [--ncu]
set -uo pipefail
bin=${1:-tests/gpu/bin-backward}
shift || true
out=${OUT:-tests/gpu/out-backward}
mkdir -p "$out"
tests=1 bench=1 sanitizer=1 peer=1 ncu=0
for a in "$@"; do
  case $a in
  --no-tests) tests=0 ;;
  --no-bench) bench=0 ;;
  --no-sanitizer) sanitizer=0 ;;
  --no-peer) peer=0 ;;
  --ncu) ncu=1 ;;
  esac
done
failures=0
step() { # log name, time limit (s), command...
  local log=$1 limit=$2
  shift 2
  echo "### $*" | tee -a "$out/$log"
  timeout "$limit" "$@" 2>&1 | tee -a "$out/$log"
  local rc=${PIPESTATUS[0]}
  [ "$rc" -eq 0 ] || { echo "### exit $rc: $*" | tee -a "$out/$log"; failures=$((failures + 1)); }
}

nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw \
  --format=csv | tee "$out/summary.log"
[ -f "$bin/ptxas.log" ] && cp "$bin/ptxas.log" "$out/ptxas.log"
if [ "$tests" = 1 ]; then
  for t in "$bin"/test_bwd_*; do
    case $t in *bench_*) continue ;; esac
    step tests.log 120 "$t"
  done
fi
if [ "$bench" = 1 ]; then
  for t in "$bin"/test_bwd_bench_*; do
    [ -x "$t" ] && step bench.log 60 "$t" --bench-only
  done
fi
if [ "$peer" = 1 ]; then
  PYTHONUNBUFFERED=1 step bench.log 150 python3 tests/gpu/sdpa_backward_peer.py
fi
if [ "$ncu" = 1 ]; then
  for b in ${NCU_BINS:-test_bwd_bench_causal_d128_atomic}; do
    step ncu.log 150 ncu -k regex:attnc_backward_dkdv_kernel -c 1 --section SpeedOfLight \
      --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis --section WarpStateStats \
      --section Occupancy --metrics "regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio" \
      "$bin/$b" --bench-only
  done
fi
if [ "$sanitizer" = 1 ]; then
  for b in ${SANITIZE_BINS:-test_bwd_causal_bf16_d128_gqa_atomic test_bwd_table_fp16_d64_gqa_det}; do
    step sanitizer.log 150 compute-sanitizer --tool memcheck --error-exitcode 1 "$bin/$b" --sanitize
    step sanitizer.log 150 compute-sanitizer --tool racecheck --error-exitcode 1 "$bin/$b" --sanitize
  done
fi
{
  echo "=== summary"
  grep -hE "^(FAIL|BENCH|PEER|kernel |ALL PASSED|FAILED|SKIP|INFO|### exit)|ERROR SUMMARY|RACECHECK SUMMARY|bitwise" \
    "$out"/tests.log "$out"/bench.log "$out"/sanitizer.log 2>/dev/null
  echo "PASS lines: $(grep -h '^PASS' "$out"/tests.log 2>/dev/null | wc -l)"
  echo "failures: $failures"
} | tee -a "$out/summary.log"
exit "$failures"
