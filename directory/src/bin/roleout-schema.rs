#![allow(clippy::print_stdout, clippy::print_stderr)] // A command-line tool: printing is its job.

//! Regenerates `schemas/roleout.ldif`, `schemas/roleout.schema` and
//! `schemas/99roleout.ldif` (389 Directory Server) from the
//! schema tables in `directory/src/schema.rs`, and `ldif/389ds-access.ldif`
//! from the access rules in `directory/src/access.rs`.
//!
//! Usage: `cargo run -p roleout-directory --bin roleout-schema [OUTPUT_DIR]`;
//! the default output directory is the workspace's `schemas/`.

use std::path::PathBuf;
use std::process::ExitCode;

use roleout_directory::{access, schema};

fn main() -> ExitCode {
    let directory = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schemas"));
    let problems = schema::check_tables();
    if !problems.is_empty() {
        for problem in problems {
            eprintln!("roleout-schema: {problem}");
        }
        return ExitCode::FAILURE;
    }
    let access = format!(
        "{}{}",
        access::DS389_ACCESS_HEADER,
        access::ds389_access_ldif("dc=example,dc=org")
    );
    for (path, text) in [
        (directory.join("roleout.ldif"), schema::generate_ldif()),
        (directory.join("roleout.schema"), schema::generate_schema()),
        (directory.join("99roleout.ldif"), schema::generate_389()),
        (directory.join("../ldif/389ds-access.ldif"), access),
    ] {
        if let Err(error) = std::fs::write(&path, text) {
            eprintln!("roleout-schema: cannot write {}: {error}", path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {}", path.display());
    }
    ExitCode::SUCCESS
}
