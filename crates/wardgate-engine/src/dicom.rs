//! DICOM decisions: who may associate with whom, which SOP classes and which
//! operations pass. Sans-IO like the rest of the engine: the proxy hands in parsed
//! PDUs and commands, gets back what to do and the event that records it.
//!
//! Order of checks for an A-ASSOCIATE-RQ: calling AE title belongs to the sending
//! device → called AE title allowed on the route → each presentation context's SOP
//! class allowed (a refused one is rejected alone). For each command: the context
//! it arrives on was accepted → operation allowed → for C-MOVE, destination allowed.

use crate::event::{Action, DicomFacts, Event, Finding, Stage};
use crate::policy::{DicomPolicy, RoutePolicy};
use crate::rules::{self, Rule};
use crate::{Clock, Flow};
use smallvec::SmallVec;
use wardgate_proto::anomaly::Anomaly;
use wardgate_proto::dicom::{
    self, dataset, dimse, Associate, Command, CommandField, DicomError, Reject,
};

/// What to do with an A-ASSOCIATE-RQ.
#[derive(Debug)]
pub struct AssociationDecision {
    /// Reject the whole association with this A-ASSOCIATE-RJ.
    pub reject: Option<Reject>,
    /// Presentation context ids whose SOP class policy refuses; the gateway marks
    /// them "abstract syntax not supported" in the A-ASSOCIATE-AC it relays.
    pub refused_contexts: SmallVec<[u8; 8]>,
    /// The record of the decision.
    pub event: Event,
    /// A separate alert for credentials sent in clear, if any.
    pub credential_alert: Option<Event>,
}

/// The route's DICOM allow-lists; a route without them allows nothing.
fn policy(route: &RoutePolicy) -> &DicomPolicy {
    static NOTHING: std::sync::LazyLock<DicomPolicy> =
        std::sync::LazyLock::new(DicomPolicy::default);
    route.dicom.as_ref().unwrap_or(&NOTHING)
}

fn base_facts(rq: &Associate<'_>) -> DicomFacts {
    let id = rq.user.user_identity.as_ref();
    DicomFacts {
        calling_ae: dicom::text(rq.calling_ae),
        called_ae: dicom::text(rq.called_ae),
        implementation_class_uid: dicom::text(rq.user.implementation_class_uid),
        implementation_version: dicom::text(rq.user.implementation_version_name),
        user_identity: id.map(|i| i.kind_name().to_owned()).unwrap_or_default(),
        username: id.and_then(|i| i.username()).unwrap_or_default(),
        ..Default::default()
    }
}

fn allowed(list: &[Vec<u8>], value: &[u8]) -> bool {
    list.iter().any(|v| v.as_slice() == value)
}

/// Decides an A-ASSOCIATE-RQ from an admitted device.
pub fn associate(
    route: &RoutePolicy,
    flow: &Flow,
    rq: &Associate<'_>,
    clock: &Clock,
) -> AssociationDecision {
    let p = policy(route);
    let mut facts = base_facts(rq);
    let credential_alert = rq
        .user
        .user_identity
        .as_ref()
        .filter(|i| i.carries_secret())
        .map(|i| {
            let mut e = flow
                .event(
                    clock,
                    route,
                    Action::Alerted,
                    format!(
                        "{} sent DICOM user identity ({}) in clear; the secret is not recorded",
                        facts.calling_ae,
                        i.kind_name()
                    ),
                    Stage::Association,
                )
                .with_rule(rules::DICOM_CLEARTEXT_CREDENTIALS);
            e.wardgate.dicom = Some(base_facts(rq));
            e
        });
    let device_titles = flow
        .source_device
        .as_ref()
        .and_then(|d| p.calling_ae_titles.get(d));
    let refusal: Option<(Rule, Reject, String)> =
        if !device_titles.is_some_and(|t| allowed(t, rq.calling_ae)) {
            Some((
                rules::DICOM_CALLING_AE,
                Reject::CALLING_AE_NOT_RECOGNIZED,
                format!(
                    "calling AE title {:?} is not one of device {:?}'s",
                    facts.calling_ae,
                    flow.source_device.as_deref().unwrap_or("?")
                ),
            ))
        } else if !allowed(&p.called_ae_titles, rq.called_ae) {
            Some((
                rules::DICOM_CALLED_AE,
                Reject::CALLED_AE_NOT_RECOGNIZED,
                format!(
                    "called AE title {:?} is not allowed on route {}",
                    facts.called_ae, &*route.id
                ),
            ))
        } else if rq.application_context != b"1.2.840.10008.3.1.1.1" {
            Some((
                rules::DICOM_STATE,
                Reject::APPLICATION_CONTEXT_NOT_SUPPORTED,
                format!(
                    "application context {:?} is not the DICOM application context",
                    dicom::text(rq.application_context)
                ),
            ))
        } else {
            None
        };
    if let Some((rule, reject, reason)) = refusal {
        let mut e = flow
            .event(clock, route, Action::Blocked, reason, Stage::Association)
            .with_rule(rule);
        e.wardgate.dicom = Some(facts);
        return AssociationDecision {
            reject: Some(reject),
            refused_contexts: SmallVec::new(),
            event: e,
            credential_alert,
        };
    }
    let mut refused_contexts = SmallVec::new();
    // A modality proposes each SOP class once per transfer syntax, often in
    // dozens of contexts: each class is listed once, the contexts counted.
    for pc in &rq.presentation_contexts {
        let name = dicom::text(pc.abstract_syntax);
        let (list, ok) = if allowed(&p.sop_classes, pc.abstract_syntax) {
            (&mut facts.sop_classes_allowed, true)
        } else {
            (&mut facts.sop_classes_rejected, false)
        };
        if !ok {
            refused_contexts.push(pc.id);
        }
        if !list.contains(&name) {
            list.push(name);
        }
    }
    let (action, reason) = if refused_contexts.is_empty() {
        (
            Action::Allowed,
            format!(
                "association {} -> {} allowed on route {}",
                facts.calling_ae, facts.called_ae, &*route.id
            ),
        )
    } else {
        (
            Action::Alerted,
            format!(
                "association {} -> {} allowed with {} presentation context(s) rejected: {} SOP class(es) the route does not allow ({}{}; all in wardgate.dicom.sop_classes_rejected)",
                facts.calling_ae,
                facts.called_ae,
                refused_contexts.len(),
                facts.sop_classes_rejected.len(),
                facts
                    .sop_classes_rejected
                    .iter()
                    .take(3)
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", "),
                match facts.sop_classes_rejected.len() {
                    n if n > 3 => format!(" and {} more", n - 3),
                    _ => String::new(),
                }
            ),
        )
    };
    let mut e = flow.event(clock, route, action, reason, Stage::Association);
    if !refused_contexts.is_empty() {
        e.set_rule(rules::DICOM_SOP_CLASS);
    }
    e.wardgate.dicom = Some(facts);
    AssociationDecision {
        reject: None,
        refused_contexts,
        event: e,
        credential_alert,
    }
}

/// What to do with one DIMSE request.
#[derive(Debug)]
pub struct CommandDecision {
    /// Forward the command and its data set.
    pub forward: bool,
    /// When refused: the response command set to send back to the sender.
    pub response: Option<Vec<u8>>,
    /// The record (routine allowed commands too: every decision is recorded).
    pub event: Event,
}

/// Decides one DIMSE command arriving on a context whose SOP class is `context_sop_class`.
pub fn command(
    route: &RoutePolicy,
    flow: &Flow,
    cmd: &Command<'_>,
    calling_ae: &str,
    clock: &Clock,
) -> CommandDecision {
    let p = policy(route);
    let facts = DicomFacts {
        calling_ae: calling_ae.to_owned(),
        operation: cmd.field.name().to_owned(),
        message_id: Some(cmd.message_id),
        sop_class: dicom::text(cmd.sop_class),
        // A response the sender gives names the upstream's instance (already
        // as the destination holds it); a request names the sender's.
        sop_instance: if cmd.is_response {
            dicom::text(cmd.sop_instance)
        } else {
            route.instance_name(dicom::text(cmd.sop_instance))
        },
        move_destination: dicom::text(cmd.move_destination),
        ..Default::default()
    };
    let refusal = if cmd.is_response {
        // A response from the sender answers something the upstream started (the
        // C-STORE sub-operations of a C-GET, an N-EVENT-REPORT): it is relayed.
        None
    } else if !operation_allowed(p, cmd.field) {
        Some((
            rules::DICOM_OPERATION,
            dimse::STATUS_NOT_AUTHORIZED,
            format!(
                "{} is not allowed on route {}",
                cmd.field.name(),
                &*route.id
            ),
        ))
    } else if !cmd.sop_class.is_empty() && !allowed(&p.sop_classes, cmd.sop_class) {
        // The context's SOP class was checked at association; a command can still
        // name another one in (0000,0002)/(0000,0003).
        Some((
            rules::DICOM_SOP_CLASS,
            dimse::STATUS_SOP_CLASS_NOT_SUPPORTED,
            format!(
                "{} names SOP class {} which is not allowed on route {}",
                cmd.field.name(),
                facts.sop_class,
                &*route.id
            ),
        ))
    } else if cmd.field == CommandField::CMove
        && !allowed(&p.move_destinations, cmd.move_destination)
    {
        Some((
            rules::DICOM_MOVE_DESTINATION,
            dimse::STATUS_MOVE_DESTINATION_UNKNOWN,
            format!(
                "C-MOVE to {:?} is not allowed on route {}",
                facts.move_destination, &*route.id
            ),
        ))
    } else {
        None
    };
    match refusal {
        Some((rule, status, reason)) => {
            // C-CANCEL has no response in DICOM: a refused one is only dropped.
            let response = (cmd.field != CommandField::CCancel).then(|| {
                dimse::Response {
                    field: cmd.field,
                    responding_to: cmd.message_id,
                    sop_class: cmd.sop_class,
                    sop_instance: cmd.sop_instance,
                    status,
                }
                .encode()
            });
            let mut e = flow
                .event(clock, route, Action::Blocked, reason, Stage::Message)
                .with_rule(rule);
            e.wardgate.dicom = Some(DicomFacts {
                status: Some(status),
                ..facts
            });
            CommandDecision {
                forward: false,
                response,
                event: e,
            }
        }
        None => {
            let mut e = flow.event(
                clock,
                route,
                Action::Allowed,
                format!("{} allowed on route {}", cmd.field.name(), &*route.id),
                Stage::Message,
            );
            e.wardgate.dicom = Some(facts);
            CommandDecision {
                forward: true,
                response: None,
                event: e,
            }
        }
    }
}

/// True when `field` is among the route's operations. C-CANCEL belongs to the
/// C-FIND, C-MOVE or C-GET it cancels.
fn operation_allowed(p: &DicomPolicy, field: CommandField) -> bool {
    p.operations.contains(&field)
        || (field == CommandField::CCancel
            && p.operations.iter().any(|o| {
                matches!(
                    o,
                    CommandField::CFind | CommandField::CMove | CommandField::CGet
                )
            }))
}

/// The event for a malformed PDU or command: the association is aborted.
pub fn malformed(route: &RoutePolicy, flow: &Flow, err: &DicomError, clock: &Clock) -> Event {
    flow.event(
        clock,
        route,
        Action::Blocked,
        format!("malformed DICOM from the sender: {err}; association aborted"),
        Stage::Message,
    )
    .with_rule(err.rule())
}

/// The event for malformed DICOM from the upstream: an upstream fault
/// (WG-UP-002), with the parser's own rule kept as a finding. The association is
/// aborted.
pub fn upstream_malformed(
    route: &RoutePolicy,
    flow: &Flow,
    err: &DicomError,
    clock: &Clock,
) -> Event {
    let mut e = flow
        .event(
            clock,
            route,
            Action::Closed,
            format!("malformed DICOM from the upstream: {err}; association aborted"),
            Stage::Message,
        )
        .with_rule(rules::UPSTREAM_PROTOCOL);
    let anomaly = err.rule();
    e.wardgate.findings.push(Finding {
        rule: anomaly.id.to_owned(),
        severity: anomaly.severity,
        detail: err.to_string(),
    });
    e
}

/// The event for a protocol violation the parser cannot see (wrong PDU for the
/// state, data on a context that was not accepted): the association is aborted.
pub fn violation(
    route: &RoutePolicy,
    flow: &Flow,
    rule: Rule,
    what: String,
    clock: &Clock,
) -> Event {
    flow.event(
        clock,
        route,
        Action::Blocked,
        format!("{what}; association aborted"),
        Stage::Message,
    )
    .with_rule(rule)
}

/// How far into a C-STORE's data set its facts (patient ID and before) are awaited
/// before its event is recorded without them.
pub const FACTS_WITHIN: u64 = 64 * 1024;

/// Whether a C-STORE's held event can be recorded now: the walker is past the
/// patient ID, the data set ended, enough was read, or walking stopped (error,
/// executable found, a syntax not walked). Inline and passive use the same rule.
pub fn facts_ready(w: &dataset::Walker, is_last: bool, fed_ok: bool) -> bool {
    w.past((0x0010, 0x0020))
        || is_last
        || w.bytes_seen >= FACTS_WITHIN
        || !fed_ok
        || w.facts().executable.is_some()
        || !w.inspects()
}

/// Fills what the data set showed into a C-STORE's event.
///
/// The patient is named as the site's records name patients
/// ([`RoutePolicy::patient_name`]: a keyed pseudonym by default).
pub fn add_data_set_facts(
    route: &RoutePolicy,
    event: &mut Event,
    facts: &dataset::Facts,
    bytes: u64,
) {
    let d = event.wardgate.dicom.get_or_insert_with(DicomFacts::default);
    d.modality = dicom::text(&facts.modality);
    d.patient_id = route
        .patient_name(&dicom::text(&facts.patient_id))
        .unwrap_or_default();
    if d.sop_instance.is_empty() {
        d.sop_instance = route.instance_name(dicom::text(&facts.sop_instance));
    }
    if bytes > 0 {
        event.wardgate.bytes = Some(bytes);
    }
}

/// Executable content found in a data set: block (abort) or alert, per the route.
pub fn executable(
    route: &RoutePolicy,
    flow: &Flow,
    finding: &dataset::ExecutableFinding,
    operation: &str,
    clock: &Clock,
) -> (bool, Event) {
    let block = policy(route).block_executables;
    let (g, e) = finding.tag;
    let mut ev = flow
        .event(
            clock,
            route,
            if block {
                Action::Blocked
            } else {
                Action::Alerted
            },
            format!(
                "{operation} data set element ({g:04X},{e:04X}) starts like a {}{}",
                finding.kind.name(),
                if block {
                    "; association aborted, the rest not forwarded"
                } else {
                    "; forwarded (executable_content = \"alert\")"
                }
            ),
            Stage::Message,
        )
        .with_rule(rules::DICOM_EXECUTABLE);
    ev.wardgate.dicom = Some(DicomFacts {
        operation: operation.to_owned(),
        ..Default::default()
    });
    (block, ev)
}

/// A data set that could not be inspected: forwarded, and the gap recorded.
pub fn uninspectable(route: &RoutePolicy, flow: &Flow, why: String, clock: &Clock) -> Event {
    flow.event(clock, route, Action::Alerted, why, Stage::Message)
        .with_rule(rules::DICOM_UNINSPECTABLE)
}
