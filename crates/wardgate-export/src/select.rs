//! Which events an export sends (`actions`, `min_severity`, `rules`).
//!
//! Most of a busy log is routine `allowed` traffic that the default selection
//! leaves out. [`quick_action`] reads a record's `event.action` from the
//! fixed front of the JSON wardgate writes, so those lines are passed over
//! without parsing them; anything laid out otherwise is parsed in full.

use wardgate_config::Selection;
use wardgate_event::Event;

/// The `event.action` of a record wardgate wrote, read from the front of its
/// JSON without parsing it: `{"@timestamp":"…",` then `"ecs":{"version":"…"},`
/// (optional), then `"event":{`, then `"kind":"…",` (absent in a compact
/// routine record), then `"action":"…"`. `None` when the line does not start
/// so (the caller parses it instead).
pub fn quick_action(json: &[u8]) -> Option<&[u8]> {
    let rest = json.strip_prefix(b"{\"@timestamp\":\"")?;
    let rest = skip_plain_string(rest)?.strip_prefix(b",")?;
    let rest = match rest.strip_prefix(b"\"ecs\":{\"version\":\"") {
        Some(r) => skip_plain_string(r)?.strip_prefix(b"},")?,
        None => rest,
    };
    let rest = rest.strip_prefix(b"\"event\":{")?;
    let rest = match rest.strip_prefix(b"\"kind\":\"") {
        Some(r) => skip_plain_string(r)?.strip_prefix(b",")?,
        None => rest,
    };
    let rest = rest.strip_prefix(b"\"action\":\"")?;
    let end = plain_string_len(rest)?;
    Some(&rest[..end])
}

/// The length of a JSON string's contents up to its closing quote, for one
/// without escapes (timestamps, versions, kinds and actions have none).
fn plain_string_len(b: &[u8]) -> Option<usize> {
    let end = memchr_quote(b)?;
    (!b[..end].contains(&b'\\')).then_some(end)
}

fn skip_plain_string(b: &[u8]) -> Option<&[u8]> {
    let end = plain_string_len(b)?;
    Some(&b[end + 1..])
}

fn memchr_quote(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'"')
}

/// An export's selection.
#[derive(Debug, Clone)]
pub struct Selector {
    sel: Selection,
}

impl Selector {
    /// The selection of one export.
    pub fn new(sel: Selection) -> Self {
        Selector { sel }
    }

    /// Whether checkpoints are sent.
    pub fn checkpoints(&self) -> bool {
        self.sel.checkpoints
    }

    /// Whether `allowed` events can be selected: then compact routine records
    /// must be expanded with their connection's context.
    pub fn wants_allowed(&self) -> bool {
        self.sel.actions.iter().any(|a| a == "allowed")
    }

    /// Whether an event with this action can be selected at all (the quick
    /// pass over a line whose action [`quick_action`] read).
    pub fn may_select_action(&self, action: &[u8]) -> bool {
        if self.sel.actions.is_empty() {
            action != b"allowed"
        } else {
            self.sel.actions.iter().any(|a| a.as_bytes() == action)
        }
    }

    /// Whether the event is sent.
    pub fn selects(&self, e: &Event) -> bool {
        let action = e.event.action.as_str().as_bytes();
        if !self.may_select_action(action) {
            return false;
        }
        let severity = e
            .wardgate
            .severity
            .unwrap_or(wardgate_event::Severity::Info);
        if severity < self.sel.min_severity {
            return false;
        }
        if self.sel.rules.is_empty() {
            return true;
        }
        e.rule
            .as_ref()
            .is_some_and(|r| self.sel.rules.iter().any(|p| p.matches(&r.id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use wardgate_config::RulePattern;
    use wardgate_event::compact::{write_routine, RoutineFlow, RoutineHl7};
    use wardgate_event::{rules, Action, Severity, Stage};

    /// Every action (the list `Action::ALL` keeps complete).
    const ACTIONS: [Action; Action::ALL.len()] = Action::ALL;

    fn event(action: Action) -> Event {
        Event::new(
            "2026-11-26T10:15:00.123Z".into(),
            action,
            "why \"quoted\" \\ \"action\":\"allowed\"".into(),
            Stage::Message,
        )
    }

    #[test]
    fn the_default_leaves_out_allowed_and_nothing_else() {
        let s = Selector::new(Selection::default());
        for a in ACTIONS {
            assert_eq!(s.selects(&event(a)), a != Action::Allowed, "{a:?}");
        }
        assert!(s.checkpoints() && !s.wants_allowed());
    }

    #[test]
    fn actions_severity_and_rules_all_must_hold() {
        let s = Selector::new(Selection {
            actions: vec!["blocked".into(), "allowed".into()],
            min_severity: Severity::High,
            rules: vec![
                RulePattern::Prefix("WG-INF-".into()),
                RulePattern::Id("WG-ACCESS-001".into()),
            ],
            checkpoints: false,
        });
        assert!(s.wants_allowed());
        let hard = event(Action::Blocked).with_rule(rules::RATE_HARD_LIMIT);
        assert!(s.selects(&hard));
        let soft = event(Action::Blocked).with_rule(rules::RATE_SOFT_LIMIT);
        assert!(!s.selects(&soft), "medium is below high");
        let unknown = event(Action::Blocked).with_rule(rules::UNKNOWN_DEVICE);
        assert!(s.selects(&unknown));
        let other = event(Action::Blocked).with_rule(rules::SENDER_NOT_ALLOWED);
        assert!(!s.selects(&other), "not among the rules");
        let alerted = event(Action::Alerted).with_rule(rules::RATE_HARD_LIMIT);
        assert!(!s.selects(&alerted), "not among the actions");
        assert!(
            !s.selects(&event(Action::Blocked)),
            "no rule, rules asked for"
        );
    }

    #[test]
    fn a_compact_routine_record_is_read_as_allowed() {
        let mut line = Vec::new();
        let hl7 = RoutineHl7 {
            message_type: ("ORU", "R01"),
            control_id: "\"action\":\"blocked\"",
            sending_application: "EHR",
            sending_facility: "ICU",
            version: "2.5",
            software: "",
        };
        write_routine(
            &mut line,
            "2026-11-26T10:15:00.123Z",
            RoutineFlow::Connection(7),
            &hl7,
            10,
        );
        assert_eq!(quick_action(&line), Some(&b"allowed"[..]));
        let mut full = Vec::new();
        let frag = wardgate_event::compact::FlowContext {
            source: "127.0.0.2:1"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
            destination: "127.0.0.3:2"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
            network: wardgate_event::event::Network::new("hl7-mllp"),
            route: "r".into(),
            source_device: None,
            destination_device: None,
            connection_id: None,
            policy: None,
        }
        .fragment();
        write_routine(
            &mut full,
            "2026-11-26T10:15:00.123Z",
            RoutineFlow::Full {
                route: "r",
                fragment: &frag,
            },
            &hl7,
            10,
        );
        assert_eq!(quick_action(&full), Some(&b"allowed"[..]));
    }

    proptest! {
        /// Whatever the event holds, the quick read of its action is its action.
        #[test]
        fn the_quick_read_is_the_action_serde_writes(
            i in 0usize..17,
            reason in "\\PC*",
            ts in "[0-9T:.Z-]{0,30}",
            alert in any::<bool>(),
        ) {
            let mut e = event(ACTIONS[i]);
            e.event.reason = reason;
            e.timestamp = ts;
            if alert {
                e.set_rule(rules::UNKNOWN_DEVICE);
            }
            let json = e.to_json();
            prop_assert_eq!(quick_action(&json), Some(ACTIONS[i].as_str().as_bytes()));
        }

        /// On anything else it answers `None` or a slice of the input, never panics.
        #[test]
        fn any_bytes_are_read_without_panicking(
            parts in proptest::collection::vec(prop_oneof![
                Just(b"{\"@timestamp\":\"".to_vec()),
                Just(b"\"ecs\":{\"version\":\"".to_vec()),
                Just(b"\"event\":{".to_vec()),
                Just(b"\"kind\":\"".to_vec()),
                Just(b"\"action\":\"".to_vec()),
                Just(b"\",".to_vec()),
                Just(b"},".to_vec()),
                proptest::collection::vec(any::<u8>(), 0..8),
            ], 0..10)
        ) {
            let json = parts.concat();
            if let Some(a) = quick_action(&json) {
                prop_assert!(a.len() <= json.len());
                prop_assert!(!a.contains(&b'"'));
            }
        }
    }
}
