//! `roleout-package`: Roleout as three Debian packages made with `dpkg-deb`
//! from built binaries: `roleoutd` (the server), `roleout` (the agent) and
//! `roleout-admin` (the admin shell).
//!
//! Usage: `roleout-package --binaries DIR --out DIR [--version V]`
//!
//! Each package holds its binary (`roleoutd` in /usr/sbin, the others in
//! /usr/bin), a manual page for the command and for each of its
//! subcommands, made from the clap definitions by `clap_mangen` (section 8
//! for the daemon, 1 for the others, gzipped), completions for bash, zsh
//! and fish made by `clap_complete`, its copyright file, and what
//! `builder/debian/` or `installer/debian/` has for it: the control
//! file's fields, systemd units, the default configuration (every file
//! under /etc is a conffile) and maintainer scripts.
//!
//! Those files and the clap definitions are built into this program, so
//! the binaries must come from the same checkout: each one's `--version`
//! is checked against the version this program was built with before
//! anything is written. The library dependencies are `dpkg-shlibdeps`'s,
//! the architecture `dpkg --print-architecture`'s; the manual pages are
//! dated SOURCE_DATE_EPOCH when it is set.

#![allow(clippy::print_stdout, clippy::print_stderr)] // A command-line tool.

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Output};

use anyhow::{Context as _, Result, bail};
use clap::{CommandFactory, Parser};
use clap_complete::Shell;

/// Build the Debian packages roleoutd, roleout and roleout-admin from
/// built binaries, with their manual pages, shell completions, systemd
/// units, default configuration and maintainer scripts.
#[derive(Debug, Parser)]
// --version is the packages' version, not this program's.
#[command(name = "roleout-package", disable_version_flag = true)]
struct Options {
    /// The folder holding the built roleoutd, roleout and roleout-admin
    /// (e.g. target/release).
    #[arg(long, value_name = "DIR")]
    binaries: PathBuf,

    /// The folder the .deb files are written to (made when missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,

    /// The packages' version (default: Roleout's, e.g. 0.1.0).
    #[arg(long, value_name = "V")]
    version: Option<String>,
}

/// The programs the packages are built with, and the Debian packages
/// that have them.
const TOOLS: [(&str, &str); 4] = [
    ("dpkg", "dpkg"),
    ("dpkg-deb", "dpkg"),
    ("dpkg-shlibdeps", "dpkg-dev"),
    ("gzip", "gzip"),
];

/// A packaging file of the repository, built into this program.
#[derive(Debug, Clone, Copy)]
struct Source {
    /// Its path in the repository, for messages.
    path: &'static str,
    /// Its text.
    text: &'static str,
}

/// The [`Source`] of a file given by its path in the repository.
macro_rules! source {
    ($path:literal) => {
        Source {
            path: $path,
            text: include_str!(concat!("../../../", $path)),
        }
    };
}

/// One package: its binary and where the rest of it comes from.
struct Package {
    /// The package's name, which is also its binary's.
    name: &'static str,
    /// The folder its binary goes to, below the root.
    binary_dir: &'static str,
    /// The section of its manual pages.
    man_section: &'static str,
    /// The binary's command line.
    command: clap::Command,
    /// What the binary's `--version` prints after its name.
    version: &'static str,
    /// The control file, but for Version, Architecture and Installed-Size,
    /// with `${shlibs:Depends}` for the library dependencies.
    control: Source,
    /// The copyright file.
    copyright: Source,
    /// Other files, by their path below the root.
    files: Vec<(&'static str, Source)>,
    /// Maintainer scripts, by name (postinst, prerm, postrm).
    scripts: Vec<(&'static str, Source)>,
}

/// The three packages.
fn packages() -> Vec<Package> {
    vec![
        Package {
            name: "roleoutd",
            binary_dir: "usr/sbin",
            man_section: "8",
            command: roleout_builder::server::config::Args::command(),
            version: roleout_builder::VERSION,
            control: source!("builder/debian/roleoutd.control"),
            copyright: source!("builder/debian/copyright"),
            files: vec![
                (
                    "usr/lib/systemd/system/roleoutd.service",
                    source!("builder/debian/roleoutd.service"),
                ),
                (
                    "etc/roleoutd/roleoutd.toml",
                    source!("builder/debian/roleoutd.toml"),
                ),
            ],
            scripts: vec![
                ("postinst", source!("builder/debian/roleoutd.postinst")),
                ("prerm", source!("builder/debian/roleoutd.prerm")),
                ("postrm", source!("builder/debian/roleoutd.postrm")),
            ],
        },
        Package {
            name: "roleout",
            binary_dir: "usr/bin",
            man_section: "1",
            command: roleout_installer::cli::Cli::command(),
            version: roleout_installer::VERSION,
            control: source!("installer/debian/roleout.control"),
            copyright: source!("installer/debian/copyright"),
            files: vec![
                (
                    "usr/lib/systemd/system/roleout.service",
                    source!("installer/systemd/roleout.service"),
                ),
                (
                    "usr/lib/systemd/system/roleout.timer",
                    source!("installer/systemd/roleout.timer"),
                ),
            ],
            scripts: vec![
                ("postinst", source!("installer/debian/roleout.postinst")),
                ("prerm", source!("installer/debian/roleout.prerm")),
                ("postrm", source!("installer/debian/roleout.postrm")),
            ],
        },
        Package {
            name: "roleout-admin",
            binary_dir: "usr/bin",
            man_section: "1",
            command: roleout_builder::shell::cli::Cli::command(),
            version: roleout_builder::VERSION,
            control: source!("builder/debian/roleout-admin.control"),
            copyright: source!("builder/debian/copyright"),
            files: Vec::new(),
            scripts: Vec::new(),
        },
    ]
}

fn main() -> ExitCode {
    let options = Options::parse();
    match run(&options) {
        Ok(debs) => {
            for deb in debs {
                println!("{}", deb.display());
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("roleout-package: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Builds every package into `--out`; returns the files written.
fn run(options: &Options) -> Result<Vec<PathBuf>> {
    let version = options
        .version
        .clone()
        .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_owned());
    check_debian_version(&version)?;
    for (tool, package) in TOOLS {
        if Command::new(tool).arg("--version").output().is_err() {
            bail!("{tool} is needed to build the packages: install the Debian package {package}");
        }
    }
    let date = man_date()?;
    let packages = packages();
    // Every binary is checked before anything is built.
    for package in &packages {
        check_binary(&options.binaries, package)?;
    }
    let architecture = stdout_of(Command::new("dpkg").arg("--print-architecture"))?
        .trim()
        .to_owned();
    fs::create_dir_all(&options.out)
        .with_context(|| format!("cannot make the output folder {}", options.out.display()))?;
    let work = tempfile::Builder::new()
        .prefix("roleout-package-")
        .tempdir()
        .context("cannot make a temporary folder")?;
    // dpkg-shlibdeps reads debian/control, and finds each binary's
    // package by its tree, debian/PACKAGE.
    let mut control = String::from("Source: roleout\n");
    for package in &packages {
        let _ = write!(control, "\nPackage: {}\nArchitecture: any\n", package.name);
    }
    write_file(
        &work.path().join("debian/control"),
        control.as_bytes(),
        0o644,
    )?;
    let mut built = Vec::new();
    for package in &packages {
        let tree = work.path().join("debian").join(package.name);
        stage(&tree, &options.binaries, package, &date)?;
        let shlibs = shlibs_depends(work.path(), &tree, package)?;
        let control = fill_control(
            package,
            &version,
            &architecture,
            installed_size(&tree)?,
            &shlibs,
        )?;
        write_file(&tree.join("DEBIAN/control"), control.as_bytes(), 0o644)?;
        set_folder_modes(&tree)?;
        let deb = options.out.join(format!(
            "{}_{}_{architecture}.deb",
            package.name,
            version.split_once(':').map_or(version.as_str(), |(_, v)| v)
        ));
        stdout_of(
            Command::new("dpkg-deb")
                .arg("--root-owner-group")
                .arg("--build")
                .arg(&tree)
                .arg(&deb),
        )?;
        built.push(deb);
    }
    Ok(built)
}

/// Refuses what dpkg would not take as a version.
fn check_debian_version(version: &str) -> Result<()> {
    let upstream = version.split_once(':').map_or(version, |(epoch, rest)| {
        if epoch.chars().all(|c| c.is_ascii_digit()) && !epoch.is_empty() {
            rest
        } else {
            version
        }
    });
    let valid = upstream.starts_with(|c: char| c.is_ascii_digit())
        && upstream
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '~' | '-'));
    if !valid {
        bail!(
            "--version {version:?} is not a Debian version: it must start with a digit and \
             hold only letters, digits and . + ~ - (and an optional EPOCH: in front)"
        );
    }
    Ok(())
}

/// Checks that the binary of `package` is in `binaries` and is the build
/// whose command line and version this program holds.
fn check_binary(binaries: &Path, package: &Package) -> Result<()> {
    let path = binaries.join(package.name);
    if !path.is_file() {
        bail!(
            "{} does not exist: build the binaries first (cargo build --release --locked) \
             and give their folder with --binaries",
            path.display()
        );
    }
    let said = stdout_of(Command::new(&path).arg("--version"))?;
    let expected = format!("{} {}", package.name, package.version);
    if said.trim() != expected {
        bail!(
            "{} --version says {:?}, but this roleout-package was built for {expected:?}: \
             build both from one checkout (cargo build --release --locked)",
            path.display(),
            said.trim()
        );
    }
    Ok(())
}

/// Writes the package's tree below `tree`: everything but DEBIAN/control.
fn stage(tree: &Path, binaries: &Path, package: &Package, date: &str) -> Result<()> {
    let name = package.name;
    let binary = binaries.join(name);
    let installed = tree.join(package.binary_dir).join(name);
    make_folder(installed.parent().unwrap_or(tree))?;
    fs::copy(&binary, &installed).with_context(|| {
        format!(
            "cannot copy {} to {}",
            binary.display(),
            installed.display()
        )
    })?;
    set_mode(&installed, 0o755)?;

    let man_dir = tree.join(format!("usr/share/man/man{}", package.man_section));
    let mut pages = Vec::new();
    for (file, text) in man_pages(package.command.clone(), package.man_section, date)? {
        let path = man_dir.join(file);
        write_file(&path, &text, 0o644)?;
        pages.push(path);
    }
    // gzip -n: no name nor time in the header, so the pages are the same
    // bytes on every build.
    stdout_of(Command::new("gzip").args(["-9", "-n", "--"]).args(&pages))?;

    for (path, text) in completions(&package.command, name) {
        write_file(&tree.join(path), &text, 0o644)?;
    }
    write_file(
        &tree.join(format!("usr/share/doc/{name}/copyright")),
        package.copyright.text.as_bytes(),
        0o644,
    )?;
    let mut conffiles = String::new();
    for (path, source) in &package.files {
        write_file(&tree.join(path), source.text.as_bytes(), 0o644)?;
        if path.starts_with("etc/") {
            let _ = writeln!(conffiles, "/{path}");
        }
    }
    let debian = tree.join("DEBIAN");
    make_folder(&debian)?;
    if !conffiles.is_empty() {
        write_file(&debian.join("conffiles"), conffiles.as_bytes(), 0o644)?;
    }
    for (script, source) in &package.scripts {
        if !source.text.starts_with("#!/bin/sh\n") {
            bail!(
                "{}: a maintainer script must start with #!/bin/sh",
                source.path
            );
        }
        write_file(&debian.join(script), source.text.as_bytes(), 0o755)?;
    }
    Ok(())
}

/// The manual pages of `command` and of each of its visible subcommands at
/// every depth, by file name, named as `man` finds them
/// (`roleout-admin-deploy.1` for `roleout-admin deploy`).
fn man_pages(command: clap::Command, section: &str, date: &str) -> Result<Vec<(String, Vec<u8>)>> {
    fn collect(
        command: &clap::Command,
        section: &str,
        date: &str,
        pages: &mut Vec<(String, Vec<u8>)>,
    ) -> Result<()> {
        let man = clap_mangen::Man::new(command.clone())
            .section(section)
            .date(date)
            .source(format!("Roleout {}", env!("CARGO_PKG_VERSION")))
            .manual("Roleout");
        let mut text = Vec::new();
        man.render(&mut text)
            .with_context(|| format!("cannot render the manual page {}", man.get_filename()))?;
        pages.push((man.get_filename(), text));
        for subcommand in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
            collect(subcommand, section, date, pages)?;
        }
        Ok(())
    }
    // Built once from the top, so each subcommand knows its full name.
    let mut command = command.disable_help_subcommand(true);
    command.build();
    let mut pages = Vec::new();
    collect(&command, section, date, &mut pages)?;
    Ok(pages)
}

/// The date of the manual pages, YYYY-MM-DD: SOURCE_DATE_EPOCH's when it
/// is set (the same pages on every build), else today's (UTC).
fn man_date() -> Result<String> {
    let mut date = Command::new("date");
    date.arg("-u");
    if let Ok(epoch) = std::env::var("SOURCE_DATE_EPOCH") {
        if epoch.is_empty() || !epoch.chars().all(|c| c.is_ascii_digit()) {
            bail!("SOURCE_DATE_EPOCH={epoch:?} is not a number of seconds");
        }
        date.arg(format!("--date=@{epoch}"));
    }
    Ok(stdout_of(date.arg("+%F"))?.trim().to_owned())
}

/// Completions of `command` for bash, zsh and fish, by their path below
/// the root.
fn completions(command: &clap::Command, name: &str) -> Vec<(String, Vec<u8>)> {
    [
        (
            Shell::Bash,
            format!("usr/share/bash-completion/completions/{name}"),
        ),
        (
            Shell::Zsh,
            format!("usr/share/zsh/vendor-completions/_{name}"),
        ),
        (
            Shell::Fish,
            format!("usr/share/fish/vendor_completions.d/{name}.fish"),
        ),
    ]
    .into_iter()
    .map(|(shell, path)| {
        let mut command = command.clone();
        let mut text = Vec::new();
        clap_complete::generate(shell, &mut command, name, &mut text);
        (path, text)
    })
    .collect()
}

/// The library dependencies of the package's binary, as dpkg-shlibdeps
/// works them out (e.g. `libc6 (>= 2.34), libgcc-s1 (>= 4.2)`).
fn shlibs_depends(work: &Path, tree: &Path, package: &Package) -> Result<String> {
    let binary = tree.join(package.binary_dir).join(package.name);
    let said = stdout_of(
        Command::new("dpkg-shlibdeps")
            .current_dir(work)
            .arg("-O")
            .arg(&binary),
    )?;
    said.lines()
        .find_map(|line| line.strip_prefix("shlibs:Depends="))
        .map(|depends| depends.trim().to_owned())
        .with_context(|| {
            format!(
                "dpkg-shlibdeps printed no shlibs:Depends for {}: {said:?}",
                binary.display()
            )
        })
}

/// The control file: the package's template with its library dependencies
/// in place of `${shlibs:Depends}`, and Version, Architecture and
/// Installed-Size after its Package line.
fn fill_control(
    package: &Package,
    version: &str,
    architecture: &str,
    installed_size: u64,
    shlibs: &str,
) -> Result<String> {
    let template = package.control;
    let mut lines = template.text.lines();
    let package_line = format!("Package: {}", package.name);
    if lines.next() != Some(package_line.as_str()) {
        bail!("{}: the first line must be {package_line:?}", template.path);
    }
    let mut control = format!(
        "{package_line}\nVersion: {version}\nArchitecture: {architecture}\n\
         Installed-Size: {installed_size}\n"
    );
    for line in lines {
        let field = line.split_once(':').map(|(field, _)| field);
        if matches!(field, Some("Version" | "Architecture" | "Installed-Size")) {
            bail!(
                "{}: {line:?}: this field is roleout-package's to write",
                template.path
            );
        }
        match line.strip_prefix("Depends:") {
            Some(depends) => {
                let depends: Vec<&str> = depends
                    .split(',')
                    .map(str::trim)
                    .flat_map(|item| {
                        if item == "${shlibs:Depends}" {
                            shlibs.split(',').map(str::trim).collect()
                        } else {
                            vec![item]
                        }
                    })
                    .filter(|item| !item.is_empty())
                    .collect();
                if !depends.is_empty() {
                    let _ = writeln!(control, "Depends: {}", depends.join(", "));
                }
            }
            None => {
                control.push_str(line);
                control.push('\n');
            }
        }
    }
    if let Some(at) = control.find("${") {
        let rest = &control[at..];
        bail!(
            "{}: {:?} is not a substitution roleout-package makes (only ${{shlibs:Depends}})",
            template.path,
            rest.split_whitespace().next().unwrap_or(rest)
        );
    }
    for field in ["Maintainer:", "Description:"] {
        if !control.lines().any(|line| line.starts_with(field)) {
            bail!("{}: it has no {field} field", template.path);
        }
    }
    Ok(control)
}

/// What the tree takes once installed, in KiB, counted as dpkg-gencontrol
/// does: each file's size rounded up to a KiB, one for every other entry.
fn installed_size(tree: &Path) -> Result<u64> {
    fn walk(path: &Path, total: &mut u64) -> Result<()> {
        for entry in
            fs::read_dir(path).with_context(|| format!("cannot read {}", path.display()))?
        {
            let entry = entry.with_context(|| format!("cannot read {}", path.display()))?;
            let path = entry.path();
            if path.file_name().is_some_and(|name| name == "DEBIAN") {
                continue;
            }
            let metadata = fs::symlink_metadata(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            if metadata.is_file() {
                *total += metadata.len().div_ceil(1024);
            } else {
                *total += 1;
            }
            if metadata.is_dir() {
                walk(&path, total)?;
            }
        }
        Ok(())
    }
    let mut total = 0;
    walk(tree, &mut total)?;
    Ok(total)
}

/// Sets every folder of the tree, itself included, to 0755 (what dpkg-deb
/// requires of DEBIAN, and what a package's folders are installed with),
/// whatever the umask made them.
fn set_folder_modes(tree: &Path) -> Result<()> {
    set_mode(tree, 0o755)?;
    for entry in fs::read_dir(tree).with_context(|| format!("cannot read {}", tree.display()))? {
        let path = entry
            .with_context(|| format!("cannot read {}", tree.display()))?
            .path();
        if fs::symlink_metadata(&path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .is_dir()
        {
            set_folder_modes(&path)?;
        }
    }
    Ok(())
}

/// Makes `path` and its missing parents.
fn make_folder(path: &Path) -> Result<()> {
    fs::create_dir_all(path).with_context(|| format!("cannot make {}", path.display()))
}

/// Writes `contents` to `path` (its folder made first) with `mode`.
fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    if let Some(parent) = path.parent() {
        make_folder(parent)?;
    }
    fs::write(path, contents).with_context(|| format!("cannot write {}", path.display()))?;
    set_mode(path, mode)
}

/// Sets the permission bits of `path`.
fn set_mode(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", path.display()))
}

/// Runs `command` and returns its standard output; an error, with what it
/// printed, when it cannot start or fails.
fn stdout_of(command: &mut Command) -> Result<String> {
    let program = command.get_program().to_string_lossy().into_owned();
    let output: Output = command
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        bail!("{program} failed ({}): {}", output.status, stderr.trim());
    }
    if !stderr.trim().is_empty() {
        eprintln!("roleout-package: {program}: {}", stderr.trim());
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
