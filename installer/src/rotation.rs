//! A new key or certificate for an enrolled machine, vouched for by the
//! key it has now: `roleout rotate-key`, `roleout renew-certificate`, and
//! the renewal `roleout install` makes when the certificate nears its end.
//!
//! The machine asks roleoutd for a challenge and signs, with its current
//! key, the key-proof message of that challenge and the new certificate's
//! SHA-256 (`keys::key_proof_message`); roleoutd checks it against the
//! certificate in the machine's entry and swaps the certificate in one
//! conditional write. The machine stays approved: no admin is needed, and
//! nobody without the current key can do the same.
//!
//! Crash safety: the new key and certificate are written next to the
//! current ones (`machine.key.new`, `machine.pem.new`) before roleoutd is
//! asked, and moved over them only after it accepted. A rotation cut short
//! after roleoutd accepted leaves the new files; the next rotation first
//! asks roleoutd whether it holds the pending certificate (an enrolment
//! that presents a key the entry already holds writes nothing and answers
//! its status) and finishes the move if so, or drops them if not.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use roleout_model::ids::Sha256;
use roleout_model::protocol::{EnrollRequest, EnrolmentStatus, ErrorCode, KeyProof, MachineFacts};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::client;
use crate::engine::EngineError;
use crate::engine::identity::{
    Identity, MACHINE_CERTIFICATE_FILE, MACHINE_KEY_FILE, SERVER_CERTIFICATE_FILE,
};
use crate::engine::source::SourceError;
use crate::state::atomic;
use roleout_model::keys::{self, DEFAULT_CERTIFICATE_VALIDITY, KeyAlgorithm, MachineIdentity};

/// `install` renews the machine certificate when less than this is left
/// of it.
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// What was done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    /// The SHA-256 of the certificate roleoutd now holds for the machine.
    pub fingerprint: Sha256,
    /// The end of its validity.
    pub not_after: SystemTime,
}

fn config(message: impl Into<String>) -> EngineError {
    EngineError::Config(message.into())
}

fn pending(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".new");
    PathBuf::from(name)
}

/// The DER of the PEM certificate at `path`.
fn read_certificate(path: &Path) -> Result<Vec<u8>, EngineError> {
    let text = fs::read(path)
        .map_err(|error| config(format!("cannot read {}: {error}", path.display())))?;
    let parsed = ureq::tls::Certificate::from_pem(&text)
        .map_err(|error| config(format!("{}: {error}", path.display())))?;
    Ok(parsed.der().to_vec())
}

/// When the certificate `der` stops being valid.
pub fn not_after(der: &[u8]) -> Result<SystemTime, String> {
    let (_, certificate) =
        X509Certificate::from_der(der).map_err(|error| format!("not a certificate: {error}"))?;
    let seconds = certificate.validity().not_after.timestamp();
    let seconds = u64::try_from(seconds).map_err(|_| "it ends before 1970".to_owned())?;
    Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds))
}

/// When this machine's certificate (in `state_dir`) stops being valid.
pub fn certificate_not_after(state_dir: &Path) -> Result<SystemTime, EngineError> {
    let path = state_dir.join(MACHINE_CERTIFICATE_FILE);
    not_after(&read_certificate(&path)?)
        .map_err(|reason| config(format!("{}: {reason}", path.display())))
}

/// Connection details of the enrolled machine in `state_dir`.
struct Enrolled {
    identity: Identity,
    agent: ureq::Agent,
}

fn enrolled(state_dir: &Path) -> Result<Enrolled, EngineError> {
    let identity = Identity::load(state_dir).map_err(|error| config(error.to_string()))?;
    let pem_path = state_dir.join(SERVER_CERTIFICATE_FILE);
    let pem = fs::read(&pem_path)
        .map_err(|error| config(format!("cannot read {}: {error}", pem_path.display())))?;
    let agent = client::pinned_agent(&pem)?;
    Ok(Enrolled { identity, agent })
}

/// Finishes or drops a rotation a crash cut short (see the module
/// documentation).
fn settle_pending(
    state_dir: &Path,
    enrolled: &Enrolled,
    facts: &MachineFacts,
) -> Result<(), EngineError> {
    let key_path = state_dir.join(MACHINE_KEY_FILE);
    let certificate_path = state_dir.join(MACHINE_CERTIFICATE_FILE);
    let (new_key, new_certificate) = (pending(&key_path), pending(&certificate_path));
    if !new_certificate.exists() {
        let _ = fs::remove_file(&new_key);
        return Ok(());
    }
    let der = read_certificate(&new_certificate)?;
    let request = EnrollRequest {
        machine: enrolled.identity.enrolment.machine.clone(),
        certificate: der.into(),
        enrolment_token: None,
        facts: facts.clone(),
        proof: None,
    };
    match client::first_reachable(&enrolled.identity.enrolment.servers(), |server| {
        client::enroll(&enrolled.agent, server, &request)
    }) {
        // roleoutd holds the pending certificate: the rotation went through.
        Ok(_) => install_pending(state_dir),
        Err(SourceError::Refused {
            code: ErrorCode::KeyConflict,
            ..
        }) => {
            let _ = fs::remove_file(&new_key);
            let _ = fs::remove_file(&new_certificate);
            Ok(())
        }
        Err(error) => Err(error.into()),
    }
}

/// Moves the pending key (if any) and certificate over the current ones:
/// the key first, so that a crash in between leaves a key that matches
/// the certificate roleoutd holds.
fn install_pending(state_dir: &Path) -> Result<(), EngineError> {
    for name in [MACHINE_KEY_FILE, MACHINE_CERTIFICATE_FILE] {
        let path = state_dir.join(name);
        let new = pending(&path);
        if new.exists() {
            atomic::rename_durably(&new, &path).map_err(|error| config(error.to_string()))?;
        }
    }
    Ok(())
}

/// Presents `new` (with its key when `new_key` is true: a rotation;
/// without, a renewal of the same key) to roleoutd, vouched for by the
/// current key, and installs it once roleoutd accepted.
fn present(
    state_dir: &Path,
    new: &MachineIdentity,
    new_key: bool,
    facts: &MachineFacts,
) -> Result<Presented, EngineError> {
    let enrolled = enrolled(state_dir)?;
    settle_pending(state_dir, &enrolled, facts)?;
    // settle_pending may have moved a pending key in: sign with the key on
    // disk now.
    let current = roleout_store::keys::read_machine_key(&state_dir.join(MACHINE_KEY_FILE))
        .map_err(|error| config(error.to_string()))?;
    let key_path = state_dir.join(MACHINE_KEY_FILE);
    let certificate_path = state_dir.join(MACHINE_CERTIFICATE_FILE);
    if new_key {
        roleout_store::keys::write_private_key(&pending(&key_path), new.private_key_pkcs8())
            .map_err(|error| config(error.to_string()))?;
    }
    atomic::write_atomic(
        &pending(&certificate_path),
        new.certificate_pem().as_bytes(),
        0o644,
    )
    .map_err(|error| config(error.to_string()))?;
    let machine = enrolled.identity.enrolment.machine.clone();
    let fingerprint = Sha256::of(new.certificate_der());
    // The first roleoutd of the installation that answers takes the proof.
    let (server, token) =
        client::first_reachable(&enrolled.identity.enrolment.servers(), |server| {
            client::challenge(&enrolled.agent, server, &machine)
                .map(|token| (server.to_owned(), token))
        })?;
    let signature = current
        .sign_key_proof(&token, &fingerprint)
        .map_err(|error| config(error.to_string()))?;
    let request = EnrollRequest {
        machine,
        certificate: new.certificate_der().to_vec().into(),
        enrolment_token: None,
        facts: facts.clone(),
        proof: Some(KeyProof {
            token,
            signature: signature.into(),
        }),
    };
    let response = match client::enroll(&enrolled.agent, &server, &request) {
        Ok(response) => response,
        Err(error) => {
            // Refused: the current key stays; the pending files go.
            if matches!(error, SourceError::Refused { .. }) {
                let _ = fs::remove_file(pending(&key_path));
                let _ = fs::remove_file(pending(&certificate_path));
            }
            return Err(error.into());
        }
    };
    install_pending(state_dir)?;
    if response.status != EnrolmentStatus::Approved {
        return Err(config(format!(
            "roleoutd recorded the new certificate but answered {:?}: {}",
            response.status, response.message
        )));
    }
    Ok(Presented {
        fingerprint,
        not_after: not_after(new.certificate_der()).map_err(config)?,
    })
}

/// `roleout rotate-key`: a new key pair of `algorithm`, with a certificate
/// valid for a year.
pub fn rotate_key(
    state_dir: &Path,
    algorithm: KeyAlgorithm,
    facts: &MachineFacts,
) -> Result<Presented, EngineError> {
    let machine = Identity::load(state_dir)
        .map_err(|error| config(error.to_string()))?
        .enrolment
        .machine;
    let new = keys::generate_identity(
        &machine,
        algorithm,
        SystemTime::now(),
        DEFAULT_CERTIFICATE_VALIDITY,
    )
    .map_err(|error| config(error.to_string()))?;
    present(state_dir, &new, true, facts)
}

/// `roleout renew-certificate`: a new certificate for the current key,
/// valid for a year from now.
pub fn renew_certificate(state_dir: &Path, facts: &MachineFacts) -> Result<Presented, EngineError> {
    let machine = Identity::load(state_dir)
        .map_err(|error| config(error.to_string()))?
        .enrolment
        .machine;
    let pkcs8 = roleout_store::keys::read_private_key(&state_dir.join(MACHINE_KEY_FILE))
        .map_err(|error| config(error.to_string()))?;
    let new = keys::renew_identity(
        &machine,
        &pkcs8,
        SystemTime::now(),
        DEFAULT_CERTIFICATE_VALIDITY,
    )
    .map_err(|error| config(error.to_string()))?;
    present(state_dir, &new, false, facts)
}

/// Renews the certificate when less than [`RENEW_BEFORE`] of it is left
/// at `now`; `None` when it is not due. The machine's facts are read
/// (`facts`) only when it is.
pub fn renew_if_due(
    state_dir: &Path,
    now: SystemTime,
    facts: impl FnOnce() -> MachineFacts,
) -> Result<Option<Presented>, EngineError> {
    let ends = certificate_not_after(state_dir)?;
    if ends > now + RENEW_BEFORE {
        return Ok(None);
    }
    renew_certificate(state_dir, &facts()).map(Some)
}

/// What following roleoutd's announced rotation added.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Followed {
    /// Builder keys newly trusted.
    pub keys: usize,
    /// TLS certificates newly trusted.
    pub certificates: usize,
}

/// Reads roleoutd's announcement (`GET /v1/trust`) and trusts from now on
/// every builder key and TLS certificate endorsed, through a chain of
/// endorsements, by the builder key this machine pinned (see roleoutd's
/// `server::rotation`). An endorsement that does not verify is ignored;
/// nothing is ever un-trusted here.
pub fn follow_server_rotation(state_dir: &Path) -> Result<Followed, EngineError> {
    use ring::signature::{ED25519, UnparsedPublicKey};
    use roleout_model::protocol::{certificate_endorsement_message, key_endorsement_message};

    let enrolled = enrolled(state_dir)?;
    let announcement = client::first_reachable(&enrolled.identity.enrolment.servers(), |server| {
        client::trust(&enrolled.agent, server)
    })?;
    let mut trusted: Vec<roleout_model::protocol::signing::PinnedKey> =
        std::iter::once(enrolled.identity.builder_key)
            .chain(enrolled.identity.endorsed_keys.iter().copied())
            .collect();
    let known = trusted.len();
    let verifies =
        |signer: &roleout_model::protocol::signing::PinnedKey, message: &[u8], signature: &[u8]| {
            UnparsedPublicKey::new(&ED25519, signer.as_bytes())
                .verify(message, signature)
                .is_ok()
        };
    // Endorsements may come in any order: go round until nothing new.
    loop {
        let mut added = false;
        for endorsement in &announcement.builder_keys {
            let Ok(bytes) = <[u8; 32]>::try_from(endorsement.public_key.as_bytes()) else {
                continue;
            };
            let key = roleout_model::protocol::signing::PinnedKey::from_bytes(bytes);
            if trusted.contains(&key) {
                continue;
            }
            let signer = trusted
                .iter()
                .find(|trusted| trusted.key_id() == endorsement.endorsed_by)
                .copied();
            if signer.is_some_and(|signer| {
                verifies(
                    &signer,
                    &key_endorsement_message(key.as_bytes()),
                    endorsement.signature.as_bytes(),
                )
            }) {
                trusted.push(key);
                added = true;
            }
        }
        if !added {
            break;
        }
    }
    let mut followed = Followed {
        keys: trusted.len() - known,
        certificates: 0,
    };
    if followed.keys > 0 {
        let text: String = trusted[1..]
            .iter()
            .map(|key| format!("{}\n", key.to_base64()))
            .collect();
        atomic::write_atomic(
            &state_dir.join(crate::engine::identity::ENDORSED_KEYS_FILE),
            text.as_bytes(),
            0o644,
        )
        .map_err(|error| config(error.to_string()))?;
    }
    let pem_path = state_dir.join(SERVER_CERTIFICATE_FILE);
    let mut pem = fs::read_to_string(&pem_path)
        .map_err(|error| config(format!("cannot read {}: {error}", pem_path.display())))?;
    for endorsement in &announcement.server_certificates {
        let der = endorsement.certificate.as_bytes();
        let signer = trusted
            .iter()
            .find(|trusted| trusted.key_id() == endorsement.endorsed_by);
        let endorsed = signer.is_some_and(|signer| {
            verifies(
                signer,
                &certificate_endorsement_message(der),
                endorsement.signature.as_bytes(),
            )
        });
        if !endorsed || X509Certificate::from_der(der).is_err() {
            continue;
        }
        let block = pem_block(der);
        if pem.contains(&block) {
            continue;
        }
        if !pem.ends_with('\n') {
            pem.push('\n');
        }
        pem.push_str(&block);
        followed.certificates += 1;
    }
    if followed.certificates > 0 {
        atomic::write_atomic(&pem_path, pem.as_bytes(), 0o644)
            .map_err(|error| config(error.to_string()))?;
    }
    Ok(followed)
}

/// `der` as a PEM certificate block, 64 characters a line.
fn pem_block(der: &[u8]) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let mut block = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in encoded.as_bytes().chunks(64) {
        block.push_str(&String::from_utf8_lossy(chunk));
        block.push('\n');
    }
    block.push_str("-----END CERTIFICATE-----\n");
    block
}
