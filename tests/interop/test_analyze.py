"""Passive analysis (`wardgate analyze`) of captures the tests make themselves:
tshark on loopback recording real peers talking directly to each other (the `hl7`
package's MLLP client and server, dcmtk and pynetdicom), no gateway in the path.

For every capture wardgate's message counts must equal tshark's dissector counts on
the same file, and what the proxy would have blocked must come out as
`observed-violation` with the proxy's rule ids.
"""
import json
import os
import re
import subprocess
import sys
import time

import pytest
from pydicom.data import get_testdata_file

from conftest import CI, ROOT, Upstream, free_port, require_module, require_tool, start_capture, wait_port, wardgate_bin
from test_hl7_mllp import SourceBoundClient, heparin, observation, order, unframe

SITE = """
[gateway]
data_dir = "{data_dir}"

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

[[device]]
id = "ct-1"
kind = "ct-scanner"
addresses = ["127.0.0.5"]
ae_titles = ["CT01"]

[[device]]
id = "pacs"
kind = "pacs"
addresses = ["127.0.0.6"]
ae_titles = ["PACS"]

[[route]]
id = "infusion-orders"
protocol = "hl7-mllp"
listen = "127.0.0.1:{listen_port}"
upstream = "127.0.0.3:{hl7_port}"
senders = ["ehr"]
messages = ["RGV^O15", "ORU^R01"]
drug_library = "adult-icu"

[[route]]
id = "imaging"
protocol = "dicom"
listen = "127.0.0.1:{dicom_listen_port}"
upstream = "127.0.0.6:{dicom_port}"
senders = ["ct-1"]
called_ae_titles = ["PACS"]
operations = ["C-ECHO", "C-STORE"]
sop_classes = ["1.2.840.10008.1.1", "1.2.840.10008.5.1.4.1.1.2"]

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


def site(tmp_path, hl7_port=1, dicom_port=1):
    cfg = tmp_path / "site.toml"
    cfg.write_text(SITE.format(data_dir=tmp_path / "data", listen_port=free_port(),
                               dicom_listen_port=free_port(), hl7_port=hl7_port, dicom_port=dicom_port))
    return cfg


def analyze(cfg, *pcaps, extra=()):
    r = subprocess.run([wardgate_bin(), "analyze", "--config", str(cfg), "--json", *extra, *map(str, pcaps)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode in (0, 1), r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.strip()]
    summary = lines[-1]
    assert summary.get("summary") is True
    return r.returncode, lines[:-1], summary


def tshark_fields(pcap, field, decode_as=(), display=None, prefs=()):
    """Every value of `field` tshark's dissectors find in `pcap` (one per occurrence)."""
    tshark = require_tool("tshark")
    args = [tshark, "-r", str(pcap), "-T", "fields", "-e", field, "-E", "occurrence=a", "-E", "aggregator=,"]
    for p in prefs:
        args += ["-o", p]
    for d in decode_as:
        args += ["-d", d]
    if display:
        args += ["-Y", display]
    out = subprocess.run(args, capture_output=True, text=True, timeout=300, check=True).stdout
    return [v for line in out.splitlines() for v in line.split(",") if v]


def stop_capture(cap):
    time.sleep(1.0)
    cap.terminate()
    cap.wait(20)


def by_rule(events, rule):
    return [e for e in events if e.get("rule", {}).get("id") == rule]


def test_hl7_capture_counts_match_tshark_and_violations_carry_the_proxys_rule_ids(tmp_path):
    up = Upstream()
    pcap = tmp_path / "hl7.pcapng"
    cap = start_capture(f"tcp port {up.port}", pcap)
    try:
        def send(text, source):
            with SourceBoundClient("127.0.0.3", up.port, source) as c:
                return unframe(c.send_message(text))

        for i in range(5):
            send(observation(f"OK-{i}"), "127.0.0.2")
        send(order("HARD-1", heparin(100)), "127.0.0.2")  # 5000 U/h > 2000 hard limit
        send(observation("LAB-1").replace("ORU^R01^ORU_R01", "ORM^O01^ORM_O01"), "127.0.0.2")
        send(observation("NOT-SENDER"), "127.0.0.9")
        send(observation("UNKNOWN"), "127.0.0.7")
    finally:
        stop_capture(cap)
        up.stop()
    cfg = site(tmp_path, hl7_port=up.port)
    code, events, summary = analyze(cfg, pcap)
    assert code == 1
    decode = [f"tcp.port=={up.port},hl7"]
    tshark_hl7 = tshark_fields(pcap, "hl7.message.type", decode)
    assert len(tshark_hl7) == 18  # 9 messages and 9 ACKs
    assert summary["messages"]["hl7_messages"] == len(tshark_hl7)
    assert summary["messages"]["sessions"]["hl7-mllp"] == 9
    violations = [e for e in events if e["event"]["action"] == "observed-violation"]
    rules = sorted(e["rule"]["id"] for e in violations)
    # The order above the hard limit, the disallowed type, the device that is not a
    # sender and the unknown address: the proxy's own rule ids.
    assert "WG-INF-010" in rules
    assert "WG-HL7-001" in rules
    assert "WG-ACCESS-002" in rules
    assert "WG-ACCESS-001" in rules
    hard = by_rule(events, "WG-INF-010")[0]
    assert hard["wardgate"]["hl7"]["control_id"] == "HARD-1"
    assert hard["wardgate"]["route"] == "infusion-orders"
    assert hard["source"]["ip"] == "127.0.0.2" and hard["destination"]["port"] == up.port
    # Allowed messages are not reported unless asked for.
    assert not [e for e in events if e["event"]["action"] == "allowed"]
    _, with_all, _ = analyze(cfg, pcap, extra=("--all", "--no-store"))
    allowed = [e for e in with_all if e.get("event", {}).get("action") == "allowed"]
    assert len(allowed) >= 5
    # Inventory: the EHR and its HL7 sending application; the unknown address.
    inv = {e["wardgate"]["inventory"]["address"]: e["wardgate"]["inventory"]
           for e in events if e["event"]["action"] == "observed"}
    assert inv["127.0.0.2"]["device"] == "ehr"
    assert "MONGW" in inv["127.0.0.2"]["hl7_sending_applications"]
    assert "PUMPSRV" in inv["127.0.0.3"]["hl7_sending_applications"]
    assert f"hl7-mllp/{up.port}" in inv["127.0.0.3"]["services"]
    assert inv["127.0.0.7"]["enrolled"] is False
    assert inv["127.0.0.7"]["first_seen"] <= inv["127.0.0.7"]["last_seen"]


def test_findings_are_recorded_so_events_and_devices_show_them(tmp_path):
    up = Upstream()
    pcap = tmp_path / "hl7.pcap"
    cap = start_capture(f"tcp port {up.port}", pcap, file_format="pcap")
    try:
        with SourceBoundClient("127.0.0.3", up.port, "127.0.0.7") as c:
            unframe(c.send_message(observation("X-1")))
    finally:
        stop_capture(cap)
        up.stop()
    assert pcap.read_bytes()[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1")  # legacy pcap
    cfg = site(tmp_path, hl7_port=up.port)
    code, _, _ = analyze(cfg, pcap)
    assert code == 1
    out = subprocess.run([wardgate_bin(), "events", "--config", str(cfg), "--json"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    recorded = [json.loads(x) for x in out.splitlines()]
    assert by_rule(recorded, "WG-ACCESS-001")
    devs = subprocess.run([wardgate_bin(), "devices", "--config", str(cfg), "--json"],
                          capture_output=True, text=True, timeout=60, check=True).stdout
    seen = {d["address"]: d for d in map(json.loads, devs.splitlines())}
    assert "127.0.0.7" in seen and seen["127.0.0.7"]["enrolled"] is False
    # The inventory of the analysis reaches `devices`: the server's HL7 application
    # (from its ACKs, which no decision event carries) and the service it offered.
    assert "PUMPSRV" in seen["127.0.0.3"]["hl7_sending_applications"]
    assert f"hl7-mllp/{up.port}" in seen["127.0.0.3"]["services"]
    v = subprocess.run([wardgate_bin(), "audit", "verify", "--config", str(cfg)],
                       capture_output=True, text=True, timeout=60)
    assert v.returncode == 0, v.stdout + v.stderr


class StoreSCP:
    """dcmtk's storescp as the PACS on 127.0.0.6."""

    def __init__(self, out_dir):
        require_tool("storescp")
        out_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port("0.0.0.0")
        self.proc = subprocess.Popen(["storescp", "-aet", "PACS", "-od", str(out_dir), "+B", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port("127.0.0.6", self.port)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def pynetdicom_store(port, source, calling, called, dataset_file, contexts=None):
    from pydicom import dcmread
    from pynetdicom import AE
    from pynetdicom.sop_class import CTImageStorage, MRImageStorage

    ae = AE(ae_title=calling)
    for c in contexts or (CTImageStorage, MRImageStorage):
        ae.add_requested_context(c)
    assoc = ae.associate("127.0.0.6", port, ae_title=called, bind_address=(source, 0))
    status = None
    if assoc.is_established:
        status = assoc.send_c_store(dcmread(dataset_file))
        assoc.release()
    return assoc, status


def test_dicom_capture_counts_match_tshark_and_policy_applies(tmp_path):
    require_tool("storescu")
    scp = StoreSCP(tmp_path / "pacs")
    pcap = tmp_path / "dicom.pcapng"
    cap = start_capture(f"tcp port {scp.port}", pcap)
    ct = get_testdata_file("CT_small.dcm")
    mr = get_testdata_file("MR_small.dcm")
    try:
        # The CT scanner stores a CT (allowed) with dcmtk...
        r = subprocess.run(["storescu", "-aet", "CT01", "-aec", "PACS", "127.0.0.6", str(scp.port), ct],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        # ...then an MR, whose SOP class the route does not allow (pynetdicom from 127.0.0.5).
        _, status = pynetdicom_store(scp.port, "127.0.0.5", "CT01", "PACS", mr)
        assert status is not None
        # An unknown laptop stores straight into the PACS.
        pynetdicom_store(scp.port, "127.0.0.9", "LAPTOP", "PACS", ct)
    finally:
        stop_capture(cap)
        scp.stop()
    cfg = site(tmp_path, dicom_port=scp.port)
    code, events, summary = analyze(cfg, pcap)
    assert code == 1
    decode = [f"tcp.port=={scp.port},dicom"]
    pdus = tshark_fields(pcap, "dicom.pdu.type", decode)
    assert len(pdus) > 0
    assert summary["messages"]["dicom_pdus"] == len(pdus)
    assert summary["messages"]["sessions"]["dicom"] == 3
    rules = {e["rule"]["id"] for e in events if e["event"]["action"] == "observed-violation"}
    # storescu runs from 127.0.0.1 (not enrolled): WG-ACCESS-001, as the proxy would refuse it.
    assert "WG-ACCESS-001" in rules
    # The MR context is refused alone at association time (an alert, as inline:
    # the proxy marks it "abstract syntax not supported" in the AC it relays)...
    alerts = {e["rule"]["id"] for e in events if e["event"]["action"] == "alerted" and "rule" in e}
    assert "WG-DICOM-003" in alerts, alerts
    # ...and the MR store the sender then sent on it (the real PACS accepted the
    # context; through the proxy the sender would not have been able to) is data
    # on a context policy refused: the association is over, as the proxy would
    # have aborted it. One rule for this traffic, whoever watches.
    assert "WG-DICOM-007" in rules, rules
    assert "WG-DICOM-004" not in rules, rules
    # Inventory: AE titles and implementation versions of both ends.
    inv = {e["wardgate"]["inventory"]["address"]: e["wardgate"]["inventory"]
           for e in events if e["event"]["action"] == "observed"}
    assert "CT01" in inv["127.0.0.5"]["ae_titles"]
    assert "PACS" in inv["127.0.0.6"]["ae_titles"]
    assert any(v.startswith("OFFIS_DCMTK") for v in inv["127.0.0.1"]["implementation_versions"])
    assert inv["127.0.0.6"]["implementation_versions"]
    assert "LAPTOP" in inv["127.0.0.9"]["ae_titles"]


def test_capture_cut_mid_packet_is_analysed_up_to_the_cut(tmp_path):
    up = Upstream()
    pcap = tmp_path / "cut.pcap"
    cap = start_capture(f"tcp port {up.port}", pcap, file_format="pcap")
    try:
        for i in range(3):
            with SourceBoundClient("127.0.0.3", up.port, "127.0.0.2") as c:
                unframe(c.send_message(observation(f"C-{i}")))
    finally:
        stop_capture(cap)
        up.stop()
    data = pcap.read_bytes()
    cut = tmp_path / "cut-short.pcap"
    cut.write_bytes(data[: len(data) - 7])
    cfg = site(tmp_path, hl7_port=up.port)
    code, events, summary = analyze(cfg, cut, extra=("--no-store",))
    assert summary["truncated"] is True
    assert by_rule(events, "WG-CAP-003")
    assert summary["messages"]["hl7_messages"] >= 5


# --- Crafted edge cases for TCP reassembly (scapy), with known expected results ---

def hl7_frames(n, prefix="R"):
    return [b"\x0b" + observation(f"{prefix}-{i}").encode() + b"\x1c\x0d" for i in range(n)]


def craft(path, segments, client=("127.0.0.2", 40000), server=("127.0.0.3", 2575), handshake=True, isn=1000):
    """Writes a pcap of one client->server stream. `segments` are (offset, bytes)
    pairs in the order they appear on the wire; the server acknowledges nothing
    (a tap sees one direction as well as two)."""
    from scapy.all import IP, TCP, Ether, wrpcap

    (cip, cport), (sip, sport) = client, server
    base = Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:03") / IP(src=cip, dst=sip)
    pkts = []
    if handshake:
        pkts.append(base / TCP(sport=cport, dport=sport, flags="S", seq=isn))
        pkts.append(Ether(src="02:00:00:00:00:03", dst="02:00:00:00:00:02") / IP(src=sip, dst=cip) / TCP(sport=sport, dport=cport, flags="SA", seq=5000, ack=isn + 1))
    for off, data in segments:
        pkts.append(base / TCP(sport=cport, dport=sport, flags="PA", seq=(isn + 1 + off) % 2**32, ack=5001) / data)
    for i, p in enumerate(pkts):
        p.time = 1_700_000_000 + i * 0.001
    wrpcap(str(path), pkts)


def split(stream, sizes):
    out, off = [], 0
    for s in sizes:
        if off >= len(stream):
            break
        out.append((off, stream[off:off + s]))
        off += s
    if off < len(stream):
        out.append((off, stream[off:]))
    return out


def edge_site(tmp_path):
    return site(tmp_path, hl7_port=2575)


def hl7_count(tmp_path, name, segments, tshark_agrees=True, **kw):
    pcap = tmp_path / f"{name}.pcap"
    craft(pcap, segments, **kw)
    _, events, summary = analyze(edge_site(tmp_path), pcap, extra=("--no-store", "--all"))
    if tshark_agrees:
        # tshark reassembles out-of-order segments only when asked to.
        assert_counts_match_tshark(pcap, summary, 2575, prefs=("tcp.reassemble_out_of_order:TRUE",))
    allowed = [e for e in events if e.get("event", {}).get("action") == "allowed"
               and e.get("wardgate", {}).get("hl7")]
    return summary, events, sorted(e["wardgate"]["hl7"]["control_id"] for e in allowed)


def test_link_types_with_fcs_bits_are_read_and_undecoded_ones_named(tmp_path):
    """Regression (adversarial review, session 33): a classic pcap whose link-type
    field carries the frame-check-sequence bits (0x14000001, Ethernet) was not
    decoded at all, and a capture on a link type wardgate does not decode (NFLOG,
    239) was only counted: the analysis ended clean with exit status 0. One that
    carries no IP (USB, 189) is counted and not named."""
    import struct

    require_module("scapy")
    frames = hl7_frames(3)
    pcap = tmp_path / "eth.pcap"
    craft(pcap, [(sum(len(f) for f in frames[:i]), f) for i, f in enumerate(frames)])
    raw = bytearray(pcap.read_bytes())
    little = raw[:4] == b"\xd4\xc3\xb2\xa1"
    fmt = "<I" if little else ">I"
    assert struct.unpack_from(fmt, raw, 20)[0] == 1
    for linktype, analysed in ((0x14000001, True), (239, False), (189, None)):
        struct.pack_into(fmt, raw, 20, linktype)
        path = tmp_path / f"lt{linktype:x}.pcap"
        path.write_bytes(bytes(raw))
        rc, events, summary = analyze(edge_site(tmp_path), path, extra=("--no-store", "--all"))
        allowed = sorted(e["wardgate"]["hl7"]["control_id"] for e in events
                         if e.get("event", {}).get("action") == "allowed" and e.get("wardgate", {}).get("hl7"))
        named = by_rule(events, "WG-CAP-027")
        if analysed:
            assert allowed == ["R-0", "R-1", "R-2"], (hex(linktype), allowed, summary)
            assert not named, named
        elif analysed is None:
            # USB carries no IP: counted, nothing to name (a second review:
            # a USB interface beside an Ethernet one raised WG-CAP-027).
            assert allowed == [] and not named and rc == 0, (rc, events)
        else:
            assert allowed == [], allowed
            assert len(named) == 1 and rc == 1, (rc, events)
            assert "link type" in named[0]["event"]["reason"], named


def test_connections_under_three_vlan_tags_are_named_only_where_they_matter(tmp_path):
    """Regression (adversarial reviews, session 33): a connection carried under
    three VLAN tags is never analysed; an HL7 one was only counted (silent), and
    once named, every unrelated HTTPS connection of a mirrored trunk raised an
    alert too."""
    require_module("scapy")
    from scapy.all import IP, TCP, Dot1Q, Ether, wrpcap

    def conn(src, dst, dport, payload, sport=40000):
        base = Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:03") / Dot1Q(vlan=100) / Dot1Q(vlan=200) / Dot1Q(vlan=300)
        return [base / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags="S", seq=1000),
                base / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags="PA", seq=1001, ack=1) / payload]

    pkts = []
    for i in range(20):
        pkts += conn(f"10.99.0.{i + 1}", "10.99.1.1", 443, b"\x16\x03\x01\x00\x05hello", sport=50000 + i)
    unrelated = tmp_path / "unrelated.pcap"
    for i, p in enumerate(pkts):
        p.time = 1_700_000_000 + i * 0.001
    wrpcap(str(unrelated), pkts)
    rc, events, _ = analyze(edge_site(tmp_path), unrelated, extra=("--no-store",))
    assert not by_rule(events, "WG-CAP-027"), events
    hl7 = tmp_path / "hl7.pcap"
    pkts = conn("127.0.0.2", "127.0.0.3", 2575, hl7_frames(1)[0])
    for i, p in enumerate(pkts):
        p.time = 1_700_000_000 + i * 0.001
    wrpcap(str(hl7), pkts)
    rc, events, _ = analyze(edge_site(tmp_path), hl7, extra=("--no-store",))
    assert len(by_rule(events, "WG-CAP-027")) == 1 and rc == 1, events


def test_out_of_order_retransmitted_and_overlapping_segments_reassemble_exactly(tmp_path):
    require_module("scapy")
    frames = hl7_frames(4)
    stream = b"".join(frames)
    segs = split(stream, [100, 7, 300, 50, 1, 400])
    shuffled = [segs[2], segs[0], segs[4], segs[1], segs[3]] + segs[5:]
    # Retransmit two segments, and send one overlap covering two others.
    a, b = segs[1], segs[2]
    overlap = (a[0], stream[a[0]:b[0] + len(b[1])])
    wire = shuffled + [segs[0], overlap, segs[3]]
    summary, _, ids = hl7_count(tmp_path, "ooo", wire)
    assert ids == [f"R-{i}" for i in range(4)]
    assert summary["messages"]["hl7_messages"] == 4
    assert summary["packets"]["retransmitted_bytes"] > 0
    assert summary["packets"]["overlap_conflicts"] == 0


def test_conflicting_overlap_keeps_the_first_copy_and_is_counted(tmp_path):
    require_module("scapy")
    stream = b"".join(hl7_frames(2))
    segs = split(stream, [200, 200])
    first = segs[1][1]
    evil = (segs[1][0], first[:10] + bytes(b ^ 0x20 for b in first[10:30]) + first[30:])
    assert evil[1] != first
    # The first copy of bytes 200..400 arrives out of order, then a different copy.
    summary, events, ids = hl7_count(tmp_path, "conflict", [segs[1], evil, segs[0]] + segs[2:])
    assert ids == ["R-0", "R-1"]
    assert summary["packets"]["overlap_conflicts"] >= 1


def test_mid_stream_start_resynchronises_at_the_next_frame(tmp_path):
    require_module("scapy")
    frames = hl7_frames(3)
    stream = b"".join(frames)
    # No handshake, and the capture starts 30 bytes into the first frame.
    segs = split(stream[30:], [90, 400, 1000])
    # tshark finds no HL7 here (it does not resynchronise a stream joined mid-frame),
    # so counts are checked against the messages sent instead.
    summary, events, ids = hl7_count(tmp_path, "midstream", segs, tshark_agrees=False, handshake=False)
    assert ids == ["R-1", "R-2"]
    assert summary["packets"]["midstream"] == 1
    # The tail of the first frame is not reported as malformed: joining late is not
    # the sender's fault.
    assert not [e for e in events if e.get("rule")], events


def test_a_gap_is_reported_and_framing_resumes_after_it(tmp_path):
    require_module("scapy")
    frames = hl7_frames(3)
    stream = b"".join(frames)
    segs = split(stream, [len(frames[0]), 50, 10_000])
    # The segment holding the start of the second frame never made it to the tap.
    # tshark stops at the hole (1 message); wardgate resynchronises (2): checked
    # against the messages sent instead.
    summary, events, ids = hl7_count(tmp_path, "gap", [segs[0], segs[2]], tshark_agrees=False)
    assert ids == ["R-0", "R-2"]
    assert summary["packets"]["gap_bytes"] == 50
    # A hole in a clinical stream has its own rule: what the pump server read
    # there is unknown, and nothing was judged on it.
    holes = by_rule(events, "WG-CAP-006")
    assert holes and "missing from the capture" in holes[0]["event"]["reason"], holes
    assert not by_rule(events, "WG-CAP-002")


def test_sequence_numbers_wrapping_past_2_32(tmp_path):
    require_module("scapy")
    stream = b"".join(hl7_frames(3))
    summary, _, ids = hl7_count(tmp_path, "wrap", split(stream, [333, 333, 333]), isn=2**32 - 500)
    assert ids == ["R-0", "R-1", "R-2"]


def test_flow_table_limit_evicts_with_an_event(tmp_path):
    require_module("scapy")
    from scapy.all import IP, TCP, Ether, wrpcap

    pkts = []
    for i in range(40):
        p = Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:03") / IP(src="127.0.0.2", dst="127.0.0.3") / TCP(sport=30000 + i, dport=2575, flags="S", seq=1)
        p.time = 1_700_000_000 + i * 0.01
        pkts.append(p)
    pcap = tmp_path / "flood.pcap"
    wrpcap(str(pcap), pkts)
    cfg = edge_site(tmp_path)
    text = cfg.read_text().replace("[[device]]", "[gateway.capture]\nmax_flows = 10\n\n[[device]]", 1)
    cfg.write_text(text)
    _, events, summary = analyze(cfg, pcap, extra=("--no-store",))
    assert summary["packets"]["evicted"] == 30
    assert by_rule(events, "WG-CAP-001")
    assert summary["packets"]["connections"] == 40


# --- Detections beyond the clinical protocols, each on a capture of real peers ---

def capture_of(tmp_path, name, bpf, action):
    """Runs `action()` while tshark records loopback traffic matching `bpf`."""
    pcap = tmp_path / f"{name}.pcapng"
    cap = start_capture(bpf, pcap)
    try:
        action()
    finally:
        stop_capture(cap)
    return pcap


def account_alerts(events, rule):
    return [e["event"]["reason"] for e in by_rule(events, rule)]


def no_secret_in(events, *secrets):
    text = json.dumps(events)
    for s in secrets:
        assert s not in text, f"secret {s!r} leaked into the output"


def test_ftp_login_in_clear_and_a_default_password(tmp_path):
    curl = require_tool("curl")
    require_module("pyftpdlib")
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.servers import FTPServer
    import threading

    home = tmp_path / "ftp"
    home.mkdir()
    (home / "report.txt").write_text("ok\n")
    auth = DummyAuthorizer()
    auth.add_user("admin", "admin", str(home), perm="elr")
    auth.add_user("tech", "S3cure-Unique-9", str(home), perm="elr")
    handler = type("H", (FTPHandler,), {"authorizer": auth, "passive_ports": range(40000, 40100)})
    port = free_port("127.0.0.3")
    server = FTPServer(("127.0.0.3", port), handler)
    t = threading.Thread(target=server.serve_forever, kwargs={"timeout": 0.2}, daemon=True)
    t.start()

    def act():
        for user, pw in (("admin", "admin"), ("tech", "S3cure-Unique-9")):
            r = subprocess.run([curl, "-s", "--interface", "127.0.0.2", f"ftp://{user}:{pw}@127.0.0.3:{port}/report.txt"],
                               capture_output=True, text=True, timeout=30)
            assert r.stdout == "ok\n", r.stderr

    try:
        pcap = capture_of(tmp_path, "ftp", f"host 127.0.0.3 and tcp port {port}", act)
    finally:
        server.close_all()
    code, events, summary = analyze(site(tmp_path), pcap, extra=("--no-store",))
    assert code == 1
    clear = account_alerts(events, "WG-NET-001")
    assert any('"admin"' in r for r in clear) and any('"tech"' in r for r in clear)
    defaults = account_alerts(events, "WG-NET-002")
    assert len(defaults) == 1 and '"admin"' in defaults[0]
    no_secret_in(events, "S3cure-Unique-9")
    ftp_cmds = tshark_fields(pcap, "ftp.request.command", (f"tcp.port=={port},ftp",))
    assert summary["messages"]["ftp_commands"] == len(ftp_cmds) > 0


def test_http_basic_auth_in_clear(tmp_path):
    curl = require_tool("curl")
    port = free_port("127.0.0.3")
    srv = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.3",
                            "--directory", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port("127.0.0.3", port)

    def act():
        for cred in ("admin:password", "nurse:Vitals-2026-xyz"):
            subprocess.run([curl, "-s", "-o", "/dev/null", "--interface", "127.0.0.2", "-u", cred,
                            f"http://127.0.0.3:{port}/"], check=True, timeout=30)
        subprocess.run([curl, "-s", "-o", "/dev/null", "--interface", "127.0.0.2", f"http://127.0.0.3:{port}/x"],
                       timeout=30)

    try:
        pcap = capture_of(tmp_path, "http", f"tcp port {port}", act)
    finally:
        srv.terminate()
        srv.wait(10)
    code, events, summary = analyze(site(tmp_path), pcap, extra=("--no-store",))
    assert code == 1
    assert len(account_alerts(events, "WG-NET-001")) == 2
    assert len(account_alerts(events, "WG-NET-002")) == 1
    no_secret_in(events, "Vitals-2026-xyz")
    methods = tshark_fields(pcap, "http.request.method", (f"tcp.port=={port},http",))
    assert summary["messages"]["http_requests"] == len(methods) == 3


def test_mqtt_connect_credentials_client_ids_and_packet_counts(tmp_path):
    mosquitto = require_tool("mosquitto")
    paho = require_module("paho.mqtt.client")
    port = free_port("127.0.0.3")
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.3\nallow_anonymous true\n")
    broker = subprocess.Popen([mosquitto, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port("127.0.0.3", port)

    def act():
        for cid, user, pw in (("monitor-7", "guest", "guest"), ("monitor-8", "icu", "Unique-Mqtt-77")):
            c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=cid)
            c.username_pw_set(user, pw)
            c.connect("127.0.0.3", port, bind_address="127.0.0.2")
            c.loop_start()
            for i in range(5):
                c.publish(f"icu/bed7/spo2", f"9{i}", qos=1).wait_for_publish(5)
            c.disconnect()
            c.loop_stop()

    try:
        pcap = capture_of(tmp_path, "mqtt", f"tcp port {port}", act)
    finally:
        broker.terminate()
        broker.wait(10)
    code, events, summary = analyze(site(tmp_path), pcap, extra=("--no-store",))
    assert code == 1
    assert len(account_alerts(events, "WG-NET-001")) == 2
    assert any('"guest"' in r for r in account_alerts(events, "WG-NET-002"))
    no_secret_in(events, "Unique-Mqtt-77")
    types = tshark_fields(pcap, "mqtt.msgtype", (f"tcp.port=={port},mqtt",))
    assert summary["messages"]["mqtt_packets"] == len(types) > 10
    inv = {e["wardgate"]["inventory"]["address"]: e["wardgate"]["inventory"]
           for e in events if e["event"]["action"] == "observed"}
    assert {"monitor-7", "monitor-8"} <= set(inv["127.0.0.2"]["mqtt_client_ids"])


def test_telnet_login_with_a_vendor_default(tmp_path):
    telnetd = require_tool("telnetd")  # GNU inetutils telnetd, as inetd would run it
    import socket
    import telnetlib  # noqa: the standard library's Telnet client (Python 3.11)
    import threading

    # The login program the server runs: prompts like a device's maintenance login.
    login = tmp_path / "login.sh"
    login.write_text("#!/bin/sh\nprintf 'maintenance login: '\nread u\nprintf 'Password: '\nread p\necho\necho 'Login incorrect'\nsleep 1\n")
    login.chmod(0o755)
    port = free_port("127.0.0.3")
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.3", port))
    lsock.listen()
    procs = []

    def inetd():
        # inetd's job: one telnetd per connection, the socket as its stdin/stdout.
        while True:
            try:
                conn, _ = lsock.accept()
            except OSError:
                return
            procs.append(subprocess.Popen([telnetd, "-h", "-E", str(login)], stdin=conn, stdout=conn,
                                          stderr=subprocess.DEVNULL))
            conn.close()

    threading.Thread(target=inetd, daemon=True).start()

    def act():
        t = telnetlib.Telnet()
        t.sock = socket.create_connection(("127.0.0.3", port), timeout=10, source_address=("127.0.0.2", 0))
        t.read_until(b"login: ", 10)
        t.write(b"root\n")
        t.read_until(b"Password: ", 10)
        t.write(b"xc3511\n")
        t.read_until(b"incorrect", 10)
        t.close()

    try:
        pcap = capture_of(tmp_path, "telnet", f"tcp port {port}", act)
    finally:
        lsock.close()
        for p in procs:
            p.kill()
            p.wait(5)
    code, events, summary = analyze(site(tmp_path), pcap, extra=("--no-store",))
    assert code == 1
    assert any('"root"' in r for r in account_alerts(events, "WG-NET-001"))
    assert any('"root"' in r for r in account_alerts(events, "WG-NET-002"))
    no_secret_in(events, "xc3511")


def test_smbv1_only_negotiation_is_reported(tmp_path):
    smbclient = require_tool("smbclient")
    import socket
    import threading

    port = free_port("127.0.0.3")
    lsock = socket.socket()
    lsock.bind(("127.0.0.3", port))
    lsock.listen()

    def accept():
        try:
            conn, _ = lsock.accept()
            conn.settimeout(5)
            conn.recv(65536)  # the client's NEGOTIATE; no SMB server answers it
            conn.close()
        except OSError:
            pass

    threading.Thread(target=accept, daemon=True).start()

    def act():
        subprocess.run([smbclient, "-N", "-p", str(port), "--option=client min protocol=NT1",
                        "--option=client max protocol=NT1", "-L", "127.0.0.3"],
                       capture_output=True, timeout=30)

    pcap = capture_of(tmp_path, "smb", f"tcp port {port}", act)
    lsock.close()
    code, events, summary = analyze(site(tmp_path), pcap, extra=("--no-store",))
    assert code == 1
    assert by_rule(events, "WG-NET-003")
    cmds = tshark_fields(pcap, "smb.cmd", (f"tcp.port=={port},nbss",))
    assert summary["messages"]["smb_messages"] == len(cmds) >= 1


def test_clinical_traffic_to_an_address_outside_local_networks(tmp_path):
    up = Upstream()
    pcap = tmp_path / "leave.pcapng"
    cap = start_capture(f"tcp port {up.port}", pcap)
    try:
        with SourceBoundClient("127.0.0.3", up.port, "127.0.0.2") as c:
            unframe(c.send_message(observation("OUT-1")))
    finally:
        stop_capture(cap)
        up.stop()
    cfg = site(tmp_path, hl7_port=up.port)
    # The site's networks exclude 127.0.0.3: the pump server counts as outside. The
    # routes accept that in clear (allow_cleartext, else check refuses the site),
    # and the traffic is still reported when it is seen.
    text = cfg.read_text().replace('data_dir = ', 'local_networks = ["127.0.0.2/32"]\ndata_dir = ', 1)
    text = text.replace('protocol = "hl7-mllp"\n', 'protocol = "hl7-mllp"\nallow_cleartext = true\n')
    text = text.replace('protocol = "dicom"\n', 'protocol = "dicom"\nallow_cleartext = true\n')
    cfg.write_text(text)
    code, events, summary = analyze(cfg, pcap, extra=("--no-store",))
    assert assert_counts_match_tshark(pcap, summary, up.port) == 2
    leaving = by_rule(events, "WG-NET-004")
    assert code == 1 and len(leaving) == 1
    assert "127.0.0.3" in leaving[0]["event"]["reason"]


def test_devices_talking_outside_their_profile(tmp_path):
    """The EHR (enrolled) talks HL7 to an address no route allows; peers declared
    in the device profile are not reported."""
    up = Upstream(host="127.0.0.6")
    pcap = tmp_path / "peer.pcapng"
    cap = start_capture(f"tcp port {up.port}", pcap)
    try:
        with SourceBoundClient("127.0.0.6", up.port, "127.0.0.2") as c:
            unframe(c.send_message(observation("PEER-1")))
    finally:
        stop_capture(cap)
        up.stop()
    cfg = site(tmp_path)
    code, events, summary = analyze(cfg, pcap, extra=("--no-store",))
    assert assert_counts_match_tshark(pcap, summary, up.port) == 2
    peer = by_rule(events, "WG-NET-005")
    assert code == 1 and len(peer) == 1
    assert peer[0]["event"]["action"] == "observed-violation"
    assert '"ehr"' in peer[0]["event"]["reason"] and "127.0.0.6" in peer[0]["event"]["reason"]
    # Declared as a peer: no longer reported.
    text = cfg.read_text().replace('kind = "ehr"\n', 'kind = "ehr"\npeers = ["pacs:hl7-mllp"]\n', 1)
    cfg.write_text(text)
    _, events, _ = analyze(cfg, pcap, extra=("--no-store",))
    assert not by_rule(events, "WG-NET-005")


def test_live_capture_on_loopback_reports_while_traffic_flows(tmp_path):
    """Captures on the shared loopback interface, filtered to this test's own
    upstream port: HL7 to another port on lo in the same seconds (this test's
    own, and whatever else runs) is left out and counted as filtered (the
    filter runs on decoded packets, not in the kernel: BPF would drop IPv6
    packets with extension headers unseen), and libpcap hands over each
    loopback packet once, not twice."""
    up = Upstream()
    other = Upstream()
    cfg = site(tmp_path, hl7_port=up.port)
    proc = subprocess.Popen([wardgate_bin(), "capture", "--interface", "lo", "--config", str(cfg), "--json",
                             "--no-store", "--seconds", "8", "--filter", f"tcp port {up.port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(2.0)
        with SourceBoundClient("127.0.0.3", up.port, "127.0.0.2") as c:
            unframe(c.send_message(order("LIVE-HARD", heparin(100))))
            unframe(c.send_message(observation("LIVE-OK")))
        with SourceBoundClient("127.0.0.3", other.port, "127.0.0.2") as c:
            unframe(c.send_message(order("LIVE-ELSEWHERE", heparin(100))))
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        up.stop()
        other.stop()
    assert proc.returncode == 1, err
    lines = [json.loads(x) for x in out.splitlines() if x.strip()]
    summary = lines[-1]
    events = lines[:-1]
    hard = by_rule(events, "WG-INF-010")
    assert hard and hard[0]["wardgate"]["hl7"]["control_id"] == "LIVE-HARD"
    assert summary["messages"]["hl7_messages"] == 4
    assert summary["packets"]["filtered"] > 0
    assert summary["packets"]["retransmitted_bytes"] == 0
    assert summary["packets"]["kernel_dropped"] == 0
    assert not [e for e in events if e.get("wardgate", {}).get("hl7", {}).get("control_id") == "LIVE-ELSEWHERE"]
    assert summary["captures"] == ["interface lo"]


class LiveCapture:
    """`wardgate capture` on lo (or `interface` in network namespace `netns`), its
    JSON lines collected as they come."""

    def __init__(self, cfg, bpf, *extra, interface="lo", netns=None):
        import threading
        inside = ["ip", "netns", "exec", netns] if netns else []
        self.proc = subprocess.Popen([*inside, wardgate_bin(), "capture", "--interface", interface,
                                      "--config", str(cfg), "--json", "--all", "--no-store", "--seconds", "120",
                                      "--filter", bpf, *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            if line.strip():
                self.lines.append(json.loads(line))

    def seen(self, control_id):
        return [e for e in self.lines if e.get("wardgate", {}).get("hl7", {}).get("control_id") == control_id]

    def wait_for(self, control_id, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.seen(control_id):
                return True
            time.sleep(0.05)
        return False

    def finish(self):
        self.proc.send_signal(15)
        self.proc.wait(timeout=30)
        self.reader.join(timeout=10)
        return self.proc.returncode, self.lines[:-1], self.lines[-1]

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()


def test_live_capture_counts_and_reports_packets_the_kernel_dropped(tmp_path):
    """wardgate stalled (SIGSTOP: what a descheduled or overloaded process
    looks like to the kernel) while a bounded burst fills its 1 MiB ring: the
    kernel drops what follows, an unsafe order among it. wardgate must say so
    (WG-CAP-017, with the counts its summary gives), name the hole in the
    order's connection (WG-CAP-006), and judge the next message after it."""
    import os
    import re
    import signal
    import socket
    up = Upstream()
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.3", 0))
    blast_port = sink.getsockname()[1]
    cfg = site(tmp_path, hl7_port=up.port)
    live = LiveCapture(cfg, f"tcp port {up.port} or udp port {blast_port}", "--buffer-mib", "1")
    sent = 0
    try:
        # Ready once a message sent now is reported (bounded tries).
        ready = False
        for i in range(40):
            with SourceBoundClient("127.0.0.3", up.port, "127.0.0.2") as c:
                unframe(c.send_message(observation(f"READY-{i}")))
            if live.wait_for(f"READY-{i}", timeout=0.5):
                ready = True
                break
        assert ready, live.proc.stderr.read() if live.proc.poll() is not None else "no report"
        with SourceBoundClient("127.0.0.3", up.port, "127.0.0.2") as c:
            unframe(c.send_message(observation("BEFORE")))
            assert live.wait_for("BEFORE")
            os.kill(live.proc.pid, signal.SIGSTOP)
            try:
                blast = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                blast.bind(("127.0.0.2", 0))
                payload = b"\x00" * 1400
                for _ in range(4000):  # ~5.6 MB: five times the ring
                    blast.sendto(payload, ("127.0.0.3", blast_port))
                    sent += 1
                blast.close()
                # The pump server reads and acknowledges it; wardgate cannot.
                unframe(c.send_message(order("DURING", heparin(100))))
            finally:
                os.kill(live.proc.pid, signal.SIGCONT)
            # Right after SIGCONT the ring may still be full and the kernel drop
            # the next message too: send them (bounded) until one is judged. The
            # pump server's acknowledgement of it (or its FIN) covers bytes the
            # capture never showed: the hole is declared then, live, and the
            # message held behind it judged.
            after = []
            for i in range(20):
                after.append(f"AFTER-{i}")
                unframe(c.send_message(observation(after[-1])))
                if live.wait_for(after[-1], timeout=1.0):
                    break
        judged = [a for a in after if live.wait_for(a, timeout=0.5)]
        assert judged, [e["event"]["reason"] for e in live.lines]
        # The counters are read about once a second, and once more at the end.
        code, events, summary = live.finish()
    finally:
        live.kill()
        sink.close()
        up.stop()
    assert [b for b in up.received if b"DURING" in b], "the upstream read the order"
    kernel = summary["packets"]["kernel_dropped"]
    # Most of the burst found the ring full (each loopback packet is counted
    # twice by the kernel, leaving and arriving).
    assert kernel > sent, (kernel, sent)
    drops = by_rule(events, "WG-CAP-017")
    assert drops, [e["rule"]["id"] for e in events if "rule" in e]
    totals = [re.search(r"\((\d+) and (\d+) in all\)", e["event"]["reason"]) for e in drops]
    assert all(totals)
    assert max(int(t.group(1)) for t in totals) == kernel
    # When the counters were read decides how many connections were still
    # open; that they are named is what matters.
    assert re.search(r"\d+ clinical connections were open, \d+ of them inside a message", drops[0]["event"]["reason"])
    # The order the kernel dropped was not judged, and is not claimed to be:
    # the hole in its connection is named, and the next message was judged.
    assert not live.seen("DURING")
    holes = by_rule(events, "WG-CAP-006")
    assert holes, [e["rule"]["id"] for e in events if "rule" in e]
    assert [e for e in live.seen(judged[0]) if e["event"]["action"] == "allowed"]
    assert summary["packets"]["gap_bytes"] > 0
    assert code == 1


# --- A trunk port: VLAN tags the kernel keeps in packet metadata ---

def _trunk_unavailable(reason):
    if CI:
        pytest.fail(f"VLAN trunk lab unavailable: {reason}")
    pytest.skip(f"VLAN trunk lab unavailable: {reason}")


class VlanTrunk:
    """Makes a veth a trunk port with two tcx programs (eBPF, loaded through bpf(2)):
    egress pushes an 802.1Q tag into the skb's metadata, where a NIC with VLAN
    offload puts a received tag (VLAN 43 for sockets marked 43, VLAN 42 else);
    ingress pops it. eBPF rather than `ip link add ... type vlan`: it needs no
    8021q module (not every kernel has one), only tcx (Linux 6.6)."""

    NR_BPF = {"x86_64": 321, "aarch64": 280}
    PROG_LOAD, LINK_CREATE, SCHED_CLS, TCX_INGRESS, TCX_EGRESS = 5, 28, 3, 46, 47

    def __init__(self):
        import ctypes
        import struct

        self.ctypes, self.struct = ctypes, struct
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.nr = self.NR_BPF.get(os.uname().machine)
        if self.nr is None:
            _trunk_unavailable(f"bpf(2) syscall number unknown on {os.uname().machine}")
        def op(code, dst=0, src=0, off=0, imm=0):
            return struct.pack("<BBhi", code, dst | src << 4, off, imm)

        # r6 = ctx; r3 = skb->mark; if r3 != 43: r3 = 42; skb_vlan_push(ctx, 802.1Q, r3); return TCX_PASS
        self.fds = [self._load([op(0xbf, 6, 1), op(0x61, 3, 1, 8), op(0x15, 3, 0, 1, 43), op(0xb7, 3, 0, 0, 42),
                                op(0xbf, 1, 6), op(0xb7, 2, 0, 0, 0x0081), op(0x85, imm=18), op(0xb7), op(0x95)])]
        # skb_vlan_pop(ctx); return TCX_PASS
        self.fds.append(self._load([op(0x85, imm=19), op(0xb7), op(0x95)]))
        self.egress, self.ingress = self.fds

    def _bpf(self, cmd, attr):
        buf = self.ctypes.create_string_buffer(attr.ljust(128, b"\0"), 128)
        fd = self.libc.syscall(self.nr, cmd, buf, 128)
        if fd < 0:
            e = self.ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        return fd

    def _load(self, insns):
        c = self.ctypes
        code, lic, log = b"".join(insns), c.create_string_buffer(b"GPL"), c.create_string_buffer(65536)
        prog = c.create_string_buffer(code, len(code))
        attr = self.struct.pack("<IIQQIIQ", self.SCHED_CLS, len(insns), c.addressof(prog), c.addressof(lic),
                                1, len(log), c.addressof(log))
        try:
            return self._bpf(self.PROG_LOAD, attr)
        except OSError as e:
            _trunk_unavailable(f"loading a tc program: {e} {log.value.decode(errors='replace')}")

    def attach(self, dev):
        """Tags what `dev` sends and untags what it receives (called inside dev's namespace)."""
        import socket

        for fd, how in ((self.egress, self.TCX_EGRESS), (self.ingress, self.TCX_INGRESS)):
            attr = self.struct.pack("<IIII", fd, socket.if_nametoindex(dev), how, 0)
            try:
                self.fds.append(self._bpf(self.LINK_CREATE, attr))
            except OSError as e:
                _trunk_unavailable(f"attaching a tcx program to {dev} (Linux 6.6 or later): {e}")

    def close(self):
        for fd in self.fds:
            os.close(fd)
        self.fds = []


def test_live_capture_on_a_trunk_sees_the_vlan_tags_the_kernel_strips(tmp_path):
    """Linux hands a frame's 802.1Q tag over in packet metadata (a raw socket, what
    wardgate read before libpcap, sees the frame untagged); libpcap puts it back,
    so on a trunk port `vlan 42` selects VLAN 42's HL7 and `vlan 43` none of it
    (VLAN 43 carries probe connections only: that capture is live, on its VLAN)."""
    import socket
    import threading

    if os.geteuid() != 0:
        _trunk_unavailable("needs root (network namespaces, veth, eBPF)")
    ip = require_tool("ip")
    sys.path.insert(0, str(ROOT / "tests" / "evasion"))
    from netlab import in_netns

    for line in subprocess.run([ip, "netns", "list"], capture_output=True, text=True).stdout.splitlines():
        m = re.fullmatch(r"wgvl(\d+)[ab]", line.split()[0] if line.split() else "")
        if m and not os.path.exists(f"/proc/{m.group(1)}"):  # left by a run that is gone
            subprocess.run([ip, "netns", "del", m.group(0)], capture_output=True)
    ns_a, ns_b = f"wgvl{os.getpid()}a", f"wgvl{os.getpid()}b"
    port, so_mark = 2575, getattr(socket, "SO_MARK", 36)
    cfg = site(tmp_path, hl7_port=port)
    text = cfg.read_text()
    for old, new in (('addresses = ["127.0.0.2"]', 'addresses = ["10.42.0.2"]'),
                     ('addresses = ["127.0.0.3"]', 'addresses = ["10.42.0.3"]'),
                     ('upstream = "127.0.0.3:', 'upstream = "10.42.0.3:')):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    cfg.write_text(text)
    check = subprocess.run([wardgate_bin(), "check", "--config", str(cfg)],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr

    def run(*args, ns=None):
        cmd = [ip, *(["-n", ns] if ns else []), *args]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            _trunk_unavailable(f"{' '.join(cmd)}: {r.stderr.strip()}")

    def vlan43_server(sock):
        """VLAN 43's peer: reads each connection to its end. Its socket is marked 43,
        so what it sends is tagged 43."""
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    while conn.recv(4096):
                        pass
                except OSError:
                    pass

    def vlan43_probe():
        """A connection on VLAN 43 (a socket marked 43) with a line of text; its port."""
        with in_netns(ns_a):
            s = socket.socket()
        with s:
            s.settimeout(10)
            s.setsockopt(socket.SOL_SOCKET, so_mark, 43)
            s.bind(("10.43.0.2", 0))
            s.connect(("10.43.0.3", port))
            s.sendall(b"probe\r\n")
            s.shutdown(socket.SHUT_WR)
            s.recv(1)
            return s.getsockname()[1]

    def stderr_if_done(live):
        return live.proc.stderr.read() if live.proc.poll() is not None else "still running"

    def hl7_client():
        with in_netns(ns_a):
            return SourceBoundClient("10.42.0.3", port, "10.42.0.2")

    trunk = up = listener = raw = None
    lives = []
    created = []
    try:
        for ns in (ns_a, ns_b):
            run("netns", "add", ns)
            created.append(ns)
        run("link", "add", "wgA", "type", "veth", "peer", "name", "wgB", "netns", ns_b, ns=ns_a)
        for ns, dev, host in ((ns_a, "wgA", 2), (ns_b, "wgB", 3)):
            with in_netns(ns):  # IPv4 only: no IPv6 chatter on the trunk
                for conf in ("all", "default"):
                    with open(f"/proc/sys/net/ipv6/conf/{conf}/disable_ipv6", "w") as f:
                        f.write("1")
            for net in (42, 43):
                run("addr", "add", f"10.{net}.0.{host}/24", "dev", dev, ns=ns)
            run("link", "set", "lo", "up", ns=ns)
            run("link", "set", dev, "up", ns=ns)
        trunk = VlanTrunk()
        for ns, dev in ((ns_a, "wgA"), (ns_b, "wgB")):
            with in_netns(ns):
                trunk.attach(dev)
        with in_netns(ns_b):
            up = Upstream(host="10.42.0.3", port=port)
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, so_mark, 43)
            listener.bind(("10.43.0.3", port))
            listener.listen()
            # What a raw AF_PACKET socket (wardgate before libpcap) reads on the trunk.
            raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
            raw.bind(("wgB", 0))
        threading.Thread(target=vlan43_server, args=(listener,), daemon=True).start()
        bpf = "vlan {} and tcp port %d" % port
        live42 = LiveCapture(cfg, bpf.format(42), interface="wgB", netns=ns_b)
        live43 = LiveCapture(cfg, bpf.format(43), interface="wgB", netns=ns_b)
        lives = [live42, live43]

        def wait_probe(live, probe_port, timeout=10.0):
            """Whether `live` reported the VLAN 43 probe from `probe_port`."""
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if [e for e in live.lines if e.get("source", {}).get("port") == probe_port]:
                    return True
                time.sleep(0.05)
            return False

        # Each capture is ready once a message sent now on its VLAN is reported (bounded tries).
        for i in range(40):
            with hl7_client() as c:
                unframe(c.send_message(observation(f"READY-{i}")))
            if live42.wait_for(f"READY-{i}", timeout=0.5):
                break
        else:
            pytest.fail(f"the VLAN 42 capture reported no probe: {stderr_if_done(live42)}")
        for i in range(40):
            if wait_probe(live43, vlan43_probe(), timeout=0.5):
                break
        else:
            pytest.fail(f"the VLAN 43 capture reported no probe: {stderr_if_done(live43)}")
        with hl7_client() as c:
            unframe(c.send_message(order("VLAN-HARD", heparin(100))))  # 5000 U/h > 2000 hard limit
            unframe(c.send_message(observation("VLAN-OK")))
        assert live42.wait_for("VLAN-OK")
        # The VLAN 43 capture reports this probe only after all that it read before it.
        assert wait_probe(live43, vlan43_probe())
        (code42, events42, sum42), (code43, events43, sum43) = live42.finish(), live43.finish()
        frames = []
        while True:
            try:
                frames.append(raw.recv(65536, socket.MSG_DONTWAIT))
            except BlockingIOError:
                break
    finally:
        for live in lives:
            live.kill()
        if up is not None:
            up.stop()
        if listener is not None:
            listener.close()
        if raw is not None:
            raw.close()
        if trunk is not None:
            trunk.close()
        for ns in reversed(created):
            subprocess.run([ip, "netns", "del", ns], capture_output=True)
    # The premise: the tag is not in the frame the kernel hands a raw socket.
    on_port = [f for f in frames if len(f) >= 38 and f[12:14] == b"\x08\x00" and f[23] == 6
               and port in (int.from_bytes(f[34:36], "big"), int.from_bytes(f[36:38], "big"))]
    assert on_port, f"the raw socket read {len(frames)} frame(s), none of TCP port {port}"
    assert not [f for f in frames if f[12:14] == b"\x81\x00"], "the kernel left a tag in the frame"
    # VLAN 42: the unsafe order judged as inline, every message counted, nothing lost.
    hard = by_rule(events42, "WG-INF-010")
    assert hard and hard[0]["event"]["action"] == "observed-violation", [e.get("rule") for e in events42]
    assert hard[0]["wardgate"]["hl7"]["control_id"] == "VLAN-HARD"
    assert hard[0]["source"]["ip"] == "10.42.0.2" and hard[0]["destination"]["ip"] == "10.42.0.3"
    assert live42.seen("VLAN-OK")
    assert sum42["messages"]["hl7_messages"] >= 2
    assert sum42["packets"]["kernel_dropped"] == 0
    assert code42 == 1
    # VLAN 43: its own probes, and not one HL7 message.
    assert sum43["messages"]["hl7_messages"] == 0, sum43
    assert not [e for e in events43 if e.get("wardgate", {}).get("hl7")]
    assert sum43["packets"]["kernel_dropped"] == 0
    probes = [e for e in events43 if "source" in e]
    assert len({e["source"]["port"] for e in probes}) >= 2
    assert {e["source"]["ip"] for e in probes} == {"10.43.0.2"}, probes


# --- Link layers and address families, and counts on every capture ---

def assert_counts_match_tshark(pcap, summary, port, proto="hl7", prefs=()):
    """wardgate's message count for `proto` equals tshark's on the same file."""
    field = {"hl7": "hl7.message.type", "dicom": "dicom.pdu.type", "mqtt": "mqtt.msgtype"}[proto]
    key = {"hl7": "hl7_messages", "dicom": "dicom_pdus", "mqtt": "mqtt_packets"}[proto]
    args = [f"tcp.port=={port},{proto}"]
    values = tshark_fields(pcap, field, args, prefs=prefs)
    assert summary["messages"][key] == len(values), (summary["messages"], len(values))
    return len(values)


def test_linux_cooked_capture_of_every_interface(tmp_path):
    """`tshark -i any` writes Linux cooked (SLL) frames: same analysis, same counts."""
    tshark = require_tool("tshark")
    up = Upstream()
    pcap = tmp_path / "any.pcapng"
    cap = start_capture(f"tcp port {up.port}", pcap, interface="any")
    try:
        with SourceBoundClient("127.0.0.3", up.port, "127.0.0.2") as c:
            unframe(c.send_message(order("SLL-HARD", heparin(100))))
            unframe(c.send_message(observation("SLL-OK")))
    finally:
        stop_capture(cap)
        up.stop()
    links = subprocess.run([tshark, "-r", str(pcap), "-T", "fields", "-e", "frame.protocols", "-c", "1"],
                           capture_output=True, text=True, check=True).stdout
    assert links.startswith("sll"), links
    code, events, summary = analyze(site(tmp_path, hl7_port=up.port), pcap, extra=("--no-store",))
    assert code == 1 and by_rule(events, "WG-INF-010")
    assert summary["packets"]["unsupported_link"] == 0 and summary["packets"]["malformed"] == 0
    assert assert_counts_match_tshark(pcap, summary, up.port) == 4


def test_ipv6_vlan_and_udp_frames(tmp_path):
    """Crafted with scapy: an HL7 session over IPv6 inside an 802.1Q tag, and UDP
    datagrams; the IPv6 sender is an enrolled device."""
    require_module("scapy")
    from scapy.all import IPv6, TCP, UDP, Dot1Q, Ether, wrpcap

    client, server = "fd00::2", "fd00::3"
    cmac = "02:00:00:00:00:22"
    frames = hl7_frames(2)
    stream = b"".join(frames)
    base = Ether(src=cmac, dst="02:00:00:00:00:33") / Dot1Q(vlan=42)
    pkts = [
        base / IPv6(src=client, dst=server) / TCP(sport=40000, dport=2575, flags="S", seq=99),
        Ether(src="02:00:00:00:00:33", dst=cmac) / Dot1Q(vlan=42) / IPv6(src=server, dst=client)
        / TCP(sport=2575, dport=40000, flags="SA", seq=7, ack=100),
    ]
    for off, data in split(stream, [500, 500, 10_000]):
        pkts.append(base / IPv6(src=client, dst=server) / TCP(sport=40000, dport=2575, flags="PA", seq=100 + off, ack=8) / data)
    pkts.append(base / IPv6(src=client, dst="fd00::53") / UDP(sport=5353, dport=5353) / bytes(12))
    for i, p in enumerate(pkts):
        p.time = 1_700_000_000 + i * 0.001
    pcap = tmp_path / "v6.pcap"
    wrpcap(str(pcap), pkts)
    cfg = site(tmp_path)
    text = cfg.read_text().replace('addresses = ["127.0.0.2"]', 'addresses = ["127.0.0.2", "fd00::2"]', 1)
    text = text.replace('addresses = ["127.0.0.3"]', 'addresses = ["127.0.0.3", "fd00::3"]', 1)
    cfg.write_text(text)
    _, events, summary = analyze(cfg, pcap, extra=("--no-store", "--all"))
    assert summary["packets"]["udp"] == 1
    assert summary["messages"]["hl7_messages"] == 2
    inv = {e["wardgate"]["inventory"]["address"]: e["wardgate"]["inventory"]
           for e in events if e.get("event", {}).get("action") == "observed"}
    assert inv["fd00::2"]["device"] == "ehr"
    assert cmac in inv["fd00::2"]["macs"]
    assert "fd00::53" in inv and inv["fd00::53"]["enrolled"] is False
    # No route has an IPv6 upstream: the EHR talking HL7 to fd00::3 is outside its profile.
    assert by_rule(events, "WG-NET-005")
    assert assert_counts_match_tshark(pcap, summary, 2575) == 2


def test_dicom_user_identity_with_a_default_passcode(tmp_path):
    require_module("pynetdicom")
    from pynetdicom import AE
    from pynetdicom.pdu_primitives import UserIdentityNegotiation
    from pynetdicom.sop_class import Verification

    scp_ae = AE(ae_title="PACS")
    scp_ae.add_supported_context(Verification)
    port = free_port("127.0.0.6")
    scp = scp_ae.start_server(("127.0.0.6", port), block=False)

    def act():
        ae = AE(ae_title="CT01")
        ae.add_requested_context(Verification)
        for user, pw in ((b"admin", b"admin"), (b"radtech", b"Unique-Dicom-42")):
            uid = UserIdentityNegotiation()
            uid.user_identity_type = 2
            uid.primary_field = user
            uid.secondary_field = pw
            assoc = ae.associate("127.0.0.6", port, ae_title="PACS", ext_neg=[uid], bind_address=("127.0.0.5", 0))
            assert assoc.is_established
            assoc.send_c_echo()
            assoc.release()

    try:
        pcap = capture_of(tmp_path, "dicom-uid", f"tcp port {port}", act)
    finally:
        scp.shutdown()
    code, events, summary = analyze(site(tmp_path, dicom_port=port), pcap, extra=("--no-store",))
    assert code == 1
    assert len(by_rule(events, "WG-DICOM-006")) == 2
    defaults = by_rule(events, "WG-NET-002")
    assert len(defaults) == 1 and '"admin"' in defaults[0]["event"]["reason"]
    no_secret_in(events, "Unique-Dicom-42")
    assert assert_counts_match_tshark(pcap, summary, port, "dicom") > 0


def test_port_reuse_starts_a_new_connection(tmp_path):
    """A second connection on the same addresses and ports (new SYN, new ISN, the
    first one's FIN never captured): both connections' messages are analysed."""
    require_module("scapy")
    from scapy.all import IP, TCP, Ether, wrpcap

    pkts = []
    for isn, prefix in ((1000, "A"), (3_000_000_000, "B")):
        stream = b"".join(hl7_frames(2, prefix))
        base = Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:03") / IP(src="127.0.0.2", dst="127.0.0.3")
        pkts.append(base / TCP(sport=40000, dport=2575, flags="S", seq=isn))
        for off, data in split(stream, [600, 10_000]):
            pkts.append(base / TCP(sport=40000, dport=2575, flags="PA", seq=isn + 1 + off, ack=1) / data)
    for i, p in enumerate(pkts):
        p.time = 1_700_000_000 + i * 0.001
    pcap = tmp_path / "reuse.pcap"
    wrpcap(str(pcap), pkts)
    _, events, summary = analyze(edge_site(tmp_path), pcap, extra=("--no-store", "--all"))
    ids = sorted(e["wardgate"]["hl7"]["control_id"] for e in events
                 if e.get("event", {}).get("action") == "allowed" and e.get("wardgate", {}).get("hl7"))
    assert ids == ["A-0", "A-1", "B-0", "B-1"]
    assert summary["packets"]["connections"] == 2


def test_memory_budget_closes_out_the_largest_holder_with_an_event(tmp_path):
    """Connections that each hold an unfinished 600 KB frame: with a 1 MiB budget
    across connections, the largest holders are closed out and reported."""
    require_module("scapy")
    from scapy.all import IP, TCP, Ether, wrpcap

    pkts = []
    chunk = b"\x0bMSH|^~\\&|EHR|ICU|PUMPSRV|ICU|1||ORU^R01|BIG|P|2.6\r" + b"OBX|1|ST|x||" + b"y" * 1400
    for c in range(4):
        base = Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:03") / IP(src="127.0.0.2", dst="127.0.0.3")
        sport = 41000 + c
        pkts.append(base / TCP(sport=sport, dport=2575, flags="S", seq=0))
        off = 0
        for _ in range(420):  # ~600 KB, no end block
            data = chunk if off == 0 else b"z" * 1448
            pkts.append(base / TCP(sport=sport, dport=2575, flags="PA", seq=1 + off, ack=1) / data)
            off += len(data)
    for i, p in enumerate(pkts):
        p.time = 1_700_000_000 + i * 0.0001
    pcap = tmp_path / "budget.pcap"
    wrpcap(str(pcap), pkts)
    cfg = edge_site(tmp_path)
    cfg.write_text(cfg.read_text().replace("[[device]]", "[gateway.capture]\nmax_buffered_bytes = 1048576\n\n[[device]]", 1))
    _, events, summary = analyze(cfg, pcap, extra=("--no-store",))
    assert by_rule(events, "WG-CAP-004")
    assert summary["packets"]["over_budget"] >= 2
    assert summary["packets"]["peak_buffered"] <= 1048576 + 2 * 1448
