//! The bytes of one exported message, sans I/O: RFC 5424 syslog messages with
//! RFC 6587 octet-counting framing, CEF payloads, NDJSON lines.
//!
//! Every field that goes into a syslog header is cut to what RFC 5424 allows
//! (PRINTUSASCII, its maximum length) here, whatever the event holds, so a
//! value from a message on the wire can never break the framing.

use wardgate_event::{Event, Severity};

/// Writes `s` as an RFC 5424 header field (6.2: 1*`max` PRINTUSASCII, no
/// space): other bytes become `_`; an empty value is the NILVALUE `-`.
pub fn push_header_field(out: &mut Vec<u8>, s: &str, max: usize) {
    let start = out.len();
    for b in s.bytes().take(max) {
        out.push(if (33..=126).contains(&b) { b } else { b'_' });
    }
    if out.len() == start {
        out.push(b'-');
    }
}

/// Whether `ts` is an RFC 5424 TIMESTAMP (6.2.3: RFC 3339 with `T` and `Z`
/// upper case, at most six fraction digits).
pub fn is_syslog_timestamp(ts: &str) -> bool {
    let b = ts.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || b[10] != b'T'
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    let mut rest = &b[19..];
    if rest.first() == Some(&b'.') {
        let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 6 {
            return false;
        }
        rest = &rest[1 + n..];
    }
    match rest {
        b"Z" => true,
        [sign, h1, h2, b':', m1, m2] => {
            matches!(sign, b'+' | b'-') && [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit())
        }
        _ => false,
    }
}

/// Syslog severity (RFC 5424 6.2.1) of a rule severity; an event no rule
/// decided is informational.
pub fn syslog_severity(s: Option<Severity>) -> u8 {
    match s {
        Some(Severity::Critical) => 2,
        Some(Severity::High) => 3,
        Some(Severity::Medium) => 4,
        Some(Severity::Low) => 5,
        Some(Severity::Info) | None => 6,
    }
}

/// The fixed parts of every message of one export.
#[derive(Debug, Clone)]
pub struct SyslogHeader {
    /// Facility, 0-23.
    pub facility: u8,
    /// HOSTNAME (the gateway's hostname).
    pub hostname: String,
    /// APP-NAME.
    pub app_name: String,
    /// PROCID.
    pub procid: u32,
}

/// One syslog message's variable header fields.
#[derive(Debug, Clone, Copy)]
pub struct MessageMeta<'a> {
    /// Syslog severity, 0-7.
    pub severity: u8,
    /// The event's time (RFC 3339); `-` when it is not an RFC 5424 timestamp.
    pub timestamp: &'a str,
    /// MSGID: the rule id, or the action.
    pub msgid: &'a str,
}

/// Appends one RFC 5424 message: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID
/// MSGID - MSG` (no structured data). With `octet_counting` it is framed as
/// RFC 6587 3.4.1 has it (`MSG-LEN SP SYSLOG-MSG`), for TCP and TLS.
pub fn write_syslog(
    out: &mut Vec<u8>,
    h: &SyslogHeader,
    m: &MessageMeta<'_>,
    msg: &[u8],
    octet_counting: bool,
) {
    // The header first, apart: with octet counting its length goes before it,
    // and moving the message to make room would copy it once more.
    let mut head = Vec::with_capacity(160);
    let out_final = out;
    let out = &mut head;
    let pri = u32::from(h.facility.min(23)) * 8 + u32::from(m.severity.min(7));
    out.push(b'<');
    out.extend_from_slice(itoa::Buffer::new().format(pri).as_bytes());
    out.extend_from_slice(b">1 ");
    if is_syslog_timestamp(m.timestamp) {
        out.extend_from_slice(m.timestamp.as_bytes());
    } else {
        out.push(b'-');
    }
    out.push(b' ');
    push_header_field(out, &h.hostname, 255);
    out.push(b' ');
    push_header_field(out, &h.app_name, 48);
    out.push(b' ');
    out.extend_from_slice(itoa::Buffer::new().format(h.procid).as_bytes());
    out.push(b' ');
    push_header_field(out, m.msgid, 32);
    out.extend_from_slice(b" - ");
    if octet_counting {
        let len = head.len() + msg.len();
        out_final.extend_from_slice(itoa::Buffer::new().format(len).as_bytes());
        out_final.push(b' ');
    }
    out_final.extend_from_slice(&head);
    out_final.extend_from_slice(msg);
}

/// Reads one octet-counted frame from the front of `buf`: the message and
/// the bytes it took, `None` when incomplete, an error when it is no frame.
/// (The collector's side of the framing; used by the tests and the benchmark.)
pub fn read_octet_counted(buf: &[u8]) -> Result<Option<(&[u8], usize)>, &'static str> {
    let digits = buf.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == buf.len() {
        return if digits > 10 {
            Err("frame length too long")
        } else {
            Ok(None)
        };
    }
    if digits == 0 || digits > 10 || buf[0] == b'0' {
        return Err("a frame starts with its length (RFC 6587 3.4.1)");
    }
    if buf[digits] != b' ' {
        return Err("the length is followed by a space");
    }
    let len: usize = std::str::from_utf8(&buf[..digits])
        .ok()
        .and_then(|d| d.parse().ok())
        .ok_or("frame length out of range")?;
    let start = digits + 1;
    match start.checked_add(len) {
        Some(end) if end <= buf.len() => Ok(Some((&buf[start..end], end))),
        Some(_) => Ok(None),
        None => Err("frame length out of range"),
    }
}

/// The CEF severity (0-10) of a rule severity.
pub fn cef_severity(s: Option<Severity>) -> u8 {
    match s {
        Some(Severity::Critical) => 10,
        Some(Severity::High) => 8,
        Some(Severity::Medium) => 5,
        Some(Severity::Low) => 3,
        Some(Severity::Info) | None => 1,
    }
}

/// Escapes a CEF header field: `\` and `|` with a backslash, line breaks as spaces.
pub fn push_cef_header(out: &mut Vec<u8>, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.extend_from_slice(b"\\\\"),
            '|' => out.extend_from_slice(b"\\|"),
            '\r' | '\n' => out.push(b' '),
            c => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
}

/// Escapes a CEF extension value: `\` and `=` with a backslash, line breaks as
/// `\n` / `\r`.
pub fn push_cef_value(out: &mut Vec<u8>, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.extend_from_slice(b"\\\\"),
            '=' => out.extend_from_slice(b"\\="),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            c => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
}

/// Milliseconds since the Unix epoch of an RFC 3339 time, for CEF's `rt`.
fn unix_ms(ts: &str) -> Option<i128> {
    let t = time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339).ok()?;
    Some(t.unix_timestamp_nanos() / 1_000_000)
}

/// Appends the event as a CEF record (ArcSight CEF 25): the rule (or the
/// action) as signature id, its name (or the reason) as name, and the ECS
/// facts as the CEF keys a SIEM maps without configuration.
pub fn write_cef(out: &mut Vec<u8>, e: &Event) {
    let (sig, name) = match &e.rule {
        Some(r) => (r.id.as_str(), r.name.as_str()),
        None => (e.event.action.as_str(), e.event.reason.as_str()),
    };
    out.extend_from_slice(b"CEF:0|wardgate|wardgate|");
    push_cef_header(out, env!("CARGO_PKG_VERSION"));
    out.push(b'|');
    push_cef_header(out, sig);
    out.push(b'|');
    push_cef_header(out, name);
    out.push(b'|');
    out.extend_from_slice(
        itoa::Buffer::new()
            .format(cef_severity(e.wardgate.severity))
            .as_bytes(),
    );
    out.push(b'|');
    let mut first = true;
    let mut kv = |out: &mut Vec<u8>, k: &str, v: &str| {
        if v.is_empty() {
            return;
        }
        if !first {
            out.push(b' ');
        }
        first = false;
        out.extend_from_slice(k.as_bytes());
        out.push(b'=');
        push_cef_value(out, v);
    };
    if let Some(ms) = unix_ms(&e.timestamp) {
        kv(out, "rt", &ms.to_string());
    }
    kv(out, "act", e.event.action.as_str());
    kv(out, "outcome", e.event.outcome().as_str());
    kv(out, "cat", &e.event.categories().join(","));
    kv(out, "msg", &e.event.reason);
    if let Some(s) = &e.source {
        kv(out, "src", &s.ip.to_string());
        kv(out, "spt", &s.port.to_string());
    }
    if let Some(d) = &e.destination {
        kv(out, "dst", &d.ip.to_string());
        kv(out, "dpt", &d.port.to_string());
    }
    if let Some(n) = &e.network {
        kv(out, "app", &n.protocol);
        kv(out, "proto", &n.transport.to_ascii_uppercase());
    }
    if let Some(o) = &e.observer {
        kv(out, "dvchost", &o.hostname);
        kv(out, "deviceExternalId", &o.name);
    }
    if let Some(id) = &e.event.id {
        kv(out, "externalId", id);
    }
    if let Some(seq) = e.event.sequence {
        kv(out, "cn1Label", "auditSequence");
        kv(out, "cn1", &seq.to_string());
    }
    let w = &e.wardgate;
    for (i, (label, value)) in [
        ("route", w.route.as_deref()),
        ("sourceDevice", w.source_device.as_deref()),
        ("destinationDevice", w.destination_device.as_deref()),
        ("policy", w.policy.as_deref()),
    ]
    .into_iter()
    .enumerate()
    {
        if let Some(v) = value {
            kv(out, &format!("cs{}Label", i + 1), label);
            kv(out, &format!("cs{}", i + 1), v);
        }
    }
    if let Some(c) = &w.checkpoint {
        kv(out, "cs5Label", "chainId");
        kv(out, "cs5", &c.chain_id);
        kv(out, "cs6Label", "checkpoint");
        kv(
            out,
            "cs6",
            &format!(
                "seq={} head={} signed_at={} signature={} public_key={}",
                c.seq, c.head_hash, c.signed_at, c.signature, c.public_key
            ),
        );
    }
    if let Some(x) = &w.export {
        kv(out, "cs5Label", "export");
        kv(
            out,
            "cs5",
            &format!("{} {} {}", x.name, x.transport, x.address),
        );
        kv(out, "cn2Label", "outageMs");
        kv(out, "cn2", &x.outage_ms.to_string());
        kv(out, "cn3Label", "backlog");
        kv(out, "cn3", &x.backlog.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use wardgate_event::{rules, Action, Stage};

    fn header() -> SyslogHeader {
        SyslogHeader {
            facility: 16,
            hostname: "gw-1.icu.example".into(),
            app_name: "wardgate".into(),
            procid: 4242,
        }
    }

    #[test]
    fn a_message_has_the_rfc_5424_header_and_its_octet_count() {
        let mut out = Vec::new();
        let m = MessageMeta {
            severity: 2,
            timestamp: "2026-11-26T10:15:00.123Z",
            msgid: "WG-INF-010",
        };
        write_syslog(&mut out, &header(), &m, b"{\"a\":1}", true);
        let text = String::from_utf8(out.clone()).unwrap();
        // local0 (16) * 8 + crit (2) = 130
        let msg =
            "<130>1 2026-11-26T10:15:00.123Z gw-1.icu.example wardgate 4242 WG-INF-010 - {\"a\":1}";
        assert_eq!(text, format!("{} {msg}", msg.len()));
        let (frame, used) = read_octet_counted(&out).unwrap().unwrap();
        assert_eq!((frame, used), (msg.as_bytes(), out.len()));
        let mut udp = Vec::new();
        write_syslog(&mut udp, &header(), &m, b"{\"a\":1}", false);
        assert_eq!(udp, msg.as_bytes());
    }

    #[test]
    fn header_fields_never_break_the_framing() {
        let mut h = header();
        h.hostname = "gw 1\nevil".into();
        h.app_name = String::new();
        let mut out = Vec::new();
        let m = MessageMeta {
            severity: 6,
            timestamp: "yesterday",
            msgid: "a b",
        };
        write_syslog(&mut out, &h, &m, b"x", false);
        assert_eq!(out, b"<134>1 - gw_1_evil - 4242 a_b - x");
    }

    #[test]
    fn timestamps_are_checked_as_rfc_5424_has_them() {
        for ok in [
            "2026-11-26T10:15:00Z",
            "2026-11-26T10:15:00.123Z",
            "2026-11-26T10:15:00.123456+01:00",
        ] {
            assert!(is_syslog_timestamp(ok), "{ok}");
        }
        for bad in [
            "",
            "2026-11-26 10:15:00Z",
            "2026-11-26T10:15:00.1234567Z",
            "2026-11-26T10:15:00z",
            "2026-11-26T10:15:00.Z",
            "2026-11-26T10:15:00+0100",
        ] {
            assert!(!is_syslog_timestamp(bad), "{bad}");
        }
    }

    #[test]
    fn cef_names_the_rule_and_escapes_what_it_must() {
        let mut e = Event::new(
            "2026-11-26T10:15:00.123Z".into(),
            Action::Blocked,
            "a=b | c\\d\nnext".into(),
            Stage::Message,
        )
        .with_rule(rules::RATE_HARD_LIMIT)
        .with_flow(
            "127.0.0.2:4000".parse().unwrap(),
            "127.0.0.3:2575".parse().unwrap(),
            "hl7-mllp",
        );
        e.wardgate.route = Some("pumps|icu".into());
        let mut out = Vec::new();
        write_cef(&mut out, &e);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with(&format!(
                "CEF:0|wardgate|wardgate|{}|WG-INF-010|rate-above-hard-limit|10|rt=1795688100123 act=blocked outcome=failure cat=network,intrusion_detection msg=a\\=b | c\\\\d\\nnext src=127.0.0.2 spt=4000 dst=127.0.0.3 dpt=2575 app=hl7-mllp proto=TCP",
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
        assert!(text.ends_with("cs1Label=route cs1=pumps|icu"), "{text}");
        let mut h = Vec::new();
        push_cef_header(&mut h, "a|b\\c\nd");
        assert_eq!(h, b"a\\|b\\\\c d");
    }

    /// A CEF extension value read back as a CEF parser reads it.
    fn unescape_value(v: &[u8]) -> String {
        let mut out = String::new();
        let mut it = std::str::from_utf8(v).unwrap().chars();
        while let Some(c) = it.next() {
            if c == '\\' {
                match it.next() {
                    Some('n') => out.push('\n'),
                    Some('r') => out.push('\r'),
                    Some(x) => out.push(x),
                    None => out.push('\\'),
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    proptest! {
        #[test]
        fn octet_counted_frames_read_back_whole_and_in_order(
            msgs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..8),
            split in 0usize..4000,
        ) {
            let mut stream = Vec::new();
            for m in &msgs {
                write_syslog(&mut stream, &header(), &MessageMeta { severity: 6, timestamp: "-", msgid: "x" }, m, true);
            }
            // Read as a collector would, from a stream cut anywhere.
            let cut = split % (stream.len() + 1);
            let mut got = Vec::new();
            let mut buf = stream[..cut].to_vec();
            let mut fed = false;
            loop {
                match read_octet_counted(&buf).unwrap() {
                    Some((frame, used)) => {
                        let body = frame.splitn(8, |&b| b == b' ').nth(7).unwrap().to_vec();
                        got.push(body);
                        buf.drain(..used);
                    }
                    None if !fed => { buf.extend_from_slice(&stream[cut..]); fed = true; }
                    None => break,
                }
            }
            prop_assert!(buf.is_empty());
            prop_assert_eq!(got.len(), msgs.len());
            for (g, m) in got.iter().zip(&msgs) {
                prop_assert_eq!(g, m);
            }
        }

        #[test]
        fn reading_any_bytes_as_a_frame_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = read_octet_counted(&buf);
        }

        #[test]
        fn cef_values_read_back_as_written(s in "\\PC*") {
            let mut out = Vec::new();
            push_cef_value(&mut out, &s);
            // No unescaped `=` and no raw line break: the extension stays one key=value.
            prop_assert!(!out.contains(&b'\n') && !out.contains(&b'\r'));
            let mut prev_backslashes = 0usize;
            for &b in &out {
                if b == b'=' { prop_assert!(prev_backslashes % 2 == 1); }
                prev_backslashes = if b == b'\\' { prev_backslashes + 1 } else { 0 };
            }
            prop_assert_eq!(unescape_value(&out), s);
        }

        #[test]
        fn header_fields_are_printable_ascii(s in "\\PC*", max in 1usize..60) {
            let mut out = Vec::new();
            push_header_field(&mut out, &s, max);
            prop_assert!(!out.is_empty() && out.len() <= max.max(1));
            prop_assert!(out.iter().all(|b| (33..=126).contains(b)));
        }
    }
}
