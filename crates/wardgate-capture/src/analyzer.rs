//! Packets to sessions: the flow table (bounded, with capture-time timeouts), IP
//! defragmentation, TCP reassembly per direction, and the engine's [`Observer`]
//! on the reassembled bytes. One `Analyzer` serves capture files and live
//! capture alike.
//!
//! # The receiver's view
//!
//! What wardgate judges must be what the receiving host's application read, so
//! every packet passes the checks the host's stack applies before its bytes are
//! placed (Linux's, net/ipv4/tcp_input.c, with default sysctls):
//!
//! - IP: header checksum, source routes and refused options, IPv6 extension
//!   headers that say discard ([`decode::HostDrop`]); fragments reassembled as
//!   Linux does ([`crate::defrag`]).
//! - Link: a frame to another station's MAC than the connection's first frame
//!   in that direction went to never reaches the host.
//! - TCP: a bad checksum (the offload artefact of a capture taken on the sender
//!   excepted), a TCP-MD5/AO option or malformed options Linux 6.7+ refuses
//!   ([`decode::AuthDrop`]; where older kernels read them, other bytes for
//!   that stretch are an ambiguity), no ACK flag, an ACK of data the receiver
//!   never sent or older than its window (RFC 5961 5.2), a timestamp older than
//!   the last one accepted (PAWS, RFC 7323 5), data at or beyond the receiver's
//!   advertised window, and data on a SYN (no TCP Fast Open) are dropped.
//! - Control: a RST is obeyed only at exactly the next expected sequence number
//!   (RFC 5961 3.2); a SYN inside a live connection is ignored unless the server
//!   answers it with a SYN-ACK (a real new connection); the ISN is the one the
//!   server's SYN-ACK acknowledges, whatever SYNs came before.
//! - A packet whose TTL (hop limit) is at most 16 and lower than the
//!   connection's first may expire before the host: it is not judged as read.
//!   Any change is reported.
//! - A checksum holding the offload pattern is the capturing host's offload when
//!   the sender's segments had it from the first (or the frame is larger than a
//!   wire allows), and a decoy after good ones.
//! - A segment with a good checksum carrying more than the receiver's announced
//!   MSS (none announced: what a 1500-byte link carries, 1460 bytes over IPv4,
//!   1440 over IPv6), not reassembled from IP fragments, may or may not reach
//!   the host (path MTU; an MSS clamped by a middlebox): not judged, and other
//!   bytes for its stretch are an ambiguity naming it (`WG-CAP-005`); the
//!   receiver's ACK of it, nothing else filling it, leaves a reported hole.
//! - A SYN on the ports of a connection whose server closed first, within its
//!   60 s TIME_WAIT, starts a new connection only as Linux's
//!   `tcp_timewait_state_process` lets it (sequence number past the old one's,
//!   or a newer timestamp; not refused by PAWS); otherwise it and what follows
//!   in its sequence space are dropped as the host drops them.
//!
//! Each drop is counted and reported once per connection and reason
//! (`WG-CAP-009` .. `WG-CAP-012`). Overlapping data follow the receiver's
//! [`Policy`] and any difference is reported with the message it touched
//! (`WG-CAP-005`); holes, limits and evictions inside a clinical message are
//! reported as such (`WG-CAP-006` .. `WG-CAP-008`).
//!
//! Known limits: a capture that shows a packet twice (a SPAN session mirroring
//! both sides of a router) sees a second copy with another MAC and TTL, which is
//! reported as a decoy; a capture that misses the receiver's packets (asymmetric
//! loss) can make a real segment look like an ACK of unsent data or beyond the
//! window: it is then dropped and reported, never silently.

use crate::decode::{self, Checksum, Decoded, Transport};
use crate::defrag::{self, Defrag};
use crate::reassembly::{self, Chunk, Policy, Stream, Urgent};
use crate::source::Packet;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use wardgate_config::IpNetwork;
use wardgate_engine::observe::{GapCause, NewConnection, Observer, Session};
use wardgate_engine::{rules, ReplayClock};
use wardgate_event::event::Record;
use wardgate_event::rules::Rule;

/// Flow-table and reassembly limits.
#[derive(Debug, Clone, Copy)]
pub struct FlowLimits {
    /// Most TCP connections tracked at once.
    pub max_flows: usize,
    /// A connection with no packet for this long (capture time) is closed out.
    pub timeout_us: u64,
    /// Out-of-order data held per direction.
    pub reassembly: reassembly::Limits,
    /// Bytes held across all connections (reassembly and parsers); beyond it the
    /// connection holding most is closed out.
    pub max_buffered: usize,
}

impl Default for FlowLimits {
    fn default() -> Self {
        FlowLimits {
            max_flows: 100_000,
            timeout_us: 600_000_000,
            reassembly: reassembly::Limits::default(),
            max_buffered: 256 << 20,
        }
    }
}

impl FlowLimits {
    /// The limits `[gateway.capture]` asks for.
    pub fn from_config(c: &wardgate_config::CaptureSettings) -> Self {
        let bytes = usize::try_from(*c.max_reassembly_bytes.get_ref()).unwrap_or(usize::MAX);
        FlowLimits {
            max_flows: usize::try_from(*c.max_flows.get_ref())
                .unwrap_or(usize::MAX)
                .max(1),
            timeout_us: c.flow_timeout_secs.get_ref().saturating_mul(1_000_000),
            reassembly: reassembly::Limits {
                max_buffered_bytes: bytes,
                max_segments: (bytes / 512).clamp(64, 65_536),
            },
            max_buffered: usize::try_from(*c.max_buffered_bytes.get_ref()).unwrap_or(usize::MAX),
        }
    }
}

/// Packet-level counters.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PacketCounts {
    /// Packets read.
    pub packets: u64,
    /// Packets the `--filter` expression left out (not analysed further).
    pub filtered: u64,
    /// Bytes captured.
    pub bytes: u64,
    /// TCP segments.
    pub tcp: u64,
    /// UDP datagrams.
    pub udp: u64,
    /// Not IP (ARP, LLDP...).
    pub not_ip: u64,
    /// Link types wardgate does not decode.
    pub unsupported_link: u64,
    /// Malformed or truncated headers.
    pub malformed: u64,
    /// Frames the capture cut short (a snap length below the frame's size)
    /// whose IP datagram was not captured whole: the host read what
    /// wardgate could not see (see `WG-CAP-026`).
    pub cut_frames: u64,
    /// Frames with more VLAN tags (not counting VLAN 0 priority tags) than a
    /// flow's key holds: read by a host only through VLAN interfaces stacked
    /// that deep; not analysed as a connection's, their TCP bytes make other
    /// bytes for the same stretch of a connection an ambiguity.
    pub deep_vlan_frames: u64,
    /// IP fragments (each handed to the defragmenter).
    pub fragments: u64,
    /// Datagrams reassembled from fragments.
    pub reassembled: u64,
    /// TCP connections seen.
    pub connections: u64,
    /// Of which joined mid-stream (no SYN seen).
    pub midstream: u64,
    /// Connections closed out by the idle timeout.
    pub timed_out: u64,
    /// Connections evicted because the flow table was full.
    pub evicted: u64,
    /// Connections closed out because the memory budget was reached.
    pub over_budget: u64,
    /// Most bytes held across all connections at once.
    pub peak_buffered: u64,
    /// Bytes the capture never showed (reassembly gaps).
    pub gap_bytes: u64,
    /// Retransmitted bytes discarded.
    pub retransmitted_bytes: u64,
    /// Overlapping segments whose bytes differed from the first copy (evasion).
    pub overlap_conflicts: u64,
    /// Packets the receiving host would drop, dropped here too (decoys).
    pub host_drops: u64,
    /// Copies of segments at the other of two capture points proved on
    /// their path (the other leg of a router), framed to the station there:
    /// dropped as another station's, not named (see `Legs`).
    pub forwarded_copies: u64,
    /// Connection ends whose two capture points were proved by a forwarded
    /// copy time-stamped before its original: the interfaces' clocks
    /// disagree, and the capture's time order is not the traffic's.
    pub skewed_copies: u64,
    /// RSTs, SYNs and FINs the host would ignore, ignored here too.
    pub ignored_controls: u64,
    /// Urgent bytes taken out of streams.
    pub urgent_removed: u64,
    /// TCP checksums left to the sender's NIC (offload), seen on the sender.
    pub offloaded_checksums: u64,
    /// Live capture: packets the kernel dropped because the capture ring was
    /// full (wardgate never saw them).
    pub kernel_dropped: u64,
    /// Live capture: frames the interface or its driver dropped meanwhile.
    pub interface_dropped: u64,
    /// Segments that acknowledged data the capture never showed, and that no
    /// later packet confirmed or refuted (reported, not judged).
    pub unconfirmed: u64,
    /// Such segments the other end's next packet confirmed: judged, reported.
    pub confirmed_late: u64,
    /// Bytes that arrived for a stretch declared lost from the receiver's
    /// acknowledgement (reported, not judged).
    pub late_fill_bytes: u64,
}

/// What one end of a connection has said, as the other end's stack tracks it.
#[derive(Debug)]
struct Side {
    /// The bytes this end sent.
    stream: Stream,
    /// What it showed of itself (kept when the connection idles out).
    shown: Shown,
    /// It sent a SYN-ACK (it is the listener).
    syn_ack_seen: bool,
    /// Its ISN (from its SYN).
    isn: Option<u32>,
    /// Data it sent that the host may or may not have taken: with a TCP-AO
    /// option or malformed TCP options (dropped as a Linux 6.7+ built with
    /// TCP-AO drops them; a FIN or RST so sent is kept too, as where reading
    /// stopped for a host that took it), at or past
    /// the window edge the capture last showed (the host's own edge may have
    /// moved), or with a TTL that may run out before the host: (sequence
    /// number, length, payload sum), at most
    /// [`MAX_UNCERTAIN`]. Other bytes for the same stretch make what the host
    /// read unknowable.
    uncertain: Vec<Uncertain>,
    /// Where copies that still mattered were let go for that bound: any
    /// bytes there are an ambiguity (see [`note_uncertain`]).
    forgotten: Option<Forgotten>,
    /// Right edge of the window it advertised (ack + window), the furthest seen.
    edge: Option<u32>,
    /// Largest window it advertised.
    max_window: u32,
    /// Highest ACK it sent (the other end's snd_una).
    max_ack: Option<u32>,
    /// Just past the highest sequence number it used (the other end's view of
    /// its snd_nxt).
    snd_nxt: Option<u32>,
    /// Its segments that acknowledged data wardgate never saw the other end
    /// send, in arrival order: held until the other end's next packet says
    /// whether it had sent that data (see [`Deferred`]).
    deferred: Vec<Deferred>,
    /// A second capture point its segments pass (see [`Legs`]).
    legs: Legs,
}

/// A capture taken at two points of one path (both legs of a router, two
/// SPAN sessions, `-i any` on a router) shows each segment twice: once as
/// sent, once forwarded, with a TTL one or a few lower and other link
/// addresses. Those copies are the same segment, not a TTL change or a
/// frame to another station (found by a review: every routed connection in
/// such a capture raised WG-CAP-011 and WG-CAP-012). The two points are
/// proved when a segment's TCP header and payload (sequence,
/// acknowledgement, flags, length and checksum) match one of this end's
/// last segments seen at the other point. A frame at either point then
/// raises no TTL change. A frame framed to another station than the one
/// this end's frames reach is still dropped, and goes unnamed only when it
/// is a copy of a segment of this end already read (the same TCP header
/// fields and a payload of the same keyed hash): nothing is lost by
/// dropping it. Any other such frame is named as before
/// (found by a second review: a proof forged on a SPAN port, with the
/// station steered to the attacker's MAC, had the real order dropped
/// unnamed while a decoy was judged).
#[derive(Debug, Default)]
struct Legs {
    /// Its last segments, at whichever point.
    recent: [Option<Seen>; 2],
    next: usize,
    /// The two points, once proved: (TTL, destination MAC, cooked type).
    proved: Option<[Leg; 2]>,
    /// Once proved, its last segments read (allocated then: most
    /// connections are seen at one point).
    read: Option<Box<ReadRing>>,
    /// The proof's forwarded copy (the lower TTL) was time-stamped before
    /// its original: the capture's interfaces' clocks disagree.
    skewed: bool,
}

/// The TCP fingerprints of a connection end's last segments read, each with
/// a keyed hash of its payload: the 16-bit checksum in the fingerprint is
/// one an attacker can match with other bytes, the keyed hash is not.
#[derive(Debug)]
struct ReadRing {
    seen: [Option<(TcpPrint, u64)>; READ_RING],
    next: usize,
}

/// A hash of a payload keyed per process (SipHash with a random key): only
/// computed on connections seen at two points.
fn payload_key(payload: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    static KEY: std::sync::OnceLock<std::hash::RandomState> = std::sync::OnceLock::new();
    KEY.get_or_init(std::hash::RandomState::new)
        .hash_one(payload)
}

/// Segments read remembered per end once two points are proved: copies
/// further behind their originals (many segments in flight between the two
/// points) are named.
const READ_RING: usize = 32;

/// Where a frame was seen: its TTL and link addresses.
type Leg = (u8, Option<[u8; 6]>, Option<decode::Cooked>);

/// Sequence, acknowledgement, TCP checksum, payload length, flags byte.
type TcpPrint = (u32, u32, u16, u32, u8);

/// One segment as seen at one point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    tcp: TcpPrint,
    leg: Leg,
    /// It was read (passed the receiver's checks).
    read: bool,
}

fn tcp_print(t: &decode::Tcp<'_>) -> TcpPrint {
    let seg = t.segment;
    (
        t.seq,
        t.ack,
        u16::from_be_bytes([
            seg.get(16).copied().unwrap_or(0),
            seg.get(17).copied().unwrap_or(0),
        ]),
        t.payload.len() as u32,
        seg.get(13).copied().unwrap_or(0),
    )
}

impl Legs {
    /// Whether a frame with this TCP segment, seen at `leg`, was seen at one
    /// of two points proved to be on this end's path. Proves them from a
    /// copy of one of its last segments.
    fn on_path(&mut self, t: &decode::Tcp<'_>, leg: Leg) -> bool {
        if let Some(p) = &self.proved {
            return p.contains(&leg);
        }
        let tcp = tcp_print(t);
        let copy_of = self.recent.iter().flatten().find(|e| {
            e.tcp == tcp
                && (1..=MAX_HOPS_BETWEEN).contains(&e.leg.0.abs_diff(leg.0))
                && (e.leg.1 != leg.1 || e.leg.2 != leg.2)
        });
        // A TTL low enough to run out before the host is no point on its
        // path that wardgate can trust (see `DECOY_TTL`).
        if let Some(e) = copy_of.filter(|e| e.leg.0.min(leg.0) > DECOY_TTL) {
            self.proved = Some([e.leg, leg]);
            self.skewed = e.leg.0 < leg.0;
            let mut ring = Box::new(ReadRing {
                seen: [None; READ_RING],
                next: 0,
            });
            // The segment that proved them, if it was read at its point and
            // carries no data (its bytes were not kept: a payload matched by
            // checksum alone could be another's).
            if e.read && t.payload.is_empty() {
                ring.seen[0] = Some((e.tcp, payload_key(&[])));
                ring.next = 1;
            }
            self.read = Some(ring);
            return true;
        }
        self.recent[self.next] = Some(Seen {
            tcp,
            leg,
            read: false,
        });
        self.next = (self.next + 1) % self.recent.len();
        false
    }

    /// Notes a segment read (the one `on_path` was last asked about).
    fn read(&mut self, t: &decode::Tcp<'_>) {
        match self.read.as_mut() {
            Some(r) => {
                r.seen[r.next] = Some((tcp_print(t), payload_key(t.payload)));
                r.next = (r.next + 1) % READ_RING;
            }
            None => {
                // Before the proof: the latest of `recent` is this segment.
                let last = (self.next + self.recent.len() - 1) % self.recent.len();
                if let Some(e) = self.recent[last].as_mut() {
                    e.read = true;
                }
            }
        }
    }

    /// Whether this segment's TCP bytes were read lately.
    fn was_read(&self, t: &decode::Tcp<'_>) -> bool {
        let Some(r) = self.read.as_ref() else {
            return false;
        };
        let tcp = tcp_print(t);
        let mut key = None;
        r.seen
            .iter()
            .flatten()
            .any(|(s, k)| *s == tcp && *key.get_or_insert_with(|| payload_key(t.payload)) == *k)
    }
}

/// The most a TTL may drop between two capture points of one path for their
/// copies to be taken as one segment forwarded (routers between them).
const MAX_HOPS_BETWEEN: u8 = 8;

/// What one end of a connection showed of itself: its TTL, the station its
/// frames reach, its checksums, what its SYN negotiated, its last timestamp.
/// The receiver's checks judge its later packets by it, so a decoy cannot
/// set it (and it outlives an idle timeout: see [`Resumable`]).
#[derive(Debug, Clone, Copy, Default)]
struct Shown {
    /// TTL or hop limit of its first packet.
    ttl: Option<u8>,
    /// The destination MAC of its first frame (its SYN, normally): the station
    /// its frames reach. A later frame to another is dropped by the receiving
    /// NIC. Learned per connection rather than from the peer's own frames, so a
    /// capture whose frames all carry one odd address (a generated capture's
    /// broadcast, a router between) stays consistent.
    mac: Option<[u8; 6]>,
    /// The destination MAC was confirmed as the peer's own source MAC.
    mac_confirmed: bool,
    /// Its own source MAC, from its first frame.
    src_mac: Option<[u8; 6]>,
    /// Its frames came from more than one source MAC (one forged in its
    /// name, a router's two sides): its MAC confirms nothing.
    src_mac_mixed: bool,
    /// The source MAC of its latest frame.
    src_mac_last: Option<[u8; 6]>,
    /// A cooked capture took one of its frames as to the capturing host
    /// (`PACKET_HOST`): the capture was taken on its receiver (or on a router
    /// between), whose NIC drops a frame to another station.
    cooked_host: bool,
    /// A cooked capture showed one of its frames as sent by the capturing
    /// host (`PACKET_OUTGOING`): the capture was taken on it, so the frames
    /// it receives are judged by the packet type its own NIC gave them.
    cooked_out: bool,
    /// Its TCP checksums are the offload artefact of a capture on its host
    /// (decided by its first segment).
    offloaded: Option<bool>,
    /// Window scale it announced on its SYN.
    wscale: Option<u8>,
    /// Sent the timestamps option on its SYN.
    ts_on_syn: bool,
    /// Offered SACK on its SYN.
    sack_on_syn: bool,
    /// The largest segment it will take (the MSS on its SYN).
    mss: Option<u16>,
    /// Its most recent timestamp accepted (PAWS), as Linux stores it: from
    /// segments starting at or before `rcv_wup`, taken as the highest ACK the
    /// receiving host sent.
    ts_recent: Option<u32>,
    /// The same, stored from segments starting at or before `rcv_nxt`: where
    /// the capture's order of the host's ACKs and the other end's data is not
    /// the host's (a capture upstream of it shows data sent right behind a
    /// segment before the host's ACK of that segment), the host's `rcv_wup`
    /// was ahead of its last ACK in the capture. A timestamp older than one of
    /// the two and not the other is a drop the host may or may not have made.
    ts_recent_nxt: Option<u32>,
    /// The earliest and latest timestamps on copies of its SYN that differ:
    /// the listener keeps the one on the copy that reached it first (a
    /// retransmission changes nothing, `tcp_check_req`), which only the
    /// SYN-ACK's echo shows. Until then `ts_recent` holds the earliest, so
    /// that no segment the host reads is dropped as old.
    ts_syn_copies: Option<(u32, u32)>,
    /// The copy's timestamp a SYN-ACK echoed.
    ts_syn_echoed: Option<u32>,
}

/// A segment whose ACK covers data the capture never showed the other end
/// sending. Linux drops an ACK of unsent data, so a decoy carries one; a
/// capture that lost the other end's packets (a full capture ring, a lossy
/// tap) shows the same thing on real segments. The other end's next packet
/// tells them apart: a sequence number at or past the ACK means it had sent
/// that data (the segment is then analysed, late but in order); one before it
/// means it had not (the segment is dropped as the host dropped it).
#[derive(Debug, Clone)]
struct Deferred {
    /// The packet with its TCP segment left out (`transport` is `Other`).
    decoded: Decoded<'static>,
    /// The TCP header and payload.
    segment: Vec<u8>,
    ack: u32,
    ts: u64,
}

/// Addresses of the capturing host a cooked capture is remembered to show
/// (a host has a few; a capture that shows more is not taken on one host).
const MAX_COOKED_LOCAL: usize = 256;

/// At most this many copies the host may or may not have taken are
/// remembered per side (see `Side::uncertain`); past that, where they were
/// is kept as one [`Forgotten`] stretch.
const MAX_UNCERTAIN: usize = 8;

/// The largest receive window TCP can announce (65 535 scaled by 2^14): a
/// copy starting further than this past anything the sender had sent is
/// outside every window the host could have opened.
const MAX_TCP_WINDOW: u32 = 65_535 << 14;

/// The stretch of sequence space of uncertain copies forgotten for
/// [`MAX_UNCERTAIN`], merged: wardgate no longer has their bytes, so any
/// other bytes there may differ from what the host read.
#[derive(Debug, Clone, Copy)]
struct Forgotten {
    start: u32,
    end: u32,
    /// The earliest FIN or RST among them: a host that took it read nothing
    /// past it.
    stop: Option<u32>,
    /// Part of it is a frame the capture cut short (see
    /// [`Analyzer::cut_frame`]), not a copy let go.
    cut: bool,
}

impl Forgotten {
    /// Merges the stretch of `u` in.
    fn merge(this: Option<Forgotten>, u: &Uncertain) -> Forgotten {
        let end_u = u.seq.wrapping_add(u.bytes.len() as u32);
        Self::merge_stretch(this, u.seq, end_u, u.stop, false)
    }

    /// Merges in the stretch `seq..end_u` (`cut`: of a frame the capture cut
    /// short).
    fn merge_stretch(
        this: Option<Forgotten>,
        seq: u32,
        end_u: u32,
        stop: Option<u32>,
        cut: bool,
    ) -> Forgotten {
        let Some(f) = this else {
            return Forgotten {
                start: seq,
                end: end_u,
                stop,
                cut,
            };
        };
        Forgotten {
            start: if after(f.start, seq) { seq } else { f.start },
            end: if after(end_u, f.end) { end_u } else { f.end },
            stop: match (f.stop, stop) {
                (Some(a), Some(b)) => Some(if after(a, b) { b } else { a }),
                (a, b) => a.or(b),
            },
            cut: f.cut || cut,
        }
    }

    /// Bytes `seq..end` fall in it, or past its FIN or RST.
    fn touches(&self, seq: u32, end: u32) -> bool {
        (after(end, self.start) && after(self.end, seq))
            || self.stop.is_some_and(|stop| after(end, stop))
    }
}

/// Why the host may or may not have taken a copy of some bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Doubt {
    /// It carried a TCP-AO option, or malformed TCP options found only by the
    /// longer walk of a Linux built with TCP-AO: such a host drops it, one
    /// without TCP-AO (or before 6.7) reads it ([`decode::AuthDrop::TcpAoBuild`]).
    TcpAo,
    /// It carried malformed TCP options that Linux 6.7 and later refuse
    /// (`tcp_inbound_hash`); 6.6 and older read it
    /// ([`decode::AuthDrop::Since67`]).
    OldKernel,
    /// It reached or crossed the window edge the capture last showed.
    WindowEdge,
    /// A FIN or RST whose timestamp is older than one the host may have
    /// stored: dropped if its `rcv_wup` was ahead of the ACKs the capture
    /// shows, taken if not (or the reverse).
    Paws,
    /// Reassembled from IP fragments completed after the reassembly timeout,
    /// within the slack of the host's timer
    /// ([`defrag::Anomaly::MaybeExpired`]): the host may have dropped the
    /// queue first.
    FragmentTimer,
    /// It carried an IPv6 type 2 routing header with no segments left
    /// ([`decode::HostDrop::Ipv6MobileRouting`]): a Linux built with Mobile
    /// IPv6 drops it, one without reads it.
    MobileIpv6,
    /// Its TTL or hop limit was low enough to expire on the hops between
    /// the capture point and the host ([`DECOY_TTL`]), or not: the capture
    /// cannot know the hop count.
    LowTtl,
    /// It came in a frame with more VLAN tags than a flow's key holds: read
    /// only by a host with VLAN interfaces stacked that deep.
    DeepVlan,
    /// Larger than an Ethernet frame with the checksum offload's pattern,
    /// from a sender that showed good checksums: the receiving host's own
    /// merging on a capture taken there, a bad checksum on a wire.
    OffloadPattern,
    /// A segment with a good checksum carrying more than the receiver's
    /// announced MSS (`limit`; when it announced none, what a 1500-byte
    /// link carries: `announced` false): a 1500-byte link on the way drops
    /// it, a path with larger frames (the MSS clamped by a middlebox)
    /// delivers it, and the capture cannot tell which.
    OverMss { limit: u16, announced: bool },
    /// Sent in the name of the capturing host by another station (a cooked
    /// capture on the sender showed it as to another station, not as
    /// outgoing): the receiver got it if it was framed to the next hop, not
    /// if to another station, and the capture cannot tell.
    CookedSpoof,
    /// A FIN or RST a cooked capture showed as to another station, where
    /// the capture was not known to be on either end: a decoy the receiver
    /// never got, or the real one seen from beside the link.
    CookedOtherHost,
    /// Reassembled from IPv4 fragments between two of which more than the
    /// reassembly distance of other fragments came from the source to other
    /// addresses ([`defrag::Anomaly::MaybeRestarted`]): a host owning those
    /// addresses restarted its queue and never read it, one that does not
    /// read it.
    FragmentDistance,
}

/// Most payload a 1500-byte link carries in one TCP segment over IPv4 (and
/// over IPv6): what a receiver that announced no MSS is taken to accept.
const LINK_MSS_V4: u16 = 1460;
const LINK_MSS_V6: u16 = 1440;

/// Marks [`Conn::reported`] once a segment larger than the receiver's MSS
/// was reported (its own bit: an earlier drop for another reason must not
/// leave it unsaid).
const REPORTED_OVER_MSS: u32 = 1 << 30;

/// A copy of bytes the host may or may not have taken: where it starts, its
/// first [`UNCERTAIN_BYTES`] bytes, and why.
#[derive(Debug)]
struct Uncertain {
    seq: u32,
    bytes: Box<[u8]>,
    doubt: Doubt,
    /// It carried a FIN or RST: a host that took it read nothing from this
    /// sequence number on, so any bytes there are read only by a host that
    /// dropped it.
    stop: Option<u32>,
}

/// How much of an uncertain copy is kept to compare a later one with, byte
/// for byte (a full-size segment).
const UNCERTAIN_BYTES: usize = 2048;

impl Uncertain {
    fn new(seq: u32, payload: &[u8], doubt: Doubt) -> Self {
        Uncertain {
            seq,
            bytes: payload[..payload.len().min(UNCERTAIN_BYTES)].into(),
            doubt,
            stop: None,
        }
    }
}

/// Keeps segment `t` as a copy its host may have taken (`doubt`): its bytes,
/// and where a FIN or RST on it would have ended the stream, at the FIN or
/// at the RST's sequence number; not before what the stream has read already
/// (a host ignores a control there).
fn note_uncertain_segment(side: &mut Side, t: &decode::Tcp<'_>, doubt: Doubt) {
    let flags = t.flags;
    let payload = if flags.rst { &[][..] } else { t.payload };
    let mut copy = Uncertain::new(t.seq, payload, doubt);
    if flags.fin || flags.rst {
        let stop = t.seq.wrapping_add(payload.len() as u32);
        let stale = side.stream.next_seq().is_some_and(|n| after(n, stop));
        copy.stop = Some(stop).filter(|_| !stale);
    }
    if !payload.is_empty() || copy.stop.is_some() {
        note_uncertain(side, copy);
    }
}

/// Notes a copy of bytes the host may or may not have taken
/// ([`Side::uncertain`]). One that can never matter is not kept: wholly
/// before what the stream has read (the host has those bytes already, and
/// a copy there is a duplicate to any kernel), or starting past every
/// window the host could have opened. Those kept that have since fallen
/// wholly before what the stream read go first; past [`MAX_UNCERTAIN`]
/// still, the oldest is let go into [`Side::forgotten`], whose bytes are an
/// ambiguity when other bytes come for them, never dropped silently (found
/// by an adversarial review: eight 1-byte junk segments at stale sequence
/// numbers pushed out the uncertain copy of an order, and the safe copy
/// sent after it was judged with no ambiguity).
fn note_uncertain(side: &mut Side, copy: Uncertain) {
    let read = side.stream.next_seq();
    let end = copy.seq.wrapping_add(copy.bytes.len() as u32);
    let spent = |end: u32, stop: Option<u32>| {
        // A FIN or RST at what was read still ends the stream for a host
        // that took it.
        read.is_some_and(|n| !after(end, n) && stop.is_none_or(|s| after(n, s)))
    };
    if spent(end, copy.stop) {
        return;
    }
    let sent = match (read, side.snd_nxt) {
        (Some(n), Some(s)) => Some(if after(s, n) { s } else { n }),
        (n, s) => n.or(s),
    };
    if sent.is_some_and(|s| after(copy.seq, s.wrapping_add(MAX_TCP_WINDOW))) {
        return;
    }
    if side.uncertain.len() == MAX_UNCERTAIN {
        side.uncertain
            .retain(|u| !spent(u.seq.wrapping_add(u.bytes.len() as u32), u.stop));
    }
    if side.uncertain.len() == MAX_UNCERTAIN {
        let oldest = side.uncertain.remove(0);
        side.forgotten = Some(Forgotten::merge(side.forgotten, &oldest));
    }
    side.uncertain.push(copy);
}

/// At most this many segments wait per side; an older one then goes
/// unconfirmed (reported as ambiguous, not judged).
const MAX_DEFERRED: usize = 16;

impl Deferred {
    /// The held segment's sequence number.
    fn seq(&self) -> Option<u32> {
        decode::tcp_segment(&self.segment).ok().map(|t| t.seq)
    }
}

impl Side {
    fn new(limits: reassembly::Limits, policy: Policy) -> Self {
        Side {
            stream: Stream::with_policy(limits, policy),
            shown: Shown::default(),
            syn_ack_seen: false,
            isn: None,
            uncertain: Vec::new(),
            forgotten: None,
            edge: None,
            max_window: 0,
            max_ack: None,
            snd_nxt: None,
            deferred: Vec::new(),
            legs: Legs::default(),
        }
    }

    fn deferred_bytes(&self) -> usize {
        self.deferred
            .iter()
            .map(|d| d.segment.len() + reassembly::PIECE_COST)
            .sum()
    }
}

/// A client SYN with another ISN inside a connection: kept until the server's
/// SYN-ACK says whether it took it, with what the client's side learns from a SYN.
#[derive(Debug, Clone, Copy)]
struct SynSeen {
    isn: u32,
    wscale: Option<u8>,
    tsval: Option<u32>,
    ttl: u8,
    dst_mac: Option<[u8; 6]>,
    /// The server acknowledged in the old sequence space since: a challenge
    /// ACK (RFC 5961 4.2) or an ACK of old data; its connection lives.
    challenged: bool,
}

/// How far apart `a` and `b` are in sequence space, either way.
fn distance(a: u32, b: u32) -> u32 {
    a.wrapping_sub(b).min(b.wrapping_sub(a))
}

/// `a` is after `b` in sequence space (RFC 1982 serial arithmetic).
fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

struct Conn {
    session: Session,
    /// Client to server.
    up: Side,
    /// Server to client.
    down: Side,
    last_us: u64,
    rst: bool,
    /// Bytes this connection held after its last packet (counted in the total).
    held: usize,
    /// Whether any payload was seen: a connection that never carried data (a SYN
    /// scan, a refused connection) times out after [`HANDSHAKE_TIMEOUT_US`].
    has_data: bool,
    /// A SYN from the client inside this connection, ignored unless the server
    /// answers it.
    pending_syn: Option<SynSeen>,
    /// The server's SYN-ACKs with distinct ISNs, until the client's first ACK
    /// (at most [`MAX_SYN_ACKS`]): the first one seen is followed, a later
    /// one with another ISN is held, and the client's first ACK (its ack
    /// number is the ISN plus one) says which one it took (a forged SYN-ACK
    /// seen first must not make every client segment "a first ACK that does
    /// not acknowledge the SYN-ACK"). Empty once the handshake is done.
    syn_acks: Vec<Deferred>,
    /// An exact RST was seen: the connection waits (see [`ResetSeen`]) for a
    /// sign that it was not taken before it ends as reset.
    reset: Option<Box<ResetSeen>>,
    /// A SYN-ACK answered a SYN with another ISN while this connection lived:
    /// the new connection it would start is followed beside this one (see
    /// [`Fork`]).
    fork: Option<Box<Fork>>,
    /// Rules already reported for this connection (packet anomalies are
    /// reported once per connection and reason).
    reported: u32,
    /// Which end's FIN the capture showed first (true: the client's): the
    /// end that closed first is the one left in TIME_WAIT.
    first_fin: Option<bool>,
}

/// An exact RST on a connection that had completed its handshake or carried
/// data. A RST at the right sequence number ends the connection for the host
/// that takes it, but a capture cannot tell one that reached its host from one
/// forged toward an end it never reaches (or dropped on the way): that end
/// goes on reading. The passive monitor judges what the receiving host reads,
/// and fails closed: data after the RST is never dropped unjudged unless the
/// RST is proven taken. So the connection does not end at once: from the first
/// packet after the RST that is more than a pure ACK (data, SYN, FIN, RST),
/// the packets are held (owned copies, at most [`RESET_HELD`] with payload and
/// [`RESET_HELD_BYTES`] of payload, [`RESET_HELD_ALL`] packets and
/// [`RESET_HELD_MEMORY`] bytes in all, charged to the memory budget) for at
/// most [`RESET_WAIT_US`] of capture time, and the answers decide:
///
/// - Not taken: an end acknowledges bytes its peer sent after the RST, or
///   answers a SYN with another ISN with an ACK in the old sequence space (a
///   challenge ACK: its connection lives). Reported as `WG-CAP-022`; the held
///   packets are analysed as they came.
/// - Taken: the receiver of data sent after the RST answers it with a RST (a
///   closed socket does), or a SYN with the connection's own ISN (a port
///   reused) is answered with a SYN-ACK for it (a new connection, analysed as
///   one). The connection ends as reset; the held data is reported as data on
///   a closed connection (`WG-CAP-009`). A SYN-ACK for a SYN with another ISN
///   ends the wait with no claim: the connection goes on and the SYN-ACK
///   forks it (see [`Fork`]).
/// - Both, or neither when the wait or a bound runs out (or the connection is
///   evicted, shed, or the capture ends) with data held: `WG-CAP-023`, and the
///   held packets are analysed as read; the connection goes on.
///
/// Pure ACKs while nothing is held go through at once (they are checked for
/// the proof), so they spend no budget; a RST followed by nothing waits
/// without a deadline and ends as reset when the connection would end (idle
/// timeout, eviction, end of capture), with no claim that later data on the
/// ports is unread.
#[derive(Debug)]
struct ResetSeen {
    /// The connection's key.
    key: Key,
    /// When the RST was seen.
    at_us: u64,
    /// When the first packet was held: the wait runs from there.
    since_us: Option<u64>,
    /// Just past the last byte the client, and the server, had been seen
    /// sending when the RST came.
    up_at: Option<u32>,
    down_at: Option<u32>,
    /// Just past the furthest byte each has been seen sending since.
    up_sent: Option<u32>,
    down_sent: Option<u32>,
    /// Whether each sent payload after the RST (with the ACK flag).
    up_data: bool,
    down_data: bool,
    /// The lowest sequence number of each side's payload after the RST: an
    /// acknowledgement past it read bytes sent after the RST, wherever the
    /// capture showed the rest (a hole filled after the RST, its later bytes
    /// sent before; found by an adversarial review).
    up_first: Option<u32>,
    down_first: Option<u32>,
    /// Proof the host took the RST: a SYN-ACK for a new SYN on the ports.
    answered: bool,
    /// The receiver of data sent after the RST answered it with a RST: a
    /// closed socket does, but anyone able to forge the first RST can forge
    /// this one, so it never decides alone (found by an adversarial review:
    /// a forged answering RST ended the wait as reset and hid the order the
    /// host read); with an acknowledgement it is a conflict.
    rst_answer: bool,
    /// A SYN from the client, and its place in `held`.
    syn: Option<(u32, usize)>,
    /// Data a host reads had been held when the SYN came: a SYN-ACK for the
    /// SYN then decides nothing alone (whoever forged the RST can forge it
    /// too; found by an adversarial review: a forged SYN-ACK ended the wait
    /// as reset and hid an order the host read).
    data_before_syn: bool,
    /// Held packets with payload, and their payload bytes.
    data_packets: usize,
    data_bytes: usize,
    /// What the held packets cost.
    cost: usize,
    /// The packets that came after the RST, in order.
    held: Vec<Deferred>,
}

impl ResetSeen {
    /// Data a host reads if it did not take the RST was held.
    fn has_data(&self) -> bool {
        self.up_data || self.down_data
    }
}

/// How the wait after an exact RST ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResetEnd {
    /// An end showed it had not taken the RST (`WG-CAP-022`).
    NotTaken,
    /// Evidence both ways, or none with data held (`WG-CAP-023`).
    Uncertain,
    /// The connection ends as reset.
    Reset,
}

/// A SYN-ACK answered a SYN with another ISN inside a connection the
/// capture did not show closed (no RST taken, not both FINs). A live Linux
/// socket never answers such a SYN with a SYN-ACK (RFC 5961 4.2: a challenge
/// ACK in the old sequence space), so the SYN-ACK is forged unless the
/// server's socket had gone without a trace in the capture (a reboot, a RST
/// the capture missed). Found by an adversarial review (round 11): a forged
/// SYN-ACK restarted the connection in wardgate's view, and the unsafe order
/// sent after it in the old sequence space, which the host read, was
/// dropped as a segment the host drops.
///
/// So the SYN-ACK restarts nothing alone: the new connection is followed
/// beside the old one, under its own key (the old one's with
/// [`FORK_VLANS`]), each packet going to the connection whose sequence
/// space it is in, each analysed as read (failing closed). For
/// [`RESET_WAIT_US`] of capture time the server's answers are gathered:
///
/// - The server acknowledges in the old sequence space (a challenge ACK,
///   before or after the SYN-ACK, or an ACK of old data) and never data sent
///   in the new one: the SYN-ACK was not the host's. The new connection is
///   let go (`WG-CAP-010`); the old one goes on.
/// - The server acknowledges data sent in the new sequence space and nothing
///   in the old one: the host has the new connection. The old one ends; the
///   new one takes its place.
/// - Both, or neither: `WG-CAP-025`, and both go on being analysed.
///
/// One fork at a time: a SYN-ACK for a SYN with yet another ISN (the client
/// reset the old connection and reconnected, or another forgery) replaces a
/// fork the server never proved, which is reported as settled so far; a fork
/// it proved (ACKs of new-space data only, the wait not yet run out) takes
/// the ports first, and is forked in turn. The SYNs and SYN-ACKs of the new
/// connection's ISN go to it, any other to the old connection. Found by an
/// adversarial review (round 12): a further SYN-ACK while a fork was open, or
/// after one was left undecided, was "a third sequence space" and dropped
/// silently, and the real reconnect's order was missed.
///
/// A fork takes a place in the flow table: at the limit, room is made as for
/// a new flow ([`Analyzer::evict`]), never by letting go of the old
/// connection; where none can be made, the old connection is kept and the
/// doubt named (`WG-CAP-025`), never restarted by the SYN-ACK (found by the
/// same review: an exactly full table refused the fork, and the SYN-ACK
/// restarted the connection).
#[derive(Debug)]
struct Fork {
    /// The new connection's key.
    key: Key,
    /// The old connection's key.
    home: Key,
    /// When the SYN-ACK came.
    since_us: u64,
    /// The server acknowledged in the old sequence space after the SYN.
    old_alive: bool,
    /// The server acknowledged data sent in the new sequence space.
    new_acked: bool,
    /// Answered (both or neither): both connections go on, nothing more to
    /// decide.
    decided: bool,
}

/// Marks the key of a connection followed beside another on the same ports
/// ([`Fork`]): a bit no frame's VLAN tags set (each 16-bit half of
/// [`Decoded::vlans`] is at most 0x9000, and [`decode::VLANS_BEYOND_KEY`] is
/// another bit).
const FORK_VLANS: u32 = 0x2000;

/// How long (capture time) the packets after an exact RST are held.
const RESET_WAIT_US: u64 = 3_000_000;
/// At most this many packets with payload are held after an exact RST.
const RESET_HELD: usize = 64;
/// At most this many payload bytes are held after an exact RST.
const RESET_HELD_BYTES: usize = 64 * 1024;
/// At most this many packets in all (pure ACKs among them) are held.
const RESET_HELD_ALL: usize = 1024;
/// At most this much memory in all is held after an exact RST.
const RESET_HELD_MEMORY: usize = 256 * 1024;

/// At most this many SYN-ACKs with distinct ISNs are kept per connection
/// before the client's first ACK (see `Conn::syn_acks`).
const MAX_SYN_ACKS: usize = 4;

/// A TTL or hop limit this low, and lower than the connection's, may expire on
/// the hops between the capture point and the host: wardgate does not judge
/// such a packet as read.
const DECOY_TTL: u8 = 16;

/// Connections seen under too many VLAN tags named one by one.
const MAX_DEEP_NAMED: usize = 256;

/// How long a connection whose handshake never completed is kept.
const HANDSHAKE_TIMEOUT_US: u64 = 30_000_000;
/// A capture timestamp further ahead than this of the latest one is not believed
/// (one corrupt record must not time out every connection).
const MAX_CLOCK_JUMP_US: u64 = 86_400_000_000;

/// A flow: its VLAN tags and both endpoints in a fixed order, as integers (an
/// IPv4 address as IPv4-mapped IPv6, told apart by `v6`), with the keyed hash
/// of all that, computed once per packet. The flow table's hasher passes that
/// hash through, so the lookups a packet makes cost no rehashing
/// (SocketAddr's field-by-field hashing, twice a packet, was ~8% of analysis).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    hash: u64,
    a: u128,
    b: u128,
    ports: u32,
    vlans: u32,
    v6: bool,
}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write_u64(self.hash);
    }
}

/// Hands a [`Key`]'s precomputed hash to the table unchanged. The hash is
/// keyed per process (foldhash, randomly seeded: flow keys are
/// attacker-chosen), so passing it through keeps the table's protection.
#[derive(Default)]
struct PassThrough(u64);

impl std::hash::Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Not reached by `Key`; folded in all the same for any other use.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type FlowTable = HashMap<Key, Conn, std::hash::BuildHasherDefault<PassThrough>>;

/// The passive analyser.
pub struct Analyzer {
    /// The engine.
    pub observer: Observer,
    limits: FlowLimits,
    /// Keyed by [`Key`], whose hash `keyer` computed.
    flows: FlowTable,
    /// foldhash: keyed per process (flow keys are attacker-chosen), and several
    /// times cheaper than SipHash on a 40-byte key (measured: SipHash was ~9% of
    /// analysis time).
    keyer: foldhash::fast::RandomState,
    /// IPv4 reassembly.
    defrag: Defrag,
    /// IPv6 reassembly: Linux keeps the two apart, with their own timeouts.
    defrag6: Defrag,
    clock: ReplayClock,
    /// Counters.
    pub counts: PacketCounts,
    last_sweep_us: u64,
    now_us: u64,
    /// Bytes held across all connections.
    held: usize,
    /// Only packets this passes are analysed (`--filter`).
    filter: Option<crate::filter::Filter>,
    /// The receivers' reassembly policies: the first network that holds the
    /// receiving host's address, else `default_policy`.
    policies: Vec<(IpNetwork, Policy)>,
    default_policy: Policy,
    /// Capture-level alerts per rule so far (a flood of them is thinned out).
    capture_alerts: HashMap<&'static str, u64>,
    /// Connections seen under too many VLAN tags already named
    /// (`WG-CAP-027`), at most [`MAX_DEEP_NAMED`]: further ones are counted.
    deep_vlan_named: HashSet<(SocketAddr, SocketAddr)>,
    /// Addresses a Linux cooked capture showed as the capturing host's own
    /// (the source of a frame it sent, the destination of one its NIC took
    /// as its own): at most [`MAX_COOKED_LOCAL`].
    cooked_local: HashSet<IpAddr>,
    /// Connections ended by a RST or both FINs (a keyed 64-bit fingerprint of
    /// the flow key, 16 bytes an entry), and when: data on them without a new SYN
    /// reaches no application (bounded by `max_flows`, kept [`CLOSED_MEMORY_US`]),
    /// with what the server's TIME_WAIT judges a new SYN by ([`Closed`]).
    closed: HashMap<u64, Closed, foldhash::fast::RandomState>,
    /// Connections that timed out idle, by fingerprint: what their ends showed
    /// of themselves (see [`Resumable`]); bounded by `max_flows`, kept
    /// [`IDLE_MEMORY_US`].
    resumable: HashMap<u64, Resumable, foldhash::fast::RandomState>,
    /// Segments held across all connections until the other end confirms
    /// them ([`Deferred`]): while none are, no packet pays for the look.
    deferred: usize,
    /// A held segment is being analysed now that the other end confirmed it.
    replaying: bool,
    /// Connections waiting after an exact RST ([`ResetSeen`]): while none
    /// are, no packet pays for the look.
    resetting: usize,
    /// Connections followed beside a new one a SYN-ACK would start
    /// ([`Fork`]): while none are, no packet pays for the look.
    forks: usize,
}

/// How long what an idle connection showed of its ends is remembered.
const IDLE_MEMORY_US: u64 = 24 * 3600 * 1_000_000;

/// A connection wardgate stopped following for want of packets (the idle
/// timeout) while the hosts keep it open (Linux has no idle timeout): when its
/// packets resume, the connection is picked up as it was, not as whatever
/// packet comes first says (a decoy with a TTL that runs out, to another
/// station, with an old timestamp).
#[derive(Debug, Clone, Copy)]
struct Resumable {
    at: u64,
    client: SocketAddr,
    server: SocketAddr,
    up: Shown,
    down: Shown,
}

/// How long a closed connection's key is remembered (Linux's TIME_WAIT is 60 s).
const CLOSED_MEMORY_US: u64 = 120_000_000;

/// Linux's TIME_WAIT (`TCP_TIMEWAIT_LEN`).
const TIME_WAIT_US: u64 = 60_000_000;

/// A connection that ended (see [`Analyzer::closed`]): when, and, when the
/// server closed first, what its TIME_WAIT socket judges a new SYN by.
#[derive(Debug, Clone, Copy)]
struct Closed {
    /// When it ended (or its TIME_WAIT was last restarted).
    at: u64,
    time_wait: Option<TimeWait>,
}

/// The server sent the first FIN: its socket sits in TIME_WAIT for
/// [`TIME_WAIT_US`] once the close completes (`tcp_time_wait`), and a SYN
/// from the client on the same ports starts a new connection only if it
/// passes `tcp_timewait_state_process`: its sequence number after the old
/// connection's next expected one, or a timestamp newer than the last the
/// client's side had accepted (when the old connection had timestamps), and
/// not rejected by PAWS. Otherwise the server answers with an ACK in the old
/// sequence space, and the SYN, and all sent in its sequence space, is never
/// read. (When the client closed first, the server went through LAST_ACK to
/// CLOSED: the listener takes any SYN.)
#[derive(Debug, Clone, Copy)]
struct TimeWait {
    /// The server is the key's lower endpoint (the SYN must go to it).
    server_lo: bool,
    /// The server's rcv_nxt: just past the client's FIN.
    rcv_nxt: u32,
    /// The client's last timestamp accepted, when the connection had
    /// timestamps (`tw_ts_recent`, with `tw_ts_recent_stamp` set).
    ts_recent: Option<u32>,
}

/// An endpoint as integers: the address (IPv4 mapped into IPv6), the port.
fn endpoint(s: SocketAddr) -> (u128, u16) {
    let ip = match s.ip() {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    };
    (ip, s.port())
}

/// The key of the flow between `a` and `b` (either order) on `vlans`.
fn key(keyer: &foldhash::fast::RandomState, vlans: u32, a: SocketAddr, b: SocketAddr) -> Key {
    use std::hash::BuildHasher;
    let (x, y) = (endpoint(a), endpoint(b));
    let (lo, hi) = if x <= y { (x, y) } else { (y, x) };
    let ports = (u32::from(lo.1) << 16) | u32::from(hi.1);
    let v6 = a.is_ipv6();
    Key {
        hash: keyer.hash_one((lo.0, hi.0, ports, vlans, v6)),
        a: lo.0,
        b: hi.0,
        ports,
        vlans,
        v6,
    }
}

/// The bit for `rule` in [`Conn::reported`].
fn bit(rule: Rule) -> u32 {
    match rule.id {
        "WG-CAP-009" => 1,
        "WG-CAP-010" => 2,
        "WG-CAP-011" => 4,
        "WG-CAP-012" => 8,
        "WG-CAP-016" => 16,
        "WG-CAP-018" => 32,
        "WG-CAP-019" => 64,
        "WG-CAP-020" => 128,
        "WG-CAP-022" => 256,
        "WG-CAP-023" => 512,
        "WG-CAP-026" => 1024,
        _ => 1 << 31,
    }
}

impl Analyzer {
    /// An analyser feeding `observer`.
    pub fn new(observer: Observer, limits: FlowLimits) -> Self {
        Analyzer {
            observer,
            limits,
            flows: FlowTable::default(),
            keyer: foldhash::fast::RandomState::default(),
            defrag: Defrag::new(defrag::Limits::default()),
            defrag6: Defrag::new(defrag::Limits::ipv6()),
            clock: ReplayClock::default(),
            counts: PacketCounts::default(),
            last_sweep_us: 0,
            now_us: 0,
            held: 0,
            filter: None,
            policies: Vec::new(),
            default_policy: Policy::Linux,
            capture_alerts: HashMap::new(),
            deep_vlan_named: HashSet::new(),
            cooked_local: HashSet::new(),
            closed: HashMap::with_hasher(foldhash::fast::RandomState::default()),
            resumable: HashMap::with_hasher(foldhash::fast::RandomState::default()),
            deferred: 0,
            resetting: 0,
            forks: 0,
            replaying: false,
        }
    }

    /// Analyses only the packets `filter` passes (the others are counted).
    pub fn with_filter(mut self, filter: Option<crate::filter::Filter>) -> Self {
        self.filter = filter;
        self
    }

    /// The reassembly policies `[gateway.capture]` names (validated there).
    pub fn with_config_policies(self, c: &wardgate_config::CaptureSettings) -> Self {
        let parse = |p: &str| p.parse::<Policy>().unwrap_or_default();
        let by_network = c
            .host_policy
            .iter()
            .flat_map(|h| {
                let policy = parse(h.policy.get_ref());
                h.networks
                    .iter()
                    .filter_map(move |n| IpNetwork::parse(n.get_ref()).ok().map(|n| (n, policy)))
            })
            .collect();
        self.with_policies(parse(c.reassembly_policy.get_ref()), by_network)
    }

    /// Receivers resolve overlapping data by `default`, or by the policy of the
    /// first of `by_network` that holds their address.
    pub fn with_policies(mut self, default: Policy, by_network: Vec<(IpNetwork, Policy)>) -> Self {
        self.default_policy = default;
        self.policies = by_network;
        self
    }

    /// Bytes held across all connections now (within `max_buffered` after every packet).
    pub fn held(&self) -> usize {
        self.held
    }

    /// Connections tracked now.
    pub fn tracked(&self) -> usize {
        self.flows.len()
    }

    /// Fragment reassembly counters: IPv4's, then IPv6's.
    pub fn defrag_stats(&self) -> [&defrag::Stats; 2] {
        [self.defrag.stats(), self.defrag6.stats()]
    }

    /// A connection's state, its sides reassembling by their receivers' policies.
    /// A new connection on the ports of one the analyser already follows (a
    /// restart, or a fork beside it): its session opened from its handshake,
    /// counted.
    fn reopen(
        &mut self,
        client: SocketAddr,
        server: SocketAddr,
        ts: u64,
        out: &mut dyn FnMut(Record),
    ) -> Conn {
        let clock = self.clock.at(ts);
        let session = self.observer.open(
            NewConnection {
                client,
                server,
                client_mac: None,
                midstream: false,
                ts_us: ts,
            },
            &clock,
            out,
        );
        self.counts.connections += 1;
        self.new_conn(session, ts)
    }

    fn new_conn(&self, session: Session, ts: u64) -> Conn {
        let limits = self.limits.reassembly;
        Conn {
            up: Side::new(limits, self.policy_for(session.server().ip())),
            down: Side::new(limits, self.policy_for(session.client().ip())),
            session,
            last_us: ts,
            rst: false,
            held: 0,
            has_data: false,
            pending_syn: None,
            syn_acks: Vec::new(),
            reset: None,
            fork: None,
            reported: 0,
            first_fin: None,
        }
    }

    /// A closed connection's entry: its key's keyed hash.
    fn fingerprint(&self, k: &Key) -> u64 {
        k.hash
    }

    fn policy_for(&self, ip: IpAddr) -> Policy {
        self.policies
            .iter()
            .find(|(n, _)| n.contains(ip))
            .map_or(self.default_policy, |(_, p)| *p)
    }

    /// One captured packet.
    pub fn packet(&mut self, p: Packet<'_>, out: &mut dyn FnMut(Record)) {
        self.counts.packets += 1;
        self.counts.bytes += p.data.len() as u64;
        let ts = if self.now_us != 0 && p.ts_micros > self.now_us.saturating_add(MAX_CLOCK_JUMP_US)
        {
            self.now_us
        } else {
            p.ts_micros
        };
        self.now_us = self.now_us.max(ts);
        let Some(link) = p.link else {
            self.counts.unsupported_link += 1;
            // Named once, counted after (found by an adversarial review: an
            // NFLOG capture of the host's traffic was only counted, and the
            // analysis ended clean).
            if self.counts.unsupported_link == 1 && self.filter.is_none() {
                self.capture_alert(
                    rules::FRAMES_NOT_ANALYSED,
                    "frames on a link type wardgate does not decode (Ethernet, raw IP, Linux cooked SLL/SLL2 and BSD loopback are): what they carried was not analysed (further ones only counted)".into(),
                    out,
                );
            }
            return;
        };
        // Matched by reference: moving the decoded packet out of the `Result`
        // was a `memcpy` per packet (1.9% of a capture's analysis).
        let decoded = decode::decode(link, p.data);
        let d = match &decoded {
            Ok(d) if self.filter.as_ref().is_some_and(|f| !f.matches(d)) => {
                self.counts.filtered += 1;
                return;
            }
            Ok(d) => d,
            // A filter names IP traffic: what is not IP does not pass it.
            Err(_) if self.filter.is_some() => {
                self.counts.filtered += 1;
                return;
            }
            Err(decode::DecodeError::NotIp) => {
                self.counts.not_ip += 1;
                return;
            }
            Err(decode::DecodeError::Malformed(_)) if p.orig_len as usize > p.data.len() => {
                // Cut by the capture, not on the wire: the host read it whole
                // (found by an adversarial review: such a frame was counted
                // malformed, and a decoy sent after it at the same sequence
                // numbers judged as the order read).
                self.counts.cut_frames += 1;
                self.cut_frame(link, p, ts, out);
                return;
            }
            Err(decode::DecodeError::Malformed(_)) => {
                self.counts.malformed += 1;
                return;
            }
        };
        // By reference: `Decoded` is 144 bytes, and moving it into the call
        // was a `memcpy` per packet.
        self.decoded(d, ts, out);
        if self.now_us.saturating_sub(self.last_sweep_us) >= 1_000_000 {
            self.sweep(out);
        }
    }

    /// A frame the capture cut short, its IP datagram not captured whole.
    /// A TCP segment of a connection followed (its headers captured) covers
    /// a stretch of the connection's sequence space whose bytes wardgate
    /// cannot know, nor whether its checksum held: the stretch is kept as
    /// [`Forgotten`], so that other bytes sent there are an ambiguity
    /// (`WG-CAP-005`), and the bytes the host read there, if none other
    /// come, are a hole (`WG-CAP-006`). Reported once per connection
    /// (`WG-CAP-026`); a frame no connection can be named for, at capture
    /// level.
    fn cut_frame(
        &mut self,
        link: decode::LinkType,
        p: Packet<'_>,
        ts: u64,
        out: &mut dyn FnMut(Record),
    ) {
        let cut = decode::cut_segment(link, p.data, p.orig_len);
        let placed = cut.and_then(|c| {
            let src = SocketAddr::new(c.src, c.src_port);
            let dst = SocketAddr::new(c.dst, c.dst_port);
            let k = key(&self.keyer, c.vlans, src, dst);
            let conn = self.flows.get_mut(&k)?;
            let side = if src == conn.session.client() {
                &mut conn.up
            } else {
                &mut conn.down
            };
            if !c.flags.syn {
                // A RST's bytes are discarded; past a FIN or at a RST, a host
                // that took it read nothing more.
                let len = if c.flags.rst { 0 } else { c.payload_len };
                let end = c.seq.wrapping_add(len);
                let stop = (c.flags.fin || c.flags.rst).then_some(end);
                let read = side.stream.next_seq();
                let spent =
                    read.is_some_and(|n| !after(end, n) && stop.is_none_or(|s| after(n, s)));
                if !spent && (len > 0 || stop.is_some()) {
                    side.forgotten = Some(Forgotten::merge_stretch(
                        side.forgotten,
                        c.seq,
                        end,
                        stop,
                        true,
                    ));
                }
                // The sender used these sequence numbers: the receiver's ACK
                // of them is no ACK of unsent data, nor is a RST after them
                // out of place (found by a review: a capture cut at 128
                // bytes raised WG-CAP-009, -010 and -019 on genuine ACKs and
                // the closing RST, besides the right WG-CAP-026).
                let used = end.wrapping_add(u32::from(c.flags.fin));
                if side.snd_nxt.is_none_or(|n| after(used, n)) {
                    side.snd_nxt = Some(used);
                }
            }
            Some((k, src, c))
        });
        match placed {
            Some((k, src, c)) => self.conn_anomaly(
                &k,
                rules::FRAME_CUT,
                || format!(
                    "a frame from {src} was cut by the capture's snap length ({} of {} bytes captured; sequence number {}, {} byte(s) of data): the host read it whole, wardgate could not see its bytes nor check its checksum; bytes sent again for that stretch are named as an ambiguity, and a message the host read there as a hole (further cut frames on this connection are only counted)",
                    p.data.len(),
                    p.orig_len,
                    c.seq,
                    c.payload_len
                ),
                ts,
                out,
            ),
            None => self.capture_alert(
                rules::FRAME_CUT,
                format!(
                    "a frame was cut by the capture's snap length ({} of {} bytes captured) before wardgate could place it in a connection it follows: what the host read in it is unknown",
                    p.data.len(),
                    p.orig_len
                ),
                out,
            ),
        }
    }

    fn decoded(&mut self, d: &Decoded<'_>, ts: u64, out: &mut dyn FnMut(Record)) {
        // What a cooked capture shows of the capturing host's own addresses.
        let local = match d.cooked {
            Some(decode::Cooked::Outgoing) => Some(d.src),
            Some(decode::Cooked::Host) => Some(d.dst),
            _ => None,
        };
        if let Some(a) = local {
            if self.cooked_local.len() < MAX_COOKED_LOCAL || self.cooked_local.contains(&a) {
                self.cooked_local.insert(a);
            }
        }
        if let Some(why) = d.host_drop {
            self.counts.host_drops += 1;
            // Dropped as a Linux built with Mobile IPv6 drops it; one without
            // reads it: a copy the host may have taken (found by an
            // adversarial review: a decoy FIN so carried ended wardgate's
            // stream, the order after it unjudged).
            if let (decode::HostDrop::Ipv6MobileRouting, Transport::Tcp(t)) = (why, &d.transport) {
                self.uncertain_segment(d, t, Doubt::MobileIpv6);
            }
            self.drop_packet(d, rules::HOST_WOULD_DROP, why.as_str(), ts, out);
            return;
        }
        match &d.transport {
            Transport::Tcp(t) if d.vlans_beyond_key() => {
                self.counts.tcp += 1;
                self.deep_vlan_segment(d, t, out);
            }
            Transport::Tcp(t) => {
                self.counts.tcp += 1;
                self.tcp(d, t, ts, out);
            }
            Transport::Udp {
                src_port, dst_port, ..
            } => {
                self.counts.udp += 1;
                self.observer.udp(
                    SocketAddr::new(d.src, *src_port),
                    SocketAddr::new(d.dst, *dst_port),
                    d.src_mac.as_ref().map(decode::mac_text),
                    ts,
                );
            }
            Transport::Fragment { ip, v6 } => {
                self.counts.fragments += 1;
                let scope = u64::from(d.vlans);
                let mut anomalies = Vec::new();
                let frame = defrag::Frame { dst_mac: d.dst_mac };
                let whole = if *v6 {
                    self.defrag6
                        .ipv6_framed(scope, ip, frame, ts, &mut |a| anomalies.push(a))
                        .map(|d| (d.ip, Some(d.fragmentable_at)))
                } else {
                    self.defrag
                        .ipv4_framed(scope, ip, frame, ts, &mut |a| anomalies.push(a))
                        .map(|d| (d, None))
                };
                let mut maybe_restarted = false;
                let mut maybe_expired = false;
                for a in anomalies {
                    maybe_restarted |= matches!(a, defrag::Anomaly::MaybeRestarted { .. });
                    maybe_expired |= matches!(a, defrag::Anomaly::MaybeExpired { .. });
                    self.fragment_anomaly(&a, out);
                }
                if let Some((datagram, fragmentable_at)) = whole {
                    self.counts.reassembled += 1;
                    // IPv6: read on from where the Fragment header was, as
                    // Linux does (a hop-by-hop header there is dropped).
                    let inner = match fragmentable_at {
                        Some(at) => decode::decode_reassembled_v6(&datagram, at),
                        None => decode::decode(decode::LinkType::RawIp, &datagram),
                    };
                    match inner {
                        Ok(inner) if !matches!(inner.transport, Transport::Fragment { .. }) => {
                            let merged = Decoded {
                                src_mac: d.src_mac,
                                dst_mac: d.dst_mac,
                                vlan: d.vlan,
                                vlans: d.vlans,
                                sent_by_capture_host: d.sent_by_capture_host,
                                reassembled: true,
                                ..inner
                            };
                            match merged.transport {
                                // Read by one host, restarted by another:
                                // a copy the host may not have taken.
                                Transport::Tcp(t)
                                    if maybe_restarted && merged.host_drop.is_none() =>
                                {
                                    self.counts.tcp += 1;
                                    self.uncertain_segment(&merged, &t, Doubt::FragmentDistance);
                                }
                                // Completed within the host's timer slack.
                                Transport::Tcp(t)
                                    if maybe_expired && merged.host_drop.is_none() =>
                                {
                                    self.counts.tcp += 1;
                                    self.uncertain_segment(&merged, &t, Doubt::FragmentTimer);
                                }
                                _ => self.decoded(&merged, ts, out),
                            }
                        }
                        _ => self.counts.malformed += 1,
                    }
                }
            }
            Transport::Other(_) => {}
        }
    }

    /// A TCP segment in a frame with more VLAN tags than a flow's key holds
    /// (see [`decode::VLANS_BEYOND_KEY`]): a host with VLAN interfaces
    /// stacked that deep reads it, one without drops it, and the capture
    /// cannot tell. It is counted, never analysed as a connection's; when it
    /// carries data of a connection tracked on its outer two VLANs, the copy
    /// is kept as uncertain there (see `Side::uncertain`), so that other
    /// bytes for the same stretch are an ambiguity (`WG-CAP-005`), not
    /// judged silently.
    fn deep_vlan_segment(
        &mut self,
        d: &Decoded<'_>,
        t: &decode::Tcp<'_>,
        out: &mut dyn FnMut(Record),
    ) {
        self.counts.deep_vlan_frames += 1;
        let src = SocketAddr::new(d.src, t.src_port);
        let dst = SocketAddr::new(d.dst, t.dst_port);
        let k = key(&self.keyer, d.vlans & !decode::VLANS_BEYOND_KEY, src, dst);
        // A connection carried that deep is never analysed: named once per
        // connection, whether or not a frame of it also came with fewer tags
        // (found by adversarial reviews: every frame of a connection under
        // three tags, RSPAN of QinQ traffic, was only counted; one SYN copy
        // under two tags then made every deep frame a silent uncertain copy;
        // named once per capture, a benign deep connection used it up).
        // Only a connection wardgate would judge or inventory (a route's
        // address, an enrolled device, a clinical port), and only while its
        // copy with fewer tags, if any, has carried no data: a mirrored
        // trunk's unrelated traffic, or a second identical copy of an analysed
        // connection, is counted (found by a review: 300 HTTPS connections
        // under three tags raised 102 alerts).
        let pair = if src < dst { (src, dst) } else { (dst, src) };
        let flow = self.flows.get(&k);
        let unseen = if t.payload.is_empty() {
            t.flags.syn && flow.is_none()
        } else {
            !flow.is_some_and(|c| c.has_data)
        };
        if unseen
            && self.deep_vlan_named.len() < MAX_DEEP_NAMED
            && !self.deep_vlan_named.contains(&pair)
            && self.observer.of_interest(src, dst)
        {
            self.deep_vlan_named.insert(pair);
            self.capture_alert(
                rules::FRAMES_NOT_ANALYSED,
                format!("TCP frames between {src} and {dst} under more VLAN tags than wardgate keys a connection by: a host with VLAN interfaces stacked that deep read them, and wardgate did not analyse them (further frames of the connection only counted)"),
                out,
            );
        }
        let Some(c) = self.flows.get_mut(&k) else {
            return;
        };
        if t.payload.is_empty() || t.flags.syn || t.flags.rst {
            return;
        }
        let side = if src == c.session.client() {
            &mut c.up
        } else {
            &mut c.down
        };
        note_uncertain(side, Uncertain::new(t.seq, t.payload, Doubt::DeepVlan));
    }

    /// A TCP segment the host may or may not have taken (for `doubt`): not
    /// analysed; its bytes, and where a FIN or RST on it would have ended
    /// the stream, are kept as an uncertain copy of its connection's, so
    /// that other bytes there, or past that end, are an ambiguity
    /// (`WG-CAP-005`). A SYN is left out.
    fn uncertain_segment(&mut self, d: &Decoded<'_>, t: &decode::Tcp<'_>, doubt: Doubt) {
        let flags = t.flags;
        if flags.syn {
            return;
        }
        let src = SocketAddr::new(d.src, t.src_port);
        let dst = SocketAddr::new(d.dst, t.dst_port);
        let k = key(&self.keyer, d.vlans, src, dst);
        let Some(c) = self.flows.get_mut(&k) else {
            return;
        };
        let side = if src == c.session.client() {
            &mut c.up
        } else {
            &mut c.down
        };
        note_uncertain_segment(side, t, doubt);
    }

    fn fragment_anomaly(&mut self, a: &defrag::Anomaly, out: &mut dyn FnMut(Record)) {
        use defrag::Anomaly as A;
        let rule = match a {
            // Named with the connection's bytes, where they matter (see
            // `Doubt::FragmentDistance`).
            A::Duplicate { .. } | A::MaybeRestarted { .. } | A::MaybeExpired { .. } => return,
            // A mirror's second copy of a datagram read once: counted only.
            A::Repeated { .. } => return,
            A::Overlap { .. } | A::DuplicateDiffers { .. } => rules::FRAGMENT_OVERLAP,
            A::TimedOut { .. } | A::Evicted { .. } => rules::FRAGMENT_INCOMPLETE,
            A::MixedStations { .. } => rules::OTHER_STATION_MAC,
            _ => rules::FRAGMENT_ANOMALY,
        };
        let k = a.key();
        let text = format!(
            "{} (IP datagram {} -> {} id {})",
            a.describe(),
            k.src,
            k.dst,
            k.id
        );
        self.capture_alert(rule, text, out);
    }

    /// A capture-level alert, thinned out under a flood: the first 100 of a rule,
    /// then one each time the count doubles.
    fn capture_alert(&mut self, rule: Rule, text: String, out: &mut dyn FnMut(Record)) {
        let n = self.capture_alerts.entry(rule.id).or_default();
        *n += 1;
        if *n > 100 && !n.is_power_of_two() {
            return;
        }
        let text = if *n > 100 {
            format!("{text} ({n} such events so far)")
        } else {
            text
        };
        let clock = self.clock.at(self.now_us);
        self.observer.capture_event(&clock, rule, text, out);
    }

    /// This packet, from `src` with sequence number `seq`, says whether the
    /// other end's held segments acknowledged data it had sent: those whose
    /// ACK is not past `seq` are analysed now, in their order; the others are
    /// dropped, as the host dropped them.
    fn resolve_deferred(
        &mut self,
        k: &Key,
        src: SocketAddr,
        seq: u32,
        end: u32,
        out: &mut dyn FnMut(Record),
    ) {
        let Some(c) = self.flows.get_mut(k) else {
            return;
        };
        let from_client = src == c.session.client();
        let peer = if from_client { &mut c.down } else { &mut c.up };
        if peer.deferred.is_empty() {
            return;
        }
        let held = std::mem::take(&mut peer.deferred);
        self.deferred = self.deferred.saturating_sub(held.len());
        let held_side = !from_client;
        for d in held {
            if !after(d.ack, seq) {
                // The other end's packet starts at or past the ACK: it had sent
                // that data. Judged as read, and said so: a forger on both sides
                // could have made this packet too.
                let from = d.decoded.src;
                self.conn_anomaly(
                    k,
                    rules::CONFIRMED_LATE,
                    || format!("a segment from {from} acknowledged data wardgate never saw; the other end's next packet showed it had been sent (lost to the capture), so the segment was judged as read: check the message on the receiving system if the capture lost nothing then (further ones on this connection are only counted)"),
                    d.ts,
                    out,
                );
                self.counts.confirmed_late += 1;
                self.replay(d, out);
            } else if after(d.ack, end) {
                // It ends before the ACK: it had not sent that data (Linux
                // drops an ACK of unsent data).
                self.counts.host_drops += 1;
                let from = d.decoded.src;
                self.conn_anomaly(
                    k,
                    rules::HOST_WOULD_DROP,
                    || format!("an ACK of data never sent (the other end's next packet ends before it): a packet from {from} the receiving host drops; wardgate dropped it too (further ones on this connection are only counted)"),
                    d.ts,
                    out,
                );
            } else {
                // Its packet covers the ACK (a retransmission or data reordered
                // at the tap): it does not say which.
                self.unconfirmed(k, held_side, d, out);
            }
        }
    }

    /// Analyses a held segment the other end confirmed, as it would have been
    /// when it arrived.
    fn replay(&mut self, d: Deferred, out: &mut dyn FnMut(Record)) {
        let Ok(t) = decode::tcp_segment(&d.segment) else {
            return;
        };
        let decoded = Decoded {
            transport: Transport::Tcp(t),
            ..d.decoded
        };
        self.replaying = true;
        self.tcp(&decoded, &t, d.ts, out);
        self.replaying = false;
    }

    /// A held segment that no packet of the other end confirmed or refuted
    /// (too many held, or the connection ended first).
    fn unconfirmed(
        &mut self,
        k: &Key,
        from_client: bool,
        d: Deferred,
        out: &mut dyn FnMut(Record),
    ) {
        // Rare: the connection is taken out for the report and put back.
        let Some(c) = self.flows.remove(k) else {
            return;
        };
        self.report_unconfirmed(&c.session, from_client, &d, out);
        self.flows.insert(*k, c);
    }

    fn report_unconfirmed(
        &mut self,
        session: &Session,
        from_client: bool,
        d: &Deferred,
        out: &mut dyn FnMut(Record),
    ) {
        self.counts.unconfirmed += 1;
        let payload = decode::tcp_segment(&d.segment).map_or(0, |t| t.payload.len());
        if payload == 0 {
            return;
        }
        // Reported once a message position: a flood of them is counted.
        if self.counts.unconfirmed > 1000 && !self.counts.unconfirmed.is_power_of_two() {
            return;
        }
        let clock = self.clock.at(d.ts);
        let text = format!(
            "{payload} byte(s) from {} acknowledged data wardgate never saw the other end send, and no later packet said whether it had: the host read them if the capture lost that data, and dropped them if they were a decoy; not judged",
            d.decoded.src
        );
        self.observer.ambiguity(
            session,
            from_client,
            rules::UNCONFIRMED_SEGMENT,
            &text,
            &clock,
            out,
        );
    }

    /// The receiver acknowledged the side's bytes up to `ack` that the capture
    /// never showed: a hole (lost at the tap or by the capture ring), reported
    /// and resynchronised on now, with what was held behind it delivered.
    fn fill_acked_hole(
        &mut self,
        k: &Key,
        from_client: bool,
        ack: u32,
        ts: u64,
        out: &mut dyn FnMut(Record),
    ) {
        let Some(conn) = self.flows.get_mut(k) else {
            return;
        };
        let Conn {
            session, up, down, ..
        } = conn;
        let side = if from_client { up } else { down };
        let clock = self.clock.at(ts);
        let observer = &mut self.observer;
        let mut gap_bytes = 0;
        side.stream.acked(ack, &mut |c| match c {
            Chunk::Data(b) => observer.data(session, from_client, b, &clock, out),
            Chunk::Gap { len } => {
                gap_bytes += len;
                observer.gap(session, from_client, len, GapCause::Capture, &clock, out);
            }
        });
        self.counts.gap_bytes += gap_bytes;
    }

    /// Live capture lost packets before they reached wardgate: the kernel's or
    /// the interface's cumulative drop counters grew to `kernel` and
    /// `interface`. Counted and reported, with the clinical connections open at
    /// that moment (the ones whose messages the loss may have hit; a hole in one
    /// is reported where it falls, as WG-CAP-006).
    pub fn capture_dropped(&mut self, kernel: u64, interface: u64, out: &mut dyn FnMut(Record)) {
        let new_kernel = kernel.saturating_sub(self.counts.kernel_dropped);
        let new_interface = interface.saturating_sub(self.counts.interface_dropped);
        if new_kernel == 0 && new_interface == 0 {
            return;
        }
        self.counts.kernel_dropped = kernel;
        self.counts.interface_dropped = interface;
        let (open, inside) = self
            .flows
            .values()
            .filter(|c| c.session.clinical())
            .fold((0usize, 0usize), |(o, m), c| {
                (o + 1, m + usize::from(c.session.mid_message()))
            });
        let text = format!(
            "live capture lost {new_kernel} packets in the kernel (capture ring full) and \
             {new_interface} at the interface since the last report ({kernel} and {interface} \
             in all); {open} clinical connections were open, {inside} of them inside a message"
        );
        self.capture_alert(rules::CAPTURE_DROPS, text, out);
    }

    /// A packet the host would drop: counted, reported once per connection and
    /// reason (or, outside any connection, as a thinned-out capture alert).
    fn drop_packet(
        &mut self,
        d: &Decoded<'_>,
        rule: Rule,
        why: &str,
        ts: u64,
        out: &mut dyn FnMut(Record),
    ) {
        let conn_key = match d.transport {
            Transport::Tcp(t) => Some(key(
                &self.keyer,
                d.vlans,
                SocketAddr::new(d.src, t.src_port),
                SocketAddr::new(d.dst, t.dst_port),
            )),
            _ => None,
        };
        if let Some(k) = conn_key.filter(|k| self.flows.contains_key(k)) {
            let src = d.src;
            return self.conn_anomaly(
                &k,
                rule,
                || format!("{why}: a packet from {src} the receiving host drops; wardgate dropped it too (further ones on this connection are only counted)"),
                ts,
                out,
            );
        }
        self.capture_alert(
            rule,
            format!(
                "{why}: a packet {} -> {} the receiving host drops",
                d.src, d.dst
            ),
            out,
        );
    }

    /// Reports `rule` for connection `k` once.
    fn conn_anomaly(
        &mut self,
        k: &Key,
        rule: Rule,
        text: impl FnOnce() -> String,
        ts: u64,
        out: &mut dyn FnMut(Record),
    ) {
        let Some(c) = self.flows.get_mut(k) else {
            return;
        };
        if c.reported & bit(rule) != 0 {
            return;
        }
        c.reported |= bit(rule);
        let clock = self.clock.at(ts);
        self.observer.anomaly(&c.session, rule, text(), &clock, out);
    }

    fn tcp(&mut self, d: &Decoded<'_>, t: &decode::Tcp<'_>, ts: u64, out: &mut dyn FnMut(Record)) {
        let src = SocketAddr::new(d.src, t.src_port);
        let dst = SocketAddr::new(d.dst, t.dst_port);
        let k = key(&self.keyer, d.vlans, src, dst);
        let flags = t.flags;
        // What the host drops before looking at the connection.
        let (mut checksum, payload_sum) = d.tcp_verdict();
        if d.reassembled && matches!(checksum, Checksum::Offloaded | Checksum::Partial) {
            // Reassembled from IP fragments: no stack fragments a segment
            // whose checksum it left to the NIC (Linux completes it first,
            // `ip_do_fragment`), so the offload pattern here is a wrong
            // checksum on the wire (found by an adversarial review: a decoy
            // over the MSS, sent as two fragments, was taken as offload).
            checksum = Checksum::Bad;
        }
        if checksum == Checksum::Offloaded && !d.sent_by_capture_host {
            // Taken as offload for its size alone (a segment merged or to be
            // split by the capturing host's own stack): no larger than the MSS
            // the receiver announced, it could have crossed a wire whole (a
            // jumbo-frame link), and its checksum is judged as any other's.
            let within_mss = self.flows.get(&k).is_some_and(|c| {
                let rcv = if src == c.session.client() {
                    &c.down
                } else {
                    &c.up
                };
                rcv.shown
                    .mss
                    .is_some_and(|m| t.payload.len() <= usize::from(m))
            });
            if within_mss {
                checksum = Checksum::Partial;
            }
        }
        match checksum {
            Checksum::Good | Checksum::Partial => {}
            Checksum::Offloaded => self.counts.offloaded_checksums += 1,
            Checksum::Bad => {
                self.counts.host_drops += 1;
                return self.drop_packet(d, rules::HOST_WOULD_DROP, "bad TCP checksum", ts, out);
            }
        }
        if let Some(auth) = t.options.auth {
            // Dropped as Linux 6.7+ built with TCP-AO drops it (see
            // [`decode::AuthDrop`]): before any TCP processing, so it ends
            // nothing and updates no timestamp, window or ACK. Where another
            // kernel reads it (6.6 and older, or one without TCP-AO), its
            // bytes, and its FIN or RST, are a copy the host may have taken
            // (found by an adversarial review: a FIN with a malformed option
            // ended wardgate's stream, and the order a 6.18 host read after
            // it went unjudged).
            let doubt = match auth {
                decode::AuthDrop::Always => None,
                decode::AuthDrop::Since67 => Some(Doubt::OldKernel),
                decode::AuthDrop::TcpAoBuild => Some(Doubt::TcpAo),
            };
            if let Some(doubt) = doubt {
                self.uncertain_segment(d, t, doubt);
            }
            self.counts.host_drops += 1;
            let why = match auth {
                decode::AuthDrop::Always => {
                    "TCP-MD5 signature option on a connection with no key"
                }
                decode::AuthDrop::Since67 => {
                    "malformed TCP options (a bad option length, a TCP-MD5 option of the wrong length, or a repeated signature option) Linux 6.7 and later refuse"
                }
                decode::AuthDrop::TcpAoBuild => {
                    "TCP-AO option, or malformed TCP options, a Linux built with TCP-AO refuses"
                }
            };
            return self.drop_packet(d, rules::HOST_WOULD_DROP, why, ts, out);
        }
        // A connection followed beside a new one a SYN-ACK would start: the
        // packet goes to the one whose sequence space it is in.
        let k = if self.forks > 0 {
            self.route(k, src, t, ts, out)
        } else {
            k
        };
        // A connection waiting after an exact RST holds what comes after it.
        if self.resetting > 0 && !self.replaying && self.reset_wait(&k, src, d, t, ts, out) {
            return;
        }
        // The other end's held segments wait for this packet's word (see
        // [`Deferred`]); while none are held anywhere, this costs a compare.
        if self.deferred > 0 && !self.replaying && !flags.syn {
            let end = t
                .seq
                .wrapping_add(t.payload.len() as u32)
                .wrapping_add(u32::from(flags.fin));
            self.resolve_deferred(&k, src, t.seq, end, out);
        }
        // A SYN with RST is a RST to the host: Linux checks RST before SYN in
        // every state (`tcp_validate_incoming`, `tcp_rcv_synsent_state_process`);
        // found by an adversarial review.
        if flags.syn && !flags.ack && !flags.rst {
            if let Some(c) = self.flows.get_mut(&k) {
                let from_client = src == c.session.client();
                // Closed for both ends: a RST, or both FINs (TIME-WAIT takes
                // a new SYN). After one FIN the other end still answers a SYN
                // with a challenge ACK, and in FIN-WAIT still reads.
                let ended = c.rst || (c.up.stream.fin_seen() && c.down.stream.fin_seen());
                // With the server's side in the capture, its SYN-ACK says whether
                // a new connection began; without it, a new ISN is taken as one.
                let one_sided = c.down.snd_nxt.is_none();
                let new_isn = c.up.isn != Some(t.seq);
                if from_client && c.has_data && (ended || (one_sided && new_isn)) {
                    // The port was reused (or the end was never captured): the old
                    // connection is closed out.
                    if let Some(c) = self.flows.remove(&k) {
                        let ts_old = c.last_us;
                        self.finish(c, ts_old, None, out);
                    }
                } else {
                    c.last_us = c.last_us.max(ts);
                    if from_client && c.up.isn == Some(t.seq) && !c.has_data {
                        // The same SYN again: the first one seen may have been a
                        // decoy the host never got (TTL run out, another
                        // station's MAC, a bad checksum, options left out), so
                        // it does not alone say what the connection is. The
                        // highest TTL is the one that reached the host; a good
                        // checksum shows the sender's segments are not the
                        // offload artefact; options any copy offered are kept
                        // (the server's SYN-ACK confirms the timestamps).
                        let up = &mut c.up.shown;
                        if up.ttl.is_some_and(|first| d.ttl > first) {
                            up.ttl = Some(d.ttl);
                        }
                        if checksum == Checksum::Good {
                            up.offloaded = Some(false);
                        }
                        if let Some(w) = t.options.window_scale {
                            up.wscale = Some(up.wscale.map_or(w, |u| u.max(w)));
                        }
                        up.sack_on_syn |= t.options.sack_permitted;
                        if up.mss.is_none() {
                            up.mss = t.options.mss;
                        }
                        if let Some((tsval, _)) = t.options.timestamp {
                            up.ts_on_syn = true;
                            match up.ts_recent {
                                None => {
                                    up.ts_recent = Some(tsval);
                                    up.ts_recent_nxt = Some(tsval);
                                }
                                Some(r) if r != tsval => {
                                    // Which copy the listener kept is unknown
                                    // (an adversarial review: a retransmitted
                                    // SYN with a far-future timestamp made
                                    // wardgate drop the order the host read):
                                    // the earliest drops least, and the
                                    // SYN-ACK's echo settles it.
                                    let (low, high) = up.ts_syn_copies.unwrap_or((r, r));
                                    let low = if after(low, tsval) { tsval } else { low };
                                    let high = if after(tsval, high) { tsval } else { high };
                                    up.ts_syn_copies = Some((low, high));
                                    up.ts_recent = Some(low);
                                    up.ts_recent_nxt = Some(low);
                                }
                                Some(_) => {}
                            }
                        }
                        return;
                    }
                    if !from_client || c.up.isn == Some(t.seq) {
                        // A retransmitted SYN (or one from the wrong end): nothing new.
                        return;
                    }
                    // Another ISN: the server's SYN-ACK will say which SYN it took.
                    c.pending_syn = Some(SynSeen {
                        isn: t.seq,
                        wscale: t.options.window_scale,
                        tsval: t.options.timestamp.map(|(v, _)| v),
                        ttl: d.ttl,
                        dst_mac: d.dst_mac,
                        challenged: false,
                    });
                    if c.has_data {
                        self.counts.ignored_controls += 1;
                        return self.conn_anomaly(
                            &k,
                            rules::CONTROL_IGNORED,
                            || format!("a SYN from {src} inside a live connection: the host ignores it (RFC 5961 4.2) unless it starts a new connection, and so did wardgate"),
                            ts,
                            out,
                        );
                    }
                    return;
                }
            }
        }
        if !self.flows.contains_key(&k) {
            if flags.rst || (t.payload.is_empty() && !flags.syn) {
                // A lone RST or ACK of a connection never seen: nothing to analyse.
                return;
            }
            if flags.syn && !flags.ack && self.time_wait_rejects(&k, dst, t, ts) {
                // The server's TIME_WAIT socket answers it with an ACK in the
                // old sequence space: no new connection, and what follows in
                // its sequence space is data on the closed one (found by an
                // adversarial review: such a SYN's unsafe order was judged,
                // the host read only the first connection's).
                self.counts.host_drops += 1;
                return self.drop_packet(
                    d,
                    rules::HOST_WOULD_DROP,
                    "a SYN the server's TIME_WAIT socket refuses (it closed first, less than 60 s ago; the SYN's sequence number is not past the old connection's and no newer timestamp, or an older one: PAWS), answered with an ACK of the old connection; wardgate started no new connection either",
                    ts,
                    out,
                );
            }
            if !flags.syn && self.closed.contains_key(&self.fingerprint(&k)) {
                // The host reset or closed this connection: no application reads
                // what follows without a new handshake.
                self.counts.host_drops += 1;
                return self.drop_packet(
                    d,
                    rules::HOST_WOULD_DROP,
                    "data on a connection the receiving host already closed or reset",
                    ts,
                    out,
                );
            }
            // Evicting can, rarely, analyse held packets that open a flow
            // again: bounded retries, and never past the limit.
            for _ in 0..3 {
                if self.flows.len() < self.limits.max_flows {
                    break;
                }
                self.evict(out);
            }
            if self.flows.len() >= self.limits.max_flows {
                self.counts.evicted += 1;
                return;
            }
            let fp = self.fingerprint(&k);
            self.closed.remove(&fp);
            // A connection picked up again after the idle timeout keeps its
            // ends as they were (a new handshake starts afresh).
            let resumed = self
                .resumable
                .remove(&fp)
                .filter(|_| !flags.syn)
                .filter(|m| {
                    (m.client, m.server) == (src, dst) || (m.client, m.server) == (dst, src)
                });
            let (client, server) = if flags.syn && !flags.ack {
                (src, dst)
            } else if flags.syn {
                (dst, src)
            } else if let Some(m) = &resumed {
                (m.client, m.server)
            } else {
                self.observer.orient(src, dst)
            };
            let clock = self.clock.at(ts);
            let client_mac = if src == client { d.src_mac } else { None };
            let session = self.observer.open(
                NewConnection {
                    client,
                    server,
                    client_mac: client_mac.as_ref().map(decode::mac_text),
                    midstream: !flags.syn,
                    ts_us: ts,
                },
                &clock,
                out,
            );
            self.counts.connections += 1;
            let mut c = self.new_conn(session, ts);
            if let Some(m) = resumed {
                c.up.shown = m.up;
                c.down.shown = m.down;
            }
            self.flows.insert(k, c);
        }
        // The server took a SYN other than the one the connection started with.
        if flags.syn && flags.ack {
            let restart = self.flows.get(&k).is_some_and(|c| {
                src == c.session.server()
                    && c.pending_syn
                        .as_ref()
                        .is_some_and(|p| t.ack == p.isn.wrapping_add(1))
                    && c.up.isn != Some(t.ack.wrapping_sub(1))
            });
            if restart {
                // A connection not shown closed: the SYN-ACK alone restarts
                // nothing (see [`Fork`]).
                let live = self.flows.get(&k).is_some_and(|c| {
                    c.has_data && !(c.up.stream.fin_seen() && c.down.stream.fin_seen())
                });
                // A fork the server proved (ACKs of new-space data only),
                // its wait not yet run out, is the host's connection: it takes
                // the ports first, with the SYN held, and the SYN-ACK is then
                // judged against it (forking it in turn).
                let proven = live
                    && self
                        .flows
                        .get(&k)
                        .and_then(|c| c.fork.as_deref())
                        .is_some_and(|f| {
                            !f.decided
                                && f.new_acked
                                && !f.old_alive
                                && self.flows.contains_key(&f.key)
                        });
                if proven {
                    let syn = self.flows.get_mut(&k).and_then(|c| c.pending_syn.take());
                    self.resolve_fork(&k, out);
                    if let Some(n) = self.flows.get_mut(&k) {
                        n.pending_syn = n.pending_syn.or(syn);
                    }
                    return self.tcp(d, t, ts, out);
                }
                if live {
                    // A fork already open (a third sequence space on the
                    // ports) is replaced: it was never proved, or it would
                    // have taken the ports (found by an adversarial review,
                    // round 12: it was kept, and the real reconnect that
                    // followed it was dropped unjudged).
                    if self.fork(k, src, dst, ts, out) {
                        return self.tcp(d, t, ts, out);
                    }
                    // No room to follow it (or a connection followed beside
                    // another): the old connection is kept, never restarted
                    // by a SYN-ACK alone, and the doubt named.
                    self.counts.ignored_controls += 1;
                    let Some(c) = self.flows.get(&k) else { return };
                    let clock = self.clock.at(ts);
                    let text = format!("a SYN-ACK from {src} answered a SYN with another ISN inside this connection, which the capture did not show closed, and wardgate could not follow the new connection beside it (the flow table full, no room to make): it kept following this one, so what the host reads on the new connection, if it has it, was not judged");
                    self.observer
                        .anomaly(&c.session, rules::RESTART_UNCERTAIN, text, &clock, out);
                    return;
                }
                let Some(mut c) = self.flows.remove(&k) else {
                    return;
                };
                let isn = t.ack.wrapping_sub(1);
                if c.has_data {
                    // A real new connection on the same ports: the old one ends.
                    let ts_old = c.last_us;
                    let client = c.session.client();
                    let server = c.session.server();
                    self.finish(c, ts_old, None, out);
                    c = self.reopen(client, server, ts, out);
                }
                // The decoy SYN seen first does not fix where the stream starts,
                // nor anything else the client's side learned from it: that side
                // starts again from the SYN the server took.
                // Segments held on the sides about to be rebuilt go unconfirmed.
                for from_client in [true, false] {
                    let side = if from_client { &mut c.up } else { &mut c.down };
                    let held = std::mem::take(&mut side.deferred);
                    self.deferred = self.deferred.saturating_sub(held.len());
                    for d in held {
                        self.report_unconfirmed(&c.session, from_client, &d, out);
                    }
                }
                let limits = self.limits.reassembly;
                let policy = self.policy_for(c.session.server().ip());
                if let Some(syn) = c.pending_syn.take() {
                    let mut side = Side::new(limits, policy);
                    side.isn = Some(syn.isn);
                    side.shown.wscale = syn.wscale;
                    side.shown.ts_on_syn = syn.tsval.is_some();
                    side.shown.ts_recent = syn.tsval;
                    side.shown.ts_recent_nxt = syn.tsval;
                    side.shown.ttl = Some(syn.ttl);
                    side.shown.mac = syn.dst_mac;
                    side.snd_nxt = Some(syn.isn.wrapping_add(1));
                    side.stream.rebase(isn);
                    c.up = side;
                    // This SYN-ACK is another than any before: the server's side
                    // starts again from it too.
                    let policy = self.policy_for(c.session.client().ip());
                    c.down = Side::new(limits, policy);
                }
                self.flows.insert(k, c);
            }
        }
        let Some(conn) = self.flows.get_mut(&k) else {
            return;
        };
        conn.last_us = conn.last_us.max(ts);
        let from_client = src == conn.session.client();
        if !from_client && flags.ack && !flags.syn && !flags.rst {
            if let Some(p) = conn.pending_syn.as_mut() {
                // The server acknowledges in the old sequence space after a
                // SYN with another ISN: a challenge ACK or an ACK of old data.
                let new = p.isn.wrapping_add(1);
                if conn
                    .up
                    .snd_nxt
                    .is_some_and(|n| distance(t.ack, n) < distance(t.ack, new))
                {
                    p.challenged = true;
                }
            }
        }
        let (snd, rcv) = if from_client {
            (&mut conn.up, &mut conn.down)
        } else {
            (&mut conn.down, &mut conn.up)
        };
        // A TTL lower than the connection's first packet's, and low enough to
        // run out on the hops between a capture point and a host on the site
        // (at most [`DECOY_TTL`]), may expire before the host. A higher one,
        // or a route change, is only reported.
        // A frame at one of two capture points proved on this end's path.
        let other_leg = snd.legs.on_path(t, (d.ttl, d.dst_mac, d.cooked));
        if std::mem::take(&mut snd.legs.skewed) {
            self.counts.skewed_copies += 1;
        }
        let ttl_change = match snd.shown.ttl {
            _ if other_leg => None,
            None => {
                snd.shown.ttl = Some(d.ttl);
                None
            }
            Some(first) if d.ttl < first && d.ttl <= DECOY_TTL => Some((first, true)),
            Some(first) if d.ttl != first => Some((first, false)),
            _ => None,
        };
        // The station this direction's frames reach: the peer's own MAC once a
        // frame of this direction was seen going to it (a decoy sent first to
        // another station cannot set it), else the first frame's destination
        // (a generated capture's one odd address stays consistent).
        if snd.shown.mac.is_none() {
            snd.shown.mac = d.dst_mac;
        }
        // Only a peer whose frames all came from one MAC confirms it (found by
        // an adversarial review: one frame forged from the server's address
        // and another MAC before the real SYN-ACK made that MAC the server's,
        // a decoy to it was judged and the real order dropped as to another
        // station).
        if let (Some(peer), Some(dst), false) =
            (rcv.shown.src_mac, d.dst_mac, rcv.shown.src_mac_mixed)
        {
            if dst == peer && !snd.shown.mac_confirmed {
                snd.shown.mac = Some(peer);
                snd.shown.mac_confirmed = true;
            }
        }
        match (snd.shown.src_mac, d.src_mac) {
            (None, _) => snd.shown.src_mac = d.src_mac,
            (Some(a), Some(b)) if a != b => snd.shown.src_mac_mixed = true,
            _ => {}
        }
        if d.src_mac.is_some() {
            snd.shown.src_mac_last = d.src_mac;
        }
        // The peer's station changed (a router failover without a virtual
        // MAC: its frames now come from the new router's MAC): this
        // direction's frames to that MAC reach it (found by a review: every
        // frame after a failover was dropped as to another station, the
        // orders in them unjudged). A decoy to a MAC the peer's frames do not
        // come from is still another station's.
        if let (true, Some(dst)) = (rcv.shown.src_mac_mixed, d.dst_mac) {
            if rcv.shown.src_mac_last == Some(dst) && snd.shown.mac_confirmed {
                snd.shown.mac = Some(dst);
            }
        }
        let wrong_mac = matches!((d.dst_mac, snd.shown.mac), (Some(a), Some(b)) if a != b);
        // A cooked capture names no MAC; its packet type says how the
        // capturing host's NIC took the frame (found by an adversarial
        // review: frames to another station, a broadcast, a decoy FIN, were
        // judged as read). TCP takes no broadcast or multicast frame on any
        // host; a frame to another station is dropped by the capturing host,
        // which is this frame's receiver when it took another of this
        // direction's frames as its own or sent the other end's (a capture
        // beside the link, on a SPAN port, shows every frame as to another
        // station, and those are judged as read).
        // A frame to another station from an address the capture showed as
        // the capturing host's own (a capture on the sender: its own frames
        // are outgoing) was sent by another station in its name: whether the
        // receiver got it is unknown (a second review: a decoy FIN so sent
        // ended the stream).
        let mut cooked_doubt = None;
        let cooked_drop = match d.cooked {
            Some(decode::Cooked::Host) => {
                snd.shown.cooked_host = true;
                None
            }
            Some(decode::Cooked::Outgoing) => {
                snd.shown.cooked_out = true;
                None
            }
            Some(decode::Cooked::Broadcast | decode::Cooked::Multicast) => {
                Some("frame to the link's broadcast or a multicast address (cooked capture's packet type): TCP takes no such frame")
            }
            Some(decode::Cooked::OtherHost)
                if snd.shown.cooked_host
                    || rcv.shown.cooked_out
                    || self.cooked_local.contains(&d.dst) =>
            {
                Some("frame to another station's MAC address (cooked capture's packet type, on a capture taken on the receiving host)")
            }
            Some(decode::Cooked::OtherHost)
                if snd.shown.cooked_out || self.cooked_local.contains(&d.src) =>
            {
                cooked_doubt = Some(Doubt::CookedSpoof);
                None
            }
            // Where the capture was taken is not known yet (a file that
            // starts mid-connection) or it was beside the link: a FIN or RST
            // to another station may be a decoy the receiver never got, and
            // taken it ends the stream (a second review: the unsafe order
            // after such a FIN went unjudged). Its data is read.
            Some(decode::Cooked::OtherHost) if flags.fin || flags.rst => {
                cooked_doubt = Some(Doubt::CookedOtherHost);
                None
            }
            _ => None,
        };
        if let (Some(doubt), false) = (cooked_doubt, flags.syn) {
            let payload = if flags.rst { &[][..] } else { t.payload };
            let mut copy = Uncertain::new(t.seq, payload, doubt);
            if flags.fin || flags.rst {
                copy.stop = Some(t.seq.wrapping_add(payload.len() as u32));
            }
            if !payload.is_empty() || copy.stop.is_some() {
                note_uncertain(snd, copy);
            }
            // The sender used these sequence numbers: the receiver's ACK of
            // them (it got the frame) is no ACK of unsent data (a third
            // review: every bystander's capture of a connection closing
            // raised WG-CAP-019 for the ACK of its FIN).
            let end = t
                .seq
                .wrapping_add(payload.len() as u32)
                .wrapping_add(u32::from(flags.fin));
            if snd.snd_nxt.is_none_or(|n| after(end, n)) {
                snd.snd_nxt = Some(end);
            }
            self.counts.host_drops += 1;
            return;
        }
        // A partial checksum is offload when this sender's segments have it
        // from the first (a capture on its host), a decoy after good ones.
        let partial = checksum == Checksum::Partial;
        let decoy_checksum = match (snd.shown.offloaded, partial) {
            (None, p) => {
                // A segment taken as offload for its size shows the pattern
                // too: this sender's stack leaves its checksums to the NIC.
                snd.shown.offloaded = Some(p || checksum == Checksum::Offloaded);
                false
            }
            (Some(false), true) => true,
            _ => false,
        };
        if partial && !decoy_checksum {
            self.counts.offloaded_checksums += 1;
        }
        // Why the host would drop this segment, if it would.
        let mut drop: Option<(Rule, &'static str)> = None;
        let mut paws_doubt = false;
        let mut ignored: Option<&'static str> = None;
        let mut defer = false;
        // A SYN-ACK before the client's first ACK: kept (see `Conn::syn_acks`);
        // one with another ISN than the one followed is only held.
        let mut keep_syn_ack = false;
        let mut hold_syn_ack = false;
        // The client's first ACK acknowledges a held SYN-ACK: it took that one.
        let mut adopt: Option<usize> = None;
        if decoy_checksum {
            drop = Some((rules::HOST_WOULD_DROP, "bad TCP checksum"));
        } else if wrong_mac {
            drop = Some((
                rules::OTHER_STATION_MAC,
                "frame to another station's MAC address",
            ));
        } else if let Some(why) = cooked_drop {
            drop = Some((rules::OTHER_STATION_MAC, why));
        } else if let Some((_, true)) = ttl_change {
            drop = Some((
                rules::TTL_CHANGE,
                "TTL lower than the connection's: it may expire before the host",
            ));
        } else if flags.syn
            && !flags.rst
            && from_client
            && (snd.max_ack.is_some()
                || conn.has_data
                || (flags.ack && rcv.syn_ack_seen && snd.isn == Some(t.seq)))
        {
            // The client's end of an established connection sends no SYN: the
            // server's host answers it with a challenge ACK and discards it,
            // data, FIN and options too (RFC 5961 4.2; found by an adversarial
            // review: a SYN|ACK|FIN ended the stream, and its timestamps
            // turned on PAWS the handshake never negotiated).
            // Before its first ACK, a SYN|ACK at the client's ISN is outside
            // the listener's window (`tcp_check_req`: an ACK, dropped); its
            // timestamps turned on PAWS the handshake never negotiated (found
            // by a second review).
            ignored = Some("a SYN from the client inside an established connection, or at its ISN after the server's SYN-ACK (RFC 5961 4.2: answered with an ACK, the segment discarded)");
        } else if flags.syn
            && !flags.rst
            && flags.ack
            && !from_client
            && rcv.max_ack.is_none()
            && snd.syn_ack_seen
            && snd.isn.is_some_and(|i| i != t.seq)
        {
            // Another SYN-ACK with another ISN before the client's first ACK:
            // that ACK will say which one the client took.
            hold_syn_ack = true;
        } else if flags.syn && !flags.rst {
            // SYN or SYN-ACK: learn the ISN, scale and timestamps; data on it is
            // not read (no TCP Fast Open).
            keep_syn_ack = flags.ack && !from_client && rcv.max_ack.is_none();
            snd.isn.get_or_insert(t.seq);
            snd.syn_ack_seen |= flags.ack;
            if snd.shown.wscale.is_none() {
                snd.shown.wscale = t.options.window_scale;
            }
            snd.shown.ts_on_syn |= t.options.timestamp.is_some();
            snd.shown.sack_on_syn |= t.options.sack_permitted;
            if snd.shown.mss.is_none() {
                snd.shown.mss = t.options.mss;
            }
            if flags.ack && rcv.isn.is_some_and(|i| t.ack == i.wrapping_add(1)) {
                // A SYN-ACK carries timestamps only when the SYN it answers
                // did (RFC 7323 3.2): whichever copy of the SYN reached it.
                // Not one after the client's first ACK: the client is
                // established and discards it (a second review found one
                // forged mid-stream turning on PAWS).
                if let (Some((_, echo)), None) = (t.options.timestamp, rcv.max_ack) {
                    rcv.shown.ts_on_syn = true;
                    // The echo is the listener's timestamp for the client:
                    // that of the SYN copy it kept. SYN-ACKs that echo
                    // different copies leave the earliest.
                    if let Some((low, high)) = rcv.shown.ts_syn_copies {
                        if echo == low || echo == high {
                            match rcv.shown.ts_syn_echoed {
                                None => {
                                    rcv.shown.ts_syn_echoed = Some(echo);
                                    rcv.shown.ts_recent = Some(echo);
                                    rcv.shown.ts_recent_nxt = Some(echo);
                                }
                                Some(first) if first != echo => {
                                    rcv.shown.ts_recent = Some(low);
                                    rcv.shown.ts_recent_nxt = Some(low);
                                }
                                Some(_) => {}
                            }
                        }
                    }
                }
                // Its window is never scaled, and is the receive window until
                // the listener's next ACK (Linux offers at most 64 KiB on it):
                // data past it is dropped (tcp_sequence).
                let edge = t.ack.wrapping_add(u32::from(t.window));
                if snd.edge.is_none_or(|e| after(edge, e)) {
                    snd.edge = Some(edge);
                }
            }
            if !t.payload.is_empty() {
                drop = Some((rules::HOST_WOULD_DROP, "data on a SYN (no TCP Fast Open)"));
            }
        } else if flags.rst {
            // The receiver's rcv_nxt counts the FIN once it reached it.
            let fin = u32::from(snd.stream.finished());
            let next = snd.stream.next_seq().map(|n| n.wrapping_add(fin));
            // With SACK, Linux also takes a RST at the end of the highest
            // block it reports (tcp_validate_incoming); without it, only at
            // rcv_nxt.
            let sack = snd.shown.sack_on_syn && rcv.shown.sack_on_syn;
            let exact = match next {
                Some(n) => n == t.seq || (sack && snd.stream.highest_seq() == Some(t.seq)),
                // Nothing sent yet: a reset of a connection attempt acknowledges
                // the SYN (SYN-SENT), else it must sit at what the receiver
                // acknowledged (its rcv_nxt).
                None => {
                    (flags.ack && rcv.isn.is_some_and(|i| t.ack == i.wrapping_add(1)))
                        || rcv.max_ack == Some(t.seq)
                }
            } || rcv.max_ack == Some(t.seq)
                // Right after frames the capture cut short, from where reading
                // stopped: the host read them whole, and its rcv_nxt is here.
                || snd.forgotten.is_some_and(|f| {
                    f.cut && f.end == t.seq && next.is_none_or(|n| !after(f.start, n))
                })
                // The server's reset of a connection attempt: it acknowledges
                // that SYN. (One from the client's end acknowledges nothing
                // of its own SYN: the host ignores it.)
                || (flags.ack
                    && !from_client
                    && conn
                        .pending_syn
                        .as_ref()
                        .is_some_and(|p| t.ack == p.isn.wrapping_add(1)));
            if !exact {
                ignored =
                    Some("a RST whose sequence number is not the next expected (RFC 5961 3.2)");
            }
        } else if !flags.ack {
            drop = Some((rules::HOST_WOULD_DROP, "a segment without the ACK flag"));
        } else if snd.max_ack.is_none()
            && rcv.syn_ack_seen
            && rcv.isn.is_some_and(|i| t.ack != i.wrapping_add(1))
        {
            adopt = conn
                .syn_acks
                .iter()
                .position(|s| s.seq() == Some(t.ack.wrapping_sub(1)));
            if adopt.is_none() {
                // The listener takes only the ACK of its SYN-ACK (tcp_check_req).
                drop = Some((
                    rules::HOST_WOULD_DROP,
                    "a first ACK that does not acknowledge the SYN-ACK",
                ));
            }
        } else if !self.replaying && rcv.snd_nxt.is_some_and(|n| after(t.ack, n)) {
            // An ACK of data never sent, as far as the capture shows. Past the
            // window this end itself advertised, the other end cannot have
            // sent it; short of that the capture may have lost it: held until
            // the other end says (a replayed one was confirmed).
            if snd.edge.is_some_and(|e| after(t.ack, e)) {
                drop = Some((rules::HOST_WOULD_DROP, "an ACK of data never sent"));
            } else {
                defer = true;
            }
        } else if snd.max_ack.is_some_and(|una| {
            // Linux (tcp_ack): older than snd_una less the smaller of the largest
            // window and the bytes the receiver has had acknowledged.
            let acked = rcv.isn.map_or(snd.max_window, |isn| {
                una.wrapping_sub(isn.wrapping_add(1)).min(snd.max_window)
            });
            after(una.wrapping_sub(acked), t.ack)
        }) {
            drop = Some((
                rules::HOST_WOULD_DROP,
                "an ACK older than the window (RFC 5961 5.2)",
            ));
        } else if let (true, Some((tsval, _))) = (
            snd.shown.ts_on_syn && rcv.shown.ts_on_syn,
            t.options.timestamp,
        ) {
            // Linux (tcp_paws_check): one tick of slack, and a zero ts_recent
            // rejects nothing.
            let older = |recent: Option<u32>| {
                recent.is_some_and(|r| r != 0 && (r.wrapping_sub(tsval) as i32) > 1)
            };
            match (older(snd.shown.ts_recent), older(snd.shown.ts_recent_nxt)) {
                (true, true) => {
                    drop = Some((
                        rules::HOST_WOULD_DROP,
                        "a timestamp older than the last accepted (PAWS)",
                    ));
                }
                // Older than what the host stored if its rcv_wup was ahead
                // of the ACKs the capture shows, or only if it was not (found
                // by two adversarial reviews): data is read, and a copy with
                // other bytes is named; a FIN or RST is a copy the host may
                // have taken.
                (true, false) | (false, true) if flags.fin || flags.rst => {
                    drop = Some((
                        rules::HOST_WOULD_DROP,
                        "a FIN or RST with a timestamp older than one the host may have stored (PAWS)",
                    ));
                    paws_doubt = true;
                }
                _ => {}
            }
        }
        if (keep_syn_ack || hold_syn_ack)
            && drop.is_none()
            && conn.syn_acks.len() < MAX_SYN_ACKS
            && !conn.syn_acks.iter().any(|s| s.seq() == Some(t.seq))
        {
            conn.syn_acks.push(Deferred {
                decoded: d.without_transport(),
                segment: t.segment.to_vec(),
                ack: t.ack,
                ts,
            });
        }
        if hold_syn_ack {
            return;
        }
        if let Some(i) = adopt {
            // The client took a SYN-ACK held until now: the server's side
            // starts again from it, and this ACK is then judged against it.
            // (The one followed until now stays kept: a later first ACK may
            // yet take it, if this one proves a decoy the host dropped.)
            let chosen = conn.syn_acks[i].clone();
            let Some(mut c) = self.flows.remove(&k) else {
                return;
            };
            let held = std::mem::take(&mut c.down.deferred);
            self.deferred = self.deferred.saturating_sub(held.len());
            for h in held {
                self.report_unconfirmed(&c.session, false, &h, out);
            }
            let limits = self.limits.reassembly;
            c.down = Side::new(limits, self.policy_for(c.session.client().ip()));
            self.flows.insert(k, c);
            self.replay(chosen, out);
            if self.flows.contains_key(&k) {
                self.tcp(d, t, ts, out);
            }
            return;
        }
        if from_client
            && flags.ack
            && snd.max_ack.is_none()
            && !conn.syn_acks.is_empty()
            && drop.is_none()
            && ignored.is_none()
            && !defer
        {
            // The handshake is done: the SYN-ACKs it did not take are let go.
            let taken = rcv.isn;
            let others: Vec<u32> = conn
                .syn_acks
                .drain(..)
                .filter_map(|s| s.seq())
                .filter(|&seq| Some(seq) != taken)
                .collect();
            if let (Some(&other), Some(taken)) = (others.first(), taken) {
                self.counts.ignored_controls += others.len() as u64;
                let rule = rules::CONTROL_IGNORED;
                if conn.reported & bit(rule) == 0 {
                    conn.reported |= bit(rule);
                    let clock = self.clock.at(ts);
                    let text = format!("a SYN-ACK from {dst} with ISN {other} the client did not take: its first ACK acknowledged the one with ISN {taken}, which wardgate followed");
                    self.observer
                        .anomaly(&conn.session, rule, text, &clock, out);
                }
            }
        }
        let mut edge_copy = None;
        if checksum == Checksum::Offloaded
            && !d.sent_by_capture_host
            && snd.shown.offloaded == Some(false)
            && !t.payload.is_empty()
        {
            // Larger than a wire's frame, with the offload pattern, from a
            // sender whose segments showed good checksums: on a capture taken
            // on the receiving host it is that host's own merging (GRO writes
            // the pattern: `tcp4_gro_complete`), read as is; on a wire (a
            // jumbo-frame link to the capture point) it is a bad checksum the
            // host drops. Taken, and other bytes for the same stretch are an
            // ambiguity (found by two adversarial reviews: as a decoy it hid
            // the real order; refused, every order of a GRO capture was lost).
            edge_copy = Some(Uncertain::new(t.seq, t.payload, Doubt::OffloadPattern));
        }
        if drop.is_none() && ignored.is_none() && (!t.payload.is_empty() || flags.fin) {
            if let Some(edge) = rcv.edge {
                // Data at or past the right edge is dropped; a bare FIN at it is
                // taken (tcp_sequence, tcp_data_queue).
                let beyond = if t.payload.is_empty() {
                    after(t.seq, edge)
                } else {
                    !after(edge, t.seq)
                };
                if beyond {
                    drop = Some((rules::HOST_WOULD_DROP, "data beyond the receive window"));
                }
                // The edge is the last the capture showed: the host may already
                // have opened a wider window (its ACK not yet on the wire), and
                // Linux 6.17+ drops a segment ending past the edge while unread
                // data waits (which a capture cannot see). Either way the host
                // may have read this copy or not: other bytes for the same
                // stretch are an ambiguity (found by an adversarial review).
                let ends_past = !t.payload.is_empty()
                    && after(t.seq.wrapping_add(t.payload.len() as u32), edge);
                if !t.payload.is_empty() && (beyond || ends_past) {
                    // Noted once this segment is through (a straddling one is
                    // judged, and must not be compared with itself).
                    edge_copy = Some(Uncertain::new(t.seq, t.payload, Doubt::WindowEdge));
                }
            }
        }
        // A segment with a good checksum larger than the receiver's MSS (or,
        // with none announced, than a 1500-byte link carries): no stack sends
        // one, and a link on the way whose MTU is what the MSS says drops it;
        // a path that carries larger frames (an MSS clamped by a middlebox)
        // delivers it, and the capture cannot tell which. Not judged, kept as
        // an uncertain copy: other bytes for the same stretch are an
        // ambiguity naming it (found by an adversarial review: a 7871-byte
        // frame with a safe order, then the unsafe one in 1400-byte segments
        // at the same sequence numbers; the host, behind a 1500-byte link,
        // read the unsafe one and wardgate judged the safe one). The checksum
        // offload's artefact (decided above) and a datagram reassembled from
        // IP fragments are not this.
        let mut over_mss = None;
        if checksum == Checksum::Good
            && !d.reassembled
            && drop.is_none()
            && ignored.is_none()
            && !defer
            && !flags.syn
            && !flags.rst
            && !t.payload.is_empty()
        {
            let (limit, announced) = match rcv.shown.mss {
                Some(m) => (m, true),
                None if d.dst.is_ipv6() => (LINK_MSS_V6, false),
                None => (LINK_MSS_V4, false),
            };
            // The datagram on the link, options and extension headers included
            // (the MSS counts neither: RFC 6691; a third review sent 1460 bytes
            // with the timestamp option, a 1512-byte packet, past the check),
            // against the MTU the MSS implies, and never below Ethernet's 1500:
            // a sender that ignores a lowered MSS (`advmss`) still reaches a
            // host on a 1500-byte link, which reads it.
            let headers: u32 = if d.dst.is_ipv6() { 60 } else { 40 };
            let mtu = (u32::from(limit) + headers).max(1500);
            if d.ip_len > mtu {
                over_mss = Some(Doubt::OverMss { limit, announced });
                drop = Some((
                    rules::HOST_WOULD_DROP,
                    "a segment larger than the receiver's MSS",
                ));
            }
        }
        if defer && drop.is_none() {
            let held = Deferred {
                decoded: d.without_transport(),
                segment: t.segment.to_vec(),
                ack: t.ack,
                ts,
            };
            snd.deferred.push(held);
            self.deferred += 1;
            let overflow = (snd.deferred.len() > MAX_DEFERRED).then(|| snd.deferred.remove(0));
            // Held bytes count against the memory budget like any others.
            let now_held = conn.up.stream.buffered_bytes()
                + conn.down.stream.buffered_bytes()
                + conn.session.buffered_bytes()
                + conn.up.deferred_bytes()
                + conn.down.deferred_bytes();
            self.held = (self.held + now_held).saturating_sub(conn.held);
            conn.held = now_held;
            self.counts.peak_buffered = self.counts.peak_buffered.max(self.held as u64);
            if let Some(oldest) = overflow {
                self.deferred -= 1;
                self.unconfirmed(&k, from_client, oldest, out);
            }
            if self.held > self.limits.max_buffered {
                self.shed(out);
            }
            return;
        }
        if let Some((rule, why)) = drop {
            if other_leg && rule.id == rules::OTHER_STATION_MAC.id && snd.legs.was_read(t) {
                // The copy at the other point of a path both points of the
                // capture are proved on, of a segment read: dropped as
                // before, not named (the alert was every routed connection's).
                self.counts.forwarded_copies += 1;
                return;
            }
            if let Some(copy) = edge_copy {
                note_uncertain(snd, copy);
            }
            if paws_doubt {
                note_uncertain_segment(snd, t, Doubt::Paws);
            }
            if rule.id == rules::TTL_CHANGE.id && !t.payload.is_empty() && !flags.syn && !flags.rst
            {
                // A TTL low enough to expire on the way may also reach a host
                // one hop away (the capture cannot know the hop count): other
                // bytes for the same stretch are an ambiguity, never judged
                // silently (found by an adversarial review: the real order
                // sent with TTL 2, a decoy with the connection's TTL at the
                // same sequence numbers; the host read the order).
                note_uncertain(snd, Uncertain::new(t.seq, t.payload, Doubt::LowTtl));
            }
            if let Some(doubt) = over_mss {
                let mut copy = Uncertain::new(t.seq, t.payload, doubt);
                if flags.fin {
                    // A host that took it stopped reading at its FIN.
                    copy.stop = Some(t.seq.wrapping_add(t.payload.len() as u32));
                }
                note_uncertain(snd, copy);
                // The sender used these sequence numbers: the receiver's ACK
                // of them (the path carried the frame) is no ACK of unsent
                // data, and leaves a hole where nothing else filled them.
                let end = t
                    .seq
                    .wrapping_add(t.payload.len() as u32)
                    .wrapping_add(u32::from(flags.fin));
                if snd.snd_nxt.is_none_or(|n| after(end, n)) {
                    snd.snd_nxt = Some(end);
                }
                self.counts.host_drops += 1;
                // Reported on its own (an earlier drop for another reason
                // must not leave it unsaid); further ones are counted.
                if conn.reported & REPORTED_OVER_MSS != 0 {
                    return;
                }
                conn.reported |= REPORTED_OVER_MSS;
                let n = t.payload.len();
                let text = match doubt {
                    Doubt::OverMss {
                        limit,
                        announced: true,
                    } => format!("a segment from {src} carrying {n} bytes, larger than the receiver's MSS {limit}: a 1500-byte link drops it, a path that carries larger frames (an MSS clamped by a middlebox) delivers it; wardgate did not judge it, and other bytes for the same stretch are an ambiguity naming it (further ones on this connection are only counted)"),
                    _ => format!("a segment from {src} carrying {n} bytes, more than a 1500-byte link carries (the receiver announced no MSS): such a link drops it, a path that carries larger frames delivers it; wardgate did not judge it, and other bytes for the same stretch are an ambiguity naming it (further ones on this connection are only counted)"),
                };
                let clock = self.clock.at(ts);
                self.observer
                    .anomaly(&conn.session, rule, text, &clock, out);
                return;
            }
            self.counts.host_drops += 1;
            let ttl = d.ttl;
            let first = ttl_change.map_or(ttl, |(f, _)| f);
            let text = move || {
                if rule.id == rules::TTL_CHANGE.id {
                    format!("TTL/hop limit {ttl} from {src} where the connection began with {first}: the packet may expire before the host, and was not judged as read")
                } else {
                    format!("{why}: a packet from {src} the receiving host drops; wardgate dropped it too (further ones on this connection are only counted)")
                }
            };
            return self.conn_anomaly(&k, rule, text, ts, out);
        }
        if let Some(why) = ignored {
            self.counts.ignored_controls += 1;
            return self.conn_anomaly(
                &k,
                rules::CONTROL_IGNORED,
                || format!("{why}: from {src}; the host ignores it and wardgate kept following the connection"),
                ts,
                out,
            );
        }
        // Accepted: what the host's stack learns from it.
        snd.legs.read(t);
        // Window scaling applies when both SYNs offered it; when the handshake
        // was not seen (joined mid-stream, or after a timeout) the scale is
        // unknown and taken as the largest, so no real data is judged out of
        // window.
        let handshake = snd.isn.is_some() && rcv.isn.is_some();
        let scaled = |w: u16, s: Option<u8>, peer: Option<u8>| -> u32 {
            match (s, peer) {
                (Some(s), Some(_)) => u32::from(w) << s.min(14),
                _ if !handshake => u32::from(w) << 14,
                _ => u32::from(w),
            }
        };
        // What this end had acknowledged before this packet: bytes of the
        // peer's it covers that the capture never showed are a hole (see below).
        let acked_before = snd.max_ack;
        // A RST's ACK field says nothing the host reads: Linux resets, or
        // answers with a challenge ACK, before tcp_ack (found by an
        // adversarial review: an exact RST acknowledging 50 000 unsent bytes
        // declared them a hole in the other direction).
        if flags.ack && !flags.rst {
            if snd.max_ack.is_none_or(|a| after(t.ack, a)) {
                snd.max_ack = Some(t.ack);
            }
            if !flags.syn {
                let w = scaled(t.window, snd.shown.wscale, rcv.shown.wscale);
                snd.max_window = snd.max_window.max(w);
                let edge = t.ack.wrapping_add(w);
                if snd.edge.is_none_or(|e| after(edge, e)) {
                    snd.edge = Some(edge);
                }
            } else {
                snd.max_window = snd.max_window.max(u32::from(t.window));
            }
        }
        let len = t.payload.len() as u32;
        let end = t
            .seq
            .wrapping_add(len)
            .wrapping_add(u32::from(flags.syn) + u32::from(flags.fin));
        if snd.snd_nxt.is_none_or(|n| after(end, n)) {
            snd.snd_nxt = Some(end);
        }
        // Linux's rcv_wup: the receiving host's rcv_nxt when it last sent a
        // segment (tcp_select_window), so the highest ACK it sent; before any,
        // the next byte it expects. tcp_sequence drops as old a segment ending
        // before it, and tcp_replace_ts_recent stores a timestamp only from a
        // segment starting at or before it (found by an adversarial review:
        // read against rcv_nxt, a future timestamp on an in-order segment the
        // host had not yet acknowledged became wardgate's ts_recent, and the
        // real order after it was taken as a PAWS drop; an urgent pointer on a
        // duplicate the host still took was ignored).
        let wup = rcv.max_ack.or_else(|| snd.stream.next_seq());
        if let Some((tsval, _)) = t.options.timestamp {
            // Stored when the timestamp is not older than the stored one or
            // the stored one is zero (found by an adversarial review: a zero
            // stored value is replaced by any, and an old duplicate stores
            // nothing).
            let in_order = wup.is_none_or(|w| !after(t.seq, w) && !after(w, end));
            let newer = |r: Option<u32>| r.is_none_or(|r| r == 0 || !after(r, tsval));
            if in_order && newer(snd.shown.ts_recent) {
                snd.shown.ts_recent = Some(tsval);
            }
            let in_order_nxt = snd
                .stream
                .next_seq()
                .is_none_or(|n| !after(t.seq, n) && !after(n, end));
            if in_order_nxt && newer(snd.shown.ts_recent_nxt) {
                snd.shown.ts_recent_nxt = Some(tsval);
            }
        }
        let ttl_note = ttl_change.map(|(first, _)| (first, d.ttl));
        // Linux takes the urgent pointer (tcp_urg) only from a segment that
        // passed tcp_sequence: an old duplicate ending before rcv_wup is
        // dropped, pointer and all; one ending after it is taken, though
        // its data are a duplicate.
        let stale = wup.is_some_and(|w| after(w, end));
        let urgent = if flags.urg && !flags.syn && !stale {
            Some(snd.stream.urgent(t.seq, t.urgent))
        } else {
            None
        };
        conn.has_data |= !t.payload.is_empty() && !flags.syn;
        // Reporting needs the analyser whole: only then is the connection looked
        // up again (the common packet costs one lookup here).
        let conn = if ttl_note.is_none() && urgent.is_none_or(|u| u == Urgent::Ignored) {
            conn
        } else {
            self.report_ttl_and_urgent(&k, src, from_client, ttl_note, urgent, ts, out);
            match self.flows.get_mut(&k) {
                Some(c) => c,
                None => return,
            }
        };
        // The peer's bytes this end acknowledged in an earlier packet and the
        // capture never showed were read by this end all the same: a hole,
        // declared now rather than at the connection's end. Waiting for a
        // second packet lets a data segment mirrored just after its ACK (a SPAN
        // port interleaving two directions) arrive first.
        let peer = if from_client { &conn.down } else { &conn.up };
        let conn = match acked_before.filter(|&a| peer.stream.behind_ack(a)) {
            None => conn,
            Some(a) => {
                self.fill_acked_hole(&k, !from_client, a, ts, out);
                match self.flows.get_mut(&k) {
                    Some(c) => c,
                    None => return,
                }
            }
        };
        if t.payload.is_empty() && !flags.fin && !flags.rst && !flags.syn {
            // A bare ACK: nothing to reassemble (and no clock to format).
            return;
        }
        let Conn {
            session, up, down, ..
        } = conn;
        let side = if from_client { up } else { down };
        let conflicts = side.stream.stats().overlap_conflicts;
        let far = side.stream.stats().out_of_window;
        let late = side.stream.stats().late_fill_bytes;
        let clock = self.clock.at(ts);
        let observer = &mut self.observer;
        let mut gap_bytes = 0;
        // Data on a SYN was refused above; only its sequence number counts.
        // Data on a SYN was refused above, and a RST's is discarded (tcp_reset).
        let payload = if flags.syn || flags.rst {
            &[][..]
        } else {
            t.payload
        };
        let end_t = t.seq.wrapping_add(payload.len() as u32);
        if let Some(f) = side.forgotten {
            if side
                .stream
                .next_seq()
                .is_some_and(|n| !after(f.end, n) && f.stop.is_none_or(|s| after(n, s)))
            {
                // The stream has read past it: bytes there now are
                // duplicates to the host, judged against what was read.
                side.forgotten = None;
            } else if !payload.is_empty() && f.touches(t.seq, end_t) {
                let text = if f.cut {
                    format!(
                        "bytes from {src} were sent where a frame the capture cut short (its snap length) had data, or after its FIN or RST: the host read that frame whole, which wardgate could not see; it may have read those bytes rather than these, which wardgate judged"
                    )
                } else {
                    format!(
                        "bytes from {src} were sent where wardgate had to let go of copies the host may or may not have taken (with a TCP-AO option or malformed TCP options, at the window edge, with a low TTL or deep VLAN tags, larger than the receiver's MSS: more than {MAX_UNCERTAIN} at once): the host may have read one of those rather than these bytes, which wardgate judged"
                    )
                };
                observer.ambiguity(
                    session,
                    from_client,
                    rules::OVERLAP_CONFLICT,
                    &text,
                    &clock,
                    out,
                );
            }
        }
        if !side.uncertain.is_empty() && !payload.is_empty() {
            // Bytes also sent in a copy the host may or may not have taken (a
            // TCP-AO option, which a host built with TCP-AO drops; data at or
            // past the window edge the capture last showed). Unless the two
            // are the same bytes, wardgate cannot know which the host read.
            // Compared byte for byte where they overlap, with every such copy:
            // the same bytes split differently (a window probe, a
            // resegmented retransmission) are no ambiguity (found by an
            // adversarial review: they raised one).
            let mut conflict = None;
            side.uncertain.retain(|u| {
                if u.stop.is_some_and(|stop| after(end_t, stop)) {
                    // Bytes past a FIN or RST another host may have taken.
                    conflict.get_or_insert((u.doubt, true));
                    return false;
                }
                let end_u = u.seq.wrapping_add(u.bytes.len() as u32);
                let start = if after(t.seq, u.seq) { t.seq } else { u.seq };
                let end = if after(end_u, end_t) { end_t } else { end_u };
                if !after(end, start) {
                    return true;
                }
                let part = |from: u32, b: &[u8]| {
                    let a = start.wrapping_sub(from) as usize;
                    let z = end.wrapping_sub(from) as usize;
                    b.get(a..z).map(<[u8]>::to_vec)
                };
                if part(u.seq, &u.bytes) != part(t.seq, payload) {
                    conflict.get_or_insert((u.doubt, false));
                    return false;
                }
                // The same bytes: forgotten once a copy covers it whole
                // (one that ended the stream, only once bytes pass its end).
                u.stop.is_some() || after(t.seq, u.seq) || after(end_u, end_t)
            });
            if let Some((doubt, stopped)) = conflict {
                {
                    let text = match (doubt, stopped) {
                        (Doubt::TcpAo, false) => format!(
                            "bytes from {src} were also sent in a segment with a TCP-AO option or malformed TCP options: a host whose kernel has TCP-AO dropped that copy and read this one, which wardgate judged; one without TCP-AO (or older than Linux 6.7) read the other"
                        ),
                        (Doubt::TcpAo, true) => format!(
                            "bytes from {src} come after a FIN or RST sent with a TCP-AO option or malformed TCP options: a host whose kernel has TCP-AO dropped it and read these bytes, which wardgate judged; one without TCP-AO (or older than Linux 6.7) took it and read none of them"
                        ),
                        (Doubt::OldKernel, false) => format!(
                            "bytes from {src} were also sent in a segment with malformed TCP options (a bad option length, a TCP-MD5 option of the wrong length or a repeated signature option): Linux 6.7 and later dropped that copy and read this one, which wardgate judged; Linux 6.6 and older read the other"
                        ),
                        (Doubt::OldKernel, true) => format!(
                            "bytes from {src} come after a FIN or RST sent with malformed TCP options (a bad option length, a TCP-MD5 option of the wrong length or a repeated signature option): Linux 6.7 and later dropped it and read these bytes, which wardgate judged; Linux 6.6 and older took it and read none of them"
                        ),
                        (Doubt::Paws, _) => format!(
                            "bytes from {src} come after, or were also sent in, a FIN or RST whose timestamp is older than one the host may have stored (whether it did depends on when it last sent an ACK, which the capture's order cannot show): a host that had stored it dropped the FIN or RST and read these bytes, which wardgate judged; one that had not took it"
                        ),
                        (Doubt::FragmentTimer, false) => format!(
                            "bytes from {src} were also sent in an IP datagram whose last fragment came after the reassembly timeout, within the slack of the host's timer: a host whose timer had fired read this copy, which wardgate judged; one whose timer had not yet fired read the other"
                        ),
                        (Doubt::FragmentTimer, true) => format!(
                            "bytes from {src} come after a FIN or RST sent in an IP datagram whose last fragment came after the reassembly timeout, within the slack of the host's timer: a host whose timer had fired never reassembled it and read these bytes, which wardgate judged; one whose timer had not yet fired took it and read none of them"
                        ),
                        (Doubt::MobileIpv6, false) => format!(
                            "bytes from {src} were also sent in a packet with an IPv6 type 2 routing header and no segments left: a host whose kernel has Mobile IPv6 (most distributions) dropped that copy and read this one, which wardgate judged; one without read the other"
                        ),
                        (Doubt::MobileIpv6, true) => format!(
                            "bytes from {src} come after a FIN or RST sent with an IPv6 type 2 routing header and no segments left: a host whose kernel has Mobile IPv6 (most distributions) dropped it and read these bytes, which wardgate judged; one without took it and read none of them"
                        ),
                        (Doubt::WindowEdge, _) => format!(
                            "bytes from {src} were also sent in a copy at or past the edge of the receive window the capture last showed: the host may have taken that copy (its own window may already have moved) or dropped it; wardgate judged the copy it could place, the host may have read the other"
                        ),
                        (Doubt::DeepVlan, _) => format!(
                            "bytes from {src} were also sent in a frame with more VLAN tags than wardgate keys a connection by: a host with VLAN interfaces stacked that deep read that copy, which wardgate did not judge; one without read this one, which it judged"
                        ),
                        (Doubt::OffloadPattern, _) => format!(
                            "bytes from {src} were also sent in a segment larger than an Ethernet frame whose checksum held the offload pattern: on a capture taken on the receiving host that is its own merging and the host read it, which wardgate judged; on a wire it is a bad checksum, and the host read this copy"
                        ),
                        (Doubt::OverMss { limit, announced: true }, _) => format!(
                            "bytes from {src} were also sent in a segment larger than the receiver's MSS {limit}: a 1500-byte link drops it, a path that carries larger frames (an MSS clamped by a middlebox) delivers it; the host may have read that copy, which wardgate did not judge, rather than this one, which it judged"
                        ),
                        (Doubt::OverMss { limit, announced: false }, _) => format!(
                            "bytes from {src} were also sent in a segment carrying more than {limit} bytes (the receiver announced no MSS): a 1500-byte link drops it, a path that carries larger frames delivers it; the host may have read that copy, which wardgate did not judge, rather than this one, which it judged"
                        ),
                        (Doubt::FragmentDistance, false) => format!(
                            "bytes from {src} were also sent in an IP datagram whose fragments had more than the reassembly distance of other fragments from the same source to other addresses between them: a host owning those addresses too restarted its reassembly and read this copy, which wardgate judged; one that does not read the other, which wardgate did not judge"
                        ),
                        (Doubt::FragmentDistance, true) => format!(
                            "bytes from {src} come after a FIN or RST sent in an IP datagram whose fragments had more than the reassembly distance of other fragments from the same source to other addresses between them: a host owning those addresses too never reassembled it and read these bytes, which wardgate judged; one that does not took it and read none of them"
                        ),
                        (Doubt::CookedSpoof, _) => format!(
                            "bytes from {src} were also sent, or a FIN or RST before them, by another station in the name of the capturing host (a cooked capture on the sender: not shown as sent by it): the receiver got that copy if it was framed to the next hop, which the capture cannot show; wardgate judged this one"
                        ),
                        (Doubt::CookedOtherHost, _) => format!(
                            "bytes from {src} come after, or were also sent in, a FIN or RST that a cooked capture showed as to another station, where the capture is not known to be on either end: the receiver got it if it was framed to it, which the capture cannot show, and read none of these bytes then; wardgate judged them"
                        ),
                        (Doubt::LowTtl, _) => format!(
                            "bytes from {src} were also sent in a copy with a TTL/hop limit low enough to expire before the host, or not (the capture cannot know the hops to it): the host may have read that copy, which wardgate did not judge, rather than this one, which it judged"
                        ),
                    };
                    observer.ambiguity(
                        session,
                        from_client,
                        rules::OVERLAP_CONFLICT,
                        &text,
                        &clock,
                        out,
                    );
                }
            }
        }
        if let Some(copy) = edge_copy {
            note_uncertain(side, copy);
        }
        side.stream.segment_fp(
            t.seq,
            flags.syn,
            flags.fin,
            payload,
            Some(payload_sum),
            &mut |c| match c {
                Chunk::Data(b) => observer.data(session, from_client, b, &clock, out),
                Chunk::Gap { len } => {
                    gap_bytes += len;
                    observer.gap(session, from_client, len, GapCause::Limit, &clock, out);
                }
            },
        );
        self.counts.gap_bytes += gap_bytes;
        let fin_now = flags.fin && side.stream.fin_seen();
        if side.stream.stats().overlap_conflicts > conflicts {
            if let Some(c) = side.stream.stats().last_conflict {
                let text = if c.fin {
                    format!(
                        "a FIN from {src} at stream offset {} may or may not end the stream for the receiver (Linux joins it to whichever queued segment its tree meets first, or more FINs were queued than wardgate holds): wardgate judged the bytes after it",
                        c.at
                    )
                } else {
                    format!(
                        "overlapping TCP data from {src} differ at stream offset {} ({} byte(s)): wardgate judged the {} copy, the one a {} receiver's queue keeps by its model (Linux's choice can also depend on the order inside its queue; another stack may keep the other)",
                        c.at,
                        c.len,
                        if c.kept_new { "later" } else { "earlier" },
                        side.stream.policy().as_str()
                    )
                };
                observer.ambiguity(
                    session,
                    from_client,
                    rules::OVERLAP_CONFLICT,
                    &text,
                    &clock,
                    out,
                );
            }
        }
        let late = side.stream.stats().late_fill_bytes - late;
        if late > 0 {
            self.counts.late_fill_bytes += late;
            if conn.reported & bit(rules::HOLE_FILLED_LATE) == 0 {
                conn.reported |= bit(rules::HOLE_FILLED_LATE);
                let text = format!(
                    "{late} byte(s) from {src} arrived for a stretch declared lost because the receiver had acknowledged it: the host read them, wardgate did not judge them (further ones on this connection are only counted)"
                );
                observer.ambiguity(
                    &conn.session,
                    from_client,
                    rules::HOLE_FILLED_LATE,
                    &text,
                    &clock,
                    out,
                );
            }
        }
        let far_data = side.stream.stats().out_of_window > far && !payload.is_empty();
        if fin_now && conn.first_fin.is_none() {
            conn.first_fin = Some(from_client);
        }
        if flags.rst {
            if conn.has_data || conn.up.max_ack.is_some() {
                // Ends the connection unless an end shows it did not take it.
                conn.reset = Some(Box::new(ResetSeen {
                    key: k,
                    at_us: ts,
                    since_us: None,
                    up_at: conn.up.snd_nxt,
                    down_at: conn.down.snd_nxt,
                    up_sent: None,
                    down_sent: None,
                    up_data: false,
                    down_data: false,
                    up_first: None,
                    down_first: None,
                    answered: false,
                    rst_answer: false,
                    syn: None,
                    data_before_syn: false,
                    data_packets: 0,
                    data_bytes: 0,
                    cost: 0,
                    held: Vec::new(),
                }));
                self.resetting += 1;
            } else {
                conn.rst = true;
            }
        }
        if far_data && conn.reported & bit(rules::HOST_WOULD_DROP) == 0 {
            conn.reported |= bit(rules::HOST_WOULD_DROP);
            self.observer.anomaly(
                &conn.session,
                rules::HOST_WOULD_DROP,
                format!("data from {src} more than 2^30 bytes from where the connection stands (a forged segment, or a SYN that restarted the connection only in wardgate's view): not judged"),
                &clock,
                out,
            );
        }
        let now_held = conn.up.stream.buffered_bytes()
            + conn.down.stream.buffered_bytes()
            + conn.session.buffered_bytes()
            + conn.up.deferred_bytes()
            + conn.down.deferred_bytes();
        self.held = (self.held + now_held).saturating_sub(conn.held);
        conn.held = now_held;
        self.counts.peak_buffered = self.counts.peak_buffered.max(self.held as u64);
        // Closed on RST, or once both directions are reassembled up to their FIN
        // (a FIN seen ahead of missing data waits for it, or for the timeout).
        let done = conn.rst || (conn.up.stream.finished() && conn.down.stream.finished());
        if done {
            if let Some(c) = self.flows.remove(&k) {
                if self.closed.len() < self.limits.max_flows {
                    let fp = self.fingerprint(&k);
                    let time_wait = if c.rst || c.first_fin != Some(false) {
                        None
                    } else {
                        let server = endpoint(c.session.server());
                        let ts_on = c.up.shown.ts_on_syn && c.down.shown.ts_on_syn;
                        c.up.stream.next_seq().map(|n| TimeWait {
                            server_lo: server == (k.a, (k.ports >> 16) as u16),
                            rcv_nxt: n.wrapping_add(1),
                            ts_recent: c.up.shown.ts_recent.filter(|_| ts_on),
                        })
                    };
                    self.closed.insert(fp, Closed { at: ts, time_wait });
                }
                self.finish(c, ts, None, out);
            }
        }
        if self.held > self.limits.max_buffered {
            self.shed(out);
        }
    }

    /// The TTL change and urgent pointer of one accepted segment, reported once
    /// per connection.
    #[allow(clippy::too_many_arguments)]
    fn report_ttl_and_urgent(
        &mut self,
        k: &Key,
        src: SocketAddr,
        from_client: bool,
        ttl_note: Option<(u8, u8)>,
        urgent: Option<Urgent>,
        ts: u64,
        out: &mut dyn FnMut(Record),
    ) {
        if let Some((first, now)) = ttl_note {
            self.conn_anomaly(
                k,
                rules::TTL_CHANGE,
                || {
                    format!(
                        "TTL/hop limit {now} from {src} where the connection began with {first}"
                    )
                },
                ts,
                out,
            );
        }
        let Some(u) = urgent else { return };
        let what = match u {
            Urgent::Marked => "the urgent byte was taken out of the stream (Linux without SO_OOBINLINE); an application with SO_OOBINLINE reads it inline",
            Urgent::Replaced => "a second urgent pointer replaced one whose byte had not arrived: which byte the application missed depends on when it read",
            Urgent::Behind => "it points at bytes already received: whether the application had read them decides whether one is missing",
            Urgent::Ignored => return,
        };
        let Some(c) = self.flows.get_mut(k) else {
            return;
        };
        if c.reported & bit(rules::URGENT_DATA) != 0 {
            return;
        }
        c.reported |= bit(rules::URGENT_DATA);
        let clock = self.clock.at(ts);
        let text = format!("TCP urgent data from {src}: {what}");
        self.observer.ambiguity(
            &c.session,
            from_client,
            rules::URGENT_DATA,
            &text,
            &clock,
            out,
        );
    }

    /// Over the memory budget: the connections holding most are closed out (what
    /// they hold is flushed through the parsers, gaps reported) until the total is
    /// back under 90% of the budget, in one pass; one event per pass.
    fn shed(&mut self, out: &mut dyn FnMut(Record)) {
        let target = self.limits.max_buffered / 10 * 9;
        let mut by_size: Vec<(usize, Key)> = self
            .flows
            .iter()
            .filter(|(_, c)| c.held > 0)
            .map(|(k, c)| (c.held, *k))
            .collect();
        by_size.sort_unstable_by_key(|e| std::cmp::Reverse(e.0));
        let (mut n, mut freed, mut largest) = (0u64, 0usize, None);
        for (held, k) in by_size {
            if self.held <= target {
                break;
            }
            if let Some(c) = self.flows.remove(&k) {
                largest.get_or_insert((c.session.client(), c.session.server(), held));
                n += 1;
                freed += held;
                let ts = c.last_us;
                self.finish(c, ts, Some("the analysis memory budget was reached"), out);
            }
        }
        self.counts.over_budget += n;
        if let Some((client, server, held)) = largest {
            let clock = self.clock.at(self.now_us);
            self.observer.capture_event(
                &clock,
                rules::CAPTURE_MEMORY,
                format!(
                    "analysis memory budget ({} bytes) reached: closed out {n} connection(s) holding {freed} bytes, the largest {client} <-> {server} ({held} bytes)",
                    self.limits.max_buffered
                ),
                out,
            );
        }
    }

    /// Flushes both directions and closes the session; `why` the analyser let go
    /// of it early (a clinical message in progress is then reported).
    fn finish(&mut self, mut c: Conn, ts: u64, why: Option<&str>, out: &mut dyn FnMut(Record)) {
        // Waiting after an exact RST with data held and nothing proved: the
        // data is judged as read first (failing closed), then the connection
        // ends as it was going to.
        if c.reset
            .as_ref()
            .is_some_and(|r| r.has_data() && !r.answered)
        {
            let k = c.reset.as_ref().map_or_else(|| unreachable!(), |r| r.key);
            self.flows.insert(k, c);
            self.resolve_reset(&k, ResetEnd::Uncertain, "the wait was cut short", out);
            if let Some(c) = self.flows.remove(&k) {
                return self.finish(c, ts, why, out);
            }
            return;
        }
        if let Some(f) = c.fork.take() {
            // Followed beside a new connection: settled now by what was
            // gathered (if it was not); unless the server showed the old one
            // alive and the new one not, the new one takes the ports.
            self.forks = self.forks.saturating_sub(1);
            let refuted = !f.decided && f.old_alive && !f.new_acked;
            if !f.decided && (f.old_alive || !f.new_acked) {
                self.fork_report(&c.session, &f, out);
            }
            if let Some(mut n) = self.flows.remove(&f.key) {
                if let Some(r) = n.reset.as_mut() {
                    r.key = f.home;
                }
                if refuted || self.flows.contains_key(&f.home) {
                    let ts = n.last_us;
                    self.finish(n, ts, None, out);
                } else {
                    self.flows.insert(f.home, n);
                }
            }
        }
        self.held = self.held.saturating_sub(c.held);
        // Let go early (the flow table full, the memory budget spent): what
        // was held after a RST carries no data a host reads (that was judged
        // above) and is not analysed again, which would open a connection in
        // the place this one frees (found by the fuzz smoke: the table over
        // its limit).
        let early = why.is_some();
        // Waiting after an exact RST: it ends as reset, nothing let go early.
        let reset = c.reset.take();
        let why = if reset.is_some() {
            self.resetting = self.resetting.saturating_sub(1);
            None
        } else {
            why
        };
        for from_client in [true, false] {
            let side = if from_client { &mut c.up } else { &mut c.down };
            let held = std::mem::take(&mut side.deferred);
            self.deferred = self.deferred.saturating_sub(held.len());
            for d in held {
                self.report_unconfirmed(&c.session, from_client, &d, out);
            }
        }
        let clock = self.clock.at(ts);
        let observer = &mut self.observer;
        if let Some(why) = why {
            observer.abandon(&c.session, why, &clock, out);
        }
        let mut gap_bytes = 0;
        let acks = [c.down.max_ack, c.up.max_ack];
        for ((side, from_client), ack) in [(&mut c.up, true), (&mut c.down, false)]
            .into_iter()
            .zip(acks)
        {
            let session = &mut c.session;
            // The receiver acknowledged bytes wardgate saw only in a copy the
            // host may or may not have taken (a segment larger than its MSS,
            // one with a low TTL...), and nothing came after to declare the
            // hole: it is one all the same, reported where it falls, never
            // judged as read nor let go in silence.
            if let Some(ack) = ack.filter(|&a| {
                side.stream.behind_ack(a)
                    && side.stream.next_seq().is_some_and(|n| {
                        side.uncertain.iter().any(|u| {
                            let end = u.seq.wrapping_add(u.bytes.len() as u32);
                            after(a, u.seq) && after(end, n)
                        })
                    })
            }) {
                side.stream.acked(ack, &mut |chunk| match chunk {
                    Chunk::Data(b) => observer.data(session, from_client, b, &clock, out),
                    Chunk::Gap { len } => {
                        gap_bytes += len;
                        observer.gap(session, from_client, len, GapCause::Capture, &clock, out);
                    }
                });
            }
            side.stream.flush(&mut |chunk| match chunk {
                Chunk::Data(b) => observer.data(session, from_client, b, &clock, out),
                Chunk::Gap { len } => {
                    gap_bytes += len;
                    observer.gap(session, from_client, len, GapCause::Capture, &clock, out);
                }
            });
        }
        self.counts.gap_bytes += gap_bytes;
        for s in [c.up.stream.stats(), c.down.stream.stats()] {
            self.counts.retransmitted_bytes += s.retransmitted_bytes;
            self.counts.overlap_conflicts += s.overlap_conflicts;
            self.counts.urgent_removed += s.urgent_removed;
        }
        if c.up.stream.midstream() || c.down.stream.midstream() {
            self.counts.midstream += 1;
        }
        self.observer.close(&mut c.session, ts, &clock, out);
        if let Some(r) = reset {
            // Ended as reset. Only a proof that the host took the RST (a RST
            // answering data sent after it) makes later data on the ports
            // unread; otherwise it is analysed as a connection picked up.
            if r.answered && self.closed.len() < self.limits.max_flows {
                let fp = self.fingerprint(&r.key);
                self.closed.insert(
                    fp,
                    Closed {
                        at: r.at_us,
                        time_wait: None,
                    },
                );
            }
            if !early {
                for h in r.held {
                    self.refeed(h, out);
                }
            }
        }
    }

    /// A packet held after an exact RST, analysed as it came.
    fn refeed(&mut self, d: Deferred, out: &mut dyn FnMut(Record)) {
        let Ok(t) = decode::tcp_segment(&d.segment) else {
            return;
        };
        let decoded = Decoded {
            transport: Transport::Tcp(t),
            ..d.decoded
        };
        self.tcp(&decoded, &t, d.ts, out);
    }

    /// A SYN-ACK from `src` answered the SYN with another ISN held on the live
    /// connection `k`: the new connection it would start is opened beside it
    /// (see [`Fork`]). False when the flow table has no room for it.
    fn fork(
        &mut self,
        k: Key,
        src: SocketAddr,
        dst: SocketAddr,
        ts: u64,
        out: &mut dyn FnMut(Record),
    ) -> bool {
        if k.vlans & FORK_VLANS != 0 {
            // A connection followed beside another forks no further.
            return false;
        }
        let fk = key(&self.keyer, k.vlans ^ FORK_VLANS, src, dst);
        // A fork already open is replaced (see [`Fork`]): settled by what
        // was gathered, reported, and let go.
        let old = self.flows.get_mut(&k).and_then(|c| c.fork.take());
        if let Some(f) = old {
            self.forks = self.forks.saturating_sub(1);
            if !f.decided {
                if let Some(c) = self.flows.get(&k) {
                    Self::fork_report_to(&mut self.observer, &mut self.clock, &c.session, &f, out);
                }
            }
        }
        if let Some(stale) = self.flows.remove(&fk) {
            let ts = stale.last_us;
            self.finish(stale, ts, None, out);
        }
        // Room is made as for a new flow (connections without data first),
        // never by letting go of the connection forked (found by an
        // adversarial review, round 12: an exactly full table refused the
        // fork, and the SYN-ACK restarted the connection).
        if self.flows.len() >= self.limits.max_flows {
            let Some(home) = self.flows.remove(&k) else {
                return false;
            };
            for _ in 0..3 {
                if self.flows.len() < self.limits.max_flows.saturating_sub(1) {
                    break;
                }
                self.evict(out);
            }
            if let Some(other) = self.flows.insert(k, home) {
                let ts = other.last_us;
                self.finish(other, ts, None, out);
            }
            if self.flows.len() >= self.limits.max_flows {
                return false;
            }
        }
        let Some(c) = self.flows.get_mut(&k) else {
            return false;
        };
        let Some(syn) = c.pending_syn.take() else {
            return false;
        };
        c.fork = Some(Box::new(Fork {
            key: fk,
            home: k,
            since_us: ts,
            old_alive: syn.challenged,
            new_acked: false,
            decided: false,
        }));
        self.forks += 1;
        let (client, server) = (c.session.client(), c.session.server());
        let mut n = self.reopen(client, server, ts, out);
        let up = &mut n.up;
        up.isn = Some(syn.isn);
        up.shown.wscale = syn.wscale;
        up.shown.ts_on_syn = syn.tsval.is_some();
        up.shown.ts_recent = syn.tsval;
        up.shown.ts_recent_nxt = syn.tsval;
        up.shown.ttl = Some(syn.ttl);
        up.shown.mac = syn.dst_mac;
        up.snd_nxt = Some(syn.isn.wrapping_add(1));
        up.stream.rebase(syn.isn);
        self.flows.insert(fk, n);
        true
    }

    /// The key of the connection a packet of `k` from `src` belongs to while
    /// `k` is followed beside a new connection ([`Fork`]): the one whose
    /// sequence space it is in (the old one on a tie). Gathers the server's
    /// answers, and settles the fork once its wait ran out.
    fn route(
        &mut self,
        k: Key,
        src: SocketAddr,
        t: &decode::Tcp<'_>,
        ts: u64,
        out: &mut dyn FnMut(Record),
    ) -> Key {
        let Some(f) = self.flows.get(&k).and_then(|c| c.fork.as_deref()) else {
            return k;
        };
        let fk = f.key;
        let flags = t.flags;
        if flags.syn {
            // A SYN or SYN-ACK of the new connection (its ISN) goes to it;
            // any other goes to the old one, where a SYN with yet another ISN
            // is held and its SYN-ACK forks the connection anew (found by an
            // adversarial review, round 12: routed by distance, the real
            // reconnect's SYN-ACK could reach either, and was dropped).
            let isn = self.flows.get(&fk).and_then(|n| n.up.isn);
            let from_client = self
                .flows
                .get(&k)
                .is_some_and(|c| src == c.session.client());
            let own = if flags.ack {
                !from_client && isn.is_some_and(|i| t.ack == i.wrapping_add(1))
            } else {
                from_client && isn == Some(t.seq)
            };
            return if own { fk } else { k };
        }
        let gone = !self.flows.contains_key(&fk);
        if !f.decided && (gone || ts.saturating_sub(f.since_us) > RESET_WAIT_US) {
            self.resolve_fork(&k, out);
        }
        let Some(c) = self.flows.get(&k) else {
            return k;
        };
        if c.fork.is_none() {
            return k;
        }
        let Some(n) = self.flows.get(&fk) else {
            // The new connection ended, or was let go: the ports are the old
            // one's again.
            if let Some(c) = self.flows.get_mut(&k) {
                c.fork = None;
            }
            self.forks = self.forks.saturating_sub(1);
            return k;
        };
        let far = |a: u32, b: Option<u32>| b.map_or(u32::MAX, |b| distance(a, b));
        let from_client = src == c.session.client();
        // The client's bytes are placed by its sequence number, the server's
        // answers by what they acknowledge (a forger may give the new
        // connection the server's own sequence numbers).
        let by_seq = (far(t.seq, n.up.snd_nxt), far(t.seq, c.up.snd_nxt));
        let by_ack = (far(t.ack, n.up.snd_nxt), far(t.ack, c.up.snd_nxt));
        let by_srv_seq = (far(t.seq, n.down.snd_nxt), far(t.seq, c.down.snd_nxt));
        let by_cli_ack = (far(t.ack, n.down.snd_nxt), far(t.ack, c.down.snd_nxt));
        let order = if from_client {
            [by_seq, if flags.ack { by_cli_ack } else { by_seq }]
        } else if flags.ack {
            [by_ack, by_srv_seq]
        } else {
            [by_srv_seq, by_srv_seq]
        };
        let new = order
            .iter()
            .find(|(a, b)| a != b)
            .is_some_and(|(a, b)| a < b);
        let answer = !from_client && flags.ack && !flags.syn && !flags.rst;
        let old_acked = answer && !new && c.up.snd_nxt.is_some_and(|x| !after(t.ack, x));
        let new_acked = answer
            && new
            && n.up.isn.is_some_and(|i| after(t.ack, i.wrapping_add(1)))
            && n.up.snd_nxt.is_some_and(|x| !after(t.ack, x));
        if let Some(f) = self.flows.get_mut(&k).and_then(|c| c.fork.as_mut()) {
            f.old_alive |= old_acked;
            f.new_acked |= new_acked;
        }
        if new {
            fk
        } else {
            k
        }
    }

    /// Settles the fork of connection `k` ([`Fork`]) by the answers
    /// gathered.
    fn resolve_fork(&mut self, k: &Key, out: &mut dyn FnMut(Record)) {
        let Some(c) = self.flows.get_mut(k) else {
            return;
        };
        let Some(f) = c.fork.as_mut() else {
            return;
        };
        if f.decided {
            return;
        }
        let fk = f.key;
        match (f.old_alive, f.new_acked) {
            (true, false) => {
                // Not the host's SYN-ACK: the new connection is let go.
                let f = c.fork.take();
                self.forks = self.forks.saturating_sub(1);
                if let Some(f) = f {
                    let Some(c) = self.flows.get(k) else { return };
                    let session = &c.session;
                    Self::fork_report_to(&mut self.observer, &mut self.clock, session, &f, out);
                }
                if let Some(n) = self.flows.remove(&fk) {
                    let ts = n.last_us;
                    self.finish(n, ts, None, out);
                }
            }
            (false, true) => {
                // The host has the new connection: the old one ends, and the
                // new one takes the ports (in `finish`).
                if let Some(old) = self.flows.remove(k) {
                    let ts = old.last_us;
                    self.finish(old, ts, None, out);
                }
            }
            _ => {
                f.decided = true;
                let Some(f) = c.fork.as_deref() else { return };
                Self::fork_report_to(&mut self.observer, &mut self.clock, &c.session, f, out);
            }
        }
    }

    /// Reports how the fork `f` of the connection of `session` was settled:
    /// the SYN-ACK not the host's (`WG-CAP-010`), or not known (`WG-CAP-025`).
    fn fork_report(&mut self, session: &Session, f: &Fork, out: &mut dyn FnMut(Record)) {
        Self::fork_report_to(&mut self.observer, &mut self.clock, session, f, out);
    }

    fn fork_report_to(
        observer: &mut Observer,
        clock: &mut ReplayClock,
        session: &Session,
        f: &Fork,
        out: &mut dyn FnMut(Record),
    ) {
        let clock = clock.at(f.since_us);
        let server = session.server();
        if f.old_alive && !f.new_acked {
            observer.anomaly(
                session,
                rules::CONTROL_IGNORED,
                format!("a SYN-ACK from {server} answered a SYN with another ISN inside this live connection, and the server went on acknowledging the old connection (a challenge ACK, RFC 5961 4.2): the host never sent that SYN-ACK, and wardgate kept following the connection (what was sent in the new sequence space was judged all the same)"),
                &clock,
                out,
            );
            return;
        }
        let what = if f.old_alive {
            "the server acknowledged in both sequence spaces"
        } else {
            "no answer of the server settled it"
        };
        observer.anomaly(
            session,
            rules::RESTART_UNCERTAIN,
            format!("a SYN-ACK from {server} answered a SYN with another ISN inside this connection, which the capture did not show closed, and {what}: wardgate cannot tell which connection the host has, and analysed both, the data in either sequence space as if read"),
            &clock,
            out,
        );
    }

    /// Ends the wait after an exact RST on `k`: the connection ends as reset.
    fn end_reset(&mut self, k: &Key, out: &mut dyn FnMut(Record)) {
        if let Some(c) = self.flows.remove(k) {
            let ts = c.reset.as_ref().map_or(c.last_us, |r| r.at_us);
            self.finish(c, ts, None, out);
        }
    }

    /// Ends the wait after an exact RST on `k` as `how` (see [`ResetSeen`]).
    /// Not taken or uncertain: the RST is reported and the held packets are
    /// analysed as they came; the connection goes on. Reset: it ends so.
    fn resolve_reset(&mut self, k: &Key, how: ResetEnd, why: &str, out: &mut dyn FnMut(Record)) {
        if how == ResetEnd::Reset {
            return self.end_reset(k, out);
        }
        let Some(c) = self.flows.get_mut(k) else {
            return;
        };
        let Some(r) = c.reset.take() else {
            return;
        };
        self.resetting = self.resetting.saturating_sub(1);
        c.held = c.held.saturating_sub(r.cost);
        self.held = self.held.saturating_sub(r.cost);
        let ts = r.since_us.unwrap_or(r.at_us);
        self.counts.ignored_controls += 1;
        if how == ResetEnd::NotTaken {
            self.conn_anomaly(
                k,
                rules::RESET_NOT_TAKEN,
                || format!("a RST at an acceptable sequence number, then {why}: it had not taken the RST and read what followed, so wardgate judged it; a reset forged toward the other end, or dropped on the way"),
                ts,
                out,
            );
        } else {
            self.conn_anomaly(
                k,
                rules::RESET_UNCERTAIN,
                || format!("a RST at an acceptable sequence number, then data ({} bytes in {} packets), and {why}: wardgate cannot tell whether the host took the RST, and judged the data as if it read it", r.data_bytes, r.data_packets),
                ts,
                out,
            );
        }
        for h in r.held {
            self.refeed(h, out);
        }
    }

    /// A SYN-ACK for the SYN held after an exact RST on `k`: the host took
    /// the RST and began a new connection. The old one ends as reset (what
    /// came before the SYN is data on a closed connection) and the SYN and
    /// what followed it are analysed as the new one.
    fn reset_by_new_connection(&mut self, k: &Key, out: &mut dyn FnMut(Record)) {
        let Some(c) = self.flows.get_mut(k) else {
            return;
        };
        let Some(r) = c.reset.as_mut() else {
            return;
        };
        let Some((isn, at)) = r.syn else {
            return;
        };
        let rest = r.held.split_off(at.min(r.held.len()));
        let other_isn = c.up.isn != Some(isn);
        if !r.data_before_syn && other_isn && c.has_data {
            // Nothing held before the SYN, a SYN with another ISN: the
            // SYN-ACK decides nothing alone either (as forgeable as the RST:
            // found by an adversarial review, round 11). The wait ends with
            // no claim, the old connection goes on, and the SYN-ACK forks it:
            // the server's answers settle which connection the host has (see
            // [`Fork`]).
            if let Some(r) = c.reset.take() {
                self.resetting = self.resetting.saturating_sub(1);
                c.held = c.held.saturating_sub(r.cost);
                self.held = self.held.saturating_sub(r.cost);
                for h in r.held {
                    self.refeed(h, out);
                }
            }
        } else if r.data_before_syn {
            // Data held before the SYN: judged as read, the doubt named; the
            // SYN and what followed go on as they came.
            self.resolve_reset(
                k,
                ResetEnd::Uncertain,
                "a SYN-ACK answered a new SYN on the same ports (which whoever could forge the RST can forge too)",
                out,
            );
        } else {
            r.answered = true;
            self.end_reset(k, out);
        }
        for h in rest {
            self.refeed(h, out);
        }
    }

    /// A packet on a connection waiting after an exact RST (see
    /// [`ResetSeen`]): held (true), or it goes on (false), at once (a pure
    /// ACK while nothing is held) or once the wait ends.
    fn reset_wait(
        &mut self,
        k: &Key,
        src: SocketAddr,
        d: &Decoded<'_>,
        t: &decode::Tcp<'_>,
        ts: u64,
        out: &mut dyn FnMut(Record),
    ) -> bool {
        let Some(c) = self.flows.get_mut(k) else {
            return false;
        };
        let Some(r) = c.reset.as_mut() else {
            return false;
        };
        let flags = t.flags;
        if r.since_us
            .is_some_and(|since| ts.saturating_sub(since) > RESET_WAIT_US)
        {
            let how = if r.answered || !r.has_data() {
                ResetEnd::Reset
            } else {
                ResetEnd::Uncertain
            };
            self.resolve_reset(k, how, "no answer within the wait", out);
            return false;
        }
        let from_client = src == c.session.client();
        let (peer_at, peer_sent, peer_data, peer_first) = if from_client {
            (r.down_at, r.down_sent, r.down_data, r.down_first)
        } else {
            (r.up_at, r.up_sent, r.up_data, r.up_first)
        };
        // The server answers the SYN held with a SYN-ACK for it: a new
        // connection; the host had taken the RST.
        if flags.syn
            && flags.ack
            && !from_client
            && r.syn.is_some_and(|(isn, _)| t.ack == isn.wrapping_add(1))
        {
            self.reset_by_new_connection(k, out);
            return false;
        }
        let plain_ack = flags.ack && !flags.rst && !flags.syn;
        // It acknowledges bytes its peer sent after the RST (and no further
        // than the capture showed): its end had not taken the RST, and read
        // them.
        let top = match (peer_at, peer_sent) {
            (Some(a), Some(s)) => Some(if after(s, a) { s } else { a }),
            (a, s) => s.or(a),
        };
        let acked = plain_ack
            && peer_sent.is_some()
            && peer_first.is_some_and(|f| after(t.ack, f))
            && top.is_some_and(|s| !after(t.ack, s));
        // The server answers a SYN with another ISN with an ACK in the old
        // sequence space (a challenge ACK): its connection lives.
        let challenged = plain_ack
            && !from_client
            && r.syn.is_some()
            && t.payload.is_empty()
            && r.up_at.is_some_and(|a| {
                !after(a, t.ack) && !after(t.ack, r.up_sent.filter(|s| after(*s, a)).unwrap_or(a))
            });
        if acked || challenged {
            let ack = t.ack;
            let (how, why) = if r.rst_answer {
                (
                    ResetEnd::Uncertain,
                    format!("conflicting answers: a RST answered data sent after it, and {src} acknowledged data up to {ack}"),
                )
            } else if acked {
                (
                    ResetEnd::NotTaken,
                    format!("{src} acknowledged data sent after it (up to {ack})"),
                )
            } else {
                (
                    ResetEnd::NotTaken,
                    format!("{src} answered a SYN on the same ports with an ACK of the old connection (up to {ack})"),
                )
            };
            self.resolve_reset(k, how, &why, out);
            return false;
        }
        let pure_ack = t.payload.is_empty() && !flags.syn && !flags.fin && !flags.rst;
        if pure_ack && r.held.is_empty() {
            // Nothing held that it could overtake: analysed now.
            return false;
        }
        // The receiver of data sent after the RST answers with a RST: a
        // closed socket does, so its host had taken the RST.
        if flags.rst && peer_data {
            r.rst_answer = true;
        }
        let cost = t.segment.len() + reassembly::PIECE_COST;
        let data = !t.payload.is_empty();
        // Only a segment with the ACK flag carries data a host reads (one
        // without it is dropped whatever the RST did): others do not spend
        // the bound on what is held with data (found by an adversarial review:
        // junk without ACK ended the wait before the host's proof came).
        let readable = flags.ack && !flags.syn && !flags.rst;
        if r.held.len() >= RESET_HELD_ALL
            || r.cost + cost > RESET_HELD_MEMORY
            || (data
                && readable
                && (r.data_packets >= RESET_HELD
                    || r.data_bytes + t.payload.len() > RESET_HELD_BYTES))
        {
            let how = if r.answered || !r.has_data() {
                ResetEnd::Reset
            } else {
                ResetEnd::Uncertain
            };
            self.resolve_reset(k, how, "no answer before the bound on what is held", out);
            return false;
        }
        if readable && (data || flags.fin) {
            let end = t
                .seq
                .wrapping_add(t.payload.len() as u32)
                .wrapping_add(u32::from(flags.fin));
            let sent = if from_client {
                &mut r.up_sent
            } else {
                &mut r.down_sent
            };
            if sent.is_none_or(|s| after(end, s)) {
                *sent = Some(end);
            }
        }
        if data && readable {
            let first = if from_client {
                r.up_data = true;
                &mut r.up_first
            } else {
                r.down_data = true;
                &mut r.down_first
            };
            if first.is_none_or(|f| after(f, t.seq)) {
                *first = Some(t.seq);
            }
            r.data_packets += 1;
            r.data_bytes += t.payload.len();
        }
        // A SYN from the client (with the old ISN too: a port reused with the
        // same one): the server's answer says whether it took the RST.
        if flags.syn && !flags.ack && from_client && r.syn.is_none() {
            r.syn = Some((t.seq, r.held.len()));
            r.data_before_syn = r.has_data();
        }
        r.since_us.get_or_insert(ts);
        r.held.push(Deferred {
            decoded: d.without_transport(),
            segment: t.segment.to_vec(),
            ack: t.ack,
            ts,
        });
        r.cost += cost;
        c.held += cost;
        self.held += cost;
        self.counts.peak_buffered = self.counts.peak_buffered.max(self.held as u64);
        if self.held > self.limits.max_buffered {
            self.shed(out);
        }
        true
    }

    /// A SYN to `dst` on the ports of a connection whose server closed first
    /// less than [`TIME_WAIT_US`] ago, which its TIME_WAIT socket refuses
    /// (Linux's `tcp_timewait_state_process`; see [`TimeWait`]). A SYN
    /// rejected by PAWS restarts the TIME_WAIT timer, as Linux's does.
    fn time_wait_rejects(
        &mut self,
        k: &Key,
        dst: SocketAddr,
        t: &decode::Tcp<'_>,
        ts: u64,
    ) -> bool {
        let fp = self.fingerprint(k);
        let Some(c) = self.closed.get_mut(&fp) else {
            return false;
        };
        let Some(tw) = c.time_wait else {
            return false;
        };
        let to_lo = endpoint(dst) == (k.a, (k.ports >> 16) as u16);
        if to_lo != tw.server_lo || ts.saturating_sub(c.at) >= TIME_WAIT_US {
            return false;
        }
        // The SYN's timestamp counts only when the old connection had them.
        let tsval = tw
            .ts_recent
            .and_then(|r| t.options.timestamp.map(|(v, _)| (r, v)));
        // tcp_paws_reject: older than the last accepted, that one not zero.
        let paws = tsval.is_some_and(|(r, v)| r != 0 && (r.wrapping_sub(v) as i32) > 0);
        let newer = tsval.is_some_and(|(r, v)| (r.wrapping_sub(v) as i32) < 0);
        if !paws && (after(t.seq, tw.rcv_nxt) || newer) {
            return false;
        }
        if paws {
            c.at = ts;
        }
        true
    }

    /// Closes out connections idle past the timeout, and fragments past theirs.
    fn sweep(&mut self, out: &mut dyn FnMut(Record)) {
        self.last_sweep_us = self.now_us;
        let mut expired = Vec::new();
        self.defrag.expire(self.now_us, &mut |a| expired.push(a));
        self.defrag6.expire(self.now_us, &mut |a| expired.push(a));
        for a in expired {
            self.fragment_anomaly(&a, out);
        }
        let forget = self.now_us.saturating_sub(CLOSED_MEMORY_US);
        self.closed.retain(|_, c| c.at >= forget);
        let forget = self.now_us.saturating_sub(IDLE_MEMORY_US);
        self.resumable.retain(|_, m| m.at >= forget);
        let deadline = self.now_us.saturating_sub(self.limits.timeout_us);
        if self.resetting > 0 {
            // Waits after an exact RST that ran out (see [`ResetSeen`]), and
            // connections a RST followed by nothing left idle: ended.
            let reset_deadline = self.now_us.saturating_sub(RESET_WAIT_US);
            let ended: Vec<(Key, ResetEnd)> = self
                .flows
                .iter()
                .filter_map(|(k, c)| {
                    let r = c.reset.as_ref()?;
                    let how = if r.answered || !r.has_data() {
                        ResetEnd::Reset
                    } else {
                        ResetEnd::Uncertain
                    };
                    match r.since_us {
                        Some(since) if since < reset_deadline => Some((*k, how)),
                        None if c.last_us < deadline => Some((*k, how)),
                        _ => None,
                    }
                })
                .collect();
            for (k, how) in ended {
                self.resolve_reset(&k, how, "no answer within the wait", out);
            }
        }
        if self.forks > 0 {
            // Forks whose wait ran out (see [`Fork`]): settled.
            let fork_deadline = self.now_us.saturating_sub(RESET_WAIT_US);
            let due: Vec<Key> = self
                .flows
                .iter()
                .filter(|(_, c)| {
                    c.fork
                        .as_ref()
                        .is_some_and(|f| !f.decided && f.since_us < fork_deadline)
                })
                .map(|(k, _)| *k)
                .collect();
            for k in due {
                self.resolve_fork(&k, out);
            }
        }
        let handshake_deadline = self
            .now_us
            .saturating_sub(HANDSHAKE_TIMEOUT_US.min(self.limits.timeout_us));
        // A clinical message in progress is waited for ten times as long: the
        // host keeps an idle connection open, and a pause inside a message must
        // not be a way to walk past (memory and the flow table still bound it).
        let message_deadline = self
            .now_us
            .saturating_sub(self.limits.timeout_us.saturating_mul(10));
        let idle: Vec<_> = self
            .flows
            .iter()
            .filter(|(_, c)| {
                let deadline = if c.session.mid_message() {
                    message_deadline
                } else {
                    deadline
                };
                // Only a handshake that never completed times out early.
                let half_open = !c.has_data && c.up.max_ack.is_none();
                c.last_us < deadline || (half_open && c.last_us < handshake_deadline)
            })
            .map(|(k, _)| *k)
            .collect();
        let why = format!(
            "no packet for {} s of capture time (the idle timeout)",
            self.limits.timeout_us / 1_000_000
        );
        for k in idle {
            if let Some(c) = self.flows.remove(&k) {
                self.counts.timed_out += 1;
                // Ended neither by a RST nor by both FINs: the hosts may resume it.
                let ended = c.rst || c.up.stream.fin_seen() || c.down.stream.fin_seen();
                if !ended
                    && (c.has_data || c.up.max_ack.is_some())
                    && self.resumable.len() < self.limits.max_flows
                {
                    let fp = self.fingerprint(&k);
                    self.resumable.insert(
                        fp,
                        Resumable {
                            at: c.last_us,
                            client: c.session.client(),
                            server: c.session.server(),
                            up: c.up.shown,
                            down: c.down.shown,
                        },
                    );
                }
                let ts = c.last_us;
                self.finish(c, ts, Some(&why), out);
            }
        }
    }

    /// The table is full: a batch (1/64 of the table) goes, so that a flood of
    /// new connections costs one scan per batch rather than one per connection.
    /// Connections that never carried data go first, then those that carry no
    /// clinical protocol, then clinical ones between messages, and only then
    /// clinical ones in the middle of a message (each reported); the least
    /// recently active first within each. A SYN flood thus evicts itself. One
    /// event per batch.
    fn evict(&mut self, out: &mut dyn FnMut(Record)) {
        let batch = (self.limits.max_flows / 64).max(1);
        let class = |c: &Conn| -> u8 {
            if !c.has_data {
                0
            } else if !c.session.clinical() {
                1
            } else if !c.session.mid_message() {
                2
            } else {
                3
            }
        };
        let mut ranked: Vec<((u8, u64), Key)> = self
            .flows
            .iter()
            .map(|(k, c)| ((class(c), c.last_us), *k))
            .collect();
        if ranked.len() > batch {
            ranked.select_nth_unstable(batch - 1);
            ranked.truncate(batch);
        }
        let mut first = None;
        let mut n = 0u64;
        for (_, k) in ranked {
            if let Some(c) = self.flows.remove(&k) {
                first.get_or_insert((c.session.client(), c.session.server()));
                n += 1;
                let ts = c.last_us;
                self.finish(c, ts, Some("the flow table was full"), out);
            }
        }
        let before = self.counts.evicted;
        self.counts.evicted += n;
        // One event for the first batch, then one each time the total doubles.
        let report = before == 0 || before.leading_zeros() != self.counts.evicted.leading_zeros();
        if let Some((client, server)) = first.filter(|_| report) {
            let clock = self.clock.at(self.now_us);
            self.observer.capture_event(
                &clock,
                rules::FLOW_TABLE_FULL,
                format!(
                    "flow table full ({} connections): evicted {n}, connections without data and without a clinical protocol first, starting with {client} <-> {server} ({} eviction(s) so far)",
                    self.limits.max_flows, self.counts.evicted
                ),
                out,
            );
        }
    }

    /// End of input: every connection still open is flushed and closed.
    pub fn finish_all(&mut self, out: &mut dyn FnMut(Record)) {
        if self.counts.skewed_copies > 0 {
            self.capture_alert(
                rules::CAPTURE_OUT_OF_ORDER,
                format!(
                    "the capture's interfaces' clocks disagree: on {} connection end(s) seen at two points of their path, the forwarded copy of a segment was time-stamped before the segment itself; frames merged by time are then out of the traffic's order",
                    self.counts.skewed_copies
                ),
                out,
            );
        }
        let mut expired = Vec::new();
        self.defrag.expire(u64::MAX, &mut |a| expired.push(a));
        self.defrag6.expire(u64::MAX, &mut |a| expired.push(a));
        for a in expired {
            self.fragment_anomaly(&a, out);
        }
        // Finishing a connection followed beside a new one hands the ports
        // to the new one ([`Fork`]): until none is left.
        while !self.flows.is_empty() {
            let keys: Vec<_> = self.flows.keys().copied().collect();
            for k in keys {
                if let Some(c) = self.flows.remove(&k) {
                    let ts = c.last_us;
                    self.finish(c, ts, None, out);
                }
            }
        }
    }

    /// The clock at the latest packet time seen.
    pub fn clock_now(&mut self) -> wardgate_engine::Clock {
        self.clock.at(self.now_us)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Any number of uncertain copies keeps at most [`MAX_UNCERTAIN`] and one
    /// [`Forgotten`] stretch, which covers every copy let go; stale ones are
    /// not kept at all.
    #[test]
    fn uncertain_copies_are_bounded_and_what_is_let_go_is_kept_as_a_stretch() {
        let mut side = Side::new(reassembly::Limits::default(), Policy::Linux);
        side.stream.segment(1000, true, false, b"", &mut |_| {});
        side.stream
            .segment(1001, false, false, b"abcd", &mut |_| {});
        // Wholly before what was read: never kept.
        note_uncertain(&mut side, Uncertain::new(990, b"zz", Doubt::TcpAo));
        assert!(side.uncertain.is_empty());
        // Past every window: never kept.
        note_uncertain(
            &mut side,
            Uncertain::new(1005 + MAX_TCP_WINDOW + 1, b"zz", Doubt::TcpAo),
        );
        assert!(side.uncertain.is_empty());
        for i in 0..100_000u32 {
            note_uncertain(&mut side, Uncertain::new(1005 + i, b"q", Doubt::TcpAo));
            assert!(side.uncertain.len() <= MAX_UNCERTAIN);
        }
        let f = side.forgotten.expect("a stretch let go");
        assert!(f.touches(1005, 1006));
        assert!(f.touches(1005 + 99_990, 1005 + 99_991));
        assert!(!f.touches(1005 + 99_995, 1005 + 99_996));
        assert!(!f.touches(1001, 1005));
    }
}
