//! Integration tests of the directory crate, each against its own real
//! server, so they run in parallel: a managed slapd
//! (`LocalDirectory::temporary()`) and, for every test written against
//! [`Server`] and named in [`on_both_servers!`], also a 389 Directory
//! Server instance ([`ds389::Ds389`]).

#![allow(clippy::unwrap_used, reason = "in tests a panic is the failure report")]

mod builds;
mod cache;
mod catalog;
mod ds389;
mod feed;
mod injection;
mod leases;
mod machines;
mod nonces;
mod outage;
mod replication;
mod roles;
mod schema;
mod slapd;
mod tls;

use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};

use roleout_directory::{LocalDirectory, Settings};
use roleout_model::ids::{MachineId, RoleName};
use roleout_model::machine::Machine;
use roleout_model::role::Role;

/// A directory server a test runs against, holding Roleout's base
/// entries under `dc=example,dc=org` and its two service accounts.
pub(crate) trait Server {
    /// Settings for the admin service account (member of `cn=admins`).
    fn admin_settings(&self) -> Settings;
    /// Settings for roleoutd's service account.
    fn builder_settings(&self) -> Settings;
    /// The ldapi URL on which SASL EXTERNAL binds as the server's root.
    fn ldapi_url(&self) -> String;
    /// The loopback URL.
    fn ldap_url(&self) -> String;
    /// A folder whose `credentials/` holds `admin.password` and
    /// `roleoutd.password`.
    fn state_dir(&self) -> &Path;
    /// Which server it is, for messages.
    fn name(&self) -> &'static str;
    /// Another, empty server of the same kind.
    fn another(&self) -> Box<dyn Server>;
}

impl Server for LocalDirectory {
    fn admin_settings(&self) -> Settings {
        LocalDirectory::admin_settings(self)
    }
    fn builder_settings(&self) -> Settings {
        LocalDirectory::builder_settings(self)
    }
    fn ldapi_url(&self) -> String {
        LocalDirectory::ldapi_url(self)
    }
    fn ldap_url(&self) -> String {
        LocalDirectory::ldap_url(self)
    }
    fn state_dir(&self) -> &Path {
        LocalDirectory::state_dir(self)
    }
    fn name(&self) -> &'static str {
        "slapd"
    }
    fn another(&self) -> Box<dyn Server> {
        Box::new(LocalDirectory::temporary().unwrap())
    }
}

impl<T: Server + ?Sized> Server for &T {
    fn admin_settings(&self) -> Settings {
        (**self).admin_settings()
    }
    fn builder_settings(&self) -> Settings {
        (**self).builder_settings()
    }
    fn ldapi_url(&self) -> String {
        (**self).ldapi_url()
    }
    fn ldap_url(&self) -> String {
        (**self).ldap_url()
    }
    fn state_dir(&self) -> &Path {
        (**self).state_dir()
    }
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn another(&self) -> Box<dyn Server> {
        (**self).another()
    }
}

/// For each named `async fn NAME(server: &dyn Server)`, a module `NAME`
/// with two tests: `NAME::slapd`, against a managed slapd, and
/// `NAME::ds389`, against a 389 Directory Server instance.
macro_rules! on_both_servers {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn slapd() {
                    let server = roleout_directory::LocalDirectory::temporary().unwrap();
                    super::$name(&server).await;
                }

                #[tokio::test]
                async fn ds389() {
                    let server = crate::ds389::Ds389::temporary();
                    super::$name(&server).await;
                }
            }
        )*
    };
}
pub(crate) use on_both_servers;

/// The first LDIF block of README.md after the comment `<!-- marker -->`,
/// as written there: the tests apply what the README tells admins to.
pub(crate) fn readme_block(marker: &str) -> String {
    let readme = include_str!("../../../README.md");
    let after = readme
        .split_once(&format!("<!-- {marker} -->\n"))
        .unwrap_or_else(|| panic!("README.md has the block {marker}"))
        .1;
    let block = after.split_once("```ldif\n").unwrap().1;
    block.split_once("```").unwrap().0.to_owned()
}

/// A free loopback port (bound, read, released).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Loads `ldif` as the root (SASL EXTERNAL over ldapi) with the real
/// `ldapadd`; panics with its output if it fails.
pub(crate) fn ldapadd(local: &(impl Server + ?Sized), ldif: &str) {
    ldap_root_tool(local, "ldapadd", ldif);
}

/// Applies `ldif` (change records) as the root with the real `ldapmodify`.
pub(crate) fn ldapmodify(local: &(impl Server + ?Sized), ldif: &str) {
    ldap_root_tool(local, "ldapmodify", ldif);
}

fn ldap_root_tool(local: &(impl Server + ?Sized), tool: &str, ldif: &str) {
    let output = run_with_input(
        Command::new(tool)
            .args(["-Q", "-Y", "EXTERNAL", "-H"])
            .arg(local.ldapi_url()),
        ldif,
    );
    assert!(
        output.status.success(),
        "{tool} at {} failed: {}",
        local.name(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs the real `ldapsearch` as the root over ldapi; returns its LDIF.
pub(crate) fn ldapsearch(local: &(impl Server + ?Sized), base: &str, arguments: &[&str]) -> String {
    let output = Command::new("ldapsearch")
        .args(["-Q", "-LLL", "-o", "ldif-wrap=no", "-Y", "EXTERNAL", "-H"])
        .arg(local.ldapi_url())
        .args(["-b", base])
        .args(arguments)
        .output()
        .expect("ldap-utils is installed");
    assert!(
        output.status.success(),
        "ldapsearch failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

pub(crate) fn role_name(name: &str) -> RoleName {
    RoleName::new(name).unwrap()
}

pub(crate) fn role(name: &str, rank: u32, parent: Option<&str>) -> Role {
    Role {
        name: role_name(name),
        rank,
        parent: parent.map(role_name),
        description: Some(format!("The {name} role")),
    }
}

pub(crate) fn machine(name: &str) -> Machine {
    Machine {
        name: MachineId::new(name).unwrap(),
        ip: None,
        os: None,
        arch: None,
        facts: Default::default(),
        products: Vec::new(),
    }
}

/// A real self-signed certificate (DER) for a fresh Ed25519 key.
pub(crate) fn certificate(name: &str) -> Vec<u8> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
    params.self_signed(&key).unwrap().der().to_vec()
}

/// Runs an ldap-utils `tool` (`ldapadd`, `ldapsearch`) over the loopback
/// port as the service `account` ("admin" or "roleoutd"), the password read
/// from the embedded directory's credentials file; returns the output.
pub(crate) fn ldap_tool_as(
    local: &(impl Server + ?Sized),
    tool: &str,
    account: &str,
    arguments: &[&str],
    input: &str,
) -> std::process::Output {
    run_with_input(
        Command::new(tool)
            .args(["-x", "-H"])
            .arg(local.ldap_url())
            .arg("-D")
            .arg(format!("cn={account},ou=roleout,dc=example,dc=org"))
            .arg("-y")
            .arg(
                local
                    .state_dir()
                    .join("credentials")
                    .join(format!("{account}.password")),
            )
            .args(arguments),
        input,
    )
}

/// Runs `command` (an ldap-utils tool) with `input` on its standard input;
/// returns its output.
pub(crate) fn run_with_input(command: &mut Command, input: &str) -> std::process::Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ldap-utils is installed");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Waits (at most five seconds) until every thread of process `pid` is
/// stopped, as /proc shows it.
pub(crate) fn wait_until_stopped(pid: i32) {
    let all_stopped = || {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return false;
        };
        tasks.flatten().all(|task| {
            std::fs::read_to_string(task.path().join("stat")).is_ok_and(|stat| {
                // The state follows the command name, which is in parentheses.
                stat.rsplit_once(") ")
                    .is_some_and(|(_, rest)| rest.starts_with('T') || rest.starts_with('t'))
            })
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !all_stopped() {
        assert!(
            std::time::Instant::now() < deadline,
            "slapd did not stop on SIGSTOP"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
