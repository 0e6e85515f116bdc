//! One installer at a time per state directory.
//!
//! Two `roleout install` processes on one machine would interleave their
//! journal writes and run commands side by side. [`StateLock`] takes an
//! exclusive flock(2) on `STATE_DIR/lock` and writes its pid into the file, so
//! a second process is refused with the pid of the first. flock rather than a
//! pid file alone: the kernel drops the lock when its holder dies, even by
//! SIGKILL, so a crashed installer never leaves a stale lock behind.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::state::StateError;
use crate::state::atomic::{PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, ensure_directory};

/// Name of the lock file inside the state directory.
pub const LOCK_FILE_NAME: &str = "lock";

/// The exclusive right to change one state directory, held until dropped.
///
/// Writers ([`Journal`](crate::state::journal::Journal),
/// [`Outbox`](crate::state::outbox::Outbox),
/// [`PayloadCache`](crate::state::cache::PayloadCache)) ask for a reference
/// to one when they are opened.
#[derive(Debug)]
pub struct StateLock {
    state_dir: PathBuf,
    lock_path: PathBuf,
    // Held for its Drop: closing the descriptor releases the flock.
    _file: Flock<File>,
}

impl StateLock {
    /// Creates the state directory if needed and locks it, without waiting.
    ///
    /// Fails with [`StateError::Locked`] naming the holder's pid when another
    /// process (or another `StateLock` in this process) holds it.
    pub fn acquire(state_dir: impl AsRef<Path>) -> Result<StateLock, StateError> {
        let state_dir = state_dir.as_ref().to_path_buf();
        ensure_directory(&state_dir, PRIVATE_DIR_MODE)?;
        let lock_path = state_dir.join(LOCK_FILE_NAME);
        // Not truncated on open: the pid in it belongs to the holder, if any.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(PRIVATE_FILE_MODE)
            .open(&lock_path)
            .map_err(|source| StateError::io("open the lock file", &lock_path, source))?;
        let mut file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(locked) => locked,
            Err((_, Errno::EWOULDBLOCK)) => {
                return Err(StateError::Locked {
                    pid: holder_pid(&lock_path),
                    path: lock_path,
                });
            }
            Err((_, errno)) => {
                return Err(StateError::io("lock", &lock_path, errno.into()));
            }
        };
        // The pid is written in place, not with an atomic rename: the lock
        // belongs to this inode, and a rename would put a new, unlocked inode
        // under the name. A reader racing this write sees no pid, which the
        // error message says in words.
        let pid = std::process::id();
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(format!("{pid}\n").as_bytes()))
            .and_then(|()| file.sync_data())
            .map_err(|source| StateError::io("write the pid into", &lock_path, source))?;
        Ok(StateLock {
            state_dir,
            lock_path,
            _file: file,
        })
    }

    /// The locked state directory.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The lock file.
    pub fn lock_path(&self) -> &Path {
        &self.lock_path
    }
}

/// The pid written in a lock file, if it holds one.
fn holder_pid(lock_path: &Path) -> Option<u32> {
    let mut text = String::new();
    File::open(lock_path).ok()?.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

/// The pid recorded in `STATE_DIR/lock`, for `roleout status` to show who is
/// at work (the lock may no longer be held: check with [`StateLock::acquire`]).
pub fn recorded_holder(state_dir: &Path) -> Option<u32> {
    let path = state_dir.join(LOCK_FILE_NAME);
    if fs::metadata(&path).is_err() {
        return None;
    }
    holder_pid(&path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_in_the_same_process_is_refused_with_our_pid() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let first = StateLock::acquire(directory.path()).expect("lock");
        match StateLock::acquire(directory.path()) {
            Err(StateError::Locked { pid, path }) => {
                assert_eq!(pid, Some(std::process::id()));
                assert_eq!(path, first.lock_path());
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(first);
        assert!(StateLock::acquire(directory.path()).is_ok());
    }
}
