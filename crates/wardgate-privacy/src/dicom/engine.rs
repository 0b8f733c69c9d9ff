//! The streaming de-identifier: a sans-IO state machine over data set bytes.

use std::collections::BTreeMap;

use super::profile::{opt, Action, DicomProfile, Limits, Mode, SafePrivate};
use super::table::{rule, Resolved};
use super::values::{self, dummy, map_ae, map_uids, pad, pad_byte, shift_dates, trim};
use super::vr::{dictionary_vr, Vr};
use super::{BurnedIn, DeidError, Encoding};
use crate::Pseudonymiser;

const UNDEFINED: u32 = 0xFFFF_FFFF;
const PATIENT_NAME: u32 = 0x0010_0010;
const PATIENT_ID: u32 = 0x0010_0020;
const SOP_CLASS: u32 = 0x0008_0016;
const SOP_INSTANCE: u32 = 0x0008_0018;
const CONVERSION_TYPE: u32 = 0x0008_0064;
const BURNED_IN: u32 = 0x0028_0301;
const VISUAL_FEATURES: u32 = 0x0028_0302;
const OTHER_PATIENT_IDS: u32 = 0x0010_1000;
const OTHER_PATIENT_IDS_SEQ: u32 = 0x0010_1002;
const IDENTITY_REMOVED: u32 = 0x0012_0062;
const METHOD: u32 = 0x0012_0063;
const METHOD_CODES: u32 = 0x0012_0064;
const TEMPORAL_MODIFIED: u32 = 0x0028_0303;
/// HL7 Instance Identifier (0040,E001), ST: a document's id `UID^extension`.
const HL7_INSTANCE_IDENTIFIER: u32 = 0x0040_E001;

/// The UI attributes of a data set that Table E.1-1 does not list and that name
/// a definition, not an instance: SOP classes, transfer syntaxes, coding
/// schemes, context groups, mapping resources, a software version. They are
/// kept; every other UI attribute the table does not list (Multi-frame Source
/// SOP Instance UID, Volume Frame of Reference UID, a Concatenation Source...)
/// can name the original object, so its values are replaced as U would
/// (consistently, so references stay whole).
pub(super) const DEFINITION_UIDS: [u32; 18] = [
    0x0008_0016, // SOP Class UID
    0x0008_001A, // Related General SOP Class UID
    0x0008_001B, // Original Specialized SOP Class UID
    0x0008_0062, // SOP Classes in Study
    0x0008_010C, // Coding Scheme UID
    0x0008_010D, // Context Group Extension Creator UID
    0x0008_0117, // Context UID
    0x0008_0118, // Mapping Resource UID
    0x0008_040E, // Stored Instance Transfer Syntax UID
    0x0008_1150, // Referenced SOP Class UID
    0x0008_115A, // SOP Classes Supported
    0x0008_3002, // Available Transfer Syntax UID
    0x0008_9123, // Creator-Version UID
    0x0034_0003, // Flow Transfer Syntax UID
    0x0400_0010, // MAC Calculation Transfer Syntax UID
    0x0400_0510, // Encrypted Content Transfer Syntax UID
    0x3010_0052, // Pertinent SOP Classes in Study
    0x3010_0053, // Pertinent SOP Classes in Series
];

/// Secondary Capture SOP classes: screenshots, scanned documents, anything
/// converted into an image, where identity is often in the pixels.
const SECONDARY_CAPTURE: [&str; 5] = [
    "1.2.840.10008.5.1.4.1.1.7",
    "1.2.840.10008.5.1.4.1.1.7.1",
    "1.2.840.10008.5.1.4.1.1.7.2",
    "1.2.840.10008.5.1.4.1.1.7.3",
    "1.2.840.10008.5.1.4.1.1.7.4",
];
/// Visible-light photographic and video SOP classes (current and retired):
/// camera images, where a face, a wristband, a chart or a slide label may be
/// in the picture. Refused like a Secondary Capture. VL Whole Slide
/// Microscopy is here for its label image (the patient's name on the slide).
const PHOTOGRAPHIC: [&str; 17] = [
    "1.2.840.10008.5.1.4.1.1.77.1",     // VL Image (retired)
    "1.2.840.10008.5.1.4.1.1.77.2",     // VL Multi-frame Image (retired)
    "1.2.840.10008.5.1.4.1.1.77.1.1",   // VL Endoscopic Image
    "1.2.840.10008.5.1.4.1.1.77.1.1.1", // Video Endoscopic Image
    "1.2.840.10008.5.1.4.1.1.77.1.2",   // VL Microscopic Image
    "1.2.840.10008.5.1.4.1.1.77.1.2.1", // Video Microscopic Image
    "1.2.840.10008.5.1.4.1.1.77.1.3",   // VL Slide-Coordinates Microscopic Image
    "1.2.840.10008.5.1.4.1.1.77.1.4",   // VL Photographic Image
    "1.2.840.10008.5.1.4.1.1.77.1.4.1", // Video Photographic Image
    "1.2.840.10008.5.1.4.1.1.77.1.5.1", // Ophthalmic Photography 8 Bit Image
    "1.2.840.10008.5.1.4.1.1.77.1.5.2", // Ophthalmic Photography 16 Bit Image
    "1.2.840.10008.5.1.4.1.1.77.1.5.5", // Wide Field Ophthalmic Photography Stereographic Projection
    "1.2.840.10008.5.1.4.1.1.77.1.5.6", // Wide Field Ophthalmic Photography 3D Coordinates
    "1.2.840.10008.5.1.4.1.1.77.1.6",   // VL Whole Slide Microscopy Image
    "1.2.840.10008.5.1.4.1.1.77.1.7",   // Dermoscopic Photography Image
    "1.2.840.10008.5.1.4.1.1.68.1",     // Surface Scan Mesh (an optical 3-D scan: a face)
    "1.2.840.10008.5.1.4.1.1.68.2",     // Surface Scan Point Cloud
];
/// Unlisted text attributes that describe a definition, not a patient: a
/// coding scheme's name and responsible organisation (Coding Scheme
/// Identification Sequence). Kept where other unlisted free text gets the
/// dummy.
const DEFINITION_TEXT: [u32; 2] = [0x0008_0115, 0x0008_0116];
/// The dates of a definition, not of the patient: the version of a context
/// group or template (public: PS3.16 and the DCMR publish them) and of a
/// site's local extension of it. Kept as written under every option, like the
/// definition UIDs: shifted by the patient's offset, a published version date
/// would give the offset away (found by an adversarial review); and they say
/// nothing of the patient.
/// Also the dates that are the same for many patients and known outside
/// the data (a second adversarial review): a trial's ethics approval, a
/// brachytherapy source's certificate, a product's expiry, a hanging
/// protocol's or an implant template's creation and issue.
pub(super) const DEFINITION_DATES: [u32; 11] = [
    0x0008_0106, // Context Group Version
    0x0008_0107, // Context Group Local Version
    0x0040_DB06, // Template Version
    0x0040_DB07, // Template Local Version
    0x0012_0086, // Ethics Committee Approval Effectiveness Start Date
    0x0012_0087, // Ethics Committee Approval Effectiveness End Date
    0x300A_022C, // Source Strength Reference Date
    0x0044_000B, // Product Expiration DateTime
    0x0072_000A, // Hanging Protocol Creation DateTime
    0x0068_6226, // Effective DateTime (implant template)
    0x0068_6270, // Information Issue DateTime (implant template)
];
/// The dates and times of a device, not of the patient: never shifted by a
/// patient's offset (whoever knows the device's real dates would learn the
/// offset, and two patients on one device the difference of theirs; found by
/// an adversarial review). Kept with `retain-longitudinal-full-dates`; kept
/// with `retain-device-identity` when they cannot date the study (see
/// [`CALIBRATION_DATES`]); otherwise the table's basic action (removed, or a
/// dummy or empty value where it says so), never the shift.
pub(super) const DEVICE_DATES: [u32; 12] = [
    0x0014_3076, // Date of Gain Calibration
    0x0014_3077, // Time of Gain Calibration
    0x0014_407C, // Calibration Time
    0x0014_407E, // Calibration Date
    0x0018_1200, // Date of Last Calibration
    0x0018_1201, // Time of Last Calibration
    0x0018_1202, // DateTime of Last Calibration
    0x0018_1203, // Calibration DateTime
    0x0018_1204, // Date of Manufacture
    0x0018_1205, // Date of Installation
    0x0018_700C, // Date of Last Detector Calibration
    0x0018_700E, // Time of Last Detector Calibration
];
/// The device dates that are calibrations: often the day of the study, so a
/// real one beside the patient's shifted dates gives the shift away (nearly).
/// With `retain-longitudinal-modified-dates` they are not kept even under
/// `retain-device-identity`; dates of manufacture and installation are.
const CALIBRATION_DATES: [u32; 10] = [
    0x0014_3076,
    0x0014_3077,
    0x0014_407C,
    0x0014_407E,
    0x0018_1200,
    0x0018_1201,
    0x0018_1202,
    0x0018_1203,
    0x0018_700C,
    0x0018_700E,
];
/// Most other patient identifiers an object may carry
/// ([`Deidentifier::other_patient_ids`]); more is refused.
pub const MAX_OTHER_PATIENT_IDS: usize = 64;

/// Ultrasound SOP classes (current and retired): devices write the patient's
/// name into the image, so they pass only with Burned In Annotation NO.
const ULTRASOUND: [&str; 5] = [
    "1.2.840.10008.5.1.4.1.1.6.1",
    "1.2.840.10008.5.1.4.1.1.3.1",
    "1.2.840.10008.5.1.4.1.1.6.2",
    "1.2.840.10008.5.1.4.1.1.6",
    "1.2.840.10008.5.1.4.1.1.3",
];

/// What a call to [`Deidentifier::feed`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes appended to `out`.
    pub written: usize,
    /// Bytes held back, waiting for the Patient ID or Burned In Annotation.
    pub held: usize,
}

/// What was done to one data set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// The original top-level Patient ID (trimmed), if present and not empty.
    pub patient_id: Option<String>,
    /// Days dates were moved by, when they were.
    pub date_shift_days: Option<i32>,
    /// The SOP Class UID (0008,0016).
    pub sop_class: Option<String>,
    /// The original SOP Instance UID (0008,0018).
    pub sop_instance: Option<String>,
    /// Attributes removed (X), private ones included.
    pub removed: u64,
    /// Attributes emptied (Z).
    pub emptied: u64,
    /// Attributes given a dummy value or pseudonym (D, Patient ID and Name).
    pub replaced: u64,
    /// Attributes whose UIDs were replaced (U).
    pub uids: u64,
    /// Attributes whose dates were shifted.
    pub dates_shifted: u64,
    /// AE titles replaced by keyed pseudonyms.
    pub titles: u64,
    /// Private attributes removed.
    pub private_removed: u64,
    /// Private attributes kept as safe.
    pub private_kept: u64,
    /// Defined-length sequences re-emitted with undefined length.
    pub sequences_reencoded: u64,
    /// Data set bytes read.
    pub bytes_in: u64,
    /// Data set bytes written.
    pub bytes_out: u64,
}

/// What a sequence's items carry over from how the sequence was treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Content {
    /// The profile applies.
    Normal,
    /// Cleaned (C on a sequence): free text the table does not name is replaced.
    Clean,
    /// A dummy (D on a sequence): every text value the table does not name is.
    Dummy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The top-level data set or an item's.
    Data,
    /// A sequence: items follow.
    Seq,
    /// Encapsulated pixel data: fragments follow.
    Fragments,
}

#[derive(Debug)]
struct Frame {
    kind: Kind,
    /// Input offset where it ends (defined length), else a delimiter ends it.
    end: Option<u64>,
    /// Whether anything of it is written (false inside removed sequences).
    emit: bool,
    /// Elements inside are implicit VR.
    implicit: bool,
    content: Content,
    /// The last tag of a data set, to refuse disorder and repetition.
    last_tag: Option<u32>,
    /// Private creators of a data set: (group, block, creator).
    creators: Vec<(u16, u8, String)>,
    /// The top-level Other Patient IDs Sequence (0010,1002), or one of its
    /// items: their Patient IDs are read, even when the sequence is removed.
    other_ids: bool,
}

impl Frame {
    fn new(kind: Kind, end: Option<u64>, emit: bool, implicit: bool, content: Content) -> Self {
        Frame {
            kind,
            end,
            emit,
            implicit,
            content,
            last_tag: None,
            creators: Vec::new(),
            other_ids: false,
        }
    }
}

/// An element being handled: its tag, its VR in the output header (`None` in
/// implicit VR), its VR for what it means, its length.
#[derive(Debug, Clone, Copy)]
struct Elem {
    tag: u32,
    out_vr: Option<Vr>,
    sem: Vr,
    len: u32,
    top: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode2 {
    Copy,
    Skip,
    Zero,
    Read,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Header,
    Value { remaining: u64, mode: Mode2 },
}

/// What to do with a value once read.
#[derive(Debug, Clone, Copy)]
enum Purpose {
    /// Looked at (SOP class and instance, burned-in signals, Other Patient
    /// IDs), then written as the decision says.
    Watch(Decision),
    /// A Patient ID in an item of a removed Other Patient IDs Sequence:
    /// recorded, not written.
    OtherId,
    Uid,
    Ae,
    Dates,
    PatientId(Option<Action>),
    Creator,
    /// Up to 8 bytes of a value of unknown VR: a sequence or not.
    Peek {
        content: Content,
    },
}

/// What the profile says to do with one element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Keep,
    Remove,
    Empty,
    Dummy,
    Uid,
    Dates,
    Ae,
    Clean { dummy: bool },
    PatientId(Option<Action>),
    PatientName,
    Creator,
    PrivateRemove,
    PrivateKeep,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Patient {
    /// (0010,0020) not reached yet.
    Unknown,
    /// Read (trimmed; empty when the value was).
    Known(String),
    /// Passed without one.
    Absent,
}

#[derive(Debug, Clone, Copy)]
enum DeferKind {
    PatientName,
    Dates,
}

#[derive(Debug)]
struct Deferred {
    at: usize,
    elem: Elem,
    kind: DeferKind,
    value: Vec<u8>,
}

#[derive(Debug, Default)]
struct Hold {
    bytes: Vec<u8>,
    deferred: Vec<Deferred>,
    /// Bytes of deferred values, counted against the limit.
    deferred_bytes: usize,
}

/// The options of the profile the engine consults per element.
#[derive(Debug, Clone)]
struct Config {
    mode: Mode,
    bits: u16,
    safe_private: Vec<SafePrivate>,
    overrides: BTreeMap<u32, Action>,
    allow_burned_in: bool,
    limits: Limits,
}

/// The streaming de-identifier of one data set. Feed it the data set's bytes
/// in order with [`feed`](Self::feed), then call [`finish`](Self::finish).
#[derive(Debug)]
pub struct Deidentifier {
    cfg: Config,
    p: Pseudonymiser,
    pos: u64,
    header: [u8; 12],
    have: usize,
    state: State,
    frames: Vec<Frame>,
    buf: Vec<u8>,
    reading: Option<(Elem, Purpose)>,
    patient: Patient,
    hold: Option<Hold>,
    hold_until: u32,
    /// Synthesised top-level elements still to write, ascending.
    synth: Vec<u32>,
    ultrasound: Option<String>,
    burned_in_no: bool,
    /// Patient identifiers besides the top-level Patient ID.
    other_ids: Vec<String>,
    /// Past (0010,1002) at the top level: every patient identifier is known.
    ids_done: bool,
    first: bool,
    done: bool,
    emitted: u64,
    summary: Summary,
    /// Values of at least this many bytes copied whole are reported
    /// ([`Deidentifier::log_copies`]).
    log_copies: Option<u64>,
    copies: Vec<crate::elements::Copy>,
}

impl Deidentifier {
    /// A de-identifier for one data set in `encoding`. `sop_class` is the
    /// Affected SOP Class UID of the C-STORE, when known: a Secondary Capture
    /// is then refused here, before any byte is read, and ultrasound is held
    /// until Burned In Annotation has been read.
    pub fn new(
        profile: &DicomProfile,
        p: &Pseudonymiser,
        encoding: Encoding,
        sop_class: Option<&str>,
    ) -> Result<Deidentifier, DeidError> {
        profile.validate()?;
        let mut bits = profile.options.bits();
        if profile.safe_private.is_empty() {
            bits &= !opt::SAFE_PRIVATE;
        }
        let mut synth = vec![IDENTITY_REMOVED, METHOD, METHOD_CODES];
        if bits & opt::MODIFIED_DATES != 0 {
            synth.push(TEMPORAL_MODIFIED);
        }
        let mut d = Deidentifier {
            cfg: Config {
                mode: profile.mode,
                bits,
                safe_private: profile.safe_private.clone(),
                overrides: profile.overrides.clone(),
                allow_burned_in: profile.allow_burned_in,
                limits: profile.limits,
            },
            p: p.clone(),
            pos: 0,
            header: [0; 12],
            have: 0,
            state: State::Header,
            frames: vec![Frame::new(
                Kind::Data,
                None,
                true,
                encoding == Encoding::ImplicitLe,
                Content::Normal,
            )],
            buf: Vec::new(),
            reading: None,
            patient: Patient::Unknown,
            hold: None,
            hold_until: 0,
            synth,
            ultrasound: None,
            burned_in_no: false,
            other_ids: Vec::new(),
            ids_done: false,
            first: true,
            done: false,
            emitted: 0,
            summary: Summary::default(),
            log_copies: None,
            copies: Vec::new(),
        };
        if profile.hold_until_patient_id {
            // Past the other patient identifiers too, so consent is checked
            // on all of them before a byte is written.
            d.start_hold(OTHER_PATIENT_IDS_SEQ);
        }
        if let Some(class) = sop_class {
            d.check_sop_class(class)?;
        }
        Ok(d)
    }

    /// The original top-level Patient ID, once read (trimmed; `None` while
    /// unknown, or when absent or empty).
    pub fn patient_id(&self) -> Option<&str> {
        match &self.patient {
            Patient::Known(id) if !id.is_empty() => Some(id),
            _ => None,
        }
    }

    /// The patient identifiers the object carries besides its top-level
    /// Patient ID: the values of Other Patient IDs (0010,1000) and the Patient
    /// ID (0010,0020) of each item of Other Patient IDs Sequence (0010,1002),
    /// at the top level; trimmed, empty ones and repeats left out, at most
    /// [`MAX_OTHER_PATIENT_IDS`] (more is refused). Complete once
    /// [`patient_resolved`](Self::patient_resolved) is true.
    pub fn other_patient_ids(&self) -> &[String] {
        &self.other_ids
    }

    /// True once every patient identifier has been read or is known to be
    /// absent: a top-level tag after (0010,1002) has been read, or the data
    /// set has ended. Then [`patient_id`](Self::patient_id) and
    /// [`other_patient_ids`](Self::other_patient_ids) are final. With
    /// [`DicomProfile::hold_until_patient_id`], nothing has been written
    /// before the call of [`feed`](Self::feed) in which this becomes true:
    /// the caller checks consent on all of them then, and on a refusal drops
    /// that output.
    pub fn patient_resolved(&self) -> bool {
        self.ids_done
    }

    /// Bytes written to the output so far.
    pub fn emitted(&self) -> u64 {
        self.emitted
    }

    /// Reports each value of at least `min_len` bytes that is copied whole
    /// from the input to the output ([`Deidentifier::take_copies`]), so the
    /// element digests hash it once ([`crate::elements::ElementDigests`]).
    /// Values copied while output is held are not reported (where they will
    /// land is not known yet).
    pub fn log_copies(&mut self, min_len: u64) {
        self.log_copies = Some(min_len);
    }

    /// The copies reported since the last call, in order.
    pub fn take_copies(&mut self) -> std::vec::Drain<'_, crate::elements::Copy> {
        self.copies.drain(..)
    }

    /// Consumes the next bytes of the data set, appending what can be written
    /// to `out`. After an error nothing more is accepted.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<Progress, DeidError> {
        if self.done {
            return Err(DeidError::Finished);
        }
        let before = out.len();
        if let Err(e) = self.run(input, out) {
            self.done = true;
            return Err(e);
        }
        Ok(Progress {
            written: out.len() - before,
            held: self.held(),
        })
    }

    /// Ends the data set: writes what was held and the synthesised elements
    /// still due, and says what was done.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<Summary, DeidError> {
        if self.done {
            return Err(DeidError::Finished);
        }
        self.done = true;
        if self.have != 0 || self.state != State::Header || self.frames.len() != 1 {
            return Err(DeidError::Truncated);
        }
        self.at_top_level(u32::MAX, out)?;
        self.summary.bytes_in = self.pos;
        self.summary.bytes_out = self.emitted;
        Ok(self.summary.clone())
    }

    fn held(&self) -> usize {
        self.hold
            .as_ref()
            .map_or(0, |h| h.bytes.len() + h.deferred_bytes)
    }

    fn malformed(&self, what: &'static str) -> DeidError {
        DeidError::Malformed {
            offset: self.pos,
            what,
        }
    }

    fn run(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), DeidError> {
        while !input.is_empty() {
            match self.state {
                State::Value { remaining, mode } => {
                    let n =
                        usize::try_from(remaining.min(input.len() as u64)).unwrap_or(input.len());
                    let (chunk, rest) = input.split_at(n);
                    match mode {
                        Mode2::Copy => self.put(out, chunk)?,
                        Mode2::Skip => {}
                        Mode2::Zero => self.put_zeros(out, n)?,
                        Mode2::Read => self.buf.extend_from_slice(chunk),
                    }
                    self.pos += n as u64;
                    input = rest;
                    let remaining = remaining - n as u64;
                    if remaining == 0 {
                        self.state = State::Header;
                        if mode == Mode2::Read {
                            self.value_read(out)?;
                        }
                        if self.state == State::Header {
                            self.close_finished(out)?;
                        }
                    } else {
                        self.state = State::Value { remaining, mode };
                    }
                }
                State::Header => {
                    let want = self.header_len();
                    let n = (want - self.have).min(input.len());
                    self.header[self.have..self.have + n].copy_from_slice(&input[..n]);
                    self.have += n;
                    self.pos += n as u64;
                    input = &input[n..];
                    if self.have == self.header_len() {
                        self.have = 0;
                        self.on_header(out)?;
                        if self.state == State::Header {
                            self.close_finished(out)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn implicit(&self) -> bool {
        self.frames.last().is_some_and(|f| f.implicit)
    }

    /// The header length, as far as the bytes so far tell: 8, or 12 for an
    /// explicit VR with a 4-byte length.
    fn header_len(&self) -> usize {
        if self.have < 6 {
            return 8;
        }
        let group = u16::from_le_bytes([self.header[0], self.header[1]]);
        if group == 0xFFFE || self.implicit() {
            return 8;
        }
        if self.first && !self.header[4..6].iter().all(u8::is_ascii_uppercase) {
            // Read as implicit VR below.
            return 8;
        }
        match Vr::from_code([self.header[4], self.header[5]]) {
            Some(vr) if vr.long_length() => 12,
            _ => 8,
        }
    }

    /// Pops the items and sequences whose defined length has been reached,
    /// writing their delimiters.
    fn close_finished(&mut self, out: &mut Vec<u8>) -> Result<(), DeidError> {
        while let Some(f) = self.frames.last() {
            match f.end {
                Some(end) if end == self.pos => self.close_frame(out)?,
                Some(end) if end < self.pos => {
                    return Err(self.malformed("value crosses the end of its item or sequence"))
                }
                _ => break,
            }
        }
        Ok(())
    }

    fn close_frame(&mut self, out: &mut Vec<u8>) -> Result<(), DeidError> {
        let Some(f) = self.frames.pop() else {
            return Ok(());
        };
        if f.emit {
            let element: u16 = match f.kind {
                Kind::Data => 0xE00D,
                Kind::Seq | Kind::Fragments => 0xE0DD,
            };
            self.put(out, &item_header(element, 0))?;
        }
        Ok(())
    }

    /// Refuses a value of `len` bytes from here that would cross the end of
    /// the innermost item or sequence of defined length.
    fn fits(&self, len: u64) -> Result<(), DeidError> {
        match self.frames.iter().rev().find_map(|f| f.end) {
            Some(end) if self.pos.saturating_add(len) > end => {
                Err(self.malformed("value crosses the end of its item or sequence"))
            }
            _ => Ok(()),
        }
    }

    fn push(&mut self, frame: Frame) -> Result<(), DeidError> {
        let depth = self.frames.iter().filter(|f| f.kind != Kind::Data).count();
        if frame.kind != Kind::Data && depth >= self.cfg.limits.max_depth {
            return Err(DeidError::TooDeep {
                limit: self.cfg.limits.max_depth,
            });
        }
        if let Some(end) = frame.end {
            if self.frames.iter().any(|f| f.end.is_some_and(|e| e < end)) {
                return Err(self.malformed("value crosses the end of its item or sequence"));
            }
        }
        self.frames.push(frame);
        Ok(())
    }

    fn on_header(&mut self, out: &mut Vec<u8>) -> Result<(), DeidError> {
        let h = self.header;
        let group = u16::from_le_bytes([h[0], h[1]]);
        let element = u16::from_le_bytes([h[2], h[3]]);
        let tag = (u32::from(group) << 16) | u32::from(element);
        let fi = self.frames.len() - 1;
        self.fits(0)?;
        match self.frames[fi].kind {
            Kind::Seq => {
                return self.in_sequence(tag, u32::from_le_bytes([h[4], h[5], h[6], h[7]]), out)
            }
            Kind::Fragments => {
                return self.in_fragments(tag, u32::from_le_bytes([h[4], h[5], h[6], h[7]]), out)
            }
            Kind::Data => {}
        }
        if group == 0xFFFE {
            if element != 0xE00D || fi == 0 || self.frames[fi].end.is_some() {
                return Err(self.malformed("item or delimiter tag in a data set"));
            }
            return self.close_frame(out);
        }
        if self.first {
            self.first = false;
            if !self.frames[0].implicit && !h[4..6].iter().all(u8::is_ascii_uppercase) {
                // Some writers declare explicit VR and write implicit; like
                // dcmtk and pydicom, believe the bytes (and write them back so).
                self.frames[0].implicit = true;
            }
        }
        let implicit = self.frames[fi].implicit;
        let (out_vr, len) = if implicit {
            (None, u32::from_le_bytes([h[4], h[5], h[6], h[7]]))
        } else {
            let vr = Vr::from_code([h[4], h[5]])
                .ok_or_else(|| self.malformed("unknown value representation"))?;
            let len = if vr.long_length() {
                u32::from_le_bytes([h[8], h[9], h[10], h[11]])
            } else {
                u32::from(u16::from_le_bytes([h[6], h[7]]))
            };
            (Some(vr), len)
        };
        if len != UNDEFINED {
            self.fits(u64::from(len))?;
        }
        if self.frames[fi].last_tag.is_some_and(|t| t >= tag) {
            return Err(self.malformed("attributes out of order or repeated"));
        }
        self.frames[fi].last_tag = Some(tag);
        let top = fi == 0;
        if top {
            self.at_top_level(tag, out)?;
        }
        // The dictionary is asked for every element: where the bytes give no
        // VR it gives it, and where they do it is what a declared VR is
        // checked against (`check_vr`: a Patient ID declared SQ must not read
        // as absent).
        let dict = dictionary_vr(tag);
        let sem = match out_vr {
            None | Some(Vr::UN) => dict.unwrap_or(Vr::UN),
            Some(v) => v,
        };
        let e = Elem {
            tag,
            out_vr,
            sem,
            len,
            top,
        };
        let inner_implicit = implicit || out_vr == Some(Vr::UN);
        let shape = if sem == Vr::SQ {
            Shape::Sequence
        } else if len == UNDEFINED {
            if out_vr == Some(Vr::UN) || (implicit && sem == Vr::UN) {
                Shape::Sequence
            } else if matches!(
                sem,
                Vr::OB | Vr::OW | Vr::OF | Vr::OD | Vr::OL | Vr::OV | Vr::UN
            ) {
                Shape::Fragments
            } else {
                return Err(self.malformed("undefined length on a value that is not a sequence"));
            }
        } else if sem == Vr::UN {
            Shape::Unknown
        } else {
            Shape::Value
        };
        let frame = &self.frames[fi];
        if !frame.emit {
            if frame.other_ids && (tag == PATIENT_ID || tag == OTHER_PATIENT_IDS) {
                self.check_vr(&e, dict, shape)?;
                if shape == Shape::Value {
                    return self.start_read(e, Purpose::OtherId, out);
                }
            }
            if frame.other_ids && shape == Shape::Sequence {
                // A sequence inside one walked for Patient IDs is walked too.
                let end = (len != UNDEFINED).then(|| self.pos + u64::from(len));
                let mut f = Frame::new(Kind::Seq, end, false, inner_implicit, Content::Normal);
                f.other_ids = true;
                return self.push(f);
            }
            return self.discard(shape, len, inner_implicit);
        }
        self.check_vr(&e, dict, shape)?;
        let content = frame.content;
        let decision = self.decide(&e, content)?;
        self.apply(e, decision, shape, inner_implicit, content, out)
    }

    /// An item or the delimiter in a sequence.
    fn in_sequence(&mut self, tag: u32, len: u32, out: &mut Vec<u8>) -> Result<(), DeidError> {
        let f = self.frames.last().ok_or(DeidError::Truncated)?;
        let (emit, implicit, content, end) = (f.emit, f.implicit, f.content, f.end);
        let other_ids = f.other_ids;
        if len != UNDEFINED {
            self.fits(u64::from(len))?;
        }
        match tag {
            0xFFFE_E000 => {
                let item_end = (len != UNDEFINED).then(|| self.pos + u64::from(len));
                if !emit {
                    if other_ids {
                        // Read for its Patient ID, written nowhere.
                        let mut f = Frame::new(Kind::Data, item_end, false, implicit, content);
                        f.other_ids = true;
                        return self.push(f);
                    }
                    if len == UNDEFINED {
                        return self.push(Frame::new(Kind::Data, None, false, implicit, content));
                    }
                    return self.start_value(u64::from(len), Mode2::Skip, out);
                }
                self.put(out, &item_header(0xE000, UNDEFINED))?;
                let mut f = Frame::new(Kind::Data, item_end, true, implicit, content);
                f.other_ids = other_ids;
                self.push(f)
            }
            0xFFFE_E0DD if end.is_none() => self.close_frame(out),
            _ => Err(self.malformed("a sequence holds something other than items")),
        }
    }

    /// A fragment or the delimiter of encapsulated pixel data.
    fn in_fragments(&mut self, tag: u32, len: u32, out: &mut Vec<u8>) -> Result<(), DeidError> {
        let emit = self.frames.last().is_some_and(|f| f.emit);
        if len != UNDEFINED {
            self.fits(u64::from(len))?;
        }
        match tag {
            0xFFFE_E000 if len != UNDEFINED => {
                if emit {
                    self.put(out, &item_header(0xE000, len))?;
                    self.log_copy(self.pos, u64::from(len));
                    self.start_value(u64::from(len), Mode2::Copy, out)
                } else {
                    self.start_value(u64::from(len), Mode2::Skip, out)
                }
            }
            0xFFFE_E0DD => self.close_frame(out),
            _ => {
                Err(self.malformed("encapsulated pixel data holds something other than fragments"))
            }
        }
    }

    /// Skips an element inside a removed sequence, following only its structure.
    fn discard(&mut self, shape: Shape, len: u32, inner_implicit: bool) -> Result<(), DeidError> {
        if len == UNDEFINED {
            let kind = if shape == Shape::Fragments {
                Kind::Fragments
            } else {
                Kind::Seq
            };
            return self.push(Frame::new(
                kind,
                None,
                false,
                inner_implicit,
                Content::Normal,
            ));
        }
        self.state = if len == 0 {
            State::Header
        } else {
            State::Value {
                remaining: u64::from(len),
                mode: Mode2::Skip,
            }
        };
        Ok(())
    }

    /// Reports a value of `len` bytes starting at `input` that is copied
    /// whole to the output from where the output is now (its header written).
    fn log_copy(&mut self, input: u64, len: u64) {
        if self.hold.is_none() && self.log_copies.is_some_and(|min| len >= min) {
            self.copies.push(crate::elements::Copy {
                input,
                output: self.emitted,
                len,
            });
        }
    }

    fn start_value(&mut self, len: u64, mode: Mode2, out: &mut Vec<u8>) -> Result<(), DeidError> {
        if len == 0 {
            self.state = State::Header;
            if mode == Mode2::Read {
                self.value_read(out)?;
            }
        } else {
            self.state = State::Value {
                remaining: len,
                mode,
            };
        }
        Ok(())
    }

    fn start_read(
        &mut self,
        e: Elem,
        purpose: Purpose,
        out: &mut Vec<u8>,
    ) -> Result<(), DeidError> {
        let len = match purpose {
            Purpose::Peek { .. } => e.len.min(8),
            _ => e.len,
        };
        if len as usize > self.cfg.limits.max_value {
            return Err(DeidError::ValueTooLong {
                tag: e.tag,
                len: u64::from(e.len),
                limit: self.cfg.limits.max_value,
            });
        }
        self.buf.clear();
        self.reading = Some((e, purpose));
        self.start_value(u64::from(len), Mode2::Read, out)
    }

    /// Everything at the top level before the element `tag` (u32::MAX at the
    /// end) is known: resolve the patient, check the burned-in gate, write the
    /// synthesised elements due, release the hold.
    fn at_top_level(&mut self, tag: u32, out: &mut Vec<u8>) -> Result<(), DeidError> {
        if tag > PATIENT_ID && self.patient == Patient::Unknown {
            self.patient = Patient::Absent;
            self.note_shift();
        }
        if tag > OTHER_PATIENT_IDS_SEQ {
            self.ids_done = true;
        }
        self.check_ultrasound(tag.saturating_sub(1))?;
        while let Some(&s) = self.synth.first() {
            if s > tag {
                break;
            }
            self.synth.remove(0);
            let bytes = self.synthesise(s)?;
            self.put(out, &bytes)?;
        }
        self.maybe_release(tag.saturating_sub(1), out)
    }

    /// Ultrasound passes only once Burned In Annotation NO has been read.
    fn check_ultrasound(&self, past: u32) -> Result<(), DeidError> {
        match &self.ultrasound {
            Some(class) if past >= BURNED_IN && !self.burned_in_no && !self.cfg.allow_burned_in => {
                Err(DeidError::BurnedIn(BurnedIn::Ultrasound(class.clone())))
            }
            _ => Ok(()),
        }
    }

    fn note_shift(&mut self) {
        if self.cfg.bits & opt::MODIFIED_DATES != 0 {
            self.summary.date_shift_days = Some(self.p.date_shift_days(self.patient_key()));
        }
    }

    /// The Patient ID dates are shifted by: the one read, or "" when there is
    /// none (all such objects share one keyed offset).
    fn patient_key(&self) -> &str {
        match &self.patient {
            Patient::Known(id) => id,
            _ => "",
        }
    }

    fn start_hold(&mut self, until: u32) {
        self.hold_until = self.hold_until.max(until);
        if self.hold.is_none() {
            self.hold = Some(Hold::default());
        }
    }

    /// Writes what was held once every top-level tag up to `past` has been
    /// read, the patient is resolved and the hold's reason is behind.
    fn maybe_release(&mut self, past: u32, out: &mut Vec<u8>) -> Result<(), DeidError> {
        if self.hold.is_none() || past < self.hold_until || self.patient == Patient::Unknown {
            return Ok(());
        }
        self.check_ultrasound(past)?;
        let Some(hold) = self.hold.take() else {
            return Ok(());
        };
        let mut at = 0;
        for d in &hold.deferred {
            self.write_out(out, &hold.bytes[at..d.at]);
            at = d.at;
            let value = self.render_deferred(d);
            let mut bytes = Vec::with_capacity(value.len() + 12);
            encode_element(&mut bytes, &d.elem, &value)
                .map_err(|()| self.too_long(&d.elem, value.len()))?;
            self.write_out(out, &bytes);
        }
        self.write_out(out, &hold.bytes[at..]);
        Ok(())
    }

    fn render_deferred(&mut self, d: &Deferred) -> Vec<u8> {
        match d.kind {
            DeferKind::PatientName => self.patient_name_value(),
            DeferKind::Dates => {
                self.summary.dates_shifted += 1;
                let days = self.p.date_shift_days(self.patient_key());
                shift_dates(d.elem.sem, &d.value, days)
            }
        }
    }

    fn patient_name_value(&self) -> Vec<u8> {
        match (&self.patient, self.cfg.mode) {
            (Patient::Known(id), Mode::Pseudonymise) if !id.is_empty() => {
                self.p.patient(id).into_bytes()
            }
            _ => values::DUMMY_TEXT.to_vec(),
        }
    }

    fn too_long(&self, e: &Elem, len: usize) -> DeidError {
        DeidError::ValueTooLong {
            tag: e.tag,
            len: len as u64,
            limit: 0xFFFF,
        }
    }

    fn write_out(&mut self, out: &mut Vec<u8>, bytes: &[u8]) {
        out.extend_from_slice(bytes);
        self.emitted += bytes.len() as u64;
    }

    /// Writes output, or holds it.
    fn put(&mut self, out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), DeidError> {
        match &mut self.hold {
            None => {
                self.write_out(out, bytes);
                Ok(())
            }
            Some(h) => {
                if h.bytes.len() + h.deferred_bytes + bytes.len() > self.cfg.limits.max_hold {
                    return Err(DeidError::HoldLimit {
                        limit: self.cfg.limits.max_hold,
                    });
                }
                h.bytes.extend_from_slice(bytes);
                Ok(())
            }
        }
    }

    fn put_zeros(&mut self, out: &mut Vec<u8>, n: usize) -> Result<(), DeidError> {
        const ZEROS: [u8; 512] = [0; 512];
        let mut left = n;
        while left > 0 {
            let k = left.min(ZEROS.len());
            self.put(out, &ZEROS[..k])?;
            left -= k;
        }
        Ok(())
    }

    fn put_header(&mut self, out: &mut Vec<u8>, e: &Elem, len: u32) -> Result<(), DeidError> {
        let mut h = [0u8; 12];
        let n = encode_header(&mut h, e.tag, e.out_vr, len)
            .map_err(|()| self.too_long(e, len as usize))?;
        self.put(out, &h[..n])
    }

    /// Writes an element with a value (padded to even length).
    fn put_element(&mut self, out: &mut Vec<u8>, e: &Elem, value: &[u8]) -> Result<(), DeidError> {
        let padded = value.len() + value.len() % 2;
        self.put_header(out, e, u32::try_from(padded).unwrap_or(u32::MAX))?;
        self.put(out, value)?;
        if value.len() % 2 == 1 {
            self.put(out, &[pad_byte(e.sem)])?;
        }
        Ok(())
    }

    /// Defers an element until the Patient ID is known, holding the output.
    fn defer(&mut self, e: Elem, kind: DeferKind, value: Vec<u8>) -> Result<(), DeidError> {
        self.start_hold(PATIENT_ID);
        let limit = self.cfg.limits.max_hold;
        let h = self.hold.get_or_insert_with(Hold::default);
        h.deferred_bytes += value.len() + 64;
        if h.bytes.len() + h.deferred_bytes > limit {
            return Err(DeidError::HoldLimit { limit });
        }
        h.deferred.push(Deferred {
            at: h.bytes.len(),
            elem: e,
            kind,
            value,
        });
        Ok(())
    }

    fn check_sop_class(&mut self, class: &str) -> Result<(), DeidError> {
        let class = class.trim_end_matches(['\0', ' ']);
        if self.cfg.allow_burned_in {
            return Ok(());
        }
        if SECONDARY_CAPTURE.contains(&class) {
            return Err(DeidError::BurnedIn(BurnedIn::SecondaryCapture(
                class.to_owned(),
            )));
        }
        if PHOTOGRAPHIC.contains(&class) {
            return Err(DeidError::BurnedIn(BurnedIn::Photographic(
                class.to_owned(),
            )));
        }
        if ULTRASOUND.contains(&class) && self.ultrasound.is_none() {
            self.ultrasound = Some(class.to_owned());
            self.start_hold(BURNED_IN);
        }
        Ok(())
    }

    /// Refuses a declared VR the engine must not trust: a sequence where the
    /// dictionary says a value (or the reverse), and for the attributes read
    /// to be transformed or checked (Patient ID, Patient's Name, UIDs, dates,
    /// Other Patient IDs, the burned-in signals) any VR but the dictionary's
    /// or UN. Private tags are not checked (they are removed unless listed).
    fn check_vr(&self, e: &Elem, dict: Option<Vr>, shape: Shape) -> Result<(), DeidError> {
        let Some(expected) = dict else {
            return Ok(());
        };
        if (e.tag >> 16) & 1 == 1 {
            return Ok(());
        }
        let declared = e.out_vr.unwrap_or(Vr::UN);
        let mismatch = if shape == Shape::Sequence {
            expected != Vr::SQ
        } else {
            (expected == Vr::SQ && e.out_vr.is_some())
                || (declared != expected
                    && declared != Vr::UN
                    && (matches!(expected, Vr::UI | Vr::DA | Vr::DT)
                        || matches!(
                            e.tag,
                            PATIENT_ID
                                | PATIENT_NAME
                                | OTHER_PATIENT_IDS
                                | CONVERSION_TYPE
                                | BURNED_IN
                                | VISUAL_FEATURES
                        )))
        };
        if mismatch {
            return Err(DeidError::VrMismatch {
                tag: e.tag,
                declared,
                expected,
            });
        }
        Ok(())
    }

    /// Records a patient identifier besides the top-level Patient ID.
    fn add_other_id(&mut self, id: String) -> Result<(), DeidError> {
        if id.is_empty() || self.other_ids.contains(&id) {
            return Ok(());
        }
        if self.other_ids.len() >= MAX_OTHER_PATIENT_IDS {
            return Err(DeidError::TooManyPatientIds {
                limit: MAX_OTHER_PATIENT_IDS,
            });
        }
        self.other_ids.push(id);
        Ok(())
    }

    /// Writes a watched value as `decision` says (removals and emptyings were
    /// counted by [`apply`](Self::apply)).
    fn emit_decided(
        &mut self,
        e: &Elem,
        decision: Decision,
        value: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), DeidError> {
        match decision {
            Decision::Remove | Decision::PrivateRemove => Ok(()),
            Decision::Empty => self.put_header(out, e, 0),
            Decision::Clean { dummy: false } => {
                self.summary.emptied += 1;
                self.put_header(out, e, 0)
            }
            Decision::Keep | Decision::PrivateKeep => self.put_element(out, e, value),
            Decision::Uid => {
                self.summary.uids += 1;
                let v = map_uids(value, &self.p);
                self.put_element(out, e, &v)
            }
            _ if value.is_empty() => self.put_header(out, e, 0),
            _ if e.sem == Vr::UI => {
                self.summary.uids += 1;
                let v = map_uids(value, &self.p);
                self.put_element(out, e, &v)
            }
            _ => {
                self.summary.replaced += 1;
                match dummy(e.sem) {
                    Some(v) => self.put_element(out, e, v),
                    None => {
                        self.put_header(out, e, value.len() as u32)?;
                        self.put_zeros(out, value.len())
                    }
                }
            }
        }
    }

    /// The action for one element of an emitted data set.
    fn decide(&self, e: &Elem, content: Content) -> Result<Decision, DeidError> {
        let group = (e.tag >> 16) as u16;
        let element = e.tag as u16;
        // Group lengths, command and file meta elements, and the directory
        // records of a DICOMDIR (group 0004: file ids name files, often by
        // patient) belong to no data set sent over the network (found by an
        // adversarial review: (0004,1500) carried the patient's name).
        if element == 0 || group == 0x0000 || group == 0x0002 || group == 0x0004 {
            return Ok(Decision::Remove);
        }
        if group & 1 == 1 {
            return Ok(self.private_decision(group, element));
        }
        if e.top && self.synthesises(e.tag) {
            return Ok(Decision::Remove);
        }
        let over = self.cfg.overrides.get(&e.tag).copied();
        if e.tag == PATIENT_ID {
            return Ok(Decision::PatientId(over));
        }
        if let Some(a) = over {
            return Ok(match a {
                Action::Keep => Decision::Keep,
                Action::Remove => Decision::Remove,
                Action::Empty => Decision::Empty,
                Action::Dummy => Decision::Dummy,
                Action::ReplaceUid => Decision::Uid,
            });
        }
        if e.tag == PATIENT_NAME {
            return Ok(Decision::PatientName);
        }
        if DEFINITION_DATES.contains(&e.tag) {
            return Ok(Decision::Keep);
        }
        if DEVICE_DATES.contains(&e.tag) {
            return Ok(self.device_date(e.tag));
        }
        let Some(r) = rule(e.tag) else {
            // A standard attribute the dictionary does not know (newer than
            // it, or a sender's own in an even group) could be anything, a
            // name in implicit VR read as UN: removed (fail closed). Group
            // lengths, the command and file meta groups are removed above.
            let Some(dict) = dictionary_vr(e.tag) else {
                return Ok(Decision::Remove);
            };
            match dict {
                Vr::UI if !DEFINITION_UIDS.contains(&e.tag) => return Ok(Decision::Uid),
                // A date the table does not list is a date still: a real one
                // beside shifted ones gives the shift away.
                Vr::DA | Vr::DT => {
                    return Ok(if self.cfg.bits & opt::FULL_DATES != 0 {
                        Decision::Keep
                    } else if self.cfg.bits & opt::MODIFIED_DATES != 0 {
                        Decision::Dates
                    } else {
                        Decision::Dummy
                    })
                }
                // A person's name the table does not list (a reviewer's).
                Vr::PN => return Ok(Decision::Dummy),
                // A URL or URI (Retrieve URL, Pixel Data Provider URL...)
                // carries the original UIDs, and may carry the Patient ID.
                Vr::UR if self.cfg.bits & opt::UIDS == 0 => return Ok(Decision::Remove),
                _ if e.tag == HL7_INSTANCE_IDENTIFIER && self.cfg.bits & opt::UIDS == 0 => {
                    return Ok(Decision::Remove)
                }
                // Free text the table does not list (a waveform annotation, a
                // Text Value, a Document Title, an issuer's name): text that
                // names the patient as easily as any the table lists. The
                // dummy keeps a required attribute present (found by an
                // adversarial review). Long Code Value (UC) is a code: kept.
                _ if e.tag != HL7_INSTANCE_IDENTIFIER
                    && !DEFINITION_TEXT.contains(&e.tag)
                    && matches!(dict, Vr::LT | Vr::ST | Vr::UT) =>
                {
                    return Ok(Decision::Dummy)
                }
                _ => {}
            }
            // By the declared VR or the dictionary's, whichever is text.
            let any = |f: fn(Vr) -> bool| f(e.sem) || f(dict);
            let d = match content {
                Content::Dummy
                    if any(|v| {
                        matches!(
                            v,
                            Vr::AE
                                | Vr::LO
                                | Vr::LT
                                | Vr::PN
                                | Vr::SH
                                | Vr::ST
                                | Vr::UC
                                | Vr::UR
                                | Vr::UT
                                | Vr::DA
                                | Vr::DT
                                | Vr::TM
                        )
                    }) =>
                {
                    Decision::Dummy
                }
                Content::Clean | Content::Dummy
                    if any(|v| matches!(v, Vr::LT | Vr::ST | Vr::UT | Vr::UC | Vr::PN)) =>
                {
                    Decision::Dummy
                }
                _ => Decision::Keep,
            };
            return Ok(d);
        };
        Ok(match r.resolve(self.cfg.bits) {
            Resolved::Keep => Decision::Keep,
            Resolved::Remove => Decision::Remove,
            Resolved::Empty => Decision::Empty,
            Resolved::Dummy => Decision::Dummy,
            Resolved::Uid => Decision::Uid,
            Resolved::Clean { dummy } => match e.sem {
                Vr::DA | Vr::DT if self.cfg.bits & opt::MODIFIED_DATES != 0 => Decision::Dates,
                Vr::TM if self.cfg.bits & opt::MODIFIED_DATES != 0 => Decision::Keep,
                Vr::AE => Decision::Ae,
                _ => Decision::Clean { dummy },
            },
        })
    }

    /// What a device's date or time ([`DEVICE_DATES`]) becomes: kept or the
    /// table's basic action, never shifted by the patient's offset.
    fn device_date(&self, tag: u32) -> Decision {
        let bits = self.cfg.bits;
        let device = bits & opt::DEVICE != 0
            && (bits & opt::MODIFIED_DATES == 0 || !CALIBRATION_DATES.contains(&tag));
        if device || bits & opt::FULL_DATES != 0 {
            return Decision::Keep;
        }
        match rule(tag).map(|r| r.resolve(0)) {
            Some(Resolved::Empty) => Decision::Empty,
            Some(Resolved::Dummy) => Decision::Dummy,
            _ => Decision::Remove,
        }
    }

    fn synthesises(&self, tag: u32) -> bool {
        matches!(tag, IDENTITY_REMOVED | METHOD | METHOD_CODES)
            || (tag == TEMPORAL_MODIFIED && self.cfg.bits & opt::MODIFIED_DATES != 0)
    }

    fn private_decision(&self, group: u16, element: u16) -> Decision {
        if self.cfg.bits & opt::SAFE_PRIVATE == 0 || matches!(group, 1 | 3 | 5 | 7 | 0xFFFF) {
            return Decision::PrivateRemove;
        }
        match element {
            0x0010..=0x00FF => {
                if self.cfg.safe_private.iter().any(|s| s.group == group) {
                    Decision::Creator
                } else {
                    Decision::PrivateRemove
                }
            }
            0x1000..=0xFFFF => {
                let block = (element >> 8) as u8;
                let data = self.frames.last();
                let creator = data.and_then(|f| {
                    f.creators
                        .iter()
                        .find(|(g, b, _)| *g == group && *b == block)
                        .map(|(_, _, c)| c.as_str())
                });
                match creator {
                    Some(c)
                        if self.cfg.safe_private.iter().any(|s| {
                            s.group == group && s.creator == c && s.element == element as u8
                        }) =>
                    {
                        Decision::PrivateKeep
                    }
                    _ => Decision::PrivateRemove,
                }
            }
            _ => Decision::PrivateRemove,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn apply(
        &mut self,
        e: Elem,
        decision: Decision,
        shape: Shape,
        inner_implicit: bool,
        content: Content,
        out: &mut Vec<u8>,
    ) -> Result<(), DeidError> {
        // A private creator is a short string; anything else is not kept.
        let decision = match decision {
            Decision::Creator if shape != Shape::Value => Decision::PrivateRemove,
            d => d,
        };
        let s = &mut self.summary;
        match decision {
            Decision::Remove => s.removed += 1,
            Decision::PrivateRemove => {
                s.removed += 1;
                s.private_removed += 1;
            }
            Decision::Empty => s.emptied += 1,
            Decision::PrivateKeep => s.private_kept += 1,
            _ => {}
        }
        // Other Patient IDs Sequence, and any sequence removed or emptied (the
        // Original Attributes Sequence keeps a corrected Patient ID, the
        // Referenced Patient Sequence another's): walked for the Patient IDs
        // of their items, which consent is checked for (found by an
        // adversarial review).
        let walked = matches!(decision, Decision::Remove | Decision::Empty);
        if shape == Shape::Sequence && (walked || (e.top && e.tag == OTHER_PATIENT_IDS_SEQ)) {
            let end = (e.len != UNDEFINED).then(|| self.pos + u64::from(e.len));
            match decision {
                Decision::Remove | Decision::Empty => {
                    if decision == Decision::Empty {
                        self.put_header(out, &e, 0)?;
                    }
                    // Walked for the Patient IDs of its items, written nowhere.
                    let mut f = Frame::new(Kind::Seq, end, false, inner_implicit, Content::Normal);
                    f.other_ids = true;
                    return self.push(f);
                }
                _ => {
                    let inner = match decision {
                        Decision::Dummy => Content::Dummy,
                        Decision::Clean { .. } => Content::Clean,
                        _ => Content::Normal,
                    };
                    self.recurse(e, inner_implicit, content.max(inner), end, out)?;
                    if let Some(f) = self.frames.last_mut() {
                        f.other_ids = true;
                    }
                    return Ok(());
                }
            }
        }
        if e.top
            && shape == Shape::Value
            && matches!(
                e.tag,
                SOP_CLASS
                    | SOP_INSTANCE
                    | CONVERSION_TYPE
                    | BURNED_IN
                    | VISUAL_FEATURES
                    | OTHER_PATIENT_IDS
            )
        {
            // Read whatever the decision: the burned-in gate and consent must
            // see them even when the profile removes them.
            return self.start_read(e, Purpose::Watch(decision), out);
        }
        if !e.top && shape == Shape::Value && e.tag == OTHER_PATIENT_IDS {
            // In an item too (a kept sequence): consent sees its values (found
            // by an adversarial review).
            return self.start_read(e, Purpose::Watch(decision), out);
        }
        match decision {
            Decision::Remove | Decision::PrivateRemove => {
                return self.discard(shape, e.len, inner_implicit)
            }
            Decision::Empty => {
                self.put_header(out, &e, 0)?;
                return self.discard(shape, e.len, inner_implicit);
            }
            _ => {}
        }
        let keep = matches!(decision, Decision::Keep | Decision::PrivateKeep);
        match shape {
            Shape::Sequence => {
                let inner = match decision {
                    Decision::Dummy => Content::Dummy,
                    Decision::Clean { .. } => Content::Clean,
                    _ => Content::Normal,
                };
                let end = (e.len != UNDEFINED).then(|| self.pos + u64::from(e.len));
                return self.recurse(e, inner_implicit, content.max(inner), end, out);
            }
            Shape::Fragments if keep => {
                let mut h = [0u8; 12];
                let n = encode_header(&mut h, e.tag, e.out_vr, UNDEFINED)
                    .map_err(|()| self.malformed("undefined length"))?;
                self.put(out, &h[..n])?;
                return self.push(Frame::new(
                    Kind::Fragments,
                    None,
                    true,
                    inner_implicit,
                    content,
                ));
            }
            Shape::Fragments => {
                // Encapsulated data has no dummy: empty it.
                self.summary.emptied += 1;
                self.put_header(out, &e, 0)?;
                return self.discard(shape, e.len, inner_implicit);
            }
            Shape::Value | Shape::Unknown => {}
        }
        match decision {
            _ if keep && shape == Shape::Unknown => {
                self.start_read(e, Purpose::Peek { content }, out)
            }
            _ if keep => {
                self.put_header(out, &e, e.len)?;
                self.log_copy(self.pos, u64::from(e.len));
                self.start_value(u64::from(e.len), Mode2::Copy, out)
            }
            Decision::Clean { dummy: false } => {
                self.summary.emptied += 1;
                self.put_header(out, &e, 0)?;
                self.discard(shape, e.len, inner_implicit)
            }
            Decision::Dummy | Decision::Clean { dummy: true } => self.dummy(e, out),
            Decision::Uid => self.start_read(e, Purpose::Uid, out),
            Decision::Ae => self.start_read(e, Purpose::Ae, out),
            Decision::Dates => self.start_read(e, Purpose::Dates, out),
            Decision::PatientId(over) => self.start_read(e, Purpose::PatientId(over), out),
            Decision::Creator => self.start_read(e, Purpose::Creator, out),
            Decision::PatientName => {
                if !e.top || self.cfg.mode == Mode::Minimise || e.len == 0 {
                    return self.dummy(e, out);
                }
                self.summary.replaced += 1;
                if self.patient == Patient::Unknown {
                    self.defer(e, DeferKind::PatientName, Vec::new())?;
                } else {
                    let v = self.patient_name_value();
                    self.put_element(out, &e, &v)?;
                }
                self.discard(shape, e.len, inner_implicit)
            }
            Decision::Keep
            | Decision::PrivateKeep
            | Decision::Remove
            | Decision::PrivateRemove
            | Decision::Empty => Ok(()),
        }
    }

    /// D: a dummy of the VR, zeros for binary values, the keyed UID for UIDs;
    /// an empty value stays empty.
    fn dummy(&mut self, e: Elem, out: &mut Vec<u8>) -> Result<(), DeidError> {
        if e.sem == Vr::UI {
            return self.start_read(e, Purpose::Uid, out);
        }
        if e.len == 0 {
            self.put_header(out, &e, 0)?;
            return Ok(());
        }
        self.summary.replaced += 1;
        match dummy(e.sem) {
            Some(v) => {
                self.put_element(out, &e, v)?;
                self.start_value(u64::from(e.len), Mode2::Skip, out)
            }
            None => {
                self.put_header(out, &e, e.len)?;
                self.start_value(u64::from(e.len), Mode2::Zero, out)
            }
        }
    }

    /// A kept sequence: written with undefined length, its items de-identified.
    fn recurse(
        &mut self,
        e: Elem,
        inner_implicit: bool,
        content: Content,
        end: Option<u64>,
        out: &mut Vec<u8>,
    ) -> Result<(), DeidError> {
        let mut h = [0u8; 12];
        let n = encode_header(&mut h, e.tag, e.out_vr, UNDEFINED)
            .map_err(|()| self.malformed("sequence header"))?;
        self.put(out, &h[..n])?;
        if end.is_some() {
            self.summary.sequences_reencoded += 1;
        }
        self.push(Frame::new(Kind::Seq, end, true, inner_implicit, content))
    }

    /// A value that was read: transform it and write it.
    fn value_read(&mut self, out: &mut Vec<u8>) -> Result<(), DeidError> {
        let Some((e, purpose)) = self.reading.take() else {
            return Ok(());
        };
        let value = std::mem::take(&mut self.buf);
        let r = self.transform(e, purpose, &value, out);
        if self.buf.is_empty() {
            self.buf = value;
            self.buf.clear();
        }
        r
    }

    fn transform(
        &mut self,
        e: Elem,
        purpose: Purpose,
        value: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), DeidError> {
        match purpose {
            Purpose::Watch(decision) => {
                let text = String::from_utf8_lossy(trim(value)).into_owned();
                let allow = self.cfg.allow_burned_in;
                // Anything but exactly NO (or nothing) may be a yes: "yes",
                // "Y", "YES\\NO", a value not in the character set.
                let not_no = !text.is_empty() && text != "NO";
                match e.tag {
                    SOP_CLASS => {
                        self.check_sop_class(&text)?;
                        self.summary.sop_class = Some(text);
                    }
                    SOP_INSTANCE => self.summary.sop_instance = Some(text),
                    CONVERSION_TYPE if text.eq_ignore_ascii_case("WSD") && !allow => {
                        return Err(DeidError::BurnedIn(BurnedIn::ScreenCapture))
                    }
                    BURNED_IN if text == "NO" => self.burned_in_no = true,
                    BURNED_IN if not_no && !allow => {
                        return Err(DeidError::BurnedIn(BurnedIn::Annotation))
                    }
                    VISUAL_FEATURES if not_no && !allow => {
                        return Err(DeidError::BurnedIn(BurnedIn::VisualFeatures))
                    }
                    OTHER_PATIENT_IDS => {
                        for v in value.split(|&b| b == b'\\') {
                            let id = patient_text(e.tag, v)?;
                            self.add_other_id(id)?;
                        }
                    }
                    _ => {}
                }
                self.emit_decided(&e, decision, value, out)?;
                if e.tag == BURNED_IN {
                    self.maybe_release(BURNED_IN, out)?;
                }
                Ok(())
            }
            Purpose::OtherId if e.tag == OTHER_PATIENT_IDS => {
                for v in value.split(|&b| b == b'\\') {
                    let id = patient_text(e.tag, v)?;
                    self.add_other_id(id)?;
                }
                Ok(())
            }
            Purpose::OtherId => {
                let id = patient_text(e.tag, value)?;
                self.add_other_id(id)
            }
            Purpose::Uid => {
                if e.top && e.tag == SOP_INSTANCE {
                    self.summary.sop_instance =
                        Some(String::from_utf8_lossy(trim(value)).into_owned());
                }
                self.summary.uids += 1;
                let v = map_uids(value, &self.p);
                self.put_element(out, &e, &v)
            }
            Purpose::Ae => {
                self.summary.titles += 1;
                let v = map_ae(value, &self.p);
                self.put_element(out, &e, &v)
            }
            Purpose::Dates => {
                if self.patient == Patient::Unknown {
                    return self.defer(e, DeferKind::Dates, value.to_vec());
                }
                self.summary.dates_shifted += 1;
                let days = self.p.date_shift_days(self.patient_key());
                let v = shift_dates(e.sem, value, days);
                self.put_element(out, &e, &v)
            }
            Purpose::PatientId(over) => {
                let id = patient_text(e.tag, value)?;
                // Patient ID has one value (VM 1): `A\B` is two to a toolkit
                // that splits it, one to one that does not, and consent and the
                // pseudonym could follow either reading.
                if id.contains('\\') {
                    return Err(DeidError::MultiValued { tag: e.tag });
                }
                // A Patient ID in any item (Other Patient IDs, Group of Patients,
                // Source Patient Group...) names a patient consent is checked for.
                if !e.top {
                    self.add_other_id(id.clone())?;
                }
                let v: Vec<u8> = match over {
                    Some(Action::Keep) => value.to_vec(),
                    Some(Action::Remove) => Vec::new(),
                    Some(Action::Empty) => Vec::new(),
                    Some(Action::ReplaceUid) => map_uids(value, &self.p),
                    Some(Action::Dummy) | None if id.is_empty() => Vec::new(),
                    Some(Action::Dummy) => values::DUMMY_TEXT.to_vec(),
                    None => match self.cfg.mode {
                        Mode::Pseudonymise => self.p.patient(&id).into_bytes(),
                        Mode::Minimise => values::DUMMY_TEXT.to_vec(),
                    },
                };
                if over == Some(Action::Remove) {
                    self.summary.removed += 1;
                } else {
                    if !id.is_empty() && over != Some(Action::Keep) {
                        self.summary.replaced += 1;
                    }
                    self.put_element(out, &e, &v)?;
                }
                if e.top {
                    self.summary.patient_id = (!id.is_empty()).then(|| id.clone());
                    self.patient = Patient::Known(id);
                    self.note_shift();
                    self.maybe_release(PATIENT_ID, out)?;
                }
                Ok(())
            }
            Purpose::Creator => {
                let group = (e.tag >> 16) as u16;
                let block = e.tag as u8;
                let creator = String::from_utf8_lossy(trim(value)).into_owned();
                let limit = self.cfg.limits.max_private_creators;
                let count: usize = self.frames.iter().map(|f| f.creators.len()).sum();
                if count >= limit {
                    return Err(DeidError::TooManyPrivateCreators { limit });
                }
                let keep = self
                    .cfg
                    .safe_private
                    .iter()
                    .any(|s| s.group == group && s.creator == creator);
                if let Some(f) = self.frames.last_mut() {
                    f.creators.push((group, block, creator));
                }
                if keep {
                    self.summary.private_kept += 1;
                    self.put_element(out, &e, value)
                } else {
                    self.summary.removed += 1;
                    self.summary.private_removed += 1;
                    Ok(())
                }
            }
            Purpose::Peek { content } => {
                let looks_like_item =
                    value.len() == 8 && value[..4] == [0xFE, 0xFF, 0x00, 0xE0] && {
                        let item = u32::from_le_bytes([value[4], value[5], value[6], value[7]]);
                        item == UNDEFINED || u64::from(item) + 8 <= u64::from(e.len)
                    };
                if looks_like_item {
                    // A sequence: written with undefined length; the 8 bytes
                    // read are its first item's header.
                    let seq = Elem {
                        out_vr: e.out_vr.map(|_| Vr::UN),
                        ..e
                    };
                    let end = self.pos - 8 + u64::from(e.len);
                    // Inside an unknown value the encoding is implicit VR (PS3.5 6.2.2).
                    self.recurse(seq, true, content, Some(end), out)?;
                    self.header[..8].copy_from_slice(value);
                    return self.on_header(out);
                }
                self.put_header(out, &e, e.len)?;
                // The bytes peeked are written as they came: the whole value
                // is copied.
                self.log_copy(self.pos - value.len() as u64, u64::from(e.len));
                self.put(out, value)?;
                self.start_value(u64::from(e.len) - value.len() as u64, Mode2::Copy, out)
            }
        }
    }

    /// A synthesised top-level element, in the data set's encoding.
    fn synthesise(&self, tag: u32) -> Result<Vec<u8>, DeidError> {
        let implicit = self.frames[0].implicit;
        let vr = |v: Vr| (!implicit).then_some(v);
        let mut b = Vec::new();
        let bad = |()| DeidError::Profile("synthesised element too long".into());
        match tag {
            IDENTITY_REMOVED => {
                encode_element(&mut b, &text_elem(tag, vr(Vr::CS), Vr::CS), b"YES").map_err(bad)?
            }
            METHOD => {
                let method: &[u8] = match self.cfg.mode {
                    Mode::Pseudonymise => b"wardgate PS3.15 E.1, keyed patient pseudonym",
                    Mode::Minimise => b"wardgate PS3.15 E.1",
                };
                encode_element(&mut b, &text_elem(tag, vr(Vr::LO), Vr::LO), method).map_err(bad)?;
            }
            METHOD_CODES => {
                let mut items = Vec::new();
                for (code, meaning) in self.method_codes() {
                    let mut item = Vec::new();
                    encode_element(
                        &mut item,
                        &text_elem(0x0008_0100, vr(Vr::SH), Vr::SH),
                        code.as_bytes(),
                    )
                    .map_err(bad)?;
                    encode_element(
                        &mut item,
                        &text_elem(0x0008_0102, vr(Vr::SH), Vr::SH),
                        b"DCM",
                    )
                    .map_err(bad)?;
                    encode_element(
                        &mut item,
                        &text_elem(0x0008_0104, vr(Vr::LO), Vr::LO),
                        meaning.as_bytes(),
                    )
                    .map_err(bad)?;
                    items.extend_from_slice(&item_header(0xE000, item.len() as u32));
                    items.extend_from_slice(&item);
                }
                let mut h = [0u8; 12];
                let n = encode_header(&mut h, tag, vr(Vr::SQ), items.len() as u32).map_err(bad)?;
                b.extend_from_slice(&h[..n]);
                b.extend_from_slice(&items);
            }
            _ => encode_element(&mut b, &text_elem(tag, vr(Vr::CS), Vr::CS), b"MODIFIED")
                .map_err(bad)?,
        }
        Ok(b)
    }

    /// CID 7050 codes of what was applied.
    fn method_codes(&self) -> Vec<(&'static str, &'static str)> {
        let mut codes = vec![("113100", "Basic Application Confidentiality Profile")];
        let b = self.cfg.bits;
        for (bit, code, meaning) in [
            (
                opt::CLEAN_STRUCTURED,
                "113104",
                "Clean Structured Content Option",
            ),
            (opt::CLEAN_DESCRIPTORS, "113105", "Clean Descriptors Option"),
            (
                opt::FULL_DATES,
                "113106",
                "Retain Longitudinal Temporal Information Full Dates Option",
            ),
            (
                opt::MODIFIED_DATES,
                "113107",
                "Retain Longitudinal Temporal Information Modified Dates Option",
            ),
            (
                opt::PATIENT_CHARS,
                "113108",
                "Retain Patient Characteristics Option",
            ),
            (opt::DEVICE, "113109", "Retain Device Identity Option"),
            (opt::UIDS, "113110", "Retain UIDs Option"),
            (opt::SAFE_PRIVATE, "113111", "Retain Safe Private Option"),
            (
                opt::INSTITUTION,
                "113112",
                "Retain Institution Identity Option",
            ),
        ] {
            if b & bit != 0 {
                codes.push((code, meaning));
            }
        }
        codes
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// A value of a known VR.
    Value,
    /// A sequence of items.
    Sequence,
    /// Encapsulated fragments (undefined-length OB/OW).
    Fragments,
    /// A defined-length value of unknown VR.
    Unknown,
}

/// A patient identifier's value as text: trimmed of padding, refused when it
/// is not UTF-8 or holds control characters (a consent check must not compare
/// a lossy decoding).
fn patient_text(tag: u32, value: &[u8]) -> Result<String, DeidError> {
    let text = std::str::from_utf8(trim(value)).map_err(|_| DeidError::NotText { tag })?;
    if text.chars().any(char::is_control) {
        return Err(DeidError::NotText { tag });
    }
    Ok(text.to_owned())
}

fn text_elem(tag: u32, out_vr: Option<Vr>, sem: Vr) -> Elem {
    Elem {
        tag,
        out_vr,
        sem,
        len: 0,
        top: true,
    }
}

fn item_header(element: u16, len: u32) -> [u8; 8] {
    let mut h = [0xFE, 0xFF, 0, 0, 0, 0, 0, 0];
    h[2..4].copy_from_slice(&element.to_le_bytes());
    h[4..8].copy_from_slice(&len.to_le_bytes());
    h
}

/// Encodes an element header into `h`, returning its length; `Err` when the
/// length does not fit a 2-byte length field.
fn encode_header(h: &mut [u8; 12], tag: u32, vr: Option<Vr>, len: u32) -> Result<usize, ()> {
    h[0..2].copy_from_slice(&((tag >> 16) as u16).to_le_bytes());
    h[2..4].copy_from_slice(&(tag as u16).to_le_bytes());
    match vr {
        None => {
            h[4..8].copy_from_slice(&len.to_le_bytes());
            Ok(8)
        }
        Some(vr) => {
            h[4..6].copy_from_slice(&vr.code());
            if vr.long_length() {
                h[6..8].copy_from_slice(&[0, 0]);
                h[8..12].copy_from_slice(&len.to_le_bytes());
                Ok(12)
            } else {
                let l = u16::try_from(len).map_err(|_| ())?;
                h[6..8].copy_from_slice(&l.to_le_bytes());
                Ok(8)
            }
        }
    }
}

/// Appends a whole element with its value padded to even length.
fn encode_element(b: &mut Vec<u8>, e: &Elem, value: &[u8]) -> Result<(), ()> {
    let v = pad(e.sem, value.to_vec());
    let mut h = [0u8; 12];
    let n = encode_header(
        &mut h,
        e.tag,
        e.out_vr,
        u32::try_from(v.len()).map_err(|_| ())?,
    )?;
    b.extend_from_slice(&h[..n]);
    b.extend_from_slice(&v);
    Ok(())
}
