//! What `roleout enroll` leaves in the state directory, and reading it back.
//!
//! ```text
//! STATE_DIR/enrolment.json    server URL and machine name
//! STATE_DIR/machine.key       the machine's private key, PKCS#8, mode 0600
//! STATE_DIR/machine.pem       its certificate (what the admin approves)
//! STATE_DIR/server.pem        the server certificate TLS is pinned to
//! STATE_DIR/builder-key.pub   the builder key envelopes must verify with
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use roleout_model::ids::MachineId;
use serde::{Deserialize, Serialize};

use crate::state::atomic::{self, PRIVATE_DIR_MODE};
use roleout_model::protocol::signing::PinnedKey;

/// The enrolment record file.
pub const ENROLMENT_FILE: &str = "enrolment.json";
/// The machine's private key file.
pub const MACHINE_KEY_FILE: &str = "machine.key";
/// The machine's certificate file.
pub const MACHINE_CERTIFICATE_FILE: &str = "machine.pem";
/// The pinned server certificate file.
pub const SERVER_CERTIFICATE_FILE: &str = "server.pem";
/// The pinned builder key file.
pub const BUILDER_KEY_FILE: &str = "builder-key.pub";

/// Why the enrolment could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// This machine has not been enrolled (or the state directory is another).
    #[error("this machine is not enrolled: {} is missing; run `roleout enroll` first", path.display())]
    NotEnrolled {
        /// The missing file.
        path: PathBuf,
    },
    /// A file exists but cannot be used.
    #[error("{}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The enrolment record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Enrolment {
    /// roleoutd's base URL (`https://roleout.example.org:8443`).
    pub server: String,
    /// Other roleoutd of the same installation (same certificate and
    /// builder key), tried in order when the one asked cannot be reached
    /// or says it cannot serve now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<String>,
    /// This machine's name.
    pub machine: MachineId,
}

impl Enrolment {
    /// Every roleoutd this machine may ask, in order: the one it enrolled
    /// with, then the others of the installation.
    pub fn servers(&self) -> Vec<String> {
        std::iter::once(self.server.clone())
            .chain(self.fallbacks.iter().cloned())
            .collect()
    }
}

/// Builder keys the pinned one vouched for, one base64url key a line.
pub const ENDORSED_KEYS_FILE: &str = "endorsed-builder-keys.pub";

/// The enrolment and the pinned builder key, read back.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The record.
    pub enrolment: Enrolment,
    /// The builder key envelopes must verify with.
    pub builder_key: PinnedKey,
    /// Builder keys it vouched for since (see `crate::rotation`).
    pub endorsed_keys: Vec<PinnedKey>,
    /// The state directory it was read from.
    pub state_dir: PathBuf,
}

impl Identity {
    /// Reads the enrolment of `state_dir`.
    pub fn load(state_dir: &Path) -> Result<Identity, IdentityError> {
        let path = state_dir.join(ENROLMENT_FILE);
        let text = read(&path)?;
        let enrolment: Enrolment =
            serde_json::from_str(&text).map_err(|error| IdentityError::Invalid {
                path: path.clone(),
                reason: error.to_string(),
            })?;
        let key_path = state_dir.join(BUILDER_KEY_FILE);
        let builder_key =
            PinnedKey::from_base64(&read(&key_path)?).map_err(|error| IdentityError::Invalid {
                path: key_path,
                reason: error.to_string(),
            })?;
        let endorsed_path = state_dir.join(ENDORSED_KEYS_FILE);
        let endorsed_keys = match fs::read_to_string(&endorsed_path) {
            Ok(text) => text
                .lines()
                .filter(|line| !line.trim().is_empty())
                .map(PinnedKey::from_base64)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| IdentityError::Invalid {
                    path: endorsed_path.clone(),
                    reason: error.to_string(),
                })?,
            Err(_) => Vec::new(),
        };
        Ok(Identity {
            enrolment,
            builder_key,
            endorsed_keys,
            state_dir: state_dir.to_owned(),
        })
    }

    /// Writes the enrolment record and the pinned builder key.
    pub fn save(
        state_dir: &Path,
        enrolment: &Enrolment,
        builder_key: &PinnedKey,
    ) -> Result<(), IdentityError> {
        let invalid = |path: &Path, reason: String| IdentityError::Invalid {
            path: path.to_owned(),
            reason,
        };
        atomic::ensure_directory(state_dir, PRIVATE_DIR_MODE)
            .map_err(|error| invalid(state_dir, error.to_string()))?;
        let path = state_dir.join(ENROLMENT_FILE);
        let mut bytes = serde_json::to_vec_pretty(enrolment)
            .map_err(|error| invalid(&path, error.to_string()))?;
        bytes.push(b'\n');
        atomic::write_atomic(&path, &bytes, 0o644)
            .map_err(|error| invalid(&path, error.to_string()))?;
        let key_path = state_dir.join(BUILDER_KEY_FILE);
        atomic::write_atomic(
            &key_path,
            format!("{}\n", builder_key.to_base64()).as_bytes(),
            0o644,
        )
        .map_err(|error| invalid(&key_path, error.to_string()))
    }
}

fn read(path: &Path) -> Result<String, IdentityError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            Err(IdentityError::NotEnrolled {
                path: path.to_owned(),
            })
        }
        Err(error) => Err(IdentityError::Invalid {
            path: path.to_owned(),
            reason: error.to_string(),
        }),
    }
}
