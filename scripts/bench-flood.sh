#!/usr/bin/env bash
# Reproduces the flood figures in BENCHMARKS.md: a well-behaved device's latency
# through wardgate with and without a flood from another device, and against a
# wardgate whose flood limits are lifted, interleaved.
#   scripts/bench-flood.sh                        # 3 rounds x 5 s per variant (~1 minute)
#   scripts/bench-flood.sh --rounds 2 --seconds 3
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p wardgate -p wardgate-bench
mkdir -p bench/results
exec target/release/wardgate-bench flood --wardgate-bin target/release/wardgate \
  --out bench/results/flood.md --json bench/results/flood.json "$@"
