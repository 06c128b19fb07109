#!/usr/bin/env bash
# Makes the CUDA kernel packages of the GPU test matrix into DIR (default
# build/gpu-packages): every mask family x MHA/GQA/MQA x bf16/fp16 x D 64/128,
# lengths left to launch time so that one kernel serves every length.
set -euo pipefail
cd "$(dirname "$0")/../.."
attnc=${BUILD_DIR:-build}/bin/attnc
out=${1:-${BUILD_DIR:-build}/gpu-packages}
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
for m in "${!masks[@]}"; do
  for heads in "8 8 mha" "8 2 gqa" "8 1 mqa"; do
    set -- $heads
    for dtype in bf16 fp16; do
      for d in 64 128; do
        name="${m}_$3_${dtype}_d$d"
        printf '{"attnc": 1, "name": "%s", "dtype": "%s", "head_dim": %s, "heads": {"query": %s, "kv": %s}, "mask": %s}\n' \
          "$name" "$dtype" "$d" "$1" "$2" "${masks[$m]}" > "$tmp/$name.json"
        "$attnc" "$tmp/$name.json" --emit=package --target=cuda -o "$out/$name"
      done
    done
  done
done
rm -rf "$tmp"
echo "gpu tests: $(ls "$out" | wc -l) packages in $out"
