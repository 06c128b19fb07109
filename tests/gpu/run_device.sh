#!/bin/bash
# Runs the GPU tests built by build.sh (in $1, default tests/gpu/bin) on a GPU
# machine: numerics of both reference kernels, the timing of every causal
# variant, compute-sanitizer memcheck/racecheck on small cases, and optionally
# an Nsight Compute profile and the SASS of the default kernel. Logs go to
# $OUT (default tests/gpu/out). Exit status: failures counted over the tests.
#
#   tests/gpu/run_device.sh [bin dir] [--no-sanitizer] [--ncu] [--sass] [--quick-sanitizer]
set -uo pipefail
bin=${1:-tests/gpu/bin}
shift || true
out=${OUT:-tests/gpu/out}
mkdir -p "$out"
sanitizer=1 ncu=0 sass=0
for a in "$@"; do
  case $a in
  --no-sanitizer) sanitizer=0 ;;
  --ncu) ncu=1 ;;
  --sass) sass=1 ;;
  --quick-sanitizer) sanitizer=2 ;;
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
step tests.log 300 "$bin/test_causal"
step tests.log 120 "$bin/test_table"
step tests.log 300 "$bin/test_causal_wgmma"
step tests.log 120 "$bin/test_table_wgmma"
for v in "$bin"/test_causal_*; do
  step bench.log 60 "$v" --bench-only
done
if [ "$ncu" = 1 ]; then
  # NCU_BINS: the binaries to profile (default test_causal); one launch each, with stall reasons.
  for b in ${NCU_BINS:-test_causal}; do
    step ncu.log 150 ncu -k attnc_forward_kernel -c 1 --section SpeedOfLight --section ComputeWorkloadAnalysis \
      --section MemoryWorkloadAnalysis --section WarpStateStats --section Occupancy \
      --metrics "regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio" "$bin/$b" --bench-only
  done
fi
if [ "$sass" = 1 ]; then
  cuobjdump -sass "$bin/test_causal" >"$out/sass_causal.txt" 2>&1
fi
if [ "$sanitizer" = 2 ]; then
  step sanitizer.log 150 compute-sanitizer --tool racecheck --error-exitcode 1 "$bin/test_causal" --quick --no-bench
  step sanitizer.log 150 compute-sanitizer --tool memcheck --error-exitcode 1 "$bin/test_causal" --quick --no-bench
fi
if [ "$sanitizer" = 1 ]; then
  step sanitizer.log 150 compute-sanitizer --tool memcheck --error-exitcode 1 "$bin/test_causal" --quick --no-bench
  step sanitizer.log 150 compute-sanitizer --tool memcheck --error-exitcode 1 "$bin/test_table" --quick --no-bench
  step sanitizer.log 150 compute-sanitizer --tool racecheck --error-exitcode 1 "$bin/test_table" --quick --no-bench
  step sanitizer.log 150 compute-sanitizer --tool racecheck --error-exitcode 1 "$bin/test_causal" --quick --no-bench
  for w in test_causal_wgmma test_table_wgmma; do
    step sanitizer.log 150 compute-sanitizer --tool memcheck --error-exitcode 1 "$bin/$w" --quick --no-bench
    step sanitizer.log 150 compute-sanitizer --tool racecheck --error-exitcode 1 "$bin/$w" --quick --no-bench
  done
fi
{
  echo "=== summary"
  grep -hE "^(PASS|FAIL|BENCH|kernel:|ALL PASSED|FAILED|SKIP|### exit)|ERROR SUMMARY|RACECHECK SUMMARY" \
    "$out"/tests.log "$out"/bench.log "$out"/sanitizer.log 2>/dev/null
  echo "failures: $failures"
} | tee -a "$out/summary.log"
exit "$failures"
