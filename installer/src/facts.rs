//! The facts of the real machine that detection rules ask about
//! (`roleout_model::condition::Facts`): files, package databases, commands,
//! processes, OS and architecture.
//!
//! Paths in conditions are already rendered (they include the install root
//! when the descriptor writes `{{ root }}/...`), so files are read as given.
//! Package databases are the one place the install root matters here: a
//! machine installing into a sandbox root asks that root's dpkg database.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ring::digest;

use roleout_model::condition::{CommandOutput, FactError, Facts, OsFacts, PackageManager};
use roleout_model::ids::Sha256;

use crate::run::{self, CommandSpec, Exit};

/// How long a detection command may run before it is killed.
pub const DETECTION_TIMEOUT: Duration = Duration::from_secs(60);

/// Facts read from this machine, with packages looked up under `root`.
#[derive(Debug, Clone)]
pub struct SystemFacts {
    root: PathBuf,
}

impl SystemFacts {
    /// Facts for a machine whose software lives under `root` (`/` for a
    /// real machine, a directory for a sandbox).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn is_real_root(&self) -> bool {
        self.root == Path::new("/")
    }

    fn fail(fact: &str, reason: impl std::fmt::Display) -> FactError {
        FactError {
            fact: fact.to_owned(),
            reason: reason.to_string(),
        }
    }

    fn dpkg_version(&self, name: &str) -> Result<Option<String>, FactError> {
        let mut argv = vec!["dpkg-query".to_owned()];
        if !self.is_real_root() {
            argv.push(format!(
                "--admindir={}",
                self.root.join("var/lib/dpkg").display()
            ));
        }
        argv.extend([
            "-W".to_owned(),
            "-f=${Status}\t${Version}".to_owned(),
            "--".to_owned(),
            name.to_owned(),
        ]);
        let output = self.run_command(&argv)?;
        // dpkg-query exits 1 for a package it has never heard of.
        if output.exit_code != 0 {
            return Ok(None);
        }
        let Some((status, version)) = output.stdout.trim_end().split_once('\t') else {
            return Ok(None);
        };
        // Only a fully installed package counts: "deinstall ok config-files"
        // or a half-installed one is not the product being there.
        Ok((status.ends_with(" installed") && !version.is_empty()).then(|| version.to_owned()))
    }

    fn rpm_version(&self, name: &str) -> Result<Option<String>, FactError> {
        let mut argv = vec!["rpm".to_owned()];
        if !self.is_real_root() {
            argv.extend(["--root".to_owned(), self.root.display().to_string()]);
        }
        argv.extend([
            "-q".to_owned(),
            "--qf".to_owned(),
            "%{VERSION}-%{RELEASE}".to_owned(),
            "--".to_owned(),
            name.to_owned(),
        ]);
        match self.run_command(&argv) {
            Ok(output) if output.exit_code == 0 => Ok(Some(output.stdout.trim().to_owned())),
            Ok(_) => Ok(None),
            // No rpm on this machine: it has no rpm packages.
            Err(error) if error.reason.contains("not found") => Ok(None),
            Err(error) => Err(error),
        }
    }
}

impl Facts for SystemFacts {
    fn file_exists(&self, path: &str) -> Result<bool, FactError> {
        match std::fs::symlink_metadata(path) {
            Ok(_) => Ok(true),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(Self::fail(&format!("file {path}"), error)),
        }
    }

    fn file_sha256(&self, path: &str) -> Result<Option<Sha256>, FactError> {
        let mut file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(Self::fail(&format!("file {path}"), error)),
        };
        let mut context = digest::Context::new(&digest::SHA256);
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let read = file
                .read(&mut buffer)
                .map_err(|error| Self::fail(&format!("file {path}"), error))?;
            if read == 0 {
                break;
            }
            context.update(&buffer[..read]);
        }
        Ok(Some(Sha256::from_digest(&context.finish())))
    }

    fn read_file_text(&self, path: &str, max_bytes: usize) -> Result<Option<String>, FactError> {
        let file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(Self::fail(&format!("file {path}"), error)),
        };
        let mut bytes = Vec::new();
        file.take(max_bytes as u64)
            .read_to_end(&mut bytes)
            .map_err(|error| Self::fail(&format!("file {path}"), error))?;
        Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
    }

    fn package_version(
        &self,
        manager: PackageManager,
        name: &str,
    ) -> Result<Option<String>, FactError> {
        match manager {
            PackageManager::Dpkg => self.dpkg_version(name),
            PackageManager::Rpm => self.rpm_version(name),
        }
    }

    fn run_command(&self, argv: &[String]) -> Result<CommandOutput, FactError> {
        let what = format!("command {}", argv.first().map(String::as_str).unwrap_or(""));
        let mut spec = CommandSpec::new(argv.to_vec()).map_err(|error| Self::fail(&what, error))?;
        spec.timeout = DETECTION_TIMEOUT;
        let report = run::run(&spec).map_err(|error| Self::fail(&what, error))?;
        if report.timed_out() {
            return Err(Self::fail(
                &what,
                format!("did not finish within {} s", DETECTION_TIMEOUT.as_secs()),
            ));
        }
        let exit_code = match report.exit {
            Exit::Code(code) => code,
            Exit::Signal(signal) => 128 + signal,
        };
        Ok(CommandOutput {
            exit_code,
            stdout: report.stdout.text,
        })
    }

    fn process_running(&self, name: &str) -> Result<bool, FactError> {
        let entries = std::fs::read_dir("/proc").map_err(|error| Self::fail("processes", error))?;
        for entry in entries.flatten() {
            let is_pid = entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
            if !is_pid {
                continue;
            }
            // A process may exit between listing and reading: skip it.
            if let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) {
                if comm.trim_end_matches('\n') == name {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    fn os(&self) -> Result<OsFacts, FactError> {
        let release = std::fs::read_to_string("/etc/os-release")
            .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
            .unwrap_or_default();
        Ok(OsFacts::from_os_release(std::env::consts::OS, &release))
    }

    fn arch(&self) -> Result<String, FactError> {
        Ok(std::env::consts::ARCH.to_owned())
    }

    /// The hardware is the machine's, not the install root's: read from
    /// `/proc` and `/sys` once per run.
    fn hardware(&self) -> Result<Option<roleout_model::inventory::Inventory>, FactError> {
        static HARDWARE: std::sync::OnceLock<Option<roleout_model::inventory::Inventory>> =
            std::sync::OnceLock::new();
        Ok(HARDWARE
            .get_or_init(|| crate::inventory::read(std::path::Path::new("/")).ok())
            .clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_digests_and_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("VERSION");
        std::fs::write(&path, "9.0.1\nrest").unwrap();
        let path = path.to_str().unwrap();
        let facts = SystemFacts::new("/");
        assert!(facts.file_exists(path).unwrap());
        assert!(!facts.file_exists(&format!("{path}.missing")).unwrap());
        let expected = digest::digest(&digest::SHA256, b"9.0.1\nrest");
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(expected.as_ref());
        assert_eq!(
            facts.file_sha256(path).unwrap(),
            Some(Sha256::from_bytes(&bytes))
        );
        assert_eq!(
            facts.read_file_text(path, 5).unwrap().as_deref(),
            Some("9.0.1")
        );
        assert_eq!(facts.read_file_text("/nonexistent/x", 5).unwrap(), None);
    }

    #[test]
    fn commands_and_processes() {
        let facts = SystemFacts::new("/");
        let output = facts
            .run_command(&["sh".into(), "-c".into(), "echo hi; exit 3".into()])
            .unwrap();
        assert_eq!((output.exit_code, output.stdout.trim()), (3, "hi"));
        let error = facts
            .run_command(&["/nonexistent/program".into()])
            .unwrap_err();
        assert!(error.fact.contains("/nonexistent/program"), "{error:?}");
        // This test process itself is running.
        let own = std::fs::read_to_string("/proc/self/comm").unwrap();
        assert!(facts.process_running(own.trim_end()).unwrap());
        assert!(!facts.process_running("no-such-process-roleout").unwrap());
    }

    #[test]
    fn os_and_arch_are_this_machine() {
        let facts = SystemFacts::new("/");
        assert_eq!(facts.os().unwrap().family, "linux");
        assert_eq!(facts.arch().unwrap(), std::env::consts::ARCH);
    }

    #[test]
    fn dpkg_in_a_sandbox_root() {
        let root = tempfile::tempdir().unwrap();
        let admin = root.path().join("var/lib/dpkg");
        std::fs::create_dir_all(admin.join("info")).unwrap();
        std::fs::write(
            admin.join("status"),
            "Package: notes-client\nStatus: install ok installed\nVersion: 9.0.1\nArchitecture: all\nMaintainer: x\nDescription: x\n\n\
             Package: gone\nStatus: deinstall ok config-files\nVersion: 1.0\nArchitecture: all\nMaintainer: x\nDescription: x\n",
        )
        .unwrap();
        let facts = SystemFacts::new(root.path());
        assert_eq!(
            facts
                .package_version(PackageManager::Dpkg, "notes-client")
                .unwrap()
                .as_deref(),
            Some("9.0.1")
        );
        assert_eq!(
            facts.package_version(PackageManager::Dpkg, "gone").unwrap(),
            None
        );
        assert_eq!(
            facts
                .package_version(PackageManager::Dpkg, "never-heard-of")
                .unwrap(),
            None
        );
    }
}
