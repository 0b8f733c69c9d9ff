//! The protocol rules: every way input can be malformed has a stable rule id, a
//! default severity and a reason, so events can name it. The rules themselves are
//! defined in `wardgate-event`'s one catalogue; the parsers report them through
//! [`Anomaly`].

pub use wardgate_event::rules::proto::*;
pub use wardgate_event::rules::{Rule, Severity};

/// Anything that is a protocol rule violation: errors and tolerated anomalies.
/// Implementors say which [`Rule`] they are; the accessors follow.
pub trait Anomaly {
    /// The protocol rule.
    fn rule(&self) -> Rule;

    /// Stable rule id.
    fn rule_id(&self) -> &'static str {
        self.rule().id
    }

    /// Short rule name.
    fn rule_name(&self) -> &'static str {
        self.rule().name
    }

    /// Default severity.
    fn severity(&self) -> Severity {
        self.rule().severity
    }
}

/// Every protocol rule.
pub fn catalogue() -> &'static [Rule] {
    CATALOGUE
}
