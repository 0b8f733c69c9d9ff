//! `wardgate demo`: the gateway on an embedded example site (examples/demo.toml),
//! a simulated pump server and EHR behind it, and scripted clinical traffic —
//! routine messages, unsafe infusion orders and attacks — sent from different
//! loopback addresses standing for different devices. Prints what happened to
//! each, what was forwarded, and verifies the audit log. Exits non-zero if any
//! scenario did not behave as expected, so the demo is also a smoke test.

use crate::serve;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use wardgate_config::Config;
use wardgate_proto::hl7::ack::{build_ack, AckCode, AckParams};
use wardgate_proto::hl7::{Limits as Hl7Limits, Message};
use wardgate_proto::mllp::{self, Framer, Limits, Progress};

const SITE_TEMPLATE: &str = include_str!("../../../examples/demo.toml");
const MARKER: &str = ".wardgate-demo";

/// Options for `wardgate demo`.
#[derive(Args)]
pub(crate) struct DemoArgs {
    /// Where the demo keeps its configuration, audit log and database (replaced on
    /// each run). Inspect it afterwards with `wardgate events --config DIR/wardgate.toml`.
    #[arg(long, default_value = "wardgate-demo")]
    dir: PathBuf,
    /// Print every event as JSON lines after the summary.
    #[arg(long)]
    json: bool,
}

/// What a scenario expects back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// An acknowledgement with this MSA-1 code.
    Ack(&'static str),
    /// The connection is refused before anything is read.
    Refused,
}

struct Scenario {
    name: &'static str,
    from: IpAddr,
    route: &'static str,
    payload: Vec<u8>,
    expect: Expect,
    forwarded: bool,
    rule: Option<&'static str>,
}

pub(crate) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

fn hl7(segments: &[&str]) -> Vec<u8> {
    let mut s = segments.join("\r");
    s.push('\r');
    s.into_bytes()
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    mllp::encode(payload, &mut out);
    out
}

fn order(id: &str, rxg: &str, extra: &[&str]) -> Vec<u8> {
    let msh = format!("MSH|^~\\&|EHR|ICU|PUMPSRV|ICU|20261124031500||RGV^O15^RGV_O15|{id}|P|2.6");
    let mut segs = vec![
        msh.as_str(),
        "PID|||4711^^^HOSP^MR||Doe^Jane||19580312|F",
        "PV1||I|ICU^12^1",
        "ORC|RE|ORD-88^EHR",
    ];
    segs.push(rxg);
    segs.push("RXR|IV^Intravenous^HL70162");
    segs.extend_from_slice(extra);
    hl7(&segs)
}

const HEPARIN: &str = "HEP^heparin^LOCAL|100||mL^mL^UCUM||||||||";
const CONC: &str = "25000|U^U^UCUM|||||500|mL^mL^UCUM";

fn heparin(id: &str, ml_per_h: u32) -> Vec<u8> {
    order(
        id,
        &format!("RXG|1||^^^20261124031500|{HEPARIN}{ml_per_h}|mL/h^mL/h^UCUM|{CONC}"),
        &[],
    )
}

fn scenarios() -> Vec<Scenario> {
    let ehr = ip("127.0.0.2");
    let vitals = hl7(&[
        "MSH|^~\\&|MONGW|ICU|EHR|ICU|20261124031500||ORU^R01^ORU_R01|VS-1001|P|2.6",
        "PID|||4711^^^HOSP^MR||Doe^Jane",
        "OBR|1|||69837^MDC_DEV_METER_PHYSIO_MULTI_PARAM_MDS^MDC",
        "OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.1|97|262688^MDC_DIM_PERCENT^MDC|||||R",
        "OBX|2|NM|147842^MDC_ECG_HEART_RATE^MDC|1.1.1.2|72|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||R",
    ]);
    let propofol =
        "RXG|1||^^^20261124031500|PROP^propofol^LOCAL|||||||||||40|MDC_DIM_MICRO_G_PER_KG_PER_MIN";
    let odd = String::from_utf8_lossy(&heparin("ORD-1010", 300)).replace('^', "#");
    vec![
        Scenario {
            name: "vital signs from the monitor gateway",
            from: ip("127.0.0.4"),
            route: "vital-signs",
            payload: vitals.clone(),
            expect: Expect::Ack("AA"),
            forwarded: true,
            rule: None,
        },
        Scenario {
            name: "EHR: results message on the pump route",
            from: ehr,
            route: "infusion-orders",
            payload: String::from_utf8_lossy(&vitals)
                .replace("VS-1001", "VS-1002")
                .into_bytes(),
            expect: Expect::Ack("AA"),
            forwarded: true,
            rule: None,
        },
        Scenario {
            name: "heparin 1200 U/h (24 mL/h of 50 U/mL)",
            from: ehr,
            route: "infusion-orders",
            payload: heparin("ORD-1001", 24),
            expect: Expect::Ack("AA"),
            forwarded: true,
            rule: None,
        },
        Scenario {
            name: "heparin 1750 U/h: above soft limit",
            from: ehr,
            route: "infusion-orders",
            payload: heparin("ORD-1002", 35),
            expect: Expect::Ack("AA"),
            forwarded: true,
            rule: Some("WG-INF-012"),
        },
        Scenario {
            name: "heparin 15000 U/h: tenfold error",
            from: ehr,
            route: "infusion-orders",
            payload: heparin("ORD-1003", 300),
            expect: Expect::Ack("AR"),
            forwarded: false,
            rule: Some("WG-INF-010"),
        },
        Scenario {
            name: "same error, '#' as component separator",
            from: ehr,
            route: "infusion-orders",
            payload: odd.into_bytes(),
            expect: Expect::Ack("AR"),
            forwarded: false,
            rule: Some("WG-INF-010"),
        },
        Scenario {
            name: "heparin bag 25000 U/250 mL, 10 mL/h, VTBI",
            from: ehr,
            route: "infusion-orders",
            payload: order(
                "ORD-1011",
                "RXG|1||^^^20261124031500|HEP^heparin^LOCAL|250||263762^MDC_DIM_MILLI_L^MDC||||||||10|265266^MDC_DIM_MILLI_L_PER_HR^MDC|25000|U^U^UCUM|||||250|mL^mL^UCUM",
                &[],
            ),
            expect: Expect::Ack("AA"),
            forwarded: true,
            rule: None,
        },
        Scenario {
            name: "attack: insulin 20 'MU/h' (mega or milli?)",
            from: ehr,
            route: "infusion-orders",
            payload: order(
                "ORD-1012",
                "RXG|1||^^^20261124031500|INS^insulin^LOCAL|||||||||||20|MU/h^MU/h^L",
                &[],
            ),
            expect: Expect::Ack("AR"),
            forwarded: false,
            rule: Some("WG-INF-014"),
        },
        Scenario {
            name: "attack: OBX pump rate 10x the RXG rate",
            from: ehr,
            route: "infusion-orders",
            payload: order(
                "ORD-1013",
                &format!("RXG|1||^^^20261124031500|{HEPARIN}24|mL/h^mL/h^UCUM|{CONC}"),
                &["OBX|1|NM|157784^MDC_FLOW_FLUID_PUMP^MDC||240|265266^MDC_DIM_MILLI_L_PER_HR^MDC|||||F"],
            ),
            expect: Expect::Ack("AR"),
            forwarded: false,
            // The pump may read either rate: the OBX's 12 000 U/h is over the
            // hard limit, which heads the record (the disagreement, WG-INF-017,
            // is listed beside it).
            rule: Some("WG-INF-010"),
        },
        Scenario {
            name: "attack: form feed hides a second order",
            from: ehr,
            route: "infusion-orders",
            payload: String::from_utf8_lossy(&heparin("ORD-1014", 24))
                .replace(
                    "RXR|",
                    "NTE|1||see note\x0cMSH|^~\\&|EHR|ICU|PUMPSRV|ICU|2026||RGV^O15|X|P|2.6\rRXR|",
                )
                .into_bytes(),
            expect: Expect::Ack("AE"),
            forwarded: false,
            rule: Some("WG-HL7-P09"),
        },
        Scenario {
            name: "propofol 40 mcg/kg/min, weight 70 kg",
            from: ehr,
            route: "infusion-orders",
            payload: order(
                "ORD-1004",
                propofol,
                &["OBX|1|NM|188736^MDC_ATTR_PT_WEIGHT^MDC||70|263875^MDC_DIM_KILO_G^MDC"],
            ),
            expect: Expect::Ack("AA"),
            forwarded: true,
            rule: None,
        },
        Scenario {
            name: "heparin 18 U/kg/h with no patient weight",
            from: ehr,
            route: "infusion-orders",
            payload: order(
                "ORD-1005",
                "RXG|1||^^^20261124031500|HEP^heparin^LOCAL|||||||||||18|U/kg/h",
                &[],
            ),
            expect: Expect::Ack("AR"),
            forwarded: false,
            rule: Some("WG-INF-006"),
        },
        Scenario {
            name: "drug not in the library",
            from: ehr,
            route: "infusion-orders",
            payload: order(
                "ORD-1006",
                "RXG|1||^^^20261124031500|KCL^potassium chloride^LOCAL|||||||||||10|mmol/h",
                &[],
            ),
            expect: Expect::Ack("AR"),
            forwarded: false,
            rule: Some("WG-INF-003"),
        },
        Scenario {
            name: "admission message on the pump route",
            from: ehr,
            route: "infusion-orders",
            payload: hl7(&[
                "MSH|^~\\&|EHR|ICU|PUMPSRV|ICU|20261124031500||ADT^A08^ADT_A01|ADT-77|P|2.5",
                "PID|||4711",
            ]),
            expect: Expect::Ack("AR"),
            forwarded: false,
            rule: Some("WG-HL7-001"),
        },
        Scenario {
            name: "attack: unknown laptop sends an order",
            from: ip("127.0.0.66"),
            route: "infusion-orders",
            payload: heparin("ORD-6666", 24),
            expect: Expect::Refused,
            forwarded: false,
            rule: Some("WG-ACCESS-001"),
        },
        Scenario {
            name: "attack: monitor gateway programs a pump",
            from: ip("127.0.0.4"),
            route: "infusion-orders",
            payload: heparin("ORD-6667", 24),
            expect: Expect::Refused,
            forwarded: false,
            rule: Some("WG-ACCESS-002"),
        },
        Scenario {
            name: "attack: garbage instead of MLLP",
            from: ehr,
            route: "infusion-orders",
            payload: Vec::new(),
            expect: Expect::Ack("AE"),
            forwarded: false,
            rule: Some("WG-MLLP-001"),
        },
        Scenario {
            name: "attack: oversized frame (128 KiB)",
            from: ehr,
            route: "infusion-orders",
            payload: vec![b'A'; 128 * 1024],
            expect: Expect::Ack("AE"),
            forwarded: false,
            rule: Some("WG-MLLP-002"),
        },
    ]
}

/// A simulated upstream: acknowledges every message with AA and keeps what it received.
async fn sink(listener: TcpListener, received: Arc<Mutex<Vec<Vec<u8>>>>) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            return;
        };
        let received = received.clone();
        tokio::spawn(async move {
            let mut framer = Framer::new(Limits {
                max_frame_bytes: 1 << 20,
            });
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            loop {
                let n = match sock.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                while let Ok(Progress::Frame(f)) = framer.next(&buf) {
                    let whole = f.frame(&buf).to_vec();
                    let mut ack = Vec::new();
                    if let Ok(m) = Message::parse(f.payload(&buf), &Hl7Limits::default()) {
                        let p = AckParams {
                            summary: None,
                            location: None,
                            application_code: None,
                            code: AckCode::AA,
                            text: "",
                            error_code: None,
                            control_id: "SINK",
                            timestamp: "20261124031500",
                            sending_application: "SIM",
                        };
                        build_ack(&m, &p, &mut ack);
                    }
                    if let Ok(mut r) = received.lock() {
                        r.push(whole);
                    }
                    buf.drain(..f.len);
                    if sock.write_all(&frame(&ack)).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
}

pub(crate) async fn connect_from(src: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::new(src, 0))?;
    s.connect(to).await
}

/// Sends one scenario and returns what came back: an MSA-1 code, or "refused".
async fn play(s: &Scenario, to: SocketAddr) -> Result<String> {
    let mut sock = connect_from(s.from, to).await.context("connecting")?;
    let bytes = if s.rule == Some("WG-MLLP-001") {
        b"GET / HTTP/1.1\r\nHost: pump\r\n\r\n".to_vec()
    } else if s.payload.iter().all(|&b| b == b'A') {
        let mut v = vec![mllp::START_BLOCK];
        v.extend_from_slice(&s.payload);
        v
    } else {
        frame(&s.payload)
    };
    // A refused peer may see its write fail; what matters is what comes back.
    let _ = sock.write_all(&bytes).await;
    let mut framer = Framer::new(Limits {
        max_frame_bytes: 1 << 20,
    });
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match tokio::time::timeout(Duration::from_secs(5), sock.read(&mut chunk)).await {
            Err(_) => bail!("no answer within 5 s"),
            Ok(Ok(0)) | Ok(Err(_)) => return Ok("refused".into()),
            Ok(Ok(n)) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Ok(Progress::Frame(f)) = framer.next(&buf) {
            let m = Message::parse(f.payload(&buf), &Hl7Limits::default())
                .map_err(|e| anyhow::anyhow!("unparsable reply: {e}"))?;
            let code = m
                .segments_named(b"MSA")
                .next()
                .map(|s| s.field(1).text().into_owned())
                .unwrap_or_default();
            return Ok(code);
        }
    }
}

fn prepare_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        if !dir.join(MARKER).exists() {
            bail!(
                "{} exists and is not a wardgate demo directory; choose another with --dir",
                dir.display()
            );
        }
        std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    wardgate_audit::fsx::create_dir(dir)?;
    wardgate_audit::fsx::write_replace(
        &dir.join(MARKER),
        b"created by `wardgate demo`; replaced on each run\n",
    )?;
    Ok(())
}

pub(crate) fn run(args: DemoArgs) -> Result<ExitCode> {
    prepare_dir(&args.dir)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (results, forwarded, totals, imaging, home) = rt.block_on(async {
        let pump = TcpListener::bind("127.0.0.3:0")
            .await
            .context("binding the simulated pump server on 127.0.0.3")?;
        let ehr = TcpListener::bind("127.0.0.2:0")
            .await
            .context("binding the simulated EHR on 127.0.0.2")?;
        let pacs = TcpListener::bind("127.0.0.6:0")
            .await
            .context("binding the simulated PACS on 127.0.0.6")?;
        let broker = TcpListener::bind("127.0.0.40:0")
            .await
            .context("binding the simulated MQTT broker on 127.0.0.40")?;
        let site = SITE_TEMPLATE
            .replace("{UPSTREAM_PORT}", &pump.local_addr()?.port().to_string())
            .replace("{EHR_PORT}", &ehr.local_addr()?.port().to_string())
            .replace("{PACS_PORT}", &pacs.local_addr()?.port().to_string())
            .replace("{BROKER_PORT}", &broker.local_addr()?.port().to_string());
        let config_path = args.dir.join("wardgate.toml");
        wardgate_audit::fsx::write_replace(&config_path, site.as_bytes())?;
        let v = Config::load(&config_path).map_err(anyhow::Error::new)?;
        let received = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(sink(pump, received.clone()));
        tokio::spawn(sink(ehr, received.clone()));
        let stored = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        tokio::spawn(crate::demo_dicom::pacs(pacs, stored.clone()));
        let published = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(crate::demo_mqtt::broker(broker, published.clone()));
        // A fresh directory each run: nothing to find, so nothing to accept.
        let running = serve::start(
            &v,
            crate::GapArg {
                accept_audit_gap: false,
            },
        )
        .await?;
        let addrs: HashMap<String, SocketAddr> = running.proxy.local_addrs().into_iter().collect();
        let stats = running.recorder.handle();
        let (tx, rx) = tokio::sync::watch::channel(false);
        let serve::Running {
            recorder,
            proxy,
            exporters,
            _lock,
            ..
        } = running;
        let server = tokio::spawn(proxy.run(rx));
        let mut results = Vec::new();
        for s in scenarios() {
            let to = addrs.get(s.route).copied().context("route")?;
            let got = play(&s, to).await.unwrap_or_else(|e| format!("error: {e}"));
            let forwarded = received
                .lock()
                .map(|r| {
                    r.iter().any(|f| {
                        !s.payload.is_empty() && f.get(1..f.len() - 2) == Some(&s.payload[..])
                    })
                })
                .unwrap_or(false);
            results.push((got, forwarded));
        }
        let mut imaging = Vec::new();
        let to = addrs.get("imaging").copied().context("route imaging")?;
        for (n, s) in crate::demo_dicom::scenarios().iter().enumerate() {
            use std::sync::atomic::Ordering::Relaxed;
            let before = stored.load(Relaxed);
            let got = crate::demo_dicom::play(s, to, n)
                .await
                .unwrap_or_else(|e| format!("error: {e}"));
            imaging.push((got, stored.load(Relaxed) > before));
        }
        let mut home = Vec::new();
        let to = addrs
            .get("home-monitoring")
            .copied()
            .context("route home-monitoring")?;
        let mut signer = crate::demo_mqtt::Signer::default();
        for s in crate::demo_mqtt::scenarios() {
            let before = published.lock().map(|r| r.len()).unwrap_or(0);
            let got = crate::demo_mqtt::play(&s, to, &mut signer)
                .await
                .unwrap_or_else(|e| format!("error: {e}"));
            let after = published.lock().map(|r| r.len()).unwrap_or(0);
            home.push((got, after > before));
        }
        let _ = tx.send(true);
        let _ = server.await;
        let st = stats.stats();
        use std::sync::atomic::Ordering::Relaxed;
        let totals = (
            st.allowed.load(Relaxed),
            st.alerted.load(Relaxed),
            st.blocked.load(Relaxed),
            st.recorded.load(Relaxed),
        );
        serve::finish(recorder, exporters, std::time::Duration::from_secs(5))?;
        drop(_lock);
        let forwarded = received.lock().map(|r| r.len()).unwrap_or(0);
        anyhow::Ok((results, forwarded, totals, imaging, home))
    })?;

    // Read the record back the way an operator would.
    let events = wardgate_store::query_log(
        &args.dir.join("audit"),
        &wardgate_store::EventFilter::default(),
    )?;
    let docs: Vec<wardgate_event::Event> = events
        .iter()
        .filter_map(|e| serde_json::from_str(&e.doc).ok())
        .collect();
    let mut ok_all = true;
    println!(
        "wardgate demo: {} scenarios through the gateway\n",
        results.len() + imaging.len() + home.len()
    );
    println!(
        "{:<44} {:<11} {:<10} {:<10} {:<12} RULE",
        "SCENARIO", "FROM", "EXPECTED", "GOT", "FORWARDED"
    );
    for (s, (got, fwd)) in scenarios().iter().zip(&results) {
        let expected = match s.expect {
            Expect::Ack(c) => c.to_owned(),
            Expect::Refused => "refused".to_owned(),
        };
        let fired = s.rule.is_none_or(|r| {
            docs.iter()
                .any(|d| d.rule.as_ref().is_some_and(|rule| rule.id == r))
        });
        let ok = *got == expected && *fwd == s.forwarded && fired;
        ok_all &= ok;
        println!(
            "{:<44} {:<11} {:<10} {:<10} {:<12} {}{}",
            s.name,
            s.from.to_string(),
            expected,
            got,
            if *fwd { "yes" } else { "no" },
            s.rule.unwrap_or("-"),
            if ok { "" } else { "   <-- UNEXPECTED" }
        );
    }
    println!(
        "\n{:<44} {:<11} {:<10} {:<10} {:<12} RULE",
        "IMAGING (DICOM)", "FROM", "EXPECTED", "GOT", "STORED"
    );
    for (s, (got, stored)) in crate::demo_dicom::scenarios().iter().zip(&imaging) {
        let fired = s.rule.is_none_or(|r| {
            docs.iter().any(|d| {
                d.rule.as_ref().is_some_and(|rule| rule.id == r)
                    && d.network.as_ref().is_some_and(|n| n.protocol == "dicom")
            })
        });
        let ok = got == s.expect && *stored == s.stored && fired;
        ok_all &= ok;
        println!(
            "{:<44} {:<11} {:<10} {:<10} {:<12} {}{}",
            s.name,
            s.from.to_string(),
            s.expect,
            got,
            if *stored { "yes" } else { "no" },
            s.rule.unwrap_or("-"),
            if ok { "" } else { "   <-- UNEXPECTED" }
        );
    }
    println!(
        "\n{:<44} {:<11} {:<12} {:<12} {:<10} RULE",
        "HOME MONITORING (MQTT)", "FROM", "EXPECTED", "GOT", "BROKER"
    );
    for (s, (got, delivered)) in crate::demo_mqtt::scenarios().iter().zip(&home) {
        let fired = s.rule.is_none_or(|r| {
            docs.iter()
                .any(|d| d.rule.as_ref().is_some_and(|rule| rule.id == r))
        });
        let ok = got == s.expect && *delivered == s.delivered && fired;
        ok_all &= ok;
        println!(
            "{:<44} {:<11} {:<12} {:<12} {:<10} {}{}",
            s.name,
            s.from.to_string(),
            s.expect,
            got,
            if *delivered { "yes" } else { "no" },
            s.rule.unwrap_or("-"),
            if ok { "" } else { "   <-- UNEXPECTED" }
        );
    }
    println!("(the gateway guards each monitor's network link; an implant's radio link to its monitor is beyond any network device)");
    let (allowed, alerted, blocked, recorded) = totals;
    let stored = imaging.iter().filter(|(_, s)| *s).count();
    println!("\nforwarded to upstream systems: {forwarded} HL7 message(s), byte-for-byte as sent; {stored} DICOM object(s) stored in the PACS");
    println!(
        "decisions recorded: {recorded} ({allowed} allowed, {alerted} alerted, {blocked} blocked)"
    );
    match wardgate_audit::verify(&args.dir.join("audit"), None) {
        Ok(r) if !r.gaps.is_empty() => {
            ok_all = false;
            println!("audit log: {} gap(s)", r.gaps.len());
        }
        Ok(r) => println!(
            "audit log: intact, {} records, {} signed checkpoint(s)",
            r.records, r.checkpoints
        ),
        Err(e) => {
            ok_all = false;
            println!("audit log: VERIFICATION FAILED: {e}");
        }
    }
    if args.json {
        let v = crate::load(&args.dir.join("wardgate.toml"))?;
        for doc in crate::emitted_docs(&v, &events) {
            println!("{}", String::from_utf8_lossy(&doc));
        }
    }
    let cfg = args.dir.join("wardgate.toml");
    println!(
        "\nexplore: wardgate events --config {0}   |   wardgate audit verify --config {0}",
        cfg.display()
    );
    if ok_all {
        println!("demo: every scenario behaved as expected");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("demo: some scenarios did NOT behave as expected");
        Ok(ExitCode::from(1))
    }
}
