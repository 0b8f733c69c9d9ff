"""Issue 17: the demo's scenarios, the red cases included, decided alike inline
and passively. `wardgate demo` plays its HL7, DICOM and MQTT scenarios (routine
traffic, unsafe orders, attacks) through the gateway from its loopback devices
while tshark captures both legs (filtered to the demo's addresses); `wardgate
analyze`, given the demo's site with the ports it listened on and told where the
gateway is, judges the capture. Every message, command and association
decision must carry the rule and action the proxy recorded.

Not compared, because passive analysis cannot know them: what wardgate itself
answered (its own acknowledgements exist only as its bytes on the first leg),
how connections ended (`closed` records), the gateway's own records
(start, policy, stop), and wardgate's own A-ABORT after a DICOM block, which on
the first leg passive analysis sees as the server's (`WG-UP-004`)."""
import json
import re
import subprocess
from collections import Counter

from conftest import require_tool, start_capture, wardgate_bin
from test_analyze import stop_capture
from test_parity_dicom import without_own_aborts

DEVICES = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6", "127.0.0.66",
           "127.0.0.21", "127.0.0.22", "127.0.0.30", "127.0.0.40")
PASSIVE = {"blocked": "observed-violation"}
NOT_COMPARED = {"closed", "observed", "started", "stopped", "policy-applied"}


def decisions(events):
    """(protocol, stage, passive-equivalent action, rule, control id or operation)."""
    out = []
    for e in events:
        proto = e.get("network", {}).get("protocol")
        if proto not in ("hl7-mllp", "dicom", "mqtt"):
            continue
        mqtt = e.get("wardgate", {}).get("mqtt") or {}
        # MQTT: packet decisions (a connection's summary covers a time window).
        if proto == "mqtt" and not mqtt.get("packet"):
            continue
        action = PASSIVE.get(e["event"]["action"], e["event"]["action"])
        stage = e.get("wardgate", {}).get("stage", "")
        if action in NOT_COMPARED or (proto == "hl7-mllp" and stage != "message"):
            continue
        # An episode's summary of repeated alerts is the inline gateway's
        # notification about decisions compared already, not a decision.
        if e.get("rule", {}).get("id") == "WG-ALERT-001":
            continue
        w = e.get("wardgate", {})
        what = (w.get("hl7", {}).get("control_id") or w.get("dicom", {}).get("operation")
                or (mqtt and f'{mqtt["packet"]} {mqtt.get("topic") or ",".join(mqtt.get("filters", []))}') or "-")
        out.append((proto, stage, action, e.get("rule", {}).get("id", "-"), what))
    return Counter(out)


def test_the_demo_decided_passively_as_inline(tmp_path):
    require_tool("tshark")
    d = tmp_path / "demo"
    pcap = tmp_path / "demo.pcapng"
    hosts = " or ".join(f"host {h}" for h in DEVICES)
    cap = start_capture(f"host 127.0.0.1 and ({hosts})", pcap)
    try:
        r = subprocess.run([wardgate_bin(), "demo", "--dir", str(d), "--json"],
                           capture_output=True, text=True, timeout=300)
    finally:
        stop_capture(cap)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    inline = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    started = next(e for e in inline if e["event"]["action"] == "started")
    listen = dict(re.findall(r"([\w-]+)@(127\.0\.0\.1:\d+)", started["event"]["reason"]))
    assert set(listen) == {"infusion-orders", "vital-signs", "imaging", "home-monitoring"}, started["event"]["reason"]
    # The demo's site with the ports it listened on, and the gateway's address.
    site = (d / "wardgate.toml").read_text()
    for route, addr in listen.items():
        site = re.sub(rf'(id = "{route}"\n(?:[^\[]*?\n)?listen = )"127\.0\.0\.1:0"', rf'\1"{addr}"', site, count=1)
    assert site.count('"127.0.0.1:0"') == 0, site
    site = site.replace("[gateway]\n", '[gateway]\naddresses = ["127.0.0.1"]\n', 1)
    cfg = tmp_path / "analyze.toml"
    cfg.write_text(site)
    r = subprocess.run([wardgate_bin(), "analyze", "--config", str(cfg), "--json", "--all", "--no-store", str(pcap)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode in (0, 1), r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.strip()]
    passive, summary = lines[:-1], lines[-1]
    passive = without_own_aborts(inline, passive)
    want, got = decisions(inline), decisions(passive)
    missing, extra = want - got, got - want
    assert not missing and not extra, f"inline only: {sorted(missing)}\npassive only: {sorted(extra)}"
    # The red cases were among what was compared.
    rules = {k[3] for k in want}
    assert {"WG-INF-014", "WG-DICOM-009", "WG-ACCESS-001", "WG-MQTT-004", "WG-MQTT-011", "WG-MQTT-013"} <= rules, \
        sorted(rules)
    assert summary["messages"]["gateway_legs"] > 0
    print(f"demo parity: {sum(want.values())} decisions, {len(rules)} rules")
