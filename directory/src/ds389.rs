//! A private 389 Directory Server instance set up for Roleout, as an admin
//! sets up an existing 389 server (README, "Using 389 Directory Server"):
//! Roleout's schema file in the instance's schema folder
//! (`schemas/99roleout.ldif`), the base entries (`ldif/base.ldif`) with a
//! password on each service account, and the access rules
//! ([`crate::access::ds389_access_ldif`]). It is what the tests that prove
//! Roleout on 389 run against, and a way to try Roleout on 389 without a
//! server of one's own.
//!
//! The instance is made from the package's own `template-dse.ldif`, as
//! `dscreate` makes one, but with every path in a temporary folder and a
//! free loopback port, so instances run side by side without systemd and
//! without touching `/etc/dirsrv`. The Directory Manager is reached over
//! the instance's ldapi socket by autobind (root maps to it), as
//! `ldapadd -Y EXTERNAL` does. Dropping the instance stops the server and
//! removes its folder.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{DirectoryError, Result};
use crate::layout::Layout;
use crate::local::{base_ldif, free_port, last_lines, random_password, write_file};
use crate::settings::{Bind, Secret, Settings};

/// Where Debian's 389-ds-base keeps what `dscreate` copies.
const TEMPLATE: &str = "/usr/share/dirsrv/data/template-dse.ldif";
const SYSTEM_CONFIG: &str = "/etc/dirsrv/config";
const USER_SCHEMA: &str = "/etc/dirsrv/schema/99user.ldif";

/// The suffix of the instance.
pub const SUFFIX: &str = "dc=example,dc=org";

/// The change that enables the two plugins 389 offers content
/// synchronization (RFC 4533) through, as README gives it.
pub const CONTENT_SYNC_LDIF: &str = "\
dn: cn=Retro Changelog Plugin,cn=plugins,cn=config
changetype: modify
replace: nsslapd-pluginEnabled
nsslapd-pluginEnabled: on

dn: cn=Content Synchronization,cn=plugins,cn=config
changetype: modify
replace: nsslapd-pluginEnabled
nsslapd-pluginEnabled: on
";

/// The change README.md gives for the builder's product cache: the USN
/// plugin, which keeps an `entryUSN` on every entry and changes it on
/// every write (389 keeps no `entryCSN`). It takes effect at a restart; a
/// [`Ds389Instance`] has it from its first start.
pub const USN_LDIF: &str = "\
dn: cn=USN,cn=plugins,cn=config
changetype: modify
replace: nsslapd-pluginEnabled
nsslapd-pluginEnabled: on
";

/// How long the server has to answer after it starts.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running private ns-slapd.
pub struct Ds389Instance {
    server: Option<Child>,
    folder: tempfile::TempDir,
    port: u16,
    admin_password: Secret,
    builder_password: Secret,
}

/// `dse` (the server's configuration, LDIF) with the plugin entry `dn`
/// enabled; `None` when it has no such entry.
fn plugin_enabled(dse: &str, dn: &str) -> Option<String> {
    let start = dse.find(&format!("\ndn: {dn}\n"))? + 1;
    let end = dse[start..]
        .find("\n\n")
        .map_or(dse.len(), |offset| start + offset);
    let entry = &dse[start..end];
    let line = entry.lines().find(|line| {
        line.to_ascii_lowercase()
            .starts_with("nsslapd-pluginenabled:")
    })?;
    let enabled = entry.replacen(line, "nsslapd-pluginEnabled: on", 1);
    Some(format!("{}{enabled}{}", &dse[..start], &dse[end..]))
}

fn failure(message: String, log_tail: String) -> DirectoryError {
    DirectoryError::Ds389 { message, log_tail }
}

impl Ds389Instance {
    /// Makes and starts an instance holding Roleout's base entries and
    /// access rules under [`SUFFIX`].
    pub fn start() -> Result<Ds389Instance> {
        if !Path::new(TEMPLATE).is_file() {
            return Err(failure(
                format!(
                    "389 Directory Server is not installed ({TEMPLATE} is missing): \
                     install Debian's `389-ds-base` package"
                ),
                String::new(),
            ));
        }
        let folder = tempfile::Builder::new()
            .prefix("roleout-389-")
            .tempdir()
            .map_err(|error| DirectoryError::io("cannot make a temporary folder", error))?;
        let mut instance = Ds389Instance {
            server: None,
            port: free_port()?,
            folder,
            admin_password: Secret::new(random_password()?),
            builder_password: Secret::new(random_password()?),
        };
        instance.create()?;
        instance.run()?;
        instance.load_base()?;
        Ok(instance)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.folder.path().join(name)
    }

    /// The instance's folder; `credentials/` in it holds `admin.password`
    /// and `roleoutd.password`, as a managed slapd's state does.
    pub fn state_dir(&self) -> &Path {
        self.folder.path()
    }

    /// `ldap://127.0.0.1:PORT`.
    pub fn ldap_url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// The ldapi URL on which SASL EXTERNAL binds as the Directory Manager.
    pub fn ldapi_url(&self) -> String {
        let path = self.path("run/slapd.socket").display().to_string();
        format!("ldapi://{}", path.replace('/', "%2F"))
    }

    /// Settings for the admin service account (member of `cn=admins`).
    pub fn admin_settings(&self) -> Settings {
        let layout = Layout::new(&self.base_settings());
        self.bound_as(layout.admin_account(), &self.admin_password)
    }

    /// Settings for roleoutd's service account.
    pub fn builder_settings(&self) -> Settings {
        let layout = Layout::new(&self.base_settings());
        self.bound_as(layout.builder_account(), &self.builder_password)
    }

    fn base_settings(&self) -> Settings {
        Settings::new([self.ldap_url()]).with_base(format!("ou=roleout,{SUFFIX}"))
    }

    fn bound_as(&self, dn: String, password: &Secret) -> Settings {
        self.base_settings().with_bind(Bind::Simple {
            dn,
            password: password.clone(),
        })
    }

    /// The last lines of the instance's error log.
    pub fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.path("log/errors")).unwrap_or_default();
        last_lines(&log, 20)
    }

    /// Stops the server and starts it again, as a change of a plugin's
    /// configuration needs.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.run()
    }

    /// Enables the Retro Changelog and Content Synchronization plugins
    /// (README's change, [`CONTENT_SYNC_LDIF`]) and restarts the server,
    /// so roleoutd's change feed can follow it.
    pub fn enable_content_synchronization(&mut self) -> Result<()> {
        self.as_root("ldapmodify", CONTENT_SYNC_LDIF)?;
        self.restart()
    }

    /// Writes `config/dse.ldif` from the template and copies the schema
    /// and the configuration files `dscreate` copies.
    fn create(&self) -> Result<()> {
        for folder in [
            "config/schema",
            "db",
            "bak",
            "ldif",
            "lock",
            "log",
            "run",
            "tmp",
            "certs",
            "credentials",
        ] {
            let path = self.path(folder);
            fs::create_dir_all(&path).map_err(|error| {
                DirectoryError::io(format!("cannot create {}", path.display()), error)
            })?;
        }
        let copy = |from: &Path, to: PathBuf| {
            fs::copy(from, &to).map(|_| ()).map_err(|error| {
                DirectoryError::io(format!("cannot copy {}", from.display()), error)
            })
        };
        for file in ["slapd-collations.conf", "certmap.conf"] {
            copy(
                &Path::new(SYSTEM_CONFIG).join(file),
                self.path("config").join(file),
            )?;
        }
        copy(
            Path::new(USER_SCHEMA),
            self.path("config/schema/99user.ldif"),
        )?;
        // What an admin copies into /etc/dirsrv/slapd-INSTANCE/schema/.
        write_file(
            &self.path("config/schema/99roleout.ldif"),
            crate::schema::ROLEOUT_389,
            0o644,
        )?;
        let root_hash = run_tool(
            Command::new("pwdhash").args(["-s", "PBKDF2-SHA512", &random_password()?]),
            None,
        )?;
        let folder = self.folder.path().display().to_string();
        let values = [
            ("schema_dir", format!("{folder}/config/schema")),
            ("lock_dir", format!("{folder}/lock")),
            ("tmp_dir", format!("{folder}/tmp")),
            ("cert_dir", format!("{folder}/certs")),
            ("ldif_dir", format!("{folder}/ldif")),
            ("bak_dir", format!("{folder}/bak")),
            ("run_dir", format!("{folder}/run")),
            ("inst_dir", folder.clone()),
            ("log_dir", format!("{folder}/log")),
            ("fqdn", "localhost".to_owned()),
            ("ds_port", self.port.to_string()),
            ("ds_user", "root".to_owned()),
            ("rootdn", "cn=Directory Manager".to_owned()),
            ("ds_passwd", root_hash.trim().to_owned()),
            ("ds_suffix", SUFFIX.to_owned()),
            ("config_dir", format!("{folder}/config")),
            ("db_dir", format!("{folder}/db")),
            ("db_home_dir", format!("{folder}/db")),
            ("db_lib", "bdb".to_owned()),
            ("ldapi_enabled", "on".to_owned()),
            ("ldapi", format!("{folder}/run/slapd.socket")),
            ("ldapi_autobind", "on".to_owned()),
        ];
        let mut dse = fs::read_to_string(TEMPLATE)
            .map_err(|error| DirectoryError::io(format!("cannot read {TEMPLATE}"), error))?;
        for (name, value) in values {
            dse = dse.replace(&format!("%{name}%"), &value);
        }
        if let Some(name) = unfilled(&dse) {
            return Err(failure(
                format!("{TEMPLATE} has a value Roleout does not fill in: %{name}%"),
                String::new(),
            ));
        }
        let dse = plugin_enabled(&dse, "cn=USN,cn=plugins,cn=config").ok_or_else(|| {
            failure(
                format!("{TEMPLATE} has no USN plugin to enable"),
                String::new(),
            )
        })?;
        // Only the loopback interface, and small caches: tests run several
        // instances side by side.
        let dse = dse
            .replacen(
                "nsslapd-port: ",
                "nsslapd-listenhost: 127.0.0.1\nnsslapd-port: ",
                1,
            )
            .replacen(
                "nsslapd-subtree-rename-switch: on\n",
                "nsslapd-subtree-rename-switch: on\nnsslapd-cache-autosize: 0\n\
                 nsslapd-dbcachesize: 16777216\n",
                1,
            );
        write_file(&self.path("config/dse.ldif"), &dse, 0o600)
    }

    /// Starts ns-slapd in the foreground (`-d 0`, so it stays this
    /// process's child and is reaped) and waits until the Directory
    /// Manager is reached over ldapi.
    fn run(&mut self) -> Result<()> {
        let child = Command::new("ns-slapd")
            .arg("-D")
            .arg(self.path("config"))
            .arg("-i")
            .arg(self.path("run/ns-slapd.pid"))
            .args(["-d", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| DirectoryError::io("cannot run ns-slapd", error))?;
        self.server = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let whoami = Command::new("ldapwhoami")
                .args(["-Q", "-Y", "EXTERNAL", "-H"])
                .arg(self.ldapi_url())
                .output()
                .map_err(|error| DirectoryError::io("cannot run ldapwhoami", error))?;
            if whoami.status.success() {
                return Ok(());
            }
            let exited = self
                .server
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
            if let Some(status) = exited {
                return Err(failure(
                    format!("ns-slapd exited with {status}"),
                    self.log_tail(),
                ));
            }
            if Instant::now() > deadline {
                return Err(failure(
                    format!("389 Directory Server did not answer within {START_TIMEOUT:?}"),
                    self.log_tail(),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the server again after [`Ds389Instance::stop`].
    pub fn start_again(&mut self) -> Result<()> {
        if self.server.is_some() {
            return Ok(());
        }
        self.run()
    }

    /// Stops the server (SIGTERM, at most 10 s, then SIGKILL); its data
    /// stays.
    pub fn stop(&mut self) {
        let Some(mut child) = self.server.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// The backend of the suffix, then `ldif/base.ldif` with a password on
    /// each service account (389 hashes a clear value when it stores it),
    /// then the access rules and account limits.
    fn load_base(&self) -> Result<()> {
        self.as_root(
            "ldapadd",
            &format!(
                "dn: cn=userroot,cn=ldbm database,cn=plugins,cn=config\n\
                 objectClass: extensibleObject\nobjectClass: nsBackendInstance\n\
                 cn: userroot\nnsslapd-suffix: {SUFFIX}\nnsslapd-cachememsize: 10485760\n\n\
                 dn: cn=\"{SUFFIX}\",cn=mapping tree,cn=config\n\
                 objectClass: extensibleObject\nobjectClass: nsMappingTree\n\
                 cn: {SUFFIX}\nnsslapd-state: backend\nnsslapd-backend: userroot\n"
            ),
        )?;
        let layout = Layout::new(&self.base_settings());
        let accounts = [
            (
                layout.admin_account(),
                self.admin_password.expose().to_owned(),
            ),
            (
                layout.builder_account(),
                self.builder_password.expose().to_owned(),
            ),
        ];
        self.as_root("ldapadd", &base_ldif(SUFFIX, &accounts))?;
        self.as_root("ldapmodify", &crate::access::ds389_access_ldif(SUFFIX))?;
        for (account, password) in [
            ("admin", &self.admin_password),
            ("roleoutd", &self.builder_password),
        ] {
            write_file(
                &self.path("credentials").join(format!("{account}.password")),
                password.expose(),
                0o600,
            )?;
        }
        Ok(())
    }

    /// Runs `tool` (`ldapadd`, `ldapmodify`) as the Directory Manager over
    /// ldapi with `ldif` on its input.
    pub fn as_root(&self, tool: &str, ldif: &str) -> Result<()> {
        run_tool(
            Command::new(tool)
                .args(["-Q", "-Y", "EXTERNAL", "-H"])
                .arg(self.ldapi_url()),
            Some(ldif),
        )
        .map(|_| ())
    }
}

impl Drop for Ds389Instance {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The first `%name%` placeholder left in `text`.
fn unfilled(text: &str) -> Option<&str> {
    text.split('%')
        .skip(1)
        .step_by(2)
        .find(|name| !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
}

/// Runs `command` with `input` on its standard input; its standard output.
fn run_tool(command: &mut Command, input: Option<&str>) -> Result<String> {
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| DirectoryError::io(format!("cannot run {program}"), error))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.unwrap_or_default().as_bytes())
            .map_err(|error| DirectoryError::io(format!("cannot write to {program}"), error))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|error| DirectoryError::io(format!("cannot run {program}"), error))?;
    if !output.status.success() {
        return Err(failure(
            format!("{program} failed ({})", output.status),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ));
    }
    String::from_utf8(output.stdout).map_err(|_| {
        failure(
            format!("{program} wrote text that is not UTF-8"),
            String::new(),
        )
    })
}
