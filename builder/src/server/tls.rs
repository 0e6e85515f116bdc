//! TLS for roleoutd: either PEM files the admin gives, or a self-signed
//! certificate that roleoutd makes on first start and keeps in its state
//! directory, so installers can pin it across restarts.
//!
//! The whole workspace uses rustls with the `ring` provider only; the
//! provider is passed explicitly, so no process-wide default is needed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::config::TlsChoice;

/// TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A PEM file holds no usable certificate or key.
    #[error("{path}: {message}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The certificate could not be made.
    #[error("cannot make the self-signed certificate: {0}")]
    Generate(String),
    /// rustls refused the certificate or key.
    #[error("the TLS certificate and key do not work together: {0}")]
    Config(String),
}

/// The certificate roleoutd serves, as files on disk.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
}

/// Where the self-signed certificate lives under the state directory.
pub fn self_signed_paths(state_dir: &Path) -> TlsFiles {
    TlsFiles {
        cert: state_dir.join("tls").join("cert.pem"),
        key: state_dir.join("tls").join("key.pem"),
    }
}

/// Returns the files to serve: the given ones, or the kept self-signed
/// pair (made now if missing). `None` for plain HTTP.
pub fn prepare(
    choice: &TlsChoice,
    state_dir: &Path,
    validity: std::time::Duration,
) -> Result<Option<TlsFiles>, TlsError> {
    match choice {
        TlsChoice::Off => Ok(None),
        TlsChoice::Files { cert, key } => Ok(Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        })),
        TlsChoice::SelfSigned { names } => {
            let files = self_signed_paths(state_dir);
            if !files.cert.exists() || !files.key.exists() {
                make_self_signed(names, &files, validity)?;
            }
            Ok(Some(files))
        }
    }
}

/// Makes a self-signed certificate for `names` valid from now (less an
/// hour, for clocks slightly behind) for `validity`, and its key, at
/// `files`. Machines pin it; a rotation (`--rotate`) announces the next
/// one to them before it is served.
pub fn make_self_signed(
    names: &[String],
    files: &TlsFiles,
    validity: std::time::Duration,
) -> Result<(), TlsError> {
    let key = rcgen::KeyPair::generate().map_err(|error| TlsError::Generate(error.to_string()))?;
    let mut params = rcgen::CertificateParams::new(names.to_vec())
        .map_err(|error| TlsError::Generate(error.to_string()))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "roleoutd");
    let now = std::time::SystemTime::now();
    params.not_before = time::OffsetDateTime::from(now - std::time::Duration::from_secs(3600));
    params.not_after = time::OffsetDateTime::from(now + validity);
    let cert = params
        .self_signed(&key)
        .map_err(|error| TlsError::Generate(error.to_string()))?;
    if let Some(dir) = files.cert.parent() {
        std::fs::create_dir_all(dir).map_err(|source| TlsError::Io {
            action: "cannot create",
            path: dir.to_owned(),
            source,
        })?;
    }
    write_private(&files.key, key.serialize_pem().as_bytes())?;
    std::fs::write(&files.cert, cert.pem()).map_err(|source| TlsError::Io {
        action: "cannot write",
        path: files.cert.clone(),
        source,
    })
}

/// Writes a file readable by its owner only, created with that mode so no
/// other user can open it in between.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| TlsError::Io {
        action: "cannot write",
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)
}

/// Builds the rustls server configuration for `files`.
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|error| TlsError::Pem {
            path: files.cert.clone(),
            message: error.to_string(),
        })?
        .collect::<Result<_, _>>()
        .map_err(|error| TlsError::Pem {
            path: files.cert.clone(),
            message: error.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: files.cert.clone(),
            message: "no certificate in the file".to_owned(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|error| TlsError::Pem {
        path: files.key.clone(),
        message: error.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| TlsError::Config(error.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|error| TlsError::Config(error.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_self_signed_certificate_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let choice = TlsChoice::SelfSigned {
            names: vec!["localhost".to_owned(), "127.0.0.1".to_owned()],
        };
        let year = std::time::Duration::from_secs(365 * 24 * 3600);
        let files = prepare(&choice, dir.path(), year).unwrap().unwrap();
        let first = std::fs::read(&files.cert).unwrap();
        let again = prepare(&choice, dir.path(), year).unwrap().unwrap();
        assert_eq!(std::fs::read(&again.cert).unwrap(), first);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&files.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        server_config(&files).unwrap();
    }

    #[test]
    fn a_file_without_a_certificate_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("empty.pem");
        std::fs::write(&cert, "").unwrap();
        let files = TlsFiles {
            key: cert.clone(),
            cert,
        };
        let error = server_config(&files).unwrap_err();
        assert!(error.to_string().contains("empty.pem"), "{error}");
    }
}
