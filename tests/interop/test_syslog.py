"""Alerts reach the SOC: `wardgate serve` streams its events to a real rsyslog
(Debian's rsyslogd, started by each test on its own loopback port) over TCP
(RFC 6587 octet counting), TLS (RFC 5425, mutual, rsyslog's gtls driver with
certificates from wardgate's own CA) and UDP, and writes the EVE NDJSON file,
rotated by size and reopened after a real logrotate.

Events come from driving the gateway: HL7 messages of a type the route does not
allow (blocked, WG-HL7-001) and heparin orders over the hard limit (blocked,
WG-INF-010) through the real proxy, plus routine observations (allowed: not
exported by default). Every message rsyslog writes is parsed back and checked:
the syslog header (PRI from the rule's severity, MSGID the rule id), the ECS
document against the field reference (ecs_check), each event once per
collector instance, every blocked event of the audit log present, and the
signed checkpoints verified with openssl against the log's public key. A
reload that changes `[export]` is refused.
Every wait is bounded; nothing asserts on timing.
"""
import datetime
import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

import ecs_check
from conftest import Gateway, Upstream, free_port, require_tool, wait_port, wardgate_bin

SB, EB = b"\x0b", b"\x1c\x0d"
# local0, and the syslog severity of each rule severity.
FACILITY = 16
SYSLOG_SEVERITY = {"critical": 2, "high": 3, "medium": 4, "low": 5, "info": 6}

SITE = """
[gateway]
data_dir = "{data_dir}"
name = "icu-gw-test"
max_frame_bytes = {max_frame}
frame_timeout_secs = 3
shutdown_grace_secs = 2

[gateway.audit]
checkpoint_every = 50
checkpoint_interval_ms = 100

[[device]]
id = "ehr"
kind = "ehr"
addresses = ["127.0.0.2"]

[[device]]
id = "pump-server"
kind = "infusion-pump-server"
addresses = ["127.0.0.3"]

[[device]]
id = "siem"
kind = "siem"
addresses = ["127.0.0.40"]

[[device]]
id = "wardgate-gw"
kind = "gateway"
addresses = ["127.0.0.41"]

[[route]]
id = "infusion-orders"
protocol = "hl7-mllp"
listen = "127.0.0.1:{listen_port}"
upstream = "127.0.0.3:{upstream_port}"
senders = ["ehr"]
messages = ["RGV^O15", "ORU^R01"]
drug_library = "adult-icu"

[[drug_library]]
id = "adult-icu"

[[drug_library.drug]]
names = ["heparin", "HEP"]
rate_unit = "U/h"
rate_soft_max = 1500
rate_hard_max = 2000
dose_unit = "U"
dose_hard_max = 10000
{export}
"""


def rsyslogd():
    return require_tool("rsyslogd")


class Rsyslog:
    """An rsyslogd of our own: one input (imtcp, imtcp over gtls, or imudp) on a
    loopback port, every message written to a file per run ("instance"), so a
    restart's messages are told apart from the first run's."""

    def __init__(self, d, transport="tcp", tls=None):
        self.dir = Path(d)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.transport = transport
        self.tls = tls
        self.port = free_port()
        self.instance = 0
        self.proc = None

    def conf(self):
        out = self.dir / f"received-{self.instance}.log"
        lines = [f'global(workDirectory="{self.dir}" maxMessageSize="64k"']
        if self.tls:
            lines[0] += (f' defaultNetstreamDriverCAFile="{self.tls["ca"]}"'
                         f' defaultNetstreamDriverCertFile="{self.tls["cert"]}"'
                         f' defaultNetstreamDriverKeyFile="{self.tls["key"]}"')
        lines[0] += ")"
        if self.transport == "udp":
            lines.append('module(load="imudp")')
            lines.append(f'input(type="imudp" port="{self.port}" address="127.0.0.1" ruleset="wg")')
        elif self.tls:
            # Mutual TLS: the client's certificate must chain to the CA.
            lines.append('module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" '
                         'streamDriver.authMode="x509/certvalid")')
            lines.append(f'input(type="imtcp" port="{self.port}" address="127.0.0.1" ruleset="wg")')
        else:
            lines.append('module(load="imtcp")')
            lines.append(f'input(type="imtcp" port="{self.port}" address="127.0.0.1" ruleset="wg")')
        lines.append('template(name="wgfmt" type="string" '
                     'string="%pri%|%protocol-version%|%msgid%|%app-name%|%hostname%|%procid%|%structured-data%|%msg%\\n")')
        lines.append('ruleset(name="wg") {')
        lines.append(f'  action(type="omfile" file="{out}" template="wgfmt")')
        lines.append("}")
        path = self.dir / f"rsyslog-{self.instance}.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self):
        self.instance += 1
        conf = self.conf()
        pid = self.dir / "rsyslogd.pid"
        pid.unlink(missing_ok=True)
        self.log = open(self.dir / f"rsyslogd-{self.instance}.out", "wb")
        self.proc = subprocess.Popen([rsyslogd(), "-n", "-f", str(conf), "-i", str(pid)],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        if self.transport == "udp":
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                out = subprocess.run(["ss", "-lun"], capture_output=True, text=True).stdout
                if f"127.0.0.1:{self.port} " in out:
                    break
                time.sleep(0.1)
        else:
            wait_port("127.0.0.1", self.port)
        return self

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()

    def messages(self, instance=None):
        """[(instance, {pri, version, msgid, app, host, procid, sd, msg})] as rsyslog wrote them."""
        out = []
        for i in range(1, self.instance + 1):
            if instance is not None and i != instance:
                continue
            f = self.dir / f"received-{i}.log"
            if not f.exists():
                continue
            for line in f.read_text(errors="replace").splitlines():
                parts = line.split("|", 7)
                if len(parts) != 8:
                    continue
                keys = ("pri", "version", "msgid", "app", "host", "procid", "sd", "msg")
                out.append((i, dict(zip(keys, parts))))
        return out

    def events(self, instance=None):
        """[(instance, syslog fields, ECS document)] of the JSON messages."""
        out = []
        for i, m in self.messages(instance):
            if m["msg"].startswith("{"):
                out.append((i, m, json.loads(m["msg"])))
        return out


def export_section(name, address, transport="tcp", extra=""):
    return (f'\n[[export.syslog]]\nname = "{name}"\naddress = "{address}"\ntransport = "{transport}"\n'
            f'settle_ms = 300\nunreachable_alert_secs = 1\n{extra}')


def gateway(tmp_path, upstream, export):
    site = SITE.replace("{export}", export)
    return Gateway(tmp_path, upstream.port, site=site)


def frame(text):
    return SB + text.encode() + EB


def admission(cid):
    """ADT^A01: not among the route's messages, so blocked (WG-HL7-001, medium)."""
    return "\r".join([
        f"MSH|^~\\&|EHR|ICU|PUMPSRV|ICU|20261124031500||ADT^A01^ADT_A01|{cid}|P|2.6",
        "EVN|A01|20261124031500",
        "PID|||4711^^^HOSP^MR||Doe^Jane",
        "PV1|1|I|ICU^1^1",
    ]) + "\r"


def observation(cid):
    """ORU^R01: allowed, a routine record (not exported by default)."""
    return "\r".join([
        f"MSH|^~\\&|MONGW|ICU|PUMPSRV|ICU|20261124031500||ORU^R01^ORU_R01|{cid}|P|2.6",
        "PID|||4711^^^HOSP^MR||Doe^Jane",
        "OBR|1|||69837^MDC_DEV_METER_PHYSIO_MULTI_PARAM_MDS^MDC",
        "OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.1|97|262688^MDC_DIM_PERCENT^MDC|||||R",
    ]) + "\r"


def heparin_order(cid, rate_ml_h=100):
    """Heparin 50 U/mL at `rate_ml_h` mL/h: 100 mL/h is 5000 U/h, over the 2000 U/h
    hard limit (blocked, WG-INF-010, critical)."""
    rxg = ["RXG", "1", "", "", "HEP^heparin^LOCAL", "100", "", "mL^mL^UCUM"] + [""] * 7 + [
        str(rate_ml_h), "265266^MDC_DIM_MILLI_L_PER_HR^MDC", "25000", "U^U^UCUM", "", "", "", "", "500",
        "mL^mL^UCUM"]
    return "\r".join([
        f"MSH|^~\\&|EHR|ICU|PUMPSRV|ICU|20261124031500||RGV^O15^RGV_O15|{cid}|P|2.6",
        "PID|||4711^^^HOSP^MR||Doe^Jane",
        "ORC|RE|ORD-1^EHR",
        "|".join(rxg),
        "RXR|IV^Intravenous^HL70162",
    ]) + "\r"


class Sender:
    """One EHR connection sending messages and reading each answer."""

    def __init__(self, g):
        self.sock = socket.create_connection(g.addr, timeout=10, source_address=("127.0.0.2", 0))
        self.buf = b""

    def send(self, text):
        self.sock.sendall(frame(text))
        while EB not in self.buf:
            chunk = self.sock.recv(65536)
            assert chunk, "the gateway closed the connection"
            self.buf += chunk
        reply, self.buf = self.buf.split(EB, 1)
        msa = next(s for s in reply.decode().split("\r") if s.startswith("MSA|"))
        return msa.split("|")[1]

    def close(self):
        self.sock.close()


def produce(g, n, prefix, every_order=10, pause=0.0):
    """n blocked messages (an order over the limit every `every_order`-th, else a
    message type not allowed), each after a routine allowed one."""
    s = Sender(g)
    try:
        for i in range(n):
            time.sleep(pause)
            assert s.send(observation(f"{prefix}-OK-{i}")) == "AA"
            text = heparin_order(f"{prefix}-HEP-{i}") if i % every_order == 0 else admission(f"{prefix}-ADT-{i}")
            assert s.send(text) == "AR"
    finally:
        s.close()


def blocked_in_log(g, expect=None):
    """The EHR's blocked events the audit log holds: {event.id: event}; with `expect`,
    once that many are recorded (the recorder writes a moment after the answer)."""
    def read():
        out = g.cli("events", "--json", "--action", "blocked").stdout
        evs = [json.loads(line) for line in out.splitlines() if line.strip()]
        # The EHR's: not the probe that waited for the listener (an unknown device).
        return {e["event"]["id"]: e for e in evs if e["wardgate"].get("source_device") == "ehr"}

    deadline = time.monotonic() + 15
    got = read()
    while expect is not None and len(got) < expect and time.monotonic() < deadline:
        time.sleep(0.1)
        got = read()
    if expect is not None:
        assert len(got) == expect, f"{len(got)} blocked events recorded, {expect} expected"
    return got


def wait_for(pred, what, timeout=60):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def check_messages(received, gw_log_text=""):
    """Every message: a syslog header that matches its event, an ECS document."""
    problems = []
    for _, m, ev in received:
        assert m["version"] == "1", m
        assert m["app"] == "wardgate", m
        rule = ev.get("rule", {}).get("id")
        assert m["msgid"] == (rule or ev["event"]["action"]), (m["msgid"], ev)
        sev = ev.get("wardgate", {}).get("severity", "info")
        assert int(m["pri"]) == FACILITY * 8 + SYSLOG_SEVERITY[sev], (m["pri"], ev)
        assert ev["observer"]["name"] == "icu-gw-test", ev
        problems += [f"{p} in {json.dumps(ev)[:300]}" for p in ecs_check.check_event(ev)]
    assert not problems, "\n".join(problems[:20])


def no_copies_within_an_instance(received):
    seen = {}
    for i, _, ev in received:
        key = ev["event"].get("id") or f"checkpoint-{ev['wardgate']['checkpoint']['seq']}"
        seen.setdefault((i, key), 0)
        seen[(i, key)] += 1
    dup = {k: n for k, n in seen.items() if n > 1}
    assert not dup, f"sent twice to one collector run: {sorted(dup)[:10]}"


def verify_checkpoints(received, data_dir):
    """Each exported checkpoint is one of the log's, and its signature verifies
    with openssl under the log's public key: the collector can hold the gateway
    to its log."""
    openssl = require_tool("openssl")
    log_lines = (Path(data_dir) / "audit" / "audit.log").read_text().splitlines()
    header = log_lines[0].split("\t")
    chain_id, public_key = header[2], header[3]
    in_log = {}
    for line in log_lines:
        f = line.split("\t")
        if f[0] == "C":
            in_log[int(f[1])] = (f[2], int(f[3]), f[4])
    cps = [ev for _, _, ev in received if ev.get("rule", {}).get("id") == "WG-EXPORT-003"]
    assert cps, "no checkpoint was exported"
    spki = Path(data_dir) / "pub.der"
    spki.write_bytes(bytes.fromhex("302a300506032b6570032100" + public_key))
    for ev in cps[:5]:
        c = ev["wardgate"]["checkpoint"]
        assert (c["chain_id"], c["public_key"]) == (chain_id, public_key)
        head, ms, sig = in_log[c["seq"]]
        assert (c["head_hash"], c["signature"]) == (head, sig)
        signed = datetime.datetime.fromisoformat(c["signed_at"].replace("Z", "+00:00"))
        assert round(signed.timestamp() * 1000) == ms
        msg = (b"wardgate-audit-checkpoint-v1\0" + bytes.fromhex(chain_id) + c["seq"].to_bytes(8, "big")
               + bytes.fromhex(head) + ms.to_bytes(8, "big"))
        m, s = Path(data_dir) / "cp.msg", Path(data_dir) / "cp.sig"
        m.write_bytes(msg)
        s.write_bytes(bytes.fromhex(sig))
        r = subprocess.run([openssl, "pkeyutl", "-verify", "-pubin", "-inkey", str(spki), "-keyform", "DER",
                            "-rawin", "-in", str(m), "-sigfile", str(s)], capture_output=True, text=True)
        assert r.returncode == 0 and "Success" in r.stdout, r.stdout + r.stderr


def test_events_stream_to_rsyslog_over_tcp(tmp_path):
    rs = Rsyslog(tmp_path / "rsyslog").start()
    up = Upstream()
    g = gateway(tmp_path, up, export_section("soc", f"127.0.0.1:{rs.port}")
                + export_section("soc-cef", f"127.0.0.1:{rs.port}", extra='format = "cef"\n'))
    try:
        produce(g, 60, "TCP")
        want = blocked_in_log(g, 60)
        got = lambda: {ev["event"].get("id") for _, _, ev in rs.events()}
        wait_for(lambda: set(want) <= got(), "every blocked event at rsyslog")
        code = g.stop()
        assert code == 0, g.log_text()[-2000:]
        # What the sealed log held at shutdown was sent too.
        wait_for(lambda: any(ev["event"]["action"] == "stopped" for _, _, ev in rs.events()), "the stop event")
        received = rs.events()
        check_messages(received)
        no_copies_within_an_instance(received)
        actions = {ev["event"]["action"] for _, _, ev in received}
        assert "allowed" not in actions, "routine allowed decisions are not exported by default"
        assert {"blocked", "started", "stopped", "policy-applied", "audit-checkpoint"} <= actions, actions
        rules = {ev.get("rule", {}).get("id") for _, _, ev in received}
        assert {"WG-HL7-001", "WG-INF-010", "WG-EXPORT-003"} <= rules, rules
        verify_checkpoints(received, g.dir / "data")
        # The CEF export: the same events, one CEF record each.
        cef = [m for _, m in rs.messages() if m["msg"].startswith("CEF:0|wardgate|wardgate|")]
        ids = {part.split("=", 1)[1] for m in cef for part in m["msg"].split(" ") if part.startswith("externalId=")}
        assert set(want) <= ids
        assert any("|WG-INF-010|rate-above-hard-limit|10|" in m["msg"] for m in cef)
    finally:
        g.stop()
        up.stop()
        rs.kill()


def setup_tls(tmp_path):
    """wardgate's CA issues the collector's certificate (device "siem") and the
    gateway's client certificate (device "wardgate-gw")."""
    cfg = tmp_path / "ca.toml"
    cfg.write_text(SITE.replace("{export}", "").format(data_dir=tmp_path / "data", listen_port=1, upstream_port=1,
                                                       max_frame=65536))
    run = lambda *a: subprocess.run([wardgate_bin(), *a, "--config", str(cfg)], capture_output=True, text=True,
                                    timeout=60, check=True)
    run("ca", "init", "--name", "syslog-test")
    certs = tmp_path / "certs"
    for dev in ("siem", "wardgate-gw"):
        run("device", "enroll", dev, "--out", str(certs))
    return {"ca": tmp_path / "data" / "tls" / "ca.crt", "cert": certs / "siem.crt", "key": certs / "siem.key"}


def test_events_stream_to_rsyslog_over_mutual_tls(tmp_path):
    rsyslogd()
    tls = setup_tls(tmp_path)
    rs = Rsyslog(tmp_path / "rsyslog", tls=tls).start()
    certs = tmp_path / "certs"
    up = Upstream()
    g = gateway(tmp_path, up, export_section("soc-tls", f"127.0.0.1:{rs.port}", "tls")
                + f'\n[export.syslog.tls]\nserver_name = "siem"\ncert = "{certs / "wardgate-gw.crt"}"\n'
                  f'key = "{certs / "wardgate-gw.key"}"\n')
    try:
        produce(g, 30, "TLS")
        want = blocked_in_log(g, 30)
        wait_for(lambda: set(want) <= {ev["event"].get("id") for _, _, ev in rs.events()},
                 "every blocked event at rsyslog over TLS")
        assert g.stop() == 0
        wait_for(lambda: any(ev["event"]["action"] == "stopped" for _, _, ev in rs.events()), "the stop event")
        received = rs.events()
        check_messages(received)
        no_copies_within_an_instance(received)
    finally:
        g.stop()
        up.stop()
        rs.kill()


def test_a_tls_collector_that_does_not_trust_the_gateway_gets_nothing_and_is_alerted(tmp_path):
    """Without a client certificate, rsyslog's x509/certvalid refuses the
    handshake: nothing is delivered, and the unreachable alert says why."""
    rsyslogd()
    tls = setup_tls(tmp_path)
    rs = Rsyslog(tmp_path / "rsyslog", tls=tls).start()
    up = Upstream()
    g = gateway(tmp_path, up, export_section("soc-tls", f"127.0.0.1:{rs.port}", "tls")
                + '\n[export.syslog.tls]\nserver_name = "siem"\n')
    try:
        wait_for(lambda: any(e.get("rule", {}).get("id") == "WG-EXPORT-001" for e in g.events()),
                 "the unreachable alert", timeout=30)
        alert = next(e for e in g.events() if e.get("rule", {}).get("id") == "WG-EXPORT-001")
        assert alert["wardgate"]["export"]["name"] == "soc-tls"
        assert "client certificate" in alert["wardgate"]["export"]["error"], alert
        assert rs.events() == []
    finally:
        g.stop()
        up.stop()
        rs.kill()


def test_a_collector_restarted_mid_stream_misses_nothing(tmp_path):
    """rsyslog is killed (SIGKILL) while events stream and started again on the
    same port: every blocked event reaches it, none twice within a run of it,
    and the outage is alerted (WG-EXPORT-001) and its end recorded (WG-EXPORT-002)."""
    rs = Rsyslog(tmp_path / "rsyslog").start()
    up = Upstream()
    g = gateway(tmp_path, up, export_section("soc", f"127.0.0.1:{rs.port}"))
    errors = []

    def stream(n, prefix):
        try:
            produce(g, n, prefix, pause=0.01)
        except Exception as e:  # reported by the main thread
            errors.append(e)

    try:
        first = threading.Thread(target=stream, args=(150, "A"))
        first.start()
        wait_for(lambda: len(rs.events(1)) >= 60, "the stream to reach rsyslog")
        rs.kill(signal.SIGKILL)
        first.join(60)
        # More events while the collector is down; the alert after 1 s.
        produce(g, 50, "B")
        wait_for(lambda: any(e.get("rule", {}).get("id") == "WG-EXPORT-001" for e in g.events()),
                 "the unreachable alert", timeout=30)
        rs.start()
        produce(g, 50, "C")
        assert not errors, errors
        want = blocked_in_log(g, 250)
        got = lambda: {ev["event"].get("id") for _, _, ev in rs.events()}
        wait_for(lambda: set(want) <= got(), "every blocked event after the restart")
        wait_for(lambda: any(ev.get("rule", {}).get("id") == "WG-EXPORT-002" for _, _, ev in rs.events(2)),
                 "the recovery event")
        received = rs.events()
        no_copies_within_an_instance(received)
        check_messages(received)
        unreachable = next(ev for _, _, ev in received if ev.get("rule", {}).get("id") == "WG-EXPORT-001")
        assert unreachable["wardgate"]["export"]["outage_ms"] >= 1000
        assert unreachable["wardgate"]["export"]["backlog"] > 0
        recovered = next(ev for _, _, ev in received if ev.get("rule", {}).get("id") == "WG-EXPORT-002")
        assert recovered["wardgate"]["export"]["outage_ms"] >= unreachable["wardgate"]["export"]["outage_ms"]
        assert recovered["wardgate"]["export"]["backlog"] > 0
        # Copies across the restart are allowed (at least once), and only of events
        # sent shortly before it: what the first run may have lost unread.
        first_run = {ev["event"]["id"] for _, _, ev in rs.events(1) if "id" in ev["event"]}
        again = [ev for _, _, ev in rs.events(2) if ev["event"].get("id") in first_run]
        assert len(again) < len(first_run), (len(again), len(first_run))
    finally:
        g.stop()
        up.stop()
        rs.kill()


def test_a_gateway_restart_resumes_from_its_cursor(tmp_path):
    """The cursor is persisted: a gateway stopped and started again sends only
    what the collector does not have yet, so no event arrives twice."""
    rs = Rsyslog(tmp_path / "rsyslog").start()
    up = Upstream()
    export = export_section("soc", f"127.0.0.1:{rs.port}")
    g = gateway(tmp_path, up, export)
    try:
        produce(g, 20, "R1")
        assert g.stop() == 0
        wait_for(lambda: sum(1 for _, _, ev in rs.events() if ev["event"]["action"] == "stopped") == 1, "stop 1")
        g2 = Gateway(tmp_path, up.port, site=SITE.replace("{export}", export))
        g = g2
        produce(g, 20, "R2")
        assert g.stop() == 0
        wait_for(lambda: sum(1 for _, _, ev in rs.events() if ev["event"]["action"] == "stopped") == 2, "stop 2")
        received = rs.events()
        no_copies_within_an_instance(received)
        blocked_in_log(g, 40)
        assert sum(1 for _, _, ev in received if ev["event"]["action"] == "blocked"
                   and ev["wardgate"].get("source_device") == "ehr") == 40
        assert (tmp_path / "data" / "export" / "syslog-soc.cursor").exists()
    finally:
        g.stop()
        up.stop()
        rs.kill()


def test_events_go_over_udp_too(tmp_path):
    rs = Rsyslog(tmp_path / "rsyslog", transport="udp").start()
    up = Upstream()
    g = gateway(tmp_path, up, export_section("soc-udp", f"127.0.0.1:{rs.port}", "udp",
                                             extra='min_severity = "high"\ncheckpoints = false\n'))
    try:
        produce(g, 20, "UDP")
        want = {i for i, e in blocked_in_log(g, 20).items() if e["wardgate"]["severity"] in ("high", "critical")}
        assert len(want) == 2  # the two heparin orders
        wait_for(lambda: want <= {ev["event"].get("id") for _, _, ev in rs.events()}, "the UDP messages")
        received = rs.events()
        check_messages(received)
        # min_severity = "high": the medium WG-HL7-001 blocks and the lifecycle events
        # stay home (the unknown device is the probe that waited for the listener).
        assert {ev["rule"]["id"] for _, _, ev in received} <= {"WG-INF-010", "WG-ACCESS-001"}
    finally:
        g.stop()
        up.stop()
        rs.kill()


# --- the EVE file ------------------------------------------------------------------

def eve_lines(paths):
    out = []
    for p in paths:
        if p.exists():
            for line in p.read_text().splitlines():
                out.append(json.loads(line))
    return out


def test_the_eve_file_rotates_by_size(tmp_path):
    up = Upstream()
    eve = tmp_path / "eve" / "alerts.json"
    g = gateway(tmp_path, up, f'\n[export.eve]\npath = "{eve}"\nrotate_bytes = 8192\nkeep = 50\n')
    try:
        produce(g, 40, "EVE")
        want = blocked_in_log(g, 40)
        files = lambda: [eve] + [Path(f"{eve}.{n}") for n in range(1, 51)]
        wait_for(lambda: set(want) <= {e["event"].get("id") for e in eve_lines(files())}, "every event in the files")
        assert Path(f"{eve}.1").exists(), "rotated by size"
        for p in files():
            if p.exists():
                assert p.stat().st_size <= 8192 + 4096, p
        lines = eve_lines(files())
        ids = [e["event"].get("id") for e in lines if e["event"].get("id")]
        assert len(ids) == len(set(ids)), "an event written twice"
        problems = [p for e in lines for p in ecs_check.check_event(e)]
        assert not problems, problems[:10]
    finally:
        g.stop()
        up.stop()


def test_the_eve_file_is_reopened_after_logrotate(tmp_path):
    """Debian's logrotate in `create` mode renames the file and signals the
    gateway (postrotate: SIGHUP); the gateway writes a new file from then on.
    Every event is in one of the two files, once."""
    logrotate = require_tool("logrotate")
    up = Upstream()
    eve = tmp_path / "eve.json"
    g = gateway(tmp_path, up, f'\n[export.eve]\npath = "{eve}"\n')
    try:
        produce(g, 10, "LR1")
        first = blocked_in_log(g, 10)
        wait_for(lambda: set(first) <= {e["event"].get("id") for e in eve_lines([eve])}, "the first events")
        conf = tmp_path / "logrotate.conf"
        pid = tmp_path / "data" / "wardgate.pid"
        conf.write_text(f"""{eve} {{
    rotate 3
    create 0640
    missingok
    notifempty
    postrotate
        kill -HUP $(cat {pid})
    endscript
}}
""")
        r = subprocess.run([logrotate, "-f", "-s", str(tmp_path / "logrotate.state"), str(conf)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        rotated = Path(f"{eve}.1")
        assert rotated.exists()
        wait_for(lambda: any(e["event"]["action"] == "reloaded" for e in g.events()), "the SIGHUP")
        produce(g, 10, "LR2")
        want = blocked_in_log(g, 20)
        wait_for(lambda: set(want) <= {e["event"].get("id") for e in eve_lines([eve, rotated])}, "every event")
        old, new = eve_lines([rotated]), eve_lines([eve])
        assert set(first) <= {e["event"].get("id") for e in old}
        second = set(want) - set(first)
        assert second <= {e["event"].get("id") for e in new}, "written to the new file after the SIGHUP"
        ids = [e["event"].get("id") for e in old + new if e["event"].get("id")]
        assert len(ids) == len(set(ids))
    finally:
        g.stop()
        up.stop()


def test_a_reload_that_changes_the_exports_is_refused(tmp_path):
    """[export] takes a restart: a reload that changes it leaves the running
    policy and exports as they are, and says why."""
    rs = Rsyslog(tmp_path / "rsyslog").start()
    up = Upstream()
    g = gateway(tmp_path, up, export_section("soc", f"127.0.0.1:{rs.port}"))
    try:
        g.config.write_text(g.config.read_text().replace('unreachable_alert_secs = 1', 'unreachable_alert_secs = 5'))
        g.cli("reload")
        wait_for(lambda: any(e["event"]["action"] == "failed" and "[export] changed" in e["event"]["reason"]
                             for e in g.events()), "the refusal")
        # Still exporting as before.
        produce(g, 3, "RL")
        want = blocked_in_log(g, 3)
        wait_for(lambda: set(want) <= {ev["event"].get("id") for _, _, ev in rs.events()}, "the events")
    finally:
        g.stop()
        up.stop()
        rs.kill()
