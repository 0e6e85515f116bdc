//! Roles as admins manage them: `role create`, `role list`,
//! `role add-member` and `role remove-member`.
//!
//! Members are machines, named by the admin and stored by DN: the machine
//! is looked up first, so a typo in its name is an error rather than a
//! member DN that names nothing.

use roleout_directory::Directory;
use roleout_model::ids::{MachineId, RoleName};
use roleout_model::role::Role;

use super::{CommandFailed, Output};

fn role_name(name: &str) -> Result<RoleName, CommandFailed> {
    RoleName::new(name)
        .map_err(|error| CommandFailed(format!("{name:?} is not a role name: {error}")))
}

/// The DN of machine `name`; one plain line when there is none.
pub(crate) async fn machine_dn(directory: &Directory, name: &str) -> Result<String, CommandFailed> {
    let missing = || CommandFailed(format!("no machine {name:?} in the directory"));
    let id = MachineId::new(name).map_err(|_| missing())?;
    let machine = directory
        .machine(&id)
        .await
        .map_err(|error| CommandFailed(format!("cannot read machine {name}: {error}")))?
        .ok_or_else(missing)?;
    Ok(machine.dn)
}

/// Fails with one plain line when role `name` does not exist.
async fn require_role(directory: &Directory, name: &RoleName) -> Result<(), CommandFailed> {
    let found = directory
        .role(name)
        .await
        .map_err(|error| CommandFailed(format!("cannot read role {name}: {error}")))?;
    match found {
        Some(_) => Ok(()),
        None => Err(CommandFailed(format!("no role {name:?} in the directory"))),
    }
}

/// `role create`: a new role without members.
pub async fn create(
    directory: &Directory,
    name: &str,
    rank: u32,
    parent: Option<&str>,
    description: Option<&str>,
    output: &mut Output<'_>,
) -> Result<(), CommandFailed> {
    let name = role_name(name)?;
    if directory
        .role(&name)
        .await
        .map_err(|error| CommandFailed(format!("cannot read role {name}: {error}")))?
        .is_some()
    {
        return Err(CommandFailed(format!("role {name} exists already")));
    }
    let parent = parent.map(role_name).transpose()?;
    if let Some(parent) = &parent {
        require_role(directory, parent).await.map_err(|_| {
            CommandFailed(format!(
                "role {name}: no parent role {parent:?} in the directory"
            ))
        })?;
    }
    let role = Role {
        name: name.clone(),
        rank,
        parent,
        description: description.map(str::to_owned),
    };
    let dn = directory
        .create_role(&role)
        .await
        .map_err(|error| CommandFailed(format!("cannot create role {name}: {error}")))?;
    let _ = writeln!(output.out, "role {name} created ({dn})");
    Ok(())
}

/// What `role edit` does to a role's parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParentChange<'a> {
    /// Leave it.
    Keep,
    /// Make it this role.
    Set(&'a str),
    /// Take it away.
    Remove,
}

/// `role edit`: a new rank, parent or description for an existing role.
/// A parent that does not exist, or that would make the parents a cycle,
/// is refused before anything is written. Builds made with the old rank
/// are stale from now on (the build records the ranks of its role set);
/// machines whose role set changed with the parent get their own build.
pub async fn edit(
    directory: &Directory,
    name: &str,
    rank: Option<u32>,
    parent: ParentChange<'_>,
    description: Option<&str>,
    output: &mut Output<'_>,
) -> Result<(), CommandFailed> {
    let name = role_name(name)?;
    let read_failed =
        |error: &dyn std::fmt::Display| CommandFailed(format!("cannot read the roles: {error}"));
    let hierarchy = directory
        .roles()
        .await
        .map_err(|error| read_failed(&error))?;
    let Some(before) = hierarchy.get(&name).cloned() else {
        return Err(CommandFailed(format!("no role {name:?} in the directory")));
    };
    let mut after = before.clone();
    if let Some(rank) = rank {
        after.rank = rank;
    }
    match parent {
        ParentChange::Keep => {}
        ParentChange::Remove => after.parent = None,
        ParentChange::Set(parent) => {
            let parent = role_name(parent)?;
            if hierarchy.get(&parent).is_none() {
                return Err(CommandFailed(format!(
                    "role {name}: no parent role {parent:?} in the directory"
                )));
            }
            // Walk up from the new parent: meeting this role is a cycle.
            let mut path = vec![name.to_string(), parent.to_string()];
            let mut current = Some(parent.clone());
            while let Some(role) = current {
                if role == name {
                    return Err(CommandFailed(format!(
                        "role {name}: parent {parent} would make the parents a cycle: {}",
                        path.join(" -> ")
                    )));
                }
                current = hierarchy.get(&role).and_then(|role| role.parent.clone());
                if let Some(next) = &current {
                    path.push(next.to_string());
                }
            }
            after.parent = Some(parent);
        }
    }
    if let Some(description) = description {
        after.description = (!description.is_empty()).then(|| description.to_owned());
    }
    if after == before {
        let _ = writeln!(output.out, "role {name}: unchanged");
        return Ok(());
    }
    directory
        .update_role(&after)
        .await
        .map_err(|error| CommandFailed(format!("cannot change role {name}: {error}")))?;
    let shown = |parent: &Option<RoleName>| {
        parent
            .as_ref()
            .map_or_else(|| "none".to_owned(), ToString::to_string)
    };
    let _ = writeln!(
        output.out,
        "role {name}: rank {} -> {}, parent {} -> {}",
        before.rank,
        after.rank,
        shown(&before.parent),
        shown(&after.parent)
    );
    Ok(())
}

/// `role list`: every role with rank, parent and member count.
pub async fn list(directory: &Directory, output: &mut Output<'_>) -> Result<(), CommandFailed> {
    let mut roles = directory
        .role_entries()
        .await
        .map_err(|error| CommandFailed(format!("cannot read the roles: {error}")))?;
    roles.sort_by(|a, b| a.role.name.cmp(&b.role.name));
    for entry in roles {
        let parent = entry
            .role
            .parent
            .as_ref()
            .map(|parent| format!("  parent {parent}"))
            .unwrap_or_default();
        let description = entry
            .role
            .description
            .as_ref()
            .map(|text| format!("  {text}"))
            .unwrap_or_default();
        let _ = writeln!(
            output.out,
            "{}  rank {}{parent}  {} member(s){description}",
            entry.role.name,
            entry.role.rank,
            entry.members.len()
        );
    }
    Ok(())
}

/// `role add-member`: makes machine `machine` a member of `role`.
pub async fn add_member(
    directory: &Directory,
    role: &str,
    machine: &str,
    output: &mut Output<'_>,
) -> Result<(), CommandFailed> {
    let name = role_name(role)?;
    require_role(directory, &name).await?;
    let dn = machine_dn(directory, machine).await?;
    directory
        .add_role_member(&name, &dn)
        .await
        .map_err(|error| CommandFailed(format!("cannot add {machine} to role {name}: {error}")))?;
    let _ = writeln!(output.out, "machine {machine} is a member of role {name}");
    Ok(())
}

/// `role remove-member`: takes machine `machine` out of `role`.
pub async fn remove_member(
    directory: &Directory,
    role: &str,
    machine: &str,
    output: &mut Output<'_>,
) -> Result<(), CommandFailed> {
    let name = role_name(role)?;
    require_role(directory, &name).await?;
    let dn = machine_dn(directory, machine).await?;
    directory
        .remove_role_member(&name, &dn)
        .await
        .map_err(|error| {
            CommandFailed(format!("cannot remove {machine} from role {name}: {error}"))
        })?;
    let _ = writeln!(
        output.out,
        "machine {machine} is not a member of role {name}"
    );
    Ok(())
}
