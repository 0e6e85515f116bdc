//! `roleout`: Roleout's agent on managed machines (see `roleout --help`).

fn main() {
    std::process::exit(roleout_installer::cli::main());
}
