#!/usr/bin/env bash
# Builds a Debian package of wardgate from a built binary, with dpkg-deb alone:
#   scripts/build-deb.sh [BINARY] [OUT_DIR]
# BINARY defaults to target/release/wardgate (run `cargo build --release -p
# wardgate` first); the package lands in OUT_DIR (default target/deb).
# Contents: /usr/bin/wardgate, the systemd units, /etc/wardgate/wardgate.toml
# (a conffile: edits survive upgrades), the docs and examples; postinst makes
# the `wardgate` system user and /var/lib/wardgate (0750).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-target/release/wardgate}"
out="${2:-target/deb}"
[ -x "$bin" ] || { echo "build-deb: no binary at $bin" >&2; exit 2; }
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
arch="$(dpkg --print-architecture)"
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
install -D -m 0755 "$bin" "$root/usr/bin/wardgate"
# Debug information stays out of the package (as Debian's dh_strip does).
if command -v strip >/dev/null 2>&1; then strip --strip-debug "$root/usr/bin/wardgate"; fi
install -D -m 0644 packaging/systemd/wardgate.service "$root/lib/systemd/system/wardgate.service"
install -D -m 0644 packaging/systemd/wardgate-capture@.service "$root/lib/systemd/system/wardgate-capture@.service"
install -D -m 0640 packaging/debian/wardgate.toml "$root/etc/wardgate/wardgate.toml"
install -d -m 0755 "$root/usr/share/doc/wardgate/examples"
install -m 0644 README.md ARCHITECTURE.md docs/*.md "$root/usr/share/doc/wardgate/"
install -m 0644 examples/*.toml "$root/usr/share/doc/wardgate/examples/"
install -d -m 0755 "$root/DEBIAN"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$root/DEBIAN/"
echo "/etc/wardgate/wardgate.toml" > "$root/DEBIAN/conffiles"
# The shared libraries the binary links (libpcap for live capture).
depends="libc6, libpcap0.8, adduser"
size="$(du -sk --exclude=DEBIAN "$root" | cut -f1)"
cat > "$root/DEBIAN/control" <<CONTROL
Package: wardgate
Version: $version
Architecture: $arch
Maintainer: wardgate maintainers <maintainers@wardgate.invalid>
Depends: $depends
Installed-Size: $size
Section: net
Priority: optional
Description: security gateway and monitor for connected medical devices
 wardgate sits in front of infusion pumps, monitors and imaging modalities:
 it speaks HL7 v2 over MLLP and DICOM, blocks clinically unsafe orders,
 wraps cleartext links in mutual TLS, records every decision in a
 tamper-evident audit log, and analyses captured traffic passively.
CONTROL
mkdir -p "$out"
deb="$out/wardgate_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zgzip --build "$root" "$deb" >/dev/null
echo "$deb"
