"""wardgate judges what the receiving host read, on the evasion corpus.

Each capture in tests/evasion/corpus was made live: crafted TCP/IP traffic (decoys,
overlaps, control packets, fragments, urgent data, resource pressure) sent at a
Linux receiver whose application recorded exactly what it read (the JSON next to
the capture; test_evasion_linux.py keeps that ground truth checked against the
kernel). Here `wardgate analyze` reads each capture with a site whose drug library
caps heparin at 2000 U/h, and for every case:

- every complete unsafe order the host read is reported as an observed violation
  with its control id, or wardgate says it cannot know (an ambiguity rule:
  WG-CAP-005 overlap, 006 hole, 007 abandoned, 008 limit, 016 urgent data,
  023 reset uncertain, 025 restart uncertain) —
  never silence;
- no order the host read as safe is reported as a violation (no false alarm);
- the table of outcomes per class is printed (pytest -s) for docs/evasion.md.
"""
import collections
import json
import subprocess

import pytest

from conftest import ROOT, wardgate_bin

CORPUS = ROOT / "tests" / "evasion" / "corpus"
# The same live traffic written as other capture files (cooked captures, a snap
# length): see tests/evasion/converted/README.md.
CONVERTED = ROOT / "tests" / "evasion" / "converted"
AMBIGUITY = {"WG-CAP-005", "WG-CAP-006", "WG-CAP-007", "WG-CAP-008", "WG-CAP-016", "WG-CAP-023", "WG-CAP-025",
             "WG-CAP-026"}

SITE = """
[gateway]
data_dir = "{data_dir}"

[[device]]
id = "ehr"
kind = "ehr"
addresses = ["10.77.1.50", "fd77:1::50"]

[[device]]
id = "pump-server"
kind = "infusion-pump-server"
addresses = ["10.77.2.2", "fd77:2::2"]

[[route]]
id = "infusion-orders"
protocol = "hl7-mllp"
listen = "127.0.0.1:12575"
upstream = "10.77.2.2:2575"
senders = ["ehr"]
messages = ["RGV^O15", "ORU^R01"]
drug_library = "adult-icu"

[[route]]
id = "infusion-orders-v6"
protocol = "hl7-mllp"
listen = "127.0.0.1:12576"
upstream = "[fd77:2::2]:2575"
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


def cases():
    return sorted(p.stem for p in CORPUS.glob("*.json"))


def converted():
    return sorted(p.stem for p in CONVERTED.glob("*.json"))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    d = tmp_path_factory.mktemp("evasion")
    cfg = d / "site.toml"
    cfg.write_text(SITE.format(data_dir=d / "data"))
    return cfg


OUTCOMES = collections.defaultdict(collections.Counter)


def judge(binary, site, pcap, meta):
    """wardgate's findings on one capture against what its host read: the
    outcome ("correct", "flagged", "missed", "false-alarm"), the rules raised,
    and a line for failure messages."""
    run = subprocess.run(
        [binary, "analyze", "--config", str(site), "--json", "--no-store", str(pcap)],
        capture_output=True, text=True, timeout=60)
    assert run.returncode in (0, 1), run.stderr
    events = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    rules = sorted({e.get("rule", {}).get("id") for e in events if e.get("rule")})
    violations = {e["wardgate"]["hl7"]["control_id"] for e in events
                  if e.get("event", {}).get("action") == "observed-violation"
                  and (e.get("wardgate") or {}).get("hl7", {}).get("control_id")}
    read = [o for o in meta["orders"] if o.get("complete") and o.get("control_id")]
    # An order whose rate the host's bytes do not give (None) is neither: the
    # proxy refuses it (fail closed), so a violation on it is no false alarm.
    unsafe = {o["control_id"] for o in read if o["unsafe"] is True}
    safe = {o["control_id"] for o in read if o["unsafe"] is False} - unsafe
    missed = unsafe - violations
    flagged = bool(set(rules) & AMBIGUITY)
    outcome = ("missed" if missed and not flagged
               else "flagged" if missed
               else "false-alarm" if violations & safe
               else "correct")
    detail = f"{meta['name']}: host read {meta['summary']!r}; violations {sorted(violations)}; rules {rules}"
    return outcome, rules, detail


@pytest.mark.parametrize("name", cases())
def test_wardgate_judges_what_the_host_read(site, name):
    meta = json.loads((CORPUS / f"{name}.json").read_text())
    outcome, _, detail = judge(wardgate_bin(), site, CORPUS / f"{name}.pcap", meta)
    OUTCOMES[meta["class"]][outcome] += 1
    assert outcome != "missed", "unsafe order read by the host went unreported: " + detail
    assert outcome != "false-alarm", "false alarm on an order the host read as safe: " + detail


# Cases found missed by an adversarial review, with the outcome and the rules
# each must keep (round 11: a forged SYN-ACK for a mid-stream SYN, several VID-0
# tags, the real order with a low TTL; round 12: a real reconnect after a forged
# SYN-ACK, frames with both MACs zero).
PINNED = {
    **{f"ctl_midsyn_forged_synack{s}": ("correct", {"WG-INF-010", "WG-CAP-010"})
       for s in ("", "_v6", "_noack", "_noack_v6")},
    **{f"ctl_forged_{k}_then_forged_synack{s}": ("correct", {"WG-INF-010", "WG-CAP-010"})
       for k in ("rst", "srv_fin") for s in ("", "_v6")},
    **{f"{n}{s}": ("correct", {"WG-INF-010", "WG-CAP-005"})
       for n in ("vlan0_x3_whole_real", "qinq_88a8_vid0_x3_whole_real") for s in ("", "_v6")},
    "vlan0_x2_whole_real": ("correct", {"WG-INF-010", "WG-CAP-005"}),
    **{n: ("flagged", {"WG-CAP-005", "WG-CAP-011"})
       for n in ("decoy_ttl2_real_then_safe", "decoy_ttl2_real_then_safe_v6", "decoy_ttl16_real_then_safe")},
    # Round 12: a forged SYN-ACK, then the client's real RST and reconnect.
    # The receiver records the first connection (SAFE); UNSAFE, which it
    # read on the second, must be a violation all the same.
    **{n: ("correct", {"WG-INF-010", "WG-CAP-010"})
       for n in ("ctl_fork_then_real_restart", "ctl_fork_then_real_restart_v6", "ctl_fork_data_then_real_restart",
                 "ctl_undecided_fork_late_restart", "ctl_undecided_fork_late_restart_v6")},
    # Round 12: frames with both MACs zero on a real link reach no station.
    **{f"{n}{s}": ("correct", {"WG-INF-010", "WG-CAP-012"})
       for n in ("decoy_zero_macs_safe_then_real", "ctl_zero_macs_fin") for s in ("", "_v6")},
    # Round 13: malformed TCP options Linux 6.7+ drops (tcp_inbound_hash; older
    # kernels took them: the other copy, or the bytes past the FIN, named as
    # WG-CAP-005), and a hop-by-hop header after an IPv6 Fragment header.
    **{n: ("correct", {"WG-INF-010", "WG-CAP-009", "WG-CAP-005"})
       for n in ("tcpopt_badlen_fin_first", "tcpopt_badlen_fin_first_v6", "tcpopt_badlen_fin_midframe",
                 "tcpopt_badlen_safe_first", "tcpopt_badlen_safe_first_v6", "tcpopt_md5_len10_safe_first")},
    **{n: ("correct", {"WG-INF-010", "WG-CAP-009"})
       for n in ("tcpopt_badlen_paws_poison", "frag6_hbh_after_frag_fin_data")},
    # Round 14: a second IPv6 Fragment header (two atomic ones, or one opening a
    # reassembled datagram's fragmentable part) is dropped by Linux; and copies
    # only some kernels drop, pushed out by junk, are never forgotten silently.
    **{n: ("correct", {"WG-INF-010", "WG-CAP-009"})
       for n in ("frag6_double_atomic_fin_data", "frag6_double_atomic_safe_first", "frag6_nested_atomic_fin_data")},
    "ctl_frag6_atomic_fin_data": ("correct", set()),
    # Session 35: where the host's end is a FIN wardgate cannot place (joined
    # to one queued segment or inside another; a ninth queued FIN), the doubt
    # is named.
    **{f"{n}{s}": ("correct", {"WG-CAP-005"})
       for n in ("fin_bare_joined_or_covered", "fin_nine_queued", "fin_walk_joined_data_fin") for s in ("", "_v6")},
    **{f"{n}{s}": ("flagged", {"WG-CAP-005"})
       for n in ("fin_walk_passed", "fin_walk_own_segment_removed") for s in ("", "_v6")},
    **{n: ("flagged", {"WG-CAP-009", "WG-CAP-005"})
       for n in ("tcpopt_badlen12_evict_then_safe", "tcpopt_badlen12_evict_inwindow_then_safe",
                 "ctl_tcpopt_badlen12_unsafe_then_safe")},
}


# Session 35: a FIN in Linux's out-of-order queue. In these controls the host
# stops at a FIN before the UNSAFE order is whole; a violation on it would be a
# false alarm on an order never read (the first fix of this class raised some:
# a FIN coalesced into the segment before it, a second queued FIN, a FIN read in
# order before the queue).
FIN_QUEUE_CONTROLS = sorted(
    n for n in (p.stem for p in CORPUS.glob("ctl_*fin*.json"))
    if n.startswith(("ctl_fin_in_order", "ctl_fin_coalesced", "ctl_fin_data_", "ctl_two_fins", "ctl_fin_ofo_",
                     "ctl_fin_eight")))


def test_fin_queue_controls_are_there():
    assert len(FIN_QUEUE_CONTROLS) >= 18, FIN_QUEUE_CONTROLS


@pytest.mark.parametrize("name", FIN_QUEUE_CONTROLS)
def test_fin_queue_controls_raise_no_violation(site, name):
    meta = json.loads((CORPUS / f"{name}.json").read_text())
    assert not any(o.get("complete") and o.get("unsafe") for o in meta["orders"]), meta["summary"]
    _, rules, detail = judge(wardgate_bin(), site, CORPUS / f"{name}.pcap", meta)
    assert "WG-INF-010" not in rules, "a violation on an order the host never read whole: " + detail


@pytest.mark.parametrize("name", sorted(PINNED))
def test_pinned_outcomes(site, name):
    meta = json.loads((CORPUS / f"{name}.json").read_text())
    outcome, rules, detail = judge(wardgate_bin(), site, CORPUS / f"{name}.pcap", meta)
    want, need = PINNED[name]
    assert outcome == want, f"{want} expected: " + detail
    assert need <= set(rules), f"rules {sorted(need)} expected: " + detail


@pytest.mark.parametrize("name", converted())
def test_converted_captures(site, name):
    meta = json.loads((CONVERTED / f"{name}.json").read_text())
    outcome, rules, detail = judge(wardgate_bin(), site, CONVERTED / f"{name}.pcap", meta)
    OUTCOMES[meta["class"]][outcome] += 1
    assert outcome != "missed", "unsafe order read by the host went unreported: " + detail
    assert outcome != "false-alarm", "false alarm on an order the host read as safe: " + detail
    want, need = CONVERTED_PINNED.get(name, (None, set()))
    if want:
        assert outcome == want, f"{want} expected: " + detail
    assert need <= set(rules), f"rules {sorted(need)} expected: " + detail
    if name.startswith("benign_"):
        # Ordinary traffic raises no capture alert (a third review: every
        # bystander's capture of a connection closing raised WG-CAP-019).
        assert not [r for r in rules if r.startswith("WG-CAP-")], detail


# Round 18: what each converted capture must keep. A cut frame's stretch is
# unknown (WG-CAP-026, and the later copy named WG-CAP-005); a cooked capture's
# packet type drops frames to another station, broadcast and multicast
# (WG-CAP-012); tags after an SLL header are walked; a datagram a host owning
# the other addresses restarted is an uncertain copy (WG-CAP-005).
CONVERTED_PINNED = {
    **{n: ("flagged", {"WG-CAP-026", "WG-CAP-005"})
       for n in ("snaplen180_u_then_s_small", "snaplen180_u_then_s_small_v6")},
    **{n: ("correct", {"WG-INF-010"})
       for n in ("snaplen_ctl_u_then_s_small_whole", "snaplen_ctl_u_then_s_small_whole_v6")},
    **{n: ("correct", {"WG-INF-010"})
       for n in ("vlan0_whole_real__sll1", "vlan0_split_real__sll1", "qinq_88a8_vid0_split_real__sll1",
                 "vlan0_x2_whole_real__sll2", "vlan0_x3_whole_real_v6__sll2")},
    **{n: ("correct", {"WG-INF-010", "WG-CAP-012"})
       for n in ("ctl_zero_macs_fin__sll2", "ctl_zero_macs_fin_v6__sll1", "decoy_zero_macs_safe_then_real__sll2",
                 "decoy_zero_mac_inorder__sll1", "decoy_wrong_mac_inorder__sll2", "decoy_wrong_mac_ofo__sll1")},
    "maxdist_fin_junk_other_addr": ("correct", {"WG-INF-010", "WG-CAP-005"}),
    "maxdist_fin_junk_same_addr": ("correct", {"WG-INF-010"}),
    "maxdist_fin_nojunk": ("correct", set()),
    # Round 19: the junk on another VLAN (Linux's count ignores it); a cut
    # decoy RST or bad-checksum FIN before the order; cooked captures on the
    # sender (a decoy FIN in its name), on the receiver from a decoy FIN
    # mid-connection, and beside the link (the decoy cannot be told: named).
    **{n: ("correct", {"WG-INF-010", "WG-CAP-005"})
       for n in ("maxdist_fin_junk_same_addr__junk_on_vlan5", "maxdist_fin_junk_other_addr__junk_on_vlan5")},
    **{n: ("correct", {"WG-INF-010", "WG-CAP-026", "WG-CAP-005"})
       for n in ("snaplen_cut_decoy_rst_then_order", "snaplen_cut_bad_checksum_fin_then_order")},
    **{n: ("correct", {"WG-INF-010", "WG-CAP-005"})
       for n in ("ctl_zero_macs_fin__sender__sll1", "ctl_zero_macs_fin__sender__sll2",
                 "ctl_zero_macs_fin_v6__sender__sll1", "ctl_zero_macs_fin_v6__sender__sll2",
                 "mid_zero_mac_fin8__receiver_from_decoy__sll1", "mid_zero_mac_fin8__receiver_from_decoy__sll2",
                 "mid_zero_mac_fin8_v6__receiver_from_decoy__sll1", "mid_zero_mac_fin8_v6__receiver_from_decoy__sll2",
                 "ctl_zero_macs_fin__bystander__sll2")},
    **{n: ("correct", {"WG-INF-010", "WG-CAP-012"})
       for n in ("mid_zero_mac_fin8__receiver__sll1", "mid_zero_mac_fin8_v6__receiver__sll2")},
    "decoy_zero_mac_inorder__bystander__sll2": ("flagged", {"WG-CAP-005"}),
    # The other host's fragments may have been the receiver's: the order's
    # only copy is doubtful, its stretch acknowledged a hole (not a verdict).
    "maxdist_order_junk_to_another_host": ("flagged", {"WG-CAP-006"}),
    "benign_resegmented_odd_split__bystander__sll2": ("correct", set()),
    "benign_resegmented_split_fin__bystander__sll2": ("correct", set()),
    "benign_wrap_odd_cuts__bystander__sll2": ("correct", {"WG-INF-010"}),
}


def test_converted_pins_name_real_captures():
    assert set(CONVERTED_PINNED) <= set(converted())
    assert len(converted()) >= 60


def test_corpus_is_large_enough():
    assert len(cases()) >= 80


def teardown_module(module):
    if OUTCOMES:
        print("\nclass | correct | flagged (ambiguity named) | missed | false alarm")
        for cls, c in sorted(OUTCOMES.items()):
            print(f"{cls} | {c['correct']} | {c['flagged']} | {c['missed']} | {c['false-alarm']}")


def test_converted_cooked_captures_are_what_the_converter_makes(tmp_path):
    """The receiver's-view cooked captures are tests/evasion/convert.py's
    output for their corpus capture, byte for byte: the conversion (where
    libpcap puts the VLAN tag, which packet type each frame gets) is the one
    documented there, not edited by hand."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("convert", ROOT / "tests" / "evasion" / "convert.py")
    conv = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conv)
    checked = 0
    for name in converted():
        base, _, kind = name.rpartition("__")
        if kind not in ("sll1", "sll2") or not (CORPUS / f"{base}.pcap").exists():
            continue
        lt, nano, recs = conv.read_pcap(CORPUS / f"{base}.pcap")
        if kind == "sll1":
            rows = [[s, us, conv.to_sll1(d), ol - 14 + 16] for s, us, d, ol in recs]
        else:
            rows = []
            for s, us, d, ol in recs:
                x = conv.to_sll2(d)
                rows.append([s, us, x, len(x)])
        out = tmp_path / f"{name}.pcap"
        conv.write_pcap(out, 113 if kind == "sll1" else 276, rows, nano)
        assert out.read_bytes() == (CONVERTED / f"{name}.pcap").read_bytes(), name
        checked += 1
    assert checked >= 30, checked
