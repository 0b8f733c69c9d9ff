//! Command authority for MQTT command topics: signatures, replay and budgets.
//!
//! A command to a device (a PUBLISH on one of its profile's `commands` topics)
//! can reprogram it, reconfigure it or drain its battery. On a route with
//! `signed_commands`, wardgate forwards a command only when it carries an
//! Ed25519 signature by a `[[command_signer]]` bound to the commander that
//! sent it, over exactly the topic, a timestamp, a nonce and the payload
//! (docs/mqtt.md). Then whoever controls the commander's connection, or the
//! broker's network, still cannot forge, alter, delay or replay a command.
//!
//! # Why it looks like this
//!
//! - **Sans-IO.** Nothing here reads a clock, a socket or the configuration:
//!   the time is passed in (Unix seconds) and the signers are given once. The
//!   session decides *whether* a PUBLISH is a command and *to which device*; this
//!   module only says whether that command may pass.
//! - **Borrowed parsing.** [`envelope_v5`] and [`envelope_payload`] return an
//!   [`Envelope`] borrowing the packet; nothing is allocated to parse one.
//! - **Strict.** There is exactly one way to write each field (one space, no
//!   sign or leading zero, canonical base64 with padding, each property exactly
//!   once), so two readers of the same bytes (wardgate and the device) cannot
//!   disagree about what was signed.
//! - **Verify before remembering.** A nonce is remembered only for a command
//!   whose signature is good, so a forged packet cannot burn a genuine
//!   commander's nonce, and only a genuine signer can fill the replay cache.
//! - **Bounded memory, failing closed.** The replay cache holds at most
//!   [`AuthorityOptions::max_nonces`] live nonces (each at most 64 bytes); when
//!   it is full of nonces that have not expired, commands are refused
//!   ([`CommandRefusal::NonceCacheFull`]) rather than a nonce forgotten early,
//!   which would let its command be replayed. Budgets keep at most
//!   `max(per_hour, per_day)` timestamps per device and at most
//!   [`AuthorityOptions::max_budget_devices`] devices.
//! - **Clock steps.** If the clock passed in goes backwards, the replay
//!   window does not reopen: commands are judged "too old" against the latest
//!   time seen, so a nonce already forgotten can never pass the time check
//!   again, and a budget's spent commands are not given back.

use crate::rules::{self, Rule};
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;
use wardgate_proto::mqtt::codec::Properties;

#[cfg(test)]
mod tests;

/// The first line of the signed bytes: a signature made for something else
/// (a drug library, an audit log) can never pass as a command's.
pub const SIGNED_DOMAIN: &[u8] = b"wardgate-command-v1\n";

/// What starts an MQTT 3.1.1 envelope (`WGSIG1 {signer} {ts} {nonce} {sig}\n`).
pub const ENVELOPE_PREFIX: &[u8] = b"WGSIG1 ";

/// The user property naming the signer (MQTT 5).
pub const PROP_SIGNER: &str = "wg-signer";
/// The user property holding the timestamp (MQTT 5).
pub const PROP_TS: &str = "wg-ts";
/// The user property holding the nonce (MQTT 5).
pub const PROP_NONCE: &str = "wg-nonce";
/// The user property holding the signature, base64 (MQTT 5).
pub const PROP_SIG: &str = "wg-sig";

/// Longest signer id, in bytes.
pub const MAX_SIGNER_LEN: usize = 64;
/// Shortest nonce, in characters.
pub const MIN_NONCE_LEN: usize = 8;
/// Longest nonce, in characters.
pub const MAX_NONCE_LEN: usize = 64;
/// An Ed25519 signature in standard base64 with padding: 88 characters.
const SIG_B64_LEN: usize = 88;
/// Longest envelope header line (without its `\n`): the prefix, the longest
/// signer, an i64's 19 digits, the longest nonce, a signature, and the spaces.
/// Looking for the newline no further than this keeps parsing O(1) in the
/// payload's size.
pub const MAX_ENVELOPE_HEADER: usize =
    ENVELOPE_PREFIX.len() + MAX_SIGNER_LEN + 1 + 19 + 1 + MAX_NONCE_LEN + 1 + SIG_B64_LEN;

/// Seconds in a budget's hour window.
const HOUR: i64 = 3600;
/// Seconds in a budget's day window.
const DAY: i64 = 86_400;

/// A command's signature and what it covers, borrowed from the PUBLISH.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// The `[[command_signer]]` id.
    pub signer: &'a str,
    /// When it was signed, Unix seconds (never negative: no sign is accepted).
    pub timestamp: i64,
    /// 8..64 characters of `[A-Za-z0-9_-]`, unique per signer within the window.
    pub nonce: &'a str,
    /// The Ed25519 signature.
    pub signature: [u8; 64],
    /// The command payload the signature covers: the whole payload in MQTT 5,
    /// what follows the envelope's newline in 3.1.1.
    pub body: &'a [u8],
}

/// The signature bytes are left out: they mean nothing to a reader, and
/// records should not carry what could be mistaken for a credential.
impl fmt::Debug for Envelope<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("signer", &self.signer)
            .field("timestamp", &self.timestamp)
            .field("nonce", &self.nonce)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// Why a command's signature fields could not be read: always refused as
/// [`rules::MQTT_COMMAND_SIGNATURE`] (malformed is as bad as missing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureFault {
    /// One of the four `wg-*` user properties is absent while others are there.
    MissingProperty(&'static str),
    /// A `wg-*` user property appears more than once: which one counts would
    /// depend on the reader.
    RepeatedProperty(&'static str),
    /// A user property whose name starts with `wg-` (any case) but is none of
    /// the four: reserved, so a later version's field cannot be smuggled past
    /// this one. The name, cut to 32 characters.
    UnknownProperty(String),
    /// The envelope's first line has no `\n` within [`MAX_ENVELOPE_HEADER`] bytes.
    HeaderUnterminated,
    /// The envelope's first line is not exactly four fields separated by single
    /// spaces after `WGSIG1 `.
    HeaderFields,
    /// The signer id is empty, over 64 bytes, or holds something other than
    /// printable ASCII without spaces.
    Signer,
    /// The timestamp is not a decimal number without sign or leading zeros
    /// that fits in 64 bits.
    Timestamp,
    /// The nonce is not 8..64 characters of `[A-Za-z0-9_-]`.
    Nonce,
    /// The signature is not standard, canonical base64 with padding of
    /// exactly 64 bytes.
    SignatureEncoding,
}

impl SignatureFault {
    /// The rule a fault is recorded under.
    pub fn rule(&self) -> Rule {
        rules::MQTT_COMMAND_SIGNATURE
    }
}

impl fmt::Display for SignatureFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignatureFault::MissingProperty(p) => write!(f, "user property {p} missing"),
            SignatureFault::RepeatedProperty(p) => write!(f, "user property {p} repeated"),
            SignatureFault::UnknownProperty(p) => write!(f, "unknown wg-* user property {p:?}"),
            SignatureFault::HeaderUnterminated => write!(
                f,
                "WGSIG1 envelope line not ended by a newline within {MAX_ENVELOPE_HEADER} bytes"
            ),
            SignatureFault::HeaderFields => write!(
                f,
                "WGSIG1 envelope line is not `WGSIG1 signer timestamp nonce signature`"
            ),
            SignatureFault::Signer => write!(
                f,
                "signer id empty, over {MAX_SIGNER_LEN} bytes or not printable ASCII"
            ),
            SignatureFault::Timestamp => {
                write!(
                    f,
                    "timestamp not decimal Unix seconds without sign or leading zeros"
                )
            }
            SignatureFault::Nonce => write!(
                f,
                "nonce not {MIN_NONCE_LEN}..{MAX_NONCE_LEN} characters of [A-Za-z0-9_-]"
            ),
            SignatureFault::SignatureEncoding => {
                write!(f, "signature not 64 bytes of padded standard base64")
            }
        }
    }
}

impl std::error::Error for SignatureFault {}

/// Why a command is refused. [`CommandRefusal::rule`] names the rule;
/// `Display` is the one-line reason for the record (never signature bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandRefusal {
    /// Missing or malformed signature fields, an unknown signer, a signer not
    /// bound to the commander, or a signature that does not verify.
    Signature(String),
    /// The timestamp is more than `max_age_secs` from the gateway's clock.
    Stale {
        /// The signer (its signature was good).
        signer: Arc<str>,
        /// The gateway's time minus the command's: positive when too old,
        /// negative when in the future.
        offset_secs: i64,
        /// The window, either way.
        max_age_secs: u64,
    },
    /// The nonce was already used by this signer within the window.
    Replayed {
        /// The signer (its signature was good).
        signer: Arc<str>,
    },
    /// The replay cache is full of unexpired nonces.
    NonceCacheFull {
        /// The signer (its signature was good).
        signer: Arc<str>,
        /// The cache's size.
        max_nonces: usize,
    },
    /// The target device's command budget is spent.
    Budget {
        /// `"hour"` or `"day"`: the rolling window whose limit would be passed.
        window: &'static str,
        /// That window's limit.
        limit: u32,
        /// Commands delivered to the device within that window.
        used: u32,
    },
    /// Budgets are tracked for as many devices as allowed, each with a
    /// command in the last day: a new device's command is refused rather than
    /// another's budget forgotten.
    BudgetDevicesFull {
        /// [`AuthorityOptions::max_budget_devices`].
        max_devices: usize,
    },
}

impl CommandRefusal {
    /// The rule a refusal is recorded under.
    pub fn rule(&self) -> Rule {
        match self {
            CommandRefusal::Signature(_) => rules::MQTT_COMMAND_SIGNATURE,
            CommandRefusal::Stale { .. } => rules::MQTT_COMMAND_STALE,
            CommandRefusal::Replayed { .. } => rules::MQTT_COMMAND_REPLAY,
            CommandRefusal::NonceCacheFull { .. } => rules::MQTT_NONCE_CACHE_FULL,
            CommandRefusal::Budget { .. } | CommandRefusal::BudgetDevicesFull { .. } => {
                rules::MQTT_COMMAND_BUDGET
            }
        }
    }
}

impl From<SignatureFault> for CommandRefusal {
    fn from(f: SignatureFault) -> Self {
        CommandRefusal::Signature(f.to_string())
    }
}

impl fmt::Display for CommandRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandRefusal::Signature(why) => write!(f, "command signature invalid: {why}"),
            CommandRefusal::Stale {
                signer,
                offset_secs,
                max_age_secs,
            } => {
                if *offset_secs >= 0 {
                    write!(
                        f,
                        "command signed by {signer:?} is {offset_secs} s old (window {max_age_secs} s)"
                    )
                } else {
                    write!(
                        f,
                        "command signed by {signer:?} is {} s in the future (window {max_age_secs} s)",
                        offset_secs.unsigned_abs()
                    )
                }
            }
            CommandRefusal::Replayed { signer } => {
                write!(f, "command signed by {signer:?} replays a nonce already used")
            }
            CommandRefusal::NonceCacheFull { signer, max_nonces } => write!(
                f,
                "command signed by {signer:?} refused: the replay cache holds {max_nonces} live nonces"
            ),
            CommandRefusal::Budget {
                window,
                limit,
                used,
            } => write!(
                f,
                "command budget spent: {used} commands in the last {window} (limit {limit})"
            ),
            CommandRefusal::BudgetDevicesFull { max_devices } => write!(
                f,
                "command budget refused: {max_devices} devices already tracked, each with a command in the last day"
            ),
        }
    }
}

impl std::error::Error for CommandRefusal {}

/// Reads an MQTT 5 PUBLISH's signature from its user properties `wg-signer`,
/// `wg-ts`, `wg-nonce` and `wg-sig`; the body is the whole payload.
///
/// `Ok(None)` when no user property's name starts with `wg-` (an unsigned
/// command: the caller refuses it where signatures are required). Any name
/// starting with `wg-` in any case counts, so `WG-SIG` is an unknown property
/// (a fault) rather than ignored: a device that compares names without case
/// must not see a field wardgate did not check.
pub fn envelope_v5<'a>(
    props: &Properties<'a>,
    payload: &'a [u8],
) -> Result<Option<Envelope<'a>>, SignatureFault> {
    let (mut signer, mut ts, mut nonce, mut sig) = (None, None, None, None);
    let mut any = false;
    for (name, value) in props.user_properties() {
        let is_wg = name
            .as_bytes()
            .get(..3)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"wg-"));
        if !is_wg {
            continue;
        }
        any = true;
        let (slot, which) = match name {
            PROP_SIGNER => (&mut signer, PROP_SIGNER),
            PROP_TS => (&mut ts, PROP_TS),
            PROP_NONCE => (&mut nonce, PROP_NONCE),
            PROP_SIG => (&mut sig, PROP_SIG),
            _ => return Err(SignatureFault::UnknownProperty(cut(name, 32))),
        };
        if slot.replace(value).is_some() {
            return Err(SignatureFault::RepeatedProperty(which));
        }
    }
    if !any {
        return Ok(None);
    }
    let signer = signer.ok_or(SignatureFault::MissingProperty(PROP_SIGNER))?;
    let ts = ts.ok_or(SignatureFault::MissingProperty(PROP_TS))?;
    let nonce = nonce.ok_or(SignatureFault::MissingProperty(PROP_NONCE))?;
    let sig = sig.ok_or(SignatureFault::MissingProperty(PROP_SIG))?;
    Ok(Some(Envelope {
        signer: check_signer(signer.as_bytes())?,
        timestamp: parse_timestamp(ts.as_bytes())?,
        nonce: check_nonce(nonce.as_bytes())?,
        signature: decode_signature(sig.as_bytes())?,
        body: payload,
    }))
}

/// Reads an MQTT 3.1.1 command's envelope at the start of its payload:
/// `WGSIG1 {signer} {timestamp} {nonce} {signature}\n{body}`.
///
/// `Ok(None)` when the payload does not start with `WGSIG1 ` (unsigned).
/// Once it does, every deviation is a fault: single spaces, no `\r` (a CR
/// would be read as part of the signature field, and refused), the newline
/// within [`MAX_ENVELOPE_HEADER`] bytes.
pub fn envelope_payload(payload: &[u8]) -> Result<Option<Envelope<'_>>, SignatureFault> {
    let Some(rest) = payload.strip_prefix(ENVELOPE_PREFIX) else {
        return Ok(None);
    };
    let window = &payload[..payload.len().min(MAX_ENVELOPE_HEADER + 1)];
    let Some(nl) = window.iter().position(|&b| b == b'\n') else {
        return Err(SignatureFault::HeaderUnterminated);
    };
    // `nl >= ENVELOPE_PREFIX.len()`: the prefix holds no newline.
    let header = nl
        .checked_sub(ENVELOPE_PREFIX.len())
        .and_then(|n| rest.get(..n))
        .ok_or(SignatureFault::HeaderFields)?;
    let body = payload.get(nl + 1..).ok_or(SignatureFault::HeaderFields)?;
    let mut fields = header.split(|&b| b == b' ');
    let (Some(signer), Some(ts), Some(nonce), Some(sig), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(SignatureFault::HeaderFields);
    };
    if [signer, ts, nonce, sig].iter().any(|f| f.is_empty()) {
        return Err(SignatureFault::HeaderFields);
    }
    Ok(Some(Envelope {
        signer: check_signer(signer)?,
        timestamp: parse_timestamp(ts)?,
        nonce: check_nonce(nonce)?,
        signature: decode_signature(sig)?,
        body,
    }))
}

/// Writes into `out` (cleared first) the bytes a command's signature covers:
/// `wardgate-command-v1\n{topic}\n{timestamp}\n{nonce}\n{body}`. The topic is
/// the one the PUBLISH names (after topic alias resolution), so a command
/// signed for one device cannot be sent to another.
pub fn signed_bytes(topic: &str, timestamp: i64, nonce: &str, body: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut ts = itoa::Buffer::new();
    let ts = ts.format(timestamp);
    out.reserve(SIGNED_DOMAIN.len() + topic.len() + ts.len() + nonce.len() + body.len() + 3);
    out.extend_from_slice(SIGNED_DOMAIN);
    out.extend_from_slice(topic.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(ts.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(nonce.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(body);
}

/// Signs a command: the reference for commanders and device makers (and the
/// `wardgate command sign` tool).
pub fn sign(key: &SigningKey, topic: &str, timestamp: i64, nonce: &str, body: &[u8]) -> [u8; 64] {
    let mut msg = Vec::new();
    signed_bytes(topic, timestamp, nonce, body, &mut msg);
    key.sign(&msg).to_bytes()
}

/// A signature as carried: standard base64 with padding (88 characters).
pub fn encode_signature(signature: &[u8; 64]) -> String {
    base64::engine::general_purpose::STANDARD.encode(signature)
}

/// Writes the MQTT 3.1.1 envelope line, `WGSIG1 {signer} {ts} {nonce} {sig}\n`,
/// into `out` (appended); the body follows it.
pub fn write_envelope_header(
    signer: &str,
    timestamp: i64,
    nonce: &str,
    signature: &[u8; 64],
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(ENVELOPE_PREFIX);
    out.extend_from_slice(signer.as_bytes());
    out.push(b' ');
    out.extend_from_slice(itoa::Buffer::new().format(timestamp).as_bytes());
    out.push(b' ');
    out.extend_from_slice(nonce.as_bytes());
    out.push(b' ');
    out.extend_from_slice(encode_signature(signature).as_bytes());
    out.push(b'\n');
}

/// `s` cut to at most `max` characters, for naming untrusted text in a fault.
fn cut(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// A signer id: 1..=64 bytes of printable ASCII, no space.
fn check_signer(s: &[u8]) -> Result<&str, SignatureFault> {
    if s.is_empty() || s.len() > MAX_SIGNER_LEN || !s.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(SignatureFault::Signer);
    }
    std::str::from_utf8(s).map_err(|_| SignatureFault::Signer)
}

/// A nonce: 8..=64 characters of `[A-Za-z0-9_-]`.
fn check_nonce(s: &[u8]) -> Result<&str, SignatureFault> {
    if !(MIN_NONCE_LEN..=MAX_NONCE_LEN).contains(&s.len())
        || !s
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(SignatureFault::Nonce);
    }
    std::str::from_utf8(s).map_err(|_| SignatureFault::Nonce)
}

/// Decimal Unix seconds: digits only, no leading zero unless exactly `0`,
/// within i64. One spelling per time, so the signed text is the parsed value.
fn parse_timestamp(s: &[u8]) -> Result<i64, SignatureFault> {
    if s.is_empty() || (s.len() > 1 && s[0] == b'0') {
        return Err(SignatureFault::Timestamp);
    }
    let mut v: i64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return Err(SignatureFault::Timestamp);
        }
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(b - b'0')))
            .ok_or(SignatureFault::Timestamp)?;
    }
    Ok(v)
}

/// Canonical standard base64 with padding, exactly 64 bytes.
fn decode_signature(s: &[u8]) -> Result<[u8; 64], SignatureFault> {
    if s.len() != SIG_B64_LEN {
        return Err(SignatureFault::SignatureEncoding);
    }
    let mut buf = [0u8; 66];
    let n = base64::engine::general_purpose::STANDARD
        .decode_slice(s, &mut buf)
        .map_err(|_| SignatureFault::SignatureEncoding)?;
    buf.get(..n)
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .ok_or(SignatureFault::SignatureEncoding)
}

/// A `[[command_signer]]`: its id, its public key, and the commanders (device
/// ids) that may send commands it signed.
#[derive(Debug, Clone)]
pub struct SignerKey {
    /// The signer id, as in `wg-signer` / the envelope.
    pub id: Arc<str>,
    /// Its Ed25519 public key.
    pub key: VerifyingKey,
    /// Device ids allowed to send commands with this signature. A stolen
    /// signature (or key) used from another device is refused.
    pub commanders: Vec<Arc<str>>,
}

/// Limits of an [`Authority`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthorityOptions {
    /// How far a command's timestamp may be from the gateway's clock, either
    /// way (`command_max_age_secs`). Also how long a nonce is remembered.
    pub max_age_secs: u64,
    /// Live nonces remembered at most, over all signers.
    pub max_nonces: usize,
    /// Devices whose command budget is tracked at most.
    pub max_budget_devices: usize,
}

impl Default for AuthorityOptions {
    fn default() -> Self {
        AuthorityOptions {
            max_age_secs: 300,
            max_nonces: 65_536,
            max_budget_devices: 100_000,
        }
    }
}

/// What a device's command budget stands at after a command was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Budget {
    /// Commands delivered in the last hour, this one included.
    pub hour_used: u32,
    /// Commands delivered in the last day, this one included; 0 when the
    /// device has no daily limit (then only the last hour is kept, so memory
    /// stays within the hourly limit).
    pub day_used: u32,
}

/// One device's delivered commands.
#[derive(Debug, Default)]
struct DeviceBudget {
    /// When each command still inside the longest tracked window was
    /// delivered, oldest first (never decreasing).
    times: VecDeque<i64>,
}

/// Command authority shared by every connection of a gateway: the signers,
/// the replay cache and the devices' command budgets. Not thread-safe by
/// itself; the proxy holds it behind a mutex (each call is short and never
/// blocks).
#[derive(Debug)]
pub struct Authority {
    opts: AuthorityOptions,
    signers: Vec<SignerKey>,
    by_id: HashMap<Arc<str>, usize>,
    /// Live nonces per signer (index into `signers`).
    nonces: Vec<HashSet<Box<str>>>,
    /// The same nonces ordered by expiry: `(expires, signer, nonce)`. Popped
    /// from the front as time passes, so forgetting costs O(expired).
    expiry: BTreeSet<(i64, usize, Box<str>)>,
    live: usize,
    /// Latest time passed to [`Authority::check_signature`].
    latest: i64,
    budgets: HashMap<Box<str>, DeviceBudget>,
    /// Reused for the signed bytes.
    scratch: Vec<u8>,
    /// The policy's signer list last followed ([`Authority::follow`]).
    following: Option<Arc<[SignerKey]>>,
}

impl Authority {
    /// An authority over `signers`. Ids are unique in a validated
    /// configuration; should one repeat, the first key is kept (the other can
    /// sign nothing).
    pub fn new(signers: Vec<SignerKey>, opts: AuthorityOptions) -> Self {
        let mut by_id = HashMap::with_capacity(signers.len());
        let mut kept = Vec::with_capacity(signers.len());
        for s in signers {
            if !by_id.contains_key(&s.id) {
                by_id.insert(s.id.clone(), kept.len());
                kept.push(s);
            }
        }
        Authority {
            opts,
            nonces: vec![HashSet::new(); kept.len()],
            signers: kept,
            by_id,
            expiry: BTreeSet::new(),
            live: 0,
            latest: i64::MIN,
            budgets: HashMap::new(),
            scratch: Vec::new(),
            following: None,
        }
    }

    /// A reload's keys and window: signers whose id stays keep the nonces
    /// they used (a replay stays a replay across a reload), removed signers'
    /// nonces go with them, budgets are kept whole. The nonce window only
    /// grows here: a nonce remembered under the longer window is kept until it
    /// expires under it.
    pub fn set_signers(&mut self, signers: Vec<SignerKey>, max_age_secs: u64) {
        let old_ids: Vec<Arc<str>> = self.signers.iter().map(|s| s.id.clone()).collect();
        let mut old_nonces = std::mem::take(&mut self.nonces);
        let old_expiry = std::mem::take(&mut self.expiry);
        let fresh = Authority::new(signers, self.opts);
        self.signers = fresh.signers;
        self.by_id = fresh.by_id;
        self.nonces = fresh.nonces;
        self.opts.max_age_secs = self.opts.max_age_secs.max(max_age_secs);
        self.live = 0;
        for (expires, old, nonce) in old_expiry {
            let Some(&new) = old_ids.get(old).and_then(|id| self.by_id.get(id)) else {
                continue;
            };
            if let Some(set) = old_nonces.get_mut(old) {
                set.remove(&nonce);
            }
            if let Some(set) = self.nonces.get_mut(new) {
                set.insert(nonce.clone());
                self.expiry.insert((expires, new, nonce));
                self.live += 1;
            }
        }
    }

    /// Follows the signers of the policy in force: `signers` is the policy's
    /// list, compared by identity, so a reload is noticed at the next command
    /// and costs nothing otherwise.
    pub fn follow(&mut self, signers: &Arc<[SignerKey]>, max_age_secs: u64) {
        if self
            .following
            .as_ref()
            .is_some_and(|f| Arc::ptr_eq(f, signers))
        {
            return;
        }
        self.set_signers(signers.to_vec(), max_age_secs);
        self.following = Some(signers.clone());
    }

    /// Remembers a nonce `signer` used, until `expires` (Unix seconds): the
    /// nonces of commands the audit log recorded before a restart, so that a
    /// command captured then is still a replay after it. False when the
    /// signer is unknown, the nonce malformed or already held, or the cache
    /// is full (a restart then remembers what fits, the newest first).
    pub fn remember(&mut self, signer: &str, nonce: &str, expires: i64) -> bool {
        let Some(&idx) = self.by_id.get(signer) else {
            return false;
        };
        if self.live >= self.opts.max_nonces
            || !(MIN_NONCE_LEN..=MAX_NONCE_LEN).contains(&nonce.len())
        {
            return false;
        }
        let Some(set) = self.nonces.get_mut(idx) else {
            return false;
        };
        if !set.insert(Box::from(nonce)) {
            return false;
        }
        self.expiry.insert((expires, idx, Box::from(nonce)));
        self.live += 1;
        true
    }

    /// The options in force.
    pub fn options(&self) -> AuthorityOptions {
        self.opts
    }

    /// Nonces remembered now (expired ones are dropped lazily, at the next check).
    pub fn nonces_held(&self) -> usize {
        self.live
    }

    /// Devices whose budget is tracked now.
    pub fn budget_devices(&self) -> usize {
        self.budgets.len()
    }

    /// Whether `env`, a command `commander` published on `topic`, may pass;
    /// the signer's id when it may. On success the nonce is remembered until
    /// it can no longer pass the time check (`timestamp + max_age_secs`).
    ///
    /// In order: the signer must be known and bound to `commander`, and the
    /// signature must verify (strictly: no malleable encodings, no weak keys);
    /// only then are time, replay and the cache's room judged, so every
    /// refusal other than [`CommandRefusal::Signature`] names a genuine
    /// signer's command.
    pub fn check_signature(
        &mut self,
        commander: &str,
        topic: &str,
        env: &Envelope<'_>,
        now_unix: i64,
    ) -> Result<Arc<str>, CommandRefusal> {
        let Some(&idx) = self.by_id.get(env.signer) else {
            return Err(CommandRefusal::Signature(format!(
                "unknown signer {:?}",
                env.signer
            )));
        };
        let signer = &self.signers[idx];
        if !signer.commanders.iter().any(|c| &**c == commander) {
            return Err(CommandRefusal::Signature(format!(
                "signer {:?} is not bound to commander {commander:?}",
                env.signer
            )));
        }
        signed_bytes(topic, env.timestamp, env.nonce, env.body, &mut self.scratch);
        let good = signer
            .key
            .verify_strict(&self.scratch, &Signature::from_bytes(&env.signature))
            .is_ok();
        // A large command's buffer is not kept for ever.
        if self.scratch.capacity() > 1 << 20 {
            self.scratch = Vec::new();
        }
        if !good {
            return Err(CommandRefusal::Signature(format!(
                "signature by {:?} does not match the topic, time, nonce and payload",
                env.signer
            )));
        }
        let id = signer.id.clone();

        self.latest = self.latest.max(now_unix);
        let max_age = i64::try_from(self.opts.max_age_secs).unwrap_or(i64::MAX);
        let ts = i128::from(env.timestamp);
        let old = i128::from(self.latest) - ts;
        let ahead = ts - i128::from(now_unix);
        if old > i128::from(max_age) || ahead > i128::from(max_age) {
            let offset = if old > i128::from(max_age) {
                old
            } else {
                -ahead
            };
            return Err(CommandRefusal::Stale {
                signer: id,
                offset_secs: i64::try_from(offset).unwrap_or(if offset < 0 {
                    i64::MIN
                } else {
                    i64::MAX
                }),
                max_age_secs: self.opts.max_age_secs,
            });
        }

        self.expire(self.latest);
        if self.nonces[idx].contains(env.nonce) {
            return Err(CommandRefusal::Replayed { signer: id });
        }
        if self.live >= self.opts.max_nonces {
            return Err(CommandRefusal::NonceCacheFull {
                signer: id,
                max_nonces: self.opts.max_nonces,
            });
        }
        let expires = env.timestamp.saturating_add(max_age);
        self.nonces[idx].insert(env.nonce.into());
        self.expiry.insert((expires, idx, env.nonce.into()));
        self.live += 1;
        Ok(id)
    }

    /// Forgets nonces that can no longer pass the time check at `now`.
    fn expire(&mut self, now: i64) {
        while let Some(first) = self.expiry.first() {
            if first.0 >= now {
                break;
            }
            if let Some((_, idx, nonce)) = self.expiry.pop_first() {
                if let Some(set) = self.nonces.get_mut(idx) {
                    set.remove(&nonce);
                }
                self.live = self.live.saturating_sub(1);
            }
        }
    }

    /// Counts one command delivered to `device` at `now_unix`, unless that
    /// would pass `per_hour` (commands in the last 3600 s) or `per_day` (the
    /// last 86400 s): then [`CommandRefusal::Budget`] and nothing is counted.
    ///
    /// A device with neither limit is not tracked (`Budget` of zeros). A new
    /// device when [`AuthorityOptions::max_budget_devices`] are tracked first
    /// evicts devices with no command in the last day; if none can go, the
    /// command is refused (failing closed: forgetting a device would give its
    /// budget back).
    pub fn spend(
        &mut self,
        device: &str,
        per_hour: Option<u32>,
        per_day: Option<u32>,
        now_unix: i64,
    ) -> Result<Budget, CommandRefusal> {
        if per_hour.is_none() && per_day.is_none() {
            return Ok(Budget::default());
        }
        if !self.budgets.contains_key(device) {
            if self.budgets.len() >= self.opts.max_budget_devices {
                self.budgets.retain(|_, b| {
                    b.times
                        .back()
                        .is_some_and(|&t| t > now_unix.saturating_sub(DAY))
                });
            }
            if self.budgets.len() >= self.opts.max_budget_devices {
                return Err(CommandRefusal::BudgetDevicesFull {
                    max_devices: self.opts.max_budget_devices,
                });
            }
        }
        let b = self.budgets.entry(device.into()).or_default();
        // Time never runs backwards for a budget: a clock stepped back does
        // not give commands back.
        let now = b.times.back().map_or(now_unix, |&t| t.max(now_unix));
        let keep = if per_day.is_some() { DAY } else { HOUR };
        let keep_from = now.saturating_sub(keep);
        while b.times.front().is_some_and(|&t| t <= keep_from) {
            b.times.pop_front();
        }
        let hour_from = now.saturating_sub(HOUR);
        let day_used = count(b.times.len());
        let hour_used = count(b.times.len() - b.times.partition_point(|&t| t <= hour_from));
        if let Some(limit) = per_hour {
            if hour_used >= limit {
                return Err(CommandRefusal::Budget {
                    window: "hour",
                    limit,
                    used: hour_used,
                });
            }
        }
        if let Some(limit) = per_day {
            if day_used >= limit {
                return Err(CommandRefusal::Budget {
                    window: "day",
                    limit,
                    used: day_used,
                });
            }
        }
        b.times.push_back(now);
        Ok(Budget {
            hour_used: hour_used.saturating_add(1),
            day_used: if per_day.is_some() {
                day_used.saturating_add(1)
            } else {
                0
            },
        })
    }

    /// Gives back the last command counted for `device`: it was refused after
    /// [`Authority::spend`] (the upstream went away, the broker refused it).
    /// Returns whether one was given back. A command counted more than an
    /// hour before `now_unix` is not "the last spend" of a refusal happening
    /// now, and is kept.
    pub fn refund(&mut self, device: &str, now_unix: i64) -> bool {
        let Some(b) = self.budgets.get_mut(device) else {
            return false;
        };
        if b.times
            .back()
            .is_none_or(|&t| t <= now_unix.saturating_sub(HOUR))
        {
            return false;
        }
        b.times.pop_back();
        if b.times.is_empty() {
            self.budgets.remove(device);
        }
        true
    }
}

/// A count of timestamps, which never exceeds a u32 limit plus one.
fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
