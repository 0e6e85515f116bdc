//! `roleout-admin`: the admin's command line and shell.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use roleout_builder::admin::{self, Output};

/// Administer Roleout: check and import descriptors, define roles and
/// machines, build suites and watch what machines report.
#[derive(Debug, Parser)]
#[command(name = "roleout-admin", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check descriptor files offline and print every problem.
    ///
    /// Example: roleout-admin check examples/*.xml
    Check {
        /// Descriptor files (XML).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    let mut output = Output {
        out: &mut stdout,
        err: &mut stderr,
    };
    let result = match cli.command {
        Command::Check { files } => admin::check::check_files(&files, &mut output).map(|_| ()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let _ = writeln!(output.err, "roleout-admin: {error}");
            ExitCode::FAILURE
        }
    }
}
