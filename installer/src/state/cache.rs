//! Payloads cached by SHA-256 digest: the agent's policy (sizes checked,
//! entries read-only, least recently used first out) over Roleout's one
//! content store (`roleout_store::content`).
//!
//! A payload enters the cache only after its bytes were hashed on the way in
//! and found to have the digest and the size the signed manifest gives: the
//! installer runs these files as root, so "probably the right file" is not
//! good enough. Layout (the content store's):
//!
//! ```text
//! CACHE_DIR/sha256/ab/abcdef…   entries, read-only (0400), named by their digest
//! CACHE_DIR/tmp/                downloads being verified; emptied on open
//! ```
//!
//! The first two hex digits shard the entries so no directory grows huge.
//! [`PayloadCache::get`] re-checks the size (cheap: one stat) and
//! [`PayloadCache::get_verified`] the digest too (reads the whole file). An
//! entry found damaged is removed, so the caller downloads it again.
//!
//! Entries are fsynced before they are renamed into place: after a power cut
//! an entry with the right size but lost data would pass [`PayloadCache::get`].

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use roleout_model::ids::Sha256;
pub use roleout_store::content::hash_reader;
use roleout_store::content::{ContentError, ContentStore};

use crate::state::atomic::{self, PRIVATE_DIR_MODE};
use crate::state::{StateError, StateLock};

/// Mode of cache entries: read-only, owner only (payloads may be meant for
/// some roles only, so they are not world-readable).
pub const ENTRY_MODE: u32 = 0o400;

const ENTRIES_DIR_NAME: &str = "sha256";
/// Where downloads were verified before the cache used the content store.
const OLD_INCOMING_DIR_NAME: &str = "incoming";

/// How [`PayloadCache::materialize`] placed a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Materialized {
    /// A hard link to the cache entry (no copy; same read-only inode).
    Linked,
    /// A copy with its own mode.
    Copied,
}

/// What an eviction removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Eviction {
    /// Entries removed.
    pub removed: usize,
    /// Bytes they held.
    pub freed_bytes: u64,
    /// Bytes still cached afterwards.
    pub remaining_bytes: u64,
}

/// One cached payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// Its digest.
    pub digest: Sha256,
    /// Its size in bytes.
    pub size: u64,
    /// Where it is.
    pub path: PathBuf,
    /// When it was last inserted or found by [`PayloadCache::get`].
    pub last_used: SystemTime,
}

/// The payload cache.
#[derive(Debug)]
pub struct PayloadCache {
    store: ContentStore,
    entries_dir: PathBuf,
    max_bytes: Option<u64>,
}

impl PayloadCache {
    /// Opens (creating it if needed) the cache in `cache_dir`, and removes
    /// downloads a crash left unfinished.
    ///
    /// The lock on the state directory is what makes that cleanup safe: no
    /// other installer can be downloading into the same cache.
    pub fn open(
        _lock: &StateLock,
        cache_dir: impl AsRef<Path>,
    ) -> Result<PayloadCache, StateError> {
        let cache_dir = cache_dir.as_ref();
        let entries_dir = cache_dir.join(ENTRIES_DIR_NAME);
        atomic::ensure_directory(cache_dir, PRIVATE_DIR_MODE)?;
        atomic::ensure_directory(&entries_dir, PRIVATE_DIR_MODE)?;
        atomic::ensure_directory(&cache_dir.join("tmp"), PRIVATE_DIR_MODE)?;
        let store = ContentStore::new(cache_dir)
            .map_err(|error| store_error(cache_dir, error))?
            .with_entry_mode(ENTRY_MODE);
        store
            .clear_temporary()
            .map_err(|error| store_error(cache_dir, error))?;
        let old = cache_dir.join(OLD_INCOMING_DIR_NAME);
        if old.exists() {
            fs::remove_dir_all(&old).map_err(|source| {
                StateError::io("remove the unfinished downloads in", old, source)
            })?;
        }
        Ok(PayloadCache {
            store,
            entries_dir,
            max_bytes: None,
        })
    }

    /// Sets the size bound used by [`PayloadCache::trim`] and checked by
    /// [`PayloadCache::insert_from_reader`] (a payload larger than the whole
    /// bound is refused before any byte is read).
    pub fn with_max_bytes(mut self, max_bytes: u64) -> PayloadCache {
        self.max_bytes = Some(max_bytes);
        self
    }

    /// Where the entry for `digest` is (whether or not it exists).
    pub fn entry_path(&self, digest: &Sha256) -> PathBuf {
        self.store.path_of(digest)
    }

    /// The cached file for `digest`, if present with `expected_size` bytes.
    ///
    /// An entry of another size is damaged: it is removed and `None` returned.
    /// A hit marks the entry as recently used (for [`PayloadCache::trim`]).
    pub fn get(&self, digest: &Sha256, expected_size: u64) -> Result<Option<PathBuf>, StateError> {
        let path = self.entry_path(digest);
        let metadata = match fs::metadata(&path) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(StateError::io("inspect", path, error)),
        };
        if !metadata.is_file() || metadata.len() != expected_size {
            self.remove_damaged(&path)?;
            return Ok(None);
        }
        touch(&path)?;
        Ok(Some(path))
    }

    /// Like [`PayloadCache::get`], and also re-hashes the file: for a payload
    /// about to run as root when the cache may have been tampered with.
    pub fn get_verified(
        &self,
        digest: &Sha256,
        expected_size: u64,
    ) -> Result<Option<PathBuf>, StateError> {
        let Some(path) = self.get(digest, expected_size)? else {
            return Ok(None);
        };
        let file = File::open(&path).map_err(|source| StateError::io("open", &path, source))?;
        let (actual, _) =
            hash_reader(file).map_err(|source| StateError::io("read", &path, source))?;
        if &actual != digest {
            self.remove_damaged(&path)?;
            return Ok(None);
        }
        Ok(Some(path))
    }

    /// Streams a payload from `reader` into the cache, hashing it on the way.
    ///
    /// The bytes go to a temporary file in the store; only when exactly
    /// `expected_size` bytes with digest `expected` arrived is that file
    /// fsynced and renamed into place. Otherwise it is removed and the error
    /// names the expected and the actual digest (or size); nothing enters the
    /// cache. Reading stops as soon as the source sends more than
    /// `expected_size` bytes, so a wrong source cannot fill the disk.
    ///
    /// An entry already present with the right size is kept and `reader` is
    /// not read.
    pub fn insert_from_reader(
        &self,
        expected: &Sha256,
        expected_size: u64,
        reader: impl Read,
    ) -> Result<PathBuf, StateError> {
        if let Some(limit) = self.max_bytes
            && expected_size > limit
        {
            return Err(StateError::TooLarge {
                digest: expected.clone(),
                size: expected_size,
                limit,
            });
        }
        if let Some(path) = self.get(expected, expected_size)? {
            return Ok(path);
        }
        self.store
            .put_expecting(
                &format!("payload {expected}"),
                reader,
                expected,
                expected_size,
            )
            .map_err(|error| match error {
                ContentError::Source { source, .. } => StateError::PayloadSource {
                    digest: expected.clone(),
                    source,
                },
                ContentError::SizeMismatch {
                    expected: size,
                    actual,
                    ..
                } => StateError::SizeMismatch {
                    digest: expected.clone(),
                    expected: size,
                    actual,
                },
                ContentError::DigestMismatch { actual, .. } => StateError::DigestMismatch {
                    expected: expected.clone(),
                    actual,
                },
                other => store_error(self.store.root(), other),
            })
    }

    /// Puts the cached payload `digest` at `destination` (in a run's payload
    /// directory) with `mode`.
    ///
    /// When `mode` is [`ENTRY_MODE`] the file is hard-linked (no copy; the
    /// commands see a read-only file). Any other mode needs a file of its
    /// own, so it is copied: a hard link shares the mode, and a command that
    /// changed its payload in place would change the cache entry. Either way
    /// `destination` is replaced atomically and durably.
    pub fn materialize(
        &self,
        digest: &Sha256,
        destination: &Path,
        mode: u32,
    ) -> Result<Materialized, StateError> {
        let source = self.entry_path(digest);
        if !source.is_file() {
            return Err(StateError::NotCached {
                digest: digest.clone(),
            });
        }
        if mode == ENTRY_MODE && self.link(&source, destination)? {
            return Ok(Materialized::Linked);
        }
        let mut input =
            File::open(&source).map_err(|error| StateError::io("open", &source, error))?;
        atomic::write_atomic_with(destination, mode, |file| {
            io::copy(&mut input, file)
                .map(|_| ())
                .map_err(|error| ("copy the payload into", error))
        })?;
        Ok(Materialized::Copied)
    }

    /// Hard-links `source` at `destination` through a temporary name and a
    /// rename. `false` when the two are on different file systems.
    fn link(&self, source: &Path, destination: &Path) -> Result<bool, StateError> {
        let directory = match destination.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let file_name = destination
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temporary = directory.join(format!(".{file_name}.tmp.{}.link", std::process::id()));
        let _ = fs::remove_file(&temporary);
        match fs::hard_link(source, &temporary) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::CrossesDevices => return Ok(false),
            Err(error) => return Err(StateError::io("hard-link the payload to", temporary, error)),
        }
        if let Err(error) = fs::rename(&temporary, destination) {
            let _ = fs::remove_file(&temporary);
            return Err(StateError::io("rename", temporary, error));
        }
        atomic::sync_directory(directory)?;
        Ok(true)
    }

    /// Every entry in the cache, in no particular order. Files whose name is
    /// not a digest are ignored.
    pub fn entries(&self) -> Result<Vec<CacheEntry>, StateError> {
        let mut entries = Vec::new();
        let shards = fs::read_dir(&self.entries_dir)
            .map_err(|source| StateError::io("list", &self.entries_dir, source))?;
        for shard in shards {
            let shard =
                shard.map_err(|source| StateError::io("list", &self.entries_dir, source))?;
            let shard_path = shard.path();
            if !shard_path.is_dir() {
                continue;
            }
            let files = fs::read_dir(&shard_path)
                .map_err(|source| StateError::io("list", &shard_path, source))?;
            for file in files {
                let file = file.map_err(|source| StateError::io("list", &shard_path, source))?;
                let Some(digest) = file
                    .file_name()
                    .to_str()
                    .and_then(|name| Sha256::new(name).ok())
                else {
                    continue;
                };
                let path = file.path();
                let metadata = match fs::metadata(&path) {
                    Ok(metadata) => metadata,
                    // Removed since the listing: not an entry any more.
                    Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                    Err(error) => return Err(StateError::io("inspect", path, error)),
                };
                entries.push(CacheEntry {
                    digest,
                    size: metadata.len(),
                    last_used: metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    path,
                });
            }
        }
        Ok(entries)
    }

    /// Bytes held by the cache's entries.
    pub fn total_bytes(&self) -> Result<u64, StateError> {
        Ok(self.entries()?.iter().map(|entry| entry.size).sum())
    }

    /// Removes every entry whose digest is not in `keep` (the payloads of the
    /// current plan).
    pub fn retain(&self, keep: &HashSet<Sha256>) -> Result<Eviction, StateError> {
        let mut eviction = Eviction::default();
        for entry in self.entries()? {
            if keep.contains(&entry.digest) {
                eviction.remaining_bytes += entry.size;
            } else {
                remove_entry(&entry)?;
                eviction.removed += 1;
                eviction.freed_bytes += entry.size;
            }
        }
        Ok(eviction)
    }

    /// Brings the cache under its size bound by removing the least recently
    /// used entries not in `protect` (the current plan's payloads, which are
    /// never removed: the result may stay over the bound if they alone exceed
    /// it). Without a bound, removes nothing.
    pub fn trim(&self, protect: &HashSet<Sha256>) -> Result<Eviction, StateError> {
        let mut entries = self.entries()?;
        let mut eviction = Eviction {
            remaining_bytes: entries.iter().map(|entry| entry.size).sum(),
            ..Eviction::default()
        };
        let Some(limit) = self.max_bytes else {
            return Ok(eviction);
        };
        entries.sort_by_key(|entry| entry.last_used);
        for entry in entries {
            if eviction.remaining_bytes <= limit {
                break;
            }
            if protect.contains(&entry.digest) {
                continue;
            }
            remove_entry(&entry)?;
            eviction.removed += 1;
            eviction.freed_bytes += entry.size;
            eviction.remaining_bytes -= entry.size;
        }
        Ok(eviction)
    }

    fn remove_damaged(&self, path: &Path) -> Result<(), StateError> {
        match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(StateError::io(
                "remove the damaged cache entry",
                path,
                error,
            )),
        }
    }
}

/// A failure of the content store under the cache.
fn store_error(cache_dir: &Path, error: ContentError) -> StateError {
    StateError::io(
        "use the payload cache in",
        cache_dir,
        io::Error::other(error.to_string()),
    )
}

fn remove_entry(entry: &CacheEntry) -> Result<(), StateError> {
    match fs::remove_file(&entry.path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(StateError::io("evict", &entry.path, error)),
    }
}

/// Marks an entry as used now. Opened for reading only (entries are
/// read-only); setting times needs ownership, not write permission.
fn touch(path: &Path) -> Result<(), StateError> {
    File::open(path)
        .and_then(|file| file.set_modified(SystemTime::now()))
        .map_err(|source| StateError::io("mark as used", path, source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_reader_matches_a_known_digest() {
        let (digest, size) = hash_reader(&b"abc"[..]).expect("valid in this test");
        assert_eq!(
            digest.as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(size, 3);
    }

    #[test]
    fn entries_are_sharded_by_the_first_two_hex_digits() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let lock = StateLock::acquire(directory.path().join("state")).expect("valid in this test");
        let cache =
            PayloadCache::open(&lock, directory.path().join("cache")).expect("valid in this test");
        let digest = Sha256::new("ab".repeat(32)).expect("valid in this test");
        assert_eq!(
            cache.entry_path(&digest),
            directory
                .path()
                .join("cache/sha256/ab")
                .join("ab".repeat(32))
        );
    }
}
