//! `wardgate command`: signing MQTT commands, for commanders (a clinic's
//! server) and device makers checking their implementation. On a route with
//! `signed_commands = true`, a command reaches a device only with an Ed25519
//! signature by a `[[command_signer]]` over its topic, time, nonce and payload
//! (docs/mqtt.md); this makes the key and signs, exactly as the gateway checks
//! (`wardgate_engine::mqtt::authority`).

use anyhow::{bail, Context, Result};
use clap::{Subcommand, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use wardgate_engine::mqtt::authority;

/// `wardgate command ...`
#[derive(Subcommand)]
pub(crate) enum CommandCmd {
    /// Make a command signing key: writes KEY (the secret, hex, mode 0600) and
    /// prints the public key to put in `[[command_signer]] public_key`.
    Keygen {
        /// Where to write the secret key.
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a command. `--format v5` prints the four MQTT 5 user properties
    /// (`name=value` lines) to send with the payload unchanged; `--format
    /// envelope` writes the MQTT 3.1.1 payload (envelope line, then the
    /// payload) to stdout.
    Sign {
        /// The secret key (from `keygen`).
        #[arg(long)]
        key: PathBuf,
        /// The signer's id, as in `[[command_signer]] id`.
        #[arg(long)]
        signer: String,
        /// The topic the command is published on (the signature covers it).
        #[arg(long)]
        topic: String,
        /// The command payload, read from a file.
        #[arg(long, conflicts_with = "payload")]
        payload_file: Option<PathBuf>,
        /// The command payload, as text.
        #[arg(long)]
        payload: Option<String>,
        /// The nonce (8..64 of [A-Za-z0-9_-]); random when not given. Never
        /// reuse one within the gateway's time window: it is refused as a replay.
        #[arg(long)]
        nonce: Option<String>,
        /// The signing time, Unix seconds; now when not given.
        #[arg(long)]
        ts: Option<i64>,
        /// How the signature is carried.
        #[arg(long, value_enum, default_value_t = Format::V5)]
        format: Format,
    },
}

/// How a signature is carried.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Format {
    /// MQTT 5 user properties wg-signer, wg-ts, wg-nonce, wg-sig.
    V5,
    /// MQTT 3.1.1: `WGSIG1 signer ts nonce sig` and a newline before the payload.
    Envelope,
}

pub(crate) fn run(cmd: CommandCmd) -> Result<ExitCode> {
    match cmd {
        CommandCmd::Keygen { out } => crate::library::keygen(&out),
        CommandCmd::Sign {
            key,
            signer,
            topic,
            payload_file,
            payload,
            nonce,
            ts,
            format,
        } => {
            let key = crate::library::read_secret(&key)?;
            let body = match (payload_file, payload) {
                (Some(f), _) => {
                    std::fs::read(&f).with_context(|| format!("reading {}", f.display()))?
                }
                (None, Some(p)) => p.into_bytes(),
                (None, None) => Vec::new(),
            };
            let nonce = match nonce {
                Some(n) => n,
                None => random_nonce(),
            };
            let ts = match ts {
                Some(t) => t,
                None => std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .context("the clock is before 1970")?
                    .as_secs()
                    .try_into()
                    .context("the clock is past 2262")?,
            };
            if topic.is_empty() || topic.contains(['+', '#', '\0']) {
                bail!("--topic must be a topic name: not empty, no wildcard or NUL");
            }
            if signer.is_empty() || signer.contains(char::is_whitespace) {
                bail!("--signer: {}", authority::SignatureFault::Signer);
            }
            if nonce.contains(char::is_whitespace) {
                bail!("--nonce: {}", authority::SignatureFault::Nonce);
            }
            let sig = authority::sign(&key, &topic, ts, &nonce, &body);
            let mut env = Vec::new();
            authority::write_envelope_header(&signer, ts, &nonce, &sig, &mut env);
            // The gateway's own reader judges the fields, so nothing it would
            // refuse is printed.
            if let Err(why) = authority::envelope_payload(&env) {
                bail!("{why}");
            }
            let mut out = std::io::stdout().lock();
            match format {
                Format::V5 => {
                    writeln!(out, "{}={signer}", authority::PROP_SIGNER)?;
                    writeln!(out, "{}={ts}", authority::PROP_TS)?;
                    writeln!(out, "{}={nonce}", authority::PROP_NONCE)?;
                    writeln!(
                        out,
                        "{}={}",
                        authority::PROP_SIG,
                        authority::encode_signature(&sig)
                    )?;
                }
                Format::Envelope => {
                    out.write_all(&env)?;
                    out.write_all(&body)?;
                }
            }
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// 128 random bits as 32 hex digits: unique without coordination.
fn random_nonce() -> String {
    use rand_core::RngCore;
    let mut b = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}
