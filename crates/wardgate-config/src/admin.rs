//! `[gateway.admin]`: where the gateway answers operators: the Prometheus
//! endpoint (off unless configured, loopback unless explicitly opened) and the
//! status socket `wardgate status` reads (owner and group only).

use crate::{Level, Problem, Source, Spanned};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The status socket's name in `data_dir` when `socket` is not set.
pub const DEFAULT_SOCKET: &str = "admin.sock";

/// The longest path a Unix socket can be bound at: `sun_path` holds 108 bytes
/// on Linux, the last a NUL.
pub const MAX_SOCKET_PATH: usize = 107;

/// `[gateway.admin]`: the metrics endpoint and the status socket.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// `IP:port` of the Prometheus endpoint (`GET /metrics`), such as
    /// `"127.0.0.1:9464"`. Absent (the default): no endpoint.
    #[serde(default)]
    pub metrics: Option<Spanned<String>>,
    /// Serve `metrics` on an address other than loopback. The endpoint has no
    /// authentication: opening it to the network is a decision, not a default.
    #[serde(default)]
    pub metrics_allow_remote: bool,
    /// Path of the status socket (`wardgate status`). Default
    /// `data_dir/admin.sock`. Its directory must not be reachable by other users.
    #[serde(default)]
    pub socket: Option<Spanned<PathBuf>>,
}

/// `[gateway.admin]`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedAdmin {
    /// The Prometheus endpoint's address, if any.
    pub metrics: Option<SocketAddr>,
    /// The status socket (absolute).
    pub socket: PathBuf,
}

/// Validates `[gateway.admin]` and resolves it against `data_dir` and the
/// configuration's directory.
pub(crate) fn check(
    src: &Source,
    admin: &AdminSettings,
    data_dir: &Path,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<Problem>,
) -> ResolvedAdmin {
    let metrics = admin.metrics.as_ref().and_then(|m| {
        let Ok(addr) = m.get_ref().parse::<SocketAddr>() else {
            problems.push(src.problem(
                m.span(),
                Level::Error,
                format!(
                    "metrics {:?} is not an IP:port address (such as \"127.0.0.1:9464\")",
                    m.get_ref()
                ),
            ));
            return None;
        };
        if !addr.ip().is_loopback() {
            if admin.metrics_allow_remote {
                warnings.push(src.problem(
                    m.span(),
                    Level::Warning,
                    format!(
                        "the metrics endpoint on {addr} is reachable from the network and has no authentication: restrict who can reach it (firewall, a scraper-only network)"
                    ),
                ));
            } else {
                problems.push(src.problem(
                    m.span(),
                    Level::Error,
                    format!(
                        "metrics address {addr} is not a loopback address: the endpoint has no authentication; use 127.0.0.1, or set metrics_allow_remote = true to serve it on the network"
                    ),
                ));
            }
        }
        Some(addr)
    });
    let socket = match &admin.socket {
        Some(s) => {
            let path: PathBuf = src
                .base_dir
                .join(s.get_ref())
                .components()
                .filter(|c| !matches!(c, std::path::Component::CurDir))
                .collect();
            if path.as_os_str().len() > MAX_SOCKET_PATH {
                problems.push(src.problem(
                    s.span(),
                    Level::Error,
                    format!(
                        "socket path {} is {} bytes long; a Unix socket's path holds at most {MAX_SOCKET_PATH}",
                        path.display(),
                        path.as_os_str().len()
                    ),
                ));
            }
            path
        }
        None => {
            let path = data_dir.join(DEFAULT_SOCKET);
            if path.as_os_str().len() > MAX_SOCKET_PATH {
                warnings.push(src.problem(
                    0..0,
                    Level::Warning,
                    format!(
                        "the status socket {} would be {} bytes long, more than a Unix socket's {MAX_SOCKET_PATH}: `wardgate status` will not work; set [gateway.admin] socket to a shorter path",
                        path.display(),
                        path.as_os_str().len()
                    ),
                ));
            }
            path
        }
    };
    ResolvedAdmin { metrics, socket }
}
