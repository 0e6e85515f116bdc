//! The mount table of this process (`/proc/self/mountinfo`), read once
//! here for whoever needs it: the cgroup hierarchy's mount point, the file
//! systems of a captured system.

use std::path::PathBuf;

/// One line of `/proc/self/mountinfo`: the mount point and what is
/// mounted there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    /// Where it is mounted.
    pub(crate) point: PathBuf,
    /// Its file system type (`ext4`, `cgroup2`).
    pub(crate) fs_type: String,
    /// What is mounted (`/dev/vda2`).
    pub(crate) device: String,
}

/// The mounts from `mountinfo` text (octal escapes in mount points read).
pub(crate) fn mounts(mountinfo: &str) -> Vec<Mount> {
    let unescape = |text: &str| {
        let mut bytes = Vec::new();
        let raw = text.as_bytes();
        let mut at = 0;
        while at < raw.len() {
            if raw[at] == b'\\'
                && at + 3 < raw.len()
                && let Ok(value) = u8::from_str_radix(&text[at + 1..at + 4], 8)
            {
                bytes.push(value);
                at += 4;
                continue;
            }
            bytes.push(raw[at]);
            at += 1;
        }
        PathBuf::from(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&bytes))
    };
    mountinfo
        .lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let point = unescape(before.split_whitespace().nth(4)?);
            let mut after = after.split_whitespace();
            Some(Mount {
                point,
                fs_type: after.next()?.to_owned(),
                device: after.next()?.to_owned(),
            })
        })
        .collect()
}

/// This process's mount table; empty where it cannot be read.
pub(crate) fn table() -> Vec<Mount> {
    mounts(&std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_read_with_their_escapes() {
        let table = "36 35 98:0 / /mnt/my\\040disk rw,noatime master:1 - ext4 /dev/vda2 rw\n\
                     37 35 0:5 / /proc rw - proc proc rw\n";
        let read = mounts(table);
        assert_eq!(read[0].point, PathBuf::from("/mnt/my disk"));
        assert_eq!(
            (read[0].fs_type.as_str(), read[0].device.as_str()),
            ("ext4", "/dev/vda2")
        );
        assert_eq!(read[1].fs_type, "proc");
    }
}
