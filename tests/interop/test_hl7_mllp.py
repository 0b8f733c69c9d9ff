"""HL7 v2 over MLLP through `wardgate serve`, with real peers on both sides.

Senders: the `hl7` package's MLLPClient and asyncio MLLP streams, messages built and
checked with hl7apy; upstream: the `hl7` package's MLLP server. Devices are told
apart by source address: 127.0.0.2 is the EHR (an allowed sender), 127.0.0.3 the
pump server (enrolled, not a sender), 127.0.0.9 a lab analyser (enrolled, not a
sender), 127.0.0.66 nobody.
"""
import asyncio
import json
import signal
import socket
import subprocess
import time

import hl7
import hl7.client
import hl7.mllp
import pytest
from hl7apy.parser import parse_message, parse_segment

from conftest import Gateway, require_tool, start_capture

SB, EB = b"\x0b", b"\x1c\x0d"


class SourceBoundClient(hl7.client.MLLPClient):
    """hl7's MLLPClient, connecting from a chosen loopback address (a device)."""

    def __init__(self, host, port, source):
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.settimeout(10)
        self.socket.bind((source, 0))
        self.socket.connect((host, port))
        self.encoding = "utf-8"


def rxg(**fields):
    """An RXG segment with fields set by number (f4=..., f15=...), checked by hl7apy."""
    n = max(int(k[1:]) for k in fields)
    parts = ["RXG"] + [""] * n
    for k, v in fields.items():
        parts[int(k[1:])] = v
    seg = "|".join(parts)
    parsed = parse_segment(seg, version="2.6")
    for k, v in fields.items():
        assert getattr(parsed, f"rxg_{int(k[1:])}").to_er7() == v
    return seg


def heparin(rate_ml_h, **extra):
    return rxg(
        f1="1", f4="HEP^heparin^LOCAL", f5="100", f7="mL^mL^UCUM",
        f15=str(rate_ml_h), f16="265266^MDC_DIM_MILLI_L_PER_HR^MDC",
        f17="25000", f18="U^U^UCUM", f23="500", f24="mL^mL^UCUM", **extra,
    )


def order(control_id, *rxgs, sep="^"):
    segs = [
        f"MSH|{sep}~\\&|EHR|ICU|PUMPSRV|ICU|20261124031500||RGV{sep}O15{sep}RGV_O15|{control_id}|P|2.6",
        f"PID|||4711{sep}{sep}{sep}HOSP{sep}MR||Doe{sep}Jane",
        f"ORC|RE|ORD-1{sep}EHR",
    ]
    for r in rxgs:
        segs += [r.replace("^", sep), f"RXR|IV{sep}Intravenous{sep}HL70162"]
    text = "\r".join(segs) + "\r"
    if sep == "^":
        assert parse_message(text, find_groups=False).msh.msh_10.to_er7() == control_id
    return text


def observation(control_id, n_obx=3):
    segs = [
        f"MSH|^~\\&|MONGW|ICU|EHR|ICU|20261124031500||ORU^R01^ORU_R01|{control_id}|P|2.6",
        "PID|||4711^^^HOSP^MR||Doe^Jane",
        "OBR|1|||69837^MDC_DEV_METER_PHYSIO_MULTI_PARAM_MDS^MDC",
    ]
    segs += [f"OBX|{i}|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.{i}|9{i % 10}|262688^MDC_DIM_PERCENT^MDC|||||R" for i in range(1, n_obx + 1)]
    text = "\r".join(segs) + "\r"
    parse_message(text, find_groups=False)
    return text


def msa(ack_text):
    """MSA-1, MSA-2 and MSA-3 (unescaped, as a receiving application reads it)."""
    m = hl7.parse(ack_text)
    seg = m.segment("MSA")
    text = m.unescape(str(seg[3])) if len(seg) > 3 else ""
    return str(seg[1]), str(seg[2]), text


def unframe(block):
    """MLLPClient returns the whole frame; the HL7 payload is what sits inside it."""
    assert block.startswith(SB) and block.endswith(EB), block
    return block[1:-2].decode()


def send(gateway, text, source="127.0.0.2"):
    with SourceBoundClient(*gateway.addr, source) as c:
        return unframe(c.send_message(text))


def wait_for(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def events_until(gateway, pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        evs = gateway.events()
        if pred(evs) or time.monotonic() > deadline:
            return evs
        time.sleep(0.1)


def test_allowed_message_arrives_byte_for_byte_and_ack_is_relayed_unchanged(gateway, upstream):
    text = observation("OBS-1")
    reply = send(gateway, text)
    assert upstream.received == [text.encode()]
    assert reply == upstream.acks[0], "the upstream ACK must come back unchanged"
    assert msa(reply)[:2] == ("AA", "OBS-1")


def test_hard_limit_order_is_blocked_with_AR_and_never_forwarded(gateway, upstream):
    reply = send(gateway, order("ORD-41", heparin(41)))
    code, control, text = msa(reply)
    assert (code, control) == ("AR", "ORD-41")
    assert "hard limit" in text
    assert upstream.received == []
    evs = events_until(gateway, lambda e: any(x.get("rule", {}).get("id") == "WG-INF-010" for x in e))
    ev = next(x for x in evs if x.get("rule", {}).get("id") == "WG-INF-010")
    assert ev["event"]["action"] == "blocked"
    assert ev["wardgate"]["hl7"]["control_id"] == "ORD-41"
    assert ev["source"]["ip"] == "127.0.0.2"
    assert ev["wardgate"]["infusion"][0]["rate"] == 2050.0


def test_soft_limit_order_is_forwarded_and_alerted(gateway, upstream):
    text = order("ORD-35", heparin(35))
    reply = send(gateway, text)
    assert msa(reply)[0] == "AA"
    assert upstream.received == [text.encode()]
    evs = events_until(gateway, lambda e: any(x["event"]["action"] == "alerted" for x in e))
    assert any(x["event"]["action"] == "alerted" and x["rule"]["id"] == "WG-INF-012" for x in evs)


def test_disallowed_message_type_gets_AR_with_the_original_control_id(gateway, upstream):
    adt = "MSH|^~\\&|EHR|ICU|PUMPSRV|ICU|20261124031500||ADT^A01^ADT_A01|ADT-9|P|2.5\rPID|||1\r"
    code, control, text = msa(send(gateway, adt))
    assert (code, control) == ("AR", "ADT-9")
    assert "ADT^A01" in text
    assert upstream.received == []


def test_hash_component_separator_is_parsed_like_caret(gateway, upstream):
    text = order("ORD-HASH", heparin(41), sep="#")
    assert text.startswith("MSH|#~\\&|")
    reply = send(gateway, text)
    code, control, _ = msa(reply.replace("#", "^").replace("MSH|^~", "MSH|^~"))
    assert (code, control) == ("AR", "ORD-HASH")
    assert upstream.received == []
    ok = order("ORD-HASH-OK", heparin(20), sep="#")
    send(gateway, ok)
    assert upstream.received == [ok.encode()]


@pytest.mark.parametrize("source, rule", [("127.0.0.66", "WG-ACCESS-001"), ("127.0.0.9", "WG-ACCESS-002"), ("127.0.0.3", "WG-ACCESS-002")])
def test_unknown_or_unauthorised_devices_are_refused(gateway, upstream, source, rule):
    s = socket.socket()
    s.settimeout(10)
    s.bind((source, 0))
    s.connect(gateway.addr)
    try:
        s.sendall(SB + observation("SNEAK-1").encode() + EB)
        reply = s.recv(65536)
    except ConnectionError:
        reply = b""
    finally:
        s.close()
    assert reply == b"", f"a refused peer got a reply: {reply!r}"
    assert upstream.received == []
    # (The fixture's readiness probe from 127.0.0.1 is refused as an unknown device too.)
    def mine(x):
        return x.get("rule", {}).get("id") == rule and x["source"]["ip"] == source

    evs = events_until(gateway, lambda e: any(mine(x) for x in e))
    ev = next(x for x in evs if mine(x))
    assert ev["event"]["action"] == "blocked"
    assert ev["wardgate"]["stage"] == "connection"


def test_split_and_coalesced_frames_through_asyncio_streams(gateway, upstream):
    texts = [observation(f"SPLIT-{i}") for i in range(6)]

    async def run():
        reader, writer = await hl7.mllp.open_hl7_connection(*gateway.addr, local_addr=("127.0.0.2", 0))
        # Three messages coalesced in one write...
        writer.write(b"".join(SB + t.encode() + EB for t in texts[:3]))
        await writer.drain()
        acks = [await asyncio.wait_for(reader.readmessage(), 10) for _ in range(3)]
        # ...then three written one byte at a time.
        for t in texts[3:]:
            for b in SB + t.encode() + EB:
                writer.write(bytes([b]))
                await writer.drain()
        acks += [await asyncio.wait_for(reader.readmessage(), 10) for _ in range(3)]
        writer.close()
        return acks

    acks = asyncio.run(run())
    assert [str(a.segment("MSA")[2]) for a in acks] == [f"SPLIT-{i}" for i in range(6)]
    assert upstream.received == [t.encode() for t in texts]


def test_replies_keep_request_order_when_pipelined(gateway, upstream):
    msgs = [observation("P-1"), order("P-2", heparin(60)), observation("P-3"), order("P-4", heparin(70))]

    async def run():
        reader, writer = await hl7.mllp.open_hl7_connection(*gateway.addr, local_addr=("127.0.0.2", 0))
        writer.write(b"".join(SB + m.encode() + EB for m in msgs))
        await writer.drain()
        acks = [await asyncio.wait_for(reader.readmessage(), 10) for _ in msgs]
        writer.close()
        return acks

    acks = asyncio.run(run())
    got = [(str(a.segment("MSA")[1]), str(a.segment("MSA")[2])) for a in acks]
    assert got == [("AA", "P-1"), ("AR", "P-2"), ("AA", "P-3"), ("AR", "P-4")]


@pytest.mark.parametrize("garbage, rule", [
    (b"GET / HTTP/1.1\r\nHost: pump\r\n\r\n", "WG-MLLP-001"),
    (SB + b"MSH|^~\\&|X" + b"A" * 70000, "WG-MLLP-002"),
    (SB + b"NOT-HL7 AT ALL" + EB, "WG-HL7-P"),
])
def test_malformed_input_gets_a_nak_and_close_while_others_carry_on(gateway, upstream, garbage, rule):
    bad = socket.socket()
    bad.settimeout(10)
    bad.bind(("127.0.0.2", 0))
    bad.connect(gateway.addr)
    # A healthy connection opened before the attack keeps working through it.
    with SourceBoundClient(*gateway.addr, "127.0.0.2") as good:
        bad.sendall(garbage)
        data = b""
        while True:
            chunk = bad.recv(65536)
            if not chunk:
                break
            data += chunk
        bad.close()
        assert data.startswith(SB) and data.endswith(EB), data
        code = msa(data[1:-2].decode())[0]
        assert code == "AE"
        reply = unframe(good.send_message(observation("STILL-OK")))
        assert msa(reply)[:2] == ("AA", "STILL-OK")
    evs = events_until(gateway, lambda e: any(x.get("rule", {}).get("id", "").startswith(rule) for x in e))
    assert any(x.get("rule", {}).get("id", "").startswith(rule) for x in evs), [x.get("rule") for x in evs]
    assert upstream.received == [observation("STILL-OK").encode()]


def test_truncated_frame_is_recorded_when_the_sender_hangs_up(gateway, upstream):
    s = socket.socket()
    s.bind(("127.0.0.2", 0))
    s.connect(gateway.addr)
    s.sendall(SB + observation("CUT-1").encode()[:40])
    s.close()
    evs = events_until(gateway, lambda e: any(x.get("rule", {}).get("id") == "WG-MLLP-004" for x in e))
    assert any(x.get("rule", {}).get("id") == "WG-MLLP-004" for x in evs)
    assert upstream.received == []


def test_slow_sender_is_cut_off(gateway, upstream):
    s = socket.socket()
    s.settimeout(15)
    s.bind(("127.0.0.2", 0))
    s.connect(gateway.addr)
    t0 = time.monotonic()
    s.sendall(SB + b"MSH|^~\\&|")
    closed = False
    for b in b"SLOW|LORIS|" * 10:  # one byte every 0.5 s, far slower than the 3 s frame timeout allows
        try:
            s.sendall(bytes([b]))
        except OSError:
            closed = True
            break
        time.sleep(0.5)
        if time.monotonic() - t0 > 12:
            break
    if not closed:
        s.settimeout(5)
        try:
            closed = s.recv(1024) == b""
        except OSError:
            closed = True
    s.close()
    assert closed, "the slow sender was not disconnected"
    evs = events_until(gateway, lambda e: any(x.get("rule", {}).get("id") == "WG-CONN-001" for x in e))
    assert any(x.get("rule", {}).get("id") == "WG-CONN-001" for x in evs)


def test_upstream_down_gets_AE_then_the_same_connection_resumes_when_it_is_back(tmp_path):
    from conftest import Upstream, free_port

    port = free_port("127.0.0.3")
    g = Gateway(tmp_path, port)
    back = None
    try:
        with SourceBoundClient(*g.addr, "127.0.0.2") as c:
            code, control, text = msa(unframe(c.send_message(observation("RETRY-1"))))
            assert (code, control) == ("AE", "RETRY-1")
            assert "upstream" in text
            # Policy still applies while degraded: a disallowed type gets AR, not AE.
            adt = "MSH|^~\\&|EHR|ICU|PUMPSRV|ICU|20261124031500||ADT^A01^ADT_A01|ADT-D|P|2.5\rPID|||1\r"
            assert msa(unframe(c.send_message(adt)))[:2] == ("AR", "ADT-D")
            back = Upstream(port=port)
            code, control, _ = msa(unframe(c.send_message(observation("RETRY-2"))))
            assert (code, control) == ("AA", "RETRY-2")
            assert back.received == [observation("RETRY-2").encode()]
            assert msa(unframe(c.send_message(observation("RETRY-3"))))[:2] == ("AA", "RETRY-3")
    finally:
        assert g.stop() == 0
        if back:
            back.stop()
    assert any(e.get("rule", {}).get("id") == "WG-UP-001" for e in g.events())


def test_sigterm_drains_and_the_audit_log_verifies(gateway, upstream):
    for i in range(20):
        send(gateway, observation(f"AUD-{i}"))
    send(gateway, order("AUD-BLOCK", heparin(90)))
    assert gateway.stop() == 0, gateway.log_text()
    verify = gateway.cli("audit", "verify", check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "intact" in verify.stdout
    evs = gateway.events()
    actions = [e["event"]["action"] for e in evs]
    assert actions[0] == "started" and actions[-1] == "stopped"
    assert actions.count("allowed") >= 20
    assert sum(1 for e in evs if e.get("rule", {}).get("id") == "WG-INF-010") == 1
    # The table view works too.
    table = gateway.cli("events").stdout
    assert "WG-INF-010" in table and "AUD-BLOCK" in table


def test_routine_records_are_compact_on_disk_and_full_in_events(gateway, upstream):
    """A routine decision is written as a short record naming its connection; the
    events command gives it back with every ECS field, from that connection's
    first record. Two connections keep their own ids and ports."""
    ports = []
    with SourceBoundClient(*gateway.addr, "127.0.0.2") as c:
        ports.append(c.socket.getsockname()[1])
        for i in range(3):
            assert msa(unframe(c.send_message(observation(f"CMP-A{i}"))))[0] == "AA"
    with SourceBoundClient(*gateway.addr, "127.0.0.2") as c:
        ports.append(c.socket.getsockname()[1])
        assert msa(unframe(c.send_message(observation("CMP-B0"))))[0] == "AA"
    assert gateway.stop() == 0, gateway.log_text()
    assert gateway.cli("audit", "verify", check=False).returncode == 0

    raw = [l for l in (gateway.dir / "data" / "audit" / "audit.log").read_bytes().split(b"\n")
           if b"CMP-" in l]
    assert len(raw) == 4
    for line in raw:
        doc = json.loads(line.split(b"\t", 3)[3])
        assert "kind" not in doc["event"] and "source" not in doc, doc
        assert len(line) < 400, len(line)

    evs = [e for e in gateway.events()
           if e.get("wardgate", {}).get("hl7", {}).get("control_id", "").startswith("CMP-")]
    assert [e["wardgate"]["hl7"]["control_id"] for e in evs] == ["CMP-A0", "CMP-A1", "CMP-A2", "CMP-B0"]
    admitted = {e["source"]["port"]: e for e in gateway.events()
                if e["event"]["reason"] == "connection admitted"}
    for e in evs:
        port = ports[0] if e["wardgate"]["hl7"]["control_id"].startswith("CMP-A") else ports[1]
        assert e["event"]["action"] == "allowed" and e["event"]["kind"] == "event"
        assert e["event"]["reason"] == "ORU^R01 allowed on route infusion-orders"
        assert e["source"] == {"ip": "127.0.0.2", "port": port}
        assert e["destination"] == {"ip": "127.0.0.3", "port": upstream.port}
        assert e["wardgate"]["destination_device"] == "pump-server"
        assert e["network"]["protocol"] == "hl7-mllp"
        assert e["wardgate"]["route"] == "infusion-orders"
        assert e["wardgate"]["source_device"] == "ehr"
        assert e["wardgate"]["stage"] == "message"
        assert e["wardgate"]["hl7"]["message_type"] == "ORU^R01"
        assert e["wardgate"]["connection_id"] == admitted[port]["wardgate"]["connection_id"]
    assert evs[0]["wardgate"]["connection_id"] != evs[3]["wardgate"]["connection_id"]


def test_audit_verify_detects_a_changed_record(gateway, upstream):
    for i in range(5):
        send(gateway, observation(f"T-{i}"))
    assert gateway.stop() == 0
    log = gateway.dir / "data" / "audit" / "audit.log"
    lines = log.read_bytes().split(b"\n")
    idx = next(i for i, l in enumerate(lines) if b"T-3" in l)
    lines[idx] = lines[idx].replace(b"T-3", b"T-8")
    log.write_bytes(b"\n".join(lines))
    verify = gateway.cli("audit", "verify", check=False)
    assert verify.returncode == 1, verify.stdout
    assert f"line {idx + 1}" in verify.stdout, verify.stdout


def test_audit_verify_with_an_exported_key(gateway, upstream, tmp_path):
    send(gateway, observation("KEY-1"))
    assert gateway.stop() == 0
    exported = tmp_path / "audit.pub.offbox"
    exported.write_text((gateway.dir / "data" / "audit" / "audit.pub").read_text())
    ok = gateway.cli("audit", "verify", "--pubkey", str(exported), check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "note:" not in ok.stdout
    # A log re-signed by someone else's key (or checked against the wrong one) fails.
    stranger = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    bad = gateway.cli("audit", "verify", "--pubkey", stranger, check=False)
    assert bad.returncode == 1
    assert "key" in bad.stdout


def test_check_reports_every_problem_with_its_location(tmp_path):
    from conftest import wardgate_bin

    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[gateway]\ndata_dir = "d"\n\n[[device]]\nid = "ehr"\nkind = "ehr"\naddresses = ["127.0.0.2"]\n\n'
        '[[route]]\nid = "r"\nprotocol = "hl7-mllp"\nlisten = "127.0.0.1:1"\nupstream = "nowhere"\n'
        'senders = ["ehr", "ghost"]\nmessages = ["ORU^R01"]\n'
    )
    r = subprocess.run([wardgate_bin(), "check", "--config", str(bad)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert f"{bad}:13:" in r.stderr and "nowhere" in r.stderr, r.stderr
    assert f"{bad}:14:" in r.stderr and "ghost" in r.stderr, r.stderr
    r = subprocess.run([wardgate_bin(), "serve", "--config", str(bad)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "ghost" in r.stderr


def test_tshark_dissects_the_same_messages_wardgate_recorded(tmp_path, upstream):
    tshark = require_tool("tshark")
    g = Gateway(tmp_path, upstream.port)
    pcap = tmp_path / "hl7.pcapng"
    cap = start_capture(f"tcp port {g.listen_port}", pcap)
    try:
        sent = [observation("TS-1"), order("TS-2", heparin(24)), order("TS-3", heparin(90)), observation("TS-4", n_obx=8)]
        for m in sent:
            send(g, m)
        time.sleep(0.5)
    finally:
        cap.terminate()
        cap.wait(10)
        assert g.stop() == 0
    out = subprocess.run(
        [tshark, "-r", str(pcap), "-d", f"tcp.port=={g.listen_port},hl7", "-Y", f"hl7 && tcp.dstport=={g.listen_port}",
         "-T", "fields", "-E", "separator=/t", "-e", "hl7.message.type", "-e", "hl7.event.type", "-e", "hl7.segment"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    dissected = []
    for row in out.splitlines():
        mtype, event, segments = (row.split("\t") + ["", "", ""])[:3]
        msh = next(s for s in segments.split(",") if s.startswith("MSH"))
        dissected.append((f"{mtype}^{event}", msh.split("|")[9]))
    recorded = [
        (e["wardgate"]["hl7"]["message_type"], e["wardgate"]["hl7"]["control_id"])
        for e in g.events()
        if e["wardgate"]["stage"] == "message"
    ]
    assert dissected == recorded == [("ORU^R01", "TS-1"), ("RGV^O15", "TS-2"), ("RGV^O15", "TS-3"), ("ORU^R01", "TS-4")]


def test_sigterm_lets_an_in_flight_message_finish(tmp_path):
    """SIGTERM while the upstream is still working on a message: the sender still
    gets the upstream's ACK, then the gateway exits cleanly with a sealed log."""
    from conftest import Upstream

    slow = Upstream(ack_delay=1.5)
    g = Gateway(tmp_path, slow.port)
    try:
        with SourceBoundClient(*g.addr, "127.0.0.2") as c:
            c.socket.sendall(SB + observation("INFLIGHT-1").encode() + EB)
            assert wait_for(lambda: len(slow.received) == 1)
            g.proc.send_signal(signal.SIGTERM)
            data = b""
            while not data.endswith(EB):
                chunk = c.socket.recv(65536)
                assert chunk, "closed before the in-flight ACK arrived"
                data += chunk
        assert msa(unframe(data))[:2] == ("AA", "INFLIGHT-1")
        assert g.proc.wait(20) == 0, g.log_text()
        # A new connection after SIGTERM is refused: the listener is gone.
        with pytest.raises(OSError):
            socket.create_connection(g.addr, timeout=2)
        verify = g.cli("audit", "verify", check=False)
        assert verify.returncode == 0, verify.stdout
    finally:
        g.stop()
        slow.stop()


def test_sigterm_closes_idle_connections_at_once(gateway, upstream):
    """Open connections with nothing in flight do not hold shutdown up until the
    grace period (10 s) runs out: each is told of the stop and closes."""
    clients = [SourceBoundClient(*gateway.addr, "127.0.0.2") for _ in range(4)]
    try:
        for i, c in enumerate(clients):
            c.socket.sendall(SB + observation(f"IDLE-{i}").encode() + EB)
            data = b""
            while not data.endswith(EB):
                chunk = c.socket.recv(65536)
                assert chunk
                data += chunk
            assert msa(unframe(data))[0] == "AA"
        started = time.monotonic()
        gateway.proc.send_signal(signal.SIGTERM)
        assert gateway.proc.wait(20) == 0, gateway.log_text()
        took = time.monotonic() - started
        assert took < 3, f"shutdown took {took:.1f} s with idle connections open"
        for c in clients:
            c.socket.settimeout(5)
            assert c.socket.recv(65536) == b"", "an idle connection was left open"
    finally:
        for c in clients:
            c.close()


def test_reply_backlog_is_bounded(tmp_path):
    """A sender pipelining refused messages behind a slow upstream cannot make
    wardgate queue replies without bound: past the cap the connection is closed."""
    from conftest import Upstream

    slow = Upstream(ack_delay=3.0)
    g = Gateway(tmp_path, slow.port)
    try:
        s = socket.socket()
        s.settimeout(10)
        s.bind(("127.0.0.2", 0))
        s.connect(g.addr)
        adt = "MSH|^~\\&|EHR|ICU|PUMPSRV|ICU|2026||ADT^A01^ADT_A01|B-{}|P|2.5\rPID|||1\r"
        burst = SB + observation("SLOW-1").encode() + EB
        burst += b"".join(SB + adt.format(i).encode() + EB for i in range(1100))
        got = b""
        try:
            s.sendall(burst)
            while chunk := s.recv(65536):
                got += chunk
        except ConnectionError:
            pass
        s.close()
        evs = events_until(g, lambda e: any(x.get("rule", {}).get("id") == "WG-CONN-004" for x in e))
        assert any(x.get("rule", {}).get("id") == "WG-CONN-004" for x in evs)
        # SLOW-1, never answered in time, gets wardgate's AE in its place; every
        # refusal follows in message order, none lost, none ahead of it.
        answers = []
        for f in got.split(EB)[:-1]:
            msa = next(seg for seg in f.lstrip(SB).split(b"\r") if seg.startswith(b"MSA|"))
            answers.append(tuple(msa.decode().split("|")[1:3]))
        assert answers[0] == ("AE", "SLOW-1"), answers[:3]
        assert answers[1:] == [("AR", f"B-{i}") for i in range(len(answers) - 1)], answers[:5]
        assert len(answers) > 1024, len(answers)
    finally:
        g.stop()
        slow.stop()
