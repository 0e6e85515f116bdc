//! Reads a machine's hardware ([`Inventory`]) from `sys` and `proc` below a
//! sysroot: `/` on a machine, a folder of fixture files in tests. DMI may be
//! missing; nothing here runs a program.

use std::fs;
use std::path::{Path, PathBuf};

use roleout_model::inventory::{Cpu, Disk, Dmi, Firmware, Inventory, Nic, PciDevice};

/// Why the hardware could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the hardware: {path}: {reason}")]
pub struct InventoryError {
    /// The file.
    pub path: String,
    /// What went wrong.
    pub reason: String,
}

fn text(path: &Path) -> Option<String> {
    fs::read_to_string(path)
        .ok()
        .map(|text| text.trim().to_owned())
}

fn required(path: &Path) -> Result<String, InventoryError> {
    fs::read_to_string(path)
        .map(|text| text.trim().to_owned())
        .map_err(|error| InventoryError {
            path: path.display().to_string(),
            reason: error.to_string(),
        })
}

/// The entries of a folder, by name; none when it is not there.
fn names(folder: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(folder)
        .map(|listing| {
            listing
                .flatten()
                .filter_map(|entry| entry.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The name of what a symlink points at (`device/driver` → `nvme`).
fn link_name(path: &Path) -> Option<String> {
    fs::read_link(path)
        .ok()?
        .file_name()?
        .to_str()
        .map(str::to_owned)
}

/// `0x8086` → `8086`.
fn hex_id(text: &str) -> String {
    text.trim().trim_start_matches("0x").to_ascii_lowercase()
}

/// Whether a path component is a PCI address (`0000:00:1f.2`).
fn is_pci_slot(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.len() == 12
        && bytes[4] == b':'
        && bytes[7] == b':'
        && bytes[10] == b'.'
        && name
            .chars()
            .enumerate()
            .all(|(at, character)| matches!(at, 4 | 7 | 10) || character.is_ascii_hexdigit())
}

/// Reads the hardware below `sysroot`.
pub fn read(sysroot: &Path) -> Result<Inventory, InventoryError> {
    let at = |relative: &str| sysroot.join(relative);
    let cpuinfo = required(&at("proc/cpuinfo"))?;
    let meminfo = required(&at("proc/meminfo"))?;
    let memory_bytes = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or_else(|| InventoryError {
            path: at("proc/meminfo").display().to_string(),
            reason: "no MemTotal line".to_owned(),
        })?;
    let cpu = read_cpu(&cpuinfo);
    let dmi_dir = at("sys/class/dmi/id");
    let dmi = dmi_dir.is_dir().then(|| {
        let field = |name: &str| text(&dmi_dir.join(name)).unwrap_or_default();
        Dmi {
            system_vendor: field("sys_vendor"),
            product_name: field("product_name"),
            product_version: field("product_version"),
            board_vendor: field("board_vendor"),
            board_name: field("board_name"),
            bios_vendor: field("bios_vendor"),
            bios_version: field("bios_version"),
        }
    });
    let virtual_cpu = cpuinfo
        .lines()
        .filter(|line| line.starts_with("flags"))
        .any(|line| line.split_whitespace().any(|flag| flag == "hypervisor"));
    let hypervisor = text(&at("sys/hypervisor/type")).or_else(|| {
        virtual_cpu.then(|| {
            dmi.as_ref()
                .map(|dmi| dmi.system_vendor.clone())
                .filter(|vendor| !vendor.is_empty())
                .unwrap_or_else(|| "unknown".to_owned())
        })
    });
    Ok(Inventory {
        arch: text(&at("proc/sys/kernel/arch"))
            .unwrap_or_else(|| std::env::consts::ARCH.to_owned()),
        firmware: if at("sys/firmware/efi").is_dir() {
            Firmware::Uefi
        } else {
            Firmware::Bios
        },
        hypervisor,
        cpu,
        memory_bytes,
        disks: read_disks(&at("sys/block")),
        nics: read_nics(&at("sys/class/net")),
        pci: read_pci(&at("sys/bus/pci/devices")),
        dmi,
    })
}

fn read_cpu(cpuinfo: &str) -> Cpu {
    let mut cpu = Cpu::default();
    let mut sockets = std::collections::BTreeSet::new();
    for line in cpuinfo.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        match key {
            "processor" => cpu.logical += 1,
            "model name" if cpu.model.is_empty() => cpu.model = value.to_owned(),
            "vendor_id" if cpu.vendor.is_empty() => cpu.vendor = value.to_owned(),
            "physical id" => {
                sockets.insert(value.to_owned());
            }
            _ => {}
        }
    }
    cpu.sockets = u32::try_from(sockets.len()).unwrap_or(u32::MAX).max(1);
    cpu
}

fn read_disks(block: &Path) -> Vec<Disk> {
    let skipped = ["loop", "ram", "zram", "dm-", "md", "sr", "fd", "nbd"];
    names(block)
        .into_iter()
        .filter(|name| !skipped.iter().any(|prefix| name.starts_with(prefix)))
        .filter_map(|name| {
            let folder = block.join(&name);
            let sectors: u64 = text(&folder.join("size"))?.parse().ok()?;
            let flag = |file: &str| text(&folder.join(file)).as_deref() == Some("1");
            // The controller is the last PCI address on the way to the
            // disk's device (`…/0000:00:04.0/virtio1/block/vda`).
            let device_path: PathBuf = fs::read_link(&folder)
                .or_else(|_| fs::read_link(folder.join("device")))
                .unwrap_or_default();
            let controller = device_path
                .components()
                .filter_map(|component| component.as_os_str().to_str())
                .rfind(|component| is_pci_slot(component))
                .map(str::to_owned);
            Some(Disk {
                size_bytes: sectors * 512,
                model: text(&folder.join("device/model")).filter(|model| !model.is_empty()),
                rotational: flag("queue/rotational"),
                removable: flag("removable"),
                controller,
                name,
            })
        })
        .collect()
}

fn read_nics(net: &Path) -> Vec<Nic> {
    names(net)
        .into_iter()
        .filter(|name| net.join(name).join("device").exists())
        .map(|name| {
            let folder = net.join(&name);
            Nic {
                mac: text(&folder.join("address")).unwrap_or_default(),
                driver: link_name(&folder.join("device/driver")),
                name,
            }
        })
        .collect()
}

fn read_pci(devices: &Path) -> Vec<PciDevice> {
    names(devices)
        .into_iter()
        .map(|slot| {
            let folder = devices.join(&slot);
            let field = |file: &str| text(&folder.join(file)).unwrap_or_default();
            PciDevice {
                vendor: hex_id(&field("vendor")),
                device: hex_id(&field("device")),
                class: hex_id(&field("class")),
                modalias: field("modalias"),
                driver: link_name(&folder.join("driver")),
                slot,
            }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn write(root: &Path, path: &str, text: &str) {
        let path = root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    /// A fixture machine: two processors in one socket under a
    /// hypervisor, a virtio disk on a PCI controller, one NIC, no DMI.
    fn fixture(root: &Path) {
        write(
            root,
            "proc/cpuinfo",
            "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Test CPU\nphysical id\t: 0\nflags\t\t: fpu hypervisor\n\nprocessor\t: 1\nvendor_id\t: GenuineIntel\nmodel name\t: Test CPU\nphysical id\t: 0\n",
        );
        write(
            root,
            "proc/meminfo",
            "MemTotal:        2048000 kB\nMemFree: 1 kB\n",
        );
        let slot = "sys/devices/pci0000:00/0000:00:04.0";
        write(root, &format!("{slot}/vendor"), "0x1af4\n");
        write(root, &format!("{slot}/device"), "0x1001\n");
        write(root, &format!("{slot}/class"), "0x010000\n");
        write(
            root,
            &format!("{slot}/modalias"),
            "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00\n",
        );
        write(
            root,
            &format!("{slot}/virtio1/block/vda/size"),
            "41943040\n",
        );
        write(
            root,
            &format!("{slot}/virtio1/block/vda/queue/rotational"),
            "1\n",
        );
        write(root, &format!("{slot}/virtio1/block/vda/removable"), "0\n");
        fs::create_dir_all(root.join("sys/bus/pci/devices")).unwrap();
        std::os::unix::fs::symlink(
            root.join(slot),
            root.join("sys/bus/pci/devices/0000:00:04.0"),
        )
        .unwrap();
        fs::create_dir_all(root.join("sys/block")).unwrap();
        std::os::unix::fs::symlink(
            root.join(format!("{slot}/virtio1/block/vda")),
            root.join("sys/block/vda"),
        )
        .unwrap();
        write(root, "sys/block/loop0/size", "0\n");
        write(root, "sys/class/net/eth0/address", "52:54:00:12:34:56\n");
        fs::create_dir_all(root.join("sys/bus/pci/drivers/virtio-pci")).unwrap();
        fs::create_dir_all(root.join("sys/class/net/eth0/device")).unwrap();
        std::os::unix::fs::symlink(
            root.join("sys/bus/pci/drivers/virtio-pci"),
            root.join("sys/class/net/eth0/device/driver"),
        )
        .unwrap();
        write(root, "sys/class/net/lo/address", "00:00:00:00:00:00\n");
    }

    #[test]
    fn a_fixture_machine_reads_without_dmi() {
        let root = tempfile::tempdir().unwrap();
        fixture(root.path());
        let inventory = read(root.path()).unwrap();
        assert_eq!(inventory.cpu.logical, 2);
        assert_eq!(inventory.cpu.sockets, 1);
        assert_eq!(inventory.cpu.model, "Test CPU");
        assert_eq!(inventory.memory_bytes, 2_048_000 * 1024);
        assert_eq!(inventory.hypervisor.as_deref(), Some("unknown"));
        assert_eq!(inventory.firmware, Firmware::Bios);
        assert_eq!(inventory.dmi, None);
        assert_eq!(inventory.disks.len(), 1, "{:?}", inventory.disks);
        let disk = &inventory.disks[0];
        assert_eq!(disk.size_bytes, 20 << 30);
        assert!(disk.rotational);
        assert_eq!(disk.controller.as_deref(), Some("0000:00:04.0"));
        assert_eq!(inventory.nics.len(), 1);
        assert_eq!(inventory.nics[0].driver.as_deref(), Some("virtio-pci"));
        assert_eq!(inventory.pci.len(), 1);
        assert_eq!(inventory.pci[0].vendor, "1af4");
        assert!(inventory.pci[0].is_storage_controller());
    }

    #[test]
    fn dmi_is_read_when_there_is_some() {
        let root = tempfile::tempdir().unwrap();
        fixture(root.path());
        write(root.path(), "sys/class/dmi/id/sys_vendor", "QEMU\n");
        write(
            root.path(),
            "sys/class/dmi/id/product_name",
            "Standard PC (Q35 + ICH9, 2009)\n",
        );
        fs::create_dir_all(root.path().join("sys/firmware/efi")).unwrap();
        let inventory = read(root.path()).unwrap();
        assert_eq!(inventory.hypervisor.as_deref(), Some("QEMU"));
        assert_eq!(inventory.firmware, Firmware::Uefi);
        assert_eq!(
            inventory.fact("dmi.product-name").as_deref(),
            Some("Standard PC (Q35 + ICH9, 2009)")
        );
    }

    #[test]
    fn a_machine_without_proc_says_which_file_is_missing() {
        let root = tempfile::tempdir().unwrap();
        let error = read(root.path()).unwrap_err();
        assert!(error.to_string().contains("proc/cpuinfo"), "{error}");
    }

    #[test]
    fn this_machine_reads() {
        let inventory = read(Path::new("/")).unwrap();
        assert!(inventory.cpu.logical >= 1);
        assert!(inventory.memory_bytes > 0);
    }
}
