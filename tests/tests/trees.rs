//! Trees read and made again on a real file system, compared with tools that
//! share no code with Roleout (`roleout_tests::trees`). Needs root (devices,
//! owners, capabilities).

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use roleout_model::tree::{Kind, Manifest, TreePath, diff};
use roleout_store::content::ContentStore;
use roleout_store::tree::{ScanOptions, TreeError, materialize, scan};
use roleout_tests::trees::{find, fixture, full, getfattr, hex, is_root, run, sha256sum};

#[test]
fn a_captured_tree_matches_what_independent_tools_see_and_is_stable() {
    assert!(
        is_root(),
        "this test makes devices and sets owners: run it as root"
    );
    let source = tempfile::tempdir().unwrap();
    let stores = tempfile::tempdir().unwrap();
    fixture(source.path());
    let store = ContentStore::new(stores.path()).unwrap();
    let first = scan(source.path(), &ScanOptions::default(), Some(&store)).unwrap();
    let manifest = &first.manifest;

    // Every entry, as find sees it.
    let listed = find(source.path());
    assert_eq!(
        listed.len() + 1,
        manifest.entries().len(),
        "find lists all but the root"
    );
    for entry in manifest
        .entries()
        .iter()
        .filter(|entry| !entry.path.is_root())
    {
        let seen = String::from_utf8_lossy(&listed[&entry.path.to_bytes()]).into_owned();
        let mut fields = seen.splitn(7, ' ');
        let (kind, mode, uid, gid, size, mtime, link) = (
            fields.next().unwrap(),
            fields.next().unwrap(),
            fields.next().unwrap(),
            fields.next().unwrap(),
            fields.next().unwrap(),
            fields.next().unwrap(),
            fields.next().unwrap_or(""),
        );
        let expected_kind = match entry.kind {
            Kind::File => "f",
            Kind::Dir => "d",
            Kind::Symlink => "l",
            Kind::Char => "c",
            Kind::Block => "b",
            Kind::Fifo => "p",
            Kind::Socket => "s",
        };
        let at = entry.path.as_str();
        assert_eq!(kind, expected_kind, "{at}");
        assert_eq!(u32::from_str_radix(mode, 8).unwrap(), entry.mode, "{at}");
        assert_eq!(uid.parse::<u32>().unwrap(), entry.uid, "{at}");
        assert_eq!(gid.parse::<u32>().unwrap(), entry.gid, "{at}");
        if entry.kind == Kind::File {
            assert_eq!(size.parse::<u64>().unwrap(), entry.size, "{at}");
        }
        let (seconds, fraction) = mtime.split_once('.').unwrap();
        let nanos: i64 = format!("{fraction:0<9}")[..9].parse().unwrap();
        assert_eq!(
            seconds.parse::<i64>().unwrap() * 1_000_000_000 + nanos,
            entry.mtime_ns,
            "{at}"
        );
        if entry.kind == Kind::Symlink {
            assert_eq!(link.as_bytes(), &entry.link.as_ref().unwrap().0[..], "{at}");
        }
        // Extended attributes, as getfattr sees them.
        let expected: BTreeMap<String, String> = entry
            .xattrs
            .iter()
            .map(|(name, value)| (name.clone(), hex(&value.0)))
            .collect();
        assert_eq!(
            getfattr(&full(source.path(), &entry.path)),
            expected,
            "{at}"
        );
        // Contents, as sha256sum sees them (a sparse file's digest is of
        // its data only, checked below).
        if entry.kind == Kind::File && entry.sparse.is_empty() {
            assert_eq!(
                sha256sum(&full(source.path(), &entry.path)),
                entry.sha256.as_ref().unwrap().as_str(),
                "{at}"
            );
        }
    }
    let get = |path: &str| {
        manifest
            .get(&TreePath::from_bytes(path.as_bytes()).unwrap())
            .unwrap()
    };
    assert!(get("bin/ping").xattrs.contains_key("security.capability"));
    assert!(
        get("data/acl")
            .xattrs
            .contains_key("system.posix_acl_access")
    );
    assert_eq!(
        get("data/hard2").hardlink.as_ref().unwrap().as_str(),
        "data/hard1"
    );
    assert_eq!(get("data/orphan").user, None);
    assert_eq!(get("data/shared").group.as_deref(), Some("users"));
    assert_eq!(get("dev/loopish").rdev, Some([7, 200]));
    let sparse = get("data/sparse");
    assert_eq!(sparse.size, 1 << 30);
    assert_eq!(sparse.data_bytes(), 4096, "{:?}", sparse.sparse);
    assert!(
        manifest
            .get(&TreePath::from_bytes(b"data/bad\xffname").unwrap())
            .is_some()
    );
    // Only data was read and stored: 1 GiB of holes cost nothing.
    assert!(first.read_bytes < 1 << 20, "{}", first.read_bytes);

    // The same tree twice: the same bytes, the same digest, nothing stored.
    let second = scan(source.path(), &ScanOptions::default(), Some(&store)).unwrap();
    assert_eq!(second.manifest.to_bytes(), manifest.to_bytes());
    assert_eq!(second.manifest.digest(), manifest.digest());
    assert_eq!(second.stored_files, 0);
    assert_eq!(Manifest::parse(&manifest.to_bytes()).unwrap(), *manifest);
}

#[test]
fn a_tree_made_from_its_manifest_is_the_same_to_independent_tools() {
    assert!(
        is_root(),
        "this test makes devices and sets owners: run it as root"
    );
    let (source, target, stores) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    fixture(source.path());
    let store = ContentStore::new(stores.path()).unwrap();
    let captured = scan(source.path(), &ScanOptions::default(), Some(&store)).unwrap();
    let made = materialize(&captured.manifest, &store, target.path()).unwrap();
    assert_eq!(made.sockets_skipped, 0);
    assert!(made.bytes < 1 << 20, "holes were written: {}", made.bytes);

    // Roleout reads the copy as the same tree...
    let again = scan(target.path(), &ScanOptions::default(), None).unwrap();
    let change = diff(&captured.manifest, &again.manifest);
    assert!(change.is_empty(), "{change:?}");
    // ...and so do the independent tools.
    assert_eq!(find(source.path()), find(target.path()));
    for entry in captured.manifest.entries() {
        let (a, b) = (
            full(source.path(), &entry.path),
            full(target.path(), &entry.path),
        );
        assert_eq!(getfattr(&a), getfattr(&b), "{}", entry.path);
        if entry.kind == Kind::File {
            assert_eq!(sha256sum(&a), sha256sum(&b), "{}", entry.path);
        }
    }
    let caps = |root: &Path| run("getcap", &[root.join("bin/ping").as_os_str()]);
    let shown = String::from_utf8_lossy(&caps(target.path())).into_owned();
    assert!(shown.contains("cap_net_bind_service"), "{shown}");
    let acl = |root: &Path| {
        run(
            "getfacl",
            &[OsStr::new("-c"), root.join("data/acl").as_os_str()],
        )
    };
    assert_eq!(acl(source.path()), acl(target.path()));
    // The copy of the sparse file holds its holes.
    let blocks = fs::metadata(target.path().join("data/sparse"))
        .unwrap()
        .blocks();
    assert!(blocks * 512 < 1 << 20, "{blocks} blocks");
    let (a, b) = (
        fs::metadata(source.path().join("data/hard1")).unwrap(),
        fs::metadata(target.path().join("data/hard2")).unwrap(),
    );
    assert_eq!((a.nlink(), b.nlink()), (2, 2));
    assert_eq!(
        fs::metadata(target.path().join("bin/suid"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o4755
    );
}

#[test]
fn nothing_is_made_where_something_is_or_without_every_content() {
    assert!(
        is_root(),
        "this test makes devices and sets owners: run it as root"
    );
    let (source, target, stores, empty) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    fixture(source.path());
    let store = ContentStore::new(stores.path()).unwrap();
    let captured = scan(source.path(), &ScanOptions::default(), Some(&store)).unwrap();
    fs::write(target.path().join("already"), "here").unwrap();
    assert!(matches!(
        materialize(&captured.manifest, &store, target.path()),
        Err(TreeError::NotEmpty { .. })
    ));
    // A store that lacks a content: refused before anything is made.
    let bare = ContentStore::new(empty.path().join("store")).unwrap();
    let made_here = empty.path().join("tree");
    fs::create_dir(&made_here).unwrap();
    let error = materialize(&captured.manifest, &bare, &made_here).unwrap_err();
    assert!(error.to_string().contains("does not hold"), "{error}");
    assert_eq!(fs::read_dir(&made_here).unwrap().count(), 0);
}

#[test]
fn excluded_folders_and_other_file_systems_are_kept_empty() {
    assert!(
        is_root(),
        "this test makes devices and sets owners: run it as root"
    );
    let source = tempfile::tempdir().unwrap();
    fixture(source.path());
    let options = ScanOptions {
        exclude: vec![TreePath::from_bytes(b"data").unwrap()],
        one_file_system: true,
    };
    let scanned = scan(source.path(), &options, None).unwrap();
    let paths: Vec<&str> = scanned
        .manifest
        .entries()
        .iter()
        .map(|entry| entry.path.as_str())
        .collect();
    assert!(paths.contains(&"data"), "{paths:?}");
    assert!(
        !paths.iter().any(|path| path.starts_with("data/")),
        "{paths:?}"
    );
}

/// A file that grows while it is read stops the capture with an error that
/// names it, rather than a manifest of a mixture.
#[test]
fn a_file_that_changes_while_it_is_read_stops_the_capture_naming_it() {
    use std::io::Write;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let source = tempfile::tempdir().unwrap();
    let growing = source.path().join("growing.log");
    fs::write(&growing, vec![b'x'; 64 << 20]).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, growing) = (stop.clone(), growing.clone());
        std::thread::spawn(move || {
            let mut file = fs::OpenOptions::new().append(true).open(&growing).unwrap();
            // Bounded: at most ten seconds of appends, one a millisecond.
            for _ in 0..10_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                file.write_all(b"more\n").unwrap();
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(20));
    let outcome = scan(source.path(), &ScanOptions::default(), None);
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    match outcome {
        Err(TreeError::Changed { path }) => assert!(path.ends_with("growing.log"), "{path}"),
        other => panic!("expected the change to be refused, got {other:?}"),
    }
}

/// 000-C5 (a): the inventories of three fixture machines (virtio disk and
/// NIC under BIOS without DMI; NVMe and an Intel NIC under UEFI with DMI;
/// a small disk) are exactly the checked-in golden files
/// (`tests/fixtures/inventory/*.json`; `ROLEOUT_BLESS=1` writes them
/// anew, to be read before they are committed).
#[test]
fn fixture_machines_have_the_golden_inventories() {
    use roleout_tests::sysfs::{E1000E, Hardware, NVME, write_sysroot};
    let machines = [
        ("virtio-bios", Hardware::default()),
        (
            "nvme-uefi-dmi",
            Hardware {
                cpu_model: "Other CPU @ 3.00GHz",
                storage: NVME,
                network: E1000E,
                disk_bytes: 64 << 30,
                uefi: true,
                dmi: Some(("QEMU", "Standard PC (Q35 + ICH9, 2009)")),
            },
        ),
        (
            "small-disk",
            Hardware {
                disk_bytes: 512 << 20,
                ..Hardware::default()
            },
        ),
    ];
    let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/inventory");
    for (name, hardware) in machines {
        let sysroot = tempfile::tempdir().unwrap();
        write_sysroot(sysroot.path(), &hardware);
        let inventory = roleout_installer::inventory::read(sysroot.path()).unwrap();
        let text = serde_json::to_string_pretty(&inventory).unwrap() + "\n";
        let path = golden.join(format!("{name}.json"));
        if std::env::var_os("ROLEOUT_BLESS").is_some() {
            std::fs::create_dir_all(&golden).unwrap();
            std::fs::write(&path, &text).unwrap();
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        assert_eq!(text, expected, "{name} differs from {}", path.display());
    }
}

/// 000-C5 (b): this machine's own inventory agrees with the tools: its
/// processors with `nproc --all`, its memory with MemTotal, its disks with
/// `lsblk -d` (but for memory-backed ones); DMI absent is no error.
#[test]
fn this_machines_inventory_agrees_with_nproc_meminfo_and_lsblk() {
    let inventory = roleout_installer::inventory::read(std::path::Path::new("/")).unwrap();
    let nproc = std::process::Command::new("nproc")
        .arg("--all")
        .output()
        .unwrap();
    let processors: u32 = String::from_utf8_lossy(&nproc.stdout)
        .trim()
        .parse()
        .unwrap();
    assert_eq!(inventory.cpu.logical, processors);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kilobytes: u64 = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse().ok())
        .unwrap();
    assert_eq!(inventory.memory_bytes, kilobytes * 1024);
    let lsblk = std::process::Command::new("lsblk")
        .args(["-d", "-b", "-n", "-o", "NAME,SIZE,TYPE"])
        .output()
        .unwrap();
    let mut disks: Vec<(String, u64)> = String::from_utf8_lossy(&lsblk.stdout)
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // Memory-backed block devices (zram, ram) are no disk an image
            // could go to; the inventory leaves them out.
            let in_memory = fields
                .first()
                .is_some_and(|name| name.starts_with("zram") || name.starts_with("ram"));
            (fields.len() == 3 && fields[2] == "disk" && !in_memory)
                .then(|| (fields[0].to_owned(), fields[1].parse().unwrap_or(0)))
        })
        .collect();
    disks.sort();
    let mut read: Vec<(String, u64)> = inventory
        .disks
        .iter()
        .map(|disk| (disk.name.clone(), disk.size_bytes))
        .collect();
    read.sort();
    assert_eq!(read, disks);
    assert_eq!(
        inventory.dmi.is_none(),
        !std::path::Path::new("/sys/class/dmi/id").is_dir()
    );
}
