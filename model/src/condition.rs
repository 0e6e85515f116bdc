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
                let what = format!("{} package {name}", manager_name(*manager));
                match facts.package_version(*manager, name)? {
                    None => Evaluation::new(false, format!("{what} is not installed")),
                    Some(version) => version_check(&what, &version, versions),
                }
            }
            Condition::Command {
                argv,
                exit_code,
                output,
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

fn manager_name(manager: PackageManager) -> &'static str {
    match manager {
        PackageManager::Dpkg => "dpkg",
        PackageManager::Rpm => "rpm",
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
