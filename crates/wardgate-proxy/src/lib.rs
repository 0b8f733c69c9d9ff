//! wardgate's inline adapter: listens on each route, admits or refuses each
//! connection, frames the sender's MLLP stream, asks the engine about every frame,
//! and enforces the verdict: forward the frame unchanged, or answer the sender
//! with the engine's NAK. Upstream acknowledgements are relayed back unchanged.
//! Every decision goes to the recorder.
//!
//! The phases a connection meets, in order (each is a function below):
//! 1. **accept**: the device's flood limits (`limits::Floods::admit`: concurrent
//!    and new connections), then the global connection cap ([`Proxy::run`]);
//! 2. **handshake** (TLS routes): certificate verified against the CA and its CRL
//!    (`handshake`); a refusal is recorded with its reason;
//! 3. **identify / admit**: client certificate (or source address) → enrolled
//!    device → route senders (`relay::handle`);
//! 4. **connect** upstream, with a timeout;
//! 5. **pace / inspect / decide**: per frame, the device's message rate
//!    (`limits::MessageGate::pace`), then `wardgate_engine::hl7::inspect`
//!    (`Relay::on_client_frame`);
//! 6. **forward** or **reply**, keeping replies in request order (`Relay`);
//! 7. **record**: the engine's event to the recorder, for every decision.
//!
//! I/O lives here and only here; the engine never sees a socket.

mod dicom;
mod limits;
mod relay;
mod tls;

pub use tls::request_reload;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use wardgate_config::Protocol;
use wardgate_engine::event::{Action, Record};
use wardgate_engine::policy::RoutePolicy;
use wardgate_engine::{rules, Clock, Policy};
use wardgate_store::RecorderHandle;

/// Connection limits and timeouts.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// Close a connection that sends nothing for this long.
    pub idle_timeout: Duration,
    /// A started frame must complete within this.
    pub frame_timeout: Duration,
    /// Upstream connect timeout.
    pub connect_timeout: Duration,
    /// How long in-flight messages may take at shutdown.
    pub shutdown_grace: Duration,
    /// Connections served at once across all routes.
    pub max_connections: usize,
}

impl ProxyOptions {
    /// Options from the `[gateway]` section.
    pub fn from_config(g: &wardgate_config::Gateway) -> Self {
        ProxyOptions {
            idle_timeout: Duration::from_secs(g.idle_timeout_secs.max(1)),
            frame_timeout: Duration::from_secs(g.frame_timeout_secs.max(1)),
            connect_timeout: Duration::from_millis(g.connect_timeout_ms.max(1)),
            shutdown_grace: Duration::from_secs(g.shutdown_grace_secs),
            max_connections: usize::try_from(g.max_connections)
                .unwrap_or(usize::MAX)
                .max(1),
        }
    }
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// A route's TLS certificate, key, CA or CRL could not be loaded.
    #[error("route {route:?}: TLS: {why}")]
    Tls {
        /// Route id.
        route: String,
        /// What is wrong.
        why: String,
    },
    /// A route's listen address could not be bound.
    #[error("route {route:?}: cannot listen on {addr}: {source}")]
    Bind {
        /// Route id.
        route: String,
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
}

/// State shared by every connection.
pub(crate) struct Shared {
    pub policy: Arc<Policy>,
    pub recorder: RecorderHandle,
    pub opts: ProxyOptions,
    /// Per-device flood state (limits, episodes).
    pub floods: limits::Floods,
}

impl Shared {
    /// Sends an event to the recorder; a stopped recorder is logged, never fatal to care.
    pub fn record(&self, record: impl Into<Record>) {
        if let Err(e) = self.recorder.record(record) {
            tracing::error!(error = %e, "could not record an event");
        }
    }
}

/// One route's bound listener and TLS settings.
struct Listening {
    route: Arc<RoutePolicy>,
    listener: TcpListener,
    tls_in: Option<Arc<tls::TlsListener>>,
    tls_up: Option<Arc<tls::UpstreamTls>>,
}

/// Bound listeners, ready to serve.
pub struct Proxy {
    shared: Arc<Shared>,
    listeners: Vec<Listening>,
}

impl Proxy {
    /// Binds every route's listener. Fails without serving anything if one cannot be bound.
    pub async fn bind(
        policy: Arc<Policy>,
        recorder: RecorderHandle,
        opts: ProxyOptions,
    ) -> Result<Proxy, ProxyError> {
        let mut listeners = Vec::new();
        for route in &policy.routes {
            let tls = match &route.listen_tls {
                Some(cfg) => Some(Arc::new(tls::TlsListener::new(cfg.clone()).map_err(
                    |why| ProxyError::Tls {
                        route: route.id.to_string(),
                        why,
                    },
                )?)),
                None => None,
            };
            let tls_up = match &route.upstream_tls {
                Some(cfg) => Some(Arc::new(tls::UpstreamTls::new(cfg).map_err(|why| {
                    ProxyError::Tls {
                        route: route.id.to_string(),
                        why,
                    }
                })?)),
                None => None,
            };
            let l = TcpListener::bind(route.listen)
                .await
                .map_err(|source| ProxyError::Bind {
                    route: route.id.to_string(),
                    addr: route.listen,
                    source,
                })?;
            listeners.push(Listening {
                route: route.clone(),
                listener: l,
                tls_in: tls,
                tls_up,
            });
        }
        Ok(Proxy {
            shared: Arc::new(Shared {
                floods: limits::Floods::new(&policy, opts.max_connections),
                policy,
                recorder,
                opts,
            }),
            listeners,
        })
    }

    /// The bound addresses, by route id (useful when a route listens on port 0).
    pub fn local_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.listeners
            .iter()
            .filter_map(|l| Some((l.route.id.to_string(), l.listener.local_addr().ok()?)))
            .collect()
    }

    /// Serves until `shutdown` turns true, then stops accepting, lets in-flight
    /// messages finish within the grace period, and returns.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let cap = Arc::new(Semaphore::new(self.shared.opts.max_connections));
        let sweeper = tokio::spawn(sweep_floods(self.shared.clone()));
        let mut acceptors = JoinSet::new();
        for Listening {
            route,
            listener,
            tls_in: tls,
            tls_up,
        } in self.listeners
        {
            let shared = self.shared.clone();
            let cap = cap.clone();
            let mut stop = shutdown.clone();
            acceptors.spawn(async move {
                let mut conns = JoinSet::new();
                loop {
                    tokio::select! {
                        _ = stopped(&mut stop) => break,
                        accepted = listener.accept() => match accepted {
                            Ok((sock, peer)) => {
                                let guard = match shared.floods.admit(&shared.policy, peer, &route) {
                                    Ok(g) => g,
                                    Err(limits::Refused(alert)) => {
                                        if let Some(e) = alert {
                                            shared.record(*e);
                                        }
                                        shared.floods.refuse(sock, &route, tls.is_some(), &mut conns);
                                        continue;
                                    }
                                };
                                let Ok(permit) = cap.clone().try_acquire_owned() else {
                                    if let Some(e) = guard.over_gateway_cap(&shared.floods, peer, &route) {
                                        shared.record(e);
                                    }
                                    shared.floods.refuse(sock, &route, tls.is_some(), &mut conns);
                                    continue;
                                };
                                let shared = shared.clone();
                                let route = route.clone();
                                let stop = stop.clone();
                                let tls = tls.clone();
                                let tls_up = tls_up.clone();
                                conns.spawn(async move {
                                    let _ = sock.set_nodelay(true);
                                    match (route.protocol, tls) {
                                        (protocol, Some(tls)) => {
                                            if let Some((stream, identity)) = handshake(&tls, sock, peer, &route, &shared).await {
                                                match protocol {
                                                    Protocol::Hl7Mllp => relay::handle(stream, peer, identity, tls_up, route, shared, stop).await,
                                                    Protocol::Dicom => dicom::handle(stream, peer, identity, tls_up, route, shared, stop).await,
                                                }
                                            }
                                        }
                                        (Protocol::Hl7Mllp, None) => relay::handle(sock, peer, None, tls_up, route, shared, stop).await,
                                        (Protocol::Dicom, None) => dicom::handle(sock, peer, None, tls_up, route, shared, stop).await,
                                    }
                                    drop(guard);
                                    drop(permit);
                                });
                            }
                            Err(e) => {
                                // EMFILE and friends: back off instead of spinning.
                                tracing::warn!(error = %e, route = %route.id, "accept failed");
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                        },
                        Some(_) = conns.join_next(), if !conns.is_empty() => {}
                    }
                }
                // Listener dropped here: no new connections.
                drop(listener);
                while conns.join_next().await.is_some() {}
            });
        }
        stopped(&mut shutdown).await;
        let grace = self.shared.opts.shutdown_grace + Duration::from_secs(1);
        let drained = tokio::time::timeout(grace, async {
            while acceptors.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("connections still open after the shutdown grace period; closing them");
            acceptors.abort_all();
        }
        sweeper.abort();
        // Episodes still open are summarised now: a flood never goes unreported.
        for e in self.shared.floods.finish() {
            self.shared.record(e);
        }
    }
}

/// Ends flood episodes whose device has gone quiet, even if it never sends
/// again: one pass over the devices a second (bounded by the table's size).
async fn sweep_floods(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(limits::SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for e in shared.floods.sweep() {
            shared.record(e);
        }
    }
}

/// Resolves when shutdown is requested (or its sender is gone). The watch guard is
/// dropped before returning, so callers stay `Send`.
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await.map(|_| ());
}

/// The TLS handshake of a new connection, bounded by the frame timeout (a peer
/// that stalls mid-handshake is a slow sender). A failure is recorded with its
/// reason and the connection closed; nothing was read from it.
async fn handshake(
    tls: &tls::TlsListener,
    sock: tokio::net::TcpStream,
    peer: SocketAddr,
    route: &Arc<RoutePolicy>,
    shared: &Shared,
) -> Option<(
    tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    Option<String>,
)> {
    let acceptor = tls.acceptor();
    let reason = match tokio::time::timeout(shared.opts.frame_timeout, acceptor.accept(sock)).await
    {
        Ok(Ok(stream)) => {
            let identity = tls::peer_device(&stream);
            return Some((stream, identity));
        }
        Ok(Err(e)) => tls::explain(&e),
        Err(_) => format!(
            "TLS handshake not completed within {:?}",
            shared.opts.frame_timeout
        ),
    };
    let device = shared.policy.device_for(peer.ip()).cloned();
    let flow = wardgate_engine::Flow::new(peer, route.upstream, device);
    let e = flow
        .event(&Clock::now(), route, Action::Blocked, reason, "connection")
        .with_rule(rules::TLS_HANDSHAKE);
    shared.record(e);
    None
}
