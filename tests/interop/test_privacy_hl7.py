"""Privacy on an HL7 route (issue 23, docs/privacy.md), with real peers: senders
and the upstream are the `hl7` package's MLLP client and server, messages are
built and the results read with `hl7` and `hl7apy`.

A corpus of ADT and ORU messages with generated identifiers (names, MRNs,
phones, addresses, SSNs, next of kin, birth dates) goes through a
`pseudonymise` route; no identifier may appear in what the upstream received,
nor anywhere in what wardgate wrote (every file of its data directory, its log).
"""
import hashlib
import json
import random
import time

import hl7
from hl7apy.parser import parse_message

from conftest import Gateway, Upstream, pseudonym
from test_hl7_mllp import SourceBoundClient, unframe

SITE = """
[gateway]
data_dir = "{data_dir}"
max_frame_bytes = {max_frame}
frame_timeout_secs = 3
shutdown_grace_secs = 5

[[device]]
id = "ehr"
kind = "ehr"
addresses = ["127.0.0.2"]

[[device]]
id = "registry"
kind = "research-registry"
addresses = ["127.0.0.3"]

[[route]]
id = "research-feed"
protocol = "hl7-mllp"
listen = "127.0.0.1:{listen_port}"
upstream = "127.0.0.3:{upstream_port}"
senders = ["ehr"]
messages = ["ADT^A01", "ORU^R01"]

[route.privacy]
mode = "pseudonymise"
purpose = "research"
"""

FIRST = ["Jane", "Miriam", "Olusegun", "Hiroshi", "Agnieszka", "Tomasz", "Leilani", "Bartholomew"]
LAST = ["Doe", "Kowalczyk", "Abernathy", "Nakamura", "Oyelaran", "Featherstonehaugh", "Vasquez", "Lindqvist"]


def person(rng, i):
    """A patient with identifiers unique enough to grep for."""
    tag = "".join(rng.choice("QXZJKV") for _ in range(3))
    return {
        "mrn": f"MRN{rng.randrange(10**7, 10**8)}",
        "family": f"{rng.choice(LAST)}{tag}",
        "given": f"{rng.choice(FIRST)}{tag.lower()}",
        "dob": f"19{rng.randrange(30, 99)}{rng.randrange(1, 13):02d}{rng.randrange(1, 29):02d}",
        "phone": f"+44 20 7{rng.randrange(100, 999)} {rng.randrange(1000, 9999)}",
        "street": f"{rng.randrange(2, 300)} {rng.choice(LAST)}{tag} Road",
        "city": f"Camber{tag.lower()}ton",
        "postcode": f"SW{rng.randrange(1, 20)} {rng.randrange(1, 9)}{tag[:2]}",
        "ssn": f"{rng.randrange(100, 899)}-{rng.randrange(10, 99)}-{rng.randrange(1000, 9999)}",
        "kin": f"{rng.choice(LAST)}Kin{tag}",
        "account": f"ACC{rng.randrange(10**6, 10**7)}",
        "visit": f"V{rng.randrange(10**6, 10**7)}",
        "note": f"Spoke with daughter {rng.choice(FIRST)}{tag} about discharge",
        "i": i,
    }


def identifiers(p):
    """Every string that identifies the patient (the birth year and postcode
    district stay: generalised, by design)."""
    return [p["mrn"], p["family"], p["given"], p["dob"], p["phone"], p["street"], p["city"],
            p["postcode"], p["ssn"], p["kin"], p["account"], p["visit"], p["note"]]


def adt(p, cid):
    segs = [
        f"MSH|^~\\&|EHR|HOSP|REG|RESEARCH|20261205101500||ADT^A01^ADT_A01|{cid}|P|2.5",
        "EVN|A01|20261205101500",
        f"PID|1||{p['mrn']}^^^HOSP^MR||{p['family']}^{p['given']}||{p['dob']}|F|||"
        f"{p['street']}^^{p['city']}^^{p['postcode']}^GBR||{p['phone']}|||||{p['account']}|{p['ssn']}",
        f"NK1|1|{p['kin']}^Anne|DAU^Daughter||{p['phone']}",
        f"PV1|1|I|ICU^12^1||||1234^House^Gregory||||||||||||{p['visit']}|||||||||||||||||||||||||20261201080000",
    ]
    text = "\r".join(segs) + "\r"
    m = parse_message(text, find_groups=False)
    assert m.msh.msh_10.to_er7() == cid
    return text


def oru(p, cid):
    segs = [
        f"MSH|^~\\&|MONGW|ICU|REG|RESEARCH|20261205101500||ORU^R01^ORU_R01|{cid}|P|2.5",
        f"PID|1||{p['mrn']}^^^HOSP^MR||{p['family']}^{p['given']}||{p['dob']}|F",
        "OBR|1|||69837^MDC_DEV_METER_PHYSIO_MULTI_PARAM_MDS^MDC",
        "OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||97|262688^MDC_DIM_PERCENT^MDC|||||F|||20261205101000",
        f"OBX|2|ST|8251-1^Nursing note^LN||{p['note']}||||||F",
        f"NTE|1||{p['note']}",
    ]
    text = "\r".join(segs) + "\r"
    parse_message(text, find_groups=False)
    return text


def send(gw, text, source="127.0.0.2"):
    with SourceBoundClient(*gw.addr, source) as c:
        return unframe(c.send_message(text))


def msa(ack):
    seg = next(s for s in ack.split("\r") if s.startswith("MSA"))
    return seg.split("|")[1:3]


def every_byte_written(gw):
    """Every file wardgate wrote (data directory and log), as one blob."""
    blob = bytearray()
    for f in sorted(gw.dir.rglob("*")):
        if f.is_file() and f.name != "wardgate.toml":
            blob += f.read_bytes()
    return bytes(blob)


def wait_for_event(gw, pred, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hits = [e for e in gw.events() if pred(e)]
        if hits:
            return hits
        time.sleep(0.3)
    return []


def test_pseudonymise_route_forwards_no_identifier_and_records_none(tmp_path):
    rng = random.Random(23)
    people = [person(rng, i) for i in range(24)]
    up = Upstream()
    gw = Gateway(tmp_path, up.port, site=SITE)
    sent = {}
    try:
        for p in people:
            for kind, build in (("A", adt), ("O", oru)):
                cid = f"PRIV-{kind}{p['i']:03d}"
                text = build(p, cid)
                sent[cid] = text
                ack = send(gw, text)
                assert msa(ack) == ["AA", cid], ack
        events = gw.events()
    finally:
        gw.stop()
        up.stop()
    assert len(up.received) == len(sent)
    received = [b.decode() for b in up.received]
    forwarded = "\n".join(received)
    written = every_byte_written(gw)
    for p in people:
        for ident in identifiers(p):
            assert ident not in forwarded, f"{ident!r} forwarded to the registry"
            assert ident.encode() not in written, f"{ident!r} in what wardgate wrote"
    by_cid = {}
    for block in received:
        # Both peers read every forwarded message.
        msg = hl7.parse(block)
        cid = str(msg.segment("MSH")[10])
        parse_message(block.replace("\n", "\r"), find_groups=False)
        by_cid[cid] = block
    for p in people:
        want = pseudonym(gw.dir / "data", p["mrn"])
        adt_out = hl7.parse(by_cid[f"PRIV-A{p['i']:03d}"])
        assert str(adt_out.segment("PID")[3][0][0]) == want, "PID-3 is the keyed pseudonym"
        assert str(adt_out.segment("PID")[7]) == p["dob"][:4], "birth date generalised to the year"
        # (A segment, not the letters: a pseudonym may hold "NK1".)
        segments = by_cid[f"PRIV-A{p['i']:03d}"].replace("\n", "\r").split("\r")
        assert not any(seg.startswith("NK1") for seg in segments), "next of kin removed"
        oru_out = hl7.parse(by_cid[f"PRIV-O{p['i']:03d}"])
        assert str(oru_out.segment("PID")[3][0][0]) == want, "one pseudonym per patient across messages"
        obx = [s for s in oru_out if str(s[0]) == "OBX"]
        assert str(obx[0][5]) == "97", "numeric observations kept"
    # The record of each message: the hashes of what came in and what went out.
    allowed = [e for e in events if e["event"]["action"] == "allowed" and "hl7" in e["wardgate"]]
    assert len(allowed) == len(sent)
    originals = tmp_path / "originals"
    originals.mkdir()
    for cid, text in sent.items():
        (originals / f"{cid}.hl7").write_bytes(text.encode())
    # What came in is digested under a key derived from the site key (a plain
    # SHA-256 would confirm a guess of the original); `wardgate digest` checks
    # a candidate original.
    out = gw.cli("digest", *[str(originals / f"{cid}.hl7") for cid in sent]).stdout
    keyed = {line.split("  ", 1)[1].rsplit("/", 1)[1][:-4]: line.split("  ", 1)[0]
             for line in out.splitlines()}
    assert set(keyed) == set(sent), out
    for e in allowed:
        cid = e["wardgate"]["hl7"]["control_id"]
        pr = e["wardgate"]["privacy"]
        assert pr["mode"] == "pseudonymise" and pr["purpose"] == "research", pr
        assert "sha256_in" not in pr, pr
        assert pr["hmac_sha256_in"] == keyed[cid], (cid, pr)
        assert pr["hmac_sha256_in"] != hashlib.sha256(sent[cid].encode()).hexdigest()
        got = by_cid[cid].replace("\n", "\r")
        assert pr["sha256_out"] == hashlib.sha256(got.encode()).hexdigest()
        assert "pseudonymised" in pr["changes"], pr


def test_pseudonyms_are_stable_across_connections_and_restarts_and_differ_between_sites(tmp_path):
    rng = random.Random(7)
    p = person(rng, 1)
    seen = []
    for run in range(2):
        up = Upstream()
        (tmp_path / "site-a").mkdir(exist_ok=True)
        gw = Gateway(tmp_path / "site-a", up.port, site=SITE)
        try:
            for n in range(2):  # two connections per run
                assert msa(send(gw, adt(p, f"STABLE-{run}{n}")))[0] == "AA"
        finally:
            gw.stop()
            up.stop()
        seen += [str(hl7.parse(b.decode()).segment("PID")[3][0][0]) for b in up.received]
    assert len(set(seen)) == 1 and seen[0].startswith("WG"), seen
    up = Upstream()
    (tmp_path / "site-b").mkdir()
    other = Gateway(tmp_path / "site-b", up.port, site=SITE)
    try:
        assert msa(send(other, adt(p, "OTHER-1")))[0] == "AA"
    finally:
        other.stop()
        up.stop()
    assert str(hl7.parse(up.received[0].decode()).segment("PID")[3][0][0]) not in seen, "another site's key gives another pseudonym"


def test_a_patient_who_opted_out_is_not_forwarded_and_it_is_recorded(tmp_path):
    rng = random.Random(11)
    out_p, in_p = person(rng, 1), person(rng, 2)
    up = Upstream()
    gw = Gateway(tmp_path, up.port, site=SITE)
    try:
        r = gw.cli("consent", "add", "--purpose", "research", out_p["mrn"])
        assert r.returncode == 0, r.stderr
        stored = (gw.dir / "data" / "privacy" / "consent" / "research.optout").read_text()
        assert out_p["mrn"] not in stored and pseudonym(gw.dir / "data", out_p["mrn"]) in stored
        assert wait_for_event(gw, lambda e: "consent opt-out lists put in force (research: 1)" in e["event"]["reason"]), \
            "the running gateway did not put the new list in force"
        # Each use of the key on the command line reaches the audit chain, with
        # who ran it and how many identifiers, never the identifier.
        assert gw.cli("consent", "check", "--purpose", "research", out_p["mrn"], check=False).returncode == 1
        uses = wait_for_event(gw, lambda e: e["wardgate"].get("operation") == "consent-check")
        assert uses and uses[0]["event"]["action"] == "viewed", uses
        added = [e for e in gw.events() if e["wardgate"].get("operation") == "consent-add"]
        assert len(added) == 1 and added[0]["event"]["action"] == "changed", added
        for e in uses + added:
            assert "1 identifier(s), purpose research" in e["event"]["reason"], e
            assert e["user"]["name"], e
            assert out_p["mrn"] not in json.dumps(e)
            assert pseudonym(gw.dir / "data", out_p["mrn"]) not in json.dumps(e)
        ack = send(gw, adt(out_p, "OPTOUT-1"))
        # Acknowledged, so the sender does not retry; not forwarded.
        assert msa(ack) == ["AA", "OPTOUT-1"], ack
        assert out_p["mrn"] not in ack
        assert msa(send(gw, adt(in_p, "OPTIN-1")))[0] == "AA"
        events = gw.events()
    finally:
        gw.stop()
        up.stop()
    got = [str(hl7.parse(b.decode()).segment("MSH")[10]) for b in up.received]
    assert got == ["OPTIN-1"], got
    held = [e for e in events if e.get("rule", {}).get("id") == "WG-PRIV-001"]
    assert len(held) == 1 and held[0]["event"]["action"] == "blocked", held
    assert held[0]["wardgate"]["hl7"]["control_id"] == "OPTOUT-1"
    assert pseudonym(gw.dir / "data", out_p["mrn"]) in held[0]["event"]["reason"]
    assert out_p["mrn"] not in json.dumps(held[0])


SF_SITE = SITE.replace(
    'messages = ["ADT^A01", "ORU^R01"]\n',
    'messages = ["ADT^A01", "ORU^R01"]\ndelivery = "store-and-forward"\n',
)


def test_store_and_forward_queues_the_transform_and_checks_consent_again_at_delivery(tmp_path):
    from conftest import free_port

    rng = random.Random(31)
    late, other = person(rng, 1), person(rng, 2)
    port = free_port("127.0.0.3")
    gw = Gateway(tmp_path, port, site=SF_SITE)
    up = None
    try:
        # The upstream is down: both are acknowledged once queued.
        assert msa(send(gw, adt(late, "SF-LATE")))[0] == "AA"
        assert msa(send(gw, adt(other, "SF-OTHER")))[0] == "AA"
        queued = b"".join(p.read_bytes() for p in (gw.dir / "data" / "queue").rglob("*") if p.is_file())
        for ident in identifiers(late) + identifiers(other):
            assert ident.encode() not in queued, f"{ident!r} in the queue on disk"
        # The patient opts out while the message waits.
        assert gw.cli("consent", "add", "--purpose", "research", late["mrn"]).returncode == 0
        assert wait_for_event(gw, lambda e: "(research: 1)" in e["event"]["reason"])
        up = Upstream(port=port)
        assert wait_for_event(gw, lambda e: e["event"]["action"] == "delivered"), "nothing delivered"
        held = wait_for_event(gw, lambda e: e.get("rule", {}).get("id") == "WG-PRIV-001")
    finally:
        gw.stop()
        if up:
            up.stop()
    got = [str(hl7.parse(b.decode()).segment("MSH")[10]) for b in up.received]
    assert got == ["SF-OTHER"], got
    assert len(held) == 1 and "after it was queued" in held[0]["event"]["reason"], held
