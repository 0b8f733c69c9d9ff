//! The console's listener: rustls over a bound TCP socket, hyper's HTTP/1.1
//! serving the axum router, on a thread and runtime of its own.

use crate::web::App;
use crate::Gateway;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::rustls;
use wardgate_config::ResolvedConsole;
use wardgate_store::RecorderHandle;

/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 64;
/// A TLS handshake must finish within this.
const HANDSHAKE_TIME: Duration = Duration::from_secs(10);
/// A request (body included) must be answered within this; a live tail is not bound.
const REQUEST_TIME: Duration = Duration::from_secs(30);
/// A request's headers must arrive within this.
const HEADER_TIME: Duration = Duration::from_secs(10);

/// Why the console could not start.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The certificate or key could not be read or used.
    #[error("console TLS: {0}")]
    Tls(String),
    /// The listener could not be bound.
    #[error("binding the console on {addr}: {source}")]
    Bind {
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Its directory or thread could not be made.
    #[error("{0}")]
    Io(String),
}

/// The running console.
pub struct Console {
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
    addr: SocketAddr,
}

fn tls_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, ConsoleError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| ConsoleError::Tls(format!("{}: {e}", cert.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| ConsoleError::Tls(format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(ConsoleError::Tls(format!(
            "{}: no certificate in it",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| ConsoleError::Tls(format!("{}: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| ConsoleError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ConsoleError::Tls(e.to_string()))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

impl Console {
    /// Binds the listener and starts serving. `config_path` is the file the
    /// enforcement switch edits.
    pub fn start(
        c: &ResolvedConsole,
        config_path: PathBuf,
        gateway: Arc<dyn Gateway>,
        recorder: RecorderHandle,
    ) -> Result<Console, ConsoleError> {
        let tls = tls_config(&c.cert, &c.key)?;
        wardgate_audit::fsx::create_dir(&c.dir)
            .map_err(|e| ConsoleError::Io(format!("creating {}: {e}", c.dir.display())))?;
        let std_listener =
            std::net::TcpListener::bind(c.listen).map_err(|source| ConsoleError::Bind {
                addr: c.listen,
                source,
            })?;
        std_listener
            .set_nonblocking(true)
            .map_err(|e| ConsoleError::Io(e.to_string()))?;
        let addr = std_listener
            .local_addr()
            .map_err(|e| ConsoleError::Io(e.to_string()))?;
        let app = App::new(c, config_path, gateway, recorder)
            .map_err(|e| ConsoleError::Io(e.to_string()))?;
        let (stop, stopped) = watch::channel(false);
        let thread = std::thread::Builder::new()
            .name("console".into())
            .spawn(move || {
                lower_priority();
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("console-rt")
                    .on_thread_start(lower_priority)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, "the console's runtime could not start");
                        return;
                    }
                };
                rt.block_on(serve(std_listener, tls, app, stopped));
            })
            .map_err(|e| ConsoleError::Io(e.to_string()))?;
        tracing::info!(listen = %addr, "console serving");
        Ok(Console {
            stop,
            thread: Some(thread),
            addr,
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, ends live tails, and waits for the thread.
    pub fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The console yields to the data path (Linux keeps a nice value per thread).
fn lower_priority() {
    if let Err(e) = rustix::process::setpriority_process(None, crate::web::CONSOLE_NICE) {
        tracing::warn!(error = %e, "the console cannot lower its priority");
    }
}

async fn serve(
    std_listener: std::net::TcpListener,
    tls: rustls::ServerConfig,
    app: Arc<App>,
    mut stopped: watch::Receiver<bool>,
) {
    let listener = match tokio::net::TcpListener::from_std(std_listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "the console's listener could not be used");
            return;
        }
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let router = crate::web::router(app.clone());
    let background = app.clone().start_background();
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = stopped.changed() => break,
        };
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "console accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stopped.changed() => break,
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        let mut conn_stop = stopped.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let Ok(Ok(stream)) = tokio::time::timeout(HANDSHAKE_TIME, acceptor.accept(tcp)).await
            else {
                return;
            };
            let svc = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(crate::web::Peer(peer));
                    let mut r = router.clone();
                    // Every request but a live tail must be done (body read,
                    // answer made) within REQUEST_TIME: a client sending its
                    // body a byte a minute does not keep a connection slot.
                    let bounded = req.uri().path() != crate::web::STREAM_PATH;
                    async move {
                        use tower::Service;
                        let call = r.call(req.map(axum::body::Body::new));
                        if !bounded {
                            return call.await;
                        }
                        match tokio::time::timeout(REQUEST_TIME, call).await {
                            Ok(r) => r,
                            Err(_) => Ok(axum::response::IntoResponse::into_response((
                                axum::http::StatusCode::REQUEST_TIMEOUT,
                                "the request took too long",
                            ))),
                        }
                    }
                },
            );
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIME)
                .serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = conn_stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
                }
            }
        });
    }
    background.abort();
    app.stop_indexer();
}
