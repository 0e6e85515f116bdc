//! The embedded directory: a private OpenLDAP slapd that Roleout builds,
//! starts and stops itself when no directory is configured, and that every
//! test uses.
//!
//! The state directory holds everything: `slapd.d/` (the configuration,
//! made once with `slapadd -n0`), `data/` (the mdb database, seeded from
//! `ldif/base.ldif` with `slapadd -n1` before the first start), the `ldapi`
//! socket, `slapd.log` (slapd's output of the current run) and
//! `credentials/` (the generated passwords of the service accounts, mode
//! 0600). A persistent state directory is reused across restarts; a
//! temporary one disappears with its [`LocalDirectory`].
//!
//! With [`LocalOptions::tls`], slapd also serves TLS: StartTLS on the
//! `ldap://` port and `ldaps://` on a second loopback port, with a
//! self-signed certificate for `localhost` and `127.0.0.1` kept in `tls/`
//! (no CA: clients trust the certificate itself, which
//! [`LocalDirectory::tls_certificate_path`] names). The key is a PKCS#8
//! PEM file, which Debian's GnuTLS-built slapd reads; the TLS attributes
//! are added to `cn=config` offline with `slapmodify`, so a state made
//! without TLS gains it when reopened with the option.
//!
//! The database carries the `syncprov` overlay, so roleoutd's change feed
//! (`crate::feed`) can follow changes; a state made before the overlay
//! existed gains it offline when reopened.
//!
//! slapd runs in the foreground (`-d none`: no debug output, but its
//! start-up errors still reach `slapd.log`) as our child, so its pid is the
//! child's and we stop exactly the process we started: SIGTERM, a bounded
//! wait, then SIGKILL. Readiness is a real anonymous LDAP bind over both
//! listeners, polled until a deadline, so a caller never races slapd's
//! start-up.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::error::{DirectoryError, Result};
use crate::layout::Layout;
use crate::schema::ROLEOUT_LDIF;
use crate::settings::{Bind, Secret, Settings};

/// The base DIT (`ldif/base.ldif`, for `dc=example,dc=org`), loaded before
/// the first start.
pub const BASE_LDIF: &str = include_str!("../../ldif/base.ldif");

/// The suffix `ldif/base.ldif` is written for.
const BASE_LDIF_SUFFIX: &str = "dc=example,dc=org";

/// Where Debian keeps the stock schemas.
const STOCK_SCHEMAS: &str = "/etc/ldap/schema";

/// Where Debian keeps slapd's backend modules.
const MODULE_PATH: &str = "/usr/lib/ldap";

/// Longest path a Unix socket address holds (`sun_path` on Linux, less the
/// terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Part of the digest of an applied replication configuration
/// (`replication.sha256`): a state whose providers were configured another
/// way (by an older Roleout, binding as the root DN) is configured again.
const REPLICATION_CONFIGURATION: &str = "bind as cn=replicator";

/// How the embedded directory is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalOptions {
    /// The database suffix, a `dc=` chain (default `dc=example,dc=org`);
    /// Roleout's base is `ou=roleout,` under it.
    pub suffix: String,
    /// The loopback port; `None` picks a free one.
    pub port: Option<u16>,
    /// The directory holding `slapd`, `slapadd` and `slappasswd`; `None`
    /// looks in `PATH`, `/usr/sbin` and `/usr/local/sbin`.
    pub programs: Option<PathBuf>,
    /// How long slapd may take to answer after it is started.
    pub start_timeout: Duration,
    /// How long slapd may take to exit after SIGTERM before it is killed.
    pub stop_timeout: Duration,
    /// Also serve TLS: StartTLS on the `ldap://` port and `ldaps://` on a
    /// second loopback port, with a self-signed certificate.
    pub tls: bool,
    /// Run as one of several providers of one directory (see
    /// [`Replication`]).
    pub replication: Option<Replication>,
}

/// Multi-provider replication of the managed directory with other slapd:
/// every provider takes writes and pulls the others' with syncrepl
/// (`refreshAndPersist`, from their `syncprov` overlay), `olcMultiProvider`
/// on. Providers bind to each other as the replicator account
/// (`cn=replicator` under Roleout's base: it reads everything and writes
/// nothing) with a password they share; the first provider makes the
/// account, and any provider started with another secret gives it that
/// one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replication {
    /// This provider's number, unique among the providers (1 to 4095).
    pub server_id: u16,
    /// The other providers' URLs (`ldap://HOST:PORT/`), pulled from.
    pub peers: Vec<String>,
    /// The replicator account's password, which providers bind to each
    /// other with; the same in every provider.
    pub secret: Secret,
    /// For a provider joining others: the `credentials/` folder of one of
    /// them. Its database starts empty and is filled from its peers, and
    /// the service accounts' passwords are taken from that folder.
    pub join_credentials: Option<PathBuf>,
}

impl Default for LocalOptions {
    fn default() -> Self {
        LocalOptions {
            suffix: BASE_LDIF_SUFFIX.to_owned(),
            port: None,
            programs: None,
            start_timeout: Duration::from_secs(30),
            stop_timeout: Duration::from_secs(10),
            tls: false,
            replication: None,
        }
    }
}

/// The paths of the OpenLDAP programs used.
#[derive(Debug, Clone)]
struct Programs {
    slapd: PathBuf,
    slapadd: PathBuf,
    slapmodify: PathBuf,
    slapindex: PathBuf,
    slappasswd: PathBuf,
}

impl Programs {
    fn find(directory: Option<&Path>) -> Result<Programs> {
        let search: Vec<PathBuf> = match directory {
            Some(directory) => vec![directory.to_owned()],
            None => {
                let mut paths: Vec<PathBuf> = std::env::var_os("PATH")
                    .map(|path| std::env::split_paths(&path).collect())
                    .unwrap_or_default();
                paths.push(PathBuf::from("/usr/sbin"));
                paths.push(PathBuf::from("/usr/local/sbin"));
                paths
            }
        };
        let find = |name: &str| {
            search
                .iter()
                .map(|directory| directory.join(name))
                .find(|candidate| candidate.is_file())
                .ok_or_else(|| DirectoryError::SlapdMissing {
                    program: match directory {
                        Some(directory) => directory.join(name),
                        None => PathBuf::from(name),
                    },
                })
        };
        Ok(Programs {
            slapd: find("slapd")?,
            slapadd: find("slapadd")?,
            slapmodify: find("slapmodify")?,
            slapindex: find("slapindex")?,
            slappasswd: find("slappasswd")?,
        })
    }
}

/// A running (or stopped) private slapd with Roleout's schema and base DIT.
///
/// Dropping it stops slapd; a temporary one also deletes its files.
pub struct LocalDirectory {
    state: PathBuf,
    /// Keeps a temporary state directory alive; deleted on drop.
    _temporary: Option<tempfile::TempDir>,
    options: LocalOptions,
    programs: Programs,
    port: u16,
    /// The `ldaps://` port; 0 without TLS or before the first start.
    ldaps_port: u16,
    child: Option<Child>,
    admin_password: Secret,
    builder_password: Secret,
}

impl std::fmt::Debug for LocalDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalDirectory")
            .field("state", &self.state)
            .field("port", &self.port)
            .field("running", &self.child.is_some())
            .finish_non_exhaustive()
    }
}

impl LocalDirectory {
    /// A fresh directory in a temporary state directory, started; for tests
    /// (each gets its own, so tests run in parallel).
    pub fn temporary() -> Result<LocalDirectory> {
        Self::temporary_with(LocalOptions::default())
    }

    /// [`temporary`](Self::temporary) with options.
    pub fn temporary_with(options: LocalOptions) -> Result<LocalDirectory> {
        // Check the programs before making anything.
        Programs::find(options.programs.as_deref())?;
        let temporary = tempfile::Builder::new()
            .prefix("roleout-slapd-")
            .tempdir()
            .map_err(|error| DirectoryError::io("cannot create a temporary directory", error))?;
        let state = temporary.path().to_owned();
        Self::open(state, Some(temporary), options)
    }

    /// The directory kept in `state_dir`, created there on first use and
    /// reused (configuration, data and credentials) afterwards; started.
    pub fn persistent(state_dir: impl AsRef<Path>) -> Result<LocalDirectory> {
        Self::persistent_with(state_dir, LocalOptions::default())
    }

    /// [`persistent`](Self::persistent) with options.
    pub fn persistent_with(
        state_dir: impl AsRef<Path>,
        options: LocalOptions,
    ) -> Result<LocalDirectory> {
        let state = state_dir.as_ref();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(state)
            .map_err(|error| {
                DirectoryError::io(format!("cannot create {}", state.display()), error)
            })?;
        let state = state.canonicalize().map_err(|error| {
            DirectoryError::io(format!("cannot resolve {}", state.display()), error)
        })?;
        Self::open(state, None, options)
    }

    fn open(
        state: PathBuf,
        temporary: Option<tempfile::TempDir>,
        options: LocalOptions,
    ) -> Result<LocalDirectory> {
        let programs = Programs::find(options.programs.as_deref())?;
        check_suffix(&options.suffix)?;
        if let Some(replication) = &options.replication {
            check_replication(replication)?;
        }
        let socket = state.join("ldapi");
        if socket.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(DirectoryError::Settings(format!(
                "the state directory {} is too deep for a Unix socket path (at most {MAX_SOCKET_PATH} bytes)",
                state.display()
            )));
        }
        let mut directory = LocalDirectory {
            state,
            _temporary: temporary,
            options,
            programs,
            port: 0,
            ldaps_port: 0,
            child: None,
            admin_password: Secret::new(String::new()),
            builder_password: Secret::new(String::new()),
        };
        let filled_from_peers = directory.initialize()?;
        directory.upgrade_schema()?;
        directory.upgrade_access()?;
        directory.upgrade_indexes()?;
        directory.initialize_sync()?;
        directory.initialize_replication()?;
        if directory.options.tls {
            directory.initialize_tls()?;
        }
        directory.start()?;
        if !filled_from_peers {
            directory.ensure_replicator()?;
        }
        Ok(directory)
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    /// The `slapd.d` configuration directory.
    pub fn config_dir(&self) -> PathBuf {
        self.state.join("slapd.d")
    }

    /// The database suffix.
    pub fn suffix(&self) -> &str {
        &self.options.suffix
    }

    /// Roleout's base DN (`ou=roleout,` + suffix).
    pub fn base(&self) -> String {
        format!("ou=roleout,{}", self.options.suffix)
    }

    /// The loopback port slapd listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `ldapi://` URL (percent-encoded socket path).
    pub fn ldapi_url(&self) -> String {
        format!(
            "ldapi://{}",
            percent_encode(&self.state.join("ldapi").to_string_lossy())
        )
    }

    /// The `ldap://127.0.0.1:PORT/` URL.
    pub fn ldap_url(&self) -> String {
        format!("ldap://127.0.0.1:{}/", self.port)
    }

    /// The `ldaps://127.0.0.1:PORT/` URL, when slapd serves TLS
    /// ([`LocalOptions::tls`]).
    pub fn ldaps_url(&self) -> Option<String> {
        self.options
            .tls
            .then(|| format!("ldaps://127.0.0.1:{}/", self.ldaps_port))
    }

    /// The PEM file of slapd's self-signed certificate, the one to trust
    /// (`ca-certificate`) for StartTLS and `ldaps://`, when slapd serves
    /// TLS ([`LocalOptions::tls`]).
    pub fn tls_certificate_path(&self) -> Option<PathBuf> {
        self.options.tls.then(|| self.state.join("tls/server.crt"))
    }

    /// The root DN (SASL EXTERNAL over ldapi maps the current user to it).
    pub fn root_dn(&self) -> String {
        format!("cn=admin,{}", self.options.suffix)
    }

    /// Settings for a root connection: SASL EXTERNAL over ldapi, mapped to
    /// the root DN, which no access rule restricts.
    pub fn settings(&self) -> Settings {
        Settings::new([self.ldapi_url()])
            .with_bind(Bind::SaslExternal)
            .with_base(self.base())
    }

    /// Settings for the admin service account (member of `cn=admins`), a
    /// simple bind over the loopback port.
    pub fn admin_settings(&self) -> Settings {
        let layout = Layout::new(&self.settings());
        Settings::new([self.ldap_url()])
            .with_bind(Bind::Simple {
                dn: layout.admin_account(),
                password: self.admin_password.clone(),
            })
            .with_base(self.base())
    }

    /// Settings for the builder's service account (`cn=roleoutd`), a simple
    /// bind over the loopback port.
    pub fn builder_settings(&self) -> Settings {
        let layout = Layout::new(&self.settings());
        Settings::new([self.ldap_url()])
            .with_bind(Bind::Simple {
                dn: layout.builder_account(),
                password: self.builder_password.clone(),
            })
            .with_base(self.base())
    }

    /// Settings with no bind at all (anonymous), over the loopback port.
    pub fn anonymous_settings(&self) -> Settings {
        Settings::new([self.ldap_url()]).with_base(self.base())
    }

    /// slapd's process id while it runs (for tests that pause it).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// True while slapd runs.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The last lines slapd wrote in its current (or last) run.
    pub fn log_tail(&self) -> String {
        tail(&self.state.join("slapd.log"), 40)
    }

    /// Starts slapd and waits until it answers a bind on both listeners. A
    /// no-op when it runs already.
    pub fn start(&mut self) -> Result<()> {
        if self.is_running() {
            return Ok(());
        }
        self.check_no_other_slapd()?;
        // A socket left by a killed slapd would make its bind fail.
        let socket = self.state.join("ldapi");
        if socket.exists() {
            fs::remove_file(&socket).map_err(|error| {
                DirectoryError::io(
                    format!("cannot remove stale socket {}", socket.display()),
                    error,
                )
            })?;
        }
        // Keep the port across stop/start so existing settings stay valid;
        // pick one on the first start unless one is configured.
        let chosen = match (self.port, self.options.port) {
            (0, None) => None,
            (0, Some(port)) => Some(port),
            (port, _) => Some(port),
        };
        let attempts = if chosen.is_some() { 1 } else { 5 };
        let mut last_error = None;
        for _ in 0..attempts {
            let port = match chosen {
                Some(port) => port,
                None => free_port()?,
            };
            // The ldaps port is kept across restarts too.
            let ldaps_port = match (self.options.tls, self.ldaps_port) {
                (false, _) => None,
                (true, 0) => Some(free_port_besides(port)?),
                (true, ldaps_port) => Some(ldaps_port),
            };
            match self.spawn(port, ldaps_port) {
                Ok(()) => {
                    self.port = port;
                    self.ldaps_port = ldaps_port.unwrap_or(0);
                    // Who started it: a later start that finds this slapd
                    // running with its starter gone stops it.
                    let own = std::process::id();
                    if let Some(started) = process_start_time(i32::try_from(own).unwrap_or(0)) {
                        let _ = write_file(
                            &self.state.join(OWNER_FILE),
                            &format!("{own} {started}\n"),
                            0o600,
                        );
                    }
                    return self.wait_until_filled();
                }
                // Another process took the free port between our probe and
                // slapd's bind: try another one.
                Err(DirectoryError::PortInUse { port }) if chosen.is_none() => {
                    last_error = Some(DirectoryError::PortInUse { port });
                }
                Err(error) => return Err(error),
            }
        }
        Err(last_error.unwrap_or(DirectoryError::PortInUse { port: 0 }))
    }

    /// A provider joining others starts with an empty database that its
    /// peers fill: when it has peers, waits (within the start timeout) until roleoutd's
    /// service account binds with its password, so whoever started it can
    /// use it at once. Any other slapd is ready as soon as it answers.
    fn wait_until_filled(&self) -> Result<()> {
        let joining = self
            .options
            .replication
            .as_ref()
            .is_some_and(|replication| {
                replication.join_credentials.is_some() && !replication.peers.is_empty()
            });
        if !joining {
            return Ok(());
        }
        let account = Layout::new(&self.settings()).builder_account();
        let deadline = Instant::now() + self.options.start_timeout;
        loop {
            if self.binds(&account, &self.builder_password) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(DirectoryError::Slapd {
                    message: format!(
                        "no peer filled the joining provider {} within {:?} (are the peers running, and is the replication secret theirs?)",
                        self.state.display(),
                        self.options.start_timeout
                    ),
                    log_tail: self.log_tail(),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether `account` binds with `password` over the loopback port now.
    fn binds(&self, account: &str, password: &Secret) -> bool {
        let Ok(mut ldap) = ldap3::LdapConn::new(&self.ldap_url()) else {
            return false;
        };
        let bound = ldap
            .simple_bind(account, password.expose())
            .and_then(ldap3::LdapResult::success)
            .is_ok();
        let _ = ldap.unbind();
        bound
    }

    /// Stops slapd: SIGTERM, then SIGKILL if it has not exited within the
    /// stop timeout. A no-op when it is not running.
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if matches!(child.try_wait(), Ok(Some(_))) {
            return Ok(());
        }
        // The pid is our own child's, which has not been reaped yet, so it
        // cannot name another process.
        let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + self.options.stop_timeout;
        while Instant::now() < deadline {
            match child.try_wait() {
                Ok(Some(_)) => return Ok(()),
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(error) => return Err(DirectoryError::io("cannot wait for slapd", error)),
            }
        }
        tracing::warn!(
            "slapd did not exit within {:?} of SIGTERM; killing it",
            self.options.stop_timeout
        );
        child
            .kill()
            .map_err(|error| DirectoryError::io("cannot kill slapd", error))?;
        child
            .wait()
            .map_err(|error| DirectoryError::io("cannot wait for slapd", error))?;
        Ok(())
    }

    /// Starts slapd on `port` (and `ldaps_port` for ldaps) and waits for
    /// it to answer.
    fn spawn(&mut self, port: u16, ldaps_port: Option<u16>) -> Result<()> {
        let log_path = self.state.join("slapd.log");
        let log = fs::File::create(&log_path).map_err(|error| {
            DirectoryError::io(format!("cannot create {}", log_path.display()), error)
        })?;
        let log_copy = log.try_clone().map_err(|error| {
            DirectoryError::io(format!("cannot reopen {}", log_path.display()), error)
        })?;
        let ldapi = self.ldapi_url();
        let mut listeners = format!("{ldapi} ldap://127.0.0.1:{port}/");
        if let Some(ldaps_port) = ldaps_port {
            let _ = write!(listeners, " ldaps://127.0.0.1:{ldaps_port}/");
        }
        let child = Command::new(&self.programs.slapd)
            .arg("-F")
            .arg(self.config_dir())
            .arg("-h")
            .arg(&listeners)
            .args(["-d", "none"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_copy)
            .spawn()
            .map_err(|error| spawn_error(&self.programs.slapd, error))?;
        self.child = Some(child);
        let deadline = Instant::now() + self.options.start_timeout;
        let socket = self.state.join("ldapi");
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                let log_tail = self.log_tail();
                if log_tail.contains("Address already in use") {
                    // slapd's log names the listener it could not open.
                    let port = match ldaps_port {
                        Some(ldaps_port) if log_tail.contains(&format!(":{ldaps_port}")) => {
                            ldaps_port
                        }
                        _ => port,
                    };
                    return Err(DirectoryError::PortInUse { port });
                }
                return Err(DirectoryError::Slapd {
                    message: format!(
                        "slapd exited during start-up ({status}); state directory {}",
                        self.state.display()
                    ),
                    log_tail,
                });
            }
            // slapd opens every listener before it serves any, so the
            // ldaps port accepting a connection is enough there.
            if answers_bind_unix(&socket)
                && answers_bind_tcp(port)
                && ldaps_port.is_none_or(accepts_tcp)
            {
                tracing::debug!(port, state = %self.state.display(), "embedded slapd is up");
                return Ok(());
            }
            if Instant::now() >= deadline {
                let log_tail = self.log_tail();
                let _ = self.stop();
                return Err(DirectoryError::Slapd {
                    message: format!(
                        "slapd did not answer within {:?} of being started; state directory {}",
                        self.options.start_timeout,
                        self.state.display()
                    ),
                    log_tail,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Settings to reach the slapd that another process (roleoutd, another
    /// shell) runs on `state_dir`, if one runs: root over SASL EXTERNAL on
    /// its ldapi socket. `None` when no slapd runs there, so the caller
    /// starts its own with [`persistent`](Self::persistent). Only the
    /// suffix's default is assumed; pass `suffix` when it was changed.
    pub fn attach(state_dir: impl AsRef<Path>, suffix: &str) -> Option<Settings> {
        let state = state_dir.as_ref().canonicalize().ok()?;
        let pid = fs::read_to_string(state.join("slapd.pid"))
            .ok()?
            .trim()
            .parse::<i32>()
            .ok()?;
        // Signal 0 only checks that the process exists.
        if pid <= 0 || kill(Pid::from_raw(pid), None).is_err() || !is_slapd(pid) {
            return None;
        }
        let url = format!(
            "ldapi://{}",
            percent_encode(&state.join("ldapi").to_string_lossy())
        );
        Some(
            Settings::new([url])
                .with_bind(Bind::SaslExternal)
                .with_base(format!("ou=roleout,{suffix}")),
        )
    }

    /// Refuses to start a second slapd on the same database while the
    /// process that started the running one lives; a slapd whose starter
    /// died (a roleoutd or shell killed with SIGKILL leaves its slapd
    /// running) is stopped instead, so the state can be used again
    /// without anyone stopping it by hand.
    fn check_no_other_slapd(&self) -> Result<()> {
        let pid_file = self.state.join("slapd.pid");
        let Ok(text) = fs::read_to_string(&pid_file) else {
            return Ok(());
        };
        let Ok(pid) = text.trim().parse::<i32>() else {
            return Ok(());
        };
        // Signal 0 only checks that the process exists.
        if pid <= 0 || kill(Pid::from_raw(pid), None).is_err() || !is_slapd(pid) {
            return Ok(());
        }
        let owner = fs::read_to_string(self.state.join(OWNER_FILE)).ok();
        let owner_alive = owner
            .as_deref()
            .and_then(|text| {
                let (pid, started) = text.trim().split_once(' ')?;
                Some((pid.parse::<i32>().ok()?, started.parse::<u64>().ok()?))
            })
            .is_some_and(|(owner, started)| process_start_time(owner) == Some(started));
        // A slapd with no owner record was started by a Roleout from before
        // the record: it is treated as owned, as it always was.
        if owner.is_none() || owner_alive {
            return Err(DirectoryError::Slapd {
                message: format!(
                    "another slapd (pid {pid}) is already running on the state directory {}",
                    self.state.display()
                ),
                log_tail: String::new(),
            });
        }
        tracing::warn!(
            pid,
            "the process that started the slapd of {} is gone; stopping its slapd",
            self.state.display()
        );
        let slapd = Pid::from_raw(pid);
        let _ = kill(slapd, Signal::SIGTERM);
        let deadline = Instant::now() + self.options.stop_timeout;
        while Instant::now() < deadline && is_slapd(pid) {
            std::thread::sleep(Duration::from_millis(20));
        }
        if is_slapd(pid) {
            let _ = kill(slapd, Signal::SIGKILL);
            let deadline = Instant::now() + self.options.stop_timeout;
            while Instant::now() < deadline && is_slapd(pid) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if is_slapd(pid) {
            return Err(DirectoryError::Slapd {
                message: format!(
                    "the slapd (pid {pid}) a dead process left on {} does not stop",
                    self.state.display()
                ),
                log_tail: String::new(),
            });
        }
        Ok(())
    }

    /// Makes `slapd.d`, the database and the credentials unless a previous
    /// run made them; a half-made state (no `initialized` marker) is redone.
    /// True when it made a joining provider's state, whose entries its
    /// peers bring.
    fn initialize(&mut self) -> Result<bool> {
        let marker = self.state.join("initialized");
        let credentials = self.state.join("credentials");
        if marker.exists() {
            self.admin_password = read_secret(&credentials.join("admin.password"))?;
            self.builder_password = read_secret(&credentials.join("roleoutd.password"))?;
            return Ok(false);
        }
        for leftover in ["slapd.d", "data", "credentials"] {
            let path = self.state.join(leftover);
            if path.exists() {
                fs::remove_dir_all(&path).map_err(|error| {
                    DirectoryError::io(format!("cannot remove half-made {}", path.display()), error)
                })?;
            }
        }
        for made in ["slapd.d", "data", "credentials"] {
            let path = self.state.join(made);
            fs::DirBuilder::new()
                .mode(0o700)
                .create(&path)
                .map_err(|error| {
                    DirectoryError::io(format!("cannot create {}", path.display()), error)
                })?;
        }
        write_file(&self.state.join("roleout.ldif"), ROLEOUT_LDIF, 0o644)?;
        write_file(&self.state.join("indexes.ldif"), &index_ldif(), 0o644)?;
        let config = config_ldif(&self.state, &self.options.suffix);
        let config_path = self.state.join("config.ldif");
        write_file(&config_path, &config, 0o600)?;
        self.run_slapadd(&["-n0", "-F"], &config_path, "the configuration")?;

        if let Some(joined) = self
            .options
            .replication
            .as_ref()
            .and_then(|replication| replication.join_credentials.clone())
        {
            // A joining provider's entries, the service accounts included,
            // come from its peers; so do their passwords.
            for file in ["admin.password", "roleoutd.password"] {
                let password = read_secret(&joined.join(file))?;
                write_file(&credentials.join(file), password.expose(), 0o600)?;
            }
            self.admin_password = read_secret(&credentials.join("admin.password"))?;
            self.builder_password = read_secret(&credentials.join("roleoutd.password"))?;
            write_file(&marker, "", 0o600)?;
            return Ok(true);
        }
        self.admin_password = Secret::new(random_password()?);
        self.builder_password = Secret::new(random_password()?);
        write_file(
            &credentials.join("admin.password"),
            self.admin_password.expose(),
            0o600,
        )?;
        write_file(
            &credentials.join("roleoutd.password"),
            self.builder_password.expose(),
            0o600,
        )?;
        let layout = Layout::new(&self.settings());
        let accounts = [
            (
                layout.admin_account(),
                self.hash_password(&credentials.join("admin.password"))?,
            ),
            (
                layout.builder_account(),
                self.hash_password(&credentials.join("roleoutd.password"))?,
            ),
        ];
        let base = base_ldif(&self.options.suffix, &accounts);
        let base_path = self.state.join("base.ldif");
        write_file(&base_path, &base, 0o600)?;
        self.run_slapadd(&["-n1", "-F"], &base_path, "the base entries")?;
        // The file holds password hashes; the database has them now.
        let _ = fs::remove_file(&base_path);
        write_file(&marker, "", 0o600)?;
        Ok(false)
    }

    /// For a provider of a replicated directory: makes sure the replicator
    /// account its peers bind as exists with the replication secret as its
    /// password, online (a write like any other, so the peers receive it).
    /// Nothing is written when the account binds with the secret already,
    /// nor at a provider whose database is still empty. A provider
    /// restarted with a new secret so gives the account that secret; the
    /// others get it as each is restarted with it, and replication between
    /// two providers resumes once both have it.
    fn ensure_replicator(&self) -> Result<()> {
        let Some(replication) = &self.options.replication else {
            return Ok(());
        };
        let account = Layout::new(&self.settings()).replicator_account();
        let failed = |what: &str, error: &dyn std::fmt::Display| DirectoryError::Slapd {
            message: format!("cannot {what} the replicator account {account}: {error}"),
            log_tail: self.log_tail(),
        };
        if self.binds(&account, &replication.secret) {
            return Ok(());
        }
        let mut root = ldap3::LdapConn::new(&self.ldapi_url())
            .map_err(|error| failed("connect to check", &error))?;
        root.sasl_external_bind()
            .and_then(ldap3::LdapResult::success)
            .map_err(|error| failed("bind to check", &error))?;
        let exists = |root: &mut ldap3::LdapConn, dn: &str| -> Result<bool> {
            match root.search(dn, ldap3::Scope::Base, "(objectClass=*)", vec!["1.1"]) {
                Ok(found) => match found.success() {
                    Ok(_) => Ok(true),
                    Err(ldap3::LdapError::LdapResult { result }) if result.rc == 32 => Ok(false),
                    Err(error) => Err(failed("look for", &error)),
                },
                Err(error) => Err(failed("look for", &error)),
            }
        };
        if !exists(&mut root, &self.base())? {
            let _ = root.unbind();
            return Ok(());
        }
        let secret_path = self.state.join("replication.secret");
        write_file(&secret_path, replication.secret.expose(), 0o600)?;
        let hash = self.hash_password(&secret_path);
        let _ = fs::remove_file(&secret_path);
        let hash = hash?;
        let outcome = if exists(&mut root, &account)? {
            root.modify(
                &account,
                vec![ldap3::Mod::Replace(
                    "userPassword",
                    HashSet::from([hash.as_str()]),
                )],
            )
            .and_then(ldap3::LdapResult::success)
            .map_err(|error| failed("set the password of", &error))
        } else {
            root.add(
                &account,
                vec![
                    (
                        "objectClass",
                        HashSet::from(["applicationProcess", "simpleSecurityObject"]),
                    ),
                    ("cn", HashSet::from(["replicator"])),
                    (
                        "description",
                        HashSet::from([
                            "The providers of the replicated directory bind to each other as this account: it reads everything and writes nothing",
                        ]),
                    ),
                    ("userPassword", HashSet::from([hash.as_str()])),
                ],
            )
            .and_then(ldap3::LdapResult::success)
            .map_err(|error| failed("add", &error))
        };
        let _ = root.unbind();
        outcome.map(|_| ())
    }

    /// Makes the self-signed certificate and key in `tls/` unless they
    /// exist, and names them in `cn=config` unless it names them already.
    fn initialize_tls(&self) -> Result<()> {
        let directory = self.state.join("tls");
        let certificate = directory.join("server.crt");
        let key = directory.join("server.key");
        if !(certificate.is_file() && key.is_file()) {
            if !directory.is_dir() {
                fs::DirBuilder::new()
                    .mode(0o700)
                    .create(&directory)
                    .map_err(|error| {
                        DirectoryError::io(format!("cannot create {}", directory.display()), error)
                    })?;
            }
            let (certificate_pem, key_pem) = self_signed_certificate()?;
            write_file(&key, &key_pem, 0o600)?;
            write_file(&certificate, &certificate_pem, 0o644)?;
        }
        let config_path = self.config_dir().join("cn=config.ldif");
        let config = fs::read_to_string(&config_path).map_err(|error| {
            DirectoryError::io(format!("cannot read {}", config_path.display()), error)
        })?;
        if config.contains("olcTLSCertificateFile:") {
            return Ok(());
        }
        let modification = format!(
            "dn: cn=config\nchangetype: modify\nreplace: olcTLSCertificateFile\n\
             olcTLSCertificateFile: {}\n-\nreplace: olcTLSCertificateKeyFile\n\
             olcTLSCertificateKeyFile: {}\n",
            certificate.display(),
            key.display()
        );
        let modification_path = self.state.join("tls.ldif");
        write_file(&modification_path, &modification, 0o600)?;
        let outcome = self.run_slap_tool(
            &self.programs.slapmodify,
            &["-n0", "-F"],
            &modification_path,
            "the TLS configuration",
        );
        let _ = fs::remove_file(&modification_path);
        outcome
    }

    /// Brings Roleout's schema in a state made by an older Roleout up to
    /// this one's, offline: `slapmodify` replaces the schema entry's
    /// attribute types and object classes with today's. The copy of the
    /// schema kept in the state (`roleout.ldif`) says which one the state
    /// has. The schema only ever grows (new attribute types, new optional
    /// attributes of a class), so every entry stored under the old one is
    /// valid under the new.
    fn upgrade_schema(&self) -> Result<()> {
        let copy = self.state.join("roleout.ldif");
        if fs::read_to_string(&copy).is_ok_and(|text| text == ROLEOUT_LDIF) {
            return Ok(());
        }
        let schemas = self.config_dir().join("cn=config").join("cn=schema");
        let listing = fs::read_dir(&schemas).map_err(|error| {
            DirectoryError::io(format!("cannot list {}", schemas.display()), error)
        })?;
        let rdn = listing
            .filter_map(|entry| entry.ok())
            .filter_map(|entry| entry.file_name().to_str().map(str::to_owned))
            .find_map(|name| {
                let rdn = name.strip_suffix(".ldif")?;
                let (_, rest) = rdn.strip_prefix("cn={")?.split_once('}')?;
                (rest == "roleout").then(|| rdn.to_owned())
            })
            .ok_or_else(|| DirectoryError::Slapd {
                message: format!(
                    "{} holds no Roleout schema to bring up to date",
                    schemas.display()
                ),
                log_tail: String::new(),
            })?;
        let path = self.state.join("schema-upgrade.ldif");
        write_file(&path, &schema_replacement(&rdn, ROLEOUT_LDIF), 0o600)?;
        let outcome = self.run_slap_tool(
            &self.programs.slapmodify,
            &["-n0", "-F"],
            &path,
            "the Roleout schema",
        );
        let _ = fs::remove_file(&path);
        outcome?;
        write_file(&copy, ROLEOUT_LDIF, 0o644)
    }

    /// Brings the access rules and limits of a state made by an older
    /// Roleout up to this one's, offline (`slapmodify` replaces the
    /// database's `olcAccess` and `olcLimits`): a rule that lets roleoutd
    /// write a newer attribute reaches existing directories too. The copy
    /// kept in the state (`access.ldif`) says which rules the state has.
    fn upgrade_access(&self) -> Result<()> {
        let rules = access_ldif(&self.options.suffix);
        let copy = self.state.join("access.ldif");
        if fs::read_to_string(&copy).is_ok_and(|text| text == rules) {
            return Ok(());
        }
        self.modify_config(
            &replacements(&rules, &["olcAccess", "olcLimits"]),
            "the access rules and limits",
        )?;
        write_file(&copy, &rules, 0o644)
    }

    /// Applies `changes` (LDIF modify lines) to the database's entry in
    /// `cn=config`, offline, with `slapmodify`.
    fn modify_config(&self, changes: &str, what: &str) -> Result<()> {
        let path = self.state.join("config-change.ldif");
        write_file(
            &path,
            &format!("dn: olcDatabase={{1}}mdb,cn=config\nchangetype: modify\n{changes}"),
            0o600,
        )?;
        let outcome = self.run_slap_tool(&self.programs.slapmodify, &["-n0", "-F"], &path, what);
        let _ = fs::remove_file(&path);
        outcome
    }

    /// Brings the size limit and indexes of a state made by an older
    /// Roleout up to this one's, offline: `slapmodify` replaces the
    /// database's `olcDbMaxSize` and `olcDbIndex` and `slapindex` builds
    /// the indexes over the entries already stored (an
    /// index slapd did not keep from the start would miss them). The copy
    /// kept in the state (`indexes.ldif`) says which indexes it has; a new
    /// state is made with them and gets its copy then.
    fn upgrade_indexes(&self) -> Result<()> {
        let indexes = index_ldif();
        let copy = self.state.join("indexes.ldif");
        if fs::read_to_string(&copy).is_ok_and(|text| text == indexes) {
            return Ok(());
        }
        self.modify_config(
            &replacements(&indexes, &["olcDbMaxSize", "olcDbIndex"]),
            "the size limit and indexes",
        )?;
        let output = Command::new(&self.programs.slapindex)
            .arg("-F")
            .arg(self.config_dir())
            .args(["-b", &self.options.suffix, "-q"])
            .stdin(Stdio::null())
            .output()
            .map_err(|error| spawn_error(&self.programs.slapindex, error))?;
        if !output.status.success() {
            let mut log = String::from_utf8_lossy(&output.stdout).into_owned();
            log.push_str(&String::from_utf8_lossy(&output.stderr));
            return Err(DirectoryError::Slapd {
                message: format!(
                    "slapindex of {} failed ({})",
                    self.options.suffix, output.status
                ),
                log_tail: last_lines(&log, 40),
            });
        }
        write_file(&copy, &indexes, 0o644)
    }

    /// Adds the syncprov module and overlay to a state made before
    /// Roleout's change feed existed (new states have them from the
    /// start), offline: `slapmodify` loads the module, `slapadd` adds the
    /// overlay entry.
    fn initialize_sync(&self) -> Result<()> {
        let database = self
            .config_dir()
            .join("cn=config")
            .join("olcDatabase={1}mdb");
        if database.join("olcOverlay={0}syncprov.ldif").is_file() {
            return Ok(());
        }
        let module = self
            .config_dir()
            .join("cn=config")
            .join("cn=module{0}.ldif");
        let loaded = fs::read_to_string(&module)
            .map(|text| text.contains("syncprov"))
            .unwrap_or(false);
        if !loaded {
            let modification_path = self.state.join("syncprov-module.ldif");
            write_file(
                &modification_path,
                "dn: cn=module{0},cn=config\nchangetype: modify\nadd: olcModuleLoad\n\
                 olcModuleLoad: syncprov\n",
                0o600,
            )?;
            let outcome = self.run_slap_tool(
                &self.programs.slapmodify,
                &["-n0", "-F"],
                &modification_path,
                "the syncprov module",
            );
            let _ = fs::remove_file(&modification_path);
            outcome?;
        }
        let overlay_path = self.state.join("syncprov-overlay.ldif");
        write_file(&overlay_path, SYNCPROV_OVERLAY, 0o600)?;
        let outcome = self.run_slapadd(&["-n0", "-F"], &overlay_path, "the syncprov overlay");
        let _ = fs::remove_file(&overlay_path);
        outcome
    }

    /// Configures multi-provider replication offline when
    /// [`LocalOptions::replication`] asks for it and the configuration
    /// applied last (`replication.sha256`, the digest of what was applied)
    /// is another: the server id, one `olcSyncrepl` per peer binding as
    /// the replicator account, and `olcMultiProvider`. The root DN gets no
    /// password (a state made by an older Roleout, whose providers bound
    /// as the root DN, loses it): it is reached over ldapi only.
    fn initialize_replication(&self) -> Result<()> {
        let Some(replication) = &self.options.replication else {
            return Ok(());
        };
        let wanted = format!(
            "{}\n{}\n{}\n{REPLICATION_CONFIGURATION}",
            replication.server_id,
            replication.peers.join("\n"),
            replication.secret.expose()
        );
        let digest = roleout_model::ids::Sha256::of(wanted.as_bytes()).to_string();
        let applied = self.state.join("replication.sha256");
        if fs::read_to_string(&applied).is_ok_and(|text| text.trim() == digest) {
            return Ok(());
        }
        let replicator = Layout::new(&self.settings()).replicator_account();
        let suffix = &self.options.suffix;
        let mut database_changes = String::new();
        let database = self
            .config_dir()
            .join("cn=config")
            .join("olcDatabase={1}mdb.ldif");
        if fs::read_to_string(&database).is_ok_and(|text| text.contains("\nolcRootPW:")) {
            database_changes.push_str("delete: olcRootPW\n-\n");
        }
        // A provider with no peer yet (they are added later, online) has
        // no syncrepl, and slapd refuses olcMultiProvider without one.
        if !replication.peers.is_empty() {
            database_changes.push_str("replace: olcSyncrepl\n");
        }
        for (index, peer) in replication.peers.iter().enumerate() {
            let _ = writeln!(
                database_changes,
                "olcSyncrepl: {{{index}}}rid={:03} provider={peer} bindmethod=simple \
                 binddn=\"{replicator}\" credentials=\"{}\" searchbase=\"{suffix}\" \
                 type=refreshAndPersist retry=\"1 +\" timeout=3 network-timeout=3",
                index + 1,
                replication.secret.expose()
            );
        }
        if !replication.peers.is_empty() {
            database_changes.push_str("-\nreplace: olcMultiProvider\nolcMultiProvider: TRUE\n-\n");
        }
        let mut modification = format!(
            "dn: cn=config\nchangetype: modify\nreplace: olcServerID\nolcServerID: {}\n-\n",
            replication.server_id
        );
        if !database_changes.is_empty() {
            let _ = write!(
                modification,
                "\ndn: olcDatabase={{1}}mdb,cn=config\nchangetype: modify\n{database_changes}"
            );
        }
        let modification_path = self.state.join("replication.ldif");
        write_file(&modification_path, &modification, 0o600)?;
        let outcome = self.run_slap_tool(
            &self.programs.slapmodify,
            &["-n0", "-F"],
            &modification_path,
            "the replication configuration",
        );
        let _ = fs::remove_file(&modification_path);
        outcome?;
        write_file(&applied, &digest, 0o600)
    }

    fn run_slapadd(&self, database: &[&str], ldif: &Path, what: &str) -> Result<()> {
        self.run_slap_tool(&self.programs.slapadd, database, ldif, what)
    }

    /// Runs `slapadd` or `slapmodify` offline on `database` with `ldif`.
    fn run_slap_tool(
        &self,
        program: &Path,
        database: &[&str],
        ldif: &Path,
        what: &str,
    ) -> Result<()> {
        let output = Command::new(program)
            .args(database)
            .arg(self.config_dir())
            .arg("-l")
            .arg(ldif)
            .stdin(Stdio::null())
            .output()
            .map_err(|error| spawn_error(program, error))?;
        if output.status.success() {
            return Ok(());
        }
        let mut log = String::from_utf8_lossy(&output.stdout).into_owned();
        log.push_str(&String::from_utf8_lossy(&output.stderr));
        let name = program
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        Err(DirectoryError::Slapd {
            message: format!(
                "{name} of {what} from {} failed ({})",
                ldif.display(),
                output.status
            ),
            log_tail: last_lines(&log, 40),
        })
    }

    /// Hashes the password in `file` with `slappasswd -T` (the password
    /// never appears on a command line).
    fn hash_password(&self, file: &Path) -> Result<String> {
        let output = Command::new(&self.programs.slappasswd)
            .arg("-T")
            .arg(file)
            .stdin(Stdio::null())
            .output()
            .map_err(|error| spawn_error(&self.programs.slappasswd, error))?;
        let hash = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        if !output.status.success() || !hash.starts_with('{') {
            return Err(DirectoryError::Slapd {
                message: format!(
                    "slappasswd could not hash a service password ({})",
                    output.status
                ),
                log_tail: last_lines(&String::from_utf8_lossy(&output.stderr), 10),
            });
        }
        Ok(hash)
    }
}

impl Drop for LocalDirectory {
    fn drop(&mut self) {
        if let Err(error) = self.stop() {
            tracing::warn!(%error, "could not stop the embedded slapd");
        }
        // The `temporary` field, dropped after this, removes a temporary
        // state directory.
    }
}

/// The `cn=config` LDIF for a private slapd in `state` serving `suffix`.
fn config_ldif(state: &Path, suffix: &str) -> String {
    let state = state.display();
    let root = format!("cn=admin,{suffix}");
    // SASL EXTERNAL over ldapi names the peer by uid and gid; map ours to the
    // root DN. The `\+` is required: an unescaped + never matches.
    let uid = nix::unistd::getuid();
    let gid = nix::unistd::getgid();
    let mut out = String::new();
    let _ = write!(
        out,
        "\
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: {state}/slapd.pid
olcArgsFile: {state}/slapd.args
olcAuthzRegexp: {{0}}\"gidNumber={gid}\\+uidNumber={uid},cn=peercred,cn=external,cn=auth\" \"{root}\"

dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: {MODULE_PATH}
olcModuleLoad: {{0}}back_mdb
olcModuleLoad: {{1}}syncprov

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file://{STOCK_SCHEMAS}/core.ldif

include: file://{STOCK_SCHEMAS}/cosine.ldif

include: file://{STOCK_SCHEMAS}/inetorgperson.ldif

include: file://{STOCK_SCHEMAS}/nis.ldif

include: file://{state}/roleout.ldif

dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend
olcAccess: {{0}}to dn.base=\"\" by users read by * none
olcAccess: {{1}}to dn.base=\"cn=Subschema\" by users read by * none
olcAccess: {{2}}to * by * none

dn: olcDatabase={{0}}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{0}}config
olcAccess: {{0}}to * by dn.exact=\"{root}\" manage by * none

dn: olcDatabase={{1}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{1}}mdb
olcSuffix: {suffix}
olcDbDirectory: {state}/data
olcRootDN: {root}
"
    );
    out.push_str(&index_ldif());
    out.push_str(&access_ldif(suffix));
    out.push('\n');
    out.push_str(SYNCPROV_OVERLAY);
    out
}

/// The attributes the database indexes for equality: those Roleout
/// searches by, and `entryUUID` and `entryCSN`, by which a provider of a
/// replicated directory finds the entry a change it is sent applies to
/// (without them every replicated change is a scan of the database).
const INDEXED: &[&str] = &[
    "objectClass",
    "cn",
    "member",
    "roleoutParentRole",
    "roleoutCertificateFingerprint",
    "roleoutOf",
    "roleoutSuiteName",
    "roleoutMachineName",
    "roleoutHardwareKey",
    "entryUUID",
    "entryCSN",
];

/// The most the database file may grow to: 64 GiB. LMDB maps the file
/// with this size reserved in the address space, not on disk; the file
/// grows as entries are stored (100,000 machines with their reports take
/// some gigabytes: SCALE.md).
const MAX_DATABASE_BYTES: u64 = 64 << 30;

/// The database's size limit and indexes as `olcDbMaxSize` and
/// `olcDbIndex` lines.
fn index_ldif() -> String {
    let mut out = format!("olcDbMaxSize: {MAX_DATABASE_BYTES}\n");
    for attribute in INDEXED {
        let _ = writeln!(out, "olcDbIndex: {attribute} eq");
    }
    out
}

/// LDIF modify lines replacing each of `attributes` with its values in
/// `ldif` (`attribute: value` lines).
fn replacements(ldif: &str, attributes: &[&str]) -> String {
    let mut out = String::new();
    for attribute in attributes {
        let _ = writeln!(out, "replace: {attribute}");
        let prefix = format!("{attribute}:");
        for line in ldif.lines().filter(|line| line.starts_with(&prefix)) {
            let _ = writeln!(out, "{line}");
        }
        out.push_str("-\n");
    }
    out
}

/// The database's access rules as `olcAccess` lines and its limits as
/// `olcLimits` lines (each in order; `crate::access` holds both), for the
/// database entry and for bringing an older state's up to date.
fn access_ldif(suffix: &str) -> String {
    let mut out = String::new();
    for (index, rule) in crate::access::openldap_rules(suffix).iter().enumerate() {
        let _ = writeln!(out, "olcAccess: {{{index}}}{rule}");
    }
    for (index, limit) in crate::access::openldap_limits(suffix).iter().enumerate() {
        let _ = writeln!(out, "olcLimits: {{{index}}}{limit}");
    }
    out
}

/// The syncprov overlay on the database: content synchronization, which
/// roleoutd's change feed (`crate::feed`) uses to cache with exact
/// invalidation. No checkpoint or session log: the feed asks for a fresh
/// cookie on every (re)connect.
const SYNCPROV_OVERLAY: &str = "\
dn: olcOverlay={0}syncprov,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcSyncProvConfig
olcOverlay: {0}syncprov
";

/// A fresh P-256 key and a self-signed certificate for `localhost` and
/// `127.0.0.1` (an IP SAN), both PEM; the key is PKCS#8, which GnuTLS
/// reads.
fn self_signed_certificate() -> Result<(String, String)> {
    let fail = |error: rcgen::Error| DirectoryError::Slapd {
        message: format!("cannot make the embedded directory's TLS certificate: {error}"),
        log_tail: String::new(),
    };
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(fail)?;
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .map_err(fail)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Roleout embedded directory");
    let certificate = params.self_signed(&key).map_err(fail)?;
    Ok((certificate.pem(), key.serialize_pem()))
}

/// `ldif/base.ldif` moved to `suffix`, with a password on each account.
pub(crate) fn base_ldif(suffix: &str, accounts: &[(String, String)]) -> String {
    let first_dc = suffix
        .split(',')
        .next()
        .and_then(|rdn| rdn.split_once('='))
        .map(|(_, value)| value.trim())
        .unwrap_or("example");
    let text = BASE_LDIF
        .replace(BASE_LDIF_SUFFIX, suffix)
        .replace("\ndc: example\n", &format!("\ndc: {first_dc}\n"));
    let mut out = String::new();
    for block in text.split("\n\n") {
        out.push_str(block.trim_end());
        let dn = block
            .lines()
            .find_map(|line| line.strip_prefix("dn: "))
            .unwrap_or_default();
        if let Some((_, hash)) = accounts.iter().find(|(account, _)| account == dn) {
            let _ = write!(
                out,
                "\nobjectClass: simpleSecurityObject\nuserPassword: {hash}"
            );
        }
        out.push_str("\n\n");
    }
    out
}

/// A replication setting slapd can take: a server id in its range, and a
/// secret that is not empty (an empty password is an anonymous bind) and
/// fits in `olcSyncrepl`'s quoted `credentials` (no quote, backslash or
/// line break). The secret itself is never named.
fn check_replication(replication: &Replication) -> Result<()> {
    if !(1..=4095).contains(&replication.server_id) {
        return Err(DirectoryError::Settings(format!(
            "replication server id {} is not between 1 and 4095",
            replication.server_id
        )));
    }
    let secret = replication.secret.expose();
    if secret.is_empty() {
        return Err(DirectoryError::Settings(
            "the replication secret is empty".to_owned(),
        ));
    }
    if secret
        .chars()
        .any(|c| matches!(c, '"' | '\\') || c.is_control())
    {
        return Err(DirectoryError::Settings(
            "the replication secret holds a quote, a backslash or a control character, which \
             syncrepl's credentials cannot carry"
                .to_owned(),
        ));
    }
    Ok(())
}

/// Only `dc=` chains are supported as suffixes, because the suffix entry
/// in `ldif/base.ldif` is a dcObject.
fn check_suffix(suffix: &str) -> Result<()> {
    let valid = !suffix.is_empty()
        && suffix.split(',').all(|rdn| {
            rdn.split_once('=').is_some_and(|(attribute, value)| {
                attribute.trim().eq_ignore_ascii_case("dc")
                    && !value.is_empty()
                    && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
        });
    if valid {
        Ok(())
    } else {
        Err(DirectoryError::Settings(format!(
            "embedded directory suffix {suffix:?} must be a chain of dc= components (dc=example,dc=org)"
        )))
    }
}

fn spawn_error(program: &Path, error: std::io::Error) -> DirectoryError {
    if error.kind() == std::io::ErrorKind::NotFound {
        DirectoryError::SlapdMissing {
            program: program.to_owned(),
        }
    } else {
        DirectoryError::io(format!("cannot run {}", program.display()), error)
    }
}

/// The file naming the process that started the running slapd: its pid
/// and its start time (clock ticks after boot, so a recycled pid is not
/// taken for it).
const OWNER_FILE: &str = "slapd.owner";

/// When process `pid` started, in clock ticks after boot (field 22 of
/// `/proc/PID/stat`), or `None` when it does not exist.
fn process_start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which ends with the last ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether `pid` is a running slapd (so a recycled pid in a stale pid
/// file is not taken for one, nor a slapd that exited and that nobody
/// reaped yet).
fn is_slapd(pid: i32) -> bool {
    let named =
        fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|name| name.trim() == "slapd");
    let ended = fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X")
    });
    named && !ended
}

pub(crate) fn write_file(path: &Path, contents: &str, mode: u32) -> Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(|error| DirectoryError::io(format!("cannot write {}", path.display()), error))?;
    file.write_all(contents.as_bytes())
        .map_err(|error| DirectoryError::io(format!("cannot write {}", path.display()), error))
}

fn read_secret(path: &Path) -> Result<Secret> {
    let text = fs::read_to_string(path)
        .map_err(|error| DirectoryError::io(format!("cannot read {}", path.display()), error))?;
    Ok(Secret::new(text))
}

/// 24 random bytes from the kernel, as hex.
pub(crate) fn random_password() -> Result<String> {
    let mut bytes = [0_u8; 24];
    fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .map_err(|error| DirectoryError::io("cannot read /dev/urandom", error))?;
    Ok(bytes.iter().fold(String::new(), |mut hex, byte| {
        let _ = write!(hex, "{byte:02x}");
        hex
    }))
}

/// A loopback port nobody listens on right now.
pub(crate) fn free_port() -> Result<u16> {
    let listener = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
        .map_err(|error| DirectoryError::io("cannot find a free loopback port", error))?;
    listener
        .local_addr()
        .map(|address| address.port())
        .map_err(|error| DirectoryError::io("cannot find a free loopback port", error))
}

/// A free loopback port other than `taken` (which slapd is about to use
/// but does not listen on yet).
fn free_port_besides(taken: u16) -> Result<u16> {
    for _ in 0..5 {
        let port = free_port()?;
        if port != taken {
            return Ok(port);
        }
    }
    Err(DirectoryError::PortInUse { port: taken })
}

/// Percent-encodes everything but unreserved characters, as ldapi URLs need.
fn percent_encode(text: &str) -> String {
    text.bytes().fold(String::new(), |mut out, byte| {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
        out
    })
}

/// An anonymous simple bind request, message id 1 (RFC 4511 BER).
const ANONYMOUS_BIND: [u8; 14] = [
    0x30, 0x0c, 0x02, 0x01, 0x01, 0x60, 0x07, 0x02, 0x01, 0x03, 0x04, 0x00, 0x80, 0x00,
];

/// Sends an anonymous bind and checks for a success BindResponse.
fn answers_bind(stream: &mut (impl Read + Write)) -> bool {
    if stream.write_all(&ANONYMOUS_BIND).is_err() {
        return false;
    }
    let mut response = [0_u8; 64];
    let Ok(read) = stream.read(&mut response) else {
        return false;
    };
    // BindResponse: [APPLICATION 1], then resultCode ENUMERATED 0.
    response[..read]
        .windows(5)
        .any(|window| window[0] == 0x61 && window[2..5] == [0x0a, 0x01, 0x00])
}

fn answers_bind_unix(socket: &Path) -> bool {
    let Ok(mut stream) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    answers_bind(&mut stream)
}

fn answers_bind_tcp(port: u16) -> bool {
    let address = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port).into();
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_secs(2)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    answers_bind(&mut stream)
}

fn accepts_tcp(port: u16) -> bool {
    let address = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port).into();
    TcpStream::connect_timeout(&address, Duration::from_secs(2)).is_ok()
}

fn tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => last_lines(&String::from_utf8_lossy(&bytes), lines),
        Err(error) => format!("(no log: cannot read {}: {error})", path.display()),
    }
}

pub(crate) fn last_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

/// The LDIF that replaces the attribute types and object classes of the
/// schema entry `rdn` (`cn={4}roleout`) under `cn=schema,cn=config` with
/// those of `schema` (an LDIF of the schema entry, folded or not).
pub fn schema_replacement(rdn: &str, schema: &str) -> String {
    let mut unfolded: Vec<String> = Vec::new();
    for line in schema.lines() {
        if line.starts_with('#') {
            continue;
        }
        match (line.strip_prefix(' '), unfolded.last_mut()) {
            (Some(continued), Some(last)) => last.push_str(continued),
            _ => unfolded.push(line.to_owned()),
        }
    }
    let of = |attribute: &str| -> Vec<&String> {
        unfolded
            .iter()
            .filter(|line| line.starts_with(&format!("{attribute}:")))
            .collect()
    };
    let mut out = format!("dn: {rdn},cn=schema,cn=config\nchangetype: modify\n");
    for attribute in ["olcAttributeTypes", "olcObjectClasses"] {
        out.push_str(&format!("replace: {attribute}\n"));
        for line in of(attribute) {
            out.push_str(line);
            out.push('\n');
        }
        out.push_str("-\n");
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]
mod tests {
    use super::*;

    #[test]
    fn ldapi_paths_are_percent_encoded() {
        assert_eq!(percent_encode("/tmp/x y/ldapi"), "%2Ftmp%2Fx%20y%2Fldapi");
    }

    #[test]
    fn base_ldif_moves_to_the_suffix_and_gets_passwords() {
        let accounts = [(
            "cn=roleoutd,ou=roleout,dc=corp,dc=test".to_owned(),
            "{SSHA}abc".to_owned(),
        )];
        let ldif = base_ldif("dc=corp,dc=test", &accounts);
        assert!(ldif.contains("dn: dc=corp,dc=test\n"), "{ldif}");
        assert!(ldif.contains("\ndc: corp\n"), "{ldif}");
        assert!(!ldif.contains("example"), "{ldif}");
        assert!(ldif.contains(
            "cn: roleoutd\ndescription: The builder and server: reads the catalog, roles and machines; \
             writes builds, reports and enrolments\nobjectClass: simpleSecurityObject\nuserPassword: {SSHA}abc\n\n"
        ), "{ldif}");
    }

    #[test]
    fn replication_secrets_must_fit_syncrepl_and_never_be_named() {
        let replication = |secret: &str, server_id: u16| Replication {
            server_id,
            peers: Vec::new(),
            secret: Secret::new(secret),
            join_credentials: None,
        };
        assert!(check_replication(&replication("s3cret-Pass_word", 1)).is_ok());
        for (secret, server_id, says) in [
            ("", 1, "is empty"),
            ("with\"quote", 1, "quote"),
            ("with\\backslash", 1, "backslash"),
            ("two\nlines", 1, "control character"),
            ("fine", 0, "between 1 and 4095"),
            ("fine", 4096, "between 1 and 4095"),
        ] {
            let error = check_replication(&replication(secret, server_id))
                .unwrap_err()
                .to_string();
            assert!(error.contains(says), "{secret:?}: {error}");
            if !secret.is_empty() && secret != "fine" {
                assert!(!error.contains(secret), "the secret is named: {error}");
            }
        }
    }

    #[test]
    fn suffixes_must_be_dc_chains() {
        assert!(check_suffix("dc=example,dc=org").is_ok());
        assert!(check_suffix("o=corp").is_err());
        assert!(check_suffix("dc=a b").is_err());
        assert!(check_suffix("").is_err());
    }

    #[test]
    fn missing_programs_name_the_packages() {
        let empty = tempfile::tempdir().unwrap();
        let error = LocalDirectory::temporary_with(LocalOptions {
            programs: Some(empty.path().to_owned()),
            ..LocalOptions::default()
        })
        .unwrap_err();
        assert!(
            matches!(error, DirectoryError::SlapdMissing { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("`slapd`"), "{error}");
    }
}
