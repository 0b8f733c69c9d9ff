"""`wardgate events` as the people on call use it: filters that are checked
(a typo is an error, never "0 events"), `--follow` showing what the running
gateway records as it records it, and reading a data_dir while the
configuration is being edited and does not load."""
import json
import subprocess
import threading
import time

from conftest import wardgate_bin
from test_hl7_mllp import heparin, observation, order, send


def run(*args):
    return subprocess.run([wardgate_bin(), *args], capture_output=True, text=True, timeout=60)


def lines(out):
    return [json.loads(x) for x in out.splitlines() if x.strip()]


def settled(gateway, pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        evs = lines(gateway.cli("events", "--json").stdout)
        if pred(evs):
            return evs
        time.sleep(0.1)
    raise AssertionError("the events never settled")


def test_unknown_filters_are_errors_with_a_suggestion(gateway):
    cfg = str(gateway.config)
    for args, want in [
        (("--rule", "WG-INF-01"), 'did you mean "WG-INF-001"'),
        (("--rule", "WG-NOPE-000"), "no such rule id"),
        (("--action", "blokced"), 'did you mean "blocked"'),
        (("--severity", "hihg"), 'did you mean "high"'),
        (("--since", "2026-13-01"), "not a time"),
        (("--until", "yesterday"), "not a time"),
        (("--route", "infusion-order"), 'did you mean "infusion-orders"'),
        (("--device", "no-such-device"), "no such device"),
    ]:
        r = run("events", "--config", cfg, *args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert want in r.stderr, (args, r.stderr)
        assert "event(s)" not in r.stdout


def test_filters_select_by_severity_device_and_time(gateway):
    send(gateway, observation("OBS-1"))
    send(gateway, order("ORD-HARD", heparin(41)))
    evs = settled(gateway, lambda e: any(x.get("rule", {}).get("id") == "WG-INF-010" for x in e))
    hard = next(x for x in evs if x.get("rule", {}).get("id") == "WG-INF-010")
    cfg = str(gateway.config)
    high = lines(run("events", "--config", cfg, "--json", "--severity", "high").stdout)
    assert hard["@timestamp"] in [x["@timestamp"] for x in high]
    assert all(x["wardgate"]["severity"] in ("high", "critical") for x in high)
    # The EHR (127.0.0.2) sent both: the allowed one is its too.
    ehr = lines(run("events", "--config", cfg, "--json", "--device", "ehr").stdout)
    assert {x["event"]["action"] for x in ehr} >= {"allowed", "blocked"}
    assert all("ehr" in (x["wardgate"].get("source_device"), x["wardgate"].get("destination_device")) for x in ehr)
    # Times: the blocked order's own instant, converted from another offset.
    ts = hard["@timestamp"]
    before = lines(run("events", "--config", cfg, "--json", "--until", ts).stdout)
    after = lines(run("events", "--config", cfg, "--json", "--since", ts).stdout)
    assert ts not in [x["@timestamp"] for x in before]
    assert ts in [x["@timestamp"] for x in after]
    assert len(before) + len(after) == len(evs)
    # The same instant written at +02:00 selects the same events.
    from datetime import datetime, timedelta, timezone
    t = datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(timezone(timedelta(hours=2)))
    shifted = lines(run("events", "--config", cfg, "--json", "--since", t.isoformat(timespec="milliseconds")).stdout)
    assert [x["@timestamp"] for x in shifted] == [x["@timestamp"] for x in after]


def test_follow_prints_events_as_the_gateway_records_them(gateway):
    send(gateway, order("ORD-OLD", heparin(41)))
    settled(gateway, lambda e: any(x.get("wardgate", {}).get("hl7", {}).get("control_id") == "ORD-OLD" for x in e))
    proc = subprocess.Popen([wardgate_bin(), "events", "--config", str(gateway.config), "--json", "--follow",
                             "--action", "blocked", "--last", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    got = []
    reader = threading.Thread(target=lambda: [got.append(json.loads(x)) for x in proc.stdout if x.strip()],
                              daemon=True)
    reader.start()
    try:
        ids = lambda: [x["wardgate"].get("hl7", {}).get("control_id") for x in got]
        deadline = time.monotonic() + 10
        while "ORD-OLD" not in ids() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ids() == ["ORD-OLD"], "the backlog: the last blocked event only"
        send(gateway, observation("OBS-NEW"))  # allowed: not shown
        for i in range(3):
            send(gateway, order(f"ORD-NEW-{i}", heparin(41)))
        deadline = time.monotonic() + 10
        while len(got) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ids() == ["ORD-OLD", "ORD-NEW-0", "ORD-NEW-1", "ORD-NEW-2"]
        assert proc.poll() is None, "--follow keeps running"
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0, proc.stderr.read()


def test_read_only_commands_work_from_data_dir_while_the_config_is_broken(gateway):
    send(gateway, order("ORD-DD", heparin(41)))
    settled(gateway, lambda e: any(x.get("wardgate", {}).get("hl7", {}).get("control_id") == "ORD-DD" for x in e))
    data_dir = gateway.dir / "data"
    broken = gateway.dir / "editing.toml"
    broken.write_text(gateway.config.read_text() + "\n[[route]\nid = \n")
    r = run("events", "--config", str(broken), "--json")
    assert r.returncode == 2 and "--data-dir" in r.stderr, r.stderr
    r = run("events", "--data-dir", str(data_dir), "--json", "--rule", "WG-INF-010")
    assert r.returncode == 0, r.stderr
    assert [x["wardgate"]["hl7"]["control_id"] for x in lines(r.stdout)] == ["ORD-DD"]
    r = run("devices", "--data-dir", str(data_dir), "--json")
    assert r.returncode == 0, r.stderr
    assert "127.0.0.2" in [x["address"] for x in lines(r.stdout)]
    r = run("events", "--data-dir", str(gateway.dir / "nowhere"))
    assert r.returncode == 2 and "not a directory" in r.stderr
    r = run("audit", "verify", "--config", str(broken))
    assert r.returncode == 2 and "--data-dir" in r.stderr, r.stderr
    r = run("audit", "verify", "--data-dir", str(data_dir))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "intact" in r.stdout, r.stdout
    r = run("queue", "--data-dir", str(data_dir))
    assert r.returncode == 0, r.stderr


def test_rules_explain_what_to_do_one_at_a_time_or_as_json():
    r = run("rules", "WG-INF-010")
    assert r.returncode == 0, r.stderr
    assert "rate-above-hard-limit (critical)" in r.stdout and "what to do:" in r.stdout
    r = run("rules", "WG-INF-10")
    assert r.returncode == 2 and 'did you mean "WG-INF-010"' in r.stderr
    rules = lines(run("rules", "--json").stdout)
    from pathlib import Path
    doc = (Path(__file__).resolve().parents[2] / "docs" / "rules.md").read_text()
    table = [l for l in doc.splitlines() if l.startswith("| WG-")]
    assert len(rules) == len(table) > 100
    for x in rules:
        assert set(x) == {"id", "name", "severity", "why", "remediation"}
        assert x["remediation"] and x["why"], x["id"]
        assert x["severity"] in ("info", "low", "medium", "high", "critical")


OVERRIDES = """
[[rule_override]]
rule = "WG-INF-012"
suppress = true
devices = ["ehr"]
reason = "soft-limit heparin orders from the EHR are reviewed in the pharmacy's own queue"

[[rule_override]]
rule = "WG-INF-010"
severity = "high"
routes = ["infusion-orders"]
reason = "paged through the pump vendor's console instead"
"""


def test_site_overrides_change_alerting_never_the_decision(tmp_path):
    from conftest import SITE, Gateway, Upstream
    from test_hl7_mllp import msa
    up = Upstream()
    gw = Gateway(tmp_path, up.port, site=SITE + OVERRIDES)
    try:
        soft = order("ORD-SOFT", heparin(35))
        assert msa(send(gw, soft))[0] == "AA"
        assert msa(send(gw, order("ORD-HARD", heparin(41))))[0] == "AR", "a block still blocks"
        evs = settled(gw, lambda e: {"ORD-SOFT", "ORD-HARD"} <= {x.get("wardgate", {}).get("hl7", {}).get("control_id") for x in e})
        by_id = {x["wardgate"]["hl7"]["control_id"]: x for x in evs if x.get("wardgate", {}).get("hl7")}
        s, h = by_id["ORD-SOFT"], by_id["ORD-HARD"]
        # Suppressed: recorded whole, the decision unchanged, no longer an alert.
        assert s["rule"]["id"] == "WG-INF-012" and s["event"]["action"] == "alerted"
        assert s["event"]["kind"] == "event"
        assert "pharmacy" in s["wardgate"]["override_reason"]
        assert up.received == [soft.encode()]
        # Re-graded: high, not critical; still an alert, still blocked.
        assert h["event"]["action"] == "blocked" and h["event"]["kind"] == "alert"
        assert h["wardgate"]["severity"] == "high" and h["event"]["severity"] == 3
        crit = lines(run("events", "--config", str(gw.config), "--json", "--severity", "critical").stdout)
        assert "ORD-HARD" not in [x.get("wardgate", {}).get("hl7", {}).get("control_id") for x in crit]
        # `wardgate rules` shows what the site chose, and why.
        r = run("rules", "WG-INF-012", "--config", str(gw.config))
        assert "this site:  recorded but not alerted (devices ehr): soft-limit heparin" in r.stdout, r.stdout
        j = lines(run("rules", "--json", "--config", str(gw.config)).stdout)
        hard = next(x for x in j if x["id"] == "WG-INF-010")
        assert hard["overrides"] == [{"severity": "high", "suppress": False, "devices": [],
                                      "routes": ["infusion-orders"], "reason": "paged through the pump vendor's console instead"}]
    finally:
        gw.stop()
        up.stop()


def test_an_override_that_cannot_apply_is_refused_with_its_location(tmp_path):
    from conftest import SITE
    bad = SITE + """
[[rule_override]]
rule = "WG-INF-999"
devices = ["no-such-device"]
reason = ""

[[rule_override]]
rule = "WG-CAP-006"
suppress = true
reason = "noisy tap"
"""
    cfg = tmp_path / "bad.toml"
    cfg.write_text(bad.format(data_dir=tmp_path / "data", listen_port=1, upstream_port=2, max_frame=65536))
    r = run("check", "--config", str(cfg))
    assert r.returncode == 2, r.stdout + r.stderr
    for want in ["is no rule id", "changes nothing", "reason must say why", '"no-such-device" is not declared',
                 "WG-CAP-006 says what wardgate could not see or record"]:
        assert want in r.stderr, (want, r.stderr)


def test_repeated_identical_alerts_page_once_per_episode(tmp_path):
    """Five identical hard-limit orders from the EHR: every one blocked and
    recorded; the first is an alert, the other four records of its episode;
    once the EHR is quiet for the window, one summary alert counts them."""
    from conftest import SITE, Gateway, Upstream
    from test_hl7_mllp import msa
    up = Upstream()
    site = SITE.replace("[gateway]\n", "[gateway]\nalert_repeat_window_secs = 2\n", 1)
    gw = Gateway(tmp_path, up.port, site=site)
    try:
        for i in range(5):
            assert msa(send(gw, order(f"REP-{i}", heparin(41))))[0] == "AR"
        evs = settled(gw, lambda e: any(x.get("rule", {}).get("id") == "WG-ALERT-001" for x in e), timeout=20)
        hard = [x for x in evs if x.get("rule", {}).get("id") == "WG-INF-010"]
        assert [x["wardgate"]["hl7"]["control_id"] for x in hard] == [f"REP-{i}" for i in range(5)]
        assert all(x["event"]["action"] == "blocked" for x in hard), "every one blocked"
        assert [x["event"]["kind"] for x in hard] == ["alert"] + ["event"] * 4
        assert [x["wardgate"].get("repeat", {}).get("count") for x in hard] == [None, 2, 3, 4, 5]
        summary = [x for x in evs if x.get("rule", {}).get("id") == "WG-ALERT-001"]
        assert len(summary) == 1, summary
        s = summary[0]
        assert s["event"]["kind"] == "alert" and s["wardgate"]["severity"] == "critical"
        assert s["event"]["action"] == "alerted"
        assert s["wardgate"]["repeat"] == {"rule": "WG-INF-010", "first": hard[0]["@timestamp"], "count": 5}
        assert "repeated 4 more time(s) from 127.0.0.2" in s["event"]["reason"]
    finally:
        gw.stop()
        up.stop()
