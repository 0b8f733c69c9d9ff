"""What the wire says a device runs, from real peers (issue #22): an HTTP server's
`Server` banner and a client's `User-Agent` (Python's http.server, curl), a TLS 1.2
server's certificate and the client's SNI (openssl s_server, curl), all seen by
`wardgate analyze` in a tshark capture, kept in the inventory and written into
`--draft-devices`, a device file that loads."""
import http.server
import json
import subprocess
import threading

from conftest import free_port, require_tool, wait_port, wardgate_bin
from test_analyze import capture_of, site


def run(*args, timeout=120):
    return subprocess.run([wardgate_bin(), *map(str, args)], capture_output=True, text=True, timeout=timeout)


class Banner(http.server.SimpleHTTPRequestHandler):
    server_version = "InfusionHub/4.2"
    sys_version = ""

    def log_message(self, *a):
        pass


def test_http_and_tls_software_evidence_reaches_the_inventory_and_a_draft_device_file(tmp_path):
    curl = require_tool("curl")
    openssl = require_tool("openssl")
    # Two unknown devices: an HTTP server and a TLS 1.2 server, each called by a client.
    port = free_port("127.0.0.61")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.61", port), Banner)
    t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    t.start()
    key, crt = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", crt, "-days", "30", "-subj", "/CN=monitor-gw.icu.example"],
                   check=True, capture_output=True, timeout=60)
    tls_port = free_port("127.0.0.63")
    srv = subprocess.Popen([openssl, "s_server", "-accept", f"127.0.0.63:{tls_port}", "-cert", crt, "-key", key,
                            "-tls1_2", "-www", "-quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port("127.0.0.63", tls_port)

        def act():
            r = subprocess.run([curl, "-s", "-o", "/dev/null", "-w", "%{http_code}", "--interface", "127.0.0.62",
                                "-A", "PumpAgent/1.7", f"http://127.0.0.61:{port}/"],
                               capture_output=True, text=True, timeout=30)
            assert r.stdout in ("200", "404"), r.stderr
            subprocess.run([curl, "-sk", "-o", "/dev/null", "--tlsv1.2", "--tls-max", "1.2", "--interface", "127.0.0.64",
                            "--resolve", f"monitor-gw.icu.example:{tls_port}:127.0.0.63",
                            f"https://monitor-gw.icu.example:{tls_port}/"], capture_output=True, timeout=30)

        pcap = capture_of(tmp_path, "evidence", f"(host 127.0.0.61 and tcp port {port}) or (host 127.0.0.63 and tcp port {tls_port})", act)
    finally:
        httpd.shutdown()
        srv.terminate()
        srv.wait(10)
    cfg = site(tmp_path)
    draft = tmp_path / "draft.toml"
    r = run("analyze", "--config", cfg, "--json", "--draft-devices", draft, pcap, timeout=300)
    assert r.returncode in (0, 1), r.stderr
    inv = {e["wardgate"]["inventory"]["address"]: e["wardgate"]["inventory"]
           for e in map(json.loads, r.stdout.splitlines())
           if e.get("wardgate", {}).get("inventory", {}).get("seen")}
    assert "server: InfusionHub/4.2" in inv["127.0.0.61"].get("http_banners", []), inv["127.0.0.61"]
    assert "user-agent: PumpAgent/1.7" in inv["127.0.0.62"].get("http_banners", []), inv["127.0.0.62"]
    certs = inv["127.0.0.63"].get("tls_certificates", [])
    assert any("subject=monitor-gw.icu.example" in c for c in certs), inv["127.0.0.63"]
    assert "sni=monitor-gw.icu.example" in inv["127.0.0.64"].get("tls_certificates", []), inv["127.0.0.64"]

    # The draft names every unknown address with its evidence, and loads.
    text = draft.read_text()
    for a in ("127.0.0.61", "127.0.0.62", "127.0.0.63", "127.0.0.64"):
        assert f'"{a}"' in text, text
    assert "InfusionHub/4.2" in text and "monitor-gw.icu.example" in text, text
    main = cfg.read_text()
    cfg.write_text(f'device_files = ["{draft.name}"]\n\n' + main)
    chk = run("check", "--config", cfg)
    assert chk.returncode == 0, chk.stdout + chk.stderr
    # Refused over an existing file, without --force.
    again = run("analyze", "--config", cfg, "--no-store", "--draft-devices", draft, pcap, timeout=300)
    assert again.returncode == 2 and "exists" in again.stderr, again.stderr
