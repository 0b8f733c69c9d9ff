//! Packets from capture files: pcap (micro- and nanosecond, either byte order) and
//! pcapng (several interfaces and sections), read through one bounded buffer so
//! memory does not depend on the file's size. Parsing is pcap-parser's.

use crate::decode::LinkType;
use pcap_parser::pcapng::Block;
use pcap_parser::{create_reader, PcapBlockOwned, PcapError};
use std::io::Read;

/// Reading limits.
#[derive(Debug, Clone, Copy)]
pub struct SourceLimits {
    /// Initial read buffer.
    pub buffer_bytes: usize,
    /// Largest single block (packet record) accepted; the buffer grows to this.
    pub max_block_bytes: usize,
}

impl Default for SourceLimits {
    fn default() -> Self {
        SourceLimits {
            // Small enough to stay in the CPU cache: the kernel's copy into it and
            // the parsing out of it then run at cache speed (measured: a 1 MiB
            // buffer behind a 1 MiB BufReader spent half the time copying).
            buffer_bytes: 256 << 10,
            max_block_bytes: 16 << 20,
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
    mut each: impl FnMut(Packet<'_>),
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
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => interfaces.clear(),
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb))
                        if interfaces.len() < MAX_INTERFACES =>
                    {
                        interfaces.push(Interface {
                            link: LinkType::from_linktype(idb.linktype.0),
                            resolution: idb.ts_resolution().unwrap_or(1_000_000),
                            offset: idb.ts_offset(),
                        });
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
                        each(Packet {
                            ts_micros: ts_micros(units, res, off),
                            link,
                            data: epb.data.get(..caplen).unwrap_or(epb.data),
                            orig_len: epb.origlen,
                        });
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
        let r = read_packets(std::io::Cursor::new(bytes.to_vec()), limits, |p| {
            out.push((p.ts_micros, p.data.to_vec()))
        })
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
        };
        let (p, end) = collect(&f, small);
        assert_eq!(end, Ok(End::Complete));
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].1.len(), 20_000);
        let tiny = SourceLimits {
            buffer_bytes: 4096,
            max_block_bytes: 8192,
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

    #[test]
    fn garbage_is_a_format_error() {
        let (_, end) = collect(
            b"this is not a capture file at all, not even close",
            SourceLimits::default(),
        );
        assert!(end.is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_after_a_header_never_panic(tail in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let mut f = legacy_pcap(false, &[]);
            f.extend_from_slice(&tail);
            let _ = collect(&f, SourceLimits { buffer_bytes: 4096, max_block_bytes: 65536 });
        }
    }
}
