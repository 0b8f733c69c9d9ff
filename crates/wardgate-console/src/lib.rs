//! wardgate's web console and HTTPS admin API (docs/console.md).
//!
//! The console is an adapter like the proxy: it reads what the gateway already
//! keeps (the configuration in force, the status document the metrics endpoint
//! shows, the audit log through the search index, the queues and the CA on
//! disk) and acts only through the paths an operator has on the command line
//! (a reload, a re-drive request file, the CA's revoke, an edit of the
//! configuration file followed by a reload), each recorded in the audit chain
//! with the account, its address and what was done.
//!
//! It runs on a thread of its own with its own runtime, so a page, a search or
//! a slow browser never takes time from the listeners' runtime or a
//! connection worker. HTTP is hyper's and axum's; TLS is rustls.

#![forbid(unsafe_code)]

pub mod auth;
mod edit;
mod events;
mod plots;
mod server;
pub mod users;
mod views;
mod web;

pub use events::ROUTINE_PER_SECOND;
pub use server::{Console, ConsoleError};
pub use users::{Role, UserError, UserStore};

use std::sync::Arc;
use wardgate_config::Validated;

/// A future the console awaits on its own runtime.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// What the console needs of the running gateway and cannot read from disk.
pub trait Gateway: Send + Sync + 'static {
    /// The status document (`wardgate status --json`): routes, upstream
    /// health, queues, certificates, the policy hash.
    fn status(&self) -> BoxFuture<'_, serde_json::Value>;
    /// The configuration in force (updated by every reload applied).
    fn config(&self) -> Arc<Validated>;
    /// Asks for a reload of the configuration and TLS material, as SIGHUP does.
    fn reload(&self);
    /// The patient identifier a keyed pseudonym stands for, read from the
    /// re-identification table with the site key (blocking: a file is read).
    /// `None` when the table has no entry for it. The caller checks the
    /// account may and records the use.
    fn reidentify(&self, pseudonym: &str) -> Option<String>;
}

/// Entry points for the fuzz targets (`fuzz/fuzz_targets/console_input.rs`):
/// everything the console reads from a client or from its files before any
/// check has passed. Not an API.
#[doc(hidden)]
pub mod fuzzing {
    /// Feeds `data` to every reader of untrusted console input and checks
    /// their promises: a cookie header, a search's query string, a form's
    /// `back`, a login form, the accounts file, and an event to redact.
    pub fn untrusted(data: &[u8]) {
        crate::web::fuzz_untrusted(data);
        crate::events::fuzz_untrusted(data);
    }
}
