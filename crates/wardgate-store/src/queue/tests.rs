use super::*;
use proptest::prelude::*;
use std::time::Duration;

fn opts() -> QueueOptions {
    QueueOptions {
        fsync: false,
        ..QueueOptions::default()
    }
}

fn msg(n: u64) -> Vec<u8> {
    format!("\x0bMSH|^~\\&|EHR|H|PUMP|H|20260101||ORU^R01|C{n}|P|2.6\r\x1c\r").into_bytes()
}

fn pending_ids(s: &State) -> Vec<u64> {
    (1..=s.next_id)
        .filter(|&id| s.pending(id).is_some())
        .collect()
}

#[test]
fn survives_reopen_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, r) = QueueStore::open(dir.path(), opts(), 1).unwrap();
    assert_eq!(r.pending, 0);
    for n in 0..5 {
        assert_eq!(
            q.enqueue("ehr", &format!("C{n}"), &msg(n), 10 + n),
            EnqueueOutcome::Queued(n + 1)
        );
    }
    q.commit().unwrap();
    q.delivered(1, 20);
    q.delivered(2, 20);
    q.commit().unwrap();
    drop(q);
    let (q, r) = QueueStore::open(dir.path(), opts(), 30).unwrap();
    assert!(r.repairs.is_empty());
    assert_eq!(pending_ids(q.state()), vec![3, 4, 5]);
    let mut q = q;
    let head = q.state().head().unwrap().clone();
    assert_eq!(&*head.control_id, "C2");
    assert_eq!(q.read(head.loc).unwrap(), msg(2));
    // Ids go on increasing after a reopen.
    assert_eq!(
        q.enqueue("ehr", "C9", &msg(9), 40),
        EnqueueOutcome::Queued(6)
    );
}

#[test]
fn duplicates_within_the_window_are_recognised_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let o = QueueOptions {
        dedup_window: Duration::from_secs(10),
        ..opts()
    };
    let (mut q, _) = QueueStore::open(dir.path(), o.clone(), 0).unwrap();
    assert_eq!(
        q.enqueue("ehr", "A", &msg(1), 1_000_000),
        EnqueueOutcome::Queued(1)
    );
    assert_eq!(
        q.enqueue("ehr", "A", &msg(1), 1_000_001),
        EnqueueOutcome::Duplicate(1)
    );
    // Another sender may reuse the control id.
    assert_eq!(
        q.enqueue("lab", "A", &msg(1), 1_000_002),
        EnqueueOutcome::Queued(2)
    );
    q.commit().unwrap();
    q.delivered(1, 2_000_000);
    q.commit().unwrap();
    drop(q);
    let (mut q, _) = QueueStore::open(dir.path(), o.clone(), 5_000_000).unwrap();
    assert_eq!(
        q.enqueue("ehr", "A", &msg(1), 5_000_000),
        EnqueueOutcome::Duplicate(1)
    );
    drop(q);
    // After the window the pair is forgotten.
    let (mut q, _) = QueueStore::open(dir.path(), o, 20_000_000).unwrap();
    assert!(matches!(
        q.enqueue("ehr", "A", &msg(1), 20_000_000),
        EnqueueOutcome::Queued(_)
    ));
}

#[test]
fn quota_refuses_when_full_and_frees_on_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let m = msg(1);
    let o = QueueOptions {
        max_bytes: 2 * m.len() as u64,
        ..opts()
    };
    let (mut q, _) = QueueStore::open(dir.path(), o, 0).unwrap();
    assert_eq!(q.enqueue("ehr", "1", &m, 1), EnqueueOutcome::Queued(1));
    assert_eq!(q.enqueue("ehr", "2", &m, 1), EnqueueOutcome::Queued(2));
    assert_eq!(q.enqueue("ehr", "3", &m, 1), EnqueueOutcome::Full);
    q.delivered(1, 2);
    assert_eq!(q.enqueue("ehr", "3", &m, 3), EnqueueOutcome::Queued(3));
}

#[test]
fn torn_tail_is_cut_and_reported_and_earlier_messages_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = QueueStore::open(dir.path(), opts(), 0).unwrap();
    for n in 0..3 {
        q.enqueue("ehr", &format!("C{n}"), &msg(n), 1);
    }
    q.commit().unwrap();
    drop(q);
    let seg = list_segments(dir.path()).unwrap()[0];
    let path = dir.path().join(segment_name(seg));
    let len = std::fs::metadata(&path).unwrap().len();
    // Cut the last record in half, as a crash mid-append would.
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len - 10).unwrap();
    drop(f);
    let (q, r) = QueueStore::open(dir.path(), opts(), 0).unwrap();
    assert_eq!(r.repairs.len(), 1, "{r:?}");
    let rep = &r.repairs[0];
    assert!(rep.newest);
    assert!(rep.bytes_dropped > 0);
    assert_eq!(pending_ids(q.state()), vec![1, 2]);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), rep.valid_bytes);
    drop(q);
    // Cut once: the next open finds nothing to repair.
    let (_, r) = QueueStore::open(dir.path(), opts(), 0).unwrap();
    assert!(r.repairs.is_empty());
}

#[test]
fn inspect_reports_without_cutting() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = QueueStore::open(dir.path(), opts(), 0).unwrap();
    q.enqueue("ehr", "1", &msg(1), 1);
    q.commit().unwrap();
    drop(q);
    let seg = list_segments(dir.path()).unwrap()[0];
    let path = dir.path().join(segment_name(seg));
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(&[9, 0, 0, 0, 1, 2]).unwrap();
    let before = std::fs::metadata(&path).unwrap().len();
    let (state, r) = QueueStore::inspect(dir.path(), &opts(), 0).unwrap();
    assert_eq!(r.repairs.len(), 1);
    assert_eq!(state.depth(), 1);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), before);
}

#[test]
fn park_and_redrive_persist() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = QueueStore::open(dir.path(), opts(), 0).unwrap();
    q.enqueue("ehr", "1", &msg(1), 1);
    q.enqueue("ehr", "2", &msg(2), 1);
    q.commit().unwrap();
    assert!(q.park(1, "AR: unknown patient", 5).unwrap());
    q.commit().unwrap();
    assert_eq!(q.state().head().unwrap().id, 2);
    drop(q);
    let (mut q, _) = QueueStore::open(dir.path(), opts(), 6).unwrap();
    let p = q.state().parked(1).unwrap().clone();
    assert_eq!(&*p.reason, "AR: unknown patient");
    assert_eq!(q.read(p.loc).unwrap(), msg(1));
    assert_eq!(q.state().depth(), 1);
    assert!(q.redrive(1, 7));
    q.commit().unwrap();
    drop(q);
    let (q, _) = QueueStore::open(dir.path(), opts(), 8).unwrap();
    assert_eq!(pending_ids(q.state()), vec![1, 2]);
    assert_eq!(q.state().parked_count(), 0);
}

#[test]
fn resolved_segments_are_reclaimed_oldest_first_and_nothing_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let o = QueueOptions {
        segment_bytes: 300,
        dedup_window: Duration::from_micros(1),
        ..opts()
    };
    let (mut q, _) = QueueStore::open(dir.path(), o.clone(), 0).unwrap();
    for n in 0..20 {
        q.enqueue("ehr", &format!("C{n}"), &msg(n), 1);
        q.commit().unwrap();
    }
    let before = list_segments(dir.path()).unwrap().len();
    assert!(before > 5, "{before} segments");
    // Deliver all but the last two; park one in the middle.
    for id in 1..=18 {
        if id == 9 {
            q.park(9, "AR", 2).unwrap();
        } else {
            q.delivered(id, 2);
        }
        q.commit().unwrap();
    }
    // The first reclaim copies the parked message forward; later ones free it all.
    for _ in 0..3 {
        q.reclaim(1_000).unwrap();
    }
    let after = list_segments(dir.path()).unwrap().len();
    assert!(after < before, "{after} >= {before}");
    drop(q);
    let (q, r) = QueueStore::open(dir.path(), o, 1_000).unwrap();
    assert!(r.repairs.is_empty());
    assert_eq!(pending_ids(q.state()), vec![19, 20]);
    let mut q = q;
    let p = q.state().parked(9).unwrap().clone();
    assert_eq!(q.read(p.loc).unwrap(), msg(8));
    // New ids stay above every id ever used.
    assert!(
        matches!(q.enqueue("ehr", "new", &msg(99), 2_000), EnqueueOutcome::Queued(id) if id > 20)
    );
}

#[test]
fn a_message_is_never_read_from_an_uncommitted_tail_after_reopen() {
    // Enqueued but never committed: a crash loses it, and it was never acknowledged.
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = QueueStore::open(dir.path(), opts(), 0).unwrap();
    q.enqueue("ehr", "1", &msg(1), 1);
    q.commit().unwrap();
    q.enqueue("ehr", "2", &msg(2), 1);
    drop(q);
    let (q, _) = QueueStore::open(dir.path(), opts(), 0).unwrap();
    assert_eq!(pending_ids(q.state()), vec![1]);
}

#[tokio::test]
async fn the_thread_commits_before_answering_and_serves_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (q, _) = QueueStore::open(dir.path(), opts(), 0).unwrap();
    let t = QueueThread::start(q, "t").unwrap();
    let h = t.handle();
    let mut tasks = Vec::new();
    for n in 0..50u64 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            h.enqueue("ehr", &format!("C{n}"), msg(n)).await.unwrap()
        }));
    }
    for t in tasks {
        assert!(matches!(t.await.unwrap(), Enqueued::Queued(_)));
    }
    let mut seen = Vec::new();
    while let Some(d) = h.next().await.unwrap() {
        seen.push(d.id);
        h.delivered(d.id).unwrap();
    }
    assert_eq!(seen, (1..=50).collect::<Vec<_>>());
    let stats = h.stats().await.unwrap();
    assert_eq!(stats.depth, 0);
    drop(h);
    t.join().unwrap();
    let (q, _) = QueueStore::open(dir.path(), opts(), 0).unwrap();
    assert_eq!(q.state().depth(), 0);
}

#[test]
fn requests_parse() {
    assert_eq!(parse_request("all\n"), None);
    assert_eq!(parse_request("3\n\n x\n5\n"), Some(vec![3, 5]));
}

fn entry_strategy() -> impl Strategy<Value = (u8, u64, u64, String, String, Vec<u8>)> {
    (
        1u8..=4,
        any::<u64>(),
        any::<u64>(),
        ".{0,20}",
        ".{0,20}",
        proptest::collection::vec(any::<u8>(), 0..300),
    )
}

fn build<'a>(k: u8, a: u64, b: u64, s1: &'a str, s2: &'a str, m: &'a [u8]) -> Entry<'a> {
    match k {
        1 => Entry::Enqueued {
            id: a,
            received_us: b,
            sender: s1,
            control_id: s2,
            message: m,
        },
        2 => Entry::Delivered { id: a, at_us: b },
        3 => Entry::Parked {
            id: a,
            received_us: b,
            at_us: b ^ a,
            sender: s1,
            control_id: s2,
            reason: s1,
            message: m,
        },
        _ => Entry::Redriven { id: a, at_us: b },
    }
}

proptest! {
    #[test]
    fn records_round_trip((k, a, b, s1, s2, m) in entry_strategy()) {
        let e = build(k, a, b, &s1, &s2, &m);
        let mut buf = Vec::new();
        encode(&e, &mut buf);
        let (back, used) = decode(&buf, 1 << 20).unwrap().unwrap();
        prop_assert_eq!(used, buf.len());
        prop_assert_eq!(back, e);
        // Every strict prefix is torn, never mistaken for a record.
        for cut in 1..buf.len() {
            prop_assert!(decode(&buf[..cut], 1 << 20).is_err());
        }
    }

    #[test]
    fn a_flipped_bit_is_detected((k, a, b, s1, s2, m) in entry_strategy(), bit in any::<usize>()) {
        let e = build(k, a, b, &s1, &s2, &m);
        let mut buf = Vec::new();
        encode(&e, &mut buf);
        let i = bit % (buf.len() * 8);
        buf[i / 8] ^= 1 << (i % 8);
        match decode(&buf, 1 << 20) {
            Ok(Some((back, _))) => prop_assert!(false, "corruption accepted: {back:?}"),
            Ok(None) => prop_assert!(false, "empty"),
            Err(_) => {}
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut off = 0;
        while let Ok(Some((_, used))) = decode(&data[off..], 4096) {
            off += used;
        }
    }
}

/// Found by the queue_journal fuzz target: a record whose length and checksum
/// cover bytes after its fields decoded, and re-encoded shorter. It is no
/// record wardgate wrote: refused.
#[test]
fn bytes_after_a_records_fields_are_refused() {
    let mut buf = Vec::new();
    encode(&Entry::Delivered { id: 7, at_us: 9 }, &mut buf);
    let mut body = buf[journal::HEADER..].to_vec();
    body.extend_from_slice(b"trailing");
    let mut padded = (body.len() as u32).to_le_bytes().to_vec();
    padded.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    padded.extend_from_slice(&body);
    assert!(matches!(
        decode(&padded, 4096),
        Err(JournalError::Invalid(_))
    ));
}

#[test]
fn lowering_the_frame_limit_does_not_cut_records_written_under_a_higher_one() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = QueueStore::open(dir.path(), opts(), 0).unwrap();
    let big = vec![b'x'; 20_000];
    q.enqueue("ehr", "BIG", &big, 1);
    q.enqueue("ehr", "SMALL", &msg(1), 1);
    q.commit().unwrap();
    drop(q);
    let lowered = QueueOptions {
        max_message_bytes: 1024,
        ..opts()
    };
    let (q, r) = QueueStore::open(dir.path(), lowered, 2).unwrap();
    assert!(r.repairs.is_empty(), "{r:?}");
    assert_eq!(pending_ids(q.state()), vec![1, 2]);
}

#[test]
fn a_control_id_reused_for_another_message_is_not_its_duplicate() {
    // Found by an adversarial review: an insulin order from another
    // application with a heparin order's MSH-10 was taken as its duplicate,
    // acknowledged and never delivered.
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = QueueStore::open(dir.path(), opts(), 0).unwrap();
    let order = |app: &str, time: &str, drug: &str| {
        format!("\x0bMSH|^~\\&|{app}|H|PUMP|H|{time}||RGV^O15|1001|P|2.6\rRXG|1|||{drug}\r\x1c\r")
            .into_bytes()
    };
    assert_eq!(
        q.enqueue("ehr", "1001", &order("EHR", "20260101", "HEP"), 1),
        EnqueueOutcome::Queued(1)
    );
    // The same message resent, even with a new MSH-7: a duplicate.
    assert_eq!(
        q.enqueue("ehr", "1001", &order("EHR", "20260102", "HEP"), 2),
        EnqueueOutcome::Duplicate(1)
    );
    // Another message under the same id from the same application: reused.
    assert_eq!(
        q.enqueue("ehr", "1001", &order("EHR", "20260101", "INS"), 3),
        EnqueueOutcome::Reused(1)
    );
    // Another application's own 1001 is its own message.
    assert_eq!(
        q.enqueue("ehr", "1001", &order("ANESTH", "20260101", "INS"), 4),
        EnqueueOutcome::Queued(2)
    );
    q.commit().unwrap();
    drop(q);
    // Remembered across a restart (rebuilt from the journal).
    let (mut q, _) = QueueStore::open(dir.path(), opts(), 5).unwrap();
    assert_eq!(
        q.enqueue("ehr", "1001", &order("EHR", "20260101", "INS"), 6),
        EnqueueOutcome::Reused(1)
    );
    assert_eq!(
        q.enqueue("ehr", "1001", &order("ANESTH", "20260101", "INS"), 7),
        EnqueueOutcome::Duplicate(2)
    );
}
