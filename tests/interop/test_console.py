"""Issue #20: the web console and HTTPS admin API (contract: docs/console.md),
against a real `wardgate serve` between real HL7 peers.

Clients: Debian's Chromium driven by Playwright for Python (the system browser,
never a downloaded one), the real `curl` binary, and Python's `http.client`
over `ssl` verifying the console's certificate against wardgate's own CA.
Peers: the `hl7` package's MLLP client (the EHR, 127.0.0.2) and MLLP servers
(the pump server, 127.0.0.3): one that acknowledges everything, one that
answers AR for chosen control ids so a store-and-forward route parks them.

One gateway serves the whole module (`console_site`): three plain HL7 routes,
one of them store-and-forward, one TLS route whose sender connects with the
client certificate wardgate's CA issued it, and the console on a free
127.0.0.1 port with a listener certificate from `wardgate ca issue-listener`.
Accounts are made with `wardgate user add --password-stdin`. Logins come from
distinct loopback source addresses (127.0.1.x and up), so the per-address
login limit (10 a minute) is exercised only where a test means to.

The browser scenario runs last (it revokes the EHR's certificate). Screenshots
of every view land in target/console-screenshots/.
"""
import http.client
import itertools
import json
import re
import socket
import ssl
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest

from conftest import CI, ROOT, SITE, Gateway, Upstream, free_port, require_module, require_tool, wait_port, wardgate_bin
from test_hl7_mllp import EB, SB, heparin, msa, order, send, unframe
from test_store_forward import DedupUpstream, SourceBoundClient, ack_of, oru, queue_json, wait_for

COOKIE = "__Host-wardgate"
PATIENT = "PX98765Q"  # a patient identifier that appears nowhere else
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = ROOT / "target" / "console-screenshots"

# --- The site ------------------------------------------------------------------
#
# conftest's interop site (the EHR, the pump server, `infusion-orders` with the
# adult-icu drug library whose heparin hard limit blocks 2050 U/h), plus a spare
# device for the enrol/revoke actions and three more routes to the same pump
# server host: `sf-orders` (store-and-forward, its own upstream that parks what
# it refuses), `tls-orders` (MLLP over TLS on the listening side, the listener
# certificate from the built-in CA, identity from the client certificate) and
# `spare-route` (the enforcement switch's target, so it never weakens the route
# the other tests rely on).

EXTRA_DEVICES = """[[device]]
id = "spare-pump"
kind = "infusion-pump-server"
addresses = ["127.0.0.12"]

[[route]]
id = "infusion-orders\""""

EXTRA_ROUTES = """
[[route]]
id = "sf-orders"
protocol = "hl7-mllp"
listen = "127.0.0.1:{sf_port}"
upstream = "127.0.0.3:{sf_upstream_port}"
senders = ["ehr"]
messages = ["ORU^R01"]
delivery = "store-and-forward"

[[route]]
id = "tls-orders"
protocol = "hl7-mllp"
listen = "127.0.0.1:{tls_port}"
upstream = "127.0.0.3:{upstream_port}"
senders = ["ehr"]
messages = ["ORU^R01"]

[route.listen_tls]
cert = "{site_dir}/tls/hl7-tls.crt"
key = "{site_dir}/tls/hl7-tls.key"

[[route]]
id = "spare-route"
protocol = "hl7-mllp"
listen = "127.0.0.1:{spare_port}"
upstream = "127.0.0.3:{upstream_port}"
senders = ["ehr"]
messages = ["ORU^R01"]
enforcement = "enforce"

[[drug_library]]
"""

CONSOLE_SECTION = """
[console]
listen = "127.0.0.1:{console_port}"
cert = "tls/console.crt"
key = "tls/console.key"
login_max_failures = 3
lockout_secs = 8
"""

BASE_SITE = (SITE.replace('[[route]]\nid = "infusion-orders"', EXTRA_DEVICES, 1)
             .replace("\n[[drug_library]]\n", EXTRA_ROUTES, 1))
assert 'id = "spare-pump"' in BASE_SITE and 'id = "sf-orders"' in BASE_SITE
CONSOLE_SITE = BASE_SITE + CONSOLE_SECTION

# Accounts: name -> (role, --patient-data, password).
USERS = {
    "vera": ("viewer", False, "vera-viewer-pass-1"),
    "otto": ("operator", False, "otto-operator-pass-1"),
    "ada": ("admin", False, "ada-admin-password-1"),
    "pat": ("viewer", True, "pat-patient-data-pw1"),
    "locky": ("viewer", False, "locky-locked-pass-1"),
    "fixa": ("viewer", False, "fixa-fixation-pass-1"),
}
ROLE_USER = {"viewer": "vera", "operator": "otto", "admin": "ada"}

# Every page and API resource docs/console.md names; {seq}, {id} are filled in.
PAGES = ["/", "/events", "/events/{seq}", "/devices", "/devices/{id}", "/routes", "/queues",
         "/certificates", "/audit", "/users"]
API_GETS = ["/api/v1/overview", "/api/v1/events", "/api/v1/events/{seq}", "/api/v1/devices",
            "/api/v1/devices/{id}", "/api/v1/routes", "/api/v1/queues", "/api/v1/certificates",
            "/api/v1/audit", "/api/v1/users"]
STREAM = "/api/v1/events/stream"
OPENAPI = "/api/v1/openapi.json"
# (path, JSON body, least role), in an order where each allowed call can succeed.
ACTIONS = [
    ("/api/v1/queues/sf-orders/redrive", {"all": True}, "operator"),
    ("/api/v1/routes/spare-route/enforcement", {"mode": "monitor"}, "operator"),
    ("/api/v1/reload", {}, "operator"),
    ("/api/v1/audit/verify", {}, "operator"),
    ("/api/v1/devices/spare-pump/enrol", {}, "admin"),
    ("/api/v1/devices/spare-pump/revoke", {}, "admin"),
    ("/api/v1/users", {"name": "matrix-new", "role": "viewer", "password": "matrix-new-password-1",
                       "patient_data": False}, "admin"),
    ("/api/v1/users/matrix-new/disable", {}, "admin"),
]
RANK = {"viewer": 0, "operator": 1, "admin": 2}

_sources = itertools.count(1)


def fresh_source():
    """A loopback source address no other login used (127.0.1.1, 127.0.1.2, ...)."""
    n = next(_sources)
    return f"127.0.{1 + n // 250}.{1 + n % 250}"


def wg(cfg, *args, input=None):
    r = subprocess.run([wardgate_bin(), *args, "--config", str(cfg)], capture_output=True, text=True,
                       timeout=60, input=input)
    assert r.returncode == 0, f"wardgate {' '.join(args)}: {r.stderr}"
    return r


class ConsoleSite:
    def __init__(self, root, upstream, sf_upstream, refuse):
        self.dir = Path(root)
        self.upstream, self.sf_upstream, self.refuse = upstream, sf_upstream, refuse
        self.console_port = free_port()
        self.ports = dict(sf_port=free_port(), tls_port=free_port(), spare_port=free_port(),
                          sf_upstream_port=sf_upstream.port, console_port=self.console_port,
                          site_dir=str(self.dir))
        self.ca = self.dir / "data" / "tls" / "ca.crt"
        self.certs = self.dir / "certs"
        # The CA, the EHR's client certificate and the listeners' certificates,
        # made with a copy of the site without [console] (whose files do not exist yet).
        ca_cfg = self.dir / "ca.toml"
        ca_cfg.write_text(BASE_SITE.format(data_dir=self.dir / "data", listen_port=1, upstream_port=1,
                                           max_frame=65536, **self.ports))
        wg(ca_cfg, "ca", "init", "--name", "St Elsewhere")
        wg(ca_cfg, "device", "enroll", "ehr", "--out", str(self.certs))
        wg(ca_cfg, "ca", "issue-listener", "console", "--ip", "127.0.0.1", "--dns", "localhost",
           "--out", str(self.dir / "tls"))
        wg(ca_cfg, "ca", "issue-listener", "hl7-tls", "--ip", "127.0.0.1", "--out", str(self.dir / "tls"))
        self.gw = Gateway(self.dir, upstream.port, site=CONSOLE_SITE, **self.ports)
        try:
            try:
                wait_port("127.0.0.1", self.console_port)
            except TimeoutError:
                raise AssertionError(f"[console] listen = 127.0.0.1:{self.console_port}: nothing listens there "
                                     f"(docs/console.md); wardgate's log:\n{self.gw.log_text()[-2000:]}") from None
            # Accounts, made with the real CLI against the running gateway's config.
            for name, (role, patient, pw) in USERS.items():
                self.add_user(name, role, pw, patient)
        except BaseException:
            self.gw.stop()
            raise
        self.base = f"https://127.0.0.1:{self.console_port}"

    def add_user(self, name, role, password, patient_data=False):
        args = ["user", "add", name, "--role", role, "--password-stdin"]
        if patient_data:
            args.append("--patient-data")
        wg(self.gw.config, *args, input=password + "\n")

    def ssl_context(self):
        return ssl.create_default_context(cafile=str(self.ca))

    def password(self, name):
        return USERS[name][2]


@pytest.fixture(scope="module")
def console_site(tmp_path_factory):
    up = Upstream()
    refuse = set()
    sf_up = DedupUpstream(free_port("127.0.0.3"), answer=lambda cid: "AR" if cid in refuse else "AA")
    site = None
    try:
        site = ConsoleSite(tmp_path_factory.mktemp("console"), up, sf_up, refuse)
        # One blocked order before any test: events for the event pages, and a
        # patient identifier for the tests that must not see it.
        reply = send(site.gw, order("SEED-BLOCK", heparin(41)).replace("4711", PATIENT))
        assert msa(reply)[0] == "AR", reply
        deadline = time.monotonic() + 10
        while True:
            blocked = [e for e in site.gw.events() if e.get("wardgate", {}).get("hl7", {}).get("control_id")
                       == "SEED-BLOCK" and e["event"]["action"] == "blocked"]
            if blocked or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert blocked, "the seed order was not recorded as blocked"
        site.seed_seq = blocked[0]["event"]["sequence"]
        yield site
    finally:
        if site is not None:
            site.gw.stop()
        sf_up.stop()
        up.stop()


# --- An HTTPS client that verifies the console against wardgate's CA --------------

class Resp:
    def __init__(self, r):
        self.status = r.status
        self.headers = r.headers
        self.body = r.read()
        self.text = self.body.decode("utf-8", "replace")

    def header(self, name):
        return self.headers.get(name)

    def set_cookies(self):
        """{name: (value, {attribute lower-cased: value or True})} of every Set-Cookie."""
        out = {}
        for line in self.headers.get_all("Set-Cookie") or []:
            parts = [p.strip() for p in line.split(";")]
            name, _, value = parts[0].partition("=")
            attrs = {}
            for p in parts[1:]:
                k, eq, v = p.partition("=")
                attrs[k.strip().lower()] = v.strip() if eq else True
            out[name.strip()] = (value.strip(), attrs)
        return out

    def json(self):
        return json.loads(self.body)


def request(site, method, path, body=None, headers=None, cookie=None, source=None, stream=False):
    conn = http.client.HTTPSConnection("127.0.0.1", site.console_port, context=site.ssl_context(), timeout=20,
                                       source_address=(source or "127.0.0.1", 0))
    h = dict(headers or {})
    if cookie:
        h["Cookie"] = f"{COOKIE}={cookie}"
    try:
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        if stream:
            # A live tail never ends: the status and headers are the answer.
            class Head:
                pass
            out = Head()
            out.status, out.headers = r.status, r.headers
            return out
        return Resp(r)
    finally:
        conn.close()


CSRF_INPUT = re.compile(r"<input\b[^>]*>", re.I)


def csrf_of(html):
    """The session's CSRF token as the pages carry it: a form field named `csrf`."""
    for tag in CSRF_INPUT.findall(html):
        if re.search(r"""name\s*=\s*["']?csrf["'\s>]""", tag):
            m = re.search(r"""value\s*=\s*["']([^"']+)["']""", tag)
            if m:
                return m.group(1)
    return None


class Session:
    """A logged-in console session: its cookie, and its CSRF token read from a page's form."""

    def __init__(self, site, name, password=None, source=None):
        self.site = site
        self.name = name
        self.source = source or fresh_source()
        r = login(site, name, password or site.password(name), source=self.source)
        assert r.status == 303, f"login as {name}: {r.status} {r.text[:300]}"
        self.cookie = r.set_cookies()[COOKIE][0]
        page = self.get("/")
        assert page.status == 200, f"/ as {name}: {page.status}"
        self.csrf = csrf_of(page.text)
        assert self.csrf, "no form field `csrf` on / (the logout form needs one)"

    def get(self, path, **kw):
        return request(self.site, "GET", path, cookie=self.cookie, source=self.source, **kw)

    def post(self, path, obj=None, csrf=True, origin=None, extra=None):
        h = {"Content-Type": "application/json", **(extra or {})}
        if csrf is True:
            h["X-CSRF-Token"] = self.csrf
        elif csrf:
            h["X-CSRF-Token"] = csrf
        if origin:
            h["Origin"] = origin
        return request(self.site, "POST", path, body=json.dumps(obj if obj is not None else {}), headers=h,
                       cookie=self.cookie, source=self.source)


def login(site, name, password, cookie=None, source=None):
    body = urllib.parse.urlencode({"username": name, "password": password})
    return request(site, "POST", "/login", body=body, headers={"Content-Type": "application/x-www-form-urlencoded"},
                   cookie=cookie, source=source or fresh_source())


def spare_mode(site):
    """The `enforcement` key of spare-route's table in the configuration file."""
    m = re.search(r'^id = "spare-route"\n(?:(?!\[).*\n)*?enforcement\s*=\s*"(\w+)"', site.gw.config.read_text(), re.M)
    return m and m.group(1)


def open_stream(site, path, cookie, source):
    """A live tail left open: the connection and its response (headers read)."""
    conn = http.client.HTTPSConnection("127.0.0.1", site.console_port, context=site.ssl_context(), timeout=20,
                                       source_address=(source, 0))
    conn.request("GET", path, headers={"Cookie": f"{COOKIE}={cookie}", "Accept": "text/event-stream"})
    return conn, conn.getresponse()


def fill(path, site):
    return path.replace("{seq}", str(site.seed_seq)).replace("{id}", "ehr")


def events_where(site, pred, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        evs = [e for e in site.gw.events() if pred(e)]
        if evs or time.monotonic() > deadline:
            return evs
        time.sleep(0.1)


# --- The certificate -------------------------------------------------------------

def test_the_console_certificate_chains_to_wardgates_ca(console_site):
    """What lets the browser tests ignore certificate errors: Python's `ssl`,
    trusting only wardgate's CA, verifies the console's chain and its IP name;
    the system's public trust store does not."""
    raw = socket.create_connection(("127.0.0.1", console_site.console_port), timeout=10)
    with console_site.ssl_context().wrap_socket(raw, server_hostname="127.0.0.1") as s:
        assert s.version() in ("TLSv1.2", "TLSv1.3")
        cert = s.getpeercert()
        assert ("IP Address", "127.0.0.1") in cert["subjectAltName"], cert
    raw = socket.create_connection(("127.0.0.1", console_site.console_port), timeout=10)
    with pytest.raises(ssl.SSLCertVerificationError):
        ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1").close()
    raw.close()


# --- Without a session: 401 everywhere, from the real curl -------------------------

def test_curl_without_a_session_gets_401_on_every_page_and_api_path(console_site):
    curl = require_tool("curl")
    site = console_site

    def run(method, path):
        args = [curl, "-sS", "--cacert", str(site.ca), "-X", method, "-o", "-", "-w", "\n%{http_code}",
                "--max-time", "10"]
        if method == "POST":
            args += ["-H", "Content-Type: application/json", "--data", "{}"]
        r = subprocess.run([*args, site.base + path], capture_output=True, text=True, timeout=30)
        assert r.returncode in (0, 28), r.stderr  # 28: the live tail's --max-time
        body, _, code = r.stdout.rpartition("\n")
        return int(code), body

    wrong = {}
    for path in PAGES:
        code, body = run("GET", fill(path, site))
        if code != 401:
            wrong[("GET", path)] = code
        elif not re.search(r"""name\s*=\s*["']?password""", body):
            wrong[("GET", path)] = "401 without the login form"
    for path in [*API_GETS, OPENAPI]:
        code, _ = run("GET", fill(path, site))
        if code != 401:
            wrong[("GET", path)] = code
    code, _ = run("GET", STREAM)
    if code != 401:
        wrong[("GET", STREAM)] = code
    for path, _, _ in ACTIONS:
        code, _ = run("POST", path)
        if code != 401:
            wrong[("POST", path)] = code
    assert not wrong, f"answers other than 401 without a session: {wrong}"
    # The control: the login form itself is served.
    code, body = run("GET", "/login")
    assert code == 200 and re.search(r"""name\s*=\s*["']?username""", body), code


# --- Roles ---------------------------------------------------------------------------

ADMIN_ONLY = {"/users", "/api/v1/users"}


def test_every_role_reads_every_page_and_resource(console_site):
    """Every role reads every view and resource, but the accounts, which only
    an admin reads (docs/console.md): a viewer or operator gets 403 there."""
    site = console_site
    for role, name in ROLE_USER.items():
        s = Session(site, name)
        unreadable = {}
        for path in [*PAGES, *API_GETS, OPENAPI]:
            r = s.get(fill(path, site))
            if path in ADMIN_ONLY and role != "admin":
                if r.status != 403:
                    unreadable[path] = f"{r.status}, expected 403"
                continue
            if r.status != 200:
                unreadable[path] = r.status
            elif path.startswith("/api/"):
                try:
                    r.json()
                except ValueError:
                    unreadable[path] = "not JSON"
        head = s.get(STREAM, stream=True)
        if head.status != 200 or "text/event-stream" not in (head.headers.get("Content-Type") or ""):
            unreadable[STREAM] = (head.status, head.headers.get("Content-Type"))
        assert not unreadable, f"{role} ({name}) could not read: {unreadable}"


def test_role_matrix_of_every_action(console_site):
    """Each role against each action of docs/console.md, through the API with the
    session cookie and the CSRF header: allowed (2xx) from the action's least
    role up, 403 below it."""
    site = console_site
    sessions = {role: Session(site, name) for role, name in ROLE_USER.items()}
    got = {}
    modes = []
    for path, body, least in ACTIONS:
        for role in ("viewer", "operator", "admin"):
            b = dict(body)
            if path.endswith("/enforcement"):
                # Each allowed call switches the spare route the other way.
                b["mode"] = "monitor" if role != "admin" else "enforce"
            r = sessions[role].post(path, b)
            allowed = RANK[role] >= RANK[least]
            ok = 200 <= r.status < 300 if allowed else r.status == 403
            got[(path, role)] = r.status if ok else f"{r.status} (want {'2xx' if allowed else 403}): {r.text[:200]}"
            if path.endswith("/enforcement"):
                # The switch is the configuration file: refused, it is untouched; allowed, it says the new mode.
                modes.append((role, spare_mode(site)))
    wrong = {k: v for k, v in got.items() if isinstance(v, str)}
    assert not wrong, "\n".join(f"{role:8} POST {path}: {v}" for (path, role), v in wrong.items())
    # The allowed calls did what they say, the refused ones nothing.
    assert modes == [("viewer", "enforce"), ("operator", "monitor"), ("admin", "enforce")], modes
    shown = json.loads(subprocess.run([wardgate_bin(), "ca", "show", "--json", "--config", str(site.gw.config)],
                                      capture_output=True, text=True, timeout=60, check=True).stdout)
    assert any(c["device"] == "spare-pump" and c.get("revoked") for c in shown["issued"]), shown["issued"]
    listed = subprocess.run([wardgate_bin(), "user", "list", "--config", str(site.gw.config)],
                            capture_output=True, text=True, timeout=60, check=True).stdout
    assert "matrix-new" in listed, listed
    r = login(site, "matrix-new", "matrix-new-password-1")
    assert r.status != 303 and COOKIE not in r.set_cookies(), "a disabled account logged in"
    # Each action is an audit record naming the account, its roles, its address and the operation.
    # (ada logs in from other addresses in other tests: the changes of this one are counted.)
    ops = {"reload", "redrive", "enforcement", "audit-verify", "enrol", "revoke", "user-add", "user-disable"}
    acts = events_where(site, lambda e: e.get("user", {}).get("name") == "ada"
                        and e["event"]["action"] == "changed"
                        and e.get("source", {}).get("ip") == sessions["admin"].source)
    assert ops <= {e["wardgate"].get("operation") for e in acts}, [e["wardgate"].get("operation") for e in acts]
    assert all("admin" in e["user"].get("roles", []) and e.get("source", {}).get("ip") == sessions["admin"].source
               for e in acts), acts[:2]


def test_user_cli_and_a_disabled_account_loses_its_sessions(console_site):
    site = console_site
    cfg = site.gw.config

    def user(*args, input=None):
        return subprocess.run([wardgate_bin(), "user", *args, "--config", str(cfg)], capture_output=True, text=True,
                              timeout=60, input=input)

    # Passwords have at least 12 characters; names are 1-64 of a-z 0-9 . _ -.
    assert user("add", "dora", "--role", "viewer", "--password-stdin", input="short-pw\n").returncode != 0
    for bad in ("Dora", "do ra", "x" * 65, "../dora"):
        assert user("add", bad, "--role", "viewer", "--password-stdin", input="long-enough-pass-1\n").returncode != 0, bad
    assert user("add", "dora", "--role", "superuser", "--password-stdin", input="long-enough-pass-1\n").returncode != 0
    r = user("add", "dora", "--role", "viewer", "--password-stdin", input="dora-the-viewer-1\n")
    assert r.returncode == 0, r.stderr
    users = site.dir / "data" / "console" / "users.json"
    assert users.stat().st_mode & 0o777 == 0o600
    text = users.read_text()
    assert "dora-the-viewer-1" not in text and "$argon2id$" in text
    listed = user("list").stdout
    assert "dora" in listed and "viewer" in listed, listed
    def change_recorded(word):
        """An audit record of the account change (where it says so is not specified: anywhere)."""
        pat = re.compile(rf"\b(?:{word})\b", re.I)
        return events_where(site, lambda e: "dora" in json.dumps(e) and pat.search(json.dumps(e)))

    s = Session(site, "dora", "dora-the-viewer-1")
    assert s.get("/api/v1/overview").status == 200
    assert change_recorded("added|add"), "no audit record of `user add`"
    # The running gateway sees the change at the next request: the session ends.
    assert user("disable", "dora").returncode == 0
    assert s.get("/api/v1/overview").status == 401
    # (Checked before any login attempt, whose refusal may name the disabled account too.)
    assert change_recorded("disabled|disable"), "no audit record of `user disable`"
    assert login(site, "dora", "dora-the-viewer-1").status != 303
    assert user("enable", "dora").returncode == 0
    assert s.get("/api/v1/overview").status == 401, "enabling an account revives no old session"
    Session(site, "dora", "dora-the-viewer-1")
    assert change_recorded("enabled|enable"), "no audit record of `user enable`"


# --- CSRF --------------------------------------------------------------------------

def test_posts_need_the_sessions_csrf_token_and_a_same_origin(console_site):
    site = console_site
    s = Session(site, "otto")
    same = site.base
    assert s.post("/api/v1/reload", csrf=False).status == 403, "no token"
    assert s.post("/api/v1/reload", csrf="0" * len(s.csrf)).status == 403, "a wrong token"
    other = Session(site, "otto")
    assert other.csrf != s.csrf, "two sessions share a CSRF token"
    assert s.post("/api/v1/reload", csrf=other.csrf).status == 403, "another session's token"
    assert s.post("/api/v1/reload", origin="https://evil.example").status == 403, "a cross-origin Origin"
    assert s.post("/api/v1/reload", origin=f"https://127.0.0.1:{site.console_port + 1}").status == 403, \
        "another port is another origin"
    # A page form (logout) without its `csrf` field is refused too, and the session lives on.
    r = request(site, "POST", "/logout", body="", headers={"Content-Type": "application/x-www-form-urlencoded"},
                cookie=s.cookie, source=s.source)
    assert r.status == 403, r.status
    assert s.get("/api/v1/overview").status == 200
    # The controls: the right token, with and without the browser's same-origin Origin.
    r = s.post("/api/v1/reload", origin=same)
    assert 200 <= r.status < 300, (r.status, r.text[:300])
    r = s.post("/api/v1/reload")
    assert 200 <= r.status < 300, (r.status, r.text[:300])


# --- Sessions ----------------------------------------------------------------------

def test_a_session_id_given_before_login_is_never_kept(console_site):
    site = console_site
    src = fresh_source()
    # 1. A cookie planted by an attacker.
    planted = "fixated" + "A" * 40
    r = login(site, "fixa", site.password("fixa"), cookie=planted, source=src)
    assert r.status == 303, r.status
    new = r.set_cookies()[COOKIE][0]
    assert new and new != planted
    assert request(site, "GET", "/api/v1/overview", cookie=planted, source=src).status == 401
    assert request(site, "GET", "/api/v1/overview", cookie=new, source=src).status == 200
    # 2. A cookie the server itself handed out before login, if it hands one out.
    pre = request(site, "GET", "/login", source=src).set_cookies().get(COOKIE)
    if pre:
        r = login(site, "fixa", site.password("fixa"), cookie=pre[0], source=src)
        assert r.status == 303 and r.set_cookies()[COOKIE][0] != pre[0]
        assert request(site, "GET", "/api/v1/overview", cookie=pre[0], source=src).status == 401
    # 3. A logged-in session's id presented at a new login: a new id, the old one ends.
    r = login(site, "fixa", site.password("fixa"), cookie=new, source=src)
    assert r.status == 303
    newer = r.set_cookies()[COOKIE][0]
    assert newer != new
    assert request(site, "GET", "/api/v1/overview", cookie=new, source=src).status == 401
    assert request(site, "GET", "/api/v1/overview", cookie=newer, source=src).status == 200


def test_logout_ends_the_session(console_site):
    site = console_site
    s = Session(site, "fixa")
    body = urllib.parse.urlencode({"csrf": s.csrf})
    r = request(site, "POST", "/logout", body=body, headers={"Content-Type": "application/x-www-form-urlencoded"},
                cookie=s.cookie, source=s.source)
    assert r.status in (200, 302, 303), r.status
    assert s.get("/api/v1/overview").status == 401
    assert s.get("/").status == 401


def test_login_lock_out_and_unknown_names(console_site):
    site = console_site
    name, right = "locky", site.password("locky")
    # An unknown name is answered exactly as a wrong password is.
    wrong_pw = login(site, name, "not-the-password-1")
    unknown = login(site, "nobody-here", "not-the-password-1")
    assert wrong_pw.status == unknown.status and wrong_pw.status not in (200, 303), (wrong_pw.status, unknown.status)
    assert COOKIE not in wrong_pw.set_cookies() and COOKIE not in unknown.set_cookies()
    def same(r, n):  # the name as typed, and any per-answer token, aside
        return re.sub(r'value="[^"]*"', 'value=""', r.text.replace(n, "NAME"))
    assert same(wrong_pw, name) == same(unknown, "nobody-here")
    # Failures 2 and 3 of login_max_failures = 3: locked.
    for _ in range(2):
        r = login(site, name, "not-the-password-1")
        assert r.status not in (200, 303) and COOKIE not in r.set_cookies()
    r = login(site, name, right)
    assert r.status == 429 and COOKIE not in r.set_cookies(), (r.status, r.text[:200])
    alerts = events_where(site, lambda e: e.get("rule", {}).get("id") == "WG-CONSOLE-001")
    assert alerts, "no WG-CONSOLE-001 alert for the lock-out"
    assert any(name in json.dumps(e) for e in alerts), alerts
    # lockout_secs = 8: the right password is taken again once it has passed.
    deadline = time.monotonic() + 30
    while True:
        r = login(site, name, right)
        if r.status != 429 or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert r.status == 303 and COOKIE in r.set_cookies(), (r.status, r.text[:200])
    # Every failed and successful login is an audit record naming the account.
    logins = events_where(site, lambda e: e.get("user", {}).get("name") == name)
    assert len(logins) >= 4, [e["event"] for e in logins]
    assert all(e.get("source", {}).get("ip", "").startswith("127.0.") for e in logins)


def test_login_attempts_from_one_address_are_limited(console_site):
    site = console_site
    src = fresh_source()
    codes = [login(site, f"nobody-{i}", "not-the-password-1", source=src).status for i in range(11)]
    assert 429 not in codes[:10], codes
    assert codes[10] == 429, codes
    # Another address is not held back (the limit is per address).
    assert login(site, "vera", site.password("vera"), source=fresh_source()).status == 303


# --- Headers -------------------------------------------------------------------------

def check_headers(r, what):
    h = r.headers
    csp = h.get("Content-Security-Policy")
    assert csp, f"{what}: no Content-Security-Policy"
    directives = {}
    for d in csp.split(";"):
        parts = d.strip().split()
        if parts:
            directives[parts[0].lower()] = [p.lower() for p in parts[1:]]
    assert directives.get("default-src") == ["'none'"], f"{what}: {csp}"
    assert directives.get("frame-ancestors") == ["'none'"], f"{what}: {csp}"
    for d in ("script-src", "style-src", "img-src", "connect-src", "font-src"):
        for src in directives.get(d, []):
            assert src == "'self'", f"{what}: {d} allows {src}: {csp}"
    assert "script-src" in directives, f"{what}: no script-src for the live tail: {csp}"
    hsts = h.get("Strict-Transport-Security") or ""
    m = re.search(r"max-age=(\d+)", hsts)
    assert m and int(m.group(1)) > 0, f"{what}: HSTS {hsts!r}"
    assert (h.get("X-Content-Type-Options") or "").lower() == "nosniff", what
    assert (h.get("Referrer-Policy") or "").lower() == "no-referrer", what
    assert "no-store" in (h.get("Cache-Control") or "").lower(), what


def test_security_headers_on_every_answer_and_cookie_flags(console_site):
    site = console_site
    check_headers(request(site, "GET", "/login"), "GET /login")
    check_headers(request(site, "GET", "/events"), "401 page")
    check_headers(request(site, "GET", "/api/v1/overview"), "401 API")
    r = login(site, "vera", site.password("vera"))
    check_headers(r, "login 303")
    assert r.status == 303 and r.header("Location") in ("/", site.base + "/"), (r.status, r.header("Location"))
    value, attrs = r.set_cookies()[COOKIE]
    assert len(value) >= 16, "a session id too short to be unguessable"
    assert attrs.get("secure") is True and attrs.get("httponly") is True, attrs
    assert str(attrs.get("samesite", "")).lower() == "strict", attrs
    assert attrs.get("path") == "/" and "domain" not in attrs, attrs
    s = Session(site, "vera")
    check_headers(s.get("/"), "page")
    check_headers(s.get("/api/v1/overview"), "API")
    check_headers(s.get(fill("/events/{seq}", site)), "event page")
    check_headers(s.get(OPENAPI), "openapi.json")
    r = s.post("/api/v1/reload")
    assert r.status == 403
    check_headers(r, "403")
    r = s.get("/no-such-page")
    check_headers(r, f"{r.status} unknown page")


# --- Patient identifiers ----------------------------------------------------------------

def test_patient_identifiers_only_for_patient_data_accounts_one_event_at_a_time(console_site):
    site = console_site
    seq = site.seed_seq
    v = Session(site, "vera")
    for path in ["/", "/events", f"/events/{seq}", f"/events/{seq}?reveal=patient", "/devices", "/devices/ehr",
                 "/api/v1/overview", "/api/v1/events", f"/api/v1/events/{seq}",
                 f"/api/v1/events/{seq}?reveal=patient", "/api/v1/devices/ehr"]:
        r = v.get(path)
        assert r.status in (200, 403), (path, r.status)
        assert PATIENT not in r.text, f"{path} shows the patient identifier to an account without --patient-data"
    p = Session(site, "pat")
    for path in ["/events", f"/events/{seq}", "/api/v1/events", f"/api/v1/events/{seq}", "/devices/ehr"]:
        r = p.get(path)
        assert r.status == 200 and PATIENT not in r.text, f"{path} shows the patient identifier unasked"
    # The control: asked for, one event, by an account allowed to see it.
    r = p.get(f"/api/v1/events/{seq}?reveal=patient")
    assert r.status == 200 and PATIENT in r.text, (r.status, r.text[:300])
    r = p.get(f"/events/{seq}?reveal=patient")
    assert r.status == 200 and PATIENT in r.text, r.status
    viewed = events_where(site, lambda e: e["event"]["action"] == "viewed" and e.get("user", {}).get("name") == "pat")
    assert viewed, "revealing a patient identifier left no `viewed` audit record"
    assert not any(PATIENT in json.dumps(e) for e in viewed), "the audit record of a view repeats the identifier"
    # Events cannot be searched by patient.
    r = p.get(f"/api/v1/events?patient_id={PATIENT}")
    assert PATIENT not in r.text
    # Never in the live tail, not even for an account that may see it.
    conn, head = open_stream(site, STREAM, p.cookie, p.source)
    try:
        assert head.status == 200, head.status
        cid = "TAIL-PATIENT-1"
        assert msa(send(site.gw, order(cid, heparin(41)).replace("4711", PATIENT)))[0] == "AR"
        seen = b""
        deadline = time.monotonic() + 15
        while cid.encode() not in seen and time.monotonic() < deadline:
            line = head.readline()
            if not line:
                break
            seen += line
        assert cid.encode() in seen, f"the blocked order never reached the live tail: {seen[-500:]!r}"
        assert PATIENT.encode() not in seen, "the live tail carries a patient identifier"
    finally:
        conn.close()
    # Never in the server's log.
    assert PATIENT not in site.gw.log_text()


# --- OpenAPI --------------------------------------------------------------------------

def _norm(path):
    return re.sub(r"\{[^}]*\}", "{}", path)


def test_openapi_describes_every_api_path(console_site):
    site = console_site
    r = Session(site, "vera").get(OPENAPI)
    assert r.status == 200 and "json" in (r.header("Content-Type") or ""), r.status
    doc = r.json()
    assert str(doc.get("openapi", "")).startswith("3.1"), doc.get("openapi")
    assert doc.get("info", {}).get("title") and doc["info"].get("version"), doc.get("info")
    assert isinstance(doc.get("paths"), dict) and doc["paths"]
    prefix = ""
    servers = doc.get("servers") or []
    if servers and str(servers[0].get("url", "")).rstrip("/").endswith("/api/v1"):
        prefix = "/api/v1"
    have = {}
    for path, item in doc["paths"].items():
        full = path if path.startswith("/api/v1") else prefix + path
        for method, op in item.items():
            if method in ("get", "post", "put", "delete", "patch"):
                assert isinstance(op.get("responses"), dict) and op["responses"], (path, method)
                have.setdefault(_norm(full), set()).add(method)
                for p in re.findall(r"\{([^}]*)\}", path):
                    declared = [x.get("name") for x in op.get("parameters", []) + item.get("parameters", [])
                                if x.get("in") == "path"]
                    assert p in declared, f"{method} {path}: path parameter {p} not declared"
    want = {("get", _norm(p)) for p in [*API_GETS, STREAM]}
    want |= {("post", re.sub(r"/(sf-orders|spare-route|spare-pump|matrix-new)/", "/{}/", p)) for p, _, _ in ACTIONS}
    missing = sorted(f"{m.upper()} {p}" for m, p in want if m not in have.get(p, set()))
    assert not missing, f"paths of docs/console.md missing from openapi.json: {missing}"


# --- The browser --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium through Playwright, never a downloaded browser. Under
    CI=true a missing browser or package fails; elsewhere it skips."""
    sync_api = require_module("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        if CI:
            pytest.fail(f"{CHROMIUM} is required (run scripts/setup.sh)")
        pytest.skip(f"{CHROMIUM} not installed (run scripts/setup.sh)")
    pw = sync_api.sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()
    finally:
        pw.stop()


def send_tls_hl7(site, text, device="ehr", source="127.0.0.2"):
    ctx = site.ssl_context()
    ctx.load_cert_chain(str(site.certs / f"{device}.crt"), str(site.certs / f"{device}.key"))
    raw = socket.create_connection(("127.0.0.1", site.ports["tls_port"]), timeout=10, source_address=(source, 0))
    with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
        s.sendall(SB + text.encode() + EB)
        buf = b""
        while not buf.endswith(EB):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    return unframe(buf)


def tls_refused(site):
    try:
        send_tls_hl7(site, oru("AFTER-REVOKE"))
    except (ssl.SSLError, ConnectionError, AssertionError, OSError):
        return True
    return False


class BrowserPage:
    """A Chromium page on the console, recording what the browser says (console
    messages, the Origin of its POSTs) for the failure messages."""

    def __init__(self, site, browser):
        self.site = site
        # The site's certificate chains to wardgate's CA (Python's ssl, trusting
        # only that CA, checks it here and in
        # test_the_console_certificate_chains_to_wardgates_ca): the browser,
        # which has no system store to be told of that CA, is told to accept it.
        raw = socket.create_connection(("127.0.0.1", site.console_port), timeout=10)
        site.ssl_context().wrap_socket(raw, server_hostname="127.0.0.1").close()
        self.ctx = browser.new_context(ignore_https_errors=True, base_url=site.base,
                                       viewport={"width": 1280, "height": 900})
        self.page = self.ctx.new_page()
        self.page.set_default_timeout(15000)
        self.console, self.posts = [], []
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        self.page.on("dialog", lambda d: d.accept())
        self.page.on("request", lambda req: self.posts.append((req.url, req.headers.get("origin")))
                     if req.method == "POST" else None)

    def shot(self, name):
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

    def session_from(self, session):
        """Logged in as `session` (made by Python's client), for the tests that
        are not about the login form."""
        self.ctx.add_cookies([{"name": COOKIE, "value": session.cookie, "url": self.site.base + "/",
                               "secure": True, "httpOnly": True, "sameSite": "Strict"}])

    def submit(self, selector, where):
        """Submits the first form matching `selector` on this page, as a person
        clicking its button does; returns the answer to the POST."""
        forms = self.page.locator(selector)
        assert forms.count() >= 1, f"no form {selector} on {where}"
        with self.page.expect_response(lambda r: r.request.method == "POST") as resp:
            forms.first.locator("[type=submit]").first.click()
        self.page.wait_for_load_state()
        return resp.value

    def body(self):
        return self.page.inner_text("body")

    def no_csp_violations(self):
        csp = [m for m in self.console if "Content Security Policy" in m or "Refused to" in m]
        assert not csp, csp

    def close(self):
        self.ctx.close()


@pytest.fixture
def bpage(console_site, browser):
    p = BrowserPage(console_site, browser)
    yield p
    p.close()


def test_browser_logs_in_through_the_form(console_site, bpage):
    site, page = console_site, bpage.page
    r = page.goto("/")
    assert r.status == 401
    page.fill("input[name=username]", "ada")
    page.fill("input[name=password]", site.password("ada"))
    with page.expect_navigation():
        page.press("input[name=password]", "Enter")
    assert page.url.rstrip("/") == site.base, (page.url, bpage.body()[:300], "POSTs and their Origin:", bpage.posts)
    cookies = {c["name"]: c for c in bpage.ctx.cookies()}
    assert COOKIE in cookies and cookies[COOKIE]["httpOnly"] and cookies[COOKIE]["secure"]
    assert cookies[COOKIE]["sameSite"] == "Strict"
    assert COOKIE not in page.evaluate("document.cookie"), "the session cookie is visible to scripts"
    # And out again, through the logout form.
    resp = bpage.submit("form[action*='logout']", "/")
    assert resp.status in (200, 303), (resp.status, bpage.posts)
    assert page.goto("/events").status == 401
    bpage.no_csp_violations()


def test_browser_live_tail_and_every_view(console_site, bpage):
    """A blocked order from the `hl7` MLLP client appears on the events page
    while it stays loaded (the live tail, no reload); the event's page, the
    devices, a device and every other view; a screenshot of each; no CSP
    violation on the way."""
    site, page = console_site, bpage.page
    bpage.session_from(Session(site, "ada"))
    assert page.goto("/").status == 200
    bpage.shot("overview")

    streams = []
    page.on("response", lambda resp: streams.append(resp.status) if "/events/stream" in resp.url else None)
    navigations = []
    page.on("framenavigated", lambda f: navigations.append(f.url) if f == page.main_frame else None)
    assert page.goto("/events").status == 200
    page.evaluate("window.__wardgateTestMarker = 'still-here'")
    navigations.clear()
    deadline = time.monotonic() + 10
    while not streams and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert streams == [200], f"the events page opened no live tail (GET {STREAM}): {streams}"
    cid = "LIVE-BLOCK-1"
    reply = send(site.gw, order(cid, heparin(41)))
    assert msa(reply)[0] == "AR", reply
    row = page.get_by_text(cid).first
    row.wait_for(state="visible")
    assert page.evaluate("window.__wardgateTestMarker") == "still-here", "the page was reloaded"
    assert navigations == [], navigations
    # The live row itself says what happened (the page may carry the word elsewhere).
    live_row = row.evaluate("el => (el.closest('tr, li, article, section, div') || el).innerText")
    assert "blocked" in live_row.lower() or "WG-INF-010" in live_row, live_row
    bpage.shot("events")

    live = events_where(site, lambda e: e.get("wardgate", {}).get("hl7", {}).get("control_id") == cid)
    assert live
    assert page.goto(f"/events/{live[0]['event']['sequence']}").status == 200
    assert cid in bpage.body() and "WG-INF-010" in bpage.body(), bpage.body()[:500]
    bpage.shot("event-detail")

    for path, name, must in [("/devices", "devices", "ehr"), ("/devices/ehr", "device", "ehr"),
                             ("/routes", "routes", "infusion-orders"), ("/queues", "queues", "sf-orders"),
                             ("/certificates", "certificates", "ehr"), ("/audit", "audit", None),
                             ("/users", "users", "vera")]:
        r = page.goto(path)
        assert r.status == 200, (path, r.status)
        assert must is None or must in bpage.body(), (path, bpage.body()[:300])
        bpage.shot(name)
    bpage.no_csp_violations()
    for name in ("overview", "events", "event-detail", "devices", "device", "routes", "queues", "certificates",
                 "audit", "users"):
        assert (SHOTS / f"{name}.png").stat().st_size > 0


def test_browser_redrives_a_parked_message_and_revokes_a_device(console_site, bpage):
    """From the pages' forms: a message the upstream refused (AR), parked, is
    re-driven once the upstream is fixed; the EHR is revoked from its page and
    its very next TLS connection with its client certificate is refused."""
    site, page = console_site, bpage.page
    bpage.session_from(Session(site, "ada"))
    site.refuse.add("PARK-1")
    with SourceBoundClient("127.0.0.1", site.ports["sf_port"]) as c:
        assert ack_of(c.send_message(oru("PARK-1")))[0] == "AA"
    wait_for(lambda: any(p["control_id"] == "PARK-1" for q in queue_json(site.gw) for p in q["parked"]),
             what="the message parked")
    r = page.goto("/queues")
    assert r.status == 200 and "PARK-1" in bpage.body()
    bpage.shot("queues-parked")
    site.refuse.clear()
    resp = bpage.submit("form[action*='redrive']", "/queues")
    assert resp.status in (200, 303), (resp.status, bpage.body()[:300], "POSTs and their Origin:", bpage.posts)
    wait_for(lambda: site.sf_upstream.arrivals.count("PARK-1") == 2, what="the re-driven message upstream")
    wait_for(lambda: not any(p["control_id"] == "PARK-1" for q in queue_json(site.gw) for p in q["parked"]),
             what="nothing parked")

    assert msa(send_tls_hl7(site, oru("BEFORE-REVOKE")))[0] == "AA"
    assert page.goto("/devices/ehr").status == 200
    resp = bpage.submit("form[action*='revoke']", "/devices/ehr")
    assert resp.status in (200, 303), (resp.status, bpage.body()[:300], "POSTs and their Origin:", bpage.posts)
    # The page answered: the very next connection with the EHR's certificate is refused.
    assert tls_refused(site), "the revoked device still connects"
    assert not any(b"AFTER-REVOKE" in m for m in site.upstream.received)
    revoked = events_where(site, lambda e: e.get("rule", {}).get("id") == "WG-TLS-001"
                           and "revoked" in e["event"].get("reason", ""))
    assert revoked, "no WG-TLS-001 event naming the revocation"
    assert page.goto("/certificates").status == 200 and "revoked" in bpage.body().lower()
    bpage.shot("certificates-revoked")
    bpage.no_csp_violations()
