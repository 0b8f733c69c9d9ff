//! Following the log: every entry after a position, once, in order, across
//! partial lines, rewinds, stale hints and rotated files.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns; a panic is a failed test

use proptest::prelude::*;
use std::io::Write;
use std::path::Path;
use wardgate_audit::reader::{chain_id, header, last_seq, log_files};
use wardgate_audit::{AuditKey, AuditWriter, Entry, Mark, Position, Tail, WriterOptions};

/// (seq, is_checkpoint) of each entry, as a reader reports them.
type Key = (u64, bool);

fn writer(dir: &Path, every: u64) -> AuditWriter {
    let key = AuditKey::load_or_create(dir).unwrap();
    AuditWriter::open(
        dir,
        key,
        WriterOptions {
            checkpoint_every: every,
            fsync_on_checkpoint: false,
            ..WriterOptions::default()
        },
    )
    .unwrap()
    .0
}

fn append(w: &mut AuditWriter, n: u64) {
    for _ in 0..n {
        let seq = w.last_seq() + 1;
        w.append(format!("{{\"n\":{seq}}}").as_bytes()).unwrap();
    }
    w.flush().unwrap();
}

fn drain(t: &mut Tail) -> Vec<Key> {
    let mut out = Vec::new();
    while let Some(e) = t.next_entry().unwrap() {
        out.push(match e {
            Entry::Record { seq, payload } => {
                assert_eq!(payload, format!("{{\"n\":{seq}}}").as_bytes());
                (seq, false)
            }
            Entry::Checkpoint { seq, signature, .. } => {
                assert_eq!(signature.len(), 64);
                (seq, true)
            }
        });
    }
    out
}

fn expected(records: u64, every: u64, after: Position) -> Vec<Key> {
    // A new chain is signed from its first line: a checkpoint at seq 0.
    let mut out = vec![(0, true)];
    for seq in 1..=records {
        out.push((seq, false));
        if seq % every == 0 {
            out.push((seq, true));
        }
    }
    out.retain(|&(s, c)| after.is_before(s, c));
    out
}

#[test]
fn a_tail_reads_every_entry_after_its_position_once() {
    let d = tempfile::tempdir().unwrap();
    let mut w = writer(d.path(), 5);
    append(&mut w, 23);
    for after in [
        Position::START,
        Position {
            seq: 5,
            checkpoint: false,
        },
        Position {
            seq: 5,
            checkpoint: true,
        },
        Position {
            seq: 7,
            checkpoint: false,
        },
        Position {
            seq: 23,
            checkpoint: false,
        },
        Position {
            seq: 99,
            checkpoint: false,
        },
    ] {
        let mut t = Tail::open(d.path(), after, None).unwrap();
        assert_eq!(drain(&mut t), expected(23, 5, after), "after {after:?}");
    }
    // Growth is picked up where the reader stopped.
    let mut t = Tail::open(d.path(), Position::START, None).unwrap();
    drain(&mut t);
    append(&mut w, 4);
    assert_eq!(
        drain(&mut t),
        vec![
            (24, false),
            (25, false),
            (25, true),
            (26, false),
            (27, false)
        ]
    );
    assert_eq!(
        chain_id(d.path()).unwrap().map(|c| c.len()),
        Some(32),
        "the chain id is the header's"
    );
    assert_eq!(header(d.path()).unwrap().unwrap().public_key.len(), 64);
    assert_eq!(last_seq(d.path()).unwrap(), 27);
}

#[test]
fn a_line_still_being_written_is_read_once_it_is_complete() {
    let d = tempfile::tempdir().unwrap();
    let mut w = writer(d.path(), 1000);
    append(&mut w, 2);
    let mut t = Tail::open(d.path(), Position::START, None).unwrap();
    assert_eq!(drain(&mut t), vec![(0, true), (1, false), (2, false)]);
    // The next record, written in three pieces.
    let full = std::fs::read(d.path().join("audit.log")).unwrap();
    append(&mut w, 1);
    let grown = std::fs::read(d.path().join("audit.log")).unwrap();
    let line = grown[full.len()..].to_vec();
    std::fs::write(d.path().join("audit.log"), &full).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(d.path().join("audit.log"))
        .unwrap();
    for piece in [&line[..5], &line[5..20], &line[20..]] {
        assert_eq!(drain(&mut t), vec![], "nothing until the line is whole");
        f.write_all(piece).unwrap();
    }
    assert_eq!(drain(&mut t), vec![(3, false)]);
}

#[test]
fn a_mark_brings_the_reader_back_and_a_stale_one_is_not_trusted() {
    let d = tempfile::tempdir().unwrap();
    let mut w = writer(d.path(), 4);
    append(&mut w, 10);
    let mut t = Tail::open(d.path(), Position::START, None).unwrap();
    // The genesis checkpoint, then records 1-4, checkpoint 4, record 5.
    for _ in 0..7 {
        t.next_entry().unwrap().unwrap();
    }
    let mark = t.mark();
    assert_eq!(
        mark.position,
        Position {
            seq: 5,
            checkpoint: false
        }
    );
    let rest = drain(&mut t);
    t.rewind(mark).unwrap();
    assert_eq!(drain(&mut t), rest, "a rewind reads the same entries again");
    // Opened from the mark as a hint: the same.
    let mut h = Tail::open(d.path(), mark.position, Some(mark)).unwrap();
    assert_eq!(drain(&mut h), rest);
    // A hint whose offset is not where its position says is ignored.
    for bad in [
        Mark {
            offset: mark.offset + 3,
            ..mark
        },
        Mark { offset: 0, ..mark },
        Mark {
            file_id: 12345,
            ..mark
        },
        Mark {
            offset: u64::MAX,
            ..mark
        },
    ] {
        let mut h = Tail::open(d.path(), mark.position, Some(bad)).unwrap();
        assert_eq!(drain(&mut h), rest, "hint {bad:?}");
    }
}

/// What a rotation by the writer is taken to look like: the live file renamed
/// to `audit.log.NNNNNN`, a new `audit.log` begun with a header that says more
/// than the first file's (its place in the sequence, the file and record
/// before it), the chain going on in it. The reader needs only the header's
/// first fields and passes it over.
fn rotate(dir: &Path, n: u32) {
    let live = dir.join("audit.log");
    let header = std::fs::read(&live).unwrap();
    let header = &header[..header.iter().position(|&b| b == b'\n').unwrap()];
    std::fs::rename(&live, dir.join(format!("audit.log.{n:06}"))).unwrap();
    let mut next = header.to_vec();
    next.extend_from_slice(
        format!("\t{}\taudit.log.{n:06}\t7\t{}\t-\n", n + 1, "0".repeat(64)).as_bytes(),
    );
    std::fs::write(&live, next).unwrap();
}

#[test]
fn a_tail_follows_the_log_into_the_next_file() {
    let d = tempfile::tempdir().unwrap();
    let mut w = writer(d.path(), 3);
    append(&mut w, 7);
    let mut t = Tail::open(d.path(), Position::START, None).unwrap();
    assert_eq!(drain(&mut t), expected(7, 3, Position::START));
    drop(w);
    rotate(d.path(), 1);
    // A live file with only its header: the last record is in the rotated one.
    assert_eq!(last_seq(d.path()).unwrap(), 7);
    // The writer continues in the new file (its own lines, as a writer would).
    let lines: Vec<String> = (8..=10)
        .map(|s| format!("R\t{s}\t{}\t{{\"n\":{s}}}\n", "0".repeat(64)))
        .collect();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(d.path().join("audit.log"))
        .unwrap();
    f.write_all(lines.concat().as_bytes()).unwrap();
    assert_eq!(drain(&mut t), vec![(8, false), (9, false), (10, false)]);
    assert_eq!(log_files(d.path()).unwrap().len(), 2);
    assert_eq!(last_seq(d.path()).unwrap(), 10);
    // Opening at a position in either file finds it.
    // From the start, the genesis checkpoint (seq 0) comes first.
    for (after, first) in [(0, 0), (2, 3), (7, 8), (9, 10)] {
        let mut t = Tail::open(
            d.path(),
            Position {
                seq: after,
                checkpoint: after % 3 == 0 && after > 0,
            },
            None,
        )
        .unwrap();
        assert_eq!(
            drain(&mut t).first().map(|k| k.0),
            Some(first),
            "after {after}"
        );
    }
    // The older file removed: a reader from before it starts at the oldest
    // entry left, and the caller sees the gap.
    std::fs::remove_file(d.path().join("audit.log.000001")).unwrap();
    let mut t = Tail::open(d.path(), Position::START, None).unwrap();
    assert_eq!(drain(&mut t), vec![(8, false), (9, false), (10, false)]);
}

#[test]
fn a_line_that_is_no_entry_is_an_error_not_a_panic_and_not_skipped() {
    let d = tempfile::tempdir().unwrap();
    let mut w = writer(d.path(), 1000);
    append(&mut w, 2);
    drop(w);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(d.path().join("audit.log"))
        .unwrap();
    f.write_all(b"R\tnot a number\tx\t{}\n").unwrap();
    let mut t = Tail::open(d.path(), Position::START, None).unwrap();
    // The genesis checkpoint, then the two records.
    assert!(t.next_entry().unwrap().is_some());
    assert!(t.next_entry().unwrap().is_some());
    assert!(t.next_entry().unwrap().is_some());
    assert!(t.next_entry().is_err());
    assert!(
        t.next_entry().is_err(),
        "the reader stays before the bad line"
    );
    assert!(t.skip_bad_line());
    assert!(t.next_entry().unwrap().is_none());
    f.write_all(b"R\t3\tx\t{}\n").unwrap();
    assert!(t.next_entry().is_err(), "a bad hash is refused as well");
    assert!(t.skip_bad_line() && !t.skip_bad_line());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Whatever a file holds, opening and reading it ends in entries, `None`
    /// or an error: never a panic, never a loop.
    #[test]
    fn any_bytes_are_read_without_panicking(
        body in proptest::collection::vec(
            prop_oneof![
                Just(b"R\t1\t".to_vec()),
                Just(b"C\t1\t".to_vec()),
                Just(b"H\twardgate-audit-v1\t".to_vec()),
                Just(b"\n".to_vec()),
                Just(b"\t".to_vec()),
                Just("0".repeat(64).into_bytes()),
                proptest::collection::vec(any::<u8>(), 0..16),
            ],
            0..40,
        ),
        seq in 0u64..4,
        checkpoint in any::<bool>(),
    ) {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("audit.log"), body.concat()).unwrap();
        let after = Position { seq, checkpoint };
        if let Ok(mut t) = Tail::open(d.path(), after, None) {
            for _ in 0..64 {
                match t.next_entry() {
                    Ok(Some(Entry::Record { seq: s, .. })) => prop_assert!(after.is_before(s, false)),
                    Ok(Some(Entry::Checkpoint { seq: s, .. })) => prop_assert!(after.is_before(s, true)),
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }
}
