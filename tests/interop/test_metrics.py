"""Metrics and status of a running `wardgate serve`, read by real peers.

The gateway serves its Prometheus endpoint ([gateway.admin] metrics) on
loopback. Its scrape is checked by Prometheus's own `promtool check metrics`,
scraped by a real Prometheus server (Debian's `prometheus`, its HTTP API
queried), and compared with what HL7 senders did through it: counts must move
by exactly what was sent. `wardgate status` reads the status socket. Senders
and upstream are conftest's and test_hl7_mllp's (the `hl7` package).
"""
import json
import os
import re
import stat
import subprocess
import time
import types
import urllib.parse
import urllib.request

import pytest

from conftest import SITE, Gateway, free_port, require_tool, wait_port, wardgate_bin
from test_hl7_mllp import heparin, msa, observation, order, send

ROUTE = "infusion-orders"
QUEUED = "results-queued"

# The interop site, with metrics on and a second, store-and-forward route
# whose upstream is down (nothing listens there), so its queue fills.
METRICS_SITE = SITE.replace(
    "[gateway.audit]",
    '[gateway.admin]\nmetrics = "127.0.0.1:{metrics_port}"\n\n[gateway.audit]',
    1,
) + """
[[route]]
id = "results-queued"
protocol = "hl7-mllp"
listen = "127.0.0.1:{queued_port}"
upstream = "127.0.0.3:{down_port}"
senders = ["ehr"]
messages = ["ORU^R01"]
delivery = "store-and-forward"
"""


class MetricsGateway(Gateway):
    def __init__(self, tmp, upstream_port):
        self.metrics_port = free_port()
        self.queued_port = free_port()
        super().__init__(
            tmp,
            upstream_port,
            site=METRICS_SITE,
            metrics_port=self.metrics_port,
            queued_port=self.queued_port,
            down_port=free_port("127.0.0.3"),
        )
        wait_port("127.0.0.1", self.metrics_port)
        # wait_port's probe of the listener (from 127.0.0.1, no device) is
        # accepted and refused asynchronously: counts are compared after it.
        scrape_until(self.metrics_port, lambda t: value(t, "wardgate_decisions_total", route=ROUTE,
                                                        action="blocked", rule="WG-ACCESS-001") == 1,
                     "the listener probe's refusal to be counted")

    def scrape(self):
        return scrape(self.metrics_port)


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return r.read().decode()


@pytest.fixture
def mgw(tmp_path, upstream):
    g = MetricsGateway(tmp_path, upstream.port)
    yield g
    g.stop()


def samples(text):
    """{'name{labels}': value} of every sample line."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def value(text, name, **labels):
    """A sample's value (0 when absent: a counter not yet moved). Labels in
    the order wardgate writes them."""
    key = name
    if labels:
        key += "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
    return samples(text).get(key, 0.0)


def iso_seconds(t):
    """Seconds since the epoch of a time as `ca show` prints it: RFC 3339 (the
    register), or as x509 displays it ("Dec  2 08:26:34 2036 +00:00", the CA)."""
    from datetime import datetime
    try:
        return datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return datetime.strptime(t, "%b %d %H:%M:%S %Y %z").timestamp()


def frame_len(text):
    """An MLLP frame's bytes: start block, message, end block and CR."""
    return len(text.encode()) + 3


def until(pred, timeout, what):
    """Bounded wait, for synchronisation only (no timing is asserted)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def scrape_until(port, pred, what, timeout=10):
    """A scrape for which `pred` holds (a bounded wait, for synchronisation)."""
    def once():
        text = scrape(port)
        return text if pred(text) else None
    return until(once, timeout, what)


def test_counts_move_by_exactly_what_was_sent(mgw, upstream):
    before = mgw.scrape()
    conns = value(before, "wardgate_connections_total", route=ROUTE)
    connects = value(before, "wardgate_upstream_connect_duration_seconds_count", route=ROUTE)
    allowed = value(before, "wardgate_messages_total", route=ROUTE, action="allowed")
    blocked = value(before, "wardgate_messages_total", route=ROUTE, action="blocked")
    rule = value(before, "wardgate_decisions_total", route=ROUTE, action="blocked", rule="WG-INF-010")
    allowed_bytes = value(before, "wardgate_message_bytes_total", route=ROUTE, action="allowed")
    blocked_bytes = value(before, "wardgate_message_bytes_total", route=ROUTE, action="blocked")

    ok = observation("MET-OK")
    assert msa(send(mgw, ok))[:2] == ("AA", "MET-OK")
    bad = order("MET-BAD", heparin(41))
    assert msa(send(mgw, bad))[:2] == ("AR", "MET-BAD")

    after = mgw.scrape()
    assert value(after, "wardgate_messages_total", route=ROUTE, action="allowed") == allowed + 1
    assert value(after, "wardgate_messages_total", route=ROUTE, action="blocked") == blocked + 1
    assert value(after, "wardgate_decisions_total", route=ROUTE, action="blocked", rule="WG-INF-010") == rule + 1
    assert value(after, "wardgate_message_bytes_total", route=ROUTE, action="allowed") == allowed_bytes + frame_len(ok)
    assert value(after, "wardgate_message_bytes_total", route=ROUTE, action="blocked") == blocked_bytes + frame_len(bad)
    # Two connections, each connected upstream once (pass-through): the
    # histogram counts exactly the connections, and the upstream is up.
    assert value(after, "wardgate_connections_total", route=ROUTE) == conns + 2
    assert value(after, "wardgate_upstream_connect_duration_seconds_count", route=ROUTE) == connects + 2
    assert value(after, "wardgate_upstream_connect_duration_seconds_bucket", route=ROUTE, le="+Inf") == connects + 2
    assert value(after, "wardgate_upstream_up", route=ROUTE) == 1
    assert value(after, "wardgate_policy_info", hash=(mgw.dir / "data" / "policy.hash").read_text().strip()) == 1
    # Every enrolled device has a series, and sources that are no device one
    # `unknown` series; nothing in any label comes from a message.
    devices = sorted(re.findall(r'wardgate_device_connections_open\{device="([^"]*)"\}', after))
    assert devices == ["ehr", "lab-analyser", "pump-server", "unknown"]
    assert "MET-OK" not in after and "MET-BAD" not in after and "Doe" not in after
    # Both senders closed: the gauge comes back to zero once the gateway sees it.
    until(lambda: value(mgw.scrape(), "wardgate_connections_open", route=ROUTE) == 0, 10,
          "the route's open connections to drop back to 0")


def test_promtool_accepts_the_scrape(mgw, upstream):
    promtool = require_tool("promtool")
    send(mgw, observation("PT-1"))
    send(mgw, order("PT-2", heparin(41)))
    text = mgw.scrape()
    r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "" and r.stderr.strip() == "", (
        f"promtool check metrics: rc={r.returncode}\n{r.stdout}{r.stderr}\n--- scrape ---\n{text}")


def test_a_prometheus_server_scrapes_the_gateway(mgw, upstream, tmp_path):
    prometheus = require_tool("prometheus")
    send(mgw, observation("PROM-1"))
    send(mgw, observation("PROM-2"))
    send(mgw, order("PROM-3", heparin(41)))
    web = free_port()
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: wardgate\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{mgw.metrics_port}']\n"
    )
    log = open(tmp_path / "prometheus.log", "wb")
    proc = subprocess.Popen(
        [prometheus, f"--config.file={cfg}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{web}"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    api = f"http://127.0.0.1:{web}"

    def get(path):
        try:
            with urllib.request.urlopen(api + path, timeout=5) as r:
                return r.read().decode()
        except OSError:
            return None

    def query(q):
        body = get("/api/v1/query?query=" + urllib.parse.quote(q))
        if body is None:
            return None
        doc = json.loads(body)
        assert doc["status"] == "success", doc
        return doc["data"]["result"]

    try:
        until(lambda: get("/-/ready") is not None, 60, "Prometheus to become ready")
        result = until(
            lambda: query(f'wardgate_messages_total{{route="{ROUTE}",action="allowed"}}'),
            60, "Prometheus to have scraped wardgate_messages_total",
        )
        assert result[0]["metric"]["job"] == "wardgate"
        assert float(result[0]["value"][1]) == 2
        blocked = query(f'wardgate_decisions_total{{route="{ROUTE}",rule="WG-INF-010"}}')
        assert [float(r["value"][1]) for r in blocked] == [1]
        # The target is healthy: every scrape parsed, none failed.
        targets = json.loads(get("/api/v1/targets"))["data"]["activeTargets"]
        [t] = [t for t in targets if t["labels"]["job"] == "wardgate"]
        assert t["health"] == "up" and t["lastError"] == "", t
        up = query('up{job="wardgate"}')
        assert float(up[0]["value"][1]) == 1
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


def test_status_shows_routes_listeners_health_queues_policy_and_uptime(mgw, upstream):
    send(mgw, observation("ST-1"))
    # The store-and-forward route acknowledges once stored; its upstream is down.
    queued = types.SimpleNamespace(addr=("127.0.0.1", mgw.queued_port))
    for i in range(2):
        reply = send(queued, observation(f"ST-Q{i}"))
        assert msa(reply)[:2] == ("AA", f"ST-Q{i}")

    def status_once_down():
        d = json.loads(mgw.cli("status", "--json").stdout)
        [q] = [r for r in d["routes"] if r["id"] == QUEUED]
        return d if q["upstream_state"] == "down" else None

    doc = until(status_once_down, 30, "the store-and-forward route's delivery to find its upstream down")
    policy = (mgw.dir / "data" / "policy.hash").read_text().strip()
    assert doc["policy_hash"] == policy
    assert doc["uptime_seconds"] >= 0 and doc["pid"] == mgw.proc.pid
    [r] = [r for r in doc["routes"] if r["id"] == ROUTE]
    assert r["listen"] == f"127.0.0.1:{mgw.listen_port}"
    assert r["upstream_state"] == "up" and r["queue"] is None
    [q] = [r for r in doc["routes"] if r["id"] == QUEUED]
    assert q["delivery"] == "store-and-forward"
    assert q["queue"]["depth"] == 2 and q["queue"]["parked"] == 0
    assert q["queue"]["oldest_age_seconds"] >= 0

    out = mgw.cli("status").stdout
    assert out.startswith("wardgate "), out
    assert re.search(r", up \d+", out.splitlines()[0]), out
    assert f"policy   {policy}" in out
    assert f"metrics  http://127.0.0.1:{mgw.metrics_port}/metrics" in out
    line = next(l for l in out.splitlines() if l.startswith(ROUTE + " "))
    assert f"127.0.0.1:{mgw.listen_port}" in line and " up " in line, line
    qline = next(l for l in out.splitlines() if l.startswith(QUEUED + " "))
    cols = qline.split()
    assert cols[4] == "down" and cols[6] == "2", qline
    # The same by data directory alone.
    by_dir = subprocess.run([wardgate_bin(), "status", "--data-dir", str(mgw.dir / "data")],
                            capture_output=True, text=True, timeout=60)
    assert by_dir.returncode == 0 and f"policy   {policy}" in by_dir.stdout, by_dir.stderr


def test_the_status_socket_is_owner_and_group_only_and_goes_with_the_gateway(mgw, upstream):
    sock = mgw.dir / "data" / "admin.sock"
    st = os.stat(sock)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert stat.S_IMODE(os.stat(mgw.dir / "data").st_mode) & 0o007 == 0, "data_dir closed to other users"
    assert mgw.stop() == 0, mgw.log_text()
    assert not sock.exists(), "the socket is removed at shutdown"
    r = mgw.cli("status", check=False)
    assert r.returncode == 2
    assert "no wardgate is running" in r.stderr and str(sock) in r.stderr, r.stderr


def test_logs_have_no_colour_when_stderr_is_a_file(mgw, upstream):
    send(mgw, observation("LOG-1"))
    assert mgw.stop() == 0
    log = mgw.log_text()
    assert "INFO" in log and "metrics at http://127.0.0.1:" in log, log
    assert "\x1b[" not in log, "ANSI escape codes in a log written to a file"


def test_dicom_commands_count_with_their_data_sets(tmp_path):
    """dcmtk's echoscu and storescu through a DICOM route: one message per DIMSE
    command, and the C-STORE's data set counted in its bytes."""
    require_tool("echoscu")
    require_tool("storescu")
    from test_dicom import CT, SITE as DICOM_SITE, StoreSCP

    scp = StoreSCP(tmp_path / "pacs")
    port = free_port()
    site = DICOM_SITE.replace(
        "[gateway.audit]", '[gateway.admin]\nmetrics = "127.0.0.1:{metrics_port}"\n\n[gateway.audit]', 1)
    g = Gateway(tmp_path, scp.port, site=site, metrics_port=port)
    try:
        wait_port("127.0.0.1", port)
        route = "ct-to-pacs"
        before = scrape(port)
        n = value(before, "wardgate_messages_total", route=route, action="allowed")
        b = value(before, "wardgate_message_bytes_total", route=route, action="allowed")
        for args in (["echoscu"], ["storescu"]):
            r = subprocess.run([*args, "-aet", "CT01", "-aec", "PACS", "127.0.0.1", str(g.listen_port),
                                *([str(CT)] if args == ["storescu"] else [])],
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r.stdout + r.stderr
        after = scrape(port)
        assert value(after, "wardgate_messages_total", route=route, action="allowed") == n + 2
        sent = value(after, "wardgate_message_bytes_total", route=route, action="allowed") - b
        size = os.path.getsize(CT)
        # The data set (the file less its preamble and meta header) plus two
        # command sets and the PDU and PDV headers.
        assert size - 1024 <= sent <= size + 4096, (sent, size)
        assert value(after, "wardgate_upstream_up", route=route) == 1
        assert len(scp.files()) == 1
    finally:
        g.stop()
        scp.stop()


def test_certificate_expiry_of_the_ca_and_its_devices(tmp_path, upstream):
    """The built-in CA and a device certificate it issued (by `wardgate ca
    init` and `device enroll`, before the gateway starts) are exported with
    the dates `wardgate ca show` gives, and `status` lists them."""
    data = tmp_path / "data"
    scratch = tmp_path / "ca.toml"
    scratch.write_text(f'[gateway]\ndata_dir = "{data}"\n\n[[device]]\nid = "ehr"\nkind = "ehr"\n'
                       'addresses = ["127.0.0.2"]\n')
    for args in (["ca", "init"], ["device", "enroll", "ehr", "--days", "30", "--out", str(tmp_path / "certs")]):
        r = subprocess.run([wardgate_bin(), *args, "--config", str(scratch)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
    shown = json.loads(subprocess.run([wardgate_bin(), "ca", "show", "--json", "--config", str(scratch)],
                                      capture_output=True, text=True, timeout=60, check=True).stdout)
    g = MetricsGateway(tmp_path, upstream.port)
    try:
        text = g.scrape()
        device = value(text, "wardgate_certificate_expiry_timestamp_seconds", cert="device:ehr")
        ca = value(text, "wardgate_certificate_expiry_timestamp_seconds", cert="ca")
        days = (device - time.time()) / 86400
        assert 29 < days <= 30, days
        assert ca > device
        [cert] = [c for c in shown["issued"] if c["device"] == "ehr"]
        assert int(iso_seconds(cert["not_after"])) == device
        assert int(iso_seconds(shown["not_after"])) == ca
        out = g.cli("status").stdout
        assert "device:ehr" in out and re.search(r"device:ehr\s+\S+\s+(29|30)\b", out), out
    finally:
        g.stop()


def test_tls_refusals_by_reason_and_the_listener_certificate(tmp_path, upstream):
    """A TLS route (test_tls_listen's site and CA): a client without a
    certificate is counted under `no_certificate`, a device with one gets
    through, and the listener's certificate expiry is exported."""
    from test_tls_listen import TLS_SITE, refused, send_tls, setup_ca

    cfg = setup_ca(tmp_path)
    port = free_port()
    site = TLS_SITE.replace(
        "[gateway.audit]", '[gateway.admin]\nmetrics = "127.0.0.1:{metrics_port}"\n\n[gateway.audit]', 1)
    g = Gateway(tmp_path, upstream.port, site=site, metrics_port=port)
    try:
        wait_port("127.0.0.1", port)
        before = scrape(port)
        no_cert = value(before, "wardgate_tls_handshake_failures_total", route=ROUTE, reason="no_certificate")
        assert refused(g, tmp_path, None)
        assert msa(send_tls(g, tmp_path, "ehr", observation("TLS-1")))[:2] == ("AA", "TLS-1")
        after = scrape_until(
            port, lambda t: value(t, "wardgate_tls_handshake_failures_total", route=ROUTE,
                                  reason="no_certificate") > no_cert,
            "the refused handshake to be counted")
        assert value(after, "wardgate_tls_handshake_failures_total", route=ROUTE, reason="no_certificate") == no_cert + 1
        assert value(after, "wardgate_messages_total", route=ROUTE, action="allowed") == 1
        shown = json.loads(subprocess.run([wardgate_bin(), "ca", "show", "--json", "--config", str(cfg)],
                                          capture_output=True, text=True, timeout=60, check=True).stdout)
        [gw_cert] = [c for c in shown["issued"] if c["device"] == "wardgate-gw"]
        listener = value(after, "wardgate_certificate_expiry_timestamp_seconds", cert=f"listener:{ROUTE}")
        assert listener == int(iso_seconds(gw_cert["not_after"]))
        doc = json.loads(g.cli("status", "--json").stdout)
        [r] = [r for r in doc["routes"] if r["id"] == ROUTE]
        assert r["tls"] is True
        assert "no_certificate" in [x["reason"] for x in r["tls_refused"]]
    finally:
        g.stop()


def test_a_reload_that_moves_the_metrics_endpoint_is_refused(mgw, upstream):
    """[gateway.admin] is bound at start: a reload changing it is refused, the
    event says so, and the endpoint stays where it was."""
    from test_hl7_mllp import events_until

    other = free_port()
    text = mgw.config.read_text()
    mgw.config.write_text(text.replace(f"127.0.0.1:{mgw.metrics_port}", f"127.0.0.1:{other}"))
    r = mgw.cli("reload", check=False)
    assert r.returncode == 0, r.stderr
    evs = events_until(mgw, lambda e: any("reload refused" in x["event"]["reason"] for x in e))
    [refusal] = [x for x in evs if "reload refused" in x["event"]["reason"]]
    assert "[gateway.admin]" in refusal["event"]["reason"], refusal
    assert "wardgate_build_info" in mgw.scrape()
