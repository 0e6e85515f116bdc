//! What every request handler of one roleoutd shares, and how roleoutd's
//! own secrets are kept in its state directory.
//!
//! State layout (all under the state directory, mode 0700):
//! - `ldap/`: the managed slapd, when no directory URL is configured;
//! - `tls/cert.pem`, `tls/key.pem`: the self-signed certificate (see
//!   [`super::tls`]);
//! - `token-secret`: the MAC key of challenge and session tokens (0600);
//! - `builder-key.pk8`: the builder's Ed25519 signing key, PKCS#8 (0600);
//! - `builder-key.pub`: its public half, base64url, what `roleout enroll`
//!   pins (the enrolment answer carries the same key);
//! - `content/`: the content store (payloads and report logs by SHA-256,
//!   see `crate::content`). Report logs arrive capped and redacted by the
//!   installer, which alone knows the values of password variables;
//!   roleoutd never sees those values and stores the log as received;
//! - `roleoutd.addr`: the address roleoutd listens on, written once it
//!   does (so a caller that asked for port 0 learns the port).

use std::path::{Path, PathBuf};
use std::time::Duration;

use roleout_directory::Directory;
use roleout_model::protocol::signing::BuilderKey;
use roleout_store::keys::{read_private_key, write_private_key};

use crate::auth::Authenticator;
use crate::auth::token::ServerSecret;
use crate::server::cache::ServingCache;

/// Everything a request handler needs.
#[derive(Debug)]
pub struct ServerState {
    /// The directory (catalog, roles, machines).
    pub directory: Directory,
    /// Challenges and sessions.
    pub authenticator: Authenticator,
    /// Signs envelopes.
    pub builder_key: BuilderKey,
    /// The content store's folder.
    pub content_dir: PathBuf,
    /// Lifetime of signed metadata.
    pub metadata_ttl: Duration,
    /// Largest request body accepted.
    pub max_body: usize,
    /// What was read from the directory, kept while the change feed says
    /// it is current.
    pub cache: ServingCache,
    /// How much report history is kept per machine and suite.
    pub retention: roleout_directory::catalog::Retention,
    /// roleoutd's state directory (its `trust.json` is served).
    pub state_dir: PathBuf,
    /// What callers may spend (bodies before a session, enrolments per
    /// source, reports per machine).
    pub gate: crate::server::gate::Gate,
    /// The installation engine this roleoutd is, if it is one: machines
    /// that authenticate here are recorded as reached through it.
    pub engine: Option<roleout_model::ids::MachineId>,
    /// A turn per image manifest, held while its imaging archive is
    /// packed, so it is packed once.
    pub archives: crate::server::flights::Flights<roleout_model::ids::Sha256, ()>,
    /// A turn per content brought from the upstream, so many machines
    /// asking for one payload this roleoutd lacks bring it once.
    pub fetches:
        crate::server::flights::Flights<roleout_model::ids::Sha256, crate::server::error::ApiError>,
    /// As an engine: the roleoutd it fetches image files from.
    pub upstream: Option<Upstream>,
    /// What is counted for `GET /metrics`.
    pub metrics: std::sync::Arc<crate::server::metrics::Metrics>,
    /// The dashboard's templates and sessions.
    pub dashboard: crate::ui::Dashboard,
}

/// The roleoutd an engine fetches the image files it lacks from.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Its base URL.
    pub url: String,
    /// A client trusting only its certificate.
    pub agent: ureq::Agent,
}

impl Upstream {
    /// The upstream at `url`, trusting only the certificate(s) in
    /// `certificate_pem`.
    pub fn new(url: &str, certificate_pem: &[u8]) -> Result<Upstream, StateError> {
        let invalid = |reason: String| StateError::File {
            action: "cannot trust the upstream certificate in",
            path: PathBuf::from(url),
            reason,
        };
        let certificate = ureq::tls::Certificate::from_pem(certificate_pem)
            .map_err(|error| invalid(error.to_string()))?
            .to_owned();
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(vec![
                certificate,
            ])))
            .build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .timeout_connect(Some(std::time::Duration::from_secs(15)))
            .timeout_recv_response(Some(std::time::Duration::from_secs(120)))
            // A body takes as long as it takes, but a transfer that stops
            // is given up: a fetch holds its payload's turn
            // (`flights.rs`), and every machine asking for that payload
            // would wait on a hung one.
            .timeout_per_read(Some(std::time::Duration::from_secs(60)))
            .build()
            .new_agent();
        Ok(Upstream {
            url: url.trim_end_matches('/').to_owned(),
            agent,
        })
    }
}

/// roleoutd's own secrets could not be made or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// A file could not be read or written.
    #[error("{action} {path}: {reason}")]
    File {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it failed.
        reason: String,
    },
}

fn file_error(action: &'static str, path: &Path, reason: impl std::fmt::Display) -> StateError {
    StateError::File {
        action,
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// The token secret in `path`, made (mode 0600) on first start.
pub fn load_or_create_secret(path: &Path) -> Result<ServerSecret, StateError> {
    if !path.exists() {
        let bytes = ServerSecret::generate_bytes()
            .map_err(|error| file_error("cannot make the token secret for", path, error))?;
        ServerSecret::write(path, &bytes)
            .map_err(|error| file_error("cannot write", path, error))?;
    }
    ServerSecret::read(path).map_err(|error| file_error("cannot read", path, error))
}

/// The builder key in `STATE/builder-key.pk8`, made on first start, with
/// its public half written to `STATE/builder-key.pub`.
pub fn load_or_create_builder_key(state_dir: &Path) -> Result<BuilderKey, StateError> {
    let private = state_dir.join("builder-key.pk8");
    if !private.exists() {
        let pkcs8 = BuilderKey::generate_pkcs8()
            .map_err(|error| file_error("cannot make the builder key for", &private, error))?;
        write_private_key(&private, &pkcs8)
            .map_err(|error| file_error("cannot write", &private, error))?;
    }
    let pkcs8 =
        read_private_key(&private).map_err(|error| file_error("cannot read", &private, error))?;
    let key = BuilderKey::from_pkcs8(&pkcs8)
        .map_err(|error| file_error("cannot load", &private, error))?;
    let public = state_dir.join("builder-key.pub");
    let text = format!("{}\n", key.public_key().to_base64());
    if std::fs::read_to_string(&public).ok().as_deref() != Some(text.as_str()) {
        std::fs::write(&public, text)
            .map_err(|error| file_error("cannot write", &public, error))?;
    }
    Ok(key)
}
