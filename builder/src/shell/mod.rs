//! The admin shell `roleout-admin`: one set of command definitions run
//! three ways: as a one-shot command (`roleout-admin check FILE...`), as a
//! script (`-c "cmd; cmd"`, or lines on standard input), and as an
//! interactive shell with line editing, history and completion.
//!
//! Code map: [`cli`] holds the clap definitions of the command line and of
//! a shell line; [`commands`] the commands themselves (its module comment
//! says how to add one); [`session`] what a session carries between
//! commands; [`prompt`] how commands ask questions; [`words`] the shell-like
//! splitting of lines; [`script`] and [`interactive`] the two loops;
//! [`complete`] and [`history`] the interactive comforts.

pub mod cli;
pub mod commands;
pub mod complete;
pub mod connection;
pub mod history;
pub mod interactive;
pub mod prompt;
pub mod script;
pub mod session;
pub mod suggest;
pub mod words;

use std::fmt;
use std::io::{self, IsTerminal, Write};

use clap::Parser;
use clap::error::ErrorKind;

use crate::admin::Output;

use self::cli::{Cli, ShellLine};
use self::commands::{Command, CommandError, Context, Flow};
use self::prompt::{LinePrompter, LineReader, Prompter};
use self::session::Session;

/// Runs `roleout-admin` as its command line asks and returns its exit
/// status.
pub fn run(cli: Cli) -> u8 {
    let mut stdout = io::stdout();
    let mut stderr = io::stderr();
    let mut session = match Session::new(cli.connection) {
        Ok(session) => session,
        Err(error) => {
            let _ = writeln!(stderr, "roleout-admin: {error}");
            return error.exit_status();
        }
    };
    if cli.commands.is_some() && cli.command.is_some() {
        let _ = writeln!(
            stderr,
            "roleout-admin: give either -c COMMANDS or a command, not both"
        );
        return 2;
    }
    if let Some(command) = cli.command {
        let stdin = io::stdin();
        let mut answers = LineReader::new(stdin.lock());
        let mut prompter = LinePrompter::standard_input(&mut answers);
        let mut context = Context {
            session: &mut session,
            output: Output {
                out: &mut stdout,
                err: &mut stderr,
            },
            prompter: &mut prompter,
        };
        return match command.runner().run(&mut context) {
            Ok(Flow::Continue) => 0,
            Ok(Flow::Exit(status)) => status,
            Err(error) => {
                let _ = writeln!(stderr, "roleout-admin: {error}");
                error.exit_status()
            }
        };
    }
    if let Some(text) = cli.commands {
        let mut script = LineReader::new(text.as_bytes());
        let stdin = io::stdin();
        let mut answers = LineReader::new(stdin.lock());
        return script::run(
            &mut session,
            &mut script,
            script::Answers::From(&mut answers),
            &mut stdout,
            &mut stderr,
        );
    }
    if io::stdin().is_terminal() {
        return interactive::run(session);
    }
    let stdin = io::stdin();
    let mut script = LineReader::new(stdin.lock());
    script::run(
        &mut session,
        &mut script,
        script::Answers::SameAsScript,
        &mut stdout,
        &mut stderr,
    )
}

/// Runs `roleout-admin` with the process's arguments.
pub fn main() -> u8 {
    run(Cli::parse())
}

/// A statement that did not run to success, with the command it named.
#[derive(Debug)]
pub struct StatementFailed {
    /// The command's name as typed (empty when the statement had none).
    pub command: String,
    /// What went wrong.
    pub error: CommandError,
}

impl fmt::Display for StatementFailed {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.error.message_for(&self.command))
    }
}

/// A statement understood: a command to run, or the text that clap
/// produced for `--help`.
#[derive(Debug)]
pub enum Parsed {
    /// Run this command.
    Command(Command),
    /// Show this text (a command's `--help`).
    Text(String),
}

/// Parses one statement's words with the shell's clap definition.
pub fn parse(words: &[String]) -> Result<Parsed, CommandError> {
    let Some(name) = words.first() else {
        return Err(CommandError::Usage(String::from("no command given")));
    };
    if !suggest::is_command(name) {
        return Err(CommandError::Usage(suggest::unknown_command(name)));
    }
    match ShellLine::try_parse_from(words) {
        Ok(line) => Ok(Parsed::Command(line.command)),
        Err(error) => match error.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            | ErrorKind::DisplayVersion => Ok(Parsed::Text(error.render().to_string())),
            _ => Err(CommandError::Usage(format!(
                "{name}: {}; try 'help {name}'",
                one_line(&error.render().to_string())
            ))),
        },
    }
}

/// clap's error message on one line: its first paragraph without the
/// `error: ` label and the usage and tips after it.
fn one_line(rendered: &str) -> String {
    let paragraph: Vec<&str> = rendered
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .map(str::trim)
        .collect();
    let joined = paragraph.join(" ");
    joined.strip_prefix("error: ").unwrap_or(&joined).to_owned()
}

/// Parses and runs one statement.
pub fn execute<'a>(
    words: &[String],
    session: &'a mut Session,
    output: Output<'a>,
    prompter: &'a mut dyn Prompter,
) -> Result<Flow, StatementFailed> {
    let command = words.first().cloned().unwrap_or_default();
    let failed = |error| StatementFailed {
        command: command.clone(),
        error,
    };
    match parse(words).map_err(failed)? {
        Parsed::Text(text) => {
            write!(output.out, "{text}")
                .map_err(|error| failed(commands::write_failed(&command, error)))?;
            Ok(Flow::Continue)
        }
        Parsed::Command(parsed) => {
            let mut context = Context {
                session,
                output,
                prompter,
            };
            parsed.runner().run(&mut context).map_err(failed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn usage_errors_fit_on_one_line() {
        let error = match parse(&words("check --frobnicate a.xml")) {
            Err(error) => error,
            other => panic!("expected a usage error, got {other:?}"),
        };
        let message = error.message_for("check");
        assert!(!message.contains('\n'), "{message}");
        assert!(
            message.starts_with("check: unexpected argument '--frobnicate' found"),
            "{message}"
        );
        assert!(message.ends_with("try 'help check'"), "{message}");
        let missing = match parse(&words("check")) {
            Err(error) => error.message_for("check"),
            other => panic!("expected a usage error, got {other:?}"),
        };
        assert!(missing.contains("<FILE>"), "{missing}");
        assert!(!missing.contains('\n'), "{missing}");
    }

    #[test]
    fn help_options_show_text() {
        match parse(&words("check --help")) {
            Ok(Parsed::Text(text)) => {
                assert!(text.contains("Example: check examples/*.xml"), "{text}");
                assert!(text.contains("Usage: check"), "{text}");
            }
            other => panic!("expected help text, got {other:?}"),
        }
    }

    #[test]
    fn unknown_commands_are_usage_errors_with_a_suggestion() {
        match parse(&words("chekc a.xml")) {
            Err(CommandError::Usage(message)) => {
                assert_eq!(message, "unknown command 'chekc'; did you mean 'check'?")
            }
            other => panic!("expected a usage error, got {other:?}"),
        }
    }
}
