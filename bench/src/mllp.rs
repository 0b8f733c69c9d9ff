//! The few MLLP and HL7 bytes the harness needs, kept here so the harness does
//! not depend on the code it measures.

/// Length of the first complete MLLP frame in `buf`, if there is one.
pub fn frame_len(buf: &[u8]) -> Option<usize> {
    if buf.first() != Some(&0x0B) {
        return None;
    }
    memchr::memmem::find(buf, b"\x1c\r").map(|i| i + 2)
}

/// Appends a framed AA acknowledgement naming the request's MSH-10.
pub fn ack(request: &[u8], n: u64, out: &mut Vec<u8>) {
    let first = request.split(|&b| b == b'\r').next().unwrap_or_default();
    let control = first.split(|&b| b == b'|').nth(9).unwrap_or_default();
    out.push(0x0B);
    out.extend_from_slice(b"MSH|^~\\&|SINK|HOSP|GW|HOSP|20261124000000||ACK^R01^ACK|");
    out.extend_from_slice(n.to_string().as_bytes());
    out.extend_from_slice(b"|P|2.6\rMSA|AA|");
    out.extend_from_slice(control);
    out.extend_from_slice(b"\r\x1c\r");
}

/// A ~1 KB PCD-01 style ORU^R01 whose MSH-10 is rewritten in place per message.
pub struct Oru {
    frame: Vec<u8>,
    counter_at: usize,
    counter: u64,
}

const COUNTER_DIGITS: usize = 12;

impl Oru {
    /// The message template for connection `conn`.
    pub fn new(conn: usize) -> Self {
        let mut s = String::from("\x0bMSH|^~\\&|MONGW^0012210000000001^EUI-64|ICU|EHR|HOSP|20261124101500||ORU^R01^ORU_R01|");
        let control_prefix = format!("C{conn:04}-");
        s.push_str(&control_prefix);
        let counter_at = s.len();
        s.push_str(&"0".repeat(COUNTER_DIGITS));
        s.push_str("|P|2.6|||NE|AL||UNICODE UTF-8\rPID|||4711^^^HOSP^MR||Doe^Jane^^^^^L||19580312|F\rPV1||I|ICU^12^1\r");
        s.push_str("OBR|1|||69837^MDC_DEV_METER_PHYSIO_MULTI_PARAM_MDS^MDC|||20261124101500\r");
        let mut i = 1;
        while s.len() < 1000 {
            s.push_str(&format!("OBX|{i}|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.{i}|97|262688^MDC_DIM_PERCENT^MDC|||||R\r"));
            i += 1;
        }
        s.push_str("\x1c\r");
        Oru {
            frame: s.into_bytes(),
            counter_at,
            counter: 0,
        }
    }

    /// The next frame, with a fresh control id.
    pub fn next_frame(&mut self) -> &[u8] {
        self.counter += 1;
        let mut v = self.counter;
        for i in (0..COUNTER_DIGITS).rev() {
            self.frame[self.counter_at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        &self.frame
    }
}
