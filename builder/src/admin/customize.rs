//! `customize` (Fig. 7): the values an admin chooses for a suite's
//! variables, suite-wide or for one machine group, kept in the directory
//! (see `roleout_directory::groups` for where).
//!
//! The questions come from the suite as a requester without roles gets it
//! (its default variable list and presentation): a customization is made
//! for a whole group or suite, whose machines may hold different roles,
//! so it cannot follow one role's versions. They are asked in
//! VariablePresentation order, then the variables without a presentation
//! in the order the suite lists them. Each answer is checked with the
//! variable's own rules and the built-in validators, the same check the
//! installer makes, so a value that passes here will pass there.
//!
//! Passwords are asked for without echo and checked, but never stored: the
//! directory is readable by roleoutd and every admin, and a machine takes
//! its secrets from its own response file. The asking itself belongs to
//! the shell (it owns the prompter); this module finds the questions,
//! checks and stores the answers and shows what is stored.

use std::collections::BTreeMap;

use roleout_directory::Directory;
use roleout_directory::catalog::CatalogError;
use roleout_model::ids::{GroupName, SuiteId, VariableName};
use roleout_model::role::EffectiveRoles;
use roleout_model::suite::Widget;
use roleout_model::validate::Validators;
use roleout_model::variable::{Value, VariableKind, VariableModel};

use super::{CommandFailed, Output};

/// One question `customize` asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// The variable.
    pub variable: VariableModel,
    /// What to call it when asking.
    pub label: String,
    /// The presentation's help text, if any.
    pub help: Option<String>,
    /// The value offered: the stored customization, else the default.
    pub offered: Option<String>,
    /// Whether the answer is secret (a password variable or widget): asked
    /// without echo, never stored.
    pub secret: bool,
}

impl Question {
    /// Checks `answer` with the variable's rules; the normalized value, or
    /// `None` for an empty answer to a variable that needs none.
    pub fn check(&self, answer: &str, validators: &Validators) -> Result<Option<Value>, String> {
        if answer.is_empty() && !self.variable.required && self.variable.default.is_none() {
            return Ok(None);
        }
        self.variable
            .validate(answer, validators)
            .map(Some)
            .map_err(|error| error.to_string())
    }
}

/// The suite and group a customization is for, checked against the
/// directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The suite.
    pub suite: SuiteId,
    /// The group, or `None` for the whole suite.
    pub group: Option<GroupName>,
}

impl Target {
    /// `suite` or `suite, group G` for messages.
    pub fn describe(&self) -> String {
        match &self.group {
            Some(group) => format!("suite {} for group {group}", self.suite),
            None => format!("suite {} (suite-wide)", self.suite),
        }
    }
}

/// Checks the names and that the suite (and the group) exist.
pub async fn target(
    directory: &Directory,
    suite: &str,
    group: Option<&str>,
) -> Result<Target, CommandFailed> {
    let suite = SuiteId::new(suite).map_err(|error| CommandFailed(error.to_string()))?;
    let group = group
        .map(GroupName::new)
        .transpose()
        .map_err(|error| CommandFailed(error.to_string()))?;
    if let Some(group) = &group {
        let found = directory
            .group(group)
            .await
            .map_err(|error| CommandFailed(format!("cannot read group {group}: {error}")))?;
        if found.is_none() {
            return Err(CommandFailed(format!(
                "no group {group} in the directory (`group create {group}` makes it)"
            )));
        }
    }
    Ok(Target { suite, group })
}

/// The questions for `target`, in the order to ask them.
pub async fn questions(
    directory: &Directory,
    target: &Target,
    languages: &[String],
) -> Result<Vec<Question>, CommandFailed> {
    let source = match directory.load_suite(&target.suite).await {
        Ok(source) => source,
        Err(CatalogError::NotFound { .. }) => {
            return Err(CommandFailed(format!(
                "no suite {} in the catalog",
                target.suite
            )));
        }
        Err(error) => {
            return Err(CommandFailed(format!(
                "cannot read suite {}: {error}",
                target.suite
            )));
        }
    };
    // The requester without roles never meets a tie (only untagged
    // versions are candidates), but the error is reported if it does.
    let selection = source
        .select(&EffectiveRoles::default())
        .map_err(|error| CommandFailed(error.to_string()))?;
    // What is offered: the target's stored value; for a group, else the
    // suite-wide one its machines get without it (see
    // `crate::delivery`); else the default.
    let mut stored = stored_values(directory, &target.suite, None).await?;
    if let Some(group) = &target.group {
        stored.extend(stored_values(directory, &target.suite, Some(group)).await?);
    }
    let suite = selection.suite;
    Ok(order_questions(
        &suite.variables,
        &suite.presentation,
        &stored,
        languages,
    ))
}

/// The values stored for `suite` and `group` (suite-wide with `None`).
async fn stored_values(
    directory: &Directory,
    suite: &SuiteId,
    group: Option<&GroupName>,
) -> Result<BTreeMap<VariableName, String>, CommandFailed> {
    Ok(directory
        .customization(suite, group)
        .await
        .map_err(|error| CommandFailed(format!("cannot read the customization: {error}")))?
        .map(|customization| customization.values)
        .unwrap_or_default())
}

/// Orders the variables by presentation, then the rest in suite order,
/// and makes their questions.
fn order_questions(
    variables: &[VariableModel],
    presentation: &[roleout_model::suite::VariablePresentation],
    stored: &BTreeMap<VariableName, String>,
    languages: &[String],
) -> Vec<Question> {
    let wanted: Vec<&str> = languages.iter().map(String::as_str).collect();
    let mut presented: Vec<_> = presentation.iter().collect();
    presented.sort_by_key(|entry| entry.order);
    let mut ordered: Vec<(&VariableModel, Option<_>)> = Vec::new();
    for entry in &presented {
        if let Some(variable) = variables.iter().find(|v| v.name == entry.variable)
            && !ordered.iter().any(|(known, _)| known.name == variable.name)
        {
            ordered.push((variable, Some(*entry)));
        }
    }
    for variable in variables {
        if !ordered.iter().any(|(known, _)| known.name == variable.name) {
            ordered.push((variable, None));
        }
    }
    ordered
        .into_iter()
        .map(|(variable, presentation)| {
            let label = presentation
                .and_then(|entry| entry.label.get(&wanted))
                .or_else(|| variable.label.get(&wanted))
                .unwrap_or(variable.name.as_str())
                .to_owned();
            let help = presentation
                .and_then(|entry| entry.help.get(&wanted))
                .map(str::to_owned);
            let secret = variable.kind == VariableKind::Password
                || presentation.is_some_and(|entry| entry.widget == Widget::Password);
            let offered = if secret {
                None
            } else {
                stored
                    .get(&variable.name)
                    .cloned()
                    .or_else(|| variable.default.clone())
            };
            Question {
                variable: variable.clone(),
                label,
                help,
                offered,
                secret,
            }
        })
        .collect()
}

/// What to say before asking `question`: its label, kind, help and
/// default.
pub fn introduce(question: &Question) -> String {
    let mut text = format!(
        "{} ({}, {})",
        question.label,
        question.variable.name,
        question.variable.kind.as_str()
    );
    if let Some(help) = &question.help {
        text.push_str(&format!(": {help}"));
    }
    if !question.variable.rules.choices.is_empty() {
        text.push_str(&format!(
            " [choices: {}]",
            question.variable.rules.choices.join(", ")
        ));
    }
    if let Some(default) = &question.variable.default {
        text.push_str(&format!(" [default: {default}]"));
    }
    text
}

/// Stores `answers` (plain values only) as the customization of `target`
/// and shows them.
pub async fn store(
    directory: &Directory,
    target: &Target,
    answers: &BTreeMap<VariableName, Value>,
    output: &mut Output<'_>,
) -> Result<(), CommandFailed> {
    let mut plain = BTreeMap::new();
    for (name, value) in answers {
        match value {
            Value::Plain(text) => {
                plain.insert(name.clone(), text.clone());
            }
            // Defence in depth: the caller already left secrets out.
            Value::Secret(_) => {
                let _ = writeln!(output.err, "{name}: a password is never stored");
            }
        }
    }
    directory
        .set_customization(&target.suite, target.group.as_ref(), &plain)
        .await
        .map_err(|error| CommandFailed(format!("cannot store the customization: {error}")))?;
    let _ = writeln!(
        output.out,
        "stored {} value(s) for {}",
        plain.len(),
        target.describe()
    );
    for (name, value) in &plain {
        let _ = writeln!(output.out, "  {name} = {value}");
    }
    Ok(())
}

/// `customize --show`: the stored values of `target`.
pub async fn show(
    directory: &Directory,
    target: &Target,
    output: &mut Output<'_>,
) -> Result<(), CommandFailed> {
    let stored = directory
        .customization(&target.suite, target.group.as_ref())
        .await
        .map_err(|error| CommandFailed(format!("cannot read the customization: {error}")))?;
    match stored {
        None => {
            let _ = writeln!(output.out, "{}: not customized", target.describe());
        }
        Some(customization) => {
            let _ = writeln!(output.out, "{}:", target.describe());
            for (name, value) in &customization.values {
                let _ = writeln!(output.out, "  {name} = {value}");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use roleout_model::suite::VariablePresentation;
    use roleout_model::text::LocalizedText;
    use roleout_model::variable::ValidationRules;

    use super::*;

    fn variable(name: &str, kind: VariableKind, default: Option<&str>) -> VariableModel {
        VariableModel {
            name: VariableName::new(name).unwrap(),
            kind,
            default: default.map(str::to_owned),
            required: false,
            label: LocalizedText::default(),
            rules: ValidationRules::default(),
        }
    }

    #[test]
    fn presentation_order_comes_first_and_secrets_offer_nothing() {
        let variables = vec![
            variable("first_listed", VariableKind::String, Some("a")),
            variable("secret", VariableKind::Password, None),
            variable("asked_first", VariableKind::Integer, Some("3")),
        ];
        let mut count = LocalizedText::plain("Count");
        count.insert("de", "Anzahl");
        let mut how_many = LocalizedText::plain("How many");
        how_many.insert("de", "Wie viele");
        let presentation = vec![
            VariablePresentation {
                variable: VariableName::new("secret").unwrap(),
                label: LocalizedText::plain("Secret"),
                help: LocalizedText::default(),
                order: 2,
                widget: Widget::Password,
            },
            VariablePresentation {
                variable: VariableName::new("asked_first").unwrap(),
                label: count,
                help: how_many,
                order: 1,
                widget: Widget::Text,
            },
        ];
        let stored = BTreeMap::from([(VariableName::new("asked_first").unwrap(), "7".to_owned())]);
        let questions = order_questions(&variables, &presentation, &stored, &[]);
        let names: Vec<&str> = questions
            .iter()
            .map(|question| question.variable.name.as_str())
            .collect();
        assert_eq!(names, vec!["asked_first", "secret", "first_listed"]);
        assert_eq!(questions[0].offered.as_deref(), Some("7"));
        assert_eq!(questions[0].help.as_deref(), Some("How many"));
        assert!(questions[1].secret);
        assert_eq!(questions[1].offered, None);
        assert_eq!(questions[2].label, "first_listed");
        let validators = Validators::builtin();
        assert!(questions[0].check("x", &validators).is_err());
        assert_eq!(
            questions[0].check("12", &validators).unwrap(),
            Some(Value::Plain("12".to_owned()))
        );
        // An admin whose locale is German is asked in German.
        let german = order_questions(&variables, &presentation, &stored, &["de-at".to_owned()]);
        assert_eq!(german[0].label, "Anzahl");
        assert_eq!(german[0].help.as_deref(), Some("Wie viele"));
        assert_eq!(german[1].label, "Secret", "no German text: the default");
    }
}
