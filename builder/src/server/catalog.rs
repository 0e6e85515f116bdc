//! What roleoutd serves of the catalog: the suites in the directory and a
//! suite as one role set gets it.
//!
//! [`current_build`] is the single place that turns (suite, role set) into
//! the suite to serve, with its digest and serial. Today it assembles on
//! the fly from the directory (one pass, two searches); once stored builds
//! exist it returns the stored, never-stale build instead, and nothing
//! else changes.

use std::time::SystemTime;

use roleout_directory::Directory;
use roleout_directory::catalog::CatalogError;
use roleout_installer::keys::unix_seconds;
use roleout_model::ids::{Sha256, SuiteId};
use roleout_model::protocol::canonical_json;
use roleout_model::role::EffectiveRoles;
use roleout_model::suite::Suite;

/// A suite as served to one role set.
#[derive(Debug, Clone)]
pub struct ServedBuild {
    /// The assembled suite.
    pub suite: Suite,
    /// SHA-256 of its canonical JSON.
    pub digest: Sha256,
    /// Grows with every build.
    pub serial: u64,
}

/// The build of suite `id` for `roles`, or `None` when the catalog has no
/// such suite.
///
/// The serial is the Unix second of assembly while builds are made on the
/// fly: it only grows (on one clock), and the same build fetched twice
/// carries the same digest, which the installer accepts.
pub async fn current_build(
    directory: &Directory,
    id: &SuiteId,
    roles: &EffectiveRoles,
) -> Result<Option<ServedBuild>, CatalogError> {
    let assembled = match directory.assemble_suite(id, roles).await {
        Ok(assembled) => assembled,
        Err(CatalogError::NotFound { what }) if what == format!("suite {id}") => return Ok(None),
        Err(error) => return Err(error),
    };
    let value =
        serde_json::to_value(&assembled.suite).map_err(|error| CatalogError::Unrepresentable {
            what: format!("suite {id}"),
            reason: error.to_string(),
        })?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &canonical_json(&value));
    let mut bytes = [0_u8; 32];
    // A SHA-256 digest is always 32 bytes.
    bytes.copy_from_slice(digest.as_ref());
    Ok(Some(ServedBuild {
        suite: assembled.suite,
        digest: Sha256::from_bytes(&bytes),
        serial: unix_seconds(SystemTime::now()),
    }))
}

/// Every suite id in the directory: one search of `ou=suites` that returns
/// names only. Entries below a suite (its role versions) are skipped.
pub async fn suite_ids(directory: &Directory) -> Result<Vec<SuiteId>, CatalogError> {
    let base = directory.layout().suites().to_owned();
    let dns = match directory.subtree_dns(&base).await {
        Ok(dns) => dns,
        Err(error) if error.is_no_such_object() => return Ok(Vec::new()),
        Err(error) => return Err(error.into()),
    };
    let suffix = format!(",{}", base.to_ascii_lowercase());
    let mut ids = Vec::new();
    for dn in dns {
        let lowered = dn.to_ascii_lowercase();
        let Some(rdn) = lowered.strip_suffix(&suffix) else {
            continue;
        };
        // One RDN only (a suite, not one of its version entries); suite ids
        // need no DN escaping, so an escaped comma is not a suite.
        let Some(value) = rdn.strip_prefix("cn=") else {
            continue;
        };
        if value.contains(',') || value.contains('\\') {
            continue;
        }
        // The id as written in the DN, not lowered.
        let original = &dn[3..3 + value.len()];
        if let Ok(id) = SuiteId::new(original) {
            ids.push(id);
        }
    }
    ids.sort();
    Ok(ids)
}
