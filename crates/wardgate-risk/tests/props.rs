//! Property tests: no reader panics on any bytes or any JSON, and a MUD file
//! drafted from flows allows exactly those flows.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns; a panic is a failed test

use proptest::prelude::*;
use serde_json::Value;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use wardgate_risk::mud::{self, Direction, MudSite, ObservedFlow};
use wardgate_risk::{sbom, vex};

fn read_all(bytes: &[u8]) {
    let _ = sbom::read(bytes, &sbom::Limits::default());
    let _ = vex::read(bytes, &vex::Limits::default());
    if let Ok(m) = mud::read(bytes, &mud::Limits::default()) {
        let flow = ObservedFlow {
            direction: Direction::FromDevice,
            peer: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            transport: 6,
            remote_port: 443,
            device_port: None,
            initiated_by_device: true,
            count: 1,
            first_seen: None,
            last_seen: None,
            evidence: String::new(),
        };
        let _ = mud::compare(&m, &[flow], &MudSite::default());
    }
}

/// Any JSON, biased towards the keys and values the readers look at.
fn json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("bomFormat".to_string()),
        Just("specVersion".to_string()),
        Just("components".to_string()),
        Just("name".to_string()),
        Just("spdxVersion".to_string()),
        Just("packages".to_string()),
        Just("@context".to_string()),
        Just("statements".to_string()),
        Just("vulnerabilities".to_string()),
        Just("document".to_string()),
        Just("category".to_string()),
        Just("product_tree".to_string()),
        Just("branches".to_string()),
        Just("ietf-mud:mud".to_string()),
        Just("ietf-access-control-list:acls".to_string()),
        Just("acl".to_string()),
        Just("aces".to_string()),
        Just("ace".to_string()),
        Just("matches".to_string()),
        "[a-z@:-]{1,12}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        prop_oneof![
            Just("CycloneDX".to_string()),
            Just("1.5".to_string()),
            Just("SPDX-2.3".to_string()),
            Just("https://openvex.dev/ns/v0.2.0".to_string()),
            Just("csaf_vex".to_string()),
            Just("not_affected".to_string()),
            Just("10.0.0.0/8".to_string()),
            ".{0,12}",
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn flow() -> impl Strategy<Value = ObservedFlow> {
    let addr = prop_oneof![
        (0u8..4).prop_map(|h| IpAddr::V4(Ipv4Addr::new(192, 168, 1, h))),
        any::<u32>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        any::<u128>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
    ];
    let transport = prop_oneof![Just(6u8), Just(17u8), any::<u8>()];
    (
        any::<bool>(),
        addr,
        transport,
        prop_oneof![Just(443u16), any::<u16>()],
        prop::option::of(any::<u16>()),
        any::<bool>(),
        prop::option::of("20[0-9]{2}-0[1-9]-1[0-9]T00:00:00Z"),
    )
        .prop_map(
            |(from, peer, transport, remote_port, device_port, by_device, seen)| ObservedFlow {
                direction: if from {
                    Direction::FromDevice
                } else {
                    Direction::ToDevice
                },
                peer,
                transport,
                remote_port,
                device_port,
                initiated_by_device: by_device,
                count: 1,
                first_seen: seen.clone(),
                last_seen: seen,
                evidence: "prop".into(),
            },
        )
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        read_all(&bytes);
    }

    #[test]
    fn arbitrary_json_never_panics(v in json()) {
        let bytes = serde_json::to_vec(&v).unwrap();
        read_all(&bytes);
    }

    #[test]
    fn drafted_mud_allows_exactly_its_flows(
        flows in prop::collection::vec(flow(), 0..24),
        local in any::<bool>(),
        extra in flow(),
    ) {
        let site = MudSite {
            local_networks: if local { vec!["192.168.1.0/24".parse().unwrap()] } else { Vec::new() },
            ..MudSite::default()
        };
        let json = mud::generate("https://mud.example/d", "M", "D", &flows, &site);
        let bytes = serde_json::to_vec(&json).unwrap();
        let m = mud::read(&bytes, &mud::Limits::default()).unwrap();
        prop_assert!(m.problems.is_empty(), "{:?}", m.problems);
        let d = mud::compare(&m, &flows, &site);
        prop_assert!(d.is_empty(), "{:#?}", d);
        // A flow in a direction nothing was drafted for is reported, never
        // allowed.
        if !flows.iter().any(|f| f.direction == extra.direction) {
            let d = mud::compare(&m, std::slice::from_ref(&extra), &site);
            prop_assert_eq!(d.len(), 1);
            prop_assert_eq!(d[0].kind, mud::DeviationKind::NotInMud);
        }
    }
}
