//! A `--filter` expression of any text compiles or is refused with a located
//! error (no panic, bounded depth and length), and a compiled filter evaluates
//! on a decoded packet.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wardgate_capture::decode::{Decoded, Tcp, Transport};
use wardgate_capture::filter::Filter;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(f) = Filter::parse(text) {
        let d = Decoded {
            src_mac: None,
            dst_mac: None,
            vlan: Some(7),
            vlans: 8,
            sent_by_capture_host: false,
            cooked: None,
            reassembled: false,
            src: "10.1.2.3".parse().expect("ip"),
            dst: "10.1.2.4".parse().expect("ip"),
            ttl: 64,
            host_drop: None,
            transport: Transport::Tcp(Tcp {
                src_port: 40000,
                dst_port: 2575,
                ..Tcp::default()
            }),
            ip_len: 40,
        };
        let _ = f.matches(&d);
    }
});
