//! A route's privacy profile applied to an HL7 message policy allowed
//! (`[route.privacy]`, docs/privacy.md): consent first, then the transform.
//!
//! Privacy is applied in monitor mode too: forwarding identifiable data to a
//! destination that must not have it cannot be undone, unlike a block.
//! Every failure is a refusal (`WG-PRIV-002`), never the original forwarded.

use crate::event::{Action, Event, PrivacyFacts, Record};
use crate::hl7::{Outcome, Verdict};
use crate::policy::RoutePolicy;
use crate::rules;
use crate::Flow;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use wardgate_config::{PrivacyMode, Problem, ResolvedPrivacy};
use wardgate_event::clock::Clock;
use wardgate_privacy::dicom::DicomProfile;
use wardgate_privacy::hl7::{Hl7Profile, Mode, SegmentAction, SegmentId};
use wardgate_proto::hl7::ack::AckCode;
use wardgate_proto::hl7::Message;

/// A route's compiled privacy profile.
#[derive(Debug, Clone)]
pub struct RoutePrivacy {
    /// As configured.
    pub settings: ResolvedPrivacy,
    /// HL7 routes that transform: the profile.
    pub hl7: Option<Arc<Hl7Profile>>,
    /// DICOM routes that de-identify: the profile.
    pub dicom: Option<Arc<DicomProfile>>,
}

/// Compiles `[route.privacy]` for a DICOM route: PS3.15 Annex E with the
/// route's options. The de-identifier always holds an object's output until
/// its Patient ID is read, so consent and refusals come before a byte of it
/// (or its command) is forwarded.
pub fn compile_dicom(p: &ResolvedPrivacy) -> Result<Option<Arc<DicomProfile>>, String> {
    use wardgate_privacy::dicom::{Action as A, Limits, Mode as M, Options, SafePrivate};
    let mode = match p.mode {
        PrivacyMode::Pass => return Ok(None),
        PrivacyMode::Minimise => M::Minimise,
        PrivacyMode::Pseudonymise => M::Pseudonymise,
    };
    let mut o = Options::default();
    for name in &p.dicom_options {
        let flag = match name.as_str() {
            "retain-safe-private" => &mut o.retain_safe_private,
            "retain-uids" => &mut o.retain_uids,
            "retain-device-identity" => &mut o.retain_device_identity,
            "retain-institution-identity" => &mut o.retain_institution_identity,
            "retain-patient-characteristics" => &mut o.retain_patient_characteristics,
            "retain-longitudinal-full-dates" => &mut o.retain_full_dates,
            "retain-longitudinal-modified-dates" => &mut o.retain_modified_dates,
            "clean-descriptors" => &mut o.clean_descriptors,
            "clean-structured-content" => &mut o.clean_structured_content,
            "clean-graphics" => {
                return Err("clean-graphics is not offered: graphics and pixels cannot be cleaned on the wire (objects that may show identity are refused instead, unless allow_burned_in)".into())
            }
            other => return Err(format!("{other:?} is not an Annex E option")),
        };
        *flag = true;
    }
    let mut overrides = std::collections::BTreeMap::new();
    for (tag, code) in &p.attributes {
        let a = match code.as_str() {
            "K" => A::Keep,
            "X" => A::Remove,
            "Z" => A::Empty,
            "D" => A::Dummy,
            "U" => A::ReplaceUid,
            "C" => {
                return Err(format!(
                    "({:04X},{:04X}): C (clean) depends on the attribute and is not set per attribute; use D, Z, X, K or U",
                    tag >> 16,
                    tag & 0xFFFF
                ))
            }
            other => return Err(format!("{other:?} is not an action code")),
        };
        overrides.insert(*tag, a);
    }
    let profile = DicomProfile {
        mode,
        options: o,
        safe_private: p
            .safe_private
            .iter()
            .map(|s| SafePrivate {
                group: s.group,
                creator: s.creator.clone(),
                element: s.element,
            })
            .collect(),
        overrides,
        allow_burned_in: p.allow_burned_in,
        hold_until_patient_id: true,
        limits: Limits {
            max_hold: p.hold_bytes,
            ..Limits::default()
        },
    };
    profile.validate().map_err(|e| e.to_string())?;
    Ok(Some(Arc::new(profile)))
}

/// Compiles `[route.privacy]` for an HL7 route (the rules' names were checked
/// by the configuration; what only the transform knows is checked here).
pub fn compile_hl7(p: &ResolvedPrivacy) -> Result<Option<Arc<Hl7Profile>>, String> {
    let mode = match p.mode {
        PrivacyMode::Pass => return Ok(None),
        PrivacyMode::Minimise => Mode::Minimise,
        PrivacyMode::Pseudonymise => Mode::Pseudonymise,
    };
    let mut profile = Hl7Profile::new(mode);
    for (seg, action) in &p.segments {
        let id =
            SegmentId::new(seg.as_bytes()).ok_or_else(|| format!("{seg:?} is not a segment id"))?;
        let action: SegmentAction = action.parse().map_err(|e| format!("{seg}: {e}"))?;
        profile
            .set_segment(id, action)
            .map_err(|e| format!("{seg}: {e}"))?;
    }
    for (at, action) in &p.fields {
        let text = match (at.component, at.subcomponent) {
            (None, _) => format!("{}-{}", at.segment, at.field),
            (Some(c), None) => format!("{}-{}.{c}", at.segment, at.field),
            (Some(c), Some(s)) => format!("{}-{}.{c}.{s}", at.segment, at.field),
        };
        profile
            .set_field_str(&text, action)
            .map_err(|e| format!("{text}: {e}"))?;
        // A rule on a segment the profile removes would do nothing: the site
        // meant something it would not get. (Segments are all set above, so
        // this is their final action.)
        let id = SegmentId::new(at.segment.as_bytes())
            .ok_or_else(|| format!("{:?} is not a segment id", at.segment))?;
        if profile.segment_action(id) == SegmentAction::Remove {
            return Err(format!(
                "a field rule on {seg}, a segment this profile removes (not among those kept by default, or set to \"remove\"): it would do nothing. Set {seg} = \"apply\" under [route.privacy.segments], or drop the rule",
                seg = at.segment
            ));
        }
    }
    Ok(Some(Arc::new(profile)))
}

/// Located problems for a route whose profile does not compile.
pub(crate) fn problem(v: &wardgate_config::Validated, route_index: usize, text: String) -> Problem {
    let src = &v.config.source;
    let span = v.config.routes[route_index].id.span();
    src.problem(
        span,
        wardgate_config::Level::Error,
        format!(
            "route {:?}: [route.privacy]: {text}",
            v.config.routes[route_index].id.get_ref()
        ),
    )
}

/// Lower-case hex (one allocation, not one `format!` per byte).
pub(crate) fn hex(d: impl AsRef<[u8]>) -> String {
    hex::encode(d)
}

/// Applies the route's privacy profile to a message policy allowed (or would
/// have, in monitor mode): a patient who opted out of the route's purpose is
/// withheld (AA to the sender, `WG-PRIV-001`); a transforming route forwards
/// the profile's output, recorded with the hashes in and out; what cannot be
/// transformed is refused (AR, `WG-PRIV-002`).
pub(crate) fn apply_hl7(
    route: &RoutePolicy,
    flow: &Flow,
    msg: &Message<'_>,
    frame: &[u8],
    clock: &Clock,
    mut o: Outcome,
) -> Outcome {
    let Some(p) = route.privacy.as_ref() else {
        return o;
    };
    if o.verdict == Verdict::Block || o.close {
        return o;
    }
    let payload = msg.raw();
    let mut event = match o.record {
        Record::Event(e) => *e,
        Record::Routine(_) => crate::hl7::allowed_event(route, flow, msg, frame.len(), clock),
    };
    let mut facts = PrivacyFacts {
        mode: p.settings.mode.as_str().to_owned(),
        purpose: p.settings.purpose.clone(),
        hmac_sha256_in: route.site.patients.pseudonymiser().map(|k| {
            let key = k.derive_key(wardgate_privacy::digest::IN_DIGEST_LABEL);
            let mut h = wardgate_privacy::digest::DigestKind::Sha256.keyed_hasher(&key);
            h.update(payload);
            h.finish()
        }),
        ..Default::default()
    };
    // Every patient identifier the message carries, keyed once: the
    // pseudonyms serve the consent check, and making them remembers them for
    // re-identification.
    let pseudonyms = wardgate_privacy::hl7::patient_ids_parsed(msg).map(|ids| {
        ids.iter()
            .filter_map(|id| route.site.patients.pseudonym(&id.id))
            .collect::<Vec<_>>()
    });
    if let Some(purpose) = &p.settings.purpose {
        match &pseudonyms {
            Ok(ps) => {
                // Always the pseudonym in this text, even where events carry
                // raw identifiers: it is shown to every console role.
                if let Some(who) = ps
                    .iter()
                    .find(|ps| route.site.consent.opted_out(purpose, ps))
                {
                    let text = format!(
                        "not forwarded on route {}: the patient ({who}) opted out of {purpose}; acknowledged so the sender does not retry",
                        &*route.id
                    );
                    return refuse(
                        msg,
                        clock,
                        event,
                        facts,
                        rules::PRIVACY_OPTED_OUT,
                        text,
                        AckCode::AA,
                    );
                }
            }
            Err(e) => {
                let text = format!("consent for {purpose} cannot be checked: {e}");
                return refuse(
                    msg,
                    clock,
                    event,
                    facts,
                    rules::PRIVACY_CANNOT_DEIDENTIFY,
                    text,
                    AckCode::AR,
                );
            }
        }
    }
    // Too many identifiers to key and remember: refused on any privacy route,
    // with a consent purpose or not.
    if let Err(e @ wardgate_privacy::hl7::Hl7PrivacyError::TooManyPatientIds { .. }) = &pseudonyms {
        let text = format!("not de-identified, not forwarded: {e}");
        return refuse(
            msg,
            clock,
            event,
            facts,
            rules::PRIVACY_CANNOT_DEIDENTIFY,
            text,
            AckCode::AR,
        );
    }
    let Some(profile) = &p.hl7 else {
        event.wardgate.privacy = Some(facts);
        o.record = event.into();
        return o;
    };
    let Some(pseudonymiser) = route.site.patients.pseudonymiser() else {
        let text = "the site key is not loaded: no message can be de-identified".to_owned();
        return refuse(
            msg,
            clock,
            event,
            facts,
            rules::PRIVACY_CANNOT_DEIDENTIFY,
            text,
            AckCode::AR,
        );
    };
    let mut out = Vec::with_capacity(frame.len() + 64);
    out.push(0x0B);
    match wardgate_privacy::hl7::transform_parsed(msg, profile, pseudonymiser, &mut out) {
        Ok(done) => {
            facts.sha256_out = Some(hex(Sha256::digest(&out[1..])));
            facts.changes = Some(done.to_string());
            out.extend_from_slice(&[0x1C, 0x0D]);
            event.wardgate.privacy = Some(facts);
            event.event.reason = format!(
                "{} ({} for {})",
                event.event.reason,
                done,
                p.settings.mode.as_str()
            );
            o.record = event.into();
            o.forward = Some(out);
            o
        }
        Err(e) => {
            let text = format!("not de-identified, not forwarded: {e}");
            refuse(
                msg,
                clock,
                event,
                facts,
                rules::PRIVACY_CANNOT_DEIDENTIFY,
                text,
                AckCode::AR,
            )
        }
    }
}

/// A refusal (or withholding) by the privacy profile: recorded with the rule,
/// answered with `code`. Not turned into an alert in monitor mode.
fn refuse(
    msg: &Message<'_>,
    clock: &Clock,
    mut event: Event,
    facts: PrivacyFacts,
    rule: crate::rules::Rule,
    text: String,
    code: AckCode,
) -> Outcome {
    event.event.action = Action::Blocked;
    event.event.reason = text.clone();
    event.wardgate.privacy = Some(facts);
    if let Some(h) = &mut event.wardgate.hl7 {
        h.ack_code = code.as_str().into();
    }
    crate::hl7::add_rule(&mut event, rule, text);
    let reply = crate::hl7::privacy_ack(msg, clock, code, rule);
    Outcome {
        verdict: Verdict::Block,
        record: event.into(),
        reply: Some(reply),
        close: false,
        forward: None,
    }
}

#[cfg(test)]
mod tests {
    use crate::hl7::{inspect, Verdict};
    use crate::{Clock, Flow, Policy};
    use std::path::Path;
    use std::sync::Arc;
    use wardgate_config::Config;
    use wardgate_privacy::{ConsentLists, PatientNaming, Pseudonymiser, Site, SiteKey};

    const SITE: &str = include_str!("../../../examples/minimal.toml");
    const ORU: &str = "MSH|^~\\&|MON|ICU|REG|RES|20261124101500||ORU^R01|CID-1|P|2.5\rPID|1||4711^^^HOSP^MR||Doe^Jane||19600101|F|||1 Main St^^Leeds^^LS1 4AP^GBR||0113 555 0100\rNK1|1|Doe^John|SPO\rOBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||97|%|||||F\rOBX|2|ST|NOTE||Jane is anxious||||||F\r";

    fn site() -> Site {
        Site {
            patients: PatientNaming::new(
                Pseudonymiser::new(&SiteKey::from_bytes([4; 32])),
                false,
                None,
            ),
            ..Default::default()
        }
    }

    fn route(privacy: &str, enforcement: &str, site: &Site) -> Arc<crate::policy::RoutePolicy> {
        let text = SITE.replace(
            "drug_library = \"adult-icu\"\n",
            &format!("drug_library = \"adult-icu\"\nenforcement = \"{enforcement}\"\n\n[route.privacy]\n{privacy}\n"),
        );
        let v = Config::parse(&text, "site.toml", Path::new(".")).unwrap();
        Policy::compile_with(&v, site).unwrap().routes[0].clone()
    }

    fn run(r: &crate::policy::RoutePolicy, msg: &str) -> crate::hl7::Outcome {
        let flow = Flow::new(
            "127.0.0.2:40000".parse().unwrap(),
            r.upstream,
            Some(Arc::from("ehr")),
        );
        let mut frame = Vec::new();
        wardgate_proto::mllp::encode(msg.as_bytes(), &mut frame);
        inspect(
            r,
            &flow,
            &frame,
            &Clock::at(time::macros::datetime!(2026-11-24 10:15:00 UTC)),
        )
    }

    #[test]
    fn a_pseudonymise_route_forwards_the_transform_and_records_both_hashes() {
        let s = site();
        for enforcement in ["enforce", "monitor"] {
            let r = route("mode = \"pseudonymise\"", enforcement, &s);
            let o = run(&r, ORU);
            assert_eq!(o.verdict, Verdict::Allow);
            let fwd = o
                .forward
                .as_ref()
                .expect("the transformed message is what goes on");
            let text = String::from_utf8_lossy(fwd);
            for ident in [
                "4711", "Doe", "Jane", "Main St", "555 0100", "anxious", "John",
            ] {
                assert!(
                    !text.contains(ident),
                    "{ident} forwarded ({enforcement}): {text}"
                );
            }
            assert!(
                text.contains("|CID-1|"),
                "MSH-10 kept: the receiver's ACK still matches"
            );
            let e = o.record.event();
            let pr = e.wardgate.privacy.as_ref().unwrap();
            // What came in: HMAC-SHA-256 under the key derived from the site
            // key for it, never a plain digest.
            let key = s
                .patients
                .pseudonymiser()
                .unwrap()
                .derive_key(wardgate_privacy::digest::IN_DIGEST_LABEL);
            let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(&key).unwrap();
            hmac::Mac::update(&mut mac, ORU.as_bytes());
            assert_eq!(
                pr.hmac_sha256_in.as_deref().unwrap(),
                super::hex(hmac::Mac::finalize(mac).into_bytes())
            );
            assert_eq!(pr.sha256_in, None);
            assert_eq!(
                pr.sha256_out.as_deref().unwrap(),
                super::hex(<sha2::Sha256 as sha2::Digest>::digest(
                    &fwd[1..fwd.len() - 2]
                ))
            );
            assert!(!serde_json::to_string(&*e).unwrap().contains("4711"));
        }
    }

    #[test]
    fn consent_withholds_with_aa_and_unreadable_identifiers_are_refused() {
        let s = site();
        let p = s.patients.pseudonymiser().unwrap().clone();
        let mut l = ConsentLists::default();
        l.insert("research", [p.patient("4711")].into_iter().collect());
        s.consent.replace(l);
        // In monitor mode too: a patient's choice is not a soak-period alert.
        for enforcement in ["enforce", "monitor"] {
            let r = route(
                "mode = \"pseudonymise\"\npurpose = \"research\"",
                enforcement,
                &s,
            );
            let o = run(&r, ORU);
            assert_eq!(o.verdict, Verdict::Block, "{enforcement}");
            assert!(o.forward.is_none());
            let reply = String::from_utf8_lossy(o.reply.as_deref().unwrap()).into_owned();
            assert!(reply.contains("MSA|AA|CID-1"), "{reply}");
            assert!(!reply.contains("4711"));
            assert_eq!(o.record.event().rule.as_ref().unwrap().id, "WG-PRIV-001");
            // Consent alone (no transform): the same.
            let r = route("purpose = \"research\"", enforcement, &s);
            assert_eq!(run(&r, ORU).verdict, Verdict::Block);
        }
        let r = route("mode = \"pseudonymise\"", "enforce", &s);
        let o = run(&r, &ORU.replace("4711^^^HOSP", "47\\X0D\\11^^^HOSP"));
        assert_eq!(o.verdict, Verdict::Block);
        assert!(String::from_utf8_lossy(o.reply.as_deref().unwrap()).contains("MSA|AR|CID-1"));
        assert_eq!(o.record.event().rule.as_ref().unwrap().id, "WG-PRIV-002");
    }

    #[test]
    fn without_a_key_a_transforming_route_refuses() {
        let r = route("mode = \"minimise\"", "enforce", &Site::default());
        let o = run(&r, ORU);
        assert_eq!(o.verdict, Verdict::Block);
        assert_eq!(o.record.event().rule.as_ref().unwrap().id, "WG-PRIV-002");
    }
}
