#![allow(clippy::unwrap_used)] // a panic is a failed test

use super::*;
use proptest::prelude::*;
use wardgate_proto::mqtt::codec::{decode, Limits, Packet, Version};

const NOW: i64 = 1_790_000_000;
const TOPIC: &str = "home/monitor-1/cmd/pace";
const NONCE: &str = "n0nce-0001";

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn signer(id: &str, n: u8, commanders: &[&str]) -> SignerKey {
    SignerKey {
        id: id.into(),
        key: key(n).verifying_key(),
        commanders: commanders.iter().map(|c| Arc::from(*c)).collect(),
    }
}

fn authority(opts: AuthorityOptions) -> Authority {
    Authority::new(
        vec![
            signer("clinic-key", 1, &["clinic"]),
            signer("other-key", 2, &["clinic", "backup"]),
        ],
        opts,
    )
}

/// An envelope payload signed by `key(n)` as `id`.
fn payload(id: &str, n: u8, topic: &str, ts: i64, nonce: &str, body: &[u8]) -> Vec<u8> {
    let sig = sign(&key(n), topic, ts, nonce, body);
    let mut out = Vec::new();
    write_envelope_header(id, ts, nonce, &sig, &mut out);
    out.extend_from_slice(body);
    out
}

fn check(a: &mut Authority, p: &[u8], now: i64) -> Result<Arc<str>, CommandRefusal> {
    let env = envelope_payload(p).unwrap().unwrap();
    a.check_signature("clinic", TOPIC, &env, now)
}

/// A variable byte integer.
fn vbi(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let b = (n % 128) as u8;
        n /= 128;
        if n == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn mqtt_str(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// An MQTT 5 QoS 0 PUBLISH with these user properties.
fn publish_v5(topic: &str, props: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    for (k, v) in props {
        p.push(0x26);
        mqtt_str(k, &mut p);
        mqtt_str(v, &mut p);
    }
    let mut var = Vec::new();
    mqtt_str(topic, &mut var);
    vbi(p.len(), &mut var);
    var.extend_from_slice(&p);
    var.extend_from_slice(payload);
    let mut pkt = vec![0x30];
    vbi(var.len(), &mut pkt);
    pkt.extend_from_slice(&var);
    pkt
}

/// Runs `f` on the envelope read from a PUBLISH with these properties.
fn with_v5<R>(
    props: &[(&str, &str)],
    body: &[u8],
    f: impl FnOnce(Result<Option<Envelope<'_>>, SignatureFault>) -> R,
) -> R {
    let pkt = publish_v5(TOPIC, props, body);
    let limits = Limits {
        max_user_properties: 64,
        ..Limits::default()
    };
    let Ok(Packet::Publish(p)) = decode(&pkt, Version::V5, &limits) else {
        panic!("test PUBLISH does not decode")
    };
    f(envelope_v5(&p.properties, p.payload))
}

fn v5_props(id: &str, n: u8, ts: i64, nonce: &str, body: &[u8]) -> Vec<(String, String)> {
    let sig = sign(&key(n), TOPIC, ts, nonce, body);
    vec![
        (PROP_SIGNER.into(), id.into()),
        (PROP_TS.into(), ts.to_string()),
        (PROP_NONCE.into(), nonce.into()),
        (PROP_SIG.into(), encode_signature(&sig)),
    ]
}

fn refs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
}

#[test]
fn good_signature_accepted() {
    let mut a = authority(AuthorityOptions::default());
    let p = payload("clinic-key", 1, TOPIC, NOW, NONCE, b"{\"rate\":60}");
    let env = envelope_payload(&p).unwrap().unwrap();
    assert_eq!(env.signer, "clinic-key");
    assert_eq!(env.timestamp, NOW);
    assert_eq!(env.nonce, NONCE);
    assert_eq!(env.body, b"{\"rate\":60}");
    assert_eq!(&*check(&mut a, &p, NOW).unwrap(), "clinic-key");
    assert_eq!(a.nonces_held(), 1);
    // Debug leaves the signature out.
    assert!(!format!("{env:?}").contains("signature"));
}

#[test]
fn good_signature_v5_accepted() {
    let mut a = authority(AuthorityOptions::default());
    let props = v5_props("other-key", 2, NOW, NONCE, b"go");
    with_v5(&refs(&props), b"go", |env| {
        let env = env.unwrap().unwrap();
        assert_eq!(env.body, b"go");
        assert_eq!(
            &*a.check_signature("backup", TOPIC, &env, NOW + 10).unwrap(),
            "other-key"
        );
    });
}

#[test]
fn unsigned_is_none() {
    assert_eq!(envelope_payload(b"{\"rate\":60}").unwrap(), None);
    assert_eq!(envelope_payload(b"").unwrap(), None);
    assert_eq!(envelope_payload(b"WGSIG1").unwrap(), None);
    assert_eq!(envelope_payload(b"WGSIG2 a 1 nonce123 x\n").unwrap(), None);
    with_v5(&[("content", "x"), ("wgsig", "y")], b"p", |e| {
        assert_eq!(e.unwrap(), None)
    });
    with_v5(&[], b"p", |e| assert_eq!(e.unwrap(), None));
}

#[test]
fn any_altered_byte_refused() {
    let body = b"{\"rate\":60}";
    let sig = sign(&key(1), TOPIC, NOW, NONCE, body);
    let mut a = authority(AuthorityOptions::default());
    // Topic: every byte changed.
    for i in 0..TOPIC.len() {
        let mut t = TOPIC.as_bytes().to_vec();
        t[i] = if t[i] == b'x' { b'y' } else { b'x' };
        let t = String::from_utf8(t).unwrap();
        let env = Envelope {
            signer: "clinic-key",
            timestamp: NOW,
            nonce: NONCE,
            signature: sig,
            body,
        };
        let r = a.check_signature("clinic", &t, &env, NOW);
        assert!(
            matches!(r, Err(CommandRefusal::Signature(_))),
            "topic byte {i}"
        );
    }
    // Timestamp: every digit changed, within the window so only the
    // signature can refuse it.
    let ts = NOW.to_string();
    for i in 0..ts.len() {
        for d in [1, 9] {
            let mut t = ts.clone().into_bytes();
            t[i] = b'0' + (t[i] - b'0' + d) % 10;
            if i == 0 && t[0] == b'0' {
                continue;
            }
            let tsv: i64 = std::str::from_utf8(&t).unwrap().parse().unwrap();
            let env = Envelope {
                signer: "clinic-key",
                timestamp: tsv,
                nonce: NONCE,
                signature: sig,
                body,
            };
            let r = a.check_signature("clinic", TOPIC, &env, tsv);
            assert!(
                matches!(r, Err(CommandRefusal::Signature(_))),
                "ts digit {i}"
            );
        }
    }
    // Nonce.
    for i in 0..NONCE.len() {
        let mut n = NONCE.as_bytes().to_vec();
        n[i] = if n[i] == b'z' { b'y' } else { b'z' };
        let n = String::from_utf8(n).unwrap();
        let env = Envelope {
            signer: "clinic-key",
            timestamp: NOW,
            nonce: &n,
            signature: sig,
            body,
        };
        let r = a.check_signature("clinic", TOPIC, &env, NOW);
        assert!(matches!(r, Err(CommandRefusal::Signature(_))), "nonce {i}");
    }
    // Body: every byte, and cut or lengthened.
    for i in 0..body.len() {
        for x in [1u8, 0x80] {
            let mut b = body.to_vec();
            b[i] ^= x;
            let env = Envelope {
                signer: "clinic-key",
                timestamp: NOW,
                nonce: NONCE,
                signature: sig,
                body: &b,
            };
            let r = a.check_signature("clinic", TOPIC, &env, NOW);
            assert!(matches!(r, Err(CommandRefusal::Signature(_))), "body {i}");
        }
    }
    for b in [&body[..body.len() - 1], &b"{\"rate\":60}\n"[..]] {
        let env = Envelope {
            signer: "clinic-key",
            timestamp: NOW,
            nonce: NONCE,
            signature: sig,
            body: b,
        };
        assert!(matches!(
            a.check_signature("clinic", TOPIC, &env, NOW),
            Err(CommandRefusal::Signature(_))
        ));
    }
    // Signature: every byte.
    for i in 0..64 {
        let mut s = sig;
        s[i] ^= 1;
        let env = Envelope {
            signer: "clinic-key",
            timestamp: NOW,
            nonce: NONCE,
            signature: s,
            body,
        };
        assert!(matches!(
            a.check_signature("clinic", TOPIC, &env, NOW),
            Err(CommandRefusal::Signature(_))
        ));
    }
    // None of the forgeries burnt the nonce: the genuine command passes.
    assert_eq!(a.nonces_held(), 0);
    let env = Envelope {
        signer: "clinic-key",
        timestamp: NOW,
        nonce: NONCE,
        signature: sig,
        body,
    };
    assert!(a.check_signature("clinic", TOPIC, &env, NOW).is_ok());
}

#[test]
fn signer_unknown_or_not_bound_refused() {
    let mut a = authority(AuthorityOptions::default());
    let p = payload("nobody", 1, TOPIC, NOW, NONCE, b"x");
    let r = check(&mut a, &p, NOW).unwrap_err();
    assert_eq!(r.rule(), rules::MQTT_COMMAND_SIGNATURE);
    assert!(r.to_string().contains("unknown signer \"nobody\""), "{r}");
    // Signed by key 1 but claiming other-key.
    let p = payload("other-key", 1, TOPIC, NOW, NONCE, b"x");
    assert!(matches!(
        check(&mut a, &p, NOW),
        Err(CommandRefusal::Signature(_))
    ));
    // clinic-key is not bound to "backup".
    let p = payload("clinic-key", 1, TOPIC, NOW, NONCE, b"x");
    let env = envelope_payload(&p).unwrap().unwrap();
    let r = a.check_signature("backup", TOPIC, &env, NOW).unwrap_err();
    assert!(r.to_string().contains("not bound"), "{r}");
    assert_eq!(a.nonces_held(), 0);
}

#[test]
fn replay_refused_but_other_signer_same_nonce_accepted() {
    let mut a = authority(AuthorityOptions::default());
    let p = payload("clinic-key", 1, TOPIC, NOW, NONCE, b"x");
    assert!(check(&mut a, &p, NOW).is_ok());
    let r = check(&mut a, &p, NOW + 5).unwrap_err();
    assert_eq!(
        r,
        CommandRefusal::Replayed {
            signer: "clinic-key".into()
        }
    );
    assert_eq!(r.rule(), rules::MQTT_COMMAND_REPLAY);
    // Same nonce, other time and body: still a replay.
    let p2 = payload("clinic-key", 1, TOPIC, NOW + 1, NONCE, b"y");
    assert!(matches!(
        check(&mut a, &p2, NOW + 5),
        Err(CommandRefusal::Replayed { .. })
    ));
    // Another signer may use the same nonce.
    let p3 = payload("other-key", 2, TOPIC, NOW, NONCE, b"x");
    assert_eq!(&*check(&mut a, &p3, NOW).unwrap(), "other-key");
    // Once expired, the nonce cannot pass the time check either.
    assert!(matches!(
        check(&mut a, &p, NOW + 301),
        Err(CommandRefusal::Stale { .. })
    ));
}

#[test]
fn stale_and_future() {
    let mut a = authority(AuthorityOptions::default());
    let p = payload("clinic-key", 1, TOPIC, NOW, "nonce-aaaa", b"x");
    let r = check(&mut a, &p, NOW + 301).unwrap_err();
    assert_eq!(
        r,
        CommandRefusal::Stale {
            signer: "clinic-key".into(),
            offset_secs: 301,
            max_age_secs: 300
        }
    );
    assert_eq!(r.rule(), rules::MQTT_COMMAND_STALE);
    assert!(r.to_string().contains("301 s old"), "{r}");
    let mut a = authority(AuthorityOptions::default());
    let r = check(&mut a, &p, NOW - 301).unwrap_err();
    assert!(matches!(
        r,
        CommandRefusal::Stale {
            offset_secs: -301,
            ..
        }
    ));
    assert!(r.to_string().contains("301 s in the future"), "{r}");
    // Exactly at the edges: accepted.
    assert!(check(&mut a, &p, NOW - 300).is_ok());
    let p = payload("clinic-key", 1, TOPIC, NOW, "nonce-bbbb", b"x");
    assert!(check(&mut a, &p, NOW + 300).is_ok());
    // The clock stepped back: "too old" is judged against the latest time
    // seen, so the window does not reopen.
    let p = payload("clinic-key", 1, TOPIC, NOW - 100, "nonce-cccc", b"x");
    assert!(matches!(
        check(&mut a, &p, NOW - 100),
        Err(CommandRefusal::Stale {
            offset_secs: 400,
            ..
        })
    ));
    // Extremes do not overflow.
    let p = payload("clinic-key", 1, TOPIC, i64::MAX, "nonce-dddd", b"x");
    assert!(matches!(
        check(&mut a, &p, i64::MIN),
        Err(CommandRefusal::Stale { .. })
    ));
    let p = payload("clinic-key", 1, TOPIC, 0, "nonce-eeee", b"x");
    assert!(matches!(
        check(&mut a, &p, i64::MAX),
        Err(CommandRefusal::Stale { .. })
    ));
}

#[test]
fn nonce_cache_full_then_accepted_after_expiry() {
    let mut a = authority(AuthorityOptions {
        max_nonces: 3,
        ..AuthorityOptions::default()
    });
    for (i, ts) in [NOW, NOW + 10, NOW + 20].into_iter().enumerate() {
        let p = payload("clinic-key", 1, TOPIC, ts, &format!("nonce-{i:04}"), b"x");
        check(&mut a, &p, NOW + 20).unwrap();
    }
    let p = payload("other-key", 2, TOPIC, NOW + 20, "nonce-full", b"x");
    let r = check(&mut a, &p, NOW + 20).unwrap_err();
    assert_eq!(r.rule(), rules::MQTT_NONCE_CACHE_FULL);
    assert!(matches!(
        r,
        CommandRefusal::NonceCacheFull { max_nonces: 3, .. }
    ));
    // Still full at the first nonce's last valid second.
    assert!(check(&mut a, &p, NOW + 300).is_err());
    // One second later the first nonce (ts NOW) can no longer pass: forgotten.
    assert_eq!(&*check(&mut a, &p, NOW + 301).unwrap(), "other-key");
    assert_eq!(a.nonces_held(), 3);
    // Everything expires in time.
    let p = payload("clinic-key", 1, TOPIC, NOW + 1000, "nonce-late", b"x");
    check(&mut a, &p, NOW + 1000).unwrap();
    assert_eq!(a.nonces_held(), 1);
    // The cache of 0 refuses everything.
    let mut z = authority(AuthorityOptions {
        max_nonces: 0,
        ..AuthorityOptions::default()
    });
    assert!(matches!(
        check(&mut z, &p, NOW + 1000),
        Err(CommandRefusal::NonceCacheFull { .. })
    ));
}

#[test]
fn budget_hour_window_rolls() {
    let mut a = authority(AuthorityOptions::default());
    for i in 0..3 {
        let b = a.spend("monitor-1", Some(3), None, NOW + i * 100).unwrap();
        assert_eq!(b.hour_used, u32::try_from(i + 1).unwrap());
    }
    let r = a.spend("monitor-1", Some(3), None, NOW + 1000).unwrap_err();
    assert_eq!(
        r,
        CommandRefusal::Budget {
            window: "hour",
            limit: 3,
            used: 3
        }
    );
    assert_eq!(r.rule(), rules::MQTT_COMMAND_BUDGET);
    assert!(r.to_string().contains("limit 3"), "{r}");
    // Another device has its own budget.
    assert!(a.spend("monitor-2", Some(3), None, NOW + 1000).is_ok());
    // The refusal was not counted: at NOW+3600 the first leaves the window.
    assert!(a.spend("monitor-1", Some(3), None, NOW + 3599).is_err());
    assert_eq!(
        a.spend("monitor-1", Some(3), None, NOW + 3600)
            .unwrap()
            .hour_used,
        3
    );
    assert!(a.spend("monitor-1", Some(3), None, NOW + 3600).is_err());
    // Memory within the limit.
    assert!(a.budgets["monitor-1"].times.len() <= 3);
    // No limit: nothing tracked.
    assert_eq!(
        a.spend("monitor-3", None, None, NOW).unwrap(),
        Budget::default()
    );
    assert_eq!(a.budget_devices(), 2);
    // A zero limit refuses everything.
    assert!(a.spend("monitor-4", Some(0), None, NOW).is_err());
}

#[test]
fn budget_day_window_rolls() {
    let mut a = authority(AuthorityOptions::default());
    // 2 an hour, 4 a day.
    for t in [0, 1, 3600, 3601] {
        a.spend("m", Some(2), Some(4), NOW + t).unwrap();
    }
    let r = a.spend("m", Some(2), Some(4), NOW + 7200).unwrap_err();
    assert_eq!(
        r,
        CommandRefusal::Budget {
            window: "day",
            limit: 4,
            used: 4
        }
    );
    // The hour limit is judged first when both are spent.
    let r = a.spend("m", Some(2), Some(4), NOW + 3602).unwrap_err();
    assert!(matches!(r, CommandRefusal::Budget { window: "hour", .. }));
    // One day after the first, one more is allowed.
    let b = a.spend("m", Some(2), Some(4), NOW + 86_400).unwrap();
    assert_eq!(
        b,
        Budget {
            hour_used: 1,
            day_used: 4
        }
    );
    assert!(a.spend("m", Some(2), Some(4), NOW + 86_400).is_err());
    assert!(a.budgets["m"].times.len() <= 4);
    // A clock stepped back gives nothing back.
    assert!(a.spend("m", Some(2), Some(4), NOW).is_err());
}

#[test]
fn budget_refund() {
    let mut a = authority(AuthorityOptions::default());
    a.spend("m", Some(1), None, NOW).unwrap();
    assert!(a.spend("m", Some(1), None, NOW).is_err());
    assert!(a.refund("m", NOW));
    assert!(!a.refund("m", NOW));
    assert!(a.spend("m", Some(1), None, NOW).is_ok());
    // A spend more than an hour old is not the one to refund.
    assert!(!a.refund("m", NOW + 3600));
    assert!(!a.refund("unknown", NOW));
}

#[test]
fn budget_devices_evicted_then_refused() {
    let mut a = authority(AuthorityOptions {
        max_budget_devices: 2,
        ..AuthorityOptions::default()
    });
    a.spend("a", Some(10), Some(10), NOW).unwrap();
    a.spend("b", Some(10), Some(10), NOW + 10).unwrap();
    // Both commanded within the day: the third is refused, failing closed.
    let r = a.spend("c", Some(10), Some(10), NOW + 100).unwrap_err();
    assert_eq!(r, CommandRefusal::BudgetDevicesFull { max_devices: 2 });
    assert_eq!(r.rule(), rules::MQTT_COMMAND_BUDGET);
    // Known devices still spend.
    a.spend("a", Some(10), Some(10), NOW + 100).unwrap();
    // A day after b's last command, b goes and c comes in; a stays.
    a.spend("c", Some(10), Some(10), NOW + 10 + 86_400).unwrap();
    assert_eq!(a.budget_devices(), 2);
    assert!(a.budgets.contains_key("a") && a.budgets.contains_key("c"));
}

#[test]
fn malformed_envelopes_are_faults() {
    let sig = encode_signature(&[7u8; 64]);
    let good = format!("WGSIG1 clinic-key {NOW} {NONCE} {sig}\nbody");
    assert!(envelope_payload(good.as_bytes()).unwrap().is_some());
    let long_signer = "s".repeat(65);
    let long_nonce = "n".repeat(65);
    let cases: Vec<(String, SignatureFault)> = vec![
        (
            format!("WGSIG1 clinic-key {NOW} {NONCE} {sig}"),
            SignatureFault::HeaderUnterminated,
        ),
        (
            format!("WGSIG1 clinic-key {NOW} {NONCE} {sig}{}\n", "=".repeat(300)),
            SignatureFault::HeaderUnterminated,
        ),
        (
            format!("WGSIG1  clinic-key {NOW} {NONCE} {sig}\n"),
            SignatureFault::HeaderFields,
        ),
        (
            format!("WGSIG1 clinic-key  {NOW} {NONCE} {sig}\n"),
            SignatureFault::HeaderFields,
        ),
        (
            format!("WGSIG1 clinic-key {NOW} {NONCE} {sig} \n"),
            SignatureFault::HeaderFields,
        ),
        (
            format!("WGSIG1 clinic-key {NOW} {NONCE}\n"),
            SignatureFault::HeaderFields,
        ),
        (
            format!("WGSIG1 clinic-key {NOW} {NONCE} {sig} extra\n"),
            SignatureFault::HeaderFields,
        ),
        ("WGSIG1 \n".to_string(), SignatureFault::HeaderFields),
        (
            format!("WGSIG1 clinic-key {NOW} {NONCE} {sig}\r\n"),
            SignatureFault::SignatureEncoding,
        ),
        (
            format!("WGSIG1 clinic\tkey {NOW} {NONCE} {sig}\n"),
            SignatureFault::Signer,
        ),
        (
            format!("WGSIG1 clinic-kéy {NOW} {NONCE} {sig}\n"),
            SignatureFault::Signer,
        ),
        (
            format!("WGSIG1 {long_signer} {NOW} {NONCE} {sig}\n"),
            SignatureFault::Signer,
        ),
        (
            format!("WGSIG1 k +{NOW} {NONCE} {sig}\n"),
            SignatureFault::Timestamp,
        ),
        (
            format!("WGSIG1 k -{NOW} {NONCE} {sig}\n"),
            SignatureFault::Timestamp,
        ),
        (
            format!("WGSIG1 k 0{NOW} {NONCE} {sig}\n"),
            SignatureFault::Timestamp,
        ),
        (
            format!("WGSIG1 k 00 {NONCE} {sig}\n"),
            SignatureFault::Timestamp,
        ),
        (
            format!("WGSIG1 k 1.5 {NONCE} {sig}\n"),
            SignatureFault::Timestamp,
        ),
        (
            format!("WGSIG1 k 99999999999999999999 {NONCE} {sig}\n"),
            SignatureFault::Timestamp,
        ),
        (
            format!("WGSIG1 k {NOW} short {sig}\n"),
            SignatureFault::Nonce,
        ),
        (
            format!("WGSIG1 k {NOW} {long_nonce} {sig}\n"),
            SignatureFault::Nonce,
        ),
        (
            format!("WGSIG1 k {NOW} nonce.with.dot {sig}\n"),
            SignatureFault::Nonce,
        ),
        (
            format!("WGSIG1 k {NOW} {NONCE} {}\n", &sig[..86]),
            SignatureFault::SignatureEncoding,
        ),
        (
            format!("WGSIG1 k {NOW} {NONCE} {}A=\n", &sig[..86]),
            SignatureFault::SignatureEncoding,
        ),
        (
            format!("WGSIG1 k {NOW} {NONCE} {}\n", sig.replace('=', "A")),
            SignatureFault::SignatureEncoding,
        ),
        (
            format!("WGSIG1 k {NOW} {NONCE} {}\n", sig.replacen('B', "-", 1)),
            SignatureFault::SignatureEncoding,
        ),
    ];
    for (text, want) in &cases {
        assert_eq!(
            envelope_payload(text.as_bytes()),
            Err(want.clone()),
            "{text:?}"
        );
        // And as CommandRefusal: rule 010, a one-line reason.
        let r = CommandRefusal::from(want.clone());
        assert_eq!(r.rule(), rules::MQTT_COMMAND_SIGNATURE);
        assert!(!r.to_string().contains('\n'));
    }
    // A newline in the body is the body's.
    let text = format!("WGSIG1 k 0 {NONCE} {sig}\n\na\nb");
    let e = envelope_payload(text.as_bytes()).unwrap().unwrap();
    assert_eq!((e.timestamp, e.body), (0, &b"\na\nb"[..]));
}

#[test]
fn noncanonical_trailing_bits_refused() {
    // 64 bytes end with 4 unused bits in the 86th character: set one.
    let sig = encode_signature(&[0u8; 64]);
    assert_eq!(&sig[84..], "AA==");
    let bad = format!("{}AB==", &sig[..84]);
    let text = format!("WGSIG1 k {NOW} {NONCE} {bad}\n");
    assert_eq!(
        envelope_payload(text.as_bytes()),
        Err(SignatureFault::SignatureEncoding)
    );
}

#[test]
fn malformed_v5_properties_are_faults() {
    let good = v5_props("clinic-key", 1, NOW, NONCE, b"x");
    let g = refs(&good);
    with_v5(&g, b"x", |e| assert!(e.unwrap().is_some()));
    // Each one missing.
    for i in 0..4 {
        let mut p = g.clone();
        let (name, _) = p.remove(i);
        with_v5(&p, b"x", |e| {
            assert!(
                matches!(e, Err(SignatureFault::MissingProperty(n)) if n == name),
                "{name}"
            )
        });
    }
    // Each one repeated (same value or another).
    for i in 0..4 {
        let mut p = g.clone();
        p.push(g[i]);
        with_v5(&p, b"x", |e| {
            assert!(matches!(e, Err(SignatureFault::RepeatedProperty(_))))
        });
    }
    // Unknown wg-* names, in any case; other properties are fine.
    for extra in ["wg-other", "WG-SIG", "Wg-Ts", "wg-"] {
        let mut p = g.clone();
        p.push((extra, "1"));
        with_v5(&p, b"x", |e| {
            assert!(
                matches!(e, Err(SignatureFault::UnknownProperty(_))),
                "{extra}"
            )
        });
    }
    let mut p = g.clone();
    p.push(("content-type", "json"));
    with_v5(&p, b"x", |e| assert!(e.unwrap().is_some()));
    // A lone unknown wg-* property is a fault, not "unsigned".
    with_v5(&[("wg-x", "1")], b"x", |e| {
        assert!(matches!(e, Err(SignatureFault::UnknownProperty(_))))
    });
    // Bad values.
    let long = "x".repeat(100);
    for (i, v, want) in [
        (0, "", SignatureFault::Signer),
        (0, "a b", SignatureFault::Signer),
        (0, long.as_str(), SignatureFault::Signer),
        (1, "+1", SignatureFault::Timestamp),
        (1, "01", SignatureFault::Timestamp),
        (1, "", SignatureFault::Timestamp),
        (2, "short", SignatureFault::Nonce),
        (2, "nonce nonce", SignatureFault::Nonce),
        (3, "AAAA", SignatureFault::SignatureEncoding),
        (3, "", SignatureFault::SignatureEncoding),
    ] {
        let mut p = g.clone();
        p[i].1 = v;
        with_v5(&p, b"x", |e| assert_eq!(e, Err(want.clone()), "{i} {v:?}"));
    }
    // Unknown names are cut in the fault.
    let name = format!("wg-{}", "z".repeat(200));
    with_v5(&[(name.as_str(), "1")], b"x", |e| {
        let Err(SignatureFault::UnknownProperty(n)) = e else {
            panic!()
        };
        assert_eq!(n.chars().count(), 32);
    });
}

#[test]
fn duplicate_signer_ids_keep_the_first() {
    let mut a = Authority::new(
        vec![signer("k", 1, &["clinic"]), signer("k", 2, &["clinic"])],
        AuthorityOptions::default(),
    );
    let p = payload("k", 2, TOPIC, NOW, NONCE, b"x");
    assert!(matches!(
        check(&mut a, &p, NOW),
        Err(CommandRefusal::Signature(_))
    ));
    let p = payload("k", 1, TOPIC, NOW, NONCE, b"x");
    assert!(check(&mut a, &p, NOW).is_ok());
}

proptest! {
    #[test]
    fn envelope_payload_never_panics(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = envelope_payload(&data);
        let mut p = b"WGSIG1 ".to_vec();
        p.extend_from_slice(&data);
        if let Ok(Some(e)) = envelope_payload(&p) {
            let mut a = authority(AuthorityOptions::default());
            let _ = a.check_signature("clinic", TOPIC, &e, NOW);
        }
    }

    #[test]
    fn envelope_v5_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        let limits = Limits::default();
        if let Ok(Packet::Publish(p)) = decode(&data, Version::V5, &limits) {
            let _ = envelope_v5(&p.properties, p.payload);
        }
    }

    #[test]
    fn envelope_v5_arbitrary_properties_never_panic(
        props in proptest::collection::vec(
            (prop_oneof![Just("wg-signer".to_string()), Just("wg-ts".to_string()),
                         Just("wg-nonce".to_string()), Just("wg-sig".to_string()),
                         "[a-zA-Z-]{0,12}"],
             "\\PC{0,100}"),
            0..8),
    ) {
        let r: Vec<(&str, &str)> = props.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        with_v5(&r, b"x", |_| ());
    }

}

proptest! {
    // Each case signs and verifies four times: unoptimised Ed25519 is slow.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn sign_parse_check_round_trip(
        topic in "[a-z0-9/]{1,64}",
        body in proptest::collection::vec(any::<u8>(), 0..512),
        nonce in "[A-Za-z0-9_-]{8,64}",
        ts in 0i64..4_000_000_000,
        skew in -300i64..=300,
    ) {
        let mut a = authority(AuthorityOptions::default());
        let sig = sign(&key(1), &topic, ts, &nonce, &body);
        let mut p = Vec::new();
        write_envelope_header("clinic-key", ts, &nonce, &sig, &mut p);
        p.extend_from_slice(&body);
        let e = envelope_payload(&p).unwrap().unwrap();
        prop_assert_eq!(e.body, &body[..]);
        prop_assert_eq!(&*a.check_signature("clinic", &topic, &e, ts + skew).unwrap(), "clinic-key");
        let again = a.check_signature("clinic", &topic, &e, ts + skew);
        prop_assert!(matches!(again, Err(CommandRefusal::Replayed { .. })), "{:?}", again);

        // The same through MQTT 5 properties, for another signer.
        let sig2 = sign(&key(2), &topic, ts, &nonce, &body);
        let ts_s = ts.to_string();
        let sig_s = encode_signature(&sig2);
        let props = [("wg-signer", "other-key"), ("wg-ts", ts_s.as_str()), ("wg-nonce", nonce.as_str()), ("wg-sig", sig_s.as_str())];
        let pkt = publish_v5(&topic, &props, &body);
        let Ok(Packet::Publish(pp)) = decode(&pkt, Version::V5, &Limits::default()) else {
            panic!("test PUBLISH does not decode")
        };
        let e = envelope_v5(&pp.properties, pp.payload).unwrap().unwrap();
        prop_assert_eq!(&*a.check_signature("clinic", &topic, &e, ts + skew).unwrap(), "other-key");
    }
}
