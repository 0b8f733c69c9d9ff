//! CT objects with a realistic header, and a minimal C-STORE SCU that times
//! each object (the latency figures of `dicom --privacy`).
//!
//! The objects are what a de-identifying route has work to do on: patient,
//! study, institution and staff attributes, dates in groups 0008, 0010 and
//! 0040, UIDs in the data set and in sequences, sequences of defined and
//! undefined length, and GE-style private blocks, in explicit VR little
//! endian, like pydicom's `CT_small.dcm`. `ct` (CT Image Storage, 128 x 128,
//! ~40 KB) is the small one; `enhanced_ct` (Enhanced CT Image Storage, N
//! frames of 512 x 512 with a per-frame functional group item per frame) the
//! large one.

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use wardgate_proto::dicom::{self, Pdu};

/// CT Image Storage.
pub(crate) const CT: &str = "1.2.840.10008.5.1.4.1.1.2";
/// Enhanced CT Image Storage.
pub(crate) const ENHANCED_CT: &str = "1.2.840.10008.5.1.4.1.1.2.1";
/// Explicit VR little endian.
pub(crate) const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
const VERIFICATION: &str = "1.2.840.10008.1.1";

/// One object: its SOP class and instance, the data set (what a C-STORE
/// carries) and the Part 10 file (what storescu reads).
pub(crate) struct Object {
    pub sop_class: &'static str,
    pub instance: String,
    pub data_set: Vec<u8>,
    pub file: Vec<u8>,
}

fn long_length(vr: &[u8; 2]) -> bool {
    matches!(
        vr,
        b"OB"
            | b"OD"
            | b"OF"
            | b"OL"
            | b"OV"
            | b"OW"
            | b"SQ"
            | b"SV"
            | b"UC"
            | b"UN"
            | b"UR"
            | b"UT"
            | b"UV"
    )
}

/// One element, explicit VR little endian, padded to even length.
fn el(tag: u32, vr: &[u8; 2], value: &[u8]) -> (u32, Vec<u8>) {
    let mut out = Vec::with_capacity(value.len() + 13);
    let pad = value.len() % 2;
    let len = value.len() + pad;
    out.extend_from_slice(&((tag >> 16) as u16).to_le_bytes());
    out.extend_from_slice(&(tag as u16).to_le_bytes());
    out.extend_from_slice(vr);
    if long_length(vr) {
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(len as u32).to_le_bytes());
    } else {
        out.extend_from_slice(&(len as u16).to_le_bytes());
    }
    out.extend_from_slice(value);
    if pad == 1 {
        out.push(if vr == b"UI" || vr == b"OB" { 0 } else { b' ' });
    }
    (tag, out)
}

/// Elements sorted by tag and joined: an item's or a data set's bytes.
fn join(mut els: Vec<(u32, Vec<u8>)>) -> Vec<u8> {
    els.sort_by_key(|(t, _)| *t);
    els.into_iter().flat_map(|(_, b)| b).collect()
}

/// A sequence of items; `defined`: lengths given (else undefined lengths and
/// delimiters, as many writers do).
fn seq(tag: u32, items: Vec<Vec<(u32, Vec<u8>)>>, defined: bool) -> (u32, Vec<u8>) {
    let mut body = Vec::new();
    for item in items {
        let b = join(item);
        body.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0]);
        if defined {
            body.extend_from_slice(&(b.len() as u32).to_le_bytes());
            body.extend_from_slice(&b);
        } else {
            body.extend_from_slice(&u32::MAX.to_le_bytes());
            body.extend_from_slice(&b);
            body.extend_from_slice(&[0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0]);
        }
    }
    let mut out = Vec::new();
    out.extend_from_slice(&((tag >> 16) as u16).to_le_bytes());
    out.extend_from_slice(&(tag as u16).to_le_bytes());
    out.extend_from_slice(b"SQ\0\0");
    if defined {
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
    } else {
        out.extend_from_slice(&u32::MAX.to_le_bytes());
        out.extend_from_slice(&body);
        out.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
    }
    (tag, out)
}

fn code_item(value: &str, scheme: &str, meaning: &str) -> Vec<(u32, Vec<u8>)> {
    vec![
        el(0x0008_0100, b"SH", value.as_bytes()),
        el(0x0008_0102, b"SH", scheme.as_bytes()),
        el(0x0008_0104, b"LO", meaning.as_bytes()),
    ]
}

/// The acquisition date and time of frame `f`: 07:20:00 plus `f` seconds.
fn frame_time(f: usize) -> String {
    let t = 7 * 3600 + 20 * 60 + f % 3600;
    format!("20240119{:02}{:02}{:02}", t / 3600, t / 60 % 60, t % 60)
}

/// A CT object: `frames` frames of `rows` x `cols` 16-bit pixels. One frame
/// gives CT Image Storage; more give Enhanced CT with its functional groups.
/// `n` numbers the object (its instance, its patient: 100 patients in turn).
pub(crate) fn ct_object(n: usize, frames: usize, rows: u16, cols: u16) -> Object {
    let enhanced = frames > 1;
    let sop_class = if enhanced { ENHANCED_CT } else { CT };
    let root = "1.2.826.0.1.3680043.8.498.77";
    let patient = n % 100;
    let study = format!("{root}.1.{patient}");
    let series = format!("{root}.2.{patient}.{}", u8::from(enhanced));
    let instance = format!("{root}.3.{patient}.{}.{n}", u8::from(enhanced));
    let frame_of_ref = format!("{root}.4.{patient}");
    let mut e = vec![
        el(0x0008_0005, b"CS", b"ISO_IR 100"),
        el(0x0008_0008, b"CS", b"ORIGINAL\\PRIMARY\\AXIAL"),
        el(0x0008_0012, b"DA", b"20240119"),
        el(0x0008_0013, b"TM", b"072731"),
        el(0x0008_0014, b"UI", b"1.3.6.1.4.1.5962.3"),
        el(0x0008_0016, b"UI", sop_class.as_bytes()),
        el(0x0008_0018, b"UI", instance.as_bytes()),
        el(0x0008_0020, b"DA", b"20240119"),
        el(0x0008_0021, b"DA", b"20240119"),
        el(0x0008_0022, b"DA", b"20240119"),
        el(0x0008_0023, b"DA", b"20240119"),
        el(0x0008_0030, b"TM", b"072730"),
        el(0x0008_0031, b"TM", b"112749"),
        el(0x0008_0032, b"TM", b"112936"),
        el(0x0008_0033, b"TM", b"113008"),
        el(0x0008_0050, b"SH", format!("A2024{patient:06}").as_bytes()),
        el(0x0008_0060, b"CS", b"CT"),
        el(0x0008_0070, b"LO", b"GE MEDICAL SYSTEMS"),
        el(0x0008_0080, b"LO", b"St. Elsewhere General Hospital"),
        el(
            0x0008_0081,
            b"ST",
            b"1 Hospital Road, Boston MA 02115, United States",
        ),
        el(0x0008_0090, b"PN", b"Kildare^James^^Dr."),
        el(0x0008_0201, b"SH", b"-0500"),
        el(0x0008_1010, b"SH", b"CT01_OC0"),
        el(0x0008_1030, b"LO", b"CT CHEST ABDOMEN PELVIS W CONTRAST"),
        seq(
            0x0008_1032,
            vec![code_item("74177", "CPT4", "CT ABD & PELVIS W/CONTRAST")],
            true,
        ),
        el(0x0008_103E, b"LO", b"AXIAL 5MM STANDARD"),
        el(0x0008_1040, b"LO", b"Radiology"),
        el(0x0008_1050, b"PN", b"Westphall^Donald"),
        el(0x0008_1070, b"PN", b"Craig^Victor"),
        el(0x0008_1090, b"LO", b"LightSpeed VCT"),
        seq(
            0x0008_1110,
            vec![vec![
                el(0x0008_1150, b"UI", b"1.2.840.10008.3.1.2.3.1"),
                el(0x0008_1155, b"UI", format!("{root}.5.{patient}").as_bytes()),
            ]],
            true,
        ),
        seq(
            0x0008_1140,
            vec![vec![
                el(0x0008_1150, b"UI", CT.as_bytes()),
                el(
                    0x0008_1155,
                    b"UI",
                    format!("{root}.3.{patient}.9.1").as_bytes(),
                ),
            ]],
            false,
        ),
        el(
            0x0010_0010,
            b"PN",
            format!("Doe^Jane^Q{patient}").as_bytes(),
        ),
        el(0x0010_0020, b"LO", format!("MRN{patient:08}").as_bytes()),
        el(0x0010_0030, b"DA", b"19610403"),
        el(0x0010_0040, b"CS", b"F"),
        seq(
            0x0010_1002,
            vec![vec![
                el(
                    0x0010_0020,
                    b"LO",
                    format!("SSN-555-01-{patient:04}").as_bytes(),
                ),
                el(0x0010_0022, b"CS", b"TEXT"),
            ]],
            true,
        ),
        el(0x0010_1010, b"AS", b"062Y"),
        el(0x0010_1020, b"DS", b"1.68"),
        el(0x0010_1030, b"DS", b"71.5"),
        el(0x0010_1040, b"LO", b"12 Elm Street, Springfield"),
        el(0x0010_2154, b"SH", b"555-0142"),
        el(
            0x0010_21B0,
            b"LT",
            b"Follow-up of pulmonary nodule seen 2023",
        ),
        el(0x0018_0015, b"CS", b"CHEST"),
        el(0x0018_0022, b"CS", b"HELICAL MODE"),
        el(0x0018_0050, b"DS", b"5.000000"),
        el(0x0018_0060, b"DS", b"120"),
        el(0x0018_0088, b"DS", b"5.000000"),
        el(0x0018_0090, b"DS", b"480.000000"),
        el(0x0018_1000, b"LO", b"SN-CT-0042-7781"),
        el(0x0018_1020, b"LO", b"LightSpeedverrel"),
        el(0x0018_1030, b"LO", b"5.1 CHEST ABD PELVIS"),
        el(0x0018_1100, b"DS", b"338.671600"),
        el(0x0018_1120, b"DS", b"0.000000"),
        el(0x0018_1150, b"IS", b"1601"),
        el(0x0018_1151, b"IS", b"170"),
        el(0x0018_1152, b"IS", b"170"),
        el(0x0018_1210, b"SH", b"STANDARD"),
        el(0x0018_5100, b"CS", b"FFS"),
        el(0x0020_000D, b"UI", study.as_bytes()),
        el(0x0020_000E, b"UI", series.as_bytes()),
        el(0x0020_0010, b"SH", format!("S{patient}").as_bytes()),
        el(0x0020_0011, b"IS", b"2"),
        el(0x0020_0012, b"IS", b"1"),
        el(0x0020_0013, b"IS", (n % 1000 + 1).to_string().as_bytes()),
        el(0x0020_0052, b"UI", frame_of_ref.as_bytes()),
        el(0x0020_1040, b"LO", b"SN"),
        el(0x0020_4000, b"LT", b"Uncompressed; reviewed by Dr. Kildare"),
        el(0x0028_0002, b"US", &1u16.to_le_bytes()),
        el(0x0028_0004, b"CS", b"MONOCHROME2"),
        el(0x0028_0010, b"US", &rows.to_le_bytes()),
        el(0x0028_0011, b"US", &cols.to_le_bytes()),
        el(0x0028_0100, b"US", &16u16.to_le_bytes()),
        el(0x0028_0101, b"US", &12u16.to_le_bytes()),
        el(0x0028_0102, b"US", &11u16.to_le_bytes()),
        el(0x0028_0103, b"US", &0u16.to_le_bytes()),
        el(0x0028_0301, b"CS", b"NO"),
        el(0x0028_1050, b"DS", b"40"),
        el(0x0028_1051, b"DS", b"400"),
        el(0x0028_1052, b"DS", b"-1024"),
        el(0x0028_1053, b"DS", b"1"),
        el(0x0032_1060, b"LO", b"CT CHEST ABDOMEN PELVIS"),
        el(0x0040_0244, b"DA", b"20240119"),
        el(0x0040_0245, b"TM", b"072730"),
        el(0x0040_0253, b"SH", format!("PPS{patient:05}").as_bytes()),
        seq(
            0x0040_0275,
            vec![vec![
                el(0x0040_0007, b"LO", b"CT CHEST ABDOMEN PELVIS"),
                el(0x0040_0009, b"SH", format!("SPS{patient:05}").as_bytes()),
                el(0x0040_1001, b"SH", format!("RP{patient:05}").as_bytes()),
            ]],
            false,
        ),
    ];
    // GE-style private blocks (removed by the basic profile).
    e.push(el(0x0009_0010, b"LO", b"GEMS_IDEN_01"));
    e.push(el(0x0009_1001, b"LO", b"GE_GENESIS_FF"));
    e.push(el(0x0009_1002, b"SH", b"CT01"));
    e.push(el(0x0009_1004, b"SH", b"HiSpeed CT/i"));
    e.push(el(0x0009_1027, b"SL", &862_399_669u32.to_le_bytes()));
    e.push(el(0x0019_0010, b"LO", b"GEMS_ACQU_01"));
    for k in 0..40u32 {
        e.push(el(0x0019_1002 + k, b"DS", b"373.750000"));
    }
    e.push(el(0x0043_0010, b"LO", b"GEMS_PARM_01"));
    e.push(el(0x0043_1010, b"US", &400u16.to_le_bytes()));
    e.push(el(0x0043_1028, b"OB", &[0x5A; 80]));
    e.push(el(0x0043_1029, b"OB", &[0x11; 2068]));
    if enhanced {
        e.push(el(0x0028_0008, b"IS", frames.to_string().as_bytes()));
        e.push(el(
            0x0020_9161,
            b"UI",
            format!("{root}.6.{patient}").as_bytes(),
        ));
        e.push(seq(
            0x5200_9229,
            vec![vec![seq(
                0x0028_9110,
                vec![vec![
                    el(0x0018_0050, b"DS", b"5.000000"),
                    el(0x0028_0030, b"DS", b"0.661468\\0.661468"),
                ]],
                true,
            )]],
            true,
        ));
        let per_frame = (0..frames)
            .map(|f| {
                vec![
                    seq(
                        0x0020_9111,
                        vec![vec![
                            el(0x0018_9151, b"DT", frame_time(f).as_bytes()),
                            el(0x0020_9157, b"UL", &(f as u32 + 1).to_le_bytes()),
                        ]],
                        true,
                    ),
                    seq(
                        0x0020_9113,
                        vec![vec![el(
                            0x0020_0032,
                            b"DS",
                            format!("-158.135803\\-179.035797\\{:.6}", -75.7 - 5.0 * f as f64)
                                .as_bytes(),
                        )]],
                        true,
                    ),
                ]
            })
            .collect();
        e.push(seq(0x5200_9230, per_frame, false));
    } else {
        e.push(el(
            0x0020_0032,
            b"DS",
            b"-158.135803\\-179.035797\\-75.699997",
        ));
        e.push(el(0x0020_0037, b"DS", b"1\\0\\0\\0\\1\\0"));
        e.push(el(0x0028_0030, b"DS", b"0.661468\\0.661468"));
    }
    let pixels = frames * usize::from(rows) * usize::from(cols) * 2;
    let mut data_set = join(e);
    data_set.reserve(pixels + 12);
    data_set.extend_from_slice(&[0xE0, 0x7F, 0x10, 0x00]);
    data_set.extend_from_slice(b"OW\0\0");
    data_set.extend_from_slice(&(pixels as u32).to_le_bytes());
    data_set.extend((0..pixels).map(|i| (((i / 2 * 7 + n) % 4096) >> (8 * (i % 2))) as u8));

    let mut meta = join(vec![
        el(0x0002_0001, b"OB", &[0, 1]),
        el(0x0002_0002, b"UI", sop_class.as_bytes()),
        el(0x0002_0003, b"UI", instance.as_bytes()),
        el(0x0002_0010, b"UI", EXPLICIT_LE.as_bytes()),
        el(0x0002_0012, b"UI", b"1.2.826.0.1.3680043.8.498.1"),
        el(0x0002_0013, b"SH", b"WARDGATE_BENCH"),
    ]);
    let mut file = vec![0u8; 128];
    file.extend_from_slice(b"DICM");
    file.extend(el(0x0002_0000, b"UL", &(meta.len() as u32).to_le_bytes()).1);
    file.append(&mut meta);
    file.extend_from_slice(&data_set);
    Object {
        sop_class,
        instance,
        data_set,
        file,
    }
}

/// A Part 10 file's data set, SOP class, instance and transfer syntax (the
/// file meta information read by its group length).
pub(crate) fn split_part10(file: &[u8]) -> Result<(String, String, String, &[u8])> {
    if file.len() < 144 || &file[128..132] != b"DICM" {
        bail!("not a DICOM Part 10 file (no DICM at byte 128)");
    }
    let group_len = u32::from_le_bytes([file[140], file[141], file[142], file[143]]) as usize;
    let meta_end = 144 + group_len;
    let meta = file.get(144..meta_end).context("file meta cut short")?;
    let (mut class, mut instance, mut syntax) = (String::new(), String::new(), String::new());
    let mut at = 0;
    while at + 8 <= meta.len() {
        let elem = u16::from_le_bytes([meta[at + 2], meta[at + 3]]);
        let vr = [meta[at + 4], meta[at + 5]];
        let (len, head) = if long_length(&vr) {
            let b = meta.get(at + 8..at + 12).context("file meta cut short")?;
            (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, 12)
        } else {
            (
                usize::from(u16::from_le_bytes([meta[at + 6], meta[at + 7]])),
                8,
            )
        };
        let v = meta
            .get(at + head..at + head + len)
            .context("file meta cut short")?;
        let text = String::from_utf8_lossy(v)
            .trim_end_matches(['\0', ' '])
            .to_owned();
        match elem {
            2 => class = text,
            3 => instance = text,
            0x10 => syntax = text,
            _ => {}
        }
        at += head + len;
    }
    Ok((class, instance, syntax, &file[meta_end..]))
}

use crate::capture::{associate_header, item, pdu};

/// An implicit VR element of a command set.
fn cmd_el(out: &mut Vec<u8>, elem: u16, value: &[u8]) {
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&elem.to_le_bytes());
    let pad = value.len() % 2;
    out.extend_from_slice(&((value.len() + pad) as u32).to_le_bytes());
    out.extend_from_slice(value);
    if pad == 1 {
        out.push(0);
    }
}

/// A C-STORE-RQ command set (PS3.7 9.1.1), implicit VR little endian.
fn store_rq(msg_id: u16, class: &str, instance: &str) -> Vec<u8> {
    let mut e = Vec::new();
    cmd_el(&mut e, 0x0002, class.as_bytes());
    cmd_el(&mut e, 0x0100, &0x0001u16.to_le_bytes());
    cmd_el(&mut e, 0x0110, &msg_id.to_le_bytes());
    cmd_el(&mut e, 0x0700, &0u16.to_le_bytes());
    cmd_el(&mut e, 0x0800, &0x0000u16.to_le_bytes());
    cmd_el(&mut e, 0x1000, instance.as_bytes());
    let mut out = Vec::new();
    cmd_el(&mut out, 0x0000, &(e.len() as u32).to_le_bytes());
    out.extend(e);
    out
}

/// A blocking C-STORE SCU on one association: one object at a time, each
/// timed from its command's first byte to its response's last.
pub(crate) struct Scu {
    s: TcpStream,
    /// Largest P-DATA PDU the peer receives (its A-ASSOCIATE-AC), body only.
    max_pdu: usize,
    /// Accepted presentation contexts: (SOP class, context id).
    contexts: Vec<(String, u8)>,
    msg_id: u16,
    out: Vec<u8>,
    pdu: Vec<u8>,
}

impl Scu {
    /// Associates with `addr` proposing `classes` in explicit VR little
    /// endian, announcing a 16 KiB receive limit (storescu's default).
    pub(crate) fn connect(
        addr: SocketAddr,
        calling: &str,
        called: &str,
        classes: &[&str],
    ) -> Result<Scu> {
        let s = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut body = associate_header(calling, called);
        let mut proposed = Vec::new();
        for (i, class) in std::iter::once(&VERIFICATION).chain(classes).enumerate() {
            let id = (2 * i + 1) as u8;
            let mut pc = vec![id, 0, 0, 0];
            pc.extend(item(0x30, class.as_bytes()));
            pc.extend(item(0x40, EXPLICIT_LE.as_bytes()));
            body.extend(item(0x20, &pc));
            proposed.push((class.to_string(), id));
        }
        let mut user = item(0x51, &16384u32.to_be_bytes());
        user.extend(item(0x52, b"1.2.826.0.1.3680043.8.498.1"));
        user.extend(item(0x55, b"WARDGATE_BENCH"));
        body.extend(item(0x50, &user));
        let mut scu = Scu {
            s,
            max_pdu: 16384,
            contexts: Vec::new(),
            msg_id: 0,
            out: Vec::new(),
            pdu: Vec::new(),
        };
        scu.s.write_all(&pdu(0x01, &body))?;
        scu.read_pdu()?;
        let limits = dicom::Limits::default();
        match Pdu::parse(&scu.pdu, &limits)? {
            Pdu::AssociateAc(ac) => {
                if let Some(n) = ac.user.max_pdu_length.filter(|&n| n > 0) {
                    scu.max_pdu = n as usize;
                }
                for pc in ac.presentation_contexts.iter().filter(|pc| pc.result == 0) {
                    if let Some((class, _)) = proposed.iter().find(|(_, id)| *id == pc.id) {
                        scu.contexts.push((class.clone(), pc.id));
                    }
                }
            }
            other => bail!("association with {addr} not accepted: {other:?}"),
        }
        Ok(scu)
    }

    fn read_pdu(&mut self) -> Result<()> {
        self.pdu.resize(6, 0);
        self.s.read_exact(&mut self.pdu[..6])?;
        let len = u32::from_be_bytes([self.pdu[2], self.pdu[3], self.pdu[4], self.pdu[5]]) as usize;
        self.pdu.resize(6 + len, 0);
        self.s.read_exact(&mut self.pdu[6..])?;
        Ok(())
    }

    /// Stores one data set; returns how long it took (to the response).
    pub(crate) fn store(
        &mut self,
        class: &str,
        instance: &str,
        data_set: &[u8],
    ) -> Result<Duration> {
        let context = self
            .contexts
            .iter()
            .find(|(c, _)| c == class)
            .map(|(_, id)| *id)
            .with_context(|| format!("no accepted presentation context for {class}"))?;
        self.msg_id = self.msg_id.wrapping_add(1);
        let command = store_rq(self.msg_id, class, instance);
        let start = Instant::now();
        self.out.clear();
        dicom::encode_pdata(&[(context, 0x03, &command)], &mut self.out);
        self.s.write_all(&self.out)?;
        let chunk = self.max_pdu - 6;
        let mut pieces = data_set.chunks(chunk).peekable();
        while let Some(p) = pieces.next() {
            let mch = if pieces.peek().is_none() { 0x02 } else { 0x00 };
            self.out.clear();
            dicom::encode_pdata(&[(context, mch, p)], &mut self.out);
            self.s.write_all(&self.out)?;
        }
        let mut response = Vec::new();
        loop {
            self.read_pdu()?;
            let limits = dicom::Limits::default();
            match Pdu::parse(&self.pdu, &limits)? {
                Pdu::PData(pd) => {
                    let mut last = false;
                    for pdv in &pd.pdvs {
                        response.extend_from_slice(pdv.data);
                        last |= pdv.is_command && pdv.is_last;
                    }
                    if last {
                        break;
                    }
                }
                other => bail!("C-STORE of {instance}: {other:?} instead of a response"),
            }
        }
        let took = start.elapsed();
        let rsp = dicom::Command::parse(&response)?;
        if rsp.status != Some(0) {
            bail!("C-STORE of {instance}: status {:04X?}", rsp.status);
        }
        Ok(took)
    }

    /// Releases the association.
    pub(crate) fn release(mut self) -> Result<()> {
        self.s.write_all(&pdu(0x05, &[0; 4]))?;
        self.read_pdu()?;
        Ok(())
    }
}

/// Stores every object on one association; returns seconds and the
/// per-object latency histogram (µs).
pub(crate) fn store_all(addr: SocketAddr, objects: &[Object]) -> Result<(f64, Histogram<u64>)> {
    let mut classes: Vec<&str> = objects.iter().map(|o| o.sop_class).collect();
    classes.sort_unstable();
    classes.dedup();
    let start = Instant::now();
    let mut scu = Scu::connect(addr, "CT01", "PACS", &classes)?;
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for o in objects {
        let t = scu.store(o.sop_class, &o.instance, &o.data_set)?;
        hist.record((t.as_micros() as u64).clamp(1, 60_000_000))?;
    }
    scu.release()?;
    Ok((start.elapsed().as_secs_f64(), hist))
}
