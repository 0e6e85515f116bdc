//! Comparing file trees with tools that share no code with Roleout:
//! find, getfattr, getcap and sha256sum (packages findutils,
//! attr, libcap2-bin, acl, coreutils; `scripts/setup.sh` installs them).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;

/// Runs `program` with `args` and returns its standard output; panics
/// with its standard error when it fails.
pub fn run(program: &str, args: &[&OsStr]) -> Vec<u8> {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|error| {
            panic!("{program} could not be run ({error}); scripts/setup.sh installs it")
        });
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// A small system root holding every kind of entry a real one has
/// (`tests/fixtures/system-tree.sh`): a setuid file, one with a file
/// capability, a user xattr, an ACL, hardlinks, relative and dangling
/// symlinks, a fifo, devices, a 1 GiB sparse file with 4 KiB of data, a
/// name that is not UTF-8, an owner without a name, and enough of Debian
/// for dpkg-query.
pub fn fixture(root: &Path) {
    let status = Command::new("sh")
        .arg("-e")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/system-tree.sh"))
        .arg(root)
        .status()
        .expect("sh runs");
    assert!(status.success(), "tests/fixtures/system-tree.sh failed");
}

/// Whether the tests run as root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Where a manifest path of a tree at `root` is on disk.
pub use roleout_store::tree::full_path as full;

/// What `find -printf` says of every entry, by path relative to `root`.
pub fn find(root: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let out = run(
        "find",
        &[
            root.as_os_str(),
            OsStr::new("-printf"),
            OsStr::new("%P\\0%y %m %U %G %s %T@ %l\\0"),
        ],
    );
    let mut fields = out.split(|&byte| byte == 0);
    let mut listed = BTreeMap::new();
    while let (Some(path), Some(rest)) = (fields.next(), fields.next()) {
        // The root itself is listed with an empty name.
        if !path.is_empty() {
            listed.insert(path.to_vec(), rest.to_vec());
        }
    }
    listed
}

/// `getfattr -h -d -m - -e hex` of one path: name → hex value.
pub fn getfattr(path: &Path) -> BTreeMap<String, String> {
    let out = run(
        "getfattr",
        &[
            OsStr::new("-h"),
            OsStr::new("-d"),
            OsStr::new("-m"),
            OsStr::new("-"),
            OsStr::new("-e"),
            OsStr::new("hex"),
            OsStr::new("--absolute-names"),
            path.as_os_str(),
        ],
    );
    String::from_utf8_lossy(&out)
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.trim_start_matches("0x").to_owned()))
        .collect()
}

/// What `sha256sum` says of the file at `path`.
pub fn sha256sum(path: &Path) -> String {
    let out = run("sha256sum", &[path.as_os_str()]);
    String::from_utf8_lossy(&out)
        .split_whitespace()
        .next()
        .expect("sha256sum prints a digest")
        .to_owned()
}

/// Bytes as lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Asserts that the trees at `a` and `b` are the same to tools that share
/// no code with Roleout: `find -printf` of every entry (type, mode, owner,
/// size, mtime, link target), `getfattr` of each, `sha256sum` of every
/// file, and `getcap -r` (ACLs are compared as the `system.posix_acl_*`
/// attributes getfattr shows). Paths in `except` (relative, as
/// find prints them) are left out.
pub fn assert_same_to_independent_tools(a: &Path, b: &Path, except: &[&str]) {
    let keep = |listing: BTreeMap<Vec<u8>, Vec<u8>>| {
        listing
            .into_iter()
            .filter(|(path, _)| !except.iter().any(|skip| path == skip.as_bytes()))
            .collect::<BTreeMap<_, _>>()
    };
    let (listed_a, listed_b) = (keep(find(a)), keep(find(b)));
    assert_eq!(listed_a, listed_b, "find sees the trees differently");
    for (path, line) in &listed_a {
        let relative = OsStr::from_bytes(path);
        let (one, two) = (a.join(relative), b.join(relative));
        assert_eq!(getfattr(&one), getfattr(&two), "getfattr {}", one.display());
        if line.starts_with(b"f ") {
            assert_eq!(
                sha256sum(&one),
                sha256sum(&two),
                "sha256sum {}",
                one.display()
            );
        }
    }
    let caps = |root: &Path| {
        let listed = run("getcap", &[OsStr::new("-r"), root.as_os_str()]);
        String::from_utf8_lossy(&listed).replace(&root.display().to_string(), "ROOT")
    };
    assert_eq!(caps(a), caps(b), "getcap -r");
}
