//! Built suites under `ou=builds`: one entry per suite and role set, holding
//! the canonical bytes of the suite as that role set gets it, their digest,
//! a serial that only grows, and the source digests it was built from.
//!
//! # Entry layout
//!
//! `cn=SUITE@ROLESET,ou=builds,BASE`, where `ROLESET` is the role-set key
//! (sorted role names joined by `+`, or `default`). `@` is in neither
//! alphabet, so the name splits back unambiguously. Attributes:
//! `roleoutSuiteName`, `roleoutRoleSet`, `roleoutDigest` (SHA-256 of the
//! canonical bytes), `roleoutCanonical` (the bytes themselves),
//! `roleoutSerial`, `roleoutBuiltFrom` (one `KIND/ID=DIGEST` value per
//! source: `suite/domino=…`, `product/notes-client=…`) and
//! `roleoutBuiltAt`.
//!
//! # Why the bytes live in the entry
//!
//! A built suite is a few kilobytes to a few hundred (the example suite's
//! largest role set is under 20 KiB): small enough for one attribute value,
//! and keeping it there means a build is replicated, backed up and read with
//! the rest of the directory, by any roleoutd, with no second store to keep
//! in step. slapd refuses requests over `sockbuf_max_incoming_auth` (4 MiB
//! by default), so builds larger than [`MAX_CANONICAL_BYTES`] are refused
//! with an error that says so rather than failing inside slapd.
//!
//! # Writes
//!
//! Writes compare and swap on the serial: a modify deletes the serial value
//! it read and adds the next one, so of two builders racing on one entry
//! one wins and the other re-reads (LDAP applies a modify atomically and
//! fails it as a whole when the old value is gone).

use std::collections::{BTreeMap, HashSet};

use ldap3::{Mod, Scope};
use tracing::instrument;

use roleout_model::ids::{ProductId, Sha256, SuiteId};
use roleout_model::protocol::Timestamp;

use crate::catalog::CatalogError;
use crate::catalog::entry::CatalogEntry;
use crate::catalog::mapping::{attribute, class, product_dn, suite_dn};
use crate::catalog::store::from_search;
use crate::connection::Directory;
use crate::error::result_code;
use crate::escape;

/// The largest canonical form stored (see the module comment).
pub const MAX_CANONICAL_BYTES: usize = 3 * 1024 * 1024;

/// How many times a write re-reads and retries after losing a race.
const WRITE_ATTEMPTS: usize = 5;

/// Attribute and class names of build entries.
mod names {
    pub(super) const CLASS: &str = "roleoutBuild";
    pub(super) const SUITE: &str = "roleoutSuiteName";
    pub(super) const ROLE_SET: &str = "roleoutRoleSet";
    pub(super) const CANONICAL: &str = "roleoutCanonical";
    pub(super) const SERIAL: &str = "roleoutSerial";
    pub(super) const BUILT_FROM: &str = "roleoutBuiltFrom";
    pub(super) const BUILT_AT: &str = "roleoutBuiltAt";
}

/// A build as the directory holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBuild {
    /// The suite.
    pub suite: SuiteId,
    /// The role-set key it was built for (`developer+end-user`, `default`).
    pub role_set: String,
    /// SHA-256 of `canonical`.
    pub digest: Sha256,
    /// Raised each time the digest changes; starts at 1.
    pub serial: u64,
    /// The canonical JSON of the assembled suite.
    pub canonical: Vec<u8>,
    /// The sources it was built from: `suite/ID` and `product/ID` to their
    /// `roleoutSourceDigest` at build time.
    pub built_from: BTreeMap<String, Sha256>,
    /// When its content was built.
    pub built_at: Timestamp,
}

/// A build to store (its serial is the directory's business).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBuild {
    /// The suite.
    pub suite: SuiteId,
    /// The role-set key.
    pub role_set: String,
    /// The canonical bytes.
    pub canonical: Vec<u8>,
    /// Their SHA-256 (checked against the bytes before writing).
    pub digest: Sha256,
    /// The sources, as in [`StoredBuild::built_from`].
    pub built_from: BTreeMap<String, Sha256>,
    /// When it was built.
    pub built_at: Timestamp,
}

/// What storing a build did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildWrite {
    /// There was no build for this suite and role set: serial 1.
    Created,
    /// The content changed: new digest, serial raised.
    Replaced {
        /// The digest it replaced.
        previous_digest: Sha256,
        /// The serial it replaced.
        previous_serial: u64,
    },
    /// Same content, but built from changed sources (a slot this role set
    /// does not see changed): the source list was brought up to date, the
    /// digest, serial and bytes were left alone.
    SourcesRefreshed,
    /// Everything already as given: nothing was written.
    Unchanged,
}

/// Checks a role-set key: `default`, or role names joined by `+`.
fn check_role_set(role_set: &str) -> Result<(), CatalogError> {
    let valid = !role_set.is_empty()
        && role_set
            .split('+')
            .all(|name| roleout_model::ids::RoleName::new(name).is_ok());
    if valid {
        Ok(())
    } else {
        Err(CatalogError::Unrepresentable {
            what: format!("role set {role_set:?}"),
            reason: "a role-set key is `default` or role names joined by `+`".to_owned(),
        })
    }
}

/// The DN of the build of `suite` for `role_set` under `builds_dn`.
pub fn build_dn(builds_dn: &str, suite: &SuiteId, role_set: &str) -> String {
    escape::child_dn(attribute::CN, &format!("{suite}@{role_set}"), builds_dn)
}

/// `suite/ID=DIGEST` values, sorted.
fn built_from_values(built_from: &BTreeMap<String, Sha256>) -> HashSet<String> {
    built_from
        .iter()
        .map(|(source, digest)| format!("{source}={digest}"))
        .collect()
}

/// `when` as an LDAP GeneralizedTime (`20240501120000Z`, or with the
/// milliseconds, `20240501120000.250Z`).
pub(crate) fn generalized_time(when: Timestamp) -> String {
    // RFC 3339 `2024-05-01T12:00:00.250Z` without its separators.
    when.to_string()
        .chars()
        .filter(|c| !matches!(c, '-' | ':' | 'T'))
        .collect()
}

/// Reads back a GeneralizedTime written by [`generalized_time`].
pub(crate) fn parse_generalized_time(text: &str) -> Option<Timestamp> {
    let body = text.strip_suffix('Z')?;
    let (whole, fraction) = match body.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (body, None),
    };
    if whole.len() != 14 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}",
        &whole[0..4],
        &whole[4..6],
        &whole[6..8],
        &whole[8..10],
        &whole[10..12],
        &whole[12..14]
    );
    if let Some(fraction) = fraction {
        rfc3339.push('.');
        rfc3339.push_str(fraction);
    }
    rfc3339.push('Z');
    rfc3339.parse().ok()
}

fn build_from_entry(entry: &CatalogEntry) -> Result<StoredBuild, CatalogError> {
    let suite = SuiteId::new(entry.required(names::SUITE)?)
        .map_err(|error| entry.malformed(format!("{}: {error}", names::SUITE)))?;
    let role_set = entry.required(names::ROLE_SET)?.to_owned();
    let digest = Sha256::new(entry.required(attribute::DIGEST)?)
        .map_err(|error| entry.malformed(format!("{}: {error}", attribute::DIGEST)))?;
    let canonical = entry.required(names::CANONICAL)?.as_bytes().to_vec();
    let serial = entry
        .number::<u64>(names::SERIAL)?
        .ok_or_else(|| entry.malformed(format!("{} is missing", names::SERIAL)))?;
    let mut built_from = BTreeMap::new();
    for value in entry.values(names::BUILT_FROM) {
        let parsed = value
            .split_once('=')
            .and_then(|(source, digest)| Some((source, Sha256::new(digest).ok()?)));
        let Some((source, digest)) = parsed else {
            return Err(entry.malformed(format!(
                "{} value {value:?} is not KIND/ID=DIGEST",
                names::BUILT_FROM
            )));
        };
        built_from.insert(source.to_owned(), digest);
    }
    let built_at_text = entry.required(names::BUILT_AT)?;
    let built_at = parse_generalized_time(built_at_text).ok_or_else(|| {
        entry.malformed(format!(
            "{} value {built_at_text:?} is not a time Roleout writes",
            names::BUILT_AT
        ))
    })?;
    let computed = crate::catalog::entry::sha256(&canonical);
    if computed != digest {
        return Err(entry.malformed(format!(
            "{} is {digest} but the stored bytes digest to {computed} (changed outside Roleout?)",
            attribute::DIGEST
        )));
    }
    Ok(StoredBuild {
        suite,
        role_set,
        digest,
        serial,
        canonical,
        built_from,
        built_at,
    })
}

fn text_set(value: impl Into<String>) -> HashSet<String> {
    HashSet::from([value.into()])
}

impl Directory {
    /// The stored build of `suite` for `role_set`, if any (one search).
    #[instrument(skip_all, fields(suite = %suite, roles = role_set))]
    pub async fn load_build(
        &self,
        suite: &SuiteId,
        role_set: &str,
    ) -> Result<Option<StoredBuild>, CatalogError> {
        check_role_set(role_set)?;
        let dn = build_dn(self.layout().builds(), suite, role_set);
        match self.read(&dn, &["*"]).await? {
            None => Ok(None),
            Some(entry) => Ok(Some(build_from_entry(&from_search(entry)?)?)),
        }
    }

    /// Every stored build, or those of `suite` (one search), sorted by
    /// suite and role set.
    pub async fn builds(&self, suite: Option<&SuiteId>) -> Result<Vec<StoredBuild>, CatalogError> {
        let filter = match suite {
            Some(suite) => escape::and([
                format!("(objectClass={})", names::CLASS).as_str(),
                escape::equality(names::SUITE, suite.as_str()).as_str(),
            ]),
            None => format!("(objectClass={})", names::CLASS),
        };
        let found = match self
            .search(self.layout().builds(), Scope::OneLevel, &filter, &["*"])
            .await
        {
            Ok(found) => found,
            Err(error) if error.is_no_such_object() => Vec::new(),
            Err(error) => return Err(error.into()),
        };
        let mut builds = found
            .into_iter()
            .map(|entry| build_from_entry(&from_search(entry)?))
            .collect::<Result<Vec<_>, _>>()?;
        builds.sort_by(|a, b| (&a.suite, &a.role_set).cmp(&(&b.suite, &b.role_set)));
        Ok(builds)
    }

    /// Stores `build`: creates the entry, replaces its content and raises
    /// its serial when the digest differs, refreshes only the source list
    /// when just that differs, and writes nothing when all is the same.
    #[instrument(skip_all, fields(suite = %build.suite, roles = build.role_set))]
    pub async fn store_build(
        &self,
        build: &NewBuild,
    ) -> Result<(StoredBuild, BuildWrite), CatalogError> {
        check_role_set(&build.role_set)?;
        if build.canonical.len() > MAX_CANONICAL_BYTES {
            return Err(CatalogError::Unrepresentable {
                what: format!("the build of suite {} for {}", build.suite, build.role_set),
                reason: format!(
                    "its canonical form is {} bytes, more than the {MAX_CANONICAL_BYTES} a build \
                     entry holds",
                    build.canonical.len()
                ),
            });
        }
        let computed = crate::catalog::entry::sha256(&build.canonical);
        if computed != build.digest {
            return Err(CatalogError::Unrepresentable {
                what: format!("the build of suite {} for {}", build.suite, build.role_set),
                reason: format!(
                    "its digest is given as {} but its bytes digest to {computed}",
                    build.digest
                ),
            });
        }
        let canonical = String::from_utf8(build.canonical.clone()).map_err(|_| {
            CatalogError::Unrepresentable {
                what: format!("the build of suite {} for {}", build.suite, build.role_set),
                reason: "its canonical form is not UTF-8 JSON".to_owned(),
            }
        })?;
        let dn = build_dn(self.layout().builds(), &build.suite, &build.role_set);
        let built_from = built_from_values(&build.built_from);
        let built_at = generalized_time(build.built_at);
        let mut last_error = None;
        for _ in 0..WRITE_ATTEMPTS {
            let existing = self.load_build(&build.suite, &build.role_set).await?;
            let stored = StoredBuild {
                suite: build.suite.clone(),
                role_set: build.role_set.clone(),
                digest: build.digest.clone(),
                serial: 1,
                canonical: build.canonical.clone(),
                built_from: build.built_from.clone(),
                built_at: build.built_at,
            };
            let Some(existing) = existing else {
                let attributes = vec![
                    ("objectClass".to_owned(), text_set(names::CLASS)),
                    (
                        attribute::CN.to_owned(),
                        text_set(format!("{}@{}", build.suite, build.role_set)),
                    ),
                    (names::SUITE.to_owned(), text_set(build.suite.as_str())),
                    (
                        names::ROLE_SET.to_owned(),
                        text_set(build.role_set.as_str()),
                    ),
                    (
                        attribute::DIGEST.to_owned(),
                        text_set(build.digest.as_str()),
                    ),
                    (names::CANONICAL.to_owned(), text_set(canonical.as_str())),
                    (names::SERIAL.to_owned(), text_set("1")),
                    (names::BUILT_AT.to_owned(), text_set(built_at.as_str())),
                ]
                .into_iter()
                .chain(
                    (!built_from.is_empty())
                        .then(|| (names::BUILT_FROM.to_owned(), built_from.clone())),
                )
                .collect();
                match self.add(&dn, attributes).await {
                    Ok(()) => return Ok((stored, BuildWrite::Created)),
                    // Another builder created it first: read it and decide again.
                    Err(error) if error.is_already_exists() => {
                        last_error = Some(error);
                        continue;
                    }
                    Err(error) => return Err(error.into()),
                }
            };
            // The serial compare-and-swap: fails as a whole (no such
            // attribute value) when someone wrote the entry since we read it.
            let serial_check = |next: u64| {
                vec![
                    Mod::Delete(
                        names::SERIAL.to_owned(),
                        text_set(existing.serial.to_string()),
                    ),
                    Mod::Add(names::SERIAL.to_owned(), text_set(next.to_string())),
                ]
            };
            let (modifications, outcome, result) = if existing.digest == build.digest {
                if existing.built_from == build.built_from {
                    return Ok((existing, BuildWrite::Unchanged));
                }
                let mut modifications = serial_check(existing.serial);
                modifications.push(Mod::Replace(
                    names::BUILT_FROM.to_owned(),
                    built_from.clone(),
                ));
                let refreshed = StoredBuild {
                    built_from: build.built_from.clone(),
                    ..existing.clone()
                };
                (modifications, BuildWrite::SourcesRefreshed, refreshed)
            } else {
                let serial = existing.serial + 1;
                let mut modifications = serial_check(serial);
                modifications.extend([
                    Mod::Replace(
                        attribute::DIGEST.to_owned(),
                        text_set(build.digest.as_str()),
                    ),
                    Mod::Replace(names::CANONICAL.to_owned(), text_set(canonical.as_str())),
                    Mod::Replace(names::BUILT_FROM.to_owned(), built_from.clone()),
                    Mod::Replace(names::BUILT_AT.to_owned(), text_set(built_at.as_str())),
                ]);
                let outcome = BuildWrite::Replaced {
                    previous_digest: existing.digest.clone(),
                    previous_serial: existing.serial,
                };
                (modifications, outcome, StoredBuild { serial, ..stored })
            };
            match self.modify(&dn, modifications).await {
                Ok(()) => return Ok((result, outcome)),
                Err(error)
                    if error.ldap_code() == Some(result_code::NO_SUCH_ATTRIBUTE)
                        || error.is_no_such_object() =>
                {
                    last_error = Some(error);
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(match last_error {
            Some(error) => error.into(),
            None => CatalogError::NotFound {
                what: format!("build of suite {} for {}", build.suite, build.role_set),
            },
        })
    }

    /// Removes the build of `suite` for `role_set`; false when there was
    /// none.
    pub async fn delete_build(
        &self,
        suite: &SuiteId,
        role_set: &str,
    ) -> Result<bool, CatalogError> {
        check_role_set(role_set)?;
        let dn = build_dn(self.layout().builds(), suite, role_set);
        match self.delete(&dn).await {
            Ok(()) => Ok(true),
            Err(error) if error.is_no_such_object() => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// The current `roleoutSourceDigest` of suite `suite` and of
    /// `products`, keyed like [`StoredBuild::built_from`] (`suite/ID`,
    /// `product/ID`), in one search. A source that is missing or not
    /// completely written has no key.
    #[instrument(skip_all, fields(suite = %suite, products = products.len()))]
    pub async fn source_digests(
        &self,
        suite: &SuiteId,
        products: &[ProductId],
    ) -> Result<BTreeMap<String, Sha256>, CatalogError> {
        let suite_filter = escape::and([
            format!("(objectClass={})", class::SUITE).as_str(),
            escape::equality(attribute::CN, suite.as_str()).as_str(),
        ]);
        let product_filter = if products.is_empty() {
            String::new()
        } else if products.len() > crate::catalog::MAX_FILTERED_MEMBERS {
            format!("(objectClass={})", class::PRODUCT)
        } else {
            let names: String = products
                .iter()
                .map(|product| escape::equality(attribute::CN, product.as_str()))
                .collect();
            format!("(&(objectClass={})(|{names}))", class::PRODUCT)
        };
        let filter = format!("(|{suite_filter}{product_filter})");
        let found = self
            .search(
                self.layout().base(),
                Scope::Subtree,
                &filter,
                &[attribute::CN, attribute::SOURCE_DIGEST],
            )
            .await?;
        let wanted_suite = suite_dn(self.layout().suites(), suite).to_ascii_lowercase();
        let wanted_products: BTreeMap<String, &ProductId> = products
            .iter()
            .map(|product| {
                (
                    product_dn(self.layout().products(), product).to_ascii_lowercase(),
                    product,
                )
            })
            .collect();
        let mut digests = BTreeMap::new();
        for entry in found {
            let entry = from_search(entry)?;
            let Some(text) = entry.single(attribute::SOURCE_DIGEST)? else {
                continue;
            };
            let digest = Sha256::new(text).map_err(|error| {
                entry.malformed(format!("{}: {error}", attribute::SOURCE_DIGEST))
            })?;
            let key = entry.dn.to_ascii_lowercase();
            if key == wanted_suite {
                digests.insert(format!("suite/{suite}"), digest);
            } else if let Some(product) = wanted_products.get(&key) {
                digests.insert(format!("product/{product}"), digest);
            }
        }
        Ok(digests)
    }

    /// The ids of every completely written suite (one search), sorted.
    pub async fn suite_ids(&self) -> Result<Vec<SuiteId>, CatalogError> {
        let found = match self
            .search(
                self.layout().suites(),
                Scope::OneLevel,
                &format!("(objectClass={})", class::SUITE),
                &[attribute::CN, attribute::SOURCE_DIGEST],
            )
            .await
        {
            Ok(found) => found,
            Err(error) if error.is_no_such_object() => Vec::new(),
            Err(error) => return Err(error.into()),
        };
        let mut ids = Vec::new();
        for entry in found {
            let entry = from_search(entry)?;
            if entry.single(attribute::SOURCE_DIGEST)?.is_none() {
                continue;
            }
            let cn = entry.required(attribute::CN)?;
            ids.push(
                SuiteId::new(cn)
                    .map_err(|error| entry.malformed(format!("{}: {error}", attribute::CN)))?,
            );
        }
        ids.sort();
        Ok(ids)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    #[test]
    fn generalized_times_round_trip() {
        for millis in [0, 1_714_564_800_000, 1_714_564_800_250] {
            let when = Timestamp::from_unix_millis(millis).unwrap();
            let text = generalized_time(when);
            assert!(text.ends_with('Z'), "{text}");
            assert_eq!(parse_generalized_time(&text), Some(when), "{text}");
        }
        assert_eq!(
            generalized_time(Timestamp::from_unix_seconds(1_714_564_800).unwrap()),
            "20240501120000Z"
        );
        assert_eq!(parse_generalized_time("2024050112Z"), None);
    }

    #[test]
    fn build_names_split_back_and_role_sets_are_checked() {
        let suite = SuiteId::new("domino").unwrap();
        assert_eq!(
            build_dn("ou=builds,o=x", &suite, "developer+end-user"),
            "cn=domino@developer\\+end-user,ou=builds,o=x"
        );
        assert!(check_role_set("default").is_ok());
        assert!(check_role_set("developer+end-user").is_ok());
        for bad in ["", "a++b", "a,b", "+a"] {
            assert!(check_role_set(bad).is_err(), "{bad}");
        }
    }
}
