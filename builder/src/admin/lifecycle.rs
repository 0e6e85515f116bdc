//! `delete product|suite|role|machine|group NAME [--force]`: taking an
//! object out of the directory, never leaving what still uses it broken
//! without saying so.
//!
//! Each kind has its dependents, found before anything is written:
//! - a **product**: the suites that list it (any role version), the products
//!   that require it (prerequisite or co-requisite, any version), the
//!   groups and machines that chose it;
//! - a **suite**: the groups whose products come from it;
//! - a **role**: its child roles, the machines that hold it, and the
//!   product and suite versions tagged for it;
//! - a **machine**: the roles and the group it is a member of;
//! - a **group**: its machines.
//!
//! With dependents the deletion is refused, listing them all, unless
//! `--force`; forced, the references that would break something are taken
//! away first (a product leaves the groups' choices, a suite's groups draw
//! from no suite, a role's children get its parent, a machine leaves its
//! roles and group) and the rest are listed as warnings (a suite that still
//! lists a deleted product fails to build until it is changed). What an
//! object owns goes with it: a suite's customizations and builds, a group's
//! customizations. A product or suite is hidden by one modify before its
//! entries are deleted, as catalog writes are: a deletion cut short never
//! shows half an object. Roleout deletes only machine entries it made
//! itself (in its own `ou=machines`); an organisation's own entry is
//! refused.

use roleout_directory::Directory;
use roleout_directory::groups::{GroupEntry, GroupRecord};
use roleout_model::ids::{GroupName, MachineId, ProductId, RoleName, SuiteId};
use roleout_model::product::ProductSource;
use roleout_model::role::Role;
use roleout_model::suite::SuiteSource;

use super::{CommandFailed, Output};

/// What `delete` deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A product of the catalog.
    Product,
    /// A suite of the catalog.
    Suite,
    /// A role.
    Role,
    /// A machine.
    Machine,
    /// A group of machines.
    Group,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Product => "product",
            Kind::Suite => "suite",
            Kind::Role => "role",
            Kind::Machine => "machine",
            Kind::Group => "group",
        }
    }
}

fn failed(what: &str) -> impl Fn(&dyn std::fmt::Display) -> CommandFailed + '_ {
    move |error| CommandFailed(format!("{what}: {error}"))
}

/// The products `product` requires, in any version of its dependencies.
fn requires(product: &ProductSource, id: &ProductId) -> bool {
    product.dependencies.versions.iter().any(|version| {
        version
            .value
            .prerequisites
            .iter()
            .chain(&version.value.corequisites)
            .any(|requirement| &requirement.product == id)
    })
}

/// What the directory holds that dependents are looked for in.
struct World {
    suites: Vec<SuiteSource>,
    products: Vec<ProductSource>,
    groups: Vec<GroupEntry>,
    roles: Vec<roleout_directory::roles::RoleEntry>,
}

async fn read_world(directory: &Directory) -> Result<World, CommandFailed> {
    let (suites, products) = directory
        .export_catalog()
        .await
        .map_err(|error| failed("cannot read the catalog")(&error))?;
    let groups = directory
        .group_entries()
        .await
        .map_err(|error| failed("cannot read the groups")(&error))?;
    let roles = directory
        .role_entries()
        .await
        .map_err(|error| failed("cannot read the roles")(&error))?;
    Ok(World {
        suites,
        products,
        groups,
        roles,
    })
}

fn name_of(machines: &[roleout_directory::machines::MachineEntry], dn: &str) -> String {
    machines
        .iter()
        .find(|machine| machine.dn.eq_ignore_ascii_case(dn))
        .map_or_else(|| dn.to_owned(), |machine| machine.machine.name.to_string())
}

/// `delete product NAME --version V`: one version of a product; the
/// product itself (dependents checked) when it is the last.
pub async fn delete_release(
    directory: &Directory,
    name: &str,
    version: &str,
    force: bool,
    output: &mut Output<'_>,
) -> Result<(), CommandFailed> {
    let id = ProductId::new(name).map_err(|error| CommandFailed(format!("{name:?}: {error}")))?;
    let version = roleout_model::version::Version::new(version)
        .map_err(|error| CommandFailed(format!("{version:?}: {error}")))?;
    let world = read_world(directory).await?;
    let releases: Vec<&ProductSource> = world
        .products
        .iter()
        .filter(|product| product.id == id)
        .collect();
    if !releases.iter().any(|release| release.version == version) {
        let known: Vec<String> = releases.iter().map(|r| r.version.to_string()).collect();
        return Err(CommandFailed(if known.is_empty() {
            format!("no product {id} in the catalog")
        } else {
            format!(
                "product {id} has no version {version} in the catalog (it has {})",
                known.join(", ")
            )
        }));
    }
    // The last version goes as the product goes: with its dependents
    // checked.
    if releases.len() == 1 {
        return delete(directory, Kind::Product, name, force, output).await;
    }
    directory
        .delete_product_release(&id, &version)
        .await
        .map_err(|error| failed("cannot delete the release")(&error))?;
    let _ = writeln!(
        output.out,
        "deleted version {version} of product {id}; {} version(s) left",
        releases.len() - 1
    );
    Ok(())
}

/// `delete KIND NAME [--force]` (see the module documentation).
pub async fn delete(
    directory: &Directory,
    kind: Kind,
    name: &str,
    force: bool,
    output: &mut Output<'_>,
) -> Result<(), CommandFailed> {
    let usage = |error: &dyn std::fmt::Display| CommandFailed(format!("{name:?}: {error}"));
    let world = read_world(directory).await?;
    let machines = directory
        .machines()
        .await
        .map_err(|error| failed("cannot read the machines")(&error))?;
    let what = format!("{} {name}", kind.as_str());
    // (dependent, whether a forced deletion takes the reference away).
    let mut dependents: Vec<(String, bool)> = Vec::new();
    match kind {
        Kind::Product => {
            let id = ProductId::new(name).map_err(|error| usage(&error))?;
            if !world.products.iter().any(|product| product.id == id) {
                return Err(CommandFailed(format!("no product {id} in the catalog")));
            }
            for suite in &world.suites {
                if suite.members.iter().any(|member| member.product == id) {
                    dependents.push((format!("suite {} lists it", suite.id), false));
                }
            }
            for product in &world.products {
                if product.id != id && requires(product, &id) {
                    dependents.push((format!("product {} requires it", product.id), false));
                }
            }
            for group in &world.groups {
                if group.record.products.contains(&id) {
                    dependents.push((format!("group {} chose it", group.name), true));
                }
                for (machine, chosen) in &group.record.machine_products {
                    if chosen.contains(&id) {
                        dependents.push((format!("machine {machine} chose it"), true));
                    }
                }
            }
        }
        Kind::Suite => {
            let id = SuiteId::new(name).map_err(|error| usage(&error))?;
            if !world.suites.iter().any(|suite| suite.id == id) {
                return Err(CommandFailed(format!("no suite {id} in the catalog")));
            }
            for group in &world.groups {
                if group.record.suite.as_ref() == Some(&id) {
                    dependents.push((
                        format!("group {} draws its products from it", group.name),
                        true,
                    ));
                }
            }
        }
        Kind::Role => {
            let role = RoleName::new(name).map_err(|error| usage(&error))?;
            let Some(entry) = world.roles.iter().find(|entry| entry.role.name == role) else {
                return Err(CommandFailed(format!("no role {role:?} in the directory")));
            };
            for child in &world.roles {
                if child.role.parent.as_ref() == Some(&role) {
                    dependents.push((format!("role {} is its child", child.role.name), true));
                }
            }
            for member in &entry.members {
                dependents.push((
                    format!("machine {} holds it", name_of(&machines, member)),
                    true,
                ));
            }
            for product in &world.products {
                if product.tagged_roles().contains(&role) {
                    dependents.push((format!("product {} has versions for it", product.id), false));
                }
            }
            for suite in &world.suites {
                if suite.tagged_roles().contains(&role) {
                    dependents.push((format!("suite {} has versions for it", suite.id), false));
                }
            }
        }
        Kind::Machine => {
            let id = MachineId::new(name).map_err(|error| usage(&error))?;
            let Some(entry) = machines.iter().find(|machine| machine.machine.name == id) else {
                return Err(CommandFailed(format!("no machine {id:?} in the directory")));
            };
            for role in &world.roles {
                if role.has_member(&entry.dn) {
                    dependents.push((format!("it holds role {}", role.role.name), true));
                }
            }
            for group in &world.groups {
                if group.has_member(&entry.dn) {
                    dependents.push((format!("it is in group {}", group.name), true));
                }
            }
        }
        Kind::Group => {
            let group = GroupName::new(name).map_err(|error| usage(&error))?;
            let Some(entry) = world.groups.iter().find(|entry| entry.name == group) else {
                return Err(CommandFailed(format!(
                    "no group {group:?} in the directory"
                )));
            };
            for member in &entry.record.members {
                dependents.push((
                    format!("machine {} is in it", name_of(&machines, member)),
                    true,
                ));
            }
        }
    }
    if !dependents.is_empty() && !force {
        return Err(CommandFailed(format!(
            "{what} is still used, nothing was deleted (--force deletes it anyway): {}",
            dependents
                .iter()
                .map(|(dependent, _)| dependent.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        )));
    }
    match kind {
        Kind::Product => delete_product(directory, &world, name).await?,
        Kind::Suite => delete_suite(directory, &world, name, output).await?,
        Kind::Role => delete_role(directory, &world, name).await?,
        Kind::Machine => delete_machine(directory, &world, &machines, name).await?,
        Kind::Group => {
            let group = GroupName::new(name).map_err(|error| usage(&error))?;
            directory
                .delete_group(&group)
                .await
                .map_err(|error| failed(&what)(&error))?;
        }
    }
    for (dependent, taken_away) in &dependents {
        let note = if *taken_away {
            "reference taken away"
        } else {
            "still refers to it: change it"
        };
        let _ = writeln!(output.err, "warning: {what}: {dependent} ({note})");
    }
    let _ = writeln!(output.out, "{what} deleted");
    Ok(())
}

async fn put_group(
    directory: &Directory,
    group: &GroupEntry,
    record: &GroupRecord,
) -> Result<(), CommandFailed> {
    directory
        .put_group(&group.name, record)
        .await
        .map(drop)
        .map_err(|error| failed(&format!("cannot change group {}", group.name))(&error))
}

async fn delete_product(
    directory: &Directory,
    world: &World,
    name: &str,
) -> Result<(), CommandFailed> {
    let id = ProductId::new(name).map_err(|error| CommandFailed(error.to_string()))?;
    for group in &world.groups {
        let mut record = group.record.clone();
        record.products.retain(|product| product != &id);
        for chosen in record.machine_products.values_mut() {
            chosen.retain(|product| product != &id);
        }
        record
            .machine_products
            .retain(|_, chosen| !chosen.is_empty());
        if record != group.record {
            put_group(directory, group, &record).await?;
        }
    }
    directory
        .delete_product(&id)
        .await
        .map(drop)
        .map_err(|error| failed(&format!("cannot delete product {id}"))(&error))
}

async fn delete_suite(
    directory: &Directory,
    world: &World,
    name: &str,
    output: &mut Output<'_>,
) -> Result<(), CommandFailed> {
    let id = SuiteId::new(name).map_err(|error| CommandFailed(error.to_string()))?;
    for group in &world.groups {
        if group.record.suite.as_ref() == Some(&id) {
            let mut record = group.record.clone();
            record.suite = None;
            put_group(directory, group, &record).await?;
        }
    }
    // Hidden first: from here on it is not served.
    directory
        .delete_suite(&id)
        .await
        .map_err(|error| failed(&format!("cannot delete suite {id}"))(&error))?;
    let customizations = directory
        .delete_customizations_of(&id)
        .await
        .map_err(|error| failed(&format!("suite {id}: its customizations"))(&error))?;
    let builds = directory
        .builds(Some(&id))
        .await
        .map_err(|error| failed(&format!("suite {id}: its builds"))(&error))?;
    for build in &builds {
        directory
            .delete_build(&id, &build.role_set)
            .await
            .map_err(|error| failed(&format!("suite {id}: build {}", build.role_set))(&error))?;
    }
    let _ = writeln!(
        output.out,
        "suite {id}: {} customization(s) and {} build(s) deleted with it",
        customizations,
        builds.len()
    );
    Ok(())
}

async fn delete_role(
    directory: &Directory,
    world: &World,
    name: &str,
) -> Result<(), CommandFailed> {
    let role = RoleName::new(name).map_err(|error| CommandFailed(error.to_string()))?;
    let parent = world
        .roles
        .iter()
        .find(|entry| entry.role.name == role)
        .and_then(|entry| entry.role.parent.clone());
    // Its children inherit from its parent now, so the hierarchy stays
    // whole.
    for child in &world.roles {
        if child.role.parent.as_ref() == Some(&role) {
            let moved = Role {
                parent: parent.clone(),
                ..child.role.clone()
            };
            directory.update_role(&moved).await.map_err(|error| {
                failed(&format!("cannot move role {}", child.role.name))(&error)
            })?;
        }
    }
    directory
        .delete_role(&role)
        .await
        .map_err(|error| failed(&format!("cannot delete role {role}"))(&error))
}

async fn delete_machine(
    directory: &Directory,
    world: &World,
    machines: &[roleout_directory::machines::MachineEntry],
    name: &str,
) -> Result<(), CommandFailed> {
    let id = MachineId::new(name).map_err(|error| CommandFailed(error.to_string()))?;
    let Some(entry) = machines.iter().find(|machine| machine.machine.name == id) else {
        return Err(CommandFailed(format!("no machine {id:?} in the directory")));
    };
    let own = format!(",{}", directory.layout().machines()).to_ascii_lowercase();
    if !entry.dn.to_ascii_lowercase().ends_with(&own) {
        return Err(CommandFailed(format!(
            "machine {id} is the organisation's own entry {}: Roleout deletes only the entries it made; disable it, or leave it out of the machine search base",
            entry.dn
        )));
    }
    for role in &world.roles {
        if role.has_member(&entry.dn) {
            directory
                .remove_role_member(&role.role.name, &entry.dn)
                .await
                .map_err(|error| {
                    failed(&format!("cannot take {id} out of role {}", role.role.name))(&error)
                })?;
        }
    }
    for group in &world.groups {
        if group.has_member(&entry.dn) {
            let mut record = group.record.clone();
            record.remove_member(&entry.dn);
            record.machine_products.remove(&id);
            put_group(directory, group, &record).await?;
        }
    }
    directory
        .delete_own_machine(&entry.dn)
        .await
        .map_err(|error| failed(&format!("cannot delete machine {id}"))(&error))
}
