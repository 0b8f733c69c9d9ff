//! The rule catalogue: every reason wardgate can block or alert, with a stable id,
//! a short name, a default severity and a sentence saying what it protects.
//! `docs/rules.md` is generated from [`all`] by `wardgate rules --markdown` and a
//! test keeps the two in step.
//!
//! One catalogue for the whole product: the engine's decisions ([`CATALOGUE`])
//! and the protocol anomalies its parsers report ([`proto`]). An id names one
//! meaning forever; an id whose meaning would change is retired (see
//! [`RETIRED`]) and a new one takes the new meaning.

use serde::{Deserialize, Serialize};

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
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
    /// Lower-case name, as written in events (`wardgate.severity`).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Numeric form for ECS `event.severity` (0 info .. 4 critical).
    pub fn number(self) -> u8 {
        self as u8
    }
}
/// A rule: stable identity plus what it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rule {
    /// Stable id, used in `rule.id`; never reused for another meaning.
    pub id: &'static str,
    /// Short kebab-case name, used in `rule.name`.
    pub name: &'static str,
    /// Default severity.
    pub severity: Severity,
    /// Why the rule exists: what it protects.
    pub why: &'static str,
}

macro_rules! rules {
    ($($konst:ident = $id:literal, $name:literal, $sev:ident, $why:literal;)*) => {
        $(
            #[doc = $why]
            pub const $konst: Rule = Rule { id: $id, name: $name, severity: Severity::$sev, why: $why };
        )*
        /// Every rule of this list.
        pub const CATALOGUE: &[Rule] = &[$($konst),*];
    };
}

rules! {
    TLS_HANDSHAKE = "WG-TLS-001", "tls-handshake-refused", High,
        "A TLS connection was refused during the handshake: no client certificate, one not issued by the configured CA, revoked, expired, or an offer below TLS 1.2. Nothing the peer sent reached a device.";
    TLS_IDENTITY = "WG-TLS-002", "certificate-names-no-device", High,
        "A valid client certificate names a device id that is not enrolled in the configuration; identity rests on the certificate, so the connection is refused.";
    TLS_ADDRESS = "WG-TLS-004", "certificate-from-unexpected-address", High,
        "A client certificate naming an enrolled device was presented from an address that is not one of that device's: its key may have been copied to another machine, or the device was readdressed without its enrolment being updated. Admitted with this alert, or refused where the route sets listen_tls.require_device_address.";
    TLS_EXPIRING = "WG-TLS-003", "certificate-expiring", Medium,
        "A certificate wardgate uses or issued (a listener's, the built-in CA's, a device's) expires within cert_expiry_warning_days: renew it before a device can no longer connect.";
    CLEARTEXT_CREDENTIALS = "WG-NET-001", "cleartext-credentials", High,
        "A login crossed the network in clear (FTP, Telnet, HTTP Basic, MQTT CONNECT): anyone on the path can reuse it. The account is reported, never the secret.";
    DEFAULT_CREDENTIALS = "WG-NET-002", "default-credentials", Critical,
        "A login used a known default or vendor maintenance credential from wardgate's bundled list: the device is open to anyone who reads the manual.";
    SMB1 = "WG-NET-003", "smbv1-negotiation", High,
        "A device offered or accepted SMBv1, the protocol WannaCry spread through into hospitals; it should be disabled.";
    CLEARTEXT_LEAVES_SITE = "WG-NET-004", "cleartext-clinical-leaves-site", High,
        "A clinical protocol (HL7, DICOM, MQTT) ran in clear between the site's local networks and an address outside them: patient data exposed in transit.";
    PEER_NOT_IN_PROFILE = "WG-NET-005", "peer-not-in-profile", Medium,
        "A device talked to a peer, or with a protocol, that no route in its profile allows: either the profile is incomplete or the device is doing something it should not.";
    GATEWAY_BYPASS = "WG-NET-006", "gateway-bypass", High,
        "A device reached a route's upstream directly, not through wardgate: nothing it sent was checked inline. The upstream should accept connections only from the gateway (a firewall rule or its own allow-list). Reported by passive analysis when [gateway] addresses names the gateway; what the device sent is still judged, as the upstream read it.";
    FLOW_TABLE_FULL = "WG-CAP-001", "flow-table-full", Medium,
        "Passive analysis reached its flow-table limit and evicted the least recently active connection; its remaining traffic is analysed from mid-stream.";
    REASSEMBLY_GAP = "WG-CAP-002", "reassembly-gap", Low,
        "Bytes of a TCP stream never appeared in the capture (loss at the tap, or the reassembly limit); the parser resynchronised or stopped on that stream. A flood of them is bounded: per connection and direction, the first 8 are reported, then the first in each clinical message; the rest are counted, and the count reported (under this rule) when the connection closes.";
    CAPTURE_MEMORY = "WG-CAP-004", "capture-memory-budget", Medium,
        "The bytes held across all connections (out-of-order segments, partial messages) reached the analysis memory budget; the connection holding most was closed out so that memory stays bounded.";
    CAPTURE_TRUNCATED = "WG-CAP-003", "capture-truncated", Low,
        "The capture file ends in the middle of a packet record; everything before it was analysed.";
    OVERLAP_CONFLICT = "WG-CAP-005", "stream-overlap-conflict", High,
        "Two copies of the same TCP bytes differed (overlapping or retransmitted segments with other data): a classic way to show a monitor one message and a device another. wardgate judged what the host's stack keeps (its reassembly policy), and says which message the overlap touched; a host with another stack, or a path that lost one copy, may have read the other. A flood of them is bounded: per connection and direction, the first 8 are reported, then the first in each clinical message; the rest are counted, and the count reported (under this rule) when the connection closes.";
    CLINICAL_HOLE = "WG-CAP-006", "clinical-stream-hole", High,
        "Bytes of a clinical (HL7, DICOM or MQTT) stream never appeared in the capture: what the receiving host read there is unknown, so the message around the hole was not judged. Parsing resumed at the next provable message boundary (MQTT has none: the rest of that direction is not judged). A flood of them is bounded: per connection and direction, the first 8 are reported, then the first in each clinical message; the rest are counted, and the count reported (under this rule) when the connection closes.";
    CLINICAL_ABANDONED = "WG-CAP-007", "clinical-flow-abandoned", High,
        "Passive analysis had to let go of a clinical connection in the middle of a message (flow table full, memory budget, idle timeout): the host may still read the rest of that message, and wardgate did not judge it.";
    LIMIT_IN_MESSAGE = "WG-CAP-008", "reassembly-limit-in-message", High,
        "A per-connection reassembly limit (held out-of-order bytes or segments) was reached inside a clinical message: wardgate stopped waiting for a missing segment the host may still have received, so that message was not judged. A flood of them is bounded: per connection and direction, the first 8 are reported, then the first in each clinical message; the rest are counted, and the count reported (under this rule) when the connection closes.";
    HOST_WOULD_DROP = "WG-CAP-009", "segment-host-drops", Medium,
        "A packet the receiving host's stack would drop (bad checksum, no ACK flag, an ACK of unsent or too old data, an old timestamp, data outside the receive window, data on a SYN, IP or TCP options it refuses): wardgate dropped it too and did not judge its bytes. Ordinary networks rarely produce these; an attacker uses them as decoys for a monitor.";
    CONTROL_IGNORED = "WG-CAP-010", "control-packet-ignored", Medium,
        "A RST, SYN or FIN the receiving host would ignore (a sequence number it does not accept, a SYN inside a live connection): wardgate kept following the connection, as the host does, instead of letting it end or restart.";
    TTL_CHANGE = "WG-CAP-011", "ttl-change", Medium,
        "The IP TTL or hop limit changed within a TCP connection. A lower one may expire before the receiving host (a decoy only the monitor sees): such packets were not judged as read by the host.";
    OTHER_STATION_MAC = "WG-CAP-012", "other-station-mac", Medium,
        "A frame of a TCP connection was addressed to another station's MAC address (or to a broadcast or multicast address) than the connection's frames: the receiving host's network card drops it, so wardgate did not judge it.";
    FRAGMENT_OVERLAP = "WG-CAP-013", "ip-fragment-overlap", High,
        "IP fragments of one datagram overlapped. Linux discards the whole datagram (RFC 5722), and so did wardgate; other stacks may have reassembled either copy. Overlapping fragments have no legitimate use.";
    FRAGMENT_ANOMALY = "WG-CAP-014", "ip-fragment-anomaly", Medium,
        "A malformed or suspicious IP fragment: a tiny first fragment that splits the TCP header (RFC 1858), a length the host refuses, a duplicate with other bytes, a datagram over 65 535 bytes, or a first fragment without the transport header.";
    FRAGMENT_INCOMPLETE = "WG-CAP-015", "ip-fragment-incomplete", Low,
        "A fragmented IP datagram was never completed within the reassembly timeout, or was evicted under the fragment memory bound: its contents were not analysed. Fragments that only repeat, byte for byte, a datagram completed shortly before (a mirror port's second copy) are counted, not named.";
    URGENT_DATA = "WG-CAP-016", "tcp-urgent-data", Medium,
        "A TCP segment carried an urgent pointer. A Linux application that does not set SO_OOBINLINE never reads the urgent byte, one that does reads it inline: what the device read depends on its software, which the network cannot tell. wardgate judged the stream without the byte (the Linux default) and names the message it touched.";
    CAPTURE_DROPS = "WG-CAP-017", "capture-packets-dropped", Medium,
        "Live capture lost packets before wardgate saw them: the capture socket's kernel ring was full (a burst wardgate fell behind, perhaps a flood sent to blind it) or the interface dropped frames. Streams that lost bytes are reported where the hole is (WG-CAP-006 for clinical ones); a connection whose packets were all lost was not judged at all. A larger ring (--buffer-mib) or a narrower --filter helps.";
    UNCONFIRMED_SEGMENT = "WG-CAP-018", "unconfirmed-segment", High,
        "A TCP segment acknowledged data wardgate never saw the other end send, and no later packet of the other end said whether it had. If the capture lost that data (a full capture ring, a lossy tap) the host read the segment; if it was a decoy the host dropped it. Its bytes were not judged, and the message they belong to is named.";
    REPEATED_ALERTS = "WG-ALERT-001", "repeated-alert-summary", Medium,
        "The same alert (one rule, one source, one route) repeated within the quiet window: each repeat was recorded whole but not alerted, and this one alert counts them when the source has been quiet for the window. Its severity is the repeated rule's.";
    CONFIRMED_LATE = "WG-CAP-019", "segment-confirmed-late", High,
        "A TCP segment acknowledged data wardgate never saw the other end send; the other end's next packet showed it had sent that data (the capture lost it), so the segment was judged as the host read it. Someone able to inject packets in both directions could fake that confirmation for a decoy: the connection is named so its messages can be checked on the receiving system.";
    HOLE_FILLED_LATE = "WG-CAP-020", "hole-filled-late", High,
        "Bytes arrived for a stretch of a TCP stream wardgate had declared lost because the receiver had acknowledged it: either the tap delivered them late (reordering) or the acknowledgement was forged to make the monitor skip them. The host read them; wardgate did not judge them, and names the message.";
    UNPROVEN_FRAME = "WG-CAP-021", "resync-frame-unproven", High,
        "After a hole, a framing error or joining a connection mid-stream, the first HL7 frame found starts at a start block (0x0B MSH) that no end block (0x1C 0x0D) before it proves to be a frame's start: it may lie inside the lost message's value, which the receiver read as data. Named with its control id and never reported allowed; once the receiver's answer names that id (it read a message with it), what the frame would violate is reported. Frames after it are judged. DICOM: after a hole in the sender's stream, the PDUs found at the next header that parses may lie inside the lost PDU's pixel data; what is parsed from them is held, never judged (a response naming the command's Message ID proves no data set: a fake request can reuse the ID), and this record names it, with what it would have raised (neither allowed nor a violation), when the association ends, the held bound is reached or the framing runs into bytes that are not DICOM.";
    RESET_NOT_TAKEN = "WG-CAP-022", "reset-not-taken", High,
        "A RST at a sequence number the receiving host accepts, after which an end of the connection acknowledged data sent after it: that end did not take the RST (a reset forged toward the other end, or dropped on the way) and read the data, so wardgate judged it instead of treating the connection as reset. Someone able to inject packets in both directions could fake the acknowledgement: the connection is named so its messages can be checked on the receiving system.";
    RESET_UNCERTAIN = "WG-CAP-023", "reset-uncertain", High,
        "A RST at a sequence number the receiving host accepts, then data on the connection, and nothing proved whether the host had taken the RST (no acknowledgement of that data; only a RST answering it, which whoever forged the first can forge too; or both: conflicting answers). Failing closed, wardgate judged the data as if the host read it; a verdict on it may be about bytes no application read. The connection is named so its messages can be checked on the receiving system.";
    RESYNC_MISSED_MESSAGE = "WG-CAP-024", "resync-missed-message", High,
        "After a hole in a DICOM sender's stream, the receiver answered a request (its response's Message ID Being Responded To) that wardgate did not see as a command: the receiver read a message where wardgate resynchronised on other bytes (a PDU header in pixel data) or lost it in the hole, so what the receiver read there was not judged.";
    RESTART_UNCERTAIN = "WG-CAP-025", "restart-uncertain", High,
        "A SYN-ACK answered a SYN with another ISN inside a connection the capture did not show closed, and nothing settled which connection the receiving host then had: a live Linux socket answers such a SYN with a challenge ACK, never a SYN-ACK (so the SYN-ACK was forged if the connection lived), but its socket may also have gone without a trace in the capture. Failing closed, wardgate analysed both, the data in either sequence space judged as if the host read it; a verdict may be about bytes no application read. (With the flow table full and no room to make for the new connection, wardgate kept following the old one, and the record says the new one's data was not judged.) The connection is named so its messages can be checked on the receiving system.";
    FRAME_CUT = "WG-CAP-026", "frame-cut-by-snaplen", High,
        "A frame of a TCP connection was cut by the capture's snap length (fewer bytes captured than were on the wire): the receiving host read it whole, wardgate saw part of it and could not check its checksum. Its stretch of the connection is unknown to wardgate: bytes sent again there are named as an ambiguity (WG-CAP-005) and a message the host read there is a hole (WG-CAP-006). Capture with a snap length that holds whole frames (tcpdump -s 0).";
    FRAMES_NOT_ANALYSED = "WG-CAP-027", "frames-not-analysed", Medium,
        "Frames wardgate could not analyse: on a link type it does not decode that may carry IP (such as NFLOG or 802.11; Ethernet, raw IP, Linux cooked SLL and SLL2 and BSD loopback are decoded, and links that carry no IP, such as USB or Bluetooth, are only counted), or TCP frames with more VLAN tags than it keys a connection by. What they carried, which a host may have read, was not judged. The first frame on such a link, and each such connection, is named; the rest counted.";
    CAPTURE_OUT_OF_ORDER = "WG-CAP-028", "capture-out-of-time-order", Medium,
        "A capture file's frames could not be put back in the traffic's time order: in a pcapng section with several interfaces (dumpcap writes each interface's frames in chunks), one interface's frames lagged another's by more than wardgate's reorder window (2 s of capture time) or its byte bound (32 MiB held), or the interfaces' clocks disagree (a segment's forwarded copy time-stamped before the segment). Frames handed on out of order can make a connection seen on both interfaces look like retransmissions, decoys or a second connection: anomalies and repeated verdicts the traffic did not have.";
    UNKNOWN_DEVICE = "WG-ACCESS-001", "unknown-device", High,
        "A connection came from an address that is no enrolled device. Deny by default: unknown equipment must not reach clinical systems.";
    SENDER_NOT_ALLOWED = "WG-ACCESS-002", "sender-not-allowed", High,
        "An enrolled device connected to a route whose senders do not include it: a device may only do what its profile allows.";
    CONNECTION_LIMIT = "WG-ACCESS-003", "connection-limit", Medium,
        "The gateway-wide connection cap was reached; the connection was refused so that one flood cannot starve other devices. Recorded once per flood episode of the refused device, with counts in the episode's summary (WG-FLOOD-004).";
    MESSAGE_TYPE_NOT_ALLOWED = "WG-HL7-001", "message-type-not-allowed", Medium,
        "The HL7 message type (MSH-9) is not among the route's allowed messages; it is answered with AR and not forwarded.";
    NO_DRUG_LIBRARY = "WG-INF-001", "no-drug-library", High,
        "An infusion order arrived on a route without a drug library, so its dose cannot be checked; it is blocked.";
    ORDER_WITHOUT_GIVE = "WG-INF-002", "order-without-give-segment", High,
        "An infusion order (RGV^O15) carries no RXG segment, so there is nothing that can be checked; it is blocked.";
    UNKNOWN_DRUG = "WG-INF-003", "unknown-drug", High,
        "The give code (RXG-4) matches no drug in the route's library: the pump would run without hard limits.";
    UNIT_UNKNOWN = "WG-INF-004", "unit-missing-or-unknown", High,
        "A rate or amount has no unit, or a unit wardgate cannot interpret; a number without a known unit cannot be checked.";
    UNIT_INCOMPATIBLE = "WG-INF-005", "unit-incompatible", High,
        "The order's unit cannot be converted to the library's (mass versus units, a rate where a dose was expected).";
    WEIGHT_REQUIRED = "WG-INF-006", "patient-weight-required", High,
        "A weight-based quantity needs a plausible patient weight (OBX) in the message to be converted; without one it is blocked.";
    CONCENTRATION_REQUIRED = "WG-INF-007", "concentration-required", High,
        "A volume (mL, mL/h) must be converted to drug units with the strength and its volume (RXG-17/18 over RXG-23/24); they are missing or invalid.";
    INVALID_NUMBER = "WG-INF-008", "invalid-number", High,
        "An amount, rate or strength is not a valid, non-negative HL7 number.";
    INCOMPLETE_ORDER = "WG-INF-009", "uncheckable-order", High,
        "The order carries neither a rate nor an amount that the drug library has limits for, so nothing could be checked.";
    RATE_HARD_LIMIT = "WG-INF-010", "rate-above-hard-limit", Critical,
        "The infusion rate exceeds the drug library's hard limit: the order is blocked before it reaches the pump.";
    DOSE_HARD_LIMIT = "WG-INF-011", "dose-above-hard-limit", Critical,
        "The dose exceeds the drug library's hard limit: the order is blocked before it reaches the pump.";
    RATE_SOFT_LIMIT = "WG-INF-012", "rate-above-soft-limit", Medium,
        "The infusion rate exceeds the soft limit: forwarded (a clinician may override) and alerted for review.";
    DOSE_SOFT_LIMIT = "WG-INF-013", "dose-above-soft-limit", Medium,
        "The dose exceeds the soft limit: forwarded and alerted for review.";
    UNIT_AMBIGUOUS = "WG-INF-014", "unit-case-ambiguous", High,
        "A unit's magnitude depends on its letter case or on a guess: UCUM is case-sensitive (MU and M[iU] are mega-units, mU milli-units), and a sender folding case (MU, MIU, ML, MG) may mean either. Refused, never read: a factor of 10^9 rides on one letter.";
    REPEATED_FIELD = "WG-INF-015", "repeated-single-field", High,
        "A field that does not repeat (drug code, amount, units, rate, strength, volume, weight, an observation's identifier) carries repetitions: one parser reads the first, another the last. Refused whichever repetition is safe.";
    CODED_PARTS_DISAGREE = "WG-INF-016", "coded-parts-disagree", High,
        "A coded element's parts (identifier, text, alternate identifier, alternate text, original text, second alternate) name different drugs, units or observations (an MDC code for mL/h with the text U/h; a heparin code with the text insulin, or with a text naming none of heparin's names, or naming another drug or product beside it such as insulin glargine or enoxaparin), or an identifier is not understood while its text is: the pump may read the part wardgate did not. Refused.";
    STATEMENTS_DISAGREE = "WG-INF-017", "programme-statements-disagree", High,
        "Two places in the order state the same quantity (RXG-15/16, RXG-5/7 with RXG-14, TQ1 duration, OBX programming parameters, concentration) with values that do not agree within rounding: the pump may read either. Also a programming parameter whose OBX-11 marks it wrong, deleted or not obtained, to every reader or only to some (`W~F`, `w`, `\\X57\\`): it programs the pump to one reader and nothing to another. Refused.";
    AMBIGUOUS_TIMING = "WG-INF-018", "ambiguous-give-timing", High,
        "A TQ1 stating a duration sits between two RXG segments, or is the order's timing (before its first RXG) in an order with several gives: which give it times is ambiguous (the one before or after it; the first, or every one), and the rate or volume derived from it differs. Refused.";
    ESCAPED_VALUE = "WG-INF-019", "escaped-clinical-value", High,
        "A number, unit, drug identifier or observation identifier (what an OBX states: a programming parameter, a weight) is written with HL7 escape sequences; parsers differ in decoding them (some never do), so the value the pump reads is uncertain. Refused.";
    PATIENT_SIZE_INVALID = "WG-INF-020", "patient-size-invalid", High,
        "A body weight or body surface area observation the order needs is malformed (not a number, an unknown or wrong unit such as cm2 for m2 or a length for a weight, outside plausible bounds, parts naming another weight): it is not skipped silently, and a weight-based order cannot be checked without it.";
    PATIENT_SIZE_CONFLICT = "WG-INF-021", "patient-size-conflict", High,
        "Two valid body weight (or body surface area) observations disagree beyond rounding: a per-kg dose depends on which the pump uses. Refused.";
    PATIENT_SIZE_UNUSED = "WG-INF-022", "patient-size-invalid-unused", Medium,
        "A body weight or body surface area in the order is malformed or conflicting, but this order does not need it: forwarded with an alert so that the message's author can correct it.";
    RATE_HARD_MIN = "WG-INF-023", "rate-below-hard-minimum", High,
        "The infusion rate is below the drug library's hard minimum (under-dosing harms too: a heparin infusion at 0.001 U/h is not therapy); blocked.";
    DOSE_HARD_MIN = "WG-INF-024", "dose-below-hard-minimum", High,
        "The dose is below the drug library's hard minimum; blocked.";
    RATE_SOFT_MIN = "WG-INF-025", "rate-below-soft-minimum", Medium,
        "The infusion rate is below the soft minimum: forwarded and alerted for review.";
    DOSE_SOFT_MIN = "WG-INF-026", "dose-below-soft-minimum", Medium,
        "The dose is below the soft minimum: forwarded and alerted for review.";
    CONCENTRATION_LIMIT = "WG-INF-027", "concentration-outside-limits", High,
        "The order's concentration (RXG-17/18 over RXG-23/24, or MDC_CONC_DRUG) is outside the drug's concentration_min/max: a bag ten times too strong runs ten times the dose at the same mL/h. Blocked.";
    NON_STANDARD_CONCENTRATION = "WG-INF-028", "non-standard-concentration", Medium,
        "The concentration is within limits but not one of the drug's standard concentrations: forwarded and alerted, so pharmacy can check the bag.";
    VTBI_LIMIT = "WG-INF-029", "vtbi-above-limit", High,
        "The volume to be infused is above the drug's vtbi_max_ml in the care area. Blocked.";
    DURATION_LIMIT = "WG-INF-030", "duration-above-limit", High,
        "The infusion's duration is above the drug's duration_max_min in the care area. Blocked.";
    WEIGHT_OUTSIDE_AREA = "WG-INF-031", "weight-outside-care-area", High,
        "The patient's body weight is outside the care area's weight_min_kg..weight_max_kg (an adult weight in the NICU profile, or the reverse): the wrong patient, care area or unit. Blocked.";
    CARE_AREA_UNKNOWN = "WG-INF-032", "care-area-unknown", High,
        "The drug library has care areas, the route fixes none, the order's point of care (PV1-3) maps to none and the library has no default: the limits that apply cannot be known. Blocked.";
    DRUG_NOT_IN_CARE_AREA = "WG-INF-033", "drug-not-in-care-area", High,
        "The drug is in the library but not available in the order's care area. Blocked.";
    REPEATED_SEGMENT = "WG-INF-034", "repeated-single-segment", High,
        "A segment the order has once (PV1, which names the point of care and so the care area) appears twice: one parser reads the first, another the last. Refused.";
    AMBIGUOUS_DURATION = "WG-INF-035", "ambiguous-duration", High,
        "A duration can be read two ways (TQ1-7 and TQ1-8 with different or missing time zone offsets, local times across a night on which clocks may change, or a local time the route's `time_zone` skips or repeats or an offset that is not that zone's): the rate derived from it depends on the reading. Refused.";
    MISPLACED_PARAMETER = "WG-INF-036", "misplaced-programming-parameter", High,
        "A pump programming parameter (an OBX with a PCD-03 rate, VTBI, dose, concentration or order type code, or a TQ1 stating a duration) sits outside any give (before the first RXG or its order's ORC, or after another ORC): which give it programs is unknown, and a pump may apply it. Refused.";
    TOO_MANY_GIVES = "WG-INF-037", "too-many-gives", High,
        "More RXG segments in one order than the engine checks (64): a multistep order has far fewer. Refused, so that checking stays bounded.";
    UNBOUNDED_BOLUS = "WG-INF-038", "bolus-without-bound", High,
        "A bolus states a rate but no duration, no dose and no volume: how much it delivers is not bounded, and a pump may run the rate as an infusion. Refused. (A volume stated is the bolus's amount, judged as its dose.)";
    AMBIGUOUS_ORDER_KIND = "WG-INF-039", "ambiguous-bolus-or-infusion", High,
        "Whether a give is a bolus or a continuous infusion has two readings: ORC-1 is not exactly one order control code as written (a subcomponent, an escape, lower case, spaces), the message's ORC segments disagree on it (some CH, a bolus, some not: a receiver may read another ORC for a give than wardgate does), a give stated to be a bolus has an order type saying continuous, an order type saying continuous comes with no rate and no duration (its amount is a rate to one receiver, a dose to another), or the order type (MDC_INFUS_ORDER_STEP_TYPE) has text but no code. A bolus and an infusion have different limits. Refused.";
    PHARMACY_BESIDE_GIVE = "WG-INF-040", "pharmacy-segment-beside-give", High,
        "An infusion order carries an RXO, RXE, RXC, RXD or RXA segment beside its RXG. PCD-03 programmes the pump with RXG alone, and wardgate checks RXG; a receiver reading the pharmacy segment's drug, amount, rate or strength would run values never checked. Refused.";
    LEGACY_TIMING = "WG-INF-041", "legacy-timing-unread", High,
        "ORC-7, RXG-3 or RXE-1 (the older TQ quantity/timing) states a quantity other than 1, an interval, a duration, an end or a number of occurrences. wardgate reads an order's timing from TQ1; a receiver reading the older field would derive a rate never checked. Refused.";
    UNREAD_REPETITION = "WG-INF-042", "repetition-unread", High,
        "A TQ1 states repeated gives wardgate does not read as a programme: a quantity other than 1 (TQ1-2), a repeat pattern other than once (TQ1-3), more than one explicit time (TQ1-4) or relative time (TQ1-5), a conjunction chaining it to another TQ1 (TQ1-12), more than one occurrence (TQ1-14), or a TQ2 cycle (TQ2-7, TQ2-9). A receiver would give the dose that many times, a total never checked. Refused.";
    UNREAD_PARAMETER = "WG-INF-043", "unread-programming-parameter", High,
        "An OBX under the give (RXG) states a quantity a pump is programmed with (its unit, in OBX-6 or inside a CQ value, is a duration, a volume, an amount or a rate) under an identifier wardgate does not read as a programming parameter (an infusion duration, a vendor's code): a pump server that knows the identifier programs from it unchecked (a duration beside the volume to be infused makes a rate). Refused. The patient's weight and surface area are read as such; a few LOINC-coded laboratory results sent beside infusion orders (aPTT, prothrombin time, INR, heparin level, creatinine clearance, urine output, gestational age, glucose) are observations, not parameters. A unit wardgate cannot read strictly is refused with its own rule when any lenient reading of it is such a quantity.";
    ROUTE_NOT_ALLOWED = "WG-INF-044", "route-not-allowed", Critical,
        "The route of administration the give states (RXR-1, an HL7 table 0162 code) is not among the drug's `routes` in the care area (vincristine is fatal intrathecally; epidural and intravenous bupivacaine are different products). Blocked. wardgate checks the route the order states; it cannot see how the line is connected.";
    ROUTE_UNCLEAR = "WG-INF-045", "route-unclear", High,
        "The drug's library entry restricts its routes, and which route the order states cannot be told: no RXR for the give (or one outside every give: before the order's ORC or first RXG, or under an order with no RXG), RXR-1 empty, with only text, escaped or with subcomponents, no identifier beside an alternate, a coding system other than HL7 table 0162 (the code may mean something else there), or two readings naming different codes (two RXR segments, RXR-1 repetitions, an identifier and an alternate identifier, or a text that is another table 0162 code or the word for another route: `IV^Intrathecal`, in RXR-1 or the drug's text (a warning naming another route, `NOT FOR INTRATHECAL USE`, included: a negation may govern another word), or a table 0162 code or a route word of more than three letters in the RXR's site, device, method or routing instruction). Refused.";
    PCA_LOCKOUT_SHORT = "WG-INF-046", "pca-lockout-below-minimum", High,
        "A PCA order's lockout interval (MDC_TIME_PCA_LOCKOUT, the least time between two demand doses) is shorter than the drug library's minimum for the drug in the care area (pca_lockout_min_minutes): the patient could give themselves demand doses more often than the pharmacy allows. Blocked.";
    MULTISTEP_UNCLEAR = "WG-INF-047", "multistep-order-unclear", High,
        "An order with more than one give (RXG), or stating a total number of steps, does not read as one multistep programme (PCD TF-2 PIV multistep: RXG-1 numbers the steps 1 to n, one drug and one concentration throughout, a loading dose only as step 1): the steps are not numbered 1 to n in order, a stated total (MDCX_INFUS_TOTAL_NUM_STEPS) is not the number of steps present, steps name different drugs or concentrations (one container runs every step: a step's rate read on another step's concentration is another dose), or a step after the first is a loading dose. A pump server would merge, skip, reorder or misread steps. Refused.";
    PCA_HOURLY_MAX = "WG-INF-048", "pca-hourly-maximum", Critical,
        "A PCA order can deliver more in an hour than the drug library allows (pca_max_per_hour): its basal rate for the hour, a loading or clinician dose, and the largest demand dose as often as its lockout or doses per hour allow, capped by the order's own dose limit over its period; or nothing in the order bounds its demand doses, or one of these cannot be read in the library's dose unit. Blocked.";
    CONTINUATION_UNREAD = "WG-INF-049", "continued-segment-or-message", High,
        "An infusion order continues a segment with an ADD segment, or is one fragment of a message continued with DSC or MSH-14 (continuation pointer): a receiver that joins the pieces (HL7 v2.5.1 2.10.2) reads other fields than wardgate checked, a point of care in a PV1 continued by ADD or an end time in a TQ1 continued by ADD. wardgate reads each segment alone. Refused.";
    DICOM_CALLING_AE = "WG-DICOM-001", "calling-ae-not-allowed", High,
        "The calling AE title is not one of the sending device's own: a spoofed or misconfigured modality. A-ASSOCIATE-RJ (calling AE title not recognised).";
    DICOM_CALLED_AE = "WG-DICOM-002", "called-ae-not-allowed", High,
        "The called AE title is not one the route allows: the sender tries to reach another application. A-ASSOCIATE-RJ (called AE title not recognised).";
    DICOM_SOP_CLASS = "WG-DICOM-003", "sop-class-not-allowed", Medium,
        "A presentation context proposes a SOP class the route does not allow; that context is rejected (abstract syntax not supported), the others proceed.";
    DICOM_OPERATION = "WG-DICOM-004", "operation-not-allowed", High,
        "A DIMSE operation the route does not allow (for example C-MOVE or N-ACTION from a device that should only store): refused with a failure status, not forwarded.";
    DICOM_MOVE_DESTINATION = "WG-DICOM-005", "move-destination-not-allowed", High,
        "A C-MOVE to a destination AE title the route does not allow: a way to exfiltrate studies. Refused (move destination unknown), not forwarded.";
    DICOM_CLEARTEXT_CREDENTIALS = "WG-DICOM-006", "cleartext-credentials", High,
        "User identity negotiation carries a passcode, ticket or token in clear over the network: anyone on the path can read it. The passcode itself is never recorded.";
    DICOM_CONTEXT = "WG-DICOM-007", "context-not-accepted", High,
        "Data on a presentation context that was never accepted (or was rejected by policy): a protocol violation or an attempt to bypass the SOP class check. The association is aborted.";
    DICOM_EXECUTABLE = "WG-DICOM-009", "executable-content", Critical,
        "A data set carries a value that starts like an executable (Windows PE, ELF, Mach-O, script), e.g. in an Encapsulated Document: a way to smuggle malware onto a PACS or workstation. Blocked by default (the association is aborted before the rest is forwarded).";
    DICOM_UNINSPECTABLE = "WG-DICOM-010", "data-set-not-inspected", Low,
        "A data set could not be walked (malformed elements, or a big-endian or deflated transfer syntax): it was forwarded without the executable-content check. Noted so the gap is visible.";
    DICOM_STATE = "WG-DICOM-008", "unexpected-pdu", Medium,
        "A PDU that is not valid in the association's state (data before association, a second A-ASSOCIATE-RQ): the association is aborted.";
    UPSTREAM_UNAVAILABLE = "WG-UP-001", "upstream-unavailable", High,
        "The upstream could not be reached, or stopped taking data (a write failed or stalled): the sender is told (an AE acknowledgement, a transient association rejection) so that it retries, and nothing is lost silently. Only the upstream's unavailability: wardgate's own disk failures are WG-QUEUE-006.";
    UPSTREAM_PROTOCOL = "WG-UP-002", "upstream-protocol-error", Medium,
        "The upstream broke its protocol: bytes that are not valid MLLP, a malformed DICOM PDU or one out of sequence, or 64 frames in a row on one connection that answer no message (WG-UP-005 to WG-UP-007). The connection is closed (the association aborted) rather than relaying garbage to a clinical system. The same malformation from a sender has the protocol rule of its parser (WG-MLLP-*, WG-DICOM-P*).";
    UPSTREAM_REJECTED = "WG-UP-003", "upstream-rejected-association", Medium,
        "The upstream answered an association request with A-ASSOCIATE-RJ (it refused the calling AE title or the services proposed, or is busy); the rejection is relayed to the sender unchanged.";
    UPSTREAM_ABORTED = "WG-UP-004", "upstream-aborted", Medium,
        "The upstream ended a conversation before it was complete: it sent A-ABORT, closed the connection without releasing the association, or its stream broke. The sender is told with an abort.";
    DUPLICATE_ACK = "WG-UP-005", "duplicate-acknowledgement", Medium,
        "The upstream answered a message it had already answered, which asked for original-mode acknowledgement (one answer each): the second answer is recorded and not relayed, since a sender matching answers by order would take it as the next message's. (Enhanced mode's accept and application answers are both relayed.)";
    UNSOLICITED_ACK = "WG-UP-006", "unsolicited-acknowledgement", Medium,
        "The upstream sent a frame that answers no message: an answer when no message was awaiting one (other than an enhanced-mode message's own answer, matched by MSA-2), or a frame without MSA (a message of its own) at any time. A sender matching answers by order would take it as the answer to its next or oldest message, even one wardgate refuses. Recorded and not relayed. Such frames and those of WG-UP-005 and WG-UP-007 are recorded one by one up to eight on a connection, then counted; 64 in a row, with no message answered between, close it (WG-UP-002), so that an upstream streaming them costs neither the audit log nor the messages behind them.";
    UNKNOWN_ACK = "WG-UP-007", "acknowledgement-of-unknown-message", High,
        "While messages awaited answers, the upstream sent an acknowledgement whose MSA-2 names no message sent on this connection (a stale answer from an earlier connection, or an upstream that rewrites MSA-2). Recorded and not relayed: a sender matching answers by order would take it as its oldest message's answer, which the upstream may yet refuse. The messages in flight keep waiting for their own answers; if none comes, the idle-timeout or close record names them. An upstream that always rewrites MSA-2 shows as this rule on every answer: fix its interface, HL7 requires MSA-2 to echo MSH-10.";
    AMBIGUOUS_ACK = "WG-UP-008", "ambiguous-acknowledgement", High,
        "The upstream answered a message with more than one MSA segment, and they disagree (MSA|AE then MSA|AA, or two control ids), in either acknowledgement mode: a sender reading the first sees a rejection, one reading the last sees acceptance. Not relayed: the sender gets wardgate's AE for the message instead, saying the answer was ambiguous, in the answer's place (answers stay in order; one naming two messages is taken, by order, as the oldest's). Whether the pump server accepted the message is unknown: check there before sending it again.";
    ANSWERS_OUT_OF_ORDER = "WG-UP-009", "answers-out-of-order", High,
        "The upstream answered messages out of the order they were sent (original mode), and an earlier message stayed unanswered for 2 s: the answers wardgate had held so that each reached the sender in its message's place were then sent, with the refusals queued, in their messages' order without the unanswered messages' answers (which follow when they come). A sender matching answers by order may take them for the earlier messages': check on the pump server which messages it accepted before sending any again. (Answers that come out of order within 2 s are put back in order and not recorded.)";
    SLOW_SENDER = "WG-CONN-001", "slow-sender", Medium,
        "A frame (an MLLP frame, a DICOM PDU, the first A-ASSOCIATE-RQ) did not complete within the frame timeout (a sender dribbling bytes); the connection is closed so it cannot hold resources. Only a timeout: a sender that breaks off is WG-CONN-005.";
    IDLE_TIMEOUT = "WG-CONN-002", "idle-timeout", Info,
        "A connection sent nothing for the idle timeout and was closed. Messages forwarded that the upstream never answered get wardgate's AE in their place (whether the pump server accepted them is unknown: check before sending again), with the refusals queued behind them in order; the record names them.";
    SHUTDOWN_CUT = "WG-CONN-003", "cut-at-shutdown", Medium,
        "A message was still in flight when the shutdown grace period ended; the connection was closed, the message answered with wardgate's AE (whether the upstream accepted it is unknown).";
    SENDER_ABORTED = "WG-CONN-005", "sender-aborted", Low,
        "The sender ended a DICOM conversation before it was complete: it sent A-ABORT, closed the connection without releasing the association, or its stream broke (a reset). The upstream is told with an abort.";
    SENDER_NOT_READING = "WG-CONN-006", "sender-not-reading", Medium,
        "The sender stopped reading its answers (a write to it failed or stalled for the frame timeout): the connection is closed, and the record names the acknowledgements and refusals it never received, so that no message's fate is unknown.";
    REPLY_BACKLOG = "WG-CONN-004", "reply-backlog", Medium,
        "A sender pipelined more refused messages than may wait behind an upstream that has not answered yet: the connection is closed, so that memory stays bounded. Each message the upstream has not answered gets wardgate's AE in its place (whether the pump server accepted it is unknown) and the refusals follow in order; the record names them.";
    QUEUE_FULL = "WG-QUEUE-001", "queue-full", High,
        "A store-and-forward route's queue reached its disk quota (the upstream has been down or slow for long): new messages are answered AE so senders keep them and retry, rather than anything being dropped.";
    QUEUE_DUPLICATE = "WG-QUEUE-002", "duplicate-message", Low,
        "A sender sent again a message (same sender, same MSH-10) that wardgate already holds or delivered within the dedup window, typically a retry after a lost acknowledgement: it is acknowledged and not delivered twice.";
    QUEUE_PARKED = "WG-QUEUE-003", "message-parked", High,
        "The upstream refused a queued message for good (AR/CR, or AE more often than max_attempts): it is parked, not retried, and waits for an operator (wardgate queue --redrive).";
    QUEUE_REPAIRED = "WG-QUEUE-004", "queue-tail-repaired", High,
        "A queue journal ended with a torn or corrupt record (a crash mid-write, or a damaged file); it was cut back to the last whole record. Messages acknowledged to senders are synced before the acknowledgement, so a torn tail holds none of them unless the disk lost synced data.";
    QUEUE_RETRY = "WG-QUEUE-005", "delivery-retry", Low,
        "The upstream answered a queued message with a transient error (AE/CE), or could not be reached; delivery is retried with backoff, in order.";
    QUEUE_STORAGE = "WG-QUEUE-006", "queue-storage-failed", High,
        "wardgate could not write or read a store-and-forward queue on its own disk (disk full, an I/O error): a local failure, not the upstream's. The sender is answered AE so it keeps the message and retries; a queue that stopped delivers nothing until wardgate is restarted.";
    QUEUE_CONTROL_ID_REUSED = "WG-QUEUE-007", "control-id-reused", High,
        "A message on a store-and-forward route carries the MSH-10 (and MSH-3, MSH-4) of a different message the same sender sent within the dedup window. Taken as a duplicate it would be acknowledged and never delivered; delivered, the receiver's own duplicate check could drop it. Refused (AR) so that the sender resends it under a new control id.";
    QUEUE_LATE_REFUSAL = "WG-QUEUE-008", "late-refusal", High,
        "The upstream refused (AE, AR, CE, CR) a queued message after wardgate had taken it as delivered: the message asked for no answer on success (MSH-15/16 ER, SU, NE), and none came within the ack timeout. The receiver did not accept it; someone must resend it once the cause is fixed.";
    FLOOD_CONNECTIONS = "WG-FLOOD-001", "too-many-connections", Medium,
        "A device (or an unknown address) holds more connections at once than max_connections_per_device allows; further ones are refused right after accept, so one device cannot take every connection slot. Alerted once per flood episode, with counts in the episode's summary.";
    FLOOD_NEW_CONNECTIONS = "WG-FLOOD-002", "connection-rate-exceeded", Medium,
        "A device (or an unknown address) opens connections faster than new_connections_per_sec (plus its burst); the excess is refused right after accept, before any handshake or parsing, so a connect storm costs the gateway almost nothing. Alerted once per flood episode.";
    FLOOD_MESSAGES = "WG-FLOOD-003", "message-rate-exceeded", Medium,
        "A device sends messages (HL7 frames, DICOM commands) faster than messages_per_sec (plus its burst); its messages are throttled, held back until the rate allows (TCP pushes back on the sender), never dropped, while other devices keep their service. Alerted once per flood episode.";
    FLOOD_EPISODE = "WG-FLOOD-004", "flood-episode-summary", Medium,
        "A flood episode ended: the device hit no limit for flood_quiet_secs (or the gateway stopped). One summary per episode carries what was refused and throttled and for how long, instead of one record per packet.";
    AUDIT_UNCLEAN = "WG-AUDIT-001", "unclean-shutdown", Medium,
        "wardgate did not shut down cleanly last time: records not yet written then were lost, and this record says so.";
    AUDIT_BACKPRESSURE = "WG-AUDIT-003", "recorder-backpressure", Medium,
        "The disk under data_dir fell behind the audit log (more records waited to be written than the recorder buffers): this connection stopped reading for the time given, until its decisions could be recorded, so that none goes unrecorded; other connections and timers ran on. A slow or failing disk.";
    AUDIT_TAIL_REPAIRED = "WG-AUDIT-002", "audit-tail-repaired", High,
        "The audit log ended with a torn record (a crash mid-write); it was cut back to the last whole record and this is recorded.";
    EXPORT_UNREACHABLE = "WG-EXPORT-001", "syslog-collector-unreachable", High,
        "A syslog collector could not be reached (refused, timed out, TLS failed, or the connection broke) for longer than unreachable_alert_secs: alerts are not reaching the SOC. Nothing is lost: events wait in the audit log and are sent when it returns. Raised once per outage, with how long it has lasted and how many records wait.";
    EXPORT_RECOVERED = "WG-EXPORT-002", "syslog-collector-recovered", Medium,
        "A syslog collector that was unreachable is receiving again: the event says how long the outage lasted and how many records were sent to catch up.";
    EXPORT_CHECKPOINT = "WG-EXPORT-003", "audit-checkpoint", Info,
        "A signed checkpoint of the audit log (chain id, sequence number, head hash, Ed25519 signature), sent off the box so that a log cut back, rewritten or deleted on the gateway is detectable from outside: the collector holds heads the gateway can no longer deny. Not recorded in the audit log itself; only exported.";
    AUDIT_GAP = "WG-AUDIT-004", "audit-chain-gap", High,
        "At start the audit log was missing, cut short, replaced or altered while its signed head, the event index or the archive said otherwise. wardgate refused to start until an operator accepted the gap (--accept-audit-gap); then the refused files were set aside (audit/set-aside/) and a new chain began with this record, saying what was expected and what was found. `wardgate audit verify` reports the gap: a log with one is never called intact.";
    DATA_DIR_MODES = "WG-AUDIT-005", "data-dir-permissions", Medium,
        "At start, something in data_dir grants more than wardgate gives it (directories 0750, files 0640, private keys 0600): the audit log, the event index and the queues hold events that name patients, and the keys sign the audit chain and the devices' certificates. The record names each path and its mode; `chmod` them back.";
    CONSOLE_LOCKED = "WG-CONSOLE-001", "console-account-locked", High,
        "A console account was locked after login_max_failures wrong passwords in a row: someone is guessing a password (or a person forgot theirs). The account refuses every login, the right password included, for lockout_secs; the record names the account and the address of the last attempt.";
    MQTT_CLIENT_ID = "WG-MQTT-001", "client-id-not-device", High,
        "An MQTT CONNECT's client id is empty, not one of the device's client_ids, or another device's: a device posing as another (whose session, retained state and commands it would take over). The CONNACK refuses it (identifier rejected / client identifier not valid).";
    MQTT_CLEARTEXT_CREDENTIALS = "WG-MQTT-002", "cleartext-credentials", High,
        "An MQTT CONNECT carries a user name and password over a listener without TLS, and the route does not allow it (allow_cleartext_credentials): anyone on the path could read the password. The CONNACK refuses it (not authorised); the secret is never recorded.";
    MQTT_PUBLISH = "WG-MQTT-003", "publish-not-allowed", High,
        "A PUBLISH to a topic outside the device's profile (mqtt_profile publish): a device writing where it should not, such as another patient's topic. Not forwarded: MQTT 5 QoS 1/2 is answered with reason 0x87 (not authorised), MQTT 3.1.1 QoS 1/2 has no refusal code so the connection is closed, and QoS 0 is not forwarded and recorded.";
    MQTT_SUBSCRIBE = "WG-MQTT-004", "subscribe-not-allowed", High,
        "A SUBSCRIBE whose topic filter reaches beyond the device's profile (mqtt_profile subscribe): a wildcard such as #, +, $share/... or $SYS/# that would harvest other patients' data. Every filter of that SUBSCRIBE is refused in the SUBACK (0x80 / 0x87) and nothing is forwarded to the broker.";
    MQTT_RETAIN = "WG-MQTT-005", "retain-not-allowed", Medium,
        "A retained PUBLISH (or a retained will) on a topic where the profile allows no retained messages: a retained message is delivered to every later subscriber, so a device could plant stale or false readings. Refused as a PUBLISH outside the profile is.";
    MQTT_WILL = "WG-MQTT-006", "will-not-allowed", Medium,
        "A CONNECT whose will topic is outside the profile's will topics: the broker would publish it on the device's behalf later, where the device may not publish itself. The CONNACK refuses it (not authorised).";
    MQTT_QOS = "WG-MQTT-007", "qos-not-allowed", Medium,
        "A PUBLISH or will above the profile's max_qos: higher QoS costs the broker state per message. Refused as a PUBLISH outside the profile is (MQTT 5 PUBACK/PUBREC 0x87: PUBACK has no \"QoS not supported\" code; a will: CONNACK 0x9B).";
    MQTT_PAYLOAD = "WG-MQTT-008", "payload-too-large", Medium,
        "A PUBLISH payload larger than the profile's max_payload_bytes: not what the device sends, and a way to fill a broker or a subscriber. Refused as a PUBLISH outside the profile is.";
    MQTT_NOT_COMMANDER = "WG-MQTT-009", "command-not-commander", Critical,
        "A PUBLISH to a device's command topic (its profile's commands) from a device that is not one of the route's commanders: an attempt to reprogram or reconfigure a device (or drain its battery) from outside the clinic's server. Not forwarded.";
    MQTT_COMMAND_SIGNATURE = "WG-MQTT-010", "command-signature-invalid", Critical,
        "A command on a route with signed_commands lacks a valid Ed25519 signature (docs/mqtt.md): missing or malformed, from an unknown signer or one not bound to the sending commander, or not matching the topic, time, nonce and payload. Not forwarded.";
    MQTT_COMMAND_REPLAY = "WG-MQTT-011", "command-replayed", Critical,
        "A signed command whose nonce was already used by its signer within the time window: a captured command sent again. Not forwarded.";
    MQTT_COMMAND_STALE = "WG-MQTT-012", "command-stale", High,
        "A signed command whose timestamp is outside command_max_age_secs of the gateway's clock (too old, or in the future): a delayed replay, or a clock out of step. Not forwarded.";
    MQTT_COMMAND_BUDGET = "WG-MQTT-013", "command-budget-exceeded", High,
        "A device received more commands than its profile's commands_per_hour or commands_per_day: repeated commands drain an implant monitor's or a wearable's battery and may mean a compromised commander. Further commands are refused (MQTT 5 quota exceeded) until the window allows.";
    MQTT_TELEMETRY_MALFORMED = "WG-MQTT-014", "telemetry-malformed", Medium,
        "A reading on a topic with telemetry checks is not in its declared format (a number, or JSON with the declared fields and types): a faulty or tampered device, or data a clinical system may misread. Forwarded and alerted.";
    MQTT_TELEMETRY_IMPLAUSIBLE = "WG-MQTT-015", "telemetry-implausible", High,
        "A reading outside its declared plausible range (min..max): a faulty sensor, a unit error or a tampered device, which a clinical system may act on. Forwarded and alerted.";
    MQTT_STATE = "WG-MQTT-016", "protocol-state", High,
        "A client's MQTT packet not valid at that point of the connection: a packet before CONNECT, a second CONNECT, a packet only a server sends. More QoS 1/2 PUBLISHes in flight than the broker's Receive Maximum is one too (MQTT 5 DISCONNECT 0x93). A confused or hostile client: the connection is closed (an MQTT 5 client is first sent DISCONNECT, protocol error). The same from the broker is WG-UP-002.";
    MQTT_NONCE_CACHE_FULL = "WG-MQTT-017", "command-nonce-cache-full", High,
        "The replay cache holds as many live command nonces as it may: no new nonce can be remembered, so commands are refused until old ones expire rather than risking an unnoticed replay. A flood of signed commands.";

    // Device risk (docs/risk.md).
    RISK_ADVISORY = "WG-RISK-001", "advisory-affects-device", High,
        "An imported advisory affects a device: its declared vendor, model and version (or a component of its SBOM) fall inside an affected product's range, and no VEX statement from the manufacturer says otherwise. Raised once per device and advisory, when the match is first found.";
    RISK_ADVISORY_POSSIBLE = "WG-RISK-002", "advisory-possibly-affects-device", Medium,
        "An advisory names a device's product, but wardgate cannot tell whether its version is affected: the advisory's range is not readable, the device's version is unknown or not comparable, the advisory gives the product no status, or the manufacturer is still investigating. The advisory's own text is in the event; wardgate never guesses either way.";
    RISK_THRESHOLD = "WG-RISK-003", "risk-above-threshold", High,
        "A device's risk score rose to or above the site's threshold ([risk] alert_at): a new advisory, new exposure on the wire, or a control removed. The factors and their evidence are in the event.";
    RISK_VERSION_DISAGREES = "WG-RISK-004", "version-disagrees-with-wire", Medium,
        "What the wire says a device runs (DICOM implementation version, HL7 SFT) is not its declared version: the inventory is wrong, or the device was changed, so advisory matching rests on the wrong version.";
    RISK_BELOW_THRESHOLD = "WG-RISK-005", "risk-below-threshold", Low,
        "A device's risk score fell below the site's threshold again: an advisory fixed or answered by VEX, exposure no longer seen, or a control added.";
    MUD_DEVIATION = "WG-MUD-001", "traffic-outside-mud", Medium,
        "A device talked to a peer, protocol or port its manufacturer's usage description (RFC 8520 MUD) does not allow: a misconfiguration, an undeclared feature, or a compromised device.";
    MUD_UNVERIFIABLE = "WG-MUD-002", "mud-unverifiable", Low,
        "A device's flow is allowed by its MUD file only through a DNS name or controller the site has not mapped to addresses ([risk] mud_names, mud_controllers): wardgate resolves nothing itself, so it cannot say whether the flow is allowed.";
    PRIVACY_OPTED_OUT = "WG-PRIV-001", "patient-opted-out", Low,
        "The message or object is about a patient who opted out of the purpose this route serves ([route.privacy] purpose): it was not forwarded on it. The sender is answered as if delivered (HL7 AA, DICOM success) so it does not retry.";
    PRIVACY_CANNOT_DEIDENTIFY = "WG-PRIV-002", "cannot-de-identify", Medium,
        "A de-identifying route could not transform a message or object as its profile says (a value it cannot read, an escape sequence, a date that is no date, an element too large, a transfer syntax it cannot rewrite): refused rather than forwarded with identifiers in it.";
    PRIVACY_BURNED_IN = "WG-PRIV-003", "burned-in-identity", Medium,
        "An object whose pixels may show who the patient is (Burned In Annotation YES, a secondary capture or screenshot) was refused on a de-identifying route: removing attributes does not clean pixels. Allowed only with [route.privacy] allow_burned_in.";
}

/// The protocol rules: every way input can be malformed, reported by the
/// sans-IO parsers of `wardgate-proto` (and its anomaly trait).
pub mod proto {
    use super::{Rule, Severity};

    rules! {
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
            "MSH-1/MSH-2 declare unusable delimiters (duplicates, letters, line breaks, or characters of a number or a unit such as `.` or `/`, which parsers split differently): the message cannot be parsed reliably.";
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
        HL7_AMBIGUOUS_CHARSET = "WG-HL7-P12", "ambiguous-character-set", High,
            "MSH-18 declares a character set in which a receiver that decodes the message before parsing it reads other delimiters or characters than the bytes say: a multi-byte set whose second bytes include ASCII (Big5, GB 18030, Shift JIS) with a byte of 0x80 or above in the message (it can swallow the `|` or `^` after it, shifting every field behind), a wide set (UTF-16, UTF-32, UNICODE) over a byte of 0x80 or above, JIS X 0201 (ISO IR14, where `\\` is the yen sign), a set that reads plain ASCII as other characters (UTF-7, HZ) or any set wardgate does not know, UTF-8 declared over bytes that are not UTF-8, or, with no set declared, an overlong UTF-8 form that decodes to a segment break or a delimiter (`C0 8D`, a carriage return to a lenient decoder). Refused.";
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
        MQTT_MALFORMED = "WG-MQTT-P01", "malformed-packet", High,
            "An MQTT control packet that breaks MQTT 3.1.1/5.0: a reserved packet type or flag bit, a Remaining Length or Variable Byte Integer that is not minimal or longer than four bytes, a field running past its packet or bytes after the last one, QoS 3, packet identifier 0, an unknown reason code, a packet the version does not have. MQTT has no resynchronisation point: the connection is closed.";
        MQTT_TOO_LARGE = "WG-MQTT-P02", "packet-too-large", High,
            "A packet announcing more bytes than the gateway's maximum packet size, or more user properties or topic filters than its limits: a memory-exhaustion attempt or a broken client. Refused from its fixed header, before it is buffered.";
        MQTT_BAD_STRING = "WG-MQTT-P03", "invalid-utf8-string", High,
            "An MQTT string that is not well-formed UTF-8, holds U+0000 or a surrogate (MQTT-1.5.4-1/2), or a topic holding a control character: brokers and policy could read different topics. Refused.";
        MQTT_BAD_TOPIC_NAME = "WG-MQTT-P04", "invalid-topic-name", High,
            "A topic name (PUBLISH, will, response topic) that is empty or holds a wildcard (`+`, `#`): no receiver can route it as written, and a wildcard there is an attempt to publish to many topics at once. Refused.";
        MQTT_BAD_TOPIC_FILTER = "WG-MQTT-P05", "invalid-topic-filter", High,
            "A topic filter whose wildcards are misplaced (`#` not last or not alone in its level, `+` not alone in its level), an empty filter, or a `$share` subscription without a valid share name or filter: brokers disagree about what such a filter matches. Refused.";
        MQTT_BAD_PROPERTY = "WG-MQTT-P06", "invalid-property", High,
            "An MQTT 5 property unknown, not allowed in that packet, repeated where it may appear once, with a value out of range, or a property length that does not match its properties: a malformed packet or a smuggling attempt. Refused.";
        MQTT_TOPIC_ALIAS = "WG-MQTT-P07", "invalid-topic-alias", High,
            "An MQTT 5 topic alias that cannot be resolved to one topic: alias 0, above the negotiated Topic Alias Maximum, not yet set, or set again to another topic, or more alias memory than allowed. A topic alias hides the topic from anyone who did not see every packet, so an ambiguous one is refused.";
        MQTT_UNSUPPORTED_PROTOCOL = "WG-MQTT-P08", "unsupported-protocol-version", Medium,
            "A CONNECT whose protocol name or level is not MQTT 3.1.1 (4) or 5.0 (5): MQTT 3.1 and unknown versions are not inspected inline, so they are refused.";
    }
}

/// Every rule wardgate can record: the engine's, then the protocol rules.
pub fn all() -> impl Iterator<Item = Rule> {
    CATALOGUE.iter().chain(proto::CATALOGUE).copied()
}

/// Looks a rule up by id, the protocol rules included.
pub fn by_id(id: &str) -> Option<Rule> {
    all().find(|r| r.id == id)
}

/// Ids that once had a meaning and are never used again, with what replaced them.
pub const RETIRED: &[(&str, &str)] = &[];

/// Uses of an id that did not fit its meaning and moved to an id of their own
/// (the id itself keeps its meaning): `(id, what moved away and where)`.
pub const REASSIGNED: &[(&str, &str)] = &[
    (
        "WG-UP-001",
        "until 2026-12 also recorded for an upstream's A-ASSOCIATE-RJ (now WG-UP-003), an upstream's A-ABORT (now WG-UP-004) and wardgate's own queue disk failures (now WG-QUEUE-006)",
    ),
    (
        "WG-UP-002",
        "until 2026-12 also recorded when a DICOM sender aborted or closed without release (now WG-CONN-005) and when the upstream closed or its stream broke (now WG-UP-004); passive analysis recorded it for malformed DICOM from a client without a route (now the parser's WG-DICOM-P* rule, as inline)",
    ),
    (
        "WG-CONN-001",
        "until 2026-12 also recorded when a DICOM sender's stream broke before the association (now WG-CONN-005)",
    ),
];
