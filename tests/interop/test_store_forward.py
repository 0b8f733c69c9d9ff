"""Store-and-forward HL7 routes, with fault injection against real peers.

Sender: the `hl7` package's MLLPClient from 127.0.0.2 (the EHR). Upstream: the
`hl7` package's MLLP server on 127.0.0.3, which here deduplicates by MSH-10 as a
real interface engine does, and can answer AR/AE for chosen messages. Faults: the
upstream stopped and restarted, wardgate killed with SIGKILL at random moments
(bounded rounds), the queue journal's tail torn. After each, every message
wardgate acknowledged reached the upstream exactly once (after MSH-10 dedup) and
in order.
"""
import asyncio
import json
import random
import signal
import socket
import subprocess
import threading
import time

import hl7
import hl7.client
import hl7.exceptions
import hl7.mllp

from conftest import SITE, Gateway, Upstream, free_port, wait_port, wardgate_bin

SF_SITE = SITE.replace(
    'drug_library = "adult-icu"\n',
    'drug_library = "adult-icu"\ndelivery = "store-and-forward"\n{queue}\n',
    1,
)


def site(queue=""):
    return SF_SITE.replace("{queue}", queue.replace("{", "{{").replace("}", "}}"))


class SourceBoundClient(hl7.client.MLLPClient):
    def __init__(self, host, port, source="127.0.0.2", timeout=10):
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.settimeout(timeout)
        self.socket.bind((source, 0))
        self.socket.connect((host, port))
        self.encoding = "utf-8"


def oru(control_id):
    return "\r".join([
        f"MSH|^~\\&|MONGW|ICU|EHR|ICU|20261126031500||ORU^R01^ORU_R01|{control_id}|P|2.6",
        "PID|||4711^^^HOSP^MR||Doe^Jane",
        "OBR|1|||69837^MDC_DEV_METER_PHYSIO_MULTI_PARAM_MDS^MDC",
        "OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.1|97|262688^MDC_DIM_PERCENT^MDC|||||R",
    ]) + "\r"


def ack_of(reply):
    m = hl7.parse(reply)
    msa = m.segment("MSA")
    return str(msa[1]), str(msa[2]), str(m.segment("MSH")[3])


class DedupUpstream(Upstream):
    """conftest's `hl7` MLLP server on a fixed port, keeping the MSH-10 of every
    message in arrival order; `answer` chooses the ACK code per control id."""

    def __init__(self, port, host="127.0.0.3", answer=None, ack_twice=False, commit_first=False, oru_first=False):
        self.oru_first = oru_first
        # `answer` may return None: no answer (an ER or NE message that went well).
        self.answer = answer or (lambda cid: "AA")
        self.ack_twice = ack_twice
        # Enhanced mode: a commit accept (CA) before the application's answer.
        self.commit_first = commit_first
        self.arrivals = []
        super().__init__(host=host, port=port)

    async def _handle(self, reader, writer):
        try:
            while not writer.is_closing():
                block = await reader.readblock()
                msg = hl7.parse(block.decode())
                cid = str(msg.segment("MSH")[10])
                self.arrivals.append(cid)
                code = self.answer(cid)
                if code is None:
                    continue
                if self.oru_first:
                    # A message of the upstream's own (no MSA) before the answer.
                    writer.writemessage("MSH|^~\\&|PUMPSRV|ICU|EHR|ICU|20261126031501||ORU^R01|X" + cid + "|P|2.6\rPID|||1\r")
                if self.commit_first:
                    writer.writemessage(str(msg.create_ack(ack_code="CA", application="PUMPSRV", facility="ICU")))
                    await writer.drain()
                if isinstance(code, tuple):
                    # (code, seconds): an answer that comes late.
                    code, late = code
                    await asyncio.sleep(late)
                ack = str(msg.create_ack(ack_code=code, application="PUMPSRV", facility="ICU"))
                writer.writemessage(ack)
                if self.ack_twice and code == "AA":
                    # A misbehaving upstream: every AA sent twice.
                    writer.writemessage(ack)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    def unique(self):
        seen, out = set(), []
        for c in self.arrivals:
            if c not in seen:
                seen.add(c)
                out.append(c)
        return out


def wait_for(pred, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def queue_json(gw):
    """The queues as `wardgate queue --json` gives them from the configuration,
    checked against the same read from the data directory alone (the
    configuration being edited and broken must not blind the on-call engineer).
    The two reads are two processes: a queue the gateway is changing (a message
    parking, a redrive) can differ between them, so the directory read is
    compared only when configuration reads on each side of it agree (bounded)."""
    strip = lambda qs: [{k: v for k, v in q.items() if k != "oldest_age_secs"} for q in qs]

    def by_config():
        out = gw.cli("queue", "--json").stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    for _ in range(50):
        before = by_config()
        r = subprocess.run([wardgate_bin(), "queue", "--json", "--data-dir", str(gw.dir / "data")],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        by_dir = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
        after = by_config()
        if strip(before) == strip(after):
            assert strip(by_dir) == strip(after), (by_dir, after)
            return after
        time.sleep(0.05)
    raise AssertionError("the queues never held still for three reads")


def start_gateway(tmp_path, upstream_port, queue=""):
    return Gateway(tmp_path, upstream_port, site=site(queue))


def restart(gw):
    """A new `wardgate serve` on the same config and data directory."""
    gw.log = open(gw.dir / "wardgate.log", "ab")
    gw.proc = subprocess.Popen(
        [wardgate_bin(), "serve", "--config", str(gw.config)],
        stdout=gw.log, stderr=subprocess.STDOUT,
    )
    wait_port("127.0.0.1", gw.listen_port)


def test_acknowledged_when_durable_and_delivered_in_order_when_the_upstream_comes_back(tmp_path):
    port = free_port("127.0.0.3")
    gw = start_gateway(tmp_path, port)
    try:
        # The upstream is down: wardgate still answers, because it holds the messages.
        with SourceBoundClient(*gw.addr) as c:
            for i in range(20):
                code, cid, app = ack_of(c.send_message(oru(f"SF{i:03}")))
                assert (code, cid, app) == ("AA", f"SF{i:03}", "WARDGATE")
        [q] = queue_json(gw)
        assert q["route"] == "infusion-orders" and q["depth"] == 20 and q["parked"] == []
        assert q["oldest_age_secs"] >= 0
        up = DedupUpstream(port)
        try:
            wait_for(lambda: len(up.arrivals) >= 20, what="delivery after the upstream came back")
            time.sleep(0.3)
            assert up.arrivals == [f"SF{i:03}" for i in range(20)]
            wait_for(lambda: queue_json(gw)[0]["depth"] == 0, what="an empty queue")
        finally:
            up.stop()
        ev = gw.events()
        delivered = [e for e in ev if e["event"]["action"] == "delivered"]
        assert [e["wardgate"]["hl7"]["control_id"] for e in delivered] == [f"SF{i:03}" for i in range(20)]
        outage = [e for e in ev if e.get("rule", {}).get("id") == "WG-UP-001"]
        assert len(outage) == 1, "one event per outage, not one per retry"
        assert any("reachable again" in e["event"]["reason"] for e in ev)
    finally:
        gw.stop()


def test_sender_retry_is_acknowledged_and_delivered_once(tmp_path):
    port = free_port("127.0.0.3")
    up = DedupUpstream(port)
    gw = start_gateway(tmp_path, port)
    try:
        with SourceBoundClient(*gw.addr) as c:
            assert ack_of(c.send_message(oru("DUP1")))[0] == "AA"
            assert ack_of(c.send_message(oru("DUP1")))[0] == "AA"
            assert ack_of(c.send_message(oru("DUP2")))[0] == "AA"
        wait_for(lambda: len(up.arrivals) >= 2)
        time.sleep(0.5)
        assert up.arrivals == ["DUP1", "DUP2"]
        ev = gw.events()
        dups = [e for e in ev if e.get("rule", {}).get("id") == "WG-QUEUE-002"]
        assert len(dups) == 1 and dups[0]["wardgate"]["hl7"]["control_id"] == "DUP1"
    finally:
        gw.stop()
        up.stop()


def test_upstream_stopped_and_restarted_during_a_run(tmp_path):
    port = free_port("127.0.0.3")
    up = DedupUpstream(port)
    gw = start_gateway(tmp_path, port, "[route.queue]\nretry_min_ms = 50\nretry_max_ms = 400\n")
    acked = []
    try:
        with SourceBoundClient(*gw.addr) as c:
            for i in range(300):
                if i == 100:
                    up.stop()
                    before = list(up.arrivals)
                if i == 200:
                    up = DedupUpstream(port)
                    up.arrivals = before + up.arrivals
                cid = f"R{i:04}"
                if ack_of(c.send_message(oru(cid)))[0] == "AA":
                    acked.append(cid)
        assert len(acked) == 300
        wait_for(lambda: len(up.unique()) >= 300, what="every message delivered")
        assert up.unique() == acked, "in order, none missing"
        assert len(up.arrivals) - len(up.unique()) <= 2, "at most the in-flight message again"
    finally:
        gw.stop()
        up.stop()


def test_parked_on_reject_listed_and_redriven(tmp_path):
    port = free_port("127.0.0.3")
    refuse = {"BAD1"}
    up = DedupUpstream(port, answer=lambda cid: "AR" if cid in refuse else "AA")
    gw = start_gateway(tmp_path, port)
    try:
        with SourceBoundClient(*gw.addr) as c:
            for cid in ["OK1", "BAD1", "OK2"]:
                assert ack_of(c.send_message(oru(cid)))[0] == "AA"
        wait_for(lambda: "OK2" in up.arrivals, what="delivery past the parked message")
        assert up.arrivals == ["OK1", "BAD1", "OK2"]
        [q] = queue_json(gw)
        assert q["depth"] == 0
        [p] = q["parked"]
        assert p["control_id"] == "BAD1" and p["sender"] == "ehr" and "AR" in p["reason"]
        table = gw.cli("queue").stdout
        assert "parked infusion-orders #" in table and "BAD1" in table
        parked_ev = [e for e in gw.events() if e["event"]["action"] == "parked"]
        assert len(parked_ev) == 1 and parked_ev[0]["rule"]["id"] == "WG-QUEUE-003"
        # The upstream is fixed; the operator re-drives the message.
        refuse.clear()
        out = gw.cli("queue", "--redrive", str(p["id"])).stdout
        assert "requested" in out
        wait_for(lambda: up.arrivals.count("BAD1") == 2, what="the re-driven message")
        wait_for(lambda: queue_json(gw)[0]["parked"] == [], what="nothing parked")
        assert any(e["event"]["action"] == "redriven" for e in gw.events())
    finally:
        gw.stop()
        up.stop()


def test_transient_errors_are_retried_then_parked(tmp_path):
    port = free_port("127.0.0.3")
    up = DedupUpstream(port, answer=lambda cid: "AE" if cid == "FLAKY" else "AA")
    gw = start_gateway(tmp_path, port, "[route.queue]\nretry_min_ms = 20\nretry_max_ms = 40\nmax_attempts = 3\n")
    try:
        with SourceBoundClient(*gw.addr) as c:
            assert ack_of(c.send_message(oru("FLAKY")))[0] == "AA"
            assert ack_of(c.send_message(oru("AFTER")))[0] == "AA"
        wait_for(lambda: "AFTER" in up.arrivals)
        assert up.arrivals == ["FLAKY"] * 3 + ["AFTER"]
        ev = gw.events()
        assert len([e for e in ev if e.get("rule", {}).get("id") == "WG-QUEUE-005"]) == 2
        assert len([e for e in ev if e["event"]["action"] == "parked"]) == 1
    finally:
        gw.stop()
        up.stop()


def test_queue_full_answers_ae_and_alerts(tmp_path):
    port = free_port("127.0.0.3")  # nobody listens: everything stays queued
    gw = start_gateway(tmp_path, port, "[route.queue]\nmax_bytes = 4096\n")
    try:
        codes = []
        with SourceBoundClient(*gw.addr) as c:
            for i in range(40):
                codes.append(ack_of(c.send_message(oru(f"Q{i}")))[0])
        assert codes[0] == "AA" and codes[-1] == "AE"
        n_ok = codes.count("AA")
        assert codes == ["AA"] * n_ok + ["AE"] * (40 - n_ok), "refused from the moment it is full"
        [q] = queue_json(gw)
        assert q["depth"] == n_ok and q["bytes"] <= 4096
        full = [e for e in gw.events() if e.get("rule", {}).get("id") == "WG-QUEUE-001"]
        assert len(full) == 40 - n_ok
    finally:
        gw.stop()


def test_sigkill_at_random_points_loses_no_acknowledged_message(tmp_path):
    """Bounded: 8 rounds, each killing wardgate within 0.6 s of traffic."""
    port = free_port("127.0.0.3")
    up = DedupUpstream(port)
    gw = start_gateway(tmp_path, port, "[route.queue]\nretry_min_ms = 20\nretry_max_ms = 200\n")
    rng = random.Random(20261126)
    acked, sent_order = [], []
    next_id = 0
    pending = None  # a message sent and not acknowledged: the sender resends it
    try:
        for rnd in range(8):
            stop_at = time.monotonic() + rng.uniform(0.05, 0.6)
            killer = threading.Timer(stop_at - time.monotonic(), lambda: gw.proc.send_signal(signal.SIGKILL))
            killer.start()
            try:
                with SourceBoundClient(*gw.addr, timeout=3) as c:
                    while True:
                        if pending is None:
                            pending = f"K{next_id:05}"
                            next_id += 1
                            sent_order.append(pending)
                        reply = c.send_message(oru(pending))
                        code, cid, _ = ack_of(reply)
                        assert cid == pending
                        if code == "AA":
                            acked.append(pending)
                            pending = None
            except (OSError, ConnectionError, IndexError, ValueError, hl7.exceptions.ParseException):
                pass  # killed mid-conversation
            killer.join()
            gw.proc.wait(10)
            gw.log.close()
            restart(gw)
        # The last unacknowledged message is resent once more, as a sender would.
        if pending is not None:
            with SourceBoundClient(*gw.addr) as c:
                assert ack_of(c.send_message(oru(pending)))[0] == "AA"
                acked.append(pending)
        assert len(acked) > 20, f"only {len(acked)} messages in 8 rounds"
        wait_for(lambda: set(acked) <= set(up.arrivals), timeout=60, what="every acknowledged message delivered")
        time.sleep(0.5)
        uniq = up.unique()
        assert [c for c in uniq if c in set(acked)] == acked, "in order"
        assert set(uniq) <= set(sent_order), "nothing invented"
        # Re-sends are possible only for what was in flight at a kill.
        assert len(up.arrivals) - len(uniq) <= 8
        log = gw.log_text()
        assert "panicked" not in log
        ev = gw.events()
        assert any(e.get("rule", {}).get("id") == "WG-AUDIT-001" for e in ev), "unclean shutdowns are recorded"
        assert gw.cli("audit", "verify", check=False).returncode == 0
    finally:
        gw.stop()
        up.stop()


def test_torn_queue_and_audit_tails_are_repaired_and_recorded(tmp_path):
    port = free_port("127.0.0.3")
    gw = start_gateway(tmp_path, port)
    try:
        with SourceBoundClient(*gw.addr) as c:
            for i in range(5):
                assert ack_of(c.send_message(oru(f"T{i}")))[0] == "AA"
        gw.proc.send_signal(signal.SIGKILL)
        gw.proc.wait(10)
        gw.log.close()
        segs = sorted((gw.dir / "data" / "queue" / "infusion-orders").glob("*.wgq"))
        assert segs
        # Half a record at the tail: what a crash in the middle of an append leaves.
        with open(segs[-1], "ab") as f:
            f.write(b"\x40\x00\x00\x00\x12\x34")
        # And half an audit record, as a crash mid-write of the audit log leaves.
        with open(gw.dir / "data" / "audit" / "audit.log", "ab") as f:
            f.write(b'{"seq":999999,"prev":"ab')
        restart(gw)
        ev = gw.events()
        rep = [e for e in ev if e.get("rule", {}).get("id") == "WG-QUEUE-004"]
        assert len(rep) == 1 and "torn record" in rep[0]["event"]["reason"]
        audit_rep = [e for e in ev if e.get("rule", {}).get("id") == "WG-AUDIT-002"]
        assert len(audit_rep) == 1, "the audit log's torn tail is recorded too"
        assert gw.cli("audit", "verify", check=False).returncode == 0
        assert queue_json(gw)[0]["depth"] == 5
        up = DedupUpstream(port)
        try:
            wait_for(lambda: len(up.arrivals) >= 5)
            time.sleep(0.3)
            assert up.arrivals == [f"T{i}" for i in range(5)]
        finally:
            up.stop()
    finally:
        gw.stop()


def test_an_extra_acknowledgement_is_not_taken_for_the_next_message(tmp_path):
    """An upstream that sends every AA twice: the second copy, still buffered when
    wardgate sends the next message, names the previous one (MSA-2) and must not be
    read as the next one's answer. Here the upstream rejects R1 (AR, sent once):
    R1 must be parked, not taken as delivered on R0's duplicate AA."""
    port = free_port("127.0.0.3")
    up = DedupUpstream(port, answer=lambda cid: "AR" if cid == "R1" else "AA", ack_twice=True)
    gw = start_gateway(tmp_path, port)
    try:
        with SourceBoundClient(*gw.addr) as c:
            for cid in ["R0", "R1", "R2", "R3"]:
                assert ack_of(c.send_message(oru(cid)))[0] == "AA"
        wait_for(lambda: "R3" in up.arrivals)
        wait_for(lambda: len(queue_json(gw)[0]["parked"]) == 1, what="R1 parked")
        [p] = queue_json(gw)[0]["parked"]
        assert p["control_id"] == "R1"
        assert up.arrivals == ["R0", "R1", "R2", "R3"]
        delivered = [e["wardgate"]["hl7"]["control_id"] for e in gw.events() if e["event"]["action"] == "delivered"]
        assert delivered == ["R0", "R2", "R3"]
    finally:
        gw.stop()
        up.stop()


def test_enhanced_mode_the_application_answer_after_a_commit_decides_delivery(tmp_path):
    """Found by an adversarial review: in enhanced mode (MSH-15/16 AL) the pump
    server answered CA, then AR; the AR was dropped, the order recorded as
    delivered. The sender is told CA (stored: a commit), never AA, since the
    pump server has not answered yet."""
    port = free_port("127.0.0.3")
    up = DedupUpstream(port, answer=lambda cid: "AR" if cid == "E2" else "AA", commit_first=True)
    gw = start_gateway(tmp_path, port)
    enhanced = lambda cid: oru(cid).replace("|P|2.6\r", "|P|2.6|||AL|AL\r", 1)
    try:
        with SourceBoundClient(*gw.addr) as c:
            for cid in ["E1", "E2", "E3"]:
                code, acked, sender = ack_of(c.send_message(enhanced(cid)))
                assert (code, acked, sender) == ("CA", cid, "WARDGATE"), (cid, code)
        wait_for(lambda: "E3" in up.arrivals, what="delivery past E2")
        wait_for(lambda: len(queue_json(gw)[0]["parked"]) == 1, what="E2 parked")
        [p] = queue_json(gw)[0]["parked"]
        assert p["control_id"] == "E2" and "AR" in p["reason"]
        delivered = [e for e in gw.events() if e["event"]["action"] == "delivered"]
        assert [e["wardgate"]["hl7"]["control_id"] for e in delivered] == ["E1", "E3"]
        assert all("(AA)" in e["event"]["reason"] for e in delivered), [e["event"]["reason"] for e in delivered]
    finally:
        gw.stop()
        up.stop()


def test_a_control_id_reused_for_another_message_is_refused_not_dropped(tmp_path):
    """Found by an adversarial review: a second order under an MSH-10 already
    used (another patient, another drug) was answered AA as a duplicate and
    never delivered. Another sending application (MSH-3) has its own ids."""
    port = free_port("127.0.0.3")
    up = DedupUpstream(port)
    gw = start_gateway(tmp_path, port)
    other_patient = oru("1001").replace("4711^^^HOSP^MR", "4712^^^HOSP^MR")
    other_app = oru("1001").replace("|MONGW|", "|ANESTH|", 1)
    try:
        with SourceBoundClient(*gw.addr) as c:
            assert ack_of(c.send_message(oru("1001")))[0] == "AA"
            assert ack_of(c.send_message(oru("1001")))[0] == "AA", "a resend is a duplicate"
            code, acked, sender = ack_of(c.send_message(other_patient))
            assert (code, acked, sender) == ("AR", "1001", "WARDGATE")
            assert ack_of(c.send_message(other_app))[0] == "AA"
        wait_for(lambda: len(up.arrivals) >= 2, what="two deliveries")
        time.sleep(0.5)
        assert up.arrivals == ["1001", "1001"]
        ev = gw.events()
        reused = [e for e in ev if e.get("rule", {}).get("id") == "WG-QUEUE-007"]
        assert len(reused) == 1 and reused[0]["event"]["action"] == "blocked"
        assert reused[0]["wardgate"]["hl7"]["ack_code"] == "AR"
        assert len([e for e in ev if e.get("rule", {}).get("id") == "WG-QUEUE-002"]) == 1
    finally:
        gw.stop()
        up.stop()


def heparin_order(cid, rate_u_h):
    return "\r".join([
        f"MSH|^~\\&|EHR|ICU|PUMPSRV|ICU|20261204031500||RGV^O15^RGV_O15|{cid}|P|2.6",
        "PID|||4711^^^HOSP^MR||Doe^Jane",
        "PV1||I|ICU^1^1",
        f"ORC|RE|{cid}^EHR",
        f"RXG|1|||HEP^heparin^LOCAL|||||||||||{rate_u_h}|U/h^U/h^UCUM",
        "RXR|^IV^HL70162",
    ]) + "\r"


def test_a_queued_order_is_judged_again_by_the_policy_in_force_at_delivery(tmp_path):
    """Found by an adversarial review: an order queued while the pump server was
    down was delivered after the drug library's hard limit was lowered below
    it, although the same order sent fresh was refused."""
    port = free_port("127.0.0.3")
    gw = start_gateway(tmp_path, port, "[route.queue]\nretry_min_ms = 50\nretry_max_ms = 200\n")
    up = None
    try:
        with SourceBoundClient(*gw.addr) as c:
            assert ack_of(c.send_message(heparin_order("L001", 1500)))[0] == "AA"
            assert ack_of(c.send_message(heparin_order("L002", 1000)))[0] == "AA"
        text = gw.config.read_text()
        assert "rate_soft_max = 1500\nrate_hard_max = 2000" in text
        gw.config.write_text(text.replace("rate_soft_max = 1500\nrate_hard_max = 2000",
                                          "rate_soft_max = 1000\nrate_hard_max = 1200", 1))
        gw.cli("reload")
        wait_for(lambda: any(e["event"]["action"] == "policy-applied" for e in gw.events()),
                 what="the lowered library in force")
        with SourceBoundClient(*gw.addr) as c:
            assert ack_of(c.send_message(heparin_order("L003", 1500)))[0] == "AR"
        up = DedupUpstream(port)
        wait_for(lambda: "L002" in up.arrivals, what="L002 delivered")
        wait_for(lambda: len(queue_json(gw)[0]["parked"]) == 1, what="L001 parked")
        [p] = queue_json(gw)[0]["parked"]
        assert p["control_id"] == "L001"
        assert "WG-INF-010" in p["reason"] and "policy in force now" in p["reason"], p["reason"]
        assert up.arrivals == ["L002"]
        # A re-drive is judged again: still parked, never delivered.
        gw.cli("queue", "--redrive", str(p["id"]))
        wait_for(lambda: any(e["event"]["action"] == "redriven" for e in gw.events()), what="re-drive")
        wait_for(lambda: len(queue_json(gw)[0]["parked"]) == 1, what="parked again")
        time.sleep(0.5)
        assert up.arrivals == ["L002"]
    finally:
        gw.stop()
        if up:
            up.stop()


def test_a_message_that_asks_for_no_answer_is_delivered_once(tmp_path):
    """Found by an adversarial review: an ER/ER order, which a correct upstream
    answers only on error, was taken as unanswered, sent again and again, and
    every order behind it waited."""
    port = free_port("127.0.0.3")
    up = DedupUpstream(port, answer=lambda cid: None if cid.startswith("E") else "AA")
    gw = start_gateway(tmp_path, port, "[route.queue]\nack_timeout_ms = 500\nretry_min_ms = 50\nretry_max_ms = 200\n")
    er = lambda cid: oru(cid).replace("|P|2.6\r", "|P|2.6|||ER|ER\r", 1)
    try:
        with SourceBoundClient(*gw.addr) as c:
            assert ack_of(c.send_message(er("E1")))[0] == "CA"
            assert ack_of(c.send_message(oru("H2")))[0] == "AA"
        wait_for(lambda: "H2" in up.arrivals, what="H2 delivered behind E1")
        time.sleep(1.0)
        assert up.arrivals == ["E1", "H2"]
        delivered = [e["wardgate"]["hl7"]["control_id"] for e in gw.events() if e["event"]["action"] == "delivered"]
        assert delivered == ["E1", "H2"]
        assert queue_json(gw)[0]["depth"] == 0
    finally:
        gw.stop()
        up.stop()


def test_a_late_refusal_of_a_message_delivered_without_an_answer_is_recorded(tmp_path):
    """Found by an adversarial review: an ER/ER order taken as delivered when no
    answer came within the ack timeout was refused (AE) later; the AE, read
    while waiting for the next message's answer, vanished unrecorded."""
    port = free_port("127.0.0.3")
    # E1's AE comes 1.5 s after it: past its 1 s timeout (so E1 is taken as
    # delivered), in the middle of H2's 1 s wait.
    up = DedupUpstream(port, answer=lambda cid: ("AE", 1.5) if cid == "E1" else "AA")
    gw = start_gateway(tmp_path, port, "[route.queue]\nack_timeout_ms = 1000\nretry_min_ms = 50\nretry_max_ms = 200\n")
    er = lambda cid: oru(cid).replace("|P|2.6\r", "|P|2.6|||ER|ER\r", 1)
    try:
        with SourceBoundClient(*gw.addr) as c:
            assert ack_of(c.send_message(er("E1")))[0] == "CA"
            assert ack_of(c.send_message(oru("H2")))[0] == "AA"
        wait_for(lambda: any(e.get("rule", {}).get("id") == "WG-QUEUE-008" for e in gw.events()),
                 what="the late refusal recorded")
        [late] = [e for e in gw.events() if e.get("rule", {}).get("id") == "WG-QUEUE-008"]
        assert late["wardgate"]["hl7"]["control_id"] == "E1" and "AE" in late["event"]["reason"]
        wait_for(lambda: "H2" in up.arrivals, what="H2 delivered")
        delivered = [e["wardgate"]["hl7"]["control_id"] for e in gw.events() if e["event"]["action"] == "delivered"]
        assert delivered == ["E1", "H2"]
    finally:
        gw.stop()
        up.stop()


def test_a_frame_without_msa_is_no_answer_and_a_committed_message_is_not_resent(tmp_path):
    """Found by an adversarial review: an ORU the upstream sent before its AA was
    taken as the message's unreadable answer (resent three times, then parked);
    a message committed with CA whose application answer came after the ack
    timeout was sent again."""
    port = free_port("127.0.0.3")
    up = DedupUpstream(port, oru_first=True)
    gw = start_gateway(tmp_path, port)
    try:
        with SourceBoundClient(*gw.addr) as c:
            assert ack_of(c.send_message(oru("R1")))[0] == "AA"
        wait_for(lambda: any(e["event"]["action"] == "delivered" for e in gw.events()), what="R1 delivered")
        time.sleep(0.5)
        assert up.arrivals == ["R1"]
        assert any(e.get("rule", {}).get("id") == "WG-UP-006" for e in gw.events())
    finally:
        gw.stop()
        up.stop()
    port = free_port("127.0.0.3")
    up = DedupUpstream(port, commit_first=True, answer=lambda cid: ("AA", 1.5))
    (tmp_path / "al").mkdir()
    gw = start_gateway(tmp_path / "al", port, "[route.queue]\nack_timeout_ms = 1000\nretry_min_ms = 50\nretry_max_ms = 200\n")
    al = lambda cid: oru(cid).replace("|P|2.6\r", "|P|2.6|||AL|AL\r", 1)
    try:
        with SourceBoundClient(*gw.addr) as c:
            assert ack_of(c.send_message(al("C1")))[0] == "CA"
            assert ack_of(c.send_message(oru("C2")))[0] == "AA"
        wait_for(lambda: "C2" in up.arrivals, what="C2 delivered")
        time.sleep(0.5)
        assert up.arrivals == ["C1", "C2"]
        delivered = [e["event"]["reason"] for e in gw.events() if e["event"]["action"] == "delivered"]
        assert len(delivered) == 2 and "(CA)" in delivered[0], delivered
    finally:
        gw.stop()
        up.stop()


def test_long_and_escaped_control_ids_are_delivered_once(tmp_path):
    """Found by an adversarial review: the queue matched an answer's MSA-2 as
    shortened (128 characters) and unescaped for records against MSH-10 as
    written, so an order with a 150-character id (HL7 v2.7 allows 199) or an
    escape in its id was answered AA and sent again and again, and everything
    queued behind it waited. Each must reach the upstream once, in order."""
    port = free_port("127.0.0.3")
    up = DedupUpstream(port)
    gw = start_gateway(tmp_path, port, "[route.queue]\nack_timeout_ms = 500\nretry_min_ms = 50\nretry_max_ms = 200\n")
    long_id = "L" * 150
    escaped = "A\\T\\B7"
    ids = ["Q0", long_id, escaped, "Q3"]
    try:
        with SourceBoundClient(*gw.addr) as c:
            for cid in ids:
                code, acked, _ = ack_of(c.send_message(oru(cid)))
                assert code == "AA", cid
        wait_for(lambda: "Q3" in up.arrivals, what="delivery past the long ids")
        wait_for(lambda: queue_json(gw)[0]["depth"] == 0, what="an empty queue")
        # Nothing sent twice (an answer not matched is resent after the ack timeout).
        time.sleep(1.0)
        assert len(up.arrivals) == 4 and up.arrivals[0] == "Q0" and up.arrivals[1] == long_id \
            and up.arrivals[3] == "Q3", up.arrivals
        delivered = [e for e in gw.events() if e["event"]["action"] == "delivered"]
        assert len(delivered) == 4, [e["event"]["reason"] for e in delivered]
    finally:
        gw.stop()
        up.stop()


def test_an_acknowledgement_from_the_sender_is_stored_and_not_answered(tmp_path):
    """Found by an adversarial review: on a store-and-forward route wardgate
    answered the sender's own ACK with an AA, which a sender matching answers
    by order took as the answer to its next message. An acknowledgement is
    never acknowledged (HL7 v2 2.9): it is queued and delivered, unanswered."""
    port = free_port("127.0.0.3")
    up = DedupUpstream(port, answer=lambda cid: None if cid.startswith("K") else "AA")
    sf = site("[route.queue]\nack_timeout_ms = 500\nretry_min_ms = 50\nretry_max_ms = 200\n")
    sf = sf.replace('messages = ["RGV^O15", "ORU^R01"]', 'messages = ["RGV^O15", "ORU^R01", "ACK"]', 1)
    gw = Gateway(tmp_path, port, site=sf)
    ack_msg = "MSH|^~\\&|MONGW|ICU|EHR|ICU|20261126031500||ACK^R01^ACK|K1|P|2.6\rMSA|AA|X0\r"
    try:
        with SourceBoundClient(*gw.addr) as c:
            c.socket.sendall(b"\x0b" + ack_msg.encode() + b"\x1c\r")
            code, acked, _ = ack_of(c.send_message(oru("O2")))
            assert (code, acked) == ("AA", "O2"), (code, acked)
        wait_for(lambda: "O2" in up.arrivals, what="delivery")
        assert up.arrivals == ["K1", "O2"], up.arrivals
    finally:
        gw.stop()
        up.stop()


def test_answers_naming_another_message_count_as_attempts_and_park_it(tmp_path):
    """Found by an adversarial review: an upstream that shortens MSA-2 (here to
    199 characters, HL7 v2.7's length, of a 250-character MSH-10) answers every
    delivery, but never by the message's own id. Each delivery was taken as
    interrupted and sent again, without end, the queue stalled behind it. Each
    now counts as an attempt: parked after `max_attempts`, and the message
    behind it delivered."""
    port = free_port("127.0.0.3")

    class Shortening(DedupUpstream):
        async def _handle(self, reader, writer):
            try:
                while not writer.is_closing():
                    block = await reader.readblock()
                    msg = hl7.parse(block.decode())
                    cid = str(msg.segment("MSH")[10])
                    self.arrivals.append(cid)
                    ack = f"MSH|^~\\&|PUMPSRV|ICU|EHR|ICU|20261126031501||ACK^R01|A1|P|2.6\rMSA|AA|{cid[:199]}\r"
                    writer.writemessage(ack)
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
                pass
            finally:
                writer.close()

    up = Shortening(port)
    gw = start_gateway(tmp_path, port, "[route.queue]\nack_timeout_ms = 500\nretry_min_ms = 50\nretry_max_ms = 100\nmax_attempts = 3\n")
    long_id = "L" * 250
    try:
        with SourceBoundClient(*gw.addr) as c:
            for cid in [long_id, "Q2"]:
                assert ack_of(c.send_message(oru(cid)))[0] == "AA", cid
        wait_for(lambda: "Q2" in up.arrivals, timeout=30, what="the message behind it delivered")
        [p] = queue_json(gw)[0]["parked"]
        assert "naming other messages" in p["reason"], p
        assert up.arrivals.count(long_id) == 3, up.arrivals.count(long_id)
    finally:
        gw.stop()
        up.stop()
