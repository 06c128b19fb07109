#!/usr/bin/env bash
# Makes bench/packages/<case>/ (CUDA kernel package + report.json) for every
# bench/specs/*.json, with attnc from BUILD_DIR (default build), for the
# H100 (--arch sm_90a: the Hopper wgmma forward where attn-tile allows it).
# Run where attnc is built; carry bench/packages to the GPU machine for
# bench.py.
set -euo pipefail
cd "$(dirname "$0")/.."
attnc=${BUILD_DIR:-build}/bin/attnc
out=bench/packages
rm -rf "$out" && mkdir -p "$out"
git rev-parse --short HEAD > "$out/COMMIT" 2>/dev/null || echo unknown > "$out/COMMIT"
for spec in bench/specs/*.json; do
  name=$(basename "$spec" .json)
  [[ "$name" == *_layout ]] && continue
  "$attnc" "$spec" --emit=package --target=cuda --arch=sm_90a -o "$out/$name"
  "$attnc" "$spec" --emit=report --json --arch=sm_90a -o "$out/$name/report.json"
done
echo "bench: packages in $out"
