//! A streaming walk over a DICOM data set (PS3.5 section 7): bytes go in as they
//! arrive, in fragments of any size; out come the few attributes wardgate records
//! (SOP class and instance, modality, patient ID) and any binary value that starts
//! like an executable. Nothing is buffered beyond one element header and a small
//! window of each value of interest, so memory stays bounded whatever the object
//! size.
//!
//! What it does not do: decode values, follow defined-length sequences in implicit
//! VR (without a dictionary they are indistinguishable from opaque values, so they
//! are skipped whole), or read big-endian or deflated transfer syntaxes
//! ([`Syntax::Opaque`]: nothing is inspected, which is reported).

use super::DicomError;

/// How a data set is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// Implicit VR little endian (1.2.840.10008.1.2).
    ImplicitLe,
    /// Explicit VR little endian, and the encapsulated (compressed) syntaxes, whose
    /// data set is explicit VR little endian too.
    ExplicitLe,
    /// Big endian or deflated: not walked.
    Opaque,
}

impl Syntax {
    /// The encoding for a transfer syntax UID (padding already removed).
    pub fn of(transfer_syntax: &[u8]) -> Syntax {
        match transfer_syntax {
            b"1.2.840.10008.1.2" => Syntax::ImplicitLe,
            b"1.2.840.10008.1.2.2" | b"1.2.840.10008.1.2.1.99" => Syntax::Opaque,
            _ => Syntax::ExplicitLe,
        }
    }
}

/// What kind of executable content a value starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Executable {
    /// A Windows PE (DOS header pointing at a PE signature).
    WindowsPe,
    /// An ELF binary.
    Elf,
    /// A Mach-O binary.
    MachO,
    /// A script with an interpreter line (`#!/...`).
    Script,
}

impl Executable {
    /// Name for events and reports.
    pub fn name(self) -> &'static str {
        match self {
            Executable::WindowsPe => "Windows PE executable",
            Executable::Elf => "ELF executable",
            Executable::MachO => "Mach-O executable",
            Executable::Script => "script with an interpreter line",
        }
    }
}

/// Bytes of a binary value kept to recognise an executable: enough for a DOS
/// header's `e_lfanew` to point at the PE signature in most real executables.
pub const SNIFF_BYTES: usize = 512;

/// Recognises executable content from the first bytes of a value. Strict on
/// purpose: pixel data is arbitrary bytes, and two bytes ("MZ") would be a false
/// alarm in one image in 65 536.
pub fn sniff(head: &[u8]) -> Option<Executable> {
    if head.len() >= 0x40 && head.starts_with(b"MZ") {
        let lfanew = u32::from_le_bytes([head[0x3C], head[0x3D], head[0x3E], head[0x3F]]) as usize;
        if (0x40..head.len().saturating_sub(3)).contains(&lfanew)
            && &head[lfanew..lfanew + 4] == b"PE\0\0"
        {
            return Some(Executable::WindowsPe);
        }
    }
    if head.len() >= 7
        && head.starts_with(b"\x7fELF")
        && matches!(head[4], 1 | 2)
        && matches!(head[5], 1 | 2)
        && head[6] == 1
    {
        return Some(Executable::Elf);
    }
    if head.len() >= 8
        && matches!(
            head[..4],
            [0xCF, 0xFA, 0xED, 0xFE]
                | [0xCE, 0xFA, 0xED, 0xFE]
                | [0xFE, 0xED, 0xFA, 0xCF]
                | [0xFE, 0xED, 0xFA, 0xCE]
        )
    {
        return Some(Executable::MachO);
    }
    if head.starts_with(b"#!/") {
        let line = head[3..].split(|&b| b == b'\n').next().unwrap_or_default();
        if !line.is_empty() && line.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
            return Some(Executable::Script);
        }
    }
    None
}

/// An executable found in a data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecutableFinding {
    /// The element: (group, element).
    pub tag: (u16, u16),
    /// What it looks like.
    pub kind: Executable,
}

/// The attributes recorded about a data set (values trimmed, at most 64 bytes each).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// (0008,0016) SOP Class UID.
    pub sop_class: Vec<u8>,
    /// (0008,0018) SOP Instance UID.
    pub sop_instance: Vec<u8>,
    /// (0008,0060) Modality.
    pub modality: Vec<u8>,
    /// (0010,0020) Patient ID.
    pub patient_id: Vec<u8>,
    /// Executable content, the first found.
    pub executable: Option<ExecutableFinding>,
}

const UNDEFINED: u32 = 0xFFFF_FFFF;
const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Inside a sequence of undefined length: items hold nested data sets.
    Sequence,
    /// Inside encapsulated pixel data (the element `tag`): items are raw fragments.
    Fragments { seen: u32, tag: (u16, u16) },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    Nothing,
    Fact(u8),
    Sniff,
}

/// The streaming walker. Feed it data set bytes in order with [`Walker::feed`].
#[derive(Debug, Clone)]
pub struct Walker {
    syntax: Syntax,
    header: [u8; 12],
    have: usize,
    /// Bytes of the current value still to pass.
    remaining: u64,
    tag: (u16, u16),
    keep: Keep,
    window: Vec<u8>,
    scopes: Vec<Scope>,
    facts: Facts,
    /// Depth of the scope from which elements are implicit VR (inside a UN value of
    /// undefined length, PS3.5 6.2.2), if any.
    implicit_from: Option<usize>,
    /// The last top-level element started.
    last_top_tag: (u16, u16),
    /// Set once the first element header has been read.
    first_seen: bool,
    /// Data set bytes fed so far.
    pub bytes_seen: u64,
}

impl Walker {
    /// A walker for a data set in `syntax`.
    pub fn new(syntax: Syntax) -> Self {
        Walker {
            syntax,
            header: [0; 12],
            have: 0,
            remaining: 0,
            tag: (0, 0),
            keep: Keep::Nothing,
            window: Vec::new(),
            scopes: Vec::new(),
            facts: Facts::default(),
            implicit_from: None,
            last_top_tag: (0, 0),
            first_seen: false,
            bytes_seen: 0,
        }
    }

    /// What was found so far.
    pub fn facts(&self) -> &Facts {
        &self.facts
    }

    /// True once the walk reached a top-level element after `tag`: attributes up to
    /// `tag` have all been seen.
    pub fn past(&self, tag: (u16, u16)) -> bool {
        self.last_top_tag > tag
    }

    /// True when the encoding is walked at all.
    pub fn inspects(&self) -> bool {
        self.syntax != Syntax::Opaque
    }

    /// Consumes the next bytes of the data set.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), DicomError> {
        self.bytes_seen += bytes.len() as u64;
        if self.syntax == Syntax::Opaque {
            return Ok(());
        }
        while !bytes.is_empty() {
            if self.remaining > 0 {
                let n =
                    usize::try_from(self.remaining.min(bytes.len() as u64)).unwrap_or(bytes.len());
                self.take_value(&bytes[..n]);
                self.remaining -= n as u64;
                bytes = &bytes[n..];
                if self.remaining == 0 {
                    self.end_value();
                }
                continue;
            }
            // Accumulate a header: 8 bytes, or 12 for explicit VRs with a long length.
            let want = self.header_len();
            let n = (want - self.have).min(bytes.len());
            self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            let full = self.header_len();
            if self.have == full {
                self.have = 0;
                self.start_element(full)?;
            }
        }
        Ok(())
    }

    fn implicit(&self) -> bool {
        self.syntax == Syntax::ImplicitLe || self.implicit_from.is_some()
    }

    /// The header length, as far as the bytes so far tell.
    fn header_len(&self) -> usize {
        if self.have < 6 {
            return 8;
        }
        let group = u16::from_le_bytes([self.header[0], self.header[1]]);
        if group == 0xFFFE || self.implicit() {
            return 8;
        }
        match &self.header[4..6] {
            b"OB" | b"OD" | b"OF" | b"OL" | b"OV" | b"OW" | b"SQ" | b"SV" | b"UC" | b"UN"
            | b"UR" | b"UT" | b"UV" => 12,
            _ => 8,
        }
    }

    fn start_element(&mut self, header_len: usize) -> Result<(), DicomError> {
        let h = self.header;
        let group = u16::from_le_bytes([h[0], h[1]]);
        let element = u16::from_le_bytes([h[2], h[3]]);
        self.tag = (group, element);
        if self.scopes.is_empty() && group != 0xFFFE {
            self.last_top_tag = self.tag;
        }
        self.keep = Keep::Nothing;
        self.window.clear();
        if group == 0xFFFE {
            let len = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
            return self.start_item(element, len);
        }
        // Some writers declare an explicit VR syntax and write implicit VR; like
        // dcmtk and pydicom, believe the bytes of the first element.
        if !self.first_seen {
            self.first_seen = true;
            if self.syntax == Syntax::ExplicitLe
                && header_len == 8
                && !h[4..6].iter().all(u8::is_ascii_uppercase)
            {
                self.syntax = Syntax::ImplicitLe;
            }
        }
        let (vr, len) = match self.implicit() {
            true => (None, u32::from_le_bytes([h[4], h[5], h[6], h[7]])),
            false if header_len == 12 => (
                Some([h[4], h[5]]),
                u32::from_le_bytes([h[8], h[9], h[10], h[11]]),
            ),
            false => (
                Some([h[4], h[5]]),
                u32::from(u16::from_le_bytes([h[6], h[7]])),
            ),
        };
        if let Some(v) = vr {
            if !v.iter().all(u8::is_ascii_uppercase) {
                return Err(DicomError::Invalid {
                    what: "value representation in an explicit VR data set",
                });
            }
        }
        if len == UNDEFINED {
            let scope = if vr == Some(*b"SQ") || vr.is_none() || vr == Some(*b"UN") {
                if vr.is_none() && self.tag == (0x7FE0, 0x0010) {
                    Scope::Fragments {
                        seen: 0,
                        tag: self.tag,
                    }
                } else {
                    Scope::Sequence
                }
            } else {
                Scope::Fragments {
                    seen: 0,
                    tag: self.tag,
                }
            };
            if vr == Some(*b"UN") && self.implicit_from.is_none() {
                self.implicit_from = Some(self.scopes.len());
            }
            return self.push(scope);
        }
        if vr == Some(*b"SQ") {
            // A defined-length sequence: its items and their elements follow as
            // ordinary headers; nothing needs to track where it ends.
            return Ok(());
        }
        let top_level = self.scopes.is_empty();
        self.keep = match self.tag {
            (0x0008, 0x0016) if top_level => Keep::Fact(0),
            (0x0008, 0x0018) if top_level => Keep::Fact(1),
            (0x0008, 0x0060) if top_level => Keep::Fact(2),
            (0x0010, 0x0020) if top_level => Keep::Fact(3),
            (0x0042, 0x0011) => Keep::Sniff,
            _ if matches!(vr, Some([b'O', b'B']) | Some([b'U', b'N'])) => Keep::Sniff,
            _ => Keep::Nothing,
        };
        self.remaining = u64::from(len);
        if len == 0 {
            self.end_value();
        }
        Ok(())
    }

    fn start_item(&mut self, element: u16, len: u32) -> Result<(), DicomError> {
        match element {
            // Item.
            0xE000 => match self.scopes.last_mut() {
                Some(Scope::Fragments { seen, tag }) => {
                    // The first fragment is the basic offset table, not content.
                    self.keep = if *seen > 0 {
                        Keep::Sniff
                    } else {
                        Keep::Nothing
                    };
                    *seen = seen.saturating_add(1);
                    self.tag = *tag;
                    if len == UNDEFINED {
                        return Err(DicomError::Invalid {
                            what: "pixel data fragment of undefined length",
                        });
                    }
                    self.remaining = u64::from(len);
                    if len == 0 {
                        self.end_value();
                    }
                    Ok(())
                }
                // A nested data set: its elements follow.
                _ => Ok(()),
            },
            // Item delimitation: nothing to do.
            0xE00D => Ok(()),
            // Sequence delimitation.
            0xE0DD => {
                self.scopes.pop();
                if self.implicit_from.is_some_and(|d| d >= self.scopes.len()) {
                    self.implicit_from = None;
                }
                Ok(())
            }
            _ => Err(DicomError::Invalid {
                what: "item tag (FFFE,xxxx)",
            }),
        }
    }

    fn push(&mut self, scope: Scope) -> Result<(), DicomError> {
        if self.scopes.len() >= MAX_DEPTH {
            return Err(DicomError::TooMany {
                what: "nested sequences",
                limit: MAX_DEPTH,
            });
        }
        self.scopes.push(scope);
        Ok(())
    }

    fn take_value(&mut self, part: &[u8]) {
        let cap = match self.keep {
            Keep::Nothing => return,
            Keep::Fact(_) => 64,
            Keep::Sniff => SNIFF_BYTES,
        };
        let room = cap.saturating_sub(self.window.len());
        self.window.extend_from_slice(&part[..room.min(part.len())]);
        // Judge a binary value as soon as its window is full: the rest of it may
        // not have been forwarded yet, and must not be if it is an executable.
        if self.keep == Keep::Sniff && self.window.len() == cap {
            self.end_value();
        }
    }

    fn end_value(&mut self) {
        match self.keep {
            Keep::Nothing => {}
            Keep::Fact(i) => {
                let v = super::trim(&self.window).to_vec();
                let slot = match i {
                    0 => &mut self.facts.sop_class,
                    1 => &mut self.facts.sop_instance,
                    2 => &mut self.facts.modality,
                    _ => &mut self.facts.patient_id,
                };
                // The first occurrence wins: top-level attributes precede any
                // sequence that could nest the same tag (tags ascend).
                if slot.is_empty() {
                    *slot = v;
                }
            }
            Keep::Sniff => {
                if self.facts.executable.is_none() {
                    if let Some(kind) = sniff(&self.window) {
                        self.facts.executable = Some(ExecutableFinding {
                            tag: self.tag,
                            kind,
                        });
                    }
                }
            }
        }
        self.keep = Keep::Nothing;
        self.window.clear();
    }
}

/// A DICOM Part 10 file's preamble and what it looks like (CVE-2019-11687: the
/// 128-byte preamble is free for applications, so a file can be both a valid
/// DICOM object and a Windows executable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preamble {
    /// All zeros, or a TIFF header (PS3.10 7.5 allows one).
    Clean,
    /// Something else that is not executable.
    Other,
    /// Executable content.
    Executable(Executable),
}

/// Reads the start of a Part 10 file: the preamble verdict and where the file
/// meta information begins (after "DICM"). `None` when it is not a Part 10 file.
pub fn part10_preamble(head: &[u8]) -> Option<Preamble> {
    if head.len() < 132 || &head[128..132] != b"DICM" {
        return None;
    }
    let pre = &head[..128];
    if pre.iter().all(|&b| b == 0) || pre.starts_with(b"II*\0") || pre.starts_with(b"MM\0*") {
        return Some(Preamble::Clean);
    }
    // A PE polyglot puts "MZ" at 0 and the PE header anywhere in the file; within
    // a DICOM preamble "MZ" alone is reason enough.
    if pre.starts_with(b"MZ") {
        return Some(Preamble::Executable(Executable::WindowsPe));
    }
    Some(match sniff(head) {
        Some(kind) => Preamble::Executable(kind),
        None => Preamble::Other,
    })
}

/// Where a Part 10 file's data set starts and its transfer syntax, read from the
/// file meta information (always explicit VR little endian, PS3.10 7.1). `head`
/// must hold at least the preamble, "DICM" and the meta group.
pub fn part10_meta(head: &[u8]) -> Result<(usize, Syntax), DicomError> {
    let bad = |what| DicomError::Invalid { what };
    let meta = head.get(132..).ok_or(DicomError::Truncated {
        what: "Part 10 header",
    })?;
    // (0002,0000) UL 4: the group length.
    let group_len = match meta.get(..12) {
        Some([2, 0, 0, 0, b'U', b'L', 4, 0, a, b, c, d]) => {
            u32::from_le_bytes([*a, *b, *c, *d]) as usize
        }
        Some(_) => return Err(bad("file meta information group length")),
        None => {
            return Err(DicomError::Truncated {
                what: "file meta information",
            })
        }
    };
    let end = 12usize
        .checked_add(group_len)
        .ok_or(bad("file meta information group length"))?;
    let group = meta.get(12..end).ok_or(DicomError::Truncated {
        what: "file meta information",
    })?;
    let mut rest = group;
    let mut syntax = None;
    while rest.len() >= 8 {
        let element = u16::from_le_bytes([rest[2], rest[3]]);
        let long = matches!(&rest[4..6], b"OB" | b"OW" | b"UN" | b"SQ" | b"UT");
        let (hdr, len): (usize, usize) = if long {
            let l = rest.get(8..12).ok_or(DicomError::Truncated {
                what: "file meta element",
            })?;
            (12, u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize)
        } else {
            (8, usize::from(u16::from_le_bytes([rest[6], rest[7]])))
        };
        let value = rest
            .get(hdr..hdr.saturating_add(len))
            .ok_or(DicomError::Truncated {
                what: "file meta element",
            })?;
        if element == 0x0010 {
            syntax = Some(Syntax::of(super::trim(value)));
        }
        rest = &rest[hdr + len..];
    }
    let syntax = syntax.ok_or(DicomError::Missing("transfer syntax (0002,0010)"))?;
    Ok((132 + end, syntax))
}
