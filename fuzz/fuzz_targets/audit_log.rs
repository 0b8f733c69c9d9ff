//! The audit verifier and the writer's start-up check read files an attacker
//! may have written (a log moved, cut, replaced or edited; a forged head or
//! archive manifest): any bytes as `audit.log` and `audit.head` (and the same
//! head bytes as a data directory's `archive.manifest` and an archive's
//! `MANIFEST`, beside the log as a rotated file) give a report, a typed error
//! or a gap, never a panic. Input: a flags byte (1: accept a gap, 2: verify as
//! an archive, 4: as the data directory's manifest), a little-endian u16 head
//! length, the head, the log.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;
use wardgate_audit::{AuditKey, AuditWriter, WriterOptions};

/// A fixed signing key, so that seeds written with it verify deep into the log.
const SEED: &str = "0707070707070707070707070707070707070707070707070707070707070707";

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("wardgate-fuzz-audit-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("a scratch directory");
        std::fs::write(d.join("audit.key"), SEED).expect("the key");
        let key = AuditKey::load_or_create(&d).expect("the key loads");
        let public = key.verifying_key();
        std::fs::write(d.join("audit.pub"), format!("{}\n", hex(public.as_bytes())))
            .expect("the public key");
        d
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fuzz_target!(|data: &[u8]| {
    let d = dir();
    let (flags, n, rest) = match data {
        [f, a, b, rest @ ..] => (*f, usize::from(u16::from_le_bytes([*a, *b])), rest),
        _ => (0, 0, data),
    };
    let (head, log) = rest.split_at(n.min(rest.len()));
    for f in ["audit.log", "audit.head", "RUNNING", "audit.head.tmp"] {
        let _ = std::fs::remove_file(d.join(f));
    }
    let _ = std::fs::remove_dir_all(d.join("set-aside"));
    std::fs::write(d.join("audit.log"), log).expect("write the log");
    if !head.is_empty() {
        std::fs::write(d.join("audit.head"), head).expect("write the head");
    }
    let _ = wardgate_audit::verify(d, None);
    // As an archive: the head's bytes as its manifest, the log as its first file.
    if flags & 2 == 2 {
        let a = d.join("archive");
        let _ = std::fs::remove_dir_all(&a);
        std::fs::create_dir_all(&a).expect("an archive directory");
        std::fs::write(a.join("MANIFEST"), head).expect("write the manifest");
        std::fs::write(a.join("audit.log.000001"), log).expect("write a file");
        std::fs::copy(d.join("audit.pub"), a.join("audit.pub")).expect("the public key");
        let _ = wardgate_audit::verify_archive(&a, &wardgate_audit::VerifyOptions::default());
    }
    // As the data directory's record of what it archived, read at start.
    if flags & 4 == 4 {
        std::fs::write(d.join("archive.manifest"), head).expect("write the manifest");
    } else {
        let _ = std::fs::remove_file(d.join("archive.manifest"));
    }
    let key = AuditKey::load_or_create(d).expect("the key loads");
    let opts = WriterOptions {
        fsync_on_checkpoint: false,
        accept_gap: flags & 1 == 1,
        ..WriterOptions::default()
    };
    if let Ok((mut w, report)) = AuditWriter::open(d, key, opts) {
        if report.gap.is_some() {
            assert!(report.created, "an accepted gap begins a new file");
        }
        let _ = w.append(b"{}");
        let _ = w.close();
        // Whatever the writer began or resumed verifies from where it began.
        if report.created {
            let r = wardgate_audit::verify(d, None).expect("a file the writer began verifies");
            assert_eq!(r.gaps.len(), usize::from(report.gap.is_some()));
        }
    }
});
