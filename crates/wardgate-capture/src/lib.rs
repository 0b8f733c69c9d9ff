//! Passive analysis: captures (pcap, pcapng) and live traffic decoded down to TCP
//! and UDP payloads, TCP streams reassembled, and every message run through the
//! same engine and policy as the inline proxy. What the proxy would have blocked
//! is reported, not enforced.

pub mod analyzer;
pub mod decode;
pub mod defrag;
pub mod filter;
pub mod live;
pub mod reassembly;
pub mod source;

pub use analyzer::{Analyzer, FlowLimits, PacketCounts};
