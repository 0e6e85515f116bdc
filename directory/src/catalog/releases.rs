//! Several versions of one product in the catalog, its **releases**.
//!
//! A product's entry describes its highest version, the **head**: its
//! version, priority, platform, `roleoutCurrent` (the object versions it is
//! made of) and `roleoutSourceDigest`, exactly as a product with one
//! version. When the catalog holds more than one version, the entry also
//! lists every release in `roleoutRelease`, one JSON value each, with the
//! same facts. The object versions are content-addressed children of the
//! product entry, so two releases that share a slot version share its
//! entry; a child is deleted only when no release lists it.
//!
//! Importing a version adds its release (or replaces the release of the
//! same version) and never lowers the head: an older descriptor imported
//! again changes nothing a suite without a version range gets. A suite
//! takes another release by naming a range (`<product ref="x" version="&lt;1.7"/>`).
//!
//! Readers build one `ProductSource` per release from the same children.
//! What a build records of a product ([`catalog_digest`]) covers every
//! release, so a change to any of them makes the builds that use the
//! product stale.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use roleout_model::ids::Sha256;
use roleout_model::product::ProductSource;
use roleout_model::version::Version;

use crate::catalog::CatalogError;
use crate::catalog::entry::CatalogEntry;
use crate::catalog::mapping::{CatalogEntries, attribute as at, product_entries};

/// One release of a product: what its version's owner entry says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(crate) struct Release {
    /// The version.
    pub(crate) version: String,
    /// The install priority.
    pub(crate) priority: String,
    /// Platform OS families, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) os: Vec<String>,
    /// Platform architectures, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) arch: Vec<String>,
    /// The `cn`s of the object versions it is made of, in order.
    pub(crate) current: Vec<String>,
    /// Its source digest.
    pub(crate) digest: String,
}

impl Release {
    /// The release an owner entry's own attributes describe (its head).
    pub(crate) fn of_owner(owner: &CatalogEntry) -> Result<Self, CatalogError> {
        let owned = |values: Vec<&str>| values.into_iter().map(str::to_owned).collect();
        Ok(Self {
            version: owner.required(at::VERSION)?.to_owned(),
            priority: owner.required(at::PRIORITY)?.to_owned(),
            os: owned(owner.ordered(at::OS)?),
            arch: owned(owner.ordered(at::ARCH)?),
            current: owned(owner.ordered(at::CURRENT)?),
            digest: owner.required(at::SOURCE_DIGEST)?.to_owned(),
        })
    }

    /// Its version, compared as versions are.
    pub(crate) fn parsed_version(&self) -> Option<Version> {
        Version::new(&self.version).ok()
    }

    /// Writes its facts into `owner`, replacing what was there.
    pub(crate) fn apply_to(&self, owner: &mut CatalogEntry) {
        for description in [
            at::VERSION,
            at::PRIORITY,
            at::OS,
            at::ARCH,
            at::CURRENT,
            at::SOURCE_DIGEST,
        ] {
            owner.remove(description);
        }
        owner.push(at::VERSION, self.version.as_str());
        owner.push(at::PRIORITY, self.priority.as_str());
        owner.push_ordered(at::OS, &self.os);
        owner.push_ordered(at::ARCH, &self.arch);
        owner.push_ordered(at::CURRENT, &self.current);
        owner.push(at::SOURCE_DIGEST, self.digest.as_str());
    }

    /// The owner entry as it would be with this release alone: what the
    /// reader builds a `ProductSource` of this version from.
    pub(crate) fn alone(&self, owner: &CatalogEntry) -> CatalogEntry {
        let mut alone = owner.clone();
        alone.remove(at::RELEASE);
        self.apply_to(&mut alone);
        alone
    }
}

/// Every release the written owner entry `owner` lists, highest version
/// first; the head alone for a product with one version.
pub(crate) fn releases_of(owner: &CatalogEntry) -> Result<Vec<Release>, CatalogError> {
    let values = owner.values(at::RELEASE);
    if values.is_empty() {
        return Ok(vec![Release::of_owner(owner)?]);
    }
    let mut releases = values
        .iter()
        .map(|text| {
            serde_json::from_str::<Release>(text).map_err(|error| {
                owner.malformed(format!("{} value {text:?}: {error}", at::RELEASE))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    sort_releases(&mut releases);
    Ok(releases)
}

/// Highest version first; a version that does not parse (never written by
/// Roleout) last.
fn sort_releases(releases: &mut [Release]) {
    releases.sort_by_key(|release| std::cmp::Reverse(release.parsed_version()));
}

/// `existing` with `new` added, replacing the release of the same version:
/// highest version first.
pub(crate) fn with_release(mut existing: Vec<Release>, new: Release) -> Vec<Release> {
    let version = new.parsed_version();
    existing.retain(|release| release.parsed_version() != version);
    existing.push(new);
    sort_releases(&mut existing);
    existing
}

/// Makes `owner` describe `releases` (highest first, at least one): the
/// head's facts, and every release in `roleoutRelease` when there are
/// several (none for one, so a product with one version is stored as it
/// always was).
pub(crate) fn describe_releases(
    owner: &mut CatalogEntry,
    releases: &[Release],
) -> Result<(), CatalogError> {
    owner.remove(at::RELEASE);
    let Some(head) = releases.first() else {
        return Ok(());
    };
    head.apply_to(owner);
    if releases.len() > 1 {
        for release in releases {
            let text =
                serde_json::to_string(release).map_err(|error| CatalogError::Unrepresentable {
                    what: format!("release {} of {}", release.version, owner.dn),
                    reason: error.to_string(),
                })?;
            owner.push(at::RELEASE, text);
        }
    }
    Ok(())
}

/// The entries of a product with several releases (at least one, of one
/// id): the owner describing them all, and every release's object
/// versions once.
pub(crate) fn release_entries(
    products_dn: &str,
    releases: &[&ProductSource],
) -> Result<CatalogEntries, CatalogError> {
    let mut merged: Option<CatalogEntries> = None;
    let mut described = Vec::new();
    for release in releases {
        let entries = product_entries(products_dn, release)?;
        described = with_release(described, Release::of_owner(&entries.owner)?);
        match &mut merged {
            None => merged = Some(entries),
            Some(merged) => {
                for version in entries.versions {
                    if !merged.versions.iter().any(|known| known.dn == version.dn) {
                        merged.versions.push(version);
                    }
                }
            }
        }
    }
    let mut merged = merged.ok_or_else(|| CatalogError::Unrepresentable {
        what: "a product".to_owned(),
        reason: "it has no release".to_owned(),
    })?;
    describe_releases(&mut merged.owner, &described)?;
    Ok(merged)
}

/// The `cn`s of the object versions some release lists, lowercase.
pub(crate) fn listed_children(releases: &[Release]) -> BTreeSet<String> {
    releases
        .iter()
        .flat_map(|release| &release.current)
        .map(|cn| cn.to_ascii_lowercase())
        .collect()
}

/// What a build records of a product: its source digest when it has one
/// release, else the SHA-256 of every release's version and digest. Any
/// change to any release changes it.
pub(crate) fn catalog_digest(owner: &CatalogEntry) -> Result<Sha256, CatalogError> {
    let values = owner.values(at::RELEASE);
    if values.is_empty() {
        let text = owner.required(at::SOURCE_DIGEST)?;
        return Sha256::new(text)
            .map_err(|error| owner.malformed(format!("{}: {error}", at::SOURCE_DIGEST)));
    }
    let releases = releases_of(owner)?;
    let text: String = releases
        .iter()
        .map(|release| format!("{} {}\n", release.version, release.digest))
        .collect();
    Ok(Sha256::of(text.as_bytes()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    fn release(version: &str, digest: &str) -> Release {
        Release {
            version: version.to_owned(),
            priority: "50".to_owned(),
            os: vec!["linux".to_owned()],
            arch: Vec::new(),
            current: vec![format!("description-{digest}")],
            digest: digest.to_owned(),
        }
    }

    #[test]
    fn releases_keep_the_highest_version_first_and_replace_their_own() {
        let releases = with_release(vec![release("1.7", "b")], release("1.6", "a"));
        assert_eq!(releases[0].version, "1.7");
        let releases = with_release(releases, release("1.10", "c"));
        assert_eq!(
            releases
                .iter()
                .map(|r| r.version.as_str())
                .collect::<Vec<_>>(),
            ["1.10", "1.7", "1.6"]
        );
        let releases = with_release(releases, release("1.7", "d"));
        assert_eq!(releases.len(), 3);
        assert_eq!(releases[1].digest, "d");
        let mut owner = CatalogEntry::new("cn=p,ou=products");
        describe_releases(&mut owner, &releases).unwrap();
        assert_eq!(owner.required(at::VERSION).unwrap(), "1.10");
        assert_eq!(owner.values(at::RELEASE).len(), 3);
        assert_eq!(releases_of(&owner).unwrap(), releases);
        let alone = releases[2].alone(&owner);
        assert_eq!(alone.required(at::VERSION).unwrap(), "1.6");
        assert!(alone.values(at::RELEASE).is_empty());
        assert_eq!(listed_children(&releases).len(), 3);
        // One release: stored as a product always was.
        let mut single = CatalogEntry::new("cn=q,ou=products");
        describe_releases(&mut single, &[release("2", "e")]).unwrap();
        assert!(single.values(at::RELEASE).is_empty());
    }
}
