//! The catalog as admins handle it: `roleout-admin import` of the example
//! catalog into the managed slapd of a state directory (attaching to the
//! slapd that is already running there, as it does when roleoutd runs),
//! the result as plain `ldapsearch` shows it, idempotent re-import, and
//! `export` back to descriptors that pass `check`.

use std::path::{Path, PathBuf};
use std::process::Command;

use roleout_directory::LocalDirectory;

fn admin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_roleout-admin"))
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

fn run(command: &mut Command) -> (bool, String, String) {
    let output = command.output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn import_into_the_managed_slapd_shows_in_ldapsearch_and_is_idempotent() {
    let state = tempfile::tempdir().unwrap();
    // The slapd roleoutd would be running; the shell attaches to it.
    let local = LocalDirectory::persistent(state.path().join("ldap")).unwrap();
    let state_dir = state.path().to_str().unwrap();

    let (ok, stdout, stderr) = run(admin()
        .args(["--state-dir", state_dir, "import"])
        .arg(examples()));
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("suite domino 9.0.1: added"), "{stdout}");
    assert!(
        stdout.contains("7 added, 0 updated, 0 unchanged"),
        "{stdout}"
    );

    let (ok, stdout, stderr) = run(admin()
        .args(["--state-dir", state_dir, "import"])
        .arg(examples()));
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains("0 added, 0 updated, 7 unchanged"),
        "{stdout}"
    );

    // Plain ldapsearch, as root over ldapi, sees the suite and the
    // per-role object versions of the mail client.
    let (ok, stdout, stderr) = run(Command::new("ldapsearch")
        .args([
            "-Q",
            "-LLL",
            "-Y",
            "EXTERNAL",
            "-H",
            &local.ldapi_url(),
            "-b",
        ])
        .arg(format!("ou=roleout,{}", local.suffix()))
        .arg("(|(objectClass=roleoutSuite)(roleoutOf=notes-client))")
        .args(["cn", "roleoutSlot", "roleoutForRole"]));
    assert!(ok, "{stderr}");
    assert!(stdout.contains("cn: domino"), "{stdout}");
    for role in ["developer", "administrator"] {
        assert!(
            stdout.contains(&format!("roleoutForRole: {role}")),
            "{stdout}"
        );
    }
    assert!(stdout.contains("roleoutSlot: fileset"), "{stdout}");
    assert!(stdout.contains("roleoutSlot: post-install"), "{stdout}");
}

#[test]
fn export_gives_back_descriptors_that_check() {
    let state = tempfile::tempdir().unwrap();
    let _local = LocalDirectory::persistent(state.path().join("ldap")).unwrap();
    let state_dir = state.path().to_str().unwrap();
    let out = state.path().join("export");
    let script = format!(
        "import {}; export --ldif {}",
        examples().display(),
        out.display()
    );
    let (ok, stdout, stderr) = run(admin().args(["--state-dir", state_dir, "-c", &script]));
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains("exported 6 product(s) and 1 suite(s)"),
        "{stdout}"
    );
    // ldif/catalog.ldif is this export, kept in the repository for
    // `ldapadd`; regenerate it with `export --ldif` when examples change.
    let exported = std::fs::read_to_string(out.join("catalog.ldif")).unwrap();
    let kept = std::fs::read_to_string(examples().join("../ldif/catalog.ldif")).unwrap();
    assert!(
        exported == kept,
        "ldif/catalog.ldif is out of date: run roleout-admin -c 'import examples/; export --ldif DIR' and copy DIR/catalog.ldif"
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "xml"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 7);
    let (ok, stdout, stderr) = run(admin().arg("check").args(&files));
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("assembles and resolves"), "{stdout}");
}

#[test]
fn a_broken_file_imports_nothing() {
    let state = tempfile::tempdir().unwrap();
    let _local = LocalDirectory::persistent(state.path().join("ldap")).unwrap();
    let broken = state.path().join("broken.xml");
    std::fs::write(
        &broken,
        "<product xmlns=\"urn:roleout:descriptor:1\" id=\"x\"/>",
    )
    .unwrap();
    let (ok, stdout, stderr) = run(admin()
        .args(["--state-dir", state.path().to_str().unwrap(), "import"])
        .arg(examples().join("jre.xml"))
        .arg(&broken));
    assert!(!ok);
    assert!(stderr.contains("broken.xml:1:"), "{stderr}");
    assert!(stderr.contains("nothing was imported"), "{stderr}");
    assert!(!stdout.contains("product jre"), "{stdout}");
}

/// An existing directory over TLS, as an admin reaches one: `ldaps://` and
/// StartTLS with the directory's certificate as the only trusted one, and a
/// simple bind whose password is read from a file.
#[test]
fn the_shell_reaches_a_directory_over_ldaps_and_starttls() {
    let local = LocalDirectory::temporary_with(roleout_directory::local::LocalOptions {
        tls: true,
        ..Default::default()
    })
    .unwrap();
    let ca = local.tls_certificate_path().unwrap();
    let password_file = local.state_dir().join("credentials/admin.password");
    let admin_dn = format!("cn=admin,ou=roleout,{}", local.suffix());
    let ldaps = local.ldaps_url().unwrap();
    let ldap = local.ldap_url();
    for (url, starttls) in [(ldaps.as_str(), false), (ldap.as_str(), true)] {
        let mut command = admin();
        command.args(["--url", url, "--bind-dn", &admin_dn, "--bind-password-file"]);
        command
            .arg(&password_file)
            .arg("--ldap-ca-certificate")
            .arg(&ca);
        if starttls {
            command.arg("--starttls");
        }
        let script = format!("import {}; ls /products", examples().display());
        let (ok, stdout, stderr) = run(command.args(["-c", &script]));
        assert!(ok, "{url}: {stdout}{stderr}");
        assert!(stdout.contains("notes-client"), "{url}: {stdout}");
    }
    // Without the directory's certificate the connection is refused.
    let (ok, _, stderr) = run(admin()
        .args([
            "--url",
            &ldaps,
            "--bind-dn",
            &admin_dn,
            "--bind-password-file",
        ])
        .arg(&password_file)
        .args(["-c", "ls /"]));
    assert!(!ok);
    assert!(
        stderr.contains("TLS") || stderr.contains("certificate"),
        "{stderr}"
    );
}

/// A catalog holding two versions of a product exports both (the older as
/// `ID-VERSION.xml`, both in the LDIF), and importing the export into a
/// fresh directory gives back both, with the same one current; deleting
/// one version keeps the other.
#[test]
fn every_version_of_a_product_is_exported_and_imported_back() {
    let folder = tempfile::tempdir().unwrap();
    let descriptors = folder.path().join("in");
    std::fs::create_dir_all(&descriptors).unwrap();
    for version in ["1.6", "1.7"] {
        std::fs::write(
            descriptors.join(format!("app-{version}.xml")),
            format!(
                r#"<product xmlns="urn:roleout:descriptor:1" id="app" version="{version}"><install><arg>echo</arg><arg>{version}</arg></install></product>"#
            ),
        )
        .unwrap();
    }
    let first = folder.path().join("first");
    let _first_local = LocalDirectory::persistent(first.join("ldap")).unwrap();
    let out = folder.path().join("out");
    let script = format!(
        "import {}; export --ldif {}",
        descriptors.display(),
        out.display()
    );
    let (ok, stdout, stderr) =
        run(admin().args(["--state-dir", first.to_str().unwrap(), "-c", &script]));
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains("product app 1.6: updated") || stdout.contains("product app 1.6: added"),
        "{stdout}"
    );
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["app-1.6.xml", "app.xml", "catalog.ldif"]);
    let ldif = std::fs::read_to_string(out.join("catalog.ldif")).unwrap();
    assert_eq!(ldif.matches("roleoutRelease:").count(), 2, "{ldif}");

    // Into a fresh directory: both versions, 1.7 current.
    let second = folder.path().join("second");
    let _second_local = LocalDirectory::persistent(second.join("ldap")).unwrap();
    let script = format!(
        "import {} {}; ls /products; delete product app --version 1.7; ls /products",
        out.join("app-1.6.xml").display(),
        out.join("app.xml").display()
    );
    let (ok, stdout, stderr) =
        run(admin().args(["--state-dir", second.to_str().unwrap(), "-c", &script]));
    assert!(ok, "{stdout}{stderr}");
    let listing: Vec<Vec<&str>> = stdout
        .lines()
        .filter(|line| line.starts_with("app "))
        .map(|line| line.split_whitespace().take(2).collect())
        .collect();
    assert_eq!(
        listing,
        [["app", "1.7"], ["app", "1.6"], ["app", "1.6"]],
        "two versions listed, then one:\n{stdout}"
    );
    assert!(
        stdout.contains("deleted version 1.7 of product app; 1 version(s) left"),
        "{stdout}"
    );
}
