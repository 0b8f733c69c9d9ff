//! Signed MQTT commands (`wardgate_engine::mqtt::authority`): any bytes as a
//! 3.1.1 command payload. Never a panic; an envelope that parses is the only
//! spelling of its fields (writing them back gives the same bytes); the
//! command authority accepts only the signature the fuzz key makes (nothing
//! else verifies), remembers no nonce for a refused command, accepts the
//! same fields once re-signed and then refuses them as a replay; every
//! refusal is one line and names a rule.
#![no_main]
use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use wardgate_engine::mqtt::authority::{
    envelope_payload, sign, write_envelope_header, Authority, AuthorityOptions, CommandRefusal,
    Envelope, SignerKey,
};

/// The key the seed corpus is signed with (`[42; 32]`, signer `fuzz-key`).
const SECRET: [u8; 32] = [42; 32];
const TOPIC: &str = "home/monitor-1/cmd/pace";

fn refusal_ok(r: &CommandRefusal) {
    let s = r.to_string();
    assert!(!s.contains('\n') && !s.is_empty());
    use wardgate_event::rules;
    assert!([
        rules::MQTT_COMMAND_SIGNATURE,
        rules::MQTT_COMMAND_STALE,
        rules::MQTT_COMMAND_REPLAY,
        rules::MQTT_NONCE_CACHE_FULL,
        rules::MQTT_COMMAND_BUDGET,
    ]
    .contains(&r.rule()));
}

fuzz_target!(|data: &[u8]| {
    let env = match envelope_payload(data) {
        Ok(Some(env)) => env,
        Ok(None) => {
            assert!(!data.starts_with(b"WGSIG1 "));
            return;
        }
        Err(f) => {
            assert!(data.starts_with(b"WGSIG1 "));
            refusal_ok(&CommandRefusal::from(f));
            return;
        }
    };
    // One spelling: the fields written back are the bytes read.
    let mut again = Vec::new();
    write_envelope_header(
        env.signer,
        env.timestamp,
        env.nonce,
        &env.signature,
        &mut again,
    );
    again.extend_from_slice(env.body);
    assert_eq!(again, data);

    let key = SigningKey::from_bytes(&SECRET);
    let mut a = Authority::new(
        vec![SignerKey {
            id: Arc::from("fuzz-key"),
            key: key.verifying_key(),
            commanders: vec![Arc::from("clinic")],
        }],
        AuthorityOptions {
            max_nonces: 4,
            ..AuthorityOptions::default()
        },
    );
    // The clock: near the command's time, or anywhere.
    let skew = i64::from(data.len() as u16 % 701) - 350;
    let now = env.timestamp.saturating_add(skew);
    let genuine = sign(&key, TOPIC, env.timestamp, env.nonce, env.body);
    match a.check_signature("clinic", TOPIC, &env, now) {
        Ok(id) => {
            assert_eq!(&*id, "fuzz-key");
            assert_eq!(env.signer, "fuzz-key");
            // Ed25519 here is deterministic: any other accepted signature
            // would be a forgery.
            assert_eq!(env.signature, genuine);
            assert_eq!(a.nonces_held(), 1);
        }
        Err(r) => {
            refusal_ok(&r);
            if matches!(r, CommandRefusal::Signature(_)) {
                assert_eq!(a.nonces_held(), 0);
            }
        }
    }
    // Re-signed by the fuzz key: accepted when on time, then a replay.
    let signed = Envelope {
        signer: "fuzz-key",
        signature: genuine,
        ..env
    };
    let mut b = Authority::new(
        vec![SignerKey {
            id: Arc::from("fuzz-key"),
            key: key.verifying_key(),
            commanders: vec![Arc::from("clinic")],
        }],
        AuthorityOptions::default(),
    );
    match b.check_signature("clinic", TOPIC, &signed, now) {
        Ok(_) => {
            let r = b.check_signature("clinic", TOPIC, &signed, now);
            assert!(matches!(r, Err(CommandRefusal::Replayed { .. })), "{r:?}");
        }
        Err(r) => {
            assert!(matches!(r, CommandRefusal::Stale { .. }), "{r:?}");
        }
    }
    // A command's budget never panics whatever the time.
    let _ = b.spend("monitor-1", Some(2), Some(3), now);
    let _ = b.spend("monitor-1", Some(2), Some(3), env.timestamp);
    b.refund("monitor-1", now);
});
