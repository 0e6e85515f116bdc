//! Conditions of IncrementalInstall and VersionCheckerModel: detection
//! rules over facts of the target machine, combined with all / any / not.
//!
//! Conditions are data here; the installer gathers the facts (it owns the
//! file system and the processes) and [`Condition::evaluate`] decides.

use serde::{Deserialize, Serialize};

use crate::ids::Sha256;
use crate::pattern::Pattern;
use crate::version::{Version, VersionReq};

/// The package database a package condition asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PackageManager {
    /// dpkg (Debian, Ubuntu).
    Dpkg,
    /// rpm (Red Hat, SUSE).
    Rpm,
}

/// One detection rule, or a combination of rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Condition {
    /// Every inner condition holds (true when empty).
    All(Vec<Condition>),
    /// At least one inner condition holds (false when empty).
    Any(Vec<Condition>),
    /// The inner condition does not hold.
    Not(Box<Condition>),
    /// A file (or directory) exists at `path` (a template).
    FileExists {
        /// The path.
        path: String,
    },
    /// A file's SHA-256 is `sha256`.
    FileSha256 {
        /// The path.
        path: String,
        /// The digest it must have.
        sha256: Sha256,
    },
    /// A file holds a version (its first line, or the first match of
    /// `pattern`'s first capture group) within `versions`.
    FileVersion {
        /// The path.
        path: String,
        /// Extracts the version; the whole first line when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pattern: Option<Pattern>,
        /// The accepted range.
        versions: VersionReq,
    },
    /// A package is installed, at a version within `versions`.
    Package {
        /// dpkg or rpm.
        manager: PackageManager,
        /// The package name.
        name: String,
        /// The accepted range (any when absent).
        #[serde(default, skip_serializing_if = "VersionReq::is_any")]
        versions: VersionReq,
    },
    /// A command (argv, no shell) exits with `exit_code` and, if `output`
    /// is set, prints a line matching it.
    Command {
        /// Program and arguments (templates).
        argv: Vec<String>,
        /// The exit code that makes the condition hold.
        #[serde(default)]
        exit_code: i32,
        /// A pattern a line of its standard output must match.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output: Option<Pattern>,
        /// A range the version it prints must be in: the first capture
        /// group (else the whole match) of `output` on the first line it
        /// matches, or the first line of its output without `output`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        versions: Option<VersionReq>,
    },
    /// No running process has this name.
    ProcessNotRunning {
        /// The process name (as in `/proc/PID/comm`).
        name: String,
    },
    /// The operating system is one of these (`linux`, `windows`, `macos`),
    /// optionally with a distribution id (`debian`) and a version range.
    Os {
        /// Accepted OS families.
        family: Vec<String>,
        /// Accepted distribution ids (`/etc/os-release` ID); any when empty.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        distribution: Vec<String>,
        /// Accepted OS versions.
        #[serde(default, skip_serializing_if = "VersionReq::is_any")]
        versions: VersionReq,
    },
    /// The machine architecture is one of these (`x86_64`, `aarch64`).
    Arch {
        /// Accepted architectures.
        names: Vec<String>,
    },
    /// A fact of the machine's hardware (`crate::inventory::FACT_NAMES`):
    /// known, or matching `matches` (for `pci`, any one modalias), or a
    /// number at least `at_least`.
    Hardware {
        /// The fact's name (`memory.bytes`, `dmi.product-name`, `pci`).
        fact: String,
        /// A pattern the value must match.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        matches: Option<Pattern>,
        /// The least the value may be, for a number.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at_least: Option<u64>,
    },
}

/// When a conditional install runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunPolicy {
    /// Once per machine: after one success it never runs again.
    Once,
    /// Every run, whenever the condition holds.
    Always,
    /// Again whenever the product's descriptor (its build digest) changed.
    #[default]
    OnChange,
}

/// IncrementalInstall: install only when a condition holds, and how often.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct IncrementalInstall {
    /// Install only when this holds (always, when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Condition>,
    /// How often.
    #[serde(default)]
    pub run: RunPolicy,
}

/// VersionCheckerModel: tells whether the product is already installed at
/// the right version, so that the install is skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct VersionCheckerModel {
    /// Holds when the product is installed at an acceptable version.
    pub installed: Condition,
}

/// Most bytes of a file read to find a version in it.
pub const MAX_VERSION_FILE_BYTES: usize = 64 * 1024;

/// Why a fact about the machine could not be learned (a file that cannot
/// be read, a command that cannot start). A missing file or package is not
/// an error: it is a fact.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("could not learn {fact}: {reason}")]
pub struct FactError {
    /// What was asked ("the SHA-256 of /opt/x/bin/x").
    pub fact: String,
    /// Why it could not be told.
    pub reason: String,
}

/// What a command printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// Its exit code (a signal death is the implementer's to map, usually
    /// to 128 + signal).
    pub exit_code: i32,
    /// Its standard output (bounded by the implementer).
    pub stdout: String,
}

/// The operating system of a machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsFacts {
    /// `linux`, `windows`, `macos`.
    pub family: String,
    /// The distribution id (`/etc/os-release` `ID`: `debian`), if any.
    pub distribution: Option<String>,
    /// The OS version (`VERSION_ID`: `12`), if known.
    pub version: Option<String>,
}

/// The `KEY=VALUE` lines of an `os-release` file (`/etc/os-release`), with
/// their quotes removed; comments and blank lines are left out.
pub fn os_release_fields(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| {
            (
                key.trim().to_owned(),
                value.trim().trim_matches('"').trim_matches('\'').to_owned(),
            )
        })
        .filter(|(key, _)| !key.is_empty())
        .collect()
}

impl OsFacts {
    /// The OS of family `family` (`linux`) described by `os-release` text.
    pub fn from_os_release(family: &str, text: &str) -> OsFacts {
        let mut fields = os_release_fields(text);
        OsFacts {
            family: family.to_owned(),
            distribution: fields.remove("ID"),
            version: fields.remove("VERSION_ID"),
        }
    }
}

/// The facts of a machine that conditions ask about. The installer
/// implements it over the real machine; this crate only asks.
pub trait Facts {
    /// Whether a file or directory exists at `path`.
    fn file_exists(&self, path: &str) -> Result<bool, FactError>;
    /// The SHA-256 of the file at `path`; `None` when there is no file.
    fn file_sha256(&self, path: &str) -> Result<Option<Sha256>, FactError>;
    /// At most `max_bytes` of the file at `path`, as text (invalid UTF-8
    /// replaced); `None` when there is no file.
    fn read_file_text(&self, path: &str, max_bytes: usize) -> Result<Option<String>, FactError>;
    /// The installed version of a package, as the package manager writes
    /// it; `None` when it is not installed.
    fn package_version(
        &self,
        manager: PackageManager,
        name: &str,
    ) -> Result<Option<String>, FactError>;
    /// Runs a command (argv, no shell) and returns how it ended.
    fn run_command(&self, argv: &[String]) -> Result<CommandOutput, FactError>;
    /// Whether a process with this name (`/proc/PID/comm`) is running.
    fn process_running(&self, name: &str) -> Result<bool, FactError>;
    /// The operating system.
    fn os(&self) -> Result<OsFacts, FactError>;
    /// The machine architecture (`x86_64`).
    fn arch(&self) -> Result<String, FactError>;
    /// The machine's hardware; `None` where it cannot be known.
    fn hardware(&self) -> Result<Option<crate::inventory::Inventory>, FactError> {
        Ok(None)
    }
}

/// The outcome of a condition and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// Whether the condition holds.
    pub holds: bool,
    /// Which facts decided it, in words ("file /opt/x exists").
    pub explanation: String,
}

impl Evaluation {
    fn new(holds: bool, explanation: impl Into<String>) -> Self {
        Self {
            holds,
            explanation: explanation.into(),
        }
    }
}

fn in_list(list: &[String], value: &str) -> bool {
    list.iter().any(|item| item.eq_ignore_ascii_case(value))
}

fn version_check(what: &str, text: &str, versions: &VersionReq) -> Evaluation {
    match Version::new(text) {
        Ok(version) if versions.matches(&version) => Evaluation::new(
            true,
            format!("{what} is at version {version}, within {versions}"),
        ),
        Ok(version) => Evaluation::new(
            false,
            format!("{what} is at version {version}, outside {versions}"),
        ),
        Err(_) => Evaluation::new(
            false,
            format!(
                "{what} has the version {:?}, which Roleout cannot compare",
                text.chars().take(80).collect::<String>()
            ),
        ),
    }
}

impl Condition {
    /// Decides the condition over `facts`. `all` stops at the first
    /// condition that fails and `any` at the first that holds, so no fact
    /// (no command) is gathered that cannot change the outcome. The
    /// explanation names the facts that decided.
    ///
    /// Paths and argv must already be rendered
    /// ([`crate::render::render_condition`]).
    pub fn evaluate(&self, facts: &dyn Facts) -> Result<Evaluation, FactError> {
        Ok(match self {
            Condition::All(inner) => {
                let mut held = Vec::with_capacity(inner.len());
                for condition in inner {
                    let evaluation = condition.evaluate(facts)?;
                    if !evaluation.holds {
                        return Ok(evaluation);
                    }
                    held.push(evaluation.explanation);
                }
                if held.is_empty() {
                    Evaluation::new(true, "an empty all holds")
                } else {
                    Evaluation::new(true, held.join("; "))
                }
            }
            Condition::Any(inner) => {
                let mut failed = Vec::with_capacity(inner.len());
                for condition in inner {
                    let evaluation = condition.evaluate(facts)?;
                    if evaluation.holds {
                        return Ok(evaluation);
                    }
                    failed.push(evaluation.explanation);
                }
                if failed.is_empty() {
                    Evaluation::new(false, "an empty any does not hold")
                } else {
                    Evaluation::new(false, format!("none holds: {}", failed.join("; ")))
                }
            }
            Condition::Not(inner) => {
                // The inner explanation states the fact ("file x does not
                // exist"), which explains the negation as well.
                let evaluation = inner.evaluate(facts)?;
                Evaluation::new(!evaluation.holds, evaluation.explanation)
            }
            Condition::FileExists { path } => {
                if facts.file_exists(path)? {
                    Evaluation::new(true, format!("file {path} exists"))
                } else {
                    Evaluation::new(false, format!("file {path} does not exist"))
                }
            }
            Condition::FileSha256 { path, sha256 } => match facts.file_sha256(path)? {
                None => Evaluation::new(false, format!("file {path} does not exist")),
                Some(actual) if &actual == sha256 => {
                    Evaluation::new(true, format!("file {path} has the SHA-256 {sha256}"))
                }
                Some(actual) => Evaluation::new(
                    false,
                    format!("file {path} has the SHA-256 {actual}, not {sha256}"),
                ),
            },
            Condition::FileVersion {
                path,
                pattern,
                versions,
            } => match facts.read_file_text(path, MAX_VERSION_FILE_BYTES)? {
                None => Evaluation::new(false, format!("file {path} does not exist")),
                Some(text) => {
                    let found = match pattern {
                        None => text.lines().next().map(|line| line.trim().to_owned()),
                        Some(pattern) => first_capture(pattern, &text),
                    };
                    match found {
                        Some(version) => version_check(&format!("file {path}"), &version, versions),
                        None => Evaluation::new(
                            false,
                            format!("file {path} holds no version Roleout can find"),
                        ),
                    }
                }
            },
            Condition::Package {
                manager,
                name,
                versions,
            } => {
                let what = format!("{} package {name}", manager.as_str());
                match facts.package_version(*manager, name)? {
                    None => Evaluation::new(false, format!("{what} is not installed")),
                    Some(version) => version_check(&what, &version, versions),
                }
            }
            Condition::Command {
                argv,
                exit_code,
                output,
                versions: Some(versions),
            } => {
                let what = format!("command {argv:?}");
                let result = facts.run_command(argv)?;
                if result.exit_code != *exit_code {
                    return Ok(Evaluation::new(
                        false,
                        format!("{what} exited with {}, not {exit_code}", result.exit_code),
                    ));
                }
                let found = match output {
                    None => result
                        .stdout
                        .lines()
                        .map(str::trim)
                        .find(|line| !line.is_empty())
                        .map(str::to_owned),
                    Some(pattern) => result
                        .stdout
                        .lines()
                        .find_map(|line| first_capture(pattern, line)),
                };
                match found {
                    Some(version) => version_check(&what, &version, versions),
                    None => Evaluation::new(
                        false,
                        format!("{what} printed no version Roleout can find"),
                    ),
                }
            }
            Condition::Command {
                argv,
                exit_code,
                output,
                versions: None,
            } => {
                let what = format!("command {argv:?}");
                let result = facts.run_command(argv)?;
                if result.exit_code != *exit_code {
                    Evaluation::new(
                        false,
                        format!("{what} exited with {}, not {exit_code}", result.exit_code),
                    )
                } else {
                    match output {
                        None => Evaluation::new(true, format!("{what} exited with {exit_code}")),
                        Some(pattern)
                            if result.stdout.lines().any(|line| pattern.is_match(line)) =>
                        {
                            Evaluation::new(
                                true,
                                format!(
                                    "{what} exited with {exit_code} and printed a line matching {pattern}"
                                ),
                            )
                        }
                        Some(pattern) => Evaluation::new(
                            false,
                            format!(
                                "{what} exited with {exit_code} but printed no line matching {pattern}"
                            ),
                        ),
                    }
                }
            }
            Condition::ProcessNotRunning { name } => {
                if facts.process_running(name)? {
                    Evaluation::new(false, format!("process {name} is running"))
                } else {
                    Evaluation::new(true, format!("process {name} is not running"))
                }
            }
            Condition::Os {
                family,
                distribution,
                versions,
            } => {
                let os = facts.os()?;
                let distribution_name = os.distribution.as_deref().unwrap_or("unknown");
                if !family.is_empty() && !in_list(family, &os.family) {
                    Evaluation::new(
                        false,
                        format!("the OS is {}, not one of {}", os.family, family.join(", ")),
                    )
                } else if !distribution.is_empty()
                    && !os
                        .distribution
                        .as_deref()
                        .is_some_and(|name| in_list(distribution, name))
                {
                    Evaluation::new(
                        false,
                        format!(
                            "the distribution is {distribution_name}, not one of {}",
                            distribution.join(", ")
                        ),
                    )
                } else if versions.is_any() {
                    Evaluation::new(
                        true,
                        format!("the OS is {} ({distribution_name})", os.family),
                    )
                } else {
                    match &os.version {
                        Some(version) => version_check(
                            &format!("the OS {} ({distribution_name})", os.family),
                            version,
                            versions,
                        ),
                        None => Evaluation::new(
                            false,
                            format!("the OS version is unknown, so not within {versions}"),
                        ),
                    }
                }
            }
            Condition::Hardware {
                fact,
                matches,
                at_least,
            } => {
                let Some(hardware) = facts.hardware()? else {
                    return Ok(Evaluation::new(
                        false,
                        format!("the machine's hardware is not known, so not its {fact}"),
                    ));
                };
                match (hardware.fact(fact), matches, at_least) {
                    (None, _, _) => Evaluation::new(false, format!("the hardware has no {fact}")),
                    (Some(value), _, Some(least)) => match value.parse::<u64>() {
                        Ok(number) => Evaluation::new(
                            number >= *least,
                            format!(
                                "{fact} is {number}, {} {least}",
                                if number >= *least {
                                    "at least"
                                } else {
                                    "less than"
                                }
                            ),
                        ),
                        Err(_) => Evaluation::new(
                            false,
                            format!("{fact} is {value:?}, not a number to compare with {least}"),
                        ),
                    },
                    (Some(value), Some(pattern), None) => {
                        match value.lines().find(|line| pattern.is_match(line)) {
                            Some(line) => {
                                Evaluation::new(true, format!("{fact} {line:?} matches {pattern}"))
                            }
                            None => {
                                Evaluation::new(false, format!("{fact} does not match {pattern}"))
                            }
                        }
                    }
                    (Some(value), None, None) => {
                        Evaluation::new(true, format!("{fact} is {value:?}"))
                    }
                }
            }
            Condition::Arch { names } => {
                let arch = facts.arch()?;
                if names.is_empty() || in_list(names, &arch) {
                    Evaluation::new(true, format!("the architecture is {arch}"))
                } else {
                    Evaluation::new(
                        false,
                        format!(
                            "the architecture is {arch}, not one of {}",
                            names.join(", ")
                        ),
                    )
                }
            }
        })
    }
}

impl PackageManager {
    /// Its name in descriptors and messages: `dpkg` or `rpm`.
    pub fn as_str(self) -> &'static str {
        match self {
            PackageManager::Dpkg => "dpkg",
            PackageManager::Rpm => "rpm",
        }
    }
}

/// The first capture group of the first match of `pattern` in `text` (the
/// whole match when the pattern has no group). [`Pattern`] only answers
/// "does it match", so the regex is compiled again here, with the same
/// limits; it compiled once, so it compiles again.
fn first_capture(pattern: &Pattern, text: &str) -> Option<String> {
    let regex = regex::RegexBuilder::new(pattern.as_str())
        .size_limit(1 << 20)
        .dfa_size_limit(1 << 20)
        .build()
        .ok()?;
    let captures = regex.captures(text)?;
    captures
        .get(1)
        .or_else(|| captures.get(0))
        .map(|found| found.as_str().trim().to_owned())
}

/// What the installer remembers of a product's past runs on this machine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunHistory<'a> {
    /// It has succeeded at least once.
    pub ever_succeeded: bool,
    /// The build digest of the product at its last success.
    pub last_digest: Option<&'a str>,
}

/// Whether a conditional install runs now, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Run it.
    Run {
        /// Why, in words.
        reason: String,
    },
    /// Skip it.
    Skip {
        /// Why, in words.
        reason: String,
    },
}

impl Decision {
    /// Whether it runs.
    pub fn runs(&self) -> bool {
        matches!(self, Decision::Run { .. })
    }

    /// Why.
    pub fn reason(&self) -> &str {
        match self {
            Decision::Run { reason } | Decision::Skip { reason } => reason,
        }
    }
}

impl IncrementalInstall {
    /// Decides whether to run now. The run policy is looked at first (it
    /// needs no fact): `once` skips after any success, `on-change` skips
    /// when the last success was of the same digest, `always` never skips
    /// for history. Then the condition, if any, must hold; it is not
    /// evaluated when the policy already skips, so no command runs for
    /// nothing.
    pub fn should_run(
        &self,
        facts: &dyn Facts,
        history: RunHistory<'_>,
        current_digest: &str,
    ) -> Result<Decision, FactError> {
        let policy_reason = match self.run {
            RunPolicy::Once if history.ever_succeeded => {
                return Ok(Decision::Skip {
                    reason: "it runs once per machine and has already succeeded".to_owned(),
                });
            }
            RunPolicy::Once => "it runs once per machine and has not succeeded yet".to_owned(),
            RunPolicy::OnChange
                if history.ever_succeeded && history.last_digest == Some(current_digest) =>
            {
                return Ok(Decision::Skip {
                    reason: format!(
                        "it runs on change and nothing changed since its last success (digest {current_digest})"
                    ),
                });
            }
            RunPolicy::OnChange => match (history.ever_succeeded, history.last_digest) {
                (false, _) => "it runs on change and has not succeeded yet".to_owned(),
                (true, Some(last)) => {
                    format!(
                        "it runs on change and its digest changed from {last} to {current_digest}"
                    )
                }
                (true, None) => {
                    "it runs on change and the digest of its last success is unknown".to_owned()
                }
            },
            RunPolicy::Always => "it runs every time".to_owned(),
        };
        Ok(match &self.when {
            None => Decision::Run {
                reason: policy_reason,
            },
            Some(condition) => {
                let evaluation = condition.evaluate(facts)?;
                if evaluation.holds {
                    Decision::Run {
                        reason: format!("{policy_reason}, and {}", evaluation.explanation),
                    }
                } else {
                    Decision::Skip {
                        reason: format!("its condition does not hold: {}", evaluation.explanation),
                    }
                }
            }
        })
    }
}

#[cfg(test)]
// A test that unwraps fails loudly, which is what a test should do.
#[allow(clippy::unwrap_used)]
mod tests {
    use std::cell::RefCell;
    use std::collections::{BTreeMap, HashMap};

    use super::*;

    /// An in-memory machine: the facts a test sets, and a record of what
    /// was asked.
    #[derive(Default)]
    struct Machine {
        files: BTreeMap<String, String>,
        digests: BTreeMap<String, Sha256>,
        packages: HashMap<(PackageManager, String), String>,
        commands: BTreeMap<Vec<String>, CommandOutput>,
        processes: Vec<String>,
        os: Option<OsFacts>,
        arch: String,
        broken_path: Option<String>,
        asked: RefCell<Vec<String>>,
    }

    impl Machine {
        fn ask(&self, what: String) {
            self.asked.borrow_mut().push(what);
        }

        fn check_broken(&self, path: &str) -> Result<(), FactError> {
            if self.broken_path.as_deref() == Some(path) {
                Err(FactError {
                    fact: format!("file {path}"),
                    reason: "permission denied".to_owned(),
                })
            } else {
                Ok(())
            }
        }
    }

    impl Facts for Machine {
        fn file_exists(&self, path: &str) -> Result<bool, FactError> {
            self.ask(format!("exists {path}"));
            self.check_broken(path)?;
            Ok(self.files.contains_key(path) || self.digests.contains_key(path))
        }

        fn file_sha256(&self, path: &str) -> Result<Option<Sha256>, FactError> {
            self.ask(format!("sha256 {path}"));
            self.check_broken(path)?;
            Ok(self.digests.get(path).cloned())
        }

        fn read_file_text(
            &self,
            path: &str,
            max_bytes: usize,
        ) -> Result<Option<String>, FactError> {
            self.ask(format!("read {path} {max_bytes}"));
            self.check_broken(path)?;
            Ok(self.files.get(path).map(|text| {
                let mut end = text.len().min(max_bytes);
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text[..end].to_owned()
            }))
        }

        fn package_version(
            &self,
            manager: PackageManager,
            name: &str,
        ) -> Result<Option<String>, FactError> {
            self.ask(format!("package {name}"));
            Ok(self.packages.get(&(manager, name.to_owned())).cloned())
        }

        fn run_command(&self, argv: &[String]) -> Result<CommandOutput, FactError> {
            self.ask(format!("run {}", argv.join(" ")));
            self.commands.get(argv).cloned().ok_or_else(|| FactError {
                fact: format!("the result of {argv:?}"),
                reason: "no such program".to_owned(),
            })
        }

        fn process_running(&self, name: &str) -> Result<bool, FactError> {
            self.ask(format!("process {name}"));
            Ok(self.processes.iter().any(|process| process == name))
        }

        fn os(&self) -> Result<OsFacts, FactError> {
            self.ask("os".to_owned());
            self.os.clone().ok_or_else(|| FactError {
                fact: "the operating system".to_owned(),
                reason: "unknown".to_owned(),
            })
        }

        fn arch(&self) -> Result<String, FactError> {
            self.ask("arch".to_owned());
            Ok(self.arch.clone())
        }

        fn hardware(&self) -> Result<Option<crate::inventory::Inventory>, FactError> {
            self.ask("hardware".to_owned());
            Ok(serde_json::from_str(
                r#"{"arch":"x86_64","firmware":"uefi","cpu":{"model":"Xeon","vendor":"GenuineIntel","logical":8,"sockets":1},
                   "memory-bytes":17179869184,"disks":[],"nics":[],
                   "pci":[{"slot":"0000:00:1f.2","vendor":"8086","device":"2922","class":"010601","modalias":"pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01"}],
                   "dmi":{"system-vendor":"Dell Inc.","product-name":"PowerEdge R650","product-version":"","board-vendor":"","board-name":"","bios-vendor":"","bios-version":""}}"#,
            )
            .ok())
        }
    }

    fn debian() -> Machine {
        let mut machine = Machine {
            os: Some(OsFacts {
                family: "linux".to_owned(),
                distribution: Some("debian".to_owned()),
                version: Some("12".to_owned()),
            }),
            arch: "x86_64".to_owned(),
            ..Default::default()
        };
        machine.files.insert(
            "/opt/notes/VERSION".to_owned(),
            "9.0.1\nbuild 77\n".to_owned(),
        );
        machine.files.insert(
            "/opt/notes/about.txt".to_owned(),
            "Lotus Notes\nRelease 9.0.1 FP3 (build 77)\n".to_owned(),
        );
        machine.digests.insert(
            "/opt/notes/bin/notes".to_owned(),
            Sha256::from_bytes(&[7; 32]),
        );
        machine.packages.insert(
            (PackageManager::Dpkg, "openjdk-17-jre".to_owned()),
            "17.0.9+9-1~deb12u1".to_owned(),
        );
        machine.commands.insert(
            vec!["/opt/notes/bin/notes".to_owned(), "--version".to_owned()],
            CommandOutput {
                exit_code: 0,
                stdout: "Notes\nversion 9.0.1\n".to_owned(),
            },
        );
        machine.processes.push("notes2".to_owned());
        machine
    }

    fn req(text: &str) -> VersionReq {
        VersionReq::parse(text).unwrap()
    }

    fn exists(path: &str) -> Condition {
        Condition::FileExists {
            path: path.to_owned(),
        }
    }

    fn holds(condition: &Condition, machine: &Machine) -> bool {
        condition.evaluate(machine).unwrap().holds
    }

    #[test]
    fn file_leaves() {
        let machine = debian();
        assert!(holds(&exists("/opt/notes/VERSION"), &machine));
        let evaluation = exists("/opt/other").evaluate(&machine).unwrap();
        assert!(!evaluation.holds);
        assert_eq!(evaluation.explanation, "file /opt/other does not exist");

        let sha = |bytes: [u8; 32]| Condition::FileSha256 {
            path: "/opt/notes/bin/notes".to_owned(),
            sha256: Sha256::from_bytes(&bytes),
        };
        assert!(holds(&sha([7; 32]), &machine));
        let evaluation = sha([8; 32]).evaluate(&machine).unwrap();
        assert!(!evaluation.holds);
        assert!(
            evaluation.explanation.contains(&"07".repeat(32)),
            "{}",
            evaluation.explanation
        );
    }

    #[test]
    fn file_versions_from_the_first_line_or_a_pattern() {
        let machine = debian();
        let first_line = |versions: &str| Condition::FileVersion {
            path: "/opt/notes/VERSION".to_owned(),
            pattern: None,
            versions: req(versions),
        };
        assert!(holds(&first_line(">=9.0"), &machine));
        assert!(!holds(&first_line(">=9.1"), &machine));
        let with_pattern = |pattern: &str, versions: &str| Condition::FileVersion {
            path: "/opt/notes/about.txt".to_owned(),
            pattern: Some(Pattern::new(pattern).unwrap()),
            versions: req(versions),
        };
        // The capture group, not the whole match, is the version.
        assert!(holds(
            &with_pattern(r"Release (\S+ FP\d+)", ">9.0.1"),
            &machine
        ));
        assert!(!holds(
            &with_pattern(r"Release (\S+ FP\d+)", ">=9.0.1 FP4"),
            &machine
        ));
        let evaluation = with_pattern(r"Version (\S+)", ">=1")
            .evaluate(&machine)
            .unwrap();
        assert!(!evaluation.holds);
        assert!(
            evaluation.explanation.contains("no version"),
            "{}",
            evaluation.explanation
        );
        // Not a version at all: does not hold, and says why.
        let evaluation = with_pattern(r"(Lotus)", ">=1").evaluate(&machine).unwrap();
        assert!(!evaluation.holds);
        assert!(
            evaluation.explanation.contains("cannot compare"),
            "{}",
            evaluation.explanation
        );
        // The file is read with the bound.
        assert!(
            machine
                .asked
                .borrow()
                .iter()
                .any(|asked| asked.ends_with(" 65536"))
        );
    }

    #[test]
    fn packages() {
        let machine = debian();
        let package = |name: &str, versions: VersionReq| Condition::Package {
            manager: PackageManager::Dpkg,
            name: name.to_owned(),
            versions,
        };
        assert!(holds(
            &package("openjdk-17-jre", VersionReq::any()),
            &machine
        ));
        assert!(holds(&package("openjdk-17-jre", req(">=17.0.9")), &machine));
        assert!(!holds(
            &package("openjdk-17-jre", req(">=17.0.10")),
            &machine
        ));
        let evaluation = package("notes", VersionReq::any())
            .evaluate(&machine)
            .unwrap();
        assert_eq!(
            evaluation.explanation,
            "dpkg package notes is not installed"
        );
        // The same name under rpm is another package.
        let rpm = Condition::Package {
            manager: PackageManager::Rpm,
            name: "openjdk-17-jre".to_owned(),
            versions: VersionReq::any(),
        };
        assert!(!holds(&rpm, &machine));
    }

    #[test]
    fn commands_check_exit_code_and_output() {
        let machine = debian();
        let command = |exit_code: i32, output: Option<&str>| Condition::Command {
            argv: vec!["/opt/notes/bin/notes".to_owned(), "--version".to_owned()],
            exit_code,
            output: output.map(|pattern| Pattern::new(pattern).unwrap()),
            versions: None,
        };
        assert!(holds(&command(0, None), &machine));
        assert!(!holds(&command(1, None), &machine));
        assert!(holds(&command(0, Some(r"^version 9\.")), &machine));
        let evaluation = command(0, Some(r"^version 10\."))
            .evaluate(&machine)
            .unwrap();
        assert!(!evaluation.holds);
        assert!(
            evaluation.explanation.contains("printed no line"),
            "{}",
            evaluation.explanation
        );
        // The version it prints, compared as a range: the pattern's first
        // group, or the first line without a pattern.
        let versioned = |output: Option<&str>, range: &str| Condition::Command {
            argv: vec!["/opt/notes/bin/notes".to_owned(), "--version".to_owned()],
            exit_code: 0,
            output: output.map(|pattern| Pattern::new(pattern).unwrap()),
            versions: Some(VersionReq::parse(range).unwrap()),
        };
        assert!(holds(
            &versioned(Some(r"^version (\S+)"), ">=9.0.1, <10"),
            &machine
        ));
        let evaluation = versioned(Some(r"^version (\S+)"), ">=9.1")
            .evaluate(&machine)
            .unwrap();
        assert!(!evaluation.holds);
        assert!(
            evaluation
                .explanation
                .contains("version 9.0.1, outside >=9.1"),
            "{}",
            evaluation.explanation
        );
        let evaluation = versioned(None, ">=1").evaluate(&machine).unwrap();
        assert!(!evaluation.holds, "the first line, Notes, is no version");
        assert!(
            evaluation.explanation.contains("\"Notes\""),
            "{}",
            evaluation.explanation
        );
        // A command that cannot run is an error, not a "no".
        let missing = Condition::Command {
            argv: vec!["/nope".to_owned()],
            exit_code: 0,
            output: None,
            versions: None,
        };
        let error = missing.evaluate(&machine).unwrap_err();
        assert_eq!(error.reason, "no such program");
    }

    #[test]
    fn processes_os_and_arch() {
        let machine = debian();
        let not_running = |name: &str| Condition::ProcessNotRunning {
            name: name.to_owned(),
        };
        assert!(!holds(&not_running("notes2"), &machine));
        assert!(holds(&not_running("designer"), &machine));

        let os = |family: &[&str], distribution: &[&str], versions: VersionReq| Condition::Os {
            family: family.iter().map(|name| (*name).to_owned()).collect(),
            distribution: distribution.iter().map(|name| (*name).to_owned()).collect(),
            versions,
        };
        assert!(holds(&os(&["Linux"], &[], VersionReq::any()), &machine));
        assert!(!holds(&os(&["windows"], &[], VersionReq::any()), &machine));
        assert!(holds(
            &os(&["linux"], &["ubuntu", "debian"], req(">=11")),
            &machine
        ));
        assert!(!holds(&os(&["linux"], &["debian"], req(">=13")), &machine));
        assert!(!holds(
            &os(&["linux"], &["ubuntu"], VersionReq::any()),
            &machine
        ));
        let mut unknown_version = debian();
        unknown_version.os = Some(OsFacts {
            family: "linux".to_owned(),
            distribution: None,
            version: None,
        });
        assert!(!holds(&os(&["linux"], &[], req(">=1")), &unknown_version));
        assert!(!holds(
            &os(&["linux"], &["debian"], VersionReq::any()),
            &unknown_version
        ));

        let arch = |names: &[&str]| Condition::Arch {
            names: names.iter().map(|name| (*name).to_owned()).collect(),
        };
        assert!(holds(&arch(&["aarch64", "x86_64"]), &machine));
        assert!(!holds(&arch(&["aarch64"]), &machine));
    }

    #[test]
    fn combinations_short_circuit_and_explain_the_deciding_leaf() {
        let machine = debian();
        let run = Condition::Command {
            argv: vec!["/opt/notes/bin/notes".to_owned(), "--version".to_owned()],
            exit_code: 0,
            output: None,
            versions: None,
        };
        let all = Condition::All(vec![exists("/opt/missing"), run.clone()]);
        let evaluation = all.evaluate(&machine).unwrap();
        assert!(!evaluation.holds);
        assert_eq!(evaluation.explanation, "file /opt/missing does not exist");
        let any = Condition::Any(vec![exists("/opt/notes/VERSION"), run.clone()]);
        let evaluation = any.evaluate(&machine).unwrap();
        assert!(evaluation.holds);
        assert_eq!(evaluation.explanation, "file /opt/notes/VERSION exists");
        // Neither combination ran the command.
        assert!(
            !machine
                .asked
                .borrow()
                .iter()
                .any(|asked| asked.starts_with("run "))
        );

        let none = Condition::Any(vec![exists("/a"), exists("/b")]);
        let evaluation = none.evaluate(&machine).unwrap();
        assert!(!evaluation.holds);
        assert_eq!(
            evaluation.explanation,
            "none holds: file /a does not exist; file /b does not exist"
        );
        let not = Condition::Not(Box::new(exists("/a")));
        assert!(holds(&not, &machine));
        assert!(holds(&Condition::All(Vec::new()), &machine));
        assert!(!holds(&Condition::Any(Vec::new()), &machine));
        let nested = Condition::All(vec![
            Condition::Not(Box::new(Condition::ProcessNotRunning {
                name: "notes2".to_owned(),
            })),
            Condition::Any(vec![exists("/a"), run]),
        ]);
        let evaluation = nested.evaluate(&machine).unwrap();
        assert!(evaluation.holds);
        assert_eq!(
            evaluation.explanation,
            "process notes2 is running; command [\"/opt/notes/bin/notes\", \"--version\"] exited with 0"
        );
    }

    #[test]
    fn fact_errors_propagate() {
        let mut machine = debian();
        machine.broken_path = Some("/root/secret".to_owned());
        let condition = Condition::Any(vec![exists("/a"), exists("/root/secret")]);
        let error = condition.evaluate(&machine).unwrap_err();
        assert_eq!(
            error.to_string(),
            "could not learn file /root/secret: permission denied"
        );
    }

    fn incremental(run: RunPolicy, when: Option<Condition>) -> IncrementalInstall {
        IncrementalInstall { when, run }
    }

    #[test]
    fn run_policies() {
        let machine = debian();
        let never = RunHistory::default();
        let succeeded = |digest: Option<&'static str>| RunHistory {
            ever_succeeded: true,
            last_digest: digest,
        };
        let decide = |policy: RunPolicy, history: RunHistory<'_>| {
            incremental(policy, None)
                .should_run(&machine, history, "d2")
                .unwrap()
        };
        assert!(decide(RunPolicy::Once, never).runs());
        assert!(!decide(RunPolicy::Once, succeeded(Some("d1"))).runs());
        assert!(decide(RunPolicy::Always, succeeded(Some("d2"))).runs());
        assert!(decide(RunPolicy::OnChange, never).runs());
        assert!(!decide(RunPolicy::OnChange, succeeded(Some("d2"))).runs());
        let changed = decide(RunPolicy::OnChange, succeeded(Some("d1")));
        assert!(changed.runs());
        assert!(
            changed.reason().contains("from d1 to d2"),
            "{}",
            changed.reason()
        );
        assert!(decide(RunPolicy::OnChange, succeeded(None)).runs());
    }

    #[test]
    fn conditions_gate_runs_but_only_when_the_policy_allows() {
        let machine = debian();
        let when = Some(Condition::Command {
            argv: vec!["/opt/notes/bin/notes".to_owned(), "--version".to_owned()],
            exit_code: 1,
            output: None,
            versions: None,
        });
        let decision = incremental(RunPolicy::Always, when.clone())
            .should_run(&machine, RunHistory::default(), "d")
            .unwrap();
        assert!(!decision.runs());
        assert!(
            decision.reason().contains("exited with 0, not 1"),
            "{}",
            decision.reason()
        );
        assert_eq!(machine.asked.borrow().len(), 1);

        // `once` after a success: the condition is not even looked at.
        let decision = incremental(RunPolicy::Once, when)
            .should_run(
                &machine,
                RunHistory {
                    ever_succeeded: true,
                    last_digest: None,
                },
                "d",
            )
            .unwrap();
        assert!(!decision.runs());
        assert_eq!(machine.asked.borrow().len(), 1);

        let decision = incremental(RunPolicy::Always, Some(exists("/opt/notes/VERSION")))
            .should_run(&machine, RunHistory::default(), "d")
            .unwrap();
        assert!(decision.runs());
        assert!(
            decision.reason().contains("file /opt/notes/VERSION exists"),
            "{}",
            decision.reason()
        );
    }

    #[test]
    fn hardware_facts_are_tested_by_presence_pattern_and_least_value() {
        let machine = Machine::default();
        let hardware =
            |fact: &str, matches: Option<&str>, at_least: Option<u64>| Condition::Hardware {
                fact: fact.to_owned(),
                matches: matches.map(|pattern| Pattern::new(pattern).unwrap()),
                at_least,
            };
        let holds = |condition: Condition| condition.evaluate(&machine).unwrap().holds;
        assert!(holds(hardware("memory.bytes", None, Some(8 << 30))));
        assert!(!holds(hardware("memory.bytes", None, Some(32 << 30))));
        assert!(holds(hardware(
            "dmi.product-name",
            Some("^PowerEdge"),
            None
        )));
        assert!(holds(hardware("pci", Some("v00008086d00002922"), None)));
        assert!(!holds(hardware("pci", Some("v000010DE"), None)));
        assert!(!holds(hardware("hypervisor", None, None)));
        let evaluation = hardware("memory.bytes", None, Some(32 << 30))
            .evaluate(&machine)
            .unwrap();
        assert!(
            evaluation.explanation.contains("less than"),
            "{}",
            evaluation.explanation
        );
    }
}
