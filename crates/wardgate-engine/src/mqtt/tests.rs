use super::authority::{Authority, AuthorityOptions};
use super::*;
use proptest::prelude::*;
use std::path::Path;
use wardgate_proto::mqtt::codec::{decode, put_bytes, put_packet, Packet, PacketType};

pub(crate) const SITE: &str = include_str!("test_site.toml");

pub(crate) fn policy_from(text: &str) -> Arc<MqttPolicy> {
    let v = wardgate_config::Config::parse(text, "site.toml", Path::new(".")).unwrap();
    crate::Policy::compile(&v).unwrap().routes[0]
        .mqtt
        .clone()
        .unwrap()
}

fn policy() -> Arc<MqttPolicy> {
    policy_from(SITE)
}

fn authority() -> Mutex<Authority> {
    Mutex::new(Authority::new(Vec::new(), AuthorityOptions::default()))
}

/// A 3.1.1 PUBLISH.
pub(crate) fn publish_bytes(topic: &str, payload: &[u8], qos: u8, retain: bool) -> Vec<u8> {
    let mut body = Vec::new();
    put_bytes(topic.as_bytes(), &mut body);
    if qos > 0 {
        body.extend_from_slice(&7u16.to_be_bytes());
    }
    body.extend_from_slice(payload);
    let mut out = Vec::new();
    put_packet(
        PacketType::Publish,
        (qos << 1) | u8::from(retain),
        &body,
        &mut out,
    )
    .unwrap();
    out
}

fn judge(p: &MqttPolicy, auth: &Mutex<Authority>, device: &str, bytes: &[u8]) -> PublishVerdict {
    let Packet::Publish(pb) = decode(bytes, Version::V311, &codec::Limits::default()).unwrap()
    else {
        panic!("not a publish")
    };
    p.publish(device, Version::V311, pb.topic, &pb, auth, 1_800_000_000)
}

fn rule_of(v: &PublishVerdict) -> Option<&'static str> {
    v.refusal.as_ref().map(|r| r.rule.id)
}

#[test]
fn filters_within_patterns() {
    let yes = [
        ("a/b", "a/b"),
        ("a/b", "a/+"),
        ("a/+", "a/+"),
        ("a/b/c", "a/#"),
        ("a", "a/#"),
        ("a/#", "a/#"),
        ("a/+/c", "a/#"),
        ("a/+/c", "+/+/c"),
        ("$SYS/x", "$SYS/#"),
        ("$share/g/a/b", "$share/+/a/#"),
    ];
    let no = [
        ("#", "a/#"),
        ("a/#", "a/+"),
        ("a/+", "a/b"),
        ("a/b/c", "a/+"),
        ("a", "a/+"),
        ("a/b", "a/b/c"),
        ("$SYS/#", "#"),
        ("$SYS/x", "+/x"),
        ("$share/g/a/b", "a/b"),
        ("+/b", "a/b"),
        ("a/#", "a/+/#"),
        ("$share/g/$SYS/#", "$share/g/#"),
        ("$share/g/$SYS/x", "$share/+/+/x"),
    ];
    for (f, a) in yes {
        assert!(filter_within(f, a), "{f} within {a}");
    }
    for (f, a) in no {
        assert!(!filter_within(f, a), "{f} not within {a}");
    }
}

fn level() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_owned()),
        Just("b".to_owned()),
        Just("".to_owned()),
        Just("$s".to_owned()),
    ]
}

fn filter() -> impl Strategy<Value = String> {
    (
        proptest::collection::vec(prop_oneof![level(), Just("+".to_owned())], 1..4),
        any::<bool>(),
    )
        .prop_map(|(mut levels, hash)| {
            if hash {
                levels.push("#".to_owned());
            }
            levels.join("/")
        })
}

proptest! {
    /// Containment is sound: every topic the filter matches, the allowed
    /// pattern matches too.
    #[test]
    fn within_is_sound(f in filter(), a in filter(), topics in proptest::collection::vec(proptest::collection::vec(level(), 1..6), 1..40)) {
        if filter_within(&f, &a) {
            for t in topics {
                let t = t.join("/");
                if topic_matches(&f, &t) {
                    prop_assert!(topic_matches(&a, &t), "{t} matches {f} but not {a}");
                }
            }
        }
    }
}

fn connect_bytes(client_id: &str, user: bool, will: Option<(&str, u8, bool)>) -> Vec<u8> {
    let mut body = Vec::new();
    put_bytes(b"MQTT", &mut body);
    body.push(4);
    let mut flags = 0x02;
    if let Some((_, qos, retain)) = will {
        flags |= 0x04 | (qos << 3) | if retain { 0x20 } else { 0 };
    }
    if user {
        flags |= 0xc0;
    }
    body.push(flags);
    body.extend_from_slice(&30u16.to_be_bytes());
    put_bytes(client_id.as_bytes(), &mut body);
    if let Some((topic, _, _)) = will {
        put_bytes(topic.as_bytes(), &mut body);
        put_bytes(b"offline", &mut body);
    }
    if user {
        put_bytes(b"user", &mut body);
        put_bytes(b"secret-password", &mut body);
    }
    let mut out = Vec::new();
    put_packet(PacketType::Connect, 0, &body, &mut out).unwrap();
    out
}

fn connect(p: &MqttPolicy, device: &str, bytes: &[u8], tls: bool) -> Result<(), Refusal> {
    let Packet::Connect(c) = decode(bytes, Version::V311, &codec::Limits::default()).unwrap()
    else {
        panic!("not a connect")
    };
    p.connect(device, &c, tls)
}

#[test]
fn client_ids_belong_to_their_device() {
    let p = policy();
    assert!(connect(
        &p,
        "monitor-1",
        &connect_bytes("monitor-1", false, None),
        false
    )
    .is_ok());
    assert!(connect(&p, "monitor-2", &connect_bytes("m2-b", false, None), false).is_ok());
    // client_ids replace the default: the device id itself is not one.
    for (dev, id) in [
        ("monitor-2", "monitor-2"),
        ("monitor-1", "m2-a"),
        ("monitor-1", "clinic"),
        ("monitor-1", ""),
        ("monitor-1", "nobody"),
    ] {
        let r = connect(&p, dev, &connect_bytes(id, false, None), false).unwrap_err();
        assert_eq!(r.rule.id, "WG-MQTT-001", "{dev} as {id:?}");
    }
}

#[test]
fn credentials_in_clear_are_refused_unless_allowed() {
    let p = policy();
    let c = connect_bytes("monitor-1", true, None);
    let r = connect(&p, "monitor-1", &c, false).unwrap_err();
    assert_eq!(r.rule.id, "WG-MQTT-002");
    assert!(!r.reason.contains("secret-password"));
    assert!(connect(&p, "monitor-1", &c, true).is_ok());
    let allowed = SITE.replace(
        "commanders = [\"clinic\"]",
        "commanders = [\"clinic\"]\nallow_cleartext_credentials = true",
    );
    assert!(connect(&policy_from(&allowed), "monitor-1", &c, false).is_ok());
}

#[test]
fn wills_only_where_allowed() {
    let p = policy();
    let ok = connect_bytes("monitor-1", false, Some(("home/monitor-1/status", 1, true)));
    assert!(connect(&p, "monitor-1", &ok, false).is_ok());
    for (topic, qos, retain, rule) in [
        ("home/monitor-2/status", 0, false, "WG-MQTT-006"),
        ("home/monitor-1/vitals/hr", 0, false, "WG-MQTT-006"),
        ("home/monitor-1/status", 2, false, "WG-MQTT-007"),
    ] {
        let c = connect_bytes("monitor-1", false, Some((topic, qos, retain)));
        assert_eq!(
            connect(&p, "monitor-1", &c, false).unwrap_err().rule.id,
            rule,
            "{topic}"
        );
    }
    // The clinic's profile has no will topics at all.
    let c = connect_bytes("clinic", false, Some(("home/clinic/status", 0, false)));
    assert_eq!(
        connect(&p, "clinic", &c, false).unwrap_err().rule.id,
        "WG-MQTT-006"
    );
}

#[test]
fn subscriptions_beyond_the_profile_are_refused() {
    let p = policy();
    let refused = |dev: &str, f: &str| !p.subscribe(dev, [f].into_iter()).is_empty();
    assert!(!refused("monitor-1", "home/monitor-1/cmd/#"));
    assert!(!refused("monitor-1", "home/monitor-1/cmd/set-rate"));
    for f in [
        "#",
        "+/#",
        "home/#",
        "home/+/cmd/#",
        "home/monitor-2/cmd/#",
        "$SYS/#",
        "$share/g/home/monitor-1/cmd/#",
        "home/monitor-1/#",
    ] {
        assert!(refused("monitor-1", f), "{f}");
    }
    assert!(!refused("clinic", "home/+/vitals/#"));
    assert!(!refused("clinic", "home/monitor-1/vitals/heart-rate"));
    assert!(refused("clinic", "home/+/+/#"));
    assert!(refused("clinic", "home/+/cmd/#"));
    // Unknown devices have no profile: nothing is within it.
    assert!(refused("nobody", "a"));
}

#[test]
fn publishes_are_judged_against_the_profile() {
    let p = policy();
    let a = authority();
    let ok = judge(
        &p,
        &a,
        "monitor-1",
        &publish_bytes("home/monitor-1/vitals/spo2", b"97", 1, false),
    );
    assert!(ok.refusal.is_none() && ok.command.is_none() && ok.alerts.is_empty());
    let cases: [(&str, &str, Vec<u8>, &str); 6] = [
        (
            "monitor-1",
            "other patient's topic",
            publish_bytes("home/monitor-2/vitals/spo2", b"97", 0, false),
            "WG-MQTT-003",
        ),
        (
            "monitor-1",
            "too large",
            publish_bytes("home/monitor-1/vitals/x", &[b'1'; 257], 0, false),
            "WG-MQTT-008",
        ),
        (
            "monitor-1",
            "QoS 2",
            publish_bytes("home/monitor-1/vitals/x", b"1", 2, false),
            "WG-MQTT-007",
        ),
        (
            "monitor-1",
            "retained vitals",
            publish_bytes("home/monitor-1/vitals/x", b"1", 0, true),
            "WG-MQTT-005",
        ),
        (
            "clinic",
            "clinic publishes vitals",
            publish_bytes("home/monitor-1/vitals/x", b"1", 0, false),
            "WG-MQTT-003",
        ),
        (
            "monitor-2",
            "monitor commands another",
            publish_bytes("home/monitor-1/cmd/pace", b"{}", 1, false),
            "WG-MQTT-009",
        ),
    ];
    for (dev, what, bytes, rule) in cases {
        assert_eq!(rule_of(&judge(&p, &a, dev, &bytes)), Some(rule), "{what}");
    }
    let status = judge(
        &p,
        &a,
        "monitor-1",
        &publish_bytes("home/monitor-1/status", b"on", 1, true),
    );
    assert!(status.refusal.is_none());
}

#[test]
fn a_device_commanding_itself_is_not_a_commander() {
    let p = policy();
    let v = judge(
        &p,
        &authority(),
        "monitor-1",
        &publish_bytes("home/monitor-1/cmd/pace", b"x", 0, false),
    );
    assert_eq!(rule_of(&v), Some("WG-MQTT-009"));
    assert_eq!(v.command.unwrap().target_device, "monitor-1");
}

#[test]
fn command_budgets_are_spent_per_target() {
    let p = policy();
    let a = authority();
    let cmd = |dev: &str| publish_bytes(&format!("home/{dev}/cmd/pace"), b"{}", 1, false);
    for _ in 0..2 {
        let v = judge(&p, &a, "clinic", &cmd("monitor-1"));
        assert!(v.refusal.is_none(), "{:?}", v.refusal);
        assert_eq!(v.command.unwrap().commander, "clinic");
    }
    let v = judge(&p, &a, "clinic", &cmd("monitor-1"));
    assert_eq!(rule_of(&v), Some("WG-MQTT-013"));
    assert_eq!(v.refusal.unwrap().code, codec::reason::QUOTA_EXCEEDED);
    // Another device's budget is its own.
    assert!(judge(&p, &a, "clinic", &cmd("monitor-2")).refusal.is_none());
}

#[test]
fn unsigned_commands_are_refused_when_signatures_are_required() {
    let signed = format!(
        "{}\n[[command_signer]]\nid = \"clinic-key\"\npublic_key = \"{}\"\ncommanders = [\"clinic\"]\n",
        SITE.replace(
            "commanders = [\"clinic\"]\n",
            "commanders = [\"clinic\"]\nsigned_commands = true\n",
        ),
        hex::encode(ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key().to_bytes())
    );
    let p = policy_from(&signed);
    assert!(p.signed_commands);
    let v = judge(
        &p,
        &authority(),
        "clinic",
        &publish_bytes("home/monitor-1/cmd/pace", b"{}", 1, false),
    );
    assert_eq!(rule_of(&v), Some("WG-MQTT-010"));
}

#[test]
fn telemetry_alerts_but_forwards() {
    let p = policy();
    let a = authority();
    let hr = |payload: &[u8]| {
        judge(
            &p,
            &a,
            "monitor-1",
            &publish_bytes("home/monitor-1/vitals/heart-rate", payload, 0, false),
        )
    };
    assert!(hr(b"72").alerts.is_empty());
    let v = hr(b"300");
    assert!(v.refusal.is_none());
    assert_eq!(v.alerts[0].0.id, "WG-MQTT-015");
    assert_eq!(v.alerts[0].2, "300");
    assert_eq!(hr(b"7 2").alerts[0].0.id, "WG-MQTT-014");
    let bp = |payload: &[u8]| {
        judge(
            &p,
            &a,
            "monitor-1",
            &publish_bytes("home/monitor-1/vitals/bp", payload, 0, false),
        )
    };
    assert!(bp(br#"{"systolic":120,"diastolic":80}"#).alerts.is_empty());
    assert!(bp(br#"{"systolic":120,"diastolic":80,"unit":"mmHg"}"#)
        .alerts
        .is_empty());
    assert_eq!(bp(br#"{"systolic":120}"#).alerts[0].0.id, "WG-MQTT-014");
    assert_eq!(
        bp(br#"{"systolic":"120","diastolic":80}"#).alerts[0].0.id,
        "WG-MQTT-014"
    );
    assert_eq!(
        bp(br#"{"systolic":120,"diastolic":80,"systolic":400}"#).alerts[0]
            .0
            .id,
        "WG-MQTT-014"
    );
    assert_eq!(
        bp(br#"{"systolic":20,"diastolic":80}"#).alerts[0].0.id,
        "WG-MQTT-015"
    );
    assert_eq!(bp(b"not json").alerts[0].0.id, "WG-MQTT-014");
}

#[test]
fn bad_profiles_are_refused_by_check() {
    for (bad, what) in [
        (
            "publish = [\"home/{device}/vitals/#\", \"home/{device}/status\"]",
            "publish = [\"home/{dev}/x\"]",
        ),
        (
            "publish = [\"home/{device}/vitals/#\", \"home/{device}/status\"]",
            "publish = [\"home/#/x\"]",
        ),
        (
            "commands = [\"home/{device}/cmd/#\"]",
            "commands = [\"home/all/cmd\"]",
        ),
        ("max_qos = 1", "max_qos = 3"),
    ] {
        let text = SITE.replacen(bad, what, 1);
        assert!(
            wardgate_config::Config::parse(&text, "site.toml", Path::new(".")).is_err(),
            "{what}"
        );
    }
}

fn signed_site(key: &ed25519_dalek::SigningKey, extra: &str) -> String {
    format!(
        "{}\n[[command_signer]]\nid = \"clinic-key\"\npublic_key = \"{}\"\ncommanders = [\"clinic\"]\n{extra}",
        SITE.replace(
            "commanders = [\"clinic\"]\n",
            "commanders = [\"clinic\"]\nsigned_commands = true\n",
        ),
        hex::encode(key.verifying_key().to_bytes())
    )
}

/// A 3.1.1 command with the payload envelope, signed now.
fn signed_command(key: &ed25519_dalek::SigningKey, topic: &str, nonce: &str, now: i64) -> Vec<u8> {
    let sig = authority::sign(key, topic, now, nonce, b"{}");
    let mut payload = Vec::new();
    authority::write_envelope_header("clinic-key", now, nonce, &sig, &mut payload);
    payload.extend_from_slice(b"{}");
    publish_bytes(topic, &payload, 1, false)
}

#[test]
fn a_replay_stays_a_replay_across_a_reload() {
    let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let a = authority();
    let now = 1_800_000_000;
    let cmd = signed_command(&key, "home/monitor-1/cmd/x", "nonce-0001", now);
    let judge_at = |p: &MqttPolicy| {
        let Packet::Publish(pb) = decode(&cmd, Version::V311, &codec::Limits::default()).unwrap()
        else {
            panic!()
        };
        p.publish("clinic", Version::V311, pb.topic, &pb, &a, now)
    };
    let before = policy_from(&signed_site(&key, ""));
    let v = judge_at(&before);
    assert!(v.refusal.is_none(), "{:?}", v.refusal);
    assert_eq!(v.command.unwrap().signer, "clinic-key");
    // The same configuration compiled again: a reload.
    let after = policy_from(&signed_site(&key, ""));
    assert_eq!(rule_of(&judge_at(&after)), Some("WG-MQTT-011"));
    // A reload that drops the key: its commands are refused as unsigned by
    // a known key.
    let other = ed25519_dalek::SigningKey::from_bytes(&[10; 32]);
    let rekeyed = policy_from(&signed_site(&other, ""));
    assert_eq!(rule_of(&judge_at(&rekeyed)), Some("WG-MQTT-010"));
}

#[test]
fn signed_commands_outside_the_routes_window_are_stale() {
    let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let text = signed_site(&key, "").replace(
        "signed_commands = true\n",
        "signed_commands = true\ncommand_max_age_secs = 30\n",
    );
    let p = policy_from(&text);
    let now = 1_800_000_000;
    let cmd = signed_command(&key, "home/monitor-1/cmd/x", "nonce-0002", now - 31);
    let v = judge(&p, &authority(), "clinic", &cmd);
    assert_eq!(rule_of(&v), Some("WG-MQTT-012"));
    let cmd = signed_command(&key, "home/monitor-1/cmd/x", "nonce-0003", now - 29);
    assert!(judge(&p, &authority(), "clinic", &cmd).refusal.is_none());
}

#[test]
fn nonces_remembered_from_the_record_are_replays() {
    let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let p = policy_from(&signed_site(&key, ""));
    let a = authority();
    let now = 1_800_000_000;
    // The policy's signers are followed at the first command: remembering
    // needs them known, as after a start.
    let first = signed_command(&key, "home/monitor-1/cmd/x", "nonce-0007", now);
    assert!(judge(&p, &a, "clinic", &first).refusal.is_none());
    assert!(a
        .lock()
        .unwrap()
        .remember("clinic-key", "nonce-0008", now + 600));
    assert!(!a
        .lock()
        .unwrap()
        .remember("nobody", "nonce-0009", now + 600));
    let again = signed_command(&key, "home/monitor-1/cmd/x", "nonce-0008", now - 10);
    assert_eq!(
        rule_of(&judge(&p, &a, "clinic", &again)),
        Some("WG-MQTT-011")
    );
}

#[test]
fn deliveries_follow_the_profiles_subscriptions() {
    let p = policy();
    assert!(p.may_receive("monitor-1", "home/monitor-1/cmd/x"));
    assert!(!p.may_receive("monitor-1", "home/monitor-2/cmd/x"));
    assert!(p.may_receive("clinic", "home/monitor-2/vitals/hr"));
    assert!(!p.may_receive("clinic", "home/monitor-2/cmd/x"));
    assert!(!p.may_receive("nobody", "home/monitor-2/vitals/hr"));
}

#[test]
fn commands_are_never_retained_nor_wills() {
    let p = policy_from(&SITE.replace(
        "id = \"clinic\"\nsubscribe",
        "id = \"clinic\"\nretain = [\"home/#\"]\nwill = [\"home/#\"]\nsubscribe",
    ));
    let a = authority();
    let v = judge(
        &p,
        &a,
        "clinic",
        &publish_bytes("home/monitor-1/cmd/x", b"{}", 1, true),
    );
    assert_eq!(rule_of(&v), Some("WG-MQTT-005"));
    let c = connect_bytes(
        "clinic",
        false,
        Some(("home/monitor-1/cmd/reprogram", 1, true)),
    );
    assert_eq!(
        connect(&p, "clinic", &c, false).unwrap_err().rule.id,
        "WG-MQTT-009"
    );
    // A non-commander probing a command topic is WG-MQTT-009 whatever else.
    let big = publish_bytes("home/monitor-1/cmd/x", &[b'x'; 1000], 2, true);
    assert_eq!(
        rule_of(&judge(&p, &a, "monitor-2", &big)),
        Some("WG-MQTT-009")
    );
}

#[test]
fn a_command_to_several_targets_spends_all_budgets_or_none() {
    // "monitor-1/cmd/monitor-2" is a command topic of both devices.
    let text = SITE.replace(
        "commands = [\"home/{device}/cmd/#\"]",
        "commands = [\"{device}/cmd/#\", \"+/cmd/{device}\"]",
    );
    let p = policy_from(&text);
    let a = authority();
    let cmd = |topic: &str| publish_bytes(topic, b"{}", 1, false);
    for _ in 0..2 {
        assert!(judge(&p, &a, "clinic", &cmd("x/cmd/monitor-2"))
            .refusal
            .is_none());
    }
    let v = judge(&p, &a, "clinic", &cmd("monitor-1/cmd/monitor-2"));
    assert_eq!(rule_of(&v), Some("WG-MQTT-013"));
    assert_eq!(v.command.unwrap().target_device, "monitor-1,monitor-2");
    // monitor-1's spend was given back: this probe is its first.
    let used = a
        .lock()
        .unwrap()
        .spend("monitor-1", Some(100), None, 1_800_000_000)
        .unwrap();
    assert_eq!(used.hour_used, 1);
}
