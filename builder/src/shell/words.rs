//! Splits a line into statements and words the way a POSIX shell does for
//! the part of its syntax that admins type at `roleout-admin`: blanks
//! separate words, `'…'` quotes literally, `"…"` quotes with `\"` and `\\`
//! escapes, a backslash escapes the next character, `;` separates
//! statements, `#` at the start of a word begins a comment, a leading `~/`
//! is the home directory and unquoted `*` and `?` match file names.
//!
//! The `shlex` crate splits words but knows neither `;` nor where each word
//! started, which completion needs; one small lexer serves both running
//! and completing a line.

use std::path::{Path, PathBuf};

/// One word of a line, unquoted, with where it was in the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// The word after quote removal.
    pub text: String,
    /// Byte offset in the line where the word started (its opening quote
    /// included).
    pub start: usize,
    /// For each character of `text`: whether it was unquoted `*` or `?`,
    /// that is a wildcard rather than a literal character.
    wildcards: Vec<bool>,
}

impl Word {
    fn new(start: usize) -> Word {
        Word {
            text: String::new(),
            start,
            wildcards: Vec::new(),
        }
    }

    fn push(&mut self, character: char, wildcard: bool) {
        self.text.push(character);
        self.wildcards.push(wildcard);
    }

    fn has_wildcards(&self) -> bool {
        self.wildcards.iter().any(|wildcard| *wildcard)
    }
}

/// A line split into statements (separated by `;`), each a list of words.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lexed {
    /// The statements; the last one may be empty.
    pub statements: Vec<Vec<Word>>,
    /// The quote left open at the end of the line, if any.
    pub open_quote: Option<char>,
    /// Whether the line ended with a lone backslash.
    pub trailing_backslash: bool,
    /// Whether the line ends inside a word (no blank, `;` or comment after
    /// its last word).
    pub ends_in_word: bool,
}

/// Why a line cannot be split into words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// A `'` or `"` was never closed.
    #[error("unclosed {0} quote")]
    UnclosedQuote(char),
    /// The line ends with a backslash that escapes nothing.
    #[error("a backslash at the end of the line escapes nothing")]
    TrailingBackslash,
}

/// Splits `line` leniently: an open quote or a trailing backslash is
/// reported in the result rather than refused, so completion can work on
/// a line being typed.
pub fn lex(line: &str) -> Lexed {
    let mut lexed = Lexed {
        statements: vec![Vec::new()],
        ..Lexed::default()
    };
    let mut word: Option<Word> = None;
    let mut characters = line.char_indices().peekable();
    while let Some((index, character)) = characters.next() {
        match character {
            ' ' | '\t' | '\r' | '\n' => finish(&mut lexed, &mut word),
            ';' => {
                finish(&mut lexed, &mut word);
                lexed.statements.push(Vec::new());
            }
            '#' if word.is_none() => {
                // A comment runs to the end of the line.
                return lexed;
            }
            '\'' => {
                let current = word.get_or_insert_with(|| Word::new(index));
                let mut closed = false;
                for (_, quoted) in characters.by_ref() {
                    if quoted == '\'' {
                        closed = true;
                        break;
                    }
                    current.push(quoted, false);
                }
                if !closed {
                    lexed.open_quote = Some('\'');
                }
            }
            '"' => {
                let current = word.get_or_insert_with(|| Word::new(index));
                let mut closed = false;
                while let Some((_, quoted)) = characters.next() {
                    match quoted {
                        '"' => {
                            closed = true;
                            break;
                        }
                        '\\' => match characters.peek() {
                            Some((_, escaped @ ('"' | '\\' | '$' | '`'))) => {
                                current.push(*escaped, false);
                                characters.next();
                            }
                            _ => current.push('\\', false),
                        },
                        other => current.push(other, false),
                    }
                }
                if !closed {
                    lexed.open_quote = Some('"');
                }
            }
            '\\' => {
                let current = word.get_or_insert_with(|| Word::new(index));
                match characters.next() {
                    Some((_, escaped)) => current.push(escaped, false),
                    None => lexed.trailing_backslash = true,
                }
            }
            '~' if word.is_none() => {
                let mut current = Word::new(index);
                match characters.peek() {
                    None | Some((_, '/' | ' ' | '\t' | ';')) => match home_directory() {
                        Some(home) => {
                            for home_character in home.to_string_lossy().chars() {
                                current.push(home_character, false);
                            }
                        }
                        None => current.push('~', false),
                    },
                    Some(_) => current.push('~', false),
                }
                word = Some(current);
            }
            '*' | '?' => word
                .get_or_insert_with(|| Word::new(index))
                .push(character, true),
            other => word
                .get_or_insert_with(|| Word::new(index))
                .push(other, false),
        }
    }
    lexed.ends_in_word = word.is_some();
    finish(&mut lexed, &mut word);
    lexed
}

fn finish(lexed: &mut Lexed, word: &mut Option<Word>) {
    if let Some(word) = word.take() {
        // `lex` starts with one statement and only ever adds more.
        if let Some(statement) = lexed.statements.last_mut() {
            statement.push(word);
        }
    }
}

/// Splits a complete line into statements of words, expanding file-name
/// wildcards; empty statements (blank lines, comments, `;;`) are dropped.
pub fn split(line: &str) -> Result<Vec<Vec<String>>, SplitError> {
    let lexed = lex(line);
    if let Some(quote) = lexed.open_quote {
        return Err(SplitError::UnclosedQuote(quote));
    }
    if lexed.trailing_backslash {
        return Err(SplitError::TrailingBackslash);
    }
    Ok(lexed
        .statements
        .into_iter()
        .filter(|statement| !statement.is_empty())
        .map(|statement| statement.iter().flat_map(expand).collect())
        .collect())
}

/// The home directory, for `~`.
pub fn home_directory() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .map(PathBuf::from)
}

/// Quotes `text` so that [`lex`] reads it back as one word with the same
/// text. A leading `~/` is left as it is, so it keeps meaning home.
pub fn quote(text: &str) -> String {
    let (kept, rest) = match text.strip_prefix("~/") {
        Some(rest) => ("~/", rest),
        None => ("", text),
    };
    let mut quoted = String::from(kept);
    for (index, character) in rest.char_indices() {
        let special = matches!(
            character,
            ' ' | '\t' | '\'' | '"' | '\\' | ';' | '*' | '?' | '\n' | '\r'
        ) || (index == 0 && kept.is_empty() && matches!(character, '#' | '~'));
        if special {
            quoted.push('\\');
        }
        quoted.push(character);
    }
    quoted
}

/// A word with wildcards becomes the sorted paths that match it, or stays
/// as it is when nothing matches (as in `sh`), so the command that gets it
/// can say which file is missing.
fn expand(word: &Word) -> Vec<String> {
    if !word.has_wildcards() {
        return vec![word.text.clone()];
    }
    let pattern: Vec<(char, bool)> = word
        .text
        .chars()
        .zip(word.wildcards.iter().copied())
        .collect();
    let components: Vec<&[(char, bool)]> = pattern
        .split(|(character, wildcard)| *character == '/' && !wildcard)
        .collect();
    let absolute = word.text.starts_with('/');
    let mut matches = vec![String::new()];
    for (position, component) in components.iter().enumerate() {
        if position == 0 && absolute {
            // The empty component before the leading slash.
            matches = vec![String::from("/")];
            continue;
        }
        let is_last = position + 1 == components.len();
        let separator = |prefix: &str| {
            if prefix.is_empty() || prefix.ends_with('/') {
                String::new()
            } else {
                String::from("/")
            }
        };
        if component.iter().all(|(_, wildcard)| !wildcard) {
            let literal: String = component.iter().map(|(character, _)| character).collect();
            for prefix in &mut matches {
                let joined = format!("{prefix}{}{literal}", separator(prefix));
                *prefix = joined;
            }
            continue;
        }
        let mut next = Vec::new();
        for prefix in &matches {
            let directory = if prefix.is_empty() {
                Path::new(".")
            } else {
                Path::new(prefix.as_str())
            };
            let Ok(entries) = std::fs::read_dir(directory) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .filter_map(|entry| entry.ok())
                .filter_map(|entry| entry.file_name().into_string().ok())
                .filter(|name| matches_component(component, name))
                .collect();
            names.sort();
            for name in names {
                let path = format!("{prefix}{}{name}", separator(prefix));
                if is_last || Path::new(&path).is_dir() {
                    next.push(path);
                }
            }
        }
        matches = next;
    }
    matches.retain(|path| Path::new(path).exists());
    if matches.is_empty() {
        vec![word.text.clone()]
    } else {
        matches
    }
}

/// Whether `name` matches one path component of a pattern; as in `sh`, a
/// wildcard does not match a leading dot.
fn matches_component(pattern: &[(char, bool)], name: &str) -> bool {
    if name.starts_with('.') && !matches!(pattern.first(), Some(('.', false))) {
        return false;
    }
    let name: Vec<char> = name.chars().collect();
    matches_from(pattern, &name)
}

fn matches_from(pattern: &[(char, bool)], name: &[char]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((('*', true), rest)) => (0..=name.len()).any(|skip| matches_from(rest, &name[skip..])),
        Some((('?', true), rest)) => !name.is_empty() && matches_from(rest, &name[1..]),
        Some(((character, _), rest)) => {
            name.first() == Some(character) && matches_from(rest, &name[1..])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<Vec<String>> {
        match split(line) {
            Ok(statements) => statements,
            Err(error) => panic!("{line:?} did not split: {error}"),
        }
    }

    #[test]
    fn blanks_quotes_and_escapes() {
        assert_eq!(
            words(r#"check  'a b'  "c \"d\" \e"  f\ g"#),
            vec![vec!["check", "a b", r#"c "d" \e"#, "f g"]]
        );
        assert_eq!(words(r#"x"y"'z'"#), vec![vec!["xyz"]]);
        assert_eq!(words("''"), vec![vec![""]]);
    }

    #[test]
    fn statements_and_comments() {
        assert_eq!(
            words("help; check a.xml ;; exit # bye; not run"),
            vec![vec!["help"], vec!["check", "a.xml"], vec!["exit"]]
        );
        assert_eq!(words("echo a#b 'c;d'"), vec![vec!["echo", "a#b", "c;d"]]);
        assert!(words("   # only a comment").is_empty());
    }

    #[test]
    fn unfinished_lines_are_refused() {
        assert_eq!(split("check 'a"), Err(SplitError::UnclosedQuote('\'')));
        assert_eq!(split("check \"a"), Err(SplitError::UnclosedQuote('"')));
        assert_eq!(split("check a\\"), Err(SplitError::TrailingBackslash));
    }

    #[test]
    fn lex_tells_where_the_last_word_started() {
        let lexed = lex("check \"my fi");
        assert_eq!(lexed.open_quote, Some('"'));
        assert!(lexed.ends_in_word);
        let last = &lexed.statements[0][1];
        assert_eq!((last.text.as_str(), last.start), ("my fi", 6));
        assert!(!lex("check ").ends_in_word);
    }

    #[test]
    fn quote_round_trips() {
        for text in [
            "plain",
            "a b",
            "it's",
            "x\"y",
            "back\\slash",
            "a;b",
            "*?",
            "#x",
            "~x",
        ] {
            let quoted = quote(text);
            assert_eq!(words(&quoted), vec![vec![text.to_owned()]], "{quoted}");
        }
        assert_eq!(quote("~/a b"), "~/a\\ b");
    }

    #[test]
    fn wildcards_expand_to_sorted_matches() -> std::io::Result<()> {
        let directory = tempfile::tempdir()?;
        for name in ["b.xml", "a.xml", "c.txt", ".hidden.xml"] {
            std::fs::write(directory.path().join(name), "")?;
        }
        std::fs::create_dir(directory.path().join("sub"))?;
        std::fs::write(directory.path().join("sub/d.xml"), "")?;
        let base = directory.path().display().to_string();
        let found = words(&format!(
            "check {}/*.xml {}/?/x {}/s*/*.xml",
            quote(&base),
            quote(&base),
            quote(&base)
        ));
        assert_eq!(
            found,
            vec![vec![
                "check".to_owned(),
                format!("{base}/a.xml"),
                format!("{base}/b.xml"),
                // No match: the word stays as typed.
                format!("{base}/?/x"),
                format!("{base}/sub/d.xml"),
            ]]
        );
        // Quoted wildcards are literal.
        assert_eq!(
            words(&format!("check '{base}/*.xml'")),
            vec![vec!["check".to_owned(), format!("{base}/*.xml")]]
        );
        Ok(())
    }

    #[test]
    fn component_matching() {
        let pattern = |text: &str| -> Vec<(char, bool)> {
            text.chars()
                .map(|character| (character, matches!(character, '*' | '?')))
                .collect()
        };
        assert!(matches_component(&pattern("*.xml"), "a.xml"));
        assert!(matches_component(&pattern("a*b*c"), "aXbYc"));
        assert!(!matches_component(&pattern("a*b*c"), "aXbY"));
        assert!(matches_component(&pattern("?"), "é"));
        assert!(!matches_component(&pattern("*"), ".profile"));
        assert!(matches_component(&pattern(".*"), ".profile"));
    }
}
