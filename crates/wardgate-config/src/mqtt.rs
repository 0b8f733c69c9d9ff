//! MQTT configuration: per-device topic profiles (`[[mqtt_profile]]`), the
//! keys that may sign commands (`[[command_signer]]`), and the checks of an
//! `mqtt` route's keys. docs/mqtt.md is the operator's reference.
//!
//! The engine compiles profiles into matchers (`wardgate_engine::mqtt`); here
//! every pattern is checked to be a topic filter once `{device}` is put in,
//! so a profile that could never match, or that matches more than it reads,
//! is refused before anything listens.

use crate::{Device, Level, Problem, Route, Source};
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use toml::Spanned;

/// Default `max_payload_bytes` of a profile.
pub const DEFAULT_MAX_PAYLOAD_BYTES: u64 = 64 * 1024;
/// Default `command_max_age_secs` of a route.
pub const DEFAULT_COMMAND_MAX_AGE_SECS: u64 = 300;

/// `[[mqtt_profile]]`: what one kind of device may do over MQTT. Topic patterns
/// are MQTT topic filters in which `{device}` (a whole level) stands for the
/// device's id.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttProfile {
    /// Identifier devices refer to (`[[device]] mqtt_profile`).
    pub id: Spanned<String>,
    /// Topics the device may publish to.
    #[serde(default)]
    pub publish: Vec<Spanned<String>>,
    /// Filters the device may subscribe to: a SUBSCRIBE filter must be
    /// contained in one of these (a wildcard beyond them is refused).
    #[serde(default)]
    pub subscribe: Vec<Spanned<String>>,
    /// Topics where the device may publish retained messages (default none).
    #[serde(default)]
    pub retain: Vec<Spanned<String>>,
    /// Topics the device's will may name (default none).
    #[serde(default)]
    pub will: Vec<Spanned<String>>,
    /// This device's command topics: only the route's `commanders` may publish
    /// to them, signed where the route asks, within the budget below.
    #[serde(default)]
    pub commands: Vec<Spanned<String>>,
    /// Highest QoS of the device's publishes and will (default 2).
    #[serde(default)]
    pub max_qos: Option<Spanned<u8>>,
    /// Largest payload the device may publish (default 65536).
    #[serde(default)]
    pub max_payload_bytes: Option<Spanned<u64>>,
    /// Commands this device may receive per rolling hour.
    #[serde(default)]
    pub commands_per_hour: Option<Spanned<u32>>,
    /// Commands this device may receive per rolling day.
    #[serde(default)]
    pub commands_per_day: Option<Spanned<u32>>,
    /// Plausibility checks of readings (`[[mqtt_profile.telemetry]]`): alerts only.
    #[serde(default)]
    pub telemetry: Vec<Telemetry>,
}

/// `[[mqtt_profile.telemetry]]`: what the payload on one topic must look like.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Telemetry {
    /// A topic pattern (as in `publish`).
    pub topic: Spanned<String>,
    /// `number` (a decimal number as text) or `json` (an object with `fields`).
    pub format: Spanned<String>,
    /// `number`: the plausible range.
    #[serde(default)]
    pub min: Option<Spanned<f64>>,
    /// `number`: the plausible range.
    #[serde(default)]
    pub max: Option<Spanned<f64>>,
    /// `json`: field name (dotted for nested objects) → what it must be.
    #[serde(default)]
    pub fields: BTreeMap<String, TelemetryField>,
}

/// One field of a JSON reading.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryField {
    /// `number` (default), `string` or `boolean`.
    #[serde(default, rename = "type")]
    pub kind: Option<Spanned<String>>,
    /// Numbers: the plausible range.
    #[serde(default)]
    pub min: Option<Spanned<f64>>,
    /// Numbers: the plausible range.
    #[serde(default)]
    pub max: Option<Spanned<f64>>,
    /// The field must be present (default true).
    #[serde(default)]
    pub required: Option<Spanned<bool>>,
}

/// `[[command_signer]]`: an Ed25519 key (the clinic server's) that may sign
/// commands, and the commanders that may use it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandSigner {
    /// Signer id, carried in every signed command (`wg-signer`).
    pub id: Spanned<String>,
    /// Ed25519 public key, 64 hex digits (`wardgate command keygen` prints it).
    pub public_key: Spanned<String>,
    /// Devices that may send commands signed with this key.
    pub commanders: Vec<Spanned<String>>,
}

/// An `mqtt` route's settings, resolved.
#[derive(Debug, Clone, Default)]
pub struct ResolvedMqttRoute {
    /// Devices that may publish to other devices' command topics.
    pub commanders: Vec<String>,
    /// Every command must carry a valid signature.
    pub signed_commands: bool,
    /// The signature timestamp window, both ways.
    pub command_max_age_secs: u64,
    /// Accept a user name and password over a listener without TLS.
    pub allow_cleartext_credentials: bool,
    /// Largest MQTT packet either way (fixed header included).
    pub max_packet_bytes: u32,
}

/// The text a pattern becomes for a check: `{device}` replaced by a level
/// that is a valid topic level. None if `{` or `}` appear anywhere else.
fn substitute(p: &str) -> Option<String> {
    let out = p
        .split('/')
        .map(|level| {
            if level == "{device}" {
                Some("d")
            } else if level.contains(['{', '}']) {
                None
            } else {
                Some(level)
            }
        })
        .collect::<Option<Vec<_>>>()?;
    Some(out.join("/"))
}

/// A topic filter as MQTT allows it: no empty string, `#` only as the last
/// whole level, `+` only as a whole level, no NUL or control character.
fn valid_filter(f: &str) -> Result<(), &'static str> {
    if f.is_empty() {
        return Err("is empty");
    }
    if f.len() > 65_535 {
        return Err("is longer than an MQTT string");
    }
    if f.chars().any(|c| c.is_control()) {
        return Err("holds a control character");
    }
    let levels: Vec<&str> = f.split('/').collect();
    for (i, l) in levels.iter().enumerate() {
        if l.contains('#') && (*l != "#" || i + 1 != levels.len()) {
            return Err("has '#' other than as the whole last level");
        }
        if l.contains('+') && *l != "+" {
            return Err("has '+' inside a level");
        }
    }
    Ok(())
}

/// Checks `[[mqtt_profile]]`s, `[[command_signer]]`s, the devices' MQTT keys,
/// and the MQTT keys of every route (`mqtt` for an mqtt route, refused on
/// others).
pub(crate) fn check(
    src: &Source,
    profiles: &[MqttProfile],
    signers: &[CommandSigner],
    devices: &[Device],
    routes: &[Route],
    problems: &mut Vec<Problem>,
) {
    let mut err = |span: Range<usize>, msg: String| {
        problems.push(src.problem(span, Level::Error, msg));
    };
    let device_ids: HashSet<&str> = devices.iter().map(|d| d.id.get_ref().as_str()).collect();
    let mut ids = HashSet::new();
    for p in profiles {
        if !crate::valid_id(p.id.get_ref()) {
            err(
                p.id.span(),
                format!(
                    "mqtt_profile id {:?} must be 1-64 characters of letters, digits, '-', '_' or '.'",
                    p.id.get_ref()
                ),
            );
        }
        if !ids.insert(p.id.get_ref().as_str()) {
            err(
                p.id.span(),
                format!("mqtt_profile {:?} is declared twice", p.id.get_ref()),
            );
        }
        let lists: [(&str, &Vec<Spanned<String>>); 5] = [
            ("publish", &p.publish),
            ("subscribe", &p.subscribe),
            ("retain", &p.retain),
            ("will", &p.will),
            ("commands", &p.commands),
        ];
        for (key, list) in lists {
            for pat in list {
                check_pattern(&mut err, key, pat);
                if key == "commands" && !pat.get_ref().split('/').any(|l| l == "{device}") {
                    err(pat.span(), format!("command pattern {:?} must name its device with a {{device}} level: a command is for one device", pat.get_ref()));
                }
            }
        }
        if let Some(q) = &p.max_qos {
            if *q.get_ref() > 2 {
                err(q.span(), "max_qos must be 0, 1 or 2".into());
            }
        }
        if let Some(m) = &p.max_payload_bytes {
            if *m.get_ref() > 256 * 1024 * 1024 {
                err(
                    m.span(),
                    "max_payload_bytes must be at most 268435456 (MQTT's largest packet)".into(),
                );
            }
        }
        for b in [&p.commands_per_hour, &p.commands_per_day]
            .into_iter()
            .flatten()
        {
            if *b.get_ref() > 1_000_000 {
                err(b.span(), "a command budget must be at most 1000000".into());
            }
        }
        if (p.commands_per_hour.is_some() || p.commands_per_day.is_some()) && p.commands.is_empty()
        {
            let span = p
                .commands_per_hour
                .as_ref()
                .or(p.commands_per_day.as_ref())
                .map_or(p.id.span(), |b| b.span());
            err(
                span,
                "a command budget needs the profile's command topics (commands = [...])".into(),
            );
        }
        for t in &p.telemetry {
            check_pattern(&mut err, "telemetry topic", &t.topic);
            match t.format.get_ref().as_str() {
                "number" => {
                    if let Some((name, _)) = t.fields.iter().next() {
                        err(
                            t.format.span(),
                            format!("fields ({name:?}) apply to format \"json\" only"),
                        );
                    }
                    check_range(&mut err, t.min.as_ref(), t.max.as_ref());
                }
                "json" => {
                    if t.fields.is_empty() {
                        err(
                            t.format.span(),
                            "format \"json\" needs fields = { name = { min = .., max = .. } }"
                                .into(),
                        );
                    }
                    if let Some(m) = t.min.as_ref().or(t.max.as_ref()) {
                        err(
                            m.span(),
                            "min and max of a json reading go on each field".into(),
                        );
                    }
                    for (name, f) in &t.fields {
                        if name.is_empty() || name.split('.').any(str::is_empty) {
                            err(
                                t.format.span(),
                                format!("field name {name:?} must be names joined by '.'"),
                            );
                        }
                        let kind = f.kind.as_ref().map_or("number", |k| k.get_ref().as_str());
                        match kind {
                            "number" => check_range(&mut err, f.min.as_ref(), f.max.as_ref()),
                            "string" | "boolean" => {
                                if let Some(m) = f.min.as_ref().or(f.max.as_ref()) {
                                    err(m.span(), format!("min and max apply to numbers, not to a {kind} (field {name:?})"));
                                }
                            }
                            other => {
                                let span = f.kind.as_ref().map_or(t.format.span(), |k| k.span());
                                err(span, format!("type {other:?} must be \"number\", \"string\" or \"boolean\""));
                            }
                        }
                    }
                }
                other => err(
                    t.format.span(),
                    format!("format {other:?} must be \"number\" or \"json\""),
                ),
            }
        }
    }

    let mut client_ids: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for d in devices {
        if let Some(p) = &d.mqtt_profile {
            if !ids.contains(p.get_ref().as_str()) {
                err(
                    p.span(),
                    format!("mqtt_profile {:?} is not declared", p.get_ref()),
                );
            }
        }
        let own = [d.id.get_ref().as_str()];
        let list: Vec<(&str, Range<usize>)> = if d.client_ids.is_empty() {
            own.iter().map(|c| (*c, d.id.span())).collect()
        } else {
            d.client_ids
                .iter()
                .map(|c| (c.get_ref().as_str(), c.span()))
                .collect()
        };
        for (c, span) in list {
            if c.is_empty() || c.len() > 256 || c.chars().any(|ch| ch.is_control()) {
                err(
                    span.clone(),
                    format!("client id {c:?} must be 1-256 characters without control characters"),
                );
            }
            if let Some(other) = client_ids.insert(c, d.id.get_ref()) {
                if other != d.id.get_ref() {
                    err(span, format!("client id {c:?} is already device {other:?}'s; a client id identifies one device"));
                }
            }
        }
    }

    let mut signer_ids = HashSet::new();
    for s in signers {
        if !crate::valid_id(s.id.get_ref()) {
            err(
                s.id.span(),
                format!(
                    "command_signer id {:?} must be 1-64 characters of letters, digits, '-', '_' or '.'",
                    s.id.get_ref()
                ),
            );
        }
        if !signer_ids.insert(s.id.get_ref().as_str()) {
            err(
                s.id.span(),
                format!("command_signer {:?} is declared twice", s.id.get_ref()),
            );
        }
        let ok = hex::decode(s.public_key.get_ref())
            .ok()
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .is_some_and(|k| ed25519_dalek::VerifyingKey::from_bytes(&k).is_ok());
        if !ok {
            err(
                s.public_key.span(),
                "public_key must be an Ed25519 public key in 64 hex digits".into(),
            );
        }
        if s.commanders.is_empty() {
            err(
                s.id.span(),
                "a command_signer needs commanders: the devices that may use it".into(),
            );
        }
        for c in &s.commanders {
            if !device_ids.contains(c.get_ref().as_str()) {
                err(
                    c.span(),
                    format!("commander {:?} is not a declared device", c.get_ref()),
                );
            }
        }
    }

    for r in routes {
        let is_mqtt = r.protocol.get_ref() == "mqtt";
        if !is_mqtt {
            for (key, span) in [
                ("commanders", r.commanders.first().map(|c| c.span())),
                (
                    "signed_commands",
                    r.signed_commands.as_ref().map(|c| c.span()),
                ),
                (
                    "command_max_age_secs",
                    r.command_max_age_secs.as_ref().map(|c| c.span()),
                ),
                (
                    "allow_cleartext_credentials",
                    r.allow_cleartext_credentials.as_ref().map(|c| c.span()),
                ),
                (
                    "max_packet_bytes",
                    r.max_packet_bytes.as_ref().map(|c| c.span()),
                ),
            ] {
                if let Some(span) = span {
                    err(span, format!("{key} applies to mqtt routes only"));
                }
            }
            continue;
        }
        for (key, span) in [
            ("messages", r.messages.first().map(|c| c.span())),
            ("drug_library", r.drug_library.as_ref().map(|c| c.span())),
            ("care_area", r.care_area.as_ref().map(|c| c.span())),
            ("time_zone", r.time_zone.as_ref().map(|c| c.span())),
            (
                "max_frame_bytes",
                r.max_frame_bytes.as_ref().map(|c| c.span()),
            ),
            ("mllp_strict", r.mllp_strict.as_ref().map(|c| c.span())),
            ("delivery", r.delivery.as_ref().map(|c| c.span())),
        ] {
            if let Some(span) = span {
                let hint = if key == "max_frame_bytes" {
                    "; mqtt routes use max_packet_bytes"
                } else {
                    ""
                };
                err(span, format!("{key} does not apply to mqtt routes{hint}"));
            }
        }
        for s in &r.senders {
            let profile = devices
                .iter()
                .find(|d| d.id.get_ref() == s.get_ref())
                .and_then(|d| d.mqtt_profile.as_ref());
            if profile.is_none() && device_ids.contains(s.get_ref().as_str()) {
                err(
                    s.span(),
                    format!(
                        "sender {:?} of mqtt route {:?} has no mqtt_profile: it could do nothing",
                        s.get_ref(),
                        r.id.get_ref()
                    ),
                );
            }
        }
        for c in &r.commanders {
            if !r.senders.iter().any(|s| s.get_ref() == c.get_ref()) {
                err(
                    c.span(),
                    format!(
                        "commander {:?} must also be one of the route's senders",
                        c.get_ref()
                    ),
                );
            }
        }
        if r.signed_commands.as_ref().is_some_and(|s| *s.get_ref()) {
            for c in &r.commanders {
                if !signers
                    .iter()
                    .any(|s| s.commanders.iter().any(|x| x.get_ref() == c.get_ref()))
                {
                    err(c.span(), format!("signed_commands is on, and no [[command_signer]] names commander {:?}: its commands would all be refused", c.get_ref()));
                }
            }
        }
        if let Some(a) = &r.command_max_age_secs {
            if !(1..=86_400).contains(a.get_ref()) {
                err(
                    a.span(),
                    "command_max_age_secs must be between 1 and 86400".into(),
                );
            }
        }
        if let Some(m) = &r.max_packet_bytes {
            if !(64..=268_435_460).contains(m.get_ref()) {
                err(
                    m.span(),
                    "max_packet_bytes must be between 64 and 268435460".into(),
                );
            }
        }
    }
}

fn check_range(
    err: &mut impl FnMut(Range<usize>, String),
    min: Option<&Spanned<f64>>,
    max: Option<&Spanned<f64>>,
) {
    for v in [min, max].into_iter().flatten() {
        if !v.get_ref().is_finite() {
            err(v.span(), "a limit must be a finite number".into());
        }
    }
    if let (Some(a), Some(b)) = (min, max) {
        if a.get_ref() > b.get_ref() {
            err(a.span(), "min is above max".into());
        }
    }
}

fn check_pattern(err: &mut impl FnMut(Range<usize>, String), key: &str, pat: &Spanned<String>) {
    let p = pat.get_ref();
    let Some(filter) = substitute(p) else {
        err(
            pat.span(),
            format!(
                "{key} pattern {p:?}: '{{' and '}}' may only appear as a whole level {{device}}"
            ),
        );
        return;
    };
    if let Err(why) = valid_filter(&filter) {
        err(
            pat.span(),
            format!("{key} pattern {p:?} {why}: not an MQTT topic filter"),
        );
    }
}

/// The route's MQTT settings, resolved with their defaults.
pub(crate) fn resolve(r: &Route, max_frame: u64) -> ResolvedMqttRoute {
    ResolvedMqttRoute {
        commanders: r.commanders.iter().map(|c| c.get_ref().clone()).collect(),
        signed_commands: r.signed_commands.as_ref().is_some_and(|s| *s.get_ref()),
        command_max_age_secs: r
            .command_max_age_secs
            .as_ref()
            .map_or(DEFAULT_COMMAND_MAX_AGE_SECS, |a| *a.get_ref()),
        allow_cleartext_credentials: r
            .allow_cleartext_credentials
            .as_ref()
            .is_some_and(|a| *a.get_ref()),
        max_packet_bytes: r.max_packet_bytes.as_ref().map_or_else(
            || u32::try_from(max_frame).unwrap_or(u32::MAX),
            |m| u32::try_from(*m.get_ref()).unwrap_or(u32::MAX),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert_eq!(substitute("home/{device}/x").as_deref(), Some("home/d/x"));
        assert_eq!(substitute("home/{device}x/x"), None);
        assert_eq!(substitute("home/{dev}/x"), None);
        assert!(valid_filter("a/+/#").is_ok());
        assert!(valid_filter("a/#/b").is_err());
        assert!(valid_filter("a/b+").is_err());
        assert!(valid_filter("").is_err());
        assert!(valid_filter("a\u{0}b").is_err());
    }
}
