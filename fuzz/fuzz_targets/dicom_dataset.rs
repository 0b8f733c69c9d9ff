//! The streaming data set walker never panics, and finds the same facts however
//! the data set is split into fragments.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wardgate_proto::dicom::dataset::{Syntax, Walker};

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, data)) = data.split_first() else {
        return;
    };
    let syntax = if ctl & 1 == 0 {
        Syntax::ExplicitLe
    } else {
        Syntax::ImplicitLe
    };
    let cut = usize::from(ctl >> 1) * data.len() / 128;
    let mut whole = Walker::new(syntax);
    let r_whole = whole.feed(data);
    let mut split = Walker::new(syntax);
    let r_split = split
        .feed(&data[..cut])
        .and_then(|()| split.feed(&data[cut..]));
    assert_eq!(r_whole.is_ok(), r_split.is_ok());
    if r_whole.is_ok() {
        assert_eq!(whole.facts(), split.facts());
    }
});
