#!/usr/bin/env bash
# Reproduces the TLS figures in BENCHMARKS.md: wardgate (listen_tls + upstream_tls,
# full inspection and audit) against direct, HAProxy (TLS on both sides) and a plain
# tokio-rustls relay, with the same certificates from wardgate's CA, interleaved:
# new TLS connections per second (4 and 16 clients, a full handshake each) and
# messages per second over persistent TLS connections (4 and 64).
#   scripts/bench-tls.sh                      # 5 s x 3 rounds
#   scripts/bench-tls.sh --seconds 2 --rounds 1
set -euo pipefail
cd "$(dirname "$0")/.."
command -v haproxy >/dev/null || scripts/setup.sh
cargo build --release -p wardgate -p wardgate-bench
mkdir -p bench/results
exec target/release/wardgate-bench tls --wardgate-bin target/release/wardgate \
  --out bench/results/tls.md --json bench/results/tls.json "$@"
