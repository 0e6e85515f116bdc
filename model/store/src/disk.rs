//! Writing a partition plan (`roleout_model::disk`) onto a disk as a GPT
//! with a protective MBR (the `gptman` crate), and reading it back.
//!
//! Writing a partition table destroys what the disk held. Only the
//! installation engine writes one, for a job whose signed instruction names
//! the target machine; the plan itself is the dry run, and it refuses a disk
//! too small before anything is written.

use std::fs::OpenOptions;
use std::path::Path;

use gptman::{GPT, GPTPartitionEntry};
use ring::rand::{SecureRandom, SystemRandom};
use roleout_model::disk::DiskPlan;

/// The sector size partition tables are written with.
pub const SECTOR: u64 = 512;

/// The GPT type of a Linux file system partition,
/// 0FC63DAF-8483-4772-8E79-3D69D8477DE4, in on-disk byte order (the first
/// three fields little-endian).
pub const LINUX_FILESYSTEM: [u8; 16] = [
    0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47, 0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4,
];

/// What went wrong writing or reading a partition table.
#[derive(Debug, thiserror::Error)]
#[error("{disk}: {reason}")]
pub struct DiskError {
    /// The disk (a device or a file).
    pub disk: String,
    /// What went wrong.
    pub reason: String,
}

fn random_guid() -> Result<[u8; 16], String> {
    let mut guid = [0u8; 16];
    SystemRandom::new()
        .fill(&mut guid)
        .map_err(|_| "the system's random source failed".to_owned())?;
    // A version 4 (random) GUID, variant 1, in on-disk byte order.
    guid[7] = (guid[7] & 0x0f) | 0x40;
    guid[8] = (guid[8] & 0x3f) | 0x80;
    Ok(guid)
}

/// Writes `plan` onto the disk at `disk` (a block device or a disk image
/// file of `plan.disk_bytes`): a protective MBR, the GPT and its backup.
pub fn write_partition_table(disk: &Path, plan: &DiskPlan) -> Result<(), DiskError> {
    let fail = |reason: String| DiskError {
        disk: disk.display().to_string(),
        reason,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(disk)
        .map_err(|error| fail(format!("cannot open it: {error}")))?;
    let length = file
        .metadata()
        .map_err(|error| fail(error.to_string()))?
        .len();
    // A block device reports 0 here; its size is the plan's.
    if length != 0 && length != plan.disk_bytes {
        return Err(fail(format!(
            "it has {length} bytes, but the plan is for {}",
            plan.disk_bytes
        )));
    }
    let mut gpt = GPT::new_from(&mut file, SECTOR, random_guid().map_err(fail)?)
        .map_err(|error| fail(format!("cannot lay out a partition table: {error}")))?;
    for partition in &plan.partitions {
        let first = partition.start_bytes / SECTOR;
        let last = (partition.start_bytes + partition.size_bytes) / SECTOR - 1;
        if first < gpt.header.first_usable_lba || last > gpt.header.last_usable_lba {
            return Err(fail(format!(
                "partition {} (sectors {first} to {last}) is outside the usable sectors {} to {}",
                partition.name, gpt.header.first_usable_lba, gpt.header.last_usable_lba
            )));
        }
        gpt[partition.number] = GPTPartitionEntry {
            partition_type_guid: LINUX_FILESYSTEM,
            unique_partition_guid: random_guid().map_err(fail)?,
            starting_lba: first,
            ending_lba: last,
            attribute_bits: 0,
            partition_name: partition.name.as_str().into(),
        };
    }
    gpt.write_into(&mut file)
        .map_err(|error| fail(format!("cannot write the partition table: {error}")))?;
    GPT::write_protective_mbr_into(&mut file, SECTOR)
        .map_err(|error| fail(format!("cannot write the protective MBR: {error}")))?;
    file.sync_all()
        .map_err(|error| fail(format!("cannot sync: {error}")))
}

/// A partition as the table on a disk says: number, name, first byte and
/// size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePartition {
    /// Its number, from 1.
    pub number: u32,
    /// Its GPT name.
    pub name: String,
    /// Its first byte.
    pub start_bytes: u64,
    /// Its size.
    pub size_bytes: u64,
}

/// The partitions of the GPT on `disk`.
pub fn read_partition_table(disk: &Path) -> Result<Vec<TablePartition>, DiskError> {
    let fail = |reason: String| DiskError {
        disk: disk.display().to_string(),
        reason,
    };
    let mut file =
        std::fs::File::open(disk).map_err(|error| fail(format!("cannot open it: {error}")))?;
    let gpt = GPT::find_from(&mut file).map_err(|error| fail(format!("no GPT found: {error}")))?;
    Ok(gpt
        .iter()
        .filter(|(_, entry)| entry.is_used())
        .map(|(number, entry)| TablePartition {
            number,
            name: entry.partition_name.as_str().to_owned(),
            start_bytes: entry.starting_lba * gpt.sector_size,
            size_bytes: (entry.ending_lba - entry.starting_lba + 1) * gpt.sector_size,
        })
        .collect())
}
