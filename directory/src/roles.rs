//! Roles in the directory: `groupOfNames` entries with the `roleoutRole`
//! auxiliary class, whose members are machine entries.
//!
//! Roles are found with the role search base and filter of the settings, so
//! an organisation's existing groups can serve as roles; new roles are made
//! under that base. The rank (`roleoutRank`, 0 when absent) and the parent
//! (`roleoutParentRole`, a DN) come from Roleout's schema; the name is the
//! group's `cn`.
//!
//! `groupOfNames` requires at least one `member`. A role without machines
//! therefore lists its own DN as its only member: a placeholder that is
//! written when the last real member goes, removed when the first one comes,
//! and never reported by [`RoleEntry::members`]. Tools reading the
//! directory directly see it; it names no machine, so it grants nothing.

use std::collections::{BTreeMap, HashSet};

use ldap3::{Mod, Scope, SearchEntry};
use roleout_model::ids::RoleName;
use roleout_model::role::{Role, RoleHierarchy};
use tracing::instrument;

use crate::connection::{Directory, EntryValues};
use crate::error::{DirectoryError, Result, result_code};
use crate::escape;

/// The attributes read for a role.
const ROLE_ATTRIBUTES: &[&str] = &[
    "cn",
    "description",
    "member",
    "roleoutRank",
    "roleoutParentRole",
];

/// A role as stored: its entry's DN, the role, and its member DNs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleEntry {
    /// The role entry's DN.
    pub dn: String,
    /// The role.
    pub role: Role,
    /// The DNs of its members (machine entries), without the placeholder.
    pub members: Vec<String>,
}

impl RoleEntry {
    /// Whether the entry at `dn` holds the role.
    pub fn has_member(&self, dn: &str) -> bool {
        self.members.iter().any(|member| same_dn(member, dn))
    }
}

/// DNs compare without regard to case here; the server's own comparison
/// (distinguishedNameMatch) is used wherever a filter can do it instead.
pub fn same_dn(first: &str, second: &str) -> bool {
    normalize_dn(first) == normalize_dn(second)
}

fn normalize_dn(dn: &str) -> String {
    dn.split(',')
        .map(|rdn| rdn.trim().to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(",")
}

fn text_set(values: impl IntoIterator<Item = impl Into<String>>) -> HashSet<String> {
    values.into_iter().map(Into::into).collect()
}

impl Directory {
    /// The members of the group at `dn` (`member` and `uniqueMember`
    /// values, as stored), or `None` when there is no such entry.
    #[instrument(skip(self))]
    pub async fn group_members(&self, dn: &str) -> Result<Option<Vec<String>>> {
        let Some(entry) = self.read(dn, &["member", "uniqueMember"]).await? else {
            return Ok(None);
        };
        let mut members = Vec::new();
        for (name, values) in &entry.attrs {
            if name.eq_ignore_ascii_case("member") || name.eq_ignore_ascii_case("uniqueMember") {
                members.extend(values.iter().cloned());
            }
        }
        Ok(Some(members))
    }

    /// Every role with its members: one search of the role base.
    #[instrument(skip(self))]
    pub async fn role_entries(&self) -> Result<Vec<RoleEntry>> {
        self.role_entries_reading(ROLE_ATTRIBUTES).await
    }

    /// Every role, reading `attributes` of each: with `member` or without
    /// (then every entry's members are empty).
    async fn role_entries_reading(&self, attributes: &[&str]) -> Result<Vec<RoleEntry>> {
        let layout = self.layout();
        let entries = self
            .search(
                layout.roles(),
                Scope::Subtree,
                layout.role_filter(),
                attributes,
            )
            .await?;
        let mut names = BTreeMap::new();
        for entry in &entries {
            names.insert(normalize_dn(&entry.dn), role_name(entry)?);
        }
        let mut roles = Vec::with_capacity(entries.len());
        for entry in &entries {
            roles.push(role_entry(entry, &names)?);
        }
        Ok(roles)
    }

    /// Every role, as the model's hierarchy: one search, which leaves the
    /// members out (a role of a whole fleet has a member value per
    /// machine, and the hierarchy needs none of them).
    pub async fn roles(&self) -> Result<RoleHierarchy> {
        let without_members: Vec<&str> = ROLE_ATTRIBUTES
            .iter()
            .copied()
            .filter(|attribute| *attribute != "member")
            .collect();
        let entries = self.role_entries_reading(&without_members).await?;
        Ok(RoleHierarchy::new(
            entries.into_iter().map(|entry| entry.role),
        ))
    }

    /// The role called `name`, or `None`.
    pub async fn role(&self, name: &RoleName) -> Result<Option<RoleEntry>> {
        let entries = self.role_entries().await?;
        Ok(entries.into_iter().find(|entry| entry.role.name == *name))
    }

    /// Finds the entry of role `name`: one search.
    async fn find_role(&self, name: &RoleName) -> Result<SearchEntry> {
        let layout = self.layout();
        let filter = escape::and([layout.role_filter(), &escape::equality("cn", name.as_str())]);
        let entries = self
            .search(layout.roles(), Scope::Subtree, &filter, &["member"])
            .await?;
        entries
            .into_iter()
            .next()
            .ok_or_else(|| DirectoryError::NotFound {
                what: "role",
                name: name.to_string(),
                searched: format!("{} with {filter}", layout.roles()),
            })
    }

    /// Creates `role` under the role base, without members; its parent must
    /// exist. Returns the new entry's DN.
    #[instrument(skip(self, role), fields(role = %role.name))]
    pub async fn create_role(&self, role: &Role) -> Result<String> {
        let dn = self.layout().role_dn(&role.name);
        let mut attributes = vec![
            (
                "objectClass".to_owned(),
                text_set(["groupOfNames", "roleoutRole"]),
            ),
            ("cn".to_owned(), text_set([role.name.as_str()])),
            ("member".to_owned(), text_set([dn.as_str()])),
            ("roleoutRank".to_owned(), text_set([role.rank.to_string()])),
        ];
        if let Some(parent) = &role.parent {
            let parent = self.find_role(parent).await?;
            attributes.push(("roleoutParentRole".to_owned(), text_set([parent.dn])));
        }
        if let Some(description) = role.description.as_deref().filter(|text| !text.is_empty()) {
            attributes.push(("description".to_owned(), text_set([description])));
        }
        self.add(&dn, attributes).await?;
        Ok(dn)
    }

    /// Changes the rank, parent and description of an existing role to
    /// those of `role`.
    #[instrument(skip(self, role), fields(role = %role.name))]
    pub async fn update_role(&self, role: &Role) -> Result<()> {
        let entry = self.find_role(&role.name).await?;
        let parent = match &role.parent {
            Some(parent) => text_set([self.find_role(parent).await?.dn]),
            None => HashSet::new(),
        };
        let description = role
            .description
            .as_deref()
            .filter(|text| !text.is_empty())
            .map(|text| text_set([text]))
            .unwrap_or_default();
        let modifications = vec![
            Mod::Replace("roleoutRank".to_owned(), text_set([role.rank.to_string()])),
            Mod::Replace("roleoutParentRole".to_owned(), parent),
            Mod::Replace("description".to_owned(), description),
        ];
        self.modify(&entry.dn, modifications).await
    }

    /// Deletes the role `name`.
    #[instrument(skip(self))]
    pub async fn delete_role(&self, name: &RoleName) -> Result<()> {
        let entry = self.find_role(name).await?;
        self.delete(&entry.dn).await
    }

    /// Makes `member_dn` a member of role `name`; nothing changes when it is
    /// one already.
    #[instrument(skip(self))]
    pub async fn add_role_member(&self, name: &RoleName, member_dn: &str) -> Result<()> {
        self.change_members(|| async {
            let entry = self.find_role(name).await?;
            let members = entry.texts("member");
            if members.iter().any(|member| same_dn(member, member_dn)) {
                return Ok(());
            }
            let mut modifications = vec![Mod::Add("member".to_owned(), text_set([member_dn]))];
            if let Some(placeholder) = members.iter().find(|member| same_dn(member, &entry.dn)) {
                modifications.push(Mod::Delete("member".to_owned(), text_set([*placeholder])));
            }
            self.modify(&entry.dn, modifications).await
        })
        .await
    }

    /// Removes `member_dn` from role `name`; nothing changes when it is not
    /// a member. The last member is replaced by the placeholder.
    #[instrument(skip(self))]
    pub async fn remove_role_member(&self, name: &RoleName, member_dn: &str) -> Result<()> {
        self.change_members(|| async {
            let entry = self.find_role(name).await?;
            if same_dn(member_dn, &entry.dn) {
                // The placeholder is not a member; it stays until a machine comes.
                return Ok(());
            }
            let members = entry.texts("member");
            let Some(stored) = members.iter().find(|member| same_dn(member, member_dn)) else {
                return Ok(());
            };
            let mut modifications = Vec::new();
            if members.len() == 1 {
                modifications.push(Mod::Add("member".to_owned(), text_set([entry.dn.as_str()])));
            }
            modifications.push(Mod::Delete("member".to_owned(), text_set([*stored])));
            self.modify(&entry.dn, modifications).await
        })
        .await
    }

    /// Runs `change` (read the members, then modify them) again when
    /// another writer changed the same members between its read and its
    /// modify: two machines joining an empty role at once both try to
    /// delete the placeholder, and the second is refused with
    /// noSuchAttribute; two leaving its last two members each delete their
    /// own, and the second would leave the group empty (objectClassViolation);
    /// two leaving its last member both add the placeholder, and the second
    /// gets attributeOrValueExists. Read again, the change is right (or
    /// already made).
    async fn change_members<F, Fut>(&self, change: F) -> Result<()>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        // Only the placeholder's comings and goings conflict, and each
        // conflict means another writer succeeded: a few tries suffice.
        const ATTEMPTS: usize = 16;
        let mut attempt = 1;
        loop {
            match change().await {
                Err(error)
                    if attempt < ATTEMPTS
                        && matches!(
                            error.ldap_code(),
                            Some(
                                result_code::NO_SUCH_ATTRIBUTE
                                    | result_code::ATTRIBUTE_OR_VALUE_EXISTS
                                    | result_code::OBJECT_CLASS_VIOLATION
                            )
                        ) =>
                {
                    attempt += 1;
                }
                outcome => return outcome,
            }
        }
    }

    /// The roles the entry `machine_dn` is a direct member of (inheritance
    /// is the model's business), sorted: one search.
    #[instrument(skip(self))]
    pub async fn machine_roles(&self, machine_dn: &str) -> Result<Vec<RoleName>> {
        let layout = self.layout();
        let filter = escape::and([
            layout.role_filter(),
            &escape::equality("member", machine_dn),
        ]);
        let entries = self
            .search(layout.roles(), Scope::Subtree, &filter, &["cn"])
            .await?;
        let mut names = entries.iter().map(role_name).collect::<Result<Vec<_>>>()?;
        names.sort();
        Ok(names)
    }
}

fn role_name(entry: &SearchEntry) -> Result<RoleName> {
    let cn = entry.text("cn").ok_or_else(|| DirectoryError::Mapping {
        dn: entry.dn.clone(),
        attribute: "cn".to_owned(),
        message: "a role needs a cn (its name)".to_owned(),
    })?;
    RoleName::new(cn).map_err(|error| DirectoryError::Mapping {
        dn: entry.dn.clone(),
        attribute: "cn".to_owned(),
        message: error.to_string(),
    })
}

fn role_entry(entry: &SearchEntry, names: &BTreeMap<String, RoleName>) -> Result<RoleEntry> {
    let mapping = |attribute: &str, message: String| DirectoryError::Mapping {
        dn: entry.dn.clone(),
        attribute: attribute.to_owned(),
        message,
    };
    let rank = match entry.text("roleoutRank") {
        None => 0,
        Some(text) => text.parse::<u32>().map_err(|_| {
            mapping(
                "roleoutRank",
                format!("{text:?} is not a rank (0 to 4294967295)"),
            )
        })?,
    };
    let parent = match entry.text("roleoutParentRole") {
        None => None,
        Some(parent_dn) => Some(names.get(&normalize_dn(parent_dn)).cloned().ok_or_else(|| {
            mapping(
                "roleoutParentRole",
                format!("parent {parent_dn:?} is not one of the roles found under the role search base"),
            )
        })?),
    };
    let members = entry
        .texts("member")
        .into_iter()
        .filter(|member| !same_dn(member, &entry.dn))
        .map(str::to_owned)
        .collect();
    Ok(RoleEntry {
        dn: entry.dn.clone(),
        role: Role {
            name: role_name(entry)?,
            rank,
            parent,
            description: entry.text("description").map(str::to_owned),
        },
        members,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn entry(dn: &str, attributes: &[(&str, &[&str])]) -> SearchEntry {
        SearchEntry {
            dn: dn.to_owned(),
            attrs: attributes
                .iter()
                .map(|(name, values)| {
                    (
                        (*name).to_owned(),
                        values.iter().map(|v| (*v).to_owned()).collect(),
                    )
                })
                .collect(),
            bin_attrs: HashMap::new(),
        }
    }

    #[test]
    fn the_placeholder_member_is_not_reported() {
        let dn = "cn=dev,ou=roles,dc=x";
        let role = role_entry(
            &entry(
                dn,
                &[
                    ("cn", &["dev"]),
                    ("member", &["CN=dev, ou=roles,dc=x", "cn=m1,dc=x"]),
                ],
            ),
            &BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(role.members, vec!["cn=m1,dc=x".to_owned()]);
        assert_eq!(role.role.rank, 0);
    }

    #[test]
    fn bad_role_entries_name_the_attribute() {
        let bad_rank = role_entry(
            &entry("cn=a,dc=x", &[("cn", &["a"]), ("roleoutRank", &["-3"])]),
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert!(bad_rank.to_string().contains("roleoutRank"), "{bad_rank}");
        let orphan = role_entry(
            &entry(
                "cn=a,dc=x",
                &[("cn", &["a"]), ("roleoutParentRole", &["cn=gone,dc=x"])],
            ),
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert!(orphan.to_string().contains("cn=gone,dc=x"), "{orphan}");
        let bad_name = role_name(&entry("cn=a b,dc=x", &[("cn", &["a b"])])).unwrap_err();
        assert!(bad_name.to_string().contains("cn=a b,dc=x"), "{bad_name}");
    }
}
