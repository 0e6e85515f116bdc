//! Scripts: commands from `-c` or from standard input, one statement per
//! line or separated by `;`, `#` comments. The first statement that fails
//! stops the script with one line on standard error naming the line and
//! the command, and the exit status says why (1: the command failed,
//! 2: it was not understood); `exit N` stops it with N.

use std::io::Write;

use crate::admin::Output;

use super::commands::Flow;
use super::prompt::{LinePrompter, LineReader};
use super::session::Session;
use super::words;

/// Where the answers to commands' questions come from.
pub enum Answers<'r, 'a> {
    /// The script's own next lines (a script on standard input).
    SameAsScript,
    /// Another reader (standard input, when the script came with `-c`).
    From(&'r mut LineReader<'a>),
}

/// Runs `script` to its end or its first failure and returns the exit
/// status.
pub fn run(
    session: &mut Session,
    script: &mut LineReader<'_>,
    mut answers: Answers<'_, '_>,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> u8 {
    loop {
        let line = match script.next_line() {
            Ok(Some(line)) => line,
            Ok(None) => return 0,
            Err(error) => {
                let _ = writeln!(err, "roleout-admin: {error}");
                return 2;
            }
        };
        let number = script.number();
        let statements = match words::split(&line) {
            Ok(statements) => statements,
            Err(error) => {
                let _ = writeln!(err, "roleout-admin: line {number}: {error}");
                return 2;
            }
        };
        for statement in statements {
            let output = Output {
                out: &mut *out,
                err: &mut *err,
            };
            let result = match &mut answers {
                Answers::SameAsScript => {
                    // Standard input is not a terminal, or the shell would be
                    // interactive: answers are plain lines.
                    let mut prompter = LinePrompter::new(script, false);
                    super::execute(&statement, session, output, &mut prompter)
                }
                Answers::From(reader) => {
                    let mut prompter = LinePrompter::standard_input(reader);
                    super::execute(&statement, session, output, &mut prompter)
                }
            };
            match result {
                Ok(Flow::Continue) => {}
                Ok(Flow::Exit(status)) => return status,
                Err(failed) => {
                    let _ = out.flush();
                    let _ = writeln!(err, "roleout-admin: line {number}: {failed}");
                    return failed.error.exit_status();
                }
            }
        }
    }
}
