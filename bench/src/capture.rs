//! Passive-analysis benchmark: a deterministic generator of mixed medical traffic
//! (HL7 ORU^R01 and RGV^O15 over MLLP with ACKs, DICOM C-STORE associations of CT
//! objects, MQTT vital-sign publishers) written as a pcap of Ethernet/IPv4/TCP
//! frames with valid checksums, and an orchestrator that times `wardgate analyze`,
//! tshark (HL7 and DICOM dissectors on) and Suricata on that same file, each pinned
//! to one core, interleaved round by round.

use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Options of `gen-capture`.
#[derive(clap::Args)]
pub struct GenArgs {
    /// Where to write the pcap; the matching site configuration goes next to it
    /// (same name, `.toml`).
    #[arg(long)]
    out: PathBuf,
    /// Approximate size of the capture, in MiB.
    #[arg(long, default_value_t = 1024)]
    mib: u64,
}

/// Options of `analyze`.
#[derive(clap::Args)]
pub struct AnalyzeArgs {
    /// The capture (made by `gen-capture`); its `.toml` site is used for wardgate.
    #[arg(long)]
    capture: PathBuf,
    /// The wardgate binary.
    #[arg(long, default_value = "target/release/wardgate")]
    wardgate_bin: PathBuf,
    /// Rounds (medians are reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Tools to run, comma-separated (wardgate, tshark, suricata).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "wardgate,tshark,suricata"
    )]
    tools: Vec<String>,
    /// The CPU to pin every tool to.
    #[arg(long, default_value_t = 1)]
    cpu: usize,
    /// Write the Markdown report here too.
    #[arg(long)]
    out: Option<PathBuf>,
}

const HL7_SERVER: [u8; 4] = [10, 1, 2, 1];
const PACS: [u8; 4] = [10, 1, 4, 1];
const BROKER: [u8; 4] = [10, 1, 6, 1];
const EHRS: u8 = 20;
const MODALITIES: u8 = 10;
const MONITORS: u8 = 30;

struct Pcap<W: Write> {
    w: W,
    ts_us: u64,
    bytes: u64,
    packets: u64,
    frame: Vec<u8>,
}

fn csum_add(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

fn csum_fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

impl<W: Write> Pcap<W> {
    fn new(mut w: W) -> Result<Self> {
        // Legacy pcap, microseconds, LINKTYPE_ETHERNET, snaplen 262144.
        w.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
        w.write_all(&2u16.to_le_bytes())?;
        w.write_all(&4u16.to_le_bytes())?;
        w.write_all(&[0; 8])?;
        w.write_all(&262_144u32.to_le_bytes())?;
        w.write_all(&1u32.to_le_bytes())?;
        Ok(Pcap {
            w,
            ts_us: 1_764_000_000_000_000,
            bytes: 24,
            packets: 0,
            frame: Vec::with_capacity(2048),
        })
    }

    /// One TCP segment with valid IPv4 and TCP checksums.
    #[allow(clippy::too_many_arguments)]
    fn tcp(
        &mut self,
        src: ([u8; 4], u16),
        dst: ([u8; 4], u16),
        seq: u32,
        ack: u32,
        flags: u8,
        payload: &[u8],
    ) -> Result<()> {
        self.ts_us += 20;
        let f = &mut self.frame;
        f.clear();
        f.extend_from_slice(&[0x02, 0, 0, 0, dst.0[2], dst.0[3]]);
        f.extend_from_slice(&[0x02, 0, 0, 0, src.0[2], src.0[3]]);
        f.extend_from_slice(&[0x08, 0x00]);
        let opts = if flags & SYN != 0 { 4 } else { 0 };
        let total = 20 + 20 + opts + payload.len();
        let ip_start = f.len();
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&(total as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]);
        f.extend_from_slice(&src.0);
        f.extend_from_slice(&dst.0);
        let ipc = csum_fold(csum_add(0, &f[ip_start..ip_start + 20]));
        f[ip_start + 10..ip_start + 12].copy_from_slice(&ipc.to_be_bytes());
        let tcp_start = f.len();
        f.extend_from_slice(&src.1.to_be_bytes());
        f.extend_from_slice(&dst.1.to_be_bytes());
        f.extend_from_slice(&seq.to_be_bytes());
        f.extend_from_slice(&ack.to_be_bytes());
        if flags & SYN != 0 {
            // Window scale 7 (RFC 7323), as every current stack offers: windows
            // of up to 8 MiB, so a sender may have a whole CT image in flight.
            f.extend_from_slice(&[0x60, flags, 0xff, 0xff, 0, 0, 0, 0, 1, 3, 3, 7]);
        } else {
            f.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        }
        f.extend_from_slice(payload);
        let mut pseudo = [0u8; 12];
        pseudo[..4].copy_from_slice(&src.0);
        pseudo[4..8].copy_from_slice(&dst.0);
        pseudo[9] = 6;
        pseudo[10..].copy_from_slice(&((20 + opts + payload.len()) as u16).to_be_bytes());
        let tc = csum_fold(csum_add(csum_add(0, &pseudo), &f[tcp_start..]));
        f[tcp_start + 16..tcp_start + 18].copy_from_slice(&tc.to_be_bytes());
        let len = f.len() as u32;
        let (s, us) = (self.ts_us / 1_000_000, self.ts_us % 1_000_000);
        self.w.write_all(&(s as u32).to_le_bytes())?;
        self.w.write_all(&(us as u32).to_le_bytes())?;
        self.w.write_all(&len.to_le_bytes())?;
        self.w.write_all(&len.to_le_bytes())?;
        self.w.write_all(&self.frame)?;
        self.bytes += 16 + u64::from(len);
        self.packets += 1;
        Ok(())
    }
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH_ACK: u8 = 0x18;
const FIN_ACK: u8 = 0x11;
const MSS: usize = 1448;

/// One TCP connection being written: both directions' sequence numbers.
struct Conn {
    c: ([u8; 4], u16),
    s: ([u8; 4], u16),
    cseq: u32,
    sseq: u32,
}

impl Conn {
    fn open<W: Write>(p: &mut Pcap<W>, c: ([u8; 4], u16), s: ([u8; 4], u16)) -> Result<Conn> {
        let (ci, si) = (0x1000_0000u32, 0x2000_0000u32);
        p.tcp(c, s, ci, 0, SYN, &[])?;
        p.tcp(s, c, si, ci + 1, SYN | ACK, &[])?;
        p.tcp(c, s, ci + 1, si + 1, ACK, &[])?;
        Ok(Conn {
            c,
            s,
            cseq: ci + 1,
            sseq: si + 1,
        })
    }

    fn send<W: Write>(&mut self, p: &mut Pcap<W>, from_client: bool, data: &[u8]) -> Result<()> {
        for chunk in data.chunks(MSS) {
            if from_client {
                p.tcp(self.c, self.s, self.cseq, self.sseq, PSH_ACK, chunk)?;
                self.cseq = self.cseq.wrapping_add(chunk.len() as u32);
            } else {
                p.tcp(self.s, self.c, self.sseq, self.cseq, PSH_ACK, chunk)?;
                self.sseq = self.sseq.wrapping_add(chunk.len() as u32);
            }
        }
        Ok(())
    }

    fn close<W: Write>(self, p: &mut Pcap<W>) -> Result<()> {
        p.tcp(self.c, self.s, self.cseq, self.sseq, FIN_ACK, &[])?;
        p.tcp(self.s, self.c, self.sseq, self.cseq + 1, FIN_ACK, &[])?;
        p.tcp(self.c, self.s, self.cseq + 1, self.sseq + 1, ACK, &[])?;
        Ok(())
    }
}

fn mllp(payload: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(payload.len() + 3);
    v.push(0x0b);
    v.extend_from_slice(payload.as_bytes());
    v.extend_from_slice(b"\x1c\x0d");
    v
}

fn oru(n: u64) -> String {
    let mut m = format!(
        "MSH|^~\\&|MONGW|ICU|EHR|ICU|20261126031500||ORU^R01^ORU_R01|M{n}|P|2.6\rPID|||{}^^^HOSP^MR||Doe^Jane\rOBR|1|||69837^MDC_DEV_METER_PHYSIO_MULTI_PARAM_MDS^MDC\r",
        4000 + n % 500
    );
    for i in 1..=9 {
        let _ = write!(
            m,
            "OBX|{i}|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.{i}|9{}|262688^MDC_DIM_PERCENT^MDC|||||R\r",
            (n + i) % 10
        );
    }
    m
}

fn rgv(n: u64, rate_ml_h: u32) -> String {
    // IHE PCD-03 RXG: 1 give sub-id, 4 give code, 5 amount, 7 units, 15 rate,
    // 16 rate units, 17/18 strength and units, 23/24 strength volume and units.
    let mut rxg = vec![String::new(); 25];
    rxg[0] = "RXG".into();
    rxg[1] = "1".into();
    rxg[4] = "HEP^heparin^LOCAL".into();
    rxg[5] = "100".into();
    rxg[7] = "mL^mL^UCUM".into();
    rxg[15] = rate_ml_h.to_string();
    rxg[16] = "265266^MDC_DIM_MILLI_L_PER_HR^MDC".into();
    rxg[17] = "25000".into();
    rxg[18] = "U^U^UCUM".into();
    rxg[23] = "500".into();
    rxg[24] = "mL^mL^UCUM".into();
    format!(
        "MSH|^~\\&|EHR|ICU|PUMPSRV|ICU|20261126031500||RGV^O15^RGV_O15|O{n}|P|2.6\rPID|||{}^^^HOSP^MR||Doe^Jane\rORC|RE|ORD-{n}^EHR\r{}\rRXR|IV^Intravenous^HL70162\r",
        4000 + n % 500,
        rxg.join("|")
    )
}

fn ack(control: &str) -> String {
    format!(
        "MSH|^~\\&|PUMPSRV|ICU|EHR|ICU|20261126031501||ACK^R01^ACK|A{control}|P|2.6\rMSA|AA|{control}\r"
    )
}

/// PS3.8 9.3: a PDU of `ty` around `body`.
pub(crate) fn pdu(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![ty, 0];
    v.extend_from_slice(&(body.len() as u32).to_be_bytes());
    v.extend_from_slice(body);
    v
}

pub(crate) fn item(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![ty, 0];
    v.extend_from_slice(&(body.len() as u16).to_be_bytes());
    v.extend_from_slice(body);
    v
}

pub(crate) fn ae16(s: &str) -> [u8; 16] {
    let mut a = [b' '; 16];
    a[..s.len()].copy_from_slice(s.as_bytes());
    a
}

const CT_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
const IMPLICIT_LE: &str = "1.2.840.10008.1.2";

/// The fixed part of an A-ASSOCIATE-RQ/AC body (PS3.8 9.3.2): protocol
/// version, the AE titles and the DICOM application context; the caller
/// appends presentation contexts and user information.
pub(crate) fn associate_header(calling: &str, called: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&1u16.to_be_bytes());
    body.extend_from_slice(&[0, 0]);
    body.extend_from_slice(&ae16(called));
    body.extend_from_slice(&ae16(calling));
    body.extend_from_slice(&[0; 32]);
    body.extend(item(0x10, b"1.2.840.10008.3.1.1.1"));
    body
}

fn associate(ty: u8, calling: &str, called: &str) -> Vec<u8> {
    let mut body = associate_header(calling, called);
    let mut pc = vec![1, 0, 0, 0];
    if ty == 0x01 {
        pc.extend(item(0x30, CT_STORAGE.as_bytes()));
        pc.extend(item(0x40, IMPLICIT_LE.as_bytes()));
        body.extend(item(0x20, &pc));
    } else {
        pc.extend(item(0x40, IMPLICIT_LE.as_bytes()));
        body.extend(item(0x21, &pc));
    }
    let mut user = item(0x51, &16384u32.to_be_bytes());
    user.extend(item(0x52, b"1.2.826.0.1.3680043.2.1545.1"));
    user.extend(item(0x55, b"WARDGATE_BENCH"));
    body.extend(item(0x50, &user));
    pdu(ty, &body)
}

fn element(out: &mut Vec<u8>, group: u16, elem: u16, value: &[u8]) {
    out.extend_from_slice(&group.to_le_bytes());
    out.extend_from_slice(&elem.to_le_bytes());
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(value);
}

fn uid(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    if v.len() % 2 == 1 {
        v.push(0);
    }
    v
}

/// PS3.7 9.1.1: a C-STORE-RQ (or its response) command set, implicit VR LE.
fn store_command(rsp: bool, msg_id: u16, instance: &str) -> Vec<u8> {
    let mut e = Vec::new();
    element(&mut e, 0, 0x0002, &uid(CT_STORAGE));
    let field: u16 = if rsp { 0x8001 } else { 0x0001 };
    element(&mut e, 0, 0x0100, &field.to_le_bytes());
    if rsp {
        element(&mut e, 0, 0x0120, &msg_id.to_le_bytes());
        element(&mut e, 0, 0x0800, &0x0101u16.to_le_bytes());
        element(&mut e, 0, 0x0900, &0u16.to_le_bytes());
    } else {
        element(&mut e, 0, 0x0110, &msg_id.to_le_bytes());
        element(&mut e, 0, 0x0700, &0u16.to_le_bytes());
        element(&mut e, 0, 0x0800, &0x0000u16.to_le_bytes());
    }
    element(&mut e, 0, 0x1000, &uid(instance));
    let mut out = Vec::new();
    element(&mut out, 0, 0x0000, &(e.len() as u32).to_le_bytes());
    out.extend(e);
    out
}

fn ct_dataset(n: u64, instance: &str, pixels: usize) -> Vec<u8> {
    let mut d = Vec::with_capacity(pixels + 256);
    element(&mut d, 0x0008, 0x0016, &uid(CT_STORAGE));
    element(&mut d, 0x0008, 0x0018, &uid(instance));
    element(&mut d, 0x0008, 0x0060, b"CT");
    element(
        &mut d,
        0x0010,
        0x0020,
        format!("P{:07}", n % 100_000).as_bytes(),
    );
    let px: Vec<u8> = (0..pixels).map(|i| (i * 7 + n as usize) as u8).collect();
    element(&mut d, 0x7fe0, 0x0010, &px);
    d
}

/// P-DATA-TF PDUs of at most `max` bytes of PDV data each, for one command or data set.
fn pdata(context: u8, is_command: bool, data: &[u8], max: usize, out: &mut Vec<u8>) {
    let chunks: Vec<&[u8]> = data.chunks(max - 6).collect();
    for (i, c) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        let mch = u8::from(is_command) | (u8::from(last) << 1);
        let mut pdv = ((c.len() + 2) as u32).to_be_bytes().to_vec();
        pdv.push(context);
        pdv.push(mch);
        pdv.extend_from_slice(c);
        out.extend(pdu(0x04, &pdv));
    }
}

/// Writes the capture and its site configuration.
pub fn generate(a: GenArgs) -> Result<()> {
    let file =
        std::fs::File::create(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let mut p = Pcap::new(BufWriter::with_capacity(1 << 20, file))?;
    let target = a.mib << 20;
    let mut n: u64 = 0;
    let mut sport: u16 = 20_000;
    let mut next_port = || {
        sport = if sport >= 60_000 { 20_000 } else { sport + 1 };
        sport
    };
    let (mut hl7_msgs, mut stores, mut publishes) = (0u64, 0u64, 0u64);
    while p.bytes < target {
        n += 1;
        // HL7: an EHR sends 50 observations and an order, each acknowledged.
        let ehr = [10, 1, 1, 1 + (n % u64::from(EHRS)) as u8];
        let mut c = Conn::open(&mut p, (ehr, next_port()), (HL7_SERVER, 2575))?;
        for i in 0..50u64 {
            let id = n * 100 + i;
            let msg = if i == 49 {
                // Every 25th order is above the hard limit (an alert to report).
                rgv(id, if n.is_multiple_of(25) { 100 } else { 5 })
            } else {
                oru(id)
            };
            c.send(&mut p, true, &mllp(&msg))?;
            let control = if i == 49 {
                format!("O{id}")
            } else {
                format!("M{id}")
            };
            c.send(&mut p, false, &mllp(&ack(&control)))?;
            hl7_msgs += 2;
        }
        c.close(&mut p)?;
        // DICOM: a CT stores two 512 KiB images.
        let ct = [10, 1, 3, 1 + (n % u64::from(MODALITIES)) as u8];
        let mut c = Conn::open(&mut p, (ct, next_port()), (PACS, 104))?;
        c.send(&mut p, true, &associate(0x01, "CT01", "PACS"))?;
        c.send(&mut p, false, &associate(0x02, "CT01", "PACS"))?;
        for i in 0..2u16 {
            let inst = format!("1.2.826.0.1.3680043.2.1545.9.{n}.{i}");
            let mut out = Vec::new();
            pdata(
                1,
                true,
                &store_command(false, i + 1, &inst),
                16384,
                &mut out,
            );
            pdata(1, false, &ct_dataset(n, &inst, 512 * 1024), 16384, &mut out);
            c.send(&mut p, true, &out)?;
            let mut rsp = Vec::new();
            pdata(1, true, &store_command(true, i + 1, &inst), 16384, &mut rsp);
            c.send(&mut p, false, &rsp)?;
            stores += 1;
        }
        c.send(&mut p, true, &pdu(0x05, &[0; 4]))?;
        c.send(&mut p, false, &pdu(0x06, &[0; 4]))?;
        c.close(&mut p)?;
        // MQTT: a monitor publishes 100 vital signs.
        let mon = [10, 1, 5, 1 + (n % u64::from(MONITORS)) as u8];
        let mut c = Conn::open(&mut p, (mon, next_port()), (BROKER, 1883))?;
        let client = format!("monitor-{}", mon[3]);
        let mut connect = vec![0x00, 0x04];
        connect.extend_from_slice(b"MQTT");
        connect.extend_from_slice(&[4, 0x02, 0, 60]);
        connect.extend_from_slice(&(client.len() as u16).to_be_bytes());
        connect.extend_from_slice(client.as_bytes());
        let mut pkt = vec![0x10, connect.len() as u8];
        pkt.extend(connect);
        c.send(&mut p, true, &pkt)?;
        c.send(&mut p, false, &[0x20, 2, 0, 0])?;
        for i in 0..100u64 {
            let topic = format!("icu/bed{}/spo2", mon[3]);
            let payload = format!("{{\"spo2\":{},\"seq\":{i}}}", 90 + i % 10);
            let mut body = (topic.len() as u16).to_be_bytes().to_vec();
            body.extend_from_slice(topic.as_bytes());
            body.extend_from_slice(payload.as_bytes());
            let mut pkt = vec![0x30, body.len() as u8];
            pkt.extend(body);
            c.send(&mut p, true, &pkt)?;
            publishes += 1;
        }
        c.send(&mut p, true, &[0xe0, 0])?;
        c.close(&mut p)?;
    }
    p.w.flush()?;
    let config = a.out.with_extension("toml");
    std::fs::write(&config, site_config(&a.out))?;
    println!(
        "{}: {} packets, {:.1} MiB; HL7 messages {hl7_msgs}, C-STOREs {stores}, MQTT publishes {publishes}; site {}",
        a.out.display(),
        p.packets,
        p.bytes as f64 / (1u64 << 20) as f64,
        config.display()
    );
    Ok(())
}

fn site_config(capture: &Path) -> String {
    let ip = |a: [u8; 4]| Ipv4Addr::from(a).to_string();
    let list = |net: [u8; 3], n: u8| {
        (1..=n)
            .map(|i| format!("\"{}\"", ip([net[0], net[1], net[2], i])))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let data = capture.with_extension("data");
    format!(
        r#"# Site for the generated benchmark capture (wardgate-bench gen-capture).
[gateway]
data_dir = "{data}"

[[device]]
id = "ehrs"
kind = "ehr"
addresses = [{ehrs}]

[[device]]
id = "pump-server"
kind = "infusion-pump-server"
addresses = ["{hl7}"]

[[device]]
id = "cts"
kind = "ct-scanner"
addresses = [{cts}]
ae_titles = ["CT01"]

[[device]]
id = "pacs"
kind = "pacs"
addresses = ["{pacs}"]
ae_titles = ["PACS"]

[[device]]
id = "monitors"
kind = "patient-monitor"
addresses = [{mons}]
peers = ["broker:mqtt"]

[[device]]
id = "broker"
kind = "mqtt-broker"
addresses = ["{broker}"]

[[route]]
id = "infusion-orders"
protocol = "hl7-mllp"
listen = "127.0.0.1:12575"
upstream = "{hl7}:2575"
senders = ["ehrs"]
messages = ["RGV^O15", "ORU^R01"]
drug_library = "adult-icu"

[[route]]
id = "imaging"
protocol = "dicom"
listen = "127.0.0.1:11104"
upstream = "{pacs}:104"
senders = ["cts"]
called_ae_titles = ["PACS"]
operations = ["C-ECHO", "C-STORE"]
sop_classes = ["1.2.840.10008.1.1", "{ct}"]

[[drug_library]]
id = "adult-icu"

[[drug_library.drug]]
names = ["heparin", "HEP"]
rate_unit = "U/h"
rate_soft_max = 1500
rate_hard_max = 2000
dose_unit = "U"
dose_hard_max = 10000
"#,
        data = data.display(),
        ehrs = list([10, 1, 1], EHRS),
        cts = list([10, 1, 3], MODALITIES),
        mons = list([10, 1, 5], MONITORS),
        hl7 = ip(HL7_SERVER),
        pacs = ip(PACS),
        broker = ip(BROKER),
        ct = CT_STORAGE,
    )
}

struct Timed {
    wall_s: f64,
    cpu_s: f64,
    max_rss_kib: u64,
}

/// Runs `cmd` pinned to `cpu` under GNU time; returns wall, CPU and peak RSS.
fn timed(cpu: usize, cmd: &[String]) -> Result<Timed> {
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("WGTIME %e %U %S %M")
        .arg("taskset")
        .arg("-c")
        .arg(cpu.to_string())
        .args(cmd)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .with_context(|| format!("running {}", cmd.join(" ")))?;
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.starts_with("WGTIME "))
        .with_context(|| format!("{} printed no timing: {err}", cmd.join(" ")))?;
    let f: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if f.len() != 4 {
        bail!("unexpected timing line {line:?}");
    }
    // wardgate analyze exits 1 when it found alerts: that is success here.
    let code = out.status.code().unwrap_or(-1);
    if !(code == 0 || (code == 1 && cmd[0].ends_with("wardgate"))) {
        bail!("{} failed ({code}): {err}", cmd.join(" "));
    }
    Ok(Timed {
        wall_s: f[0],
        cpu_s: f[1] + f[2],
        max_rss_kib: f[3] as u64,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Times every tool on the capture, interleaved, and prints a report.
pub fn analyze(a: AnalyzeArgs) -> Result<()> {
    let capture = a.capture.canonicalize().context("the capture")?;
    let size = std::fs::metadata(&capture)?.len() as f64;
    let config = capture.with_extension("toml");
    let cap = capture.display().to_string();
    let packets = packet_count(&capture)?;
    let suricata_dir = std::env::temp_dir().join("wardgate-bench-suricata");
    std::fs::create_dir_all(&suricata_dir)?;
    let cmd_of = |tool: &str| -> Vec<String> {
        match tool {
            "wardgate" => vec![
                a.wardgate_bin.display().to_string(),
                "analyze".into(),
                "--no-store".into(),
                "--json".into(),
                "--config".into(),
                config.display().to_string(),
                cap.clone(),
            ],
            "tshark" => [
                "tshark",
                "-n",
                "-r",
                &cap,
                "-d",
                "tcp.port==2575,hl7",
                "-d",
                "tcp.port==104,dicom",
                "-Y",
                "hl7 || dicom",
                "-q",
                "-z",
                "io,stat,0",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            _ => [
                "suricata",
                "--runmode",
                "single",
                "-k",
                "none",
                "-r",
                &cap,
                "-l",
                &suricata_dir.display().to_string(),
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        }
    };
    let mut results: Vec<(String, Vec<Timed>)> =
        a.tools.iter().map(|t| (t.clone(), Vec::new())).collect();
    for round in 0..a.rounds {
        let n = results.len();
        for k in 0..n {
            let i = (k + round) % n;
            let tool = results[i].0.clone();
            let t = timed(a.cpu, &cmd_of(&tool))?;
            eprintln!(
                "round {round} {tool:<9} {:>7.2} s wall {:>7.2} s CPU {:>8.1} MB/s {:>7} KiB peak",
                t.wall_s,
                t.cpu_s,
                size / 1e6 / t.wall_s.max(1e-9),
                t.max_rss_kib
            );
            results[i].1.push(t);
        }
    }
    let base = |name: &str| {
        results
            .iter()
            .find(|(t, _)| t == name)
            .map(|(_, r)| median(r.iter().map(|t| t.wall_s).collect()))
    };
    let tshark = base("tshark");
    let suricata = base("suricata");
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Capture: `{}`, {:.0} MB, {packets} packets. Each tool pinned to CPU {} (`taskset`), {} round(s) interleaved, medians.\n",
        capture.display(),
        size / 1e6,
        a.cpu,
        a.rounds
    );
    let _ = writeln!(
        md,
        "| tool | wall s | CPU s | MB/s | packets/s | peak RSS MiB | speed vs tshark | speed vs Suricata |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for (tool, runs) in &results {
        let wall = median(runs.iter().map(|t| t.wall_s).collect());
        let cpu = median(runs.iter().map(|t| t.cpu_s).collect());
        let rss = runs.iter().map(|t| t.max_rss_kib).max().unwrap_or(0);
        let vs =
            |b: Option<f64>| b.map_or("-".to_owned(), |b| format!("{:.1}x", b / wall.max(1e-9)));
        let _ = writeln!(
            md,
            "| {tool} | {wall:.2} | {cpu:.2} | {:.0} | {:.0} | {:.1} | {} | {} |",
            size / 1e6 / wall.max(1e-9),
            packets as f64 / wall.max(1e-9),
            rss as f64 / 1024.0,
            vs(tshark),
            vs(suricata)
        );
    }
    print!("{md}");
    if let Some(out) = &a.out {
        std::fs::write(out, &md)?;
    }
    Ok(())
}

/// Packets in a legacy pcap, counted from the record headers.
fn packet_count(path: &Path) -> Result<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
    let mut hdr = [0u8; 24];
    f.read_exact(&mut hdr)?;
    let mut n = 0;
    let mut rec = [0u8; 16];
    while f.read_exact(&mut rec).is_ok() {
        let len = u32::from_le_bytes([rec[8], rec[9], rec[10], rec[11]]);
        f.seek(SeekFrom::Current(i64::from(len)))?;
        n += 1;
    }
    Ok(n)
}
