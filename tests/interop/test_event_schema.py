"""The event schema as a public contract (docs/events.md).

1. ecs_check itself: a good event passes; a wrong type, a field outside
   `wardgate.*` that ECS does not define and a value ECS does not allow each fail.
   (conftest.py runs ecs_check on every event every interop test records.)
2. A golden file: the real binary produces events of each kind (`wardgate demo`,
   `wardgate analyze` of a crafted capture, and a short `wardgate serve` session
   for monitor mode, store-and-forward, a dead upstream, a flood, a slow sender,
   a reload and a shutdown), and the set of field paths with their JSON value types per
   (event.action, wardgate.stage) must equal tests/interop/golden/event_schema.json.
   Values are not pinned: timestamps, ports, connection ids, policy hashes and
   reasons vary, the shape does not. WARDGATE_UPDATE_GOLDEN=1 rewrites the file; it
   refuses a field removed or retyped while SCHEMA_VERSION stays the same (the
   compatibility promise), unless WARDGATE_UPDATE_GOLDEN=force.
"""
import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

import ecs_check
from conftest import ROOT, Gateway, Upstream, free_port, require_module, wait_port, wardgate_bin

GOLDEN = ROOT / "tests" / "interop" / "golden" / "event_schema.json"
EVENT_RS = ROOT / "crates" / "wardgate-event" / "src" / "event.rs"
SB, EB = b"\x0b", b"\x1c\x0d"


def schema_version():
    m = re.search(r"pub const SCHEMA_VERSION: u32 = (\d+);", EVENT_RS.read_text())
    assert m, f"SCHEMA_VERSION not found in {EVENT_RS}"
    return int(m.group(1))


# --- 1. the checker can fail ----------------------------------------------------

GOOD = {
    "@timestamp": "2026-11-26T10:15:00.123Z",
    "ecs": {"version": ecs_check.ECS_VERSION},
    "event": {"kind": "alert", "action": "blocked", "reason": "connection refused", "severity": 3,
              "category": ["network", "intrusion_detection"], "type": ["denied"], "outcome": "failure"},
    "rule": {"id": "WG-ACCESS-001", "name": "unknown-device"},
    "source": {"ip": "127.0.0.66", "port": 40000},
    "destination": {"ip": "::1", "port": 2575},
    "network": {"protocol": "hl7-mllp", "transport": "tcp"},
    "observer": {"name": "icu-gw", "hostname": "gw1", "vendor": "wardgate", "product": "wardgate",
                 "version": "0.1.0", "type": "gateway"},
    "host": {"name": "icu-gw", "hostname": "gw1", "architecture": "x86_64", "os": {"type": "linux"}},
    "wardgate": {"schema": 2, "stage": "connection", "anything": {"goes": ["here", 1, None]}},
}


def with_(path, value):
    """GOOD with `path` (dotted) set to `value`."""
    ev = json.loads(json.dumps(GOOD))
    *parents, leaf = path.split(".")
    node = ev
    for p in parents:
        node = node.setdefault(p, {})
    node[leaf] = value
    return ev


def without(path):
    ev = json.loads(json.dumps(GOOD))
    ev.pop(path)
    return ev


def test_a_conformant_event_passes():
    assert ecs_check.check_event(GOOD) == []
    # Arrays of values, ECS allowed values, event.type paired with its category.
    assert ecs_check.check_event(with_("event.category", ["network", "intrusion_detection"])) == []
    assert ecs_check.check_event(with_("event.type", ["denied", "connection"])) == []
    assert ecs_check.check_event(with_("event.outcome", "failure")) == []


@pytest.mark.parametrize("path, value, expect", [
    ("event.severity", "3", "event.severity: ECS type long"),
    ("event.severity", 2.5, "event.severity: ECS type long"),
    ("event.severity", True, "event.severity: ECS type long"),
    ("source.port", 2**64, "source.port: ECS type long"),
    ("source.ip", "127.0.0.300", "source.ip: ECS type ip"),
    ("source.ip", 2130706433, "source.ip: ECS type ip"),
    ("rule.id", 101, "rule.id: ECS type keyword"),
    ("event", "blocked", "event: not an ECS field"),
    ("@timestamp", "26 Nov 2026 10:15", "@timestamp: ECS type date"),
    ("@timestamp", "2026-11-26T10:15:00", "@timestamp: ECS type date"),
    ("@timestamp", 1764152100123, "@timestamp: ECS type date"),
    ("network.protocol", {"name": "hl7"}, "network.protocol: ECS type keyword wants a value"),
])
def test_a_value_of_the_wrong_type_fails(path, value, expect):
    problems = ecs_check.check_event(with_(path, value))
    assert any(p.startswith(expect) for p in problems), problems


@pytest.mark.parametrize("path, value", [
    ("hl7.message_type", "ORU^R01"),  # wardgate's facts belong under wardgate.*
    ("event.stage", "message"),
    ("source.device", "ehr"),
    ("rule.severity", "high"),
])
def test_a_field_ecs_does_not_define_outside_wardgate_fails(path, value):
    problems = ecs_check.check_event(with_(path, value))
    assert problems == [f"{path}: not an ECS field (value {value!r}); wardgate's own fields go under wardgate.*"]


@pytest.mark.parametrize("path, value", [
    ("event.kind", "decision"),
    ("event.kind", "Alert"),
    ("event.category", "medical"),
    ("event.category", ["network", "medical"]),
    ("event.outcome", "blocked"),
    ("event.type", "blocked"),
])
def test_a_value_ecs_does_not_allow_fails(path, value):
    problems = ecs_check.check_event(with_(path, value))
    assert any(p.startswith(f"{path}: ") and "not an ECS allowed value" in p for p in problems), problems


def test_event_type_must_go_with_the_category():
    problems = ecs_check.check_event(with_("event.type", ["installation"]))  # a package type, not network
    assert problems == ["event.type: 'installation' is not an ECS expected type for event.category "
                        "['network', 'intrusion_detection']"]


@pytest.mark.parametrize("path", ["event.category", "event.type"])
def test_categorization_arrays_must_be_arrays(path):
    problems = ecs_check.check_event(with_(path, "network" if path == "event.category" else "denied"))
    assert any(p.startswith(f"{path}: ECS normalizes it to an array") for p in problems), problems


@pytest.mark.parametrize("path", ["event.type", "event.outcome", "observer", "host", "event.category"])
def test_categorization_and_the_observer_are_required(path):
    ev = json.loads(json.dumps(GOOD))
    *parents, leaf = path.split(".")
    node = ev
    for p in parents:
        node = node[p]
    node.pop(leaf)
    problems = ecs_check.check_event(ev)
    assert problems and all("required by ECS, missing" in p for p in problems), problems


def test_the_vendored_reference_is_the_shared_one():
    """tests/data/ecs is a copy of the shared ECS reference (../shared/ecs) where
    the checkout sits beside it; the check reads the copy so the repository
    stands alone."""
    shared = ROOT.parent / "shared" / "ecs" / "ecs_flat.yml"
    if not shared.exists():
        pytest.skip(f"{shared} not present beside the checkout")
    vendored = ROOT / "tests" / "data" / "ecs" / "ecs_flat.yml"
    assert vendored.read_bytes() == shared.read_bytes()


def test_timestamp_is_required():
    assert ecs_check.check_event(without("@timestamp")) == ["@timestamp: required by ECS, missing"]
    assert ecs_check.check_event(["not", "an", "object"]) == ["the event is not a JSON object: array"]


def test_the_ecs_version_is_required_and_is_the_references():
    assert ecs_check.check_event(without("ecs")) == ["ecs.version: required by ECS, missing"]
    problems = ecs_check.check_event(with_("ecs.version", "1.0.0"))
    assert problems and problems[0].startswith("ecs.version: '1.0.0', but the reference"), problems


# --- 2. the golden file -----------------------------------------------------------

def shape(value, path, out):
    """Adds (path -> JSON type) for every leaf of `value`; array elements are `path[]`."""
    if isinstance(value, dict):
        for k, v in value.items():
            shape(v, f"{path}.{k}" if path else k, out)
    elif isinstance(value, list):
        if not value:
            out.setdefault(f"{path}[]", set()).add("empty")
        for v in value:
            shape(v, f"{path}[]", out)
    else:
        out.setdefault(path, set()).add(ecs_check.json_type(value))


def schema_of(events):
    """{"action / stage": {"event.kind": [...], "event.category": [...], "fields": {path: type}}}."""
    acc = {}
    for ev in events:
        key = f"{ev['event']['action']} / {ev['wardgate']['stage']}"
        a = acc.setdefault(key, {"kind": set(), "category": set(), "fields": {}})
        a["kind"].add(ev["event"]["kind"])
        cat = ev["event"]["category"]
        a["category"].add(tuple(cat) if isinstance(cat, list) else cat)
        shape(ev, "", a["fields"])
    return {
        key: {
            "event.kind": sorted(a["kind"]),
            "event.category": [list(c) if isinstance(c, tuple) else c for c in sorted(a["category"])],
            "fields": {p: "|".join(sorted(t)) for p, t in sorted(a["fields"].items())},
        }
        for key, a in sorted(acc.items())
    }


def read_events(cfg):
    out = subprocess.run([wardgate_bin(), "events", "--json", "--config", str(cfg)],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def demo_events(tmp_path):
    d = tmp_path / "demo"
    r = subprocess.run([wardgate_bin(), "demo", "--dir", str(d)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return read_events(d / "wardgate.toml")


# The capture: HL7 from the EHR to the pump server (an allowed observation, an order
# over the hard limit, a segment missing from the capture), an unknown host, an FTP
# login with a default password, then SYNs enough to overflow a small flow table.
ANALYZE_SITE = """
[gateway]
data_dir = "{data_dir}"

[gateway.capture]
max_flows = 8

[[device]]
id = "ehr"
kind = "ehr"
addresses = ["127.0.0.2"]

[[device]]
id = "pump-server"
kind = "infusion-pump-server"
addresses = ["127.0.0.3"]

[[route]]
id = "infusion-orders"
protocol = "hl7-mllp"
listen = "127.0.0.1:{listen_port}"
upstream = "127.0.0.3:2575"
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
"""


def observation(cid):
    return "\r".join([
        f"MSH|^~\\&|MONGW|ICU|PUMPSRV|ICU|20261124031500||ORU^R01^ORU_R01|{cid}|P|2.6",
        "PID|||4711^^^HOSP^MR||Doe^Jane",
        "OBR|1|||69837^MDC_DEV_METER_PHYSIO_MULTI_PARAM_MDS^MDC",
        "OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.1|97|262688^MDC_DIM_PERCENT^MDC|||||R",
    ]) + "\r"


def admission(cid):
    return "\r".join([
        f"MSH|^~\\&|EHR|ICU|PUMPSRV|ICU|20261124031500||ADT^A01^ADT_A01|{cid}|P|2.6",
        "EVN|A01|20261124031500",
        "PID|||4711^^^HOSP^MR||Doe^Jane",
        "PV1|1|I|ICU^1^1",
    ]) + "\r"


def heparin_order(cid, rate_ml_h):
    """RGV^O15: heparin 25000 U in 500 mL (50 U/mL) at `rate_ml_h` mL/h."""
    rxg = ["RXG", "1", "", "", "HEP^heparin^LOCAL", "100", "", "mL^mL^UCUM"] + [""] * 7 + [
        str(rate_ml_h), "265266^MDC_DIM_MILLI_L_PER_HR^MDC", "25000", "U^U^UCUM", "", "", "", "", "500", "mL^mL^UCUM"]
    return "\r".join([
        f"MSH|^~\\&|EHR|ICU|PUMPSRV|ICU|20261124031500||RGV^O15^RGV_O15|{cid}|P|2.6",
        "PID|||4711^^^HOSP^MR||Doe^Jane",
        "ORC|RE|ORD-1^EHR",
        "|".join(rxg),
        "RXR|IV^Intravenous^HL70162",
    ]) + "\r"


def frame(text):
    return SB + text.encode() + EB


def craft_capture(path):
    require_module("scapy")
    from scapy.all import IP, TCP, Ether, wrpcap

    pkts = []

    def stream(client, server, chunks, isn=1000):
        (cip, cport), (sip, sport) = client, server
        fwd = Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:03") / IP(src=cip, dst=sip)
        back = Ether(src="02:00:00:00:00:03", dst="02:00:00:00:00:02") / IP(src=sip, dst=cip)
        pkts.append(fwd / TCP(sport=cport, dport=sport, flags="S", seq=isn))
        pkts.append(back / TCP(sport=sport, dport=cport, flags="SA", seq=5000, ack=isn + 1))
        off = 0
        for data, captured in chunks:
            if captured:
                pkts.append(fwd / TCP(sport=cport, dport=sport, flags="PA", seq=isn + 1 + off, ack=5001) / data)
            off += len(data)

    gap = frame(observation("GAP-1"))
    stream(("127.0.0.2", 40000), ("127.0.0.3", 2575), [
        (frame(observation("OK-1")), True),
        (frame(heparin_order("HARD-1", 100)), True),  # 5000 U/h > 2000 U/h hard limit
        (gap[:40], False),
        (gap[40:] + frame(observation("OK-2")), True),
    ])
    stream(("127.0.0.7", 40001), ("127.0.0.3", 2575), [(frame(observation("UNKNOWN-1")), True)])
    stream(("127.0.0.2", 40002), ("127.0.0.8", 21), [(b"USER admin\r\n", True), (b"PASS admin\r\n", True)])
    for i in range(20):
        pkts.append(Ether() / IP(src="127.0.0.2", dst="127.0.0.3") / TCP(sport=30000 + i, dport=2575, flags="S", seq=1))
    for i, p in enumerate(pkts):
        p.time = 1_700_000_000 + i * 0.001
    wrpcap(str(path), pkts)


def analyze_events(tmp_path):
    d = tmp_path / "analyze"
    d.mkdir()
    pcap = d / "crafted.pcap"
    craft_capture(pcap)
    cfg = d / "site.toml"
    cfg.write_text(ANALYZE_SITE.format(data_dir=d / "data", listen_port=free_port()))
    r = subprocess.run([wardgate_bin(), "analyze", "--config", str(cfg), "--json", "--all", str(pcap)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr
    printed = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    assert printed[-1].get("summary") is True
    # What analyze prints and what it records: the same schema.
    return printed[:-1] + read_events(cfg)


SERVE_SITE = """
[gateway]
data_dir = "{data_dir}"
max_frame_bytes = {max_frame}
frame_timeout_secs = 1
shutdown_grace_secs = 1

[gateway.audit]
checkpoint_every = 50
checkpoint_interval_ms = 100

[gateway.limits]
flood_quiet_secs = 600

[[device]]
id = "ehr"
kind = "ehr"
addresses = ["127.0.0.2"]

[[device]]
id = "pump-server"
kind = "infusion-pump-server"
addresses = ["127.0.0.3"]

[[device]]
id = "lab-analyser"
kind = "lab-analyser"
addresses = ["127.0.0.9"]

[device.limits]
max_connections_per_device = 1

[[route]]
id = "monitored"
protocol = "hl7-mllp"
listen = "127.0.0.1:{listen_port}"
upstream = "127.0.0.3:{upstream_port}"
senders = ["ehr", "lab-analyser"]
messages = ["ORU^R01"]
enforcement = "monitor"

[[route]]
id = "queued"
protocol = "hl7-mllp"
listen = "127.0.0.1:{queued_port}"
upstream = "127.0.0.3:{upstream_port}"
senders = ["ehr"]
messages = ["ORU^R01"]
delivery = "store-and-forward"

[route.queue]
retry_min_ms = 50
retry_max_ms = 200

[[route]]
id = "dead-upstream"
protocol = "hl7-mllp"
listen = "127.0.0.1:{dead_port}"
upstream = "127.0.0.3:{dead_upstream_port}"
senders = ["ehr"]
messages = ["ORU^R01"]
"""


class ArUpstream(Upstream):
    """conftest's MLLP upstream, answering AR to control ids starting PARK."""

    async def _handle(self, reader, writer):
        import asyncio

        import hl7

        try:
            while not writer.is_closing():
                block = await reader.readblock()
                self.received.append(block)
                msg = hl7.parse(block.decode())
                code = "AR" if str(msg.segment("MSH")[10]).startswith("PARK") else "AA"
                writer.writemessage(str(msg.create_ack(ack_code=code, application="PUMPSRV", facility="ICU")))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


def connect(port, source):
    return socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))


def exchange(sock, text):
    sock.sendall(frame(text))
    buf = b""
    while not buf.endswith(EB):
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf


def send(port, text, source="127.0.0.2"):
    with connect(port, source) as s:
        return exchange(s, text)


def ack_code(reply):
    msa = next(seg for seg in reply.strip(SB + EB).decode().split("\r") if seg.startswith("MSA|"))
    return msa.split("|")[1]


def wait_events(g, pred, what, timeout=15):
    deadline = time.monotonic() + timeout
    while True:
        evs = g.events()
        if pred(evs) or time.monotonic() > deadline:
            assert pred(evs), f"timed out waiting for {what}: {[(e['event']['action'], e.get('rule', {}).get('id')) for e in evs]}"
            return evs


def has(evs, action, rule=None):
    return any(e["event"]["action"] == action and (rule is None or e.get("rule", {}).get("id") == rule)
               for e in evs)


def serve_events(tmp_path):
    d = tmp_path / "serve"
    d.mkdir()
    up = ArUpstream()
    ports = {"queued_port": free_port(), "dead_port": free_port(), "dead_upstream_port": free_port()}
    g = Gateway(d, up.port, site=SERVE_SITE, **ports)
    held = None
    try:
        wait_port("127.0.0.1", ports["queued_port"])
        wait_port("127.0.0.1", ports["dead_port"])
        mon = g.listen_port
        # Monitor mode: allowed, and a type not on the route forwarded as would-block.
        assert ack_code(send(mon, observation("MON-1"))) == "AA"
        assert ack_code(send(mon, admission("MON-2"))) == "AA"
        # Store-and-forward: one delivered, one the upstream refuses (parked), re-driven.
        assert ack_code(send(ports["queued_port"], observation("Q-1"))) == "AA"
        assert ack_code(send(ports["queued_port"], observation("PARK-1"))) == "AA"
        wait_events(g, lambda e: has(e, "delivered") and has(e, "parked"), "delivered and parked")
        g.cli("queue", "--redrive-all")
        wait_events(g, lambda e: has(e, "redriven"), "redriven")
        # An upstream that is down.
        assert ack_code(send(ports["dead_port"], observation("DEAD-1"))) == "AE"
        # A flood: the lab analyser may hold one connection; the second is refused.
        held = connect(mon, "127.0.0.9")
        wait_events(g, lambda e: sum(1 for x in e if x.get("wardgate", {}).get("source_device") == "lab-analyser") >= 1,
                    "the lab analyser's connection admitted")
        try:  # reset right after accept: in connect() or at the first read
            with connect(mon, "127.0.0.9") as refused:
                assert refused.recv(1) == b""
        except ConnectionResetError:
            pass
        wait_events(g, lambda e: has(e, "blocked", "WG-FLOOD-001"), "WG-FLOOD-001")
        # The held connection dribbles half a frame: closed at the frame timeout.
        held.sendall(SB + b"MSH|^~\\&|LAB")
        wait_events(g, lambda e: has(e, "closed", "WG-CONN-001"), "WG-CONN-001")
        # A reload that changes the policy.
        g.config.write_text(g.config.read_text().replace('messages = ["ORU^R01"]\nenforcement',
                                                         'messages = ["ORU^R01", "ADT^A01"]\nenforcement', 1))
        g.cli("reload")
        wait_events(g, lambda e: has(e, "reloaded") and sum(1 for x in e if x["event"]["action"] == "policy-applied") >= 2,
                    "reloaded and the new policy applied")
    finally:
        # The open flood episode is summarised at shutdown.
        code = g.stop()
        if held is not None:
            held.close()
        up.stop()
    assert code == 0, g.log_text()[-3000:]
    return read_events(g.config)


def compare(golden, current):
    """(compatible additions, incompatible changes), as lines."""
    added, broken = [], []
    for key in sorted(set(golden) | set(current)):
        if key not in current:
            broken.append(f"{key}: no longer produced")
            continue
        if key not in golden:
            added.append(f"{key}: new")
            continue
        g, c = golden[key], current[key]
        for enum in ("event.kind", "event.category"):
            if g[enum] != c[enum]:
                broken.append(f"{key}: {enum} {g[enum]} -> {c[enum]}")
        for path in sorted(set(g["fields"]) | set(c["fields"])):
            if path not in c["fields"]:
                broken.append(f"{key}: {path} ({g['fields'][path]}) gone")
            elif path not in g["fields"]:
                added.append(f"{key}: {path} ({c['fields'][path]}) added")
            elif g["fields"][path] != c["fields"][path]:
                broken.append(f"{key}: {path} {g['fields'][path]} -> {c['fields'][path]}")
    return added, broken


def test_the_event_schema_matches_the_golden_file(tmp_path):
    events = demo_events(tmp_path) + analyze_events(tmp_path) + serve_events(tmp_path)
    version = schema_version()
    problems = {}
    for ev in events:
        assert ev["wardgate"]["schema"] == version, ev
        for v in ecs_check.check_event(ev):
            problems.setdefault(v, ev)
    assert not problems, "\n".join(f"{v}\n    in {json.dumps(ev)}" for v, ev in problems.items())

    current = schema_of(events)
    doc = {
        "about": "Field paths and JSON value types of wardgate's events per event.action / wardgate.stage, "
                 "pinned by tests/interop/test_event_schema.py; see docs/events.md. "
                 "Regenerate with WARDGATE_UPDATE_GOLDEN=1.",
        "schema": version,
        "ecs": ecs_check.ECS_VERSION,
        "events": current,
    }
    update = os.environ.get("WARDGATE_UPDATE_GOLDEN", "")
    golden = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else None
    if golden is None and not update:
        pytest.fail(f"{GOLDEN} is missing: run with WARDGATE_UPDATE_GOLDEN=1 to create it")
    added, broken = compare(golden["events"], current) if golden else ([], [])
    same_version = golden is not None and golden.get("schema") == version
    if update:
        if broken and same_version and update != "force":
            pytest.fail(
                "refusing to update the golden file: fields were removed or changed while "
                f"SCHEMA_VERSION is still {version}. Bump it in {EVENT_RS.relative_to(ROOT)} and say why in "
                "docs/events.md (or, if only the test scenario changed, WARDGATE_UPDATE_GOLDEN=force):\n  "
                + "\n  ".join(broken))
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
        return
    msg = []
    if broken:
        msg.append("incompatible changes (a field gone, retyped, or an event no longer produced): "
                   + ("bump SCHEMA_VERSION in crates/wardgate-event/src/event.rs, document it in docs/events.md, "
                      if same_version else "")
                   + "then WARDGATE_UPDATE_GOLDEN=1:\n  " + "\n  ".join(broken))
    if added:
        msg.append("compatible additions (document them in docs/events.md, then WARDGATE_UPDATE_GOLDEN=1):\n  "
                   + "\n  ".join(added))
    if golden.get("schema") != version:
        msg.append(f"the golden file is of schema {golden.get('schema')}, the code of {version}: "
                   "WARDGATE_UPDATE_GOLDEN=1")
    assert not msg, "event schema differs from tests/interop/golden/event_schema.json:\n" + "\n".join(msg)


def test_the_conftest_hook_reads_audit_logs_and_reports_violations(monkeypatch):
    """conftest's per-test check on a hand-written audit log: a context record, a
    compact routine record (expanded by `wardgate events` as every reader does) and
    one event that breaks ECS. Kept outside pytest's temp directory, which the
    session sweep checks."""
    import shutil
    import tempfile

    import conftest

    ctx = {**GOOD, "event": {**GOOD["event"], "kind": "event", "action": "allowed", "severity": 0,
                             "reason": "connection admitted"},
           "wardgate": {"schema": 2, "route": "r", "connection_id": 7, "stage": "connection"}}
    ctx.pop("rule")
    compact = {"@timestamp": "2026-11-26T10:15:00.124Z", "event": {"action": "allowed"},
               "wardgate": {"connection_id": 7, "hl7": {"message_type": "ORU^R01", "control_id": "C-1"},
                            "bytes": 100}}
    bad = with_("event.kind", "decision")
    bad["hl7"] = {"message_type": "ORU^R01"}
    monkeypatch.delenv("WARDGATE_ECS_CHECK", raising=False)
    root = Path(tempfile.mkdtemp(prefix="wardgate-ecs-hook-"))
    audit = conftest.EventSchemaAudit()
    try:
        (root / "data" / "audit").mkdir(parents=True)
        (root / "data" / "audit" / "audit.log").write_text("".join(
            f"R\t{i}\t{'0' * 64}\t{json.dumps(ev, separators=(',', ':'))}\n"
            for i, ev in enumerate([ctx, compact, bad], 1)))
        report = audit.check_tree(root)
        assert audit.events == 3 and audit.logs == 1
        assert ("allowed", "message", "-") in audit.combos, audit.combos  # the compact record, expanded
        assert "event.kind: 'decision' is not an ECS allowed value" in report, report
        assert "hl7.message_type: not an ECS field" in report, report
        assert "blocked/connection/WG-ACCESS-001" in report, report
        assert audit.check_tree(root) == "", "each audit log is read once"
    finally:
        shutil.rmtree(root, ignore_errors=True)
        if audit.scratch is not None:  # the audit's own scratch config
            shutil.rmtree(audit.scratch, ignore_errors=True)
