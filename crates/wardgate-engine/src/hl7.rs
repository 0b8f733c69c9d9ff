//! HL7 v2 inspection: one MLLP frame in, one verdict out, with the event that
//! records it and, when wardgate answers for the upstream, the framed NAK.
//!
//! The order a frame meets: parse (malformed → AE, close) → message type allowed
//! on the route (else AR) → infusion orders checked against the drug library
//! (hard limit, unknown drug or unit → AR; soft limit → forward with alert) →
//! allow. Shared by the inline proxy and the passive analyser: neither does any
//! of this itself.

use crate::event::bounded;
use crate::event::{Action, Event, Finding, Hl7Facts, Record, Stage};
use crate::infusion::{self, OrderFinding};
use crate::policy::RoutePolicy;
use crate::rules::{self, Rule};
use crate::{Clock, Flow};
use wardgate_event::compact::{self, RoutineFlow, RoutineHl7};
use wardgate_proto::anomaly::Anomaly;
use wardgate_proto::hl7::ack::{self, AckCode, AckParams};
use wardgate_proto::hl7::{self, Delimiters, Message};
use wardgate_proto::mllp::{self, MllpError};

/// What to do with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Forward unchanged.
    Allow,
    /// Forward unchanged and raise an alert.
    Alert,
    /// Do not forward; answer the sender with the NAK.
    Block,
}

/// The outcome of inspecting one frame.
#[derive(Debug)]
pub struct Outcome {
    /// Forward or not.
    pub verdict: Verdict,
    /// The record of the decision.
    pub record: Record,
    /// A framed acknowledgement to send to the sender instead of forwarding.
    pub reply: Option<Vec<u8>>,
    /// Close the connection after replying (the stream can no longer be trusted).
    pub close: bool,
    /// What to forward instead of the frame (a framed message a privacy
    /// profile transformed); `None`: the frame byte for byte.
    pub forward: Option<Vec<u8>>,
}

/// Inspects one MLLP frame (`frame` is the whole frame, framing bytes included).
pub fn inspect(route: &RoutePolicy, flow: &Flow, frame: &[u8], clock: &Clock) -> Outcome {
    let o = as_sent(inspect_frame(route, flow, frame, clock));
    scrubbed(route, frame, o)
}

/// Where records name patients by pseudonym (the default), the text a
/// record quotes from the message (a refusal's reason, an order's values as
/// written) carries none of the words of its patient segments: they become
/// `[removed]`. The sender's answer keeps its own text. Only events with
/// findings are looked at: a routine record quotes nothing.
fn scrubbed(route: &RoutePolicy, frame: &[u8], mut o: Outcome) -> Outcome {
    if route.site.patients.raw() {
        return o;
    }
    // An event without findings quotes nothing the sender wrote but values
    // wardgate read and checked (an allowed order's rate as written).
    let Record::Event(e) = &mut o.record else {
        return o;
    };
    if e.wardgate.findings.is_empty() {
        return o;
    }
    let payload = frame
        .get(1..frame.len().saturating_sub(2))
        .unwrap_or_default();
    let limits = hl7::Limits {
        max_segments: route.max_segments,
    };
    let Ok(msg) = Message::parse(payload, &limits) else {
        return o;
    };
    let found = wardgate_privacy::hl7::patient_words(&msg);
    // On a route that de-identifies HL7, or where the list of words is not
    // whole, nothing quoted from the message is kept: a name written only in
    // free text (no PID), or past the list's bound, is no word of it.
    let quotes = !found.complete || route.privacy.as_ref().is_some_and(|p| p.hl7.is_some());
    if found.words.is_empty() && !quotes {
        return o;
    }
    let scrub = |t: &mut String| {
        let q = if quotes { unquoted(t) } else { None };
        let base = q.as_deref().unwrap_or(t.as_str());
        match (scrub_text(base, &found.words), q) {
            (Some(clean), _) | (None, Some(clean)) => *t = clean,
            (None, None) => {}
        }
    };
    scrub(&mut e.event.reason);
    for f in &mut e.wardgate.findings {
        scrub(&mut f.detail);
    }
    for i in &mut e.wardgate.infusion {
        scrub(&mut i.drug);
        for t in [
            &mut i.rate_ordered,
            &mut i.dose_ordered,
            &mut i.vtbi_ordered,
            &mut i.duration_ordered,
            &mut i.concentration,
            &mut i.library_drug,
        ]
        .into_iter()
        .flatten()
        {
            scrub(t);
        }
    }
    o
}

/// `text` with every double-quoted part (a value quoted from the message,
/// as `{:?}` writes it) replaced by `"[removed]"`; `None` when it has none.
fn unquoted(text: &str) -> Option<String> {
    if !text.contains('"') {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c != '"' {
            continue;
        }
        // Inside a quote: skip to its closing mark (a backslash escapes).
        let mut escaped = false;
        for q in chars.by_ref() {
            if escaped {
                escaped = false;
            } else if q == '\\' {
                escaped = true;
            } else if q == '"' {
                break;
            }
        }
        out.push_str("[removed]\"");
    }
    Some(out)
}

#[cfg(test)]
pub(crate) fn scrub_text_for_tests(text: &str, words: &[String]) -> Option<String> {
    scrub_text(text, words)
}

/// `text` with every word ([`wardgate_privacy::hl7::words_of`]) whose
/// [`wardgate_privacy::hl7::word_key`] is one of `words` replaced by
/// `[removed]`, and a last word cut by the record's length bound (`…`) that
/// begins one of them; `None` when none is.
fn scrub_text(text: &str, words: &[String]) -> Option<String> {
    use wardgate_privacy::hl7::word_key;
    let mut out = String::new();
    let mut last = 0;
    let mut changed = false;
    let mut start = None;
    for (i, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        if c.is_alphanumeric() && i < text.len() {
            start.get_or_insert(i);
            continue;
        }
        if let Some(s) = start.take() {
            let k = word_key(&text[s..i]);
            // Cut by a length bound (`bounded` ends a value with `…`).
            let cut = text[i..].starts_with('…');
            if words.iter().any(|w| *w == k || (cut && w.starts_with(&k))) {
                out.push_str(&text[last..s]);
                out.push_str("[removed]");
                last = i;
                changed = true;
            }
        }
    }
    changed.then(|| {
        out.push_str(&text[last..]);
        out
    })
}

/// The record names the acknowledgement code the sender is sent (an enhanced
/// mode sender's refusal is CR, not the AR the decision began with).
fn as_sent(mut o: Outcome) -> Outcome {
    let code = o.reply.as_deref().and_then(|r| {
        let at = memchr::memmem::find(r, b"\rMSA")? + 4;
        r.get(at + 1..at + 3)
    });
    if let (Some(code), Record::Event(e)) = (code, &mut o.record) {
        if let Some(h) = &mut e.wardgate.hl7 {
            if !h.ack_code.is_empty() && h.ack_code.as_bytes() != code {
                h.ack_code = String::from_utf8_lossy(code).into_owned();
            }
        }
    }
    o
}

fn inspect_frame(route: &RoutePolicy, flow: &Flow, frame: &[u8], clock: &Clock) -> Outcome {
    let payload = frame
        .get(1..frame.len().saturating_sub(2))
        .unwrap_or_default();
    let limits = hl7::Limits {
        max_segments: route.max_segments,
    };
    let msg = match Message::parse(payload, &limits) {
        Ok(m) => m,
        Err(e) => {
            let control_id = naive_control_id(payload);
            let text = format!("malformed HL7 message: {e}");
            let reply = wardgate_ack(
                None,
                control_id.as_bytes(),
                clock,
                AckCode::AE,
                &text,
                e.rule(),
                (102, "Data type error"),
            );
            let mut event = flow.event(clock, route, Action::Blocked, text.clone(), Stage::Message);
            event.wardgate.bytes = Some(frame.len() as u64);
            add_rule(&mut event, e.rule(), text);
            event.wardgate.hl7 = Some(Hl7Facts {
                control_id: control_id.clone(),
                ack_code: "AE".into(),
                ..Default::default()
            });
            // A message that does not parse leaves the stream's framing intact, so
            // monitor mode can forward it (and records that it would not have).
            // Not on a privacy route: what cannot be read cannot be transformed
            // or checked for consent, and is never forwarded as it came.
            if route.privacy.is_some() {
                return Outcome {
                    verdict: Verdict::Block,
                    record: event.into(),
                    reply: Some(reply),
                    close: true,
                    forward: None,
                };
            }
            return monitored(
                route,
                Outcome {
                    verdict: Verdict::Block,
                    record: event.into(),
                    reply: Some(reply),
                    close: !route.monitor,
                    forward: None,
                },
            );
        }
    };
    let mt = msg.message_type();
    let type_allowed = route
        .messages
        .iter()
        .any(|m| m.matches(mt.code, mt.trigger));
    let is_order = is_order(route, &msg);
    if type_allowed && !is_order {
        if route.privacy.is_some() {
            let o = Outcome {
                verdict: Verdict::Allow,
                record: allowed_event(route, flow, &msg, frame.len(), clock).into(),
                reply: None,
                close: false,
                forward: None,
            };
            return crate::privacy::apply_hl7(route, flow, &msg, frame, clock, o);
        }
        // The common case: nothing to report. No `Event` is built.
        return Outcome {
            verdict: Verdict::Allow,
            record: Record::Routine(routine_json(route, flow, &msg, frame.len(), clock)),
            reply: None,
            close: false,
            forward: None,
        };
    }
    let mut event = flow.event(clock, route, Action::Allowed, String::new(), Stage::Message);
    event.wardgate.bytes = Some(frame.len() as u64);
    let mut facts = facts_of(&msg);

    if !type_allowed {
        let text = format!(
            "message type {} is not allowed on route {}",
            facts.message_type, &*route.id
        );
        let rule = rules::MESSAGE_TYPE_NOT_ALLOWED;
        let reply = nak(
            &msg,
            clock,
            &Refusal {
                text: &text,
                rule,
                location: Some("MSH^1^9"),
                error: (200, "Unsupported message type"),
            },
        );
        facts.ack_code = "AR".into();
        event.wardgate.hl7 = Some(facts);
        event.event.action = Action::Blocked;
        event.event.reason = text.clone();
        add_rule(&mut event, rule, text);
        let o = monitored(
            route,
            Outcome {
                verdict: Verdict::Block,
                record: event.into(),
                reply: Some(reply),
                close: false,
                forward: None,
            },
        );
        // Monitor mode forwards it: transformed, on a privacy route.
        return crate::privacy::apply_hl7(route, flow, &msg, frame, clock, o);
    }

    let mut check = infusion::check(
        &msg,
        route.library.as_deref(),
        route.care_area,
        route.time_zone.as_ref(),
    );
    // Records name the patient as the site chose (a keyed pseudonym by
    // default), from the identifier a privacy profile reads, so the event's
    // pseudonym is the one a pseudonymising route forwards.
    let patient = wardgate_privacy::hl7::patient_ids_parsed(&msg)
        .ok()
        .and_then(|ids| ids.into_iter().next())
        .and_then(|p| route.patient_name(&p.id));
    for i in &mut check.infusions {
        i.patient_id = i.patient_id.take().and(patient.clone());
    }
    event.wardgate.infusion = check.infusions;
    // The event's rule is the headline finding (the most severe; see
    // `OrderFinding::in_headline_order`), and the answer and the reason name
    // that same finding (the record says what the refusal said); every
    // finding is listed.
    let mut sorted = check.findings;
    OrderFinding::in_headline_order(&mut sorted);
    let blocking: Vec<&OrderFinding> = sorted.iter().filter(|f| f.blocks()).collect();
    let (verdict, reason) = if let Some(first) = blocking.first() {
        (
            Verdict::Block,
            format!("infusion order blocked: {}", first.detail),
        )
    } else if let Some(first) = sorted.first() {
        (
            Verdict::Alert,
            format!("infusion order forwarded with alert: {}", first.detail),
        )
    } else {
        (
            Verdict::Allow,
            format!(
                "infusion order within limits, allowed on route {}",
                &*route.id
            ),
        )
    };
    for f in &sorted {
        add_rule(&mut event, f.rule, f.detail.clone());
    }
    event.event.reason = reason.clone();
    let reply = match verdict {
        Verdict::Allow => None,
        Verdict::Alert => {
            event.event.action = Action::Alerted;
            None
        }
        Verdict::Block => {
            facts.ack_code = "AR".into();
            event.event.action = Action::Blocked;
            let first = blocking[0];
            let location = first.location.map(|l| l.to_string());
            Some(nak(
                &msg,
                clock,
                &Refusal {
                    text: &reason,
                    rule: first.rule,
                    location: location.as_deref(),
                    error: error_condition(first.rule),
                },
            ))
        }
    };
    event.wardgate.hl7 = Some(facts);
    let o = monitored(
        route,
        Outcome {
            verdict,
            record: event.into(),
            reply,
            close: false,
            forward: None,
        },
    );
    crate::privacy::apply_hl7(route, flow, &msg, frame, clock, o)
}

/// Whether a message is an infusion order, judged against the drug library:
/// an RGV, any message with RXG, and on a route that programs pumps a pharmacy
/// order (RXE, RXO), dispense (RXD) or administration (RXA) too (wardgate reads
/// the programme from RXG, IHE PCD-03, only, so one without it is refused
/// rather than passed unread).
fn is_order(route: &RoutePolicy, msg: &Message<'_>) -> bool {
    msg.message_type().code == b"RGV"
        || msg.segments_named(b"RXG").next().is_some()
        || (route.library.is_some()
            && msg
                .segments()
                .any(|s| matches!(s.id(), b"RXE" | b"RXO" | b"RXD" | b"RXA")))
}

/// What the policy in force would refuse in a message taken earlier (a
/// store-and-forward queue's, judged again before delivery): the message type
/// on the route, and an order's programme against the drug library. Without
/// side effects (no record, no privacy transform of a message already
/// transformed); `None` when it passes, or when the route is in monitor mode.
pub fn refused_now(route: &RoutePolicy, frame: &[u8]) -> Option<(Rule, String)> {
    if route.monitor {
        return None;
    }
    let payload = frame
        .get(1..frame.len().saturating_sub(2))
        .unwrap_or_default();
    let limits = hl7::Limits {
        max_segments: route.max_segments,
    };
    let msg = match Message::parse(payload, &limits) {
        Ok(m) => m,
        Err(e) => return Some((e.rule(), format!("malformed HL7 message: {e}"))),
    };
    let mt = msg.message_type();
    if !route
        .messages
        .iter()
        .any(|m| m.matches(mt.code, mt.trigger))
    {
        return Some((
            rules::MESSAGE_TYPE_NOT_ALLOWED,
            format!(
                "message type {} is not allowed on route {}",
                facts_of(&msg).message_type,
                &*route.id
            ),
        ));
    }
    if !is_order(route, &msg) {
        return None;
    }
    let check = infusion::check(
        &msg,
        route.library.as_deref(),
        route.care_area,
        route.time_zone.as_ref(),
    );
    // The headline blocking finding, as `judge_order`'s answer names it.
    let mut findings = check.findings;
    OrderFinding::in_headline_order(&mut findings);
    findings
        .first()
        .filter(|f| f.blocks())
        .map(|f| (f.rule, format!("infusion order blocked: {}", f.detail)))
}

/// `enforcement = "monitor"`: a block becomes an alert (`would-block`, the same
/// rule), forwarded, with no reply. Framing errors are not turned: without
/// trustworthy boundaries there is nothing to forward.
fn monitored(route: &RoutePolicy, mut o: Outcome) -> Outcome {
    if !route.monitor || o.verdict != Verdict::Block || o.close {
        return o;
    }
    if let Record::Event(e) = &mut o.record {
        e.event.action = Action::WouldBlock;
        e.event.reason = format!("would have been blocked (monitor mode): {}", e.event.reason);
        if let Some(h) = &mut e.wardgate.hl7 {
            h.ack_code.clear();
        }
    }
    o.verdict = Verdict::Alert;
    o.reply = None;
    o
}

/// HL7 table 0357 error condition (ERR-3) that fits a refusal: a missing field,
/// a value not in a table, a value of the wrong form, a segment out of place;
/// limits and conflicts between fields have no code of their own, so they are
/// 207 "Application error" with the rule in ERR-5 (HL7 THO's guidance for 207).
fn error_condition(rule: Rule) -> (u16, &'static str) {
    const MISSING: (u16, &str) = (101, "Required field missing");
    const TABLE: (u16, &str) = (103, "Table value not found");
    const FORM: (u16, &str) = (102, "Data type error");
    const SEQUENCE: (u16, &str) = (100, "Segment sequence error");
    match rule {
        r if r == rules::UNKNOWN_DRUG || r == rules::UNIT_UNKNOWN => TABLE,
        r if r == rules::ORDER_WITHOUT_GIVE || r == rules::AMBIGUOUS_TIMING => SEQUENCE,
        r if r == rules::CONCENTRATION_REQUIRED
            || r == rules::WEIGHT_REQUIRED
            || r == rules::INCOMPLETE_ORDER =>
        {
            MISSING
        }
        r if r == rules::INVALID_NUMBER
            || r == rules::ESCAPED_VALUE
            || r == rules::REPEATED_FIELD
            || r == rules::UNIT_AMBIGUOUS
            || r == rules::UNIT_INCOMPATIBLE
            || r == rules::CODED_PARTS_DISAGREE
            || r == rules::PATIENT_SIZE_INVALID =>
        {
            FORM
        }
        _ => (207, "Application error"),
    }
}

/// What a NAK wardgate writes says: MSA-3 a short summary naming the rule,
/// ERR-2 where, ERR-3 the HL7 condition, ERR-5 the rule, ERR-8 the whole reason.
struct Refusal<'r> {
    text: &'r str,
    rule: Rule,
    location: Option<&'r str>,
    error: (u16, &'static str),
}

/// The HL7 facts an event records about a parsed message.
pub(crate) fn facts_of(msg: &Message<'_>) -> Hl7Facts {
    let mt = msg.message_type();
    Hl7Facts {
        message_type: bounded(&format!("{}^{}", lossy(mt.code), lossy(mt.trigger))),
        control_id: bounded(&control_id_text(msg)),
        sending_application: bounded(&msg.sending_application().component(1).text()),
        sending_facility: bounded(&msg.sending_facility().component(1).text()),
        version: bounded(&msg.version().component(1).text()),
        software: bounded(&msg.software()),
        ack_code: String::new(),
    }
}

/// The JSON line of a routine `allowed` decision, written straight into one
/// buffer without building an `Event`.
///
/// On a proxy connection (the flow has a connection id) it is the compact form of
/// [`wardgate_event::compact`]: the time, the connection id, the HL7 facts and the size;
/// readers take the rest from the connection's earlier event. Otherwise (passive
/// analysis) it is the full line: byte-for-byte the serialisation of the `Event`
/// that [`Flow::event`] and [`facts_of`] would build. Tests hold both forms to
/// that `Event`.
fn routine_json(
    route: &RoutePolicy,
    flow: &Flow,
    msg: &Message<'_>,
    bytes: usize,
    clock: &Clock,
) -> Vec<u8> {
    let mt = msg.message_type();
    let d = msg.delimiters();
    let (code, trigger) = (lossy(mt.code), lossy(mt.trigger));
    let control_id = to_text(hl7::unescape(msg.control_id(), &d));
    let (app, facility, version) = (
        msg.sending_application().component(1).text(),
        msg.sending_facility().component(1).text(),
        msg.version().component(1).text(),
    );
    let software = msg.software();
    let facts = RoutineHl7 {
        message_type: (&code, &trigger),
        control_id: &control_id,
        sending_application: &app,
        sending_facility: &facility,
        version: &version,
        software: &software,
    };
    match flow.connection_id {
        Some(id) => {
            // A routine line is about 350 bytes: one allocation, no regrowth.
            let mut out = Vec::with_capacity(512);
            let at = RoutineFlow::Connection(id);
            compact::write_routine(&mut out, clock.rfc3339(), at, &facts, bytes);
            out
        }
        None => flow.with_routine_fragment(route, |fragment| {
            let mut out = Vec::with_capacity(640);
            let at = RoutineFlow::Full {
                route: &route.id,
                fragment,
            };
            compact::write_routine(&mut out, clock.rfc3339(), at, &facts, bytes);
            out
        }),
    }
}

fn to_text(b: std::borrow::Cow<'_, [u8]>) -> std::borrow::Cow<'_, str> {
    match b {
        std::borrow::Cow::Borrowed(b) => String::from_utf8_lossy(b),
        std::borrow::Cow::Owned(v) => {
            std::borrow::Cow::Owned(String::from_utf8_lossy(&v).into_owned())
        }
    }
}

/// The outcome of a framing error on the sender's stream: an AE NAK (no control id
/// can be known) and the connection is closed.
pub fn framing_error(route: &RoutePolicy, flow: &Flow, err: &MllpError, clock: &Clock) -> Outcome {
    let text = format!("MLLP framing error: {err}");
    let mut event = flow.event(clock, route, Action::Blocked, text.clone(), Stage::Message);
    add_rule(&mut event, err.rule(), text.clone());
    let reply = wardgate_ack(
        None,
        b"",
        clock,
        AckCode::AE,
        &text,
        err.rule(),
        (100, "Segment sequence error"),
    );
    event.wardgate.hl7 = Some(Hl7Facts {
        ack_code: "AE".into(),
        ..Default::default()
    });
    Outcome {
        verdict: Verdict::Block,
        record: event.into(),
        reply: Some(reply),
        close: true,
        forward: None,
    }
}

/// An AE NAK for a message wardgate could not deliver (upstream down), so the
/// sender knows to retry.
pub fn unavailable(
    route: &RoutePolicy,
    flow: &Flow,
    frame: &[u8],
    clock: &Clock,
    why: &str,
) -> Outcome {
    let text = format!("upstream unavailable: {why}");
    let o = answered(
        route,
        flow,
        frame,
        clock,
        Action::Failed,
        rules::UPSTREAM_UNAVAILABLE,
        AckCode::AE,
        &text,
    );
    as_sent(Outcome { close: false, ..o })
}

/// wardgate's AE for a message forwarded upstream that got no answer before
/// the connection closed (`rule` says why: an idle timeout, the shutdown
/// grace, the upstream closing or breaking its protocol). Whether the pump
/// server accepted it is unknown: the sender is told so in the message's
/// place, rather than left to send it again blindly (found by an
/// adversarial review: a late AA was lost and the connection just closed).
/// Built as an answer to `header` (the MSH of a message the sender sent on
/// the connection) with MSH-10 `control_id` as the sender wrote it: its
/// delimiters, character set and acknowledgement mode (CE to an enhanced-mode
/// sender), MSA-2 echoing the id byte for byte (a second review: rebuilt in
/// the default delimiters, `C2\T\X` came back re-escaped). Without such a
/// header, in the default delimiters.
pub(crate) fn unconfirmed_ack(
    header: &[u8],
    control_id: &[u8],
    clock: &Clock,
    rule: Rule,
) -> Vec<u8> {
    const TEXT: &str = "No upstream answer in time: check the pump before resending";
    let error = (207, "Application internal error");
    // The header with MSH-10 set to this message's control id.
    let msh = header
        .get(3)
        .copied()
        .filter(|_| header.starts_with(b"MSH"))
        .map(|f| {
            let mut m = Vec::with_capacity(header.len() + control_id.len() + 8);
            for (i, part) in header.split(|&b| b == f).enumerate() {
                if i > 0 {
                    m.push(f);
                }
                m.extend_from_slice(if i == 9 { control_id } else { part });
            }
            m.push(b'\r');
            m
        });
    let parsed = msh
        .as_deref()
        .and_then(|m| Message::parse(m, &hl7::Limits::default()).ok())
        .filter(|m| m.control_id() == control_id);
    match parsed {
        Some(m) => wardgate_ack(Some(&m), b"", clock, AckCode::AE, TEXT, rule, error),
        None => wardgate_ack(None, control_id, clock, AckCode::AE, TEXT, rule, error),
    }
}

/// The frame's sender is no longer allowed on the route (a reload removed it):
/// answered AR, recorded with its control id; the connection then closes.
pub fn sender_removed(route: &RoutePolicy, flow: &Flow, frame: &[u8], clock: &Clock) -> Outcome {
    let text = format!(
        "sender no longer allowed: the policy now in force ({}) does not allow this device on route {}; the connection closes",
        route.policy_hash, &*route.id
    );
    let o = answered(
        route,
        flow,
        frame,
        clock,
        Action::Blocked,
        rules::SENDER_NOT_ALLOWED,
        AckCode::AR,
        &text,
    );
    as_sent(Outcome { close: true, ..o })
}

/// A frame wardgate answers itself (`code`, `text`) without judging it further,
/// recorded as `action` under `rule` with its control id and type.
#[allow(clippy::too_many_arguments)]
fn answered(
    route: &RoutePolicy,
    flow: &Flow,
    frame: &[u8],
    clock: &Clock,
    action: Action,
    rule: Rule,
    code: AckCode,
    text: &str,
) -> Outcome {
    let payload = frame
        .get(1..frame.len().saturating_sub(2))
        .unwrap_or_default();
    let text = text.to_owned();
    let mut event = flow.event(clock, route, action, text.clone(), Stage::Message);
    add_rule(&mut event, rule, text.clone());
    let limits = hl7::Limits {
        max_segments: route.max_segments,
    };
    let mut facts = Hl7Facts {
        ack_code: code.as_str().into(),
        ..Default::default()
    };
    let parsed = Message::parse(payload, &limits).ok();
    if let Some(m) = &parsed {
        facts.control_id = bounded(&control_id_text(m));
        let mt = m.message_type();
        facts.message_type = bounded(&format!("{}^{}", lossy(mt.code), lossy(mt.trigger)));
    }
    let error = if rule == rules::UPSTREAM_UNAVAILABLE {
        (207, "Application internal error")
    } else {
        error_condition(rule)
    };
    let reply = wardgate_ack(parsed.as_ref(), b"", clock, code, &text, rule, error);
    event.wardgate.hl7 = Some(facts);
    Outcome {
        verdict: Verdict::Block,
        record: event.into(),
        reply: Some(reply),
        close: false,
        forward: None,
    }
}

/// The sender's acknowledgement on a store-and-forward route: `code` AA once the
/// message is durable, AE when wardgate could not take it (queue full, disk
/// error), so the sender keeps it and retries. To a sender asking for enhanced
/// mode (MSH-15 set) it is the commit acknowledgement CA, CE or CR: storing is
/// a commit, and the receiving application has not answered yet (an AA would
/// say it had).
pub fn stored_ack(frame: &[u8], clock: &Clock, code: AckCode, text: &str) -> Vec<u8> {
    let payload = frame
        .get(1..frame.len().saturating_sub(2))
        .unwrap_or_default();
    let code = if msh_field(payload, 14, 8).trim().is_empty() {
        code
    } else {
        match code {
            AckCode::AA => AckCode::CA,
            AckCode::AE => AckCode::CE,
            AckCode::AR => AckCode::CR,
            other => other,
        }
    };
    let limits = hl7::Limits::default();
    let parsed = Message::parse(payload, &limits).ok();
    let error = match code {
        AckCode::AA | AckCode::CA => None,
        _ => Some((207, "Application internal error")),
    };
    let control_id = clock.ack_control_id();
    let params = AckParams {
        summary: None,
        location: None,
        application_code: None,
        code,
        text,
        error_code: error,
        control_id: &control_id,
        timestamp: clock.hl7(),
        sending_application: "WARDGATE",
    };
    framed_ack(
        parsed.as_ref(),
        naive_control_id(payload).as_bytes(),
        &params,
    )
}

/// Whether a framed message is owed an answer whatever happens: not an
/// acknowledgement (never acknowledged), and in original mode, or in enhanced
/// mode with AL in MSH-15 or MSH-16 (ER and SU answer only on failure or
/// success, NE never).
pub fn answer_owed(frame: &[u8]) -> bool {
    let payload = frame
        .get(1..frame.len().saturating_sub(2))
        .unwrap_or_default();
    let ty = msh_field(payload, 8, 64);
    if ty.split(|c: char| !c.is_ascii_alphanumeric()).next() == Some("ACK") {
        return false;
    }
    let accept = msh_field(payload, 14, 8);
    let app = msh_field(payload, 15, 8);
    let (accept, app) = (accept.trim(), app.trim());
    (accept.is_empty() && app.is_empty()) || accept == "AL" || app == "AL"
}

/// Whether a framed message asks for the receiving application's answer
/// always (MSH-16 `AL`, enhanced mode): a commit accept (CA) from the upstream
/// is then not the end of its delivery.
pub fn wants_application_ack(frame: &[u8]) -> bool {
    let payload = frame
        .get(1..frame.len().saturating_sub(2))
        .unwrap_or_default();
    msh_field(payload, 15, 8).trim() == "AL"
}

/// MSH-10 of a framed message, as written, as the dedup key: not shortened (two
/// ids sharing a prefix must not collide) beyond a bound far above HL7's 199
/// characters, and without a parse.
pub fn frame_control_id(frame: &[u8]) -> String {
    let payload = frame
        .get(1..frame.len().saturating_sub(2))
        .unwrap_or_default();
    msh_field(payload, 9, ID_MAX)
}

/// An upstream acknowledgement, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamAck {
    /// MSA-1 (`AA`, `AE`, `AR`, `CA`, `CE`, `CR`), as written.
    pub code: String,
    /// MSA-2: the control id acknowledged, unescaped and shortened for a
    /// record.
    pub control_id: String,
    /// MSA-2 as [`frame_control_id`] reads MSH-10 (as written, up to 1024
    /// characters): what an answer is matched to its message by. The
    /// shortened, unescaped `control_id` missed ids over 128 characters or
    /// with escapes, and the queue sent such a message again and again
    /// (found by an adversarial review).
    pub names: String,
    /// The first ERR's codes (ERR-3 error code, ERR-4 severity, ERR-5
    /// application error code), for the record. Not MSA-3 or ERR-8: a
    /// receiver's free text ("unknown patient MRN4711 Jane Doe") would copy
    /// patient identity into wardgate's records and queue journal.
    pub text: String,
}

impl UpstreamAck {
    /// Accepted: AA or CA.
    pub fn accepted(&self) -> bool {
        matches!(self.code.as_str(), "AA" | "CA")
    }
    /// A transient error worth retrying: AE or CE.
    pub fn transient(&self) -> bool {
        matches!(self.code.as_str(), "AE" | "CE")
    }
}

/// Reads MSA from an upstream's framed acknowledgement; `None` when it is not one.
pub fn read_ack(frame: &[u8]) -> Option<UpstreamAck> {
    let payload = frame.get(1..frame.len().saturating_sub(2))?;
    let msg = Message::parse(payload, &hl7::Limits::default()).ok()?;
    let d = msg.delimiters();
    let msa = msg.segments_named(b"MSA").next()?;
    let text = |f: &[u8]| bounded(&to_text(hl7::unescape(f, &d)));
    let code = text(msa.field(1).raw()).trim().to_ascii_uppercase();
    if code.is_empty() {
        return None;
    }
    let mut t = String::new();
    if let Some(err) = msg.segments_named(b"ERR").next() {
        // Codes only, each one token (a code, not a sentence).
        for (n, what) in [(3usize, "error"), (4, "severity"), (5, "application error")] {
            let code = text(err.field(n).component(1).raw());
            let code = code.trim();
            let token = !code.is_empty()
                && code.len() <= 20
                && code
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if token {
                if !t.is_empty() {
                    t.push_str(", ");
                }
                t.push_str(&format!("{what} {code}"));
            }
        }
    }
    Some(UpstreamAck {
        code,
        control_id: text(msa.field(2).raw()),
        names: id_text(msa.field(2).raw(), ID_MAX),
        text: t,
    })
}

/// MSA-3, what an EHR shows a nurse, under 80 characters: the reason itself
/// when it fits, else the rule in words; always the rule id.
fn refusal_summary(text: &str, rule: Rule, d: Option<&Delimiters>) -> String {
    let whole = format!("{text} ({})", rule.id);
    // Measured as written in the sender's delimiters (the default ones for a
    // message that did not parse): escaping lengthens it.
    let d = d.copied().unwrap_or_default();
    if whole
        .chars()
        .map(|c| hl7::escaped_width(c, &d))
        .sum::<usize>()
        <= 80
    {
        whole
    } else {
        format!(
            "Refused by wardgate: {} {}",
            rule.id,
            rule.name.replace('-', " ")
        )
    }
}

fn nak(msg: &Message<'_>, clock: &Clock, r: &Refusal<'_>) -> Vec<u8> {
    let summary = refusal_summary(r.text, r.rule, Some(&msg.delimiters()));
    let control_id = clock.ack_control_id();
    framed_ack(
        Some(msg),
        b"",
        &AckParams {
            summary: Some(&summary),
            location: r.location,
            application_code: Some((r.rule.id, r.rule.name)),
            code: AckCode::AR,
            text: r.text,
            error_code: Some(r.error),
            control_id: &control_id,
            timestamp: clock.hl7(),
            sending_application: "WARDGATE",
        },
    )
}

/// The acknowledgement of a privacy decision, in the sender's delimiters: AA
/// for a message withheld because its patient opted out (the sender must not
/// retry), AR with ERR 207 for one that could not be de-identified. MSA-3
/// never names the patient.
pub(crate) fn privacy_ack(msg: &Message<'_>, clock: &Clock, code: AckCode, rule: Rule) -> Vec<u8> {
    let control_id = clock.ack_control_id();
    let summary = if code == AckCode::AA {
        format!(
            "Accepted, not forwarded: the patient opted out ({})",
            rule.id
        )
    } else {
        format!("Refused: could not be de-identified ({})", rule.id)
    };
    framed_ack(
        Some(msg),
        b"",
        &AckParams {
            summary: Some(&summary),
            location: None,
            application_code: Some((rule.id, rule.name)),
            code,
            text: &summary,
            error_code: (code != AckCode::AA).then_some((207, "Application internal error")),
            control_id: &control_id,
            timestamp: clock.hl7(),
            sending_application: "WARDGATE",
        },
    )
}

/// The `allowed` event of a message the routine path would record compactly:
/// what a privacy step needs to add its facts to.
pub(crate) fn allowed_event(
    route: &RoutePolicy,
    flow: &Flow,
    msg: &Message<'_>,
    bytes: usize,
    clock: &Clock,
) -> Event {
    let facts = facts_of(msg);
    let reason = format!("{} allowed on route {}", facts.message_type, &*route.id);
    let mut event = flow.event(clock, route, Action::Allowed, reason, Stage::Message);
    event.wardgate.bytes = Some(bytes as u64);
    event.wardgate.hl7 = Some(facts);
    event
}

/// A framed acknowledgement wardgate writes itself: in the original's delimiters
/// when it parsed, else with defaults naming `unparsed_control_id`.
/// An answer wardgate gives itself (a message or a stream it could not read,
/// an upstream it could not reach): MSA-3 and ERR-5 name `rule`, as a
/// refusal's do.
fn wardgate_ack(
    original: Option<&Message<'_>>,
    unparsed_control_id: &[u8],
    clock: &Clock,
    code: AckCode,
    text: &str,
    rule: Rule,
    error: (u16, &str),
) -> Vec<u8> {
    let control_id = clock.ack_control_id();
    let summary = refusal_summary(text, rule, original.map(|m| m.delimiters()).as_ref());
    framed_ack(
        original,
        unparsed_control_id,
        &AckParams {
            summary: Some(&summary),
            location: None,
            application_code: Some((rule.id, rule.name)),
            code,
            text,
            error_code: Some(error),
            control_id: &control_id,
            timestamp: clock.hl7(),
            sending_application: "WARDGATE",
        },
    )
}

/// An acknowledgement built with `params` and framed as MLLP: in the original's
/// delimiters when it parsed, else with defaults naming `unparsed_control_id`.
fn framed_ack(
    original: Option<&Message<'_>>,
    unparsed_control_id: &[u8],
    params: &AckParams<'_>,
) -> Vec<u8> {
    let mut reply = Vec::with_capacity(384);
    match original {
        Some(m) => {
            // Enhanced mode (HL7 v2.5.1 2.9.3): a sender asking for accept
            // acknowledgements on error (MSH-15 AL or ER) is told at the commit
            // level that the message was not taken (CR, CE), as the
            // store-and-forward queue tells it; an AR is an answer from an
            // application that never saw the message. Other senders (original
            // mode, or MSH-15 NE/SU) get the application answer, AR or AE.
            let accept = m.msh().field(15);
            let accept = accept.raw().trim_ascii();
            let code = match params.code {
                AckCode::AR if accept == b"AL" || accept == b"ER" => AckCode::CR,
                AckCode::AE if accept == b"AL" || accept == b"ER" => AckCode::CE,
                c => c,
            };
            ack::build_ack(m, &AckParams { code, ..*params }, &mut reply)
        }
        None => ack::build_ack_unparsed(unparsed_control_id, params, &mut reply),
    }
    let mut out = Vec::with_capacity(reply.len() + 3);
    mllp::encode(&reply, &mut out);
    out
}

pub(crate) fn add_rule(event: &mut Event, rule: Rule, detail: String) {
    if event.rule.is_none() {
        event.set_rule(rule);
    }
    event.wardgate.findings.push(Finding {
        rule: rule.id.to_owned(),
        severity: rule.severity,
        detail,
    });
}

fn lossy(b: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(b)
}

/// Field `n` (counted as split on the field separator, so MSH-10 is 9) of the
/// first line, lossily decoded, control characters dropped, at most `max` chars.
fn msh_field(payload: &[u8], n: usize, max: usize) -> String {
    if payload.len() < 8 || !payload.starts_with(b"MSH") {
        return String::new();
    }
    let sep = payload[3];
    let line_end = payload
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(payload.len());
    let f = payload[..line_end]
        .split(|&b| b == sep)
        .nth(n)
        .unwrap_or_default();
    id_text(f, max)
}

/// A control id as wardgate keeps it, from MSH-10 or MSA-2 as written (not
/// unescaped): UTF-8 read lossily, control characters left out, at most `max`
/// characters. The id a queued message is kept under and the MSA-2 of its
/// answer are read by this one function, so they compare equal exactly when
/// the bytes do (up to `max`).
fn id_text(f: &[u8], max: usize) -> String {
    String::from_utf8_lossy(f)
        .chars()
        .filter(|c| !c.is_control())
        .take(max)
        .collect()
}

/// The longest control id kept whole for matching answers to messages.
const ID_MAX: usize = 1024;

/// MSH-10 of an unframed message, as [`frame_control_id`] reads it.
pub(crate) fn payload_control_id(payload: &[u8]) -> String {
    msh_field(payload, 9, ID_MAX)
}

/// Best effort MSH-10 from a message that did not parse, so the NAK can still name it.
pub(crate) fn naive_control_id(payload: &[u8]) -> String {
    msh_field(payload, 9, 64)
}

fn control_id_text(msg: &Message<'_>) -> String {
    let d = msg.delimiters();
    to_text(hl7::unescape(msg.control_id(), &d)).into_owned()
}
