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
                send.push((self.context, 0x03, cmd));
            }
        }
        if self.command.is_none() {
            let chunk = match max_pdu {
                0 => UNLIMITED_CHUNK,
                n => (n as usize).saturating_sub(6).clamp(1, 1 << 20),
            };
            // Whole PDVs now; the rest waits for more, so no PDV is tiny and
            // the last one is never empty.
            if let Some(pieces) = cut_whole(&mut self.buf, chunk) {
                self.digests.feed_out(&pieces);
                if pieces.len() == chunk {
                    send.push((self.context, 0x00, pieces));
                } else {
                    send.extend(
                        pieces
                            .chunks(chunk)
                            .map(|p| (self.context, 0x00, p.to_vec())),
                    );
                }
            }
            if is_last {
                let piece = std::mem::take(&mut self.buf);
                self.digests.feed_out(&piece);
                send.push((self.context, 0x02, piece));
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

/// Takes the whole PDVs of `chunk` bytes off the front of `buf` while more
/// than `chunk` bytes are in it, leaving 1..=`chunk` bytes: `None` when there
/// is not more than one PDV's worth. The PDVs keep the buffer they were
/// written into (one PDV's worth: no copy) and what is left moves to a new
/// one: copied once, not shifted to the front after every PDV taken.
fn cut_whole(buf: &mut Vec<u8>, chunk: usize) -> Option<Vec<u8>> {
    if buf.len() <= chunk {
        return None;
    }
    let whole = (buf.len() - 1) / chunk * chunk;
    let mut rest = Vec::with_capacity(2 * chunk);
    rest.extend_from_slice(&buf[whole..]);
    let mut pieces = std::mem::replace(buf, rest);
    pieces.truncate(whole);
    Some(pieces)
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
    use super::cut_whole;

    /// Whatever sizes arrive, the PDVs cut are whole, what is left is 1..=chunk
    /// bytes, and the bytes come out in order, none lost or repeated.
    #[test]
    fn cut_whole_keeps_every_byte_in_order() {
        for chunk in [1usize, 2, 7, 100, 16_378] {
            for step in [1usize, 3, 99, 100, 101, 16_378, 16_379, 50_000] {
                let mut buf = Vec::new();
                let (mut fed, mut out) = (Vec::new(), Vec::new());
                let mut next = 0u32;
                for _ in 0..40 {
                    for _ in 0..step {
                        let b = (next % 251) as u8;
                        next += 1;
                        buf.push(b);
                        fed.push(b);
                    }
                    let before = buf.len();
                    match cut_whole(&mut buf, chunk) {
                        Some(pieces) => {
                            assert!(before > chunk);
                            assert_eq!(pieces.len() % chunk, 0);
                            assert!((1..=chunk).contains(&buf.len()));
                            out.extend_from_slice(&pieces);
                        }
                        None => assert!(before <= chunk && buf.len() == before),
                    }
                }
                out.extend_from_slice(&buf);
                assert_eq!(out, fed, "chunk {chunk}, step {step}");
            }
        }
    }
}
