//! One sender connection: admission, the upstream connection, and the driver of
//! its session.
//!
//! The connection's rules (what is decided when, which answer waits for which
//! acknowledgement, the timeouts) are the engine's sans-IO
//! [`wardgate_engine::session::Session`]; this file feeds it bytes, ends of stream
//! and the time, and carries out its [`Out`]s in order: writes, pacing, records.
//! One task per connection drives both directions with `select!`, so a reply that
//! wardgate writes itself can never interleave with an upstream acknowledgement
//! being relayed: the client socket has one writer.

use crate::tls::{Upstream, UpstreamTls};
use crate::Shared;
use bytes::{Buf, BytesMut};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use wardgate_engine::hl7::Verdict;
use wardgate_engine::policy::RoutePolicy;
use wardgate_engine::session::{ClientFrame, Out, Session, Timeouts};
use wardgate_engine::{rules, Admission, Clock, Flow};
use wardgate_event::event::{Action, Stage};

/// Initial read buffer per direction; grows only as far as the frame limit.
const READ_CHUNK: usize = 16 * 1024;

/// A sender's side of a connection: a TCP socket, or TLS over one.
pub(crate) trait ClientIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> ClientIo for T {}

/// Serves one sender. `identity` is the device a verified client certificate
/// names; without one, the source address identifies the device.
pub(crate) async fn handle<C: ClientIo>(
    client: C,
    peer: SocketAddr,
    identity: Option<String>,
    up_tls: Option<Arc<UpstreamTls>>,
    route: Arc<RoutePolicy>,
    shared: Arc<Shared>,
) {
    // The policy in force when the connection comes; each message then uses the
    // one in force when it arrives (`Relay::on_client_bytes`).
    let route = shared.current_route(&route);
    let Some(flow) = admit(peer, identity.as_deref(), &route, &shared) else {
        // Nothing the peer sent is read, let alone forwarded; dropping closes it.
        drop(client);
        return;
    };
    let upstream = connect(&route, &shared, up_tls.as_deref()).await;
    match upstream {
        Ok(up) => {
            shared.record(flow.event(
                &Clock::now(),
                &route,
                Action::Allowed,
                "connection admitted".into(),
                Stage::Connection,
            ));
            let mut relay = Relay::new(client, Some(up), flow, route, shared, up_tls);
            relay.run().await;
        }
        Err(why) => {
            let e = flow
                .event(
                    &Clock::now(),
                    &route,
                    Action::Failed,
                    format!("upstream {} unavailable: {why}", route.upstream),
                    Stage::Connection,
                )
                .with_rule(rules::UPSTREAM_UNAVAILABLE);
            shared.record(e);
            // Degraded: each message is judged, and one that would be forwarded
            // tries the upstream again (see `Relay::judge_unconnected`).
            let mut relay = Relay::new(client, None, flow, route, shared, up_tls);
            relay.run().await;
        }
    }
}

/// Admission: the client certificate's device (or the source address's) must be
/// among the route's senders. A refusal is recorded; `None` means close.
pub(crate) fn admit(
    peer: SocketAddr,
    identity: Option<&str>,
    route: &Arc<RoutePolicy>,
    shared: &Shared,
) -> Option<Flow> {
    let admission = match identity {
        Some(id) => shared.policy.load().admit_device(route, id, peer.ip()),
        None => shared.policy.load().admit(route, peer.ip()),
    };
    match admission {
        // The id goes on every event of the connection; its first one (admitted,
        // or the upstream failure) is the context that compact routine records
        // of its messages refer to.
        Admission::Allowed { device, alert } => {
            let flow = Flow::new(peer, route.upstream, Some(device))
                .with_connection_id(next_connection_id());
            if let Some(why) = alert {
                let e = flow
                    .event(
                        &Clock::now(),
                        route,
                        Action::Alerted,
                        format!("connection admitted: {why}"),
                        Stage::Connection,
                    )
                    .with_rule(wardgate_engine::rules::TLS_ADDRESS);
                shared.record(e);
            }
            Some(flow)
        }
        Admission::Denied {
            rule,
            device,
            reason,
        } => {
            let flow = Flow::new(peer, route.upstream, device);
            let e = flow
                .event(
                    &Clock::now(),
                    route,
                    Action::Blocked,
                    format!("connection refused: {reason}"),
                    Stage::Connection,
                )
                .with_rule(rule);
            shared.record(e);
            None
        }
    }
}

/// Connects to the route's upstream (and, with `upstream_tls`, verifies it), all
/// within the connect timeout. The outcome is the route's upstream health in
/// metrics and `wardgate status`; a success's time goes to the connect histogram.
pub(crate) async fn connect(
    route: &RoutePolicy,
    shared: &Shared,
    tls: Option<&UpstreamTls>,
) -> Result<Upstream, String> {
    let attempt = async {
        let tcp = TcpStream::connect(route.upstream)
            .await
            .map_err(|e| e.to_string())?;
        let _ = tcp.set_nodelay(true);
        match tls {
            Some(t) => t.connect(tcp).await,
            None => Ok(Upstream::Plain(tcp)),
        }
    };
    let started = Instant::now();
    let r = match tokio::time::timeout(shared.opts.connect_timeout, attempt).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!(
            "no answer within {:?}",
            shared.opts.connect_timeout
        )),
    };
    match &r {
        Ok(_) => shared
            .metrics
            .upstream_connected(route.index, started.elapsed()),
        Err(_) => shared.metrics.upstream_failed(route.index),
    }
    r
}

/// Writes `bytes` within `limit`: false when the peer failed or stopped reading
/// (a peer that does not read must not hold a connection, or the answers owed
/// to the other side, forever).
pub(crate) async fn bounded_write<W: AsyncWrite + Unpin>(
    w: &mut W,
    bytes: &[u8],
    limit: std::time::Duration,
) -> bool {
    use std::future::Future;
    use std::task::Poll;
    let mut fut = std::pin::pin!(w.write_all(bytes));
    // Almost every write completes at once (the socket buffer has room): only a
    // pending one reads the clock and arms a timer, off the hot path.
    let first = std::future::poll_fn(|cx| match fut.as_mut().poll(cx) {
        Poll::Ready(r) => Poll::Ready(Some(r)),
        Poll::Pending => Poll::Ready(None),
    })
    .await;
    match first {
        Some(r) => r.is_ok(),
        None => matches!(tokio::time::timeout(limit, fut).await, Ok(Ok(()))),
    }
}

/// The connection's timeouts, from the gateway's options.
pub(crate) fn timeouts(shared: &Shared) -> Timeouts {
    Timeouts {
        frame: shared.opts.frame_timeout,
        idle: shared.opts.idle_timeout,
        grace: shared.opts.shutdown_grace,
    }
}

/// The driver of one connection's [`Session`].
pub(crate) struct Relay<C> {
    client: C,
    /// `None` while the upstream is down (degraded): a message that would be
    /// forwarded first tries to connect; if that fails it is answered AE so the
    /// sender retries. Nothing is forwarded, nothing dropped silently, and care
    /// resumes without the sender reconnecting once the upstream is back.
    upstream: Option<Upstream>,
    up_tls: Option<Arc<UpstreamTls>>,
    session: Session,
    shared: Arc<Shared>,
    cbuf: BytesMut,
    ubuf: BytesMut,
    /// The session's outputs not yet carried out (kept to reuse its allocation).
    outs: Vec<Out>,
    /// The device's message rate (flood protection).
    gate: crate::limits::MessageGate,
}

impl<C: ClientIo> Relay<C> {
    fn new(
        client: C,
        upstream: Option<Upstream>,
        flow: Flow,
        route: Arc<RoutePolicy>,
        shared: Arc<Shared>,
        up_tls: Option<Arc<UpstreamTls>>,
    ) -> Self {
        let gate = shared.floods.gate(&flow);
        Relay {
            client,
            upstream,
            up_tls,
            session: Session::new(flow, route, timeouts(&shared), Instant::now()),
            shared,
            cbuf: BytesMut::with_capacity(READ_CHUNK),
            ubuf: BytesMut::with_capacity(READ_CHUNK),
            outs: Vec::with_capacity(8),
            gate,
        }
    }

    async fn run(&mut self) {
        let mut draining = false;
        // One timer and one shutdown future for the connection's life: re-armed only
        // when they fire early or a nearer deadline appears, never per message.
        let mut armed = self.session.deadline();
        let timer = tokio::time::sleep_until(armed.into());
        tokio::pin!(timer);
        let stopping = self.shared.stop_bell.listen();
        tokio::pin!(stopping);
        loop {
            if self.session.is_finished() {
                break;
            }
            let due = self.session.deadline();
            if due < armed {
                armed = due;
                timer.as_mut().reset(armed.into());
            }
            let reading = self.session.wants_client_bytes();
            let upstream_up = self.upstream.is_some();
            let alive = tokio::select! {
                r = self.client.read_buf(&mut self.cbuf), if reading => {
                    match r {
                        Ok(0) | Err(_) => {
                            self.session.client_closed(&self.cbuf, &Clock::now(), &mut self.outs);
                            self.execute().await
                        }
                        Ok(_) => {
                            let now = Instant::now();
                            self.session.client_read(now);
                            self.on_client_bytes(now).await
                        }
                    }
                }
                r = read_upstream(&mut self.upstream, &mut self.ubuf), if upstream_up => {
                    match r {
                        Ok(0) | Err(_) => self.session.upstream_closed(&Clock::now(), &mut self.outs),
                        Ok(_) => {
                            self.session.upstream_read(Instant::now());
                            self.session.upstream_bytes(&self.ubuf, &Clock::now(), &mut self.outs)
                        }
                    }
                    if self.ubuf.capacity() - self.ubuf.len() < READ_CHUNK / 4 {
                        self.ubuf.reserve(READ_CHUNK);
                    }
                    self.execute().await
                }
                () = &mut timer => {
                    let now = Instant::now();
                    let due = self.session.deadline();
                    if now < due {
                        // Activity moved the deadline since the timer was armed.
                        armed = due;
                        timer.as_mut().reset(armed.into());
                        continue;
                    }
                    self.session.tick(now, self.cbuf.len(), &Clock::now(), &mut self.outs);
                    self.execute().await
                }
                () = &mut stopping, if !draining => {
                    // Whole frames already received are still decided; partial ones are not.
                    draining = true;
                    self.session.shutdown(Instant::now(), &mut self.outs);
                    self.execute().await
                }
            };
            if !alive {
                self.linger().await;
                return;
            }
        }
        let _ = tokio::time::timeout(self.shared.opts.frame_timeout, self.client.shutdown()).await;
        self.linger().await;
    }

    /// After the close is sent, reads what the sender still sends until it
    /// closes too, for at most [`LINGER`] and [`LINGER_BYTES`]: closing with
    /// its bytes unread makes the kernel reset the connection, and a reset
    /// discards the answers the sender had not yet read (found by an
    /// adversarial review: after a stalled upstream write, 34 of 133 answers
    /// owed arrived, the rest lost with the reset).
    async fn linger(&mut self) {
        let drain = async {
            let mut scratch = vec![0u8; 16 * 1024];
            let mut read = 0usize;
            while read < LINGER_BYTES {
                match self.client.read(&mut scratch).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => read += n,
                }
            }
        };
        let _ = tokio::time::timeout(LINGER, drain).await;
    }

    /// Frames and decides every complete frame in the client buffer; false when
    /// the connection is over.
    /// `read_at`: when the bytes were read (one clock reading serves the first
    /// frame; later frames read the clock again, after the earlier ones' writes).
    async fn on_client_bytes(&mut self, read_at: Instant) -> bool {
        let mut first = Some(read_at);
        while self.session.wants_client_bytes() {
            let now = first.take().unwrap_or_else(Instant::now);
            match self.session.next_client_frame(&self.cbuf, now) {
                Ok(ClientFrame::Frame { start, end }) => {
                    let flow = self.session.flow();
                    let paced = self
                        .gate
                        .pace(&self.shared, flow, self.session.route())
                        .await;
                    // A slow disk holds this connection, not the worker.
                    let held = self.shared.room(flow, self.session.route()).await;
                    // Waiting for the device's message rate, or for the frames
                    // before this one to be carried out, is not idleness.
                    self.session
                        .client_read(if paced || held { Instant::now() } else { now });
                    let clock = Clock::now();
                    let decided_from = self.outs.len();
                    if self.upstream.is_none() {
                        self.judge_unconnected(start, end, &clock).await;
                    } else {
                        // The policy in force now (a reload swaps it between
                        // messages), read without touching a reference count.
                        let policy = self.shared.policy.load();
                        let current = policy
                            .routes
                            .get(self.session.route().index)
                            .filter(|r| r.id == self.session.route().id);
                        match current {
                            Some(r) => self.session.decide(
                                &self.cbuf,
                                start,
                                end,
                                r,
                                &clock,
                                &mut self.outs,
                            ),
                            None => {
                                let r = self.session.route().clone();
                                self.session.decide(
                                    &self.cbuf,
                                    start,
                                    end,
                                    &r,
                                    &clock,
                                    &mut self.outs,
                                );
                            }
                        }
                    }
                    if let Some(action) = crate::metrics::message_action(
                        &self.outs[decided_from.min(self.outs.len())..],
                    ) {
                        self.shared.metrics.message(
                            self.session.route().index,
                            action,
                            end - start,
                        );
                    }
                    if !self.execute().await {
                        return false;
                    }
                }
                Ok(ClientFrame::NeedMore) => {
                    if self.cbuf.capacity() - self.cbuf.len() < READ_CHUNK / 4 {
                        self.cbuf.reserve(READ_CHUNK);
                    }
                    return true;
                }
                Err(e) => {
                    self.session
                        .framing_error(&e, &Clock::now(), &mut self.outs);
                    return self.execute().await;
                }
            }
        }
        true
    }

    /// Degraded: the frame is judged first (a message policy refuses is refused
    /// as usual); one that would be forwarded tries the upstream again, and is
    /// forwarded if it is back, else answered AE.
    async fn judge_unconnected(&mut self, start: usize, end: usize, clock: &Clock) {
        let route = self.shared.current_route(self.session.route());
        let frame = self.cbuf.get(start..end).unwrap_or_default();
        let outcome = self.session.judge(frame, &route, clock, &mut self.outs);
        if outcome.verdict == Verdict::Block {
            let frame = self.cbuf.get(start..end).unwrap_or_default();
            self.session
                .enforce(outcome, Some((start, end, frame)), clock, &mut self.outs);
            return;
        }
        let route = self.session.route().clone();
        match connect(&route, &self.shared, self.up_tls.as_deref()).await {
            Ok(up) => {
                self.upstream = Some(up);
                let e = self.session.flow().event(
                    &Clock::now(),
                    &route,
                    Action::Allowed,
                    "upstream reachable again; relaying".into(),
                    Stage::Connection,
                );
                self.outs.push(Out::Record(e.into()));
                // Judged again: connecting took time, and a reload may have come
                // meanwhile; the record is of the decision that is carried out.
                drop(outcome);
                let route = self.shared.current_route(self.session.route());
                let clock = Clock::now();
                let frame = self.cbuf.get(start..end).unwrap_or_default();
                let outcome = self.session.judge(frame, &route, &clock, &mut self.outs);
                self.session
                    .enforce(outcome, Some((start, end, frame)), &clock, &mut self.outs);
            }
            Err(why) => {
                self.session.unavailable(
                    &self.cbuf,
                    start,
                    end,
                    &why,
                    &Clock::now(),
                    &mut self.outs,
                );
            }
        }
    }

    /// Carries out the session's outputs in order. False when the connection is
    /// over (closed by the session, or the sender cannot be written to).
    async fn execute(&mut self) -> bool {
        let limit = self.shared.opts.frame_timeout;
        let mut client_ok = true;
        let mut open = true;
        // Answers not written whole to a sender that stopped reading.
        let mut undelivered: Vec<Vec<u8>> = Vec::new();
        let mut undelivered_n = 0usize;
        let mut note = |frame: &[u8], list: &mut Vec<Vec<u8>>| {
            undelivered_n += 1;
            if list.len() < 32 {
                list.push(frame.to_vec());
            }
        };
        while !self.outs.is_empty() {
            let mut batch = std::mem::take(&mut self.outs);
            for o in batch.drain(..) {
                match o {
                    // Records are kept whatever else failed: nothing decided goes unrecorded.
                    Out::Record(r) => self.shared.record(r),
                    Out::Forward { start, end } => {
                        let sent = match self.upstream.as_mut() {
                            Some(up) if open => {
                                let bytes = self.cbuf.get(start..end).unwrap_or_default();
                                bounded_write(up, bytes, limit).await
                            }
                            _ => false,
                        };
                        self.cbuf.advance(end.min(self.cbuf.len()));
                        if !sent && open {
                            self.forward_failed(limit).await;
                        }
                    }
                    Out::ForwardBytes { bytes, end } => {
                        let sent = match self.upstream.as_mut() {
                            Some(up) if open => bounded_write(up, &bytes, limit).await,
                            _ => false,
                        };
                        self.cbuf.advance(end.min(self.cbuf.len()));
                        if !sent && open {
                            self.forward_failed(limit).await;
                        }
                    }
                    Out::Consume(n) => self.cbuf.advance(n.min(self.cbuf.len())),
                    Out::Reply(reply) => {
                        if !client_ok {
                            note(&reply, &mut undelivered);
                        } else if !bounded_write(&mut self.client, &reply, limit).await {
                            client_ok = false;
                            note(&reply, &mut undelivered);
                            self.session
                                .sender_lost(limit, &Clock::now(), &mut self.outs);
                        }
                    }
                    Out::Relay { start, end } => {
                        let bytes = self.ubuf.get(start..end).unwrap_or_default();
                        if !client_ok {
                            if !bytes.is_empty() {
                                note(bytes, &mut undelivered);
                            }
                        } else if !bounded_write(&mut self.client, bytes, limit).await {
                            client_ok = false;
                            note(bytes, &mut undelivered);
                            self.session
                                .sender_lost(limit, &Clock::now(), &mut self.outs);
                        }
                        self.ubuf.advance(end.min(self.ubuf.len()));
                    }
                    Out::ShutdownUpstream => {
                        if let Some(up) = self.upstream.as_mut() {
                            let _ = tokio::time::timeout(limit, up.shutdown()).await;
                        }
                    }
                    Out::Close => {
                        if client_ok {
                            let _ = tokio::time::timeout(limit, self.client.shutdown()).await;
                        }
                        open = false;
                    }
                }
            }
            // Outputs added while carrying these out (a failed forward) come next;
            // otherwise the emptied batch keeps its allocation for next time.
            if self.outs.is_empty() {
                self.outs = batch;
            }
        }
        if undelivered_n > 0 {
            let mut rec = Vec::new();
            self.session.answers_not_delivered(
                &undelivered,
                undelivered_n,
                &Clock::now(),
                &mut rec,
            );
            for o in rec {
                if let Out::Record(r) = o {
                    self.shared.record(r);
                }
            }
        }
        open && client_ok
    }
}

impl<C: ClientIo> Relay<C> {
    /// A write to the upstream failed: the upstream may have answered earlier
    /// messages and then closed or reset (a server that answers and hangs up
    /// with more unread). Its answers already here are read, once and briefly,
    /// so that each is relayed to the sender before the failure's own answers:
    /// an order the upstream acknowledged is never reported unanswered (the
    /// sender would send it again, and the pump get it twice).
    async fn forward_failed(&mut self, limit: std::time::Duration) {
        if let Some(up) = self.upstream.as_mut() {
            if self.ubuf.capacity() - self.ubuf.len() < READ_CHUNK / 4 {
                self.ubuf.reserve(READ_CHUNK);
            }
            if let Ok(Ok(n)) = tokio::time::timeout(DRAIN_WAIT, up.read_buf(&mut self.ubuf)).await {
                if n > 0 {
                    self.session
                        .upstream_bytes(&self.ubuf, &Clock::now(), &mut self.outs);
                }
            }
        }
        self.session
            .forward_failed(limit, &Clock::now(), &mut self.outs);
    }
}

/// How long a closed connection waits for the sender to close its side.
const LINGER: std::time::Duration = std::time::Duration::from_secs(2);
/// The most a closed connection reads (and discards) from the sender.
const LINGER_BYTES: usize = 4 << 20;

/// How long a failed forward waits for answers the upstream already sent (they
/// are in the socket's buffer: this bounds only a stalled upstream's wait).
const DRAIN_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

/// Reads from the upstream; never called while there is none (the `select!`
/// branch is disabled then).
pub(crate) async fn read_upstream(
    up: &mut Option<Upstream>,
    buf: &mut BytesMut,
) -> std::io::Result<usize> {
    match up {
        Some(u) => u.read_buf(buf).await,
        None => std::future::pending().await,
    }
}

/// A new connection id: unique within this process, and across restarts because
/// the counter starts from the clock (microseconds since 1970 at first use).
pub(crate) fn next_connection_id() -> u64 {
    static NEXT: std::sync::OnceLock<std::sync::atomic::AtomicU64> = std::sync::OnceLock::new();
    NEXT.get_or_init(|| {
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2));
        std::sync::atomic::AtomicU64::new(start)
    })
    .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}
