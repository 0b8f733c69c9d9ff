"""Issue 17: inline and passive decide alike. The clinical corpus goes through
`wardgate serve` (a real HL7 client, a recording upstream) while tshark captures
both legs on loopback (filtered to this test's two ports); `wardgate analyze`
then judges the capture. Per message (by MSH-10), the passive decision must carry
the rule and the action the proxy recorded (a block is an observed violation),
and the gateway's own leg to the upstream is paired, not judged as a device.

What passive analysis cannot know, and so is not compared: the answers wardgate
itself wrote (they exist only on the first leg, as wardgate's bytes), and the
connection records of the proxy (`connection admitted`)."""
import json
import re
import subprocess

import clinical_corpus
from conftest import Gateway, Upstream, require_tool, start_capture, wardgate_bin
from test_analyze import stop_capture
from test_clinical_corpus import SITE as CORPUS_SITE

# The analyser is told where the gateway is, so it pairs the two legs.
SITE = CORPUS_SITE.replace('[gateway]\n', '[gateway]\naddresses = ["127.0.0.1"]\n', 1)
from test_hl7_mllp import SourceBoundClient, unframe

PASSIVE_ACTION = {"blocked": "observed-violation", "alerted": "alerted", "allowed": "allowed"}


def decisions(events):
    """(control id or "-", passive-equivalent action, rule id) of each message decision."""
    out = []
    for e in events:
        if e.get("wardgate", {}).get("stage") != "message":
            continue
        action = e["event"]["action"]
        if action not in PASSIVE_ACTION and action != "observed-violation":
            continue
        cid = e.get("wardgate", {}).get("hl7", {}).get("control_id") or "-"
        rule = e.get("rule", {}).get("id", "")
        out.append((cid, PASSIVE_ACTION.get(action, action), rule))
    return sorted(out)


def test_passive_analysis_of_the_proxied_corpus_decides_as_the_proxy_did(tmp_path):
    require_tool("tshark")
    up = Upstream()
    (tmp_path / "gw").mkdir()
    gw = Gateway(tmp_path / "gw", up.port, site=SITE)
    pcap = tmp_path / "both-legs.pcapng"
    cap = start_capture(f"tcp port {gw.listen_port} or tcp port {up.port}", pcap)
    items = clinical_corpus.cases()
    try:
        for item in items:
            with SourceBoundClient(*gw.addr, "127.0.0.2") as c:
                unframe(c.send_message(item["text"]))
        inline = gw.events()
    finally:
        stop_capture(cap)
        gw.stop()
        up.stop()

    r = subprocess.run(
        [wardgate_bin(), "analyze", "--config", str(gw.config), "--json", "--all", "--no-store", str(pcap)],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode in (0, 1), r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.strip()]
    summary, passive = lines[-1], lines[:-1]

    want = decisions(inline)
    got = decisions(passive)
    assert len(want) >= len(items), (len(want), len(items))
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    assert not missing and not extra, f"inline only: {missing[:20]}\npassive only: {extra[:20]}"
    assert want == got
    print(f"parity: {len(want)} decisions, {summary['messages']['gateway_legs']} gateway legs, {len({a for _, a, _ in want})} actions, {len({r for _, _, r in want})} rules")

    # Every case was a connection of its own on each leg; the gateway's leg to the
    # upstream is paired with the first, not judged as an unknown device's.
    assert summary["messages"]["gateway_legs"] >= sum(i["verdict"] != "block" for i in items)
    assert not [e for e in passive if e.get("rule", {}).get("id") == "WG-ACCESS-001"], \
        "the gateway's own address was judged as an unknown device"
    # Nothing the proxy forwarded is missing from the upstream's leg of the capture.
    forwarded = {c for c, a, _ in want if a in ("allowed", "alerted")}
    received = {m.group(1) for b in up.received
                for m in [re.search(rb"\|(C\d{4})\|P\|", b)] if m}
    assert {c.encode() for c in forwarded if re.fullmatch(r"C\d{4}", c)} <= received
