//! MQTT: what each packet does and what a device's profile allows.
//!
//! A route's [`MqttPolicy`] is compiled from `[[mqtt_profile]]`s with each
//! device's id put in for `{device}`, so matching a topic is the codec's
//! [`topic_matches`] and judging a SUBSCRIBE is [`filter_within`]: a filter is
//! allowed only if every topic it can match is matched by one allowed
//! pattern (a wildcard that reaches beyond the profile is refused whole, never
//! trimmed). [`authority`] holds command authority (signed commands, replay,
//! budgets), shared across connections; [`session`] is the connection's state
//! machine, run by the proxy and by passive analysis alike.

pub mod authority;
pub mod session;
mod telemetry;

use crate::rules::{self, Rule};
use authority::{Authority, Envelope};
use smallvec::SmallVec;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use wardgate_config::Validated;
use wardgate_event::event::MqttCommand;
use wardgate_proto::mqtt::codec::{self, topic_matches, Connect, Publish, Version};

pub use telemetry::TelemetryCheck;

/// One device's profile, `{device}` put in.
#[derive(Debug, Clone)]
pub struct DeviceProfile {
    /// The `[[mqtt_profile]]` id.
    pub profile: Arc<str>,
    publish: Vec<String>,
    subscribe: Vec<String>,
    retain: Vec<String>,
    will: Vec<String>,
    commands: Vec<String>,
    /// Highest QoS of its publishes and will.
    pub max_qos: u8,
    /// Largest payload it may publish.
    pub max_payload: u64,
    /// Commands it may receive per rolling hour.
    pub commands_per_hour: Option<u32>,
    /// Commands it may receive per rolling day.
    pub commands_per_day: Option<u32>,
    telemetry: Vec<TelemetryCheck>,
}

fn any_match(filters: &[String], topic: &str) -> bool {
    filters.iter().any(|f| topic_matches(f, topic))
}

/// A command pattern with `{device}` at one level, to find which device a
/// topic commands without trying every device.
#[derive(Debug, Clone)]
struct CommandPattern {
    /// The level that names the device.
    device_at: usize,
    profile: Arc<str>,
}

/// A route's MQTT policy.
#[derive(Debug)]
pub struct MqttPolicy {
    /// Devices that may publish to others' command topics.
    pub commanders: Vec<Arc<str>>,
    /// Every command must be signed.
    pub signed_commands: bool,
    /// Accept a user name and password without TLS.
    pub allow_cleartext_credentials: bool,
    /// How far a signed command's timestamp may be from the clock.
    pub command_max_age_secs: u64,
    /// The policy's `[[command_signer]]`s.
    signers: Arc<[authority::SignerKey]>,
    /// Codec limits (the route's largest packet).
    pub limits: codec::Limits,
    /// Device → its profile (every device with one: command targets too).
    profiles: HashMap<Arc<str>, Arc<DeviceProfile>>,
    /// Client id → the device it belongs to (site-wide).
    client_ids: HashMap<Box<str>, Arc<str>>,
    commands: Vec<CommandPattern>,
}

/// `pattern` with `{device}` levels replaced by `device`.
fn put_device(pattern: &str, device: &str) -> String {
    pattern
        .split('/')
        .map(|l| if l == "{device}" { device } else { l })
        .collect::<Vec<_>>()
        .join("/")
}

/// Is every topic `filter` matches also matched by `allowed`? Both are valid
/// filters; `$share/{group}/` is compared as the literal levels it is, so a
/// shared subscription needs a pattern that names `$share`.
pub fn filter_within(filter: &str, allowed: &str) -> bool {
    // A wildcard first level never matches a `$` topic (MQTT 4.7.2): a
    // filter for `$SYS/...` is not within `#` or `+/...`; inside a shared
    // subscription the rule applies to the filters after `$share/{group}/`.
    let inner = |f: &'_ str| -> Option<String> {
        let rest = f.strip_prefix("$share/")?;
        rest.split_once('/').map(|(_, f)| f.to_owned())
    };
    let (f, a) = match (inner(filter), inner(allowed)) {
        (Some(f), Some(a)) => (f, a),
        _ => (filter.to_owned(), allowed.to_owned()),
    };
    if f.starts_with('$') && (a.starts_with('#') || a.starts_with('+')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut a = allowed.split('/');
    loop {
        match (a.next(), f.next()) {
            (Some("#"), _) => return true,
            (None, None) => return true,
            (None, Some(_)) | (Some(_), None) => return false,
            (Some(_), Some("#")) => return false,
            (Some("+"), Some(_)) => {}
            (Some(x), Some(y)) => {
                if x != y || y == "+" {
                    return false;
                }
            }
        }
    }
}

/// A refusal: the rule, why, and the MQTT 5 reason code to answer with.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The deciding rule.
    pub rule: Rule,
    /// Why, for the record.
    pub reason: String,
    /// Reason code for an MQTT 5 answer (PUBACK/PUBREC/CONNACK).
    pub code: u8,
}

impl Refusal {
    fn new(rule: Rule, reason: String, code: u8) -> Self {
        Refusal { rule, reason, code }
    }
}

/// What policy says of a client's PUBLISH.
#[derive(Debug, Clone)]
pub struct PublishVerdict {
    /// `None`: forward it.
    pub refusal: Option<Refusal>,
    /// A command: its facts (also when refused).
    pub command: Option<MqttCommand>,
    /// Telemetry alerts on a forwarded reading: (rule, why, the reading).
    pub alerts: Vec<(Rule, String, String)>,
}

impl MqttPolicy {
    /// Compiles the MQTT part of route `r`.
    pub fn compile(
        v: &Validated,
        r: &wardgate_config::ResolvedRoute,
        signers: Arc<[authority::SignerKey]>,
    ) -> MqttPolicy {
        let m = r.mqtt.clone().unwrap_or_default();
        let mut profiles = HashMap::new();
        let mut client_ids = HashMap::new();
        let mut commands: Vec<CommandPattern> = Vec::new();
        for p in &v.config.mqtt_profiles {
            for c in &p.commands {
                if let Some(at) = c.get_ref().split('/').position(|l| l == "{device}") {
                    commands.push(CommandPattern {
                        device_at: at,
                        profile: Arc::from(p.id.get_ref().as_str()),
                    });
                }
            }
        }
        commands.sort_by_key(|c| (c.device_at, c.profile.clone()));
        commands.dedup_by(|a, b| a.device_at == b.device_at && a.profile == b.profile);
        for d in &v.config.devices {
            let id: Arc<str> = Arc::from(d.id.get_ref().as_str());
            if d.client_ids.is_empty() {
                client_ids.insert(Box::from(d.id.get_ref().as_str()), id.clone());
            }
            for c in &d.client_ids {
                client_ids.insert(Box::from(c.get_ref().as_str()), id.clone());
            }
            let Some(pid) = &d.mqtt_profile else { continue };
            let Some(p) = v
                .config
                .mqtt_profiles
                .iter()
                .find(|p| p.id.get_ref() == pid.get_ref())
            else {
                continue;
            };
            let sub = |list: &[toml::Spanned<String>]| -> Vec<String> {
                list.iter().map(|x| put_device(x.get_ref(), &id)).collect()
            };
            profiles.insert(
                id.clone(),
                Arc::new(DeviceProfile {
                    profile: Arc::from(p.id.get_ref().as_str()),
                    publish: sub(&p.publish),
                    subscribe: sub(&p.subscribe),
                    retain: sub(&p.retain),
                    will: sub(&p.will),
                    commands: sub(&p.commands),
                    max_qos: p.max_qos.as_ref().map_or(2, |q| *q.get_ref()),
                    max_payload: p
                        .max_payload_bytes
                        .as_ref()
                        .map_or(wardgate_config::DEFAULT_MAX_PAYLOAD_BYTES, |m| *m.get_ref()),
                    commands_per_hour: p.commands_per_hour.as_ref().map(|b| *b.get_ref()),
                    commands_per_day: p.commands_per_day.as_ref().map(|b| *b.get_ref()),
                    telemetry: p
                        .telemetry
                        .iter()
                        .map(|t| TelemetryCheck::compile(t, &id))
                        .collect(),
                }),
            );
        }
        MqttPolicy {
            commanders: m.commanders.iter().map(|c| Arc::from(c.as_str())).collect(),
            signed_commands: m.signed_commands,
            allow_cleartext_credentials: m.allow_cleartext_credentials,
            command_max_age_secs: m.command_max_age_secs,
            signers,
            limits: codec::Limits {
                max_packet_bytes: m.max_packet_bytes.max(64),
                ..codec::Limits::default()
            },
            profiles,
            client_ids,
            commands,
        }
    }

    /// A policy that allows nothing (a session on a route without one).
    pub fn empty() -> MqttPolicy {
        MqttPolicy {
            commanders: Vec::new(),
            signed_commands: true,
            allow_cleartext_credentials: false,
            command_max_age_secs: 0,
            signers: Arc::from(Vec::new()),
            limits: codec::Limits::default(),
            profiles: HashMap::new(),
            client_ids: HashMap::new(),
            commands: Vec::new(),
        }
    }

    /// A device's profile.
    pub fn profile(&self, device: &str) -> Option<&Arc<DeviceProfile>> {
        self.profiles.get(device)
    }

    /// Judges a CONNECT from `device` (the listener has TLS when `tls`).
    pub fn connect(&self, device: &str, c: &Connect<'_>, tls: bool) -> Result<(), Refusal> {
        let not_authorised = codec::reason::NOT_AUTHORIZED;
        let id_invalid = codec::reason::CLIENT_IDENTIFIER_NOT_VALID;
        match self.client_ids.get(c.client_id) {
            _ if c.client_id.is_empty() => {
                return Err(Refusal::new(
                    rules::MQTT_CLIENT_ID,
                    format!("device {device:?} connected with an empty client id: a broker-assigned id cannot be bound to the device"),
                    id_invalid,
                ));
            }
            Some(owner) if &**owner == device => {}
            Some(owner) => {
                return Err(Refusal::new(
                    rules::MQTT_CLIENT_ID,
                    format!(
                        "device {device:?} connected with client id {:?}, which is device {owner:?}'s",
                        c.client_id
                    ),
                    id_invalid,
                ));
            }
            None => {
                return Err(Refusal::new(
                    rules::MQTT_CLIENT_ID,
                    format!(
                        "device {device:?} connected with client id {:?}, not one of its client_ids",
                        c.client_id
                    ),
                    id_invalid,
                ));
            }
        }
        if (c.has_password() || c.username.is_some()) && !tls && !self.allow_cleartext_credentials {
            let what = if c.has_password() {
                "a user name and password"
            } else {
                "a user name"
            };
            return Err(Refusal::new(
                rules::MQTT_CLEARTEXT_CREDENTIALS,
                format!("device {device:?} sent {what} in clear (the listener has no TLS and the route does not allow_cleartext_credentials); the password is not recorded"),
                not_authorised,
            ));
        }
        let Some(p) = self.profiles.get(device) else {
            return Err(Refusal::new(
                rules::MQTT_PUBLISH,
                format!("device {device:?} has no mqtt_profile"),
                not_authorised,
            ));
        };
        if let Some(w) = &c.will {
            let targets = self.command_targets(w.topic);
            if !targets.is_empty() {
                return Err(Refusal::new(
                    rules::MQTT_NOT_COMMANDER,
                    format!(
                        "will topic {:?} is a command topic of {}: a will is published by the broker later, unsigned and outside any budget",
                        w.topic,
                        targets.iter().map(|t| format!("{t:?}")).collect::<Vec<_>>().join(", ")
                    ),
                    not_authorised,
                ));
            }
            if w.payload.len() as u64 > p.max_payload {
                return Err(Refusal::new(
                    rules::MQTT_PAYLOAD,
                    format!(
                        "a {}-byte will, above profile {:?}'s max_payload_bytes {}",
                        w.payload.len(),
                        &*p.profile,
                        p.max_payload
                    ),
                    not_authorised,
                ));
            }
            if !any_match(&p.will, w.topic) {
                return Err(Refusal::new(
                    rules::MQTT_WILL,
                    format!(
                        "will topic {:?} is not among profile {:?}'s will topics",
                        w.topic, &*p.profile
                    ),
                    not_authorised,
                ));
            }
            if w.retain && !any_match(&p.retain, w.topic) {
                return Err(Refusal::new(
                    rules::MQTT_RETAIN,
                    format!(
                        "a retained will on {:?}, where profile {:?} allows no retained messages",
                        w.topic, &*p.profile
                    ),
                    not_authorised,
                ));
            }
            if w.qos as u8 > p.max_qos {
                return Err(Refusal::new(
                    rules::MQTT_QOS,
                    format!(
                        "will QoS {} is above profile {:?}'s max_qos {}",
                        w.qos as u8, &*p.profile, p.max_qos
                    ),
                    codec::reason::QOS_NOT_SUPPORTED,
                ));
            }
        }
        Ok(())
    }

    /// Judges each filter of a SUBSCRIBE: the filters beyond the profile.
    pub fn subscribe<'f>(
        &self,
        device: &str,
        filters: impl Iterator<Item = &'f str>,
    ) -> SmallVec<[&'f str; 4]> {
        let allowed: &[String] = self.profiles.get(device).map_or(&[], |p| &p.subscribe);
        filters
            .filter(|f| !allowed.iter().any(|a| filter_within(f, a)))
            .collect()
    }

    /// May the broker deliver `topic` to `device`? Only on its profile's
    /// subscriptions (a `$share/{group}/` pattern delivers its filter's topics).
    pub fn may_receive(&self, device: &str, topic: &str) -> bool {
        let Some(p) = self.profiles.get(device) else {
            return false;
        };
        p.subscribe.iter().any(|f| {
            let f = match f.strip_prefix("$share/") {
                Some(rest) => rest.split_once('/').map_or(rest, |(_, f)| f),
                None => f,
            };
            topic_matches(f, topic)
        })
    }

    /// The devices whose command topic `topic` is.
    pub fn command_targets(&self, topic: &str) -> SmallVec<[Arc<str>; 1]> {
        let mut out: SmallVec<[Arc<str>; 1]> = SmallVec::new();
        for c in &self.commands {
            let Some(level) = topic.split('/').nth(c.device_at) else {
                continue;
            };
            let Some((id, p)) = self.profiles.get_key_value(level) else {
                continue;
            };
            if p.profile == c.profile && any_match(&p.commands, topic) && !out.contains(id) {
                out.push(id.clone());
            }
        }
        out
    }

    /// Judges a client's PUBLISH to `topic` (an alias resolved) from `device`.
    /// Commands are checked against `authority` (signature, replay, budget) at
    /// `now_unix`; a command's budget is spent only when it is allowed.
    pub fn publish(
        &self,
        device: &str,
        version: Version,
        topic: &str,
        p: &Publish<'_>,
        authority: &Mutex<Authority>,
        now_unix: i64,
    ) -> PublishVerdict {
        let mut v = PublishVerdict {
            refusal: None,
            command: None,
            alerts: Vec::new(),
        };
        let not_authorised = codec::reason::NOT_AUTHORIZED;
        let Some(prof) = self.profiles.get(device) else {
            v.refusal = Some(Refusal::new(
                rules::MQTT_PUBLISH,
                format!("device {device:?} has no mqtt_profile"),
                not_authorised,
            ));
            return v;
        };
        // A command topic first: a probe of another device's commands is
        // WG-MQTT-009 whatever else is wrong with it.
        let targets = self.command_targets(topic);
        if !targets.is_empty() && !self.commanders.iter().any(|c| &**c == device) {
            self.command(
                device, version, topic, p, &targets, authority, now_unix, &mut v,
            );
            return v;
        }
        // A retained command would be delivered again at every subscription,
        // past its nonce and its budget: never, whatever the profile retains.
        if !targets.is_empty() && p.retain {
            v.refusal = Some(Refusal::new(
                rules::MQTT_RETAIN,
                format!("a retained command on {topic:?}: the broker would deliver it again at every subscription, past its nonce and its budget"),
                not_authorised,
            ));
            return v;
        }
        let len = p.payload.len() as u64;
        if len > prof.max_payload {
            v.refusal = Some(Refusal::new(
                rules::MQTT_PAYLOAD,
                format!(
                    "a {len}-byte payload on {topic:?}, above profile {:?}'s max_payload_bytes {}",
                    &*prof.profile, prof.max_payload
                ),
                not_authorised,
            ));
            return v;
        }
        if p.qos as u8 > prof.max_qos {
            v.refusal = Some(Refusal::new(
                rules::MQTT_QOS,
                format!(
                    "QoS {} on {topic:?}, above profile {:?}'s max_qos {}",
                    p.qos as u8, &*prof.profile, prof.max_qos
                ),
                not_authorised,
            ));
            return v;
        }
        if p.retain && !any_match(&prof.retain, topic) {
            v.refusal = Some(Refusal::new(
                rules::MQTT_RETAIN,
                format!(
                    "a retained message on {topic:?}, where profile {:?} allows none",
                    &*prof.profile
                ),
                not_authorised,
            ));
            return v;
        }
        if targets.is_empty() {
            if !any_match(&prof.publish, topic) {
                v.refusal = Some(Refusal::new(
                    rules::MQTT_PUBLISH,
                    format!(
                        "topic {topic:?} is not among profile {:?}'s publish topics",
                        &*prof.profile
                    ),
                    not_authorised,
                ));
                return v;
            }
            for t in &prof.telemetry {
                if let Some(alert) = t.check(topic, p.payload) {
                    v.alerts.push(alert);
                }
            }
            return v;
        }
        self.command(
            device, version, topic, p, &targets, authority, now_unix, &mut v,
        );
        v
    }

    /// The command checks: commander, signature and replay, then each
    /// target's budget (spent only if every check passes).
    #[allow(clippy::too_many_arguments)]
    fn command(
        &self,
        device: &str,
        version: Version,
        topic: &str,
        p: &Publish<'_>,
        targets: &[Arc<str>],
        authority: &Mutex<Authority>,
        now_unix: i64,
        v: &mut PublishVerdict,
    ) {
        let not_authorised = codec::reason::NOT_AUTHORIZED;
        let names = targets
            .iter()
            .map(|t| format!("{t:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut facts = MqttCommand {
            target_device: targets.iter().map(|t| &**t).collect::<Vec<_>>().join(","),
            commander: device.to_owned(),
            ..MqttCommand::default()
        };
        if !self.commanders.iter().any(|c| &**c == device) {
            v.refusal = Some(Refusal::new(
                rules::MQTT_NOT_COMMANDER,
                format!("device {device:?}, not a commander of this route, published to {topic:?}, a command topic of {names}"),
                not_authorised,
            ));
            v.command = Some(facts);
            return;
        }
        // A poisoned lock only means another connection panicked mid-update;
        // the state is still bounded and consistent enough to refuse from.
        let mut auth = authority.lock().unwrap_or_else(|e| e.into_inner());
        auth.follow(&self.signers, self.command_max_age_secs);
        if self.signed_commands {
            let env = match envelope(version, p) {
                Ok(Some(e)) => e,
                Ok(None) => {
                    v.refusal = Some(Refusal::new(
                        rules::MQTT_COMMAND_SIGNATURE,
                        format!("command to {names} on {topic:?} carries no signature"),
                        not_authorised,
                    ));
                    v.command = Some(facts);
                    return;
                }
                Err(why) => {
                    v.refusal = Some(Refusal::new(
                        rules::MQTT_COMMAND_SIGNATURE,
                        format!("command to {names} on {topic:?}: {why}"),
                        not_authorised,
                    ));
                    v.command = Some(facts);
                    return;
                }
            };
            facts.nonce = env.nonce.to_owned();
            // The route's window (the authority remembers nonces for the
            // longest window of any route).
            let offset = now_unix.saturating_sub(env.timestamp);
            if offset.unsigned_abs() > self.command_max_age_secs {
                v.refusal = Some(Refusal::new(
                    rules::MQTT_COMMAND_STALE,
                    format!("command to {names} on {topic:?} signed {offset} s from the gateway's clock, beyond command_max_age_secs {}", self.command_max_age_secs),
                    not_authorised,
                ));
                v.command = Some(facts);
                return;
            }
            match auth.check_signature(device, topic, &env, now_unix) {
                Ok(signer) => facts.signer = signer.to_string(),
                Err(r) => {
                    v.refusal = Some(Refusal::new(
                        r.rule(),
                        format!("command to {names} on {topic:?}: {r}"),
                        not_authorised,
                    ));
                    v.command = Some(facts);
                    return;
                }
            }
        }
        for (i, t) in targets.iter().enumerate() {
            let Some(prof) = self.profiles.get(t) else {
                continue;
            };
            match auth.spend(t, prof.commands_per_hour, prof.commands_per_day, now_unix) {
                Ok(b) => {
                    facts.hour_used = Some(b.hour_used);
                    facts.day_used = Some(b.day_used);
                }
                Err(r) => {
                    // All targets or none: the earlier ones get theirs back.
                    for earlier in &targets[..i] {
                        auth.refund(earlier, now_unix);
                    }
                    v.refusal = Some(Refusal::new(
                        r.rule(),
                        format!("command to {t:?} on {topic:?}: {r}"),
                        codec::reason::QUOTA_EXCEEDED,
                    ));
                    v.command = Some(facts);
                    return;
                }
            }
        }
        v.command = Some(facts);
    }
}

/// A PUBLISH's signature envelope: MQTT 5 user properties, else the payload
/// envelope (both versions). A 5.0 PUBLISH with any `wg-*` property must use
/// properties.
fn envelope<'a>(
    version: Version,
    p: &Publish<'a>,
) -> Result<Option<Envelope<'a>>, authority::SignatureFault> {
    if version.v5() {
        if let Some(e) = authority::envelope_v5(&p.properties, p.payload)? {
            return Ok(Some(e));
        }
    }
    authority::envelope_payload(p.payload)
}

#[cfg(test)]
mod tests;
