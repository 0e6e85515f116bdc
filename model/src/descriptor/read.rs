//! The second pass: the element tree to a [`ProductSource`] or a
//! [`SuiteSource`], with a diagnostic for every problem found.
//!
//! Conversion never stops at the first problem: a bad value is reported
//! and reading goes on with the next one, so an author sees every mistake
//! of a descriptor in one `check`. The model's newtypes do the checking of
//! single values (their error text becomes the message); this module adds
//! what only the descriptor as a whole can tell: unknown elements and
//! attributes, missing ones, two versions of a slot for the same roles,
//! names that refer to nothing, defaults that break their own rules,
//! templates that do not parse.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;

use crate::command::{
    CommandLineModel, DEFAULT_TIMEOUT_SECS, ExitCodeTable, InstallerKind, LogRules, OutcomeRules,
    OutputRules, Phase, ResponseFile,
};
use crate::condition::{
    Condition, IncrementalInstall, PackageManager, RunPolicy, VersionCheckerModel,
};
use crate::ids::{CapabilityName, ProductId, RoleName, Sha256, SuiteId, VariableName};
use crate::pattern::Pattern;
use crate::product::{
    Capabilities, Capability, CapabilityRequirement, Conflicts, DEFAULT_PRIORITY, Dependencies,
    InstallFile, InstallFileSet, InstallSize, Platform, ProductDescription, ProductRequirement,
    ProductSlot, ProductSource, SystemNeed, SystemRequirement,
};
use crate::role::{RoleVersion, Versioned};
use crate::suite::{
    OnFailure, ProductCapabilities, ProductCategory, ProductGroup, SuiteDescription, SuiteMember,
    SuitePolicy, SuiteSlot, SuiteSource, Translation, VariableLinkage, VariablePresentation,
    Widget,
};
use crate::text::LocalizedText;
use crate::variable::{ValidationRules, VariableKind, VariableModel};
use crate::version::{Version, VersionReq};

use super::dom::{Attribute, Document, Element, Node};
use super::{Descriptor, Diagnostic, PayloadFolder, Severity};

/// The element names of conditions.
const CONDITIONS: [&str; 12] = [
    "all",
    "any",
    "not",
    "file-exists",
    "file-sha256",
    "file-version",
    "package",
    "command",
    "process-not-running",
    "os",
    "arch",
    "hardware",
];

/// Where a diagnostic points.
struct Place {
    line: u32,
    column: u32,
    path: String,
}

fn at(element: &Element) -> Place {
    Place {
        line: element.line,
        column: element.column,
        path: element.path.clone(),
    }
}

fn at_attribute(element: &Element, attribute: &Attribute) -> Place {
    Place {
        line: attribute.line,
        column: attribute.column,
        path: format!("{}@{}", element.path, attribute.name),
    }
}

/// `text` with every `{{ version }}` (spaces inside the braces optional)
/// replaced by `own`, the product's version.
fn expand_own_version(text: &str, own: Option<&str>) -> Result<String, String> {
    let mut expanded = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        expanded.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(format!("{text:?} opens {{{{ without closing it"));
        };
        let name = after[..end].trim();
        if name != "version" {
            return Err(format!(
                "a version range may use only {{{{ version }}}} (the product's version), not {{{{ {name} }}}}"
            ));
        }
        let Some(own) = own else {
            return Err(
                "{{ version }} stands for a product's version; a suite has none".to_owned(),
            );
        };
        expanded.push_str(own);
        rest = &after[end + 2..];
    }
    expanded.push_str(rest);
    Ok(expanded)
}

/// A missing attribute is reported at its element, with the attribute's
/// path.
fn at_missing(element: &Element, name: &str) -> Place {
    Place {
        line: element.line,
        column: element.column,
        path: format!("{}@{}", element.path, name),
    }
}

/// Words for a set of roles in messages: "the default version" or "the
/// version for role(s) a b".
fn describe_roles(roles: &BTreeSet<RoleName>) -> String {
    if roles.is_empty() {
        "the default version (no role attribute)".to_owned()
    } else {
        let names: Vec<&str> = roles.iter().map(RoleName::as_str).collect();
        format!("the version for role(s) {}", names.join(" "))
    }
}

/// Converts the element tree of one descriptor, collecting diagnostics.
pub(super) struct Reader<'a> {
    file: &'a str,
    document: &'a Document,
    diagnostics: Vec<Diagnostic>,
    /// Names of the password variables of the descriptor being read, to
    /// warn when one lands on a command line.
    passwords: BTreeSet<String>,
    /// The templates read so far in the product being read, with where
    /// they are: checked against its variables once all are known.
    templates: Vec<(Place, String)>,
    /// The payload folder that fills and checks file digests and sizes.
    payloads: Option<&'a dyn PayloadFolder>,
    /// The version of the product being read, which `{{ version }}` in a
    /// version range stands for.
    own_version: Option<String>,
}

impl<'a> Reader<'a> {
    pub(super) fn new(
        file: &'a str,
        document: &'a Document,
        payloads: Option<&'a dyn PayloadFolder>,
    ) -> Self {
        Self {
            file,
            document,
            diagnostics: Vec::new(),
            passwords: BTreeSet::new(),
            templates: Vec::new(),
            payloads,
            own_version: None,
        }
    }

    pub(super) fn into_diagnostics(self) -> Vec<Diagnostic> {
        self.diagnostics
    }

    /// Reads the descriptor; `None` when it is too broken to build.
    pub(super) fn descriptor(&mut self) -> Option<Descriptor> {
        let root = self.document.root();
        match root.name.as_str() {
            "product" => self.product(root).map(Descriptor::Product),
            "suite" => self.suite(root).map(Descriptor::Suite),
            other => {
                self.error(
                    at(root),
                    format!("the root element must be <product> or <suite>, not <{other}>"),
                );
                None
            }
        }
    }

    // ---- diagnostics -------------------------------------------------

    fn push(&mut self, severity: Severity, place: Place, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic {
            severity,
            file: self.file.to_owned(),
            line: place.line,
            column: place.column,
            path: place.path,
            message: message.into(),
        });
    }

    fn error(&mut self, place: Place, message: impl Into<String>) {
        self.push(Severity::Error, place, message);
    }

    fn warning(&mut self, place: Place, message: impl Into<String>) {
        self.push(Severity::Warning, place, message);
    }

    // ---- generic element access --------------------------------------

    /// Reports every attribute of `element` not in `allowed`.
    fn check_attributes(&mut self, element: &Element, allowed: &[&str]) {
        for attribute in &element.attributes {
            if !allowed.contains(&attribute.name.as_str()) {
                let message = if allowed.is_empty() {
                    format!(
                        "unknown attribute {} on <{}>, which takes no attributes",
                        attribute.name, element.name
                    )
                } else {
                    format!(
                        "unknown attribute {} on <{}>; allowed: {}",
                        attribute.name,
                        element.name,
                        allowed.join(", ")
                    )
                };
                self.error(at_attribute(element, attribute), message);
            }
        }
    }

    /// The child elements of `element` named in `allowed`; reports other
    /// elements and any text that is not white space.
    fn children<'e>(&mut self, element: &'e Element, allowed: &[&str]) -> Vec<&'e Element> {
        let mut accepted = Vec::new();
        for node in &element.children {
            match node {
                Node::Element(child) if allowed.contains(&child.name.as_str()) => {
                    accepted.push(child);
                }
                Node::Element(child) => {
                    let message = if allowed.is_empty() {
                        format!(
                            "unknown element <{}> in <{}>, which takes no elements",
                            child.name, element.name
                        )
                    } else {
                        format!(
                            "unknown element <{}> in <{}>; allowed: {}",
                            child.name,
                            element.name,
                            allowed
                                .iter()
                                .map(|name| format!("<{name}>"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    };
                    self.error(at(child), message);
                }
                Node::Text(text) if !text.text.trim().is_empty() => {
                    let place = Place {
                        line: text.line,
                        column: text.column,
                        path: element.path.clone(),
                    };
                    let shown: String = text.text.trim().chars().take(40).collect();
                    self.error(
                        place,
                        format!(
                            "text {shown:?} is not allowed in <{}>, which holds only elements",
                            element.name
                        ),
                    );
                }
                Node::Text(_) => {}
            }
        }
        accepted
    }

    /// The text content of `element`, exactly as written; reports child
    /// elements.
    fn text(&mut self, element: &Element) -> String {
        let mut text = String::new();
        for node in &element.children {
            match node {
                Node::Text(piece) => text.push_str(&piece.text),
                Node::Element(child) => self.error(
                    at(child),
                    format!(
                        "<{}> holds only text; element <{}> is not allowed in it",
                        element.name, child.name
                    ),
                ),
            }
        }
        text
    }

    /// The attribute `name`, reporting its absence.
    fn required<'e>(&mut self, element: &'e Element, name: &str) -> Option<&'e Attribute> {
        let attribute = element.attribute(name);
        if attribute.is_none() {
            self.error(
                at_missing(element, name),
                format!("<{}> needs the attribute {name}", element.name),
            );
        }
        attribute
    }

    /// Parses `attribute` with `parse`, reporting the reason it fails.
    fn convert<T, E: Display>(
        &mut self,
        element: &Element,
        attribute: &Attribute,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        match parse(&attribute.value) {
            Ok(value) => Some(value),
            Err(error) => {
                self.error(at_attribute(element, attribute), error.to_string());
                None
            }
        }
    }

    /// A required attribute, parsed.
    fn value<T, E: Display>(
        &mut self,
        element: &Element,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        let attribute = self.required(element, name)?;
        self.convert(element, attribute, parse)
    }

    /// An optional attribute, parsed; `None` when absent or bad (bad
    /// values are reported).
    fn optional<T, E: Display>(
        &mut self,
        element: &Element,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        let attribute = element.attribute(name)?;
        self.convert(element, attribute, parse)
    }

    /// An optional string attribute as written.
    fn string(&self, element: &Element, name: &str) -> Option<String> {
        element
            .attribute(name)
            .map(|attribute| attribute.value.clone())
    }

    /// A required attribute that must not be empty.
    fn nonempty(&mut self, element: &Element, name: &str) -> Option<String> {
        self.value(element, name, |value| {
            if value.trim().is_empty() {
                Err(format!("{name} must not be empty"))
            } else {
                Ok(value.to_owned())
            }
        })
    }

    /// Parses a version range in which `{{ version }}` stands for the
    /// product's own version (so a check or a requirement follows a
    /// version bump made in one place); no other template is allowed.
    fn range_parser(&self) -> impl Fn(&str) -> Result<VersionReq, String> + use<> {
        let own = self.own_version.clone();
        move |text| {
            let expanded = expand_own_version(text, own.as_deref())?;
            VersionReq::parse(&expanded).map_err(|error| error.to_string())
        }
    }

    /// Checks that `text` parses as a Tera template.
    fn template(&mut self, place: Place, text: &str) {
        if let Err(reason) = check_template(text) {
            self.error(place, format!("template {text:?} does not parse: {reason}"));
        } else if text.contains("{{") || text.contains("{%") {
            self.templates.push((place, text.to_owned()));
        }
    }

    /// Checks every template of the product just read against the
    /// variables it can use: its own (any role version) and the built-in
    /// ones. A name neither is the error a machine would meet at install
    /// time, found here instead.
    fn check_template_names(&mut self, variables: &Versioned<Vec<VariableModel>>) {
        let mut known: BTreeMap<String, serde_json::Value> = BTreeMap::new();
        for variable in variables.versions.iter().flat_map(|version| &version.value) {
            let value = match variable.kind {
                VariableKind::Integer => serde_json::json!(1),
                VariableKind::Boolean => serde_json::json!(true),
                _ => serde_json::json!("x"),
            };
            known.insert(variable.name.to_string(), value);
        }
        let mut context = tera::Context::new();
        for name in crate::render::BUILT_IN_NAMES {
            context.insert(name, "x");
        }
        let vars: serde_json::Map<String, serde_json::Value> = known
            .iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        for (name, value) in &known {
            context.insert(name.as_str(), value);
        }
        context.insert("vars", &vars);
        let own: Vec<&str> = known.keys().map(String::as_str).collect();
        for (place, text) in std::mem::take(&mut self.templates) {
            if let Some(missing) = unknown_template_name(&text, &context) {
                let candidates = own
                    .iter()
                    .copied()
                    .chain(crate::render::BUILT_IN_NAMES.iter().copied());
                let suggestion = closest(&missing, candidates)
                    .map(|near| format!(" (did you mean {near}?)"))
                    .unwrap_or_default();
                self.error(
                    place,
                    format!(
                        "template {text:?} uses {missing}, which is neither a variable of this product{suggestion} nor a built-in one ({})",
                        crate::render::BUILT_IN_NAMES.join(", ")
                    ),
                );
            }
        }
    }

    fn template_attribute(&mut self, element: &Element, name: &str) -> Option<String> {
        let attribute = element.attribute(name)?;
        self.template(at_attribute(element, attribute), &attribute.value);
        Some(attribute.value.clone())
    }

    /// The `role` attribute of a versioned slot element.
    fn roles(&mut self, element: &Element) -> BTreeSet<RoleName> {
        self.optional(element, "role", parse_roles)
            .unwrap_or_default()
    }

    /// Texts of the children named `name` of `element`, by `lang`.
    fn localized(&mut self, children: &[&Element], name: &str) -> LocalizedText {
        let mut text = LocalizedText::default();
        let mut seen: BTreeMap<String, u32> = BTreeMap::new();
        for child in children.iter().filter(|child| child.name == name) {
            self.check_attributes(child, &["lang"]);
            let lang = self.optional(child, "lang", parse_lang).unwrap_or_default();
            let content = self.text(child);
            if let Some(first) = seen.get(&lang) {
                let which = if lang.is_empty() {
                    "without lang".to_owned()
                } else {
                    format!("for language {lang}")
                };
                self.error(
                    at(child),
                    format!("a second <{name}> {which}; the first is at line {first}"),
                );
                continue;
            }
            seen.insert(lang.clone(), child.line);
            text.insert(&lang, content);
        }
        text
    }

    /// Adds one version of a slot, refusing a second version for the same
    /// set of roles.
    fn add_version<T>(
        &mut self,
        element: &Element,
        slot: &mut Versioned<T>,
        lines: &mut Vec<(BTreeSet<RoleName>, u32)>,
        roles: BTreeSet<RoleName>,
        value: Option<T>,
    ) {
        if let Some((_, first)) = lines.iter().find(|(seen, _)| *seen == roles) {
            let message = format!(
                "a second <{}> for {}; the first is at line {first}",
                element.name,
                describe_roles(&roles)
            );
            let place = match element.attribute("role") {
                Some(attribute) => at_attribute(element, attribute),
                None => at(element),
            };
            self.error(place, message);
            return;
        }
        lines.push((roles.clone(), element.line));
        if let Some(value) = value {
            slot.versions.push(RoleVersion { roles, value });
        }
    }

    // ---- product -----------------------------------------------------

    fn product(&mut self, root: &'a Element) -> Option<ProductSource> {
        self.check_attributes(root, &["id", "version", "priority"]);
        let id = self.value(root, "id", |text| ProductId::new(text));
        let version = self.value(root, "version", |text| Version::new(text));
        self.own_version = version.as_ref().map(ToString::to_string);
        let priority = self
            .optional(root, "priority", parse_integer::<i32>)
            .unwrap_or(DEFAULT_PRIORITY);
        self.passwords = password_names(root);
        self.templates.clear();
        let mut names: Vec<&str> = vec!["platform"];
        names.extend(ProductSlot::ALL.iter().map(|slot| slot.as_str()));
        let children = self.children(root, &names);

        let mut platform: Option<(Platform, u32)> = None;
        let mut description = Versioned::default();
        let mut size = Versioned::default();
        let mut capabilities = Versioned::default();
        let mut dependencies = Versioned::default();
        let mut conflicts = Versioned::default();
        let mut variables = Versioned::default();
        let mut fileset = Versioned::default();
        let mut version_checker = Versioned::default();
        let mut incremental = Versioned::default();
        let mut commands: BTreeMap<Phase, Versioned<CommandLineModel>> = BTreeMap::new();
        let mut seen: BTreeMap<&str, Vec<(BTreeSet<RoleName>, u32)>> = BTreeMap::new();

        for child in children {
            if child.name == "platform" {
                let value = self.platform(child);
                if let Some((_, first)) = platform {
                    self.error(
                        at(child),
                        format!("a second <platform>; the first is at line {first}"),
                    );
                } else {
                    platform = Some((value, child.line));
                }
                continue;
            }
            let Some(slot) = ProductSlot::from_name(&child.name) else {
                continue;
            };
            let roles = self.roles(child);
            let mut lines = seen.remove(slot.as_str()).unwrap_or_default();
            match slot {
                ProductSlot::Description => {
                    let value = Some(self.product_description(child));
                    self.add_version(child, &mut description, &mut lines, roles, value);
                }
                ProductSlot::Size => {
                    let value = self.size(child);
                    self.add_version(child, &mut size, &mut lines, roles, value);
                }
                ProductSlot::Capabilities => {
                    let value = Some(self.capabilities(child));
                    self.add_version(child, &mut capabilities, &mut lines, roles, value);
                }
                ProductSlot::Dependencies => {
                    let value = Some(self.dependencies(child));
                    self.add_version(child, &mut dependencies, &mut lines, roles, value);
                }
                ProductSlot::Conflicts => {
                    let value = Some(self.conflicts(child));
                    self.add_version(child, &mut conflicts, &mut lines, roles, value);
                }
                ProductSlot::Variables => {
                    let value = Some(self.variables(child));
                    self.add_version(child, &mut variables, &mut lines, roles, value);
                }
                ProductSlot::Fileset => {
                    let value = Some(self.fileset(child));
                    self.add_version(child, &mut fileset, &mut lines, roles, value);
                }
                ProductSlot::VersionCheck => {
                    let value = self.version_check(child);
                    self.add_version(child, &mut version_checker, &mut lines, roles, value);
                }
                ProductSlot::Incremental => {
                    let value = self.incremental(child);
                    self.add_version(child, &mut incremental, &mut lines, roles, value);
                }
                ProductSlot::Command(phase) => {
                    let value = self.command(child);
                    let versions = commands.entry(phase).or_default();
                    // A phase written again for the same roles runs after
                    // the first, in the same step.
                    let earlier = versions
                        .versions
                        .iter_mut()
                        .find(|version| version.roles == roles);
                    match (earlier, value) {
                        // Its own errors are reported already.
                        (Some(_), None) => {}
                        (Some(earlier), Some(value)) => {
                            if value.remove_when_unassigned {
                                if let Some(attribute) = child.attribute("remove-when-unassigned") {
                                    self.error(
                                        at_attribute(child, attribute),
                                        "remove-when-unassigned belongs on the first <uninstall> of a role set; the ones after it run with it",
                                    );
                                }
                            }
                            earlier.value.then.push(value);
                        }
                        (_, value) => self.add_version(child, versions, &mut lines, roles, value),
                    }
                }
            }
            seen.insert(slot.as_str(), lines);
        }
        commands.retain(|_, versions| !versions.is_empty());
        self.check_template_names(&variables);
        Some(ProductSource {
            id: id?,
            version: version?,
            priority,
            platform: platform.map(|(platform, _)| platform).unwrap_or_default(),
            description,
            size,
            capabilities,
            dependencies,
            conflicts,
            variables,
            fileset,
            version_checker,
            incremental,
            commands,
        })
    }

    fn platform(&mut self, element: &Element) -> Platform {
        self.check_attributes(element, &["os", "arch"]);
        self.children(element, &[]);
        Platform {
            os: self
                .optional(element, "os", parse_os_names)
                .unwrap_or_default(),
            arch: self
                .optional(element, "arch", parse_arch_names)
                .unwrap_or_default(),
        }
    }

    fn product_description(&mut self, element: &Element) -> ProductDescription {
        self.check_attributes(element, &["role", "vendor", "licence", "media"]);
        let children = self.children(element, &["name", "summary"]);
        ProductDescription {
            vendor: self.string(element, "vendor").unwrap_or_default(),
            name: self.localized(&children, "name"),
            summary: self.localized(&children, "summary"),
            licence: self.string(element, "licence"),
            media: self.string(element, "media"),
        }
    }

    fn size(&mut self, element: &Element) -> Option<InstallSize> {
        self.check_attributes(element, &["role", "installed"]);
        self.children(element, &[]);
        let installed = self.value(element, "installed", parse_integer::<u64>)?;
        Some(InstallSize { installed })
    }

    fn provides(&mut self, element: &Element) -> Option<Capability> {
        self.check_attributes(element, &["name", "version"]);
        self.children(element, &[]);
        let name = self.value(element, "name", |text| CapabilityName::new(text));
        let version = self.optional(element, "version", |text| Version::new(text));
        Some(Capability {
            name: name?,
            version,
        })
    }

    fn capabilities(&mut self, element: &Element) -> Capabilities {
        self.check_attributes(element, &["role"]);
        let provides = self
            .children(element, &["provides"])
            .into_iter()
            .filter_map(|child| self.provides(child))
            .collect();
        Capabilities { provides }
    }

    /// `<x product="..." version="..."/>` (or `id=` in conflicts).
    fn product_requirement(&mut self, element: &Element, key: &str) -> Option<ProductRequirement> {
        self.check_attributes(element, &[key, "version"]);
        self.children(element, &[]);
        let product = self.value(element, key, |text| ProductId::new(text));
        let versions = self
            .optional(element, "version", self.range_parser())
            .unwrap_or_default();
        Some(ProductRequirement {
            product: product?,
            versions,
        })
    }

    /// `<x capability="..." version="..."/>` (or `name=` in conflicts).
    fn capability_requirement(
        &mut self,
        element: &Element,
        key: &str,
    ) -> Option<CapabilityRequirement> {
        self.check_attributes(element, &[key, "version"]);
        self.children(element, &[]);
        let capability = self.value(element, key, |text| CapabilityName::new(text));
        let versions = self
            .optional(element, "version", self.range_parser())
            .unwrap_or_default();
        Some(CapabilityRequirement {
            capability: capability?,
            versions,
        })
    }

    fn dependencies(&mut self, element: &Element) -> Dependencies {
        self.check_attributes(element, &["role"]);
        let mut dependencies = Dependencies::default();
        for child in self.children(
            element,
            &[
                "prerequisite",
                "corequisite",
                "requires",
                "replaces",
                "obsoletes",
                "requires-system",
            ],
        ) {
            match child.name.as_str() {
                "requires-system" => dependencies.system.extend(self.system_requirement(child)),
                "prerequisite" => dependencies
                    .prerequisites
                    .extend(self.product_requirement(child, "product")),
                "corequisite" => dependencies
                    .corequisites
                    .extend(self.product_requirement(child, "product")),
                "replaces" => dependencies
                    .replaces
                    .extend(self.product_requirement(child, "product")),
                "obsoletes" => dependencies
                    .obsoletes
                    .extend(self.product_requirement(child, "product")),
                _ => dependencies
                    .capabilities
                    .extend(self.capability_requirement(child, "capability")),
            }
        }
        dependencies
    }

    /// `<requires-system package="…" manager="…" version="…" provider="…"/>`
    /// or `<requires-system file="…" provider="…"/>`.
    fn system_requirement(&mut self, element: &Element) -> Option<SystemRequirement> {
        self.check_attributes(
            element,
            &["package", "manager", "version", "file", "provider"],
        );
        self.children(element, &[]);
        let provider = self.optional(element, "provider", |text| ProductId::new(text));
        let need = match (element.attribute("package"), element.attribute("file")) {
            (Some(_), None) => {
                let manager = self.value(element, "manager", parse_package_manager);
                let name = self.nonempty(element, "package");
                let versions = self
                    .optional(element, "version", self.range_parser())
                    .unwrap_or_default();
                SystemNeed::Package {
                    manager: manager?,
                    name: name?,
                    versions,
                }
            }
            (None, Some(_)) => {
                for unused in ["manager", "version"] {
                    if let Some(attribute) = element.attribute(unused) {
                        self.error(
                            at_attribute(element, attribute),
                            format!("{unused} applies to a package; a file requirement takes only file and provider"),
                        );
                    }
                }
                let path = self.template_attribute(element, "file")?;
                if path.trim().is_empty() {
                    self.error(at(element), "file must not be empty");
                    return None;
                }
                SystemNeed::File { path }
            }
            _ => {
                self.error(
                    at(element),
                    "<requires-system> names exactly one of package (with manager) or file",
                );
                return None;
            }
        };
        Some(SystemRequirement { need, provider })
    }

    fn conflicts(&mut self, element: &Element) -> Conflicts {
        self.check_attributes(element, &["role"]);
        let mut conflicts = Conflicts::default();
        for child in self.children(element, &["product", "capability"]) {
            if child.name == "product" {
                conflicts
                    .products
                    .extend(self.product_requirement(child, "id"));
            } else {
                conflicts
                    .capabilities
                    .extend(self.capability_requirement(child, "name"));
            }
        }
        conflicts
    }

    fn fileset(&mut self, element: &Element) -> InstallFileSet {
        self.check_attributes(element, &["role"]);
        let mut files = Vec::new();
        let mut paths: BTreeMap<String, u32> = BTreeMap::new();
        for child in self.children(element, &["file"]) {
            self.check_attributes(child, &["path", "sha256", "size", "source", "mode"]);
            self.children(child, &[]);
            let path = self.value(child, "path", parse_payload_path);
            let sha256 = self.optional(child, "sha256", |text| Sha256::new(text));
            let size = self.optional(child, "size", parse_integer::<u64>);
            let (sha256, size) = match &path {
                Some(path) => self.file_digest(child, path, sha256, size),
                None => (None, None),
            };
            let source = self.string(child, "source");
            let mode = self.optional(child, "mode", parse_mode);
            if let Some(path) = &path {
                if let Some(first) = paths.get(path) {
                    let place = child
                        .attribute("path")
                        .map_or_else(|| at(child), |attribute| at_attribute(child, attribute));
                    self.error(
                        place,
                        format!("the file {path:?} is listed twice; the first is at line {first}"),
                    );
                    continue;
                }
                paths.insert(path.clone(), child.line);
            }
            if let (Some(path), Some(sha256), Some(size)) = (path, sha256, size) {
                files.push(InstallFile {
                    path,
                    sha256,
                    size,
                    source,
                    mode,
                });
            }
        }
        InstallFileSet { files }
    }

    /// A file's digest and size: as written, else from the payload
    /// folder; both checked against the folder's file when there is one.
    fn file_digest(
        &mut self,
        element: &Element,
        path: &str,
        sha256: Option<Sha256>,
        size: Option<u64>,
    ) -> (Option<Sha256>, Option<u64>) {
        let written = |name: &str| {
            element
                .attribute(name)
                .map_or_else(|| at(element), |attribute| at_attribute(element, attribute))
        };
        let Some(payloads) = self.payloads else {
            for (name, missing) in [("sha256", sha256.is_none()), ("size", size.is_none())] {
                if missing && element.attribute(name).is_none() {
                    self.error(
                        at(element),
                        format!(
                            "the file {path:?} has no {name}: write it, or read the descriptor with its payload folder (roleout-admin import --payloads DIR, check --payloads DIR), which fills it in"
                        ),
                    );
                }
            }
            return (sha256, size);
        };
        match payloads.digest_and_size(path) {
            Err(reason) => {
                if sha256.is_none() || size.is_none() {
                    self.error(
                        at(element),
                        format!("the file {path:?} cannot be read from the payload folder to fill in its digest and size: {reason}"),
                    );
                }
                (sha256, size)
            }
            Ok((actual_sha256, actual_size)) => {
                if let Some(written_sha256) = &sha256
                    && *written_sha256 != actual_sha256
                {
                    let place = written("sha256");
                    self.error(
                        place,
                        format!("the file {path:?} in the payload folder has the SHA-256 {actual_sha256}, not {written_sha256}: leave sha256 out to have it filled in"),
                    );
                }
                if let Some(written_size) = size
                    && written_size != actual_size
                {
                    let place = written("size");
                    self.error(
                        place,
                        format!("the file {path:?} in the payload folder has {actual_size} bytes, not {written_size}: leave size out to have it filled in"),
                    );
                }
                (Some(actual_sha256), Some(actual_size))
            }
        }
    }

    fn version_check(&mut self, element: &Element) -> Option<VersionCheckerModel> {
        self.check_attributes(element, &["role"]);
        let conditions = self.children(element, &CONDITIONS);
        // Counting every child element: an unknown one is reported as such,
        // not again as a missing condition.
        let count = element.elements().count();
        if count != 1 {
            self.error(
                at(element),
                format!("<version-check> holds exactly one condition; it has {count}"),
            );
        }
        let installed = self.condition(conditions.first()?)?;
        Some(VersionCheckerModel { installed })
    }

    fn incremental(&mut self, element: &Element) -> Option<IncrementalInstall> {
        self.check_attributes(element, &["role", "run"]);
        let run = self
            .optional(element, "run", parse_run_policy)
            .unwrap_or_default();
        let conditions = self.children(element, &CONDITIONS);
        let count = element.elements().count();
        if count > 1 {
            self.error(
                at(element),
                format!(
                    "<incremental> holds at most one condition (combine several with <all> \
                     or <any>); it has {count}"
                ),
            );
        }
        let when = match conditions.first() {
            Some(condition) => Some(self.condition(condition)?),
            None => None,
        };
        Some(IncrementalInstall { when, run })
    }

    fn arguments(&mut self, children: &[&Element]) -> Vec<String> {
        let mut argv = Vec::new();
        for child in children.iter().filter(|child| child.name == "arg") {
            self.check_attributes(child, &[]);
            let text = self.text(child);
            self.template(at(child), &text);
            if let Some(password) = self.password_in(&text) {
                self.warning(
                    at(child),
                    format!(
                        "this argument uses the password variable {password}: its value will \
                         be visible in process listings; pass it through <env> or a \
                         <response-file> instead"
                    ),
                );
            }
            argv.push(text);
        }
        argv
    }

    fn password_in(&self, text: &str) -> Option<String> {
        template_identifiers(text)
            .into_iter()
            .find(|identifier| self.passwords.contains(identifier))
    }

    fn command(&mut self, element: &Element) -> Option<CommandLineModel> {
        self.check_attributes(
            element,
            &[
                "role",
                "kind",
                "timeout",
                "check-interval",
                "retries",
                "shell",
                "working-dir",
                "remove-when-unassigned",
            ],
        );
        let kind = self
            .optional(element, "kind", parse_installer_kind)
            .unwrap_or_default();
        let remove_when_unassigned = self
            .optional(element, "remove-when-unassigned", parse_boolean)
            .unwrap_or(false);
        if remove_when_unassigned
            && element.name != "uninstall"
            && let Some(attribute) = element.attribute("remove-when-unassigned")
        {
            self.error(
                at_attribute(element, attribute),
                "remove-when-unassigned belongs on <uninstall>: it says whether that command runs when the product is no longer assigned",
            );
        }
        let timeout_secs = self
            .optional(element, "timeout", parse_positive_seconds)
            .unwrap_or(DEFAULT_TIMEOUT_SECS);
        let check_interval_secs = self.optional(element, "check-interval", parse_positive_seconds);
        let retries = self
            .optional(element, "retries", parse_integer::<u32>)
            .unwrap_or(0);
        let shell = self
            .optional(element, "shell", parse_boolean)
            .unwrap_or(false);
        if shell {
            if let Some(attribute) = element.attribute("shell") {
                self.warning(
                    at_attribute(element, attribute),
                    "shell=\"true\": the first <arg> runs as a script through /bin/sh -c, \
                     with the shell's quoting and expansion",
                );
            }
        }
        let working_dir = self.template_attribute(element, "working-dir");
        let children = self.children(element, &["arg", "env", "response-file", "outcome"]);
        let argv = self.arguments(&children);
        if shell
            && let Some(script) = argv.first()
            && (script.contains("$0") || script.contains("${0"))
            && let Some(first) = children.iter().find(|child| child.name == "arg")
        {
            self.warning(
                at(first),
                "the script uses $0, which is \"sh\" here: Roleout runs /bin/sh -c SCRIPT sh ARG..., \
                 so the <arg> after the script is $1 (in the sh -c 'script' name args idiom it would be $0)",
            );
        }
        if argv.is_empty() {
            self.error(
                at(element),
                format!(
                    "<{}> needs at least one <arg> (the program to run)",
                    element.name
                ),
            );
        }
        let mut env = BTreeMap::new();
        let mut env_lines: BTreeMap<String, u32> = BTreeMap::new();
        for child in children.iter().filter(|child| child.name == "env") {
            self.check_attributes(child, &["name"]);
            let name = self.value(child, "name", parse_env_name);
            let value = self.text(child);
            self.template(at(child), &value);
            let Some(name) = name else { continue };
            if let Some(first) = env_lines.get(&name) {
                self.error(
                    at(child),
                    format!(
                        "the environment variable {name} is set twice; the first is at line {first}"
                    ),
                );
                continue;
            }
            env_lines.insert(name.clone(), child.line);
            env.insert(name, value);
        }
        let mut response_file = None;
        for (index, child) in children
            .iter()
            .filter(|child| child.name == "response-file")
            .enumerate()
        {
            self.check_attributes(child, &["path"]);
            let path = self.nonempty(child, "path");
            if let Some(attribute) = child.attribute("path") {
                self.template(at_attribute(child, attribute), &attribute.value);
            }
            let content = self.text(child);
            self.template(at(child), &content);
            if index > 0 {
                self.error(at(child), "a command has at most one <response-file>");
                continue;
            }
            response_file = path.map(|path| ResponseFile { path, content });
        }
        let mut outcome = OutcomeRules::default();
        for (index, child) in children
            .iter()
            .filter(|child| child.name == "outcome")
            .enumerate()
        {
            let rules = self.outcome(child);
            if index > 0 {
                self.error(at(child), "a command has at most one <outcome>");
            } else {
                outcome = rules;
            }
        }
        Some(CommandLineModel {
            kind,
            argv,
            shell,
            working_dir,
            env,
            response_file,
            timeout_secs,
            check_interval_secs,
            retries,
            outcome,
            remove_when_unassigned,
            then: Vec::new(),
        })
    }

    fn outcome(&mut self, element: &Element) -> OutcomeRules {
        self.check_attributes(
            element,
            &[
                "success-codes",
                "reboot-codes",
                "retry-codes",
                "log",
                "success-pattern",
                "failure-pattern",
            ],
        );
        let mut exit_codes = ExitCodeTable::default();
        if let Some(success) = self.optional(element, "success-codes", parse_codes) {
            exit_codes.success = success;
        }
        exit_codes.reboot = self
            .optional(element, "reboot-codes", parse_codes)
            .unwrap_or_default();
        exit_codes.retry = self
            .optional(element, "retry-codes", parse_codes)
            .unwrap_or_default();
        let lists = [
            ("success-codes", &exit_codes.success),
            ("reboot-codes", &exit_codes.reboot),
            ("retry-codes", &exit_codes.retry),
        ];
        for (index, (name, codes)) in lists.iter().enumerate() {
            for (other, other_codes) in &lists[index + 1..] {
                if let Some(code) = codes.iter().find(|code| other_codes.contains(code)) {
                    let place = element
                        .attribute(other)
                        .map_or_else(|| at(element), |attribute| at_attribute(element, attribute));
                    self.error(
                        place,
                        format!("exit code {code} is in both {name} and {other}"),
                    );
                }
            }
        }
        let mut success = Vec::new();
        let mut failure = Vec::new();
        success.extend(self.optional(element, "success-pattern", parse_pattern));
        failure.extend(self.optional(element, "failure-pattern", parse_pattern));
        for child in self.children(element, &["success-pattern", "failure-pattern"]) {
            self.check_attributes(child, &[]);
            let text = self.text(child);
            match parse_pattern(&text) {
                Ok(pattern) if child.name == "success-pattern" => success.push(pattern),
                Ok(pattern) => failure.push(pattern),
                Err(error) => self.error(at(child), error),
            }
        }
        let mut output = None;
        let log = match self.template_attribute(element, "log") {
            Some(path) if path.trim().is_empty() => {
                self.error(at_missing(element, "log"), "log must not be empty");
                None
            }
            Some(path) => Some(LogRules {
                path,
                success,
                failure,
            }),
            None => {
                // Without a log file, the patterns are matched against what
                // the command prints.
                output = (!success.is_empty() || !failure.is_empty())
                    .then(|| OutputRules { success, failure });
                None
            }
        };
        OutcomeRules {
            exit_codes,
            log,
            output,
        }
    }

    // ---- conditions --------------------------------------------------

    /// Reads the condition children of `element` as a list.
    fn condition_list(&mut self, element: &Element) -> Vec<Condition> {
        self.children(element, &CONDITIONS)
            .into_iter()
            .filter_map(|child| self.condition(child))
            .collect()
    }

    fn condition(&mut self, element: &Element) -> Option<Condition> {
        let condition = match element.name.as_str() {
            "all" => {
                self.check_attributes(element, &[]);
                Condition::All(self.condition_list(element))
            }
            "any" => {
                self.check_attributes(element, &[]);
                Condition::Any(self.condition_list(element))
            }
            "not" => {
                self.check_attributes(element, &[]);
                let mut inner = self.condition_list(element);
                if element.elements().count() != 1 {
                    self.error(
                        at(element),
                        format!(
                            "<not> holds exactly one condition; it has {}",
                            element.elements().count()
                        ),
                    );
                    return None;
                }
                Condition::Not(Box::new(inner.pop()?))
            }
            "file-exists" => {
                self.check_attributes(element, &["path"]);
                self.children(element, &[]);
                Condition::FileExists {
                    path: self.path_template(element)?,
                }
            }
            "file-sha256" => {
                self.check_attributes(element, &["path", "sha256"]);
                self.children(element, &[]);
                let path = self.path_template(element);
                let sha256 = self.value(element, "sha256", |text| Sha256::new(text));
                Condition::FileSha256 {
                    path: path?,
                    sha256: sha256?,
                }
            }
            "file-version" => {
                self.check_attributes(element, &["path", "pattern", "version"]);
                self.children(element, &[]);
                let path = self.path_template(element);
                let pattern = self.optional(element, "pattern", parse_pattern);
                let versions = self.value(element, "version", self.range_parser());
                Condition::FileVersion {
                    path: path?,
                    pattern,
                    versions: versions?,
                }
            }
            "package" => {
                self.check_attributes(element, &["manager", "name", "version"]);
                self.children(element, &[]);
                let manager = self.value(element, "manager", parse_package_manager);
                let name = self.nonempty(element, "name");
                let versions = self
                    .optional(element, "version", self.range_parser())
                    .unwrap_or_default();
                Condition::Package {
                    manager: manager?,
                    name: name?,
                    versions,
                }
            }
            "command" => {
                self.check_attributes(element, &["exit-code", "output", "version"]);
                let exit_code = self
                    .optional(element, "exit-code", parse_integer::<i32>)
                    .unwrap_or(0);
                let output = self.optional(element, "output", parse_pattern);
                let versions = self.optional(element, "version", self.range_parser());
                let children = self.children(element, &["arg"]);
                let argv = self.arguments(&children);
                if argv.is_empty() {
                    self.error(
                        at(element),
                        "<command> needs at least one <arg> (the program to run)",
                    );
                }
                Condition::Command {
                    argv,
                    exit_code,
                    output,
                    versions,
                }
            }
            "process-not-running" => {
                self.check_attributes(element, &["name"]);
                self.children(element, &[]);
                Condition::ProcessNotRunning {
                    name: self.nonempty(element, "name")?,
                }
            }
            "os" => {
                self.check_attributes(element, &["family", "distribution", "version"]);
                self.children(element, &[]);
                let family = self.value(element, "family", |text| {
                    parse_nonempty_words(text).and_then(|words| {
                        words.iter().try_for_each(|word| check_os(word))?;
                        Ok(words)
                    })
                });
                let distribution = self
                    .optional(element, "distribution", parse_words)
                    .unwrap_or_default();
                let versions = self
                    .optional(element, "version", self.range_parser())
                    .unwrap_or_default();
                Condition::Os {
                    family: family?,
                    distribution,
                    versions,
                }
            }
            "arch" => {
                self.check_attributes(element, &["names"]);
                self.children(element, &[]);
                Condition::Arch {
                    names: self.value(element, "names", |text| {
                        parse_nonempty_words(text).and_then(|words| {
                            words.iter().try_for_each(|word| check_arch(word))?;
                            Ok(words)
                        })
                    })?,
                }
            }
            "hardware" => {
                self.check_attributes(element, &["fact", "matches", "at-least"]);
                self.children(element, &[]);
                let fact = self.value(element, "fact", |text| {
                    if crate::inventory::FACT_NAMES.contains(&text) {
                        Ok(text.to_owned())
                    } else {
                        Err(format!(
                            "{text:?} is not a hardware fact; the facts are {}",
                            crate::inventory::FACT_NAMES.join(", ")
                        ))
                    }
                })?;
                let matches = self.optional(element, "matches", parse_pattern);
                let at_least = self.optional(element, "at-least", |text| {
                    text.parse::<u64>()
                        .map_err(|_| format!("{text:?} is not a whole number"))
                });
                if matches.is_some() && at_least.is_some() {
                    self.error(
                        at(element),
                        "<hardware> takes matches or at-least, not both",
                    );
                }
                Condition::Hardware {
                    fact,
                    matches,
                    at_least,
                }
            }
            other => {
                self.error(at(element), format!("<{other}> is not a condition"));
                return None;
            }
        };
        Some(condition)
    }

    /// A required, non-empty `path` attribute that must parse as a template.
    fn path_template(&mut self, element: &Element) -> Option<String> {
        let path = self.nonempty(element, "path")?;
        if let Some(attribute) = element.attribute("path") {
            self.template(at_attribute(element, attribute), &path);
        }
        Some(path)
    }

    // ---- variables ---------------------------------------------------

    fn variables(&mut self, element: &Element) -> Vec<VariableModel> {
        self.check_attributes(element, &["role"]);
        let kinds: Vec<&str> = VariableKind::ALL.iter().map(|kind| kind.as_str()).collect();
        let mut variables = Vec::new();
        let mut names: BTreeMap<String, u32> = BTreeMap::new();
        for child in self.children(element, &kinds) {
            let variable = self.variable(child);
            if let Some(attribute) = child.attribute("name") {
                if let Some(first) = names.get(&attribute.value) {
                    self.error(
                        at_attribute(child, attribute),
                        format!(
                            "a second variable named {}; the first is at line {first}",
                            attribute.value
                        ),
                    );
                    continue;
                }
                names.insert(attribute.value.clone(), child.line);
            }
            variables.extend(variable);
        }
        variables
    }

    fn variable(&mut self, element: &Element) -> Option<VariableModel> {
        let kind = VariableKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == element.name)?;
        let mut allowed = vec!["name", "default", "required", "validators"];
        match kind {
            VariableKind::String | VariableKind::Password => allowed.extend([
                "min-length",
                "max-length",
                "allowed-chars",
                "forbidden-chars",
                "pattern",
            ]),
            VariableKind::Path => allowed.extend([
                "min-length",
                "max-length",
                "allowed-chars",
                "forbidden-chars",
                "pattern",
                "relative",
            ]),
            VariableKind::Integer => allowed.extend(["min", "max"]),
            VariableKind::Boolean | VariableKind::Choice => {}
        }
        self.check_attributes(element, &allowed);
        let name = self.value(element, "name", |text| VariableName::new(text));
        let required = self
            .optional(element, "required", parse_boolean)
            .unwrap_or(false);
        let rules = ValidationRules {
            min_length: self.optional(element, "min-length", parse_integer::<u32>),
            max_length: self.optional(element, "max-length", parse_integer::<u32>),
            allowed_chars: self.string(element, "allowed-chars"),
            forbidden_chars: self.string(element, "forbidden-chars"),
            pattern: self.optional(element, "pattern", parse_pattern),
            min: self.optional(element, "min", parse_integer::<i64>),
            max: self.optional(element, "max", parse_integer::<i64>),
            choices: Vec::new(),
            relative: self
                .optional(element, "relative", parse_boolean)
                .unwrap_or(false),
            validators: self
                .optional(element, "validators", parse_words)
                .unwrap_or_default(),
        };
        let mut rules = rules;
        if let (Some(min), Some(max)) = (rules.min_length, rules.max_length) {
            if min > max {
                self.error(
                    at_missing(element, "min-length"),
                    format!("min-length {min} is greater than max-length {max}"),
                );
            }
        }
        if let (Some(min), Some(max)) = (rules.min, rules.max) {
            if min > max {
                self.error(
                    at_missing(element, "min"),
                    format!("min {min} is greater than max {max}"),
                );
            }
        }
        let mut child_names = vec!["label"];
        if kind == VariableKind::Choice {
            child_names.push("option");
        }
        let children = self.children(element, &child_names);
        let label = self.localized(&children, "label");
        let mut options = BTreeSet::new();
        for option in children.iter().filter(|child| child.name == "option") {
            self.check_attributes(option, &[]);
            let text = self.text(option);
            if !options.insert(text.clone()) {
                self.error(at(option), format!("the option {text:?} is listed twice"));
            } else {
                rules.choices.push(text);
            }
        }
        if kind == VariableKind::Choice && rules.choices.is_empty() {
            self.error(at(element), "<choice> needs at least one <option>");
        }
        let default = element.attribute("default").map(|attribute| {
            if kind == VariableKind::Password {
                self.error(
                    at_attribute(element, attribute),
                    "a password may not have a default: a secret does not belong in a catalog",
                );
            } else if let Err(reason) = check_default(kind, &rules, &attribute.value) {
                self.error(
                    at_attribute(element, attribute),
                    format!(
                        "the default {:?} breaks the variable's own rules: {reason}",
                        attribute.value
                    ),
                );
            }
            attribute.value.clone()
        });
        Some(VariableModel {
            name: name?,
            kind,
            default,
            required,
            label,
            rules,
        })
    }

    // ---- suite -------------------------------------------------------

    fn suite(&mut self, root: &'a Element) -> Option<SuiteSource> {
        self.check_attributes(root, &["id", "version"]);
        let id = self.value(root, "id", |text| SuiteId::new(text));
        let version = self.value(root, "version", |text| Version::new(text));
        self.passwords = password_names(root);
        let mut names: Vec<&str> = SuiteSlot::ALL.iter().map(|slot| slot.as_str()).collect();
        names.push("products");
        let children = self.children(root, &names);

        let mut description = Versioned::default();
        let mut capabilities = Versioned::default();
        let mut categories = Versioned::default();
        let mut groups = Versioned::default();
        let mut variables = Versioned::default();
        let mut presentation = Versioned::default();
        let mut linkage = Versioned::default();
        let mut incremental = Versioned::default();
        let mut policy = Versioned::default();
        let mut members: Option<(Vec<SuiteMember>, u32)> = None;
        let mut seen: BTreeMap<&str, Vec<(BTreeSet<RoleName>, u32)>> = BTreeMap::new();
        // Elements naming products or variables, checked once everything
        // is read.
        let mut product_references: Vec<&Element> = Vec::new();
        let mut variable_references: Vec<&Element> = Vec::new();

        for child in &children {
            if child.name == "products" {
                let list = self.members(child);
                if let Some((_, first)) = members {
                    self.error(
                        at(child),
                        format!("a second <products>; the first is at line {first}"),
                    );
                } else {
                    members = Some((list, child.line));
                }
                continue;
            }
            let Some(slot) = SuiteSlot::from_name(&child.name) else {
                continue;
            };
            let roles = self.roles(child);
            let mut lines = seen.remove(slot.as_str()).unwrap_or_default();
            match slot {
                SuiteSlot::Description => {
                    let value = Some(self.suite_description(child));
                    self.add_version(child, &mut description, &mut lines, roles, value);
                }
                SuiteSlot::Capabilities => {
                    let value = Some(self.suite_capabilities(child));
                    self.add_version(child, &mut capabilities, &mut lines, roles, value);
                }
                SuiteSlot::Categories => {
                    let value = Some(self.categories(child, &mut product_references));
                    self.add_version(child, &mut categories, &mut lines, roles, value);
                }
                SuiteSlot::Groups => {
                    let value = Some(self.groups(child, &mut product_references));
                    self.add_version(child, &mut groups, &mut lines, roles, value);
                }
                SuiteSlot::Variables => {
                    let value = Some(self.variables(child));
                    self.add_version(child, &mut variables, &mut lines, roles, value);
                }
                SuiteSlot::Presentation => {
                    let value = Some(self.presentation(child, &mut variable_references));
                    self.add_version(child, &mut presentation, &mut lines, roles, value);
                }
                SuiteSlot::Linkage => {
                    let value = Some(self.linkage(
                        child,
                        &mut variable_references,
                        &mut product_references,
                    ));
                    self.add_version(child, &mut linkage, &mut lines, roles, value);
                }
                SuiteSlot::Incremental => {
                    let value = self.incremental(child);
                    self.add_version(child, &mut incremental, &mut lines, roles, value);
                }
                SuiteSlot::Policy => {
                    let value = Some(self.policy(child));
                    self.add_version(child, &mut policy, &mut lines, roles, value);
                }
            }
            seen.insert(slot.as_str(), lines);
        }
        let Some((members, _)) = members else {
            self.error(
                at(root),
                "a suite needs a <products> element listing its products",
            );
            return None;
        };
        // Cross-checks: every name used must be defined in this suite.
        let products: BTreeSet<&str> = members
            .iter()
            .map(|member| member.product.as_str())
            .collect();
        for element in product_references {
            // Members of categories and groups say ref=, links product=.
            let Some(attribute) = element
                .attribute("ref")
                .or_else(|| element.attribute("product"))
            else {
                continue;
            };
            if ProductId::new(attribute.value.as_str()).is_ok()
                && !products.contains(attribute.value.as_str())
            {
                self.error(
                    at_attribute(element, attribute),
                    format!(
                        "product {} is not in this suite's <products>",
                        attribute.value
                    ),
                );
            }
        }
        let defined: BTreeSet<&str> = variables
            .versions
            .iter()
            .flat_map(|version: &RoleVersion<Vec<VariableModel>>| version.value.iter())
            .map(|variable| variable.name.as_str())
            .collect();
        for element in variable_references {
            let key = if element.name == "link" {
                "variable"
            } else {
                "name"
            };
            let Some(attribute) = element.attribute(key) else {
                continue;
            };
            if VariableName::new(attribute.value.as_str()).is_ok()
                && !defined.contains(attribute.value.as_str())
            {
                self.error(
                    at_attribute(element, attribute),
                    format!(
                        "variable {} is not defined in this suite's <variables>",
                        attribute.value
                    ),
                );
            }
        }
        Some(SuiteSource {
            id: id?,
            version: version?,
            description,
            capabilities,
            categories,
            groups,
            variables,
            presentation,
            linkage,
            incremental,
            policy,
            members,
        })
    }

    fn suite_description(&mut self, element: &Element) -> SuiteDescription {
        self.check_attributes(element, &["role", "vendor"]);
        let children = self.children(element, &["name", "summary"]);
        SuiteDescription {
            vendor: self.string(element, "vendor").unwrap_or_default(),
            name: self.localized(&children, "name"),
            summary: self.localized(&children, "summary"),
        }
    }

    fn suite_capabilities(&mut self, element: &Element) -> ProductCapabilities {
        self.check_attributes(element, &["role"]);
        let mut capabilities = ProductCapabilities::default();
        for child in self.children(element, &["provides", "requires"]) {
            if child.name == "provides" {
                capabilities.provides.extend(self.provides(child));
            } else {
                capabilities
                    .requires
                    .extend(self.capability_requirement(child, "capability"));
            }
        }
        capabilities
    }

    /// The `<product ref=".."/>` children and label of a category or group.
    fn product_list(
        &mut self,
        element: &'a Element,
        references: &mut Vec<&'a Element>,
    ) -> Option<(String, LocalizedText, Vec<ProductId>)> {
        self.check_attributes(element, &["name"]);
        let name = self.nonempty(element, "name");
        let children = self.children(element, &["label", "product"]);
        let label = self.localized(&children, "label");
        let mut products = Vec::new();
        let mut listed = BTreeSet::new();
        for child in children.iter().filter(|child| child.name == "product") {
            self.check_attributes(child, &["ref"]);
            self.children(child, &[]);
            if let Some(product) = self.value(child, "ref", |text| ProductId::new(text)) {
                if !listed.insert(product.clone()) {
                    self.error(
                        at(child),
                        format!("product {product} is listed twice in <{}>", element.name),
                    );
                    continue;
                }
                products.push(product);
            }
            references.push(child);
        }
        Some((name?, label, products))
    }

    fn categories(
        &mut self,
        element: &'a Element,
        references: &mut Vec<&'a Element>,
    ) -> Vec<ProductCategory> {
        self.check_attributes(element, &["role"]);
        let mut categories: Vec<ProductCategory> = Vec::new();
        let mut names = BTreeSet::new();
        for child in self.children(element, &["category"]) {
            if let Some((name, label, products)) = self.product_list(child, references) {
                if !names.insert(name.clone()) {
                    self.error(at(child), format!("a second category named {name}"));
                    continue;
                }
                categories.push(ProductCategory {
                    name,
                    label,
                    products,
                });
            }
        }
        categories
    }

    fn groups(
        &mut self,
        element: &'a Element,
        references: &mut Vec<&'a Element>,
    ) -> Vec<ProductGroup> {
        self.check_attributes(element, &["role"]);
        let mut groups: Vec<ProductGroup> = Vec::new();
        let mut names = BTreeSet::new();
        for child in self.children(element, &["group"]) {
            if let Some((name, label, products)) = self.product_list(child, references) {
                if !names.insert(name.clone()) {
                    self.error(at(child), format!("a second group named {name}"));
                    continue;
                }
                groups.push(ProductGroup {
                    name,
                    label,
                    products,
                });
            }
        }
        groups
    }

    fn presentation(
        &mut self,
        element: &'a Element,
        references: &mut Vec<&'a Element>,
    ) -> Vec<VariablePresentation> {
        self.check_attributes(element, &["role"]);
        let mut presentations: Vec<VariablePresentation> = Vec::new();
        let mut presented = BTreeSet::new();
        for (index, child) in self
            .children(element, &["variable"])
            .into_iter()
            .enumerate()
        {
            self.check_attributes(child, &["name", "order", "widget"]);
            let variable = self.value(child, "name", |text| VariableName::new(text));
            let order = self
                .optional(child, "order", parse_integer::<u32>)
                .unwrap_or_else(|| u32::try_from(index + 1).unwrap_or(u32::MAX));
            let widget = self
                .optional(child, "widget", parse_widget)
                .unwrap_or_default();
            let children = self.children(child, &["label", "help"]);
            let label = self.localized(&children, "label");
            let help = self.localized(&children, "help");
            references.push(child);
            let Some(variable) = variable else { continue };
            if !presented.insert(variable.clone()) {
                self.error(at(child), format!("variable {variable} is presented twice"));
                continue;
            }
            presentations.push(VariablePresentation {
                variable,
                label,
                help,
                order,
                widget,
            });
        }
        presentations
    }

    fn linkage(
        &mut self,
        element: &'a Element,
        variable_references: &mut Vec<&'a Element>,
        product_references: &mut Vec<&'a Element>,
    ) -> Vec<VariableLinkage> {
        self.check_attributes(element, &["role"]);
        let mut links = Vec::new();
        for child in self.children(element, &["link"]) {
            self.check_attributes(
                child,
                &["variable", "product", "product-variable", "template"],
            );
            let suite_variable = self.value(child, "variable", |text| VariableName::new(text));
            let product = self.value(child, "product", |text| ProductId::new(text));
            let product_variable =
                self.value(child, "product-variable", |text| VariableName::new(text));
            variable_references.push(child);
            product_references.push(child);
            let maps = self.children(child, &["map"]);
            let template = self.template_attribute(child, "template");
            let translation = match (template, maps.is_empty()) {
                (Some(_), false) => {
                    self.error(
                        at(child),
                        "a <link> translates either with template= or with <map> entries, \
                         not both",
                    );
                    Translation::Identity
                }
                (Some(template), true) => Translation::Template(template),
                (None, true) => Translation::Identity,
                (None, false) => {
                    let mut table = BTreeMap::new();
                    for map in maps {
                        self.check_attributes(map, &["from", "to"]);
                        self.children(map, &[]);
                        let from = self.required(map, "from").map(|a| a.value.clone());
                        let to = self.required(map, "to").map(|a| a.value.clone());
                        let (Some(from), Some(to)) = (from, to) else {
                            continue;
                        };
                        if table.contains_key(&from) {
                            self.error(at(map), format!("the value {from:?} is mapped twice"));
                            continue;
                        }
                        table.insert(from, to);
                    }
                    Translation::Map(table)
                }
            };
            if let (Some(suite_variable), Some(product), Some(product_variable)) =
                (suite_variable, product, product_variable)
            {
                links.push(VariableLinkage {
                    suite_variable,
                    product,
                    product_variable,
                    translation,
                });
            }
        }
        links
    }

    fn policy(&mut self, element: &Element) -> SuitePolicy {
        self.check_attributes(element, &["role", "on-failure"]);
        self.children(element, &[]);
        SuitePolicy {
            on_failure: self
                .optional(element, "on-failure", parse_on_failure)
                .unwrap_or_default(),
        }
    }

    fn members(&mut self, element: &Element) -> Vec<SuiteMember> {
        self.check_attributes(element, &[]);
        let mut members: Vec<SuiteMember> = Vec::new();
        let mut listed = BTreeSet::new();
        for child in self.children(element, &["product"]) {
            self.check_attributes(child, &["ref", "version", "role"]);
            self.children(child, &[]);
            let product = self.value(child, "ref", |text| ProductId::new(text));
            let versions = self
                .optional(child, "version", self.range_parser())
                .unwrap_or_default();
            let roles = self.roles(child);
            let Some(product) = product else { continue };
            // A product may be listed once per role set: a role's own entry
            // (another version range for pilots) wins over the default.
            if !listed.insert((product.clone(), roles.clone())) {
                let which = if roles.is_empty() {
                    "without role".to_owned()
                } else {
                    format!(
                        "for role {}",
                        roles
                            .iter()
                            .map(RoleName::as_str)
                            .collect::<Vec<_>>()
                            .join(" ")
                    )
                };
                self.error(
                    at(child),
                    format!("product {product} is listed twice in <products> {which}"),
                );
                continue;
            }
            members.push(SuiteMember {
                product,
                versions,
                roles,
            });
        }
        members
    }
}

// ---- value parsers ---------------------------------------------------------

fn parse_integer<T: std::str::FromStr>(text: &str) -> Result<T, String>
where
    T::Err: Display,
{
    text.trim()
        .parse::<T>()
        .map_err(|error| format!("{text:?} is not a valid number here: {error}"))
}

/// A regular expression; the engine's reason without its own "error:"
/// prefix, which would read oddly inside a diagnostic.
fn parse_pattern(text: &str) -> Result<Pattern, String> {
    Pattern::new(text).map_err(|error| {
        format!(
            "invalid pattern {:?}: {}",
            error.pattern,
            error.reason.trim_start_matches("error: ")
        )
    })
}

fn parse_positive_seconds(text: &str) -> Result<u64, String> {
    match parse_integer::<u64>(text)? {
        0 => Err("a number of seconds must be at least 1".to_owned()),
        seconds => Ok(seconds),
    }
}

fn parse_boolean(text: &str) -> Result<bool, String> {
    match text.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(format!("{other:?} is not a boolean: write true or false")),
    }
}

fn parse_words(text: &str) -> Result<Vec<String>, String> {
    Ok(text.split_whitespace().map(str::to_owned).collect())
}

/// The architecture names machines report (Rust's `std::env::consts::ARCH`,
/// what `roleout` sends at enrolment).
pub(crate) const ARCH_NAMES: [&str; 12] = [
    "x86_64",
    "x86",
    "aarch64",
    "arm",
    "riscv64",
    "powerpc64",
    "powerpc",
    "s390x",
    "loongarch64",
    "mips64",
    "mips",
    "sparc64",
];

/// The OS families machines report (Rust's `std::env::consts::OS`).
pub(crate) const OS_NAMES: [&str; 8] = [
    "linux", "windows", "macos", "freebsd", "netbsd", "openbsd", "solaris", "android",
];

/// Why `name` is not an architecture a machine reports, with the name to
/// write instead where it is another system's spelling.
fn check_arch(name: &str) -> Result<(), String> {
    if ARCH_NAMES.contains(&name) {
        return Ok(());
    }
    if matches!(name.to_ascii_lowercase().as_str(), "all" | "any" | "noarch") {
        return Err(format!(
            "{name:?} is not an architecture: leave arch out for a product every architecture gets"
        ));
    }
    let instead = roleout_arch(name);
    Err(match instead {
        Some(instead) => format!(
            "{name:?} is another system's name for an architecture; machines report {instead:?}: write {instead}"
        ),
        None => format!(
            "{name:?} is not an architecture machines report ({})",
            ARCH_NAMES.join(", ")
        ),
    })
}

/// The architecture name machines report for `name`, another system's
/// spelling of it included (Debian's `amd64` and `arm64`, `i686`...);
/// `None` for a name that is unknown or no architecture (`all`, `noarch`).
pub fn roleout_arch(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_lowercase().as_str() {
        "amd64" | "x64" | "x86-64" | "x86_64" => "x86_64",
        "i386" | "i486" | "i586" | "i686" | "ia32" | "x86" => "x86",
        "arm64" | "aarch64" | "armv8" => "aarch64",
        "armhf" | "armel" | "armv7" | "armv7l" | "armv6l" | "arm" => "arm",
        "ppc64el" | "ppc64le" | "ppc64" | "powerpc64" => "powerpc64",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        _ => return None,
    })
}

/// Why `name` is not an OS family a machine reports, with the name to
/// write instead where one is meant.
fn check_os(name: &str) -> Result<(), String> {
    if OS_NAMES.contains(&name) {
        return Ok(());
    }
    let lowered = name.to_ascii_lowercase();
    let instead = match lowered.as_str() {
        "gnu/linux" | "linux-gnu" | "linux" => Some("linux"),
        "darwin" | "osx" | "macosx" | "mac" | "macos" => Some("macos"),
        "win" | "win32" | "win64" | "windows" => Some("windows"),
        "debian" | "ubuntu" | "rhel" | "centos" | "fedora" | "suse" | "opensuse" | "alpine"
        | "arch" => {
            return Err(format!(
                "{name:?} is a distribution, not an OS family: write linux, and name the distribution in an <os family=\"linux\" distribution=\"{lowered}\"/> condition"
            ));
        }
        _ => None,
    };
    Err(match instead {
        Some(instead) => format!("{name:?}: machines report {instead:?}: write {instead}"),
        None => format!(
            "{name:?} is not an OS family machines report ({})",
            OS_NAMES.join(", ")
        ),
    })
}

fn parse_arch_names(text: &str) -> Result<Vec<String>, String> {
    let words = parse_words(text)?;
    words.iter().try_for_each(|word| check_arch(word))?;
    Ok(words)
}

fn parse_os_names(text: &str) -> Result<Vec<String>, String> {
    let words = parse_words(text)?;
    words.iter().try_for_each(|word| check_os(word))?;
    Ok(words)
}

fn parse_nonempty_words(text: &str) -> Result<Vec<String>, String> {
    let words = parse_words(text)?;
    if words.is_empty() {
        return Err("the list is empty; give at least one name".to_owned());
    }
    Ok(words)
}

fn parse_roles(text: &str) -> Result<BTreeSet<RoleName>, String> {
    let mut roles = BTreeSet::new();
    for word in text.split_whitespace() {
        let role = RoleName::new(word).map_err(|error| error.to_string())?;
        if !roles.insert(role) {
            return Err(format!("the role {word} is named twice"));
        }
    }
    if roles.is_empty() {
        return Err("role is empty; leave the attribute out for the default version".to_owned());
    }
    Ok(roles)
}

/// A language tag: letters, digits and `-`, starting with a letter.
fn parse_lang(text: &str) -> Result<String, String> {
    let valid = !text.is_empty()
        && text.len() <= 35
        && text.starts_with(|c: char| c.is_ascii_alphabetic())
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if valid {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(format!(
            "invalid language tag {text:?}: write a tag like en, de or pt-BR"
        ))
    }
}

/// A relative path inside the payload directory.
fn parse_payload_path(text: &str) -> Result<String, String> {
    let fail = |reason: &str| Err(format!("invalid file path {text:?}: {reason}"));
    if text.is_empty() {
        return fail("it is empty");
    }
    if text.starts_with('/') || text.starts_with('\\') || text.get(1..2) == Some(":") {
        return fail("it must be relative to the payload directory");
    }
    if text.contains('\\') {
        return fail("use / to separate directories");
    }
    if text
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return fail("it may not contain empty, '.' or '..' parts");
    }
    Ok(text.to_owned())
}

/// Unix permission bits in octal (`0644`).
fn parse_mode(text: &str) -> Result<u32, String> {
    let mode = u32::from_str_radix(text.trim(), 8)
        .map_err(|_| format!("invalid mode {text:?}: write octal permission bits like 0644"))?;
    if mode > 0o7777 {
        return Err(format!("invalid mode {text:?}: it is larger than 07777"));
    }
    Ok(mode)
}

fn parse_codes(text: &str) -> Result<Vec<i32>, String> {
    let codes = text
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|part| !part.is_empty())
        .map(|part| {
            part.parse::<i32>()
                .map_err(|_| format!("{part:?} is not an exit code"))
        })
        .collect::<Result<Vec<i32>, String>>()?;
    if codes.is_empty() {
        return Err("the list of exit codes is empty".to_owned());
    }
    Ok(codes)
}

fn parse_env_name(text: &str) -> Result<String, String> {
    let valid = text.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "invalid environment variable name {text:?}: use letters, digits and '_', not \
             starting with a digit"
        ))
    }
}

/// Picks the one of `options` whose name is `text`, naming them all when
/// none is.
fn parse_choice<T: Copy>(what: &str, text: &str, options: &[(&str, T)]) -> Result<T, String> {
    options
        .iter()
        .find(|(name, _)| *name == text)
        .map(|(_, value)| *value)
        .ok_or_else(|| {
            let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
            format!("unknown {what} {text:?}; use one of {}", names.join(", "))
        })
}

fn parse_installer_kind(text: &str) -> Result<InstallerKind, String> {
    let options: Vec<(&str, InstallerKind)> = InstallerKind::ALL
        .iter()
        .map(|kind| (kind.as_str(), *kind))
        .collect();
    parse_choice("installer kind", text, &options)
}

fn parse_run_policy(text: &str) -> Result<RunPolicy, String> {
    parse_choice(
        "run policy",
        text,
        &[
            ("once", RunPolicy::Once),
            ("always", RunPolicy::Always),
            ("on-change", RunPolicy::OnChange),
        ],
    )
}

fn parse_package_manager(text: &str) -> Result<PackageManager, String> {
    parse_choice(
        "package manager",
        text,
        &[("dpkg", PackageManager::Dpkg), ("rpm", PackageManager::Rpm)],
    )
}

fn parse_widget(text: &str) -> Result<Widget, String> {
    parse_choice(
        "widget",
        text,
        &[
            ("text", Widget::Text),
            ("password", Widget::Password),
            ("checkbox", Widget::Checkbox),
            ("select", Widget::Select),
            ("file", Widget::File),
        ],
    )
}

fn parse_on_failure(text: &str) -> Result<OnFailure, String> {
    parse_choice(
        "failure policy",
        text,
        &[("stop", OnFailure::Stop), ("continue", OnFailure::Continue)],
    )
}

// ---- checks ----------------------------------------------------------------

/// Whether `text` parses as a Tera template; the parser's reason if not.
pub(super) fn check_template(text: &str) -> Result<(), String> {
    let mut tera = tera::Tera::default();
    tera.add_raw_template("descriptor", text).map_err(|error| {
        // Tera wraps the parser's error, a drawing over several lines:
        // ` --> 1:12`, the text with a caret under it, `= expected ...`.
        // The position and the expectation are what a diagnostic needs.
        let mut source: &dyn std::error::Error = &error;
        while let Some(inner) = source.source() {
            source = inner;
        }
        let report = source.to_string();
        let mut position = None;
        let mut expected = None;
        for line in report.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("-->") {
                position = Some(rest.trim().to_owned());
            } else if let Some(rest) = line.strip_prefix("= ") {
                expected = Some(rest.trim().to_owned());
            }
        }
        match (position, expected) {
            (Some(position), Some(expected)) => format!("at {position}, {expected}"),
            (None, Some(expected)) => expected,
            _ => report
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .collect::<Vec<_>>()
                .join(" "),
        }
    })
}

/// The first name `text` (a template that parses) uses that `context`
/// lacks, found by rendering it as a machine would, strictly.
fn unknown_template_name(text: &str, context: &tera::Context) -> Option<String> {
    let mut tera = tera::Tera::default();
    tera.add_raw_template("descriptor", text).ok()?;
    let error = tera.render("descriptor", context).err()?;
    let mut source: &dyn std::error::Error = &error;
    loop {
        let message = source.to_string();
        if let Some(rest) = message.strip_prefix("Variable `")
            && let Some((name, tail)) = rest.split_once('`')
            && tail.contains("not found in context")
        {
            // `vars.x` names the variable after the dot.
            let name = name.strip_prefix("vars.").unwrap_or(name);
            return Some(name.split('.').next().unwrap_or(name).to_owned());
        }
        source = source.source()?;
    }
}

/// The candidate nearest to `wanted` by edit distance, when it is close
/// (at most a third of its length apart): the likely intended spelling.
fn closest<'c>(wanted: &str, candidates: impl Iterator<Item = &'c str>) -> Option<&'c str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut previous: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut current = vec![i + 1];
            for (j, cb) in b.iter().enumerate() {
                let substitution = previous[j] + usize::from(ca != *cb);
                current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
            }
            previous = current;
        }
        previous[b.len()]
    }
    candidates
        .map(|candidate| (distance(wanted, candidate), candidate))
        .filter(|(distance, _)| *distance * 3 <= wanted.chars().count().max(3))
        .min()
        .map(|(_, candidate)| candidate)
}

/// The identifiers inside `{{ }}` and `{% %}` blocks of a template.
fn template_identifiers(text: &str) -> Vec<String> {
    let mut identifiers = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(['{']) {
        let after = &rest[start + 1..];
        let closing = match after.chars().next() {
            Some('{') => "}}",
            Some('%') => "%}",
            _ => {
                rest = after;
                continue;
            }
        };
        let body_start = 1;
        let Some(end) = after[body_start..].find(closing) else {
            break;
        };
        let body = &after[body_start..body_start + end];
        identifiers.extend(
            body.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|word| !word.is_empty())
                .map(str::to_owned),
        );
        rest = &after[body_start + end + closing.len()..];
    }
    identifiers
}

/// The names of the password variables anywhere under `root`'s
/// `<variables>`.
fn password_names(root: &Element) -> BTreeSet<String> {
    root.elements()
        .filter(|element| element.name == "variables")
        .flat_map(Element::elements)
        .filter(|element| element.name == "password")
        .filter_map(|element| element.attribute("name"))
        .map(|attribute| attribute.value.clone())
        .collect()
}

/// Whether `value` satisfies the rules a descriptor can check without the
/// program that registered custom validators.
fn check_default(kind: VariableKind, rules: &ValidationRules, value: &str) -> Result<(), String> {
    match kind {
        VariableKind::Boolean => {
            parse_boolean(value)?;
        }
        VariableKind::Integer => {
            let number = parse_integer::<i64>(value)?;
            if rules.min.is_some_and(|min| number < min) {
                return Err(format!("it is below min {}", rules.min.unwrap_or_default()));
            }
            if rules.max.is_some_and(|max| number > max) {
                return Err(format!("it is above max {}", rules.max.unwrap_or_default()));
            }
        }
        VariableKind::Choice => {
            if !rules.choices.iter().any(|choice| choice == value) {
                return Err("it is not one of the <option>s".to_owned());
            }
        }
        VariableKind::String | VariableKind::Password | VariableKind::Path => {
            let length = value.chars().count();
            if rules
                .min_length
                .is_some_and(|min| length < usize::try_from(min).unwrap_or(usize::MAX))
            {
                return Err(format!(
                    "it is shorter than min-length {}",
                    rules.min_length.unwrap_or_default()
                ));
            }
            if rules
                .max_length
                .is_some_and(|max| length > usize::try_from(max).unwrap_or(usize::MAX))
            {
                return Err(format!(
                    "it is longer than max-length {}",
                    rules.max_length.unwrap_or_default()
                ));
            }
            if let Some(allowed) = &rules.allowed_chars {
                if let Some(bad) = value.chars().find(|c| !allowed.contains(*c)) {
                    return Err(format!("{bad:?} is not in allowed-chars"));
                }
            }
            if let Some(forbidden) = &rules.forbidden_chars {
                if let Some(bad) = value.chars().find(|c| forbidden.contains(*c)) {
                    return Err(format!("{bad:?} is in forbidden-chars"));
                }
            }
            if let Some(pattern) = &rules.pattern {
                // The rule is that the whole value matches.
                let anchored = format!("^(?:{})$", pattern.as_str());
                if let Ok(regex) = regex::Regex::new(&anchored) {
                    if !regex.is_match(value) {
                        return Err(format!(
                            "it does not match the pattern {:?}",
                            pattern.as_str()
                        ));
                    }
                }
            }
            if kind == VariableKind::Path && !rules.relative && !is_absolute(value) {
                return Err("a path must be absolute unless relative=\"true\"".to_owned());
            }
        }
    }
    Ok(())
}

/// Absolute on Unix (`/opt`) or Windows (`C:\`, `\\server`); a template
/// (`{{ payload }}/x`) is taken as absolute, since its value is not known.
fn is_absolute(path: &str) -> bool {
    let bytes = path.as_bytes();
    path.starts_with('/')
        || path.starts_with("\\\\")
        || path.starts_with("{{")
        || (bytes.len() >= 3
            && bytes[0].is_ascii_alphabetic()
            && bytes[1] == b':'
            && matches!(bytes[2], b'\\' | b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_or_say_why() {
        assert!(check_template("{{ payload }}/notes.deb").is_ok());
        assert!(check_template("plain").is_ok());
        let reason = check_template("{{ payload ").unwrap_err();
        assert!(!reason.is_empty());
        assert!(!reason.contains('\n'));
    }

    #[test]
    fn finds_identifiers_in_template_blocks() {
        assert_eq!(
            template_identifiers("--pw={{ admin_password }} {% if x %}y{% endif %} {a}"),
            vec!["admin_password", "if", "x", "endif"]
        );
        assert!(template_identifiers("no blocks {{ unclosed").is_empty());
    }

    #[test]
    fn value_parsers() {
        assert_eq!(parse_mode("0644"), Ok(0o644));
        assert!(parse_mode("0999").is_err());
        assert!(parse_mode("17777").is_err());
        assert_eq!(parse_codes("0, 3010 1641"), Ok(vec![0, 3010, 1641]));
        assert!(parse_codes("").is_err());
        assert!(parse_codes("x").is_err());
        assert!(parse_payload_path("../etc/passwd").is_err());
        assert!(parse_payload_path("/etc/passwd").is_err());
        assert!(parse_payload_path("a//b").is_err());
        assert!(parse_payload_path("C:x").is_err());
        assert_eq!(
            parse_payload_path("dir/notes.deb"),
            Ok("dir/notes.deb".to_owned())
        );
        assert!(parse_roles("").is_err());
        assert!(parse_roles("a a").is_err());
        assert_eq!(parse_roles(" b  a ").unwrap().len(), 2);
        assert_eq!(parse_lang("pt-BR"), Ok("pt-br".to_owned()));
        assert!(parse_lang("1x").is_err());
        assert!(parse_env_name("1X").is_err());
        assert!(parse_boolean("yes").is_err());
        assert!(parse_positive_seconds("0").is_err());
        assert!(
            parse_run_policy("never")
                .unwrap_err()
                .contains("once, always, on-change")
        );
    }

    #[test]
    fn defaults_against_their_rules() {
        let rules = ValidationRules {
            min_length: Some(2),
            max_length: Some(4),
            forbidden_chars: Some(";".to_owned()),
            pattern: Some(Pattern::new("[a-z]+").unwrap()),
            ..ValidationRules::default()
        };
        assert!(check_default(VariableKind::String, &rules, "abc").is_ok());
        assert!(check_default(VariableKind::String, &rules, "a").is_err());
        assert!(check_default(VariableKind::String, &rules, "abcde").is_err());
        assert!(check_default(VariableKind::String, &rules, "a;b").is_err());
        assert!(
            check_default(VariableKind::String, &rules, "ab1").is_err(),
            "anchored"
        );
        let numbers = ValidationRules {
            min: Some(1),
            max: Some(10),
            ..ValidationRules::default()
        };
        assert!(check_default(VariableKind::Integer, &numbers, "0").is_err());
        assert!(check_default(VariableKind::Integer, &numbers, "5").is_ok());
        assert!(check_default(VariableKind::Path, &ValidationRules::default(), "rel").is_err());
        assert!(check_default(VariableKind::Path, &ValidationRules::default(), "C:\\x").is_ok());
    }
}
