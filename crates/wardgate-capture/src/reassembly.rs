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
//! # Overlaps: first wins
//!
//! Bytes already delivered or already held are kept; the overlapping part of any
//! later copy is discarded and counted in [`Stats::retransmitted_bytes`]. This is
//! the "first" policy of target-based reassembly (Novak and Sturges, 2007), as in
//! Suricata's `OS_POLICY_FIRST`; Suricata's default, `bsd`, differs in one case (a
//! later segment that starts before the one it overlaps wins). A later copy that
//! differs from the held bytes counts in [`Stats::overlap_conflicts`] (Suricata's
//! `reassembly_overlap_different_data`): the receiver may have kept the other copy,
//! so the analyser and the host may have read different streams, an evasion sign.
//! Delivered bytes are not retained (in-order data is handed over without a copy),
//! so a differing copy of bytes already delivered only counts as retransmitted.
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
//!   is ignored. [`Stream::flush`] reports bytes missing before the FIN as a gap.

use std::collections::BTreeMap;

/// How far (in bytes) a segment may lie ahead of or behind the next expected
/// sequence number: 2^30, the largest window RFC 7323 2.3 allows (scale 14).
pub const WINDOW: u64 = 1 << 30;

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
}

/// Reassembly state for one direction of one TCP connection.
pub struct Stream {
    limits: Limits,
    /// Sequence number of stream offset 0; `None` until the first segment.
    base: Option<u32>,
    midstream: bool,
    /// Next stream offset to deliver: everything before it went out as data or gap.
    next: u64,
    /// Out-of-order pieces by stream offset: non-empty, disjoint, all after `next`.
    pending: BTreeMap<u64, Vec<u8>>,
    /// Bytes in `pending`.
    buffered: usize,
    fin_seen: bool,
    /// Stream offset of the FIN that was accepted.
    fin_at: Option<u64>,
    stats: Stats,
}

/// Held bytes are clinical payload (HL7, DICOM): `Debug` shows sizes, never bytes,
/// so a stray `{:?}` in a log cannot leak patient data.
impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("limits", &self.limits)
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
    /// An empty stream; the first segment fixes where it starts.
    pub fn new(limits: Limits) -> Self {
        Stream {
            limits,
            base: None,
            midstream: false,
            next: 0,
            pending: BTreeMap::new(),
            buffered: 0,
            fin_seen: false,
            fin_at: None,
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
        let mut data = part(payload, behind, len);
        if let Some(fin_at) = self.fin_at {
            let keep = fin_at.saturating_sub(start).min(data.len() as u64);
            self.stats.after_fin_bytes = self
                .stats
                .after_fin_bytes
                .saturating_add(data.len() as u64 - keep);
            data = part(data, 0, keep);
        }
        if !data.is_empty() {
            if start > self.next {
                self.stats.out_of_order = self.stats.out_of_order.saturating_add(1);
            }
            self.place(start, data, deliver);
        }
        if fin {
            self.on_fin(end);
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
        if let Some(fin_at) = self.fin_at {
            self.gap_to(fin_at, deliver);
        }
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

    /// Out-of-order bytes held now (the memory [`Limits::max_buffered_bytes`] bounds).
    pub fn buffered_bytes(&self) -> usize {
        self.buffered
    }

    /// Out-of-order pieces held now (what [`Limits::max_segments`] bounds).
    pub fn buffered_segments(&self) -> usize {
        self.pending.len()
    }

    /// Puts `data` (at stream offset `start`, not before `next`) in place: parts
    /// already held are compared and dropped, parts at `next` are delivered straight
    /// from `data`, the rest is copied into `pending`.
    fn place(&mut self, start: u64, data: &[u8], deliver: &mut dyn FnMut(Chunk<'_>)) {
        let end = start.saturating_add(data.len() as u64);
        // The hot path: in order with nothing held, no copy and no allocation.
        if start == self.next && self.pending.is_empty() {
            deliver(Chunk::Data(data));
            self.next = end;
            return;
        }
        let mut conflict = false;
        let mut pos = start;
        while pos < end {
            let covering = self
                .pending
                .range(..=pos)
                .next_back()
                .map(|(&k, held)| (k, k.saturating_add(held.len() as u64)))
                .filter(|&(_, k_end)| k_end > pos);
            if let Some((k, k_end)) = covering {
                // First wins: keep the held bytes, only compare.
                let stop = k_end.min(end);
                let new = part(data, pos - start, stop - start);
                let held = self
                    .pending
                    .get(&k)
                    .map_or(&[][..], |h| part(h, pos - k, stop - k));
                conflict |= new != held;
                self.stats.retransmitted_bytes =
                    self.stats.retransmitted_bytes.saturating_add(stop - pos);
                pos = stop;
                // Delivered one piece at a time so the next ones are compared first.
                if k == self.next {
                    if let Some(held) = self.pending.remove(&k) {
                        self.buffered = self.buffered.saturating_sub(held.len());
                        self.next = k_end;
                        deliver(Chunk::Data(&held));
                    }
                }
                continue;
            }
            let hole_end = self
                .pending
                .range(pos..)
                .next()
                .map_or(end, |(&k, _)| k.min(end));
            let piece = part(data, pos - start, hole_end - start);
            if pos == self.next {
                deliver(Chunk::Data(piece));
                self.next = hole_end;
            } else {
                self.buffered = self.buffered.saturating_add(piece.len());
                self.pending.insert(pos, piece.to_vec());
            }
            pos = hole_end;
        }
        if conflict {
            self.stats.overlap_conflicts = self.stats.overlap_conflicts.saturating_add(1);
        }
        self.drain(deliver);
    }

    /// Records a FIN at stream offset `at` (`None`: behind `next`), first wins.
    fn on_fin(&mut self, at: Option<u64>) {
        self.fin_seen = true;
        let held_end = self
            .pending
            .last_key_value()
            .map_or(self.next, |(&k, h)| k.saturating_add(h.len() as u64));
        match (self.fin_at, at) {
            (Some(fin_at), Some(at)) if fin_at == at => {}
            (None, Some(at)) if at >= held_end => self.fin_at = Some(at),
            _ => {
                self.stats.overlap_conflicts = self.stats.overlap_conflicts.saturating_add(1);
            }
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
            self.buffered = self.buffered.saturating_sub(held.len());
            let k_end = k.saturating_add(held.len() as u64);
            if k_end > self.next {
                // `k < next` cannot happen (pieces are kept after `next`); trimmed anyway.
                let fresh = part(&held, self.next - k, held.len() as u64);
                self.next = k_end;
                deliver(Chunk::Data(fresh));
            }
        }
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
