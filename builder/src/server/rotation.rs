//! Rotating roleoutd's builder key and its self-signed TLS certificate
//! without re-enrolling machines (`roleoutd --rotate prepare|activate`).
//!
//! Machines pin both at enrolment. A rotation is announced before it
//! happens:
//! 1. `prepare` makes the next builder key (`next/builder-key.pk8`) and,
//!    when roleoutd makes its own certificate, the next TLS certificate
//!    (`next/tls/`), and records in `trust.json` an endorsement of each:
//!    the current builder key's signature over the next key, and over the
//!    next certificate's digest. roleoutd serves `trust.json` at
//!    `GET /v1/trust`; each run of `roleout install` reads it, checks every
//!    endorsement back to the key it pinned, and from then on accepts the
//!    next key's envelopes and the next certificate too.
//! 2. Once the machines have run (each one's last-seen time says so),
//!    `activate` makes the next key and certificate current (the old key
//!    is kept in `retired/`); roleoutd is restarted to serve with them.
//!
//! Endorsements are never removed from `trust.json`, so a machine that
//! pinned a key two rotations ago still follows the chain to today's key.
//! A machine that did not run between `prepare` and `activate` no longer
//! trusts roleoutd's TLS certificate and must enrol again; one given
//! `--tls-cert` files rotates them as its admin does.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use roleout_model::protocol::signing::{BuilderKey, sign_message};
use roleout_model::protocol::{
    Base64Bytes, CertificateEndorsement, KeyEndorsement, TrustAnnouncement,
    certificate_endorsement_message, key_endorsement_message,
};
use roleout_store::keys::{read_private_key, write_private_key};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::config::TlsChoice;
use super::state::load_or_create_builder_key;
use super::tls::{TlsFiles, make_self_signed, self_signed_paths};

/// What roleoutd announces, kept in its state directory.
pub fn trust_file(state_dir: &Path) -> PathBuf {
    state_dir.join("trust.json")
}

/// The announcement at `GET /v1/trust`: what `trust.json` holds, or
/// nothing before the first rotation.
pub fn announcement(state_dir: &Path) -> anyhow::Result<TrustAnnouncement> {
    let path = trust_file(state_dir);
    match fs::read(&path) {
        Ok(bytes) => Ok(serde_json::from_slice(&bytes)
            .map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            Ok(TrustAnnouncement::default())
        }
        Err(error) => Err(anyhow::anyhow!("{}: {error}", path.display())),
    }
}

fn next_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("next")
}

fn next_tls(state_dir: &Path) -> TlsFiles {
    self_signed_paths(&next_dir(state_dir))
}

/// The DER of the first certificate in the PEM file `path`.
fn certificate_der(path: &Path) -> anyhow::Result<Vec<u8>> {
    let certificate = CertificateDer::from_pem_file(path)
        .map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?;
    Ok(certificate.as_ref().to_vec())
}

/// `--rotate prepare`: makes (or keeps, when made before) the next builder
/// key and self-signed certificate and records their endorsements by the
/// current key. Returns what it did, in words.
pub fn prepare(state_dir: &Path, tls: &TlsChoice, validity: Duration) -> anyhow::Result<String> {
    let current = load_or_create_builder_key(state_dir)?;
    let next = next_dir(state_dir);
    fs::create_dir_all(&next)?;
    let next_key_path = next.join("builder-key.pk8");
    if !next_key_path.exists() {
        write_private_key(&next_key_path, &BuilderKey::generate_pkcs8()?)?;
    }
    let next_key = BuilderKey::from_pkcs8(&read_private_key(&next_key_path)?)?;
    let next_public = next_key.public_key();
    let mut announced = announcement(state_dir)?;
    let key = KeyEndorsement {
        public_key: Base64Bytes::new(next_public.as_bytes().to_vec()),
        endorsed_by: current.key_id().clone(),
        signature: sign_message(&current, &key_endorsement_message(next_public.as_bytes())),
    };
    if !announced.builder_keys.contains(&key) {
        announced.builder_keys.push(key);
    }
    let mut said = vec![format!(
        "next builder key {} (endorsed by the current key {})",
        next_key.key_id(),
        current.key_id()
    )];
    if let TlsChoice::SelfSigned { names } = tls {
        let files = next_tls(state_dir);
        if !files.cert.exists() || !files.key.exists() {
            if let Some(folder) = files.cert.parent() {
                fs::create_dir_all(folder)?;
            }
            make_self_signed(names, &files, validity)?;
        }
        let der = certificate_der(&files.cert)?;
        let endorsement = CertificateEndorsement {
            certificate: Base64Bytes::new(der.clone()),
            endorsed_by: current.key_id().clone(),
            signature: sign_message(&current, &certificate_endorsement_message(&der)),
        };
        if !announced.server_certificates.contains(&endorsement) {
            announced.server_certificates.push(endorsement);
        }
        said.push(format!(
            "next TLS certificate {}",
            roleout_model::ids::Sha256::of(&der)
        ));
    } else {
        said.push("TLS certificate files are given: rotate them as you issue them".to_owned());
    }
    let bytes = serde_json::to_vec_pretty(&announced)?;
    let path = trust_file(state_dir);
    let temporary = path.with_extension("json.tmp");
    fs::write(&temporary, bytes)?;
    fs::rename(&temporary, &path)?;
    Ok(format!(
        "prepared: {}; announced to machines at GET /v1/trust. Once every machine has run, \
         `roleoutd --rotate activate` makes them current.",
        said.join(", ")
    ))
}

/// `--rotate activate`: makes the prepared key and certificate current;
/// the old key goes to `retired/`. Returns what it did, in words.
pub fn activate(state_dir: &Path) -> anyhow::Result<String> {
    let next = next_dir(state_dir);
    let next_key_path = next.join("builder-key.pk8");
    if !next_key_path.exists() {
        anyhow::bail!(
            "nothing to activate: {} does not exist; run `roleoutd --rotate prepare` first",
            next_key_path.display()
        );
    }
    let current = load_or_create_builder_key(state_dir)?;
    let retired = state_dir.join("retired");
    fs::create_dir_all(&retired)?;
    fs::rename(
        state_dir.join("builder-key.pk8"),
        retired.join(format!("builder-key-{}.pk8", current.key_id())),
    )?;
    fs::rename(&next_key_path, state_dir.join("builder-key.pk8"))?;
    let key = load_or_create_builder_key(state_dir)?;
    let next_tls = next_tls(state_dir);
    let mut said = vec![format!("builder key {}", key.key_id())];
    if next_tls.cert.exists() && next_tls.key.exists() {
        let current_tls = self_signed_paths(state_dir);
        if let Some(folder) = current_tls.cert.parent() {
            fs::create_dir_all(folder)?;
        }
        fs::rename(&next_tls.key, &current_tls.key)?;
        fs::rename(&next_tls.cert, &current_tls.cert)?;
        said.push(format!(
            "TLS certificate {}",
            roleout_model::ids::Sha256::of(&certificate_der(&current_tls.cert)?)
        ));
    }
    let _ = fs::remove_dir_all(&next);
    Ok(format!(
        "activated: {}; restart roleoutd to serve with them",
        said.join(", ")
    ))
}
