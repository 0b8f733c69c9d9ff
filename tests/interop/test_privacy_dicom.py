"""DICOM de-identification inside the proxy (issue 23, docs/privacy.md), with
real peers: dcmtk's storescu and pynetdicom send, dcmtk's storescp stores,
pydicom reads what was stored. Objects are pydicom's bundled test files.

The route applies PS3.15 Annex E with Retain Longitudinal Temporal Information
with Modified Dates: the stored objects carry the keyed pseudonym of their
Patient ID, replaced UIDs (the same for the same UID in every association),
dates moved by the patient's offset, and none of the identifying values the
original held. The sender is answered with its own instance UID.
"""
import hashlib
from pathlib import Path
import hmac
import struct
import time
from datetime import date, timedelta

from pydicom import dcmread
from pydicom.data import get_testdata_file
from pynetdicom import AE, evt
from pynetdicom.sop_class import CTImageStorage, MRImageStorage, SecondaryCaptureImageStorage

from conftest import Gateway, pseudonym, require_module, require_tool
from test_dicom import StoreSCP, by_rule, run

CT = get_testdata_file("CT_small.dcm")
MR = get_testdata_file("MR_small.dcm")
SC = get_testdata_file("SC_rgb_small_odd.dcm")

SITE = """
[gateway]
data_dir = "{data_dir}"
frame_timeout_secs = 3
shutdown_grace_secs = 5

[[device]]
id = "ct-1"
kind = "ct-scanner"
addresses = ["127.0.0.1"]
ae_titles = ["CT01"]

[[device]]
id = "teaching-archive"
kind = "pacs"
addresses = ["127.0.0.4"]
ae_titles = ["PACS"]

[[route]]
id = "teaching"
protocol = "dicom"
listen = "127.0.0.1:{listen_port}"
upstream = "127.0.0.4:{upstream_port}"
senders = ["ct-1"]
called_ae_titles = ["PACS"]
operations = ["C-ECHO", "C-STORE"]
sop_classes = [
  "1.2.840.10008.1.1",
  "1.2.840.10008.5.1.4.1.1.2",
  "1.2.840.10008.5.1.4.1.1.4",
  "1.2.840.10008.5.1.4.1.1.7",
]

[route.privacy]
mode = "pseudonymise"
purpose = "teaching"
dicom_options = ["retain-longitudinal-modified-dates"]
"""

# Values of the test files that identify (patients, institutions, people, devices).
IDENTIFYING = ["PatientName", "PatientID", "InstitutionName", "ReferringPhysicianName",
               "StationName", "OperatorsName", "PatientBirthDate", "AccessionNumber",
               "InstitutionAddress", "PerformingPhysicianName", "DeviceSerialNumber"]


def keyed(data_dir, parts):
    key = (data_dir / "privacy" / "site.key").read_bytes()
    m = hmac.new(key, digestmod=hashlib.sha256)
    for p in parts:
        m.update(len(p).to_bytes(8, "big"))
        m.update(p)
    return m.digest()


def uid_for(data_dir, uid):
    """The replacement UID, as docs/privacy.md specifies it."""
    d = keyed(data_dir, [b"uid v1", b"dicom", uid.rstrip("\0 ").encode()])
    return "2.25." + str(int.from_bytes(d[:16], "big"))


def shift_for(data_dir, patient_id):
    d = keyed(data_dir, [b"date shift v1", b"patient", patient_id.strip().encode()])
    return -(int.from_bytes(d[:4], "big") % 1095) - 1


def data_set_bytes(path):
    """The data set of a Part 10 file: what follows the file meta group."""
    raw = path.read_bytes()
    assert raw[128:132] == b"DICM"
    pos = 132
    while True:
        group, _ = struct.unpack_from("<HH", raw, pos)
        if group != 2:
            return raw[pos:]
        vr = raw[pos + 4:pos + 6]
        if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN"):
            length = struct.unpack_from("<I", raw, pos + 8)[0]
            pos += 12 + length
        else:
            length = struct.unpack_from("<H", raw, pos + 6)[0]
            pos += 8 + length


def storescu(gw, *files):
    require_tool("storescu")
    return run("storescu", "-aet", "CT01", "-aec", "PACS", "127.0.0.1", str(gw.listen_port), *files)


def store_each(tmp_path, site, files):
    """Sends each file in an association of its own through a gateway on
    `site` to storescp; the gateway's events and the files stored."""
    scp = StoreSCP(tmp_path / "archive")
    gw = Gateway(tmp_path, scp.port, site=site)
    try:
        for f in files:
            r = storescu(gw, f)
            assert r.returncode == 0, r.stdout + r.stderr
        return gw.events(), scp.files_once_settled()
    finally:
        gw.stop()
        scp.stop()


def test_objects_are_de_identified_in_the_proxy_and_stored_by_a_real_pacs(tmp_path):
    # The same CT again, in another association: the same replacement UIDs.
    events, stored = store_each(tmp_path, SITE, (CT, MR, CT))
    data = tmp_path / "data"
    assert len(stored) >= 2, stored
    by_instance = {}
    for path in stored:
        ds = dcmread(path)
        # pydicom reads every element of what the PACS stored.
        for _ in ds.iterall():
            pass
        by_instance[ds.SOPInstanceUID] = (path, ds)
    for original in (CT, MR):
        orig = dcmread(original)
        want_uid = uid_for(data, orig.SOPInstanceUID)
        assert want_uid in by_instance, (want_uid, list(by_instance))
        path, ds = by_instance[want_uid]
        assert ds.PatientID == pseudonym(data, orig.PatientID)
        assert str(ds.PatientName) == pseudonym(data, orig.PatientID)
        assert ds.StudyInstanceUID == uid_for(data, orig.StudyInstanceUID)
        assert ds.SeriesInstanceUID == uid_for(data, orig.SeriesInstanceUID)
        assert ds.PatientIdentityRemoved == "YES"
        # Dates moved by the patient's offset (intervals kept).
        shifted = date(int(orig.StudyDate[:4]), int(orig.StudyDate[4:6]), int(orig.StudyDate[6:8])) \
            + timedelta(days=shift_for(data, orig.PatientID))
        assert ds.StudyDate == shifted.strftime("%Y%m%d")
        raw = path.read_bytes()
        kept = {str(orig.get(k, "") or "").strip() for k in ("Manufacturer", "ManufacturerModelName")}
        for kw in IDENTIFYING:
            v = str(orig.get(kw, "") or "").strip()
            assert str(ds.get(kw, "") or "").strip() != v or not v, f"{kw} {v!r} kept"
            # Grepped too, unless the same text is a value the profile keeps
            # (MR_small's institution TOSHIBA is in its manufacturer, TOSHIBA_MEC).
            if len(v) >= 4 and not any(v in k for k in kept):
                assert v.encode() not in raw, f"{kw} {v!r} reached the archive"
        assert not any(e.tag.is_private for e in ds.iterall()), "private attributes removed"
        # Pixels are untouched.
        assert ds.PixelData == orig.PixelData
    # SHA-256 by default ([privacy] dicom_digest).
    done = [e for e in events if e["event"]["action"] == "allowed"
            and e["wardgate"].get("privacy", {}).get("sha256_out")]
    assert len(done) == 3, done
    outs = {hashlib.sha256(data_set_bytes(p)).hexdigest() for p, _ in by_instance.values()}
    for e in done:
        pr = e["wardgate"]["privacy"]
        assert pr["mode"] == "pseudonymise" and pr["hmac_sha256_in"] != pr["sha256_out"]
        assert "blake3_out" not in pr and "blake3_keyed_in" not in pr and "sha256_in" not in pr
        assert pr["sha256_out"] in outs, "the record's hash out is the hash of what the archive stored"
    # What came in is keyed (a plain SHA-256 would confirm a guess of the
    # original): never the plain digest of an original's data set.
    plain = {hashlib.sha256(data_set_bytes(Path(f))).hexdigest() for f in (CT, MR)}
    assert not {e["wardgate"]["privacy"]["hmac_sha256_in"] for e in done} & plain
    # No identifier in wardgate's own records either.
    written = b"".join(p.read_bytes() for p in data.rglob("*") if p.is_file())
    for original in (CT, MR):
        orig = dcmread(original)
        assert orig.PatientID.encode() not in written
        assert str(orig.PatientName).encode() not in written
        # Nor the sender's UIDs (PS3.15 treats them as identifying): the
        # records name each object by the UID the archive holds.
        for kw in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
            assert str(orig.get(kw)).encode() not in written, f"{kw} in wardgate's records"
    named = {e["wardgate"]["dicom"].get("sop_instance") for e in events
             if e["wardgate"].get("dicom", {}).get("operation") == "C-STORE"}
    assert named - {None, ""} <= set(by_instance), named


def test_a_site_that_chooses_blake3_gets_blake3_digests(tmp_path):
    """`[privacy] dicom_digest = "blake3"`: the record's digests are BLAKE3,
    recomputed by the reference implementation's Python binding, and the one
    out is that of the data set the archive stored."""
    blake3 = require_module("blake3")
    events, stored = store_each(tmp_path, SITE + '\n[privacy]\ndicom_digest = "blake3"\n', (CT,))
    assert len(stored) == 1, stored
    done = [e["wardgate"]["privacy"] for e in events
            if e["event"]["action"] == "allowed" and e["wardgate"].get("privacy", {}).get("changes")]
    assert len(done) == 1, events
    pr = done[0]
    assert "sha256_out" not in pr and "hmac_sha256_in" not in pr and "blake3_in" not in pr
    assert pr["blake3_out"] == blake3.blake3(data_set_bytes(stored[0])).hexdigest()
    assert pr["blake3_keyed_in"] != pr["blake3_out"]


LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


def element_digest(blake3, data, implicit, key=None):
    """The element digest, written from its definition in docs/privacy.md
    ("The element digest"), independently of wardgate's code: headers and
    small values as written, values of 16 KiB or more by their own BLAKE3
    hash; undefined lengths open containers (implicit VR inside UN) that the
    next sequence delimiter closes; a cut-short data set ends the digest."""
    outer = blake3.blake3(key=key) if key else blake3.blake3()
    pos, modes, deeper, first = 0, [], 0, True
    while pos < len(data):
        if len(data) - pos < 8:
            outer.update(data[pos:])
            break
        group, element = struct.unpack_from("<HH", data, pos)
        if first and group != 0xFFFE:
            first = False
            if not implicit and not all(0x41 <= b <= 0x5A for b in data[pos + 4:pos + 6]):
                implicit = True
        mode = modes[-1] if modes else implicit
        un = False
        if group == 0xFFFE or mode:
            size, length = 8, struct.unpack_from("<I", data, pos + 4)[0]
        elif data[pos + 4:pos + 6] in LONG_VRS:
            if len(data) - pos < 12:
                outer.update(data[pos:])
                break
            size, length = 12, struct.unpack_from("<I", data, pos + 8)[0]
            un = data[pos + 4:pos + 6] == b"UN"
        else:
            size, length = 8, struct.unpack_from("<H", data, pos + 6)[0]
        outer.update(data[pos:pos + size])
        pos += size
        if group == 0xFFFE and element == 0xE0DD:
            if deeper:
                deeper -= 1
            elif modes:
                modes.pop()
        if length == 0xFFFFFFFF:
            if group != 0xFFFE:
                if len(modes) < 64:
                    modes.append(mode or un)
                else:
                    deeper += 1
            continue
        value = data[pos:pos + length]
        outer.update(blake3.blake3(value).digest() if length >= 16384 else value)
        pos += length
    return outer.hexdigest()


def element_corpus(seed, count):
    """Data sets for the element digest's differential test: random headers of
    both lengths, items, delimiters, undefined lengths (UN among them), values
    either side of 16 KiB, implicit bytes under an explicit syntax, nesting
    past 64, and cuts anywhere. Each `(bytes, implicit)`."""
    import random

    rnd = random.Random(seed)
    long_vrs, short_vrs = sorted(LONG_VRS), [b"CS", b"LO", b"UI", b"DA", b"US", b"A\x00", b"ab", b"ZZ"]
    out = []
    for n in range(count):
        implicit = rnd.random() < 0.3
        data, modes = b"", []
        if rnd.random() < 0.05:  # an item before the first element
            data += struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
        for _ in range(rnd.randrange(1, 40)):
            mode = modes[-1] if modes else implicit
            r = rnd.random()
            if r < 0.1:
                data += struct.pack("<HHI", 0xFFFE, 0xE0DD, rnd.choice([0, 0, 4]))
                data += b"\x00" * 4 if data[-4:] == b"\x04\x00\x00\x00" else b""
                if modes:
                    modes.pop()
                continue
            if r < 0.2:
                data += struct.pack("<HHI", 0xFFFE, rnd.choice([0xE000, 0xE00D]),
                                    rnd.choice([0, 0xFFFFFFFF, rnd.randrange(40)]))
                continue
            tag = (rnd.choice([0x0008, 0x0010, 0x0029, 0x7FE0]), rnd.randrange(0x10000))
            length = rnd.choice([rnd.randrange(60), rnd.randrange(16380, 16390), rnd.randrange(16390, 70000)])
            undefined = rnd.random() < 0.15
            if mode:
                data += struct.pack("<HHI", *tag, 0xFFFFFFFF if undefined else length)
                vr = None
            elif undefined or rnd.random() < 0.5:
                vr = rnd.choice(long_vrs)
                data += struct.pack("<HH2sHI", *tag, vr, 0, 0xFFFFFFFF if undefined else length)
            else:
                vr = rnd.choice(short_vrs)
                length %= 65536
                data += struct.pack("<HH2sH", *tag, vr, length)
            if undefined:
                modes.append(mode or vr == b"UN")
                continue
            data += bytes(rnd.getrandbits(8) for _ in range(min(length, 64))) + b"\x5a" * max(0, length - 64)
        if n % 7 == 0:  # nested past 64 containers, a UN inside
            data += struct.pack("<HH2sHI", 0x0040, 0xA730, b"SQ", 0, 0xFFFFFFFF) * 70
            data += struct.pack("<HH2sHI", 0x0009, 0x1000, b"UN", 0, 0xFFFFFFFF)
            data += struct.pack("<HHI", 0x0009, 0x1001, 20000) + b"\x01" * 20000
        if n % 5 == 0:
            data = data[:rnd.randrange(len(data) + 1)]
        out.append((data, implicit))
    return out


def test_a_site_that_chooses_element_digests_gets_them(tmp_path):
    """`[privacy] dicom_digest = "blake3-elements"`: the digests are the
    element digests of the data set as pynetdicom sent it (keyed, under the
    key docs/privacy.md derives) and as the archive stored it, recomputed from
    their definition in Python; `wardgate digest --elements` gives both too."""
    blake3 = require_module("blake3")
    from pydicom.uid import ExplicitVRLittleEndian
    from pynetdicom.dsutils import encode

    site = SITE + '\n[privacy]\ndicom_digest = "blake3-elements"\n'
    scp = StoreSCP(tmp_path / "archive")
    gw = Gateway(tmp_path, scp.port, site=site)
    try:
        ds = dcmread(CT)
        assert len(ds.PixelData) >= 16384, "the pixels are a large value"
        ae = AE(ae_title="CT01")
        ae.add_requested_context(CTImageStorage, [ExplicitVRLittleEndian])
        assoc = ae.associate("127.0.0.1", gw.listen_port, ae_title="PACS")
        assert assoc.is_established
        status = assoc.send_c_store(ds)
        assoc.release()
        assert status.Status == 0x0000, status
        sent = encode(ds, False, True)
        events, stored = gw.events(), scp.files_once_settled()
        assert len(stored) == 1, stored
        done = [e["wardgate"]["privacy"] for e in events
                if e["event"]["action"] == "allowed" and e["wardgate"].get("privacy", {}).get("changes")]
        assert len(done) == 1, events
        pr = done[0]
        assert not {"sha256_out", "hmac_sha256_in", "blake3_out", "blake3_keyed_in"} & set(pr), pr
        implicit = dcmread(stored[0]).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2"
        assert pr["blake3_elements_out"] == element_digest(blake3, data_set_bytes(stored[0]), implicit)
        # Not the plain BLAKE3 of the same bytes: the definition matters.
        assert pr["blake3_elements_out"] != blake3.blake3(data_set_bytes(stored[0])).hexdigest()
        assert gw.cli("digest", "--elements", "--out", str(stored[0])).stdout.split()[0] \
            == pr["blake3_elements_out"]
        m = hmac.new((tmp_path / "data" / "privacy" / "site.key").read_bytes(), digestmod=hashlib.sha256)
        for part in (b"derived key v1", b"wardgate.privacy.in-digest", b""):
            m.update(len(part).to_bytes(8, "big"))
            m.update(part)
        assert pr["blake3_elements_keyed_in"] == element_digest(blake3, sent, False, key=m.digest())
        (tmp_path / "sent.bin").write_bytes(sent)
        assert gw.cli("digest", "--elements", str(tmp_path / "sent.bin")).stdout.split()[0] \
            == pr["blake3_elements_keyed_in"]
        # The definition and wardgate's walker agree on data sets of every
        # shape (both read bare data sets here).
        corpus = tmp_path / "corpus"
        corpus.mkdir()
        want = {}
        for i, (data, implicit) in enumerate(element_corpus(23, 240)):
            f = corpus / f"{i:03}.{'im' if implicit else 'ex'}"
            f.write_bytes(data)
            want[str(f)] = element_digest(blake3, data, implicit)
        got = {}
        for flag, suffix in ((["--implicit"], ".im"), ([], ".ex")):
            files = sorted(str(f) for f in corpus.glob("*" + suffix))
            for line in gw.cli("digest", "--elements", "--out", *flag, *files).stdout.splitlines():
                digest, name = line.split("  ", 1)
                got[name] = digest
        assert got == want
    finally:
        gw.stop()
        scp.stop()


def test_the_sender_gets_its_own_instance_uid_back(tmp_path):
    scp = StoreSCP(tmp_path / "archive")
    gw = Gateway(tmp_path, scp.port, site=SITE)
    seen = []

    def on_recv(event):
        cs = event.message.command_set
        if "AffectedSOPInstanceUID" in cs and cs.get("Status") is not None:
            seen.append((cs.AffectedSOPInstanceUID, cs.Status))

    try:
        ae = AE(ae_title="CT01")
        ae.add_requested_context(CTImageStorage)
        assoc = ae.associate("127.0.0.1", gw.listen_port, ae_title="PACS",
                             evt_handlers=[(evt.EVT_DIMSE_RECV, on_recv)])
        assert assoc.is_established
        ds = dcmread(CT)
        status = assoc.send_c_store(ds)
        assoc.release()
        assert status.Status == 0x0000, status
    finally:
        gw.stop()
        scp.stop()
    assert seen == [(ds.SOPInstanceUID, 0)], seen


def test_consent_and_burned_in_identity_are_refused_before_anything_is_forwarded(tmp_path):
    scp = StoreSCP(tmp_path / "archive")
    gw = Gateway(tmp_path, scp.port, site=SITE)
    mr = dcmread(MR)
    try:
        r = gw.cli("consent", "add", "--purpose", "teaching", mr.PatientID)
        assert r.returncode == 0, r.stderr
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(
                "teaching: 1" in e["event"]["reason"] for e in gw.events()):
            time.sleep(0.3)
        ae = AE(ae_title="CT01")
        ae.add_requested_context(MRImageStorage)
        ae.add_requested_context(SecondaryCaptureImageStorage)
        assoc = ae.associate("127.0.0.1", gw.listen_port, ae_title="PACS")
        assert assoc.is_established
        # The patient opted out: answered success (the modality must not
        # retry), nothing stored.
        assert assoc.send_c_store(mr).Status == 0x0000
        # A secondary capture may show identity in its pixels: refused.
        assert assoc.send_c_store(dcmread(SC)).Status == 0x0124
        assoc.release()
        events = gw.events()
        stored = scp.files_once_settled()
    finally:
        gw.stop()
        scp.stop()
    assert stored == [], stored
    held = by_rule(events, "WG-PRIV-001")
    assert len(held) == 1 and held[0]["event"]["action"] == "blocked", held
    assert mr.PatientID not in str(held[0])
    burned = by_rule(events, "WG-PRIV-003")
    assert len(burned) == 1 and burned[0]["wardgate"]["dicom"]["status"] == 0x0124, burned
