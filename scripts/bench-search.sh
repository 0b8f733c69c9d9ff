#!/usr/bin/env bash
# Reproduces the console event search figures in BENCHMARKS.md: an index of
# 10,000,000 synthetic events filled through the indexer's insert path, then
# an interleaved mix of searches and the plots' aggregate queries.
#   scripts/bench-search.sh                          # 10M events, 60 rounds (~1,500 searches)
#   scripts/bench-search.sh --events 300000 --rounds 10   # a quick look
# Needs about 600 bytes of disk per event under target/bench-search (the
# index is deleted at the end unless --keep; --reuse queries a kept one).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p wardgate-bench
mkdir -p bench/results
exec target/release/wardgate-bench search --out bench/results/search.md "$@"
