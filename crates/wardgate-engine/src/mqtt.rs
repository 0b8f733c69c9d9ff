//! MQTT: what each packet does and what a device's profile allows.
//!
//! [`authority`] holds command authority (signed commands, replay, budgets).
//! The connection's state machine is `session`.

pub mod authority;
