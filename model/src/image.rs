//! A system image: what was captured of a source machine's whole software
//! system, to be made again on machines whose hardware fits.
//!
//! An image is its description ([`ImageDescription`]: the source's
//! hardware, its operating system's configuration, its partitions, and
//! the digest of its tree manifest) plus the tree manifest
//! (`crate::tree`) plus the contents the manifest names, all by digest.
//! In the directory it is an entry under the Roleout base; its manifest
//! and contents live in a content store. As one file it is a zstd tar of
//! the three (`roleout_store::image_file`).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::Sha256;
use crate::inventory::Inventory;

/// The description's format name.
pub const FORMAT: &str = "roleout-image/1";

/// An image's name: 1 to 64 characters, lowercase letters, digits, `.`,
/// `_` and `-`, starting with a letter or digit.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ImageName(String);

impl ImageName {
    /// The name, checked.
    pub fn new(name: impl Into<String>) -> Result<ImageName, String> {
        let name = name.into();
        let plain = |character: char| {
            character.is_ascii_lowercase()
                || character.is_ascii_digit()
                || "._-".contains(character)
        };
        let starts_well = name
            .chars()
            .next()
            .is_some_and(|first| first.is_ascii_lowercase() || first.is_ascii_digit());
        if name.is_empty() || name.len() > 64 || !starts_well || !name.chars().all(plain) {
            return Err(format!(
                "invalid image name {name:?}: 1 to 64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit"
            ));
        }
        Ok(ImageName(name))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ImageName {
    type Error = String;
    fn try_from(name: String) -> Result<Self, String> {
        ImageName::new(name)
    }
}

impl From<ImageName> for String {
    fn from(name: ImageName) -> String {
        name.0
    }
}

impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// An installed package of the source's package manager.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Package {
    /// Its name.
    pub name: String,
    /// Its version, as the package manager writes it.
    pub version: String,
    /// Its architecture (`amd64`, `all`).
    pub arch: String,
}

/// How the source configures its network; each is given per-target
/// addresses when the image is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkFlavour {
    /// `/etc/network/interfaces` (ifupdown).
    Ifupdown,
    /// `/etc/systemd/network/*.network`.
    SystemdNetworkd,
    /// `/etc/NetworkManager/system-connections/`.
    NetworkManager,
    /// `/etc/netplan/*.yaml`.
    Netplan,
}

/// What was captured of the source's operating system.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct OsConfiguration {
    /// `/etc/os-release`, by key (`ID`, `VERSION_ID`, `PRETTY_NAME`…).
    pub os_release: BTreeMap<String, String>,
    /// The source's host name (`/etc/hostname`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Installed packages, by name (from the dpkg database).
    pub packages: Vec<Package>,
    /// How its network is configured.
    pub network: Vec<NetworkFlavour>,
    /// Kernel versions with modules (`/lib/modules/VERSION`).
    pub kernels: Vec<String>,
    /// The file systems `/etc/fstab` mounts: its lines without comments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fstab: Vec<String>,
    /// The local udev rules (`/etc/udev/rules.d/*.rules`), by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub udev_rules: Vec<String>,
}

/// One file system of the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Partition {
    /// Where it is mounted, inside the captured root (`/`, `/var`).
    pub mount_point: String,
    /// Its file system (`ext4`, `xfs`).
    pub fs_type: String,
    /// The device it was on (`/dev/vda2`), as the mount table says.
    pub device: String,
    /// Its size in bytes.
    pub size_bytes: u64,
    /// Bytes in use.
    pub used_bytes: u64,
    /// Whether a target's partition may be larger (the data is copied
    /// file by file, so a file system is made to the target's size).
    pub growable: bool,
    /// Bytes of file data of the image's tree on this file system (holes
    /// not counted): what a target's partition must hold. Counted from the
    /// manifest ([`count_data`]).
    #[serde(default)]
    pub data_bytes: u64,
    /// Where it was in the source's partition table, when the source's
    /// disk has a GPT Roleout could read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<TableEntry>,
}

/// A partition as the source disk's GPT records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TableEntry {
    /// The disk (`/dev/vda`, or a disk file).
    pub disk: String,
    /// Its number in the table, from 1.
    pub number: u32,
    /// Its GPT name.
    pub name: String,
    /// Its first byte on the disk.
    pub start_bytes: u64,
    /// Its size.
    pub size_bytes: u64,
}

/// Bytes of file data of `manifest` per mount point of `partitions`: each
/// file counts on the deepest file system above it.
pub fn data_by_mount_point(
    manifest: &crate::tree::Manifest,
    partitions: &[Partition],
) -> BTreeMap<String, u64> {
    let mut data: BTreeMap<String, u64> = partitions
        .iter()
        .map(|partition| (partition.mount_point.clone(), 0))
        .collect();
    for entry in manifest.entries() {
        if entry.content().is_none() {
            continue;
        }
        let path = format!("/{}", entry.path.as_str());
        let holder = partitions
            .iter()
            .filter(|partition| {
                let point = partition.mount_point.trim_end_matches('/');
                point.is_empty() || path == point || path.starts_with(&format!("{point}/"))
            })
            .max_by_key(|partition| partition.mount_point.len());
        if let Some(holder) = holder {
            *data.entry(holder.mount_point.clone()).or_insert(0) += entry.data_bytes();
        }
    }
    data
}

/// Sets each partition's [`Partition::data_bytes`] from `manifest`.
pub fn count_data(manifest: &crate::tree::Manifest, partitions: &mut [Partition]) {
    let data = data_by_mount_point(manifest, partitions);
    for partition in partitions {
        partition.data_bytes = data.get(&partition.mount_point).copied().unwrap_or(0);
    }
}

/// The lines of `modules.alias` text (`alias PATTERN MODULE`) that could
/// claim a PCI storage or network controller: PCI patterns whose base
/// class is `01`, `02` or any. What an image keeps to answer "does its
/// kernel drive this target's disks and network?" without its files.
pub fn controller_aliases(text: &str) -> Vec<String> {
    text.lines()
        .filter(|line| {
            let mut words = line.split_whitespace();
            if words.next() != Some("alias") {
                return false;
            }
            let Some(pattern) = words.next() else {
                return false;
            };
            let Some(rest) = pattern.strip_prefix("pci:") else {
                return false;
            };
            match rest.split_once("bc") {
                Some((_, class)) => {
                    class.starts_with("01") || class.starts_with("02") || class.starts_with('*')
                }
                // No base class in the pattern: any.
                None => true,
            }
        })
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// What a target must share with the source to take the image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "rule")]
pub enum Compatibility {
    /// The same hardware key (`Inventory::key`): the source document's
    /// strict equality.
    #[default]
    Strict,
    /// The same value of each named fact (`Inventory::facts`), such as
    /// `arch` and `firmware` only.
    Facts {
        /// The facts compared.
        facts: Vec<String>,
    },
}

/// An image's description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ImageDescription {
    /// [`FORMAT`].
    pub format: String,
    /// Its name.
    pub name: ImageName,
    /// When it was captured (Unix seconds).
    pub captured_at: u64,
    /// The digest of its tree manifest.
    pub manifest: Sha256,
    /// Entries in the tree.
    pub entries: u64,
    /// Bytes of file data the tree holds (holes not counted).
    pub data_bytes: u64,
    /// The source's hardware.
    pub hardware: Inventory,
    /// The source's operating system.
    pub os: OsConfiguration,
    /// The source's file systems.
    pub partitions: Vec<Partition>,
    /// What a target must share with the source.
    #[serde(default)]
    pub compatibility: Compatibility,
}

impl ImageDescription {
    /// Each file system's [`Partition::data_bytes`], by mount point.
    pub fn data_by_mount_point(&self) -> BTreeMap<String, u64> {
        self.partitions
            .iter()
            .map(|partition| (partition.mount_point.clone(), partition.data_bytes))
            .collect()
    }

    /// Checks the format name.
    pub fn check_format(&self) -> Result<(), String> {
        if self.format == FORMAT {
            Ok(())
        } else {
            Err(format!(
                "image format {:?} is not {FORMAT:?} (made by another Roleout?)",
                self.format
            ))
        }
    }

    /// Whether a machine with `target` hardware may take the image, and
    /// why not when it may not (the facts that differ).
    pub fn fits(&self, target: &Inventory) -> Result<(), String> {
        match &self.compatibility {
            Compatibility::Strict => {
                if self.hardware.key() == target.key() {
                    Ok(())
                } else {
                    let source = self.hardware.facts();
                    let theirs = target.facts();
                    let differ: Vec<String> = source
                        .iter()
                        .filter(|(name, value)| theirs.get(*name) != Some(value))
                        .map(|(name, value)| {
                            format!(
                                "{name} is {:?}, the source's {value:?}",
                                theirs.get(name).map_or("", String::as_str)
                            )
                        })
                        .collect();
                    Err(if differ.is_empty() {
                        "its hardware is not the source's (devices or disks differ)".to_owned()
                    } else {
                        differ.join("; ")
                    })
                }
            }
            Compatibility::Facts { facts } => {
                let differ: Vec<String> = facts
                    .iter()
                    .filter_map(|name| {
                        let source = self.hardware.fact(name);
                        let theirs = target.fact(name);
                        (source != theirs).then(|| {
                            format!(
                                "{name} is {:?}, the source's {:?}",
                                theirs.unwrap_or_default(),
                                source.unwrap_or_default()
                            )
                        })
                    })
                    .collect();
                if differ.is_empty() {
                    Ok(())
                } else {
                    Err(differ.join("; "))
                }
            }
        }
    }
}

/// An image's kernel module aliases for PCI devices (the lines of
/// `modules.alias` and `modules.builtin.alias`: `alias PATTERN MODULE`),
/// read once and bucketed by the vendor a pattern names, so judging many
/// targets matches each device against its vendor's patterns and the
/// vendor-less ones only.
#[derive(Debug, Clone, Default)]
pub struct DriverAliases<'a> {
    by_vendor: BTreeMap<String, Vec<&'a str>>,
    any_vendor: Vec<&'a str>,
}

/// The vendor a PCI modalias or alias pattern names (`pci:v00001AF4d…` →
/// `00001AF4`), when it names one without a wildcard.
fn modalias_vendor(text: &str) -> Option<&str> {
    let vendor = text.strip_prefix("pci:v")?.get(..8)?;
    (!vendor.contains(['*', '?', '['])).then_some(vendor)
}

impl<'a> DriverAliases<'a> {
    /// The PCI patterns of `text`.
    pub fn parse(text: &'a str) -> DriverAliases<'a> {
        let mut aliases = DriverAliases::default();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            if words.next() != Some("alias") {
                continue;
            }
            let Some(pattern) = words.next().filter(|pattern| pattern.starts_with("pci:")) else {
                continue;
            };
            match modalias_vendor(pattern) {
                Some(vendor) => aliases
                    .by_vendor
                    .entry(vendor.to_ascii_uppercase())
                    .or_default()
                    .push(pattern),
                None => aliases.any_vendor.push(pattern),
            }
        }
        aliases
    }

    /// Whether some pattern claims a device with `modalias`.
    pub fn claims(&self, modalias: &str) -> bool {
        let own = modalias_vendor(modalias)
            .and_then(|vendor| self.by_vendor.get(&vendor.to_ascii_uppercase()))
            .map_or(&[][..], Vec::as_slice);
        own.iter()
            .chain(&self.any_vendor)
            .any(|pattern| crate::pattern::glob_matches(pattern, modalias))
    }

    /// The storage and network controllers of `target` (PCI classes 01
    /// and 02) no pattern claims: with the image's kernel, such a target
    /// could not reach its disk or network.
    pub fn gaps(&self, target: &Inventory) -> Vec<String> {
        target
            .pci
            .iter()
            .filter(|device| device.class.starts_with("01") || device.class.starts_with("02"))
            .filter(|device| !self.claims(&device.modalias))
            .map(|device| {
                format!(
                    "no driver in the image for {} {}:{} at {}",
                    if device.class.starts_with("01") {
                        "storage controller"
                    } else {
                        "network controller"
                    },
                    device.vendor,
                    device.device,
                    device.slot
                )
            })
            .collect()
    }
}

/// Every reason `target` cannot take the image, or none: the image's
/// compatibility rule ([`ImageDescription::fits`]), a disk the files fit
/// on (`crate::disk::plan` on the target's largest disk, with each
/// partition's [`Partition::data_bytes`]), and a driver for each storage
/// and network controller ([`DriverAliases::gaps`], with the image's
/// module aliases).
pub fn exclusions(
    image: &ImageDescription,
    aliases: &DriverAliases<'_>,
    target: &Inventory,
) -> Vec<String> {
    let data_bytes = image.data_by_mount_point();
    let mut reasons = Vec::new();
    if let Err(reason) = image.fits(target) {
        reasons.push(format!("its hardware differs: {reason}"));
    }
    let largest = target
        .disks
        .iter()
        .map(|disk| disk.size_bytes)
        .max()
        .unwrap_or(0);
    if let Err(error) = crate::disk::plan(&image.partitions, &data_bytes, largest) {
        reasons.push(format!("its largest disk does not do: {error}"));
    }
    reasons.extend(aliases.gaps(target));
    reasons
}

/// One network interface of a target, with the address it is given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct InterfaceAddress {
    /// The interface (`eth0`, `enp1s0`).
    pub name: String,
    /// The address with its prefix length (`198.18.0.11/24`,
    /// `2001:db8::11/64`).
    pub address: String,
    /// The default gateway through it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Name servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
}

impl InterfaceAddress {
    /// Whether the address is IPv6.
    fn is_v6(&self) -> bool {
        self.address.contains(':')
    }
}

/// What makes one target itself: its host name and addresses. (Its machine
/// id, SSH host keys and Roleout identity are made new on it.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TargetConfiguration {
    /// Its host name.
    pub hostname: String,
    /// Its interfaces' addresses.
    pub interfaces: Vec<InterfaceAddress>,
}

impl TargetConfiguration {
    /// Checks the host name (RFC 1123 labels), the interface names and the
    /// addresses, naming the first thing wrong.
    pub fn check(&self) -> Result<(), String> {
        let label_ok = |label: &str| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|character| character.is_ascii_alphanumeric() || character == '-')
        };
        if self.hostname.is_empty()
            || self.hostname.len() > 253
            || !self.hostname.split('.').all(label_ok)
        {
            return Err(format!(
                "host name {:?}: letters, digits and '-' in dot-separated labels of at most 63 characters",
                self.hostname
            ));
        }
        for interface in &self.interfaces {
            let name_ok = !interface.name.is_empty()
                && interface.name.len() <= 15
                && interface.name.chars().all(|character| {
                    character.is_ascii_alphanumeric() || "._-".contains(character)
                });
            if !name_ok {
                return Err(format!(
                    "interface name {:?} is not one Linux allows",
                    interface.name
                ));
            }
            let (address, prefix) = interface.address.split_once('/').ok_or_else(|| {
                format!(
                    "{}: address {:?} needs a prefix length (198.18.0.11/24)",
                    interface.name, interface.address
                )
            })?;
            let address: std::net::IpAddr = address
                .parse()
                .map_err(|_| format!("{}: {address:?} is not an IP address", interface.name))?;
            let longest = if address.is_ipv6() { 128 } else { 32 };
            if !prefix.parse::<u8>().is_ok_and(|prefix| prefix <= longest) {
                return Err(format!(
                    "{}: prefix length {prefix:?} is not 0 to {longest}",
                    interface.name
                ));
            }
            for other in interface.gateway.iter().chain(&interface.dns) {
                other
                    .parse::<std::net::IpAddr>()
                    .map_err(|_| format!("{}: {other:?} is not an IP address", interface.name))?;
            }
        }
        Ok(())
    }
}

/// A file written on a target, and the files of the source it replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetFile {
    /// Its path in the target (`etc/hostname`).
    pub path: String,
    /// Its mode.
    pub mode: u32,
    /// Its content.
    pub content: String,
}

/// What configuring a target changes in the made tree: the files written,
/// and the folders whose files of the source's own configuration go first
/// (with the suffix they end in).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetPlan {
    /// Files written.
    pub files: Vec<TargetFile>,
    /// `(folder, suffix)`: the source's files there ending so are removed.
    pub removed: Vec<(String, String)>,
}

/// The host name and network files of a target, for every network flavour
/// the image's system uses. `hosts` is the made tree's `etc/hosts`, whose
/// lines naming the source's host name are given the target's.
pub fn target_plan(
    os: &OsConfiguration,
    target: &TargetConfiguration,
    hosts: Option<&str>,
) -> Result<TargetPlan, String> {
    target.check()?;
    let name = &target.hostname;
    let short = name.split('.').next().unwrap_or(name);
    let mut plan = TargetPlan::default();
    let mut file = |path: &str, mode: u32, content: String| {
        plan.files.push(TargetFile {
            path: path.to_owned(),
            mode,
            content,
        });
    };
    file("etc/hostname", 0o644, format!("{name}\n"));
    let source = os.hostname.as_deref().unwrap_or("");
    let mut renamed = false;
    let mut lines: Vec<String> = hosts
        .unwrap_or("127.0.0.1\tlocalhost\n")
        .lines()
        .map(|line| {
            let mut words: Vec<&str> = line.split_whitespace().collect();
            if line.trim_start().starts_with('#') || source.is_empty() || words.len() < 2 {
                return line.to_owned();
            }
            let source_short = source.split('.').next().unwrap_or(source);
            if !words[1..]
                .iter()
                .any(|word| *word == source || *word == source_short)
            {
                return line.to_owned();
            }
            renamed = true;
            for word in &mut words[1..] {
                if *word == source {
                    *word = name;
                } else if *word == source_short {
                    *word = short;
                }
            }
            format!("{}\t{}", words[0], words[1..].join(" "))
        })
        .collect();
    if !renamed {
        lines.push(if short == name.as_str() {
            format!("127.0.1.1\t{name}")
        } else {
            format!("127.0.1.1\t{name} {short}")
        });
    }
    file("etc/hosts", 0o644, lines.join("\n") + "\n");
    for flavour in &os.network {
        match flavour {
            NetworkFlavour::Ifupdown => {
                let mut text =
                    "# Written by Roleout for this machine.\nauto lo\niface lo inet loopback\n"
                        .to_owned();
                for interface in &target.interfaces {
                    let family = if interface.is_v6() { "inet6" } else { "inet" };
                    text.push_str(&format!(
                        "\nauto {0}\niface {0} {family} static\n    address {1}\n",
                        interface.name, interface.address
                    ));
                    if let Some(gateway) = &interface.gateway {
                        text.push_str(&format!("    gateway {gateway}\n"));
                    }
                    if !interface.dns.is_empty() {
                        text.push_str(&format!(
                            "    dns-nameservers {}\n",
                            interface.dns.join(" ")
                        ));
                    }
                }
                file("etc/network/interfaces", 0o644, text);
            }
            NetworkFlavour::SystemdNetworkd => {
                plan.removed
                    .push(("etc/systemd/network".to_owned(), ".network".to_owned()));
                for interface in &target.interfaces {
                    let mut text = format!(
                        "# Written by Roleout for this machine.\n[Match]\nName={}\n\n[Network]\nAddress={}\n",
                        interface.name, interface.address
                    );
                    if let Some(gateway) = &interface.gateway {
                        text.push_str(&format!("Gateway={gateway}\n"));
                    }
                    for server in &interface.dns {
                        text.push_str(&format!("DNS={server}\n"));
                    }
                    file(
                        &format!("etc/systemd/network/10-roleout-{}.network", interface.name),
                        0o644,
                        text,
                    );
                }
            }
            NetworkFlavour::NetworkManager => {
                plan.removed.push((
                    "etc/NetworkManager/system-connections".to_owned(),
                    String::new(),
                ));
                for interface in &target.interfaces {
                    let (family, other) = if interface.is_v6() {
                        ("ipv6", "ipv4")
                    } else {
                        ("ipv4", "ipv6")
                    };
                    let gateway = interface
                        .gateway
                        .as_ref()
                        .map(|gateway| format!(",{gateway}"))
                        .unwrap_or_default();
                    let dns: String = interface
                        .dns
                        .iter()
                        .map(|server| format!("{server};"))
                        .collect();
                    let mut text = format!(
                        "# Written by Roleout for this machine.\n[connection]\nid=roleout-{0}\ntype=ethernet\ninterface-name={0}\n\n[{family}]\nmethod=manual\naddress1={1}{gateway}\n",
                        interface.name, interface.address
                    );
                    if !dns.is_empty() {
                        text.push_str(&format!("dns={dns}\n"));
                    }
                    text.push_str(&format!("\n[{other}]\nmethod=disabled\n"));
                    file(
                        &format!(
                            "etc/NetworkManager/system-connections/roleout-{}.nmconnection",
                            interface.name
                        ),
                        0o600,
                        text,
                    );
                }
            }
            NetworkFlavour::Netplan => {
                plan.removed
                    .push(("etc/netplan".to_owned(), ".yaml".to_owned()));
                let mut text = "# Written by Roleout for this machine.\nnetwork:\n  version: 2\n  ethernets:\n".to_owned();
                for interface in &target.interfaces {
                    text.push_str(&format!(
                        "    {}:\n      addresses: [\"{}\"]\n",
                        interface.name, interface.address
                    ));
                    if let Some(gateway) = &interface.gateway {
                        text.push_str(&format!(
                            "      routes:\n        - to: default\n          via: {gateway}\n"
                        ));
                    }
                    if !interface.dns.is_empty() {
                        text.push_str(&format!(
                            "      nameservers:\n        addresses: [{}]\n",
                            interface.dns.join(", ")
                        ));
                    }
                }
                file("etc/netplan/60-roleout.yaml", 0o600, text);
            }
        }
    }
    Ok(plan)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn target(name: &str, address: &str) -> TargetConfiguration {
        TargetConfiguration {
            hostname: name.to_owned(),
            interfaces: vec![InterfaceAddress {
                name: "eth0".to_owned(),
                address: address.to_owned(),
                gateway: Some("198.18.0.1".to_owned()),
                dns: vec!["198.18.0.53".to_owned()],
            }],
        }
    }

    #[test]
    fn every_network_flavour_of_the_image_gets_the_targets_addresses() {
        let os = OsConfiguration {
            hostname: Some("source-host".to_owned()),
            network: vec![
                NetworkFlavour::Ifupdown,
                NetworkFlavour::SystemdNetworkd,
                NetworkFlavour::NetworkManager,
                NetworkFlavour::Netplan,
            ],
            ..OsConfiguration::default()
        };
        let hosts = "127.0.0.1\tlocalhost\n127.0.1.1\tsource-host\n";
        let plan = target_plan(&os, &target("web-2", "198.18.0.12/24"), Some(hosts)).unwrap();
        let file = |path: &str| {
            plan.files
                .iter()
                .find(|file| file.path == path)
                .unwrap_or_else(|| panic!("no {path}: {plan:?}"))
        };
        assert_eq!(file("etc/hostname").content, "web-2\n");
        assert_eq!(
            file("etc/hosts").content,
            "127.0.0.1\tlocalhost\n127.0.1.1\tweb-2\n"
        );
        assert!(
            file("etc/network/interfaces")
                .content
                .contains("address 198.18.0.12/24")
        );
        assert!(
            file("etc/systemd/network/10-roleout-eth0.network")
                .content
                .contains("Address=198.18.0.12/24\nGateway=198.18.0.1")
        );
        let connection = file("etc/NetworkManager/system-connections/roleout-eth0.nmconnection");
        assert_eq!(connection.mode, 0o600);
        assert!(
            connection
                .content
                .contains("address1=198.18.0.12/24,198.18.0.1")
        );
        assert!(
            file("etc/netplan/60-roleout.yaml")
                .content
                .contains("\"198.18.0.12/24\"")
        );
        assert_eq!(plan.removed.len(), 3);
    }

    #[test]
    fn bad_names_and_addresses_are_named() {
        for (name, address, wrong) in [
            ("-web", "198.18.0.1/24", "host name"),
            ("web", "198.18.0.1", "prefix"),
            ("web", "198.18.0.300/24", "not an IP"),
            ("web", "198.18.0.1/33", "prefix length"),
        ] {
            let error = target(name, address).check().unwrap_err();
            assert!(error.contains(wrong), "{name} {address}: {error}");
        }
        assert!(
            target("web-2.example.org", "2001:db8::2/64")
                .check()
                .is_ok()
        );
    }

    #[test]
    fn a_target_is_excluded_for_each_reason_and_named_why() {
        let inventory = |disk: u64, controller: &str| -> Inventory {
            serde_json::from_str(&format!(
                r#"{{"arch":"x86_64","firmware":"bios","cpu":{{"model":"m","vendor":"v","logical":2,"sockets":1}},"memory-bytes":1073741824,
                "disks":[{{"name":"vda","size-bytes":{disk},"rotational":false,"removable":false}}],"nics":[],
                "pci":[{{"slot":"0000:00:04.0","vendor":"{controller}","device":"1001","class":"010000","modalias":"pci:v0000{controller}d00001001sv00001AF4sd00000002bc01sc00i00"}}]}}"#
            ))
            .unwrap()
        };
        let source = inventory(20 << 30, "1AF4");
        let image = ImageDescription {
            format: FORMAT.to_owned(),
            name: ImageName::new("web").unwrap(),
            captured_at: 0,
            manifest: crate::ids::Sha256::from_digest(&ring::digest::digest(
                &ring::digest::SHA256,
                b"",
            )),
            entries: 1,
            data_bytes: 1 << 30,
            hardware: source.clone(),
            os: OsConfiguration::default(),
            partitions: vec![Partition {
                mount_point: "/".to_owned(),
                fs_type: "ext4".to_owned(),
                device: "/dev/vda1".to_owned(),
                size_bytes: 20 << 30,
                used_bytes: 1 << 30,
                growable: true,
                data_bytes: 1 << 30,
                table: None,
            }],
            compatibility: Compatibility::Facts {
                facts: vec!["arch".to_owned()],
            },
        };
        let aliases =
            DriverAliases::parse("alias pci:v00001AF4d00001001sv*sd*bc*sc*i* virtio_blk\n");
        assert!(exclusions(&image, &aliases, &source).is_empty());
        // A small disk and a controller the image has no driver for.
        let other = inventory(512 << 20, "8086");
        let reasons = exclusions(&image, &aliases, &other);
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(reasons[0].contains("disk"), "{reasons:?}");
        assert!(
            reasons[1].contains("no driver in the image for storage controller 8086:1001"),
            "{reasons:?}"
        );
        // Under the strict rule, the hardware differs too.
        let strict = ImageDescription {
            compatibility: Compatibility::Strict,
            ..image
        };
        assert!(exclusions(&strict, &aliases, &other)[0].starts_with("its hardware differs"));
    }

    #[test]
    fn only_aliases_that_could_claim_a_storage_or_network_controller_are_kept() {
        let text = "# Aliases extracted from modules themselves.\n\
            alias pci:v00001AF4d00001001sv*sd*bc*sc*i* virtio_blk\n\
            alias pci:v00008086d000010D3sv*sd*bc02sc00i* e1000e\n\
            alias pci:v00008086d00001E31sv*sd*bc0Csc03i30* xhci_pci\n\
            alias usb:v0BDAp8153d*dc*dsc*dp*ic*isc*ip*in* r8152\n\
            alias pci:v*d*sv*sd*bc01sc08i02*   nvme\n";
        assert_eq!(
            controller_aliases(text),
            [
                "alias pci:v00001AF4d00001001sv*sd*bc*sc*i* virtio_blk",
                "alias pci:v00008086d000010D3sv*sd*bc02sc00i* e1000e",
                "alias pci:v*d*sv*sd*bc01sc08i02* nvme",
            ]
        );
    }

    #[test]
    fn a_device_is_matched_against_its_vendors_patterns_and_the_vendorless_ones() {
        let aliases = DriverAliases::parse(
            "alias pci:v00001AF4d00001001sv*sd*bc*sc*i* virtio_blk\n\
             alias pci:v00008086d000010D3sv*sd*bc*sc*i* e1000e\n\
             alias pci:v*d*sv*sd*bc01sc08i02* nvme\n\
             alias usb:v0BDAp8153d*dc*dsc*dp*ic*isc*ip*in* r8152\n",
        );
        assert!(aliases.claims("pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00"));
        assert!(aliases.claims("pci:v00008086d000010D3sv00008086sd00000000bc02sc00i00"));
        // Another vendor's device, claimed by the vendor-less pattern only.
        assert!(aliases.claims("pci:v00001B36d00000010sv00001AF4sd00001100bc01sc08i02"));
        assert!(!aliases.claims("pci:v00001B36d00000011sv00001AF4sd00001100bc02sc00i00"));
        assert!(!aliases.claims("pci:v00008086d00001E31sv00008086sd00000000bc0Csc03i30"));
    }

    #[test]
    fn file_data_counts_on_the_deepest_file_system_above_it() {
        let entry = |path: &str, size: u64| crate::tree::Entry {
            path: crate::tree::TreePath::from_bytes(path.as_bytes()).unwrap(),
            kind: crate::tree::Kind::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
            user: None,
            group: None,
            mtime_ns: 0,
            size,
            sha256: Some(crate::ids::Sha256::from_digest(&ring::digest::digest(
                &ring::digest::SHA256,
                path.as_bytes(),
            ))),
            link: None,
            hardlink: None,
            rdev: None,
            xattrs: BTreeMap::new(),
            sparse: Vec::new(),
        };
        let manifest = crate::tree::Manifest::new(vec![
            entry("etc/motd", 10),
            entry("var/log/syslog", 200),
            entry("variable", 3),
            entry("var/lib/x", 40),
        ])
        .unwrap();
        let partition = |mount: &str| Partition {
            mount_point: mount.to_owned(),
            fs_type: "ext4".to_owned(),
            device: String::new(),
            size_bytes: 0,
            used_bytes: 0,
            growable: true,
            data_bytes: 0,
            table: None,
        };
        let mut partitions = vec![partition("/"), partition("/var"), partition("/var/log")];
        count_data(&manifest, &mut partitions);
        let counted: Vec<u64> = partitions.iter().map(|p| p.data_bytes).collect();
        assert_eq!(counted, [13, 40, 200]);
    }

    #[test]
    fn image_names_are_plain() {
        assert!(ImageName::new("web-2026.12").is_ok());
        for bad in ["", "Web", "-web", "a/b", &"x".repeat(65)] {
            assert!(ImageName::new(bad).is_err(), "{bad}");
        }
    }
}
