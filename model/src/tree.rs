//! Tree manifests: a canonical, digest-named description of everything in
//! a file tree, the one list that a captured system image, a package's
//! module list and a migration store all are.
//!
//! A manifest is JSON lines: a header `{"format":"roleout-tree/1"}`, then one
//! [`Entry`] per file, directory, link, device, fifo or socket, sorted by the
//! bytes of its path. Each entry holds what it takes to make the entry again
//! exactly: type, mode with setuid, setgid and sticky, numeric owner and the
//! names the tree's own `/etc/passwd` and `/etc/group` give them, mtime in
//! nanoseconds, size and SHA-256 of regular files, symlink targets, hardlink
//! groups (as the first path of the group), device numbers, extended
//! attributes (which hold `security.capability` and POSIX ACLs), and the data
//! extents of sparse files. Serialization is canonical (fields in one order,
//! no spaces, sorted entries and attributes), so one tree always gives the
//! same bytes and the manifest is named by their digest ([`Manifest::digest`]).
//!
//! Paths are bytes on Linux and need not be UTF-8. A [`TreePath`] keeps
//! valid UTF-8 as it is and writes every control byte, `%`, and each byte of
//! an invalid UTF-8 sequence as `%XX`, so every name has exactly one
//! spelling and any name survives the round trip.
//!
//! This module is pure: reading a tree from disk and making one are
//! `roleout_store::tree`'s.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::ids::Sha256;

/// The header's format name.
pub const FORMAT: &str = "roleout-tree/1";

/// A path inside a tree, relative to its root (`.` is the root itself), as
/// bytes with a canonical text spelling (see the module documentation).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TreePath(String);

impl TreePath {
    /// The root of the tree.
    pub fn root() -> TreePath {
        TreePath(".".to_owned())
    }

    /// The path of these bytes (relative, `/`-separated, no `.` or `..`
    /// components, no empty ones); an error says what is wrong.
    pub fn from_bytes(bytes: &[u8]) -> Result<TreePath, String> {
        if bytes == b"." {
            return Ok(TreePath::root());
        }
        if bytes.is_empty() {
            return Err("a path is empty".to_owned());
        }
        for component in bytes.split(|&byte| byte == b'/') {
            match component {
                b"" => return Err(format!("{} has an empty component", encode(bytes))),
                b"." | b".." => {
                    return Err(format!("{} has a `.` or `..` component", encode(bytes)));
                }
                _ => {}
            }
        }
        if bytes.contains(&0) {
            return Err(format!("{} holds a NUL byte", encode(bytes)));
        }
        Ok(TreePath(encode(bytes)))
    }

    /// The path's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        decode(&self.0).unwrap_or_default()
    }

    /// The canonical spelling.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the root.
    pub fn is_root(&self) -> bool {
        self.0 == "."
    }

    /// The directory holding this path (the root for a top-level name);
    /// none for the root.
    pub fn parent(&self) -> Option<TreePath> {
        if self.is_root() {
            return None;
        }
        let bytes = self.to_bytes();
        Some(match bytes.iter().rposition(|&byte| byte == b'/') {
            Some(at) => TreePath(encode(&bytes[..at])),
            None => TreePath::root(),
        })
    }
}

impl Ord for TreePath {
    /// By bytes, the root first: a directory always comes before what it
    /// holds.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (self.is_root(), other.is_root()) {
            (true, true) => std::cmp::Ordering::Equal,
            (true, false) => std::cmp::Ordering::Less,
            (false, true) => std::cmp::Ordering::Greater,
            (false, false) => self.to_bytes().cmp(&other.to_bytes()),
        }
    }
}

impl PartialOrd for TreePath {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl TryFrom<String> for TreePath {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let bytes = decode(&text).ok_or_else(|| format!("{text:?} has a bad % escape"))?;
        let path = TreePath::from_bytes(&bytes)?;
        if path.0 != text {
            return Err(format!(
                "{text:?} is not written canonically (it is {:?})",
                path.0
            ));
        }
        Ok(path)
    }
}

impl From<TreePath> for String {
    fn from(path: TreePath) -> String {
        path.0
    }
}

impl fmt::Display for TreePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TreePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// Bytes as canonical text: valid UTF-8 stays, control bytes, `%` and the
/// bytes of invalid sequences become `%XX`.
fn encode(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len());
    let mut rest = bytes;
    while !rest.is_empty() {
        let (valid, invalid) = match std::str::from_utf8(rest) {
            Ok(valid) => (valid, &[][..]),
            Err(error) => {
                let (valid, after) = rest.split_at(error.valid_up_to());
                let bad = error.error_len().unwrap_or(after.len());
                // The prefix is valid UTF-8 by `valid_up_to`.
                (
                    std::str::from_utf8(valid).unwrap_or_default(),
                    &after[..bad],
                )
            }
        };
        for character in valid.chars() {
            if character.is_control() || character == '%' {
                let mut buffer = [0; 4];
                for byte in character.encode_utf8(&mut buffer).bytes() {
                    text.push_str(&format!("%{byte:02X}"));
                }
            } else {
                text.push(character);
            }
        }
        for byte in invalid {
            text.push_str(&format!("%{byte:02X}"));
        }
        rest = &rest[valid.len() + invalid.len()..];
    }
    text
}

fn decode(text: &str) -> Option<Vec<u8>> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&first, after)) = rest.split_first() {
        if first == b'%' {
            let hex = after.get(..2)?;
            let hex = std::str::from_utf8(hex).ok()?;
            if hex.to_ascii_uppercase() != hex {
                return None;
            }
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &after[2..];
        } else {
            bytes.push(first);
            rest = after;
        }
    }
    Some(bytes)
}

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A character device.
    Char,
    /// A block device.
    Block,
    /// A named pipe.
    Fifo,
    /// A socket (recorded; made again as nothing, since a socket belongs
    /// to the process that listens on it).
    Socket,
}

/// A byte string in a manifest (a symlink target, an extended attribute's
/// value): URL-safe base64 without padding.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Bytes(pub Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text.as_bytes())
            .map(Bytes)
            .map_err(serde::de::Error::custom)
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

/// One thing in a tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Where it is.
    pub path: TreePath,
    /// What it is.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// Permission bits with setuid, setgid and sticky (`st_mode & 07777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// The owner's name in the tree's own `/etc/passwd`, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The group's name in the tree's own `/etc/group`, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Last modification, in nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// A regular file's length (holes included).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub size: u64,
    /// A regular file's content digest: of its bytes, or for a sparse file
    /// of the bytes of its data extents, one after another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Sha256>,
    /// A symbolic link's target, as its bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<Bytes>,
    /// For the second and later paths of one file (a hardlink group): the
    /// first path of the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardlink: Option<TreePath>,
    /// A device's major and minor numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdev: Option<[u32; 2]>,
    /// Extended attributes, by name (`security.capability`,
    /// `system.posix_acl_access`, `user.*` …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub xattrs: BTreeMap<String, Bytes>,
    /// The data extents `[offset, length]` of a file with holes; empty for
    /// a file without.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sparse: Vec<[u64; 2]>,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

impl Entry {
    /// The bytes of content this entry needs from a store: a regular file
    /// that is not a second path of a hardlink group.
    pub fn content(&self) -> Option<&Sha256> {
        match (self.kind, &self.hardlink) {
            (Kind::File, None) => self.sha256.as_ref(),
            _ => None,
        }
    }

    /// How many bytes of data the file has (its extents' total for a
    /// sparse file).
    pub fn data_bytes(&self) -> u64 {
        if self.sparse.is_empty() {
            self.size
        } else {
            self.sparse.iter().map(|[_, length]| length).sum()
        }
    }
}

/// Why bytes are not a manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ManifestError {
    /// The line (from 1).
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    format: String,
}

/// A tree's manifest: its entries, sorted by path.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    entries: Vec<Entry>,
}

impl Manifest {
    /// The manifest of `entries` (sorted here; two entries with one path
    /// are an error, as is a hardlink to a path that is not an earlier
    /// regular file or an entry whose fields do not fit its type).
    pub fn new(mut entries: Vec<Entry>) -> Result<Manifest, ManifestError> {
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        let manifest = Manifest { entries };
        manifest.check()?;
        Ok(manifest)
    }

    /// The entries, sorted by path.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entry at `path`.
    pub fn get(&self, path: &TreePath) -> Option<&Entry> {
        self.entries
            .binary_search_by(|entry| entry.path.cmp(path))
            .ok()
            .map(|at| &self.entries[at])
    }

    /// The canonical bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        let header = Header {
            format: FORMAT.to_owned(),
        };
        // Serializing plain structs of strings and numbers cannot fail.
        bytes.extend(serde_json::to_vec(&header).unwrap_or_default());
        bytes.push(b'\n');
        for entry in &self.entries {
            bytes.extend(serde_json::to_vec(entry).unwrap_or_default());
            bytes.push(b'\n');
        }
        bytes
    }

    /// The digest naming this manifest: SHA-256 of its canonical bytes.
    pub fn digest(&self) -> Sha256 {
        let digest = ring::digest::digest(&ring::digest::SHA256, &self.to_bytes());
        Sha256::from_digest(&digest)
    }

    /// Every content digest the tree needs, each once.
    pub fn contents(&self) -> std::collections::BTreeSet<Sha256> {
        self.entries
            .iter()
            .filter_map(Entry::content)
            .cloned()
            .collect()
    }

    /// Reads canonical bytes back; an error names the line. Bytes that
    /// parse but are not canonical (out of order, another spelling) are
    /// refused too, so a manifest's digest is always that of its tree.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let text = std::str::from_utf8(bytes).map_err(|error| ManifestError {
            line: 1 + bytes[..error.valid_up_to()]
                .iter()
                .filter(|&&byte| byte == b'\n')
                .count(),
            reason: format!("not UTF-8: {error}"),
        })?;
        let mut lines = text.split_terminator('\n').enumerate();
        let fail = |line: usize, reason: String| ManifestError {
            line: line + 1,
            reason,
        };
        let (_, first) = lines
            .next()
            .ok_or_else(|| fail(0, "empty: no header line".to_owned()))?;
        let header: Header = serde_json::from_str(first)
            .map_err(|error| fail(0, format!("not a manifest header: {error}")))?;
        if header.format != FORMAT {
            return Err(fail(
                0,
                format!(
                    "format {:?} is not {FORMAT:?} (made by another Roleout?)",
                    header.format
                ),
            ));
        }
        let mut entries = Vec::new();
        for (number, line) in lines {
            let entry: Entry =
                serde_json::from_str(line).map_err(|error| fail(number, error.to_string()))?;
            if let Some(before) = entries.last().map(|before: &Entry| &before.path)
                && *before >= entry.path
            {
                return Err(fail(
                    number,
                    format!("{} is out of order (after {before})", entry.path),
                ));
            }
            entries.push(entry);
        }
        let manifest = Manifest { entries };
        manifest.check()?;
        if manifest.to_bytes() != bytes {
            return Err(fail(
                0,
                "the manifest is not written canonically (its digest would not be its tree's)"
                    .to_owned(),
            ));
        }
        Ok(manifest)
    }

    /// Checks what [`Manifest::new`] promises; the line is the entry's.
    fn check(&self) -> Result<(), ManifestError> {
        let mut files = std::collections::BTreeSet::new();
        for (index, entry) in self.entries.iter().enumerate() {
            let fail = |reason: String| ManifestError {
                line: index + 2,
                reason: format!("{}: {reason}", entry.path),
            };
            if index > 0 && self.entries[index - 1].path == entry.path {
                return Err(fail("listed twice".to_owned()));
            }
            if entry.mode > 0o7777 {
                return Err(fail(format!("mode {:o} has bits beyond 7777", entry.mode)));
            }
            if let Some(parent) = entry.path.parent()
                && self
                    .get(&parent)
                    .is_some_and(|parent| parent.kind != Kind::Dir)
            {
                return Err(fail(format!("its parent {parent} is not a directory")));
            }
            let file = entry.kind == Kind::File;
            match (&entry.hardlink, file) {
                (Some(first), true) => {
                    if !files.contains(first) {
                        return Err(fail(format!(
                            "it is a hardlink to {first}, which is not an earlier regular file"
                        )));
                    }
                }
                (Some(_), false) => {
                    return Err(fail("only a regular file can be a hardlink".to_owned()));
                }
                (None, true) => {
                    if entry.sha256.is_none() {
                        return Err(fail("a regular file without a sha256".to_owned()));
                    }
                    files.insert(entry.path.clone());
                }
                (None, false) => {}
            }
            if !file && (entry.size != 0 || entry.sha256.is_some() || !entry.sparse.is_empty()) {
                return Err(fail(format!(
                    "a {:?} has no size, sha256 or extents",
                    entry.kind
                )));
            }
            if (entry.kind == Kind::Symlink) != entry.link.is_some() {
                return Err(fail(
                    "a symlink, and only a symlink, has a link target".to_owned(),
                ));
            }
            if matches!(entry.kind, Kind::Char | Kind::Block) != entry.rdev.is_some() {
                return Err(fail("a device, and only a device, has rdev".to_owned()));
            }
            let mut end = 0;
            for [offset, length] in &entry.sparse {
                if *offset < end || offset.saturating_add(*length) > entry.size {
                    return Err(fail(format!(
                        "extent [{offset}, {length}] overlaps another or passes the size {}",
                        entry.size
                    )));
                }
                end = offset + length;
            }
        }
        Ok(())
    }
}

/// How two manifests differ, path by path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    /// In the second only.
    pub added: Vec<TreePath>,
    /// In the first only.
    pub removed: Vec<TreePath>,
    /// In both, different (content, type or attributes).
    pub changed: Vec<TreePath>,
    /// In both, the same.
    pub unchanged: usize,
}

impl Diff {
    /// Whether the trees are the same.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// What changes from `before` to `after`.
pub fn diff(before: &Manifest, after: &Manifest) -> Diff {
    let mut result = Diff::default();
    let (mut old, mut new) = (
        before.entries.iter().peekable(),
        after.entries.iter().peekable(),
    );
    loop {
        match (old.peek(), new.peek()) {
            (None, None) => break,
            (Some(a), None) => {
                result.removed.push(a.path.clone());
                old.next();
            }
            (None, Some(b)) => {
                result.added.push(b.path.clone());
                new.next();
            }
            (Some(a), Some(b)) => match a.path.cmp(&b.path) {
                std::cmp::Ordering::Less => {
                    result.removed.push(a.path.clone());
                    old.next();
                }
                std::cmp::Ordering::Greater => {
                    result.added.push(b.path.clone());
                    new.next();
                }
                std::cmp::Ordering::Equal => {
                    if a == b {
                        result.unchanged += 1;
                    } else {
                        result.changed.push(a.path.clone());
                    }
                    old.next();
                    new.next();
                }
            },
        }
    }
    result
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn dir(path: &str) -> Entry {
        Entry {
            path: TreePath::from_bytes(path.as_bytes()).unwrap(),
            kind: Kind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
            user: Some("root".to_owned()),
            group: Some("root".to_owned()),
            mtime_ns: 1_700_000_000_123_456_789,
            size: 0,
            sha256: None,
            link: None,
            hardlink: None,
            rdev: None,
            xattrs: BTreeMap::new(),
            sparse: Vec::new(),
        }
    }

    fn file(path: &str, content: &[u8]) -> Entry {
        let digest = ring::digest::digest(&ring::digest::SHA256, content);
        Entry {
            kind: Kind::File,
            mode: 0o644,
            size: content.len() as u64,
            sha256: Some(Sha256::from_digest(&digest)),
            ..dir(path)
        }
    }

    #[test]
    fn any_name_has_one_spelling_and_comes_back() {
        for name in [
            &b"etc/passwd"[..],
            b"caf\xc3\xa9",
            b"bad\xffname",
            b"100%",
            b"tab\there",
            b"new\nline",
        ] {
            let path = TreePath::from_bytes(name).unwrap();
            assert_eq!(path.to_bytes(), name);
            let text: String = path.clone().into();
            assert_eq!(TreePath::try_from(text).unwrap(), path);
        }
        assert_eq!(
            TreePath::from_bytes(b"bad\xffname").unwrap().as_str(),
            "bad%FFname"
        );
        assert_eq!(
            TreePath::from_bytes("café".as_bytes()).unwrap().as_str(),
            "café"
        );
        // A second spelling is refused.
        assert!(TreePath::try_from("caf%C3%A9".to_owned()).is_err());
        assert!(TreePath::try_from("bad%ffname".to_owned()).is_err());
        for bad in [&b""[..], b"/etc", b"a//b", b"a/../b", b"./a", b"a/"] {
            assert!(TreePath::from_bytes(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_directory_sorts_before_what_it_holds() {
        let mut paths: Vec<TreePath> = ["a/b", "a-b", ".", "a", "a/b/c", "B"]
            .iter()
            .map(|path| TreePath::from_bytes(path.as_bytes()).unwrap())
            .collect();
        paths.sort();
        let sorted: Vec<&str> = paths.iter().map(TreePath::as_str).collect();
        assert_eq!(sorted, [".", "B", "a", "a-b", "a/b", "a/b/c"]);
    }

    #[test]
    fn a_manifest_round_trips_byte_for_byte_and_refuses_other_spellings() {
        let mut link = dir("etc/alias");
        link.kind = Kind::Symlink;
        link.mode = 0o777;
        link.link = Some(Bytes(b"../target".to_vec()));
        let mut second = file("etc/hosts2", b"127.0.0.1 localhost\n");
        second.hardlink = Some(TreePath::from_bytes(b"etc/hosts").unwrap());
        let mut capable = file("usr/bin/ping", b"\x7fELF");
        capable.mode = 0o4755;
        capable
            .xattrs
            .insert("security.capability".to_owned(), Bytes(vec![1, 0, 0, 2]));
        let manifest = Manifest::new(vec![
            capable,
            dir("."),
            dir("usr"),
            dir("usr/bin"),
            file("etc/hosts", b"127.0.0.1 localhost\n"),
            second,
            link,
            dir("etc"),
        ])
        .unwrap();
        let bytes = manifest.to_bytes();
        assert_eq!(Manifest::parse(&bytes).unwrap(), manifest);
        assert_eq!(manifest.contents().len(), 2);
        // Spaces added, or fields in another order, make another spelling.
        let spaced = String::from_utf8(bytes.clone())
            .unwrap()
            .replace(",\"uid\"", ", \"uid\"");
        let error = Manifest::parse(spaced.as_bytes()).unwrap_err();
        assert!(error.reason.contains("canonically"), "{error}");
        // Out of order: the line is named.
        let lines: Vec<&str> = std::str::from_utf8(&bytes).unwrap().lines().collect();
        let swapped = [lines[0], lines[2], lines[1]].join("\n") + "\n";
        let error = Manifest::parse(swapped.as_bytes()).unwrap_err();
        assert_eq!(error.line, 3, "{error}");
        // An unknown field is refused with its line.
        let extra = bytes.clone();
        let text =
            String::from_utf8(extra)
                .unwrap()
                .replacen("\"mode\"", "\"colour\":1,\"mode\"", 1);
        assert_eq!(Manifest::parse(text.as_bytes()).unwrap_err().line, 2);
    }

    #[test]
    fn entries_that_do_not_fit_their_type_are_refused() {
        let mut orphan = file("b", b"x");
        orphan.hardlink = Some(TreePath::from_bytes(b"a").unwrap());
        assert!(Manifest::new(vec![dir("."), orphan]).is_err());
        let mut sized_dir = dir("d");
        sized_dir.size = 3;
        assert!(Manifest::new(vec![sized_dir]).is_err());
        let mut holes = file("f", b"0123");
        holes.sparse = vec![[0, 2], [1, 2]];
        assert!(Manifest::new(vec![holes]).is_err());
        let in_a_file = file("f/g", b"");
        assert!(Manifest::new(vec![file("f", b""), in_a_file]).is_err());
        assert!(Manifest::new(vec![file("f", b""), file("f", b"")]).is_err());
    }

    #[test]
    fn a_diff_names_what_was_added_removed_and_changed() {
        let before = Manifest::new(vec![
            dir("."),
            file("a", b"1"),
            file("b", b"2"),
            file("c", b"3"),
        ])
        .unwrap();
        let mut touched = file("b", b"2");
        touched.mtime_ns += 1;
        let after =
            Manifest::new(vec![dir("."), file("a", b"1"), touched, file("d", b"4")]).unwrap();
        let change = diff(&before, &after);
        let names = |paths: &[TreePath]| {
            paths
                .iter()
                .map(|path| path.as_str().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&change.added), ["d"]);
        assert_eq!(names(&change.removed), ["c"]);
        assert_eq!(names(&change.changed), ["b"]);
        assert_eq!(change.unchanged, 2);
        assert!(diff(&after, &after).is_empty());
    }
}
