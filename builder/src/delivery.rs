//! What one machine gets of a built suite: the products its group and the
//! machine itself chose, and the values admins customized for them (Fig. 7
//! meeting Fig. 10).
//!
//! roleoutd (`GET /v1/suites/{id}`) and `roleout-admin plan` both go
//! through [`Customizations::for_machine`] and [`plan_for`], so the plan an
//! admin reads is the plan the machine runs, with the same values.
//!
//! The rules:
//! - **Products.** A machine in a group gets the products chosen for the
//!   group, then those chosen for the machine alone, completed from the
//!   suite by resolution (requirements, co-requisites, product groups), when
//!   the group is for this suite (or names none) and something was chosen.
//!   Otherwise it gets the whole suite as its roles have it. A chosen
//!   product that the machine's roles do not get is left out of the plan,
//!   with the reason, rather than failing the suite.
//! - **Values.** The suite-wide customization of the suite, overridden
//!   variable by variable by the customization of the machine's group. Only
//!   variables of the suite as the machine's roles have it are served
//!   (another role's version may have others); a password is never served,
//!   even if one were stored: secrets stay in the machine's response file.
//!   On the machine the response file wins over these, and these over the
//!   suite's linkage and defaults.

use std::collections::BTreeMap;

use roleout_directory::groups::{Customization as StoredCustomization, GroupEntry};
use roleout_directory::{Directory, DirectoryError};
use roleout_model::ids::{MachineId, ProductId, SuiteId, VariableName};
use roleout_model::machine::{Group, Machine};
use roleout_model::protocol::Customization;
use roleout_model::resolve::{NotApplicable, Plan, resolve_machine, resolve_suite};
use roleout_model::suite::{Suite, Widget};
use roleout_model::variable::VariableKind;

/// Every group and customization, read in two searches of `ou=groups`.
#[derive(Debug, Clone, Default)]
pub struct Customizations {
    groups: Vec<GroupEntry>,
    stored: Vec<StoredCustomization>,
}

/// What admins chose for one machine and suite, before it is fitted to
/// the suite as the machine's roles have it ([`plan_for`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MachineChoice {
    /// The machine's group, in the model's form (no machines listed), when
    /// it is in one.
    pub group: Option<Group>,
    /// Products chosen for this machine alone, beyond its group's.
    pub own_products: Vec<ProductId>,
    /// Customized values: suite-wide, overridden by the group's.
    pub values: BTreeMap<VariableName, String>,
}

impl MachineChoice {
    /// Whether the choice of products replaces the whole suite for `suite`:
    /// the group is for this suite (or names none) and something was
    /// chosen.
    pub fn chooses_products(&self, suite: &SuiteId) -> bool {
        self.group.as_ref().is_some_and(|group| {
            group.suite.as_ref().is_none_or(|wanted| wanted == suite)
                && (!group.products.is_empty() || !self.own_products.is_empty())
        })
    }
}

impl Customizations {
    /// Reads every group and customization.
    pub async fn read(directory: &Directory) -> Result<Self, DirectoryError> {
        Ok(Self {
            groups: directory.group_entries().await?,
            stored: directory.customizations().await?,
        })
    }

    /// From what was read (for tests and callers that already hold it).
    pub fn new(groups: Vec<GroupEntry>, stored: Vec<StoredCustomization>) -> Self {
        Self { groups, stored }
    }

    /// The group whose members include the entry at `dn`.
    pub fn group_of(&self, dn: &str) -> Option<&GroupEntry> {
        self.groups.iter().find(|group| {
            group
                .record
                .members
                .iter()
                .any(|member| member.eq_ignore_ascii_case(dn))
        })
    }

    /// What was chosen for the machine `name` at `dn` and `suite`.
    pub fn for_machine(&self, dn: &str, name: &MachineId, suite: &SuiteId) -> MachineChoice {
        let entry = self.group_of(dn);
        let mut values = BTreeMap::new();
        let suite_wide = self
            .stored
            .iter()
            .find(|stored| stored.group.is_none() && &stored.suite == suite);
        let for_group = entry.and_then(|entry| {
            self.stored
                .iter()
                .find(|stored| stored.group.as_ref() == Some(&entry.name) && &stored.suite == suite)
        });
        for stored in suite_wide.into_iter().chain(for_group) {
            values.extend(stored.values.clone());
        }
        MachineChoice {
            group: entry.map(|entry| Group {
                name: entry.name.clone(),
                suite: entry.record.suite.clone(),
                products: entry.record.products.clone(),
                machines: Vec::new(),
            }),
            own_products: entry
                .and_then(|entry| entry.record.machine_products.get(name).cloned())
                .unwrap_or_default(),
            values,
        }
    }
}

/// The plan and customization `machine` gets of `built` (the suite as its
/// roles have it), given what was chosen for it (see the module
/// documentation). `Err` holds the resolution problems, in words.
pub fn plan_for(
    built: &Suite,
    machine: &Machine,
    choice: &MachineChoice,
) -> Result<(Plan, Customization), String> {
    let joined = |errors: Vec<roleout_model::resolve::ResolveError>| {
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    };
    let customization = customization_for(built, choice);
    let plan = match choice.group.as_ref() {
        Some(group) if choice.chooses_products(&built.id) => {
            let available = |product: &ProductId| built.products.iter().any(|p| &p.id == product);
            let mut left_out = Vec::new();
            let mut keep = |products: &[ProductId], whose: &str| -> Vec<ProductId> {
                let mut kept = Vec::new();
                for product in products {
                    if available(product) {
                        kept.push(product.clone());
                    } else {
                        left_out.push(NotApplicable {
                            product: product.clone(),
                            reason: format!(
                                "chosen for {whose}, but suite {} does not give it to this machine's roles",
                                built.id
                            ),
                        });
                    }
                }
                kept
            };
            let group = Group {
                products: keep(&group.products, &format!("group {}", group.name)),
                ..group.clone()
            };
            let mut machine = machine.clone();
            machine.products = keep(&choice.own_products, &format!("machine {}", machine.name));
            let mut plan = resolve_machine(built, Some(&group), &machine).map_err(joined)?;
            plan.not_applicable.extend(left_out);
            plan
        }
        _ => {
            let platform = match (&machine.os, &machine.arch) {
                (Some(os), Some(arch)) => Some((os.as_str(), arch.as_str())),
                _ => None,
            };
            resolve_suite(built, platform).map_err(joined)?
        }
    };
    Ok((plan, customization))
}

/// Whether suite variable `name` of `built` is secret: a password, or
/// presented with a password widget (as `customize` treats it).
fn is_secret(built: &Suite, name: &VariableName) -> bool {
    built
        .variables
        .iter()
        .any(|variable| &variable.name == name && variable.kind == VariableKind::Password)
        || built
            .presentation
            .iter()
            .any(|entry| &entry.variable == name && entry.widget == Widget::Password)
}

/// The customization served with `built`: the chosen values of variables
/// the suite has, never a secret one.
pub fn customization_for(built: &Suite, choice: &MachineChoice) -> Customization {
    let values = choice
        .values
        .iter()
        .filter(|(name, _)| {
            built.variables.iter().any(|variable| &variable.name == *name)
                && !is_secret(built, name)
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    Customization {
        group: choice.group.as_ref().map(|group| group.name.clone()),
        values,
    }
}
