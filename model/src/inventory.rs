//! A machine's hardware, as one [`Inventory`]: what an image records of
//! its source, what decides which targets it fits, what image policy
//! resolves on, and what detection rules can test (see [`Inventory::fact`]).
//!
//! The type is pure; the agent reads it through a sysroot (so a fixture of
//! `sys` and `proc` files stands for a machine in tests), and DMI may be
//! missing (many virtual machines and containers have none).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::Sha256;

/// How the machine started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Firmware {
    /// UEFI (`/sys/firmware/efi` exists).
    Uefi,
    /// A BIOS (or UEFI in legacy mode).
    Bios,
}

/// The processors.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Cpu {
    /// The model name (`/proc/cpuinfo` `model name`).
    pub model: String,
    /// The vendor (`GenuineIntel`, `AuthenticAMD`…).
    pub vendor: String,
    /// Logical processors.
    pub logical: u32,
    /// Physical packages (sockets).
    pub sockets: u32,
}

/// A disk.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Disk {
    /// The kernel's name (`vda`, `nvme0n1`, `sda`).
    pub name: String,
    /// Its size in bytes.
    pub size_bytes: u64,
    /// The model it reports, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Whether it spins.
    pub rotational: bool,
    /// Whether it can be removed (USB sticks, card readers).
    pub removable: bool,
    /// The PCI address of the controller it hangs on, if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<String>,
}

/// A network interface with a device behind it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Nic {
    /// The kernel's name (`eth0`, `enp1s0`).
    pub name: String,
    /// Its hardware address.
    pub mac: String,
    /// The driver bound to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
}

/// A PCI function.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PciDevice {
    /// Its address (`0000:00:1f.2`).
    pub slot: String,
    /// Vendor id, four hex digits.
    pub vendor: String,
    /// Device id, four hex digits.
    pub device: String,
    /// Class code, six hex digits (`010601` is an AHCI controller).
    pub class: String,
    /// The modalias kernel modules are matched against
    /// (`pci:v00008086d00002922sv…`).
    pub modalias: String,
    /// The driver bound to it now, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
}

impl PciDevice {
    /// Whether it is a storage controller (PCI class 01).
    pub fn is_storage_controller(&self) -> bool {
        self.class.starts_with("01")
    }
}

/// What DMI (SMBIOS) says, when the machine has it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Dmi {
    /// `sys_vendor`.
    pub system_vendor: String,
    /// `product_name`.
    pub product_name: String,
    /// `product_version`.
    pub product_version: String,
    /// `board_vendor`.
    pub board_vendor: String,
    /// `board_name`.
    pub board_name: String,
    /// `bios_vendor`.
    pub bios_vendor: String,
    /// `bios_version`.
    pub bios_version: String,
}

/// A machine's hardware.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Inventory {
    /// The architecture (`x86_64`, `aarch64`).
    pub arch: String,
    /// How it started.
    pub firmware: Firmware,
    /// The hypervisor it runs under, when it is a virtual machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hypervisor: Option<String>,
    /// Processors.
    pub cpu: Cpu,
    /// Memory, in bytes.
    pub memory_bytes: u64,
    /// Disks (not partitions, loop or RAM disks), by name.
    pub disks: Vec<Disk>,
    /// Network interfaces with a device, by name.
    pub nics: Vec<Nic>,
    /// PCI functions, by slot.
    pub pci: Vec<PciDevice>,
    /// DMI, when the machine has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dmi: Option<Dmi>,
}

/// The names [`Inventory::facts`] gives, which `<hardware fact="…">`
/// conditions may test.
pub const FACT_NAMES: &[&str] = &[
    "arch",
    "firmware",
    "hypervisor",
    "cpu.model",
    "cpu.vendor",
    "cpu.logical",
    "cpu.sockets",
    "memory.bytes",
    "disk.count",
    "disk.largest-bytes",
    "nic.count",
    "pci",
    "dmi.system-vendor",
    "dmi.product-name",
    "dmi.product-version",
    "dmi.board-vendor",
    "dmi.board-name",
    "dmi.bios-vendor",
    "dmi.bios-version",
];

impl Inventory {
    /// The storage controllers among the PCI functions.
    pub fn storage_controllers(&self) -> impl Iterator<Item = &PciDevice> {
        self.pci
            .iter()
            .filter(|device| device.is_storage_controller())
    }

    /// Everything a rule can test, by name, as text: `arch`, `firmware`,
    /// `hypervisor`, `cpu.model`, `cpu.vendor`, `cpu.logical`,
    /// `cpu.sockets`, `memory.bytes`, `disk.count`, `disk.largest-bytes`,
    /// `nic.count`, `dmi.system-vendor`, `dmi.product-name`,
    /// `dmi.product-version`, `dmi.board-vendor`, `dmi.board-name`,
    /// `dmi.bios-vendor`, `dmi.bios-version`, and `pci` (every modalias,
    /// one a line). A fact the machine lacks (no DMI, no hypervisor) is
    /// absent.
    pub fn facts(&self) -> BTreeMap<&'static str, String> {
        let mut facts = BTreeMap::from([
            ("arch", self.arch.clone()),
            (
                "firmware",
                match self.firmware {
                    Firmware::Uefi => "uefi",
                    Firmware::Bios => "bios",
                }
                .to_owned(),
            ),
            ("cpu.model", self.cpu.model.clone()),
            ("cpu.vendor", self.cpu.vendor.clone()),
            ("cpu.logical", self.cpu.logical.to_string()),
            ("cpu.sockets", self.cpu.sockets.to_string()),
            ("memory.bytes", self.memory_bytes.to_string()),
            ("disk.count", self.disks.len().to_string()),
            (
                "disk.largest-bytes",
                self.disks
                    .iter()
                    .map(|disk| disk.size_bytes)
                    .max()
                    .unwrap_or(0)
                    .to_string(),
            ),
            ("nic.count", self.nics.len().to_string()),
            (
                "pci",
                self.pci
                    .iter()
                    .map(|device| device.modalias.as_str())
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
        ]);
        if let Some(hypervisor) = &self.hypervisor {
            facts.insert("hypervisor", hypervisor.clone());
        }
        if let Some(dmi) = &self.dmi {
            for (name, value) in [
                ("dmi.system-vendor", &dmi.system_vendor),
                ("dmi.product-name", &dmi.product_name),
                ("dmi.product-version", &dmi.product_version),
                ("dmi.board-vendor", &dmi.board_vendor),
                ("dmi.board-name", &dmi.board_name),
                ("dmi.bios-vendor", &dmi.bios_vendor),
                ("dmi.bios-version", &dmi.bios_version),
            ] {
                facts.insert(name, value.clone());
            }
        }
        facts
    }

    /// One fact by name (see [`Inventory::facts`]).
    pub fn fact(&self, name: &str) -> Option<String> {
        self.facts().remove(name)
    }

    /// The hardware key: a digest of what makes two machines the same
    /// hardware in the strictest sense (architecture, firmware, processor
    /// model, vendor and count, memory, disk sizes and models, NIC drivers,
    /// the PCI vendor, device and class of every function, and the DMI
    /// product), not of what differs between two of one model (names,
    /// MACs, serials, slots, drivers bound now). Machines with one key
    /// take one image under the strict rule.
    pub fn key(&self) -> Sha256 {
        let mut parts = vec![
            self.arch.clone(),
            format!("{:?}", self.firmware),
            self.cpu.model.clone(),
            self.cpu.vendor.clone(),
            self.cpu.logical.to_string(),
            self.cpu.sockets.to_string(),
            self.memory_bytes.to_string(),
        ];
        let mut disks: Vec<String> = self
            .disks
            .iter()
            .map(|disk| format!("disk {} {:?}", disk.size_bytes, disk.model))
            .collect();
        disks.sort();
        parts.extend(disks);
        let mut nics: Vec<String> = self
            .nics
            .iter()
            .map(|nic| format!("nic {:?}", nic.driver))
            .collect();
        nics.sort();
        parts.extend(nics);
        let mut pci: Vec<String> = self
            .pci
            .iter()
            .map(|device| format!("pci {}:{} {}", device.vendor, device.device, device.class))
            .collect();
        pci.sort();
        parts.extend(pci);
        if let Some(dmi) = &self.dmi {
            parts.push(format!(
                "dmi {} {} {}",
                dmi.system_vendor, dmi.product_name, dmi.product_version
            ));
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, parts.join("\n").as_bytes());
        Sha256::from_digest(&digest)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn machine() -> Inventory {
        Inventory {
            arch: "x86_64".to_owned(),
            firmware: Firmware::Uefi,
            hypervisor: None,
            cpu: Cpu {
                model: "Xeon".to_owned(),
                vendor: "GenuineIntel".to_owned(),
                logical: 8,
                sockets: 1,
            },
            memory_bytes: 16 << 30,
            disks: vec![Disk {
                name: "nvme0n1".to_owned(),
                size_bytes: 512 << 30,
                model: Some("Fast".to_owned()),
                rotational: false,
                removable: false,
                controller: Some("0000:01:00.0".to_owned()),
            }],
            nics: vec![Nic {
                name: "eth0".to_owned(),
                mac: "52:54:00:12:34:56".to_owned(),
                driver: Some("e1000e".to_owned()),
            }],
            pci: vec![PciDevice {
                slot: "0000:01:00.0".to_owned(),
                vendor: "144d".to_owned(),
                device: "a808".to_owned(),
                class: "010802".to_owned(),
                modalias: "pci:v0000144Dd0000A808sv0000144Dsd0000A801bc01sc08i02".to_owned(),
                driver: Some("nvme".to_owned()),
            }],
            dmi: None,
        }
    }

    #[test]
    fn two_of_one_model_share_a_key_and_another_model_does_not() {
        let one = machine();
        let mut twin = machine();
        twin.nics[0].mac = "52:54:00:65:43:21".to_owned();
        twin.disks[0].name = "nvme1n1".to_owned();
        twin.pci[0].slot = "0000:02:00.0".to_owned();
        assert_eq!(one.key(), twin.key());
        let mut bigger = machine();
        bigger.memory_bytes *= 2;
        assert_ne!(one.key(), bigger.key());
    }

    #[test]
    fn facts_name_what_rules_test_and_leave_out_what_is_missing() {
        let mut inventory = machine();
        let facts = inventory.facts();
        assert_eq!(facts["memory.bytes"], (16_u64 << 30).to_string());
        assert_eq!(facts["disk.largest-bytes"], (512_u64 << 30).to_string());
        assert!(!facts.contains_key("dmi.product-name"));
        assert_eq!(inventory.storage_controllers().count(), 1);
        inventory.dmi = Some(Dmi {
            product_name: "Standard PC".to_owned(),
            ..Dmi::default()
        });
        assert_eq!(
            inventory.fact("dmi.product-name").as_deref(),
            Some("Standard PC")
        );
        for name in inventory.facts().keys() {
            assert!(FACT_NAMES.contains(name), "{name} is not listed");
        }
        let text = serde_json::to_string(&inventory).unwrap();
        assert_eq!(serde_json::from_str::<Inventory>(&text).unwrap(), inventory);
    }
}
