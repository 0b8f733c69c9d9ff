"""Rewrites live corpus captures (classic pcap, Ethernet) as other capture files of
the same traffic: Linux cooked v1/v2 as libpcap writes them on the receiving host
(`dumpcap -i any`: SLL v1 puts the outer VLAN tag back after the protocol field,
SLL2 leaves it out; the packet type says how the host's NIC took each frame), or
cut to a snap length. What went over the wire, and so what the host read (the
JSON), is unchanged. Made the captures in tests/evasion/converted/ (see its
README.md):

    python3 tests/evasion/convert.py sll1 corpus/X.pcap converted/X__sll1.pcap
    python3 tests/evasion/convert.py sll2 corpus/X.pcap converted/X__sll2.pcap
"""
import struct, sys

# The router's MAC, the next hop of every legitimate frame, stands for the
# receiving host's own: the conversion shows the capture as taken there.
HOST_MAC = bytes.fromhex("027701000001")

def read_pcap(path):
    b = open(path, "rb").read()
    magic = struct.unpack("<I", b[:4])[0]
    assert magic in (0xa1b2c3d4, 0xa1b23c4d), hex(magic)
    nano = magic == 0xa1b23c4d
    lt = struct.unpack("<I", b[20:24])[0]
    recs, i = [], 24
    while i + 16 <= len(b):
        s, us, cl, ol = struct.unpack("<IIII", b[i:i + 16])
        recs.append([s, us, b[i + 16:i + 16 + cl], ol])
        i += 16 + cl
    return lt, nano, recs

def write_pcap(path, lt, recs, nano=False, snaplen=262144):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xa1b23c4d if nano else 0xa1b2c3d4, 2, 4, 0, 0, snaplen, lt))
        for s, us, data, ol in recs:
            f.write(struct.pack("<IIII", s, us, len(data), ol) + data)

def pkttype(eth, host_mac=HOST_MAC):
    """As the NIC of the host with `host_mac` took the frame: outgoing 4 when
    it sent it, 0 to it, 1 broadcast, 2 multicast, 3 to another station."""
    dst, src = eth[:6], eth[6:12]
    if src == host_mac: return 4
    if dst == host_mac: return 0
    if dst == b"\xff" * 6: return 1
    if dst[0] & 1: return 2
    return 3

def to_sll1(eth, host_mac=HOST_MAC):
    return struct.pack(">HHH", pkttype(eth, host_mac), 1, 6) + eth[6:12] + b"\0\0" + eth[12:]

def to_sll2(eth, host_mac=HOST_MAC):
    rest = eth[12:]
    if rest[:2] in (b"\x81\x00", b"\x88\xa8"):  # the outer tag goes to skb metadata; libpcap drops it for SLL2
        rest = rest[4:]
    return rest[:2] + b"\0\0" + struct.pack(">IHBB", 2, 1, pkttype(eth, host_mac), 6) + eth[6:12] + b"\0\0" + rest[2:]

if __name__ == "__main__":
    # convert.py sll1|sll2 SRC DST [HOST_MAC]: HOST_MAC is the capturing host
    # (default the router, standing for the receiver; the client's
    # 02:77:01:00:00:02 for the sender's view, any other for a bystander).
    op, src, dst = sys.argv[1:4]
    host = bytes.fromhex(sys.argv[4].replace(":", "")) if len(sys.argv) > 4 else HOST_MAC
    lt, nano, recs = read_pcap(src)
    assert lt == 1
    if op == "sll1":
        write_pcap(dst, 113, [[s, us, to_sll1(d, host), ol - 14 + 16] for s, us, d, ol in recs], nano)
    elif op == "sll2":
        out = []
        for s, us, d, ol in recs:
            x = to_sll2(d, host); out.append([s, us, x, len(x)])
        write_pcap(dst, 276, out, nano)

def truncate(src, dst, needle=b"EV-U9000", snap=120):
    """As a capture with snaplen `snap` shows the frames carrying `needle` (the
    others are shorter than snap or left whole: a capture's snaplen applies to all,
    so only frames longer than snap are cut; here every frame longer than snap)."""
    lt, nano, recs = read_pcap(src)
    out = []
    for s, us, d, ol in recs:
        out.append([s, us, d[:snap], ol])
    write_pcap(dst, lt, out, nano, snaplen=snap)
