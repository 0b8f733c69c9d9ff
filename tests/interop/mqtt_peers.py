"""MQTT peers for the inline MQTT proxy's interop tests (test_mqtt.py).

- `Mosquitto`: Debian's real broker (/usr/sbin/mosquitto) on a free port of
  127.0.0.40, with a generated configuration (anonymous, no persistence, a log
  file in the test's tmp dir).
- `mqtt_site()`: the wardgate configuration of those tests (docs/mqtt.md), from
  a template: two home monitors, a glucometer, the clinic server as commander,
  each at its own 127.0.0.x address, and an Ed25519 command signer.
- `Paho`: a paho-mqtt 2.1 client (3.1.1 or 5) bound to a device's address,
  with blocking, time-bounded helpers over its callbacks.
- `Raw`: MQTT packets written byte by byte over a socket, for what a
  well-behaved client library never sends (a PUBLISH before CONNECT, topic
  alias re-mapping) and for the exact bytes a refusal puts on the wire (paho
  maps 3.1.1 CONNACK codes to MQTT 5 reason codes, and ignores a PUBREC's).
- `sign_command()`: the signed-command format of docs/mqtt.md, in Python with
  the `cryptography` package.

Every wait here is bounded.
"""
import base64
import os
import queue
import secrets
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

from conftest import Gateway, free_port, require_module, require_tool, wait_port, wardgate_bin

BROKER_HOST = "127.0.0.40"
GATEWAY_HOST = "127.0.0.1"

# Device id -> its source address (the [[device]] entries of SITE).
ADDR = {
    "monitor-1": "127.0.0.21",
    "monitor-2": "127.0.0.22",
    "glucometer-1": "127.0.0.23",
    "clinic": "127.0.0.30",
    "outsider": "127.0.0.99",  # no device
}

SIGNER = "clinic-key"
COMMANDS_PER_HOUR = 3
MAX_PAYLOAD = 4096
MAX_PACKET = 8192
WAIT = 5.0  # default bound for one wait


# --- The broker ---------------------------------------------------------------

class Mosquitto:
    """A real mosquitto on BROKER_HOST:port, started with its own config."""

    def __init__(self, tmp, host=BROKER_HOST):
        exe = require_tool("mosquitto")
        self.host = host
        self.dir = Path(tmp) / "mosquitto"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log = self.dir / "mosquitto.log"
        self.conf = self.dir / "mosquitto.conf"
        for _ in range(5):
            self.port = free_port(host)
            lines = [
                "per_listener_settings false",
                f"listener {self.port} {host}",
                "allow_anonymous true",
                "persistence false",
                f"log_dest file {self.log}",
                "log_type all",
                "connection_messages true",
            ]
            # As root mosquitto drops to the `mosquitto` user, which cannot write
            # the test's tmp dir; `user root` keeps it as it is.
            if os.geteuid() == 0:
                lines.append("user root")
            lines = self.write_conf(lines)
            self.conf.write_text("\n".join(lines) + "\n")
            self.proc = subprocess.Popen([exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE)
            try:
                wait_port(host, self.port, timeout=5)
                return
            except TimeoutError:
                self.proc.kill()
                self.proc.wait(5)
        raise RuntimeError(f"mosquitto did not start: {self.log_text()}")

    def write_conf(self, lines):
        """The configuration's lines (a subclass adds its own, such as TLS)."""
        return lines

    def log_text(self):
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


# --- Signed commands (docs/mqtt.md) --------------------------------------------

def new_signer_key():
    require_module("cryptography")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate()


def public_hex(key):
    from cryptography.hazmat.primitives import serialization

    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def signed_bytes(topic, ts, nonce, payload):
    """wardgate-command-v1\\n{topic}\\n{timestamp}\\n{nonce}\\n{payload bytes}"""
    return b"\n".join([b"wardgate-command-v1", topic.encode(), str(ts).encode(), nonce.encode()]) + b"\n" + payload


def sign_command(key, topic, payload, ts=None, nonce=None):
    """(timestamp, nonce, base64 signature) of a command."""
    ts = int(time.time()) if ts is None else ts
    nonce = nonce or secrets.token_urlsafe(12)  # 16 chars of [A-Za-z0-9_-]
    sig = base64.b64encode(key.sign(signed_bytes(topic, ts, nonce, payload))).decode()
    return ts, nonce, sig


def v5_signature_props(ts, nonce, sig, signer=SIGNER):
    """The MQTT 5 user properties carrying a signature."""
    return [("wg-signer", signer), ("wg-ts", str(ts)), ("wg-nonce", nonce), ("wg-sig", sig)]


def v311_envelope(payload, ts, nonce, sig, signer=SIGNER):
    """The MQTT 3.1.1 payload: WGSIG1 {signer} {ts} {nonce} {sig}\\n{command}."""
    return f"WGSIG1 {signer} {ts} {nonce} {sig}\n".encode() + payload


# --- wardgate's configuration ----------------------------------------------------

# @NAME@ tokens are filled in by mqtt_site(); braces are literal ({device}).
SITE_TEMPLATE = """
[gateway]
data_dir = "@DATA_DIR@"
max_frame_bytes = @MAX_FRAME@
frame_timeout_secs = 3
shutdown_grace_secs = 5

[gateway.audit]
checkpoint_every = 50
checkpoint_interval_ms = 100

[[device]]
id = "monitor-1"
kind = "pacemaker-home-monitor"
addresses = ["127.0.0.21"]
mqtt_profile = "home-monitor"

[[device]]
id = "monitor-2"
kind = "pacemaker-home-monitor"
addresses = ["127.0.0.22"]
mqtt_profile = "home-monitor"
client_ids = ["monitor-2", "monitor-2-diag"]

[[device]]
id = "glucometer-1"
kind = "glucometer"
addresses = ["127.0.0.23"]
mqtt_profile = "glucometer"

[[device]]
id = "clinic"
kind = "clinic-server"
addresses = ["127.0.0.30"]
mqtt_profile = "clinic"

[[device]]
id = "broker"
kind = "mqtt-broker"
addresses = ["127.0.0.40"]

[[mqtt_profile]]
id = "home-monitor"
publish = ["home/{device}/vitals/#", "home/{device}/status"]
subscribe = ["home/{device}/cmd/#"]
retain = ["home/{device}/status"]
will = ["home/{device}/status"]
commands = ["home/{device}/cmd/#"]
max_qos = 2
max_payload_bytes = @MAX_PAYLOAD@
commands_per_hour = @COMMANDS_PER_HOUR@
commands_per_day = 24

[[mqtt_profile.telemetry]]
topic = "home/{device}/vitals/heart-rate"
format = "number"
min = 20
max = 250

[[mqtt_profile.telemetry]]
topic = "home/{device}/vitals/bp"
format = "json"
fields = { systolic = { min = 50, max = 260 }, diastolic = { min = 30, max = 160 }, unit = { type = "string" } }

[[mqtt_profile]]
id = "glucometer"
publish = ["home/{device}/vitals/glucose"]
subscribe = []
max_qos = 1

[[mqtt_profile]]
id = "clinic"
publish = []
subscribe = ["home/+/vitals/#", "home/+/status"]

[[route]]
id = "home-broker"
protocol = "mqtt"
listen = "127.0.0.1:@LISTEN_PORT@"
upstream = "127.0.0.40:@UPSTREAM_PORT@"
senders = ["monitor-1", "monitor-2", "glucometer-1", "clinic"]
commanders = ["clinic"]
signed_commands = true
command_max_age_secs = 300
allow_cleartext_credentials = false
max_packet_bytes = @MAX_PACKET@

[[command_signer]]
id = "clinic-key"
public_key = "@SIGNER_PUB@"
commanders = ["clinic"]
"""


def mqtt_site(signer_pub, template=SITE_TEMPLATE):
    """The template as conftest.Gateway's `site` (a str.format template)."""
    s = template.replace("{", "{{").replace("}", "}}")
    for token, field in (("@DATA_DIR@", "{data_dir}"), ("@MAX_FRAME@", "{max_frame}"),
                         ("@LISTEN_PORT@", "{listen_port}"), ("@UPSTREAM_PORT@", "{upstream_port}")):
        s = s.replace(token, field)
    return (s.replace("@SIGNER_PUB@", signer_pub)
            .replace("@MAX_PAYLOAD@", str(MAX_PAYLOAD))
            .replace("@MAX_PACKET@", str(MAX_PACKET))
            .replace("@COMMANDS_PER_HOUR@", str(COMMANDS_PER_HOUR)))


def check_site(tmp, site):
    """`wardgate check` on the site: a configuration it refuses fails the test at
    once with its report (rather than after `serve` never listens)."""
    cfg = Path(tmp) / "check.toml"
    cfg.write_text(site.format(data_dir=Path(tmp) / "data", listen_port=1, upstream_port=1, max_frame=65536))
    r = subprocess.run([wardgate_bin(), "check", "--config", str(cfg)], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        pytest.fail(f"`wardgate check` refuses the MQTT site (does this wardgate have the MQTT proxy, "
                    f"issue #21?):\n{r.stdout}{r.stderr}", pytrace=False)


class MqttSite:
    """mosquitto, and `wardgate serve` in front of it with the MQTT site."""

    def __init__(self, tmp, template=SITE_TEMPLATE, direct=False):
        """direct: no wardgate; clients connect to mosquitto itself (the baseline
        that shows what a test expects is what a real broker does)."""
        self.tmp = Path(tmp)
        self.key = new_signer_key()
        self.gw = None
        self.clients = []
        self.direct_mode = direct
        site = mqtt_site(public_hex(self.key), template)
        if not direct:
            check_site(self.tmp, site)
        self.broker = Mosquitto(self.tmp)
        if direct:
            self.host, self.port = self.broker.host, self.broker.port
            return
        self.site = site
        try:
            self.gw = Gateway(self.tmp, self.broker.port, site=site)
        except BaseException:
            self.broker.stop()
            raise
        self.host, self.port = GATEWAY_HOST, self.gw.listen_port

    def restart_gateway(self):
        """Stops wardgate and starts it again on the same data_dir (a new port)."""
        self.gw.stop()
        self.gw = Gateway(self.tmp, self.broker.port, site=self.site)
        self.port = self.gw.listen_port

    # Clients, closed at teardown.
    def paho(self, device, client_id=None, version=5, **kw):
        c = Paho(client_id if client_id is not None else device, ADDR[device], self.host, self.port,
                 version=version, **kw)
        self.clients.append(c)
        return c

    def direct(self, client_id="spy", version=5, **kw):
        """A client connected to mosquitto itself, bypassing wardgate: what reached the broker."""
        c = Paho(client_id, "127.0.0.1", self.broker.host, self.broker.port, version=version, **kw)
        self.clients.append(c)
        return c

    def raw(self, device, version=5):
        r = Raw(ADDR[device], self.host, self.port, version)
        self.clients.append(r)
        return r

    def events(self):
        return self.gw.events()

    def rule_events(self, rule, n=1, timeout=WAIT):
        """The events with `rule`, once there are at least n (or the timeout passed)."""
        deadline = time.monotonic() + timeout
        while True:
            evs = [e for e in self.gw.events() if e.get("rule", {}).get("id") == rule]
            if len(evs) >= n or time.monotonic() > deadline:
                return evs
            time.sleep(0.1)

    def rules(self):
        return sorted({e.get("rule", {}).get("id") for e in self.gw.events()} - {None})

    def close(self):
        for c in self.clients:
            try:
                c.close()
            except Exception:
                pass
        if self.gw is not None:
            self.gw.stop()
        self.broker.stop()


def success_as_0(rc):
    """MQTT 5's PUBACK/PUBREC 0x10 (no matching subscribers) is a success: 0."""
    return 0 if rc == 0x10 else rc


# --- paho ------------------------------------------------------------------------

class Paho:
    """A paho-mqtt client bound to a source address; callbacks feed queues."""

    def __init__(self, client_id, source, host, port, version=5, clean=True):
        require_module("paho.mqtt")
        import paho.mqtt.client as mqtt

        self.mqtt = mqtt
        self.version = version
        self.host, self.port, self.source = host, port, source
        self.clean = clean
        self.connacks = queue.Queue()
        self.messages = queue.Queue()
        self.subacks = {}
        self.pubacks = {}
        self.disconnects = queue.Queue()
        proto = mqtt.MQTTv5 if version == 5 else mqtt.MQTTv311
        kw = {} if version == 5 else {"clean_session": clean}
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=proto, **kw)
        self.c.on_connect = lambda c, u, flags, rc, props: self.connacks.put((rc, flags, props))
        self.c.on_message = lambda c, u, msg: self.messages.put(msg)
        self.c.on_subscribe = lambda c, u, mid, rcs, props: self.subacks.__setitem__(mid, list(rcs))
        self.c.on_publish = lambda c, u, mid, rc, props: self.pubacks.__setitem__(mid, rc)
        self.c.on_disconnect = lambda c, u, flags, rc, props: self.disconnects.put(rc)
        self.started = False

    def props(self, packet, **values):
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        p = Properties(getattr(PacketTypes, packet))
        for k, v in values.items():
            setattr(p, k, v)
        return p

    def will(self, topic, payload, qos=0, retain=False):
        self.c.will_set(topic, payload, qos=qos, retain=retain)

    def credentials(self, username, password):
        self.c.username_pw_set(username, password)

    def connect(self, timeout=WAIT, session_expiry=None, keepalive=30):
        """Connects; returns (reason code as an int, flags) of the CONNACK, or None."""
        kw = {}
        if self.version == 5:
            kw["clean_start"] = self.clean
            if session_expiry is not None:
                kw["properties"] = self.props("CONNECT", SessionExpiryInterval=session_expiry)
        # Refused connections must not be retried in the background.
        self.c.reconnect_delay_set(60, 120)
        self.c.connect(self.host, self.port, keepalive=keepalive, bind_address=self.source, **kw)
        if not self.started:
            self.c.loop_start()
            self.started = True
        try:
            rc, flags, _ = self.connacks.get(timeout=timeout)
        except queue.Empty:
            return None
        return rc.value, flags

    def subscribe(self, filters, qos=1, timeout=WAIT):
        """SUBACK reason codes (ints) of one SUBSCRIBE, or None if none came."""
        if isinstance(filters, str):
            filters = [filters]
        res, mid = self.c.subscribe([(f, qos) for f in filters])
        assert res == self.mqtt.MQTT_ERR_SUCCESS, res
        deadline = time.monotonic() + timeout
        while mid not in self.subacks and time.monotonic() < deadline:
            time.sleep(0.02)
        codes = self.subacks.get(mid)
        return None if codes is None else [rc.value for rc in codes]

    def publish(self, topic, payload, qos=0, retain=False, properties=None, timeout=WAIT):
        """Publishes; for QoS > 0 returns the PUBACK/PUBCOMP reason code (int) or
        None if none came within the timeout."""
        info = self.c.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        if qos == 0:
            info.wait_for_publish(timeout)
            return 0
        deadline = time.monotonic() + timeout
        while info.mid not in self.pubacks and time.monotonic() < deadline:
            time.sleep(0.02)
        rc = self.pubacks.get(info.mid)
        return None if rc is None else success_as_0(rc.value)

    def receive(self, n=1, timeout=WAIT):
        """Up to n messages received within the timeout."""
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                out.append(self.messages.get(timeout=left))
            except queue.Empty:
                break
        return out

    def drain(self, quiet=1.0):
        """Every message that arrives until none has for `quiet` seconds (at most 10 s)."""
        out = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                out.append(self.messages.get(timeout=quiet))
            except queue.Empty:
                break
        return out

    def disconnected(self, timeout=WAIT):
        try:
            return self.disconnects.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self):
        try:
            self.c.disconnect()
        finally:
            if self.started:
                self.c.loop_stop()
                self.started = False


# --- Raw MQTT over a socket ------------------------------------------------------

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14

# MQTT 5 property ids used here, with their types.
PROP = {
    "payload_format": (0x01, "byte"),
    "message_expiry": (0x02, "u32"),
    "content_type": (0x03, "str"),
    "session_expiry": (0x11, "u32"),
    "receive_maximum": (0x21, "u16"),
    "topic_alias_maximum": (0x22, "u16"),
    "topic_alias": (0x23, "u16"),
    "user": (0x26, "pair"),
    "maximum_packet_size": (0x27, "u32"),
}
PROP_BY_ID = {v[0]: (k, v[1]) for k, v in PROP.items()}
# Every other property a server may send, to skip it when reading (id -> type).
OTHER_PROPS = {0x08: "str", 0x09: "bin", 0x0B: "vbi", 0x12: "str", 0x13: "u16", 0x15: "str", 0x16: "bin",
               0x17: "byte", 0x18: "u32", 0x19: "byte", 0x1A: "str", 0x1C: "str", 0x1F: "str", 0x24: "byte",
               0x25: "byte", 0x28: "byte", 0x29: "byte", 0x2A: "byte"}


def vbi(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def props(items):
    """MQTT 5 properties from [(name, value)]; name from PROP."""
    body = b""
    for name, value in items or []:
        pid, kind = PROP[name]
        body += bytes([pid])
        if kind == "byte":
            body += bytes([value])
        elif kind == "u16":
            body += struct.pack("!H", value)
        elif kind == "u32":
            body += struct.pack("!I", value)
        elif kind == "str":
            body += mstr(value)
        elif kind == "pair":
            body += mstr(value[0]) + mstr(value[1])
    return vbi(len(body)) + body


def packet(ptype, flags, body):
    return bytes([(ptype << 4) | flags]) + vbi(len(body)) + body


def connect_packet(client_id, version=5, clean=True, keepalive=30, username=None, password=None,
                   will=None, connect_props=None, will_props=None):
    """will: (topic, payload, qos, retain)."""
    flags = 0x02 if clean else 0
    if will:
        topic, payload, qos, retain = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
    if username is not None:
        flags |= 0x80
    if password is not None:
        flags |= 0x40
    vh = mstr("MQTT") + bytes([5 if version == 5 else 4, flags]) + struct.pack("!H", keepalive)
    if version == 5:
        vh += props(connect_props)
    pl = mstr(client_id)
    if will:
        if version == 5:
            pl += props(will_props)
        pl += mstr(will[0]) + mstr(will[1])
    if username is not None:
        pl += mstr(username)
    if password is not None:
        pl += mstr(password)
    return packet(CONNECT, 0, vh + pl)


def publish_packet(topic, payload, qos=0, retain=False, pid=1, version=5, publish_props=None, dup=False):
    flags = (qos << 1) | (1 if retain else 0) | (0x08 if dup else 0)
    vh = mstr(topic)
    if qos:
        vh += struct.pack("!H", pid)
    if version == 5:
        vh += props(publish_props)
    return packet(PUBLISH, flags, vh + payload)


def subscribe_packet(filters, pid=1, version=5, qos=1):
    body = struct.pack("!H", pid)
    if version == 5:
        body += props(None)
    for f in filters:
        body += mstr(f) + bytes([qos])
    return packet(SUBSCRIBE, 0x02, body)


def read_vbi(buf, i):
    n, mult = 0, 1
    for _ in range(4):
        b = buf[i]
        i += 1
        n += (b & 0x7F) * mult
        if not b & 0x80:
            return n, i
        mult *= 128
    raise ValueError("bad variable byte integer")


def parse_props(buf, i):
    """(dict of properties, index after them); user properties as a list under "user"."""
    n, i = read_vbi(buf, i)
    end = i + n
    out = {}
    while i < end:
        pid = buf[i]
        i += 1
        name, kind = PROP_BY_ID.get(pid, (f"0x{pid:02x}", OTHER_PROPS.get(pid)))
        if kind is None:
            raise ValueError(f"unknown property {pid:#x}")
        if kind == "byte":
            v, i = buf[i], i + 1
        elif kind == "u16":
            v, i = struct.unpack_from("!H", buf, i)[0], i + 2
        elif kind == "u32":
            v, i = struct.unpack_from("!I", buf, i)[0], i + 4
        elif kind == "vbi":
            v, i = read_vbi(buf, i)
        elif kind in ("str", "bin"):
            ln = struct.unpack_from("!H", buf, i)[0]
            v, i = bytes(buf[i + 2:i + 2 + ln]), i + 2 + ln
        else:  # pair
            k1 = struct.unpack_from("!H", buf, i)[0]
            a = buf[i + 2:i + 2 + k1].decode()
            i += 2 + k1
            k2 = struct.unpack_from("!H", buf, i)[0]
            b = buf[i + 2:i + 2 + k2].decode()
            i += 2 + k2
            out.setdefault("user", []).append((a, b))
            continue
        out[name] = v
    return out, end


class Raw:
    """One TCP connection from a device's address, speaking MQTT by hand."""

    def __init__(self, source, host, port, version=5):
        self.version = version
        self.sock = socket.create_connection((host, port), timeout=WAIT, source_address=(source, 0))
        self.buf = b""
        self.eof = False
        self.last = None
        self.connected = False
        self.inbox = []  # PUBLISHes from the server: (type, flags, body)

    def send(self, data):
        self.sock.sendall(data)

    def read(self, timeout=WAIT):
        """The next packet as (type, flags, body), or None at end of connection
        or when nothing whole arrived within the timeout (self.eof tells which)."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 2:
                try:
                    n, i = read_vbi(self.buf, 1)
                    if len(self.buf) >= i + n:
                        first, body = self.buf[0], self.buf[i:i + n]
                        self.buf = self.buf[i + n:]
                        return first >> 4, first & 0x0F, body
                except IndexError:
                    pass
            if self.eof:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return None
            except OSError:  # reset
                chunk = b""
            if not chunk:
                self.eof = True
            self.buf += chunk

    def reply(self, timeout=WAIT):
        """The next packet that is not a PUBLISH from the server (kept in
        self.inbox, QoS 1 acknowledged) nor a PINGRESP; None at end of
        connection or time-out."""
        deadline = time.monotonic() + timeout
        while True:
            p = self.read(max(0.0, deadline - time.monotonic()))
            if p is None:
                return None
            if p[0] == PINGRESP:
                continue
            if p[0] == PUBLISH and self.connected:
                self.inbox.append(p)
                if (p[1] >> 1) & 3 == 1:
                    tl = struct.unpack_from("!H", p[2], 0)[0]
                    pid = p[2][2 + tl:4 + tl]
                    self.send(packet(PUBACK, 0, pid))
                continue
            return p

    def expect(self, ptype, timeout=WAIT):
        """The next packet of `ptype`, skipping PINGRESP; fails on anything else."""
        p = self.reply(timeout)
        assert p is not None, f"expected packet type {ptype}, got {'end of connection' if self.eof else 'nothing'}"
        assert p[0] == ptype, f"expected packet type {ptype}, got {p[0]} {p[2][:40]!r}"
        return p

    def closed(self, timeout=WAIT):
        """The packets received before the connection ended, or None if it was
        still open after the timeout."""
        seen = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            p = self.read(max(0.0, deadline - time.monotonic()))
            if p is not None:
                seen.append(p)
            elif self.eof:
                return seen
        return None

    # Packets and their answers.
    def connect(self, client_id, **kw):
        """Sends CONNECT; returns (reason code, session present, CONNACK properties)."""
        self.send(connect_packet(client_id, version=self.version, **kw))
        _, _, body = self.expect(CONNACK)
        self.connected = body[1] == 0
        prop = parse_props(body, 2)[0] if self.version == 5 and len(body) > 2 else {}
        return body[1], bool(body[0] & 1), prop

    def publish(self, topic, payload, qos=0, pid=1, **kw):
        """Sends PUBLISH; for QoS 1/2, returns the PUBACK/PUBREC reason code
        (0 when absent), or None if the connection ended instead."""
        self.send(publish_packet(topic, payload, qos=qos, pid=pid, version=self.version, **kw))
        if qos == 0:
            return 0
        p = self.reply()
        if p is None or p[0] == DISCONNECT:  # refused by closing (5.0: after a DISCONNECT)
            self.last = p
            return None
        want = PUBACK if qos == 1 else PUBREC
        assert p[0] == want, p
        body = p[2]
        assert struct.unpack("!H", body[:2])[0] == pid
        rc = success_as_0(body[2] if len(body) > 2 else 0)
        if qos == 2 and rc < 0x80:
            self.send(packet(PUBREL, 0x02, struct.pack("!H", pid)))
            self.expect(PUBCOMP)
        return rc

    def subscribe(self, filters, pid=1, qos=1):
        """SUBACK reason codes of one SUBSCRIBE, or None if the connection ended."""
        self.send(subscribe_packet(filters, pid=pid, version=self.version, qos=qos))
        p = self.reply()
        if p is None or p[0] == DISCONNECT:
            self.last = p
            return None
        assert p[0] == SUBACK, p
        body = p[2]
        i = 2
        if self.version == 5:
            _, i = parse_props(body, i)
        return list(body[i:])

    def disconnect(self):
        self.send(packet(DISCONNECT, 0, b"\x00\x00" if self.version == 5 else b""))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def disconnect_reason(packets):
    """The reason code of an MQTT 5 DISCONNECT among `packets` (0 when it has
    none), or None when there is none."""
    for t, _, body in packets or []:
        if t == DISCONNECT:
            return body[0] if body else 0
    return None


def tool_pub(site, device, topic, payload, qos=1, version="mqttv5", client_id=None, extra=()):
    """mosquitto_pub as a device (-A binds its address); returns the CompletedProcess."""
    exe = require_tool("mosquitto_pub")
    return subprocess.run([exe, "-h", site.host, "-p", str(site.port), "-A", ADDR[device], "-V", version,
                           "-i", client_id or device, "-t", topic, "-q", str(qos), "-m", payload, *extra],
                          capture_output=True, text=True, timeout=20)


def tool_sub(site, device, topic, count, version="mqttv5", client_id=None, timeout=10):
    """mosquitto_sub as a device, started in the background: exits after `count`
    messages or `timeout` seconds (-W). Returns the Popen (stdout: one line a message)."""
    exe = require_tool("mosquitto_sub")
    return subprocess.Popen([exe, "-h", site.host, "-p", str(site.port), "-A", ADDR[device], "-V", version,
                             "-i", client_id or device, "-t", topic, "-q", "1", "-C", str(count),
                             "-W", str(timeout), "-v"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
