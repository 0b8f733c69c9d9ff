//! Privacy's I/O: the site key file, the consent opt-out lists, and the
//! re-identification table (docs/privacy.md).
//!
//! - The key (`[privacy] key_file`, default `data_dir/privacy/site.key`): 32
//!   random bytes made on first start, mode 0600. Whoever holds it can
//!   re-identify; it never leaves the file and is never printed.
//! - Consent lists: `data_dir/privacy/consent/PURPOSE.optout`, keyed
//!   pseudonyms one per line, written by `wardgate consent` and re-read by the
//!   running gateway when they change.
//! - The re-identification table `data_dir/privacy/reidentify.tab`: one line
//!   per pseudonym made, `PSEUDONYM BASE64(nonce | XChaCha20-Poly1305(id))`
//!   under a key derived from the site key, appended off the data path. The
//!   table without the key says nothing; with it, an authorised account
//!   re-identifies through the console, and each use is recorded.

use anyhow::{bail, Context, Result};
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use wardgate_audit::fsx;
use wardgate_config::{Validated, PRIVACY_DIR};
use wardgate_privacy::consent::{self, ConsentLists};
use wardgate_privacy::{Book, PatientNaming, Pseudonymiser, Site, SiteKey};

/// The consent lists' directory under data_dir/privacy.
const CONSENT_DIR: &str = "consent";
/// A list's file name ending.
const OPTOUT_EXT: &str = "optout";
/// The re-identification table under data_dir/privacy.
const TABLE: &str = "reidentify.tab";
/// Label of the table's encryption key (derived from the site key).
const TABLE_KEY_LABEL: &str = "reidentification table";
/// Pseudonyms remembered in memory as already written; past this the set
/// starts over (a pair written twice is harmless: the reader keeps one).
const REMEMBERED: usize = 1 << 20;
/// Re-identification entries waiting for the table's writer at most.
const REID_QUEUE: usize = 1 << 16;

/// Reads the site key, making it (32 random bytes, mode 0600) when `create`
/// and it does not exist yet.
pub(crate) fn load_key(path: &Path, create: bool) -> Result<SiteKey> {
    load_key_made(path, create).map(|(k, _)| k)
}

/// True when `data_dir/privacy` holds anything made with a key (consent
/// lists, the re-identification table): a key missing then is lost, not new.
fn made_with_a_key(v: &Validated) -> bool {
    let d = dir(v);
    let table = std::fs::metadata(d.join(TABLE)).is_ok_and(|m| m.len() > 0);
    let lists = std::fs::read_dir(d.join(CONSENT_DIR))
        .map(|mut e| {
            e.any(|f| {
                f.is_ok_and(|f| f.path().extension().and_then(|x| x.to_str()) == Some(OPTOUT_EXT))
            })
        })
        .unwrap_or(false);
    table || lists
}

/// [`load_key`] for a configuration: a key is made only for a site that has
/// no privacy state yet. A key missing while consent lists or the
/// re-identification table exist (a key kept on a mount that is absent, a
/// `key_file` edited) is refused: a new key would void every opt-out and
/// change every pseudonym. The second value is true when the key was made now.
pub(crate) fn site_key(v: &Validated) -> Result<(SiteKey, bool)> {
    let path = &v.privacy.key_file;
    if !path.exists() && made_with_a_key(v) {
        bail!(
            "the site key {} is missing, but consent lists or the re-identification table in {} were made with one: restore the key (a new key would void every opt-out and change every pseudonym)",
            path.display(),
            dir(v).display()
        );
    }
    load_key_made(path, true)
}

fn load_key_made(path: &Path, create: bool) -> Result<(SiteKey, bool)> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let b: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                anyhow::anyhow!(
                    "{}: a site key is exactly 32 bytes, this file has {}; restore it from the site's backup (a new key changes every pseudonym)",
                    path.display(),
                    bytes.len()
                )
            })?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    bail!(
                        "{}: the site key is readable by others (mode {mode:o}); `chmod 600` it (whoever reads it can re-identify patients)",
                        path.display()
                    );
                }
            }
            Ok((SiteKey::from_bytes(b), false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            if let Some(dir) = path.parent() {
                fsx::create_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
            }
            let mut b = [0u8; 32];
            getrandom::getrandom(&mut b)
                .map_err(|e| anyhow::anyhow!("reading random bytes for the site key: {e}"))?;
            // Whole or absent, and never replaced: a gateway and a capture
            // started together both find no key; the one that links first
            // makes it, the other reads it.
            let made = fsx::write_new_whole(path, &b, fsx::KEY_MODE)
                .with_context(|| format!("writing the site key {}", path.display()))?;
            if !made {
                return load_key_made(path, false);
            }
            tracing::warn!(path = %path.display(), "made the site key (back it up: pseudonyms depend on it)");
            Ok((SiteKey::from_bytes(b), true))
        }
        Err(e) => Err(e).with_context(|| format!("reading the site key {}", path.display())),
    }
}

/// `data_dir/privacy`.
pub(crate) fn dir(v: &Validated) -> PathBuf {
    v.data_dir.join(PRIVACY_DIR)
}

/// Every consent list in `data_dir/privacy/consent`, by purpose.
pub(crate) fn load_consent(v: &Validated, fingerprint: &str) -> Result<ConsentLists> {
    let d = dir(v).join(CONSENT_DIR);
    let mut lists = ConsentLists::default();
    let entries = match std::fs::read_dir(&d) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(lists),
        Err(e) => return Err(e).with_context(|| format!("reading {}", d.display())),
    };
    for e in entries {
        let p = e?.path();
        if p.extension().and_then(|x| x.to_str()) != Some(OPTOUT_EXT) {
            continue;
        }
        let Some(purpose) = p.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let text =
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        let list = consent::read_list_for(&text, fingerprint)
            .with_context(|| format!("{}", p.display()))?;
        lists.insert(purpose, list);
    }
    Ok(lists)
}

/// What [`consent_stamp`] gives: each list's name, size (with its inode) and time.
pub(crate) type ConsentStamp = Vec<(String, u64, Option<std::time::SystemTime>)>;

/// A fingerprint of the consent directory (names, sizes, times), to notice a change.
pub(crate) fn consent_stamp(v: &Validated) -> ConsentStamp {
    let d = dir(v).join(CONSENT_DIR);
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&d) {
        for e in entries.flatten() {
            if let Ok(m) = e.metadata() {
                // The inode too: a list replaced by rename within the same
                // second and size is still a change.
                #[cfg(unix)]
                let ino = std::os::unix::fs::MetadataExt::ino(&m);
                #[cfg(not(unix))]
                let ino = 0u64;
                out.push((
                    e.file_name().to_string_lossy().into_owned(),
                    m.len() ^ (ino << 20),
                    m.modified().ok(),
                ));
            }
        }
    }
    out.sort();
    out
}

/// The digest `[privacy] dicom_digest` names. Validation admits only the
/// names `DigestKind` knows; should the two ever disagree, wardgate refuses to
/// start rather than record with another digest than the site chose.
fn dicom_digest(v: &Validated) -> Result<wardgate_privacy::digest::DigestKind> {
    wardgate_privacy::digest::DigestKind::parse(v.privacy.dicom_digest).with_context(|| {
        format!(
            "[privacy] dicom_digest {:?} is not known",
            v.privacy.dicom_digest
        )
    })
}

/// The site's privacy state for a gateway or a capture: the key (made only
/// for a site with no privacy state yet), the consent lists, and the book that
/// keeps the way back. The second value is the new key's fingerprint when
/// the key was made now, for the record.
pub(crate) fn open_site(v: &Validated) -> Result<(Site, Option<String>)> {
    let (key, made) = site_key(v)?;
    let p = Pseudonymiser::new(&key);
    let fingerprint = p.fingerprint().to_owned();
    let book = TableBook::start(&dir(v).join(TABLE), &p)?;
    let site = Site {
        patients: PatientNaming::new(p, v.privacy.raw_patient_ids_in_events, Some(Arc::new(book))),
        dicom_digest: dicom_digest(v)?,
        ..Default::default()
    };
    site.consent.replace(load_consent(v, &fingerprint)?);
    Ok((site, made.then_some(fingerprint)))
}

/// The site's privacy state without writing to data_dir (`analyze
/// --no-store`): an existing key names patients (no re-identification entries
/// are written); without one, records name no patient.
pub(crate) fn existing_site(v: &Validated) -> Result<Site> {
    if !v.privacy.key_file.exists() {
        return Ok(Site::default());
    }
    let key = load_key(&v.privacy.key_file, false)?;
    let p = Pseudonymiser::new(&key);
    let fingerprint = p.fingerprint().to_owned();
    let site = Site {
        patients: PatientNaming::new(p, v.privacy.raw_patient_ids_in_events, None),
        dicom_digest: dicom_digest(v)?,
        ..Default::default()
    };
    site.consent.replace(load_consent(v, &fingerprint)?);
    Ok(site)
}

/// The re-identification table's writer: pairs go over a channel to a thread
/// that encrypts and appends them, so the data path never waits on a disk.
struct TableBook {
    seen: Mutex<HashSet<String>>,
    tx: Mutex<mpsc::SyncSender<(String, String)>>,
}

impl TableBook {
    fn start(path: &Path, p: &Pseudonymiser) -> Result<TableBook> {
        if let Some(d) = path.parent() {
            fsx::create_dir(d).with_context(|| format!("creating {}", d.display()))?;
        }
        let cipher = XChaCha20Poly1305::new(&p.derive_key(TABLE_KEY_LABEL).into());
        // The table names the key it was written with; one of another key
        // is refused (its entries would open with nothing).
        let existing = std::fs::read(path).unwrap_or_default();
        let first = existing.split(|b| *b == b'\n').next().unwrap_or_default();
        if let Some(found) = first.strip_prefix(b"# key ") {
            if found != p.fingerprint().as_bytes() {
                bail!(
                    "{} was written with site key {}, not this site's key {}: restore the right key",
                    path.display(),
                    String::from_utf8_lossy(found),
                    p.fingerprint()
                );
            }
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        if existing.is_empty() {
            f.write_all(format!("{}\n", consent::key_line(p.fingerprint())).as_bytes())?;
        } else if !existing.ends_with(b"\n") {
            // A torn last line (a crash mid-write) must not swallow the next entry.
            f.write_all(b"\n")?;
        }
        // 0640 as every record: the entries are encrypted under the site key.
        fsx::set_mode(path, fsx::FILE_MODE)?;
        // The pairs already written (whole lines whose entry opens and names
        // its pseudonym) are not written again after a restart.
        let mut seen = HashSet::new();
        let whole = match existing.iter().rposition(|b| *b == b'\n') {
            Some(end) => &existing[..end],
            None => &[][..],
        };
        // The newest first, and half the memory's bound: the patients seen
        // lately are the ones likely to come again, and new ones fit in.
        for line in whole.rsplit(|b| *b == b'\n') {
            if seen.len() >= REMEMBERED / 2 {
                break;
            }
            let Some((ps, sealed)) = std::str::from_utf8(line)
                .ok()
                .and_then(|l| l.split_once(' '))
            else {
                continue;
            };
            if open_entry(&cipher, sealed).is_some_and(|id| p.patient(&id) == ps) {
                seen.insert(ps.to_owned());
            }
        }
        // Bounded: under a flood of new identifiers, callers wait for the
        // writer (backpressure) instead of memory growing without end (found
        // by an adversarial review: 483 MiB behind the writer).
        let (tx, rx) = mpsc::sync_channel::<(String, String)>(REID_QUEUE);
        let path = path.to_owned();
        std::thread::Builder::new()
            .name("wardgate-reid".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    batch.extend(rx.try_iter().take(4096));
                    let mut text = String::new();
                    for (pseudonym, id) in batch {
                        match seal(&cipher, &id) {
                            Ok(s) => {
                                text.push_str(&pseudonym);
                                text.push(' ');
                                text.push_str(&s);
                                text.push('\n');
                            }
                            Err(e) => tracing::error!(error = %e, "could not encrypt a re-identification entry"),
                        }
                    }
                    if let Err(e) = f.write_all(text.as_bytes()).and_then(|()| f.sync_data()) {
                        tracing::error!(path = %path.display(), error = %e, "could not write the re-identification table");
                    }
                }
            })
            .context("starting the re-identification table's writer")?;
        Ok(TableBook {
            seen: Mutex::new(seen),
            tx: Mutex::new(tx),
        })
    }
}

impl Book for TableBook {
    fn remember(&self, pseudonym: &str, id: &str) {
        {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if seen.contains(pseudonym) {
                return;
            }
            if seen.len() >= REMEMBERED {
                seen.clear();
            }
            seen.insert(pseudonym.to_owned());
        }
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        let _ = tx.send((pseudonym.to_owned(), id.to_owned()));
    }
}

fn seal(cipher: &XChaCha20Poly1305, id: &str) -> Result<String> {
    use base64::Engine;
    let mut nonce = [0u8; 24];
    getrandom::getrandom(&mut nonce).map_err(|e| anyhow::anyhow!("random nonce: {e}"))?;
    let ct = cipher
        .encrypt(XNonce::from_slice(&nonce), id.as_bytes())
        .map_err(|_| anyhow::anyhow!("encryption failed"))?;
    let mut all = nonce.to_vec();
    all.extend_from_slice(&ct);
    Ok(base64::engine::general_purpose::STANDARD_NO_PAD.encode(all))
}

fn open_entry(cipher: &XChaCha20Poly1305, sealed: &str) -> Option<String> {
    use base64::Engine;
    let all = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(sealed)
        .ok()?;
    if all.len() < 24 + 16 {
        return None;
    }
    let (nonce, ct) = all.split_at(24);
    let pt = cipher.decrypt(XNonce::from_slice(nonce), ct).ok()?;
    String::from_utf8(pt).ok()
}

/// The identifier a pseudonym names, read from the table with the key; `None`
/// when the table has no entry for it (or none this key opens).
pub(crate) fn reidentify(table: &Path, key: &SiteKey, pseudonym: &str) -> Result<Option<String>> {
    let p = Pseudonymiser::new(key);
    let cipher = XChaCha20Poly1305::new(&p.derive_key(TABLE_KEY_LABEL).into());
    let f = match std::fs::File::open(table) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", table.display())),
    };
    for line in std::io::BufReader::new(f).lines() {
        let line = line?;
        let Some((ps, sealed)) = line.split_once(' ') else {
            continue;
        };
        if ps != pseudonym {
            continue;
        }
        // An entry is believed only if the id it holds gives this pseudonym:
        // a line edited into the table cannot name someone else.
        if let Some(id) = open_entry(&cipher, sealed) {
            if p.patient(&id) == pseudonym {
                return Ok(Some(id));
            }
        }
    }
    Ok(None)
}

/// The table's path for a configuration.
pub(crate) fn table_path(v: &Validated) -> PathBuf {
    dir(v).join(TABLE)
}

/// Uses of the key on the command line (`wardgate consent`), under
/// data_dir/privacy, until the gateway records them in the audit chain.
const USES_DIR: &str = "uses";

/// The operations `wardgate consent` spools.
const USE_OPERATIONS: [&str; 4] = [
    "consent-add",
    "consent-remove",
    "consent-list",
    "consent-check",
];
/// Spooled uses recorded per poll: a flood of files cannot hold the gateway's
/// consent watcher.
const USES_PER_POLL: usize = 256;
/// Largest spooled use read (they are about 200 bytes).
const USE_MAX_BYTES: u64 = 4096;

/// One use of the key on the command line, as spooled: what was done and to
/// how many identifiers, never an identifier or its pseudonym. The account
/// that ran it is the file's owner (its content cannot change that); the
/// login it came from is the kernel's login uid, which `sudo` keeps.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct KeyUse {
    at: String,
    operation: String,
    purpose: String,
    count: usize,
    /// `/proc/self/loginuid` of the command (absent: not Linux, or unset).
    #[serde(default)]
    login_uid: Option<u32>,
    /// `$SUDO_USER`, `$USER` or `$LOGNAME` as the command found it: a note,
    /// not proof (the environment is the caller's).
    user: String,
}

/// The kernel's login uid of this process (`None` when unset: 4294967295).
fn login_uid() -> Option<u32> {
    std::fs::read_to_string("/proc/self/loginuid")
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
        .filter(|u| *u != u32::MAX)
}

/// Spools a use before it is carried out: a use that cannot be spooled is not
/// carried out (the audit chain must show every use of the key).
fn spool_use(v: &Validated, operation: &str, purpose: &str, count: usize) -> Result<()> {
    use rand_core::RngCore;
    let d = dir(v).join(USES_DIR);
    let user = ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|u| !u.is_empty()))
        .unwrap_or_default();
    let clock = wardgate_event::Clock::now();
    let u = KeyUse {
        at: clock.rfc3339().to_owned(),
        operation: operation.to_owned(),
        purpose: purpose.to_owned(),
        count,
        login_uid: login_uid(),
        user,
    };
    // Time first, so the gateway records uses in the order they were made.
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let name = format!("{ns:024}-{:016x}.json", rand_core::OsRng.next_u64());
    let body = serde_json::to_vec(&u)?;
    let written = fsx::create_dir(&d)
        .and_then(|()| fsx::write_new_whole(&d.join(&name), &body, fsx::FILE_MODE));
    match written {
        Ok(true) => Ok(()),
        Ok(false) => bail!("recording this use of the site key: {name} exists already in {}", d.display()),
        Err(e) => Err(anyhow::Error::from(e)).with_context(|| {
            format!(
                "recording this use of the site key in {} (a use that cannot be recorded is not carried out)",
                d.display()
            )
        }),
    }
}

/// What the drain remembers between polls: spooled files it recorded but
/// could not remove (not recorded again), and whether it said the directory
/// cannot be read.
#[derive(Debug, Default)]
pub(crate) struct UsesState {
    stuck: HashSet<PathBuf>,
    unreadable_dir: bool,
}

/// Reads one spooled use: a regular file (not followed through a link), at
/// most [`USE_MAX_BYTES`], with its owner's uid from the open file.
fn read_use(f: &Path) -> Result<(Option<u32>, Option<KeyUse>), String> {
    use std::io::Read;
    let meta = std::fs::symlink_metadata(f).map_err(|e| e.to_string())?;
    if !meta.file_type().is_file() {
        return Err("not a regular file".into());
    }
    let file = std::fs::File::open(f).map_err(|e| e.to_string())?;
    let opened = file.metadata().map_err(|e| e.to_string())?;
    #[cfg(unix)]
    let uid = {
        use std::os::unix::fs::MetadataExt;
        if (opened.dev(), opened.ino()) != (meta.dev(), meta.ino()) {
            return Err("replaced while it was read".into());
        }
        Some(opened.uid())
    };
    #[cfg(not(unix))]
    let uid = {
        let _ = opened;
        None
    };
    let mut body = Vec::new();
    file.take(USE_MAX_BYTES + 1)
        .read_to_end(&mut body)
        .map_err(|e| e.to_string())?;
    let parsed = (body.len() as u64 <= USE_MAX_BYTES)
        .then(|| serde_json::from_slice::<KeyUse>(&body).ok())
        .flatten()
        .filter(|u| {
            USE_OPERATIONS.contains(&u.operation.as_str()) && wardgate_config::valid_id(&u.purpose)
        });
    Ok((uid, parsed))
}

/// Records the spooled uses of the key (oldest first, at most
/// [`USES_PER_POLL`] a call) and removes each once the recorder took it.
/// Returns how many were recorded.
pub(crate) fn drain_uses(
    v: &Validated,
    state: &mut UsesState,
    record: &mut dyn FnMut(wardgate_event::Event) -> bool,
) -> usize {
    use wardgate_event::event::User;
    use wardgate_event::{Action, Category, Event, Stage};
    let d = dir(v).join(USES_DIR);
    let entries = match std::fs::read_dir(&d) {
        Ok(e) => {
            state.unreadable_dir = false;
            e
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return 0,
        Err(e) => {
            if !state.unreadable_dir {
                tracing::error!(dir = %d.display(), error = %e, "cannot read the spooled uses of the site key: they are not recorded");
                state.unreadable_dir = true;
            }
            return 0;
        }
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().and_then(|x| x.to_str()) == Some("json"))
        .filter(|p| !state.stuck.contains(p))
        .collect();
    files.sort();
    files.truncate(USES_PER_POLL);
    let mut n = 0;
    for f in files {
        let now = wardgate_event::Clock::now();
        let (uid, parsed) = match read_use(&f) {
            Ok(r) => r,
            Err(why) => {
                tracing::warn!(path = %f.display(), why, "a spooled use of the site key cannot be read");
                (None, None)
            }
        };
        let who = parsed
            .as_ref()
            .and_then(|u| u.login_uid)
            .map(|l| format!("login uid {l}, "))
            .unwrap_or_default();
        let uid_text = uid.map_or_else(|| "unknown".to_owned(), |u| u.to_string());
        let mut e = match &parsed {
            Some(u) => {
                let action = match u.operation.as_str() {
                    "consent-add" | "consent-remove" => Action::Changed,
                    _ => Action::Viewed,
                };
                let mut e = Event::new(
                    now.rfc3339().to_owned(),
                    action,
                    format!(
                        "`wardgate {}` on the command line by {who}account uid {uid_text}{} at {}: {} identifier(s), purpose {}",
                        u.operation.replacen('-', " ", 1),
                        if u.user.is_empty() { String::new() } else { format!(" (said {})", u.user) },
                        u.at,
                        u.count,
                        u.purpose
                    ),
                    Stage::Gateway,
                );
                e.wardgate.operation = Some(u.operation.clone());
                e
            }
            None => Event::new(
                now.rfc3339().to_owned(),
                Action::Failed,
                format!(
                    "an unreadable record of a site key use on the command line (uid {uid_text}): {}",
                    f.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                ),
                Stage::Gateway,
            ),
        };
        e.event.category = Category::Configuration;
        e.user = Some(User {
            name: parsed
                .as_ref()
                .and_then(|u| u.login_uid)
                .or(uid)
                .map(|u| format!("uid {u}"))
                .unwrap_or_default(),
            roles: Vec::new(),
        });
        if !record(e) {
            break;
        }
        n += 1;
        let removed = match std::fs::symlink_metadata(&f) {
            Ok(m) if m.is_dir() => std::fs::remove_dir(&f),
            _ => std::fs::remove_file(&f),
        };
        if let Err(err) = removed {
            tracing::error!(path = %f.display(), error = %err, "recorded a use of the site key but cannot remove its file: it is not recorded again");
            state.stuck.insert(f);
        }
    }
    n
}

/// `wardgate consent add|remove|list|check`.
/// `wardgate digest`: prints the keyed digest of what came in for each file
/// (or, with `out`, the plain digest of what went out), as `sha256sum` prints
/// (`DIGEST  FILE`). The key is the site's; it is never made here (a new key
/// would match nothing).
pub(crate) fn digest_command(
    v: &Validated,
    kind: wardgate_privacy::digest::DigestKind,
    implicit: bool,
    out: bool,
    files: &[PathBuf],
) -> Result<std::process::ExitCode> {
    use wardgate_privacy::digest::{DigestKind, IN_DIGEST_LABEL};
    let (key, _) = load_key_made(&v.privacy.key_file, false)?;
    let k = Pseudonymiser::new(&key).derive_key(IN_DIGEST_LABEL);
    for f in files {
        let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        let (data, syntax) = part10_data_set(&bytes).ok_or_else(|| {
            anyhow::anyhow!(
                "{}: its file meta group runs past the end of the file",
                f.display()
            )
        })?;
        let digest = if kind == DigestKind::Blake3Elements {
            use wardgate_privacy::dicom::Encoding;
            let enc = match syntax {
                Some(uid) => Encoding::for_transfer_syntax(uid)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?,
                None if implicit => Encoding::ImplicitLe,
                None => Encoding::ExplicitLe,
            };
            let mut w = wardgate_privacy::elements::Walker::new(enc, (!out).then_some(&k));
            w.feed(data);
            w.finish()
        } else {
            let mut h = if out {
                kind.hasher()
            } else {
                kind.keyed_hasher(&k)
            };
            h.update(data);
            h.finish()
        };
        println!("{digest}  {}", f.display());
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// The data set of a DICOM Part 10 file (after the preamble, `DICM` and the
/// file meta group, explicit VR little endian as PS3.10 7.1 requires) and its
/// Transfer Syntax UID (0002,0010), or the bytes as they are for anything
/// else (an HL7 message, a bare data set); `None` where the meta group runs
/// past the end of the file.
fn part10_data_set(bytes: &[u8]) -> Option<(&[u8], Option<&str>)> {
    if bytes.get(128..132) != Some(b"DICM") {
        return Some((bytes, None));
    }
    let mut at = 132;
    let mut syntax = None;
    while let Some(h) = bytes.get(at..at + 8) {
        if u16::from_le_bytes([h[0], h[1]]) != 0x0002 {
            break;
        }
        // OB, OW, OF, SQ, UT, UN and the other long VRs: 2 reserved bytes and a
        // 4-byte length; the rest a 2-byte length.
        let long = wardgate_privacy::dicom::Vr::from_code([h[4], h[5]])
            .is_some_and(wardgate_privacy::dicom::Vr::long_length);
        let (len, head) = if long {
            let l = bytes.get(at + 8..at + 12)?;
            (u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize, 12)
        } else {
            (usize::from(u16::from_le_bytes([h[6], h[7]])), 8)
        };
        if h[2..4] == [0x10, 0x00] {
            let value = at
                .checked_add(head)
                .and_then(|s| bytes.get(s..s.checked_add(len)?));
            syntax = value.and_then(|v| std::str::from_utf8(v).ok());
        }
        at = at.saturating_add(head).saturating_add(len);
    }
    Some((bytes.get(at..)?, syntax))
}

pub(crate) fn consent_command(
    v: &Validated,
    cmd: &crate::ConsentCommand,
) -> Result<std::process::ExitCode> {
    use crate::ConsentCommand as C;
    let (purpose, ids, from): (&str, &[String], Option<&PathBuf>) = match cmd {
        C::Add { purpose, ids, from } | C::Remove { purpose, ids, from } => {
            (purpose, ids, from.as_ref())
        }
        C::List { purpose } => (purpose, &[], None),
        C::Check { purpose, ids } => (purpose, ids, None),
    };
    if !wardgate_config::valid_id(purpose) {
        bail!("purpose {purpose:?} must be an identifier such as \"research\"");
    }
    let routes: Vec<&str> = v
        .routes
        .iter()
        .filter(|r| r.privacy.as_ref().and_then(|p| p.purpose.as_deref()) == Some(purpose))
        .map(|r| r.id.as_str())
        .collect();
    if routes.is_empty() {
        eprintln!("note: no route serves purpose {purpose:?}; the list applies once one does");
    }
    let (key, _) = site_key(v)?;
    let p = Pseudonymiser::new(&key);
    let d = dir(v).join(CONSENT_DIR);
    let file = d.join(format!("{purpose}.{OPTOUT_EXT}"));
    let current = match std::fs::read_to_string(&file) {
        Ok(t) => consent::read_list_for(&t, p.fingerprint())
            .with_context(|| format!("{}", file.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashSet::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    };
    let mut given: Vec<String> = ids.to_vec();
    if let Some(f) = from {
        // `--from -`: identifiers from standard input, kept out of the shell's
        // history and the process list.
        let text = if f.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin()).context("reading standard input")?
        } else {
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?
        };
        given.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        );
    }
    let pseudonyms: Vec<String> = given
        .iter()
        .filter(|i| !i.trim().is_empty())
        .map(|i| {
            if consent::is_pseudonym(i.trim()) {
                i.trim().to_owned()
            } else {
                p.patient(i)
            }
        })
        .collect();
    let operation = match cmd {
        C::Add { .. } => "consent-add",
        C::Remove { .. } => "consent-remove",
        C::List { .. } => "consent-list",
        C::Check { .. } => "consent-check",
    };
    let count = match cmd {
        C::List { .. } => current.len(),
        _ => pseudonyms.len(),
    };
    if !matches!(cmd, C::Add { .. } | C::Remove { .. }) || !pseudonyms.is_empty() {
        spool_use(v, operation, purpose, count)?;
    }
    match cmd {
        C::List { .. } => {
            let mut all: Vec<&String> = current.iter().collect();
            all.sort();
            println!(
                "{} patient(s) opted out of {purpose:?} (routes: {})",
                all.len(),
                if routes.is_empty() {
                    "none".into()
                } else {
                    routes.join(", ")
                }
            );
            for a in all {
                println!("{a}");
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        C::Check { .. } => {
            let mut any = false;
            // Each identifier typed is answered by its pseudonym only, in order.
            for ps in &pseudonyms {
                let out = current.contains(ps);
                any |= out;
                println!("{ps}: {}", if out { "opted out" } else { "not opted out" });
            }
            Ok(if any {
                std::process::ExitCode::from(1)
            } else {
                std::process::ExitCode::SUCCESS
            })
        }
        C::Add { .. } | C::Remove { .. } => {
            if pseudonyms.is_empty() {
                bail!("no patient identifier given (arguments or --from FILE)");
            }
            let mut next = current.clone();
            let add = matches!(cmd, C::Add { .. });
            for ps in &pseudonyms {
                if add {
                    next.insert(ps.clone());
                } else {
                    next.remove(ps);
                }
            }
            let mut sorted: Vec<&String> = next.iter().collect();
            sorted.sort();
            let mut text = format!(
                "# wardgate consent opt-outs for purpose {purpose}: keyed pseudonyms, one per line (wardgate consent add|remove)\n{}\n",
                consent::key_line(p.fingerprint())
            );
            for s in sorted {
                text.push_str(s);
                text.push('\n');
            }
            fsx::create_dir(&d)?;
            fsx::write_replace(&file, text.as_bytes())?;
            let changed = next.len().abs_diff(current.len());
            println!(
                "{purpose}: {} patient(s) opted out ({} {}); a running gateway applies it within seconds",
                next.len(),
                changed,
                if add { "added" } else { "removed" }
            );
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part10_file_is_digested_as_its_data_set() {
        // Preamble, DICM, a short-VR meta element and a long-VR one, then the
        // data set; anything else is digested as it is.
        let mut f = vec![0u8; 128];
        f.extend_from_slice(b"DICM");
        f.extend_from_slice(&[0x02, 0x00, 0x10, 0x00, b'U', b'I', 4, 0]);
        f.extend_from_slice(b"1.2\0");
        f.extend_from_slice(&[0x02, 0x00, 0x01, 0x00, b'O', b'B', 0, 0, 2, 0, 0, 0, 0, 1]);
        let data = [0x08, 0x00, 0x60, 0x00, b'C', b'S', 2, 0, b'C', b'T'];
        f.extend_from_slice(&data);
        assert_eq!(part10_data_set(&f), Some((&data[..], Some("1.2\0"))));
        assert_eq!(
            part10_data_set(b"MSH|^~\\&|"),
            Some((&b"MSH|^~\\&|"[..], None))
        );
        // A meta group claiming more than the file holds: no data set (an
        // error, not the digest of nothing).
        let mut cut = f[..132].to_vec();
        cut.extend_from_slice(&[0x02, 0x00, 0x01, 0x00, b'O', b'B', 0, 0, 0xff, 0xff, 0, 0]);
        assert_eq!(part10_data_set(&cut), None);
        assert_eq!(part10_data_set(&f[..140]), None, "a meta header cut short");
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // a bounded poll for the writer thread's lines
    fn the_table_gives_back_only_what_the_key_opens() {
        let dir = tempfile::tempdir().unwrap();
        let key = SiteKey::from_bytes([5; 32]);
        let p = Pseudonymiser::new(&key);
        let path = dir.path().join("privacy").join(TABLE);
        let book = TableBook::start(&path, &p).unwrap();
        book.remember(&p.patient("4711"), "4711");
        book.remember(&p.patient("4711"), "4711");
        book.remember(&p.patient("0815"), "0815");
        drop(book);
        // The writer thread ends when the book is dropped; wait for its two
        // lines, whole (a line half written was read under load), bounded.
        for _ in 0..1000 {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.ends_with('\n') && text.lines().count() >= 2 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("4711") && !text.contains("0815"),
            "the table holds no identifier in clear"
        );
        assert_eq!(
            reidentify(&path, &key, &p.patient("4711"))
                .unwrap()
                .as_deref(),
            Some("4711")
        );
        assert_eq!(reidentify(&path, &key, &p.patient("9999")).unwrap(), None);
        // Another key opens nothing.
        let other = SiteKey::from_bytes([6; 32]);
        assert_eq!(reidentify(&path, &other, &p.patient("4711")).unwrap(), None);
        // A line copied under another pseudonym is not believed.
        let line = text
            .lines()
            .find(|l| l.starts_with(&p.patient("4711")))
            .unwrap();
        let forged = line.replacen(&p.patient("4711"), &p.patient("0815"), 1);
        std::fs::write(&path, format!("{forged}\n")).unwrap();
        assert_eq!(reidentify(&path, &key, &p.patient("0815")).unwrap(), None);
    }

    /// Waits (bounded) until the table has an entry for `pseudonym`.
    #[allow(clippy::disallowed_methods)] // a test thread, not a runtime worker
    fn entries(path: &Path, pseudonym: &str) -> usize {
        for _ in 0..500 {
            let n = std::fs::read_to_string(path)
                .unwrap_or_default()
                .lines()
                .filter(|l| l.starts_with(&format!("{pseudonym} ")))
                .count();
            if n > 0 {
                return n;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        0
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // a test thread, not a runtime worker
    fn a_restart_does_not_write_a_patient_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("privacy").join(TABLE);
        let key = SiteKey::from_bytes([5; 32]);
        let p = Pseudonymiser::new(&key);
        let book = TableBook::start(&path, &p).unwrap();
        book.remember(&p.patient("4711"), "4711");
        drop(book);
        assert_eq!(entries(&path, &p.patient("4711")), 1);
        // A restart: the same patient again, and a new one.
        let book = TableBook::start(&path, &p).unwrap();
        book.remember(&p.patient("4711"), "4711");
        book.remember(&p.patient("0815"), "0815");
        drop(book);
        assert_eq!(entries(&path, &p.patient("0815")), 1);
        assert_eq!(entries(&path, &p.patient("4711")), 1, "written once");
        // A torn last line (a crash mid-write) is not taken as written.
        let text = std::fs::read_to_string(&path).unwrap();
        let torn = format!("{}\n{} QUJD", text.trim_end(), p.patient("1234"));
        std::fs::write(&path, torn).unwrap();
        let book = TableBook::start(&path, &p).unwrap();
        book.remember(&p.patient("1234"), "1234");
        drop(book);
        for _ in 0..500 {
            if reidentify(&path, &key, &p.patient("1234"))
                .unwrap()
                .is_some()
            {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(
            reidentify(&path, &key, &p.patient("1234"))
                .unwrap()
                .as_deref(),
            Some("1234")
        );
    }

    /// Every `wardgate consent` use is spooled before it is carried out and
    /// recorded once by the gateway, with who ran it and how many identifiers,
    /// never an identifier or its pseudonym; a spooled use the recorder does
    /// not take stays for the next poll.
    #[test]
    fn each_consent_command_is_recorded_once_without_the_identifier() {
        use crate::ConsentCommand as C;
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("wardgate.toml");
        let data = dir.path().join("data");
        std::fs::write(
            &cfg,
            format!("[gateway]\ndata_dir = {:?}\n", data.display().to_string()),
        )
        .unwrap();
        let v = crate::load(&cfg).unwrap();
        let purpose = "research".to_owned();
        consent_command(
            &v,
            &C::Add {
                purpose: purpose.clone(),
                ids: vec!["MRN-4711".into()],
                from: None,
            },
        )
        .unwrap();
        consent_command(
            &v,
            &C::Check {
                purpose: purpose.clone(),
                ids: vec!["MRN-4711".into(), "MRN-1".into()],
            },
        )
        .unwrap();
        let (key, _) = site_key(&v).unwrap();
        let ps = Pseudonymiser::new(&key).patient("MRN-4711");
        let mut st = UsesState::default();
        let mut got = Vec::new();
        assert_eq!(
            drain_uses(&v, &mut st, &mut |e| {
                got.push(e);
                true
            }),
            2
        );
        let ops: Vec<_> = got
            .iter()
            .map(|e| e.wardgate.operation.clone().unwrap())
            .collect();
        assert_eq!(ops, ["consent-add", "consent-check"]);
        assert_eq!(got[0].event.action, wardgate_event::Action::Changed);
        assert_eq!(got[1].event.action, wardgate_event::Action::Viewed);
        assert!(
            got[0]
                .event
                .reason
                .contains("1 identifier(s), purpose research"),
            "{}",
            got[0].event.reason
        );
        assert!(
            got[1].event.reason.contains("2 identifier(s)"),
            "{}",
            got[1].event.reason
        );
        for e in &got {
            let json = serde_json::to_string(e).unwrap();
            assert!(!json.contains("MRN-4711") && !json.contains(&ps), "{json}");
            assert!(e.user.as_ref().is_some_and(|u| !u.name.is_empty()));
        }
        assert_eq!(drain_uses(&v, &mut st, &mut |_| true), 0, "recorded once");
        // Not taken by the recorder: kept for the next poll.
        consent_command(&v, &C::List { purpose }).unwrap();
        assert_eq!(drain_uses(&v, &mut st, &mut |_| false), 0);
        assert_eq!(drain_uses(&v, &mut st, &mut |_| true), 1);
        // What is not a spooled use (a link to an endless device, a
        // directory, a named pipe, something too large, another operation) is
        // recorded once as unreadable, never read through, and removed.
        let uses = super::dir(&v).join(USES_DIR);
        std::os::unix::fs::symlink("/dev/zero", uses.join("a.json")).unwrap();
        std::fs::create_dir(uses.join("b.json")).unwrap();
        let fifo = std::process::Command::new("mkfifo")
            .arg(uses.join("c.json"))
            .status();
        std::fs::write(uses.join("d.json"), vec![b' '; 10_000]).unwrap();
        std::fs::write(
            uses.join("e.json"),
            br#"{"at":"x","operation":"reidentify","purpose":"research","count":1,"user":""}"#,
        )
        .unwrap();
        let mut bad = Vec::new();
        let n = drain_uses(&v, &mut st, &mut |e| {
            bad.push(e);
            true
        });
        let want = if fifo.is_ok_and(|s| s.success()) {
            5
        } else {
            4
        };
        assert_eq!(n, want);
        assert!(bad
            .iter()
            .all(|e| e.event.action == wardgate_event::Action::Failed
                && e.wardgate.operation.is_none()));
        assert_eq!(std::fs::read_dir(&uses).unwrap().count(), 0, "all removed");
        assert_eq!(drain_uses(&v, &mut st, &mut |_| true), 0);
    }

    /// A gateway and a capture started together both find no key: one makes
    /// it, every other reads that one (never a half-written or second key).
    #[test]
    fn a_key_made_by_several_at_once_is_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("privacy/site.key");
        let got: Vec<(Vec<u8>, bool)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        let (k, made) = load_key_made(&path, true).unwrap();
                        (Pseudonymiser::new(&k).patient("4711").into_bytes(), made)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(got.iter().filter(|(_, made)| *made).count(), 1, "made once");
        assert!(got.iter().all(|(p, _)| *p == got[0].0), "one key for all");
        let left: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            left,
            vec![std::ffi::OsString::from("site.key")],
            "no temporary left"
        );
    }

    #[test]
    fn a_key_is_made_once_and_refused_when_others_can_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("privacy/site.key");
        assert!(load_key(&path, false).is_err(), "not made unless asked");
        let a = load_key(&path, true).unwrap();
        let b = load_key(&path, true).unwrap();
        assert_eq!(a.as_bytes(), b.as_bytes());
        #[cfg(unix)]
        {
            fsx::set_mode(&path, 0o644).unwrap();
            let e = load_key(&path, true).unwrap_err().to_string();
            assert!(e.contains("readable by others"), "{e}");
        }
        std::fs::write(dir.path().join("short.key"), [1u8; 16]).unwrap();
        fsx::set_mode(&dir.path().join("short.key"), 0o600).unwrap();
        assert!(load_key(&dir.path().join("short.key"), false)
            .unwrap_err()
            .to_string()
            .contains("32 bytes"));
    }
}
