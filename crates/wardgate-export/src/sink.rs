//! Where exported messages go: a syslog collector over TCP, TLS or UDP, or the
//! EVE file. Blocking I/O with bounded timeouts, on the export's own thread.
//!
//! Plain syslog has no acknowledgement, so a collector's liveness is all a
//! sender can see: [`Sink::check`] reads what the collector sent without
//! blocking (nothing, normally; EOF or a reset when it went away), and the
//! pipeline counts a message delivered only once a check long enough after
//! writing it passed. TCP's user timeout is set to that same time, so data the
//! collector's host has not acknowledged by then breaks the connection instead
//! of passing the check.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use wardgate_config::{ResolvedSyslogTls, Transport};

/// How long a connection attempt (TCP connect, then the TLS handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one write may block on a collector that does not read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest UDP datagram sent; a longer message is cut (RFC 5426 3.2 allows it).
const MAX_DATAGRAM: usize = 65_000;

/// Why a destination cannot take messages now.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct SinkError(pub String);

fn err(what: &str, e: impl std::fmt::Display) -> SinkError {
    SinkError(format!("{what}: {e}"))
}

/// A destination of exported messages.
pub trait Sink: Send {
    /// Connects (or opens the file). Called while not connected.
    fn connect(&mut self) -> Result<(), SinkError>;
    /// Whether it is connected.
    fn connected(&self) -> bool;
    /// Sends messages: `buf` holds them back to back, each ending at an offset in `ends`.
    fn send(&mut self, buf: &[u8], ends: &[usize]) -> Result<(), SinkError>;
    /// Whether the connection is still up, without blocking.
    fn check(&mut self) -> Result<(), SinkError>;
    /// Whether a message sent counts as delivered only after a later
    /// [`check`](Sink::check) (a stream to a collector), or at once (a datagram,
    /// a file).
    fn settles(&self) -> bool;
    /// Makes what was sent durable (a file); before the cursor moves past it.
    fn sync(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
    /// Drops the connection.
    fn disconnect(&mut self);
    /// Reopens a file by its path (after logrotate moved it); nothing for sockets.
    fn reopen(&mut self) {}
    /// Whether messages go in RFC 6587 octet-counted frames.
    fn octet_counting(&self) -> bool {
        false
    }
}

/// TLS client settings for a collector, loaded from the configuration's files.
fn tls_config(cfg: &ResolvedSyslogTls) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let read_certs = |path: &PathBuf| -> Result<Vec<CertificateDer<'static>>, String> {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("{}: no certificate in it", path.display()));
        }
        Ok(certs)
    };
    let mut roots = rustls::RootCertStore::empty();
    for c in read_certs(&cfg.ca)? {
        roots
            .add(c)
            .map_err(|e| format!("{}: {e}", cfg.ca.display()))?;
    }
    let mut verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    );
    if let Some(crl) = cfg.crl.as_ref().filter(|c| c.exists()) {
        let crls = CertificateRevocationListDer::pem_file_iter(crl)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("{}: {e}", crl.display()))?;
        verifier = verifier.with_crls(crls);
    }
    let verifier = verifier.build().map_err(|e| e.to_string())?;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_webpki_verifier(verifier);
    let config = match &cfg.client_cert {
        Some((cert, key)) => {
            let chain = read_certs(cert)?;
            let key =
                PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("{}: {e}", cert.display()))?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

enum Conn {
    Tcp(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
    Udp(UdpSocket),
}

/// A syslog collector.
pub struct SyslogSink {
    address: String,
    transport: Transport,
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    /// TCP user timeout and the settle time of the pipeline.
    settle: Duration,
    conn: Option<Conn>,
    /// A datagram was cut to fit (said once).
    cut_said: bool,
}

impl SyslogSink {
    /// A collector at `address` (`host:port`); TLS material is loaded now, so
    /// a file that cannot be read stops `serve` at start, not at the first alert.
    pub fn new(
        address: &str,
        transport: Transport,
        tls: Option<&ResolvedSyslogTls>,
        settle: Duration,
    ) -> Result<SyslogSink, String> {
        let tls = match (transport, tls) {
            (Transport::Tls, Some(t)) => {
                let name = ServerName::try_from(t.server_name.clone())
                    .map_err(|e| format!("server_name {:?}: {e}", t.server_name))?;
                Some((tls_config(t)?, name))
            }
            (Transport::Tls, None) => return Err("transport tls without TLS settings".into()),
            _ => None,
        };
        Ok(SyslogSink {
            address: address.to_owned(),
            transport,
            tls,
            settle,
            conn: None,
            cut_said: false,
        })
    }

    fn resolve(&self) -> Result<Vec<SocketAddr>, SinkError> {
        let addrs: Vec<SocketAddr> = self
            .address
            .to_socket_addrs()
            .map_err(|e| err(&format!("resolving {}", self.address), e))?
            .collect();
        if addrs.is_empty() {
            return Err(SinkError(format!(
                "{} resolves to no address",
                self.address
            )));
        }
        Ok(addrs)
    }

    fn tcp(&self) -> Result<TcpStream, SinkError> {
        let mut last = None;
        for a in self.resolve()? {
            match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    s.set_write_timeout(Some(WRITE_TIMEOUT))
                        .and_then(|()| s.set_read_timeout(Some(CONNECT_TIMEOUT)))
                        .map_err(|e| err("socket options", e))?;
                    // Keepalives find a collector gone while idle; the user
                    // timeout makes data unacknowledged for the settle time
                    // break the connection rather than pass a check.
                    let _ = rustix::net::sockopt::set_socket_keepalive(&s, true);
                    let _ = rustix::net::sockopt::set_tcp_keepidle(&s, Duration::from_secs(10));
                    let _ = rustix::net::sockopt::set_tcp_keepintvl(&s, Duration::from_secs(5));
                    let _ = rustix::net::sockopt::set_tcp_keepcnt(&s, 3);
                    let ms = u32::try_from(self.settle.as_millis()).unwrap_or(u32::MAX);
                    if ms > 0 {
                        let _ = rustix::net::sockopt::set_tcp_user_timeout(&s, ms.max(1000));
                    }
                    return Ok(s);
                }
                Err(e) => last = Some(err(&format!("connecting to {a}"), e)),
            }
        }
        Err(last.unwrap_or_else(|| SinkError("no address to connect to".into())))
    }
}

/// A TLS failure in words an operator can act on.
fn explain_tls(e: &std::io::Error) -> String {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(c)) => {
            format!("TLS: the collector's certificate is not accepted: {c:?}")
        }
        Some(rustls::Error::AlertReceived(a)) => {
            format!("TLS: the collector refused the handshake ({a:?}; is wardgate's client certificate one it trusts?)")
        }
        Some(other) => format!("TLS: {other}"),
        None => format!("TLS: {e}"),
    }
}

impl Sink for SyslogSink {
    fn connect(&mut self) -> Result<(), SinkError> {
        self.conn = Some(match self.transport {
            Transport::Tcp => Conn::Tcp(self.tcp()?),
            Transport::Tls => {
                let (config, name) = self
                    .tls
                    .clone()
                    .ok_or_else(|| SinkError("no TLS configuration".into()))?;
                let mut sock = self.tcp()?;
                let mut conn =
                    rustls::ClientConnection::new(config, name).map_err(|e| err("TLS", e))?;
                while conn.is_handshaking() {
                    conn.complete_io(&mut sock)
                        .map_err(|e| SinkError(explain_tls(&e)))?;
                }
                Conn::Tls(Box::new(rustls::StreamOwned::new(conn, sock)))
            }
            Transport::Udp => {
                let addr = self.resolve()?[0];
                let local: SocketAddr = if addr.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    ([0u16; 8], 0).into()
                };
                let s = UdpSocket::bind(local).map_err(|e| err("UDP socket", e))?;
                s.connect(addr)
                    .map_err(|e| err(&format!("UDP to {addr}"), e))?;
                Conn::Udp(s)
            }
        });
        Ok(())
    }

    fn connected(&self) -> bool {
        self.conn.is_some()
    }

    fn send(&mut self, buf: &[u8], ends: &[usize]) -> Result<(), SinkError> {
        let SyslogSink {
            conn,
            cut_said,
            address,
            ..
        } = self;
        let Some(conn) = conn.as_mut() else {
            return Err(SinkError("not connected".into()));
        };
        let broken = |e: std::io::Error| err("writing to the collector", e);
        match conn {
            Conn::Tcp(s) => s.write_all(buf).map_err(broken),
            Conn::Tls(s) => s.write_all(buf).and_then(|()| s.flush()).map_err(broken),
            Conn::Udp(s) => {
                let mut start = 0;
                for &end in ends {
                    let msg = &buf[start..end];
                    start = end;
                    if msg.len() > MAX_DATAGRAM && !*cut_said {
                        *cut_said = true;
                        tracing::warn!(
                            collector = %address,
                            bytes = msg.len(),
                            "a message longer than a UDP datagram was cut (RFC 5426); TCP or TLS carries it whole"
                        );
                    }
                    s.send(&msg[..msg.len().min(MAX_DATAGRAM)])
                        .map_err(broken)?;
                }
                Ok(())
            }
        }
    }

    fn check(&mut self) -> Result<(), SinkError> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(SinkError("not connected".into()));
        };
        let mut scratch = [0u8; 4096];
        let closed = || SinkError("the collector closed the connection".into());
        let result = match conn {
            Conn::Tcp(s) => {
                s.set_nonblocking(true).map_err(|e| err("socket", e))?;
                let r = loop {
                    match s.read(&mut scratch) {
                        Ok(0) => break Err(closed()),
                        // A collector has nothing to say; whatever it said is read and dropped.
                        Ok(_) => continue,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break Ok(()),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => break Err(err("the connection to the collector broke", e)),
                    }
                };
                let _ = s.set_nonblocking(false);
                r
            }
            Conn::Tls(s) => {
                s.sock.set_nonblocking(true).map_err(|e| err("socket", e))?;
                let r = loop {
                    match s.conn.read_tls(&mut s.sock) {
                        Ok(0) => break Err(closed()),
                        Ok(_) => {
                            // Session tickets, a key update or its close_notify.
                            match s.conn.process_new_packets() {
                                Ok(state) if state.peer_has_closed() => break Err(closed()),
                                Ok(_) => {
                                    while matches!(s.conn.reader().read(&mut scratch), Ok(n) if n > 0)
                                    {
                                    }
                                }
                                Err(e) => break Err(err("TLS", e)),
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break Ok(()),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => break Err(err("the connection to the collector broke", e)),
                    }
                };
                let _ = s.sock.set_nonblocking(false);
                r
            }
            Conn::Udp(s) => {
                s.set_nonblocking(true).map_err(|e| err("socket", e))?;
                // A refusal (ICMP port unreachable) is reported on the next receive.
                let r = match s.recv(&mut scratch) {
                    Ok(_) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
                    Err(e) => Err(err("the collector refused datagrams", e)),
                };
                let _ = s.set_nonblocking(false);
                r
            }
        };
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    fn settles(&self) -> bool {
        self.transport != Transport::Udp && !self.settle.is_zero()
    }

    fn disconnect(&mut self) {
        if let Some(Conn::Tls(mut s)) = self.conn.take() {
            s.conn.send_close_notify();
            let _ = s.conn.write_tls(&mut s.sock);
        }
    }

    fn octet_counting(&self) -> bool {
        self.transport != Transport::Udp
    }
}

/// The EVE-style NDJSON file: one event a line, rotated by size (`PATH.1`
/// newest .. `PATH.keep`), reopened by path on request (SIGHUP, after
/// logrotate renamed it).
pub struct EveSink {
    path: PathBuf,
    rotate_bytes: u64,
    keep: u32,
    file: Option<std::fs::File>,
    size: u64,
}

impl EveSink {
    /// The file at `path`.
    pub fn new(path: PathBuf, rotate_bytes: u64, keep: u32) -> EveSink {
        EveSink {
            path,
            rotate_bytes,
            keep: keep.max(1),
            file: None,
            size: 0,
        }
    }

    fn rotated(&self, n: u32) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    }

    fn rotate(&mut self) -> Result<(), SinkError> {
        if let Some(f) = self.file.take() {
            f.sync_data()
                .map_err(|e| err(&self.path.display().to_string(), e))?;
        }
        for n in (1..self.keep).rev() {
            match std::fs::rename(self.rotated(n), self.rotated(n + 1)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(err("rotating the EVE file", e)),
            }
        }
        std::fs::rename(&self.path, self.rotated(1))
            .map_err(|e| err("rotating the EVE file", e))?;
        self.connect()
    }
}

impl Sink for EveSink {
    fn connect(&mut self) -> Result<(), SinkError> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| err(&dir.display().to_string(), e))?;
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| err(&self.path.display().to_string(), e))?;
        self.size = f
            .metadata()
            .map_err(|e| err(&self.path.display().to_string(), e))?
            .len();
        self.file = Some(f);
        Ok(())
    }

    fn connected(&self) -> bool {
        self.file.is_some()
    }

    fn send(&mut self, buf: &[u8], ends: &[usize]) -> Result<(), SinkError> {
        let mut run_start = 0;
        let mut start = 0;
        for &end in ends {
            let len = (end - start) as u64;
            if self.size > 0 && self.size + len > self.rotate_bytes {
                self.write(&buf[run_start..start])?;
                self.rotate()?;
                run_start = start;
            }
            self.size += len;
            start = end;
        }
        self.write(&buf[run_start..start])
    }

    fn check(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    fn settles(&self) -> bool {
        false
    }

    fn sync(&mut self) -> Result<(), SinkError> {
        match &self.file {
            Some(f) => f
                .sync_data()
                .map_err(|e| err(&self.path.display().to_string(), e)),
            None => Ok(()),
        }
    }

    fn disconnect(&mut self) {
        self.file = None;
    }

    fn reopen(&mut self) {
        self.file = None;
    }
}

impl EveSink {
    fn write(&mut self, bytes: &[u8]) -> Result<(), SinkError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let path = self.path.display().to_string();
        let Some(f) = self.file.as_mut() else {
            return Err(SinkError(format!("{path} is not open")));
        };
        f.write_all(bytes).map_err(|e| {
            self.file = None;
            err(&path, e)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(n: usize, len: usize) -> (Vec<u8>, Vec<usize>) {
        let mut buf = Vec::new();
        let mut ends = Vec::new();
        for i in 0..n {
            let mut line = format!("{{\"n\":{i}}}").into_bytes();
            line.resize(len - 1, b' ');
            line.push(b'\n');
            buf.extend_from_slice(&line);
            ends.push(buf.len());
        }
        (buf, ends)
    }

    #[test]
    fn the_eve_file_rotates_by_size_and_keeps_what_it_is_told() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("eve").join("alerts.json");
        let mut s = EveSink::new(path.clone(), 1000, 2);
        s.connect().unwrap();
        for _ in 0..4 {
            let (buf, ends) = lines(5, 100);
            s.send(&buf, &ends).unwrap();
        }
        // 20 lines of 100 bytes, 10 a file: the live file and .1; .2 would be
        // the oldest kept, and nothing beyond.
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 1000);
        assert_eq!(std::fs::metadata(s.rotated(1)).unwrap().len(), 1000);
        assert!(!s.rotated(3).exists());
        for _ in 0..3 {
            let (buf, ends) = lines(10, 100);
            s.send(&buf, &ends).unwrap();
        }
        assert!(s.rotated(2).exists() && !s.rotated(3).exists());
        // No line is ever split across files.
        for p in [path.clone(), s.rotated(1), s.rotated(2)] {
            let text = std::fs::read_to_string(&p).unwrap();
            assert!(
                text.lines().all(|l| l.starts_with("{\"n\":")),
                "{}",
                p.display()
            );
        }
    }

    #[test]
    fn a_reopened_eve_file_follows_its_path() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("eve.json");
        let mut s = EveSink::new(path.clone(), 1 << 20, 5);
        s.connect().unwrap();
        let (buf, ends) = lines(1, 50);
        s.send(&buf, &ends).unwrap();
        // logrotate's `create` mode: rename, then signal.
        std::fs::rename(&path, d.path().join("eve.json.1")).unwrap();
        s.send(&buf, &ends).unwrap();
        s.reopen();
        assert!(!s.connected());
        s.connect().unwrap();
        s.send(&buf, &ends).unwrap();
        assert_eq!(
            std::fs::metadata(d.path().join("eve.json.1"))
                .unwrap()
                .len(),
            100
        );
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 50);
    }

    #[test]
    fn a_collector_that_is_not_there_is_an_error_not_a_panic() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut s = SyslogSink::new(
            &format!("127.0.0.1:{port}"),
            Transport::Tcp,
            None,
            Duration::from_secs(1),
        )
        .unwrap();
        assert!(s.connect().is_err());
        assert!(s.check().is_err());
        assert!(s.send(b"x", &[1]).is_err());
        let mut bad = SyslogSink::new(
            "no-such-host.invalid:514",
            Transport::Tcp,
            None,
            Duration::ZERO,
        )
        .unwrap();
        assert!(bad.connect().is_err());
    }

    #[test]
    fn a_closed_connection_is_seen_by_the_check() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let mut s = SyslogSink::new(
            &addr.to_string(),
            Transport::Tcp,
            None,
            Duration::from_secs(1),
        )
        .unwrap();
        s.connect().unwrap();
        let (peer, _) = l.accept().unwrap();
        s.check().unwrap();
        s.send(b"12 <134>1 - - -", &[15]).unwrap();
        drop(peer);
        // The close reaches us promptly on loopback.
        let mut seen = false;
        for _ in 0..100 {
            if s.check().is_err() {
                seen = true;
                break;
            }
            #[allow(clippy::disallowed_methods)] // a test's own thread
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(seen && !s.connected());
    }
}
