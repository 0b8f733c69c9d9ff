//! The queue journal decoder never panics on arbitrary bytes (a damaged segment
//! file), every record it accepts re-encodes to the same bytes, and replaying
//! accepted records into the queue state keeps its accounting consistent.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wardgate_store::queue::{decode, encode, Entry, Loc, State};

fuzz_target!(|data: &[u8]| {
    let mut state = State::new();
    let mut off = 0;
    while let Ok(Some((entry, used))) = decode(&data[off..], 4096) {
        let mut again = Vec::new();
        encode(&entry, &mut again);
        assert_eq!(&again[..], &data[off..off + used]);
        let msg_len = match &entry {
            Entry::Enqueued { message, .. } | Entry::Parked { message, .. } => message.len(),
            _ => 0,
        };
        state.apply(
            &entry,
            Loc {
                segment: 1,
                offset: (off + used - msg_len) as u64,
                len: msg_len as u32,
            },
        );
        off += used;
    }
    let parked_bytes: u64 = state.parked_all().map(|p| u64::from(p.loc.len)).sum();
    assert!(state.live_bytes() >= parked_bytes);
    if let Some(h) = state.head() {
        assert!(state.pending(h.id).is_some());
    }
});
