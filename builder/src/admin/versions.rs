//! Role versions of product and suite slots as admins author them:
//! `version create`, `version edit`, `version delete` and `diff`.
//!
//! Every slot of a catalog object is a `Versioned<T>` with its own `T`, so
//! the commands reach a slot through [`SlotVersions`], a small object-safe
//! view of a `Versioned<T>` that can list, copy, drop and move versions
//! without knowing `T`. Each change loads the whole object, changes the
//! one slot in memory and stores the object through `store_product` /
//! `store_suite`, which is idempotent and switches the object atomically:
//! a reader sees the old object or the new one, never half an edit.

use std::any::Any;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use roleout_directory::Directory;
use roleout_directory::catalog::WriteSummary;
use roleout_model::descriptor::{self, Descriptor};
use roleout_model::ids::{ProductId, RoleName, SuiteId};
use roleout_model::product::{ProductModel, ProductSlot, ProductSource};
use roleout_model::role::{EffectiveRoles, RoleVersion, Versioned};
use roleout_model::suite::{SuiteSlot, SuiteSource};

use super::{CommandFailed, Output};

/// Which version of a slot: the untagged default or the one for a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tag {
    /// The default (untagged) version.
    Default,
    /// The version tagged for this role.
    Role(RoleName),
}

impl Tag {
    /// `default` or a role name.
    pub fn parse(text: &str) -> Result<Tag, CommandFailed> {
        if text == "default" {
            return Ok(Tag::Default);
        }
        RoleName::new(text)
            .map(Tag::Role)
            .map_err(|error| CommandFailed(format!("{text:?} is not a role name: {error}")))
    }
}

impl std::fmt::Display for Tag {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tag::Default => formatter.write_str("default"),
            Tag::Role(role) => formatter.write_str(role.as_str()),
        }
    }
}

/// A `Versioned<T>` seen without its `T`.
pub trait SlotVersions {
    /// The role set of every version, in order (empty: the default).
    fn role_sets(&self) -> Vec<BTreeSet<RoleName>>;
    /// Appends a copy of version `index` tagged with `roles`.
    fn duplicate(&mut self, index: usize, roles: BTreeSet<RoleName>);
    /// Replaces the role set of version `index`; an empty set makes it the
    /// default.
    fn set_roles(&mut self, index: usize, roles: BTreeSet<RoleName>);
    /// Drops version `index`.
    fn remove(&mut self, index: usize);
    /// Keeps version `index` only.
    fn keep_only(&mut self, index: usize);
    /// Drops every version.
    fn clear(&mut self);
    /// Appends version `index` of `other` (a slot of the same type) with
    /// `roles`; false when `other` holds another type.
    fn append_from(
        &mut self,
        other: &dyn SlotVersions,
        index: usize,
        roles: BTreeSet<RoleName>,
    ) -> bool;
    /// The slot itself, for [`SlotVersions::append_from`].
    fn as_any(&self) -> &dyn Any;

    /// The index of the version for `tag`: the default, or the version
    /// whose roles name the role.
    fn position(&self, tag: &Tag) -> Option<usize> {
        self.role_sets().iter().position(|roles| match tag {
            Tag::Default => roles.is_empty(),
            Tag::Role(role) => roles.contains(role),
        })
    }
}

impl<T: Clone + 'static> SlotVersions for Versioned<T> {
    fn role_sets(&self) -> Vec<BTreeSet<RoleName>> {
        self.versions
            .iter()
            .map(|version| version.roles.clone())
            .collect()
    }

    fn duplicate(&mut self, index: usize, roles: BTreeSet<RoleName>) {
        if let Some(version) = self.versions.get(index) {
            let value = version.value.clone();
            self.versions.push(RoleVersion { roles, value });
        }
    }

    fn set_roles(&mut self, index: usize, roles: BTreeSet<RoleName>) {
        if let Some(version) = self.versions.get_mut(index) {
            version.roles = roles;
        }
    }

    fn remove(&mut self, index: usize) {
        if index < self.versions.len() {
            self.versions.remove(index);
        }
    }

    fn keep_only(&mut self, index: usize) {
        let kept: Vec<_> = self.versions.drain(..).skip(index).take(1).collect();
        self.versions = kept;
    }

    fn clear(&mut self) {
        self.versions.clear();
    }

    fn append_from(
        &mut self,
        other: &dyn SlotVersions,
        index: usize,
        roles: BTreeSet<RoleName>,
    ) -> bool {
        let Some(other) = other.as_any().downcast_ref::<Versioned<T>>() else {
            return false;
        };
        match other.versions.get(index) {
            Some(version) => {
                self.versions.push(RoleVersion {
                    roles,
                    value: version.value.clone(),
                });
                true
            }
            None => false,
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A product or a suite, whichever an id names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogObject {
    /// A product.
    Product(ProductSource),
    /// A suite.
    Suite(SuiteSource),
}

impl CatalogObject {
    /// Loads the product `id`, or else the suite `id`; one plain line when
    /// neither exists.
    pub async fn load(directory: &Directory, id: &str) -> Result<CatalogObject, CommandFailed> {
        if let Ok(product_id) = ProductId::new(id)
            && let Ok(product) = directory.load_product(&product_id).await
        {
            return Ok(CatalogObject::Product(product));
        }
        if let Ok(suite_id) = SuiteId::new(id)
            && let Ok(suite) = directory.load_suite(&suite_id).await
        {
            return Ok(CatalogObject::Suite(suite));
        }
        Err(CommandFailed(format!(
            "no product or suite {id:?} in the catalog"
        )))
    }

    /// `product ID` or `suite ID`.
    pub fn describe(&self) -> String {
        match self {
            CatalogObject::Product(product) => format!("product {}", product.id),
            CatalogObject::Suite(suite) => format!("suite {}", suite.id),
        }
    }

    /// The names of the slots this kind of object has, in descriptor
    /// order.
    pub fn slot_names(&self) -> Vec<&'static str> {
        match self {
            CatalogObject::Product(_) => {
                ProductSlot::ALL.iter().map(|slot| slot.as_str()).collect()
            }
            CatalogObject::Suite(_) => SuiteSlot::ALL.iter().map(|slot| slot.as_str()).collect(),
        }
    }

    /// The slot called `name`; one plain line naming the valid ones when
    /// there is none.
    pub fn slot_mut(&mut self, name: &str) -> Result<&mut dyn SlotVersions, CommandFailed> {
        let described = self.describe();
        let known = self.slot_names().join(", ");
        let unknown =
            || CommandFailed(format!("{described} has no slot {name:?} (slots: {known})"));
        match self {
            CatalogObject::Product(product) => {
                let slot = ProductSlot::from_name(name).ok_or_else(unknown)?;
                Ok(product_slot_mut(product, slot))
            }
            CatalogObject::Suite(suite) => {
                let slot = SuiteSlot::from_name(name).ok_or_else(unknown)?;
                Ok(suite_slot_mut(suite, slot))
            }
        }
    }

    /// The role sets of the versions of slot `name` (no versions for a
    /// slot the object lacks).
    pub fn role_sets(&self, name: &str) -> Vec<BTreeSet<RoleName>> {
        let mut copy = self.clone();
        copy.slot_mut(name)
            .map(|slot| slot.role_sets())
            .unwrap_or_default()
    }

    /// Drops empty command slots, which `slot_mut` may have made.
    fn tidy(&mut self) {
        if let CatalogObject::Product(product) = self {
            product.commands.retain(|_, versions| !versions.is_empty());
        }
    }

    /// Empties every slot but `keep`.
    fn clear_other_slots(&mut self, keep: &str) {
        for name in self.slot_names() {
            if name != keep
                && let Ok(slot) = self.slot_mut(name)
            {
                slot.clear();
            }
        }
        if let CatalogObject::Suite(suite) = self {
            suite.members.clear();
        }
        self.tidy();
    }

    /// The canonical descriptor XML.
    pub fn to_xml(&self) -> String {
        let mut tidy = self.clone();
        tidy.tidy();
        match tidy {
            CatalogObject::Product(product) => descriptor::to_xml(&Descriptor::Product(product)),
            CatalogObject::Suite(suite) => descriptor::to_xml(&Descriptor::Suite(suite)),
        }
    }

    /// Stores the object (idempotent; atomic per object).
    pub async fn store(&self, directory: &Directory) -> Result<WriteSummary, CommandFailed> {
        let mut tidy = self.clone();
        tidy.tidy();
        let result = match &tidy {
            CatalogObject::Product(product) => directory.store_product(product).await,
            CatalogObject::Suite(suite) => directory.store_suite(suite).await,
        };
        result.map_err(|error| CommandFailed(format!("cannot store {}: {error}", self.describe())))
    }
}

/// The slot `slot` of `product`.
pub fn product_slot_mut(product: &mut ProductSource, slot: ProductSlot) -> &mut dyn SlotVersions {
    match slot {
        ProductSlot::Description => &mut product.description,
        ProductSlot::Size => &mut product.size,
        ProductSlot::Capabilities => &mut product.capabilities,
        ProductSlot::Dependencies => &mut product.dependencies,
        ProductSlot::Conflicts => &mut product.conflicts,
        ProductSlot::Variables => &mut product.variables,
        ProductSlot::Fileset => &mut product.fileset,
        ProductSlot::VersionCheck => &mut product.version_checker,
        ProductSlot::Incremental => &mut product.incremental,
        // An absent phase is made empty here; `tidy` drops it again.
        ProductSlot::Command(phase) => product.commands.entry(phase).or_default(),
    }
}

/// The slot `slot` of `suite`.
pub fn suite_slot_mut(suite: &mut SuiteSource, slot: SuiteSlot) -> &mut dyn SlotVersions {
    match slot {
        SuiteSlot::Description => &mut suite.description,
        SuiteSlot::Capabilities => &mut suite.capabilities,
        SuiteSlot::Categories => &mut suite.categories,
        SuiteSlot::Groups => &mut suite.groups,
        SuiteSlot::Variables => &mut suite.variables,
        SuiteSlot::Presentation => &mut suite.presentation,
        SuiteSlot::Linkage => &mut suite.linkage,
        SuiteSlot::Incremental => &mut suite.incremental,
        SuiteSlot::Policy => &mut suite.policy,
    }
}

/// `default` or the comma-separated roles of a version.
pub fn role_set_label(roles: &BTreeSet<RoleName>) -> String {
    if roles.is_empty() {
        "default".to_owned()
    } else {
        roles
            .iter()
            .map(RoleName::as_str)
            .collect::<Vec<_>>()
            .join("+")
    }
}

fn summary_text(summary: &WriteSummary) -> String {
    if summary.is_unchanged() {
        "nothing changed".to_owned()
    } else {
        format!(
            "{} added, {} modified, {} deleted",
            summary.added, summary.modified, summary.deleted
        )
    }
}

fn write_line(output: &mut Output<'_>, line: &str) {
    // A closed terminal cannot be reported to; the command still did its work.
    let _ = writeln!(output.out, "{line}");
}

/// `version create`: copies the `from` version of `slot` and tags the copy
/// for `role`.
pub async fn create(
    directory: &Directory,
    id: &str,
    slot: &str,
    role: &RoleName,
    from: &Tag,
    output: &mut Output<'_>,
) -> Result<(), CommandFailed> {
    let mut object = CatalogObject::load(directory, id).await?;
    let described = object.describe();
    let versions = object.slot_mut(slot)?;
    if versions.position(&Tag::Role(role.clone())).is_some() {
        return Err(CommandFailed(format!(
            "{described} already has a version of {slot} for role {role}; use version edit"
        )));
    }
    let index = versions.position(from).ok_or_else(|| {
        CommandFailed(format!(
            "{described} has no {slot} version for {from} to copy"
        ))
    })?;
    versions.duplicate(index, BTreeSet::from([role.clone()]));
    let written = object.store(directory).await?;
    write_line(
        output,
        &format!(
            "{described}: {slot} version for role {role} created from {from} ({})",
            summary_text(&written)
        ),
    );
    Ok(())
}

/// `version delete`: takes `role` off its version of `slot`; the version
/// goes when no other role shares it. The last version of a slot is never
/// deleted: that would remove the slot itself (an install command, a file
/// set), which is a change to the descriptor, not to a role version.
pub async fn delete(
    directory: &Directory,
    id: &str,
    slot: &str,
    role: &RoleName,
    output: &mut Output<'_>,
) -> Result<(), CommandFailed> {
    let mut object = CatalogObject::load(directory, id).await?;
    let described = object.describe();
    let versions = object.slot_mut(slot)?;
    let index = versions.position(&Tag::Role(role.clone())).ok_or_else(|| {
        CommandFailed(format!("{described} has no {slot} version for role {role}"))
    })?;
    let role_sets = versions.role_sets();
    let mut roles = role_sets.get(index).cloned().unwrap_or_default();
    roles.remove(role);
    if roles.is_empty() {
        if role_sets.len() == 1 {
            return Err(CommandFailed(format!(
                "{described}: the {slot} version for role {role} is the slot's only version; \
                 deleting it would remove the slot (edit the descriptor instead)"
            )));
        }
        versions.remove(index);
    } else {
        versions.set_roles(index, roles);
    }
    let written = object.store(directory).await?;
    write_line(
        output,
        &format!(
            "{described}: {slot} version for role {role} deleted ({})",
            summary_text(&written)
        ),
    );
    Ok(())
}

/// The text `version edit` opens: the whole object's descriptor in which
/// slot `slot` shows only the version for `tag`.
pub fn edit_text(object: &CatalogObject, slot: &str, tag: &Tag) -> Result<String, CommandFailed> {
    let mut view = object.clone();
    let described = view.describe();
    let versions = view.slot_mut(slot)?;
    let index = versions.position(tag).ok_or_else(|| {
        CommandFailed(format!(
            "{described} has no {slot} version for {tag}; create one with version create"
        ))
    })?;
    versions.keep_only(index);
    Ok(view.to_xml())
}

/// Applies an edited descriptor text to `object`: the text must parse and
/// validate as a descriptor of the same object whose slot `slot` holds one
/// version, and differ from the stored object nowhere else. Returns the
/// object with that version in place of the version for `tag`, or the
/// reasons (diagnostics first) it is refused.
pub fn apply_edit(
    object: &CatalogObject,
    slot: &str,
    tag: &Tag,
    file_name: &str,
    text: &[u8],
) -> Result<CatalogObject, Vec<String>> {
    let parsed = descriptor::parse(file_name, text);
    if parsed.has_errors() {
        return Err(parsed.errors().map(ToString::to_string).collect());
    }
    let described = object.describe();
    let mut edited = match (parsed.descriptor, object) {
        (Some(Descriptor::Product(product)), CatalogObject::Product(original))
            if product.id == original.id =>
        {
            CatalogObject::Product(product)
        }
        (Some(Descriptor::Suite(suite)), CatalogObject::Suite(original))
            if suite.id == original.id =>
        {
            CatalogObject::Suite(suite)
        }
        _ => {
            return Err(vec![format!(
                "{file_name}: the edit must stay a descriptor of {described}"
            )]);
        }
    };
    let versions = edited.slot_mut(slot).map_err(|error| vec![error.0])?;
    if versions.role_sets().len() != 1 {
        return Err(vec![format!(
            "{file_name}: the edit must hold exactly one {slot} element (found {})",
            versions.role_sets().len()
        )]);
    }
    // Everything outside the slot must be as stored: the edit is of one
    // version, and a change elsewhere would be stored unseen.
    if edited.without_slot(slot) != object.without_slot(slot) {
        return Err(vec![format!(
            "{file_name}: only the {slot} element may change; edit the descriptor and import it for other changes"
        )]);
    }
    let mut result = object.clone();
    let target = result.slot_mut(slot).map_err(|error| vec![error.0])?;
    let Some(index) = target.position(tag) else {
        return Err(vec![format!("{described} has no {slot} version for {tag}")]);
    };
    let new_roles = match tag {
        Tag::Default => BTreeSet::new(),
        Tag::Role(role) => BTreeSet::from([role.clone()]),
    };
    // A version shared with other roles stays theirs; this role gets its own.
    let mut remaining = target.role_sets().get(index).cloned().unwrap_or_default();
    if let Tag::Role(role) = tag {
        remaining.remove(role);
    }
    if remaining.is_empty() {
        target.remove(index);
    } else {
        target.set_roles(index, remaining);
    }
    let source = edited.slot_mut(slot).map_err(|error| vec![error.0])?;
    let target = result.slot_mut(slot).map_err(|error| vec![error.0])?;
    // Both are the same slot of the same kind of object, so of one type.
    if !target.append_from(source, 0, new_roles) {
        return Err(vec![format!(
            "{described}: the edited {slot} could not be read back"
        )]);
    }
    result.tidy();
    Ok(result)
}

impl CatalogObject {
    /// A copy with slot `slot` emptied: what an edit of that slot must
    /// leave unchanged.
    fn without_slot(&self, slot: &str) -> CatalogObject {
        let mut copy = self.clone();
        if let Ok(versions) = copy.slot_mut(slot) {
            versions.clear();
        }
        copy.tidy();
        copy
    }
}

/// The editor command: `$VISUAL`, else `$EDITOR`, else `vi`.
pub fn editor() -> String {
    ["VISUAL", "EDITOR"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|value| !value.trim().is_empty())
        .unwrap_or_else(|| "vi".to_owned())
}

/// Runs the editor on `file` through `sh`, so an editor setting with
/// arguments (`code --wait`) works as in other tools.
pub fn run_editor(file: &Path) -> Result<(), CommandFailed> {
    let editor = editor();
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(file)
        .status()
        .map_err(|error| CommandFailed(format!("cannot run the editor {editor:?}: {error}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(CommandFailed(format!(
            "the editor {editor:?} failed ({status}); the edit is kept in {}",
            file.display()
        )))
    }
}

/// Writes `text` to a new file only its owner can read: the temporary
/// directory is shared, and a descriptor is the admin's business.
fn write_private(file: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let mut handle = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(file)?;
    handle.write_all(text.as_bytes())
}

/// `version edit`: opens the version for `tag` of `slot` (or, with
/// `resume`, a kept edit) in the editor; stores it only when it parses,
/// validates and changes nothing outside the slot. A refused edit stays in
/// its file, whose path the error names.
pub async fn edit(
    directory: &Directory,
    id: &str,
    slot: &str,
    tag: &Tag,
    resume: Option<&Path>,
    output: &mut Output<'_>,
) -> Result<(), CommandFailed> {
    let object = CatalogObject::load(directory, id).await?;
    let described = object.describe();
    let file: PathBuf = match resume {
        Some(file) => {
            if !file.is_file() {
                return Err(CommandFailed(format!(
                    "cannot resume: {} is not a file",
                    file.display()
                )));
            }
            file.to_path_buf()
        }
        None => {
            let text = edit_text(&object, slot, tag)?;
            let file = std::env::temp_dir().join(format!(
                "roleout-edit-{id}-{slot}-{tag}-{}.xml",
                std::process::id()
            ));
            write_private(&file, &text).map_err(|error| {
                CommandFailed(format!("cannot write {}: {error}", file.display()))
            })?;
            file
        }
    };
    run_editor(&file)?;
    let text = std::fs::read(&file)
        .map_err(|error| CommandFailed(format!("cannot read {}: {error}", file.display())))?;
    let name = file.display().to_string();
    match apply_edit(&object, slot, tag, &name, &text) {
        Ok(changed) => {
            let written = if changed == object {
                WriteSummary::default()
            } else {
                changed.store(directory).await?
            };
            // Stored (or nothing to store): the edit has done its work.
            let _ = std::fs::remove_file(&file);
            write_line(
                output,
                &format!(
                    "{described}: {slot} version for {tag} stored ({})",
                    summary_text(&written)
                ),
            );
            Ok(())
        }
        Err(problems) => {
            for problem in &problems {
                let _ = writeln!(output.err, "{problem}");
            }
            Err(CommandFailed(format!(
                "{described}: the edit of {slot} for {tag} is refused ({} problem(s)); nothing was stored; \
                 the edit is kept in {name}; continue with: version edit {id} {slot} --role {tag} --resume {name}",
                problems.len()
            )))
        }
    }
}

/// A product assembled for one role (or for nobody, with
/// [`Tag::Default`]) as descriptor XML: each slot holds the one version
/// that role gets.
pub fn assembled_xml(
    product: &ProductSource,
    roles: &EffectiveRoles,
) -> Result<String, CommandFailed> {
    let (model, _) = product
        .select(roles)
        .map_err(|error| CommandFailed(error.to_string()))?;
    Ok(descriptor::to_xml(&Descriptor::Product(model_as_source(
        model,
    ))))
}

fn model_as_source(model: ProductModel) -> ProductSource {
    ProductSource {
        id: model.id,
        version: model.version,
        priority: model.priority,
        platform: model.platform,
        description: Versioned::single(model.description),
        size: Versioned::single(model.size),
        capabilities: Versioned::single(model.capabilities),
        dependencies: Versioned::single(model.dependencies),
        conflicts: Versioned::single(model.conflicts),
        variables: if model.variables.is_empty() {
            Versioned::default()
        } else {
            Versioned::single(model.variables)
        },
        fileset: Versioned::single(model.fileset),
        version_checker: model
            .version_checker
            .map(Versioned::single)
            .unwrap_or_default(),
        incremental: model.incremental.map(Versioned::single).unwrap_or_default(),
        commands: model
            .commands
            .into_iter()
            .map(|(phase, command)| (phase, Versioned::single(command)))
            .collect(),
    }
}

/// The XML of one version of one slot, untagged, with the object's header
/// and nothing else: what `diff --slot` compares.
pub fn slot_version_xml(
    object: &CatalogObject,
    slot: &str,
    tag: &Tag,
) -> Result<String, CommandFailed> {
    let mut view = object.clone();
    let described = view.describe();
    view.clear_other_slots(slot);
    let versions = view.slot_mut(slot)?;
    let index = versions
        .position(tag)
        .ok_or_else(|| CommandFailed(format!("{described} has no {slot} version for {tag}")))?;
    versions.keep_only(index);
    versions.set_roles(0, BTreeSet::new());
    Ok(view.to_xml())
}

/// `diff` of two texts, line by line: unified-style hunks with three lines
/// of context under `--- OLD` and `+++ NEW` headers; empty when equal.
pub fn unified_diff(old_name: &str, old: &str, new_name: &str, new: &str) -> String {
    let old_lines: Vec<&str> = old.lines().collect();
    let new_lines: Vec<&str> = new.lines().collect();
    let operations = line_operations(&old_lines, &new_lines);
    if operations
        .iter()
        .all(|operation| matches!(operation, Line::Same(..)))
    {
        return String::new();
    }
    const CONTEXT: usize = 3;
    let mut text = format!("--- {old_name}\n+++ {new_name}\n");
    let changed: Vec<usize> = operations
        .iter()
        .enumerate()
        .filter(|(_, operation)| !matches!(operation, Line::Same(..)))
        .map(|(index, _)| index)
        .collect();
    // Group changes whose contexts touch into one hunk.
    let mut hunks: Vec<(usize, usize)> = Vec::new();
    for index in changed {
        let start = index.saturating_sub(CONTEXT);
        let end = (index + CONTEXT + 1).min(operations.len());
        match hunks.last_mut() {
            Some((_, last_end)) if start <= *last_end => *last_end = end,
            _ => hunks.push((start, end)),
        }
    }
    for (start, end) in hunks {
        let (mut old_start, mut new_start) = (1, 1);
        for operation in &operations[..start] {
            match operation {
                Line::Same(..) => {
                    old_start += 1;
                    new_start += 1;
                }
                Line::Removed(_) => old_start += 1,
                Line::Added(_) => new_start += 1,
            }
        }
        let slice = &operations[start..end];
        let old_count = slice
            .iter()
            .filter(|op| !matches!(op, Line::Added(_)))
            .count();
        let new_count = slice
            .iter()
            .filter(|op| !matches!(op, Line::Removed(_)))
            .count();
        text.push_str(&format!(
            "@@ -{old_start},{old_count} +{new_start},{new_count} @@\n"
        ));
        for operation in slice {
            match operation {
                Line::Same(line) => text.push_str(&format!(" {line}\n")),
                Line::Removed(line) => text.push_str(&format!("-{line}\n")),
                Line::Added(line) => text.push_str(&format!("+{line}\n")),
            }
        }
    }
    text
}

#[derive(Debug, PartialEq, Eq)]
enum Line<'a> {
    Same(&'a str),
    Removed(&'a str),
    Added(&'a str),
}

/// The edit script from the longest common subsequence of lines. The
/// table is quadratic, which descriptors (a few hundred lines) afford.
fn line_operations<'a>(old: &[&'a str], new: &[&'a str]) -> Vec<Line<'a>> {
    let (rows, columns) = (old.len(), new.len());
    // lengths[i][j]: LCS length of old[i..] and new[j..].
    let mut lengths = vec![vec![0usize; columns + 1]; rows + 1];
    for i in (0..rows).rev() {
        for j in (0..columns).rev() {
            lengths[i][j] = if old[i] == new[j] {
                lengths[i + 1][j + 1] + 1
            } else {
                lengths[i + 1][j].max(lengths[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut operations = Vec::new();
    while i < rows && j < columns {
        if old[i] == new[j] {
            operations.push(Line::Same(old[i]));
            i += 1;
            j += 1;
        } else if lengths[i + 1][j] >= lengths[i][j + 1] {
            operations.push(Line::Removed(old[i]));
            i += 1;
        } else {
            operations.push(Line::Added(new[j]));
            j += 1;
        }
    }
    operations.extend(old[i..].iter().map(|line| Line::Removed(line)));
    operations.extend(new[j..].iter().map(|line| Line::Added(line)));
    operations
}

/// The requester roles of `tag`: none for the default, else the role and
/// its ancestors with their ranks, from the directory's roles.
pub async fn effective_roles(
    directory: &Directory,
    tag: &Tag,
) -> Result<EffectiveRoles, CommandFailed> {
    match tag {
        Tag::Default => Ok(EffectiveRoles::default()),
        Tag::Role(role) => {
            let hierarchy = directory
                .roles()
                .await
                .map_err(|error| CommandFailed(format!("cannot read the roles: {error}")))?;
            hierarchy
                .effective([role.clone()])
                .map_err(|error| CommandFailed(error.to_string()))
        }
    }
}

/// `diff PRODUCT --slot SLOT --role A [--against B]`: the two versions of
/// one slot.
pub async fn diff_slot(
    directory: &Directory,
    id: &str,
    slot: &str,
    role: &Tag,
    against: &Tag,
    output: &mut Output<'_>,
) -> Result<(), CommandFailed> {
    let object = CatalogObject::load(directory, id).await?;
    let old = slot_version_xml(&object, slot, against)?;
    let new = slot_version_xml(&object, slot, role)?;
    let text = unified_diff(
        &format!("{id} {slot} ({against})"),
        &old,
        &format!("{id} {slot} ({role})"),
        &new,
    );
    write_diff(
        output,
        &text,
        &format!("{id} {slot}: {against} and {role} are the same"),
    );
    Ok(())
}

/// `diff PRODUCT --role A --role B`: the product as role A gets it against
/// the product as role B gets it.
pub async fn diff_roles(
    directory: &Directory,
    id: &str,
    first: &Tag,
    second: &Tag,
    output: &mut Output<'_>,
) -> Result<(), CommandFailed> {
    let object = CatalogObject::load(directory, id).await?;
    let CatalogObject::Product(product) = object else {
        return Err(CommandFailed(format!(
            "{id} is a suite; diff by role compares products"
        )));
    };
    let old = assembled_xml(&product, &effective_roles(directory, first).await?)?;
    let new = assembled_xml(&product, &effective_roles(directory, second).await?)?;
    let text = unified_diff(
        &format!("{id} for {first}"),
        &old,
        &format!("{id} for {second}"),
        &new,
    );
    write_diff(
        output,
        &text,
        &format!("{id}: {first} and {second} get the same product"),
    );
    Ok(())
}

fn write_diff(output: &mut Output<'_>, text: &str, same: &str) {
    if text.is_empty() {
        write_line(output, same);
    } else {
        let _ = write!(output.out, "{text}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffs_show_changed_lines_with_context() {
        let old = "a\nb\nc\nd\ne\nf\ng\nh\n";
        let new = "a\nb\nc\nd\nE\nf\ng\nh\ni\n";
        let text = unified_diff("old", old, "new", new);
        assert_eq!(
            text,
            "--- old\n+++ new\n@@ -2,7 +2,8 @@\n b\n c\n d\n-e\n+E\n f\n g\n h\n+i\n"
        );
        assert_eq!(unified_diff("old", old, "new", old), "");
    }

    #[test]
    fn far_apart_changes_make_separate_hunks() {
        let old: String = (1..=20).map(|n| format!("{n}\n")).collect();
        let new = old.replace("2\n", "two\n").replace("19\n", "nineteen\n");
        let text = unified_diff("a", &old, "b", &new);
        assert_eq!(text.matches("@@ ").count(), 2, "{text}");
        assert!(text.contains("-19\n+nineteen\n"), "{text}");
    }

    fn notes_client() -> CatalogObject {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/notes-client.xml");
        let bytes = std::fs::read(path).unwrap();
        match descriptor::parse("notes-client.xml", &bytes).descriptor {
            Some(Descriptor::Product(product)) => CatalogObject::Product(product),
            other => panic!("notes-client.xml is a product: {other:?}"),
        }
    }

    #[test]
    fn an_unchanged_edit_gives_back_the_object() {
        let object = notes_client();
        let developer = Tag::Role(RoleName::new("developer").unwrap());
        let text = edit_text(&object, "fileset", &developer).unwrap();
        assert_eq!(text.matches("<fileset").count(), 1, "{text}");
        assert!(
            text.contains("<install"),
            "the rest of the product is shown"
        );
        let applied = apply_edit(&object, "fileset", &developer, "edit.xml", text.as_bytes());
        assert_eq!(applied, Ok(object));
    }

    #[test]
    fn an_edit_changes_only_its_role_version() {
        let object = notes_client();
        let developer = Tag::Role(RoleName::new("developer").unwrap());
        let text = edit_text(&object, "fileset", &developer)
            .unwrap()
            .replace("size=\"224\"", "size=\"300\"");
        let applied =
            apply_edit(&object, "fileset", &developer, "edit.xml", text.as_bytes()).unwrap();
        let default_before = slot_version_xml(&object, "fileset", &Tag::Default).unwrap();
        let default_after = slot_version_xml(&applied, "fileset", &Tag::Default).unwrap();
        assert_eq!(default_before, default_after);
        let developer_after = slot_version_xml(&applied, "fileset", &developer).unwrap();
        assert!(
            developer_after.contains("size=\"300\""),
            "{developer_after}"
        );

        let outside = text.replace("priority=\"20\"", "priority=\"1\"");
        let refused = apply_edit(
            &object,
            "fileset",
            &developer,
            "edit.xml",
            outside.as_bytes(),
        );
        assert!(
            refused
                .is_err_and(|problems| problems[0].contains("only the fileset element may change"))
        );
        let broken = apply_edit(&object, "fileset", &developer, "edit.xml", b"<product");
        assert!(broken.is_err_and(|problems| problems[0].starts_with("edit.xml:1:")));
    }

    #[test]
    fn slot_versions_copy_and_drop_without_knowing_the_type() {
        let developer = RoleName::new("developer").unwrap();
        let mut slot: Versioned<u32> = Versioned::single(1);
        let view: &mut dyn SlotVersions = &mut slot;
        assert_eq!(view.position(&Tag::Default), Some(0));
        view.duplicate(0, BTreeSet::from([developer.clone()]));
        assert_eq!(view.position(&Tag::Role(developer.clone())), Some(1));
        view.remove(0);
        assert_eq!(view.role_sets(), vec![BTreeSet::from([developer])]);
        let other: Versioned<String> = Versioned::single("x".to_owned());
        assert!(!view.append_from(&other, 0, BTreeSet::new()));
    }
}
