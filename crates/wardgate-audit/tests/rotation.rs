//! Rotation keeps one chain across files, verification catches any file
//! missing, moved or cut, and an archive verifies offline with the public key.

#![allow(clippy::unwrap_used)] // a panic is a failed test

use std::path::{Path, PathBuf};
use wardgate_audit::{
    archive, log_files, verify, verify_archive, verify_with, AuditKey, AuditWriter, Retention,
    VerifyError, VerifyOptions, WriterOptions,
};

fn opts(rotate_bytes: u64) -> WriterOptions {
    WriterOptions {
        checkpoint_every: 7,
        fsync_on_checkpoint: false,
        rotate_bytes,
        ..WriterOptions::default()
    }
}

/// Writes `n` records, rotating every `rotate` bytes; returns the log's files.
fn write(dir: &Path, n: u64, rotate: u64) -> Vec<PathBuf> {
    let key = AuditKey::load_or_create(dir).unwrap();
    let (mut w, _) = AuditWriter::open(dir, key, opts(rotate)).unwrap();
    for i in 0..n {
        w.append(format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(40)).as_bytes())
            .unwrap();
    }
    w.close().unwrap();
    log_files(dir)
        .unwrap()
        .into_iter()
        .map(|f| f.path)
        .collect()
}

fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn rotated(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("audit.log.{n:06}"))
}

#[test]
fn rotation_keeps_one_chain_across_files() {
    let d = tempfile::tempdir().unwrap();
    let files = write(d.path(), 120, 2048);
    assert!(files.len() >= 4, "{files:?}");
    let r = verify(d.path(), None).unwrap();
    assert_eq!((r.records, r.first_seq, r.last_seq), (120, 1, 120));
    assert_eq!(r.files, files.len() as u64);
    assert!(r.gaps.is_empty());
    // Each later file's header names the file before it and its last seq and
    // hash; it opens with a checkpoint; the file before closes with one.
    for (i, pair) in files.windows(2).enumerate() {
        let before = lines(&pair[0]);
        let after = lines(&pair[1]);
        let last_c: Vec<&str> = before.last().unwrap().split('\t').collect();
        let last_r: Vec<&str> = before
            .iter()
            .rev()
            .find(|l| l.starts_with("R\t"))
            .unwrap()
            .split('\t')
            .collect();
        assert_eq!(last_c[0], "C");
        assert_eq!((last_c[1], last_c[2]), (last_r[1], last_r[2]));
        let h: Vec<&str> = after[0].split('\t').collect();
        assert_eq!(h.len(), 10, "{}", after[0]);
        assert_eq!(h[5], (i + 2).to_string());
        assert_eq!(h[6], "rotated");
        assert_eq!(h[7], format!("audit.log.{:06}", i + 1));
        assert_eq!((h[8], h[9]), (last_r[1], last_r[2]));
        assert!(after[1].starts_with(&format!("C\t{}\t", last_r[1])));
    }
    // Reopened, the chain goes on in the current file.
    let key = AuditKey::load_or_create(d.path()).unwrap();
    let (mut w, report) = AuditWriter::open(d.path(), key, opts(2048)).unwrap();
    assert!(report.gap.is_none() && !report.created);
    assert_eq!(w.append(b"{}").unwrap(), 121);
    w.close().unwrap();
    assert_eq!(verify(d.path(), None).unwrap().last_seq, 121);
}

#[test]
fn rotation_is_due_by_size_or_age_only_when_the_file_holds_a_record() {
    let d = tempfile::tempdir().unwrap();
    let key = AuditKey::load_or_create(d.path()).unwrap();
    let by_age = WriterOptions {
        rotate_ms: 60_000,
        ..opts(0)
    };
    let (mut w, _) = AuditWriter::open(d.path(), key, by_age).unwrap();
    assert!(!w.rotation_due(u64::MAX), "an empty file is never rotated");
    w.append(b"{}").unwrap();
    assert!(!w.rotation_due(0));
    assert!(w.rotation_due(u64::MAX));
    w.rotate().unwrap();
    assert_eq!(w.file_no(), 2);
    assert!(!w.rotation_due(u64::MAX));
    w.close().unwrap();
    assert_eq!(verify(d.path(), None).unwrap().files, 2);
}

#[test]
fn a_missing_middle_file_fails_verification() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), 120, 2048);
    std::fs::remove_file(rotated(d.path(), 2)).unwrap();
    let e = verify(d.path(), None).unwrap_err();
    assert_eq!(e.file(), Some("audit.log.000003"), "{e}");
    assert!(
        matches!(e.root(), VerifyError::MissingFile { expected, .. } if expected == "audit.log.000002"),
        "{e}"
    );
}

#[test]
fn reordered_files_fail_verification() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), 120, 2048);
    let (a, b) = (rotated(d.path(), 2), rotated(d.path(), 3));
    let tmp = d.path().join("swap");
    std::fs::rename(&a, &tmp).unwrap();
    std::fs::rename(&b, &a).unwrap();
    std::fs::rename(&tmp, &b).unwrap();
    let e = verify(d.path(), None).unwrap_err();
    assert_eq!(e.file(), Some("audit.log.000002"), "{e}");
    assert!(matches!(e.root(), VerifyError::BrokenLink { .. }), "{e}");
}

#[test]
fn a_truncated_earlier_file_fails_verification() {
    // Cut at a line boundary: its closing checkpoint and last record gone.
    let d = tempfile::tempdir().unwrap();
    write(d.path(), 120, 2048);
    let f = rotated(d.path(), 2);
    let l = lines(&f);
    std::fs::write(&f, l[..l.len() - 2].join("\n") + "\n").unwrap();
    let e = verify(d.path(), None).unwrap_err();
    assert!(
        matches!(
            e.root(),
            VerifyError::UnsignedEnd { .. } | VerifyError::BrokenLink { .. }
        ),
        "{e}"
    );
    // Cut back to an earlier checkpoint: signed, but the next file continues
    // a later seq.
    let d = tempfile::tempdir().unwrap();
    write(d.path(), 120, 2048);
    let f = rotated(d.path(), 2);
    let l = lines(&f);
    let earlier = l[..l.len() - 1]
        .iter()
        .rposition(|x| x.starts_with("C\t"))
        .unwrap();
    std::fs::write(&f, l[..=earlier].join("\n") + "\n").unwrap();
    let e = verify(d.path(), None).unwrap_err();
    assert_eq!(e.file(), Some("audit.log.000003"), "{e}");
    assert!(matches!(e.root(), VerifyError::BrokenLink { .. }), "{e}");
    assert!(e.to_string().contains("was cut"), "{e}");
}

#[test]
fn a_range_is_verified_from_the_files_holding_it() {
    let d = tempfile::tempdir().unwrap();
    let files = write(d.path(), 120, 2048);
    let in_range = |from, to| {
        verify_with(
            d.path(),
            &VerifyOptions {
                from: Some(from),
                to: Some(to),
                ..VerifyOptions::default()
            },
        )
    };
    let r = in_range(100, 110).unwrap();
    assert!(r.partial && r.files < files.len() as u64, "{r:?}");
    assert!(r.first_seq <= 100 && r.last_seq >= 110, "{r:?}");
    let first = files
        .iter()
        .position(|f| f.file_name().unwrap().to_str() == Some(r.first_file.as_str()))
        .unwrap();
    assert!(
        first >= 2,
        "the range should leave the first files out: {r:?}"
    );
    // A file outside the range is not read: the range is still intact, the
    // whole log is not.
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    std::fs::write(&files[0], &bytes).unwrap();
    assert!(in_range(100, 110).is_ok());
    assert!(verify(d.path(), None).is_err());
    // The file just before the range must end, signed, where the range begins.
    let before = &files[first - 1];
    let l = lines(before);
    std::fs::write(before, l[..l.len() - 1].join("\n") + "\n").unwrap();
    let e = in_range(100, 110).unwrap_err();
    assert!(matches!(e.root(), VerifyError::BrokenLink { .. }), "{e}");
    assert!(matches!(
        in_range(1_000, 2_000).map(|r| r.files),
        Ok(1) | Err(VerifyError::NothingInRange)
    ));
}

fn past(keep_files: u64) -> Retention {
    Retention {
        keep_files,
        keep_ms: 0,
    }
}

#[test]
fn an_archive_verifies_offline_with_only_the_public_key() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("audit");
    std::fs::create_dir(&data).unwrap();
    let files = write(&data, 150, 2048);
    let n = files.len() - 1; // rotated files
    let key = AuditKey::load_or_create(&data).unwrap();
    let to = d.path().join("archive");
    let r = archive(&data, &key, &to, &past(1), 0, false).unwrap();
    assert_eq!(r.archived.len(), n - 1);
    assert_eq!(r.kept, vec![format!("audit.log.{n:06}")]);
    for name in &r.archived {
        assert!(!data.join(name).exists() && to.join(name).exists());
    }
    // The archive alone, moved elsewhere, with the public key alone.
    let elsewhere = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(&to).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), elsewhere.path().join(e.file_name())).unwrap();
    }
    let public = key.verifying_key();
    let with_key = VerifyOptions {
        key: Some(public),
        ..VerifyOptions::default()
    };
    let a = verify_archive(elsewhere.path(), &with_key).unwrap();
    assert_eq!((a.first_seq, a.files), (1, n as u64 - 1));
    // The data directory still verifies, from where the archive ends.
    let rest = verify(&data, None).unwrap();
    assert_eq!(rest.first_seq, a.last_seq + 1);
    assert_eq!(rest.last_seq, 150);
    // And opens: the start-up check knows the archive.
    let (w, report) =
        AuditWriter::open(&data, AuditKey::load_or_create(&data).unwrap(), opts(2048)).unwrap();
    assert!(report.gap.is_none());
    w.close().unwrap();
    // A second run into another directory: that archive begins after the first.
    let to2 = d.path().join("archive-2");
    let r2 = archive(&data, &key, &to2, &past(0), 0, false).unwrap();
    assert_eq!(r2.archived, vec![format!("audit.log.{n:06}")]);
    let b = verify_archive(&to2, &with_key).unwrap();
    assert_eq!(b.first_seq, a.last_seq + 1);
    assert!(verify(&data, None).is_ok());
}

#[test]
fn a_damaged_archive_fails_verification() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("audit");
    std::fs::create_dir(&data).unwrap();
    write(&data, 150, 2048);
    let key = AuditKey::load_or_create(&data).unwrap();
    let to = d.path().join("archive");
    archive(&data, &key, &to, &past(1), 0, false).unwrap();
    let with_key = VerifyOptions {
        key: Some(key.verifying_key()),
        ..VerifyOptions::default()
    };
    let copy = |name: &str| {
        let c = tempfile::tempdir().unwrap();
        for e in std::fs::read_dir(&to).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), c.path().join(e.file_name())).unwrap();
        }
        (c, name.to_owned())
    };
    // A listed file removed.
    let (c, name) = copy("audit.log.000002");
    std::fs::remove_file(c.path().join(&name)).unwrap();
    let e = verify_archive(c.path(), &with_key).unwrap_err();
    assert!(matches!(e.root(), VerifyError::MissingFile { .. }), "{e}");
    // The last file cut at a line boundary (its chain still consistent).
    let (c, _) = copy("");
    let last = log_files(c.path()).unwrap().pop().unwrap().path;
    let l = lines(&last);
    std::fs::write(&last, l[..l.len() - 1].join("\n") + "\n").unwrap();
    let e = verify_archive(c.path(), &with_key).unwrap_err();
    assert!(matches!(e.root(), VerifyError::Manifest { .. }), "{e}");
    // A line of the manifest dropped: the signature fails.
    let (c, _) = copy("");
    let m = lines(&c.path().join("MANIFEST"));
    let without: Vec<&String> = m.iter().filter(|l| !l.starts_with("F\t2\t")).collect();
    std::fs::write(
        c.path().join("MANIFEST"),
        without.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    let e = verify_archive(c.path(), &with_key).unwrap_err();
    assert!(matches!(e.root(), VerifyError::Manifest { .. }), "{e}");
    // Another key.
    let other = tempfile::tempdir().unwrap();
    let stranger = AuditKey::load_or_create(other.path())
        .unwrap()
        .verifying_key();
    let e = verify_archive(
        &to,
        &VerifyOptions {
            key: Some(stranger),
            ..VerifyOptions::default()
        },
    )
    .unwrap_err();
    assert!(matches!(e.root(), VerifyError::Manifest { .. }), "{e}");
    // An extra file slipped in.
    let (c, _) = copy("");
    std::fs::copy(
        c.path().join("audit.log.000001"),
        c.path().join("audit.log.000099"),
    )
    .unwrap();
    assert!(verify_archive(c.path(), &with_key).is_err());
}

#[test]
fn the_start_up_check_knows_rotated_and_archived_files() {
    // The current file moved aside after a rotation: refused, though an older
    // file is there.
    let d = tempfile::tempdir().unwrap();
    write(d.path(), 120, 2048);
    std::fs::remove_file(d.path().join("audit.log")).unwrap();
    let key = AuditKey::load_or_create(d.path()).unwrap();
    assert!(AuditWriter::open(d.path(), key, opts(2048)).is_err());
    // The newest rotated file gone: refused (the log continues it).
    let d = tempfile::tempdir().unwrap();
    let files = write(d.path(), 120, 2048);
    std::fs::remove_file(&files[files.len() - 2]).unwrap();
    let key = AuditKey::load_or_create(d.path()).unwrap();
    assert!(AuditWriter::open(d.path(), key, opts(2048)).is_err());
    // Every file archived but the current one, then the current one replaced by
    // an old rotated file put back as audit.log: refused.
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("audit");
    std::fs::create_dir(&data).unwrap();
    write(&data, 120, 2048);
    let key = AuditKey::load_or_create(&data).unwrap();
    let to = d.path().join("archive");
    archive(&data, &key, &to, &past(0), 0, false).unwrap();
    std::fs::copy(to.join("audit.log.000001"), data.join("audit.log")).unwrap();
    assert!(AuditWriter::open(&data, key, opts(2048)).is_err());
}

#[test]
fn a_rotation_cut_short_resumes_without_a_gap() {
    // After the rename, before the next file: the head signs the renamed
    // file's end.
    let d = tempfile::tempdir().unwrap();
    write(d.path(), 30, 0);
    std::fs::rename(d.path().join("audit.log"), rotated(d.path(), 1)).unwrap();
    let key = AuditKey::load_or_create(d.path()).unwrap();
    let (w, report) = AuditWriter::open(d.path(), key, opts(0)).unwrap();
    assert!(report.rotation_resumed && report.gap.is_none());
    w.close().unwrap();
    let r = verify(d.path(), None).unwrap();
    assert_eq!((r.files, r.last_seq), (2, 30));
    // After the next file began, before the head moved to it.
    let d = tempfile::tempdir().unwrap();
    let key = AuditKey::load_or_create(d.path()).unwrap();
    let (mut w, _) = AuditWriter::open(d.path(), key, opts(0)).unwrap();
    for _ in 0..10 {
        w.append(b"{}").unwrap();
    }
    w.checkpoint().unwrap();
    let head_before = std::fs::read(d.path().join("audit.head")).unwrap();
    w.rotate().unwrap();
    w.close().unwrap();
    std::fs::write(d.path().join("audit.head"), head_before).unwrap();
    let key = AuditKey::load_or_create(d.path()).unwrap();
    let (w, report) = AuditWriter::open(d.path(), key, opts(0)).unwrap();
    assert!(report.gap.is_none(), "{:?}", report.gap);
    w.close().unwrap();
    assert_eq!(verify(d.path(), None).unwrap().files, 2);
}

#[test]
fn a_lost_key_is_a_gap_and_accepting_it_keeps_the_old_files_aside() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), 120, 2048);
    let old_pub = std::fs::read_to_string(d.path().join("audit.pub")).unwrap();
    std::fs::remove_file(d.path().join("audit.key")).unwrap();
    // Refused, and nothing written: not even the new key.
    let key = AuditKey::load_or_generate(d.path()).unwrap();
    assert!(AuditWriter::open(d.path(), key, opts(2048)).is_err());
    assert!(!d.path().join("audit.key").exists());
    assert_eq!(
        std::fs::read_to_string(d.path().join("audit.pub")).unwrap(),
        old_pub
    );
    let key = AuditKey::load_or_generate(d.path()).unwrap();
    // Numbering goes on from trusted evidence only; with the key gone that is
    // the event index (as the recorder passes it).
    let accept = WriterOptions {
        accept_gap: true,
        index: wardgate_audit::IndexMark {
            through: 120,
            chain_id: None,
        },
        ..opts(2048)
    };
    let (w, report) = AuditWriter::open(d.path(), key, accept).unwrap();
    w.close().unwrap();
    let aside = report.gap.unwrap().set_aside.unwrap();
    // The old chain, whole, with its public key, verifies where it was put.
    assert_eq!(
        std::fs::read_to_string(aside.join("audit.pub")).unwrap(),
        old_pub
    );
    assert!(aside.join("audit.log.000001").exists());
    let r = verify(d.path(), None).unwrap();
    assert_eq!((r.files, r.gaps.len(), r.first_seq), (1, 1, 121));
}

#[test]
fn a_header_edited_to_follow_a_seq_after_the_head_is_a_gap_not_a_panic() {
    // The header line is signed by no checkpoint. Found by the audit_log fuzz
    // target (its seed `header-after-head`: the seed `after-gap`, a log begun
    // after an accepted gap, with the gap header's prev_seq raised from 24 to
    // 94, above the seq 29 the head signs): the writer's start-up resumed it
    // and subtracted below zero.
    let seed = include_bytes!("../../../fuzz/corpus/audit_log/header-after-head");
    let n = usize::from(u16::from_le_bytes([seed[1], seed[2]]));
    let (head, log) = seed[3..].split_at(n);
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("audit.key"), "07".repeat(32)).unwrap();
    std::fs::write(d.path().join("audit.head"), head).unwrap();
    std::fs::write(d.path().join("audit.log"), log).unwrap();
    let key = AuditKey::load_or_create(d.path()).unwrap();
    match AuditWriter::open(d.path(), key, opts(0)) {
        Err(wardgate_audit::AuditError::Gap(g)) => {
            let text = format!("{g:?}");
            assert!(text.contains("94") && text.contains("29"), "{text}");
        }
        Err(e) => panic!("expected a gap, got {e}"),
        Ok(_) => panic!("a file whose header was edited was resumed"),
    }
    let key = AuditKey::load_or_create(d.path()).unwrap();
    let accept = WriterOptions {
        accept_gap: true,
        ..opts(0)
    };
    let (_, report) = AuditWriter::open(d.path(), key, accept).unwrap();
    assert!(report.created && report.gap.is_some());
}
