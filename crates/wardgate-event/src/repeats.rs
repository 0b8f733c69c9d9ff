//! Repeated identical alerts summarised per episode, as flood alerts are: the
//! first alert of a rule from one source on one route is an alert; the same
//! alert again within the quiet window is recorded whole but as a record
//! (`event.kind` `event`, with `wardgate.repeat` saying which episode it
//! belongs to), and once the source has been quiet for the window one summary
//! alert (`WG-ALERT-001`) counts the repeats. Nothing is dropped: every event
//! is in the audit log; what changes is how many of them page someone.
//!
//! Sans-IO: the caller gives the time and records what comes out.

use crate::event::{Event, Kind};
use crate::rules;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// What a repeat or a summary says of its episode (`wardgate.repeat`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepeatFacts {
    /// The rule that repeated.
    pub rule: String,
    /// When the episode's first alert was recorded.
    pub first: String,
    /// Occurrences so far (the first one included).
    pub count: u64,
}

/// What makes two alerts identical: the rule, the source address, the route,
/// and the other rules the same event carries (found by an adversarial
/// review: an order above a soft rate limit whose headline was a
/// non-standard concentration was recorded as a repeat of an earlier
/// concentration-only alert, and the soft-limit excess paged nobody).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    rule: String,
    others: Vec<String>,
    /// The drugs and patients of an infusion order's gives: a soft-limit
    /// excess for another drug or patient is no repeat (found by a second
    /// review: an insulin excess seconds after a heparin one from the same
    /// EHR paged nobody).
    subjects: Vec<(Option<String>, Option<String>)>,
    source: Option<std::net::IpAddr>,
    route: Option<String>,
}

#[derive(Debug)]
struct Episode {
    first_ts: String,
    first_ms: u64,
    last_ms: u64,
    last_ts: String,
    count: u64,
    /// The first alert, as the summary's context (flow, devices, route).
    sample: Event,
}

/// Open episodes, bounded.
#[derive(Debug)]
pub struct Repeats {
    window_ms: u64,
    max_open: usize,
    open: HashMap<Key, Episode>,
}

impl Repeats {
    /// Episodes end after `window_ms` without a repeat; at most `max_open`
    /// are tracked (beyond that, every alert stays an alert: loud, not lost).
    pub fn new(window_ms: u64, max_open: usize) -> Self {
        Repeats {
            window_ms: window_ms.max(1),
            max_open,
            open: HashMap::new(),
        }
    }

    /// An event about to be recorded at `now_ms` (a monotonic clock): a repeat
    /// within its episode becomes a record. Flood alerts have episodes of
    /// their own and are left alone, and so are device-risk findings
    /// (`WG-RISK-*`, `WG-MUD-*`): each is already one change, for one device
    /// and one advisory or flow, and carries no source address to tell
    /// them apart.
    pub fn observe(&mut self, e: &mut Event, now_ms: u64) {
        if e.event.kind != Kind::Alert {
            return;
        }
        let Some(rule) = e.rule.as_ref() else {
            return;
        };
        if rule.id.starts_with("WG-FLOOD-")
            || rule.id.starts_with("WG-RISK-")
            || rule.id.starts_with("WG-MUD-")
            || rule.id == rules::REPEATED_ALERTS.id
        {
            return;
        }
        let mut others: Vec<String> = e
            .wardgate
            .findings
            .iter()
            .filter(|f| f.rule != rule.id)
            .map(|f| f.rule.clone())
            .collect();
        others.sort_unstable();
        others.dedup();
        let subjects = e
            .wardgate
            .infusion
            .iter()
            .take(8)
            .map(|f| (f.library_drug.clone(), f.patient_id.clone()))
            .collect();
        let key = Key {
            rule: rule.id.clone(),
            others,
            subjects,
            source: e.source.as_ref().map(|s| s.ip),
            route: e.wardgate.route.clone(),
        };
        if let Some(ep) = self.open.get_mut(&key) {
            if now_ms.saturating_sub(ep.last_ms) < self.window_ms {
                ep.count += 1;
                ep.last_ms = now_ms;
                ep.last_ts = e.timestamp.clone();
                e.event.kind = Kind::Event;
                e.wardgate.repeat = Some(RepeatFacts {
                    rule: key.rule,
                    first: ep.first_ts.clone(),
                    count: ep.count,
                });
                return;
            }
        }
        if self.open.len() >= self.max_open && !self.open.contains_key(&key) {
            return;
        }
        self.open.insert(
            key,
            Episode {
                first_ts: e.timestamp.clone(),
                first_ms: now_ms,
                last_ms: now_ms,
                last_ts: e.timestamp.clone(),
                count: 1,
                sample: e.clone(),
            },
        );
    }

    /// Ends the episodes quiet for the window at `now_ms`: one summary alert
    /// for each that had repeats, stamped `ts`.
    pub fn sweep(&mut self, now_ms: u64, ts: &str) -> Vec<Event> {
        let window = self.window_ms;
        let done: Vec<Key> = self
            .open
            .iter()
            .filter(|(_, ep)| now_ms.saturating_sub(ep.last_ms) >= window)
            .map(|(k, _)| k.clone())
            .collect();
        done.into_iter()
            .filter_map(|k| self.open.remove(&k).and_then(|ep| summary(&k, ep, ts)))
            .collect()
    }

    /// Ends every episode (shutdown, end of a capture).
    pub fn finish(&mut self, ts: &str) -> Vec<Event> {
        self.open
            .drain()
            .filter_map(|(k, ep)| summary(&k, ep, ts))
            .collect()
    }
}

fn summary(k: &Key, ep: Episode, ts: &str) -> Option<Event> {
    if ep.count < 2 {
        return None;
    }
    let mut e = ep.sample;
    let severity = e.wardgate.severity;
    e.timestamp = ts.to_owned();
    // A notification about decisions already recorded, not another decision.
    e.event.action = crate::event::Action::Alerted;
    e.event.reason = format!(
        "{} repeated {} more time(s) from {} on route {} between {} and {} (each recorded, not alerted): {}",
        k.rule,
        ep.count - 1,
        k.source.map_or_else(|| "-".to_owned(), |s| s.to_string()),
        k.route.as_deref().unwrap_or("-"),
        ep.first_ts,
        ep.last_ts,
        e.event.reason
    );
    let _ = ep.first_ms;
    e.set_rule(rules::REPEATED_ALERTS);
    // As serious as what repeated.
    if let Some(s) = severity {
        e.event.severity = s.number();
        e.wardgate.severity = Some(s);
    }
    e.wardgate.repeat = Some(RepeatFacts {
        rule: k.rule.clone(),
        first: ep.first_ts,
        count: ep.count,
    });
    Some(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Action, Stage};

    fn alert(ts: &str, src: &str) -> Event {
        let mut e = Event::new(
            ts.into(),
            Action::Alerted,
            "a refused context".into(),
            Stage::Association,
        )
        .with_rule(rules::DICOM_SOP_CLASS)
        .with_flow(
            src.parse().unwrap(),
            "10.0.0.9:104".parse().unwrap(),
            "dicom",
        );
        e.wardgate.route = Some("imaging".into());
        e
    }

    /// Regression (adversarial review, session 33): an alert carrying another
    /// finding than the episode's first is an alert of its own; the same
    /// pair again is a repeat of it.
    #[test]
    fn an_alert_with_another_finding_is_no_repeat() {
        let mut r = Repeats::new(60_000, 16);
        let with = |ts: &str, extra: &[&str]| {
            let mut e = alert(ts, "10.0.0.1:4000");
            for x in extra {
                e.wardgate.findings.push(crate::event::Finding {
                    rule: (*x).into(),
                    severity: crate::rules::Severity::Medium,
                    detail: String::new(),
                });
            }
            e
        };
        let mut kinds = Vec::new();
        for (ts, extra) in [
            ("t1", &[][..]),
            ("t2", &["WG-INF-012"][..]),
            ("t3", &["WG-INF-012"][..]),
            ("t4", &[][..]),
        ] {
            let mut e = with(ts, extra);
            r.observe(&mut e, 1);
            kinds.push(e.event.kind);
        }
        assert_eq!(kinds, [Kind::Alert, Kind::Alert, Kind::Event, Kind::Event]);
    }

    /// Regression (second review, session 33): a soft-limit alert for another
    /// drug or patient from the same sender is no repeat.
    #[test]
    fn an_alert_for_another_drug_or_patient_is_no_repeat() {
        let mut r = Repeats::new(60_000, 16);
        let order = |ts: &str, drug: &str, patient: &str| {
            let mut e = alert(ts, "10.0.0.1:4000");
            e.wardgate.infusion.push(crate::event::InfusionFacts {
                library_drug: Some(drug.into()),
                patient_id: Some(patient.into()),
                ..Default::default()
            });
            e
        };
        let mut kinds = Vec::new();
        for (ts, drug, patient) in [
            ("t1", "heparin", "P1"),
            ("t2", "insulin", "P1"),
            ("t3", "insulin", "P2"),
            ("t4", "insulin", "P2"),
        ] {
            let mut e = order(ts, drug, patient);
            r.observe(&mut e, 1);
            kinds.push(e.event.kind);
        }
        assert_eq!(kinds, [Kind::Alert, Kind::Alert, Kind::Alert, Kind::Event]);
    }

    /// Regression: every new advisory hit of one assessment was recorded as a
    /// repeat of the first (no source, no route: one episode), so only the
    /// first reached the SIEM as an alert.
    #[test]
    fn risk_findings_are_each_an_alert() {
        let mut r = Repeats::new(60_000, 16);
        for (i, rule) in [
            rules::RISK_ADVISORY,
            rules::RISK_ADVISORY,
            rules::RISK_THRESHOLD,
            rules::MUD_DEVIATION,
            rules::MUD_DEVIATION,
        ]
        .into_iter()
        .enumerate()
        {
            let mut e = Event::new(
                format!("t{i}"),
                Action::Alerted,
                String::new(),
                Stage::Inventory,
            )
            .with_rule(rule);
            r.observe(&mut e, i as u64);
            assert_eq!(e.event.kind, Kind::Alert, "{}", rule.id);
            assert!(e.wardgate.repeat.is_none());
        }
    }

    #[test]
    fn repeats_are_records_and_the_episode_ends_in_one_summary() {
        let mut r = Repeats::new(60_000, 16);
        let mut first = alert("t0", "10.0.0.5:4000");
        r.observe(&mut first, 0);
        assert_eq!(first.event.kind, Kind::Alert);
        let mut kinds = Vec::new();
        for i in 1..=5u64 {
            let mut e = alert(&format!("t{i}"), "10.0.0.5:4001");
            r.observe(&mut e, i * 1000);
            kinds.push(e.event.kind);
            assert_eq!(e.wardgate.repeat.as_ref().unwrap().count, i + 1);
            assert_eq!(e.event.action, Action::Alerted, "the decision is unchanged");
        }
        assert!(kinds.iter().all(|k| *k == Kind::Event));
        // Another source is another episode.
        let mut other = alert("t6", "10.0.0.6:4000");
        r.observe(&mut other, 6000);
        assert_eq!(other.event.kind, Kind::Alert);
        // Not quiet yet.
        assert!(r.sweep(30_000, "t30").is_empty());
        let s = r.sweep(70_000, "t70");
        assert_eq!(s.len(), 1, "the lone alert needs no summary");
        let s = &s[0];
        assert_eq!(s.rule.as_ref().unwrap().id, "WG-ALERT-001");
        assert_eq!(s.event.kind, Kind::Alert);
        assert_eq!(s.event.action, Action::Alerted);
        assert_eq!(s.wardgate.severity, Some(rules::DICOM_SOP_CLASS.severity));
        assert!(
            s.event
                .reason
                .contains("repeated 5 more time(s) from 10.0.0.5 on route imaging"),
            "{}",
            s.event.reason
        );
        assert_eq!(s.wardgate.repeat.as_ref().unwrap().count, 6);
        // After the episode, the next one alerts again.
        let mut again = alert("t80", "10.0.0.5:4002");
        r.observe(&mut again, 80_000);
        assert_eq!(again.event.kind, Kind::Alert);
    }

    #[test]
    fn the_table_is_bounded_and_beyond_it_every_alert_stays_one() {
        let mut r = Repeats::new(60_000, 2);
        for i in 0..10u64 {
            let mut e = alert("t", &format!("10.0.1.{i}:4000"));
            r.observe(&mut e, i);
            assert_eq!(e.event.kind, Kind::Alert);
        }
        assert_eq!(r.open.len(), 2);
        assert!(r.finish("end").is_empty());
    }
}
