#!/usr/bin/env bash
# Reproduces the MQTT figures in BENCHMARKS.md (issue #21): QoS 0 (paced and at
# full speed) and QoS 1 publishes from 100 and 1000 publishers, each from its own
# loopback address, through HAProxy (TCP mode), a plain tokio relay and wardgate
# to a mosquitto broker (and directly), interleaved; the subscribers are on the
# broker directly. Then memory per idle connection of each relay.
#   scripts/bench-mqtt.sh                           # 5 rounds x 3 s per mode (~10 minutes)
#   scripts/bench-mqtt.sh --rounds 1 --seconds 2 --clients 20 --idle-clients 20   # a smoke run
# Later options override the defaults below.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v haproxy >/dev/null && [ -x /usr/sbin/mosquitto ] || scripts/setup.sh
cargo build --release -p wardgate -p wardgate-bench
mkdir -p bench/results
exec target/release/wardgate-bench mqtt --wardgate-bin target/release/wardgate \
  --out bench/results/mqtt.md --json bench/results/mqtt.json "$@"
