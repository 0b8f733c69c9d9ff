#!/usr/bin/env bash
# Reproduces the syslog export figures in BENCHMARKS.md: how long a backlog of
# 1,000,000 blocked events takes to catch up (so the rate a stream sustains), to
# a counting collector and to a local rsyslog, interleaved.
#   scripts/bench-export.sh                           # 1M events, 3 rounds per collector
#   scripts/bench-export.sh --events 100000 --rounds 1   # a quick look
# The MLLP data path with streaming on and off is scripts/bench-mllp.sh with
#   --targets wardgate,wardgate-syslog,wardgate-syslog-all
set -euo pipefail
cd "$(dirname "$0")/.."
command -v rsyslogd >/dev/null || [ -x /usr/sbin/rsyslogd ] || scripts/setup.sh
cargo build --release -p wardgate -p wardgate-bench
mkdir -p bench/results
exec target/release/wardgate-bench export --wardgate-bin target/release/wardgate \
  --out bench/results/export.md "$@"
