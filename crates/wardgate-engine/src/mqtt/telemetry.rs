//! Telemetry sanity: is a reading in its declared format and plausible range?
//! Alerts only: a reading is forwarded whatever it holds (blocking vitals
//! would hide a deteriorating patient), but the people who act on it hear of
//! one that is malformed or implausible.
//!
//! JSON is read strictly: a repeated key is malformed (one parser takes the
//! first, another the last: the value judged might not be the one shown), and
//! numbers must be finite.

use crate::rules::{self, Rule};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::fmt;
use wardgate_proto::mqtt::codec::topic_matches;

/// What a field must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Number,
    String,
    Boolean,
}

#[derive(Debug, Clone)]
struct Field {
    name: String,
    kind: Kind,
    min: Option<f64>,
    max: Option<f64>,
    required: bool,
}

#[derive(Debug, Clone)]
enum Format {
    Number { min: Option<f64>, max: Option<f64> },
    Json(Vec<Field>),
}

/// One `[[mqtt_profile.telemetry]]`, `{device}` put in.
#[derive(Debug, Clone)]
pub struct TelemetryCheck {
    topic: String,
    format: Format,
}

impl TelemetryCheck {
    /// Compiles a checked configuration entry for `device`.
    pub fn compile(t: &wardgate_config::Telemetry, device: &str) -> Self {
        let get = |v: &Option<toml::Spanned<f64>>| v.as_ref().map(|x| *x.get_ref());
        let format = if t.format.get_ref() == "json" {
            Format::Json(
                t.fields
                    .iter()
                    .map(|(name, f)| Field {
                        name: name.clone(),
                        kind: match f.kind.as_ref().map(|k| k.get_ref().as_str()) {
                            Some("string") => Kind::String,
                            Some("boolean") => Kind::Boolean,
                            _ => Kind::Number,
                        },
                        min: get(&f.min),
                        max: get(&f.max),
                        required: f.required.as_ref().is_none_or(|r| *r.get_ref()),
                    })
                    .collect(),
            )
        } else {
            Format::Number {
                min: get(&t.min),
                max: get(&t.max),
            }
        };
        TelemetryCheck {
            topic: super::put_device(t.topic.get_ref(), device),
            format,
        }
    }

    /// Judges a payload published on `topic`: `None` if the check does not
    /// apply or the reading is sound, else (rule, why, the reading judged).
    pub fn check(&self, topic: &str, payload: &[u8]) -> Option<(Rule, String, String)> {
        if !topic_matches(&self.topic, topic) {
            return None;
        }
        match &self.format {
            Format::Number { min, max } => {
                let Some(v) = std::str::from_utf8(payload).ok().and_then(number) else {
                    return Some((
                        rules::MQTT_TELEMETRY_MALFORMED,
                        format!(
                            "the reading on {topic:?} is not a number ({} bytes)",
                            payload.len()
                        ),
                        String::new(),
                    ));
                };
                range(topic, "", v, *min, *max)
            }
            Format::Json(fields) => {
                let value = match serde_json::from_slice::<Strict>(payload) {
                    Ok(Strict(v)) => v,
                    Err(e) => {
                        return Some((
                            rules::MQTT_TELEMETRY_MALFORMED,
                            format!("the reading on {topic:?} is not valid JSON: {e}"),
                            String::new(),
                        ))
                    }
                };
                for f in fields {
                    let mut at = Some(&value);
                    for part in f.name.split('.') {
                        at = at.and_then(|v| v.as_object()).and_then(|o| o.get(part));
                    }
                    let Some(v) = at else {
                        if f.required {
                            return Some((
                                rules::MQTT_TELEMETRY_MALFORMED,
                                format!("the reading on {topic:?} has no field {:?}", f.name),
                                f.name.clone(),
                            ));
                        }
                        continue;
                    };
                    let ok = match f.kind {
                        Kind::Number => v.is_number(),
                        Kind::String => v.is_string(),
                        Kind::Boolean => v.is_boolean(),
                    };
                    if !ok {
                        return Some((
                            rules::MQTT_TELEMETRY_MALFORMED,
                            format!(
                                "field {:?} of the reading on {topic:?} is not a {}",
                                f.name,
                                match f.kind {
                                    Kind::Number => "number",
                                    Kind::String => "string",
                                    Kind::Boolean => "boolean",
                                }
                            ),
                            f.name.clone(),
                        ));
                    }
                    if let Some(n) = v.as_f64() {
                        if let Some(alert) = range(topic, &f.name, n, f.min, f.max) {
                            return Some(alert);
                        }
                    }
                }
                None
            }
        }
    }
}

fn range(
    topic: &str,
    field: &str,
    v: f64,
    min: Option<f64>,
    max: Option<f64>,
) -> Option<(Rule, String, String)> {
    let low = min.is_some_and(|m| v < m);
    let high = max.is_some_and(|m| v > m);
    if !low && !high {
        return None;
    }
    let what = if field.is_empty() {
        String::new()
    } else {
        format!(" field {field:?}")
    };
    let bound = if low {
        format!("below the plausible minimum {}", min.unwrap_or_default())
    } else {
        format!("above the plausible maximum {}", max.unwrap_or_default())
    };
    Some((
        rules::MQTT_TELEMETRY_IMPLAUSIBLE,
        format!("the reading on {topic:?}{what} is {v}, {bound}"),
        v.to_string(),
    ))
}

/// A decimal number as text: an optional `-`, digits, an optional fraction
/// and exponent; nothing around it, finite. Stricter than `f64::from_str`
/// (which takes `inf`, `NaN`, `+1`, `.5`): a reading a clinical system might
/// parse differently is malformed.
fn number(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let mut i = 0;
    if b.first() == Some(&b'-') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i > start
    };
    if !digits(&mut i) {
        return None;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return None;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return None;
        }
    }
    if i != b.len() {
        return None;
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// A JSON value read with every object's keys unique.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(k) = map.next_key::<String>()? {
            let Strict(v) = map.next_value()?;
            if out.insert(k.clone(), v).is_some() {
                return Err(serde::de::Error::custom(format!(
                    "key {k:?} appears twice (readers would disagree on its value)"
                )));
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_strict() {
        for ok in ["0", "72", "-3.5", "1e3", "98.6E-1"] {
            assert!(number(ok).is_some(), "{ok}");
        }
        for bad in [
            "", "-", "+1", ".5", "1.", "inf", "NaN", " 72", "72 ", "7 2", "0x10", "1e", "1e400",
        ] {
            assert!(number(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn repeated_json_keys_are_malformed() {
        assert!(serde_json::from_slice::<Strict>(br#"{"hr":70,"hr":300}"#).is_err());
        assert!(serde_json::from_slice::<Strict>(br#"{"a":{"hr":1},"b":{"hr":2}}"#).is_ok());
        assert!(serde_json::from_slice::<Strict>(br#"{"a":{"x":1,"x":2}}"#).is_err());
    }
}
