//! Products read by earlier builds, kept with what they were read from, so
//! that a build reads again only the products that changed.
//!
//! Typing a product's entries and checking it against its source digest is
//! most of a build's own work (about 0.6 s of a build of 10,000 products),
//! and the same products are read by every build of every role set. A
//! cached product is used only when the entries it would be read from are
//! exactly those it was read from: each product carries a validator, the
//! SHA-256 of the DN and change stamp of every entry the products search
//! returns for it (its own entry and every entry whose `roleoutOf` names
//! it, current or not). The stamp is `entryCSN`, which OpenLDAP changes on
//! every write of an entry, or, on a server that keeps none, `entryUSN`,
//! which 389 Directory Server's USN plugin changes likewise. So any change
//! to any of those entries, through Roleout or around it, an added entry
//! or a deleted one, gives another validator and the product is read again
//! (and checked against its digest again).
//!
//! A build with a cache first asks for the stamps of those entries (one
//! search, three or four short attributes per entry), then reads in full
//! only the products whose validator changed (one more search when any
//! did). A server that keeps neither stamp gives no validator, and nothing
//! is cached.
//!
//! Each product is consistent in itself, as read; two products of one
//! build may have been read by different searches, as two separate
//! searches of today would.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use roleout_model::ids::{ProductId, Sha256};
use roleout_model::product::ProductSource;

use crate::catalog::entry::{CatalogEntry, sha256};
use crate::catalog::mapping::attribute;

/// The operational attribute slapd changes on every write of an entry.
pub(crate) const ENTRY_CSN: &str = "entryCSN";

/// The one 389 Directory Server changes on every write of an entry (with
/// its USN plugin enabled), used where an entry has no `entryCSN`.
pub(crate) const ENTRY_USN: &str = "entryUSN";

/// The most products kept; past it the cache starts over. The synthetic
/// catalog's products take about 8 KB each (80 MB for 10,000, measured
/// with a counting allocator around a build).
pub const MAX_CACHED_PRODUCTS: usize = 50_000;

/// Products read from the directory, by id, with their validators. Clones
/// share the products. A builder keeps one for as long as it lives
/// (roleoutd's, for the life of the process); pass it to
/// [`crate::Directory::load_suite_build_sources_cached`].
#[derive(Debug, Clone, Default)]
pub struct ProductCache {
    products: Arc<Mutex<HashMap<ProductId, Cached>>>,
}

#[derive(Debug)]
struct Cached {
    validator: Sha256,
    /// Every release, highest version first.
    releases: Vec<Arc<ProductSource>>,
    /// What a build records of the product (`releases::catalog_digest`).
    digest: Sha256,
}

impl ProductCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Products kept.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Forgets every product.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ProductId, Cached>> {
        // A panic while holding the lock leaves a map that is still whole.
        self.products.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Product `id` (every release, highest version first) and its
    /// catalog digest, if it was read from entries with this validator.
    pub(crate) fn get(
        &self,
        id: &ProductId,
        validator: &Sha256,
    ) -> Option<(Vec<Arc<ProductSource>>, Sha256)> {
        self.lock()
            .get(id)
            .filter(|cached| cached.validator == *validator)
            .map(|cached| (cached.releases.clone(), cached.digest.clone()))
    }

    /// Keeps the releases of a product (at least one), read from entries
    /// with `validator`.
    pub(crate) fn insert(
        &self,
        validator: Sha256,
        releases: Vec<Arc<ProductSource>>,
        digest: Sha256,
    ) {
        let Some(id) = releases.first().map(|release| release.id.clone()) else {
            return;
        };
        let mut products = self.lock();
        if products.len() >= MAX_CACHED_PRODUCTS && !products.contains_key(&id) {
            products.clear();
        }
        products.insert(
            id,
            Cached {
                validator,
                releases,
                digest,
            },
        );
    }
}

/// The member of a products search an entry counts for in validators: the
/// product its `roleoutOf` names, else the product its `cn` names. Both
/// searches of a cached build use this one rule, so they count the same
/// entries.
pub(crate) fn validator_member(
    entry: &CatalogEntry,
    wanted: &HashMap<&str, usize>,
) -> Option<usize> {
    match entry.iter_values(attribute::OF).next() {
        Some(owner) => wanted.get(owner).copied(),
        None => entry
            .iter_values(attribute::CN)
            .find_map(|id| wanted.get(id).copied()),
    }
}

/// The DNs and change stamps of one product's entries, as they arrive.
#[derive(Debug, Default, Clone)]
pub(crate) struct Validator {
    entries: Vec<(String, String)>,
    /// An entry came without a stamp: no validator.
    incomplete: bool,
}

impl Validator {
    /// Counts `entry`.
    pub(crate) fn add(&mut self, entry: &CatalogEntry) {
        let stamp = entry
            .iter_values(ENTRY_CSN)
            .next()
            .map(|csn| format!("csn {csn}"))
            .or_else(|| {
                entry
                    .iter_values(ENTRY_USN)
                    .next()
                    .map(|usn| format!("usn {usn}"))
            });
        match stamp {
            // The server spells a DN the same way in every search.
            Some(stamp) => self.entries.push((entry.dn.clone(), stamp)),
            None => self.incomplete = true,
        }
    }

    /// The validator, unless an entry had no stamp or none came.
    pub(crate) fn finish(mut self) -> Option<Sha256> {
        if self.incomplete || self.entries.is_empty() {
            return None;
        }
        self.entries.sort_unstable();
        let mut text = String::new();
        for (dn, csn) in &self.entries {
            text.push_str(dn);
            text.push('\n');
            text.push_str(csn);
            text.push('\n');
        }
        Some(sha256(text.as_bytes()))
    }
}

#[cfg(test)]
// A failed unwrap is a failed test, with its location.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn entry(dn: &str, attributes: &[(&str, &str)]) -> CatalogEntry {
        let mut entry = CatalogEntry::new(dn);
        for (name, value) in attributes {
            entry.push(name, *value);
        }
        entry
    }

    #[test]
    fn validators_change_with_any_entry_and_not_with_order() {
        let owner = entry("cn=p,ou=products", &[("cn", "p"), (ENTRY_CSN, "1")]);
        let child = entry(
            "cn=v,cn=p,ou=products",
            &[("cn", "v"), ("roleoutOf", "p"), (ENTRY_CSN, "2")],
        );
        let changed = entry(
            "cn=v,cn=p,ou=products",
            &[("cn", "v"), ("roleoutOf", "p"), (ENTRY_CSN, "3")],
        );
        let of = |entries: &[&CatalogEntry]| {
            let mut validator = Validator::default();
            entries.iter().for_each(|entry| validator.add(entry));
            validator.finish()
        };
        let both = of(&[&owner, &child]).unwrap();
        assert_eq!(of(&[&child, &owner]).unwrap(), both);
        assert_ne!(of(&[&owner, &changed]).unwrap(), both);
        assert_ne!(of(&[&owner]).unwrap(), both, "a deleted entry");
        let bare = entry("cn=w,cn=p,ou=products", &[("roleoutOf", "p")]);
        assert_eq!(of(&[&owner, &bare]), None, "an entry without a stamp");
        assert_eq!(of(&[]), None);
    }

    #[test]
    fn an_entry_usn_stands_in_for_a_missing_entry_csn() {
        let of = |usn: &str| {
            let mut validator = Validator::default();
            validator.add(&entry(
                "cn=p,ou=products",
                &[("cn", "p"), ("entryusn", usn)],
            ));
            validator.finish()
        };
        assert_eq!(of("7"), of("7"));
        assert!(of("7").is_some());
        assert_ne!(of("7"), of("8"));
        // A CSN and a USN of the same text are different stamps.
        let mut csn = Validator::default();
        csn.add(&entry("cn=p,ou=products", &[("cn", "p"), (ENTRY_CSN, "7")]));
        assert_ne!(csn.finish(), of("7"));
    }

    #[test]
    fn entries_count_for_the_product_they_belong_to() {
        let wanted = HashMap::from([("p", 0), ("q", 1)]);
        let owner = entry("cn=q,ou=products", &[("cn", "q")]);
        let child = entry("cn=q,cn=p,ou=products", &[("cn", "q"), ("roleoutOf", "p")]);
        let other = entry("cn=x,ou=products", &[("cn", "x")]);
        assert_eq!(validator_member(&owner, &wanted), Some(1));
        assert_eq!(
            validator_member(&child, &wanted),
            Some(0),
            "roleoutOf first"
        );
        assert_eq!(validator_member(&other, &wanted), None);
    }

    #[test]
    fn a_full_cache_starts_over() {
        let cache = ProductCache::new();
        let digest = sha256(b"x");
        let (_, _, products) = crate::catalog::synthetic::synthetic(1, 2, 1);
        for index in 0..=MAX_CACHED_PRODUCTS {
            let mut source = products[0].clone();
            source.id = ProductId::new(format!("p{index}")).unwrap();
            cache.insert(digest.clone(), vec![Arc::new(source)], digest.clone());
        }
        assert_eq!(cache.len(), 1);
    }
}
