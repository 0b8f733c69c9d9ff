//! The framer gives the same frames however the input is split, and never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wardgate_proto::mllp::{Framer, Limits, Progress};

fn frames(data: &[u8], cut: usize) -> (Vec<Vec<u8>>, bool) {
    let mut framer = Framer::new(Limits {
        max_frame_bytes: 4096,
    });
    let mut buf = Vec::new();
    let mut out = Vec::new();
    for chunk in [&data[..cut], &data[cut..]] {
        buf.extend_from_slice(chunk);
        loop {
            match framer.next(&buf) {
                Ok(Progress::Frame(f)) => {
                    out.push(f.frame(&buf).to_vec());
                    buf.drain(..f.len);
                }
                Ok(Progress::NeedMore) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let cut = usize::from(data[0]) % data.len();
    let data = &data[1..];
    let cut = cut.min(data.len());
    let (whole, whole_err) = frames(data, data.len());
    let (split, split_err) = frames(data, cut);
    // Frames found before any error are the same; an error is found either way.
    assert_eq!(whole_err, split_err);
    assert_eq!(whole, split);
});
