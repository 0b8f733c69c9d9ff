"""MLLP over TLS on a route's listening side, with the built-in CA: Python's `ssl`
module carrying the `hl7` package's messages, and OpenSSL's s_client for what a
well-behaved client would never do (no certificate, an old protocol version).
Identity rests on the client certificate, not on the source address."""
import socket
import ssl
import subprocess
import time

import hl7

from conftest import SITE, Gateway, Upstream, require_tool, wardgate_bin
from test_hl7_mllp import SB, EB, observation, unframe

# The interop site, plus a device for the gateway's own certificate and TLS on the
# route's listener (a [route.listen_tls] table right after its route's keys).
TLS_SITE = SITE.replace(
    '[[device]]\nid = "ehr"',
    '[[device]]\nid = "wardgate-gw"\nkind = "gateway"\naddresses = ["127.0.0.1"]\n\n[[device]]\nid = "ehr"',
    1,
).replace(
    'drug_library = "adult-icu"\n\n[[drug_library]]',
    'drug_library = "adult-icu"\n\n[route.listen_tls]\n'
    'cert = "{data_dir}/../certs/wardgate-gw.crt"\nkey = "{data_dir}/../certs/wardgate-gw.key"\n\n[[drug_library]]',
    1,
)
assert "[route.listen_tls]" in TLS_SITE and 'id = "wardgate-gw"' in TLS_SITE


def wg(cfg, *args):
    return subprocess.run([wardgate_bin(), *args, "--config", str(cfg)], capture_output=True, text=True,
                          timeout=60, check=True)


def setup_ca(tmp_path):
    """A config for the CA commands (same data_dir as the gateway's), the CA, and
    certificates for the gateway and three devices."""
    cfg = tmp_path / "ca.toml"
    cfg.write_text(TLS_SITE.format(data_dir=tmp_path / "data", listen_port=1, upstream_port=1, max_frame=65536))
    wg(cfg, "ca", "init", "--name", "test")
    for dev in ("wardgate-gw", "ehr", "lab-analyser"):
        wg(cfg, "device", "enroll", dev, "--out", str(tmp_path / "certs"))
    return cfg


def client_ctx(tmp_path, device=None):
    ctx = ssl.create_default_context(cafile=str(tmp_path / "data" / "tls" / "ca.crt"))
    if device:
        ctx.load_cert_chain(str(tmp_path / "certs" / f"{device}.crt"), str(tmp_path / "certs" / f"{device}.key"))
    return ctx


def send_tls(gw, tmp_path, device, text, source="127.0.0.2"):
    raw = socket.create_connection(gw.addr, timeout=10, source_address=(source, 0))
    with client_ctx(tmp_path, device).wrap_socket(raw, server_hostname="wardgate-gw") as s:
        s.sendall(SB + text.encode() + EB)
        buf = b""
        while not buf.endswith(EB):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        return unframe(buf)


def events_with(gw, rule, timeout=5):
    deadline = time.monotonic() + timeout
    while True:
        evs = [e for e in gw.events() if e.get("rule", {}).get("id") == rule]
        if evs or time.monotonic() > deadline:
            return evs
        time.sleep(0.1)


def refused(gw, tmp_path, device, source="127.0.0.2"):
    """True when the gateway ends the connection without answering a message."""
    try:
        send_tls(gw, tmp_path, device, observation("NO"), source)
    except (ssl.SSLError, ConnectionError, AssertionError, OSError):
        return True
    return False


def test_mllp_over_tls_identity_from_the_certificate_and_revocation(tmp_path):
    up = Upstream()
    setup_ca(tmp_path)
    gw = Gateway(tmp_path, up.port, site=TLS_SITE)
    try:
        # The EHR's certificate, from an address that is not the EHR's: allowed,
        # recorded as the EHR (identity rests on the certificate).
        ack = send_tls(gw, tmp_path, "ehr", observation("TLS-1"), source="127.0.0.9")
        assert hl7.parse(ack).segment("MSA")[1][0] == "AA"
        assert up.received and b"TLS-1" in up.received[-1]
        ok = [e for e in gw.events() if e.get("wardgate", {}).get("hl7", {}).get("control_id") == "TLS-1"]
        assert ok and ok[0]["wardgate"]["source_device"] == "ehr" and ok[0]["source"]["ip"] == "127.0.0.9"
        # ...and alerted: the EHR's key in use from another address.
        moved = events_with(gw, "WG-TLS-004")
        assert len(moved) == 1 and moved[0]["event"]["action"] == "alerted", moved
        assert "127.0.0.9" in moved[0]["event"]["reason"] and '"ehr"' in moved[0]["event"]["reason"]
        # From the EHR's own address: nothing to say.
        send_tls(gw, tmp_path, "ehr", observation("TLS-2"), source="127.0.0.2")
        assert len(events_with(gw, "WG-TLS-004")) == 1

        # No client certificate: refused in the handshake, with the reason.
        assert refused(gw, tmp_path, None)
        ev = events_with(gw, "WG-TLS-001")
        assert ev and "no certificate" in ev[-1]["event"]["reason"]

        # A device that is enrolled but not a sender on this route.
        assert refused(gw, tmp_path, "lab-analyser", source="127.0.0.2")
        assert events_with(gw, "WG-ACCESS-002")

        # Revoked: the next connection is refused, without a restart.
        wg(gw.config, "device", "revoke", "ehr")
        time.sleep(0.05)
        assert refused(gw, tmp_path, "ehr")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if any("revoked" in e["event"]["reason"] for e in events_with(gw, "WG-TLS-001")):
                break
            time.sleep(0.1)
        assert any("revoked" in e["event"]["reason"] for e in events_with(gw, "WG-TLS-001"))
        assert b"NO" not in b"".join(up.received)
    finally:
        gw.stop()
        up.stop()


def test_a_route_can_refuse_a_certificate_from_another_address(tmp_path):
    up = Upstream()
    setup_ca(tmp_path)
    site = TLS_SITE.replace("[route.listen_tls]\n", "[route.listen_tls]\nrequire_device_address = true\n", 1)
    gw = Gateway(tmp_path, up.port, site=site)
    try:
        assert refused(gw, tmp_path, "ehr", source="127.0.0.9")
        ev = events_with(gw, "WG-TLS-004")
        assert ev and ev[-1]["event"]["action"] == "blocked", ev
        assert "requires the device's address" in ev[-1]["event"]["reason"]
        ack = send_tls(gw, tmp_path, "ehr", observation("TLS-HOME"), source="127.0.0.2")
        assert hl7.parse(ack).segment("MSA")[1][0] == "AA"
        assert b"NO" not in b"".join(up.received)
    finally:
        gw.stop()
        up.stop()


def test_openssl_old_protocols_and_foreign_certificates_are_refused(tmp_path):
    openssl = require_tool("openssl")
    up = Upstream()
    setup_ca(tmp_path)
    gw = Gateway(tmp_path, up.port, site=TLS_SITE)
    try:
        host = f"{gw.addr[0]}:{gw.addr[1]}"
        ca = str(tmp_path / "data" / "tls" / "ca.crt")
        ehr = [ "-cert", str(tmp_path / "certs" / "ehr.crt"), "-key", str(tmp_path / "certs" / "ehr.key")]

        def s_client(*args):
            return subprocess.run([openssl, "s_client", "-connect", host, "-CAfile", ca, "-verify_return_error",
                                   "-servername", "wardgate-gw", *args], input="", capture_output=True, text=True,
                                  timeout=30)

        # TLS 1.3 and 1.2 with the EHR's certificate: the server certificate verifies.
        for v in ("-tls1_3", "-tls1_2"):
            r = s_client(v, *ehr)
            assert "Verify return code: 0 (ok)" in r.stdout, r.stdout + r.stderr
        # TLS 1.1 (a downgrade attempt) is refused.
        r = s_client("-tls1_1", *ehr)
        assert "Cipher is (NONE)" in r.stdout or r.returncode != 0
        # A certificate from another CA is refused.
        foreign_key = tmp_path / "foreign.key"
        foreign_crt = tmp_path / "foreign.crt"
        subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", str(foreign_key), "-out", str(foreign_crt), "-days", "1", "-subj", "/CN=ehr",
                        "-addext", "subjectAltName=URI:urn:wardgate:device:ehr",
                        "-addext", "basicConstraints=critical,CA:FALSE", "-addext", "extendedKeyUsage=clientAuth"], check=True, capture_output=True)
        s_client("-cert", str(foreign_crt), "-key", str(foreign_key))
        reasons = [e["event"]["reason"] for e in events_with(gw, "WG-TLS-001")]
        assert any("not issued by the configured CA" in r for r in reasons), reasons
        assert any("TLS version below 1.2" in r or "acceptable" in r for r in reasons), reasons
    finally:
        gw.stop()
        up.stop()


def test_openssl_offering_only_weak_tls12_cipher_suites_is_refused_with_the_reason(tmp_path):
    """A client with a valid enrolled certificate that offers only weak or legacy
    TLS 1.2 suites (no forward secrecy, or no AEAD) gets no handshake, and the
    WG-TLS-001 event says why; the same client with OpenSSL's default suites gets in."""
    openssl = require_tool("openssl")
    up = Upstream()
    setup_ca(tmp_path)
    gw = Gateway(tmp_path, up.port, site=TLS_SITE)
    try:
        host = f"{gw.addr[0]}:{gw.addr[1]}"
        ca = str(tmp_path / "data" / "tls" / "ca.crt")
        ehr = ["-cert", str(tmp_path / "certs" / "ehr.crt"), "-key", str(tmp_path / "certs" / "ehr.key")]

        def s_client(*args):
            return subprocess.run([openssl, "s_client", "-connect", host, "-CAfile", ca, "-verify_return_error",
                                   "-servername", "wardgate-gw", "-tls1_2", *ehr, *args], input="",
                                  capture_output=True, text=True, timeout=30)

        def offered(ciphers):
            """The suites this OpenSSL really offers for a cipher string (3DES, for
            one, is often compiled out): the test must not pass on an empty offer."""
            r = subprocess.run([openssl, "ciphers", "-s", "-tls1_2", ciphers], capture_output=True, text=True)
            return r.stdout.strip().split(":") if r.returncode == 0 and r.stdout.strip() else []

        def refusals():
            return [e["event"]["reason"] for e in events_with(gw, "WG-TLS-001")]

        # RSA key exchange only (no forward secrecy; CBC and GCM): no ECDHE offered.
        no_pfs = "AES128-SHA:AES256-SHA:AES128-GCM-SHA256:DES-CBC3-SHA"
        assert offered(no_pfs), f"this OpenSSL offers none of {no_pfs}"
        r = s_client("-cipher", no_pfs)
        assert r.returncode != 0 or "Cipher is (NONE)" in r.stdout, r.stdout + r.stderr
        deadline = time.monotonic() + 5
        while not any("no key exchange in common" in x for x in refusals()) and time.monotonic() < deadline:
            time.sleep(0.1)
        reasons = refusals()
        assert any("no key exchange in common" in x and "RSA key exchange" in x for x in reasons), reasons

        # ECDHE, but CBC with SHA-1 (no AEAD): no cipher suite in common.
        no_aead = "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:AES128-SHA"
        assert any(c.startswith("ECDHE-") for c in offered(no_aead)), f"this OpenSSL offers none of {no_aead}"
        r = s_client("-cipher", no_aead)
        assert r.returncode != 0 or "Cipher is (NONE)" in r.stdout, r.stdout + r.stderr
        deadline = time.monotonic() + 5
        while not any("no cipher suite in common" in x for x in refusals()) and time.monotonic() < deadline:
            time.sleep(0.1)
        reasons = refusals()
        assert any("no cipher suite in common" in x and "weak or legacy" in x for x in reasons), reasons
        # Nothing reached the upstream.
        assert not up.received

        # Control: the same client with OpenSSL's default suites completes the
        # handshake over TLS 1.2 with an ECDHE AEAD suite.
        before = len(refusals())
        r = s_client()
        assert "Verify return code: 0 (ok)" in r.stdout, r.stdout + r.stderr
        assert "Cipher is (NONE)" not in r.stdout, r.stdout
        suite = [line for line in r.stdout.splitlines() if "Cipher is" in line]
        assert suite and "ECDHE" in suite[0] and ("GCM" in suite[0] or "CHACHA20" in suite[0]), suite
        time.sleep(0.3)
        assert len(refusals()) == before, refusals()
    finally:
        gw.stop()
        up.stop()


def test_certificates_close_to_expiry_raise_an_alert_at_start(tmp_path):
    up = Upstream()
    cfg = setup_ca(tmp_path)
    wg(cfg, "device", "enroll", "pump-server", "--out", str(tmp_path / "short"), "--days", "2")
    gw = Gateway(tmp_path, up.port, site=TLS_SITE)
    try:
        alerts = events_with(gw, "WG-TLS-003")
        reasons = [e["event"]["reason"] for e in alerts]
        assert any('"pump-server"' in r for r in reasons), reasons
        # The year-long certificates are not reported with the default 30-day window.
        assert not any('"ehr"' in r for r in reasons), reasons
    finally:
        gw.stop()
        up.stop()


class TlsUpstream(Upstream):
    """The `hl7` package's MLLP server behind Python's `ssl`: the pump server,
    with the certificate wardgate's CA issued to it, requiring a client
    certificate from the same CA."""

    def __init__(self, tmp_path, **kw):
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(tmp_path / "data" / "tls" / "ca.crt"))
        ctx.load_cert_chain(str(tmp_path / "certs" / "pump-server.crt"), str(tmp_path / "certs" / "pump-server.key"))
        ctx.verify_mode = ssl.CERT_REQUIRED
        self.ctx = ctx
        super().__init__(**kw)

    async def _start(self):
        return await hl7.mllp.start_hl7_server(self._handle, host=self.host, port=self.want_port,
                                               reuse_address=True, ssl=self.ctx)


UP_TLS = """
[route.upstream_tls]
server_name = "{name}"
cert = "{data_dir}/../certs/wardgate-gw.crt"
key = "{data_dir}/../certs/wardgate-gw.key"
"""


def up_tls_site(name):
    return TLS_SITE.replace("\n\n[[drug_library]]", UP_TLS.replace("{name}", name) + "\n[[drug_library]]", 1)


def test_tls_towards_the_upstream_verifies_its_certificate_and_name(tmp_path):
    cfg = setup_ca(tmp_path)
    wg(cfg, "device", "enroll", "pump-server", "--out", str(tmp_path / "certs"))
    up = TlsUpstream(tmp_path)
    gw = Gateway(tmp_path, up.port, site=up_tls_site("pump-server"))
    try:
        ack = send_tls(gw, tmp_path, "ehr", observation("UP-TLS-1"))
        assert hl7.parse(ack).segment("MSA")[1][0] == "AA"
        assert up.received and b"UP-TLS-1" in up.received[-1]
    finally:
        gw.stop()
    # The same upstream under a name its certificate does not carry: nothing is
    # sent to it; the sender is told to retry (AE) and the reason is recorded.
    (tmp_path / "data" / "wardgate.lock").unlink(missing_ok=True)
    gw = Gateway(tmp_path, up.port, site=up_tls_site("imposter"))
    try:
        before = len(up.received)
        ack = send_tls(gw, tmp_path, "ehr", observation("UP-TLS-2"))
        assert hl7.parse(ack).segment("MSA")[1][0] == "AE"
        assert len(up.received) == before
        reasons = [e["event"]["reason"] for e in gw.events() if e.get("rule", {}).get("id") == "WG-UP-001"]
        assert any("not valid for the configured server_name" in r for r in reasons), reasons
    finally:
        gw.stop()
        up.stop()


def test_reload_swaps_certificates_without_dropping_established_connections(tmp_path):
    import shutil

    up = Upstream()
    cfg = setup_ca(tmp_path)
    gw = Gateway(tmp_path, up.port, site=TLS_SITE)
    try:
        raw = socket.create_connection(gw.addr, timeout=10, source_address=("127.0.0.2", 0))
        a = client_ctx(tmp_path, "ehr").wrap_socket(raw, server_hostname="wardgate-gw")
        first = a.getpeercert(binary_form=True)

        def on_a(cid):
            a.sendall(SB + observation(cid).encode() + EB)
            buf = b""
            while not buf.endswith(EB):
                buf += a.recv(65536)
            return hl7.parse(unframe(buf)).segment("MSA")[1][0]

        assert on_a("HUP-1") == "AA"
        # A new certificate for the gateway replaces the files in place.
        wg(cfg, "device", "enroll", "wardgate-gw", "--out", str(tmp_path / "renewed"))
        for ext in ("crt", "key"):
            shutil.copyfile(tmp_path / "renewed" / f"wardgate-gw.{ext}", tmp_path / "certs" / f"wardgate-gw.{ext}")
        # The admin command (it sends the running gateway a SIGHUP).
        wg(gw.config, "reload")
        time.sleep(0.3)
        raw = socket.create_connection(gw.addr, timeout=10, source_address=("127.0.0.2", 0))
        with client_ctx(tmp_path, "ehr").wrap_socket(raw, server_hostname="wardgate-gw") as b:
            assert b.getpeercert(binary_form=True) != first
        # The connection opened before the reload carries on.
        assert on_a("HUP-2") == "AA"
        a.close()
        assert [e for e in gw.events() if e["event"]["action"] == "reloaded"]
    finally:
        gw.stop()
        up.stop()


def test_upstream_certificates_from_another_ca_or_revoked_are_refused(tmp_path):
    openssl = require_tool("openssl")
    from conftest import free_port, wait_port

    cfg = setup_ca(tmp_path)
    wg(cfg, "device", "enroll", "pump-server", "--out", str(tmp_path / "certs"))
    # 1. OpenSSL's s_server with a certificate for the right name from another CA.
    key, crt = tmp_path / "imposter.key", tmp_path / "imposter.crt"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(crt), "-days", "1", "-subj", "/CN=pump-server",
                    "-addext", "subjectAltName=DNS:pump-server", "-addext", "basicConstraints=critical,CA:FALSE"],
                   check=True, capture_output=True)
    port = free_port("127.0.0.3")
    server = subprocess.Popen([openssl, "s_server", "-accept", f"127.0.0.3:{port}", "-cert", str(crt), "-key", str(key),
                               "-quiet"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port("127.0.0.3", port)
        gw = Gateway(tmp_path, port, site=up_tls_site("pump-server"))
        try:
            ack = send_tls(gw, tmp_path, "ehr", observation("IMPOSTER"))
            assert hl7.parse(ack).segment("MSA")[1][0] == "AE"
            reasons = [e["event"]["reason"] for e in gw.events() if e.get("rule", {}).get("id") == "WG-UP-001"]
            assert any("not issued by the configured CA" in r for r in reasons), reasons
        finally:
            gw.stop()
    finally:
        server.kill()
        server.wait(5)
    # 2. The real pump server, whose certificate is then revoked.
    up = TlsUpstream(tmp_path)
    (tmp_path / "data" / "wardgate.lock").unlink(missing_ok=True)
    gw = Gateway(tmp_path, up.port, site=up_tls_site("pump-server"))
    try:
        assert hl7.parse(send_tls(gw, tmp_path, "ehr", observation("R-1"))).segment("MSA")[1][0] == "AA"
        wg(cfg, "device", "revoke", "pump-server")
        assert hl7.parse(send_tls(gw, tmp_path, "ehr", observation("R-2"))).segment("MSA")[1][0] == "AE"
        reasons = [e["event"]["reason"] for e in gw.events() if e.get("rule", {}).get("id") == "WG-UP-001"]
        assert any("revoked" in r for r in reasons), reasons
        assert not any(b"R-2" in m for m in up.received)
    finally:
        gw.stop()
        up.stop()


def test_a_device_that_makes_its_own_key_gets_its_request_signed(tmp_path):
    """PKI for devices that generate their own keys: OpenSSL makes the key and a
    request on the "device" (asking for another name than its own); wardgate
    signs it for the device id it is told, the key never leaves, and the
    certificate works against the gateway as that device."""
    openssl = require_tool("openssl")
    up = Upstream()
    cfg = setup_ca(tmp_path)
    dev = tmp_path / "device"
    dev.mkdir()
    subprocess.run([openssl, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(dev / "own.key"), "-out", str(dev / "own.csr"),
                    "-subj", "/CN=pump-server", "-addext", "subjectAltName=URI:urn:wardgate:device:pump-server"],
                   check=True, capture_output=True)
    out = tmp_path / "signed"
    r = subprocess.run([wardgate_bin(), "device", "sign", "ehr", "--csr", str(dev / "own.csr"),
                        "--config", str(cfg), "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert not (out / "ehr.key").exists(), "the key stays on the device"
    crt = out / "ehr.crt"
    v = subprocess.run([openssl, "verify", "-CAfile", str(tmp_path / "data" / "tls" / "ca.crt"), str(crt)],
                       capture_output=True, text=True)
    assert v.returncode == 0, v.stdout + v.stderr
    text = subprocess.run([openssl, "x509", "-in", str(crt), "-noout", "-text"], capture_output=True, text=True).stdout
    assert "urn:wardgate:device:ehr" in text and "pump-server" not in text, text
    pub_cert = subprocess.run([openssl, "x509", "-in", str(crt), "-noout", "-pubkey"], capture_output=True, text=True).stdout
    pub_key = subprocess.run([openssl, "pkey", "-in", str(dev / "own.key"), "-pubout"], capture_output=True, text=True).stdout
    assert pub_cert == pub_key
    # A request whose signature does not verify is refused.
    bad = bytearray((dev / "own.csr").read_bytes())
    i = bad.index(b"-----END") - 10
    bad[i] = ord("A") if bad[i] != ord("A") else ord("B")
    (dev / "bad.csr").write_bytes(bytes(bad))
    r = subprocess.run([wardgate_bin(), "device", "sign", "ehr", "--csr", str(dev / "bad.csr"),
                        "--config", str(cfg), "--out", str(tmp_path / "nope")], capture_output=True, text=True)
    assert r.returncode == 2 and "request" in r.stderr, r.stderr
    # The device's own key and the signed certificate, against the gateway.
    (tmp_path / "certs" / "ehr.crt").write_bytes(crt.read_bytes())
    (tmp_path / "certs" / "ehr.key").write_bytes((dev / "own.key").read_bytes())
    gw = Gateway(tmp_path, up.port, site=TLS_SITE)
    try:
        ack = send_tls(gw, tmp_path, "ehr", observation("OWN-KEY"), source="127.0.0.2")
        assert hl7.parse(ack).segment("MSA")[1][0] == "AA"
        ok = [e for e in gw.events() if e.get("wardgate", {}).get("hl7", {}).get("control_id") == "OWN-KEY"]
        assert ok and ok[0]["wardgate"]["source_device"] == "ehr"
    finally:
        gw.stop()
        up.stop()


def test_the_gateways_listener_certificate_carries_the_names_clients_verify(tmp_path):
    openssl = require_tool("openssl")
    up = Upstream()
    cfg = setup_ca(tmp_path)
    r = subprocess.run([wardgate_bin(), "ca", "issue-listener", "gw-listener", "--config", str(cfg),
                        "--dns", "gw.ward.example", "--ip", "127.0.0.1", "--out", str(tmp_path / "listener")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    crt = tmp_path / "listener" / "gw-listener.crt"
    text = subprocess.run([openssl, "x509", "-in", str(crt), "-noout", "-text"], capture_output=True, text=True).stdout
    assert "DNS:gw.ward.example" in text and "IP Address:127.0.0.1" in text, text
    assert "TLS Web Server Authentication" in text and "TLS Web Client Authentication" not in text
    assert oct((tmp_path / "listener" / "gw-listener.key").stat().st_mode & 0o777) == "0o600"
    # Nothing to connect to: refused with a clear reason.
    r = subprocess.run([wardgate_bin(), "ca", "issue-listener", "x", "--config", str(cfg),
                        "--out", str(tmp_path / "none")], capture_output=True, text=True)
    assert r.returncode == 2 and "at least one DNS name or IP address" in r.stderr
    # A device's id, or a name that is no file name, is refused.
    for bad, why in [("ehr", "is a device id"), ("../x", "letters, digits")]:
        r = subprocess.run([wardgate_bin(), "ca", "issue-listener", bad, "--config", str(cfg), "--ip", "127.0.0.1",
                            "--out", str(tmp_path / "none")], capture_output=True, text=True)
        assert r.returncode == 2 and why in r.stderr, r.stderr
    site = TLS_SITE.replace("certs/wardgate-gw.crt", "listener/gw-listener.crt").replace(
        "certs/wardgate-gw.key", "listener/gw-listener.key")
    gw = Gateway(tmp_path, up.port, site=site)
    try:
        # Verified by IP address: the client checks the name it dialled.
        raw = socket.create_connection(gw.addr, timeout=10, source_address=("127.0.0.2", 0))
        ctx = client_ctx(tmp_path, "ehr")
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(SB + observation("BY-IP").encode() + EB)
            buf = b""
            while not buf.endswith(EB):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        assert hl7.parse(unframe(buf)).segment("MSA")[1][0] == "AA"
        # Another name than the certificate carries: the client refuses.
        raw = socket.create_connection(gw.addr, timeout=10, source_address=("127.0.0.2", 0))
        try:
            ctx.wrap_socket(raw, server_hostname="pacs.ward.example").close()
            raise AssertionError("a name the certificate does not carry was accepted")
        except ssl.SSLCertVerificationError:
            pass
    finally:
        gw.stop()
        up.stop()
