//! TLS to the directory: StartTLS over `ldap://` and `ldaps://` against a
//! real slapd serving the embedded directory's self-signed certificate,
//! trusted through the `ca-certificate` setting; a certificate from another
//! issuer is refused with an error naming the URL and the TLS failure;
//! StartTLS against a slapd without TLS and unusable CA files give clear
//! errors.

use std::path::Path;

use roleout_directory::local::LocalOptions;
use roleout_directory::{Directory, DirectoryError, LocalDirectory, Settings};

/// A slapd serving StartTLS and ldaps.
fn tls_directory() -> LocalDirectory {
    LocalDirectory::temporary_with(LocalOptions {
        tls: true,
        ..LocalOptions::default()
    })
    .unwrap()
}

/// Writes the PEM of a self-signed certificate from another, unrelated
/// key for `127.0.0.1` into `directory`; returns its path.
fn other_issuer(directory: &Path) -> std::path::PathBuf {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let path = directory.join("other-ca.pem");
    std::fs::write(&path, params.self_signed(&key).unwrap().pem()).unwrap();
    path
}

/// The admin's settings over `url`, trusting `ca_certificate` only.
fn admin_over(local: &LocalDirectory, url: String, ca_certificate: &Path) -> Settings {
    let mut settings = local.admin_settings().with_ca_certificate(ca_certificate);
    settings.urls = vec![url];
    settings
}

#[tokio::test]
async fn starttls_trusting_the_generated_certificate_searches() {
    let local = tls_directory();
    let certificate = local.tls_certificate_path().unwrap();
    let pem = std::fs::read_to_string(&certificate).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    let settings = admin_over(&local, local.ldap_url(), &certificate).with_starttls();
    assert!(settings.uses_tls());
    let directory = Directory::connect(&settings).await.unwrap();
    let dns = directory.subtree_dns(&local.base()).await.unwrap();
    assert!(dns.contains(&local.base()), "{dns:?}");
    assert!(
        dns.contains(&format!("cn=roleoutd,{}", local.base())),
        "{dns:?}"
    );
}

#[tokio::test]
async fn ldaps_trusting_the_generated_certificate_searches_across_a_restart() {
    let mut local = tls_directory();
    let url = local.ldaps_url().unwrap();
    assert!(url.starts_with("ldaps://127.0.0.1:"), "{url}");
    assert_ne!(url, local.ldap_url().replace("ldap://", "ldaps://"));
    let settings = admin_over(&local, url.clone(), &local.tls_certificate_path().unwrap());
    let directory = Directory::connect(&settings).await.unwrap();
    let dns = directory.subtree_dns(&local.base()).await.unwrap();
    assert!(dns.contains(&local.base()), "{dns:?}");
    directory.close().await;

    // The ldaps port and the certificate survive a restart.
    local.stop().unwrap();
    local.start().unwrap();
    assert_eq!(local.ldaps_url().unwrap(), url);
    let dns = directory.subtree_dns(&local.base()).await.unwrap();
    assert!(dns.contains(&local.base()), "{dns:?}");
}

#[tokio::test]
async fn a_certificate_from_another_issuer_is_refused_naming_url_and_cause() {
    let local = tls_directory();
    let scratch = tempfile::tempdir().unwrap();
    let wrong = other_issuer(scratch.path());
    let starttls = admin_over(&local, local.ldap_url(), &wrong).with_starttls();
    let ldaps = admin_over(&local, local.ldaps_url().unwrap(), &wrong);
    for settings in [starttls, ldaps] {
        let error = Directory::connect(&settings).await.unwrap_err();
        assert!(matches!(error, DirectoryError::Connect { .. }), "{error:?}");
        let text = error.to_string();
        assert!(text.contains(&settings.urls[0]), "{text}");
        assert!(text.contains("TLS handshake failed"), "{text}");
        assert!(text.contains("invalid peer certificate"), "{text}");
        assert!(text.contains("UnknownIssuer"), "{text}");
    }
}

#[tokio::test]
async fn starttls_against_a_slapd_without_tls_is_a_clear_error() {
    let plain = LocalDirectory::temporary().unwrap();
    assert_eq!(plain.ldaps_url(), None);
    assert_eq!(plain.tls_certificate_path(), None);
    let scratch = tempfile::tempdir().unwrap();
    let ca = other_issuer(scratch.path());
    let settings = admin_over(&plain, plain.ldap_url(), &ca).with_starttls();
    let error = Directory::connect(&settings).await.unwrap_err();
    assert!(matches!(error, DirectoryError::Connect { .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.contains(&plain.ldap_url()), "{text}");
    assert!(text.contains("the server refused StartTLS"), "{text}");
}

#[tokio::test]
async fn unusable_ca_files_are_refused_before_connecting() {
    let scratch = tempfile::tempdir().unwrap();
    // No server listens there: the CA file is checked first.
    let settings = |ca: &Path| {
        Settings::new(["ldaps://127.0.0.1:1/"])
            .with_base("ou=roleout,dc=example,dc=org")
            .with_ca_certificate(ca)
    };
    let missing = scratch.path().join("missing.pem");
    let not_pem = scratch.path().join("not.pem");
    std::fs::write(&not_pem, "just some text\n").unwrap();
    let broken = scratch.path().join("broken.pem");
    std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap();
    for (path, reason) in [
        (&missing, "cannot be read"),
        (&not_pem, "holds no PEM certificate"),
        (&broken, "is not valid PEM"),
    ] {
        let error = Directory::connect(&settings(path)).await.unwrap_err();
        assert!(matches!(error, DirectoryError::Settings(_)), "{error:?}");
        let text = error.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains(reason), "{text}");
    }
}
