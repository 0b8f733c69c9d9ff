//! Command authority for MQTT command topics: signatures, replay and budgets.
//! (Placeholder API until the module lands; every check refuses.)

use std::fmt;
use std::sync::Arc;
use wardgate_proto::mqtt::codec::Properties;

/// A signed command's envelope.
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    /// Signer id.
    pub signer: &'a str,
    /// Unix seconds.
    pub timestamp: i64,
    /// Nonce.
    pub nonce: &'a str,
    /// Ed25519 signature.
    pub signature: [u8; 64],
    /// The command.
    pub body: &'a [u8],
}

/// A malformed envelope.
#[derive(Debug, Clone)]
pub struct SignatureFault(pub String);

impl fmt::Display for SignatureFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// MQTT 5 user properties.
pub fn envelope_v5<'a>(
    _props: &Properties<'a>,
    _payload: &'a [u8],
) -> Result<Option<Envelope<'a>>, SignatureFault> {
    Ok(None)
}

/// The 3.1.1 payload envelope.
pub fn envelope_payload(_payload: &[u8]) -> Result<Option<Envelope<'_>>, SignatureFault> {
    Ok(None)
}

/// A signer.
#[derive(Debug, Clone)]
pub struct SignerKey {
    /// Id.
    pub id: Arc<str>,
    /// Key.
    pub key: ed25519_dalek::VerifyingKey,
    /// Commanders.
    pub commanders: Vec<Arc<str>>,
}

/// Options.
#[derive(Debug, Clone, Copy)]
pub struct AuthorityOptions {
    /// Window.
    pub max_age_secs: u64,
    /// Nonces.
    pub max_nonces: usize,
    /// Devices.
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

/// Budget used.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Hour.
    pub hour_used: u32,
    /// Day.
    pub day_used: u32,
}

/// Why a command is refused.
#[derive(Debug, Clone)]
pub enum CommandRefusal {
    /// Bad signature.
    Signature(String),
}

impl CommandRefusal {
    /// Its rule.
    pub fn rule(&self) -> crate::rules::Rule {
        crate::rules::MQTT_COMMAND_SIGNATURE
    }
}

impl fmt::Display for CommandRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandRefusal::Signature(s) => f.write_str(s),
        }
    }
}

/// Shared authority state.
#[derive(Debug)]
pub struct Authority {
    _signers: Vec<SignerKey>,
}

impl Authority {
    /// New.
    pub fn new(signers: Vec<SignerKey>, _opts: AuthorityOptions) -> Self {
        Authority { _signers: signers }
    }

    /// Checks a signature.
    pub fn check_signature(
        &mut self,
        _commander: &str,
        _topic: &str,
        _env: &Envelope<'_>,
        _now_unix: i64,
    ) -> Result<Arc<str>, CommandRefusal> {
        Err(CommandRefusal::Signature("not implemented".into()))
    }

    /// Spends budget.
    pub fn spend(
        &mut self,
        _device: &str,
        _per_hour: Option<u32>,
        _per_day: Option<u32>,
        _now_unix: i64,
    ) -> Result<Budget, CommandRefusal> {
        Ok(Budget {
            hour_used: 0,
            day_used: 0,
        })
    }
}

/// Signs a command.
pub fn sign(
    key: &ed25519_dalek::SigningKey,
    topic: &str,
    timestamp: i64,
    nonce: &str,
    body: &[u8],
) -> [u8; 64] {
    use ed25519_dalek::Signer;
    let mut m = format!("wardgate-command-v1\n{topic}\n{timestamp}\n{nonce}\n").into_bytes();
    m.extend_from_slice(body);
    key.sign(&m).to_bytes()
}
