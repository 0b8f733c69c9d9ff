//! Severities and the protocol rules: every way input can be malformed has a
//! stable rule id, a default severity and a reason, so events can name it.

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// For the record.
    Info,
    /// Worth a look.
    Low,
    /// Needs review.
    Medium,
    /// Likely an attack or a safety problem.
    High,
    /// Patient safety at stake.
    Critical,
}

impl Severity {
    /// Lower-case name, as written in events.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// A protocol rule: what a framing or parsing error or anomaly means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtoRule {
    /// Stable id.
    pub id: &'static str,
    /// Short kebab-case name.
    pub name: &'static str,
    /// Default severity.
    pub severity: Severity,
    /// Why it matters.
    pub why: &'static str,
}

/// Anything that is a protocol rule violation: errors and tolerated anomalies.
/// Implementors say which [`ProtoRule`] they are; the accessors follow.
pub trait Anomaly {
    /// The protocol rule.
    fn rule(&self) -> ProtoRule;

    /// Stable rule id.
    fn rule_id(&self) -> &'static str {
        self.rule().id
    }

    /// Short rule name.
    fn rule_name(&self) -> &'static str {
        self.rule().name
    }

    /// Default severity.
    fn severity(&self) -> Severity {
        self.rule().severity
    }
}

/// Every protocol rule defined in this crate.
pub fn catalogue() -> &'static [ProtoRule] {
    CATALOGUE
}

macro_rules! proto_rules {
    ($($konst:ident = $id:literal, $name:literal, $sev:ident, $why:literal;)*) => {
        $(
            #[doc = $why]
            pub const $konst: ProtoRule = ProtoRule { id: $id, name: $name, severity: Severity::$sev, why: $why };
        )*
        const CATALOGUE: &[ProtoRule] = &[$($konst),*];
    };
}

proto_rules! {
    MLLP_GARBAGE = "WG-MLLP-001", "garbage-before-start-block", High,
        "Bytes that do not start an MLLP frame: not HL7 over MLLP (a scan, another protocol, an exploit attempt). The connection is answered AE and closed.";
    MLLP_TOO_LARGE = "WG-MLLP-002", "frame-too-large", High,
        "A frame grew past max_frame_bytes without ending: a memory-exhaustion attempt or a broken sender. Answered AE and closed.";
    MLLP_BAD_TRAILER = "WG-MLLP-003", "bad-end-block", Medium,
        "An end-block byte (0x1C) not followed by carriage return: the framing is corrupt, so message boundaries cannot be trusted.";
    MLLP_TRUNCATED = "WG-MLLP-004", "truncated-frame", Medium,
        "The sender closed the connection in the middle of a frame: that message was never complete and was not forwarded.";
    HL7_EMPTY = "WG-HL7-P01", "empty-message", Medium,
        "An MLLP frame with no HL7 message in it.";
    HL7_NOT_MSH = "WG-HL7-P02", "missing-msh", Medium,
        "The message does not start with an MSH segment, so its delimiters and type are unknown.";
    HL7_BAD_DELIMITERS = "WG-HL7-P03", "invalid-delimiters", Medium,
        "MSH-1/MSH-2 declare unusable delimiters (duplicates, letters, line breaks): the message cannot be parsed reliably.";
    HL7_TOO_MANY_SEGMENTS = "WG-HL7-P04", "too-many-segments", High,
        "More segments than max_segments: a resource-exhaustion attempt or a broken sender.";
    HL7_BAD_SEGMENT_ID = "WG-HL7-P05", "invalid-segment-id", Medium,
        "A segment whose id is not three upper-case letters or digits.";
    HL7_NO_TYPE = "WG-HL7-P06", "missing-message-type", Medium,
        "MSH-9 (message type) is empty, so policy cannot tell what the message does.";
    HL7_NO_CONTROL_ID = "WG-HL7-P07", "missing-control-id", Medium,
        "MSH-10 (message control id) is empty: acknowledgements could not be matched to the message.";
    HL7_TOO_LARGE = "WG-HL7-P08", "message-too-large", High,
        "The message is larger than the parser's 4 GiB addressing limit.";
    HL7_CONTROL_CHARACTER = "WG-HL7-P09", "control-character", High,
        "A control character inside the message (form feed, vertical tab, file/group/record/unit separator, NUL, DEL) or a Unicode line break (NEL, U+2028, U+2029): some HL7 parsers treat it as a segment or message break, others as data, so wardgate and the receiver could read different messages. Refused.";
    HL7_EMBEDDED_HEADER = "WG-HL7-P10", "embedded-message-header", High,
        "A second MSH (or a batch or file header or trailer: BHS, BTS, FHS, FTS) inside one MLLP frame: some parsers start a new message there, others read one. Refused; batches are not accepted.";
    HL7_MIXED_TERMINATORS = "WG-HL7-P11", "mixed-segment-terminators", High,
        "Segments end with different terminators in one message (CR in one place, LF or CR LF in another): parsers that split only on CR read a different set of segments than those that split on every line break. Refused.";
    HL7_LF_TERMINATOR = "WG-HL7-A01", "line-feed-segment-terminator", Info,
        "Segments end with LF or CR LF instead of CR (HL7 v2.5.1 2.5.3): tolerated, noted.";
    HL7_EMPTY_SEGMENT = "WG-HL7-A02", "empty-segment", Low,
        "An empty line between segments: tolerated, noted.";
    DICOM_UNKNOWN_PDU = "WG-DICOM-P01", "unknown-pdu-type", High,
        "A PDU type DICOM does not define (PS3.8 9.3): not DICOM (a scan, another protocol, an exploit attempt). The association is aborted.";
    DICOM_PDU_TOO_LARGE = "WG-DICOM-P02", "pdu-too-large", High,
        "A PDU longer than the gateway's max_pdu_bytes or the negotiated maximum: a memory-exhaustion attempt or a broken peer. Refused from its header, before it is buffered; the association is aborted.";
    DICOM_MALFORMED = "WG-DICOM-P03", "malformed-pdu", Medium,
        "A PDU, item or command element whose lengths or values break PS3.8/PS3.7: the stream cannot be trusted, so the association is aborted.";
    DICOM_TOO_MANY = "WG-DICOM-P04", "too-many-items", High,
        "More presentation contexts, transfer syntaxes, PDVs or role selections than the limits allow: a resource-exhaustion attempt.";
}
