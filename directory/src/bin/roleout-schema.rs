#![allow(clippy::print_stdout, clippy::print_stderr)] // A command-line tool: printing is its job.

//! Regenerates `schemas/roleout.ldif` and `schemas/roleout.schema` from the
//! schema tables in `directory/src/schema.rs`.
//!
//! Usage: `cargo run -p roleout-directory --bin roleout-schema [OUTPUT_DIR]`;
//! the default output directory is the workspace's `schemas/`.

use std::path::PathBuf;
use std::process::ExitCode;

use roleout_directory::schema;

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
    for (name, text) in [
        ("roleout.ldif", schema::generate_ldif()),
        ("roleout.schema", schema::generate_schema()),
    ] {
        let path = directory.join(name);
        if let Err(error) = std::fs::write(&path, text) {
            eprintln!("roleout-schema: cannot write {}: {error}", path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {}", path.display());
    }
    ExitCode::SUCCESS
}
