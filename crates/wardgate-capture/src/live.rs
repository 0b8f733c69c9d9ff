//! Live capture from a network interface (a SPAN/mirror port, a tap, or any host
//! interface) through libpcap, which on Linux reads an AF_PACKET socket's
//! memory-mapped ring (TPACKET_V3). Requires CAP_NET_RAW (root, or
//! `setcap cap_net_raw+ep` on the binary).
//!
//! Why libpcap rather than a raw socket of our own: it gives the kernel's drop
//! counters (`PACKET_STATISTICS`, which a monitor must report: a packet the ring
//! had no room for is a hole in what wardgate judged), kernel timestamps, VLAN
//! tags put back into the frame (the kernel strips them into metadata; flows
//! are keyed by them), and the loopback interface's outgoing copy skipped (each
//! packet is seen once). Reading the counters ourselves would need `unsafe`.
//!
//! `wardgate capture --filter` is not compiled into the kernel: BPF reads TCP
//! ports at a fixed offset, so an IPv6 packet with an extension header the
//! host accepts (or a fragment) would be dropped there, unseen. The filter
//! runs on the decoded packet instead; `kernel_filter` exists for callers
//! that know their traffic has no such packets.
//!
//! The packets then go through exactly the code a capture file goes through.

use crate::decode::LinkType;
use crate::source::Packet;
use rustix::event::{PollFd, PollFlags, Timespec};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to capture and for how long.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// Interface name (`eth1`, `lo`, `any`...).
    pub interface: String,
    /// Set to stop (from a signal handler).
    pub stop: Arc<AtomicBool>,
    /// Stop after this many packets.
    pub max_packets: Option<u64>,
    /// Stop after this long.
    pub max_duration: Option<Duration>,
    /// The kernel ring's size in bytes: what absorbs a burst while wardgate is
    /// busy. Packets that find it full are dropped by the kernel (and counted).
    pub buffer_bytes: usize,
    /// A pcap-filter expression compiled into the kernel, so that packets it
    /// leaves out never take room in the ring. What it drops is never seen:
    /// see the module docs for why `wardgate capture` passes none.
    pub kernel_filter: Option<String>,
}

/// The ring's default size: about a second of a busy 100 Mbit/s SPAN port.
pub const DEFAULT_BUFFER_BYTES: usize = 32 << 20;

/// The kernel's and the interface's drop counters, cumulative since the
/// capture started. The kernel counts a packet on loopback twice (leaving and
/// arriving), although wardgate is handed only one copy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Drops {
    /// Packets that arrived at the capture socket and found its ring full.
    pub kernel: u64,
    /// Packets the interface or its driver dropped (as the kernel reports
    /// them for the whole interface, since the capture started).
    pub interface: u64,
    /// Packets the socket accepted (passed its filter), dropped ones included.
    pub received: u64,
}

/// Why live capture could not run.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// No such interface.
    #[error("no interface named {0:?} (available: {1})")]
    NoInterface(String, String),
    /// The capture could not be opened (usually: CAP_NET_RAW is missing).
    #[error("opening a capture on {0}: {1} (live capture needs CAP_NET_RAW: run as root or `setcap cap_net_raw+ep` the binary)")]
    Open(String, String),
    /// The interface's link layer is not one wardgate decodes.
    #[error("interface {0} has link type {1}, which wardgate does not decode")]
    Link(String, String),
    /// The kernel filter did not compile.
    #[error("filter {0:?} on {1}: {2}")]
    Filter(String, String, String),
    /// Reading failed.
    #[error("reading from {0}: {1}")]
    Read(String, String),
}

/// How long an idle loop sleeps before it looks at the stop flag again.
const WAKE_EVERY: Timespec = Timespec {
    tv_sec: 0,
    tv_nsec: 100_000_000,
};

/// How often the drop counters are read (a system call each time).
const STATS_EVERY: Duration = Duration::from_secs(1);

/// Captures until stopped or a limit is reached. `each` gets every packet;
/// `dropped` gets the cumulative counters whenever they grow (read about once a
/// second and at the end, so a burst of drops is reported while it matters).
/// Returns the packet count and the final counters.
pub fn capture(
    opts: &LiveOptions,
    mut each: impl FnMut(Packet<'_>),
    mut dropped: impl FnMut(Drops),
) -> Result<(u64, Drops), LiveError> {
    let name = &opts.interface;
    let devices = pcap::Device::list().map_err(|e| LiveError::Open(name.clone(), e.to_string()))?;
    let Some(device) = devices.into_iter().find(|d| &d.name == name) else {
        let names: Vec<_> = pcap::Device::list()
            .unwrap_or_default()
            .into_iter()
            .map(|d| d.name)
            .collect();
        return Err(LiveError::NoInterface(name.clone(), names.join(", ")));
    };
    let mut cap = pcap::Capture::from_device(device)
        .and_then(|c| {
            c.promisc(true)
                // The largest frame on any interface (loopback's reach 64 KiB).
                .snaplen(262_144)
                .buffer_size(i32::try_from(opts.buffer_bytes).unwrap_or(i32::MAX))
                // A ring block is handed over when full or after this long, and
                // the loop wakes up to notice a stop request or a time limit.
                .timeout(100)
                .open()
        })
        // Non-blocking, and the loop polls the socket itself: with the
        // TPACKET_V3 ring a blocking read waits for the first packet however
        // long that takes, so a quiet interface would never notice a stop.
        .and_then(|c| c.setnonblock())
        .map_err(|e| LiveError::Open(name.clone(), e.to_string()))?;
    let dlt = cap.get_datalink();
    let Some(link) = LinkType::from_linktype(dlt.0) else {
        let what = dlt.get_name().unwrap_or_else(|_| dlt.0.to_string());
        return Err(LiveError::Link(name.clone(), what));
    };
    if let Some(f) = &opts.kernel_filter {
        cap.filter(f, true)
            .map_err(|e| LiveError::Filter(f.clone(), name.clone(), e.to_string()))?;
    }
    let started = Instant::now();
    let mut counter = DropCounter::default();
    let mut last_stats = started;
    let mut n = 0u64;
    let mut poll = |cap: &mut pcap::Capture<pcap::Active>, counter: &mut DropCounter| {
        if let Ok(s) = cap.stats() {
            if counter.update(s.received, s.dropped, s.if_dropped) {
                dropped(counter.total);
            }
        }
    };
    loop {
        if opts.stop.load(Ordering::Relaxed)
            || opts.max_packets.is_some_and(|m| n >= m)
            || opts.max_duration.is_some_and(|d| started.elapsed() >= d)
        {
            break;
        }
        match cap.next_packet() {
            Ok(p) => {
                n += 1;
                let sec = u64::try_from(p.header.ts.tv_sec).unwrap_or(0);
                let usec = u64::try_from(p.header.ts.tv_usec).unwrap_or(0);
                each(Packet {
                    ts_micros: sec.saturating_mul(1_000_000).saturating_add(usec),
                    link: Some(link),
                    data: p.data,
                    orig_len: p.header.len,
                });
                // Checking the clock costs little next to the analysis; the
                // counters are read at most once a second.
                if n.is_multiple_of(256) && last_stats.elapsed() >= STATS_EVERY {
                    last_stats = Instant::now();
                    poll(&mut cap, &mut counter);
                }
            }
            Err(pcap::Error::TimeoutExpired) => {
                if last_stats.elapsed() >= STATS_EVERY {
                    last_stats = Instant::now();
                    poll(&mut cap, &mut counter);
                }
                // Nothing ready: sleep until the kernel hands over a block (or
                // a tenth of a second passes).
                let mut fds = [PollFd::new(&cap, PollFlags::IN)];
                match rustix::event::poll(&mut fds, Some(&WAKE_EVERY)) {
                    Ok(_) | Err(rustix::io::Errno::INTR) => {}
                    Err(e) => return Err(LiveError::Read(name.clone(), e.to_string())),
                }
            }
            Err(e) => return Err(LiveError::Read(name.clone(), e.to_string())),
        }
    }
    poll(&mut cap, &mut counter);
    Ok((n, counter.total))
}

/// libpcap's counters are 32-bit and wrap; these are kept in 64 bits by adding
/// each reading's difference from the last (read far more often than a wrap).
#[derive(Debug, Default)]
struct DropCounter {
    last: [u32; 3],
    total: Drops,
}

impl DropCounter {
    /// Takes a reading; true when a drop counter grew.
    fn update(&mut self, received: u32, kernel: u32, interface: u32) -> bool {
        let now = [received, kernel, interface];
        let d = [0, 1, 2].map(|i| u64::from(now[i].wrapping_sub(self.last[i])));
        self.last = now;
        self.total.received += d[0];
        self.total.kernel += d[1];
        self.total.interface += d[2];
        d[1] > 0 || d[2] > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_survive_a_wrap_and_report_only_growth() {
        let mut c = DropCounter::default();
        assert!(!c.update(10, 0, 0));
        assert!(c.update(20, 3, 0));
        assert!(!c.update(25, 3, 0));
        assert!(c.update(u32::MAX, 3, 1));
        // Wraps: 5 more received, 2 more dropped.
        c.last[1] = u32::MAX - 1;
        assert!(c.update(4, 0, 1));
        assert_eq!(
            c.total,
            Drops {
                received: u64::from(u32::MAX) + 5,
                kernel: 3 + 2,
                interface: 1
            }
        );
    }

    #[test]
    fn a_missing_interface_is_named_with_the_ones_there_are() {
        let opts = LiveOptions {
            interface: "no-such-if0".into(),
            stop: Arc::default(),
            max_packets: Some(1),
            max_duration: Some(Duration::from_millis(1)),
            buffer_bytes: DEFAULT_BUFFER_BYTES,
            kernel_filter: None,
        };
        match capture(&opts, |_| {}, |_| {}) {
            Err(LiveError::NoInterface(n, all)) => {
                assert_eq!(n, "no-such-if0");
                assert!(all.contains("lo"), "{all}");
            }
            other => panic!("{other:?}"),
        }
    }
}
