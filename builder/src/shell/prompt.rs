//! How commands ask the admin questions: one [`Prompter`] trait, answered
//! by the line editor in the interactive shell and by the next lines of
//! standard input in scripts, so a command that asks works the same both
//! ways.
//!
//! Secrets are read with the terminal's echo turned off through termios
//! (as `rpassword` does) rather than through the line editor with a masking
//! highlighter: the editor echoes in clear whenever it falls back to its
//! plain mode (unknown `TERM`, colours off), and a hidden read cannot.

use std::io::{self, BufRead, IsTerminal, Write};
use std::os::fd::AsFd;

use nix::sys::termios::{self, LocalFlags, SetArg, SpecialCharacterIndices};

use super::commands::CommandError;

/// Asks the admin questions on behalf of a command.
pub trait Prompter {
    /// Asks for a value, offering `default`; `None` when the admin cancels
    /// (Ctrl-C, Ctrl-D) or the input ends.
    fn ask(&mut self, label: &str, default: Option<&str>) -> Option<String>;

    /// Asks for a secret without showing it; `None` when the admin cancels
    /// or the input ends.
    fn ask_secret(&mut self, label: &str) -> Option<String>;

    /// Whether a person answers, who can be asked again after a wrong
    /// answer; a script cannot, and its wrong answer fails the command.
    fn can_retry(&self) -> bool;

    /// Tells the admin something between questions (why an answer was
    /// refused).
    fn tell(&mut self, message: &str);
}

/// Asks until `validate` accepts the answer, telling the admin what was
/// wrong each time; in a script a wrong answer fails the command. `command`
/// names the command in the errors.
pub fn ask_valid<T>(
    prompter: &mut dyn Prompter,
    command: &str,
    label: &str,
    default: Option<&str>,
    validate: impl Fn(&str) -> Result<T, String>,
) -> Result<T, CommandError> {
    loop {
        let answer = prompter
            .ask(label, default)
            .ok_or_else(|| CommandError::Failed(format!("{command}: cancelled")))?;
        match validate(&answer) {
            Ok(value) => return Ok(value),
            Err(problem) if prompter.can_retry() => prompter.tell(&format!("{label}: {problem}")),
            Err(problem) => {
                return Err(CommandError::Failed(format!(
                    "{command}: {label}: {problem}"
                )));
            }
        }
    }
}

/// Why a line could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    /// Reading failed.
    #[error("cannot read: {0}")]
    Io(#[from] io::Error),
    /// The line is not UTF-8 text.
    #[error("line {0} is not UTF-8 text")]
    NotText(usize),
}

/// Lines of a script or of answers, counted so errors can name them.
pub struct LineReader<'a> {
    reader: Box<dyn BufRead + 'a>,
    number: usize,
}

impl<'a> LineReader<'a> {
    /// Reads lines from `reader`.
    pub fn new(reader: impl BufRead + 'a) -> LineReader<'a> {
        LineReader {
            reader: Box::new(reader),
            number: 0,
        }
    }

    /// The next line without its line ending, or `None` at the end.
    pub fn next_line(&mut self) -> Result<Option<String>, LineError> {
        let mut bytes = Vec::new();
        if self.reader.read_until(b'\n', &mut bytes)? == 0 {
            return Ok(None);
        }
        self.number += 1;
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| LineError::NotText(self.number))
    }

    /// The number of the last line read (the first line is 1).
    pub fn number(&self) -> usize {
        self.number
    }
}

/// Answers from lines of standard input: a script's next lines, or what the
/// admin types when standard input is a terminal but there is no shell (a
/// one-shot command or `-c`).
pub struct LinePrompter<'r, 'a> {
    lines: &'r mut LineReader<'a>,
    terminal: bool,
}

impl<'r, 'a> LinePrompter<'r, 'a> {
    /// Answers from `lines`; `terminal` says whether a person types them,
    /// in which case questions are shown on standard error and secrets are
    /// read without echo.
    pub fn new(lines: &'r mut LineReader<'a>, terminal: bool) -> LinePrompter<'r, 'a> {
        LinePrompter { lines, terminal }
    }

    /// Answers from standard input, which is a terminal or not.
    pub fn standard_input(lines: &'r mut LineReader<'a>) -> LinePrompter<'r, 'a> {
        let terminal = io::stdin().is_terminal();
        LinePrompter::new(lines, terminal)
    }
}

impl Prompter for LinePrompter<'_, '_> {
    fn ask(&mut self, label: &str, default: Option<&str>) -> Option<String> {
        if self.terminal {
            let shown = match default {
                Some(default) => format!("{label} [{default}]: "),
                None => format!("{label}: "),
            };
            let mut stderr = io::stderr();
            let _ = stderr.write_all(shown.as_bytes());
            let _ = stderr.flush();
        }
        let answer = self.lines.next_line().ok().flatten()?;
        match default {
            Some(default) if answer.is_empty() => Some(default.to_owned()),
            _ => Some(answer),
        }
    }

    fn ask_secret(&mut self, label: &str) -> Option<String> {
        if self.terminal {
            read_hidden(&format!("{label}: "), &mut io::stderr())
        } else {
            self.lines.next_line().ok().flatten()
        }
    }

    fn can_retry(&self) -> bool {
        self.terminal
    }

    fn tell(&mut self, message: &str) {
        let _ = writeln!(io::stderr(), "{message}");
    }
}

/// Shows `prompt` on `screen` and reads one line from the terminal on
/// standard input without echoing it. The terminal is put in
/// non-canonical mode without echo and without signals, so Ctrl-C arrives
/// as a key (and cancels) instead of killing the process with echo still
/// off; its settings are restored however the read ends. Backspace, Ctrl-U
/// (erase all), Ctrl-C and Ctrl-D (cancel on an empty line) work; other
/// control keys are ignored. `None` when cancelled, at end of input, or
/// when standard input is not a terminal.
pub fn read_hidden(prompt: &str, screen: &mut dyn Write) -> Option<String> {
    let stdin = io::stdin();
    let descriptor = stdin.as_fd();
    let original = termios::tcgetattr(descriptor).ok()?;
    let mut hidden = original.clone();
    hidden
        .local_flags
        .remove(LocalFlags::ECHO | LocalFlags::ICANON | LocalFlags::ISIG | LocalFlags::IEXTEN);
    hidden.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
    hidden.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
    // Echo goes off before the prompt shows, so nothing typed as soon as
    // it appears can be echoed.
    termios::tcsetattr(descriptor, SetArg::TCSANOW, &hidden).ok()?;
    let restore = RestoreTerminal {
        descriptor,
        original: &original,
    };
    let _ = screen.write_all(prompt.as_bytes());
    let _ = screen.flush();
    let mut typed: Vec<u8> = Vec::new();
    let answer = loop {
        let mut byte = [0u8; 1];
        // Raw reads of one byte: a buffered reader could take keys typed
        // after Enter away from the line editor.
        match nix::unistd::read(descriptor, &mut byte) {
            Ok(0) | Err(_) => break None,
            Ok(_) => {}
        }
        match byte[0] {
            b'\r' | b'\n' => break String::from_utf8(std::mem::take(&mut typed)).ok(),
            0x03 => break None,
            0x04 if typed.is_empty() => break None,
            0x7f | 0x08 => pop_character(&mut typed),
            0x15 => typed.clear(),
            control if control < 0x20 => {}
            other => typed.push(other),
        }
    };
    drop(restore);
    let _ = screen.write_all(b"\n");
    let _ = screen.flush();
    answer
}

/// Removes the last UTF-8 character of `bytes`.
fn pop_character(bytes: &mut Vec<u8>) {
    while let Some(last) = bytes.pop() {
        // Continuation bytes are 0b10xxxxxx; stop after the leading byte.
        if last & 0b1100_0000 != 0b1000_0000 {
            break;
        }
    }
}

/// Puts the terminal settings back when dropped.
struct RestoreTerminal<'a, F: AsFd> {
    descriptor: F,
    original: &'a termios::Termios,
}

impl<F: AsFd> Drop for RestoreTerminal<'_, F> {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(&self.descriptor, SetArg::TCSANOW, self.original);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_counted_and_trimmed() -> Result<(), LineError> {
        let mut lines = LineReader::new(&b"one\r\ntwo\n\nlast"[..]);
        let mut read = Vec::new();
        while let Some(line) = lines.next_line()? {
            read.push((lines.number(), line));
        }
        assert_eq!(
            read,
            vec![
                (1, "one".to_owned()),
                (2, "two".to_owned()),
                (3, String::new()),
                (4, "last".to_owned())
            ]
        );
        Ok(())
    }

    #[test]
    fn bad_bytes_name_their_line() {
        let mut lines = LineReader::new(&b"fine\n\xff\xfe\n"[..]);
        assert!(matches!(lines.next_line(), Ok(Some(_))));
        assert!(matches!(lines.next_line(), Err(LineError::NotText(2))));
    }

    #[test]
    fn script_answers_take_defaults_and_secrets() {
        let mut lines = LineReader::new(&b"\ncn=other\ns3cret\n"[..]);
        let mut prompter = LinePrompter::new(&mut lines, false);
        assert_eq!(
            prompter.ask("DN", Some("cn=admin")).as_deref(),
            Some("cn=admin")
        );
        assert_eq!(
            prompter.ask("DN", Some("cn=admin")).as_deref(),
            Some("cn=other")
        );
        assert_eq!(prompter.ask_secret("Password").as_deref(), Some("s3cret"));
        assert_eq!(prompter.ask("More", None), None);
    }

    #[test]
    fn scripts_cannot_retry_a_wrong_answer() {
        let mut lines = LineReader::new(&b"seven\n7\n"[..]);
        let mut prompter = LinePrompter::new(&mut lines, false);
        let parsed = ask_valid(&mut prompter, "customize", "Port", None, |answer| {
            answer
                .parse::<u16>()
                .map_err(|_| format!("'{answer}' is not a number"))
        });
        assert_eq!(
            parsed,
            Err(CommandError::Failed(String::from(
                "customize: Port: 'seven' is not a number"
            )))
        );
    }

    /// Answers from a list, as a person who retries would.
    struct Person(Vec<&'static str>, Vec<String>);

    impl Prompter for Person {
        fn ask(&mut self, _label: &str, _default: Option<&str>) -> Option<String> {
            (!self.0.is_empty()).then(|| self.0.remove(0).to_owned())
        }
        fn ask_secret(&mut self, label: &str) -> Option<String> {
            self.ask(label, None)
        }
        fn can_retry(&self) -> bool {
            true
        }
        fn tell(&mut self, message: &str) {
            self.1.push(message.to_owned());
        }
    }

    #[test]
    fn people_are_asked_again() {
        let mut person = Person(vec!["seven", "7"], Vec::new());
        let parsed = ask_valid(&mut person, "customize", "Port", None, |answer| {
            answer
                .parse::<u16>()
                .map_err(|_| format!("'{answer}' is not a number"))
        });
        assert_eq!(parsed, Ok(7));
        assert_eq!(person.1, vec!["Port: 'seven' is not a number".to_owned()]);
    }

    #[test]
    fn backspace_removes_whole_characters() {
        let mut bytes = "aé".as_bytes().to_vec();
        pop_character(&mut bytes);
        assert_eq!(bytes, b"a");
        pop_character(&mut bytes);
        pop_character(&mut bytes);
        assert!(bytes.is_empty());
    }
}
