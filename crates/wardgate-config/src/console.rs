//! `[console]`: the web console and HTTPS admin API. Off unless `listen` is
//! set; always TLS (a console carries passwords, session cookies and patient
//! identifiers), with the listener's certificate and key named here (the
//! built-in CA can issue them: `wardgate ca issue-listener`).

use crate::{Level, Problem, Source, Spanned};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// `[console]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSettings {
    /// `IP:port` the console listens on, such as `"127.0.0.1:8443"`. Absent
    /// (the default): no console.
    #[serde(default)]
    pub listen: Option<Spanned<String>>,
    /// The listener's certificate chain (PEM), relative to the configuration file.
    #[serde(default)]
    pub cert: Option<Spanned<PathBuf>>,
    /// The listener's private key (PEM).
    #[serde(default)]
    pub key: Option<Spanned<PathBuf>>,
    /// A session unused this long is ended (seconds, default 900).
    #[serde(default = "default_idle")]
    pub session_idle_secs: Spanned<u64>,
    /// A session is ended this long after its login, used or not (seconds, default 28800).
    #[serde(default = "default_max")]
    pub session_max_secs: Spanned<u64>,
    /// Wrong passwords in a row after which an account is locked (default 5).
    #[serde(default = "default_failures")]
    pub login_max_failures: Spanned<u64>,
    /// How long a locked account stays locked (seconds, default 900).
    #[serde(default = "default_lockout")]
    pub lockout_secs: Spanned<u64>,
    /// Days of events the console's search index keeps (default 90); the
    /// audit log stays the complete record.
    #[serde(default = "default_retention")]
    pub index_retention_days: Spanned<u64>,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        ConsoleSettings {
            listen: None,
            cert: None,
            key: None,
            session_idle_secs: default_idle(),
            session_max_secs: default_max(),
            login_max_failures: default_failures(),
            lockout_secs: default_lockout(),
            index_retention_days: default_retention(),
        }
    }
}

fn default_idle() -> Spanned<u64> {
    Spanned::new(0..0, 900)
}
fn default_max() -> Spanned<u64> {
    Spanned::new(0..0, 8 * 3600)
}
fn default_failures() -> Spanned<u64> {
    Spanned::new(0..0, 5)
}
fn default_lockout() -> Spanned<u64> {
    Spanned::new(0..0, 900)
}
fn default_retention() -> Spanned<u64> {
    Spanned::new(0..0, 90)
}

/// `[console]`, resolved: present only when the console is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedConsole {
    /// Where it listens.
    pub listen: SocketAddr,
    /// Certificate chain (absolute path).
    pub cert: PathBuf,
    /// Private key (absolute path).
    pub key: PathBuf,
    /// Idle session timeout, seconds.
    pub session_idle_secs: u64,
    /// Absolute session lifetime, seconds.
    pub session_max_secs: u64,
    /// Failures before lock-out.
    pub login_max_failures: u32,
    /// Lock-out, seconds.
    pub lockout_secs: u64,
    /// Search index retention, days.
    pub index_retention_days: u64,
    /// `data_dir/console`: accounts and the search index.
    pub dir: PathBuf,
}

/// The console's directory in `data_dir`.
pub const CONSOLE_DIR: &str = "console";

/// Validates `[console]` and resolves its paths.
pub(crate) fn check(
    src: &Source,
    c: &ConsoleSettings,
    data_dir: &Path,
    problems: &mut Vec<Problem>,
) -> Option<ResolvedConsole> {
    let ranges: [(&str, &Spanned<u64>, std::ops::RangeInclusive<u64>); 5] = [
        ("session_idle_secs", &c.session_idle_secs, 30..=86_400),
        ("session_max_secs", &c.session_max_secs, 60..=7 * 86_400),
        ("login_max_failures", &c.login_max_failures, 1..=100),
        ("lockout_secs", &c.lockout_secs, 1..=86_400),
        ("index_retention_days", &c.index_retention_days, 1..=3650),
    ];
    for (what, v, range) in ranges {
        if !range.contains(v.get_ref()) {
            problems.push(src.problem(
                v.span(),
                Level::Error,
                format!(
                    "[console] {what} = {} must be in {}..={}",
                    v.get_ref(),
                    range.start(),
                    range.end()
                ),
            ));
        }
    }
    let listen = c.listen.as_ref()?;
    let Ok(addr) = listen.get_ref().parse::<SocketAddr>() else {
        problems.push(src.problem(
            listen.span(),
            Level::Error,
            format!(
                "[console] listen {:?} is not an IP:port address (such as \"127.0.0.1:8443\")",
                listen.get_ref()
            ),
        ));
        return None;
    };
    let path = |p: &Option<Spanned<PathBuf>>, what: &str, problems: &mut Vec<Problem>| match p {
        Some(p) => Some(src.base_dir.join(p.get_ref())),
        None => {
            problems.push(src.problem(
                listen.span(),
                Level::Error,
                format!(
                    "[console] listen is set but {what} is not: the console is served over TLS only (`wardgate ca issue-listener` issues a certificate)"
                ),
            ));
            None
        }
    };
    let cert = path(&c.cert, "cert", problems);
    let key = path(&c.key, "key", problems);
    Some(ResolvedConsole {
        listen: addr,
        cert: cert?,
        key: key?,
        session_idle_secs: *c.session_idle_secs.get_ref(),
        session_max_secs: *c.session_max_secs.get_ref(),
        login_max_failures: u32::try_from(*c.login_max_failures.get_ref()).unwrap_or(u32::MAX),
        lockout_secs: *c.lockout_secs.get_ref(),
        index_retention_days: *c.index_retention_days.get_ref(),
        dir: data_dir.join(CONSOLE_DIR),
    })
}
