//! `roleout` against the real server: the `roleoutd` and `roleout-admin`
//! binaries of this build, roleoutd running its own managed slapd, the
//! example catalog imported with its payloads, roles created, machines
//! enrolled with one-time tokens. Covers a developer machine installing
//! the Domino suite into a sandbox root (the `.deb` through `dpkg --root`,
//! the designer tool, reports read back from the directory with
//! `ldapsearch`), a second run that skips everything, and roleoutd stopped
//! in the middle of a run and started again later: every report arrives,
//! once.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::engine::text;

/// Base DN of the managed slapd's Roleout tree.
const BASE: &str = "ou=roleout,dc=example,dc=org";

/// How long a server or a machine may take to reach a state the test
/// waits for before the test gives up (not a timing assertion: a bound on
/// a hang).
const PATIENCE: Duration = Duration::from_secs(120);

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// A binary of this workspace's build (`target/debug/NAME`), found from
/// the test executable (`target/debug/deps/it-HASH`).
fn workspace_binary(name: &str) -> PathBuf {
    let test_exe = std::env::current_exe().unwrap();
    let binary = test_exe
        .parent()
        .and_then(Path::parent)
        .map(|directory| directory.join(name))
        .unwrap();
    assert!(
        binary.is_file(),
        "{} is missing: build the workspace's binaries first (cargo build --workspace --bins)",
        binary.display()
    );
    binary
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// roleoutd on a fixed loopback port over its own managed slapd, with the
/// example catalog, its payloads and the test suite `ops` imported and the
/// three example roles defined.
struct Deployment {
    _temp: tempfile::TempDir,
    base: PathBuf,
    state: PathBuf,
    port: u16,
    roleoutd: Option<Child>,
}

impl Deployment {
    fn start() -> Deployment {
        let temp = tempfile::Builder::new().prefix("ro-").tempdir().unwrap();
        let base = temp.path().to_owned();
        let state = base.join("server");
        fs::create_dir_all(&state).unwrap();
        // A port the machines keep in their enrolment, so roleoutd can be
        // started again where they expect it.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut deployment = Deployment {
            _temp: temp,
            base,
            state,
            port,
            roleoutd: None,
        };
        deployment.start_roleoutd();

        let payloads = deployment.base.join("payloads");
        let built = Command::new("sh")
            .arg(repository().join("examples/payloads/build.sh"))
            .arg(&payloads)
            .output()
            .unwrap();
        assert!(built.status.success(), "{}", text(&built));
        let ops = deployment.write_ops_catalog();
        deployment.admin(&format!(
            "import {} --payloads {}; import {}",
            repository().join("examples").display(),
            payloads.display(),
            ops.display()
        ));
        deployment.admin(
            "role create end-user --rank 10; \
             role create developer --rank 20 --parent end-user; \
             role create administrator --rank 30 --parent end-user; \
             build",
        );
        deployment
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    fn start_roleoutd(&mut self) {
        let address_file = self.state.join("roleoutd.addr");
        let _ = fs::remove_file(&address_file);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.base.join("roleoutd.log"))
            .unwrap();
        let mut child = Command::new(workspace_binary("roleoutd"))
            .arg("--state-dir")
            .arg(&self.state)
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .args(["--log", "info"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        wait_for("roleoutd to listen", || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("roleoutd exited with {status}:\n{}", self.log());
            }
            fs::read_to_string(&address_file).is_ok_and(|text| text.ends_with('\n'))
        });
        self.roleoutd = Some(child);
    }

    /// Stops roleoutd as a service manager would (SIGTERM) and waits for
    /// it (and so its slapd) to end.
    fn stop_roleoutd(&mut self) {
        let Some(mut child) = self.roleoutd.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let deadline = Instant::now() + PATIENCE;
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("roleoutd did not stop on SIGTERM:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(self.base.join("roleoutd.log")).unwrap_or_default()
    }

    /// Runs roleout-admin commands on roleoutd's directory; returns stdout.
    fn admin(&self, commands: &str) -> String {
        let output = Command::new(workspace_binary("roleout-admin"))
            .arg("--state-dir")
            .arg(&self.state)
            .args(["-c", commands])
            .output()
            .unwrap();
        assert!(output.status.success(), "{commands}:\n{}", text(&output));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The suite `ops`: a quick tool, a tool whose install signals that it
    /// started and then waits for the test's go-ahead, and a tool after it.
    fn write_ops_catalog(&self) -> PathBuf {
        let directory = self.base.join("ops-catalog");
        fs::create_dir_all(&directory).unwrap();
        let product = |id: &str, after: Option<&str>, script: &str| {
            let dependencies = after.map_or_else(String::new, |before| {
                format!("<dependencies><prerequisite product=\"{before}\"/></dependencies>")
            });
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?>
<product xmlns="urn:roleout:descriptor:1" id="{id}" version="1.0">
  <description vendor="Test"><name lang="en">{id}</name><summary lang="en">{id}</summary></description>
  {dependencies}
  <install kind="script" timeout="600" shell="true">
    <arg>{script} echo ran >> "$1/{id}.marker"</arg>
    <arg>{base}</arg>
  </install>
</product>
"#,
                base = self.base.display()
            )
        };
        let slow =
            "touch \"$1/slow-tool.ready\"; while [ ! -e \"$1/slow-tool.go\" ]; do sleep 0.1; done;";
        fs::write(
            directory.join("first-tool.xml"),
            product("first-tool", None, ""),
        )
        .unwrap();
        fs::write(
            directory.join("slow-tool.xml"),
            product("slow-tool", Some("first-tool"), slow),
        )
        .unwrap();
        fs::write(
            directory.join("last-tool.xml"),
            product("last-tool", Some("slow-tool"), ""),
        )
        .unwrap();
        fs::write(
            directory.join("ops.xml"),
            r#"<?xml version="1.0" encoding="UTF-8"?>
<suite xmlns="urn:roleout:descriptor:1" id="ops" version="1.0">
  <description vendor="Test"><name lang="en">Ops</name><summary lang="en">Operations tools</summary></description>
  <policy on-failure="stop"/>
  <products>
    <product ref="first-tool"/>
    <product ref="slow-tool"/>
    <product ref="last-tool"/>
  </products>
</suite>
"#,
        )
        .unwrap();
        directory
    }

    fn marker_count(&self, id: &str) -> usize {
        fs::read_to_string(self.base.join(format!("{id}.marker")))
            .map(|text| text.lines().count())
            .unwrap_or(0)
    }

    /// Enrols `name` in `role` with a one-time token through the real
    /// `roleout enroll`, and gives it a sandbox root with a dpkg database.
    fn machine(&self, name: &str, role: &str) -> Machine {
        let token = self.admin(&format!("enroll-token {name}"));
        self.admin(&format!("role add-member {role} {name}"));
        let machine = Machine {
            state: self.base.join("machines").join(name).join("state"),
            root: self.base.join("machines").join(name).join("root"),
            name: name.to_owned(),
        };
        let admin = machine.root.join("var/lib/dpkg");
        for directory in [
            admin.join("info"),
            admin.join("updates"),
            machine.root.join("var/log"),
            machine.root.join("opt"),
        ] {
            fs::create_dir_all(directory).unwrap();
        }
        fs::write(admin.join("status"), "").unwrap();
        fs::write(admin.join("available"), "").unwrap();
        let enrolled = machine.roleout(&[
            "enroll",
            "--server",
            &self.url(),
            "--server-cert",
            &self.state.join("tls/cert.pem").display().to_string(),
            "--token",
            token.trim(),
            "--name",
            name,
        ]);
        assert_eq!(enrolled.status.code(), Some(0), "{}", text(&enrolled));
        machine
    }

    /// The step reports of `machine` in the directory, read with
    /// `ldapsearch` over the managed slapd's socket: (report id,
    /// component, step, outcome).
    fn directory_reports(&self, machine: &str) -> Vec<(String, String, String, String)> {
        let socket = self.state.join("ldap/ldapi");
        let url = format!(
            "ldapi://{}",
            socket.display().to_string().replace('/', "%2F")
        );
        let output = Command::new("ldapsearch")
            .args([
                "-Q",
                "-Y",
                "EXTERNAL",
                "-H",
                &url,
                "-LLL",
                "-o",
                "ldif-wrap=no",
            ])
            .args(["-b", &format!("ou=reports,{BASE}"), "-s", "one"])
            .arg(format!(
                "(&(objectClass=roleoutReport)(roleoutMachineName={machine})(roleoutComponent=*))"
            ))
            .args([
                "roleoutReportId",
                "roleoutComponent",
                "roleoutStep",
                "roleoutOutcome",
            ])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", text(&output));
        let listing = String::from_utf8_lossy(&output.stdout).into_owned();
        let mut reports = Vec::new();
        for entry in listing
            .split("\n\n")
            .filter(|entry| !entry.trim().is_empty())
        {
            let value = |name: &str| {
                entry
                    .lines()
                    .find_map(|line| line.strip_prefix(&format!("{name}: ")))
                    .unwrap_or_else(|| panic!("no {name} in {entry}"))
                    .to_owned()
            };
            reports.push((
                value("roleoutReportId"),
                value("roleoutComponent"),
                value("roleoutStep"),
                value("roleoutOutcome"),
            ));
        }
        reports.sort();
        reports
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        if let Some(mut child) = self.roleoutd.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A managed machine: its state directory and sandbox root.
struct Machine {
    name: String,
    state: PathBuf,
    root: PathBuf,
}

impl Machine {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_roleout"));
        command
            .arg("--state-dir")
            .arg(&self.state)
            .args(args)
            .env_remove("ROLEOUT_STATE_DIR")
            .env_remove("ROLEOUT_MIRROR")
            .env_remove("ROLEOUT_ROOT")
            .env_remove("ROLEOUT_CACHE_DIR")
            .env_remove("ROLEOUT_BOOT_ID_FILE");
        command
    }

    fn roleout(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn install(&self, suite: &str) -> Output {
        let root = self.root.display().to_string();
        self.roleout(&["install", suite, "--root", &root])
    }

    fn outbox_len(&self) -> usize {
        roleout_installer::state::outbox::waiting_ids(&self.state)
            .expect("the outbox reads")
            .len()
    }
}

fn dpkg_status(root: &Path, package: &str) -> String {
    let output = Command::new("dpkg-query")
        .arg(format!(
            "--admindir={}",
            root.join("var/lib/dpkg").display()
        ))
        .args(["-W", "-f", "${Status} ${Version}", package])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn a_developer_machine_installs_its_domino_suite_then_skips_everything() {
    let deployment = Deployment::start();
    let machine = deployment.machine("pc-dev", "developer");

    let first = machine.install("domino");
    assert_eq!(first.status.code(), Some(0), "{}", text(&first));
    let out = String::from_utf8_lossy(&first.stdout);
    assert!(
        out.contains("suite domino: 4 installed, 0 skipped"),
        "{out}"
    );
    assert_eq!(
        dpkg_status(&machine.root, "notes-client"),
        "install ok installed 9.0.1"
    );
    assert!(machine.root.join("opt/notes-designer").is_dir());
    // Administrators' tools are not for a developer.
    assert!(!out.contains("domino-admin"), "{out}");

    let reports = deployment.directory_reports(&machine.name);
    let installed: Vec<(&str, &str)> = reports
        .iter()
        .filter(|(_, _, step, _)| step == "install")
        .map(|(_, component, _, outcome)| (component.as_str(), outcome.as_str()))
        .collect();
    for component in ["jre", "notes-client", "notes-help", "notes-designer"] {
        assert!(
            installed.contains(&(component, "success")),
            "{component}: {reports:#?}"
        );
    }
    assert!(
        !reports
            .iter()
            .any(|(_, component, _, _)| component == "domino-admin"),
        "{reports:#?}"
    );
    assert_eq!(machine.outbox_len(), 0);

    let second = machine.install("domino");
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    let out = String::from_utf8_lossy(&second.stdout);
    assert!(
        out.contains("suite domino: 0 installed, 4 skipped"),
        "{out}"
    );
    assert!(!out.contains("running"), "a command ran again: {out}");
    let after = deployment.directory_reports(&machine.name);
    let skipped: Vec<&str> = after
        .iter()
        .filter(|(_, _, step, outcome)| step == "check" && outcome == "skipped")
        .map(|(_, component, _, _)| component.as_str())
        .collect();
    for component in ["jre", "notes-client", "notes-help", "notes-designer"] {
        assert!(skipped.contains(&component), "{component}: {after:#?}");
    }
    // The first run's reports are still there, unchanged.
    for report in &reports {
        assert!(after.contains(report), "{report:?} vanished: {after:#?}");
    }
}

#[test]
fn reports_made_while_roleoutd_is_down_arrive_once_after_it_is_back() {
    let mut deployment = Deployment::start();
    let machine = deployment.machine("pc-ops", "end-user");
    let ready = deployment.base.join("slow-tool.ready");
    let go = deployment.base.join("slow-tool.go");

    let root = machine.root.display().to_string();
    let mut run = machine
        .command(&["install", "ops", "--root", &root])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("slow-tool's install to start", || {
        if let Ok(Some(status)) = run.try_wait() {
            panic!("roleout ended before slow-tool started: {status}");
        }
        ready.exists()
    });
    // first-tool's report went out while roleoutd was up.
    let before = deployment.directory_reports(&machine.name);
    assert_eq!(before.len(), 1, "{before:#?}");
    assert_eq!(before[0].1, "first-tool");

    deployment.stop_roleoutd();
    fs::write(&go, "").unwrap();
    let offline = run.wait_with_output().unwrap();
    // Unreachable: the reports are kept for the next run.
    assert_eq!(offline.status.code(), Some(4), "{}", text(&offline));
    assert_eq!(deployment.marker_count("slow-tool"), 1);
    assert_eq!(deployment.marker_count("last-tool"), 1);
    // slow-tool, last-tool and the suite complete.
    assert_eq!(machine.outbox_len(), 3);

    deployment.start_roleoutd();
    let online = machine.install("ops");
    assert_eq!(online.status.code(), Some(0), "{}", text(&online));
    assert_eq!(machine.outbox_len(), 0);
    // Nothing ran twice.
    for tool in ["first-tool", "slow-tool", "last-tool"] {
        assert_eq!(deployment.marker_count(tool), 1, "{tool}");
    }
    let reports = deployment.directory_reports(&machine.name);
    let installs: Vec<&str> = reports
        .iter()
        .filter(|(_, _, step, _)| step == "install")
        .map(|(_, component, _, _)| component.as_str())
        .collect();
    let mut sorted = installs.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        ["first-tool", "last-tool", "slow-tool"],
        "{reports:#?}"
    );
    assert!(
        reports
            .iter()
            .filter(|(_, _, step, _)| step == "install")
            .all(|(_, _, _, outcome)| outcome == "success"),
        "{reports:#?}"
    );
    // Every report id is stored once; the second run's skips are new ids.
    let mut ids: Vec<&str> = reports.iter().map(|(id, _, _, _)| id.as_str()).collect();
    let count = ids.len();
    // dedup drops only adjacent repeats: sorted first, every repeat is.
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count, "{reports:#?}");
    assert_eq!(count, 6, "{reports:#?}");
    // The first run's completion reached the directory too (one summary
    // entry per machine and suite holds the latest).
    let log = deployment.log();
    assert!(log.matches("suite complete").count() >= 2, "{log}");
}
