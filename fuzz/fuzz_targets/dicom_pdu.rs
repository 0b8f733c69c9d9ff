//! The DICOM PDU framer and parsers never panic, never read past a PDU, and agree
//! with each other: whatever `frame` accepts, `Pdu::parse` sees whole; every command
//! PDV is handed to the DIMSE command parser.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wardgate_proto::dicom::dataset::{Syntax, Walker};
use wardgate_proto::dicom::{frame, Command, Limits, Pdu, Progress};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_pdu_bytes: 16 * 1024,
        max_presentation_contexts: 16,
        max_transfer_syntaxes: 8,
        max_pdvs: 64,
        max_command_bytes: 4096,
    };
    // Data set fragments go through the streaming walker in both syntaxes, as the
    // proxy feeds them.
    let mut walkers = [
        Walker::new(Syntax::ExplicitLe),
        Walker::new(Syntax::ImplicitLe),
    ];
    let mut rest = data;
    while let Ok(Progress::Pdu(f)) = frame(rest, &limits) {
        assert!(f.len >= 6 && f.len <= rest.len());
        if let Ok(Pdu::PData(p)) = Pdu::parse(&rest[..f.len], &limits) {
            for pdv in &p.pdvs {
                if pdv.is_command {
                    let _ = Command::parse(pdv.data);
                } else {
                    for w in &mut walkers {
                        let _ = w.feed(pdv.data);
                    }
                }
            }
        }
        rest = &rest[f.len..];
    }
});
