#!/usr/bin/env bash
# Makes the CUDA kernel packages of the GPU test matrix into DIR (default
# build/gpu-packages): every mask family x MHA/GQA/MQA x bf16/fp16 x D 64/128,
# lengths left to launch time so that one kernel serves every length.
#
# Every package has the backward pass ("backward": true), with dQ through
# float32 atomics (the default); a subset also comes as a deterministic
# variant NAME_det ("deterministic": true: dQ by a separate pass, bitwise
# reproducible): every mask family x GQA x {bf16 D 128, fp16 D 64}, 16
# packages, each beside its atomic twin NAME, and 16 more NAME_det_wgmma
# (--arch sm_90a). BACKWARD=0 makes forward-only
# packages and no deterministic variants (for an attnc without the backward
# pass).
#
# Every package also comes as a Hopper variant NAME_wgmma (--arch sm_90a, for
# sm_90a GPUs only): where attn-tile picks wgmma (bands; the global and
# runtime tables here) the forward runs the wgmma mainloop and the backward
# (atomic dQ) a wgmma dK/dV kernel beside mma.sync query-grid kernels, table
# masks with a backward table of the dK/dV kernel's 64 x 128 tiles; the
# bigbird and composed tables keep mma.sync (their scattered blocks would
# make 128 x 128 tiles visit too many pairs).
set -euo pipefail
cd "$(dirname "$0")/../.."
attnc=${BUILD_DIR:-build}/bin/attnc
out=${1:-${BUILD_DIR:-build}/gpu-packages}
backward=${BACKWARD:-1}
rm -rf "$out" && mkdir -p "$out"
tmp=$(mktemp -d)
declare -A masks=(
  [full]='{"full": {}}'
  [causal]='{"causal": {}}'
  [window]='{"window": {"left": 100, "right": 37}}'
  [dilated]='{"window": {"left": 64, "right": 64, "dilation": 3}}'
  [global]='{"union": [{"window": {"left": 32, "right": 32}}, {"global": {"stride": 97, "offset": 5}}]}'
  [bigbird]='{"block_sparse": {"block": 64, "bigbird": {"band": 3, "random": 2, "global": 1, "seed": 3}}}'
  [runtime]='{"union": [{"causal": {}}, {"global": {"runtime": {"max": 8}}}]}'
  [composed]='{"intersect": [{"causal": {}}, {"union": [{"window": {"left": 200, "right": 0, "dilation": 2}}, {"global": {"tokens": [3, 40]}}]}]}'
)

# package NAME DTYPE D HQ HKV MASK EXTRA [FLAGS...]: writes the spec (EXTRA:
# more top-level fields, each with a leading comma) and compiles it into
# $out/NAME with attnc's FLAGS.
package() {
  printf '{"attnc": 1, "name": "%s", "dtype": "%s", "head_dim": %s, "heads": {"query": %s, "kv": %s}, "mask": %s%s}\n' \
    "$1" "$2" "$3" "$4" "$5" "$6" "$7" > "$tmp/$1.json"
  "$attnc" "$tmp/$1.json" --emit=package --target=cuda "${@:8}" -o "$out/$1"
}

extra=''
[[ $backward == 1 ]] && extra=', "backward": true'
for m in "${!masks[@]}"; do
  for heads in "8 8 mha" "8 2 gqa" "8 1 mqa"; do
    set -- $heads
    for dtype in bf16 fp16; do
      for d in 64 128; do
        name="${m}_$3_${dtype}_d$d"
        package "$name" "$dtype" "$d" "$1" "$2" "${masks[$m]}" "$extra"
        # The Hopper twin: a wgmma forward and dK/dV kernel.
        package "${name}_wgmma" "$dtype" "$d" "$1" "$2" "${masks[$m]}" "$extra" --arch=sm_90a
        # The deterministic twin of a subset.
        if [[ $backward == 1 && $3 == gqa && "$dtype$d" =~ ^(bf16128|fp1664)$ ]]; then
          package "${name}_det" "$dtype" "$d" "$1" "$2" "${masks[$m]}" "$extra, \"deterministic\": true"
          # And its Hopper twin (a wgmma dK/dV kernel under a band; tables
          # with deterministic dQ keep mma.sync).
          package "${name}_det_wgmma" "$dtype" "$d" "$1" "$2" "${masks[$m]}" "$extra, \"deterministic\": true" --arch=sm_90a
        fi
      done
    done
  done
done
rm -rf "$tmp"
echo "gpu tests: $(ls "$out" | wc -l) packages in $out"
