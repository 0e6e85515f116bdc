//! A 389 Directory Server instance of its own for one test, set up as an
//! admin sets up an existing 389 server for Roleout: Roleout's schema file
//! in the instance's schema folder (`schemas/99roleout.ldif`), the base
//! entries (`ldif/base.ldif`) with a password on each service account, and
//! the access rules (`ldif/389ds-access.ldif`'s form for the suffix).
//!
//! The instance is made from the package's own `template-dse.ldif`, as
//! `dscreate` makes one, but with every path in a temporary folder and
//! a free loopback port, so instances run side by side without systemd
//! and without touching `/etc/dirsrv`. The Directory Manager is reached
//! over the instance's ldapi socket by autobind (root maps to it), as
//! `ldapadd -Y EXTERNAL` does; `Drop` stops the server and removes the
//! folder, also when the test failed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use roleout_directory::{Bind, Layout, Secret, Settings, access, schema};

use crate::Server;

/// Where Debian's 389-ds-base keeps what `dscreate` copies.
const TEMPLATE: &str = "/usr/share/dirsrv/data/template-dse.ldif";
const SYSTEM_CONFIG: &str = "/etc/dirsrv/config";
const USER_SCHEMA: &str = "/etc/dirsrv/schema/99user.ldif";
const SUFFIX: &str = "dc=example,dc=org";

/// A running ns-slapd of one test.
pub(crate) struct Ds389 {
    server: Option<std::process::Child>,
    folder: tempfile::TempDir,
    port: u16,
    admin_password: Secret,
    builder_password: Secret,
}

impl Ds389 {
    /// Makes and starts an instance holding Roleout's base entries; panics
    /// naming what failed (with the error log's tail).
    pub(crate) fn temporary() -> Ds389 {
        assert!(
            Path::new(TEMPLATE).is_file(),
            "389 Directory Server is not installed ({TEMPLATE} is missing): apt-get install 389-ds-base"
        );
        let folder = tempfile::Builder::new()
            .prefix("roleout-389-")
            .tempdir()
            .unwrap();
        let mut instance = Ds389 {
            server: None,
            port: crate::free_port(),
            folder,
            admin_password: Secret::new(random_password()),
            builder_password: Secret::new(random_password()),
        };
        instance.create();
        instance.start();
        instance.load_base();
        instance
    }

    fn path(&self, name: &str) -> PathBuf {
        self.folder.path().join(name)
    }

    fn socket(&self) -> PathBuf {
        self.path("run/slapd.socket")
    }

    /// Writes `config/dse.ldif` from the template and copies the schema
    /// and the configuration files `dscreate` copies.
    fn create(&self) {
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
            fs::create_dir_all(self.path(folder)).unwrap();
        }
        for file in ["slapd-collations.conf", "certmap.conf"] {
            fs::copy(
                Path::new(SYSTEM_CONFIG).join(file),
                self.path("config").join(file),
            )
            .unwrap();
        }
        fs::copy(USER_SCHEMA, self.path("config/schema/99user.ldif")).unwrap();
        // What an admin copies into /etc/dirsrv/slapd-INSTANCE/schema/.
        fs::write(
            self.path("config/schema/99roleout.ldif"),
            schema::ROLEOUT_389,
        )
        .unwrap();
        let root_hash =
            run(Command::new("pwdhash").args(["-s", "PBKDF2-SHA512", &random_password()]));
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
            ("ldapi", self.socket().display().to_string()),
            ("ldapi_autobind", "on".to_owned()),
        ];
        let mut dse = fs::read_to_string(TEMPLATE).unwrap();
        for (name, value) in values {
            dse = dse.replace(&format!("%{name}%"), &value);
        }
        assert!(!dse.contains("%ds_"), "a template value was left unset");
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
                "nsslapd-subtree-rename-switch: on\nnsslapd-cache-autosize: 0\nnsslapd-dbcachesize: 16777216\n",
                1,
            );
        fs::write(self.path("config/dse.ldif"), dse).unwrap();
    }

    /// Starts ns-slapd in the foreground (`-d 0`, so it stays this
    /// process's child and is reaped) and waits, at most 30 s, until the
    /// Directory Manager is reached over ldapi.
    fn start(&mut self) {
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
            .expect("ns-slapd runs");
        self.server = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let whoami = Command::new("ldapwhoami")
                .args(["-Q", "-Y", "EXTERNAL", "-H"])
                .arg(self.ldapi_url())
                .output()
                .unwrap();
            if whoami.status.success() {
                let who = String::from_utf8_lossy(&whoami.stdout);
                assert!(
                    who.trim().eq_ignore_ascii_case("dn: cn=directory manager"),
                    "ldapi autobind maps root to {who}"
                );
                return;
            }
            let exited = self
                .server
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
            assert!(
                exited.is_none(),
                "ns-slapd exited with {exited:?}: {}",
                self.log_tail()
            );
            assert!(
                Instant::now() < deadline,
                "389 Directory Server did not answer in 30 s: {}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (SIGTERM, at most 10 s, then SIGKILL) and starts
    /// it again, as a configuration change of a plugin needs.
    pub(crate) fn restart(&mut self) {
        self.stop();
        self.start();
    }

    fn stop(&mut self) {
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
    fn load_base(&self) {
        crate::ldapadd(
            self,
            &format!(
                "dn: cn=userroot,cn=ldbm database,cn=plugins,cn=config\n\
                 objectClass: extensibleObject\nobjectClass: nsBackendInstance\n\
                 cn: userroot\nnsslapd-suffix: {SUFFIX}\nnsslapd-cachememsize: 10485760\n\n\
                 dn: cn=\"{SUFFIX}\",cn=mapping tree,cn=config\n\
                 objectClass: extensibleObject\nobjectClass: nsMappingTree\n\
                 cn: {SUFFIX}\nnsslapd-state: backend\nnsslapd-backend: userroot\n"
            ),
        );
        let layout = Layout::new(&self.admin_settings());
        let mut base = String::new();
        for block in roleout_directory::local::BASE_LDIF.split("\n\n") {
            base.push_str(block.trim_end());
            let dn = block
                .lines()
                .find_map(|line| line.strip_prefix("dn: "))
                .unwrap_or_default();
            for (account, password) in [
                (layout.admin_account(), &self.admin_password),
                (layout.builder_account(), &self.builder_password),
            ] {
                if dn == account {
                    base.push_str("\nobjectClass: simpleSecurityObject\nuserPassword: ");
                    base.push_str(password.expose());
                }
            }
            base.push_str("\n\n");
        }
        crate::ldapadd(self, &base);
        crate::ldapmodify(self, &access::ds389_access_ldif(SUFFIX));
        for (account, password) in [
            ("admin", &self.admin_password),
            ("roleoutd", &self.builder_password),
        ] {
            fs::write(
                self.path("credentials").join(format!("{account}.password")),
                password.expose(),
            )
            .unwrap();
        }
    }

    /// The last lines of the instance's error log.
    pub(crate) fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.path("log/errors")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn bound_as(&self, dn: String, password: &Secret) -> Settings {
        Settings::new([self.ldap_url()])
            .with_bind(Bind::Simple {
                dn,
                password: password.clone(),
            })
            .with_base(format!("ou=roleout,{SUFFIX}"))
    }
}

impl Server for Ds389 {
    fn admin_settings(&self) -> Settings {
        let layout = Layout::new(&Settings::new([self.ldap_url()]));
        self.bound_as(layout.admin_account(), &self.admin_password)
    }

    fn builder_settings(&self) -> Settings {
        let layout = Layout::new(&Settings::new([self.ldap_url()]));
        self.bound_as(layout.builder_account(), &self.builder_password)
    }

    fn ldapi_url(&self) -> String {
        let path = self.socket().display().to_string();
        format!("ldapi://{}", path.replace('/', "%2F"))
    }

    fn ldap_url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    fn state_dir(&self) -> &Path {
        self.folder.path()
    }

    fn name(&self) -> &'static str {
        "389-ds"
    }
}

impl Drop for Ds389 {
    fn drop(&mut self) {
        self.stop();
    }
}

/// 32 random hexadecimal digits.
fn random_password() -> String {
    use std::fmt::Write;
    let mut bytes = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).unwrap();
    bytes.iter().fold(String::new(), |mut out, byte| {
        let _ = write!(out, "{byte:02x}");
        out
    })
}

/// Runs `command`; its standard output, or a panic with its error output.
fn run(command: &mut Command) -> String {
    let output = command.output().expect("the program runs");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}
