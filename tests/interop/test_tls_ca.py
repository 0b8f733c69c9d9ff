"""The built-in certificate authority (`wardgate ca`, `wardgate device`), checked
with OpenSSL: issued certificates verify against the CA, carry the device id, keep
their keys owner-only, and fail verification once revoked (CRL checked)."""
import json
import stat
import subprocess

from conftest import require_tool, wardgate_bin
from test_analyze import site


def wg(cfg, *args, check=True):
    return subprocess.run([wardgate_bin(), *args, "--config", str(cfg)], capture_output=True, text=True,
                          timeout=60, check=check)


def verify(openssl, ca_dir, cert, crl=False):
    args = [openssl, "verify", "-CAfile", str(ca_dir / "ca.crt")]
    if crl:
        args += ["-crl_check", "-CRLfile", str(ca_dir / "ca.crl")]
    return subprocess.run([*args, str(cert)], capture_output=True, text=True, timeout=30)


def test_enrolled_certificates_verify_with_openssl_until_revoked(tmp_path):
    openssl = require_tool("openssl")
    cfg = site(tmp_path)
    wg(cfg, "ca", "init", "--name", "St Elsewhere")
    ca_dir = tmp_path / "data" / "tls"
    assert stat.S_IMODE((ca_dir / "ca.key").stat().st_mode) == 0o600
    # A second init never replaces the CA.
    assert wg(cfg, "ca", "init", check=False).returncode == 2
    out = tmp_path / "issued"
    wg(cfg, "device", "enroll", "ehr", "--out", str(out))
    wg(cfg, "device", "enroll", "pump-server", "--out", str(out))
    assert stat.S_IMODE((out / "ehr.key").stat().st_mode) == 0o600
    # Only declared devices get an identity.
    r = wg(cfg, "device", "enroll", "laptop", "--out", str(out), check=False)
    assert r.returncode == 2 and "not declared" in r.stderr

    for dev in ("ehr", "pump-server"):
        r = verify(openssl, ca_dir, out / f"{dev}.crt", crl=True)
        assert r.returncode == 0 and ": OK" in r.stdout, r.stdout + r.stderr
    text = subprocess.run([openssl, "x509", "-in", str(out / "ehr.crt"), "-noout", "-text"],
                          capture_output=True, text=True, check=True).stdout
    assert "URI:urn:wardgate:device:ehr" in text
    assert "TLS Web Client Authentication" in text
    # The key matches the certificate.
    pub_cert = subprocess.run([openssl, "x509", "-in", str(out / "ehr.crt"), "-noout", "-pubkey"],
                              capture_output=True, text=True, check=True).stdout
    pub_key = subprocess.run([openssl, "pkey", "-in", str(out / "ehr.key"), "-pubout"],
                             capture_output=True, text=True, check=True).stdout
    assert pub_cert == pub_key

    wg(cfg, "device", "revoke", "ehr")
    r = verify(openssl, ca_dir, out / "ehr.crt", crl=True)
    assert r.returncode != 0 and "revoked" in (r.stdout + r.stderr), r.stdout + r.stderr
    # The other device is untouched, and the CRL itself verifies against the CA.
    assert verify(openssl, ca_dir, out / "pump-server.crt", crl=True).returncode == 0
    r = subprocess.run([openssl, "crl", "-in", str(ca_dir / "ca.crl"), "-CAfile", str(ca_dir / "ca.crt"),
                        "-noout"], capture_output=True, text=True)
    assert r.returncode == 0 and "verify OK" in (r.stdout + r.stderr), r.stdout + r.stderr

    # No gateway serving this data_dir: reload says so rather than signalling anyone.
    r = wg(cfg, "reload", check=False)
    assert r.returncode == 2 and "no wardgate is serving" in r.stderr, r.stderr

    shown = json.loads(wg(cfg, "ca", "show", "--json").stdout)
    assert "St Elsewhere" in shown["subject"]
    status = {c["device"]: c.get("revoked") for c in shown["issued"]}
    assert status["ehr"] and status["pump-server"] is None
