//! A C-STORE on a de-identifying route (`[route.privacy]`, docs/privacy.md):
//! its command is rewritten (the instance UID the destination will check) and
//! held, with the de-identified data set, until the object's patient
//! identifiers are read (Patient ID, Other Patient IDs and the Patient IDs of
//! Other Patient IDs Sequence); then consent is checked on each, and only then
//! is anything forwarded. So a patient who opted out, an object that may show
//! identity in its pixels, or a data set the de-identifier cannot read is
//! refused before a byte of it reaches the destination; a failure after that
//! (Burned In Annotation YES read late, a data set cut short) aborts the
//! association, so the destination discards the partial object.

use crate::policy::RoutePolicy;
use wardgate_privacy::dicom::{CommandRewrite, DeidError, Deidentifier, Summary};
use wardgate_privacy::digest::{ContentHasher, DigestKind};
use wardgate_privacy::elements::ElementDigests;

/// Largest data PDV sent when the upstream set no PDU limit.
const UNLIMITED_CHUNK: usize = 64 * 1024;

/// One C-STORE being de-identified.
#[derive(Debug)]
pub(super) struct Deid {
    pub engine: Deidentifier,
    /// The rewritten command set, until it is sent.
    pub command: Option<Vec<u8>>,
    pub rewrite: CommandRewrite,
    pub message_id: u16,
    pub context: u8,
    /// The command's Affected SOP Class and Instance UIDs as the sender gave them.
    pub sop_class: Vec<u8>,
    pub sop_instance: Vec<u8>,
    /// De-identified bytes not yet sent (less than one PDV's worth).
    pub buf: Vec<u8>,
    /// The data set as it came and as it goes (`[privacy] dicom_digest`).
    pub digests: Digests,
}

/// What a de-identified data set is recorded by (`[privacy] dicom_digest`).
#[derive(Debug)]
pub(super) enum Digests {
    /// Each stream hashed whole (SHA-256 or BLAKE3).
    Stream {
        input: Box<ContentHasher>,
        output: Box<ContentHasher>,
    },
    /// By element: values the de-identifier copies whole hashed once.
    Elements(Box<ElementDigests>),
}

impl Digests {
    /// The kind, and whether what came in is keyed.
    pub fn kind(&self) -> (DigestKind, bool) {
        match self {
            Digests::Stream { input, .. } => (input.kind(), input.keyed()),
            Digests::Elements(e) => (DigestKind::Blake3Elements, e.keyed()),
        }
    }

    fn feed_in(&mut self, data: &[u8]) {
        match self {
            Digests::Stream { input, .. } => input.update(data),
            Digests::Elements(e) => e.feed_in(data),
        }
    }

    fn feed_out(&mut self, data: &[u8]) {
        match self {
            Digests::Stream { output, .. } => output.update(data),
            Digests::Elements(e) => e.feed_out(data),
        }
    }

    /// The digests in and out, hex.
    fn finish(&self) -> (String, String) {
        match self {
            Digests::Stream { input, output } => (input.finish(), output.finish()),
            Digests::Elements(e) => e.finish(),
        }
    }
}

/// What one data fragment led to.
#[derive(Debug)]
pub(super) enum Step {
    /// Go on.
    More,
    /// The patient opted out of the route's purpose (their pseudonym):
    /// nothing was sent.
    Withheld(String),
    /// The de-identifier refused; `sent`: the command (and perhaps data)
    /// already went upstream.
    Failed(DeidError, bool),
    /// The data set is complete and sent.
    Done(Box<Summary>),
}

impl Deid {
    /// Feeds one data fragment; what may be sent is appended to `send` as
    /// PDVs `(context, control header, bytes)`. `max_pdu`: the upstream's
    /// limit (0: none).
    pub fn step(
        &mut self,
        route: &RoutePolicy,
        data: &[u8],
        is_last: bool,
        max_pdu: u32,
        send: &mut Vec<(u8, u8, Vec<u8>)>,
    ) -> Step {
        self.digests.feed_in(data);
        let sent = self.command.is_none();
        if let Err(e) = self.engine.feed(data, &mut self.buf) {
            return Step::Failed(e, sent);
        }
        let mut summary = None;
        if is_last {
            match self.engine.finish(&mut self.buf) {
                Ok(s) => summary = Some(s),
                Err(e) => return Step::Failed(e, sent),
            }
        }
        if let Digests::Elements(d) = &mut self.digests {
            for c in self.engine.take_copies() {
                d.copied(c);
            }
        }
        // Identifiers read after the object began to go (in a sequence after
        // Other Patient IDs Sequence): checked at its end; an opt-out aborts
        // it, so the destination discards the partial object.
        if self.command.is_none() && is_last {
            if let Some(ps) = late_opt_out(route, self.engine.other_patient_ids()) {
                return Step::Failed(DeidError::OptedOutLate { pseudonym: ps }, true);
            }
        }
        // PDVs the upstream takes: `max_pdu` less a PDV item's header, even
        // (every PDV but an object's last is).
        let chunk = match max_pdu {
            0 => UNLIMITED_CHUNK,
            n => (n as usize).saturating_sub(6).clamp(2, 1 << 20) & !1,
        };
        if self.command.is_some() && (self.engine.patient_resolved() || is_last) {
            let id = self.engine.patient_id().unwrap_or_default().to_owned();
            // Remembered for re-identification whatever follows.
            let pseudonym = route.site.patients.pseudonym(&id);
            let purpose = route
                .privacy
                .as_ref()
                .and_then(|p| p.settings.purpose.as_deref());
            if let Some(purpose) = purpose {
                if let Some(ps) = &pseudonym {
                    if route.site.consent.opted_out(purpose, ps) {
                        return Step::Withheld(ps.clone());
                    }
                }
                // The object's other identifiers for the patient (Other
                // Patient IDs, Other Patient IDs Sequence): an opt-out under
                // any of them holds.
                let p = route.site.patients.pseudonymiser();
                for other in self.engine.other_patient_ids() {
                    let ps = p.map(|p| p.patient(other));
                    if ps.is_some_and(|ps| route.site.consent.opted_out(purpose, &ps)) {
                        let ps = route.site.patients.pseudonym(other).unwrap_or_default();
                        return Step::Withheld(ps);
                    }
                }
            }
            if let Some(cmd) = self.command.take() {
                // The rewritten command, in PDVs the upstream's PDU limit
                // takes (it is longer than the sender's: UIDs replaced).
                push_pdvs(send, self.context, cmd, chunk, (0x01, 0x03));
            }
        }
        if self.command.is_none() {
            // What there is now, once it is at least half a PDV, with one
            // byte kept back so the last PDV is never empty; on the last
            // fragment, everything. A PDV is the buffer it was written into
            // (no copy) unless more than one PDV's worth came at once.
            if is_last {
                let all = std::mem::take(&mut self.buf);
                self.digests.feed_out(&all);
                push_pdvs(send, self.context, all, chunk, (0x00, 0x02));
            } else if let Some(pieces) = cut(&mut self.buf, chunk) {
                self.digests.feed_out(&pieces);
                push_pdvs(send, self.context, pieces, chunk, (0x00, 0x00));
            }
        }
        match summary {
            Some(s) => Step::Done(Box::new(s)),
            None => Step::More,
        }
    }

    /// The response wardgate answers the sender with itself (withheld:
    /// success; refused: a failure status), naming the sender's own UIDs.
    pub fn response(&self, status: u16) -> Vec<u8> {
        wardgate_proto::dicom::dimse::Response {
            field: wardgate_proto::dicom::CommandField::CStore,
            responding_to: self.message_id,
            sop_class: &self.sop_class,
            sop_instance: &self.sop_instance,
            status,
        }
        .encode()
    }

    /// The digests of the data set in and out, hex.
    pub fn hashes(&self) -> (String, String) {
        self.digests.finish()
    }
}

/// The pseudonym of the first of `ids` who opted out of the route's purpose.
fn late_opt_out(route: &RoutePolicy, ids: &[String]) -> Option<String> {
    let purpose = route.privacy.as_ref()?.settings.purpose.as_deref()?;
    let p = route.site.patients.pseudonymiser()?;
    ids.iter().find_map(|id| {
        let ps = p.patient(id);
        route
            .site
            .consent
            .opted_out(purpose, &ps)
            .then(|| route.site.patients.pseudonym(id).unwrap_or(ps))
    })
}

/// Takes all of `buf` but its last one or two bytes (what is taken has an
/// even length: dcmtk's storescp aborts on an odd data fragment) once it
/// holds more than half a PDV (`chunk` bytes), so no PDV is tiny and the
/// last is never empty: `None` while it holds less. The bytes taken keep the
/// buffer they were written into; the bytes kept start a new one. (Cutting
/// whole PDVs of `chunk` bytes instead copied what was left over at every
/// fragment: about the whole data set once more when fragments are just
/// short of a PDV, as storescu's are.)
fn cut(buf: &mut Vec<u8>, chunk: usize) -> Option<Vec<u8>> {
    let half = (chunk / 2).max(2);
    if buf.len() <= half {
        return None;
    }
    let take = (buf.len() - 1) & !1;
    let mut fresh = Vec::with_capacity(2 * chunk);
    fresh.extend_from_slice(&buf[take..]);
    let mut pieces = std::mem::replace(buf, fresh);
    pieces.truncate(take);
    Some(pieces)
}

/// Sends `bytes` as PDVs of at most `chunk` bytes, with the control header
/// `flags.0`, the last with `flags.1` (a command: 0x01, 0x03; data: 0x00,
/// and 0x02 for an object's end); one PDV is the buffer itself.
fn push_pdvs(
    send: &mut Vec<(u8, u8, Vec<u8>)>,
    context: u8,
    bytes: Vec<u8>,
    chunk: usize,
    flags: (u8, u8),
) {
    if bytes.len() <= chunk {
        send.push((context, flags.1, bytes));
        return;
    }
    let n = bytes.len().div_ceil(chunk);
    send.extend(bytes.chunks(chunk).enumerate().map(|(i, p)| {
        let mch = if i + 1 == n { flags.1 } else { flags.0 };
        (context, mch, p.to_vec())
    }));
}

/// What a summary says changed, in words.
pub(super) fn changes(s: &Summary) -> String {
    let mut parts = Vec::new();
    for (n, what) in [
        (s.replaced, "replaced"),
        (s.uids, "UIDs replaced"),
        (s.dates_shifted, "dates shifted"),
        (s.emptied, "emptied"),
        (s.removed, "removed"),
        (s.private_removed, "private removed"),
        (s.private_kept, "private kept as safe"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    if parts.is_empty() {
        "attributes: none changed".into()
    } else {
        format!("attributes: {}", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::{cut, push_pdvs};

    /// Whatever sizes arrive, the PDVs are at most a chunk and, but for the
    /// last, of even length; one or two bytes wait between calls; the bytes
    /// come out in order, none lost or repeated, and only the last PDV is
    /// flagged last and it is not empty.
    #[test]
    fn cut_keeps_every_byte_in_order() {
        for chunk in [2usize, 4, 100, 16_378] {
            for step in [1usize, 3, 99, 100, 101, 16_372, 16_378, 16_379, 50_000] {
                let mut buf = Vec::new();
                let (mut fed, mut send) = (Vec::new(), Vec::new());
                let mut next = 0u32;
                for _ in 0..40 {
                    for _ in 0..step {
                        let b = (next % 251) as u8;
                        next += 1;
                        buf.push(b);
                        fed.push(b);
                    }
                    let before = buf.len();
                    match cut(&mut buf, chunk) {
                        Some(pieces) => {
                            assert!(before > (chunk / 2).max(2));
                            assert!(pieces.len() % 2 == 0 && pieces.len() + 2 > chunk / 2);
                            assert!((1..=2).contains(&buf.len()));
                            assert_eq!(pieces.len() + buf.len(), before);
                            push_pdvs(&mut send, 1, pieces, chunk, (0x00, 0x00));
                        }
                        None => assert!(before <= (chunk / 2).max(2) && buf.len() == before),
                    }
                }
                push_pdvs(&mut send, 1, std::mem::take(&mut buf), chunk, (0x00, 0x02));
                let out: Vec<u8> = send.iter().flat_map(|p| p.2.clone()).collect();
                assert_eq!(out, fed, "chunk {chunk}, step {step}");
                let (last, rest) = send.split_last().unwrap();
                assert_eq!(last.1, 0x02);
                assert!(!last.2.is_empty() && last.2.len() <= chunk);
                for p in rest {
                    assert_eq!(p.1, 0x00);
                    assert!(p.2.len() <= chunk, "chunk {chunk}, step {step}");
                    assert!(!p.2.is_empty() && p.2.len() % 2 == 0);
                }
            }
        }
    }
}
