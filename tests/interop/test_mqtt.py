"""The inline MQTT proxy (issue #21, docs/mqtt.md) between real MQTT peers:
paho-mqtt 2.1 clients (MQTT 3.1.1 and 5) and mosquitto_pub/mosquitto_sub, each
bound to its device's 127.0.0.x address, through `wardgate serve` to a real
mosquitto; raw MQTT bytes over a socket for what no client library sends.

Every test asserts what the client sees (CONNACK, SUBACK, PUBACK/PUBREC reason
codes in 5.0, the connection closed in 3.1.1 where MQTT has no refusal code)
and what wardgate recorded (rule ids). What must not reach the broker is
checked with a client connected to mosquitto directly (`site.direct()`).

The pass-through tests run twice: `direct` (clients to mosquitto itself, no
wardgate: the baseline showing that what the test expects is what a real broker
does) and `wardgate`.

The site (mqtt_peers.SITE_TEMPLATE): monitor-1 (127.0.0.21) and monitor-2
(127.0.0.22) with the home-monitor profile, glucometer-1 (127.0.0.23), the
clinic server (127.0.0.30) as the route's commander, a command signer key made
per test; commands_per_hour = 3.
"""
import json
import secrets
import socket
import subprocess
import time

import pytest

from conftest import ROOT, wardgate_bin
from mqtt_peers import (
    ADDR, COMMANDS_PER_HOUR, CONNACK, MAX_PACKET, MAX_PAYLOAD, PUBACK, MqttSite,
    connect_packet, disconnect_reason, packet, publish_packet, sign_command, tool_pub, tool_sub,
    v5_signature_props, v311_envelope,
)

VERSIONS = [pytest.param(311, id="v311"), pytest.param(5, id="v5")]

# Refusal codes on the wire (docs/mqtt.md).
CONNACK_ID_REJECTED = {5: 0x85, 311: 0x02}
CONNACK_NOT_AUTHORISED = {5: 0x87, 311: 0x05}
SUBACK_REFUSED = {5: 0x87, 311: 0x80}
NOT_AUTHORISED = 0x87
QUOTA_EXCEEDED = 0x97
PROTOCOL_ERROR = 0x82

BINARY = bytes(range(256)) * 3  # every byte value, 768 bytes


@pytest.fixture
def site(tmp_path):
    s = MqttSite(tmp_path)
    yield s
    s.close()


@pytest.fixture(params=["direct", "wardgate"])
def path_site(request, tmp_path):
    s = MqttSite(tmp_path, direct=request.param == "direct")
    yield s
    s.close()


def by_rule(events, rule):
    return [e for e in events if e.get("rule", {}).get("id") == rule]


def refusals(site):
    """Rule ids of every WG-MQTT event that is not an alert."""
    return [e["rule"]["id"] for e in site.events()
            if e.get("rule", {}).get("id", "").startswith("WG-MQTT") and e["event"]["action"] != "alerted"]


def mqtt_facts(ev):
    return ev.get("wardgate", {}).get("mqtt", {})


def assert_blocked(site, rule, n=1, timeout=5):
    evs = site.rule_events(rule, n=n, timeout=timeout)
    assert len(evs) >= n, f"expected {n} event(s) with {rule}, rules seen: {site.rules()}"
    assert all(e["event"]["action"] == "blocked" for e in evs), [e["event"] for e in evs]
    return evs


def spy(site, filters="#"):
    """A subscriber on mosquitto itself: everything that reached the broker."""
    s = site.direct(client_id=f"spy-{secrets.token_hex(3)}")
    connected(s)
    assert s.subscribe(filters, qos=2) is not None
    return s


def connected(client, **kw):
    r = client.connect(**kw)
    assert r is not None, "no CONNACK"
    assert r[0] == 0, f"CONNACK {r[0]:#x}"
    return r


# --- What passes: telemetry, retained status, wills, sessions, properties -----------

@pytest.mark.parametrize("version", VERSIONS)
def test_vitals_qos_0_1_2_reach_the_clinic_byte_for_byte(path_site, version):
    site = path_site
    clinic = site.paho("clinic", version=version)
    connected(clinic)
    assert clinic.subscribe("home/+/vitals/#", qos=2) == [2]
    mon = site.paho("monitor-1", version=version)
    connected(mon)
    sent = {}
    for qos in (0, 1, 2):
        topic = f"home/monitor-1/vitals/ecg/q{qos}"
        sent[topic] = (bytes([qos]) + BINARY, qos)
        assert mon.publish(topic, sent[topic][0], qos=qos) == 0
    # mosquitto_pub, bound to the monitor's address, with its own client id.
    r = tool_pub(site, "monitor-1", "home/monitor-1/vitals/spo2", "97", qos=1,
                 version="mqttv5" if version == 5 else "mqttv311", client_id="monitor-1")
    assert r.returncode == 0, r.stdout + r.stderr
    sent["home/monitor-1/vitals/spo2"] = (b"97", 1)
    got = clinic.receive(n=4, timeout=10)
    assert {m.topic: (m.payload, m.qos) for m in got} == sent
    if site.gw:
        assert refusals(site) == []
        # The CONNECT decisions, each recorded with its device and client id.
        allowed = [e for e in site.events() if e["event"]["action"] == "allowed"
                   and mqtt_facts(e).get("client_id") in ("monitor-1", "clinic")]
        assert {mqtt_facts(e)["client_id"] for e in allowed} == {"monitor-1", "clinic"}, site.events()
        assert {e["wardgate"].get("source_device") for e in allowed} >= {"monitor-1", "clinic"}
        # Allowed telemetry is counted, not recorded one by one: the summaries of
        # monitor-1's two connections (paho's, closed now, and mosquitto_pub's).
        mon.close()
        deadline = time.monotonic() + 5
        while True:
            counts = [mqtt_facts(e)["counts"] for e in site.events()
                      if mqtt_facts(e).get("client_id") == "monitor-1" and "counts" in mqtt_facts(e)]
            if sum(c.get("published", 0) for c in counts) >= 4 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert sum(c.get("published", 0) for c in counts) == 4, counts
        assert sum(c.get("published_bytes", 0) for c in counts) == sum(len(p) for p, _ in sent.values())
        assert not [e for e in site.events() if mqtt_facts(e).get("packet") == "PUBLISH"
                    and e["event"]["action"] == "allowed" and "command" not in mqtt_facts(e)]


@pytest.mark.parametrize("version", VERSIONS)
def test_mosquitto_sub_as_clinic_receives_vitals(path_site, version):
    site = path_site
    v = "mqttv5" if version == 5 else "mqttv311"
    sub = tool_sub(site, "clinic", "home/+/vitals/#", count=1, version=v, timeout=15)
    try:
        # mosquitto_sub has no "subscribed" signal: publish until it has its message.
        deadline = time.monotonic() + 10
        while sub.poll() is None and time.monotonic() < deadline:
            r = tool_pub(site, "monitor-2", "home/monitor-2/vitals/heart-rate", "64", qos=1, version=v)
            assert r.returncode == 0, r.stdout + r.stderr
            time.sleep(0.3)
        out, err = sub.communicate(timeout=15)
    finally:
        if sub.poll() is None:
            sub.kill()
            sub.wait(5)
    assert sub.returncode == 0, err
    assert out.splitlines()[0] == "home/monitor-2/vitals/heart-rate 64"


@pytest.mark.parametrize("version", VERSIONS)
def test_retained_status_is_delivered_to_a_later_subscriber(path_site, version):
    site = path_site
    mon = site.paho("monitor-1", version=version)
    connected(mon)
    assert mon.publish("home/monitor-1/status", b"online", qos=1, retain=True) == 0
    clinic = site.paho("clinic", version=version)
    connected(clinic)
    assert clinic.subscribe("home/+/status", qos=1) == [1]
    got = clinic.receive(1)
    assert [(m.topic, m.payload, m.retain) for m in got] == [("home/monitor-1/status", b"online", True)]
    if site.gw:
        assert refusals(site) == []


@pytest.mark.parametrize("version", VERSIONS)
def test_will_is_published_when_the_monitor_drops(path_site, version):
    site = path_site
    clinic = site.paho("clinic", version=version)
    connected(clinic)
    assert clinic.subscribe("home/+/status", qos=1) == [1]
    mon = site.raw("monitor-1", version=version)
    rc, _, _ = mon.connect("monitor-1", will=("home/monitor-1/status", b"offline: link lost", 1, False))
    assert rc == 0
    # The monitor drops off without a DISCONNECT: the broker publishes its will.
    mon.sock.shutdown(socket.SHUT_RDWR)
    mon.close()
    got = clinic.receive(1, timeout=10)
    assert [(m.topic, m.payload) for m in got] == [("home/monitor-1/status", b"offline: link lost")]
    if site.gw:
        assert refusals(site) == []


@pytest.mark.parametrize("version", VERSIONS)
def test_session_resumption_delivers_a_queued_qos1_message(path_site, version):
    site = path_site
    clinic = site.paho("clinic", version=version, clean=False)
    connected(clinic, session_expiry=300)
    assert clinic.subscribe("home/+/vitals/#", qos=1) == [1]
    clinic.close()
    mon = site.paho("monitor-1", version=version)
    connected(mon)
    assert mon.publish("home/monitor-1/vitals/ecg", b"queued-while-away", qos=1) == 0
    again = site.paho("clinic", version=version, clean=False)
    rc, flags = connected(again, session_expiry=300)
    assert flags.session_present
    got = again.receive(1, timeout=10)
    assert [(m.topic, m.payload, m.qos) for m in got] == [("home/monitor-1/vitals/ecg", b"queued-while-away", 1)]
    if site.gw:
        assert refusals(site) == []


def test_v5_properties_pass_through(path_site):
    site = path_site
    clinic = site.paho("clinic", version=5)
    connected(clinic)
    assert clinic.subscribe("home/+/vitals/#", qos=1) == [1]
    mon = site.paho("monitor-1", version=5)
    connected(mon)
    p = mon.props("PUBLISH", UserProperty=[("unit", "bpm"), ("seq", "7"), ("unit", "again")],
                  MessageExpiryInterval=120, ContentType="text/plain", PayloadFormatIndicator=1,
                  CorrelationData=b"\x00corr\xff")
    assert mon.publish("home/monitor-1/vitals/heart-rate", b"72", qos=1, properties=p) == 0
    [m] = clinic.receive(1)
    assert m.payload == b"72"
    assert m.properties.UserProperty == [("unit", "bpm"), ("seq", "7"), ("unit", "again")]
    assert 0 < m.properties.MessageExpiryInterval <= 120
    assert m.properties.ContentType == "text/plain"
    assert m.properties.PayloadFormatIndicator == 1
    assert m.properties.CorrelationData == b"\x00corr\xff"
    if site.gw:
        assert refusals(site) == []


@pytest.fixture
def broker_alone(tmp_path):
    s = MqttSite(tmp_path, direct=True)
    yield s
    s.close()


@pytest.mark.parametrize("version", VERSIONS)
def test_baseline_the_broker_alone_allows_what_wardgate_refuses(broker_alone, version):
    """Without wardgate, mosquitto (allow_anonymous) lets a device pose as
    another, subscribe to everything, write another patient's topic and remap a
    topic alias: the refusals below are wardgate's doing, and the raw client's
    packets are ones a real broker accepts."""
    site = broker_alone
    watch = spy(site)
    rogue = site.raw("monitor-2", version=version)
    rc, _, connack = rogue.connect("monitor-1")
    assert rc == 0
    assert rogue.subscribe(["#", "$SYS/#"], qos=1) == [1, 1]
    assert rogue.publish("home/monitor-1/vitals/heart-rate", b"forged", qos=1, pid=1) == 0
    assert rogue.publish("home/monitor-1/status", b"forged", qos=1, pid=2, retain=True) == 0
    assert rogue.publish("home/monitor-1/status", b"", qos=1, pid=3, retain=True) == 0  # clear it
    if version == 5:
        assert connack.get("topic_alias_maximum", 0) >= 1, connack
        a = [("topic_alias", 1)]
        assert rogue.publish("home/monitor-2/vitals/ecg", b"set", qos=1, pid=4, publish_props=a) == 0
        assert rogue.publish("home/monitor-1/vitals/ecg", b"remap", qos=1, pid=5, publish_props=a) == 0
        assert rogue.publish("", b"via-alias", qos=2, pid=6, publish_props=a) == 0
    got = [(m.topic, m.payload) for m in watch.drain(quiet=1.0)]
    assert ("home/monitor-1/vitals/heart-rate", b"forged") in got
    if version == 5:
        assert ("home/monitor-1/vitals/ecg", b"via-alias") in got
    empty = site.raw("monitor-1", version=version)
    assert empty.connect("")[0] == 0
    creds = site.raw("monitor-1", version=version)
    assert creds.connect("monitor-1b", username="u", password="p")[0] == 0


# --- Identity: client ids and credentials -------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_client_id_of_another_device_is_refused(site, version):
    # monitor-2 (127.0.0.22) presents monitor-1's client id.
    raw = site.raw("monitor-2", version=version)
    rc, present, _ = raw.connect("monitor-1")
    assert (rc, present) == (CONNACK_ID_REJECTED[version], False)
    assert raw.closed() is not None
    ev = assert_blocked(site, "WG-MQTT-001")
    assert ev[0]["wardgate"].get("source_device") == "monitor-2"
    assert mqtt_facts(ev[0]).get("client_id") == "monitor-1"
    # The broker never saw that CONNECT.
    assert " as monitor-1 " not in site.broker.log_text()
    # paho, as a real client sees it (it maps 3.1.1's 0x02 to 5.0's 0x85).
    p = site.paho("monitor-2", client_id="monitor-1", version=version)
    assert p.connect()[0] == 0x85
    # monitor-2's own ids are fine; so is monitor-1 from its own address.
    connected(site.paho("monitor-2", client_id="monitor-2-diag", version=version))
    connected(site.paho("monitor-1", version=version))
    assert len(site.rule_events("WG-MQTT-001", n=2)) == 2


@pytest.mark.parametrize("version", VERSIONS)
def test_unknown_address_is_refused_before_any_mqtt(site, version):
    raw = site.raw("outsider", version=version)  # 127.0.0.99: no device
    try:
        raw.send(connect_packet("monitor-1", version=version))
    except OSError:
        pass  # closed before the CONNECT could be written
    seen = raw.closed()
    assert seen is not None, "connection left open"
    # Closed, at most after a CONNACK refusing it (not authorised).
    assert [p[2][1] for p in seen if p[0] == CONNACK] in ([], [CONNACK_NOT_AUTHORISED[version]]), seen
    assert_blocked(site, "WG-ACCESS-001")
    assert " as monitor-1 " not in site.broker.log_text()


@pytest.mark.parametrize("version", VERSIONS)
def test_empty_client_id_is_refused(site, version):
    raw = site.raw("monitor-1", version=version)
    rc, _, _ = raw.connect("")
    assert rc == CONNACK_ID_REJECTED[version]
    assert raw.closed() is not None
    assert_blocked(site, "WG-MQTT-001")


@pytest.mark.parametrize("version", VERSIONS)
def test_cleartext_password_is_refused_and_never_recorded(site, version, tmp_path):
    secret = "Pa55-" + secrets.token_hex(8)
    raw = site.raw("monitor-1", version=version)
    rc, _, _ = raw.connect("monitor-1", username="monitor-1", password=secret)
    assert rc == CONNACK_NOT_AUTHORISED[version]
    assert raw.closed() is not None
    p = site.paho("monitor-2", version=version)
    p.credentials("monitor-2", secret)
    assert p.connect()[0] == 0x87  # paho maps 3.1.1's 0x05 to 0x87
    evs = assert_blocked(site, "WG-MQTT-002", n=2)
    assert {e["wardgate"].get("source_device") for e in evs} == {"monitor-1", "monitor-2"}
    # The secret is nowhere: not in the events, the audit files, wardgate's log.
    assert secret not in json.dumps(site.events())
    site.gw.stop()
    leaks = [str(f) for f in (tmp_path / "data").rglob("*") if f.is_file() and secret.encode() in f.read_bytes()]
    assert leaks == []
    assert secret not in site.gw.log_text()
    assert " as monitor-1 " not in site.broker.log_text()


# --- Subscriptions -----------------------------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_rogue_subscriptions_are_refused_and_receive_nothing(site, version):
    rogue = site.paho("monitor-2", version=version)
    connected(rogue)
    rogue_filters = ["#", "home/+/vitals", "$SYS/#", "$share/g/#", "home/monitor-1/vitals/#", "+/+/vitals/#"]
    for f in rogue_filters:
        assert rogue.subscribe(f, qos=1) == [SUBACK_REFUSED[version]], f
    # All or nothing: an allowed filter in the same SUBSCRIBE is refused too.
    assert rogue.subscribe(["home/monitor-2/cmd/#", "#"], qos=1) == [SUBACK_REFUSED[version]] * 2
    assert len(assert_blocked(site, "WG-MQTT-004", n=len(rogue_filters) + 1)) >= len(rogue_filters) + 1
    # monitor-1's vitals and the broker's $SYS never reach it.
    mon = site.paho("monitor-1", version=version)
    connected(mon)
    for i in range(3):
        assert mon.publish("home/monitor-1/vitals/heart-rate", str(70 + i).encode(), qos=1) == 0
    assert rogue.drain(quiet=1.5) == []
    # Its own command topic is allowed on its own, and any filter within it.
    assert rogue.subscribe("home/monitor-2/cmd/#", qos=1) == [1]
    assert rogue.subscribe(["home/monitor-2/cmd/+", "home/monitor-2/cmd/pacing/rate"], qos=1) == [1, 1]


@pytest.mark.parametrize("version", VERSIONS)
def test_a_resumed_session_does_not_deliver_beyond_the_profile(site, version):
    """A session on the broker holding a subscription beyond the profile (made
    before wardgate stood in front of the broker, or under a wider profile
    before a reload) is resumed through wardgate with clean start off. No
    SUBSCRIBE crosses wardgate, yet the broker delivers on the old
    subscription: what wardgate relays must still stay within the profile."""
    from mqtt_peers import Paho

    old = Paho("monitor-2", ADDR["monitor-2"], site.broker.host, site.broker.port, version=version, clean=False)
    site.clients.append(old)
    connected(old, session_expiry=3600)
    assert old.subscribe("home/#", qos=1) == [1]  # directly on the broker
    old.close()
    rogue = site.paho("monitor-2", version=version, clean=False)
    rc, flags = connected(rogue, session_expiry=3600)
    assert flags.session_present
    mon = site.paho("monitor-1", version=version)
    connected(mon)
    assert mon.publish("home/monitor-1/vitals/heart-rate", b"73", qos=1) == 0
    got = rogue.drain(quiet=1.5)
    assert [(m.topic, m.payload) for m in got] == [], "another patient's vitals reached monitor-2"


# --- Publishes outside the profile -----------------------------------------------------

def test_publish_outside_profile_v5_is_answered_0x87(site):
    watch = spy(site)
    mon = site.raw("monitor-1", version=5)
    assert mon.connect("monitor-1")[0] == 0
    other = "home/monitor-2/vitals/heart-rate"
    assert mon.publish(other, b"forged-q1", qos=1, pid=1) == NOT_AUTHORISED
    assert mon.publish(other, b"forged-q2", qos=2, pid=2) == NOT_AUTHORISED
    assert mon.publish(other, b"forged-q0", qos=0) == 0
    # The connection goes on: an allowed publish after them is delivered.
    assert mon.publish("home/monitor-1/vitals/heart-rate", b"71", qos=1, pid=3) == 0
    got = watch.drain(quiet=1.5)
    assert [(m.topic, m.payload) for m in got] == [("home/monitor-1/vitals/heart-rate", b"71")]
    evs = assert_blocked(site, "WG-MQTT-003", n=3)
    assert len(evs) == 3
    assert {mqtt_facts(e).get("topic") for e in evs} == {other}


def test_publish_outside_profile_v311_qos0_dropped_qos1_closes(site):
    watch = spy(site)
    mon = site.raw("monitor-1", version=311)
    assert mon.connect("monitor-1")[0] == 0
    other = "home/monitor-2/vitals/heart-rate"
    mon.publish(other, b"forged-q0", qos=0)
    # QoS 0: dropped, recorded, the connection stays (a PINGREQ is answered).
    mon.send(packet(12, 0, b""))
    assert mon.read()[0] == 13
    # QoS 1: 3.1.1 has no refusal code: the connection is closed, no PUBACK.
    mon.send(publish_packet(other, b"forged-q1", qos=1, pid=7, version=311))
    seen = mon.closed()
    assert seen is not None, "connection left open"
    assert [p for p in seen if p[0] == PUBACK] == []
    assert watch.drain(quiet=1.5) == []
    assert len(assert_blocked(site, "WG-MQTT-003", n=2)) == 2


def test_qos_above_max_qos_v5_is_answered_not_authorised(site):
    # docs/rules.md WG-MQTT-007: a PUBREC cannot carry 0x9B (QoS not
    # supported is a CONNACK/DISCONNECT code, MQTT 5 3.5.2.1), so 0x87.
    watch = spy(site)
    g = site.raw("glucometer-1", version=5)
    assert g.connect("glucometer-1")[0] == 0
    assert g.publish("home/glucometer-1/vitals/glucose", b"5.4", qos=2, pid=1) == 0x87  # not authorised
    assert_blocked(site, "WG-MQTT-007")
    assert g.publish("home/glucometer-1/vitals/glucose", b"5.5", qos=1, pid=2) == 0
    assert [(m.topic, m.payload) for m in watch.drain(quiet=1.5)] == [("home/glucometer-1/vitals/glucose", b"5.5")]


def test_qos_above_max_qos_v311_closes(site):
    watch = spy(site)
    g = site.raw("glucometer-1", version=311)
    assert g.connect("glucometer-1")[0] == 0
    assert g.publish("home/glucometer-1/vitals/glucose", b"5.4", qos=2, pid=1) is None and g.eof
    assert_blocked(site, "WG-MQTT-007")
    assert watch.drain(quiet=1.5) == []


def test_payload_over_max_payload_bytes_is_refused_v5(site):
    watch = spy(site)
    mon = site.raw("monitor-1", version=5)
    assert mon.connect("monitor-1")[0] == 0
    # Within the packet limit, over the profile's payload limit.
    rc = mon.publish("home/monitor-1/vitals/ecg", b"x" * (MAX_PAYLOAD + 1), qos=1, pid=1)
    assert rc in (NOT_AUTHORISED, 0x95), hex(rc) if rc is not None else rc  # TODO(spec): which code
    assert_blocked(site, "WG-MQTT-008")
    assert mon.publish("home/monitor-1/vitals/ecg", b"x" * MAX_PAYLOAD, qos=1, pid=2) == 0
    assert [(m.topic, len(m.payload)) for m in watch.drain(quiet=1.5)] == [("home/monitor-1/vitals/ecg", MAX_PAYLOAD)]


@pytest.mark.parametrize("version", VERSIONS)
def test_retained_outside_retain_is_refused(site, version):
    mon = site.raw("monitor-1", version=version)
    assert mon.connect("monitor-1")[0] == 0
    rc = mon.publish("home/monitor-1/vitals/heart-rate", b"70", qos=1, retain=True)
    if version == 5:
        assert rc == NOT_AUTHORISED
    else:
        assert rc is None and mon.eof, "3.1.1: the connection must be closed"
    assert_blocked(site, "WG-MQTT-005")
    # Nothing was retained: a later subscriber on the broker itself gets nothing.
    assert spy(site, "home/#").drain(quiet=1.5) == []


@pytest.mark.parametrize("version", VERSIONS)
def test_will_outside_will_topics_is_refused_at_connack(site, version):
    mon = site.raw("monitor-1", version=version)
    rc, _, _ = mon.connect("monitor-1", will=("home/monitor-1/vitals/heart-rate", b"0", 0, False))
    assert rc == CONNACK_NOT_AUTHORISED[version]
    assert mon.closed() is not None
    # A glucometer has no will topics at all.
    g = site.raw("glucometer-1", version=version)
    rc, _, _ = g.connect("glucometer-1", will=("home/glucometer-1/vitals/glucose", b"0", 0, False))
    assert rc == CONNACK_NOT_AUTHORISED[version]
    assert len(assert_blocked(site, "WG-MQTT-006", n=2)) == 2
    # The allowed will topic, retained where retain allows it: accepted.
    ok = site.raw("monitor-1", version=version)
    assert ok.connect("monitor-1", will=("home/monitor-1/status", b"offline", 1, True))[0] == 0


# --- Topic aliases (MQTT 5) --------------------------------------------------------------

def test_topic_alias_cannot_be_remapped_to_a_forbidden_topic(site):
    watch = spy(site)
    clinic = site.paho("clinic", version=5)
    connected(clinic)
    assert clinic.subscribe("home/+/vitals/#", qos=1) == [1]
    mon = site.raw("monitor-1", version=5)
    rc, _, connack = mon.connect("monitor-1")
    assert rc == 0
    assert connack.get("topic_alias_maximum", 0) >= 1, f"no topic aliases offered: {connack}"
    mine, other = "home/monitor-1/vitals/ecg", "home/monitor-2/vitals/ecg"
    assert mon.publish(mine, b"alias-set", qos=1, pid=1, publish_props=[("topic_alias", 1)]) == 0
    assert mon.publish("", b"alias-use", qos=1, pid=2, publish_props=[("topic_alias", 1)]) == 0
    got = clinic.receive(2)
    assert [(m.topic, m.payload) for m in got] == [(mine, b"alias-set"), (mine, b"alias-use")]
    # Re-map alias 1 to another patient's topic: refused (reason code, or the
    # connection closed as for a malformed packet).
    rc = mon.publish(other, b"alias-remap", qos=1, pid=3, publish_props=[("topic_alias", 1)])
    assert rc is None or rc >= 0x80, rc
    if rc is None:
        assert mon.last is not None and mon.last[2][:1] == b"\x94", mon.last  # DISCONNECT topic alias invalid
    if rc is not None:
        # Still open: alias 1 still means the monitor's own topic, or is refused.
        rc = mon.publish("", b"alias-after", qos=1, pid=4, publish_props=[("topic_alias", 1)])
    reached = [(m.topic, m.payload) for m in watch.drain(quiet=1.5)]
    assert (other, b"alias-remap") not in reached
    assert all(t == mine for t, _ in reached), reached
    assert not any(t == other for t, _ in reached)
    rules = site.rules()
    assert "WG-MQTT-P07" in rules or "WG-MQTT-003" in rules, rules


def test_topic_alias_set_by_a_refused_publish_is_not_usable(site):
    watch = spy(site)
    mon = site.raw("monitor-1", version=5)
    rc, _, connack = mon.connect("monitor-1")
    assert rc == 0 and connack.get("topic_alias_maximum", 0) >= 2, connack
    other = "home/monitor-2/vitals/ecg"
    assert mon.publish(other, b"refused", qos=1, pid=1, publish_props=[("topic_alias", 2)]) == NOT_AUTHORISED
    # The alias that refused PUBLISH tried to set: never resolves to the forbidden topic.
    rc = mon.publish("", b"via-alias", qos=1, pid=2, publish_props=[("topic_alias", 2)])
    assert rc is None or rc >= 0x80, rc
    assert watch.drain(quiet=1.5) == []


def test_topic_alias_of_a_refused_publish_is_refused_by_wardgate_not_the_broker(site):
    """A PUBLISH that sets alias 3 on the monitor's own topic is refused for its
    size: wardgate does not forward it, so the broker never learns alias 3. A
    later PUBLISH using alias 3 alone cannot be resolved by the broker: wardgate
    must refuse it itself (and record why) rather than forward a packet the
    broker will answer by disconnecting the monitor."""
    watch = spy(site)
    mon = site.raw("monitor-1", version=5)
    rc, _, connack = mon.connect("monitor-1")
    assert rc == 0 and connack.get("topic_alias_maximum", 0) >= 3, connack
    mine = "home/monitor-1/vitals/ecg"
    assert mon.publish(mine, b"x" * (MAX_PAYLOAD + 1), qos=1, pid=1, publish_props=[("topic_alias", 3)]) == NOT_AUTHORISED
    rc = mon.publish("", b"small", qos=1, pid=2, publish_props=[("topic_alias", 3)])
    assert rc is None or rc >= 0x80, rc
    assert watch.drain(quiet=1.0) == []
    mqtt_rules = [r for r in site.rules() if r.startswith("WG-MQTT") and r != "WG-MQTT-008"]
    assert mqtt_rules, ("the alias-only PUBLISH was forwarded to a broker that never saw alias 3; "
                        f"broker log: {site.broker.log_text()[-400:]!r}; rules: {site.rules()}")


# --- Protocol state and size ---------------------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_publish_before_connect_closes(site, version):
    watch = spy(site)
    raw = site.raw("monitor-1", version=version)
    raw.send(publish_packet("home/monitor-1/vitals/ecg", b"early", qos=0, version=version))
    assert raw.closed() is not None
    assert_blocked(site, "WG-MQTT-016")
    assert watch.drain(quiet=1.0) == []


@pytest.mark.parametrize("version", VERSIONS)
def test_second_connect_closes(site, version):
    raw = site.raw("monitor-1", version=version)
    assert raw.connect("monitor-1")[0] == 0
    raw.send(connect_packet("monitor-1", version=version))
    seen = raw.closed()
    assert seen is not None, "connection left open"
    assert [p for p in seen if p[0] == CONNACK] == []
    if version == 5:
        assert disconnect_reason(seen) == PROTOCOL_ERROR
    else:
        assert disconnect_reason(seen) is None  # 3.1.1: a server never sends DISCONNECT
    assert_blocked(site, "WG-MQTT-016")


@pytest.mark.parametrize("version", VERSIONS)
def test_publish_to_a_wildcard_topic_closes(site, version):
    watch = spy(site)
    raw = site.raw("monitor-1", version=version)
    assert raw.connect("monitor-1")[0] == 0
    raw.send(publish_packet("home/monitor-1/vitals/#", b"to-many", qos=0, version=version))
    assert raw.closed() is not None
    assert site.rule_events("WG-MQTT-P04"), site.rules()
    assert watch.drain(quiet=1.0) == []


def test_slow_packet_and_silent_client_time_out(site):
    # A packet started and never finished: the frame timeout (3 s in this site).
    slow = site.raw("monitor-1", version=5)
    assert slow.connect("monitor-1")[0] == 0
    slow.send(bytes([0x30, 0x20]) + b"\x00\x19home/monitor")
    t0 = time.monotonic()
    assert slow.closed(timeout=10) is not None
    assert 2 <= time.monotonic() - t0 < 8
    assert site.rule_events("WG-CONN-001"), site.rules()
    # Keep Alive 2 s and then silence: closed after 1.5 x 2 s.
    quiet = site.raw("monitor-2", version=311)
    assert quiet.connect("monitor-2", keepalive=2)[0] == 0
    t0 = time.monotonic()
    assert quiet.closed(timeout=10) is not None
    assert 2.5 <= time.monotonic() - t0 < 8
    assert site.rule_events("WG-CONN-002"), site.rules()


def test_more_in_flight_than_receive_maximum_closes(site):
    raw = site.raw("monitor-1", version=5)
    rc, _, connack = raw.connect("monitor-1")
    assert rc == 0
    limit = connack.get("receive_maximum", 65535)
    assert limit < 1000, connack  # mosquitto announces 20 by default
    # limit + 5 QoS 1 PUBLISHes in one write, before any PUBACK can come back.
    raw.send(b"".join(publish_packet("home/monitor-1/vitals/ecg", b"%d" % i, qos=1, pid=i + 1)
                      for i in range(limit + 5)))
    seen = raw.closed()
    assert seen is not None, "connection left open"
    assert disconnect_reason(seen) in (PROTOCOL_ERROR, 0x93), seen[-1:]  # 0x93: Receive Maximum exceeded
    assert_blocked(site, "WG-MQTT-016")


def test_server_only_packet_from_a_client_closes(site):
    raw = site.raw("monitor-1", version=5)
    assert raw.connect("monitor-1")[0] == 0
    raw.send(packet(CONNACK, 0, b"\x00\x00\x00"))
    seen = raw.closed()
    assert seen is not None
    assert disconnect_reason(seen) == PROTOCOL_ERROR
    assert_blocked(site, "WG-MQTT-016")


@pytest.mark.parametrize("version", VERSIONS)
def test_oversized_packet_is_refused(site, version):
    watch = spy(site)
    raw = site.raw("monitor-1", version=version)
    assert raw.connect("monitor-1")[0] == 0
    raw.send(publish_packet("home/monitor-1/vitals/ecg", b"y" * (MAX_PACKET + 10), qos=0, version=version))
    seen = raw.closed()
    assert seen is not None
    assert disconnect_reason(seen) == (0x95 if version == 5 else None)  # packet too large
    # One announcing 1 MiB and sending none of it: refused from its fixed header.
    raw2 = site.raw("monitor-1", version=version)
    assert raw2.connect("monitor-1")[0] == 0
    raw2.send(bytes([0x30]) + bytes([0x80, 0x80, 0x40]))  # PUBLISH, Remaining Length 1 MiB
    t0 = time.monotonic()
    assert raw2.closed(timeout=5) is not None
    assert time.monotonic() - t0 < 2.5, "refused only after a time-out, not from the header"
    assert len(site.rule_events("WG-MQTT-P02", n=2)) == 2, site.rules()
    assert watch.drain(quiet=1.0) == []


# --- Command authority -------------------------------------------------------------------

def v5_command(site, clinic, topic, payload, pid=None, ts=None, nonce=None, qos=1):
    ts, nonce, sig = sign_command(site.key, topic, payload, ts=ts, nonce=nonce)
    props = clinic.props("PUBLISH", UserProperty=v5_signature_props(ts, nonce, sig))
    return clinic.publish(topic, payload, qos=qos, properties=props)


def test_signed_command_v5_is_delivered_and_a_replay_refused(site):
    mon = site.paho("monitor-1", version=5)
    connected(mon)
    assert mon.subscribe("home/monitor-1/cmd/#", qos=1) == [1]
    clinic = site.paho("clinic", version=5)
    connected(clinic)
    topic, cmd = "home/monitor-1/cmd/interrogate", b'{"op":"interrogate","id":17}'
    assert v5_command(site, clinic, topic, cmd) == 0
    [m] = mon.receive(1)
    assert (m.topic, m.payload) == (topic, cmd)
    assert [k for k, _ in m.properties.UserProperty] == ["wg-signer", "wg-ts", "wg-nonce", "wg-sig"]
    ok = [e for e in site.events() if e["event"]["action"] == "allowed" and "clinic-key" in json.dumps(mqtt_facts(e))]
    assert ok, f"no allowed command record naming the signer: {site.events()}"
    assert "monitor-1" in json.dumps(mqtt_facts(ok[0])) and "clinic" in json.dumps(mqtt_facts(ok[0]))
    # The same bytes again (same nonce): a replay.
    raw = site.raw("clinic", version=5)
    assert raw.connect("clinic-replayer")[0] == 0x85  # not one of the clinic's client ids
    raw = site.raw("clinic", version=5)
    clinic.close()
    assert raw.connect("clinic")[0] == 0
    ts, nonce = dict(m.properties.UserProperty)["wg-ts"], dict(m.properties.UserProperty)["wg-nonce"]
    sig = dict(m.properties.UserProperty)["wg-sig"]
    assert raw.publish(topic, cmd, qos=1, pid=9,
                       publish_props=[("user", kv) for kv in v5_signature_props(ts, nonce, sig)]) == NOT_AUTHORISED
    assert_blocked(site, "WG-MQTT-011")
    assert mon.drain(quiet=1.5) == []


def test_a_command_replayed_after_a_gateway_restart_is_refused(site):
    """"Unique per signer within the window (replays refused)": a restart of
    wardgate within the window must not let a captured command pass again."""
    watch = spy(site, "home/+/cmd/#")  # on the broker: survives wardgate's restart
    topic, cmd = "home/monitor-1/cmd/pacing", b'{"op":"set-rate","bpm":60}'
    ts, nonce, sig = sign_command(site.key, topic, cmd)
    user = [("user", kv) for kv in v5_signature_props(ts, nonce, sig)]
    clinic = site.raw("clinic", version=5)
    assert clinic.connect("clinic")[0] == 0
    assert clinic.publish(topic, cmd, qos=1, pid=1, publish_props=user) == 0
    assert len(watch.receive(1)) == 1
    clinic.close()
    site.restart_gateway()
    again = site.raw("clinic", version=5)
    assert again.connect("clinic")[0] == 0
    rc = again.publish(topic, cmd, qos=1, pid=2, publish_props=user)
    reached = watch.drain(quiet=1.5)
    assert rc is not None and rc >= 0x80 and reached == [], \
        f"the same signed command passed again after a restart (PUBACK {rc}, {len(reached)} reached the broker)"


@pytest.mark.parametrize("case", ["unsigned", "tampered", "wrong-topic", "unknown-signer", "bad-base64",
                                  "repeated-property", "stale", "future"])
def test_invalid_command_v5_is_refused(site, case):
    mon = site.paho("monitor-1", version=5)
    connected(mon)
    assert mon.subscribe("home/monitor-1/cmd/#", qos=1) == [1]
    clinic = site.raw("clinic", version=5)
    assert clinic.connect("clinic")[0] == 0
    topic, cmd = "home/monitor-1/cmd/pacing", b'{"op":"set-rate","bpm":70}'
    ts = int(time.time())
    rule = "WG-MQTT-010"
    if case == "stale":
        ts, rule = ts - 1000, "WG-MQTT-012"
    elif case == "future":
        ts, rule = ts + 1000, "WG-MQTT-012"
    ts, nonce, sig = sign_command(site.key, topic if case != "wrong-topic" else "home/monitor-2/cmd/pacing",
                                  cmd, ts=ts)
    user = v5_signature_props(ts, nonce, sig)
    payload = cmd
    if case == "unsigned":
        user = []
    elif case == "tampered":
        payload = cmd.replace(b"70", b"170")
    elif case == "unknown-signer":
        user = v5_signature_props(ts, nonce, sig, signer="someone-else")
    elif case == "bad-base64":
        user = v5_signature_props(ts, nonce, "!!" + sig[2:])
    elif case == "repeated-property":
        user = user + [("wg-nonce", nonce)]
    rc = clinic.publish(topic, payload, qos=1, pid=1, publish_props=[("user", kv) for kv in user])
    assert rc == NOT_AUTHORISED, rc
    assert_blocked(site, rule)
    assert mon.drain(quiet=1.5) == []


def test_signed_command_v311_envelope_is_delivered_byte_for_byte_and_a_replay_closes(site):
    mon = site.paho("monitor-1", version=311)
    connected(mon)
    assert mon.subscribe("home/monitor-1/cmd/#", qos=1) == [1]
    clinic = site.raw("clinic", version=311)
    assert clinic.connect("clinic")[0] == 0
    topic, cmd = "home/monitor-1/cmd/interrogate", b'{"op":"interrogate","id":18}'
    ts, nonce, sig = sign_command(site.key, topic, cmd)
    envelope = v311_envelope(cmd, ts, nonce, sig)
    assert clinic.publish(topic, envelope, qos=1, pid=1) == 0
    [m] = mon.receive(1)
    assert (m.topic, m.payload) == (topic, envelope)  # forwarded as sent
    # Replayed: no refusal code in 3.1.1, the connection is closed.
    clinic.send(publish_packet(topic, envelope, qos=1, pid=2, version=311))
    seen = clinic.closed()
    assert seen is not None and [p for p in seen if p[0] == PUBACK] == []
    assert_blocked(site, "WG-MQTT-011")
    # Unsigned, from a new connection: closed too.
    clinic = site.raw("clinic", version=311)
    assert clinic.connect("clinic")[0] == 0
    assert clinic.publish(topic, cmd, qos=1, pid=3) is None
    assert_blocked(site, "WG-MQTT-010")
    assert mon.drain(quiet=1.5) == []


def test_signed_command_sent_by_topic_alias_is_judged_on_its_topic(site):
    mon = site.paho("monitor-1", version=5)
    connected(mon)
    assert mon.subscribe("home/monitor-1/cmd/#", qos=1) == [1]
    clinic = site.raw("clinic", version=5)
    rc, _, connack = clinic.connect("clinic")
    assert rc == 0 and connack.get("topic_alias_maximum", 0) >= 1
    topic = "home/monitor-1/cmd/interrogate"
    for pid, (body, sent_topic) in enumerate([(b"first", topic), (b"second", "")], start=1):
        ts, nonce, sig = sign_command(site.key, topic, body)  # the signature covers the real topic
        props = [("topic_alias", 1)] + [("user", kv) for kv in v5_signature_props(ts, nonce, sig)]
        assert clinic.publish(sent_topic, body, qos=1, pid=pid, publish_props=props) == 0, body
    # Alias-only, unsigned: still a command to monitor-1, refused.
    assert clinic.publish("", b"third", qos=1, pid=3, publish_props=[("topic_alias", 1)]) == NOT_AUTHORISED
    assert_blocked(site, "WG-MQTT-010")
    got = mon.receive(3, timeout=3)
    assert [(m.topic, m.payload) for m in got] == [(topic, b"first"), (topic, b"second")]


def test_signed_command_v5_may_use_the_envelope(site):
    mon = site.paho("monitor-1", version=5)
    connected(mon)
    assert mon.subscribe("home/monitor-1/cmd/#", qos=1) == [1]
    clinic = site.paho("clinic", version=5)
    connected(clinic)
    topic, cmd = "home/monitor-1/cmd/interrogate", b"interrogate"
    ts, nonce, sig = sign_command(site.key, topic, cmd)
    envelope = v311_envelope(cmd, ts, nonce, sig)
    assert clinic.publish(topic, envelope, qos=1) == 0
    [m] = mon.receive(1)
    assert m.payload == envelope
    # With any wg-* property, the properties are the signature: an envelope alone is not enough.
    ts, nonce, sig = sign_command(site.key, topic, cmd)
    envelope = v311_envelope(cmd, ts, nonce, sig)
    props = clinic.props("PUBLISH", UserProperty=[("wg-signer", "clinic-key")])
    assert clinic.publish(topic, envelope, qos=1, properties=props) == NOT_AUTHORISED
    assert_blocked(site, "WG-MQTT-010")


# docs/mqtt.md's worked example: RFC 8032's first test key (its secret is public).
EXAMPLE_SEED = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
EXAMPLE_SIG = "4ezAhhORAAH0NwIAB/hCWGC0GftFaoLrUbvOXIAbaAApS2/LbDX7M/qQotZsG2tPwQVExXhPXsjVMKf8MZJKBw=="


def cli_sign(key_file, topic, payload, fmt, ts=None, nonce=None):
    args = [wardgate_bin(), "command", "sign", "--key", str(key_file), "--signer", "clinic-key",
            "--topic", topic, "--payload", payload, "--format", fmt]
    if ts is not None:
        args += ["--ts", str(ts)]
    if nonce is not None:
        args += ["--nonce", nonce]
    r = subprocess.run(args, capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_python_signing_matches_wardgate_command_sign_and_the_documented_example(tmp_path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key_file = tmp_path / "example.key"
    key_file.write_text(EXAMPLE_SEED + "\n")
    key_file.chmod(0o600)
    topic, payload, ts, nonce = "home/monitor-1/cmd/interrogate", '{"op":"interrogate"}', 1767225600, "n0nce-2026-01-01a"
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(EXAMPLE_SEED))
    assert sign_command(key, topic, payload.encode(), ts=ts, nonce=nonce) == (ts, nonce, EXAMPLE_SIG)
    v5 = cli_sign(key_file, topic, payload, "v5", ts, nonce).decode().splitlines()
    assert v5 == [f"{k}={v}" for k, v in v5_signature_props(ts, nonce, EXAMPLE_SIG)]
    envelope = cli_sign(key_file, topic, payload, "envelope", ts, nonce)
    assert envelope == v311_envelope(payload.encode(), ts, nonce, EXAMPLE_SIG)
    assert ROOT.joinpath("docs", "mqtt.md").read_text().count(EXAMPLE_SIG) >= 2


def test_command_signed_by_the_cli_is_delivered(site, tmp_path):
    from cryptography.hazmat.primitives import serialization

    key_file = tmp_path / "clinic.key"
    key_file.write_text(site.key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                               serialization.NoEncryption()).hex() + "\n")
    key_file.chmod(0o600)
    mon = site.paho("monitor-1", version=5)
    connected(mon)
    assert mon.subscribe("home/monitor-1/cmd/#", qos=1) == [1]
    clinic = site.paho("clinic", version=5)
    connected(clinic)
    topic, cmd = "home/monitor-1/cmd/interrogate", '{"op":"interrogate","id":19}'
    lines = cli_sign(key_file, topic, cmd, "v5").decode().splitlines()
    user = [tuple(line.split("=", 1)) for line in lines]
    assert clinic.publish(topic, cmd.encode(), qos=1, properties=clinic.props("PUBLISH", UserProperty=user)) == 0
    envelope = cli_sign(key_file, topic, cmd, "envelope")
    assert clinic.publish(topic, envelope, qos=1) == 0
    got = mon.receive(2)
    assert [m.payload for m in got] == [cmd.encode(), envelope]
    assert refusals(site) == []


@pytest.mark.parametrize("version", VERSIONS)
def test_command_from_a_device_not_a_commander_is_refused(site, version):
    mon1 = site.paho("monitor-1", version=5)
    connected(mon1)
    assert mon1.subscribe("home/monitor-1/cmd/#", qos=1) == [1]
    watch = spy(site, "home/+/cmd/#")
    mon2 = site.raw("monitor-2", version=version)
    assert mon2.connect("monitor-2")[0] == 0
    topic, cmd = "home/monitor-1/cmd/pacing", b'{"op":"set-rate","bpm":40}'
    # Even signed with the clinic's key (stolen), a monitor is no commander.
    ts, nonce, sig = sign_command(site.key, topic, cmd)
    if version == 5:
        rc = mon2.publish(topic, cmd, qos=1, publish_props=[("user", kv) for kv in v5_signature_props(ts, nonce, sig)])
        assert rc == NOT_AUTHORISED
    else:
        assert mon2.publish(topic, v311_envelope(cmd, ts, nonce, sig), qos=1) is None
    ev = assert_blocked(site, "WG-MQTT-009")
    assert ev[0]["wardgate"].get("source_device") == "monitor-2"
    assert mon1.drain(quiet=1.5) == [] and watch.drain(quiet=0.5) == []


@pytest.mark.parametrize("version", VERSIONS)
def test_command_budget_per_hour(site, version):
    mon = site.paho("monitor-2", version=5)
    connected(mon)
    assert mon.subscribe("home/monitor-2/cmd/#", qos=1) == [1]
    clinic = site.raw("clinic", version=version)
    assert clinic.connect("clinic")[0] == 0

    def send(c, target, i, pid):
        topic, cmd = f"home/{target}/cmd/ping", f'{{"op":"ping","n":{i}}}'.encode()
        ts, nonce, sig = sign_command(site.key, topic, cmd)
        if version == 5:
            return c.publish(topic, cmd, qos=1, pid=pid, publish_props=[("user", kv) for kv in v5_signature_props(ts, nonce, sig)])
        return c.publish(topic, v311_envelope(cmd, ts, nonce, sig), qos=1, pid=pid)

    for i in range(COMMANDS_PER_HOUR):
        assert send(clinic, "monitor-2", i, i + 1) == 0, i
    rc = send(clinic, "monitor-2", 99, 50)
    if version == 5:
        assert rc == QUOTA_EXCEEDED
    else:
        assert rc is None and clinic.eof
    evs = site.rule_events("WG-MQTT-013")
    assert evs, site.rules()
    assert all(e["event"]["action"] in ("blocked", "alerted") for e in evs)
    got = mon.receive(COMMANDS_PER_HOUR + 1, timeout=3)
    assert len(got) == COMMANDS_PER_HOUR
    # Another device's budget is its own.
    if version != 5:
        clinic = site.raw("clinic", version=version)
        assert clinic.connect("clinic")[0] == 0
    assert send(clinic, "monitor-1", 100, 60) == 0


# --- Telemetry sanity (alerts, forwarded) -------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_implausible_and_malformed_readings_are_forwarded_and_alerted(site, version):
    clinic = site.paho("clinic", version=version)
    connected(clinic)
    assert clinic.subscribe("home/+/vitals/#", qos=1) == [1]
    mon = site.paho("monitor-1", version=version)
    connected(mon)
    hr, bp = "home/monitor-1/vitals/heart-rate", "home/monitor-1/vitals/bp"
    readings = [
        (hr, b"72"),                                                   # fine
        (hr, b"400"),                                                  # 015
        (hr, b"seventy"),                                              # 014
        (bp, b'{"systolic": 120, "diastolic": 80, "unit": "mmHg"}'),   # fine
        (bp, b'{"systolic": 120, "diastolic":'),                        # 014: not JSON
        (bp, b'{"systolic": 120, "diastolic": 80}'),                    # 014: unit required
        (bp, b'{"systolic": 400, "diastolic": 80, "unit": "mmHg"}'),   # 015
    ]
    for topic, payload in readings:
        assert mon.publish(topic, payload, qos=1) == 0, payload
    got = clinic.receive(len(readings), timeout=10)
    assert [(m.topic, m.payload) for m in got] == readings  # all forwarded, as sent
    implausible = site.rule_events("WG-MQTT-015", n=2)
    malformed = site.rule_events("WG-MQTT-014", n=3)
    assert len(implausible) == 2 and len(malformed) == 3, site.rules()
    assert all(e["event"]["action"] == "alerted" for e in implausible + malformed)
    assert all(mqtt_facts(e).get("topic") in (hr, bp) for e in implausible + malformed)
    assert refusals(site) == []


# --- The documented example ------------------------------------------------------------

def test_example_home_monitor_is_accepted_by_check():
    r = subprocess.run([wardgate_bin(), "check", "--config", str(ROOT / "examples" / "home-monitor.toml")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 route(s)" in r.stdout
