//! Conditions of IncrementalInstall and VersionCheckerModel: detection
//! rules over facts of the target machine, combined with all / any / not.
//!
//! Conditions are data here; the installer gathers the facts (it owns the
//! file system and the processes) and [`Condition::evaluate`] decides.

use serde::{Deserialize, Serialize};

use crate::pattern::Pattern;
use crate::version::VersionReq;
use crate::ids::Sha256;

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
