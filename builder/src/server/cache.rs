//! What roleoutd keeps in memory between requests, and exactly when it
//! stops trusting it.
//!
//! Without this cache every authenticated request re-reads the machine's
//! entry and its roles (three searches) and checks the suite's build
//! against the catalog (three more), then parses and resolves the build.
//! With it, a request served from memory costs no LDAP round trip.
//!
//! Invalidation is driven by the directory's change feed
//! (`roleout_directory::feed`), not by a time-to-live:
//! - while the feed is not live (starting, lost, or a server without
//!   content synchronization) nothing is cached and every request reads the
//!   directory, as if there were no cache;
//! - a change to a machine entry drops that machine (by DN or name); one
//!   that names no cached machine (a rename, a new entry) drops every
//!   machine;
//! - a change under `ou=reports` drops nothing (reports feed no answer);
//! - a change under `ou=builds` drops the builds (a build is stored after
//!   the catalog changes that caused it, which were reported themselves);
//! - any other change (catalog, roles, memberships, builds, anything not
//!   recognised, a deletion) drops everything.
//!
//! A value read from the directory is stored only if no invalidation
//! happened since the read began (a [`Ticket`] holds the generation seen
//! before the read), so a read racing a change can never put the old
//! value back after the change was heard of. roleoutd's own writes to a
//! machine entry drop it at once ([`ServingCache::forget_machine`]) rather
//! than waiting for the feed; an admin's change takes effect when the feed
//! delivers it, normally within milliseconds. As a last guard, nothing is
//! served from memory after [`MAX_AGE`].
//!
//! It also keeps the envelopes roleoutd signed ([`SignedHeader`], one per
//! machine and subject): a request whose envelope would carry exactly the
//! contents of the last one signed for it (same roles, build and payload
//! digest) while that one still has at least half its validity left is
//! answered with it, without signing again. Installers accept an older
//! envelope of exactly the contents they accepted last, so this stays
//! correct when several roleoutd sign for one machine.
//!
//! Locks are `std::sync::Mutex`es held for a map operation only, never
//! across an await.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use crate::build::Builder;
use crate::delivery::Customizations;
use roleout_directory::feed::{EntryChange, FeedEvent};
use roleout_directory::machines::MachineEntry;
use roleout_directory::{Directory, DirectoryError, Layout};
use roleout_model::ids::{MachineId, Sha256, SuiteId};
use roleout_model::protocol::{
    Base64Bytes, Customization, EnvelopeKind, MachineObject, ProtocolError, Timestamp,
    canonical_field, canonical_object,
};
use roleout_model::resolve::{Plan, resolve_suite};
use roleout_model::role::EffectiveRoles;
use tracing::info;

use crate::build::BuildError;
use crate::server::catalog::{ServedBuild, current_build, suite_ids};

/// The longest anything is served from memory, even with a live feed.
pub const MAX_AGE: Duration = Duration::from_secs(300);

/// The most machines whose signed envelopes are kept; past it they are all
/// dropped (each is a few hundred bytes, and the next request of a machine
/// signs again).
pub const MAX_SIGNED_MACHINES: usize = 100_000;

/// What one signed envelope is about: the machine, the kind and what of
/// that kind (a suite id, a suite and product, nothing for a suite list).
pub type SignatureKey = (MachineId, EnvelopeKind, String);

/// The signed header of an envelope roleoutd served, to serve again while
/// the same contents are asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct SignedHeader {
    /// The role-set key signed.
    pub roles: String,
    /// The build digest signed.
    pub build_digest: Option<Sha256>,
    /// The digest of the payload signed.
    pub payload_digest: Sha256,
    /// The serial signed.
    pub serial: u64,
    /// The expiry signed.
    pub expires_at: Timestamp,
    /// The expiry as a time, to tell how much validity is left.
    pub expires: SystemTime,
    /// The signature.
    pub signature: Base64Bytes,
}

impl SignedHeader {
    /// True when this header signed `roles`, `build_digest` and
    /// `payload_digest` and is valid for at least half of `validity` after
    /// `now` (an installer gets nearly as long as from a new signature).
    pub fn serves(
        &self,
        roles: &str,
        build_digest: Option<&Sha256>,
        payload_digest: &Sha256,
        now: SystemTime,
        validity: Duration,
    ) -> bool {
        self.roles == roles
            && self.build_digest.as_ref() == build_digest
            && self.payload_digest == *payload_digest
            && self
                .expires
                .duration_since(now)
                .is_ok_and(|left| left >= validity / 2)
    }
}

/// A platform (OS, architecture), `None` when the machine reported none.
type Platform = Option<(String, String)>;

/// A resolved plan with its canonical JSON, or the resolution problems
/// joined in words.
pub type PlanOutcome = Arc<Result<(Plan, Vec<u8>), String>>;

/// A build as served, with the plans already resolved from it per
/// platform.
#[derive(Debug)]
pub struct CachedBuild {
    /// The build.
    pub build: ServedBuild,
    /// The canonical JSON of the build's suite, which every envelope
    /// delivering it signs: written once per build, not per request.
    pub suite_canonical: Vec<u8>,
    plans: Mutex<HashMap<Platform, PlanOutcome>>,
}

impl CachedBuild {
    /// The build with its suite's canonical JSON.
    pub fn new(build: ServedBuild) -> Result<Self, ProtocolError> {
        Ok(Self {
            suite_canonical: canonical_field(&build.suite)?,
            build,
            plans: Mutex::new(HashMap::new()),
        })
    }

    /// The canonical JSON of the `SuiteDelivery` of this build to
    /// `machine` with a plan whose canonical JSON is `plan_canonical`: the
    /// same bytes as `canonical_field` of the delivery, written around the
    /// suite's canonical bytes.
    pub fn delivery_canonical(
        &self,
        machine: &MachineObject,
        plan_canonical: &[u8],
        customization: &Customization,
    ) -> Result<Vec<u8>, ProtocolError> {
        let machine = canonical_field(machine)?;
        let digest = canonical_field(&self.build.digest)?;
        let customization = canonical_field(customization)?;
        Ok(canonical_object(&mut [
            ("suite", &self.suite_canonical),
            ("plan", plan_canonical),
            ("machine", &machine),
            ("build-digest", &digest),
            ("customization", &customization),
        ]))
    }

    /// The build's plan for `platform` (OS, architecture), resolved once
    /// per platform; `Err` holds the resolution problems, joined.
    pub fn plan(&self, platform: Option<(&str, &str)>) -> PlanOutcome {
        let key = platform.map(|(os, arch)| (os.to_owned(), arch.to_owned()));
        if let Some(plan) = lock(&self.plans).get(&key) {
            return plan.clone();
        }
        let plan = Arc::new(
            resolve_suite(&self.build.suite, platform)
                .map_err(|errors| {
                    errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .and_then(|plan| {
                    let canonical = canonical_field(&plan).map_err(|error| error.to_string())?;
                    Ok((plan, canonical))
                }),
        );
        lock(&self.plans).insert(key, plan.clone());
        plan
    }
}

struct Slot<T> {
    value: T,
    stored: Instant,
}

impl<T: Clone> Slot<T> {
    fn new(value: T) -> Self {
        Self {
            value,
            stored: Instant::now(),
        }
    }

    fn fresh(&self) -> Option<T> {
        (self.stored.elapsed() < MAX_AGE).then(|| self.value.clone())
    }
}

/// One machine's kept signatures, by kind and subject.
type MachineSignatures = HashMap<(EnvelopeKind, String), Slot<Arc<SignedHeader>>>;

#[derive(Default)]
struct Inner {
    live: bool,
    /// Bumped by every invalidation.
    generation: u64,
    machines: HashMap<MachineId, Slot<Arc<MachineEntry>>>,
    /// Effective roles by machine DN, lowercased.
    roles: HashMap<String, Slot<Arc<EffectiveRoles>>>,
    suites: Option<Slot<Arc<Vec<SuiteId>>>>,
    /// Machine groups and customizations (`ou=groups`).
    customizations: Option<Slot<Arc<Customizations>>>,
    /// By suite and role-set key.
    builds: HashMap<(SuiteId, String), Slot<Arc<CachedBuild>>>,
    /// The last envelope signed per machine (by lowercased name, so that a
    /// change to the machine drops its envelopes in one step) and subject.
    signatures: HashMap<String, MachineSignatures>,
}

impl Inner {
    fn clear(&mut self) {
        self.generation += 1;
        self.machines.clear();
        self.roles.clear();
        self.suites = None;
        self.customizations = None;
        self.builds.clear();
        self.signatures.clear();
    }

    fn forget_signatures_of(&mut self, name: &str) {
        self.signatures.remove(&name.to_ascii_lowercase());
    }
}

/// The generation seen before a read: what the read may be stored under.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(Option<u64>);

/// roleoutd's memory of the directory (see the module comment).
pub struct ServingCache {
    inner: Mutex<Inner>,
    reports: String,
    builds: String,
    /// Builds stale or missing builds; keeps the products it read, each
    /// checked against its entries' `entryCSN` on every build, so it needs
    /// no word from the feed.
    builder: Builder,
    /// Where builds asked for are counted and timed, when roleoutd keeps
    /// metrics.
    metrics: Option<Arc<crate::server::metrics::Metrics>>,
}

impl std::fmt::Debug for ServingCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingCache")
            .field("live", &lock(&self.inner).live)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves maps that are still valid
    // (every update is a single insert or clear).
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// True when the lowercased `dn` is `base` or an entry below it.
fn within(dn: &str, base: &str) -> bool {
    dn.strip_suffix(base)
        .is_some_and(|rest| rest.is_empty() || rest.ends_with(','))
}

fn same_dn(left: &str, right: &str) -> bool {
    left.eq_ignore_ascii_case(right)
}

impl ServingCache {
    /// An empty cache, not live until the feed says so.
    pub fn new(layout: &Layout) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            reports: layout.reports().to_ascii_lowercase(),
            builds: layout.builds().to_ascii_lowercase(),
            builder: Builder::new(),
            metrics: None,
        }
    }

    /// The same cache, counting and timing the builds asked of it in
    /// `metrics` (`cached`, `current`, `built` or `failed`).
    pub fn with_metrics(mut self, metrics: Arc<crate::server::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Applies one event of the change feed.
    pub fn apply(&self, event: &FeedEvent) {
        let mut inner = lock(&self.inner);
        match event {
            FeedEvent::Live => {
                inner.clear();
                inner.live = true;
                info!("change feed live: serving from memory");
            }
            FeedEvent::Lost { .. } | FeedEvent::Unsupported { .. } => {
                inner.clear();
                inner.live = false;
            }
            FeedEvent::Changed(change) => self.changed(&mut inner, change),
        }
    }

    fn changed(&self, inner: &mut Inner, change: &EntryChange) {
        let dn = change.dn.to_ascii_lowercase();
        if within(&dn, &self.reports) {
            return;
        }
        if within(&dn, &self.builds) {
            // A build stored (by this roleoutd, another, or an admin): the
            // catalog changes that made it were reported on their own;
            // only the builds themselves are read again.
            inner.generation += 1;
            inner.builds.clear();
            return;
        }
        if change.has_class("roleoutMachine") {
            inner.generation += 1;
            let before = inner.machines.len();
            inner.machines.retain(|name, slot| {
                !same_dn(&slot.value.dn, &change.dn)
                    && !change
                        .common_names
                        .iter()
                        .any(|cn| cn.eq_ignore_ascii_case(name.as_str()))
            });
            if inner.machines.len() == before {
                // A rename or a new entry: which cached name it affects is
                // unknown.
                inner.machines.clear();
            }
            // A kept signature only ever serves the exact contents it
            // signed, so dropping the named machine's is enough; a change
            // that names none drops them all.
            if change.common_names.is_empty() {
                inner.signatures.clear();
            }
            for name in &change.common_names {
                inner.forget_signatures_of(name);
            }
            inner.roles.remove(&dn);
            return;
        }
        inner.clear();
    }

    /// True while the change feed is live (and the cache in use).
    pub fn is_live(&self) -> bool {
        lock(&self.inner).live
    }

    /// The ticket for a read that starts now.
    pub fn ticket(&self) -> Ticket {
        let inner = lock(&self.inner);
        Ticket(inner.live.then_some(inner.generation))
    }

    /// Stores with `store` only when `ticket` is still current.
    fn store(&self, ticket: Ticket, store: impl FnOnce(&mut Inner)) {
        let mut inner = lock(&self.inner);
        if inner.live && ticket.0 == Some(inner.generation) {
            store(&mut inner);
        }
    }

    /// Drops the machine `name` at `dn` after roleoutd itself changed its
    /// entry, so its next request reads the change.
    pub fn forget_machine(&self, name: &MachineId, dn: &str) {
        let mut inner = lock(&self.inner);
        inner.generation += 1;
        inner.machines.remove(name);
        inner.roles.remove(&dn.to_ascii_lowercase());
        inner.forget_signatures_of(name.as_str());
    }

    /// The last envelope signed for `key`, if it is still fresh.
    pub fn signature(&self, key: &SignatureKey) -> Option<Arc<SignedHeader>> {
        let (machine, kind, subject) = key;
        lock(&self.inner)
            .signatures
            .get(&machine.as_str().to_ascii_lowercase())?
            .get(&(*kind, subject.clone()))
            .and_then(Slot::fresh)
    }

    /// Keeps `header`, signed for `key` after `ticket` was taken, unless an
    /// invalidation happened since or a header with a higher serial is
    /// already kept (a request that signed earlier but finished later
    /// must not replace a newer signature with an older one).
    pub fn keep_signature(&self, ticket: Ticket, key: SignatureKey, header: Arc<SignedHeader>) {
        let (machine, kind, subject) = key;
        let machine = machine.as_str().to_ascii_lowercase();
        self.store(ticket, |inner| {
            if inner.signatures.len() >= MAX_SIGNED_MACHINES
                && !inner.signatures.contains_key(&machine)
            {
                inner.signatures.clear();
            }
            let kept = inner.signatures.entry(machine).or_default();
            let subject = (kind, subject);
            if kept
                .get(&subject)
                .is_some_and(|kept| kept.value.serial > header.serial)
            {
                return;
            }
            kept.insert(subject, Slot::new(header));
        });
    }

    /// The machine `name`'s entry.
    pub async fn machine(
        &self,
        directory: &Directory,
        name: &MachineId,
    ) -> Result<Option<Arc<MachineEntry>>, DirectoryError> {
        if let Some(entry) = lock(&self.inner).machines.get(name).and_then(Slot::fresh) {
            return Ok(Some(entry));
        }
        let ticket = self.ticket();
        let Some(entry) = directory.machine(name).await? else {
            return Ok(None);
        };
        let entry = Arc::new(entry);
        self.store(ticket, |inner| {
            inner
                .machines
                .insert(name.clone(), Slot::new(entry.clone()));
        });
        Ok(Some(entry))
    }

    /// The effective roles of the machine at `entry`: its direct roles and
    /// their ancestors. The error is the directory's or the hierarchy's,
    /// in words.
    pub async fn effective_roles(
        &self,
        directory: &Directory,
        entry: &MachineEntry,
    ) -> Result<Arc<EffectiveRoles>, String> {
        let key = entry.dn.to_ascii_lowercase();
        if let Some(roles) = lock(&self.inner).roles.get(&key).and_then(Slot::fresh) {
            return Ok(roles);
        }
        let ticket = self.ticket();
        let direct = directory
            .machine_roles(&entry.dn)
            .await
            .map_err(|error| format!("directory: {error}"))?;
        let hierarchy = directory
            .roles()
            .await
            .map_err(|error| format!("directory: {error}"))?;
        let roles = Arc::new(
            hierarchy
                .effective(direct)
                .map_err(|error| format!("roles of {}: {error}", entry.machine.name))?,
        );
        self.store(ticket, |inner| {
            inner.roles.insert(key, Slot::new(roles.clone()));
        });
        Ok(roles)
    }

    /// Every suite id in the catalog.
    pub async fn suite_ids(
        &self,
        directory: &Directory,
    ) -> Result<Arc<Vec<SuiteId>>, roleout_directory::catalog::CatalogError> {
        if let Some(ids) = lock(&self.inner).suites.as_ref().and_then(Slot::fresh) {
            return Ok(ids);
        }
        let ticket = self.ticket();
        let ids = Arc::new(suite_ids(directory).await?);
        self.store(ticket, |inner| inner.suites = Some(Slot::new(ids.clone())));
        Ok(ids)
    }

    /// Every machine group and customization (a change under `ou=groups`
    /// drops them with everything else).
    pub async fn customizations(
        &self,
        directory: &Directory,
    ) -> Result<Arc<Customizations>, DirectoryError> {
        if let Some(read) = lock(&self.inner)
            .customizations
            .as_ref()
            .and_then(Slot::fresh)
        {
            return Ok(read);
        }
        let ticket = self.ticket();
        let read = Arc::new(Customizations::read(directory).await?);
        self.store(ticket, |inner| {
            inner.customizations = Some(Slot::new(read.clone()));
        });
        Ok(read)
    }

    /// The current build of suite `id` for `roles` (see
    /// [`current_build`]), `None` when there is no such suite.
    pub async fn build(
        &self,
        directory: &Directory,
        id: &SuiteId,
        roles: &EffectiveRoles,
    ) -> Result<Option<Arc<CachedBuild>>, BuildError> {
        let started = std::time::Instant::now();
        let count = |outcome: &str| {
            if let Some(metrics) = &self.metrics {
                metrics.build(outcome, started.elapsed().as_secs_f64());
            }
        };
        let key = (id.clone(), roles.key());
        if let Some(build) = lock(&self.inner).builds.get(&key).and_then(Slot::fresh) {
            count("cached");
            return Ok(Some(build));
        }
        let ticket = self.ticket();
        let found = current_build(directory, &self.builder, id, roles).await;
        let Some(build) = found.inspect_err(|_| count("failed"))? else {
            return Ok(None);
        };
        count(if build.rebuilt { "built" } else { "current" });
        let build = Arc::new(CachedBuild::new(build).map_err(|error| {
            BuildError::Catalog(roleout_directory::catalog::CatalogError::Malformed {
                dn: format!("build of suite {id} for {}", roles.key()),
                reason: format!("its suite cannot be written as JSON: {error}"),
            })
        })?);
        self.store(ticket, |inner| {
            inner.builds.insert(key, Slot::new(build.clone()));
        });
        Ok(Some(build))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]
mod tests {
    use roleout_directory::Settings;

    use super::*;

    fn cache() -> ServingCache {
        ServingCache::new(&Layout::new(
            &Settings::new(["ldap://localhost"]).with_base("dc=example,dc=org"),
        ))
    }

    fn change(dn: &str, classes: &[&str], cn: &[&str]) -> FeedEvent {
        FeedEvent::Changed(EntryChange {
            dn: dn.to_owned(),
            object_classes: classes.iter().map(|c| c.to_ascii_lowercase()).collect(),
            common_names: cn.iter().map(|c| (*c).to_owned()).collect(),
        })
    }

    fn suites(cache: &ServingCache, ticket: Ticket, ids: &[&str]) {
        let ids = Arc::new(ids.iter().map(|id| SuiteId::new(*id).unwrap()).collect());
        cache.store(ticket, |inner| inner.suites = Some(Slot::new(ids)));
    }

    fn header(serial: u64, payload: &[u8]) -> Arc<SignedHeader> {
        let now = SystemTime::now();
        Arc::new(SignedHeader {
            roles: "developer".to_owned(),
            build_digest: Some(Sha256::of(b"build")),
            payload_digest: Sha256::of(payload),
            serial,
            expires_at: Timestamp::from_system_time(now + Duration::from_secs(3600)).unwrap(),
            expires: now + Duration::from_secs(3600),
            signature: Base64Bytes::new(vec![1; 64]),
        })
    }

    fn signature_key(machine: &str) -> SignatureKey {
        (
            MachineId::new(machine).unwrap(),
            EnvelopeKind::Suite,
            "domino".to_owned(),
        )
    }

    #[test]
    fn a_signed_header_serves_only_its_own_contents_with_half_its_validity_left() {
        let kept = header(1, b"payload");
        let now = SystemTime::now();
        let hour = Duration::from_secs(3600);
        let build = Sha256::of(b"build");
        let payload = Sha256::of(b"payload");
        assert!(kept.serves("developer", Some(&build), &payload, now, hour));
        assert!(!kept.serves("administrator", Some(&build), &payload, now, hour));
        assert!(!kept.serves("developer", None, &payload, now, hour));
        let other = Sha256::of(b"other payload");
        assert!(!kept.serves("developer", Some(&build), &other, now, hour));
        // Less than half of the validity left: signed anew.
        let later = now + Duration::from_secs(1900);
        assert!(!kept.serves("developer", Some(&build), &payload, later, hour));
        // Expired: never.
        let after = now + Duration::from_secs(4000);
        assert!(!kept.serves("developer", Some(&build), &payload, after, hour));
    }

    #[test]
    fn signatures_keep_the_highest_serial_and_go_with_their_machine() {
        let cache = cache();
        let key = signature_key("pc-1");
        // Not live: nothing kept.
        cache.keep_signature(cache.ticket(), key.clone(), header(5, b"a"));
        assert!(cache.signature(&key).is_none());

        cache.apply(&FeedEvent::Live);
        cache.keep_signature(cache.ticket(), key.clone(), header(5, b"a"));
        // A request that signed earlier but finishes later does not put
        // its older signature in place of the newer one.
        cache.keep_signature(cache.ticket(), key.clone(), header(4, b"b"));
        assert_eq!(cache.signature(&key).unwrap().serial, 5);
        cache.keep_signature(cache.ticket(), key.clone(), header(6, b"b"));
        assert_eq!(cache.signature(&key).unwrap().serial, 6);

        // A signature made before a change is heard of is not kept.
        let ticket = cache.ticket();
        cache.apply(&change(
            "cn=developer,ou=roles,dc=example,dc=org",
            &["roleoutRole"],
            &["developer"],
        ));
        assert!(cache.signature(&key).is_none());
        cache.keep_signature(ticket, key.clone(), header(7, b"c"));
        assert!(cache.signature(&key).is_none());

        // A change to one machine drops its signatures, not another's.
        let other = signature_key("pc-2");
        cache.keep_signature(cache.ticket(), key.clone(), header(8, b"c"));
        cache.keep_signature(cache.ticket(), other.clone(), header(8, b"c"));
        cache.apply(&change(
            "cn=pc-1,ou=machines,dc=example,dc=org",
            &["roleoutMachine"],
            &["pc-1"],
        ));
        assert!(cache.signature(&key).is_none());
        assert!(cache.signature(&other).is_some());
        // And so does roleoutd's own write to it.
        cache.forget_machine(
            &MachineId::new("pc-2").unwrap(),
            "cn=pc-2,ou=machines,dc=example,dc=org",
        );
        assert!(cache.signature(&other).is_none());
    }

    fn cached_suites(cache: &ServingCache) -> Option<usize> {
        lock(&cache.inner)
            .suites
            .as_ref()
            .and_then(Slot::fresh)
            .map(|ids| ids.len())
    }

    #[test]
    fn nothing_is_kept_until_the_feed_is_live_nor_after_it_is_lost() {
        let cache = cache();
        suites(&cache, cache.ticket(), &["domino"]);
        assert_eq!(cached_suites(&cache), None);
        cache.apply(&FeedEvent::Live);
        suites(&cache, cache.ticket(), &["domino"]);
        assert_eq!(cached_suites(&cache), Some(1));
        cache.apply(&FeedEvent::Lost {
            reason: "gone".to_owned(),
        });
        assert_eq!(cached_suites(&cache), None);
        suites(&cache, cache.ticket(), &["domino"]);
        assert_eq!(cached_suites(&cache), None);
    }

    #[test]
    fn a_read_that_raced_a_change_is_not_stored() {
        let cache = cache();
        cache.apply(&FeedEvent::Live);
        let ticket = cache.ticket();
        cache.apply(&change(
            "cn=domino,ou=suites,dc=example,dc=org",
            &["roleoutSuite"],
            &["domino"],
        ));
        suites(&cache, ticket, &["domino"]);
        assert_eq!(cached_suites(&cache), None);
        suites(&cache, cache.ticket(), &["domino"]);
        assert_eq!(cached_suites(&cache), Some(1));
    }

    #[test]
    fn reports_drop_nothing_and_a_machine_drops_only_machines() {
        let cache = cache();
        cache.apply(&FeedEvent::Live);
        suites(&cache, cache.ticket(), &["domino"]);
        cache.apply(&change(
            "roleoutReportId=1,cn=pc-1,ou=reports,dc=example,dc=org",
            &["roleoutReport"],
            &[],
        ));
        assert_eq!(cached_suites(&cache), Some(1));
        cache.apply(&change(
            "cn=pc-1,ou=machines,dc=example,dc=org",
            &["device", "roleoutMachine"],
            &["pc-1"],
        ));
        assert_eq!(cached_suites(&cache), Some(1));
        // A deletion says nothing of what was deleted: everything goes.
        cache.apply(&change("cn=pc-1,ou=machines,dc=example,dc=org", &[], &[]));
        assert_eq!(cached_suites(&cache), None);
    }
}
