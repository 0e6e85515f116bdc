//! Building role suites (Figs. 8-9): read a suite and its products from the
//! directory, assemble them for one role set, check the result, serialize
//! it canonically and store it under `ou=builds`.
//!
//! Selection happens in one place, roleout-model's `assemble_suite`, and
//! checking in one place, `resolve_suite`: the builder adds only the
//! reading, the storing and the bookkeeping that keeps a stale build from
//! ever being served as current. Every problem of a role set is collected
//! (ambiguities, missing members, conflicts, missing requirements, cycles),
//! so an admin fixes a catalog in one pass.
//!
//! The canonical form is `protocol::canonical_json` of the assembled
//! [`Suite`]'s serde value (keys sorted, no white space), so the same
//! catalog and role set give the same bytes and digest on any builder. It
//! is written by `protocol::canonical_json_of`, which gives those bytes
//! without building the value.

use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

use tracing::instrument;

use roleout_directory::Directory;
use roleout_directory::DirectoryError;
use roleout_directory::catalog::{BuildWrite, CatalogError, NewBuild, ProductCache, StoredBuild};
use roleout_model::assemble::{AssembleError, assemble_suite_from};
use roleout_model::ids::{ProductId, Sha256, SuiteId};
use roleout_model::protocol::{Timestamp, canonical_json_of};
use roleout_model::resolve::{Plan, ResolveError, resolve_suite};
use roleout_model::role::{EffectiveRoles, RoleError};
use roleout_model::suite::Suite;

use crate::content::digest_of;

/// One reason a role set cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildProblem {
    /// Selecting versions or members failed (ambiguity, missing member,
    /// member version out of range).
    #[error(transparent)]
    Assemble(#[from] AssembleError),
    /// The assembled suite does not resolve (conflict, missing
    /// requirement, cycle, ...).
    #[error(transparent)]
    Resolve(#[from] ResolveError),
}

impl BuildProblem {
    /// A one-word kind for listings: `ambiguity`, `conflict`, `cycle`,
    /// `missing`, `version`.
    pub fn kind(&self) -> &'static str {
        match self {
            BuildProblem::Assemble(AssembleError::Ambiguous(_)) => "ambiguity",
            BuildProblem::Assemble(AssembleError::MissingMember { .. }) => "missing",
            BuildProblem::Assemble(AssembleError::MemberVersion { .. }) => "version",
            BuildProblem::Resolve(
                ResolveError::ProductConflict { .. } | ResolveError::CapabilityConflict { .. },
            ) => "conflict",
            BuildProblem::Resolve(ResolveError::Cycle { .. }) => "cycle",
            BuildProblem::Resolve(ResolveError::VersionOutOfRange { .. }) => "version",
            _ => "missing",
        }
    }
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The catalog has problems for this role set; every one is listed.
    #[error(
        "suite {suite} cannot be built for role set {role_set}: {}",
        problem_list(.problems)
    )]
    Invalid {
        /// The suite.
        suite: SuiteId,
        /// The role-set key.
        role_set: String,
        /// Every problem found.
        problems: Vec<BuildProblem>,
    },
    /// Reading or writing the catalog failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// Reading the roles failed.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// The role hierarchy is broken (unknown parent, cycle).
    #[error(transparent)]
    Roles(#[from] RoleError),
    /// The system clock is before 1970 or after 9999.
    #[error(
        "the system clock is outside the years 1970 to 9999; builds record when they were made"
    )]
    Clock,
    /// The assembled suite does not serialize (a bug, not bad input).
    #[error("the assembled suite {suite} does not serialize to JSON: {reason}")]
    Serialize {
        /// The suite.
        suite: SuiteId,
        /// serde_json's message.
        reason: String,
    },
}

impl BuildError {
    /// The problems of an [`BuildError::Invalid`] build; empty otherwise.
    pub fn problems(&self) -> &[BuildProblem] {
        match self {
            BuildError::Invalid { problems, .. } => problems,
            _ => &[],
        }
    }
}

fn problem_list(problems: &[BuildProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// What a build did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOutcome {
    /// The build as now stored.
    pub build: StoredBuild,
    /// What was written.
    pub write: BuildWrite,
    /// The suite as assembled.
    pub suite: Suite,
    /// Its resolution (no machine platform applied).
    pub plan: Plan,
}

impl BuildOutcome {
    /// Whether the stored content changed (created or replaced).
    pub fn content_changed(&self) -> bool {
        matches!(
            self.write,
            BuildWrite::Created | BuildWrite::Replaced { .. }
        )
    }
}

/// Whether [`Builder::current_checked`] found the stored build current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Freshness {
    /// Every source it was built from is unchanged: nothing was built.
    Fresh,
    /// It was missing or stale and was built again; what that wrote.
    Rebuilt(BuildWrite),
}

/// The result of building one role set of one suite.
#[derive(Debug)]
pub struct RoleSetResult {
    /// The suite.
    pub suite: SuiteId,
    /// The role-set key.
    pub role_set: String,
    /// The build, or why it failed.
    pub result: Result<BuildOutcome, BuildError>,
}

impl fmt::Display for RoleSetResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: ", self.suite, self.role_set)?;
        match &self.result {
            Ok(outcome) => {
                let state = match outcome.write {
                    BuildWrite::Created | BuildWrite::Replaced { .. } => "built",
                    BuildWrite::SourcesRefreshed | BuildWrite::Unchanged => "unchanged",
                };
                write!(
                    f,
                    "{state} {} serial {}, {} product(s)",
                    &outcome.build.digest.as_str()[..12],
                    outcome.build.serial,
                    outcome.suite.products.len()
                )
            }
            Err(error) => match error {
                BuildError::Invalid { problems, .. } => {
                    write!(f, "failed with {} problem(s)", problems.len())
                }
                other => write!(f, "failed: {other}"),
            },
        }
    }
}

/// Builds suites for role sets and keeps the stored builds current.
///
/// A builder keeps the products it read (a [`ProductCache`]): its later
/// builds, of any suite and role set, read again only the products whose
/// entries changed. Clones share the cache.
#[derive(Debug, Clone, Default)]
pub struct Builder {
    products: ProductCache,
}

/// The source name under which a build records the ranks of its role set.
pub const ROLES_SOURCE: &str = "roles/ranks";

/// SHA-256 of the ranks of `roles` (`name=rank`, one per line, sorted by
/// name): which version of a slot a role set gets depends on them, so a
/// build is stale once a role's rank changed. (A parent that changed gives
/// its machines another role set, with a build of its own.)
pub fn ranks_digest(roles: &EffectiveRoles) -> Sha256 {
    let text: String = roles
        .names()
        .map(|name| format!("{name}={}\n", roles.rank(name).unwrap_or(0)))
        .collect();
    Sha256::of(text.as_bytes())
}

impl Builder {
    /// A builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds `suite` for `roles` and stores the build (nothing is written
    /// when the stored build is already this one).
    #[instrument(skip_all, fields(suite = %suite, roles = %roles.key()))]
    pub async fn build(
        &self,
        directory: &Directory,
        suite: &SuiteId,
        roles: &EffectiveRoles,
    ) -> Result<BuildOutcome, BuildError> {
        let role_set = roles.key();
        // Two searches whatever the number of products.
        let sources = directory
            .load_suite_build_sources_cached(suite, Some(&self.products))
            .await?;
        // The versions picked are taken out of the sources, not copied.
        let assembled =
            assemble_suite_from(&sources.suite, sources.products, roles).map_err(|errors| {
                BuildError::Invalid {
                    suite: suite.clone(),
                    role_set: role_set.clone(),
                    problems: errors.into_iter().map(BuildProblem::from).collect(),
                }
            })?;
        let (plan, canonical) = resolve_and_serialize(&assembled.suite);
        let plan = plan.map_err(|errors| BuildError::Invalid {
            suite: suite.clone(),
            role_set: role_set.clone(),
            problems: errors.into_iter().map(BuildProblem::from).collect(),
        })?;
        let canonical = canonical?;
        // The sources are the suite and the members this role set gets: a
        // change to a product it does not get cannot change its build. The
        // digests are the ones the directory holds, which reading checked.
        let suite_key = format!("suite/{suite}");
        let mut built_from: BTreeMap<String, Sha256> = BTreeMap::new();
        for key in std::iter::once(suite_key).chain(
            assembled
                .suite
                .products
                .iter()
                .map(|product| format!("product/{}", product.id)),
        ) {
            let digest =
                sources
                    .digests
                    .get(&key)
                    .cloned()
                    .ok_or_else(|| CatalogError::NotFound {
                        what: format!("the source digest of {key}"),
                    })?;
            built_from.insert(key, digest);
        }
        built_from.insert(ROLES_SOURCE.to_owned(), ranks_digest(roles));
        let new = NewBuild {
            suite: suite.clone(),
            role_set,
            digest: digest_of(&canonical),
            canonical,
            built_from,
            built_at: Timestamp::from_system_time(SystemTime::now()).ok_or(BuildError::Clock)?,
        };
        let (build, write) = directory.store_build(&new).await?;
        Ok(BuildOutcome {
            build,
            write,
            suite: assembled.suite,
            plan,
        })
    }

    /// The current build of `suite` for `roles`: the stored one when every
    /// source it was built from is unchanged (checked with one search),
    /// else a new build. A stale build is never returned.
    pub async fn current(
        &self,
        directory: &Directory,
        suite: &SuiteId,
        roles: &EffectiveRoles,
    ) -> Result<StoredBuild, BuildError> {
        self.current_checked(directory, suite, roles)
            .await
            .map(|(build, _)| build)
    }

    /// [`Builder::current`], also saying whether it had to build.
    #[instrument(skip_all, fields(suite = %suite, roles = %roles.key()))]
    pub async fn current_checked(
        &self,
        directory: &Directory,
        suite: &SuiteId,
        roles: &EffectiveRoles,
    ) -> Result<(StoredBuild, Freshness), BuildError> {
        if let Some(stored) = directory.load_build(suite, &roles.key()).await? {
            let products: Vec<ProductId> = stored
                .built_from
                .keys()
                .filter_map(|source| source.strip_prefix("product/"))
                .filter_map(|id| ProductId::new(id).ok())
                .collect();
            let mut now = directory.source_digests(suite, &products).await?;
            // The ranks of the role set are a source too: a rank edited
            // since can pick other versions, so the build is stale.
            now.insert(ROLES_SOURCE.to_owned(), ranks_digest(roles));
            if now == stored.built_from {
                return Ok((stored, Freshness::Fresh));
            }
        }
        let outcome = self.build(directory, suite, roles).await?;
        Ok((outcome.build, Freshness::Rebuilt(outcome.write)))
    }

    /// Builds `suite` (or every suite) for each role alone with its
    /// ancestors, and for the set of no role. A failure of one role set
    /// does not stop the others; only failing to read the suites or roles
    /// fails the whole.
    pub async fn build_all(
        &self,
        directory: &Directory,
        suite: Option<&SuiteId>,
    ) -> Result<Vec<RoleSetResult>, BuildError> {
        let hierarchy = directory.roles().await?;
        let mut role_sets = vec![EffectiveRoles::default()];
        for role in hierarchy.iter() {
            let effective = hierarchy.effective([role.name.clone()])?;
            if !role_sets.iter().any(|known| known.key() == effective.key()) {
                role_sets.push(effective);
            }
        }
        self.build_role_sets(directory, suite, &role_sets).await
    }

    /// Builds `suite` (or every suite) for each of `role_sets`.
    pub async fn build_role_sets(
        &self,
        directory: &Directory,
        suite: Option<&SuiteId>,
        role_sets: &[EffectiveRoles],
    ) -> Result<Vec<RoleSetResult>, BuildError> {
        let suites = match suite {
            Some(suite) => vec![suite.clone()],
            None => directory.suite_ids().await?,
        };
        let mut results = Vec::new();
        for suite in &suites {
            for roles in role_sets {
                results.push(RoleSetResult {
                    suite: suite.clone(),
                    role_set: roles.key(),
                    result: self.build(directory, suite, roles).await,
                });
            }
        }
        Ok(results)
    }
}

/// The canonical bytes of an assembled suite: `canonical_json` of its
/// serde value, written without building the value.
pub fn canonical_bytes(suite: &Suite) -> Result<Vec<u8>, BuildError> {
    canonical_json_of(suite).map_err(|error| BuildError::Serialize {
        suite: suite.id.clone(),
        reason: error.to_string(),
    })
}

/// From this many products on, a build resolves its suite and writes its
/// canonical form on two threads: each takes about a tenth of a build of
/// 10,000 products, and neither needs the other. Below, a thread costs
/// more than it saves.
const PARALLEL_FROM: usize = 256;

/// The suite's resolution and its canonical form ([`canonical_bytes`]).
fn resolve_and_serialize(
    suite: &Suite,
) -> (Result<Plan, Vec<ResolveError>>, Result<Vec<u8>, BuildError>) {
    if suite.products.len() < PARALLEL_FROM {
        return (resolve_suite(suite, None), canonical_bytes(suite));
    }
    std::thread::scope(|scope| {
        let canonical = scope.spawn(|| canonical_bytes(suite));
        let plan = resolve_suite(suite, None);
        let canonical = canonical
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (plan, canonical)
    })
}

#[cfg(test)]
// A failed unwrap is a failed test, with its location.
#[allow(clippy::unwrap_used)]
mod tests {
    use roleout_directory::catalog::synthetic::synthetic;
    use roleout_model::assemble::assemble_suite;
    use roleout_model::protocol::canonical_json;
    use roleout_model::role::RoleHierarchy;

    use super::*;

    /// No role, and each role alone.
    fn role_sets(hierarchy: &RoleHierarchy) -> Vec<EffectiveRoles> {
        std::iter::once(EffectiveRoles::default())
            .chain(
                hierarchy
                    .iter()
                    .map(|role| hierarchy.effective([role.name.clone()]).unwrap()),
            )
            .collect()
    }

    #[test]
    fn the_canonical_bytes_are_those_of_the_suite_as_a_json_value() {
        let (roles, suite, products) = synthetic(60, 4, 3);
        let role_sets = role_sets(&RoleHierarchy::new(roles));
        for roles in &role_sets {
            let assembled = assemble_suite(&suite, &products, roles).unwrap();
            let value = serde_json::to_value(&assembled.suite).unwrap();
            assert_eq!(
                canonical_bytes(&assembled.suite).unwrap(),
                canonical_json(&value),
                "role set {}",
                roles.key()
            );
        }
    }

    /// Taking the versions out of the sources picks exactly what the
    /// borrowing `role::select` picks for every slot, and a product named
    /// twice by a suite is assembled once.
    #[test]
    fn assembly_from_owned_sources_picks_what_select_picks() {
        use roleout_model::product::ProductModel;
        use roleout_model::role::{Versioned, select};

        fn picked<T: PartialEq + Clone>(slot: &Versioned<T>, roles: &EffectiveRoles) -> Option<T> {
            select("slot", slot, roles)
                .unwrap()
                .map(|(value, _)| value.clone())
        }

        let (roles, suite, products) = synthetic(60, 4, 3);
        let role_sets = role_sets(&RoleHierarchy::new(roles));
        for roles in &role_sets {
            for product in &products {
                let (model, _) = product.clone().into_selected(roles).unwrap();
                let mut expected = ProductModel {
                    id: product.id.clone(),
                    version: product.version.clone(),
                    priority: product.priority,
                    platform: product.platform.clone(),
                    description: picked(&product.description, roles).unwrap_or_default(),
                    size: picked(&product.size, roles).unwrap_or_default(),
                    capabilities: picked(&product.capabilities, roles).unwrap_or_default(),
                    dependencies: picked(&product.dependencies, roles).unwrap_or_default(),
                    conflicts: picked(&product.conflicts, roles).unwrap_or_default(),
                    variables: picked(&product.variables, roles).unwrap_or_default(),
                    fileset: picked(&product.fileset, roles).unwrap_or_default(),
                    version_checker: picked(&product.version_checker, roles),
                    incremental: picked(&product.incremental, roles),
                    commands: product
                        .commands
                        .iter()
                        .filter_map(|(phase, slot)| Some((*phase, picked(slot, roles)?)))
                        .collect(),
                };
                // A role version of the variables overrides the default's
                // one by one.
                let (_, provenance) = product.select(roles).unwrap();
                roleout_model::product::over_default_variables(
                    &mut expected,
                    &provenance,
                    product.variables.default_version(),
                );
                assert_eq!(model, expected, "{} for {}", product.id, roles.key());
                assert_eq!(product.select(roles).unwrap().0, expected, "by reference");
            }
            let mut twice = suite.clone();
            twice.members.push(suite.members[0].clone());
            let assembled = assemble_suite(&twice, &products, roles).unwrap();
            let once = assemble_suite(&suite, &products, roles).unwrap();
            assert_eq!(
                assembled.suite, once.suite,
                "a product listed twice for the same roles is assembled once"
            );
        }
    }

    /// A large suite is resolved and serialized on two threads, to the
    /// same results as one after the other.
    #[test]
    fn resolving_and_serializing_on_two_threads_gives_the_same_results() {
        let (roles, suite, products) = synthetic(PARALLEL_FROM + 10, 4, 3);
        let roles = role_sets(&RoleHierarchy::new(roles)).swap_remove(1);
        let assembled = assemble_suite(&suite, &products, &roles).unwrap();
        assert!(assembled.suite.products.len() >= PARALLEL_FROM);
        let (plan, canonical) = resolve_and_serialize(&assembled.suite);
        assert_eq!(
            plan.unwrap(),
            resolve_suite(&assembled.suite, None).unwrap()
        );
        assert_eq!(
            canonical.unwrap(),
            canonical_bytes(&assembled.suite).unwrap()
        );
    }
}
