//! Default and hard-coded credentials the passive analyser recognises when a
//! login crosses the network in clear (FTP, Telnet, HTTP Basic, MQTT CONNECT,
//! DICOM user identity).
//!
//! The list is `data/default-credentials.toml`, bundled at build time and parsed
//! once on first use. Every entry names the public source it comes from. A
//! match is for alerting: callers record which entry matched, never the
//! password they saw.

use serde::Deserialize;
use std::sync::LazyLock;

/// The bundled list, as shipped.
pub const BUNDLED: &str = include_str!("../data/default-credentials.toml");

/// The protocols an entry may name.
pub const PROTOCOLS: &[&str] = &["ftp", "telnet", "http", "mqtt", "dicom"];

/// One documented default credential.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultCredential {
    /// Who ships it.
    pub vendor: String,
    /// Which product or products.
    pub product: String,
    /// Where it is checked: names from [`PROTOCOLS`].
    pub protocols: Vec<String>,
    /// User name, compared case-sensitively.
    pub username: String,
    /// Password, compared exactly; empty also matches a login that sent none.
    pub password: String,
    /// The public advisory, CVE or manual that documents it.
    pub source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    credential: Vec<DefaultCredential>,
}

fn parse(text: &str) -> Result<Vec<DefaultCredential>, toml::de::Error> {
    toml::from_str::<File>(text).map(|f| f.credential)
}

/// Parsed once. A unit test proves the bundled file parses; were it ever to
/// fail, the list is empty rather than the analyser crashing.
static LIST: LazyLock<Vec<DefaultCredential>> =
    LazyLock::new(|| parse(BUNDLED).unwrap_or_default());

/// Every bundled entry, in file order.
pub fn all() -> &'static [DefaultCredential] {
    &LIST
}

/// The first entry for `protocol` (one of [`PROTOCOLS`], case-insensitive)
/// whose user name is `username` and whose password is `password`; a login
/// without a password (`None`) matches entries with an empty one.
pub fn lookup(
    protocol: &str,
    username: &[u8],
    password: Option<&[u8]>,
) -> Option<&'static DefaultCredential> {
    LIST.iter().find(|c| {
        c.username.as_bytes() == username
            && match password {
                Some(p) => c.password.as_bytes() == p,
                None => c.password.is_empty(),
            }
            && c.protocols.iter().any(|p| p.eq_ignore_ascii_case(protocol))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_list_parses_and_every_entry_is_sourced() {
        let list = parse(BUNDLED).expect("data/default-credentials.toml must parse");
        assert!(!list.is_empty());
        assert_eq!(all().len(), list.len());
        for c in &list {
            let who = format!("{} / {} / {}", c.vendor, c.product, c.username);
            assert!(!c.source.trim().is_empty(), "{who}: no source");
            assert!(!c.vendor.trim().is_empty(), "{who}: no vendor");
            assert!(!c.product.trim().is_empty(), "{who}: no product");
            assert!(!c.username.is_empty(), "{who}: no username");
            assert!(!c.protocols.is_empty(), "{who}: no protocols");
            for p in &c.protocols {
                assert!(PROTOCOLS.contains(&p.as_str()), "{who}: protocol {p}");
            }
        }
        // No entry is listed twice for the same protocol.
        for (i, a) in list.iter().enumerate() {
            for b in &list[i + 1..] {
                let same = a.username == b.username
                    && a.password == b.password
                    && a.product == b.product
                    && a.protocols.iter().any(|p| b.protocols.contains(p));
                assert!(!same, "duplicate entry {} / {}", a.product, a.username);
            }
        }
    }

    #[test]
    fn lookup_matches_protocol_user_and_password() {
        let c = lookup("telnet", b"insite", Some(b"2getin")).expect("GE InSite");
        assert_eq!(c.vendor, "GE Healthcare");
        assert!(c.source.contains("CVE-2013-7404"));
        assert_eq!(lookup("FTP", b"insite", Some(b"2getin")), Some(c));
        // Wrong protocol, case of the user name, password: no match.
        assert_eq!(lookup("mqtt", b"insite", Some(b"2getin")), None);
        assert_eq!(lookup("telnet", b"INSITE", Some(b"2getin")), None);
        assert_eq!(lookup("telnet", b"insite", Some(b"2GETIN")), None);
        assert_eq!(lookup("telnet", b"insite", None), None);
        // Vendor entries come before generic ones.
        let c = lookup("http", b"orthanc", Some(b"orthanc")).expect("Orthanc");
        assert_eq!(c.vendor, "Orthanc");
        let c = lookup("mqtt", b"guest", Some(b"guest")).expect("RabbitMQ");
        assert!(c.product.contains("RabbitMQ"));
        let c = lookup("dicom", b"guest", Some(b"guest")).expect("generic");
        assert_eq!(c.vendor, "Generic");
        // No password sent matches an empty one.
        let c = lookup("telnet", b"root", None).expect("root without password");
        assert!(c.password.is_empty());
        assert_eq!(lookup("telnet", b"root", Some(b"")), Some(c));
        assert_eq!(lookup("telnet", b"nobody", None), None);
    }
}
