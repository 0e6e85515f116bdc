//! Roles and role versions.
//!
//! Any object slot of a product or a suite (its file set, its install
//! command, its variables, ...) may exist in several versions, each tagged
//! with the roles it is for; an untagged version is the default. A
//! requester's rights are its set of roles, widened by inheritance through
//! each role's parent. For each slot the version whose matching role ranks
//! highest wins; with no match the default is taken. Two *different*
//! versions that tie for the top rank are an [`Ambiguity`], never a silent
//! pick.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::RoleName;

/// A role as admins define it: a rank (higher wins a tie between slots)
/// and an optional parent whose versions this role also receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Role {
    /// The role's name.
    pub name: RoleName,
    /// Its rank: when versions for several of a requester's roles exist,
    /// the one for the highest-ranked role is taken.
    pub rank: u32,
    /// The role it inherits from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<RoleName>,
    /// What the role is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Why a set of roles could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RoleError {
    /// A role names a role that is not defined.
    #[error("role {role} is not defined (named by {named_by})")]
    Unknown {
        /// The missing role.
        role: RoleName,
        /// Who named it: "the requester" or "role X as its parent".
        named_by: String,
    },
    /// Parents form a loop.
    #[error("role parents form a cycle: {path}")]
    Cycle {
        /// The loop, as `a -> b -> a`.
        path: String,
    },
}

/// The defined roles, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RoleHierarchy {
    roles: BTreeMap<RoleName, Role>,
}

impl RoleHierarchy {
    /// Builds the hierarchy; a later role with the same name replaces an
    /// earlier one.
    pub fn new(roles: impl IntoIterator<Item = Role>) -> Self {
        Self {
            roles: roles
                .into_iter()
                .map(|role| (role.name.clone(), role))
                .collect(),
        }
    }

    /// The role called `name`.
    pub fn get(&self, name: &RoleName) -> Option<&Role> {
        self.roles.get(name)
    }

    /// Every role, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Role> {
        self.roles.values()
    }

    /// The requester's effective roles: `direct` plus every ancestor, each
    /// with its rank. Fails on an undefined role or a parent cycle.
    pub fn effective(
        &self,
        direct: impl IntoIterator<Item = RoleName>,
    ) -> Result<EffectiveRoles, RoleError> {
        let mut ranks = BTreeMap::new();
        for start in direct {
            let mut path: Vec<RoleName> = Vec::new();
            let mut current = Some((start, "the requester".to_owned()));
            while let Some((name, named_by)) = current.take() {
                if let Some(position) = path.iter().position(|seen| *seen == name) {
                    let mut cycle: Vec<String> =
                        path[position..].iter().map(ToString::to_string).collect();
                    cycle.push(name.to_string());
                    return Err(RoleError::Cycle {
                        path: cycle.join(" -> "),
                    });
                }
                let role = self.roles.get(&name).ok_or_else(|| RoleError::Unknown {
                    role: name.clone(),
                    named_by,
                })?;
                ranks.insert(name.clone(), role.rank);
                current = role
                    .parent
                    .clone()
                    .map(|parent| (parent, format!("role {name} as its parent")));
                path.push(name);
            }
        }
        Ok(EffectiveRoles { ranks })
    }
}

/// A requester's roles after inheritance, each with its rank.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EffectiveRoles {
    ranks: BTreeMap<RoleName, u32>,
}

impl EffectiveRoles {
    /// Roles given directly with their ranks (no inheritance applied).
    pub fn from_ranks(ranks: impl IntoIterator<Item = (RoleName, u32)>) -> Self {
        Self {
            ranks: ranks.into_iter().collect(),
        }
    }

    /// Whether the requester holds `role`.
    pub fn contains(&self, role: &RoleName) -> bool {
        self.ranks.contains_key(role)
    }

    /// The rank of `role` if the requester holds it.
    pub fn rank(&self, role: &RoleName) -> Option<u32> {
        self.ranks.get(role).copied()
    }

    /// The role names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &RoleName> {
        self.ranks.keys()
    }

    /// True when the requester holds no role (it gets default versions).
    pub fn is_empty(&self) -> bool {
        self.ranks.is_empty()
    }

    /// A stable key for the set, `a+b+c` (sorted), "default" when empty;
    /// builds are stored under it.
    pub fn key(&self) -> String {
        if self.ranks.is_empty() {
            return "default".to_owned();
        }
        self.ranks
            .keys()
            .map(RoleName::as_str)
            .collect::<Vec<_>>()
            .join("+")
    }
}

/// One version of an object slot and the roles it is for (empty: the
/// default version).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RoleVersion<T> {
    /// The roles this version is for; empty for the default version.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub roles: BTreeSet<RoleName>,
    /// The object itself.
    pub value: T,
}

/// Every version of one object slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Versioned<T> {
    /// The versions, in the order the author wrote them.
    pub versions: Vec<RoleVersion<T>>,
}

impl<T> Default for Versioned<T> {
    fn default() -> Self {
        Self {
            versions: Vec::new(),
        }
    }
}

impl<T> Versioned<T> {
    /// Every role any version is tagged for (with repeats).
    pub fn tagged_roles(&self) -> impl Iterator<Item = &RoleName> {
        self.versions
            .iter()
            .flat_map(|version| version.roles.iter())
    }

    /// A slot with only a default version.
    pub fn single(value: T) -> Self {
        Self {
            versions: vec![RoleVersion {
                roles: BTreeSet::new(),
                value,
            }],
        }
    }

    /// True when the slot has no version at all.
    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }

    /// The default (untagged) version, if any.
    pub fn default_version(&self) -> Option<&T> {
        self.versions
            .iter()
            .find(|version| version.roles.is_empty())
            .map(|version| &version.value)
    }
}

/// Two different versions of one slot tie for a requester.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "ambiguous {slot}: the version for role(s) {first} and the version for role(s) {second} \
     both apply at rank {rank} and differ"
)]
pub struct Ambiguity {
    /// The slot, as `product notes-client / fileset`.
    pub slot: String,
    /// The roles of the first tied version, comma separated.
    pub first: String,
    /// The roles of the second tied version, comma separated.
    pub second: String,
    /// The rank at which they tie.
    pub rank: u32,
}

/// Which version of a slot was selected and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Selected {
    /// The version tagged for this role, the highest-ranked match.
    Role(RoleName),
    /// The untagged default version.
    Default,
}

impl fmt::Display for Selected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selected::Role(role) => write!(f, "role {role}"),
            Selected::Default => f.write_str("default"),
        }
    }
}

fn role_list(roles: &BTreeSet<RoleName>) -> String {
    roles
        .iter()
        .map(RoleName::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

/// The name of a slot in an [`Ambiguity`]: text, or a closure giving it
/// when an ambiguity is reported.
pub trait SlotLabel {
    /// The name.
    fn label(self) -> String;
}

impl SlotLabel for &str {
    fn label(self) -> String {
        self.to_owned()
    }
}

impl<F: FnOnce() -> String> SlotLabel for F {
    fn label(self) -> String {
        self()
    }
}

/// Picks the version of `slot` for `roles`: the version whose best matching
/// role ranks highest; else the default; else `None` (the slot is absent
/// for this requester). Different versions tied at the top rank give an
/// [`Ambiguity`] naming both; identical versions tied are not ambiguous.
/// `slot_name` only labels the error, and is only computed for one (a
/// build selects a version of every slot of thousands of products).
pub fn select<'a, T: PartialEq>(
    slot_name: impl SlotLabel,
    slot: &'a Versioned<T>,
    roles: &EffectiveRoles,
) -> Result<Option<(&'a T, Selected)>, Ambiguity> {
    Ok(select_index(slot_name, slot, roles)?
        .map(|(index, selected)| (&slot.versions[index].value, selected)))
}

/// [`select`], giving the position of the version picked in
/// `slot.versions`, for a caller that takes it out of the slot.
pub fn select_index<T: PartialEq>(
    slot_name: impl SlotLabel,
    slot: &Versioned<T>,
    roles: &EffectiveRoles,
) -> Result<Option<(usize, Selected)>, Ambiguity> {
    let mut best: Option<(u32, usize, &RoleName)> = None;
    // A version that differs from `best` at the same rank. It only matters
    // if no higher rank turns up later, so it is judged after the loop.
    let mut tied: Option<usize> = None;
    for (index, version) in slot.versions.iter().enumerate() {
        // The version's best role among those the requester holds.
        let matched = version
            .roles
            .iter()
            .filter_map(|role| roles.rank(role).map(|rank| (rank, role)))
            .max_by(|(rank_a, role_a), (rank_b, role_b)| {
                rank_a.cmp(rank_b).then_with(|| role_b.cmp(role_a))
            });
        let Some((rank, role)) = matched else {
            continue;
        };
        match best {
            Some((best_rank, _, _)) if rank < best_rank => {}
            Some((best_rank, best_index, _)) if rank == best_rank => {
                if slot.versions[best_index].value != version.value && tied.is_none() {
                    tied = Some(index);
                }
            }
            _ => {
                best = Some((rank, index, role));
                tied = None;
            }
        }
    }
    if let Some((rank, index, role)) = best {
        if let Some(other) = tied {
            return Err(Ambiguity {
                slot: slot_name.label(),
                first: role_list(&slot.versions[index].roles),
                second: role_list(&slot.versions[other].roles),
                rank,
            });
        }
        return Ok(Some((index, Selected::Role(role.clone()))));
    }
    Ok(slot
        .versions
        .iter()
        .position(|version| version.roles.is_empty())
        .map(|index| (index, Selected::Default)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> RoleName {
        RoleName::new(text).unwrap()
    }

    fn role(text: &str, rank: u32, parent: Option<&str>) -> Role {
        Role {
            name: name(text),
            rank,
            parent: parent.map(name),
            description: None,
        }
    }

    fn hierarchy() -> RoleHierarchy {
        RoleHierarchy::new([
            role("end-user", 10, None),
            role("developer", 20, Some("end-user")),
            role("administrator", 30, Some("end-user")),
        ])
    }

    fn slot(versions: &[(&[&str], &'static str)]) -> Versioned<&'static str> {
        Versioned {
            versions: versions
                .iter()
                .map(|(roles, value)| RoleVersion {
                    roles: roles.iter().map(|r| name(r)).collect(),
                    value: *value,
                })
                .collect(),
        }
    }

    #[test]
    fn inheritance_widens_the_set() {
        let roles = hierarchy().effective([name("developer")]).unwrap();
        assert!(roles.contains(&name("end-user")));
        assert!(!roles.contains(&name("administrator")));
        assert_eq!(roles.key(), "developer+end-user");
    }

    #[test]
    fn highest_rank_wins_else_default() {
        let files = slot(&[
            (&[], "base"),
            (&["developer"], "dev"),
            (&["end-user"], "user"),
        ]);
        let developer = hierarchy().effective([name("developer")]).unwrap();
        let (value, why) = select("fileset", &files, &developer).unwrap().unwrap();
        assert_eq!((*value, why), ("dev", Selected::Role(name("developer"))));
        let admin = hierarchy().effective([name("administrator")]).unwrap();
        assert_eq!(
            *select("fileset", &files, &admin).unwrap().unwrap().0,
            "user"
        );
        let nobody = EffectiveRoles::default();
        let (value, why) = select("fileset", &files, &nobody).unwrap().unwrap();
        assert_eq!((*value, why), ("base", Selected::Default));
    }

    #[test]
    fn a_slot_without_default_is_absent_for_others() {
        let post = slot(&[(&["administrator"], "setup")]);
        let developer = hierarchy().effective([name("developer")]).unwrap();
        assert_eq!(select("post-install", &post, &developer).unwrap(), None);
    }

    #[test]
    fn ties_between_different_versions_are_ambiguous() {
        let files = slot(&[(&["developer"], "dev"), (&["administrator"], "admin")]);
        let roles =
            EffectiveRoles::from_ranks([(name("developer"), 20), (name("administrator"), 20)]);
        let error = select("product x / fileset", &files, &roles).unwrap_err();
        assert_eq!(error.first, "developer");
        assert_eq!(error.second, "administrator");
        assert!(error.to_string().contains("product x / fileset"));
        // A tie below the top rank is no ambiguity.
        let late = slot(&[
            (&["developer"], "dev"),
            (&["administrator"], "admin"),
            (&["lead"], "lead"),
        ]);
        let ranks = [
            (name("developer"), 20),
            (name("administrator"), 20),
            (name("lead"), 30),
        ];
        let lead = EffectiveRoles::from_ranks(ranks);
        assert_eq!(*select("s", &late, &lead).unwrap().unwrap().0, "lead");
        let same = slot(&[(&["developer"], "same"), (&["administrator"], "same")]);
        assert_eq!(*select("s", &same, &roles).unwrap().unwrap().0, "same");
    }

    #[test]
    fn unknown_roles_and_cycles_are_errors() {
        let error = hierarchy().effective([name("ghost")]).unwrap_err();
        assert!(matches!(error, RoleError::Unknown { .. }));
        let looped = RoleHierarchy::new([role("a", 1, Some("b")), role("b", 2, Some("a"))]);
        let error = looped.effective([name("a")]).unwrap_err();
        assert_eq!(error.to_string(), "role parents form a cycle: a -> b -> a");
    }
}
