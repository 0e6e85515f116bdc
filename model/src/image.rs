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
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
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
}

/// One file system of the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn image_names_are_plain() {
        assert!(ImageName::new("web-2026.12").is_ok());
        for bad in ["", "Web", "-web", "a/b", &"x".repeat(65)] {
            assert!(ImageName::new(bad).is_err(), "{bad}");
        }
    }
}
