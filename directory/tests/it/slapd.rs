//! The embedded slapd: it starts with the base DIT that the real
//! `ldapsearch` sees, enforces the access rules, survives restarts in
//! persistent mode and explains what is missing when slapd is not installed.

use std::process::Command;

use roleout_directory::local::LocalOptions;
use roleout_directory::{Directory, DirectoryError, LocalDirectory};

/// Runs the real `ldapsearch` over ldapi as root (SASL EXTERNAL).
fn ldapsearch(local: &LocalDirectory, base: &str, arguments: &[&str]) -> String {
    let output = Command::new("ldapsearch")
        .args(["-Q", "-LLL", "-Y", "EXTERNAL", "-H"])
        .arg(local.ldapi_url())
        .args(["-b", base])
        .args(arguments)
        .output()
        .expect("ldap-utils is installed");
    assert!(
        output.status.success(),
        "ldapsearch failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn ldapsearch_sees_the_base_dit() {
    let local = LocalDirectory::temporary().unwrap();
    let listing = ldapsearch(
        &local,
        "dc=example,dc=org",
        &["-s", "sub", "(objectClass=*)", "1.1"],
    );
    for dn in [
        "dn: dc=example,dc=org",
        "dn: ou=roleout,dc=example,dc=org",
        "dn: ou=roles,ou=roleout,dc=example,dc=org",
        "dn: ou=machines,ou=roleout,dc=example,dc=org",
        "dn: ou=products,ou=roleout,dc=example,dc=org",
        "dn: ou=suites,ou=roleout,dc=example,dc=org",
        "dn: ou=builds,ou=roleout,dc=example,dc=org",
        "dn: ou=reports,ou=roleout,dc=example,dc=org",
        "dn: cn=roleoutd,ou=roleout,dc=example,dc=org",
        "dn: cn=admin,ou=roleout,dc=example,dc=org",
        "dn: cn=admins,ou=roleout,dc=example,dc=org",
    ] {
        assert!(
            listing.lines().any(|line| line == dn),
            "{dn} missing from:\n{listing}"
        );
    }
    // The root identity is the rootdn, as the config maps it.
    let whoami = Command::new("ldapwhoami")
        .args(["-Q", "-Y", "EXTERNAL", "-H"])
        .arg(local.ldapi_url())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&whoami.stdout).trim(),
        "dn:cn=admin,dc=example,dc=org"
    );
}

#[tokio::test]
async fn service_accounts_bind_and_anonymous_reads_nothing() {
    let local = LocalDirectory::temporary().unwrap();
    let admin = Directory::connect(&local.admin_settings()).await.unwrap();
    let builder = Directory::connect(&local.builder_settings()).await.unwrap();
    let anonymous = Directory::connect(&local.anonymous_settings())
        .await
        .unwrap();
    let base = admin.layout().base().to_owned();
    assert!(admin.subtree_dns(&base).await.unwrap().len() >= 10);
    assert!(builder.subtree_dns(&base).await.unwrap().len() >= 10);
    // Anonymous: the base itself is invisible (no such object, not a leak).
    let anonymous_result = anonymous.subtree_dns(&base).await.map(|dns| dns.len());
    assert!(
        matches!(anonymous_result, Ok(0))
            || anonymous_result
                .as_ref()
                .is_err_and(DirectoryError::is_no_such_object),
        "{anonymous_result:?}"
    );
    // A wrong password is refused with the bind's result code.
    let mut wrong = local.builder_settings();
    if let roleout_directory::Bind::Simple { password, .. } = &mut wrong.bind {
        *password = roleout_directory::Secret::new("wrong");
    }
    let error = Directory::connect(&wrong).await.unwrap_err();
    assert!(matches!(error, DirectoryError::Connect { .. }), "{error}");
    assert!(
        error.to_string().contains("invalid credentials (49)"),
        "{error}"
    );
    assert!(!error.to_string().contains("wrong\""), "{error}");
}

#[test]
fn persistent_mode_keeps_data_and_credentials_across_restarts() {
    let state = tempfile::tempdir().unwrap();
    let path = state.path().join("directory");
    let first = LocalDirectory::persistent(&path).unwrap();
    let settings = first.admin_settings();
    let add = Command::new("ldapadd")
        .args(["-Q", "-Y", "EXTERNAL", "-H"])
        .arg(first.ldapi_url())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(
                b"dn: ou=kept,ou=roleout,dc=example,dc=org\nobjectClass: organizationalUnit\nou: kept\n",
            )?;
            child.wait()
        })
        .unwrap();
    assert!(add.success());
    drop(first);
    let second = LocalDirectory::persistent(&path).unwrap();
    assert_eq!(
        second.admin_settings().bind,
        settings.bind,
        "credentials are reused"
    );
    let listing = ldapsearch(
        &second,
        "ou=roleout,dc=example,dc=org",
        &["-s", "one", "(ou=kept)", "1.1"],
    );
    assert!(
        listing.contains("dn: ou=kept,ou=roleout,dc=example,dc=org"),
        "{listing}"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let admin = Directory::connect(&second.admin_settings()).await.unwrap();
        assert!(
            admin
                .subtree_dns("ou=kept,ou=roleout,dc=example,dc=org")
                .await
                .unwrap()
                .len()
                == 1
        );
    });
}

#[test]
fn a_second_instance_on_the_same_state_is_refused() {
    let state = tempfile::tempdir().unwrap();
    let _first = LocalDirectory::persistent(state.path()).unwrap();
    let error = LocalDirectory::persistent(state.path()).unwrap_err();
    assert!(error.to_string().contains("already running"), "{error}");
}

#[test]
fn missing_slapd_is_a_clear_error() {
    let empty = tempfile::tempdir().unwrap();
    let error = LocalDirectory::temporary_with(LocalOptions {
        programs: Some(empty.path().to_owned()),
        ..LocalOptions::default()
    })
    .unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(error, DirectoryError::SlapdMissing { .. }),
        "{text}"
    );
    assert!(
        text.contains("install Debian's `slapd` and `ldap-utils` packages"),
        "{text}"
    );
}

#[test]
fn a_taken_port_is_reported_as_such() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let error = LocalDirectory::temporary_with(LocalOptions {
        port: Some(port),
        ..LocalOptions::default()
    })
    .unwrap_err();
    assert!(
        matches!(error, DirectoryError::PortInUse { port: reported } if reported == port),
        "{error}"
    );
}
