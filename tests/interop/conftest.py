"""Fixtures for interop tests: a real `wardgate serve` process between real HL7 peers.

Peers are the `hl7` package's asyncio MLLP server (upstream) and its clients
(senders), on loopback; devices are told apart by source address (127.0.0.x).
"""
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import hl7
import hl7.mllp
import pytest

ROOT = Path(__file__).resolve().parents[2]
CI = os.environ.get("CI") == "true"


def require_tool(name):
    """A missing peer is a failure under CI, a skip on a developer's machine."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        if CI:
            pytest.fail(f"{name} is required (run scripts/setup.sh)")
        pytest.skip(f"{name} not installed (run scripts/setup.sh)")
    return path


def require_module(name):
    """A Python peer package, with the same rule as require_tool."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        if CI:
            pytest.fail(f"Python package {name} is required (run scripts/setup.sh)")
        pytest.skip(f"Python package {name} not installed (run scripts/setup.sh)")


def wardgate_bin():
    path = os.environ.get("WARDGATE_BIN") or str(ROOT / "target" / "debug" / "wardgate")
    if not Path(path).exists():
        pytest.fail(f"wardgate binary not found at {path}: run `cargo build -p wardgate`")
    return path


def start_capture(bpf, pcap, interface="lo", file_format=None):
    """tshark capturing traffic matching `bpf` on `interface` into `pcap` (pcapng,
    or `file_format` such as "pcap"), once live."""
    tshark = require_tool("tshark")
    fmt = ["-F", file_format] if file_format else []
    cap = subprocess.Popen([tshark, "-i", interface, "-f", bpf, *fmt, "-w", str(pcap), "-q"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    line = b""
    while b"Capturing on" not in line and time.monotonic() < deadline:
        line = cap.stderr.readline()
    assert b"Capturing on" in line, "tshark did not start capturing"
    # "Capturing on" can precede the first captured packet by a moment.
    time.sleep(1.0)
    return cap


_HANDED_OUT = set()


def free_port(host="127.0.0.1"):
    """A port free now, never one this test run handed out before: the kernel
    may give a just-closed port again, and two listeners of one gateway on the
    same port fail to start (CI met it: metrics and a route on one port)."""
    for _ in range(256):
        with socket.socket() as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError("no fresh port after 256 tries")


def wait_port(host, port, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5, source_address=("127.0.0.1", 0)):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{host}:{port} did not start listening")


class Upstream:
    """The `hl7` package's MLLP server, acknowledging every message with AA.

    Keeps every block it received byte-for-byte, and every ACK it sent."""

    def __init__(self, host="127.0.0.3", ack_delay=0.0, port=0):
        self.host = host
        self.want_port = port
        self.ack_delay = ack_delay
        self.received = []
        self.acks = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _start(self):
        return await hl7.mllp.start_hl7_server(self._handle, host=self.host, port=self.want_port, reuse_address=True)

    async def _handle(self, reader, writer):
        try:
            while not writer.is_closing():
                block = await reader.readblock()
                self.received.append(block)
                if self.ack_delay:
                    await asyncio.sleep(self.ack_delay)
                try:
                    text = block.decode()
                except UnicodeDecodeError:
                    text = block.decode("latin-1")  # a message declaring an ISO 8859 set
                ack = str(hl7.parse(text).create_ack(ack_code="AA", application="PUMPSRV", facility="ICU"))
                self.acks.append(ack)
                writer.writemessage(ack)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    def stop(self):
        async def close():
            self.server.close()
            # Cancel connection handlers while the loop still runs, so none of them
            # touches a closed loop afterwards.
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.server.wait_closed()

        try:
            asyncio.run_coroutine_threadsafe(close(), self.loop).result(5)
        except Exception:
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


SITE = """
[gateway]
data_dir = "{data_dir}"
max_frame_bytes = {max_frame}
frame_timeout_secs = 3
shutdown_grace_secs = 5

[gateway.audit]
checkpoint_every = 50
checkpoint_interval_ms = 100

[[device]]
id = "ehr"
kind = "ehr"
addresses = ["127.0.0.2"]

[[device]]
id = "pump-server"
kind = "infusion-pump-server"
addresses = ["127.0.0.3"]

[[device]]
id = "lab-analyser"
kind = "lab-analyser"
addresses = ["127.0.0.9"]

[[route]]
id = "infusion-orders"
protocol = "hl7-mllp"
listen = "127.0.0.1:{listen_port}"
upstream = "127.0.0.3:{upstream_port}"
senders = ["ehr"]
messages = ["RGV^O15", "ORU^R01"]
drug_library = "adult-icu"

[[drug_library]]
id = "adult-icu"

[[drug_library.drug]]
names = ["heparin", "HEP"]
rate_unit = "U/h"
rate_soft_max = 1500
rate_hard_max = 2000
dose_unit = "U"
dose_hard_max = 10000
"""


# Crockford's base 32, as docs/privacy.md gives it.
PSEUDONYM_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def pseudonym(data_dir, patient_id, kind="patient"):
    """The keyed pseudonym wardgate gives `patient_id`, computed here from the
    site key in `data_dir` exactly as docs/privacy.md specifies (an independent
    implementation: a test comparing it with wardgate's holds both to the doc)."""
    import hashlib
    import hmac

    key = (Path(data_dir) / "privacy" / "site.key").read_bytes()
    m = hmac.new(key, digestmod=hashlib.sha256)
    for part in (b"pseudonym v1", kind.encode(), patient_id.strip().encode()):
        m.update(len(part).to_bytes(8, "big"))
        m.update(part)
    acc = int.from_bytes(m.digest()[:9], "big") >> 2
    return "WG" + "".join(PSEUDONYM_ALPHABET[(acc >> (i * 5)) & 31] for i in range(13, -1, -1))


class Gateway:
    """A `wardgate serve` process with its own config and data directory."""

    def __init__(self, tmp, upstream_port, max_frame=65536, site=SITE, **extra):
        self.dir = Path(tmp)
        self.listen_port = free_port()
        self.config = self.dir / "wardgate.toml"
        self.config.write_text(
            site.format(
                data_dir=self.dir / "data",
                listen_port=self.listen_port,
                upstream_port=upstream_port,
                max_frame=max_frame,
                **extra,
            )
        )
        self.log = open(self.dir / "wardgate.log", "wb")
        self.proc = subprocess.Popen(
            [wardgate_bin(), "serve", "--config", str(self.config)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "WARDGATE_LOG": "info"},
        )
        try:
            wait_port("127.0.0.1", self.listen_port)
        except TimeoutError as e:
            self.log.flush()
            tail = (self.dir / "wardgate.log").read_text(errors="replace")[-2000:]
            self.proc.kill()
            raise TimeoutError(f"{e}; the gateway's log ends:\n{tail}") from None
        self.addr = ("127.0.0.1", self.listen_port)

    def cli(self, *args, check=True):
        return subprocess.run(
            [wardgate_bin(), *args, "--config", str(self.config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=check,
        )

    def events(self):
        """Every recorded event, once the record has settled: the recorder writes
        within milliseconds, asynchronously, so a read right after a client saw its
        answer can precede the event of that answer."""
        import json

        def read():
            out = self.cli("events", "--json").stdout
            return [json.loads(line) for line in out.splitlines() if line.strip()]

        deadline = time.monotonic() + 5
        last = read()
        while time.monotonic() < deadline:
            time.sleep(0.1)
            now = read()
            if len(now) == len(last):
                return now
            last = now
        return last

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
        return self.proc.returncode

    def log_text(self):
        return (self.dir / "wardgate.log").read_text(errors="replace")

    def pseudonym(self, patient_id):
        """The pseudonym this gateway's records name `patient_id` by."""
        return pseudonym(self.dir / "data", patient_id)


@pytest.fixture
def upstream():
    u = Upstream()
    yield u
    u.stop()


@pytest.fixture
def gateway(tmp_path, upstream):
    g = Gateway(tmp_path, upstream.port)
    yield g
    g.stop()


# --- Every event the tests produce is checked against ECS ---------------------
#
# Each test's tmp_path (where Gateway and the analyze/capture tests keep their
# configuration and data_dir) is searched after the test, and pytest's whole
# base temp directory at the end of the session (data dirs of module-scoped
# fixtures): every audit log found (DIR/audit/audit.log) is read back through
# `wardgate events --json`, which expands compact routine records as every reader
# does, and each event is checked with ecs_check (docs/events.md). A test whose
# events break ECS errors at teardown, listing the violations and the
# event.action / wardgate.stage / rule.id combinations its events had.
# WARDGATE_ECS_CHECK=0 turns the check off (for a quick local run).

class EventSchemaAudit:
    """Reads audit logs once each and checks their events; keeps session totals."""

    def __init__(self):
        self.checked = set()
        self.logs = 0
        self.events = 0
        self.combos = {}
        self.scratch = None

    def _config(self, data_dir):
        import json
        import tempfile

        if self.scratch is None:
            self.scratch = Path(tempfile.mkdtemp(prefix="wardgate-ecs-check-"))
        cfg = self.scratch / "events.toml"
        # `events` needs only the data_dir; the test's own config may be gone,
        # invalid on purpose, or one of several sharing the directory.
        cfg.write_text(f"[gateway]\ndata_dir = {json.dumps(str(data_dir))}\n")
        return cfg

    def read(self, data_dir):
        import json

        r = subprocess.run(
            [wardgate_bin(), "events", "--json", "--config", str(self._config(data_dir))],
            capture_output=True, text=True, timeout=300,
        )
        if r.returncode != 0:
            raise RuntimeError(f"`wardgate events` could not read {data_dir}: {r.stderr.strip()}")
        return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]

    def check_tree(self, root):
        """Checks every audit log under `root` not checked yet. Returns the report
        of violations ("" when every event conforms)."""
        import ecs_check

        if os.environ.get("WARDGATE_ECS_CHECK") == "0" or not Path(root).is_dir():
            return ""
        logs = sorted(p for p in Path(root).rglob("audit.log")
                      if p.parent.name == "audit" and p.resolve() not in self.checked)
        problems = {}  # violation -> [count, example combo, log]
        combos = set()
        for log in logs:
            self.checked.add(log.resolve())
            data_dir = log.parent.parent
            try:
                events = self.read(data_dir)
            except (RuntimeError, ValueError) as e:
                problems.setdefault(str(e), [1, ("-",), log])
                continue
            self.logs += 1
            for ev in events:
                self.events += 1
                combo = combo_of(ev)
                combos.add(combo)
                self.combos[combo] = self.combos.get(combo, 0) + 1
                for v in ecs_check.check_event(ev):
                    p = problems.setdefault(v, [0, combo, log])
                    p[0] += 1
        if not problems:
            return ""
        lines = [f"events violating the Elastic Common Schema {ecs_check.ECS_VERSION} "
                 f"(tests/data/ecs/ecs_flat.yml; docs/events.md):"]
        for v, (n, combo, log) in sorted(problems.items()):
            lines.append(f"  {v}  [{n} event(s), e.g. {'/'.join(combo)} in {log}]")
        lines.append("event.action/wardgate.stage/rule.id combinations seen:")
        lines += [f"  {'/'.join(c)}" for c in sorted(combos)]
        return "\n".join(lines)


def combo_of(ev):
    """(event.action, wardgate.stage, rule.id or "-") of one event."""
    def get(*keys):
        v = ev
        for k in keys:
            v = v.get(k) if isinstance(v, dict) else None
        return str(v) if v is not None else "-"

    return get("event", "action"), get("wardgate", "stage"), get("rule", "id")


EVENT_SCHEMA_AUDIT = EventSchemaAudit()


@pytest.fixture(autouse=True)
def _events_conform_to_ecs(tmp_path):
    yield
    report = EVENT_SCHEMA_AUDIT.check_tree(tmp_path)
    if report:
        pytest.fail(report, pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def _all_events_conform_to_ecs(tmp_path_factory):
    yield
    report = EVENT_SCHEMA_AUDIT.check_tree(tmp_path_factory.getbasetemp())
    if EVENT_SCHEMA_AUDIT.scratch is not None:
        shutil.rmtree(EVENT_SCHEMA_AUDIT.scratch, ignore_errors=True)
        EVENT_SCHEMA_AUDIT.scratch = None
    if report:
        pytest.fail("(session sweep of audit logs outside any test's tmp_path)\n" + report, pytrace=False)


def pytest_terminal_summary(terminalreporter):
    a = EVENT_SCHEMA_AUDIT
    if not a.logs:
        return
    terminalreporter.write_line(
        f"event schema: {a.events} event(s) from {a.logs} audit log(s) checked against ECS; "
        f"{len(a.combos)} event.action/wardgate.stage/rule.id combination(s)"
        + ("" if terminalreporter.config.option.verbose > 0 else " (-v lists them)")
    )
    if terminalreporter.config.option.verbose > 0:
        for c, n in sorted(a.combos.items()):
            terminalreporter.write_line(f"  {'/'.join(c)}: {n}")
