//! TCP stream reassembly (sans-IO): one [`Stream`] per direction of a connection
//! turns the segments a capture shows, in whatever order it shows them, into
//! in-order bytes for the protocol parsers, with an explicit [`Chunk::Gap`] wherever
//! the capture never showed the bytes. Parsers can then resynchronise or give up
//! knowingly instead of parsing two distant pieces of a stream as one.
//!
//! # Offsets
//!
//! Sequence numbers wrap at 2^32, so positions are kept as 64-bit stream offsets:
//! offset 0 is the byte after the SYN, or the first byte seen when the capture
//! started mid-stream. A segment is placed by its signed 32-bit distance from the
//! next expected sequence number (serial number arithmetic, RFC 1982, as RFC 9293
//! 3.4 compares sequence numbers).
//!
//! A segment more than [`WINDOW`] (1 GiB, the largest window RFC 7323 2.3 allows)
//! ahead of or behind that point cannot be in this stream's current window: it is
//! ignored and counted in [`Stats::out_of_window`], not taken as a resync, so one
//! stray or forged segment cannot make the reassembler skip real data. A flow that
//! really jumped that far stalls visibly on that counter; the caller ends it with
//! [`Stream::flush`] and starts a new [`Stream`].
//!
//! # Overlaps: what the receiving host keeps
//!
//! Where copies of the same bytes differ, the host's TCP stack decides which one
//! its application reads, and stacks differ (target-based reassembly, Novak and
//! Sturges 2007; Suricata's and Snort's os-policy). [`Policy`] names the host's:
//!
//! - [`Policy::Linux`] (the default) is the kernel's out-of-order queue
//!   (net/ipv4/tcp_input.c `tcp_data_queue_ofo`, `tcp_ofo_queue`), step for step:
//!   a segment wholly inside a queued one is dropped; one that starts where a
//!   queued one starts and ends later replaces it; one that starts before queued
//!   ones removes those it covers; a segment that starts exactly where a queued
//!   one ends is coalesced into it (so it no longer counts as starting there);
//!   partial overlaps are all kept and read in order of their start, the earlier
//!   start winning. In-order data wins over anything queued. The corpus under
//!   tests/evasion checks this against a live kernel.
//! - [`Policy::First`]: the first copy of every byte wins.
//! - [`Policy::Last`]: the last copy of every byte wins (bytes already delivered
//!   in order excepted: no stack takes those back).
//! - [`Policy::Bsd`]: the first copy wins, unless the later segment starts
//!   before the held piece it overlaps (Suricata's `bsd`).
//!
//! Whichever copy wins, a later copy that differs from held bytes counts in
//! [`Stats::overlap_conflicts`] and is described in [`Stats::last_conflict`]: the
//! analyser reports it (another stack, or a path that lost one copy, would read
//! the other). Delivered bytes are not retained (in-order data is handed over
//! without a copy); a copy of bytes already delivered is compared by sum with
//! the last [`RECENT`] segments it covers whole ([`Stream::segment_fp`]), which
//! every policy keeps as it read them.
//!
//! # Urgent data
//!
//! A Linux receiver whose application does not set SO_OOBINLINE (the default)
//! takes the byte an urgent pointer marks out of the stream (`tcp_check_urg`,
//! `tcp_recvmsg`: BSD semantics, the byte before the pointer). [`Stream::urgent`]
//! marks it and delivery skips it; one mark at a time, as the kernel keeps.
//!
//! # Limits and gaps
//!
//! Only out-of-order data is copied and held, bounded by [`Limits`]. When a new
//! segment takes the held data past a limit, the reassembler stops waiting for the
//! hole: it delivers a [`Chunk::Gap`] for the missing bytes, then the held data up
//! to the next hole, and repeats until back within the limits ([`Stats::limit_hits`]).
//! Bytes held thus never exceed the limits once [`Stream::segment`] returns, and
//! exceed them by at most that segment's bytes during the call. A hole's bytes that
//! arrive after its gap was delivered count as retransmitted.
//!
//! # Odd segments
//!
//! - SYN: its sequence number is the ISN; data on it (TCP Fast Open) starts at
//!   ISN+1. A repeated SYN is an ordinary segment. A SYN with another ISN (port
//!   reuse) is not a resync either: its data lands wherever its sequence number
//!   falls, usually out of window. Telling connections apart is the caller's job.
//! - Zero-length segments deliver nothing; only their FIN matters.
//! - FIN marks the end of the stream at its sequence number plus data length; data
//!   on the FIN segment is ordinary data. The first FIN wins, as data does: bytes
//!   beyond it are dropped (the receiver drops them too) and counted in
//!   [`Stats::after_fin_bytes`]. A FIN that would cut bytes already seen, or a
//!   second FIN elsewhere, counts in [`Stats::overlap_conflicts`] and its position
//!   is ignored. A FIN out of order waits for the bytes before it, as Linux's
//!   out-of-order queue holds it with its segment: data that replaces or covers
//!   that segment there (longer from the same start, or from before it reaching
//!   past the FIN; or queued already over the FIN's place) removes the FIN, and
//!   the bytes after it are read; such a FIN also counts as a conflict. A FIN
//!   whose fate the capture cannot show is dropped and described as a
//!   [`Conflict`] with `fin` set.
//!   [`Stream::flush`] reports bytes missing before the FIN as a gap.

use std::collections::BTreeMap;

/// How far (in bytes) a segment may lie ahead of or behind the next expected
/// sequence number: 2^30, the largest window RFC 7323 2.3 allows (scale 14).
pub const WINDOW: u64 = 1 << 30;

/// How the receiving host resolves overlapping data (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// The Linux kernel's out-of-order queue.
    #[default]
    Linux,
    /// The first copy of every byte wins.
    First,
    /// The last copy wins.
    Last,
    /// The first copy wins unless the later segment starts before it.
    Bsd,
}

impl Policy {
    /// Its name in configuration and alerts.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Linux => "linux",
            Policy::First => "first",
            Policy::Last => "last",
            Policy::Bsd => "bsd",
        }
    }
}

impl std::str::FromStr for Policy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "linux" => Policy::Linux,
            "first" | "windows" => Policy::First,
            "last" => Policy::Last,
            "bsd" => Policy::Bsd,
            _ => {
                return Err(format!(
                    "unknown reassembly policy {s:?} (linux, first, last, bsd)"
                ))
            }
        })
    }
}

/// Where held and new copies of the same bytes differed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conflict {
    /// Stream offset of the first differing overlap.
    pub at: u64,
    /// Bytes in that overlap.
    pub len: u64,
    /// The host's policy kept the new copy (else the held one).
    pub kept_new: bool,
    /// Not data but a FIN at `at` that the host may or may not keep (see
    /// `Stream::fin_doubt`): the bytes after it were judged.
    pub fin: bool,
}

/// What became of an urgent pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgent {
    /// The marked byte will be taken out of the stream.
    Marked,
    /// It replaced a mark whose byte had not arrived: that byte is read inline by
    /// this model, but a host whose application read in between did otherwise.
    Replaced,
    /// It points at bytes already delivered: whether the application had read
    /// them when it arrived decides whether one is taken out (unknowable here).
    Behind,
    /// Not before the current mark, or the stream has no start yet: no effect.
    Ignored,
}

/// How many recent segments' sums are kept for comparing retransmissions.
pub const RECENT: usize = 8;

/// What one held piece costs beyond its bytes (a map node and an allocation),
/// charged against [`Limits::max_buffered_bytes`]: a flood of one-byte pieces is
/// bounded by memory, not only by count.
pub const PIECE_COST: usize = 64;

/// FINs held out of order at once (Linux holds each with its segment): past
/// it the highest is forgotten, and named as a doubt ([`Conflict::fin`]).
pub const MAX_PENDING_FINS: usize = 8;

/// Bounds on the out-of-order data held for one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes held waiting for a hole to fill.
    pub max_buffered_bytes: usize,
    /// Separate pieces held (each costs a map node and an allocation beyond its bytes).
    pub max_segments: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_buffered_bytes: 1024 * 1024,
            max_segments: 512,
        }
    }
}

/// What a [`Stream`] hands to its consumer, in stream order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk<'a> {
    /// The next bytes of the stream.
    Data(&'a [u8]),
    /// The next `len` bytes of the stream were never seen.
    Gap {
        /// Number of missing bytes.
        len: u64,
    },
}

/// Counters for one direction, for telemetry and anomaly rules.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Segments passed to [`Stream::segment`], whatever became of them.
    pub segments: u64,
    /// Segments with data that arrived with a hole before them.
    pub out_of_order: u64,
    /// Bytes discarded because they had been delivered or were held already (or lie
    /// before the first segment of a mid-stream capture).
    pub retransmitted_bytes: u64,
    /// Segments whose overlap differed from the bytes seen first, and FINs that
    /// disagreed with the data or with an earlier FIN.
    pub overlap_conflicts: u64,
    /// [`Chunk::Gap`]s delivered.
    pub gaps: u64,
    /// Bytes reported missing in gaps.
    pub gap_bytes: u64,
    /// Gaps forced by [`Limits`] rather than by [`Stream::flush`].
    pub limit_hits: u64,
    /// Segments ignored for lying more than [`WINDOW`] from the expected sequence number.
    pub out_of_window: u64,
    /// Bytes dropped for lying beyond the FIN.
    pub after_fin_bytes: u64,
    /// Urgent bytes taken out of the stream.
    pub urgent_removed: u64,
    /// The latest conflicting overlap.
    pub last_conflict: Option<Conflict>,
    /// Bytes that arrived for a stretch declared lost because the receiver
    /// had acknowledged it ([`Stream::acked`]): read by the host, not judged.
    pub late_fill_bytes: u64,
}

/// Reassembly state for one direction of one TCP connection.
pub struct Stream {
    limits: Limits,
    policy: Policy,
    /// Stream offset of the urgent byte to take out, once it is delivered.
    urgent: Option<u64>,
    /// Sequence number of stream offset 0; `None` until the first segment.
    base: Option<u32>,
    midstream: bool,
    /// Next stream offset to deliver: everything before it went out as data or gap.
    next: u64,
    /// Out-of-order segments by stream offset, all after `next`, non-empty. Under
    /// [`Policy::Linux`] they may overlap (as in the kernel's queue); under the
    /// others they are disjoint.
    pending: BTreeMap<u64, Vec<u8>>,
    /// Bytes in `pending`.
    buffered: usize,
    /// The last [`RECENT`] segments with data: stream offset, length, payload sum.
    recent: [(u64, u64, u16); RECENT],
    /// Segments pushed into `recent` so far.
    recent_at: usize,
    /// Consecutive copies of delivered bytes joined so far (start, end, sum):
    /// a retransmission cut into other pieces than the segment it repeats is
    /// compared once the pieces cover it whole.
    rejoin: Option<(u64, u64, u16)>,
    /// No held piece is longer (reset when nothing is held): overlap searches
    /// start this far before a new segment instead of at the first piece.
    longest: u64,
    /// Held pieces overlap in part (reset when nothing is held): Linux's
    /// queue then joins segments by the order of its tree, which the capture
    /// does not show, so where a FIN falls among them is a doubt.
    overlapped: bool,
    /// The doubt about a FIN among overlapping pieces was recorded once.
    fin_doubted: bool,
    fin_seen: bool,
    /// Stream offset of the FIN that was accepted.
    fin_at: Option<u64>,
    /// FINs seen out of order, lowest first, each with where the queued
    /// segment that carries it starts (Linux queues a FIN with its segment, or
    /// coalesced into the one it continues): the lowest is taken when `next`
    /// reaches it exactly. At most [`MAX_PENDING_FINS`].
    fins: Vec<(u64, u64)>,
    /// The last holes [`Stream::acked`] declared (start, end): bytes arriving
    /// for them later are reported, not taken silently as retransmissions.
    acked_holes: [(u64, u64); 4],
    acked_holes_at: usize,
    stats: Stats,
}

/// Held bytes are clinical payload (HL7, DICOM): `Debug` shows sizes, never bytes,
/// so a stray `{:?}` in a log cannot leak patient data.
impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("limits", &self.limits)
            .field("policy", &self.policy)
            .field("urgent", &self.urgent)
            .field("base", &self.base)
            .field("midstream", &self.midstream)
            .field("next", &self.next)
            .field("buffered_bytes", &self.buffered)
            .field("buffered_segments", &self.pending.len())
            .field("fin_seen", &self.fin_seen)
            .field("fin_at", &self.fin_at)
            .field("stats", &self.stats)
            .finish()
    }
}

impl Stream {
    /// An empty stream for a Linux receiver; the first segment fixes where it starts.
    pub fn new(limits: Limits) -> Self {
        Self::with_policy(limits, Policy::Linux)
    }

    /// An empty stream whose receiver resolves overlaps by `policy`.
    pub fn with_policy(limits: Limits, policy: Policy) -> Self {
        Stream {
            limits,
            policy,
            urgent: None,
            base: None,
            midstream: false,
            next: 0,
            pending: BTreeMap::new(),
            buffered: 0,
            recent: [(0, 0, 0); RECENT],
            recent_at: 0,
            rejoin: None,
            longest: 0,
            overlapped: false,
            fin_doubted: false,
            fin_seen: false,
            fin_at: None,
            fins: Vec::new(),
            acked_holes: [(0, 0); 4],
            acked_holes_at: 0,
            stats: Stats::default(),
        }
    }

    /// One TCP segment of this direction. `syn` = the SYN flag (its sequence number
    /// is the ISN; data starts at seq+1), `fin` = FIN flag. In-order bytes, and gaps
    /// forced by the limits, go to `deliver` before this returns.
    pub fn segment(
        &mut self,
        seq: u32,
        syn: bool,
        fin: bool,
        payload: &[u8],
        deliver: &mut dyn FnMut(Chunk<'_>),
    ) {
        self.segment_fp(seq, syn, fin, payload, None, deliver);
    }

    /// [`Self::segment`] with the payload's one's-complement sum (`fp`, from
    /// the checksum pass): the last segments' sums are kept, so that a later
    /// copy of bytes already delivered is compared with what was read (a
    /// difference is a conflict, though every policy keeps what it read).
    pub fn segment_fp(
        &mut self,
        seq: u32,
        syn: bool,
        fin: bool,
        payload: &[u8],
        fp: Option<u16>,
        deliver: &mut dyn FnMut(Chunk<'_>),
    ) {
        self.stats.segments = self.stats.segments.saturating_add(1);
        // The SYN occupies one sequence number (RFC 9293 3.4).
        let data_seq = if syn { seq.wrapping_add(1) } else { seq };
        let base = match self.base {
            Some(base) => base,
            None => {
                self.midstream = !syn;
                self.base = Some(data_seq);
                data_seq
            }
        };
        // Truncating `next` is the point: sequence numbers are offsets modulo 2^32.
        let expected = base.wrapping_add(self.next as u32);
        let delta = i64::from(data_seq.wrapping_sub(expected) as i32);
        if delta.unsigned_abs() > WINDOW {
            self.stats.out_of_window = self.stats.out_of_window.saturating_add(1);
            return;
        }
        let len = payload.len() as u64;
        // Where the segment ends (a FIN's position), unless that is behind `next`.
        let end = u64::try_from(delta.saturating_add(i64::try_from(len).unwrap_or(i64::MAX)))
            .ok()
            .map(|e| self.next.saturating_add(e));
        // Bytes before `next` were delivered already, or precede a mid-stream start.
        let (start, behind) = if delta < 0 {
            (self.next, delta.unsigned_abs().min(len))
        } else {
            (self.next.saturating_add(delta.unsigned_abs()), 0)
        };
        self.stats.retransmitted_bytes = self.stats.retransmitted_bytes.saturating_add(behind);
        if behind > 0 && self.acked_holes_at > 0 {
            // The bytes behind `next` start at `next - |delta|`.
            let from = self.next.saturating_sub(delta.unsigned_abs());
            let to = from.saturating_add(behind);
            let late: u64 = self
                .acked_holes
                .iter()
                .map(|&(a, b)| b.min(to).saturating_sub(a.max(from)))
                .sum();
            self.stats.late_fill_bytes = self.stats.late_fill_bytes.saturating_add(late);
        }
        if let Some(fp) = fp.filter(|_| len > 0) {
            if delta < 0 {
                let from = self.next.checked_sub(delta.unsigned_abs());
                if let Some(from) = from {
                    self.compare_delivered(from, payload);
                }
            } else {
                self.recent[self.recent_at % RECENT] = (start, len, fp);
                self.recent_at = self.recent_at.wrapping_add(1);
            }
        }
        let mut data = part(payload, behind, len);
        if let Some(fin_at) = self.fin_at {
            let keep = fin_at.saturating_sub(start).min(data.len() as u64);
            self.stats.after_fin_bytes = self
                .stats
                .after_fin_bytes
                .saturating_add(data.len() as u64 - keep);
            data = part(data, 0, keep);
        }
        // Where the whole segment starts, before bytes already read are cut.
        let from = if delta < 0 {
            self.next.saturating_sub(delta.unsigned_abs())
        } else {
            start
        };
        if len > 0 {
            self.fin_overrun(from, from.saturating_add(len));
        }
        if !data.is_empty() {
            if start > self.next {
                self.stats.out_of_order = self.stats.out_of_order.saturating_add(1);
            }
            self.place(start, data, fin, deliver);
        }
        if fin {
            self.on_fin(end, from, len == 0);
        }
        // A FIN among queued segments that overlap in part, with data queued
        // beyond it: which segment Linux joins it to, or lets pass over it,
        // depends on its tree, and with it whether those bytes are read
        // (found by two reviews: FINs kept that the host lost, and lost that
        // it kept). Named once. A sender's own retransmissions cut otherwise
        // queue nothing past its FIN.
        if self.overlapped && !self.fin_doubted && (fin || !self.fins.is_empty()) {
            // Data past a FIN: queued, or this segment's own (a copy reaching
            // over the FIN's sequence number, which a tree walk may let
            // remove it).
            let held_end = self.held_end();
            let past =
                |at: u64| held_end > at || (len > 0 && from <= at && at < from.saturating_add(len));
            let beyond = self
                .fins
                .iter()
                .map(|&(at, _)| at)
                .chain(end.filter(|_| fin))
                .find(|&at| past(at));
            if let Some(at) = beyond {
                self.fin_doubted = true;
                self.stats.overlap_conflicts = self.stats.overlap_conflicts.saturating_add(1);
                self.fin_doubt(at);
            }
        }
        self.enforce_limits(deliver);
    }

    /// End of the flow (FIN/RST seen on both sides, timeout, end of capture):
    /// whatever is held is delivered in order with [`Chunk::Gap`]s for the holes,
    /// then a gap for any bytes missing before the FIN. The stream stays usable.
    pub fn flush(&mut self, deliver: &mut dyn FnMut(Chunk<'_>)) {
        while let Some(&first) = self.pending.keys().next() {
            self.gap_to(first, deliver);
            self.drain(deliver);
        }
        if let Some(fin_at) = self.fin_at.or(self.pending_fin()) {
            self.gap_to(fin_at, deliver);
        }
    }

    /// The receiver's overlap policy.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Counters so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// True if the first segment seen had no SYN: offset 0 is wherever the capture
    /// came in, not the start of the connection, so parsers must find a boundary.
    pub fn midstream(&self) -> bool {
        self.midstream
    }

    /// True once any segment of this direction carried FIN.
    pub fn fin_seen(&self) -> bool {
        self.fin_seen
    }

    /// True once the FIN has been reached: every byte before it delivered (or
    /// reported as a gap). A FIN seen early, ahead of missing data, is not finished.
    pub fn finished(&self) -> bool {
        self.fin_at.is_some_and(|f| f <= self.next)
    }

    /// Stream offset reached: bytes delivered as data plus bytes reported as gaps.
    pub fn delivered(&self) -> u64 {
        self.next
    }

    /// Out-of-order bytes held now, plus [`PIECE_COST`] per piece (the memory
    /// [`Limits::max_buffered_bytes`] bounds).
    pub fn buffered_bytes(&self) -> usize {
        self.buffered
    }

    /// Out-of-order pieces held now (what [`Limits::max_segments`] bounds).
    pub fn buffered_segments(&self) -> usize {
        self.pending.len()
    }

    /// The sequence number of the next byte expected, once the start is known.
    pub fn next_seq(&self) -> Option<u32> {
        // Truncating is the point: sequence numbers are offsets modulo 2^32.
        self.base.map(|b| b.wrapping_add(self.next as u32))
    }

    /// The sequence number just past the highest byte held or delivered.
    pub fn highest_seq(&self) -> Option<u32> {
        let end = self.held_end();
        self.base.map(|b| b.wrapping_add(end as u32))
    }

    /// Whether the receiver's acknowledgement `ack` covers bytes not yet
    /// delivered here (cheap: the caller does the work only then).
    pub fn behind_ack(&self, ack: u32) -> bool {
        self.next_seq().is_some_and(|n| {
            let ahead = ack.wrapping_sub(n) as i32;
            ahead > 1 || (ahead == 1 && !self.pending.is_empty())
        })
    }

    /// The receiver acknowledged every byte before `ack`: what it read and the
    /// capture never showed (lost at the tap, or by the capture socket's full
    /// ring) is a hole now rather than something to wait for, and the pieces
    /// held up to `ack` are delivered after it. A lone missing sequence number
    /// with nothing held after it is left alone: it may be the FIN's, whose
    /// packet was the one lost. Only an acknowledgement the sender's stack
    /// accepted (one that passed the analyser's checks) may be given here.
    pub fn acked(&mut self, ack: u32, deliver: &mut dyn FnMut(Chunk<'_>)) {
        let Some(n) = self.next_seq() else {
            return;
        };
        let ahead = ack.wrapping_sub(n) as i32;
        if ahead <= 0 || ahead.unsigned_abs() > WINDOW as u32 {
            return;
        }
        let mut to = self.next + u64::from(ahead.unsigned_abs());
        // Where the FIN is known, the bytes before it are data, all of them.
        let mut exact = false;
        if let Some(fin) = self.fin_at.or(self.pending_fin()).filter(|&f| f < to) {
            to = fin;
            exact = true;
        }
        while self.next < to {
            let from = self.next;
            let (until, more) = match self.pending.keys().next() {
                Some(&first) if first <= self.next => {
                    self.drain(deliver);
                    continue;
                }
                Some(&first) if first <= to => (first, true),
                _ => (if exact { to } else { to - 1 }, false),
            };
            self.gap_to(until, deliver);
            if until > from {
                self.acked_holes[self.acked_holes_at % 4] = (from, until);
                self.acked_holes_at = self.acked_holes_at.wrapping_add(1);
            }
            if !more {
                break;
            }
            self.drain(deliver);
        }
        self.settle_fin();
    }

    /// Restarts the stream at `isn` (the SYN the peer acknowledged), if nothing
    /// was delivered or held yet: a decoy SYN seen first must not fix the start.
    pub fn rebase(&mut self, isn: u32) -> bool {
        if self.next != 0 || !self.pending.is_empty() {
            return false;
        }
        self.base = Some(isn.wrapping_add(1));
        self.midstream = false;
        true
    }

    /// An urgent pointer `ptr` on a segment at `seq` (URG set): marks the byte a
    /// Linux receiver takes out of the stream.
    pub fn urgent(&mut self, seq: u32, ptr: u16) -> Urgent {
        let Some(base) = self.base else {
            return Urgent::Ignored;
        };
        // Linux (tcp_stdurg off): the byte at seq + ptr - 1.
        let at_seq = seq.wrapping_add(u32::from(ptr.max(1)) - 1);
        let expected = base.wrapping_add(self.next as u32);
        let delta = i64::from(at_seq.wrapping_sub(expected) as i32);
        if delta < 0 {
            return Urgent::Behind;
        }
        let at = self.next.saturating_add(delta.unsigned_abs());
        match self.urgent {
            Some(u) if at <= u => Urgent::Ignored,
            Some(_) => {
                self.urgent = Some(at);
                Urgent::Replaced
            }
            None => {
                self.urgent = Some(at);
                Urgent::Marked
            }
        }
    }

    fn held_end(&self) -> u64 {
        self.pending
            .iter()
            .map(|(&k, h)| k.saturating_add(h.len() as u64))
            .max()
            .unwrap_or(self.next)
            .max(self.next)
    }

    /// Puts `data` (at stream offset `start`, not before `next`) in place by the
    /// receiver's policy; in-order bytes are delivered straight from `data`.
    /// `fin`: the segment carries a FIN after `data`.
    fn place(&mut self, start: u64, data: &[u8], fin: bool, deliver: &mut dyn FnMut(Chunk<'_>)) {
        let end = start.saturating_add(data.len() as u64);
        // The hot path: in order with nothing held, no copy and no allocation.
        if start == self.next && self.pending.is_empty() {
            emit(&mut self.urgent, &mut self.stats, start, data, deliver);
            self.next = end;
            self.settle_fin();
            return;
        }
        self.compare(start, data);
        match self.policy {
            // In order: it starts before everything held, so it wins.
            Policy::Linux | Policy::Last | Policy::Bsd if start == self.next => {
                emit(&mut self.urgent, &mut self.stats, start, data, deliver);
                self.next = end;
                self.settle_fin();
                if fin {
                    // Read with its segment, before the queue (`tcp_fin` runs
                    // before `tcp_ofo_queue`): what is queued is never read
                    // (found by a review: the queue was read first and the
                    // FIN then fell behind it).
                    self.on_fin(Some(end), start, false);
                }
            }
            Policy::Linux => self.insert_linux(start, data),
            Policy::First => self.insert_disjoint(start, data, |_| false),
            Policy::Last => self.insert_disjoint(start, data, |_| true),
            Policy::Bsd => self.insert_disjoint(start, data, |k| start < k),
        }
        self.drain(deliver);
    }

    /// Compares `data` at `start` with every held segment it overlaps, and
    /// records the first difference.
    fn compare(&mut self, start: u64, data: &[u8]) {
        let end = start.saturating_add(data.len() as u64);
        let mut found = None;
        let from = start.saturating_sub(self.longest);
        for (&k, held) in self.pending.range(from..end) {
            let k_end = k.saturating_add(held.len() as u64);
            if k_end <= start {
                continue;
            }
            let (from, to) = (start.max(k), end.min(k_end));
            let new = part(data, from - start, to - start);
            let old = part(held, from - k, to - k);
            self.stats.retransmitted_bytes =
                self.stats.retransmitted_bytes.saturating_add(to - from);
            if new != old && found.is_none() {
                let kept_new = match self.policy {
                    Policy::Linux => start < k || (start == k && end > k_end),
                    Policy::First => false,
                    Policy::Last => true,
                    Policy::Bsd => start < k,
                };
                found = Some(Conflict {
                    at: from,
                    len: to - from,
                    kept_new,
                    fin: false,
                });
            }
        }
        if let Some(c) = found {
            self.stats.overlap_conflicts = self.stats.overlap_conflicts.saturating_add(1);
            self.stats.last_conflict = Some(c);
        }
    }

    /// A copy of bytes already delivered (at stream offset `from`): each recent
    /// segment it covers whole is compared by sum, and so is one that copies
    /// following each other cover whole from its start (a retransmission cut
    /// into other pieces: 277 bytes sent again as 100 and 177; found by an
    /// adversarial review, the changed bytes raised nothing).
    fn compare_delivered(&mut self, from: u64, payload: &[u8]) {
        let end = from.saturating_add(payload.len() as u64);
        let piece = crate::decode::fold(crate::decode::sum(payload, 0)) as u16;
        let (start, joined) = match self.rejoin {
            // One's complement sums add; a piece at an odd offset adds its
            // bytes swapped (RFC 1071 2(B)).
            Some((st, en, acc)) if en == from && end - st <= 1 << 16 => {
                let p = if (en - st) % 2 == 1 {
                    piece.swap_bytes()
                } else {
                    piece
                };
                let total = crate::decode::fold(u64::from(acc) + u64::from(p)) as u16;
                (st, total)
            }
            _ => (from, piece),
        };
        self.rejoin = Some((start, end, joined));
        if start < from {
            for i in 0..RECENT.min(self.recent_at) {
                let (at, len, fp) = self.recent[i];
                if at == start && at.saturating_add(len) == end && end <= self.next {
                    self.rejoin = None;
                    if crate::decode::norm(joined) != fp {
                        self.stats.overlap_conflicts =
                            self.stats.overlap_conflicts.saturating_add(1);
                        self.stats.last_conflict = Some(Conflict {
                            at,
                            len,
                            kept_new: false,
                            fin: false,
                        });
                        return;
                    }
                }
            }
        }
        for i in 0..RECENT.min(self.recent_at) {
            let (at, len, fp) = self.recent[i];
            if at < from || at.saturating_add(len) > end || at.saturating_add(len) > self.next {
                continue;
            }
            let copy = part(payload, at - from, at - from + len);
            let got = crate::decode::norm(crate::decode::fold(crate::decode::sum(copy, 0)) as u16);
            if got != fp {
                self.stats.overlap_conflicts = self.stats.overlap_conflicts.saturating_add(1);
                self.stats.last_conflict = Some(Conflict {
                    at,
                    len,
                    kept_new: false,
                    fin: false,
                });
                return;
            }
        }
    }

    /// Linux's `tcp_data_queue_ofo` on a segment after `next`.
    fn insert_linux(&mut self, start: u64, data: &[u8]) {
        let end = start.saturating_add(data.len() as u64);
        let pred = self
            .pending
            .range(..=start)
            .next_back()
            .map(|(&k, h)| (k, k.saturating_add(h.len() as u64)));
        if let Some((k, k_end)) = pred {
            // A FIN queued with this segment is its last sequence number: a
            // copy ending there has all its bits present (found by a review:
            // one byte more at the FIN's place was read past the FIN).
            let with_fin = self
                .fins
                .iter()
                .any(|&(at, from)| at == k_end && from == k && from < at);
            let bits_end = k_end + u64::from(with_fin);
            if start < k_end {
                if end <= bits_end {
                    // All the bits are present: dropped.
                    return;
                }
                if start != k {
                    // A partial overlap: both stay queued.
                    self.overlapped = true;
                }
                if start == k {
                    // Same start, longer: replaces the queued segment.
                    if let Some(old) = self.pending.remove(&k) {
                        self.buffered = self.buffered.saturating_sub(old.len() + PIECE_COST);
                    }
                }
            } else if k_end == start
                // A FIN carried by the held segment is its last sequence
                // number: what starts at the FIN overlaps that segment rather
                // than continuing it, and is purged when the FIN is read.
                && !self.fins.iter().any(|&(at, from)| at == k_end && from < k_end)
            {
                // Coalesced into the segment it continues.
                if let Some(held) = self.pending.get_mut(&k) {
                    held.extend_from_slice(data);
                    self.longest = self.longest.max(held.len() as u64);
                    self.buffered = self.buffered.saturating_add(data.len());
                }
                return;
            }
        }
        self.buffered = self.buffered.saturating_add(data.len() + PIECE_COST);
        self.longest = self.longest.max(data.len() as u64);
        self.pending.insert(start, data.to_vec());
        // merge_right: queued segments the new one covers go.
        let covered: Vec<u64> = self
            .pending
            .range(start.saturating_add(1)..end)
            .take_while(|(&k, h)| k.saturating_add(h.len() as u64) <= end)
            .map(|(&k, _)| k)
            .collect();
        for k in covered {
            if let Some(old) = self.pending.remove(&k) {
                self.buffered = self.buffered.saturating_sub(old.len() + PIECE_COST);
            }
        }
    }

    /// The disjoint policies: where `new_wins(k)` for a held piece at `k`, the
    /// held bytes are cut away; elsewhere the new segment's are. Held pieces stay
    /// disjoint.
    fn insert_disjoint(&mut self, start: u64, data: &[u8], new_wins: impl Fn(u64) -> bool) {
        let end = start.saturating_add(data.len() as u64);
        let overlapping: Vec<(u64, u64)> = self
            .pending
            .range(start.saturating_sub(self.longest)..end)
            .map(|(&k, h)| (k, k.saturating_add(h.len() as u64)))
            .filter(|&(_, k_end)| k_end > start)
            .collect();
        let mut excluded = Vec::new();
        for (k, k_end) in overlapping {
            if new_wins(k) {
                let Some(old) = self.pending.remove(&k) else {
                    continue;
                };
                self.buffered = self.buffered.saturating_sub(old.len() + PIECE_COST);
                if k < start {
                    let left = part(&old, 0, start - k).to_vec();
                    self.buffered += left.len() + PIECE_COST;
                    self.pending.insert(k, left);
                }
                if k_end > end {
                    let right = part(&old, end - k, k_end - k).to_vec();
                    self.buffered += right.len() + PIECE_COST;
                    self.pending.insert(end, right);
                }
            } else {
                excluded.push((k.max(start), k_end.min(end)));
            }
        }
        let mut pos = start;
        for (from, to) in excluded.into_iter().chain(std::iter::once((end, end))) {
            if from > pos {
                let piece = part(data, pos - start, from - start);
                if !piece.is_empty() {
                    self.buffered += piece.len() + PIECE_COST;
                    self.longest = self.longest.max(piece.len() as u64);
                    self.pending.insert(pos, piece.to_vec());
                }
            }
            pos = pos.max(to);
        }
    }

    /// Data at `from..to` arriving while a FIN waits out of order: Linux's
    /// out-of-order queue drops the FIN's segment when the new one starts with
    /// it and is longer (`tcp_data_queue_ofo` replaces it), or starts before it
    /// and reaches the FIN (merge_right). The bytes after the FIN are then read
    /// (found by a review on a real receiver: a bare FIN, then an unsafe order at
    /// the FIN's place, then the hole filled; the host read the order, and the
    /// FIN taken here hid it).
    ///
    /// Each FIN's segment is judged on its own: a second FIN further on stays
    /// (found by the next review).
    fn fin_overrun(&mut self, from: u64, to: u64) {
        let before = self.fins.len();
        self.fins.retain(|&(p, fin_from)| {
            let fin_end = p.saturating_add(1);
            !((from == fin_from && to > fin_end) || (from < fin_from && to >= fin_end))
        });
        let gone = (before - self.fins.len()) as u64;
        self.stats.overlap_conflicts = self.stats.overlap_conflicts.saturating_add(gone);
    }

    /// The lowest FIN waiting out of order.
    fn pending_fin(&self) -> Option<u64> {
        self.fins.first().map(|&(at, _)| at)
    }

    /// Where the queued segment holding a FIN at `at` starts: the held piece
    /// that ends there (the FIN's own data, or the data a bare FIN was
    /// coalesced into, as `tcp_ooo_try_coalesce` does), else `at` itself.
    fn fin_segment_start(&self, at: u64) -> u64 {
        // Queued segments may overlap: any of them may end there.
        self.pending
            .range(at.saturating_sub(self.longest)..at)
            .find(|(&k, h)| k.saturating_add(h.len() as u64) == at)
            .map_or(at, |(&k, _)| k)
    }

    /// Records a FIN at stream offset `at` (`None`: behind `next`), first wins.
    /// `from`: where its segment starts; `bare`: it carried no data, so the FIN
    /// is its only sequence number.
    fn on_fin(&mut self, at: Option<u64>, from: u64, bare: bool) {
        self.fin_seen = true;
        // Linux takes a FIN only when it is reached in order (`tcp_fin` from
        // `tcp_data_queue` or `tcp_ofo_queue`); one queued out of order goes with
        // its segment when longer data covers it, and when it is reached the
        // queue beyond it is purged.
        match (self.fin_at, at) {
            (Some(fin_at), Some(at)) if fin_at == at => {}
            (None, Some(at)) if at == self.next => self.accept_fin(at),
            (None, Some(at)) if at > self.next => {
                // A FIN whose whole segment (its data and its own sequence
                // number) lies inside one queued segment is dropped with it:
                // all its bits are present (`tcp_data_queue_ofo`; found by a
                // review for a FIN carrying data).
                let covering =
                    |k: u64, h: &Vec<u8>| k <= from && k.saturating_add(h.len() as u64) > at;
                let covered = self
                    .pending
                    .range(from.saturating_sub(self.longest)..=from)
                    .any(|(&k, h)| covering(k, h));
                // A bare FIN at the end of one queued segment and inside
                // another: Linux joins it to the first it meets in its tree,
                // which the capture does not show. It is dropped here (the
                // bytes after it judged) and the doubt named.
                let segment_start = self.fin_segment_start(at);
                let joinable = bare && segment_start != at;
                if covered {
                    self.stats.overlap_conflicts = self.stats.overlap_conflicts.saturating_add(1);
                    if joinable {
                        self.fin_doubt(at);
                    }
                } else if !self.fins.iter().any(|&(p, _)| p == at) {
                    let i = self.fins.partition_point(|&(p, _)| p < at);
                    if i < MAX_PENDING_FINS {
                        self.fins.insert(i, (at, segment_start));
                    }
                    if self.fins.len() > MAX_PENDING_FINS || i >= MAX_PENDING_FINS {
                        // Past the bound the highest is forgotten, where the
                        // host may stop: named, not silent.
                        self.fins.truncate(MAX_PENDING_FINS);
                        self.stats.overlap_conflicts =
                            self.stats.overlap_conflicts.saturating_add(1);
                        self.fin_doubt(at);
                    }
                }
            }
            _ => {
                self.stats.overlap_conflicts = self.stats.overlap_conflicts.saturating_add(1);
            }
        }
    }

    /// Where the host may end the stream at `at` and wardgate cannot tell: a
    /// conflict whose description the analyser names as an ambiguity.
    fn fin_doubt(&mut self, at: u64) {
        self.stats.last_conflict = Some(Conflict {
            at,
            len: 1,
            kept_new: false,
            fin: true,
        });
    }

    /// The FIN at `at` (= `next`) takes effect: what is queued beyond it is never read.
    fn accept_fin(&mut self, at: u64) {
        self.fin_at = Some(at);
        self.fins.clear();
        // (Queued segments may also hold bytes before it, already read.)
        let purged: u64 = self
            .pending
            .iter()
            .map(|(&k, v)| k.saturating_add(v.len() as u64).saturating_sub(k.max(at)))
            .sum();
        self.stats.after_fin_bytes = self.stats.after_fin_bytes.saturating_add(purged);
        self.pending.clear();
        self.buffered = 0;
        self.longest = 0;
        self.overlapped = false;
    }

    /// After `next` moved: a queued FIN reached exactly takes effect; one passed
    /// over went with its segment.
    fn settle_fin(&mut self) {
        let next = self.next;
        self.fins.retain(|&(p, _)| p >= next);
        if self.pending_fin() == Some(next) {
            self.accept_fin(next);
        }
    }

    /// Gives up on holes, oldest first, until the held data is within the limits.
    fn enforce_limits(&mut self, deliver: &mut dyn FnMut(Chunk<'_>)) {
        while self.buffered > self.limits.max_buffered_bytes
            || self.pending.len() > self.limits.max_segments
        {
            let Some(&first) = self.pending.keys().next() else {
                break;
            };
            self.stats.limit_hits = self.stats.limit_hits.saturating_add(1);
            self.gap_to(first, deliver);
            self.drain(deliver);
        }
    }

    /// Reports the bytes from `next` to `to` as missing.
    fn gap_to(&mut self, to: u64, deliver: &mut dyn FnMut(Chunk<'_>)) {
        if to > self.next {
            let len = to - self.next;
            // An urgent byte in the hole was never seen: nothing to take out.
            if self.urgent.is_some_and(|u| u < to) {
                self.urgent = None;
            }
            self.stats.gaps = self.stats.gaps.saturating_add(1);
            self.stats.gap_bytes = self.stats.gap_bytes.saturating_add(len);
            self.next = to;
            deliver(Chunk::Gap { len });
        }
    }

    /// Delivers the held pieces that start at `next`, one after another. Always
    /// removes at least the first piece if it does not start after `next`, which is
    /// what makes the loops in `flush` and `enforce_limits` terminate.
    fn drain(&mut self, deliver: &mut dyn FnMut(Chunk<'_>)) {
        while let Some(entry) = self.pending.first_entry() {
            let k = *entry.key();
            if k > self.next {
                break;
            }
            let held = entry.remove();
            self.buffered = self.buffered.saturating_sub(held.len() + PIECE_COST);
            let k_end = k.saturating_add(held.len() as u64);
            if k_end > self.next {
                // Under the Linux policy queued segments may overlap: each gives
                // only its bytes after what went before (`tcp_ofo_queue`).
                let fresh = part(&held, self.next - k, held.len() as u64);
                emit(&mut self.urgent, &mut self.stats, self.next, fresh, deliver);
                self.next = k_end;
                self.settle_fin();
            }
        }
        if self.pending.is_empty() {
            self.longest = 0;
            self.overlapped = false;
        }
    }
}

/// Delivers `data`, at stream offset `at`, less the urgent byte if it falls in it.
fn emit(
    urgent: &mut Option<u64>,
    stats: &mut Stats,
    at: u64,
    data: &[u8],
    deliver: &mut dyn FnMut(Chunk<'_>),
) {
    let end = at.saturating_add(data.len() as u64);
    match *urgent {
        Some(u) if u >= at && u < end => {
            *urgent = None;
            stats.urgent_removed = stats.urgent_removed.saturating_add(1);
            let (before, after) = (part(data, 0, u - at), part(data, u - at + 1, end - at));
            for piece in [before, after] {
                if !piece.is_empty() {
                    deliver(Chunk::Data(piece));
                }
            }
        }
        _ => deliver(Chunk::Data(data)),
    }
}

/// `data[from..to]`, or empty if out of range (callers derive the offsets from
/// `data`'s own extent, so that does not happen; this keeps it panic-free anyway).
fn part(data: &[u8], from: u64, to: u64) -> &[u8] {
    match (usize::try_from(from), usize::try_from(to)) {
        (Ok(from), Ok(to)) => data.get(from..to).unwrap_or_default(),
        _ => &[],
    }
}

#[cfg(test)]
mod tests;
