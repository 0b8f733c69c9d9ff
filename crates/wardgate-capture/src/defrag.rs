//! IPv4 and IPv6 defragmentation (sans-IO) that reproduces what a Linux receiver
//! (kernel 5.x and later) reassembles, so that passive analysis judges the datagram
//! the host reads. Fragmentation evasion works by making a monitor and a host read
//! different bytes, or one of them nothing; every point where that can happen is
//! reported as an [`Anomaly`] naming the datagram's [`Key`].
//!
//! # Linux behaviour reproduced
//!
//! Queues (`ip_find` in net/ipv4/ip_fragment.c, `fq_find` in net/ipv6/reassembly.c)
//! are keyed by (scope, source, destination, identification, protocol) for IPv4 and
//! (scope, source, destination, identification) for IPv6. `scope` stands in for
//! Linux's interface: the caller encodes VLAN ids in it so that the same addresses
//! on different VLANs never share a queue.
//!
//! Each fragment goes through the checks of `ip_frag_queue` / `ip6_frag_queue`, in
//! their order, on the queue's state:
//!
//! 1. `end` = offset + payload length. IPv6: `end` > 65535 drops the fragment (Linux
//!    answers with a parameter problem), the queue is kept: [`Anomaly::TooLarge`].
//! 2. Last fragment (MF / M clear): `end` below the length already known, or a last
//!    fragment seen before with another `end`, discards the whole queue
//!    ([`Anomaly::Inconsistent`]); else the length is `end`.
//! 3. Other fragments: IPv4 rounds `end` down to a multiple of 8 and drops the
//!    excess bytes; IPv6 drops a fragment whose length is not a multiple of 8, queue
//!    kept ([`Anomaly::BadLength`]). `end` beyond a known last fragment discards the
//!    queue ([`Anomaly::Inconsistent`]). These updates stick even if step 5 then
//!    drops the fragment as a duplicate, as in Linux.
//! 4. Nothing left (`end` == offset) discards the queue ([`Anomaly::BadLength`]).
//! 5. `inet_frag_queue_insert` (net/ipv4/inet_fragment.c) keeps fragments in "runs":
//!    a run grows only by a fragment starting exactly where the highest run ends; any
//!    other fragment starts a run of its own. A fragment entirely inside one run is a
//!    duplicate: dropped, queue kept, the held bytes win without being compared
//!    ([`Anomaly::Duplicate`]; [`Anomaly::DuplicateDiffers`] when its bytes differ,
//!    since another OS may keep that copy). Any other overlap discards the whole
//!    datagram ([`Anomaly::Overlap`]): RFC 5722 for IPv6, and IPv4 too since Linux
//!    4.19 (FragmentSmack). Runs depend on arrival order, so a fragment spanning two
//!    adjacent held fragments is a duplicate if they arrived in order and an overlap
//!    if not; this is reproduced.
//! 6. Complete once offset 0 and the last fragment are in and the held bytes add up
//!    to the length. Then (`ip_frag_reasm`, `ip6_frag_reasm`): ECN marks mixing
//!    not-ECT with ECT or CE discard the datagram (`ip_frag_ecn_table`, RFC 3168 5.3;
//!    [`Anomaly::Inconsistent`]), CE on any fragment is carried into the result; an
//!    IPv4 datagram over 65535 bytes or an IPv6 payload over 65535 is discarded
//!    ([`Anomaly::TooLarge`]).
//!
//! A discarded or completed queue is gone: later fragments with the same key start a
//! new one, as in Linux.
//!
//! What the frames say (`ipv4_framed`, `ipv6_framed`): a host takes only frames to
//! its own MAC, and a router drops a fragment whose TTL runs out, before any queue.
//! So a datagram whose held fragments were framed to different MACs is dropped
//! ([`Anomaly::MixedStations`]): no host had them all. And the result carries the
//! lowest TTL of its fragments, not the first's, so that the caller's TTL checks
//! see a fragment that may expire on the way (a decoy datagram completed only for
//! the monitor).
//!
//! IPv4 (`ip_rcv_core`, `ip_frag_reasm`): a header with a bad checksum is ignored, as
//! Linux drops it before reassembly (else a forged fragment could fill a hole for the
//! monitor only). The result is the offset-0 fragment's header, options kept, with
//! flags and offset zeroed, total length and checksum recomputed. `ipfrag_max_dist`
//! (64): when more than [`Limits::max_dist`] fragments from the same source reached
//! the same destination since a queue's previous fragment, Linux forgets what that
//! queue held and restarts it (and its timer) with the new fragment
//! ([`Anomaly::TooFar`]); counted per (scope, source, destination), since the monitor
//! stands in for every destination host. Linux counts per source across all of the
//! host's addresses (`inet_getpeer_v4` on the source alone), which the monitor cannot
//! know: counted per source too (whatever the scope: Linux keys it on the source
//! and the VRF, not the VLAN), a datagram that completes although the
//! count across every destination says its queue restarted is returned all the same,
//! with [`Anomaly::MaybeRestarted`], and the caller treats it as a copy the host may
//! not have read (an adversarial review: a FIN's fragments with other fragments
//! between them to the host's second address completed for wardgate only).
//!
//! IPv6 (`ipv6_frag_rcv`, `ip6_frag_reasm`): the Fragment header may follow
//! hop-by-hop (first only), routing and destination options headers; everything
//! before it is the unfragmentable part. The result is the offset-0 fragment's
//! unfragmentable part, with the next header field that named the Fragment header
//! set to that fragment's next header and the payload length fixed, followed by the
//! reassembled data, with where that data starts ([`Datagram::fragmentable_at`]):
//! Linux goes on from the Fragment header's next header, so a hop-by-hop header
//! there is out of place and the datagram dropped, which the caller's decoder can
//! only tell by that offset. An atomic fragment (offset 0, M clear; RFC 6946) is returned at
//! once, its Fragment header removed likewise, without touching any queue. A first
//! fragment that does not hold the whole upper-layer header (RFC 8200 4.5,
//! `ipv6frag_thdr_truncated`: TCP 20 bytes, UDP 8, ICMPv6 8, anything else 1, after
//! every extension header) is dropped before any queue is looked up
//! ([`Anomaly::HeaderNotInFirst`]). The walk starts at the fixed header, as since
//! commit 1cd354fe1e48 (2024, in stable kernels); before it, with an extension header
//! ahead of the Fragment header, Linux could also drop small later fragments. A
//! fragment dropped at steps 1 or 3 may leave a new queue empty with its timer
//! running, as in Linux.
//!
//! Reported, not enforced (RFC 1858 tiny-fragment and overlapping-header attacks):
//! an offset-0 TCP fragment that does not hold the TCP header with its options, and a
//! TCP fragment at offset 8 ([`Anomaly::TinyFragment`]). Linux reassembles them.
//!
//! # Time
//!
//! Linux drops a queue `ipfrag_time` (30 s) after its first fragment, however busy:
//! the timer is not refreshed. Every call first drops queues older than
//! [`Limits::timeout_us`] at its `now_us` ([`Anomaly::TimedOut`]), as does
//! [`Defrag::expire`]. A timestamp earlier than a queue's never expires it.
//!
//! # Memory (differs from Linux)
//!
//! [`Limits::max_bytes`] (`ipfrag_high_thresh`, 4 MiB) bounds the bytes charged to
//! all queues: their data, the offset-0 fragment's header, and fixed estimates of
//! bookkeeping ([`FRAGMENT_OVERHEAD`], [`QUEUE_OVERHEAD`]) so that a flood of tiny
//! fragments stays bounded too; [`Limits::max_queues`] bounds the queues. After each
//! fragment, while over either limit, the oldest queue is dropped
//! ([`Anomaly::Evicted`]). Linux instead refuses every fragment while over the
//! threshold, so under memory pressure host and monitor may disagree; either way the
//! monitor says so. A call may exceed the limit by one fragment while it runs.
//!
//! # Not reproduced
//!
//! IP options and extension header contents are not validated (Linux drops some
//! malformed ones); AH or ESP before the Fragment header is not followed; ICMP errors
//! are not generated; DF is not set on the result (Linux sets it when the largest
//! fragment had it; local delivery ignores it); Linux charges each fragment's whole
//! buffer (`truesize`), so its threshold is reached with fewer fragments.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[cfg(test)]
mod tests;

/// A reassembled datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// The whole packet, as [`Defrag::ipv4`] and [`Defrag::ipv6`] return it.
    pub ip: Vec<u8>,
    /// Where the part that was fragmented starts: the end of the offset-0
    /// fragment's IPv4 header, or of its IPv6 unfragmentable part (where the
    /// Fragment header was). Linux reads the headers from there on as coming
    /// after the Fragment header (see [`crate::decode::decode_reassembled_v6`]).
    pub fragmentable_at: usize,
}

/// Bytes charged per held fragment beyond its data: an estimate of its map nodes and
/// allocation, so that memory stays bounded however small the fragments.
pub const FRAGMENT_OVERHEAD: usize = 64;

/// Bytes charged per queue beyond its fragments: an estimate of its table entries.
pub const QUEUE_OVERHEAD: usize = 256;

/// Largest IPv4 datagram and largest IPv6 payload (both length fields are 16 bits).
const MAX_LEN: usize = 65535;
const IPV6_HEADER: usize = 40;

const HOP_BY_HOP: u8 = 0;
const TCP: u8 = 6;
const UDP: u8 = 17;
const ROUTING: u8 = 43;
const FRAGMENT: u8 = 44;
const AUTH: u8 = 51;
const ICMPV6: u8 = 58;
const NO_NEXT: u8 = 59;
const DEST_OPTS: u8 = 60;

/// `ip_frag_ecn_table` bits: one per ECN codepoint seen on a queue's fragments.
const ECN_NOT_ECT: u8 = 1;
const ECN_CE: u8 = 8;

/// Bounds on what a [`Defrag`] holds and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes charged across all queues (Linux `ipfrag_high_thresh`, 4 MiB).
    pub max_bytes: usize,
    /// Queues held at once.
    pub max_queues: usize,
    /// Microseconds from a queue's first fragment until it is dropped (Linux
    /// `ipfrag_time`, 30 s).
    pub timeout_us: u64,
    /// IPv4 only: fragments from one source to one destination allowed between two
    /// fragments of a queue before the queue restarts (Linux `ipfrag_max_dist`, 64);
    /// 0 disables, as in Linux.
    pub max_dist: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 4 * 1024 * 1024,
            max_queues: 4096,
            timeout_us: 30_000_000,
            max_dist: 64,
        }
    }
}

impl Limits {
    /// Linux's IPv6 reassembly: `ip6frag_time` is 60 s where IPv4's
    /// `ipfrag_time` is 30, and IPv6 queues are a namespace of their own with
    /// their own memory bound (`ip6frag_high_thresh`, 4 MiB). A queue held
    /// 30 to 60 s completes on the host (found by an adversarial review).
    pub fn ipv6() -> Limits {
        Limits {
            timeout_us: 60_000_000,
            ..Limits::default()
        }
    }
}

/// The datagram a fragment belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    /// Caller-supplied scope (VLAN ids): equal addresses in different scopes never mix.
    pub scope: u64,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Identification (16 bits for IPv4, 32 for IPv6).
    pub id: u32,
    /// IPv4 protocol; for IPv6 (where it is not part of the queue's identity) the
    /// Fragment header's next header of the queue's first fragment seen, or of the
    /// fragment itself when no queue exists.
    pub proto: u8,
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} -> {} id {:#x} proto {} scope {}",
            self.src, self.dst, self.id, self.proto, self.scope
        )
    }
}

/// Something the monitor must report: the host may have read another datagram than
/// a naive reassembly, or none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anomaly {
    /// Fragments overlapped: Linux discarded the whole datagram.
    Overlap {
        /// The datagram.
        key: Key,
    },
    /// A duplicate fragment carried other bytes than the held ones; Linux kept the
    /// held ones, another OS may keep the new ones.
    DuplicateDiffers {
        /// The datagram.
        key: Key,
    },
    /// A duplicate fragment with the held bytes (a retransmission), dropped.
    Duplicate {
        /// The datagram.
        key: Key,
    },
    /// TCP header split across fragments or rewritable by a fragment at offset 8
    /// (RFC 1858); reassembled anyway, as Linux does.
    TinyFragment {
        /// The datagram.
        key: Key,
    },
    /// A fragment with no data left after rounding (queue discarded), or an IPv6
    /// non-final fragment not a multiple of 8 bytes long (fragment dropped).
    BadLength {
        /// The datagram.
        key: Key,
    },
    /// Fragments disagree on the datagram's end or mix ECN marks: queue discarded.
    Inconsistent {
        /// The datagram.
        key: Key,
    },
    /// The datagram (or an IPv6 fragment's end) would exceed 65535 bytes: dropped.
    TooLarge {
        /// The datagram.
        key: Key,
    },
    /// An IPv6 first fragment without the whole upper-layer header: dropped.
    HeaderNotInFirst {
        /// The datagram.
        key: Key,
    },
    /// Not completed within [`Limits::timeout_us`]: dropped.
    TimedOut {
        /// The datagram.
        key: Key,
    },
    /// Dropped to stay within [`Limits::max_bytes`] or [`Limits::max_queues`].
    Evicted {
        /// The datagram.
        key: Key,
    },
    /// IPv4: too many other fragments from the source since this queue's last one
    /// ([`Limits::max_dist`]): what it held was forgotten and it restarted.
    TooFar {
        /// The datagram.
        key: Key,
    },
    /// The fragments of one datagram were framed to different stations' MAC
    /// addresses: a host receives only the frames to its own, so it never had
    /// them all. Complete for the monitor, dropped.
    MixedStations {
        /// The datagram.
        key: Key,
    },
    /// IPv4: completed, but more than [`Limits::max_dist`] fragments came
    /// from its source to other destinations between two of its fragments: a
    /// host that owns those addresses too restarted its queue and never had
    /// this datagram; one that does not reassembled it. Returned with this
    /// anomaly, from the same call.
    MaybeRestarted {
        /// The datagram.
        key: Key,
    },
    /// Completed after [`Limits::timeout_us`] but within the timer's slack
    /// ([`Defrag::expire`]): Linux's reassembly timer fires on a timer-wheel
    /// tick up to an eighth of its timeout late, so a host may have completed
    /// this datagram or dropped its queue first. Returned with this anomaly,
    /// from the same call.
    MaybeExpired {
        /// The datagram.
        key: Key,
    },
    /// A queue dropped on timeout or for memory whose every fragment repeated,
    /// byte for byte, a fragment of a datagram completed under the same key
    /// within the timeout: a mirror port's second copy of a datagram, or a
    /// sender's resend, the host has already read. Counted, not alerted
    /// (found by a review: a SPAN port that copies each frame twice raised
    /// `ip-fragment-incomplete` for every fragmented datagram).
    Repeated {
        /// The datagram.
        key: Key,
    },
}

impl Anomaly {
    /// The datagram concerned.
    pub fn key(&self) -> &Key {
        match self {
            Anomaly::Overlap { key }
            | Anomaly::DuplicateDiffers { key }
            | Anomaly::Duplicate { key }
            | Anomaly::TinyFragment { key }
            | Anomaly::BadLength { key }
            | Anomaly::Inconsistent { key }
            | Anomaly::TooLarge { key }
            | Anomaly::HeaderNotInFirst { key }
            | Anomaly::TimedOut { key }
            | Anomaly::Evicted { key }
            | Anomaly::TooFar { key }
            | Anomaly::MixedStations { key }
            | Anomaly::MaybeRestarted { key }
            | Anomaly::MaybeExpired { key }
            | Anomaly::Repeated { key } => key,
        }
    }

    /// One short sentence for a human.
    pub fn describe(&self) -> String {
        match self {
            Anomaly::Overlap { key } => {
                format!("overlapping IP fragments ({key}): datagram discarded, as Linux does")
            }
            Anomaly::DuplicateDiffers { key } => format!(
                "duplicate IP fragment with other bytes ({key}): Linux keeps the first copy"
            ),
            Anomaly::Duplicate { key } => format!("duplicate IP fragment ({key}) dropped"),
            Anomaly::TinyFragment { key } => {
                format!("TCP header split or rewritable across IP fragments ({key}, RFC 1858)")
            }
            Anomaly::BadLength { key } => format!("IP fragment of invalid length ({key}) dropped"),
            Anomaly::Inconsistent { key } => {
                format!("IP fragments disagree on the datagram ({key}): discarded")
            }
            Anomaly::TooLarge { key } => {
                format!("reassembled IP datagram would exceed 65535 bytes ({key}): dropped")
            }
            Anomaly::HeaderNotInFirst { key } => format!(
                "first IPv6 fragment lacks the upper-layer header ({key}): dropped, as Linux does"
            ),
            Anomaly::TimedOut { key } => format!("IP reassembly timed out ({key})"),
            Anomaly::Evicted { key } => {
                format!("IP reassembly dropped to stay within memory limits ({key})")
            }
            Anomaly::TooFar { key } => {
                format!("IP reassembly restarted: too many other fragments from the source ({key})")
            }
            Anomaly::MixedStations { key } => format!(
                "IP fragments of one datagram framed to different stations' MAC addresses ({key}): no host received them all; dropped"
            ),
            Anomaly::MaybeRestarted { key } => format!(
                "IP datagram completed ({key}) although more than the reassembly distance of other fragments came from its source to other addresses between its fragments: a host owning those addresses restarted it"
            ),
            Anomaly::MaybeExpired { key } => format!(
                "IP datagram completed ({key}) after the reassembly timeout, within the slack of the host's timer: the host may have dropped it first"
            ),
            Anomaly::Repeated { key } => format!(
                "IP fragments repeating a datagram already reassembled ({key}) never completed: a mirror's or a resend's copy"
            ),
        }
    }
}

/// Counters, for telemetry.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Stats {
    /// Well-formed fragments passed in, whatever became of them.
    pub fragments: u64,
    /// Datagrams returned after reassembly.
    pub reassembled: u64,
    /// IPv6 atomic fragments returned at once.
    pub atomic: u64,
    /// Fragments that overlapped held data (each discarded its datagram).
    pub overlaps: u64,
    /// Duplicate fragments dropped, identical or not.
    pub duplicates: u64,
    /// Duplicates whose bytes differed from the held ones.
    pub conflicting_duplicates: u64,
    /// Queues discarded by the rules: overlap, inconsistent or zero length, too large.
    pub dropped_queues: u64,
    /// Fragments dropped alone, queue kept: IPv6 length rules, missing upper-layer
    /// header.
    pub dropped_fragments: u64,
    /// Queues dropped on timeout.
    pub timed_out: u64,
    /// Queues dropped for memory or queue-count limits.
    pub evicted: u64,
    /// Of those timed out or evicted, queues that only repeated fragments
    /// of a datagram already completed ([`Anomaly::Repeated`]).
    pub repeated: u64,
    /// IPv4 queues restarted by `ipfrag_max_dist`.
    pub too_far: u64,
    /// IPv4 datagrams completed that a host owning the other destinations
    /// of their source's fragments would have restarted.
    pub maybe_restarted: u64,
    /// Tiny or offset-8 TCP fragments (RFC 1858).
    pub tiny: u64,
    /// Inputs that were not a well-formed fragment (short, bad IPv4 header checksum,
    /// not fragmented, Fragment header not found): ignored.
    pub malformed: u64,
}

/// Reassembly state for every datagram in flight.
#[derive(Debug)]
pub struct Defrag {
    limits: Limits,
    /// foldhash: keyed per process, as keys are attacker-chosen.
    queues: HashMap<Key, Queue, foldhash::fast::RandomState>,
    /// Queues by (creation time, creation serial): oldest first, for timeouts and
    /// eviction.
    order: BTreeMap<(u64, u64), Key>,
    /// IPv4 `inet_peer` fragment counters per (scope, source, destination), kept while
    /// a queue of theirs exists (only differences matter).
    peers: HashMap<(u64, IpAddr, IpAddr), Peer, foldhash::fast::RandomState>,
    /// The same per source, whatever the scope: Linux's count when every
    /// destination is one host (`inet_getpeer_v4` keys on the source and the
    /// VRF, never the VLAN: a review put the junk on another VLAN).
    source_peers: HashMap<IpAddr, Peer, foldhash::fast::RandomState>,
    held: usize,
    serial: u64,
    stats: Stats,
    /// Datagrams completed lately, with their fragments' fingerprints, to
    /// tell a queue of repeats from one never completed ([`Anomaly::Repeated`]).
    done: HashMap<Key, Done, foldhash::fast::RandomState>,
    /// `done` by completion time, oldest first (at most [`MAX_DONE`]).
    done_order: std::collections::VecDeque<(u64, Key)>,
}

/// A completed datagram's fragments: (offset, length, hash of the bytes).
#[derive(Debug)]
struct Done {
    at_us: u64,
    frags: Vec<(u32, u32, u64)>,
}

/// Completed datagrams remembered for [`Anomaly::Repeated`]: past this, the
/// oldest is forgotten and a repeat of it is reported as incomplete, as
/// before (memory stays bounded under a flood of fragments).
const MAX_DONE: usize = 1024;

#[derive(Debug, Default)]
struct Peer {
    /// Every fragment seen (the most the host's counter can have moved).
    rid: u64,
    queues: usize,
    /// Fragments sure to reach a host, by the destination MAC of their frame:
    /// a frame to another station's MAC never reaches its IP layer, and one
    /// with a TTL at most [`LOW_TTL`] may expire on the way, so neither moves
    /// that host's counter for certain (found by an adversarial review: junk
    /// fragments to another MAC restarted a queue the host completed). A few
    /// MACs are kept; past them, fragments count as unsure.
    sure: Vec<(Option<[u8; 6]>, u64)>,
}

/// A TTL or hop limit this low may expire between the capture and the host
/// (as the analyser's `DECOY_TTL`).
const LOW_TTL: u8 = 16;

/// Destination MACs whose sure fragments a peer counts apart.
const MAX_PEER_MACS: usize = 8;

/// One datagram being reassembled (Linux `inet_frag_queue`).
#[derive(Debug)]
struct Queue {
    proto: u8,
    created_us: u64,
    serial: u64,
    /// The peer counter at this queue's previous fragment.
    rid: u64,
    /// The peer's sure counter for that fragment's MAC at that time.
    sure_rid: u64,
    /// The per-source counter at this queue's previous fragment.
    source_rid: u64,
    /// Restarted by the per-source count, not by the per-destination one
    /// (see [`Anomaly::MaybeRestarted`]).
    maybe_restarted: bool,
    /// Length known so far (`q.len`).
    len: u32,
    /// A last fragment is in (`INET_FRAG_LAST_IN`).
    last_in: bool,
    /// Bytes held (`q.meat`).
    meat: u32,
    /// `ip_frag_ecn_table` bits seen.
    ecn: u8,
    /// Held fragments by offset; they never overlap.
    frags: BTreeMap<u32, Box<[u8]>>,
    /// Linux's runs, start to end.
    runs: BTreeMap<u32, u32>,
    /// The offset-0 fragment's headers (`INET_FRAG_FIRST_IN` when set).
    head: Option<Head>,
    /// Bytes charged against [`Limits::max_bytes`].
    charged: usize,
    /// The lowest TTL (hop limit) of the held fragments: the result carries it.
    min_ttl: u8,
    /// The destination MAC of the first held fragment that had one.
    mac: Option<[u8; 6]>,
    /// A held fragment was framed to another MAC than `mac`.
    macs_differ: bool,
}

#[derive(Debug)]
enum Head {
    V4(Box<[u8]>),
    V6 {
        /// Fixed header and the extension headers before the Fragment header.
        unfrag: Box<[u8]>,
        /// Where the next header byte naming the Fragment header is.
        nh_off: usize,
        /// The Fragment header's next header.
        next: u8,
    },
}

#[derive(Clone, Copy)]
enum HeadRef<'a> {
    V4(&'a [u8]),
    V6 {
        unfrag: &'a [u8],
        nh_off: usize,
        next: u8,
    },
}

/// A parsed fragment, on its way into a queue.
struct Incoming<'a> {
    offset: u32,
    more: bool,
    /// Its IPv4 TTL or IPv6 hop limit.
    ttl: u8,
    /// The destination MAC of its frame, when the link has one.
    mac: Option<[u8; 6]>,
    /// `ip_frag_ecn_table` bit of its ECN codepoint.
    ecn: u8,
    head: HeadRef<'a>,
    data: &'a [u8],
}

/// What `inet_frag_queue_insert` does with a fragment.
enum Place {
    New,
    Append,
    Duplicate,
    Overlap,
}

#[derive(Clone, Copy)]
enum Fault {
    Overlap,
    DuplicateDiffers,
    Duplicate,
    BadLength,
    Inconsistent,
    TooLarge,
}

impl Fault {
    fn anomaly(self, key: Key) -> Anomaly {
        match self {
            Fault::Overlap => Anomaly::Overlap { key },
            Fault::DuplicateDiffers => Anomaly::DuplicateDiffers { key },
            Fault::Duplicate => Anomaly::Duplicate { key },
            Fault::BadLength => Anomaly::BadLength { key },
            Fault::Inconsistent => Anomaly::Inconsistent { key },
            Fault::TooLarge => Anomaly::TooLarge { key },
        }
    }
}

/// What became of a fragment in its queue.
enum Verdict {
    Held,
    /// Fragment dropped, queue kept.
    Drop(Fault),
    /// Queue discarded.
    Discard(Fault),
    Complete,
}

/// What a caller knows of a fragment's frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Frame {
    /// The frame's destination MAC address, when the link has one.
    pub dst_mac: Option<[u8; 6]>,
}

impl Defrag {
    /// An empty reassembler.
    pub fn new(limits: Limits) -> Self {
        Defrag {
            limits,
            queues: HashMap::with_hasher(foldhash::fast::RandomState::default()),
            order: BTreeMap::new(),
            peers: HashMap::with_hasher(foldhash::fast::RandomState::default()),
            source_peers: HashMap::with_hasher(foldhash::fast::RandomState::default()),
            held: 0,
            serial: 0,
            stats: Stats::default(),
            done: HashMap::with_hasher(foldhash::fast::RandomState::default()),
            done_order: std::collections::VecDeque::new(),
        }
    }

    /// `ip`: one IPv4 packet, header and payload, trimmed to its total length, that is
    /// a fragment (MF set or offset != 0).
    /// Returns the whole datagram as an unfragmented IPv4 packet (flags/offset zeroed,
    /// total length and header checksum recomputed, options of the first fragment
    /// kept) once complete.
    pub fn ipv4(
        &mut self,
        scope: u64,
        ip: &[u8],
        now_us: u64,
        anomaly: &mut dyn FnMut(Anomaly),
    ) -> Option<Vec<u8>> {
        self.ipv4_framed(scope, ip, Frame::default(), now_us, anomaly)
    }

    /// [`Self::ipv4`] for a fragment that came in `frame`: fragments of one
    /// datagram framed to different stations give [`Anomaly::MixedStations`]
    /// and no datagram, and the result's TTL is the lowest of its fragments'
    /// (a fragment that may expire on the way leaves the host without the
    /// datagram, so the datagram is judged by it).
    pub fn ipv4_framed(
        &mut self,
        scope: u64,
        ip: &[u8],
        frame: Frame,
        now_us: u64,
        anomaly: &mut dyn FnMut(Anomaly),
    ) -> Option<Vec<u8>> {
        self.expire(now_us, anomaly);
        let Some(p) = parse_v4(ip) else {
            self.stats.malformed += 1;
            return None;
        };
        self.stats.fragments += 1;
        let key = Key {
            scope,
            src: IpAddr::V4(p.src),
            dst: IpAddr::V4(p.dst),
            id: u32::from(p.id),
            proto: p.proto,
        };
        if p.proto == TCP {
            let kept = if p.more {
                p.data.get(..p.data.len() & !7).unwrap_or_default()
            } else {
                p.data
            };
            if (p.offset == 0 && tcp_header_cut(kept)) || p.offset == 8 {
                self.stats.tiny += 1;
                anomaly(Anomaly::TinyFragment { key });
            }
        }
        let frag = Incoming {
            offset: p.offset,
            more: p.more,
            ttl: p.header.get(8).copied().unwrap_or(0),
            mac: frame.dst_mac,
            ecn: ecn_bit(p.ecn),
            head: HeadRef::V4(p.header),
            data: p.data,
        };
        self.queue(key, p.proto, frag, now_us, anomaly)
            .map(|d| d.ip)
    }

    /// `ip`: one IPv6 packet (fixed header + extension headers + payload, trimmed to
    /// 40 + payload length) carrying a Fragment header.
    /// Returns the whole packet, without Fragment header, once complete (at once for
    /// an atomic fragment).
    pub fn ipv6(
        &mut self,
        scope: u64,
        ip: &[u8],
        now_us: u64,
        anomaly: &mut dyn FnMut(Anomaly),
    ) -> Option<Vec<u8>> {
        self.ipv6_framed(scope, ip, Frame::default(), now_us, anomaly)
            .map(|d| d.ip)
    }

    /// [`Self::ipv6`] for a fragment that came in `frame`, as
    /// [`Self::ipv4_framed`]; the datagram comes with where its fragmentable
    /// part starts ([`Datagram`]).
    pub fn ipv6_framed(
        &mut self,
        scope: u64,
        ip: &[u8],
        frame: Frame,
        now_us: u64,
        anomaly: &mut dyn FnMut(Anomaly),
    ) -> Option<Datagram> {
        self.expire(now_us, anomaly);
        let Some(p) = parse_v6(ip) else {
            self.stats.malformed += 1;
            return None;
        };
        self.stats.fragments += 1;
        if p.offset == 0 && !p.more {
            // RFC 6946: an atomic fragment is a whole packet; no queue is involved.
            self.stats.atomic += 1;
            return build_v6(p.unfrag, p.nh_off, p.next, 0, &[p.data]).map(|ip| Datagram {
                ip,
                fragmentable_at: p.unfrag.len(),
            });
        }
        let lookup = Key {
            scope,
            src: IpAddr::V6(p.src),
            dst: IpAddr::V6(p.dst),
            id: p.id,
            proto: 0,
        };
        let key = Key {
            proto: self.queues.get(&lookup).map_or(p.next, |q| q.proto),
            ..lookup
        };
        if p.offset == 0 {
            let (truncated, tcp_cut) = first_fragment_v6(p.packet);
            if truncated {
                self.stats.dropped_fragments += 1;
                anomaly(Anomaly::HeaderNotInFirst { key });
                return None;
            }
            if tcp_cut {
                self.stats.tiny += 1;
                anomaly(Anomaly::TinyFragment { key });
            }
        } else if p.offset == 8 && p.next == TCP {
            self.stats.tiny += 1;
            anomaly(Anomaly::TinyFragment { key });
        }
        let frag = Incoming {
            offset: p.offset,
            more: p.more,
            ttl: p.unfrag.get(7).copied().unwrap_or(0),
            mac: frame.dst_mac,
            ecn: ecn_bit(p.ecn),
            head: HeadRef::V6 {
                unfrag: p.unfrag,
                nh_off: p.nh_off,
                next: p.next,
            },
            data: p.data,
        };
        self.queue(lookup, p.next, frag, now_us, anomaly)
    }

    /// Drops the queues whose first fragment is [`Limits::timeout_us`] or more before
    /// `now_us`.
    ///
    /// Linux arms the timer for the timeout and its timer wheel fires it on
    /// the next tick of the timeout's level, up to an eighth later (512 ms of
    /// 30 s at HZ 1000, 2 s at HZ 250; 4 s of 60 s): a queue is kept that
    /// long, and one completed after the timeout is returned with
    /// [`Anomaly::MaybeExpired`] (found by an adversarial review: completed
    /// 50 ms after 30 s, acknowledged by the host, it had been dropped, and
    /// a later safe copy judged as read).
    pub fn expire(&mut self, now_us: u64, anomaly: &mut dyn FnMut(Anomaly)) {
        let keep = self
            .limits
            .timeout_us
            .saturating_add(self.limits.timeout_us / 8);
        while let Some((&(created, _), _)) = self.order.first_key_value() {
            if now_us.saturating_sub(created) < keep {
                break;
            }
            if let Some(a) = self.drop_oldest(|key| Anomaly::TimedOut { key }) {
                self.stats.timed_out += 1;
                anomaly(a);
            }
        }
    }

    /// Whether every fragment of `lookup`'s queue repeats one of the datagram
    /// completed under its key within the timeout.
    fn repeats(&self, lookup: &Key) -> bool {
        let (Some(q), Some(done)) = (self.queues.get(lookup), self.done.get(lookup)) else {
            return false;
        };
        q.created_us.saturating_sub(done.at_us) <= self.limits.timeout_us
            && !q.frags.is_empty()
            && q.frags.iter().all(|(&o, f)| {
                done.frags
                    .contains(&(o, f.len() as u32, self.done.hasher().hash_one(&f[..])))
            })
    }

    /// Drops the oldest queue unfinished; its anomaly is
    /// [`Anomaly::Repeated`] where it only repeated a completed datagram,
    /// else `unfinished`'s.
    fn drop_oldest(&mut self, unfinished: fn(Key) -> Anomaly) -> Option<Anomaly> {
        let repeated = self
            .order
            .first_key_value()
            .is_some_and(|(_, k)| self.repeats(k));
        let key = self.pop_oldest()?;
        Some(if repeated {
            self.stats.repeated += 1;
            Anomaly::Repeated { key }
        } else {
            unfinished(key)
        })
    }

    /// Remembers a completed datagram's fragments (see [`Self::repeats`]).
    fn remember(&mut self, lookup: Key, now_us: u64) {
        let Some(q) = self.queues.get(&lookup) else {
            return;
        };
        let h = self.done.hasher();
        let frags = q
            .frags
            .iter()
            .map(|(&o, f)| (o, f.len() as u32, h.hash_one(&f[..])))
            .collect();
        while self.done_order.len() >= MAX_DONE
            || self
                .done_order
                .front()
                .is_some_and(|(at, _)| now_us.saturating_sub(*at) > self.limits.timeout_us)
        {
            let Some((at, k)) = self.done_order.pop_front() else {
                break;
            };
            if self.done.get(&k).is_some_and(|d| d.at_us == at) {
                self.done.remove(&k);
            }
        }
        self.done.insert(
            lookup,
            Done {
                at_us: now_us,
                frags,
            },
        );
        self.done_order.push_back((now_us, lookup));
    }

    /// Bytes charged against [`Limits::max_bytes`] now.
    pub fn held_bytes(&self) -> usize {
        self.held
    }

    /// Queues (datagrams in reassembly) held now.
    pub fn queues(&self) -> usize {
        self.queues.len()
    }

    /// Counters so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Finds or creates the queue, puts the fragment in, then enforces the limits.
    fn queue(
        &mut self,
        lookup: Key,
        proto: u8,
        frag: Incoming<'_>,
        now_us: u64,
        anomaly: &mut dyn FnMut(Anomaly),
    ) -> Option<Datagram> {
        if !self.queues.contains_key(&lookup) {
            self.create(lookup, proto, now_us);
        }
        let out = self.insert(lookup, frag, now_us, anomaly);
        while self.held > self.limits.max_bytes || self.queues.len() > self.limits.max_queues {
            if self.order.is_empty() {
                break;
            }
            if let Some(a) = self.drop_oldest(|key| Anomaly::Evicted { key }) {
                self.stats.evicted += 1;
                anomaly(a);
            }
        }
        out
    }

    fn create(&mut self, lookup: Key, proto: u8, now_us: u64) {
        let serial = self.serial;
        self.serial = self.serial.wrapping_add(1);
        self.order.insert((now_us, serial), lookup);
        self.queues.insert(
            lookup,
            Queue {
                proto,
                created_us: now_us,
                serial,
                rid: 0,
                sure_rid: 0,
                source_rid: 0,
                maybe_restarted: false,
                len: 0,
                last_in: false,
                meat: 0,
                ecn: 0,
                frags: BTreeMap::new(),
                runs: BTreeMap::new(),
                head: None,
                charged: QUEUE_OVERHEAD,
                min_ttl: u8::MAX,
                mac: None,
                macs_differ: false,
            },
        );
        self.held = self.held.saturating_add(QUEUE_OVERHEAD);
        if let Some(peer) = self.peer_key(&lookup) {
            self.peers.entry(peer).or_default().queues += 1;
            self.source_peers.entry(peer.1).or_default().queues += 1;
        }
    }

    /// Removes the oldest queue; returns its reporting key. Always takes one entry off
    /// `order`, so loops over it end.
    fn pop_oldest(&mut self) -> Option<Key> {
        let (_, lookup) = self.order.pop_first()?;
        self.remove(&lookup)
    }

    /// Removes a queue and its accounting; returns its reporting key.
    fn remove(&mut self, lookup: &Key) -> Option<Key> {
        let q = self.queues.remove(lookup)?;
        self.order.remove(&(q.created_us, q.serial));
        self.held = self.held.saturating_sub(q.charged);
        if let Some(peer) = self.peer_key(lookup) {
            if let Some(p) = self.peers.get_mut(&peer) {
                p.queues = p.queues.saturating_sub(1);
                if p.queues == 0 {
                    self.peers.remove(&peer);
                }
            }
            let source = peer.1;
            if let Some(p) = self.source_peers.get_mut(&source) {
                p.queues = p.queues.saturating_sub(1);
                if p.queues == 0 {
                    self.source_peers.remove(&source);
                }
            }
        }
        Some(Key {
            proto: q.proto,
            ..*lookup
        })
    }

    /// The `inet_peer` a queue counts against, if `ipfrag_max_dist` applies.
    fn peer_key(&self, lookup: &Key) -> Option<(u64, IpAddr, IpAddr)> {
        (lookup.src.is_ipv4() && self.limits.max_dist > 0).then_some((
            lookup.scope,
            lookup.src,
            lookup.dst,
        ))
    }

    /// `ip_frag_queue` / `ip6_frag_queue` on an existing queue.
    fn insert(
        &mut self,
        lookup: Key,
        frag: Incoming<'_>,
        now_us: u64,
        anomaly: &mut dyn FnMut(Anomaly),
    ) -> Option<Datagram> {
        // ip_frag_too_far: every fragment that reaches the host bumps its
        // peer's counter. Those sure to reach it are counted by MAC; all of
        // them too, for the distance the host's counter may have moved.
        let rid = match self.peer_key(&lookup) {
            Some(peer) => {
                let p = self.peers.entry(peer).or_default();
                p.rid = p.rid.wrapping_add(1);
                let at = p.sure.iter().position(|(m, _)| *m == frag.mac);
                let at = match at {
                    Some(i) => Some(i),
                    None if p.sure.len() < MAX_PEER_MACS => {
                        p.sure.push((frag.mac, 0));
                        Some(p.sure.len() - 1)
                    }
                    None => None,
                };
                let sure = at.and_then(|i| p.sure.get_mut(i)).map(|(_, n)| {
                    if frag.ttl > LOW_TTL {
                        *n = n.wrapping_add(1);
                    }
                    *n
                });
                let s = self.source_peers.entry(peer.1).or_default();
                s.rid = s.rid.wrapping_add(1);
                Some((p.rid, sure, s.rid))
            }
            None => None,
        };
        let max_dist = self.limits.max_dist;
        let q = self.queues.get_mut(&lookup)?;
        let key = Key {
            proto: q.proto,
            ..lookup
        };
        let before = q.charged;
        let mut restarted = None;
        if let Some((rid, sure, source_rid)) = rid {
            let start = std::mem::replace(&mut q.rid, rid);
            let source_start = std::mem::replace(&mut q.source_rid, source_rid);
            // The sure count is comparable only between fragments to the
            // queue's own MAC (its first fragment's).
            let own_mac = q.mac.is_none_or(|m| frag.mac == Some(m));
            let sure_start = std::mem::replace(&mut q.sure_rid, sure.unwrap_or(0));
            let far_for_sure =
                own_mac && sure.is_some_and(|n| n.wrapping_sub(sure_start) > max_dist);
            if !q.frags.is_empty() && far_for_sure {
                // ip_frag_reinit: forget the fragments and restart the timer.
                restarted = Some((q.created_us, q.serial));
                q.restart(now_us);
            } else if !q.frags.is_empty()
                && (rid.wrapping_sub(start) > max_dist
                    || source_rid.wrapping_sub(source_start) > max_dist)
            {
                q.maybe_restarted = true;
            }
        }
        let verdict = q.add(&frag);
        let after = q.charged;
        self.held = self.held.saturating_sub(before).saturating_add(after);
        if let Some(old) = restarted {
            self.order.remove(&old);
            if let Some(q) = self.queues.get(&lookup) {
                self.order.insert((q.created_us, q.serial), lookup);
            }
            self.stats.too_far += 1;
            anomaly(Anomaly::TooFar { key });
        }
        match verdict {
            Verdict::Held => None,
            Verdict::Drop(fault) => {
                match fault {
                    Fault::Duplicate => self.stats.duplicates += 1,
                    Fault::DuplicateDiffers => {
                        self.stats.duplicates += 1;
                        self.stats.conflicting_duplicates += 1;
                    }
                    _ => self.stats.dropped_fragments += 1,
                }
                anomaly(fault.anomaly(key));
                None
            }
            Verdict::Discard(fault) => {
                self.remove(&lookup);
                if matches!(fault, Fault::Overlap) {
                    self.stats.overlaps += 1;
                }
                self.stats.dropped_queues += 1;
                anomaly(fault.anomaly(key));
                None
            }
            Verdict::Complete => {
                let mixed = self.queues.get(&lookup).is_some_and(|q| q.macs_differ);
                let maybe = self.queues.get(&lookup).is_some_and(|q| q.maybe_restarted);
                let late = self
                    .queues
                    .get(&lookup)
                    .is_some_and(|q| now_us.saturating_sub(q.created_us) >= self.limits.timeout_us);
                let q = self.queues.get(&lookup).map(Queue::assemble);
                if !mixed && matches!(q, Some(Ok(_))) {
                    self.remember(lookup, now_us);
                }
                self.remove(&lookup);
                if mixed {
                    self.stats.dropped_queues += 1;
                    anomaly(Anomaly::MixedStations { key });
                    return None;
                }
                match q? {
                    Ok(out) => {
                        self.stats.reassembled += 1;
                        if maybe {
                            self.stats.maybe_restarted += 1;
                            anomaly(Anomaly::MaybeRestarted { key });
                        }
                        if late {
                            anomaly(Anomaly::MaybeExpired { key });
                        }
                        Some(out)
                    }
                    Err(fault) => {
                        self.stats.dropped_queues += 1;
                        anomaly(fault.anomaly(key));
                        None
                    }
                }
            }
        }
    }
}

impl Queue {
    /// `ip_frag_reinit`.
    fn restart(&mut self, now_us: u64) {
        self.frags.clear();
        self.runs.clear();
        self.head = None;
        self.len = 0;
        self.last_in = false;
        self.meat = 0;
        self.ecn = 0;
        self.charged = QUEUE_OVERHEAD;
        self.created_us = now_us;
        self.min_ttl = u8::MAX;
        self.mac = None;
        self.macs_differ = false;
        self.maybe_restarted = false;
    }

    /// Steps 1 to 6 of the module documentation.
    fn add(&mut self, f: &Incoming<'_>) -> Verdict {
        let v4 = matches!(f.head, HeadRef::V4(_));
        let Some(mut end) = u32::try_from(f.data.len())
            .ok()
            .and_then(|n| f.offset.checked_add(n))
        else {
            return Verdict::Drop(Fault::TooLarge);
        };
        if !v4 && end as usize > MAX_LEN {
            return Verdict::Drop(Fault::TooLarge);
        }
        if !f.more {
            if end < self.len || (self.last_in && end != self.len) {
                return Verdict::Discard(Fault::Inconsistent);
            }
            self.last_in = true;
            self.len = end;
        } else {
            if end % 8 != 0 {
                if !v4 {
                    return Verdict::Drop(Fault::BadLength);
                }
                end &= !7;
            }
            if end > self.len {
                if self.last_in {
                    return Verdict::Discard(Fault::Inconsistent);
                }
                self.len = end;
            }
        }
        // Offsets are multiples of 8, so rounding never takes `end` below `offset`.
        let Some(data) = end
            .checked_sub(f.offset)
            .filter(|&n| n > 0)
            .and_then(|n| f.data.get(..n as usize))
        else {
            return Verdict::Discard(Fault::BadLength);
        };
        match self.place(f.offset, end) {
            Place::Overlap => return Verdict::Discard(Fault::Overlap),
            Place::Duplicate => {
                return Verdict::Drop(if self.same_as_held(f.offset, data) {
                    Fault::Duplicate
                } else {
                    Fault::DuplicateDiffers
                });
            }
            Place::New => {
                self.runs.insert(f.offset, end);
            }
            Place::Append => {
                if let Some(mut last) = self.runs.last_entry() {
                    *last.get_mut() = end;
                }
            }
        }
        self.frags.insert(f.offset, data.into());
        self.charged = self
            .charged
            .saturating_add(data.len())
            .saturating_add(FRAGMENT_OVERHEAD);
        self.meat = self.meat.saturating_add(end - f.offset);
        self.ecn |= f.ecn;
        self.min_ttl = self.min_ttl.min(f.ttl);
        if let Some(m) = f.mac {
            match self.mac {
                None => self.mac = Some(m),
                Some(first) => self.macs_differ |= first != m,
            }
        }
        if f.offset == 0 {
            let head = match f.head {
                HeadRef::V4(h) => Head::V4(h.into()),
                HeadRef::V6 {
                    unfrag,
                    nh_off,
                    next,
                } => Head::V6 {
                    unfrag: unfrag.into(),
                    nh_off,
                    next,
                },
            };
            let cost = match &head {
                Head::V4(h) => h.len(),
                Head::V6 { unfrag, .. } => unfrag.len(),
            };
            self.charged = self.charged.saturating_add(cost);
            self.head = Some(head);
        }
        if self.head.is_some() && self.last_in && self.meat == self.len {
            Verdict::Complete
        } else {
            Verdict::Held
        }
    }

    /// `inet_frag_queue_insert`'s decision for `[offset, end)`.
    fn place(&self, offset: u32, end: u32) -> Place {
        let Some((_, &last_end)) = self.runs.last_key_value() else {
            return Place::New;
        };
        if last_end < end {
            return if offset < last_end {
                Place::Overlap
            } else if offset == last_end {
                Place::Append
            } else {
                Place::New
            };
        }
        // Runs are disjoint: the last one starting before `end` is the only candidate
        // for holding the fragment whole; if it misses, no run touches the fragment.
        match self.runs.range(..end).next_back() {
            Some((&start, &run_end)) if run_end > offset => {
                if offset >= start && end <= run_end {
                    Place::Duplicate
                } else {
                    Place::Overlap
                }
            }
            _ => Place::New,
        }
    }

    /// Whether `data` at `offset` equals the held bytes it lies on (Linux does not
    /// look; the monitor reports a difference).
    fn same_as_held(&self, offset: u32, data: &[u8]) -> bool {
        let lo = offset as usize;
        let hi = lo.saturating_add(data.len());
        for (&start, held) in self
            .frags
            .range(..u32::try_from(hi).unwrap_or(u32::MAX))
            .rev()
        {
            let s = start as usize;
            let e = s.saturating_add(held.len());
            if e <= lo {
                break;
            }
            let (a, b) = (s.max(lo), e.min(hi));
            match (held.get(a - s..b - s), data.get(a - lo..b - lo)) {
                (Some(x), Some(y)) if x == y => {}
                _ => return false,
            }
        }
        true
    }

    /// `ip_frag_reasm` / `ip6_frag_reasm`.
    fn assemble(&self) -> Result<Datagram, Fault> {
        // ip_frag_ecn_table: not-ECT mixed with anything else is invalid.
        if self.ecn & ECN_NOT_ECT != 0 && self.ecn != ECN_NOT_ECT {
            return Err(Fault::Inconsistent);
        }
        let ce = if self.ecn & ECN_CE != 0 { 3 } else { 0 };
        let parts: Vec<&[u8]> = self.frags.values().map(|d| &d[..]).collect();
        let (mut out, fragmentable_at) = match &self.head {
            Some(Head::V4(header)) => (
                build_v4(header, ce, &parts).ok_or(Fault::TooLarge)?,
                header.len(),
            ),
            Some(Head::V6 {
                unfrag,
                nh_off,
                next,
            }) => (
                build_v6(unfrag, *nh_off, *next, ce, &parts).ok_or(Fault::TooLarge)?,
                unfrag.len(),
            ),
            None => return Err(Fault::Inconsistent),
        };
        // The lowest TTL of the fragments (the header checksum covers it).
        if let Some(Head::V4(header)) = &self.head {
            if let Some(t) = out.get_mut(8) {
                *t = self.min_ttl;
            }
            put16(&mut out, 10, 0);
            let sum = checksum(out.get(..header.len()).unwrap_or_default());
            put16(&mut out, 10, sum);
        } else if let Some(t) = out.get_mut(7) {
            *t = self.min_ttl;
        }
        Ok(Datagram {
            ip: out,
            fragmentable_at,
        })
    }
}

/// An unfragmented IPv4 packet from the first fragment's header and the data; None
/// if over 65535 bytes.
fn build_v4(header: &[u8], ce: u8, parts: &[&[u8]]) -> Option<Vec<u8>> {
    let total = parts
        .iter()
        .try_fold(header.len(), |n, p| n.checked_add(p.len()))?;
    let total16 = u16::try_from(total).ok()?;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(header);
    put16(&mut out, 2, total16);
    put16(&mut out, 6, 0);
    if let Some(tos) = out.get_mut(1) {
        *tos |= ce;
    }
    put16(&mut out, 10, 0);
    let sum = checksum(out.get(..header.len()).unwrap_or_default());
    put16(&mut out, 10, sum);
    for p in parts {
        out.extend_from_slice(p);
    }
    Some(out)
}

/// An IPv6 packet from the unfragmentable part, with the Fragment header's next
/// header put where the Fragment header was named, and the data; None if the
/// payload would exceed 65535 bytes.
fn build_v6(unfrag: &[u8], nh_off: usize, next: u8, ce: u8, parts: &[&[u8]]) -> Option<Vec<u8>> {
    let ext = unfrag.len().checked_sub(IPV6_HEADER)?;
    let payload = parts.iter().try_fold(ext, |n, p| n.checked_add(p.len()))?;
    let payload16 = u16::try_from(payload).ok()?;
    let mut out = Vec::with_capacity(unfrag.len().saturating_add(payload));
    out.extend_from_slice(unfrag);
    *out.get_mut(nh_off)? = next;
    put16(&mut out, 4, payload16);
    if let Some(b) = out.get_mut(1) {
        *b |= ce << 4;
    }
    for p in parts {
        out.extend_from_slice(p);
    }
    Some(out)
}

struct V4<'a> {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    id: u16,
    proto: u8,
    offset: u32,
    more: bool,
    ecn: u8,
    header: &'a [u8],
    data: &'a [u8],
}

/// The fields of an IPv4 fragment Linux would pass to `ip_defrag`.
fn parse_v4(ip: &[u8]) -> Option<V4<'_>> {
    let b0 = *ip.first()?;
    let ihl = usize::from(b0 & 0x0f) * 4;
    if b0 >> 4 != 4 || ihl < 20 {
        return None;
    }
    let total = usize::from(be16(ip, 2)?);
    if total < ihl {
        return None;
    }
    let ip = ip.get(..total)?;
    let header = ip.get(..ihl)?;
    if checksum(header) != 0 {
        return None;
    }
    let fo = be16(ip, 6)?;
    let more = fo & 0x2000 != 0;
    let offset = u32::from(fo & 0x1fff) * 8;
    if !more && offset == 0 {
        return None;
    }
    Some(V4 {
        src: Ipv4Addr::from(<[u8; 4]>::try_from(ip.get(12..16)?).ok()?),
        dst: Ipv4Addr::from(<[u8; 4]>::try_from(ip.get(16..20)?).ok()?),
        id: be16(ip, 4)?,
        proto: *ip.get(9)?,
        offset,
        more,
        ecn: ip.get(1)? & 3,
        header,
        data: ip.get(ihl..)?,
    })
}

struct V6<'a> {
    src: Ipv6Addr,
    dst: Ipv6Addr,
    id: u32,
    /// The Fragment header's next header.
    next: u8,
    offset: u32,
    more: bool,
    ecn: u8,
    /// The whole packet, trimmed to its payload length.
    packet: &'a [u8],
    unfrag: &'a [u8],
    nh_off: usize,
    data: &'a [u8],
}

/// The fields of an IPv6 packet's Fragment header, reached as Linux's input path
/// reaches it.
fn parse_v6(ip: &[u8]) -> Option<V6<'_>> {
    if ip.first()? >> 4 != 6 {
        return None;
    }
    let payload = usize::from(be16(ip, 4)?);
    if payload == 0 {
        // Jumbogram (RFC 2675): Linux refuses a Fragment header in one.
        return None;
    }
    let ip = ip.get(..IPV6_HEADER + payload)?;
    let mut next = *ip.get(6)?;
    let mut nh_off = 6;
    let mut pos = IPV6_HEADER;
    while next != FRAGMENT {
        match next {
            HOP_BY_HOP if pos == IPV6_HEADER => {}
            ROUTING | DEST_OPTS => {}
            _ => return None,
        }
        let len = (usize::from(*ip.get(pos + 1)?) + 1) * 8;
        next = *ip.get(pos)?;
        nh_off = pos;
        pos += len;
    }
    let fh = ip.get(pos..pos + 8)?;
    let fo = be16(fh, 2)?;
    Some(V6 {
        src: Ipv6Addr::from(<[u8; 16]>::try_from(ip.get(8..24)?).ok()?),
        dst: Ipv6Addr::from(<[u8; 16]>::try_from(ip.get(24..40)?).ok()?),
        id: u32::from_be_bytes(fh.get(4..8)?.try_into().ok()?),
        next: *fh.first()?,
        offset: u32::from(fo & 0xfff8),
        more: fo & 1 != 0,
        ecn: (ip.get(1)? >> 4) & 3,
        packet: ip,
        unfrag: ip.get(..pos)?,
        nh_off,
        data: ip.get(pos + 8..)?,
    })
}

/// `ipv6frag_thdr_truncated` on a first fragment: (whether Linux drops it for lacking
/// the upper-layer header, whether a TCP header's options are cut).
fn first_fragment_v6(ip: &[u8]) -> (bool, bool) {
    let Some(&first) = ip.get(6) else {
        return (false, false);
    };
    let Some((start, next, frag_off)) = skip_exthdr(ip, IPV6_HEADER, first) else {
        return (false, false);
    };
    if frag_off & 0xfff8 != 0 {
        return (false, false);
    }
    let need = match next {
        TCP => 20,
        UDP | ICMPV6 => 8,
        _ => 1,
    };
    if start.saturating_add(need) > ip.len() {
        return (true, false);
    }
    (
        false,
        next == TCP && tcp_header_cut(ip.get(start..).unwrap_or_default()),
    )
}

/// `ipv6_skip_exthdr` (net/ipv6/exthdrs_core.c): (offset of the upper-layer header,
/// its protocol, the last Fragment header's offset field); None where Linux returns
/// -1 (no next header, or a header start beyond the packet).
fn skip_exthdr(ip: &[u8], mut start: usize, mut next: u8) -> Option<(usize, u8, u16)> {
    let mut frag_off = 0;
    while matches!(
        next,
        HOP_BY_HOP | ROUTING | FRAGMENT | AUTH | NO_NEXT | DEST_OPTS
    ) {
        if next == NO_NEXT {
            return None;
        }
        let hdr = ip.get(start..start.checked_add(2)?)?;
        let len = if next == FRAGMENT {
            frag_off = be16(ip, start + 2)?;
            if frag_off & !7 != 0 {
                break;
            }
            8
        } else if next == AUTH {
            (usize::from(*hdr.get(1)?) + 2) * 4
        } else {
            (usize::from(*hdr.get(1)?) + 1) * 8
        };
        next = *hdr.first()?;
        start = start.checked_add(len)?;
    }
    Some((start, next, frag_off))
}

/// Whether `tcp` (the start of a TCP segment) lacks part of the header its data
/// offset announces, or the fixed 20 bytes.
fn tcp_header_cut(tcp: &[u8]) -> bool {
    match tcp.get(12) {
        Some(&b) if tcp.len() >= 20 => usize::from(b >> 4) * 4 > tcp.len(),
        _ => true,
    }
}

/// `ip4_frag_ecn` / `ip6_frag_ecn`: one bit per ECN codepoint.
fn ecn_bit(ecn: u8) -> u8 {
    1 << (ecn & 3)
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    if let Some(s) = b.get_mut(at..at + 2) {
        s.copy_from_slice(&v.to_be_bytes());
    }
}

/// The Internet checksum (RFC 1071) of `b`: 0 over a header whose checksum is right.
fn checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = b
        .chunks(2)
        .map(|c| match c {
            [x, y] => u32::from(u16::from_be_bytes([*x, *y])),
            [x] => u32::from(*x) << 8,
            _ => 0,
        })
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
