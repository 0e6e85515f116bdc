//! `help [COMMAND]` and `exit [STATUS]`: the commands about the shell itself.

use clap::{Args, CommandFactory, ValueHint};

use super::{CommandError, Context, Flow, Run, write_failed};
use crate::shell::cli::ShellLine;
use crate::shell::{Parsed, suggest};

/// List the commands, or explain one.
///
/// Without a command, lists every command with its summary; with one,
/// shows its options and an example (as COMMAND --help does).
///
/// Example: help check
#[derive(Debug, Args)]
pub struct Help {
    /// The command to explain.
    #[arg(value_name = "COMMAND", value_hint = ValueHint::Other)]
    pub command: Option<String>,
}

impl Run for Help {
    fn run(&self, context: &mut Context<'_>) -> Result<Flow, CommandError> {
        let text = match &self.command {
            None => {
                let mut definitions = ShellLine::command();
                definitions.build();
                command_list(&definitions)
            }
            Some(name) if suggest::is_command(name) => {
                // Exactly what `NAME --help` shows.
                match crate::shell::parse(&[name.clone(), String::from("--help")]) {
                    Ok(Parsed::Text(text)) => text,
                    _ => return Err(CommandError::Failed(format!("help: {name} has no help"))),
                }
            }
            Some(name) => {
                return Err(CommandError::Usage(format!(
                    "help: {}",
                    suggest::unknown_command(name)
                )));
            }
        };
        write!(context.output.out, "{text}").map_err(|error| write_failed("help", error))?;
        Ok(Flow::Continue)
    }
}

/// One line per command: its name (and aliases) and its summary.
fn command_list(definitions: &clap::Command) -> String {
    let rows: Vec<(String, String)> = definitions
        .get_subcommands()
        .filter(|command| !command.is_hide_set())
        .map(|command| {
            let mut names = vec![command.get_name().to_owned()];
            names.extend(command.get_visible_aliases().map(str::to_owned));
            let summary = command
                .get_about()
                .map(|about| about.to_string())
                .unwrap_or_default();
            (names.join(", "), summary)
        })
        .collect();
    let width = rows.iter().map(|(names, _)| names.len()).max().unwrap_or(0);
    let mut text = String::from("Commands:\n");
    for (names, summary) in rows {
        text.push_str(&format!("  {names:<width$}  {summary}\n"));
    }
    text.push_str("'help COMMAND' explains one, with an example. Tab completes commands, options and files.\n");
    text
}

/// Leave the shell, or stop a script, with an exit status.
///
/// Ctrl-D leaves the interactive shell too.
///
/// Example: exit 3
#[derive(Debug, Args)]
pub struct Exit {
    /// Exit status.
    #[arg(value_name = "STATUS", default_value_t = 0)]
    pub status: u8,
}

impl Run for Exit {
    fn run(&self, _context: &mut Context<'_>) -> Result<Flow, CommandError> {
        Ok(Flow::Exit(self.status))
    }
}
