//! A target's partition plan: an image's file systems fitted to the
//! target's disk. The files are copied file by file, not block by block,
//! so a partition need not be the source's size: on a larger disk the
//! partitions the image marks growable share the extra room (in proportion
//! to their size on the source); on a smaller one each gets at least what
//! its files need, and the disk is refused, before anything is written,
//! only when even that does not fit. This is the plan a dry run shows.

use std::collections::BTreeMap;

use crate::image::Partition;

/// Partitions start and end on MiB boundaries.
pub const ALIGNMENT: u64 = 1 << 20;

/// Room kept at each end of the disk for the partition tables (the GPT
/// and its backup), one alignment unit each.
pub const TABLE_ROOM: u64 = ALIGNMENT;

/// The smallest partition made.
pub const SMALLEST_PARTITION: u64 = 32 << 20;

/// One partition of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedPartition {
    /// Its number in the table, from 1.
    pub number: u32,
    /// Its GPT name (the mount point: `root`, `var`, `home`).
    pub name: String,
    /// Where it is mounted (`/`, `/var`).
    pub mount_point: String,
    /// The file system made on it.
    pub fs_type: String,
    /// Its first byte on the disk.
    pub start_bytes: u64,
    /// Its size.
    pub size_bytes: u64,
    /// What its files need (data, with room for the file system).
    pub needed_bytes: u64,
}

/// The partitions of one target disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskPlan {
    /// The disk's size.
    pub disk_bytes: u64,
    /// The partitions, in disk order.
    pub partitions: Vec<PlannedPartition>,
}

/// Why no plan fits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// The image has no file system to make.
    #[error("the image records no file system to make on the disk")]
    NoPartitions,
    /// The disk cannot hold the files, however they are laid out.
    #[error(
        "the target disk has {disk_bytes} bytes, but the image's files need at least {needed_bytes} ({details}); nothing was written"
    )]
    DiskTooSmall {
        /// The disk's size.
        disk_bytes: u64,
        /// The least the plan needs, tables included.
        needed_bytes: u64,
        /// What each file system needs.
        details: String,
    },
}

fn align_up(bytes: u64) -> u64 {
    bytes.div_ceil(ALIGNMENT) * ALIGNMENT
}

fn align_down(bytes: u64) -> u64 {
    bytes / ALIGNMENT * ALIGNMENT
}

/// What a file system holding `data` bytes needs: the data, an eighth more
/// for its own structures and slack, and 16 MiB (journal, inode tables),
/// never less than [`SMALLEST_PARTITION`].
pub fn needed_for(data: u64) -> u64 {
    align_up((data + data / 8 + (16 << 20)).max(SMALLEST_PARTITION))
}

/// The GPT name of a mount point: `root` for `/`, else the path with `-`
/// for `/` (`/var/log` is `var-log`), at most 36 characters.
pub fn partition_name(mount_point: &str) -> String {
    let trimmed = mount_point.trim_matches('/');
    let name = if trimmed.is_empty() {
        "root".to_owned()
    } else {
        trimmed.replace('/', "-")
    };
    name.chars().take(36).collect()
}

/// Fits `partitions` (the image's, with `data_bytes` of files on each, by
/// mount point) to a disk of `disk_bytes`.
pub fn plan(
    partitions: &[Partition],
    data_bytes: &BTreeMap<String, u64>,
    disk_bytes: u64,
) -> Result<DiskPlan, PlanError> {
    if partitions.is_empty() {
        return Err(PlanError::NoPartitions);
    }
    let usable = align_down(disk_bytes.saturating_sub(2 * TABLE_ROOM));
    let needed: Vec<u64> = partitions
        .iter()
        .map(|partition| needed_for(data_bytes.get(&partition.mount_point).copied().unwrap_or(0)))
        .collect();
    let least: u64 = needed.iter().sum();
    if least > usable {
        return Err(PlanError::DiskTooSmall {
            disk_bytes,
            needed_bytes: least + 2 * TABLE_ROOM,
            details: partitions
                .iter()
                .zip(&needed)
                .map(|(partition, need)| format!("{} {need}", partition.mount_point))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    // Each gets the larger of what it needs and its size on the source,
    // while that fits; what is left goes to the growable ones.
    let wished: Vec<u64> = partitions
        .iter()
        .zip(&needed)
        .map(|(partition, need)| align_up(partition.size_bytes).max(*need))
        .collect();
    let mut sizes = if wished.iter().sum::<u64>() <= usable {
        wished
    } else {
        needed.clone()
    };
    let left = usable - sizes.iter().sum::<u64>();
    let growable: Vec<usize> = (0..partitions.len())
        .filter(|index| partitions[*index].growable)
        .collect();
    let weight: u128 = growable
        .iter()
        .map(|index| u128::from(partitions[*index].size_bytes.max(1)))
        .sum();
    if !growable.is_empty() {
        let mut given = 0;
        for index in &growable {
            let share = (u128::from(left) * u128::from(partitions[*index].size_bytes.max(1)))
                .checked_div(weight)
                .unwrap_or(0);
            let share = align_down(u64::try_from(share).unwrap_or(0));
            sizes[*index] += share;
            given += share;
        }
        // What rounding left over goes to the first growable one.
        if let Some(first) = growable.first() {
            sizes[*first] += align_down(left - given);
        }
    }
    let mut start = TABLE_ROOM;
    let mut planned = Vec::new();
    for (index, (partition, size)) in partitions.iter().zip(sizes).enumerate() {
        planned.push(PlannedPartition {
            number: u32::try_from(index + 1).unwrap_or(u32::MAX),
            name: partition_name(&partition.mount_point),
            mount_point: partition.mount_point.clone(),
            fs_type: partition.fs_type.clone(),
            start_bytes: start,
            size_bytes: size,
            needed_bytes: needed[index],
        });
        start += size;
    }
    Ok(DiskPlan {
        disk_bytes,
        partitions: planned,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    fn source() -> Vec<Partition> {
        let partition = |mount: &str, size: u64, growable: bool| Partition {
            mount_point: mount.to_owned(),
            fs_type: "ext4".to_owned(),
            device: "/dev/vda".to_owned(),
            size_bytes: size,
            used_bytes: 0,
            growable,
            data_bytes: 0,
            table: None,
        };
        vec![
            partition("/", 8 * GIB, true),
            partition("/var", 2 * GIB, false),
        ]
    }

    fn data() -> BTreeMap<String, u64> {
        BTreeMap::from([("/".to_owned(), GIB), ("/var".to_owned(), 100 * MIB)])
    }

    fn check_layout(plan: &DiskPlan) {
        let mut end = TABLE_ROOM;
        for partition in &plan.partitions {
            assert_eq!(partition.start_bytes, end, "{plan:?}");
            assert_eq!(partition.start_bytes % ALIGNMENT, 0);
            assert_eq!(partition.size_bytes % ALIGNMENT, 0);
            assert!(partition.size_bytes >= partition.needed_bytes);
            end += partition.size_bytes;
        }
        assert!(end + TABLE_ROOM <= plan.disk_bytes, "{plan:?}");
    }

    #[test]
    fn a_larger_disk_grows_the_growable_partitions_only() {
        let plan = plan(&source(), &data(), 100 * GIB).unwrap();
        check_layout(&plan);
        assert_eq!(
            plan.partitions[1].size_bytes,
            2 * GIB,
            "not growable: the source's size"
        );
        assert!(plan.partitions[0].size_bytes > 90 * GIB);
        assert_eq!(plan.partitions[0].name, "root");
        assert_eq!(plan.partitions[1].name, "var");
    }

    #[test]
    fn a_smaller_disk_is_taken_when_the_files_fit() {
        let plan = plan(&source(), &data(), 3 * GIB).unwrap();
        check_layout(&plan);
        assert!(plan.partitions[1].size_bytes < 2 * GIB);
    }

    #[test]
    fn a_disk_the_files_do_not_fit_is_refused_with_what_they_need() {
        let error = plan(&source(), &data(), GIB).unwrap_err();
        let PlanError::DiskTooSmall { needed_bytes, .. } = &error else {
            panic!("{error}");
        };
        assert!(*needed_bytes > GIB);
        assert!(error.to_string().contains("/var"), "{error}");
        assert_eq!(plan(&[], &data(), GIB), Err(PlanError::NoPartitions));
    }
}
