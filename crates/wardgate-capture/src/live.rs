//! Live capture from a network interface (a SPAN/mirror port, a tap, or any host
//! interface) through a Linux AF_PACKET socket, via pnet_datalink: no libpcap
//! needed. Requires CAP_NET_RAW (root, or `setcap cap_net_raw+ep` on the binary).
//!
//! On the loopback interface the kernel hands a packet socket every packet twice
//! (once leaving, once arriving); reassembly discards the second copy as a
//! retransmission, so message counts are right and packet counts double.

use crate::decode::LinkType;
use crate::source::Packet;
use pnet_datalink::{Channel, Config};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What to capture and for how long.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// Interface name (`eth1`, `lo`...).
    pub interface: String,
    /// Set to stop (from a signal handler).
    pub stop: Arc<AtomicBool>,
    /// Stop after this many packets.
    pub max_packets: Option<u64>,
    /// Stop after this long.
    pub max_duration: Option<Duration>,
}

/// Why live capture could not run.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// No such interface.
    #[error("no interface named {0:?} (available: {1})")]
    NoInterface(String, String),
    /// The socket could not be opened (usually: CAP_NET_RAW is missing).
    #[error("opening a packet socket on {0}: {1} (live capture needs CAP_NET_RAW: run as root or `setcap cap_net_raw+ep` the binary)")]
    Open(String, std::io::Error),
    /// Reading failed.
    #[error("reading from {0}: {1}")]
    Read(String, std::io::Error),
}

/// Captures until stopped or a limit is reached; returns the packet count.
pub fn capture(opts: &LiveOptions, mut each: impl FnMut(Packet<'_>)) -> Result<u64, LiveError> {
    let all = pnet_datalink::interfaces();
    let Some(iface) = all.iter().find(|i| i.name == opts.interface) else {
        let names: Vec<_> = all.iter().map(|i| i.name.as_str()).collect();
        return Err(LiveError::NoInterface(
            opts.interface.clone(),
            names.join(", "),
        ));
    };
    let config = Config {
        // Loopback frames reach 64 KiB; the largest frame on any interface fits.
        read_buffer_size: 1 << 17,
        // Wake up now and then to notice a stop request or a time limit.
        read_timeout: Some(Duration::from_millis(200)),
        promiscuous: true,
        ..Config::default()
    };
    let mut rx = match pnet_datalink::channel(iface, config) {
        Ok(Channel::Ethernet(_, rx)) => rx,
        Ok(_) => {
            return Err(LiveError::Open(
                opts.interface.clone(),
                std::io::Error::other("not an Ethernet-like channel"),
            ))
        }
        Err(e) => return Err(LiveError::Open(opts.interface.clone(), e)),
    };
    let started = Instant::now();
    let mut n = 0u64;
    loop {
        if opts.stop.load(Ordering::Relaxed)
            || opts.max_packets.is_some_and(|m| n >= m)
            || opts.max_duration.is_some_and(|d| started.elapsed() >= d)
        {
            return Ok(n);
        }
        match rx.next() {
            Ok(frame) => {
                n += 1;
                let ts = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
                    .unwrap_or(0);
                each(Packet {
                    ts_micros: ts,
                    link: Some(LinkType::Ethernet),
                    data: frame,
                    orig_len: u32::try_from(frame.len()).unwrap_or(u32::MAX),
                });
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(LiveError::Read(opts.interface.clone(), e)),
        }
    }
}
