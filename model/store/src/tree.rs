//! Trees on disk: [`scan`] reads a folder into a tree manifest
//! (`roleout_model::tree`), putting file contents into a content store as
//! it goes, and [`materialize`] makes the tree again from a manifest and a
//! store, exactly: contents, types, owners, modes (setuid, setgid, sticky),
//! extended attributes (capabilities, ACLs), hardlinks, devices, fifos,
//! holes and times.
//!
//! File contents are read and written in pieces: a file of any size never
//! sits whole in memory. A sparse file's holes are found with
//! `SEEK_DATA`/`SEEK_HOLE` and only its data is hashed, stored and written.
//! A file that changes while it is read (its size or mtime differ after)
//! is an error naming it, never a manifest that describes a mixture.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::{Mode, SFlag, UtimensatFlags, major, makedev, minor, mknod, utimensat};
use nix::sys::time::TimeSpec;
use nix::unistd::{Whence, lseek, mkfifo};
use roleout_model::ids::Sha256;
use roleout_model::tree::{Bytes, Entry, Kind, Manifest, TreePath};

use crate::content::{ContentError, ContentStore};

/// What went wrong reading or making a tree.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TreeError {
    /// A file operation failed.
    #[error("{path}: {action}: {source}")]
    Io {
        /// The path, shown as it is in the tree.
        path: String,
        /// What was being done.
        action: &'static str,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// A file changed while it was read.
    #[error(
        "{path} changed while it was captured (size or modification time differ after reading it); capture a quiet tree or a snapshot"
    )]
    Changed {
        /// The file.
        path: String,
    },
    /// A name the manifest cannot hold.
    #[error("{path}: {reason}")]
    Name {
        /// The path as far as it could be shown.
        path: String,
        /// Why.
        reason: String,
    },
    /// The manifest is not consistent.
    #[error("the manifest: {0}")]
    Manifest(#[from] roleout_model::tree::ManifestError),
    /// The content store failed, or lacks a file the tree needs.
    #[error(transparent)]
    Content(#[from] ContentError),
    /// The folder to make the tree in is not empty.
    #[error("{path} is not an empty folder: a tree is made only where nothing is")]
    NotEmpty {
        /// The folder.
        path: String,
    },
}

fn io_error<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(io::Error) -> TreeError + 'a {
    move |source| TreeError::Io {
        path: path.display().to_string(),
        action,
        source,
    }
}

fn nix_error<'a>(
    path: &'a Path,
    action: &'static str,
) -> impl FnOnce(nix::Error) -> TreeError + 'a {
    move |errno| TreeError::Io {
        path: path.display().to_string(),
        action,
        source: errno.into(),
    }
}

/// What [`scan`] reads.
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// Subtrees left out (their folder itself is kept, empty): `proc`,
    /// `sys`, `dev/pts`, `run`, the agent's own state…
    pub exclude: Vec<TreePath>,
    /// Whether to stay on the root's file system (a folder where another
    /// is mounted is kept, empty).
    pub one_file_system: bool,
}

/// What [`scan`] found besides the manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scanned {
    /// The tree's manifest.
    pub manifest: Manifest,
    /// Files whose content was put into the store now (it lacked them).
    pub stored_files: usize,
    /// Their bytes.
    pub stored_bytes: u64,
    /// Bytes of file data read in all.
    pub read_bytes: u64,
}

/// Owner and group names from a tree's own `etc/passwd` and `etc/group`.
#[derive(Debug, Default)]
struct Names {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

impl Names {
    fn of(root: &Path) -> Names {
        let read = |file: &str| {
            let mut names = HashMap::new();
            for line in fs::read_to_string(root.join(file))
                .unwrap_or_default()
                .lines()
            {
                let fields: Vec<&str> = line.split(':').collect();
                if let (Some(name), Some(id)) = (fields.first(), fields.get(2))
                    && let Ok(id) = id.parse::<u32>()
                {
                    names.entry(id).or_insert_with(|| (*name).to_owned());
                }
            }
            names
        };
        Names {
            users: read("etc/passwd"),
            groups: read("etc/group"),
        }
    }
}

/// Reads the tree at `root` into a manifest; with a `store`, puts each
/// file's content the store lacks into it.
pub fn scan(
    root: &Path,
    options: &ScanOptions,
    store: Option<&ContentStore>,
) -> Result<Scanned, TreeError> {
    let names = Names::of(root);
    let root_device = fs::symlink_metadata(root)
        .map_err(io_error(root, "read"))?
        .dev();
    let mut scanned = Scanned::default();
    let mut entries = Vec::new();
    // (device, inode) of each regular file with more than one link.
    let mut inodes: HashMap<TreePath, (u64, u64)> = HashMap::new();
    // Depth first, bounded by the tree itself.
    let mut pending = vec![(TreePath::root(), root.to_owned())];
    while let Some((path, full)) = pending.pop() {
        let metadata = fs::symlink_metadata(&full).map_err(io_error(&full, "read"))?;
        let entry = read_entry(&path, &full, &metadata, &names, store, &mut scanned)?;
        if entry.kind == Kind::File && metadata.nlink() > 1 {
            inodes.insert(path.clone(), (metadata.dev(), metadata.ino()));
        }
        let descend = entry.kind == Kind::Dir
            && !options.exclude.contains(&path)
            && !(options.one_file_system && metadata.dev() != root_device);
        entries.push(entry);
        if !descend {
            continue;
        }
        let listing = fs::read_dir(&full).map_err(io_error(&full, "list"))?;
        for child in listing {
            let child = child.map_err(io_error(&full, "list"))?;
            let name = child.file_name();
            let mut bytes = if path.is_root() {
                Vec::new()
            } else {
                let mut bytes = path.to_bytes();
                bytes.push(b'/');
                bytes
            };
            bytes.extend_from_slice(name.as_bytes());
            let child_path = TreePath::from_bytes(&bytes).map_err(|reason| TreeError::Name {
                path: child.path().display().to_string(),
                reason,
            })?;
            pending.push((child_path, child.path()));
        }
    }
    // The first path of each hardlink group, in manifest order, carries
    // the content; the others name it.
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let mut first_of: HashMap<(u64, u64), TreePath> = HashMap::new();
    for entry in &mut entries {
        if let Some(inode) = inodes.get(&entry.path) {
            match first_of.get(inode) {
                Some(first) => entry.hardlink = Some(first.clone()),
                None => {
                    first_of.insert(*inode, entry.path.clone());
                }
            }
        }
    }
    scanned.manifest = Manifest::new(entries)?;
    Ok(scanned)
}

fn read_entry(
    path: &TreePath,
    full: &Path,
    metadata: &fs::Metadata,
    names: &Names,
    store: Option<&ContentStore>,
    scanned: &mut Scanned,
) -> Result<Entry, TreeError> {
    let file_type = metadata.file_type();
    let kind = if file_type.is_dir() {
        Kind::Dir
    } else if file_type.is_file() {
        Kind::File
    } else if file_type.is_symlink() {
        Kind::Symlink
    } else if file_type.is_char_device() {
        Kind::Char
    } else if file_type.is_block_device() {
        Kind::Block
    } else if file_type.is_fifo() {
        Kind::Fifo
    } else {
        Kind::Socket
    };
    let mut entry = Entry {
        path: path.clone(),
        kind,
        mode: metadata.mode() & 0o7777,
        uid: metadata.uid(),
        gid: metadata.gid(),
        user: names.users.get(&metadata.uid()).cloned(),
        group: names.groups.get(&metadata.gid()).cloned(),
        mtime_ns: metadata
            .mtime()
            .saturating_mul(1_000_000_000)
            .saturating_add(metadata.mtime_nsec()),
        size: 0,
        sha256: None,
        link: None,
        hardlink: None,
        rdev: None,
        xattrs: read_xattrs(full)?,
        sparse: Vec::new(),
    };
    match kind {
        Kind::File => {
            let (digest, extents, read) = read_content(full, metadata, store, scanned)?;
            entry.size = metadata.len();
            entry.sha256 = Some(digest);
            entry.sparse = extents;
            scanned.read_bytes += read;
        }
        Kind::Symlink => {
            let target = fs::read_link(full).map_err(io_error(full, "read the link"))?;
            entry.link = Some(Bytes(target.as_os_str().as_bytes().to_vec()));
        }
        Kind::Char | Kind::Block => {
            let rdev = metadata.rdev();
            entry.rdev = Some([
                u32::try_from(major(rdev)).unwrap_or(u32::MAX),
                u32::try_from(minor(rdev)).unwrap_or(u32::MAX),
            ]);
        }
        Kind::Dir | Kind::Fifo | Kind::Socket => {}
    }
    Ok(entry)
}

fn read_xattrs(full: &Path) -> Result<BTreeMap<String, Bytes>, TreeError> {
    let mut xattrs = BTreeMap::new();
    let names = match xattr::list(full) {
        Ok(names) => names,
        // A file system without extended attributes has none to keep.
        Err(error) if error.raw_os_error() == Some(nix::libc::ENOTSUP) => return Ok(xattrs),
        Err(error) => return Err(io_error(full, "list extended attributes")(error)),
    };
    for name in names {
        let Some(text) = name.to_str() else {
            return Err(TreeError::Name {
                path: full.display().to_string(),
                reason: format!("an extended attribute name is not UTF-8: {name:?}"),
            });
        };
        if let Some(value) =
            xattr::get(full, &name).map_err(io_error(full, "read an extended attribute"))?
        {
            xattrs.insert(text.to_owned(), Bytes(value));
        }
    }
    Ok(xattrs)
}

/// The data extents of a file: where `SEEK_DATA` finds data, up to where
/// `SEEK_HOLE` finds the next hole. A file without holes gives one extent
/// over all of it (or none when empty).
fn extents(file: &File, size: u64, full: &Path) -> Result<Vec<[u64; 2]>, TreeError> {
    let mut extents = Vec::new();
    let mut at: i64 = 0;
    let end = i64::try_from(size).unwrap_or(i64::MAX);
    // Bounded: each round moves past one extent of the file.
    while at < end {
        let data = match lseek(file, at, Whence::SeekData) {
            Ok(data) => data,
            // No data after `at`: the rest is a hole.
            Err(nix::errno::Errno::ENXIO) => break,
            // A file system that cannot tell: all data.
            Err(nix::errno::Errno::EINVAL) => return Ok(vec![[0, size]]),
            Err(errno) => return Err(nix_error(full, "look for holes")(errno)),
        };
        let hole =
            lseek(file, data, Whence::SeekHole).map_err(nix_error(full, "look for holes"))?;
        let hole = hole.min(end);
        if hole > data {
            extents.push([data as u64, (hole - data) as u64]);
        }
        at = hole.max(data + 1);
    }
    Ok(extents)
}

/// Hashes a file's data (and puts it into `store` when it lacks it);
/// returns the digest, the extents when the file has holes, and the bytes
/// read.
fn read_content(
    full: &Path,
    before: &fs::Metadata,
    store: Option<&ContentStore>,
    scanned: &mut Scanned,
) -> Result<(Sha256, Vec<[u64; 2]>, u64), TreeError> {
    let file = File::open(full).map_err(io_error(full, "open"))?;
    let size = before.len();
    let extents = extents(&file, size, full)?;
    let whole = extents.is_empty() && size == 0 || extents == [[0, size]];
    let second = file.try_clone().map_err(io_error(full, "open"))?;
    let (digest, read) = crate::content::hash_reader(DataReader::new(file, extents.clone()))
        .map_err(io_error(full, "read"))?;
    let after = second.metadata().map_err(io_error(full, "read"))?;
    if after.len() != before.len()
        || after.mtime() != before.mtime()
        || after.mtime_nsec() != before.mtime_nsec()
    {
        return Err(TreeError::Changed {
            path: full.display().to_string(),
        });
    }
    if let Some(store) = store
        && !store.contains(&digest)
    {
        let reader = DataReader::new(second, extents.clone());
        let (_, length) = store
            .put_reader(&full.display().to_string(), reader, Some(&digest))
            .map_err(|error| match error {
                // The bytes read a second time are not those hashed.
                ContentError::DigestMismatch { .. } => TreeError::Changed {
                    path: full.display().to_string(),
                },
                other => TreeError::Content(other),
            })?;
        scanned.stored_files += 1;
        scanned.stored_bytes += length;
    }
    Ok((digest, if whole { Vec::new() } else { extents }, read))
}

/// Reads the data of a file: its data extents one after another (the
/// whole file when it has no holes).
#[derive(Debug)]
pub struct DataReader {
    file: File,
    extents: Vec<[u64; 2]>,
    /// Which extent, and how far into it.
    index: usize,
    done: u64,
}

impl DataReader {
    /// Reads `extents` of `file`.
    fn new(file: File, extents: Vec<[u64; 2]>) -> Self {
        Self {
            file,
            extents,
            index: 0,
            done: 0,
        }
    }

    /// Opens the file at `path` to read the data a manifest entry with
    /// these `sparse` extents describes (all of it when there are none).
    pub fn open(path: &Path, sparse: &[[u64; 2]]) -> io::Result<DataReader> {
        let file = File::open(path)?;
        let extents = if sparse.is_empty() {
            vec![[0, file.metadata()?.len()]]
        } else {
            sparse.to_vec()
        };
        Ok(DataReader::new(file, extents))
    }
}

impl Read for DataReader {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        while let Some(&[offset, length]) = self.extents.get(self.index) {
            if self.done == length {
                self.index += 1;
                self.done = 0;
                continue;
            }
            self.file.seek(SeekFrom::Start(offset + self.done))?;
            let want = usize::try_from(length - self.done)
                .unwrap_or(usize::MAX)
                .min(buffer.len());
            let count = self.file.read(&mut buffer[..want])?;
            if count == 0 {
                // The file is shorter than it was: the caller sees the
                // change by its size or digest.
                return Ok(0);
            }
            self.done += count as u64;
            return Ok(count);
        }
        Ok(0)
    }
}

/// Where `path` of a tree rooted at `root` is on disk.
pub fn full_path(root: &Path, path: &TreePath) -> PathBuf {
    if path.is_root() {
        root.to_owned()
    } else {
        root.join(std::ffi::OsStr::from_bytes(&path.to_bytes()))
    }
}

/// What [`materialize`] made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Made {
    /// Entries made.
    pub entries: usize,
    /// Bytes of file data written.
    pub bytes: u64,
    /// Sockets in the manifest, which are not made (a socket belongs to
    /// the process listening on it).
    pub sockets_skipped: usize,
}

/// Makes the tree of `manifest` in `target`, an empty folder (or a fresh
/// file system, with only `lost+found`, and the mount points of the other
/// file systems of the target in place), with the contents from `store`. Every content is checked to be in the store
/// before anything is made.
pub fn materialize(
    manifest: &Manifest,
    store: &ContentStore,
    target: &Path,
) -> Result<Made, TreeError> {
    if !fresh(target, true)? {
        return Err(TreeError::NotEmpty {
            path: target.display().to_string(),
        });
    }
    let wanted: Vec<Sha256> = manifest.contents().into_iter().collect();
    if let Some(digest) = store.missing(&wanted).into_iter().next() {
        return Err(ContentError::Missing {
            store: store.root().display().to_string(),
            digest,
        }
        .into());
    }
    let mut made = Made::default();
    let place = |path: &TreePath| full_path(target, path);
    for entry in manifest.entries() {
        let full = place(&entry.path);
        match entry.kind {
            Kind::Dir => {
                // A folder there already is the mount point of another
                // file system of the target (made empty but for
                // `lost+found`): it takes the folder's attributes.
                let mounted = full.is_dir() && fresh(&full, false)?;
                if !entry.path.is_root() && !mounted {
                    fs::create_dir(&full).map_err(io_error(&full, "make the folder"))?;
                }
            }
            Kind::File => match &entry.hardlink {
                Some(first) => {
                    fs::hard_link(place(first), &full).map_err(io_error(&full, "link"))?;
                    made.entries += 1;
                    continue;
                }
                None => made.bytes += write_content(entry, store, &full)?,
            },
            Kind::Symlink => {
                let target_bytes = entry
                    .link
                    .as_ref()
                    .map(|link| link.0.clone())
                    .unwrap_or_default();
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&target_bytes), &full)
                    .map_err(io_error(&full, "make the link"))?;
            }
            Kind::Char | Kind::Block => {
                let [major, minor] = entry.rdev.unwrap_or_default();
                let kind = if entry.kind == Kind::Char {
                    SFlag::S_IFCHR
                } else {
                    SFlag::S_IFBLK
                };
                mknod(
                    &full,
                    kind,
                    Mode::from_bits_truncate(entry.mode),
                    makedev(u64::from(major), u64::from(minor)),
                )
                .map_err(nix_error(&full, "make the device"))?;
            }
            Kind::Fifo => {
                mkfifo(&full, Mode::from_bits_truncate(entry.mode))
                    .map_err(nix_error(&full, "make the fifo"))?;
            }
            Kind::Socket => {
                made.sockets_skipped += 1;
                continue;
            }
        }
        set_attributes(entry, &full)?;
        made.entries += 1;
    }
    // Making what a folder holds changed its time: folders last, deepest
    // first.
    for entry in manifest.entries().iter().rev() {
        if entry.kind == Kind::Dir {
            set_time(entry, &place(&entry.path))?;
        }
    }
    Ok(made)
}

/// Whether `folder` holds nothing but what a fresh file system holds
/// (`lost+found`) and, with `mount_points`, folders where the target's
/// other fresh file systems are mounted (another device).
fn fresh(folder: &Path, mount_points: bool) -> Result<bool, TreeError> {
    let device = fs::metadata(folder)
        .map_err(io_error(folder, "read"))?
        .dev();
    for entry in fs::read_dir(folder).map_err(io_error(folder, "list"))? {
        let entry = entry.map_err(io_error(folder, "list"))?;
        if entry.file_name() == "lost+found" {
            continue;
        }
        let path = entry.path();
        let mounted = mount_points
            && fs::symlink_metadata(&path)
                .is_ok_and(|metadata| metadata.is_dir() && metadata.dev() != device);
        if !(mounted && fresh(&path, true)?) {
            return Ok(false);
        }
    }
    Ok(true)
}

fn write_content(entry: &Entry, store: &ContentStore, full: &Path) -> Result<u64, TreeError> {
    let digest = entry.sha256.as_ref().ok_or_else(|| TreeError::Name {
        path: full.display().to_string(),
        reason: "a regular file without a sha256".to_owned(),
    })?;
    let (mut blob, length) = store.open(digest)?.ok_or_else(|| ContentError::Missing {
        store: store.root().display().to_string(),
        digest: digest.clone(),
    })?;
    if length != entry.data_bytes() {
        return Err(TreeError::Name {
            path: full.display().to_string(),
            reason: format!(
                "the store holds {length} bytes for {digest}, the manifest says {}",
                entry.data_bytes()
            ),
        });
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(full)
        .map_err(io_error(full, "make the file"))?;
    let extents = if entry.sparse.is_empty() {
        vec![[0, entry.size]]
    } else {
        entry.sparse.clone()
    };
    let mut buffer = vec![0u8; 256 * 1024];
    let mut written = 0;
    for [offset, length] in extents {
        file.seek(SeekFrom::Start(offset))
            .map_err(io_error(full, "write"))?;
        let mut left = length;
        while left > 0 {
            let want = usize::try_from(left)
                .unwrap_or(usize::MAX)
                .min(buffer.len());
            blob.read_exact(&mut buffer[..want])
                .map_err(io_error(full, "read its content"))?;
            file.write_all(&buffer[..want])
                .map_err(io_error(full, "write"))?;
            left -= want as u64;
            written += want as u64;
        }
    }
    // The length holds a trailing hole.
    file.set_len(entry.size).map_err(io_error(full, "write"))?;
    Ok(written)
}

/// Owner, then mode (a change of owner clears setuid and setgid), then
/// extended attributes (a change of owner clears capabilities; an ACL sets
/// the group bits it governs), then the time.
fn set_attributes(entry: &Entry, full: &Path) -> Result<(), TreeError> {
    std::os::unix::fs::lchown(full, Some(entry.uid), Some(entry.gid))
        .map_err(io_error(full, "set the owner"))?;
    if entry.kind != Kind::Symlink {
        fs::set_permissions(full, fs::Permissions::from_mode(entry.mode))
            .map_err(io_error(full, "set the mode"))?;
    }
    for (name, value) in &entry.xattrs {
        xattr::set(full, name, &value.0).map_err(io_error(full, "set an extended attribute"))?;
    }
    if entry.kind != Kind::Dir {
        set_time(entry, full)?;
    }
    Ok(())
}

fn set_time(entry: &Entry, full: &Path) -> Result<(), TreeError> {
    let mtime = TimeSpec::new(
        entry.mtime_ns.div_euclid(1_000_000_000),
        entry.mtime_ns.rem_euclid(1_000_000_000),
    );
    utimensat(
        nix::fcntl::AT_FDCWD,
        full,
        &mtime,
        &mtime,
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(nix_error(full, "set the time"))
}
