//! The command line of `roleout-admin` and of each shell line, as clap
//! definitions. Both parse the same [`Command`] enum, so a command has one
//! definition for its one-shot form, scripts and the interactive shell, and
//! its `--help`, its errors and its completion all come from it.

use std::path::PathBuf;

use clap::{Args, Parser, ValueHint};

use super::commands::Command;

/// Administer Roleout: check and import descriptors, define roles and
/// machines, build suites and watch what machines report.
///
/// With a command, runs it and exits. With -c, runs those commands. With
/// neither, reads commands from standard input, one per line, or starts the
/// interactive shell when standard input is a terminal.
#[derive(Debug, Parser)]
#[command(
    name = "roleout-admin",
    version = crate::VERSION,
    disable_help_subcommand = true
)]
pub struct Cli {
    /// How to reach the directory.
    #[command(flatten)]
    pub connection: ConnectionOptions,

    /// Run these commands (separated by `;` or newlines) and exit; the
    /// first that fails stops them.
    #[arg(short = 'c', value_name = "COMMANDS")]
    pub commands: Option<String>,

    /// The command to run.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// How the session reaches the directory; later commands connect with them.
#[derive(Debug, Clone, Args)]
pub struct ConnectionOptions {
    /// State directory whose managed local slapd holds the directory.
    #[arg(
        long = "state-dir",
        value_name = "DIR",
        env = "ROLEOUT_STATE_DIR",
        default_value = "./roleout-state",
        value_hint = ValueHint::DirPath
    )]
    pub state_dir: PathBuf,

    /// Directory server URL (ldap://, ldaps:// or ldapi://); repeat the
    /// option to give fallbacks. Overrides --state-dir.
    #[arg(long = "url", value_name = "URL", value_hint = ValueHint::Url)]
    pub urls: Vec<String>,

    /// DN to bind as.
    #[arg(long = "bind-dn", value_name = "DN", value_hint = ValueHint::Other)]
    pub bind_dn: Option<String>,

    /// File holding the bind password (its first line).
    #[arg(
        long = "bind-password-file",
        value_name = "FILE",
        value_hint = ValueHint::FilePath
    )]
    pub bind_password_file: Option<PathBuf>,

    /// Base DN of the Roleout tree (default: the directory's own).
    #[arg(long = "base-dn", value_name = "DN", value_hint = ValueHint::Other)]
    pub base_dn: Option<String>,

    /// Use StartTLS on ldap:// URLs.
    #[arg(long = "starttls")]
    pub starttls: bool,

    /// PEM file of the certificates trusted for ldaps:// and StartTLS
    /// (default: the system's trusted roots).
    #[arg(
        long = "ldap-ca-certificate",
        value_name = "FILE",
        value_hint = ValueHint::FilePath
    )]
    pub ldap_ca_certificate: Option<PathBuf>,

    /// Where machine entries are searched for (default: ou=machines under the base), for
    /// machines kept in the organisation's own OUs.
    #[arg(long = "machine-base", value_name = "DN", value_hint = ValueHint::Other)]
    pub machine_base: Option<String>,

    /// The filter machine entries match (default: (objectClass=roleoutMachine)).
    #[arg(long = "machine-filter", value_name = "FILTER", value_hint = ValueHint::Other)]
    pub machine_filter: Option<String>,

    /// Where role groups are searched for (default: ou=roles under the base).
    #[arg(long = "role-base", value_name = "DN", value_hint = ValueHint::Other)]
    pub role_base: Option<String>,

    /// The filter role groups match (default: (objectClass=roleoutRole)).
    #[arg(long = "role-filter", value_name = "FILTER", value_hint = ValueHint::Other)]
    pub role_filter: Option<String>,
}

/// One statement typed at the shell or read from a script: a command and
/// its arguments, without the program name.
#[derive(Debug, Parser)]
#[command(
    name = "roleout",
    no_binary_name = true,
    disable_help_subcommand = true,
    disable_version_flag = true,
    subcommand_required = true,
    help_expected = true
)]
pub struct ShellLine {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
        ShellLine::command().debug_assert();
    }

    #[test]
    fn every_command_has_an_example() {
        for command in ShellLine::command().get_subcommands() {
            let long_about = command
                .get_long_about()
                .map(|text| text.to_string())
                .unwrap_or_default();
            assert!(
                long_about.contains("Example:"),
                "{} has no Example: line in its doc",
                command.get_name()
            );
        }
    }
}
