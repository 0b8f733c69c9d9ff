//! The audit log detects tampering and survives crashes, named after what each guards.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns; a panic is a failed test

use std::path::Path;
use wardgate_audit::{
    verify, AuditError, AuditKey, AuditWriter, GapKind, VerifyError, WriterOptions,
};

fn opts(every: u64) -> WriterOptions {
    WriterOptions {
        checkpoint_every: every,
        fsync_on_checkpoint: false,
        ..WriterOptions::default()
    }
}

fn write(dir: &Path, n: u64, every: u64) {
    let key = AuditKey::load_or_create(dir).unwrap();
    let (mut w, _) = AuditWriter::open(dir, key, opts(every)).unwrap();
    for i in 0..n {
        w.append(format!("{{\"n\":{i},\"event\":\"x\"}}").as_bytes())
            .unwrap();
    }
    w.close().unwrap();
}

fn log(dir: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(dir.join("audit.log")).unwrap();
    bytes
        .split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

fn put(dir: &Path, lines: &[Vec<u8>]) {
    std::fs::write(dir.join("audit.log"), lines.concat()).unwrap();
}

/// Index (0-based) of the line holding record `seq`.
fn line_of(lines: &[Vec<u8>], seq: u64) -> usize {
    let prefix = format!("R\t{seq}\t");
    lines
        .iter()
        .position(|l| l.starts_with(prefix.as_bytes()))
        .unwrap()
}

#[test]
fn intact_log_verifies_and_resumes() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), 25, 10);
    let r = verify(d.path(), None).unwrap();
    assert_eq!(
        (r.records, r.checkpoints, r.last_seq, r.unsigned_tail),
        (25, 4, 25, 0)
    );
    let key = AuditKey::load_or_create(d.path()).unwrap();
    let (mut w, report) = AuditWriter::open(d.path(), key, opts(10)).unwrap();
    assert!(!report.unclean_shutdown && report.repaired_tail.is_none());
    assert_eq!(report.next_seq, 26);
    assert_eq!(w.append(b"{}").unwrap(), 26);
    w.close().unwrap();
    assert_eq!(verify(d.path(), None).unwrap().last_seq, 26);
}

#[test]
fn changed_payload_names_its_line() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), 20, 5);
    let mut lines = log(d.path());
    let i = line_of(&lines, 7);
    let pos = lines[i].len() - 5;
    lines[i][pos] ^= 0x01;
    put(d.path(), &lines);
    let e = verify(d.path(), None).unwrap_err();
    assert!(
        matches!(e.root(), VerifyError::HashMismatch { seq: 7, .. }),
        "{e}"
    );
    assert_eq!(e.first_bad_line(), Some(i as u64 + 1));
}

#[test]
fn changed_hash_is_detected() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), 10, 5);
    let mut lines = log(d.path());
    let i = line_of(&lines, 3);
    let tab = lines[i].iter().position(|&b| b == b'\t').unwrap();
    let h = tab + 3; // inside the hash
    lines[i][h] = if lines[i][h] == b'0' { b'1' } else { b'0' };
    put(d.path(), &lines);
    assert!(matches!(
        verify(d.path(), None).unwrap_err().root(),
        VerifyError::HashMismatch { seq: 3, .. }
    ));
}

#[test]
fn removed_record_is_detected() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), 10, 100);
    let mut lines = log(d.path());
    let i = line_of(&lines, 4);
    lines.remove(i);
    put(d.path(), &lines);
    let e = verify(d.path(), None).unwrap_err();
    assert!(
        matches!(
            e.root(),
            VerifyError::SeqGap {
                expected: 4,
                found: 5,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.first_bad_seq(), Some(4));
}

#[test]
fn reordered_records_are_detected() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), 10, 100);
    let mut lines = log(d.path());
    let (a, b) = (line_of(&lines, 5), line_of(&lines, 6));
    lines.swap(a, b);
    put(d.path(), &lines);
    let e = verify(d.path(), None).unwrap_err();
    assert!(
        matches!(
            e.root(),
            VerifyError::SeqGap {
                expected: 5,
                found: 6,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn forged_record_with_recomputed_hash_still_fails_at_the_checkpoint() {
    // An attacker who recomputes the chain cannot re-sign the checkpoint.
    let d = tempfile::tempdir().unwrap();
    write(d.path(), 6, 3);
    let mut lines = log(d.path());
    let header = lines[0].strip_suffix(b"\n").unwrap().to_vec();
    use sha2::Digest;
    let mut prev: [u8; 32] = sha2::Sha256::digest(&header).into();
    for line in lines.iter_mut().skip(1) {
        if !line.starts_with(b"R\t") {
            continue;
        }
        let text = String::from_utf8(line.clone()).unwrap();
        let mut parts = text.trim_end().splitn(4, '\t');
        let (_, seq, _, payload) = (
            parts.next(),
            parts.next().unwrap(),
            parts.next(),
            parts.next().unwrap(),
        );
        let seq: u64 = seq.parse().unwrap();
        let payload = if seq == 2 {
            payload.replace("\"x\"", "\"y\"")
        } else {
            payload.to_owned()
        };
        let mut h = sha2::Sha256::new();
        h.update(prev);
        h.update(seq.to_be_bytes());
        h.update(payload.as_bytes());
        prev = h.finalize().into();
        *line = format!("R\t{seq}\t{}\t{payload}\n", hex::encode(prev)).into_bytes();
    }
    put(d.path(), &lines);
    let e = verify(d.path(), None).unwrap_err();
    assert!(
        matches!(e.root(), VerifyError::BadCheckpoint { seq: 3, .. }),
        "{e}"
    );
}

#[test]
fn truncation_mid_line_is_a_torn_tail() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), 10, 100);
    let bytes = std::fs::read(d.path().join("audit.log")).unwrap();
    std::fs::write(d.path().join("audit.log"), &bytes[..bytes.len() - 30]).unwrap();
    let e = verify(d.path(), None).unwrap_err();
    assert!(
        matches!(
            e.root(),
            VerifyError::TornTail { .. } | VerifyError::TruncatedBehindHead { .. }
        ),
        "{e}"
    );
}

#[test]
fn whole_lines_cut_behind_the_head_are_detected() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), 20, 5);
    let lines = log(d.path());
    let keep = line_of(&lines, 12);
    put(d.path(), &lines[..keep]);
    let e = verify(d.path(), None).unwrap_err();
    assert!(
        matches!(
            e.root(),
            VerifyError::TruncatedBehindHead {
                log_last_seq: 11,
                head_seq: 20
            }
        ),
        "{e}"
    );
}

#[test]
fn deleted_head_file_is_detected() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), 10, 5);
    std::fs::remove_file(d.path().join("audit.head")).unwrap();
    assert!(matches!(
        verify(d.path(), None).unwrap_err().root(),
        VerifyError::HeadMissing
    ));
}

#[test]
fn replaced_signature_is_detected() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), 10, 5);
    let mut lines = log(d.path());
    let i = lines.iter().position(|l| l.starts_with(b"C\t5\t")).unwrap();
    let n = lines[i].len();
    lines[i][n - 3] = if lines[i][n - 3] == b'a' { b'b' } else { b'a' };
    put(d.path(), &lines);
    assert!(matches!(
        verify(d.path(), None).unwrap_err().root(),
        VerifyError::BadSignature { seq: 5, .. }
    ));
}

#[test]
fn another_key_is_refused() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), 3, 5);
    let other = tempfile::tempdir().unwrap();
    let k = AuditKey::load_or_create(other.path())
        .unwrap()
        .verifying_key();
    assert!(matches!(
        verify(d.path(), Some(&k)).unwrap_err().root(),
        VerifyError::KeyMismatch { .. }
    ));
    let own = AuditKey::load_or_create(d.path()).unwrap().verifying_key();
    assert!(verify(d.path(), Some(&own)).is_ok());
}

#[test]
fn torn_tail_is_repaired_on_open_and_reported() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), 8, 5);
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(d.path().join("audit.log"))
        .unwrap();
    f.write_all(b"R\t9\tdeadbeef\t{\"half").unwrap();
    drop(f);
    let key = AuditKey::load_or_create(d.path()).unwrap();
    let (mut w, report) = AuditWriter::open(d.path(), key, opts(5)).unwrap();
    let r = report.repaired_tail.expect("the torn tail is reported");
    assert_eq!(r.last_good_seq, 8);
    assert_eq!(r.bytes_dropped, 19);
    assert_eq!(w.append(b"{}").unwrap(), 9);
    w.close().unwrap();
    assert_eq!(verify(d.path(), None).unwrap().last_seq, 9);
}

#[test]
fn unclean_shutdown_is_reported() {
    let d = tempfile::tempdir().unwrap();
    let key = AuditKey::load_or_create(d.path()).unwrap();
    let (mut w, report) = AuditWriter::open(d.path(), key, opts(5)).unwrap();
    assert!(!report.unclean_shutdown && report.created);
    w.append(b"{}").unwrap();
    drop(w); // no close(): as after kill -9 (buffered records still reach the OS)
    let key = AuditKey::load_or_create(d.path()).unwrap();
    let (w, report) = AuditWriter::open(d.path(), key, opts(5)).unwrap();
    assert!(report.unclean_shutdown);
    assert_eq!(report.next_seq, 2);
    w.close().unwrap();
}

#[test]
fn opening_a_log_cut_behind_its_head_is_refused() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), 20, 5);
    let lines = log(d.path());
    put(d.path(), &lines[..line_of(&lines, 8)]);
    let key = AuditKey::load_or_create(d.path()).unwrap();
    match AuditWriter::open(d.path(), key, opts(5)) {
        Err(AuditError::Gap(g)) => assert_eq!(g.kind, GapKind::Truncated, "{g}"),
        Err(e) => panic!("refused, but not as a gap: {e}"),
        Ok(_) => panic!("a log cut behind its head was opened"),
    }
}

#[test]
fn payload_with_newline_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let key = AuditKey::load_or_create(d.path()).unwrap();
    let (mut w, _) = AuditWriter::open(d.path(), key, opts(5)).unwrap();
    assert!(matches!(w.append(b"a\nb"), Err(AuditError::InvalidPayload)));
    assert!(matches!(w.append(b"a\tb"), Err(AuditError::InvalidPayload)));
}

#[cfg(unix)]
#[test]
fn signing_key_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    AuditKey::load_or_create(d.path()).unwrap();
    let mode = std::fs::metadata(d.path().join("audit.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let dbg = format!("{:?}", AuditKey::load_or_create(d.path()).unwrap());
    let secret = std::fs::read_to_string(d.path().join("audit.key")).unwrap();
    assert!(!dbg.contains(secret.trim()));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Any single-byte change anywhere in the log is detected.
    #[test]
    fn any_byte_flip_is_detected(n in 1u64..12, every in 1u64..6, pick in 0usize..1_000_000, bit in 0u8..8) {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), n, every);
        let mut bytes = std::fs::read(d.path().join("audit.log")).unwrap();
        let i = pick % bytes.len();
        bytes[i] ^= 1 << bit;
        std::fs::write(d.path().join("audit.log"), &bytes).unwrap();
        proptest::prop_assert!(verify(d.path(), None).is_err(), "flip at byte {} went unnoticed", i);
    }
}

#[test]
fn a_detached_writer_writes_only_what_its_owner_writes_and_the_chain_holds() {
    use std::io::Write;
    let d = tempfile::tempdir().unwrap();
    let key = AuditKey::load_or_create(d.path()).unwrap();
    let (mut w, _) = AuditWriter::open(d.path(), key, opts(3)).unwrap();
    let mut file = w.detach_io().unwrap();
    let on_disk = || std::fs::read(d.path().join("audit.log")).unwrap().len();
    let header = on_disk();
    let mut taken = Vec::new();
    for i in 0..5 {
        w.append(format!("{{\"n\":{i}}}").as_bytes()).unwrap();
    }
    // Detached: nothing reached the file, and the count did not sign a checkpoint.
    assert_eq!(on_disk(), header);
    assert_eq!(w.records_since_checkpoint(), 5);
    let cp = w.begin_checkpoint().unwrap().unwrap();
    w.take_buffered(&mut taken);
    assert_eq!(w.buffered(), 0);
    assert_eq!(taken.iter().filter(|&&b| b == b'\n').count(), 6);
    file.write_all(&taken).unwrap();
    cp.finish().unwrap();
    for i in 5..7 {
        w.append(format!("{{\"n\":{i}}}").as_bytes()).unwrap();
    }
    w.take_buffered(&mut taken);
    file.write_all(&taken).unwrap();
    w.close().unwrap();
    let r = verify(d.path(), None).unwrap();
    assert_eq!(
        (r.records, r.checkpoints, r.last_seq, r.unsigned_tail),
        (7, 3, 7, 0)
    );
}

fn gap_of(
    r: Result<(AuditWriter, wardgate_audit::OpenReport), AuditError>,
) -> wardgate_audit::GapFound {
    match r {
        Err(AuditError::Gap(g)) => *g,
        Err(e) => panic!("refused, but not as a gap: {e}"),
        Ok(_) => panic!("opened"),
    }
}

fn accepting() -> WriterOptions {
    WriterOptions {
        accept_gap: true,
        ..opts(5)
    }
}

#[test]
fn a_missing_log_with_its_head_present_is_refused_and_nothing_changes() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), 7, 5);
    std::fs::remove_file(d.path().join("audit.log")).unwrap();
    let head = std::fs::read(d.path().join("audit.head")).unwrap();
    let key = AuditKey::load_or_create(d.path()).unwrap();
    let g = gap_of(AuditWriter::open(d.path(), key, opts(5)));
    assert_eq!(g.kind, GapKind::Missing);
    assert!(
        g.expected.contains("signed through seq 7"),
        "{}",
        g.expected
    );
    assert_eq!(g.found, "no audit.log");
    assert!(!d.path().join("audit.log").exists());
    assert_eq!(std::fs::read(d.path().join("audit.head")).unwrap(), head);
}

#[test]
fn a_log_of_another_chain_with_the_same_key_is_refused_as_replaced() {
    let a = tempfile::tempdir().unwrap();
    write(a.path(), 4, 5);
    let b = tempfile::tempdir().unwrap();
    std::fs::copy(a.path().join("audit.key"), b.path().join("audit.key")).unwrap();
    write(b.path(), 9, 5);
    std::fs::copy(b.path().join("audit.log"), a.path().join("audit.log")).unwrap();
    let key = AuditKey::load_or_create(a.path()).unwrap();
    let g = gap_of(AuditWriter::open(a.path(), key, opts(5)));
    assert_eq!(g.kind, GapKind::Replaced, "{g}");
}

#[test]
fn a_deleted_head_while_the_log_has_checkpoints_is_refused() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), 12, 5);
    std::fs::remove_file(d.path().join("audit.head")).unwrap();
    let key = AuditKey::load_or_create(d.path()).unwrap();
    let g = gap_of(AuditWriter::open(d.path(), key, opts(5)));
    assert_eq!(g.kind, GapKind::HeadMissing, "{g}");
}

#[test]
fn a_log_behind_the_event_index_is_refused() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), 6, 5);
    let key = AuditKey::load_or_create(d.path()).unwrap();
    let behind = WriterOptions {
        index: wardgate_audit::IndexMark {
            through: 9,
            chain_id: None,
        },
        ..opts(5)
    };
    let g = gap_of(AuditWriter::open(d.path(), key, behind));
    assert_eq!(g.kind, GapKind::Truncated, "{g}");
    assert!(g.found.contains("ending at seq 6"), "{}", g.found);
}

#[test]
fn an_accepted_gap_begins_a_new_chain_and_verify_reports_the_gap_not_intact() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), 8, 5);
    let lines = log(d.path());
    put(d.path(), &lines[..line_of(&lines, 3)]);
    let key = AuditKey::load_or_create(d.path()).unwrap();
    let (mut w, report) = AuditWriter::open(d.path(), key, accepting()).unwrap();
    let g = report
        .gap
        .expect("the gap is reported for the caller to record");
    assert_eq!(g.kind, GapKind::Truncated);
    assert_eq!(
        g.after_seq, 8,
        "numbering goes on after the highest seq known"
    );
    let aside = g.set_aside.expect("the refused files are kept");
    assert!(aside.join("audit.log").exists() && aside.join("audit.head").exists());
    assert_eq!(w.append(b"{\"gap\":true}").unwrap(), 9);
    w.close().unwrap();
    let r = verify(d.path(), None).unwrap();
    assert_eq!(r.gaps.len(), 1);
    assert_eq!(r.gaps[0].after_seq, 8);
    assert_eq!(r.gaps[0].found, None);
    assert_eq!((r.first_seq, r.last_seq, r.records), (9, 9, 1));
    // The refused log still verifies on its own, as far as it goes: it was cut.
    assert!(verify(
        &aside,
        Some(&AuditKey::load_or_create(d.path()).unwrap().verifying_key())
    )
    .is_err());
}

#[cfg(unix)]
#[test]
fn wide_modes_names_what_grants_more_than_wardgate_gives() {
    use std::os::unix::fs::PermissionsExt;
    use wardgate_audit::fsx;
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("data");
    fsx::create_dir(&root.join("audit")).unwrap();
    let set =
        |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    std::fs::write(root.join("audit/audit.key"), "k").unwrap();
    std::fs::write(root.join("audit/audit.log"), "l").unwrap();
    std::fs::write(root.join("wardgate.db"), "d").unwrap();
    set(&root.join("audit/audit.key"), 0o600);
    set(&root.join("audit/audit.log"), 0o640);
    set(&root.join("wardgate.db"), 0o600);
    assert_eq!(fsx::wide_modes(&root, 100).unwrap().wide, vec![]);
    set(&root.join("audit/audit.key"), 0o640);
    set(&root.join("audit/audit.log"), 0o660);
    set(&root, 0o755);
    std::os::unix::fs::symlink("/etc/passwd", root.join("link")).unwrap();
    let r = fsx::wide_modes(&root, 100).unwrap();
    let got: Vec<(String, u32, u32)> = r
        .wide
        .iter()
        .map(|w| {
            (
                w.path.strip_prefix(&root).unwrap().display().to_string(),
                w.mode,
                w.allowed,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (String::new(), 0o755, 0o750),
            ("audit/audit.key".into(), 0o640, 0o600),
            ("audit/audit.log".into(), 0o660, 0o640),
        ]
    );
    assert!(!r.truncated);
    assert!(fsx::wide_modes(&root, 2).unwrap().truncated);
}
