//! The protocol registry: every application protocol wardgate knows, one line
//! each in [`PROTOCOLS`]: its name (in configuration and in `network.protocol`),
//! whether routes can carry it inline, whether it is clinical, its well-known
//! ports and how passive analysis recognises it from a client's first bytes, and
//! the rule id prefixes that belong to it.
//!
//! Why one table: the configuration's protocol names, passive analysis's
//! classification by port and by content, and the list of protocols a device
//! profile may name were separate lists joined by strings; a new protocol had to
//! be added to each, and nothing made the passive side follow. Now each of them
//! reads this table (ARCHITECTURE.md, "Adding a protocol").

/// An application protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    /// HL7 v2 over MLLP.
    Hl7Mllp,
    /// DICOM upper layer (PS3.8).
    Dicom,
    /// MQTT.
    Mqtt,
    /// FTP control channel.
    Ftp,
    /// Telnet.
    Telnet,
    /// HTTP/1.x.
    Http,
    /// SMB over NetBIOS session service / direct TCP.
    Smb,
    /// TLS (any application inside): only its handshake is read, for the inventory.
    Tls,
    /// Not (yet) recognised.
    Unknown,
}

/// What wardgate knows of one protocol.
#[derive(Debug, Clone, Copy)]
pub struct ProtocolInfo {
    /// The protocol.
    pub proto: Proto,
    /// Its name in configuration (`protocol = "..."`, `peers = ["dev:NAME"]`) and
    /// in `network.protocol`.
    pub name: &'static str,
    /// Routes may carry it inline (the proxy has a session for it).
    pub inline: bool,
    /// Clinical: carries patient data or device commands (cleartext matters most).
    pub clinical: bool,
    /// Well-known server ports, for passive classification without a route.
    pub ports: &'static [u16],
    /// Recognises the protocol from the first bytes a client sent.
    pub sniff: fn(&[u8]) -> bool,
    /// Recognises it from the first bytes a server sent, for protocols whose
    /// server speaks first (a banner, a negotiation) on an unexpected port.
    pub server_sniff: fn(&[u8]) -> bool,
    /// Prefixes of the rule ids that belong to it (docs/rules.md groups by them).
    pub rules: &'static [&'static str],
}

/// Every protocol, one line each. Order matters only for sniffing: the first
/// whose `sniff` accepts the bytes wins.
pub const PROTOCOLS: &[ProtocolInfo] = &[
    ProtocolInfo {
        proto: Proto::Hl7Mllp,
        name: "hl7-mllp",
        inline: true,
        clinical: true,
        ports: &[2575],
        sniff: sniff_mllp,
        server_sniff: never,
        rules: &["WG-MLLP-", "WG-HL7-", "WG-INF-"],
    },
    ProtocolInfo {
        proto: Proto::Dicom,
        name: "dicom",
        inline: true,
        clinical: true,
        ports: &[104, 11112, 4242],
        sniff: sniff_dicom,
        server_sniff: never,
        rules: &["WG-DICOM-"],
    },
    ProtocolInfo {
        proto: Proto::Mqtt,
        name: "mqtt",
        inline: true,
        clinical: true,
        ports: &[1883],
        sniff: sniff_mqtt,
        server_sniff: never,
        rules: &["WG-MQTT-"],
    },
    ProtocolInfo {
        proto: Proto::Smb,
        name: "smb",
        inline: false,
        clinical: false,
        ports: &[139, 445],
        sniff: sniff_smb,
        server_sniff: never,
        rules: &[],
    },
    ProtocolInfo {
        proto: Proto::Http,
        name: "http",
        inline: false,
        clinical: false,
        ports: &[80, 8080, 8000],
        sniff: sniff_http,
        server_sniff: never,
        rules: &[],
    },
    ProtocolInfo {
        proto: Proto::Telnet,
        name: "telnet",
        inline: false,
        clinical: false,
        ports: &[23],
        sniff: sniff_telnet,
        server_sniff: sniff_telnet,
        rules: &[],
    },
    ProtocolInfo {
        proto: Proto::Ftp,
        name: "ftp",
        inline: false,
        clinical: false,
        ports: &[21],
        // FTP's client speaks second (after the server's banner): by port only.
        sniff: never,
        server_sniff: ftp_banner,
        rules: &[],
    },
    ProtocolInfo {
        proto: Proto::Tls,
        name: "tls",
        inline: false,
        clinical: false,
        // HTTPS, DICOM TLS (PS3.15 B.1), MQTT over TLS.
        ports: &[443, 8443, 2762, 8883],
        sniff: sniff_tls,
        server_sniff: never,
        rules: &[],
    },
];

impl Proto {
    /// Its registry line (`None` for [`Proto::Unknown`]).
    pub fn info(self) -> Option<&'static ProtocolInfo> {
        PROTOCOLS.iter().find(|p| p.proto == self)
    }

    /// The `network.protocol` value (`unknown` for an unrecognised one).
    pub fn as_str(self) -> &'static str {
        self.info().map_or("unknown", |p| p.name)
    }

    /// Clinical protocols: the ones whose cleartext matters most.
    pub fn is_clinical(self) -> bool {
        self.info().is_some_and(|p| p.clinical)
    }

    /// By name, as configuration writes it.
    pub fn by_name(name: &str) -> Option<Proto> {
        PROTOCOLS.iter().find(|p| p.name == name).map(|p| p.proto)
    }

    /// By a server's well-known port.
    pub fn by_port(port: u16) -> Proto {
        PROTOCOLS
            .iter()
            .find(|p| p.ports.contains(&port))
            .map_or(Proto::Unknown, |p| p.proto)
    }

    /// By the first bytes a client sent.
    pub fn sniff(first: &[u8]) -> Proto {
        PROTOCOLS
            .iter()
            .find(|p| (p.sniff)(first))
            .map_or(Proto::Unknown, |p| p.proto)
    }

    /// By the first bytes a server sent (protocols whose server speaks first).
    pub fn sniff_server(first: &[u8]) -> Proto {
        PROTOCOLS
            .iter()
            .find(|p| (p.server_sniff)(first))
            .map_or(Proto::Unknown, |p| p.proto)
    }
}

/// The names of every protocol, for messages that list them.
pub fn names(filter: impl Fn(&ProtocolInfo) -> bool) -> Vec<&'static str> {
    PROTOCOLS
        .iter()
        .filter(|p| filter(p))
        .map(|p| p.name)
        .collect()
}

fn never(_: &[u8]) -> bool {
    false
}

/// An FTP server's greeting (RFC 959 220), a short line.
fn ftp_banner(first: &[u8]) -> bool {
    first.starts_with(b"220") && first.len() < 512
}

fn sniff_mllp(first: &[u8]) -> bool {
    first.first() == Some(&0x0b)
}

/// PS3.8 9.3.2: A-ASSOCIATE-RQ, reserved byte 0, then protocol version 1 at offset 6.
fn sniff_dicom(first: &[u8]) -> bool {
    matches!(first, [0x01, 0x00, _, _, _, _, 0x00, 0x01, ..])
}

/// MQTT 3.1.1 3.1: CONNECT, then the protocol name "MQTT" (or 3.1's "MQIsdp").
fn sniff_mqtt(first: &[u8]) -> bool {
    match first {
        [0x10, rest @ ..] if rest.len() >= 8 => {
            let head = &rest[..rest.len().min(12)];
            memchr::memmem::find(head, b"MQTT").is_some()
                || memchr::memmem::find(head, b"MQIsdp").is_some()
        }
        _ => false,
    }
}

/// RFC 1002 4.3.1 session message carrying an SMB1 or SMB2 header.
fn sniff_smb(first: &[u8]) -> bool {
    matches!(first, [0x00, _, _, _, 0xff | 0xfe, b'S', b'M', b'B', ..])
}

fn sniff_http(first: &[u8]) -> bool {
    const METHODS: [&[u8]; 7] = [
        b"GET ",
        b"POST ",
        b"PUT ",
        b"HEAD ",
        b"DELETE ",
        b"OPTIONS ",
        b"PATCH ",
    ];
    METHODS.iter().any(|m| first.starts_with(m))
}

/// A TLS handshake record (RFC 5246 6.2.1): content type 22, version 3.x.
fn sniff_tls(first: &[u8]) -> bool {
    matches!(first, [0x16, 0x03, 0x00..=0x04, ..])
}

/// A Telnet option negotiation (IAC WILL/WONT/DO/DONT).
fn sniff_telnet(first: &[u8]) -> bool {
    matches!(first, [0xff, 0xfb..=0xfe, ..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_ports_and_prefixes_are_each_claimed_once() {
        let mut names: Vec<_> = PROTOCOLS.iter().map(|p| p.name).collect();
        let mut ports: Vec<_> = PROTOCOLS.iter().flat_map(|p| p.ports).collect();
        let mut prefixes: Vec<&str> = PROTOCOLS.iter().flat_map(|p| p.rules).copied().collect();
        for v in [&mut names, &mut prefixes] {
            let n = v.len();
            v.sort();
            v.dedup();
            assert_eq!(v.len(), n);
        }
        let n = ports.len();
        ports.sort();
        ports.dedup();
        assert_eq!(ports.len(), n);
    }

    #[test]
    fn every_protocol_is_found_by_name_and_by_its_first_port() {
        for p in PROTOCOLS {
            assert_eq!(Proto::by_name(p.name), Some(p.proto));
            assert_eq!(p.proto.as_str(), p.name);
            if let Some(&port) = p.ports.first() {
                assert_eq!(Proto::by_port(port), p.proto);
            }
        }
        assert_eq!(Proto::by_port(9), Proto::Unknown);
        assert_eq!(Proto::by_name("gopher"), None);
    }

    #[test]
    fn sniffing_recognises_each_protocols_opening() {
        let cases: [(&[u8], Proto); 8] = [
            (b"\x16\x03\x01\x02\x00\x01", Proto::Tls),
            (b"\x0bMSH|^~\\&|", Proto::Hl7Mllp),
            (b"\x01\x00\x00\x00\x00\xcd\x00\x01\x00\x00", Proto::Dicom),
            (b"\x10\x1a\x00\x04MQTT\x04\x02\x00\x3c", Proto::Mqtt),
            (b"\x00\x00\x00\x54\xffSMB\x72", Proto::Smb),
            (b"GET / HTTP/1.1\r\n", Proto::Http),
            (b"\xff\xfd\x18", Proto::Telnet),
            (b"USER anonymous\r\n", Proto::Unknown),
        ];
        for (bytes, want) in cases {
            assert_eq!(Proto::sniff(bytes), want, "{bytes:?}");
        }
        assert_eq!(Proto::sniff_server(b"220 FTP ready\r\n"), Proto::Ftp);
        assert_eq!(Proto::sniff_server(b"\xff\xfb\x01"), Proto::Telnet);
        assert_eq!(Proto::sniff_server(b"HTTP/1.1 200 OK"), Proto::Unknown);
    }
}
