//! Passive analysis end to end: whatever the capture holds (raw bytes as a pcap
//! body or as the blocks of a pcapng section with two interfaces, or TCP
//! segments in any order, direction, flags and content towards the
//! demo site's routes), reading, decoding, reassembly, every protocol parser and
//! the policy run without a panic, and memory stays within the flow limits.
#![no_main]
use etherparse::PacketBuilder;
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use wardgate_capture::decode::LinkType;
use wardgate_capture::source::{read_packets, Packet, ReadStats, SourceLimits};
use wardgate_capture::{Analyzer, FlowLimits};
use wardgate_config::{Config, Validated};
use wardgate_engine::observe::{ObserveOptions, Observer};
use wardgate_engine::Policy;

const SITE: &str = include_str!("../../examples/demo.toml");

fn site() -> &'static (Validated, Arc<Policy>) {
    static S: OnceLock<(Validated, Arc<Policy>)> = OnceLock::new();
    S.get_or_init(|| {
        let text = SITE
            .replace("{UPSTREAM_PORT}", "2575")
            .replace("{EHR_PORT}", "2576")
            .replace("{PACS_PORT}", "104")
            .replace("{BROKER_PORT}", "1883");
        let v = Config::parse(&text, "demo.toml", Path::new(".")).expect("demo config");
        let p = Arc::new(Policy::compile(&v).expect("demo policy"));
        (v, p)
    })
}

/// Server ports the segments go to: the demo's routes, and every protocol sniffed.
const PORTS: [u16; 8] = [2575, 104, 1883, 21, 23, 80, 445, 9999];

fuzz_target!(|data: &[u8]| {
    let (v, policy) = site();
    let observer = Observer::new(
        policy.clone(),
        v.local_networks.clone(),
        ObserveOptions {
            report_allowed: true,
            gateway: vec!["127.0.0.1".parse().expect("ip")],
        },
    );
    let limits = FlowLimits {
        max_flows: 4,
        timeout_us: 1_000_000,
        reassembly: wardgate_capture::reassembly::Limits {
            max_buffered_bytes: 4096,
            max_segments: 16,
        },
        max_buffered: 16 * 1024,
    };
    let mut a = Analyzer::new(observer, limits);
    let mut sink = |r: wardgate_event::event::Record| {
        if let wardgate_event::event::Record::Event(e) = r {
            let _ = e.to_json();
        }
    };
    // 1. Structured: segments of a few connections.
    let mut rest = data;
    let mut ts = 1_700_000_000_000_000u64;
    while rest.len() >= 5 {
        let (hdr, tail) = rest.split_at(5);
        let len = usize::from(hdr[4]).min(tail.len());
        let (payload, tail) = tail.split_at(len);
        rest = tail;
        let conn = hdr[0] & 0x03;
        let to_server = hdr[0] & 0x04 == 0;
        let port = PORTS[usize::from(hdr[0] >> 5)];
        let client = [127, 0, 0, 2 + conn];
        let server = [127, 0, 0, 3];
        let seq = u32::from(u16::from_le_bytes([hdr[1], hdr[2]])) << 4;
        let flags = hdr[3];
        let (src, dst, sp, dp) = if to_server {
            (client, server, 40000 + u16::from(conn), port)
        } else {
            (server, client, port, 40000 + u16::from(conn))
        };
        let mut b = PacketBuilder::ethernet2([2; 6], [3; 6])
            .ipv4(src, dst, 64)
            .tcp(sp, dp, seq, 65535);
        if flags & 1 != 0 {
            b = b.syn();
        }
        if flags & 2 != 0 {
            b = b.fin();
        }
        if flags & 4 != 0 {
            b = b.rst();
        }
        if flags & 8 != 0 {
            b = b.ack(1);
        }
        let mut frame = Vec::new();
        if b.write(&mut frame, payload).is_err() {
            continue;
        }
        ts += u64::from(flags >> 4) * 100_000;
        // Some frames as a capture with a snap length cuts them: the headers
        // and half the payload.
        let captured = if hdr[0] & 0x08 != 0 {
            54 + payload.len() / 2
        } else {
            frame.len()
        };
        a.packet(
            Packet {
                ts_micros: ts,
                link: Some(LinkType::Ethernet),
                data: &frame[..captured],
                orig_len: frame.len() as u32,
            },
            &mut sink,
        );
        assert!(a.tracked() <= 4, "flow table over its limit");
        assert!(a.held() <= 16 * 1024, "memory budget exceeded");
    }
    a.finish_all(&mut sink);
    // 2. Raw: the same bytes as the body of a pcap file.
    let mut file = Vec::with_capacity(24 + data.len());
    file.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    file.extend_from_slice(&[2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    file.extend_from_slice(&65535u32.to_le_bytes());
    file.extend_from_slice(&1u32.to_le_bytes());
    file.extend_from_slice(data);
    // Reads a capture file through a fresh analyser.
    let small = SourceLimits {
        buffer_bytes: 4096,
        max_block_bytes: 1 << 16,
        reorder_window_us: 1_000_000,
        reorder_bytes: 1 << 16,
    };
    let mut analyse_file = |bytes: Vec<u8>| {
        let observer = Observer::new(
            policy.clone(),
            v.local_networks.clone(),
            ObserveOptions::default(),
        );
        let mut b = Analyzer::new(observer, limits);
        let mut stats = ReadStats::default();
        let _ = read_packets(std::io::Cursor::new(bytes), small, &mut stats, |p| {
            b.packet(p, &mut sink)
        });
        b.finish_all(&mut sink);
    };
    analyse_file(file);
    // 3. The same bytes as blocks of a pcapng section with two interfaces
    // (merged by time: the reorder buffer's bounds hold whatever the blocks).
    let mut ng = Vec::with_capacity(80 + data.len());
    let block = |f: &mut Vec<u8>, kind: u32, body: &[u8]| {
        let len = 12 + body.len() as u32;
        f.extend_from_slice(&kind.to_le_bytes());
        f.extend_from_slice(&len.to_le_bytes());
        f.extend_from_slice(body);
        f.extend_from_slice(&len.to_le_bytes());
    };
    let mut shb = 0x1A2B_3C4Du32.to_le_bytes().to_vec();
    shb.extend_from_slice(&[1, 0, 0, 0]);
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    block(&mut ng, 0x0A0D_0D0A, &shb);
    for _ in 0..2 {
        let mut idb = 1u16.to_le_bytes().to_vec();
        idb.extend_from_slice(&[0, 0]);
        idb.extend_from_slice(&65535u32.to_le_bytes());
        block(&mut ng, 1, &idb);
    }
    ng.extend_from_slice(data);
    analyse_file(ng);
});
