//! The router as a browser or a script meets it (without TLS, which
//! `tests/interop/test_console.py` adds with a real browser and curl): who
//! may do what, sessions, CSRF, lock-out, and what each action records.

use super::*;
use axum::body::Body;
use axum::http::Request as HttpRequest;
use tower::ServiceExt;
use wardgate_store::{query_log, EventFilter, Recorder, RecorderOptions};

const SITE: &str = r#"
[gateway]
data_dir = "data"

[[device]]
id = "ehr"
kind = "ehr"
addresses = ["127.0.0.2"]

[[device]]
id = "pumps"
kind = "infusion-pump-server"
addresses = ["127.0.0.3"]

[[route]]
id = "orders"
protocol = "hl7-mllp"
listen = "127.0.0.1:12575"
upstream = "127.0.0.3:2575"
senders = ["ehr"]
messages = ["ADT"]

[[route]]
id = "queued"
protocol = "hl7-mllp"
listen = "127.0.0.1:12576"
upstream = "127.0.0.3:2576"
senders = ["ehr"]
messages = ["ADT"]
delivery = "store-and-forward"

[console]
listen = "127.0.0.1:0"
cert = "console.crt"
key = "console.key"
login_max_failures = 3
"#;

const PASSWORD: &str = "a long enough password";

/// The gateway as the console sees it: this site's configuration, a status
/// document, and a count of the reloads asked for.
struct Site {
    v: Arc<wardgate_config::Validated>,
    reloads: std::sync::atomic::AtomicU32,
}

impl Gateway for Site {
    fn status(&self) -> crate::BoxFuture<'_, serde_json::Value> {
        Box::pin(async {
            serde_json::json!({"policy_hash": "ab12", "routes": [], "certificates": []})
        })
    }
    fn config(&self) -> Arc<wardgate_config::Validated> {
        self.v.clone()
    }
    fn reload(&self) {
        self.reloads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    fn reidentify(&self, pseudonym: &str) -> Option<String> {
        (pseudonym == "WG0123456789ABCD").then(|| "PAT-0042".to_owned())
    }
}

struct World {
    dir: tempfile::TempDir,
    app: Arc<App>,
    router: Router,
    recorder: Option<Recorder>,
    site: Arc<Site>,
}

fn world() -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("site.toml");
    std::fs::write(&path, SITE).expect("write");
    let v = wardgate_config::Config::load(&path).expect("valid site");
    let mut ro = RecorderOptions::new(&v.data_dir);
    ro.fsync = false;
    let recorder = Recorder::start(ro).expect("recorder");
    let users = UserStore::new(&v.data_dir.join("console"));
    for (name, role, pd) in [
        ("vic", Role::Viewer, false),
        ("otto", Role::Operator, false),
        ("ada", Role::Admin, true),
    ] {
        users.add(name, role, PASSWORD, pd).expect("add");
    }
    let c = v.console.clone().expect("console on");
    let site = Arc::new(Site {
        v: Arc::new(v),
        reloads: std::sync::atomic::AtomicU32::new(0),
    });
    let app = App::new(&c, path, site.clone(), recorder.handle()).expect("app");
    let router = router(app.clone());
    World {
        dir,
        app,
        router,
        recorder: Some(recorder),
        site,
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.app.stop_indexer();
        if let Some(r) = self.recorder.take() {
            let _ = r.shutdown();
        }
    }
}

fn peer(n: u8) -> Peer {
    Peer(SocketAddr::from(([127, 0, 0, n], 40000)))
}

impl World {
    async fn send(&self, req: HttpRequest<Body>) -> Response {
        self.router.clone().oneshot(req).await.expect("infallible")
    }

    async fn login_from(&self, user: &str, password: &str, from: u8) -> Response {
        self.login(user, password, from, None).await
    }

    /// Logs in with the test password, the browser presenting `cookie` as its session.
    async fn login_presenting(&self, user: &str, cookie: &str) -> Response {
        self.login(user, PASSWORD, 9, Some(cookie)).await
    }

    async fn login(&self, user: &str, password: &str, from: u8, cookie: Option<&str>) -> Response {
        let mut b = HttpRequest::post("/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(c) = cookie {
            b = b.header(header::COOKIE, format!("{COOKIE}={c}"));
        }
        let mut req = b
            .body(Body::from(format!(
                "username={user}&password={}",
                password.replace(' ', "+")
            )))
            .expect("request");
        req.extensions_mut().insert(peer(from));
        self.send(req).await
    }

    /// Logs in and returns (cookie, csrf token).
    async fn session(&self, user: &str) -> (String, String) {
        let res = self.login_from(user, PASSWORD, 9).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "login of {user}");
        let cookie = set_cookie(&res).expect("a session cookie");
        let page = self.get("/routes", Some(&cookie)).await;
        let html = body(page).await;
        let csrf = html
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("a CSRF token in the page")
            .to_owned();
        (cookie, csrf)
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> Response {
        let mut b = HttpRequest::get(path);
        if let Some(c) = cookie {
            b = b.header(header::COOKIE, format!("{COOKIE}={c}"));
        }
        let mut req = b.body(Body::empty()).expect("request");
        req.extensions_mut().insert(peer(9));
        self.send(req).await
    }

    async fn post_json(
        &self,
        path: &str,
        cookie: Option<&str>,
        csrf: Option<&str>,
        json: &str,
    ) -> Response {
        let mut b = HttpRequest::post(path).header(header::CONTENT_TYPE, "application/json");
        if let Some(c) = cookie {
            b = b.header(header::COOKIE, format!("{COOKIE}={c}"));
        }
        if let Some(t) = csrf {
            b = b.header("x-csrf-token", t);
        }
        let mut req = b.body(Body::from(json.to_owned())).expect("request");
        req.extensions_mut().insert(peer(9));
        self.send(req).await
    }

    fn records(&self) -> Vec<serde_json::Value> {
        self.recorder
            .as_ref()
            .expect("recorder")
            .handle()
            .sync()
            .expect("sync");
        query_log(&self.site.v.data_dir.join("audit"), &EventFilter::default())
            .expect("log")
            .into_iter()
            .map(|e| serde_json::from_str(&e.doc).expect("json"))
            .collect()
    }
}

fn set_cookie(res: &Response) -> Option<String> {
    let v = res.headers().get(header::SET_COOKIE)?.to_str().ok()?;
    assert!(
        v.contains("Secure")
            && v.contains("HttpOnly")
            && v.contains("SameSite=Strict")
            && v.contains("Path=/"),
        "{v}"
    );
    v.strip_prefix(&format!("{COOKIE}="))?
        .split(';')
        .next()
        .map(str::to_owned)
}

async fn body(res: Response) -> String {
    let b = axum::body::to_bytes(res.into_body(), 1 << 22)
        .await
        .expect("body");
    String::from_utf8_lossy(&b).into_owned()
}

/// Every page and API resource: (path, least role that may read it).
const READS: &[(&str, Role)] = &[
    ("/", Role::Viewer),
    ("/events", Role::Viewer),
    ("/devices", Role::Viewer),
    ("/devices/ehr", Role::Viewer),
    ("/routes", Role::Viewer),
    ("/queues", Role::Viewer),
    ("/certificates", Role::Viewer),
    ("/audit", Role::Viewer),
    ("/users", Role::Admin),
    ("/api/v1/overview", Role::Viewer),
    ("/api/v1/events", Role::Viewer),
    ("/api/v1/devices", Role::Viewer),
    ("/api/v1/devices/ehr", Role::Viewer),
    ("/api/v1/routes", Role::Viewer),
    ("/api/v1/queues", Role::Viewer),
    ("/api/v1/certificates", Role::Viewer),
    ("/api/v1/audit", Role::Viewer),
    ("/api/v1/users", Role::Admin),
    ("/api/v1/openapi.json", Role::Viewer),
    ("/api/v1/session", Role::Viewer),
];

/// Every action: (path, body, least role that may do it).
const ACTIONS: &[(&str, &str, Role)] = &[
    ("/api/v1/reload", "{}", Role::Operator),
    (
        "/api/v1/queues/queued/redrive",
        r#"{"all": true}"#,
        Role::Operator,
    ),
    (
        "/api/v1/routes/orders/enforcement",
        r#"{"mode": "enforce"}"#,
        Role::Operator,
    ),
    ("/api/v1/audit/verify", "{}", Role::Operator),
    ("/api/v1/devices/ehr/enrol", "{}", Role::Admin),
    ("/api/v1/devices/ehr/revoke", "{}", Role::Admin),
    (
        "/api/v1/users",
        r#"{"name": "newbie", "role": "viewer", "password": "another long password"}"#,
        Role::Admin,
    ),
    ("/api/v1/users/vic/disable", "{}", Role::Admin),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_session_everything_is_401() {
    let w = world();
    for (path, _) in READS {
        let r = w.get(path, None).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "GET {path}");
        let r = w.get(path, Some("0000forged")).await;
        assert_eq!(
            r.status(),
            StatusCode::UNAUTHORIZED,
            "GET {path} with a forged cookie"
        );
    }
    for (path, json, _) in ACTIONS {
        let r = w.post_json(path, None, Some("x"), json).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "POST {path}");
    }
    assert_eq!(
        w.post_json("/logout", None, None, "{}").await.status(),
        StatusCode::UNAUTHORIZED
    );
    // A page answers 401 with the login form, an API resource with JSON.
    let page = body(w.get("/", None).await).await;
    assert!(page.contains("action=\"/login\""), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_may_do_what_its_role_allows_and_nothing_more() {
    // The CA exists, so enrol and revoke can succeed for an admin.
    let w = world();
    wardgate_tls::Ca::init(&w.site.v.data_dir, "test CA").expect("ca");
    for role in [Role::Viewer, Role::Operator, Role::Admin] {
        let user = match role {
            Role::Viewer => "vic",
            Role::Operator => "otto",
            Role::Admin => "ada",
        };
        let (cookie, csrf) = w.session(user).await;
        for (path, least) in READS {
            let s = w.get(path, Some(&cookie)).await.status();
            if role >= *least {
                assert_eq!(s, StatusCode::OK, "{user} GET {path}");
            } else {
                assert_eq!(s, StatusCode::FORBIDDEN, "{user} GET {path}");
            }
        }
        for (path, json, least) in ACTIONS {
            // Disabling vic would end the viewer's own session mid-matrix: vic
            // is the last to be disabled (admin's turn comes last).
            let s = w
                .post_json(path, Some(&cookie), Some(&csrf), json)
                .await
                .status();
            if role >= *least {
                assert!(s.is_success(), "{user} POST {path}: {s}");
            } else {
                assert_eq!(s, StatusCode::FORBIDDEN, "{user} POST {path}");
            }
        }
    }
    // Every allowed action is in the chain with who did it and from where.
    let recs = w.records();
    for op in [
        "reload",
        "redrive",
        "enforcement",
        "audit-verify",
        "enrol",
        "revoke",
        "user-add",
        "user-disable",
    ] {
        let r = recs
            .iter()
            .find(|r| r["wardgate"]["operation"] == op && r["event"]["action"] == "changed")
            .unwrap_or_else(|| panic!("no record of {op}"));
        assert!(r["user"]["name"].is_string(), "{r}");
        assert_eq!(r["source"]["ip"], "127.0.0.9", "{r}");
    }
    // Each refusal is recorded too: who tried what.
    let denied = recs
        .iter()
        .filter(|r| r["wardgate"]["operation"] == "denied")
        .count();
    // The viewer: 4 operator and 4 admin actions and the two account
    // reads; the operator: 4 admin actions and the two account reads.
    assert_eq!(denied, 8 + 2 + 4 + 2, "refusals recorded");
    // Forbidden attempts changed nothing: the only re-drive request is the operator's and the admin's.
    let reqs = std::fs::read_dir(w.site.v.data_dir.join("queue/queued/requests"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(reqs, 2);
    assert!(w.site.reloads.load(std::sync::atomic::Ordering::Relaxed) >= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_change_needs_the_sessions_csrf_token_and_the_same_origin() {
    let w = world();
    let (cookie, csrf) = w.session("otto").await;
    let (_, other_csrf) = w.session("ada").await;
    let path = "/api/v1/reload";
    assert_eq!(
        w.post_json(path, Some(&cookie), None, "{}").await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        w.post_json(path, Some(&cookie), Some("00"), "{}")
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    // Another session's token is not this one's.
    assert_eq!(
        w.post_json(path, Some(&cookie), Some(&other_csrf), "{}")
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    // A form without the field.
    let mut req = HttpRequest::post(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, format!("{COOKIE}={cookie}"))
        .body(Body::from("back=/routes"))
        .expect("request");
    req.extensions_mut().insert(peer(9));
    assert_eq!(w.send(req).await.status(), StatusCode::FORBIDDEN);
    // From another origin, even with the token.
    let mut req = HttpRequest::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::COOKIE, format!("{COOKIE}={cookie}"))
        .header(header::HOST, "gw.example:8443")
        .header(header::ORIGIN, "https://evil.example")
        .header("x-csrf-token", &csrf)
        .body(Body::from("{}"))
        .expect("request");
    req.extensions_mut().insert(peer(9));
    assert_eq!(w.send(req).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(w.site.reloads.load(std::sync::atomic::Ordering::Relaxed), 0);
    // `Origin: null` (what a browser sends under no-referrer) passes only when
    // the browser also says the request is same-origin; the token is still needed.
    for (site, token, want) in [
        ("cross-site", csrf.as_str(), StatusCode::FORBIDDEN),
        ("", csrf.as_str(), StatusCode::FORBIDDEN),
        ("same-origin", "00", StatusCode::FORBIDDEN),
        ("same-origin", csrf.as_str(), StatusCode::OK),
    ] {
        let mut b = HttpRequest::post(path)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::COOKIE, format!("{COOKIE}={cookie}"))
            .header(header::HOST, "gw.example:8443")
            .header(header::ORIGIN, "null")
            .header("x-csrf-token", token);
        if !site.is_empty() {
            b = b.header("sec-fetch-site", site);
        }
        let mut req = b.body(Body::from("{}")).expect("request");
        req.extensions_mut().insert(peer(9));
        assert_eq!(
            w.send(req).await.status(),
            want,
            "Origin: null, Sec-Fetch-Site {site:?}"
        );
    }
    assert_eq!(w.site.reloads.load(std::sync::atomic::Ordering::Relaxed), 1);
    // The form with its token goes back to the page it came from (a local one only).
    let mut req = HttpRequest::post(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, format!("{COOKIE}={cookie}"))
        .header(header::HOST, "gw.example:8443")
        .header(header::ORIGIN, "https://gw.example:8443")
        .body(Body::from(format!("csrf={csrf}&back=//evil.example/x")))
        .expect("request");
    req.extensions_mut().insert(peer(9));
    let res = w.send(req).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[header::LOCATION], "/");
    assert_eq!(w.site.reloads.load(std::sync::atomic::Ordering::Relaxed), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_id_from_before_login_is_never_the_session() {
    let w = world();
    let (before, _) = w.session("vic").await;
    // Log in again presenting the old cookie: a new id, and the old one is gone.
    let res = w.login_presenting("vic", &before).await;
    let after = set_cookie(&res).expect("cookie");
    assert_ne!(after, before);
    assert_eq!(
        w.get("/", Some(&before)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(w.get("/", Some(&after)).await.status(), StatusCode::OK);
    // A cookie the attacker chose is not adopted either.
    let res = w.login_presenting("vic", "attackerchosen").await;
    assert_ne!(set_cookie(&res).as_deref(), Some("attackerchosen"));
    assert_eq!(
        w.get("/", Some("attackerchosen")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // Logout ends it.
    let html = body(w.get("/routes", Some(&after)).await).await;
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("csrf");
    assert!(w
        .post_json("/logout", Some(&after), Some(csrf), "{}")
        .await
        .status()
        .is_success());
    assert_eq!(
        w.get("/", Some(&after)).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_lock_the_account_even_against_the_right_one() {
    let w = world();
    // login_max_failures = 3 in this site; each attempt from its own address.
    for i in 0..3 {
        assert_eq!(
            w.login_from("otto", "wrong password!!", 20 + i)
                .await
                .status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        w.login_from("otto", PASSWORD, 30).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another account is not locked.
    assert_eq!(
        w.login_from("vic", PASSWORD, 31).await.status(),
        StatusCode::SEE_OTHER
    );
    // An unknown name is answered as a wrong password, and locks the same way.
    assert_eq!(
        w.login_from("nobody", PASSWORD, 32).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let recs = w.records();
    let locked: Vec<_> = recs
        .iter()
        .filter(|r| r["rule"]["id"] == "WG-CONSOLE-001")
        .collect();
    assert_eq!(locked.len(), 1, "one alert for the lock-out");
    assert_eq!(locked[0]["user"]["name"], "otto");
    let failed = recs
        .iter()
        .filter(|r| r["event"]["action"] == "login-failed")
        .count();
    assert_eq!(failed, 5, "3 wrong, 1 locked, 1 unknown");
    assert!(recs
        .iter()
        .any(|r| r["event"]["action"] == "logged-in" && r["user"]["name"] == "vic"));
    // Every login record says where it came from.
    assert!(recs
        .iter()
        .filter(|r| r["event"]["category"][0] == "authentication")
        .all(|r| r["source"]["ip"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("127.0.0."))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_account_or_a_new_password_ends_the_session() {
    let w = world();
    let (cookie, _) = w.session("vic").await;
    assert_eq!(w.get("/", Some(&cookie)).await.status(), StatusCode::OK);
    w.app
        .users
        .passwd("vic", "a brand new password")
        .expect("passwd");
    assert_eq!(
        w.get("/", Some(&cookie)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let (cookie, _) = {
        let res = w.login_from("vic", "a brand new password", 9).await;
        (set_cookie(&res).expect("cookie"), ())
    };
    w.app.users.set_disabled("vic", true).expect("disable");
    assert_eq!(
        w.get("/", Some(&cookie)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        w.login_from("vic", "a brand new password", 9)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    // Both changes were made outside the console, and both are in the chain.
    let recs = w.records();
    let changes: Vec<String> = recs
        .iter()
        .filter(|r| r["wardgate"]["operation"] == "user-change")
        .map(|r| r["event"]["reason"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        changes
            .iter()
            .any(|c| c.contains("\"vic\": password changed")),
        "{changes:?}"
    );
    assert!(
        changes.iter().any(|c| c.contains("\"vic\" disabled")),
        "{changes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_path_in_the_docs_is_in_the_openapi_description_and_back() {
    let doc = serde_json::to_value(openapi_doc()).expect("json");
    let mut generated: Vec<String> = doc["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .cloned()
        .collect();
    generated.sort();
    let text = include_str!("../../../../docs/console.md");
    let mut documented: Vec<String> = text
        .split('`')
        .filter_map(|s| s.split_whitespace().find(|w| w.starts_with("/api/v1/")))
        .map(|p| p.trim_end_matches(['`', ',', '.']).to_owned())
        .filter(|p| p != "/api/v1/openapi.json")
        .collect();
    documented.sort();
    documented.dedup();
    assert_eq!(generated, documented);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_the_security_headers() {
    let w = world();
    for res in [
        w.get("/", None).await,
        w.get("/assets/console.css", None).await,
        w.get("/nope", None).await,
    ] {
        let h = res.headers();
        let csp = h["content-security-policy"].to_str().expect("ascii");
        assert!(
            csp.contains("default-src 'none'")
                && csp.contains("script-src 'self'")
                && !csp.contains("unsafe"),
            "{csp}"
        );
        assert!(h.contains_key("strict-transport-security"));
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "no-referrer");
    }
    let _ = &w.dir;
}

#[test]
fn a_form_goes_back_only_to_a_page_of_the_console() {
    for ok in ["/routes", "/devices/ehr", "/events?route=orders&before=5"] {
        assert_eq!(safe_back(ok), ok);
    }
    for bad in [
        "//evil.example/x",
        "/\t/evil.example",
        "/\n/evil.example",
        "/\\evil.example",
        "\\/evil.example",
        "https://evil.example/",
        "javascript:alert(1)",
        "",
        "routes",
        "/ /evil",
    ] {
        assert_eq!(safe_back(bad), "/", "{bad:?}");
    }
}

/// Waits (bounded) until `/api/v1/devices` satisfies `done`; the indexer
/// runs on its own thread as a background job.
async fn devices_when(
    w: &World,
    cookie: &str,
    done: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let res = w.get("/api/v1/devices", Some(cookie)).await;
        assert_eq!(res.status(), StatusCode::OK);
        let v: Vec<serde_json::Value> = serde_json::from_str(&body(res).await).expect("json");
        if done(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "the indexer did not index the events in time: {v:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_devices_software_last_seen_and_an_unenrolled_sender_show_once_indexed() {
    use wardgate_event::event::{DeviceSeen, DicomFacts, Hl7Facts, Record};
    let w = world();
    let (cookie, _) = w.session("vic").await;
    let h = w.recorder.as_ref().expect("recorder").handle();
    let now = || Clock::now().rfc3339().to_owned();
    // The enrolled EHR: a DICOM association with its software, an HL7 message.
    let mut e = Event::new(
        now(),
        Action::Allowed,
        "association".into(),
        Stage::Connection,
    )
    .with_flow(
        "127.0.0.2:40001".parse().expect("addr"),
        "127.0.0.3:104".parse().expect("addr"),
        "dicom",
    );
    e.wardgate.source_device = Some("ehr".into());
    e.wardgate.route = Some("orders".into());
    e.wardgate.dicom = Some(DicomFacts {
        calling_ae: "EHR_AE".into(),
        implementation_class_uid: "1.2.826.0.1.3680043.9.7".into(),
        implementation_version: "EHRSW_4_2".into(),
        ..DicomFacts::default()
    });
    h.record(Record::from(e)).expect("record");
    let mut e = Event::new(now(), Action::Allowed, "message".into(), Stage::Message).with_flow(
        "127.0.0.2:40002".parse().expect("addr"),
        "127.0.0.3:2575".parse().expect("addr"),
        "hl7-mllp",
    );
    e.wardgate.source_device = Some("ehr".into());
    e.wardgate.hl7 = Some(Hl7Facts {
        message_type: "ADT^A01".into(),
        sending_application: "EPICADT".into(),
        ..Hl7Facts::default()
    });
    h.record(Record::from(e)).expect("record");
    // A sender no device enrols.
    let mut e = Event::new(
        now(),
        Action::Blocked,
        "unknown sender".into(),
        Stage::Connection,
    )
    .with_flow(
        "127.0.0.9:40003".parse().expect("addr"),
        "127.0.0.3:104".parse().expect("addr"),
        "dicom",
    );
    e.wardgate.dicom = Some(DicomFacts {
        calling_ae: "ROGUE_AE".into(),
        implementation_version: "ROGUE_SW".into(),
        ..DicomFacts::default()
    });
    h.record(Record::from(e)).expect("record");
    // What passive analysis saw of the pump server, at its enrolled address.
    let mut e = Event::new(now(), Action::Observed, "seen".into(), Stage::Connection);
    e.event.category = Category::Host;
    e.wardgate.inventory = Some(DeviceSeen {
        address: "127.0.0.3".into(),
        seen: true,
        mqtt_client_ids: ["pumps-mqtt-7".to_owned()].into(),
        ..DeviceSeen::default()
    });
    h.record(Record::from(e)).expect("record");
    h.sync().expect("sync");

    let list = devices_when(&w, &cookie, |v| {
        let has = |id: &str, what: &str| {
            v.iter()
                .any(|d| d["id"] == id && d.to_string().contains(what))
        };
        has("ehr", "EPICADT") && has("ip:127.0.0.9", "ROGUE_SW") && has("pumps", "pumps-mqtt-7")
    })
    .await;
    let ehr = list.iter().find(|d| d["id"] == "ehr").expect("ehr");
    assert_eq!(ehr["enrolled"], true);
    assert!(ehr["last_seen"].is_string() && ehr["first_seen"].is_string());
    let software: Vec<&str> = ehr["software"]
        .as_array()
        .expect("software")
        .iter()
        .filter_map(|s| s["value"].as_str())
        .collect();
    for s in ["1.2.826.0.1.3680043.9.7", "EHRSW_4_2", "EPICADT"] {
        assert!(software.contains(&s), "{software:?}");
    }
    assert_eq!(ehr["seen_addresses"], serde_json::json!(["127.0.0.2"]));
    let pumps = list.iter().find(|d| d["id"] == "pumps").expect("pumps");
    assert_eq!(
        pumps["mqtt_client_ids"],
        serde_json::json!(["pumps-mqtt-7"])
    );
    let rogue = list
        .iter()
        .find(|d| d["id"] == "ip:127.0.0.9")
        .expect("the unenrolled sender");
    assert_eq!(rogue["enrolled"], false);
    assert_eq!(rogue["seen_ae_titles"], serde_json::json!(["ROGUE_AE"]));
    assert_eq!(
        rogue["events_seen"],
        serde_json::json!([{"action": "blocked", "count": 1}])
    );
    // The console's own login from 127.0.0.9 is an operator, not a device:
    // one row for that address, from its DICOM association only.
    assert_eq!(list.iter().filter(|d| d["enrolled"] == false).count(), 1);

    // The device's page and resource.
    let res = w.get("/api/v1/devices/ehr", Some(&cookie)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let one: serde_json::Value = serde_json::from_str(&body(res).await).expect("json");
    assert_eq!(one["device"]["last_seen"], ehr["last_seen"]);
    let page = body(w.get("/devices/ehr", Some(&cookie)).await).await;
    for s in [
        "EHRSW_4_2",
        "EPICADT",
        "Last seen",
        ehr["last_seen"].as_str().expect("time"),
    ] {
        assert!(page.contains(s), "{s} in the page");
    }
    // The list page shows the unenrolled sender apart, linked.
    let page = body(w.get("/devices", Some(&cookie)).await).await;
    let (_, unenrolled) = page.split_once("Seen but not enrolled").expect("section");
    assert!(
        unenrolled.contains("href=\"/devices/ip:127.0.0.9\"") && unenrolled.contains("ROGUE_SW")
    );
    // An unenrolled device's page and resource, by its key.
    let res = w.get("/devices/ip:127.0.0.9", Some(&cookie)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let page = body(res).await;
    assert!(page.contains("Not enrolled") && page.contains("ROGUE_AE"));
    assert!(
        !page.contains("/revoke"),
        "no enrolment actions on an address"
    );
    let res = w.get("/api/v1/devices/ip:127.0.0.9", Some(&cookie)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let one: serde_json::Value = serde_json::from_str(&body(res).await).expect("json");
    assert_eq!(one["device"]["enrolled"], false);
    let res = w.get("/api/v1/devices/ip:127.0.0.99", Some(&cookie)).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reidentification_is_for_patient_data_accounts_and_every_use_is_recorded() {
    let w = world();
    let body_of = |p: &str, r: &str| format!(r#"{{"pseudonym": "{p}", "reason": "{r}"}}"#);
    // An operator without --patient-data is refused, and that is recorded.
    let (cookie, csrf) = w.session("otto").await;
    let res = w
        .post_json(
            "/api/v1/privacy/reidentify",
            Some(&cookie),
            Some(&csrf),
            &body_of("WG0123456789ABCD", "ticket 42"),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // An account with it gets the identifier, with a reason, never without one.
    let (cookie, csrf) = w.session("ada").await;
    let res = w
        .post_json(
            "/api/v1/privacy/reidentify",
            Some(&cookie),
            Some(&csrf),
            &body_of("WG0123456789ABCD", " "),
        )
        .await;
    assert_eq!(
        res.status(),
        StatusCode::BAD_REQUEST,
        "a reason is required"
    );
    let res = w
        .post_json(
            "/api/v1/privacy/reidentify",
            Some(&cookie),
            Some(&csrf),
            &body_of("PAT-0042", "ticket 42"),
        )
        .await;
    assert_eq!(
        res.status(),
        StatusCode::BAD_REQUEST,
        "only pseudonyms are re-identified"
    );
    let res = w
        .post_json(
            "/api/v1/privacy/reidentify",
            Some(&cookie),
            Some(&csrf),
            &body_of("WG0123456789ABCD", "ticket 42"),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&body(res).await).expect("json");
    assert_eq!(v["patient_id"], "PAT-0042");
    let res = w
        .post_json(
            "/api/v1/privacy/reidentify",
            Some(&cookie),
            Some(&csrf),
            &body_of("WGZZZZZZZZZZZZZZ", "ticket 43"),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let records = w.records();
    let uses: Vec<&serde_json::Value> = records
        .iter()
        .filter(|e| {
            let op = e["wardgate"]["operation"].as_str().unwrap_or_default();
            op == "reidentify"
                || (op == "denied"
                    && e["event"]["reason"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("re-identification"))
        })
        .collect();
    assert_eq!(uses.len(), 3, "{uses:?}");
    for u in &uses {
        let text = u.to_string();
        assert!(
            !text.contains("PAT-0042"),
            "the record never holds the identifier: {text}"
        );
    }
    assert!(uses.iter().any(|u| u["event"]["reason"]
        .as_str()
        .unwrap_or_default()
        .contains("reason: ticket 42")));
}
