"""Issue 21: MQTT with TLS on both sides. paho-mqtt connects over TLS with a
device certificate from wardgate's CA (the certificate, not the address, names
the device); wardgate connects to a real mosquitto over TLS, verifying the
broker's certificate (also from wardgate's CA). A user name and password are
accepted over TLS, the client id stays bound to the certificate's device, and
a certificate naming no sender of the route is refused."""
import ssl
import subprocess

import paho.mqtt.client as mqtt

from conftest import Gateway, require_tool, wait_port, free_port, wardgate_bin
from mqtt_peers import ADDR, SITE_TEMPLATE, WAIT, Mosquitto, mqtt_site, new_signer_key, public_hex

# The MQTT site, plus a device for the gateway's own certificate, TLS on the
# route's listener and towards the broker (tables right after the route's keys).
TLS_TEMPLATE = SITE_TEMPLATE.replace(
    '[[device]]\nid = "monitor-1"',
    '[[device]]\nid = "wardgate-gw"\nkind = "gateway"\naddresses = ["127.0.0.1"]\n\n[[device]]\nid = "monitor-1"',
    1,
).replace(
    "\n[[command_signer]]",
    '\n[route.listen_tls]\ncert = "@CERTS@/mqtt-listener.crt"\nkey = "@CERTS@/mqtt-listener.key"\n\n'
    '[route.upstream_tls]\nserver_name = "broker"\n\n[[command_signer]]',
    1,
)
assert "[route.listen_tls]" in TLS_TEMPLATE and "[route.upstream_tls]" in TLS_TEMPLATE


class TlsMosquitto(Mosquitto):
    """mosquitto with one TLS listener, its certificate from wardgate's CA."""

    def __init__(self, tmp, certs, ca):
        self._tls = (certs, ca)
        super().__init__(tmp)

    def write_conf(self, lines):
        certs, ca = self._tls
        return lines + [f"cafile {ca}", f"certfile {certs}/broker.crt", f"keyfile {certs}/broker.key",
                        "require_certificate false", "tls_version tlsv1.2"]


def wg(cfg, *args):
    return subprocess.run([wardgate_bin(), *args, "--config", str(cfg)], capture_output=True, text=True,
                          timeout=60, check=True)


def tls_client(tmp_path, device, client_id, source):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.tls_set(ca_certs=str(tmp_path / "data" / "tls" / "ca.crt"),
              certfile=str(tmp_path / "certs" / f"{device}.crt"),
              keyfile=str(tmp_path / "certs" / f"{device}.key"))
    c.tls_insecure_set(False)
    return c


def connack(c, host, port, source, **kw):
    """The CONNACK reason code (int), or None when the connection failed."""
    codes = []
    c.on_connect = lambda cl, ud, flags, rc, props: codes.append(rc.value)
    try:
        c.connect(host, port, bind_address=source, clean_start=True, **kw)
    except (ssl.SSLError, OSError):
        return None
    c.loop_start()
    import time
    deadline = time.monotonic() + WAIT
    while not codes and time.monotonic() < deadline:
        time.sleep(0.05)
    return codes[0] if codes else None


def test_mqtt_over_tls_on_both_sides_identifies_the_device_by_its_certificate(tmp_path):
    require_tool("mosquitto")
    certs = tmp_path / "certs"
    site = mqtt_site(public_hex(new_signer_key()), TLS_TEMPLATE.replace("@CERTS@", str(certs)))
    cfg = tmp_path / "ca.toml"
    cfg.write_text(site.format(data_dir=tmp_path / "data", listen_port=1, upstream_port=1, max_frame=65536))
    wg(cfg, "ca", "init", "--name", "test")
    for dev in ("broker", "monitor-1", "clinic"):
        wg(cfg, "device", "enroll", dev, "--out", str(certs))
    # The listener's certificate names the address the clients connect to.
    wg(cfg, "ca", "issue-listener", "mqtt-listener", "--ip", "127.0.0.1", "--out", str(certs))
    broker = TlsMosquitto(tmp_path, certs, tmp_path / "data" / "tls" / "ca.crt")
    gw = None
    clients = []
    try:
        gw = Gateway(tmp_path, broker.port, site=site)
        host, port = "127.0.0.1", gw.listen_port

        # The monitor's certificate names it: its own client id, with a user
        # name and password (allowed over TLS), publishes and is delivered.
        mon = tls_client(tmp_path, "monitor-1", "monitor-1", ADDR["monitor-1"])
        mon.username_pw_set("monitor-1", "s3cret-over-tls")
        clients.append(mon)
        assert connack(mon, host, port, ADDR["monitor-1"]) == 0
        info = mon.publish("home/monitor-1/vitals/heart-rate", b"71", qos=1)
        info.wait_for_publish(WAIT)
        assert info.is_published()

        # The certificate, not the address: monitor-1's certificate from the
        # clinic's address is still monitor-1 (admitted with WG-TLS-004), and
        # the clinic's client id is refused for it.
        other = tls_client(tmp_path, "monitor-1", "clinic", ADDR["clinic"])
        clients.append(other)
        assert connack(other, host, port, ADDR["clinic"]) == 0x85

        # Without a client certificate the handshake is refused.
        bare = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="monitor-1", protocol=mqtt.MQTTv5)
        bare.tls_set(ca_certs=str(tmp_path / "data" / "tls" / "ca.crt"))
        clients.append(bare)
        assert connack(bare, host, port, ADDR["monitor-1"]) in (None,)

        evs = gw.events()
        rules = {e.get("rule", {}).get("id") for e in evs}
        assert "WG-MQTT-001" in rules and "WG-TLS-001" in rules, rules
        assert "WG-MQTT-002" not in rules, "credentials over TLS are not cleartext"
        connects = [e for e in evs if (e.get("wardgate", {}).get("mqtt") or {}).get("packet") == "CONNECT"
                    and e["event"]["action"] == "allowed"]
        assert connects and connects[0]["wardgate"]["source_device"] == "monitor-1"
        assert connects[0]["wardgate"]["mqtt"].get("username") == "monitor-1"
        audit = "".join(p.read_text(errors="replace") for p in (tmp_path / "data" / "audit").glob("*.log"))
        assert "s3cret-over-tls" not in audit
        # The broker saw TLS from the gateway (mosquitto logs the connection).
        assert "monitor-1" in broker.log_text()
    finally:
        for c in clients:
            try:
                c.loop_stop()
                c.disconnect()
            except Exception:
                pass
        if gw is not None:
            gw.stop()
        broker.stop()
