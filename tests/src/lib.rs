//! End-to-end tests of Roleout over real slapd, roleoutd and roleout
//! processes.
//!
//! A [`World`] is one whole installation in a temporary directory: the real
//! `roleoutd` binary with the managed slapd it runs in its state directory,
//! the example catalog and its payloads imported with the real
//! `roleout-admin`, the three roles of the quickstart (end-user, developer,
//! administrator), and machines enrolled with the real `roleout`, each with
//! its own state directory and sandbox root (a dpkg database and `/opt`).
//! Everything is driven through the binaries' command lines, as an
//! administrator and a machine would; only the reports are read back with
//! the directory crate, because no command prints them whole.
//!
//! The binaries belong to other packages of the workspace, so Cargo does not
//! build them for `cargo test -p roleout-tests`; the harness looks for them
//! next to the test executable and names the missing one and the build
//! command when one is not there.
//!
//! This is test support: it panics with a message saying what failed (and
//! the output of the command that failed) instead of returning errors.

pub mod sysfs;
pub mod trees;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use roleout_directory::catalog::reports::StoredReport;
use roleout_directory::{Directory, LocalDirectory};
use roleout_model::ids::MachineId;

/// The suffix of the managed slapd's tree (roleoutd's default).
const SUFFIX: &str = "dc=example,dc=org";

/// How long roleoutd may take to write its address file. Generous: two
/// cores are shared by parallel tests that each start slapd and roleoutd.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// How long roleoutd may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// The repository root.
pub fn repository() -> PathBuf {
    // CARGO_MANIFEST_DIR is tests/, which sits in the repository root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// A file or directory under `tests/fixtures`.
pub fn fixture(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(relative)
}

/// The path of one of the workspace's binaries (`roleoutd`,
/// `roleout-admin`, `roleout`) in the target directory the test runs from.
///
/// # Panics
/// When it is not built, with the command that builds it.
pub fn binary(name: &str) -> PathBuf {
    // A test executable is TARGET/PROFILE/deps/NAME-HASH; the workspace's
    // binaries are in TARGET/PROFILE.
    let executable = std::env::current_exe().expect("the test executable has a path");
    let profile_dir = executable
        .parent()
        .and_then(Path::parent)
        .expect("the test executable is in TARGET/PROFILE/deps");
    let path = profile_dir.join(name);
    assert!(
        path.is_file(),
        "{name} is not built: {} does not exist. These end-to-end tests run the \
         workspace's binaries; build them first with `cargo build --workspace --all-targets` \
         (the README's test command does).",
        path.display()
    );
    path
}

/// A finished command: its exit status and what it printed.
#[derive(Debug)]
pub struct Finished {
    /// The exit code (`None` when a signal ended it).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Finished {
    fn from_output(output: Output) -> Finished {
        Finished {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Both streams, for assertion messages.
    pub fn transcript(&self) -> String {
        format!(
            "exit code {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A small HTTP server on 127.0.0.1 for the length of a test: it answers
/// `GET /NAME` with the bytes given for NAME (404 otherwise), for at most
/// `requests` requests or 120 seconds, whichever ends first.
pub struct FileServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FileServer {
    /// Serves `files` (name, bytes).
    pub fn start(files: Vec<(String, Vec<u8>)>, requests: usize) -> FileServer {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("its address"));
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut served = 0;
            while served < requests && Instant::now() < deadline {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                served += 1;
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let mut reader = BufReader::new(&stream);
                let mut request = String::new();
                let _ = reader.read_line(&mut request);
                // The rest of the head.
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|read| read > 2) {
                    line.clear();
                }
                let path = request.split_whitespace().nth(1).unwrap_or("/");
                let body = files
                    .iter()
                    .find(|(name, _)| path.trim_start_matches('/') == name)
                    .map(|(_, bytes)| bytes.clone());
                let mut stream = &stream;
                let _ = match body {
                    Some(bytes) => stream
                        .write_all(
                            format!(
                                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                                bytes.len()
                            )
                            .as_bytes(),
                        )
                        .and_then(|()| stream.write_all(&bytes)),
                    None => stream.write_all(
                        b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    ),
                };
            }
        });
        FileServer {
            url,
            thread: Some(thread),
        }
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        // The thread ends by itself (its request count or its deadline);
        // it is not waited for.
        drop(self.thread.take());
    }
}

/// Waits for a child started with piped output and returns what it did.
pub fn wait_finished(child: Child) -> Finished {
    Finished::from_output(child.wait_with_output().expect("the child is waited for"))
}

/// `command` without the Roleout settings of the test's own environment.
fn without_roleout_settings(command: &mut Command) -> &mut Command {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ROLEOUT") {
            command.env_remove(&key);
        }
    }
    command
}

/// Runs `command` to its end, with no Roleout settings from the test's
/// environment leaking into it.
fn run(command: &mut Command) -> Finished {
    run_with_input(command, None)
}

/// [`run`], with `input` on standard input (none when `None`).
fn run_with_input(command: &mut Command, input: Option<&str>) -> Finished {
    without_roleout_settings(command);
    let Some(input) = input else {
        let output = command
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
        return Finished::from_output(output);
    };
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    let mut stdin = child.stdin.take().expect("the child's standard input");
    let text = input.to_owned();
    // Written from a thread so a child that fills its output pipes before
    // reading all of its input cannot deadlock the test.
    let writer = std::thread::spawn(move || {
        use std::io::Write as _;
        let _ = stdin.write_all(text.as_bytes());
    });
    let output = child
        .wait_with_output()
        .unwrap_or_else(|error| panic!("cannot wait for {command:?}: {error}"));
    let _ = writer.join();
    Finished::from_output(output)
}

/// Starts roleoutd on `listen` with its state in `server_state` and its
/// log appended to `top/roleoutd.log`; returns it with the address it
/// listens on once it does.
fn start_daemon(
    top: &Path,
    server_state: &Path,
    listen: &str,
    extra: &[String],
) -> (Daemon, String) {
    start_daemon_logging(&top.join("roleoutd.log"), server_state, listen, extra)
}

/// [`start_daemon`], logging to `log_path`.
fn start_daemon_logging(
    log_path: &Path,
    server_state: &Path,
    listen: &str,
    extra: &[String],
) -> (Daemon, String) {
    let log_path = log_path.to_owned();
    let address_file = server_state.join("roleoutd.addr");
    let _ = fs::remove_file(&address_file);
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .expect("roleoutd's log file");
    let child = Command::new(binary("roleoutd"))
        .arg("--state-dir")
        .arg(server_state)
        .args(["--listen", listen])
        .args(["--log", "info"])
        .args(extra)
        .env_remove("ROLEOUTD_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("roleoutd starts");
    let mut daemon = Daemon { child };
    let deadline = Instant::now() + START_TIMEOUT;
    let address = loop {
        // roleoutd writes the file once it listens; the newline ends it.
        if let Ok(text) = fs::read_to_string(&address_file)
            && text.ends_with('\n')
        {
            break text.trim().to_owned();
        }
        if let Ok(Some(status)) = daemon.child.try_wait() {
            panic!(
                "roleoutd exited with {status} before listening; its log:\n{}",
                fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "roleoutd did not write {} within {START_TIMEOUT:?}; its log:\n{}",
            address_file.display(),
            fs::read_to_string(&log_path).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    (daemon, address)
}

/// A roleoutd process, stopped with SIGTERM when dropped (as a service
/// manager stops it), killed if it does not stop in time.
struct Daemon {
    child: Child,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        stop_child(&mut self.child, Signal::SIGTERM, STOP_TIMEOUT);
    }
}

/// Builds the example catalog's payloads into `into` with
/// `examples/payloads/build.sh` (byte for byte the same on every run).
pub fn build_example_payloads(into: &Path) {
    let built = run(Command::new("sh")
        .arg(repository().join("examples/payloads/build.sh"))
        .arg(into));
    assert_eq!(
        built.code,
        Some(0),
        "examples/payloads/build.sh failed\n{}",
        built.transcript()
    );
}

/// What every roleoutd of one installation shares, relative to its state
/// directory: the token secret, the builder key and the TLS certificate.
pub const INSTALLATION_FILES: [&str; 5] = [
    "token-secret",
    "builder-key.pk8",
    "builder-key.pub",
    "tls/cert.pem",
    "tls/key.pem",
];

/// Copies [`INSTALLATION_FILES`] from the state directory `from` into
/// `to`, so a roleoutd started on `to` is another instance of the same
/// installation.
pub fn share_installation(from: &Path, to: &Path) {
    fs::create_dir_all(to.join("tls")).expect("the new instance's state folder");
    for shared in INSTALLATION_FILES {
        fs::copy(from.join(shared), to.join(shared))
            .unwrap_or_else(|error| panic!("{shared}: {error}"));
    }
}

/// A free loopback port (bound, read and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// An HTTPS client that trusts only the certificate in the PEM file
/// `certificate` and follows no redirect.
pub fn pinned_client(certificate: &Path) -> ureq::Agent {
    let pem = fs::read(certificate).expect("the certificate file");
    let certificate = ureq::tls::Certificate::from_pem(&pem)
        .expect("a PEM certificate")
        .to_owned();
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(vec![
            certificate,
        ])))
        .build();
    ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .new_agent()
}

/// A roleoutd started on its own (not a [`World`]'s): stopped with SIGTERM
/// when dropped.
pub struct Instance {
    daemon: Daemon,
    /// `host:port` it listens on.
    pub address: String,
}

impl Instance {
    /// Starts `roleoutd --state-dir STATE --listen LISTEN EXTRA...`,
    /// logging to `log` (appended), and waits until it listens.
    pub fn start(log: &Path, state: &Path, listen: &str, extra: &[String]) -> Instance {
        fs::create_dir_all(state).expect("roleoutd's state folder");
        let (daemon, address) = start_daemon_logging(log, state, listen, extra);
        Instance { daemon, address }
    }

    /// Kills it with SIGKILL (a crash) and waits for it to be gone.
    pub fn kill(&mut self) {
        stop_child(&mut self.daemon.child, Signal::SIGKILL, STOP_TIMEOUT);
    }
}

/// Runs `command` (without the caller's Roleout settings in its
/// environment) and returns what it did.
pub fn run_command(command: &mut Command) -> Finished {
    run(command)
}

/// Stops `child` as its service manager would: `signal`, up to `grace` for
/// it to exit, then SIGKILL. Waits for it either way (no zombie).
pub fn stop_child(child: &mut Child, signal: Signal, grace: Duration) {
    // The child's id fits an i32: Linux process ids are below 2^22.
    let pid = Pid::from_raw(child.id() as i32);
    let _ = kill(pid, signal);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// One installation: roleoutd over its managed slapd, the example catalog
/// and payloads, the three roles; machines are enrolled on demand.
pub struct World {
    // Declared first so it is dropped first: roleoutd (and the slapd it
    // manages) stop before their state directory is removed.
    daemon: Daemon,
    top: Option<tempfile::TempDir>,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// roleoutd's state directory.
    pub server_state: PathBuf,
    /// The built example payloads.
    pub payloads: PathBuf,
    /// Arguments roleoutd is started with besides the usual ones.
    roleoutd_args: Vec<String>,
    /// How roleout-admin reaches the directory besides `--state-dir`
    /// (empty: the slapd roleoutd manages).
    admin_connection: Vec<String>,
    /// The 389 Directory Server the installation uses instead of a managed
    /// slapd; dropped after roleoutd stops.
    ds389: Option<roleout_directory::ds389::Ds389Instance>,
}

impl World {
    /// Starts roleoutd on a free loopback port with a fresh managed slapd,
    /// imports `examples/` with its built payloads and creates the roles
    /// end-user (rank 10), developer and administrator (ranks 20 and 30,
    /// both children of end-user), then builds the suites.
    pub fn start() -> World {
        World::start_with(&[])
    }

    /// [`World::start`], with roleoutd started with `roleoutd_args` too
    /// (and restarted with them).
    pub fn start_with(roleoutd_args: &[&str]) -> World {
        let roleoutd_args: Vec<String> =
            roleoutd_args.iter().map(|arg| (*arg).to_owned()).collect();
        World::start_over(roleoutd_args, Vec::new(), None)
    }

    /// [`World::start`] over a private 389 Directory Server set up as
    /// README tells an admin to set up an existing one, with its change
    /// feed's plugins enabled: roleoutd binds as `cn=roleoutd` and
    /// roleout-admin as `cn=admin`, each with its password file.
    pub fn start_on_389() -> World {
        let mut ds389 = roleout_directory::ds389::Ds389Instance::start()
            .unwrap_or_else(|error| panic!("{error}"));
        ds389
            .enable_content_synchronization()
            .unwrap_or_else(|error| panic!("{error}"));
        let credentials = ds389.state_dir().join("credentials");
        let connection = |flag: &str, account: &str| {
            vec![
                flag.to_owned(),
                ds389.ldap_url(),
                "--bind-dn".to_owned(),
                format!(
                    "cn={account},ou=roleout,{}",
                    roleout_directory::ds389::SUFFIX
                ),
                "--bind-password-file".to_owned(),
                credentials
                    .join(format!("{account}.password"))
                    .display()
                    .to_string(),
                "--base-dn".to_owned(),
                format!("ou=roleout,{}", roleout_directory::ds389::SUFFIX),
            ]
        };
        let roleoutd_args = connection("--directory-url", "roleoutd");
        let admin_connection = connection("--url", "admin");
        World::start_over(roleoutd_args, admin_connection, Some(ds389))
    }

    fn start_over(
        roleoutd_args: Vec<String>,
        admin_connection: Vec<String>,
        ds389: Option<roleout_directory::ds389::Ds389Instance>,
    ) -> World {
        let top = tempfile::Builder::new()
            .prefix("roleout-e2e-")
            .tempdir()
            .expect("a temporary directory");
        let server_state = top.path().join("server");
        let payloads = top.path().join("payloads");
        fs::create_dir_all(&server_state).expect("the server state directory");

        build_example_payloads(&payloads);

        let (daemon, address) =
            start_daemon(top.path(), &server_state, "127.0.0.1:0", &roleoutd_args);
        let world = World {
            daemon,
            top: Some(top),
            url: format!("https://{address}"),
            server_state,
            payloads,
            roleoutd_args,
            admin_connection,
            ds389,
        };
        world.import(&repository().join("examples"), Some(&world.payloads));
        world.admin(
            "role create end-user --rank 10 --description 'Every employee'; \
             role create developer --rank 20 --parent end-user --description 'Builds Notes applications'; \
             role create administrator --rank 30 --parent end-user --description 'Runs the Domino servers'",
        );
        world.build();
        world
    }

    /// Stops roleoutd and starts it again on the same address (as a
    /// service manager restarts it), with the same state.
    pub fn restart_roleoutd(&mut self) {
        self.restart_roleoutd_after(Signal::SIGTERM);
    }

    /// Kills roleoutd with SIGKILL (a crash; its slapd is left running) and
    /// starts it again on the same address, as a service manager would.
    pub fn crash_roleoutd(&mut self) {
        self.restart_roleoutd_after(Signal::SIGKILL);
    }

    /// Kills roleoutd's managed slapd with SIGKILL (a crash of the
    /// directory under a running roleoutd, which starts it again); returns
    /// whether there was one to kill.
    pub fn crash_slapd(&self) -> bool {
        let pid = fs::read_to_string(self.server_state.join("ldap").join("slapd.pid"))
            .ok()
            .and_then(|text| text.trim().parse::<i32>().ok());
        match pid {
            Some(pid) if pid > 0 => {
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL).is_ok()
            }
            _ => false,
        }
    }

    /// Kills roleoutd with SIGKILL and leaves it down (its slapd runs on,
    /// so other roleoutd of the installation keep their directory) until
    /// [`World::revive_roleoutd`].
    pub fn kill_roleoutd(&mut self) {
        stop_child(&mut self.daemon.child, Signal::SIGKILL, STOP_TIMEOUT);
    }

    /// Starts roleoutd again on its address after [`World::kill_roleoutd`].
    pub fn revive_roleoutd(&mut self) {
        let address = self
            .url
            .strip_prefix("https://")
            .expect("an https URL")
            .to_owned();
        let top = self.top().to_owned();
        let (daemon, _) = start_daemon(&top, &self.server_state, &address, &self.roleoutd_args);
        self.daemon = daemon;
    }

    fn restart_roleoutd_after(&mut self, signal: Signal) {
        let address = self
            .url
            .strip_prefix("https://")
            .expect("an https URL")
            .to_owned();
        stop_child(&mut self.daemon.child, signal, STOP_TIMEOUT);
        let top = self.top().to_owned();
        let (daemon, _) = start_daemon(&top, &self.server_state, &address, &self.roleoutd_args);
        self.daemon = daemon;
    }

    /// Runs `roleoutd --state-dir SERVER ARGS...` (a one-shot command such
    /// as `--rotate prepare`) and returns what it did.
    pub fn roleoutd(&self, args: &[&str]) -> Finished {
        run(Command::new(binary("roleoutd"))
            .arg("--state-dir")
            .arg(&self.server_state)
            .args(args))
    }

    /// The temporary directory holding everything of this world.
    pub fn top(&self) -> &Path {
        self.top
            .as_ref()
            .map(tempfile::TempDir::path)
            .expect("the directory is kept until the world is dropped")
    }

    /// Runs `roleout-admin --state-dir SERVER -c SCRIPT` and returns what it
    /// did, whatever its exit status.
    pub fn try_admin(&self, script: &str) -> Finished {
        run(self.admin_command().arg("-c").arg(script))
    }

    /// `roleout-admin --state-dir SERVER`, with the directory connection
    /// of this installation.
    fn admin_command(&self) -> Command {
        let mut command = Command::new(binary("roleout-admin"));
        command
            .arg("--state-dir")
            .arg(&self.server_state)
            .args(&self.admin_connection);
        command
    }

    /// Starts `roleout-admin --state-dir SERVER -c SCRIPT` without waiting
    /// for it (to race it against another); see [`wait_finished`].
    pub fn spawn_admin(&self, script: &str) -> Child {
        let mut command = self.admin_command();
        command
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        without_roleout_settings(&mut command)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"))
    }

    /// Takes `machine` for another job, as if its lease had run out and
    /// another admin had taken it: the lease is taken with a clock far
    /// ahead, so the one it holds counts as expired.
    pub fn take_over_lease(&self, machine: &str, job: &str) {
        let dn = self.machine_dn(machine);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("a clock after 1970")
            .as_secs();
        self.with_directory(async |directory| {
            directory
                .acquire_leases(
                    std::slice::from_ref(&dn),
                    "another-admin",
                    job,
                    now + 100 * 86_400,
                    now + 86_400,
                )
                .await
                .expect("the directory answers")
                .expect("the expired lease is taken over");
        });
    }

    /// The DN of `machine`'s entry.
    pub fn machine_dn(&self, machine: &str) -> String {
        let machine_id = MachineId::new(machine).expect("a valid machine name");
        self.with_directory(async |directory| {
            directory
                .machine(&machine_id)
                .await
                .expect("the machine's entry")
                .expect("the machine exists")
                .dn
        })
    }

    /// The lease on `machine`'s entry, if it has one.
    pub fn machine_lease(&self, machine: &str) -> Option<roleout_model::lease::Lease> {
        let dn = self.machine_dn(machine);
        self.with_directory(async |directory| directory.lease(&dn).await.expect("the lease reads"))
    }

    /// Runs `roleout-admin --state-dir SERVER` with `input` (commands, and
    /// the answers of commands that ask) on standard input; it must
    /// succeed. Returns its standard output.
    pub fn admin_input(&self, input: &str) -> String {
        let finished = run_with_input(&mut self.admin_command(), Some(input));
        assert_eq!(
            finished.code,
            Some(0),
            "roleout-admin with input {input:?} failed\n{}",
            finished.transcript()
        );
        finished.stdout
    }

    /// Runs an admin script that must succeed; returns its standard output.
    pub fn admin(&self, script: &str) -> String {
        let finished = self.try_admin(script);
        assert_eq!(
            finished.code,
            Some(0),
            "roleout-admin -c {script:?} failed\n{}",
            finished.transcript()
        );
        finished.stdout
    }

    /// Imports descriptors (a file or a directory), with their payloads
    /// from `payloads` when given.
    pub fn import(&self, descriptors: &Path, payloads: Option<&Path>) -> String {
        let mut script = format!("import {}", quoted(descriptors));
        if let Some(payloads) = payloads {
            script.push_str(&format!(" --payloads {}", quoted(payloads)));
            // Given a directory URL, roleout-admin is told where roleoutd's
            // content store is.
            if !self.admin_connection.is_empty() {
                script.push_str(&format!(
                    " --content-dir {}",
                    quoted(&self.server_state.join("content"))
                ));
            }
        }
        self.admin(&script)
    }

    /// Builds the `domino` suite for every role set; returns the builder's
    /// account of what it built.
    pub fn build(&self) -> String {
        self.admin("build domino")
    }

    /// Enrols a machine called `name` in `role` with a one-time token, as
    /// the quickstart does: the admin issues the token and adds the machine
    /// to the role, the machine enrols with `roleout enroll`. Makes its
    /// sandbox root; administrators get a response file with the
    /// administrator password.
    pub fn enroll(&self, name: &str, role: &str) -> Machine {
        self.enroll_with(name, role, &[])
    }

    /// [`World::enroll`], with `extra` arguments for `roleout enroll`.
    pub fn enroll_with(&self, name: &str, role: &str, extra: &[&str]) -> Machine {
        let token = self
            .admin(&format!("enroll-token {name}"))
            .trim()
            .to_owned();
        assert!(!token.is_empty(), "enroll-token {name} printed no token");
        self.admin(&format!("role add-member {role} {name}"));

        let directory = self.top().join("machines").join(name);
        let machine = Machine {
            name: name.to_owned(),
            state: directory.join("state"),
            root: directory.join("root"),
            response_file: (role == "administrator").then(|| directory.join("response.toml")),
            default_response_file: directory.join("etc/roleout/response.toml"),
        };
        fs::create_dir_all(&machine.state).expect("the machine's state directory");
        // The sandbox root: an empty dpkg database for dpkg --root, /opt
        // and /var/log.
        for sub in [
            "var/lib/dpkg/info",
            "var/lib/dpkg/updates",
            "var/log",
            "opt",
        ] {
            fs::create_dir_all(machine.root.join(sub)).expect("the sandbox root");
        }
        for file in ["var/lib/dpkg/status", "var/lib/dpkg/available"] {
            fs::write(machine.root.join(file), "").expect("the dpkg database");
        }
        if let Some(response_file) = &machine.response_file {
            fs::write(
                response_file,
                "[notes-client]\nadmin_password = \"Tr0ub4dor-e2e\"\n",
            )
            .expect("the response file");
            fs::set_permissions(response_file, fs::Permissions::from_mode(0o600))
                .expect("the response file's mode");
        }

        let enrolled = run(Command::new(binary("roleout"))
            .arg("--state-dir")
            .arg(&machine.state)
            .arg("enroll")
            .args(["--server", &self.url])
            .arg("--server-cert")
            .arg(self.server_state.join("tls/cert.pem"))
            .args(["--token", &token, "--name", name])
            .args(extra));
        assert_eq!(
            enrolled.code,
            Some(0),
            "roleout enroll {name} failed\n{}",
            enrolled.transcript()
        );
        machine
    }

    /// Runs `roleout --json install domino` on `machine`.
    pub fn install(&self, machine: &Machine) -> Run {
        self.install_suite(machine, "domino")
    }

    /// Runs `roleout --json install SUITE` on `machine`, with its response
    /// file when it has one; its default response file is the one in its
    /// own directory, never the host's.
    pub fn install_suite(&self, machine: &Machine, suite: &str) -> Run {
        let mut command = Command::new(binary("roleout"));
        command
            .arg("--state-dir")
            .arg(&machine.state)
            .args(["--json", "install", suite, "--root"])
            .arg(&machine.root)
            .arg("--default-response-file")
            .arg(&machine.default_response_file);
        if let Some(response_file) = &machine.response_file {
            command.arg("--response-file").arg(response_file);
        }
        let finished = run(&mut command);
        let events = parse_json_lines(&finished.stdout)
            .unwrap_or_else(|error| panic!("{error}\n{}", finished.transcript()));
        Run { finished, events }
    }

    /// Runs `roleout --json ARGS...` on `machine` (its state directory);
    /// returns what it did, whatever its exit status.
    pub fn roleout(&self, machine: &Machine, args: &[&str]) -> Finished {
        run(Command::new(binary("roleout"))
            .arg("--state-dir")
            .arg(&machine.state)
            .arg("--json")
            .args(args))
    }

    /// The SHA-256 of the certificate the directory holds for `machine`.
    pub fn enrolled_fingerprint(&self, machine: &Machine) -> String {
        let machine_id = MachineId::new(&machine.name).expect("a valid machine name");
        self.with_directory(async |directory| {
            directory
                .machine(&machine_id)
                .await
                .expect("the machine's entry")
                .expect("the machine exists")
                .certificate_fingerprint
                .expect("a certificate is enrolled")
                .to_string()
        })
    }

    /// What `roleout --json status` says of `machine`'s domino suite.
    pub fn status(&self, machine: &Machine) -> Value {
        let finished = run(Command::new(binary("roleout"))
            .arg("--state-dir")
            .arg(&machine.state)
            .args(["--json", "status"]));
        assert_eq!(
            finished.code,
            Some(0),
            "roleout status on {} failed\n{}",
            machine.name,
            finished.transcript()
        );
        parse_json_lines(&finished.stdout)
            .unwrap_or_else(|error| panic!("{error}\n{}", finished.transcript()))
            .into_iter()
            .find(|record| record["suite"] == "domino")
            .unwrap_or_else(|| {
                panic!(
                    "roleout status on {} has no record of suite domino\n{}",
                    machine.name,
                    finished.transcript()
                )
            })
    }

    /// Every step report `machine` sent, as roleoutd stored it in the
    /// directory (oldest first).
    pub fn reports(&self, machine: &Machine) -> Vec<StoredReport> {
        let machine_id = MachineId::new(&machine.name).expect("a valid machine name");
        self.with_directory(async |directory| {
            directory
                .reports_for_machine(&machine_id)
                .await
                .expect("the machine's reports are readable")
        })
    }

    /// The URL of roleoutd's managed slapd for its root (SASL EXTERNAL
    /// over `ldapi://`, as `ldapadd -Y EXTERNAL -H URL` uses it).
    pub fn root_ldap_url(&self) -> String {
        let settings = LocalDirectory::attach(self.server_state.join("ldap"), SUFFIX)
            .expect("the slapd roleoutd manages is running");
        settings.urls[0].clone()
    }

    /// Runs `body` with a connection to the installation's directory: the
    /// slapd roleoutd manages, as its root identity over ldapi, or the 389
    /// server, as the admin account.
    fn with_directory<T>(&self, body: impl AsyncFnOnce(&Directory) -> T) -> T {
        let settings = match &self.ds389 {
            Some(ds389) => ds389.admin_settings(),
            None => LocalDirectory::attach(self.server_state.join("ldap"), SUFFIX)
                .expect("the slapd roleoutd manages is running"),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        runtime.block_on(async {
            let directory = Directory::connect(&settings)
                .await
                .expect("a connection to roleoutd's slapd");
            let result = body(&directory).await;
            directory.close().await;
            result
        })
    }

    /// The hardware inventory stored on `machine`'s entry, if any.
    pub fn stored_hardware(
        &self,
        machine: &Machine,
    ) -> Option<roleout_model::inventory::Inventory> {
        let dn = self.machine_dn(&machine.name);
        self.with_directory(async |directory| {
            directory
                .machine_hardware(&dn)
                .await
                .expect("the hardware attribute reads")
        })
    }

    /// Starts a second roleoutd as installation engine `name` of this
    /// installation: its own state and content store, this roleoutd's
    /// directory, token secret, builder key and TLS certificate, and this
    /// roleoutd as its upstream.
    pub fn start_engine(&self, name: &str) -> Engine {
        let engine_args = [
            "--engine".to_owned(),
            name.to_owned(),
            "--upstream".to_owned(),
            self.url.clone(),
        ];
        self.start_instance(&format!("engine-{name}"), &engine_args)
    }

    /// Starts another roleoutd of this installation, as a second instance
    /// behind a balancer is: its own state (named `name`) and content
    /// store, this roleoutd's directory, token secret, builder key and TLS
    /// certificate, and this roleoutd as its upstream, which it brings the
    /// contents it lacks from.
    pub fn start_peer(&self, name: &str) -> Engine {
        let upstream = ["--upstream".to_owned(), self.url.clone()];
        self.start_instance(&format!("peer-{name}"), &upstream)
    }

    fn start_instance(&self, folder: &str, extra: &[String]) -> Engine {
        let state = self.top().join(folder);
        share_installation(&self.server_state, &state);
        let settings = LocalDirectory::attach(self.server_state.join("ldap"), SUFFIX)
            .expect("the managed directory runs");
        let log = state.join("roleoutd.log");
        let args: Vec<String> = [
            "--directory-url",
            &settings.urls[0],
            "--base-dn",
            &format!("ou=roleout,{SUFFIX}"),
        ]
        .iter()
        .map(|arg| (*arg).to_owned())
        .chain(extra.iter().cloned())
        .collect();
        let (daemon, address) = start_daemon_logging(&log, &state, "127.0.0.1:0", &args);
        Engine {
            _daemon: daemon,
            url: format!("https://{address}"),
            log,
        }
    }

    /// The image `name` as the directory keeps it, if any.
    pub fn image(&self, name: &str) -> Option<roleout_directory::images::ImageEntry> {
        let name = roleout_model::image::ImageName::new(name).expect("a valid image name");
        self.with_directory(async |directory| directory.image(&name).await.expect("images read"))
    }

    /// What roleoutd's content store keeps when it is collected: every
    /// content the directory names (payloads, logs, image manifests and
    /// the files they name).
    pub fn referenced_content(&self) -> std::collections::BTreeSet<roleout_model::ids::Sha256> {
        let store = roleout_store::content::ContentStore::new(self.server_state.join("content"))
            .expect("roleoutd's content store");
        self.with_directory(async |directory| {
            roleout_builder::content::referenced_content(directory, &store)
                .await
                .expect("what is referenced reads")
        })
    }

    /// How many contents roleoutd's content store holds.
    pub fn stored_contents(&self) -> usize {
        fn count(folder: &Path) -> usize {
            fs::read_dir(folder).map_or(0, |listing| {
                listing
                    .flatten()
                    .map(|entry| {
                        if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                            count(&entry.path())
                        } else {
                            1
                        }
                    })
                    .sum()
            })
        }
        count(&self.server_state.join("content/sha256"))
    }

    /// roleoutd's log so far.
    pub fn roleoutd_log(&self) -> String {
        fs::read_to_string(self.top().join("roleoutd.log")).unwrap_or_default()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // Keep the evidence of a failed test: its directory holds roleoutd's
        // log, the machines' journals and sandboxes.
        if std::thread::panicking()
            && let Some(top) = self.top.take()
        {
            let kept = top.keep();
            #[allow(clippy::print_stderr)] // The test's output is where the person looks.
            {
                eprintln!(
                    "roleout-e2e: kept {} (roleoutd.log, machines/NAME/state and root)",
                    kept.display()
                );
            }
        }
        // roleoutd is stopped by `daemon`'s drop, before `top` is removed.
        let _ = &self.daemon;
    }
}

/// A second roleoutd (an installation engine, or a peer behind the same
/// balancer), stopped when dropped.
pub struct Engine {
    _daemon: Daemon,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// Its log.
    pub log: PathBuf,
}

impl Engine {
    /// Its log so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How many contents it fetched from upstream, in total, as its log
    /// says.
    pub fn fetched_contents(&self) -> u64 {
        fetched_from_upstream(&self.log_text(), "contents")
    }
}

/// The total of `field` (`contents`, `bytes`) over an engine's log lines
/// that say what it fetched from upstream.
pub fn fetched_from_upstream(log: &str, field: &str) -> u64 {
    logged_values(log, "image files fetched from upstream", field)
        .filter_map(|count| count.parse::<u64>().ok())
        .sum()
}

/// The value of `field` (`field=value`) in each line of roleoutd's `log`
/// that says `message`, in order; a line without the field gives none.
pub fn logged_values<'a>(
    log: &'a str,
    message: &'a str,
    field: &str,
) -> impl Iterator<Item = &'a str> + 'a {
    let prefix = format!("{field}=");
    log.lines()
        .filter(move |line| line.contains(message))
        .filter_map(move |line| {
            line.split_whitespace()
                .find_map(|word| word.strip_prefix(prefix.as_str()))
        })
}

/// One enrolled machine.
#[derive(Debug, Clone)]
pub struct Machine {
    /// Its name in the directory.
    pub name: String,
    /// Its `--state-dir` (keys, enrolment, journal, outbox).
    pub state: PathBuf,
    /// Its sandbox `--root`.
    pub root: PathBuf,
    /// Its response file, when it has one.
    pub response_file: Option<PathBuf>,
    /// Where it looks for a response file when none is given (written by
    /// tests of unattended runs; absent otherwise).
    pub default_response_file: PathBuf,
}

impl Machine {
    /// A path inside its sandbox root (`relative` without a leading `/`).
    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// Whether `relative` exists in its sandbox root.
    pub fn has(&self, relative: &str) -> bool {
        self.path(relative).exists()
    }

    /// The text of a file in its sandbox root, trimmed.
    pub fn read(&self, relative: &str) -> String {
        let path = self.path(relative);
        fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
            .trim()
            .to_owned()
    }

    /// What the sandbox's dpkg database says of `package`:
    /// `(status, version)`, e.g. `("install ok installed", "9.0.1")`, or
    /// `None` when it does not know the package.
    pub fn dpkg(&self, package: &str) -> Option<(String, String)> {
        let finished = run(Command::new("dpkg-query")
            .arg(format!(
                "--admindir={}",
                self.root.join("var/lib/dpkg").display()
            ))
            .args(["-W", "-f", "${Status}\t${Version}", package]));
        if finished.code != Some(0) {
            return None;
        }
        let (status, version) = finished.stdout.split_once('\t')?;
        Some((status.to_owned(), version.to_owned()))
    }
}

/// One `roleout --json install` run: its exit status and its events.
#[derive(Debug)]
pub struct Run {
    /// What the process did.
    pub finished: Finished,
    /// Its JSON events, in order.
    pub events: Vec<Value>,
}

impl Run {
    /// The exit code.
    pub fn code(&self) -> Option<i32> {
        self.finished.code
    }

    /// The last outcome the run gave `product`: `skipped` or `blocked` for
    /// a component that ran nothing, else the outcome of its last step
    /// (`success`, `failed`...).
    pub fn outcome(&self, product: &str) -> Option<&str> {
        self.outcome_event(product)
            .and_then(|event| event["outcome"].as_str())
    }

    /// The last `component-outcome` event of `product`.
    pub fn outcome_event(&self, product: &str) -> Option<&Value> {
        self.events
            .iter()
            .rev()
            .find(|event| event["event"] == "component-outcome" && event["product"] == product)
    }

    /// Every product the run gave an outcome, with that outcome, in order.
    pub fn outcomes(&self) -> Vec<(String, String)> {
        self.events
            .iter()
            .filter(|event| event["event"] == "component-outcome")
            .map(|event| {
                (
                    event["product"].as_str().unwrap_or_default().to_owned(),
                    event["outcome"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// Whether the run installed `product`: it ran its steps and the last
    /// one succeeded.
    pub fn installed(&self, product: &str) -> bool {
        self.ran_a_step_of(product) && self.outcome(product) == Some("success")
    }

    /// Whether any step of `product` was started in this run.
    pub fn ran_a_step_of(&self, product: &str) -> bool {
        self.events
            .iter()
            .any(|event| event["event"] == "step-started" && event["product"] == product)
    }

    /// The summary of the `suite-finished` event.
    pub fn summary(&self) -> Option<&Value> {
        self.events
            .iter()
            .find(|event| event["event"] == "suite-finished")
            .map(|event| &event["summary"])
    }

    /// Both streams, for assertion messages.
    pub fn transcript(&self) -> String {
        self.finished.transcript()
    }
}

/// Parses one JSON object per non-empty line.
fn parse_json_lines(text: &str) -> Result<Vec<Value>, String> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .enumerate()
        .map(|(number, line)| {
            serde_json::from_str(line)
                .map_err(|error| format!("line {} is not JSON ({error}): {line}", number + 1))
        })
        .collect()
}

/// A path as one word of an admin script: single-quoted unless plain.
fn quoted(path: &Path) -> String {
    let text = path.to_string_lossy();
    if text
        .chars()
        .all(|character| character.is_ascii_alphanumeric() || "/._-+".contains(character))
    {
        return text.into_owned();
    }
    assert!(
        !text.contains('\''),
        "the path {text} holds a quote, which an admin script cannot quote"
    );
    format!("'{text}'")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_are_parsed_and_bad_lines_named() {
        let events = parse_json_lines("{\"a\":1}\n\n{\"b\":2}\n").expect("two objects");
        assert_eq!(events.len(), 2);
        assert_eq!(events[1]["b"], 2);
        let error = parse_json_lines("{\"a\":1}\nnot json\n").expect_err("a bad line");
        assert!(error.starts_with("line 2 is not JSON"), "{error}");
    }

    #[test]
    fn plain_paths_are_one_word() {
        assert_eq!(quoted(Path::new("/tmp/a-b/c.d")), "/tmp/a-b/c.d");
    }
}
