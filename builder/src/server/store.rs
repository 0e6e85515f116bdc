//! Where roleoutd keeps bytes that do not belong in the directory: payloads
//! (by SHA-256) and, until the directory keeps them, status reports.
//!
//! Each store is reached through one function here, so that moving to the
//! shared content store and to directory-kept reports changes only this
//! file.
//!
//! Report logs arrive capped and redacted by the installer, which alone
//! knows the values of password variables; roleoutd cannot redact them
//! again (it never sees those values) and stores the log as received.

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use roleout_model::ids::{MachineId, Sha256};
use serde::Serialize;

/// The file of payload `digest` in the content store under `content_dir`.
pub fn payload_path(content_dir: &Path, digest: &Sha256) -> PathBuf {
    content_dir.join(digest.as_str())
}

/// Whether a report was new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Stored now.
    New,
    /// A report with the same id was stored before; nothing changed.
    Duplicate,
}

/// Stores `report` of `machine` under its `id` (kind `report` or
/// `complete`), once: a second report with the same id changes nothing.
pub fn store_report<T: Serialize>(
    reports_dir: &Path,
    machine: &MachineId,
    kind: &str,
    id: &str,
    report: &T,
) -> std::io::Result<Stored> {
    let folder = reports_dir.join(machine.as_str()).join(kind);
    std::fs::create_dir_all(&folder)?;
    // The id comes from the client: the file is named by its digest so
    // that no id can name a path.
    let digest = ring::digest::digest(&ring::digest::SHA256, id.as_bytes());
    let mut bytes = [0_u8; 32];
    bytes.copy_from_slice(digest.as_ref());
    let path = folder.join(format!("{}.json", Sha256::from_bytes(&bytes)));
    let json = serde_json::to_vec_pretty(report)?;
    // Written under a temporary name and linked into place: the link fails
    // if the report exists, so two concurrent copies store it once and a
    // crash never leaves half a report under the final name.
    let temporary = tempfile_in(&folder)?;
    {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(&json)?;
        file.sync_all()?;
    }
    let linked = std::fs::hard_link(&temporary, &path);
    let _ = std::fs::remove_file(&temporary);
    match linked {
        Ok(()) => Ok(Stored::New),
        Err(error) if error.kind() == ErrorKind::AlreadyExists => Ok(Stored::Duplicate),
        Err(error) => Err(error),
    }
}

fn tempfile_in(folder: &Path) -> std::io::Result<PathBuf> {
    let mut random = [0_u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random)
        .map_err(|_| std::io::Error::other("no randomness available"))?;
    Ok(folder.join(format!(".incoming-{}", hex::encode(random))))
}

/// The reports stored for `machine` of `kind`, parsed as JSON.
pub fn stored_reports(
    reports_dir: &Path,
    machine: &MachineId,
    kind: &str,
) -> std::io::Result<Vec<serde_json::Value>> {
    let folder = reports_dir.join(machine.as_str()).join(kind);
    let mut reports = Vec::new();
    let entries = match std::fs::read_dir(&folder) {
        Ok(entries) => entries,
        Err(error) if error.kind() == ErrorKind::NotFound => return Ok(reports),
        Err(error) => return Err(error),
    };
    for entry in entries {
        let path = entry?.path();
        if path
            .extension()
            .is_some_and(|extension| extension == "json")
        {
            let text = std::fs::read(&path)?;
            reports.push(serde_json::from_slice(&text)?);
        }
    }
    Ok(reports)
}
