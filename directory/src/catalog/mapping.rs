//! Products and suites to directory entries and back.
//!
//! A product is one `roleoutProduct` entry `cn=ID,ou=products,BASE` with one
//! child `roleoutObjectVersion` entry per object version. A child's RDN is
//! content-addressed, `cn=SLOT-DIGEST16` where DIGEST16 is the first 16 hex
//! digits of the SHA-256 of its canonical content (slot, roles, value), so
//! writing the same version twice names the same entry and a changed
//! version is a new entry. The product entry lists its current children in
//! `roleoutCurrent` as `{n}CHILD-CN` values; `n` is the version's position
//! in the source, which keeps the author's order of versions within a slot.
//! Readers only use children listed there, so children added ahead of a
//! switch, or left behind by an interrupted write, are invisible.
//!
//! Each child has the structural class `roleoutObjectVersion` (`roleoutSlot`,
//! `roleoutRole` per role, `roleoutDigest`, `roleoutOf` = the owner's id) and
//! one auxiliary class for its slot kind, with typed attributes for the
//! content (see the `SlotContent` implementations below and
//! schema_catalog.rs). Nested structures that LDAP has no type for
//! (conditions, variables, files, suite members) are one canonical JSON
//! document per value.
//!
//! Suites follow the same pattern under `ou=suites` (`roleoutSuite`, with
//! their members as ordered JSON values).
//!
//! The product and suite entries also carry `roleoutSourceDigest`, the
//! SHA-256 of the whole source's canonical JSON: it changes exactly when any
//! object of the product changes, which is what builds record and compare.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use serde::de::DeserializeOwned;

use roleout_model::command::{
    CommandLineModel, ExitCodeTable, InstallerKind, LogRules, OutcomeRules, OutputRules, Phase,
    ResponseFile,
};
use roleout_model::condition::{IncrementalInstall, VersionCheckerModel};
use roleout_model::ids::{CapabilityName, ProductId, RoleName, Sha256, SuiteId};
use roleout_model::pattern::Pattern;
use roleout_model::product::{
    Capabilities, Capability, CapabilityRequirement, Conflicts, Dependencies, InstallFileSet,
    InstallSize, Platform, ProductDescription, ProductRequirement, ProductSlot, ProductSource,
};
use roleout_model::role::{RoleVersion, Versioned};
use roleout_model::suite::{
    ProductCapabilities, ProductCategory, ProductGroup, SuiteDescription, SuiteMember, SuitePolicy,
    SuiteSlot, SuiteSource, VariableLinkage, VariablePresentation,
};
use roleout_model::variable::VariableModel;
use roleout_model::version::{Version, VersionReq};

use crate::catalog::CatalogError;
use crate::catalog::entry::{CatalogEntry, canonical_json, sha256};

/// Attribute type names of the catalog (defined in schema_catalog.rs).
pub(crate) mod attribute {
    pub(crate) const OBJECT_CLASS: &str = "objectClass";
    pub(crate) const CN: &str = "cn";
    pub(crate) const VERSION: &str = "roleoutVersion";
    pub(crate) const PRIORITY: &str = "roleoutPriority";
    pub(crate) const OS: &str = "roleoutPlatformOs";
    pub(crate) const ARCH: &str = "roleoutPlatformArch";
    pub(crate) const CURRENT: &str = "roleoutCurrent";
    pub(crate) const SOURCE_DIGEST: &str = "roleoutSourceDigest";
    pub(crate) const RELEASE: &str = "roleoutRelease";
    pub(crate) const THEN: &str = "roleoutThen";
    pub(crate) const OF: &str = "roleoutOf";
    pub(crate) const SLOT: &str = "roleoutSlot";
    pub(crate) const ROLE: &str = "roleoutForRole";
    pub(crate) const DIGEST: &str = "roleoutDigest";
    pub(crate) const VENDOR: &str = "roleoutVendor";
    pub(crate) const NAME: &str = "roleoutName";
    pub(crate) const SUMMARY: &str = "roleoutSummary";
    pub(crate) const LICENCE: &str = "roleoutLicence";
    pub(crate) const MEDIA: &str = "roleoutMedia";
    pub(crate) const INSTALLED_SIZE: &str = "roleoutInstalledSize";
    pub(crate) const PROVIDES: &str = "roleoutProvides";
    pub(crate) const PREREQUISITE: &str = "roleoutPrerequisite";
    pub(crate) const COREQUISITE: &str = "roleoutCorequisite";
    pub(crate) const REPLACES: &str = "roleoutReplaces";
    pub(crate) const REQUIRES_SYSTEM: &str = "roleoutRequiresSystem";
    pub(crate) const OBSOLETES: &str = "roleoutObsoletes";
    pub(crate) const REQUIRES_CAPABILITY: &str = "roleoutRequiresCapability";
    pub(crate) const CONFLICT_PRODUCT: &str = "roleoutConflictProduct";
    pub(crate) const CONFLICT_CAPABILITY: &str = "roleoutConflictCapability";
    pub(crate) const VARIABLE: &str = "roleoutVariable";
    pub(crate) const FILE: &str = "roleoutFile";
    pub(crate) const CONDITION: &str = "roleoutCondition";
    pub(crate) const RUN_POLICY: &str = "roleoutRunPolicy";
    pub(crate) const INSTALLER_KIND: &str = "roleoutInstallerKind";
    pub(crate) const ARGV: &str = "roleoutArgv";
    pub(crate) const SHELL: &str = "roleoutShell";
    pub(crate) const REMOVE_WHEN_UNASSIGNED: &str = "roleoutRemoveWhenUnassigned";
    pub(crate) const WORKING_DIR: &str = "roleoutWorkingDir";
    pub(crate) const ENVIRONMENT: &str = "roleoutEnvironment";
    pub(crate) const RESPONSE_FILE_PATH: &str = "roleoutResponseFilePath";
    pub(crate) const RESPONSE_FILE_CONTENT: &str = "roleoutResponseFileContent";
    pub(crate) const TIMEOUT: &str = "roleoutTimeout";
    pub(crate) const CHECK_INTERVAL: &str = "roleoutCheckInterval";
    pub(crate) const RETRIES: &str = "roleoutRetries";
    pub(crate) const SUCCESS_CODE: &str = "roleoutSuccessCode";
    pub(crate) const REBOOT_CODE: &str = "roleoutRebootCode";
    pub(crate) const RETRY_CODE: &str = "roleoutRetryCode";
    pub(crate) const LOG_PATH: &str = "roleoutLogPath";
    pub(crate) const LOG_SUCCESS_PATTERN: &str = "roleoutLogSuccessPattern";
    pub(crate) const LOG_FAILURE_PATTERN: &str = "roleoutLogFailurePattern";
    pub(crate) const MEMBER: &str = "roleoutMember";
    pub(crate) const CATEGORY: &str = "roleoutCategory";
    pub(crate) const PRODUCT_GROUP: &str = "roleoutProductGroup";
    pub(crate) const PRESENTATION: &str = "roleoutPresentation";
    pub(crate) const LINKAGE: &str = "roleoutLinkage";
    pub(crate) const ON_FAILURE: &str = "roleoutOnFailure";
}

/// Object class names of the catalog (defined in schema_catalog.rs).
pub(crate) mod class {
    pub(crate) const PRODUCT: &str = "roleoutProduct";
    pub(crate) const SUITE: &str = "roleoutSuite";
    pub(crate) const OBJECT_VERSION: &str = "roleoutObjectVersion";
    pub(crate) const DESCRIPTION: &str = "roleoutDescriptionObject";
    pub(crate) const SIZE: &str = "roleoutSizeObject";
    pub(crate) const CAPABILITIES: &str = "roleoutCapabilitiesObject";
    pub(crate) const DEPENDENCIES: &str = "roleoutDependenciesObject";
    pub(crate) const CONFLICTS: &str = "roleoutConflictsObject";
    pub(crate) const VARIABLES: &str = "roleoutVariablesObject";
    pub(crate) const FILESET: &str = "roleoutFilesetObject";
    pub(crate) const VERSION_CHECK: &str = "roleoutVersionCheckObject";
    pub(crate) const INCREMENTAL: &str = "roleoutIncrementalObject";
    pub(crate) const COMMAND: &str = "roleoutCommandObject";
    pub(crate) const SUITE_DESCRIPTION: &str = "roleoutSuiteDescriptionObject";
    pub(crate) const SUITE_CAPABILITIES: &str = "roleoutSuiteCapabilitiesObject";
    pub(crate) const CATEGORIES: &str = "roleoutCategoriesObject";
    pub(crate) const GROUPS: &str = "roleoutGroupsObject";
    pub(crate) const PRESENTATION: &str = "roleoutPresentationObject";
    pub(crate) const LINKAGE: &str = "roleoutLinkageObject";
    pub(crate) const POLICY: &str = "roleoutPolicyObject";
}

use attribute as at;

/// Hex digits of the content digest kept in a child's RDN: 64 bits, far
/// beyond any collision among the versions of one product.
const RDN_DIGEST_LEN: usize = 16;

/// A product or suite as entries: the owner entry and its object versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntries {
    /// The `roleoutProduct` or `roleoutSuite` entry.
    pub owner: CatalogEntry,
    /// One `roleoutObjectVersion` entry per distinct object version, in
    /// source order.
    pub versions: Vec<CatalogEntry>,
}

impl CatalogEntries {
    /// Every entry, owner first (the order `ldapadd` needs).
    pub fn all(&self) -> impl Iterator<Item = &CatalogEntry> {
        std::iter::once(&self.owner).chain(self.versions.iter())
    }
}

/// The DN of product `id` under `products_dn` (the `ou=products` entry).
pub fn product_dn(products_dn: &str, id: &ProductId) -> String {
    format!("cn={},{products_dn}", ldap3::dn_escape(id.as_str()))
}

/// The DN of suite `id` under `suites_dn` (the `ou=suites` entry).
pub fn suite_dn(suites_dn: &str, id: &SuiteId) -> String {
    format!("cn={},{suites_dn}", ldap3::dn_escape(id.as_str()))
}

/// A product with command phases that hold no version removed: such a
/// phase means the same as an absent one, and the directory (which stores
/// versions, not phases) cannot tell them apart.
pub fn normalize_product(product: &ProductSource) -> ProductSource {
    let mut normalized = product.clone();
    normalized
        .commands
        .retain(|_, versions| !versions.is_empty());
    normalized
}

/// SHA-256 of a product's canonical JSON (after [`normalize_product`]).
pub fn product_digest(product: &ProductSource) -> Result<Sha256, CatalogError> {
    // Products read from the directory have no empty phases: no copy then.
    let text = if product.commands.values().any(Versioned::is_empty) {
        canonical_json(&normalize_product(product))?
    } else {
        canonical_json(product)?
    };
    Ok(sha256(text.as_bytes()))
}

/// SHA-256 of a suite's canonical JSON.
pub fn suite_digest(suite: &SuiteSource) -> Result<Sha256, CatalogError> {
    Ok(sha256(canonical_json(suite)?.as_bytes()))
}

/// The entries of `product` under `products_dn`.
pub fn product_entries(
    products_dn: &str,
    product: &ProductSource,
) -> Result<CatalogEntries, CatalogError> {
    let product = normalize_product(product);
    let dn = product_dn(products_dn, &product.id);
    let mut children = Children::new(product.id.as_str(), &dn);
    children.add_slot(ProductSlot::Description.as_str(), &product.description)?;
    children.add_slot(ProductSlot::Size.as_str(), &product.size)?;
    children.add_slot(ProductSlot::Capabilities.as_str(), &product.capabilities)?;
    children.add_slot(ProductSlot::Dependencies.as_str(), &product.dependencies)?;
    children.add_slot(ProductSlot::Conflicts.as_str(), &product.conflicts)?;
    children.add_slot(ProductSlot::Variables.as_str(), &product.variables)?;
    children.add_slot(ProductSlot::Fileset.as_str(), &product.fileset)?;
    children.add_slot(ProductSlot::VersionCheck.as_str(), &product.version_checker)?;
    children.add_slot(ProductSlot::Incremental.as_str(), &product.incremental)?;
    for (phase, versions) in &product.commands {
        children.add_slot(phase.as_str(), versions)?;
    }
    let mut owner = CatalogEntry::new(dn.clone());
    owner.push(at::OBJECT_CLASS, class::PRODUCT);
    owner.push(at::CN, product.id.as_str());
    owner.push(at::VERSION, product.version.as_str());
    owner.push(at::PRIORITY, product.priority.to_string());
    owner.push_ordered(at::OS, &product.platform.os);
    owner.push_ordered(at::ARCH, &product.platform.arch);
    owner.push_ordered(at::CURRENT, &children.current);
    owner.push(at::SOURCE_DIGEST, product_digest(&product)?.as_str());
    Ok(CatalogEntries {
        owner,
        versions: children.entries,
    })
}

/// The entries of `suite` under `suites_dn`.
pub fn suite_entries(suites_dn: &str, suite: &SuiteSource) -> Result<CatalogEntries, CatalogError> {
    let dn = suite_dn(suites_dn, &suite.id);
    let mut children = Children::new(suite.id.as_str(), &dn);
    children.add_slot(SuiteSlot::Description.as_str(), &suite.description)?;
    children.add_slot(SuiteSlot::Capabilities.as_str(), &suite.capabilities)?;
    children.add_slot(SuiteSlot::Categories.as_str(), &suite.categories)?;
    children.add_slot(SuiteSlot::Groups.as_str(), &suite.groups)?;
    children.add_slot(SuiteSlot::Variables.as_str(), &suite.variables)?;
    children.add_slot(SuiteSlot::Presentation.as_str(), &suite.presentation)?;
    children.add_slot(SuiteSlot::Linkage.as_str(), &suite.linkage)?;
    children.add_slot(SuiteSlot::Incremental.as_str(), &suite.incremental)?;
    children.add_slot(SuiteSlot::Policy.as_str(), &suite.policy)?;
    let mut owner = CatalogEntry::new(dn.clone());
    owner.push(at::OBJECT_CLASS, class::SUITE);
    owner.push(at::CN, suite.id.as_str());
    owner.push(at::VERSION, suite.version.as_str());
    let members = suite
        .members
        .iter()
        .map(canonical_json)
        .collect::<Result<Vec<_>, _>>()?;
    owner.push_ordered(at::MEMBER, members);
    owner.push_ordered(at::CURRENT, &children.current);
    owner.push(at::SOURCE_DIGEST, suite_digest(suite)?.as_str());
    Ok(CatalogEntries {
        owner,
        versions: children.entries,
    })
}

/// Reads a product from its entry and its children, keyed by the child's
/// `cn` in lowercase. Only children named in `roleoutCurrent` are used.
///
/// The product's `roleoutSourceDigest` covers every version it is read
/// from, so checking it alone detects any change made outside Roleout.
/// Only when it does not match are the versions' own digests checked, to
/// name the entry that was changed.
pub fn product_from_entries(
    owner: &CatalogEntry,
    children: &BTreeMap<String, &CatalogEntry>,
) -> Result<ProductSource, CatalogError> {
    let product = read_product(owner, children, VersionCheck::Skip)?;
    let computed = product_digest(&product)?;
    if let Err(error) = check_source_digest(owner, &computed) {
        read_product(owner, children, VersionCheck::Each)?;
        return Err(error);
    }
    Ok(product)
}

/// Whether reading a version checks its content against its digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VersionCheck {
    /// Only the owner's source digest is checked (by the caller).
    Skip,
    /// Each version's digest is checked, naming the first that differs.
    Each,
}

fn read_product(
    owner: &CatalogEntry,
    children: &BTreeMap<String, &CatalogEntry>,
    check: VersionCheck,
) -> Result<ProductSource, CatalogError> {
    let mut product = product_header(owner)?;
    for child in current_children(owner, children)? {
        let slot_name = child.required(at::SLOT)?;
        let slot = ProductSlot::from_name(slot_name)
            .ok_or_else(|| child.malformed(format!("unknown product slot {slot_name:?}")))?;
        match slot {
            ProductSlot::Description => read_version(child, &mut product.description, check)?,
            ProductSlot::Size => read_version(child, &mut product.size, check)?,
            ProductSlot::Capabilities => read_version(child, &mut product.capabilities, check)?,
            ProductSlot::Dependencies => read_version(child, &mut product.dependencies, check)?,
            ProductSlot::Conflicts => read_version(child, &mut product.conflicts, check)?,
            ProductSlot::Variables => read_version(child, &mut product.variables, check)?,
            ProductSlot::Fileset => read_version(child, &mut product.fileset, check)?,
            ProductSlot::VersionCheck => read_version(child, &mut product.version_checker, check)?,
            ProductSlot::Incremental => read_version(child, &mut product.incremental, check)?,
            ProductSlot::Command(phase) => {
                read_version(child, product.commands.entry(phase).or_default(), check)?
            }
        }
    }
    Ok(product)
}

/// A product as its owner entry describes it, without any object version.
fn product_header(owner: &CatalogEntry) -> Result<ProductSource, CatalogError> {
    let id = parse_name::<ProductId>(owner, at::CN, "product id")?;
    let version = parse_version(owner)?;
    let priority = owner
        .number::<i32>(at::PRIORITY)?
        .ok_or_else(|| owner.malformed(format!("{} is missing", at::PRIORITY)))?;
    let platform = Platform {
        os: owned(owner.ordered(at::OS)?),
        arch: owned(owner.ordered(at::ARCH)?),
    };
    Ok(ProductSource {
        id,
        version,
        priority,
        platform,
        description: Versioned::default(),
        size: Versioned::default(),
        capabilities: Versioned::default(),
        dependencies: Versioned::default(),
        conflicts: Versioned::default(),
        variables: Versioned::default(),
        fileset: Versioned::default(),
        version_checker: Versioned::default(),
        incremental: Versioned::default(),
        commands: BTreeMap::new(),
    })
}

/// Reads a suite from its entry and its children (see
/// [`product_from_entries`]).
pub fn suite_from_entries(
    owner: &CatalogEntry,
    children: &BTreeMap<String, &CatalogEntry>,
) -> Result<SuiteSource, CatalogError> {
    let suite = read_suite(owner, children, VersionCheck::Skip)?;
    let computed = suite_digest(&suite)?;
    if let Err(error) = check_source_digest(owner, &computed) {
        read_suite(owner, children, VersionCheck::Each)?;
        return Err(error);
    }
    Ok(suite)
}

fn read_suite(
    owner: &CatalogEntry,
    children: &BTreeMap<String, &CatalogEntry>,
    check: VersionCheck,
) -> Result<SuiteSource, CatalogError> {
    let id = parse_name::<SuiteId>(owner, at::CN, "suite id")?;
    let version = parse_version(owner)?;
    let members = owner
        .ordered(at::MEMBER)?
        .into_iter()
        .map(|text| owner.json::<SuiteMember>(at::MEMBER, text))
        .collect::<Result<Vec<_>, _>>()?;
    let mut suite = SuiteSource {
        id,
        version,
        description: Versioned::default(),
        capabilities: Versioned::default(),
        categories: Versioned::default(),
        groups: Versioned::default(),
        variables: Versioned::default(),
        presentation: Versioned::default(),
        linkage: Versioned::default(),
        incremental: Versioned::default(),
        policy: Versioned::default(),
        members,
    };
    for child in current_children(owner, children)? {
        let slot_name = child.required(at::SLOT)?;
        let slot = SuiteSlot::from_name(slot_name)
            .ok_or_else(|| child.malformed(format!("unknown suite slot {slot_name:?}")))?;
        match slot {
            SuiteSlot::Description => read_version(child, &mut suite.description, check)?,
            SuiteSlot::Capabilities => read_version(child, &mut suite.capabilities, check)?,
            SuiteSlot::Categories => read_version(child, &mut suite.categories, check)?,
            SuiteSlot::Groups => read_version(child, &mut suite.groups, check)?,
            SuiteSlot::Variables => read_version(child, &mut suite.variables, check)?,
            SuiteSlot::Presentation => read_version(child, &mut suite.presentation, check)?,
            SuiteSlot::Linkage => read_version(child, &mut suite.linkage, check)?,
            SuiteSlot::Incremental => read_version(child, &mut suite.incremental, check)?,
            SuiteSlot::Policy => read_version(child, &mut suite.policy, check)?,
        }
    }
    Ok(suite)
}

/// The child `cn`s named by an owner's `roleoutCurrent`, in order.
pub(crate) fn current_names(owner: &CatalogEntry) -> Result<Vec<String>, CatalogError> {
    Ok(owner
        .ordered(at::CURRENT)?
        .into_iter()
        .map(str::to_ascii_lowercase)
        .collect())
}

fn current_children<'a>(
    owner: &CatalogEntry,
    children: &BTreeMap<String, &'a CatalogEntry>,
) -> Result<Vec<&'a CatalogEntry>, CatalogError> {
    current_names(owner)?
        .into_iter()
        .map(|name| {
            children.get(&name).copied().ok_or_else(|| {
                owner.malformed(format!(
                    "{} names {name:?}, which is not an entry under it",
                    at::CURRENT
                ))
            })
        })
        .collect()
}

fn check_source_digest(owner: &CatalogEntry, computed: &Sha256) -> Result<(), CatalogError> {
    let stored = owner.required(at::SOURCE_DIGEST)?;
    if !stored.eq_ignore_ascii_case(computed.as_str()) {
        return Err(owner.malformed(format!(
            "{} is {stored} but its current object versions digest to {computed} \
             (changed outside Roleout?)",
            at::SOURCE_DIGEST
        )));
    }
    Ok(())
}

fn owned(values: Vec<&str>) -> Vec<String> {
    values.into_iter().map(str::to_owned).collect()
}

fn parse_version(entry: &CatalogEntry) -> Result<Version, CatalogError> {
    let text = entry.required(at::VERSION)?;
    Version::new(text).map_err(|error| entry.malformed(format!("{}: {error}", at::VERSION)))
}

fn parse_name<T: std::str::FromStr<Err = roleout_model::ids::InvalidName>>(
    entry: &CatalogEntry,
    description: &str,
    _what: &str,
) -> Result<T, CatalogError> {
    let text = entry.required(description)?;
    text.parse::<T>()
        .map_err(|error| entry.malformed(format!("{description}: {error}")))
}

/// Builds the object-version children of one owner.
struct Children<'a> {
    owner_id: &'a str,
    owner_dn: &'a str,
    /// Child `cn`s in source order (a `cn` repeats when a source repeats
    /// an identical version).
    current: Vec<String>,
    entries: Vec<CatalogEntry>,
    seen: BTreeSet<String>,
}

impl<'a> Children<'a> {
    fn new(owner_id: &'a str, owner_dn: &'a str) -> Self {
        Self {
            owner_id,
            owner_dn,
            current: Vec::new(),
            entries: Vec::new(),
            seen: BTreeSet::new(),
        }
    }

    fn add_slot<T: SlotContent>(
        &mut self,
        slot: &str,
        versions: &Versioned<T>,
    ) -> Result<(), CatalogError> {
        for version in &versions.versions {
            let entry = version_entry(self.owner_id, self.owner_dn, slot, version)?;
            let name = entry.values(at::CN).first().map(|cn| (*cn).to_owned());
            // version_entry always sets exactly one cn.
            let name = name.unwrap_or_default();
            self.current.push(name.clone());
            if self.seen.insert(name) {
                self.entries.push(entry);
            }
        }
        Ok(())
    }
}

/// The digest of one object version: SHA-256 of the canonical JSON of
/// `[slot, roles, value]`.
pub(crate) fn version_digest<T: Serialize>(
    slot: &str,
    version: &RoleVersion<T>,
) -> Result<Sha256, CatalogError> {
    let content = canonical_json(&(slot, &version.roles, &version.value))?;
    Ok(sha256(content.as_bytes()))
}

fn version_entry<T: SlotContent>(
    owner_id: &str,
    owner_dn: &str,
    slot: &str,
    version: &RoleVersion<T>,
) -> Result<CatalogEntry, CatalogError> {
    let digest = version_digest(slot, version)?;
    let name = format!("{slot}-{}", &digest.as_str()[..RDN_DIGEST_LEN]);
    let mut entry = CatalogEntry::new(format!("cn={},{owner_dn}", ldap3::dn_escape(&name)));
    entry.push(at::OBJECT_CLASS, class::OBJECT_VERSION);
    entry.push(at::OBJECT_CLASS, T::CLASS);
    entry.push(at::CN, name);
    entry.push(at::OF, owner_id);
    entry.push(at::SLOT, slot);
    for role in &version.roles {
        entry.push(at::ROLE, role.as_str());
    }
    entry.push(at::DIGEST, digest.as_str());
    version.value.write(&mut entry)?;
    Ok(entry)
}

fn read_version<T: SlotContent>(
    child: &CatalogEntry,
    slot: &mut Versioned<T>,
    check: VersionCheck,
) -> Result<(), CatalogError> {
    let version = role_version::<T>(child)?;
    if check == VersionCheck::Each {
        let slot_name = child.required(at::SLOT)?;
        let computed = version_digest(slot_name, &version)?;
        let stored = child.required(at::DIGEST)?;
        if !stored.eq_ignore_ascii_case(computed.as_str()) {
            return Err(child.malformed(format!(
                "{} is {stored} but the content digests to {computed} (changed outside Roleout?)",
                at::DIGEST
            )));
        }
    }
    slot.versions.push(version);
    Ok(())
}

/// The roles and content of one object version entry.
fn role_version<T: SlotContent>(child: &CatalogEntry) -> Result<RoleVersion<T>, CatalogError> {
    if !child.has_class(T::CLASS) {
        return Err(child.malformed(format!("it lacks the object class {}", T::CLASS)));
    }
    let roles = child
        .values(at::ROLE)
        .into_iter()
        .map(|text| {
            RoleName::new(text).map_err(|error| child.malformed(format!("{}: {error}", at::ROLE)))
        })
        .collect::<Result<BTreeSet<_>, _>>()?;
    Ok(RoleVersion {
        roles,
        value: T::read(child)?,
    })
}

/// One object version of a product, read from its entry alone, before the
/// product it belongs to is put together ([`product_from_parts`]). A
/// reader of thousands of products takes this from each entry as the
/// entry arrives and frees the entry at once, rather than holding every
/// entry until the products are put together.
#[derive(Debug)]
pub(crate) struct ProductPart {
    /// The entry's DN, for errors.
    dn: String,
    /// What the entry holds, or why it cannot be read: an entry that no
    /// product names as current is never used, so its error is only
    /// reported if a product does name it. Boxed: a part is moved into a
    /// map as it arrives and out when its product is put together, and a
    /// version is hundreds of bytes.
    read: Result<Box<PartVersion>, Box<CatalogError>>,
}

#[derive(Debug, Clone)]
struct PartVersion {
    /// `roleoutSlot`, as stored.
    slot_name: String,
    /// `roleoutDigest`, as stored.
    stored_digest: String,
    version: SlotVersion,
}

/// An object version of one of a product's slots.
#[derive(Debug, Clone)]
enum SlotVersion {
    Description(RoleVersion<ProductDescription>),
    Size(RoleVersion<InstallSize>),
    Capabilities(RoleVersion<Capabilities>),
    Dependencies(RoleVersion<Dependencies>),
    Conflicts(RoleVersion<Conflicts>),
    Variables(RoleVersion<Vec<VariableModel>>),
    Fileset(RoleVersion<InstallFileSet>),
    VersionCheck(RoleVersion<VersionCheckerModel>),
    Incremental(RoleVersion<IncrementalInstall>),
    Command(Phase, Box<RoleVersion<CommandLineModel>>),
}

impl ProductPart {
    /// A copy, for a part that several releases of a product use (an
    /// error is kept as its words).
    pub(crate) fn copy(&self) -> Self {
        Self {
            dn: self.dn.clone(),
            read: match &self.read {
                Ok(version) => Ok(version.clone()),
                Err(error) => Err(Box::new(CatalogError::Malformed {
                    dn: self.dn.clone(),
                    reason: error.to_string(),
                })),
            },
        }
    }

    /// Reads an object version entry of a product, keeping of the entry
    /// only its DN and the strings checking it needs (moved, not copied).
    pub(crate) fn read(mut child: CatalogEntry) -> Self {
        let read = PartVersion::read(&child).map(Box::new).map_err(Box::new);
        let read = read.map(|mut version| {
            // Read as single values just above, so they are there.
            if let Some(slot_name) = child.take_single(at::SLOT) {
                version.slot_name = slot_name;
            }
            if let Some(digest) = child.take_single(at::DIGEST) {
                version.stored_digest = digest;
            }
            version
        });
        Self {
            dn: std::mem::take(&mut child.dn),
            read,
        }
    }
}

/// Appends `version` to `slot`, returning its position there.
fn push_version<T>(slot: &mut Versioned<T>, version: RoleVersion<T>) -> usize {
    slot.versions.push(version);
    slot.versions.len() - 1
}

impl PartVersion {
    fn read(child: &CatalogEntry) -> Result<Self, CatalogError> {
        let slot_name = child.required(at::SLOT)?;
        let slot = ProductSlot::from_name(slot_name)
            .ok_or_else(|| child.malformed(format!("unknown product slot {slot_name:?}")))?;
        let version = match slot {
            ProductSlot::Description => SlotVersion::Description(role_version(child)?),
            ProductSlot::Size => SlotVersion::Size(role_version(child)?),
            ProductSlot::Capabilities => SlotVersion::Capabilities(role_version(child)?),
            ProductSlot::Dependencies => SlotVersion::Dependencies(role_version(child)?),
            ProductSlot::Conflicts => SlotVersion::Conflicts(role_version(child)?),
            ProductSlot::Variables => SlotVersion::Variables(role_version(child)?),
            ProductSlot::Fileset => SlotVersion::Fileset(role_version(child)?),
            ProductSlot::VersionCheck => SlotVersion::VersionCheck(role_version(child)?),
            ProductSlot::Incremental => SlotVersion::Incremental(role_version(child)?),
            ProductSlot::Command(phase) => {
                SlotVersion::Command(phase, Box::new(role_version(child)?))
            }
        };
        // The strings are moved in by ProductPart::read; they are only
        // checked to be there here.
        child.required(at::DIGEST)?;
        Ok(Self {
            slot_name: String::new(),
            stored_digest: String::new(),
            version,
        })
    }

    /// Moves the version into its slot of `product`; what is left to
    /// check it later: its slot name, stored digest, slot and position.
    fn place(self, product: &mut ProductSource) -> Placed {
        let (slot, index) = match self.version {
            SlotVersion::Description(version) => (
                ProductSlot::Description,
                push_version(&mut product.description, version),
            ),
            SlotVersion::Size(version) => {
                (ProductSlot::Size, push_version(&mut product.size, version))
            }
            SlotVersion::Capabilities(version) => (
                ProductSlot::Capabilities,
                push_version(&mut product.capabilities, version),
            ),
            SlotVersion::Dependencies(version) => (
                ProductSlot::Dependencies,
                push_version(&mut product.dependencies, version),
            ),
            SlotVersion::Conflicts(version) => (
                ProductSlot::Conflicts,
                push_version(&mut product.conflicts, version),
            ),
            SlotVersion::Variables(version) => (
                ProductSlot::Variables,
                push_version(&mut product.variables, version),
            ),
            SlotVersion::Fileset(version) => (
                ProductSlot::Fileset,
                push_version(&mut product.fileset, version),
            ),
            SlotVersion::VersionCheck(version) => (
                ProductSlot::VersionCheck,
                push_version(&mut product.version_checker, version),
            ),
            SlotVersion::Incremental(version) => (
                ProductSlot::Incremental,
                push_version(&mut product.incremental, version),
            ),
            SlotVersion::Command(phase, version) => (
                ProductSlot::Command(phase),
                push_version(product.commands.entry(phase).or_default(), *version),
            ),
        };
        Placed {
            dn: String::new(),
            slot_name: self.slot_name,
            stored_digest: self.stored_digest,
            slot,
            index,
        }
    }
}

/// Where a part went in its product, to check it against its digest.
struct Placed {
    dn: String,
    slot_name: String,
    stored_digest: String,
    slot: ProductSlot,
    index: usize,
}

impl Placed {
    /// The digest of the version placed, computed from its content.
    fn computed(&self, product: &ProductSource) -> Option<Result<Sha256, CatalogError>> {
        let slot = self.slot_name.as_str();
        let index = self.index;
        match self.slot {
            ProductSlot::Description => product
                .description
                .versions
                .get(index)
                .map(|version| version_digest(slot, version)),
            ProductSlot::Size => product
                .size
                .versions
                .get(index)
                .map(|version| version_digest(slot, version)),
            ProductSlot::Capabilities => product
                .capabilities
                .versions
                .get(index)
                .map(|version| version_digest(slot, version)),
            ProductSlot::Dependencies => product
                .dependencies
                .versions
                .get(index)
                .map(|version| version_digest(slot, version)),
            ProductSlot::Conflicts => product
                .conflicts
                .versions
                .get(index)
                .map(|version| version_digest(slot, version)),
            ProductSlot::Variables => product
                .variables
                .versions
                .get(index)
                .map(|version| version_digest(slot, version)),
            ProductSlot::Fileset => product
                .fileset
                .versions
                .get(index)
                .map(|version| version_digest(slot, version)),
            ProductSlot::VersionCheck => product
                .version_checker
                .versions
                .get(index)
                .map(|version| version_digest(slot, version)),
            ProductSlot::Incremental => product
                .incremental
                .versions
                .get(index)
                .map(|version| version_digest(slot, version)),
            ProductSlot::Command(phase) => product
                .commands
                .get(&phase)
                .and_then(|versions| versions.versions.get(index))
                .map(|version| version_digest(slot, version)),
        }
    }
}

/// Puts a product together from its owner entry and the parts read from
/// its children (by lowercase `cn`), checking it as
/// [`product_from_entries`] does: the same product, or the same error,
/// from the same entries. (A build does the same in three steps, digesting
/// its products together: [`place_parts`], [`product_digests`],
/// [`PlacedProduct::check`].)
#[cfg(test)]
pub(crate) fn product_from_parts(
    owner: &CatalogEntry,
    parts: HashMap<String, ProductPart>,
) -> Result<ProductSource, CatalogError> {
    let placed = place_parts(owner, parts)?;
    let computed = product_digest(placed.product())?;
    placed.check(owner, &computed)
}

/// A product put together from its parts ([`place_parts`]), not yet
/// checked against the source digest its owner entry holds.
pub(crate) struct PlacedProduct {
    product: ProductSource,
    /// What checking each version against its own digest needs, which
    /// only an altered product does (to name the entry that was changed).
    placed: Vec<Placed>,
}

impl PlacedProduct {
    /// The product, to digest.
    pub(crate) fn product(&self) -> &ProductSource {
        &self.product
    }

    /// The product, if `computed` (its [`product_digest`]) is the source
    /// digest of `owner`; else an error naming the entry that was changed.
    pub(crate) fn check(
        self,
        owner: &CatalogEntry,
        computed: &Sha256,
    ) -> Result<ProductSource, CatalogError> {
        let PlacedProduct { product, placed } = self;
        if let Err(error) = check_source_digest(owner, computed) {
            for part in &placed {
                let Some(computed) = part.computed(&product) else {
                    continue;
                };
                let computed = computed?;
                if !part.stored_digest.eq_ignore_ascii_case(computed.as_str()) {
                    return Err(CatalogError::Malformed {
                        dn: part.dn.clone(),
                        reason: format!(
                            "{} is {} but the content digests to {computed} (changed outside Roleout?)",
                            at::DIGEST,
                            part.stored_digest
                        ),
                    });
                }
            }
            return Err(error);
        }
        Ok(product)
    }
}

/// Puts a product together from its owner entry and its parts, in the
/// order the owner names them, without checking its digest.
pub(crate) fn place_parts(
    owner: &CatalogEntry,
    mut parts: HashMap<String, ProductPart>,
) -> Result<PlacedProduct, CatalogError> {
    let mut product = product_header(owner)?;
    let names = current_names(owner)?;
    let mut placed: Vec<Placed> = Vec::with_capacity(names.len());
    for (position, name) in names.iter().enumerate() {
        let missing = || {
            owner.malformed(format!(
                "{} names {name:?}, which is not an entry under it",
                at::CURRENT
            ))
        };
        // A name repeats when a source repeats an identical version: the
        // last use takes the part, earlier ones copy it.
        let repeated = names[position + 1..].contains(name);
        let (dn, version) = match parts.get(name) {
            Some(ProductPart {
                dn,
                read: Ok(version),
            }) if repeated => (dn.clone(), PartVersion::clone(version)),
            Some(_) => {
                let part = parts.remove(name).ok_or_else(missing)?;
                (part.dn, *part.read.map_err(|error| *error)?)
            }
            None => return Err(missing()),
        };
        let mut where_placed = version.place(&mut product);
        where_placed.dn = dn;
        placed.push(where_placed);
    }
    Ok(PlacedProduct { product, placed })
}

/// Products read from this many on are digested on several threads: a
/// digest is the product's canonical JSON, and a build reads every
/// product of its suite.
const PARALLEL_DIGESTS_FROM: usize = 256;

/// The [`product_digest`] of each product, in order.
pub(crate) fn product_digests(products: &[&ProductSource]) -> Vec<Result<Sha256, CatalogError>> {
    let digest_all = |products: &[&ProductSource]| -> Vec<Result<Sha256, CatalogError>> {
        products
            .iter()
            .map(|product| product_digest(product))
            .collect()
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(4);
    if products.len() < PARALLEL_DIGESTS_FROM || threads < 2 {
        return digest_all(products);
    }
    let chunk = products.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let mut chunks = products.chunks(chunk);
        let first = chunks.next().unwrap_or_default();
        let others: Vec<_> = chunks
            .map(|chunk| scope.spawn(move || digest_all(chunk)))
            .collect();
        let mut digests = digest_all(first);
        for other in others {
            digests.extend(
                other
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            );
        }
        digests
    })
}

/// The content of one slot kind: its auxiliary class and attributes.
pub(crate) trait SlotContent: Serialize + Sized {
    /// The auxiliary object class holding this kind's attributes.
    const CLASS: &'static str;
    /// Adds the content's attributes to `entry`.
    fn write(&self, entry: &mut CatalogEntry) -> Result<(), CatalogError>;
    /// Reads the content back from `entry`.
    fn read(entry: &CatalogEntry) -> Result<Self, CatalogError>;
}

/// An enum's serde name (`on-change`), the text stored for it.
fn enum_text<T: Serialize>(value: &T) -> Result<String, CatalogError> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => Ok(text),
        _ => Err(CatalogError::Unrepresentable {
            what: "an enumerated value".to_owned(),
            reason: "it does not serialize to a name".to_owned(),
        }),
    }
}

fn enum_from_text<T: DeserializeOwned>(
    entry: &CatalogEntry,
    description: &str,
    text: &str,
) -> Result<T, CatalogError> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .map_err(|_| entry.malformed(format!("{description} value {text:?} is not known")))
}

fn push_json_list<T: Serialize>(
    entry: &mut CatalogEntry,
    description: &str,
    values: &[T],
) -> Result<(), CatalogError> {
    let texts = values
        .iter()
        .map(canonical_json)
        .collect::<Result<Vec<_>, _>>()?;
    entry.push_ordered(description, texts);
    Ok(())
}

fn read_json_list<T: DeserializeOwned>(
    entry: &CatalogEntry,
    description: &str,
) -> Result<Vec<T>, CatalogError> {
    entry
        .ordered(description)?
        .into_iter()
        .map(|text| entry.json(description, text))
        .collect()
}

/// `name` or `name VERSION`: a name never holds a space, a version may.
fn split_first_space(text: &str) -> (&str, Option<&str>) {
    match text.split_once(' ') {
        Some((name, rest)) => (name, Some(rest)),
        None => (text, None),
    }
}

fn push_capabilities(entry: &mut CatalogEntry, description: &str, capabilities: &[Capability]) {
    entry.push_ordered(
        description,
        capabilities
            .iter()
            .map(|capability| match &capability.version {
                Some(version) => format!("{} {version}", capability.name),
                None => capability.name.to_string(),
            }),
    );
}

fn read_capabilities(
    entry: &CatalogEntry,
    description: &str,
) -> Result<Vec<Capability>, CatalogError> {
    entry
        .ordered(description)?
        .into_iter()
        .map(|text| {
            let (name, version) = split_first_space(text);
            let bad = |error: String| entry.malformed(format!("{description} {text:?}: {error}"));
            Ok(Capability {
                name: CapabilityName::new(name).map_err(|error| bad(error.to_string()))?,
                version: version
                    .map(Version::new)
                    .transpose()
                    .map_err(|error| bad(error.to_string()))?,
            })
        })
        .collect()
}

/// `id` or `id RANGE` (the range as VersionReq displays it).
fn requirement_text(name: &str, versions: &VersionReq) -> String {
    if versions.is_any() {
        name.to_owned()
    } else {
        format!("{name} {versions}")
    }
}

fn read_requirements<N, R>(
    entry: &CatalogEntry,
    description: &str,
    make: impl Fn(N, VersionReq) -> R,
) -> Result<Vec<R>, CatalogError>
where
    N: std::str::FromStr<Err = roleout_model::ids::InvalidName>,
{
    entry
        .ordered(description)?
        .into_iter()
        .map(|text| {
            let (name, range) = split_first_space(text);
            let bad = |error: String| entry.malformed(format!("{description} {text:?}: {error}"));
            let name = name.parse::<N>().map_err(|error| bad(error.to_string()))?;
            let range =
                VersionReq::parse(range.unwrap_or("")).map_err(|error| bad(error.to_string()))?;
            Ok(make(name, range))
        })
        .collect()
}

fn push_products(entry: &mut CatalogEntry, description: &str, values: &[ProductRequirement]) {
    entry.push_ordered(
        description,
        values
            .iter()
            .map(|value| requirement_text(value.product.as_str(), &value.versions)),
    );
}

fn read_products(
    entry: &CatalogEntry,
    description: &str,
) -> Result<Vec<ProductRequirement>, CatalogError> {
    read_requirements(entry, description, |product, versions| ProductRequirement {
        product,
        versions,
    })
}

fn push_capability_requirements(
    entry: &mut CatalogEntry,
    description: &str,
    values: &[CapabilityRequirement],
) {
    entry.push_ordered(
        description,
        values
            .iter()
            .map(|value| requirement_text(value.capability.as_str(), &value.versions)),
    );
}

fn read_capability_requirements(
    entry: &CatalogEntry,
    description: &str,
) -> Result<Vec<CapabilityRequirement>, CatalogError> {
    read_requirements(entry, description, |capability, versions| {
        CapabilityRequirement {
            capability,
            versions,
        }
    })
}

fn read_patterns(entry: &CatalogEntry, description: &str) -> Result<Vec<Pattern>, CatalogError> {
    entry
        .ordered(description)?
        .into_iter()
        .map(|text| {
            Pattern::new(text).map_err(|error| entry.malformed(format!("{description}: {error}")))
        })
        .collect()
}

fn read_codes(entry: &CatalogEntry, description: &str) -> Result<Vec<i32>, CatalogError> {
    entry
        .ordered(description)?
        .into_iter()
        .map(|text| {
            text.parse::<i32>().map_err(|_| {
                entry.malformed(format!("{description} value {text:?} is not an exit code"))
            })
        })
        .collect()
}

impl SlotContent for ProductDescription {
    const CLASS: &'static str = class::DESCRIPTION;

    fn write(&self, entry: &mut CatalogEntry) -> Result<(), CatalogError> {
        if !self.vendor.is_empty() {
            entry.push(at::VENDOR, self.vendor.as_str());
        }
        entry.push_localized(at::NAME, &self.name)?;
        entry.push_localized(at::SUMMARY, &self.summary)?;
        entry.push_option(at::LICENCE, self.licence.as_deref());
        entry.push_option(at::MEDIA, self.media.as_deref());
        Ok(())
    }

    fn read(entry: &CatalogEntry) -> Result<Self, CatalogError> {
        Ok(Self {
            vendor: entry.single(at::VENDOR)?.unwrap_or_default().to_owned(),
            name: entry.localized(at::NAME)?,
            summary: entry.localized(at::SUMMARY)?,
            licence: entry.single(at::LICENCE)?.map(str::to_owned),
            media: entry.single(at::MEDIA)?.map(str::to_owned),
        })
    }
}

impl SlotContent for InstallSize {
    const CLASS: &'static str = class::SIZE;

    fn write(&self, entry: &mut CatalogEntry) -> Result<(), CatalogError> {
        entry.push(at::INSTALLED_SIZE, self.installed.to_string());
        Ok(())
    }

    fn read(entry: &CatalogEntry) -> Result<Self, CatalogError> {
        let installed = entry
            .number(at::INSTALLED_SIZE)?
            .ok_or_else(|| entry.malformed(format!("{} is missing", at::INSTALLED_SIZE)))?;
        Ok(Self { installed })
    }
}

impl SlotContent for Capabilities {
    const CLASS: &'static str = class::CAPABILITIES;

    fn write(&self, entry: &mut CatalogEntry) -> Result<(), CatalogError> {
        push_capabilities(entry, at::PROVIDES, &self.provides);
        Ok(())
    }

    fn read(entry: &CatalogEntry) -> Result<Self, CatalogError> {
        Ok(Self {
            provides: read_capabilities(entry, at::PROVIDES)?,
        })
    }
}

impl SlotContent for Dependencies {
    const CLASS: &'static str = class::DEPENDENCIES;

    fn write(&self, entry: &mut CatalogEntry) -> Result<(), CatalogError> {
        push_products(entry, at::PREREQUISITE, &self.prerequisites);
        push_products(entry, at::COREQUISITE, &self.corequisites);
        push_capability_requirements(entry, at::REQUIRES_CAPABILITY, &self.capabilities);
        push_products(entry, at::REPLACES, &self.replaces);
        push_products(entry, at::OBSOLETES, &self.obsoletes);
        push_json_list(entry, at::REQUIRES_SYSTEM, &self.system)?;
        Ok(())
    }

    fn read(entry: &CatalogEntry) -> Result<Self, CatalogError> {
        Ok(Self {
            prerequisites: read_products(entry, at::PREREQUISITE)?,
            corequisites: read_products(entry, at::COREQUISITE)?,
            capabilities: read_capability_requirements(entry, at::REQUIRES_CAPABILITY)?,
            replaces: read_products(entry, at::REPLACES)?,
            obsoletes: read_products(entry, at::OBSOLETES)?,
            system: read_json_list(entry, at::REQUIRES_SYSTEM)?,
        })
    }
}

impl SlotContent for Conflicts {
    const CLASS: &'static str = class::CONFLICTS;

    fn write(&self, entry: &mut CatalogEntry) -> Result<(), CatalogError> {
        push_products(entry, at::CONFLICT_PRODUCT, &self.products);
        push_capability_requirements(entry, at::CONFLICT_CAPABILITY, &self.capabilities);
        Ok(())
    }

    fn read(entry: &CatalogEntry) -> Result<Self, CatalogError> {
        Ok(Self {
            products: read_products(entry, at::CONFLICT_PRODUCT)?,
            capabilities: read_capability_requirements(entry, at::CONFLICT_CAPABILITY)?,
        })
    }
}

impl SlotContent for Vec<VariableModel> {
    const CLASS: &'static str = class::VARIABLES;

    fn write(&self, entry: &mut CatalogEntry) -> Result<(), CatalogError> {
        push_json_list(entry, at::VARIABLE, self)
    }

    fn read(entry: &CatalogEntry) -> Result<Self, CatalogError> {
        read_json_list(entry, at::VARIABLE)
    }
}

impl SlotContent for InstallFileSet {
    const CLASS: &'static str = class::FILESET;

    fn write(&self, entry: &mut CatalogEntry) -> Result<(), CatalogError> {
        push_json_list(entry, at::FILE, &self.files)
    }

    fn read(entry: &CatalogEntry) -> Result<Self, CatalogError> {
        Ok(Self {
            files: read_json_list(entry, at::FILE)?,
        })
    }
}

impl SlotContent for VersionCheckerModel {
    const CLASS: &'static str = class::VERSION_CHECK;

    fn write(&self, entry: &mut CatalogEntry) -> Result<(), CatalogError> {
        entry.push(at::CONDITION, canonical_json(&self.installed)?);
        Ok(())
    }

    fn read(entry: &CatalogEntry) -> Result<Self, CatalogError> {
        let text = entry.required(at::CONDITION)?;
        Ok(Self {
            installed: entry.json(at::CONDITION, text)?,
        })
    }
}

impl SlotContent for IncrementalInstall {
    const CLASS: &'static str = class::INCREMENTAL;

    fn write(&self, entry: &mut CatalogEntry) -> Result<(), CatalogError> {
        if let Some(condition) = &self.when {
            entry.push(at::CONDITION, canonical_json(condition)?);
        }
        entry.push(at::RUN_POLICY, enum_text(&self.run)?);
        Ok(())
    }

    fn read(entry: &CatalogEntry) -> Result<Self, CatalogError> {
        let when = entry
            .single(at::CONDITION)?
            .map(|text| entry.json(at::CONDITION, text))
            .transpose()?;
        let run = enum_from_text(entry, at::RUN_POLICY, entry.required(at::RUN_POLICY)?)?;
        Ok(Self { when, run })
    }
}

impl SlotContent for CommandLineModel {
    const CLASS: &'static str = class::COMMAND;

    fn write(&self, entry: &mut CatalogEntry) -> Result<(), CatalogError> {
        entry.push(at::INSTALLER_KIND, self.kind.as_str());
        entry.push_ordered(at::ARGV, &self.argv);
        entry.push(at::SHELL, if self.shell { "TRUE" } else { "FALSE" });
        entry.push_option(at::WORKING_DIR, self.working_dir.as_deref());
        for (name, value) in &self.env {
            // `NAME=value`, split at the first `=`: a name cannot hold one.
            if name.contains('=') {
                return Err(CatalogError::Unrepresentable {
                    what: format!("environment variable {name:?}"),
                    reason: "an environment variable name cannot contain '='".to_owned(),
                });
            }
            entry.push(at::ENVIRONMENT, format!("{name}={value}"));
        }
        if let Some(response) = &self.response_file {
            entry.push(at::RESPONSE_FILE_PATH, response.path.as_str());
            entry.push(at::RESPONSE_FILE_CONTENT, response.content.as_str());
        }
        entry.push(at::TIMEOUT, self.timeout_secs.to_string());
        entry.push_option(
            at::CHECK_INTERVAL,
            self.check_interval_secs.map(|s| s.to_string()),
        );
        entry.push(at::RETRIES, self.retries.to_string());
        // The commands after this one in its step, each whole.
        push_json_list(entry, at::THEN, &self.then)?;
        let codes = &self.outcome.exit_codes;
        entry.push_ordered(at::SUCCESS_CODE, &codes.success);
        entry.push_ordered(at::REBOOT_CODE, &codes.reboot);
        entry.push_ordered(at::RETRY_CODE, &codes.retry);
        // The patterns are the log's when there is a log path, else the
        // output's.
        if let Some(output) = self
            .outcome
            .output
            .as_ref()
            .filter(|_| self.outcome.log.is_none())
        {
            entry.push_ordered(at::LOG_SUCCESS_PATTERN, &output.success);
            entry.push_ordered(at::LOG_FAILURE_PATTERN, &output.failure);
        }
        if let Some(log) = &self.outcome.log {
            entry.push(at::LOG_PATH, log.path.as_str());
            entry.push_ordered(at::LOG_SUCCESS_PATTERN, &log.success);
            entry.push_ordered(at::LOG_FAILURE_PATTERN, &log.failure);
        }
        if self.remove_when_unassigned {
            entry.push(at::REMOVE_WHEN_UNASSIGNED, "TRUE");
        }
        Ok(())
    }

    fn read(entry: &CatalogEntry) -> Result<Self, CatalogError> {
        let kind_text = entry.required(at::INSTALLER_KIND)?;
        let kind = InstallerKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == kind_text)
            .ok_or_else(|| {
                entry.malformed(format!("{} {kind_text:?} is not known", at::INSTALLER_KIND))
            })?;
        let mut env = BTreeMap::new();
        for text in entry.values(at::ENVIRONMENT) {
            let (name, value) = text.split_once('=').ok_or_else(|| {
                entry.malformed(format!("{} value {text:?} lacks '='", at::ENVIRONMENT))
            })?;
            env.insert(name.to_owned(), value.to_owned());
        }
        let response_file = match (
            entry.single(at::RESPONSE_FILE_PATH)?,
            entry.single(at::RESPONSE_FILE_CONTENT)?,
        ) {
            (Some(path), Some(content)) => Some(ResponseFile {
                path: path.to_owned(),
                content: content.to_owned(),
            }),
            (None, None) => None,
            _ => {
                return Err(entry.malformed(format!(
                    "{} and {} must be both present or both absent",
                    at::RESPONSE_FILE_PATH,
                    at::RESPONSE_FILE_CONTENT
                )));
            }
        };
        let log = entry
            .single(at::LOG_PATH)?
            .map(|path| -> Result<LogRules, CatalogError> {
                Ok(LogRules {
                    path: path.to_owned(),
                    success: read_patterns(entry, at::LOG_SUCCESS_PATTERN)?,
                    failure: read_patterns(entry, at::LOG_FAILURE_PATTERN)?,
                })
            })
            .transpose()?;
        let output = match &log {
            Some(_) => None,
            None => {
                let success = read_patterns(entry, at::LOG_SUCCESS_PATTERN)?;
                let failure = read_patterns(entry, at::LOG_FAILURE_PATTERN)?;
                (!success.is_empty() || !failure.is_empty())
                    .then_some(OutputRules { success, failure })
            }
        };
        Ok(Self {
            kind,
            argv: owned(entry.ordered(at::ARGV)?),
            shell: entry.boolean(at::SHELL)?,
            working_dir: entry.single(at::WORKING_DIR)?.map(str::to_owned),
            env,
            response_file,
            timeout_secs: entry
                .number(at::TIMEOUT)?
                .ok_or_else(|| entry.malformed(format!("{} is missing", at::TIMEOUT)))?,
            check_interval_secs: entry.number(at::CHECK_INTERVAL)?,
            retries: entry.number(at::RETRIES)?.unwrap_or(0),
            outcome: OutcomeRules {
                exit_codes: ExitCodeTable {
                    success: read_codes(entry, at::SUCCESS_CODE)?,
                    reboot: read_codes(entry, at::REBOOT_CODE)?,
                    retry: read_codes(entry, at::RETRY_CODE)?,
                },
                log,
                output,
            },
            remove_when_unassigned: entry.boolean(at::REMOVE_WHEN_UNASSIGNED)?,
            then: read_json_list(entry, at::THEN)?,
        })
    }
}

impl SlotContent for SuiteDescription {
    const CLASS: &'static str = class::SUITE_DESCRIPTION;

    fn write(&self, entry: &mut CatalogEntry) -> Result<(), CatalogError> {
        if !self.vendor.is_empty() {
            entry.push(at::VENDOR, self.vendor.as_str());
        }
        entry.push_localized(at::NAME, &self.name)?;
        entry.push_localized(at::SUMMARY, &self.summary)
    }

    fn read(entry: &CatalogEntry) -> Result<Self, CatalogError> {
        Ok(Self {
            vendor: entry.single(at::VENDOR)?.unwrap_or_default().to_owned(),
            name: entry.localized(at::NAME)?,
            summary: entry.localized(at::SUMMARY)?,
        })
    }
}

impl SlotContent for ProductCapabilities {
    const CLASS: &'static str = class::SUITE_CAPABILITIES;

    fn write(&self, entry: &mut CatalogEntry) -> Result<(), CatalogError> {
        push_capabilities(entry, at::PROVIDES, &self.provides);
        push_capability_requirements(entry, at::REQUIRES_CAPABILITY, &self.requires);
        Ok(())
    }

    fn read(entry: &CatalogEntry) -> Result<Self, CatalogError> {
        Ok(Self {
            provides: read_capabilities(entry, at::PROVIDES)?,
            requires: read_capability_requirements(entry, at::REQUIRES_CAPABILITY)?,
        })
    }
}

impl SlotContent for Vec<ProductCategory> {
    const CLASS: &'static str = class::CATEGORIES;

    fn write(&self, entry: &mut CatalogEntry) -> Result<(), CatalogError> {
        push_json_list(entry, at::CATEGORY, self)
    }

    fn read(entry: &CatalogEntry) -> Result<Self, CatalogError> {
        read_json_list(entry, at::CATEGORY)
    }
}

impl SlotContent for Vec<ProductGroup> {
    const CLASS: &'static str = class::GROUPS;

    fn write(&self, entry: &mut CatalogEntry) -> Result<(), CatalogError> {
        push_json_list(entry, at::PRODUCT_GROUP, self)
    }

    fn read(entry: &CatalogEntry) -> Result<Self, CatalogError> {
        read_json_list(entry, at::PRODUCT_GROUP)
    }
}

impl SlotContent for Vec<VariablePresentation> {
    const CLASS: &'static str = class::PRESENTATION;

    fn write(&self, entry: &mut CatalogEntry) -> Result<(), CatalogError> {
        push_json_list(entry, at::PRESENTATION, self)
    }

    fn read(entry: &CatalogEntry) -> Result<Self, CatalogError> {
        read_json_list(entry, at::PRESENTATION)
    }
}

impl SlotContent for Vec<VariableLinkage> {
    const CLASS: &'static str = class::LINKAGE;

    fn write(&self, entry: &mut CatalogEntry) -> Result<(), CatalogError> {
        push_json_list(entry, at::LINKAGE, self)
    }

    fn read(entry: &CatalogEntry) -> Result<Self, CatalogError> {
        read_json_list(entry, at::LINKAGE)
    }
}

impl SlotContent for SuitePolicy {
    const CLASS: &'static str = class::POLICY;

    fn write(&self, entry: &mut CatalogEntry) -> Result<(), CatalogError> {
        entry.push(at::ON_FAILURE, enum_text(&self.on_failure)?);
        Ok(())
    }

    fn read(entry: &CatalogEntry) -> Result<Self, CatalogError> {
        let text = entry.required(at::ON_FAILURE)?;
        Ok(Self {
            on_failure: enum_from_text(entry, at::ON_FAILURE, text)?,
        })
    }
}

/// Groups the entries of a subtree search into owners and their children:
/// owners are entries with `owner_class`, children are object versions
/// keyed by their owner's id (`roleoutOf`) and their lowercase `cn`.
/// Entries of other shapes are ignored.
pub(crate) fn group_entries<'a>(
    entries: &'a [CatalogEntry],
    owner_class: &str,
) -> Result<GroupedEntries<'a>, CatalogError> {
    let mut grouped = GroupedEntries::default();
    for entry in entries {
        if entry.has_class(owner_class) {
            let id = entry.required(at::CN)?.to_owned();
            grouped.owners.insert(id, entry);
        } else if entry.has_class(class::OBJECT_VERSION) {
            let owner = entry.required(at::OF)?.to_owned();
            let name = entry.required(at::CN)?.to_ascii_lowercase();
            grouped
                .children
                .entry(owner)
                .or_default()
                .insert(name, entry);
        }
    }
    Ok(grouped)
}

/// Owners by id and their children by lowercase `cn`.
#[derive(Debug, Default)]
pub(crate) struct GroupedEntries<'a> {
    pub(crate) owners: BTreeMap<String, &'a CatalogEntry>,
    pub(crate) children: BTreeMap<String, BTreeMap<String, &'a CatalogEntry>>,
    /// What [`GroupedEntries::children_of`] lends for an owner without
    /// children.
    none: BTreeMap<String, &'a CatalogEntry>,
}

impl<'a> GroupedEntries<'a> {
    /// The children of owner `id` (none when it has none).
    pub(crate) fn children_of(&self, id: &str) -> &BTreeMap<String, &'a CatalogEntry> {
        self.children.get(id).unwrap_or(&self.none)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use roleout_model::command::Phase;
    use roleout_model::condition::{Condition, RunPolicy};
    use roleout_model::product::InstallFile;
    use roleout_model::suite::{OnFailure, Translation, Widget};
    use roleout_model::text::LocalizedText;
    use roleout_model::variable::{ValidationRules, VariableKind};

    use super::*;

    const PRODUCTS: &str = "ou=products,ou=roleout,dc=example,dc=org";
    const SUITES: &str = "ou=suites,ou=roleout,dc=example,dc=org";

    fn role(name: &str) -> BTreeSet<RoleName> {
        BTreeSet::from([RoleName::new(name).unwrap()])
    }

    fn command(argv: &[&str]) -> CommandLineModel {
        CommandLineModel {
            kind: InstallerKind::Deb,
            argv: argv.iter().map(|arg| (*arg).to_owned()).collect(),
            shell: true,
            working_dir: Some(" /tmp/with space ".to_owned()),
            env: BTreeMap::from([("LANG".to_owned(), "C=x".to_owned())]),
            response_file: Some(ResponseFile {
                path: "answers.txt".to_owned(),
                content: "a=1\nb=2\n".to_owned(),
            }),
            timeout_secs: 600,
            check_interval_secs: Some(5),
            retries: 2,
            outcome: OutcomeRules {
                exit_codes: ExitCodeTable {
                    success: vec![0, 0, 1],
                    reboot: vec![3010],
                    retry: vec![-1],
                },
                log: Some(LogRules {
                    path: "/var/log/x.log".to_owned(),
                    success: vec![Pattern::new("complete$").unwrap()],
                    failure: vec![
                        Pattern::new("^ERROR").unwrap(),
                        Pattern::new("^FATAL").unwrap(),
                    ],
                }),
                output: None,
            },
            remove_when_unassigned: false,
            then: Vec::new(),
        }
    }

    fn full_product() -> ProductSource {
        let mut name = LocalizedText::plain("Notes Client");
        name.insert("de", "Notes-Klient");
        name.insert("pt-BR", "");
        let description = ProductDescription {
            vendor: "Lotus".to_owned(),
            name,
            summary: LocalizedText::plain("Mail client"),
            licence: Some(String::new()),
            media: Some("CD 1".to_owned()),
        };
        let mut developer_description = description.clone();
        developer_description.media = None;
        let condition = Condition::All(vec![
            Condition::FileExists {
                path: "/opt/notes".to_owned(),
            },
            Condition::Not(Box::new(Condition::ProcessNotRunning {
                name: "notes".to_owned(),
            })),
        ]);
        ProductSource {
            id: ProductId::new("notes-client").unwrap(),
            version: Version::new("10.0 FP3").unwrap(),
            priority: -5,
            platform: Platform {
                os: vec!["linux".to_owned(), "linux".to_owned()],
                arch: vec!["x86_64".to_owned()],
            },
            description: Versioned {
                versions: vec![
                    RoleVersion {
                        roles: BTreeSet::new(),
                        value: description.clone(),
                    },
                    RoleVersion {
                        roles: role("developer"),
                        value: developer_description,
                    },
                    // An identical version for another role: a distinct entry.
                    RoleVersion {
                        roles: role("administrator"),
                        value: description,
                    },
                ],
            },
            size: Versioned::single(InstallSize {
                installed: u64::MAX,
            }),
            capabilities: Versioned::single(Capabilities {
                provides: vec![
                    Capability {
                        name: CapabilityName::new("mail-client").unwrap(),
                        version: Some(Version::new("9.0 beta 2").unwrap()),
                    },
                    Capability {
                        name: CapabilityName::new("calendar").unwrap(),
                        version: None,
                    },
                ],
            }),
            dependencies: Versioned::single(Dependencies {
                prerequisites: vec![ProductRequirement {
                    product: ProductId::new("jre").unwrap(),
                    versions: VersionReq::parse(">=1.8, <2").unwrap(),
                }],
                corequisites: vec![ProductRequirement {
                    product: ProductId::new("notes-fonts").unwrap(),
                    versions: VersionReq::any(),
                }],
                capabilities: vec![CapabilityRequirement {
                    capability: CapabilityName::new("java-runtime").unwrap(),
                    versions: VersionReq::parse("=1:2.0").unwrap(),
                }],
                replaces: Vec::new(),
                obsoletes: Vec::new(),
                system: Vec::new(),
            }),
            conflicts: Versioned::single(Conflicts {
                products: vec![ProductRequirement {
                    product: ProductId::new("notes-legacy").unwrap(),
                    versions: VersionReq::parse("<9").unwrap(),
                }],
                capabilities: vec![CapabilityRequirement {
                    capability: CapabilityName::new("other-mail").unwrap(),
                    versions: VersionReq::any(),
                }],
            }),
            variables: Versioned::single(vec![VariableModel {
                name: roleout_model::ids::VariableName::new("install_dir").unwrap(),
                kind: VariableKind::Path,
                default: Some("/opt/notes".to_owned()),
                required: true,
                label: LocalizedText::plain("Where"),
                rules: ValidationRules {
                    max_length: Some(200),
                    pattern: Some(Pattern::new("^/").unwrap()),
                    ..ValidationRules::default()
                },
            }]),
            fileset: Versioned {
                versions: vec![
                    RoleVersion {
                        roles: BTreeSet::new(),
                        value: InstallFileSet {
                            files: vec![InstallFile {
                                path: "notes.deb".to_owned(),
                                sha256: Sha256::from_bytes(&[7; 32]),
                                size: 10,
                                source: Some("https://example.org/notes.deb".to_owned()),
                                mode: Some(0o644),
                            }],
                        },
                    },
                    RoleVersion {
                        roles: role("developer"),
                        value: InstallFileSet::default(),
                    },
                ],
            },
            version_checker: Versioned::single(VersionCheckerModel {
                installed: condition.clone(),
            }),
            incremental: Versioned {
                versions: vec![
                    RoleVersion {
                        roles: BTreeSet::new(),
                        value: IncrementalInstall {
                            when: Some(condition),
                            run: RunPolicy::Always,
                        },
                    },
                    RoleVersion {
                        roles: role("developer"),
                        value: IncrementalInstall {
                            when: None,
                            run: RunPolicy::OnChange,
                        },
                    },
                ],
            },
            commands: BTreeMap::from([
                (
                    Phase::Install,
                    Versioned::single(command(&["dpkg", "-i", "", "-i"])),
                ),
                (
                    Phase::PostInstall,
                    Versioned {
                        versions: vec![RoleVersion {
                            roles: role("administrator"),
                            value: command(&["/opt/notes/bin/admin-setup"]),
                        }],
                    },
                ),
            ]),
        }
    }

    fn full_suite() -> SuiteSource {
        let variable = roleout_model::ids::VariableName::new("server").unwrap();
        let product = ProductId::new("notes-client").unwrap();
        SuiteSource {
            id: SuiteId::new("office").unwrap(),
            version: Version::new("2024.1").unwrap(),
            description: Versioned::single(SuiteDescription {
                vendor: "IT".to_owned(),
                name: LocalizedText::plain("Office"),
                summary: LocalizedText::default(),
            }),
            capabilities: Versioned::single(ProductCapabilities {
                provides: vec![Capability {
                    name: CapabilityName::new("office").unwrap(),
                    version: None,
                }],
                requires: vec![CapabilityRequirement {
                    capability: CapabilityName::new("mail-client").unwrap(),
                    versions: VersionReq::parse(">=9").unwrap(),
                }],
            }),
            categories: Versioned::single(vec![ProductCategory {
                name: "mail".to_owned(),
                label: LocalizedText::plain("Mail"),
                products: vec![product.clone()],
            }]),
            groups: Versioned::single(vec![ProductGroup {
                name: "all".to_owned(),
                label: LocalizedText::default(),
                products: vec![product.clone()],
            }]),
            variables: Versioned::single(vec![VariableModel {
                name: variable.clone(),
                kind: VariableKind::String,
                default: None,
                required: false,
                label: LocalizedText::default(),
                rules: ValidationRules::default(),
            }]),
            presentation: Versioned::single(vec![VariablePresentation {
                variable: variable.clone(),
                label: LocalizedText::plain("Server"),
                help: LocalizedText::default(),
                order: 1,
                widget: Widget::Select,
            }]),
            linkage: Versioned::single(vec![VariableLinkage {
                suite_variable: variable.clone(),
                product: product.clone(),
                product_variable: variable,
                translation: Translation::Map(BTreeMap::from([("a".to_owned(), "b".to_owned())])),
            }]),
            incremental: Versioned::single(IncrementalInstall {
                when: None,
                run: RunPolicy::Once,
            }),
            policy: Versioned {
                versions: vec![RoleVersion {
                    roles: role("administrator"),
                    value: SuitePolicy {
                        on_failure: OnFailure::Continue,
                    },
                }],
            },
            members: vec![SuiteMember {
                product,
                versions: VersionReq::parse(">=10").unwrap(),
                roles: role("developer"),
            }],
        }
    }

    /// Reverses every value list, as a server returning values in another
    /// order would, then reads the entries back.
    fn reread<T>(
        entries: &CatalogEntries,
        owner_class: &str,
        read: impl Fn(&CatalogEntry, &BTreeMap<String, &CatalogEntry>) -> Result<T, CatalogError>,
    ) -> T {
        let mut shuffled: Vec<CatalogEntry> = entries.all().cloned().collect();
        for entry in &mut shuffled {
            for values in entry.attributes.values_mut() {
                values.reverse();
            }
        }
        shuffled.reverse();
        let grouped = group_entries(&shuffled, owner_class).unwrap();
        let (id, owner) = grouped.owners.iter().next().unwrap();
        read(owner, grouped.children_of(id)).unwrap()
    }

    #[test]
    fn a_product_with_every_slot_reads_back_unchanged() {
        let product = full_product();
        let entries = product_entries(PRODUCTS, &product).unwrap();
        // Three description versions, two identical in value: three entries.
        assert_eq!(
            entries.versions.len(),
            3 + 1 + 1 + 1 + 1 + 1 + 2 + 1 + 2 + 2
        );
        assert_eq!(entries.owner.dn, format!("cn=notes-client,{PRODUCTS}"));
        assert!(
            entries
                .versions
                .iter()
                .all(|child| child.dn.ends_with(&entries.owner.dn))
        );
        assert_eq!(
            reread(&entries, class::PRODUCT, product_from_entries),
            product
        );
    }

    #[test]
    fn a_suite_with_every_slot_reads_back_unchanged() {
        let suite = full_suite();
        let entries = suite_entries(SUITES, &suite).unwrap();
        assert_eq!(entries.versions.len(), 9);
        assert_eq!(reread(&entries, class::SUITE, suite_from_entries), suite);
    }

    #[test]
    fn children_are_content_addressed() {
        let product = full_product();
        let before = product_entries(PRODUCTS, &product).unwrap();
        let mut changed = product.clone();
        changed.size = Versioned::single(InstallSize { installed: 1 });
        let after = product_entries(PRODUCTS, &changed).unwrap();
        let names = |entries: &CatalogEntries| -> BTreeSet<String> {
            entries
                .versions
                .iter()
                .map(|entry| entry.dn.clone())
                .collect()
        };
        let (old, new) = (names(&before), names(&after));
        assert_eq!(old.difference(&new).count(), 1);
        assert_eq!(new.difference(&old).count(), 1);
        assert!(new.difference(&old).all(|dn| dn.starts_with("cn=size-")));
        assert_ne!(
            before.owner.values(attribute::SOURCE_DIGEST),
            after.owner.values(attribute::SOURCE_DIGEST)
        );
    }

    #[test]
    fn edits_outside_roleout_are_detected() {
        let entries = product_entries(PRODUCTS, &full_product()).unwrap();
        let mut all: Vec<CatalogEntry> = entries.all().cloned().collect();
        let size = all
            .iter_mut()
            .find(|entry| entry.has_class(class::SIZE))
            .unwrap();
        size.attributes
            .insert(attribute::INSTALLED_SIZE.to_owned(), vec!["5".to_owned()]);
        let grouped = group_entries(&all, class::PRODUCT).unwrap();
        let owner = grouped.owners["notes-client"];
        let error = product_from_entries(owner, grouped.children_of("notes-client")).unwrap_err();
        assert!(error.to_string().contains("cn=size-"), "{error}");

        let mut missing: Vec<CatalogEntry> = entries.all().cloned().collect();
        missing.retain(|entry| !entry.has_class(class::FILESET));
        let grouped = group_entries(&missing, class::PRODUCT).unwrap();
        let owner = grouped.owners["notes-client"];
        let error = product_from_entries(owner, grouped.children_of("notes-client")).unwrap_err();
        assert!(
            error.to_string().contains("not an entry under it"),
            "{error}"
        );
    }

    #[test]
    fn unrepresentable_values_are_refused_with_their_name() {
        let mut product = full_product();
        let mut bad = command(&["x"]);
        bad.env.insert("A=B".to_owned(), "1".to_owned());
        product
            .commands
            .insert(Phase::Uninstall, Versioned::single(bad));
        let error = product_entries(PRODUCTS, &product).unwrap_err();
        assert!(error.to_string().contains("\"A=B\""), "{error}");
    }

    #[test]
    fn empty_command_phases_mean_absent() {
        let mut product = full_product();
        product
            .commands
            .insert(Phase::Uninstall, Versioned::default());
        let entries = product_entries(PRODUCTS, &product).unwrap();
        let read = reread(&entries, class::PRODUCT, product_from_entries);
        assert_eq!(read, normalize_product(&product));
        assert_eq!(
            product_digest(&read).unwrap(),
            product_digest(&product).unwrap()
        );
    }

    /// Reads a product the way a build does: each child read alone into a
    /// part, then the product put together from its owner and parts.
    fn from_parts(entries: &[CatalogEntry]) -> Result<ProductSource, CatalogError> {
        let mut owner = None;
        let mut parts = HashMap::new();
        for entry in entries {
            if entry.has_class(class::PRODUCT) {
                owner = Some(entry);
            } else {
                let name = entry.required(at::CN).unwrap().to_ascii_lowercase();
                parts.insert(name, ProductPart::read(entry.clone()));
            }
        }
        product_from_parts(owner.unwrap(), parts)
    }

    /// Both readers on the same entries: the same product or the same error.
    fn read_both(entries: &[CatalogEntry]) -> Result<ProductSource, String> {
        let grouped = group_entries(entries, class::PRODUCT).unwrap();
        let (id, owner) = grouped.owners.iter().next().unwrap();
        let whole = product_from_entries(owner, grouped.children_of(id)).map_err(|e| e.to_string());
        let parts = from_parts(entries).map_err(|error| error.to_string());
        assert_eq!(whole, parts);
        parts
    }

    #[test]
    fn reading_parts_gives_what_reading_entries_gives() {
        let mut product = full_product();
        // A repeated identical version: one child named twice as current.
        let repeated = product.size.versions[0].clone();
        product.size.versions.push(repeated);
        let entries = product_entries(PRODUCTS, &product).unwrap();
        let mut all: Vec<CatalogEntry> = entries.all().cloned().collect();
        for entry in &mut all {
            for values in entry.attributes.values_mut() {
                values.reverse();
            }
        }
        all.reverse();
        assert_eq!(read_both(&all).unwrap(), product);

        // An entry no product names as current is not read, even broken.
        let mut planted = all.clone();
        let mut broken = CatalogEntry::new(format!("cn=size-0,cn=notes-client,{PRODUCTS}"));
        broken.push(attribute::OBJECT_CLASS, class::OBJECT_VERSION);
        broken.push(attribute::CN, "size-0");
        broken.push(attribute::OF, "notes-client");
        broken.push(attribute::SLOT, "no-such-slot");
        planted.push(broken);
        assert_eq!(read_both(&planted).unwrap(), product);

        // A changed version: both name the same entry.
        let mut changed = all.clone();
        let size = changed
            .iter_mut()
            .find(|entry| entry.has_class(class::SIZE))
            .unwrap();
        size.attributes
            .insert(attribute::INSTALLED_SIZE.to_owned(), vec!["5".to_owned()]);
        let error = read_both(&changed).unwrap_err();
        assert!(error.contains("cn=size-"), "{error}");

        // A changed owner: the product's digest is the one named.
        let mut changed = all.clone();
        let owner = changed
            .iter_mut()
            .find(|entry| entry.has_class(class::PRODUCT))
            .unwrap();
        owner
            .attributes
            .insert(attribute::PRIORITY.to_owned(), vec!["7".to_owned()]);
        let error = read_both(&changed).unwrap_err();
        assert!(error.contains(attribute::SOURCE_DIGEST), "{error}");

        // A current child missing, or unreadable.
        let mut missing = all.clone();
        missing.retain(|entry| !entry.has_class(class::FILESET));
        let error = read_both(&missing).unwrap_err();
        assert!(error.contains("not an entry under it"), "{error}");
        let mut unreadable = all;
        for entry in unreadable
            .iter_mut()
            .filter(|entry| entry.has_class(class::SIZE))
        {
            entry
                .attributes
                .insert(attribute::INSTALLED_SIZE.to_owned(), vec!["x".to_owned()]);
        }
        let error = read_both(&unreadable).unwrap_err();
        assert!(error.contains("not a valid number"), "{error}");
    }

    #[test]
    fn digests_computed_on_several_threads_come_in_order() {
        let (_, _, products) =
            crate::catalog::synthetic::synthetic(PARALLEL_DIGESTS_FROM + 7, 3, 2);
        let refs: Vec<&ProductSource> = products.iter().collect();
        let digests: Vec<Sha256> = product_digests(&refs)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let one_by_one: Vec<Sha256> = products
            .iter()
            .map(|product| product_digest(product).unwrap())
            .collect();
        assert_eq!(digests, one_by_one);
    }
}
