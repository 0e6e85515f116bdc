//! Machine groups (Fig. 7) and the customizations admins make of a suite's
//! variables, under their own container `ou=groups` of the Roleout base.
//!
//! # Entry layout
//!
//! - `ou=groups,BASE` (an `organizationalUnit`) is made on first use, so
//!   directories set up before groups existed need no migration.
//! - A group is `cn=GROUP,ou=groups,BASE` (`roleoutMachineGroup`): the
//!   suite its products come from (`roleoutSuiteName`), the products chosen
//!   for it in order (`roleoutChosenProduct`, `{n}id`), its machines by DN
//!   (`member`, as roles hold theirs, so a machine stays one record wherever
//!   its entry lives) and the products chosen for single machines beyond
//!   the group's (`roleoutMachineChoice`, `MACHINE=id,id`).
//! - A customization is a `roleoutCustomization` entry named by its suite
//!   (`roleoutSuiteName=SUITE`): directly under `ou=groups` for the whole
//!   suite, under a group's entry for that group. It holds one
//!   `roleoutCustomValue` per variable, `NAME=VALUE`. Naming it by
//!   `roleoutSuiteName` rather than `cn` keeps suite-wide customizations
//!   apart from groups in the same container, and a group's
//!   customizations go with the group.
//!
//! Password values are never written here: the directory is readable by
//! roleoutd and by every admin, and a secret belongs in each machine's
//! response file. The admin layer leaves them out before calling
//! [`Directory::set_customization`].

use std::collections::{BTreeMap, HashSet};

use ldap3::{Mod, Scope, SearchEntry};
use tracing::instrument;

use roleout_model::ids::{GroupName, MachineId, ProductId, SuiteId, VariableName};

use crate::connection::{Directory, EntryValues, single};
use crate::error::{DirectoryError, Result};
use crate::escape;

const GROUP_CLASS: &str = "roleoutMachineGroup";
const CUSTOMIZATION_CLASS: &str = "roleoutCustomization";
const SUITE: &str = "roleoutSuiteName";
const CHOSEN: &str = "roleoutChosenProduct";
const MACHINE_CHOICE: &str = "roleoutMachineChoice";
const CUSTOM_VALUE: &str = "roleoutCustomValue";

const GROUP_ATTRIBUTES: &[&str] = &["cn", SUITE, CHOSEN, MACHINE_CHOICE, "member"];

/// A machine group as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupRecord {
    /// The suite its products come from.
    pub suite: Option<SuiteId>,
    /// The products chosen for the group, in order.
    pub products: Vec<ProductId>,
    /// The DNs of its machines' entries, in the order they were added.
    pub members: Vec<String>,
    /// Products chosen for single machines beyond the group's.
    pub machine_products: BTreeMap<MachineId, Vec<ProductId>>,
}

impl GroupRecord {
    /// Takes the entry at `dn` out of the group's machines.
    pub fn remove_member(&mut self, dn: &str) {
        self.members
            .retain(|member| !crate::roles::same_dn(member, dn));
    }
}

/// A group entry: its DN, name and content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    /// The entry's DN.
    pub dn: String,
    /// The group's name.
    pub name: GroupName,
    /// What it holds.
    pub record: GroupRecord,
}

impl GroupEntry {
    /// Whether the entry at `dn` is one of its machines.
    pub fn has_member(&self, dn: &str) -> bool {
        self.record
            .members
            .iter()
            .any(|member| crate::roles::same_dn(member, dn))
    }
}

/// The values chosen for a suite's variables, suite-wide or for a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customization {
    /// The entry's DN.
    pub dn: String,
    /// The suite.
    pub suite: SuiteId,
    /// The group, or `None` for the whole suite.
    pub group: Option<GroupName>,
    /// The values by variable.
    pub values: BTreeMap<VariableName, String>,
}

/// `{n}id` values for `products`, n its position.
fn ordered_products(products: &[ProductId]) -> HashSet<String> {
    products
        .iter()
        .enumerate()
        .map(|(position, product)| format!("{{{position}}}{product}"))
        .collect()
}

/// Products from `{n}id` values, in position order.
fn parse_ordered_products(dn: &str, values: &[&str]) -> Result<Vec<ProductId>> {
    let mut positioned = Vec::with_capacity(values.len());
    for value in values {
        let parsed = value
            .strip_prefix('{')
            .and_then(|rest| rest.split_once('}'))
            .and_then(|(position, id)| Some((position.parse::<usize>().ok()?, id)));
        let Some((position, id)) = parsed else {
            return Err(DirectoryError::mapping(
                dn,
                CHOSEN,
                format!("{value:?} is not {{n}}product"),
            ));
        };
        let product = ProductId::new(id)
            .map_err(|error| DirectoryError::mapping(dn, CHOSEN, error.to_string()))?;
        positioned.push((position, product));
    }
    positioned.sort();
    Ok(positioned.into_iter().map(|(_, product)| product).collect())
}

fn machine_choice_values(choices: &BTreeMap<MachineId, Vec<ProductId>>) -> HashSet<String> {
    choices
        .iter()
        .filter(|(_, products)| !products.is_empty())
        .map(|(machine, products)| {
            let list: Vec<&str> = products.iter().map(ProductId::as_str).collect();
            format!("{machine}={}", list.join(","))
        })
        .collect()
}

fn group_entry(entry: &SearchEntry) -> Result<GroupEntry> {
    let dn = entry.dn.as_str();
    let cn = entry.text("cn").ok_or_else(|| {
        DirectoryError::mapping(dn, "cn", "a group needs a cn (its name)".to_owned())
    })?;
    let name =
        GroupName::new(cn).map_err(|error| DirectoryError::mapping(dn, "cn", error.to_string()))?;
    let suite = entry
        .text(SUITE)
        .map(|text| {
            SuiteId::new(text)
                .map_err(|error| DirectoryError::mapping(dn, SUITE, error.to_string()))
        })
        .transpose()?;
    let products = parse_ordered_products(dn, &entry.texts(CHOSEN))?;
    let mut machine_products = BTreeMap::new();
    for value in entry.texts(MACHINE_CHOICE) {
        let (machine, list) = value.split_once('=').ok_or_else(|| {
            DirectoryError::mapping(dn, MACHINE_CHOICE, format!("{value:?} is not MACHINE=ids"))
        })?;
        let machine = MachineId::new(machine)
            .map_err(|error| DirectoryError::mapping(dn, MACHINE_CHOICE, error.to_string()))?;
        let products = list
            .split(',')
            .filter(|id| !id.is_empty())
            .map(|id| {
                ProductId::new(id)
                    .map_err(|error| DirectoryError::mapping(dn, MACHINE_CHOICE, error.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        machine_products.insert(machine, products);
    }
    let mut members: Vec<String> = entry
        .texts("member")
        .into_iter()
        .map(str::to_owned)
        .collect();
    // LDAP keeps no order among values; sort for stable listings.
    members.sort_by_key(|member| member.to_ascii_lowercase());
    Ok(GroupEntry {
        dn: entry.dn.clone(),
        name,
        record: GroupRecord {
            suite,
            products,
            members,
            machine_products,
        },
    })
}

/// The group whose entry is the parent of `dn`, if the parent is a group
/// (`cn=GROUP,ou=groups,...`).
fn parent_group(dn: &str, container: &str) -> Result<Option<GroupName>> {
    let lowered = dn.to_ascii_lowercase();
    let suffix = format!(",{}", container.to_ascii_lowercase());
    let Some(relative) = lowered.strip_suffix(&suffix) else {
        return Ok(None);
    };
    // `roleoutSuiteName=S` or `roleoutSuiteName=S,cn=G`; neither suite ids
    // nor group names need DN escaping, so a plain split is exact.
    match relative.split_once(',') {
        None => Ok(None),
        Some((_, group)) => {
            let start = dn.len() - suffix.len() - group.len();
            let original = &dn[start..dn.len() - suffix.len()];
            let name = original
                .split_once('=')
                .map(|(_, name)| name)
                .unwrap_or(original);
            GroupName::new(name)
                .map(Some)
                .map_err(|error| DirectoryError::mapping(dn, "cn", error.to_string()))
        }
    }
}

fn customization_entry(entry: &SearchEntry, container: &str) -> Result<Customization> {
    let dn = entry.dn.as_str();
    let suite = entry.text(SUITE).ok_or_else(|| {
        DirectoryError::mapping(dn, SUITE, "a customization names its suite".to_owned())
    })?;
    let suite = SuiteId::new(suite)
        .map_err(|error| DirectoryError::mapping(dn, SUITE, error.to_string()))?;
    let mut values = BTreeMap::new();
    for value in entry.texts(CUSTOM_VALUE) {
        let (name, text) = value.split_once('=').ok_or_else(|| {
            DirectoryError::mapping(dn, CUSTOM_VALUE, format!("{value:?} is not NAME=VALUE"))
        })?;
        let name = VariableName::new(name)
            .map_err(|error| DirectoryError::mapping(dn, CUSTOM_VALUE, error.to_string()))?;
        values.insert(name, text.to_owned());
    }
    Ok(Customization {
        dn: entry.dn.clone(),
        suite,
        group: parent_group(dn, container)?,
        values,
    })
}

impl Directory {
    /// The container of groups and customizations (`ou=groups` under the
    /// Roleout base).
    pub fn groups_container(&self) -> String {
        format!("ou=groups,{}", self.layout().base())
    }

    /// The DN of group `name`.
    pub fn group_dn(&self, name: &GroupName) -> String {
        escape::child_dn("cn", name.as_str(), &self.groups_container())
    }

    /// The DN of the customization of `suite` for `group` (suite-wide with
    /// `None`).
    pub fn customization_dn(&self, suite: &SuiteId, group: Option<&GroupName>) -> String {
        let parent = match group {
            Some(group) => self.group_dn(group),
            None => self.groups_container(),
        };
        escape::child_dn(SUITE, suite.as_str(), &parent)
    }

    /// Makes `ou=groups` when it is missing.
    async fn ensure_groups_container(&self) -> Result<()> {
        let container = self.groups_container();
        if self.read(&container, &["ou"]).await?.is_some() {
            return Ok(());
        }
        let attributes = vec![
            ("objectClass".to_owned(), single("organizationalUnit")),
            ("ou".to_owned(), single("groups")),
        ];
        match self.add(&container, attributes).await {
            Err(error) if !error.is_already_exists() => Err(error),
            _ => Ok(()),
        }
    }

    /// Every group, sorted by name: one search.
    #[instrument(skip(self))]
    pub async fn group_entries(&self) -> Result<Vec<GroupEntry>> {
        let filter = format!("(objectClass={GROUP_CLASS})");
        let entries = self
            .search_if_present(
                &self.groups_container(),
                Scope::OneLevel,
                &filter,
                GROUP_ATTRIBUTES,
            )
            .await?;
        let mut groups = entries
            .iter()
            .map(group_entry)
            .collect::<Result<Vec<_>>>()?;
        groups.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(groups)
    }

    /// Group `name`, or `None`.
    #[instrument(skip(self))]
    pub async fn group(&self, name: &GroupName) -> Result<Option<GroupEntry>> {
        match self.read(&self.group_dn(name), GROUP_ATTRIBUTES).await? {
            Some(entry) => group_entry(&entry).map(Some),
            None => Ok(None),
        }
    }

    /// Writes group `name` with `record`: creates it, or replaces what an
    /// existing entry holds (its customizations stay). Returns its DN.
    #[instrument(skip(self, record))]
    pub async fn put_group(&self, name: &GroupName, record: &GroupRecord) -> Result<String> {
        self.ensure_groups_container().await?;
        let dn = self.group_dn(name);
        let suite: HashSet<String> = record
            .suite
            .iter()
            .map(|suite| suite.as_str().to_owned())
            .collect();
        let members: HashSet<String> = record.members.iter().cloned().collect();
        let values = [
            (SUITE, suite),
            (CHOSEN, ordered_products(&record.products)),
            (
                MACHINE_CHOICE,
                machine_choice_values(&record.machine_products),
            ),
            ("member", members),
        ];
        if self.read(&dn, &["cn"]).await?.is_some() {
            let modifications = values
                .into_iter()
                .map(|(attribute, values)| Mod::Replace(attribute.to_owned(), values))
                .collect();
            self.modify(&dn, modifications).await?;
            return Ok(dn);
        }
        let mut attributes = vec![
            ("objectClass".to_owned(), single(GROUP_CLASS)),
            ("cn".to_owned(), single(name.as_str())),
        ];
        attributes.extend(
            values
                .into_iter()
                .filter(|(_, values)| !values.is_empty())
                .map(|(attribute, values)| (attribute.to_owned(), values)),
        );
        self.add(&dn, attributes).await?;
        Ok(dn)
    }

    /// Deletes group `name` with its customizations.
    #[instrument(skip(self))]
    pub async fn delete_group(&self, name: &GroupName) -> Result<()> {
        let dn = self.group_dn(name);
        let filter = format!("(objectClass={CUSTOMIZATION_CLASS})");
        let children = match self.search(&dn, Scope::OneLevel, &filter, &["1.1"]).await {
            Ok(children) => children,
            Err(error) if error.is_no_such_object() => return Ok(()),
            Err(error) => return Err(error),
        };
        for child in children {
            self.delete(&child.dn).await?;
        }
        self.delete(&dn).await
    }

    /// Deletes every customization of `suite` (suite-wide and per group);
    /// returns how many there were.
    #[instrument(skip(self))]
    pub async fn delete_customizations_of(&self, suite: &SuiteId) -> Result<usize> {
        let mut deleted = 0;
        for customization in self.customizations().await? {
            if &customization.suite == suite {
                match self.delete(&customization.dn).await {
                    Ok(()) => deleted += 1,
                    Err(error) if error.is_no_such_object() => {}
                    Err(error) => return Err(error),
                }
            }
        }
        Ok(deleted)
    }

    /// Deletes the machine entry at `dn` (`delete machine`, or a group
    /// import undone after it created the entry). Only entries in
    /// Roleout's own machine container are deleted: an organisation's own
    /// entries are never removed by Roleout.
    #[instrument(skip(self))]
    pub async fn delete_own_machine(&self, dn: &str) -> Result<()> {
        let container = format!(",{}", self.layout().machines().to_ascii_lowercase());
        if !dn.to_ascii_lowercase().ends_with(&container) {
            return Err(DirectoryError::mapping(
                dn,
                "cn",
                format!(
                    "only entries under {} are deleted",
                    self.layout().machines()
                ),
            ));
        }
        self.delete(dn).await
    }

    /// Every customization, suite-wide and per group: one search.
    #[instrument(skip(self))]
    pub async fn customizations(&self) -> Result<Vec<Customization>> {
        let container = self.groups_container();
        let filter = format!("(objectClass={CUSTOMIZATION_CLASS})");
        let entries = self
            .search_if_present(&container, Scope::Subtree, &filter, &[SUITE, CUSTOM_VALUE])
            .await?;
        let mut found = entries
            .iter()
            .map(|entry| customization_entry(entry, &container))
            .collect::<Result<Vec<_>>>()?;
        found.sort_by(|a, b| (&a.suite, &a.group).cmp(&(&b.suite, &b.group)));
        Ok(found)
    }

    /// The customization of `suite` for `group` (suite-wide with `None`).
    #[instrument(skip(self))]
    pub async fn customization(
        &self,
        suite: &SuiteId,
        group: Option<&GroupName>,
    ) -> Result<Option<Customization>> {
        let dn = self.customization_dn(suite, group);
        match self.read(&dn, &[SUITE, CUSTOM_VALUE]).await? {
            Some(entry) => customization_entry(&entry, &self.groups_container()).map(Some),
            None => Ok(None),
        }
    }

    /// Stores `values` as the customization of `suite` for `group`
    /// (suite-wide with `None`), replacing an earlier one. The group must
    /// exist. The caller leaves secrets out (see the module comment).
    #[instrument(skip(self, values))]
    pub async fn set_customization(
        &self,
        suite: &SuiteId,
        group: Option<&GroupName>,
        values: &BTreeMap<VariableName, String>,
    ) -> Result<String> {
        self.ensure_groups_container().await?;
        let dn = self.customization_dn(suite, group);
        let stored: HashSet<String> = values
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        if self.read(&dn, &[SUITE]).await?.is_some() {
            self.modify(&dn, vec![Mod::Replace(CUSTOM_VALUE.to_owned(), stored)])
                .await?;
            return Ok(dn);
        }
        let mut attributes = vec![
            ("objectClass".to_owned(), single(CUSTOMIZATION_CLASS)),
            (SUITE.to_owned(), single(suite.as_str())),
        ];
        if !stored.is_empty() {
            attributes.push((CUSTOM_VALUE.to_owned(), stored));
        }
        self.add(&dn, attributes).await?;
        Ok(dn)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn chosen_products_keep_their_order() {
        let products: Vec<ProductId> = ["zeta", "alpha", "mid"]
            .iter()
            .map(|id| ProductId::new(*id).unwrap())
            .collect();
        let stored = ordered_products(&products);
        let values: Vec<&str> = stored.iter().map(String::as_str).collect();
        assert_eq!(parse_ordered_products("cn=g", &values).unwrap(), products);
        let error = parse_ordered_products("cn=g,ou=groups", &["alpha"]).unwrap_err();
        assert!(error.to_string().contains("cn=g,ou=groups"), "{error}");
    }

    #[test]
    fn customizations_know_their_group() {
        let container = "ou=groups,ou=roleout,dc=example,dc=org";
        let entry = |dn: &str| SearchEntry {
            dn: dn.to_owned(),
            attrs: HashMap::from([
                (SUITE.to_owned(), vec!["domino".to_owned()]),
                (
                    CUSTOM_VALUE.to_owned(),
                    vec!["mail_server=mx.example.org".to_owned()],
                ),
            ]),
            bin_attrs: HashMap::new(),
        };
        let wide = customization_entry(
            &entry(&format!("roleoutSuiteName=domino,{container}")),
            container,
        )
        .unwrap();
        assert_eq!(wide.group, None);
        assert_eq!(
            wide.values.values().collect::<Vec<_>>(),
            vec!["mx.example.org"]
        );
        let grouped = customization_entry(
            &entry(&format!(
                "roleoutSuiteName=domino,cn=Developers,{container}"
            )),
            container,
        )
        .unwrap();
        assert_eq!(grouped.group.unwrap().as_str(), "Developers");
    }
}
