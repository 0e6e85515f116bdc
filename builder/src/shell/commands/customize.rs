//! `customize`: the shell's face of `crate::admin::customize`. The asking
//! happens here, through the session's prompter, so the same command works
//! at the interactive shell (a wrong answer is asked again) and in scripts
//! (the answers are the next lines of standard input; a wrong one fails).

use std::collections::BTreeMap;

use clap::{Args, ValueHint};

use roleout_model::validate::Validators;

use crate::admin::customize::{self, Question};
use crate::shell::prompt::{Prompter, ask_valid};

use super::{CommandError, Context, Flow, Run};

/// Choose values for a suite's variables, suite-wide or for a group.
///
/// Asks for each variable of the suite in presentation order (then those
/// without a presentation), showing its label, help and default, and
/// checks each answer with the variable's rules; at the shell a wrong
/// answer is asked again, in a script it fails the command. An empty
/// answer takes the value offered (the one stored before; for a group,
/// else the suite-wide one; else the default). A machine gets the
/// suite-wide values overridden by its group's, with its next suite.
/// Passwords are read without echo and checked but never stored: each
/// machine's response file gives them. With --show, prints the stored
/// values without asking.
///
/// Example: customize domino --group developers
#[derive(Debug, Args)]
pub struct Customize {
    /// The suite.
    #[arg(value_name = "SUITE", value_hint = ValueHint::Other)]
    pub suite: String,
    /// The group the values are for (suite-wide when left out).
    #[arg(long, value_name = "GROUP", value_hint = ValueHint::Other)]
    pub group: Option<String>,
    /// Show the stored values instead of asking.
    #[arg(long)]
    pub show: bool,
}

/// Asks for a secret until it passes (at the shell) or fails the command
/// (in a script). The value is only checked, then dropped.
fn check_secret(
    prompter: &mut dyn Prompter,
    question: &Question,
    validators: &Validators,
) -> Result<(), CommandError> {
    loop {
        let answer = prompter
            .ask_secret(&question.label)
            .ok_or_else(|| CommandError::Failed("customize: cancelled".to_owned()))?;
        match question.check(&answer, validators) {
            Ok(_) => return Ok(()),
            Err(problem) if prompter.can_retry() => {
                prompter.tell(&format!("{}: {problem}", question.label));
            }
            Err(problem) => {
                return Err(CommandError::Failed(format!(
                    "customize: {}: {problem}",
                    question.label
                )));
            }
        }
    }
}

impl Run for Customize {
    fn run(&self, context: &mut Context<'_>) -> Result<Flow, CommandError> {
        let connection = context.session.connection()?;
        let directory = connection.directory();
        let target = connection.block_on(customize::target(
            directory,
            &self.suite,
            self.group.as_deref(),
        ))?;
        if self.show {
            connection.block_on(customize::show(directory, &target, &mut context.output))?;
            return Ok(Flow::Continue);
        }
        let languages = crate::admin::admin_languages();
        let questions =
            connection.block_on(customize::questions(directory, &target, &languages))?;
        if questions.is_empty() {
            let _ = writeln!(
                context.output.err,
                "suite {} has no variables to customize",
                target.suite
            );
            return Ok(Flow::Continue);
        }
        let validators = Validators::builtin();
        let mut answers = BTreeMap::new();
        for question in &questions {
            context.prompter.tell(&customize::introduce(question));
            if question.secret {
                check_secret(context.prompter, question, &validators)?;
                context.prompter.tell(&format!(
                    "{}: accepted, and not stored: passwords never go into the directory; \
                     each machine's response file gives them",
                    question.label
                ));
                continue;
            }
            let value = ask_valid(
                context.prompter,
                "customize",
                &question.label,
                question.offered.as_deref(),
                |answer| question.check(answer, &validators),
            )?;
            if let Some(value) = value {
                answers.insert(question.variable.name.clone(), value);
            }
        }
        connection.block_on(customize::store(
            directory,
            &target,
            &answers,
            &mut context.output,
        ))?;
        Ok(Flow::Continue)
    }
}
