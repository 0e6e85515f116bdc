//! Three managed slapd as providers of one directory (syncrepl over
//! syncprov, `olcMultiProvider`): a write taken by any of them reaches the
//! others, and a provider that was down catches up when it starts again.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use roleout_directory::{LocalDirectory, LocalOptions, Replication, Secret};

use crate::ldapadd;

/// A free loopback port (bound, read, released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

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
