"""A live lab for TCP/IP evasion cases: three network namespaces, a Linux router,
a real receiver application, and a scapy-crafted attacker.

    cli (attacker, scapy) --veth-- rtr (Linux router, ip_forward=1) --veth-- srv (receiver)
      10.77.1.0/24 fd77:1::/64            10.77.2.0/24 fd77:2::/64

The attacker's frames are raw Ethernet frames (scapy-built, written to an AF_PACKET
socket on cli's veth: what `sendp` does), from an address that is NOT configured on
cli's kernel (10.77.1.50 / fd77:1::50), so cli's kernel never answers with RSTs; rtr
reaches that address through a permanent neighbour entry pointing at cli's veth.
The same AF_PACKET socket type sniffs the live server's SYN-ACK/ACKs, so every
crafted segment is numbered relative to the live ISNs.

In srv a small Python TCP server (IPv4 and IPv6, port 2575) reads each connection
with plain recv() (no SO_OOBINLINE) until EOF, RST or 3 s idle and writes exactly
the bytes it read to a file: the ground truth of what a Linux receiver read.

dumpcap records cli's veth (the attacker's side of the path, like a SPAN port next
to the sender) in classic pcap format, started before and stopped after each case,
filtered to the case's traffic.

Everything is torn down at the end, also on failure (use `Lab` as a context manager).
"""
from __future__ import annotations

import ctypes
import fcntl
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

# Fixed MACs, so every capture (and a monitor's configuration) sees the same stations.
CLI_MAC, RTR_A_MAC = "02:77:01:00:00:02", "02:77:01:00:00:01"  # cli0 (the attacker's NIC), rtr0
RTR_B_MAC, SRV_MAC = "02:77:02:00:00:01", "02:77:02:00:00:02"  # rtr1, srv0
CLI_MAC_UNUSED = "02:77:01:00:00:99"  # a station that is not on the link
CLI4, CLI6 = "10.77.1.50", "fd77:1::50"  # the attacker (not configured on any kernel)
SRV4, SRV6 = "10.77.2.2", "fd77:2::2"  # the receiver ("upstream" pump server)
CLI_KERNEL4, CLI_KERNEL6 = "10.77.1.2", "fd77:1::2"  # cli's own address (unused)
RTR_A4, RTR_A6 = "10.77.1.1", "fd77:1::1"
RTR_B4, RTR_B6 = "10.77.2.1", "fd77:2::1"
SRV_PORT = 2575
IDLE_SECS = 3.0
MASK = 0xFFFFFFFF
CLIENT_WINDOW = 65535  # no window scaling: the server's window stays <= 65535 too
MSS = 1400

CLONE_NEWNET = 0x40000000
SIOCETHTOOL = 0x8946
ETHTOOL_SRXCSUM, ETHTOOL_STXCSUM, ETHTOOL_SSG = 0x15, 0x17, 0x19
ETHTOOL_STSO, ETHTOOL_SGSO, ETHTOOL_SGRO = 0x1F, 0x24, 0x2C
PACKET_OUTGOING = 4

_libc = ctypes.CDLL(None, use_errno=True)


class LabError(RuntimeError):
    pass


class CaseError(RuntimeError):
    """A case could not be run (handshake failed, capture incomplete): retry it."""


# --- the receiver application (runs inside srv) -----------------------------------

SERVER_CODE = r'''
import os, socket, sys, threading
out, idle, port = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])

def handle(conn, peer, fam):
    data = bytearray()
    end = "eof"
    conn.settimeout(idle)
    try:
        while True:
            try:
                b = conn.recv(65536)          # plain recv(): no SO_OOBINLINE, no MSG_OOB
            except socket.timeout:
                end = "idle"
                break
            except ConnectionResetError:
                end = "rst"
                break
            except OSError as e:
                end = "error-%d" % e.errno
                break
            if not b:
                break
            data += b
    finally:
        base = os.path.join(out, "%s-%d" % (fam, peer[1]))
        # A second connection from the same port (a reconnect) is kept
        # apart: the case's record is the first connection's.
        n = 0
        while os.path.exists(base + ".bin") or os.path.exists(base + ".tmp"):
            n += 1
            base = os.path.join(out, "%s-%d-c%d" % (fam, peer[1], n))
        with open(base + ".tmp", "wb") as f:
            f.write(bytes(data))
        with open(base + ".end", "w") as f:
            f.write(end)
        os.rename(base + ".tmp", base + ".bin")
        try:
            conn.close()
        except OSError:
            pass

def serve(sock, fam):
    while True:
        conn, peer = sock.accept()
        threading.Thread(target=handle, args=(conn, peer, fam), daemon=True).start()

s4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s4.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s4.bind(("0.0.0.0", port))
s4.listen(128)
s6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s6.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
s6.bind(("::", port))
s6.listen(128)
threading.Thread(target=serve, args=(s6, "6"), daemon=True).start()
print("ready", flush=True)
serve(s4, "4")
'''


# --- steps a case can return besides frames -----------------------------------------

@dataclass
class Sleep:
    secs: float


@dataclass
class Sync:
    """Wait until the server has answered everything sent so far (its ACK state
    settles): quiet for `quiet` seconds, at most `max_wait`."""
    quiet: float = 0.015
    max_wait: float = 0.4


@dataclass
class Fill:
    """Behave like a plain TCP sender for `stream`: from the server's current
    rcv_nxt (its latest ACK), send stream[rcv_nxt:end] in MSS-sized segments within
    the server's window, until the server acknowledged `end` (or gives up)."""
    stream: bytes
    end: int | None = None
    mss: int = MSS


@dataclass
class WaitSynAck:
    """Wait for the server's SYN-ACK to a (decoy) SYN with sequence number `isn`."""
    isn: int
    timeout: float = 0.5


@dataclass
class Call:
    """Call fn(conn) at this point and send the steps it returns (for frames that
    need live state, e.g. the server's latest ACK)."""
    fn: object


@dataclass
class Lossy:
    """Send `frame`, which the link may refuse: a frame longer than the peer's MTU
    allows (with a case's `cli_mtu` above 1500) is dropped by the veth, and the
    send reports it (ENOBUFS). The frame still crossed cli0 (the capture has it)
    and counts as sent."""
    frame: object


# --- namespace helpers -------------------------------------------------------------

def _setns(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"setns({path}): {os.strerror(e)}")
    finally:
        os.close(fd)


class in_netns:
    """Runs the calling thread inside a named network namespace (sockets created
    meanwhile stay there), then goes back."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.orig = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        _setns(f"/var/run/netns/{self.name}")
        return self

    def __exit__(self, *exc):
        try:
            if _libc.setns(self.orig, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")
        finally:
            os.close(self.orig)


def _ethtool_set(ifname, cmd, value):
    val = ctypes.create_string_buffer(struct.pack("II", cmd, value))
    ifr = struct.pack("16sP", ifname.encode(), ctypes.addressof(val)).ljust(40, b"\0")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s.fileno(), SIOCETHTOOL, ifr)


def require_root_and_netns():
    """A reason the lab cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, veth, raw sockets)"
    if not (shutil.which("ip") or shutil.which("ip", path="/usr/sbin:/sbin")):
        return "ip (iproute2) not installed"
    if not Path("/proc/self/ns/net").exists():
        return "no network namespace support"
    return None


def _stale_namespaces():
    """Lab namespaces left by runs whose process is gone."""
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    stale = []
    for line in r.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.fullmatch(r"wgev(\d+)[crs]", name)
        if m and not Path(f"/proc/{m.group(1)}").exists():
            stale.append(name)
    return stale


# --- the lab -----------------------------------------------------------------------

class Lab:
    def __init__(self, workdir=None, prefix=None, idle=IDLE_SECS, log=None):
        self.prefix = prefix or f"wgev{os.getpid()}"
        self.ns_cli, self.ns_rtr, self.ns_srv = (self.prefix + s for s in "crs")
        self._own_work = workdir is None
        self.work = Path(workdir or tempfile.mkdtemp(prefix="wgev-"))
        self.hostdir = self.work / "host"
        self.idle = idle
        self.log = log or (lambda msg: None)
        self.server = None
        self.sock = None
        self.sniffer = None
        self.stop = threading.Event()
        self.cv = threading.Condition()
        self.conns = {}
        self.created = []
        self.captures = []
        self.offload_notes = []

    # context manager: teardown also on failure
    def __enter__(self):
        try:
            self.setup()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, *exc):
        self.teardown()

    def ip(self, *args, ns=None, check=True):
        cmd = ["ip"] + (["-n", ns] if ns else []) + list(args)
        r = subprocess.run(cmd, capture_output=True, text=True)
        if check and r.returncode != 0:
            raise LabError(f"{' '.join(cmd)}: {r.stderr.strip()}")
        return r

    def sysctl(self, ns, **kv):
        for k, v in kv.items():
            path = "/proc/sys/" + k.replace(".", "/")
            with in_netns(ns):
                with open(path, "w") as f:
                    f.write(str(v))

    def mac(self, ns, dev):
        out = self.ip("-j", "link", "show", "dev", dev, ns=ns).stdout
        return json.loads(out)[0]["address"]

    def setup(self):
        why = require_root_and_netns()
        if why:
            raise LabError(why)
        for name in _stale_namespaces():
            self.ip("netns", "del", name, check=False)
        self.hostdir.mkdir(parents=True, exist_ok=True)
        # One CPU for the sender and sniffer threads: every frame then goes through the
        # same per-CPU backlog on cli, rtr and srv, so frames arrive in the order sent.
        self._affinity = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(self._affinity)})
        for ns in (self.ns_cli, self.ns_rtr, self.ns_srv):
            self.ip("netns", "add", ns)
            self.created.append(ns)
        c, r, s = self.ns_cli, self.ns_rtr, self.ns_srv
        for ns in (c, r, s):
            self.ip("link", "set", "lo", "up", ns=ns)
            self.sysctl(ns, **{"net.ipv6.conf.all.accept_dad": 0, "net.ipv6.conf.default.accept_dad": 0,
                               "net.ipv6.conf.default.accept_ra": 0, "net.ipv6.conf.all.accept_ra": 0})
        self.ip("link", "add", "name", "cli0", "address", CLI_MAC, "type", "veth",
                "peer", "name", "rtr0", "address", RTR_A_MAC, "netns", r, ns=c)
        self.ip("link", "add", "name", "rtr1", "address", RTR_B_MAC, "type", "veth",
                "peer", "name", "srv0", "address", SRV_MAC, "netns", s, ns=r)
        self.sysctl(r, **{"net.ipv4.ip_forward": 1, "net.ipv6.conf.all.forwarding": 1})
        for ns, dev, a4, a6 in ((c, "cli0", CLI_KERNEL4, CLI_KERNEL6), (r, "rtr0", RTR_A4, RTR_A6),
                                (r, "rtr1", RTR_B4, RTR_B6), (s, "srv0", SRV4, SRV6)):
            self.ip("addr", "add", f"{a4}/24", "dev", dev, ns=ns)
            self.ip("-6", "addr", "add", f"{a6}/64", "dev", dev, "nodad", ns=ns)
        self.cli_mac = self.mac(c, "cli0")
        self.rtr_mac = self.mac(r, "rtr0")  # the attacker's next hop
        rtr1_mac, srv_mac = self.mac(r, "rtr1"), self.mac(s, "srv0")
        # Keep packets as sent: no GRO, no TSO/GSO, and checksums computed in software
        # (so the capture on cli0 shows the server's real checksums).
        for ns, dev in ((c, "cli0"), (r, "rtr0"), (r, "rtr1"), (s, "srv0")):
            with in_netns(ns):
                for cmd in (ETHTOOL_SGRO, ETHTOOL_STSO, ETHTOOL_SGSO, ETHTOOL_STXCSUM):
                    try:
                        _ethtool_set(dev, cmd, 0)
                    except OSError as e:
                        self.offload_notes.append(f"{dev}: ethtool cmd {cmd:#x}: {e}")
        for ns, dev in ((c, "cli0"), (r, "rtr0"), (r, "rtr1"), (s, "srv0")):
            self.ip("link", "set", dev, "up", ns=ns)
        # srv: routes back via rtr, ACKs at once (no delayed ACKs: faster, deterministic).
        self.ip("route", "add", "default", "via", RTR_B4, "quickack", "1", ns=s)
        self.ip("-6", "route", "add", "default", "via", RTR_B6, "quickack", "1", ns=s)
        # Static neighbours: the attacker's address lives at cli0's MAC; rtr<->srv fixed.
        for a in (CLI4, CLI6):
            self.ip("neigh", "replace", a, "lladdr", self.cli_mac, "dev", "rtr0", "nud", "permanent", ns=r)
        for a in (SRV4, SRV6):
            self.ip("neigh", "replace", a, "lladdr", srv_mac, "dev", "rtr1", "nud", "permanent", ns=r)
        for a in (RTR_B4, RTR_B6):
            self.ip("neigh", "replace", a, "lladdr", rtr1_mac, "dev", "srv0", "nud", "permanent", ns=s)
        # The receiver.
        self.server = subprocess.Popen(
            ["ip", "netns", "exec", s, sys.executable, "-c", SERVER_CODE, str(self.hostdir), str(self.idle),
             str(SRV_PORT)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.server.stdout.readline()
        if b"ready" not in line:
            raise LabError(f"receiver did not start: {self.server.stderr.read().decode(errors='replace')}")
        # The attacker's raw socket (sends frames, sniffs the server's answers).
        with in_netns(c):
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
            self.sock.bind(("cli0", 0))
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            self.sock.settimeout(0.1)
        self.sniffer = threading.Thread(target=self._sniff, daemon=True)
        self.sniffer.start()

    def teardown(self):
        self.stop.set()
        for cap in self.captures:
            _stop_proc(cap)
        self.captures = []
        if self.server is not None:
            _stop_proc(self.server)
            self.server = None
        if self.sniffer is not None:
            self.sniffer.join(2)
            self.sniffer = None
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        for ns in reversed(self.created):
            self.ip("netns", "del", ns, check=False)
        self.created = []
        if getattr(self, "_affinity", None):
            os.sched_setaffinity(0, self._affinity)
            self._affinity = None
        if self._own_work:
            shutil.rmtree(self.work, ignore_errors=True)

    def kernel_info(self):
        with in_netns(self.ns_srv):
            sysctls = {}
            for k in ("net.ipv4.tcp_timestamps", "net.ipv4.tcp_sack", "net.ipv4.tcp_stdurg",
                      "net.ipv4.tcp_fastopen", "net.ipv4.tcp_rmem", "net.ipv4.conf.all.accept_source_route",
                      "net.ipv6.conf.all.accept_source_route"):
                try:
                    sysctls[k] = Path("/proc/sys/" + k.replace(".", "/")).read_text().split("\n")[0]
                except OSError:
                    pass
        return {"release": os.uname().release, "srv_sysctls": sysctls}

    # --- sniffing the live server ---

    def _sniff(self):
        while not self.stop.is_set():
            try:
                frame, addr = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            if addr[2] == PACKET_OUTGOING:
                continue
            seg = parse_tcp(frame)
            if seg is None or seg["sport"] != SRV_PORT:
                continue
            with self.cv:
                conn = self.conns.get((seg["fam"], seg["dport"]))
                if conn is not None and seg["src"] == conn.dst:
                    conn._on_server(seg)
                    self.cv.notify_all()

    # --- captures ---

    def start_capture(self, port, pcap):
        bpf = (f"(tcp port {port})"
               f" or (ip and host {CLI4} and (ip[6:2] & 0x3fff != 0))"  # IPv4 fragments
               f" or (icmp and host {CLI4})"
               # IPv6 with extension headers or fragments (libpcap's `tcp` and `ip6 proto`
               # look at most through a Fragment header, so test the header field itself)
               f" or (ip6 and host {CLI6} and ip6[6] != 6 and ip6[6] != 58)"
               f" or (ip6 and host {CLI6} and ip6[6] == 58 and ip6[40] < 128)"  # ICMPv6 errors, not ND
               # any 802.1Q/802.1ad frame (several tags: `vlan` below looks through one only)
               f" or (ether[12:2] == 0x8100) or (ether[12:2] == 0x88a8)"
               f" or (vlan and tcp port {port})")  # last: `vlan` shifts later offsets
        if not shutil.which("dumpcap"):
            raise LabError("dumpcap not installed")
        pcap = Path(pcap)
        pcap.parent.mkdir(parents=True, exist_ok=True)
        if pcap.exists():
            pcap.unlink()
        cap = subprocess.Popen(["ip", "netns", "exec", self.ns_cli, "dumpcap", "-i", "cli0", "-P", "-f", bpf,
                                "-w", str(pcap), "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.captures.append(cap)
        deadline = time.monotonic() + 10
        line = b""
        while b"Capturing on" not in line and time.monotonic() < deadline:
            line = cap.stderr.readline()
            if not line and cap.poll() is not None:
                break
        if b"Capturing on" not in line:
            _stop_proc(cap)
            raise LabError(f"dumpcap did not start: {line!r}")
        # "Capturing on" comes ~10-20 ms before the capture socket really takes frames.
        time.sleep(0.1)
        return cap

    def stop_capture(self, cap):
        # libpcap's TPACKET_V3 ring hands frames to dumpcap when a block is full or its
        # timer expires (dumpcap 4.0 has no immediate mode); frames still in an open
        # block are lost on SIGTERM. Let the block retire first.
        time.sleep(0.3)
        _stop_proc(cap)
        if cap in self.captures:
            self.captures.remove(cap)

    # --- running one case ---

    def run_case(self, case, port, pcap=None):
        """Runs `case` live on client port `port`, capturing into `pcap` (None: no
        capture). Returns {"host_read": bytes, "host_end": str, "frames_sent": int}."""
        conn = Conn(self, case, port)
        with self.cv:
            self.conns[(conn.fam, port)] = conn
        cli_mtu = getattr(case, "cli_mtu", None)
        srv_advmss = getattr(case, "srv_advmss", None)
        cap = self.start_capture(port, pcap) if pcap is not None else None
        try:
            if cli_mtu is not None:
                # Only cli0: rtr0 keeps 1500, so a longer frame is dropped by the veth.
                self.ip("link", "set", "cli0", "mtu", str(cli_mtu), ns=self.ns_cli)
                time.sleep(0.05)
            if srv_advmss is not None:
                self.srv_route(conn.fam, "advmss", str(srv_advmss))
            if case.pre is not None:
                self.execute(conn, case.pre(conn))
            conn.connect()
            self.execute(conn, case.build(conn))
            conn.close()
            if getattr(case, "all_conns", False):
                read, end = self.host_read_all(conn)
            else:
                read, end = self.host_read(conn)
        finally:
            if cap is not None:
                self.stop_capture(cap)
            with self.cv:
                self.conns.pop((conn.fam, port), None)
            if cli_mtu is not None:
                self.ip("link", "set", "cli0", "mtu", "1500", ns=self.ns_cli, check=False)
            if srv_advmss is not None:
                self.srv_route(conn.fam)
        missing = missing_frames(pcap, conn.sent) if pcap is not None else 0
        if missing:
            raise CaseError(f"capture lacks {missing} of {len(conn.sent)} sent frames")
        return {"host_read": read, "host_end": end, "frames_sent": len(conn.sent), "fill_segments": conn.filled}

    def host_read(self, conn, timeout=None):
        base = self.hostdir / f"{conn.fam}-{conn.sport}"
        deadline = time.monotonic() + (timeout or self.idle + 3)
        while time.monotonic() < deadline:
            if (base.with_suffix(".bin")).exists():
                data = base.with_suffix(".bin").read_bytes()
                end = base.with_suffix(".end").read_text()
                return data, end
            time.sleep(0.01)
        raise CaseError(f"the receiver wrote nothing for {conn.fam}-{conn.sport}")

    def host_read_all(self, conn):
        """What the receiver read on every connection from the case's port (a
        reconnect after TIME_WAIT is a second connection, recorded apart), joined
        in the order they ended; the end of the last one."""
        self.host_read(conn)  # the first connection
        time.sleep(self.idle + 1.5)  # a later one ends by EOF, RST or idle by then
        base = f"{conn.fam}-{conn.sport}"
        files = [self.hostdir / f"{base}.bin"] + sorted(self.hostdir.glob(f"{base}-c*.bin"),
                                                         key=lambda f: (len(f.stem), f.stem))
        data = b"".join(f.read_bytes() for f in files)
        return data, files[-1].with_suffix(".end").read_text()

    def srv_route(self, fam, *extra):
        """srv's default route, as set up, plus `extra` attributes (e.g. advmss)."""
        via = RTR_B6 if fam == 6 else RTR_B4
        self.ip(*(["-6"] if fam == 6 else []), "route", "change", "default", "via", via, "quickack", "1", *extra,
                ns=self.ns_srv)

    def execute(self, conn, steps):
        for st in steps:
            if isinstance(st, Sleep):
                time.sleep(st.secs)
            elif isinstance(st, Sync):
                conn.sync(st.quiet, st.max_wait)
            elif isinstance(st, Fill):
                conn.fill(st.stream, st.end, st.mss)
            elif isinstance(st, WaitSynAck):
                conn.wait_synack(st.isn, st.timeout)
            elif isinstance(st, Call):
                self.execute(conn, st.fn(conn))
            elif isinstance(st, Lossy):
                conn.tx(st.frame, may_drop=True)
            elif isinstance(st, (list, tuple)):
                self.execute(conn, st)
            else:
                conn.tx(st)


def _stop_proc(p):
    """SIGTERM (again if the first one came too early), then SIGKILL."""
    if p.poll() is not None:
        return
    for _ in range(4):
        try:
            p.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            p.wait(0.5)
            return
        except subprocess.TimeoutExpired:
            pass
    p.kill()
    p.wait(5)


def missing_frames(pcap, sent):
    """How many of the frames sent are not in the pcap byte for byte."""
    from collections import Counter

    from scapy.utils import RawPcapReader

    have = Counter()
    try:
        for data, _meta in RawPcapReader(str(pcap)):
            have[bytes(data)] += 1
    except (OSError, EOFError, ValueError):
        pass
    want = Counter(sent)
    return sum(max(0, n - have[b]) for b, n in want.items())


def parse_tcp(frame):
    """The TCP header fields of an Ethernet frame (IPv4/IPv6 without extension
    headers, unfragmented), or None."""
    off = 14
    et = frame[12:14]
    if et == b"\x81\x00":
        et, off = frame[16:18], 18
    try:
        if et == b"\x08\x00":
            ihl = (frame[off] & 0x0F) * 4
            if frame[off + 9] != 6 or struct.unpack("!H", frame[off + 6:off + 8])[0] & 0x3FFF:
                return None
            total = struct.unpack("!H", frame[off + 2:off + 4])[0]
            fam, src = 4, socket.inet_ntop(socket.AF_INET, frame[off + 12:off + 16])
            t, l4len = off + ihl, total - ihl
        elif et == b"\x86\xdd":
            if frame[off + 6] != 6:
                return None
            fam, src = 6, socket.inet_ntop(socket.AF_INET6, frame[off + 8:off + 24])
            t, l4len = off + 40, struct.unpack("!H", frame[off + 4:off + 6])[0]
        else:
            return None
        sport, dport, seq, ack, offflags, win = struct.unpack("!HHIIHH", frame[t:t + 16])
    except (IndexError, struct.error):
        return None
    doff = (offflags >> 12) * 4
    tsval = None
    opts = frame[t + 20:t + doff]
    i = 0
    while i < len(opts):
        kind = opts[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(opts) or opts[i + 1] < 2:
            break
        if kind == 8 and opts[i + 1] == 10:
            tsval = struct.unpack("!I", opts[i + 2:i + 6])[0]
        i += opts[i + 1]
    return {"fam": fam, "src": src, "sport": sport, "dport": dport, "seq": seq, "ack": ack,
            "flags": offflags & 0x1FF, "win": win, "len": max(0, l4len - doff), "tsval": tsval}


FIN, SYN, RST, PSH, ACK, URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20


def _s32(x):
    x &= MASK
    return x - (1 << 32) if x & 0x80000000 else x


class Conn:
    """One crafted TCP connection: live state learnt from the server, and builders
    for frames numbered relative to the live ISNs."""

    def __init__(self, lab, case, port):
        self.lab = lab
        self.case = case
        self.fam = 6 if case.v6 else 4
        self.sport, self.dport = port, SRV_PORT
        self.src, self.dst = (CLI6, SRV6) if case.v6 else (CLI4, SRV4)
        self.smac, self.dmac = lab.cli_mac, lab.rtr_mac
        self.other_mac = CLI_MAC_UNUSED
        self.isn = case.isn if case.isn is not None else random.getrandbits(32)
        self.use_ts = case.ts
        self.ts_base = random.getrandbits(31)
        self.t0 = time.monotonic()
        self.last_tsval = None
        self.ipid = random.getrandbits(16)
        self.end = 0  # where the FIN goes (set by Fill or by the case)
        self.sent = []
        self.filled = 0  # data segments sent by Fill (a plain sender's (re)transmissions)
        # learnt from the server
        self.srv_isn = None
        self.srv_nxt = None
        self.acked = None  # the server's latest ACK, relative to isn+1
        self.win = 0
        self.ts_recent = 0
        self.srv_fin = None
        self.srv_rst = False
        self.last_rx = 0.0
        self.synacks = {}
        self.rx = 0

    # --- state (called by the sniffer with lab.cv held) ---

    def _on_server(self, seg):
        self.rx += 1
        self.last_rx = time.monotonic()
        fl = seg["flags"]
        if seg["tsval"] is not None:
            self.ts_recent = seg["tsval"]
        if fl & RST:
            if self.srv_isn is not None:  # RSTs to decoy SYNs before the handshake do not count
                self.srv_rst = True
            return
        if fl & SYN and fl & ACK:
            self.synacks[(seg["ack"] - 1) & MASK] = seg["seq"]
            if seg["ack"] != (self.isn + 1) & MASK:
                return
            self.srv_isn = seg["seq"]
            nxt = (seg["seq"] + 1) & MASK
            self.srv_nxt = nxt if self.srv_nxt is None else self.srv_nxt
        if self.srv_isn is None:
            return
        if fl & ACK:
            rel = _s32(seg["ack"] - (self.isn + 1))
            if self.acked is None or rel > self.acked:
                self.acked = rel
            self.win = seg["win"]
        end = (seg["seq"] + seg["len"] + (1 if fl & FIN else 0)) & MASK
        if self.srv_nxt is not None and _s32(end - self.srv_nxt) > 0:
            self.srv_nxt = end
        if fl & FIN:
            self.srv_fin = seg["seq"]

    def _wait(self, pred, timeout):
        deadline = time.monotonic() + timeout
        with self.lab.cv:
            while not pred():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.lab.cv.wait(left)
            return True

    def sync(self, quiet=0.015, max_wait=0.4):
        start = time.monotonic()
        time.sleep(quiet)
        while time.monotonic() - start < max_wait:
            with self.lab.cv:
                idle = time.monotonic() - max(self.last_rx, start)
            if idle >= quiet:
                return
            time.sleep(quiet / 3)

    def wait_synack(self, isn, timeout=0.5):
        self._wait(lambda: (isn & MASK) in self.synacks, timeout)

    # --- numbering ---

    def seq(self, off):
        return (self.isn + 1 + off) & MASK

    def ack_no(self):
        return self.srv_nxt if self.srv_nxt is not None else 0

    def tsval(self):
        return (self.ts_base + int((time.monotonic() - self.t0) * 1000) + 1) & MASK

    # --- building frames ---

    def ip_layer(self, ttl=None, ipid=None, ipopts=None, ext=None, dst=None):
        from scapy.layers.inet import IP
        from scapy.layers.inet6 import IPv6

        if self.fam == 6:
            ip = IPv6(src=self.src, dst=dst or self.dst, hlim=64 if ttl is None else ttl)
            for h in ext or ():
                ip = ip / h
            return ip
        self.ipid = (self.ipid + 1) & 0xFFFF
        kw = {"options": ipopts} if ipopts else {}
        return IP(src=self.src, dst=dst or self.dst, ttl=64 if ttl is None else ttl,
                  id=self.ipid if ipid is None else ipid, flags="DF", **kw)

    def seg(self, off=None, data=b"", flags="PA", *, seq=None, ack=None, window=CLIENT_WINDOW, urgptr=0,
            ts=True, opts=None, extra_opts=(), ttl=None, ipid=None, ipopts=None, ext=None, dmac=None,
            vlan=None, tcp_csum=None, ip_csum=None, raw_ipopts=None, dataofs=None):
        """An Ethernet frame carrying a TCP segment at stream offset `off` (relative to
        the live ISN), or at absolute `seq`. ts=True adds the timestamp option when
        negotiated (False: none; (val, ecr): those values). tcp_csum/ip_csum="bad"
        corrupt a checksum; tcp_csum="partial" writes the checksum offload's
        pattern (the folded pseudo-header sum: wrong on a wire); raw_ipopts
        replaces the IPv4 options with raw bytes."""
        from scapy.layers.inet import TCP
        from scapy.layers.l2 import Dot1Q, Ether

        if seq is None:
            seq = self.seq(off)
        if ack is None:
            ack = self.ack_no() if "A" in flags else 0
        if opts is None:
            opts = []
            if self.use_ts and ts:
                if ts is True:
                    self.last_tsval = self.tsval()
                    ts = (self.last_tsval, self.ts_recent)
                opts = [("NOP", None), ("NOP", None), ("Timestamp", ts)]
            opts = opts + list(extra_opts)
        l2 = Ether(src=self.smac, dst=dmac or self.dmac)
        if vlan is not None:
            l2 = l2 / Dot1Q(vlan=vlan)
        if raw_ipopts is not None:
            from scapy.layers.inet import IPOption_NOP
            n = len(raw_ipopts)
            assert n % 4 == 0
            ipopts = [IPOption_NOP()] * n
        tcp = TCP(sport=self.sport, dport=self.dport, seq=seq & MASK, ack=ack & MASK, flags=flags,
                  window=window, urgptr=urgptr, options=opts)
        if dataofs is not None:
            tcp.dataofs = dataofs
        p = l2 / self.ip_layer(ttl, ipid, ipopts, ext) / tcp
        if data:
            from scapy.packet import Raw
            p = p / Raw(data)
        if tcp_csum == "partial":
            return _partial_csum(bytes(p))
        if tcp_csum == "bad" or ip_csum == "bad" or raw_ipopts is not None:
            built = p.__class__(bytes(p))
            if tcp_csum == "bad":
                p[TCP].chksum = built[TCP].chksum ^ 0x5A5A
            if raw_ipopts is not None or ip_csum == "bad":
                raw = bytearray(bytes(p))
                ipoff = 18 if vlan is not None else 14
                if raw_ipopts is not None:
                    raw[ipoff + 20:ipoff + 20 + len(raw_ipopts)] = raw_ipopts
                ihl = (raw[ipoff] & 0x0F) * 4
                raw[ipoff + 10:ipoff + 12] = b"\0\0"
                ck = _inet_csum(bytes(raw[ipoff:ipoff + ihl]))
                if ip_csum == "bad":
                    ck ^= 0x5A5A
                raw[ipoff + 10:ipoff + 12] = struct.pack("!H", ck)
                return bytes(raw)
        return p

    def frags(self, pkt, pieces, ident=None):
        """Fragments of `pkt` (an Ether/IP|IPv6/TCP frame). `pieces` are
        (start, end) or (start, end, bytes) over the IP payload (the TCP header and
        data); `bytes` replaces that piece's content (duplicates/overlaps with
        different data). Returns frames in the order given."""
        from scapy.layers.inet import IP, TCP
        from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment
        from scapy.layers.l2 import Ether
        from scapy.packet import Raw

        built = Ether(bytes(pkt))
        l4 = bytes(built[TCP])
        total = len(l4)
        out = []
        ident = (self.ipid ^ 0x5A5A if ident is None else ident)
        for pc in pieces:
            start, end = pc[0], pc[1]
            end = total if end is None else end
            chunk = pc[2] if len(pc) > 2 else l4[start:end]
            assert start % 8 == 0 and len(chunk) == end - start, pc
            mf = 0 if end >= total else 1
            eth = Ether(src=built.src, dst=built.dst)
            if self.fam == 4:
                ip = built[IP]
                f = eth / IP(src=ip.src, dst=ip.dst, ttl=ip.ttl, id=ident & 0xFFFF, proto=6,
                             flags="MF" if mf else 0, frag=start // 8) / Raw(chunk)
            else:
                ip = built[IPv6]
                f = eth / IPv6(src=ip.src, dst=ip.dst, hlim=ip.hlim, nh=44) / IPv6ExtHdrFragment(
                    nh=6, offset=start // 8, m=mf, id=ident) / Raw(chunk)
            out.append(f)
        return out

    def tx(self, frame, may_drop=False):
        raw = frame if isinstance(frame, (bytes, bytearray)) else bytes(frame)
        try:
            self.lab.sock.send(raw)
        except OSError:
            if not may_drop:
                raise
        self.sent.append(bytes(raw))

    # --- the connection's life ---

    def syn(self, isn=None, data=b"", **kw):
        syn_opts = getattr(self.case, "syn_opts", None)
        opts = list(syn_opts) if syn_opts is not None else [("MSS", 1460), ("SAckOK", b"")]
        if self.use_ts:
            self.last_tsval = self.tsval()
            opts += [("NOP", None), ("NOP", None), ("Timestamp", (self.last_tsval, 0))]
        isn = self.isn if isn is None else isn
        return self.seg(seq=isn, data=data, flags="S", ack=0, opts=opts, **kw)

    def connect(self):
        for attempt in range(5):
            self.tx(self.syn(data=self.case.syn_payload or b""))
            if self._wait(lambda: self.srv_isn is not None, 0.25 if attempt < 4 else 0.6):
                break
        else:
            raise CaseError("no SYN-ACK from the server")
        with self.lab.cv:
            self.acked = max(self.acked or 0, 0)
        self.tx(self.seg(0, flags="A"))

    def fill(self, stream, end=None, mss=MSS):
        end = len(stream) if end is None else end
        self.end = max(self.end, end)
        stuck = 0
        while True:
            with self.lab.cv:
                base, win, rst = self.acked, self.win, self.srv_rst
            if rst or base >= end or stuck >= 4:
                return
            limit = min(end, base + max(win, 1))
            for off in range(base, limit, mss):
                self.tx(self.seg(off, stream[off:min(off + mss, limit)]))
                self.filled += 1
            target = limit
            if not self._wait(lambda: self.acked >= target or self.srv_rst, 0.3):
                with self.lab.cv:
                    stuck = stuck + 1 if self.acked <= base else 0

    def close(self):
        """FIN at `end`; on its ACK, wait for the server's FIN and ACK it. If the FIN
        is not acknowledged (a hole remains), RST at the server's rcv_nxt."""
        with self.lab.cv:
            done = self.srv_rst
        if done:
            return
        self.tx(self.seg(self.end, flags="FA"))
        fin_acked = self._wait(lambda: self.acked >= self.end + 1 or self.srv_rst, 0.3)
        if fin_acked and not self.srv_rst:
            if self._wait(lambda: self.srv_fin is not None or self.srv_rst, self.lab.idle + 1):
                if not self.srv_rst:
                    self.tx(self.seg(self.end + 1, flags="A"))
            return
        if self.srv_rst:
            return
        # Not everything arrived: let the receiver read what it has, then reset.
        if not self._wait(lambda: self.srv_fin is not None or self.srv_rst, 0.05):
            with self.lab.cv:
                at = self.acked
            self.tx(self.seg(at, flags="R", ack=0, ts=False))


def _partial_csum(frame):
    """An untagged Ether/IPv4|IPv6/TCP frame with the TCP checksum field set to
    the folded pseudo-header sum, not complemented: what a capture on a host
    whose NIC computes checksums shows, and wrong on the wire."""
    raw = bytearray(frame)
    off = 14
    if raw[12:14] == b"\x08\x00":
        ihl = (raw[off] & 0xF) * 4
        l4 = struct.unpack("!H", raw[off + 2:off + 4])[0] - ihl
        t = off + ihl
        pseudo = bytes(raw[off + 12:off + 20]) + struct.pack("!HH", 6, l4)
    else:
        l4 = struct.unpack("!H", raw[off + 4:off + 6])[0]
        t = off + 40
        pseudo = bytes(raw[off + 8:off + 40]) + struct.pack("!IxxxB", l4, 6)
    raw[t + 16:t + 18] = struct.pack("!H", ~_inet_csum(pseudo) & 0xFFFF)
    return bytes(raw)


def _inet_csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF
