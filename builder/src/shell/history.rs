//! The shell's history file: the lines an admin typed, kept across
//! sessions in the user's data directory, each line once (the latest use
//! wins), at most [`HISTORY_LIMIT`] of them, and never a line that may
//! carry a password.
//!
//! The file is plain text, one line per entry, so an admin can read or
//! prune it. Each addition re-reads the file before writing it back (to a
//! temporary file renamed over it), so two shells open at once both keep
//! their lines.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// How many lines the history keeps.
pub const HISTORY_LIMIT: usize = 1000;

/// Where the history lives: `$XDG_DATA_HOME/roleout/history`, else
/// `~/.local/share/roleout/history`; `None` when neither is known.
pub fn default_path() -> Option<PathBuf> {
    let data_home = std::env::var_os("XDG_DATA_HOME")
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
        .filter(|path| path.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|value| !value.is_empty())
                .map(|home| PathBuf::from(home).join(".local/share"))
        })?;
    Some(data_home.join("roleout").join("history"))
}

/// Whether a typed line may be kept: not blank, not starting with a blank
/// (the shell convention for "do not remember this one"), on one line, and
/// without the word "password" (or "passwd") anywhere, since an option or
/// value that mentions it may carry one.
pub fn may_keep(line: &str) -> bool {
    let lowered = line.to_lowercase();
    !line.trim().is_empty()
        && !line.starts_with([' ', '\t'])
        && !line.contains(['\n', '\r'])
        && !lowered.contains("password")
        && !lowered.contains("passwd")
}

/// The history: its entries, oldest first, and the file they live in.
#[derive(Debug)]
pub struct History {
    path: Option<PathBuf>,
    entries: Vec<String>,
    /// Entries added while the file could not be written, kept for the
    /// next write.
    unsaved: Vec<String>,
    limit: usize,
}

impl History {
    /// The history of the file at `path` (empty when it does not exist yet);
    /// with `None`, a history kept in memory only.
    pub fn open(path: Option<PathBuf>, limit: usize) -> io::Result<History> {
        let mut history = History::in_memory(limit);
        history.path = path;
        history.reload()?;
        Ok(history)
    }

    /// A history kept in memory only, for when the file cannot be read.
    pub fn in_memory(limit: usize) -> History {
        History {
            path: None,
            entries: Vec::new(),
            unsaved: Vec::new(),
            limit,
        }
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> &[String] {
        &self.entries
    }

    /// Adds `line` as the newest entry (removing an older copy) and writes
    /// the file. Returns false, and keeps nothing, when [`may_keep`] refuses
    /// the line. The entry is kept in memory even when the file cannot be
    /// written; the error says why.
    pub fn add(&mut self, line: &str) -> io::Result<bool> {
        if !may_keep(line) {
            return Ok(false);
        }
        // `check a.xml ` and `check a.xml` are one entry.
        let line = line.trim_end();
        // Another shell may have written since; start from the file.
        let reloaded = self.reload();
        self.entries.retain(|entry| entry != line);
        self.entries.push(line.to_owned());
        self.trim();
        self.unsaved.retain(|entry| entry != line);
        self.unsaved.push(line.to_owned());
        reloaded?;
        self.save()?;
        self.unsaved.clear();
        Ok(true)
    }

    fn reload(&mut self) -> io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let text = match fs::read(path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(error),
        };
        let mut entries: Vec<String> = Vec::new();
        for line in text.lines() {
            if may_keep(line) {
                entries.retain(|entry| entry != line);
                entries.push(line.to_owned());
            }
        }
        // Lines that a failed write left out of the file stay, as the newest.
        for entry in &self.unsaved {
            entries.retain(|kept| kept != entry);
            entries.push(entry.clone());
        }
        self.entries = entries;
        self.trim();
        Ok(())
    }

    fn trim(&mut self) {
        if self.entries.len() > self.limit {
            let excess = self.entries.len() - self.limit;
            self.entries.drain(..excess);
        }
    }

    fn save(&self) -> io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let directory = path.parent().unwrap_or(Path::new("."));
        // The history is the admin's own: other users may not read it.
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(directory)?;
        let temporary = path.with_extension(format!("new.{}", std::process::id()));
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)?;
        let mut text = String::new();
        for entry in &self.entries {
            text.push_str(entry);
            text.push('\n');
        }
        let written = file
            .write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .and_then(|()| fs::rename(&temporary, path));
        if written.is_err() {
            let _ = fs::remove_file(&temporary);
        }
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_with_passwords_are_not_kept() {
        assert!(may_keep("check a.xml"));
        for line in [
            "customize --set admin_password=hunter2",
            "connect --bind-password-file /tmp/x",
            "set PASSWD x",
            " check a.xml",
            "",
            "   ",
        ] {
            assert!(!may_keep(line), "{line:?}");
        }
    }

    #[test]
    fn entries_are_unique_bounded_and_persisted() -> io::Result<()> {
        let directory = tempfile::tempdir()?;
        let path = directory.path().join("roleout/history");
        let mut history = History::open(Some(path.clone()), 3)?;
        for line in ["one", "two", "one ", "three", "four", "bind --password x"] {
            history.add(line)?;
        }
        assert_eq!(
            history.entries(),
            ["one", "three", "four"].map(String::from)
        );
        let reopened = History::open(Some(path.clone()), 3)?;
        assert_eq!(reopened.entries(), history.entries());
        assert_eq!(fs::read_to_string(&path)?, "one\nthree\nfour\n");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
        Ok(())
    }

    #[test]
    fn two_shells_keep_both_their_lines() -> io::Result<()> {
        let directory = tempfile::tempdir()?;
        let path = directory.path().join("history");
        let mut first = History::open(Some(path.clone()), 10)?;
        let mut second = History::open(Some(path.clone()), 10)?;
        first.add("check a.xml")?;
        second.add("help")?;
        first.add("exit")?;
        assert_eq!(fs::read_to_string(&path)?, "check a.xml\nhelp\nexit\n");
        Ok(())
    }
}
