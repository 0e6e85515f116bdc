//! Browsing the Roleout tree: `ls`, `cd`, `show`, `find` and `tree`.
//!
//! The shell presents the directory as a small tree of paths, `/products/ID`,
//! `/suites/ID`, `/roles/NAME` and `/machines/NAME`, so an admin can look
//! around without knowing DNs. Every place is read fresh from the
//! directory (the catalog is small and the directory is the truth); only
//! completion keeps a list of names, see [`Names`].

use std::collections::{BTreeMap, BTreeSet};

use roleout_directory::Directory;
use roleout_directory::catalog::entry::CatalogEntry;
use roleout_directory::catalog::ldif::write_entry;
use roleout_directory::catalog::{product_entries, suite_entries};
use roleout_directory::machines::MachineEntry;
use roleout_directory::roles::RoleEntry;
use roleout_model::ids::{MachineId, RoleName};
use roleout_model::product::ProductSource;
use roleout_model::suite::SuiteSource;

use super::versions::{CatalogObject, role_set_label};
use super::{CommandFailed, Output};

/// A place in the Roleout tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// `/`.
    Root,
    /// `/products`.
    Products,
    /// `/suites`.
    Suites,
    /// `/roles`.
    Roles,
    /// `/machines`.
    Machines,
    /// `/products/ID`.
    Product(String),
    /// `/suites/ID`.
    Suite(String),
    /// `/roles/NAME`.
    Role(String),
    /// `/machines/NAME`.
    Machine(String),
}

/// The four top-level folders, in listing order.
pub const FOLDERS: [&str; 4] = ["products", "suites", "roles", "machines"];

impl Node {
    /// The node at `components` (of a normalised location); one plain
    /// line naming the path when the tree has no such place.
    pub fn at<'a>(components: impl IntoIterator<Item = &'a str>) -> Result<Node, CommandFailed> {
        let components: Vec<&str> = components.into_iter().collect();
        let path = format!("/{}", components.join("/"));
        let node = match components.as_slice() {
            [] => Node::Root,
            ["products"] => Node::Products,
            ["suites"] => Node::Suites,
            ["roles"] => Node::Roles,
            ["machines"] => Node::Machines,
            ["products", id] => Node::Product((*id).to_owned()),
            ["suites", id] => Node::Suite((*id).to_owned()),
            ["roles", name] => Node::Role((*name).to_owned()),
            ["machines", name] => Node::Machine((*name).to_owned()),
            _ => {
                return Err(CommandFailed(format!(
                    "no such place {path}: the tree holds /products, /suites, /roles and /machines"
                )));
            }
        };
        Ok(node)
    }
}

/// The names of every object, for completion: read once per session and
/// again after a command changes the directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    /// Product ids.
    pub products: Vec<String>,
    /// Suite ids.
    pub suites: Vec<String>,
    /// Role names.
    pub roles: Vec<String>,
    /// Machine names.
    pub machines: Vec<String>,
}

impl Names {
    /// Reads every name (four searches).
    pub async fn read(directory: &Directory) -> Result<Names, CommandFailed> {
        let catalog = Catalog::read(directory).await?;
        Ok(Names {
            products: {
                // Every release of a product is listed; its name once.
                let mut names: Vec<String> =
                    catalog.products.iter().map(|p| p.id.to_string()).collect();
                names.dedup();
                names
            },
            suites: catalog.suites.iter().map(|s| s.id.to_string()).collect(),
            roles: catalog
                .roles
                .iter()
                .map(|r| r.role.name.to_string())
                .collect(),
            machines: catalog
                .machines
                .iter()
                .map(|m| m.machine.name.to_string())
                .collect(),
        })
    }

    /// The names in folder `folder` (`products`, ...).
    pub fn in_folder(&self, folder: &str) -> &[String] {
        match folder {
            "products" => &self.products,
            "suites" => &self.suites,
            "roles" => &self.roles,
            "machines" => &self.machines,
            _ => &[],
        }
    }
}

/// Everything browsing shows, read at once.
struct Catalog {
    products: Vec<ProductSource>,
    suites: Vec<SuiteSource>,
    roles: Vec<RoleEntry>,
    machines: Vec<MachineEntry>,
}

impl Catalog {
    async fn read(directory: &Directory) -> Result<Catalog, CommandFailed> {
        let (suites, products) = directory
            .export_catalog()
            .await
            .map_err(|error| CommandFailed(format!("cannot read the catalog: {error}")))?;
        let roles = directory
            .role_entries()
            .await
            .map_err(|error| CommandFailed(format!("cannot read the roles: {error}")))?;
        let mut machines = directory
            .machines()
            .await
            .map_err(|error| CommandFailed(format!("cannot read the machines: {error}")))?;
        machines.sort_by(|a, b| a.machine.name.cmp(&b.machine.name));
        let mut roles = roles;
        roles.sort_by(|a, b| a.role.name.cmp(&b.role.name));
        Ok(Catalog {
            products,
            suites,
            roles,
            machines,
        })
    }
}

fn line(output: &mut Output<'_>, text: &str) {
    // A closed terminal cannot be reported to.
    let _ = writeln!(output.out, "{text}");
}

/// The slots of a product or suite that hold versions, each with the
/// labels of its versions: `fileset: default, developer`.
pub fn slot_lines(object: &CatalogObject) -> Vec<String> {
    object
        .slot_names()
        .into_iter()
        .filter_map(|name| {
            let sets = object.role_sets(name);
            (!sets.is_empty()).then(|| {
                let labels: Vec<String> = sets.iter().map(role_set_label).collect();
                format!("{name}: {}", labels.join(", "))
            })
        })
        .collect()
}

/// How many slot versions of `object` are tagged for each role, as
/// `developer 3, administrator 2` (empty when none is).
fn per_role_counts(object: &CatalogObject) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for name in object.slot_names() {
        for roles in object.role_sets(name) {
            for role in roles {
                *counts.entry(role.to_string()).or_default() += 1;
            }
        }
    }
    counts
        .iter()
        .map(|(role, count)| format!("{role} {count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn object_summary(object: &CatalogObject, id: &str, version: &str) -> String {
    let counts = per_role_counts(object);
    let slots = object
        .slot_names()
        .into_iter()
        .filter(|name| !object.role_sets(name).is_empty())
        .count();
    if counts.is_empty() {
        format!("{id}  {version}  {slots} slot(s), default versions only")
    } else {
        format!("{id}  {version}  {slots} slot(s), role versions: {counts}")
    }
}

fn role_summary(entry: &RoleEntry) -> String {
    let mut text = format!("{}  rank {}", entry.role.name, entry.role.rank);
    if let Some(parent) = &entry.role.parent {
        text.push_str(&format!("  parent {parent}"));
    }
    text.push_str(&format!("  {} member(s)", entry.members.len()));
    text
}

fn machine_summary(entry: &MachineEntry) -> String {
    let enrolment = entry
        .enrolment
        .map(|state| state.to_string())
        .unwrap_or_else(|| "not enrolled".to_owned());
    let enabled = if entry.enabled { "enabled" } else { "disabled" };
    format!("{}  {enrolment}, {enabled}", entry.machine.name)
}

/// `ls`: the children of `node`.
pub async fn list(
    directory: &Directory,
    node: &Node,
    output: &mut Output<'_>,
) -> Result<(), CommandFailed> {
    match node {
        Node::Root => {
            let catalog = Catalog::read(directory).await?;
            let counts = [
                catalog.products.len(),
                catalog.suites.len(),
                catalog.roles.len(),
                catalog.machines.len(),
            ];
            for (folder, count) in FOLDERS.iter().zip(counts) {
                line(output, &format!("{folder}/  {count}"));
            }
        }
        Node::Products => {
            let catalog = Catalog::read(directory).await?;
            for product in catalog.products {
                let (id, version) = (product.id.to_string(), product.version.to_string());
                let object = CatalogObject::Product(product);
                line(output, &object_summary(&object, &id, &version));
            }
        }
        Node::Suites => {
            let catalog = Catalog::read(directory).await?;
            for suite in catalog.suites {
                let (id, version) = (suite.id.to_string(), suite.version.to_string());
                let members = suite.members.len();
                let object = CatalogObject::Suite(suite);
                line(
                    output,
                    &format!(
                        "{}  {members} member(s)",
                        object_summary(&object, &id, &version)
                    ),
                );
            }
        }
        Node::Roles => {
            for entry in read_roles(directory).await? {
                line(output, &role_summary(&entry));
            }
        }
        Node::Machines => {
            let mut machines = directory
                .machines()
                .await
                .map_err(|error| CommandFailed(format!("cannot read the machines: {error}")))?;
            machines.sort_by(|a, b| a.machine.name.cmp(&b.machine.name));
            for entry in machines {
                line(output, &machine_summary(&entry));
            }
        }
        Node::Product(id) | Node::Suite(id) => {
            let object = load_object(directory, node, id).await?;
            if let CatalogObject::Suite(suite) = &object {
                for member in &suite.members {
                    line(output, &member_line(member));
                }
            }
            for slot in slot_lines(&object) {
                line(output, &slot);
            }
        }
        Node::Role(_) | Node::Machine(_) => show_object(directory, node, output).await?,
    }
    Ok(())
}

fn member_line(member: &roleout_model::suite::SuiteMember) -> String {
    let mut text = format!("member {}", member.product);
    let versions = member.versions.to_string();
    if !member.versions.is_any() {
        text.push_str(&format!(" {versions}"));
    }
    if !member.roles.is_empty() {
        text.push_str(&format!(
            " (roles: {})",
            role_set_label(&member.roles).replace('+', ", ")
        ));
    }
    text
}

/// The product or suite at `node` (the kind the path says).
async fn load_object(
    directory: &Directory,
    node: &Node,
    id: &str,
) -> Result<CatalogObject, CommandFailed> {
    let object = CatalogObject::load(directory, id).await.map_err(|_| {
        CommandFailed(match node {
            Node::Suite(_) => format!("no suite {id:?} in the catalog"),
            _ => format!("no product {id:?} in the catalog"),
        })
    })?;
    match (node, &object) {
        (Node::Product(_), CatalogObject::Product(_))
        | (Node::Suite(_), CatalogObject::Suite(_)) => Ok(object),
        (Node::Suite(_), _) => Err(CommandFailed(format!("no suite {id:?} in the catalog"))),
        _ => Err(CommandFailed(format!("no product {id:?} in the catalog"))),
    }
}

async fn read_roles(directory: &Directory) -> Result<Vec<RoleEntry>, CommandFailed> {
    let mut roles = directory
        .role_entries()
        .await
        .map_err(|error| CommandFailed(format!("cannot read the roles: {error}")))?;
    roles.sort_by(|a, b| a.role.name.cmp(&b.role.name));
    Ok(roles)
}

async fn find_role(directory: &Directory, name: &str) -> Result<RoleEntry, CommandFailed> {
    let roles = read_roles(directory).await?;
    roles
        .into_iter()
        .find(|entry| entry.role.name.as_str() == name)
        .ok_or_else(|| CommandFailed(format!("no role {name:?} in the directory")))
}

async fn find_machine(directory: &Directory, name: &str) -> Result<MachineEntry, CommandFailed> {
    let missing = || CommandFailed(format!("no machine {name:?} in the directory"));
    let id = MachineId::new(name).map_err(|_| missing())?;
    directory
        .machine(&id)
        .await
        .map_err(|error| CommandFailed(format!("cannot read machine {name}: {error}")))?
        .ok_or_else(missing)
}

/// The name of each member DN that is a machine Roleout knows, else the
/// DN itself.
async fn member_names(directory: &Directory, members: &[String]) -> Vec<String> {
    let machines = directory.machines().await.unwrap_or_default();
    members
        .iter()
        .map(|dn| {
            machines
                .iter()
                .find(|machine| machine.dn.eq_ignore_ascii_case(dn))
                .map(|machine| machine.machine.name.to_string())
                .unwrap_or_else(|| dn.clone())
        })
        .collect()
}

/// Fails with one plain line naming the object when nothing is at `node`.
pub async fn require(directory: &Directory, node: &Node) -> Result<(), CommandFailed> {
    match node {
        Node::Product(id) | Node::Suite(id) => load_object(directory, node, id).await.map(drop),
        Node::Role(name) => find_role(directory, name).await.map(drop),
        Node::Machine(name) => find_machine(directory, name).await.map(drop),
        _ => Ok(()),
    }
}

/// `show`/`cat`: the object at `node` as the model sees it: a product or
/// suite as its descriptor XML, a role with rank, parent and members, a
/// machine with enrolment, roles and facts. A folder is listed.
pub async fn show(
    directory: &Directory,
    node: &Node,
    output: &mut Output<'_>,
) -> Result<(), CommandFailed> {
    match node {
        Node::Root | Node::Products | Node::Suites | Node::Roles | Node::Machines => {
            list(directory, node, output).await
        }
        object => show_object(directory, object, output).await,
    }
}

/// `show` of one object (not a folder).
async fn show_object(
    directory: &Directory,
    node: &Node,
    output: &mut Output<'_>,
) -> Result<(), CommandFailed> {
    match node {
        Node::Product(id) | Node::Suite(id) => {
            let object = load_object(directory, node, id).await?;
            let _ = write!(output.out, "{}", object.to_xml());
        }
        Node::Role(name) => {
            let entry = find_role(directory, name).await?;
            line(output, &format!("role {}", entry.role.name));
            line(output, &format!("dn: {}", entry.dn));
            line(output, &format!("rank: {}", entry.role.rank));
            let parent = entry
                .role
                .parent
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_else(|| "none".to_owned());
            line(output, &format!("parent: {parent}"));
            if let Some(description) = &entry.role.description {
                line(output, &format!("description: {description}"));
            }
            let members = member_names(directory, &entry.members).await;
            line(output, &format!("members: {}", members.join(", ")));
        }
        Node::Machine(name) => {
            let entry = find_machine(directory, name).await?;
            let roles = directory.machine_roles(&entry.dn).await.map_err(|error| {
                CommandFailed(format!("cannot read the roles of machine {name}: {error}"))
            })?;
            let machine = &entry.machine;
            line(output, &format!("machine {}", machine.name));
            line(output, &format!("dn: {}", entry.dn));
            let enrolment = entry
                .enrolment
                .map(|state| state.to_string())
                .unwrap_or_else(|| "not enrolled".to_owned());
            line(output, &format!("enrolment: {enrolment}"));
            line(output, &format!("enabled: {}", entry.enabled));
            line(
                output,
                &format!("key: {}", crate::admin::machines::key_summary(&entry)),
            );
            for (label, value) in [
                ("ip", &machine.ip),
                ("os", &machine.os),
                ("arch", &machine.arch),
            ] {
                if let Some(value) = value {
                    line(output, &format!("{label}: {}", super::shown(value)));
                }
            }
            let roles: Vec<&str> = roles.iter().map(RoleName::as_str).collect();
            line(output, &format!("roles: {}", roles.join(", ")));
            // Facts are what the machine said of itself: shown escaped.
            for (key, value) in &machine.facts {
                line(
                    output,
                    &format!("fact {}: {}", super::shown(key), super::shown(value)),
                );
            }
            if let Some(seen) = &entry.last_seen {
                line(output, &format!("last seen: {seen}"));
            }
        }
        // Folders are listed by `show` itself.
        _ => {}
    }
    Ok(())
}

/// `show --ldif`: the LDAP entries of the object at `node` as LDIF. A
/// product or suite is its owner entry and one entry per object version,
/// exactly as stored (the entries are a pure function of the object, see
/// roleout-directory's catalog mapping); a role is its group entry with
/// the attributes Roleout reads.
pub async fn show_ldif(
    directory: &Directory,
    node: &Node,
    output: &mut Output<'_>,
) -> Result<(), CommandFailed> {
    let layout = directory.layout();
    let mut text = String::new();
    match node {
        Node::Product(id) | Node::Suite(id) => {
            let entries = match load_object(directory, node, id).await? {
                CatalogObject::Product(product) => product_entries(layout.products(), &product),
                CatalogObject::Suite(suite) => suite_entries(layout.suites(), &suite),
            }
            .map_err(|error| CommandFailed(format!("cannot map {id} to entries: {error}")))?;
            for entry in entries.all() {
                write_entry(&mut text, entry);
            }
        }
        Node::Role(name) => {
            let roles = read_roles(directory).await?;
            let entry = roles
                .iter()
                .find(|entry| entry.role.name.as_str() == name)
                .ok_or_else(|| CommandFailed(format!("no role {name:?} in the directory")))?;
            let mut ldif = CatalogEntry::new(entry.dn.clone());
            push(&mut ldif, "objectClass", "groupOfNames");
            push(&mut ldif, "objectClass", "roleoutRole");
            push(&mut ldif, "cn", entry.role.name.as_str());
            if let Some(description) = &entry.role.description {
                push(&mut ldif, "description", description);
            }
            if entry.members.is_empty() {
                // The placeholder groupOfNames needs (see roleout-directory's roles).
                push(&mut ldif, "member", &entry.dn);
            }
            for member in &entry.members {
                push(&mut ldif, "member", member);
            }
            push(&mut ldif, "roleoutRank", &entry.role.rank.to_string());
            if let Some(parent) = &entry.role.parent
                && let Some(parent) = roles.iter().find(|role| role.role.name == *parent)
            {
                push(&mut ldif, "roleoutParentRole", &parent.dn);
            }
            write_entry(&mut text, &ldif);
        }
        _ => {
            return Err(CommandFailed(
                "show --ldif shows a product, a suite or a role (as /products/ID, /suites/ID, /roles/NAME)"
                    .to_owned(),
            ));
        }
    }
    let _ = write!(output.out, "{text}");
    Ok(())
}

/// Appends a value to an entry being written as LDIF.
fn push(entry: &mut CatalogEntry, description: &str, value: &str) {
    entry
        .attributes
        .entry(description.to_owned())
        .or_default()
        .push(value.to_owned());
}

pub use roleout_model::pattern::glob_matches;

/// What `find` looks for.
#[derive(Debug, Clone, Default)]
pub struct FindQuery {
    /// Only this kind (`product`, `suite`, `role`, `machine`).
    pub kind: Option<String>,
    /// Only objects that concern this role: products and suites with a
    /// version for it (or, for suites, a member limited to it), the role
    /// itself and the roles whose parent it is, its member machines.
    pub role: Option<String>,
    /// A name pattern with `*`.
    pub pattern: Option<String>,
}

/// `find`: the paths of the objects matching `query`, one a line.
pub async fn find(
    directory: &Directory,
    query: &FindQuery,
    output: &mut Output<'_>,
) -> Result<usize, CommandFailed> {
    let catalog = Catalog::read(directory).await?;
    if let Some(role) = &query.role
        && !catalog
            .roles
            .iter()
            .any(|entry| entry.role.name.as_str() == role)
    {
        return Err(CommandFailed(format!("no role {role:?} in the directory")));
    }
    let role = query.role.as_deref();
    let wants = |kind: &str| query.kind.as_deref().is_none_or(|wanted| wanted == kind);
    let named = |name: &str| {
        query
            .pattern
            .as_deref()
            .is_none_or(|pattern| glob_matches(pattern, name))
    };
    let tagged_for = |object: &CatalogObject, role: &str| {
        object.slot_names().into_iter().any(|slot| {
            object
                .role_sets(slot)
                .iter()
                .any(|roles| roles.iter().any(|name| name.as_str() == role))
        })
    };
    let mut found = Vec::new();
    if wants("product") {
        for product in &catalog.products {
            let id = product.id.to_string();
            let object = CatalogObject::Product(product.clone());
            if named(&id) && role.is_none_or(|role| tagged_for(&object, role)) {
                found.push(format!("/products/{id}"));
            }
        }
    }
    if wants("suite") {
        for suite in &catalog.suites {
            let id = suite.id.to_string();
            let limited = |role: &str| {
                suite
                    .members
                    .iter()
                    .any(|member| member.roles.iter().any(|name| name.as_str() == role))
            };
            let object = CatalogObject::Suite(suite.clone());
            if named(&id) && role.is_none_or(|role| tagged_for(&object, role) || limited(role)) {
                found.push(format!("/suites/{id}"));
            }
        }
    }
    if wants("role") {
        for entry in &catalog.roles {
            let name = entry.role.name.as_str();
            let related = |role: &str| {
                name == role
                    || entry
                        .role
                        .parent
                        .as_ref()
                        .is_some_and(|p| p.as_str() == role)
            };
            if named(name) && role.is_none_or(related) {
                found.push(format!("/roles/{name}"));
            }
        }
    }
    if wants("machine") {
        let members: BTreeSet<String> = match role {
            Some(role) => catalog
                .roles
                .iter()
                .filter(|entry| entry.role.name.as_str() == role)
                .flat_map(|entry| entry.members.iter().map(|dn| dn.to_ascii_lowercase()))
                .collect(),
            None => BTreeSet::new(),
        };
        for entry in &catalog.machines {
            let name = entry.machine.name.as_str();
            if named(name) && (role.is_none() || members.contains(&entry.dn.to_ascii_lowercase())) {
                found.push(format!("/machines/{name}"));
            }
        }
    }
    for path in &found {
        line(output, path);
    }
    Ok(found.len())
}

/// `tree SUITE`: the suite, its slots, its members and, under each member
/// product, that product's slots with their versions.
pub async fn tree(
    directory: &Directory,
    suite: &str,
    output: &mut Output<'_>,
) -> Result<(), CommandFailed> {
    let id = roleout_model::ids::SuiteId::new(suite)
        .map_err(|_| CommandFailed(format!("no suite {suite:?} in the catalog")))?;
    let (source, products) = directory
        .load_suite_sources(&id)
        .await
        .map_err(|error| CommandFailed(format!("cannot read suite {suite}: {error}")))?;
    line(output, &format!("suite {} {}", source.id, source.version));
    let members = source.members.clone();
    let suite_object = CatalogObject::Suite(source);
    for slot in slot_lines(&suite_object) {
        line(output, &format!("  {slot}"));
    }
    for member in &members {
        line(output, &format!("  {}", member_line(member)));
        if let Some(product) = products.iter().find(|product| product.id == member.product) {
            let object = CatalogObject::Product(product.clone());
            line(
                output,
                &format!("    product {} {}", product.id, product.version),
            );
            for slot in slot_lines(&object) {
                line(output, &format!("      {slot}"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_runs_of_characters() {
        assert!(glob_matches("notes-*", "notes-client"));
        assert!(glob_matches("*client", "notes-client"));
        assert!(glob_matches("n*s-c*t", "notes-client"));
        assert!(glob_matches("*", "anything"));
        assert!(glob_matches("jre", "jre"));
        assert!(!glob_matches("jre", "jre8"));
        assert!(!glob_matches("notes-*", "domino"));
        assert!(!glob_matches("a*a", "a"));
    }

    #[test]
    fn paths_name_places_of_the_tree() {
        assert_eq!(Node::at([]).ok(), Some(Node::Root));
        assert_eq!(
            Node::at(["products", "jre"]).ok(),
            Some(Node::Product("jre".to_owned()))
        );
        let error = Node::at(["products", "jre", "fileset"]).err().map(|e| e.0);
        assert!(
            error.is_some_and(|message| message.starts_with("no such place /products/jre/fileset")),
        );
        assert!(Node::at(["builds"]).is_err());
    }
}
