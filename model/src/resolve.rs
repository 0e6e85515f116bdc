//! Resolution: from the products someone asked for to an install plan.
//!
//! The builder checks every suite it builds with [`resolve_suite`] and the
//! installer orders what it runs with the same code, so a plan that the
//! builder accepted is the plan the machine executes. Resolution takes the
//! products requested (a suite's members, or the products chosen for a
//! machine), completes the set from a pool of assembled products, checks it,
//! and orders it:
//!
//! 1. **Selection.** Every requested product enters the plan at the highest
//!    version the pool has. Selecting one member of a [`ProductGroup`]
//!    selects all of them. Products whose [`Platform`] rejects the machine
//!    are left out and listed in [`Plan::not_applicable`] with the reason.
//! 2. **Product requirements.** Prerequisites and corequisites are pulled
//!    from the pool (the highest version in range) until nothing new
//!    enters. A product enters at one version only: a later requirement
//!    that the chosen version does not satisfy is an error, not a second
//!    version (resolution is greedy, not a search over version sets).
//! 3. **Capability requirements**, one at a time in a fixed order (by the
//!    requiring product's id, then position; the suite's own requirements
//!    last), each after the plan has grown through step 2: a product that
//!    provides what it requires satisfies itself; else a product of the
//!    plan that provides the capability in range is used; else one is
//!    pulled from the pool. Among several candidates the choice prefers a
//!    product already in the plan, then one that conflicts with nothing in
//!    the plan, then the lowest priority number, then the id; the reason
//!    records the candidates passed over. The provider installs first.
//! 4. **Conflicts** are checked over the final plan, both against products
//!    (in range) and against capabilities other products provide.
//! 5. **Order.** Prerequisites and capability providers install before the
//!    products that need them; among products that are ready, the lowest
//!    priority number goes first, then the id. Corequisites only have to be
//!    in the same plan and add no order. The result depends only on what
//!    was asked for, never on the order of the pool.
//!
//! Resolution does not stop at the first problem: it collects every
//! missing product, version out of range, missing capability, conflict and
//! cycle, so an admin fixes a catalog in one pass.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{CapabilityName, GroupName, MachineId, ProductId, SuiteId};
use crate::machine::{Group, Machine};
use crate::product::{CapabilityRequirement, Platform, ProductModel, SystemNeed};
use crate::suite::{ProductGroup, Suite};
use crate::version::{Version, VersionReq};

/// Why a product is in a plan. A step carries every reason that applies,
/// so "why is X here" has a complete answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "kebab-case",
    rename_all_fields = "kebab-case"
)]
pub enum Reason {
    /// The product is a member of the suite being resolved.
    SuiteMember {
        /// The suite.
        suite: SuiteId,
    },
    /// An admin chose the product for this machine.
    ChosenForMachine {
        /// The machine.
        machine: MachineId,
    },
    /// An admin chose the product for the machine's group.
    ChosenForGroup {
        /// The machine group.
        group: GroupName,
    },
    /// Another product of the plan needs it installed first.
    Prerequisite {
        /// The product that needs it.
        of: ProductId,
        /// The versions that product accepts.
        #[serde(default, skip_serializing_if = "VersionReq::is_any")]
        versions: VersionReq,
    },
    /// It supplies something the operating system must have for another
    /// product of the plan (`<requires-system provider>`); the agent skips
    /// it where the system already has it.
    SuppliesSystem {
        /// The product that needs it.
        of: ProductId,
        /// What the system must have.
        need: SystemNeed,
    },
    /// Another product of the plan needs it in the same plan.
    Corequisite {
        /// The product that needs it.
        of: ProductId,
        /// The versions that product accepts.
        #[serde(default, skip_serializing_if = "VersionReq::is_any")]
        versions: VersionReq,
    },
    /// It provides a capability another product of the plan requires.
    ProvidesCapability {
        /// The capability.
        capability: CapabilityName,
        /// The versions the requiring product accepts.
        #[serde(default, skip_serializing_if = "VersionReq::is_any")]
        versions: VersionReq,
        /// The requiring product.
        for_product: ProductId,
        /// Other products that could have provided it and were passed over.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        chosen_over: Vec<ProductId>,
    },
    /// It provides a capability the suite as a whole requires
    /// (ProductCapabilities).
    SuiteRequirement {
        /// The capability.
        capability: CapabilityName,
        /// The versions the suite accepts.
        #[serde(default, skip_serializing_if = "VersionReq::is_any")]
        versions: VersionReq,
        /// Other products that could have provided it and were passed over.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        chosen_over: Vec<ProductId>,
    },
    /// It shares a ProductGroup with a product of the plan.
    Group {
        /// The group's key.
        group: String,
        /// The member that selected the group.
        with: ProductId,
    },
}

impl Reason {
    /// True for reasons that select a product by choice (request or
    /// group) rather than by need: such a product that does not apply to
    /// the machine is simply left out, while a needed one is an error.
    fn is_selection(&self) -> bool {
        matches!(
            self,
            Reason::SuiteMember { .. }
                | Reason::ChosenForMachine { .. }
                | Reason::ChosenForGroup { .. }
                | Reason::Group { .. }
        )
    }
}

fn range_text(versions: &VersionReq) -> String {
    if versions.is_any() {
        "any version".to_owned()
    } else {
        versions.to_string()
    }
}

fn id_list(ids: &[ProductId]) -> String {
    ids.iter()
        .map(ProductId::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The rule that picks among several providers, in words.
const CHOICE_RULE: &str = "products already in the plan first, then products free of \
                           conflicts, then the lowest priority number, then the id";

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::SuiteMember { suite } => write!(f, "member of suite {suite}"),
            Reason::ChosenForMachine { machine } => write!(f, "chosen for machine {machine}"),
            Reason::ChosenForGroup { group } => write!(f, "chosen for machine group {group}"),
            Reason::Prerequisite { of, versions } => {
                write!(f, "prerequisite of {of} ({})", range_text(versions))
            }
            Reason::SuppliesSystem { of, need } => {
                write!(f, "supplies {need} for {of} where the system lacks it")
            }
            Reason::Corequisite { of, versions } => {
                write!(f, "corequisite of {of} ({})", range_text(versions))
            }
            Reason::ProvidesCapability {
                capability,
                versions,
                for_product,
                chosen_over,
            } => {
                write!(
                    f,
                    "provides capability {capability} ({}) required by {for_product}",
                    range_text(versions)
                )?;
                if !chosen_over.is_empty() {
                    write!(f, "; chosen over {} ({CHOICE_RULE})", id_list(chosen_over))?;
                }
                Ok(())
            }
            Reason::SuiteRequirement {
                capability,
                versions,
                chosen_over,
            } => {
                write!(
                    f,
                    "provides capability {capability} ({}) required by the suite",
                    range_text(versions)
                )?;
                if !chosen_over.is_empty() {
                    write!(f, "; chosen over {} ({CHOICE_RULE})", id_list(chosen_over))?;
                }
                Ok(())
            }
            Reason::Group { group, with } => write!(f, "in group {group} with {with}"),
        }
    }
}

/// What to resolve.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The products asked for, each with why it was asked for. The same
    /// product may appear several times with different reasons.
    pub products: Vec<(ProductId, Reason)>,
    /// Every assembled product available to complete the plan. It may hold
    /// several versions of one product; a plan takes one of them.
    pub pool: &'a [ProductModel],
    /// Product groups: selecting one member selects all.
    pub groups: &'a [ProductGroup],
    /// Capabilities the suite as a whole requires of its products.
    pub suite_requires: &'a [CapabilityRequirement],
    /// The machine's OS family and architecture, when the plan is for one
    /// machine; products whose platform rejects it are left out.
    pub platform: Option<(&'a str, &'a str)>,
}

/// One product of a plan, in install order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PlanStep {
    /// The product.
    pub product: ProductId,
    /// The version the plan takes.
    pub version: Version,
    /// Its install priority.
    pub priority: i32,
    /// Products of the plan that must be installed before this one (its
    /// prerequisites and the providers of the capabilities it requires),
    /// sorted by id. A failure of one of them blocks this step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<ProductId>,
    /// Why it is in the plan, in the order the reasons were found.
    pub reasons: Vec<Reason>,
}

/// A product left out because its platform rejects the machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct NotApplicable {
    /// The product.
    pub product: ProductId,
    /// Why it does not apply, in words.
    pub reason: String,
}

/// An install plan: the products to install, in order, with reasons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Plan {
    /// The steps in install order.
    pub steps: Vec<PlanStep>,
    /// Products that were selected but do not apply to the machine, by id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_applicable: Vec<NotApplicable>,
}

impl Plan {
    /// The step of `product`, if it is in the plan.
    pub fn step(&self, product: &ProductId) -> Option<&PlanStep> {
        self.steps.iter().find(|step| step.product == *product)
    }

    /// The products in install order.
    pub fn order(&self) -> impl Iterator<Item = &ProductId> {
        self.steps.iter().map(|step| &step.product)
    }

    /// Why `product` is in the plan, one line per reason; for a product
    /// left out as not applicable, one line saying why; empty for a product
    /// the plan does not know.
    pub fn why(&self, product: &ProductId) -> Vec<String> {
        if let Some(step) = self.step(product) {
            return step.reasons.iter().map(ToString::to_string).collect();
        }
        self.not_applicable
            .iter()
            .filter(|left_out| left_out.product == *product)
            .map(|left_out| format!("not in the plan: {}", left_out.reason))
            .collect()
    }
}

/// Who requires a capability.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Requirer {
    /// A product of the plan.
    Product(ProductId),
    /// The suite itself (ProductCapabilities). Ordered after products, so
    /// product requirements pick providers first.
    Suite,
}

impl fmt::Display for Requirer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Requirer::Product(product) => write!(f, "product {product}"),
            Requirer::Suite => f.write_str("the suite"),
        }
    }
}

/// A product that provides a capability but could not satisfy a
/// requirement for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapabilityOffer {
    /// The product.
    pub product: ProductId,
    /// The version it provides the capability at.
    pub version: Version,
    /// False when the product does not apply to the machine.
    pub applies: bool,
}

fn offers_text(offers: &[CapabilityOffer]) -> String {
    if offers.is_empty() {
        return "no product provides it at any version".to_owned();
    }
    let parts: Vec<String> = offers
        .iter()
        .map(|offer| {
            if offer.applies {
                format!("{} provides {}", offer.product, offer.version)
            } else {
                format!(
                    "{} provides {} but does not apply to this machine",
                    offer.product, offer.version
                )
            }
        })
        .collect();
    parts.join("; ")
}

fn path_text(path: &[ProductId]) -> String {
    path.iter()
        .map(ProductId::as_str)
        .collect::<Vec<_>>()
        .join(" -> ")
}

/// A problem that keeps a set of products from being a valid plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// A product is needed but the pool does not have it.
    #[error("product {product} is not available, but it is needed as {needed_as}")]
    MissingProduct {
        /// The missing product.
        product: ProductId,
        /// Why it is needed.
        needed_as: Reason,
    },
    /// A product is needed in a version range that neither the version in
    /// the plan nor any available version satisfies.
    #[error(
        "product {product} is at version {found}, outside {versions}, but it is needed in that \
         range as {needed_as}"
    )]
    VersionOutOfRange {
        /// The product.
        product: ProductId,
        /// The version in the plan, or else the highest available one.
        found: Version,
        /// The range it had to be in.
        versions: VersionReq,
        /// Why it is needed.
        needed_as: Reason,
    },
    /// A product is needed but does not apply to the machine.
    #[error(
        "product {product} does not apply to this machine ({why}), but it is needed as {needed_as}"
    )]
    RequiredNotApplicable {
        /// The product.
        product: ProductId,
        /// Why it does not apply.
        why: String,
        /// Why it is needed.
        needed_as: Reason,
    },
    /// No product of the plan or the pool provides a required capability
    /// in range.
    #[error(
        "{required_by} requires capability {capability} ({}), which no available product \
         provides in that range: {}",
        range_text(.versions),
        offers_text(.offered)
    )]
    MissingCapability {
        /// The capability.
        capability: CapabilityName,
        /// The range required.
        versions: VersionReq,
        /// Who requires it.
        required_by: Requirer,
        /// Products providing it that could not be used.
        offered: Vec<CapabilityOffer>,
    },
    /// Two products of the plan conflict by a product rule.
    #[error(
        "product {product} conflicts with product {other} ({}), and the plan has {other} {other_version}",
        range_text(.versions)
    )]
    ProductConflict {
        /// The product declaring the conflict.
        product: ProductId,
        /// The product it conflicts with.
        other: ProductId,
        /// The version of `other` in the plan.
        other_version: Version,
        /// The conflicting range of `other`, as declared.
        versions: VersionReq,
    },
    /// A product conflicts with a capability another product provides.
    #[error(
        "product {product} conflicts with capability {capability} ({}), which product {other} \
         provides at {version}",
        range_text(.versions)
    )]
    CapabilityConflict {
        /// The product declaring the conflict.
        product: ProductId,
        /// The capability.
        capability: CapabilityName,
        /// The conflicting range, as declared.
        versions: VersionReq,
        /// The product providing it.
        other: ProductId,
        /// The version it provides the capability at.
        version: Version,
    },
    /// Products need each other installed first.
    #[error(
        "install order has a cycle: {} (each needs the next installed first; all of {} \
         depend on each other)",
        path_text(.path),
        id_list(.members)
    )]
    Cycle {
        /// The cycle, its first product repeated at the end.
        path: Vec<ProductId>,
        /// Every product of the strongly connected component the cycle
        /// lies in, sorted by id.
        members: Vec<ProductId>,
    },
}

/// Resolves `request` into a plan, or returns every problem found.
///
/// See the module documentation for the rules. About cycles: every
/// strongly connected component of the "installs before" graph that holds
/// a cycle is reported once, as one [`ResolveError::Cycle`] whose `path`
/// is a real elementary cycle (the shortest one through the component's
/// first product by id) and whose `members` name the whole component. So
/// "every cycle is reported" means every knot of mutually dependent
/// products is named in full with at least one concrete path through it;
/// breaking the reported path may reveal another cycle in the same
/// component, which the next run reports.
pub fn resolve(request: &Request<'_>) -> Result<Plan, Vec<ResolveError>> {
    let mut resolver = Resolver::new(request);
    for (product, reason) in &request.products {
        resolver.add(product, &VersionReq::any(), reason.clone());
    }
    for index in 0..request.suite_requires.len() {
        resolver
            .pending_capabilities
            .insert((Requirer::Suite, index));
    }
    loop {
        while let Some(product) = resolver.pending_products.pop_front() {
            resolver.process_product(&product);
        }
        let Some((requirer, index)) = resolver.pending_capabilities.pop_first() else {
            break;
        };
        resolver.resolve_capability(requirer, index);
    }
    resolver.check_conflicts();
    resolver.finish()
}

/// Resolves a suite for its requester: every member of the assembled suite
/// is requested, the pool is the suite's products (members and what was
/// pulled in from the catalog for them, which enters the plan only as
/// something a product of the plan requires), and the suite's groups and
/// capability requirements apply.
pub fn resolve_suite(
    suite: &Suite,
    platform: Option<(&str, &str)>,
) -> Result<Plan, Vec<ResolveError>> {
    let products = suite
        .products
        .iter()
        .filter(|product| !suite.pulled_in.contains(&product.id))
        .map(|product| {
            let reason = Reason::SuiteMember {
                suite: suite.id.clone(),
            };
            (product.id.clone(), reason)
        })
        .collect();
    resolve(&Request {
        products,
        pool: &suite.products,
        groups: &suite.groups,
        suite_requires: &suite.capabilities.requires,
        platform,
    })
}

/// Resolves the products chosen for one machine (Fig. 7): those of its
/// group, then its own, completed from the suite's products. The machine's
/// platform filters products only when both its OS family and its
/// architecture are known.
pub fn resolve_machine(
    suite: &Suite,
    group: Option<&Group>,
    machine: &Machine,
) -> Result<Plan, Vec<ResolveError>> {
    let mut products = Vec::new();
    if let Some(group) = group {
        for product in &group.products {
            let reason = Reason::ChosenForGroup {
                group: group.name.clone(),
            };
            products.push((product.clone(), reason));
        }
    }
    for product in &machine.products {
        let reason = Reason::ChosenForMachine {
            machine: machine.name.clone(),
        };
        products.push((product.clone(), reason));
    }
    let platform = match (&machine.os, &machine.arch) {
        (Some(os), Some(arch)) => Some((os.as_str(), arch.as_str())),
        _ => None,
    };
    resolve(&Request {
        products,
        pool: &suite.products,
        groups: &suite.groups,
        suite_requires: &suite.capabilities.requires,
        platform,
    })
}

/// Why `platform` rejects the machine, in words.
fn platform_mismatch(platform: &Platform, os: &str, arch: &str) -> String {
    let mut parts = Vec::new();
    if !platform.os.is_empty() && !platform.os.iter().any(|o| o.eq_ignore_ascii_case(os)) {
        parts.push(format!(
            "it is for OS {} and the machine runs {os}",
            platform.os.join(", ")
        ));
    }
    if !platform.arch.is_empty() && !platform.arch.iter().any(|a| a.eq_ignore_ascii_case(arch)) {
        parts.push(format!(
            "it is for architecture {} and the machine is {arch}",
            platform.arch.join(", ")
        ));
    }
    parts.join("; ")
}

/// The version at which `model` provides `capability` within `versions`
/// (a capability without a version is provided at the product's version).
pub(crate) fn provided_version<'m>(
    model: &'m ProductModel,
    capability: &CapabilityName,
    versions: &VersionReq,
) -> Option<&'m Version> {
    model
        .capabilities
        .provides
        .iter()
        .filter(|provided| provided.name == *capability)
        .map(|provided| provided.version.as_ref().unwrap_or(&model.version))
        .find(|version| versions.matches(version))
}

/// Whether two products conflict by a rule either of them declares.
fn in_conflict(first: &ProductModel, second: &ProductModel) -> bool {
    let declares = |model: &ProductModel, other: &ProductModel| {
        model
            .conflicts
            .products
            .iter()
            .any(|rule| rule.product == other.id && rule.versions.matches(&other.version))
            || model
                .conflicts
                .capabilities
                .iter()
                .any(|rule| provided_version(other, &rule.capability, &rule.versions).is_some())
    };
    first.id != second.id && (declares(first, second) || declares(second, first))
}

/// A product in the plan being built.
struct Planned<'a> {
    model: &'a ProductModel,
    reasons: Vec<Reason>,
    after: BTreeSet<ProductId>,
}

impl Planned<'_> {
    fn add_reason(&mut self, reason: Reason) {
        if !self.reasons.contains(&reason) {
            self.reasons.push(reason);
        }
    }
}

/// The state of one resolution.
struct Resolver<'a> {
    /// Pool products by id, highest version first (the pool's order breaks
    /// ties between equal versions).
    pool: BTreeMap<ProductId, Vec<&'a ProductModel>>,
    groups: &'a [ProductGroup],
    suite_requires: &'a [CapabilityRequirement],
    platform: Option<(&'a str, &'a str)>,
    planned: BTreeMap<ProductId, Planned<'a>>,
    not_applicable: BTreeMap<ProductId, String>,
    /// Products whose groups, prerequisites and corequisites are still to
    /// be followed.
    pending_products: VecDeque<ProductId>,
    /// Capability requirements still to be satisfied: who requires and the
    /// position of the requirement in its list.
    pending_capabilities: BTreeSet<(Requirer, usize)>,
    /// Positions of the groups already expanded.
    expanded_groups: BTreeSet<usize>,
    errors: Vec<ResolveError>,
}

impl<'a> Resolver<'a> {
    fn new(request: &Request<'a>) -> Self {
        let mut pool: BTreeMap<ProductId, Vec<&'a ProductModel>> = BTreeMap::new();
        for model in request.pool {
            pool.entry(model.id.clone()).or_default().push(model);
        }
        for versions in pool.values_mut() {
            // A stable sort keeps the pool's order among equal versions.
            versions.sort_by(|a, b| b.version.cmp(&a.version));
        }
        Self {
            pool,
            groups: request.groups,
            suite_requires: request.suite_requires,
            platform: request.platform,
            planned: BTreeMap::new(),
            not_applicable: BTreeMap::new(),
            pending_products: VecDeque::new(),
            pending_capabilities: BTreeSet::new(),
            expanded_groups: BTreeSet::new(),
            errors: Vec::new(),
        }
    }

    fn applies(&self, model: &ProductModel) -> bool {
        match self.platform {
            Some((os, arch)) => model.platform.accepts(os, arch),
            None => true,
        }
    }

    /// Brings `product` into the plan within `versions` for `reason`, or
    /// records why it cannot be.
    fn add(&mut self, product: &ProductId, versions: &VersionReq, reason: Reason) {
        if let Some(planned) = self.planned.get_mut(product) {
            if versions.matches(&planned.model.version) {
                planned.add_reason(reason);
            } else {
                self.errors.push(ResolveError::VersionOutOfRange {
                    product: product.clone(),
                    found: planned.model.version.clone(),
                    versions: versions.clone(),
                    needed_as: reason,
                });
            }
            return;
        }
        let Some(candidates) = self.pool.get(product) else {
            self.errors.push(ResolveError::MissingProduct {
                product: product.clone(),
                needed_as: reason,
            });
            return;
        };
        let applicable: Vec<&'a ProductModel> = candidates
            .iter()
            .copied()
            .filter(|model| self.applies(model))
            .collect();
        let Some(highest) = applicable.first() else {
            // Every version is for other machines; the highest one says why.
            let why = match (candidates.first(), self.platform) {
                (Some(model), Some((os, arch))) => platform_mismatch(&model.platform, os, arch),
                _ => String::new(),
            };
            self.not_applicable
                .entry(product.clone())
                .or_insert_with(|| why.clone());
            if !reason.is_selection() {
                self.errors.push(ResolveError::RequiredNotApplicable {
                    product: product.clone(),
                    why,
                    needed_as: reason,
                });
            }
            return;
        };
        match applicable
            .iter()
            .find(|model| versions.matches(&model.version))
        {
            Some(model) => {
                self.planned.insert(
                    product.clone(),
                    Planned {
                        model,
                        reasons: vec![reason],
                        after: BTreeSet::new(),
                    },
                );
                self.pending_products.push_back(product.clone());
            }
            None => self.errors.push(ResolveError::VersionOutOfRange {
                product: product.clone(),
                found: highest.version.clone(),
                versions: versions.clone(),
                needed_as: reason,
            }),
        }
    }

    /// Follows the groups, prerequisites and corequisites of a product that
    /// just entered the plan, and queues its capability requirements.
    fn process_product(&mut self, product: &ProductId) {
        let Some(model) = self.planned.get(product).map(|planned| planned.model) else {
            return;
        };
        // A group is expanded once, from the first of its members to enter
        // the plan: that member is the one that selected the others.
        for (group_index, group) in self.groups.iter().enumerate() {
            if !group.products.contains(product) || !self.expanded_groups.insert(group_index) {
                continue;
            }
            for member in group.products.iter().filter(|member| *member != product) {
                let reason = Reason::Group {
                    group: group.name.clone(),
                    with: product.clone(),
                };
                self.add(member, &VersionReq::any(), reason);
            }
        }
        for requirement in &model.dependencies.prerequisites {
            let reason = Reason::Prerequisite {
                of: product.clone(),
                versions: requirement.versions.clone(),
            };
            self.add(&requirement.product, &requirement.versions, reason);
            let satisfied = self
                .planned
                .get(&requirement.product)
                .is_some_and(|planned| requirement.versions.matches(&planned.model.version));
            if satisfied {
                if let Some(planned) = self.planned.get_mut(product) {
                    planned.after.insert(requirement.product.clone());
                }
            }
        }
        for requirement in &model.dependencies.system {
            let Some(provider) = &requirement.provider else {
                continue;
            };
            let reason = Reason::SuppliesSystem {
                of: product.clone(),
                need: requirement.need.clone(),
            };
            self.add(provider, &VersionReq::any(), reason);
            if self.planned.contains_key(provider) {
                if let Some(planned) = self.planned.get_mut(product) {
                    planned.after.insert(provider.clone());
                }
            }
        }
        for requirement in &model.dependencies.corequisites {
            let reason = Reason::Corequisite {
                of: product.clone(),
                versions: requirement.versions.clone(),
            };
            self.add(&requirement.product, &requirement.versions, reason);
        }
        for index in 0..model.dependencies.capabilities.len() {
            self.pending_capabilities
                .insert((Requirer::Product(product.clone()), index));
        }
    }

    /// Satisfies one capability requirement (see the module documentation
    /// for the choice among providers).
    fn resolve_capability(&mut self, requirer: Requirer, index: usize) {
        let requirement = match &requirer {
            Requirer::Product(product) => self
                .planned
                .get(product)
                .and_then(|planned| planned.model.dependencies.capabilities.get(index)),
            Requirer::Suite => self.suite_requires.get(index),
        };
        let Some(requirement) = requirement.cloned() else {
            return;
        };
        let (capability, versions) = (&requirement.capability, &requirement.versions);
        if let Requirer::Product(product) = &requirer {
            let provides_itself = self.planned.get(product).is_some_and(|planned| {
                provided_version(planned.model, capability, versions).is_some()
            });
            if provides_itself {
                return;
            }
        }
        // Candidates in the plan, then in the pool, each list in preference
        // order; the first one wins.
        let requirer_id = match &requirer {
            Requirer::Product(product) => Some(product),
            Requirer::Suite => None,
        };
        let mut in_plan: Vec<&'a ProductModel> = self
            .planned
            .values()
            .map(|planned| planned.model)
            .filter(|model| Some(&model.id) != requirer_id)
            .filter(|model| provided_version(model, capability, versions).is_some())
            .collect();
        in_plan.sort_by(|a, b| (a.priority, &a.id).cmp(&(b.priority, &b.id)));
        let chosen = if let Some(first) = in_plan.first() {
            let chosen_over = in_plan[1..].iter().map(|model| model.id.clone()).collect();
            Some((first.id.clone(), chosen_over))
        } else {
            let planned_models: Vec<&ProductModel> =
                self.planned.values().map(|planned| planned.model).collect();
            // One candidate per id, its highest version that provides the
            // capability in range.
            let mut from_pool: Vec<(bool, &'a ProductModel)> = self
                .pool
                .values()
                .filter_map(|versions_of_product| {
                    versions_of_product.iter().copied().find(|model| {
                        self.applies(model)
                            && provided_version(model, capability, versions).is_some()
                    })
                })
                .map(|model| {
                    let conflicts = planned_models
                        .iter()
                        .any(|planned| in_conflict(model, planned));
                    (conflicts, model)
                })
                .collect();
            from_pool.sort_by(|(conflicts_a, a), (conflicts_b, b)| {
                (conflicts_a, a.priority, &a.id).cmp(&(conflicts_b, b.priority, &b.id))
            });
            match from_pool.first() {
                Some((_, first)) => {
                    let chosen_over = from_pool[1..]
                        .iter()
                        .map(|(_, model)| model.id.clone())
                        .collect();
                    self.planned.insert(
                        first.id.clone(),
                        Planned {
                            model: first,
                            reasons: Vec::new(),
                            after: BTreeSet::new(),
                        },
                    );
                    self.pending_products.push_back(first.id.clone());
                    Some((first.id.clone(), chosen_over))
                }
                None => None,
            }
        };
        let Some((provider, chosen_over)) = chosen else {
            let offered = self.offers(capability);
            self.errors.push(ResolveError::MissingCapability {
                capability: capability.clone(),
                versions: versions.clone(),
                required_by: requirer,
                offered,
            });
            return;
        };
        let reason = match &requirer {
            Requirer::Product(product) => {
                if let Some(planned) = self.planned.get_mut(product) {
                    planned.after.insert(provider.clone());
                }
                Reason::ProvidesCapability {
                    capability: capability.clone(),
                    versions: versions.clone(),
                    for_product: product.clone(),
                    chosen_over,
                }
            }
            Requirer::Suite => Reason::SuiteRequirement {
                capability: capability.clone(),
                versions: versions.clone(),
                chosen_over,
            },
        };
        if let Some(planned) = self.planned.get_mut(&provider) {
            planned.add_reason(reason);
        }
    }

    /// Every product of the plan or the pool that provides `capability` at
    /// any version, for an error message: the plan's version of a planned
    /// product, every version of the others.
    fn offers(&self, capability: &CapabilityName) -> Vec<CapabilityOffer> {
        let mut offers = Vec::new();
        for (product, versions_of_product) in &self.pool {
            let models: Vec<&ProductModel> = match self.planned.get(product) {
                Some(planned) => vec![planned.model],
                None => versions_of_product.clone(),
            };
            for model in models {
                let provided = model
                    .capabilities
                    .provides
                    .iter()
                    .filter(|provided| provided.name == *capability);
                for provided in provided {
                    offers.push(CapabilityOffer {
                        product: model.id.clone(),
                        version: provided.version.clone().unwrap_or(model.version.clone()),
                        applies: self.applies(model),
                    });
                }
            }
        }
        offers
    }

    /// Checks every conflict rule of every planned product.
    fn check_conflicts(&mut self) {
        for (product, planned) in &self.planned {
            let conflicts = &planned.model.conflicts;
            for rule in &conflicts.products {
                if rule.product == *product {
                    continue;
                }
                if let Some(other) = self.planned.get(&rule.product) {
                    if rule.versions.matches(&other.model.version) {
                        self.errors.push(ResolveError::ProductConflict {
                            product: product.clone(),
                            other: rule.product.clone(),
                            other_version: other.model.version.clone(),
                            versions: rule.versions.clone(),
                        });
                    }
                }
            }
            for rule in &conflicts.capabilities {
                for (other_id, other) in &self.planned {
                    if other_id == product {
                        continue;
                    }
                    if let Some(version) =
                        provided_version(other.model, &rule.capability, &rule.versions)
                    {
                        self.errors.push(ResolveError::CapabilityConflict {
                            product: product.clone(),
                            capability: rule.capability.clone(),
                            versions: rule.versions.clone(),
                            other: other_id.clone(),
                            version: version.clone(),
                        });
                    }
                }
            }
        }
    }

    /// Orders the plan, reports cycles, and returns the plan or the errors.
    fn finish(mut self) -> Result<Plan, Vec<ResolveError>> {
        // Nodes are numbered in id order, so every choice below that falls
        // back on the number falls back on the id.
        let ids: Vec<ProductId> = self.planned.keys().cloned().collect();
        let number: BTreeMap<&ProductId, usize> = ids
            .iter()
            .enumerate()
            .map(|(index, id)| (id, index))
            .collect();
        let needs: Vec<Vec<usize>> = self
            .planned
            .values()
            .map(|planned| {
                planned
                    .after
                    .iter()
                    .filter_map(|dependency| number.get(dependency).copied())
                    .collect()
            })
            .collect();
        let priorities: Vec<i32> = self
            .planned
            .values()
            .map(|planned| planned.model.priority)
            .collect();
        match install_order(&needs, &priorities) {
            Ok(order) if self.errors.is_empty() => {
                let steps = order
                    .into_iter()
                    .filter_map(|index| {
                        let planned = self.planned.remove(&ids[index])?;
                        Some(PlanStep {
                            product: planned.model.id.clone(),
                            version: planned.model.version.clone(),
                            priority: planned.model.priority,
                            after: planned.after.into_iter().collect(),
                            reasons: planned.reasons,
                        })
                    })
                    .collect();
                let not_applicable = self
                    .not_applicable
                    .into_iter()
                    .map(|(product, reason)| NotApplicable { product, reason })
                    .collect();
                Ok(Plan {
                    steps,
                    not_applicable,
                })
            }
            Ok(_) => Err(self.errors),
            Err(cycles) => {
                for cycle in cycles {
                    self.errors.push(ResolveError::Cycle {
                        path: cycle.path.iter().map(|&index| ids[index].clone()).collect(),
                        members: cycle
                            .members
                            .iter()
                            .map(|&index| ids[index].clone())
                            .collect(),
                    });
                }
                Err(self.errors)
            }
        }
    }
}

/// A cycle of the graph given to [`install_order`], as node numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GraphCycle {
    /// The cycle, first node repeated at the end.
    path: Vec<usize>,
    /// The strongly connected component it lies in, ascending.
    members: Vec<usize>,
}

/// Orders nodes `0..n` so that every node comes after the nodes it needs
/// (`needs[node]`); among ready nodes the lowest priority goes first, then
/// the lowest number. Fails with one cycle per cyclic strongly connected
/// component.
fn install_order(needs: &[Vec<usize>], priorities: &[i32]) -> Result<Vec<usize>, Vec<GraphCycle>> {
    let count = needs.len();
    let mut waiting_on = vec![0usize; count];
    let mut dependents = vec![Vec::new(); count];
    for (node, dependencies) in needs.iter().enumerate() {
        for &dependency in dependencies {
            waiting_on[node] += 1;
            dependents[dependency].push(node);
        }
    }
    let mut ready: BinaryHeap<Reverse<(i32, usize)>> = (0..count)
        .filter(|&node| waiting_on[node] == 0)
        .map(|node| Reverse((priorities[node], node)))
        .collect();
    let mut order = Vec::with_capacity(count);
    while let Some(Reverse((_, node))) = ready.pop() {
        order.push(node);
        for &dependent in &dependents[node] {
            waiting_on[dependent] -= 1;
            if waiting_on[dependent] == 0 {
                ready.push(Reverse((priorities[dependent], dependent)));
            }
        }
    }
    if order.len() == count {
        return Ok(order);
    }
    let cycles = strongly_connected(needs)
        .into_iter()
        .filter_map(|members| {
            let path = shortest_cycle(needs, &members)?;
            Some(GraphCycle { path, members })
        })
        .collect();
    Err(cycles)
}

/// The strongly connected components of the graph (Tarjan's algorithm,
/// with an explicit stack so deep dependency chains cannot overflow the
/// call stack), each sorted ascending, in order of their first node.
fn strongly_connected(needs: &[Vec<usize>]) -> Vec<Vec<usize>> {
    const UNVISITED: usize = usize::MAX;
    let count = needs.len();
    let mut visit_index = vec![UNVISITED; count];
    let mut lowlink = vec![0usize; count];
    let mut on_stack = vec![false; count];
    let mut stack = Vec::new();
    let mut components = Vec::new();
    let mut next_index = 0;
    for root in 0..count {
        if visit_index[root] != UNVISITED {
            continue;
        }
        // (node, position of the next edge to follow)
        let mut calls = vec![(root, 0usize)];
        visit_index[root] = next_index;
        lowlink[root] = next_index;
        next_index += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&(node, position)) = calls.last() {
            if let Some(&next) = needs[node].get(position) {
                if let Some(call) = calls.last_mut() {
                    call.1 += 1;
                }
                if visit_index[next] == UNVISITED {
                    visit_index[next] = next_index;
                    lowlink[next] = next_index;
                    next_index += 1;
                    stack.push(next);
                    on_stack[next] = true;
                    calls.push((next, 0));
                } else if on_stack[next] {
                    lowlink[node] = lowlink[node].min(visit_index[next]);
                }
                continue;
            }
            calls.pop();
            if let Some(&(parent, _)) = calls.last() {
                lowlink[parent] = lowlink[parent].min(lowlink[node]);
            }
            if lowlink[node] == visit_index[node] {
                let mut component = Vec::new();
                while let Some(member) = stack.pop() {
                    on_stack[member] = false;
                    component.push(member);
                    if member == node {
                        break;
                    }
                }
                component.sort_unstable();
                components.push(component);
            }
        }
    }
    components.sort();
    components
}

/// The shortest cycle through the first member of a strongly connected
/// component (breadth-first, edges taken in ascending order), or `None`
/// when the component is one node without a loop.
fn shortest_cycle(needs: &[Vec<usize>], members: &[usize]) -> Option<Vec<usize>> {
    let start = *members.first()?;
    let inside: BTreeSet<usize> = members.iter().copied().collect();
    let mut came_from: BTreeMap<usize, usize> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        let mut next_nodes: Vec<usize> = needs[node]
            .iter()
            .copied()
            .filter(|next| inside.contains(next))
            .collect();
        next_nodes.sort_unstable();
        next_nodes.dedup();
        if next_nodes.contains(&start) {
            // Walk back from `node` to `start`, then close the loop.
            let mut path = vec![node];
            let mut current = node;
            while current != start {
                current = *came_from.get(&current)?;
                path.push(current);
            }
            path.reverse();
            path.push(start);
            return Some(path);
        }
        for next in next_nodes {
            if next != start && !came_from.contains_key(&next) {
                came_from.insert(next, node);
                queue.push_back(next);
            }
        }
    }
    None
}

#[cfg(test)]
// Test inputs are literals; a panic on one is the test failing.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::product::{
        Capabilities, Capability, Conflicts, Dependencies, InstallFileSet, InstallSize,
        ProductDescription, ProductRequirement,
    };
    use crate::suite::{ProductCapabilities, SuiteDescription, SuitePolicy};

    fn id(text: &str) -> ProductId {
        ProductId::new(text).unwrap()
    }

    fn ids(texts: &[&str]) -> Vec<ProductId> {
        texts.iter().map(|text| id(text)).collect()
    }

    fn range(text: &str) -> VersionReq {
        VersionReq::parse(text).unwrap()
    }

    fn capability(text: &str) -> CapabilityName {
        CapabilityName::new(text).unwrap()
    }

    fn product(name: &str, version: &str, priority: i32) -> ProductModel {
        ProductModel {
            id: id(name),
            version: Version::new(version).unwrap(),
            priority,
            platform: Platform::default(),
            description: ProductDescription::default(),
            size: InstallSize::default(),
            capabilities: Capabilities::default(),
            dependencies: Dependencies::default(),
            conflicts: Conflicts::default(),
            variables: Vec::new(),
            fileset: InstallFileSet::default(),
            version_checker: None,
            incremental: None,
            commands: BTreeMap::new(),
        }
    }

    fn requirement(name: &str, versions: &str) -> ProductRequirement {
        ProductRequirement {
            product: id(name),
            versions: range(versions),
        }
    }

    fn capability_requirement(name: &str, versions: &str) -> CapabilityRequirement {
        CapabilityRequirement {
            capability: capability(name),
            versions: range(versions),
        }
    }

    fn needs(mut model: ProductModel, name: &str, versions: &str) -> ProductModel {
        model
            .dependencies
            .prerequisites
            .push(requirement(name, versions));
        model
    }

    fn provides(mut model: ProductModel, name: &str, version: Option<&str>) -> ProductModel {
        model.capabilities.provides.push(Capability {
            name: capability(name),
            version: version.map(|text| Version::new(text).unwrap()),
        });
        model
    }

    fn requires_capability(mut model: ProductModel, name: &str, versions: &str) -> ProductModel {
        model
            .dependencies
            .capabilities
            .push(capability_requirement(name, versions));
        model
    }

    fn member() -> Reason {
        Reason::SuiteMember {
            suite: SuiteId::new("office").unwrap(),
        }
    }

    fn request<'a>(asked: &[&str], pool: &'a [ProductModel]) -> Request<'a> {
        Request {
            products: asked.iter().map(|name| (id(name), member())).collect(),
            pool,
            groups: &[],
            suite_requires: &[],
            platform: None,
        }
    }

    fn order(plan: &Plan) -> Vec<&str> {
        plan.order().map(ProductId::as_str).collect()
    }

    fn suite(products: Vec<ProductModel>) -> Suite {
        Suite {
            id: SuiteId::new("office").unwrap(),
            version: Version::new("1").unwrap(),
            description: SuiteDescription::default(),
            capabilities: ProductCapabilities::default(),
            categories: Vec::new(),
            groups: Vec::new(),
            variables: Vec::new(),
            presentation: Vec::new(),
            linkage: Vec::new(),
            incremental: None,
            policy: SuitePolicy::default(),
            products,
            pulled_in: Vec::new(),
        }
    }

    #[test]
    fn independent_products_go_by_priority_then_id() {
        let pool = [
            product("zeta", "1", 10),
            product("beta", "1", 50),
            product("alpha", "1", 50),
        ];
        let plan = resolve(&request(&["alpha", "beta", "zeta"], &pool)).unwrap();
        assert_eq!(order(&plan), ["zeta", "alpha", "beta"]);
        assert_eq!(plan.why(&id("alpha")), ["member of suite office"]);
    }

    #[test]
    fn prerequisites_come_first_and_are_pulled_in_range() {
        let pool = [
            needs(product("notes", "9.0", 10), "jre", ">=1.8, <2"),
            product("jre", "2.1", 90),
            product("jre", "1.8.2", 90),
            product("jre", "1.7", 90),
        ];
        let plan = resolve(&request(&["notes"], &pool)).unwrap();
        assert_eq!(order(&plan), ["jre", "notes"]);
        let jre = plan.step(&id("jre")).unwrap();
        assert_eq!(jre.version.as_str(), "1.8.2");
        assert_eq!(plan.why(&id("jre")), ["prerequisite of notes (>=1.8, <2)"]);
        assert_eq!(plan.step(&id("notes")).unwrap().after, ids(&["jre"]));
    }

    #[test]
    fn a_requested_product_takes_its_highest_version() {
        let pool = [product("jre", "1.8", 1), product("jre", "11", 1)];
        let plan = resolve(&request(&["jre"], &pool)).unwrap();
        assert_eq!(plan.steps[0].version.as_str(), "11");
    }

    #[test]
    fn missing_products_and_versions_out_of_range_are_all_reported() {
        let pool = [
            needs(
                needs(product("notes", "9.0", 10), "jre", ">=1.8"),
                "ghost",
                "",
            ),
            needs(product("designer", "9.0", 10), "notes", ">=10"),
            product("jre", "1.6", 90),
        ];
        let errors = resolve(&request(&["notes", "designer"], &pool)).unwrap_err();
        let texts: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 3, "{texts:#?}");
        assert!(texts.contains(
            &"product notes is at version 9.0, outside >=10, but it is needed in that range as \
              prerequisite of designer (>=10)"
                .to_owned()
        ));
        assert!(
            texts.contains(
                &"product jre is at version 1.6, outside >=1.8, but it is needed in that range as \
              prerequisite of notes (>=1.8)"
                    .to_owned()
            )
        );
        assert!(
            texts.contains(
                &"product ghost is not available, but it is needed as prerequisite of notes (any \
              version)"
                    .to_owned()
            )
        );
    }

    #[test]
    fn corequisites_join_the_plan_without_ordering() {
        let mut client = product("client", "1", 90);
        client
            .dependencies
            .corequisites
            .push(requirement("server", ""));
        let mut server = product("server", "1", 10);
        server
            .dependencies
            .corequisites
            .push(requirement("client", ""));
        let pool = [client, server];
        let plan = resolve(&request(&["client"], &pool)).unwrap();
        // A mutual corequisite is no cycle, and priority alone orders them.
        assert_eq!(order(&plan), ["server", "client"]);
        assert_eq!(
            plan.why(&id("server")),
            ["corequisite of client (any version)"]
        );
        assert!(plan.step(&id("client")).unwrap().after.is_empty());
    }

    #[test]
    fn a_capability_provider_in_the_plan_is_preferred() {
        let pool = [
            requires_capability(product("notes", "9.0", 1), "java-runtime", ">=1.8"),
            provides(product("openjdk", "17", 80), "java-runtime", None),
            provides(product("ibm-jre", "1.8", 10), "java-runtime", None),
        ];
        let plan = resolve(&request(&["notes", "openjdk"], &pool)).unwrap();
        assert_eq!(order(&plan), ["openjdk", "notes"]);
        assert_eq!(
            plan.why(&id("openjdk")),
            [
                "member of suite office",
                "provides capability java-runtime (>=1.8) required by notes"
            ]
        );
    }

    #[test]
    fn a_capability_provider_is_pulled_by_priority_then_id() {
        let pool = [
            requires_capability(product("notes", "9.0", 1), "java-runtime", ">=1.8"),
            provides(product("openjdk", "17", 80), "java-runtime", None),
            provides(product("corretto", "17", 80), "java-runtime", None),
            // Capability version, not product version, is what the range sees.
            provides(product("old-jre", "5.0", 1), "java-runtime", Some("1.6")),
        ];
        let plan = resolve(&request(&["notes"], &pool)).unwrap();
        assert_eq!(order(&plan), ["corretto", "notes"]);
        assert_eq!(
            plan.why(&id("corretto")),
            [format!(
                "provides capability java-runtime (>=1.8) required by notes; chosen over \
                 openjdk ({CHOICE_RULE})"
            )]
        );
    }

    #[test]
    fn a_conflicting_provider_is_passed_over() {
        let mut preferred = provides(product("a-jre", "17", 1), "java-runtime", None);
        preferred.conflicts.products.push(requirement("notes", ""));
        let pool = [
            requires_capability(product("notes", "9.0", 1), "java-runtime", ""),
            preferred,
            provides(product("b-jre", "17", 99), "java-runtime", None),
        ];
        let plan = resolve(&request(&["notes"], &pool)).unwrap();
        assert_eq!(order(&plan), ["b-jre", "notes"]);
    }

    #[test]
    fn a_product_providing_what_it_requires_satisfies_itself() {
        let bundled = provides(
            requires_capability(product("bundle", "1", 1), "java-runtime", ""),
            "java-runtime",
            None,
        );
        let pool = [
            bundled,
            provides(product("openjdk", "17", 1), "java-runtime", None),
        ];
        let plan = resolve(&request(&["bundle"], &pool)).unwrap();
        assert_eq!(order(&plan), ["bundle"]);
    }

    #[test]
    fn missing_capabilities_name_what_was_offered() {
        let mut windows_jre = provides(product("win-jre", "1.8", 1), "java-runtime", None);
        windows_jre.platform.os = vec!["windows".to_owned()];
        let pool = [
            requires_capability(product("notes", "9.0", 1), "java-runtime", ">=1.8"),
            provides(product("old-jre", "1.6", 1), "java-runtime", None),
            windows_jre,
        ];
        let mut asked = request(&["notes"], &pool);
        asked.platform = Some(("linux", "x86_64"));
        let errors = resolve(&asked).unwrap_err();
        assert_eq!(
            errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [
                "product notes requires capability java-runtime (>=1.8), which no available product \
              provides in that range: old-jre provides 1.6; win-jre provides 1.8 but does not \
              apply to this machine"
            ]
        );
    }

    #[test]
    fn suite_requirements_are_checked_and_satisfied() {
        let mut office = suite(vec![
            product("notes", "9.0", 1),
            provides(product("spell", "2", 5), "spell-checker", None),
        ]);
        office
            .products
            .push(provides(product("dict", "1", 1), "spell-checker", None));
        office
            .capabilities
            .requires
            .push(capability_requirement("spell-checker", ""));
        office
            .capabilities
            .requires
            .push(capability_requirement("mail-client", ""));
        let errors = resolve_suite(&office, None).unwrap_err();
        assert_eq!(
            errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [
                "the suite requires capability mail-client (any version), which no available \
              product provides in that range: no product provides it at any version"
            ]
        );
        office.capabilities.requires.pop();
        let plan = resolve_suite(&office, None).unwrap();
        // Both providers are members; the lower priority number wins.
        assert_eq!(
            plan.why(&id("dict")),
            [
                "member of suite office".to_owned(),
                format!(
                    "provides capability spell-checker (any version) required by the suite; \
                     chosen over spell ({CHOICE_RULE})"
                )
            ]
        );
    }

    #[test]
    fn product_and_capability_conflicts_name_both_sides() {
        let mut notes = product("notes", "9.0", 1);
        notes.conflicts.products.push(requirement("legacy", "<9"));
        notes.conflicts.products.push(requirement("other", "<9"));
        notes
            .conflicts
            .capabilities
            .push(capability_requirement("mail-client", ""));
        let pool = [
            provides(notes, "mail-client", None),
            product("legacy", "8.5", 1),
            product("other", "9.1", 1),
            provides(product("thunderbird", "115", 1), "mail-client", Some("3")),
        ];
        let errors = resolve(&request(
            &["notes", "legacy", "other", "thunderbird"],
            &pool,
        ))
        .unwrap_err();
        assert_eq!(
            errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [
                "product notes conflicts with product legacy (<9), and the plan has legacy 8.5",
                "product notes conflicts with capability mail-client (any version), which \
                 product thunderbird provides at 3",
            ]
        );
    }

    #[test]
    fn a_group_member_selects_the_whole_group() {
        let pool = [
            product("notes", "9.0", 1),
            product("sametime", "8", 1),
            product("quickr", "8", 1),
            product("unrelated", "1", 1),
        ];
        let groups = [ProductGroup {
            name: "collaboration".to_owned(),
            label: Default::default(),
            products: ids(&["notes", "sametime", "quickr"]),
        }];
        let mut asked = request(&["sametime"], &pool);
        asked.groups = &groups;
        let plan = resolve(&asked).unwrap();
        assert_eq!(order(&plan), ["notes", "quickr", "sametime"]);
        assert_eq!(
            plan.why(&id("quickr")),
            ["in group collaboration with sametime"]
        );
    }

    #[test]
    fn products_for_other_platforms_are_left_out_with_the_reason() {
        let mut windows_only = product("outlook-bridge", "1", 1);
        windows_only.platform.os = vec!["windows".to_owned()];
        let mut arm_only = product("arm-codec", "1", 1);
        arm_only.platform.arch = vec!["aarch64".to_owned()];
        let needs_bridge = needs(product("notes", "9.0", 1), "outlook-bridge", "");
        let pool = [
            windows_only,
            arm_only,
            needs_bridge,
            product("editor", "1", 1),
        ];

        let mut asked = request(&["outlook-bridge", "arm-codec", "editor"], &pool);
        asked.platform = Some(("Linux", "x86_64"));
        let plan = resolve(&asked).unwrap();
        assert_eq!(order(&plan), ["editor"]);
        assert_eq!(
            plan.why(&id("outlook-bridge")),
            ["not in the plan: it is for OS windows and the machine runs Linux"]
        );
        assert_eq!(
            plan.why(&id("arm-codec")),
            ["not in the plan: it is for architecture aarch64 and the machine is x86_64"]
        );

        asked.products.push((id("notes"), member()));
        let errors = resolve(&asked).unwrap_err();
        assert_eq!(
            errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [
                "product outlook-bridge does not apply to this machine (it is for OS windows and \
              the machine runs Linux), but it is needed as prerequisite of notes (any version)"
            ]
        );
    }

    #[test]
    fn cycles_are_reported_as_paths_one_per_component() {
        // a -> b -> c -> a, and c -> d -> c: one component {a, b, c, d};
        // e -> e alone; f -> g -> f another; h needs a (downstream, no cycle).
        let pool = [
            needs(product("a", "1", 1), "b", ""),
            needs(product("b", "1", 1), "c", ""),
            needs(needs(product("c", "1", 1), "a", ""), "d", ""),
            needs(product("d", "1", 1), "c", ""),
            needs(product("e", "1", 1), "e", ""),
            needs(product("f", "1", 1), "g", ""),
            needs(product("g", "1", 1), "f", ""),
            needs(product("h", "1", 1), "a", ""),
        ];
        let errors = resolve(&request(&["a", "e", "f", "h"], &pool)).unwrap_err();
        let texts: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            texts,
            [
                "install order has a cycle: a -> b -> c -> a (each needs the next installed \
                 first; all of a, b, c, d depend on each other)",
                "install order has a cycle: e -> e (each needs the next installed first; all \
                 of e depend on each other)",
                "install order has a cycle: f -> g -> f (each needs the next installed first; \
                 all of f, g depend on each other)",
            ]
        );
    }

    #[test]
    fn capability_edges_take_part_in_cycles() {
        let pool = [
            provides(needs(product("a", "1", 1), "b", ""), "thing", None),
            requires_capability(product("b", "1", 1), "thing", ""),
        ];
        let errors = resolve(&request(&["a"], &pool)).unwrap_err();
        assert!(matches!(
            &errors[..],
            [ResolveError::Cycle { path, .. }] if *path == ids(&["a", "b", "a"])
        ));
    }

    #[test]
    fn the_pool_order_does_not_change_the_plan() {
        let mut pool = vec![
            needs(product("c", "1", 5), "a", ""),
            product("a", "1", 9),
            product("b", "1", 1),
            requires_capability(product("d", "1", 0), "x", ""),
            provides(product("x1", "1", 3), "x", None),
            provides(product("x2", "1", 3), "x", None),
        ];
        let first = resolve(&request(&["c", "b", "d"], &pool)).unwrap();
        assert_eq!(order(&first), ["b", "x1", "d", "a", "c"]);
        pool.reverse();
        let second = resolve(&request(&["c", "b", "d"], &pool)).unwrap();
        assert_eq!(first, second);
    }

    #[test]
    fn machine_plans_take_group_and_machine_choices() {
        let mut arm_only = product("arm-codec", "1", 1);
        arm_only.platform.arch = vec!["aarch64".to_owned()];
        let office = suite(vec![
            product("notes", "9.0", 1),
            product("editor", "1", 2),
            arm_only,
        ]);
        let group = Group {
            name: GroupName::new("sales").unwrap(),
            suite: None,
            products: ids(&["notes"]),
            machines: Vec::new(),
        };
        let machine = Machine {
            name: MachineId::new("pc-17").unwrap(),
            ip: None,
            os: Some("linux".to_owned()),
            arch: Some("x86_64".to_owned()),
            facts: BTreeMap::new(),
            products: ids(&["editor", "arm-codec"]),
        };
        let plan = resolve_machine(&office, Some(&group), &machine).unwrap();
        assert_eq!(order(&plan), ["notes", "editor"]);
        assert_eq!(plan.why(&id("notes")), ["chosen for machine group sales"]);
        assert_eq!(plan.why(&id("editor")), ["chosen for machine pc-17"]);
        assert_eq!(plan.not_applicable.len(), 1);
    }

    #[test]
    fn plans_serialize_in_kebab_case_and_back() {
        let pool = [
            requires_capability(product("notes", "9.0", 1), "java-runtime", ">=1.8"),
            provides(product("openjdk", "17", 80), "java-runtime", None),
            provides(product("corretto", "17", 80), "java-runtime", None),
        ];
        let plan = resolve(&request(&["notes"], &pool)).unwrap();
        let text = serde_json::to_string(&plan).unwrap();
        assert!(text.contains(r#""kind":"provides-capability""#), "{text}");
        assert!(text.contains(r#""for-product":"notes""#), "{text}");
        assert!(text.contains(r#""chosen-over":["openjdk"]"#), "{text}");
        let back: Plan = serde_json::from_str(&text).unwrap();
        assert_eq!(back, plan);
    }

    #[test]
    fn install_order_breaks_ties_by_priority_then_number() {
        // 2 needs 0; 1 and 0 are ready first; 1 has the lower priority.
        let order = install_order(&[vec![], vec![], vec![0]], &[5, 1, 0]).unwrap();
        assert_eq!(order, [1, 0, 2]);
    }
}
