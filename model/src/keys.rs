//! A machine's key pair and certificate, and the signature that proves who it is.
//!
//! Both sides of authentication (design, blocks 1010-1020) use this module:
//! the agent makes the key pair at enrolment and signs challenges with it;
//! roleoutd rebuilds the same signed message to check the signature. Keeping
//! the message format in one place means the two sides cannot drift apart.
//!
//! Keys are Ed25519 (the default) or ECDSA P-256, made with `rcgen` and used
//! through `ring`. This module is pure: key files (PKCS#8 DER, mode 0600,
//! written atomically) are `roleout-store`'s.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::ids::{MachineId, Sha256};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};

/// What a machine signs is this prefix followed by the challenge token's bytes.
///
/// The prefix separates the domain: a signature made for a challenge can
/// never pass for a signature over anything else Roleout (or another
/// program using the same key) signs, and the `v1` leaves room to change
/// the format without ambiguity.
pub const CHALLENGE_CONTEXT: &[u8] = b"roleout-challenge-v1\0";

/// What a machine signs with its current key to prove, for a challenge it
/// was given, that it presents a new certificate (key rotation or
/// renewal): this prefix, the challenge token, a zero byte, and the new
/// certificate's SHA-256 in lowercase hex ([`key_proof_message`]).
pub const KEY_PROOF_CONTEXT: &[u8] = b"roleout-key-proof-v1\0";

/// How long a machine certificate made at enrolment stays valid: one year.
pub const DEFAULT_CERTIFICATE_VALIDITY: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Why a key could not be made, stored, loaded or used.
///
/// No variant carries key material: these messages go to logs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key pair generator failed.
    #[error("could not generate a {algorithm} key pair: {reason}")]
    Generate {
        /// The requested algorithm.
        algorithm: KeyAlgorithm,
        /// What the generator said.
        reason: String,
    },
    /// The certificate could not be made.
    #[error("could not make a certificate for machine {machine}: {reason}")]
    Certificate {
        /// The machine it was for.
        machine: MachineId,
        /// What went wrong.
        reason: String,
    },
    /// The requested validity period cannot be expressed.
    #[error("certificate validity is out of range: {reason}")]
    Validity {
        /// What is out of range.
        reason: &'static str,
    },
    /// The bytes are not a private key Roleout can use.
    #[error(
        "not a PKCS#8 Ed25519 or ECDSA P-256 private key \
         (as Ed25519: {ed25519}; as P-256: {p256})"
    )]
    Unrecognized {
        /// Why `ring` refused it as Ed25519.
        ed25519: String,
        /// Why `ring` refused it as ECDSA P-256.
        p256: String,
    },
    /// `ring` failed to sign (it only fails when the system RNG fails).
    #[error("signing failed (no randomness available from the system)")]
    Sign,
}

/// The signature algorithm of a machine key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    /// Ed25519 (RFC 8032): small, fast, deterministic. The default.
    #[default]
    Ed25519,
    /// ECDSA over NIST P-256 with SHA-256, signatures ASN.1 (DER) encoded,
    /// for sites whose policy asks for NIST curves.
    EcdsaP256,
}

impl KeyAlgorithm {
    /// The name used in configuration and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ed25519 => "ed25519",
            Self::EcdsaP256 => "ecdsa-p256",
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a string does not name a key algorithm.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown key algorithm {0:?}: expected \"ed25519\" or \"ecdsa-p256\"")]
pub struct UnknownAlgorithm(pub String);

impl FromStr for KeyAlgorithm {
    type Err = UnknownAlgorithm;
    fn from_str(value: &str) -> Result<Self, UnknownAlgorithm> {
        match value {
            "ed25519" => Ok(Self::Ed25519),
            "ecdsa-p256" => Ok(Self::EcdsaP256),
            other => Err(UnknownAlgorithm(other.chars().take(80).collect())),
        }
    }
}

/// A freshly made machine identity: private key and self-signed certificate.
///
/// The certificate goes where the admin approves it (the machine's
/// directory entry); the private key never leaves the machine.
pub struct MachineIdentity {
    algorithm: KeyAlgorithm,
    private_key_pkcs8: Vec<u8>,
    certificate_der: Vec<u8>,
    certificate_pem: String,
}

impl MachineIdentity {
    /// The key's algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// The private key as PKCS#8 DER; store it with
    /// `roleout_store::keys::write_private_key`.
    pub fn private_key_pkcs8(&self) -> &[u8] {
        &self.private_key_pkcs8
    }

    /// The self-signed certificate, DER.
    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate_der
    }

    /// The self-signed certificate, PEM (for a file the admin reads).
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// The private key, ready to sign.
    pub fn signing_key(&self) -> Result<MachineKey, KeyError> {
        MachineKey::from_pkcs8(&self.private_key_pkcs8)
    }
}

impl fmt::Debug for MachineIdentity {
    // The private key is left out on purpose: Debug output ends up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MachineIdentity")
            .field("algorithm", &self.algorithm)
            .field("private_key_pkcs8", &"<redacted>")
            .field("certificate_der_len", &self.certificate_der.len())
            .finish()
    }
}

/// Makes a key pair and a self-signed certificate for `machine`, valid from
/// `valid_from` for `valid_for` (usually now and
/// [`DEFAULT_CERTIFICATE_VALIDITY`]).
///
/// The certificate names the machine both as its subject common name and as
/// a DNS subject alternative name.
pub fn generate_identity(
    machine: &MachineId,
    algorithm: KeyAlgorithm,
    valid_from: SystemTime,
    valid_for: Duration,
) -> Result<MachineIdentity, KeyError> {
    let generator = match algorithm {
        KeyAlgorithm::Ed25519 => &rcgen::PKCS_ED25519,
        KeyAlgorithm::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
    };
    let key_pair = KeyPair::generate_for(generator).map_err(|error| KeyError::Generate {
        algorithm,
        reason: error.to_string(),
    })?;
    certify(machine, algorithm, &key_pair, valid_from, valid_for)
}

/// A new self-signed certificate for the key `pkcs8` already has (renewal:
/// same key, new validity), valid from `valid_from` for `valid_for`.
pub fn renew_identity(
    machine: &MachineId,
    pkcs8: &[u8],
    valid_from: SystemTime,
    valid_for: Duration,
) -> Result<MachineIdentity, KeyError> {
    let algorithm = MachineKey::from_pkcs8(pkcs8)?.algorithm();
    let key_pair = KeyPair::try_from(pkcs8).map_err(|error| KeyError::Generate {
        algorithm,
        reason: format!("the key cannot be read back for a new certificate: {error}"),
    })?;
    certify(machine, algorithm, &key_pair, valid_from, valid_for)
}

fn certify(
    machine: &MachineId,
    algorithm: KeyAlgorithm,
    key_pair: &KeyPair,
    valid_from: SystemTime,
    valid_for: Duration,
) -> Result<MachineIdentity, KeyError> {
    let valid_until = valid_from
        .checked_add(valid_for)
        .ok_or(KeyError::Validity {
            reason: "the end of the validity period overflows the clock",
        })?;
    let certificate_error = |error: rcgen::Error| KeyError::Certificate {
        machine: machine.clone(),
        reason: error.to_string(),
    };
    let mut params =
        CertificateParams::new(vec![machine.as_str().to_owned()]).map_err(certificate_error)?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, machine.as_str());
    params.distinguished_name = name;
    params.not_before = time::OffsetDateTime::from(valid_from);
    params.not_after = time::OffsetDateTime::from(valid_until);
    let certificate = params.self_signed(key_pair).map_err(certificate_error)?;
    Ok(MachineIdentity {
        algorithm,
        private_key_pkcs8: key_pair.serialize_der(),
        certificate_der: certificate.der().to_vec(),
        certificate_pem: certificate.pem(),
    })
}

/// A machine's private key, loaded and ready to sign challenges.
pub struct MachineKey {
    inner: MachineKeyInner,
    random: SystemRandom,
}

enum MachineKeyInner {
    Ed25519(Ed25519KeyPair),
    EcdsaP256(EcdsaKeyPair),
}

impl MachineKey {
    /// Loads a PKCS#8 private key, Ed25519 or ECDSA P-256 (the algorithm is
    /// recognised from the key itself).
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, KeyError> {
        let random = SystemRandom::new();
        let ed25519 = match Ed25519KeyPair::from_pkcs8(pkcs8) {
            Ok(key) => {
                return Ok(Self {
                    inner: MachineKeyInner::Ed25519(key),
                    random,
                });
            }
            Err(rejected) => rejected.to_string(),
        };
        match EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8, &random) {
            Ok(key) => Ok(Self {
                inner: MachineKeyInner::EcdsaP256(key),
                random,
            }),
            Err(rejected) => Err(KeyError::Unrecognized {
                ed25519,
                p256: rejected.to_string(),
            }),
        }
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        match self.inner {
            MachineKeyInner::Ed25519(_) => KeyAlgorithm::Ed25519,
            MachineKeyInner::EcdsaP256(_) => KeyAlgorithm::EcdsaP256,
        }
    }

    /// The public key as `ring` verifies it (Ed25519: 32 bytes; P-256: the
    /// 65-byte uncompressed point), the same bytes the certificate carries.
    pub fn public_key(&self) -> &[u8] {
        match &self.inner {
            MachineKeyInner::Ed25519(key) => key.public_key().as_ref(),
            MachineKeyInner::EcdsaP256(key) => key.public_key().as_ref(),
        }
    }

    /// Signs the challenge `token` exactly as roleoutd expects: the bytes of
    /// [`challenge_message`].
    pub fn sign_challenge(&self, token: &str) -> Result<Vec<u8>, KeyError> {
        self.sign(&challenge_message(token))
    }

    /// Signs, for the challenge `token`, that the certificate whose SHA-256
    /// is `certificate` is to replace this key's ([`key_proof_message`]).
    pub fn sign_key_proof(&self, token: &str, certificate: &Sha256) -> Result<Vec<u8>, KeyError> {
        self.sign(&key_proof_message(token, certificate))
    }

    /// Signs raw `message` bytes. Prefer [`Self::sign_challenge`]: a raw
    /// signature carries no domain separation.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.inner {
            MachineKeyInner::Ed25519(key) => Ok(key.sign(message).as_ref().to_vec()),
            MachineKeyInner::EcdsaP256(key) => key
                .sign(&self.random, message)
                .map(|signature| signature.as_ref().to_vec())
                .map_err(|_| KeyError::Sign),
        }
    }
}

impl fmt::Debug for MachineKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MachineKey")
            .field("algorithm", &self.algorithm())
            .finish_non_exhaustive()
    }
}

/// The exact bytes a machine signs to answer the challenge `token`:
/// [`CHALLENGE_CONTEXT`] followed by the token's text.
pub fn challenge_message(token: &str) -> Vec<u8> {
    let mut message = Vec::with_capacity(CHALLENGE_CONTEXT.len() + token.len());
    message.extend_from_slice(CHALLENGE_CONTEXT);
    message.extend_from_slice(token.as_bytes());
    message
}

/// The exact bytes a machine signs with its current key to present the
/// certificate whose SHA-256 is `certificate` for the challenge `token`.
pub fn key_proof_message(token: &str, certificate: &Sha256) -> Vec<u8> {
    let mut message =
        Vec::with_capacity(KEY_PROOF_CONTEXT.len() + token.len() + 1 + certificate.as_str().len());
    message.extend_from_slice(KEY_PROOF_CONTEXT);
    message.extend_from_slice(token.as_bytes());
    message.push(0);
    message.extend_from_slice(certificate.as_str().as_bytes());
    message
}

/// Seconds since the Unix epoch, the unit of every time Roleout puts in a
/// token or an envelope. A clock set before 1970 counts as 0.
pub fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|since| since.as_secs())
        .unwrap_or(0)
}

// In tests a panic is the failure report.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn machine() -> MachineId {
        MachineId::new("ws-0001").unwrap()
    }

    #[test]
    fn both_algorithms_generate_keys_that_load_and_sign() {
        for algorithm in [KeyAlgorithm::Ed25519, KeyAlgorithm::EcdsaP256] {
            let identity = generate_identity(
                &machine(),
                algorithm,
                SystemTime::now(),
                DEFAULT_CERTIFICATE_VALIDITY,
            )
            .unwrap();
            let key = identity.signing_key().unwrap();
            assert_eq!(key.algorithm(), algorithm);
            let signature = key.sign_challenge("token").unwrap();
            let verifier: &dyn ring::signature::VerificationAlgorithm = match algorithm {
                KeyAlgorithm::Ed25519 => &ring::signature::ED25519,
                KeyAlgorithm::EcdsaP256 => &ring::signature::ECDSA_P256_SHA256_ASN1,
            };
            let public_key = ring::signature::UnparsedPublicKey::new(verifier, key.public_key());
            public_key
                .verify(&challenge_message("token"), &signature)
                .unwrap();
            assert!(public_key.verify(b"token", &signature).is_err());
            assert!(
                identity
                    .certificate_pem()
                    .starts_with("-----BEGIN CERTIFICATE-----")
            );
        }
    }

    #[test]
    fn the_challenge_message_is_prefixed() {
        assert_eq!(
            challenge_message("ab"),
            b"roleout-challenge-v1\0ab".to_vec()
        );
    }

    #[test]
    fn algorithm_names_round_trip() {
        for algorithm in [KeyAlgorithm::Ed25519, KeyAlgorithm::EcdsaP256] {
            assert_eq!(
                algorithm.as_str().parse::<KeyAlgorithm>().unwrap(),
                algorithm
            );
        }
        assert!("rsa".parse::<KeyAlgorithm>().is_err());
    }

    #[test]
    fn garbage_is_not_a_key() {
        let error = MachineKey::from_pkcs8(b"not a key").unwrap_err();
        assert!(matches!(error, KeyError::Unrecognized { .. }), "{error}");
    }

    #[test]
    fn debug_output_hides_the_private_key() {
        let identity = generate_identity(
            &machine(),
            KeyAlgorithm::Ed25519,
            SystemTime::now(),
            DEFAULT_CERTIFICATE_VALIDITY,
        )
        .unwrap();
        let shown = format!("{identity:?}");
        assert!(shown.contains("<redacted>"));
        let key_bytes = format!("{:?}", identity.private_key_pkcs8());
        assert!(!shown.contains(&key_bytes));
    }
}
