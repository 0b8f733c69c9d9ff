#!/usr/bin/env bash
# Reproduces the figures of "Privacy: DICOM de-identification in the proxy
# (issue 23)" in BENCHMARKS.md:
#  1. C-STORE through a de-identifying route against the plain route, direct,
#     HAProxy (TCP mode) and a plain tokio relay, interleaved round by round:
#     dcmtk storescu -> storescp for throughput and CPU per object, the bench's
#     own SCU for per-object latency; CT objects with a realistic header.
#  2. The de-identifier alone (Deidentifier::feed/finish in memory) and dicognito
#     (Python, in process, files in memory) on the same objects, and on pydicom's
#     CT_small.dcm.
#   scripts/bench-privacy-dicom.sh                     # 7 rounds, 1000 small, 24 large
#   scripts/bench-privacy-dicom.sh --rounds 1 --small-count 200 --large-count 4
# Extra arguments go to step 1. Host load is printed before and after each step.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v haproxy >/dev/null && command -v storescu >/dev/null && [ -x .venv/bin/python ] \
  || scripts/setup.sh
target="${CARGO_TARGET_DIR:-target}"
cargo build --release -p wardgate -p wardgate-bench
bench="$target/release/wardgate-bench"
objects="$target/bench-dicom-privacy"
rm -rf "$objects"
mkdir -p bench/results "$objects"

uptime
"$bench" dicom --privacy --wardgate-bin "$target/release/wardgate" \
  --small-count 1000 --large-count 24 --large-frames 16 \
  --objects-dir "$objects" --out bench/results/dicom-privacy.md "$@"
uptime

ct_small=$(.venv/bin/python -c 'from pydicom.data import get_testdata_file; print(get_testdata_file("CT_small.dcm"))')
files=("$objects/small/00000.dcm" "$objects/large/00000.dcm" "$ct_small")
"$bench" deid --seconds 3 --out bench/results/deid-alone.md "${files[@]}"
uptime
.venv/bin/python bench/dicognito_bench.py --seconds 3 --out bench/results/deid-dicognito.md "${files[@]}"
uptime
rm -rf "$objects"
