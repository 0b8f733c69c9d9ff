"""Issue 16, part 4: acknowledgements are never lost or misleading, and monitor
mode; against `wardgate serve` with the `hl7` package's MLLP server upstream and a
raw socket sender (to control every byte, such as an LF after the end block)."""
import socket
import time

import hl7

import conftest
from conftest import Gateway, Upstream
from test_hl7_mllp import events_until, heparin, order

SB, EB = b"\x0b", b"\x1c\x0d"


def frame(text):
    return SB + text.encode() + EB


def observation(cid):
    return f"MSH|^~\\&|MONGW|ICU|EHR|ICU|20261124031500||ORU^R01^ORU_R01|{cid}|P|2.6\rPID|||1\rOBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||97|%\r"


class Sender:
    """A raw MLLP sender from 127.0.0.2 that reads whole frames back."""

    def __init__(self, addr):
        self.sock = socket.socket()
        self.sock.settimeout(15)
        self.sock.bind(("127.0.0.2", 0))
        self.sock.connect(addr)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def read_frames(self, until_closed=False, count=None):
        """Frames in arrival order, until `count` or the peer closes."""
        frames = []
        while count is None or len(frames) < count:
            while EB in self.buf:
                end = self.buf.index(EB) + 2
                frames.append(self.buf[1:end - 2].decode())
                self.buf = self.buf[end:]
                if count is not None and len(frames) >= count:
                    return frames
            chunk = self.sock.recv(65536)
            if not chunk:
                assert until_closed or count is None, f"closed after {frames}"
                return frames
            self.buf += chunk
        return frames

    def close(self):
        self.sock.close()


def msa(text):
    m = hl7.parse(text)
    return str(m.segment("MSA")[1]), str(m.segment("MSA")[2]), str(m.segment("MSH")[3])


def test_a_trailing_line_feed_is_tolerated(gateway, upstream):
    s = Sender(gateway.addr)
    s.send(frame(observation("LF-1")) + b"\n")
    s.send(frame(observation("LF-2")) + b"\n")
    acks = s.read_frames(count=2)
    assert [msa(a)[:2] for a in acks] == [("AA", "LF-1"), ("AA", "LF-2")]
    s.close()
    assert len(upstream.received) == 2
    evs = gateway.events()
    assert not any(e.get("rule", {}).get("id", "").startswith("WG-MLLP") for e in evs), evs


def test_a_strict_route_refuses_the_trailing_line_feed(tmp_path, upstream):
    site = conftest.SITE.replace('drug_library = "adult-icu"', 'drug_library = "adult-icu"\nmllp_strict = true')
    g = Gateway(tmp_path, upstream.port, site=site)
    try:
        s = Sender(g.addr)
        s.send(frame(observation("ST-1")) + b"\n")
        frames = s.read_frames(until_closed=True)
        assert [msa(f)[0] for f in frames] == ["AA", "AE"], frames
        evs = events_until(g, lambda e: any(x.get("rule", {}).get("id") == "WG-MLLP-001" for x in e))
        assert any(x.get("rule", {}).get("id") == "WG-MLLP-001" for x in evs)
    finally:
        g.stop()


def test_the_upstream_ack_comes_before_the_error_answer_and_the_close(tmp_path):
    """Regression: a message reached the pump server, then garbage closed the
    connection, and the upstream's AA never reached the sender (who retries: the
    pump gets the order twice)."""
    slow = Upstream(ack_delay=0.5)
    g = Gateway(tmp_path, slow.port)
    try:
        s = Sender(g.addr)
        s.send(frame(observation("FWD-1")) + b"GARBAGE")
        frames = s.read_frames(until_closed=True)
        assert len(slow.received) == 1
        assert [msa(f) for f in frames] == [("AA", "FWD-1", "PUMPSRV"), ("AE", "", "WARDGATE")], frames
        # wardgate's own answer names its rule, in MSA-3 (under 80 characters) and ERR-5.
        ae = hl7.parse(frames[1])
        msa3, err5 = str(ae.segment("MSA")[3]), str(ae.segment("ERR")[5])
        assert "WG-MLLP-" in msa3 and len(msa3) <= 80 and err5.startswith("WG-MLLP-"), frames[1]
    finally:
        g.stop()
        slow.stop()


def test_a_stalled_upstream_gets_each_message_answered_in_its_place(tmp_path):
    """STALL-2's refusal waits behind STALL-1, which the upstream never answers.
    Sent alone when the connection ends, a sender matching answers by order
    would take it as STALL-1's (adversarial review, session 24); closed with no
    word, the sender lost any late answer and resent the order (session 32).
    At the idle timeout STALL-1 gets wardgate's AE in its place (whether the
    pump server accepted it is unknown: check before resending), then STALL-2
    its refusal, then the connection closes; the record names STALL-1."""
    stalled = Upstream(ack_delay=60)
    site = conftest.SITE.replace("frame_timeout_secs = 3", "frame_timeout_secs = 3\nidle_timeout_secs = 2")
    g = Gateway(tmp_path, stalled.port, site=site)
    try:
        s = Sender(g.addr)
        s.send(frame(observation("STALL-1")))
        time.sleep(0.3)
        s.send(frame(order("STALL-2", heparin(41))))
        frames = s.read_frames(until_closed=True)
        assert [msa(f)[:2] for f in frames] == [("AE", "STALL-1"), ("AR", "STALL-2")], frames
        ae = hl7.parse(frames[0])
        msa3 = str(ae.segment("MSA")[3])
        assert "check" in msa3 and "WG-CONN-002" in msa3 and len(msa3) <= 80, msa3
        evs = events_until(g, lambda e: any("STALL-1" in x["event"].get("reason", "") for x in e), timeout=10)
        closed = [x for x in evs if "never answered" in x["event"].get("reason", "")]
        assert closed and "STALL-1" in closed[0]["event"]["reason"], [x["event"] for x in evs]
        assert "wardgate's AE for 1 message(s)" in closed[0]["event"]["reason"], closed
        assert any(x.get("rule", {}).get("id") == "WG-INF-010" for x in evs), "the refusal is recorded"
    finally:
        g.stop()
        stalled.stop()


def test_monitor_mode_forwards_and_records_would_block(tmp_path, upstream):
    site = conftest.SITE.replace('drug_library = "adult-icu"', 'drug_library = "adult-icu"\nenforcement = "monitor"')
    g = Gateway(tmp_path, upstream.port, site=site)
    try:
        s = Sender(g.addr)
        text = order("MON-1", heparin(41))
        s.send(frame(text))
        (ack,) = s.read_frames(count=1)
        assert msa(ack) == ("AA", "MON-1", "PUMPSRV")
        assert upstream.received == [text.encode()]
        evs = events_until(g, lambda e: any(x["event"]["action"] == "would-block" for x in e))
        wb = [x for x in evs if x["event"]["action"] == "would-block"]
        assert wb and wb[0]["rule"]["id"] == "WG-INF-010", wb
        s.close()
    finally:
        g.stop()


def test_the_nak_locates_the_field_and_keeps_numbers_whole(gateway, upstream):
    s = Sender(gateway.addr)
    s.send(frame(order("LOC-1", heparin(4100))))
    (nak,) = s.read_frames(count=1)
    m = hl7.parse(nak)
    msa3 = m.unescape(str(m.segment("MSA")[3]))
    assert len(msa3) <= 80 and "WG-INF-010" in msa3, msa3
    err = m.segment("ERR")
    assert str(err[2]) == "RXG^1^15", str(err)
    assert str(err[3][0][0]) == "207"
    assert str(err[5][0][0]) == "WG-INF-010"
    full = m.unescape(str(err[8]))
    assert "205000" in full and "2000" in full, full
    s.close()


def test_an_upstream_that_stops_reading_cannot_hold_the_connection(tmp_path):
    """Regression (review): with the upstream no longer reading, the relay's write
    to it blocked forever. Writes are bounded by frame_timeout_secs (3 s here):
    the connection ends, the record names what went unanswered, and each message
    the upstream never answered gets wardgate's AE in its place, so the AR owed
    behind the first goes back as its own message's answer, in order (before
    session 33 it was withheld and the sender waited out its own timeout)."""
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.3", 0))
    srv.listen(4)
    held = []
    threading.Thread(target=lambda: held.append(srv.accept()[0]), daemon=True).start()
    g = Gateway(tmp_path, srv.getsockname()[1])
    try:
        s = Sender(g.addr)
        s.send(frame(observation("HOLD-1")))
        s.send(frame("MSH|^~\\&|EHR|ICU|PUMPSRV|ICU|20261124031500||ADT^A01^ADT_A01|HOLD-2|P|2.5\rPID|||1\r"))
        filler = frame(observation("HOLD-F").replace("PID|||1\r", "PID|||1\rNTE|1||" + "x" * 60000 + "\r"))

        def fill():
            for _ in range(400):  # bounded: at most 24 MB
                try:
                    s.sock.sendall(filler)
                except OSError:
                    return

        t = threading.Thread(target=fill, daemon=True)
        t.start()
        frames = s.read_frames(until_closed=True)
        answers = [msa(f)[:2] for f in frames]
        assert answers[:2] == [("AE", "HOLD-1"), ("AR", "HOLD-2")], answers
        # Every filler forwarded gets an AE too, one each, and nothing else.
        assert all(a == ("AE", "HOLD-F") for a in answers[2:]), answers
        evs = events_until(g, lambda e: any("stalled" in x["event"].get("reason", "") for x in e), timeout=10)
        stalled = [x for x in evs if "stalled" in x["event"].get("reason", "")]
        assert stalled and "HOLD-1" in stalled[0]["event"]["reason"], [x["event"] for x in evs]
        assert f"wardgate's AE for {len(answers) - 1} message(s)" in stalled[0]["event"]["reason"], stalled
        assert "not sent" not in stalled[0]["event"]["reason"], stalled
    finally:
        g.stop()
        srv.close()
        for c in held:
            c.close()


def test_an_answer_the_upstream_sent_before_it_hung_up_is_relayed(tmp_path):
    """Regression (adversarial review): the upstream answers the first of several
    pipelined messages and hangs up with the rest unread (a reset). wardgate's next
    write to it failed, and the relay closed without reading the AA already in its
    socket: the sender got only wardgate's own AR, and the event named the
    acknowledged order as unanswered (the sender resends it: the pump gets it
    twice)."""
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.3", 0))
    srv.listen(4)
    received = []

    def answer_once_and_hang_up():
        c, _ = srv.accept()
        buf = b""
        while EB not in buf:
            chunk = c.recv(65536)
            if not chunk:
                break
            buf += chunk
        block = buf[1:buf.index(EB)]
        received.append(block)
        ack = str(hl7.parse(block.decode()).create_ack(ack_code="AA", application="PUMPSRV", facility="ICU"))
        c.sendall(SB + ack.encode() + EB)
        c.close()

    threading.Thread(target=answer_once_and_hang_up, daemon=True).start()
    g = Gateway(tmp_path, srv.getsockname()[1])
    try:
        s = Sender(g.addr)
        s.send(frame(observation("HUP-1")) + frame(observation("HUP-2"))
               + frame(order("HUP-3", heparin(41))) + frame(observation("HUP-4")))
        frames = s.read_frames(until_closed=True)
        assert len(received) == 1 and b"HUP-1" in received[0]
        answers = [msa(f)[:2] for f in frames]
        assert answers[0] == ("AA", "HUP-1"), frames
        # HUP-3's refusal waited behind HUP-2, never answered: never sent
        # where a sender matching by order would take it as HUP-2's. Met by
        # reading the hang-up, each message the upstream never answered gets
        # wardgate's AE in its place, and the refusal follows in its own;
        # met by a failed write, the refusal is withheld. Either way every
        # answer is in its message's place.
        ids = [cid for _, cid in answers]
        assert ids == ["HUP-1", "HUP-2", "HUP-3", "HUP-4"][:len(ids)], frames
        if ("AR", "HUP-3") in answers:
            assert answers[1] == ("AE", "HUP-2"), frames
        assert all(cid != "HUP-1" for code, cid in answers[1:]), frames
        # Whether the hang-up is met by a failed write or by reading it, the
        # record names what went unanswered, and never the acknowledged order.
        evs = events_until(g, lambda e: any(x["event"]["action"] == "failed" for x in e), timeout=10)
        failed = [x["event"]["reason"] for x in evs if x["event"]["action"] == "failed"]
        assert failed and all("HUP-1" not in r for r in failed), failed
        assert any("HUP-2" in r for r in failed), failed
    finally:
        g.stop()
        srv.close()


def test_answers_a_sender_that_stops_reading_never_got_are_named(tmp_path):
    """Found by an adversarial review: a sender pipelining orders and not
    reading. The upstream answered them all, and wardgate's writes to the
    sender stalled; the close named only what was still in flight, not the
    answers that were never written to the sender (it will send those orders
    again). Those are now named, from the first the sender did not read whole."""
    import asyncio
    import threading

    class BigAnswers(Upstream):
        async def _handle(self, reader, writer):
            try:
                while not writer.is_closing():
                    block = await reader.readblock()
                    self.received.append(block)
                    m = hl7.parse(block.decode())
                    ack = str(m.create_ack(ack_code="AA", application="PUMPSRV", facility="ICU"))
                    writer.writemessage(ack + "\rNTE|1||" + "z" * 16000)
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
                pass
            finally:
                writer.close()

    up = BigAnswers()
    g = Gateway(tmp_path, up.port)
    try:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.bind(("127.0.0.2", 0))
        s.connect(g.addr)
        data = b"".join(frame(observation(f"O{i}")) for i in range(400))  # bounded: ~100 KB

        def send():
            try:
                s.sendall(data)
            except OSError:
                pass

        threading.Thread(target=send, daemon=True).start()
        evs = events_until(g, lambda e: any("not delivered to the sender" in x["event"].get("reason", "") for x in e), timeout=30)
        [ev] = [x for x in evs if "not delivered to the sender" in x["event"].get("reason", "")]
        assert ev["rule"]["id"] == "WG-CONN-006", ev
        s.settimeout(2)
        got = b""
        try:
            while True:
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                got += chunk
        except OSError:
            pass
        whole = got.count(EB)
        first_missing = f"O{whole}"
        assert f"to {first_missing}," in ev["event"]["reason"] or f"to {first_missing} " in ev["event"]["reason"], (whole, ev["event"]["reason"][:300])
        s.close()
    finally:
        g.stop()
        up.stop()
