#!/usr/bin/env bash
# Installs what wardgate's tests need on a fresh Debian machine:
#   - Debian packages: tshark (cross-checks parsing), haproxy (benchmark baseline),
#     dcmtk (DICOM peers: echoscu, storescu, storescp), orthanc (the PACS; its
#     Debian service is not used, the tests run their own instance), and the
#     peers of the passive-analysis tests: curl (FTP and HTTP client), mosquitto
#     (MQTT broker; also the real broker behind the inline MQTT proxy's tests) and
#     mosquitto-clients (mosquitto_pub/mosquitto_sub as MQTT clients), smbclient (SMB client), telnetd (GNU inetutils); openssl
#     (checks the certificates wardgate's CA issues and the checkpoints
#     exported to syslog); libpcap-dev (builds live capture); prometheus (a
#     real Prometheus server scraping the gateway's metrics, and its promtool
#     checking the exposition; its Debian service is not used, the tests run
#     their own instance); rsyslog and rsyslog-gnutls (the syslog collector of
#     the export tests, over TCP and TLS), logrotate (rotates the EVE file in
#     its test); chromium and chromium-driver (the console's browser tests drive
#     Debian's Chromium with Playwright: no browser is ever downloaded, so never
#     `playwright install`);
#   - a Python venv in .venv with the real HL7 peers (hl7, hl7apy), the DICOM
#     peers (pynetdicom, pydicom and its test files), pytest, and PyYAML (reads
#     the vendored ECS field reference in tests/data/ecs), Playwright for Python
#     (drives the system Chromium in tests/interop/test_console.py), paho-mqtt
#     (MQTT 3.1.1 and 5 clients) and cryptography (signs MQTT commands with
#     Ed25519 in tests/interop/test_mqtt.py);
#   - cargo-fuzz, for the fuzz smoke run.
# Idempotent: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_need=()
command -v tshark >/dev/null 2>&1 || apt_need+=(tshark)
command -v haproxy >/dev/null 2>&1 || apt_need+=(haproxy)
command -v storescp >/dev/null 2>&1 || apt_need+=(dcmtk)
command -v Orthanc >/dev/null 2>&1 || [ -x /usr/sbin/Orthanc ] || apt_need+=(orthanc)
command -v curl >/dev/null 2>&1 || apt_need+=(curl)
command -v openssl >/dev/null 2>&1 || apt_need+=(openssl)
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || apt_need+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || apt_need+=(mosquitto-clients)
command -v smbclient >/dev/null 2>&1 || apt_need+=(smbclient)
command -v telnetd >/dev/null 2>&1 || [ -x /usr/sbin/telnetd ] || apt_need+=(telnetd)
# libpcap's headers and link library: `wardgate capture` reads the kernel's
# capture ring and drop counters through it.
[ -f /usr/include/pcap/pcap.h ] || apt_need+=(libpcap-dev)
command -v promtool >/dev/null 2>&1 || apt_need+=(prometheus)
# The export tests' collector: Debian's rsyslog, with its GnuTLS driver for RFC 5425.
[ -x /usr/sbin/rsyslogd ] || apt_need+=(rsyslog)
ls /usr/lib/*/rsyslog/lmnsd_gtls.so >/dev/null 2>&1 || apt_need+=(rsyslog-gnutls)
command -v logrotate >/dev/null 2>&1 || [ -x /usr/sbin/logrotate ] || apt_need+=(logrotate)
# The console's browser tests: Debian's Chromium, driven by Playwright.
[ -x /usr/bin/chromium ] || apt_need+=(chromium)
[ -x /usr/bin/chromedriver ] || apt_need+=(chromium-driver)
if ((${#apt_need[@]})); then
  echo "setup: installing Debian packages: ${apt_need[*]}"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  # tshark asks whether non-root users may capture; answer for it.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${apt_need[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import hl7, hl7apy, hl7parser, pytest, pynetdicom, pydicom, paho.mqtt, pyftpdlib, scapy, yaml, playwright.sync_api, cryptography" >/dev/null 2>&1; then
  echo "setup: installing Python peers into .venv"
  .venv/bin/pip install -q --disable-pip-version-check -r tests/interop/requirements.txt
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "setup: installing cargo-fuzz"
  cargo install -q cargo-fuzz --locked
fi
echo "setup: ok"
