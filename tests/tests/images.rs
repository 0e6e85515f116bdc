//! Images end to end with the real `roleout`: a system root captured into
//! one image file and made again on two targets, compared with tools that
//! share no code with Roleout; and image files that are cut short or
//! tampered with, refused with what and where. Needs root (devices, owners,
//! capabilities) and the zstd command (to tamper with a file).

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::path::Path;
use std::process::{Command, Output};

use roleout_installer::image::deploy::Loop;
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

/// A loop device over `size` bytes of a disk file from `offset` (the
/// agent's own), detached when dropped, also when the test fails.
fn attach(disk: &Path, offset: u64, size: u64) -> Loop {
    Loop::over(disk, offset, size).unwrap()
}

/// What find (type, mode, owner, mtime, link), getfattr and sha256sum say
/// of a tree, paths relative, in one text, leaving out `lost+found` and the
/// given paths.
const LISTING: &str = r#"cd "$1"; shift
skip() { grep -v -e 'lost+found' "$@"; }
find . -printf '%P %y %m %U %G %T@ %l\n' | LC_ALL=C sort | skip $(for path; do printf -- '-e %s ' "^$path "; done)
find . ! -path '*lost+found*' -print0 | LC_ALL=C sort -z | xargs -0 getfattr -h -d -m - -e hex 2>/dev/null | skip $(for path; do printf -- '-e %s ' "$path"; done)
find . -type f ! -path '*lost+found*' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | skip $(for path; do printf -- '-e %s ' " ./$path\$"; done)
"#;

/// A namespace machine (seed-checklist §5, tier T1): a sparse disk file
/// with a GPT Roleout writes (checked against sfdisk), its partitions
/// reached through offset loop devices, real ext4 on each, mounted in a
/// private mount namespace, and the image made on them as a machine of its
/// own; what find, getfattr and sha256sum see there is the source's, but
/// for the files that make the target itself.
#[test]
fn an_image_is_made_on_a_partitioned_disk_of_a_namespace_machine() {
    assert!(
        is_root(),
        "this test attaches loop devices and mounts: run it as root"
    );
    let top = tempfile::tempdir().unwrap();
    let (source, state) = (top.path().join("source"), top.path().join("state"));
    fs::create_dir(&source).unwrap();
    fixture(&source);
    let file = top.path().join("web.rimg");
    capture(&state, &source, "web", &file);
    let peek = tempfile::tempdir().unwrap();
    let image = image_file::read(&file, &ContentStore::new(peek.path()).unwrap()).unwrap();

    // As if the source kept /var on a file system of its own.
    let partition = |mount: &str, size: u64, growable: bool| roleout_model::image::Partition {
        mount_point: mount.to_owned(),
        fs_type: "ext4".to_owned(),
        device: "/dev/vda".to_owned(),
        size_bytes: size,
        used_bytes: 0,
        growable,
        data_bytes: 0,
        table: None,
    };
    let partitions = [
        partition("/", 4 << 30, true),
        partition("/var", 1 << 30, false),
    ];
    let data = roleout_model::image::data_by_mount_point(&image.manifest, &partitions);
    // A 64 MiB disk is too small (refused before anything is written); a
    // 384 MiB one, smaller than the source's 5 GiB, fits the files.
    assert!(matches!(
        roleout_model::disk::plan(&partitions, &data, 64 << 20),
        Err(roleout_model::disk::PlanError::DiskTooSmall { .. })
    ));
    let disk_bytes = 384 << 20;
    let plan = roleout_model::disk::plan(&partitions, &data, disk_bytes).unwrap();
    let disk = top.path().join("disk.img");
    fs::File::create(&disk)
        .unwrap()
        .set_len(disk_bytes)
        .unwrap();
    roleout_store::disk::write_partition_table(&disk, &plan).unwrap();

    // sfdisk reads the same table.
    let table: serde_json::Value =
        serde_json::from_slice(&run("sfdisk", &[os("--json"), disk.as_os_str()])).unwrap();
    assert_eq!(table["partitiontable"]["label"], "gpt");
    let listed = table["partitiontable"]["partitions"].as_array().unwrap();
    assert_eq!(listed.len(), plan.partitions.len());
    for (seen, planned) in listed.iter().zip(&plan.partitions) {
        assert_eq!(seen["start"].as_u64().unwrap() * 512, planned.start_bytes);
        assert_eq!(seen["size"].as_u64().unwrap() * 512, planned.size_bytes);
        assert_eq!(seen["name"], planned.name.as_str());
        assert_eq!(seen["type"], "0FC63DAF-8483-4772-8E79-3D69D8477DE4");
    }

    // Real file systems through offset loops, mounted only in a private
    // mount namespace that ends with the shell.
    let loops: Vec<Loop> = plan
        .partitions
        .iter()
        .map(|partition| attach(&disk, partition.start_bytes, partition.size_bytes))
        .collect();
    for device in &loops {
        run("mkfs.ext4", &[os("-q"), os("-F"), os(&device.0)]);
    }
    let target = top.path().join("target");
    fs::create_dir(&target).unwrap();
    let (made, expected) = (top.path().join("made.txt"), top.path().join("expected.txt"));
    let lister = top.path().join("listing.sh");
    fs::write(&lister, LISTING).unwrap();
    let script = format!(
        "set -e; mount \"$1\" \"$3\"; mkdir \"$3/var\"; mount \"$2\" \"$3/var\"; \
         \"$4\" --state-dir \"$5\" image apply \"$6\" --root \"$3\" --hostname web-3 --address eth0=198.18.0.13/24; \
         sh \"$8\" \"$3\" {skip} > \"$7\"; cat \"$3/etc/hostname\" >> \"$7\"; \
         stat -c 'var: %m' \"$3/var/lib\" >> \"$7\"",
        skip = PER_TARGET.join(" ")
    );
    let inside = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script, "sh"])
        .arg(&loops[0].0)
        .arg(&loops[1].0)
        .arg(&target)
        .arg(binary("roleout"))
        .arg(&state)
        .arg(&file)
        .arg(&made)
        .arg(&lister)
        .output()
        .unwrap();
    assert!(inside.status.success(), "{}", said(&inside));
    // Nothing stays mounted outside the namespace.
    assert_eq!(fs::read_dir(&target).unwrap().count(), 0);
    let listing = Command::new("sh")
        .arg(&lister)
        .arg(&source)
        .args(PER_TARGET)
        .output()
        .unwrap();
    fs::write(&expected, &listing.stdout).unwrap();
    let differences = Command::new("diff")
        .arg(&expected)
        .arg(&made)
        .output()
        .unwrap();
    let made = fs::read_to_string(&made).unwrap();
    let expected = String::from_utf8_lossy(&listing.stdout).into_owned();
    assert!(
        made.starts_with(&expected),
        "the made tree differs (diff source made):\n{}",
        String::from_utf8_lossy(&differences.stdout)
    );
    let rest = &made[expected.len()..];
    assert!(rest.starts_with("web-3\n"), "{rest}");
    assert!(
        rest.ends_with("/target/var\n"),
        "/var is not a mount point of its own: {rest}"
    );
}

/// The imaging archive Roleout packs (one zstd tar) is unpacked by GNU tar
/// alone into the source's tree: the same to find, getfattr, getcap and
/// sha256sum, capabilities, ACLs and hardlinks included (000-C19).
#[test]
fn gnu_tar_unpacks_the_imaging_archive_into_the_same_tree() {
    assert!(
        is_root(),
        "this test makes devices and sets owners: run it as root"
    );
    let top = tempfile::tempdir().unwrap();
    let (source, unpacked) = (top.path().join("source"), top.path().join("unpacked"));
    for folder in [&source, &unpacked] {
        fs::create_dir(folder).unwrap();
    }
    fixture(&source);
    let store = ContentStore::new(top.path().join("store")).unwrap();
    let scanned = roleout_store::tree::scan(&source, &Default::default(), Some(&store)).unwrap();
    let archive = top.path().join("area.tar.zst");
    let packed = roleout_store::archive::pack(&scanned.manifest, &store, &archive).unwrap();
    assert_eq!(packed.bytes, fs::metadata(&archive).unwrap().len());
    assert_eq!(
        packed.sha256.as_str(),
        roleout_tests::trees::sha256sum(&archive)
    );
    let script =
        "zstd -dc \"$1\" | tar --xattrs --xattrs-include='*' --acls --numeric-owner -x -C \"$2\"";
    let untarred = Command::new("sh")
        .args(["-c", script, "sh"])
        .arg(&archive)
        .arg(&unpacked)
        .output()
        .unwrap();
    assert!(untarred.status.success(), "{}", said(&untarred));
    assert_same_to_independent_tools(&source, &unpacked, &[]);
    // Roleout reads the unpacked tree as the same tree, holes included:
    // the 1 GiB sparse file takes no more blocks than the source's.
    let again = roleout_store::tree::scan(&unpacked, &Default::default(), None).unwrap();
    let change = roleout_model::tree::diff(&scanned.manifest, &again.manifest);
    assert!(
        change.added.is_empty() && change.removed.is_empty() && change.changed.is_empty(),
        "{change:?}"
    );
    let blocks = |tree: &Path| {
        let text = run(
            "stat",
            &[os("-c"), os("%b"), tree.join("data/sparse").as_os_str()],
        );
        String::from_utf8_lossy(&text)
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    assert!(
        blocks(&unpacked) <= 2 * blocks(&source).max(8),
        "the sparse file lost its holes: {} blocks, the source's {}",
        blocks(&unpacked),
        blocks(&source)
    );
}

/// The capturing machine's own Roleout state (its private key) never goes
/// into an image: the folder is kept, empty.
#[test]
fn a_capture_leaves_out_the_capturing_agents_own_state() {
    let top = tempfile::tempdir().unwrap();
    let source = top.path().join("source");
    let state = source.join("var/lib/roleout-agent");
    fs::create_dir_all(&state).unwrap();
    fs::write(state.join("machine.key"), "a private key").unwrap();
    fs::write(source.join("motd"), "hello\n").unwrap();
    let file = top.path().join("self.rimg");
    capture(&state, &source, "self", &file);
    let peek = tempfile::tempdir().unwrap();
    let image = image_file::read(&file, &ContentStore::new(peek.path()).unwrap()).unwrap();
    let paths: Vec<&str> = image
        .manifest
        .entries()
        .iter()
        .map(|entry| entry.path.as_str())
        .collect();
    assert!(paths.contains(&"motd"), "{paths:?}");
    assert!(paths.contains(&"var/lib/roleout-agent"), "{paths:?}");
    assert!(
        !paths
            .iter()
            .any(|path| path.starts_with("var/lib/roleout-agent/")),
        "the agent's state was captured: {paths:?}"
    );
}

/// The numbers in `uploaded: SENT of OFFERED contents sent (BYTES bytes)`.
fn uploaded(stdout: &str) -> (usize, usize) {
    let line = stdout
        .lines()
        .find(|line| line.starts_with("uploaded: "))
        .unwrap_or_else(|| panic!("no upload line in:\n{stdout}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    (words[1].parse().unwrap(), words[3].parse().unwrap())
}

/// 000-C1 and C7 through roleoutd: an admin makes a machine an imaging
/// source; its capture uploads the manifest and the files roleoutd lacks,
/// and the image is an entry under ou=images. An unchanged source
/// captured again moves nothing and writes nothing; one changed file
/// moves that file and the new manifest. What the image names survives the
/// content store's collection, and no other source may take its name.
#[test]
fn an_imaging_source_uploads_only_what_roleoutd_lacks_and_an_unchanged_capture_adds_nothing() {
    assert!(
        is_root(),
        "this test makes devices and sets owners: run it as root"
    );
    let world = roleout_tests::World::start();
    let source = world.enroll("web-1", "end-user");
    let top = tempfile::tempdir().unwrap();
    let root = top.path().join("root");
    fs::create_dir(&root).unwrap();
    fixture(&root);
    let root_text = root.to_str().unwrap();
    let capture = |machine: &roleout_tests::Machine, name: &str| {
        world.roleout(
            machine,
            &["image", "capture", "--root", root_text, "--name", name],
        )
    };

    // Not yet a source: refused, and nothing is kept.
    let refused = capture(&source, "web");
    assert_ne!(refused.code, Some(0), "{}", refused.transcript());
    assert!(
        refused.stderr.contains("not an imaging source")
            && refused.stderr.contains("source add web-1"),
        "{}",
        refused.transcript()
    );
    assert!(world.image("web").is_none());

    assert!(
        world
            .admin("source add web-1")
            .contains("web-1 is an imaging source")
    );
    assert!(world.admin("source list").starts_with("web-1\t"));
    let before = world.stored_contents();
    let first = capture(&source, "web");
    assert_eq!(first.code, Some(0), "{}", first.transcript());
    assert!(first.stdout.contains("image created"), "{}", first.stdout);
    let (sent, offered) = uploaded(&first.stdout);
    assert_eq!(
        sent, offered,
        "a new image sends everything: {}",
        first.stdout
    );
    assert_eq!(world.stored_contents(), before + sent);

    let image = world.image("web").expect("the image's entry");
    assert_eq!(image.source.as_deref(), Some("web-1"));
    assert_eq!(image.description.os.packages.len(), 2);
    let manifest = image.description.manifest.clone();
    let store = ContentStore::new(world.server_state.join("content")).unwrap();
    // The manifest in roleoutd's store verifies: sha256sum names it.
    let sum = run("sha256sum", &[store.path_of(&manifest).as_os_str()]);
    assert!(sum.starts_with(manifest.as_str().as_bytes()));
    let listed = world.admin("image list");
    assert!(listed.starts_with("web\tfrom web-1\t"), "{listed}");
    assert!(
        world
            .admin("image show web")
            .contains("Debian GNU/Linux 12 (bookworm)")
    );

    // Captured again, unchanged: nothing moves, nothing is written.
    let again = capture(&source, "web");
    assert_eq!(again.code, Some(0), "{}", again.transcript());
    assert_eq!(uploaded(&again.stdout), (0, offered), "{}", again.stdout);
    assert!(again.stdout.contains("image unchanged"), "{}", again.stdout);
    assert_eq!(world.stored_contents(), before + sent);

    // One file changes: that file and the new manifest move.
    fs::write(root.join("etc/ssh/sshd_config"), "Port 2222\n").unwrap();
    let changed = capture(&source, "web");
    assert_eq!(changed.code, Some(0), "{}", changed.transcript());
    assert_eq!(uploaded(&changed.stdout).0, 2, "{}", changed.stdout);
    assert!(
        changed.stdout.contains("image replaced"),
        "{}",
        changed.stdout
    );
    assert_eq!(world.stored_contents(), before + sent + 2);
    let replaced = world.image("web").unwrap();
    assert_ne!(replaced.description.manifest, manifest);

    // A collection keeps the image's manifest and every file it names.
    let referenced = world.referenced_content();
    let new_manifest = replaced.description.manifest.clone();
    assert!(referenced.contains(&new_manifest));
    let bytes = fs::read(store.path_of(&new_manifest)).unwrap();
    let parsed = roleout_model::tree::Manifest::parse(&bytes).unwrap();
    assert!(!parsed.contents().is_empty());
    assert!(
        parsed
            .contents()
            .iter()
            .all(|digest| referenced.contains(digest))
    );
    assert!(
        !referenced.contains(&manifest),
        "the replaced manifest is no longer named"
    );

    // Another source may not take the name.
    let other = world.enroll("web-2", "end-user");
    world.admin("source add web-2");
    let taken = capture(&other, "web");
    assert_ne!(taken.code, Some(0), "{}", taken.transcript());
    assert!(
        taken.stderr.contains("was captured from web-1"),
        "{}",
        taken.transcript()
    );
    assert_eq!(world.image("web").unwrap().source.as_deref(), Some("web-1"));

    // Removed, the image is no longer named, so a collection lets its files
    // go; the name is free for another source.
    assert!(
        world
            .admin("image remove web")
            .starts_with("image web removed")
    );
    assert!(world.image("web").is_none());
    assert!(!world.referenced_content().contains(&new_manifest));
    let retaken = capture(&other, "web");
    assert_eq!(retaken.code, Some(0), "{}", retaken.transcript());
    assert_eq!(world.image("web").unwrap().source.as_deref(), Some("web-2"));
}

/// A lease value on `machine`'s entry, read with ldapsearch-like eyes:
/// the directory's own reader.
fn lease_job(world: &roleout_tests::World, machine: &str) -> Option<String> {
    world.machine_lease(machine).map(|lease| lease.job)
}

/// 000-C8 to C13 against real slapd and roleoutd: machines whose agents
/// sent fixture hardware are judged against an image under its strict
/// rule (only the identical one), then under `arch,firmware` (the disk and
/// the image's drivers decide: the NVMe target comes in, the NIC the
/// image has no driver for and the small disk stay out, each with its
/// reason). A dry run locks nothing; a deployment locks its targets all
/// or nothing; a busy target is named with its job; two admins racing
/// for one target: exactly one wins.
#[test]
fn targets_are_judged_per_engine_with_reasons_and_locked_all_or_nothing() {
    use roleout_tests::sysfs::{E1000E, Hardware, NVME, write_sysroot};
    assert!(
        is_root(),
        "this test makes devices and sets owners: run it as root"
    );
    let world = roleout_tests::World::start_with(&["--engine", "site-a"]);
    let top = tempfile::tempdir().unwrap();
    let machines: [(&str, Hardware<'_>); 6] = [
        ("web-1", Hardware::default()),
        ("t0", Hardware::default()),
        (
            "t1",
            Hardware {
                cpu_model: "Another CPU @ 3.00GHz",
                ..Hardware::default()
            },
        ),
        (
            "t2",
            Hardware {
                storage: NVME,
                ..Hardware::default()
            },
        ),
        (
            "t3",
            Hardware {
                network: E1000E,
                ..Hardware::default()
            },
        ),
        (
            "t4",
            Hardware {
                disk_bytes: 8 << 20,
                ..Hardware::default()
            },
        ),
    ];
    let mut enrolled = Vec::new();
    for (name, hardware) in &machines {
        let sysroot = top.path().join(format!("sys-{name}"));
        write_sysroot(&sysroot, hardware);
        enrolled.push(world.enroll_with(
            name,
            "end-user",
            &["--sysroot", sysroot.to_str().unwrap()],
        ));
    }
    // The source: the fixture root with the kernel's NVMe and virtio
    // drivers listed in its modules.alias.
    let root = top.path().join("root");
    fs::create_dir(&root).unwrap();
    fixture(&root);
    fs::write(
        root.join("lib/modules/6.1.0-test/modules.alias"),
        "alias pci:v00001AF4d00001001sv*sd*bc*sc*i* virtio_blk\n\
         alias pci:v00001AF4d00001000sv*sd*bc*sc*i* virtio_net\n\
         alias pci:v*d*sv*sd*bc01sc08i02* nvme\n\
         alias usb:v0BDAp8153d*dc*dsc*dp*ic*isc*ip*in* r8152\n",
    )
    .unwrap();
    world.admin("source add web-1");
    let sysroot = top.path().join("sys-web-1");
    let captured = world.roleout(
        &enrolled[0],
        &[
            "image",
            "capture",
            "--root",
            root.to_str().unwrap(),
            "--name",
            "web",
            "--sysroot",
            sysroot.to_str().unwrap(),
        ],
    );
    assert_eq!(captured.code, Some(0), "{}", captured.transcript());
    assert_eq!(
        world.admin("engine list").split('\t').next(),
        Some("site-a")
    );

    // The strict rule: only t0 (and the source itself) fit.
    let listed = world.admin("targets web");
    let verdict = |listed: &str, machine: &str| -> String {
        listed
            .lines()
            .find_map(|line| line.trim_start().strip_prefix(&format!("{machine}\t")))
            .unwrap_or_else(|| panic!("{machine} is not listed:\n{listed}"))
            .to_owned()
    };
    assert_eq!(verdict(&listed, "t0"), "available", "{listed}");
    assert_eq!(verdict(&listed, "web-1"), "available", "{listed}");
    assert!(
        verdict(&listed, "t1").contains("cpu.model is \"Another CPU @ 3.00GHz\""),
        "{listed}"
    );
    for machine in ["t2", "t3", "t4"] {
        assert!(
            verdict(&listed, machine).starts_with("excluded: its hardware differs"),
            "{listed}"
        );
    }
    // The source authenticated with engine site-a; the targets have not yet.
    assert!(
        listed.contains("engine site-a:\n  web-1\tavailable"),
        "{listed}"
    );

    // arch and firmware only: the disk and the drivers decide the rest.
    assert!(
        world
            .admin("image rule web arch,firmware")
            .contains("share arch, firmware")
    );
    let listed = world.admin("targets web");
    for machine in ["t0", "t1", "t2"] {
        assert_eq!(verdict(&listed, machine), "available", "{listed}");
    }
    assert!(
        verdict(&listed, "t3").contains("no driver in the image for network controller 8086:10d3"),
        "{listed}"
    );
    assert!(
        verdict(&listed, "t4").contains("its largest disk does not do"),
        "{listed}"
    );
    assert!(
        listed.starts_with("image web: 4 of 6 machine(s) available"),
        "{listed}"
    );

    // A dry run shows the plan and locks nothing.
    let dry = world.admin(
        "deploy web --target t0 --address t0:eth0=198.18.1.10/24 --gateway 198.18.1.1 --dry-run",
    );
    assert!(
        dry.contains("t0 (engine (no engine)): host name t0, eth0 198.18.1.10/24"),
        "{dry}"
    );
    assert!(
        dry.contains("vda partition 1 root ext4") || dry.contains("vda partition 1 root"),
        "{dry}"
    );
    assert!(
        dry.contains("dry run: nothing was locked or written"),
        "{dry}"
    );
    assert_eq!(lease_job(&world, "t0"), None);

    // A deployment locks both its targets.
    let job = job_of(&world.admin("deploy web --target t0 --target t1"));
    assert_eq!(lease_job(&world, "t0").as_deref(), Some(job.as_str()));
    assert_eq!(lease_job(&world, "t1").as_deref(), Some(job.as_str()));
    let shown = world.admin(&format!("job show {job}"));
    assert!(
        shown.contains("  t0\tlocked\t") && shown.contains("  t1\tlocked\t"),
        "{shown}"
    );
    assert!(verdict(&world.admin("targets web"), "t0").starts_with(&format!("busy: job {job}")),);

    // All or nothing: t1 is busy, so t2 is not locked either.
    let refused = world.try_admin("deploy web --target t2 --target t1");
    assert_ne!(refused.code, Some(0));
    assert!(
        refused.stderr.contains(&format!("t1: busy: job {job}")),
        "{}",
        refused.transcript()
    );
    assert_eq!(lease_job(&world, "t2"), None);

    // Two admins race for t2: exactly one wins.
    let racers: Vec<_> = (0..2)
        .map(|_| world.spawn_admin("deploy web --target t2"))
        .collect();
    let finished: Vec<_> = racers
        .into_iter()
        .map(roleout_tests::wait_finished)
        .collect();
    let winners = finished.iter().filter(|done| done.code == Some(0)).count();
    assert_eq!(
        winners,
        1,
        "{}",
        finished
            .iter()
            .map(roleout_tests::Finished::transcript)
            .collect::<Vec<_>>()
            .join("\n---\n")
    );
    assert!(lease_job(&world, "t2").is_some());
}

/// Enrols each of `machines` (name, disk size) with fixture hardware read
/// from its own sysroot under `top` (`sys-NAME`).
fn enroll_fixture_machines(
    world: &roleout_tests::World,
    top: &Path,
    machines: &[(&str, u64)],
) -> Vec<roleout_tests::Machine> {
    use roleout_tests::sysfs::{Hardware, write_sysroot};
    machines
        .iter()
        .map(|(name, disk_bytes)| {
            let sysroot = top.join(format!("sys-{name}"));
            write_sysroot(
                &sysroot,
                &Hardware {
                    disk_bytes: *disk_bytes,
                    ..Hardware::default()
                },
            );
            world.enroll_with(name, "end-user", &["--sysroot", sysroot.to_str().unwrap()])
        })
        .collect()
}

/// Captures `source` as image `web` on `machine` (an imaging source whose
/// sysroot is `top/sys-NAME`), with the file systems given.
fn capture_web(
    world: &roleout_tests::World,
    machine: &roleout_tests::Machine,
    top: &Path,
    source: &Path,
    file_systems: &[&str],
) {
    let sysroot = top.join(format!("sys-{}", machine.name));
    let mut args = vec![
        "image",
        "capture",
        "--root",
        source.to_str().unwrap(),
        "--name",
        "web",
        "--sysroot",
        sysroot.to_str().unwrap(),
    ];
    for file_system in file_systems {
        args.extend(["--file-system", file_system]);
    }
    let captured = world.roleout(machine, &args);
    assert_eq!(captured.code, Some(0), "{}", captured.transcript());
}

/// The job id in what `deploy` printed.
fn job_of(deployed: &str) -> String {
    deployed
        .lines()
        .find_map(|line| line.strip_prefix("job "))
        .and_then(|rest| rest.split(':').next())
        .unwrap_or_else(|| panic!("no job in:\n{deployed}"))
        .to_owned()
}

/// Puts `program` into the system at `root` as `install_as`, with the
/// shared libraries `ldd` says it needs: a system made from an image of it
/// can start it chrooted.
fn carry(root: &Path, program: &Path, install_as: &str) {
    let program = fs::canonicalize(program).unwrap();
    let needed = run("ldd", &[program.as_os_str()]);
    let mut files = vec![(program.clone(), root.join(install_as))];
    for line in String::from_utf8_lossy(&needed).lines() {
        let library = line
            .split_whitespace()
            .find(|word| word.starts_with('/'))
            .map(Path::new);
        if let Some(library) = library {
            files.push((
                library.to_owned(),
                root.join(library.strip_prefix("/").unwrap()),
            ));
        }
    }
    for (from, to) in files {
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::copy(&from, &to).unwrap();
    }
}

/// The start of a shell script that mounts the partitions of `disk` (as
/// its GPT names them: `root` at `$1`, `var` at `$1/var`) through offset
/// loop devices, which stay attached until the returned guards drop.
fn mounting_script(disk: &Path) -> (Vec<Loop>, String) {
    let table = roleout_store::disk::read_partition_table(disk).unwrap();
    let loops: Vec<Loop> = table
        .iter()
        .map(|partition| attach(disk, partition.start_bytes, partition.size_bytes))
        .collect();
    let mut script = String::from("set -e; ");
    for (partition, device) in table.iter().zip(&loops) {
        let point = if partition.name == "root" {
            String::new()
        } else {
            format!("/{}", partition.name.replace('-', "/"))
        };
        script.push_str(&format!(
            "mkdir -p \"$1{point}\"; mount {} \"$1{point}\"; ",
            device.0
        ));
    }
    (loops, script)
}

/// Runs `chroot ROOT ARGS...` in a private mount namespace with the disk's
/// partitions mounted at ROOT (the made system started), then lists its
/// Roleout state folder.
fn start_made_system(disk: &Path, top: &Path, args: &[&str]) -> Output {
    let (_attached, mut script) = mounting_script(disk);
    let mount = top.join("started");
    fs::create_dir_all(&mount).unwrap();
    script.push_str("root=$1; shift; chroot \"$root\" \"$@\"; ls \"$root/var/lib/roleout\"");
    Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script, "sh"])
        .arg(&mount)
        .args(args)
        .output()
        .unwrap()
}

/// What a namespace machine's disk holds, listed as [`LISTING`] lists a
/// tree, with its host name and fstab after: its partitions (as its GPT
/// says) mounted in a private mount namespace, `/` first.
fn listing_of_disk(disk: &Path, top: &Path, except: &[&str]) -> String {
    let (_attached, mut script) = mounting_script(disk);
    let mount = top.join("look");
    fs::create_dir_all(&mount).unwrap();
    let lister = top.join("listing.sh");
    fs::write(&lister, LISTING).unwrap();
    script.push_str(&format!(
        "sh \"$2\" \"$1\" {}; echo; cat \"$1/etc/hostname\" \"$1/etc/fstab\" \"$1/etc/network/interfaces\"",
        except.join(" ")
    ));
    let inside = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script, "sh"])
        .arg(&mount)
        .arg(&lister)
        .output()
        .unwrap();
    assert!(inside.status.success(), "{}", said(&inside));
    String::from_utf8_lossy(&inside.stdout).into_owned()
}

/// 000-C15 to C22 on a namespace machine: an admin deploys an image onto
/// a target; the target's agent takes the signed job from roleoutd (its
/// engine), shows the plan without writing anything on a dry run, then
/// partitions its disk file, makes ext4 on `/` and `/var` through offset
/// loop devices, unpacks the imaging archive with GNU tar in a private
/// mount namespace, and makes the copy itself. find, getfattr and
/// sha256sum see the source's tree but for the target's own files, the
/// fstab names the new file systems, and each phase reached the job entry.
#[test]
fn a_deployment_makes_the_image_on_a_namespace_machines_disk_as_its_signed_job_says() {
    assert!(
        is_root(),
        "this test attaches loop devices and mounts: run it as root"
    );
    let world = roleout_tests::World::start();
    let top = tempfile::tempdir().unwrap();
    // Two targets: a disk smaller than the source's, and a larger one.
    let targets = [("web-3", 384u64 << 20, 13), ("web-4", 512u64 << 20, 14)];
    let enrolled = enroll_fixture_machines(
        &world,
        top.path(),
        &[
            ("web-1", 20 << 30),
            (targets[0].0, targets[0].1),
            (targets[1].0, targets[1].1),
        ],
    );
    let source = top.path().join("source");
    fs::create_dir(&source).unwrap();
    fixture(&source);
    // As an enrolled machine has it: its roleout, and a shell for the
    // first-start script the image carries (it leaves a mark).
    carry(&source, &binary("roleout"), "usr/bin/roleout");
    carry(&source, Path::new("/bin/sh"), "bin/sh");
    fs::create_dir_all(source.join("etc/roleout/first-boot.d")).unwrap();
    let script = source.join("etc/roleout/first-boot.d/10-mark");
    fs::write(&script, "#!/bin/sh\necho made > /var/lib/roleout/marked\n").unwrap();
    fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    world.admin("source add web-1");
    capture_web(
        &world,
        &enrolled[0],
        top.path(),
        &source,
        &["/:ext4", "/var:ext4"],
    );
    // The target's disk is smaller than the source's: its hardware differs.
    world.admin("image rule web arch,firmware");
    // Two scripts of the admin's, pinned by digest: one written here, one
    // each target fetches.
    let written = top.path().join("site.sh");
    fs::write(
        &written,
        "#!/bin/sh\necho scripted > /var/lib/roleout/scripted\n",
    )
    .unwrap();
    let fetched = b"#!/bin/sh\necho fetched > /var/lib/roleout/fetched\n".to_vec();
    let fetched_sha = roleout_model::ids::Sha256::of(&fetched);
    let server = roleout_tests::FileServer::start(vec![("remote.sh".to_owned(), fetched)], 4);
    let deployed = world.admin(&format!(
        "deploy web --target web-3 --address web-3:eth0=198.18.1.13/24 \
         --target web-4 --address web-4:eth0=198.18.1.14/24 --gateway 198.18.1.1 --dns 198.18.1.53 \
         --script {} --script-url {}/remote.sh={fetched_sha}",
        written.display(),
        server.url
    ));
    assert!(
        deployed.contains(&format!(
            "first-start script remote.sh (SHA-256 {fetched_sha}) from"
        )),
        "{deployed}"
    );
    let job = job_of(&deployed);
    let disks: Vec<_> = targets
        .iter()
        .map(|(name, bytes, _)| {
            let disk = top.path().join(format!("{name}.img"));
            File::create(&disk).unwrap().set_len(*bytes).unwrap();
            disk
        })
        .collect();

    // A dry run shows the plan and writes nothing.
    let dry = world.roleout(
        &enrolled[1],
        &[
            "image",
            "deploy",
            "--disk",
            disks[0].to_str().unwrap(),
            "--dry-run",
        ],
    );
    assert_eq!(dry.code, Some(0), "{}", dry.transcript());
    assert!(
        dry.stdout.contains(&format!("job {job}: image web onto")),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains("partition 2 var ext4"),
        "{}",
        dry.stdout
    );
    assert!(dry.stdout.contains("was not written"), "{}", dry.stdout);
    assert!(
        fs::read(&disks[0]).unwrap().iter().all(|byte| *byte == 0),
        "the dry run wrote on the disk"
    );
    assert!(
        world
            .admin(&format!("job show {job}"))
            .contains("  web-3\tlocked\t")
    );

    // The made system's own: its fstab, its Roleout identity and the note
    // of its job, the unit that runs its first start.
    let except: Vec<&str> = PER_TARGET
        .iter()
        .copied()
        .chain([
            "etc/fstab",
            "var/lib/roleout/enrolment.json",
            "var/lib/roleout/server.pem",
            "var/lib/roleout/builder-key.pub",
            "var/lib/roleout/machine.pem",
            "var/lib/roleout/first-boot.json",
            "etc/systemd",
            "etc/systemd/system",
            "etc/systemd/system/roleout-first-boot.service",
            "etc/systemd/system/multi-user.target.wants",
            "etc/systemd/system/multi-user.target.wants/roleout-first-boot.service",
            "etc/roleout/first-boot.d/50-site.sh",
            "etc/roleout/first-boot.d/50-remote.sh",
        ])
        .collect();
    let first_boot = [
        "/usr/bin/roleout",
        "--state-dir",
        "/var/lib/roleout",
        "first-boot",
    ];
    for (index, ((name, _, host), disk)) in targets.iter().zip(&disks).enumerate() {
        let target = &enrolled[index + 1];
        if index == 1 {
            // The second target finds half the archive from an earlier
            // try: it asks only for the rest, and the whole checks.
            let archives = world.server_state.join("archives");
            let packed = fs::read_dir(&archives)
                .unwrap()
                .flatten()
                .map(|entry| entry.path())
                .find(|path| path.to_string_lossy().ends_with(".tar.zst"))
                .unwrap();
            let bytes = fs::read(&packed).unwrap();
            let work = target.state.join("images/jobs");
            fs::create_dir_all(&work).unwrap();
            fs::write(
                work.join(format!("{job}.tar.zst")),
                &bytes[..bytes.len() / 2],
            )
            .unwrap();
        }
        let made = world.roleout(
            target,
            &["image", "deploy", "--disk", disk.to_str().unwrap()],
        );
        assert_eq!(made.code, Some(0), "{}", made.transcript());
        assert!(
            made.stdout.contains("reached first-boot"),
            "{}",
            made.stdout
        );
        // No loop device and no mount outlives the agent.
        let attached = run("losetup", &[os("-j"), disk.as_os_str()]);
        assert!(
            attached.is_empty(),
            "{}",
            String::from_utf8_lossy(&attached)
        );
        let shown = world.admin(&format!("job show {job}"));
        assert!(
            shown.contains(&format!("  {name}\tfirst-boot\t")),
            "{shown}"
        );
        // The lease holds until the first start reports.
        assert_eq!(
            world.machine_lease(name).map(|lease| lease.job).as_deref(),
            Some(job.as_str())
        );

        // The table Roleout wrote is the one sfdisk reads.
        let table = run("sfdisk", &[os("--json"), disk.as_os_str()]);
        let table: serde_json::Value = serde_json::from_slice(&table).unwrap();
        let names: Vec<&str> = table["partitiontable"]["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|partition| partition["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["root", "var"]);

        let listed = listing_of_disk(disk, top.path(), &except);
        let expected = Command::new("sh")
            .arg(top.path().join("listing.sh"))
            .arg(&source)
            .args(&except)
            .output()
            .unwrap();
        let expected = String::from_utf8_lossy(&expected.stdout).into_owned();
        assert!(
            listed.starts_with(&expected),
            "{name} differs from the source:\n--- source\n{expected}\n--- made\n{listed}"
        );
        let rest = &listed[expected.len()..];
        assert!(rest.starts_with(&format!("\n{name}\n")), "{rest}");
        assert!(
            rest.contains(&format!("address 198.18.1.{host}/24")),
            "{rest}"
        );
        let fstab: Vec<&str> = rest
            .lines()
            .filter(|line| line.starts_with("UUID="))
            .collect();
        assert_eq!(fstab.len(), 2, "{rest}");
        assert!(fstab[0].ends_with(" / ext4 defaults 0 1"), "{rest}");
        assert!(fstab[1].ends_with(" /var ext4 defaults 0 2"), "{rest}");

        // The deploying agent's key is no longer the machine's: the made
        // system's is.
        let old_key = world.roleout(target, &["plan", "domino"]);
        assert_ne!(old_key.code, Some(0), "{}", old_key.transcript());
    }
    // The archive was packed once for both targets.
    let archives: Vec<_> = fs::read_dir(world.server_state.join("archives"))
        .unwrap()
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".tar.zst"))
        .collect();
    assert_eq!(archives.len(), 1);

    // Each made system's first start, chrooted into it with its own
    // roleout: the script ran, its part of the job is complete, its lease
    // released, the note gone; a second start does nothing.
    for ((name, _, _), disk) in targets.iter().zip(&disks) {
        let started = start_made_system(disk, top.path(), &first_boot);
        assert!(started.status.success(), "{}", said(&started));
        let first = String::from_utf8_lossy(&started.stdout).into_owned();
        assert!(first.contains(&format!("job {job}: complete")), "{first}");
        assert!(
            first.contains("\nmarked\n"),
            "the script did not run: {first}"
        );
        assert!(
            first.contains("\nscripted\n") && first.contains("\nfetched\n"),
            "the admin's scripts did not run: {first}"
        );
        assert!(
            !first.contains("first-boot.json"),
            "the note stayed: {first}"
        );
        assert!(
            world
                .admin(&format!("job show {job}"))
                .contains(&format!("  {name}\tcomplete\t"))
        );
        assert_eq!(
            world.machine_lease(name),
            None,
            "the lease is left after completion"
        );
        let again = start_made_system(disk, top.path(), &first_boot);
        assert!(again.status.success(), "{}", said(&again));
        assert!(String::from_utf8_lossy(&again.stdout).contains("nothing to do"));
    }
    let watched = world.admin(&format!("job watch {job} --timeout 10"));
    assert!(
        watched.contains("web-3\tcomplete") && watched.contains("web-4\tcomplete"),
        "{watched}"
    );
    assert!(
        watched.ends_with(&format!("job {job}: every target complete\n")),
        "{watched}"
    );
}

/// A target whose lease was taken over by another job is refused and
/// writes nothing; a target that receives an archive other than the one
/// its signed job names refuses it before touching the disk, reports the
/// failure with its reason, and its lease is freed (no lock is left).
#[test]
fn a_target_stops_on_a_lost_lease_or_a_tampered_archive_and_frees_itself() {
    assert!(is_root(), "this test sets owners: run it as root");
    let world = roleout_tests::World::start();
    let top = tempfile::tempdir().unwrap();
    let enrolled = enroll_fixture_machines(
        &world,
        top.path(),
        &[
            ("web-1", 20 << 30),
            ("web-4", 20 << 30),
            ("web-5", 20 << 30),
            ("web-6", 20 << 30),
        ],
    );
    let source = top.path().join("source");
    fs::create_dir(&source).unwrap();
    fixture(&source);
    world.admin("source add web-1");
    capture_web(&world, &enrolled[0], top.path(), &source, &["/:ext4"]);
    let disk = top.path().join("disk.img");
    File::create(&disk).unwrap().set_len(256 << 20).unwrap();
    let disk_text = disk.to_str().unwrap();

    // A machine that is the target of no job is told so, and writes nothing.
    let none = world.roleout(&enrolled[0], &["image", "deploy", "--disk", disk_text]);
    assert_ne!(none.code, Some(0), "{}", none.transcript());
    assert!(
        none.stderr.contains("web-1 is not a target of any job now"),
        "{}",
        none.transcript()
    );
    assert!(fs::read(&disk).unwrap().iter().all(|byte| *byte == 0));

    // web-4's lease is taken over by another job: its engine refuses it.
    world.admin("deploy web --target web-4");
    world.take_over_lease("web-4", "image-other-job");
    let refused = world.roleout(&enrolled[1], &["image", "deploy", "--disk", disk_text]);
    assert_ne!(refused.code, Some(0), "{}", refused.transcript());
    assert!(
        refused.stderr.contains("lease-lost"),
        "{}",
        refused.transcript()
    );
    assert!(fs::read(&disk).unwrap().iter().all(|byte| *byte == 0));

    // web-5 gets an archive that is not the one its job names.
    let job = job_of(&world.admin("deploy web --target web-5"));
    let dry = world.roleout(
        &enrolled[2],
        &["image", "deploy", "--disk", disk_text, "--dry-run"],
    );
    assert_eq!(dry.code, Some(0), "{}", dry.transcript());
    let archives = world.server_state.join("archives");
    let archive = fs::read_dir(&archives)
        .unwrap()
        .flatten()
        .map(|entry| entry.path())
        .find(|path| path.to_string_lossy().ends_with(".tar.zst"))
        .unwrap();
    let mut bytes = fs::read(&archive).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    fs::write(&archive, bytes).unwrap();
    let tampered = world.roleout(&enrolled[2], &["image", "deploy", "--disk", disk_text]);
    assert_ne!(tampered.code, Some(0), "{}", tampered.transcript());
    assert!(
        tampered
            .stderr
            .contains("the archive is not the one the job names"),
        "{}",
        tampered.transcript()
    );
    assert!(fs::read(&disk).unwrap().iter().all(|byte| *byte == 0));
    let shown = world.admin(&format!("job show {job}"));
    assert!(
        shown.contains("  web-5\tfailed\t")
            && shown.contains("the archive is not the one the job names"),
        "{shown}"
    );
    assert_eq!(
        world.machine_lease("web-5"),
        None,
        "the failed target's lease is left"
    );
    let watched = world.try_admin(&format!("job watch {job} --timeout 5"));
    assert_eq!(watched.code, Some(1), "{}", watched.transcript());
    assert!(
        watched.stderr.contains("failed on web-5"),
        "{}",
        watched.transcript()
    );

    // roleoutd packs the archive again once the damaged one is gone.
    fs::remove_dir_all(&archives).unwrap();

    // web-6's job pins a script the URL does not serve: refused before the
    // disk is touched (the same URL serving other bytes is another script).
    let server = roleout_tests::FileServer::start(
        vec![("site.sh".to_owned(), b"#!/bin/sh\nrm -rf /\n".to_vec())],
        2,
    );
    let pinned = roleout_model::ids::Sha256::of(b"#!/bin/sh\necho hello\n");
    let job = job_of(&world.admin(&format!(
        "deploy web --target web-6 --script-url {}/site.sh={pinned}",
        server.url
    )));
    let refused = world.roleout(&enrolled[3], &["image", "deploy", "--disk", disk_text]);
    assert_ne!(refused.code, Some(0), "{}", refused.transcript());
    assert!(
        refused
            .stderr
            .contains("script site.sh is not the one pinned"),
        "{}",
        refused.transcript()
    );
    assert!(fs::read(&disk).unwrap().iter().all(|byte| *byte == 0));
    assert!(
        world
            .admin(&format!("job show {job}"))
            .contains("  web-6\tfailed\t")
    );
    assert_eq!(world.machine_lease("web-6"), None);
}

/// 000-C4: a source whose file systems are partitions of a disk with a
/// GPT (written by Roleout, reached through offset loops) is captured with
/// each partition's place in that table: name, number, start and size,
/// the same as sfdisk reads them.
#[test]
fn a_source_on_a_partitioned_disk_is_captured_with_its_partition_table() {
    assert!(
        is_root(),
        "this test attaches loop devices and mounts: run it as root"
    );
    let top = tempfile::tempdir().unwrap();
    let disk = top.path().join("source.img");
    File::create(&disk).unwrap().set_len(256 << 20).unwrap();
    let partition = |mount: &str, growable: bool| roleout_model::image::Partition {
        mount_point: mount.to_owned(),
        fs_type: "ext4".to_owned(),
        device: String::new(),
        size_bytes: 64 << 20,
        used_bytes: 0,
        growable,
        data_bytes: 0,
        table: None,
    };
    let plan = roleout_model::disk::plan(
        &[partition("/", true), partition("/var", false)],
        &Default::default(),
        256 << 20,
    )
    .unwrap();
    roleout_store::disk::write_partition_table(&disk, &plan).unwrap();
    for planned in &plan.partitions {
        let device = attach(&disk, planned.start_bytes, planned.size_bytes);
        run("mkfs.ext4", &[os("-q"), os("-F"), os(&device.0)]);
    }
    let (source, state, file) = (
        top.path().join("source"),
        top.path().join("state"),
        top.path().join("source.rimg"),
    );
    fs::create_dir_all(&source).unwrap();
    let mut script = String::from("set -e; ");
    for planned in &plan.partitions {
        script.push_str(&format!(
            "mkdir -p \"$1{point}\"; mount -o loop,offset={},sizelimit={} \"$2\" \"$1{point}\"; ",
            planned.start_bytes,
            planned.size_bytes,
            point = planned.mount_point.trim_end_matches('/'),
        ));
    }
    script.push_str(
        "echo hello > \"$1/etc-motd\"; echo log > \"$1/var/log.txt\"; \
         \"$3\" --state-dir \"$4\" image capture --root \"$1\" --name source --output \"$5\"",
    );
    let captured = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script, "sh"])
        .arg(&source)
        .arg(&disk)
        .arg(binary("roleout"))
        .arg(&state)
        .arg(&file)
        .output()
        .unwrap();
    assert!(captured.status.success(), "{}", said(&captured));
    let attached = run("losetup", &[os("-j"), disk.as_os_str()]);
    assert!(
        attached.is_empty(),
        "{}",
        String::from_utf8_lossy(&attached)
    );

    let peek = tempfile::tempdir().unwrap();
    let image = image_file::read(&file, &ContentStore::new(peek.path()).unwrap()).unwrap();
    let sfdisk = run("sfdisk", &[os("--json"), disk.as_os_str()]);
    let sfdisk: serde_json::Value = serde_json::from_slice(&sfdisk).unwrap();
    let sector = sfdisk["partitiontable"]["sectorsize"]
        .as_u64()
        .unwrap_or(512);
    let expected: Vec<(String, String, u64, u64)> = sfdisk["partitiontable"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .zip(["/", "/var"])
        .map(|(entry, mount)| {
            (
                mount.to_owned(),
                entry["name"].as_str().unwrap().to_owned(),
                entry["start"].as_u64().unwrap() * sector,
                entry["size"].as_u64().unwrap() * sector,
            )
        })
        .collect();
    let found: Vec<(String, String, u64, u64)> = image
        .description
        .partitions
        .iter()
        .map(|partition| {
            let table = partition
                .table
                .as_ref()
                .unwrap_or_else(|| panic!("{} has no table entry", partition.mount_point));
            assert_eq!(table.disk, disk.display().to_string());
            assert_eq!(partition.size_bytes, table.size_bytes);
            (
                partition.mount_point.clone(),
                table.name.clone(),
                table.start_bytes,
                table.size_bytes,
            )
        })
        .collect();
    assert_eq!(found, expected);
    assert_eq!(
        image.description.data_by_mount_point()["/var"],
        4,
        "log.txt counts on /var"
    );
}

/// 000-C14/C16: an installation engine (a second roleoutd with a content
/// store of its own) takes a deployment's files from the roleoutd the image
/// was captured to, only those it lacks: the first target brings the whole
/// image into its store; after one file of the source changed and the
/// image was captured again, the second target's job brings that file and
/// the new manifest, nothing else.
#[test]
fn an_engine_with_a_store_of_its_own_brings_only_what_it_lacks() {
    assert!(
        is_root(),
        "this test attaches loop devices and mounts: run it as root"
    );
    let world = roleout_tests::World::start();
    let engine = world.start_engine("site-b");
    let top = tempfile::tempdir().unwrap();
    let enrolled = enroll_fixture_machines(
        &world,
        top.path(),
        &[
            ("web-1", 20 << 30),
            ("web-7", 256 << 20),
            ("web-8", 256 << 20),
        ],
    );
    let source = top.path().join("source");
    fs::create_dir(&source).unwrap();
    fixture(&source);
    world.admin("source add web-1");
    capture_web(&world, &enrolled[0], top.path(), &source, &["/:ext4"]);
    world.admin("image rule web arch,firmware");
    assert!(world.admin("engine list").contains("site-b\t"));

    let deploy_through_engine = |machine: &roleout_tests::Machine| {
        let job = job_of(&world.admin(&format!("deploy web --target {}", machine.name)));
        let disk = top.path().join(format!("{}.img", machine.name));
        File::create(&disk).unwrap().set_len(256 << 20).unwrap();
        let made = world.roleout(
            machine,
            &[
                "image",
                "deploy",
                "--disk",
                disk.to_str().unwrap(),
                "--engine",
                &engine.url,
            ],
        );
        assert_eq!(
            made.code,
            Some(0),
            "{}\n{}",
            made.transcript(),
            engine.log_text()
        );
        assert!(
            made.stdout.contains("reached first-boot"),
            "{}",
            made.stdout
        );
        assert!(
            world
                .admin(&format!("job show {job}"))
                .contains(&format!("  {}\tfirst-boot\t", machine.name))
        );
    };

    deploy_through_engine(&enrolled[1]);
    let first = engine.fetched_contents();
    assert!(
        first > 2,
        "the engine brought {first} contents:\n{}",
        engine.log_text()
    );

    fs::write(source.join("etc/ssh/sshd_config"), "Port 2222\n").unwrap();
    capture_web(&world, &enrolled[0], top.path(), &source, &["/:ext4"]);
    deploy_through_engine(&enrolled[2]);
    assert_eq!(
        engine.fetched_contents() - first,
        2,
        "the second job brought more than the changed file and the manifest:\n{}",
        engine.log_text()
    );
}
