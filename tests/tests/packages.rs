//! The Debian packages, end to end: `roleout-package` builds `roleoutd`,
//! `roleout` and `roleout-admin` from the debug binaries; `dpkg-deb` shows
//! what each holds; `dpkg` installs all three into a throwaway root, running
//! their maintainer scripts on this host against that root
//! (`--force-script-chrootless`, DPKG_ROOT); the installed tree is checked
//! (the service user, the state directories, the conffile, binaries that run
//! and name this checkout's commit, units `systemd-analyze verify` passes,
//! manual pages, completions); installing again changes nothing; removing
//! keeps the configuration, the data and the user, and purging takes them
//! away. Needs root (dpkg's database in the root, `useradd --root`).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use clap::Parser as _;
use roleout_builder::server::config::{Args, DirectoryChoice, Settings};
use roleout_tests::{binary, repository};

/// The longest any one command of the test may take, in seconds (xz over
/// a debug binary is the slowest).
const COMMAND_TIMEOUT: &str = "600";

/// A PATH with the administration tools (useradd, dpkg's helpers), for
/// dpkg and the maintainer scripts it runs.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The three packages: name, binary below the root, manual section.
const PACKAGES: [(&str, &str, &str); 3] = [
    ("roleoutd", "usr/sbin/roleoutd", "8"),
    ("roleout", "usr/bin/roleout", "1"),
    ("roleout-admin", "usr/bin/roleout-admin", "1"),
];

#[test]
fn packages_build_install_run_remove_and_purge() {
    for tool in ["dpkg", "systemd-analyze"] {
        if Command::new(tool).arg("--version").output().is_err() {
            eprintln!(
                "skipped: {tool} is not installed (scripts/setup.sh installs it); \
                 the Debian packages were not tested"
            );
            return;
        }
    }
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "this test installs packages into a throwaway root with dpkg and useradd --root: \
         run it as root"
    );
    let scratch = tempfile::tempdir().expect("a temporary folder");
    let debs = build_packages(&scratch.path().join("dist"));
    for (name, deb) in &debs {
        check_deb(name, deb);
    }

    let root_dir = tempfile::tempdir().expect("a temporary folder");
    let root = root_dir.path();
    throwaway_root(root);
    let deb_paths: Vec<&Path> = debs.iter().map(|(_, deb)| deb.as_path()).collect();
    dpkg(root, &["--force-depends", "--install"], &deb_paths);
    check_installed(root);
    check_units(root, &scratch.path().join("units"));

    // The same packages again: the maintainer scripts run as for an
    // upgrade and change nothing.
    dpkg(root, &["--force-depends", "--install"], &deb_paths);
    let passwd = read(&root.join("etc/passwd"));
    assert_eq!(
        passwd
            .lines()
            .filter(|line| line.starts_with("roleoutd:"))
            .count(),
        1,
        "one roleoutd user after a second install:\n{passwd}"
    );
    check_installed(root);

    // Remove keeps the configuration, the data and the user.
    let kept = root.join("var/lib/roleoutd/kept");
    fs::write(&kept, "data").expect("a file in the state directory");
    dpkg(
        root,
        &["--remove", "roleoutd", "roleout", "roleout-admin"],
        &[],
    );
    for (name, installed, _) in PACKAGES {
        assert!(
            !root.join(installed).exists(),
            "{installed} is still there after removing {name}"
        );
    }
    assert!(
        dpkg_status(root, "roleoutd").contains("Status: deinstall ok config-files"),
        "{}",
        dpkg_status(root, "roleoutd")
    );
    assert!(root.join("etc/roleoutd/roleoutd.toml").is_file());
    assert!(kept.is_file(), "remove took roleoutd's data away");
    assert!(root.join("var/lib/roleout").is_dir());
    assert!(read(&root.join("etc/passwd")).contains("\nroleoutd:"));

    // Purge takes everything away, the user and group too.
    dpkg(
        root,
        &["--purge", "roleoutd", "roleout", "roleout-admin"],
        &[],
    );
    for (name, _, _) in PACKAGES {
        let status = dpkg_status(root, name);
        assert!(
            !status.contains("Status: install") && !status.contains("config-files"),
            "{name} is still known after purge:\n{status}"
        );
    }
    for gone in [
        "etc/roleoutd/roleoutd.toml",
        "var/lib/roleoutd",
        "var/lib/roleout",
        "usr/lib/systemd/system/roleoutd.service",
        "usr/share/man/man8/roleoutd.8.gz",
    ] {
        assert!(
            !root.join(gone).exists(),
            "{gone} is still there after purge"
        );
    }
    for file in ["etc/passwd", "etc/group", "etc/shadow", "etc/gshadow"] {
        let text = read(&root.join(file));
        assert!(
            !text.lines().any(|line| line.starts_with("roleoutd:")),
            "{file} still has roleoutd after purge:\n{text}"
        );
    }
}

/// Runs roleout-package on the debug binaries; the packages by name.
fn build_packages(out: &Path) -> Vec<(&'static str, PathBuf)> {
    let roleoutd = binary("roleoutd");
    let binaries = roleoutd.parent().expect("the binaries' folder");
    for (name, _, _) in PACKAGES {
        binary(name);
    }
    let output = run(Command::new(binary("roleout-package"))
        .arg("--binaries")
        .arg(binaries)
        .arg("--out")
        .arg(out));
    let architecture = stdout(run(Command::new("dpkg").arg("--print-architecture")));
    let version = env!("CARGO_PKG_VERSION");
    let said = stdout(output);
    PACKAGES
        .iter()
        .map(|(name, _, _)| {
            let deb = out.join(format!("{name}_{version}_{}.deb", architecture.trim()));
            assert!(
                said.contains(&deb.display().to_string()) && deb.is_file(),
                "roleout-package did not make {}; it said:\n{said}",
                deb.display()
            );
            (*name, deb)
        })
        .collect()
}

/// What `dpkg-deb --info` and `--contents` show of one package.
fn check_deb(name: &str, deb: &Path) {
    let architecture = stdout(run(Command::new("dpkg").arg("--print-architecture")));
    let info = stdout(run(Command::new("dpkg-deb").arg("--info").arg(deb)));
    for field in [
        format!(" Package: {name}\n"),
        format!(" Version: {}\n", env!("CARGO_PKG_VERSION")),
        format!(" Architecture: {}\n", architecture.trim()),
        " Installed-Size: ".to_owned(),
        " Maintainer: Roleout developers <".to_owned(),
        " Description: ".to_owned(),
        " Depends: libc6 (>= ".to_owned(),
    ] {
        assert!(info.contains(&field), "{name}: no {field:?} in\n{info}");
    }
    let installed_size: u64 = field(&info, "Installed-Size")
        .parse()
        .expect("Installed-Size is a number");
    let contents = stdout(run(Command::new("dpkg-deb").arg("--contents").arg(deb)));
    let mut paths = Vec::new();
    for line in contents.lines() {
        let columns: Vec<&str> = line.split_whitespace().collect();
        assert!(
            columns.get(1) == Some(&"root/root"),
            "{name}: not owned by root: {line}"
        );
        paths.push(columns.last().copied().unwrap_or_default().to_owned());
    }
    let has = |path: &str| paths.iter().any(|listed| listed == &format!("./{path}"));
    let mut expected = vec![
        format!("usr/share/doc/{name}/copyright"),
        format!("usr/share/bash-completion/completions/{name}"),
        format!("usr/share/zsh/vendor-completions/_{name}"),
        format!("usr/share/fish/vendor_completions.d/{name}.fish"),
    ];
    match name {
        "roleoutd" => {
            for part in [
                "Depends: libc6",
                "slapd",
                "passwd",
                "Recommends: ldap-utils",
                "conffiles",
                "postinst",
                "prerm",
                "postrm",
            ] {
                assert!(info.contains(part), "roleoutd: no {part:?} in\n{info}");
            }
            expected.extend(
                [
                    "usr/sbin/roleoutd",
                    "usr/share/man/man8/roleoutd.8.gz",
                    "usr/lib/systemd/system/roleoutd.service",
                    "etc/roleoutd/roleoutd.toml",
                ]
                .map(str::to_owned),
            );
        }
        "roleout" => {
            for part in ["Recommends: e2fsprogs, mount, openssh-client", "postinst"] {
                assert!(info.contains(part), "roleout: no {part:?} in\n{info}");
            }
            expected.extend(
                [
                    "usr/bin/roleout",
                    "usr/share/man/man1/roleout.1.gz",
                    "usr/share/man/man1/roleout-install.1.gz",
                    "usr/share/man/man1/roleout-enroll.1.gz",
                    "usr/share/man/man1/roleout-image.1.gz",
                    "usr/share/man/man1/roleout-image-deploy.1.gz",
                    "usr/lib/systemd/system/roleout.service",
                    "usr/lib/systemd/system/roleout.timer",
                ]
                .map(str::to_owned),
            );
            assert!(
                !has("usr/share/man/man1/roleout-supervise-step.1.gz"),
                "roleout: the hidden supervise-step has a manual page"
            );
        }
        _ => {
            expected.extend(
                [
                    "usr/bin/roleout-admin",
                    "usr/share/man/man1/roleout-admin.1.gz",
                    "usr/share/man/man1/roleout-admin-deploy.1.gz",
                    "usr/share/man/man1/roleout-admin-status.1.gz",
                    "usr/share/man/man1/roleout-admin-job-show.1.gz",
                ]
                .map(str::to_owned),
            );
        }
    }
    for path in &expected {
        assert!(has(path), "{name}: no {path} in\n{contents}");
    }
    // Installed-Size counts the binary at least.
    let binary_size = fs::metadata(binary(name)).expect("the binary").len() / 1024;
    assert!(
        installed_size >= binary_size,
        "{name}: Installed-Size {installed_size} KiB is less than its binary's {binary_size} KiB"
    );
}

/// A root dpkg and useradd --root can install into: an empty dpkg
/// database and the account files with root alone.
fn throwaway_root(root: &Path) {
    for folder in ["var/lib/dpkg/info", "var/lib/dpkg/updates", "etc"] {
        fs::create_dir_all(root.join(folder)).expect("a folder of the root");
    }
    // A TempDir is the owner's alone; a root is everyone's to enter.
    fs::set_permissions(root, fs::Permissions::from_mode(0o755)).expect("the root's mode");
    for (file, text, mode) in [
        ("var/lib/dpkg/status", "", 0o644),
        ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", 0o644),
        ("etc/group", "root:x:0:\n", 0o644),
        ("etc/shadow", "root:*:20000:0:99999:7:::\n", 0o640),
        ("etc/gshadow", "root:*::\n", 0o640),
    ] {
        let path = root.join(file);
        fs::write(&path, text).expect("a file of the root");
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("its mode");
    }
}

/// The installed packages: status, user, state directories, conffile,
/// binaries, manual pages, completions.
fn check_installed(root: &Path) {
    for (name, _, _) in PACKAGES {
        let status = dpkg_status(root, name);
        assert!(
            status.contains("Status: install ok installed"),
            "{name} is not installed:\n{status}"
        );
    }

    // The service user: a system account whose home is the state
    // directory, without a login shell, with a group of its own.
    let passwd = read(&root.join("etc/passwd"));
    let user: Vec<&str> = passwd
        .lines()
        .find(|line| line.starts_with("roleoutd:"))
        .unwrap_or_else(|| panic!("no roleoutd in etc/passwd:\n{passwd}"))
        .split(':')
        .collect();
    let uid: u32 = user[2].parse().expect("a uid");
    let gid: u32 = user[3].parse().expect("a gid");
    assert!(
        (1..1000).contains(&uid),
        "roleoutd is not a system user: {user:?}"
    );
    assert_eq!(user[5], "/var/lib/roleoutd", "roleoutd's home");
    assert_eq!(user[6], "/usr/sbin/nologin", "roleoutd's shell");
    let group = read(&root.join("etc/group"));
    assert!(
        group
            .lines()
            .any(|line| line.starts_with(&format!("roleoutd:x:{gid}:"))),
        "no roleoutd group with gid {gid}:\n{group}"
    );
    assert!(read(&root.join("etc/shadow")).contains("\nroleoutd:"));

    // The state directories: roleoutd's and root's, private.
    for (folder, owner, owner_group) in [("var/lib/roleoutd", uid, gid), ("var/lib/roleout", 0, 0)]
    {
        let metadata =
            fs::metadata(root.join(folder)).unwrap_or_else(|error| panic!("{folder}: {error}"));
        assert!(metadata.is_dir(), "{folder} is not a folder");
        assert_eq!(
            (metadata.uid(), metadata.gid(), metadata.mode() & 0o7777),
            (owner, owner_group, 0o700),
            "{folder}: owner, group and mode"
        );
    }

    // The default configuration: a conffile that roleoutd reads.
    let config = root.join("etc/roleoutd/roleoutd.toml");
    assert_eq!(
        read(&config),
        read(&repository().join("builder/debian/roleoutd.toml")),
        "the installed configuration"
    );
    let status = dpkg_status(root, "roleoutd");
    assert!(
        status.contains("Conffiles:\n /etc/roleoutd/roleoutd.toml "),
        "the configuration is not a conffile:\n{status}"
    );
    let args = Args::try_parse_from(["roleoutd".as_ref(), "--config".as_ref(), config.as_os_str()])
        .expect("roleoutd --config FILE");
    let settings = Settings::resolve(args)
        .unwrap_or_else(|error| panic!("roleoutd refuses the default configuration: {error}"));
    assert_eq!(settings.state_dir, Path::new("/var/lib/roleoutd"));
    assert_eq!(settings.directory, DirectoryChoice::Managed);
    assert_eq!(settings.listen.port(), 8443);

    // Each binary runs from the root, names this checkout's commit and
    // explains itself.
    let head = Command::new("git")
        .arg("-C")
        .arg(repository())
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned());
    for (name, installed, section) in PACKAGES {
        let program = root.join(installed);
        let version = stdout(run(Command::new(&program).arg("--version")));
        let prefix = format!("{name} {} (commit ", env!("CARGO_PKG_VERSION"));
        let commit = version
            .trim()
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(')'))
            .unwrap_or_else(|| panic!("{name} --version: {version:?}"));
        match &head {
            Some(head) => assert!(
                commit.len() >= 7 && head.starts_with(commit),
                "{name} --version names commit {commit:?}, the checkout is at {head}"
            ),
            // No git (a source tarball): ROLEOUT_COMMIT's, or "unknown".
            None => assert!(!commit.is_empty(), "{name} --version names no commit"),
        }
        let help = stdout(run(Command::new(&program).arg("--help")));
        assert!(help.contains("Usage:"), "{name} --help:\n{help}");

        // Its manual page has a NAME section naming it.
        let page = root.join(format!("usr/share/man/man{section}/{name}.{section}.gz"));
        let roff = stdout(run(Command::new("zcat").arg(&page)));
        let escaped = name.replace('-', "\\-");
        assert!(
            roff.contains(&format!(".SH NAME\n{escaped} \\- ")),
            "{}: no NAME section:\n{roff}",
            page.display()
        );
        if Command::new("man").arg("--version").output().is_ok() {
            let shown = stdout(run(Command::new("man").arg("-l").arg(&page)));
            assert!(
                shown.contains("NAME") && shown.contains(name),
                "man -l {}:\n{shown}",
                page.display()
            );
        }

        // Its completions: bash reads the script, zsh and fish name it.
        let bash = root.join(format!("usr/share/bash-completion/completions/{name}"));
        run(Command::new("bash").arg("-n").arg(&bash));
        assert!(
            read(&root.join(format!("usr/share/zsh/vendor-completions/_{name}")))
                .starts_with(&format!("#compdef {name}")),
            "{name}: the zsh completion"
        );
        assert!(
            read(&root.join(format!("usr/share/fish/vendor_completions.d/{name}.fish")))
                .contains(&format!("complete -c {name} ")),
            "{name}: the fish completion"
        );
    }
    let admin = read(&root.join("usr/share/bash-completion/completions/roleout-admin"));
    for command in ["deploy", "status", "import", "approve", "job"] {
        assert!(
            admin.contains(command),
            "roleout-admin's bash completion does not offer {command}"
        );
    }
    let page = stdout(run(
        Command::new("zcat").arg(root.join("usr/share/man/man1/roleout-admin-deploy.1.gz"))
    ));
    assert!(
        page.contains(".SH NAME\nroleout\\-admin\\-deploy \\- "),
        "roleout-admin-deploy.1:\n{page}"
    );
}

/// `systemd-analyze verify` of the installed units. verify checks that each
/// command a unit runs exists on this host; to check the installed tree
/// instead, each unit is verified as a copy in `scratch` in which the
/// programs' absolute paths point into the root (after checking that the
/// program is there), and nothing else differs. The man pages named by
/// Documentation= are looked for in the root's manual.
fn check_units(root: &Path, scratch: &Path) {
    fs::create_dir_all(scratch).expect("a folder for the units");
    let unit_dir = root.join("usr/lib/systemd/system");
    let mut copies = Vec::new();
    for unit in ["roleoutd.service", "roleout.service", "roleout.timer"] {
        let text = read(&unit_dir.join(unit));
        let mut copy = String::new();
        for line in text.lines() {
            let exec = line
                .split_once('=')
                .filter(|(key, _)| key.starts_with("Exec"));
            match exec {
                Some((key, value)) if value.starts_with('/') => {
                    let program = value.split_whitespace().next().unwrap_or(value);
                    let installed = root.join(program.trim_start_matches('/'));
                    let mode = fs::metadata(&installed)
                        .unwrap_or_else(|error| {
                            panic!(
                                "{unit}: {key} runs {program}: {}: {error}",
                                installed.display()
                            )
                        })
                        .mode();
                    assert!(mode & 0o111 != 0, "{unit}: {program} is not executable");
                    copy.push_str(&format!("{key}={}{value}\n", root.display()));
                }
                _ => {
                    copy.push_str(line);
                    copy.push('\n');
                }
            }
        }
        let path = scratch.join(unit);
        fs::write(&path, copy).expect("a copy of the unit");
        copies.push(path);
    }
    let mut verify = Command::new("systemd-analyze");
    verify.arg("verify");
    if Command::new("man").arg("--version").output().is_ok() {
        verify
            .arg("--man=yes")
            .env("MANPATH", root.join("usr/share/man"));
    } else {
        verify.arg("--man=no");
        assert!(
            root.join("usr/share/man/man8/roleoutd.8.gz").is_file(),
            "roleoutd.service's Documentation= page"
        );
    }
    let output = run(verify.args(&copies));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        said.trim().is_empty(),
        "systemd-analyze verify has something to say about the units:\n{said}"
    );
}

/// Runs dpkg on the throwaway root, maintainer scripts on this host with
/// DPKG_ROOT set; fails the test when dpkg fails.
fn dpkg(root: &Path, args: &[&str], debs: &[&Path]) {
    run(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args(["--force-script-chrootless", "--log=/dev/null"])
        .args(args)
        .args(debs)
        .env("PATH", PATH));
}

/// `dpkg --status PACKAGE` in the root (what it says, also when the
/// package is unknown).
fn dpkg_status(root: &Path, package: &str) -> String {
    let output = bounded(
        Command::new("dpkg")
            .arg(format!("--root={}", root.display()))
            .args(["--status", package])
            .env("PATH", PATH),
    );
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The value of a field in `dpkg-deb --info`'s output.
fn field<'a>(info: &'a str, name: &str) -> &'a str {
    info.lines()
        .find_map(|line| line.trim_start().strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} in\n{info}"))
        .trim()
}

/// Runs `command` within [`COMMAND_TIMEOUT`], whatever it exits with.
fn bounded(command: &mut Command) -> Output {
    let mut timed = Command::new("timeout");
    timed
        .args(["--kill-after=10", COMMAND_TIMEOUT])
        .arg(command.get_program())
        .args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => timed.env(key, value),
            None => timed.env_remove(key),
        };
    }
    timed
        .output()
        .unwrap_or_else(|error| panic!("cannot run {:?}: {error}", command.get_program()))
}

/// Runs `command` within [`COMMAND_TIMEOUT`]; fails the test with its
/// output unless it succeeds.
fn run(command: &mut Command) -> Output {
    let output = bounded(command);
    assert!(
        output.status.success(),
        "{:?} {:?} failed ({}):\n--- stdout\n{}--- stderr\n{}",
        command.get_program(),
        command.get_args().collect::<Vec<_>>(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A command's standard output as text.
fn stdout(output: Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A file's text; fails the test, naming the file, when it cannot be read.
fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}
