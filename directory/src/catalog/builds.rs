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
//! canonical bytes), `roleoutCanonical` (the bytes themselves, or absent
//! for a build stored in parts, see below),
//! `roleoutSerial`, `roleoutBuiltFrom` (one `KIND/ID=DIGEST` value per
//! source: `suite/domino=…`, `product/notes-client=…`) and
//! `roleoutBuiltAt`.
//!
//! # Why the bytes live in the directory
//!
//! A built suite is a few kilobytes to a few hundred (the example suite's
//! largest role set is under 20 KiB), but a suite of 10,000 products is
//! over 8 MB. Keeping builds in the directory means a build is replicated,
//! backed up and read with the rest of the directory, by any roleoutd, with
//! no second store to keep in step. slapd refuses requests over
//! `sockbuf_max_incoming_auth` (4 MiB by default), so:
//!
//! - a build of up to [`INLINE_CANONICAL_BYTES`] is held in
//!   `roleoutCanonical` of its entry (one search reads it);
//! - a larger one is held in parts, child entries of the build entry named
//!   `part-SERIAL-DIGEST-INDEX` (class `roleoutBuild`, with
//!   `roleoutCanonical` holding at most [`PART_BYTES`] of the bytes, split
//!   at character boundaries, and `roleoutSerial` and `roleoutDigest` of
//!   the build they belong to); the build entry has no `roleoutCanonical`.
//!   A reader takes the parts of the entry's serial and digest (one more
//!   one-level search), in index order, and checks the whole against the
//!   digest.
//!
//! # Writes
//!
//! Writes compare and swap on the serial: a modify deletes the serial value
//! it read and adds the next one, so of two builders racing on one entry
//! one wins and the other re-reads (LDAP applies a modify atomically and
//! fails it as a whole when the old value is gone).
//!
//! A build in parts is never visible half-written. Its parts are added
//! first, named for the serial the build will get; then the one modify
//! switches the entry to the new serial and digest. A reader sees the old
//! build or the new one; one that read the old entry just before the switch
//! and finds its parts gone reads again. A new entry for a build in parts
//! starts at serial 0, which readers take as "no build yet". After a
//! switch, the writer deletes the parts of every serial up to the new one
//! except the current build's (parts of later serials belong to a builder
//! writing the next build), so old parts and those of interrupted or lost
//! writes go with the next write.

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

/// The largest canonical form stored inline, in the build entry itself;
/// larger ones are stored in parts (see the module comment). Well under
/// slapd's 4 MiB request limit, with room for the other attributes.
pub const INLINE_CANONICAL_BYTES: usize = 1024 * 1024;

/// The most bytes of a build one part entry holds.
pub const PART_BYTES: usize = 1024 * 1024;

/// The largest canonical form stored at all: a bound on what one build may
/// add to the directory (256 parts), far above any real suite.
pub const MAX_CANONICAL_BYTES: usize = 256 * PART_BYTES;

/// How the `cn` of a part entry starts.
const PART_PREFIX: &str = "part-";

/// How many times a write re-reads and retries after losing a race.
const WRITE_ATTEMPTS: usize = 5;

/// How many times a reader reads again when a writer replaced a build in
/// parts while it read.
const READ_ATTEMPTS: usize = 3;

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
    /// Their SHA-256, as the builder computed it (not computed again here:
    /// every read checks the bytes against it).
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
pub fn parse_generalized_time(text: &str) -> Option<Timestamp> {
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

/// What a build entry says about its build, without the bytes: enough to
/// decide whether a new build differs, and to find the parts of a large
/// one.
#[derive(Debug, Clone)]
struct BuildHead {
    suite: SuiteId,
    role_set: String,
    digest: Sha256,
    serial: u64,
    built_from: BTreeMap<String, Sha256>,
    built_at: Timestamp,
}

impl BuildHead {
    /// The build with its bytes, checked against the digest.
    fn with_canonical(
        self,
        entry: &CatalogEntry,
        canonical: Vec<u8>,
    ) -> Result<StoredBuild, CatalogError> {
        let computed = crate::catalog::entry::sha256(&canonical);
        if computed != self.digest {
            return Err(entry.malformed(format!(
                "{} is {} but the stored bytes digest to {computed} (changed outside Roleout?)",
                attribute::DIGEST,
                self.digest
            )));
        }
        Ok(StoredBuild {
            suite: self.suite,
            role_set: self.role_set,
            digest: self.digest,
            serial: self.serial,
            canonical,
            built_from: self.built_from,
            built_at: self.built_at,
        })
    }
}

/// The head of a build entry; `None` for an entry whose first build is
/// still being written (serial 0, see the module comment).
fn head_from_entry(entry: &CatalogEntry) -> Result<Option<BuildHead>, CatalogError> {
    let serial = entry
        .number::<u64>(names::SERIAL)?
        .ok_or_else(|| entry.malformed(format!("{} is missing", names::SERIAL)))?;
    if serial == 0 {
        return Ok(None);
    }
    let suite = SuiteId::new(entry.required(names::SUITE)?)
        .map_err(|error| entry.malformed(format!("{}: {error}", names::SUITE)))?;
    let role_set = entry.required(names::ROLE_SET)?.to_owned();
    let digest = Sha256::new(entry.required(attribute::DIGEST)?)
        .map_err(|error| entry.malformed(format!("{}: {error}", attribute::DIGEST)))?;
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
    Ok(Some(BuildHead {
        suite,
        role_set,
        digest,
        serial,
        built_from,
        built_at,
    }))
}

/// The `cn` of part `index` of the build with `digest` written for
/// `serial`. Unique per (serial, digest), so writers racing for one serial
/// with different content never share a part, and one writing the same
/// content again finds the same parts.
fn part_name(serial: u64, digest: &Sha256, index: usize) -> String {
    format!("{PART_PREFIX}{serial}-{digest}-{index}")
}

/// Splits canonical JSON into parts of at most [`PART_BYTES`] bytes, at
/// character boundaries (every part stays UTF-8 text), always the same way.
fn split_parts(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = PART_BYTES.min(rest.len());
        // A UTF-8 character is at most 4 bytes and PART_BYTES is far
        // larger, so this stops above 0.
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (part, tail) = rest.split_at(end);
        parts.push(part);
        rest = tail;
    }
    parts
}

/// One part entry as read back.
struct Part {
    serial: u64,
    digest: Sha256,
    index: usize,
    text: String,
}

fn part_from_entry(entry: CatalogEntry) -> Result<Part, CatalogError> {
    let serial = entry
        .number::<u64>(names::SERIAL)?
        .ok_or_else(|| entry.malformed(format!("{} is missing", names::SERIAL)))?;
    let digest = Sha256::new(entry.required(attribute::DIGEST)?)
        .map_err(|error| entry.malformed(format!("{}: {error}", attribute::DIGEST)))?;
    let cn = entry.required(attribute::CN)?;
    let index = cn
        .strip_prefix(PART_PREFIX)
        .and_then(|rest| rest.rsplit_once('-'))
        .and_then(|(_, index)| index.parse::<usize>().ok())
        .ok_or_else(|| {
            entry.malformed(format!(
                "{} {cn:?} is not {PART_PREFIX}SERIAL-DIGEST-INDEX",
                attribute::CN
            ))
        })?;
    let text = entry
        .single(names::CANONICAL)?
        .unwrap_or_default()
        .to_owned();
    Ok(Part {
        serial,
        digest,
        index,
        text,
    })
}

/// The bytes of the build `head` from its parts (any order, others
/// mixed in), or why they do not make it up.
fn assemble_parts(head: &BuildHead, parts: &[Part]) -> Result<Vec<u8>, String> {
    let mut mine: Vec<&Part> = parts
        .iter()
        .filter(|part| part.serial == head.serial && part.digest == head.digest)
        .collect();
    if mine.is_empty() {
        return Err(format!(
            "it has no {} and no parts for serial {}",
            names::CANONICAL,
            head.serial
        ));
    }
    mine.sort_by_key(|part| part.index);
    let mut bytes = Vec::with_capacity(mine.iter().map(|part| part.text.len()).sum());
    for (expected, part) in mine.iter().enumerate() {
        if part.index != expected {
            return Err(format!(
                "part {expected} of serial {} is missing",
                head.serial
            ));
        }
        bytes.extend_from_slice(part.text.as_bytes());
    }
    let computed = crate::catalog::entry::sha256(&bytes);
    if computed != head.digest {
        return Err(format!(
            "its {} parts for serial {} digest to {computed}, not {} (a part is missing or was \
             changed outside Roleout)",
            mine.len(),
            head.serial,
            head.digest
        ));
    }
    Ok(bytes)
}

fn text_set(value: impl Into<String>) -> HashSet<String> {
    HashSet::from([value.into()])
}

/// The attributes of a build entry a write needs: all but the bytes.
const HEAD_ATTRIBUTES: [&str; 6] = [
    names::SUITE,
    names::ROLE_SET,
    attribute::DIGEST,
    names::SERIAL,
    names::BUILT_FROM,
    names::BUILT_AT,
];

impl Directory {
    /// The stored build of `suite` for `role_set`, if any: one search, and
    /// one more for a build stored in parts.
    #[instrument(skip_all, fields(suite = %suite, roles = role_set))]
    pub async fn load_build(
        &self,
        suite: &SuiteId,
        role_set: &str,
    ) -> Result<Option<StoredBuild>, CatalogError> {
        check_role_set(role_set)?;
        let dn = build_dn(self.layout().builds(), suite, role_set);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let Some(entry) = self.read(&dn, &["*"]).await? else {
                return Ok(None);
            };
            let entry = from_search(entry)?;
            let Some(head) = head_from_entry(&entry)? else {
                return Ok(None);
            };
            if let Some(text) = entry.single(names::CANONICAL)? {
                let canonical = text.as_bytes().to_vec();
                return head.with_canonical(&entry, canonical).map(Some);
            }
            let parts = self.read_parts(&dn).await?;
            match assemble_parts(&head, &parts) {
                Ok(canonical) => return head.with_canonical(&entry, canonical).map(Some),
                // A writer replaced the build (and removed these parts)
                // between the two searches: read the new one.
                Err(_)
                    if attempt < READ_ATTEMPTS && self.serial_moved(&dn, head.serial).await? =>
                {
                    continue;
                }
                Err(reason) => return Err(entry.malformed(reason)),
            }
        }
    }

    /// Whether the build entry `dn` no longer has serial `serial`.
    async fn serial_moved(&self, dn: &str, serial: u64) -> Result<bool, CatalogError> {
        let Some(entry) = self.read(dn, &[names::SERIAL]).await? else {
            return Ok(true);
        };
        let entry = from_search(entry)?;
        Ok(entry.number::<u64>(names::SERIAL)? != Some(serial))
    }

    /// Every part entry under the build entry `dn` (one search).
    async fn read_parts(&self, dn: &str) -> Result<Vec<Part>, CatalogError> {
        let found = self
            .search_if_present(
                dn,
                Scope::OneLevel,
                &format!("(objectClass={})", names::CLASS),
                &[
                    attribute::CN,
                    names::SERIAL,
                    attribute::DIGEST,
                    names::CANONICAL,
                ],
            )
            .await?;
        found
            .into_iter()
            .map(|entry| part_from_entry(from_search(entry)?))
            .collect()
    }

    /// Every stored build, or those of `suite` (one subtree search, parts
    /// included), sorted by suite and role set.
    pub async fn builds(&self, suite: Option<&SuiteId>) -> Result<Vec<StoredBuild>, CatalogError> {
        let filter = match suite {
            Some(suite) => escape::and([
                format!("(objectClass={})", names::CLASS).as_str(),
                escape::equality(names::SUITE, suite.as_str()).as_str(),
            ]),
            None => format!("(objectClass={})", names::CLASS),
        };
        let found = self
            .search_if_present(self.layout().builds(), Scope::Subtree, &filter, &["*"])
            .await?;
        // Build entries are named SUITE@ROLESET; parts never hold an `@`.
        let mut heads = Vec::new();
        let mut parts: BTreeMap<(String, String), Vec<Part>> = BTreeMap::new();
        for entry in found {
            let entry = from_search(entry)?;
            if entry.required(attribute::CN)?.contains('@') {
                heads.push(entry);
            } else {
                let key = (
                    entry.required(names::SUITE)?.to_owned(),
                    entry.required(names::ROLE_SET)?.to_owned(),
                );
                parts.entry(key).or_default().push(part_from_entry(entry)?);
            }
        }
        let mut builds = Vec::new();
        for entry in heads {
            let Some(head) = head_from_entry(&entry)? else {
                continue;
            };
            let canonical = match entry.single(names::CANONICAL)? {
                Some(text) => text.as_bytes().to_vec(),
                None => {
                    let key = (head.suite.to_string(), head.role_set.clone());
                    let mine = parts.get(&key).map(Vec::as_slice).unwrap_or_default();
                    assemble_parts(&head, mine).map_err(|reason| entry.malformed(reason))?
                }
            };
            builds.push(head.with_canonical(&entry, canonical)?);
        }
        builds.sort_by(|a, b| (&a.suite, &a.role_set).cmp(&(&b.suite, &b.role_set)));
        Ok(builds)
    }

    /// Stores `build`: creates the entry, replaces its content and raises
    /// its serial when the digest differs, refreshes only the source list
    /// when just that differs, and writes nothing when all is the same.
    /// Reads the stored build's head (not its bytes) once per attempt.
    #[instrument(skip_all, fields(suite = %build.suite, roles = build.role_set))]
    pub async fn store_build(
        &self,
        build: &NewBuild,
    ) -> Result<(StoredBuild, BuildWrite), CatalogError> {
        check_role_set(&build.role_set)?;
        let what = || format!("the build of suite {} for {}", build.suite, build.role_set);
        if build.canonical.len() > MAX_CANONICAL_BYTES {
            return Err(CatalogError::Unrepresentable {
                what: what(),
                reason: format!(
                    "its canonical form is {} bytes, more than the {MAX_CANONICAL_BYTES} a build \
                     may hold",
                    build.canonical.len()
                ),
            });
        }
        let canonical =
            std::str::from_utf8(&build.canonical).map_err(|_| CatalogError::Unrepresentable {
                what: what(),
                reason: "its canonical form is not UTF-8 JSON".to_owned(),
            })?;
        let in_parts = canonical.len() > INLINE_CANONICAL_BYTES;
        let dn = build_dn(self.layout().builds(), &build.suite, &build.role_set);
        // Formatted only for a write: an unchanged build writes nothing.
        let built_from = || built_from_values(&build.built_from);
        let built_at = generalized_time(build.built_at);
        let stored = |serial: u64| StoredBuild {
            suite: build.suite.clone(),
            role_set: build.role_set.clone(),
            digest: build.digest.clone(),
            serial,
            canonical: build.canonical.clone(),
            built_from: build.built_from.clone(),
            built_at: build.built_at,
        };
        let mut last_error = None;
        for _ in 0..WRITE_ATTEMPTS {
            let existing = match self.read(&dn, &HEAD_ATTRIBUTES).await? {
                Some(entry) => Some(from_search(entry)?),
                None => None,
            };
            let Some(existing) = existing else {
                // A small build is created whole, in one add. A large one
                // first gets an entry at serial 0 (readers see no build
                // there yet) to hang its parts under.
                let (serial, content) = if in_parts {
                    ("0", None)
                } else {
                    ("1", Some(canonical))
                };
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
                    (names::SERIAL.to_owned(), text_set(serial)),
                    (names::BUILT_AT.to_owned(), text_set(built_at.as_str())),
                ]
                .into_iter()
                .chain(content.map(|text| (names::CANONICAL.to_owned(), text_set(text))))
                .chain(
                    (!build.built_from.is_empty())
                        .then(|| (names::BUILT_FROM.to_owned(), built_from())),
                )
                .collect();
                match self.add(&dn, attributes).await {
                    Ok(()) if !in_parts => return Ok((stored(1), BuildWrite::Created)),
                    // The parts come next, in the following attempt.
                    Ok(()) => continue,
                    // Another builder created it first: read it and decide again.
                    Err(error) if error.is_already_exists() => {
                        last_error = Some(error);
                        continue;
                    }
                    Err(error) => return Err(error.into()),
                }
            };
            let current_serial = existing
                .number::<u64>(names::SERIAL)?
                .ok_or_else(|| existing.malformed(format!("{} is missing", names::SERIAL)))?;
            let head = head_from_entry(&existing)?;
            // The serial compare-and-swap: fails as a whole (no such
            // attribute value) when someone wrote the entry since we read it.
            let serial_check = |next: u64| {
                vec![
                    Mod::Delete(
                        names::SERIAL.to_owned(),
                        text_set(current_serial.to_string()),
                    ),
                    Mod::Add(names::SERIAL.to_owned(), text_set(next.to_string())),
                ]
            };
            let (modifications, outcome, result) = match &head {
                Some(head) if head.digest == build.digest => {
                    // Same digest, same bytes: what is stored, made when
                    // it was stored.
                    let unchanged = StoredBuild {
                        built_at: head.built_at,
                        ..stored(head.serial)
                    };
                    if head.built_from == build.built_from {
                        return Ok((unchanged, BuildWrite::Unchanged));
                    }
                    let mut modifications = serial_check(head.serial);
                    modifications.push(Mod::Replace(names::BUILT_FROM.to_owned(), built_from()));
                    let refreshed = unchanged;
                    (modifications, BuildWrite::SourcesRefreshed, refreshed)
                }
                _ => {
                    let serial = current_serial + 1;
                    if in_parts {
                        self.add_parts(&dn, build, canonical, serial).await?;
                    }
                    let mut modifications = serial_check(serial);
                    let content = if in_parts {
                        HashSet::new()
                    } else {
                        text_set(canonical)
                    };
                    modifications.extend([
                        Mod::Replace(
                            attribute::DIGEST.to_owned(),
                            text_set(build.digest.as_str()),
                        ),
                        // No value (a build in parts) removes the attribute.
                        Mod::Replace(names::CANONICAL.to_owned(), content),
                        Mod::Replace(names::BUILT_FROM.to_owned(), built_from()),
                        Mod::Replace(names::BUILT_AT.to_owned(), text_set(built_at.as_str())),
                    ]);
                    let outcome = match &head {
                        Some(head) => BuildWrite::Replaced {
                            previous_digest: head.digest.clone(),
                            previous_serial: head.serial,
                        },
                        None => BuildWrite::Created,
                    };
                    (modifications, outcome, stored(serial))
                }
            };
            match self.modify(&dn, modifications).await {
                Ok(()) => {
                    if outcome != BuildWrite::SourcesRefreshed {
                        self.remove_old_parts(&dn, result.serial, &result.digest)
                            .await;
                    }
                    return Ok((result, outcome));
                }
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

    /// Adds the parts of `canonical` for `serial` under the build entry
    /// `dn`. A part that exists already is the same part (same serial,
    /// digest and index: same bytes), written by a racing builder or by
    /// an attempt cut short.
    async fn add_parts(
        &self,
        dn: &str,
        build: &NewBuild,
        canonical: &str,
        serial: u64,
    ) -> Result<(), CatalogError> {
        for (index, text) in split_parts(canonical).into_iter().enumerate() {
            let name = part_name(serial, &build.digest, index);
            let attributes = vec![
                ("objectClass".to_owned(), text_set(names::CLASS)),
                (attribute::CN.to_owned(), text_set(name.as_str())),
                (names::SUITE.to_owned(), text_set(build.suite.as_str())),
                (
                    names::ROLE_SET.to_owned(),
                    text_set(build.role_set.as_str()),
                ),
                (
                    attribute::DIGEST.to_owned(),
                    text_set(build.digest.as_str()),
                ),
                (names::SERIAL.to_owned(), text_set(serial.to_string())),
                (names::CANONICAL.to_owned(), text_set(text)),
            ];
            let part_dn = escape::child_dn(attribute::CN, &name, dn);
            match self.add(&part_dn, attributes).await {
                Ok(()) => {}
                Err(error) if error.is_already_exists() => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }

    /// Deletes the parts under `dn` that can never be read again: those of
    /// serials up to `serial` other than the current build's. Parts of
    /// later serials belong to a builder writing the next build and are
    /// left alone. Failing here leaves invisible leftovers for the next
    /// write to remove, so it is logged, not returned.
    async fn remove_old_parts(&self, dn: &str, serial: u64, digest: &Sha256) {
        let found = match self
            .search(
                dn,
                Scope::OneLevel,
                &format!("(objectClass={})", names::CLASS),
                &[attribute::CN, names::SERIAL, attribute::DIGEST],
            )
            .await
        {
            Ok(found) => found,
            Err(error) => {
                tracing::warn!(%error, dn, "cannot list the parts of older builds to remove them");
                return;
            }
        };
        for entry in found {
            let Ok(part) = from_search(entry.clone()).and_then(part_from_entry) else {
                continue;
            };
            let current = part.serial == serial && part.digest == *digest;
            if part.serial <= serial
                && !current
                && let Err(error) = self.delete(&entry.dn).await
                && !error.is_no_such_object()
            {
                tracing::warn!(%error, dn = entry.dn, "cannot remove a part of an older build");
            }
        }
    }

    /// Removes the build of `suite` for `role_set` (its parts first);
    /// false when there was none.
    pub async fn delete_build(
        &self,
        suite: &SuiteId,
        role_set: &str,
    ) -> Result<bool, CatalogError> {
        check_role_set(role_set)?;
        let dn = build_dn(self.layout().builds(), suite, role_set);
        let parts = match self
            .search(
                &dn,
                Scope::OneLevel,
                &format!("(objectClass={})", names::CLASS),
                &["1.1"],
            )
            .await
        {
            Ok(found) => found,
            Err(error) if error.is_no_such_object() => return Ok(false),
            Err(error) => return Err(error.into()),
        };
        for part in parts {
            match self.delete(&part.dn).await {
                Ok(()) => {}
                Err(error) if error.is_no_such_object() => {}
                Err(error) => return Err(error.into()),
            }
        }
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
                &[attribute::CN, attribute::SOURCE_DIGEST, attribute::RELEASE],
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
                // What builds record of a product covers all its releases.
                digests.insert(
                    format!("product/{product}"),
                    crate::catalog::releases::catalog_digest(&entry)?,
                );
            }
        }
        Ok(digests)
    }

    /// The ids of every completely written suite (one search), sorted.
    pub async fn suite_ids(&self) -> Result<Vec<SuiteId>, CatalogError> {
        let found = self
            .search_if_present(
                self.layout().suites(),
                Scope::OneLevel,
                &format!("(objectClass={})", class::SUITE),
                &[attribute::CN, attribute::SOURCE_DIGEST],
            )
            .await?;
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
    fn parts_split_between_characters_and_join_back() {
        // Three-byte characters straddle every part boundary.
        let text = "€".repeat(PART_BYTES / 3 * 2 + 7);
        let parts = split_parts(&text);
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|part| part.len() <= PART_BYTES));
        assert!(parts[0].len() < PART_BYTES, "{}", parts[0].len());
        assert_eq!(parts.concat(), text);
        assert!(split_parts("").is_empty());
        assert_eq!(split_parts("{}"), ["{}"]);
    }

    #[test]
    fn build_names_split_back_and_role_sets_are_checked() {
        let suite = SuiteId::new("domino").unwrap();
        assert_eq!(
            build_dn("ou=builds,o=x", &suite, "developer+end-user"),
            "cn=domino@developer\\2bend-user,ou=builds,o=x"
        );
        assert!(check_role_set("default").is_ok());
        assert!(check_role_set("developer+end-user").is_ok());
        for bad in ["", "a++b", "a,b", "+a"] {
            assert!(check_role_set(bad).is_err(), "{bad}");
        }
    }
}
