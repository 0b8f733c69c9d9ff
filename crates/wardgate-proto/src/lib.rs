//! Sans-IO protocol code for wardgate: bytes in, typed views or typed errors out.
//! No sockets, no clocks, no async; nothing here allocates on the hot path where a
//! borrow will do. These are the pieces that are fuzzed, property-tested and
//! benchmarked in isolation, and shared by the inline proxy and the passive analyser.
//!
//! - [`mllp`]: Minimal Lower Layer Protocol framing (`<VT> payload <FS><CR>`).
//! - [`hl7`]: HL7 v2 ER7 messages with the delimiters each message declares, and
//!   acknowledgements ([`hl7::ack`]).
//! - [`dicom`]: the DICOM upper layer (PDUs, association negotiation) and DIMSE
//!   command sets.
//! - [`anomaly`]: severities and the catalogue of protocol rules.
//! - [`ftp`]: FTP control channel commands, cleartext `USER`/`PASS` (RFC 959).
//! - [`telnet`]: Telnet command stripping and login prompts (RFC 854).
//! - [`http`]: HTTP/1.x request heads and `Authorization: Basic` (RFC 9112, 7617).
//! - [`mqtt`]: MQTT 3.1/3.1.1/5.0 packet framing, CONNECT credentials, PUBLISH
//!   topics (passive); [`mqtt::codec`]: the inline proxy's MQTT 3.1.1/5.0
//!   framing, full validation into borrowed views, topic aliases and refusals.
//! - [`smb`]: NetBIOS session framing, SMB1/SMB2 headers and NEGOTIATE dialects.
//! - [`tls`]: TLS handshakes seen passively: ClientHello server names and the
//!   certificates TLS 1.2 and earlier send in clear (inventory only).

pub mod anomaly;
pub mod dicom;
pub mod ftp;
pub mod hl7;
pub mod http;
pub mod mllp;
pub mod mqtt;
pub mod registry;
pub mod smb;
pub mod telnet;
pub mod tls;

pub use anomaly::{catalogue, Anomaly, Rule, Severity};
