//! Tab completion, read off the clap definitions of the commands: command
//! names first, then a command's options, then the values its arguments
//! take: files and directories for path arguments, the listed values of a
//! closed set, command names for `help`, and directory objects through
//! [`Session::complete_names`] for arguments marked `ValueHint::Other`.

use std::path::PathBuf;

use clap::{Arg, ValueHint};
use rustyline::completion::Pair;

use super::session::{NameKind, Session};
use super::words::{self, home_directory, quote};

/// The completions of the word that ends at byte `position` of `line`:
/// where the word starts, and the candidates to put in its place.
pub fn complete(
    definitions: &clap::Command,
    session: Option<&Session>,
    line: &str,
    position: usize,
) -> (usize, Vec<Pair>) {
    let Some(before) = line.get(..position) else {
        return (position, Vec::new());
    };
    let lexed = words::lex(before);
    if lexed.trailing_backslash {
        return (position, Vec::new());
    }
    let Some(statement) = lexed.statements.last() else {
        return (position, Vec::new());
    };
    let (previous, current, start) = match statement.split_last() {
        Some((last, previous)) if lexed.ends_in_word => (
            previous,
            as_typed(&before[last.start..], &last.text),
            last.start,
        ),
        _ => (&statement[..], String::new(), position),
    };
    let previous: Vec<&str> = previous.iter().map(|word| word.text.as_str()).collect();
    (start, candidates(definitions, session, &previous, &current))
}

/// The word as the admin typed it where that matters for completing it: a
/// leading `~` stays `~` rather than the home directory it stands for.
fn as_typed(raw: &str, text: &str) -> String {
    if raw.starts_with('~')
        && let Some(home) = home_directory()
        && let Some(rest) = text.strip_prefix(home.to_string_lossy().as_ref())
    {
        return format!("~{rest}");
    }
    text.to_owned()
}

fn candidates(
    definitions: &clap::Command,
    session: Option<&Session>,
    previous: &[&str],
    current: &str,
) -> Vec<Pair> {
    let Some((name, arguments)) = previous.split_first() else {
        return words_starting_with(command_names(definitions), current);
    };
    let Some(command) = find_command(definitions, name) else {
        return Vec::new();
    };
    // Which argument the current word is a value of.
    let mut positional_index = 0;
    let mut option_waiting: Option<&Arg> = None;
    let mut only_positionals = false;
    for word in arguments {
        if option_waiting.take().is_some() {
            continue;
        }
        if !only_positionals && *word == "--" {
            only_positionals = true;
        } else if !only_positionals && word.starts_with('-') && word.len() > 1 {
            if !word.contains('=') {
                option_waiting =
                    find_option(command, word).filter(|option| option.get_action().takes_values());
            }
        } else {
            positional_index += 1;
        }
    }
    if let Some(option) = option_waiting {
        return values(definitions, session, option, current);
    }
    if current.starts_with('-') && !only_positionals {
        let options = command
            .get_arguments()
            .filter(|argument| !argument.is_positional() && !argument.is_hide_set())
            .filter_map(|argument| argument.get_long().map(|long| format!("--{long}")));
        return words_starting_with(options.collect(), current);
    }
    let positionals: Vec<&Arg> = command.get_positionals().collect();
    let argument = positionals.get(positional_index).copied().or_else(|| {
        positionals.last().copied().filter(|last| {
            last.get_num_args()
                .is_some_and(|range| range.max_values() > 1)
        })
    });
    match argument {
        Some(argument) => values(definitions, session, argument, current),
        None => Vec::new(),
    }
}

fn find_command<'a>(definitions: &'a clap::Command, name: &str) -> Option<&'a clap::Command> {
    definitions.get_subcommands().find(|command| {
        command.get_name() == name || command.get_all_aliases().any(|alias| alias == name)
    })
}

fn find_option<'a>(command: &'a clap::Command, word: &str) -> Option<&'a Arg> {
    command.get_arguments().find(|argument| {
        if let Some(long) = word.strip_prefix("--") {
            argument.get_long() == Some(long)
        } else {
            let mut characters = word.chars().skip(1);
            let short = characters.next();
            characters.next().is_none() && short.is_some() && argument.get_short() == short
        }
    })
}

fn command_names(definitions: &clap::Command) -> Vec<String> {
    definitions
        .get_subcommands()
        .filter(|command| !command.is_hide_set())
        .flat_map(|command| {
            std::iter::once(command.get_name().to_owned())
                .chain(command.get_visible_aliases().map(str::to_owned))
        })
        .collect()
}

fn values(
    definitions: &clap::Command,
    session: Option<&Session>,
    argument: &Arg,
    current: &str,
) -> Vec<Pair> {
    let possible: Vec<String> = argument
        .get_possible_values()
        .iter()
        .filter(|value| !value.is_hide_set())
        .map(|value| value.get_name().to_owned())
        .collect();
    if !possible.is_empty() {
        return words_starting_with(possible, current);
    }
    match argument.get_value_hint() {
        ValueHint::AnyPath | ValueHint::FilePath | ValueHint::ExecutablePath => {
            paths(current, false)
        }
        ValueHint::DirPath => paths(current, true),
        ValueHint::Other => {
            let value_name = argument
                .get_value_names()
                .and_then(|names| names.first())
                .map(|name| name.as_str())
                .unwrap_or_else(|| argument.get_id().as_str());
            if value_name == "COMMAND" {
                words_starting_with(command_names(definitions), current)
            } else {
                let names = session
                    .map(|session| {
                        session.complete_names(&NameKind::from_value_name(value_name), current)
                    })
                    .unwrap_or_default();
                words_starting_with(names, current)
            }
        }
        _ => Vec::new(),
    }
}

/// Complete words: each followed by a blank, so the admin can type on.
fn words_starting_with(mut candidates: Vec<String>, current: &str) -> Vec<Pair> {
    candidates.retain(|candidate| candidate.starts_with(current));
    candidates.sort();
    candidates.dedup();
    candidates
        .into_iter()
        .map(|candidate| Pair {
            replacement: format!("{} ", quote(&candidate)),
            display: candidate,
        })
        .collect()
}

/// Files and directories whose path starts with `current`; directories end
/// with `/` (and no blank, to go on into them). Hidden entries only when the
/// admin typed the leading dot.
fn paths(current: &str, directories_only: bool) -> Vec<Pair> {
    let (directory_part, name_prefix) = match current.rfind('/') {
        Some(slash) => current.split_at(slash + 1),
        None => ("", current),
    };
    let directory: PathBuf = if directory_part.is_empty() {
        PathBuf::from(".")
    } else if let (Some(rest), Some(home)) = (directory_part.strip_prefix("~/"), home_directory()) {
        home.join(rest)
    } else {
        PathBuf::from(directory_part)
    };
    let Ok(entries) = std::fs::read_dir(&directory) else {
        return Vec::new();
    };
    let mut found: Vec<(String, bool)> = entries
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let hidden_wanted = name_prefix.starts_with('.');
            if !name.starts_with(name_prefix) || (name.starts_with('.') && !hidden_wanted) {
                return None;
            }
            // Follows symbolic links, so a link to a directory is one.
            let is_directory = entry.path().is_dir();
            (is_directory || !directories_only).then_some((name, is_directory))
        })
        .collect();
    found.sort();
    found
        .into_iter()
        .map(|(name, is_directory)| {
            let path = format!("{directory_part}{name}");
            if is_directory {
                Pair {
                    display: format!("{name}/"),
                    replacement: format!("{}/", quote(&path)),
                }
            } else {
                Pair {
                    display: name,
                    replacement: format!("{} ", quote(&path)),
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;
    use crate::shell::cli::ShellLine;

    fn replacements(line: &str) -> (usize, Vec<String>) {
        let mut definitions = ShellLine::command();
        definitions.build();
        let (start, pairs) = complete(&definitions, None, line, line.len());
        (
            start,
            pairs.into_iter().map(|pair| pair.replacement).collect(),
        )
    }

    #[test]
    fn command_names_and_aliases() {
        assert_eq!(replacements("che"), (0, vec!["check ".to_owned()]));
        assert_eq!(replacements("help; q"), (6, vec!["quit ".to_owned()]));
        let (_, all) = replacements("");
        for name in ["bind ", "check ", "exit ", "help ", "quit "] {
            assert!(all.contains(&name.to_owned()), "{all:?}");
        }
    }

    #[test]
    fn options_from_the_definition() {
        assert_eq!(replacements("check --h"), (6, vec!["--help ".to_owned()]));
        assert!(replacements("nosuch --h").1.is_empty());
    }

    #[test]
    fn help_completes_command_names() {
        assert_eq!(replacements("help ch"), (5, vec!["check ".to_owned()]));
    }

    #[test]
    fn file_arguments_complete_paths() -> std::io::Result<()> {
        let directory = tempfile::tempdir()?;
        std::fs::write(directory.path().join("suite one.xml"), "")?;
        std::fs::write(directory.path().join("suite two.xml"), "")?;
        std::fs::write(directory.path().join(".hidden.xml"), "")?;
        std::fs::create_dir(directory.path().join("sub"))?;
        let base = directory.path().display().to_string();
        let (start, found) = replacements(&format!("check a.xml {base}/"));
        assert_eq!(start, 12);
        assert_eq!(
            found,
            vec![
                format!("{base}/sub/"),
                format!("{base}/suite\\ one.xml "),
                format!("{base}/suite\\ two.xml "),
            ]
        );
        let (start, found) = replacements(&format!("check \"{base}/suite o"));
        assert_eq!(
            (start, found),
            (6, vec![format!("{base}/suite\\ one.xml ")])
        );
        assert_eq!(
            replacements(&format!("check {base}/.h")).1,
            vec![format!("{base}/.hidden.xml ")]
        );
        Ok(())
    }

    #[test]
    fn arguments_without_completion_offer_nothing() {
        assert!(replacements("exit ").1.is_empty());
        // The directory names hook answers nothing yet.
        assert!(replacements("bind cn=").1.is_empty());
    }
}
