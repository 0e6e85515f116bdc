//! Checking a machine's signature against the certificate registered in its
//! directory entry (block 1015), and the policy around it: the machine must
//! be enabled and its key approved, and the certificate within its dates.
//!
//! Trust comes from the directory, not from a certificate authority: the
//! certificate is self-signed by the machine at enrolment and an admin
//! approved it. So this module does not check the certificate's own
//! signature or issuer, only that the key it carries made the signature.
//!
//! Accepted keys are exactly the two the installer makes: Ed25519 and ECDSA
//! P-256 (signatures ASN.1 DER encoded, SHA-256). Anything else is refused
//! by name, never tried.

use std::time::SystemTime;

use ring::signature::{ECDSA_P256_SHA256_ASN1, ED25519, UnparsedPublicKey, VerificationAlgorithm};
use roleout_model::keys::unix_seconds;
use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_SIG_ED25519};
use x509_parser::prelude::{FromDer, X509Certificate};

/// Why a machine's signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateError {
    /// The machine's entry is disabled.
    #[error("the machine is disabled in the directory")]
    Disabled,
    /// The machine's key has not been approved by an admin.
    #[error("the machine's key has not been approved by an admin")]
    NotApproved,
    /// The entry holds no certificate.
    #[error("the machine's directory entry holds no certificate")]
    Missing,
    /// The registered certificate is not a DER X.509 certificate.
    #[error("the machine's registered certificate cannot be parsed: {reason}")]
    Unparsable {
        /// What the parser said.
        reason: String,
    },
    /// The certificate's validity has not begun.
    #[error("the machine's certificate is not valid before {not_before}")]
    NotYetValid {
        /// Its notBefore.
        not_before: String,
    },
    /// The certificate's validity has ended.
    #[error("the machine's certificate expired on {not_after}")]
    Expired {
        /// Its notAfter.
        not_after: String,
    },
    /// The certificate's key is of an algorithm Roleout does not accept.
    #[error(
        "the machine's certificate has a key of algorithm {oid}; only Ed25519 (1.3.101.112) \
         and ECDSA P-256 are accepted"
    )]
    UnsupportedAlgorithm {
        /// The SPKI algorithm OID.
        oid: String,
    },
    /// The certificate's EC key is on a curve Roleout does not accept.
    #[error(
        "the machine's certificate has an EC key on curve {curve}; only P-256 \
         (1.2.840.10045.3.1.7) is accepted"
    )]
    UnsupportedCurve {
        /// The curve OID, or what stands in its place.
        curve: String,
    },
    /// The signature does not verify with the registered key.
    #[error(
        "the signature does not verify with the machine's registered key (made by \
         another key, or over another message)"
    )]
    BadSignature,
}

/// What the directory says about a machine, as authentication needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredMachine {
    /// Its certificate (`userCertificate;binary`), DER; empty if none.
    pub certificate_der: Vec<u8>,
    /// Whether the entry is enabled.
    pub enabled: bool,
    /// Whether an admin approved its key.
    pub approved: bool,
}

/// Checks that the machine may authenticate and that `signature` over
/// `message` was made by the key of its registered certificate, valid at
/// `now`.
///
/// Checks in order: enabled, approved, certificate present and parsable,
/// within its validity dates, key algorithm accepted, signature.
pub fn verify_machine_signature(
    registered: &RegisteredMachine,
    message: &[u8],
    signature: &[u8],
    now: SystemTime,
) -> Result<(), CertificateError> {
    // The signature is checked first: only a caller that holds the key
    // learns anything of the machine's state (disabled, not approved, an
    // expired certificate). Without a certificate there is nothing to hold:
    // refused as a wrong key is.
    if registered.certificate_der.is_empty() {
        return Err(CertificateError::BadSignature);
    }
    let (rest, certificate) =
        X509Certificate::from_der(&registered.certificate_der).map_err(|error| {
            CertificateError::Unparsable {
                reason: error.to_string(),
            }
        })?;
    if !rest.is_empty() {
        return Err(CertificateError::Unparsable {
            reason: format!("{} bytes follow the certificate", rest.len()),
        });
    }
    let algorithm = verification_algorithm(&certificate)?;
    // ring wants the key itself (the BIT STRING's contents: 32 bytes for
    // Ed25519, the uncompressed point for P-256), not the whole SPKI.
    let public_key = &certificate.public_key().subject_public_key.data;
    UnparsedPublicKey::new(algorithm, public_key.as_ref())
        .verify(message, signature)
        .map_err(|_| CertificateError::BadSignature)?;
    if !registered.enabled {
        return Err(CertificateError::Disabled);
    }
    if !registered.approved {
        return Err(CertificateError::NotApproved);
    }
    check_dates(&certificate, now)
}

fn check_dates(certificate: &X509Certificate<'_>, now: SystemTime) -> Result<(), CertificateError> {
    // Seconds past 2^63 are not a date any certificate holds.
    let now = i64::try_from(unix_seconds(now)).unwrap_or(i64::MAX);
    let validity = certificate.validity();
    if now < validity.not_before.timestamp() {
        return Err(CertificateError::NotYetValid {
            not_before: validity.not_before.to_string(),
        });
    }
    if now > validity.not_after.timestamp() {
        return Err(CertificateError::Expired {
            not_after: validity.not_after.to_string(),
        });
    }
    Ok(())
}

fn verification_algorithm(
    certificate: &X509Certificate<'_>,
) -> Result<&'static dyn VerificationAlgorithm, CertificateError> {
    let algorithm = &certificate.public_key().algorithm;
    if algorithm.algorithm == OID_SIG_ED25519 {
        return Ok(&ED25519);
    }
    if algorithm.algorithm != OID_KEY_TYPE_EC_PUBLIC_KEY {
        return Err(CertificateError::UnsupportedAlgorithm {
            oid: algorithm.algorithm.to_id_string(),
        });
    }
    // For id-ecPublicKey the parameters name the curve (RFC 5480: a named
    // curve OID; implicit or specified curves are not accepted).
    let curve = match &algorithm.parameters {
        None => {
            return Err(CertificateError::UnsupportedCurve {
                curve: "none (no curve parameters)".to_owned(),
            });
        }
        Some(parameters) => {
            parameters
                .as_oid()
                .map_err(|_| CertificateError::UnsupportedCurve {
                    curve: "not a named curve".to_owned(),
                })?
        }
    };
    if curve != OID_EC_P256 {
        return Err(CertificateError::UnsupportedCurve {
            curve: curve.to_id_string(),
        });
    }
    Ok(&ECDSA_P256_SHA256_ASN1)
}

// In tests a panic is the failure report.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn registered(certificate_der: Vec<u8>) -> RegisteredMachine {
        RegisteredMachine {
            certificate_der,
            enabled: true,
            approved: true,
        }
    }

    #[test]
    fn garbage_and_trailing_bytes_are_unparsable() {
        let now = SystemTime::now();
        let error =
            verify_machine_signature(&registered(b"junk".to_vec()), b"m", b"s", now).unwrap_err();
        assert!(
            matches!(error, CertificateError::Unparsable { .. }),
            "{error}"
        );

        let machine = roleout_model::ids::MachineId::new("ws-1").unwrap();
        let identity = roleout_model::keys::generate_identity(
            &machine,
            roleout_model::keys::KeyAlgorithm::Ed25519,
            now,
            roleout_model::keys::DEFAULT_CERTIFICATE_VALIDITY,
        )
        .unwrap();
        let mut der = identity.certificate_der().to_vec();
        der.push(0);
        let error = verify_machine_signature(&registered(der), b"m", b"s", now).unwrap_err();
        assert_eq!(
            error,
            CertificateError::Unparsable {
                reason: "1 bytes follow the certificate".to_owned()
            }
        );
    }

    #[test]
    fn an_entry_without_a_certificate_is_refused_as_a_wrong_key_is() {
        let error =
            verify_machine_signature(&registered(Vec::new()), b"m", b"s", SystemTime::now())
                .unwrap_err();
        assert_eq!(error, CertificateError::BadSignature);
    }
}
