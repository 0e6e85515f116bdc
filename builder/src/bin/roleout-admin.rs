//! `roleout-admin`: the admin's command line, scripts and interactive
//! shell; everything but the exit lives in `roleout_builder::shell`.

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(roleout_builder::shell::main())
}
