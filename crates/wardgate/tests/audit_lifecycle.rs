//! The audit log's lifecycle, through the real `wardgate` binary: a log that is
//! missing, cut or replaced is refused at start with exit code 3 and a message
//! saying what was expected and what was found; `--accept-audit-gap` starts a new
//! chain whose first record is the gap, and `audit verify` reports the gap.

#![allow(clippy::unwrap_used)] // a panic is a failed test

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_wardgate");

/// A site with no routes: enough for the gateway to start, record and stop.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new() -> Site {
        Site::with_audit("")
    }

    /// With more keys in `[gateway.audit]`.
    fn with_audit(keys: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("site.toml"),
            format!("[gateway]\ndata_dir = \"data\"\n\n[gateway.audit]\ncheckpoint_interval_ms = 50\n{keys}"),
        )
        .unwrap();
        Site { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("site.toml")
    }

    fn audit(&self) -> PathBuf {
        self.dir.path().join("data").join("audit")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .arg("--config")
            .arg(self.config())
            .env("WARDGATE_LOG", "info")
            .current_dir(self.dir.path());
        c
    }

    /// Runs `wardgate serve` until it says it serves, then stops it with SIGTERM.
    /// Returns the exit code and what it wrote to stderr. A start it refuses
    /// ends by itself.
    fn serve(&self, extra: &[&str]) -> (i32, String) {
        self.serve_with(extra, None, || {})
    }

    /// `serve`, started under `umask` if given, running `meanwhile` while it serves.
    fn serve_with(
        &self,
        extra: &[&str],
        umask: Option<&str>,
        meanwhile: impl FnOnce(),
    ) -> (i32, String) {
        let mut args = vec!["serve"];
        args.extend_from_slice(extra);
        let mut cmd = match umask {
            None => self.cmd(&args),
            Some(m) => {
                // The shell sets the umask and becomes wardgate.
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("umask {m} && exec \"$0\" \"$@\""))
                    .arg(BIN)
                    .args(&args)
                    .arg("--config")
                    .arg(self.config())
                    .current_dir(self.dir.path());
                c
            }
        };
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        let mut line = String::new();
        let serving = loop {
            line.clear();
            if err.read_line(&mut line).unwrap() == 0 {
                break false;
            }
            seen.push_str(&line);
            if line.contains("wardgate serving") {
                break true;
            }
        };
        if serving {
            meanwhile();
            let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
            rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        }
        let mut rest = String::new();
        err.read_to_string(&mut rest).unwrap();
        seen.push_str(&rest);
        let status = child.wait().unwrap();
        (status.code().unwrap_or(-1), seen)
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.cmd(args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The first record line of a log, as its JSON.
fn first_record(path: &Path) -> serde_json::Value {
    let l = lines(path)
        .into_iter()
        .find(|l| l.starts_with("R\t"))
        .unwrap();
    serde_json::from_str(l.splitn(4, '\t').nth(3).unwrap()).unwrap()
}

#[test]
fn a_fresh_data_dir_just_starts_and_verifies() {
    let s = Site::new();
    let (code, err) = s.serve(&[]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = s.run(&["audit", "verify"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("audit log intact"), "{out}");
}

#[test]
fn moving_audit_log_aside_then_starting_is_refused() {
    let s = Site::new();
    assert_eq!(s.serve(&[]).0, 0);
    let log = s.audit().join("audit.log");
    std::fs::rename(&log, s.dir.path().join("moved-aside.log")).unwrap();
    let (code, err) = s.serve(&[]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("refusing to start"), "{err}");
    assert!(err.contains("is missing"), "{err}");
    assert!(err.contains("expected: audit.log (file 1)"), "{err}");
    assert!(err.contains("signed through seq"), "{err}");
    assert!(err.contains("found:    no audit.log"), "{err}");
    assert!(err.contains("--accept-audit-gap"), "{err}");
    // Refused before anything changed: no new chain was begun.
    assert!(!log.exists());
    // The same for a command that records into data_dir without serving.
    let pcap = s.dir.path().join("empty.pcap");
    std::fs::write(&pcap, empty_pcap()).unwrap();
    let (code, _, err) = s.run(&["analyze", pcap.to_str().unwrap()]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("refusing to start"), "{err}");
    assert!(!log.exists());
    // Put back, it starts again: nothing was lost.
    std::fs::rename(s.dir.path().join("moved-aside.log"), &log).unwrap();
    assert_eq!(s.serve(&[]).0, 0);
    assert_eq!(s.run(&["audit", "verify"]).0, 0);
}

#[test]
fn a_log_truncated_behind_its_checkpoint_is_refused() {
    let s = Site::new();
    assert_eq!(s.serve(&[]).0, 0);
    let log = s.audit().join("audit.log");
    let all = lines(&log);
    // Keep the header, the opening checkpoint and the first record: whole lines,
    // cut behind the signed head.
    let kept: String = all[..3].iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&log, kept).unwrap();
    let (code, err) = s.serve(&[]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("is truncated"), "{err}");
    assert!(err.contains("shorter than the"), "{err}");
}

#[test]
fn a_log_replaced_by_another_chain_is_refused() {
    let s = Site::new();
    assert_eq!(s.serve(&[]).0, 0);
    // Another gateway's log, signed with the same key (its audit.key copied in
    // before it first ran): a valid chain, but not this one.
    let other = Site::new();
    std::fs::create_dir_all(other.audit()).unwrap();
    for f in ["audit.key", "audit.pub"] {
        std::fs::copy(s.audit().join(f), other.audit().join(f)).unwrap();
    }
    assert_eq!(other.serve(&[]).0, 0);
    assert_eq!(other.serve(&[]).0, 0);
    std::fs::copy(other.audit().join("audit.log"), s.audit().join("audit.log")).unwrap();
    let (code, err) = s.serve(&[]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("is replaced"), "{err}");
    // And one signed with another key altogether.
    let stranger = Site::new();
    assert_eq!(stranger.serve(&[]).0, 0);
    std::fs::copy(
        stranger.audit().join("audit.log"),
        s.audit().join("audit.log"),
    )
    .unwrap();
    let (code, err) = s.serve(&[]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("signed with another key"), "{err}");
}

#[test]
fn accepting_the_gap_begins_a_new_chain_with_the_gap_record_and_verify_reports_it() {
    let s = Site::new();
    assert_eq!(s.serve(&[]).0, 0);
    assert_eq!(s.serve(&[]).0, 0);
    let log = s.audit().join("audit.log");
    std::fs::remove_file(&log).unwrap();
    assert_eq!(s.serve(&[]).0, 3);
    let (code, err) = s.serve(&["--accept-audit-gap"]);
    assert_eq!(code, 0, "{err}");
    // The new chain's first record is the gap: an alert saying what was
    // expected and what was found.
    let gap = first_record(&log);
    assert_eq!(gap["rule"]["id"], "WG-AUDIT-004", "{gap}");
    assert_eq!(gap["event"]["action"], "alerted", "{gap}");
    let reason = gap["event"]["reason"].as_str().unwrap();
    assert!(reason.contains("expected audit.log (file 1)"), "{reason}");
    assert!(reason.contains("found no audit.log"), "{reason}");
    // It reached the event index as an alert (a rule query is answered from SQLite).
    let (code, out, err) = s.run(&["events", "--json", "--rule", "WG-AUDIT-004"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    // The gap is reported as a gap, not as intact; each chain still verifies.
    let (code, out, _) = s.run(&["audit", "verify"]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("1 GAP(S)"), "{out}");
    assert!(!out.contains("intact"), "{out}");
    // Started again, the new chain is simply resumed.
    assert_eq!(s.serve(&[]).0, 0);
    assert_eq!(s.run(&["audit", "verify"]).0, 3);
    // The refused head was kept as evidence.
    let aside: Vec<_> = std::fs::read_dir(s.audit().join("set-aside"))
        .unwrap()
        .collect();
    assert_eq!(aside.len(), 1);
}

#[test]
fn a_replaced_log_accepted_is_set_aside_not_destroyed() {
    let s = Site::new();
    assert_eq!(s.serve(&[]).0, 0);
    let stranger = Site::new();
    assert_eq!(stranger.serve(&[]).0, 0);
    let foreign = std::fs::read(stranger.audit().join("audit.log")).unwrap();
    std::fs::write(s.audit().join("audit.log"), &foreign).unwrap();
    let (code, err) = s.serve(&["--accept-audit-gap"]);
    assert_eq!(code, 0, "{err}");
    let dirs: Vec<PathBuf> = std::fs::read_dir(s.audit().join("set-aside"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1);
    assert_eq!(std::fs::read(dirs[0].join("audit.log")).unwrap(), foreign);
    assert_eq!(
        first_record(&s.audit().join("audit.log"))["rule"]["id"],
        "WG-AUDIT-004"
    );
}

/// A site that rotates at 4 KiB, started and stopped until it has `files`
/// rotated files.
fn rotated_site(files: usize) -> Site {
    let s = Site::with_audit("rotate_bytes = 4096\nretain_files = 1\nretain_days = 0\n");
    let rotated = |s: &Site| {
        std::fs::read_dir(s.audit())
            .map(|d| {
                d.filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_str()
                        .is_some_and(|n| n.starts_with("audit.log."))
                })
                .count()
            })
            .unwrap_or(0)
    };
    let mut runs = 0;
    while rotated(&s) < files {
        assert_eq!(s.serve(&[]).0, 0);
        runs += 1;
        assert!(runs < 50, "no rotation after {runs} runs");
    }
    s
}

#[test]
fn rotated_files_verify_as_one_chain_and_a_missing_or_moved_middle_file_fails() {
    let s = rotated_site(3);
    let (code, out, err) = s.run(&["audit", "verify"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("audit log intact") && out.contains("files (audit.log.000001 .. audit.log)"),
        "{out}"
    );
    let (code, out, _) = s.run(&["audit", "verify", "--from", "1", "--to", "2"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("in audit.log.000001") && out.contains("range"),
        "{out}"
    );
    // A middle file moved away: verification names it.
    let middle = s.audit().join("audit.log.000002");
    let aside = s.dir.path().join("aside");
    std::fs::rename(&middle, &aside).unwrap();
    let (code, out, _) = s.run(&["audit", "verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("audit.log.000002 is missing"), "{out}");
    // Two files swapped: verification fails at the first out of place.
    let third = s.audit().join("audit.log.000003");
    std::fs::rename(&third, &middle).unwrap();
    std::fs::rename(&aside, &third).unwrap();
    let (code, out, _) = s.run(&["audit", "verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAILED") && out.contains("audit.log.000002"),
        "{out}"
    );
}

#[test]
fn an_archive_verifies_offline_with_only_the_public_key() {
    let s = rotated_site(3);
    let archive = s.dir.path().join("archive");
    let (code, out, err) = s.run(&[
        "audit",
        "archive",
        "--to",
        archive.to_str().unwrap(),
        "--dry-run",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("would archive"), "{out}");
    assert!(!archive.join("MANIFEST").exists());
    let (code, out, err) = s.run(&["audit", "archive", "--to", archive.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("archived"), "{out}");
    assert!(archive.join("MANIFEST").exists() && archive.join("audit.pub").exists());
    assert!(!s.audit().join("audit.log.000001").exists());
    // What stays verifies, from where the archive ends, and the gateway starts.
    assert_eq!(s.run(&["audit", "verify"]).0, 0);
    assert_eq!(s.serve(&[]).0, 0);
    // Off the machine: the archive and a copy of the public key, nothing else.
    let offbox = tempfile::tempdir().unwrap();
    let copy = offbox.path().join("archive");
    std::fs::create_dir(&copy).unwrap();
    for e in std::fs::read_dir(&archive).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), copy.join(e.file_name())).unwrap();
    }
    let key = offbox.path().join("trusted.pub");
    std::fs::copy(s.audit().join("audit.pub"), &key).unwrap();
    drop(s);
    let verify = |dir: &Path, key: &Path| {
        let out = Command::new(BIN)
            .args(["audit", "verify", "--archive"])
            .arg(dir)
            .arg("--pubkey")
            .arg(key)
            .current_dir(offbox.path())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = verify(&copy, &key);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("archive intact"), "{out}");
    // Another key does not verify it; nor does an altered file.
    let stranger = Site::new();
    assert_eq!(stranger.serve(&[]).0, 0);
    let (code, out) = verify(&copy, &stranger.audit().join("audit.pub"));
    assert_eq!(code, 1, "{out}");
    let f = copy.join("audit.log.000001");
    let mut bytes = std::fs::read(&f).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    std::fs::write(&f, bytes).unwrap();
    let (code, out) = verify(&copy, &key);
    assert_eq!(code, 1, "{out}");
}

/// A site with a store-and-forward route (its queue journal is created at start).
const QUEUED_SITE: &str = r#"
[gateway]
data_dir = "data"

[[device]]
id = "ehr"
kind = "ehr"
addresses = ["127.0.0.2"]

[[device]]
id = "pump-server"
kind = "infusion-pump-server"
addresses = ["127.0.0.3"]

[[route]]
id = "orders"
protocol = "hl7-mllp"
listen = "127.0.0.1:0"
upstream = "127.0.0.3:9"
senders = ["ehr"]
messages = ["ORU^R01"]
delivery = "store-and-forward"
"#;

#[cfg(unix)]
fn modes(root: &Path) -> Vec<(String, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        out.push((
            p.strip_prefix(root).unwrap().display().to_string(),
            m.permissions().mode() & 0o777,
        ));
        if m.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    out.sort();
    out
}

#[cfg(unix)]
fn is_socket(p: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(p).is_ok_and(|m| m.file_type().is_socket())
}

#[cfg(unix)]
fn assert_modes(root: &Path, must_have: &[&str]) {
    let all = modes(root);
    for name in must_have {
        assert!(
            all.iter().any(|(n, _)| n == name),
            "{name} missing from {all:?}"
        );
    }
    for (name, mode) in &all {
        let want = if name.is_empty() || std::fs::metadata(root.join(name)).unwrap().is_dir() {
            0o750
        } else if name.ends_with(".key") {
            0o600
        } else if is_socket(&root.join(name)) {
            // The status socket: the group connects (writes) to it.
            0o660
        } else {
            0o640
        };
        assert_eq!(*mode, want, "{name} is {mode:o}, want {want:o}");
    }
}

/// Whatever the umask, wardgate gives data_dir 0750, its files 0640 (the audit
/// log and head, the database with its -wal and -shm files, queue journals, the
/// CA's certificates and register) and private keys 0600.
#[cfg(unix)]
#[test]
fn umask_000_still_gives_0750_0640_0600() {
    let s = Site::new();
    std::fs::write(s.config(), QUEUED_SITE).unwrap();
    let data = s.dir.path().join("data");
    for args in [
        &["ca", "init"][..],
        &["device", "enroll", "ehr", "--out", "data/certs"][..],
    ] {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg("umask 000 && exec \"$0\" \"$@\"")
            .arg(BIN)
            .args(args)
            .arg("--config")
            .arg(s.config())
            .current_dir(s.dir.path());
        assert!(c.status().unwrap().success());
    }
    let (code, err) = s.serve_with(&[], Some("000"), || {
        // While it runs: SQLite's side files exist now.
        assert_modes(
            &data,
            &[
                "",
                "audit",
                "audit/audit.log",
                "audit/audit.head",
                "audit/audit.key",
                "audit/audit.pub",
                "audit/RUNNING",
                "wardgate.db",
                "wardgate.db-wal",
                "wardgate.db-shm",
                "wardgate.lock",
                "wardgate.pid",
                "policy.hash",
                "queue/orders",
                "tls/ca.key",
                "tls/ca.crt",
                "tls/ca.crl",
                "tls/issued.json",
                "certs/ehr.key",
                "certs/ehr.crt",
            ],
        );
    });
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("wider permissions"), "{err}");
    assert_modes(&data, &["audit/audit.log", "wardgate.db"]);
    // And an accepted gap's set-aside directory.
    std::fs::remove_file(data.join("audit/audit.log")).unwrap();
    let (code, err) = s.serve_with(&["--accept-audit-gap"], Some("000"), || {});
    assert_eq!(code, 0, "{err}");
    assert_modes(&data, &["audit/set-aside"]);
}

/// Wider modes than wardgate gives are warned about at start, by path and mode,
/// on stderr and in a recorded alert.
#[cfg(unix)]
#[test]
fn wider_modes_in_data_dir_are_warned_and_recorded() {
    use std::os::unix::fs::PermissionsExt;
    let s = Site::new();
    assert_eq!(s.serve(&[]).0, 0);
    let data = s.dir.path().join("data");
    let set =
        |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    set(&data, 0o755);
    set(&data.join("audit/audit.log"), 0o644);
    set(&data.join("audit/audit.key"), 0o640);
    set(&data.join("wardgate.db"), 0o600); // narrower is fine
    let (code, err) = s.serve(&[]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("wider permissions"), "{err}");
    assert!(err.contains("audit.log") && err.contains("0644"), "{err}");
    let (code, out, err) = s.run(&["events", "--json", "--rule", "WG-AUDIT-005"]);
    assert_eq!(code, 0, "{err}");
    let alerts: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(alerts.len(), 1, "{out}");
    let reason = alerts[0]["event"]["reason"].as_str().unwrap();
    assert!(reason.starts_with("3 path(s)"), "{reason}");
    assert!(reason.contains("audit.key 0640 (want 0600)"), "{reason}");
    assert!(reason.contains("audit.log 0644 (want 0640)"), "{reason}");
    assert!(!reason.contains("wardgate.db"), "{reason}");
    assert_eq!(alerts[0]["event"]["action"], "alerted");
}

/// A pcap file with no packets (the classic global header, Ethernet).
fn empty_pcap() -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&4u16.to_le_bytes());
    h.extend_from_slice(&0i32.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h.extend_from_slice(&65535u32.to_le_bytes());
    h.extend_from_slice(&1u32.to_le_bytes());
    h
}
