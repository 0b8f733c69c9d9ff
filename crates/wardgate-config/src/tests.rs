use super::*;

const MINIMAL: &str = include_str!("../../../examples/minimal.toml");

fn parse(text: &str) -> Result<Validated, ConfigError> {
    Config::parse(text, "site.toml", Path::new("/etc/wardgate"))
}

fn problems(text: &str) -> Vec<Problem> {
    match parse(text) {
        Err(ConfigError::Invalid(p)) => p,
        other => panic!("expected problems, got {other:?}"),
    }
}

#[test]
fn the_issue_example_is_accepted_unchanged() {
    let v = parse(MINIMAL).unwrap();
    assert_eq!(v.routes.len(), 1);
    let r = &v.routes[0];
    assert_eq!(r.id, "infusion-orders");
    assert_eq!(r.listen, "127.0.0.1:12575".parse().unwrap());
    assert_eq!(r.upstream_device.as_deref(), Some("pump-server"));
    assert_eq!(r.messages, vec!["RGV^O15", "ORU^R01"]);
    assert_eq!(
        v.device_by_ip[&"127.0.0.2".parse::<IpAddr>().unwrap()],
        "ehr"
    );
    assert_eq!(v.data_dir, Path::new("/etc/wardgate/wardgate-data"));
    // Only the notice that the route is cleartext (accepted: it stays on the
    // site's networks).
    assert_eq!(v.warnings.len(), 1, "{:?}", v.warnings);
    assert!(
        v.warnings[0].message.contains("in clear"),
        "{:?}",
        v.warnings
    );
    let drug = &v.config.drug_libraries[0].drugs[0];
    assert_eq!(*drug.rate_hard_max.as_ref().unwrap().get_ref(), 2000.0);
}

#[test]
fn integer_limits_are_accepted_as_numbers() {
    // rate_soft_max = 1500 is a TOML integer; it must still load as f64.
    let v = parse(MINIMAL).unwrap();
    assert_eq!(
        *v.config.drug_libraries[0].drugs[0]
            .rate_soft_max
            .as_ref()
            .unwrap()
            .get_ref(),
        1500.0
    );
}

#[test]
fn unknown_key_is_reported_with_its_line() {
    let text = MINIMAL.replace("kind = \"ehr\"", "kind = \"ehr\"\ncolour = \"red\"");
    let p = problems(&text);
    assert_eq!(p.len(), 1);
    let line = text.lines().position(|l| l.starts_with("colour")).unwrap() + 1;
    assert_eq!(p[0].line, line, "{}", p[0]);
    assert!(p[0].message.contains("colour"), "{}", p[0]);
}

#[test]
fn every_semantic_problem_is_reported_with_location() {
    let text = MINIMAL
        .replace("senders = [\"ehr\"]", "senders = [\"ehr\", \"ghost\"]")
        .replace(
            "upstream = \"127.0.0.3:13575\"",
            "upstream = \"pump:13575\"",
        )
        .replace("drug_library = \"adult-icu\"", "drug_library = \"paeds\"")
        .replace("rate_soft_max = 1500", "rate_soft_max = 2500");
    let p = problems(&text);
    let errors: Vec<_> = p.iter().filter(|p| p.level == Level::Error).collect();
    assert_eq!(errors.len(), 4, "{p:#?}");
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let expect = [
        (line_of("\"ghost\""), "ghost"),
        (line_of("pump:13575"), "not an IP:port"),
        (line_of("\"paeds\""), "paeds"),
        (line_of("rate_soft_max"), "above rate_hard_max"),
    ];
    for (line, needle) in expect {
        assert!(
            errors
                .iter()
                .any(|e| e.line == line && e.message.contains(needle)),
            "no error at line {line} mentioning {needle}: {errors:#?}"
        );
    }
    // Columns point at the value, not the start of the line.
    let ghost = errors.iter().find(|e| e.message.contains("ghost")).unwrap();
    assert!(ghost.column > 10, "{ghost}");
}

#[test]
fn duplicate_addresses_and_ids_are_errors() {
    let text = MINIMAL
        .replace("addresses = [\"127.0.0.3\"]", "addresses = [\"127.0.0.2\"]")
        .replace("id = \"pump-server\"", "id = \"ehr\"");
    let p = problems(&text);
    assert!(
        p.iter().any(|p| p.message.contains("declared twice")),
        "{p:#?}"
    );
    assert!(
        p.iter().any(|p| p.message.contains("already device")),
        "{p:#?}"
    );
}

#[test]
fn bad_message_type_and_protocol_are_errors() {
    let text = MINIMAL
        .replace("\"ORU^R01\"]", "\"ORU-R01\"]")
        .replace("protocol = \"hl7-mllp\"", "protocol = \"telnet\"");
    let p = problems(&text);
    assert!(p.iter().any(|p| p.message.contains("ORU-R01")), "{p:#?}");
    assert!(p.iter().any(|p| p.message.contains("telnet")), "{p:#?}");
}

#[test]
fn warnings_do_not_refuse_the_config() {
    let text = MINIMAL.replace("drug_library = \"adult-icu\"\n", "");
    let v = parse(&text).unwrap();
    assert!(
        v.warnings
            .iter()
            .any(|w| w.message.contains("no drug_library")),
        "{:?}",
        v.warnings
    );
}

#[test]
fn syntax_error_has_a_location() {
    let p = problems("[gateway]\ndata_dir = \n");
    assert_eq!(p[0].line, 2, "{}", p[0]);
}

#[test]
fn problem_display_is_file_line_column() {
    let p = problems(
        &MINIMAL
            .replace("\"ghost\"", "x")
            .replace("senders = [\"ehr\"]", "senders = [\"nobody\"]"),
    );
    let s = p[0].to_string();
    assert!(s.starts_with("site.toml:"), "{s}");
    assert!(s.contains(": error: "), "{s}");
}

proptest::proptest! {
    /// Arbitrary text never panics the loader: it is either accepted or refused with problems.
    #[test]
    fn arbitrary_text_never_panics(text in ".{0,400}") {
        let _ = parse(&text);
    }
}

const DICOM: &str = include_str!("../../../examples/dicom.toml");

#[test]
fn the_dicom_example_is_accepted() {
    let v = parse(DICOM).unwrap();
    let r = &v.routes[0];
    assert_eq!(r.protocol, Protocol::Dicom);
    assert_eq!(r.called_ae_titles, vec!["PACS"]);
    assert_eq!(r.operations, vec!["C-ECHO", "C-STORE"]);
    assert_eq!(r.sop_classes.len(), 3);
    assert_eq!(r.max_pdu_bytes, DEFAULT_MAX_PDU_BYTES);
    assert!(r.block_executables);
    // Only the notice that the route is cleartext (accepted: it stays on the
    // site's networks).
    assert_eq!(v.warnings.len(), 1, "{:?}", v.warnings);
    assert!(
        v.warnings[0].message.contains("in clear"),
        "{:?}",
        v.warnings
    );
}

#[test]
fn dicom_routes_are_checked_with_locations() {
    let line_of =
        |text: &str, needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    // A bad operation, a bad UID, an AE title too long, HL7 keys on a DICOM route.
    let bad = DICOM
        .replace("\"C-STORE\"]", "\"C-STORE\", \"C-HACK\"]")
        .replace("\"1.2.840.10008.1.1\",", "\"1.2.840..10008\",")
        .replace(
            "called_ae_titles = [\"PACS\"]",
            "called_ae_titles = [\"A_TITLE_FAR_TOO_LONG\"]\nmessages = [\"ORU^R01\"]",
        );
    let p = problems(&bad);
    let at = |needle: &str| {
        let line = line_of(&bad, needle);
        assert!(
            p.iter().any(|x| x.line == line),
            "nothing reported on line {line} ({needle}): {p:?}"
        );
    };
    at("C-HACK");
    at("1.2.840..10008");
    at("A_TITLE_FAR_TOO_LONG");
    at("messages = ");
    // A sender without AE titles cannot be checked, so it is refused.
    let p = problems(&DICOM.replace("ae_titles = [\"CT01\"]\n", ""));
    assert!(
        p.iter().any(|x| x.message.contains("no ae_titles")),
        "{p:?}"
    );
    // DICOM keys on an HL7 route.
    let p = problems(&MINIMAL.replace(
        "drug_library = \"adult-icu\"",
        "drug_library = \"adult-icu\"\noperations = [\"C-ECHO\"]",
    ));
    assert!(
        p.iter().any(|x| x.message.contains("dicom routes only")),
        "{p:?}"
    );
}

#[test]
fn the_demo_site_is_valid_once_its_ports_are_filled() {
    // The demo and the engine_inspect fuzz target fill these placeholders; a new
    // one must be filled by both (a fuzz run once failed on a forgotten one).
    let filled = include_str!("../../../examples/demo.toml")
        .replace("{UPSTREAM_PORT}", "1")
        .replace("{EHR_PORT}", "2")
        .replace("{PACS_PORT}", "3")
        .replace("{BROKER_PORT}", "1883");
    assert!(!filled.contains("_PORT}"), "an unfilled placeholder");
    let v = parse(&filled).unwrap();
    assert!(v.routes.iter().any(|r| r.protocol == Protocol::Dicom));
}

#[test]
fn local_networks_default_to_private_ranges_and_parse_cidr() {
    let v = parse(MINIMAL).unwrap();
    let inside = |ip: &str| {
        let ip: IpAddr = ip.parse().unwrap();
        v.local_networks.iter().any(|n| n.contains(ip))
    };
    for ip in [
        "127.0.0.9",
        "10.1.2.3",
        "172.31.0.1",
        "192.168.1.1",
        "fd00::1",
        "::ffff:10.0.0.1",
    ] {
        assert!(inside(ip), "{ip} should be local");
    }
    for ip in ["8.8.8.8", "172.32.0.1", "2001:db8::1"] {
        assert!(!inside(ip), "{ip} should not be local");
    }
    let net = IpNetwork::parse("10.20.0.0/16").unwrap();
    assert!(net.contains("10.20.255.1".parse().unwrap()));
    assert!(!net.contains("10.21.0.1".parse().unwrap()));
    assert!(IpNetwork::parse("0.0.0.0/0")
        .unwrap()
        .contains("1.2.3.4".parse().unwrap()));
    assert_eq!(IpNetwork::parse("10.0.0.1").unwrap().prefix, 32);
    assert!(IpNetwork::parse("10.0.0.0/33").is_err());
    assert!(IpNetwork::parse("ward/8").is_err());
}

#[test]
fn bad_local_networks_peers_and_capture_limits_are_located() {
    let text = MINIMAL
        .replace(
            "data_dir = \"./wardgate-data\"",
            "data_dir = \"./wardgate-data\"\nlocal_networks = [\"10.0.0.0/8\", \"10.0.0.0/40\"]\n\n[gateway.capture]\nmax_flows = 0\nreassembly_policy = \"solaris\"\n[[gateway.capture.host_policy]]\nnetworks = [\"10.1.0.0/99\"]\npolicy = \"bsd\"",
        )
        .replace(
            "addresses = [\"127.0.0.2\"]",
            "addresses = [\"127.0.0.2\"]\npeers = [\"pump-server:mqtt\", \"nobody\", \"pump-server:gopher\"]",
        );
    let p = problems(&text);
    let msgs: Vec<String> = p.iter().map(|p| p.to_string()).collect();
    let has = |needle: &str| msgs.iter().any(|m| m.contains(needle));
    assert!(has("prefix length must be 0..=32"), "{msgs:?}");
    assert!(has("max_flows = 0 must be in 1..="), "{msgs:?}");
    assert!(has("\"solaris\" is not a reassembly policy"), "{msgs:?}");
    assert!(has("10.1.0.0/99"), "{msgs:?}");
    let flows = p
        .iter()
        .find(|p| p.to_string().contains("max_flows"))
        .unwrap();
    assert!(
        flows.to_string().contains(":6:"),
        "located at its own line: {flows}"
    );
    assert!(has("peer \"nobody\" is not a declared device"), "{msgs:?}");
    assert!(has("protocol \"gopher\""), "{msgs:?}");
    assert!(!has("pump-server:mqtt"), "{msgs:?}");
    // The bad CIDR is located at its own line.
    let cidr = p
        .iter()
        .find(|p| p.to_string().contains("prefix length"))
        .unwrap();
    assert!(cidr.to_string().contains(":3:"), "{cidr}");
}

#[test]
fn listen_tls_defaults_to_the_builtin_ca_and_is_checked() {
    let tls = "drug_library = \"adult-icu\"\n\n[route.listen_tls]\ncert = \"certs/gw.crt\"\nkey = \"certs/gw.key\"\n";
    let text = MINIMAL.replacen("drug_library = \"adult-icu\"\n", tls, 1);
    let v = parse(&text).unwrap();
    let t = v.routes[0].listen_tls.as_ref().expect("listen_tls");
    assert_eq!(t.cert, Path::new("/etc/wardgate/certs/gw.crt"));
    assert_eq!(t.client_auth, ClientAuth::Required);
    assert_eq!(t.client_ca, v.data_dir.join("tls/ca.crt"));
    assert_eq!(
        t.client_crl.as_deref(),
        Some(v.data_dir.join("tls/ca.crl").as_path())
    );
    // An external CA: no default CRL; a bad client_auth is located.
    let ext = text.replace(
        "key = \"certs/gw.key\"\n",
        "key = \"certs/gw.key\"\nclient_ca = \"/etc/pki/hospital.pem\"\nclient_auth = \"sometimes\"\n",
    );
    let p = problems(&ext);
    assert!(
        p.iter()
            .any(|p| p.to_string().contains("client_auth \"sometimes\"")),
        "{p:?}"
    );
    let ext = ext.replace("sometimes", "optional");
    let v = parse(&ext).unwrap();
    let t = v.routes[0].listen_tls.as_ref().unwrap();
    assert_eq!(t.client_auth, ClientAuth::Optional);
    assert_eq!(t.client_ca, Path::new("/etc/pki/hospital.pem"));
    assert_eq!(t.client_crl, None);
}

#[test]
fn cleartext_beyond_local_networks_is_refused_unless_allowed() {
    let text = MINIMAL.replace(
        "upstream = \"127.0.0.3:13575\"",
        "upstream = \"203.0.113.7:2575\"",
    );
    let p = problems(&text);
    let e = p
        .iter()
        .find(|p| p.message.contains("outside local_networks"))
        .unwrap_or_else(|| panic!("{p:?}"));
    assert_eq!(e.level, Level::Error);
    assert!(e.to_string().contains("203.0.113.7:2575"));
    let allowed = text.replace(
        "drug_library = \"adult-icu\"\n",
        "drug_library = \"adult-icu\"\nallow_cleartext = true\n",
    );
    let v = parse(&allowed).unwrap();
    assert!(v.warnings.iter().any(|w| w
        .message
        .contains("sends hl7-mllp in clear to 203.0.113.7:2575")));
    // TLS towards the upstream protects that leg: accepted without allow_cleartext.
    let up_tls = text.replace(
        "drug_library = \"adult-icu\"\n",
        "drug_library = \"adult-icu\"\n\n[route.upstream_tls]\nserver_name = \"pump-server\"\n",
    );
    let v = parse(&up_tls).unwrap();
    let t = v.routes[0].upstream_tls.as_ref().unwrap();
    assert_eq!(t.ca, v.data_dir.join("tls/ca.crt"));
    assert!(
        v.warnings.iter().all(|w| !w.message.contains("sends")),
        "{:?}",
        v.warnings
    );
    // TLS on the listener: only the upstream leg is named.
    let tls = MINIMAL.replacen(
        "drug_library = \"adult-icu\"\n",
        "drug_library = \"adult-icu\"\n\n[route.listen_tls]\ncert = \"a.crt\"\nkey = \"a.key\"\n",
        1,
    );
    let v = parse(&tls).unwrap();
    assert!(
        !v.warnings[0].message.contains("accepts"),
        "{:?}",
        v.warnings
    );
}

#[test]
fn connection_workers_default_to_one_per_core_and_are_bounded() {
    let v = parse(MINIMAL).unwrap();
    assert_eq!(v.config.gateway.workers, 0);
    let two = MINIMAL.replace("[gateway]\n", "[gateway]\nworkers = 2\n");
    assert_eq!(parse(&two).unwrap().config.gateway.workers, 2);
    let many = MINIMAL.replace("[gateway]\n", "[gateway]\nworkers = 5000\n");
    let p = problems(&many);
    assert!(
        p.iter().any(|p| p.message.contains("gateway.workers")),
        "{p:#?}"
    );
}

/// `[gateway.admin]` placed right after `data_dir` in the minimal example.
fn with_admin(keys: &str) -> String {
    // The example's comment after data_dir lands on a line of its own.
    MINIMAL.replacen(
        "data_dir = \"./wardgate-data\"",
        &format!("data_dir = \"./wardgate-data\"\n[gateway.admin]\n{keys}\n"),
        1,
    )
}

#[test]
fn admin_defaults_to_no_metrics_and_a_socket_in_data_dir() {
    let v = parse(MINIMAL).unwrap();
    assert_eq!(v.admin.metrics, None);
    assert_eq!(
        v.admin.socket,
        Path::new("/etc/wardgate/wardgate-data/admin.sock")
    );
}

#[test]
fn metrics_on_loopback_is_accepted_and_the_socket_is_resolved() {
    let v = parse(&with_admin(
        "metrics = \"127.0.0.1:9464\"\nsocket = \"run/wardgate.sock\"",
    ))
    .unwrap();
    assert_eq!(v.admin.metrics, Some("127.0.0.1:9464".parse().unwrap()));
    assert_eq!(v.admin.socket, Path::new("/etc/wardgate/run/wardgate.sock"));
    let v = parse(&with_admin("metrics = \"[::1]:0\"")).unwrap();
    assert_eq!(v.admin.metrics, Some("[::1]:0".parse().unwrap()));
}

#[test]
fn remote_metrics_need_an_explicit_opt_in_and_then_warn() {
    let text = with_admin("metrics = \"0.0.0.0:9464\"");
    let p = problems(&text);
    let e: Vec<_> = p.iter().filter(|p| p.level == Level::Error).collect();
    assert_eq!(e.len(), 1, "{p:?}");
    assert!(e[0].message.contains("not a loopback address"), "{e:?}");
    assert!(e[0].message.contains("metrics_allow_remote"), "{e:?}");
    // Located at the value, on the line after [gateway.admin].
    let line = text
        .lines()
        .position(|l| l.starts_with("metrics ="))
        .unwrap()
        + 1;
    assert_eq!(e[0].line, line);
    assert_eq!(e[0].column, 11);

    let v = parse(&with_admin(
        "metrics = \"0.0.0.0:9464\"\nmetrics_allow_remote = true",
    ))
    .unwrap();
    assert_eq!(v.admin.metrics, Some("0.0.0.0:9464".parse().unwrap()));
    assert!(
        v.warnings
            .iter()
            .any(|w| w.message.contains("no authentication")),
        "{:?}",
        v.warnings
    );
}

#[test]
fn bad_admin_values_are_located() {
    let p = problems(&with_admin("metrics = \"localhost:9464\""));
    assert!(
        p.iter()
            .any(|p| p.level == Level::Error && p.message.contains("not an IP:port")),
        "{p:?}"
    );
    let long = format!("socket = \"/{}\"", "s".repeat(200));
    let p = problems(&with_admin(&long));
    assert!(
        p.iter()
            .any(|p| p.level == Level::Error && p.message.contains("at most 107")),
        "{p:?}"
    );
    let p = problems(&with_admin("metrics_allow_remot = true"));
    assert!(
        p.iter().any(|p| p.message.contains("metrics_allow_remote")),
        "{p:?}"
    );
}

const EXPORT: &str = r#"
[gateway]
data_dir = "data"
name = "icu-gateway-1"

[export.eve]
path = "eve/alerts.json"
keep = 3
min_severity = "medium"

[[export.syslog]]
name = "soc"
address = "siem.example.org:6514"
transport = "tls"
format = "cef"
facility = "authpriv"
rules = ["WG-INF-*", "WG-ACCESS-001"]
actions = ["blocked", "alerted"]

[export.syslog.tls]
ca = "siem-ca.pem"
cert = "gw.crt"
key = "gw.key"

[[export.syslog]]
name = "local"
address = "[::1]:514"
transport = "udp"
checkpoints = false
"#;

#[test]
fn exports_resolve_with_their_defaults() {
    let v = parse(EXPORT).unwrap();
    let e = &v.export;
    let eve = e.eve.as_ref().unwrap();
    assert_eq!(eve.path, Path::new("/etc/wardgate/eve/alerts.json"));
    assert_eq!((eve.rotate_bytes, eve.keep), (100 << 20, 3));
    assert_eq!(eve.select.min_severity, wardgate_event::Severity::Medium);
    assert!(eve.select.actions.is_empty() && eve.select.checkpoints);
    let soc = &e.syslog[0];
    assert_eq!(
        (soc.transport, soc.format, soc.facility),
        (Transport::Tls, Format::Cef, 10)
    );
    assert_eq!(soc.select.actions, vec!["blocked", "alerted"]);
    assert!(soc.select.rules[0].matches("WG-INF-010"));
    assert!(!soc.select.rules[0].matches("WG-ACCESS-001"));
    assert!(soc.select.rules[1].matches("WG-ACCESS-001"));
    let tls = soc.tls.as_ref().unwrap();
    assert_eq!(tls.server_name, "siem.example.org");
    assert_eq!(tls.ca, Path::new("/etc/wardgate/siem-ca.pem"));
    assert_eq!(tls.crl, None);
    assert!(tls.client_cert.is_some());
    let local = &e.syslog[1];
    assert_eq!(
        (local.transport, local.facility, local.app_name.as_str()),
        (Transport::Udp, 16, "wardgate")
    );
    assert!(!local.select.checkpoints);
    assert_eq!(
        (
            local.settle_ms,
            local.unreachable_alert_secs,
            local.start_at_end
        ),
        (1000, 30, false)
    );
    assert_eq!(
        v.config.gateway.name.as_ref().unwrap().get_ref(),
        "icu-gateway-1"
    );
    // The cleartext export is named; the TLS one is not.
    let clear: Vec<_> = v
        .warnings
        .iter()
        .filter(|w| w.message.contains("in clear over"))
        .collect();
    assert_eq!(clear.len(), 1, "{:?}", v.warnings);
    assert!(clear[0].message.contains("\"local\"") && clear[0].message.contains("udp"));
}

#[test]
fn export_problems_are_located_at_their_keys() {
    // (replace, with, the line the problem is at (its last occurrence), message)
    for (from, to, at, expect) in [
        (
            "transport = \"tls\"",
            "transport = \"tcp+tls\"",
            "tcp+tls",
            "transport \"tcp+tls\"",
        ),
        (
            "format = \"cef\"",
            "format = \"leef\"",
            "leef",
            "format \"leef\"",
        ),
        (
            "facility = \"authpriv\"",
            "facility = \"local9\"",
            "local9",
            "facility \"local9\"",
        ),
        (
            "\"WG-INF-*\"",
            "\"WG-NOPE-*\"",
            "WG-NOPE",
            "matches no rule id",
        ),
        (
            "\"alerted\"]",
            "\"alert\"]",
            "\"alert\"",
            "\"alert\" is not an event action",
        ),
        (
            "min_severity = \"medium\"",
            "min_severity = \"severe\"",
            "severe",
            "min_severity \"severe\"",
        ),
        (
            "keep = 3",
            "keep = 0",
            "keep = 0",
            "keep = 0 must be in 1..=1000",
        ),
        (
            "address = \"[::1]:514\"",
            "address = \"::1:514\"",
            "::1:514",
            "must be host:port",
        ),
        (
            "address = \"[::1]:514\"",
            "address = \"localhost:0\"",
            "localhost:0",
            "port 0",
        ),
        (
            "name = \"local\"",
            "name = \"soc\"",
            "name = \"soc\"",
            "used twice",
        ),
        (
            "name = \"icu-gateway-1\"",
            "name = \"icu gateway\"",
            "icu gateway",
            "gateway name",
        ),
        (
            "checkpoints = false",
            "checkpoints = false\n[export.syslog.tls]\nca = \"x.pem\"",
            "x.pem",
            "set transport = \"tls\"",
        ),
    ] {
        assert!(EXPORT.contains(from), "{from}");
        let text = EXPORT.replacen(from, to, 1);
        let line = text
            .lines()
            .enumerate()
            .filter(|(_, l)| l.contains(at))
            .last()
            .unwrap()
            .0
            + 1;
        let p = problems(&text);
        assert!(
            p.iter()
                .any(|p| p.line == line && p.message.contains(expect)),
            "{to} (line {line}): {p:#?}"
        );
    }
}

#[test]
fn audit_rotation_and_retention_have_safe_defaults_and_bounds() {
    let v = parse("[gateway]\ndata_dir = \"d\"\n").unwrap();
    let a = &v.config.gateway.audit;
    assert_eq!(
        (a.rotate_bytes, a.rotate_secs, a.retain_files, a.retain_days),
        (256 << 20, 86_400, 30, 30)
    );
    let v = parse(
        "[gateway]\ndata_dir = \"d\"\n[gateway.audit]\nrotate_bytes = 0\nrotate_secs = 0\nretain_files = 0\nretain_days = 0\n",
    )
    .unwrap();
    assert_eq!(v.config.gateway.audit.rotate_bytes, 0);
    let p = problems("[gateway]\ndata_dir = \"d\"\n[gateway.audit]\nrotate_bytes = 100\n");
    assert!(
        p.iter().any(|p| p.message.contains("rotate_bytes")),
        "{p:?}"
    );
    let p = problems("[gateway]\ndata_dir = \"d\"\n[gateway.audit]\nretain_files = -1\n");
    assert!(!p.is_empty());
}

/// A device file in a temporary directory beside a copy of the minimal site.
fn with_device_file(devices: &str) -> (tempfile::TempDir, Result<Validated, ConfigError>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("imported.toml"), devices).unwrap();
    let main = MINIMAL.replacen(
        "[gateway]",
        "device_files = [\"imported.toml\"]\n\n[gateway]",
        1,
    );
    let v = Config::parse(&main, "site.toml", dir.path());
    (dir, v)
}

#[test]
fn device_files_add_devices_with_their_asset_facts() {
    let (_d, v) = with_device_file(
        "[[device]]\nid = \"pump-7\"\nkind = \"infusion-pump\"\naddresses = [\"127.0.0.77\"]\n\
         vendor = \"Smiths Medical\"\nmodel = \"Medfusion 4000\"\nversion = \"1.1.2\"\n\
         serial = \"SN-1\"\nlocation = \"ICU bed 4\"\nowner = \"clinical engineering\"\n\
         criticality = \"life-sustaining\"\n",
    );
    let v = v.unwrap();
    let d = v
        .config
        .devices
        .iter()
        .find(|d| d.id.get_ref() == "pump-7")
        .unwrap();
    assert_eq!(d.vendor.as_ref().unwrap().get_ref(), "Smiths Medical");
    assert_eq!(
        *d.criticality.as_ref().unwrap().get_ref(),
        Criticality::LifeSustaining
    );
    assert_eq!(
        v.device_by_ip[&"127.0.0.77".parse::<IpAddr>().unwrap()],
        "pump-7"
    );
}

#[test]
fn a_problem_in_a_device_file_is_located_in_that_file() {
    // Line 3 of the device file: an unknown criticality.
    let (_d, v) = with_device_file(
        "[[device]]\nid = \"pump-7\"\ncriticality = \"very\"\nkind = \"x\"\naddresses = [\"127.0.0.77\"]\n",
    );
    let Err(ConfigError::Invalid(p)) = v else {
        panic!("accepted an unknown criticality")
    };
    assert!(p[0].file.ends_with("imported.toml"), "{}", p[0]);
    assert_eq!(p[0].line, 3, "{}", p[0]);
}

#[test]
fn a_device_file_holds_devices_only() {
    // Appended, a bare key would land in the main file's last table: refused.
    let (_d, v) = with_device_file("log_level = \"debug\"\n");
    let Err(ConfigError::Invalid(p)) = v else {
        panic!("accepted a device file with more than devices")
    };
    assert!(p[0].message.contains("[[device]] entries only"), "{}", p[0]);
    assert!(p[0].file.ends_with("imported.toml"), "{}", p[0]);
    let (_d, v) = with_device_file("[gateway]\nname = \"x\"\n");
    assert!(
        v.is_err(),
        "a [gateway] table in a device file was accepted"
    );
}

#[test]
fn a_missing_sbom_is_a_problem() {
    let (_d, v) = with_device_file(
        "[[device]]\nid = \"pump-7\"\nkind = \"x\"\naddresses = [\"127.0.0.77\"]\nsbom = \"nope.json\"\n",
    );
    let Err(ConfigError::Invalid(p)) = v else {
        panic!("accepted a missing sbom")
    };
    assert!(p.iter().any(|p| p.message.contains("sbom file")), "{p:?}");
}

/// MINIMAL with a `[route.privacy]` table appended to its route.
fn with_privacy(table: &str) -> String {
    MINIMAL.replace(
        "drug_library = \"adult-icu\"\n",
        &format!("drug_library = \"adult-icu\"\n\n[route.privacy]\n{table}\n"),
    )
}

#[test]
fn privacy_defaults_to_pass_and_resolves_to_nothing() {
    let v = parse(MINIMAL).unwrap();
    assert!(v.routes[0].privacy.is_none());
    assert!(
        !v.privacy.raw_patient_ids_in_events,
        "events carry pseudonyms unless the site says raw"
    );
    assert!(v.privacy.key_file.ends_with("privacy/site.key"));
    // A purpose alone makes the route a consent filter.
    let v = parse(&with_privacy("purpose = \"research\"")).unwrap();
    let p = v.routes[0].privacy.as_ref().unwrap();
    assert_eq!(
        (p.mode, p.purpose.as_deref()),
        (PrivacyMode::Pass, Some("research"))
    );
}

#[test]
fn privacy_profile_is_read() {
    let v = parse(&with_privacy(
        "mode = \"pseudonymise\"\npurpose = \"registry\"\nsegments = { NTE = \"keep\", ZPI = \"remove\" }\n\
         [[route.privacy.field]]\nfield = \"PID-11.5\"\naction = \"generalise\"\n",
    ))
    .unwrap();
    let p = v.routes[0].privacy.as_ref().unwrap();
    assert_eq!(p.mode, PrivacyMode::Pseudonymise);
    assert_eq!(
        p.segments,
        vec![
            ("NTE".into(), "keep".into()),
            ("ZPI".into(), "remove".into())
        ]
    );
    assert_eq!(p.fields[0].0, FieldAddress::parse("PID-11.5").unwrap());
    assert_eq!(p.fields[0].1, "generalise");
}

#[test]
fn privacy_mistakes_are_located_errors() {
    for (table, needle) in [
        ("mode = \"anonymise\"", "privacy mode must be"),
        ("mode = \"pseudonymise\"\nsegments = { MSH = \"remove\" }", "MSH stays as it is"),
        ("mode = \"pseudonymise\"\nsegments = { PID = \"drop\" }", "segment action"),
        ("mode = \"pseudonymise\"\n[[route.privacy.field]]\nfield = \"PID7\"\naction = \"remove\"", "not a field address"),
        ("mode = \"pseudonymise\"\n[[route.privacy.field]]\nfield = \"PID-7\"\naction = \"hash\"", "field action"),
        ("mode = \"minimise\"\n[[route.privacy.field]]\nfield = \"PID-3\"\naction = \"pseudonymise\"", "carries no pseudonyms"),
        ("segments = { NTE = \"keep\" }", "no effect with privacy mode \"pass\""),
        ("mode = \"pseudonymise\"\ndicom_options = [\"retain-uids\"]", "DICOM routes only"),
        ("purpose = \"research team\"", "purpose"),
        ("mode = \"pseudonymise\"\nhold_bytes = 100", "DICOM routes only"),
    ] {
        let p = problems(&with_privacy(table));
        assert!(
            p.iter().any(|x| x.message.contains(needle) && x.line > 1),
            "{table}: {p:?}"
        );
    }
}

#[test]
fn site_privacy_is_read() {
    let v = parse(&format!(
        "{MINIMAL}\n[privacy]\nevent_patient_ids = \"raw\"\nkey_file = \"keys/site.key\"\n"
    ))
    .unwrap();
    assert!(v.privacy.raw_patient_ids_in_events);
    assert_eq!(v.privacy.key_file, Path::new("/etc/wardgate/keys/site.key"));
    assert_eq!(
        v.privacy.dicom_digest, "sha256",
        "SHA-256 unless the site says"
    );
    let p = problems(&format!(
        "{MINIMAL}\n[privacy]\nevent_patient_ids = \"hashed\"\n"
    ));
    assert!(p[0].message.contains("event_patient_ids"), "{p:?}");
    let v = parse(&format!(
        "{MINIMAL}\n[privacy]\ndicom_digest = \"blake3\"\n"
    ))
    .unwrap();
    assert_eq!(v.privacy.dicom_digest, "blake3");
    let v = parse(&format!(
        "{MINIMAL}\n[privacy]\ndicom_digest = \"blake3-elements\"\n"
    ))
    .unwrap();
    assert_eq!(v.privacy.dicom_digest, "blake3-elements");
    let p = problems(&format!("{MINIMAL}\n[privacy]\ndicom_digest = \"md5\"\n"));
    assert!(
        p[0].message.contains("dicom_digest must be") && p[0].line > 1,
        "{p:?}"
    );
}

#[test]
fn dicom_privacy_is_read_and_its_limits_are_located_errors() {
    let dicom = include_str!("../../../examples/dicom.toml");
    let with = |t: &str| format!("{dicom}\n[route.privacy]\n{t}\n");
    let v = parse(&with(
        "mode = \"pseudonymise\"\npurpose = \"teaching\"\ndicom_options = [\"retain-longitudinal-modified-dates\", \"retain-safe-private\"]\nsafe_private = [\"0019,GEMS_ACQU_01,10\"]\n[[route.privacy.attribute]]\ntag = \"0008,0080\"\naction = \"K\"",
    ))
    .unwrap();
    let p = v.routes[0].privacy.as_ref().unwrap();
    assert_eq!(p.dicom_options.len(), 2);
    assert_eq!(p.safe_private[0].creator, "GEMS_ACQU_01");
    assert_eq!(p.attributes, vec![(0x0008_0080, "K".to_owned())]);
    assert_eq!(p.hold_bytes as u64, DEFAULT_HOLD_BYTES);
    for (t, needle) in [
        ("purpose = \"teaching\"", "needs mode"),
        ("mode = \"pseudonymise\"\ndicom_options = [\"retain-everything\"]", "not an option of PS3.15"),
        ("mode = \"pseudonymise\"\ndicom_options = [\"retain-longitudinal-full-dates\", \"retain-longitudinal-modified-dates\"]", "exclude each other"),
        ("mode = \"pseudonymise\"\nsafe_private = [\"0019,GEMS_ACQU_01,10\"]", "needs the option"),
        ("mode = \"pseudonymise\"\n[[route.privacy.field]]\nfield = \"PID-3\"\naction = \"remove\"", "HL7 routes only"),
        ("mode = \"pseudonymise\"\nhold_bytes = 10", "hold_bytes must be"),
    ] {
        let p = problems(&with(t));
        assert!(p.iter().any(|x| x.message.contains(needle)), "{t}: {p:?}");
    }
    // Queries would carry identifiers to a de-identified destination.
    let text = with("mode = \"pseudonymise\"").replace(
        "operations = [\"C-ECHO\", \"C-STORE\"]",
        "operations = [\"C-ECHO\", \"C-STORE\", \"C-FIND\"]",
    );
    let p = problems(&text);
    assert!(
        p.iter()
            .any(|x| x.message.contains("C-FIND on a de-identifying route")),
        "{p:?}"
    );
}

#[test]
fn a_route_time_zone_must_be_one_the_system_knows_and_only_on_hl7() {
    let ok = parse(&MINIMAL.replace(
        "drug_library = \"adult-icu\"\n",
        "drug_library = \"adult-icu\"\ntime_zone = \"America/Santiago\"\n",
    ))
    .unwrap();
    assert_eq!(ok.routes[0].time_zone.as_deref(), Some("America/Santiago"));
    assert_eq!(parse(MINIMAL).unwrap().routes[0].time_zone, None);
    let p = problems(&MINIMAL.replace(
        "drug_library = \"adult-icu\"\n",
        "drug_library = \"adult-icu\"\ntime_zone = \"Mars/Olympus_Mons\"\n",
    ));
    assert!(
        p.iter()
            .any(|p| p.message.contains("Mars/Olympus_Mons")
                && p.message.contains("not a time zone")),
        "{p:?}"
    );
}

#[test]
fn drug_and_care_area_limits_must_be_positive_numbers() {
    for (drug_key, area_key) in [
        ("pca_lockout_min_minutes = 0", ""),
        ("pca_lockout_min_minutes = nan", ""),
        ("", "pca_lockout_min_minutes = -1"),
        ("", "vtbi_max_ml = nan"),
        ("", "duration_max_min = 0"),
    ] {
        let site = MINIMAL.replace(
            "[[drug_library.drug]]",
            &format!(
                "[[drug_library.care_area]]\nid = \"icu\"\n\n[[drug_library.drug]]\n{drug_key}"
            ),
        ) + &format!("\n[[drug_library.drug.care_area]]\nid = \"icu\"\n{area_key}\n");
        let p = problems(&site);
        assert!(
            p.iter()
                .any(|p| p.message.contains("must be a positive number")),
            "{drug_key}{area_key}: {p:?}"
        );
    }
}

/// `bolus_rate_*`: in the drug's rate unit, positive, a hard one required
/// beside a soft one and not below it; a care area's own checked too.
#[test]
fn bolus_rate_limits_are_checked() {
    let with = |drug_key: &str, area_key: &str| {
        MINIMAL.replace(
            "[[drug_library.drug]]",
            &format!(
                "[[drug_library.care_area]]\nid = \"icu\"\n\n[[drug_library.drug]]\n{drug_key}"
            ),
        ) + &format!("\n[[drug_library.drug.care_area]]\nid = \"icu\"\n{area_key}\n")
    };
    let ok = parse(&with(
        "bolus_rate_soft_max = 500\nbolus_rate_hard_max = 1000",
        "bolus_rate_hard_max = 800",
    ))
    .unwrap();
    assert_eq!(
        ok.config.drug_libraries[0].drugs[0]
            .bolus_rate_hard_max
            .as_ref()
            .map(|v| *v.get_ref()),
        Some(1000.0)
    );
    for (drug_key, area_key, says) in [
        ("bolus_rate_hard_max = 0", "", "must be a positive number"),
        ("bolus_rate_hard_max = nan", "", "must be a positive number"),
        ("bolus_rate_soft_max = 500", "", "a hard limit is required"),
        (
            "bolus_rate_soft_max = 900\nbolus_rate_hard_max = 800",
            "",
            "is above",
        ),
        (
            "bolus_rate_hard_max = 800",
            "bolus_rate_soft_max = 900",
            "is above",
        ),
    ] {
        let p = problems(&with(drug_key, area_key));
        assert!(
            p.iter().any(|p| p.message.contains(says)),
            "{drug_key} / {area_key}: {p:?}"
        );
    }
}

/// `routes` on a drug and on its care-area override: an empty list or code
/// is refused at its position, pointing at `available = false`.
#[test]
fn drug_routes_are_checked_with_locations() {
    let lib = |drug_routes: &str, area_routes: &str| {
        format!(
            "{MINIMAL}{drug_routes}\n\n[[drug_library.care_area]]\nid = \"pain\"\n\n[[drug_library.drug]]\nnames = [\"morphine\"]\nrate_unit = \"mg/h\"\nrate_hard_max = 10\nroutes = [\"IV\"]\n\n[[drug_library.drug.care_area]]\nid = \"pain\"\n{area_routes}\n"
        )
    };
    let ok = parse(&lib("routes = [\"IV\", \"sc\"]", "routes = [\"EP\"]")).unwrap();
    let drugs = &ok.config.drug_libraries[0].drugs;
    let names = |r: &Option<Spanned<Vec<Spanned<String>>>>| {
        r.as_ref().map(|l| {
            l.get_ref()
                .iter()
                .map(|s| s.get_ref().clone())
                .collect::<Vec<_>>()
        })
    };
    assert_eq!(
        names(&drugs[0].routes),
        Some(vec!["IV".into(), "sc".into()])
    );
    assert_eq!(
        names(&drugs[1].care_areas[0].routes),
        Some(vec!["EP".into()])
    );
    // Without the key nothing changes: no routes.
    assert!(parse(MINIMAL).unwrap().config.drug_libraries[0].drugs[0]
        .routes
        .is_none());

    let cases = [
        (lib("routes = []", ""), "routes = []", "is empty"),
        (
            lib("routes = [\"IV\", \" \"]", ""),
            "routes = [\"IV\", \" \"]",
            "route code for \"heparin\" is empty",
        ),
        (
            lib("routes = [\"IV\", \"iv\"]", ""),
            "routes = [\"IV\", \"iv\"]",
            "appears twice",
        ),
        (lib("", "routes = []"), "routes = []", "available = false"),
        (
            lib("", "routes = [\"\"]"),
            "routes = [\"\"]",
            "route code for \"morphine\" is empty",
        ),
    ];
    for (text, line, needle) in cases {
        let p = problems(&text);
        let errors: Vec<_> = p.iter().filter(|p| p.level == Level::Error).collect();
        let want = text.lines().position(|l| l == line).unwrap() + 1;
        assert_eq!(errors.len(), 1, "{line}: {errors:#?}");
        assert_eq!(errors[0].line, want, "{}", errors[0]);
        assert!(errors[0].message.contains(needle), "{}", errors[0]);
        assert!(errors[0].column > 1, "{}", errors[0]);
    }
    // A wrong type is serde's, located too.
    let p = problems(&lib("routes = \"IV\"", ""));
    assert!(
        p.iter().any(|p| p.message.contains("invalid type")),
        "{p:#?}"
    );
}

/// `routes` lives in a library file like the other drug keys, signed or not.
#[test]
fn routes_in_a_signed_library_file_are_read() {
    use ed25519_dalek::Signer;
    let dir = tempfile::tempdir().unwrap();
    let lib = "version = \"1\"\n\n[[drug]]\nnames = [\"vincristine\"]\ndose_unit = \"mg\"\ndose_hard_max = 2\nroutes = [\"IV\"]\n";
    std::fs::write(dir.path().join("lib.toml"), lib).unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let mut signed = LIBRARY_SIGNATURE_DOMAIN.to_vec();
    signed.extend_from_slice(lib.as_bytes());
    let sig = key.sign(&signed).to_bytes();
    std::fs::write(
        dir.path().join("lib.toml.sig"),
        library_signature_line("pharmacy", &sig),
    )
    .unwrap();
    let head = MINIMAL.split("[[drug_library]]").next().unwrap();
    let text = format!(
        "{head}[[drug_library]]\nid = \"adult-icu\"\nfile = \"lib.toml\"\nrequire_signed = true\n\n[[library_signer]]\nid = \"pharmacy\"\npublic_key = \"{}\"\n",
        hex::encode(key.verifying_key().to_bytes())
    );
    let v = Config::parse(&text, "site.toml", dir.path()).unwrap();
    let l = &v.config.drug_libraries[0];
    // The signer is named with its key's fingerprint.
    let fp = key_fingerprint(&key.verifying_key().to_bytes());
    assert!(fp.starts_with("sha256:") && fp.len() == 7 + 32, "{fp}");
    assert_eq!(
        l.signer.as_deref(),
        Some(format!("pharmacy (key {fp})").as_str())
    );
    let routes = l.drugs[0].routes.as_ref().unwrap().get_ref();
    assert_eq!(routes[0].get_ref(), "IV");
    // An empty list in the file is located in the file.
    std::fs::write(dir.path().join("lib.toml"), lib.replace("[\"IV\"]", "[]")).unwrap();
    std::fs::remove_file(dir.path().join("lib.toml.sig")).unwrap();
    let unsigned = text.replace("require_signed = true\n", "");
    match Config::parse(&unsigned, "site.toml", dir.path()) {
        Err(ConfigError::Invalid(p)) => {
            assert!(
                p.iter()
                    .any(|p| p.file.ends_with("lib.toml") && p.message.contains("is empty")),
                "{p:#?}"
            );
        }
        other => panic!("expected problems, got {other:?}"),
    }
}

/// A review's finding: care areas `nicu` and `NICU` in one library were
/// accepted, and records naming either could not be told apart.
#[test]
fn care_area_ids_differing_only_in_case_are_refused() {
    let text = MINIMAL.replace(
        "[[drug_library]]\nid = \"adult-icu\"\n",
        "[[drug_library]]\nid = \"adult-icu\"\n\n[[drug_library.care_area]]\nid = \"nicu\"\npoints_of_care = [\"NICU\"]\n\n[[drug_library.care_area]]\nid = \"NICU\"\npoints_of_care = [\"PICU\"]\n",
    );
    assert_ne!(text, MINIMAL);
    match Config::parse(&text, "site.toml", Path::new(".")) {
        Err(ConfigError::Invalid(p)) => assert!(
            p.iter()
                .any(|p| p.message.contains("\"NICU\" is declared twice")),
            "{p:#?}"
        ),
        other => panic!("accepted: {other:?}"),
    }
}
