"""DICOM through `wardgate serve`, with real peers: dcmtk (echoscu, storescu,
storescp) and pynetdicom (as SCU with chosen source addresses, and as a
Query/Retrieve SCP), on loopback. Test objects are pydicom's bundled files.

dcmtk cannot choose its source address, so the modality these tests enrol is
127.0.0.1; pynetdicom binds 127.0.0.9 to play an unknown device.
"""
import filecmp
import json
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file
from pynetdicom import AE, evt, StoragePresentationContexts
from pynetdicom.sop_class import (
    CTImageStorage,
    MRImageStorage,
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelMove,
    Verification,
)

from conftest import Gateway, free_port, require_tool, start_capture, wait_port

CT = get_testdata_file("CT_small.dcm")
MR = get_testdata_file("MR_small.dcm")

SITE = """
[gateway]
data_dir = "{data_dir}"
frame_timeout_secs = 3
shutdown_grace_secs = 5

[gateway.audit]
checkpoint_every = 50
checkpoint_interval_ms = 100

[[device]]
id = "ct-1"
kind = "ct-scanner"
addresses = ["127.0.0.1"]
ae_titles = ["CT01"]

[[device]]
id = "pacs"
kind = "pacs"
addresses = ["127.0.0.4"]
ae_titles = ["PACS"]

[[route]]
id = "ct-to-pacs"
protocol = "dicom"
listen = "127.0.0.1:{listen_port}"
upstream = "127.0.0.4:{upstream_port}"
senders = ["ct-1"]
called_ae_titles = ["PACS"]
operations = ["C-ECHO", "C-STORE", "C-MOVE"]
sop_classes = [
  "1.2.840.10008.1.1",            # Verification
  "1.2.840.10008.5.1.4.1.1.2",    # CT Image Storage
  "1.2.840.10008.5.1.4.1.2.1.1",  # Patient Root Q/R Find
  "1.2.840.10008.5.1.4.1.2.1.2",  # Patient Root Q/R Move
  "1.2.840.10008.5.1.4.1.1.104.1",  # Encapsulated PDF Storage
]
move_destinations = ["VIEWER"]
"""


class StoreSCP:
    """dcmtk's storescp on 127.0.0.4, writing what it receives into a directory."""

    def __init__(self, out_dir):
        require_tool("storescp")
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        # dcmtk listens on every address (so the port must be free on all of them);
        # the gateway forwards to 127.0.0.4. A port taken meanwhile: try another.
        for _ in range(5):
            self.port = free_port("0.0.0.0")
            self.proc = subprocess.Popen(
                ["storescp", "-aet", "PACS", "-od", str(self.dir), "+B", str(self.port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                wait_port("127.0.0.4", self.port, timeout=5)
                return
            except TimeoutError:
                self.proc.kill()
                self.proc.wait(5)
        raise RuntimeError("storescp did not start")

    def files(self):
        return sorted(p for p in self.dir.iterdir() if p.is_file())

    def files_once_settled(self, timeout=5.0):
        """The files left once storescp has finished with an aborted store.

        With +B storescp writes a data set into its file as it arrives and deletes
        the file when the association is aborted; the sender can see the abort
        before storescp has deleted it. Waits (bounded) for that partial file to
        go; a whole object that was stored stays and is returned.
        """
        deadline = time.monotonic() + timeout
        while True:
            files = self.files()
            if not files or time.monotonic() > deadline:
                return files
            time.sleep(0.05)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def storescp(tmp_path):
    s = StoreSCP(tmp_path / "via-gateway")
    yield s
    s.stop()


@pytest.fixture
def dgateway(tmp_path, storescp):
    g = Gateway(tmp_path, storescp.port, site=SITE)
    yield g
    g.stop()


def run(*args, timeout=60):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)


def by_rule(events, rule):
    return [e for e in events if e.get("rule", {}).get("id") == rule]


def test_echo_is_allowed_and_recorded(dgateway):
    require_tool("echoscu")
    r = run("echoscu", "-aet", "CT01", "-aec", "PACS", "127.0.0.1", str(dgateway.listen_port))
    assert r.returncode == 0, r.stdout + r.stderr
    ev = dgateway.events()
    assoc = [e for e in ev if e["wardgate"].get("stage") == "association"]
    assert assoc and assoc[0]["event"]["action"] == "allowed"
    d = assoc[0]["wardgate"]["dicom"]
    assert (d["calling_ae"], d["called_ae"]) == ("CT01", "PACS")
    # The software fingerprint of the modality (dcmtk's implementation class UID).
    assert d["implementation_class_uid"].startswith("1.2.276.0.7230010.3")
    assert d["implementation_version"].startswith("OFFIS_DCMTK")
    echo = [e for e in ev if e["wardgate"].get("dicom", {}).get("operation") == "C-ECHO"]
    assert echo and echo[0]["event"]["action"] == "allowed"
    assert echo[0]["network"]["protocol"] == "dicom"


@pytest.mark.parametrize(
    "aet,aec,rule,reason_text",
    [
        ("CT01", "OTHER", "WG-DICOM-002", "Called AE Title Not Recognized"),
        ("EVIL", "PACS", "WG-DICOM-001", "Calling AE Title Not Recognized"),
    ],
)
def test_wrong_ae_titles_get_a_proper_reject(dgateway, storescp, aet, aec, rule, reason_text):
    require_tool("echoscu")
    r = run("echoscu", "-aet", aet, "-aec", aec, "127.0.0.1", str(dgateway.listen_port))
    assert r.returncode != 0
    assert reason_text.lower() in (r.stdout + r.stderr).lower(), r.stdout + r.stderr
    hits = by_rule(dgateway.events(), rule)
    assert hits and hits[0]["event"]["action"] == "blocked"
    # Nothing reached the PACS.
    assert storescp.files() == []


def test_store_is_byte_identical_to_a_direct_store(dgateway, storescp, tmp_path):
    require_tool("storescu")
    r = run("storescu", "-aet", "CT01", "-aec", "PACS", "127.0.0.1", str(dgateway.listen_port), CT)
    assert r.returncode == 0, r.stdout + r.stderr
    via = storescp.files()
    assert len(via) == 1
    direct_scp = StoreSCP(tmp_path / "direct")
    try:
        r = run("storescu", "-aet", "CT01", "-aec", "PACS", "127.0.0.4", str(direct_scp.port), CT)
        assert r.returncode == 0, r.stdout + r.stderr
        direct = direct_scp.files()
    finally:
        direct_scp.stop()
    assert len(direct) == 1
    assert filecmp.cmp(via[0], direct[0], shallow=False)
    stores = [e for e in dgateway.events() if e["wardgate"].get("dicom", {}).get("operation") == "C-STORE"]
    from pydicom import dcmread

    ds = dcmread(CT)
    d = stores[0]["wardgate"]["dicom"]
    # The facts wardgate recorded are the ones pydicom reads from the file.
    assert d["sop_class"] == ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
    assert d["sop_instance"] == ds.SOPInstanceUID
    assert d["modality"] == ds.Modality
    # Records name the patient by the site's keyed pseudonym, never the ID sent.
    assert d["patient_id"] == dgateway.pseudonym(ds.PatientID) != ds.PatientID


def test_disallowed_sop_class_context_is_rejected_alone(dgateway, storescp):
    ae = AE(ae_title="CT01")
    ae.add_requested_context(CTImageStorage)
    ae.add_requested_context(MRImageStorage)
    assoc = ae.associate("127.0.0.1", dgateway.listen_port, ae_title="PACS")
    assert assoc.is_established
    try:
        results = {cx.abstract_syntax: cx.result for cx in assoc.accepted_contexts + assoc.rejected_contexts}
        assert results[CTImageStorage] == 0x00
        # 0x03: abstract syntax not supported, set by the gateway (storescp accepts MR).
        assert results[MRImageStorage] == 0x03
        from pydicom import dcmread

        status = assoc.send_c_store(dcmread(CT))
        assert status.Status == 0x0000
    finally:
        assoc.release()
    ev = dgateway.events()
    hit = by_rule(ev, "WG-DICOM-003")
    assert hit and hit[0]["wardgate"]["dicom"]["sop_classes_rejected"] == [MRImageStorage]
    assert len(storescp.files()) == 1


def associate_expecting_reject(ae_title, port, source):
    """Associates from `source`; returns the A-ASSOCIATE-RJ PDU pynetdicom received.

    Read from the PDU itself (EVT_PDU_RECV), not from `assoc.is_rejected`: when the
    acceptor answers at once, pynetdicom can notice the closed transport before it
    processes the RJ and report an abort instead."""
    from pynetdicom.pdu import A_ASSOCIATE_RJ

    received = []
    ae = AE(ae_title=ae_title)
    ae.add_requested_context(Verification)
    assoc = ae.associate(
        "127.0.0.1", port, ae_title="PACS", bind_address=(source, 0),
        evt_handlers=[(evt.EVT_PDU_RECV, lambda event: received.append(event.pdu))],
    )
    assert not assoc.is_established
    rj = [p for p in received if isinstance(p, A_ASSOCIATE_RJ)]
    assert len(rj) == 1, received
    return rj[0]


def test_unknown_device_gets_a_reject_and_nothing_is_forwarded(dgateway, storescp):
    rj = associate_expecting_reject("CT01", dgateway.listen_port, "127.0.0.9")
    # Rejected permanent, by the service user, calling AE title not recognised.
    assert (rj.result, rj.source, rj.reason_diagnostic) == (1, 1, 3)
    hits = by_rule(dgateway.events(), "WG-ACCESS-001")
    assert hits and hits[0]["source"]["ip"] == "127.0.0.9"


class QrSCP:
    """pynetdicom as a Query/Retrieve SCP on 127.0.0.4: counts the moves it is asked for."""

    def __init__(self):
        self.moves = []
        ae = AE(ae_title="PACS")
        ae.add_supported_context(Verification)
        ae.add_supported_context(PatientRootQueryRetrieveInformationModelFind)
        ae.add_supported_context(PatientRootQueryRetrieveInformationModelMove)
        self.port = free_port("127.0.0.4")

        def on_find(event):
            yield 0x0000, None

        def on_move(event):
            self.moves.append(event.move_destination)
            yield ("127.0.0.4", 1)
            yield 0
            yield 0x0000, None

        self.server = ae.start_server(
            ("127.0.0.4", self.port),
            block=False,
            evt_handlers=[(evt.EVT_C_FIND, on_find), (evt.EVT_C_MOVE, on_move)],
        )

    def stop(self):
        self.server.shutdown()


def test_operations_and_move_destinations_are_enforced(tmp_path):
    scp = QrSCP()
    g = Gateway(tmp_path, scp.port, site=SITE)
    try:
        from pydicom.dataset import Dataset

        query = Dataset()
        query.QueryRetrieveLevel = "PATIENT"
        query.PatientID = "1234"
        ae = AE(ae_title="CT01")
        ae.add_requested_context(PatientRootQueryRetrieveInformationModelFind)
        ae.add_requested_context(PatientRootQueryRetrieveInformationModelMove)
        assoc = ae.associate("127.0.0.1", g.listen_port, ae_title="PACS")
        assert assoc.is_established
        try:
            # C-FIND is not among the route's operations: refused by the gateway.
            find = [s for s, _ in assoc.send_c_find(query, PatientRootQueryRetrieveInformationModelFind)]
            assert find[-1].Status == 0x0124
            # C-MOVE to an AE title the route does not allow: refused.
            moved = [s for s, _ in assoc.send_c_move(query, "EXFIL", PatientRootQueryRetrieveInformationModelMove)]
            assert moved[-1].Status == 0xA801
            # The association goes on: an allowed destination reaches the SCP.
            moved = [s for s, _ in assoc.send_c_move(query, "VIEWER", PatientRootQueryRetrieveInformationModelMove)]
            assert moved and all(s.Status in (0x0000, 0xFF00, 0xA702, 0xB000, 0xA801) for s in moved)
        finally:
            assoc.release()
        assert scp.moves == ["VIEWER"]
        ev = g.events()
        assert by_rule(ev, "WG-DICOM-004")[0]["wardgate"]["dicom"]["operation"] == "C-FIND"
        mv = by_rule(ev, "WG-DICOM-005")[0]["wardgate"]["dicom"]
        assert (mv["operation"], mv["move_destination"], mv["status"]) == ("C-MOVE", "EXFIL", 0xA801)
    finally:
        g.stop()
        scp.stop()


def test_cleartext_passcode_is_flagged_and_never_recorded(dgateway):
    ae = AE(ae_title="CT01")
    ae.add_requested_context(Verification)
    from pynetdicom.pdu_primitives import UserIdentityNegotiation

    ident = UserIdentityNegotiation()
    ident.user_identity_type = 2
    ident.primary_field = b"radtech"
    ident.secondary_field = b"Sup3rSecret!"
    assoc = ae.associate("127.0.0.1", dgateway.listen_port, ae_title="PACS", ext_neg=[ident])
    assert assoc.is_established
    assoc.send_c_echo()
    assoc.release()
    dgateway.stop()
    hits = by_rule(dgateway.events(), "WG-DICOM-006")
    assert hits and hits[0]["wardgate"]["dicom"]["username"] == "radtech"
    for f in (dgateway.dir / "data").rglob("*"):
        if f.is_file():
            assert b"Sup3rSecret" not in f.read_bytes(), f
    assert "Sup3rSecret" not in dgateway.log_text()


def test_garbage_gets_an_abort_and_other_associations_go_on(dgateway):
    s = socket.create_connection(("127.0.0.1", dgateway.listen_port), timeout=5)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    reply = s.recv(64)
    s.close()
    assert reply == bytes([0x07, 0, 0, 0, 0, 4, 0, 0, 2, 1])  # A-ABORT, provider, unrecognised PDU
    # An oversized PDU header is refused before its body is sent.
    s = socket.create_connection(("127.0.0.1", dgateway.listen_port), timeout=5)
    s.sendall(bytes([0x01, 0, 0x7F, 0xFF, 0xFF, 0xFF]))
    reply = s.recv(64)
    s.close()
    assert reply[:1] == b"\x07"
    r = run("echoscu", "-aet", "CT01", "-aec", "PACS", "127.0.0.1", str(dgateway.listen_port))
    assert r.returncode == 0, r.stdout + r.stderr
    ev = dgateway.events()
    assert by_rule(ev, "WG-DICOM-P01") and by_rule(ev, "WG-DICOM-P02")


def vm_hwm_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_a_300_mb_object_streams_through_in_bounded_memory(dgateway, storescp, tmp_path):
    """Memory per association is bounded by the PDU size, not the object size."""
    from pydicom import dcmread

    require_tool("storescu")
    ds = dcmread(CT)
    # ~300 MB of pixel data: 8660 frames of 128x128 16-bit, written once at test time.
    frames = 300 * 1024 * 1024 // (ds.Rows * ds.Columns * 2)
    ds.NumberOfFrames = frames
    ds.PixelData = bytes(range(256)) * (ds.Rows * ds.Columns * 2 * frames // 256)
    big = tmp_path / "big.dcm"
    ds.save_as(big)
    del ds
    before = vm_hwm_kib(dgateway.proc.pid)
    r = run("storescu", "-aet", "CT01", "-aec", "PACS", "127.0.0.1", str(dgateway.listen_port), str(big), timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    after = vm_hwm_kib(dgateway.proc.pid)
    received = storescp.files()
    assert len(received) == 1 and received[0].stat().st_size > 300 * 1024 * 1024
    # The whole object is 300 MiB; the gateway's peak grew by far less than that.
    assert after < 64 * 1024, f"wardgate peak RSS {after} KiB (was {before} KiB before the store)"


PE = bytearray(0x200)
PE[:2] = b"MZ"
PE[0x3C:0x40] = (0x80).to_bytes(4, "little")
PE[0x80:0x84] = b"PE\0\0"
PE = bytes(PE)


def encapsulated_pdf(path, document):
    """An Encapsulated PDF Storage object whose 'PDF' is `document`."""
    from pydicom import dcmread
    from pydicom.uid import generate_uid

    ds = dcmread(CT)
    for kw in ("PixelData", "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit",
               "PixelRepresentation", "SamplesPerPixel", "PhotometricInterpretation"):
        if kw in ds:
            delattr(ds, kw)
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.104.1"
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Modality = "DOC"
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = document + b"\0" * (len(document) % 2)
    ds.save_as(path)
    return path


def test_executable_in_an_encapsulated_document_is_blocked(dgateway, storescp, tmp_path):
    require_tool("storescu")
    bad = encapsulated_pdf(tmp_path / "invoice.dcm", PE)
    r = run("storescu", "-aet", "CT01", "-aec", "PACS", "127.0.0.1", str(dgateway.listen_port), str(bad))
    assert r.returncode != 0 or "abort" in (r.stdout + r.stderr).lower()
    assert storescp.files_once_settled() == []
    hits = by_rule(dgateway.events(), "WG-DICOM-009")
    assert hits and hits[0]["event"]["action"] == "blocked"
    assert "(0042,0011)" in hits[0]["event"]["reason"] and "Windows PE" in hits[0]["event"]["reason"]
    # A real PDF in the same kind of object goes through.
    good = encapsulated_pdf(tmp_path / "report.dcm", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n")
    r = run("storescu", "-aet", "CT01", "-aec", "PACS", "127.0.0.1", str(dgateway.listen_port), str(good))
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(storescp.files()) == 1


def scan(*paths):
    from conftest import wardgate_bin

    return subprocess.run([wardgate_bin(), "scan", "--json", *map(str, paths)], capture_output=True, text=True, timeout=120)


def test_scan_reports_preamble_polyglots_and_hidden_executables(tmp_path):
    clean = scan(CT)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert json.loads(clean.stdout)["verdict"] == "clean"
    # CVE-2019-11687: a PE header in the 128-byte preamble.
    raw = bytearray(Path(CT).read_bytes())
    raw[:0x80] = PE[:0x80]
    polyglot = tmp_path / "polyglot.dcm"
    polyglot.write_bytes(bytes(raw))
    r = scan(polyglot)
    assert r.returncode == 1
    rep = json.loads(r.stdout)
    assert rep["verdict"] == "executable" and "CVE-2019-11687" in rep["detail"]
    elf = encapsulated_pdf(tmp_path / "elf.dcm", b"\x7fELF\x02\x01\x01" + b"\0" * 57)
    r = scan(elf)
    assert r.returncode == 1 and "(0042,0011)" in json.loads(r.stdout)["detail"]
    notdicom = tmp_path / "notes.txt"
    notdicom.write_text("hello")
    r = scan(notdicom, CT)
    assert r.returncode == 2
    assert [json.loads(l)["verdict"] for l in r.stdout.splitlines()] == ["error", "clean"]


def test_scan_raises_no_false_alarm_on_pydicoms_test_corpus():
    files = sorted(Path(CT).parent.glob("*.dcm"))
    assert len(files) > 50
    r = scan(*files)
    verdicts = [json.loads(l) for l in r.stdout.splitlines()]
    assert len(verdicts) == len(files)
    assert not [v for v in verdicts if v["verdict"] == "executable"]
    # Most of the corpus is walked to the end; the rest says why not.
    assert sum(v["verdict"] == "clean" for v in verdicts) >= 50


def test_devices_lists_what_was_seen_with_its_software_fingerprint(dgateway):
    require_tool("echoscu")
    r = run("echoscu", "-aet", "CT01", "-aec", "PACS", "127.0.0.1", str(dgateway.listen_port))
    assert r.returncode == 0, r.stdout + r.stderr
    associate_expecting_reject("ROGUE", dgateway.listen_port, "127.0.0.9")
    dgateway.events()  # the record has settled
    out = dgateway.cli("devices", "--json").stdout
    devs = {d["address"]: d for d in map(json.loads, out.splitlines())}
    ct = devs["127.0.0.1"]
    assert ct["device"] == "ct-1" and ct["enrolled"] and ct["ae_titles"] == ["CT01"]
    assert ct["implementation_versions"][0].startswith("OFFIS_DCMTK")
    rogue = devs["127.0.0.9"]
    assert rogue["device"] is None and not rogue["enrolled"]
    # A refused association is an attempt, not the address's own AE title (#22).
    assert rogue.get("ae_titles", []) == [] and rogue["attempted_ae_titles"] == ["ROGUE"]
    assert rogue["blocked"] >= 1
    # pynetdicom's own implementation class UID identifies the software.
    from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID

    assert rogue["implementation_class_uids"] == [str(PYNETDICOM_IMPLEMENTATION_UID)]
    # The PACS is enrolled and was never a sender, but the echo reached it
    # as the route's upstream: seen, as a server (#22: not "never").
    pacs = devs["127.0.0.4"]
    assert pacs["last_seen"] is not None and "server" in pacs["roles"] and pacs["served"] >= 1
    assert "client" not in pacs["roles"]
    table = dgateway.cli("devices").stdout
    assert "127.0.0.9" in table and "NO" in table


def test_tshark_sees_the_association_wardgate_recorded_and_the_rejected_context(tmp_path, storescp):
    tshark = require_tool("tshark")
    g = Gateway(tmp_path, storescp.port, site=SITE)
    pcap = tmp_path / "dicom.pcapng"
    cap = start_capture(f"tcp port {g.listen_port} or tcp port {storescp.port}", pcap)
    try:
        from pydicom import dcmread

        ae = AE(ae_title="CT01")
        ae.add_requested_context(CTImageStorage)
        ae.add_requested_context(MRImageStorage)
        assoc = ae.associate("127.0.0.1", g.listen_port, ae_title="PACS")
        assert assoc.is_established
        assert assoc.send_c_store(dcmread(CT)).Status == 0
        assoc.release()
        time.sleep(0.5)
    finally:
        cap.terminate()
        cap.wait(10)
        g.stop()

    def fields(port, *names, filt="dicom"):
        out = subprocess.run(
            [tshark, "-r", str(pcap), "-d", f"tcp.port=={port},dicom", "-Y", filt, "-T", "fields", "-E", "separator=/t",
             *sum((["-e", n] for n in names), [])],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout
        return [row.split("\t") for row in out.splitlines() if row.strip()]

    # The A-ASSOCIATE-RQ the sender sent, as tshark reads it, is what wardgate recorded.
    rq = fields(g.listen_port, "dicom.assoc.ae.calling", "dicom.assoc.ae.called", "dicom.userinfo.uid", "dicom.userinfo.version",
                filt=f"dicom.pdu.type == 1 && tcp.dstport == {g.listen_port}")
    assert len(rq) == 1
    calling, called, impl_uid, impl_version = (x.strip() for x in rq[0])
    ev = [e for e in g.events() if e["wardgate"].get("stage") == "association"][0]["wardgate"]["dicom"]
    assert (ev["calling_ae"], ev["called_ae"]) == (calling, called)
    assert (ev["implementation_class_uid"], ev["implementation_version"]) == (impl_uid, impl_version)
    # The PACS accepted both contexts; the sender saw the MR one rejected (3) by wardgate.
    upstream_ac = fields(storescp.port, "dicom.pctx.result", filt=f"dicom.pdu.type == 2 && tcp.srcport == {storescp.port}")
    client_ac = fields(g.listen_port, "dicom.pctx.result", filt=f"dicom.pdu.type == 2 && tcp.srcport == {g.listen_port}")
    assert [int(x, 0) for x in upstream_ac[0][0].split(",")] == [0, 0]
    assert [int(x, 0) for x in client_ac[0][0].split(",")] == [0, 3]
    # P-DATA went through unchanged: the same PDU lengths on both legs (however the
    # PDUs were grouped into TCP segments).
    def pdu_lengths(port):
        rows = fields(port, "dicom.pdu.type", "dicom.pdu.len", filt=f"dicom && tcp.dstport == {port}")
        out = []
        for types, lens in rows:
            out += [int(n) for t, n in zip(types.split(","), lens.split(",")) if int(t, 0) == 4]
        return out

    sent, forwarded = pdu_lengths(g.listen_port), pdu_lengths(storescp.port)
    assert sent and sent == forwarded


class Orthanc:
    """Orthanc (Debian `orthanc`) as the PACS on 127.0.0.4, with its own storage."""

    def __init__(self, tmp):
        # Debian installs it in /usr/sbin, which a non-root PATH may lack.
        exe = "/usr/sbin/Orthanc" if Path("/usr/sbin/Orthanc").exists() else require_tool("Orthanc")
        self.dir = Path(tmp) / "orthanc"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port("0.0.0.0")
        self.http = free_port("0.0.0.0")
        cfg = {
            "Name": "wardgate-test-pacs",
            "StorageDirectory": str(self.dir / "storage"),
            "IndexDirectory": str(self.dir / "index"),
            "DicomAet": "PACS",
            "DicomPort": self.port,
            "HttpPort": self.http,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomCheckCalledAet": True,
            "Plugins": [],
        }
        conf = self.dir / "orthanc.json"
        conf.write_text(json.dumps(cfg))
        self.log = open(self.dir / "orthanc.log", "wb")
        self.proc = subprocess.Popen([exe, str(conf)], stdout=self.log, stderr=subprocess.STDOUT)
        wait_port("127.0.0.4", self.port, timeout=30)
        wait_port("127.0.0.1", self.http, timeout=30)

    def rest(self, path):
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.http}{path}", timeout=10) as r:
            return json.loads(r.read())

    def stop(self):
        self.proc.terminate()
        self.proc.wait(20)
        self.log.close()


def test_orthanc_as_the_pacs(tmp_path):
    """A CT image stored through wardgate lands in Orthanc as sent; a disallowed
    calling AE title never reaches it."""
    require_tool("storescu")
    pacs = Orthanc(tmp_path)
    g = Gateway(tmp_path, pacs.port, site=SITE)
    try:
        r = run("echoscu", "-aet", "CT01", "-aec", "PACS", "127.0.0.1", str(g.listen_port))
        assert r.returncode == 0, r.stdout + r.stderr
        r = run("storescu", "-aet", "CT01", "-aec", "PACS", "127.0.0.1", str(g.listen_port), CT)
        assert r.returncode == 0, r.stdout + r.stderr
        r = run("storescu", "-aet", "EVIL", "-aec", "PACS", "127.0.0.1", str(g.listen_port), MR)
        assert r.returncode != 0
        instances = pacs.rest("/instances")
        assert len(instances) == 1
        from pydicom import dcmread

        tags = pacs.rest(f"/instances/{instances[0]}/simplified-tags")
        ds = dcmread(CT)
        assert tags["SOPInstanceUID"] == ds.SOPInstanceUID
        assert tags["PatientID"] == ds.PatientID
        # Orthanc keeps the object byte for byte as received: same pixel data.
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{pacs.http}/instances/{instances[0]}/file", timeout=10) as resp:
            stored = dcmread(__import__("io").BytesIO(resp.read()))
        assert stored.PixelData == ds.PixelData
    finally:
        g.stop()
        pacs.stop()


def test_dcmtk_findscu_and_movescu_get_the_refusal_statuses(tmp_path):
    require_tool("findscu")
    require_tool("movescu")
    scp = QrSCP()
    g = Gateway(tmp_path, scp.port, site=SITE)
    try:
        keys = ["-k", "QueryRetrieveLevel=PATIENT", "-k", "PatientID=1234"]
        r = run("findscu", "-v", "-P", "-aet", "CT01", "-aec", "PACS", *keys, "127.0.0.1", str(g.listen_port))
        out = r.stdout + r.stderr
        # The status wardgate answered with: 0124H, refused: not authorized (PS3.7
        # C.5, general); dcmtk prints it as "Unknown Status: 0x124" for a C-FIND.
        assert "status: 0x124" in out.lower(), out
        r = run("movescu", "-v", "-P", "-aet", "CT01", "-aec", "PACS", "-aem", "EXFIL", *keys, "127.0.0.1", str(g.listen_port))
        out = r.stdout + r.stderr
        assert "Refused: MoveDestinationUnknown" in out, out
        assert scp.moves == []
        ev = g.events()
        assert by_rule(ev, "WG-DICOM-004") and by_rule(ev, "WG-DICOM-005")
    finally:
        g.stop()
        scp.stop()


def test_a_pdu_over_the_negotiated_maximum_aborts(dgateway):
    """storescp announces 16 KiB; a 20 000-byte P-DATA from the sender is refused
    from its header, and the association is aborted on both sides."""
    ae = AE(ae_title="CT01")
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", dgateway.listen_port, ae_title="PACS")
    assert assoc.is_established
    raw = assoc.dul.socket.socket
    body = (20000 - 4).to_bytes(4, "big") + bytes([1, 0]) + bytes(20000 - 6)
    raw.sendall(bytes([0x04, 0]) + len(body).to_bytes(4, "big") + body)
    deadline = time.monotonic() + 10
    while not assoc.is_aborted and time.monotonic() < deadline:
        time.sleep(0.05)
    assert assoc.is_aborted
    hits = by_rule(dgateway.events(), "WG-DICOM-P02")
    assert hits and "16384" in hits[0]["event"]["reason"]


def test_executable_content_can_be_alerted_instead_of_blocked(tmp_path, storescp):
    require_tool("storescu")
    g = Gateway(tmp_path, storescp.port, site=SITE + 'executable_content = "alert"\n')
    try:
        bad = encapsulated_pdf(tmp_path / "invoice.dcm", PE)
        r = run("storescu", "-aet", "CT01", "-aec", "PACS", "127.0.0.1", str(g.listen_port), str(bad))
        assert r.returncode == 0, r.stdout + r.stderr
        assert len(storescp.files()) == 1
        hits = by_rule(g.events(), "WG-DICOM-009")
        assert hits and hits[0]["event"]["action"] == "alerted"
    finally:
        g.stop()


def test_a_sender_dribbling_a_pdu_is_cut_off(dgateway):
    """frame_timeout_secs (3 s here) bounds how long a started PDU may take, however
    steadily its bytes trickle in: a slow-loris sender cannot hold an association."""
    ae = AE(ae_title="CT01")
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", dgateway.listen_port, ae_title="PACS")
    assert assoc.is_established
    raw = assoc.dul.socket.socket
    raw.sendall(bytes([0x04, 0, 0, 0, 0x03, 0xE8]))  # P-DATA-TF of 1000 bytes...
    start = time.monotonic()
    try:
        while time.monotonic() - start < 8 and not assoc.is_aborted:
            raw.sendall(b"\0")  # ...one byte every 0.4 s
            time.sleep(0.4)
    except OSError:
        pass
    elapsed = time.monotonic() - start
    deadline = time.monotonic() + 5
    while not assoc.is_aborted and time.monotonic() < deadline:
        time.sleep(0.05)
    assert assoc.is_aborted
    assert elapsed < 6, f"still connected after {elapsed:.1f} s"
    hits = by_rule(dgateway.events(), "WG-CONN-001")
    assert hits and "PDU not completed" in hits[0]["event"]["reason"]
