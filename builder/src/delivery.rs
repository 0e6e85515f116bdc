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
        self.groups.iter().find(|group| group.has_member(dn))
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
            built
                .variables
                .iter()
                .any(|variable| &variable.name == *name)
                && !is_secret(built, name)
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    Customization {
        group: choice.group.as_ref().map(|group| group.name.clone()),
        values,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]
mod tests {
    use roleout_directory::groups::GroupRecord;
    use roleout_model::descriptor::{self, Descriptor};
    use roleout_model::ids::GroupName;
    use roleout_model::role::EffectiveRoles;
    use roleout_model::variable::VariableModel;

    use super::*;

    /// The office suite of `tests/fixtures/office`, assembled for no role.
    fn office() -> Suite {
        let directory =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/office");
        let mut suite = None;
        let mut products = Vec::new();
        for name in ["office", "browser", "printer", "spreadsheet"] {
            let bytes = std::fs::read(directory.join(format!("{name}.xml"))).unwrap();
            match descriptor::parse(name, &bytes).descriptor.unwrap() {
                Descriptor::Suite(source) => suite = Some(source),
                Descriptor::Product(source) => products.push(source),
            }
        }
        roleout_model::assemble::assemble_suite(
            &suite.unwrap(),
            &products,
            &EffectiveRoles::default(),
        )
        .unwrap()
        .suite
    }

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<VariableName, String> {
        pairs
            .iter()
            .map(|(key, value)| (VariableName::new(*key).unwrap(), (*value).to_owned()))
            .collect()
    }

    const FLOOR_DN: &str = "cn=pc-floor3,ou=machines,ou=roleout,dc=example,dc=org";

    fn customizations(chosen: &[&str]) -> Customizations {
        let group = GroupName::new("floor-3").unwrap();
        let suite = SuiteId::new("office").unwrap();
        Customizations::new(
            vec![GroupEntry {
                dn: "cn=floor-3,ou=groups,ou=roleout,dc=example,dc=org".to_owned(),
                name: group.clone(),
                record: GroupRecord {
                    suite: Some(suite.clone()),
                    products: chosen
                        .iter()
                        .map(|id| ProductId::new(*id).unwrap())
                        .collect(),
                    // Member DNs compare without regard to case.
                    members: vec![FLOOR_DN.to_ascii_uppercase()],
                    machine_products: BTreeMap::new(),
                },
            }],
            vec![
                StoredCustomization {
                    dn: String::new(),
                    suite: suite.clone(),
                    group: None,
                    values: values(&[("homepage", "https://intranet/"), ("print_queue", "hq")]),
                },
                StoredCustomization {
                    dn: String::new(),
                    suite: suite.clone(),
                    group: Some(group),
                    values: values(&[("print_queue", "floor3"), ("gone", "x")]),
                },
                StoredCustomization {
                    dn: String::new(),
                    suite: SuiteId::new("other").unwrap(),
                    group: None,
                    values: values(&[("homepage", "https://other/")]),
                },
            ],
        )
    }

    fn machine(text: &str) -> Machine {
        Machine {
            name: MachineId::new(text).unwrap(),
            ip: None,
            os: Some("linux".to_owned()),
            arch: Some("x86_64".to_owned()),
            facts: BTreeMap::new(),
            products: Vec::new(),
        }
    }

    #[test]
    fn a_group_overrides_suite_wide_values_and_chooses_products() {
        let suite = office();
        let read = customizations(&["browser", "printer"]);
        let floor = machine("pc-floor3");
        let choice = read.for_machine(FLOOR_DN, &floor.name, &suite.id);
        assert!(choice.chooses_products(&suite.id));
        let (plan, customization) = plan_for(&suite, &floor, &choice).unwrap();
        let order: Vec<&str> = plan.order().map(ProductId::as_str).collect();
        assert_eq!(order, ["printer", "browser"]);
        assert_eq!(
            customization.group,
            Some(GroupName::new("floor-3").unwrap())
        );
        // `gone` is no variable of the suite: not served.
        assert_eq!(
            customization.values,
            values(&[("homepage", "https://intranet/"), ("print_queue", "floor3")])
        );

        // Outside the group: the whole suite and the suite-wide values.
        let hq = machine("pc-hq");
        let choice = read.for_machine("cn=pc-hq,ou=machines", &hq.name, &suite.id);
        assert!(choice.group.is_none());
        let (plan, customization) = plan_for(&suite, &hq, &choice).unwrap();
        assert_eq!(plan.steps.len(), 3);
        assert_eq!(
            customization.values,
            values(&[("homepage", "https://intranet/"), ("print_queue", "hq")])
        );
    }

    #[test]
    fn a_chosen_product_the_roles_do_not_get_is_left_out_with_the_reason() {
        let mut suite = office();
        suite
            .products
            .retain(|product| product.id.as_str() != "browser");
        let read = customizations(&["browser", "printer"]);
        let floor = machine("pc-floor3");
        let choice = read.for_machine(FLOOR_DN, &floor.name, &suite.id);
        let (plan, _) = plan_for(&suite, &floor, &choice).unwrap();
        assert_eq!(
            plan.order().map(ProductId::as_str).collect::<Vec<_>>(),
            ["printer"]
        );
        assert_eq!(plan.not_applicable.len(), 1);
        assert_eq!(plan.not_applicable[0].product.as_str(), "browser");
        assert!(
            plan.not_applicable[0].reason.contains("group floor-3"),
            "{}",
            plan.not_applicable[0].reason
        );
    }

    #[test]
    fn secrets_are_never_served() {
        let mut suite = office();
        let mut password: VariableModel = suite.variables[0].clone();
        password.name = VariableName::new("vault_key").unwrap();
        password.kind = VariableKind::Password;
        suite.variables.push(password);
        let choice = MachineChoice {
            values: values(&[("vault_key", "hunter2-hunter2"), ("print_queue", "q")]),
            ..MachineChoice::default()
        };
        assert_eq!(
            customization_for(&suite, &choice).values,
            values(&[("print_queue", "q")])
        );
        // A plain variable asked with a password widget is secret too.
        suite
            .presentation
            .push(roleout_model::suite::VariablePresentation {
                variable: VariableName::new("print_queue").unwrap(),
                label: Default::default(),
                help: Default::default(),
                order: 1,
                widget: Widget::Password,
            });
        assert!(customization_for(&suite, &choice).values.is_empty());
    }
}
