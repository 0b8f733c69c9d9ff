#!/usr/bin/env bash
# Reproduces the HL7/MLLP figures in BENCHMARKS.md: wardgate (full inspection and
# audit) against direct, HAProxy (TCP mode) and a plain tokio relay, interleaved.
#   scripts/bench-mllp.sh                      # 4 and 64 connections, 15 rounds x 2 s
#   scripts/bench-mllp.sh --seconds 1 --rounds 3  # a quick look
# Later options override the defaults below. On a shared host, read the "paired"
# columns: the median over rounds of each round's ratio to HAProxy in that round.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v haproxy >/dev/null || scripts/setup.sh
cargo build --release -p wardgate -p wardgate-bench
mkdir -p bench/results
exec target/release/wardgate-bench compare --wardgate-bin target/release/wardgate \
  --rounds 15 --seconds 2 --warmup 0.5 \
  --out bench/results/mllp.md --json bench/results/mllp.json "$@"
