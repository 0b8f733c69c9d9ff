#!/usr/bin/env bash
# Reproduces the HL7/MLLP figures in BENCHMARKS.md: wardgate (full inspection and
# audit) against direct, HAProxy (TCP mode) and a plain tokio relay, interleaved.
#   scripts/bench-mllp.sh                      # 4 and 64 connections, 5 s x 3 rounds
#   scripts/bench-mllp.sh --seconds 2 --rounds 1
set -euo pipefail
cd "$(dirname "$0")/.."
command -v haproxy >/dev/null || scripts/setup.sh
cargo build --release -p wardgate -p wardgate-bench
mkdir -p bench/results
exec target/release/wardgate-bench compare --wardgate-bin target/release/wardgate \
  --out bench/results/mllp.md --json bench/results/mllp.json "$@"
