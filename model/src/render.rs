//! Rendering of command-line templates, and keeping secrets out of what
//! people read.
//!
//! Every argv element, working directory, environment value, response file
//! and log path of a [`CommandLineModel`] is a Tera template. They are
//! rendered with the product's resolved variable values and a few
//! built-ins (see [`RenderContext`]). Undefined variables are errors, never
//! empty strings, and autoescaping is off: these are command lines, not
//! HTML.
//!
//! # Secrets
//!
//! Each template is rendered twice: once with the real values, for the
//! command, and once with every secret replaced by [`REDACTED`], for people.
//! [`RenderedText`] keeps both; its `Display`, `Debug` and `Serialize`
//! show only the second, so a rendered command can be logged as is. A
//! filter applied to a secret (`{{ password | upper }}`) is thus redacted
//! too, which searching the real text for the secret would miss. The
//! redacted form also goes through [`redact`], in case a plain value holds
//! the same text as a secret; a very short password therefore hides the
//! matching bits of the text around it too, which is the safe side to err
//! on. [`redact`] covers free text such as a command's output.
//!
//! # Names in templates
//!
//! Variables are top-level names (`{{ install_dir }}`), and all of them are
//! also under `vars`, which reaches names that are not Tera identifiers
//! (`{{ vars["install-dir"] }}`). Boolean variables are true booleans and
//! integers are numbers, so `{% if desktop_icon %}` means what it says.
//! The function `get_env` is disabled: a template sees only what Roleout
//! hands it, never the environment of the program that renders it.

use std::collections::{BTreeMap, HashMap};
use std::error::Error as _;
use std::fmt;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Serialize, Serializer};

use crate::command::{CommandLineModel, Phase};
use crate::condition::Condition;
use crate::ids::{MachineId, ProductId, VariableName};
use crate::product::ProductModel;
use crate::validate::Values;
use crate::variable::{REDACTED, Value, VariableKind, VariableModel};
use crate::version::Version;

/// Names that templates get from Roleout itself; no variable may take one.
pub const BUILT_IN_NAMES: [&str; 7] = [
    "payload",
    "root",
    "state_dir",
    "machine",
    "product",
    "version",
    "vars",
];

/// The built-ins of a product's templates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderContext {
    /// `payload`: the directory holding the product's verified files.
    pub payload: String,
    /// `root`: the install root (`/` on a real machine; a sandbox
    /// directory for `dpkg --root` style installs and tests).
    pub root: String,
    /// `state_dir`: the installer's state directory.
    pub state_dir: String,
    /// `machine`: the machine's name.
    pub machine: MachineId,
    /// `product`: the product's id.
    pub product: ProductId,
    /// `version`: the product's version.
    pub version: Version,
}

/// Why a template could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// The template uses a variable that has no value.
    #[error("template {template}: the variable {variable} is not defined")]
    UndefinedVariable {
        /// Which template (`notes-client install argv[2]`).
        template: String,
        /// The variable, as the template wrote it.
        variable: String,
    },
    /// The template is malformed or failed otherwise (a filter refused its
    /// input...).
    #[error("template {template}: {message}")]
    Template {
        /// Which template.
        template: String,
        /// What Tera said, secrets redacted.
        message: String,
    },
    /// A variable is named like a built-in.
    #[error("the variable {variable} has the name of a built-in template value; rename it")]
    ReservedName {
        /// The variable.
        variable: VariableName,
    },
    /// A condition uses a secret; conditions are explained in reports, so
    /// they may not.
    #[error("template {template}: a condition may not use a password variable")]
    SecretInCondition {
        /// Which template.
        template: String,
    },
}

/// A rendered string that remembers whether a secret went into it.
/// `Display`, `Debug` and `Serialize` show the redacted form; only
/// [`RenderedText::expose`] gives the real text.
#[derive(Clone, PartialEq, Eq)]
pub struct RenderedText {
    real: String,
    shown: String,
}

impl RenderedText {
    /// Text that holds no secret.
    pub fn plain(text: impl Into<String>) -> Self {
        let text = text.into();
        Self {
            real: text.clone(),
            shown: text,
        }
    }

    /// The real text, for the command that needs it.
    pub fn expose(&self) -> &str {
        &self.real
    }

    /// The text with secrets replaced by [`REDACTED`].
    pub fn redacted(&self) -> &str {
        &self.shown
    }

    /// Whether a secret went into it.
    pub fn is_secret(&self) -> bool {
        self.real != self.shown
    }
}

impl fmt::Display for RenderedText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for RenderedText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.shown, f)
    }
}

impl Serialize for RenderedText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.shown)
    }
}

/// A rendered response file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RenderedResponseFile {
    /// Where to write it.
    pub path: RenderedText,
    /// What to write.
    pub content: RenderedText,
}

/// A command line with every template rendered. Debug-printing or
/// serializing it shows secrets as [`REDACTED`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RenderedCommand {
    /// Program and arguments.
    pub argv: Vec<RenderedText>,
    /// Working directory, when the command sets one.
    pub working_dir: Option<RenderedText>,
    /// Extra environment.
    pub env: BTreeMap<String, RenderedText>,
    /// The answer file to write first.
    pub response_file: Option<RenderedResponseFile>,
    /// The log file whose lines tell the outcome.
    pub log_path: Option<RenderedText>,
}

/// Holds a Tera instance and the two contexts (real and redacted) for one
/// set of values.
struct Renderer {
    tera: tera::Tera,
    real: tera::Context,
    shown: tera::Context,
    secrets: Vec<Value>,
}

impl Renderer {
    fn new(
        variables: &[VariableModel],
        values: &Values,
        built_ins: &[(&str, String)],
    ) -> Result<Self, RenderError> {
        let tera = new_tera();
        let mut real = tera::Context::new();
        let mut shown = tera::Context::new();
        let mut real_vars = serde_json::Map::new();
        let mut shown_vars = serde_json::Map::new();
        let mut secrets = Vec::new();
        for (name, value) in built_ins {
            real.insert(*name, value);
            shown.insert(*name, value);
        }
        for (name, value) in values {
            if BUILT_IN_NAMES.contains(&name.as_str()) {
                return Err(RenderError::ReservedName {
                    variable: name.clone(),
                });
            }
            let kind = variables
                .iter()
                .find(|variable| &variable.name == name)
                .map(|variable| variable.kind);
            let real_value = typed(kind, value.expose());
            let shown_value = if value.is_secret() {
                secrets.push(value.clone());
                serde_json::Value::String(REDACTED.to_owned())
            } else {
                real_value.clone()
            };
            real.insert(name.as_str(), &real_value);
            shown.insert(name.as_str(), &shown_value);
            real_vars.insert(name.to_string(), real_value);
            shown_vars.insert(name.to_string(), shown_value);
        }
        real.insert("vars", &real_vars);
        shown.insert("vars", &shown_vars);
        Ok(Self {
            tera,
            real,
            shown,
            secrets,
        })
    }

    fn render(&mut self, name: &str, template: &str) -> Result<RenderedText, RenderError> {
        let Self {
            tera,
            real: real_context,
            shown: shown_context,
            secrets,
        } = self;
        let secrets: Vec<&Value> = secrets.iter().collect();
        // Parsing sees no value, so its errors hold no secret.
        tera.add_raw_template(name, template)
            .map_err(|error| template_error(name, &error, &[]))?;
        let real = match tera.render(name, real_context) {
            Ok(real) => real,
            Err(error) if secrets.is_empty() => return Err(template_error(name, &error, &[])),
            // Tera's messages may quote a value, transformed or escaped
            // beyond what `redact` recognizes: take the message of the
            // redacted render instead.
            Err(_) => {
                return Err(secret_failure(
                    name,
                    tera.render(name, shown_context),
                    &secrets,
                ));
            }
        };
        if secrets.is_empty() {
            return Ok(RenderedText::plain(real));
        }
        // The redacted render can fail where the real one did not (`int`
        // on a redacted number): then the whole text is hidden.
        let shown = match tera.render(name, shown_context) {
            Ok(shown) => redact(&shown, &secrets),
            Err(_) => REDACTED.to_owned(),
        };
        Ok(RenderedText { real, shown })
    }
}

/// The error to report when a render with secrets failed, given how the
/// same template fared with the secrets redacted.
fn secret_failure(
    name: &str,
    redacted_render: Result<String, tera::Error>,
    secrets: &[&Value],
) -> RenderError {
    match redacted_render {
        Err(error) => template_error(name, &error, secrets),
        Ok(_) => RenderError::Template {
            template: name.to_owned(),
            message: "it fails only with the real value of a password variable; the detail is \
                      withheld because it could show the password"
                .to_owned(),
        },
    }
}

/// A Tera instance for command templates: autoescape off (these are
/// command lines, not HTML) and `get_env` disabled (a template sees only
/// what Roleout hands it).
fn new_tera() -> tera::Tera {
    let mut tera = tera::Tera::default();
    tera.autoescape_on(Vec::new());
    tera.register_function("get_env", |_: &HashMap<String, serde_json::Value>| {
        Err(tera::Error::msg(
            "get_env is not available: templates see only variables and built-ins",
        ))
    });
    tera
}

/// A value as Tera sees it: booleans and integers typed, so that tests and
/// arithmetic in templates work; everything else text.
fn typed(kind: Option<VariableKind>, text: &str) -> serde_json::Value {
    match kind {
        Some(VariableKind::Boolean) if text == "true" => serde_json::Value::Bool(true),
        Some(VariableKind::Boolean) if text == "false" => serde_json::Value::Bool(false),
        Some(VariableKind::Integer) => match text.parse::<i64>() {
            Ok(number) => serde_json::Value::from(number),
            Err(_) => serde_json::Value::String(text.to_owned()),
        },
        _ => serde_json::Value::String(text.to_owned()),
    }
}

static UNDEFINED_VARIABLE: LazyLock<Regex> = LazyLock::new(|| {
    // A constant pattern; compiling it cannot fail.
    #[allow(clippy::unwrap_used)]
    Regex::new(r"Variable `([^`]+)` not found in context").unwrap()
});

/// Turns a Tera error into ours. Tera wraps the real message ("Variable
/// `x` not found…") in a generic one ("Failed to render 'name'"), so the
/// chain of sources is walked.
fn template_error(template: &str, error: &tera::Error, secrets: &[&Value]) -> RenderError {
    let mut messages = vec![error.to_string()];
    let mut source = error.source();
    while let Some(inner) = source {
        messages.push(inner.to_string());
        source = inner.source();
    }
    for message in &messages {
        if let Some(captures) = UNDEFINED_VARIABLE.captures(message) {
            return RenderError::UndefinedVariable {
                template: template.to_owned(),
                variable: captures[1].to_owned(),
            };
        }
    }
    // The outermost message only names the template, which we already
    // say; the inner ones say what is wrong.
    let detail: Vec<&str> = if messages.len() > 1 {
        messages[1..].iter().map(String::as_str).collect()
    } else {
        messages.iter().map(String::as_str).collect()
    };
    RenderError::Template {
        template: template.to_owned(),
        message: redact(&detail.join(": "), secrets),
    }
}

fn built_ins(context: &RenderContext) -> Vec<(&'static str, String)> {
    vec![
        ("payload", context.payload.clone()),
        ("root", context.root.clone()),
        ("state_dir", context.state_dir.clone()),
        ("machine", context.machine.to_string()),
        ("product", context.product.to_string()),
        ("version", context.version.to_string()),
    ]
}

/// Renders every template of `command` (argv, working directory,
/// environment values, response file path and content, log path).
/// `variables` are the product's variable models (they type the values);
/// `values` come from [`crate::validate::resolve_values`]. Templates are
/// named `PRODUCT PHASE FIELD` in errors (`notes-client install argv[2]`).
pub fn render_command(
    command: &CommandLineModel,
    phase: Phase,
    variables: &[VariableModel],
    values: &Values,
    context: &RenderContext,
) -> Result<RenderedCommand, RenderError> {
    let mut renderer = Renderer::new(variables, values, &built_ins(context))?;
    let prefix = format!("{} {}", context.product, phase);
    let mut argv = Vec::with_capacity(command.argv.len());
    for (index, element) in command.argv.iter().enumerate() {
        argv.push(renderer.render(&format!("{prefix} argv[{index}]"), element)?);
    }
    let working_dir = match &command.working_dir {
        Some(template) => Some(renderer.render(&format!("{prefix} working-dir"), template)?),
        None => None,
    };
    let mut env = BTreeMap::new();
    for (key, template) in &command.env {
        env.insert(
            key.clone(),
            renderer.render(&format!("{prefix} env {key}"), template)?,
        );
    }
    let response_file = match &command.response_file {
        Some(file) => Some(RenderedResponseFile {
            path: renderer.render(&format!("{prefix} response-file path"), &file.path)?,
            content: renderer.render(&format!("{prefix} response-file content"), &file.content)?,
        }),
        None => None,
    };
    let log_path = match &command.outcome.log {
        Some(log) => Some(renderer.render(&format!("{prefix} log path"), &log.path)?),
        None => None,
    };
    Ok(RenderedCommand {
        argv,
        working_dir,
        env,
        response_file,
        log_path,
    })
}

/// Renders the templates of a condition (file paths and command argv) so
/// that the installer can evaluate it. A condition may not use a secret:
/// its explanation goes into reports.
pub fn render_condition(
    condition: &Condition,
    variables: &[VariableModel],
    values: &Values,
    context: &RenderContext,
) -> Result<Condition, RenderError> {
    let mut renderer = Renderer::new(variables, values, &built_ins(context))?;
    let prefix = format!("{} condition", context.product);
    let mut counter = 0usize;
    render_condition_with(condition, &mut renderer, &prefix, &mut counter)
}

fn render_condition_with(
    condition: &Condition,
    renderer: &mut Renderer,
    prefix: &str,
    counter: &mut usize,
) -> Result<Condition, RenderError> {
    let mut text = |field: &str, template: &str, renderer: &mut Renderer| {
        *counter += 1;
        condition_text(renderer, &format!("{prefix} #{counter} {field}"), template)
    };
    Ok(match condition {
        Condition::All(inner) => Condition::All(
            inner
                .iter()
                .map(|condition| render_condition_with(condition, renderer, prefix, counter))
                .collect::<Result<_, _>>()?,
        ),
        Condition::Any(inner) => Condition::Any(
            inner
                .iter()
                .map(|condition| render_condition_with(condition, renderer, prefix, counter))
                .collect::<Result<_, _>>()?,
        ),
        Condition::Not(inner) => Condition::Not(Box::new(render_condition_with(
            inner, renderer, prefix, counter,
        )?)),
        Condition::FileExists { path } => Condition::FileExists {
            path: text("path", path, renderer)?,
        },
        Condition::FileSha256 { path, sha256 } => Condition::FileSha256 {
            path: text("path", path, renderer)?,
            sha256: sha256.clone(),
        },
        Condition::FileVersion {
            path,
            pattern,
            versions,
        } => Condition::FileVersion {
            path: text("path", path, renderer)?,
            pattern: pattern.clone(),
            versions: versions.clone(),
        },
        Condition::Command {
            argv,
            exit_code,
            output,
            versions,
        } => {
            let mut rendered = Vec::with_capacity(argv.len());
            for (index, element) in argv.iter().enumerate() {
                rendered.push(text(&format!("argv[{index}]"), element, renderer)?);
            }
            Condition::Command {
                argv: rendered,
                exit_code: *exit_code,
                output: output.clone(),
                versions: versions.clone(),
            }
        }
        other => other.clone(),
    })
}

/// Renders one template of a condition, refusing secrets.
fn condition_text(
    renderer: &mut Renderer,
    name: &str,
    template: &str,
) -> Result<String, RenderError> {
    let rendered = renderer.render(name, template)?;
    if rendered.is_secret() {
        return Err(RenderError::SecretInCondition {
            template: name.to_owned(),
        });
    }
    Ok(rendered.real)
}

/// Renders a linkage's translation template, in which `value` is the suite
/// variable's value.
pub(crate) fn render_translation(
    name: &str,
    template: &str,
    value: &Value,
) -> Result<String, RenderError> {
    let mut tera = new_tera();
    tera.add_raw_template(name, template)
        .map_err(|error| template_error(name, &error, &[]))?;
    let mut context = tera::Context::new();
    context.insert("value", value.expose());
    match tera.render(name, &context) {
        Ok(text) => Ok(text),
        Err(error) if !value.is_secret() => Err(template_error(name, &error, &[])),
        Err(_) => {
            let mut redacted = tera::Context::new();
            redacted.insert("value", REDACTED);
            Err(secret_failure(name, tera.render(name, &redacted), &[value]))
        }
    }
}

/// The forms in which a secret may appear in text: as is, and escaped the
/// way JSON and Rust's `Debug` escape strings (a program that quotes a
/// value in its output or its error uses one of those).
fn secret_forms(secret: &str) -> Vec<String> {
    let mut forms = vec![secret.to_owned()];
    let json = serde_json::Value::String(secret.to_owned()).to_string();
    let debug = format!("{secret:?}");
    for quoted in [json, debug] {
        let inner = quoted
            .strip_prefix('"')
            .and_then(|rest| rest.strip_suffix('"'))
            .unwrap_or(&quoted);
        if !forms.iter().any(|form| form == inner) {
            forms.push(inner.to_owned());
        }
    }
    forms
}

/// Replaces every occurrence of each secret's text in `text` with
/// [`REDACTED`], for logs and reports; the secret's JSON- and
/// `Debug`-escaped forms count as occurrences too. Occurrences that overlap
/// or touch (of one secret or of several) become a single `********`, so
/// no part of any secret survives next to a marker. Empty secrets and
/// plain values are ignored.
pub fn redact(text: &str, secrets: &[&Value]) -> String {
    let mut covered: Vec<(usize, usize)> = Vec::new();
    for secret in secrets {
        if !secret.is_secret() {
            continue;
        }
        for needle in secret_forms(secret.expose()) {
            let Some(first) = needle.chars().next() else {
                continue;
            };
            // Every occurrence, overlapping ones included: advance by one
            // character, not by the match length.
            let mut start = 0;
            while let Some(offset) = text[start..].find(&needle) {
                let position = start + offset;
                covered.push((position, position + needle.len()));
                start = position + first.len_utf8();
            }
        }
    }
    if covered.is_empty() {
        return text.to_owned();
    }
    covered.sort_unstable();
    let mut output = String::with_capacity(text.len());
    let mut written = 0;
    let mut index = 0;
    while index < covered.len() {
        let (begin, mut end) = covered[index];
        index += 1;
        while index < covered.len() && covered[index].0 <= end {
            end = end.max(covered[index].1);
            index += 1;
        }
        output.push_str(&text[written..begin]);
        output.push_str(REDACTED);
        written = end;
    }
    output.push_str(&text[written..]);
    output
}

static TEMPLATE_TAG: LazyLock<Regex> = LazyLock::new(|| {
    // A constant pattern; compiling it cannot fail.
    #[allow(clippy::unwrap_used)]
    Regex::new(r"(?s)\{\{(.*?)\}\}|\{%(.*?)%\}").unwrap()
});

static TEMPLATE_TOKEN: LazyLock<Regex> = LazyLock::new(|| {
    // A constant pattern; compiling it cannot fail.
    #[allow(clippy::unwrap_used)]
    Regex::new(r#""([^"]*)"|'([^']*)'|`([^`]*)`|([A-Za-z_][A-Za-z0-9_]*)"#).unwrap()
});

/// Every argv element of `model` that references a password variable, as
/// (phase, argv index, variable), sorted. A password in argv is visible to
/// every user of the machine (`ps`); `check` warns about it and points to
/// response files or the environment.
///
/// Detection reads the text inside `{{ … }}` and `{% … %}` and takes each
/// identifier and each string literal (which catches
/// `vars["admin-password"]`) as a possible reference. It errs on the side
/// of warning: an attribute (`x.password`) or a plain string equal to a
/// password variable's name counts too. It does not follow `include` or
/// macros, which command templates have no reason to use.
pub fn password_in_argv(model: &ProductModel) -> Vec<(Phase, usize, VariableName)> {
    let passwords: Vec<&VariableName> = model
        .variables
        .iter()
        .filter(|variable| variable.kind == VariableKind::Password)
        .map(|variable| &variable.name)
        .collect();
    let mut found = Vec::new();
    if passwords.is_empty() {
        return found;
    }
    for (phase, command) in &model.commands {
        for (index, element) in command.argv.iter().enumerate() {
            for tag in TEMPLATE_TAG.captures_iter(element) {
                let inner = tag.get(1).or_else(|| tag.get(2)).map_or("", |m| m.as_str());
                for token in TEMPLATE_TOKEN.captures_iter(inner) {
                    let word = (1..=4)
                        .find_map(|group| token.get(group))
                        .map_or("", |m| m.as_str());
                    if let Some(name) = passwords.iter().find(|name| name.as_str() == word) {
                        found.push((*phase, index, (*name).clone()));
                    }
                }
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

#[cfg(test)]
// A test that unwraps fails loudly, which is what a test should do.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::command::{LogRules, OutcomeRules, ResponseFile};
    use crate::ids::Sha256;
    use crate::validate::Values;
    use crate::version::VersionReq;

    const SECRET: &str = "pa\"ss w0rd";

    fn name(text: &str) -> VariableName {
        VariableName::new(text).unwrap()
    }

    fn variable(text: &str, kind: VariableKind) -> VariableModel {
        VariableModel {
            name: name(text),
            kind,
            default: None,
            required: false,
            label: Default::default(),
            rules: Default::default(),
        }
    }

    fn variables() -> Vec<VariableModel> {
        vec![
            variable("install-dir", VariableKind::Path),
            variable("desktop_icon", VariableKind::Boolean),
            variable("workers", VariableKind::Integer),
            variable("admin_password", VariableKind::Password),
            variable("label", VariableKind::String),
        ]
    }

    fn values() -> Values {
        [
            ("install-dir", Value::Plain("/opt/notes".to_owned())),
            ("desktop_icon", Value::Plain("false".to_owned())),
            ("workers", Value::Plain("4".to_owned())),
            ("admin_password", Value::Secret(SECRET.to_owned())),
            ("label", Value::Plain("<R&D>".to_owned())),
        ]
        .into_iter()
        .map(|(key, value)| (name(key), value))
        .collect()
    }

    fn context() -> RenderContext {
        RenderContext {
            payload: "/var/lib/roleout/payload/notes-client".to_owned(),
            root: "/".to_owned(),
            state_dir: "/var/lib/roleout".to_owned(),
            machine: MachineId::new("pc-001").unwrap(),
            product: ProductId::new("notes-client").unwrap(),
            version: Version::new("9.0.1").unwrap(),
        }
    }

    fn command(argv: &[&str]) -> CommandLineModel {
        CommandLineModel {
            kind: Default::default(),
            argv: argv.iter().map(|arg| (*arg).to_owned()).collect(),
            shell: false,
            working_dir: None,
            env: BTreeMap::new(),
            response_file: None,
            timeout_secs: 60,
            check_interval_secs: None,
            retries: 0,
            outcome: OutcomeRules::default(),
            remove_when_unassigned: false,
            then: Vec::new(),
        }
    }

    fn render(argv: &[&str]) -> Result<RenderedCommand, RenderError> {
        render_command(
            &command(argv),
            Phase::Install,
            &variables(),
            &values(),
            &context(),
        )
    }

    fn exposed(rendered: &RenderedCommand) -> Vec<&str> {
        rendered.argv.iter().map(RenderedText::expose).collect()
    }

    #[test]
    fn argv_uses_values_and_built_ins() {
        let rendered = render(&[
            "dpkg",
            "-i",
            "{{ payload }}/notes_{{ version }}.deb",
            "--target={{ vars[\"install-dir\"] }}",
            "{{ machine }}:{{ product }}:{{ state_dir }}",
            "{% if desktop_icon %}--icon{% else %}--no-icon{% endif %}",
            "--threads={{ workers * 2 }}",
            "--label={{ label }}",
        ])
        .unwrap();
        assert_eq!(
            exposed(&rendered),
            [
                "dpkg",
                "-i",
                "/var/lib/roleout/payload/notes-client/notes_9.0.1.deb",
                "--target=/opt/notes",
                "pc-001:notes-client:/var/lib/roleout",
                "--no-icon",
                "--threads=8",
                // Autoescape is off: the text is passed as is.
                "--label=<R&D>",
            ]
        );
        assert!(rendered.argv.iter().all(|arg| !arg.is_secret()));
    }

    #[test]
    fn every_field_is_rendered() {
        let mut model = command(&["{{ payload }}/setup"]);
        model.working_dir = Some("{{ vars[\"install-dir\"] }}/work".to_owned());
        model.env.insert(
            "NOTES_HOME".to_owned(),
            "{{ vars[\"install-dir\"] }}".to_owned(),
        );
        model.response_file = Some(ResponseFile {
            path: "{{ state_dir }}/answers.txt".to_owned(),
            content: "dir={{ vars[\"install-dir\"] }}\npassword={{ admin_password }}\n".to_owned(),
        });
        model.outcome.log = Some(LogRules {
            path: "{{ vars[\"install-dir\"] }}/install.log".to_owned(),
            success: Vec::new(),
            failure: Vec::new(),
        });
        let rendered =
            render_command(&model, Phase::Install, &variables(), &values(), &context()).unwrap();
        assert_eq!(
            rendered.working_dir.as_ref().unwrap().expose(),
            "/opt/notes/work"
        );
        assert_eq!(rendered.env["NOTES_HOME"].expose(), "/opt/notes");
        let file = rendered.response_file.as_ref().unwrap();
        assert_eq!(file.path.expose(), "/var/lib/roleout/answers.txt");
        assert_eq!(
            file.content.expose(),
            format!("dir=/opt/notes\npassword={SECRET}\n")
        );
        assert!(file.content.is_secret());
        assert_eq!(
            file.content.to_string(),
            "dir=/opt/notes\npassword=********\n"
        );
        assert_eq!(
            rendered.log_path.as_ref().unwrap().expose(),
            "/opt/notes/install.log"
        );
    }

    #[test]
    fn an_undefined_variable_is_named_with_its_template() {
        let error = render(&["setup", "--dir={{ instal_dir }}"]).unwrap_err();
        assert_eq!(
            error,
            RenderError::UndefinedVariable {
                template: "notes-client install argv[1]".to_owned(),
                variable: "instal_dir".to_owned(),
            }
        );
        let error = render(&["{{ vars[\"nope\"] }}"]).unwrap_err();
        assert!(
            matches!(&error, RenderError::UndefinedVariable { variable, .. } if variable.contains("nope")),
            "{error:?}"
        );
    }

    #[test]
    fn malformed_templates_and_the_environment() {
        let error = render(&["ok", "{{ unclosed"]).unwrap_err();
        match &error {
            RenderError::Template { template, message } => {
                assert_eq!(template, "notes-client install argv[1]");
                assert!(!message.is_empty());
            }
            other => panic!("unexpected {other:?}"),
        }
        let error = render(&["{{ get_env(name=\"PATH\") }}"]).unwrap_err();
        assert!(
            error.to_string().contains("get_env is not available"),
            "{error}"
        );
    }

    #[test]
    fn variables_may_not_take_built_in_names() {
        let mut values = values();
        values.insert(name("payload"), Value::Plain("/tmp/evil".to_owned()));
        let error = render_command(
            &command(&["x"]),
            Phase::Install,
            &variables(),
            &values,
            &context(),
        )
        .unwrap_err();
        assert_eq!(
            error,
            RenderError::ReservedName {
                variable: name("payload")
            }
        );
    }

    #[test]
    fn secrets_are_shown_redacted_everywhere_but_expose() {
        let rendered = render(&[
            "setup",
            "--password={{ admin_password }}",
            "--shout={{ admin_password | upper }}",
            "--length={{ admin_password | length }}",
        ])
        .unwrap();
        assert_eq!(rendered.argv[1].expose(), format!("--password={SECRET}"));
        assert_eq!(rendered.argv[1].to_string(), "--password=********");
        assert!(rendered.argv[1].is_secret());
        // A filtered secret is redacted too.
        assert_eq!(
            rendered.argv[2].expose(),
            format!("--shout={}", SECRET.to_uppercase())
        );
        assert_eq!(rendered.argv[2].to_string(), "--shout=********");
        // Not even the length shows.
        assert_eq!(
            rendered.argv[3].expose(),
            format!("--length={}", SECRET.len())
        );
        assert_eq!(rendered.argv[3].to_string(), "--length=8");
        let debug = format!("{rendered:?}");
        let json = serde_json::to_string(&rendered).unwrap();
        for shown in [debug, json] {
            assert!(
                !shown.contains("w0rd") && !shown.contains("W0RD"),
                "{shown}"
            );
            assert!(shown.contains("********"), "{shown}");
        }
    }

    #[test]
    fn a_text_that_only_renders_with_the_real_secret_is_hidden_whole() {
        let mut values = values();
        values.insert(name("admin_password"), Value::Secret("1234".to_owned()));
        let rendered = render_command(
            &command(&[
                "{% if admin_password is matching(\"^[0-9]+$\") %}--pin={{ admin_password }}\
                 {% else %}{{ throw(message=\"the PIN must be digits\") }}{% endif %}",
            ]),
            Phase::Install,
            &variables(),
            &values,
            &context(),
        )
        .unwrap();
        assert_eq!(rendered.argv[0].expose(), "--pin=1234");
        assert_eq!(rendered.argv[0].to_string(), REDACTED);
    }

    #[test]
    fn errors_caused_by_a_secret_do_not_quote_it() {
        // `round` quotes the value it refuses, JSON-escaped.
        let error = render(&["{{ admin_password | round }}"]).unwrap_err();
        let text = format!("{error} {error:?}");
        assert!(!text.contains("w0rd"), "{text}");
        assert!(text.contains("round"), "{text}");
        // Failing only with the real value: the detail is withheld.
        let mut values = values();
        values.insert(name("admin_password"), Value::Secret("hunter".to_owned()));
        let error = render_command(
            &command(&["{% if admin_password == \"hunter\" %}{{ nope }}{% endif %}"]),
            Phase::Install,
            &variables(),
            &values,
            &context(),
        )
        .unwrap_err();
        let text = format!("{error} {error:?}");
        assert!(!text.contains("hunter"), "{text}");
        assert!(text.contains("withheld"), "{text}");
    }

    #[test]
    fn translations_render_with_value_and_hide_secrets_in_errors() {
        let plain = Value::Plain("paris".to_owned());
        assert_eq!(
            render_translation("t", "/srv/{{ value }}", &plain).unwrap(),
            "/srv/paris"
        );
        let secret = Value::Secret("topsecret".to_owned());
        let error = render_translation("t", "{{ value | round }}", &secret).unwrap_err();
        assert!(!error.to_string().contains("topsecret"), "{error}");
    }

    #[test]
    fn redact_examples() {
        let secret = Value::Secret("abc".to_owned());
        let other = Value::Secret("bcd".to_owned());
        assert_eq!(redact("xabcx abc", &[&secret]), "x********x ********");
        // Overlapping secrets become one marker.
        assert_eq!(redact("xabcdx", &[&secret, &other]), "x********x");
        // Overlapping occurrences of one secret.
        let aa = Value::Secret("aa".to_owned());
        assert_eq!(redact("baaab", &[&aa]), "b********b");
        // Plain values and empty secrets change nothing.
        let plain = Value::Plain("abc".to_owned());
        let empty = Value::Secret(String::new());
        assert_eq!(redact("abc", &[&plain, &empty]), "abc");
        // Escaped forms are caught.
        let quoted = Value::Secret("a\"b".to_owned());
        assert_eq!(redact("got `\"a\\\"b\"`", &[&quoted]), "got `\"********\"`");
    }

    #[test]
    fn password_in_argv_finds_references_in_tags_only() {
        let mut model = crate::product::ProductModel {
            id: ProductId::new("notes-client").unwrap(),
            version: Version::new("9.0.1").unwrap(),
            priority: 50,
            platform: Default::default(),
            description: Default::default(),
            size: Default::default(),
            capabilities: Default::default(),
            dependencies: Default::default(),
            conflicts: Default::default(),
            variables: vec![
                variable("admin_password", VariableKind::Password),
                variable("db-pass", VariableKind::Password),
                variable("user", VariableKind::String),
            ],
            fileset: Default::default(),
            version_checker: None,
            incremental: None,
            commands: BTreeMap::new(),
        };
        model.commands.insert(
            Phase::Install,
            command(&[
                "setup",
                "--user={{ user }}",
                "--password={{admin_password}}",
                "admin_password",
                "{% if admin_password %}--with-admin{% endif %}",
                "--db={{ vars['db-pass'] | trim }}",
            ]),
        );
        model.commands.insert(
            Phase::PreInstall,
            command(&["check", "{{ user }}-{{ admin_password }}"]),
        );
        let found = password_in_argv(&model);
        assert_eq!(
            found,
            [
                (Phase::PreInstall, 1, name("admin_password")),
                (Phase::Install, 2, name("admin_password")),
                (Phase::Install, 4, name("admin_password")),
                (Phase::Install, 5, name("db-pass")),
            ]
        );
    }

    #[test]
    fn conditions_render_paths_and_argv_but_refuse_secrets() {
        let condition = Condition::All(vec![
            Condition::FileExists {
                path: "{{ vars[\"install-dir\"] }}/bin/notes".to_owned(),
            },
            Condition::Not(Box::new(Condition::FileSha256 {
                path: "{{ payload }}/x".to_owned(),
                sha256: Sha256::from_bytes(&[0; 32]),
            })),
            Condition::Any(vec![
                Condition::Command {
                    argv: vec![
                        "{{ vars[\"install-dir\"] }}/bin/notes".to_owned(),
                        "--version".to_owned(),
                    ],
                    exit_code: 0,
                    output: None,
                    versions: None,
                },
                Condition::FileVersion {
                    path: "{{ state_dir }}/v".to_owned(),
                    pattern: None,
                    versions: VersionReq::any(),
                },
            ]),
        ]);
        let rendered = render_condition(&condition, &variables(), &values(), &context()).unwrap();
        let expected = Condition::All(vec![
            Condition::FileExists {
                path: "/opt/notes/bin/notes".to_owned(),
            },
            Condition::Not(Box::new(Condition::FileSha256 {
                path: "/var/lib/roleout/payload/notes-client/x".to_owned(),
                sha256: Sha256::from_bytes(&[0; 32]),
            })),
            Condition::Any(vec![
                Condition::Command {
                    argv: vec!["/opt/notes/bin/notes".to_owned(), "--version".to_owned()],
                    exit_code: 0,
                    output: None,
                    versions: None,
                },
                Condition::FileVersion {
                    path: "/var/lib/roleout/v".to_owned(),
                    pattern: None,
                    versions: VersionReq::any(),
                },
            ]),
        ]);
        assert_eq!(rendered, expected);
        let secret = Condition::Command {
            argv: vec!["login".to_owned(), "{{ admin_password }}".to_owned()],
            exit_code: 0,
            output: None,
            versions: None,
        };
        let error = render_condition(&secret, &variables(), &values(), &context()).unwrap_err();
        assert!(
            matches!(error, RenderError::SecretInCondition { .. }),
            "{error:?}"
        );
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        fn secret_text() -> impl Strategy<Value = String> {
            // No '*': a secret made of asterisks would "survive" inside the
            // marker itself without anything being shown.
            "[a-c0-1\"\\\\é ]{1,4}"
        }

        proptest! {
            #[test]
            fn no_secret_survives_redaction(
                secrets in proptest::collection::vec(secret_text(), 1..4),
                pieces in proptest::collection::vec(
                    prop_oneof![
                        "[a-d0-2\"\\\\é *]{0,5}".prop_map(|text| (text, None)),
                        (0usize..4).prop_map(|index| (String::new(), Some(index))),
                    ],
                    0..12,
                ),
            ) {
                let values: Vec<Value> = secrets.iter().cloned().map(Value::Secret).collect();
                let references: Vec<&Value> = values.iter().collect();
                // Text made of noise and of the secrets themselves, so they
                // appear several times, next to each other and overlapping
                // with the noise.
                let mut text = String::new();
                for (noise, index) in &pieces {
                    text.push_str(noise);
                    if let Some(index) = index {
                        text.push_str(&secrets[index % secrets.len()]);
                    }
                }
                let redacted = redact(&text, &references);
                for secret in &secrets {
                    prop_assert!(
                        !redacted.contains(secret.as_str()),
                        "{secret:?} survives in {redacted:?} (from {text:?})"
                    );
                }
            }

            #[test]
            fn redaction_changes_nothing_without_a_secret(
                text in "\\PC{0,40}",
                secret in "[a-z]{3,6}",
            ) {
                prop_assume!(!text.contains(secret.as_str()));
                let value = Value::Secret(secret);
                prop_assert_eq!(redact(&text, &[&value]), text);
            }
        }
    }
}
