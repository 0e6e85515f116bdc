//! Images on the machine: `roleout image capture` records a source
//! machine's whole software system (its hardware, its operating system's
//! configuration, its file systems, and every file with its contents) and
//! `roleout image apply` makes it again in an empty folder.
//!
//! Capture reads the tree twice at most: once to hash every file for the
//! manifest, then once to pack the contents, each checked against the
//! manifest as it is packed, so a file that changes during the capture is
//! an error naming it rather than an image of a mixture.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use roleout_model::image::{
    Compatibility, FORMAT, ImageDescription, ImageName, NetworkFlavour, OsConfiguration, Package,
    Partition,
};
use roleout_model::tree::TreePath;
use roleout_store::content::ContentStore;
use roleout_store::image_file::{self, ImageFileError, Packed, TreeContents, Unpacked};
use roleout_store::tree::{Made, ScanOptions, TreeError, materialize, scan};

use crate::inventory::{self, InventoryError};

pub mod deploy;
pub mod first_boot;
pub mod target;

pub use self::target::Configured;

/// What went wrong capturing or applying an image.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// The hardware could not be read.
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    /// The tree could not be read or made.
    #[error(transparent)]
    Tree(#[from] TreeError),
    /// The image file could not be written or read.
    #[error(transparent)]
    File(#[from] ImageFileError),
    /// The content store failed.
    #[error(transparent)]
    Content(#[from] roleout_store::content::ContentError),
    /// An argument is not usable.
    #[error("{0}")]
    Usage(String),
}

/// File systems that hold no part of a system's software: their mount
/// points are kept, empty.
const VIRTUAL_FILE_SYSTEMS: &[&str] = &[
    "proc",
    "sysfs",
    "devtmpfs",
    "devpts",
    "tmpfs",
    "cgroup",
    "cgroup2",
    "mqueue",
    "hugetlbfs",
    "debugfs",
    "tracefs",
    "securityfs",
    "pstore",
    "bpf",
    "configfs",
    "fusectl",
    "binfmt_misc",
    "autofs",
    "efivarfs",
    "rpc_pipefs",
    "nsfs",
];

/// `root` relative: `/` for the root itself.
fn inside(root: &Path, point: &Path) -> Option<String> {
    let relative = point.strip_prefix(root).ok()?;
    Some(format!("/{}", relative.display()).replace("//", "/"))
}

/// The file systems mounted at or below `root` that hold software, with
/// their sizes, and the mount points of the others (to leave out).
fn file_systems(root: &Path) -> (Vec<Partition>, Vec<TreePath>) {
    let mut partitions = Vec::new();
    let mut skipped = Vec::new();
    // The file system holding the root, when the root is not itself a
    // mount point: the deepest mount above it.
    let all = crate::mounts::table();
    let holder = all
        .iter()
        .filter(|mount| root.starts_with(&mount.point))
        .max_by_key(|mount| mount.point.as_os_str().len());
    for mount in all
        .iter()
        .filter(|mount| mount.point.starts_with(root) && mount.point != root)
        .chain(holder)
    {
        // The file system holding the root is the image's `/`.
        let point = if root.starts_with(&mount.point) {
            "/".to_owned()
        } else {
            let Some(point) = inside(root, &mount.point) else {
                continue;
            };
            point
        };
        if VIRTUAL_FILE_SYSTEMS.contains(&mount.fs_type.as_str()) {
            let relative = point.trim_start_matches('/');
            if let Ok(path) = TreePath::from_bytes(relative.as_bytes()) {
                skipped.push(path);
            }
            continue;
        }
        if partitions
            .iter()
            .any(|partition: &Partition| partition.mount_point == point)
        {
            continue;
        }
        let (size_bytes, used_bytes) = space(&mount.point);
        let table = table_entry(Path::new("/"), &mount.device);
        partitions.push(Partition {
            mount_point: point,
            fs_type: mount.fs_type.clone(),
            device: mount.device.clone(),
            // The partition's own size when the table says it, else its
            // file system's.
            size_bytes: table.as_ref().map_or(size_bytes, |entry| entry.size_bytes),
            used_bytes,
            growable: true,
            data_bytes: 0,
            table,
        });
    }
    partitions.sort_by(|a, b| a.mount_point.cmp(&b.mount_point));
    (partitions, skipped)
}

/// The size and the bytes in use of the file system holding `path` (none
/// when it cannot be asked).
fn space(path: &Path) -> (u64, u64) {
    nix::sys::statvfs::statvfs(path)
        .map(|stat| {
            let block = stat.fragment_size();
            (
                stat.blocks() * block,
                (stat.blocks() - stat.blocks_free()) * block,
            )
        })
        .unwrap_or((0, 0))
}

/// The file systems `layout` declares (mount point, type), sized from
/// what holds each path under `root` now.
fn declared_layout(root: &Path, layout: &[(String, String)]) -> Result<Vec<Partition>, ImageError> {
    let mut partitions = Vec::new();
    for (mount_point, fs_type) in layout {
        if !mount_point.starts_with('/') || fs_type.is_empty() {
            return Err(ImageError::Usage(format!(
                "--file-system {mount_point}:{fs_type}: write it as MOUNT-POINT:TYPE (/var:ext4)"
            )));
        }
        let at = root.join(mount_point.trim_start_matches('/'));
        let (size_bytes, used_bytes) = space(&at);
        partitions.push(Partition {
            mount_point: mount_point.clone(),
            fs_type: fs_type.clone(),
            device: String::new(),
            size_bytes,
            used_bytes,
            growable: true,
            data_bytes: 0,
            table: None,
        });
    }
    if !partitions
        .iter()
        .any(|partition| partition.mount_point == "/")
    {
        return Err(ImageError::Usage(
            "--file-system: the layout needs a file system for / too".to_owned(),
        ));
    }
    partitions.sort_by(|a, b| a.mount_point.cmp(&b.mount_point));
    Ok(partitions)
}

/// Where `device` (as the mount table names it) is in its disk's GPT, read
/// through `sysroot`'s `sys`: a partition of a disk (`/dev/vda2`: its
/// disk and first sector), or a loop device over part of a disk file (its
/// backing file and offset). `None` when it is neither, or the disk has
/// no GPT Roleout can read.
fn table_entry(sysroot: &Path, device: &str) -> Option<roleout_model::image::TableEntry> {
    let name = device.strip_prefix("/dev/")?;
    let read = |path: PathBuf| {
        std::fs::read_to_string(path)
            .ok()
            .map(|text| text.trim().to_owned())
    };
    let block = sysroot.join("sys/class/block").join(name);
    let (disk, start_bytes) = if let Some(backing) = read(block.join("loop/backing_file")) {
        let offset: u64 = read(block.join("loop/offset"))?.parse().ok()?;
        (PathBuf::from(backing), offset)
    } else {
        read(block.join("partition"))?;
        let start: u64 = read(block.join("start"))?.parse().ok()?;
        let parent = std::fs::canonicalize(&block).ok()?;
        let disk_name = parent.parent()?.file_name()?.to_string_lossy().into_owned();
        (PathBuf::from("/dev").join(disk_name), start * 512)
    };
    let table = roleout_store::disk::read_partition_table(&disk).ok()?;
    let entry = table
        .into_iter()
        .find(|entry| entry.start_bytes == start_bytes)?;
    Some(roleout_model::image::TableEntry {
        disk: disk.display().to_string(),
        number: entry.number,
        name: entry.name,
        start_bytes: entry.start_bytes,
        size_bytes: entry.size_bytes,
    })
}

/// The installed packages in a dpkg `status` file.
fn dpkg_packages(status: &str) -> Vec<Package> {
    let mut packages = Vec::new();
    for stanza in status.split("\n\n") {
        let field = |name: &str| {
            stanza.lines().find_map(|line| {
                line.strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix(':'))
                    .map(|value| value.trim().to_owned())
            })
        };
        let installed = field("Status").is_some_and(|status| status.ends_with(" installed"));
        if let (true, Some(name), Some(version)) = (installed, field("Package"), field("Version")) {
            packages.push(Package {
                name,
                version,
                arch: field("Architecture").unwrap_or_default(),
            });
        }
    }
    packages.sort();
    packages
}

/// What the operating system in `root` is and how it is configured.
pub fn os_configuration(root: &Path) -> OsConfiguration {
    let read = |path: &str| std::fs::read_to_string(root.join(path)).ok();
    let has_files = |folder: &str, suffix: &str| {
        std::fs::read_dir(root.join(folder)).is_ok_and(|listing| {
            listing
                .flatten()
                .any(|entry| entry.file_name().to_string_lossy().ends_with(suffix))
        })
    };
    let mut network = Vec::new();
    if read("etc/network/interfaces").is_some_and(|text| {
        text.lines().any(|line| {
            line.trim_start().starts_with("iface") || line.trim_start().starts_with("auto")
        })
    }) {
        network.push(NetworkFlavour::Ifupdown);
    }
    if has_files("etc/systemd/network", ".network") {
        network.push(NetworkFlavour::SystemdNetworkd);
    }
    if has_files("etc/NetworkManager/system-connections", "") {
        network.push(NetworkFlavour::NetworkManager);
    }
    if has_files("etc/netplan", ".yaml") {
        network.push(NetworkFlavour::Netplan);
    }
    let mut kernels: Vec<String> = ["lib/modules", "usr/lib/modules"]
        .iter()
        .filter_map(|folder| std::fs::read_dir(root.join(folder)).ok())
        .flat_map(|listing| listing.flatten())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    kernels.sort();
    kernels.dedup();
    OsConfiguration {
        os_release: read("etc/os-release")
            .or_else(|| read("usr/lib/os-release"))
            .map(|text| roleout_model::condition::os_release_fields(&text))
            .unwrap_or_default(),
        hostname: read("etc/hostname")
            .map(|text| text.trim().to_owned())
            .filter(|name| !name.is_empty()),
        packages: read("var/lib/dpkg/status")
            .map(|text| dpkg_packages(&text))
            .unwrap_or_default(),
        network,
        kernels,
        fstab: read("etc/fstab")
            .map(|text| {
                text.lines()
                    .map(str::trim)
                    .filter(|line| !line.is_empty() && !line.starts_with('#'))
                    .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
                    .collect()
            })
            .unwrap_or_default(),
        udev_rules: {
            let mut rules: Vec<String> = std::fs::read_dir(root.join("etc/udev/rules.d"))
                .map(|listing| {
                    listing
                        .flatten()
                        .filter_map(|entry| entry.file_name().into_string().ok())
                        .filter(|name| name.ends_with(".rules"))
                        .collect()
                })
                .unwrap_or_default();
            rules.sort();
            rules
        },
    }
}

/// What `roleout image capture` is told.
#[derive(Debug, Clone)]
pub struct CaptureOptions {
    /// The root of the system to capture.
    pub root: PathBuf,
    /// The image's name.
    pub name: ImageName,
    /// Where the hardware is read (`/` on a machine).
    pub sysroot: PathBuf,
    /// Paths inside the root left out (kept as empty folders).
    pub exclude: Vec<TreePath>,
    /// The file systems targets get (mount point, type), when not the
    /// ones the mount table shows under the root (a snapshot or a copy
    /// mounted somewhere is captured with its machine's layout).
    pub layout: Vec<(String, String)>,
}

/// A captured image: its description and manifest, and the root it was
/// read from.
#[derive(Debug, Clone)]
pub struct Captured {
    /// The captured root, as the system names it (no `..`, no symlink).
    pub root: PathBuf,
    /// The description.
    pub description: ImageDescription,
    /// The tree's manifest.
    pub manifest: roleout_model::tree::Manifest,
}

/// Captures the system at `options.root` (hardware, OS configuration, file
/// systems, manifest); the contents are read when packed.
pub fn capture(options: &CaptureOptions) -> Result<Captured, ImageError> {
    let root = options
        .root
        .canonicalize()
        .map_err(|error| ImageError::Usage(format!("{}: {error}", options.root.display())))?;
    let hardware = inventory::read(&options.sysroot)?;
    let (mut partitions, skipped) = file_systems(&root);
    if !options.layout.is_empty() {
        partitions = declared_layout(&root, &options.layout)?;
    }
    let mut exclude = options.exclude.clone();
    exclude.extend(skipped);
    let scanned = scan(
        &root,
        &ScanOptions {
            exclude,
            one_file_system: false,
        },
        None,
    )?;
    let manifest = scanned.manifest;
    roleout_model::image::count_data(&manifest, &mut partitions);
    let description = ImageDescription {
        format: FORMAT.to_owned(),
        name: options.name.clone(),
        captured_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs()),
        manifest: manifest.digest(),
        entries: manifest.entries().len() as u64,
        data_bytes: manifest
            .entries()
            .iter()
            .filter(|entry| entry.content().is_some())
            .map(roleout_model::tree::Entry::data_bytes)
            .sum(),
        hardware,
        os: os_configuration(&root),
        partitions,
        compatibility: Compatibility::Strict,
    };
    Ok(Captured {
        root,
        description,
        manifest,
    })
}

/// Captures and writes the image to one file at `output`.
pub fn capture_to_file(
    options: &CaptureOptions,
    output: &Path,
) -> Result<(Captured, Packed), ImageError> {
    let captured = capture(options)?;
    let packed = image_file::write(
        output,
        &captured.description,
        &captured.manifest,
        &TreeContents {
            root: captured.root.clone(),
        },
    )?;
    Ok((captured, packed))
}

/// What uploading an image moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uploaded {
    /// Contents offered (the manifest and each file content once).
    pub offered: usize,
    /// Contents roleoutd lacked, and so were sent.
    pub sent: usize,
    /// Bytes sent.
    pub sent_bytes: u64,
    /// What roleoutd did with the image's entry.
    pub status: roleout_model::protocol::ImageStatus,
}

/// Uploads `captured` to roleoutd: offers the digests of its manifest and
/// of each file content, sends those roleoutd lacks (read from the
/// captured root; roleoutd refuses a file whose bytes changed since the
/// manifest was made), then the description.
pub fn upload(
    captured: &Captured,
    server: &mut crate::client::HttpSource,
) -> Result<Uploaded, crate::engine::EngineError> {
    use std::collections::BTreeMap;
    use std::io::Read;
    let failed = |error: crate::engine::SourceError| crate::engine::EngineError::from(error);
    let manifest_bytes = std::sync::Arc::new(captured.manifest.to_bytes());
    // Each content once, read from the first entry that has it.
    let mut contents: BTreeMap<roleout_model::ids::Sha256, &roleout_model::tree::Entry> =
        BTreeMap::new();
    for entry in captured.manifest.entries() {
        if let Some(digest) = entry.content() {
            contents.entry(digest.clone()).or_insert(entry);
        }
    }
    let mut offered: Vec<roleout_model::ids::Sha256> = vec![captured.description.manifest.clone()];
    offered.extend(contents.keys().cloned());
    let missing = server.missing_content(&offered).map_err(failed)?;
    let mut sent_bytes = 0;
    for digest in &missing {
        if *digest == captured.description.manifest {
            let bytes = manifest_bytes.clone();
            server
                .put_content(digest, bytes.len() as u64, &move || {
                    Ok(Box::new(std::io::Cursor::new(bytes.as_ref().clone())) as Box<dyn Read>)
                })
                .map_err(failed)?;
            sent_bytes += manifest_bytes.len() as u64;
            continue;
        }
        let Some(entry) = contents.get(digest) else {
            // roleoutd asked for something not offered: nothing to send.
            continue;
        };
        let path = roleout_store::tree::full_path(&captured.root, &entry.path);
        let sparse = entry.sparse.clone();
        let opened = path.clone();
        server
            .put_content(digest, entry.data_bytes(), &move || {
                Ok(
                    Box::new(roleout_store::tree::DataReader::open(&opened, &sparse)?)
                        as Box<dyn Read>,
                )
            })
            .map_err(|error| match error {
                crate::engine::SourceError::Refused { code, message, .. } => {
                    crate::engine::EngineError::from(crate::engine::SourceError::Refused {
                        what: format!("{} (changed since the capture began?)", path.display()),
                        code,
                        message,
                    })
                }
                other => failed(other),
            })?;
        sent_bytes += entry.data_bytes();
    }
    let stored = server.store_image(&captured.description).map_err(failed)?;
    Ok(Uploaded {
        offered: offered.len(),
        sent: missing.len(),
        sent_bytes,
        status: stored.status,
    })
}

/// What applying an image file did.
#[derive(Debug, Clone)]
pub struct Applied {
    /// What was read of the file.
    pub unpacked: Unpacked,
    /// What was made.
    pub made: Made,
    /// What made it a machine of its own, when a target was given.
    pub configured: Option<Configured>,
}

/// Makes the image in `file` again in `root`, an empty folder, with its
/// contents kept in `store` (a content store: what it holds already is
/// checked, not copied again); with `target`, then makes it that machine
/// (see [`target::configure`]).
pub fn apply_file(
    file: &Path,
    root: &Path,
    store: &Path,
    target: Option<&roleout_model::image::TargetConfiguration>,
) -> Result<Applied, ImageError> {
    if let Some(target) = target {
        // Refused before anything is read or made.
        target.check().map_err(ImageError::Usage)?;
    }
    if !root.is_dir() {
        return Err(ImageError::Usage(format!(
            "{} is not a folder: make it (empty) first",
            root.display()
        )));
    }
    let store = ContentStore::new(store)?;
    let unpacked = image_file::read(file, &store)?;
    let made = materialize(&unpacked.manifest, &store, root)?;
    let configured = target
        .map(|target| target::configure(root, &unpacked.description.os, target, None))
        .transpose()?;
    Ok(Applied {
        unpacked,
        made,
        configured,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn installed_packages_are_read_from_the_dpkg_database() {
        let status = "Package: libc6\nStatus: install ok installed\nVersion: 2.36-9\nArchitecture: amd64\n\n\
                      Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n\n\
                      Package: base-files\nStatus: install ok installed\nArchitecture: amd64\nVersion: 12.4\n";
        let packages = dpkg_packages(status);
        let names: Vec<&str> = packages
            .iter()
            .map(|package| package.name.as_str())
            .collect();
        assert_eq!(names, ["base-files", "libc6"]);
        assert_eq!(packages[1].version, "2.36-9");
    }

    #[test]
    fn the_network_flavour_fstab_and_udev_rules_are_named_from_the_roots_own_files() {
        let root = tempfile::tempdir().unwrap();
        let write = |path: &str, text: &str| {
            let path = root.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write(
            "etc/network/interfaces",
            "auto eth0\niface eth0 inet dhcp\n",
        );
        write(
            "etc/fstab",
            "# static\nUUID=abc  /  ext4  errors=remount-ro  0  1\n\n",
        );
        write("etc/udev/rules.d/70-net.rules", "");
        let os = os_configuration(root.path());
        assert_eq!(os.network, [NetworkFlavour::Ifupdown]);
        assert_eq!(os.fstab, ["UUID=abc / ext4 errors=remount-ro 0 1"]);
        assert_eq!(os.udev_rules, ["70-net.rules"]);
        // Another flavour: ifupdown gone, networkd in its place.
        std::fs::remove_file(root.path().join("etc/network/interfaces")).unwrap();
        write("etc/systemd/network/10.network", "[Match]\nName=eth0\n");
        assert_eq!(
            os_configuration(root.path()).network,
            [NetworkFlavour::SystemdNetworkd]
        );
    }

    #[test]
    fn os_release_values_lose_their_quotes() {
        let values = roleout_model::condition::os_release_fields(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n",
        );
        assert_eq!(values["ID"], "debian");
        assert_eq!(values["VERSION_ID"], "12");
    }
}
