//! A site's choices about its alerts: a rule's severity changed, or its alerts
//! suppressed, for all traffic or only named devices and routes
//! (`[[rule_override]]` in the configuration). Applied to every event as it is
//! recorded, so the audit log, the index and every stream say the same. A
//! suppressed event is still recorded, whole (the record is complete, and the
//! decision itself is unchanged: a block still blocks); it is no longer an
//! alert (`event.kind` is `event`) and says which override quieted it, and why.

use crate::event::{Event, Kind};
use crate::rules::Severity;

/// One override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// The rule id it applies to.
    pub rule: String,
    /// The severity its events get instead of the rule's.
    pub severity: Option<Severity>,
    /// Its events are recorded but not alerted.
    pub suppress: bool,
    /// Only events from or to these devices (empty: any).
    pub devices: Vec<String>,
    /// Only events on these routes (empty: any).
    pub routes: Vec<String>,
    /// Why the site chose this (recorded with every event it changes).
    pub reason: String,
}

/// Every override of a site, first match wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    list: Vec<Override>,
}

impl Overrides {
    /// The site's overrides, in configuration order.
    pub fn new(list: Vec<Override>) -> Self {
        Overrides { list }
    }

    /// No override at all: the common case costs one check.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The overrides, in order.
    pub fn list(&self) -> &[Override] {
        &self.list
    }

    /// Changes `e` as the first override matching its rule, device and route
    /// says. True when one applied.
    pub fn apply(&self, e: &mut Event) -> bool {
        let Some(rule) = e.rule.as_ref() else {
            return false;
        };
        let w = &e.wardgate;
        let hit = self.list.iter().find(|o| {
            o.rule == rule.id
                && (o.devices.is_empty()
                    || o.devices.iter().any(|d| {
                        w.source_device.as_deref() == Some(d)
                            || w.destination_device.as_deref() == Some(d)
                    }))
                && (o.routes.is_empty() || o.routes.iter().any(|r| w.route.as_deref() == Some(r)))
        });
        let Some(o) = hit else {
            return false;
        };
        if let Some(s) = o.severity {
            e.event.severity = s.number();
            e.wardgate.severity = Some(s);
        }
        if o.suppress {
            e.event.kind = Kind::Event;
        }
        e.wardgate.override_reason = Some(o.reason.clone());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Action, Stage};
    use crate::rules;

    fn ev(device: &str, route: &str) -> Event {
        let mut e = Event::new(
            "2026-12-05T08:00:00.000Z".into(),
            Action::Alerted,
            "x".into(),
            Stage::Association,
        )
        .with_rule(rules::DICOM_SOP_CLASS);
        e.wardgate.source_device = Some(device.into());
        e.wardgate.route = Some(route.into());
        e
    }

    #[test]
    fn the_first_matching_override_applies_and_says_why() {
        let o = Overrides::new(vec![
            Override {
                rule: "WG-DICOM-003".into(),
                severity: None,
                suppress: true,
                devices: vec!["ct-1".into()],
                routes: vec![],
                reason: "CT01 proposes MR classes it never sends".into(),
            },
            Override {
                rule: "WG-DICOM-003".into(),
                severity: Some(Severity::Low),
                suppress: false,
                devices: vec![],
                routes: vec!["imaging".into()],
                reason: "often harmless on this route".into(),
            },
        ]);
        let mut a = ev("ct-1", "imaging");
        assert!(o.apply(&mut a));
        assert_eq!(a.event.kind, Kind::Event);
        assert_eq!(a.event.action, Action::Alerted, "the decision is unchanged");
        assert_eq!(a.wardgate.severity, Some(Severity::Medium));
        assert!(a
            .wardgate
            .override_reason
            .as_deref()
            .unwrap()
            .contains("CT01"));
        let mut b = ev("ct-2", "imaging");
        assert!(o.apply(&mut b));
        assert_eq!(b.event.kind, Kind::Alert);
        assert_eq!(b.wardgate.severity, Some(Severity::Low));
        assert_eq!(b.event.severity, Severity::Low.number());
        let mut c = ev("ct-2", "elsewhere");
        assert!(!o.apply(&mut c));
        assert_eq!(c.wardgate.override_reason, None);
        let mut d = Event::new("t".into(), Action::Allowed, "x".into(), Stage::Message);
        assert!(!o.apply(&mut d));
    }
}
