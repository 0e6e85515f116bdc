//! Whole-file replacement that a crash or a power cut cannot tear.
//!
//! Every state file (journal, report, lock holder's pid, materialized copy) is
//! written the same way:
//!
//! 1. write the new content to a temporary file in the target's directory
//!    (same file system, so step 3 is a rename and not a copy), created with
//!    the caller's mode from the start so a secret is never readable by others,
//!    not even for a moment;
//! 2. **fsync the temporary file**: its data must be on disk before the name
//!    points to it. Without this, ext4 and XFS may persist the rename before
//!    the data, and after a power cut the journal would be an empty or
//!    half-written file;
//! 3. rename it over the target: rename(2) replaces a name atomically, so a
//!    reader opening the target sees the old file or the new one, never a mix;
//! 4. **fsync the directory**: the rename lives in the directory, and until
//!    that is on disk a power cut can bring back the old file. The journal
//!    records "done" and the installer then starts the next command; if the
//!    "done" could vanish, a finished step would run twice after the power cut.
//!
//! A crash between steps 1 and 3 leaves a temporary file behind. Its name
//! starts with a dot and ends in `.tmp.PID.N`, so no reader ever takes it for
//! state, and the next write of the same target removes it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::state::StateError;

/// Mode for files that may hold secrets (journal, reports, lock): owner only.
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// Mode for the state directories: owner only.
pub const PRIVATE_DIR_MODE: u32 = 0o700;

/// Distinguishes temporary files of concurrent writes within one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Replaces `path` with `contents`, durably and atomically, with file mode `mode`.
///
/// When this returns `Ok`, the new content survives a power cut. Writers of
/// one target must not run concurrently (the [`StateLock`](crate::state::StateLock)
/// sees to that), because each write removes the leftovers of earlier ones.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), StateError> {
    write_atomic_with(path, mode, |file| {
        file.write_all(contents).map_err(|source| ("write", source))
    })
}

/// Like [`write_atomic`], with the content produced by `fill` writing into
/// the temporary file (for content too large to hold in memory). An error
/// from `fill` is reported as an [`StateError::Io`] on the temporary file
/// with the action `fill` gives.
pub fn write_atomic_with(
    path: &Path,
    mode: u32,
    fill: impl FnOnce(&mut File) -> Result<(), (&'static str, io::Error)>,
) -> Result<(), StateError> {
    let (directory, file_name) = split_path(path)?;
    remove_leftover_temporaries(directory, file_name)?;

    let temporary = directory.join(format!(
        ".{file_name}.tmp.{}.{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = write_and_sync(&temporary, mode, fill)
        .and_then(|()| {
            fs::rename(&temporary, path)
                .map_err(|source| StateError::io("rename", &temporary, source))
        })
        .and_then(|()| sync_directory(directory));
    if result.is_err() {
        // Best effort: the temporary is harmless (readers ignore it and the
        // next write removes it), so a failure to remove it now is not worth
        // hiding the original error behind.
        let _ = fs::remove_file(&temporary);
    }
    result
}

/// Reads `path` whole, or `None` when it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, StateError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(StateError::io("read", path, error)),
    }
}

/// Removes `path` (if it exists) and makes the removal durable.
///
/// For a removal that is a record in itself and must stay removed after a
/// power cut.
pub fn remove_durably(path: &Path) -> Result<(), StateError> {
    let (directory, _) = split_path(path)?;
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(StateError::io("remove", path, error)),
    }
    sync_directory(directory)
}

/// Renames `from` to `to` in the same directory tree and makes it durable.
pub fn rename_durably(from: &Path, to: &Path) -> Result<(), StateError> {
    fs::rename(from, to).map_err(|source| StateError::io("rename", from, source))?;
    let (to_directory, _) = split_path(to)?;
    sync_directory(to_directory)?;
    let (from_directory, _) = split_path(from)?;
    if from_directory != to_directory {
        sync_directory(from_directory)?;
    }
    Ok(())
}

/// Creates `path` and its missing parents with mode `mode` (directories that
/// exist keep their mode: an admin may have chosen it). A directory created
/// here is made durable in its parent, so files written into it right after
/// cannot vanish with it in a power cut.
pub fn ensure_directory(path: &Path, mode: u32) -> Result<(), StateError> {
    use std::os::unix::fs::DirBuilderExt;
    if path.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(|source| StateError::io("create the directory", path, source))?;
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_directory(parent),
        _ => Ok(()),
    }
}

/// fsyncs a directory, making the creations, renames and removals in it durable.
pub fn sync_directory(directory: &Path) -> Result<(), StateError> {
    File::open(directory)
        .and_then(|handle| handle.sync_all())
        .map_err(|source| StateError::io("fsync the directory", directory, source))
}

/// Whether a directory entry is one of this module's temporary files (or any
/// other hidden file), which readers of a state directory must skip.
pub fn is_temporary_name(file_name: &str) -> bool {
    file_name.starts_with('.')
}

fn write_and_sync(
    temporary: &Path,
    mode: u32,
    fill: impl FnOnce(&mut File) -> Result<(), (&'static str, io::Error)>,
) -> Result<(), StateError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(temporary)
        .map_err(|source| StateError::io("create", temporary, source))?;
    // The umask may have removed bits from `mode`; set exactly what was asked.
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|source| StateError::io("set the mode of", temporary, source))?;
    fill(&mut file).map_err(|(action, source)| StateError::io(action, temporary, source))?;
    file.sync_all()
        .map_err(|source| StateError::io("fsync", temporary, source))
}

fn remove_leftover_temporaries(directory: &Path, file_name: &str) -> Result<(), StateError> {
    let prefix = format!(".{file_name}.tmp.");
    let entries = match fs::read_dir(directory) {
        Ok(entries) => entries,
        Err(source) => return Err(StateError::io("list", directory, source)),
    };
    for entry in entries {
        let entry = entry.map_err(|source| StateError::io("list", directory, source))?;
        let name = entry.file_name();
        if name.to_str().is_some_and(|name| name.starts_with(&prefix)) {
            let leftover = entry.path();
            match fs::remove_file(&leftover) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(StateError::io("remove the leftover", leftover, error)),
            }
        }
    }
    Ok(())
}

fn split_path(path: &Path) -> Result<(&Path, &str), StateError> {
    let invalid = || {
        StateError::io(
            "use",
            PathBuf::from(path),
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a path to a file with a UTF-8 name",
            ),
        )
    };
    let file_name = path
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(invalid)?;
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    Ok((directory, file_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_are_hidden() {
        assert!(is_temporary_name(".journal.json.tmp.12.0"));
        assert!(!is_temporary_name("journal.json"));
    }

    #[test]
    fn a_failed_write_leaves_the_old_content() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let target = directory.path().join("file");
        write_atomic(&target, b"old", PRIVATE_FILE_MODE).expect("valid in this test");
        // A target inside a missing directory fails at the temporary file.
        let missing = directory.path().join("missing").join("file");
        assert!(matches!(
            write_atomic(&missing, b"new", PRIVATE_FILE_MODE),
            Err(StateError::Io { action: "list", .. })
        ));
        assert_eq!(fs::read(&target).expect("valid in this test"), b"old");
    }
}
