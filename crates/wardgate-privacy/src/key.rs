//! The site key and keyed pseudonyms.
//!
//! A pseudonym is HMAC-SHA-256 under the site key of a domain-separated input
//! (`kind` and value), so a patient ID and an accession number with the same
//! text never share a pseudonym, and nobody without the key can test a guess
//! (a plain hash of an MRN is reversed by trying every MRN). Patient IDs use
//! one kind everywhere, so HL7 PID-3, DICOM (0010,0020) and the events name a
//! patient with the same pseudonym and a destination can still link them.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroize;

/// Bytes of a site key.
pub const KEY_LEN: usize = 32;

/// Characters of a pseudonym: `WG` and 14 base-32 characters (70 bits, a
/// collision expected after some 34 billion patients), short enough for the
/// 15-character identifiers older HL7 receivers keep and for DICOM's LO (64).
pub const PSEUDONYM_LEN: usize = 16;

/// Crockford's base 32: no I, L, O or U, which are misread when a pseudonym is
/// read aloud or copied by hand.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// The identifier kinds that share pseudonyms across protocols.
pub mod kind {
    /// A patient identifier: HL7 PID-2/3/4, DICOM Patient ID, the events.
    pub const PATIENT: &str = "patient";
    /// A patient account (billing) number: HL7 PID-18, MRG-3.
    pub const ACCOUNT: &str = "account";
    /// A visit (encounter) number: HL7 PV1-19, PV1-50, MRG-5, MRG-6.
    pub const VISIT: &str = "visit";
    /// Any other identifier a site chooses to pseudonymise.
    pub const IDENTIFIER: &str = "identifier";
}

/// The site's secret: 32 random bytes kept in `data_dir/privacy/site.key`.
/// Wiped from memory when dropped; never printed.
#[derive(Clone)]
pub struct SiteKey([u8; KEY_LEN]);

impl SiteKey {
    /// A key from its bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> SiteKey {
        SiteKey(bytes)
    }

    /// The key's bytes, to write the key file.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// A short public fingerprint (first 8 bytes of SHA-256 of the key, hex),
    /// so two sites or two restarts can be told to use the same key without
    /// showing it.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        let d = Sha256::digest(self.0);
        d[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl Drop for SiteKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for SiteKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SiteKey({})", self.fingerprint())
    }
}

/// Makes keyed pseudonyms, date offsets and replacement UIDs with one site key.
/// Cheap to clone (the HMAC state keyed once is copied, not re-keyed).
#[derive(Clone)]
pub struct Pseudonymiser {
    mac: Hmac<Sha256>,
    fingerprint: String,
}

impl std::fmt::Debug for Pseudonymiser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pseudonymiser({})", self.fingerprint)
    }
}

impl Pseudonymiser {
    /// A pseudonymiser with the site key.
    pub fn new(key: &SiteKey) -> Pseudonymiser {
        Pseudonymiser {
            // HMAC takes a key of any length: this cannot fail.
            mac: <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes())
                .unwrap_or_else(|_| unreachable!("HMAC accepts any key length")),
            fingerprint: key.fingerprint(),
        }
    }

    /// The key's public fingerprint.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// HMAC-SHA-256 of `purpose`, `kind` and `value`, each length-prefixed so no
    /// two inputs share an encoding.
    fn digest(&self, purpose: &[u8], kind: &[u8], value: &[u8]) -> [u8; 32] {
        let mut m = self.mac.clone();
        for part in [purpose, kind, value] {
            m.update(&(part.len() as u64).to_be_bytes());
            m.update(part);
        }
        m.finalize().into_bytes().into()
    }

    /// A 32-byte key for another use of the site key (the re-identification
    /// table's encryption), separated from every pseudonym by its label.
    pub fn derive_key(&self, label: &str) -> [u8; 32] {
        self.digest(b"derived key v1", label.as_bytes(), b"")
    }

    /// The pseudonym of an identifier of a kind (see [`kind`]): `WG` and 14
    /// characters of Crockford base 32. Leading and trailing spaces of the
    /// value are not part of it (DICOM pads values with spaces; HL7 does not).
    pub fn pseudonym(&self, kind: &str, value: &str) -> String {
        let d = self.digest(b"pseudonym v1", kind.as_bytes(), value.trim().as_bytes());
        let mut out = String::with_capacity(PSEUDONYM_LEN);
        out.push_str("WG");
        // 14 characters × 5 bits = 70 bits from the first 9 bytes.
        let mut acc: u128 = 0;
        for b in &d[..9] {
            acc = (acc << 8) | u128::from(*b);
        }
        acc >>= 2; // 72 bits → 70
        for i in (0..14).rev() {
            out.push(ALPHABET[((acc >> (i * 5)) & 31) as usize] as char);
        }
        out
    }

    /// The pseudonym of a patient identifier: what every route and every event
    /// name the patient by.
    pub fn patient(&self, id: &str) -> String {
        self.pseudonym(kind::PATIENT, id)
    }

    /// Days to move every date of a patient by, in `-1095..=-1` (back up to
    /// three years, never zero): the same for one patient on every route and
    /// in every protocol, so intervals between that patient's dates are kept.
    pub fn date_shift_days(&self, patient_id: &str) -> i32 {
        let d = self.digest(
            b"date shift v1",
            kind::PATIENT.as_bytes(),
            patient_id.trim().as_bytes(),
        );
        let n = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
        -((n % 1095) as i32) - 1
    }

    /// The replacement of a DICOM UID: `2.25.` and the decimal of 128 bits of
    /// the keyed digest (PS3.5 B.2, at most 44 characters). The same UID always
    /// gets the same replacement, so a study sent in several associations, or
    /// objects referring to one another, stay whole.
    pub fn uid(&self, uid: &str) -> String {
        let uid = uid.trim_end_matches(['\0', ' ']);
        let d = self.digest(b"uid v1", b"dicom", uid.as_bytes());
        let mut n = [0u8; 16];
        n.copy_from_slice(&d[..16]);
        format!("2.25.{}", u128::from_be_bytes(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(seed: u8) -> Pseudonymiser {
        Pseudonymiser::new(&SiteKey::from_bytes([seed; KEY_LEN]))
    }

    #[test]
    fn pseudonyms_are_stable_and_keyed() {
        let a = p(1);
        assert_eq!(a.patient("4711"), a.patient("4711"));
        assert_eq!(a.patient("4711"), a.patient(" 4711 "));
        assert_ne!(a.patient("4711"), a.patient("4712"));
        assert_ne!(a.patient("4711"), p(2).patient("4711"));
        assert_ne!(a.patient("4711"), a.pseudonym("accession", "4711"));
        let s = a.patient("4711");
        assert_eq!(s.len(), PSEUDONYM_LEN);
        assert!(s.starts_with("WG"));
        assert!(s[2..].bytes().all(|c| ALPHABET.contains(&c)));
    }

    #[test]
    fn date_shift_is_per_patient_and_in_range() {
        let a = p(1);
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..200 {
            let d = a.date_shift_days(&i.to_string());
            assert!((-1095..=-1).contains(&d), "{d}");
            assert_eq!(d, a.date_shift_days(&i.to_string()));
            seen.insert(d);
        }
        assert!(seen.len() > 100, "offsets should vary between patients");
    }

    #[test]
    fn uids_are_valid_and_stable() {
        let a = p(1);
        let u = a.uid("1.2.840.113619.2.1.1.1\0");
        assert_eq!(u, a.uid("1.2.840.113619.2.1.1.1"));
        assert!(u.starts_with("2.25.") && u.len() <= 64);
        assert!(u[5..].bytes().all(|c| c.is_ascii_digit()));
        assert!(!u[5..].starts_with('0') || u.len() == 6);
        assert_ne!(u, p(2).uid("1.2.840.113619.2.1.1.1"));
    }

    #[test]
    fn debug_never_shows_the_key() {
        let k = SiteKey::from_bytes([0xAB; KEY_LEN]);
        assert!(!format!("{k:?}").contains("abab"));
    }
}
