#!/usr/bin/env bash
# Reproduces the passive-analysis figures in BENCHMARKS.md: a generated capture of
# mixed medical traffic (HL7 over MLLP with ACKs, DICOM C-STOREs of CT images, MQTT
# vital signs; about 1 GiB), then wardgate analyze, tshark (HL7 and DICOM
# dissectors on) and Suricata on that same file, each pinned to one core,
# interleaved over rounds.
#   scripts/bench-capture.sh                 # 1024 MiB, 3 rounds
#   MIB=2048 scripts/bench-capture.sh --rounds 1
set -euo pipefail
cd "$(dirname "$0")/.."
command -v tshark >/dev/null || scripts/setup.sh
if ! command -v suricata >/dev/null; then
  # Suricata comes from bookworm-backports; the mirror is the one this machine
  # already uses for bookworm.
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" \
    | $SUDO tee /etc/apt/sources.list.d/wardgate-backports.sources >/dev/null
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq -t bookworm-backports suricata >/dev/null
fi
command -v /usr/bin/time >/dev/null || { SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"; $SUDO apt-get install -y -qq time >/dev/null; }
cargo build --release -p wardgate -p wardgate-bench
dir=target/bench-capture
mkdir -p "$dir" bench/results
cap="$dir/mixed-${MIB:=1024}.pcap"
[ -f "$cap" ] || target/release/wardgate-bench gen-capture --out "$cap" --mib "$MIB"
exec target/release/wardgate-bench analyze --capture "$cap" --wardgate-bin target/release/wardgate \
  --out bench/results/capture.md "$@"
