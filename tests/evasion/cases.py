"""TCP/IP evasion cases against a passive monitor, run live against Linux (netlab.py).

The payload is HL7 v2 over MLLP (0x0b ... 0x1c 0x0d): two infusion orders of exactly
equal byte length, so one can overwrite the other byte for byte:

    UNSAFE  MSH-10 "EV-U9000", heparin 180.0 mL/h x 25000 U/500 mL = 9000 U/h (> 2000 hard max)
    SAFE    MSH-10 "EV-S1000", heparin 20.00 mL/h x 25000 U/500 mL = 1000 U/h

They differ in two places only: the control id (D1, at CI) and the rate (D2, at RI).

Each case is a function `build(conn)` returning the crafted frames (numbered relative
to the live ISNs, addressed with the live MACs) and a few steps (Sync, Fill, Sleep,
...; see netlab), plus metadata. `expect` is what we predicted the host reads (None:
no prediction); the kernel's answer is what the corpus records.
"""
from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field

from netlab import (CLI_MAC_UNUSED, IDLE_SECS, MASK, SRV4, SRV6, Call, CaseError, Fill, Lossy, Sleep, Sync, WaitSynAck,
                    _inet_csum)

SB, EB = b"\x0b", b"\x1c\x0d"


# --- the payload (a frozen copy of tests/interop/test_hl7_mllp.py's builders, so the
# corpus does not change when those helpers do; gen_corpus.py checks they agree) ---

def rxg(**fields):
    n = max(int(k[1:]) for k in fields)
    parts = ["RXG"] + [""] * n
    for k, v in fields.items():
        parts[int(k[1:])] = v
    return "|".join(parts)


def heparin(rate_ml_h, **extra):
    return rxg(
        f1="1", f4="HEP^heparin^LOCAL", f5="100", f7="mL^mL^UCUM",
        f15=str(rate_ml_h), f16="265266^MDC_DIM_MILLI_L_PER_HR^MDC",
        f17="25000", f18="U^U^UCUM", f23="500", f24="mL^mL^UCUM", **extra,
    )


def order(control_id, *rxgs, sep="^"):
    segs = [
        f"MSH|{sep}~\\&|EHR|ICU|PUMPSRV|ICU|20261124031500||RGV{sep}O15{sep}RGV_O15|{control_id}|P|2.6",
        f"PID|||4711{sep}{sep}{sep}HOSP{sep}MR||Doe{sep}Jane",
        f"ORC|RE|ORD-1{sep}EHR",
    ]
    for r in rxgs:
        segs += [r.replace("^", sep), f"RXR|IV{sep}Intravenous{sep}HL70162"]
    return "\r".join(segs) + "\r"


def observation(control_id, n_obx=3):
    segs = [
        f"MSH|^~\\&|MONGW|ICU|EHR|ICU|20261124031500||ORU^R01^ORU_R01|{control_id}|P|2.6",
        "PID|||4711^^^HOSP^MR||Doe^Jane",
        "OBR|1|||69837^MDC_DEV_METER_PHYSIO_MULTI_PARAM_MDS^MDC",
    ]
    segs += [f"OBX|{i}|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.{i}|9{i % 10}|262688^MDC_DIM_PERCENT^MDC|||||R"
             for i in range(1, n_obx + 1)]
    return "\r".join(segs) + "\r"


def mllp(text):
    return SB + text.encode() + EB


CID_U, CID_S = "EV-U9000", "EV-S1000"
RATE_U, RATE_S = "180.0", "20.00"
UNSAFE_TEXT = order(CID_U, heparin(RATE_U))
SAFE_TEXT = order(CID_S, heparin(RATE_S))
U = mllp(UNSAFE_TEXT)
S = mllp(SAFE_TEXT)
M = len(U)
assert len(S) == M
CI = U.index(CID_U.encode())  # D1: [CI, CI+8)
RI = U.index(b"|180.0|") + 1  # D2: [RI, RI+5)
assert all(CI <= i < CI + 8 or RI <= i < RI + 5 for i in range(M) if U[i] != S[i])
K = CI - 4  # split point: both differing regions lie in [K, M)

HARD_MAX_U_H = 2000.0


def fillers(total, n_obx=20, prefix="EV-F"):
    """ORU observation frames (never unsafe) adding up to at least `total` bytes."""
    out, i = [], 0
    while sum(map(len, out)) < total:
        out.append(mllp(observation(f"{prefix}{i:04d}", n_obx)))
        i += 1
    return b"".join(out)


# --- reading back what the host read ---------------------------------------------

def _nm(text):
    t = text.strip()
    d = t[1:] if t[:1] in "+-" else t
    if not d or d.count(".") > 1 or not all(ch.isdigit() or ch == "." for ch in d) or not any(ch.isdigit() for ch in d):
        return None
    return float(t)


def parse_order(payload):
    """(control_id, unsafe, message_type, rate U/h) of an HL7 message, None where the
    message does not say (or does not parse)."""
    text = payload.decode("latin-1")
    segs = [s for s in text.replace("\n", "\r").split("\r") if s]
    if not segs or not segs[0].startswith("MSH|") or len(segs[0]) < 8:
        return None, None, None, None
    msh = segs[0].split("|")
    if len(msh) < 12:
        return None, None, None, None
    cid = msh[9] or None
    mtype = msh[8] or None
    unsafe = False
    rate_u_h = None
    for s in segs[1:]:
        f = s.split("|")
        if f[0] != "RXG":
            continue
        f += [""] * (25 - len(f))
        if "HEP" not in f[4] and "heparin" not in f[4].lower():
            continue
        rate, amount, volume = _nm(f[15]), _nm(f[17]), _nm(f[23])
        if rate is None or amount is None or not volume:
            unsafe = None
            continue
        r = rate * amount / volume
        rate_u_h = r if rate_u_h is None else max(rate_u_h, r)
        if r > HARD_MAX_U_H and unsafe is not None:
            unsafe = True
    return cid, unsafe, mtype, rate_u_h


def frames_read(data):
    """The MLLP frames in `data`, in order: [{"control_id", "unsafe", "complete", ...}].
    Bytes outside 0x0b ... 0x1c 0x0d are skipped; a trailing frame without its end
    block is listed with complete=false."""
    out = []
    i = 0
    while True:
        sb = data.find(SB, i)
        if sb < 0:
            break
        eb = data.find(EB, sb + 1)
        complete = eb >= 0
        body = data[sb + 1:eb] if complete else data[sb + 1:]
        cid, unsafe, mtype, rate = parse_order(body)
        out.append({"control_id": cid, "unsafe": unsafe, "message_type": mtype,
                    "heparin_u_per_h": rate, "complete": complete, "bytes": len(body) + (3 if complete else 1)})
        if not complete:
            break
        i = eb + 2
    return out


def summary(data):
    """A short text of what `data` holds (for INDEX.md)."""
    fr = frames_read(data)
    if not data:
        return "nothing"
    parts = []
    run_oru = 0
    for f in fr:
        if f["message_type"] and f["message_type"].startswith("ORU") and f["complete"]:
            run_oru += 1
            continue
        if run_oru:
            parts.append(f"{run_oru}x ORU filler")
            run_oru = 0
        if f["control_id"] is None:
            parts.append("unparseable frame" + ("" if f["complete"] else " (truncated)"))
        else:
            verdict = {True: "UNSAFE", False: "safe", None: "rate unreadable"}[f["unsafe"]]
            rate = f" {f['heparin_u_per_h']:g} U/h" if f["heparin_u_per_h"] is not None else ""
            parts.append(f"{f['control_id']} {verdict}{rate}" + ("" if f["complete"] else " (truncated)"))
    if run_oru:
        parts.append(f"{run_oru}x ORU filler")
    if not fr:
        parts.append(f"{len(data)} bytes, no frame")
    grouped = []  # "40x EV-S1000 safe 1000 U/h" rather than 40 times the same
    for p in parts:
        if grouped and grouped[-1][0] == p:
            grouped[-1][1] += 1
        else:
            grouped.append([p, 1])
    return "; ".join(p if n == 1 else f"{n}x {p}" for p, n in grouped)


# --- cases ------------------------------------------------------------------------

@dataclass
class Case:
    name: str
    cls: str
    description: str
    build: object
    v6: bool = False
    ts: bool = False  # negotiate TCP timestamps on the handshake
    syn_payload: bytes | None = None
    pre: object = None  # steps before the real handshake (decoy SYNs)
    isn: int | None = None
    expect: bytes | None = None  # predicted host read (None: no prediction)
    syn_opts: list | None = None  # the SYN's TCP options (None: MSS and SACK-permitted)
    tags: list = field(default_factory=list)
    cli_mtu: int | None = None  # cli0's MTU during the case (rtr0 keeps 1500: longer frames are dropped)
    srv_advmss: int | None = None  # srv's route announces this MSS during the case
    all_conns: bool = False  # the host read is every connection's from the port (reconnects), joined


CASES: list[Case] = []


def case(name, cls, description, build, **kw):
    assert all(c.name != name for c in CASES), name
    CASES.append(Case(name, cls, description, build, **kw))


def segs(c, stream, pieces, **kw):
    """Frames for (start, end) pieces of `stream`, in the order given."""
    return [c.seg(a, stream[a:b], **kw) for a, b in pieces]


def chunks(n, size, lo=0):
    return [(a, min(a + size, n)) for a in range(lo, n, size)]


def fin_at(end):
    def set_end(c):
        c.end = end
        return []
    return Call(set_end)


# --- baseline ------------------------------------------------------------------------

for fam in (4, 6):
    v6 = fam == 6
    sfx = "_v6" if v6 else ""
    cls = "ipv6" if v6 else "baseline"
    case(f"baseline_unsafe{sfx}", cls, f"Plain IPv{fam} connection carrying the UNSAFE order: host and any monitor read UNSAFE.",
         lambda c: [Fill(U)], v6=v6, expect=U)
    case(f"baseline_safe{sfx}", cls, f"Plain IPv{fam} connection carrying the SAFE order (control).",
         lambda c: [Fill(S)], v6=v6, expect=S)
case("baseline_safe_then_unsafe", "baseline", "SAFE then UNSAFE order on one connection, plain segments.",
     lambda c: [Fill(S + U)], expect=S + U)
case("baseline_unsafe_timestamps", "baseline", "UNSAFE order with TCP timestamps negotiated (the PAWS cases' baseline).",
     lambda c: [Fill(U)], ts=True, expect=U)
case("baseline_seq_wrap", "baseline", "UNSAFE order whose sequence numbers wrap past 2^32 mid-frame (ISN 2^32-100).",
     lambda c: [Fill(U, mss=64)], isn=(1 << 32) - 100, expect=U)


# --- overlaps and out-of-order -------------------------------------------------------

def overlap_cases(v6=False):
    sfx = "_v6" if v6 else ""
    cls = "ipv6" if v6 else "overlap"
    kw = {"v6": v6}
    case(f"ovl_retrans_delivered_diff{sfx}", cls,
         "UNSAFE delivered in order and acknowledged; then a retransmission of the whole frame with SAFE bytes. "
         "Linux keeps the bytes already delivered (old data is dropped); a last-copy-wins monitor sees SAFE.",
         lambda c: [Fill(U), Sync(), c.seg(0, S)], expect=U, **kw)
    case(f"ovl_same_start_longer{sfx}", cls,
         "Out of order: SAFE bytes [K, RI+8) are queued, then UNSAFE [K, end) with the same start and longer "
         "replaces them in Linux's out-of-order queue; then the hole [0, K) is filled. A first-copy-wins monitor sees SAFE.",
         lambda c: [c.seg(K, S[K:RI + 8]), c.seg(K, U[K:]), c.seg(0, U[:K]), Sync(), Fill(U)], expect=U, **kw)
    case(f"ovl_hole_filler_differs{sfx}", cls,
         "UNSAFE [0, CI+4) delivered; SAFE [RI-2, end) queued out of order; then a hole filler [CI-2, RI+8) whose head "
         "re-sends delivered bytes as SAFE and whose tail overlaps the queued SAFE bytes with UNSAFE ones. Linux keeps "
         "delivered bytes and lets the in-order filler win over queued data: UNSAFE. First-wins sees a SAFE rate, "
         "last-wins a SAFE control id.",
         lambda c: [Fill(U, end=CI + 4), Sync(), c.seg(RI - 2, S[RI - 2:]),
                    c.seg(CI - 2, S[CI - 2:CI + 4] + U[CI + 4:RI + 8]), Sync(), Fill(U)], expect=U, **kw)
    case(f"ovl_reversed_decoy_first{sfx}", cls,
         "40-byte chunks in reverse order, first all SAFE (except chunk 0), then all UNSAFE with the same boundaries. "
         "One would expect exact duplicates in the out-of-order queue to be dropped (first copy wins: SAFE). Linux "
         "does drop most, but when the UNSAFE copy of [160, 200) arrives its rb-tree walk meets the queued SAFE "
         "[120, 160) first and coalesces the new segment onto that adjacent one before it sees the duplicate; the "
         "coalesced buffer starts lower, so its bytes win on delivery. The host reads control id EV-S1000 with the "
         "UNSAFE rate 180.0 (9000 U/h). A first-wins monitor sees SAFE.",
         lambda c: [segs(c, S, reversed(chunks(M, 40, 40))), segs(c, U, reversed(chunks(M, 40))), Sync(), Fill(U)],
         expect=S[:160] + U[160:200] + S[200:], **kw)


overlap_cases()
case("ovl_retrans_overlapping_new_tail", "overlap",
     "UNSAFE [0, RI+10) delivered; then a segment [0, end) with SAFE bytes: the part before rcv_nxt is old (dropped), "
     "only the new tail is taken. Host: UNSAFE; last-wins: SAFE.",
     lambda c: [Fill(U, end=RI + 10), Sync(), c.seg(0, S), Sync(), Fill(U)], expect=U)
case("ovl_same_start_shorter", "overlap",
     "Out of order: UNSAFE [K, end) queued, then SAFE [K, RI+8) (same start, shorter: fully covered, dropped); then "
     "[0, K). Host: UNSAFE; last-wins: SAFE.",
     lambda c: [c.seg(K, U[K:]), c.seg(K, S[K:RI + 8]), c.seg(0, U[:K]), Sync(), Fill(U)], expect=U)
case("ovl_starts_before_covers", "overlap",
     "Out of order: SAFE [CI, RI+5) queued; then UNSAFE [CI-3, end) starting before and covering it (Linux removes "
     "the covered segment); then the hole. Host: UNSAFE; first-wins: SAFE.",
     lambda c: [c.seg(CI, S[CI:RI + 5]), c.seg(CI - 3, U[CI - 3:]), c.seg(0, U[:CI - 3]), Sync(), Fill(U)], expect=U)
case("ovl_partial_left", "overlap",
     "Out of order: SAFE [CI-2, end) queued; UNSAFE [CI-10, RI+8) overlaps its head (both kept); on delivery the "
     "lower-sequence segment's bytes win: UNSAFE. First-wins: SAFE.",
     lambda c: [c.seg(CI - 2, S[CI - 2:]), c.seg(CI - 10, U[CI - 10:RI + 8]), c.seg(0, U[:CI - 10]), Sync(), Fill(U)],
     expect=U)
case("ovl_partial_right", "overlap",
     "Out of order: UNSAFE [CI-2, RI+8) queued; SAFE [CI+4, end) overlaps its tail (both kept); on delivery the "
     "lower-sequence bytes win: UNSAFE. Last-wins: SAFE.",
     lambda c: [c.seg(CI - 2, U[CI - 2:RI + 8]), c.seg(CI + 4, S[CI + 4:]), c.seg(0, U[:CI - 2]), Sync(), Fill(U)],
     expect=U)
case("ovl_covering_multiple", "overlap",
     "Out of order: three small SAFE segments over both differing regions queued; one UNSAFE segment from CI-1 to "
     "the end covers them all (they are removed); then the hole. Host: UNSAFE; first-wins: SAFE.",
     lambda c: [c.seg(CI, S[CI:CI + 4]), c.seg(CI + 4, S[CI + 4:CI + 8]), c.seg(RI, S[RI:RI + 5]),
                c.seg(CI - 1, U[CI - 1:]), c.seg(0, U[:CI - 1]), Sync(), Fill(U)], expect=U)
case("ovl_ofo_exact_dup_first_wins", "overlap",
     "Out of order: SAFE [K, end) queued, then UNSAFE [K, end) exactly on top (a duplicate: dropped), then [0, K). "
     "The host reads SAFE (control: last-wins would alert on UNSAFE).",
     lambda c: [c.seg(K, S[K:]), c.seg(K, U[K:]), c.seg(0, U[:K]), Sync(), Fill(U)], expect=S)
case("ovl_tiny_inorder", "overlap", "UNSAFE as one-byte segments, in order.",
     lambda c: [segs(c, U, chunks(M, 1)), Sync(), Fill(U)], expect=U)
case("ovl_tiny_reverse", "overlap", "UNSAFE as one-byte segments in reverse order (the first byte fills the hole last).",
     lambda c: [segs(c, U, reversed(chunks(M, 1))), Sync(), Fill(U)], expect=U)
case("ovl_tiny_stale_dups", "overlap",
     "One-byte segments in order, each followed by a SAFE retransmission of the same byte (old data: dropped). "
     "Host: UNSAFE; last-wins: SAFE.",
     lambda c: [[c.seg(i, U[i:i + 1]), c.seg(i, S[i:i + 1])] for i in range(M)] + [Sync(), Fill(U)], expect=U)
case("ovl_reversed_chunks", "overlap", "UNSAFE in 40-byte chunks sent in reverse order.",
     lambda c: [segs(c, U, reversed(chunks(M, 40))), Sync(), Fill(U)], expect=U)
case("ovl_interleaved_ofo", "overlap",
     "Out of order, interleaved overlapping segments alternating UNSAFE and SAFE across both differing regions, then "
     "the hole: which bytes survive depends on Linux's out-of-order queue rules (the corpus records what it read).",
     lambda c: [c.seg(CI - 6, U[CI - 6:CI + 2]), c.seg(CI - 2, S[CI - 2:CI + 6]), c.seg(CI + 1, U[CI + 1:RI]),
                c.seg(RI - 4, S[RI - 4:RI + 3]), c.seg(RI + 1, U[RI + 1:]), c.seg(0, U[:CI - 6]), Sync(), Fill(U)])
case("ovl_interleaved_inorder", "overlap",
     "In order, each segment overlapping the previous one's tail with the other order's bytes: UNSAFE [0,CI+3), SAFE "
     "[CI-5,CI+10), UNSAFE [CI+8,RI+2), SAFE [RI-3,end). Linux keeps the first copy of every byte: the host reads a "
     "mix, control id EV-S1000 and rate '18.00' (900 U/h).",
     lambda c: [c.seg(0, U[:CI + 3]), c.seg(CI - 5, S[CI - 5:CI + 10]), c.seg(CI + 8, U[CI + 8:RI + 2]),
                c.seg(RI - 3, S[RI - 3:]), Sync(), Fill(U)],
     expect=U[:CI + 3] + S[CI + 3:CI + 10] + U[CI + 10:RI + 2] + S[RI + 2:])
case("ovl_gap_never_filled", "overlap",
     "UNSAFE with the bytes [CI-4, CI+8) never sent; the connection is reset at the end. The host reads only the "
     "part before the hole (control: a monitor must not claim a complete order).",
     lambda c: [c.seg(0, U[:CI - 4]), c.seg(CI + 8, U[CI + 8:]), fin_at(M)], expect=U[:CI - 4])
case("ovl_wrap_retrans_diff", "overlap",
     "Sequence numbers wrap past 2^32 inside the frame; UNSAFE delivered, then a SAFE retransmission across the wrap.",
     lambda c: [Fill(U, mss=100), Sync(), c.seg(0, S)], isn=(1 << 32) - 150, expect=U)


# --- decoys the host drops -------------------------------------------------------------

def decoy_pair(name, what, mutate, v6=False, ts=False, cls="decoy", expect=U, patterns=("inorder", "ofo")):
    """A decoy carrying SAFE bytes that the host should drop, then the real UNSAFE
    bytes. inorder: the decoy is the whole frame at the next expected sequence number.
    ofo: the decoy is queued out of order over [K, end) before the real copy and the hole."""
    fam = "IPv6" if v6 else "IPv4"
    if "inorder" in patterns:
        case(f"{name}_inorder", cls,
             f"{fam}: a SAFE copy of the whole frame {what}, then the real UNSAFE frame at the same sequence numbers. "
             f"A monitor that accepts the decoy (first copy wins) sees SAFE.",
             lambda c: [c.seg(0, S, **mutate(c)), Sync(), Fill(U)], v6=v6, ts=ts, expect=expect)
    if "ofo" in patterns:
        case(f"{name}_ofo", cls,
             f"{fam}: out of order, SAFE bytes [K, end) {what}, then the real UNSAFE [K, end), then the hole [0, K). "
             f"Had the host kept the decoy, the real copy would be a duplicate.",
             lambda c: [c.seg(K, S[K:], **mutate(c)), c.seg(K, U[K:]), c.seg(0, U[:K]), Sync(), Fill(U)],
             v6=v6, ts=ts, expect=expect)


def _lsrr():
    from scapy.layers.inet import IPOption_LSRR
    return [IPOption_LSRR(routers=[SRV4])]


def _ssrr():
    from scapy.layers.inet import IPOption_SSRR
    return [IPOption_SSRR(routers=[SRV4])]


def _rr():
    from scapy.layers.inet import IPOption_RR
    return [IPOption_RR(routers=["0.0.0.0", "0.0.0.0"])]


def _dstopt(otype):
    from scapy.layers.inet6 import HBHOptUnknown, IPv6ExtHdrDestOpt
    return [IPv6ExtHdrDestOpt(options=[HBHOptUnknown(otype=otype, optdata=b"\0\0\0\0")])]


def _rh0(segleft):
    from scapy.layers.inet6 import IPv6ExtHdrRouting
    return [IPv6ExtHdrRouting(type=0, segleft=segleft, addresses=[SRV6])]


MD5 = [("MD5", bytes(range(16)))]

decoy_pair("decoy_bad_tcp_csum", "with a wrong TCP checksum", lambda c: {"tcp_csum": "bad"})
decoy_pair("decoy_bad_ip_csum", "with a wrong IPv4 header checksum (rtr drops it)", lambda c: {"ip_csum": "bad"})
decoy_pair("decoy_no_ack_flag", "without the ACK flag (PSH only)", lambda c: {"flags": "P"})
decoy_pair("decoy_ack_unsent", "acknowledging data the server never sent (ACK 100000 ahead)",
           lambda c: {"ack": (c.ack_no() + 100000) & MASK})
decoy_pair("decoy_ack_too_old", "with an ACK 200000 behind (more than the window: RFC 5961 blind-injection check)",
           lambda c: {"ack": (c.ack_no() - 200000) & MASK})
decoy_pair("decoy_paws_old_ts", "with a timestamp 100000 older than the last one (PAWS; timestamps negotiated)",
           lambda c: {"ts": ((c.last_tsval - 100000) & MASK, c.ts_recent)}, ts=True)
decoy_pair("decoy_ipopt_lsrr", "with an IPv4 loose source route option (accept_source_route=0: dropped)",
           lambda c: {"ipopts": _lsrr()})
decoy_pair("decoy_ipopt_ssrr", "with an IPv4 strict source route option", lambda c: {"ipopts": _ssrr()})
decoy_pair("decoy_ipopt_badlen", "with a malformed IPv4 option (record route, length 40 > the 4 option bytes)",
           lambda c: {"raw_ipopts": b"\x07\x28\x04\x00"})
decoy_pair("decoy_tcp_md5", "with a TCP MD5 signature option (kind 19); the server has no key",
           lambda c: {"extra_opts": MD5})
decoy_pair("decoy_wrong_mac", "in a frame to another station's MAC (02:00:5e:77:00:99)",
           lambda c: {"dmac": CLI_MAC_UNUSED})
decoy_pair("decoy_vlan_tag", "in a frame tagged VLAN 77 (same addresses and ports)", lambda c: {"vlan": 77})
decoy_pair("decoy_ttl1", "with IPv4 TTL 1 (expires at the router)", lambda c: {"ttl": 1})
decoy_pair("decoy_tcp_doff_short", "with a TCP data offset of 4 (< 20 bytes: malformed header)",
           lambda c: {"dataofs": 4})
decoy_pair("decoy_v6_dstopt_discard", "with a destination-options header holding unknown option 0x5e "
           "(action bits 01: discard)", lambda c: {"ext": _dstopt(0x5E)}, v6=True)
decoy_pair("decoy_v6_rh0", "with a type 0 routing header, segments left 1 (deprecated: dropped)",
           lambda c: {"ext": _rh0(1)}, v6=True)
decoy_pair("decoy_v6_hoplimit1", "with hop limit 1 (expires at the router)", lambda c: {"ttl": 1}, v6=True)

case("decoy_ack_old_nothing_sent", "decoy",
     "A SAFE copy of the frame whose ACK is 1000 behind SND.UNA, then the real UNSAFE frame. RFC 5961 accepts ACKs "
     "down to SND.UNA - MAX.SND.WND (65535 here), but Linux also bounds that by the bytes the server has had "
     "acknowledged (tcp_ack: min(max_window, bytes_acked)), which is 0 as the server sent nothing: the decoy is "
     "dropped as a too-old ACK. A monitor applying RFC 5961 alone keeps the SAFE copy.",
     lambda c: [c.seg(0, S, ack=(c.ack_no() - 1000) & MASK), Sync(), Fill(U)], expect=U)
case("decoy_ts_missing", "decoy",
     "Timestamps negotiated; a SAFE copy of the frame WITHOUT the timestamp option, then the real UNSAFE frame "
     "(RFC 7323 says drop; the corpus records what Linux does).",
     lambda c: [c.seg(0, S, ts=False), Sync(), Fill(U)], ts=True)
FILL70K = fillers(70000)
case("decoy_beyond_window", "decoy",
     f"A SAFE frame at stream offset {len(FILL70K)}, beyond the server's receive window (<= 65535, no window "
     f"scaling) when sent, so dropped; then {len(FILL70K)} bytes of ORU observation frames and the real UNSAFE frame "
     f"at that offset. A monitor that ignores the window keeps the SAFE copy first.",
     lambda c: [c.seg(len(FILL70K), S), Sync(), Fill(FILL70K + U)], expect=FILL70K + U)


def _trailer_frame(c):
    return bytes(c.seg(0, U[:K])) + S[K:]


case("decoy_ip_len_trailer", "decoy",
     "The first segment's IPv4 total length covers UNSAFE [0, K) only, but the Ethernet frame goes on with SAFE "
     "[K, end) (a trailer the host trims); then the real UNSAFE [K, end). A monitor taking the frame length as the "
     "payload length sees SAFE first.",
     lambda c: [_trailer_frame(c), c.seg(K, U[K:]), Sync(), Fill(U)], expect=U)
case("decoy_v6_len_trailer", "ipv6",
     "IPv6 variant of decoy_ip_len_trailer: the payload length covers UNSAFE [0, K), the frame carries SAFE [K, end) "
     "after it.",
     lambda c: [_trailer_frame(c), c.seg(K, U[K:]), Sync(), Fill(U)], v6=True, expect=U)

# Decoys the host accepts (controls: the host reads SAFE).
for name, what, mutate, v6 in [
    ("ctl_ipopt_nop", "with IPv4 options NOP NOP NOP EOL", lambda c: {"raw_ipopts": b"\x01\x01\x01\x00"}, False),
    ("ctl_ipopt_rr", "with an IPv4 record route option", lambda c: {"ipopts": _rr()}, False),
    ("ctl_ipopt_unknown", "with an unknown IPv4 option (type 0x9e, Linux ignores it on receive)",
     lambda c: {"raw_ipopts": b"\x9e\x04\x00\x00"}, False),
    ("ctl_ttl2", "with IPv4 TTL 2 (one left after the router)", lambda c: {"ttl": 2}, False),
    ("ctl_vlan0", "in a priority-tagged frame (802.1Q VLAN 0)", lambda c: {"vlan": 0}, False),
    ("ctl_v6_dstopt_skip", "with a destination option 0x1e (unknown, action bits 00: skip)",
     lambda c: {"ext": _dstopt(0x1E)}, True),
    ("ctl_v6_rh0_segleft0", "with a type 0 routing header, segments left 0 (ignored)", lambda c: {"ext": _rh0(0)}, True),
    ("ctl_v6_hoplimit2", "with hop limit 2", lambda c: {"ttl": 2}, True),
]:
    case(name, "decoy",
         f"Control: a SAFE copy {what}, which the host accepts, then the UNSAFE frame at the same sequence numbers "
         f"(a duplicate). The host reads SAFE.",
         (lambda m: lambda c: [c.seg(0, S, **m(c)), Sync(), Fill(U)])(mutate), v6=v6, expect=S)
case("ctl_ts_equal", "decoy",
     "Control: timestamps negotiated; a SAFE frame whose TSval equals the last one (not older: PAWS passes), then "
     "UNSAFE at the same sequence numbers. The host reads SAFE.",
     lambda c: [c.seg(0, S, ts=(c.last_tsval, c.ts_recent)), Sync(), Fill(U)], ts=True, expect=S)


# --- control packets ----------------------------------------------------------------

KC = RI - 20  # where control packets interrupt the UNSAFE frame (before the rate)


def control_cases(v6=False):
    sfx = "_v6" if v6 else ""
    cls = "ipv6" if v6 else "control"
    fam = "IPv6" if v6 else "IPv4"
    case(f"rst_bad_csum{sfx}", cls,
         f"{fam}: UNSAFE up to RI-20, an RST at exactly rcv_nxt with a wrong checksum (dropped), then the rest. "
         f"A monitor honouring the RST stops before the rate.",
         lambda c: [Fill(U, end=KC), Sync(), c.seg(KC, flags="R", ack=0, ts=False, tcp_csum="bad"), Sync(), Fill(U)],
         v6=v6, expect=U)
    case(f"fin_bad_csum{sfx}", cls,
         f"{fam}: UNSAFE up to RI-20, a FIN there with a wrong checksum (dropped), then the rest.",
         lambda c: [Fill(U, end=KC), Sync(), c.seg(KC, flags="FA", tcp_csum="bad"), Sync(), Fill(U)], v6=v6, expect=U)
    case(f"syn_midstream{sfx}", cls,
         f"{fam}: UNSAFE up to RI-20, then a SYN at rcv_nxt carrying the SAFE rest (RFC 5961: challenge ACK, "
         f"dropped), then the real UNSAFE rest.",
         lambda c: [Fill(U, end=KC), Sync(), c.seg(KC, S[KC:], flags="S", ack=0), Sync(), Fill(U)], v6=v6, expect=U)


control_cases()


def fin_queue_cases(v6=False):
    """A FIN waiting in Linux's out-of-order queue meets data at its place
    (session 35's capture review): `tcp_data_queue_ofo` replaces a queued
    segment with a longer one from the same start, drops one all of whose bits
    are queued, and removes the queued ones a new segment covers (merge_right);
    `tcp_ofo_queue` purges the queue once it reads a FIN."""
    sfx = "_v6" if v6 else ""
    cls = "ipv6" if v6 else "control"
    su = S + U
    case(f"fin_ofo_replaced_boundary{sfx}", cls,
         "SAFE's end: a bare FIN out of order at len(SAFE), then UNSAFE from there (longer, same start: replaces "
         "the FIN), then SAFE fills the hole. The host reads both orders.",
         lambda c: [c.seg(M, flags="FA"), Sync(), c.seg(M, U), Sync(), c.seg(0, S), Sync(), Fill(su)],
         v6=v6, expect=su)
    case(f"fin_inside_ofo_boundary{sfx}", cls,
         "UNSAFE queued out of order at len(SAFE), then a bare FIN there (its bit is queued: dropped), then SAFE "
         "fills the hole. The host reads both orders.",
         lambda c: [c.seg(M, U), Sync(), c.seg(M, flags="FA"), Sync(), c.seg(0, S), Sync(), Fill(su)],
         v6=v6, expect=su)


fin_queue_cases()
fin_queue_cases(v6=True)


def fin_queue_cases_2(v6=False):
    """The next review of the same (session 35): a FIN coalesced into the
    queued segment it continues goes with that segment; each queued FIN is
    judged on its own; a FIN read in order ends the stream before the queue is
    read. Most are controls where the host stops at a FIN before UNSAFE."""
    sfx = "_v6" if v6 else ""
    cls = "ipv6" if v6 else "control"
    su = S + U

    def rst(off):
        return Call(lambda c: [c.seg(off, flags="R", ack=0, ts=False)])

    case(f"fin_two_ofo_starts{sfx}", cls,
         "Bare FINs out of order at len(SAFE)+10 and len(SAFE); UNSAFE[10:] replaces the higher, UNSAFE[:10] the "
         "lower; SAFE fills the hole.",
         lambda c: [c.seg(M + 10, flags="FA"), Sync(), c.seg(M, flags="FA"), Sync(), c.seg(M + 10, U[10:]), Sync(),
                    c.seg(M, U[:10]), Sync(), c.seg(0, S), Sync(), Fill(su)], v6=v6)
    case(f"fin_ofo_replaced_then_rst{sfx}", cls,
         "A bare FIN out of order at len(SAFE), UNSAFE there (replaces it), SAFE fills the hole, then an RST.",
         lambda c: [c.seg(M, flags="FA"), Sync(), c.seg(M, U), Sync(), c.seg(0, S), Sync(), rst(2 * M), Sync()],
         v6=v6)
    case(f"ctl_fin_in_order_over_queued{sfx}", cls,
         "UNSAFE queued out of order at len(SAFE); SAFE and 10 more bytes with a FIN in order: the FIN is read "
         "before the queue, which is purged.",
         lambda c: [c.seg(M, U), Sync(), c.seg(0, S + S[:10], flags="FPA"), Sync()], v6=v6)
    case(f"ctl_fin_in_order_before_queue{sfx}", cls,
         "UNSAFE queued out of order at len(SAFE); SAFE with a FIN in order: the host reads SAFE, then the end.",
         lambda c: [c.seg(M, U), Sync(), c.seg(0, S, flags="FPA"), Sync()], v6=v6)
    case(f"ctl_fin_coalesced_equal_copy{sfx}", cls,
         "UNSAFE[:10] queued; a bare FIN after it (coalesced into it); UNSAFE[:11] from the same start (all bits "
         "present: dropped); SAFE fills the hole.",
         lambda c: [c.seg(M, U[:10]), Sync(), c.seg(M + 10, flags="FA"), Sync(), c.seg(M, U[:11]), Sync(),
                    c.seg(0, S), Sync(), Fill(su)], v6=v6)
    case(f"ctl_fin_coalesced_partial_left{sfx}", cls,
         "UNSAFE[:10] queued; a bare FIN after it (coalesced); UNSAFE[5:] from inside it (a partial overlap: the "
         "FIN stays); SAFE fills the hole.",
         lambda c: [c.seg(M, U[:10]), Sync(), c.seg(M + 10, flags="FA"), Sync(), c.seg(M + 5, U[5:]), Sync(),
                    c.seg(0, S), Sync(), Fill(su)], v6=v6)
    case(f"ctl_fin_data_equal_copy{sfx}", cls,
         "UNSAFE[:10] with a FIN queued; UNSAFE[:11] from the same start (ends with the FIN: dropped); SAFE "
         "fills the hole.",
         lambda c: [c.seg(M, U[:10], flags="FPA"), Sync(), c.seg(M, U[:11]), Sync(), c.seg(0, S), Sync(), Fill(su)],
         v6=v6)
    case(f"ctl_fin_data_coalesced_same_start{sfx}", cls,
         "UNSAFE[:10] queued; UNSAFE[10:20] with a FIN after it (coalesced); UNSAFE[10:] from the FIN segment's "
         "own start (inside the coalesced one: the FIN stays); SAFE fills the hole.",
         lambda c: [c.seg(M, U[:10]), Sync(), c.seg(M + 10, U[10:20], flags="FPA"), Sync(), c.seg(M + 10, U[10:]),
                    Sync(), c.seg(0, S), Sync(), Fill(su)], v6=v6)
    case(f"ctl_two_fins_lower_overrun{sfx}", cls,
         "Bare FINs out of order at len(SAFE)+20, then len(SAFE); UNSAFE[:10] replaces the lower only; SAFE; "
         "UNSAFE[10:20]; the higher FIN ends the stream before UNSAFE[20:].",
         lambda c: [c.seg(M + 20, flags="FA"), Sync(), c.seg(M, flags="FA"), Sync(), c.seg(M, U[:10]), Sync(),
                    c.seg(0, S), Sync(), c.seg(M + 10, U[10:20]), Sync(), c.seg(M + 20, U[20:]), Sync()], v6=v6)


fin_queue_cases_2()
fin_queue_cases_2(v6=True)


def fin_queue_cases_3(v6=False):
    """A third review of the same (session 35): a FIN with data whose whole
    segment lies inside one queued segment is dropped with it; a bare FIN at the
    end of one queued segment and inside another is joined to whichever Linux's
    tree meets first (named: the capture does not show it); more FINs queued
    than wardgate holds (named)."""
    sfx = "_v6" if v6 else ""
    cls = "ipv6" if v6 else "control"
    t = S + S + U

    def fins(offs):
        return Call(lambda c: [c.seg(M + o, flags="FA") for o in offs])

    case(f"fin_data_inside_queued{sfx}", cls,
         "SAFE, SAFE, UNSAFE: the last two queued out of order as one segment; the end of the second SAFE with a "
         "FIN, inside it (dropped with its FIN); the first two in order. The host reads all three.",
         lambda c: [c.seg(M, t[M:3 * M]), Sync(), c.seg(2 * M - 5, t[2 * M - 5:2 * M], flags="FPA"), Sync(),
                    c.seg(0, t[:2 * M]), Sync()], v6=v6, expect=t)
    case(f"fin_data_inside_queued_same_start{sfx}", cls,
         "As fin_data_inside_queued, the queued segment starting where the FIN's does.",
         lambda c: [c.seg(2 * M - 5, t[2 * M - 5:3 * M]), Sync(), c.seg(2 * M - 5, t[2 * M - 5:2 * M], flags="FPA"),
                    Sync(), c.seg(0, t[:2 * M]), Sync()], v6=v6, expect=t)
    case(f"fin_data_inside_overlapping_queued{sfx}", cls,
         "The second SAFE queued, then the rest from 5 bytes into it (a partial overlap), then the end of the "
         "second SAFE with a FIN (inside the latter: dropped), then the first SAFE.",
         lambda c: [c.seg(M, t[M:2 * M]), Sync(), c.seg(M + 5, t[M + 5:3 * M]), Sync(),
                    c.seg(2 * M - 5, t[2 * M - 5:2 * M], flags="FPA"), Sync(), c.seg(0, t[:M]), Sync()], v6=v6)
    case(f"fin_bare_joined_or_covered{sfx}", cls,
         "The second SAFE queued, then the rest from 5 bytes into it, then a bare FIN where the second SAFE ends "
         "(joined to it, or inside the other: Linux's tree decides), then the first SAFE.",
         lambda c: [c.seg(M, t[M:2 * M]), Sync(), c.seg(M + 5, t[M + 5:3 * M]), Sync(), c.seg(2 * M, flags="FA"),
                    Sync(), c.seg(0, t[:M]), Sync()], v6=v6)
    case(f"fin_nine_queued{sfx}", cls,
         "Nine bare FINs out of order at len(SAFE)+10 ... +90; UNSAFE[:85] (removes eight); SAFE; the rest of "
         "UNSAFE: the ninth ends the stream inside UNSAFE.",
         lambda c: [fins(range(10, 100, 10)), Sync(), c.seg(M, U[:85]), Sync(), c.seg(0, S), Sync(),
                    c.seg(M + 85, U[85:90]), Sync(), c.seg(M + 90, U[90:]), Sync()], v6=v6)
    case(f"ctl_fin_eight_queued{sfx}", cls,
         "Eight bare FINs out of order at len(SAFE)+20 ... +90; UNSAFE[:85] (removes seven); SAFE; the rest of "
         "UNSAFE: the eighth ends the stream inside UNSAFE.",
         lambda c: [fins(range(20, 100, 10)), Sync(), c.seg(M, U[:85]), Sync(), c.seg(0, S), Sync(),
                    c.seg(M + 85, U[85:90]), Sync(), c.seg(M + 90, U[90:]), Sync()], v6=v6)


fin_queue_cases_3()
fin_queue_cases_3(v6=True)


def fin_queue_cases_4(v6=False):
    """A fourth review of the same (session 35): with queued segments that
    overlap in part, Linux joins a new segment to the first its tree walk
    meets, which the capture does not show; a FIN among them is named
    (WG-CAP-005) rather than placed silently."""
    sfx = "_v6" if v6 else ""
    cls = "ipv6" if v6 else "control"
    t = S + S + U
    p = S + S + S + U
    case(f"fin_walk_joined_data_fin{sfx}", cls,
         "The second SAFE queued; the rest from 5 bytes into it; 10 bytes with a FIN where the second SAFE ends "
         "(joined to it by the tree walk: kept); the first SAFE. The host stops 10 bytes into UNSAFE.",
         lambda c: [c.seg(M, t[M:2 * M]), Sync(), c.seg(M + 5, t[M + 5:3 * M]), Sync(),
                    c.seg(2 * M, t[2 * M:2 * M + 10], flags="FPA"), Sync(), c.seg(0, t[:M]), Sync()], v6=v6)
    case(f"fin_walk_passed{sfx}", cls,
         "Four orders, UNSAFE last: the second queued; the second and third from 5 bytes in, with a FIN; the "
         "third and 20 bytes more (joined to the second by the tree walk, passing the FIN); the first; the rest. "
         "The host reads UNSAFE.",
         lambda c: [c.seg(M, p[M:2 * M]), Sync(), c.seg(M + 5, p[M + 5:3 * M], flags="FPA"), Sync(),
                    c.seg(2 * M, p[2 * M:3 * M + 20]), Sync(), c.seg(0, p[:M]), Sync(), c.seg(3 * M + 20, p[3 * M + 20:]),
                    Sync()], v6=v6)
    case(f"fin_walk_own_segment_removed{sfx}", cls,
         "Four orders, UNSAFE last: the second queued; 100 bytes past it from 5 bytes in; the third (joined to "
         "the second); a bare FIN after it (its own segment); the third and one byte more (removes the FIN); the "
         "first; the rest. The host reads UNSAFE.",
         lambda c: [c.seg(M, p[M:2 * M]), Sync(), c.seg(M + 5, p[M + 5:2 * M + 100]), Sync(), c.seg(2 * M, p[2 * M:3 * M]),
                    Sync(), c.seg(3 * M, flags="FA"), Sync(), c.seg(2 * M, p[2 * M:3 * M + 1]), Sync(), c.seg(0, p[:M]), Sync(),
                    c.seg(3 * M + 1, p[3 * M + 1:]), Sync()], v6=v6)


fin_queue_cases_4()
fin_queue_cases_4(v6=True)
x = 10
case("fin_ofo_replaced_boundary_ts", "control", "fin_ofo_replaced_boundary with timestamps negotiated.",
     lambda c: [c.seg(M, flags="FA"), Sync(), c.seg(M, U), Sync(), c.seg(0, S), Sync(), Fill(S + U)],
     ts=True, expect=S + U)
case("fin_ofo_replaced_midframe", "control",
     "UNSAFE up to RI-20; a bare FIN out of order at RI-10; the rest from RI-10 (longer: replaces it); then the "
     "hole. The host reads the whole UNSAFE order.",
     lambda c: [Fill(U, end=RI - 20), Sync(), c.seg(RI - 10, flags="FA"), Sync(), c.seg(RI - 10, U[RI - 10:]),
                Sync(), c.seg(RI - 20, U[RI - 20:RI - 10]), Sync(), Fill(U)], expect=U)
case("fin_ofo_replaced", "control", "A bare FIN out of order at 10, UNSAFE from 10 (replaces it), then the hole.",
     lambda c: [c.seg(x, flags="FA"), Sync(), c.seg(x, U[x:]), Sync(), c.seg(0, U[:x]), Sync(), Fill(U)], expect=U)
case("fin_data_ofo_replaced", "control",
     "A FIN carrying bytes 10-40 out of order, UNSAFE from 10 (longer, same start: replaces it), then the hole.",
     lambda c: [c.seg(x, U[x:40], flags="FPA"), Sync(), c.seg(x, U[x:]), Sync(), c.seg(0, U[:x]), Sync(), Fill(U)],
     expect=U)
case("fin_inside_ofo_data", "control", "UNSAFE from 10 queued, a bare FIN at 10 (dropped), then the hole.",
     lambda c: [c.seg(x, U[x:]), Sync(), c.seg(x, flags="FA"), Sync(), c.seg(0, U[:x]), Sync(), Fill(U)], expect=U)
case("fin_data_inside_ofo", "control",
     "UNSAFE queued out of order at len(SAFE); a FIN carrying its first 10 bytes from the same start (all bits "
     "queued: dropped); SAFE fills the hole.",
     lambda c: [c.seg(M, U), Sync(), c.seg(M, U[:10], flags="FPA"), Sync(), c.seg(0, S), Sync(), Fill(S + U)],
     expect=S + U)
case("fin_ofo_covered_from_left", "control",
     "A bare FIN out of order at K, then UNSAFE from K-5 (covers it: removed), then the hole.",
     lambda c: [c.seg(K, flags="FA"), Sync(), c.seg(K - 5, U[K - 5:]), Sync(), c.seg(0, U[:K - 5]), Sync(),
                Fill(U)], expect=U)
case("ctl_fin_ofo_taken", "control",
     "A bare FIN out of order at 10, the hole filled up to it (the FIN is read), then UNSAFE from 10 (never read).",
     lambda c: [c.seg(x, flags="FA"), Sync(), c.seg(0, U[:x]), Sync(), c.seg(x, U[x:]), Sync(), fin_at(M)],
     expect=U[:x])
case("ctl_fin_ofo_replaced_boundary_1byte", "control",
     "A bare FIN out of order at len(SAFE), then one byte there (no longer than the FIN's segment: dropped), "
     "then SAFE fills the hole: the FIN ends the stream after SAFE.",
     lambda c: [c.seg(M, flags="FA"), Sync(), c.seg(M, U[:1]), Sync(), c.seg(0, S), Sync(), c.seg(M, U), Sync(),
                Fill(S + U)], expect=S)
case("rst_out_of_window", "control",
     "UNSAFE up to RI-20, an RST 1000000 beyond rcv_nxt (out of window: ignored), then the rest.",
     lambda c: [Fill(U, end=KC), Sync(), c.seg(KC + 1000000, flags="R", ack=0), Sync(), Fill(U)], expect=U)
case("rst_in_window_inexact", "control",
     "UNSAFE up to RI-20, an RST at rcv_nxt+10 (in window, not exact: RFC 5961 challenge ACK, no reset), then the rest.",
     lambda c: [Fill(U, end=KC), Sync(), c.seg(KC + 10, flags="R", ack=0), Sync(), Fill(U)], expect=U)
case("rst_exact_midframe", "control",
     "Control: UNSAFE up to RI-20, a valid RST at exactly rcv_nxt (the connection is reset), then the rest of the "
     "frame. The host read only the part before the rate.",
     lambda c: [Fill(U, end=KC), Sync(), c.seg(KC, flags="R", ack=0), Sync(), c.seg(KC, U[KC:]), Sync(), fin_at(M)],
     expect=U[:KC])
case("fin_out_of_window", "control",
     "UNSAFE up to RI-20, a FIN 1000000 beyond rcv_nxt (out of window: dropped), then the rest.",
     lambda c: [Fill(U, end=KC), Sync(), c.seg(KC + 1000000, flags="FA"), Sync(), Fill(U)], expect=U)
case("fin_exact_midframe", "control",
     "Control: UNSAFE up to RI-20, a valid FIN there, then the rest of the frame (data after the FIN: Linux resets). "
     "The host read only the part before the rate, then EOF.",
     lambda c: [Fill(U, end=KC), Sync(), c.seg(KC, flags="FA"), Sync(), c.seg(KC, U[KC:]), Sync(), fin_at(M)],
     expect=U[:KC])
case("syn_midstream_nodata", "control",
     "UNSAFE up to RI-20, a bare SYN at rcv_nxt (challenge ACK, ignored), then the rest.",
     lambda c: [Fill(U, end=KC), Sync(), c.seg(KC, flags="S", ack=0), Sync(), Fill(U)], expect=U)
case("syn_data_no_tfo", "control",
     "The handshake SYN carries the SAFE frame (no TCP Fast Open cookie: Linux ignores SYN data); then the UNSAFE "
     "frame from the first sequence number. A monitor that takes SYN data sees SAFE.",
     lambda c: [Fill(U)], syn_payload=S, expect=U)


def _pre_decoy(kind):
    def pre(c):
        a = (c.isn - 1000) & MASK if kind == "inwindow" else (c.isn ^ 0x40000000)
        if kind == "badcsum":
            return [c.syn(isn=a, data=S, tcp_csum="bad"), Sync()]
        steps = [c.syn(isn=a, data=S), WaitSynAck(a)]
        if kind == "rst":
            steps.append(c.seg(seq=(a + 1) & MASK, flags="R", ack=0, ts=False))
        return steps + [Sync()]
    return pre


case("syn_decoy_data_then_rst", "control",
     "Before the real handshake: a SYN with another ISN carrying the SAFE frame; the server answers SYN-ACK; the "
     "attacker resets that attempt (RST at ISN+1) and opens the real connection (new ISN) with the UNSAFE frame.",
     lambda c: [Fill(U)], pre=_pre_decoy("rst"), expect=U)
case("syn_decoy_inwindow_isn", "control",
     "Before the real handshake: a SYN with ISN 1000 below the real one carrying the SAFE frame; the real SYN falls "
     "inside that attempt's window (Linux resets the embryonic connection; the real SYN is retried) and carries on "
     "with the UNSAFE frame.",
     lambda c: [Fill(U)], pre=_pre_decoy("inwindow"), expect=U)
case("syn_decoy_bad_csum", "control",
     "Before the real handshake: a SYN with another ISN carrying the SAFE frame and a wrong checksum (dropped); then "
     "the real connection with the UNSAFE frame.",
     lambda c: [Fill(U)], pre=_pre_decoy("badcsum"), expect=U)


# --- resource limits -----------------------------------------------------------------

OFO_F = fillers(4800 - M, n_obx=8)
OFO_XS, OFO_XU = OFO_F + S, OFO_F + U
N8 = -(-len(OFO_XU) // 8)
case("res_ofo_flood_reverse", "resource",
     f"{N8 - 1} out-of-order 8-byte segments (reverse order, so they cannot coalesce) carrying ORU filler then the "
     f"SAFE order, before the 8-byte hole at the start is filled; then a normal sender (UNSAFE version) fills in "
     f"whatever the server did not keep. Linux collapses/prunes its out-of-order queue under memory pressure.",
     lambda c: [segs(c, OFO_XS, reversed(chunks(len(OFO_XS), 8, 8))), c.seg(0, OFO_XU[:8]), Sync(), Fill(OFO_XU)])
case("res_ofo_flood_forward", "resource",
     f"{N8 - 1} out-of-order 8-byte segments in increasing order (ORU filler then SAFE) before the hole at the "
     f"start is filled; then a normal sender (UNSAFE version) fills in what the server did not keep.",
     lambda c: [segs(c, OFO_XS, chunks(len(OFO_XS), 8, 8)), c.seg(0, OFO_XU[:8]), Sync(), Fill(OFO_XU)])
SP_XS, SP_XU = S + fillers(1300 - M, n_obx=4), U + fillers(1300 - M, n_obx=4)
case("res_ofo_600_sparse", "resource",
     "600 one-byte out-of-order segments at every other offset (2, 4, ..., 1200; they cannot be collapsed) with "
     "SAFE bytes, then a normal in-order sender with the UNSAFE version: in-order data wins over queued bytes in "
     "Linux. First-wins sees SAFE bytes at every other position.",
     lambda c: [[c.seg(i, SP_XS[i:i + 1]) for i in range(2, 1202, 2)], Sync(), Fill(SP_XU)], expect=SP_XU)
BURST = fillers(100000)
case("res_long_burst", "resource",
     f"A long burst: {len(BURST)} bytes of ORU observation frames at window speed, then the UNSAFE order.",
     lambda c: [Fill(BURST + U)], expect=BURST + U)
JUNK = (b"noise-" * 11000)[:65536]
case("res_junk_burst", "resource",
     "64 KiB of non-MLLP bytes, then the UNSAFE order (a monitor with a bounded resync buffer may give up).",
     lambda c: [Fill(JUNK + U)], expect=JUNK + U)
HUGE = mllp(observation("EV-HUGE01", n_obx=800))
case("res_huge_frame_then_order", "resource",
     f"One {len(HUGE)}-byte ORU frame (above a 65536-byte frame limit), then the UNSAFE order.",
     lambda c: [Fill(HUGE + U)], expect=HUGE + U)
case("res_many_orders", "resource", "40 SAFE orders then one UNSAFE order on one connection, 1400-byte segments.",
     lambda c: [Fill(S * 40 + U)], expect=S * 40 + U)
case("res_pause_in_frame", "resource",
     "UNSAFE up to RI-10, a 2 s pause inside the frame (below the receiver's 3 s idle limit), then the rest.",
     lambda c: [Fill(U, end=RI - 10), Sleep(2.0), Fill(U)], expect=U)
case("res_pause_beyond_idle", "resource",
     f"Control: UNSAFE up to RI-10, then a {IDLE_SECS + 1:g} s pause (the receiver gives up after {IDLE_SECS:g} s "
     f"idle and closes), then the rest. The host read only the part before the rate.",
     lambda c: [Fill(U, end=RI - 10), Sleep(IDLE_SECS + 1.0), Fill(U)], expect=U[:RI - 10])


# --- IP fragmentation ------------------------------------------------------------------

def frag_cases(v6):
    fam = "IPv6" if v6 else "IPv4"
    sfx = "6" if v6 else "4"
    kw = {"v6": v6}

    def fr(c, stream, pieces, base=None):
        return c.frags(c.seg(0, stream) if base is None else base, pieces)

    def l4(c, stream):
        from scapy.layers.inet import TCP
        from scapy.layers.l2 import Ether
        return bytes(Ether(bytes(c.seg(0, stream)))[TCP])

    case(f"frag{sfx}_inorder", "ipfrag", f"{fam}: the UNSAFE segment in three fragments, in order.",
         lambda c: [fr(c, U, [(0, 120), (120, 240), (240, None)]), Sync(), Fill(U)], expect=U, **kw)
    case(f"frag{sfx}_reverse", "ipfrag", f"{fam}: the UNSAFE segment in three fragments, last first.",
         lambda c: [fr(c, U, [(240, None), (120, 240), (0, 120)]), Sync(), Fill(U)], expect=U, **kw)
    case(f"frag{sfx}_overlap_dropped", "ipfrag",
         f"{fam}: the SAFE segment in two overlapping fragments (8 bytes overlap, same bytes): Linux discards the whole "
         f"datagram; the sender then sends the UNSAFE segment unfragmented. A reassembling monitor sees SAFE first.",
         lambda c: [fr(c, S, [(0, 128), (120, None)]), Sync(), Fill(U)], expect=U, **kw)
    case(f"frag{sfx}_overlap_diff", "ipfrag",
         f"{fam}: overlapping fragments whose overlap [192,216) differs (SAFE in the first, UNSAFE in the second, the "
         f"rate inside the overlap): discarded; then the UNSAFE segment unfragmented.",
         lambda c: [(lambda ls, lu: c.frags(c.seg(0, S), [(0, 216, ls[0:216]), (192, None, lu[192:])]))(l4(c, S), l4(c, U)),
                    Sync(), Fill(U)], expect=U, **kw)
    case(f"frag{sfx}_dup_unsafe_first", "ipfrag",
         f"{fam}: fragments of the UNSAFE segment; the middle one (holding the rate) is repeated with SAFE bytes "
         f"after the UNSAFE one. Linux ignores a fragment that falls inside what it holds (first copy wins): UNSAFE. "
         f"A last-wins reassembler sees SAFE.",
         lambda c: [(lambda ls: fr(c, U, [(0, 120), (120, 240), (120, 240, ls[120:240]), (240, None)]))(l4(c, S)),
                    Sync(), Fill(U)], expect=U, **kw)
    case(f"frag{sfx}_dup_safe_first", "ipfrag",
         f"{fam}: control for the above: the SAFE middle fragment first (checksum for SAFE), the UNSAFE repeat after. "
         f"The host reads SAFE if duplicates are ignored.",
         lambda c: [(lambda lu: fr(c, S, [(0, 120), (120, 240), (120, 240, lu[120:240]), (240, None)]))(l4(c, U)),
                    Sync(), Fill(U)], expect=S, **kw)
    case(f"frag{sfx}_incomplete_decoy", "ipfrag",
         f"{fam}: the first two fragments of a SAFE segment, never completed; then the UNSAFE segment unfragmented.",
         lambda c: [fr(c, S, [(0, 128), (128, 256)]), Sync(), Fill(U)], expect=U, **kw)
    case(f"frag{sfx}_tiny_all", "ipfrag", f"{fam}: the UNSAFE segment in 8-byte fragments, in order.",
         lambda c: [fr(c, U, chunks(M + 20, 8)), Sync(), Fill(U)], expect=U, **kw)


frag_cases(False)
frag_cases(True)
case("frag4_tiny_first", "ipfrag",
     "IPv4: the UNSAFE segment with a first fragment of 8 bytes (ports and sequence number only; flags, ACK and "
     "checksum in the second). A monitor that needs the TCP header in one fragment misses it.",
     lambda c: [c.frags(c.seg(0, U), [(0, 8), (8, None)]), Sync(), Fill(U)], expect=U)
case("frag6_tiny_first", "ipfrag",
     "IPv6: the SAFE segment with a first fragment of 8 bytes (the TCP header is split across fragments: RFC 7112 "
     "says discard); then the UNSAFE segment unfragmented. A reassembling monitor sees SAFE first.",
     lambda c: [c.frags(c.seg(0, S), [(0, 8), (8, None)]), Sync(), Fill(U)], v6=True, expect=U)
case("frag6_atomic", "ipfrag",
     "IPv6: the UNSAFE segment in an atomic fragment (Fragment header, offset 0, M=0; RFC 6946: process as "
     "unfragmented). A monitor that skips fragment headers misses it.",
     lambda c: [c.frags(c.seg(0, U), [(0, None)]), Sync(), Fill(U)], v6=True, expect=U)
case("frag4_reverse_overlap_tail", "ipfrag",
     "IPv4: fragments of the SAFE segment sent last-first where the last two overlap by 8 bytes: discarded; then "
     "the UNSAFE segment unfragmented.",
     lambda c: [c.frags(c.seg(0, S), [(240, None), (120, 248), (0, 120)]), Sync(), Fill(U)], expect=U)


# --- urgent data ----------------------------------------------------------------------

def ins(stream, pos, byte):
    return stream[:pos] + byte + stream[pos:]


X_RATE = ins(U, RI + 1, b"~")  # "1~80.0": first repetition of RXG-15 is "1" (50 U/h)
X_MSH = ins(U, 3, b"!")  # "MS!H": not an HL7 message
X_SEGBREAK = ins(U, U.index(b"RXG|1|||") + 8, b"\r")  # RXG cut before the drug
X_SAFE = ins(S, S.index(b"Doe") + 2, b"!")  # "Do!e" in a SAFE order


def urg_one(stream, pos, **kw):
    """All of `stream` in one segment with URG and the urgent pointer at `pos`
    (BSD semantics: the pointer is one past the urgent byte)."""
    def build(c):
        c.end = len(stream)
        return [c.seg(0, stream, flags="PAU", urgptr=pos + 1, **kw), Sync()]
    return build


def urg_cases(v6=False):
    sfx = "_v6" if v6 else ""
    cls = "ipv6" if v6 else "urgent"
    fam = "IPv6" if v6 else "IPv4"
    case(f"urg_in_rate{sfx}", cls,
         f"{fam}: the UNSAFE frame with one extra byte '~' inside the rate ('1~80.0') sent as urgent data: Linux "
         f"without SO_OOBINLINE takes the urgent byte out of the stream, so the host reads the UNSAFE frame. A monitor "
         f"keeping the byte reads rate '1' (50 U/h).",
         urg_one(X_RATE, RI + 1), v6=v6, expect=U)


urg_cases()
urg_cases(True)
case("urg_in_msh", "urgent",
     "The UNSAFE frame with an extra urgent byte in 'MSH' ('MS!H'): the host reads the UNSAFE frame; a monitor "
     "keeping the byte cannot parse the message.",
     urg_one(X_MSH, 3), expect=U)
case("urg_segment_break", "urgent",
     "The UNSAFE frame with an extra urgent carriage return right after 'RXG|1|||': a monitor keeping it sees the "
     "RXG segment cut before drug and rate; the host reads the UNSAFE frame.",
     urg_one(X_SEGBREAK, U.index(b"RXG|1|||") + 8), expect=U)


def _urg_past(c):
    p = RI + 1
    cut = p - 20
    c.end = len(X_RATE)
    return [c.seg(0, X_RATE[:cut], flags="PAU", urgptr=p - 0 + 1), c.seg(cut, X_RATE[cut:]), Sync()]


case("urg_ptr_past_segment", "urgent",
     "URG on a segment whose urgent pointer points 20 bytes past its end, at the extra '~' in the rate carried by "
     "the next (non-URG) segment: Linux still removes that byte when it arrives. Host: UNSAFE.",
     _urg_past, expect=U)


def _urg_zero(c):
    x = b"!" + U
    c.end = len(x)
    return [c.seg(0, x, flags="PAU", urgptr=0), Sync()]


case("urg_ptr_zero", "urgent",
     "URG with urgent pointer 0 on a segment carrying '!' followed by the UNSAFE frame (with BSD semantics the "
     "pointer then designates the segment's first byte).", _urg_zero)


def _urg_two(c):
    x = ins(X_MSH, RI + 2, b"~")  # '!' at 3 and '~' in the rate (shifted by one)
    cut = 40
    c.end = len(x)
    return [c.seg(0, x[:cut], flags="PAU", urgptr=3 + 1), Sync(), Sleep(0.3),
            c.seg(cut, x[cut:], flags="PAU", urgptr=(RI + 2) - cut + 1), Sync()]


case("urg_two_marks", "urgent",
     "Two URG segments, each with its own urgent byte ('!' in MSH, '~' in the rate), the receiver reading between "
     "them: both bytes leave the stream. Host: UNSAFE.", _urg_two, expect=U)


def _urg_beyond(c):
    c.end = M
    return [c.seg(0, U, flags="PAU", urgptr=M + 500), Sync()]


case("urg_ptr_beyond_stream", "urgent",
     "Control: the UNSAFE frame in one URG segment whose urgent pointer points 500 bytes past the end of all data "
     "(never arrives): nothing is taken out. Host: UNSAFE.", _urg_beyond, expect=U)
case("urg_safe_control", "urgent",
     "Control: the SAFE frame with an extra urgent byte in the patient name ('Do!e'): the host reads the SAFE frame.",
     urg_one(X_SAFE, S.index(b"Doe") + 2), expect=S)


# --- IPv6 variants of the above ---------------------------------------------------------

overlap_cases(v6=True)
control_cases(v6=True)
decoy_pair("v6_bad_tcp_csum", "with a wrong TCP checksum", lambda c: {"tcp_csum": "bad"}, v6=True, cls="ipv6")
decoy_pair("v6_no_ack_flag", "without the ACK flag", lambda c: {"flags": "P"}, v6=True, cls="ipv6",
           patterns=("inorder",))
decoy_pair("v6_ack_unsent", "acknowledging data never sent", lambda c: {"ack": (c.ack_no() + 100000) & MASK},
           v6=True, cls="ipv6", patterns=("inorder",))
decoy_pair("v6_paws_old_ts", "with an old timestamp (PAWS)",
           lambda c: {"ts": ((c.last_tsval - 100000) & MASK, c.ts_recent)}, v6=True, ts=True, cls="ipv6",
           patterns=("inorder",))
decoy_pair("v6_tcp_md5", "with a TCP MD5 option", lambda c: {"extra_opts": MD5}, v6=True, cls="ipv6",
           patterns=("inorder",))
decoy_pair("v6_wrong_mac", "to another station's MAC", lambda c: {"dmac": CLI_MAC_UNUSED}, v6=True, cls="ipv6",
           patterns=("inorder",))
case("v6_tiny_reverse", "ipv6", "IPv6: UNSAFE as one-byte segments in reverse order.",
     lambda c: [segs(c, U, reversed(chunks(M, 1))), Sync(), Fill(U)], v6=True, expect=U)


# --- found by an adversarial review (session 22) -------------------------------------
# Decoys that set what the monitor learns of a connection (a SYN seen first, the
# all-zero MAC, the SYN-ACK's window) and resets the host ignores.

def split2(c, stream, a, b, cut=100):
    """The real bytes [a, b) as two segments cut at a+cut: neither is a copy of a
    decoy covering [a, b) whole."""
    return [c.seg(a, stream[a:a + cut]), c.seg(a + cut, stream[a + cut:b])]


ZERO_MAC = "00:00:00:00:00:00"
for v6 in (False, True):
    sfx = "_v6" if v6 else ""
    case(f"decoy_zero_mac_inorder{sfx}", "ipv6" if v6 else "decoy",
         "A SAFE frame to the all-zero MAC (the router's NIC drops it: not its address), then UNSAFE in two segments.",
         lambda c: [c.seg(0, S, dmac=ZERO_MAC), Sync(), split2(c, U, 0, M), Sync(), Fill(U)], v6=v6, expect=U)
    case(f"syn_decoy_ttl1_first{sfx}", "ipv6" if v6 else "decoy",
         "Before the real SYN, the same SYN (same ISN) with TTL 1 (it expires at the router); then a SAFE frame with "
         "TTL 1, then UNSAFE in two segments.",
         lambda c: [c.seg(0, S, ttl=1), Sync(), split2(c, U, 0, M), Sync(), Fill(U)],
         pre=lambda c: [c.syn(ttl=1), Sync()], v6=v6, expect=U)
case("decoy_zero_mac_ofo", "decoy",
     "Out of order: SAFE [K,end) to the all-zero MAC, the real UNSAFE [K,end), then the hole.",
     lambda c: [c.seg(K, S[K:], dmac=ZERO_MAC), c.seg(K, U[K:]), c.seg(0, U[:K]), Sync(), Fill(U)], expect=U)
case("syn_decoy_wrong_mac_no_ts", "decoy",
     "Timestamps negotiated by the real SYN; before it, the same SYN without the timestamp option to another station's "
     "MAC. Then a SAFE frame with a TSval 100000 old (PAWS: the host drops it), then UNSAFE in two segments.",
     lambda c: [c.seg(0, S, ts=((c.last_tsval - 100000) & MASK, c.ts_recent)), Sync(), split2(c, U, 0, M), Sync(),
                Fill(U)],
     pre=lambda c: [c.seg(seq=c.isn, flags="S", ack=0, opts=[("MSS", 1460), ("SAckOK", b"")], dmac=CLI_MAC_UNUSED),
                    Sync()],
     ts=True, expect=U)
case("syn_decoy_partial_csum_first", "decoy",
     "Before the real SYN, the same SYN whose checksum field holds the offload pattern (wrong on a wire: the host "
     "drops it); then a SAFE frame with the same pattern, then UNSAFE in two segments.",
     lambda c: [c.seg(0, S, tcp_csum="partial"), Sync(), split2(c, U, 0, M), Sync(), Fill(U)],
     pre=lambda c: [c.syn(tcp_csum="partial"), Sync()], expect=U)
F70K = fillers(70000)
case("decoy_beyond_synack_window", "decoy",
     f"Right after the handshake (no ACK from the server yet), a SAFE frame at offset {len(F70K)}, past the SYN-ACK's "
     "window (the host drops it); filler up to that offset; then UNSAFE there in two segments.",
     lambda c: [c.seg(len(F70K), S), Sync(), Fill(F70K + U, end=len(F70K)), Sync(),
                split2(c, F70K + U, len(F70K), len(F70K) + M), Sync(), Fill(F70K + U)], expect=F70K + U)
X_ISN = 0x5EED0000
case("ctl_rst_acking_own_midstream_syn", "control",
     "UNSAFE up to 20 bytes before the rate; a mid-stream SYN with another ISN X (the host answers with a challenge "
     "ACK); a RST|ACK 10 bytes past rcv_nxt acknowledging X+1 (not at rcv_nxt: a challenge ACK, no reset); the rest.",
     lambda c: [Fill(U, end=RI - 20), Sync(), c.seg(seq=X_ISN, flags="S", ack=0), Sync(),
                c.seg(RI - 10, flags="RA", ack=X_ISN + 1, ts=False), Sync(), Fill(U)], expect=U)
case("ctl_rst_acking_own_syn_before_data", "control",
     "After the handshake, before any data: a SYN with another ISN X and a RST|ACK 10 bytes past rcv_nxt "
     "acknowledging X+1 (the host ignores both); then UNSAFE.",
     lambda c: [c.seg(seq=X_ISN, flags="S", ack=0), Sync(), c.seg(10, flags="RA", ack=X_ISN + 1, ts=False), Sync(),
                Fill(U)], expect=U)
case("ctl_rst_at_queued_end_no_sack", "control",
     "SACK not negotiated. UNSAFE up to 20 bytes before the rate, an out-of-order piece past the rate, a RST at that "
     "piece's end (without SACK Linux resets only at rcv_nxt), then the rest.",
     lambda c: [Fill(U, end=RI - 20), Sync(), c.seg(RI + 20, U[RI + 20:RI + 40]), Sync(),
                c.seg(RI + 40, flags="R", ack=0, ts=False), Sync(), Fill(U)],
     syn_opts=[("MSS", 1460)], expect=U)


# TCP-AO (kind 29): whether the host drops a segment carrying it depends on its
# kernel (this corpus' kernel is built without TCP-AO and ignores the option);
# wardgate names the ambiguity when another copy of those bytes comes.
AO4 = [(29, b"\x01\x01")]
case("ao_option_on_the_real_order", "decoy",
     "The real UNSAFE frame carries a 4-byte TCP-AO option (kind 29, no MAC); then a SAFE copy at the same sequence "
     "numbers without it (a duplicate to a host that read the first).",
     lambda c: [c.seg(0, U, extra_opts=AO4), Sync(), c.seg(0, S), Sync(), Fill(U)])
case("ao_option_on_a_decoy", "decoy",
     "A SAFE frame carrying a 4-byte TCP-AO option, then the UNSAFE frame without it in two segments.",
     lambda c: [c.seg(0, S, extra_opts=AO4), Sync(), split2(c, U, 0, M), Sync(), Fill(U)])


# --- Found by a second adversarial review of the receiver's view ----------------------
# VLAN 0 is a priority tag: Linux reads the frame as untagged, so it belongs to
# the untagged connection.
def _tag(frame, tpid, vid=0, n=1):
    raw = bytes(frame)
    tags = b"".join(struct.pack("!HH", tpid, vid) for _ in range(n))
    return raw[:12] + tags + raw[12:]


case("vlan0_split_real", "link",
     "U[0:100) untagged, U[100:M) in a VLAN-0 priority-tagged frame (the host takes it as untagged), at once "
     "S[100:M) untagged (a duplicate to the host).",
     lambda c: [c.seg(0, U[:100]), c.seg(100, U[100:], vlan=0), c.seg(100, S[100:]), Sync(), Fill(U)], expect=U)
case("vlan0_whole_real", "link", "U whole in a VLAN-0 frame, at once S untagged (a duplicate to the host).",
     lambda c: [c.seg(0, U, vlan=0), c.seg(0, S), Sync(), Fill(U)], expect=U)
case("vlan0_split_real_v6", "link", "IPv6 variant of vlan0_split_real.",
     lambda c: [c.seg(0, U[:100]), c.seg(100, U[100:], vlan=0), c.seg(100, S[100:]), Sync(), Fill(U)],
     expect=U, v6=True)
case("qinq_88a8_vid0_split_real", "link", "As vlan0_split_real with an 802.1ad (0x88a8) VID-0 tag on U[100:M).",
     lambda c: [c.seg(0, U[:100]), _tag(c.seg(100, U[100:]), 0x88a8), c.seg(100, S[100:]), Sync(), Fill(U)],
     expect=U)
case("vlan0_split_benign", "link",
     "The mirror of vlan0_split_real: S[0:100) untagged, S[100:M) VLAN-0 tagged, at once U[100:M) untagged (a "
     "duplicate the host drops). The host reads SAFE.",
     lambda c: [c.seg(0, S[:100]), c.seg(100, S[100:], vlan=0), c.seg(100, U[100:]), Sync(), Fill(S)], expect=S)


def _paws1(c):
    old = (c.last_tsval - 1) & MASK
    return [c.seg(0, U[:100], ts=(old, c.ts_recent)), c.seg(100, U[100:], ts=(old, c.ts_recent)),
            c.seg(0, S), Sync(), Fill(U)]


case("paws_window1_real", "control",
     "Timestamps on. The real UNSAFE frame (two segments) with TSval one below the last (Linux's PAWS window of 1 "
     "accepts it), then at once a SAFE copy with a fresh TSval (a duplicate).",
     lambda c: [Call(_paws1)], ts=True, expect=U)


def _zero_ts(c):
    c.tsval = lambda: 0
    return []


case("paws_tsrecent_zero_real", "control",
     "Client TSval always 0 (ts_recent 0 at the host: no PAWS). The real UNSAFE with TSval 0x80000005 (2^31 older "
     "to a naive check), then at once a SAFE copy with TSval 0.",
     lambda c: [c.seg(0, U[:100], ts=(0x80000005, c.ts_recent)), c.seg(100, U[100:], ts=(0x80000005, c.ts_recent)),
                c.seg(0, S, ts=(0, c.ts_recent)), Sync(), Fill(U)],
     pre=lambda c: [Call(_zero_ts)], ts=True, expect=U)
case("rst_data_inexact_decoy", "control",
     "Out of order: SAFE [K,M) on a RST|ACK in the window but not at rcv_nxt (a challenge ACK: dropped), then the "
     "real UNSAFE [K,M), then the hole.",
     lambda c: [c.seg(K, S[K:], flags="RA"), c.seg(K, U[K:]), c.seg(0, U[:K]), Sync(), Fill(U)], expect=U)
case("rst_data_exact_unsafe", "control", "UNSAFE whole on a RST|ACK at rcv_nxt: the host resets and reads nothing.",
     lambda c: [c.seg(0, U, flags="RA"), Sync()])


def _iplen_long(frame, extra=8):
    raw = bytearray(bytes(frame))
    raw[16:18] = struct.pack("!H", struct.unpack("!H", raw[16:18])[0] + extra)
    ihl = (raw[14] & 0xF) * 4
    raw[24:26] = b"\0\0"
    raw[24:26] = struct.pack("!H", _inet_csum(bytes(raw[14:14 + ihl])))
    return bytes(raw)


case("iplen_longer_decoy", "decoy",
     "A SAFE frame whose IPv4 total length claims 8 bytes more than the frame holds (dropped), then UNSAFE split.",
     lambda c: [_iplen_long(c.seg(0, S)), Sync(), split2(c, U, 0, M), Sync(), Fill(U)], expect=U)
for _opt, _raw in [("ts_overflow15", bytes([0x44, 8, 9, 0xF0, 0, 0, 0, 0])),
                  ("ts_tsaddr_short", bytes([0x44, 8, 5, 0x01, 0, 0, 0, 0])),
                  ("ra_len2", bytes([0x94, 2, 0, 0])),
                  ("dup_ra", bytes([0x94, 4, 0, 0, 0x94, 4, 0, 0])),
                  ("ts_ptr4", bytes([0x44, 8, 4, 0x00, 0, 0, 0, 0]))]:
    case(f"ipopt_{_opt}_decoy", "decoy",
         f"A SAFE frame with IPv4 options {_raw.hex()} (Linux's ip_options_compile decides), then UNSAFE split.",
         (lambda r: lambda c: [c.seg(0, S, raw_ipopts=r), Sync(), split2(c, U, 0, M), Sync(), Fill(U)])(_raw),
         expect=S if _opt == "dup_ra" else U)


def _frag_decoy(c, how, v6=False):
    """The SAFE segment in three fragments, one of which the host never takes."""
    from scapy.layers.inet import IP, IPOption
    from scapy.layers.inet6 import IPv6
    fr = c.frags(c.seg(0, S), [(0, 96), (96, 200), (200, None)])
    bad = {"first": 0, "mid": 1, "last": 2}[how.rsplit("_", 1)[1]]
    f = fr[bad]
    if how.startswith("ttl1"):
        if v6:
            f[IPv6].hlim = 1
        else:
            f[IP].ttl = 1
            del f[IP].chksum
    elif how.startswith("mac"):
        f.dst = CLI_MAC_UNUSED
    elif how.startswith("badopt"):
        f[IP].options = [IPOption(bytes([0x94, 2, 0, 0]))]
        del f[IP].chksum, f[IP].len, f[IP].ihl
    return fr + [Sync()] + split2(c, U, 0, M) + [Sync(), Fill(U)]


for _how, _fams in (("ttl1_first", (False,)), ("ttl1_mid", (False, True)), ("ttl1_last", (False, True)),
                    ("mac_first", (False, True)), ("mac_mid", (False,)), ("mac_last", (False,)),
                    ("badopt_last", (False,))):
    for _v6 in _fams:
        case(f"frag_decoy_{_how}{'_v6' if _v6 else ''}", "ipfrag",
             f"The SAFE segment in three fragments, one undeliverable ({_how.replace('_', ' ')}): the host never "
             "completes it; then UNSAFE in two segments.",
             (lambda h, v: lambda c: _frag_decoy(c, h, v))(_how, _v6), v6=_v6, expect=U)


# --- Found by a third adversarial review of the receiver's view -----------------------
# IPv6 options Linux knows, refused by their handlers (net/ipv6/exthdrs.c).
def _ext(nh, body):
    assert (2 + len(body)) % 8 == 0, body
    return bytes([nh, (2 + len(body)) // 8 - 1]) + body


def _raw6(c, off, data, exts, first_nh):
    """The frame c.seg(off, data) with the extension headers `exts` put before TCP."""
    raw = bytes(c.seg(off, data))
    tcp = raw[14 + 40:]
    e = b"".join(exts)
    hdr = bytearray(raw[14:14 + 40])
    hdr[4:6] = struct.pack("!H", len(e) + len(tcp))
    hdr[6] = first_nh
    return raw[:14] + bytes(hdr) + e + tcp


_JUMBO = _ext(6, b"\xc2\x04\x00\x01\x00\x00")
_V6_OPTS = {
    "hbh_jumbo": (0, [_JUMBO], U),
    "hbh_jumbo_pad": (0, [_ext(6, b"\x01\x00\xc2\x04\x00\x01\x00\x00\x01\x04\0\0\0\0")], U),
    "hbh_ra_len4": (0, [_ext(6, b"\x05\x04\x00\x00\x00\x00")], U),
    "hbh_ioam_misaligned": (0, [_ext(6, b"\x31\x02\x00\x00\x01\x00")], U),
    "hbh_calipso": (0, [_ext(6, b"\x07\x04\x00\x00\x00\x00")], U),
    "dst_home_address": (60, [_ext(6, b"\x01\x02\x00\x00\xc9\x10" + bytes.fromhex("fd770001000000000000000000000050"))], U),
    "hbh_ra": (0, [_ext(6, b"\x05\x02\x00\x00\x01\x00")], S),
    "hbh_unknown_skip": (0, [_ext(6, b"\x1e\x04\x00\x00\x00\x00")], S),
}
for _name, (_nh, _exts, _reads) in _V6_OPTS.items():
    case(f"v6opt_{_name}_decoy", "ipv6",
         f"IPv6: a SAFE frame with extension headers ({_name.replace('_', ' ')}), then UNSAFE in two plain segments "
         f"({'the host drops the decoy' if _reads is U else 'the host accepts the first: a control'}).",
         (lambda nh, exts: lambda c: [_raw6(c, 0, S, exts, nh), Sync(), split2(c, U, 0, M), Sync(), Fill(U)])(_nh, _exts),
         v6=True, expect=_reads)
case("v6opt_hbh_jumbo_ofo", "ipv6",
     "IPv6, out of order: SAFE [K,M) with a hop-by-hop jumbo option (dropped), UNSAFE [K,M), then the hole.",
     lambda c: [_raw6(c, K, S[K:], [_JUMBO], 0), c.seg(K, U[K:]), c.seg(0, U[:K]), Sync(), Fill(U)], v6=True, expect=U)
case("v6opt_hbh_jumbo_on_the_unsafe", "ipv6",
     "IPv6: UNSAFE with a hop-by-hop jumbo option (dropped), then SAFE plain: the host reads SAFE.",
     lambda c: [_raw6(c, 0, U, [_JUMBO], 0), Sync(), Fill(S)], v6=True, expect=S)

_AMOUNT = U.index(b"|25000|") + 1  # the '2' of 25000: without it 1800 U/h


def _urg_stale(c):
    c.end = M
    return [c.seg(0, U[:100]), c.seg(100, U[100:150]), Sync(), c.seg(0, U[:50], flags="PAU", urgptr=_AMOUNT + 1),
            Sync(), c.seg(150, U[150:]), Sync()]


case("urg_on_a_stale_duplicate", "urgent",
     "U[0:150) delivered; a stale duplicate U[0:50) with URG at the '2' of 25000 (Linux drops the segment, pointer "
     "and all, before tcp_urg); then the rest. The host reads 9000 U/h; a monitor applying the mark reads 1800.",
     lambda c: [Call(_urg_stale)], expect=U)



# --- Found by a third adversarial review of the receiver's view: PAWS state -----------
# Linux (tcp_replace_ts_recent): a timestamp is stored from a segment that passed
# tcp_sequence (does not end before rcv_wup), when it is not older than the stored
# one or the stored one is 0 (tcp_paws_check).

def _zero_ts(c):
    c.tsval = lambda: 0
    return []


def _paws_zero_raised(c):
    hi = 0x80000005
    return [c.seg(0, b"", flags="A", ts=(hi, c.ts_recent)), Sync(),
            c.seg(0, S, ts=(0x40000000, c.ts_recent)), Sync(),
            c.seg(0, U[:100], ts=(hi + 1, c.ts_recent)), c.seg(100, U[100:], ts=(hi + 1, c.ts_recent)),
            Sync(), Fill(U)]


case("paws_zero_raised_by_ack", "control",
     "Client TSval 0 on the SYN (ts_recent 0). A bare ACK with TSval 0x80000005 (Linux stores it: ts_recent 0 "
     "accepts anything); SAFE whole with TSval 0x40000000 (PAWS-old for Linux: dropped); UNSAFE in two segments "
     "with TSval 0x80000006.",
     lambda c: [Call(_paws_zero_raised)], pre=lambda c: [Call(_zero_ts)], ts=True, expect=U)


def _old_ack_future_ts(c):
    fut = (c.tsval() + 50_000_000) & MASK
    return [c.seg(-1, b"", flags="A", ts=(fut, c.ts_recent)), Sync(),
            c.seg(0, U[:100]), c.seg(100, U[100:]), Sync(),
            c.seg(0, S, ts=((fut + 1) & MASK, c.ts_recent)), Sync(), Fill(U)]


case("paws_old_bare_ack_future_ts", "control",
     "Timestamps on. A bare ACK at ISN (before rcv_nxt: Linux drops it in tcp_sequence, ts_recent unchanged) with "
     "TSval +50e6; the real UNSAFE in two segments with current TSvals; then a SAFE copy with TSval +50e6+1 (a "
     "duplicate for the host).",
     lambda c: [Call(_old_ack_future_ts)], ts=True, expect=U)


def _old_data_future_ts(c):
    fut = (c.tsval() + 50_000_000) & MASK
    return [Fill(U, end=K), Sync(),
            c.seg(0, U[:K], ts=(fut, c.ts_recent)), Sync(),
            c.seg(K, U[K:K + 100]), c.seg(K + 100, U[K + 100:]), Sync(),
            c.seg(K, S[K:], ts=((fut + 1) & MASK, c.ts_recent)), Sync(), Fill(U)]


case("paws_old_data_future_ts", "control",
     "Timestamps on. UNSAFE [0,K) in order; a retransmission of [0,K) (wholly old: dropped by tcp_sequence) with "
     "TSval +50e6 (its end is rcv_nxt: it passes tcp_sequence, and Linux stores the TSval); the real UNSAFE "
     "[K,M) in two segments (PAWS-old now: dropped); then SAFE [K,M) with TSval +50e6+1, which the host reads.",
     lambda c: [Call(_old_data_future_ts)], ts=True, expect=S)


def _rst_sack5(c):
    x = fillers(12000, n_obx=3) + U
    c.case._x = x
    base = 1000
    isl = [base + 2000 * i for i in range(5)]  # 5 islands of 100 bytes, 1900-byte holes
    order = [isl[4], isl[0], isl[1], isl[2], isl[3]]  # highest first: Linux forgets it (4 SACK blocks)
    steps = [Fill(x, end=base), Sync()]
    for a in order:
        steps += [c.seg(a, x[a:a + 100]), Sync()]
    steps += [c.seg(isl[4] + 100, flags="R", ack=0, ts=False), Sync(), Fill(x)]
    return steps


case("rst_at_forgotten_sack_block", "control",
     "SACK on. 1000 bytes in order; five 100-byte out-of-order islands, the highest sent first (Linux keeps the 4 "
     "most recent SACK blocks); a RST at the highest island's end (not rcv_nxt, not the end of a SACK block Linux "
     "keeps: a challenge ACK); then everything, ending with UNSAFE.",
     lambda c: [Call(_rst_sack5)])

# --- Found by a fourth adversarial review of the receiver's view -----------------------
# Linux takes only 0x8100 and 0x88a8 as VLAN tags (VID 0: a priority tag, read
# untagged); a frame tagged 0x9100 is dropped, VID 0 or not.
case("tag9100_vid0_client_rst", "link",
     "SAFE, then the client's RST at the exact sequence number in an EtherType 0x9100 VID-0 frame (the host drops "
     "it), then UNSAFE.",
     lambda c: [Fill(S + U, end=len(S)), Sync(), _tag(c.seg(len(S), flags="R", ack=0), 0x9100), Sync(), Fill(S + U)],
     expect=S + U)
case("tag9100_vid0_decoy_first", "link",
     "U[0:100) untagged, S[100:M) in an EtherType 0x9100 VID-0 frame (the host drops it), then U[100:M) untagged.",
     lambda c: [c.seg(0, U[:100]), _tag(c.seg(100, S[100:]), 0x9100), Sync(), c.seg(100, U[100:]), Sync(), Fill(U)],
     expect=U)


def _forged_from_server(flags):
    """A RST from the server's address to the client at the server's next sequence
    number, sent on the client's link to the client's own MAC: it never reaches the
    server (the router's NIC drops it), which goes on reading."""
    def f(c):
        from scapy.layers.inet import IP, TCP
        from scapy.layers.inet6 import IPv6
        from scapy.layers.l2 import Ether
        ipl = IPv6(src=c.dst, dst=c.src, hlim=63) if c.fam == 6 else IP(src=c.dst, dst=c.src, ttl=63)
        return [Ether(src=c.dmac, dst=c.smac) / ipl / TCP(sport=c.dport, dport=c.sport, seq=c.srv_nxt,
                                                         ack=c.seq(c.acked), flags=flags, window=0)]
    return Call(f)


for _fl, _tagname, _v6 in (("R", "rst", False), ("RA", "rsta", False), ("R", "rst_v6", True)):
    case(f"ctl_forged_srv_{_tagname}", "control",
         f"SAFE, then a {_fl} at the exact sequence number from the server's address to the client (it never "
         "reaches the server), then UNSAFE: the server reads and acknowledges both."
         + (" IPv6." if _v6 else ""),
         lambda c, fl=_fl: [Fill(S + U, end=len(S)), Sync(), _forged_from_server(fl), Sync(), Fill(S + U)],
         expect=S + U, v6=_v6)


# --- Found by a fifth adversarial review: what decides after an exact RST ---------------
def _from_server(flags, ack_off=None):
    """A frame from the server's address to the client (on the client's link, to
    the client's own MAC: it never reaches the server), at the server's next
    sequence number, acknowledging client offset `ack_off` (None: what the server
    acknowledged)."""
    def f(c):
        from scapy.layers.inet import IP, TCP
        from scapy.layers.inet6 import IPv6
        from scapy.layers.l2 import Ether
        ipl = IPv6(src=c.dst, dst=c.src, hlim=63) if c.fam == 6 else IP(src=c.dst, dst=c.src, ttl=63)
        ack = c.seq(c.acked if ack_off is None else ack_off(c))
        return [Ether(src=c.dmac, dst=c.smac) / ipl / TCP(sport=c.dport, dport=c.sport, seq=c.srv_nxt, ack=ack,
                                                         flags=flags, window=0 if "R" in flags else 65535)]
    return Call(f)


case("ctl_forged_srv_rst_then_syn", "control",
     "SAFE, then a RST forged from the server's address toward the client (it never reaches the server), then a "
     "SYN with another ISN on the same ports (the server answers it with a challenge ACK: it kept the connection), "
     "then UNSAFE on the old connection.",
     lambda c: [Fill(S + U, end=len(S)), Sync(), _from_server("R"), Sync(),
                Call(lambda c: [c.syn(isn=(c.isn + 0x20000000) & 0xFFFFFFFF)]), Sync(), Fill(S + U)],
     expect=S + U)
case("ctl_forged_srv_rst_then_64_acks", "control",
     "SAFE, then a RST forged from the server's address toward the client, then 64 pure ACKs from the client "
     "(the server answers none), then UNSAFE: the server reads and acknowledges it.",
     lambda c: [Fill(S + U, end=len(S)), Sync(), _from_server("R"), Call(lambda c: [c.seg(c.acked, flags="A")
                                                                                    for _ in range(64)]),
                Sync(), Fill(S + U)],
     expect=S + U)
case("ctl_rst_taken_then_forged_ack", "control",
     "SAFE, then the client's RST (the server takes it), then UNSAFE anyway (the server answers it with a RST), "
     "then an ACK of all of UNSAFE forged from the server's address: conflicting answers.",
     lambda c: [Fill(S + U, end=len(S)), Sync(), Call(lambda c: [c.seg(c.acked, flags="R", ack=0, ts=False)]), Sync(),
                Call(lambda c: [c.seg(c.acked + o, U[o:o + 1400]) for o in range(0, len(U), 1400)]), Sync(),
                _from_server("A", lambda c: c.acked + len(U))],
     expect=S)



# --- Found by an eleventh adversarial review (round 11) --------------------------------
# A SYN with another ISN inside a live connection, a SYN-ACK for it forged from
# the server's address: an established Linux socket answers the SYN with a
# challenge ACK (RFC 5961 4.2), never a SYN-ACK, and goes on reading the old
# connection.
_NEW_ISN = 0x5A5A0000


def _new_syn(c):
    return [c.syn(isn=(c.isn + _NEW_ISN) & MASK)]


def _forged_syn_ack(c):
    """A SYN-ACK for _new_syn from the server's address (to the client's own MAC:
    it never reaches the server), with an ISN 2^30 past the server's next
    sequence number."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether
    ipl = IPv6(src=c.dst, dst=c.src, hlim=63) if c.fam == 6 else IP(src=c.dst, dst=c.src, ttl=63)
    return [Ether(src=c.dmac, dst=c.smac) / ipl / TCP(sport=c.dport, dport=c.sport,
                                                     seq=(c.srv_nxt + 0x40000000) & MASK,
                                                     ack=(c.isn + _NEW_ISN + 1) & MASK, flags="SA",
                                                     window=65535, options=[("MSS", 1460)])]


def _ack_forged_syn_ack(c):
    return [c.seg(seq=(c.isn + _NEW_ISN + 1) & MASK, ack=(c.srv_nxt + 0x40000001) & MASK, flags="A", ts=False)]


def _u_after_s(c):
    return [c.seg(len(S) + o, U[o:o + 1400]) for o in range(0, len(U), 1400)]


for _v6, _sfx in ((False, ""), (True, "_v6")):
    case(f"ctl_midsyn_forged_synack_noack{_sfx}", "control",
         "SAFE; a SYN with another ISN on the same ports (the server answers with a challenge ACK); a SYN-ACK for it "
         "forged from the server's address (ISN 2^30 past the server's); UNSAFE in the old sequence space: the "
         "server reads both.",
         lambda c: [Fill(S + U, end=len(S)), Sync(), Call(_new_syn), Call(_forged_syn_ack), Call(_u_after_s),
                    Sync(), Fill(S + U)],
         expect=S + U, v6=_v6)
    case(f"ctl_midsyn_forged_synack{_sfx}", "control",
         "As ctl_midsyn_forged_synack_noack, the client acknowledging the forged SYN-ACK before UNSAFE.",
         lambda c: [Fill(S + U, end=len(S)), Sync(), Call(_new_syn), Call(_forged_syn_ack),
                    Call(_ack_forged_syn_ack), Call(_u_after_s), Sync(), Fill(S + U)],
         expect=S + U, v6=_v6)
    case(f"ctl_forged_rst_then_forged_synack{_sfx}", "control",
         "SAFE; a RST forged from the server's address toward the client (it never reaches the server); a SYN with "
         "another ISN; a forged SYN-ACK for it; the client's ACK of it; UNSAFE in the old sequence space.",
         lambda c: [Fill(S + U, end=len(S)), Sync(), _from_server("R"), Call(_new_syn), Call(_forged_syn_ack),
                    Call(_ack_forged_syn_ack), Call(_u_after_s), Sync(), Fill(S + U)],
         expect=S + U, v6=_v6)
    case(f"ctl_forged_srv_fin_then_forged_synack{_sfx}", "control",
         "SAFE; a FIN forged from the server's address toward the client (it never reaches the server); a SYN with "
         "another ISN; a forged SYN-ACK for it; UNSAFE in the old sequence space: the server reads both.",
         lambda c: [Fill(S + U, end=len(S)), Sync(), _from_server("FA"), Sync(), Call(_new_syn), Call(_forged_syn_ack),
                    Call(_u_after_s), Sync(), Fill(S + U)],
         expect=S + U, v6=_v6)


# Linux strips any number of VLAN 0 priority tags (0x8100, 0x88a8) and reads the
# frame as untagged.
def _tags(frame, tpids):
    raw = bytes(frame)
    return raw[:12] + b"".join(struct.pack("!HH", t, 0) for t in tpids) + raw[12:]


for _v6, _sfx in ((False, ""), (True, "_v6")):
    case(f"vlan0_x3_whole_real{_sfx}", "link",
         "U whole under three 0x8100 VID-0 tags, at once S untagged (a duplicate to the host).",
         lambda c: [_tags(c.seg(0, U), [0x8100] * 3), c.seg(0, S), Sync(), Fill(U)], expect=U, v6=_v6)
    case(f"qinq_88a8_vid0_x3_whole_real{_sfx}", "link",
         "U whole under 0x88a8/0x8100/0x8100 VID-0 tags, at once S untagged (a duplicate to the host).",
         lambda c: [_tags(c.seg(0, U), [0x88a8, 0x8100, 0x8100]), c.seg(0, S), Sync(), Fill(U)], expect=U, v6=_v6)
case("vlan0_x2_whole_real", "link", "U whole under two 0x8100 VID-0 tags, at once S untagged (a duplicate to the host).",
     lambda c: [_tags(c.seg(0, U), [0x8100] * 2), c.seg(0, S), Sync(), Fill(U)], expect=U)

# The real order with a low TTL (one hop past the router reaches the host), the
# decoy with the connection's TTL at the same sequence numbers: the capture
# cannot know the hop count.
for _ttl, _v6, _sfx in ((2, False, ""), (2, True, "_v6"), (16, False, "")):
    case(f"decoy_ttl{_ttl}_real_then_safe{_sfx}", "decoy",
         f"U whole with TTL/hop limit {_ttl} (the host is one hop past the router: it reads it), at once S with the "
         "connection's TTL at the same sequence numbers (a duplicate to the host).",
         lambda c, ttl=_ttl: [c.seg(0, U, ttl=ttl), c.seg(0, S), Sync(), Fill(U)], expect=U, v6=_v6)


# --- Found by a twelfth adversarial review (round 12) --------------------------------
# A forged SYN-ACK opens a fork (see ctl_midsyn_forged_synack); then the client
# really resets the old connection and reconnects (a SYN with a third ISN, the
# server's real SYN-ACK) and sends UNSAFE on the new connection, which the host
# reads. wardgate dropped the real SYN-ACK as "a third sequence space". The
# receiver records the first connection (SAFE, ended by the RST); the corpus
# test pins the violation on the second.
_THIRD_ISN = 0x3C3C0000


def _third_syn(c):
    return [c.syn(isn=(c.isn + _THIRD_ISN) & MASK)]


def _third_wait(c):
    return [WaitSynAck((c.isn + _THIRD_ISN) & MASK)]


def _third_data(c):
    isn = (c.isn + _THIRD_ISN) & MASK
    srv = c.synacks.get(isn)
    if srv is None:
        raise RuntimeError("no SYN-ACK for the third SYN")
    out = [c.seg(seq=(isn + 1) & MASK, ack=(srv + 1) & MASK, flags="A", ts=False)]
    for o in range(0, len(U), 1400):
        out.append(c.seg(seq=(isn + 1 + o) & MASK, ack=(srv + 1) & MASK, flags="PA", data=U[o:o + 1400], ts=False))
    return out


def _client_rst(c):
    return [c.seg(len(S), flags="R", ack=0, ts=False)]


def _safe_in_forged_space(c):
    return [c.seg(seq=(c.isn + _NEW_ISN + 1) & MASK, ack=(c.srv_nxt + 0x40000001) & MASK, flags="PA", data=S,
                  ts=False)]


def _oow_pure_ack(c):
    """A pure ACK far outside the window: the server answers with a duplicate ACK,
    and Linux's per-socket rate limit then suppresses the challenge ACK to the
    SYN that follows within 500 ms (the fork is left undecided)."""
    return [c.seg(seq=(c.seq(0) + 0x20000000) & MASK, flags="A", ts=False)]


for _v6, _sfx in ((False, ""), (True, "_v6")):
    case(f"ctl_fork_then_real_restart{_sfx}", "control",
         "SAFE; a SYN with another ISN; a SYN-ACK for it forged from the server's address; the client's exact RST "
         "(the server takes it); a SYN with a third ISN, the server's real SYN-ACK; UNSAFE on the new connection.",
         lambda c: [Fill(S + U, end=len(S)), Sync(), Call(_new_syn), Call(_forged_syn_ack), Sync(), Call(_client_rst),
                    Sync(), Call(_third_syn), Call(_third_wait), Call(_third_data), Sync()],
         expect=S, v6=_v6)
    case(f"ctl_undecided_fork_late_restart{_sfx}", "control",
         "SAFE; a pure ACK far outside the window (the server's next challenge ACK may be rate-limited); a SYN "
         "with another ISN; a forged SYN-ACK for it; 4 s (past the fork's wait; the receiver application closes the "
         "idle connection meanwhile); the client's exact RST; a SYN with a third ISN, the server's real SYN-ACK; "
         "UNSAFE on the new connection.",
         lambda c: [Fill(S + U, end=len(S)), Sync(), Call(_oow_pure_ack), Call(_new_syn), Call(_forged_syn_ack),
                    Sleep(4), Call(_client_rst), Sync(), Call(_third_syn), Call(_third_wait), Call(_third_data), Sync()],
         expect=S, v6=_v6)
case("ctl_fork_data_then_real_restart", "control",
     "As ctl_fork_then_real_restart, with SAFE again sent in the forged SYN-ACK's sequence space first.",
     lambda c: [Fill(S + U, end=len(S)), Sync(), Call(_new_syn), Call(_forged_syn_ack), Call(_safe_in_forged_space),
                Sync(), Call(_client_rst), Sync(), Call(_third_syn), Call(_third_wait), Call(_third_data), Sync()],
     expect=S)


# Frames with both MACs zero (as on loopback) on a real link: the router's NIC
# drops them (00:00:00:00:00:00 is not its address).
def _zero_macs(frame):
    raw = bytearray(bytes(frame))
    raw[0:12] = bytes(12)
    return bytes(raw)


for _v6, _sfx in ((False, ""), (True, "_v6")):
    case(f"decoy_zero_macs_safe_then_real{_sfx}", "link",
         "S with both MACs zero, then U at the same sequence numbers in two segments.",
         lambda c: [_zero_macs(c.seg(0, S)), Sync(), c.seg(0, U[:100]), c.seg(100, U[100:]), Sync(), Fill(U)],
         expect=U, v6=_v6)
    case(f"ctl_zero_macs_fin{_sfx}", "link",
         "SAFE; a FIN with both MACs zero; UNSAFE after SAFE: the server reads both.",
         lambda c: [Fill(S + U, end=len(S)), Sync(), _zero_macs(c.seg(len(S), flags="FA")), Sync(), Call(_u_after_s),
                    Sync(), Fill(S + U)],
         expect=S + U, v6=_v6)


# --- Session 29's adversarial review (2026-12-07) ---------------------------------
# SYN combined with other flags inside a connection, the offload checksum pattern
# on a segment built from IP fragments, and timestamps a SYN|ACK from the wrong
# end tries to turn on. Each of the first, before the fix, made wardgate judge the
# SAFE copy (or end the stream) without any alert.
# SYN combined with other flags mid-stream (RFC 5961 4.2: challenge ACK, discard).
case("synackfin_midstream_client", "control",
     "UNSAFE up to RI-20; then from the client a SYN|ACK|FIN with seq rcv_nxt-1 (no data): Linux in ESTABLISHED "
     "answers a SYN with a challenge ACK and discards it (FIN and all); then the rest of UNSAFE.",
     lambda c: [Fill(U, end=KC), Sync(), c.seg(KC - 1, flags="SFA"), Sync(), Fill(U)])
case("synackfin_at_next_client", "control",
     "As above, SYN|ACK|FIN at seq rcv_nxt.",
     lambda c: [Fill(U, end=KC), Sync(), c.seg(KC, flags="SFA"), Sync(), Fill(U)])
case("synfin_noack_midstream", "control",
     "UNSAFE up to RI-20; SYN|FIN (no ACK) at rcv_nxt-1; then the rest.",
     lambda c: [Fill(U, end=KC), Sync(), c.seg(KC - 1, flags="SF", ack=0), Sync(), Fill(U)])
case("synrstack_inexact", "control",
     "UNSAFE up to RI-20; SYN|RST|ACK at rcv_nxt+10 (in window, not exact: Linux sends a challenge ACK, no reset); "
     "then the rest.",
     lambda c: [Fill(U, end=KC), Sync(), c.seg(KC + 10, flags="SRA"), Sync(), Fill(U)])
case("synrstack_exact", "control",
     "UNSAFE up to RI-20; SYN|RST|ACK exactly at rcv_nxt (Linux checks RST before SYN: reset); then the rest.",
     lambda c: [Fill(U, end=KC), Sync(), c.seg(KC, flags="SRA"), Sync(), c.seg(KC, U[KC:]), Sync()])
case("synrst_noack_exact_then_safe", "control",
     "SAFE complete; SYN|RST (no ACK) exactly at rcv_nxt: Linux resets; then UNSAFE sent on the dead connection "
     "(host answers RST). Converse check: a monitor ignoring the reset alerts on bytes no one read.",
     lambda c: [Fill(S), Sync(), c.seg(M, flags="SR", ack=0, ts=False), Sync(), c.seg(M, U), Sync()])

case("synackfin_before_order", "control",
     "Right after the handshake, from the client a SYN|ACK|FIN with seq ISN (= rcv_nxt-1), no data: Linux discards it "
     "(SYN in ESTABLISHED: challenge ACK); then the whole UNSAFE order.",
     lambda c: [Sync(), c.seg(-1, flags="SFA"), Sync(), Fill(U)])
case("synackfin_midstream_client_v6", "ipv6",
     "IPv6 variant of synackfin_midstream_client.",
     lambda c: [Fill(U, end=KC), Sync(), c.seg(KC - 1, flags="SFA"), Sync(), Fill(U)], v6=True)

def TSO(v, e=0):
    return [("NOP", None), ("NOP", None), ("Timestamp", (v & MASK, e))]


case("synack_ts_paws_desync", "control",
     "Timestamps NOT negotiated (plain SYN/SYN-ACK). The client sends a SYN|ACK at its ISN carrying a timestamp option "
     "(Linux: SYN in ESTABLISHED, challenge ACK, discarded); then UNSAFE[0:10) with TSval 2000000 and UNSAFE[10:) with "
     "TSval 5 (Linux ignores timestamps on a connection that did not negotiate them: both read); then a SAFE copy of "
     "[10:) with TSval 3000000 (old data for Linux).",
     lambda c: [Sync(), c.seg(-1, flags="SA", opts=TSO(1000000)), Sync(),
                c.seg(0, U[:10], opts=TSO(2000000)), c.seg(10, U[10:], opts=TSO(5)),
                c.seg(10, S[10:], opts=TSO(3000000)), Sync(), Fill(U)])
case("ts_not_negotiated_control", "control",
     "Control for synack_ts_paws_desync without the SYN|ACK: timestamps not negotiated, same three data segments.",
     lambda c: [Sync(), c.seg(0, U[:10], opts=TSO(2000000)), c.seg(10, U[10:], opts=TSO(5)),
                c.seg(10, S[10:], opts=TSO(3000000)), Sync(), Fill(U)])

PAD = b"".join(mllp(observation(f"EV-J{i:04d}", 3)) for i in range(4))


def frag_partial_build(c):
    from scapy.layers.l2 import Ether
    from scapy.layers.inet import IP
    def build(c):
        p = c.seg(0, S + PAD, tcp_csum="partial")  # bytes, DF set
        e = Ether(p)
        e[IP].flags = 0
        del e[IP].chksum
        return c.frags(e, [(0, 1400), (1400, None)])
    return [Sync(), Call(build), Sync(), Fill(U + PAD)]


case("frag_partial_csum_decoy", "decoy",
     "IPv4, ordinary 1500 MTU: a SAFE copy of the order plus ORU padding in ONE TCP segment larger than the MSS, "
     "sent as two IP fragments, its TCP checksum holding the offload pattern (wrong on any wire: the host reassembles "
     "and drops it). Then the real UNSAFE order plus the same padding in ordinary segments split at 1400.",
     frag_partial_build)
case("frag_partial_csum_decoy_v6", "decoy",
     "IPv6 variant of frag_partial_csum_decoy.",
     lambda c: [Sync(), Call(lambda c: c.frags(c.seg(0, S + PAD, tcp_csum="partial"), [(0, 1400), (1400, None)])),
                Sync(), Fill(U + PAD)], v6=True)

case("synack_forged_ack_poison", "control",
     "After the handshake, the client sends a SYN|ACK at its ISN whose ACK is 200000 beyond anything the server sent "
     "(Linux: SYN in ESTABLISHED, challenge ACK, discarded). Then the real UNSAFE order with the real ACK, then a SAFE "
     "copy carrying the forged ACK (Linux: ACK of unsent data, dropped; and old data anyway).",
     lambda c: [Sync(), c.seg(-1, flags="SA", ack=(c.ack_no() + 200000) & MASK), Sync(),
                c.seg(0, U), c.seg(0, S, ack=(c.ack_no() + 200000) & MASK), Sync(), Fill(U)])


# From a second review the same session: a SYN-ACK "from the server" mid-stream
# with timestamps the handshake never negotiated (it turned on PAWS and the real
# bytes were dropped as old), and a client SYN|ACK that makes the listener reset
# the embryonic connection before a new one on the same ports.
def server_synack(flags, ts=True):
    def build(c):
        from scapy.layers.l2 import Ether
        from scapy.layers.inet import IP, TCP
        from scapy.layers.inet6 import IPv6
        ip = IPv6(src=c.dst, dst=c.src) if c.fam == 6 else IP(src=c.dst, dst=c.src, flags="DF")
        p = Ether(src=c.lab.rtr_mac, dst=c.lab.cli_mac) / ip / TCP(
            sport=c.dport, dport=c.sport, flags=flags, seq=c.srv_isn, ack=c.seq(0),
            options=TSO(1000000) if ts else [])
        return [p]
    return build


for fl, nm in (("SA", "server_synack_ts_paws"), ("SAF", "server_synackfin_ts_paws"), ("SAPU", "server_synackpshurg_ts_paws")):
    case(nm, "control",
         f"Timestamps NOT negotiated. Mid-stream, a {fl} 'from the server' (seq = server ISN, ack = client ISN+1, "
         "with a timestamp option) crosses cli0 as a router->client frame (the server host never gets it; the client "
         "host would discard it: SYN in ESTABLISHED). Then UNSAFE[0:10) TSval 2000000, UNSAFE[10:) TSval 5: Linux "
         "ignores timestamps on a connection that did not negotiate them and reads UNSAFE.",
         (lambda fl: lambda c: [Sync(), c.seg(0, U[:10], opts=TSO(2000000)), Sync(), Call(server_synack(fl)),
                                c.seg(10, U[10:], opts=TSO(5)), Sync(), Fill(U)])(fl))


def synrecv_kill_pre(flags):
    X = 0x10203040
    def pre(c):
        def after_synack(c):
            y = c.synacks[X]
            return [c.seg(seq=X + 1, ack=y + 1, flags=flags, ts=False), Sync(),
                    c.seg(seq=X + 1, ack=y + 1, flags="PA", data=S, ts=False), Sync()]
        return [c.syn(isn=X), WaitSynAck(X), Call(after_synack)]
    return pre


for fl, nm in (("SA", "synrecv_client_synack_then_safe"), ("SAEC", "synrecv_client_synackece_then_safe")):
    case(nm, "control",
         f"Connection 1 (ISN X): SYN, server SYN-ACK, then the client sends {fl} at X+1 acking the server's ISN+1 "
         "(Linux tcp_check_req: in window, SYN bit -> embryonic reset, request dropped, RST sent), then ACK+SAFE at X+1. "
         "Then a new connection on the same ports (another ISN) sends UNSAFE.",
         lambda c: [Sync(), Fill(U)], pre=synrecv_kill_pre(fl))


# --- Found by a fifth adversarial review of the receiver's view -----------------------
# Since Linux 6.7 every segment goes through tcp_inbound_hash(): its parser
# (tcp_do_parse_auth_options) walks the TCP options while 18 bytes remain (5 on a
# kernel built with TCP-AO; the corpus kernel has none) and drops the segment
# (SKB_DROP_REASON_TCP_AUTH_HDR) on an option whose length is below 2 or runs past
# the header, an MD5 option (kind 19) not 18 bytes long, or a second MD5/AO option.
# Linux 6.6 and older only stopped parsing there and took the segment.

def _fix_tcp(raw):
    """An untagged Ether/IPv4|IPv6/TCP frame (no extension headers) with its TCP
    checksum recomputed."""
    raw = bytearray(raw)
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
    raw[t + 16:t + 18] = b"\0\0"
    raw[t + 16:t + 18] = struct.pack("!H", _inet_csum(pseudo + bytes(raw[t:t + l4])))
    return bytes(raw)


def _long_opt(n):
    """An unknown option (kind 254) of n bytes, well-formed."""
    return [(254, b"\0" * (n - 2))]


def _badlen(frame, n=20):
    """`frame` (built with _long_opt(n)) with that option's length byte set to 255:
    past the end of the options, with n option bytes left where it starts."""
    raw = bytes(frame)
    i = raw.index(bytes([254, n]))
    return _fix_tcp(raw[:i] + b"\xfe\xff" + raw[i + 2:])


def _seg_badlen(c, off, data=b"", n=20, **kw):
    return _badlen(c.seg(off, data, extra_opts=_long_opt(n), **kw), n)


for _v6 in (False, True):
    _sfx = "_v6" if _v6 else ""
    case(f"tcpopt_badlen_fin_first{_sfx}", "control",
         "A FIN at offset 0 with a TCP option whose length (255) runs past the header, 20 option bytes left (Linux "
         "6.7+ drops it in tcp_inbound_hash; 6.6 and older took it); then the whole UNSAFE order.",
         lambda c: [_seg_badlen(c, 0, flags="FA"), Sync(), Fill(U)], v6=_v6, expect=U)
    case(f"tcpopt_badlen_safe_first{_sfx}", "decoy",
         "SAFE in order with the malformed TCP option of tcpopt_badlen_fin_first (dropped by Linux 6.7+); then UNSAFE.",
         lambda c: [_seg_badlen(c, 0, S), Sync(), Fill(U)], v6=_v6, expect=U)
case("tcpopt_badlen_fin_midframe", "control",
     "UNSAFE [0,K) in order; a FIN at K with the malformed TCP option (dropped by Linux 6.7+); then the rest of UNSAFE.",
     lambda c: [Fill(U, end=K), Sync(), _seg_badlen(c, K, flags="FA"), Sync(), Fill(U)], expect=U)


def _badlen_paws_poison(c):
    fut = (c.tsval() + 50_000_000) & MASK
    return [_seg_badlen(c, 0, flags="A", ts=(fut, c.ts_recent)), Sync(), Fill(U)]


case("tcpopt_badlen_paws_poison", "control",
     "Timestamps on. A bare ACK at rcv_nxt with TSval +50e6 and the malformed TCP option (Linux 6.7+ drops it before "
     "PAWS: ts_recent unchanged); then UNSAFE with current TSvals.",
     lambda c: [Call(_badlen_paws_poison)], ts=True, expect=U)
case("tcpopt_md5_len10_safe_first", "decoy",
     "SAFE with a TCP-MD5 option of length 10 then ten NOPs (20 option bytes: Linux 6.7+ refuses an MD5 option of "
     "another length than 18; 6.6 and older passed it over); then UNSAFE.",
     lambda c: [Call(lambda c: [_fix_tcp(bytes(c.seg(0, S, extra_opts=[(19, b"\0" * 8)] + [("NOP", None)] * 10))),
                                Sync(), Fill(U)])], expect=U)
case("ctl_tcpopt_goodlen_fin_first", "control",
     "Control for tcpopt_badlen_fin_first: the FIN's 20-byte option well-formed. The host takes the FIN and reads "
     "nothing after it.",
     lambda c: [c.seg(0, b"", flags="FA", extra_opts=_long_opt(20)), Sync(), Fill(U)], expect=b"")
case("ctl_tcpopt_badlen12_fin_first", "control",
     "Control: the FIN's malformed option with only 12 option bytes left. A Linux without TCP-AO (the corpus kernel) "
     "never parses it and takes the FIN; one built with TCP-AO (5 bytes suffice) drops it and reads the UNSAFE order "
     "after it.",
     lambda c: [_seg_badlen(c, 0, n=12, flags="FA"), Sync(), Fill(U)], expect=b"")


# After ip6_frag_reasm Linux goes on from the Fragment header's next header; a
# hop-by-hop header has no handler there (it is read only first, in ipv6_rcv), and
# ip6_protocol_deliver_rcu drops the datagram.

def _frag6_fin_data(c, hbh):
    """A FIN carrying U[:8] at 0 as two IPv6 fragments (the whole TCP header in the
    first), the fragmentable part opening with a hop-by-hop header when `hbh`."""
    from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw
    full = Ether(bytes(c.seg(0, U[:8], flags="FPA", ts=False)))
    tcp = bytes(full[IPv6].payload)
    body = (_ext(6, b"\x01\x04\0\0\0\0") if hbh else b"") + tcp
    cut = 32 if hbh else 24
    return [Ether(src=full.src, dst=full.dst) / IPv6(src=full[IPv6].src, dst=full[IPv6].dst, hlim=64, nh=44)
            / IPv6ExtHdrFragment(nh=0 if hbh else 6, offset=a // 8, m=int(b < len(body)), id=0x5A5A0001)
            / Raw(body[a:b]) for a, b in ((0, cut), (cut, len(body)))]


case("frag6_hbh_after_frag_fin_data", "ipv6",
     "IPv6: a FIN carrying U[:8] at 0 as two fragments whose fragmentable part starts with a hop-by-hop header, after "
     "the Fragment header (Linux drops the reassembled datagram: no handler for next header 0 there); then UNSAFE.",
     lambda c: [Call(lambda c: _frag6_fin_data(c, True)), Sync(), Fill(U)], v6=True, expect=U)
case("ctl_frag6_plain_fin_data", "ipv6",
     "Control for frag6_hbh_after_frag_fin_data without the hop-by-hop header: the host takes the FIN and its 8 bytes "
     "and reads nothing more.",
     lambda c: [Call(lambda c: _frag6_fin_data(c, False)), Sync(), Fill(U)], v6=True, expect=U[:8])


def by_name():
    return {c.name: c for c in CASES}


# --- Found by a sixth adversarial review of the receiver's view -----------------------
# ipv6_frag_rcv() drops any Fragment header once the packet is marked fragmented
# (IP6SKB_FRAGMENTED, set by the first one, atomic or reassembled): two atomic Fragment
# headers in one packet, or one opening a reassembled datagram's fragmentable part.

def _frag_hdr(nh, off, m, ident):
    return struct.pack("!BBHI", nh, 0, off | m, ident)


def _frag6_stacked(c, data, flags, n):
    """data at 0 with `flags` in one IPv6 packet with n atomic Fragment headers."""
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw
    full = Ether(bytes(c.seg(0, data, flags=flags, ts=False)))
    tcp = bytes(full[IPv6].payload)
    hdrs = b"".join(_frag_hdr(44 if i < n - 1 else 6, 0, 0, 0x77770021 + i) for i in range(n))
    return [Ether(src=full.src, dst=full.dst) / IPv6(src=full[IPv6].src, dst=full[IPv6].dst, hlim=64, nh=44)
            / Raw(hdrs + tcp)]


def _frag6_nested(c, data, flags, cut):
    """data at 0 with `flags` as two IPv6 fragments whose fragmentable part opens with
    an atomic Fragment header."""
    from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw
    full = Ether(bytes(c.seg(0, data, flags=flags, ts=False)))
    body = _frag_hdr(6, 0, 0, 0x77770041) + bytes(full[IPv6].payload)
    return [Ether(src=full.src, dst=full.dst) / IPv6(src=full[IPv6].src, dst=full[IPv6].dst, hlim=64, nh=44)
            / IPv6ExtHdrFragment(nh=44, offset=a // 8, m=int(b < len(body)), id=0x5A5A1041)
            / Raw(body[a:b]) for a, b in ((0, cut), (cut, len(body)))]


case("frag6_double_atomic_fin_data", "ipv6",
     "IPv6: a FIN carrying U[:8] at 0 in one packet with two atomic Fragment headers (Linux drops it at the second: "
     "the packet is already marked fragmented); then UNSAFE.",
     lambda c: [Call(lambda c: _frag6_stacked(c, U[:8], "FPA", 2)), Sync(), Fill(U)], v6=True, expect=U)
case("frag6_double_atomic_safe_first", "decoy",
     "IPv6: SAFE at 0 in one packet with two atomic Fragment headers (dropped by Linux); then UNSAFE.",
     lambda c: [Call(lambda c: _frag6_stacked(c, S, "PA", 2)), Sync(), Fill(U)], v6=True, expect=U)
case("frag6_nested_atomic_fin_data", "ipv6",
     "IPv6: a FIN carrying U[:8] at 0 as two fragments whose fragmentable part opens with an atomic Fragment header "
     "(Linux drops the reassembled datagram at that second Fragment header); then UNSAFE.",
     lambda c: [Call(lambda c: _frag6_nested(c, U[:8], "FPA", 32)), Sync(), Fill(U)], v6=True, expect=U)
case("ctl_frag6_atomic_fin_data", "ipv6",
     "Control for frag6_double_atomic_fin_data with one atomic Fragment header: the host takes the FIN and its 8 "
     "bytes and reads nothing more.",
     lambda c: [Call(lambda c: _frag6_stacked(c, U[:8], "FPA", 1)), Sync(), Fill(U)], v6=True, expect=U[:8])


# Copies only some kernels drop (malformed options with 12 bytes left: read by a Linux
# without TCP-AO, the corpus kernel; dropped by one built with it) were remembered
# eight to a side, the oldest forgotten silently: eight junk segments pushed out the
# unsafe order's copy before its safe copy came.

def _evict_then_safe(c, junk_at):
    return ([_seg_badlen(c, 0, U, n=12)] + [_seg_badlen(c, off, b"x", n=12) for off in junk_at]
            + [c.seg(0, S)])


case("tcpopt_badlen12_evict_then_safe", "decoy",
     "UNSAFE at 0 with a malformed TCP option, 12 option bytes left (read by the corpus kernel, which has no TCP-AO); "
     "eight 1-byte segments with the same option at stale sequence numbers (5000 and more before the ISN); then "
     "SAFE at 0 with ordinary options (a duplicate to the host).",
     lambda c: [Call(lambda c: _evict_then_safe(c, [-5000 - 10 * i for i in range(8)])), Sync(), Fill(U)],
     expect=U)
case("tcpopt_badlen12_evict_inwindow_then_safe", "decoy",
     "tcpopt_badlen12_evict_then_safe with the eight junk segments inside the window, past the order (the host "
     "queues them out of order and never reads them).",
     lambda c: [Call(lambda c: _evict_then_safe(c, [M + 100 + 10 * i for i in range(8)])), Sync(), Fill(U)],
     expect=U)
case("ctl_tcpopt_badlen12_unsafe_then_safe", "decoy",
     "Control for tcpopt_badlen12_evict_then_safe without the junk segments.",
     lambda c: [Call(lambda c: _evict_then_safe(c, [])), Sync(), Fill(U)], expect=U)


# --- seventeenth round: a retransmitted SYN with a far-future TSval, jumbo frames and
# the MSS, window scale and timestamps negotiated by a second SYN, timestamps
# wrapping, TIME_WAIT reuse and assassination -----------------------------------------

def _tso(v, e=0):
    return [("NOP", None), ("NOP", None), ("Timestamp", (v & MASK, e & MASK))]


def _syn_with_ts(c, tsval):
    return c.seg(seq=c.isn, flags="S", ack=0, opts=[("MSS", 1460), ("SAckOK", b"")] + _tso(tsval))


def _pre_retx_syn_future_ts(c):
    t1 = c.tsval()
    c.future_ts = (t1 + 0x7FFFFFF0) & MASK
    return [_syn_with_ts(c, t1), _syn_with_ts(c, c.future_ts), Sync()]


for v6 in (False, True):
    sfx = "_v6" if v6 else ""
    case(f"retx_syn_future_ts_then_safe{sfx}", "control",
         "SYN (TSval T), the same SYN again with TSval T+2^31-16 (a pure retransmission: Linux answers it and keeps "
         "the request's ts_recent = T), handshake, UNSAFE with TSvals near T, then a SAFE copy at 0 with a far-future "
         "TSval (old data to the host).",
         lambda c: [Fill(U), Sync(),
                    Call(lambda c: [c.seg(0, S, ts=((c.future_ts + 1) & MASK, c.ts_recent))])],
         ts=True, pre=_pre_retx_syn_future_ts, v6=v6, expect=U)
    case(f"retx_syn_future_ts{sfx}", "control",
         "retx_syn_future_ts_then_safe without the SAFE copy.",
         lambda c: [Fill(U)], ts=True, pre=_pre_retx_syn_future_ts, v6=v6, expect=U)


# Frames longer than the link's MTU: cli0 takes 9000 bytes, rtr0 (the veth's peer)
# 1500, so the veth drops a longer frame the capture on cli0 still shows.
PADJ = b"".join(mllp(observation(f"EV-J{i:04d}", 20)) for i in range(4))

for v6 in (False, True):
    sfx = "_v6" if v6 else ""
    case(f"jumbo_safe_decoy_first{sfx}", "link",
         "cli0 MTU 9000, its peer 1500: SAFE and 4 ORU fillers in one jumbo frame (dropped by the veth), then "
         "UNSAFE and the fillers.",
         lambda c: [Sync(), Lossy(c.seg(0, S + PADJ)), Sync(), Fill(U + PADJ)], cli_mtu=9000, v6=v6,
         expect=U + PADJ)
    case(f"jumbo_unsafe_first{sfx}", "link",
         "cli0 MTU 9000: UNSAFE and 4 ORU fillers in one jumbo frame (dropped by the veth), then SAFE and the "
         "fillers.",
         lambda c: [Sync(), Lossy(c.seg(0, U + PADJ)), Sync(), Fill(S + PADJ)], cli_mtu=9000, v6=v6,
         expect=S + PADJ)


def _mss_hdr(n, **kw):
    """A SAFE decoy whose payload is within the MSS but whose datagram (with its
    options) exceeds the link's 1500 bytes (dropped by the veth); then UNSAFE."""
    def build(c):
        d = S + PADJ
        return [Sync(), Lossy(c.seg(0, d[:n], **kw)), Sync(), Fill(U + PADJ)]
    return build


case("mss_ts_1460", "link",
     "Timestamps negotiated; a SAFE decoy of 1460 payload bytes plus the timestamp option (a 1512-byte IPv4 "
     "datagram, over the link's MTU: dropped); then UNSAFE and fillers.",
     _mss_hdr(1460), ts=True, cli_mtu=9000, expect=U + PADJ)
case("mss_ts_1440_v6", "link",
     "IPv6, timestamps negotiated; a SAFE decoy of 1440 payload bytes plus the timestamp option (a 1512-byte "
     "IPv6 packet: dropped); then UNSAFE and fillers.",
     _mss_hdr(1440), ts=True, v6=True, cli_mtu=9000, expect=U + PADJ)
case("mss_nop40_1450", "link",
     "No timestamps; a SAFE decoy of 1450 payload bytes with 40 bytes of NOP options (a 1510-byte datagram: "
     "dropped); then UNSAFE and fillers.",
     _mss_hdr(1450, opts=[("NOP", None)] * 40), cli_mtu=9000, expect=U + PADJ)
case("advmss_unsafe_1400", "link",
     "The server announces MSS 1000 (route advmss); the client sends UNSAFE and fillers in 1400-byte segments "
     "(the host reads them).",
     lambda c: [Fill(U + PADJ, mss=1400)], srv_advmss=1000, expect=U + PADJ)
case("advmss_safe_1400", "link",
     "advmss_unsafe_1400 with SAFE (benign traffic past the announced MSS: no false alarm).",
     lambda c: [Fill(S + PADJ, mss=1400)], srv_advmss=1000, expect=S + PADJ)
case("mss_plus1_unsafe", "link",
     "MSS 1460, no timestamps: a first segment of 1461 bytes of UNSAFE and fillers (a 1501-byte datagram, within "
     "the veth's slack), then the rest.",
     lambda c: [Sync(), c.seg(0, (U + PADJ)[:1461]), Sync(), Fill(U + PADJ)], cli_mtu=9000, expect=U + PADJ)
case("mss_plus1_safe", "link",
     "mss_plus1_unsafe with SAFE.",
     lambda c: [Sync(), c.seg(0, (S + PADJ)[:1461]), Sync(), Fill(S + PADJ)], cli_mtu=9000, expect=S + PADJ)


# Window scale and timestamps offered by one SYN and not by its retransmission: the
# request sock keeps the first SYN's options.
PADW = b"".join(mllp(observation(f"EV-W{i:04d}", 20)) for i in range(12))


def _pre_ws(first_ws, ts=False):
    def pre(c):
        o = [("MSS", 1460), ("SAckOK", b"")]
        if first_ws is not None:
            o += [("WScale", first_ws)]
        if ts:
            o += _tso(c.tsval())
        return [c.seg(seq=c.isn, flags="S", ack=0, opts=o), WaitSynAck(c.isn), Sync()]
    return pre


def _ws_build(c):
    # PADW + U: U first, out of order past the unscaled window, then PADW in order.
    st = PADW + U
    n = len(PADW)
    return [Sync(), Fill(st, end=100), Sync(), c.seg(n, U[:K]), c.seg(n + K, U[K:]), Sync(), Fill(st)]


case("ws_syn1_ws7_syn2_none", "control",
     "SYN1 with WScale 7 (creates the request sock), SYN2 with the same ISN without WScale; the server scales its "
     "window. UNSAFE sent out of order past the unscaled window, then 12 ORU fillers fill the hole.",
     _ws_build, pre=_pre_ws(7), expect=PADW + U)
case("ws_syn1_ws7_syn2_none_ts", "control",
     "ws_syn1_ws7_syn2_none with timestamps.",
     _ws_build, pre=_pre_ws(7, ts=True), ts=True, expect=PADW + U)


def _pre_ts_then_nots(c):
    c.syn1_ts = c.tsval()
    o = [("MSS", 1460), ("SAckOK", b"")] + _tso(c.syn1_ts)
    return [c.seg(seq=c.isn, flags="S", ack=0, opts=o), WaitSynAck(c.isn), Sync()]


case("ts_syn1_ts_syn2_nots_pawsdecoy", "decoy",
     "SYN1 with timestamps, SYN2 (same ISN) without; Linux negotiates timestamps from SYN1. A SAFE copy with a "
     "TSval older than SYN1's, then UNSAFE without the timestamp option.",
     lambda c: [Sync(), Call(lambda c: [c.seg(0, S, opts=_tso(c.syn1_ts - 1000, c.ts_recent))]), Sync(), Fill(U)],
     pre=_pre_ts_then_nots, expect=U)


def _ts_wrap(base, decoy_off):
    def pre(c):
        c.ts_base = (base - 0x80) & MASK
        return []

    def build(c):
        t_recent = (base + 0x10) & MASK
        d = (base - decoy_off) & MASK

        def after(c):
            c.ts_base = (base + 0x40 - int((time.monotonic() - c.t0) * 1000)) & MASK
            return []
        return [Sync(), c.seg(0, U[:K], ts=((base - 0x10) & MASK, c.ts_recent)), Sync(),
                c.seg(K, flags="A", ts=(t_recent, c.ts_recent)), Sync(),
                c.seg(K, S[K:], ts=(d, c.ts_recent)), Sync(),
                Call(after), Call(lambda c: [c.seg(K, U[K:], ts=((base + 0x20) & MASK, c.ts_recent))]), Sync(),
                Fill(U)]
    return pre, build


for _name, _base in (("ts_wrap_2p32", 0), ("ts_wrap_2p31", 0x80000000)):
    _pre, _build = _ts_wrap(_base, 8)
    case(_name, "decoy",
         f"TSvals cross {_base:#x}; a SAFE tail with a TSval just before the crossing (PAWS: old), then UNSAFE's.",
         _build, pre=_pre, ts=True, expect=U)


# TIME_WAIT: the receiver closes after 3 s idle, the client's FIN puts the server's
# socket in TIME_WAIT, then a new SYN on the same ports. The host read is both
# connections' (all_conns).

def _client_fin(c):
    with c.lab.cv:
        sf = c.srv_fin
    if sf is None:
        raise CaseError("server did not close")
    c.end = len(S)
    return [c.seg(len(S), flags="FA", ack=(sf + 1) & MASK), Sync(0.05, 0.5)]


def _reset_conn_state(c):
    with c.lab.cv:
        c.srv_isn = None
        c.srv_nxt = None
        c.acked = None
        c.srv_fin = None
        c.end = 0


def _tw_first():
    return [Fill(S), Sync(), Sleep(IDLE_SECS + 0.6), Sync(), Call(_client_fin), Sleep(0.1)]


def _tw_build(delta, new_ts, accept):
    def build(c):
        def newconn(c):
            c.isn = (c.isn + 1 + len(S) + 1 + delta) & MASK
            c.use_ts = new_ts
            _reset_conn_state(c)
            if accept:
                c.connect()
                return [Fill(U)]
            # Refused: the SYN, then the data anyway.
            c.srv_rst = True  # nothing to close
            ack = 0x1000
            return [c.syn(), Sync(), c.seg(0, U, ack=ack), Sync(), c.seg(M, flags="FA", ack=ack), Sync()]
        return _tw_first() + [Call(newconn)]
    return build


case("tw_nots_isn_above", "control",
     "SAFE, the server closes, TIME_WAIT; a new SYN (no timestamps) with an ISN above the old rcv_nxt is accepted; "
     "UNSAFE on the new connection.",
     _tw_build(200000, False, True), all_conns=True, expect=S + U)
case("tw_ts_isn_below_newer_ts", "control",
     "Timestamps; TIME_WAIT; a new SYN with an ISN below the old rcv_nxt and a newer TSval is accepted; UNSAFE.",
     _tw_build(-200000, True, True), ts=True, all_conns=True, expect=S + U)
case("tw_ts_isn_below_newer_ts_v6", "control",
     "IPv6 tw_ts_isn_below_newer_ts.",
     _tw_build(-200000, True, True), ts=True, v6=True, all_conns=True, expect=S + U)
case("tw_ts_old_nots_new_above", "control",
     "Timestamps on the old connection; TIME_WAIT; a new SYN without timestamps, ISN above: accepted; UNSAFE.",
     _tw_build(200000, False, True), ts=True, all_conns=True, expect=S + U)
case("tw_nots_isn_below_rejected", "control",
     "No timestamps; TIME_WAIT; a new SYN with an ISN below the old rcv_nxt (TIME_WAIT answers with an ACK); "
     "UNSAFE sent anyway (the host reads nothing new).",
     _tw_build(-200000, False, False), all_conns=True, expect=S)
case("tw_ts_isn_above_nots_below", "control",
     "Timestamps on the old connection; TIME_WAIT; a new SYN without timestamps and an ISN below: refused; UNSAFE "
     "sent anyway.",
     _tw_build(-200000, False, False), ts=True, all_conns=True, expect=S)


def _tw_ws_build(c):
    def newconn(c):
        c.isn = (c.isn + 1 + len(S) + 1 - 200000) & MASK
        _reset_conn_state(c)
        syn1 = c.seg(seq=c.isn, flags="S", ack=0, opts=[("MSS", 1460), ("SAckOK", b"")])
        return [syn1, Sync(), Call(lambda c: (c.connect(), [])[1])]
    st = PADW + U
    n = len(PADW)

    def rest(c):
        return [Sync(), Fill(st, end=100), Sync(), c.seg(n, U[:K]), c.seg(n + K, U[K:]), Sync(), Fill(st)]
    return _tw_first() + [Call(newconn), Call(rest)]


case("tw_ws_syn1_rejected_syn2_ws", "control",
     "Timestamps; TIME_WAIT; SYN1 with an ISN below, no timestamps, no WScale (refused); SYN2 with the same ISN, a "
     "newer TSval and WScale 7 (accepted); 12 ORU fillers and UNSAFE, UNSAFE out of order past the unscaled window.",
     _tw_ws_build, ts=True, all_conns=True, syn_opts=[("MSS", 1460), ("SAckOK", b""), ("WScale", 7)],
     expect=S + PADW + U)


def _tw_kill(new_ts, same_isn=True):
    """TIME_WAIT assassination: a SYN below rcv_nxt (TIME_WAIT answers with an ACK),
    an RST at rcv_nxt kills the TIME_WAIT socket, then a SYN is accepted."""
    def build(c):
        def newconn(c):
            rcv_nxt = (c.isn + 1 + len(S) + 1) & MASK
            c.isn = (rcv_nxt - 200000) & MASK
            c.use_ts = new_ts
            _reset_conn_state(c)
            steps = [c.syn(), Sync(0.05, 0.5), c.seg(seq=rcv_nxt, flags="R", ack=0, ts=False), Sleep(0.2)]
            if not same_isn:
                c.isn = (rcv_nxt - 300000) & MASK

            def go(c):
                c.connect()
                return [Fill(U)]
            return steps + [Call(go)]
        return _tw_first() + [Call(newconn)]
    return build


case("tw_kill_nots", "control",
     "TIME_WAIT; a SYN below rcv_nxt (answered by an ACK); an RST at rcv_nxt kills the TIME_WAIT socket; the same "
     "SYN again is accepted; UNSAFE.",
     _tw_kill(False), all_conns=True, expect=S + U)
case("tw_kill_ts_oldts", "control",
     "tw_kill_nots on a connection with timestamps, the new SYN without.",
     _tw_kill(False), ts=True, all_conns=True, expect=S + U)
case("tw_kill_nots_newisn", "control",
     "tw_kill_nots with the accepted SYN at another ISN below rcv_nxt.",
     _tw_kill(False, same_isn=False), all_conns=True, expect=S + U)
