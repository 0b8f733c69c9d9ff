//! `wardgate ca ...` and `wardgate device ...`: the built-in certificate authority
//! in data_dir/tls (see `wardgate-tls`). Only devices declared in the site
//! configuration can be enrolled: an identity is issued to a known device, never
//! to a name typed at a prompt.

use anyhow::{Context, Result};
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;
use wardgate_tls::Ca;

#[derive(Subcommand)]
pub(crate) enum CaCommand {
    /// Create the certificate authority (key with owner-only permissions, a
    /// self-signed certificate valid ten years, an empty revocation list).
    Init {
        /// The site configuration (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Name in the CA's subject (e.g. the hospital).
        #[arg(long, default_value = "site")]
        name: String,
    },
    /// Issue the gateway's own listener certificate and key (server use), with
    /// the DNS names and IP addresses clients connect to: point a route's
    /// `[route.listen_tls] cert` and `key` at them.
    IssueListener {
        /// A name for it in the CA's records (and the file names NAME.crt, NAME.key).
        name: String,
        /// The site configuration (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// A DNS name clients use (repeat for more).
        #[arg(long = "dns")]
        dns: Vec<String>,
        /// An IP address clients use (repeat for more).
        #[arg(long = "ip")]
        ips: Vec<std::net::IpAddr>,
        /// Directory to write the certificate and key into.
        #[arg(long)]
        out: PathBuf,
        /// Validity in days.
        #[arg(long, default_value_t = 365)]
        days: i64,
    },
    /// Show the CA and every certificate it issued.
    Show {
        /// The site configuration (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub(crate) enum DeviceCommand {
    /// Issue a certificate and key bound to a device id (written as ID.crt and
    /// ID.key into --out; the key is never kept by wardgate).
    Enroll {
        /// The device id (declared in the configuration).
        id: String,
        /// The site configuration (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Directory to write the certificate and key into.
        #[arg(long)]
        out: PathBuf,
        /// Validity in days.
        #[arg(long, default_value_t = 365)]
        days: i64,
    },
    /// Sign a certificate request (PKCS#10, PEM) a device made with its own
    /// key, which never leaves the device: the certificate names the device
    /// given here, whatever the request asks for. Written as ID.crt into --out.
    Sign {
        /// The device id (declared in the configuration).
        id: String,
        /// The request (`openssl req -new ...` on the device).
        #[arg(long)]
        csr: PathBuf,
        /// The site configuration (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Directory to write the certificate into.
        #[arg(long)]
        out: PathBuf,
        /// Validity in days.
        #[arg(long, default_value_t = 365)]
        days: i64,
    },
    /// Revoke every certificate issued to a device (the signed CRL in
    /// data_dir/tls/ca.crl is re-issued; verifiers refuse it on new connections).
    Revoke {
        /// The device id.
        id: String,
        /// The site configuration (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
}

pub(crate) fn ca(cmd: CaCommand) -> Result<ExitCode> {
    match cmd {
        CaCommand::Init { config, name } => {
            let v = crate::load(&config)?;
            let ca = Ca::init(&v.data_dir, &name)?;
            let s = ca.summary()?;
            println!("certificate authority created: {}", s.subject);
            println!(
                "certificate: {} (give it to peers that verify wardgate)",
                s.certificate.display()
            );
            println!("fingerprint (SHA-256): {}", s.fingerprint);
            Ok(ExitCode::SUCCESS)
        }
        CaCommand::IssueListener {
            name,
            config,
            dns,
            ips,
            out,
            days,
        } => {
            let v = crate::load(&config)?;
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
                || name.starts_with('.')
            {
                anyhow::bail!("listener name {name:?}: letters, digits, '-', '_' and '.' only (it names files)");
            }
            if v.config.devices.iter().any(|d| d.id.get_ref() == &name) {
                anyhow::bail!(
                    "{name:?} is a device id: give the listener another name, or `device revoke {name}` would revoke it too"
                );
            }
            let ca = Ca::load(&v.data_dir)?;
            let e = ca
                .issue_listener(&name, &dns, &ips, &out, days)
                .with_context(|| format!("issuing the listener certificate {name}"))?;
            println!("certificate: {}", e.cert_path.display());
            if let Some(k) = &e.key_path {
                println!("private key: {} (owner-only)", k.display());
            }
            println!("serial {} valid until {}", e.cert.serial, e.cert.not_after);
            Ok(ExitCode::SUCCESS)
        }
        CaCommand::Show { config, json } => {
            let v = crate::load(&config)?;
            let s = Ca::load(&v.data_dir)?.summary()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                println!("subject:     {}", s.subject);
                println!("fingerprint: {}", s.fingerprint);
                println!("valid until: {}", s.not_after);
                println!("certificate: {}", s.certificate.display());
                println!("crl:         {}", s.crl.display());
                println!(
                    "\n{:<20} {:<34} {:<26} STATUS",
                    "DEVICE", "SERIAL", "NOT AFTER"
                );
                for c in &s.issued {
                    let status = match &c.revoked {
                        Some(t) => format!("revoked {t}"),
                        None => "valid".to_owned(),
                    };
                    println!(
                        "{:<20} {:<34} {:<26} {status}",
                        c.device, c.serial, c.not_after
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub(crate) fn device(cmd: DeviceCommand) -> Result<ExitCode> {
    match cmd {
        DeviceCommand::Enroll {
            id,
            config,
            out,
            days,
        } => {
            let v = crate::load(&config)?;
            if !v.config.devices.iter().any(|d| d.id.get_ref() == &id) {
                anyhow::bail!(
                    "device {id:?} is not declared in {}: declare it first, then enroll it",
                    config.display()
                );
            }
            let ca = Ca::load(&v.data_dir)?;
            let e = ca
                .enroll(&id, &out, days)
                .with_context(|| format!("enrolling {id}"))?;
            println!("certificate: {}", e.cert_path.display());
            if let Some(k) = &e.key_path {
                println!(
                    "private key: {} (owner-only; install it on the device and delete this copy)",
                    k.display()
                );
            }
            println!("serial {} valid until {}", e.cert.serial, e.cert.not_after);
            Ok(ExitCode::SUCCESS)
        }
        DeviceCommand::Sign {
            id,
            csr,
            config,
            out,
            days,
        } => {
            let v = crate::load(&config)?;
            if !v.config.devices.iter().any(|d| d.id.get_ref() == &id) {
                anyhow::bail!(
                    "device {id:?} is not declared in {}: declare it first, then sign its request",
                    config.display()
                );
            }
            let pem = std::fs::read_to_string(&csr)
                .with_context(|| format!("reading {}", csr.display()))?;
            let ca = Ca::load(&v.data_dir)?;
            let e = ca
                .sign_request(&id, &pem, &out, days)
                .with_context(|| format!("signing {}'s request {}", id, csr.display()))?;
            println!(
                "certificate: {} (the key stayed on the device)",
                e.cert_path.display()
            );
            println!("serial {} valid until {}", e.cert.serial, e.cert.not_after);
            Ok(ExitCode::SUCCESS)
        }
        DeviceCommand::Revoke { id, config } => {
            let v = crate::load(&config)?;
            let ca = Ca::load(&v.data_dir)?;
            let serials = ca.revoke(&id)?;
            println!(
                "revoked {} certificate(s) of {id}: {}; the CRL {} was re-issued",
                serials.len(),
                serials.join(", "),
                Ca::dir_of(&v.data_dir).join("ca.crl").display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
