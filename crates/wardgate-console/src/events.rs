//! The events view: search, one event, the live tail, and what the overview
//! and a device's page show of the events. All read the search index
//! (`wardgate_store::search`), fed from the audit log by the console's
//! indexer thread.
//!
//! Patient identifiers (`dicom.patient_id`, `infusion[].patient_id`) are
//! shown as the records hold them when they are the site's keyed pseudonyms
//! (the default, docs/privacy.md), and replaced by `[redacted]` when the site
//! chose raw identifiers. An account allowed to see patient identifiers may
//! ask for one event with `?reveal=patient`: raw identifiers are shown and
//! pseudonyms re-identified from the re-identification table; that view is
//! an audit record. Events cannot be searched by patient, so no patient
//! identifier is ever in a URL.

use crate::web::{blocking, ApiError, App, Authed, Frame};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};
use wardgate_event::event::Action;
use wardgate_event::rules::Severity;
use wardgate_event::Category;
use wardgate_store::search::{Hit, SearchIndex, SearchQuery};

/// What replaces a patient identifier.
pub const REDACTED: &str = "[redacted]";

pub(crate) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/events", get(page_events))
        .route("/events/{seq}", get(page_event))
        .route("/api/v1/events", get(api_events))
        .route("/api/v1/events/stream", get(api_stream))
        .route("/api/v1/events/{seq}", get(api_event))
}

/// The search's parameters, as the form and the API take them.
#[derive(Debug, Clone, Default, Deserialize, Serialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Filters {
    /// At or after: RFC 3339, `YYYY-MM-DDTHH:MM` (UTC) or unix microseconds.
    #[serde(default)]
    pub since: String,
    /// Before: as `since`.
    #[serde(default)]
    pub until: String,
    /// `wardgate.route`.
    #[serde(default)]
    pub route: String,
    /// Source or destination device.
    #[serde(default)]
    pub device: String,
    /// `rule.id`.
    #[serde(default)]
    pub rule: String,
    /// `event.action`.
    #[serde(default)]
    pub action: String,
    /// The rule's severity at least: info, low, medium, high, critical.
    #[serde(default)]
    pub severity: String,
    /// HL7 MSH-10.
    #[serde(default)]
    pub control_id: String,
    /// A sequence number: events before it (the previous page's `next_before`).
    #[serde(default)]
    pub before: Option<u64>,
    /// Rows per page (default 50, at most 500).
    #[serde(default)]
    pub limit: Option<usize>,
}

fn time_of(s: &str, what: &str) -> Result<Option<i64>, ApiError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    // The browser's datetime-local input: no seconds and no zone (read as UTC).
    let candidates = [s.to_owned(), format!("{s}:00Z"), format!("{s}Z")];
    candidates
        .iter()
        .find_map(|c| wardgate_store::search::parse_time(c).ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "{what} {s:?}: give a time as 2026-12-05T10:00:00Z or unix microseconds"
            ))
        })
}

fn severity_of(s: &str) -> Result<Option<Severity>, ApiError> {
    Ok(Some(match s.trim() {
        "" => return Ok(None),
        "info" => Severity::Info,
        "low" => Severity::Low,
        "medium" => Severity::Medium,
        "high" => Severity::High,
        "critical" => Severity::Critical,
        other => {
            return Err(ApiError::BadRequest(format!(
                "severity {other:?}: info, low, medium, high or critical"
            )))
        }
    }))
}

fn opt(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

impl Filters {
    pub(crate) fn query(&self) -> Result<SearchQuery, ApiError> {
        if let Some(a) = opt(&self.action) {
            if !Action::ALL.iter().any(|x| x.as_str() == a) {
                return Err(ApiError::BadRequest(format!(
                    "action {a:?} is not one wardgate records"
                )));
            }
        }
        Ok(SearchQuery {
            since: time_of(&self.since, "since")?,
            until: time_of(&self.until, "until")?,
            route: opt(&self.route),
            device: opt(&self.device),
            rule_id: opt(&self.rule),
            action: opt(&self.action),
            min_severity: severity_of(&self.severity)?,
            control_id: opt(&self.control_id),
            before_seq: self.before,
            limit: self.limit.unwrap_or(50),
        })
    }

    /// The query string of these filters with `before` set (the next page's link).
    fn with_before(&self, before: u64) -> String {
        let mut f = self.clone();
        f.before = Some(before);
        serde_urlencoded::to_string(&f).unwrap_or_default()
    }

    /// The query string without paging (the live tail's).
    fn tail_query(&self) -> String {
        let mut f = self.clone();
        f.before = None;
        f.limit = None;
        serde_urlencoded::to_string(&f).unwrap_or_default()
    }

    /// True when `h` matches (the live tail filters new events itself).
    fn matches(&self, q: &SearchQuery, h: &Hit) -> bool {
        let eq = |want: &Option<String>, got: &Option<String>| {
            want.as_ref()
                .is_none_or(|w| got.as_deref() == Some(w.as_str()))
        };
        q.since.is_none_or(|s| h.ts >= s)
            && q.until.is_none_or(|u| h.ts < u)
            && eq(&q.route, &h.route)
            && eq(&q.rule_id, &h.rule_id)
            && eq(&q.control_id, &h.control_id)
            && q.action.as_ref().is_none_or(|a| *a == h.action)
            && q.device.as_ref().is_none_or(|d| {
                h.source_device.as_deref() == Some(d.as_str())
                    || h.destination_device.as_deref() == Some(d.as_str())
            })
            && q.min_severity
                .is_none_or(|m| h.severity.is_some_and(|s| s >= m.number()))
    }
}

/// One event as the console serves it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct EventRow {
    /// Audit sequence number.
    pub seq: u64,
    /// `@timestamp`.
    pub timestamp: String,
    /// `event.action`.
    pub action: String,
    /// `event.kind` is `alert`.
    pub alert: bool,
    /// The rule's severity (info .. critical).
    pub severity: Option<String>,
    /// `rule.id`.
    pub rule_id: Option<String>,
    /// `wardgate.route`.
    pub route: Option<String>,
    /// `wardgate.source_device`.
    pub source_device: Option<String>,
    /// `wardgate.destination_device`.
    pub destination_device: Option<String>,
    /// `source.ip`.
    pub source_ip: Option<String>,
    /// HL7 MSH-10.
    pub control_id: Option<String>,
    /// HL7 message type or DICOM operation.
    pub operation: Option<String>,
    /// `event.reason`.
    pub reason: String,
    /// The console account that acted (`user.name`), for the console's own records.
    pub user: Option<String>,
    /// The whole event, patient identifiers redacted unless revealed.
    #[schema(value_type = Object)]
    pub event: serde_json::Value,
    /// True when the event names a patient (redacted or not).
    pub has_patient_data: bool,
}

fn severity_name(n: u8) -> &'static str {
    match n {
        0 => "info",
        1 => "low",
        2 => "medium",
        3 => "high",
        _ => "critical",
    }
}

/// Calls `f` with every patient identifier an event holds; true when there
/// were any.
fn each_patient(v: &mut serde_json::Value, f: &mut dyn FnMut(&mut serde_json::Value)) -> bool {
    let mut found = false;
    let w = v.get_mut("wardgate");
    if let Some(w) = w {
        if let Some(p) = w.get_mut("dicom").and_then(|d| d.get_mut("patient_id")) {
            if !p.is_null() && p.as_str() != Some("") {
                f(p);
                found = true;
            }
        }
        if let Some(list) = w.get_mut("infusion").and_then(|i| i.as_array_mut()) {
            for inf in list {
                if let Some(p) = inf.get_mut("patient_id") {
                    if !p.is_null() {
                        f(p);
                        found = true;
                    }
                }
            }
        }
    }
    found
}

/// Replaces raw patient identifiers in an event (keyed pseudonyms stay: they
/// name nobody without the key); true when the event names a patient.
fn redact(v: &mut serde_json::Value) -> bool {
    each_patient(v, &mut |p| {
        if !p
            .as_str()
            .is_some_and(wardgate_privacy::consent::is_pseudonym)
        {
            *p = REDACTED.into();
        }
    })
}

/// Shows an event's patients as identified: pseudonyms re-identified with
/// `reid` (left as they are when the table has no entry); returns whether
/// the event names a patient and how many pseudonyms were re-identified.
fn reveal_patients(
    v: &mut serde_json::Value,
    reid: &dyn Fn(&str) -> Option<String>,
) -> (bool, usize) {
    let mut n = 0;
    let found = each_patient(v, &mut |p| {
        if let Some(id) = p
            .as_str()
            .filter(|s| wardgate_privacy::consent::is_pseudonym(s))
            .and_then(reid)
        {
            *p = id.into();
            n += 1;
        }
    });
    (found, n)
}

/// Re-identifies a keyed pseudonym (the gateway's table), for a reveal.
type Reidentify<'a> = &'a dyn Fn(&str) -> Option<String>;

pub(crate) fn row(h: &Hit, reveal: Option<Reidentify<'_>>) -> EventRow {
    let mut event: serde_json::Value =
        serde_json::from_str(&h.doc).unwrap_or(serde_json::Value::Null);
    let has_patient_data = match reveal {
        Some(reid) => reveal_patients(&mut event, reid).0,
        None => redact(&mut event),
    };
    let reason = event
        .get("event")
        .and_then(|e| e.get("reason"))
        .and_then(|r| r.as_str())
        .unwrap_or_default()
        .to_owned();
    EventRow {
        seq: h.seq,
        timestamp: event
            .get("@timestamp")
            .and_then(|t| t.as_str())
            .unwrap_or_default()
            .to_owned(),
        action: h.action.clone(),
        alert: h.alert,
        severity: h.severity.map(|s| severity_name(s).to_owned()),
        rule_id: h.rule_id.clone(),
        route: h.route.clone(),
        source_device: h.source_device.clone(),
        destination_device: h.destination_device.clone(),
        source_ip: h.source_ip.clone(),
        control_id: h.control_id.clone(),
        operation: h.operation.clone(),
        reason,
        user: event
            .get("user")
            .and_then(|u| u.get("name"))
            .and_then(|n| n.as_str())
            .map(str::to_owned),
        event,
        has_patient_data,
    }
}

/// A page of events.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct EventsPage {
    /// Newest first.
    pub events: Vec<EventRow>,
    /// `before` for the next page; none when this is the last.
    pub next_before: Option<u64>,
}

fn open(app: &App) -> Result<SearchIndex, ApiError> {
    SearchIndex::open_read_only(&app.index_path())
        .map_err(|e| ApiError::Internal(format!("the search index: {e}")))
}

async fn search(app: &Arc<App>, f: &Filters) -> Result<EventsPage, ApiError> {
    let q = f.query()?;
    let app2 = app.clone();
    let page = blocking(move || {
        open(&app2)?
            .search(&q)
            .map_err(|e| ApiError::BadRequest(e.to_string()))
    })
    .await??;
    Ok(EventsPage {
        events: page.hits.iter().map(|h| row(h, None)).collect(),
        next_before: page.next_before,
    })
}

#[utoipa::path(get, path = "/api/v1/events", params(Filters), responses((status = 200, body = EventsPage), (status = 400), (status = 401)))]
pub(crate) async fn api_events(
    State(app): State<Arc<App>>,
    _a: Authed,
    Query(f): Query<Filters>,
) -> Result<Json<EventsPage>, ApiError> {
    Ok(Json(search(&app, &f).await?))
}

#[derive(Template)]
#[template(path = "events.html")]
struct EventsTemplate {
    f: Frame,
    filters: Filters,
    page: EventsPage,
    next: Option<String>,
    tail: String,
    actions: Vec<&'static str>,
}

async fn page_events(
    State(app): State<Arc<App>>,
    a: Authed,
    Query(filters): Query<Filters>,
) -> Result<Response, ApiError> {
    let page = search(&app, &filters).await?;
    let next = page.next_before.map(|b| filters.with_before(b));
    let tail = filters.tail_query();
    Ok(crate::web::render(&EventsTemplate {
        f: Frame::of(&a, "events"),
        filters,
        page,
        next,
        tail,
        actions: Action::ALL.iter().map(|a| a.as_str()).collect(),
    }))
}

/// `?reveal=patient`: show patient identifiers (accounts allowed to see them; recorded).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Reveal {
    /// `patient` to show patient identifiers.
    #[serde(default)]
    pub reveal: String,
}

async fn one(app: &Arc<App>, a: &Authed, seq: u64, reveal: &Reveal) -> Result<EventRow, ApiError> {
    let app2 = app.clone();
    let hit = blocking(move || {
        open(&app2)?
            .get(seq)
            .map_err(|e| ApiError::Internal(e.to_string()))
    })
    .await??
    .ok_or_else(|| ApiError::NotFound(format!("no event {seq} in the search index")))?;
    let reveal = match reveal.reveal.as_str() {
        "" => false,
        "patient" if a.patient_data => true,
        "patient" => {
            app.record(a.rec(
                Action::Failed,
                Category::Web,
                "denied",
                format!(
                    "{} was refused the patient identifiers of event {seq}: the account may not see them",
                    a.user
                ),
            ));
            return Err(ApiError::Forbidden(format!(
                "{} may not see patient identifiers (`wardgate user add --patient-data`)",
                a.user
            )));
        }
        other => {
            return Err(ApiError::BadRequest(format!(
                "reveal={other:?}: only reveal=patient"
            )))
        }
    };
    let r = if reveal {
        let gw = app.gateway.clone();
        blocking(move || -> Result<EventRow, ApiError> {
            let reid = |p: &str| gw.reidentify(p);
            Ok(row(&hit, Some(&reid)))
        })
        .await??
    } else {
        row(&hit, None)
    };
    if reveal && r.has_patient_data {
        // Recorded before it is shown; unrecorded, it is not shown.
        app.record_checked(a.rec(
            Action::Viewed,
            Category::Web,
            "view-patient-data",
            format!(
                "{} was shown the patient identifiers of event {seq}",
                a.user
            ),
        ))
        .map_err(|e| {
            ApiError::Internal(format!(
                "the view could not be recorded, so it is not shown: {e}"
            ))
        })?;
    }
    Ok(r)
}

#[utoipa::path(get, path = "/api/v1/events/{seq}", params(("seq" = u64, Path, description = "audit sequence number"), Reveal), responses((status = 200, body = EventRow), (status = 401), (status = 403), (status = 404)))]
pub(crate) async fn api_event(
    State(app): State<Arc<App>>,
    a: Authed,
    Path(seq): Path<u64>,
    Query(reveal): Query<Reveal>,
) -> Result<Json<EventRow>, ApiError> {
    Ok(Json(one(&app, &a, seq, &reveal).await?))
}

#[derive(Template)]
#[template(path = "event.html")]
struct EventTemplate {
    f: Frame,
    e: EventRow,
    pretty: String,
    may_reveal: bool,
}

async fn page_event(
    State(app): State<Arc<App>>,
    a: Authed,
    Path(seq): Path<u64>,
    Query(reveal): Query<Reveal>,
) -> Result<Response, ApiError> {
    let e = one(&app, &a, seq, &reveal).await?;
    let pretty = serde_json::to_string_pretty(&e.event).unwrap_or_default();
    let may_reveal = a.patient_data && e.has_patient_data && reveal.reveal.is_empty();
    Ok(crate::web::render(&EventTemplate {
        f: Frame::of(&a, "events"),
        e,
        pretty,
        may_reveal,
    }))
}

#[utoipa::path(get, path = "/api/v1/events/stream", params(Filters), responses((status = 200, description = "text/event-stream: an `event` per new matching event (EventRow JSON, patient identifiers redacted)"), (status = 401)))]
pub(crate) async fn api_stream(
    State(app): State<Arc<App>>,
    a: Authed,
    Query(f): Query<Filters>,
) -> Result<Response, ApiError> {
    let q = f.query()?;
    let Ok(slot) = app.tails.clone().try_acquire_owned() else {
        return Err(ApiError::Conflict(
            "too many live tails are open: close one, or search instead".into(),
        ));
    };
    let Some(mut rx) = app.subscribe() else {
        return Err(ApiError::Conflict("the search index is not running".into()));
    };
    let app2 = app.clone();
    let stream = async_stream(move |tx| async move {
        let _slot = slot;
        let mut routine = RoutineBudget::new(std::time::Instant::now());
        let mut check = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            let got = tokio::select! {
                r = rx.recv() => r,
                _ = check.tick() => {
                    // Logged out, expired, disabled, a new password: the tail ends with the session.
                    if !app2.session_alive(&a.id, &a.user) {
                        return;
                    }
                    continue;
                }
            };
            match got {
                Ok(batch) => {
                    let now = std::time::Instant::now();
                    for h in batch.iter().filter(|h| f.matches(&q, h)) {
                        if !routine.show(h, now) {
                            continue;
                        }
                        let r = row(h, None);
                        let Ok(data) = serde_json::to_string(&r) else {
                            continue;
                        };
                        if tx
                            .send(
                                SseEvent::default()
                                    .event("event")
                                    .id(r.seq.to_string())
                                    .data(data),
                            )
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    if let Some(n) = routine.report(now) {
                        let note = SseEvent::default().event("routine").data(format!(
                            "{n} routine decision(s) not shown here: search them"
                        ));
                        if tx.send(note).await.is_err() {
                            return;
                        }
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    let note = SseEvent::default()
                        .event("lagged")
                        .data(format!("{n} batch(es) missed: search them"));
                    if tx.send(note).await.is_err() {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// Routine `allowed` decisions shown to one live tail per second; beyond
/// that they are counted, not sent. A busy route makes thousands a second,
/// more than anyone can read and enough to cost the gateway CPU; alerts,
/// blocks and every other action are always sent.
pub const ROUTINE_PER_SECOND: u32 = 20;

/// One live tail's budget of routine decisions.
struct RoutineBudget {
    window: std::time::Instant,
    shown: u32,
    hidden: u64,
    reported: std::time::Instant,
}

impl RoutineBudget {
    fn new(now: std::time::Instant) -> Self {
        RoutineBudget {
            window: now,
            shown: 0,
            hidden: 0,
            reported: now,
        }
    }

    /// Whether to send `h`.
    fn show(&mut self, h: &Hit, now: std::time::Instant) -> bool {
        if h.alert || h.action != "allowed" {
            return true;
        }
        if now.saturating_duration_since(self.window) >= std::time::Duration::from_secs(1) {
            self.window = now;
            self.shown = 0;
        }
        if self.shown < ROUTINE_PER_SECOND {
            self.shown += 1;
            true
        } else {
            self.hidden += 1;
            false
        }
    }

    /// How many were hidden since the last report, at most once a second.
    fn report(&mut self, now: std::time::Instant) -> Option<u64> {
        if self.hidden == 0
            || now.saturating_duration_since(self.reported) < std::time::Duration::from_secs(1)
        {
            return None;
        }
        self.reported = now;
        Some(std::mem::take(&mut self.hidden))
    }
}

/// A stream fed by a task through a small channel (bounded: a slow browser
/// holds the task, not memory).
fn async_stream<F, Fut>(
    f: F,
) -> impl futures_core::Stream<Item = Result<SseEvent, std::convert::Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<SseEvent>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let task = tokio::spawn(f(tx));
    let s = tokio_stream::wrappers::ReceiverStream::new(rx);
    AbortOnDrop { inner: s, task }
}

/// Ends the feeding task when the browser goes away.
struct AbortOnDrop<S> {
    inner: S,
    task: tokio::task::JoinHandle<()>,
}

impl<S> Drop for AbortOnDrop<S> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<S: futures_core::Stream<Item = SseEvent> + Unpin> futures_core::Stream for AbortOnDrop<S> {
    type Item = Result<SseEvent, std::convert::Infallible>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::pin::Pin::new(&mut self.inner)
            .poll_next(cx)
            .map(|o| o.map(Ok))
    }
}

/// See [`crate::fuzzing::untrusted`]: a search's query string is read or
/// refused, never a panic; whatever event JSON comes in, what is served has no
/// patient identifier left.
pub(crate) fn fuzz_untrusted(data: &[u8]) {
    if let Ok(f) = serde_urlencoded::from_bytes::<Filters>(data) {
        if let Ok(q) = f.query() {
            assert!(q.page_size() <= wardgate_store::search::MAX_LIMIT);
            let _ = (f.with_before(1), f.tail_query());
        }
    }
    if let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(data) {
        redact(&mut v);
        let w = &v["wardgate"];
        let clean = |p: &serde_json::Value| {
            p.is_null()
                || p.as_str().is_some_and(|s| {
                    s.is_empty() || s == REDACTED || wardgate_privacy::consent::is_pseudonym(s)
                })
        };
        if w["dicom"].is_object() {
            assert!(clean(&w["dicom"]["patient_id"]));
        }
        if let Some(list) = w["infusion"].as_array() {
            assert!(list.iter().all(|i| clean(&i["patient_id"])));
        }
    }
}

// ---------------------------------------------------------------- overview and devices

/// Decisions on one route in one hour.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct RouteBucket {
    /// The hour's start (RFC 3339).
    pub start: String,
    /// Route (empty: events without one).
    pub route: String,
    /// `event.action`.
    pub action: String,
    /// How many.
    pub count: u64,
}

/// A name and a count.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct Count {
    pub name: String,
    pub count: u64,
}

/// What the overview shows of the events (the last 24 hours).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct OverviewEvents {
    /// The latest alerts (severity medium and above), newest first.
    pub alerts: Vec<EventRow>,
    /// Decisions per route per hour.
    pub decisions: Vec<RouteBucket>,
    /// Rules that fired most.
    pub top_rules: Vec<Count>,
    /// Devices with most events.
    pub top_devices: Vec<Count>,
}

const DAY_US: i64 = 86_400_000_000;

fn now_us() -> i64 {
    i64::try_from(wardgate_store::queue::now_us()).unwrap_or(i64::MAX)
}

pub(crate) async fn overview(app: &Arc<App>, _a: &Authed) -> Result<OverviewEvents, ApiError> {
    let app2 = app.clone();
    blocking(move || {
        let idx = open(&app2)?;
        let ie = |e: wardgate_store::search::SearchError| ApiError::Internal(e.to_string());
        let now = now_us();
        let since = now - DAY_US;
        let alerts = idx
            .search(&SearchQuery {
                since: Some(since),
                min_severity: Some(Severity::Medium),
                limit: 20,
                ..SearchQuery::default()
            })
            .map_err(ie)?;
        let decisions = idx
            .decisions_over_time(since, now, 3600)
            .map_err(ie)?
            .into_iter()
            .map(|b| RouteBucket {
                start: crate::views::rfc3339(b.start / 1_000_000),
                route: b.route,
                action: b.action,
                count: b.count,
            })
            .collect();
        let count = |v: Vec<(String, u64)>| {
            v.into_iter()
                .map(|(name, count)| Count { name, count })
                .collect()
        };
        Ok(OverviewEvents {
            alerts: alerts.hits.iter().map(|h| row(h, None)).collect(),
            decisions,
            top_rules: count(idx.top_rules(since, 10).map_err(ie)?),
            top_devices: count(idx.top_devices(since, 10).map_err(ie)?),
        })
    })
    .await?
}

/// The overview's plots: decisions per route per hour, top rules, top devices.
pub(crate) fn overview_plots(o: &OverviewEvents) -> (String, String, String) {
    // The last 24 hours, every hour on the axis (an hour without decisions is a zero).
    let this_hour = now_us().div_euclid(3_600_000_000) * 3600;
    let hours: Vec<String> = (0..24)
        .rev()
        .map(|h| crate::views::rfc3339(this_hour - h * 3600))
        .collect();
    let mut routes: Vec<String> = o.decisions.iter().map(|b| b.route.clone()).collect();
    routes.sort();
    routes.dedup();
    let series: Vec<(String, Vec<u64>)> = routes
        .iter()
        .map(|r| {
            let v = hours
                .iter()
                .map(|h| {
                    o.decisions
                        .iter()
                        .filter(|b| &b.route == r && &b.start == h)
                        .map(|b| b.count)
                        .sum()
                })
                .collect();
            (
                if r.is_empty() {
                    "(no route)".to_owned()
                } else {
                    r.clone()
                },
                v,
            )
        })
        .collect();
    let labels: Vec<String> = hours
        .iter()
        .map(|h| h.get(11..16).unwrap_or(h).to_owned())
        .collect();
    let pairs = |c: &[Count]| {
        c.iter()
            .map(|c| (c.name.clone(), c.count))
            .collect::<Vec<_>>()
    };
    (
        crate::plots::lines("Decisions per route per hour (24 h)", &labels, &series),
        crate::plots::bars("Rules that fired most (24 h)", &pairs(&o.top_rules)),
        crate::plots::bars("Devices with most events (24 h)", &pairs(&o.top_devices)),
    )
}

/// What a device did in the last 24 hours.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub(crate) struct DeviceActivity {
    /// Its events by action.
    pub by_action: Vec<Count>,
    /// Its latest events, newest first.
    pub last: Vec<EventRow>,
}

/// The search index's device inventory (blocking: call in `spawn_blocking`).
/// No index yet, or one that cannot be read, reads as an empty inventory
/// (logged): the configured devices are still shown.
pub(crate) fn inventory(
    app: &Arc<App>,
) -> Result<Vec<wardgate_store::search::DeviceInventory>, ApiError> {
    if !app.index_path().exists() {
        return Ok(Vec::new());
    }
    match open(app).and_then(|idx| {
        idx.inventory()
            .map_err(|e| ApiError::Internal(format!("the search index: {e}")))
    }) {
        Ok(inv) => Ok(inv),
        Err(e) => {
            tracing::warn!(error = ?e, "console: cannot read the device inventory");
            Ok(Vec::new())
        }
    }
}

pub(crate) async fn device_activity(
    app: &Arc<App>,
    _a: &Authed,
    id: &str,
) -> Result<DeviceActivity, ApiError> {
    let app2 = app.clone();
    let id = id.to_owned();
    blocking(move || {
        let idx = open(&app2)?;
        let act = idx
            .device_activity(&id, now_us() - DAY_US, 20)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok(DeviceActivity {
            by_action: act
                .by_action
                .into_iter()
                .map(|(name, count)| Count { name, count })
                .collect(),
            last: act.last.iter().map(|h| row(h, None)).collect(),
        })
    })
    .await?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patient_identifiers_are_redacted_wherever_they_are() {
        let mut v = serde_json::json!({
            "wardgate": {
                "dicom": {"patient_id": "PAT123", "modality": "CT"},
                "infusion": [{"drug": "heparin", "patient_id": "MRN9"}, {"drug": "x"}]
            }
        });
        assert!(redact(&mut v));
        let s = v.to_string();
        assert!(!s.contains("PAT123") && !s.contains("MRN9"), "{s}");
        assert!(s.contains("CT") && s.contains("heparin"));
        let mut none = serde_json::json!({"wardgate": {"dicom": {"modality": "CT"}}});
        assert!(!redact(&mut none));
        // Keyed pseudonyms name nobody without the key: shown as they are,
        // and re-identified only on a reveal, from the table.
        let ps = "WG0123456789ABCD";
        let mut v = serde_json::json!({"wardgate": {"dicom": {"patient_id": ps}, "infusion": [{"patient_id": "MRN9"}]}});
        assert!(redact(&mut v));
        assert_eq!(v["wardgate"]["dicom"]["patient_id"], ps);
        assert_eq!(v["wardgate"]["infusion"][0]["patient_id"], REDACTED);
        let mut v = serde_json::json!({"wardgate": {"dicom": {"patient_id": ps}, "infusion": [{"patient_id": "MRN9"}]}});
        let reid = |p: &str| (p == ps).then(|| "4711".to_owned());
        assert_eq!(reveal_patients(&mut v, &reid), (true, 1));
        assert_eq!(v["wardgate"]["dicom"]["patient_id"], "4711");
        assert_eq!(v["wardgate"]["infusion"][0]["patient_id"], "MRN9");
    }

    fn hit(action: &str, alert: bool) -> Hit {
        Hit {
            seq: 1,
            ts: 0,
            action: action.into(),
            alert,
            severity: None,
            rule_id: None,
            route: None,
            source_device: None,
            destination_device: None,
            source_ip: None,
            control_id: None,
            operation: None,
            doc: String::new(),
        }
    }

    #[test]
    fn the_live_tail_always_shows_what_is_not_routine_and_counts_what_it_hides() {
        let t0 = std::time::Instant::now();
        let mut b = RoutineBudget::new(t0);
        let shown = (0..1000)
            .filter(|_| b.show(&hit("allowed", false), t0))
            .count();
        assert_eq!(shown, ROUTINE_PER_SECOND as usize);
        for a in ["blocked", "alerted", "would-block", "parked", "changed"] {
            assert!(b.show(&hit(a, false), t0), "{a}");
        }
        assert!(
            b.show(&hit("allowed", true), t0),
            "an alert is never hidden"
        );
        assert_eq!(b.report(t0), None, "at most once a second");
        let t1 = t0 + std::time::Duration::from_secs(1);
        assert_eq!(b.report(t1), Some(1000 - u64::from(ROUTINE_PER_SECOND)));
        assert_eq!(
            b.report(t1 + std::time::Duration::from_secs(5)),
            None,
            "nothing new hidden"
        );
        assert!(
            b.show(&hit("allowed", false), t1),
            "a new second, a new budget"
        );
    }

    #[test]
    fn filters_refuse_what_they_cannot_read() {
        let bad = |f: Filters| f.query().is_err();
        assert!(bad(Filters {
            since: "yesterday".into(),
            ..Filters::default()
        }));
        assert!(bad(Filters {
            severity: "urgent".into(),
            ..Filters::default()
        }));
        assert!(bad(Filters {
            action: "deleted".into(),
            ..Filters::default()
        }));
        let q = Filters {
            since: "2026-12-05T10:00".into(),
            route: " orders ".into(),
            ..Filters::default()
        }
        .query()
        .expect("valid");
        assert_eq!(q.route.as_deref(), Some("orders"));
        assert!(q.since.is_some());
    }
}
