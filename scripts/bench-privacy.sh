#!/usr/bin/env bash
# Reproduces "Privacy: what pseudonymisation costs (issue 23)" in BENCHMARKS.md:
# wardgate on a plain HL7 route and on a route with [route.privacy]
# mode = "pseudonymise", against direct, HAProxy (TCP mode) and a plain tokio
# relay, interleaved; 4 and 64 connections; CPU per message of each process.
# Once with the ~1 KB PCD-01 ORU^R01 of every MLLP figure, once with a ~650 B
# ADT^A01 (PID with two identifiers, name, address, NK1, PV1), each naming 1000
# patients per connection in turn.
#   scripts/bench-privacy.sh                          # both messages, 15 rounds x 2 s
#   scripts/bench-privacy.sh --rounds 3 --seconds 1   # a quick look
#   scripts/bench-privacy.sh --variant before-pseudonymise=/path/to/wardgate  # A/B
# Later options override the defaults below. The micro-benchmark of the
# transform alone is `cargo bench -p wardgate-privacy --bench transform`.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v haproxy >/dev/null || scripts/setup.sh
cargo build --release -p wardgate -p wardgate-bench
T="${CARGO_TARGET_DIR:-target}/release"
mkdir -p bench/results
for message in oru adt; do
  "$T/wardgate-bench" compare --wardgate-bin "$T/wardgate" \
    --targets direct,haproxy,tokio-relay,wardgate,wardgate-pseudonymise \
    --message "$message" --patients 1000 \
    --rounds 15 --seconds 2 --warmup 0.5 \
    --out "bench/results/privacy-$message.md" --json "bench/results/privacy-$message.json" "$@"
done
