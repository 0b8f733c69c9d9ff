//! DICOM de-identification after PS3.15 Annex E, applied to a stream.
//!
//! A [`Deidentifier`] takes one data set (the value of a C-STORE's data PDVs)
//! in fragments of any size and writes the de-identified data set in the same
//! transfer syntax. Memory is bounded by [`Limits`], never by the object:
//! values that are kept (pixel data above all) are copied through slice by
//! slice; only values that must be read to be transformed (UIDs, dates, the
//! Patient ID, private creators) are buffered, each up to `max_value`.
//!
//! # What is done to each attribute
//!
//! Every attribute of PS3.15 Table E.1-1 (2024b, generated into `tables.rs`
//! by `scripts/gen-dicom-tables.py`) gets its action, with the option columns
//! in force replacing the basic action (E.3). Where several options in force
//! disagree, C wins over K. A compound code is resolved without knowing the
//! IOD's attribute types, to the choice conformant for every type that
//! discloses no more: X/Z → Z, X/D, X/Z/D and Z/D → D, X/Z/U* → the sequence
//! kept with its UIDs replaced. Attributes the table does not list are kept
//! (but for the UIDs, dates, names and free text among them, which get the
//! rules of their kind). In every sequence the same rules apply to every item.
//! Besides the table:
//!
//! - A standard (even-group) attribute the dictionary does not know is
//!   removed: newer than the dictionary or a sender's own, it could be a name.
//! - The dates of a definition (Context Group and Template Version and Local
//!   Version) are kept as written under every option: public, and shifted they
//!   would give the patient's offset away. The dates of a device (manufacture,
//!   installation, calibrations) are never shifted by the patient's offset:
//!   kept with Retain Full Dates, and with Retain Device Identity (the
//!   calibrations not beside modified dates: often the study's own day, they
//!   would date the shift), else the table's basic action.
//! - Private attributes are removed, unless Retain Safe Private is on and the
//!   profile lists the attribute by group, private creator and element byte;
//!   private creators are tracked per data set (each item has its own blocks).
//! - Group lengths (gggg,0000) and command or file meta elements in a data set
//!   are removed: lengths change, and those groups have no business there.
//! - Patient ID and the top-level Patient's Name become the keyed pseudonym of
//!   the Patient ID ([`Mode::Pseudonymise`]) or the dummy ([`Mode::Minimise`]);
//!   a Patient ID inside a sequence (another patient) gets its own pseudonym, a
//!   Patient's Name there the dummy.
//! - Patient Identity Removed (0012,0062) YES, De-identification Method
//!   (0012,0063) and its Code Sequence (0012,0064) with the CID 7050 codes of
//!   the options applied replace any present; with modified dates,
//!   Longitudinal Temporal Information Modified (0028,0303) is MODIFIED. All
//!   are inserted in tag order.
//!
//! Replacement values: D is `ANONYMOUS` for text, `19000101` for dates,
//! `000000` for times, `0` for numbers, zeros of the same length for binary
//! values, the keyed UID for UIDs; a value that was empty stays empty (there is
//! nothing to hide, and a dummy would add a claim). U is
//! [`crate::Pseudonymiser::uid`] of each value, so a study sent in several
//! associations, and references between objects, stay whole. C depends on what
//! is cleaned: dates (DA, DT) move by the patient's
//! [`crate::Pseudonymiser::date_shift_days`] under Retain Modified Dates (times stay:
//! a shift by whole days leaves them true); AE titles become keyed pseudonyms
//! (the same device keeps one name); a sequence keeps its items with the
//! profile applied and free text inside (LT, ST, UT, UC, PN the table does not
//! name) replaced by the dummy. Free text cannot be cleaned reliably, so a
//! cleaned text attribute (Clean Descriptors, Retain Patient Characteristics'
//! C) becomes empty, or the dummy where the basic action was a dummy (the
//! attribute may be Type 1): what the option gains is that coded descriptor
//! sequences are kept and the attributes stay present.
//!
//! D on a sequence keeps its items with the profile applied, and every text
//! value inside that the table does not name (codes, meanings, free text,
//! dates) becomes a dummy: a "dummy" Content Sequence or Person Identification
//! Code Sequence must not carry the original's words or codes.
//!
//! # Sequences and lengths
//!
//! A kept sequence is re-emitted with undefined length, and its items too, with
//! delimiters: valid in both syntaxes, and the length of what follows need not
//! be known before it is written. In implicit VR a defined-length value is a
//! sequence when the dictionary says SQ; for a tag the dictionary does not know
//! (a safe private attribute kept) the first 8 bytes decide: an item tag whose
//! length fits makes it a sequence (read in implicit VR, de-identified),
//! anything else an opaque value. Explicit VR UN
//! of undefined length is a sequence in implicit VR (PS3.5 6.2.2), and stays so.
//!
//! The declared VR is not trusted where it would change what is done
//! ([`DeidError::VrMismatch`], naming the tag): for a public tag the
//! dictionary knows, a sequence (declared SQ, or UN of undefined length) where
//! the dictionary says a value, or a value declared other than SQ or UN where
//! it says SQ, is refused; so is any VR but the dictionary's (UN is accepted,
//! and read by the dictionary's VR) on the attributes read to be transformed
//! or checked: Patient ID, Patient's Name, Other Patient IDs, every UI, DA and
//! DT attribute, Conversion Type, Burned In Annotation and Recognizable Visual
//! Features. Elsewhere a different VR is accepted, and an attribute the table
//! does not list is replaced inside a cleaned or dummy sequence when either
//! its declared VR or the dictionary's is text. A Patient ID (top level, in
//! an item, or an Other Patient IDs value) that is not UTF-8 or holds control
//! characters other than padding is refused ([`DeidError::NotText`]), never
//! decoded lossily.
//!
//! # Holding output
//!
//! Shifting a date needs the Patient ID, which comes after group 0008's dates;
//! the top-level Patient's Name pseudonym needs it too. From the first element
//! that needs it, output is held until (0010,0020) or a later tag has been
//! read, within `Limits::max_hold` ([`DeidError::HoldLimit`] beyond).
//!
//! # Patient identifiers for consent
//!
//! Besides the top-level Patient ID ([`Deidentifier::patient_id`]), an object
//! names its patient in Other Patient IDs (0010,1000) (backslash-separated
//! values) and in the Patient ID (0010,0020) of each item of Other Patient IDs
//! Sequence (0010,1002), both at the top level: the enterprise or national id
//! next to a local one. They are read even though the profile removes them
//! (X), and are [`Deidentifier::other_patient_ids`]: trimmed, empty values and
//! repeats left out, at most [`MAX_OTHER_PATIENT_IDS`]
//! ([`DeidError::TooManyPatientIds`] beyond). With
//! [`DicomProfile::hold_until_patient_id`] output is held from the start until
//! a top-level tag after (0010,1002) has been read (or the data set ends), so
//! the caller can check consent on every identifier before a byte is
//! forwarded: [`Deidentifier::patient_resolved`] becomes true then, not at
//! (0010,0020).
//!
//! # Burned-in identity
//!
//! Pixels are not cleaned, so unless [`DicomProfile::allow_burned_in`] objects
//! that may carry identity in the pixels are refused ([`DeidError::BurnedIn`]):
//!
//! - the Secondary Capture SOP classes (1.2.840.10008.5.1.4.1.1.7 and
//!   .7.1-.7.4, screenshots and scanned documents);
//! - the visible-light photographic and video SOP classes, camera images where
//!   a face, a wristband, a chart or a slide label may be in the picture
//!   ([`BurnedIn::Photographic`]): under 1.2.840.10008.5.1.4.1.1.77, VL Image
//!   and VL Multi-frame Image (.1 and .2, retired), VL Endoscopic Image and
//!   Video Endoscopic (.1.1, .1.1.1), VL Microscopic Image and Video
//!   Microscopic (.1.2, .1.2.1), VL Slide-Coordinates Microscopic (.1.3), VL
//!   Photographic Image and Video Photographic (.1.4, .1.4.1), Ophthalmic
//!   Photography 8 and 16 Bit (.1.5.1, .1.5.2), Wide Field Ophthalmic
//!   Photography Stereographic Projection and 3D Coordinates (.1.5.5,
//!   .1.5.6), VL Whole Slide Microscopy (.1.6, for its label image) and
//!   Dermoscopic Photography (.1.7). Ophthalmic tomography, maps and
//!   measurements, and confocal microscopy, are not photographs and pass;
//! - Conversion Type (0008,0064) WSD, in any case (workstation screen captures);
//! - Burned In Annotation (0028,0301) and Recognizable Visual Features
//!   (0028,0302, [`BurnedIn::VisualFeatures`]: a face photograph, a head
//!   surface rendering) with any value other than exactly `NO` after trimming
//!   padding, or empty: `yes`, `Y`, `YES\NO` and undecodable values count
//!   as YES. They are read whatever the profile does with them (an override
//!   removing them does not skip the check);
//! - ultrasound (whose devices write patient names into the image) unless
//!   Burned In Annotation is `NO` (an empty value is not `NO`).
//!
//! Give the SOP class of the C-STORE command to [`Deidentifier::new`]: a
//! Secondary Capture or photographic class is then refused before a byte is
//! read, and for ultrasound output is held until (0028,0301) has been read.
//! Otherwise the SOP class is read from (0008,0016), and (0028,0301) or
//! (0028,0302) YES is found when it is read: output may have been written by
//! then, and the caller must abort that object.
//!
//! # Not done
//!
//! Big endian and deflated transfer syntaxes are refused
//! ([`Encoding::for_transfer_syntax`]), so a de-identifying route rejects those
//! presentation contexts. Clean Pixel Data, Clean Recognizable Visual Features
//! and Clean Graphics are not offered; curves and overlay data are removed.

mod command;
mod engine;
mod profile;
mod table;
// Generated (scripts/gen-dicom-tables.py): kept as the generator writes it.
#[rustfmt::skip]
mod tables;
#[cfg(test)]
mod tests;
mod values;
mod vr;

pub use command::{pseudonymise_command, restore_command, CommandRewrite};
pub use engine::{Deidentifier, Progress, Summary, MAX_OTHER_PATIENT_IDS};
pub use profile::{Action, DicomProfile, Limits, Mode, Options, SafePrivate};
pub use vr::{dictionary_vr, Vr};

/// How a data set is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Implicit VR little endian (1.2.840.10008.1.2).
    ImplicitLe,
    /// Explicit VR little endian, and the encapsulated syntaxes whose data set
    /// is explicit VR little endian.
    ExplicitLe,
}

impl Encoding {
    /// The encoding of a transfer syntax's data sets, or
    /// [`DeidError::UnsupportedSyntax`] for big endian, deflated, non-binary
    /// and unknown (private) syntaxes: what cannot be read is not forwarded.
    pub fn for_transfer_syntax(uid: &str) -> Result<Encoding, DeidError> {
        let uid = uid.trim_end_matches(['\0', ' ']);
        let under = |prefix: &str| {
            uid.strip_prefix(prefix)
                .and_then(|r| r.strip_prefix('.'))
                .is_some_and(|r| !r.is_empty() && r.split('.').all(|n| !n.is_empty()))
        };
        match uid {
            "1.2.840.10008.1.2" => Ok(Encoding::ImplicitLe),
            "1.2.840.10008.1.2.1" | "1.2.840.10008.1.2.1.98" | "1.2.840.10008.1.2.5" => {
                Ok(Encoding::ExplicitLe)
            }
            // JPIP Referenced Deflate: the data set is deflated.
            "1.2.840.10008.1.2.4.95" => Err(DeidError::UnsupportedSyntax(uid.to_owned())),
            // JPEG family, JPIP, MPEG, HTJ2K; SMPTE ST 2110; deflated image
            // frames (the data set itself is explicit VR little endian).
            _ if under("1.2.840.10008.1.2.4")
                || under("1.2.840.10008.1.2.7")
                || under("1.2.840.10008.1.2.8") =>
            {
                Ok(Encoding::ExplicitLe)
            }
            _ => Err(DeidError::UnsupportedSyntax(uid.to_owned())),
        }
    }
}

/// Why an object may carry identity in its pixels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BurnedIn {
    /// Burned In Annotation (0028,0301) is YES.
    Annotation,
    /// A Secondary Capture SOP class (screenshots, scanned documents).
    SecondaryCapture(String),
    /// Conversion Type (0008,0064) WSD: a workstation screen capture.
    ScreenCapture,
    /// Ultrasound without Burned In Annotation NO.
    Ultrasound(String),
    /// Recognizable Visual Features (0028,0302) is YES (or anything but NO):
    /// a face, a head surface rendering.
    VisualFeatures,
    /// A visible-light photographic or video SOP class (a camera image, where
    /// a face, a wristband or a slide label may be visible).
    Photographic(String),
}

impl std::fmt::Display for BurnedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BurnedIn::Annotation => f.write_str("Burned In Annotation is YES"),
            BurnedIn::SecondaryCapture(c) => write!(f, "secondary capture SOP class {c}"),
            BurnedIn::ScreenCapture => {
                f.write_str("workstation screen capture (Conversion Type WSD)")
            }
            BurnedIn::Ultrasound(c) => {
                write!(
                    f,
                    "ultrasound SOP class {c} without Burned In Annotation NO"
                )
            }
            BurnedIn::VisualFeatures => f.write_str("Recognizable Visual Features is YES"),
            BurnedIn::Photographic(c) => write!(f, "photographic or video SOP class {c}"),
        }
    }
}

/// Why a data set was not de-identified. After an error the de-identifier
/// refuses further input: the object must be refused or aborted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeidError {
    /// The transfer syntax is not read (big endian, deflated, unknown).
    #[error("transfer syntax {0} cannot be de-identified (big endian, deflated or unknown)")]
    UnsupportedSyntax(String),
    /// The profile asks for something that cannot be done.
    #[error("DICOM privacy profile: {0}")]
    Profile(String),
    /// The bytes are not a data set this de-identifier can read safely.
    #[error("malformed data set at byte {offset}: {what}")]
    Malformed {
        /// Data set bytes consumed when it was found.
        offset: u64,
        /// What is wrong.
        what: &'static str,
    },
    /// A value that must be read to be transformed is over `Limits::max_value`.
    #[error("value of ({:04X},{:04X}) is {len} bytes, over the limit of {limit} for values read to be transformed", tag >> 16, tag & 0xFFFF)]
    ValueTooLong {
        /// The tag.
        tag: u32,
        /// Its length.
        len: u64,
        /// The limit.
        limit: usize,
    },
    /// Sequences nested deeper than `Limits::max_depth`.
    #[error("sequences nested deeper than {limit}")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// More private creators than `Limits::max_private_creators`.
    #[error("more than {limit} private creators")]
    TooManyPrivateCreators {
        /// The limit.
        limit: usize,
    },
    /// Output held for the Patient ID (or Burned In Annotation) passed
    /// `Limits::max_hold`.
    #[error("output held for the Patient ID passed {limit} bytes")]
    HoldLimit {
        /// The limit.
        limit: usize,
    },
    /// The object may carry identity in its pixels.
    #[error("object may carry burned-in identity: {0}")]
    BurnedIn(BurnedIn),
    /// An attribute the de-identifier must read (Patient ID, Patient's Name,
    /// a UID, a date, an AE title, Other Patient IDs, a burned-in signal) is
    /// declared with a VR other than the dictionary's (UN is accepted), or an
    /// attribute is declared a sequence where the dictionary says it is not
    /// (or the reverse).
    #[error("({:04X},{:04X}) declared {declared:?}, the dictionary's VR is {expected:?}", tag >> 16, tag & 0xFFFF)]
    VrMismatch {
        /// The tag.
        tag: u32,
        /// The VR in the data set (UN for an undefined-length UN read as a sequence).
        declared: Vr,
        /// The dictionary's VR.
        expected: Vr,
    },
    /// A patient identifier that is not valid text (not UTF-8, or control
    /// characters other than padding): refused rather than decoded lossily,
    /// since consent is checked on it.
    #[error("({:04X},{:04X}) is not valid text", tag >> 16, tag & 0xFFFF)]
    NotText {
        /// The tag.
        tag: u32,
    },
    /// A Patient ID (VM 1) holding more than one value: toolkits that split
    /// on `\` and those that do not read different patients.
    #[error("({:04X},{:04X}) holds more than one value", tag >> 16, tag & 0xFFFF)]
    MultiValued {
        /// The tag.
        tag: u32,
    },
    /// A patient identifier read after the object began to be forwarded (in
    /// a sequence after Other Patient IDs Sequence, such as the Original
    /// Attributes Sequence) names a patient who opted out of the route's
    /// purpose (their pseudonym): the object is aborted.
    #[error("a patient identifier read late names a patient who opted out ({pseudonym})")]
    OptedOutLate {
        /// The patient's pseudonym.
        pseudonym: String,
    },
    /// More than [`MAX_OTHER_PATIENT_IDS`] other patient identifiers.
    #[error("more than {limit} other patient identifiers")]
    TooManyPatientIds {
        /// The limit.
        limit: usize,
    },
    /// The data set ended inside an element, item or sequence.
    #[error("data set ended inside an element, item or sequence")]
    Truncated,
    /// Input after an error or after `finish`.
    #[error("de-identifier already failed or finished")]
    Finished,
    /// A command set that cannot be rewritten.
    #[error("command set: {0}")]
    Command(&'static str),
}
