//! One sender connection: admission, the upstream connection, and the relay loop.
//!
//! One task per connection drives both directions with `select!`, so a reply that
//! wardgate writes itself can never interleave with an upstream acknowledgement
//! being relayed: the client socket has one writer. Replies keep request order:
//! a NAK for message N waits until the upstream has acknowledged every forwarded
//! message before N.

use crate::tls::{Upstream, UpstreamTls};
use crate::Shared;
use bytes::{Buf, BytesMut};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use wardgate_engine::hl7::{self as inspect, Outcome, Verdict};
use wardgate_engine::policy::RoutePolicy;
use wardgate_engine::{rules, Admission, Clock, Flow};
use wardgate_event::event::{Action, Stage};
use wardgate_proto::mllp::{Framer, Limits, Progress};

/// Initial read buffer per direction; grows only as far as the frame limit.
const READ_CHUNK: usize = 16 * 1024;
/// Most replies that may wait behind unacknowledged upstream messages. A sender
/// pipelining more refused messages than this while the upstream is slow is cut
/// off: memory per connection stays bounded.
const MAX_DEFERRED_REPLIES: usize = 1024;

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
    stop: watch::Receiver<bool>,
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
            let mut relay = Relay::new(client, up, flow, route, shared);
            relay.run(stop).await;
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
            degraded(client, flow, route, shared, stop, up_tls).await;
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
        Some(id) => shared.policy.load().admit_device(route, id),
        None => shared.policy.load().admit(route, peer.ip()),
    };
    match admission {
        // The id goes on every event of the connection; its first one (admitted,
        // or the upstream failure) is the context that compact routine records
        // of its messages refer to.
        Admission::Allowed { device } => Some(
            Flow::new(peer, route.upstream, Some(device)).with_connection_id(next_connection_id()),
        ),
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
/// within the connect timeout.
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
    match tokio::time::timeout(shared.opts.connect_timeout, attempt).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(format!(
            "no answer within {:?}",
            shared.opts.connect_timeout
        )),
    }
}

/// The upstream is down: each complete message is first judged by policy (a
/// message policy refuses is refused as usual); an allowed one triggers a fresh
/// connection attempt, and if the upstream is back the connection switches to the
/// normal relay with that message still buffered, so care resumes without the
/// sender reconnecting. Otherwise the message is answered AE so the sender retries:
/// nothing is forwarded, nothing is dropped silently.
async fn degraded<C: ClientIo>(
    mut client: C,
    flow: Flow,
    mut route: Arc<RoutePolicy>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    up_tls: Option<Arc<UpstreamTls>>,
) {
    let mut framer = Framer::new(Limits {
        max_frame_bytes: route.max_frame_bytes,
    })
    .strict(route.mllp_strict);
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let gate = shared.floods.gate(&flow);
    loop {
        tokio::select! {
            r = tokio::time::timeout(shared.opts.idle_timeout, client.read_buf(&mut buf)) => {
                match r {
                    Ok(Ok(n)) if n > 0 => {}
                    _ => return,
                }
            }
            _ = crate::stopped(&mut stop) => return,
        }
        loop {
            let outcome = match framer.next(&buf) {
                Ok(Progress::Frame(f)) => {
                    gate.pace(&shared, &flow, &route).await;
                    let now = shared.current_route(&route);
                    if !Arc::ptr_eq(&now.policy_hash, &route.policy_hash) {
                        shared.record(policy_changed(&flow, &now));
                        route = now;
                    }
                    let verdict = inspect::inspect(&route, &flow, f.frame(&buf), &Clock::now());
                    if verdict.verdict != Verdict::Block {
                        match connect(&route, &shared, up_tls.as_deref()).await {
                            Ok(up) => {
                                // Back: relay from here; this frame is decided (and recorded) there.
                                let e = flow.event(
                                    &Clock::now(),
                                    &route,
                                    Action::Allowed,
                                    "upstream reachable again; relaying".into(),
                                    Stage::Connection,
                                );
                                shared.record(e);
                                let mut relay = Relay::new(client, up, flow, route, shared);
                                relay.cbuf = buf;
                                if let End::Closed = relay.on_client_bytes().await {
                                    return;
                                }
                                relay.run(stop).await;
                                return;
                            }
                            Err(why) => {
                                let o = inspect::unavailable(
                                    &route,
                                    &flow,
                                    f.frame(&buf),
                                    &Clock::now(),
                                    &why,
                                );
                                buf.advance(f.len);
                                o
                            }
                        }
                    } else {
                        buf.advance(f.len);
                        verdict
                    }
                }
                Ok(Progress::NeedMore) => break,
                Err(e) => inspect::framing_error(&route, &flow, &e, &Clock::now()),
            };
            let close = outcome.close;
            if let Some(reply) = &outcome.reply {
                if !bounded_write(&mut client, reply, shared.opts.frame_timeout).await {
                    shared.record(outcome.record);
                    return;
                }
            }
            shared.record(outcome.record);
            if close {
                return;
            }
        }
    }
}

/// Writes `bytes` within `limit`: false when the peer failed or stopped reading
/// (a peer that does not read must not hold a connection, or the answers owed
/// to the other side, forever).
async fn bounded_write<W: AsyncWrite + Unpin>(
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

/// The record that a connection's later decisions use a new policy (after a
/// reload): a context record for its compact routine records.
pub(crate) fn policy_changed(flow: &Flow, route: &RoutePolicy) -> wardgate_event::event::Event {
    flow.event(
        &Clock::now(),
        route,
        Action::Allowed,
        format!(
            "policy {} applies to this connection's next messages",
            route.policy_hash
        ),
        Stage::Connection,
    )
}

/// MSH-10 as written, inline up to 32 bytes (no allocation for usual ids),
/// bounded at 64.
type ControlId = smallvec::SmallVec<[u8; 32]>;

/// MSH-10 of a framed message, as written, without a parse or an allocation
/// (it runs for every forwarded message): the tenth field of the first line.
fn control_id_of(frame: &[u8]) -> ControlId {
    let payload = frame
        .get(1..frame.len().saturating_sub(2))
        .unwrap_or_default();
    let line = payload
        .split(|&b| b == b'\r' || b == b'\n')
        .next()
        .unwrap_or_default();
    let mut out = ControlId::new();
    if let (true, Some(&sep)) = (line.starts_with(b"MSH"), line.get(3)) {
        if let Some(id) = line.split(|&b| b == sep).nth(9) {
            out.extend_from_slice(&id[..id.len().min(64)]);
        }
    }
    out
}

/// Why the relay loop ended.
enum End {
    /// Orderly: the sender closed, or shutdown with nothing in flight.
    Done,
    /// A rule closed the connection (the event was already recorded).
    Closed,
}

pub(crate) struct Relay<C> {
    client: C,
    upstream: Upstream,
    flow: Flow,
    route: Arc<RoutePolicy>,
    shared: Arc<Shared>,
    cbuf: BytesMut,
    ubuf: BytesMut,
    cframer: Framer,
    uframer: Framer,
    /// Frames forwarded and not yet acknowledged by the upstream.
    in_flight: usize,
    /// MSH-10 of each of those, oldest first: if the upstream never answers, the
    /// record names exactly which messages went unanswered.
    in_flight_ids: VecDeque<ControlId>,
    /// A rule closed the sender's side: nothing more is read or forwarded, but
    /// the acknowledgements still due from the upstream are relayed first.
    closing: bool,
    /// Replies waiting for earlier upstream acknowledgements: (acks still due first, frame).
    deferred: VecDeque<(usize, Vec<u8>)>,
    /// When the first byte of the frame now being received arrived.
    frame_started: Option<Instant>,
    last_activity: Instant,
    /// The device's message rate (flood protection).
    gate: crate::limits::MessageGate,
}

impl<C: ClientIo> Relay<C> {
    fn new(
        client: C,
        upstream: Upstream,
        flow: Flow,
        route: Arc<RoutePolicy>,
        shared: Arc<Shared>,
    ) -> Self {
        let limits = Limits {
            max_frame_bytes: route.max_frame_bytes,
        };
        let gate = shared.floods.gate(&flow);
        Relay {
            client,
            upstream,
            flow,
            shared,
            cbuf: BytesMut::with_capacity(READ_CHUNK),
            ubuf: BytesMut::with_capacity(READ_CHUNK),
            cframer: Framer::new(limits).strict(route.mllp_strict),
            uframer: Framer::new(limits),
            route,
            in_flight: 0,
            in_flight_ids: VecDeque::new(),
            closing: false,
            deferred: VecDeque::new(),
            frame_started: None,
            last_activity: Instant::now(),
            gate,
        }
    }

    /// The deadline that applies now: shutdown grace, else frame completion, else idle.
    fn deadline(&self, drain_deadline: Option<Instant>) -> Instant {
        let opts = &self.shared.opts;
        match (self.frame_started, drain_deadline) {
            (_, Some(d)) => d,
            (Some(t), None) => t + opts.frame_timeout,
            (None, None) => self.last_activity + opts.idle_timeout,
        }
    }

    async fn run(&mut self, mut stop: watch::Receiver<bool>) {
        let opts = self.shared.opts.clone();
        let mut draining = false;
        let mut client_open = true;
        let mut drain_deadline = None;
        // One timer and one shutdown future for the connection's life: re-armed only
        // when they fire early or a nearer deadline appears, never per message.
        let mut armed = self.deadline(None);
        let timer = tokio::time::sleep_until(armed);
        tokio::pin!(timer);
        let stopping = crate::stopped(&mut stop);
        tokio::pin!(stopping);
        loop {
            if (draining || !client_open || self.closing)
                && self.in_flight == 0
                && self.deferred.is_empty()
            {
                break;
            }
            let due = self.deadline(drain_deadline);
            if due < armed {
                armed = due;
                timer.as_mut().reset(armed);
            }
            tokio::select! {
                r = self.client.read_buf(&mut self.cbuf), if client_open && !draining && !self.closing => {
                    match r {
                        Ok(0) | Err(_) => {
                            client_open = false;
                            if let Err(e) = self.cframer.finish(&self.cbuf) {
                                let o = inspect::framing_error(&self.route, &self.flow, &e, &Clock::now());
                                self.shared.record(o.record);
                            }
                            // Half-close: the upstream sees the end, acks still flow back.
                            let _ = self.upstream.shutdown().await;
                        }
                        Ok(_) => {
                            self.last_activity = Instant::now();
                            if let End::Closed = self.on_client_bytes().await {
                                return;
                            }
                        }
                    }
                }
                r = self.upstream.read_buf(&mut self.ubuf) => {
                    match r {
                        Ok(0) | Err(_) => {
                            if self.in_flight > 0 {
                                let reason = format!("upstream closed with {} message(s) unacknowledged: {}", self.in_flight, self.unanswered());
                                let e = self.flow.event(&Clock::now(), &self.route, Action::Failed, reason, Stage::Connection)
                                    .with_rule(rules::UPSTREAM_UNAVAILABLE);
                                self.shared.record(e);
                            }
                            self.flush_deferred_all().await;
                            return;
                        }
                        Ok(_) => {
                            if let End::Closed = self.on_upstream_bytes().await {
                                return;
                            }
                        }
                    }
                }
                () = &mut timer => {
                    let due = self.deadline(drain_deadline);
                    if Instant::now() < due {
                        // Activity moved the deadline since the timer was armed.
                        armed = due;
                        timer.as_mut().reset(armed);
                        continue;
                    }
                    let (rule, mut reason) = if drain_deadline.is_some() {
                        (rules::SHUTDOWN_CUT, format!("shutdown grace period ended with {} message(s) in flight", self.in_flight))
                    } else if self.frame_started.is_some() {
                        (rules::SLOW_SENDER, format!("frame not completed within {:?} ({} bytes buffered)", opts.frame_timeout, self.cbuf.len()))
                    } else {
                        (rules::IDLE_TIMEOUT, format!("no traffic for {:?}", opts.idle_timeout))
                    };
                    if self.in_flight > 0 {
                        reason.push_str(&format!("; the upstream never answered: {}", self.unanswered()));
                    }
                    // Answers wardgate owes (refusals queued behind the unanswered
                    // messages) are written, not dropped: the sender is told.
                    let owed = self.deferred.len();
                    self.flush_deferred_all().await;
                    if owed > 0 {
                        reason.push_str(&format!("; {owed} refusal(s) queued behind them were sent"));
                    }
                    let e = self.flow.event(&Clock::now(), &self.route, Action::Closed, reason, Stage::Connection).with_rule(rule);
                    self.shared.record(e);
                    let _ = self.client.shutdown().await;
                    return;
                }
                () = &mut stopping, if !draining => {
                    draining = true;
                    drain_deadline = Some(Instant::now() + opts.shutdown_grace);
                    // Whole frames already received are still decided; partial ones are not.
                }
            }
        }
        let _ = self.client.shutdown().await;
    }

    /// Frames and decides every complete frame in the client buffer.
    async fn on_client_bytes(&mut self) -> End {
        loop {
            match self.cframer.next(&self.cbuf) {
                Ok(Progress::Frame(f)) => {
                    self.gate.pace(&self.shared, &self.flow, &self.route).await;
                    // Waiting for the device's message rate is not idleness.
                    self.last_activity = Instant::now();
                    // The policy in force now (a reload swaps it between messages):
                    // read without touching a reference count.
                    let policy = self.shared.policy.load();
                    let route = match policy.routes.get(self.route.index) {
                        Some(r) if r.id == self.route.id => r,
                        _ => &self.route,
                    };
                    if !Arc::ptr_eq(&route.policy_hash, &self.route.policy_hash) {
                        // Later compact records of this connection expand with
                        // the policy this record names.
                        self.shared.record(policy_changed(&self.flow, route));
                        self.route = route.clone();
                        // A device the new policy no longer lets send on this route
                        // sends nothing more: what is in flight is answered, then
                        // the connection closes.
                        let still = self
                            .flow
                            .source_device
                            .as_ref()
                            .is_some_and(|d| self.route.senders.contains(d));
                        if !still {
                            let e = self
                                .flow
                                .event(
                                    &Clock::now(),
                                    &self.route,
                                    Action::Blocked,
                                    format!(
                                        "connection closed: the policy now in force ({}) does not allow this device on route {}",
                                        self.route.policy_hash, &*self.route.id
                                    ),
                                    Stage::Connection,
                                )
                                .with_rule(rules::SENDER_NOT_ALLOWED);
                            self.shared.record(e);
                            self.closing = true;
                            self.frame_started = None;
                            return End::Done;
                        }
                    }
                    let outcome = inspect::inspect(
                        &self.route,
                        &self.flow,
                        f.frame(&self.cbuf),
                        &Clock::now(),
                    );
                    drop(policy);
                    let end = self.on_client_frame(f.start, f.len, outcome).await;
                    self.cbuf.advance(f.len);
                    if self.closing {
                        return End::Done;
                    }
                    if let End::Closed = end {
                        return end;
                    }
                }
                Ok(Progress::NeedMore) => {
                    self.frame_started = if self.cframer.is_idle(&self.cbuf) {
                        None
                    } else {
                        self.frame_started.or(Some(Instant::now()))
                    };
                    if self.cbuf.capacity() - self.cbuf.len() < READ_CHUNK / 4 {
                        self.cbuf.reserve(READ_CHUNK);
                    }
                    return End::Done;
                }
                Err(e) => {
                    let o = inspect::framing_error(&self.route, &self.flow, &e, &Clock::now());
                    return self.on_client_frame(0, 0, o).await;
                }
            }
        }
    }

    /// Enforces one verdict. The frame is `cbuf[start..len]`.
    async fn on_client_frame(&mut self, start: usize, len: usize, outcome: Outcome) -> End {
        self.frame_started = None;
        let Outcome {
            verdict,
            record,
            reply,
            close,
        } = outcome;
        match verdict {
            Verdict::Allow | Verdict::Alert => {
                // Record first: a crash after forwarding must not leave an unrecorded decision.
                self.shared.record(record);
                let limit = self.shared.opts.frame_timeout;
                if !bounded_write(&mut self.upstream, &self.cbuf[start..len], limit).await {
                    // The upstream failed or stopped reading: say which messages
                    // went unanswered, send the refusals owed, close.
                    let mut reason = format!(
                        "upstream write failed or stalled for {limit:?}; the message may not have been delivered"
                    );
                    if self.in_flight > 0 {
                        reason.push_str(&format!("; unanswered: {}", self.unanswered()));
                    }
                    let e = self
                        .flow
                        .event(
                            &Clock::now(),
                            &self.route,
                            Action::Failed,
                            reason,
                            Stage::Message,
                        )
                        .with_rule(rules::UPSTREAM_UNAVAILABLE);
                    self.shared.record(e);
                    self.flush_deferred_all().await;
                    let _ = self.client.shutdown().await;
                    return End::Closed;
                }
                self.in_flight += 1;
                self.in_flight_ids
                    .push_back(control_id_of(&self.cbuf[start..len]));
                End::Done
            }
            Verdict::Block => {
                self.shared.record(record);
                if let Some(reply) = reply {
                    if self.in_flight == 0 && self.deferred.is_empty() {
                        if !bounded_write(&mut self.client, &reply, self.shared.opts.frame_timeout)
                            .await
                        {
                            return End::Closed;
                        }
                    } else if self.deferred.len() >= MAX_DEFERRED_REPLIES {
                        let e = self
                            .flow
                            .event(
                                &Clock::now(),
                                &self.route,
                                Action::Closed,
                                format!("more than {MAX_DEFERRED_REPLIES} replies waiting behind {} unacknowledged message(s)", self.in_flight),
                                Stage::Connection,
                            )
                            .with_rule(rules::REPLY_BACKLOG);
                        self.shared.record(e);
                        return End::Closed;
                    } else {
                        self.deferred.push_back((self.in_flight, reply));
                    }
                }
                if close {
                    if self.in_flight == 0 {
                        self.flush_deferred_all().await;
                        let _ = self.client.shutdown().await;
                        return End::Closed;
                    }
                    // Acknowledgements for messages already forwarded come back
                    // first, then this answer, then the connection closes (the
                    // run loop reads no more from the sender meanwhile).
                    self.closing = true;
                    self.frame_started = None;
                    End::Done
                } else {
                    End::Done
                }
            }
        }
    }

    /// Relays whole acknowledgement frames from the upstream, unchanged.
    async fn on_upstream_bytes(&mut self) -> End {
        loop {
            match self.uframer.next(&self.ubuf) {
                Ok(Progress::Frame(f)) => {
                    if !bounded_write(
                        &mut self.client,
                        f.frame(&self.ubuf),
                        self.shared.opts.frame_timeout,
                    )
                    .await
                    {
                        return End::Closed;
                    }
                    self.ubuf.advance(f.len);
                    self.in_flight = self.in_flight.saturating_sub(1);
                    self.in_flight_ids.pop_front();
                    for d in self.deferred.iter_mut() {
                        d.0 = d.0.saturating_sub(1);
                    }
                    while self.deferred.front().is_some_and(|d| d.0 == 0) {
                        if let Some((_, reply)) = self.deferred.pop_front() {
                            if !bounded_write(
                                &mut self.client,
                                &reply,
                                self.shared.opts.frame_timeout,
                            )
                            .await
                            {
                                return End::Closed;
                            }
                        }
                    }
                }
                Ok(Progress::NeedMore) => {
                    if self.ubuf.capacity() - self.ubuf.len() < READ_CHUNK / 4 {
                        self.ubuf.reserve(READ_CHUNK);
                    }
                    return End::Done;
                }
                Err(e) => {
                    let reason = format!("upstream sent invalid MLLP: {e}");
                    let ev = self
                        .flow
                        .event(
                            &Clock::now(),
                            &self.route,
                            Action::Closed,
                            reason,
                            Stage::Connection,
                        )
                        .with_rule(rules::UPSTREAM_PROTOCOL);
                    self.shared.record(ev);
                    return End::Closed;
                }
            }
        }
    }

    /// The control ids forwarded and not answered, for the record.
    fn unanswered(&self) -> String {
        let ids: Vec<String> = self
            .in_flight_ids
            .iter()
            .take(32)
            .map(|id| String::from_utf8_lossy(id).into_owned())
            .collect();
        let more = self.in_flight_ids.len().saturating_sub(ids.len());
        if more > 0 {
            format!("{} and {more} more", ids.join(", "))
        } else {
            ids.join(", ")
        }
    }

    async fn flush_deferred_all(&mut self) {
        while let Some((_, reply)) = self.deferred.pop_front() {
            if !bounded_write(&mut self.client, &reply, self.shared.opts.frame_timeout).await {
                return;
            }
        }
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
