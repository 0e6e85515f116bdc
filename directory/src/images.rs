//! Images and installation engines in the directory.
//!
//! An image is one entry, `cn=NAME,ou=images,BASE` (`roleoutImage`): its
//! description as canonical JSON (`roleoutImageDescription`), and for
//! searches the digest of its tree manifest (`roleoutManifest`), the
//! source's hardware key and the machine it was captured from. The
//! manifest and the files it names are in the content store; what an
//! image entry names is kept by the store's collection.
//!
//! An installation engine is a roleoutd that registered itself under
//! `ou=engines` (`roleoutInstallationEngine`: its URL and certificate
//! fingerprint); a machine entry names the engine it is reached through
//! (`roleoutEngine`).
//!
//! `ou=images` and `ou=engines` are made on first use, so a directory set
//! up before images existed needs nothing done by hand.

use std::collections::HashSet;

use ldap3::{Mod, Scope, SearchEntry};
use roleout_model::ids::{MachineId, Sha256};
use roleout_model::image::{ImageDescription, ImageName};
use tracing::instrument;

use crate::connection::{Directory, EntryValues, single};
use crate::error::{DirectoryError, Result};

const IMAGE_CLASS: &str = "roleoutImage";
const ENGINE_CLASS: &str = "roleoutInstallationEngine";
const DESCRIPTION: &str = "roleoutImageDescription";
const MANIFEST: &str = "roleoutManifest";
const HARDWARE_KEY: &str = "roleoutHardwareKey";
const SOURCE: &str = "roleoutSourceMachine";
const DRIVER_ALIASES: &str = "roleoutDriverAliases";
const ENGINE_URL: &str = "roleoutEngineUrl";
const FINGERPRINT: &str = "roleoutCertificateFingerprint";
const LAST_SEEN: &str = "roleoutLastSeen";

const IMAGE_ATTRIBUTES: &[&str] = &["cn", DESCRIPTION, MANIFEST, SOURCE];
const ENGINE_ATTRIBUTES: &[&str] = &["cn", ENGINE_URL, FINGERPRINT, LAST_SEEN];

/// An image as the directory keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageEntry {
    /// The entry's DN.
    pub dn: String,
    /// The image.
    pub description: ImageDescription,
    /// The machine it was captured from, when it came through roleoutd.
    pub source: Option<String>,
}

/// What storing an image did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageWrite {
    /// A new entry.
    Created,
    /// An image of that name was replaced.
    Replaced,
    /// The same image was there (only its capture time may differ):
    /// nothing was written.
    Unchanged,
    /// An image of that name was captured from another machine: nothing
    /// was written.
    Taken {
        /// The machine it was captured from.
        source: String,
    },
}

/// An installation engine as it registered itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineEntry {
    /// Its name (its entry's `cn`).
    pub name: String,
    /// The URL it answers at.
    pub url: Option<String>,
    /// SHA-256 of its TLS certificate, to pin.
    pub certificate_fingerprint: Option<Sha256>,
    /// When it last registered (GeneralizedTime).
    pub last_seen: Option<String>,
}

fn image_entry(entry: &SearchEntry) -> Result<ImageEntry> {
    let text = entry.text(DESCRIPTION).ok_or_else(|| {
        DirectoryError::mapping(&entry.dn, DESCRIPTION, "an image needs its description")
    })?;
    let description: ImageDescription = serde_json::from_str(text)
        .map_err(|error| DirectoryError::mapping(&entry.dn, DESCRIPTION, error.to_string()))?;
    if entry.text(MANIFEST) != Some(description.manifest.as_str()) {
        return Err(DirectoryError::mapping(
            &entry.dn,
            MANIFEST,
            format!(
                "differs from the description's manifest {}",
                description.manifest
            ),
        ));
    }
    Ok(ImageEntry {
        dn: entry.dn.clone(),
        description,
        source: entry.text(SOURCE).map(str::to_owned),
    })
}

/// Two descriptions of one image, whatever their capture times and the
/// space their file systems had in use at those times (which a live
/// source's logs and caches change, and which say nothing of the image).
fn same_image(a: &ImageDescription, b: &ImageDescription) -> bool {
    let mut b = b.clone();
    b.captured_at = a.captured_at;
    if a.partitions.len() == b.partitions.len() {
        for (ours, theirs) in a.partitions.iter().zip(&mut b.partitions) {
            theirs.used_bytes = ours.used_bytes;
        }
    }
    *a == b
}

impl Directory {
    /// Makes the container `dn` (`ou=NAME,BASE`) when it is missing.
    pub(crate) async fn ensure_container(&self, dn: &str, ou: &str) -> Result<()> {
        if self.read(dn, &["ou"]).await?.is_some() {
            return Ok(());
        }
        let attributes = vec![
            (b"objectClass".to_vec(), single("organizationalUnit")),
            (b"ou".to_vec(), single(ou)),
        ];
        match self.add(dn, attributes).await {
            Err(error) if !error.is_already_exists() => Err(error),
            _ => Ok(()),
        }
    }

    /// Stores `description` as the image of its name, captured from
    /// `source`: a new entry, the entry replaced, or nothing written when
    /// the image there is the same but for its capture time.
    #[instrument(skip(self, description), fields(image = %description.name))]
    pub async fn store_image(
        &self,
        description: &ImageDescription,
        source: Option<&MachineId>,
        driver_aliases: &[String],
    ) -> Result<ImageWrite> {
        let dn = self.layout().image_dn(&description.name);
        let existing = self.read(&dn, IMAGE_ATTRIBUTES).await?;
        let kept = existing.as_ref().and_then(|entry| image_entry(entry).ok());
        let mut desired = description.clone();
        if let Some(kept) = &kept {
            // An image belongs to the machine it was first captured from.
            if let (Some(owner), Some(source)) = (kept.source.as_deref(), source)
                && owner != source.as_str()
            {
                return Ok(ImageWrite::Taken {
                    source: owner.to_owned(),
                });
            }
            // The rule a target must meet is the admin's (`image rule`):
            // capturing again keeps it.
            desired.compatibility = kept.description.compatibility.clone();
            if same_image(&kept.description, &desired)
                && kept.source.as_deref() == source.map(MachineId::as_str)
            {
                return Ok(ImageWrite::Unchanged);
            }
        }
        let json = serde_json::to_string(&desired)
            .map_err(|error| DirectoryError::mapping(&dn, DESCRIPTION, error.to_string()))?;
        let aliases = driver_aliases.join("\n");
        let optional =
            |value: Option<&str>| -> HashSet<Vec<u8>> { value.map(single).unwrap_or_default() };
        let values = [
            (DESCRIPTION, single(json)),
            (MANIFEST, single(desired.manifest.as_str())),
            (HARDWARE_KEY, single(desired.hardware.key().as_str())),
            (SOURCE, optional(source.map(MachineId::as_str))),
            (
                DRIVER_ALIASES,
                optional(Some(aliases.as_str()).filter(|text| !text.is_empty())),
            ),
        ];
        if existing.is_some() {
            let modifications: Vec<Mod<Vec<u8>>> = values
                .into_iter()
                .map(|(attribute, value)| Mod::Replace(attribute.as_bytes().to_vec(), value))
                .collect();
            self.modify(&dn, modifications).await?;
            return Ok(ImageWrite::Replaced);
        }
        self.ensure_container(self.layout().images(), "images")
            .await?;
        let mut attributes: Vec<(Vec<u8>, HashSet<Vec<u8>>)> = values
            .into_iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(attribute, value)| (attribute.as_bytes().to_vec(), value))
            .collect();
        attributes.push((b"objectClass".to_vec(), single(IMAGE_CLASS)));
        attributes.push((b"cn".to_vec(), single(desired.name.as_str())));
        self.add(&dn, attributes).await?;
        Ok(ImageWrite::Created)
    }

    /// The image `name` with the module aliases kept with it (empty when
    /// its kernels have none), if there is one: one read.
    #[instrument(skip(self))]
    pub async fn image_with_aliases(
        &self,
        name: &ImageName,
    ) -> Result<Option<(ImageEntry, String)>> {
        let dn = self.layout().image_dn(name);
        let mut attributes = IMAGE_ATTRIBUTES.to_vec();
        attributes.push(DRIVER_ALIASES);
        let Some(entry) = self.read(&dn, &attributes).await? else {
            return Ok(None);
        };
        let aliases = entry.text(DRIVER_ALIASES).unwrap_or_default().to_owned();
        Ok(Some((image_entry(&entry)?, aliases)))
    }

    /// The image `name`, if there is one.
    #[instrument(skip(self))]
    pub async fn image(&self, name: &ImageName) -> Result<Option<ImageEntry>> {
        let dn = self.layout().image_dn(name);
        self.read(&dn, IMAGE_ATTRIBUTES)
            .await?
            .map(|entry| image_entry(&entry))
            .transpose()
    }

    /// Every image, by name: one search. An entry that does not read as
    /// an image is an error naming it.
    #[instrument(skip(self))]
    pub async fn images(&self) -> Result<Vec<ImageEntry>> {
        let found = self
            .search_if_present(
                self.layout().images(),
                Scope::OneLevel,
                &format!("(objectClass={IMAGE_CLASS})"),
                IMAGE_ATTRIBUTES,
            )
            .await?;
        let mut images = found.iter().map(image_entry).collect::<Result<Vec<_>>>()?;
        images.sort_by(|a, b| a.description.name.cmp(&b.description.name));
        Ok(images)
    }

    /// The manifest digest of every image: what the content store keeps
    /// (with the files each manifest names). One search; entries that do
    /// not name a well-formed digest are skipped, so a hand-made entry
    /// cannot stop a collection.
    #[instrument(skip(self))]
    pub async fn image_manifests(&self) -> Result<Vec<Sha256>> {
        let found = self
            .search_if_present(
                self.layout().images(),
                Scope::OneLevel,
                &format!("(objectClass={IMAGE_CLASS})"),
                &[MANIFEST],
            )
            .await?;
        Ok(found
            .iter()
            .filter_map(|entry| entry.text(MANIFEST))
            .filter_map(|text| Sha256::new(text).ok())
            .collect())
    }

    /// Sets the rule a target's hardware must meet for image `name`;
    /// false when there is no such image.
    #[instrument(skip(self))]
    pub async fn set_image_compatibility(
        &self,
        name: &ImageName,
        compatibility: &roleout_model::image::Compatibility,
    ) -> Result<bool> {
        let Some(mut image) = self.image(name).await? else {
            return Ok(false);
        };
        image.description.compatibility = compatibility.clone();
        let json = serde_json::to_string(&image.description)
            .map_err(|error| DirectoryError::mapping(&image.dn, DESCRIPTION, error.to_string()))?;
        self.modify(
            &image.dn,
            vec![Mod::Replace(DESCRIPTION.as_bytes().to_vec(), single(json))],
        )
        .await?;
        Ok(true)
    }

    /// Removes image `name`; false when there was none. Its files go with
    /// the content store's next collection, unless another image names
    /// them.
    #[instrument(skip(self))]
    pub async fn delete_image(&self, name: &ImageName) -> Result<bool> {
        let dn = self.layout().image_dn(name);
        match self.delete(&dn).await {
            Ok(()) => Ok(true),
            Err(error) if error.is_no_such_object() => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Records installation engine `name` at `url` (with its certificate's
    /// fingerprint), seen now: added, or its entry brought up to date.
    #[instrument(skip(self))]
    pub async fn register_engine(
        &self,
        name: &MachineId,
        url: &str,
        fingerprint: Option<&Sha256>,
        seen: &str,
    ) -> Result<()> {
        let dn = self.layout().engine_dn(name);
        let fingerprint: HashSet<Vec<u8>> = fingerprint
            .map(|digest| single(digest.as_str()))
            .unwrap_or_default();
        if self.read(&dn, &["cn"]).await?.is_some() {
            return self
                .modify(
                    &dn,
                    vec![
                        Mod::Replace(ENGINE_URL.as_bytes().to_vec(), single(url)),
                        Mod::Replace(FINGERPRINT.as_bytes().to_vec(), fingerprint),
                        Mod::Replace(LAST_SEEN.as_bytes().to_vec(), single(seen)),
                    ],
                )
                .await;
        }
        self.ensure_container(self.layout().engines(), "engines")
            .await?;
        let mut attributes = vec![
            (b"objectClass".to_vec(), single(ENGINE_CLASS)),
            (b"cn".to_vec(), single(name.as_str())),
            (ENGINE_URL.as_bytes().to_vec(), single(url)),
            (LAST_SEEN.as_bytes().to_vec(), single(seen)),
        ];
        if !fingerprint.is_empty() {
            attributes.push((FINGERPRINT.as_bytes().to_vec(), fingerprint));
        }
        match self.add(&dn, attributes).await {
            // Another roleoutd of the same name registered meanwhile.
            Err(error) if error.is_already_exists() => Ok(()),
            other => other,
        }
    }

    /// Whether `name` is a registered installation engine: one read of its
    /// entry.
    #[instrument(skip(self))]
    pub async fn is_engine(&self, name: &str) -> Result<bool> {
        let Ok(name) = MachineId::new(name) else {
            return Ok(false);
        };
        let dn = self.layout().engine_dn(&name);
        Ok(self.read(&dn, &["cn"]).await?.is_some())
    }

    /// Every installation engine, by name: one search.
    #[instrument(skip(self))]
    pub async fn engines(&self) -> Result<Vec<EngineEntry>> {
        let found = self
            .search_if_present(
                self.layout().engines(),
                Scope::OneLevel,
                &format!("(objectClass={ENGINE_CLASS})"),
                ENGINE_ATTRIBUTES,
            )
            .await?;
        let mut engines = Vec::with_capacity(found.len());
        for entry in &found {
            let name = entry.text("cn").ok_or_else(|| {
                DirectoryError::mapping(&entry.dn, "cn", "an engine needs a name")
            })?;
            let certificate_fingerprint = entry
                .text(FINGERPRINT)
                .map(|text| {
                    Sha256::new(text).map_err(|error| {
                        DirectoryError::mapping(&entry.dn, FINGERPRINT, error.to_string())
                    })
                })
                .transpose()?;
            engines.push(EngineEntry {
                name: name.to_owned(),
                url: entry.text(ENGINE_URL).map(str::to_owned),
                certificate_fingerprint,
                last_seen: entry.text(LAST_SEEN).map(str::to_owned),
            });
        }
        engines.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(engines)
    }

    /// Makes the machine at `dn` an imaging source (it may upload images
    /// of itself), or no longer one.
    #[instrument(skip(self))]
    pub async fn set_imaging_source(&self, dn: &str, source: bool) -> Result<()> {
        let value: HashSet<Vec<u8>> = if source {
            single("TRUE")
        } else {
            HashSet::new()
        };
        self.modify(
            dn,
            vec![Mod::Replace(b"roleoutImagingSource".to_vec(), value)],
        )
        .await
    }

    /// Records that the machine at `dn` is reached through engine `engine`.
    #[instrument(skip(self))]
    pub async fn set_machine_engine(&self, dn: &str, engine: &str) -> Result<()> {
        self.modify(
            dn,
            vec![Mod::Replace(b"roleoutEngine".to_vec(), single(engine))],
        )
        .await
    }

    /// The imaging sources: every machine an admin made one. One search.
    #[instrument(skip(self))]
    pub async fn imaging_sources(&self) -> Result<Vec<crate::machines::MachineEntry>> {
        let mut machines = self.machines().await?;
        machines.retain(|machine| machine.imaging_source);
        Ok(machines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_capture_time_may_differ_for_an_image_to_be_the_same() {
        let json = r#"{"format":"roleout-image/1","name":"web","captured-at":1,
            "manifest":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "entries":1,"data-bytes":0,
            "hardware":{"arch":"x86_64","firmware":"bios","cpu":{"model":"m","vendor":"v","logical":1,"sockets":1},"memory-bytes":1,"disks":[],"nics":[],"pci":[]},
            "os":{"os-release":{},"packages":[],"network":[],"kernels":[]},"partitions":[]}"#;
        let Ok(first) = serde_json::from_str::<ImageDescription>(json) else {
            panic!("sample description");
        };
        let mut later = first.clone();
        later.captured_at = 99;
        assert!(same_image(&first, &later));
        later.partitions.push(roleout_model::image::Partition {
            mount_point: "/".to_owned(),
            fs_type: "ext4".to_owned(),
            device: "/dev/vda1".to_owned(),
            size_bytes: 10,
            used_bytes: 5,
            growable: true,
            data_bytes: 0,
            table: None,
        });
        assert!(!same_image(&first, &later));
        let mut in_use = later.clone();
        in_use.partitions[0].used_bytes = 7;
        assert!(same_image(&later, &in_use));
        later.entries = 2;
        assert!(!same_image(&first, &later));
    }
}
