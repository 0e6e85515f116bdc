//! Suite (Fig. 4): the products delivered together, with the suite-level
//! objects that describe, group and configure them. Like products, a suite
//! has a catalog form ([`SuiteSource`], every role version of every slot)
//! and an assembled form ([`Suite`], one requester's view, Fig. 9).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::condition::IncrementalInstall;
use crate::ids::{ProductId, RoleName, SuiteId, VariableName};
use crate::product::{Capability, CapabilityRequirement, ProductModel};
use crate::role::{Ambiguity, EffectiveRoles, RoleVersion, Selected, Versioned, select};
use crate::text::LocalizedText;
use crate::variable::VariableModel;
use crate::version::{Version, VersionReq};

/// SuiteDescription: what the suite is, shown to whoever installs it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SuiteDescription {
    /// Who assembled it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub vendor: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "LocalizedText::is_empty")]
    pub name: LocalizedText,
    /// One line on what it is for.
    #[serde(default, skip_serializing_if = "LocalizedText::is_empty")]
    pub summary: LocalizedText,
}

/// ProductCapabilities: capabilities the suite as a whole provides or
/// requires of the machine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ProductCapabilities {
    /// Provided by the suite.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provides: Vec<Capability>,
    /// Required by the suite (some product of it must provide them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requires: Vec<CapabilityRequirement>,
}

/// ProductCategory: organizes products for display only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ProductCategory {
    /// Its key.
    pub name: String,
    /// Its label.
    #[serde(default, skip_serializing_if = "LocalizedText::is_empty")]
    pub label: LocalizedText,
    /// The products in it.
    pub products: Vec<ProductId>,
}

/// ProductGroup: selecting one member selects all of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ProductGroup {
    /// Its key.
    pub name: String,
    /// Its label.
    #[serde(default, skip_serializing_if = "LocalizedText::is_empty")]
    pub label: LocalizedText,
    /// The products in it.
    pub products: Vec<ProductId>,
}

/// The input widget a presentation asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Widget {
    /// A line of text.
    #[default]
    Text,
    /// Hidden input.
    Password,
    /// Yes or no.
    Checkbox,
    /// A list of choices.
    Select,
    /// A path chooser.
    File,
}

/// VariablePresentation: how a suite variable is asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct VariablePresentation {
    /// The suite variable.
    pub variable: VariableName,
    /// Its label.
    #[serde(default, skip_serializing_if = "LocalizedText::is_empty")]
    pub label: LocalizedText,
    /// Help text.
    #[serde(default, skip_serializing_if = "LocalizedText::is_empty")]
    pub help: LocalizedText,
    /// Position when asking (ascending).
    pub order: u32,
    /// The widget.
    #[serde(default)]
    pub widget: Widget,
}

/// How a suite variable's value is translated for a product variable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Translation {
    /// The value as is.
    #[default]
    Identity,
    /// Looked up in a table (a value missing from it is an error).
    Map(BTreeMap<String, String>),
    /// Rendered by a template in which `value` is the suite value.
    Template(String),
}

/// VariableLinkage: feeds a suite variable into a product variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct VariableLinkage {
    /// The suite variable.
    pub suite_variable: VariableName,
    /// The product.
    pub product: ProductId,
    /// The product's variable.
    pub product_variable: VariableName,
    /// The translation.
    #[serde(default)]
    pub translation: Translation,
}

/// What happens to the rest of a run when a component fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnFailure {
    /// Stop the run; nothing after the failure is attempted.
    #[default]
    Stop,
    /// Go on with every component that does not depend on the failed one.
    Continue,
}

/// Suite-wide run policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SuitePolicy {
    /// On a component failure.
    #[serde(default)]
    pub on_failure: OnFailure,
}

/// A product of a suite, optionally only for some roles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SuiteMember {
    /// The product.
    pub product: ProductId,
    /// Accepted product versions.
    #[serde(default, skip_serializing_if = "VersionReq::is_any")]
    pub versions: VersionReq,
    /// Only requesters holding one of these roles get it; everyone when
    /// empty.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub roles: BTreeSet<RoleName>,
}

impl SuiteMember {
    /// Whether a requester with `roles` gets this member.
    pub fn applies_to(&self, roles: &EffectiveRoles) -> bool {
        self.roles.is_empty() || self.roles.iter().any(|role| roles.contains(role))
    }
}

/// The slots of a suite, named as in descriptors and in the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SuiteSlot {
    /// SuiteDescription.
    Description,
    /// ProductCapabilities.
    Capabilities,
    /// ProductCategory list.
    Categories,
    /// ProductGroup list.
    Groups,
    /// Suite VariableModel list.
    Variables,
    /// VariablePresentation list.
    Presentation,
    /// VariableLinkage list.
    Linkage,
    /// Suite IncrementalInstall.
    Incremental,
    /// Run policy.
    Policy,
}

impl SuiteSlot {
    /// Every slot, in descriptor order.
    pub const ALL: [SuiteSlot; 9] = [
        SuiteSlot::Description,
        SuiteSlot::Capabilities,
        SuiteSlot::Categories,
        SuiteSlot::Groups,
        SuiteSlot::Variables,
        SuiteSlot::Presentation,
        SuiteSlot::Linkage,
        SuiteSlot::Incremental,
        SuiteSlot::Policy,
    ];

    /// The element name used in descriptors and the directory.
    pub fn as_str(self) -> &'static str {
        match self {
            SuiteSlot::Description => "description",
            SuiteSlot::Capabilities => "capabilities",
            SuiteSlot::Categories => "categories",
            SuiteSlot::Groups => "groups",
            SuiteSlot::Variables => "variables",
            SuiteSlot::Presentation => "presentation",
            SuiteSlot::Linkage => "linkage",
            SuiteSlot::Incremental => "incremental",
            SuiteSlot::Policy => "policy",
        }
    }

    /// The slot with this name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|slot| slot.as_str() == name)
    }
}

impl fmt::Display for SuiteSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The catalog form of a suite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SuiteSource {
    /// The suite.
    pub id: SuiteId,
    /// Its version.
    pub version: Version,
    /// Description versions.
    #[serde(default, skip_serializing_if = "Versioned::is_empty")]
    pub description: Versioned<SuiteDescription>,
    /// ProductCapabilities versions.
    #[serde(default, skip_serializing_if = "Versioned::is_empty")]
    pub capabilities: Versioned<ProductCapabilities>,
    /// Category-list versions.
    #[serde(default, skip_serializing_if = "Versioned::is_empty")]
    pub categories: Versioned<Vec<ProductCategory>>,
    /// Group-list versions.
    #[serde(default, skip_serializing_if = "Versioned::is_empty")]
    pub groups: Versioned<Vec<ProductGroup>>,
    /// Variable-list versions.
    #[serde(default, skip_serializing_if = "Versioned::is_empty")]
    pub variables: Versioned<Vec<VariableModel>>,
    /// Presentation versions.
    #[serde(default, skip_serializing_if = "Versioned::is_empty")]
    pub presentation: Versioned<Vec<VariablePresentation>>,
    /// Linkage versions.
    #[serde(default, skip_serializing_if = "Versioned::is_empty")]
    pub linkage: Versioned<Vec<VariableLinkage>>,
    /// Suite-level conditional install versions.
    #[serde(default, skip_serializing_if = "Versioned::is_empty")]
    pub incremental: Versioned<IncrementalInstall>,
    /// Policy versions.
    #[serde(default, skip_serializing_if = "Versioned::is_empty")]
    pub policy: Versioned<SuitePolicy>,
    /// The products, each possibly limited to some roles.
    pub members: Vec<SuiteMember>,
}

/// A suite for one requester (Fig. 9): one version of every slot and the
/// assembled products, in member order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Suite {
    /// The suite.
    pub id: SuiteId,
    /// Its version.
    pub version: Version,
    /// Description.
    #[serde(default)]
    pub description: SuiteDescription,
    /// Suite capabilities.
    #[serde(default)]
    pub capabilities: ProductCapabilities,
    /// Categories.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<ProductCategory>,
    /// Groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<ProductGroup>,
    /// Suite variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variables: Vec<VariableModel>,
    /// How they are asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub presentation: Vec<VariablePresentation>,
    /// Where their values go.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub linkage: Vec<VariableLinkage>,
    /// Suite-level conditional install.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental: Option<IncrementalInstall>,
    /// Run policy.
    #[serde(default)]
    pub policy: SuitePolicy,
    /// The products for this requester: its members, then what they
    /// require that the suite does not name, taken from the catalog.
    pub products: Vec<ProductModel>,
    /// Products among `products` that are not members: pulled in from the
    /// catalog because a member (or one pulled in) requires them, or the
    /// suite requires a capability they provide. They are installed only
    /// as something a product of the plan requires.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pulled_in: Vec<ProductId>,
}

/// The parts of a suite assembled for a requester, before its products are
/// added (see [`SuiteSource::select`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuiteSelection {
    /// The suite with an empty product list.
    pub suite: Suite,
    /// Which version each slot came from.
    pub provenance: BTreeMap<SuiteSlot, Selected>,
    /// The members this requester gets, in order.
    pub members: Vec<SuiteMember>,
}

impl SuiteSource {
    /// Every role a member or any version of any slot is tagged for.
    pub fn tagged_roles(&self) -> BTreeSet<RoleName> {
        let mut roles: BTreeSet<RoleName> = self
            .members
            .iter()
            .flat_map(|member| member.roles.iter().cloned())
            .collect();
        roles.extend(self.description.tagged_roles().cloned());
        roles.extend(self.capabilities.tagged_roles().cloned());
        roles.extend(self.categories.tagged_roles().cloned());
        roles.extend(self.groups.tagged_roles().cloned());
        roles.extend(self.variables.tagged_roles().cloned());
        roles.extend(self.presentation.tagged_roles().cloned());
        roles.extend(self.linkage.tagged_roles().cloned());
        roles.extend(self.incremental.tagged_roles().cloned());
        roles.extend(self.policy.tagged_roles().cloned());
        roles
    }

    /// Assembles the suite-level slots for `roles` and lists the members
    /// that apply; the caller adds each member's assembled product.
    pub fn select(&self, roles: &EffectiveRoles) -> Result<SuiteSelection, Ambiguity> {
        let mut provenance = BTreeMap::new();
        let label = |slot: SuiteSlot| format!("suite {} / {}", self.id, slot.as_str());
        macro_rules! pick {
            ($field:ident, $slot:expr) => {{
                match select(|| label($slot), &self.$field, roles)? {
                    Some((value, selected)) => {
                        provenance.insert($slot, selected);
                        Some(value.clone())
                    }
                    None => None,
                }
            }};
        }
        let suite = Suite {
            id: self.id.clone(),
            version: self.version.clone(),
            description: pick!(description, SuiteSlot::Description).unwrap_or_default(),
            capabilities: pick!(capabilities, SuiteSlot::Capabilities).unwrap_or_default(),
            categories: pick!(categories, SuiteSlot::Categories).unwrap_or_default(),
            groups: pick!(groups, SuiteSlot::Groups).unwrap_or_default(),
            variables: pick!(variables, SuiteSlot::Variables).unwrap_or_default(),
            presentation: pick!(presentation, SuiteSlot::Presentation).unwrap_or_default(),
            linkage: pick!(linkage, SuiteSlot::Linkage).unwrap_or_default(),
            incremental: pick!(incremental, SuiteSlot::Incremental),
            policy: pick!(policy, SuiteSlot::Policy).unwrap_or_default(),
            products: Vec::new(),
            pulled_in: Vec::new(),
        };
        // A product listed for several role sets is taken once, as the
        // requester's highest-ranked role lists it (else as listed without
        // role), at the position of its first listing.
        let mut members: Vec<SuiteMember> = Vec::new();
        let mut seen = BTreeSet::new();
        for member in self
            .members
            .iter()
            .filter(|member| member.applies_to(roles))
        {
            if !seen.insert(&member.product) {
                continue;
            }
            let listings = Versioned {
                versions: self
                    .members
                    .iter()
                    .filter(|other| other.product == member.product)
                    .map(|other| RoleVersion {
                        roles: other.roles.clone(),
                        value: other.clone(),
                    })
                    .collect(),
            };
            let label = || format!("suite {} / products / {}", self.id, member.product);
            if let Some((chosen, _)) = select(label, &listings, roles)? {
                members.push(chosen.clone());
            }
        }
        Ok(SuiteSelection {
            suite,
            provenance,
            members,
        })
    }
}
