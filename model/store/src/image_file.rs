//! An image as one file: a zstd-compressed tar holding `image.json` (the
//! description), `manifest.rtree` (the tree manifest) and one
//! `blobs/DIGEST` per content the manifest names, each once, in manifest
//! order. Written through a temporary file renamed into place, read as a
//! stream: every blob is checked against its name before the content store
//! names it, and nothing is taken that the manifest does not name.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;

use roleout_model::ids::Sha256;
use roleout_model::image::ImageDescription;
use roleout_model::tree::{Entry, Manifest};

use crate::content::{ContentError, ContentStore, Hashing, parse_digest};

const DESCRIPTION: &str = "image.json";
const MANIFEST: &str = "manifest.rtree";
const BLOBS: &str = "blobs/";

/// The largest description read (it holds the hardware and package list).
const MAX_DESCRIPTION: u64 = 64 << 20;
/// The largest manifest read (about five million entries).
const MAX_MANIFEST: u64 = 2 << 30;

/// What went wrong with an image file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageFileError {
    /// The file could not be read or written, or is not a whole zstd tar.
    #[error("{path}: {action}: {source}")]
    Io {
        /// The image file.
        path: String,
        /// What was being done.
        action: String,
        /// What failed.
        #[source]
        source: io::Error,
    },
    /// The file holds something an image file does not, or lacks a part.
    #[error("{path}: not an image file Roleout can read: {reason}")]
    Invalid {
        /// The image file.
        path: String,
        /// What is wrong, and where.
        reason: String,
    },
    /// A content changed between the manifest and the packing.
    #[error(
        "{path} changed while the image was written: its content is not what the manifest says"
    )]
    Changed {
        /// The file in the source tree.
        path: String,
    },
    /// The content store failed or refused a blob.
    #[error(transparent)]
    Content(#[from] ContentError),
}

/// Where the contents to pack come from: a live tree, a content store.
pub trait Contents {
    /// The data of `entry` (a regular file with content), which must be
    /// `entry.data_bytes()` long and have digest `entry.sha256`.
    fn open(&self, entry: &Entry) -> io::Result<Box<dyn Read + '_>>;
    /// How to name `entry`'s source in an error.
    fn describe(&self, entry: &Entry) -> String;
}

impl Contents for ContentStore {
    fn open(&self, entry: &Entry) -> io::Result<Box<dyn Read + '_>> {
        let digest = entry
            .sha256
            .as_ref()
            .ok_or_else(|| io::Error::other("no content"))?;
        match ContentStore::open(self, digest) {
            Ok(Some((file, _))) => Ok(Box::new(file)),
            Ok(None) => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("the store lacks {digest}"),
            )),
            Err(error) => Err(io::Error::other(error.to_string())),
        }
    }

    fn describe(&self, entry: &Entry) -> String {
        entry
            .sha256
            .as_ref()
            .map(|digest| self.path_of(digest).display().to_string())
            .unwrap_or_default()
    }
}

/// What [`write`] packed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Packed {
    /// Blobs packed (each content once).
    pub blobs: usize,
    /// Their bytes, before compression.
    pub bytes: u64,
    /// The file's size.
    pub file_bytes: u64,
}

fn header(size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(0o600);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header
}

/// Writes the image file at `path`: the description, the manifest, and
/// each content once from `contents`, checked against its digest as it is
/// packed (a file that changed since its manifest was made is an error,
/// and no file is left).
pub fn write(
    path: &Path,
    description: &ImageDescription,
    manifest: &Manifest,
    contents: &dyn Contents,
) -> Result<Packed, ImageFileError> {
    let shown = path.display().to_string();
    let io_error = |action: &str| {
        let shown = shown.clone();
        let action = action.to_owned();
        move |source| ImageFileError::Io {
            path: shown,
            action,
            source,
        }
    };
    let folder = path
        .parent()
        .filter(|folder| !folder.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let temporary =
        tempfile::NamedTempFile::new_in(folder).map_err(io_error("make a temporary file"))?;
    let encoder = zstd::Encoder::new(temporary.as_file(), 3).map_err(io_error("compress"))?;
    let mut builder = tar::Builder::new(encoder);
    let description_bytes = serde_json::to_vec_pretty(description)
        .map_err(|error| io_error("write")(io::Error::other(error)))?;
    builder
        .append_data(
            &mut header(description_bytes.len() as u64),
            DESCRIPTION,
            &description_bytes[..],
        )
        .map_err(io_error("write"))?;
    let manifest_bytes = manifest.to_bytes();
    builder
        .append_data(
            &mut header(manifest_bytes.len() as u64),
            MANIFEST,
            &manifest_bytes[..],
        )
        .map_err(io_error("write"))?;
    let mut packed = Packed::default();
    let mut seen = std::collections::BTreeSet::new();
    for entry in manifest.entries() {
        let Some(digest) = entry.content() else {
            continue;
        };
        if !seen.insert(digest.clone()) {
            continue;
        }
        let size = entry.data_bytes();
        let source = contents
            .open(entry)
            .map_err(io_error(&format!("read {}", contents.describe(entry))))?;
        let mut hashing = Hashing::new(source.take(size));
        builder
            .append_data(&mut header(size), format!("{BLOBS}{digest}"), &mut hashing)
            .map_err(|error| {
                if error.kind() == io::ErrorKind::UnexpectedEof {
                    ImageFileError::Changed {
                        path: contents.describe(entry),
                    }
                } else {
                    io_error("write")(error)
                }
            })?;
        let (actual, length, _) = hashing.finish();
        if actual != *digest || length != size {
            return Err(ImageFileError::Changed {
                path: contents.describe(entry),
            });
        }
        packed.blobs += 1;
        packed.bytes += size;
    }
    let encoder = builder.into_inner().map_err(io_error("write"))?;
    encoder.finish().map_err(io_error("compress"))?;
    temporary.as_file().sync_all().map_err(io_error("sync"))?;
    temporary
        .persist(path)
        .map_err(|error| io_error("move into place")(error.error))?;
    packed.file_bytes = fs::metadata(path).map_err(io_error("read"))?.len();
    Ok(packed)
}

/// What [`read`] brought in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// The image's description.
    pub description: ImageDescription,
    /// Its tree manifest.
    pub manifest: Manifest,
    /// Blobs put into the store now.
    pub stored: usize,
    /// Blobs the store held already (checked all the same).
    pub present: usize,
}

/// Reads the image file at `path`, putting its contents into `store`; a
/// truncated or tampered file, or one with parts an image file does not
/// have, is an error naming what and where.
pub fn read(path: &Path, store: &ContentStore) -> Result<Unpacked, ImageFileError> {
    let shown = path.display().to_string();
    let invalid = |reason: String| ImageFileError::Invalid {
        path: shown.clone(),
        reason,
    };
    let io_error = |action: &str, source: io::Error| ImageFileError::Io {
        path: shown.clone(),
        action: format!(
            "cannot {action} (is it a whole image file, as `roleout image capture` writes them?)"
        ),
        source,
    };
    let file = File::open(path).map_err(|error| io_error("open", error))?;
    let decoder = zstd::Decoder::new(file).map_err(|error| io_error("decompress", error))?;
    let mut archive = tar::Archive::new(decoder);
    let mut entries = archive.entries().map_err(|error| io_error("read", error))?;
    let mut next = |what: &str| {
        entries
            .next()
            .ok_or_else(|| invalid(format!("it ends before its {what}")))?
            .map_err(|error| io_error(&format!("read its {what}"), error))
    };
    let read_small = |entry: &mut dyn Read, limit: u64, what: &str| {
        let mut bytes = Vec::new();
        entry
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|error| io_error(&format!("read its {what}"), error))?;
        if bytes.len() as u64 > limit {
            return Err(invalid(format!("its {what} is larger than {limit} bytes")));
        }
        Ok(bytes)
    };
    let mut first = next("description")?;
    let name = entry_name(&first);
    if name != DESCRIPTION {
        return Err(invalid(format!(
            "it starts with {name:?}, not {DESCRIPTION}"
        )));
    }
    let bytes = read_small(&mut first, MAX_DESCRIPTION, "description")?;
    drop(first);
    let description: ImageDescription = serde_json::from_slice(&bytes)
        .map_err(|error| invalid(format!("{DESCRIPTION}: {error}")))?;
    description
        .check_format()
        .map_err(|reason| invalid(format!("{DESCRIPTION}: {reason}")))?;
    let mut second = next("manifest")?;
    let name = entry_name(&second);
    if name != MANIFEST {
        return Err(invalid(format!(
            "its second part is {name:?}, not {MANIFEST}"
        )));
    }
    let bytes = read_small(&mut second, MAX_MANIFEST, "manifest")?;
    drop(second);
    let manifest =
        Manifest::parse(&bytes).map_err(|error| invalid(format!("{MANIFEST}: {error}")))?;
    if manifest.digest() != description.manifest {
        return Err(invalid(format!(
            "{MANIFEST} has digest {}, but {DESCRIPTION} names {}",
            manifest.digest(),
            description.manifest
        )));
    }
    let wanted = manifest.contents();
    let mut unpacked = Unpacked {
        description,
        manifest,
        stored: 0,
        present: 0,
    };
    for entry in entries {
        let entry = entry.map_err(|error| io_error("read a blob", error))?;
        let name = entry_name(&entry);
        let digest = name
            .strip_prefix(BLOBS)
            .and_then(|digest| parse_digest(digest).ok())
            .ok_or_else(|| invalid(format!("it holds {name:?}, which is not a blob")))?;
        if !wanted.contains(&digest) {
            return Err(invalid(format!(
                "it holds blob {digest}, which the manifest does not name"
            )));
        }
        let present = store.contains(&digest);
        store.put_reader(&format!("{shown}: {name}"), entry, Some(&digest))?;
        if present {
            unpacked.present += 1;
        } else {
            unpacked.stored += 1;
        }
    }
    let missing: Vec<Sha256> = wanted
        .iter()
        .filter(|digest| !store.contains(digest))
        .cloned()
        .collect();
    if let Some(first) = missing.first() {
        return Err(invalid(format!(
            "it lacks {} content(s) its manifest names (first {first}): it was cut short",
            missing.len()
        )));
    }
    Ok(unpacked)
}

fn entry_name<R: Read>(entry: &tar::Entry<'_, R>) -> String {
    entry
        .path()
        .map(|path| path.display().to_string())
        .unwrap_or_else(|_| "(an unreadable name)".to_owned())
}

/// Contents read from a live tree at `root`, from the first path of each
/// content (the data extents of a sparse file).
#[derive(Debug, Clone)]
pub struct TreeContents {
    /// The tree's root.
    pub root: std::path::PathBuf,
}

impl Contents for TreeContents {
    fn open(&self, entry: &Entry) -> io::Result<Box<dyn Read + '_>> {
        let path = crate::tree::full_path(&self.root, &entry.path);
        Ok(Box::new(crate::tree::DataReader::open(
            &path,
            &entry.sparse,
        )?))
    }

    fn describe(&self, entry: &Entry) -> String {
        crate::tree::full_path(&self.root, &entry.path)
            .display()
            .to_string()
    }
}
