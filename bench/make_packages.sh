#!/usr/bin/env bash
# Makes bench/packages/<case>/ (CUDA kernel package + report.json) for every
# bench/specs/*.json, with attnc from BUILD_DIR (default build). Run where attnc
# is built; carry bench/packages to the GPU machine for bench.py.
set -euo pipefail
cd "$(dirname "$0")/.."
attnc=${BUILD_DIR:-build}/bin/attnc
out=bench/packages
rm -rf "$out" && mkdir -p "$out"
git rev-parse --short HEAD > "$out/COMMIT" 2>/dev/null || echo unknown > "$out/COMMIT"
for spec in bench/specs/*.json; do
  name=$(basename "$spec" .json)
  [[ "$name" == *_layout ]] && continue
  "$attnc" "$spec" --emit=package --target=cuda -o "$out/$name"
  "$attnc" "$spec" --emit=report --json -o "$out/$name/report.json"
done
echo "bench: packages in $out"
