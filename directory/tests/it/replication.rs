//! Three managed slapd as providers of one directory (syncrepl over
//! syncprov, `olcMultiProvider`): a write taken by any of them reaches the
//! others, and a provider that was down catches up when it starts again.

use std::time::{Duration, Instant};

use roleout_directory::{LocalDirectory, LocalOptions, Replication, Secret};

use crate::{free_port, ldapadd};

fn url(port: u16) -> String {
    format!("ldap://127.0.0.1:{port}/")
}

/// Waits (at most 30 s) until `local` holds the entry `dn`.
fn wait_for(local: &LocalDirectory, dn: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // No such object (32) until it arrives.
        let found = std::process::Command::new("ldapsearch")
            .args(["-Q", "-LLL", "-Y", "EXTERNAL", "-H"])
            .arg(local.ldapi_url())
            .args(["-s", "base", "-b", dn, "1.1"])
            .output()
            .unwrap();
        if found.status.success() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{dn} did not reach the provider at port {} in 30 s",
            local.port()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn organisational_unit(name: &str) -> (String, String) {
    let dn = format!("ou={name},dc=example,dc=org");
    let ldif = format!("dn: {dn}\nobjectClass: organizationalUnit\nou: {name}\n");
    (dn, ldif)
}

#[test]
fn three_providers_take_writes_each_and_a_restarted_one_catches_up() {
    let ports = [free_port(), free_port(), free_port()];
    let secret = Secret::new("replication-test-secret");
    let options = |index: usize, join: Option<std::path::PathBuf>| LocalOptions {
        port: Some(ports[index]),
        replication: Some(Replication {
            server_id: u16::try_from(index + 1).unwrap(),
            peers: (0..3)
                .filter(|other| *other != index)
                .map(|other| url(ports[other]))
                .collect(),
            secret: secret.clone(),
            join_credentials: join,
        }),
        ..LocalOptions::default()
    };
    let first = LocalDirectory::temporary_with(options(0, None)).unwrap();
    let credentials = first.state_dir().join("credentials");
    let second = LocalDirectory::temporary_with(options(1, Some(credentials.clone()))).unwrap();
    let mut third = LocalDirectory::temporary_with(options(2, Some(credentials))).unwrap();

    // The joining providers started empty; the first's entries reach them,
    // the service accounts with their passwords included.
    for joined in [&second, &third] {
        wait_for(joined, "cn=admins,ou=roleout,dc=example,dc=org");
        wait_for(joined, "cn=roleoutd,ou=roleout,dc=example,dc=org");
    }

    // Each provider takes a write, and the other two receive it.
    let providers = [&first, &second, &third];
    for (index, taker) in providers.iter().enumerate() {
        let (dn, ldif) = organisational_unit(&format!("written-at-{index}"));
        ldapadd(taker, &ldif);
        for other in providers {
            wait_for(other, &dn);
        }
    }

    // The service account binds at a joined provider with the password the
    // first one made: one installation, whichever provider answers.
    let bound = std::process::Command::new("ldapwhoami")
        .args(["-x", "-H", &url(ports[1]), "-D"])
        .arg("cn=roleoutd,ou=roleout,dc=example,dc=org")
        .arg("-y")
        .arg(first.state_dir().join("credentials/roleoutd.password"))
        .output()
        .unwrap();
    assert!(
        bound.status.success(),
        "{}",
        String::from_utf8_lossy(&bound.stderr)
    );

    // The third goes down; writes go on at the others; it catches up when
    // it starts again.
    third.stop().unwrap();
    let (missed, ldif) = organisational_unit("written-while-down");
    ldapadd(&first, &ldif);
    wait_for(&second, &missed);
    third.start().unwrap();
    wait_for(&third, &missed);
}

/// The recipe README.md gives for existing OpenLDAP servers, with its
/// placeholders filled in.
fn readme_recipe(server_id: u16, peer: &str, secret: &str, hash: &str) -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let after = readme
        .split_once("<!-- replication recipe -->")
        .expect("README.md has the replication recipe")
        .1;
    let block = after
        .split_once("```ldif\n")
        .unwrap()
        .1
        .split_once("```")
        .unwrap()
        .0;
    block
        .replace("SERVER_ID", &server_id.to_string())
        .replace("PEER_URL", peer)
        .replace("SECRET_HASH", hash)
        .replace("SECRET", secret)
        .replace("ROOT_DN", "cn=admin,dc=example,dc=org")
        .replace("SUFFIX", "dc=example,dc=org")
}

fn ldapmodify(local: &LocalDirectory, ldif: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("ldapmodify")
        .args(["-Q", "-Y", "EXTERNAL", "-H"])
        .arg(local.ldapi_url())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(ldif.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "ldapmodify failed: {}\n{ldif}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_readme_recipe_makes_a_running_server_and_a_new_one_providers_of_one_directory() {
    let ports = [free_port(), free_port()];
    // A server that runs already, as an organisation's would.
    let existing = LocalDirectory::temporary_with(LocalOptions {
        port: Some(ports[0]),
        ..LocalOptions::default()
    })
    .unwrap();
    // A new server with an empty database (and no peer yet).
    let secret = "readme-recipe-secret";
    let new = LocalDirectory::temporary_with(LocalOptions {
        port: Some(ports[1]),
        replication: Some(Replication {
            server_id: 2,
            peers: Vec::new(),
            secret: Secret::new(secret),
            join_credentials: Some(existing.state_dir().join("credentials")),
        }),
        ..LocalOptions::default()
    })
    .unwrap();
    let hashed = std::process::Command::new("slappasswd")
        .args(["-s", secret])
        .output()
        .unwrap();
    let hash = String::from_utf8(hashed.stdout).unwrap().trim().to_owned();
    ldapmodify(&existing, &readme_recipe(1, &url(ports[1]), secret, &hash));
    ldapmodify(&new, &readme_recipe(2, &url(ports[0]), secret, &hash));

    // The running server's entries fill the new one; a write at either
    // reaches the other.
    wait_for(&new, "cn=roleoutd,ou=roleout,dc=example,dc=org");
    let (at_new, ldif) = organisational_unit("written-at-the-new-one");
    ldapadd(&new, &ldif);
    wait_for(&existing, &at_new);
    let (at_existing, ldif) = organisational_unit("written-at-the-existing-one");
    ldapadd(&existing, &ldif);
    wait_for(&new, &at_existing);
}
