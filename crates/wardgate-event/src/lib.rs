//! wardgate's event model, as one leaf crate.
//!
//! - [`event`]: the event types, one per record of the audit log and the store,
//!   with Elastic Common Schema field names; `docs/events.md` is their contract.
//! - [`rules`]: every rule id wardgate can record, with one meaning each, and
//!   the severities.
//! - [`remediation`]: what the reader of an alert should do about each rule
//!   (the command, the configuration key, who to involve).
//! - [`compact`]: the compact form of a routine `allowed` record on a proxy
//!   connection, and the reader that expands it back to the full event.
//!
//! Why a crate of its own: the engine writes events, and the store, the CLI and
//! the recorder read them. With the types in the engine, every reader depended on
//! the whole engine, and the engine's modules formed import cycles around them.

pub mod clock;
pub mod compact;
pub mod event;
pub mod overrides;
pub mod remediation;
pub mod repeats;
pub mod rules;

pub use clock::Clock;
pub use event::{Action, Category, Event, Identity, Kind, Outcome, Record, Stage};
pub use rules::{Rule, Severity};
