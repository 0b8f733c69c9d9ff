"""Issue 21, passive parity: MQTT traffic of real clients goes through `wardgate
serve` to a real mosquitto while tshark captures both legs on loopback (filtered
to this test's two ports); `wardgate analyze` then judges the capture with the
same profiles. Every decision the proxy recorded about a packet (CONNECT,
SUBSCRIBE, commands, refusals, telemetry alerts) must be in the passive result
with the same packet, topic or filters, rule and action (a block is an observed
violation), and the reverse.

What passive analysis cannot know, and so is not compared: the answers wardgate
wrote itself (PUBACK 0x87, SUBACK refusals: they exist only on the client's leg,
as wardgate's bytes), connection summaries (their counts cover a time window)
and a refusal that closed a 3.1.1 connection (the capture shows the client's
retry on a new connection instead)."""
import json
import subprocess

from conftest import require_tool, start_capture, wardgate_bin
from mqtt_peers import SITE_TEMPLATE, MqttSite, sign_command, v5_signature_props
from test_analyze import stop_capture

# The analyser is told where the gateway is, so it pairs the two legs.
SITE = SITE_TEMPLATE.replace("[gateway]\n", '[gateway]\naddresses = ["127.0.0.1"]\n', 1)
PASSIVE_ACTION = {"blocked": "observed-violation", "alerted": "alerted", "allowed": "allowed"}


def decisions(events):
    """(packet, topic or filters, passive-equivalent action, rule) of each packet decision."""
    out = []
    for e in events:
        m = e.get("wardgate", {}).get("mqtt") or {}
        if not m.get("packet"):
            continue
        action = e["event"]["action"]
        if action not in PASSIVE_ACTION and action != "observed-violation":
            continue
        what = m.get("topic") or ",".join(m.get("filters", []))
        out.append((m["packet"], what, PASSIVE_ACTION.get(action, action), e.get("rule", {}).get("id", "")))
    return sorted(out)


def test_passive_analysis_of_proxied_mqtt_decides_as_the_proxy_did(tmp_path):
    require_tool("tshark")
    site = MqttSite(tmp_path, template=SITE)
    pcap = tmp_path / "both-legs.pcapng"
    cap = start_capture(f"tcp port {site.port} or tcp port {site.broker.port}", pcap)
    try:
        mon = site.paho("monitor-1")
        assert mon.connect()[0] == 0
        assert mon.publish("home/monitor-1/vitals/heart-rate", b"72", qos=1) == 0
        assert mon.publish("home/monitor-1/vitals/heart-rate", b"300", qos=1) == 0  # alerted
        assert mon.publish("home/monitor-2/vitals/heart-rate", b"60", qos=1) == 0x87
        assert mon.publish("home/monitor-2/vitals/heart-rate", b"60", qos=0) == 0  # not forwarded, recorded
        assert mon.subscribe(["#"]) == [0x87]
        assert mon.subscribe(["home/monitor-1/cmd/#"]) == [1]
        clinic = site.paho("clinic")
        assert clinic.connect()[0] == 0
        topic, body = "home/monitor-1/cmd/upload-now", b"{}"
        ts, nonce, sig = sign_command(site.key, topic, body)
        props = clinic.props("PUBLISH", UserProperty=v5_signature_props(ts, nonce, sig))
        assert clinic.publish(topic, body, qos=1, properties=props) in (0, 0x10)
        assert clinic.publish(topic, body, qos=1, properties=props) == 0x87  # replayed
        assert clinic.publish("home/monitor-2/cmd/x", body, qos=1) == 0x87  # unsigned
        assert mon.receive(1), "the signed command reached the monitor"
        impostor = site.paho("monitor-2", client_id="monitor-1")
        assert impostor.connect()[0] == 0x85
        inline = site.events()
    finally:
        stop_capture(cap)
        site.close()

    r = subprocess.run(
        [wardgate_bin(), "analyze", "--config", str(site.gw.config), "--json", "--all", "--no-store", str(pcap)],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode in (0, 1), r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.strip()]
    summary, passive = lines[-1], lines[:-1]

    want = decisions(inline)
    got = decisions(passive)
    rules = {rule for *_, rule in want}
    # The run exercised what it claims to compare.
    assert {"WG-MQTT-001", "WG-MQTT-003", "WG-MQTT-004", "WG-MQTT-010", "WG-MQTT-011", "WG-MQTT-015"} <= rules, want
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    assert not missing and not extra, f"inline only: {missing}\npassive only: {extra}"
    assert want == got
    assert summary["messages"]["gateway_legs"] >= 2, summary
    assert not [e for e in passive if e.get("rule", {}).get("id") == "WG-ACCESS-001"], \
        "the gateway's own address was judged as an unknown device"
