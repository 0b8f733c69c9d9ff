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

/// Which message the load sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// A ~1 KB PCD-01 style ORU^R01 from a monitor gateway (PID, PV1, OBR,
    /// numeric OBX): the message of every MLLP figure in BENCHMARKS.md.
    #[default]
    Oru,
    /// A ~650 B ADT^A01 as HL7 v2.5.1's example writes it (EVN, PID with two
    /// identifiers, name, birth date, address, phones and account number, NK1,
    /// PV1 with the attending doctor, visit number and admit time).
    Adt,
}

/// A message template whose MSH-10 (and, with a patient pool, PID-3's first
/// CX.1) is rewritten in place per message.
pub struct Template {
    frame: Vec<u8>,
    counter_at: usize,
    counter: u64,
    /// Where the 8 digits of the patient number are, with a pool.
    patient_at: Option<usize>,
    /// The pool: patient numbers `first .. first + patients`.
    first_patient: u64,
    patients: u64,
}

/// The standard message: the ORU^R01.
pub type Oru = Template;

const COUNTER_DIGITS: usize = 12;
const PATIENT_DIGITS: usize = 8;

impl Template {
    /// The ORU^R01 template for connection `conn`, with the fixed patient 4711.
    pub fn new(conn: usize) -> Self {
        Template::of(Kind::Oru, conn, 0)
    }

    /// The template of `kind` for connection `conn`. With `patients` > 0 the
    /// messages name, in turn, `patients` patients of the connection's own
    /// (PID-3 `P` and 8 digits); with 0, one fixed patient.
    pub fn of(kind: Kind, conn: usize, patients: u64) -> Self {
        let mut s = String::from("\x0b");
        let control_prefix = format!("C{conn:04}-");
        let counter_at;
        let mut patient_at = None;
        let mut patient = |s: &mut String, fixed: &str| {
            if patients > 0 {
                s.push('P');
                patient_at = Some(s.len());
                s.push_str(&"0".repeat(PATIENT_DIGITS));
            } else {
                s.push_str(fixed);
            }
        };
        match kind {
            Kind::Oru => {
                s.push_str("MSH|^~\\&|MONGW^0012210000000001^EUI-64|ICU|EHR|HOSP|20261124101500||ORU^R01^ORU_R01|");
                s.push_str(&control_prefix);
                counter_at = s.len();
                s.push_str(&"0".repeat(COUNTER_DIGITS));
                s.push_str("|P|2.6|||NE|AL||UNICODE UTF-8\rPID|||");
                patient(&mut s, "4711");
                s.push_str("^^^HOSP^MR||Doe^Jane^^^^^L||19580312|F\rPV1||I|ICU^12^1\r");
                s.push_str(
                    "OBR|1|||69837^MDC_DEV_METER_PHYSIO_MULTI_PARAM_MDS^MDC|||20261124101500\r",
                );
                let mut i = 1;
                while s.len() < 1000 {
                    s.push_str(&format!("OBX|{i}|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.{i}|97|262688^MDC_DIM_PERCENT^MDC|||||R\r"));
                    i += 1;
                }
            }
            Kind::Adt => {
                s.push_str("MSH|^~\\&|ADT1|GOOD HEALTH HOSPITAL|GHH LAB, INC.|GOOD HEALTH HOSPITAL|20260818112600||ADT^A01^ADT_A01|");
                s.push_str(&control_prefix);
                counter_at = s.len();
                s.push_str(&"0".repeat(COUNTER_DIGITS));
                s.push_str("|P|2.5.1\rEVN|A01|20260818112300\rPID|1||");
                patient(&mut s, "PATID1234");
                s.push_str(concat!(
                    "^^^GOOD HEALTH HOSPITAL^MR~123456789^^^USSSA^SS||EVERYMAN^ADAM^A^III||19610615|M||2106-3^White^CDCREC|2222 HOME STREET^^GREENSBORO^NC^27401-1020^USA||(555) 555-2004|(555)555-2004||S||PATID12345001^2^M10^ADT1^AN^A|444333333|987654^NC\r",
                    "NK1|1|NUCLEAR^NELDA^W|SPO^SPOUSE|2222 HOME STREET^^GREENSBORO^NC^27401-1020^USA|(555) 555-2004||NK^NEXT OF KIN\r",
                    "PV1|1|I|2000^2012^01^^^^^^Ward 2000 east||||004777^ATTEND^AARON^A^^^^^^^^^^MD|||SUR||||ADM|A0||||V1001^^^GHH^VN|||||||||||||||||||||||||20260818112300\r",
                ));
            }
        }
        s.push_str("\x1c\r");
        Template {
            frame: s.into_bytes(),
            counter_at,
            counter: 0,
            patient_at,
            first_patient: conn as u64 * patients,
            patients,
        }
    }

    /// The next frame, with a fresh control id (and the pool's next patient).
    pub fn next_frame(&mut self) -> &[u8] {
        self.counter += 1;
        write_digits(
            &mut self.frame[self.counter_at..self.counter_at + COUNTER_DIGITS],
            self.counter,
        );
        if let Some(at) = self.patient_at {
            let n = self.first_patient + self.counter % self.patients;
            write_digits(&mut self.frame[at..at + PATIENT_DIGITS], n);
        }
        &self.frame
    }
}

/// Writes `v` in decimal into `out`, zero-padded on the left (the lowest
/// digits if it does not fit).
fn write_digits(out: &mut [u8], mut v: u64) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_rewrite_the_control_id_and_the_patient_in_place() {
        let mut t = Template::of(Kind::Adt, 3, 1000);
        let a = t.next_frame().to_vec();
        let b = t.next_frame().to_vec();
        assert_eq!(a.len(), b.len());
        let text = String::from_utf8(a).expect("ascii");
        assert!(text.contains("|C0003-000000000001|P|2.5.1\r"), "{text}");
        assert!(text.contains("PID|1||P00003001^^^GOOD"), "{text}");
        assert!(String::from_utf8(b)
            .expect("ascii")
            .contains("PID|1||P00003002^"));
        assert_eq!(frame_len(t.next_frame()), Some(t.frame.len()));
        let mut o = Template::new(0);
        let oru = String::from_utf8(o.next_frame().to_vec()).expect("ascii");
        assert!(oru.contains("PID|||4711^^^HOSP^MR"), "{oru}");
        assert!(oru.len() >= 1000);
    }
}
