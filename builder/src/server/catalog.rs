//! What roleoutd serves of the catalog: the suites in the directory and a
//! suite as one role set gets it.
//!
//! [`current_build`] is the single place that turns (suite, role set) into
//! the suite to serve: the build stored under `ou=builds`, rebuilt first
//! when any object it was built from changed (`Builder::current`), so a
//! stale build is never served as current.

use roleout_directory::Directory;
use roleout_directory::catalog::CatalogError;
use roleout_model::ids::{Sha256, SuiteId};
use roleout_model::role::EffectiveRoles;
use roleout_model::suite::Suite;

use crate::build::{BuildError, Builder};

/// A suite as served to one role set.
#[derive(Debug, Clone)]
pub struct ServedBuild {
    /// The assembled suite.
    pub suite: Suite,
    /// SHA-256 of its canonical JSON.
    pub digest: Sha256,
    /// Grows with every build whose content changed.
    pub serial: u64,
    /// Whether it had to be built (its sources changed, or there was none
    /// stored), rather than read as stored.
    pub rebuilt: bool,
}

/// The current build of suite `id` for `roles`, or `None` when the catalog
/// has no such suite.
pub async fn current_build(
    directory: &Directory,
    builder: &Builder,
    id: &SuiteId,
    roles: &EffectiveRoles,
) -> Result<Option<ServedBuild>, BuildError> {
    let (stored, freshness) = match builder.current_checked(directory, id, roles).await {
        Ok(found) => found,
        Err(BuildError::Catalog(CatalogError::NotFound { what }))
            if what == format!("suite {id}") =>
        {
            return Ok(None);
        }
        Err(error) => return Err(error),
    };
    let suite: Suite = serde_json::from_slice(&stored.canonical).map_err(|error| {
        BuildError::Catalog(CatalogError::Malformed {
            dn: format!("build of suite {id} for {}", roles.key()),
            reason: format!("its canonical form is not a suite: {error}"),
        })
    })?;
    Ok(Some(ServedBuild {
        suite,
        digest: stored.digest,
        serial: stored.serial,
        rebuilt: !matches!(freshness, crate::build::Freshness::Fresh),
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
