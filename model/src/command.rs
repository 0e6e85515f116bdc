//! CommandLineModel: one program run of a product's life cycle
//! (pre-install, install, post-install, uninstall) and how its outcome is
//! told.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::pattern::Pattern;

/// Which installer tool a command drives. Kinds differ only in their
/// defaults (argv template and exit-code table), never in how a command is
/// run.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum InstallerKind {
    /// Any program; no defaults.
    #[default]
    Generic,
    /// A shell script from the payload, run by `/bin/sh`.
    Script,
    /// A Debian package, installed with `dpkg`.
    Deb,
    /// An RPM package, installed with `rpm`.
    Rpm,
    /// A Windows Installer package, installed with `msiexec`.
    Msi,
    /// A tar archive, unpacked with `tar`.
    Tarball,
}

impl InstallerKind {
    /// Every kind, in declaration order.
    pub const ALL: [InstallerKind; 6] = [
        InstallerKind::Generic,
        InstallerKind::Script,
        InstallerKind::Deb,
        InstallerKind::Rpm,
        InstallerKind::Msi,
        InstallerKind::Tarball,
    ];

    /// The name used in descriptors.
    pub fn as_str(self) -> &'static str {
        match self {
            InstallerKind::Generic => "generic",
            InstallerKind::Script => "script",
            InstallerKind::Deb => "deb",
            InstallerKind::Rpm => "rpm",
            InstallerKind::Msi => "msi",
            InstallerKind::Tarball => "tarball",
        }
    }

    /// The exit codes that mean success with a reboot required when the
    /// command's `<outcome>` names none: Windows Installer's 3010 (reboot
    /// required) and 1641 (reboot started) for `msi`; none otherwise.
    pub fn default_reboot_codes(self) -> &'static [i32] {
        match self {
            InstallerKind::Msi => &[3010, 1641],
            _ => &[],
        }
    }

    /// Environment the kind's tool needs to run unattended, set unless the
    /// command sets the same variable: `DEBIAN_FRONTEND=noninteractive` for
    /// `deb` (a maintainer script's debconf question would wait for ever).
    pub fn default_env(self) -> &'static [(&'static str, &'static str)] {
        match self {
            InstallerKind::Deb => &[("DEBIAN_FRONTEND", "noninteractive")],
            _ => &[],
        }
    }
}

impl CommandLineModel {
    /// The exit-code table the command runs with: its own, with the kind's
    /// default reboot codes when it names none
    /// ([`InstallerKind::default_reboot_codes`]) and none of them means
    /// something else already.
    pub fn effective_exit_codes(&self) -> ExitCodeTable {
        let mut table = self.outcome.exit_codes.clone();
        if table.reboot.is_empty() {
            table.reboot = self
                .kind
                .default_reboot_codes()
                .iter()
                .copied()
                .filter(|code| !table.success.contains(code) && !table.retry.contains(code))
                .collect();
        }
        table
    }

    /// The environment the command runs with: its own, plus the kind's
    /// defaults for variables it does not set
    /// ([`InstallerKind::default_env`]).
    pub fn effective_env(&self) -> BTreeMap<String, String> {
        let mut env = self.env.clone();
        for (name, value) in self.kind.default_env() {
            env.entry((*name).to_owned())
                .or_insert_with(|| (*value).to_owned());
        }
        env
    }
}

impl fmt::Display for InstallerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The life-cycle phase a command belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Runs before the install command.
    PreInstall,
    /// The install itself.
    Install,
    /// Runs after a successful install.
    PostInstall,
    /// Removes the product.
    Uninstall,
}

impl Phase {
    /// The phases of an install, in the order they run.
    pub const INSTALL_ORDER: [Phase; 3] = [Phase::PreInstall, Phase::Install, Phase::PostInstall];

    /// The element name used in descriptors.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::PreInstall => "pre-install",
            Phase::Install => "install",
            Phase::PostInstall => "post-install",
            Phase::Uninstall => "uninstall",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an exit code means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExitMeaning {
    /// The command succeeded.
    Success,
    /// It succeeded and the machine must reboot before dependents run
    /// (Windows Installer's 3010).
    Reboot,
    /// A transient failure: run the command again (up to `retries`).
    Retry,
    /// The command failed.
    Failure,
}

/// Maps exit codes to meanings; a code in no list is a failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ExitCodeTable {
    /// Codes that mean success (default `[0]`).
    pub success: Vec<i32>,
    /// Codes that mean success with a reboot required.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reboot: Vec<i32>,
    /// Codes that mean "try again".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retry: Vec<i32>,
}

impl Default for ExitCodeTable {
    fn default() -> Self {
        Self {
            success: vec![0],
            reboot: Vec::new(),
            retry: Vec::new(),
        }
    }
}

impl ExitCodeTable {
    /// What `code` means under this table.
    pub fn meaning(&self, code: i32) -> ExitMeaning {
        if self.success.contains(&code) {
            ExitMeaning::Success
        } else if self.reboot.contains(&code) {
            ExitMeaning::Reboot
        } else if self.retry.contains(&code) {
            ExitMeaning::Retry
        } else {
            ExitMeaning::Failure
        }
    }
}

/// A log file the command writes, and the lines that tell its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct LogRules {
    /// The log file's path (a template, like argv).
    pub path: String,
    /// A line matching any of these means success.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub success: Vec<Pattern>,
    /// A line matching any of these means failure, whatever the exit code.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failure: Vec<Pattern>,
}

/// Patterns matched against the lines a command prints on its standard
/// output and standard error (when its outcome names no log file).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct OutputRules {
    /// A line matching any of these means success.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub success: Vec<Pattern>,
    /// A line matching any of these means failure, whatever the exit code.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failure: Vec<Pattern>,
}

/// How the outcome of a command is decided: first the exit-code table,
/// then the log or the command's output (a failure line fails even an exit
/// code of success; when success patterns are given, one of them must
/// match too).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct OutcomeRules {
    /// The exit-code table.
    #[serde(default)]
    pub exit_codes: ExitCodeTable,
    /// The log file and its patterns, if the outcome is also told by a log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<LogRules>,
    /// Patterns over the command's own output, if the outcome is told by
    /// what it prints (never together with `log`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<OutputRules>,
}

/// A file the installer writes before running the command (an answer file
/// for a silent install). Both fields are templates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ResponseFile {
    /// Where to write it (relative paths are under the run's work dir).
    pub path: String,
    /// Its content.
    pub content: String,
}

/// Default timeout of a command, in seconds.
pub const DEFAULT_TIMEOUT_SECS: u64 = 3600;

/// One command line of a product (CommandLineModel of Fig. 3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CommandLineModel {
    /// The installer tool it drives.
    #[serde(default)]
    pub kind: InstallerKind,
    /// Program and arguments, each a Tera template rendered with the
    /// variables. Never joined into a shell string unless `shell` is set.
    pub argv: Vec<String>,
    /// Run through `/bin/sh -c` (argv\[0\] is the script text, the rest its
    /// positional arguments). Opt-in and shown by `check`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shell: bool,
    /// Working directory (a template); the payload directory when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Extra environment (values are templates).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// An answer file written before the command runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_file: Option<ResponseFile>,
    /// Seconds before the whole process group is killed.
    pub timeout_secs: u64,
    /// Seconds between checks of the log while the command runs (a failure
    /// line ends the wait early); none means only after exit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_interval_secs: Option<u64>,
    /// How many times a "retry" exit code is retried.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u32,
    /// How the outcome is decided.
    #[serde(default)]
    pub outcome: OutcomeRules,
    /// For an uninstall command: whether the agent runs it by itself when
    /// the product is no longer assigned to the machine (it left the
    /// machine's suite, role or group choice). Otherwise an unassigned
    /// product is left installed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub remove_when_unassigned: bool,
    /// Commands run after this one, in order, in the same step (a phase
    /// written several times for one role set). Each has its own outcome
    /// rules; the first that fails fails the step, and a reboot one of
    /// them asks for is asked for when the last has run. None of them has
    /// commands of its own to run after it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub then: Vec<CommandLineModel>,
}

impl CommandLineModel {
    /// This command and those that run after it, in order.
    pub fn sequence(&self) -> impl Iterator<Item = &CommandLineModel> {
        std::iter::once(self).chain(&self.then)
    }
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}
