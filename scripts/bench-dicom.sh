#!/usr/bin/env bash
# Reproduces the DICOM C-STORE figures in BENCHMARKS.md: dcmtk storescu -> storescp
# directly, through HAProxy (TCP mode), a plain tokio relay and wardgate, interleaved.
#   scripts/bench-dicom.sh                    # 1000 x 100 KiB and 2 x 200 MiB, 7 rounds
#   scripts/bench-dicom.sh --rounds 1 --small-count 200
set -euo pipefail
cd "$(dirname "$0")/.."
command -v haproxy >/dev/null && command -v storescu >/dev/null || scripts/setup.sh
cargo build --release -p wardgate -p wardgate-bench
mkdir -p bench/results
exec target/release/wardgate-bench dicom --wardgate-bin target/release/wardgate \
  --out bench/results/dicom.md "$@"
