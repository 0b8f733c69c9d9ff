//! Every acknowledgement built for a parsable message parses and names it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wardgate_proto::hl7::ack::{build_ack, AckCode, AckParams};
use wardgate_proto::hl7::{Limits, Message};

fuzz_target!(|data: &[u8]| {
    let Ok(m) = Message::parse(data, &Limits::default()) else {
        return;
    };
    let text = String::from_utf8_lossy(&data[..data.len().min(100)]).into_owned();
    let p = AckParams {
        summary: None,
        location: None,
        application_code: None,
        code: AckCode::AR,
        text: &text,
        error_code: Some((207, "Application internal error")),
        control_id: "WG1",
        timestamp: "20261124101500",
        sending_application: "WARDGATE",
    };
    let mut out = Vec::new();
    build_ack(&m, &p, &mut out);
    let ack = Message::parse(&out, &Limits::default()).expect("an ACK wardgate built must parse");
    let msa = ack.segments_named(b"MSA").next().expect("MSA");
    assert_eq!(msa.field(2).raw(), m.control_id());
    assert_eq!(ack.delimiters(), m.delimiters());
});
