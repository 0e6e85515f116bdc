//! Making a tree made from an image into one machine of its own: its host
//! name and addresses (for each network flavour the image's system uses,
//! `roleout_model::image::target_plan`), a new machine id, new SSH host keys,
//! and no Roleout identity of the source's (a target enrols as itself).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use ring::rand::{SecureRandom, SystemRandom};
use roleout_model::image::{OsConfiguration, TargetConfiguration, target_plan};

use super::ImageError;

/// The Roleout state a source may hold (never copied to a target).
const ROLEOUT_STATE: &str = "var/lib/roleout";

/// What configuring a target changed, by path inside it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Configured {
    /// Files written (host name, hosts, network, machine id, host keys).
    pub written: Vec<String>,
    /// Files and folders of the source's removed (its network
    /// configuration, host keys, Roleout state).
    pub removed: Vec<String>,
    /// Whether new SSH host keys were made (`ssh-keygen -A`); false when
    /// the system has no `etc/ssh` or `ssh-keygen` is not there, and then
    /// the source's keys are removed all the same.
    pub ssh_keys_made: bool,
}

fn io_error(path: &Path, action: &str) -> impl FnOnce(std::io::Error) -> ImageError {
    let shown = format!("{}: {action}", path.display());
    move |error| ImageError::Usage(format!("{shown}: {error}"))
}

/// Writes `content` at `path` with `mode`, owned by root, replacing what is
/// there in one rename (a crash leaves the old file or the new, never half
/// of one).
fn write(path: &Path, mode: u32, content: &[u8]) -> Result<(), ImageError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io_error(parent, "make the folder"))?;
    }
    crate::state::atomic::write_atomic(path, content, mode)
        .map_err(|error| ImageError::Usage(error.to_string()))?;
    std::os::unix::fs::lchown(path, Some(0), Some(0)).map_err(io_error(path, "set the owner"))
}

/// Configures the tree at `root` (made from an image whose system is `os`)
/// as the machine `target` describes.
pub fn configure(
    root: &Path,
    os: &OsConfiguration,
    target: &TargetConfiguration,
    fstab: Option<&str>,
) -> Result<Configured, ImageError> {
    let hosts = fs::read_to_string(root.join("etc/hosts")).ok();
    let plan = target_plan(os, target, hosts.as_deref()).map_err(ImageError::Usage)?;
    let mut configured = Configured::default();
    // The folders whose entries change keep the image's times: only the
    // files that make the target itself differ from the source.
    let mut folders: Vec<PathBuf> = plan
        .files
        .iter()
        .filter_map(|file| Path::new(&file.path).parent().map(Path::to_owned))
        .chain(plan.removed.iter().map(|(folder, _)| PathBuf::from(folder)))
        .chain(["etc", "etc/ssh", "var/lib", "var/lib/dbus"].map(PathBuf::from))
        .map(|folder| root.join(folder))
        .collect();
    folders.sort();
    folders.dedup();
    let times = FolderTimes::record(folders);
    // The source's own network configuration goes first.
    for (folder, suffix) in &plan.removed {
        let Ok(listing) = fs::read_dir(root.join(folder)) else {
            continue;
        };
        for entry in listing.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(suffix.as_str()) && entry.path().is_file() {
                fs::remove_file(entry.path()).map_err(io_error(&entry.path(), "remove"))?;
                configured.removed.push(format!("{folder}/{name}"));
            }
        }
    }
    for file in &plan.files {
        write(&root.join(&file.path), file.mode, file.content.as_bytes())?;
        configured.written.push(file.path.clone());
    }
    // The file systems made for this target, by their new UUIDs.
    if let Some(fstab) = fstab {
        write(&root.join("etc/fstab"), 0o644, fstab.as_bytes())?;
        configured.written.push("etc/fstab".to_owned());
    }
    // A machine id of its own (journald, D-Bus and DHCP client ids use it).
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ImageError::Usage("the system's random source failed".to_owned()))?;
    let id: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    write(
        &root.join("etc/machine-id"),
        0o444,
        format!("{id}\n").as_bytes(),
    )?;
    configured.written.push("etc/machine-id".to_owned());
    let dbus = root.join("var/lib/dbus/machine-id");
    if fs::symlink_metadata(&dbus).is_ok_and(|metadata| metadata.is_file()) {
        fs::remove_file(&dbus).map_err(io_error(&dbus, "remove"))?;
        std::os::unix::fs::symlink("/etc/machine-id", &dbus).map_err(io_error(&dbus, "link"))?;
        configured
            .written
            .push("var/lib/dbus/machine-id".to_owned());
    }
    // SSH host keys are never shared between machines.
    let ssh = root.join("etc/ssh");
    if let Ok(listing) = fs::read_dir(&ssh) {
        for entry in listing.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("ssh_host_") {
                fs::remove_file(entry.path()).map_err(io_error(&entry.path(), "remove"))?;
                configured.removed.push(format!("etc/ssh/{name}"));
            }
        }
        let made = Command::new("ssh-keygen")
            .arg("-A")
            .arg("-f")
            .arg(root)
            .output();
        if let Ok(output) = made {
            if !output.status.success() {
                return Err(ImageError::Usage(format!(
                    "ssh-keygen -A -f {} failed: {}",
                    root.display(),
                    String::from_utf8_lossy(&output.stderr).trim()
                )));
            }
            configured.ssh_keys_made = true;
            for entry in fs::read_dir(&ssh)
                .map_err(io_error(&ssh, "list"))?
                .flatten()
            {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with("ssh_host_") {
                    configured.written.push(format!("etc/ssh/{name}"));
                }
            }
        }
    }
    let state: PathBuf = root.join(ROLEOUT_STATE);
    if state.exists() {
        fs::remove_dir_all(&state).map_err(io_error(&state, "remove"))?;
        configured.removed.push(ROLEOUT_STATE.to_owned());
    }
    times.restore()?;
    configured.written.sort();
    configured.written.dedup();
    configured.removed.sort();
    Ok(configured)
}

/// The times of folders, to put back once files in them were written or
/// removed: only the files that make a target itself differ from the
/// image, not the folders holding them.
pub(crate) struct FolderTimes(Vec<(PathBuf, nix::sys::time::TimeSpec, nix::sys::time::TimeSpec)>);

impl FolderTimes {
    /// The times of those of `folders` that exist.
    pub(crate) fn record(folders: impl IntoIterator<Item = PathBuf>) -> FolderTimes {
        FolderTimes(
            folders
                .into_iter()
                .filter_map(|folder| {
                    let stat = nix::sys::stat::lstat(&folder).ok()?;
                    Some((
                        folder,
                        nix::sys::time::TimeSpec::new(stat.st_atime, stat.st_atime_nsec),
                        nix::sys::time::TimeSpec::new(stat.st_mtime, stat.st_mtime_nsec),
                    ))
                })
                .collect(),
        )
    }

    /// Puts the recorded times back.
    pub(crate) fn restore(&self) -> Result<(), ImageError> {
        for (folder, atime, mtime) in &self.0 {
            nix::sys::stat::utimensat(
                nix::fcntl::AT_FDCWD,
                folder,
                atime,
                mtime,
                nix::sys::stat::UtimensatFlags::NoFollowSymlink,
            )
            .map_err(|errno| {
                ImageError::Usage(format!("{}: set the time: {errno}", folder.display()))
            })?;
        }
        Ok(())
    }
}
