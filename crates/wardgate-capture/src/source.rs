//! Packets from capture files: pcap (micro- and nanosecond, either byte order) and
//! pcapng (several interfaces and sections), read through one bounded buffer so
//! memory does not depend on the file's size. Parsing is pcap-parser's.
//!
//! A pcapng section with several interfaces is put back in time order
//! ([`Reorder`]): dumpcap capturing two interfaces writes each one's frames
//! in chunks, so that in file order a connection seen on both legs of a
//! router runs backwards (found by a review: every order of the earlier
//! connections judged twice, and high alerts on benign traffic).

use crate::decode::LinkType;
use pcap_parser::pcapng::Block;
use pcap_parser::{create_reader, PcapBlockOwned, PcapError};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::Read;

/// Reading limits.
#[derive(Debug, Clone, Copy)]
pub struct SourceLimits {
    /// Initial read buffer.
    pub buffer_bytes: usize,
    /// Largest single block (packet record) accepted; the buffer grows to this.
    pub max_block_bytes: usize,
    /// A pcapng section with several interfaces: how far (microseconds of
    /// capture time) a frame may be held for an earlier one from another
    /// interface, and for an interface that has not delivered a frame yet.
    pub reorder_window_us: u64,
    /// The most bytes of frames held for reordering; past it the oldest is
    /// released, in order or not ([`ReadStats::out_of_order`]).
    pub reorder_bytes: usize,
}

impl Default for SourceLimits {
    fn default() -> Self {
        SourceLimits {
            // Small enough to stay in the CPU cache: the kernel's copy into it and
            // the parsing out of it then run at cache speed (measured: a 1 MiB
            // buffer behind a 1 MiB BufReader spent half the time copying).
            buffer_bytes: 256 << 10,
            max_block_bytes: 16 << 20,
            reorder_window_us: 2_000_000,
            reorder_bytes: 32 << 20,
        }
    }
}

/// What reading a capture counted beside its packets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Frames handed on earlier in capture time than one handed on before
    /// them: a multi-interface section whose interfaces lagged each other by
    /// more than the reorder window or bytes (see [`SourceLimits`]). Their
    /// connections may show anomalies the traffic did not have.
    pub out_of_order: u64,
}

/// What a held frame costs beside its bytes (its record and allocation):
/// counted, so that empty frames cannot pile up past the bound.
const HELD_OVERHEAD: usize = 64;

/// A frame held for reordering.
struct Held {
    ts: u64,
    serial: u64,
    link: Option<LinkType>,
    orig_len: u32,
    data: Box<[u8]>,
}

impl PartialEq for Held {
    fn eq(&self, o: &Self) -> bool {
        (self.ts, self.serial) == (o.ts, o.serial)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Held {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.ts, self.serial).cmp(&(o.ts, o.serial))
    }
}

/// A merge of one pcapng section's interfaces by capture time, as mergecap
/// does for files: each interface's frames are in order in the file, so a
/// frame is handed on once every interface has delivered one at least as
/// late, or a frame the window later has come, or the held bytes are over
/// their bound. Frames of one timestamp keep their file order. Only
/// sections with two or more interfaces pay for it (a copy per frame).
struct Reorder {
    heap: BinaryHeap<Reverse<Held>>,
    /// Per interface of the section: the latest timestamp it delivered.
    last: Vec<Option<u64>>,
    newest: u64,
    released: u64,
    held_bytes: usize,
    serial: u64,
}

impl Reorder {
    fn new(interfaces: usize) -> Self {
        Reorder {
            heap: BinaryHeap::new(),
            last: vec![None; interfaces],
            newest: 0,
            released: 0,
            held_bytes: 0,
            serial: 0,
        }
    }

    fn push(&mut self, iface: usize, p: Packet<'_>) {
        self.newest = self.newest.max(p.ts_micros);
        if let Some(l) = self.last.get_mut(iface) {
            *l = Some(l.map_or(p.ts_micros, |l| l.max(p.ts_micros)));
        }
        self.held_bytes += p.data.len() + HELD_OVERHEAD;
        self.serial += 1;
        self.heap.push(Reverse(Held {
            ts: p.ts_micros,
            serial: self.serial,
            link: p.link,
            orig_len: p.orig_len,
            data: p.data.into(),
        }));
    }

    /// Whether no interface can still deliver a frame earlier than `ts`: each
    /// has delivered one at least as late. An interface that is silent (or
    /// never spoke) holds frames for the window: dumpcap writes a quiet
    /// interface's frames late too (a review's capture: an interface silent
    /// for seconds, then its chunk 45 ms behind the other's).
    fn settled(&self, ts: u64) -> bool {
        self.last.iter().all(|l| l.is_some_and(|l| l >= ts))
    }

    /// Hands on every frame that is due (all of them when `all`).
    fn release(
        &mut self,
        all: bool,
        limits: &SourceLimits,
        stats: &mut ReadStats,
        each: &mut impl FnMut(Packet<'_>),
    ) {
        let window = limits.reorder_window_us;
        while let Some(Reverse(top)) = self.heap.peek() {
            let due = all
                || self.held_bytes > limits.reorder_bytes
                || self.newest.saturating_sub(top.ts) >= window
                || self.settled(top.ts);
            if !due {
                break;
            }
            let Some(Reverse(h)) = self.heap.pop() else {
                break;
            };
            self.held_bytes = self.held_bytes.saturating_sub(h.data.len() + HELD_OVERHEAD);
            if h.ts < self.released {
                stats.out_of_order += 1;
            }
            self.released = self.released.max(h.ts);
            each(Packet {
                ts_micros: h.ts,
                link: h.link,
                data: &h.data,
                orig_len: h.orig_len,
            });
        }
    }
}

/// One captured packet.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// Capture time, microseconds since the Unix epoch.
    pub ts_micros: u64,
    /// Link type of the interface it was captured on; `None` if wardgate does not
    /// decode that link type (the packet is counted and skipped).
    pub link: Option<LinkType>,
    /// The captured bytes (possibly shorter than on the wire).
    pub data: &'a [u8],
    /// Length on the wire.
    pub orig_len: u32,
}

/// Why a capture could not be read (to the end).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The operating system refused.
    #[error("reading the capture: {0}")]
    Io(#[from] std::io::Error),
    /// Not pcap or pcapng, or a block is malformed.
    #[error("not a valid pcap or pcapng capture: {0}")]
    Format(String),
    /// A block larger than the configured maximum.
    #[error("a capture block is larger than the {0}-byte limit")]
    BlockTooLarge(usize),
}

/// How the read ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The whole file was read.
    Complete,
    /// The file ends in the middle of a block (a capture cut short, or still being
    /// written): everything before was analysed.
    Truncated,
}

struct Interface {
    link: Option<LinkType>,
    /// Timestamp units per second.
    resolution: u64,
    offset: i64,
}

/// Most interfaces a pcapng section may describe (the format allows 2^32).
const MAX_INTERFACES: usize = 1024;

fn ts_micros(units: u64, resolution: u64, offset_secs: i64) -> u64 {
    let micros = if resolution == 1_000_000 {
        units
    } else {
        // Exact for any resolution, including pcapng's powers of two.
        let m = u128::from(units) * 1_000_000 / u128::from(resolution.max(1));
        u64::try_from(m).unwrap_or(u64::MAX)
    };
    micros.saturating_add_signed(offset_secs.saturating_mul(1_000_000))
}

/// Reads every packet of a pcap or pcapng stream and hands it to `each`.
pub fn read_packets<R: Read + Send + 'static>(
    input: R,
    limits: SourceLimits,
    stats: &mut ReadStats,
    mut each: impl FnMut(Packet<'_>),
) -> Result<End, SourceError> {
    let mut reorder: Option<Reorder> = None;
    let failed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX));
    let input = BlockLengths::new(input, failed.clone());
    let r = read_blocks(input, limits, &mut reorder, stats, &mut each);
    if let Some(r) = reorder.as_mut() {
        r.release(true, &limits, stats, &mut each);
    }
    match failed.load(std::sync::atomic::Ordering::Relaxed) {
        u64::MAX => r,
        len => Err(SourceError::Format(format!(
            "a pcapng block of {len} bytes, shorter than its own framing (12 bytes)"
        ))),
    }
}

/// Checks a pcapng stream's block lengths as the bytes pass: a block
/// shorter than its 12 bytes of framing is refused with a typed error before
/// pcap-parser reads it (its reader subtracts 12 from the length unchecked:
/// found by the capture fuzz target, a 9-byte Process Information Block). A
/// classic pcap passes through untouched.
struct BlockLengths<R> {
    inner: R,
    /// `None` until the first four bytes say pcapng or not.
    ng: Option<bool>,
    /// Little-endian section (from the section header's byte-order magic).
    little: bool,
    /// The current block's header as read so far (type, length, and for a
    /// section header its byte-order magic).
    head: [u8; 12],
    have: usize,
    /// Bytes of the current block still to pass after its header.
    skip: u64,
    /// A short block's length once found (`u64::MAX` before): the stream
    /// then ends before it, so the blocks before it are read, and
    /// [`read_packets`] reports it.
    failed: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

const SHB: [u8; 4] = [0x0A, 0x0D, 0x0D, 0x0A];

impl<R> BlockLengths<R> {
    fn new(inner: R, failed: std::sync::Arc<std::sync::atomic::AtomicU64>) -> Self {
        BlockLengths {
            inner,
            ng: None,
            little: true,
            head: [0; 12],
            have: 0,
            skip: 0,
            failed,
        }
    }

    /// Follows `bytes`, the next bytes of the stream; on a short block, how
    /// many of them come before its header (`Err`).
    fn follow(&mut self, mut bytes: &[u8]) -> Result<(), usize> {
        let total = bytes.len();
        while !bytes.is_empty() {
            if self.ng == Some(false) {
                return Ok(());
            }
            if self.skip > 0 {
                let n = self.skip.min(bytes.len() as u64);
                self.skip -= n;
                bytes = &bytes[n as usize..];
                continue;
            }
            // A section header's length is read after its byte-order magic.
            let want = if self.have >= 4 && self.head[..4] == SHB {
                12
            } else {
                8
            };
            let n = (want - self.have).min(bytes.len());
            self.head[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have == 4 && self.ng.is_none() {
                self.ng = Some(self.head[..4] == SHB);
                if self.ng == Some(false) {
                    return Ok(());
                }
            }
            let want = if self.head[..4] == SHB { 12 } else { 8 };
            if self.have < want {
                continue;
            }
            if want == 12 {
                self.little = self.head[8..12] == [0x4D, 0x3C, 0x2B, 0x1A];
            }
            let len = [self.head[4], self.head[5], self.head[6], self.head[7]];
            let len = if self.little {
                u32::from_le_bytes(len)
            } else {
                u32::from_be_bytes(len)
            };
            if len < 12 {
                self.failed
                    .store(u64::from(len), std::sync::atomic::Ordering::Relaxed);
                let consumed = total - bytes.len();
                return Err(consumed.saturating_sub(want));
            }
            self.skip = u64::from(len) - want as u64;
            self.have = 0;
        }
        Ok(())
    }
}

impl<R: Read> Read for BlockLengths<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.failed.load(std::sync::atomic::Ordering::Relaxed) != u64::MAX {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        match self.follow(&buf[..n]) {
            Ok(()) => Ok(n),
            Err(before) => Ok(before),
        }
    }
}

fn read_blocks<R: Read + Send + 'static>(
    input: R,
    limits: SourceLimits,
    reorder: &mut Option<Reorder>,
    stats: &mut ReadStats,
    each: &mut impl FnMut(Packet<'_>),
) -> Result<End, SourceError> {
    let mut reader = create_reader(limits.buffer_bytes.max(4096), input)
        .map_err(|e| SourceError::Format(e.to_string()))?;
    let mut size = limits.buffer_bytes.max(4096);
    let mut legacy: Option<Interface> = None;
    let mut interfaces: Vec<Interface> = Vec::new();
    loop {
        match reader.next() {
            Ok((offset, block)) => {
                match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        legacy = Some(Interface {
                            link: LinkType::from_linktype(h.network.0),
                            resolution: if h.is_nanosecond_precision() {
                                1_000_000_000
                            } else {
                                1_000_000
                            },
                            offset: 0,
                        });
                    }
                    PcapBlockOwned::Legacy(b) => {
                        let (link, res) = legacy
                            .as_ref()
                            .map(|i| (i.link, i.resolution))
                            .unwrap_or((None, 1_000_000));
                        let sub = u64::from(b.ts_usec);
                        let units = u64::from(b.ts_sec).saturating_mul(res) + sub;
                        each(Packet {
                            ts_micros: ts_micros(units, res, 0),
                            link,
                            data: b.data,
                            orig_len: b.origlen,
                        });
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => {
                        // A new section numbers its interfaces afresh.
                        if let Some(mut r) = reorder.take() {
                            r.release(true, &limits, stats, each);
                        }
                        interfaces.clear();
                    }
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb))
                        if interfaces.len() < MAX_INTERFACES =>
                    {
                        interfaces.push(Interface {
                            link: LinkType::from_linktype(idb.linktype.0),
                            resolution: idb.ts_resolution().unwrap_or(1_000_000),
                            offset: idb.ts_offset(),
                        });
                        if interfaces.len() >= 2 {
                            match reorder {
                                Some(r) => r.last.push(None),
                                None => *reorder = Some(Reorder::new(interfaces.len())),
                            }
                        }
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        let iface = usize::try_from(epb.if_id)
                            .ok()
                            .and_then(|i| interfaces.get(i));
                        let (link, res, off) = iface
                            .map(|i| (i.link, i.resolution, i.offset))
                            .unwrap_or((None, 1_000_000, 0));
                        let units = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                        let caplen = usize::try_from(epb.caplen).unwrap_or(usize::MAX);
                        let p = Packet {
                            ts_micros: ts_micros(units, res, off),
                            link,
                            data: epb.data.get(..caplen).unwrap_or(epb.data),
                            orig_len: epb.origlen,
                        };
                        match reorder.as_mut() {
                            Some(r) => {
                                let iface = usize::try_from(epb.if_id).unwrap_or(usize::MAX);
                                r.push(iface, p);
                                r.release(false, &limits, stats, each);
                            }
                            None => each(p),
                        }
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        let link = interfaces.first().and_then(|i| i.link);
                        let orig = usize::try_from(spb.origlen).unwrap_or(usize::MAX);
                        each(Packet {
                            ts_micros: 0,
                            link,
                            data: spb.data.get(..orig).unwrap_or(spb.data),
                            orig_len: spb.origlen,
                        });
                    }
                    PcapBlockOwned::NG(_) => {}
                }
                // No shift per block: `refill` moves only the unread tail, where
                // `consume` copied half the buffer each time it passed the middle.
                reader.consume_noshift(offset);
            }
            Err(PcapError::Eof) => return Ok(End::Complete),
            Err(PcapError::UnexpectedEof) => return Ok(End::Truncated),
            Err(PcapError::Incomplete(_)) => {
                if reader.reader_exhausted() {
                    return Ok(End::Truncated);
                }
                reader
                    .refill()
                    .map_err(|e| SourceError::Format(e.to_string()))?;
            }
            Err(PcapError::BufferTooSmall) => {
                // A block larger than the buffer: grow, within the limit.
                if size >= limits.max_block_bytes {
                    return Err(SourceError::BlockTooLarge(limits.max_block_bytes));
                }
                size = (size * 2).min(limits.max_block_bytes);
                if !reader.grow(size) {
                    return Err(SourceError::BlockTooLarge(size));
                }
                reader
                    .refill()
                    .map_err(|e| SourceError::Format(e.to_string()))?;
            }
            Err(e) => return Err(SourceError::Format(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn legacy_pcap(nanos: bool, packets: &[(u32, u32, &[u8])]) -> Vec<u8> {
        let mut f = Vec::new();
        let magic: u32 = if nanos { 0xa1b23c4d } else { 0xa1b2c3d4 };
        f.extend_from_slice(&magic.to_le_bytes());
        f.extend_from_slice(&2u16.to_le_bytes());
        f.extend_from_slice(&4u16.to_le_bytes());
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&65535u32.to_le_bytes());
        f.extend_from_slice(&1u32.to_le_bytes());
        for (s, sub, data) in packets {
            f.extend_from_slice(&s.to_le_bytes());
            f.extend_from_slice(&sub.to_le_bytes());
            let n = u32::try_from(data.len()).expect("small");
            f.extend_from_slice(&n.to_le_bytes());
            f.extend_from_slice(&n.to_le_bytes());
            f.extend_from_slice(data);
        }
        f
    }

    /// (timestamp, bytes) of every packet.
    type Packets = Vec<(u64, Vec<u8>)>;

    fn collect(bytes: &[u8], limits: SourceLimits) -> (Packets, Result<End, String>) {
        let mut out = Vec::new();
        let mut stats = ReadStats::default();
        let r = read_packets(
            std::io::Cursor::new(bytes.to_vec()),
            limits,
            &mut stats,
            |p| out.push((p.ts_micros, p.data.to_vec())),
        )
        .map_err(|e| e.to_string());
        (out, r)
    }

    #[test]
    fn legacy_micro_and_nano_timestamps() {
        let f = legacy_pcap(false, &[(10, 5, b"abc"), (11, 0, b"de")]);
        let (p, end) = collect(&f, SourceLimits::default());
        assert_eq!(end, Ok(End::Complete));
        assert_eq!(
            p,
            vec![(10_000_005, b"abc".to_vec()), (11_000_000, b"de".to_vec())]
        );
        let f = legacy_pcap(true, &[(10, 5_000, b"abc")]);
        let (p, _) = collect(&f, SourceLimits::default());
        assert_eq!(p[0].0, 10_000_005);
    }

    #[test]
    fn a_cut_file_is_reported_truncated_after_its_whole_packets() {
        let f = legacy_pcap(false, &[(1, 0, b"first"), (2, 0, b"second")]);
        let (p, end) = collect(&f[..f.len() - 3], SourceLimits::default());
        assert_eq!(end, Ok(End::Truncated));
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn blocks_beyond_the_buffer_grow_it_up_to_the_limit() {
        let big = vec![7u8; 20_000];
        let f = legacy_pcap(false, &[(1, 0, &big), (2, 0, b"x")]);
        let small = SourceLimits {
            buffer_bytes: 4096,
            max_block_bytes: 64 * 1024,
            ..SourceLimits::default()
        };
        let (p, end) = collect(&f, small);
        assert_eq!(end, Ok(End::Complete));
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].1.len(), 20_000);
        let tiny = SourceLimits {
            buffer_bytes: 4096,
            max_block_bytes: 8192,
            ..SourceLimits::default()
        };
        let (_, end) = collect(&f, tiny);
        assert!(end.is_err(), "{end:?}");
    }

    #[test]
    fn timestamps_convert_exactly_whatever_the_resolution() {
        assert_eq!(ts_micros(1_500_000, 1_000_000, 0), 1_500_000);
        assert_eq!(ts_micros(1_500_000_123, 1_000_000_000, 0), 1_500_000);
        assert_eq!(ts_micros(3 * 1024 + 512, 1024, 0), 3_500_000);
        assert_eq!(ts_micros(15, 10, 2), 3_500_000);
        assert_eq!(ts_micros(u64::MAX, 1, 0), u64::MAX);
    }

    /// A pcapng section of `ifaces` Ethernet interfaces and the packets
    /// (interface, microseconds, bytes), in file order.
    fn pcapng(ifaces: u32, packets: &[(u32, u64, Vec<u8>)]) -> Vec<u8> {
        fn block(f: &mut Vec<u8>, kind: u32, body: &[u8]) {
            let len = u32::try_from(12 + body.len().next_multiple_of(4)).expect("small");
            f.extend_from_slice(&kind.to_le_bytes());
            f.extend_from_slice(&len.to_le_bytes());
            f.extend_from_slice(body);
            f.resize(f.len() + (body.len().next_multiple_of(4) - body.len()), 0);
            f.extend_from_slice(&len.to_le_bytes());
        }
        let mut f = Vec::new();
        let mut shb = 0x1A2B_3C4Du32.to_le_bytes().to_vec();
        shb.extend_from_slice(&[1, 0, 0, 0]);
        shb.extend_from_slice(&(-1i64).to_le_bytes());
        block(&mut f, 0x0A0D_0D0A, &shb);
        for _ in 0..ifaces {
            let mut idb = 1u16.to_le_bytes().to_vec();
            idb.extend_from_slice(&[0, 0]);
            idb.extend_from_slice(&65535u32.to_le_bytes());
            block(&mut f, 1, &idb);
        }
        for (i, ts, data) in packets {
            let mut epb = i.to_le_bytes().to_vec();
            epb.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
            epb.extend_from_slice(&(*ts as u32).to_le_bytes());
            let n = u32::try_from(data.len()).expect("small");
            epb.extend_from_slice(&n.to_le_bytes());
            epb.extend_from_slice(&n.to_le_bytes());
            epb.extend_from_slice(data);
            block(&mut f, 6, &epb);
        }
        f
    }

    fn collect_stats(bytes: &[u8], limits: SourceLimits) -> (Packets, ReadStats) {
        let mut out = Vec::new();
        let mut stats = ReadStats::default();
        read_packets(
            std::io::Cursor::new(bytes.to_vec()),
            limits,
            &mut stats,
            |p| out.push((p.ts_micros, p.data.to_vec())),
        )
        .expect("reads");
        (out, stats)
    }

    #[test]
    fn two_interfaces_written_in_chunks_come_out_in_time_order() {
        // dumpcap's shape: interface 0's frames at 1-4 ms, then interface 1's
        // at 1.5-3.5 ms (written after), then interface 0 again.
        let ms = |t: f64| (t * 1000.0) as u64;
        let frames = [
            (0, ms(1.0), b"a".to_vec()),
            (0, ms(2.0), b"c".to_vec()),
            (0, ms(3.0), b"e".to_vec()),
            (1, ms(1.5), b"b".to_vec()),
            (1, ms(2.5), b"d".to_vec()),
            (1, ms(3.5), b"f".to_vec()),
            (0, ms(4.0), b"g".to_vec()),
            (0, ms(4.0), b"h".to_vec()),
        ];
        let (p, stats) = collect_stats(&pcapng(2, &frames), SourceLimits::default());
        let order: Vec<u8> = p.iter().map(|(_, d)| d[0]).collect();
        assert_eq!(order, b"abcdefgh");
        assert_eq!(stats.out_of_order, 0);
        // One interface: file order, whatever the timestamps (no copies).
        let one: Vec<_> = frames.iter().map(|(_, t, d)| (0, *t, d.clone())).collect();
        let (p, stats) = collect_stats(&pcapng(1, &one), SourceLimits::default());
        let order: Vec<u8> = p.iter().map(|(_, d)| d[0]).collect();
        assert_eq!(order, b"acebdfgh");
        assert_eq!(stats.out_of_order, 0);
    }

    #[test]
    fn a_new_section_hands_on_what_the_last_one_held() {
        // Two sections of two interfaces each: the first section's frames all
        // come out before the second's (interface numbers start afresh), each
        // section in time order.
        let a = pcapng(2, &[(0, 2_000, b"b".to_vec()), (1, 1_000, b"a".to_vec())]);
        let b = pcapng(2, &[(1, 600, b"d".to_vec()), (0, 500, b"c".to_vec())]);
        let mut both = a.clone();
        both.extend_from_slice(&b);
        let (p, stats) = collect_stats(&both, SourceLimits::default());
        let order: Vec<u8> = p.iter().map(|(_, d)| d[0]).collect();
        assert_eq!(order, b"abcd");
        // Sections are not merged with each other: the second's earlier
        // times are the file's order, not a lag within a merge.
        assert_eq!(stats.out_of_order, 0);
    }

    #[test]
    fn a_lag_past_the_window_or_the_bytes_is_counted_and_nothing_is_lost() {
        // Interface 1's frame written 8 s of capture time behind: past the
        // 2 s window, handed on late and counted.
        let frames = [
            (0, 1_000_000, b"a".to_vec()),
            (0, 7_000_000, b"c".to_vec()),
            (0, 10_000_000, b"d".to_vec()),
            (1, 2_000_000, b"b".to_vec()),
        ];
        let (p, stats) = collect_stats(&pcapng(2, &frames), SourceLimits::default());
        assert_eq!(p.len(), 4);
        assert_eq!(stats.out_of_order, 1);
        // The same within a 10 s window: in order.
        let wide = SourceLimits {
            reorder_window_us: 10_000_000,
            ..SourceLimits::default()
        };
        let (p, stats) = collect_stats(&pcapng(2, &frames), wide);
        let order: Vec<u8> = p.iter().map(|(_, d)| d[0]).collect();
        assert_eq!((order.as_slice(), stats.out_of_order), (&b"abcd"[..], 0));
        // Held bytes over their bound: the oldest goes, counted if late.
        let small = SourceLimits {
            reorder_window_us: 10_000_000,
            reorder_bytes: 0,
            ..SourceLimits::default()
        };
        let (p, stats) = collect_stats(&pcapng(2, &frames), small);
        assert_eq!(p.len(), 4);
        assert_eq!(stats.out_of_order, 1);
    }

    #[test]
    fn a_pcapng_block_shorter_than_its_framing_is_an_error_not_a_panic() {
        // The capture fuzz target's input: a section header, then a Process
        // Information Block (0x80000001) of length 9.
        let mut f = pcapng(1, &[(0, 1, b"a".to_vec())]);
        f.extend_from_slice(&0x8000_0001u32.to_le_bytes());
        f.extend_from_slice(&9u32.to_le_bytes());
        f.extend_from_slice(&[0; 12]);
        let mut out = Vec::new();
        let mut stats = ReadStats::default();
        let r = read_packets(
            std::io::Cursor::new(f),
            SourceLimits::default(),
            &mut stats,
            |p| out.push(p.data.to_vec()),
        );
        assert!(matches!(r, Err(SourceError::Format(_))), "{r:?}");
        assert_eq!(out, vec![b"a".to_vec()]);
        // Well-formed pcapng, either byte order of lengths, reads through.
        let (p, _) = collect_stats(
            &pcapng(2, &[(1, 5, b"x".to_vec())]),
            SourceLimits::default(),
        );
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn garbage_is_a_format_error() {
        let (_, end) = collect(
            b"this is not a capture file at all, not even close",
            SourceLimits::default(),
        );
        assert!(end.is_err());
    }

    proptest::proptest! {
        /// Any interleaving of interfaces whose own frames are in time order
        /// comes out as the time-ordered merge (file order among equal
        /// times), every frame once, when the lag stays within the window.
        #[test]
        fn interleaved_interfaces_merge_in_time_order(
            gaps in proptest::collection::vec((0u32..3, 0u64..500, 1usize..4), 1..60),
        ) {
            // Per interface, increasing times; written in runs of 1-3 frames
            // taken in the order the strategy draws interfaces.
            let mut next = [0u64; 3];
            let mut frames = Vec::new();
            for (n, (i, gap, run)) in gaps.iter().enumerate() {
                for k in 0..*run {
                    let idx = *i as usize;
                    next[idx] += gap + k as u64;
                    let tag = u8::try_from(frames.len() % 251).expect("small");
                    frames.push((*i, 1_000_000 + next[idx], vec![tag, u8::try_from(n % 251).expect("small")]));
                }
            }
            let (p, stats) = collect_stats(&pcapng(3, &frames), SourceLimits::default());
            let mut want: Vec<(u64, usize)> = frames.iter().enumerate().map(|(n, f)| (f.1, n)).collect();
            want.sort();
            let want: Vec<(u64, Vec<u8>)> = want.into_iter().map(|(t, n)| (t, frames[n].2.clone())).collect();
            proptest::prop_assert_eq!(stats.out_of_order, 0);
            proptest::prop_assert_eq!(p, want);
        }

        #[test]
        fn arbitrary_bytes_after_a_header_never_panic(tail in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let mut f = legacy_pcap(false, &[]);
            f.extend_from_slice(&tail);
            let _ = collect(&f, SourceLimits { buffer_bytes: 4096, max_block_bytes: 65536, ..SourceLimits::default() });
        }
    }
}
