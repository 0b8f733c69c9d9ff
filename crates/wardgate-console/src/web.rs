//! The router: pages and API resources, sessions, CSRF, security headers and
//! the audit records of what operators do.
//!
//! Every view has one function gathering its typed document (`views`); the
//! API serves it as JSON and the page renders it, so they cannot disagree.
//! Every action has one handler under `/api/v1` that takes JSON (header
//! `X-CSRF-Token`) or a form (field `csrf`, from the console's own pages,
//! which then get a 303 back to the page), so a page without JavaScript and a
//! script do exactly the same thing.

use crate::auth::{same, Ended, Gate, Session, Sessions, Throttle};
use crate::users::{Account, Role, UserStore, Users};
use crate::views::{self, Verification};
use crate::Gateway;
use askama::Template;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};
use utoipa::{OpenApi, ToSchema};
use wardgate_config::ResolvedConsole;
use wardgate_event::event::{Action, Endpoint, Event, User};
use wardgate_event::{Category, Clock, Stage};
use wardgate_store::RecorderHandle;

/// The session cookie. `__Host-` makes the browser refuse it unless it is
/// Secure, host-only and for path `/`.
pub(crate) const COOKIE: &str = "__Host-wardgate";
/// The strict policy: nothing inline, nothing from elsewhere.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
/// The console's threads' nice value: pages and the live tail yield to the
/// data path, and still answer under load.
pub(crate) const CONSOLE_NICE: i32 = 10;

/// What a login record names when the name typed is no possible account.
const INVALID_NAME: &str = "(not an account name)";
/// The live tail's path (the one request not bound in time).
pub(crate) const STREAM_PATH: &str = "/api/v1/events/stream";
/// Live tails open at once, so pages always have connections left.
const MAX_TAILS: usize = 16;
/// Password checks run at once (argon2id takes 19 MiB each).
const MAX_VERIFYING: usize = 4;

/// The search index in the console's directory.
pub const INDEX_FILE: &str = "search.db";
/// Largest request body (actions are small).
const MAX_BODY: usize = 64 * 1024;

/// The client's address, set on each request by the server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub SocketAddr);

/// The console's state.
pub(crate) struct App {
    pub cfg: ResolvedConsole,
    pub config_path: PathBuf,
    pub gateway: Arc<dyn Gateway>,
    pub recorder: RecorderHandle,
    pub users: UserStore,
    accounts: Mutex<(Option<FileStamp>, Arc<Users>)>,
    /// The accounts as last recorded in the audit chain: a change made with
    /// `wardgate user` is recorded when the console next reads the file.
    recorded: Mutex<Option<Vec<AccountSummary>>>,
    sessions: Mutex<Sessions>,
    throttle: Mutex<Throttle>,
    last_verification: Mutex<Option<Verification>>,
    /// Password checks in progress.
    verifying: Arc<tokio::sync::Semaphore>,
    /// One change at a time to the CA and to the configuration file (a
    /// read-modify-write each: two at once would lose one).
    pub(crate) changing: tokio::sync::Mutex<()>,
    /// One verification of the audit chain at a time.
    verifying_chain: tokio::sync::Mutex<()>,
    /// Live tails open at once (each holds a connection).
    pub(crate) tails: Arc<tokio::sync::Semaphore>,
    /// The search index's indexer (stopped when the console stops).
    indexer: Mutex<Option<wardgate_store::search::IndexerHandle>>,
    index_path: PathBuf,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl App {
    pub(crate) fn new(
        cfg: &ResolvedConsole,
        config_path: PathBuf,
        gateway: Arc<dyn Gateway>,
        recorder: RecorderHandle,
    ) -> Result<Arc<App>, crate::UserError> {
        let users = UserStore::new(&cfg.dir);
        // A corrupt accounts file stops the start rather than locking everyone out silently.
        if users.load()?.accounts.is_empty() {
            tracing::warn!(
                "the console has no accounts: add one with `wardgate user add NAME --role admin --config FILE`"
            );
        }
        crate::edit::sweep_enrolments(&gateway.config().data_dir);
        // Made now, not at the first unknown name: that login would take longer.
        let _ = crate::users::decoy_hash();
        let index_path = cfg.dir.join(INDEX_FILE);
        let data_dir = gateway.config().data_dir.clone();
        let mut iopts =
            wardgate_store::search::IndexerOptions::new(&data_dir.join("audit"), &index_path);
        iopts.background = true;
        let indexer = wardgate_store::search::Indexer::open(iopts)
            .and_then(wardgate_store::search::Indexer::spawn)
            .map_err(|e| crate::UserError::Invalid(format!("the console's search index: {e}")))?;
        let app = Arc::new(App {
            cfg: cfg.clone(),
            config_path,
            gateway,
            recorder,
            users,
            accounts: Mutex::new((None, Arc::new(Users::default()))),
            recorded: Mutex::new(None),
            sessions: Mutex::new(Sessions::new(
                Duration::from_secs(cfg.session_idle_secs),
                Duration::from_secs(cfg.session_max_secs),
            )),
            throttle: Mutex::new(Throttle::new(
                cfg.login_max_failures,
                Duration::from_secs(cfg.lockout_secs),
            )),
            last_verification: Mutex::new(None),
            verifying: Arc::new(tokio::sync::Semaphore::new(MAX_VERIFYING)),
            changing: tokio::sync::Mutex::new(()),
            verifying_chain: tokio::sync::Mutex::new(()),
            tails: Arc::new(tokio::sync::Semaphore::new(MAX_TAILS)),
            indexer: Mutex::new(Some(indexer)),
            index_path,
        });
        // Reads the accounts, recording what changed since the last run.
        app.accounts();
        Ok(app)
    }

    /// The search index's file.
    pub(crate) fn index_path(&self) -> PathBuf {
        self.index_path.clone()
    }

    /// True while the session `id` is still one of `user` at `generation`
    /// (not logged out, expired, or ended by an account change): a live tail
    /// ends when its session does.
    pub(crate) fn session_alive(&self, id: &str, user: &str) -> bool {
        let Ok(s) = lock(&self.sessions).peek(id, Instant::now()) else {
            return false;
        };
        s.user == user
            && self
                .account(user)
                .is_some_and(|a| !a.disabled && a.generation == s.generation)
    }

    /// A receiver of the events indexed from now on (the live tail).
    pub(crate) fn subscribe(
        &self,
    ) -> Option<tokio::sync::broadcast::Receiver<Arc<[wardgate_store::search::Hit]>>> {
        lock(&self.indexer)
            .as_ref()
            .map(wardgate_store::search::IndexerHandle::subscribe)
    }

    /// Stops the indexer (at the console's stop).
    pub(crate) fn stop_indexer(&self) {
        if let Some(h) = lock(&self.indexer).take() {
            if let Err(e) = h.stop() {
                tracing::warn!(error = %e, "the search indexer did not stop cleanly");
            }
        }
    }

    /// Background work of the console's runtime: the index's retention,
    /// hourly.
    pub(crate) fn start_background(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(3600));
            loop {
                tick.tick().await;
                let app = self.clone();
                let days = i64::try_from(app.cfg.index_retention_days).unwrap_or(3650);
                let r = tokio::task::spawn_blocking(move || {
                    let before = i64::try_from(wardgate_store::queue::now_us()).unwrap_or(i64::MAX)
                        - days * 86_400_000_000;
                    wardgate_store::search::SearchIndex::open(&app.index_path)
                        .and_then(|i| i.prune_before(before, 10_000))
                })
                .await;
                match r {
                    Ok(Ok(n)) if n > 0 => tracing::info!(
                        events = n,
                        "search index: events past retention removed (the audit log keeps them)"
                    ),
                    Ok(Err(e)) => tracing::warn!(error = %e, "search index retention failed"),
                    _ => {}
                }
            }
        })
    }

    /// The accounts, re-read when the file changed.
    fn accounts(&self) -> Arc<Users> {
        let mtime = stamp(&self.users.path());
        let mut cache = lock(&self.accounts);
        if cache.0 != mtime || mtime.is_none() {
            match self.users.load() {
                Ok(u) => {
                    self.note_changes(&u, true);
                    *cache = (mtime, Arc::new(u));
                }
                Err(e) => {
                    // Keep what was read last; say why.
                    tracing::error!(error = %e, "the console's accounts could not be read");
                }
            }
        }
        cache.1.clone()
    }

    /// Records how the accounts differ from what was last recorded (as a
    /// change from the command line) when `record`; else only takes them as
    /// recorded (the console's own changes, recorded with their author).
    fn note_changes(&self, now: &Users, record: bool) {
        let summary: Vec<AccountSummary> = now.accounts.iter().map(AccountSummary::of).collect();
        let mut last = lock(&self.recorded);
        let seen_path = self.cfg.dir.join(ACCOUNTS_SEEN);
        if last.is_none() {
            // What the last run recorded: a change made while the gateway
            // was stopped is recorded at its start.
            *last = std::fs::read(&seen_path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
        }
        if let (true, Some(before)) = (record, last.as_ref()) {
            for change in account_changes(before, &summary) {
                self.record(Rec {
                    action: Action::Changed,
                    category: Category::Iam,
                    user: "wardgate user",
                    role: None,
                    ip: IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
                    operation: "user-change",
                    reason: format!("console accounts changed on the gateway: {change}"),
                    rule: None,
                });
            }
        }
        if last.as_ref() != Some(&summary) {
            if let Ok(json) = serde_json::to_vec(&summary) {
                if let Err(e) = wardgate_audit::fsx::write_replace(&seen_path, &json) {
                    tracing::warn!(error = %e, "could not keep the recorded accounts");
                }
            }
        }
        *last = Some(summary);
    }

    /// After the console changed the accounts: read them, taking the change as recorded.
    fn absorb_accounts(&self) {
        if let Ok(u) = self.users.load() {
            self.note_changes(&u, false);
            let mtime = stamp(&self.users.path());
            *lock(&self.accounts) = (mtime, Arc::new(u));
        }
    }

    fn account(&self, name: &str) -> Option<Account> {
        self.accounts()
            .accounts
            .iter()
            .find(|a| a.name == name)
            .cloned()
    }

    /// Records what an operator did (or tried), in the audit chain.
    pub(crate) fn record(&self, r: Rec<'_>) {
        if let Err(err) = self.record_checked(r) {
            tracing::error!(error = %err, "could not record a console action");
        }
    }

    /// Records a console action, saying whether it reached the recorder:
    /// what must not happen unrecorded (showing a patient's identifier) is
    /// not done when this fails.
    pub(crate) fn record_checked(&self, r: Rec<'_>) -> Result<(), String> {
        let mut e = Event::new(
            Clock::now().rfc3339().to_owned(),
            r.action,
            r.reason,
            Stage::Gateway,
        );
        e.event.category = r.category;
        e.user = Some(User {
            name: r.user.to_owned(),
            roles: r
                .role
                .map(|r| vec![r.as_str().to_owned()])
                .unwrap_or_default(),
        });
        e.source = Some(Endpoint { ip: r.ip, port: 0 });
        e.wardgate.operation = Some(r.operation.to_owned());
        if let Some(rule) = r.rule {
            e = e.with_rule(rule);
        }
        self.recorder.record(e).map_err(|e| e.to_string())
    }
}

/// The accounts as last recorded, in the console's directory.
const ACCOUNTS_SEEN: &str = "accounts.recorded.json";

/// When a file changed, as precisely as the file system says: its
/// modification time, size and inode (the accounts file is replaced whole,
/// so a change within one timestamp tick still has a new inode).
type FileStamp = (SystemTime, u64, u64);

fn stamp(path: &std::path::Path) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

/// What the audit chain says of an account (never its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AccountSummary {
    name: String,
    role: Role,
    disabled: bool,
    patient_data: bool,
    generation: u64,
}

impl AccountSummary {
    fn of(a: &Account) -> Self {
        AccountSummary {
            name: a.name.clone(),
            role: a.role,
            disabled: a.disabled,
            patient_data: a.patient_data,
            generation: a.generation,
        }
    }
}

/// Each difference between two lists of accounts, in words.
fn account_changes(before: &[AccountSummary], after: &[AccountSummary]) -> Vec<String> {
    let mut out = Vec::new();
    for a in after {
        match before.iter().find(|b| b.name == a.name) {
            None => out.push(format!(
                "account {:?} added as {}{}",
                a.name,
                a.role.as_str(),
                if a.patient_data {
                    ", allowed to see patient identifiers"
                } else {
                    ""
                }
            )),
            Some(b) => {
                if b.role != a.role {
                    out.push(format!(
                        "account {:?}: role {} -> {}",
                        a.name,
                        b.role.as_str(),
                        a.role.as_str()
                    ));
                }
                if b.disabled != a.disabled {
                    out.push(format!(
                        "account {:?} {}",
                        a.name,
                        if a.disabled { "disabled" } else { "enabled" }
                    ));
                } else if b.generation != a.generation {
                    out.push(format!("account {:?}: password changed", a.name));
                }
                if b.patient_data != a.patient_data {
                    out.push(format!(
                        "account {:?}: patient identifiers {}",
                        a.name,
                        if a.patient_data {
                            "allowed"
                        } else {
                            "no longer allowed"
                        }
                    ));
                }
            }
        }
    }
    for b in before {
        if !after.iter().any(|a| a.name == b.name) {
            out.push(format!("account {:?} removed", b.name));
        }
    }
    out
}

/// One record of the console.
pub(crate) struct Rec<'a> {
    pub action: Action,
    pub category: Category,
    pub user: &'a str,
    pub role: Option<Role>,
    pub ip: IpAddr,
    pub operation: &'a str,
    pub reason: String,
    pub rule: Option<wardgate_event::rules::Rule>,
}

// ---------------------------------------------------------------- sessions

/// A request from a logged-in account.
#[derive(Debug, Clone)]
pub(crate) struct Authed {
    pub id: String,
    pub user: String,
    pub role: Role,
    pub patient_data: bool,
    pub csrf: String,
    pub ip: IpAddr,
}

impl Authed {
    /// 403 unless the account's role is at least `role`.
    /// 403 unless the account's role is at least `role`; a refusal is
    /// recorded (someone tried what their role does not allow).
    pub(crate) fn require(&self, app: &App, role: Role, what: &str) -> Result<(), ApiError> {
        if self.role >= role {
            return Ok(());
        }
        app.record(self.rec(
            Action::Failed,
            Category::Configuration,
            "denied",
            format!(
                "{} ({}) was refused {what}: it needs the {} role",
                self.user,
                self.role.as_str(),
                role.as_str()
            ),
        ));
        Err(ApiError::Forbidden(format!(
            "this needs the {} role; {} has {}",
            role.as_str(),
            self.user,
            self.role.as_str()
        )))
    }

    /// A record of what this account did, from its address.
    pub(crate) fn rec<'a>(
        &'a self,
        action: Action,
        category: Category,
        operation: &'a str,
        reason: String,
    ) -> Rec<'a> {
        Rec {
            action,
            category,
            user: &self.user,
            role: Some(self.role),
            ip: self.ip,
            operation,
            reason,
            rule: None,
        }
    }
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn peer_ip(parts: &axum::http::request::Parts) -> IpAddr {
    parts
        .extensions
        .get::<Peer>()
        .map_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |p| p.0.ip())
}

fn is_api(path: &str) -> bool {
    path.starts_with("/api/")
}

impl FromRequestParts<Arc<App>> for Authed {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        app: &Arc<App>,
    ) -> Result<Self, Self::Rejection> {
        let ip = peer_ip(parts);
        let api = is_api(parts.uri.path());
        let unauth = || unauthorised(api);
        let Some(id) = cookie_value(&parts.headers, COOKIE) else {
            return Err(unauth());
        };
        let touched = lock(&app.sessions).touch(&id, Instant::now());
        let s: Session = match touched {
            Ok(s) => s,
            Err(Some((s, why))) => {
                app.record(Rec {
                    action: Action::LoggedOut,
                    category: Category::Authentication,
                    user: &s.user,
                    role: Some(s.role),
                    ip: s.ip,
                    operation: "logout",
                    reason: format!(
                        "console session of {} ended: {}",
                        s.user,
                        match why {
                            Ended::Idle => "unused for longer than session_idle_secs",
                            Ended::Expired => "older than session_max_secs",
                        }
                    ),
                    rule: None,
                });
                return Err(unauth());
            }
            Err(None) => return Err(unauth()),
        };
        // The account as it is now: disabled, a new password or a changed
        // role take effect at the next request.
        let Some(account) = app.account(&s.user) else {
            lock(&app.sessions).close(&id);
            return Err(unauth());
        };
        if account.disabled || account.generation != s.generation {
            lock(&app.sessions).close(&id);
            return Err(unauth());
        }
        Ok(Authed {
            id,
            user: s.user,
            role: account.role,
            patient_data: account.patient_data,
            csrf: s.csrf,
            ip,
        })
    }
}

fn unauthorised(api: bool) -> Response {
    if api {
        (
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({"error": "log in first"})),
        )
            .into_response()
    } else {
        let page = LoginPage {
            message: String::new(),
        };
        (StatusCode::UNAUTHORIZED, render(&page)).into_response()
    }
}

// ---------------------------------------------------------------- errors

/// What a request could not do.
#[derive(Debug)]
pub(crate) enum ApiError {
    BadRequest(String),
    Forbidden(String),
    NotFound(String),
    Conflict(String),
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, msg) = match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, m),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, m),
            ApiError::Internal(m) => {
                tracing::error!(error = %m, "console request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, m)
            }
        };
        (code, Json(serde_json::json!({ "error": msg }))).into_response()
    }
}

pub(crate) fn render<T: Template>(t: &T) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => ApiError::Internal(format!("rendering a page: {e}")).into_response(),
    }
}

// ---------------------------------------------------------------- actions' bodies

/// An action's body: JSON with the CSRF token in `X-CSRF-Token`, or a form
/// with it in the field `csrf` (and `back`, the page to return to).
pub(crate) struct ActionBody<T> {
    /// Who asks.
    pub authed: Authed,
    /// What the body says.
    pub value: T,
    /// Where a form goes back to; `None` for the API (answer JSON).
    pub back: Option<String>,
}

#[derive(Deserialize)]
struct FormEnvelope {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    back: String,
}

/// A local path to return to, or `/`. Only the characters the console's own
/// paths use: browsers drop tabs and newlines from URLs and read `\\` as `/`,
/// so `/\t/evil.example` would otherwise leave the site.
fn safe_back(back: &str) -> String {
    let plain = back
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/-_.?=&%:".contains(&b));
    if plain && back.starts_with('/') && !back.starts_with("//") && back.len() <= 512 {
        back.to_owned()
    } else {
        "/".to_owned()
    }
}

impl<T: DeserializeOwned> FromRequest<Arc<App>> for ActionBody<T> {
    type Rejection = Response;

    async fn from_request(req: Request, app: &Arc<App>) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let authed = Authed::from_request_parts(&mut parts, app).await?;
        let ctype = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
            ApiError::BadRequest(format!("the body is over {MAX_BODY} bytes")).into_response()
        })?;
        let forbidden =
            || ApiError::Forbidden("missing or wrong CSRF token".into()).into_response();
        if ctype.starts_with("application/x-www-form-urlencoded") {
            let env: FormEnvelope = serde_urlencoded::from_bytes(&bytes)
                .map_err(|e| ApiError::BadRequest(e.to_string()).into_response())?;
            if !same(&env.csrf, &authed.csrf) {
                return Err(forbidden());
            }
            let value = serde_urlencoded::from_bytes(&bytes)
                .map_err(|e| ApiError::BadRequest(e.to_string()).into_response())?;
            return Ok(ActionBody {
                authed,
                value,
                back: Some(safe_back(&env.back)),
            });
        }
        let token = parts
            .headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !same(token, &authed.csrf) {
            return Err(forbidden());
        }
        let bytes = if bytes.iter().all(u8::is_ascii_whitespace) {
            &b"{}"[..]
        } else {
            &bytes[..]
        };
        let value = serde_json::from_slice(bytes)
            .map_err(|e| ApiError::BadRequest(format!("the body: {e}")).into_response())?;
        Ok(ActionBody {
            authed,
            value,
            back: None,
        })
    }
}

/// What an action answers: JSON for the API, 303 back for a form.
fn done<T: Serialize>(back: Option<String>, value: T) -> Response {
    match back {
        Some(b) => Redirect::to(&b).into_response(),
        None => Json(value).into_response(),
    }
}

/// See [`crate::fuzzing::untrusted`].
pub(crate) fn fuzz_untrusted(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_bytes(data) {
        h.insert(header::COOKIE, v);
        if let Some(c) = cookie_value(&h, COOKIE) {
            assert!(!c.contains(';'));
        }
    }
    let back = safe_back(&text);
    assert!(back.starts_with('/') && !back.starts_with("//") && !back.contains('\\'));
    if let Ok(f) = serde_urlencoded::from_bytes::<LoginForm>(data) {
        let _ = (f.username.len(), f.password.len());
    }
    if let Ok(f) = serde_urlencoded::from_bytes::<FormEnvelope>(data) {
        let _ = same(&f.csrf, "00");
    }
    if let Ok(u) = serde_json::from_slice::<Users>(data) {
        let _ = account_changes(
            &[],
            &u.accounts
                .iter()
                .map(AccountSummary::of)
                .collect::<Vec<_>>(),
        );
    }
}

// ---------------------------------------------------------------- middleware

async fn security_headers(req: Request, next: axum::middleware::Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    for (k, v) in [
        ("content-security-policy", CSP),
        ("strict-transport-security", "max-age=31536000"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
        (
            "permissions-policy",
            "camera=(), microphone=(), geolocation=()",
        ),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// A state change from another origin is refused before anything else looks
/// at it (the CSRF token is the main defence; this is the second).
async fn same_origin(req: Request, next: axum::middleware::Next) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let fetch_site = req
            .headers()
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if let Some(origin) = req.headers().get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("");
            // With `Referrer-Policy: no-referrer` a browser sends `Origin:
            // null` on the console's own forms; it also says the request is
            // same-origin, which only the browser can say. Anything else named
            // `null` (a sandboxed frame elsewhere) is refused.
            let ok = if origin == "null" {
                fetch_site == "same-origin"
            } else {
                origin
                    .strip_prefix("https://")
                    .is_some_and(|o| !host.is_empty() && o == host)
            };
            if !ok {
                return ApiError::Forbidden("cross-origin request refused".into()).into_response();
            }
        }
        if fetch_site == "cross-site" {
            return ApiError::Forbidden("cross-site request refused".into()).into_response();
        }
    }
    next.run(req).await
}

// ---------------------------------------------------------------- router

pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/assets/console.css", get(css))
        .route("/assets/console.js", get(js))
        .route("/", get(page_overview))
        .route("/routes", get(page_routes))
        .route("/queues", get(page_queues))
        .route("/certificates", get(page_certificates))
        .route("/devices", get(page_devices))
        .route("/devices/{id}", get(page_device))
        .route("/audit", get(page_audit))
        .route("/users", get(page_users))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/session", get(api_session))
        .route("/api/v1/overview", get(api_overview))
        .route("/api/v1/routes", get(api_routes))
        .route("/api/v1/routes/{route}/enforcement", post(api_enforcement))
        .route("/api/v1/reload", post(api_reload))
        .route("/api/v1/privacy/reidentify", post(api_reidentify))
        .route("/api/v1/queues", get(api_queues))
        .route("/api/v1/queues/{route}/redrive", post(api_redrive))
        .route("/api/v1/certificates", get(api_certificates))
        .route("/api/v1/devices", get(api_devices))
        .route("/api/v1/devices/{id}", get(api_device))
        .route("/api/v1/devices/{id}/revoke", post(api_revoke))
        .route("/api/v1/devices/{id}/enrol", post(api_enrol))
        .route("/api/v1/audit", get(api_audit))
        .route("/api/v1/audit/verify", post(api_verify))
        .route("/api/v1/users", get(api_users).post(api_user_add))
        .route("/api/v1/users/{name}/disable", post(api_user_disable))
        .merge(crate::events::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn(same_origin))
        .layer(axum::middleware::from_fn(security_headers))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(app)
}

async fn not_found(parts: axum::http::request::Parts) -> Response {
    let _ = parts;
    ApiError::NotFound("no such page".into()).into_response()
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "private, max-age=300"),
        ],
        include_str!("../assets/console.css"),
    )
        .into_response()
}

async fn js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "private, max-age=300"),
        ],
        include_str!("../assets/console.js"),
    )
        .into_response()
}

// ---------------------------------------------------------------- login

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    message: String,
}

async fn login_page() -> Response {
    render(&LoginPage {
        message: String::new(),
    })
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

async fn login(
    State(app): State<Arc<App>>,
    peer: Option<axum::Extension<Peer>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let ip = peer.map_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |p| p.0 .0.ip());
    let form: LoginForm = match serde_urlencoded::from_bytes(&body) {
        Ok(f) => f,
        Err(_) => return ApiError::BadRequest("username and password".into()).into_response(),
    };
    // A name no account can have is recorded as such, not as typed (it
    // could be anything, and long).
    let typed = form.username.trim();
    let name = if crate::users::check_name(typed).is_ok() {
        typed.to_owned()
    } else {
        INVALID_NAME.to_owned()
    };
    let refuse = |code: StatusCode, message: &str| {
        (
            code,
            render(&LoginPage {
                message: message.to_owned(),
            }),
        )
            .into_response()
    };
    let now = Instant::now();
    let gate = lock(&app.throttle).gate(&name, ip, now);
    let rec_failed = |why: &str| {
        app.record(Rec {
            action: Action::LoginFailed,
            category: Category::Authentication,
            user: &name,
            role: None,
            ip,
            operation: "login",
            reason: format!("console login as {name:?} refused: {why}"),
            rule: None,
        });
    };
    match gate {
        Gate::AddressLimited { first } => {
            // Recorded once a minute per address: a flood of attempts is
            // one record, not one each.
            if first {
                rec_failed("too many attempts from this address (further attempts this minute are refused unrecorded)");
            }
            return refuse(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts from this address: wait a minute.",
            );
        }
        Gate::Locked(_) => {
            rec_failed("the account is locked");
            return refuse(
                StatusCode::TOO_MANY_REQUESTS,
                "This account is locked after too many wrong passwords: wait, or ask an admin.",
            );
        }
        Gate::Try => {}
    }
    // A few argon2 checks at a time (19 MiB each): more wait for none.
    let Ok(_verifying) = app.verifying.clone().try_acquire_owned() else {
        lock(&app.throttle).abandoned(&name);
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "The console is busy checking other logins: try again.",
        );
    };
    let account = app.account(&name);
    let hash = account.as_ref().map_or_else(
        || crate::users::decoy_hash().to_owned(),
        |a| a.password.clone(),
    );
    let password = form.password;
    // argon2 takes tens of milliseconds of CPU: off the runtime's worker.
    let ok = tokio::task::spawn_blocking(move || crate::users::verify_password(&password, &hash))
        .await
        .unwrap_or(false);
    let usable = account.as_ref().filter(|a| ok && !a.disabled);
    let Some(account) = usable else {
        let locked = lock(&app.throttle).failed(&name, now);
        let why = match &account {
            Some(a) if ok && a.disabled => "the account is disabled",
            Some(_) => "wrong password",
            None => "no such account",
        };
        rec_failed(why);
        if locked {
            app.record(Rec {
                action: Action::Alerted,
                category: Category::Authentication,
                user: &name,
                role: account.as_ref().map(|a| a.role),
                ip,
                operation: "lockout",
                reason: format!(
                    "console account {name:?} locked for {} s after {} failed logins in a row; the last from {ip}",
                    app.cfg.lockout_secs, app.cfg.login_max_failures
                ),
                rule: Some(wardgate_event::rules::CONSOLE_LOCKED),
            });
        }
        return refuse(StatusCode::UNAUTHORIZED, "Wrong name or password.");
    };
    lock(&app.throttle).succeeded(&name);
    // Never keep an id the client brought: a new one at every login.
    if let Some(old) = cookie_value(&headers, COOKIE) {
        lock(&app.sessions).close(&old);
    }
    let id = lock(&app.sessions).open(&account.name, account.role, account.generation, ip, now);
    app.record(Rec {
        action: Action::LoggedIn,
        category: Category::Authentication,
        user: &account.name,
        role: Some(account.role),
        ip,
        operation: "login",
        reason: format!(
            "{} logged in to the console as {}",
            account.name,
            account.role.as_str()
        ),
        rule: None,
    });
    let cookie = format!(
        "{COOKIE}={id}; Secure; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        app.cfg.session_max_secs
    );
    let mut res = Redirect::to("/").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

async fn logout(State(app): State<Arc<App>>, body: ActionBody<serde_json::Value>) -> Response {
    let a = &body.authed;
    lock(&app.sessions).close(&a.id);
    app.record(a.rec(
        Action::LoggedOut,
        Category::Authentication,
        "logout",
        format!("{} logged out of the console", a.user),
    ));
    let mut res = match body.back {
        Some(_) => Redirect::to("/login").into_response(),
        None => Json(serde_json::json!({"logged_out": true})).into_response(),
    };
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "__Host-wardgate=; Secure; HttpOnly; SameSite=Strict; Path=/; Max-Age=0",
        ),
    );
    res
}

// ---------------------------------------------------------------- layout

/// What every page's frame shows.
pub(crate) struct Frame {
    pub user: String,
    pub role: &'static str,
    pub csrf: String,
    pub operator: bool,
    pub admin: bool,
    pub here: &'static str,
}

impl Frame {
    pub(crate) fn of(a: &Authed, here: &'static str) -> Frame {
        Frame {
            user: a.user.clone(),
            role: a.role.as_str(),
            csrf: a.csrf.clone(),
            operator: a.role >= Role::Operator,
            admin: a.role >= Role::Admin,
            here,
        }
    }
}

// ---------------------------------------------------------------- views

/// Runs a blocking gatherer (files, SQLite) off the runtime's worker.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("a console task failed: {e}")))
}

async fn policy_hash(app: &App) -> String {
    app.gateway
        .status()
        .await
        .get("policy_hash")
        .and_then(|h| h.as_str())
        .unwrap_or_default()
        .to_owned()
}

/// The overview: the gateway's state and what the events say now.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct Overview {
    #[serde(flatten)]
    pub state: views::GatewayState,
    #[serde(flatten)]
    pub events: crate::events::OverviewEvents,
}

async fn overview(app: &Arc<App>, a: &Authed) -> Result<Overview, ApiError> {
    let state = views::gateway_state(&app.gateway.status().await, &app.gateway.config());
    let events = crate::events::overview(app, a).await?;
    Ok(Overview { state, events })
}

#[utoipa::path(get, path = "/api/v1/overview", responses((status = 200, body = Overview), (status = 401)))]
async fn api_overview(State(app): State<Arc<App>>, a: Authed) -> Result<Json<Overview>, ApiError> {
    Ok(Json(overview(&app, &a).await?))
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    f: Frame,
    o: Overview,
    decisions_svg: String,
    rules_svg: String,
    devices_svg: String,
}

async fn page_overview(State(app): State<Arc<App>>, a: Authed) -> Result<Response, ApiError> {
    let o = overview(&app, &a).await?;
    let (decisions_svg, rules_svg, devices_svg) = crate::events::overview_plots(&o.events);
    Ok(render(&OverviewPage {
        f: Frame::of(&a, "overview"),
        o,
        decisions_svg,
        rules_svg,
        devices_svg,
    }))
}

#[utoipa::path(get, path = "/api/v1/routes", responses((status = 200, body = views::RoutesView), (status = 401)))]
async fn api_routes(State(app): State<Arc<App>>, _a: Authed) -> Json<views::RoutesView> {
    Json(views::routes(
        &app.gateway.config(),
        &policy_hash(&app).await,
    ))
}

#[derive(Template)]
#[template(path = "routes.html")]
struct RoutesPage {
    f: Frame,
    r: views::RoutesView,
}

async fn page_routes(State(app): State<Arc<App>>, a: Authed) -> Response {
    render(&RoutesPage {
        f: Frame::of(&a, "routes"),
        r: views::routes(&app.gateway.config(), &policy_hash(&app).await),
    })
}

#[utoipa::path(get, path = "/api/v1/queues", responses((status = 200, body = Vec<views::QueueView>), (status = 401)))]
async fn api_queues(
    State(app): State<Arc<App>>,
    _a: Authed,
) -> Result<Json<Vec<views::QueueView>>, ApiError> {
    let v = app.gateway.config();
    Ok(Json(blocking(move || views::queues(&v)).await?))
}

#[derive(Template)]
#[template(path = "queues.html")]
struct QueuesPage {
    f: Frame,
    queues: Vec<views::QueueView>,
}

async fn page_queues(State(app): State<Arc<App>>, a: Authed) -> Result<Response, ApiError> {
    let v = app.gateway.config();
    let queues = blocking(move || views::queues(&v)).await?;
    Ok(render(&QueuesPage {
        f: Frame::of(&a, "queues"),
        queues,
    }))
}

async fn certificates(app: &Arc<App>) -> Result<views::CertificatesView, ApiError> {
    let expiry =
        views::gateway_state(&app.gateway.status().await, &app.gateway.config()).certificates;
    let dir = app.gateway.config().data_dir.clone();
    blocking(move || views::certificates(&dir, expiry)).await
}

#[utoipa::path(get, path = "/api/v1/certificates", responses((status = 200, body = views::CertificatesView), (status = 401)))]
async fn api_certificates(
    State(app): State<Arc<App>>,
    _a: Authed,
) -> Result<Json<views::CertificatesView>, ApiError> {
    Ok(Json(certificates(&app).await?))
}

#[derive(Template)]
#[template(path = "certificates.html")]
struct CertificatesPage {
    f: Frame,
    c: views::CertificatesView,
}

async fn page_certificates(State(app): State<Arc<App>>, a: Authed) -> Result<Response, ApiError> {
    Ok(render(&CertificatesPage {
        f: Frame::of(&a, "certificates"),
        c: certificates(&app).await?,
    }))
}

async fn devices(app: &Arc<App>) -> Result<Vec<views::DeviceView>, ApiError> {
    let v = app.gateway.config();
    let status = app.gateway.status().await;
    let app2 = app.clone();
    blocking(move || {
        let inventory = crate::events::inventory(&app2)?;
        Ok(views::devices(&v, &status, &inventory))
    })
    .await?
}

#[utoipa::path(get, path = "/api/v1/devices", responses((status = 200, body = Vec<views::DeviceView>), (status = 401)))]
async fn api_devices(
    State(app): State<Arc<App>>,
    _a: Authed,
) -> Result<Json<Vec<views::DeviceView>>, ApiError> {
    Ok(Json(devices(&app).await?))
}

#[derive(Template)]
#[template(path = "devices.html")]
struct DevicesPage {
    f: Frame,
    devices: Vec<views::DeviceView>,
}

async fn page_devices(State(app): State<Arc<App>>, a: Authed) -> Result<Response, ApiError> {
    Ok(render(&DevicesPage {
        f: Frame::of(&a, "devices"),
        devices: devices(&app).await?,
    }))
}

/// One device (enrolled, or `ip:ADDRESS` seen but not enrolled): the
/// inventory entry and what it did in the last 24 hours.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct DevicePageView {
    pub device: views::DeviceView,
    pub activity: crate::events::DeviceActivity,
}

async fn device(app: &Arc<App>, a: &Authed, id: &str) -> Result<DevicePageView, ApiError> {
    let device = devices(app)
        .await?
        .into_iter()
        .find(|d| d.id == id)
        .ok_or_else(|| ApiError::NotFound(format!("no device {id:?} enrolled or seen")))?;
    // The index keys events by enrolled device; an address has no activity there.
    let activity = if device.enrolled {
        crate::events::device_activity(app, a, id).await?
    } else {
        crate::events::DeviceActivity::default()
    };
    Ok(DevicePageView { device, activity })
}

#[utoipa::path(get, path = "/api/v1/devices/{id}", params(("id" = String, Path, description = "device id, or `ip:ADDRESS` for a device seen but not enrolled")), responses((status = 200, body = DevicePageView), (status = 401), (status = 404)))]
async fn api_device(
    State(app): State<Arc<App>>,
    a: Authed,
    Path(id): Path<String>,
) -> Result<Json<DevicePageView>, ApiError> {
    Ok(Json(device(&app, &a, &id).await?))
}

#[derive(Template)]
#[template(path = "device.html")]
struct DevicePage {
    f: Frame,
    d: DevicePageView,
}

async fn page_device(
    State(app): State<Arc<App>>,
    a: Authed,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let d = device(&app, &a, &id).await?;
    Ok(render(&DevicePage {
        f: Frame::of(&a, "devices"),
        d,
    }))
}

fn audit_view(app: &App) -> views::AuditView {
    let mut v = views::audit(&app.gateway.config().data_dir);
    v.last_verification = lock(&app.last_verification).clone();
    v
}

#[utoipa::path(get, path = "/api/v1/audit", responses((status = 200, body = views::AuditView), (status = 401)))]
async fn api_audit(
    State(app): State<Arc<App>>,
    _a: Authed,
) -> Result<Json<views::AuditView>, ApiError> {
    let app2 = app.clone();
    Ok(Json(blocking(move || audit_view(&app2)).await?))
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    f: Frame,
    v: views::AuditView,
}

async fn page_audit(State(app): State<Arc<App>>, a: Authed) -> Result<Response, ApiError> {
    let app2 = app.clone();
    let v = blocking(move || audit_view(&app2)).await?;
    Ok(render(&AuditPage {
        f: Frame::of(&a, "audit"),
        v,
    }))
}

/// An account as the console shows it (never its hash).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct AccountView {
    pub name: String,
    pub role: String,
    pub disabled: bool,
    pub patient_data: bool,
}

fn accounts_view(app: &App) -> Vec<AccountView> {
    app.accounts()
        .accounts
        .iter()
        .map(|a| AccountView {
            name: a.name.clone(),
            role: a.role.as_str().to_owned(),
            disabled: a.disabled,
            patient_data: a.patient_data,
        })
        .collect()
}

#[utoipa::path(get, path = "/api/v1/users", responses((status = 200, body = Vec<AccountView>), (status = 401), (status = 403)))]
async fn api_users(
    State(app): State<Arc<App>>,
    a: Authed,
) -> Result<Json<Vec<AccountView>>, ApiError> {
    a.require(&app, Role::Admin, "the accounts")?;
    Ok(Json(accounts_view(&app)))
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    f: Frame,
    users: Vec<AccountView>,
}

async fn page_users(State(app): State<Arc<App>>, a: Authed) -> Result<Response, ApiError> {
    a.require(&app, Role::Admin, "the accounts page")?;
    Ok(render(&UsersPage {
        f: Frame::of(&a, "users"),
        users: accounts_view(&app),
    }))
}

// ---------------------------------------------------------------- actions

/// `{"mode": "monitor"}` or `"enforce"`.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct EnforcementBody {
    pub mode: String,
}

/// What an action did.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Done {
    /// What happened, in words.
    pub message: String,
}

#[utoipa::path(post, path = "/api/v1/routes/{route}/enforcement", params(("route" = String, Path, description = "route id")), request_body = EnforcementBody, responses((status = 200, body = Done), (status = 400), (status = 401), (status = 403), (status = 409)))]
async fn api_enforcement(
    State(app): State<Arc<App>>,
    Path(route): Path<String>,
    body: ActionBody<EnforcementBody>,
) -> Result<Response, ApiError> {
    let a = &body.authed;
    a.require(&app, Role::Operator, "a monitor/enforce switch")?;
    let monitor = match body.value.mode.as_str() {
        "monitor" => true,
        "enforce" => false,
        other => {
            return Err(ApiError::BadRequest(format!(
                "mode {other:?}: monitor or enforce"
            )))
        }
    };
    let path = app.config_path.clone();
    let r2 = route.clone();
    let _one = app.changing.lock().await;
    let result = blocking(move || crate::edit::set_enforcement(&path, &r2, monitor)).await?;
    let mode = body.value.mode.clone();
    match result {
        Ok(changed) => {
            app.record(a.rec(
                Action::Changed,
                Category::Configuration,
                "enforcement",
                if changed {
                    format!(
                        "{} set route {route:?} to {mode} in {}; reload requested",
                        a.user,
                        app.config_path.display()
                    )
                } else {
                    format!(
                        "{} asked for route {route:?} in {mode}: it already is; reload requested",
                        a.user
                    )
                },
            ));
            app.gateway.reload();
            Ok(done(
                body.back,
                Done {
                    message: format!(
                        "route {route} set to {mode}; the reload's result is in the events"
                    ),
                },
            ))
        }
        Err(why) => {
            app.record(a.rec(
                Action::Failed,
                Category::Configuration,
                "enforcement",
                format!("{} could not set route {route:?} to {mode}: {why}", a.user),
            ));
            Err(ApiError::Conflict(why))
        }
    }
}

#[utoipa::path(post, path = "/api/v1/reload", responses((status = 200, body = Done), (status = 401), (status = 403)))]
async fn api_reload(
    State(app): State<Arc<App>>,
    body: ActionBody<serde_json::Value>,
) -> Result<Response, ApiError> {
    let a = &body.authed;
    a.require(&app, Role::Operator, "a reload")?;
    app.record(a.rec(
        Action::Changed,
        Category::Configuration,
        "reload",
        format!(
            "{} asked for a reload of the configuration and TLS material",
            a.user
        ),
    ));
    app.gateway.reload();
    Ok(done(
        body.back,
        Done {
            message: "reload requested; its result is in the events".into(),
        },
    ))
}

/// `{"pseudonym": "WG...", "reason": "..."}`.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct ReidentifyBody {
    /// A keyed pseudonym, as events and de-identified data carry it.
    pub pseudonym: String,
    /// Why (a ticket, a clinical reason): recorded with the use.
    pub reason: String,
}

/// The identifier a pseudonym stands for.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Reidentified {
    /// The pseudonym asked about.
    pub pseudonym: String,
    /// The patient identifier it stands for.
    pub patient_id: String,
}

/// Re-identification: the explicit command that turns a keyed pseudonym back
/// into the patient identifier, for accounts allowed patient data. Every
/// use, refused or not, is recorded with who, the pseudonym and the reason;
/// the identifier is never in the record.
#[utoipa::path(post, path = "/api/v1/privacy/reidentify", request_body = ReidentifyBody, responses((status = 200, body = Reidentified), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn api_reidentify(
    State(app): State<Arc<App>>,
    body: ActionBody<ReidentifyBody>,
) -> Result<Response, ApiError> {
    let a = &body.authed;
    let ReidentifyBody { pseudonym, reason } = body.value;
    let pseudonym = pseudonym.trim().to_owned();
    let reason: String = reason
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    if !wardgate_privacy::consent::is_pseudonym(&pseudonym) {
        return Err(ApiError::BadRequest(
            "pseudonym: not a wardgate pseudonym (WG and 14 characters)".into(),
        ));
    }
    if reason.is_empty() {
        return Err(ApiError::BadRequest(
            "reason: say why (it is recorded with the use)".into(),
        ));
    }
    if !a.patient_data {
        app.record(a.rec(
            Action::Failed,
            Category::Web,
            "denied",
            format!("{} was refused re-identification of {pseudonym}: the account may not see patient data", a.user),
        ));
        return Err(ApiError::Forbidden(format!(
            "{} may not re-identify (`wardgate user add --patient-data`)",
            a.user
        )));
    }
    let gw = app.gateway.clone();
    let p2 = pseudonym.clone();
    let found = blocking(move || gw.reidentify(&p2)).await?;
    // Recorded before it is answered; unrecorded, it is not answered.
    app.record_checked(a.rec(
        Action::Viewed,
        Category::Web,
        "reidentify",
        format!(
            "{} re-identified {pseudonym} ({}); reason: {reason}",
            a.user,
            if found.is_some() {
                "found"
            } else {
                "not in the table"
            }
        ),
    ))
    .map_err(|e| {
        ApiError::Internal(format!(
            "the use could not be recorded, so it is not answered: {e}"
        ))
    })?;
    match found {
        Some(patient_id) => Ok(done(body.back, Reidentified { pseudonym, patient_id })),
        None => Err(ApiError::NotFound(format!(
            "{pseudonym} is not in the re-identification table (made with another key, or never seen by this gateway)"
        ))),
    }
}

/// `{"ids": [..]}`, `{"id": N}` (a form's button) or `{"all": true}`.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct RedriveBody {
    #[serde(default)]
    pub ids: Vec<u64>,
    #[serde(default)]
    pub id: Option<u64>,
    #[serde(default)]
    pub all: bool,
}

#[utoipa::path(post, path = "/api/v1/queues/{route}/redrive", params(("route" = String, Path, description = "route id")), request_body = RedriveBody, responses((status = 200, body = Done), (status = 400), (status = 401), (status = 403), (status = 404)))]
async fn api_redrive(
    State(app): State<Arc<App>>,
    Path(route): Path<String>,
    body: ActionBody<RedriveBody>,
) -> Result<Response, ApiError> {
    let a = &body.authed;
    a.require(&app, Role::Operator, "a re-drive")?;
    let v = app.gateway.config();
    if !v.routes.iter().any(|r| {
        r.id == route && matches!(r.delivery, wardgate_config::Delivery::StoreAndForward(_))
    }) {
        return Err(ApiError::NotFound(format!(
            "no store-and-forward route {route:?}"
        )));
    }
    let mut ids = body.value.ids.clone();
    ids.extend(body.value.id);
    if ids.is_empty() && !body.value.all {
        return Err(ApiError::BadRequest(
            "name the messages (ids) or all".into(),
        ));
    }
    let dir = views::queue_dir(&v.data_dir, &route);
    let all = body.value.all;
    let ids2 = ids.clone();
    blocking(move || {
        wardgate_store::queue::request_redrive(&dir, (!all).then_some(ids2.as_slice()))
    })
    .await?
    .map_err(|e| ApiError::Internal(format!("placing the re-drive request: {e}")))?;
    let what = if all {
        "every parked message".to_owned()
    } else {
        format!("parked message(s) {ids:?}")
    };
    app.record(a.rec(
        Action::Changed,
        Category::Configuration,
        "redrive",
        format!("{} asked to re-drive {what} on route {route:?}", a.user),
    ));
    Ok(done(
        body.back,
        Done {
            message: format!(
                "re-drive of {what} on {route} requested; the gateway applies it within a second"
            ),
        },
    ))
}

#[utoipa::path(post, path = "/api/v1/devices/{id}/revoke", params(("id" = String, Path, description = "device id, or `ip:ADDRESS` for a device seen but not enrolled")), responses((status = 200, body = Done), (status = 401), (status = 403), (status = 404)))]
async fn api_revoke(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    body: ActionBody<serde_json::Value>,
) -> Result<Response, ApiError> {
    let a = &body.authed;
    a.require(&app, Role::Admin, "a revocation")?;
    let dir = app.gateway.config().data_dir.clone();
    let id2 = id.clone();
    let _one = app.changing.lock().await;
    let r = blocking(move || wardgate_tls::Ca::load(&dir).and_then(|ca| ca.revoke(&id2))).await?;
    match r {
        Ok(serials) if serials.is_empty() => Err(ApiError::NotFound(format!(
            "no certificate of {id:?} left to revoke"
        ))),
        Ok(serials) => {
            app.record(a.rec(
                Action::Changed,
                Category::Configuration,
                "revoke",
                format!(
                    "{} revoked the certificate(s) of device {id:?}: serial(s) {}",
                    a.user,
                    serials.join(", ")
                ),
            ));
            // Listeners re-read the CRL before their next connection.
            app.gateway.reload();
            Ok(done(
                body.back,
                Done {
                    message: format!(
                        "revoked {} certificate(s) of {id}; its next connection is refused",
                        serials.len()
                    ),
                },
            ))
        }
        Err(e) => Err(ApiError::Conflict(e.to_string())),
    }
}

/// A certificate signing request (PEM), or nothing: then the CA makes the key.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct EnrolBody {
    #[serde(default)]
    pub csr: Option<String>,
    #[serde(default)]
    pub days: Option<i64>,
}

/// What enrolment gives: the certificate, the key when the CA made it, the CA.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Enrolled {
    pub device: String,
    pub serial: String,
    pub not_after: String,
    pub certificate_pem: String,
    /// Only when the CA made the key: shown once, kept nowhere.
    pub private_key_pem: Option<String>,
    pub ca_pem: String,
}

#[utoipa::path(post, path = "/api/v1/devices/{id}/enrol", params(("id" = String, Path, description = "device id, or `ip:ADDRESS` for a device seen but not enrolled")), request_body = EnrolBody, responses((status = 200, body = Enrolled), (status = 401), (status = 403), (status = 404)))]
async fn api_enrol(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    body: ActionBody<EnrolBody>,
) -> Result<Response, ApiError> {
    let a = body.authed.clone();
    a.require(&app, Role::Admin, "an enrolment")?;
    let v = app.gateway.config();
    if !v.config.devices.iter().any(|d| d.id.get_ref() == &id) {
        return Err(ApiError::NotFound(format!(
            "no device {id:?} in the configuration"
        )));
    }
    let dir = v.data_dir.clone();
    let id2 = id.clone();
    let csr = body.value.csr.clone().filter(|c| !c.trim().is_empty());
    let days = body.value.days.unwrap_or(365).clamp(1, 3650);
    let _one = app.changing.lock().await;
    let r = blocking(move || crate::edit::enrol(&dir, &id2, csr.as_deref(), days)).await?;
    let e = r.map_err(ApiError::Conflict)?;
    app.record(a.rec(
        Action::Changed,
        Category::Configuration,
        "enrol",
        format!(
            "{} enrolled device {id:?}: certificate serial {} until {}{}",
            a.user,
            e.serial,
            e.not_after,
            if e.private_key_pem.is_some() {
                " (key made by the CA, handed over once)"
            } else {
                " (from the device's request)"
            }
        ),
    ));
    if body.back.is_some() {
        return Ok(render(&EnrolledPage {
            f: Frame::of(&a, "devices"),
            e,
        }));
    }
    Ok(Json(e).into_response())
}

#[derive(Template)]
#[template(path = "enrolled.html")]
struct EnrolledPage {
    f: Frame,
    e: Enrolled,
}

#[utoipa::path(post, path = "/api/v1/audit/verify", responses((status = 200, body = Verification), (status = 401), (status = 403)))]
async fn api_verify(
    State(app): State<Arc<App>>,
    body: ActionBody<serde_json::Value>,
) -> Result<Response, ApiError> {
    let a = &body.authed;
    a.require(&app, Role::Operator, "a verification of the audit chain")?;
    let dir = app.gateway.config().data_dir.join("audit");
    let Ok(_one) = app.verifying_chain.try_lock() else {
        return Err(ApiError::Conflict(
            "a verification of the chain is running: its result will be on the audit page".into(),
        ));
    };
    let r = blocking(move || wardgate_audit::verify(&dir, None)).await?;
    let (ok, summary) = match r {
        Ok(rep) if rep.gaps.is_empty() => (true, format!("{} records and {} signed checkpoints in {} file(s) verified; the last record is {}, {} after the last checkpoint", rep.records, rep.checkpoints, rep.files, rep.last_seq, rep.unsigned_tail)),
        Ok(rep) => (false, format!("{} records verified, with {} gap(s): the log is not whole", rep.records, rep.gaps.len())),
        Err(e) => (false, format!("the chain does not verify: {e}")),
    };
    let ver = Verification {
        at: Clock::now().rfc3339().to_owned(),
        by: a.user.clone(),
        ok,
        summary: summary.clone(),
    };
    *lock(&app.last_verification) = Some(ver.clone());
    app.record(a.rec(
        Action::Changed,
        Category::Configuration,
        "audit-verify",
        format!("{} verified the audit chain: {summary}", a.user),
    ));
    Ok(done(body.back, ver))
}

/// A new account.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct UserBody {
    pub name: String,
    pub role: String,
    pub password: String,
    #[serde(default)]
    pub patient_data: bool,
}

#[utoipa::path(post, path = "/api/v1/users", request_body = UserBody, responses((status = 200, body = Done), (status = 400), (status = 401), (status = 403)))]
async fn api_user_add(
    State(app): State<Arc<App>>,
    body: ActionBody<UserBody>,
) -> Result<Response, ApiError> {
    let a = &body.authed;
    a.require(&app, Role::Admin, "adding an account")?;
    let role = Role::parse(&body.value.role).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let store = app.users.clone();
    let (n, p, pd) = (
        body.value.name.clone(),
        body.value.password.clone(),
        body.value.patient_data,
    );
    blocking(move || store.add(&n, role, &p, pd))
        .await?
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    app.absorb_accounts();
    let name = &body.value.name;
    app.record(a.rec(
        Action::Changed,
        Category::Iam,
        "user-add",
        format!(
            "{} added console account {name:?} as {}{}",
            a.user,
            role.as_str(),
            if body.value.patient_data {
                ", allowed to see patient identifiers"
            } else {
                ""
            }
        ),
    ));
    Ok(done(
        body.back,
        Done {
            message: format!("account {name} added"),
        },
    ))
}

#[utoipa::path(post, path = "/api/v1/users/{name}/disable", params(("name" = String, Path, description = "account")), responses((status = 200, body = Done), (status = 401), (status = 403), (status = 404)))]
async fn api_user_disable(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    body: ActionBody<serde_json::Value>,
) -> Result<Response, ApiError> {
    let a = &body.authed;
    a.require(&app, Role::Admin, "disabling an account")?;
    let store = app.users.clone();
    let n = name.clone();
    blocking(move || store.set_disabled(&n, true))
        .await?
        .map_err(|e| match e {
            crate::UserError::NoSuchAccount(n) => ApiError::NotFound(format!("no account {n:?}")),
            e => ApiError::BadRequest(e.to_string()),
        })?;
    app.absorb_accounts();
    lock(&app.sessions).close_user(&name);
    app.record(a.rec(
        Action::Changed,
        Category::Iam,
        "user-disable",
        format!(
            "{} disabled console account {name:?}; its sessions ended",
            a.user
        ),
    ));
    Ok(done(
        body.back,
        Done {
            message: format!("account {name} disabled"),
        },
    ))
}

/// Who is logged in, and the session's CSRF token for the API's POSTs.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SessionView {
    pub user: String,
    pub role: String,
    pub patient_data: bool,
    /// Send it as `X-CSRF-Token` with every POST.
    pub csrf: String,
}

#[utoipa::path(get, path = "/api/v1/session", responses((status = 200, body = SessionView), (status = 401)))]
async fn api_session(a: Authed) -> Json<SessionView> {
    Json(SessionView {
        user: a.user.clone(),
        role: a.role.as_str().to_owned(),
        patient_data: a.patient_data,
        csrf: a.csrf.clone(),
    })
}

// ---------------------------------------------------------------- OpenAPI

#[derive(OpenApi)]
#[openapi(
    info(
        title = "wardgate admin API",
        description = "The console's API: every page is also a resource here. Authenticate by logging in (POST /login, form fields username and password); send the session cookie, and the session's CSRF token in X-CSRF-Token with every POST."
    ),
    paths(
        api_session,
        api_overview,
        api_routes,
        api_enforcement,
        api_reload,
        api_reidentify,
        api_queues,
        api_redrive,
        api_certificates,
        api_devices,
        api_device,
        api_revoke,
        api_enrol,
        api_audit,
        api_verify,
        api_users,
        api_user_add,
        api_user_disable,
        crate::events::api_events,
        crate::events::api_event,
        crate::events::api_stream,
    )
)]
struct ApiDoc;

/// The OpenAPI description, generated from the handlers' annotations.
pub(crate) fn openapi_doc() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

async fn openapi(_a: Authed) -> Json<utoipa::openapi::OpenApi> {
    Json(openapi_doc())
}

#[cfg(test)]
mod tests;
