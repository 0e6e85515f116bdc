//! The content store: files addressed by their SHA-256, shared by every
//! part of Roleout that keeps large things (payloads, report logs, image
//! blobs and tree manifests).
//!
//! Large things stay out of the directory; entries hold their digests and
//! the bytes live here, one file per digest at `ROOT/sha256/ab/abcdef…`
//! (the first two hex digits fan the files out so no folder grows huge).
//! Files are immutable: a digest names one content forever, so any
//! roleoutd, engine, HTTP cache or mirror may serve them, and two stores
//! are brought level by exchanging digest lists ([`ContentStore::missing`]
//! is the "want" answer to a "have" list, [`ContentStore::copy_from`]
//! fetches what is wanted).
//!
//! Safety rules:
//! - every digest that comes from outside (a URL, a descriptor, a manifest)
//!   is parsed with [`parse_digest`] before a path is built from it:
//!   exactly 64 lowercase hex characters, so no `..`, `/` or second
//!   spelling of the same file can reach the file system;
//! - bytes are hashed as they are written to a temporary file in the store
//!   (in pieces: a file of any size never sits whole in memory) and only
//!   renamed into place once their digest is the one expected, so a reader
//!   never sees a partial or wrong file under a digest's name.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use ring::digest::{Context, SHA256};
use roleout_model::ids::Sha256;

/// What went wrong with the content store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContentError {
    /// A digest is not 64 lowercase hex characters.
    #[error("invalid content digest {value:?}: {reason}")]
    InvalidDigest {
        /// The rejected text (at most 80 characters).
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// Bytes do not have the digest they were given with.
    #[error("{what}: expected SHA-256 {expected}, but the content has {actual}")]
    DigestMismatch {
        /// What was being stored (a file path or "bytes").
        what: String,
        /// The digest it should have.
        expected: Sha256,
        /// The digest it has.
        actual: Sha256,
    },
    /// The source of the bytes failed while they were read (a download
    /// cut off, a file that went away).
    #[error("{what}: cannot read it: {source}")]
    Source {
        /// What was being stored.
        what: String,
        /// What the source said.
        #[source]
        source: io::Error,
    },
    /// The bytes were not as long as they were said to be.
    #[error("{what}: expected {expected} bytes, but {}", match .actual { Some(actual) => format!("it has {actual}"), None => "it has more".to_owned() })]
    SizeMismatch {
        /// What was being stored.
        what: String,
        /// The length it should have.
        expected: u64,
        /// The length it has; none when it passed the expected length
        /// (reading stopped there).
        actual: Option<u64>,
    },
    /// A store asked for content does not hold it.
    #[error("{store} does not hold {digest}")]
    Missing {
        /// The store's folder.
        store: String,
        /// The content asked for.
        digest: Sha256,
    },
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

pub(crate) fn io_error(context: impl Into<String>) -> impl FnOnce(io::Error) -> ContentError {
    let context = context.into();
    move |source| ContentError::Io { context, source }
}

/// Parses a digest from outside: exactly 64 lowercase hex characters.
/// Uppercase is refused too (unlike [`Sha256::new`]), so every content has
/// exactly one name.
pub fn parse_digest(text: &str) -> Result<Sha256, ContentError> {
    let fail = |reason| ContentError::InvalidDigest {
        value: text.chars().take(80).collect(),
        reason,
    };
    let digest = Sha256::new(text).map_err(|error| fail(error.reason))?;
    if digest.as_str() != text {
        return Err(fail("it must be written in lowercase hex"));
    }
    Ok(digest)
}

pub(crate) fn finish(context: Context) -> Sha256 {
    Sha256::from_digest(&context.finish())
}

/// SHA-256 of `bytes`.
pub fn digest_of(bytes: &[u8]) -> Sha256 {
    let mut context = Context::new(&SHA256);
    context.update(bytes);
    finish(context)
}

/// A content-addressed file store under one folder.
#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
    /// The mode files are given before they are named; the temporary
    /// file's (0600) when none.
    entry_mode: Option<u32>,
}

impl ContentStore {
    /// The store at `root`, creating its folders if needed.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, ContentError> {
        let root = root.into();
        for folder in [root.join("sha256"), root.join("tmp")] {
            fs::create_dir_all(&folder)
                .map_err(io_error(format!("cannot create {}", folder.display())))?;
        }
        Ok(Self {
            root,
            entry_mode: None,
        })
    }

    /// Files named from now on get `mode` (0400 for the agent's payloads:
    /// read-only, owner only).
    pub fn with_entry_mode(mut self, mode: u32) -> Self {
        self.entry_mode = Some(mode);
        self
    }

    /// Removes what a crash left half-written in the store's temporary
    /// folder. Only for a caller that knows no other process writes to the
    /// store now.
    pub fn clear_temporary(&self) -> Result<usize, ContentError> {
        let tmp = self.root.join("tmp");
        let mut removed = 0;
        for leftover in
            fs::read_dir(&tmp).map_err(io_error(format!("cannot list {}", tmp.display())))?
        {
            let leftover = leftover.map_err(io_error(format!("cannot list {}", tmp.display())))?;
            fs::remove_file(leftover.path()).map_err(io_error(format!(
                "cannot remove {}",
                leftover.path().display()
            )))?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Stores what `reader` yields, which must be exactly `size` bytes with
    /// digest `expected` (reading stops as soon as it passes `size`, so a
    /// wrong source cannot fill the disk); returns the file's path. When the
    /// store holds `expected` already, `reader` is not read.
    pub fn put_expecting(
        &self,
        what: &str,
        reader: impl Read,
        expected: &Sha256,
        size: u64,
    ) -> Result<PathBuf, ContentError> {
        let target = self.path_of(expected);
        if target.is_file() {
            return Ok(target);
        }
        self.receive(what, reader, Some(expected), Some(size))?;
        Ok(target)
    }

    /// The store's folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the content `digest` lives (whether or not it is there).
    pub fn path_of(&self, digest: &Sha256) -> PathBuf {
        let hex = digest.as_str();
        self.root.join("sha256").join(&hex[..2]).join(hex)
    }

    /// Whether the store holds `digest`.
    pub fn contains(&self, digest: &Sha256) -> bool {
        self.path_of(digest).is_file()
    }

    /// Opens the content `digest` for reading, with its length; `None`
    /// when the store does not hold it.
    pub fn open(&self, digest: &Sha256) -> Result<Option<(File, u64)>, ContentError> {
        let path = self.path_of(digest);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(io_error(format!("cannot open {}", path.display()))(error)),
        };
        let length = file
            .metadata()
            .map_err(io_error(format!("cannot read {}", path.display())))?
            .len();
        Ok(Some((file, length)))
    }

    /// Stores `bytes`, returning their digest.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Sha256, ContentError> {
        self.put_reader("bytes", bytes, None)
            .map(|(digest, _)| digest)
    }

    /// Stores `bytes`, which must have digest `expected`.
    pub fn put_bytes_expecting(&self, bytes: &[u8], expected: &Sha256) -> Result<(), ContentError> {
        self.put_reader("bytes", bytes, Some(expected)).map(|_| ())
    }

    /// Stores the file at `path` (copied, not moved), which must have
    /// digest `expected` when one is given; returns its digest and size.
    pub fn put_file(
        &self,
        path: &Path,
        expected: Option<&Sha256>,
    ) -> Result<(Sha256, u64), ContentError> {
        let file = File::open(path).map_err(io_error(format!("cannot open {}", path.display())))?;
        self.put_reader(&path.display().to_string(), file, expected)
    }

    /// Copies `reader` into a temporary file in the store while hashing
    /// it, checks the digest (when `expected` is given), then renames the
    /// file into place; returns the digest and length. `what` names the
    /// source in errors.
    pub fn put_reader(
        &self,
        what: &str,
        reader: impl Read,
        expected: Option<&Sha256>,
    ) -> Result<(Sha256, u64), ContentError> {
        self.receive(what, reader, expected, None)
    }

    fn receive(
        &self,
        what: &str,
        mut reader: impl Read,
        expected: Option<&Sha256>,
        size: Option<u64>,
    ) -> Result<(Sha256, u64), ContentError> {
        let tmp = self.root.join("tmp");
        let mut temporary = tempfile::NamedTempFile::new_in(&tmp).map_err(io_error(format!(
            "cannot create a file in {}",
            tmp.display()
        )))?;
        let mut context = Context::new(&SHA256);
        let mut buffer = vec![0u8; 64 * 1024];
        let mut length = 0u64;
        loop {
            let read = match reader.read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(ContentError::Source {
                        what: what.to_owned(),
                        source,
                    });
                }
            };
            if let Some(expected) = size
                && length + read as u64 > expected
            {
                return Err(ContentError::SizeMismatch {
                    what: what.to_owned(),
                    expected,
                    actual: None,
                });
            }
            context.update(&buffer[..read]);
            temporary
                .write_all(&buffer[..read])
                .map_err(io_error(format!(
                    "cannot write {}",
                    temporary.path().display()
                )))?;
            length += read as u64;
        }
        if let Some(expected) = size
            && length != expected
        {
            return Err(ContentError::SizeMismatch {
                what: what.to_owned(),
                expected,
                actual: Some(length),
            });
        }
        let actual = finish(context);
        if let Some(expected) = expected
            && *expected != actual
        {
            return Err(ContentError::DigestMismatch {
                what: what.to_owned(),
                expected: expected.clone(),
                actual,
            });
        }
        let target = self.path_of(&actual);
        if target.is_file() {
            // Same digest, same bytes: the temporary file is dropped.
            return Ok((actual, length));
        }
        if let Some(mode) = self.entry_mode {
            use std::os::unix::fs::PermissionsExt;
            temporary
                .as_file()
                .set_permissions(fs::Permissions::from_mode(mode))
                .map_err(io_error(format!(
                    "cannot set the mode of {}",
                    temporary.path().display()
                )))?;
        }
        temporary.as_file().sync_all().map_err(io_error(format!(
            "cannot sync {}",
            temporary.path().display()
        )))?;
        // Durable once named: the file, its new shard folder, the name.
        let shard = target.parent().unwrap_or(&self.root);
        let new_shard = !shard.is_dir();
        fs::create_dir_all(shard)
            .map_err(io_error(format!("cannot create {}", shard.display())))?;
        if new_shard {
            sync_folder(&self.root.join("sha256"))?;
        }
        temporary.persist(&target).map_err(|error| {
            io_error(format!("cannot move into {}", target.display()))(error.error)
        })?;
        sync_folder(shard)?;
        Ok((actual, length))
    }
}

/// Makes a folder's entries durable (fsync of the folder).
fn sync_folder(folder: &Path) -> Result<(), ContentError> {
    File::open(folder)
        .and_then(|handle| handle.sync_all())
        .map_err(io_error(format!("cannot sync {}", folder.display())))
}

/// What a collection of the store removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Collected {
    /// Files removed.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Files kept.
    pub kept: usize,
}

impl ContentStore {
    /// Removes every file whose digest is not in `referenced` and that was
    /// last written more than `grace` ago (a file is written before the
    /// entry that names it, so a younger one may be about to be named),
    /// and leftovers in `tmp/` older than `grace`. Collection by
    /// reachability: the caller says what the directory still names.
    pub fn collect(
        &self,
        referenced: &BTreeSet<Sha256>,
        grace: std::time::Duration,
    ) -> Result<Collected, ContentError> {
        let old_enough = |path: &Path| {
            fs::metadata(path)
                .and_then(|metadata| metadata.modified())
                .ok()
                .and_then(|modified| modified.elapsed().ok())
                .is_some_and(|age| age >= grace)
        };
        let mut collected = Collected::default();
        let listing = |folder: &Path| {
            fs::read_dir(folder).map_err(io_error(format!("cannot list {}", folder.display())))
        };
        for fan in listing(&self.root.join("sha256"))? {
            let fan = fan.map_err(io_error(format!("cannot list {}", self.root.display())))?;
            if !fan.path().is_dir() {
                continue;
            }
            for file in listing(&fan.path())? {
                let file =
                    file.map_err(io_error(format!("cannot list {}", fan.path().display())))?;
                let path = file.path();
                let name = file.file_name();
                let keep = name
                    .to_str()
                    .and_then(|name| parse_digest(name).ok())
                    .is_none_or(|digest| referenced.contains(&digest));
                if keep || !old_enough(&path) {
                    collected.kept += 1;
                    continue;
                }
                let bytes = file.metadata().map(|metadata| metadata.len()).unwrap_or(0);
                match fs::remove_file(&path) {
                    Ok(()) => {
                        collected.files += 1;
                        collected.bytes += bytes;
                    }
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                    Err(error) => {
                        return Err(io_error(format!("cannot remove {}", path.display()))(error));
                    }
                }
            }
        }
        for leftover in listing(&self.root.join("tmp"))? {
            let leftover =
                leftover.map_err(io_error(format!("cannot list {}", self.root.display())))?;
            if old_enough(&leftover.path()) {
                let _ = fs::remove_file(leftover.path());
            }
        }
        Ok(collected)
    }
}

/// What [`ContentStore::copy_from`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Synced {
    /// Files copied.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
}

impl ContentStore {
    /// The "want" answer to a "have" list: the digests of `offered` this
    /// store lacks, each once, in order.
    pub fn missing<'a>(&self, offered: impl IntoIterator<Item = &'a Sha256>) -> Vec<Sha256> {
        let mut seen = BTreeSet::new();
        offered
            .into_iter()
            .filter(|digest| seen.insert(*digest) && !self.contains(digest))
            .cloned()
            .collect()
    }

    /// Brings the content of `wanted` over from `other`, each file read in
    /// pieces and checked against its digest before it is named; what
    /// this store holds already is not read.
    pub fn copy_from(
        &self,
        other: &ContentStore,
        wanted: &[Sha256],
    ) -> Result<Synced, ContentError> {
        let mut synced = Synced::default();
        for digest in self.missing(wanted) {
            let (file, _) = other.open(&digest)?.ok_or_else(|| ContentError::Missing {
                store: other.root.display().to_string(),
                digest: digest.clone(),
            })?;
            let what = other.path_of(&digest).display().to_string();
            let (_, length) = self.put_reader(&what, file, Some(&digest))?;
            synced.files += 1;
            synced.bytes += length;
        }
        Ok(synced)
    }
}

/// Hashes the bytes that pass through it, read from or written to the
/// stream it wraps.
pub struct Hashing<T> {
    inner: T,
    context: Context,
    bytes: u64,
}

impl<T> std::fmt::Debug for Hashing<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hashing")
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl<T> Hashing<T> {
    /// Hashes what passes through `inner`.
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            context: Context::new(&SHA256),
            bytes: 0,
        }
    }

    /// The digest and length of what passed, and the stream.
    pub fn finish(self) -> (Sha256, u64, T) {
        (finish(self.context), self.bytes, self.inner)
    }
}

impl<T: Read> Read for Hashing<T> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let count = self.inner.read(buffer)?;
        self.context.update(&buffer[..count]);
        self.bytes += count as u64;
        Ok(count)
    }
}

impl<T: Write> Write for Hashing<T> {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        let count = self.inner.write(buffer)?;
        self.context.update(&buffer[..count]);
        self.bytes += count as u64;
        Ok(count)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The SHA-256 and size of the file at `path`, read in pieces (a file of
/// any size never sits whole in memory).
pub fn file_digest(path: &Path) -> io::Result<(Sha256, u64)> {
    let file = File::open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    hash_reader(file)
}

/// The SHA-256 of everything `reader` yields, and how many bytes that
/// was, read in pieces.
pub fn hash_reader(mut reader: impl Read) -> io::Result<(Sha256, u64)> {
    let mut context = Context::new(&SHA256);
    let mut buffer = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let read = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        context.update(&buffer[..read]);
        size += read as u64;
    }
    Ok((finish(context), size))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    #[test]
    fn digests_have_one_spelling() {
        let good = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(parse_digest(good).unwrap().as_str(), good);
        for bad in [
            "../../etc/passwd",
            &good.to_ascii_uppercase(),
            &good[..63],
            &format!("{good}0"),
            &format!("../{}", &good[3..]),
            "",
        ] {
            assert!(parse_digest(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn collection_keeps_what_is_named_and_what_is_young() {
        let folder = tempfile::tempdir().unwrap();
        let store = ContentStore::new(folder.path()).unwrap();
        let named = store.put_bytes(b"a payload a product names").unwrap();
        let orphan = store.put_bytes(b"the log of a pruned report").unwrap();
        fs::write(folder.path().join("tmp").join("leftover"), b"half").unwrap();
        let referenced = BTreeSet::from([named.clone()]);
        // Young files are kept whatever names them.
        let young = store
            .collect(&referenced, std::time::Duration::from_secs(3600))
            .unwrap();
        assert_eq!((young.files, young.kept), (0, 2));
        assert!(store.contains(&orphan));
        let collected = store
            .collect(&referenced, std::time::Duration::ZERO)
            .unwrap();
        assert_eq!(collected.files, 1);
        assert_eq!(collected.bytes, b"the log of a pruned report".len() as u64);
        assert!(store.contains(&named));
        assert!(!store.contains(&orphan));
        assert!(!folder.path().join("tmp").join("leftover").exists());
    }

    #[test]
    fn two_stores_are_brought_level_by_have_and_want() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (a, b) = (
            ContentStore::new(a.path()).unwrap(),
            ContentStore::new(b.path()).unwrap(),
        );
        let shared = a.put_bytes(b"in both").unwrap();
        b.put_bytes(b"in both").unwrap();
        let only_a = a.put_bytes(b"only in a").unwrap();
        let have = vec![shared.clone(), only_a.clone(), only_a.clone()];
        let want = b.missing(&have);
        assert_eq!(want, vec![only_a.clone()]);
        let synced = b.copy_from(&a, &want).unwrap();
        assert_eq!((synced.files, synced.bytes), (1, 9));
        assert!(b.missing(&have).is_empty());
        // A store that lacks what is asked of it says so.
        let absent = digest_of(b"nowhere");
        assert!(matches!(
            a.copy_from(&b, &[absent]),
            Err(ContentError::Missing { .. })
        ));
        // Content that is not what its name says is refused.
        fs::write(a.path_of(&only_a), b"tampered").unwrap();
        let c = tempfile::tempdir().unwrap();
        let c = ContentStore::new(c.path()).unwrap();
        assert!(matches!(
            c.copy_from(&a, &[only_a]),
            Err(ContentError::DigestMismatch { .. })
        ));
    }
}
