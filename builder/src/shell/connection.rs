//! The session's connection to the directory, made on first use and kept
//! until the session ends.
//!
//! With a state directory the shell uses the managed local slapd: it
//! attaches to the one roleoutd (or another shell) already runs there, or
//! starts its own and stops it when the session ends. With URLs it binds as
//! the session says (simple bind with the given DN and password, else SASL
//! EXTERNAL). The shell is synchronous; the directory crate is async, so
//! the connection owns a current-thread runtime and runs each call to
//! completion on it.

use std::future::Future;
use std::path::Path;

use roleout_directory::{Bind, Directory, LocalDirectory, Settings};

use super::commands::CommandError;
use super::session::{Session, Target};

/// An open connection.
pub struct Connection {
    runtime: tokio::runtime::Runtime,
    directory: Directory,
    // Kept so that the slapd this session started runs until it ends.
    _local: Option<LocalDirectory>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("base", &self.directory.layout().base())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Opens the connection the session describes.
    pub fn open(session: &Session) -> Result<Connection, CommandError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| CommandError::Failed(format!("cannot start the runtime: {error}")))?;
        let (settings, local) = match session.target() {
            Target::StateDirectory(state_dir) => managed(state_dir)?,
            Target::Urls(urls) => (remote(session, urls)?, None),
        };
        let (machines, roles) = session.scopes();
        let settings = settings.with_scopes(machines, roles);
        settings
            .validate()
            .map_err(|error| CommandError::Usage(error.to_string()))?;
        let directory = runtime
            .block_on(Directory::connect(&settings))
            .map_err(|error| CommandError::Failed(format!("cannot connect: {error}")))?;
        Ok(Connection {
            runtime,
            directory,
            _local: local,
        })
    }

    /// The directory.
    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// Runs `future` (a directory call) to completion.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }
}

/// Where the managed slapd of a state directory keeps its files.
pub fn slapd_dir(state_dir: &Path) -> std::path::PathBuf {
    state_dir.join("ldap")
}

fn managed(state_dir: &Path) -> Result<(Settings, Option<LocalDirectory>), CommandError> {
    let slapd = slapd_dir(state_dir);
    if let Some(settings) = LocalDirectory::attach(&slapd, "dc=example,dc=org") {
        return Ok((settings, None));
    }
    let local = LocalDirectory::persistent(&slapd).map_err(|error| {
        CommandError::Failed(format!(
            "cannot start the managed directory in {}: {error}",
            slapd.display()
        ))
    })?;
    Ok((local.settings(), Some(local)))
}

fn remote(session: &Session, urls: &[String]) -> Result<Settings, CommandError> {
    let mut settings = Settings::new(urls.iter().cloned());
    if let Some(base) = session.base_dn() {
        settings = settings.with_base(base);
    }
    if session.starttls() {
        settings = settings.with_starttls();
    }
    if let Some(ca) = session.ldap_ca_certificate() {
        settings = settings.with_ca_certificate(ca);
    }
    let bind = match session.bind_dn() {
        None => Bind::SaslExternal,
        Some(dn) => {
            let password = match (session.bind_password(), session.bind_password_file()) {
                (Some(secret), _) => secret.expose().to_owned(),
                (None, Some(file)) => std::fs::read_to_string(file)
                    .map_err(|error| {
                        CommandError::Failed(format!(
                            "cannot read the bind password file {}: {error}",
                            file.display()
                        ))
                    })?
                    .trim_end_matches(['\n', '\r'])
                    .to_owned(),
                (None, None) => {
                    return Err(CommandError::Failed(format!(
                        "no password for {dn}: use `bind` or --bind-password-file"
                    )));
                }
            };
            Bind::Simple {
                dn: dn.to_owned(),
                password: roleout_directory::Secret::new(password),
            }
        }
    };
    Ok(settings.with_bind(bind))
}
