"""Issue 17: inline and passive decide alike for DICOM. Real DICOM peers (dcmtk's
echoscu/storescu and pynetdicom as senders; storescp and a pynetdicom
Query/Retrieve SCP as the PACS) talk through `wardgate serve` while tshark
captures both legs (filtered to this test's ports); `wardgate analyze`, told
where the gateway is, then judges the capture with the same association state
machine in observe mode. Per association decision, command decision and
protocol finding, the passive record must carry the rule, the action (a block
is an observed violation), the stage and the DIMSE operation the proxy recorded.

What passive analysis cannot know, and so is not compared (each shown below to
be the only difference):
- how a connection ended (`closed` records: a sender or upstream closing
  without release, timeouts): the capture shows FIN and RST but the analyser's
  end of a connection does not say which side ended it first, nor the proxy's
  clocks;
- the second leg (the gateway to the PACS) carries what the first leg's
  decisions let through: it is paired and counted, not judged;
- the A-ABORT wardgate itself sends the sender after a block: on the first leg
  it comes from the gateway's address, so passively it is the server's abort
  (`WG-UP-004`), recorded after the block on that sender's connection (observe
  mode judges on past the point where the proxy would end an association)."""
import json
import socket
import subprocess
import time
from collections import Counter

from pynetdicom import AE
from pynetdicom.sop_class import (
    CTImageStorage,
    MRImageStorage,
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelMove,
    Verification,
)

from conftest import Gateway, require_tool, start_capture, wardgate_bin
from test_analyze import stop_capture
from test_dicom import CT, PE, SITE as DICOM_SITE, QrSCP, StoreSCP, encapsulated_pdf, run

SITE = DICOM_SITE.replace("[gateway]\n", '[gateway]\naddresses = ["127.0.0.1"]\n', 1)
PASSIVE = {"blocked": "observed-violation"}
# Records passive analysis cannot make (see the module's note).
INLINE_ONLY = {"closed"}


def decisions(events):
    """(stage, passive-equivalent action, rule, operation) of each DICOM decision."""
    out = []
    for e in events:
        if e.get("network", {}).get("protocol") != "dicom":
            continue
        action = PASSIVE.get(e["event"]["action"], e["event"]["action"])
        if action in ("observed",) or action in INLINE_ONLY:
            continue
        stage = e.get("wardgate", {}).get("stage", "")
        rule = e.get("rule", {}).get("id", "-")
        op = e.get("wardgate", {}).get("dicom", {}).get("operation", "") or "-"
        out.append((stage, action, rule, op))
    return Counter(out)


def analyze(gw, pcap):
    r = subprocess.run(
        [wardgate_bin(), "analyze", "--config", str(gw.config),
         "--json", "--all", "--no-store", str(pcap)],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode in (0, 1), r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.strip()]
    return lines[:-1], lines[-1]


def through_gateway(tmp_path, upstream_port, traffic, name):
    """Runs `traffic(gateway)` with both legs captured; returns (inline, passive, summary)."""
    require_tool("tshark")
    (tmp_path / name).mkdir()
    gw = Gateway(tmp_path / name, upstream_port, site=SITE)
    pcap = tmp_path / f"{name}.pcapng"
    cap = start_capture(f"tcp port {gw.listen_port} or tcp port {upstream_port}", pcap)
    try:
        traffic(gw)
        # Let the last association's records and packets land.
        time.sleep(0.5)
        inline = gw.events()
    finally:
        stop_capture(cap)
        gw.stop()
    passive, summary = analyze(gw, pcap)
    return inline, passive, summary


def without_own_aborts(inline, passive):
    """`passive` less wardgate's own A-ABORT after a block, which on the first
    leg passive analysis sees as the server's (WG-UP-004 on that sender's
    connection)."""
    blocked = {e["source"]["port"] for e in inline
               if e["event"]["action"] == "blocked" and "source" in e}
    return [e for e in passive
            if not (e.get("rule", {}).get("id") == "WG-UP-004"
                    and e.get("source", {}).get("port") in blocked)]


def compare(inline, passive):
    passive = without_own_aborts(inline, passive)
    want, got = decisions(inline), decisions(passive)
    missing, extra = want - got, got - want
    assert not missing and not extra, f"inline only: {sorted(missing)}\npassive only: {sorted(extra)}"
    return want


def storage_traffic(tmp_path):
    bad = encapsulated_pdf(tmp_path / "invoice.dcm", PE)
    good = encapsulated_pdf(tmp_path / "report.dcm", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n")

    def traffic(gw):
        port = str(gw.listen_port)
        # Allowed: an echo and a CT store (dcmtk, from the enrolled 127.0.0.1).
        assert run("echoscu", "-aet", "CT01", "-aec", "PACS", "127.0.0.1", port).returncode == 0
        assert run("storescu", "-aet", "CT01", "-aec", "PACS", "127.0.0.1", port, CT).returncode == 0
        # Wrong called and calling AE titles: rejected.
        assert run("echoscu", "-aet", "CT01", "-aec", "OTHER", "127.0.0.1", port).returncode != 0
        assert run("echoscu", "-aet", "EVIL", "-aec", "PACS", "127.0.0.1", port).returncode != 0
        # An executable hidden in an encapsulated PDF, then a real PDF.
        run("storescu", "-aet", "CT01", "-aec", "PACS", "127.0.0.1", port, str(bad))
        assert run("storescu", "-aet", "CT01", "-aec", "PACS", "127.0.0.1", port, str(good)).returncode == 0
        # CT and MR contexts: MR refused alone; the CT store goes through.
        from pydicom import dcmread

        ae = AE(ae_title="CT01")
        ae.add_requested_context(CTImageStorage)
        ae.add_requested_context(MRImageStorage)
        assoc = ae.associate("127.0.0.1", gw.listen_port, ae_title="PACS")
        assert assoc.is_established
        assert assoc.send_c_store(dcmread(CT)).Status == 0
        assoc.release()
        # A passcode in clear.
        from pynetdicom.pdu_primitives import UserIdentityNegotiation

        ident = UserIdentityNegotiation()
        ident.user_identity_type = 2
        ident.primary_field = b"radtech"
        ident.secondary_field = b"Sup3rSecret!"
        ae = AE(ae_title="CT01")
        ae.add_requested_context(Verification)
        assoc = ae.associate("127.0.0.1", gw.listen_port, ae_title="PACS", ext_neg=[ident])
        assert assoc.is_established
        assoc.send_c_echo()
        assoc.release()
        # An unknown device (127.0.0.9).
        ae = AE(ae_title="CT01")
        ae.add_requested_context(Verification)
        assoc = ae.associate("127.0.0.1", gw.listen_port, ae_title="PACS", bind_address=("127.0.0.9", 0))
        assert not assoc.is_established
        # Not DICOM at all; a PDU header over the limit.
        for garbage in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", bytes([0x01, 0, 0x7F, 0xFF, 0xFF, 0xFF])):
            s = socket.create_connection(("127.0.0.1", gw.listen_port), timeout=5)
            s.sendall(garbage)
            s.recv(64)
            s.close()
        # A P-DATA over the maximum the PACS announced.
        ae = AE(ae_title="CT01")
        ae.add_requested_context(Verification)
        assoc = ae.associate("127.0.0.1", gw.listen_port, ae_title="PACS")
        assert assoc.is_established
        body = (20000 - 4).to_bytes(4, "big") + bytes([1, 0]) + bytes(20000 - 6)
        assoc.dul.socket.socket.sendall(bytes([0x04, 0]) + len(body).to_bytes(4, "big") + body)
        deadline = time.monotonic() + 10
        while not assoc.is_aborted and time.monotonic() < deadline:
            time.sleep(0.05)
        assert assoc.is_aborted

    return traffic


def test_passive_analysis_of_proxied_dicom_decides_as_the_proxy_did(tmp_path):
    require_tool("storescu")
    scp = StoreSCP(tmp_path / "pacs")
    try:
        inline, passive, summary = through_gateway(tmp_path, scp.port, storage_traffic(tmp_path), "storage")
    finally:
        scp.stop()
    want = compare(inline, passive)
    rules = {r for _, _, r, _ in want}
    # The comparison covered what the traffic was built to show.
    for rule in ("WG-DICOM-001", "WG-DICOM-002", "WG-DICOM-003", "WG-DICOM-006", "WG-DICOM-009",
                 "WG-DICOM-P01", "WG-DICOM-P02", "WG-ACCESS-001"):
        assert rule in rules, (rule, sorted(rules))
    ops = Counter()
    for (_, a, _, op), n in want.items():
        if a == "allowed":
            ops[op] += n
    assert ops["C-ECHO"] >= 2 and ops["C-STORE"] >= 3, ops
    assert summary["messages"]["gateway_legs"] >= 6
    # Inline-only records are only the ends of connections.
    inline_only = {e["event"]["action"] for e in inline
                   if e.get("network", {}).get("protocol") == "dicom"} & INLINE_ONLY
    assert inline_only <= {"closed"}
    print(f"DICOM parity (storage): {sum(want.values())} decisions, {len(rules)} rules")


def test_passive_analysis_of_proxied_query_retrieve_decides_as_the_proxy_did(tmp_path):
    from pydicom.dataset import Dataset

    def traffic(gw):
        query = Dataset()
        query.QueryRetrieveLevel = "PATIENT"
        query.PatientID = "1234"
        ae = AE(ae_title="CT01")
        ae.add_requested_context(PatientRootQueryRetrieveInformationModelFind)
        ae.add_requested_context(PatientRootQueryRetrieveInformationModelMove)
        assoc = ae.associate("127.0.0.1", gw.listen_port, ae_title="PACS")
        assert assoc.is_established
        list(assoc.send_c_find(query, PatientRootQueryRetrieveInformationModelFind))
        list(assoc.send_c_move(query, "EXFIL", PatientRootQueryRetrieveInformationModelMove))
        list(assoc.send_c_move(query, "VIEWER", PatientRootQueryRetrieveInformationModelMove))
        assoc.release()

    scp = QrSCP()
    try:
        inline, passive, _ = through_gateway(tmp_path, scp.port, traffic, "qr")
    finally:
        scp.stop()
    want = compare(inline, passive)
    assert ("message", "observed-violation", "WG-DICOM-004", "C-FIND") in want, want
    assert ("message", "observed-violation", "WG-DICOM-005", "C-MOVE") in want, want
    assert ("message", "allowed", "-", "C-MOVE") in want, want

