//! Writing products and suites: idempotent, minimal and never half-visible.
//!
//! A write reads the owner's subtree once, then
//! 1. adds the object-version children that do not exist yet (for a new
//!    owner, first a bare owner entry without `roleoutSourceDigest`, which
//!    readers treat as not yet written);
//! 2. switches the owner entry in one modify (version, platform,
//!    `roleoutCurrent`, `roleoutSourceDigest`): a single-entry modify is
//!    atomic in LDAP, so readers see the old product or the new one;
//! 3. deletes the children no longer listed.
//!
//! Children are content-addressed, so an unchanged version is the same
//! entry and is not touched: writing the same source twice sends no add,
//! modify or delete at all, and changing one slot version adds one child,
//! modifies the owner and deletes one child. A crash between steps leaves
//! the previous version current; the leftovers are invisible to readers and
//! removed by the next write.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use ldap3::asn1::StructureTag;
use ldap3::{Mod, ResultEntry, Scope, SearchEntry};
use tracing::instrument;

use roleout_model::ids::{ProductId, SuiteId};
use roleout_model::product::ProductSource;
use roleout_model::suite::SuiteSource;
use roleout_model::version::Version;

use crate::catalog::CatalogError;
use crate::catalog::entry::CatalogEntry;
use crate::catalog::mapping::{
    CatalogEntries, attribute, class, product_dn, product_entries, suite_dn, suite_entries,
};
use crate::catalog::read::is_written;
use crate::catalog::releases::{
    Release, describe_releases, listed_children, releases_of, with_release,
};
use crate::connection::Directory;

/// What a write sent to the directory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteSummary {
    /// Entries added.
    pub added: usize,
    /// Modify operations sent.
    pub modified: usize,
    /// Entries deleted.
    pub deleted: usize,
}

impl WriteSummary {
    /// True when the write found everything as wanted and sent nothing.
    pub fn is_unchanged(&self) -> bool {
        *self == WriteSummary::default()
    }
}

/// Where a write stops. Anything but [`WriteStep::Complete`] exists to
/// show, in tests, what readers see when a write is cut short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteStep {
    /// After adding the new children, before switching the owner.
    ChildrenAdded,
    /// After switching the owner, before deleting unused children.
    Switched,
    /// The whole write.
    Complete,
}

/// Converts a search result into a catalog entry. Catalog values are
/// always text; a binary value means someone else wrote the entry.
pub(crate) fn from_search(entry: SearchEntry) -> Result<CatalogEntry, CatalogError> {
    if let Some(name) = entry.bin_attrs.keys().next() {
        return Err(CatalogError::Malformed {
            dn: entry.dn,
            reason: format!("{name} holds a value that is not UTF-8 text"),
        });
    }
    Ok(CatalogEntry {
        dn: entry.dn,
        attributes: entry.attrs.into_iter().collect(),
    })
}

/// Converts a search result as ldap3 decoded it into a catalog entry,
/// moving its values rather than copying them (ldap3's
/// `SearchEntry::construct` copies every text value once more, and panics
/// on what it cannot read). `None` for what is not an entry (a referral, an
/// intermediate message), which the catalog never holds.
pub(crate) fn from_result(entry: ResultEntry) -> Result<Option<CatalogEntry>, CatalogError> {
    /// The search result entry's application tag (RFC 4511 section 4.5.2).
    const SEARCH_RESULT_ENTRY: u64 = 4;
    let malformed = |dn: &str, reason: String| CatalogError::Malformed {
        dn: dn.to_owned(),
        reason,
    };
    let Some(parts) = entry
        .0
        .match_id(SEARCH_RESULT_ENTRY)
        .and_then(StructureTag::expect_constructed)
    else {
        return Ok(None);
    };
    let mut parts = parts.into_iter();
    let dn = parts
        .next()
        .and_then(StructureTag::expect_primitive)
        .and_then(|dn| String::from_utf8(dn).ok())
        .ok_or_else(|| malformed("", "a search result entry without a text DN".to_owned()))?;
    let mut attributes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for attribute in parts
        .next()
        .and_then(StructureTag::expect_constructed)
        .unwrap_or_default()
    {
        let mut attribute = attribute
            .expect_constructed()
            .unwrap_or_default()
            .into_iter();
        let description = attribute
            .next()
            .and_then(StructureTag::expect_primitive)
            .and_then(|name| String::from_utf8(name).ok())
            .ok_or_else(|| malformed(&dn, "an attribute without a text name".to_owned()))?;
        // Collected in place: the vector of decoded values becomes the
        // vector of strings, with no allocation of its own.
        let values: Vec<String> = attribute
            .next()
            .and_then(StructureTag::expect_constructed)
            .unwrap_or_default()
            .into_iter()
            .map(|tag| {
                tag.expect_primitive()
                    .and_then(|value| String::from_utf8(value).ok())
            })
            .collect::<Option<_>>()
            .ok_or_else(|| {
                malformed(
                    &dn,
                    format!("{description} holds a value that is not UTF-8 text"),
                )
            })?;
        match attributes.get_mut(&description) {
            Some(existing) => existing.extend(values),
            None => {
                attributes.insert(description, values);
            }
        }
    }
    Ok(Some(CatalogEntry { dn, attributes }))
}

/// Values by lowercase attribute description, as sets: the way LDAP
/// compares them.
fn value_sets(entry: &CatalogEntry) -> BTreeMap<String, BTreeSet<&str>> {
    let mut sets: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    for (description, values) in &entry.attributes {
        sets.entry(description.to_ascii_lowercase())
            .or_default()
            .extend(values.iter().map(String::as_str));
    }
    sets
}

/// The modifications that turn `existing` into `desired` (none when they
/// hold the same values). Attributes only `existing` has are removed.
/// Object classes are left alone: an entry's classes never change (a new
/// content is a new entry) and servers may list them differently.
fn differences(existing: &CatalogEntry, desired: &CatalogEntry) -> Vec<Mod<String>> {
    let old = value_sets(existing);
    let new = value_sets(desired);
    let mut modifications = Vec::new();
    for (description, values) in &desired.attributes {
        let key = description.to_ascii_lowercase();
        if key == "objectclass" {
            continue;
        }
        if old.get(&key) != new.get(&key) {
            let values: HashSet<String> = values.iter().cloned().collect();
            modifications.push(Mod::Replace(description.clone(), values));
        }
    }
    for description in existing.attributes.keys() {
        if !new.contains_key(&description.to_ascii_lowercase()) {
            modifications.push(Mod::Replace(description.clone(), HashSet::new()));
        }
    }
    modifications
}

fn add_attributes(entry: &CatalogEntry) -> Vec<(String, HashSet<String>)> {
    entry
        .attributes
        .iter()
        .map(|(description, values)| (description.clone(), values.iter().cloned().collect()))
        .collect()
}

impl Directory {
    /// Stores `product` (every role version of every slot) under
    /// `ou=products`, touching only what changed.
    #[instrument(skip_all, fields(product = %product.id))]
    pub async fn store_product(
        &self,
        product: &ProductSource,
    ) -> Result<WriteSummary, CatalogError> {
        self.store_product_until(product, WriteStep::Complete).await
    }

    /// [`Directory::store_product`], stopping after `step`.
    pub async fn store_product_until(
        &self,
        product: &ProductSource,
        step: WriteStep,
    ) -> Result<WriteSummary, CatalogError> {
        let entries = product_entries(self.layout().products(), product)?;
        // The product's other releases stay: the owner lists them all and
        // describes the highest, and their object versions are kept.
        self.write_owner(entries, class::PRODUCT, step, |existing, desired| {
            let Some(existing) = existing.filter(|owner| is_written(owner)) else {
                return Ok(BTreeSet::new());
            };
            let new = Release::of_owner(&desired.owner)?;
            let releases = with_release(releases_of(existing)?, new);
            describe_releases(&mut desired.owner, &releases)?;
            Ok(listed_children(&releases))
        })
        .await
    }

    /// Removes the release `version` of product `id`: the product itself
    /// when it is the only one, else its release (a lower one becomes the
    /// head when it was the highest). False when there was no such
    /// release.
    pub async fn delete_product_release(
        &self,
        id: &ProductId,
        version: &Version,
    ) -> Result<bool, CatalogError> {
        let dn = product_dn(self.layout().products(), id);
        let existing = self.subtree(&dn).await?;
        let Some(owner) = existing
            .get(&dn.to_ascii_lowercase())
            .filter(|owner| is_written(owner))
        else {
            return Ok(false);
        };
        let mut releases = releases_of(owner)?;
        let before = releases.len();
        releases.retain(|release| release.parsed_version().as_ref() != Some(version));
        if releases.len() == before {
            return Ok(false);
        }
        if releases.is_empty() {
            return self.delete_owner(&dn).await;
        }
        let mut desired = CatalogEntries {
            owner: owner.clone(),
            versions: Vec::new(),
        };
        describe_releases(&mut desired.owner, &releases)?;
        let keep = listed_children(&releases);
        self.write_owner(desired, class::PRODUCT, WriteStep::Complete, |_, _| {
            Ok(keep)
        })
        .await?;
        Ok(true)
    }

    /// Stores `suite` under `ou=suites`, touching only what changed.
    #[instrument(skip_all, fields(suite = %suite.id))]
    pub async fn store_suite(&self, suite: &SuiteSource) -> Result<WriteSummary, CatalogError> {
        self.store_suite_until(suite, WriteStep::Complete).await
    }

    /// [`Directory::store_suite`], stopping after `step`.
    pub async fn store_suite_until(
        &self,
        suite: &SuiteSource,
        step: WriteStep,
    ) -> Result<WriteSummary, CatalogError> {
        let entries = suite_entries(self.layout().suites(), suite)?;
        self.write_owner(entries, class::SUITE, step, |_, _| Ok(BTreeSet::new()))
            .await
    }

    /// Removes product `id` and its object versions; false when it was not
    /// there.
    pub async fn delete_product(&self, id: &ProductId) -> Result<bool, CatalogError> {
        self.delete_owner(&product_dn(self.layout().products(), id))
            .await
    }

    /// Removes suite `id` and its object versions; false when it was not
    /// there.
    pub async fn delete_suite(&self, id: &SuiteId) -> Result<bool, CatalogError> {
        self.delete_owner(&suite_dn(self.layout().suites(), id))
            .await
    }

    /// The entries of the subtree at `dn` by lowercase DN (empty when `dn`
    /// does not exist).
    async fn subtree(&self, dn: &str) -> Result<BTreeMap<String, CatalogEntry>, CatalogError> {
        let found = self
            .search_if_present(dn, Scope::Subtree, "(objectClass=*)", &["*"])
            .await?;
        found
            .into_iter()
            .map(|entry| {
                let entry = from_search(entry)?;
                Ok((entry.dn.to_ascii_lowercase(), entry))
            })
            .collect()
    }

    async fn delete_owner(&self, dn: &str) -> Result<bool, CatalogError> {
        let existing = self.subtree(dn).await?;
        let owner_key = dn.to_ascii_lowercase();
        if !existing.contains_key(&owner_key) {
            return Ok(false);
        }
        // Hide the owner first (an owner without its digest reads as not
        // written), so a delete cut short never shows a partial product.
        self.modify(
            dn,
            vec![Mod::Replace(
                attribute::SOURCE_DIGEST.to_owned(),
                HashSet::<String>::new(),
            )],
        )
        .await?;
        for (key, entry) in &existing {
            if *key != owner_key {
                self.delete(&entry.dn).await?;
            }
        }
        self.delete(dn).await?;
        Ok(true)
    }

    /// Writes `desired` over what the owner's subtree holds. `prepare` sees
    /// the owner entry as it is (if any) before anything is written, may
    /// adjust what is desired, and returns the `cn`s (lowercase) of
    /// children to keep besides the desired ones.
    async fn write_owner(
        &self,
        mut desired: CatalogEntries,
        owner_class: &str,
        step: WriteStep,
        prepare: impl FnOnce(
            Option<&CatalogEntry>,
            &mut CatalogEntries,
        ) -> Result<BTreeSet<String>, CatalogError>,
    ) -> Result<WriteSummary, CatalogError> {
        let mut summary = WriteSummary::default();
        let existing = self.subtree(&desired.owner.dn).await?;
        let owner_key = desired.owner.dn.to_ascii_lowercase();
        let keep = prepare(existing.get(&owner_key), &mut desired)?;
        let current_owner = match existing.get(&owner_key) {
            Some(owner) => owner.clone(),
            None => {
                // A bare owner: it must exist before its children, and
                // without roleoutSourceDigest readers do not see it yet.
                let mut bare = CatalogEntry::new(desired.owner.dn.clone());
                bare.push(attribute::OBJECT_CLASS, owner_class);
                for cn in desired.owner.values(attribute::CN) {
                    bare.push(attribute::CN, cn);
                }
                self.add(&bare.dn, add_attributes(&bare)).await?;
                summary.added += 1;
                bare
            }
        };
        for child in &desired.versions {
            match existing.get(&child.dn.to_ascii_lowercase()) {
                None => {
                    self.add(&child.dn, add_attributes(child)).await?;
                    summary.added += 1;
                }
                Some(found) => {
                    // Same name, so same content unless edited by hand:
                    // put it back as the source says.
                    let modifications = differences(found, child);
                    if !modifications.is_empty() {
                        self.modify(&child.dn, modifications).await?;
                        summary.modified += 1;
                    }
                }
            }
        }
        if step == WriteStep::ChildrenAdded {
            return Ok(summary);
        }
        let modifications = differences(&current_owner, &desired.owner);
        if !modifications.is_empty() {
            self.modify(&desired.owner.dn, modifications).await?;
            summary.modified += 1;
        }
        if step == WriteStep::Switched {
            return Ok(summary);
        }
        let mut wanted: BTreeSet<String> = desired
            .all()
            .map(|entry| entry.dn.to_ascii_lowercase())
            .collect();
        for cn in keep {
            wanted.insert(format!("cn={},{owner_key}", ldap3::dn_escape(&cn)).to_ascii_lowercase());
        }
        for (key, entry) in &existing {
            if !wanted.contains(key) {
                self.delete(&entry.dn).await?;
                summary.deleted += 1;
            }
        }
        Ok(summary)
    }
}
