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
//! Locks are `std::sync::Mutex`es held for a map operation only, never
//! across an await.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use roleout_directory::feed::{EntryChange, FeedEvent};
use roleout_directory::machines::MachineEntry;
use roleout_directory::{Directory, DirectoryError, Layout};
use roleout_model::ids::{MachineId, SuiteId};
use roleout_model::protocol::{MachineObject, ProtocolError, canonical_field, canonical_object};
use roleout_model::resolve::{Plan, resolve_suite};
use roleout_model::role::EffectiveRoles;
use tracing::info;

use crate::build::BuildError;
use crate::server::catalog::{ServedBuild, current_build, suite_ids};

/// The longest anything is served from memory, even with a live feed.
pub const MAX_AGE: Duration = Duration::from_secs(300);

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
    ) -> Result<Vec<u8>, ProtocolError> {
        let machine = canonical_field(machine)?;
        let digest = canonical_field(&self.build.digest)?;
        Ok(canonical_object(&mut [
            ("suite", &self.suite_canonical),
            ("plan", plan_canonical),
            ("machine", &machine),
            ("build-digest", &digest),
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

#[derive(Default)]
struct Inner {
    live: bool,
    /// Bumped by every invalidation.
    generation: u64,
    machines: HashMap<MachineId, Slot<Arc<MachineEntry>>>,
    /// Effective roles by machine DN, lowercased.
    roles: HashMap<String, Slot<Arc<EffectiveRoles>>>,
    suites: Option<Slot<Arc<Vec<SuiteId>>>>,
    /// By suite and role-set key.
    builds: HashMap<(SuiteId, String), Slot<Arc<CachedBuild>>>,
}

impl Inner {
    fn clear(&mut self) {
        self.generation += 1;
        self.machines.clear();
        self.roles.clear();
        self.suites = None;
        self.builds.clear();
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
        }
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

    /// The current build of suite `id` for `roles` (see
    /// [`current_build`]), `None` when there is no such suite.
    pub async fn build(
        &self,
        directory: &Directory,
        id: &SuiteId,
        roles: &EffectiveRoles,
    ) -> Result<Option<Arc<CachedBuild>>, BuildError> {
        let key = (id.clone(), roles.key());
        if let Some(build) = lock(&self.inner).builds.get(&key).and_then(Slot::fresh) {
            return Ok(Some(build));
        }
        let ticket = self.ticket();
        let Some(build) = current_build(directory, id, roles).await? else {
            return Ok(None);
        };
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
