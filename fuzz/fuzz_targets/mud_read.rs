//! Any bytes read as a MUD file give rules or a typed error, never a panic;
//! comparing flows against what was read never panics; and a file drafted
//! from flows reads back and allows exactly those flows.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use wardgate_risk::mud::{compare, generate, read, Direction, Limits, MudSite, ObservedFlow};

fn flows(data: &[u8]) -> Vec<ObservedFlow> {
    data.chunks_exact(8)
        .take(16)
        .map(|c| ObservedFlow {
            direction: if c[0] & 1 == 0 {
                Direction::FromDevice
            } else {
                Direction::ToDevice
            },
            peer: if c[0] & 2 == 0 {
                IpAddr::V4(Ipv4Addr::new(192, 168, c[1] & 1, c[2]))
            } else {
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, u16::from(c[1]), u16::from(c[2])))
            },
            transport: match c[3] % 4 {
                0 => 6,
                1 => 17,
                _ => c[3],
            },
            remote_port: u16::from_be_bytes([c[4], c[5]]),
            device_port: (c[0] & 4 != 0).then(|| u16::from_be_bytes([c[6], c[7]])),
            initiated_by_device: c[0] & 8 != 0,
            count: 1,
            first_seen: None,
            last_seen: None,
            evidence: "fuzz".into(),
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let observed = flows(data);
    let site = MudSite {
        local_networks: vec!["192.168.0.0/24".parse().expect("a valid prefix")],
        ..MudSite::default()
    };
    if let Ok(mud) = read(data, &Limits::default()) {
        let _ = compare(&mud, &observed, &site);
    }
    let drafted = generate("https://mud.example/fuzz", "M", "D", &observed, &site);
    let bytes = serde_json::to_vec(&drafted).expect("JSON serialises");
    let mud = read(&bytes, &Limits::default()).expect("a drafted file reads back");
    assert!(compare(&mud, &observed, &site).is_empty());
});
