//! The imaging half of `wardgate demo`: a simulated CT scanner (127.0.0.5, AE
//! CT01) and a rogue laptop talk DICOM to a simulated PACS (127.0.0.6, AE PACS)
//! through the gateway's `imaging` route. Both peers are written here on the
//! sans-IO DICOM code, byte by byte as PS3.8 lays PDUs out, so the demo needs
//! nothing installed.

use anyhow::{bail, Context, Result};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wardgate_proto::dicom::dimse::Response;
use wardgate_proto::dicom::{self, Command, CommandField, Limits, Pdu, Progress};

const VERIFICATION: &str = "1.2.840.10008.1.1";
const CT: &str = "1.2.840.10008.5.1.4.1.1.2";
const MR: &str = "1.2.840.10008.5.1.4.1.1.4";
const PDF: &str = "1.2.840.10008.5.1.4.1.1.104.1";
const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

/// One imaging scenario.
pub(crate) struct Scenario {
    pub name: &'static str,
    pub from: IpAddr,
    calling: &'static str,
    called: &'static str,
    /// SOP classes proposed; the first is the one stored.
    classes: &'static [&'static str],
    /// Hide a Windows executable in the stored object.
    executable: bool,
    pub expect: &'static str,
    pub stored: bool,
    pub rule: Option<&'static str>,
}

pub(crate) fn scenarios() -> Vec<Scenario> {
    let ct = crate::demo::ip("127.0.0.5");
    vec![
        Scenario {
            name: "CT image stored in the PACS",
            from: ct,
            calling: "CT01",
            called: "PACS",
            classes: &[CT],
            executable: false,
            expect: "stored",
            stored: true,
            rule: None,
        },
        Scenario {
            name: "attack: rogue laptop queries the PACS",
            from: crate::demo::ip("127.0.0.66"),
            calling: "CT01",
            called: "PACS",
            classes: &[VERIFICATION],
            executable: false,
            expect: "rejected",
            stored: false,
            rule: Some("WG-ACCESS-001"),
        },
        Scenario {
            name: "CT calls an AE title not on its route",
            from: ct,
            calling: "CT01",
            called: "ADMIN",
            classes: &[CT],
            executable: false,
            expect: "rejected",
            stored: false,
            rule: Some("WG-DICOM-002"),
        },
        Scenario {
            name: "CT proposes an MR SOP class (not allowed)",
            from: ct,
            calling: "CT01",
            called: "PACS",
            classes: &[MR],
            executable: false,
            expect: "no-context",
            stored: false,
            rule: Some("WG-DICOM-003"),
        },
        Scenario {
            name: "attack: PDF report hiding a Windows .exe",
            from: ct,
            calling: "CT01",
            called: "PACS",
            classes: &[PDF],
            executable: true,
            expect: "aborted",
            stored: false,
            rule: Some("WG-DICOM-009"),
        },
    ]
}

fn item(ty: u8, value: &[u8]) -> Vec<u8> {
    let mut v = vec![ty, 0];
    v.extend_from_slice(&(value.len() as u16).to_be_bytes());
    v.extend_from_slice(value);
    v
}

fn pdu(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![ty, 0];
    v.extend_from_slice(&(body.len() as u32).to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn ae(title: &str) -> [u8; 16] {
    let mut a = [b' '; 16];
    let n = title.len().min(16);
    a[..n].copy_from_slice(&title.as_bytes()[..n]);
    a
}

/// A-ASSOCIATE-RQ or -AC body head: version, reserved, AE titles, reserved.
fn associate_head(called: &str, calling: &str) -> Vec<u8> {
    let mut b = vec![0, 1, 0, 0];
    b.extend_from_slice(&ae(called));
    b.extend_from_slice(&ae(calling));
    b.extend_from_slice(&[0; 32]);
    b.extend(item(0x10, b"1.2.840.10008.3.1.1.1"));
    b
}

fn user_info(version: &str) -> Vec<u8> {
    let mut u = item(0x51, &16384u32.to_be_bytes());
    u.extend(item(0x52, b"1.2.826.0.1.3680043.10.1"));
    u.extend(item(0x55, version.as_bytes()));
    item(0x50, &u)
}

fn element(out: &mut Vec<u8>, explicit: bool, tag: (u16, u16), vr: &[u8; 2], value: &[u8]) {
    let pad = value.len() % 2;
    let len = value.len() + pad;
    out.extend_from_slice(&tag.0.to_le_bytes());
    out.extend_from_slice(&tag.1.to_le_bytes());
    if !explicit {
        out.extend_from_slice(&(len as u32).to_le_bytes());
    } else if matches!(vr, b"OB") {
        out.extend_from_slice(vr);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(len as u32).to_le_bytes());
    } else {
        out.extend_from_slice(vr);
        out.extend_from_slice(&(len as u16).to_le_bytes());
    }
    out.extend_from_slice(value);
    if pad == 1 {
        out.push(if vr == b"UI" { 0 } else { b' ' });
    }
}

/// A C-STORE-RQ command set (implicit VR little endian, as every command).
fn store_command(class: &str, instance: &str) -> Vec<u8> {
    let mut b = Vec::new();
    element(&mut b, false, (0, 2), b"UI", class.as_bytes());
    element(&mut b, false, (0, 0x100), b"US", &1u16.to_le_bytes());
    element(&mut b, false, (0, 0x110), b"US", &1u16.to_le_bytes());
    element(&mut b, false, (0, 0x700), b"US", &0u16.to_le_bytes());
    element(&mut b, false, (0, 0x800), b"US", &0u16.to_le_bytes());
    element(&mut b, false, (0, 0x1000), b"UI", instance.as_bytes());
    let mut out = Vec::new();
    element(
        &mut out,
        false,
        (0, 0),
        b"UL",
        &(b.len() as u32).to_le_bytes(),
    );
    out.extend(b);
    out
}

/// The stored object's data set (explicit VR little endian).
fn data_set(class: &str, instance: &str, executable: bool) -> Vec<u8> {
    let mut d = Vec::new();
    element(&mut d, true, (8, 0x16), b"UI", class.as_bytes());
    element(&mut d, true, (8, 0x18), b"UI", instance.as_bytes());
    element(
        &mut d,
        true,
        (8, 0x60),
        b"CS",
        if executable { b"DOC" } else { b"CT" },
    );
    element(&mut d, true, (0x10, 0x10), b"PN", b"Doe^Jane");
    element(&mut d, true, (0x10, 0x20), b"LO", b"4711");
    if executable {
        // A DOS header pointing at a PE signature: a Windows executable.
        let mut exe = vec![0u8; 512];
        exe[..2].copy_from_slice(b"MZ");
        exe[0x3C..0x40].copy_from_slice(&0x80u32.to_le_bytes());
        exe[0x80..0x84].copy_from_slice(b"PE\0\0");
        element(&mut d, true, (0x42, 0x11), b"OB", &exe);
    } else {
        let pixels: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
        element(&mut d, true, (0x7FE0, 0x10), b"OB", &pixels);
    }
    d
}

async fn read_pdu(sock: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Option<Vec<u8>>> {
    let limits = Limits::default();
    let mut chunk = [0u8; 16384];
    loop {
        if let Ok(Progress::Pdu(f)) = dicom::frame(buf, &limits) {
            let p = buf[..f.len].to_vec();
            buf.drain(..f.len);
            return Ok(Some(p));
        }
        match tokio::time::timeout(Duration::from_secs(5), sock.read(&mut chunk)).await {
            Err(_) => bail!("no answer within 5 s"),
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(None),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Plays one scenario: "stored", "rejected", "no-context", "aborted" or an error.
pub(crate) async fn play(s: &Scenario, to: SocketAddr, n: usize) -> Result<String> {
    let mut sock = crate::demo::connect_from(s.from, to)
        .await
        .context("connecting")?;
    let mut body = associate_head(s.called, s.calling);
    for (i, class) in s.classes.iter().enumerate() {
        let mut pc = vec![2 * i as u8 + 1, 0, 0, 0];
        pc.extend(item(0x30, class.as_bytes()));
        pc.extend(item(0x40, EXPLICIT_LE.as_bytes()));
        body.extend(item(0x20, &pc));
    }
    body.extend(user_info("SIMCT_1_0"));
    sock.write_all(&pdu(1, &body)).await?;
    let mut buf = Vec::new();
    let Some(answer) = read_pdu(&mut sock, &mut buf).await? else {
        return Ok("closed".into());
    };
    let accepted = match Pdu::parse(&answer, &Limits::default()) {
        Ok(Pdu::AssociateRj(_)) => return Ok("rejected".into()),
        Ok(Pdu::Abort(_)) => return Ok("aborted".into()),
        Ok(Pdu::AssociateAc(ac)) => ac
            .presentation_contexts
            .first()
            .is_some_and(|pc| pc.result == 0),
        Ok(other) => bail!("unexpected answer {other:?}"),
        Err(e) => bail!("unparsable answer: {e}"),
    };
    let outcome = if !accepted {
        "no-context".to_owned()
    } else {
        let class = s.classes[0];
        let instance = format!("1.2.826.0.1.3680043.10.1.{}.{n}", std::process::id());
        let mut out = Vec::new();
        dicom::encode_pdata(&[(1, 0x03, &store_command(class, &instance))], &mut out);
        let ds = data_set(class, &instance, s.executable);
        for (i, part) in ds.chunks(16000).enumerate() {
            let last = (i + 1) * 16000 >= ds.len();
            dicom::encode_pdata(&[(1, if last { 0x02 } else { 0x00 }, part)], &mut out);
        }
        // A gateway that aborts may close before every byte is written.
        let _ = sock.write_all(&out).await;
        match read_pdu(&mut sock, &mut buf).await? {
            None => "closed".to_owned(),
            Some(p) => match Pdu::parse(&p, &Limits::default()) {
                Ok(Pdu::Abort(_)) => "aborted".to_owned(),
                Ok(Pdu::PData(d)) => {
                    let status = d
                        .pdvs
                        .first()
                        .and_then(|v| Command::parse(v.data).ok())
                        .and_then(|c| c.status);
                    match status {
                        Some(0) => "stored".to_owned(),
                        Some(x) => format!("status {x:04X}"),
                        None => "no status".to_owned(),
                    }
                }
                Ok(other) => format!("unexpected {other:?}"),
                Err(e) => format!("unparsable: {e}"),
            },
        }
    };
    // Release; the answer does not change the outcome.
    if sock.write_all(&pdu(5, &[0; 4])).await.is_ok() {
        let _ = read_pdu(&mut sock, &mut buf).await;
    }
    Ok(outcome)
}

/// The simulated PACS: accepts every context, answers every command with success,
/// counts the objects whose data set arrived whole.
pub(crate) async fn pacs(listener: TcpListener, stored: Arc<AtomicUsize>) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            return;
        };
        let stored = stored.clone();
        tokio::spawn(async move {
            let _ = serve_one(&mut sock, &stored).await;
        });
    }
}

/// A command the simulated PACS will answer: context, operation, message ID, SOP
/// class and instance.
type Pending = (u8, CommandField, u16, Vec<u8>, Vec<u8>);

async fn serve_one(sock: &mut TcpStream, stored: &AtomicUsize) -> Result<()> {
    let mut buf = Vec::new();
    let mut cmd: Vec<u8> = Vec::new();
    let mut pending: Option<Pending> = None;
    while let Some(p) = read_pdu(sock, &mut buf).await? {
        match Pdu::parse(&p, &Limits::default())? {
            Pdu::AssociateRq(rq) => {
                let mut body =
                    associate_head(&dicom::text(rq.called_ae), &dicom::text(rq.calling_ae));
                for pc in &rq.presentation_contexts {
                    let mut v = vec![pc.id, 0, 0, 0];
                    let ts = pc.transfer_syntaxes.first().copied().unwrap_or_default();
                    v.extend(item(0x40, ts));
                    body.extend(item(0x21, &v));
                }
                body.extend(user_info("SIMPACS_1_0"));
                sock.write_all(&pdu(2, &body)).await?;
            }
            Pdu::PData(d) => {
                for v in &d.pdvs {
                    if v.is_command {
                        cmd.extend_from_slice(v.data);
                        if v.is_last {
                            let c = Command::parse(&cmd)?;
                            let entry = (
                                v.context_id,
                                c.field,
                                c.message_id,
                                c.sop_class.to_vec(),
                                c.sop_instance.to_vec(),
                            );
                            let has_data_set = c.has_data_set;
                            cmd.clear();
                            if has_data_set {
                                pending = Some(entry);
                                continue;
                            }
                            respond(sock, &entry).await?;
                        }
                    } else if v.is_last {
                        if let Some(entry) = pending.take() {
                            if entry.1 == CommandField::CStore {
                                stored.fetch_add(1, Ordering::Relaxed);
                            }
                            respond(sock, &entry).await?;
                        }
                    }
                }
            }
            Pdu::ReleaseRq => {
                sock.write_all(&pdu(6, &[0; 4])).await?;
                return Ok(());
            }
            _ => return Ok(()),
        }
    }
    Ok(())
}

async fn respond(sock: &mut TcpStream, (ctx, field, id, class, instance): &Pending) -> Result<()> {
    let rsp = Response {
        field: *field,
        responding_to: *id,
        sop_class: class,
        sop_instance: instance,
        status: 0,
    }
    .encode();
    let mut out = Vec::new();
    dicom::encode_pdata(&[(*ctx, 0x03, &rsp)], &mut out);
    sock.write_all(&out).await?;
    Ok(())
}
