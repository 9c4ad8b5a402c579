#!/usr/bin/env bash
# Build the shipping berth-monitor, the idle half of the per-container monitor (one runs per
# container): static and non-PIE, so it maps no C library and relocates nothing. Measured with
# 200 idle containers (bench/engine/run.py): ~0.51 MiB RSS and ~0.08 MiB USS each (the dynamic
# release build, 25 containers: ~0.59 and ~0.15). `berth` looks for it next to itself.
# Output: target/small/berth-monitor
set -euo pipefail
cd "$(dirname "$0")/.."
cargo rustc --profile small -p berth-monitor --bin berth-monitor -- \
  -C target-feature=+crt-static -C relocation-model=static
echo "target/small/berth-monitor"
