//! `wardgate library`: the pharmacy's signing of drug library files. A library
//! kept in its own file (`[[drug_library]] file = ...`) can be signed with an
//! Ed25519 key; with `require_signed = true` wardgate refuses it, at start and at
//! reload, unless `file.sig` holds a valid signature by a `[[library_signer]]`.
//! Who can edit the file on the gateway then cannot raise a limit unnoticed.

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use ed25519_dalek::{Signer, SigningKey};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `wardgate library ...`
#[derive(Subcommand)]
pub(crate) enum LibraryCommand {
    /// Make a signing key: writes KEY (the secret, hex, mode 0600) and prints the
    /// public key to put in `[[library_signer]] public_key`.
    Keygen {
        /// Where to write the secret key.
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a drug library file: writes FILE.sig.
    Sign {
        /// The secret key (from `keygen`).
        #[arg(long)]
        key: PathBuf,
        /// The signer's id, as in `[[library_signer]] id`.
        #[arg(long)]
        signer: String,
        /// The library file.
        file: PathBuf,
    },
    /// Check a library file's signature against a public key (hex).
    Verify {
        /// The signer's public key (64 hex digits).
        #[arg(long)]
        public_key: String,
        /// The signer's id.
        #[arg(long)]
        signer: String,
        /// The library file.
        file: PathBuf,
    },
}

pub(crate) fn run(cmd: LibraryCommand) -> Result<ExitCode> {
    match cmd {
        LibraryCommand::Keygen { out } => keygen(&out),
        LibraryCommand::Sign { key, signer, file } => {
            let key = read_secret(&key)?;
            let content =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let mut signed = wardgate_config::LIBRARY_SIGNATURE_DOMAIN.to_vec();
            signed.extend_from_slice(&content);
            let sig = key.sign(&signed).to_bytes();
            let out = sig_path(&file);
            std::fs::write(&out, wardgate_config::library_signature_line(&signer, &sig))
                .with_context(|| format!("writing {}", out.display()))?;
            println!("signed {} as {signer:?}: {}", file.display(), out.display());
            Ok(ExitCode::SUCCESS)
        }
        LibraryCommand::Verify {
            public_key,
            signer,
            file,
        } => {
            let content =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let sig = std::fs::read_to_string(sig_path(&file))
                .with_context(|| format!("reading {}", sig_path(&file).display()))?;
            match wardgate_config::verify_library_signature(&content, &sig, &[(signer, public_key)])
            {
                Ok(s) => {
                    println!("{}: signed by {s:?}", file.display());
                    Ok(ExitCode::SUCCESS)
                }
                Err(why) => {
                    println!("{}: {why}", file.display());
                    Ok(ExitCode::from(1))
                }
            }
        }
    }
}

fn sig_path(file: &Path) -> PathBuf {
    let mut p = file.as_os_str().to_owned();
    p.push(".sig");
    PathBuf::from(p)
}

/// Makes an Ed25519 key: writes the secret to `out` (hex, 0600, never over an
/// existing file) and prints the public key (64 hex digits).
pub(crate) fn keygen(out: &Path) -> Result<ExitCode> {
    if out.exists() {
        bail!("{} exists; not overwriting a key", out.display());
    }
    let key = SigningKey::generate(&mut rand_core::OsRng);
    write_secret(out, &hex::encode(key.to_bytes()))?;
    println!("{}", hex::encode(key.verifying_key().to_bytes()));
    Ok(ExitCode::SUCCESS)
}

/// Reads a secret key written by [`write_secret`] (64 hex digits).
pub(crate) fn read_secret(path: &Path) -> Result<SigningKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let bytes: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .context("the key file does not hold 64 hex digits")?;
    Ok(SigningKey::from_bytes(&bytes))
}

/// Writes a secret key file: created new (never overwriting), mode 0600.
pub(crate) fn write_secret(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    Ok(())
}
