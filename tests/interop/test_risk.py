"""Issue 22, device risk, against the real binary and real data.

Advisories are CISA's 134 ICS Medical Advisories in CSAF 2.0
(tests/data/advisories/csaf-icsma, vendored unchanged), imported with
`wardgate advisories import`; manufacturers' statements are an OpenVEX 0.2.0
document written per the spec; a device's software is a CycloneDX 1.5 SBOM and
its allowed traffic an RFC 8520 MUD file (the §8 example's shape). The running
`wardgate serve` sits between the `hl7` package's MLLP client (the EHR, from
127.0.0.2) and the `hl7` asyncio MLLP server (the pump server, 127.0.0.3), and
records what each assessment changed as events (WG-RISK-*, WG-MUD-*), read back
with `wardgate events --json`, checked against ECS (ecs_check) and, in one test,
delivered to a real rsyslog (the collector of test_syslog.py).

1. the 134 advisories import (totals = the JSON lines' sums; again: unchanged);
   a truncated one is named, exit 1, the others import;
2. an OpenVEX statement per CVE of ICSMA-17-250-02A for the pump's purl makes
   the hit not affected, with its justification; for another purl, nothing; for
   one CVE only, the advisory's other CVEs still stand;
3. serve: WG-RISK-001 (device and SBOM component), -002 (unreadable range),
   -003 at start; WG-MUD-001 after HL7 traffic and a reload; the cleartext
   factor with the route as evidence; a restart repeats nothing; a VEX imported
   while running brings the pump back below the threshold (WG-RISK-005); every
   new finding an ECS alert;
4. the advisory hit at a real rsyslog;
5. `devices import` of an asset export (a bad row named by line, the file
   loads via device_files, no overwrite without --force);
6. `mud generate`: the draft, given back as the MUD file, allows the traffic;
7. a DICOM implementation version disagreeing with the declared one
   (WG-RISK-004), raised once.

Every wait is bounded; only loopback is used; assertions filter to the devices
and rules each test sets up.
"""
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

import ecs_check
from conftest import CI, Gateway, Upstream, wait_port, wardgate_bin
from test_hl7_mllp import observation, send

ADVISORIES = Path(__file__).resolve().parents[1] / "data" / "advisories" / "csaf-icsma"
MEDFUSION = "Medfusion 4000 Wireless Syringe Infusion Pump"
MEDFUSION_ADVISORY = "ICSMA-17-250-02A"
# A real advisory product, named as an SBOM component: Qualcomm Life's Allegro
# RomPager 4.07 is inside ICSMA-18-240-01's `>= 4.01 | <= 4.34`.
ROMPAGER = "Allegro RomPager embedded web server"
ROMPAGER_ADVISORY = "ICSMA-18-240-01"
PUMP_PURL = "pkg:generic/smiths-medical/medfusion-4000@1.5"


def advisories_dir():
    if not ADVISORIES.is_dir() or len(list(ADVISORIES.glob("*.json"))) != 134:
        if CI:
            pytest.fail(f"the 134 ICSMA advisories are required at {ADVISORIES}")
        pytest.skip(f"no ICSMA advisory corpus at {ADVISORIES}")
    return ADVISORIES


def run(*args, timeout=120):
    return subprocess.run([wardgate_bin(), *args], capture_output=True, text=True, timeout=timeout)


def json_lines(out):
    return [json.loads(line) for line in out.splitlines() if line.strip().startswith("{")]


def rule_of(ev):
    return ev.get("rule", {}).get("id")


def device_of(ev):
    return ev.get("wardgate", {}).get("source_device")


def medfusion_cves():
    doc = json.loads((advisories_dir() / "icsma-17-250-02a.json").read_text())
    return [v["cve"] for v in doc["vulnerabilities"] if v.get("cve")]


TOTALS = re.compile(
    r"^(\d+) document\(s\) imported into .*?: (\d+) product\(s\), (\d+) range\(s\) read, "
    r"(\d+) range\(s\) unreadable.*?, (\d+) VEX statement\(s\); (\d+) file\(s\) not imported$",
    re.M,
)


def totals(stdout):
    m = TOTALS.search(stdout)
    assert m, f"no totals line in:\n{stdout[-2000:]}"
    keys = ("documents", "products", "ranges_read", "unreadable", "statements", "not_imported")
    return dict(zip(keys, map(int, m.groups())))


def import_advisories(data_dir, *paths, json_out=False):
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    args = ["advisories", "import", *map(str, paths), "--data-dir", str(data_dir)]
    return run(*args, *(["--json"] if json_out else []))


# --- 1. importing the 134 real advisories ---------------------------------------

def test_the_134_icsma_advisories_import_and_the_totals_add_up(tmp_path):
    src = advisories_dir()
    a, b = tmp_path / "a", tmp_path / "b"
    text = import_advisories(a, src)
    assert text.returncode == 0, text.stdout[-2000:] + text.stderr
    t = totals(text.stdout)
    assert t["documents"] == 134 and t["not_imported"] == 0 and t["statements"] == 0, t
    # The same files as JSON lines: one per document, and they add up to the totals.
    js = import_advisories(b, src, json_out=True)
    assert js.returncode == 0, js.stderr
    recs = json_lines(js.stdout)
    assert len(recs) == 134
    assert {r["kind"] for r in recs} == {"advisory"}
    assert sum(r["products"] for r in recs) == t["products"]
    assert sum(r["ranges_read"] for r in recs) == t["ranges_read"]
    assert sum(len(r["unreadable"]) for r in recs) == t["unreadable"]
    assert t["products"] > 134 and t["ranges_read"] > 0
    # Real advisories hold ranges no one can read (`Rev B-M`, end-of-life notes):
    # they are reported, not guessed at.
    assert t["unreadable"] > 0
    ids = {r["id"] for r in recs}
    assert MEDFUSION_ADVISORY in ids and ROMPAGER_ADVISORY in ids
    stored = sorted(p.name for p in (a / "advisories").glob("*.json"))
    assert len(stored) == len(ids), (len(stored), len(ids))
    # Again: nothing changes, each document says so.
    again = import_advisories(a, src, json_out=True)
    assert again.returncode == 0, again.stderr
    recs2 = json_lines(again.stdout)
    assert len(recs2) == 134
    assert {r["outcome"] for r in recs2} == {"unchanged"}, {r["id"]: r["outcome"] for r in recs2 if r["outcome"] != "unchanged"}
    again_text = import_advisories(a, src)
    assert again_text.returncode == 0
    doc_lines = [line for line in again_text.stdout.splitlines() if re.match(r"^ICSMA-\S+\s+advisory\s", line)]
    assert len(doc_lines) == 134 and all(" unchanged " in line for line in doc_lines), doc_lines[:3]
    assert totals(again_text.stdout) == t
    # What is stored, listed: each document once, with what its import read.
    listed = run("advisories", "list", "--data-dir", a, "--json")
    assert listed.returncode == 0, listed.stderr
    docs = {d["id"]: d for d in json_lines(listed.stdout)}
    assert set(docs) == ids
    assert sum(d["products"] for d in docs.values()) == t["products"]
    assert sum(d["unreadable"] for d in docs.values()) == t["unreadable"]
    assert docs[MEDFUSION_ADVISORY]["publisher"] and docs[MEDFUSION_ADVISORY]["kind"] == "advisory"


def test_a_truncated_advisory_is_named_and_the_others_still_import(tmp_path):
    src = advisories_dir()
    copy = tmp_path / "feed"
    shutil.copytree(src, copy)
    bad = copy / "icsma-17-250-02a.json"
    whole = bad.read_bytes()
    bad.write_bytes(whole[: len(whole) // 2])
    r = import_advisories(tmp_path / "data", copy)
    assert r.returncode == 1, r.stdout[-2000:] + r.stderr
    named = [line for line in r.stdout.splitlines() if "NOT IMPORTED" in line]
    assert len(named) == 1 and "icsma-17-250-02a.json" in named[0], named
    t = totals(r.stdout)
    assert (t["documents"], t["not_imported"]) == (133, 1), t
    assert len(list((tmp_path / "data" / "advisories").glob("*.json"))) == 133
    assert not list((tmp_path / "data" / "advisories").glob("ICSMA-17-250-02A*"))


# --- the site ---------------------------------------------------------------------

SITE = """{device_files}
[gateway]
data_dir = "{data_dir}"
name = "icu-gw-test"
max_frame_bytes = {max_frame}
frame_timeout_secs = 3
shutdown_grace_secs = 2

[gateway.audit]
checkpoint_every = 50
checkpoint_interval_ms = 100

[risk]
alert_at = {alert_at}
# Assessed at start and at each reload only: every finding here comes from one.
assess_every_secs = 0

[[device]]
id = "ehr"
kind = "ehr"
addresses = ["127.0.0.2"]
criticality = "ancillary"
{ehr_extra}

[[device]]
id = "pump-server"
kind = "infusion-pump-server"
addresses = ["127.0.0.3"]
vendor = "Smiths Medical"
model = "Medfusion 4000 Wireless Syringe Infusion Pump"
version = "1.5"
serial = "MF4-000123"
location = "ICU bed 4"
owner = "Biomedical engineering"
criticality = "life-sustaining"
{pump_extra}
{more_devices}
[[route]]
id = "infusion-orders"
protocol = "hl7-mllp"
listen = "127.0.0.1:{listen_port}"
upstream = "127.0.0.3:{upstream_port}"
senders = ["ehr"]
messages = ["RGV^O15", "ORU^R01"]
{export}
"""


def site(**kw):
    """SITE with the risk-specific placeholders filled (Gateway fills the rest)."""
    values = {"device_files": "", "alert_at": 20, "ehr_extra": "", "pump_extra": "", "more_devices": "", "export": ""}
    values.update(kw)
    out = SITE
    for k, v in values.items():
        out = out.replace("{" + k + "}", str(v))
    return out


def cyclonedx_sbom():
    """A CycloneDX 1.5 SBOM of the EHR's interface engine, embedding a real
    advisory product (Qualcomm Life's RomPager 4.07) and a component no
    advisory names."""
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": "urn:uuid:6f3c2a1e-8b1d-4f7a-9d0e-2b5c7a9e4d11",
        "version": 1,
        "metadata": {
            "timestamp": "2026-11-30T09:00:00Z",
            "component": {"type": "application", "bom-ref": "ehr-ie", "name": "EHR interface engine",
                          "version": "7.2", "supplier": {"name": "Example Health IT"}},
        },
        "components": [
            {"type": "library", "bom-ref": "rompager", "name": ROMPAGER, "version": "4.07",
             "supplier": {"name": "Qualcomm Life"}},
            {"type": "library", "bom-ref": "zlib", "name": "zlib", "version": "1.3.1",
             "purl": "pkg:generic/zlib@1.3.1"},
        ],
    }


def mud_file(url, port, name="ehr"):
    """An RFC 8520 MUD file in the §8 example's shape: the device may open TCP
    connections to 127.0.0.1 on `port` only (and receive their answers)."""
    return {
        "ietf-mud:mud": {
            "mud-version": 1,
            "mud-url": url,
            "last-update": "2026-11-30T09:00:00+00:00",
            "cache-validity": 48,
            "is-supported": True,
            "systeminfo": "EHR interface engine",
            "mfg-name": "Example Health IT",
            "model-name": "EHR interface engine",
            "from-device-policy": {"access-lists": {"access-list": [{"name": f"mud-{name}-v4fr"}]}},
            "to-device-policy": {"access-lists": {"access-list": [{"name": f"mud-{name}-v4to"}]}},
        },
        "ietf-access-control-list:acls": {
            "acl": [
                {
                    "name": f"mud-{name}-v4fr",
                    "type": "ipv4-acl-type",
                    "aces": {"ace": [{
                        "name": "gw-frdev",
                        "matches": {
                            "ipv4": {"protocol": 6, "destination-ipv4-network": "127.0.0.1/32"},
                            "tcp": {"ietf-mud:direction-initiated": "from-device",
                                    "destination-port": {"operator": "eq", "port": port}},
                        },
                        "actions": {"forwarding": "accept"},
                    }]},
                },
                {
                    "name": f"mud-{name}-v4to",
                    "type": "ipv4-acl-type",
                    "aces": {"ace": [{
                        "name": "gw-todev",
                        "matches": {
                            "ipv4": {"protocol": 6, "source-ipv4-network": "127.0.0.1/32"},
                            "tcp": {"ietf-mud:direction-initiated": "from-device",
                                    "source-port": {"operator": "eq", "port": port}},
                        },
                        "actions": {"forwarding": "accept"},
                    }]},
                },
            ]
        },
    }


def openvex(purl, cves, status="not_affected", justification="vulnerable_code_not_in_execute_path"):
    """An OpenVEX 0.2.0 document: the manufacturer says `purl` is `status` for each CVE."""
    return {
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": "https://psirt.example.org/vex/medfusion-4000-1.5-2026-001",
        "author": "Smiths Medical Product Security",
        "role": "Document Creator",
        "timestamp": "2026-11-30T10:00:00Z",
        "version": 1,
        "statements": [
            {
                "vulnerability": {"name": cve},
                "products": [{"@id": purl}],
                "status": status,
                "justification": justification,
                "impact_statement": "The wireless module's vulnerable service is disabled in this build.",
            }
            for cve in cves
        ],
    }


def risk_of(cfg, device):
    r = run("risk", "-c", str(cfg), "--device", device, "--json")
    assert r.returncode == 0, r.stderr
    docs = json_lines(r.stdout)
    assert len(docs) == 1, r.stdout
    return docs[0]


def status_of(hit):
    """A hit's status word, however the JSON nests the tagged status."""
    s = hit["status"]
    return s["status"] if isinstance(s, dict) else s


def hits_of(risk, advisory):
    return [h for h in risk["hits"] if h["advisory_id"] == advisory]


def assessments(g):
    return g.log_text().count("devices assessed for risk")


def wait_assessed(g, more_than, timeout=30):
    """Until the gateway logged more than `more_than` completed assessments."""
    deadline = time.monotonic() + timeout
    while assessments(g) <= more_than:
        assert g.proc.poll() is None, g.log_text()[-3000:]
        assert time.monotonic() < deadline, f"no risk assessment logged:\n{g.log_text()[-3000:]}"
        time.sleep(0.1)
    return assessments(g)


def wait_events(g, pred, what, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        evs = g.events()
        if pred(evs):
            return evs
        assert time.monotonic() < deadline, f"timed out waiting for {what}; rules seen: " \
            f"{sorted({(device_of(e), rule_of(e)) for e in evs if rule_of(e)}, key=str)}"
        time.sleep(0.2)


def restart(g):
    """Stops `wardgate serve` and starts it again on the same file and data_dir."""
    assert g.stop() == 0, g.log_text()[-3000:]
    g.log = open(g.dir / "wardgate.log", "ab")
    g.proc = subprocess.Popen(
        [wardgate_bin(), "serve", "--config", str(g.config)],
        stdout=g.log, stderr=subprocess.STDOUT, env={**os.environ, "WARDGATE_LOG": "info"},
    )
    wait_port("127.0.0.1", g.listen_port)


def prepare(tmp_path, *, with_mud_port=None, **kw):
    """Advisories imported into the data_dir before the gateway starts, the EHR's
    SBOM (and MUD file, allowing port `with_mud_port`) next to the configuration."""
    r = import_advisories(tmp_path / "data", advisories_dir())
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    (tmp_path / "ehr-sbom.cdx.json").write_text(json.dumps(cyclonedx_sbom(), indent=2))
    extra = 'sbom = "ehr-sbom.cdx.json"\n'
    if with_mud_port is not None:
        (tmp_path / "ehr.mud.json").write_text(json.dumps(mud_file("https://mud.example.org/ehr-ie.json", with_mud_port), indent=2))
        extra += 'mud = "ehr.mud.json"\n'
    return site(ehr_extra=extra, **kw)


# --- 2. VEX -----------------------------------------------------------------------

def test_an_openvex_statement_marks_the_hit_not_affected_with_its_justification(tmp_path):
    data = tmp_path / "data"
    r = import_advisories(data, advisories_dir() / "icsma-17-250-02a.json")
    assert r.returncode == 0, r.stdout + r.stderr
    cfg = tmp_path / "site.toml"
    cfg.write_text(site(pump_extra=f'purl = "{PUMP_PURL}"').format(
        data_dir=data, max_frame=65536, listen_port=1, upstream_port=1))
    before = hits_of(risk_of(cfg, "pump-server"), MEDFUSION_ADVISORY)
    assert [status_of(h) for h in before] == ["affected"], before
    score_before = risk_of(cfg, "pump-server")["score"]

    cves = medfusion_cves()
    assert "CVE-2017-12725" in cves
    vex = tmp_path / "medfusion-vex.json"
    vex.write_text(json.dumps(openvex(PUMP_PURL, cves), indent=2))
    r = import_advisories(data, vex, json_out=True)
    assert r.returncode == 0, r.stdout + r.stderr
    rec = json_lines(r.stdout)
    assert [(x["kind"], x["statements"], x["problems"]) for x in rec] == [("vex", len(cves), [])], rec
    assert list((data / "vex").glob("*.json")), "the VEX document is stored in data_dir/vex"

    after = risk_of(cfg, "pump-server")
    hits = hits_of(after, MEDFUSION_ADVISORY)
    assert len(hits) == 1, hits
    h = hits[0]
    assert status_of(h) == "not_affected", h
    assert h["vex"]["justification"] == "vulnerable_code_not_in_execute_path", h["vex"]
    assert h["vex"]["state"] == "not_affected"
    assert h["vex"]["author"] == "Smiths Medical Product Security"
    assert "vulnerable_code_not_in_execute_path" in h["why"], h["why"]
    # A hit the manufacturer rules out no longer counts towards the score.
    assert after["score"] < score_before, (score_before, after["score"], after["factors"])
    # And the text view shows the statement.
    text = run("risk", "-c", str(cfg), "--device", "pump-server")
    assert "NOT-AFFECTED" in text.stdout and "vulnerable_code_not_in_execute_path" in text.stdout, text.stdout


def test_a_vex_statement_for_another_product_changes_nothing(tmp_path):
    """The statement names another purl: the device stays affected."""
    data = tmp_path / "data"
    assert import_advisories(data, advisories_dir() / "icsma-17-250-02a.json").returncode == 0
    cfg = tmp_path / "site.toml"
    cfg.write_text(site(pump_extra=f'purl = "{PUMP_PURL}"').format(
        data_dir=data, max_frame=65536, listen_port=1, upstream_port=1))
    vex = tmp_path / "other-vex.json"
    vex.write_text(json.dumps(openvex("pkg:generic/smiths-medical/medfusion-3500@1.5", medfusion_cves())))
    assert import_advisories(data, vex).returncode == 0
    hits = hits_of(risk_of(cfg, "pump-server"), MEDFUSION_ADVISORY)
    assert [status_of(h) for h in hits] == ["affected"] and hits[0]["vex"] is None, hits


def test_a_vex_statement_for_one_cve_leaves_the_advisorys_other_cves_affected(tmp_path):
    """ICSMA-17-250-02A lists eight CVEs for the Medfusion 4000 1.5. The
    manufacturer says the pump is not affected by one of them
    (CVE-2017-12725): the seven others still stand, so the hit stays affected
    and keeps counting towards the score."""
    data = tmp_path / "data"
    assert import_advisories(data, advisories_dir() / "icsma-17-250-02a.json").returncode == 0
    cfg = tmp_path / "site.toml"
    cfg.write_text(site(pump_extra=f'purl = "{PUMP_PURL}"').format(
        data_dir=data, max_frame=65536, listen_port=1, upstream_port=1))
    before = risk_of(cfg, "pump-server")
    vex = tmp_path / "one-cve-vex.json"
    vex.write_text(json.dumps(openvex(PUMP_PURL, ["CVE-2017-12725"])))
    r = import_advisories(data, vex)
    assert r.returncode == 0, r.stdout + r.stderr
    after = risk_of(cfg, "pump-server")
    hits = hits_of(after, MEDFUSION_ADVISORY)
    assert hits, after["hits"]
    assert all(status_of(h) == "affected" for h in hits), [(status_of(h), h["why"]) for h in hits]
    others = set(medfusion_cves()) - {"CVE-2017-12725"}
    assert others <= {c for h in hits for c in h["cves"]}
    assert after["score"] > 0 and after["score"] >= before["score"] - 1, (before["score"], after["score"], after["factors"])


# --- 3. serve, end to end ------------------------------------------------------------

def risk_events(evs, device=None, rule=None):
    return [e for e in evs if (rule_of(e) or "").startswith(("WG-RISK-", "WG-MUD-"))
            and (device is None or device_of(e) == device) and (rule is None or rule_of(e) == rule)]


def check_risk_event(ev):
    assert ev["event"]["category"] == ["vulnerability"], ev["event"]
    assert ev["event"]["action"] == "alerted"
    assert ev["wardgate"]["risk"]["device"] == device_of(ev)
    problems = ecs_check.check_event(ev)
    assert not problems, (problems, ev)


def not_alerts(evs):
    """Risk findings recorded as something other than an alert. Each is a new
    finding (only changes become events), so each is an alert (docs/events.md:
    `event.kind` `alert` when a rule fired and the site is alerted of it; `event`
    only for a repeat within its episode or a suppressed rule)."""
    return [(rule_of(e), device_of(e), (e.get("vulnerability") or {}).get("reference")
             or e["wardgate"]["risk"].get("flow"), e["event"]["kind"], e["wardgate"].get("repeat"))
            for e in risk_events(evs) if e["event"]["kind"] != "alert"]


# Philips IntelliVue MP series at `Rev F`: ICSMA-18-156-01 gives `Rev B-M`, a
# range no one can read as versions: possibly affected (WG-RISK-002).
MONITOR = """
[[device]]
id = "icu-monitor"
kind = "patient-monitor"
addresses = ["127.0.0.9"]
vendor = "Philips"
model = "IntelliVue Patient Monitors MP Series (includingMP2/X2/MP30/MP50/MP70/NP90/MX700/800)"
version = "Rev F"
criticality = "life-supporting"
"""


def test_serve_records_advisory_hits_threshold_mud_deviations_and_only_changes(tmp_path):
    up = Upstream()
    # The MUD file allows the EHR to reach the gateway on 2576 only; the route
    # listens elsewhere, so the EHR's orders deviate from it.
    g = Gateway(tmp_path, up.port, site=prepare(tmp_path, with_mud_port=2576, more_devices=MONITOR,
                                                pump_extra=f'purl = "{PUMP_PURL}"'))
    try:
        assert g.listen_port != 2576
        wait_assessed(g, 0)
        evs = wait_events(g, lambda e: risk_events(e, "pump-server", "WG-RISK-003"), "the start assessment")
        # The pump server is a Medfusion 4000 1.5: ICSMA-17-250-02A.
        pump = [e for e in risk_events(evs, "pump-server", "WG-RISK-001")
                if e.get("vulnerability", {}).get("reference") == MEDFUSION_ADVISORY]
        assert len(pump) == 1, [e["event"]["reason"] for e in risk_events(evs, "pump-server")]
        hit = pump[0]
        assert re.fullmatch(r"CVE-\d{4}-\d{4,}", hit["vulnerability"]["id"]), hit["vulnerability"]
        assert hit["vulnerability"]["id"] in medfusion_cves()
        assert hit["vulnerability"]["score"]["base"] == 3.7
        assert hit["wardgate"]["risk"]["advisory"] == MEDFUSION_ADVISORY
        assert hit["wardgate"]["risk"]["status"] == "affected"
        assert set(hit["wardgate"]["risk"]["cves"]) == set(medfusion_cves())
        check_risk_event(hit)
        over = risk_events(evs, "pump-server", "WG-RISK-003")
        assert len(over) == 1
        check_risk_event(over[0])
        assert over[0]["wardgate"]["risk"]["score"] >= 20 == over[0]["wardgate"]["risk"]["threshold"]
        # The EHR's SBOM names RomPager 4.07: a hit via that component.
        comp = [e for e in risk_events(evs, "ehr", "WG-RISK-001")
                if e.get("vulnerability", {}).get("reference") == ROMPAGER_ADVISORY]
        assert len(comp) == 1, [e["event"]["reason"] for e in risk_events(evs, "ehr")]
        assert comp[0]["wardgate"]["risk"]["matched"].startswith(f"component {ROMPAGER} 4.07"), comp[0]["wardgate"]["risk"]
        check_risk_event(comp[0])
        # The monitor's advisory range is unreadable: possibly affected, with its text.
        maybe = [e for e in risk_events(evs, "icu-monitor", "WG-RISK-002")
                 if e.get("vulnerability", {}).get("reference") == "ICSMA-18-156-01"]
        assert len(maybe) == 1, [e["event"]["reason"] for e in risk_events(evs, "icu-monitor")]
        assert maybe[0]["wardgate"]["risk"]["status"] == "possibly-affected"
        assert "Rev B-M" in maybe[0]["event"]["reason"], maybe[0]["event"]["reason"]
        check_risk_event(maybe[0])
        assert not [e for e in risk_events(evs, "icu-monitor", "WG-RISK-001")
                    if e["vulnerability"]["reference"] == "ICSMA-18-156-01"], "never certain from an unreadable range"
        # No traffic yet: no MUD deviation.
        assert not risk_events(evs, "ehr", "WG-MUD-001")

        # Real HL7 traffic from the EHR, then a reload: the EHR -> gateway flow is
        # not what its MUD file allows.
        before = assessments(g)
        for i in range(3):
            assert "MSA|AA|RISK-OBS-%d" % i in send(g, observation(f"RISK-OBS-{i}")), "the upstream must ACK"
        assert len(up.received) == 3
        wait_events(g, lambda e: sum(1 for x in e if x.get("wardgate", {}).get("hl7", {}).get("control_id", "").startswith("RISK-OBS-")) >= 3,
                    "the traffic's events")
        g.cli("reload")
        wait_assessed(g, before)
        evs = wait_events(g, lambda e: risk_events(e, "ehr", "WG-MUD-001"), "a MUD deviation of the EHR")
        dev = risk_events(evs, "ehr", "WG-MUD-001")
        flows = [e["wardgate"]["risk"]["flow"] for e in dev]
        # The EHR's orders: to the gateway's listener on the wire, to the pump
        # server end to end (what the decision events record as destination).
        ehr_flows = {f"to 127.0.0.1 tcp/{g.listen_port}", f"to 127.0.0.3 tcp/{up.port}"}
        assert ehr_flows & set(flows), (flows, ehr_flows)
        for e in dev:
            check_risk_event(e)

        ehr = risk_of(g.config, "ehr")
        clear = [f for f in ehr["factors"] if f["name"] == "cleartext-clinical-protocol"]
        assert clear, [f["name"] for f in ehr["factors"]]
        assert clear[0]["contribution"] > 0
        assert any("infusion-orders" in ev for ev in clear[0]["evidence"]), clear[0]
        assert ehr["mud"]["url"] == "https://mud.example.org/ehr-ie.json"
        assert any(d["kind"] == "not_in_mud" for d in ehr["mud"]["deviations"]), ehr["mud"]

        # A restart assesses again and records nothing it already recorded.
        counts = {r: len(risk_events(evs, rule=r)) for r in ("WG-RISK-001", "WG-RISK-002", "WG-RISK-003", "WG-MUD-001", "WG-MUD-002")}
        n = assessments(g)
        restart(g)
        wait_assessed(g, n)
        time.sleep(0.5)
        evs = g.events()
        again = {r: len(risk_events(evs, rule=r)) for r in counts}
        assert again == counts, (counts, again)
        assert len([e for e in risk_events(evs, "pump-server", "WG-RISK-001")
                    if e["vulnerability"]["reference"] == MEDFUSION_ADVISORY]) == 1
        assert (g.dir / "data" / "risk-state.json").exists()

        # The manufacturer's VEX rules the advisory out for this pump; imported
        # while the gateway runs, it counts from the next reload: the pump's risk
        # falls below the threshold (WG-RISK-005), once.
        vex = tmp_path / "medfusion-vex.json"
        vex.write_text(json.dumps(openvex(PUMP_PURL, medfusion_cves())))
        r = run("advisories", "import", str(vex), "--config", str(g.config))
        assert r.returncode == 0, r.stdout + r.stderr
        n = assessments(g)
        g.cli("reload")
        wait_assessed(g, n)
        evs = wait_events(g, lambda e: risk_events(e, "pump-server", "WG-RISK-005"), "the pump's risk falling below")
        below = risk_events(evs, "pump-server", "WG-RISK-005")
        assert len(below) == 1
        rf = below[0]["wardgate"]["risk"]
        assert rf["score"] < rf["threshold"] == 20 <= rf["previous_score"], rf
        assert risk_of(g.config, "pump-server")["score"] == rf["score"]
        for e in risk_events(evs):
            check_risk_event(e)
        assert not not_alerts(evs), not_alerts(evs)
    finally:
        g.stop()
        up.stop()


def test_advisories_imported_while_serving_are_assessed_without_a_reload(tmp_path):
    """The store's change wakes the running gateway: a new hit is an alert in
    seconds, not at the next hourly assessment."""
    up = Upstream()
    g = Gateway(tmp_path, up.port, site=site())
    try:
        n = wait_assessed(g, 0)
        assert not risk_events(g.events(), "pump-server", "WG-RISK-001"), "nothing imported yet"
        one = tmp_path / "one"
        one.mkdir()
        shutil.copy(advisories_dir() / "icsma-17-250-02a.json", one)
        r = import_advisories(tmp_path / "data", one)
        assert r.returncode == 0, r.stdout + r.stderr
        wait_assessed(g, n)
        evs = wait_events(g, lambda e: risk_events(e, "pump-server", "WG-RISK-001"), "the hit of an advisory imported while serving")
        hit = risk_events(evs, "pump-server", "WG-RISK-001")
        assert [e["vulnerability"]["reference"] for e in hit] == [MEDFUSION_ADVISORY]
        assert "advisories or VEX statements changed" in g.log_text()
    finally:
        g.stop()
        up.stop()


def test_a_watch_only_site_gets_its_findings_from_analyze(tmp_path):
    """No gateway runs on a site that only watches: `wardgate analyze` assesses
    the devices once what it saw is recorded, and records the findings."""
    from test_analyze import site as analyze_site
    cfg = analyze_site(tmp_path)
    cfg.write_text(cfg.read_text().replace(
        'kind = "infusion-pump-server"',
        f'kind = "infusion-pump-server"\nvendor = "Smiths Medical"\nmodel = "{MEDFUSION}"\nversion = "1.5"', 1))
    r = import_advisories(tmp_path / "data", advisories_dir())
    assert r.returncode == 0, r.stderr
    pcap = Path(__file__).resolve().parents[1] / "evasion" / "corpus" / "baseline_unsafe.pcap"
    a = run("analyze", "--config", cfg, "--json", pcap, timeout=300)
    assert a.returncode in (0, 1), a.stderr
    assert "device-risk finding(s) recorded" in a.stderr, a.stderr
    evs = json_lines(run("events", "--config", cfg, "--json").stdout)
    hits = [e for e in evs if rule_of(e) == "WG-RISK-001" and device_of(e) == "pump-server"]
    assert [e["vulnerability"]["reference"] for e in hits] == [MEDFUSION_ADVISORY], [rule_of(e) for e in evs]
    # A second analysis finds nothing new to say.
    b = run("analyze", "--config", cfg, "--json", pcap, timeout=300)
    assert "device-risk finding(s) recorded" not in b.stderr, b.stderr
    evs = json_lines(run("events", "--config", cfg, "--json").stdout)
    assert len([e for e in evs if rule_of(e) == "WG-RISK-001" and device_of(e) == "pump-server"]) == 1


# --- 4. syslog ------------------------------------------------------------------------

def test_the_advisory_hit_reaches_a_real_rsyslog(tmp_path):
    from test_syslog import Rsyslog, check_messages, export_section

    rs = Rsyslog(tmp_path / "rsyslog").start()
    up = Upstream()
    g = None
    try:
        g = Gateway(tmp_path, up.port, site=prepare(tmp_path, export=export_section("soc", f"127.0.0.1:{rs.port}")))
        deadline = time.monotonic() + 60
        got = []
        while not got:
            assert time.monotonic() < deadline, f"no WG-RISK-001 at rsyslog; got {[m['msgid'] for _, m in rs.messages()]}"
            time.sleep(0.2)
            got = [(i, m, ev) for i, m, ev in rs.events()
                   if rule_of(ev) == "WG-RISK-001" and device_of(ev) == "pump-server"
                   and ev.get("vulnerability", {}).get("reference") == MEDFUSION_ADVISORY]
        assert len(got) == 1, got
        _, m, ev = got[0]
        assert m["msgid"] == "WG-RISK-001"
        # An advisory hit is an alert for the SOC (docs/events.md: `alert` when a
        # rule fired and the site is alerted of it).
        assert ev["event"]["kind"] == "alert", (ev["event"], ev["wardgate"].get("repeat"))
        assert ev["vulnerability"]["id"] in medfusion_cves()
        # High (syslog error, 3) at facility local0, as every high rule.
        assert int(m["pri"]) == 16 * 8 + 3, m
        check_messages([r for r in rs.events() if (rule_of(r[2]) or "").startswith(("WG-RISK-", "WG-MUD-"))])
        # It is the event the audit log holds.
        logged = [e for e in g.events() if rule_of(e) == "WG-RISK-001" and device_of(e) == "pump-server"
                  and e["vulnerability"]["reference"] == MEDFUSION_ADVISORY]
        assert [e["event"]["id"] for e in logged] == [ev["event"]["id"]]
    finally:
        if g is not None:
            g.stop()
        up.stop()
        rs.kill()


# --- 5. devices import ----------------------------------------------------------------

ASSET_CSV = """Asset Tag,IP Address,Manufacturer,Model,Firmware Version,Criticality
PUMP-0001,10.20.1.11,Smiths Medical,Medfusion 4000 Wireless Syringe Infusion Pump,1.5,life-sustaining
PUMP-0002,10.20.1.12,BD,Alaris CC,2.3.7,life-supporting
PUMP-0003,10.20.1.999,BD,Alaris CC,2.3.6,life-supporting
MON-0001,10.20.2.5,Philips,IntelliVue X2,M,diagnostic
"""


def test_devices_import_of_an_asset_export(tmp_path):
    csv_file = tmp_path / "assets.csv"
    csv_file.write_text(ASSET_CSV)
    out = tmp_path / "imported-devices.toml"
    cfg = tmp_path / "site.toml"
    base = site().format(data_dir=tmp_path / "data", max_frame=65536, listen_port=1, upstream_port=1)
    cfg.write_text(base)
    r = run("devices", "import", str(csv_file), "-o", str(out), "-c", str(cfg))
    assert r.returncode == 1, r.stdout + r.stderr
    left_out = [line for line in r.stderr.splitlines() if line.startswith("left out:")]
    assert len(left_out) == 1, r.stderr
    assert "line 4" in left_out[0] and "10.20.1.999" in left_out[0], left_out
    assert "3 device(s) written" in r.stderr, r.stderr
    text = out.read_text()
    assert text.count("[[device]]") == 3 and "10.20.1.999" in text  # listed as left out, in a comment
    # Named in device_files, the file loads.
    cfg.write_text(site(device_files=f'device_files = ["{out.name}"]').format(
        data_dir=tmp_path / "data", max_frame=65536, listen_port=1, upstream_port=1))
    chk = run("check", "--config", str(cfg))
    assert chk.returncode == 0, chk.stdout + chk.stderr
    # And its devices are assessed like any other: the Medfusion 1.5 is affected,
    # Alaris CC 2.3.7 is outside ICSMA-18-235-01's `<= 2.3.6`.
    assert import_advisories(tmp_path / "data", advisories_dir()).returncode == 0
    risks = {d["device"]: d for d in json_lines(run("risk", "-c", str(cfg), "--json").stdout)}
    assert {"PUMP-0001", "PUMP-0002", "MON-0001"} <= set(risks), sorted(risks)
    assert risks["PUMP-0001"]["criticality"] == "life-sustaining"
    assert [status_of(h) for h in hits_of(risks["PUMP-0001"], MEDFUSION_ADVISORY)] == ["affected"]
    assert hits_of(risks["PUMP-0002"], "ICSMA-18-235-01") == []
    # A second import to the same file is refused without --force; the file stays.
    r2 = run("devices", "import", str(csv_file), "-o", str(out), "-c", str(cfg))
    assert r2.returncode == 2, r2.stdout + r2.stderr
    assert "exists" in r2.stderr and "--force" in r2.stderr, r2.stderr
    assert out.read_text() == text
    # With --force it is rewritten; the site's own devices are not taken again.
    r3 = run("devices", "import", str(csv_file), "-o", str(out), "--force")
    assert r3.returncode == 1, r3.stderr
    assert out.read_text().count("[[device]]") == 3


# --- 6. mud generate ------------------------------------------------------------------

def test_a_generated_mud_file_allows_the_traffic_it_was_drafted_from(tmp_path):
    up = Upstream()
    g = Gateway(tmp_path, up.port, site=prepare(tmp_path))
    try:
        wait_assessed(g, 0)
        for i in range(3):
            assert "MSA|AA|" in send(g, observation(f"MUD-OBS-{i}"))
        wait_events(g, lambda e: sum(1 for x in e if x.get("wardgate", {}).get("hl7", {}).get("control_id", "").startswith("MUD-OBS-")) >= 3,
                    "the traffic's events")
        url = "https://mud.example.org/ehr-ie-generated.json"
        r = run("mud", "generate", "ehr", "-c", str(g.config), "--url", url)
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert doc["ietf-mud:mud"]["mud-url"] == url
        assert doc["ietf-access-control-list:acls"]["acl"], doc
        (tmp_path / "ehr.generated.mud.json").write_text(r.stdout)
        # Given back as the EHR's MUD file: the same traffic is within it.
        g.config.write_text(g.config.read_text().replace(
            'sbom = "ehr-sbom.cdx.json"', 'sbom = "ehr-sbom.cdx.json"\nmud = "ehr.generated.mud.json"'))
        before = assessments(g)
        g.cli("reload")
        wait_assessed(g, before)
        ehr = risk_of(g.config, "ehr")
        assert ehr["mud"] is not None and ehr["mud"]["url"] == url, ehr["problems"]
        assert ehr["mud"]["deviations"] == [], ehr["mud"]["deviations"]
        time.sleep(0.5)
        evs = g.events()
        assert not risk_events(evs, "ehr", "WG-MUD-001"), [e["event"]["reason"] for e in risk_events(evs, "ehr", "WG-MUD-001")]
        assert not risk_events(evs, "ehr", "WG-MUD-002"), [e["event"]["reason"] for e in risk_events(evs, "ehr", "WG-MUD-002")]
        # More of the same traffic, another reload: still within it.
        for i in range(3, 5):
            assert "MSA|AA|" in send(g, observation(f"MUD-OBS-{i}"))
        before = assessments(g)
        g.cli("reload")
        wait_assessed(g, before)
        assert risk_of(g.config, "ehr")["mud"]["deviations"] == []
        assert not risk_events(g.events(), "ehr", "WG-MUD-001")
    finally:
        g.stop()
        up.stop()


# --- 7. the wire disagrees with the declared version -------------------------------

DICOM_SITE = """
[gateway]
data_dir = "{data_dir}"
frame_timeout_secs = 3
shutdown_grace_secs = 2

[gateway.audit]
checkpoint_every = 50
checkpoint_interval_ms = 100

[risk]
assess_every_secs = 0

[[device]]
id = "ct-1"
kind = "ct-scanner"
addresses = ["127.0.0.5"]
ae_titles = ["CT01"]
vendor = "Example Imaging"
model = "Example CT"
version = "2.1"
criticality = "diagnostic"

[[device]]
id = "ct-2"
kind = "ct-scanner"
addresses = ["127.0.0.6"]
ae_titles = ["CT02"]
vendor = "Example Imaging"
model = "Example CT"
version = "3.0"
criticality = "diagnostic"

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
senders = ["ct-1", "ct-2"]
called_ae_titles = ["PACS"]
operations = ["C-ECHO"]
sop_classes = ["1.2.840.10008.1.1"]
"""


def test_a_dicom_implementation_version_that_disagrees_is_raised_once(tmp_path):
    """pynetdicom SCUs state their software in the A-ASSOCIATE-RQ (implementation
    version name): ct-1 is declared 2.1 and says CT_V3.0 (WG-RISK-004), ct-2 is
    declared 3.0 and says CT_V3.0 (agrees: nothing)."""
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    from conftest import free_port

    scp_ae = AE(ae_title="PACS")
    scp_ae.add_supported_context(Verification)
    scp_port = free_port("127.0.0.4")
    server = scp_ae.start_server(("127.0.0.4", scp_port), block=False)
    g = None
    try:
        g = Gateway(tmp_path, scp_port, site=DICOM_SITE)
        wait_assessed(g, 0)

        def echo(aet, source):
            ae = AE(ae_title=aet)
            ae.implementation_version_name = "CT_V3.0"
            ae.add_requested_context(Verification)
            ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
            assoc = ae.associate("127.0.0.1", g.listen_port, ae_title="PACS", bind_address=(source, 0))
            assert assoc.is_established, (aet, source)
            status = assoc.send_c_echo()
            assoc.release()
            assert status and status.Status == 0x0000

        echo("CT01", "127.0.0.5")
        echo("CT02", "127.0.0.6")
        wait_events(g, lambda e: {"ct-1", "ct-2"} <= {x["wardgate"].get("source_device") for x in e
                                                     if x["wardgate"].get("stage") == "association"},
                    "the associations")
        n = assessments(g)
        g.cli("reload")
        wait_assessed(g, n)
        evs = wait_events(g, lambda e: risk_events(e, "ct-1", "WG-RISK-004"), "WG-RISK-004 for ct-1")
        ev = risk_events(evs, "ct-1", "WG-RISK-004")
        assert len(ev) == 1
        rf = ev[0]["wardgate"]["risk"]
        assert rf["declared_version"] == "2.1" and rf["wire_versions"] == ["CT_V3.0"], rf
        check_risk_event(ev[0])
        assert not risk_events(evs, "ct-2", "WG-RISK-004")
        ct1, ct2 = risk_of(g.config, "ct-1"), risk_of(g.config, "ct-2")
        assert ct1["version_disagrees"] is True and ct1["wire_versions"] == ["CT_V3.0"]
        assert any(f["name"] == "version-disagrees" for f in ct1["factors"]), ct1["factors"]
        assert ct2["version_disagrees"] is False and ct2["wire_versions"] == ["CT_V3.0"]
        # Seen again, assessed again: not raised again.
        echo("CT01", "127.0.0.5")
        n = assessments(g)
        g.cli("reload")
        wait_assessed(g, n)
        time.sleep(0.5)
        assert len(risk_events(g.events(), "ct-1", "WG-RISK-004")) == 1
    finally:
        if g is not None:
            g.stop()
        server.shutdown()
