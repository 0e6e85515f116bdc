//! Fixture machines' hardware: a `proc` and `sys` tree the agent reads
//! through `--sysroot` as it reads a real machine's. Each has one disk on
//! a PCI storage controller and one NIC on a PCI network controller.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

/// A PCI function: vendor, device, class (hex, as sysfs has them).
#[derive(Debug, Clone, Copy)]
pub struct Pci<'a> {
    /// Vendor id (`1af4`).
    pub vendor: &'a str,
    /// Device id (`1001`).
    pub device: &'a str,
    /// Class (`010000`).
    pub class: &'a str,
}

/// virtio-blk.
pub const VIRTIO_BLK: Pci<'static> = Pci {
    vendor: "1af4",
    device: "1001",
    class: "010000",
};
/// QEMU's NVMe controller.
pub const NVME: Pci<'static> = Pci {
    vendor: "1b36",
    device: "0010",
    class: "010802",
};
/// virtio-net.
pub const VIRTIO_NET: Pci<'static> = Pci {
    vendor: "1af4",
    device: "1000",
    class: "020000",
};
/// Intel 82574L (e1000e).
pub const E1000E: Pci<'static> = Pci {
    vendor: "8086",
    device: "10d3",
    class: "020000",
};

/// What a fixture machine has.
#[derive(Debug, Clone, Copy)]
pub struct Hardware<'a> {
    /// The processor's model name (two logical processors, one socket).
    pub cpu_model: &'a str,
    /// The disk's controller.
    pub storage: Pci<'a>,
    /// The NIC's controller.
    pub network: Pci<'a>,
    /// The disk's size.
    pub disk_bytes: u64,
    /// Booted through UEFI (`sys/firmware/efi`), else BIOS.
    pub uefi: bool,
    /// DMI's system vendor and product name, when it has DMI.
    pub dmi: Option<(&'a str, &'a str)>,
}

impl Default for Hardware<'_> {
    fn default() -> Self {
        Hardware {
            cpu_model: "Fixture CPU @ 2.00GHz",
            storage: VIRTIO_BLK,
            network: VIRTIO_NET,
            disk_bytes: 20 << 30,
            uefi: false,
            dmi: None,
        }
    }
}

fn write(root: &Path, path: &str, text: &str) {
    let path = root.join(path);
    fs::create_dir_all(path.parent().expect("a parent")).expect("a fixture folder");
    fs::write(path, text).expect("a fixture file");
}

fn modalias(pci: Pci<'_>) -> String {
    let class = pci.class;
    format!(
        "pci:v0000{}d0000{}sv00001AF4sd00000001bc{}sc{}i{}",
        pci.vendor.to_ascii_uppercase(),
        pci.device.to_ascii_uppercase(),
        &class[0..2],
        &class[2..4],
        &class[4..6]
    )
}

fn pci_function(root: &Path, slot: &str, pci: Pci<'_>) -> String {
    let folder = format!("sys/devices/pci0000:00/{slot}");
    write(
        root,
        &format!("{folder}/vendor"),
        &format!("0x{}\n", pci.vendor),
    );
    write(
        root,
        &format!("{folder}/device"),
        &format!("0x{}\n", pci.device),
    );
    write(
        root,
        &format!("{folder}/class"),
        &format!("0x{}\n", pci.class),
    );
    write(
        root,
        &format!("{folder}/modalias"),
        &format!("{}\n", modalias(pci)),
    );
    fs::create_dir_all(root.join("sys/bus/pci/devices")).expect("the pci folder");
    symlink(
        root.join(&folder),
        root.join("sys/bus/pci/devices").join(slot),
    )
    .expect("the pci link");
    folder
}

/// Writes `hardware` as a `proc` and `sys` tree at `root`.
pub fn write_sysroot(root: &Path, hardware: &Hardware<'_>) {
    let model = hardware.cpu_model;
    write(
        root,
        "proc/cpuinfo",
        &format!(
            "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: {model}\nphysical id\t: 0\n\n\
             processor\t: 1\nvendor_id\t: GenuineIntel\nmodel name\t: {model}\nphysical id\t: 0\n"
        ),
    );
    write(root, "proc/meminfo", "MemTotal:        4096000 kB\n");
    let storage = pci_function(root, "0000:00:04.0", hardware.storage);
    let disk = format!("{storage}/block/vda");
    write(
        root,
        &format!("{disk}/size"),
        &format!("{}\n", hardware.disk_bytes / 512),
    );
    write(root, &format!("{disk}/queue/rotational"), "0\n");
    write(root, &format!("{disk}/removable"), "0\n");
    fs::create_dir_all(root.join("sys/block")).expect("the block folder");
    symlink(root.join(&disk), root.join("sys/block/vda")).expect("the block link");
    if hardware.uefi {
        fs::create_dir_all(root.join("sys/firmware/efi")).expect("the efi folder");
    }
    if let Some((vendor, product)) = hardware.dmi {
        write(root, "sys/class/dmi/id/sys_vendor", &format!("{vendor}\n"));
        write(
            root,
            "sys/class/dmi/id/product_name",
            &format!("{product}\n"),
        );
        write(root, "sys/class/dmi/id/bios_vendor", "SeaBIOS\n");
    }
    let network = pci_function(root, "0000:00:03.0", hardware.network);
    write(root, "sys/class/net/eth0/address", "52:54:00:12:34:56\n");
    fs::create_dir_all(root.join("sys/class/net/eth0")).expect("the net folder");
    symlink(root.join(&network), root.join("sys/class/net/eth0/device")).expect("the net link");
}
