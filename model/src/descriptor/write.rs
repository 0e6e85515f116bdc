//! The canonical descriptor text of a product or a suite.
//!
//! One way to write each thing: slots in their fixed order, each version
//! of a slot in the order stored, attributes in a fixed order, defaults
//! left out, two-space indentation. Canonical text makes descriptors
//! exported from the directory diff cleanly against what an author wrote,
//! and reading it back gives the same model (see the round-trip tests).

use std::collections::BTreeSet;

use crate::command::{CommandLineModel, DEFAULT_TIMEOUT_SECS, ExitCodeTable, InstallerKind};
use crate::condition::{Condition, IncrementalInstall, RunPolicy};
use crate::ids::RoleName;
use crate::product::{
    CapabilityRequirement, DEFAULT_PRIORITY, ProductRequirement, ProductSlot, ProductSource,
    SystemNeed, SystemRequirement,
};
use crate::role::Versioned;
use crate::suite::{OnFailure, SuiteSource, Translation, Widget};
use crate::text::LocalizedText;
use crate::variable::VariableModel;
use crate::version::VersionReq;

use super::{Descriptor, NAMESPACE};

/// Attributes of one element, in writing order.
type Attributes = Vec<(&'static str, String)>;

/// Escapes an attribute value; white space other than spaces becomes a
/// character reference, since XML turns literal tabs and newlines in
/// attributes into spaces.
fn escape_attribute(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for character in value.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\t' => escaped.push_str("&#9;"),
            '\n' => escaped.push_str("&#10;"),
            '\r' => escaped.push_str("&#13;"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// Escapes text content; a carriage return becomes a reference, since XML
/// turns literal `\r\n` into `\n`.
fn escape_text(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for character in value.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '\r' => escaped.push_str("&#13;"),
            other => escaped.push(other),
        }
    }
    escaped
}

fn roles_attribute(attributes: &mut Attributes, roles: &BTreeSet<RoleName>) {
    if !roles.is_empty() {
        let names: Vec<&str> = roles.iter().map(RoleName::as_str).collect();
        attributes.push(("role", names.join(" ")));
    }
}

/// The attributes of a command element that differ from the defaults.
fn command_attributes(command: &CommandLineModel) -> Attributes {
    let mut attributes = Vec::new();
    if command.kind != InstallerKind::Generic {
        attributes.push(("kind", command.kind.as_str().to_owned()));
    }
    if command.timeout_secs != DEFAULT_TIMEOUT_SECS {
        attributes.push(("timeout", command.timeout_secs.to_string()));
    }
    if let Some(interval) = command.check_interval_secs {
        attributes.push(("check-interval", interval.to_string()));
    }
    if command.retries != 0 {
        attributes.push(("retries", command.retries.to_string()));
    }
    if command.shell {
        attributes.push(("shell", "true".to_owned()));
    }
    if let Some(directory) = &command.working_dir {
        attributes.push(("working-dir", directory.clone()));
    }
    if command.remove_when_unassigned {
        attributes.push(("remove-when-unassigned", "true".to_owned()));
    }
    attributes
}

fn version_attribute(attributes: &mut Attributes, versions: &VersionReq) {
    if !versions.is_any() {
        attributes.push(("version", versions.to_string()));
    }
}

fn codes(list: &[i32]) -> String {
    list.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

struct Writer {
    out: String,
    depth: usize,
}

impl Writer {
    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
    }

    fn tag(&mut self, name: &str, attributes: &Attributes) {
        self.indent();
        self.out.push('<');
        self.out.push_str(name);
        for (key, value) in attributes {
            self.out.push(' ');
            self.out.push_str(key);
            self.out.push_str("=\"");
            self.out.push_str(&escape_attribute(value));
            self.out.push('"');
        }
    }

    /// `<name .../>`
    fn leaf(&mut self, name: &str, attributes: Attributes) {
        self.tag(name, &attributes);
        self.out.push_str("/>\n");
    }

    /// `<name ...>text</name>`
    fn text(&mut self, name: &str, attributes: Attributes, text: &str) {
        self.tag(name, &attributes);
        self.out.push('>');
        self.out.push_str(&escape_text(text));
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push_str(">\n");
    }

    /// `<name ...>` children `</name>`, or `<name .../>` when `body`
    /// writes nothing.
    fn element(&mut self, name: &str, attributes: Attributes, body: impl FnOnce(&mut Self)) {
        let start = self.out.len();
        self.tag(name, &attributes);
        self.out.push_str(">\n");
        let after_tag = self.out.len();
        self.depth += 1;
        body(self);
        self.depth -= 1;
        if self.out.len() == after_tag {
            self.out.truncate(start);
            self.leaf(name, attributes);
        } else {
            self.indent();
            self.out.push_str("</");
            self.out.push_str(name);
            self.out.push_str(">\n");
        }
    }

    fn localized(&mut self, name: &str, text: &LocalizedText) {
        for (lang, value) in text.iter() {
            let attributes = if lang.is_empty() {
                Vec::new()
            } else {
                vec![("lang", lang.to_owned())]
            };
            self.text(name, attributes, value);
        }
    }

    /// Every version of a slot, each as an element with its roles.
    fn versions<T>(
        &mut self,
        name: &str,
        slot: &Versioned<T>,
        mut attributes: impl FnMut(&T) -> Attributes,
        mut body: impl FnMut(&mut Self, &T),
    ) {
        for version in &slot.versions {
            let mut all = Vec::new();
            roles_attribute(&mut all, &version.roles);
            all.extend(attributes(&version.value));
            self.element(name, all, |writer| body(writer, &version.value));
        }
    }

    fn product_requirement(
        &mut self,
        name: &str,
        key: &'static str,
        requirement: &ProductRequirement,
    ) {
        let mut attributes = vec![(key, requirement.product.to_string())];
        version_attribute(&mut attributes, &requirement.versions);
        self.leaf(name, attributes);
    }

    fn system_requirement(&mut self, requirement: &SystemRequirement) {
        let mut attributes = match &requirement.need {
            SystemNeed::Package {
                manager,
                name,
                versions,
            } => {
                let manager = manager.as_str();
                let mut attributes =
                    vec![("package", name.clone()), ("manager", manager.to_owned())];
                version_attribute(&mut attributes, versions);
                attributes
            }
            SystemNeed::File { path } => vec![("file", path.clone())],
        };
        if let Some(provider) = &requirement.provider {
            attributes.push(("provider", provider.to_string()));
        }
        self.leaf("requires-system", attributes);
    }

    fn capability_requirement(
        &mut self,
        name: &str,
        key: &'static str,
        requirement: &CapabilityRequirement,
    ) {
        let mut attributes = vec![(key, requirement.capability.to_string())];
        version_attribute(&mut attributes, &requirement.versions);
        self.leaf(name, attributes);
    }

    fn provides(&mut self, capability: &crate::product::Capability) {
        let mut attributes = vec![("name", capability.name.to_string())];
        if let Some(version) = &capability.version {
            attributes.push(("version", version.to_string()));
        }
        self.leaf("provides", attributes);
    }

    fn variables(&mut self, variables: &[VariableModel]) {
        for variable in variables {
            let rules = &variable.rules;
            let mut attributes = vec![("name", variable.name.to_string())];
            if let Some(default) = &variable.default {
                attributes.push(("default", default.clone()));
            }
            if variable.required {
                attributes.push(("required", "true".to_owned()));
            }
            let numbers = [
                ("min-length", rules.min_length.map(i64::from)),
                ("max-length", rules.max_length.map(i64::from)),
                ("min", rules.min),
                ("max", rules.max),
            ];
            for (key, value) in numbers {
                if let Some(value) = value {
                    attributes.push((key, value.to_string()));
                }
            }
            if let Some(allowed) = &rules.allowed_chars {
                attributes.push(("allowed-chars", allowed.clone()));
            }
            if let Some(forbidden) = &rules.forbidden_chars {
                attributes.push(("forbidden-chars", forbidden.clone()));
            }
            if let Some(pattern) = &rules.pattern {
                attributes.push(("pattern", pattern.to_string()));
            }
            if rules.relative {
                attributes.push(("relative", "true".to_owned()));
            }
            if !rules.validators.is_empty() {
                attributes.push(("validators", rules.validators.join(" ")));
            }
            self.element(variable.kind.as_str(), attributes, |writer| {
                writer.localized("label", &variable.label);
                for choice in &rules.choices {
                    writer.text("option", Vec::new(), choice);
                }
            });
        }
    }

    fn condition(&mut self, condition: &Condition) {
        match condition {
            Condition::All(inner) | Condition::Any(inner) => {
                let name = if matches!(condition, Condition::All(_)) {
                    "all"
                } else {
                    "any"
                };
                self.element(name, Vec::new(), |writer| {
                    for condition in inner {
                        writer.condition(condition);
                    }
                });
            }
            Condition::Not(inner) => self.element("not", Vec::new(), |writer| {
                writer.condition(inner);
            }),
            Condition::FileExists { path } => {
                self.leaf("file-exists", vec![("path", path.clone())]);
            }
            Condition::FileSha256 { path, sha256 } => self.leaf(
                "file-sha256",
                vec![("path", path.clone()), ("sha256", sha256.to_string())],
            ),
            Condition::FileVersion {
                path,
                pattern,
                versions,
            } => {
                let mut attributes = vec![("path", path.clone())];
                if let Some(pattern) = pattern {
                    attributes.push(("pattern", pattern.to_string()));
                }
                // Required here, so written even when it accepts anything.
                attributes.push(("version", versions.to_string()));
                self.leaf("file-version", attributes);
            }
            Condition::Package {
                manager,
                name,
                versions,
            } => {
                let manager = manager.as_str();
                let mut attributes = vec![("manager", manager.to_owned()), ("name", name.clone())];
                version_attribute(&mut attributes, versions);
                self.leaf("package", attributes);
            }
            Condition::Command {
                argv,
                exit_code,
                output,
                versions,
            } => {
                let mut attributes = Vec::new();
                if *exit_code != 0 {
                    attributes.push(("exit-code", exit_code.to_string()));
                }
                if let Some(output) = output {
                    attributes.push(("output", output.to_string()));
                }
                if let Some(versions) = versions {
                    attributes.push(("version", versions.to_string()));
                }
                self.element("command", attributes, |writer| {
                    for argument in argv {
                        writer.text("arg", Vec::new(), argument);
                    }
                });
            }
            Condition::ProcessNotRunning { name } => {
                self.leaf("process-not-running", vec![("name", name.clone())]);
            }
            Condition::Os {
                family,
                distribution,
                versions,
            } => {
                let mut attributes = vec![("family", family.join(" "))];
                if !distribution.is_empty() {
                    attributes.push(("distribution", distribution.join(" ")));
                }
                version_attribute(&mut attributes, versions);
                self.leaf("os", attributes);
            }
            Condition::Arch { names } => self.leaf("arch", vec![("names", names.join(" "))]),
            Condition::Hardware {
                fact,
                matches,
                at_least,
            } => {
                let mut attributes = vec![("fact", fact.clone())];
                if let Some(pattern) = matches {
                    attributes.push(("matches", pattern.as_str().to_owned()));
                }
                if let Some(least) = at_least {
                    attributes.push(("at-least", least.to_string()));
                }
                self.leaf("hardware", attributes);
            }
        }
    }

    fn incremental(&mut self, slot: &Versioned<IncrementalInstall>) {
        self.versions(
            "incremental",
            slot,
            |incremental| match incremental.run {
                RunPolicy::OnChange => Vec::new(),
                RunPolicy::Once => vec![("run", "once".to_owned())],
                RunPolicy::Always => vec![("run", "always".to_owned())],
            },
            |writer, incremental| {
                if let Some(condition) = &incremental.when {
                    writer.condition(condition);
                }
            },
        );
    }

    /// Each version of a command slot, and after each the commands of its
    /// step, as elements of the same name and role set.
    fn command(&mut self, name: &str, slot: &Versioned<CommandLineModel>) {
        for version in &slot.versions {
            for command in version.value.sequence() {
                let mut attributes = Vec::new();
                roles_attribute(&mut attributes, &version.roles);
                attributes.extend(command_attributes(command));
                self.element(name, attributes, |writer| {
                    for argument in &command.argv {
                        writer.text("arg", Vec::new(), argument);
                    }
                    for (key, value) in &command.env {
                        writer.text("env", vec![("name", key.clone())], value);
                    }
                    if let Some(file) = &command.response_file {
                        writer.text(
                            "response-file",
                            vec![("path", file.path.clone())],
                            &file.content,
                        );
                    }
                    writer.outcome(command);
                });
            }
        }
    }

    fn outcome(&mut self, command: &CommandLineModel) {
        let outcome = &command.outcome;
        let mut attributes = Vec::new();
        if outcome.exit_codes.success != ExitCodeTable::default().success {
            attributes.push(("success-codes", codes(&outcome.exit_codes.success)));
        }
        if !outcome.exit_codes.reboot.is_empty() {
            attributes.push(("reboot-codes", codes(&outcome.exit_codes.reboot)));
        }
        if !outcome.exit_codes.retry.is_empty() {
            attributes.push(("retry-codes", codes(&outcome.exit_codes.retry)));
        }
        if let Some(log) = &outcome.log {
            attributes.push(("log", log.path.clone()));
        }
        let (success, failure) = match (&outcome.log, &outcome.output) {
            (Some(log), _) => (&log.success[..], &log.failure[..]),
            (None, Some(output)) => (&output.success[..], &output.failure[..]),
            (None, None) => (&[][..], &[][..]),
        };
        if attributes.is_empty() && success.is_empty() && failure.is_empty() {
            return;
        }
        self.element("outcome", attributes, |writer| {
            for pattern in success {
                writer.text("success-pattern", Vec::new(), pattern.as_str());
            }
            for pattern in failure {
                writer.text("failure-pattern", Vec::new(), pattern.as_str());
            }
        });
    }

    fn product(&mut self, product: &ProductSource) {
        let mut attributes = vec![
            ("xmlns", NAMESPACE.to_owned()),
            ("id", product.id.to_string()),
            ("version", product.version.to_string()),
        ];
        if product.priority != DEFAULT_PRIORITY {
            attributes.push(("priority", product.priority.to_string()));
        }
        self.element("product", attributes, |writer| {
            let platform = &product.platform;
            if !platform.os.is_empty() || !platform.arch.is_empty() {
                let mut attributes = Vec::new();
                if !platform.os.is_empty() {
                    attributes.push(("os", platform.os.join(" ")));
                }
                if !platform.arch.is_empty() {
                    attributes.push(("arch", platform.arch.join(" ")));
                }
                writer.leaf("platform", attributes);
            }
            for slot in ProductSlot::ALL {
                writer.product_slot(product, slot);
            }
        });
    }

    fn product_slot(&mut self, product: &ProductSource, slot: ProductSlot) {
        let name = slot.as_str();
        match slot {
            ProductSlot::Description => self.versions(
                name,
                &product.description,
                |description| {
                    let mut attributes = Vec::new();
                    if !description.vendor.is_empty() {
                        attributes.push(("vendor", description.vendor.clone()));
                    }
                    if let Some(licence) = &description.licence {
                        attributes.push(("licence", licence.clone()));
                    }
                    if let Some(media) = &description.media {
                        attributes.push(("media", media.clone()));
                    }
                    attributes
                },
                |writer, description| {
                    writer.localized("name", &description.name);
                    writer.localized("summary", &description.summary);
                },
            ),
            ProductSlot::Size => self.versions(
                name,
                &product.size,
                |size| vec![("installed", size.installed.to_string())],
                |_, _| {},
            ),
            ProductSlot::Capabilities => self.versions(
                name,
                &product.capabilities,
                |_| Vec::new(),
                |writer, capabilities| {
                    for capability in &capabilities.provides {
                        writer.provides(capability);
                    }
                },
            ),
            ProductSlot::Dependencies => self.versions(
                name,
                &product.dependencies,
                |_| Vec::new(),
                |writer, dependencies| {
                    for requirement in &dependencies.prerequisites {
                        writer.product_requirement("prerequisite", "product", requirement);
                    }
                    for requirement in &dependencies.corequisites {
                        writer.product_requirement("corequisite", "product", requirement);
                    }
                    for requirement in &dependencies.capabilities {
                        writer.capability_requirement("requires", "capability", requirement);
                    }
                    for requirement in &dependencies.replaces {
                        writer.product_requirement("replaces", "product", requirement);
                    }
                    for requirement in &dependencies.obsoletes {
                        writer.product_requirement("obsoletes", "product", requirement);
                    }
                    for requirement in &dependencies.system {
                        writer.system_requirement(requirement);
                    }
                },
            ),
            ProductSlot::Conflicts => self.versions(
                name,
                &product.conflicts,
                |_| Vec::new(),
                |writer, conflicts| {
                    for requirement in &conflicts.products {
                        writer.product_requirement("product", "id", requirement);
                    }
                    for requirement in &conflicts.capabilities {
                        writer.capability_requirement("capability", "name", requirement);
                    }
                },
            ),
            ProductSlot::Variables => self.versions(
                name,
                &product.variables,
                |_| Vec::new(),
                |writer, variables| writer.variables(variables),
            ),
            ProductSlot::Fileset => self.versions(
                name,
                &product.fileset,
                |_| Vec::new(),
                |writer, fileset| {
                    for file in &fileset.files {
                        let mut attributes = vec![
                            ("path", file.path.clone()),
                            ("sha256", file.sha256.to_string()),
                            ("size", file.size.to_string()),
                        ];
                        if let Some(source) = &file.source {
                            attributes.push(("source", source.clone()));
                        }
                        if let Some(mode) = file.mode {
                            attributes.push(("mode", format!("{mode:04o}")));
                        }
                        writer.leaf("file", attributes);
                    }
                },
            ),
            ProductSlot::VersionCheck => self.versions(
                name,
                &product.version_checker,
                |_| Vec::new(),
                |writer, checker| writer.condition(&checker.installed),
            ),
            ProductSlot::Incremental => self.incremental(&product.incremental),
            ProductSlot::Command(phase) => {
                if let Some(slot) = product.commands.get(&phase) {
                    self.command(name, slot);
                }
            }
        }
    }

    fn suite(&mut self, suite: &SuiteSource) {
        let attributes = vec![
            ("xmlns", NAMESPACE.to_owned()),
            ("id", suite.id.to_string()),
            ("version", suite.version.to_string()),
        ];
        self.element("suite", attributes, |writer| {
            writer.versions(
                "description",
                &suite.description,
                |description| {
                    if description.vendor.is_empty() {
                        Vec::new()
                    } else {
                        vec![("vendor", description.vendor.clone())]
                    }
                },
                |writer, description| {
                    writer.localized("name", &description.name);
                    writer.localized("summary", &description.summary);
                },
            );
            writer.versions(
                "capabilities",
                &suite.capabilities,
                |_| Vec::new(),
                |writer, capabilities| {
                    for capability in &capabilities.provides {
                        writer.provides(capability);
                    }
                    for requirement in &capabilities.requires {
                        writer.capability_requirement("requires", "capability", requirement);
                    }
                },
            );
            writer.versions(
                "categories",
                &suite.categories,
                |_| Vec::new(),
                |writer, categories| {
                    for category in categories {
                        let attributes = vec![("name", category.name.clone())];
                        writer.element("category", attributes, |writer| {
                            writer.localized("label", &category.label);
                            for product in &category.products {
                                writer.leaf("product", vec![("ref", product.to_string())]);
                            }
                        });
                    }
                },
            );
            writer.versions(
                "groups",
                &suite.groups,
                |_| Vec::new(),
                |writer, groups| {
                    for group in groups {
                        let attributes = vec![("name", group.name.clone())];
                        writer.element("group", attributes, |writer| {
                            writer.localized("label", &group.label);
                            for product in &group.products {
                                writer.leaf("product", vec![("ref", product.to_string())]);
                            }
                        });
                    }
                },
            );
            writer.versions(
                "variables",
                &suite.variables,
                |_| Vec::new(),
                |writer, variables| writer.variables(variables),
            );
            writer.versions(
                "presentation",
                &suite.presentation,
                |_| Vec::new(),
                |writer, presentations| {
                    for presentation in presentations {
                        let mut attributes = vec![
                            ("name", presentation.variable.to_string()),
                            ("order", presentation.order.to_string()),
                        ];
                        let widget = match presentation.widget {
                            Widget::Text => None,
                            Widget::Password => Some("password"),
                            Widget::Checkbox => Some("checkbox"),
                            Widget::Select => Some("select"),
                            Widget::File => Some("file"),
                        };
                        if let Some(widget) = widget {
                            attributes.push(("widget", widget.to_owned()));
                        }
                        writer.element("variable", attributes, |writer| {
                            writer.localized("label", &presentation.label);
                            writer.localized("help", &presentation.help);
                        });
                    }
                },
            );
            writer.versions(
                "linkage",
                &suite.linkage,
                |_| Vec::new(),
                |writer, links| {
                    for link in links {
                        let mut attributes = vec![
                            ("variable", link.suite_variable.to_string()),
                            ("product", link.product.to_string()),
                            ("product-variable", link.product_variable.to_string()),
                        ];
                        if let Translation::Template(template) = &link.translation {
                            attributes.push(("template", template.clone()));
                        }
                        writer.element("link", attributes, |writer| {
                            if let Translation::Map(table) = &link.translation {
                                for (from, to) in table {
                                    writer.leaf(
                                        "map",
                                        vec![("from", from.clone()), ("to", to.clone())],
                                    );
                                }
                            }
                        });
                    }
                },
            );
            writer.incremental(&suite.incremental);
            writer.versions(
                "policy",
                &suite.policy,
                |policy| match policy.on_failure {
                    OnFailure::Stop => Vec::new(),
                    OnFailure::Continue => vec![("on-failure", "continue".to_owned())],
                },
                |_, _| {},
            );
            writer.element("products", Vec::new(), |writer| {
                for member in &suite.members {
                    let mut attributes = vec![("ref", member.product.to_string())];
                    version_attribute(&mut attributes, &member.versions);
                    roles_attribute(&mut attributes, &member.roles);
                    writer.leaf("product", attributes);
                }
            });
        });
    }
}

/// The canonical text of `descriptor` (see [`super::to_xml`]).
pub(super) fn descriptor(descriptor: &Descriptor) -> String {
    let mut writer = Writer {
        out: String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"),
        depth: 0,
    };
    match descriptor {
        Descriptor::Product(product) => writer.product(product),
        Descriptor::Suite(suite) => writer.suite(suite),
    }
    writer.out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_xml_would_change() {
        assert_eq!(
            escape_attribute("a<&>\"\t\n\r'"),
            "a&lt;&amp;&gt;&quot;&#9;&#10;&#13;'"
        );
        assert_eq!(escape_text("a<&>\r\n\""), "a&lt;&amp;&gt;&#13;\n\"");
    }

    #[test]
    fn empty_elements_collapse() {
        let mut writer = Writer {
            out: String::new(),
            depth: 0,
        };
        writer.element("a", vec![("x", "1".to_owned())], |writer| {
            writer.element("b", Vec::new(), |_| {});
            writer.text("c", Vec::new(), "t");
        });
        assert_eq!(writer.out, "<a x=\"1\">\n  <b/>\n  <c>t</c>\n</a>\n");
    }
}
