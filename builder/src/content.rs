//! What roleoutd keeps in the content store (`roleout_store::content`,
//! shared with the agent and the image engine): payloads imported with
//! their descriptors, report logs, and what the directory still names, so
//! the rest can be collected.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use roleout_directory::Directory;
use roleout_directory::catalog::CatalogError;
use roleout_model::ids::{MachineId, Sha256};
use roleout_model::product::ProductSource;
use roleout_model::protocol::{AckStatus, StatusReport};
pub use roleout_store::content::{
    Collected, ContentStore, Synced, digest_of, file_digest, parse_digest,
};

/// What went wrong with the content store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContentError {
    /// The content store refused or failed.
    #[error(transparent)]
    Store(#[from] roleout_store::content::ContentError),
    /// A payload file does not have the size its descriptor gives.
    #[error(
        "{path}: expected {expected} bytes (as product {product} says), but the file has {actual}"
    )]
    SizeMismatch {
        /// The file.
        path: String,
        /// The product describing it.
        product: String,
        /// The size the descriptor gives.
        expected: u64,
        /// The file's size.
        actual: u64,
    },
    /// A descriptor names a payload path that could leave the payload
    /// folder.
    #[error("product {product} names payload {path:?}, which is not a plain relative path")]
    UnsafePath {
        /// The product.
        product: String,
        /// The path.
        path: String,
    },
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Several payloads failed to import; each is listed.
    #[error("{} payload file(s) could not be imported:\n{}", .0.len(), list(.0))]
    Payloads(Vec<ContentError>),
    /// The report could not be stored in the directory.
    #[error(transparent)]
    Directory(#[from] CatalogError),
}

fn list(errors: &[ContentError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

fn io_error(context: impl Into<String>) -> impl FnOnce(io::Error) -> ContentError {
    let context = context.into();
    move |source| ContentError::Io { context, source }
}

/// What [`import_payloads`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PayloadImport {
    /// Digests newly put in the store.
    pub stored: Vec<Sha256>,
    /// Digests the store already had (their files were not read).
    pub present: Vec<Sha256>,
}

/// Everything the directory names that lives in `store`: every payload
/// of every role version of every product, every log a stored report
/// names, and every image's manifest with every file it names, and those of
/// jobs not over (five searches, and each manifest read from the store). A manifest
/// the store holds but cannot read stops the answer with an error, so a
/// collection never removes an image's files because its manifest was
/// damaged; a manifest the store lacks names nothing to keep.
pub async fn referenced_content(
    directory: &Directory,
    store: &ContentStore,
) -> Result<BTreeSet<Sha256>, ContentError> {
    let (_, products) = directory.export_catalog().await?;
    let mut referenced = directory.referenced_log_digests().await?;
    for product in &products {
        for version in &product.fileset.versions {
            referenced.extend(version.value.files.iter().map(|file| file.sha256.clone()));
        }
    }
    let mut manifests = directory
        .image_manifests()
        .await
        .map_err(CatalogError::from)?;
    // A job not over keeps the image it was started with, even when the
    // image was captured again or removed since.
    let jobs = directory.deployments().await.map_err(CatalogError::from)?;
    manifests.extend(
        jobs.into_iter()
            .filter(|job| job.targets.iter().any(|target| !target.phase.is_final()))
            .map(|job| job.deployment.manifest),
    );
    for manifest in manifests {
        let path = store.path_of(&manifest);
        let bytes = match tokio::fs::read(&path).await {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(ContentError::Io {
                    context: format!("cannot read image manifest {}", path.display()),
                    source,
                });
            }
        };
        let parsed =
            roleout_model::tree::Manifest::parse(&bytes).map_err(|error| ContentError::Io {
                context: format!("image manifest {}", path.display()),
                source: io::Error::new(io::ErrorKind::InvalidData, error.to_string()),
            })?;
        referenced.extend(parsed.contents());
        referenced.insert(manifest);
    }
    Ok(referenced)
}

/// A folder of payload files, as descriptors are read with it
/// (`import --payloads`, `check --payloads`): fills in and checks the
/// digest and size of each file a file set names.
#[derive(Debug, Clone)]
pub struct PayloadDir(pub PathBuf);

impl roleout_model::descriptor::PayloadFolder for PayloadDir {
    fn digest_and_size(&self, path: &str) -> Result<(Sha256, u64), String> {
        if !is_plain_relative(path) {
            return Err(format!("{path:?} is not a plain relative path"));
        }
        let full = self.0.join(path);
        file_digest(&full).map_err(|error| format!("{}: {error}", full.display()))
    }
}

/// Whether `path` is a plain relative path (no `..`, no root, no prefix).
fn is_plain_relative(path: &str) -> bool {
    let path = Path::new(path);
    !path.as_os_str().is_empty()
        && path
            .components()
            .all(|component| matches!(component, Component::Normal(_)))
}

/// Puts every fileset file of `products` (every role version) into
/// `store`, read from `payload_dir/PATH` after checking its size and
/// SHA-256 against the descriptor. Files the store already holds are not
/// read. Every problem is collected and returned together.
pub fn import_payloads(
    store: &ContentStore,
    products: &[ProductSource],
    payload_dir: &Path,
) -> Result<PayloadImport, ContentError> {
    let mut result = PayloadImport::default();
    let mut errors = Vec::new();
    let mut seen = BTreeSet::new();
    for product in products {
        for version in &product.fileset.versions {
            for file in &version.value.files {
                if !is_plain_relative(&file.path) {
                    errors.push(ContentError::UnsafePath {
                        product: product.id.to_string(),
                        path: file.path.clone(),
                    });
                    continue;
                }
                if !seen.insert(file.sha256.clone()) {
                    continue;
                }
                if store.contains(&file.sha256) {
                    result.present.push(file.sha256.clone());
                    continue;
                }
                let path = payload_dir.join(&file.path);
                let size = match fs::metadata(&path) {
                    Ok(metadata) => metadata.len(),
                    Err(error) => {
                        errors.push(io_error(format!(
                            "payload {} of product {}",
                            path.display(),
                            product.id
                        ))(error));
                        continue;
                    }
                };
                if size != file.size {
                    errors.push(ContentError::SizeMismatch {
                        path: path.display().to_string(),
                        product: product.id.to_string(),
                        expected: file.size,
                        actual: size,
                    });
                    continue;
                }
                match store.put_file(&path, Some(&file.sha256)) {
                    Ok((digest, _)) => result.stored.push(digest),
                    Err(error) => errors.push(error.into()),
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(result)
    } else {
        Err(ContentError::Payloads(errors))
    }
}

/// Records a status report of `machine`: its log goes to `store` (when
/// there is one), then the entry with the log's digest to the directory.
/// A repeat of a stored report is [`AckStatus::Duplicate`] and changes
/// nothing (the log, being content-addressed, is the same file).
pub async fn record_report(
    directory: &Directory,
    store: &ContentStore,
    machine: &MachineId,
    report: &StatusReport,
) -> Result<AckStatus, ContentError> {
    let log_digest = if report.log.is_empty() {
        None
    } else {
        Some(store.put_bytes(report.log.as_bytes())?)
    };
    Ok(directory
        .store_report(machine, report, log_digest.as_ref())
        .await?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    #[test]
    fn payload_paths_stay_inside() {
        assert!(is_plain_relative("notes.deb"));
        assert!(is_plain_relative("sub/notes.deb"));
        for bad in ["", "/etc/passwd", "../x", "a/../../x"] {
            assert!(!is_plain_relative(bad), "{bad}");
        }
    }
}
