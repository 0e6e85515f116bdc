//! What an admin's session carries from one command to the next: where the
//! directory is and how to bind to it, and where in the Roleout tree the
//! admin stands (as `cd` moves it). The prompt is drawn from it.

use std::cell::RefCell;
use std::fmt;
use std::path::PathBuf;

use roleout_directory::SearchScope;

use crate::admin::browse::{FOLDERS, Names};

use super::cli::ConnectionOptions;
use super::commands::CommandError;

/// Where the directory is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The managed local slapd of a state directory.
    StateDirectory(PathBuf),
    /// A directory server at these URLs, tried in order.
    Urls(Vec<String>),
}

/// A secret kept in memory: it prints as `[redacted]`, so it cannot reach a
/// log or a report through `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: String) -> Secret {
        Secret(secret)
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("[redacted]")
    }
}

/// A place in the Roleout tree, as an absolute path like `/suites/domino`.
/// It is always normalised: it starts with `/`, has no empty, `.` or `..`
/// components and no trailing `/` (except the root itself).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location(String);

impl Location {
    /// The top of the tree, `/`.
    pub fn root() -> Location {
        Location(String::from("/"))
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The components below the root, outermost first.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|component| !component.is_empty())
    }

    /// Where `path` leads from here: an absolute path starts again from the
    /// root, `..` goes up (and stays at the root at the top), `.` and empty
    /// components are ignored.
    pub fn join(&self, path: &str) -> Location {
        let mut components: Vec<&str> = if path.starts_with('/') {
            Vec::new()
        } else {
            self.components().collect()
        };
        for component in path.split('/') {
            match component {
                "" | "." => {}
                ".." => {
                    components.pop();
                }
                other => components.push(other),
            }
        }
        Location(format!("/{}", components.join("/")))
    }
}

impl fmt::Display for Location {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// What kind of name an argument takes, for completion. An argument
/// declared with `value_hint = ValueHint::Other` completes through
/// [`Session::complete_names`] with the kind named by its `value_name`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameKind {
    /// A place in the Roleout tree (`value_name = "PATH"` or `"LOCATION"`),
    /// as `cd` and `ls` take.
    Location,
    /// Any other kind of object, by its value name in lower case
    /// (`"role"`, `"machine"`, `"suite"`...).
    Object(String),
}

impl NameKind {
    /// The kind an argument's value name stands for.
    pub fn from_value_name(value_name: &str) -> NameKind {
        match value_name {
            "PATH" | "LOCATION" => NameKind::Location,
            other => NameKind::Object(other.to_lowercase()),
        }
    }
}

/// The state of one admin's session.
#[derive(Debug)]
pub struct Session {
    target: Target,
    bind_dn: Option<String>,
    bind_password_file: Option<PathBuf>,
    bind_password: Option<Secret>,
    base_dn: Option<String>,
    starttls: bool,
    ldap_ca_certificate: Option<PathBuf>,
    machines: SearchScope,
    roles: SearchScope,
    connected_base_dn: Option<String>,
    location: Location,
    connection: Option<super::connection::Connection>,
    // The names completion offers: read on the first completion once
    // connected, dropped by commands that change the directory. A cell,
    // because completion only borrows the session.
    names: RefCell<Option<Names>>,
}

impl Session {
    /// A session from the connection options of the command line; a URL
    /// that is not `ldap://`, `ldaps://` or `ldapi://` is a usage error.
    pub fn new(options: ConnectionOptions) -> Result<Session, CommandError> {
        for url in &options.urls {
            let scheme_known = ["ldap://", "ldaps://", "ldapi://"]
                .iter()
                .any(|scheme| url.starts_with(scheme));
            if !scheme_known {
                return Err(CommandError::Usage(format!(
                    "--url {url}: a directory URL starts with ldap://, ldaps:// or ldapi://"
                )));
            }
        }
        let target = if options.urls.is_empty() {
            Target::StateDirectory(options.state_dir)
        } else {
            Target::Urls(options.urls)
        };
        Ok(Session {
            target,
            bind_dn: options.bind_dn,
            bind_password_file: options.bind_password_file,
            bind_password: None,
            base_dn: options.base_dn,
            starttls: options.starttls,
            ldap_ca_certificate: options.ldap_ca_certificate,
            machines: SearchScope {
                base: options.machine_base,
                filter: options.machine_filter,
            },
            roles: SearchScope {
                base: options.role_base,
                filter: options.role_filter,
            },
            connected_base_dn: None,
            location: Location::root(),
            connection: None,
            names: RefCell::new(None),
        })
    }

    /// The connection to the directory, opened on first use (a `bind`
    /// drops it, so the next command binds anew).
    pub fn connection(&mut self) -> Result<&super::connection::Connection, CommandError> {
        if self.connection.is_none() {
            let connection = super::connection::Connection::open(self)?;
            self.connected_base_dn = Some(connection.directory().layout().base().to_owned());
            self.connection = Some(connection);
        }
        match &self.connection {
            Some(connection) => Ok(connection),
            None => Err(CommandError::Failed("not connected".to_owned())),
        }
    }

    /// Where the directory is.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The DN to bind as, if one was given.
    pub fn bind_dn(&self) -> Option<&str> {
        self.bind_dn.as_deref()
    }

    /// The file holding the bind password, if one was given.
    pub fn bind_password_file(&self) -> Option<&PathBuf> {
        self.bind_password_file.as_ref()
    }

    /// The bind password typed in this session (by `bind`), if any; it
    /// takes precedence over the password file.
    pub fn bind_password(&self) -> Option<&Secret> {
        self.bind_password.as_ref()
    }

    /// Sets the DN and password the next connection binds with.
    pub fn set_credentials(&mut self, bind_dn: String, password: Secret) {
        self.connection = None;
        self.bind_dn = Some(bind_dn);
        self.bind_password = Some(password);
    }

    /// Whether StartTLS was asked for on ldap:// URLs.
    pub fn starttls(&self) -> bool {
        self.starttls
    }

    /// The PEM file of certificates trusted for ldaps:// and StartTLS.
    pub fn ldap_ca_certificate(&self) -> Option<&PathBuf> {
        self.ldap_ca_certificate.as_ref()
    }

    /// Where machines and role groups are searched for, as the command
    /// line says.
    pub fn scopes(&self) -> (SearchScope, SearchScope) {
        (self.machines.clone(), self.roles.clone())
    }

    /// The base DN asked for on the command line, if any.
    pub fn base_dn(&self) -> Option<&str> {
        self.base_dn.as_deref()
    }

    /// Records that the session is connected to a directory under
    /// `base_dn` (or, with `None`, that it no longer is); the prompt shows it.
    pub fn set_connected_base_dn(&mut self, base_dn: Option<String>) {
        self.connected_base_dn = base_dn;
    }

    /// Where in the tree the admin stands.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Moves the admin to `location`.
    pub fn set_location(&mut self, location: Location) {
        self.location = location;
    }

    /// The shell's prompt: `roleout BASE:LOCATION> `, where BASE is the base
    /// DN once connected and the state directory or first URL before.
    pub fn prompt(&self) -> String {
        let base = match (&self.connected_base_dn, &self.target) {
            (Some(base_dn), _) => base_dn.clone(),
            (None, Target::StateDirectory(directory)) => directory.display().to_string(),
            (None, Target::Urls(urls)) => urls.first().cloned().unwrap_or_default(),
        };
        format!("roleout {base}:{}> ", self.location)
    }

    /// Forgets the names read for completion, so the next completion
    /// reads them again; commands that change the directory call it.
    pub fn forget_names(&mut self) {
        *self.names.get_mut() = None;
    }

    /// Sets the names completion offers (as read by a command, or by
    /// tests).
    pub fn remember_names(&mut self, names: Names) {
        *self.names.get_mut() = Some(names);
    }

    /// The names of the given kind that start with `prefix`, for
    /// completion: product and suite ids, role and machine names, and for
    /// a location the paths of the tree (relative paths stay relative).
    /// The names are read once per session, on the first completion after
    /// the session has connected; completion never opens a connection (that
    /// may start a slapd) and never fails: a failed read offers nothing.
    pub fn complete_names(&self, kind: &NameKind, prefix: &str) -> Vec<String> {
        if self.names.borrow().is_none()
            && let Some(connection) = &self.connection
            && let Ok(names) = connection.block_on(Names::read(connection.directory()))
        {
            *self.names.borrow_mut() = Some(names);
        }
        let names = self.names.borrow();
        let empty = Names::default();
        let names = names.as_ref().unwrap_or(&empty);
        let candidates: Vec<String> = match kind {
            NameKind::Location => location_candidates(&self.location, names, prefix),
            NameKind::Object(object) => match object.as_str() {
                "product" => names.products.clone(),
                "suite" => names.suites.clone(),
                "role" => names.roles.clone(),
                "machine" => names.machines.clone(),
                // `version` and `diff` take a product or a suite.
                "product-or-suite" => [names.products.clone(), names.suites.clone()].concat(),
                _ => Vec::new(),
            },
        };
        let mut matching: Vec<String> = candidates
            .into_iter()
            .filter(|candidate| candidate.starts_with(prefix))
            .collect();
        matching.sort();
        matching.dedup();
        matching
    }
}

/// The paths one level below the folder part of `prefix` (everything up
/// to its last `/`), written as the admin started them.
fn location_candidates(here: &Location, names: &Names, prefix: &str) -> Vec<String> {
    let (folder_text, _) = match prefix.rfind('/') {
        Some(index) => prefix.split_at(index + 1),
        None => ("", prefix),
    };
    let folder = here.join(folder_text);
    let components: Vec<&str> = folder.components().collect();
    match components.as_slice() {
        [] => FOLDERS
            .iter()
            .map(|name| format!("{folder_text}{name}/"))
            .collect(),
        [kind] => names
            .in_folder(kind)
            .iter()
            .map(|name| format!("{folder_text}{name}"))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> ConnectionOptions {
        ConnectionOptions {
            state_dir: PathBuf::from("./roleout-state"),
            urls: Vec::new(),
            bind_dn: None,
            bind_password_file: None,
            base_dn: None,
            starttls: false,
            ldap_ca_certificate: None,
            machine_base: None,
            machine_filter: None,
            role_base: None,
            role_filter: None,
        }
    }

    #[test]
    fn locations_normalise() {
        let suites = Location::root().join("suites/domino/");
        assert_eq!(suites.as_str(), "/suites/domino");
        assert_eq!(suites.join("..").as_str(), "/suites");
        assert_eq!(suites.join("../../../..").as_str(), "/");
        assert_eq!(suites.join("/roles//./admin").as_str(), "/roles/admin");
        assert_eq!(suites.join(".").as_str(), "/suites/domino");
        assert_eq!(
            suites.components().collect::<Vec<_>>(),
            vec!["suites", "domino"]
        );
    }

    #[test]
    fn prompt_shows_where_the_admin_is() -> Result<(), CommandError> {
        let mut session = Session::new(options())?;
        assert_eq!(session.prompt(), "roleout ./roleout-state:/> ");
        session.set_location(Location::root().join("/suites/domino"));
        session.set_connected_base_dn(Some(String::from("dc=example,dc=org")));
        assert_eq!(
            session.prompt(),
            "roleout dc=example,dc=org:/suites/domino> "
        );
        let remote = Session::new(ConnectionOptions {
            urls: vec![String::from("ldaps://ldap.example.org")],
            ..options()
        })?;
        assert_eq!(remote.prompt(), "roleout ldaps://ldap.example.org:/> ");
        Ok(())
    }

    #[test]
    fn unknown_url_schemes_are_usage_errors() {
        let refused = Session::new(ConnectionOptions {
            urls: vec![String::from("http://ldap.example.org")],
            ..options()
        });
        match refused {
            Err(CommandError::Usage(message)) => assert!(message.contains("http://"), "{message}"),
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn completion_offers_names_and_paths() -> Result<(), CommandError> {
        let mut session = Session::new(options())?;
        // Before any name is read, the folders are still known.
        assert_eq!(
            session.complete_names(&NameKind::Location, "/s"),
            vec!["/suites/"]
        );
        session.remember_names(Names {
            products: vec![String::from("notes-client"), String::from("jre")],
            suites: vec![String::from("domino")],
            roles: vec![String::from("developer")],
            machines: vec![String::from("ws-001")],
        });
        let product = NameKind::Object(String::from("product"));
        assert_eq!(session.complete_names(&product, "no"), vec!["notes-client"]);
        assert_eq!(
            session.complete_names(&NameKind::Location, "/p"),
            vec!["/products/"]
        );
        assert_eq!(
            session.complete_names(&NameKind::Location, "/products/j"),
            vec!["/products/jre"]
        );
        session.set_location(Location::root().join("/roles"));
        assert_eq!(
            session.complete_names(&NameKind::Location, ""),
            vec!["developer"]
        );
        assert_eq!(
            session.complete_names(&NameKind::Location, "../s"),
            vec!["../suites/"]
        );
        session.forget_names();
        assert!(session.complete_names(&product, "").is_empty());
        Ok(())
    }

    #[test]
    fn secrets_do_not_print() {
        let secret = Secret::new(String::from("hunter2"));
        assert_eq!(format!("{secret} {secret:?}"), "[redacted] [redacted]");
        assert_eq!(secret.expose(), "hunter2");
    }
}
