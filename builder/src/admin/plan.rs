//! `plan MACHINE [SUITE]`: what a machine would get and in what order,
//! worked out the way roleoutd and the installer work it out.
//!
//! The machine's direct roles are expanded with their ancestors; the
//! current build of the suite for that role set is taken (rebuilt first if
//! stale, as roleoutd would before serving it); the built suite is
//! resolved for the machine's platform (OS and architecture from its
//! entry), or, when the machine's group chose products, for that choice
//! (Fig. 7), by the rules roleoutd serves with (`crate::delivery`). Each
//! component is one line: its place in the order, product and version, why
//! it is in the plan, and which role's version of each object it gets, from
//! the assembly's provenance; then the values its variables get from the
//! customizations, linkage and defaults (secrets come from the machine's
//! own response file and are never shown).

use std::collections::BTreeMap;

use roleout_directory::Directory;
use roleout_model::ids::{MachineId, SuiteId};
use roleout_model::machine::Machine;
use roleout_model::product::{ProductModel, Provenance};
use roleout_model::resolve::Plan;
use roleout_model::role::{EffectiveRoles, Selected};
use roleout_model::suite::Suite;
use roleout_model::validate::{GivenValues, Validators, resolve_values_partially};
use roleout_model::variable::VariableKind;

use super::{CommandFailed, Output};
use crate::build::Builder;
use crate::delivery::{Customizations, MachineChoice, plan_for};

/// `slot: role` for every object of a product, as `fileset: developer,
/// install: default`.
pub fn provenance_line(provenance: &Provenance) -> String {
    provenance
        .iter()
        .map(|(slot, selected)| {
            let from = match selected {
                Selected::Role(role) => role.as_str(),
                Selected::Default => "default",
            };
            format!("{}: {from}", slot.as_str())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `plan`: writes the plan of `machine` for `suite` (every suite when
/// `None`).
pub async fn plan(
    directory: &Directory,
    machine: &str,
    suite: Option<&str>,
    output: &mut Output<'_>,
) -> Result<(), CommandFailed> {
    let missing = || CommandFailed(format!("no machine {machine:?} in the directory"));
    let name = MachineId::new(machine).map_err(|_| missing())?;
    let entry = directory
        .machine(&name)
        .await
        .map_err(|error| CommandFailed(format!("cannot read machine {name}: {error}")))?
        .ok_or_else(missing)?;
    let direct = directory
        .machine_roles(&entry.dn)
        .await
        .map_err(|error| CommandFailed(format!("cannot read the roles of {name}: {error}")))?;
    let hierarchy = directory
        .roles()
        .await
        .map_err(|error| CommandFailed(format!("cannot read the roles: {error}")))?;
    let roles = hierarchy
        .effective(direct.clone())
        .map_err(|error| CommandFailed(format!("roles of {name}: {error}")))?;
    let suites = match suite {
        Some(suite) => vec![SuiteId::new(suite).map_err(|error| CommandFailed(error.to_string()))?],
        None => directory
            .suite_ids()
            .await
            .map_err(|error| CommandFailed(format!("cannot list the suites: {error}")))?,
    };
    let direct_names: Vec<&str> = direct.iter().map(|role| role.as_str()).collect();
    let platform = match (&entry.machine.os, &entry.machine.arch) {
        (Some(os), Some(arch)) => format!("{os}/{arch}"),
        _ => "unknown (every platform's products are kept)".to_owned(),
    };
    let _ = writeln!(
        output.out,
        "machine {name}: roles {} (role set {}), platform {platform}",
        if direct_names.is_empty() {
            "none".to_owned()
        } else {
            direct_names.join(", ")
        },
        roles.key()
    );
    let customizations = Customizations::read(directory)
        .await
        .map_err(|error| CommandFailed(format!("cannot read the groups: {error}")))?;
    for suite in &suites {
        let choice = customizations.for_machine(&entry.dn, &name, suite);
        plan_suite(directory, &entry.machine, &choice, suite, &roles, output).await?;
    }
    Ok(())
}

/// `name=value` for every variable of `product` as the machine will get
/// it without a response file of its own; secrets are never shown.
fn values_line(built: &Suite, product: &ProductModel, given: &GivenValues) -> String {
    let (values, _) = resolve_values_partially(built, product, given, &Validators::builtin());
    product
        .variables
        .iter()
        .map(|variable| {
            let shown = if variable.kind == VariableKind::Password {
                "(secret: from the machine's response file)".to_owned()
            } else {
                match values.get(&variable.name) {
                    Some(value) => value.to_string(),
                    None if variable.required => {
                        "(missing: the machine's response file must give it)".to_owned()
                    }
                    None => "(unset)".to_owned(),
                }
            };
            format!("{}={shown}", variable.name)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

async fn plan_suite(
    directory: &Directory,
    machine: &Machine,
    choice: &MachineChoice,
    suite: &SuiteId,
    roles: &EffectiveRoles,
    output: &mut Output<'_>,
) -> Result<(), CommandFailed> {
    let build = Builder::new()
        .current(directory, suite, roles)
        .await
        .map_err(|error| CommandFailed(format!("suite {suite}: {error}")))?;
    let built: Suite = serde_json::from_slice(&build.canonical).map_err(|error| {
        CommandFailed(format!(
            "the build of suite {suite} for {} is not a suite: {error}",
            roles.key()
        ))
    })?;
    // Provenance is not part of a build (the build is what machines get);
    // the same assembly from the same sources gives it.
    let assembled = directory
        .assemble_suite(suite, roles)
        .await
        .map_err(|error| CommandFailed(format!("suite {suite}: {error}")))?;
    // The very rules roleoutd serves by (`crate::delivery`).
    let (plan, customization): (Plan, _) =
        plan_for(&built, machine, choice).map_err(|problems| {
            CommandFailed(format!(
                "suite {suite} does not resolve for machine {}: {problems}",
                machine.name
            ))
        })?;
    let choice_text = match (&choice.group, choice.chooses_products(suite)) {
        (Some(group), true) => format!(", products chosen for group {}", group.name),
        _ => String::new(),
    };
    let _ = writeln!(
        output.out,
        "suite {suite} {}: build {} serial {}{choice_text}, {} component(s)",
        built.version,
        &build.digest.as_str()[..12],
        build.serial,
        plan.steps.len()
    );
    if !customization.values.is_empty() {
        let from = match &customization.group {
            Some(group) => format!("suite-wide and group {group}"),
            None => "suite-wide".to_owned(),
        };
        let _ = writeln!(
            output.out,
            "  customized ({from}): {}",
            customization
                .values
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let given = GivenValues {
        suite: customization.values.clone(),
        products: BTreeMap::new(),
    };
    for (position, step) in plan.steps.iter().enumerate() {
        let provenance = assembled
            .product_provenance
            .get(&step.product)
            .map(provenance_line)
            .unwrap_or_default();
        // A product the suite does not name came from the catalog because
        // something in the plan requires it; its reasons say what.
        let pulled = if built.pulled_in.contains(&step.product) {
            "pulled in from the catalog: "
        } else {
            ""
        };
        let _ = writeln!(
            output.out,
            "  {}. {} {}  why: {pulled}{}  versions: {provenance}",
            position + 1,
            step.product,
            step.version,
            plan.why(&step.product).join("; ")
        );
        if let Some(product) = built.products.iter().find(|p| p.id == step.product)
            && !product.variables.is_empty()
        {
            let _ = writeln!(
                output.out,
                "     values: {}",
                values_line(&built, product, &given)
            );
        }
    }
    for left_out in &plan.not_applicable {
        let _ = writeln!(
            output.out,
            "  left out: {}: {}",
            left_out.product, left_out.reason
        );
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use roleout_model::command::Phase;
    use roleout_model::ids::RoleName;
    use roleout_model::product::ProductSlot;

    use super::*;

    #[test]
    fn provenance_names_each_slot_and_its_role() {
        let provenance = Provenance::from([
            (
                ProductSlot::Fileset,
                Selected::Role(RoleName::new("developer").unwrap()),
            ),
            (ProductSlot::Command(Phase::Install), Selected::Default),
        ]);
        assert_eq!(
            provenance_line(&provenance),
            "fileset: developer, install: default"
        );
    }
}
