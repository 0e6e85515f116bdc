//! Machine groups as admins manage them (Fig. 7): `group create`,
//! `group add-machine`, `group choose`, `group list`, and `group export` /
//! `group import` to and from the `.ini` form of the model's [`Groups`].
//!
//! A group names its machines by their directory entries, so the `.ini`
//! file's machine sections (IP address, OS, architecture, facts) are read
//! from those entries on export. On import, a machine without an entry
//! gets one with the file's facts; a machine that has one keeps it as it
//! is (the entry is the record the machine itself keeps up to date).
//!
//! Import is all or nothing: the whole file is read and checked first
//! (syntax, suites and products in the catalog, each machine in one group
//! only), and when a write fails half-way, what was written is undone.

use std::collections::BTreeMap;
use std::path::Path;

use roleout_directory::Directory;
use roleout_directory::catalog::CatalogError;
use roleout_directory::groups::{GroupEntry, GroupRecord};
use roleout_model::ids::{GroupName, MachineId, ProductId, SuiteId};
use roleout_model::machine::{Group, Groups, Machine};

use super::{CommandFailed, Output};

fn group_name(name: &str) -> Result<GroupName, CommandFailed> {
    GroupName::new(name).map_err(|error| CommandFailed(error.to_string()))
}

async fn existing_group(
    directory: &Directory,
    name: &GroupName,
) -> Result<GroupEntry, CommandFailed> {
    directory
        .group(name)
        .await
        .map_err(|error| CommandFailed(format!("cannot read group {name}: {error}")))?
        .ok_or_else(|| {
            CommandFailed(format!(
                "no group {name} in the directory (see `group list`)"
            ))
        })
}

/// Fails unless the catalog holds suite `suite`.
async fn require_suite(directory: &Directory, suite: &SuiteId) -> Result<(), CommandFailed> {
    match directory.load_suite(suite).await {
        Ok(_) => Ok(()),
        Err(CatalogError::NotFound { .. }) => Err(CommandFailed(format!(
            "no suite {suite} in the catalog (import it first)"
        ))),
        Err(error) => Err(CommandFailed(format!("cannot read suite {suite}: {error}"))),
    }
}

/// Fails unless every product is in the catalog and, when the group has a
/// suite, a member of it.
async fn check_products(
    directory: &Directory,
    context: &str,
    suite: Option<&SuiteId>,
    products: &[ProductId],
) -> Result<(), CommandFailed> {
    let members: Option<Vec<ProductId>> = match suite {
        Some(suite) => Some(
            directory
                .load_suite(suite)
                .await
                .map_err(|error| CommandFailed(format!("{context}: suite {suite}: {error}")))?
                .members
                .into_iter()
                .map(|member| member.product)
                .collect(),
        ),
        None => None,
    };
    for product in products {
        match (&members, suite) {
            (Some(members), Some(suite)) if !members.contains(product) => {
                return Err(CommandFailed(format!(
                    "{context}: product {product} is not a member of suite {suite} (members: {})",
                    members
                        .iter()
                        .map(ProductId::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            _ => {}
        }
        match directory.load_product(product).await {
            Ok(_) => {}
            Err(CatalogError::NotFound { .. }) => {
                return Err(CommandFailed(format!(
                    "{context}: no product {product} in the catalog"
                )));
            }
            Err(error) => return Err(CommandFailed(format!("{context}: {error}"))),
        }
    }
    Ok(())
}

/// `group create`: a new, empty group, optionally drawing from `suite`.
pub async fn create(
    directory: &Directory,
    name: &str,
    suite: Option<&str>,
    output: &mut Output<'_>,
) -> Result<(), CommandFailed> {
    let name = group_name(name)?;
    if directory
        .group(&name)
        .await
        .map_err(|error| CommandFailed(format!("cannot read group {name}: {error}")))?
        .is_some()
    {
        return Err(CommandFailed(format!("group {name} exists already")));
    }
    let suite = suite
        .map(SuiteId::new)
        .transpose()
        .map_err(|error| CommandFailed(error.to_string()))?;
    if let Some(suite) = &suite {
        require_suite(directory, suite).await?;
    }
    let record = GroupRecord {
        suite,
        ..GroupRecord::default()
    };
    let dn = directory
        .put_group(&name, &record)
        .await
        .map_err(|error| CommandFailed(format!("cannot create group {name}: {error}")))?;
    let _ = writeln!(output.out, "group {name} created ({dn})");
    Ok(())
}

/// `group add-machine`: makes `machine` (which must have an entry) a
/// member of group `group`.
pub async fn add_machine(
    directory: &Directory,
    group: &str,
    machine: &str,
    output: &mut Output<'_>,
) -> Result<(), CommandFailed> {
    let name = group_name(group)?;
    let mut entry = existing_group(directory, &name).await?;
    let missing = || CommandFailed(format!("no machine {machine:?} in the directory"));
    let id = MachineId::new(machine).map_err(|_| missing())?;
    let machine_entry = directory
        .machine(&id)
        .await
        .map_err(|error| CommandFailed(format!("cannot read machine {id}: {error}")))?
        .ok_or_else(missing)?;
    if let Some(other) = group_of(directory, &machine_entry.dn).await? {
        if other != name {
            return Err(CommandFailed(format!(
                "machine {id} is in group {other} already; a machine is in one group"
            )));
        }
        let _ = writeln!(output.out, "machine {id} is in group {name} already");
        return Ok(());
    }
    entry.record.members.push(machine_entry.dn);
    directory
        .put_group(&name, &entry.record)
        .await
        .map_err(|error| CommandFailed(format!("cannot add {id} to group {name}: {error}")))?;
    let _ = writeln!(output.out, "machine {id} is in group {name}");
    Ok(())
}

/// The group whose members include the entry `dn`, if any.
pub async fn group_of(directory: &Directory, dn: &str) -> Result<Option<GroupName>, CommandFailed> {
    Ok(group_entry_of(directory, dn).await?.map(|group| group.name))
}

/// The entry of the group whose members include the entry `dn`, if any.
pub async fn group_entry_of(
    directory: &Directory,
    dn: &str,
) -> Result<Option<GroupEntry>, CommandFailed> {
    let groups = directory
        .group_entries()
        .await
        .map_err(|error| CommandFailed(format!("cannot read the groups: {error}")))?;
    Ok(groups.into_iter().find(|group| group.has_member(dn)))
}

/// `group choose`: the products chosen for group `group`, replacing its
/// earlier choice; each must be in the catalog (and in the group's suite).
pub async fn choose(
    directory: &Directory,
    group: &str,
    products: &[String],
    output: &mut Output<'_>,
) -> Result<(), CommandFailed> {
    let name = group_name(group)?;
    let mut entry = existing_group(directory, &name).await?;
    let mut chosen = Vec::new();
    for product in products {
        let id =
            ProductId::new(product.as_str()).map_err(|error| CommandFailed(error.to_string()))?;
        if !chosen.contains(&id) {
            chosen.push(id);
        }
    }
    check_products(
        directory,
        &format!("group {name}"),
        entry.record.suite.as_ref(),
        &chosen,
    )
    .await?;
    entry.record.products = chosen;
    directory
        .put_group(&name, &entry.record)
        .await
        .map_err(|error| CommandFailed(format!("cannot update group {name}: {error}")))?;
    let _ = writeln!(
        output.out,
        "group {name}: products {}",
        product_list(&entry.record.products)
    );
    Ok(())
}

fn product_list(products: &[ProductId]) -> String {
    if products.is_empty() {
        "(none)".to_owned()
    } else {
        products
            .iter()
            .map(ProductId::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The `cn` of a member DN, for listings.
fn member_name(dn: &str) -> &str {
    dn.split(',')
        .next()
        .and_then(|rdn| rdn.split_once('='))
        .map(|(_, value)| value)
        .unwrap_or(dn)
}

/// `group list`: every group with its suite, products and machines.
pub async fn list(directory: &Directory, output: &mut Output<'_>) -> Result<(), CommandFailed> {
    let groups = directory
        .group_entries()
        .await
        .map_err(|error| CommandFailed(format!("cannot read the groups: {error}")))?;
    if groups.is_empty() {
        let _ = writeln!(output.err, "no groups yet: `group create NAME` makes one");
    }
    for group in groups {
        let suite = group
            .record
            .suite
            .as_ref()
            .map(|suite| format!("  suite {suite}"))
            .unwrap_or_default();
        let machines: Vec<&str> = group
            .record
            .members
            .iter()
            .map(|dn| member_name(dn))
            .collect();
        let _ = writeln!(
            output.out,
            "{}{suite}  products: {}  machines: {}",
            group.name,
            product_list(&group.record.products),
            if machines.is_empty() {
                "(none)".to_owned()
            } else {
                machines.join(", ")
            }
        );
    }
    Ok(())
}

/// Every group as the model's [`Groups`], machines read from their entries.
pub async fn read_groups(directory: &Directory) -> Result<Groups, CommandFailed> {
    let entries = directory
        .group_entries()
        .await
        .map_err(|error| CommandFailed(format!("cannot read the groups: {error}")))?;
    let mut groups = Vec::with_capacity(entries.len());
    for entry in entries {
        let mut machines = Vec::new();
        for dn in &entry.record.members {
            let Some(machine_entry) = directory
                .machine_at(dn)
                .await
                .map_err(|error| CommandFailed(format!("group {}: {error}", entry.name)))?
            else {
                return Err(CommandFailed(format!(
                    "group {} names the member {dn}, which is not in the directory",
                    entry.name
                )));
            };
            let mut machine = machine_entry.machine;
            machine.products = entry
                .record
                .machine_products
                .get(&machine.name)
                .cloned()
                .unwrap_or_default();
            machines.push(machine);
        }
        groups.push(Group {
            name: entry.name,
            suite: entry.record.suite,
            products: entry.record.products,
            machines,
        });
    }
    Ok(Groups { groups })
}

/// `group export`: writes every group to `file` as `.ini`.
pub async fn export(
    directory: &Directory,
    file: &Path,
    output: &mut Output<'_>,
) -> Result<(), CommandFailed> {
    let groups = read_groups(directory).await?;
    let text = groups
        .to_ini()
        .map_err(|error| CommandFailed(format!("cannot write the groups as .ini: {error}")))?;
    std::fs::write(file, text)
        .map_err(|error| CommandFailed(format!("cannot write {}: {error}", file.display())))?;
    let machines: usize = groups.groups.iter().map(|group| group.machines.len()).sum();
    let _ = writeln!(
        output.out,
        "wrote {} group(s) with {machines} machine(s) to {}",
        groups.groups.len(),
        file.display()
    );
    Ok(())
}

/// What an import wrote, so a failed import can take it back.
#[derive(Default)]
struct Written {
    machines: Vec<String>,
    created_groups: Vec<GroupName>,
    replaced_groups: Vec<(GroupName, GroupRecord)>,
}

/// `group import`: reads `file` (`.ini`) and stores every group in it,
/// creating machines that have no entry; all or nothing.
pub async fn import(
    directory: &Directory,
    file: &Path,
    output: &mut Output<'_>,
) -> Result<(), CommandFailed> {
    let text = std::fs::read_to_string(file)
        .map_err(|error| CommandFailed(format!("cannot read {}: {error}", file.display())))?;
    let groups = Groups::from_ini(&file.display().to_string(), &text)
        .map_err(|error| CommandFailed(error.to_string()))?;
    // Check everything before writing anything.
    let mut seen: BTreeMap<&MachineId, &GroupName> = BTreeMap::new();
    for group in &groups.groups {
        let context = format!("{}: group {}", file.display(), group.name);
        if let Some(suite) = &group.suite {
            require_suite(directory, suite)
                .await
                .map_err(|error| CommandFailed(format!("{context}: {error}")))?;
        }
        check_products(directory, &context, group.suite.as_ref(), &group.products).await?;
        for machine in &group.machines {
            if let Some(first) = seen.insert(&machine.name, &group.name) {
                return Err(CommandFailed(format!(
                    "{}: machine {} is in group {first} and in group {}; a machine is in one group",
                    file.display(),
                    machine.name,
                    group.name
                )));
            }
            check_products(
                directory,
                &format!("{context}: machine {}", machine.name),
                group.suite.as_ref(),
                &machine.products,
            )
            .await?;
        }
    }
    let mut written = Written::default();
    match write_groups(directory, &groups, &mut written).await {
        Ok(created) => {
            let machines: usize = groups.groups.iter().map(|group| group.machines.len()).sum();
            let _ = writeln!(
                output.out,
                "imported {} group(s) with {machines} machine(s) from {} ({created} machine entr{} created)",
                groups.groups.len(),
                file.display(),
                if created == 1 { "y" } else { "ies" }
            );
            Ok(())
        }
        Err(error) => {
            let undo = undo(directory, written).await;
            let undone = match undo {
                Ok(()) => "nothing was kept".to_owned(),
                Err(problem) => format!("undoing it failed too: {problem}"),
            };
            Err(CommandFailed(format!(
                "{}: {error}; {undone}",
                file.display()
            )))
        }
    }
}

/// Writes `groups`, recording each write in `written`; returns how many
/// machine entries were created.
async fn write_groups(
    directory: &Directory,
    groups: &Groups,
    written: &mut Written,
) -> Result<usize, CommandFailed> {
    let mut created = 0;
    for group in &groups.groups {
        let mut record = GroupRecord {
            suite: group.suite.clone(),
            products: group.products.clone(),
            ..GroupRecord::default()
        };
        for machine in &group.machines {
            let found = directory
                .machine(&machine.name)
                .await
                .map_err(|error| CommandFailed(format!("machine {}: {error}", machine.name)))?;
            let dn = match found {
                Some(entry) => entry.dn,
                None => {
                    let bare = Machine {
                        products: Vec::new(),
                        ..machine.clone()
                    };
                    let dn = directory.create_machine(&bare).await.map_err(|error| {
                        CommandFailed(format!("machine {}: {error}", machine.name))
                    })?;
                    written.machines.push(dn.clone());
                    created += 1;
                    dn
                }
            };
            record.members.push(dn);
            if !machine.products.is_empty() {
                record
                    .machine_products
                    .insert(machine.name.clone(), machine.products.clone());
            }
        }
        let before = directory
            .group(&group.name)
            .await
            .map_err(|error| CommandFailed(format!("group {}: {error}", group.name)))?;
        directory
            .put_group(&group.name, &record)
            .await
            .map_err(|error| CommandFailed(format!("group {}: {error}", group.name)))?;
        match before {
            Some(before) => written
                .replaced_groups
                .push((group.name.clone(), before.record)),
            None => written.created_groups.push(group.name.clone()),
        }
    }
    Ok(created)
}

/// Takes back what a failed import wrote.
async fn undo(directory: &Directory, written: Written) -> Result<(), String> {
    for (name, record) in written.replaced_groups {
        directory
            .put_group(&name, &record)
            .await
            .map_err(|error| error.to_string())?;
    }
    for name in written.created_groups {
        directory
            .delete_group(&name)
            .await
            .map_err(|error| error.to_string())?;
    }
    for dn in written.machines {
        directory
            .delete_own_machine(&dn)
            .await
            .map_err(|error| error.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_list_by_name() {
        assert_eq!(
            member_name("cn=ws-001,ou=machines,ou=roleout,dc=example,dc=org"),
            "ws-001"
        );
        assert_eq!(member_name("odd"), "odd");
        assert_eq!(product_list(&[]), "(none)");
    }
}
