//! The queue's in-memory state, sans-IO: what is pending, what is parked, which
//! (sender, MSH-10) pairs were seen within the dedup window, and how many live
//! messages each journal segment still holds. Rebuilt at start-up by replaying the
//! journal through [`State::apply`]; the running store applies the same entries
//! as it appends them, so replay and live operation cannot disagree.

use super::journal::Entry;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

/// Where a message's bytes are: a segment and a byte range in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loc {
    /// Segment number (its file name).
    pub segment: u64,
    /// Offset of the message's first byte.
    pub offset: u64,
    /// Its length.
    pub len: u32,
}

/// A message waiting for delivery.
#[derive(Debug, Clone)]
pub struct Pending {
    /// Queue id.
    pub id: u64,
    /// When it was accepted.
    pub received_us: u64,
    /// The sending device.
    pub sender: Arc<str>,
    /// MSH-10.
    pub control_id: Box<str>,
    /// Its bytes in the journal.
    pub loc: Loc,
    /// Delivery attempts the upstream answered with a transient error (not kept
    /// across restarts: a restart gives a message a fresh set of attempts).
    pub attempts: u32,
}

/// A message the upstream refused for good.
#[derive(Debug, Clone)]
pub struct Parked {
    /// Queue id.
    pub id: u64,
    /// When it was accepted.
    pub received_us: u64,
    /// When it was parked.
    pub parked_us: u64,
    /// The sending device.
    pub sender: Arc<str>,
    /// MSH-10.
    pub control_id: Box<str>,
    /// The upstream's answer.
    pub reason: Box<str>,
    /// Its bytes in the journal (the copy in the `Parked` record).
    pub loc: Loc,
}

#[derive(Debug, Clone, Copy, Default)]
struct Segment {
    /// Pending or parked messages whose bytes are here.
    live: u32,
    /// Newest acceptance time of a message first written here (for the dedup window).
    newest_received_us: u64,
}

/// A remembered message: (queue id, accepted at, [`fingerprint`]).
type SeenAt = (u64, u64, u64);

/// What an earlier message with the same control id is to a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// The same message again (a retransmission): queue id of the first.
    Same(u64),
    /// Another message under a control id already used: queue id of the first.
    Other(u64),
}

/// The MSH fields of a framed or bare HL7 message's header (the bytes up to
/// the first segment end), split on its field separator; empty when it has no
/// MSH.
fn header_fields(message: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let start = message
        .windows(3)
        .take(8)
        .position(|w| w == b"MSH")
        .unwrap_or(message.len());
    let m = &message[start..];
    let end = m
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(m.len());
    match m.get(3) {
        Some(&sep) if end > 3 => (m[..end].split(|&b| b == sep).collect(), &m[end..]),
        _ => (Vec::new(), m),
    }
}

/// The key a control id is remembered under: HL7 makes MSH-10 unique for a
/// sending application and facility (MSH-3, MSH-4), so an interface engine
/// relaying several applications from one device does not see one's id taken
/// as another's.
fn dedup_key(control_id: &str, message: &[u8]) -> Box<str> {
    let (fields, _) = header_fields(message);
    let part =
        |i: usize| String::from_utf8_lossy(fields.get(i).copied().unwrap_or_default()).into_owned();
    format!("{}\u{1f}{}\u{1f}{control_id}", part(2), part(3)).into_boxed_str()
}

/// What makes two messages the same message: every header field but MSH-7
/// (a resending engine may stamp a new time) and the rest byte for byte.
fn fingerprint(message: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let (fields, rest) = header_fields(message);
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for (i, f) in fields.iter().enumerate() {
        if i != 6 {
            f.hash(&mut h);
        }
    }
    rest.hash(&mut h);
    h.finish()
}

/// The queue of one route.
#[derive(Debug, Default)]
pub struct State {
    pub(crate) next_id: u64,
    pending: BTreeMap<u64, Pending>,
    parked: BTreeMap<u64, Parked>,
    /// (sender, [`dedup_key`]) -> (queue id, accepted at, [`fingerprint`]).
    seen: HashMap<(Arc<str>, Box<str>), SeenAt>,
    seen_order: VecDeque<(u64, Arc<str>, Box<str>)>,
    segments: BTreeMap<u64, Segment>,
    live_bytes: u64,
    senders: HashMap<Box<str>, Arc<str>>,
}

impl State {
    /// An empty queue whose first id is 1.
    pub fn new() -> Self {
        State {
            next_id: 1,
            ..Default::default()
        }
    }

    /// Interns a sender id: a route has few senders and many messages.
    pub(crate) fn sender(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.senders.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.senders.insert(Box::from(s), a.clone());
        a
    }

    /// Notes a segment's existence (so an empty one is known and reclaimable).
    pub(crate) fn add_segment(&mut self, segment: u64) {
        self.segments.entry(segment).or_default();
    }

    /// Applies one journal entry; `msg_loc` is where the entry's message bytes are
    /// (for `Enqueued` and `Parked`). Entries about unknown ids are ignored: their
    /// segment was reclaimed after they were resolved.
    pub fn apply(&mut self, entry: &Entry<'_>, msg_loc: Loc) {
        match *entry {
            Entry::Enqueued {
                id,
                received_us,
                sender,
                control_id,
                message,
            } => {
                self.next_id = self.next_id.max(id + 1);
                if self.pending.contains_key(&id) || self.parked.contains_key(&id) {
                    return;
                }
                let sender = self.sender(sender);
                let control_id: Box<str> = Box::from(control_id);
                self.remember(sender.clone(), &control_id, message, id, received_us);
                let seg = self.segments.entry(msg_loc.segment).or_default();
                seg.live += 1;
                seg.newest_received_us = seg.newest_received_us.max(received_us);
                self.live_bytes += u64::from(msg_loc.len);
                self.pending.insert(
                    id,
                    Pending {
                        id,
                        received_us,
                        sender,
                        control_id,
                        loc: msg_loc,
                        attempts: 0,
                    },
                );
            }
            Entry::Delivered { id, .. } => {
                if let Some(p) = self.pending.remove(&id) {
                    self.release(p.loc);
                }
            }
            Entry::Parked {
                id,
                received_us,
                at_us,
                sender,
                control_id,
                reason,
                message,
            } => {
                self.next_id = self.next_id.max(id + 1);
                if let Some(p) = self.pending.remove(&id) {
                    self.release(p.loc);
                }
                if let Some(old) = self.parked.remove(&id) {
                    self.release(old.loc);
                }
                let sender = self.sender(sender);
                let seg = self.segments.entry(msg_loc.segment).or_default();
                seg.live += 1;
                self.live_bytes += u64::from(msg_loc.len);
                // A parked message still counts for dedup: a sender retrying it is
                // told it was received, and the operator decides.
                self.remember(sender.clone(), control_id, message, id, received_us);
                self.parked.insert(
                    id,
                    Parked {
                        id,
                        received_us,
                        parked_us: at_us,
                        sender,
                        control_id: Box::from(control_id),
                        reason: Box::from(reason),
                        loc: msg_loc,
                    },
                );
            }
            Entry::Redriven { id, .. } => {
                if let Some(p) = self.parked.remove(&id) {
                    self.pending.insert(
                        id,
                        Pending {
                            id,
                            received_us: p.received_us,
                            sender: p.sender,
                            control_id: p.control_id,
                            loc: p.loc,
                            attempts: 0,
                        },
                    );
                }
            }
        }
    }

    fn release(&mut self, loc: Loc) {
        if let Some(seg) = self.segments.get_mut(&loc.segment) {
            seg.live = seg.live.saturating_sub(1);
        }
        self.live_bytes = self.live_bytes.saturating_sub(u64::from(loc.len));
    }

    fn remember(
        &mut self,
        sender: Arc<str>,
        control_id: &str,
        message: &[u8],
        id: u64,
        received_us: u64,
    ) {
        if control_id.is_empty() {
            return;
        }
        let key = dedup_key(control_id, message);
        self.seen_order
            .push_back((received_us, sender.clone(), key.clone()));
        self.seen
            .insert((sender, key), (id, received_us, fingerprint(message)));
    }

    /// Forgets (sender, MSH-10) pairs accepted before `cutoff_us`.
    pub fn expire_seen(&mut self, cutoff_us: u64) {
        while let Some((t, _, _)) = self.seen_order.front() {
            if *t >= cutoff_us {
                break;
            }
            if let Some((t, s, c)) = self.seen_order.pop_front() {
                let key = (s, c);
                if self.seen.get(&key).is_some_and(|&(_, at, _)| at == t) {
                    self.seen.remove(&key);
                }
            }
        }
    }

    /// An earlier message from `sender` with this MSH-10 (from the same
    /// sending application and facility, MSH-3 and MSH-4, whose control ids
    /// HL7 scopes), if one is remembered: its queue id, and whether `message`
    /// is the same message ([`fingerprint`]) or another under a reused id.
    pub fn duplicate_of(&self, sender: &str, control_id: &str, message: &[u8]) -> Option<Seen> {
        if control_id.is_empty() {
            return None;
        }
        let s = self.senders.get(sender)?;
        self.seen
            .get(&(s.clone(), dedup_key(control_id, message)))
            .map(|&(id, _, fp)| {
                if fp == fingerprint(message) {
                    Seen::Same(id)
                } else {
                    Seen::Other(id)
                }
            })
    }

    /// The next message to deliver (lowest id first).
    pub fn head(&self) -> Option<&Pending> {
        self.pending.values().next()
    }

    /// A pending message.
    pub fn pending_mut(&mut self, id: u64) -> Option<&mut Pending> {
        self.pending.get_mut(&id)
    }

    /// A pending message.
    pub fn pending(&self, id: u64) -> Option<&Pending> {
        self.pending.get(&id)
    }

    /// A parked message.
    pub fn parked(&self, id: u64) -> Option<&Parked> {
        self.parked.get(&id)
    }

    /// Every parked message, oldest id first.
    pub fn parked_all(&self) -> impl Iterator<Item = &Parked> {
        self.parked.values()
    }

    /// Messages waiting for delivery.
    pub fn depth(&self) -> usize {
        self.pending.len()
    }

    /// Parked messages.
    pub fn parked_count(&self) -> usize {
        self.parked.len()
    }

    /// Bytes of pending and parked messages (what the quota limits).
    pub fn live_bytes(&self) -> u64 {
        self.live_bytes
    }

    /// The oldest pending message's acceptance time.
    pub fn oldest_received_us(&self) -> Option<u64> {
        self.pending.values().map(|p| p.received_us).min()
    }

    /// The oldest segments that hold nothing live and nothing the dedup window
    /// still needs. Only a prefix is ever reclaimed: a later segment may hold the
    /// `Delivered` record of a message an earlier one holds, and replaying the
    /// earlier without the later would deliver it again.
    pub fn reclaimable(&self, keep_from_us: u64, current: u64) -> Vec<u64> {
        self.segments
            .iter()
            .take_while(|(&n, s)| {
                n != current && s.live == 0 && s.newest_received_us < keep_from_us
            })
            .map(|(&n, _)| n)
            .collect()
    }

    /// The oldest segment, when everything live in it is parked and the dedup
    /// window is past it: copying those parked messages forward frees it.
    pub fn pinned_by_parked(&self, keep_from_us: u64, current: u64) -> Option<Vec<u64>> {
        let (&n, s) = self.segments.iter().next()?;
        if n == current || s.live == 0 || s.newest_received_us >= keep_from_us {
            return None;
        }
        let ids: Vec<u64> = self
            .parked
            .values()
            .filter(|p| p.loc.segment == n)
            .map(|p| p.id)
            .collect();
        (ids.len() == s.live as usize).then_some(ids)
    }

    /// Forgets a reclaimed segment.
    pub fn drop_segment(&mut self, segment: u64) {
        self.segments.remove(&segment);
    }

    /// Segments known.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
}
