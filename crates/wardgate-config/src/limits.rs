//! Flood protection settings: `[gateway.limits]` (every device) and
//! `[device.limits]` (one device's overrides, key by key).
//!
//! The defaults are generous on purpose: they must never slow a device doing its
//! job (a pump server relaying hundreds of messages a second, an interface engine
//! replaying a backlog, a modality opening a few associations at once), only a
//! device that floods. `docs/configuration.md` gives the reasoning per key.

use crate::{Level, Problem, Source, Spanned};
use serde::Deserialize;
use std::ops::RangeInclusive;

/// `[gateway.limits]`: per-device flood limits, the same for every device unless
/// its `[device.limits]` overrides a key. Connections from addresses that are no
/// enrolled device get these limits per source address.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FloodSettings {
    /// Connections one device may have open at once, across all routes; more are
    /// refused right after accept. Default 64.
    #[serde(default = "defaults::max_connections_per_device")]
    pub max_connections_per_device: Spanned<u64>,
    /// New connections per second one device may open (sustained); more are
    /// refused right after accept. Default 50.
    #[serde(default = "defaults::new_connections_per_sec")]
    pub new_connections_per_sec: Spanned<u64>,
    /// New connections one device may open at once above the sustained rate. Default 100.
    #[serde(default = "defaults::new_connections_burst")]
    pub new_connections_burst: Spanned<u64>,
    /// Messages per second one device may send (sustained), across all its
    /// connections: HL7 frames, DICOM DIMSE commands. Above it messages are
    /// throttled: held back (TCP backpressure), never dropped. Default 2000.
    #[serde(default = "defaults::messages_per_sec")]
    pub messages_per_sec: Spanned<u64>,
    /// Messages one device may send at once above the sustained rate. Default 4000.
    #[serde(default = "defaults::messages_burst")]
    pub messages_burst: Spanned<u64>,
    /// A flood episode ends when the device has hit no limit for this long
    /// (seconds); its summary event is recorded then. Default 10.
    #[serde(default = "defaults::flood_quiet_secs")]
    pub flood_quiet_secs: Spanned<u64>,
}

impl Default for FloodSettings {
    fn default() -> Self {
        FloodSettings {
            max_connections_per_device: defaults::max_connections_per_device(),
            new_connections_per_sec: defaults::new_connections_per_sec(),
            new_connections_burst: defaults::new_connections_burst(),
            messages_per_sec: defaults::messages_per_sec(),
            messages_burst: defaults::messages_burst(),
            flood_quiet_secs: defaults::flood_quiet_secs(),
        }
    }
}

/// `[device.limits]`: the same keys as `[gateway.limits]`, each optional; a key
/// left out takes the gateway's value.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceLimits {
    /// See [`FloodSettings::max_connections_per_device`].
    #[serde(default)]
    pub max_connections_per_device: Option<Spanned<u64>>,
    /// See [`FloodSettings::new_connections_per_sec`].
    #[serde(default)]
    pub new_connections_per_sec: Option<Spanned<u64>>,
    /// See [`FloodSettings::new_connections_burst`].
    #[serde(default)]
    pub new_connections_burst: Option<Spanned<u64>>,
    /// See [`FloodSettings::messages_per_sec`].
    #[serde(default)]
    pub messages_per_sec: Option<Spanned<u64>>,
    /// See [`FloodSettings::messages_burst`].
    #[serde(default)]
    pub messages_burst: Option<Spanned<u64>>,
    /// See [`FloodSettings::flood_quiet_secs`].
    #[serde(default)]
    pub flood_quiet_secs: Option<Spanned<u64>>,
}

/// One device's effective flood limits, resolved and range-checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloodLimits {
    /// Connections open at once.
    pub max_connections: u32,
    /// New connections per second, sustained.
    pub new_connections_per_sec: u32,
    /// New connections above the sustained rate.
    pub new_connections_burst: u32,
    /// Messages per second, sustained.
    pub messages_per_sec: u32,
    /// Messages above the sustained rate.
    pub messages_burst: u32,
    /// Seconds without a limit hit that end a flood episode.
    pub quiet_secs: u32,
}

impl Default for FloodLimits {
    fn default() -> Self {
        FloodSettings::default().resolve()
    }
}

/// Accepted range of each key (zero is never meaningful: it would refuse everything).
const RANGES: [(&str, RangeInclusive<u64>); 6] = [
    ("max_connections_per_device", 1..=1_000_000),
    ("new_connections_per_sec", 1..=1_000_000),
    ("new_connections_burst", 1..=1_000_000),
    ("messages_per_sec", 1..=10_000_000),
    ("messages_burst", 1..=10_000_000),
    ("flood_quiet_secs", 1..=86_400),
];

fn clamp(key: usize, v: u64) -> u32 {
    let r = &RANGES[key % RANGES.len()].1;
    u32::try_from(v.clamp(*r.start(), *r.end())).unwrap_or(u32::MAX)
}

impl FloodSettings {
    fn values(&self) -> [&Spanned<u64>; 6] {
        [
            &self.max_connections_per_device,
            &self.new_connections_per_sec,
            &self.new_connections_burst,
            &self.messages_per_sec,
            &self.messages_burst,
            &self.flood_quiet_secs,
        ]
    }

    /// The limits every device gets unless it overrides them (values out of range,
    /// which validation refuses, are clamped into it).
    pub fn resolve(&self) -> FloodLimits {
        let v = self.values().map(|s| *s.get_ref());
        from_array([0, 1, 2, 3, 4, 5].map(|i| clamp(i, v[i])))
    }
}

impl DeviceLimits {
    fn values(&self) -> [Option<&Spanned<u64>>; 6] {
        [
            self.max_connections_per_device.as_ref(),
            self.new_connections_per_sec.as_ref(),
            self.new_connections_burst.as_ref(),
            self.messages_per_sec.as_ref(),
            self.messages_burst.as_ref(),
            self.flood_quiet_secs.as_ref(),
        ]
    }

    /// `base` with this device's overrides applied.
    pub fn over(&self, base: FloodLimits) -> FloodLimits {
        let b = to_array(base);
        let v = self.values();
        from_array([0, 1, 2, 3, 4, 5].map(|i| v[i].map_or(b[i], |s| clamp(i, *s.get_ref()))))
    }
}

fn to_array(l: FloodLimits) -> [u32; 6] {
    [
        l.max_connections,
        l.new_connections_per_sec,
        l.new_connections_burst,
        l.messages_per_sec,
        l.messages_burst,
        l.quiet_secs,
    ]
}

fn from_array(a: [u32; 6]) -> FloodLimits {
    FloodLimits {
        max_connections: a[0],
        new_connections_per_sec: a[1],
        new_connections_burst: a[2],
        messages_per_sec: a[3],
        messages_burst: a[4],
        quiet_secs: a[5],
    }
}

/// Checks `[gateway.limits]` and every `[device.limits]`: each value in range
/// (errors, at the value), and combinations that cannot do what they say (warnings).
pub(crate) fn check(
    src: &Source,
    gateway: &crate::Gateway,
    devices: &[crate::Device],
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<Problem>,
) {
    let mut range_check = |what: &str, key: usize, v: &Spanned<u64>| {
        let (name, range) = &RANGES[key];
        if !range.contains(v.get_ref()) {
            problems.push(src.problem(
                v.span(),
                Level::Error,
                format!(
                    "{what}{name} = {} must be in {}..={}",
                    v.get_ref(),
                    range.start(),
                    range.end()
                ),
            ));
        }
    };
    let g = &gateway.limits;
    for (i, v) in g.values().into_iter().enumerate() {
        range_check("gateway.limits.", i, v);
    }
    let base = g.resolve();
    let mut combos = vec![("gateway.limits".to_owned(), base, g.messages_per_sec.span())];
    for d in devices {
        let Some(l) = &d.limits else { continue };
        for (i, v) in l.values().into_iter().enumerate() {
            if let Some(v) = v {
                range_check(&format!("device {:?}: ", d.id.get_ref()), i, v);
            }
        }
        let span = l
            .values()
            .into_iter()
            .flatten()
            .next()
            .map_or_else(|| d.id.span(), |s| s.span());
        combos.push((format!("device {:?}", d.id.get_ref()), l.over(base), span));
    }
    for (who, l, span) in combos {
        if u64::from(l.max_connections) > gateway.max_connections {
            warnings.push(src.problem(
                span.clone(),
                Level::Warning,
                format!(
                    "{who}: max_connections_per_device = {} is above the gateway's max_connections = {}; the gateway-wide cap is reached first",
                    l.max_connections, gateway.max_connections
                ),
            ));
        }
        // A throttled message waits at most for the tokens reserved ahead of it,
        // one per open connection of the device (see wardgate-engine flood.rs).
        let longest_wait = f64::from(l.max_connections) / f64::from(l.messages_per_sec);
        if longest_wait > gateway.frame_timeout_secs as f64 {
            warnings.push(src.problem(
                span,
                Level::Warning,
                format!(
                    "{who}: with {} connections and {} messages/s, a throttled message may wait {longest_wait:.0} s, longer than frame_timeout_secs = {}",
                    l.max_connections, l.messages_per_sec, gateway.frame_timeout_secs
                ),
            ));
        }
    }
}

mod defaults {
    use toml::Spanned;
    // Why these numbers: docs/configuration.md, `[gateway.limits]`.
    pub fn max_connections_per_device() -> Spanned<u64> {
        Spanned::new(0..0, 64)
    }
    pub fn new_connections_per_sec() -> Spanned<u64> {
        Spanned::new(0..0, 50)
    }
    pub fn new_connections_burst() -> Spanned<u64> {
        Spanned::new(0..0, 100)
    }
    pub fn messages_per_sec() -> Spanned<u64> {
        Spanned::new(0..0, 2000)
    }
    pub fn messages_burst() -> Spanned<u64> {
        Spanned::new(0..0, 4000)
    }
    pub fn flood_quiet_secs() -> Spanned<u64> {
        Spanned::new(0..0, 10)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Config, ConfigError, FloodLimits, Level, Problem, Validated};
    use std::path::Path;

    const MINIMAL: &str = include_str!("../../../examples/minimal.toml");

    fn parse(text: &str) -> Result<Validated, ConfigError> {
        Config::parse(text, "site.toml", Path::new("/etc/wardgate"))
    }

    fn errors(text: &str) -> Vec<Problem> {
        match parse(text) {
            Err(ConfigError::Invalid(p)) => {
                p.into_iter().filter(|p| p.level == Level::Error).collect()
            }
            other => panic!("expected problems, got {other:?}"),
        }
    }

    /// `text` with `extra` inserted right after the `[gateway]` table's keys.
    fn with_gateway(extra: &str) -> String {
        MINIMAL.replacen("\n\n[[device]]", &format!("\n{extra}\n\n[[device]]"), 1)
    }

    /// `text` with a `[device.limits]` table for the first device ("ehr").
    fn with_device_limits(extra: &str) -> String {
        MINIMAL.replacen(
            "addresses = [\"127.0.0.2\"]\n",
            &format!("addresses = [\"127.0.0.2\"]\n\n[device.limits]\n{extra}\n"),
            1,
        )
    }

    #[test]
    fn defaults_are_generous_and_documented() {
        let v = parse(MINIMAL).unwrap();
        assert_eq!(
            v.config.gateway.limits.resolve(),
            FloodLimits {
                max_connections: 64,
                new_connections_per_sec: 50,
                new_connections_burst: 100,
                messages_per_sec: 2000,
                messages_burst: 4000,
                quiet_secs: 10,
            }
        );
        assert_eq!(FloodLimits::default(), v.config.gateway.limits.resolve());
        assert!(v.config.devices.iter().all(|d| d.limits.is_none()));
    }

    #[test]
    fn gateway_limits_are_read() {
        let text = with_gateway(
            "\n[gateway.limits]\nmax_connections_per_device = 8\nnew_connections_per_sec = 5\nnew_connections_burst = 10\nmessages_per_sec = 100\nmessages_burst = 200\nflood_quiet_secs = 3",
        );
        let v = parse(&text).unwrap();
        let l = v.config.gateway.limits.resolve();
        assert_eq!(
            (
                l.max_connections,
                l.new_connections_per_sec,
                l.new_connections_burst
            ),
            (8, 5, 10)
        );
        assert_eq!(
            (l.messages_per_sec, l.messages_burst, l.quiet_secs),
            (100, 200, 3)
        );
    }

    #[test]
    fn a_device_overrides_key_by_key() {
        let text = with_device_limits("messages_per_sec = 50\nmax_connections_per_device = 4");
        let v = parse(&text).unwrap();
        let base = v.config.gateway.limits.resolve();
        let ehr = v.config.devices[0].limits.as_ref().unwrap().over(base);
        assert_eq!(ehr.messages_per_sec, 50);
        assert_eq!(ehr.max_connections, 4);
        assert_eq!(ehr.messages_burst, base.messages_burst);
        assert_eq!(ehr.quiet_secs, base.quiet_secs);
    }

    #[test]
    fn zero_and_out_of_range_values_are_refused_at_their_location() {
        let text =
            with_gateway("\n[gateway.limits]\nmessages_per_sec = 0\nflood_quiet_secs = 100000");
        let p = errors(&text);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p[0].message
                .contains("gateway.limits.messages_per_sec = 0 must be in 1..="),
            "{p:?}"
        );
        assert_eq!((p[0].line, p[0].column), (5, 20), "{p:?}");
        assert!(p[1].message.contains("flood_quiet_secs"), "{p:?}");
        assert_eq!(p[1].line, 6);

        let text = with_device_limits("max_connections_per_device = 0");
        let p = errors(&text);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].message
                .starts_with("device \"ehr\": max_connections_per_device = 0"),
            "{p:?}"
        );
        assert_eq!(p[0].line, 10, "{p:?}");
    }

    #[test]
    fn unknown_and_mistyped_keys_are_refused() {
        let p = errors(&with_gateway(
            "\n[gateway.limits]\nmessages_per_second = 10",
        ));
        assert!(
            p[0].message.contains("unknown key `messages_per_second`")
                && p[0].message.contains("did you mean `messages_per_sec`"),
            "{p:?}"
        );
        let p = errors(&with_device_limits("messages_per_sec = -1"));
        assert_eq!(p.len(), 1, "{p:?}");
        let p = errors(&with_device_limits("messages_per_sec = \"lots\""));
        assert_eq!(p.len(), 1, "{p:?}");
    }

    #[test]
    fn limits_that_cannot_work_as_written_are_warned_about() {
        let text = with_device_limits("max_connections_per_device = 10000\nmessages_per_sec = 10");
        let v = parse(&text).unwrap();
        let w: Vec<_> = v.warnings.iter().map(|w| w.message.as_str()).collect();
        assert!(
            w.iter()
                .any(|m| m.contains("above the gateway's max_connections")),
            "{w:?}"
        );
        assert!(w.iter().any(|m| m.contains("may wait 1000 s")), "{w:?}");
    }
}
