//! Images end to end with the real `roleout`: a system root captured into
//! one image file and made again on two targets, compared with tools that
//! share no code with Roleout; and image files that are cut short or
//! tampered with, refused with what and where. Needs root (devices, owners,
//! capabilities) and the zstd command (to tamper with a file).

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use roleout_model::image::NetworkFlavour;
use roleout_store::content::ContentStore;
use roleout_store::image_file;
use roleout_tests::binary;
use roleout_tests::trees::{assert_same_to_independent_tools, fixture, is_root, run};

fn roleout(state: &Path, args: &[&OsStr]) -> Output {
    Command::new(binary("roleout"))
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .output()
        .unwrap()
}

fn said(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn os(text: &str) -> &OsStr {
    OsStr::new(text)
}

/// `roleout image capture --root ROOT --name NAME --output FILE`.
fn capture(state: &Path, root: &Path, name: &str, file: &Path) -> Output {
    let captured = roleout(
        state,
        &[
            os("image"),
            os("capture"),
            os("--root"),
            root.as_os_str(),
            os("--name"),
            os(name),
            os("--output"),
            file.as_os_str(),
        ],
    );
    assert!(captured.status.success(), "{}", said(&captured));
    captured
}

/// `roleout image apply FILE --root TARGET [--store STORE] [MORE...]`.
fn apply(state: &Path, file: &Path, target: &Path, store: Option<&Path>, more: &[&str]) -> Output {
    let mut args = vec![
        os("image"),
        os("apply"),
        file.as_os_str(),
        os("--root"),
        target.as_os_str(),
    ];
    if let Some(store) = store {
        args.extend([os("--store"), store.as_os_str()]);
    }
    args.extend(more.iter().map(|arg| os(arg)));
    roleout(state, &args)
}

/// The files a target has of its own after `--hostname` (host name, hosts,
/// network, machine id, SSH host keys) and the source's Roleout identity,
/// which no target gets.
const PER_TARGET: &[&str] = &[
    "etc/hostname",
    "etc/hosts",
    "etc/network/interfaces",
    "etc/machine-id",
    "etc/ssh/ssh_host_ed25519_key",
    "etc/ssh/ssh_host_ed25519_key.pub",
    "etc/ssh/ssh_host_rsa_key",
    "etc/ssh/ssh_host_rsa_key.pub",
    "etc/ssh/ssh_host_ecdsa_key",
    "etc/ssh/ssh_host_ecdsa_key.pub",
    "var/lib/roleout",
    "var/lib/roleout/machine.key",
];

#[test]
fn a_captured_system_is_made_again_on_two_targets_the_same_to_independent_tools() {
    assert!(
        is_root(),
        "this test makes devices and sets owners: run it as root"
    );
    let top = tempfile::tempdir().unwrap();
    let (source, first, second, state) = (
        top.path().join("source"),
        top.path().join("target-1"),
        top.path().join("target-2"),
        top.path().join("state"),
    );
    for folder in [&source, &first, &second] {
        fs::create_dir(folder).unwrap();
    }
    fixture(&source);
    let file = top.path().join("web.rimg");
    let captured = capture(&state, &source, "web", &file);
    assert!(
        said(&captured).contains("2 package(s)"),
        "{}",
        said(&captured)
    );

    // What the image says of the source's system, against dpkg-query.
    let peek = tempfile::tempdir().unwrap();
    let unpacked = image_file::read(&file, &ContentStore::new(peek.path()).unwrap()).unwrap();
    let description = &unpacked.description;
    let listed = run(
        "dpkg-query",
        &[
            OsStr::new("--admindir"),
            source.join("var/lib/dpkg").as_os_str(),
            os("-W"),
            os("-f"),
            os("${Package} ${Version}\n"),
        ],
    );
    let expected: Vec<String> = String::from_utf8_lossy(&listed)
        .lines()
        .map(str::to_owned)
        .collect();
    let recorded: Vec<String> = description
        .os
        .packages
        .iter()
        .map(|package| format!("{} {}", package.name, package.version))
        .collect();
    assert_eq!(recorded, expected);
    assert_eq!(description.os.hostname.as_deref(), Some("source-host"));
    assert_eq!(description.os.network, [NetworkFlavour::Ifupdown]);
    assert_eq!(description.os.kernels, ["6.1.0-test"]);
    assert_eq!(description.os.os_release["VERSION_ID"], "12");
    assert_eq!(
        description.partitions.len(),
        1,
        "{:?}",
        description.partitions
    );
    assert_eq!(description.partitions[0].mount_point, "/");
    assert!(description.hardware.memory_bytes > 0);

    // Two targets share one store: the second brings nothing new.
    let store = top.path().join("store");
    let one = apply(
        &state,
        &file,
        &first,
        Some(&store),
        &[
            "--hostname",
            "web-1",
            "--address",
            "eth0=198.18.0.11/24",
            "--gateway",
            "198.18.0.1",
        ],
    );
    assert!(one.status.success(), "{}", said(&one));
    let contents = unpacked.manifest.contents().len();
    assert!(
        said(&one).contains(&format!("{contents} content(s) stored, 0 already held")),
        "{}",
        said(&one)
    );
    let two = apply(
        &state,
        &file,
        &second,
        Some(&store),
        &[
            "--hostname",
            "web-2",
            "--address",
            "eth0=198.18.0.12/24",
            "--gateway",
            "198.18.0.1",
        ],
    );
    assert!(two.status.success(), "{}", said(&two));
    assert!(
        said(&two).contains(&format!("0 content(s) stored, {contents} already held")),
        "{}",
        said(&two)
    );
    assert_same_to_independent_tools(&source, &first, PER_TARGET);
    assert_same_to_independent_tools(&source, &second, PER_TARGET);
    // Each target is a machine of its own.
    for (target, name, address) in [
        (&first, "web-1", "198.18.0.11/24"),
        (&second, "web-2", "198.18.0.12/24"),
    ] {
        let read = |path: &str| fs::read_to_string(target.join(path)).unwrap();
        assert_eq!(read("etc/hostname"), format!("{name}\n"));
        assert!(
            read("etc/hosts").contains(&format!("127.0.1.1\t{name}")),
            "{}",
            read("etc/hosts")
        );
        assert!(!read("etc/hosts").contains("source-host"));
        assert!(read("etc/network/interfaces").contains(&format!("address {address}")));
        assert!(
            !target.join("var/lib/roleout/machine.key").exists(),
            "the source's Roleout key was copied"
        );
        // New SSH host keys that ssh-keygen itself reads.
        let key = target.join("etc/ssh/ssh_host_ed25519_key");
        assert_ne!(fs::read(&key).unwrap(), b"not really a key\n");
        run("ssh-keygen", &[os("-l"), os("-f"), key.as_os_str()]);
    }
    let machine_id = |root: &Path| fs::read_to_string(root.join("etc/machine-id")).unwrap();
    assert_ne!(machine_id(&first), machine_id(&source));
    assert_ne!(machine_id(&first), machine_id(&second));
    assert_ne!(
        fs::read(first.join("etc/ssh/ssh_host_ed25519_key")).unwrap(),
        fs::read(second.join("etc/ssh/ssh_host_ed25519_key")).unwrap()
    );

    // The unchanged source captured again has the same manifest.
    let again = top.path().join("again.rimg");
    capture(&state, &source, "web", &again);
    let peek = tempfile::tempdir().unwrap();
    let reread = image_file::read(&again, &ContentStore::new(peek.path()).unwrap()).unwrap();
    assert_eq!(reread.description.manifest, description.manifest);
}

#[test]
fn image_files_cut_short_or_tampered_with_are_refused_and_nothing_is_made() {
    let top = tempfile::tempdir().unwrap();
    let source = top.path().join("source");
    fs::create_dir_all(source.join("etc")).unwrap();
    fs::write(
        source.join("etc/motd"),
        "a distinctive message of the day\n".repeat(50),
    )
    .unwrap();
    fs::write(source.join("etc/hostname"), "small\n").unwrap();
    let state = top.path().join("state");
    let file = top.path().join("small.rimg");
    capture(&state, &source, "small", &file);
    let bytes = fs::read(&file).unwrap();

    let refused = |name: &str, bytes: &[u8], expected: &str| {
        let bad = top.path().join(name);
        fs::write(&bad, bytes).unwrap();
        let target = top.path().join(format!("{name}-target"));
        fs::create_dir(&target).unwrap();
        let store = top.path().join(format!("{name}-store"));
        let applied = apply(&state, &bad, &target, Some(&store), &[]);
        assert!(!applied.status.success(), "{name}: {}", said(&applied));
        let text = said(&applied);
        assert!(
            text.contains(&bad.display().to_string()),
            "{name}: the file is not named\n{text}"
        );
        assert!(
            text.contains(expected),
            "{name}: expected {expected:?}\n{text}"
        );
        assert_eq!(
            fs::read_dir(&target).unwrap().count(),
            0,
            "{name}: something was made"
        );
    };
    // Cut short: the compressed stream ends early.
    refused("cut.rimg", &bytes[..bytes.len() / 2], "cannot read");
    // A blob whose bytes are not those its name says.
    let tar = run("zstd", &[os("-d"), os("-c"), file.as_os_str()]);
    let at = tar
        .windows(11)
        .position(|window| window == b"distinctive")
        .unwrap();
    let mut tampered = tar.clone();
    tampered[at] = b'D';
    let tampered_tar = top.path().join("tampered.tar");
    fs::write(&tampered_tar, &tampered).unwrap();
    let recompressed = run("zstd", &[os("-q"), os("-c"), tampered_tar.as_os_str()]);
    refused("tampered.rimg", &recompressed, "expected SHA-256");
    // Not an image file at all.
    refused("text.rimg", b"hello\n", "cannot read");

    // A target that is not empty is refused before anything is read.
    let busy = top.path().join("busy");
    fs::create_dir(&busy).unwrap();
    fs::write(busy.join("keep"), "mine").unwrap();
    let applied = apply(&state, &file, &busy, None, &[]);
    assert!(!applied.status.success(), "{}", said(&applied));
    assert!(
        said(&applied).contains("is not an empty folder"),
        "{}",
        said(&applied)
    );
    assert_eq!(fs::read_to_string(busy.join("keep")).unwrap(), "mine");
}
