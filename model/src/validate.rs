//! Variable validation and value resolution.
//!
//! A value reaches a command line only after it went through here: it is
//! checked against its variable's kind and rules ([`VariableModel::validate`])
//! and, when several sources could give it, taken from the right one
//! ([`resolve_values`]). Everything a program may want to add to the rules
//! goes through a named [`Validator`] in a [`Validators`] registry, so a
//! descriptor can ask for `hostname` without Roleout knowing every format
//! in advance.
//!
//! Errors name the variable and the rule in plain words. They quote a plain
//! value (so an admin sees what was wrong) but never a secret: a password,
//! or a plain variable fed from a password through a suite linkage, is only
//! ever called "the value".

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use crate::ids::{ProductId, SuiteId, VariableName};
use crate::product::ProductModel;
use crate::render;
use crate::suite::{Suite, Translation, VariableLinkage};
use crate::variable::{Value, VariableKind, VariableModel};

/// A named check a descriptor can ask for in a variable's `validators`.
///
/// The message returned on refusal is shown to people: it must say what
/// the rule is ("must be a port number between 1 and 65535"), not repeat
/// the value. Roleout redacts a secret's value from it anyway.
pub trait Validator: Send + Sync {
    /// The name descriptors use.
    fn name(&self) -> &str;
    /// Accepts `value` or says why not.
    fn check(&self, value: &str) -> Result<(), String>;
}

/// A validator made of a name and a function.
struct FunctionValidator<F> {
    name: String,
    function: F,
}

impl<F> Validator for FunctionValidator<F>
where
    F: Fn(&str) -> Result<(), String> + Send + Sync,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self, value: &str) -> Result<(), String> {
        (self.function)(value)
    }
}

/// The validators a program knows, by name.
///
/// [`Validators::builtin`] (also the [`Default`]) holds:
/// - `hostname`: an RFC 1123 host name (dot-separated labels of letters,
///   digits and `-`, each 1 to 63 characters, not starting or ending with
///   `-`; 253 characters at most);
/// - `ip-address`: an IPv4 or IPv6 address;
/// - `host`: a host name or an IP address;
/// - `port`: a TCP/UDP port number, 1 to 65535, digits only;
/// - `email`: `local@domain` with a dot-atom local part (letters, digits
///   and ``!#$%&'*+/=?^_`{|}~-``, dots between them) of at most 64
///   characters and a `hostname` domain.
pub struct Validators {
    by_name: BTreeMap<String, Box<dyn Validator>>,
}

impl Validators {
    /// A registry with no validator at all.
    pub fn empty() -> Self {
        Self {
            by_name: BTreeMap::new(),
        }
    }

    /// A registry with the built-in validators (see the type's docs).
    pub fn builtin() -> Self {
        let mut validators = Self::empty();
        validators.register_fn("hostname", check_hostname);
        validators.register_fn("ip-address", check_ip_address);
        validators.register_fn("host", |value| {
            if value.parse::<IpAddr>().is_ok() {
                Ok(())
            } else {
                check_hostname(value)
                    .map_err(|reason| format!("must be a host name or an IP address; {reason}"))
            }
        });
        validators.register_fn("port", check_port);
        validators.register_fn("email", check_email);
        validators
    }

    /// Adds a validator, replacing (and returning) one of the same name.
    pub fn register(&mut self, validator: Box<dyn Validator>) -> Option<Box<dyn Validator>> {
        self.by_name.insert(validator.name().to_owned(), validator)
    }

    /// Adds a validator made of a function.
    pub fn register_fn<F>(&mut self, name: &str, function: F) -> Option<Box<dyn Validator>>
    where
        F: Fn(&str) -> Result<(), String> + Send + Sync + 'static,
    {
        self.register(Box::new(FunctionValidator {
            name: name.to_owned(),
            function,
        }))
    }

    /// The validator called `name`.
    pub fn get(&self, name: &str) -> Option<&dyn Validator> {
        self.by_name.get(name).map(|validator| validator.as_ref())
    }

    /// Every registered name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }
}

impl Default for Validators {
    fn default() -> Self {
        Self::builtin()
    }
}

impl fmt::Debug for Validators {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

fn check_hostname(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must be a host name, and it is empty".to_owned());
    }
    if value.len() > 253 {
        return Err("a host name has at most 253 characters".to_owned());
    }
    for label in value.split('.') {
        if label.is_empty() {
            return Err("a host name has no empty part between dots".to_owned());
        }
        if label.len() > 63 {
            return Err(
                "each dot-separated part of a host name has at most 63 characters".to_owned(),
            );
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err("a host name holds only ASCII letters, digits, '-' and '.'".to_owned());
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("no part of a host name starts or ends with '-'".to_owned());
        }
    }
    Ok(())
}

fn check_ip_address(value: &str) -> Result<(), String> {
    value
        .parse::<IpAddr>()
        .map(|_| ())
        .map_err(|_| "must be an IPv4 or IPv6 address".to_owned())
}

fn check_port(value: &str) -> Result<(), String> {
    let in_range = !value.is_empty()
        && value.len() <= 5
        && value.chars().all(|c| c.is_ascii_digit())
        && matches!(value.parse::<u32>(), Ok(1..=65535));
    if in_range {
        Ok(())
    } else {
        Err("must be a port number between 1 and 65535".to_owned())
    }
}

fn check_email(value: &str) -> Result<(), String> {
    let Some((local, domain)) = value.rsplit_once('@') else {
        return Err("must be an e-mail address (local@domain)".to_owned());
    };
    let atom_char = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c);
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(atom_char));
    if !local_ok {
        return Err(
            "the part before '@' of an e-mail address must be 1 to 64 letters, digits or \
             !#$%&'*+/=?^_`{|}~- with single dots between them"
                .to_owned(),
        );
    }
    check_hostname(domain).map_err(|reason| format!("the domain of an e-mail address {reason}"))
}

/// The rule a value broke. Displays as the descriptor attribute that sets
/// it (`max-length`), or as the kind for kind checks.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rule {
    /// The variable's kind (boolean, integer, choice, path...).
    Kind(VariableKind),
    /// No value may contain a NUL character.
    NoNul,
    /// `min-length`.
    MinLength,
    /// `max-length`.
    MaxLength,
    /// `allowed-chars`.
    AllowedChars,
    /// `forbidden-chars`.
    ForbiddenChars,
    /// `pattern`.
    Pattern,
    /// `min`.
    Min,
    /// `max`.
    Max,
    /// A custom validator, by name.
    Validator(String),
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Kind(kind) => write!(f, "kind {}", kind.as_str()),
            Rule::NoNul => f.write_str("no NUL character"),
            Rule::MinLength => f.write_str("min-length"),
            Rule::MaxLength => f.write_str("max-length"),
            Rule::AllowedChars => f.write_str("allowed-chars"),
            Rule::ForbiddenChars => f.write_str("forbidden-chars"),
            Rule::Pattern => f.write_str("pattern"),
            Rule::Min => f.write_str("min"),
            Rule::Max => f.write_str("max"),
            Rule::Validator(name) => write!(f, "validator {name}"),
        }
    }
}

/// Why a value could not be used for a variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// The value breaks one of the variable's rules.
    #[error("variable {variable}: {reason} (rule: {rule})")]
    Invalid {
        /// The variable.
        variable: VariableName,
        /// The rule broken.
        rule: Rule,
        /// What is wrong, in words (never a secret's value).
        reason: String,
    },
    /// The variable asks for a validator nobody registered.
    #[error(
        "variable {variable}: the validator {name:?} is not known here (known validators: {known})"
    )]
    UnknownValidator {
        /// The variable.
        variable: VariableName,
        /// The unknown validator name.
        name: String,
        /// The registered names, comma-separated.
        known: String,
    },
    /// A required variable got no value from any source.
    #[error(
        "variable {variable} is required and has no value: give one in the response file \
         (or a default in the descriptor)"
    )]
    Missing {
        /// The variable.
        variable: VariableName,
    },
    /// A value was given for a variable that does not exist.
    #[error("a value is given for {variable}, which is not a variable here")]
    UnknownVariable {
        /// The name given.
        variable: VariableName,
    },
    /// A suite linkage could not produce the product variable's value.
    #[error("variable {variable}: linkage from suite variable {suite_variable}: {reason}")]
    Linkage {
        /// The product variable.
        variable: VariableName,
        /// The suite variable feeding it.
        suite_variable: VariableName,
        /// What went wrong (never a secret's value).
        reason: String,
    },
}

impl VariableModel {
    /// Checks `raw` against this variable's kind and rules and returns the
    /// value to use: booleans normalized to `true`/`false`, integers to
    /// their plain decimal form, passwords as [`Value::Secret`].
    ///
    /// Text rules (lengths, characters, pattern, validators) apply to the
    /// value as given. Every kind refuses a NUL character: no value can
    /// carry one into an argv, an environment or a path.
    pub fn validate(&self, raw: &str, validators: &Validators) -> Result<Value, ValidationError> {
        check_value(self, raw, validators, self.kind == VariableKind::Password)
    }
}

/// Longest stretch of a plain value quoted in an error.
const QUOTE_LIMIT: usize = 80;

/// How an error refers to the value: quoted when plain, never when secret.
fn describe(raw: &str, secret: bool) -> String {
    if secret {
        "the value".to_owned()
    } else {
        let mut shown: String = raw.chars().take(QUOTE_LIMIT).collect();
        if raw.chars().count() > QUOTE_LIMIT {
            shown.push('…');
        }
        format!("the value {shown:?}")
    }
}

/// Whether `path` is absolute on Unix (`/x`) or Windows (`C:\x`, `C:/x`,
/// `\\server\share`). Decided on text alone: the validating machine need
/// not be the one the path is for.
fn is_absolute_path(path: &str) -> bool {
    let bytes = path.as_bytes();
    path.starts_with('/')
        || path.starts_with("\\\\")
        || (bytes.len() >= 3
            && bytes[0].is_ascii_alphabetic()
            && bytes[1] == b':'
            && (bytes[2] == b'\\' || bytes[2] == b'/'))
}

/// [`VariableModel::validate`], with `secret` saying whether the value must
/// be treated as a secret (a password, or anything fed from one).
fn check_value(
    model: &VariableModel,
    raw: &str,
    validators: &Validators,
    secret: bool,
) -> Result<Value, ValidationError> {
    let variable = &model.name;
    let rules = &model.rules;
    let value_text = describe(raw, secret);
    let invalid = |rule: Rule, reason: String| ValidationError::Invalid {
        variable: variable.clone(),
        rule,
        reason,
    };

    // A validator nobody registered is a configuration mistake: report it
    // whatever the value, so it is found before the first odd value.
    for name in &rules.validators {
        if validators.get(name).is_none() {
            let known: Vec<&str> = validators.names().collect();
            return Err(ValidationError::UnknownValidator {
                variable: variable.clone(),
                name: name.clone(),
                known: if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                },
            });
        }
    }

    if raw.contains('\0') {
        return Err(invalid(
            Rule::NoNul,
            format!("{value_text} contains a NUL character, which no command line can carry"),
        ));
    }

    let normalized = match model.kind {
        VariableKind::String | VariableKind::Password => raw.to_owned(),
        VariableKind::Boolean => match raw.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => "true".to_owned(),
            "false" | "no" | "0" => "false".to_owned(),
            _ => {
                return Err(invalid(
                    Rule::Kind(model.kind),
                    format!("{value_text} is not a boolean (true/false, yes/no or 1/0)"),
                ));
            }
        },
        VariableKind::Integer => {
            let number: i64 = raw.parse().map_err(|_| {
                invalid(
                    Rule::Kind(model.kind),
                    format!("{value_text} is not a whole number"),
                )
            })?;
            if let Some(min) = rules.min {
                if number < min {
                    return Err(invalid(
                        Rule::Min,
                        format!("{value_text} is smaller than the minimum {min}"),
                    ));
                }
            }
            if let Some(max) = rules.max {
                if number > max {
                    return Err(invalid(
                        Rule::Max,
                        format!("{value_text} is larger than the maximum {max}"),
                    ));
                }
            }
            number.to_string()
        }
        VariableKind::Choice => {
            if !rules.choices.iter().any(|choice| choice == raw) {
                let reason = if rules.choices.is_empty() {
                    "the variable is a choice but lists no choices, so no value fits".to_owned()
                } else if secret {
                    format!(
                        "{value_text} is not one of the {} choices",
                        rules.choices.len()
                    )
                } else {
                    format!("{value_text} is not one of: {}", rules.choices.join(", "))
                };
                return Err(invalid(Rule::Kind(model.kind), reason));
            }
            raw.to_owned()
        }
        VariableKind::Path => {
            if raw.is_empty() {
                return Err(invalid(
                    Rule::Kind(model.kind),
                    "the path is empty".to_owned(),
                ));
            }
            if !rules.relative && !is_absolute_path(raw) {
                return Err(invalid(
                    Rule::Kind(model.kind),
                    format!("{value_text} is not an absolute path (this variable needs one)"),
                ));
            }
            raw.to_owned()
        }
    };

    let length = raw.chars().count();
    if let Some(min_length) = rules.min_length {
        if length < min_length as usize {
            return Err(invalid(
                Rule::MinLength,
                format!(
                    "{value_text} is {length} characters long, shorter than the minimum {min_length}"
                ),
            ));
        }
    }
    if let Some(max_length) = rules.max_length {
        if length > max_length as usize {
            return Err(invalid(
                Rule::MaxLength,
                format!(
                    "{value_text} is {length} characters long, longer than the maximum {max_length}"
                ),
            ));
        }
    }
    if let Some(allowed) = &rules.allowed_chars {
        if let Some(bad) = raw.chars().find(|c| !allowed.contains(*c)) {
            let reason = if secret {
                format!("{value_text} holds a character outside the allowed set {allowed:?}")
            } else {
                format!("{value_text} holds {bad:?}, which is not among the allowed {allowed:?}")
            };
            return Err(invalid(Rule::AllowedChars, reason));
        }
    }
    if let Some(forbidden) = &rules.forbidden_chars {
        if let Some(bad) = raw.chars().find(|c| forbidden.contains(*c)) {
            let reason = if secret {
                format!("{value_text} holds a forbidden character (one of {forbidden:?})")
            } else {
                format!("{value_text} holds the forbidden character {bad:?}")
            };
            return Err(invalid(Rule::ForbiddenChars, reason));
        }
    }
    if let Some(pattern) = &rules.pattern {
        // The descriptor's pattern must match the whole value. `\A…\z`
        // anchors like `^…$` but cannot be undone by a `(?m)` inside the
        // pattern, whose flags stay within the group.
        let anchored = regex::RegexBuilder::new(&format!(r"\A(?:{})\z", pattern.as_str()))
            .size_limit(1 << 20)
            .dfa_size_limit(1 << 20)
            .build()
            .map_err(|_| {
                invalid(
                    Rule::Pattern,
                    format!(
                        "the pattern {:?} cannot be anchored to the whole value",
                        pattern.as_str()
                    ),
                )
            })?;
        if !anchored.is_match(raw) {
            return Err(invalid(
                Rule::Pattern,
                format!(
                    "{value_text} does not match the pattern {:?} as a whole",
                    pattern.as_str()
                ),
            ));
        }
    }
    for name in &rules.validators {
        // Every name was checked above; `continue` keeps this path free of
        // an unwrap should that ever change.
        let Some(validator) = validators.get(name) else {
            continue;
        };
        if let Err(message) = validator.check(raw) {
            let message = if secret && !raw.is_empty() {
                render::redact(&message, &[&Value::Secret(raw.to_owned())])
            } else {
                message
            };
            return Err(invalid(
                Rule::Validator(name.clone()),
                format!("{value_text} was refused: {message}"),
            ));
        }
    }

    Ok(if secret || model.kind == VariableKind::Password {
        Value::Secret(normalized)
    } else {
        Value::Plain(normalized)
    })
}

/// Whose variable a resolution problem is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// A suite-level variable.
    Suite(SuiteId),
    /// A product's variable.
    Product(ProductId),
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::Suite(id) => write!(f, "suite {id}"),
            Owner::Product(id) => write!(f, "product {id}"),
        }
    }
}

/// One problem found while resolving values, with whose variable it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{owner}: {error}")]
pub struct ResolveProblem {
    /// The suite or product.
    pub owner: Owner,
    /// What is wrong.
    pub error: ValidationError,
}

/// Every problem found while resolving values (never empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveErrors {
    /// The problems, suite first, then in variable order.
    pub problems: Vec<ResolveProblem>,
}

impl fmt::Display for ResolveErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.as_slice() {
            [only] => write!(f, "{only}"),
            problems => {
                write!(f, "{} problems with variable values:", problems.len())?;
                for problem in problems {
                    write!(f, "\n  - {problem}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ResolveErrors {}

/// Values given by a response file (or an admin) for one run, raw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GivenValues {
    /// Values of suite-level variables.
    pub suite: BTreeMap<VariableName, String>,
    /// Values of product variables, per product.
    pub products: BTreeMap<ProductId, BTreeMap<VariableName, String>>,
}

impl GivenValues {
    /// These values (a machine's response file) laid over `customized`,
    /// the suite values admins chose for the machine (served with its
    /// suite): a suite variable given here wins over its customized value,
    /// and both win over linkage and defaults.
    pub fn over_customized(&self, customized: &BTreeMap<VariableName, String>) -> GivenValues {
        let mut merged = self.clone();
        for (name, value) in customized {
            merged
                .suite
                .entry(name.clone())
                .or_insert_with(|| value.clone());
        }
        merged
    }
}

/// Resolved, validated values by variable name.
pub type Values = BTreeMap<VariableName, Value>;

/// Resolves the suite-level variables: the given value, else the default.
/// Every given name must be a suite variable, every required variable must
/// get a value, and every value must pass its rules; all problems are
/// reported together.
pub fn resolve_suite_values(
    suite: &SuiteId,
    variables: &[VariableModel],
    given: &BTreeMap<VariableName, String>,
    validators: &Validators,
) -> Result<Values, ResolveErrors> {
    let (values, problems) = suite_values(suite, variables, given, validators);
    finish(values, problems)
}

fn finish(values: Values, problems: Vec<ResolveProblem>) -> Result<Values, ResolveErrors> {
    if problems.is_empty() {
        Ok(values)
    } else {
        Err(ResolveErrors { problems })
    }
}

fn unknown_given<'a>(
    owner: &Owner,
    variables: &[VariableModel],
    given: impl Iterator<Item = &'a VariableName>,
    problems: &mut Vec<ResolveProblem>,
) {
    for name in given {
        if !variables.iter().any(|variable| &variable.name == name) {
            problems.push(ResolveProblem {
                owner: owner.clone(),
                error: ValidationError::UnknownVariable {
                    variable: name.clone(),
                },
            });
        }
    }
}

fn suite_values(
    suite: &SuiteId,
    variables: &[VariableModel],
    given: &BTreeMap<VariableName, String>,
    validators: &Validators,
) -> (Values, Vec<ResolveProblem>) {
    let owner = Owner::Suite(suite.clone());
    let mut problems = Vec::new();
    let mut values = Values::new();
    unknown_given(&owner, variables, given.keys(), &mut problems);
    for variable in variables {
        let raw = given.get(&variable.name).or(variable.default.as_ref());
        let result = match raw {
            Some(raw) => variable.validate(raw, validators).map(Some),
            None if variable.required => Err(ValidationError::Missing {
                variable: variable.name.clone(),
            }),
            None => Ok(None),
        };
        match result {
            Ok(Some(value)) => {
                values.insert(variable.name.clone(), value);
            }
            Ok(None) => {}
            Err(error) => problems.push(ResolveProblem {
                owner: owner.clone(),
                error,
            }),
        }
    }
    (values, problems)
}

/// Resolves a product's variables. For each variable, in priority order:
/// the value given for the product (response file), else the value of a
/// suite variable linked to it (translated by the linkage), else its
/// default. When several linkages feed one variable, the first that has a
/// value wins. A value coming from a secret stays secret whatever the
/// product variable's kind. Linkages for other products are ignored; a
/// linkage naming a variable the product or the suite does not have is a
/// problem. All problems are reported together.
///
/// Only the product's own variables are in the result: suite variables
/// reach a product through linkage, never by name, so a product's
/// templates do not change meaning when the suite gains a variable.
pub fn resolve_product_values(
    product: &ProductId,
    variables: &[VariableModel],
    given: &BTreeMap<VariableName, String>,
    suite_values: &Values,
    linkage: &[VariableLinkage],
    validators: &Validators,
) -> Result<Values, ResolveErrors> {
    let (values, problems) = product_values(
        product,
        variables,
        given,
        suite_values,
        None,
        linkage,
        validators,
    );
    finish(values, problems)
}

fn product_values(
    product: &ProductId,
    variables: &[VariableModel],
    given: &BTreeMap<VariableName, String>,
    suite_values: &Values,
    suite_variables: Option<&[VariableModel]>,
    linkage: &[VariableLinkage],
    validators: &Validators,
) -> (Values, Vec<ResolveProblem>) {
    let owner = Owner::Product(product.clone());
    let mut problems = Vec::new();
    let mut values = Values::new();
    let problem = |error| ResolveProblem {
        owner: owner.clone(),
        error,
    };
    unknown_given(&owner, variables, given.keys(), &mut problems);

    let links: Vec<&VariableLinkage> = linkage
        .iter()
        .filter(|link| &link.product == product)
        .collect();
    for link in &links {
        let missing_product_variable = !variables
            .iter()
            .any(|variable| variable.name == link.product_variable);
        let missing_suite_variable = suite_variables.is_some_and(|suite_variables| {
            !suite_variables
                .iter()
                .any(|variable| variable.name == link.suite_variable)
        });
        if missing_product_variable || missing_suite_variable {
            let reason = if missing_product_variable {
                format!(
                    "product {product} has no variable {}",
                    link.product_variable
                )
            } else {
                format!("the suite has no variable {}", link.suite_variable)
            };
            problems.push(problem(ValidationError::Linkage {
                variable: link.product_variable.clone(),
                suite_variable: link.suite_variable.clone(),
                reason,
            }));
        }
    }

    for variable in variables {
        let result = if let Some(raw) = given.get(&variable.name) {
            variable.validate(raw, validators).map(Some)
        } else if let Some((link, suite_value)) = links.iter().find_map(|link| {
            (link.product_variable == variable.name)
                .then(|| {
                    suite_values
                        .get(&link.suite_variable)
                        .map(|value| (*link, value))
                })
                .flatten()
        }) {
            linked_value(variable, link, suite_value, validators).map(Some)
        } else if let Some(default) = &variable.default {
            variable.validate(default, validators).map(Some)
        } else if variable.required {
            Err(ValidationError::Missing {
                variable: variable.name.clone(),
            })
        } else {
            Ok(None)
        };
        match result {
            Ok(Some(value)) => {
                values.insert(variable.name.clone(), value);
            }
            Ok(None) => {}
            Err(error) => problems.push(problem(error)),
        }
    }
    (values, problems)
}

/// Translates a suite value through `link` and validates it for `variable`.
fn linked_value(
    variable: &VariableModel,
    link: &VariableLinkage,
    suite_value: &Value,
    validators: &Validators,
) -> Result<Value, ValidationError> {
    let secret = suite_value.is_secret() || variable.kind == VariableKind::Password;
    let fail = |reason: String| ValidationError::Linkage {
        variable: variable.name.clone(),
        suite_variable: link.suite_variable.clone(),
        reason,
    };
    let translated = match &link.translation {
        Translation::Identity => suite_value.expose().to_owned(),
        Translation::Map(table) => match table.get(suite_value.expose()) {
            Some(mapped) => mapped.clone(),
            None => {
                return Err(fail(format!(
                    "{} has no entry in the linkage's translation table",
                    describe(suite_value.expose(), suite_value.is_secret())
                )));
            }
        },
        Translation::Template(template) => {
            let name = format!("linkage {} -> {}", link.suite_variable, variable.name);
            render::render_translation(&name, template, suite_value)
                .map_err(|error| fail(error.to_string()))?
        }
    };
    check_value(variable, &translated, validators, secret).map_err(|error| match error {
        // Say where the value came from: the admin set the suite variable,
        // not this one.
        ValidationError::Invalid { reason, rule, .. } => fail(format!(
            "the translated value breaks the rule {rule}: {reason}"
        )),
        other => other,
    })
}

/// Resolves every value one product of `suite` needs (see
/// [`resolve_suite_values`] and [`resolve_product_values`]), reporting the
/// problems of both levels together. Only the product's given values are
/// checked for unknown names; the other products' are theirs to check.
pub fn resolve_values(
    suite: &Suite,
    product: &ProductModel,
    given: &GivenValues,
    validators: &Validators,
) -> Result<Values, ResolveErrors> {
    let (values, problems) = values_and_problems(suite, product, given, validators);
    finish(values, problems)
}

/// [`resolve_values`], keeping what resolved when something did not: the
/// values that passed, and the problems (`None` when there were none). A
/// variable with a problem is absent from the values, so a template that
/// uses it fails to render instead of using a wrong value. For decisions
/// that may not need every value (whether a component is already
/// installed); running a command needs [`resolve_values`].
pub fn resolve_values_partially(
    suite: &Suite,
    product: &ProductModel,
    given: &GivenValues,
    validators: &Validators,
) -> (Values, Option<ResolveErrors>) {
    let (values, problems) = values_and_problems(suite, product, given, validators);
    let errors = (!problems.is_empty()).then_some(ResolveErrors { problems });
    (values, errors)
}

fn values_and_problems(
    suite: &Suite,
    product: &ProductModel,
    given: &GivenValues,
    validators: &Validators,
) -> (Values, Vec<ResolveProblem>) {
    let (suite_values, mut problems) =
        suite_values(&suite.id, &suite.variables, &given.suite, validators);
    let empty = BTreeMap::new();
    let product_given = given.products.get(&product.id).unwrap_or(&empty);
    let (values, product_problems) = product_values(
        &product.id,
        &product.variables,
        product_given,
        &suite_values,
        Some(&suite.variables),
        &suite.linkage,
        validators,
    );
    problems.extend(product_problems);
    (values, problems)
}

#[cfg(test)]
// A test that unwraps fails loudly, which is what a test should do.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::pattern::Pattern;
    use crate::variable::ValidationRules;
    use crate::version::Version;

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
            rules: ValidationRules::default(),
        }
    }

    fn with_rules(text: &str, kind: VariableKind, rules: ValidationRules) -> VariableModel {
        VariableModel {
            rules,
            ..variable(text, kind)
        }
    }

    fn broken_rule(result: Result<Value, ValidationError>) -> Rule {
        match result {
            Err(ValidationError::Invalid { rule, .. }) => rule,
            other => panic!("expected a broken rule, got {other:?}"),
        }
    }

    fn validators() -> Validators {
        Validators::builtin()
    }

    #[test]
    fn strings_pass_as_given_but_never_with_nul() {
        let model = variable("greeting", VariableKind::String);
        assert_eq!(
            model.validate(" hi, there ", &validators()).unwrap(),
            Value::Plain(" hi, there ".to_owned())
        );
        assert_eq!(
            broken_rule(model.validate("a\0b", &validators())),
            Rule::NoNul
        );
    }

    #[test]
    fn booleans_accept_six_spellings_and_normalize() {
        let model = variable("desktop_icon", VariableKind::Boolean);
        for (raw, expected) in [
            ("true", "true"),
            ("YES", "true"),
            ("1", "true"),
            ("False", "false"),
            ("no", "false"),
            ("0", "false"),
        ] {
            assert_eq!(
                model.validate(raw, &validators()).unwrap(),
                Value::Plain(expected.to_owned()),
                "{raw}"
            );
        }
        let error = model.validate("maybe", &validators()).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("desktop_icon"), "{text}");
        assert!(text.contains("not a boolean"), "{text}");
        assert!(text.contains("\"maybe\""), "{text}");
    }

    #[test]
    fn integers_parse_normalize_and_respect_bounds() {
        let model = with_rules(
            "workers",
            VariableKind::Integer,
            ValidationRules {
                min: Some(1),
                max: Some(64),
                ..Default::default()
            },
        );
        assert_eq!(
            model.validate("+08", &validators()).unwrap(),
            Value::Plain("8".to_owned())
        );
        assert_eq!(
            broken_rule(model.validate("4.5", &validators())),
            Rule::Kind(VariableKind::Integer)
        );
        assert_eq!(broken_rule(model.validate("0", &validators())), Rule::Min);
        assert_eq!(broken_rule(model.validate("65", &validators())), Rule::Max);
        assert!(model.validate("64", &validators()).is_ok());
        assert!(model.validate("1", &validators()).is_ok());
        let unbounded = variable("offset", VariableKind::Integer);
        assert_eq!(
            unbounded
                .validate("-9223372036854775808", &validators())
                .unwrap(),
            Value::Plain(i64::MIN.to_string())
        );
        assert!(
            unbounded
                .validate("9223372036854775808", &validators())
                .is_err()
        );
    }

    #[test]
    fn choices_must_be_listed() {
        let model = with_rules(
            "edition",
            VariableKind::Choice,
            ValidationRules {
                choices: vec!["standard".to_owned(), "premium".to_owned()],
                ..Default::default()
            },
        );
        assert_eq!(
            model.validate("premium", &validators()).unwrap(),
            Value::Plain("premium".to_owned())
        );
        let error = model.validate("Premium", &validators()).unwrap_err();
        assert!(error.to_string().contains("standard, premium"), "{error}");
        let empty = variable("edition", VariableKind::Choice);
        let error = empty.validate("x", &validators()).unwrap_err();
        assert!(error.to_string().contains("lists no choices"), "{error}");
    }

    #[test]
    fn paths_are_absolute_unless_relative_is_allowed() {
        let model = variable("install_dir", VariableKind::Path);
        for good in [
            "/opt/notes",
            "C:\\Program Files\\Notes",
            "d:/notes",
            "\\\\server\\share",
        ] {
            assert!(model.validate(good, &validators()).is_ok(), "{good}");
        }
        for bad in ["opt/notes", "./notes", "C:notes", ""] {
            assert_eq!(
                broken_rule(model.validate(bad, &validators())),
                Rule::Kind(VariableKind::Path),
                "{bad}"
            );
        }
        let relative = with_rules(
            "data_dir",
            VariableKind::Path,
            ValidationRules {
                relative: true,
                ..Default::default()
            },
        );
        assert!(relative.validate("data/notes", &validators()).is_ok());
        assert_eq!(
            broken_rule(relative.validate("data\0", &validators())),
            Rule::NoNul
        );
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        let model = with_rules(
            "initials",
            VariableKind::String,
            ValidationRules {
                min_length: Some(2),
                max_length: Some(3),
                ..Default::default()
            },
        );
        assert!(model.validate("éèê", &validators()).is_ok());
        assert_eq!(
            broken_rule(model.validate("é", &validators())),
            Rule::MinLength
        );
        assert_eq!(
            broken_rule(model.validate("abcd", &validators())),
            Rule::MaxLength
        );
    }

    #[test]
    fn allowed_and_forbidden_characters() {
        let model = with_rules(
            "code",
            VariableKind::String,
            ValidationRules {
                allowed_chars: Some("abc123".to_owned()),
                forbidden_chars: Some("3".to_owned()),
                ..Default::default()
            },
        );
        assert!(model.validate("a1b2", &validators()).is_ok());
        let error = model.validate("abd", &validators()).unwrap_err();
        assert!(error.to_string().contains("'d'"), "{error}");
        assert_eq!(
            broken_rule(model.validate("abd", &validators())),
            Rule::AllowedChars
        );
        assert_eq!(
            broken_rule(model.validate("a3", &validators())),
            Rule::ForbiddenChars
        );
    }

    #[test]
    fn patterns_match_the_whole_value() {
        let rules = |pattern: &str| ValidationRules {
            pattern: Some(Pattern::new(pattern).unwrap()),
            ..Default::default()
        };
        let model = with_rules("lower", VariableKind::String, rules("[a-z]+"));
        assert!(model.validate("abc", &validators()).is_ok());
        // Unanchored, "abc1" would contain a match.
        assert_eq!(
            broken_rule(model.validate("abc1", &validators())),
            Rule::Pattern
        );
        // The alternation is grouped before anchoring: "ab" is neither.
        let either = with_rules("either", VariableKind::String, rules("a|b"));
        assert!(either.validate("b", &validators()).is_ok());
        assert!(either.validate("ab", &validators()).is_err());
        // A multi-line flag inside the pattern does not loosen the anchors.
        let multi = with_rules("multi", VariableKind::String, rules("(?m)a$"));
        assert!(multi.validate("a", &validators()).is_ok());
        assert!(multi.validate("a\nb", &validators()).is_err());
    }

    #[test]
    fn custom_validators_run_and_unknown_ones_are_named() {
        let mut registry = Validators::builtin();
        registry.register_fn("even-length", |value| {
            if value.len() % 2 == 0 {
                Ok(())
            } else {
                Err("must have an even number of characters".to_owned())
            }
        });
        let model = with_rules(
            "token",
            VariableKind::String,
            ValidationRules {
                validators: vec!["even-length".to_owned()],
                ..Default::default()
            },
        );
        assert!(model.validate("ab", &registry).is_ok());
        let error = model.validate("abc", &registry).unwrap_err();
        assert_eq!(
            broken_rule(Err(error.clone())),
            Rule::Validator("even-length".to_owned())
        );
        assert!(error.to_string().contains("even number"), "{error}");

        let unknown = with_rules(
            "token",
            VariableKind::String,
            ValidationRules {
                validators: vec!["no-such-check".to_owned()],
                ..Default::default()
            },
        );
        let error = unknown.validate("ab", &registry).unwrap_err();
        assert!(matches!(
            &error,
            ValidationError::UnknownValidator { name, .. } if name == "no-such-check"
        ));
        let text = error.to_string();
        assert!(
            text.contains("no-such-check") && text.contains("hostname"),
            "{text}"
        );
        let error = unknown.validate("ab", &Validators::empty()).unwrap_err();
        assert!(
            error.to_string().contains("known validators: none"),
            "{error}"
        );
    }

    #[test]
    fn builtin_validators() {
        let registry = Validators::builtin();
        let check = |validator: &str, value: &str| registry.get(validator).unwrap().check(value);
        for good in ["localhost", "mail.example.org", "a-b.c1", "x"] {
            assert!(check("hostname", good).is_ok(), "{good}");
        }
        let long_label = "a".repeat(64);
        for bad in [
            "",
            "-a.b",
            "a-.b",
            "a..b",
            "a_b",
            "é.org",
            long_label.as_str(),
        ] {
            assert!(check("hostname", bad).is_err(), "{bad}");
        }
        assert!(check("hostname", &format!("{}.org", "a.".repeat(125))).is_err());
        assert!(check("ip-address", "10.0.0.1").is_ok());
        assert!(check("ip-address", "::1").is_ok());
        assert!(check("ip-address", "10.0.0.256").is_err());
        assert!(check("host", "10.0.0.1").is_ok());
        assert!(check("host", "db.example.org").is_ok());
        assert!(check("host", "db example").is_err());
        for good in ["1", "443", "65535"] {
            assert!(check("port", good).is_ok(), "{good}");
        }
        for bad in ["0", "65536", "+80", "08080a", "", "-1"] {
            assert!(check("port", bad).is_err(), "{bad}");
        }
        for good in ["admin@example.org", "first.last+tag@mail.example.org"] {
            assert!(check("email", good).is_ok(), "{good}");
        }
        for bad in [
            "admin",
            "@example.org",
            "a..b@example.org",
            "a b@example.org",
            "a@-x.org",
        ] {
            assert!(check("email", bad).is_err(), "{bad}");
        }
        let names: Vec<&str> = registry.names().collect();
        assert_eq!(names, ["email", "host", "hostname", "ip-address", "port"]);
    }

    #[test]
    fn passwords_are_secret_and_never_quoted_in_errors() {
        let secret = "Hunter2;Pass";
        let mut registry = Validators::builtin();
        // A careless validator that repeats the value it refuses.
        registry.register_fn("careless", |value| Err(format!("{value} is too guessable")));
        let cases = [
            ValidationRules {
                max_length: Some(3),
                ..Default::default()
            },
            ValidationRules {
                allowed_chars: Some("abc".to_owned()),
                ..Default::default()
            },
            ValidationRules {
                forbidden_chars: Some(";".to_owned()),
                ..Default::default()
            },
            ValidationRules {
                pattern: Some(Pattern::new("[a-z]+").unwrap()),
                ..Default::default()
            },
            ValidationRules {
                validators: vec!["careless".to_owned()],
                ..Default::default()
            },
        ];
        for rules in cases {
            let model = with_rules("admin_password", VariableKind::Password, rules);
            let error = model.validate(secret, &registry).unwrap_err();
            let text = format!("{error} {error:?}");
            assert!(!text.contains(secret), "{text}");
            assert!(!text.contains("Hunter"), "{text}");
            assert!(
                !text.contains("';'"),
                "the offending character leaks: {text}"
            );
            assert!(text.contains("admin_password"), "{text}");
        }
        let model = variable("admin_password", VariableKind::Password);
        let value = model.validate(secret, &registry).unwrap();
        assert!(value.is_secret());
        assert_eq!(value.expose(), secret);
    }

    fn links(
        product: &str,
        suite_variable: &str,
        product_variable: &str,
        translation: Translation,
    ) -> VariableLinkage {
        VariableLinkage {
            suite_variable: name(suite_variable),
            product: ProductId::new(product).unwrap(),
            product_variable: name(product_variable),
            translation,
        }
    }

    fn given(pairs: &[(&str, &str)]) -> BTreeMap<VariableName, String> {
        pairs
            .iter()
            .map(|(key, value)| (name(key), (*value).to_owned()))
            .collect()
    }

    fn suite_id() -> SuiteId {
        SuiteId::new("domino").unwrap()
    }

    fn product_id() -> ProductId {
        ProductId::new("notes-client").unwrap()
    }

    #[test]
    fn product_values_take_given_then_linked_then_default() {
        let mut install_dir = variable("install_dir", VariableKind::Path);
        install_dir.default = Some("/opt/default".to_owned());
        let mut server = variable("server", VariableKind::String);
        server.default = Some("default-server".to_owned());
        let mut language = variable("language", VariableKind::String);
        language.default = Some("en".to_owned());
        let variables = [install_dir, server, language];
        let suite_values: Values = [
            (
                name("server_host"),
                Value::Plain("mail.example.org".to_owned()),
            ),
            (name("base_dir"), Value::Plain("/srv".to_owned())),
        ]
        .into_iter()
        .collect();
        let linkage = [
            links(
                "notes-client",
                "base_dir",
                "install_dir",
                Translation::Identity,
            ),
            links(
                "notes-client",
                "server_host",
                "server",
                Translation::Identity,
            ),
            // For another product: ignored.
            links("designer", "server_host", "language", Translation::Identity),
        ];
        let values = resolve_product_values(
            &product_id(),
            &variables,
            &given(&[("install_dir", "/opt/given")]),
            &suite_values,
            &linkage,
            &validators(),
        )
        .unwrap();
        assert_eq!(values[&name("install_dir")].expose(), "/opt/given");
        assert_eq!(values[&name("server")].expose(), "mail.example.org");
        assert_eq!(values[&name("language")].expose(), "en");
        assert_eq!(values.len(), 3);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut required = variable("license_key", VariableKind::String);
        required.required = true;
        let optional = variable("comment", VariableKind::String);
        let port = with_rules(
            "port",
            VariableKind::Integer,
            ValidationRules {
                max: Some(65535),
                ..Default::default()
            },
        );
        let flag = variable("desktop_icon", VariableKind::Boolean);
        let error = resolve_product_values(
            &product_id(),
            &[required, optional, port, flag],
            &given(&[
                ("port", "70000"),
                ("desktop_icon", "perhaps"),
                ("prot", "1"),
            ]),
            &Values::new(),
            &[],
            &validators(),
        )
        .unwrap_err();
        let variables: Vec<String> = error
            .problems
            .iter()
            .map(|problem| match &problem.error {
                ValidationError::Invalid { variable, .. }
                | ValidationError::Missing { variable }
                | ValidationError::UnknownVariable { variable } => variable.to_string(),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(variables, ["prot", "license_key", "port", "desktop_icon"]);
        let text = error.to_string();
        assert!(text.starts_with("4 problems"), "{text}");
        assert!(
            text.contains("product notes-client: variable license_key is required"),
            "{text}"
        );
        assert!(text.contains("which is not a variable here"), "{text}");
    }

    #[test]
    fn an_optional_variable_without_any_value_is_left_out() {
        let values = resolve_product_values(
            &product_id(),
            &[variable("comment", VariableKind::String)],
            &BTreeMap::new(),
            &Values::new(),
            &[],
            &validators(),
        )
        .unwrap();
        assert!(values.is_empty());
    }

    #[test]
    fn linkage_translations() {
        let suite_values: Values = [
            (name("edition"), Value::Plain("premium".to_owned())),
            (name("site"), Value::Plain("paris".to_owned())),
            (
                name("admin_password"),
                Value::Secret("s3cret-Value".to_owned()),
            ),
        ]
        .into_iter()
        .collect();
        let table: BTreeMap<String, String> = [("premium".to_owned(), "P".to_owned())].into();
        let variables = [
            variable("edition_code", VariableKind::String),
            variable("site_dir", VariableKind::Path),
            // A plain string fed from a password must stay secret.
            variable("setup_secret", VariableKind::String),
        ];
        let linkage = [
            links(
                "notes-client",
                "edition",
                "edition_code",
                Translation::Map(table.clone()),
            ),
            links(
                "notes-client",
                "site",
                "site_dir",
                Translation::Template("/srv/{{ value | upper }}".to_owned()),
            ),
            links(
                "notes-client",
                "admin_password",
                "setup_secret",
                Translation::Identity,
            ),
        ];
        let values = resolve_product_values(
            &product_id(),
            &variables,
            &BTreeMap::new(),
            &suite_values,
            &linkage,
            &validators(),
        )
        .unwrap();
        assert_eq!(values[&name("edition_code")], Value::Plain("P".to_owned()));
        assert_eq!(
            values[&name("site_dir")],
            Value::Plain("/srv/PARIS".to_owned())
        );
        assert_eq!(
            values[&name("setup_secret")],
            Value::Secret("s3cret-Value".to_owned())
        );

        // A value missing from the table, a template that fails, a
        // translated secret that breaks a rule: all reported, no secret
        // quoted.
        let strict = [
            variable("edition_code", VariableKind::String),
            variable("site_dir", VariableKind::Path),
            with_rules(
                "setup_secret",
                VariableKind::String,
                ValidationRules {
                    max_length: Some(4),
                    ..Default::default()
                },
            ),
        ];
        let broken = [
            links(
                "notes-client",
                "site",
                "edition_code",
                Translation::Map(table),
            ),
            links(
                "notes-client",
                "site",
                "site_dir",
                Translation::Template("/srv/{{ missing }}".to_owned()),
            ),
            links(
                "notes-client",
                "admin_password",
                "setup_secret",
                Translation::Identity,
            ),
        ];
        let error = resolve_product_values(
            &product_id(),
            &strict,
            &BTreeMap::new(),
            &suite_values,
            &broken,
            &validators(),
        )
        .unwrap_err();
        let text = error.to_string();
        assert_eq!(error.problems.len(), 3, "{text}");
        assert!(text.contains("\"paris\" has no entry"), "{text}");
        assert!(text.contains("missing"), "{text}");
        assert!(text.contains("max-length"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
    }

    #[test]
    fn a_secret_missing_from_a_translation_table_is_not_quoted() {
        let suite_values: Values = [(name("pin"), Value::Secret("9981".to_owned()))].into();
        let error = resolve_product_values(
            &product_id(),
            &[variable("pin_code", VariableKind::String)],
            &BTreeMap::new(),
            &suite_values,
            &[links(
                "notes-client",
                "pin",
                "pin_code",
                Translation::Map(BTreeMap::new()),
            )],
            &validators(),
        )
        .unwrap_err();
        assert!(!error.to_string().contains("9981"), "{error}");
    }

    fn suite(variables: Vec<VariableModel>, linkage: Vec<VariableLinkage>) -> Suite {
        Suite {
            id: suite_id(),
            version: Version::new("1.0").unwrap(),
            description: Default::default(),
            capabilities: Default::default(),
            categories: Vec::new(),
            groups: Vec::new(),
            variables,
            presentation: Vec::new(),
            linkage,
            incremental: None,
            policy: Default::default(),
            products: Vec::new(),
            pulled_in: Vec::new(),
        }
    }

    fn product(variables: Vec<VariableModel>) -> ProductModel {
        ProductModel {
            id: product_id(),
            version: Version::new("9.0.1").unwrap(),
            priority: 50,
            platform: Default::default(),
            description: Default::default(),
            size: Default::default(),
            capabilities: Default::default(),
            dependencies: Default::default(),
            conflicts: Default::default(),
            variables,
            fileset: Default::default(),
            version_checker: None,
            incremental: None,
            commands: BTreeMap::new(),
        }
    }

    #[test]
    fn resolve_values_joins_suite_and_product_levels() {
        let mut server = variable("server_host", VariableKind::String);
        server.rules.validators = vec!["host".to_owned()];
        let mut site = variable("site", VariableKind::String);
        site.default = Some("paris".to_owned());
        let suite = suite(
            vec![server, site],
            vec![
                links(
                    "notes-client",
                    "server_host",
                    "server",
                    Translation::Identity,
                ),
                links("notes-client", "site", "site_name", Translation::Identity),
            ],
        );
        let product = product(vec![
            variable("server", VariableKind::String),
            variable("site_name", VariableKind::String),
        ]);
        let mut given_values = GivenValues {
            suite: given(&[("server_host", "mail.example.org")]),
            ..Default::default()
        };
        let values = resolve_values(&suite, &product, &given_values, &validators()).unwrap();
        assert_eq!(values[&name("server")].expose(), "mail.example.org");
        assert_eq!(values[&name("site_name")].expose(), "paris");
        // Suite variables are not in the product's values by their own name.
        assert!(!values.contains_key(&name("server_host")));

        // Problems at both levels come together, the suite's first.
        given_values.suite = given(&[("server_host", "not a host"), ("sitee", "x")]);
        given_values
            .products
            .insert(product_id(), given(&[("serverr", "x")]));
        let error = resolve_values(&suite, &product, &given_values, &validators()).unwrap_err();
        let owners: Vec<String> = error
            .problems
            .iter()
            .map(|problem| problem.owner.to_string())
            .collect();
        assert_eq!(
            owners,
            ["suite domino", "suite domino", "product notes-client"]
        );
    }

    #[test]
    fn linkage_to_missing_variables_is_reported() {
        let suite = suite(
            vec![variable("site", VariableKind::String)],
            vec![
                links("notes-client", "site", "no_such", Translation::Identity),
                links(
                    "notes-client",
                    "no_site",
                    "site_name",
                    Translation::Identity,
                ),
            ],
        );
        let product = product(vec![variable("site_name", VariableKind::String)]);
        let error =
            resolve_values(&suite, &product, &GivenValues::default(), &validators()).unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("product notes-client has no variable no_such"),
            "{text}"
        );
        assert!(text.contains("the suite has no variable no_site"), "{text}");
    }

    #[test]
    fn the_response_file_wins_over_customized_values() {
        let given_values = GivenValues {
            suite: given(&[("site", "lyon")]),
            ..Default::default()
        };
        let merged =
            given_values.over_customized(&given(&[("site", "paris"), ("server_host", "mx")]));
        assert_eq!(
            merged.suite,
            given(&[("site", "lyon"), ("server_host", "mx")])
        );
    }

    #[test]
    fn partial_resolution_keeps_what_resolved_and_leaves_out_what_did_not() {
        let suite = suite(Vec::new(), Vec::new());
        let mut secret = variable("admin_password", VariableKind::Password);
        secret.required = true;
        let mut site = variable("site_name", VariableKind::String);
        site.default = Some("paris".to_owned());
        let product = product(vec![secret, site]);
        let (values, errors) =
            resolve_values_partially(&suite, &product, &GivenValues::default(), &validators());
        assert_eq!(values[&name("site_name")].expose(), "paris");
        assert!(!values.contains_key(&name("admin_password")));
        let errors = errors.unwrap().to_string();
        assert!(errors.contains("admin_password"), "{errors}");
        // The same as resolve_values when nothing is wrong.
        let given_values = GivenValues {
            products: BTreeMap::from([(product_id(), given(&[("admin_password", "s3cret-pass")]))]),
            ..Default::default()
        };
        let (values, errors) =
            resolve_values_partially(&suite, &product, &given_values, &validators());
        assert!(errors.is_none());
        assert_eq!(
            values,
            resolve_values(&suite, &product, &given_values, &validators()).unwrap()
        );
    }
}
