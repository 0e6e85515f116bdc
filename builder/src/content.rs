//! The content store: payloads and report logs, addressed by SHA-256.
//!
//! Large things stay out of the directory (payloads, logs); entries hold
//! their digests and the bytes live here, one file per digest at
//! `ROOT/sha256/ab/abcdef…` (the first two hex digits fan the files out so
//! no folder grows huge). Files are immutable: a digest names one content
//! forever, so any roleoutd, HTTP cache or mirror may serve them.
//!
//! Safety rules:
//! - every digest that comes from outside (a URL, a descriptor) is parsed
//!   with [`parse_digest`] before a path is built from it: exactly 64
//!   lowercase hex characters, so no `..`, `/` or second spelling of the
//!   same file can reach the file system;
//! - bytes are hashed as they are written to a temporary file in the store
//!   and only renamed into place once their digest is the one expected, so
//!   a reader never sees a partial or wrong file under a digest's name.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use ring::digest::{Context, SHA256};

use roleout_directory::Directory;
use roleout_directory::catalog::CatalogError;
use roleout_model::ids::{MachineId, Sha256};
use roleout_model::product::ProductSource;
use roleout_model::protocol::{AckStatus, StatusReport};

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
    /// A payload file does not have the size its descriptor gives.
    #[error(
        "{path}: expected {expected} bytes (as product {product} says), but the file has {actual}"
    )]
    SizeMismatch {
        /// The file.
        path: String,
        /// The product describing it.
        product: String,
        /// The size the descriptor gives.
        expected: u64,
        /// The file's size.
        actual: u64,
    },
    /// A descriptor names a payload path that could leave the payload
    /// folder.
    #[error("product {product} names payload {path:?}, which is not a plain relative path")]
    UnsafePath {
        /// The product.
        product: String,
        /// The path.
        path: String,
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
    /// Several payloads failed to import; each is listed.
    #[error("{} payload file(s) could not be imported:\n{}", .0.len(), list(.0))]
    Payloads(Vec<ContentError>),
    /// The report could not be stored in the directory.
    #[error(transparent)]
    Directory(#[from] CatalogError),
}

fn list(errors: &[ContentError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

fn io_error(context: impl Into<String>) -> impl FnOnce(io::Error) -> ContentError {
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

fn finish(context: Context) -> Sha256 {
    Sha256::from_digest(&context.finish())
}

/// SHA-256 of `bytes`.
pub fn digest_of(bytes: &[u8]) -> Sha256 {
    let mut context = Context::new(&SHA256);
    context.update(bytes);
    finish(context)
}

/// What [`import_payloads`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PayloadImport {
    /// Digests newly put in the store.
    pub stored: Vec<Sha256>,
    /// Digests the store already had (their files were not read).
    pub present: Vec<Sha256>,
}

/// A content-addressed file store under one folder.
#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
}

impl ContentStore {
    /// The store at `root`, creating its folders if needed.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, ContentError> {
        let root = root.into();
        for folder in [root.join("sha256"), root.join("tmp")] {
            fs::create_dir_all(&folder)
                .map_err(io_error(format!("cannot create {}", folder.display())))?;
        }
        Ok(Self { root })
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
    /// it, checks the digest, then renames the file into place.
    fn put_reader(
        &self,
        what: &str,
        mut reader: impl Read,
        expected: Option<&Sha256>,
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
                Err(error) => return Err(io_error(format!("cannot read {what}"))(error)),
            };
            context.update(&buffer[..read]);
            temporary
                .write_all(&buffer[..read])
                .map_err(io_error(format!(
                    "cannot write {}",
                    temporary.path().display()
                )))?;
            length += read as u64;
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
        temporary.as_file().sync_all().map_err(io_error(format!(
            "cannot sync {}",
            temporary.path().display()
        )))?;
        if let Some(folder) = target.parent() {
            fs::create_dir_all(folder)
                .map_err(io_error(format!("cannot create {}", folder.display())))?;
        }
        temporary.persist(&target).map_err(|error| {
            io_error(format!("cannot move into {}", target.display()))(error.error)
        })?;
        Ok((actual, length))
    }
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

/// Everything the directory names that lives in the content store: every
/// payload of every role version of every product, and every log a
/// stored report names (three searches).
pub async fn referenced_content(directory: &Directory) -> Result<BTreeSet<Sha256>, CatalogError> {
    let (_, products) = directory.export_catalog().await?;
    let mut referenced = directory.referenced_log_digests().await?;
    for product in &products {
        for version in &product.fileset.versions {
            referenced.extend(version.value.files.iter().map(|file| file.sha256.clone()));
        }
    }
    Ok(referenced)
}

/// The SHA-256 and size of the file at `path`, read in pieces (a file of
/// any size never sits whole in memory).
pub fn file_digest(path: &Path) -> io::Result<(Sha256, u64)> {
    let mut file = File::open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut context = Context::new(&SHA256);
    let mut buffer = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let read = match file.read(&mut buffer) {
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

/// A folder of payload files, as descriptors are read with it
/// (`import --payloads`, `check --payloads`): fills in and checks the
/// digest and size of each file a file set names.
#[derive(Debug, Clone)]
pub struct PayloadDir(pub PathBuf);

impl roleout_model::descriptor::PayloadFolder for PayloadDir {
    fn digest_and_size(&self, path: &str) -> Result<(Sha256, u64), String> {
        if !is_plain_relative(path) {
            return Err(format!("{path:?} is not a plain relative path"));
        }
        let full = self.0.join(path);
        file_digest(&full).map_err(|error| format!("{}: {error}", full.display()))
    }
}

/// Whether `path` is a plain relative path (no `..`, no root, no prefix).
fn is_plain_relative(path: &str) -> bool {
    let path = Path::new(path);
    !path.as_os_str().is_empty()
        && path
            .components()
            .all(|component| matches!(component, Component::Normal(_)))
}

/// Puts every fileset file of `products` (every role version) into
/// `store`, read from `payload_dir/PATH` after checking its size and
/// SHA-256 against the descriptor. Files the store already holds are not
/// read. Every problem is collected and returned together.
pub fn import_payloads(
    store: &ContentStore,
    products: &[ProductSource],
    payload_dir: &Path,
) -> Result<PayloadImport, ContentError> {
    let mut result = PayloadImport::default();
    let mut errors = Vec::new();
    let mut seen = BTreeSet::new();
    for product in products {
        for version in &product.fileset.versions {
            for file in &version.value.files {
                if !is_plain_relative(&file.path) {
                    errors.push(ContentError::UnsafePath {
                        product: product.id.to_string(),
                        path: file.path.clone(),
                    });
                    continue;
                }
                if !seen.insert(file.sha256.clone()) {
                    continue;
                }
                if store.contains(&file.sha256) {
                    result.present.push(file.sha256.clone());
                    continue;
                }
                let path = payload_dir.join(&file.path);
                let size = match fs::metadata(&path) {
                    Ok(metadata) => metadata.len(),
                    Err(error) => {
                        errors.push(io_error(format!(
                            "payload {} of product {}",
                            path.display(),
                            product.id
                        ))(error));
                        continue;
                    }
                };
                if size != file.size {
                    errors.push(ContentError::SizeMismatch {
                        path: path.display().to_string(),
                        product: product.id.to_string(),
                        expected: file.size,
                        actual: size,
                    });
                    continue;
                }
                match store.put_file(&path, Some(&file.sha256)) {
                    Ok((digest, _)) => result.stored.push(digest),
                    Err(error) => errors.push(error),
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(result)
    } else {
        Err(ContentError::Payloads(errors))
    }
}

/// Records a status report of `machine`: its log goes to `store` (when
/// there is one), then the entry with the log's digest to the directory.
/// A repeat of a stored report is [`AckStatus::Duplicate`] and changes
/// nothing (the log, being content-addressed, is the same file).
pub async fn record_report(
    directory: &Directory,
    store: &ContentStore,
    machine: &MachineId,
    report: &StatusReport,
) -> Result<AckStatus, ContentError> {
    let log_digest = if report.log.is_empty() {
        None
    } else {
        Some(store.put_bytes(report.log.as_bytes())?)
    };
    Ok(directory
        .store_report(machine, report, log_digest.as_ref())
        .await?)
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
    fn payload_paths_stay_inside() {
        assert!(is_plain_relative("notes.deb"));
        assert!(is_plain_relative("sub/notes.deb"));
        for bad in ["", "/etc/passwd", "../x", "a/../../x"] {
            assert!(!is_plain_relative(bad), "{bad}");
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
}
