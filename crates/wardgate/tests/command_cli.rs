//! `wardgate command keygen` and `sign`, through the real binary: what it
//! prints is accepted by the gateway's command authority, in both carriers,
//! and refused once altered.

#![allow(clippy::unwrap_used)] // a panic is a failed test

use ed25519_dalek::VerifyingKey;
use std::process::Command;
use std::sync::Arc;
use wardgate_engine::mqtt::authority::{
    envelope_payload, Authority, AuthorityOptions, CommandRefusal, SignerKey,
};

const BIN: &str = env!("CARGO_BIN_EXE_wardgate");
const TOPIC: &str = "home/monitor-1/cmd/pace";
const TS: i64 = 1_790_000_000;

fn run(args: &[&str]) -> Vec<u8> {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn authority(public_hex: &str) -> Authority {
    let key: [u8; 32] = hex::decode(public_hex.trim()).unwrap().try_into().unwrap();
    Authority::new(
        vec![SignerKey {
            id: Arc::from("clinic-key"),
            key: VerifyingKey::from_bytes(&key).unwrap(),
            commanders: vec![Arc::from("clinic")],
        }],
        AuthorityOptions::default(),
    )
}

#[test]
fn keygen_sign_and_check() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("clinic.key");
    let key_s = key.to_str().unwrap();
    let public = String::from_utf8(run(&["command", "keygen", "--out", key_s])).unwrap();
    assert_eq!(public.trim().len(), 64);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Never over an existing key.
    let again = Command::new(BIN)
        .args(["command", "keygen", "--out", key_s])
        .output()
        .unwrap();
    assert!(!again.status.success());
    let mut a = authority(&public);

    // 3.1.1 envelope, payload from a file (bytes, newlines included).
    let body = b"{\"rate\":60}\n\x00\xff";
    let file = dir.path().join("cmd.bin");
    std::fs::write(&file, body).unwrap();
    let ts = TS.to_string();
    let payload = run(&[
        "command",
        "sign",
        "--key",
        key_s,
        "--signer",
        "clinic-key",
        "--topic",
        TOPIC,
        "--payload-file",
        file.to_str().unwrap(),
        "--nonce",
        "nonce-0001",
        "--ts",
        &ts,
        "--format",
        "envelope",
    ]);
    let env = envelope_payload(&payload).unwrap().unwrap();
    assert_eq!(env.body, body);
    assert_eq!(
        &*a.check_signature("clinic", TOPIC, &env, TS + 5).unwrap(),
        "clinic-key"
    );
    assert!(matches!(
        a.check_signature("clinic", TOPIC, &env, TS + 5),
        Err(CommandRefusal::Replayed { .. })
    ));
    // Another topic: refused.
    assert!(matches!(
        a.check_signature("clinic", "home/monitor-2/cmd/pace", &env, TS + 5),
        Err(CommandRefusal::Signature(_))
    ));

    // MQTT 5 properties, random nonce, time now.
    let out = String::from_utf8(run(&[
        "command",
        "sign",
        "--key",
        key_s,
        "--signer",
        "clinic-key",
        "--topic",
        TOPIC,
        "--payload",
        "reboot",
    ]))
    .unwrap();
    let props: Vec<(&str, &str)> = out.lines().map(|l| l.split_once('=').unwrap()).collect();
    let names: Vec<&str> = props.iter().map(|p| p.0).collect();
    assert_eq!(names, ["wg-signer", "wg-ts", "wg-nonce", "wg-sig"]);
    // The same fields as an envelope line read by the gateway's parser.
    let text = format!(
        "WGSIG1 {} {} {} {}\nreboot",
        props[0].1, props[1].1, props[2].1, props[3].1
    );
    let env = envelope_payload(text.as_bytes()).unwrap().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(a.check_signature("clinic", TOPIC, &env, now).is_ok());

    // Fields the gateway would refuse are refused here.
    for bad in [
        &["--signer", "two words"][..],
        &["--signer", "clinic-key", "--nonce", "short"][..],
    ] {
        let mut args = vec!["command", "sign", "--key", key_s, "--topic", TOPIC];
        args.extend_from_slice(bad);
        let out = Command::new(BIN).args(&args).output().unwrap();
        assert!(!out.status.success(), "{bad:?}");
    }
}
