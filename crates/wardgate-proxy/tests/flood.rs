//! Flood protection end to end, in process: one device floods a route with
//! connections and pipelined messages while another's messages keep flowing,
//! through a real proxy to an MLLP sink on loopback.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::Instant;
use wardgate_config::Config;
use wardgate_engine::Policy;
use wardgate_event::event::Event;
use wardgate_proxy::{Proxy, ProxyOptions};
use wardgate_store::{query_log, EventFilter, Recorder, RecorderOptions};

fn site(data: &Path, sink: SocketAddr) -> String {
    format!(
        r#"
[gateway]
data_dir = "{}"

[gateway.limits]
max_connections_per_device = 4
new_connections_per_sec = 20
new_connections_burst = 20
messages_per_sec = 200
messages_burst = 50
flood_quiet_secs = 1

[[device]]
id = "ehr"
kind = "ehr"
addresses = ["127.0.0.2"]

[[device]]
id = "flooder"
kind = "monitor-gateway"
addresses = ["127.0.0.5"]

[[device]]
id = "sink"
kind = "infusion-pump-server"
addresses = ["127.0.0.3"]

[[route]]
id = "obs"
protocol = "hl7-mllp"
listen = "127.0.0.1:0"
upstream = "{sink}"
senders = ["ehr", "flooder"]
messages = ["ORU^R01"]
"#,
        data.display()
    )
}

fn frame(id: &str) -> Vec<u8> {
    format!("\x0bMSH|^~\\&|MON|ICU|EHR|ICU|20261124101500||ORU^R01^ORU_R01|{id}|P|2.6\rPID|||4711^^^HOSP^MR\rOBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||97|%|||||R\r\x1c\r")
        .into_bytes()
}

/// An MLLP server answering every frame with AA.
async fn sink(l: TcpListener) {
    loop {
        let Ok((mut s, _)) = l.accept().await else {
            return;
        };
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            loop {
                let n = match s.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                while let Some(end) = buf.windows(2).position(|w| w == b"\x1c\r") {
                    // MSA-2 echoes the message's MSH-10, as HL7 requires (an
                    // answer naming no message sent is not relayed).
                    let control = buf[..end]
                        .split(|&b| b == b'|')
                        .nth(9)
                        .unwrap_or_default()
                        .to_vec();
                    buf.drain(..end + 2);
                    let mut ack =
                        b"\x0bMSH|^~\\&|SINK|ICU|MON|ICU|20261124101500||ACK|1|P|2.6\rMSA|AA|"
                            .to_vec();
                    ack.extend_from_slice(&control);
                    ack.extend_from_slice(b"\r\x1c\r");
                    if s.write_all(&ack).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
}

async fn connect(from: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    let sock = TcpSocket::new_v4()?;
    let ip: std::net::IpAddr = from.parse().map_err(std::io::Error::other)?;
    sock.bind(SocketAddr::new(ip, 0))?;
    sock.connect(to).await
}

/// Sends one frame and reads its acknowledgement.
async fn exchange(s: &mut TcpStream, id: &str) -> std::io::Result<Vec<u8>> {
    s.write_all(&frame(id)).await?;
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while !got.ends_with(b"\x1c\r") {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        got.extend_from_slice(&chunk[..n]);
    }
    Ok(got)
}

/// Opens connections from 127.0.0.5 as fast as it can for `for_how_long`, each
/// pipelining frames and draining replies; bounded in count. Returns the
/// connections opened and those reset while connecting.
async fn flood(to: SocketAddr, for_how_long: Duration) -> (u32, u32) {
    let end = Instant::now() + for_how_long;
    let (mut opened, mut refused) = (0u32, 0u32);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..400 {
        if Instant::now() >= end {
            break;
        }
        // A refused connection is reset right after accept, sometimes before
        // the connect call has returned here.
        let Ok(mut s) = connect("127.0.0.5", to).await else {
            refused += 1;
            continue;
        };
        opened += 1;
        tasks.spawn(async move {
            let burst: Vec<u8> = (0..100).flat_map(|j| frame(&format!("F{i}-{j}"))).collect();
            let mut chunk = [0u8; 65536];
            let deadline = tokio::time::sleep_until(end);
            tokio::pin!(deadline);
            let _ = s.write_all(&burst).await;
            loop {
                tokio::select! {
                    _ = &mut deadline => return,
                    r = s.read(&mut chunk) => match r {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    },
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    while tasks.join_next().await.is_some() {}
    (opened, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_device_is_limited_and_reported_once_while_another_keeps_its_service() {
    let dir = tempfile::tempdir().unwrap();
    let sink_l = TcpListener::bind("127.0.0.3:0").await.unwrap();
    let sink_addr = sink_l.local_addr().unwrap();
    tokio::spawn(sink(sink_l));
    let v = Config::parse(
        &site(&dir.path().join("data"), sink_addr),
        "site.toml",
        dir.path(),
    )
    .unwrap();
    let policy = Arc::new(Policy::compile(&v).unwrap());
    let recorder = Recorder::start(RecorderOptions::new(&v.data_dir)).unwrap();
    let proxy = Proxy::bind(
        policy,
        recorder.handle(),
        ProxyOptions::from_config(&v.config.gateway),
    )
    .await
    .unwrap();
    let addr = proxy.local_addrs()[0].1;
    let (stop, rx) = tokio::sync::watch::channel(false);
    let serving = tokio::spawn(proxy.run(rx));

    let flooding = tokio::spawn(flood(addr, Duration::from_millis(1500)));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut good = connect("127.0.0.2", addr).await.unwrap();
    let mut worst = Duration::ZERO;
    for i in 0..40 {
        let t = Instant::now();
        let ack = exchange(&mut good, &format!("GOOD-{i}")).await.unwrap();
        worst = worst.max(t.elapsed());
        assert!(ack.windows(7).any(|w| w == b"MSA|AA|"));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(good);
    let (opened, refused) = flooding.await.unwrap();
    assert!(
        opened >= 4 && opened + refused > 40,
        "{opened} opened, {refused} reset"
    );
    // Generous: the flood shares two cores with this test and the sink.
    assert!(
        worst < Duration::from_secs(1),
        "the good device waited {worst:?}"
    );

    // The episode ends once the flooder has been quiet for a second.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stop.send(true).unwrap();
    serving.await.unwrap();
    recorder.shutdown().unwrap();

    let events: Vec<Event> = query_log(&v.data_dir.join("audit"), &EventFilter::default())
        .unwrap()
        .into_iter()
        .map(|e| serde_json::from_str(&e.doc).unwrap())
        .collect();
    let rule = |e: &Event| e.rule.as_ref().map_or("", |r| r.id.as_str()).to_owned();
    let flood_events: Vec<&Event> = events
        .iter()
        .filter(|e| rule(e).starts_with("WG-FLOOD"))
        .collect();
    assert!(
        flood_events
            .iter()
            .all(|e| e.wardgate.source_device.as_deref() == Some("flooder")),
        "only the flooder is reported"
    );
    let count = |id: &str| flood_events.iter().filter(|e| rule(e) == id).count();
    assert_eq!(
        count("WG-FLOOD-001"),
        1,
        "one alert for the connection limit"
    );
    assert_eq!(count("WG-FLOOD-003"), 1, "one alert for the message rate");
    assert!(count("WG-FLOOD-002") <= 1);
    let summaries: Vec<_> = flood_events
        .iter()
        .filter(|e| rule(e) == "WG-FLOOD-004")
        .collect();
    assert_eq!(summaries.len(), 1, "one summary");
    let f = summaries[0].wardgate.flood.as_ref().unwrap();
    assert!(
        f.refused_over_concurrent > 0 && f.messages_throttled > 0,
        "{f:?}"
    );
    assert_eq!(
        f.connections_refused,
        f.refused_over_concurrent + f.refused_over_rate + f.refused_over_gateway_cap
    );
    // Every refused connection is in the counts, not in a record of its own.
    let admitted = events
        .iter()
        .filter(|e| {
            e.event.reason == "connection admitted"
                && e.wardgate.source_device.as_deref() == Some("flooder")
        })
        .count() as u64;
    assert_eq!(
        admitted + f.connections_refused,
        u64::from(opened + refused)
    );
}
