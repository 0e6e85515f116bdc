//! `plan MACHINE [SUITE]`: what a machine would get and in what order,
//! worked out the way roleoutd and the installer work it out.
//!
//! The machine's direct roles are expanded with their ancestors; the
//! current build of the suite for that role set is taken (rebuilt first if
//! stale, as roleoutd would before serving it); the built suite is
//! resolved for the machine's platform (OS and architecture from its
//! entry), or, when the machine's group chose products, for that choice
//! (Fig. 7). Each component is one line: its place in the order, product
//! and version, why it is in the plan, and which role's version of each
//! object it gets, from the assembly's provenance.

use roleout_directory::Directory;
use roleout_model::ids::{MachineId, ProductId, SuiteId};
use roleout_model::machine::Group;
use roleout_model::product::Provenance;
use roleout_model::resolve::{Plan, resolve_machine, resolve_suite};
use roleout_model::role::{EffectiveRoles, Selected};
use roleout_model::suite::Suite;

use super::{CommandFailed, Output};
use crate::build::Builder;

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
    let group = machine_group(directory, &entry.dn, &name).await?;
    let mut machine = entry.machine.clone();
    if let Some((_, own)) = &group {
        machine.products = own.clone();
    }
    for suite in &suites {
        let group = group.as_ref().map(|(group, _)| group);
        plan_suite(directory, &machine, group, suite, &roles, output).await?;
    }
    Ok(())
}

/// The group of the machine at `dn`, in the model's form, with the
/// products chosen for this machine alone, if it is in one.
async fn machine_group(
    directory: &Directory,
    dn: &str,
    name: &MachineId,
) -> Result<Option<(Group, Vec<ProductId>)>, CommandFailed> {
    Ok(crate::admin::groups::group_entry_of(directory, dn)
        .await?
        .map(|entry| {
            let own = entry
                .record
                .machine_products
                .get(name)
                .cloned()
                .unwrap_or_default();
            let group = Group {
                name: entry.name,
                suite: entry.record.suite,
                products: entry.record.products,
                machines: Vec::new(),
            };
            (group, own)
        }))
}

async fn plan_suite(
    directory: &Directory,
    machine: &roleout_model::machine::Machine,
    group: Option<&Group>,
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
    // The group's choice applies when it is for this suite (or names none)
    // and chose something; otherwise the machine gets the whole suite.
    let group_applies = group.filter(|group| {
        group.suite.as_ref().is_none_or(|wanted| wanted == suite)
            && (!group.products.is_empty() || !machine.products.is_empty())
    });
    let platform = match (&machine.os, &machine.arch) {
        (Some(os), Some(arch)) => Some((os.as_str(), arch.as_str())),
        _ => None,
    };
    let resolved = match group_applies {
        Some(group) => resolve_machine(&built, Some(group), machine),
        None => resolve_suite(&built, platform),
    };
    let plan: Plan = resolved.map_err(|errors| {
        CommandFailed(format!(
            "suite {suite} does not resolve for machine {}: {}",
            machine.name,
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ))
    })?;
    let choice = match group_applies {
        Some(group) => format!(", products chosen for group {}", group.name),
        None => String::new(),
    };
    let _ = writeln!(
        output.out,
        "suite {suite} {}: build {} serial {}{choice}, {} component(s)",
        built.version,
        &build.digest.as_str()[..12],
        build.serial,
        plan.steps.len()
    );
    for (position, step) in plan.steps.iter().enumerate() {
        let provenance = assembled
            .product_provenance
            .get(&step.product)
            .map(provenance_line)
            .unwrap_or_default();
        let _ = writeln!(
            output.out,
            "  {}. {} {}  why: {}  versions: {provenance}",
            position + 1,
            step.product,
            step.version,
            plan.why(&step.product).join("; ")
        );
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
