//! Private key files: PKCS#8 DER of mode 0600, written atomically so that a
//! crash never leaves a half-written or readable key, and refused when
//! group or others may read them.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ring::rand::{SecureRandom, SystemRandom};
use roleout_model::keys::{KeyError, MachineKey};

/// Why a key file could not be written, read or used.
///
/// No variant carries key material: these messages go to logs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The private key file could not be written.
    #[error("could not write private key file {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The private key file could not be read.
    #[error("could not read private key file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The private key file is open to other users.
    #[error(
        "private key file {path} has mode {mode:04o}: group or others may access it; \
         it must be 0600 (chmod 600 it, or make a new key)"
    )]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file holds no key Roleout can use.
    #[error("private key file {path}: {source}")]
    Key {
        /// The file.
        path: PathBuf,
        /// Why the key cannot be used.
        source: KeyError,
    },
}

/// Reads and loads a machine's private key file written by
/// [`write_private_key`].
pub fn read_machine_key(path: &Path) -> Result<MachineKey, KeyFileError> {
    MachineKey::from_pkcs8(&read_private_key(path)?).map_err(|source| KeyFileError::Key {
        path: path.to_owned(),
        source,
    })
}

/// Writes private key bytes to `path` with mode 0600, atomically.
///
/// The bytes go to a new temporary file in the same directory, created with
/// mode 0600 and set to 0600 again before any byte is written (so no other
/// user can open it at any point, whatever the umask), flushed to disk, then
/// renamed over `path`. A reader sees the old file or the whole new one,
/// never a partial key, and an existing file with looser permissions is
/// replaced, not rewritten in place.
pub fn write_private_key(path: &Path, pkcs8: &[u8]) -> Result<(), KeyFileError> {
    let write_error = |source| KeyFileError::Write {
        path: path.to_owned(),
        source,
    };
    let file_name = path.file_name().ok_or_else(|| {
        write_error(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path does not name a file",
        ))
    })?;
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut suffix = [0_u8; 8];
    SystemRandom::new().fill(&mut suffix).map_err(|_| {
        write_error(io::Error::other(
            "no randomness available from the system for the temporary name",
        ))
    })?;
    let suffix: String = suffix.iter().map(|byte| format!("{byte:02x}")).collect();
    let mut temporary_name = std::ffi::OsString::from(".");
    temporary_name.push(file_name);
    temporary_name.push(format!(".{suffix}.tmp"));
    let temporary = directory.join(temporary_name);

    let result = write_then_rename(&temporary, path, directory, pkcs8);
    if result.is_err() {
        // Best effort: the temporary file may not exist if creation failed.
        let _ = fs::remove_file(&temporary);
    }
    result.map_err(write_error)
}

fn write_then_rename(
    temporary: &Path,
    path: &Path,
    directory: &Path,
    bytes: &[u8],
) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(temporary)?;
    file.set_permissions(Permissions::from_mode(0o600))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(temporary, path)?;
    // Make the rename itself durable.
    File::open(directory)?.sync_all()
}

/// Reads a private key file, refusing one that group or others may access
/// (as OpenSSH does): such a key may already be known to someone else.
pub fn read_private_key(path: &Path) -> Result<Vec<u8>, KeyFileError> {
    let read_error = |source| KeyFileError::Read {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(read_error)?;
    let mode = file.metadata().map_err(read_error)?.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::TooOpen {
            path: path.to_owned(),
            mode,
        });
    }
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut file, &mut bytes).map_err(read_error)?;
    Ok(bytes)
}

#[cfg(test)]
// In tests a panic is the failure report.
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::SystemTime;

    use roleout_model::ids::MachineId;
    use roleout_model::keys::{DEFAULT_CERTIFICATE_VALIDITY, KeyAlgorithm, generate_identity};

    use super::*;

    fn machine() -> MachineId {
        MachineId::new("ws-0001").unwrap()
    }

    #[test]
    fn private_key_files_are_0600_and_replace_looser_files() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("machine.key");
        fs::write(&path, b"old").unwrap();
        fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();
        let error = read_private_key(&path).unwrap_err();
        assert!(
            matches!(error, KeyFileError::TooOpen { mode: 0o644, .. }),
            "{error}"
        );

        let identity = generate_identity(
            &machine(),
            KeyAlgorithm::EcdsaP256,
            SystemTime::now(),
            DEFAULT_CERTIFICATE_VALIDITY,
        )
        .unwrap();
        write_private_key(&path, identity.private_key_pkcs8()).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            read_private_key(&path).unwrap(),
            identity.private_key_pkcs8()
        );
        let key = read_machine_key(&path).unwrap();
        assert_eq!(key.algorithm(), KeyAlgorithm::EcdsaP256);
        // Nothing but the key is left behind in the directory.
        let names: Vec<_> = fs::read_dir(directory.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("machine.key")]);
    }

    #[test]
    fn writing_into_a_missing_directory_names_the_file() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("missing").join("machine.key");
        let error = write_private_key(&path, b"key").unwrap_err();
        assert!(error.to_string().contains("missing/machine.key"), "{error}");
    }
}
