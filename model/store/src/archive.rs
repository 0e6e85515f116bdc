//! The imaging archive: a tree (a manifest and its contents) as one
//! zstd-compressed tar that GNU tar unpacks to the same tree with
//! `tar --xattrs --xattrs-include='*' --acls --numeric-owner -x` (the
//! include pattern is what makes GNU tar restore `security.*` attributes
//! such as file capabilities; it leaves them out by default).
//!
//! Each entry carries, in a PAX extended header, its mtime to the
//! nanosecond and its extended attributes (`SCHILY.xattr.NAME`, and the
//! POSIX ACLs also as `SCHILY.acl.access`/`SCHILY.acl.default` text, as GNU
//! tar writes them); hardlinks are link entries to the group's first path;
//! devices and fifos are their own entry types; sockets are left out. A
//! sparse file is a PAX sparse member (format 1.0: `GNU.sparse.*` records,
//! a map of its data extents, then only their bytes), so GNU tar makes its
//! holes holes again and a 1 GiB file with 4 KiB of data takes 4 KiB on
//! the target, not 1 GiB.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use roleout_model::tree::{Entry, Kind, Manifest};

use crate::content::Hashing;
use crate::image_file::Contents;

/// What went wrong packing an archive.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {action}: {source}")]
pub struct ArchiveError {
    /// The archive, or the entry.
    pub path: String,
    /// What was being done.
    pub action: String,
    /// What failed.
    #[source]
    pub source: io::Error,
}

/// One PAX record: `LENGTH KEY=VALUE\n`, the length counting itself.
fn record(key: &str, value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut length = body + body.to_string().len();
    if length.to_string().len() != body.to_string().len() {
        length = body + length.to_string().len();
    }
    let mut out = format!("{length} {key}=").into_bytes();
    out.extend_from_slice(value);
    out.push(b'\n');
    out
}

/// A POSIX ACL extended attribute (`system.posix_acl_*`, version 2) as the
/// text GNU tar writes (`user::rw-\nuser:1000:rw-\n…`); none when it is not
/// one.
fn acl_text(value: &[u8]) -> Option<String> {
    let (version, entries) = value.split_first_chunk::<4>()?;
    if u32::from_le_bytes(*version) != 2 || entries.len() % 8 != 0 {
        return None;
    }
    let mut lines = Vec::new();
    for entry in entries.chunks_exact(8) {
        let tag = u16::from_le_bytes([entry[0], entry[1]]);
        let perm = u16::from_le_bytes([entry[2], entry[3]]);
        let id = u32::from_le_bytes([entry[4], entry[5], entry[6], entry[7]]);
        let bits: String = [(4, 'r'), (2, 'w'), (1, 'x')]
            .iter()
            .map(|(bit, letter)| if perm & bit != 0 { *letter } else { '-' })
            .collect();
        lines.push(match tag {
            0x01 => format!("user::{bits}"),
            0x02 => format!("user:{id}:{bits}"),
            0x04 => format!("group::{bits}"),
            0x08 => format!("group:{id}:{bits}"),
            0x10 => format!("mask::{bits}"),
            0x20 => format!("other::{bits}"),
            _ => return None,
        });
    }
    Some(lines.join("\n") + "\n")
}

/// The PAX records of `entry`: mtime in ns, and its extended attributes.
fn pax_records(entry: &Entry) -> Vec<u8> {
    let seconds = entry.mtime_ns.div_euclid(1_000_000_000);
    let nanos = entry.mtime_ns.rem_euclid(1_000_000_000);
    let mut records = record("mtime", format!("{seconds}.{nanos:09}").as_bytes());
    if is_sparse_member(entry) {
        records.extend(record("GNU.sparse.major", b"1"));
        records.extend(record("GNU.sparse.minor", b"0"));
        records.extend(record(
            "GNU.sparse.name",
            &tar_path(entry).into_os_string().into_encoded_bytes(),
        ));
        records.extend(record(
            "GNU.sparse.realsize",
            entry.size.to_string().as_bytes(),
        ));
    }
    for (name, value) in &entry.xattrs {
        match name.as_str() {
            "system.posix_acl_access" | "system.posix_acl_default" => {
                if let Some(text) = acl_text(&value.0) {
                    let key = if name.ends_with("access") {
                        "SCHILY.acl.access"
                    } else {
                        "SCHILY.acl.default"
                    };
                    records.extend(record(key, text.as_bytes()));
                }
            }
            _ => {}
        }
        records.extend(record(&format!("SCHILY.xattr.{name}"), &value.0));
    }
    records
}

/// Whether `entry` is packed as a PAX sparse member: a regular file of
/// its own (not a later path of a hardlink group) with holes.
fn is_sparse_member(entry: &Entry) -> bool {
    entry.kind == Kind::File && entry.hardlink.is_none() && !entry.sparse.is_empty()
}

/// The map block of a PAX sparse member (format 1.0): the number of
/// extents, then each one's offset and length, one decimal number a line,
/// padded with zeros to a whole 512-byte block. A file that ends in a
/// hole gets a last, empty extent at its end, as GNU tar writes it.
fn sparse_map(extents: &[[u64; 2]], size: u64) -> Vec<u8> {
    let mut extents = extents.to_vec();
    if extents
        .last()
        .is_none_or(|[offset, length]| offset + length < size)
    {
        extents.push([size, 0]);
    }
    let mut map = format!("{}\n", extents.len()).into_bytes();
    for [offset, length] in &extents {
        map.extend(format!("{offset}\n{length}\n").into_bytes());
    }
    map.resize(map.len().div_ceil(512) * 512, 0);
    map
}

fn tar_path(entry: &Entry) -> PathBuf {
    if entry.path.is_root() {
        PathBuf::from("./")
    } else {
        let mut bytes = b"./".to_vec();
        bytes.extend(entry.path.to_bytes());
        if entry.kind == Kind::Dir {
            bytes.push(b'/');
        }
        PathBuf::from(std::ffi::OsStr::from_bytes(&bytes))
    }
}

/// A packed archive: its size and digest, recorded where it is named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    /// Its size in bytes.
    pub bytes: u64,
    /// The SHA-256 of its bytes.
    pub sha256: roleout_model::ids::Sha256,
}

/// The plain tar stream of the imaging archive `file` (what `tar -x`
/// reads after `zstd -d`).
pub fn decompressed(file: File) -> std::io::Result<impl std::io::Read> {
    zstd::Decoder::new(file)
}

/// Writes the tree of `manifest`, its contents from `contents`, as a zstd
/// tar at `output`, as a stream (the tree is never copied on disk first).
pub fn pack(
    manifest: &Manifest,
    contents: &dyn Contents,
    output: &Path,
) -> Result<Packed, ArchiveError> {
    let fail = |path: String, action: &str| {
        let action = action.to_owned();
        move |source| ArchiveError {
            path,
            action,
            source,
        }
    };
    let shown = output.display().to_string();
    let file = File::create(output).map_err(fail(shown.clone(), "create"))?;
    let hashing = Hashing::new(file);
    let encoder = zstd::Encoder::new(hashing, 3).map_err(fail(shown.clone(), "compress"))?;
    let mut builder = tar::Builder::new(encoder);
    for entry in manifest.entries() {
        let path = tar_path(entry);
        let at = entry.path.to_string();
        let kind = match (entry.kind, &entry.hardlink) {
            (Kind::Socket, _) => continue,
            (Kind::File, Some(_)) => tar::EntryType::Link,
            (Kind::File, None) => tar::EntryType::Regular,
            (Kind::Dir, _) => tar::EntryType::Directory,
            (Kind::Symlink, _) => tar::EntryType::Symlink,
            (Kind::Char, _) => tar::EntryType::Char,
            (Kind::Block, _) => tar::EntryType::Block,
            (Kind::Fifo, _) => tar::EntryType::Fifo,
        };
        let records = pax_records(entry);
        let mut pax = tar::Header::new_ustar();
        pax.set_entry_type(tar::EntryType::XHeader);
        pax.set_size(records.len() as u64);
        pax.set_mode(0o644);
        builder
            .append_data(&mut pax, "./PaxHeaders/entry", &records[..])
            .map_err(fail(at.clone(), "write its attributes"))?;
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(entry.mode);
        header.set_uid(u64::from(entry.uid));
        header.set_gid(u64::from(entry.gid));
        header.set_mtime(u64::try_from(entry.mtime_ns.div_euclid(1_000_000_000)).unwrap_or(0));
        let io = |error: io::Error| ArchiveError {
            path: at.clone(),
            action: "write it".to_owned(),
            source: error,
        };
        if let Some(user) = &entry.user {
            header.set_username(user).map_err(io)?;
        }
        if let Some(group) = &entry.group {
            header.set_groupname(group).map_err(io)?;
        }
        if let Some([major, minor]) = entry.rdev {
            header.set_device_major(major).map_err(io)?;
            header.set_device_minor(minor).map_err(io)?;
        }
        match kind {
            tar::EntryType::Link => {
                let first = entry.hardlink.as_ref().map(|first| {
                    let mut bytes = b"./".to_vec();
                    bytes.extend(first.to_bytes());
                    PathBuf::from(std::ffi::OsStr::from_bytes(&bytes))
                });
                header.set_size(0);
                builder
                    .append_link(&mut header, &path, first.unwrap_or_default())
                    .map_err(io)?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link
                    .as_ref()
                    .map(|link| link.0.clone())
                    .unwrap_or_default();
                header.set_size(0);
                builder
                    .append_link(&mut header, &path, std::ffi::OsStr::from_bytes(&target))
                    .map_err(io)?;
            }
            tar::EntryType::Regular if is_sparse_member(entry) => {
                // A PAX sparse member (format 1.0): a map of the data
                // extents, then their bytes; GNU tar makes the holes
                // holes again.
                let map = sparse_map(&entry.sparse, entry.size);
                let data_bytes: u64 = entry.sparse.iter().map(|[_, length]| length).sum();
                // GNU tar reads PAX sparse members only in a POSIX (ustar)
                // header; the name in it is a stand-in, GNU.sparse.name is
                // the file's.
                let mut posix = tar::Header::new_ustar();
                posix.set_entry_type(tar::EntryType::Regular);
                posix.set_mode(entry.mode);
                posix.set_uid(u64::from(entry.uid));
                posix.set_gid(u64::from(entry.gid));
                posix.set_mtime(header.mtime().map_err(io)?);
                if let Some(user) = &entry.user {
                    posix.set_username(user).map_err(io)?;
                }
                if let Some(group) = &entry.group {
                    posix.set_groupname(group).map_err(io)?;
                }
                posix.set_size(map.len() as u64 + data_bytes);
                let data = contents.open(entry).map_err(io)?;
                builder
                    .append_data(
                        &mut posix,
                        "./GNUSparseFile.0/sparse",
                        io::Cursor::new(map).chain(data.take(data_bytes)),
                    )
                    .map_err(io)?;
            }
            tar::EntryType::Regular => {
                header.set_size(entry.size);
                let data = contents.open(entry).map_err(io)?;
                builder
                    .append_data(&mut header, &path, data.take(entry.size))
                    .map_err(io)?;
            }
            _ => {
                header.set_size(0);
                builder
                    .append_data(&mut header, &path, io::empty())
                    .map_err(io)?;
            }
        }
    }
    let encoder = builder.into_inner().map_err(fail(shown.clone(), "write"))?;
    let mut hashing = encoder.finish().map_err(fail(shown.clone(), "compress"))?;
    hashing.flush().map_err(fail(shown.clone(), "write"))?;
    let (sha256, bytes, file) = hashing.finish();
    file.sync_all().map_err(fail(shown, "sync"))?;
    Ok(Packed { bytes, sha256 })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_sparse_map_lists_its_extents_in_whole_blocks() {
        let map = sparse_map(&[[4096, 10]], 1 << 30);
        assert_eq!(map.len(), 512);
        assert!(map.starts_with(b"2\n4096\n10\n1073741824\n0\n\0"));
        // A file that ends in data gets no empty extent.
        assert!(sparse_map(&[[4096, 10]], 4106).starts_with(b"1\n4096\n10\n\0"));
    }

    #[test]
    fn pax_records_count_their_own_length() {
        for (key, value) in [
            ("mtime", &b"1.5"[..]),
            ("SCHILY.xattr.user.x", &[0u8; 90][..]),
        ] {
            let bytes = record(key, value);
            let (length, _) =
                std::str::from_utf8(&bytes[..bytes.iter().position(|b| *b == b' ').unwrap()])
                    .map(|text| (text.parse::<usize>().unwrap(), ()))
                    .unwrap();
            assert_eq!(length, bytes.len());
        }
    }

    #[test]
    fn an_acl_reads_as_gnu_tar_writes_it() {
        let mut value = 2u32.to_le_bytes().to_vec();
        for (tag, perm, id) in [
            (1u16, 6u16, u32::MAX),
            (2, 6, 1000),
            (4, 4, u32::MAX),
            (0x10, 6, u32::MAX),
            (0x20, 4, u32::MAX),
        ] {
            value.extend(tag.to_le_bytes());
            value.extend(perm.to_le_bytes());
            value.extend(id.to_le_bytes());
        }
        assert_eq!(
            acl_text(&value).unwrap(),
            "user::rw-\nuser:1000:rw-\ngroup::r--\nmask::rw-\nother::r--\n"
        );
        assert_eq!(acl_text(b"nonsense"), None);
    }
}
