//! ProductModel (Fig. 3): one software component, in two forms.
//!
//! [`ProductSource`] is the catalog form: every object slot holds all its
//! role versions, as authors write them and as the directory stores them.
//! [`ProductModel`] is the assembled form for one requester (Fig. 8): one
//! version per slot, picked by [`ProductSource::select`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::command::{CommandLineModel, Phase};
use crate::condition::{Condition, IncrementalInstall, PackageManager, VersionCheckerModel};
use crate::ids::{CapabilityName, ProductId, RoleName, Sha256};
use crate::role::{Ambiguity, EffectiveRoles, Selected, Versioned, select, select_index};
use crate::text::LocalizedText;
use crate::variable::VariableModel;
use crate::version::{Version, VersionReq};

/// ProductDescription: what the product is, for people.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ProductDescription {
    /// Who makes it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub vendor: String,
    /// Its display name.
    #[serde(default, skip_serializing_if = "LocalizedText::is_empty")]
    pub name: LocalizedText,
    /// One line on what it does.
    #[serde(default, skip_serializing_if = "LocalizedText::is_empty")]
    pub summary: LocalizedText,
    /// Its licence (SPDX id or text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub licence: Option<String>,
    /// The media it ships on (a CD label, a download name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<String>,
}

/// A function a product provides, optionally at a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Capability {
    /// The capability.
    pub name: CapabilityName,
    /// The version it is provided at (the product's version when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Version>,
}

/// Capabilities (Fig. 3, 320): the functions a product provides.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Capabilities {
    /// Provided capabilities.
    pub provides: Vec<Capability>,
}

/// A product, within a version range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ProductRequirement {
    /// The product.
    pub product: ProductId,
    /// Accepted versions.
    #[serde(default, skip_serializing_if = "VersionReq::is_any")]
    pub versions: VersionReq,
}

/// A capability, within a version range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CapabilityRequirement {
    /// The capability.
    pub capability: CapabilityName,
    /// Accepted versions.
    #[serde(default, skip_serializing_if = "VersionReq::is_any")]
    pub versions: VersionReq,
}

/// What the operating system itself must have for a product to install:
/// a package of its package manager, at a version, or a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "kebab-case",
    rename_all_fields = "kebab-case",
    deny_unknown_fields
)]
pub enum SystemNeed {
    /// A package installed through the system's package manager.
    Package {
        /// dpkg or rpm.
        manager: PackageManager,
        /// The package name.
        name: String,
        /// The accepted range (any when absent).
        #[serde(default, skip_serializing_if = "VersionReq::is_any")]
        versions: VersionReq,
    },
    /// A file (or directory) at a path (a template, so `{{ root }}` works).
    File {
        /// The path.
        path: String,
    },
}

impl SystemNeed {
    /// The condition that holds when the system has it.
    pub fn condition(&self) -> Condition {
        match self {
            SystemNeed::Package {
                manager,
                name,
                versions,
            } => Condition::Package {
                manager: *manager,
                name: name.clone(),
                versions: versions.clone(),
            },
            SystemNeed::File { path } => Condition::FileExists { path: path.clone() },
        }
    }
}

impl fmt::Display for SystemNeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SystemNeed::Package {
                manager,
                name,
                versions,
            } => {
                let manager = manager.as_str();
                write!(f, "{manager} package {name}")?;
                if !versions.is_any() {
                    write!(f, " ({versions})")?;
                }
                Ok(())
            }
            SystemNeed::File { path } => write!(f, "file {path}"),
        }
    }
}

/// A base-system requirement (`<requires-system>`): what the OS must have
/// before the product installs. Unmet, the product fails with the reason,
/// unless a `provider` from the catalog supplies it: the provider is
/// pulled in and installed first, and skipped on machines whose system
/// already has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SystemRequirement {
    /// What the system must have.
    pub need: SystemNeed,
    /// The catalog product that supplies it where the system lacks it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<ProductId>,
}

/// Dependencies (Fig. 3, 360).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Dependencies {
    /// Products that must be installed before this one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prerequisites: Vec<ProductRequirement>,
    /// Products that must be installed with this one (same plan, any
    /// order between them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub corequisites: Vec<ProductRequirement>,
    /// Capabilities some product of the plan must provide, installed
    /// before this one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<CapabilityRequirement>,
    /// Products this one takes the place of by installing over them (an
    /// upgrade across ids): once it is installed, the agent counts them as
    /// gone, without running their uninstall.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaces: Vec<ProductRequirement>,
    /// Products that must be removed before this one installs: the agent
    /// runs their uninstall first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub obsoletes: Vec<ProductRequirement>,
    /// What the operating system must have (packages, files), each
    /// optionally with a catalog product that supplies it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<SystemRequirement>,
}

impl Dependencies {
    /// The products this one needs installed before it: its
    /// prerequisites and the providers of its system requirements.
    pub fn products_before(&self) -> impl Iterator<Item = ProductRequirement> + '_ {
        self.prerequisites.iter().cloned().chain(
            self.system
                .iter()
                .filter_map(|requirement| requirement.provider.clone())
                .map(|product| ProductRequirement {
                    product,
                    versions: VersionReq::any(),
                }),
        )
    }
}

/// Conflicts (Fig. 3, 370): what may not be in the same plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Conflicts {
    /// Conflicting products.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub products: Vec<ProductRequirement>,
    /// Conflicting capabilities (another product providing them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<CapabilityRequirement>,
}

/// One file of a product's media image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct InstallFile {
    /// Relative path in the payload directory (no `..`, no leading `/`).
    pub path: String,
    /// Its digest; the content store serves it under this name.
    pub sha256: Sha256,
    /// Its size in bytes.
    pub size: u64,
    /// Where to get it when not from the content store (a URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Unix permission bits to give it (octal in descriptors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

/// InstallFileSets (Fig. 3, 340): the manifest of a product's media.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct InstallFileSet {
    /// The files.
    pub files: Vec<InstallFile>,
}

/// The installed size and other sizing facts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct InstallSize {
    /// Bytes on disk once installed.
    pub installed: u64,
}

/// Which machines a product applies to. Empty lists accept everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Platform {
    /// OS families (`linux`, `windows`, `macos`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub os: Vec<String>,
    /// Architectures (`x86_64`, `aarch64`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arch: Vec<String>,
}

impl Platform {
    /// Whether a machine with this OS family and architecture qualifies.
    pub fn accepts(&self, os: &str, arch: &str) -> bool {
        (self.os.is_empty() || self.os.iter().any(|o| o.eq_ignore_ascii_case(os)))
            && (self.arch.is_empty() || self.arch.iter().any(|a| a.eq_ignore_ascii_case(arch)))
    }
}

/// Default priority: lower numbers install first among products whose
/// dependencies allow either order.
pub const DEFAULT_PRIORITY: i32 = 50;

/// A product for one requester: one version of every slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ProductModel {
    /// The product.
    pub id: ProductId,
    /// Its version.
    pub version: Version,
    /// Install priority (lower first, as a tie-break after dependencies).
    pub priority: i32,
    /// Machines it applies to.
    #[serde(default)]
    pub platform: Platform,
    /// Description.
    #[serde(default)]
    pub description: ProductDescription,
    /// Size.
    #[serde(default)]
    pub size: InstallSize,
    /// Provided capabilities.
    #[serde(default)]
    pub capabilities: Capabilities,
    /// Dependencies.
    #[serde(default)]
    pub dependencies: Dependencies,
    /// Conflicts.
    #[serde(default)]
    pub conflicts: Conflicts,
    /// Variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variables: Vec<VariableModel>,
    /// The media manifest.
    #[serde(default)]
    pub fileset: InstallFileSet,
    /// Detects an existing install.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_checker: Option<VersionCheckerModel>,
    /// Conditional install.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental: Option<IncrementalInstall>,
    /// Commands by phase. A product without an install command only
    /// carries capabilities or files for others.
    #[serde(default)]
    pub commands: BTreeMap<Phase, CommandLineModel>,
}

/// The catalog form of a product: every slot with all its role versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ProductSource {
    /// The product.
    pub id: ProductId,
    /// Its version.
    pub version: Version,
    /// Install priority (lower first).
    pub priority: i32,
    /// Machines it applies to (not role-versioned).
    #[serde(default)]
    pub platform: Platform,
    /// Description versions.
    #[serde(default, skip_serializing_if = "Versioned::is_empty")]
    pub description: Versioned<ProductDescription>,
    /// Size versions.
    #[serde(default, skip_serializing_if = "Versioned::is_empty")]
    pub size: Versioned<InstallSize>,
    /// Capability versions.
    #[serde(default, skip_serializing_if = "Versioned::is_empty")]
    pub capabilities: Versioned<Capabilities>,
    /// Dependency versions.
    #[serde(default, skip_serializing_if = "Versioned::is_empty")]
    pub dependencies: Versioned<Dependencies>,
    /// Conflict versions.
    #[serde(default, skip_serializing_if = "Versioned::is_empty")]
    pub conflicts: Versioned<Conflicts>,
    /// Variable-list versions.
    #[serde(default, skip_serializing_if = "Versioned::is_empty")]
    pub variables: Versioned<Vec<VariableModel>>,
    /// File-set versions.
    #[serde(default, skip_serializing_if = "Versioned::is_empty")]
    pub fileset: Versioned<InstallFileSet>,
    /// Version-checker versions.
    #[serde(default, skip_serializing_if = "Versioned::is_empty")]
    pub version_checker: Versioned<VersionCheckerModel>,
    /// Conditional-install versions.
    #[serde(default, skip_serializing_if = "Versioned::is_empty")]
    pub incremental: Versioned<IncrementalInstall>,
    /// Command versions, per phase.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub commands: BTreeMap<Phase, Versioned<CommandLineModel>>,
}

/// The slots of a product, named as in descriptors and in the directory.
/// Serializes as its name (`fileset`, `post-install`), so it can key a map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProductSlot {
    /// ProductDescription.
    Description,
    /// Installed size.
    Size,
    /// Capabilities.
    Capabilities,
    /// Dependencies.
    Dependencies,
    /// Conflicts.
    Conflicts,
    /// VariableModel list.
    Variables,
    /// InstallFileSets.
    Fileset,
    /// VersionCheckerModel.
    VersionCheck,
    /// IncrementalInstall.
    Incremental,
    /// A CommandLineModel.
    Command(Phase),
}

impl ProductSlot {
    /// The element name used in descriptors (and the slot name in the
    /// directory).
    pub fn as_str(self) -> &'static str {
        match self {
            ProductSlot::Description => "description",
            ProductSlot::Size => "size",
            ProductSlot::Capabilities => "capabilities",
            ProductSlot::Dependencies => "dependencies",
            ProductSlot::Conflicts => "conflicts",
            ProductSlot::Variables => "variables",
            ProductSlot::Fileset => "fileset",
            ProductSlot::VersionCheck => "version-check",
            ProductSlot::Incremental => "incremental",
            ProductSlot::Command(phase) => phase.as_str(),
        }
    }

    /// Every slot, in descriptor order.
    pub const ALL: [ProductSlot; 13] = [
        ProductSlot::Description,
        ProductSlot::Size,
        ProductSlot::Capabilities,
        ProductSlot::Dependencies,
        ProductSlot::Conflicts,
        ProductSlot::Variables,
        ProductSlot::Fileset,
        ProductSlot::VersionCheck,
        ProductSlot::Incremental,
        ProductSlot::Command(Phase::PreInstall),
        ProductSlot::Command(Phase::Install),
        ProductSlot::Command(Phase::PostInstall),
        ProductSlot::Command(Phase::Uninstall),
    ];

    /// The slot with this name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|slot| slot.as_str() == name)
    }
}

impl fmt::Display for ProductSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ProductSlot {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ProductSlot {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Self::from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown product slot {name:?}")))
    }
}

/// Which version every slot of an assembled product came from.
pub type Provenance = BTreeMap<ProductSlot, Selected>;

/// The assembled product of `$source` with each slot's version given by
/// `$pick!(field, slot)`: one list of the slots for
/// [`ProductSource::select`] and [`ProductSource::into_selected`]. The id,
/// version and platform come last, after every slot is picked.
macro_rules! picked_model {
    ($source:ident, $pick:ident, $commands:expr, $id:expr, $version:expr, $platform:expr) => {
        ProductModel {
            description: $pick!($source.description, ProductSlot::Description).unwrap_or_default(),
            size: $pick!($source.size, ProductSlot::Size).unwrap_or_default(),
            capabilities: $pick!($source.capabilities, ProductSlot::Capabilities)
                .unwrap_or_default(),
            dependencies: $pick!($source.dependencies, ProductSlot::Dependencies)
                .unwrap_or_default(),
            conflicts: $pick!($source.conflicts, ProductSlot::Conflicts).unwrap_or_default(),
            variables: $pick!($source.variables, ProductSlot::Variables).unwrap_or_default(),
            fileset: $pick!($source.fileset, ProductSlot::Fileset).unwrap_or_default(),
            version_checker: $pick!($source.version_checker, ProductSlot::VersionCheck),
            incremental: $pick!($source.incremental, ProductSlot::Incremental),
            commands: $commands,
            priority: $source.priority,
            id: $id,
            version: $version,
            platform: $platform,
        }
    };
}

impl ProductSource {
    /// Every role any version of any slot is tagged for.
    pub fn tagged_roles(&self) -> BTreeSet<RoleName> {
        let mut roles = BTreeSet::new();
        roles.extend(self.description.tagged_roles().cloned());
        roles.extend(self.size.tagged_roles().cloned());
        roles.extend(self.capabilities.tagged_roles().cloned());
        roles.extend(self.dependencies.tagged_roles().cloned());
        roles.extend(self.conflicts.tagged_roles().cloned());
        roles.extend(self.variables.tagged_roles().cloned());
        roles.extend(self.fileset.tagged_roles().cloned());
        roles.extend(self.version_checker.tagged_roles().cloned());
        roles.extend(self.incremental.tagged_roles().cloned());
        for command in self.commands.values() {
            roles.extend(command.tagged_roles().cloned());
        }
        roles
    }

    /// Assembles the product for `roles` (Fig. 8): one version per slot.
    /// The provenance says, per slot present, which role's version was
    /// taken. Fails on the first ambiguous slot.
    pub fn select(&self, roles: &EffectiveRoles) -> Result<(ProductModel, Provenance), Ambiguity> {
        let mut provenance = Provenance::new();
        let label = |slot: ProductSlot| move || format!("product {} / {}", self.id, slot.as_str());
        macro_rules! pick {
            ($field:expr, $slot:expr) => {{
                match select(label($slot), &$field, roles)? {
                    Some((value, selected)) => {
                        provenance.insert($slot, selected);
                        Some(value.clone())
                    }
                    None => None,
                }
            }};
        }
        let mut commands = BTreeMap::new();
        for (phase, versions) in &self.commands {
            if let Some(command) = pick!(*versions, ProductSlot::Command(*phase)) {
                commands.insert(*phase, command);
            }
        }
        let mut model = picked_model!(
            self,
            pick,
            commands,
            self.id.clone(),
            self.version.clone(),
            self.platform.clone()
        );
        over_default_variables(&mut model, &provenance, self.variables.default_version());
        Ok((model, provenance))
    }

    /// [`ProductSource::select`], taking the versions picked out of the
    /// source rather than copying them: a build assembles thousands of
    /// products it has no other use for.
    pub fn into_selected(
        mut self,
        roles: &EffectiveRoles,
    ) -> Result<(ProductModel, Provenance), Ambiguity> {
        let mut provenance = Provenance::new();
        let id = &self.id;
        let label = |slot: ProductSlot| move || format!("product {id} / {}", slot.as_str());
        macro_rules! pick {
            ($field:expr, $slot:expr) => {{
                let slot = &mut $field;
                match select_index(label($slot), slot, roles)? {
                    Some((index, selected)) => {
                        provenance.insert($slot, selected);
                        Some(slot.versions.swap_remove(index).value)
                    }
                    None => None,
                }
            }};
        }
        let mut commands = BTreeMap::new();
        for (phase, mut versions) in std::mem::take(&mut self.commands) {
            if let Some(command) = pick!(versions, ProductSlot::Command(phase)) {
                commands.insert(phase, command);
            }
        }
        let mut model = picked_model!(self, pick, commands, self.id, self.version, self.platform);
        over_default_variables(&mut model, &provenance, self.variables.default_version());
        Ok((model, provenance))
    }
}

/// A role version of `<variables>` overrides the default version one
/// variable at a time: the default's variables, each replaced by the role
/// version's variable of the same name, then the role version's others.
/// So a role changes one default without repeating the rest.
pub fn over_default_variables(
    model: &mut ProductModel,
    provenance: &Provenance,
    default: Option<&Vec<VariableModel>>,
) {
    let (Some(Selected::Role(_)), Some(default)) =
        (provenance.get(&ProductSlot::Variables), default)
    else {
        return;
    };
    let mut role_version = std::mem::take(&mut model.variables);
    let mut merged = Vec::with_capacity(default.len() + role_version.len());
    for variable in default {
        match role_version
            .iter()
            .position(|own| own.name == variable.name)
        {
            Some(position) => merged.push(role_version.remove(position)),
            None => merged.push(variable.clone()),
        }
    }
    merged.extend(role_version);
    model.variables = merged;
}
