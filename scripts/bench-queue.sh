#!/usr/bin/env bash
# Reproduces the store-and-forward figures in BENCHMARKS.md: pass-through and
# store-and-forward routes of one wardgate, interleaved, then start-up and drain
# with a 100,000-message backlog.
#   scripts/bench-queue.sh                        # 4 and 64 connections, 5 s x 3 rounds
#   scripts/bench-queue.sh --seconds 2 --rounds 1 --backlog 20000
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p wardgate -p wardgate-bench
mkdir -p bench/results
exec target/release/wardgate-bench queue --wardgate-bin target/release/wardgate \
  --out bench/results/queue.md "$@"
