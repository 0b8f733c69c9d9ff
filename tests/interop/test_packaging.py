"""The Debian package and the systemd units, installed, checked and removed on
this machine: what a hospital's administrator gets from `dpkg -i`. Needs root
(dpkg); under CI=true that is a failure, elsewhere a skip. The package is
built from the binary under test (scripts/build-deb.sh)."""
import os
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from conftest import CI, ROOT, require_tool, wardgate_bin

UNITS = ["/lib/systemd/system/wardgate.service", "/lib/systemd/system/wardgate-capture@.service"]


def sh(*args, check=True):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=600, check=check)


@pytest.fixture
def installed(tmp_path):
    if os.geteuid() != 0:
        if CI:
            pytest.fail("the packaging test needs root (dpkg)")
        pytest.skip("the packaging test needs root (dpkg)")
    for tool in ("dpkg-deb", "dpkg", "systemd-analyze", "adduser"):
        require_tool(tool)
    if sh("dpkg", "-s", "wardgate", check=False).returncode == 0:
        if CI:
            pytest.fail("a wardgate package is installed already: the test would replace it")
        pytest.skip("a wardgate package is installed already: the test would replace it")
    deb = sh(str(ROOT / "scripts" / "build-deb.sh"), wardgate_bin(), str(tmp_path)).stdout.strip()
    try:
        r = sh("dpkg", "-i", deb, check=False)
        assert r.returncode == 0, r.stdout + r.stderr
        yield deb, r
    finally:
        sh("dpkg", "-P", "wardgate", check=False)
        sh("rm", "-rf", "/var/lib/wardgate", check=False)


def mode(path):
    st = os.stat(path)
    import grp
    import pwd
    return oct(st.st_mode & 0o7777), pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name


def test_install_check_and_remove(installed):
    deb, r = installed
    assert "Warning" not in r.stdout + r.stderr, r.stdout + r.stderr
    assert sh("/usr/bin/wardgate", "--version").stdout.startswith("wardgate ")
    # A service user, the data directory only it can enter, the configuration
    # readable by it and root only.
    assert sh("getent", "passwd", "wardgate").stdout.split(":")[6].strip() == "/usr/sbin/nologin"
    assert mode("/var/lib/wardgate") == ("0o750", "wardgate", "wardgate")
    assert mode("/etc/wardgate") == ("0o750", "root", "wardgate")
    assert mode("/etc/wardgate/wardgate.toml") == ("0o640", "root", "wardgate")
    # The shipped configuration validates (and serves nothing until edited).
    c = sh("/usr/bin/wardgate", "check", "--config", "/etc/wardgate/wardgate.toml", check=False)
    assert c.returncode == 0, c.stderr
    assert "0 route(s)" in c.stdout
    # systemd accepts both units with no warning at all (a misspelt hardening
    # key would be a warning, and silently not applied).
    v = sh("systemd-analyze", "verify", *UNITS, check=False)
    assert v.returncode == 0 and v.stdout.strip() == "" and v.stderr.strip() == "", v.stdout + v.stderr
    unit = Path(UNITS[0]).read_text()
    for must in ["Type=notify", "User=wardgate", "NoNewPrivileges=yes", "ProtectSystem=strict",
                 "ReadWritePaths=/var/lib/wardgate", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE"]:
        assert must in unit, must
    assert "CapabilityBoundingSet=CAP_NET_RAW" in Path(UNITS[1]).read_text()
    # The two units' commands run side by side (serve holds its data_dir
    # exclusively; each capture has its own), as systemd would start them.
    def exec_start(unit, instance="lo"):
        line = next(l for l in Path(unit).read_text().splitlines() if l.startswith("ExecStart="))
        return line.split("=", 1)[1].replace("%i", instance).split()
    os.makedirs("/var/lib/wardgate/capture-lo", mode=0o750, exist_ok=True)
    serve = subprocess.Popen(exec_start(UNITS[0]), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    capture = subprocess.Popen(exec_start(UNITS[1]), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        import time
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (
                Path("/var/lib/wardgate/audit/audit.log").exists()
                and Path("/var/lib/wardgate/capture-lo/audit/audit.log").exists()):
            assert serve.poll() is None, serve.stderr.read()
            assert capture.poll() is None, capture.stderr.read()
            time.sleep(0.1)
        assert serve.poll() is None and capture.poll() is None
    finally:
        for p in (serve, capture):
            p.terminate()
        assert serve.wait(30) == 0, serve.stderr.read()
        assert capture.wait(30) in (0, 1), capture.stderr.read()
    # Its exposure as systemd scores it: "OK" or better.
    sec = sh("systemd-analyze", "security", "--offline=true", UNITS[0], check=False)
    assert "Overall exposure level for wardgate.service" in sec.stdout, sec.stdout + sec.stderr
    level = float(sec.stdout.split("Overall exposure level for wardgate.service:")[1].split()[0])
    assert level < 3.0, sec.stdout
    # Remove: the binary and units go, the edited configuration stays (a
    # conffile), the audit data stays.
    Path("/etc/wardgate/wardgate.toml").write_text(Path("/etc/wardgate/wardgate.toml").read_text() + "\n# edited\n")
    Path("/var/lib/wardgate/evidence").write_text("audit data\n")
    sh("dpkg", "-r", "wardgate")
    assert not Path("/usr/bin/wardgate").exists()
    assert not any(Path(u).exists() for u in UNITS)
    assert "# edited" in Path("/etc/wardgate/wardgate.toml").read_text()
    # Purge: the configuration goes; the audit data is evidence and stays.
    p = sh("dpkg", "-P", "wardgate")
    assert not Path("/etc/wardgate").exists()
    assert Path("/var/lib/wardgate/evidence").exists()
    assert "audit data kept" in p.stdout + p.stderr


def test_the_gateway_tells_systemd_when_it_is_ready_and_when_it_stops(tmp_path):
    """Type=notify: READY=1 once every listener is bound, STOPPING=1 on SIGTERM,
    on the datagram socket systemd names in NOTIFY_SOCKET. Signals are handled
    from before READY: a SIGHUP or SIGTERM at once is a reload or a clean stop."""
    from conftest import Gateway, Upstream  # noqa: F401 (the site template)
    import conftest
    up = Upstream()
    sock_path = tmp_path / "notify.sock"
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(str(sock_path))
    rx.settimeout(30)
    listen = conftest.free_port()
    cfg = tmp_path / "wardgate.toml"
    cfg.write_text(conftest.SITE.format(data_dir=tmp_path / "data", listen_port=listen,
                                        upstream_port=up.port, max_frame=65536))
    proc = subprocess.Popen([wardgate_bin(), "serve", "--config", str(cfg)],
                            env={**os.environ, "NOTIFY_SOCKET": str(sock_path)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ready = rx.recv(4096).decode()
        assert "READY=1" in ready.splitlines(), ready
        assert "STATUS=serving" in ready
        # Ready means bound: a client connects at once.
        with socket.create_connection(("127.0.0.1", listen), timeout=5):
            pass
        # `systemctl reload` the moment it is ready: a reload, never a death
        # (SIGHUP's default action), then a clean stop with the log sealed.
        proc.send_signal(1)
        proc.send_signal(15)
        stopping = rx.recv(4096).decode()
        assert "STOPPING=1" in stopping.splitlines(), stopping
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        rx.close()
        up.stop()
