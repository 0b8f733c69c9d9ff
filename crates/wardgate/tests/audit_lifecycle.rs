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
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("site.toml"),
            "[gateway]\ndata_dir = \"data\"\n\n[gateway.audit]\ncheckpoint_interval_ms = 50\n",
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
        let mut args = vec!["serve"];
        args.extend_from_slice(extra);
        let mut child = self
            .cmd(&args)
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
