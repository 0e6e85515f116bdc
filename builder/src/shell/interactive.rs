//! The interactive shell: a rustyline editor with Emacs-style editing,
//! completion from the command definitions, hints from the history, and a
//! history kept across sessions. Ctrl-C drops the line being typed, Ctrl-D
//! leaves. A failing command prints its error and the shell goes on; the
//! rest of a line with several statements is then skipped, as they may
//! depend on the one that failed.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::io::{self, Write};
use std::rc::Rc;

use clap::CommandFactory;
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::{Hinter, HistoryHinter};
use rustyline::history::MemHistory;
use rustyline::validate::Validator;
use rustyline::{CompletionType, Config, EditMode, Editor, Helper};

use crate::admin::Output;

use super::cli::ShellLine;
use super::commands::Flow;
use super::history::{self, HISTORY_LIMIT, History};
use super::prompt::{self, Prompter};
use super::session::Session;
use super::{Parsed, complete, parse, words};

type ShellEditor = Editor<ShellHelper, MemHistory>;

/// Runs the interactive shell on the terminal until the admin leaves and
/// returns the exit status.
pub fn run(session: Session) -> u8 {
    let mut stdout = io::stdout();
    let mut stderr = io::stderr();
    let session = Rc::new(RefCell::new(session));
    let config = match editor_config() {
        Ok(config) => config,
        Err(error) => {
            let _ = writeln!(stderr, "roleout-admin: cannot set up line editing: {error}");
            return 1;
        }
    };
    let memory = MemHistory::with_config(&config);
    let mut editor: ShellEditor = match Editor::with_history(config, memory) {
        Ok(editor) => editor,
        Err(error) => {
            let _ = writeln!(stderr, "roleout-admin: cannot use the terminal: {error}");
            return 1;
        }
    };
    editor.set_helper(Some(ShellHelper::new(Rc::clone(&session))));
    let mut history = match History::open(history::default_path(), HISTORY_LIMIT) {
        Ok(history) => history,
        Err(error) => {
            let _ = writeln!(
                stderr,
                "roleout-admin: history not kept: cannot read {}: {error}",
                history::default_path()
                    .map(|path| path.display().to_string())
                    .unwrap_or_default()
            );
            History::in_memory(HISTORY_LIMIT)
        }
    };
    load_into(&mut editor, &history);
    let _ = writeln!(
        stdout,
        "Roleout admin shell. 'help' lists the commands, Tab completes, Ctrl-D leaves."
    );
    let mut history_warned = false;
    loop {
        let shown = session.borrow().prompt();
        let typed = match editor.readline(&shown) {
            Ok(typed) => typed,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => {
                let _ = writeln!(stdout);
                return 0;
            }
            Err(error) => {
                let _ = writeln!(stderr, "roleout-admin: cannot read the terminal: {error}");
                return 1;
            }
        };
        // A paste may bring several lines; each runs as if typed.
        for line in typed.lines() {
            let statements = words::split(line);
            if keeps_in_history(line, statements.as_deref().unwrap_or_default()) {
                match history.add(line) {
                    Ok(_) => load_into(&mut editor, &history),
                    Err(error) if !history_warned => {
                        history_warned = true;
                        let _ = writeln!(stderr, "roleout-admin: cannot save the history: {error}");
                        load_into(&mut editor, &history);
                    }
                    Err(_) => load_into(&mut editor, &history),
                }
            }
            let statements = match statements {
                Ok(statements) => statements,
                Err(error) => {
                    let _ = writeln!(stderr, "{error}");
                    continue;
                }
            };
            for statement in statements {
                let result = {
                    let mut session = session.borrow_mut();
                    let mut prompter = EditorPrompter {
                        editor: &mut editor,
                    };
                    let output = Output {
                        out: &mut stdout,
                        err: &mut stderr,
                    };
                    super::execute(&statement, &mut session, output, &mut prompter)
                };
                match result {
                    Ok(Flow::Continue) => {}
                    Ok(Flow::Exit(status)) => return status,
                    Err(failed) => {
                        let _ = stdout.flush();
                        let _ = writeln!(stderr, "{failed}");
                        break;
                    }
                }
            }
        }
    }
}

fn editor_config() -> rustyline::Result<Config> {
    Ok(Config::builder()
        .max_history_size(HISTORY_LIMIT)?
        .history_ignore_dups(true)?
        .history_ignore_space(true)
        .auto_add_history(false)
        .completion_type(CompletionType::List)
        .edit_mode(EditMode::Emacs)
        .build())
}

/// Whether the line may be remembered: the history's own rule (no blank
/// start, no password) and every command on it agreeing. A line that does
/// not parse is kept, so the admin can call it back and fix it.
fn keeps_in_history(line: &str, statements: &[Vec<String>]) -> bool {
    history::may_keep(line)
        && statements.iter().all(|statement| match parse(statement) {
            Ok(Parsed::Command(command)) => command.runner().keep_in_history(),
            _ => true,
        })
}

fn load_into(editor: &mut ShellEditor, history: &History) {
    // Rebuilt whole, because an entry used again moves to the end.
    let _ = editor.clear_history();
    for entry in history.entries() {
        let _ = editor.add_history_entry(entry.as_str());
    }
}

/// Completion, hints and (for hints only) highlighting for the editor.
struct ShellHelper {
    definitions: clap::Command,
    session: Rc<RefCell<Session>>,
    /// Set while a command asks a question: the answer is not a command,
    /// so neither completion nor history hints apply.
    answering: Cell<bool>,
    hinter: HistoryHinter,
}

impl ShellHelper {
    fn new(session: Rc<RefCell<Session>>) -> ShellHelper {
        let mut definitions = ShellLine::command();
        definitions.build();
        ShellHelper {
            definitions,
            session,
            answering: Cell::new(false),
            hinter: HistoryHinter::new(),
        }
    }
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        position: usize,
        _context: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        if self.answering.get() {
            return Ok((position, Vec::new()));
        }
        // The session is lent to a running command while it asks a
        // question; completion then goes without directory names.
        let session = self.session.try_borrow().ok();
        Ok(complete::complete(
            &self.definitions,
            session.as_deref(),
            line,
            position,
        ))
    }
}

impl Hinter for ShellHelper {
    type Hint = String;

    fn hint(
        &self,
        line: &str,
        position: usize,
        context: &rustyline::Context<'_>,
    ) -> Option<String> {
        if self.answering.get() {
            return None;
        }
        self.hinter.hint(line, position, context)
    }
}

impl Highlighter for ShellHelper {
    fn highlight_hint<'h>(&self, hint: &'h str) -> Cow<'h, str> {
        // Dim, so a hint does not look typed.
        Cow::Owned(format!("\x1b[2m{hint}\x1b[0m"))
    }
}

impl Validator for ShellHelper {}

impl Helper for ShellHelper {}

/// Questions asked through the shell's own editor; secrets through a
/// hidden read of the terminal.
struct EditorPrompter<'e> {
    editor: &'e mut ShellEditor,
}

impl EditorPrompter<'_> {
    fn set_answering(&mut self, answering: bool) {
        if let Some(helper) = self.editor.helper_mut() {
            helper.answering.set(answering);
        }
    }
}

impl Prompter for EditorPrompter<'_> {
    fn ask(&mut self, label: &str, default: Option<&str>) -> Option<String> {
        self.set_answering(true);
        // The default is typed in already, so the admin can take it with
        // Enter or edit it.
        let answer = self
            .editor
            .readline_with_initial(&format!("{label}: "), (default.unwrap_or(""), ""));
        self.set_answering(false);
        answer.ok()
    }

    fn ask_secret(&mut self, label: &str) -> Option<String> {
        prompt::read_hidden(&format!("{label}: "), &mut io::stdout())
    }

    fn can_retry(&self) -> bool {
        true
    }

    fn tell(&mut self, message: &str) {
        let _ = writeln!(io::stderr(), "{message}");
    }
}
