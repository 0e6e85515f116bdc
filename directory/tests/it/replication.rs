//! Three managed slapd as providers of one directory (syncrepl over
//! syncprov, `olcMultiProvider`): a write taken by any of them reaches the
//! others, and a provider that was down catches up when it starts again.

use std::time::{Duration, Instant};

use roleout_directory::{LocalDirectory, LocalOptions, Replication, Secret};

use crate::{free_port, ldapadd, ldapmodify, run_with_input};

fn url(port: u16) -> String {
    format!("ldap://127.0.0.1:{port}/")
}

/// Waits (at most 30 s) until `local` holds the entry `dn`.
fn wait_for(local: &LocalDirectory, dn: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if holds(local, dn) {
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

/// Whether `local` holds the entry `dn` now (ldapsearch answers no such
/// object, 32, until it arrives).
fn holds(local: &LocalDirectory, dn: &str) -> bool {
    std::process::Command::new("ldapsearch")
        .args(["-Q", "-LLL", "-Y", "EXTERNAL", "-H"])
        .arg(local.ldapi_url())
        .args(["-s", "base", "-b", dn, "1.1"])
        .output()
        .unwrap()
        .status
        .success()
}

/// A simple bind at the provider on `port`: `Err` with the tool's exit
/// code, the LDAP result code (49: invalid credentials).
fn bind(port: u16, dn: &str, password: &str) -> Result<(), i32> {
    let output = std::process::Command::new("ldapwhoami")
        .args(["-x", "-H", &url(port), "-D", dn, "-w", password])
        .output()
        .unwrap();
    if output.status.success() {
        Ok(())
    } else {
        Err(output.status.code().unwrap_or(-1))
    }
}

/// `ldapadd` of `ldif` bound as `dn`: `Err` with the LDAP result code
/// (50: insufficient access).
fn add_as(port: u16, dn: &str, password: &str, ldif: &str) -> Result<(), i32> {
    let output = run_with_input(
        std::process::Command::new("ldapadd").args([
            "-x",
            "-H",
            &url(port),
            "-D",
            dn,
            "-w",
            password,
        ]),
        ldif,
    );
    if output.status.success() {
        Ok(())
    } else {
        Err(output.status.code().unwrap_or(-1))
    }
}

/// Each of `providers` takes a write (an entry named after `tag` and its
/// index), and every provider receives each.
fn writes_reach_every_provider(providers: &[&LocalDirectory], tag: &str) {
    for (index, taker) in providers.iter().enumerate() {
        let (dn, ldif) = organisational_unit(&format!("{tag}-at-{index}"));
        ldapadd(*taker, &ldif);
        for other in providers {
            wait_for(other, &dn);
        }
    }
}

/// The `slappasswd` hash of `secret`, as an admin makes one.
fn slappasswd(secret: &str) -> String {
    let hashed = std::process::Command::new("slappasswd")
        .args(["-s", secret])
        .output()
        .unwrap();
    String::from_utf8(hashed.stdout).unwrap().trim().to_owned()
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
    writes_reach_every_provider(&[&first, &second, &third], "written");

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

    // The providers bind to each other as the replicator with the shared
    // secret; it reads but cannot write, and the root DN, which answers
    // over ldapi only, takes no password over the network.
    let replicator = "cn=replicator,ou=roleout,dc=example,dc=org";
    for port in ports {
        assert_eq!(bind(port, replicator, secret.expose()), Ok(()));
        assert_eq!(
            bind(port, "cn=admin,dc=example,dc=org", secret.expose()),
            Err(49)
        );
    }
    let (refused, ldif) = organisational_unit("written-by-the-replicator");
    assert_eq!(
        add_as(ports[0], replicator, secret.expose(), &ldif),
        Err(50)
    );
    assert!(!holds(&first, &refused));

    // The third goes down; writes go on at the others; it catches up when
    // it starts again.
    third.stop().unwrap();
    let (missed, ldif) = organisational_unit("written-while-down");
    ldapadd(&first, &ldif);
    wait_for(&second, &missed);
    third.start().unwrap();
    wait_for(&third, &missed);
}

/// A block of the recipe README.md gives for existing OpenLDAP servers
/// (the one after `marker`), with its placeholders filled in.
fn readme_recipe(marker: &str, server_id: u16, peer: &str, secret: &str, hash: &str) -> String {
    crate::readme_block(marker)
        .replace("SERVER_ID", &server_id.to_string())
        .replace("PEER_URL", peer)
        .replace("SECRET_HASH", hash)
        .replace("SECRET", secret)
        .replace("SUFFIX", "dc=example,dc=org")
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
    let hash = slappasswd(secret);
    // The running server has Roleout's access rules but, as an
    // organisation's would, not the replicator's rule and limits (the
    // managed directory has them from the start).
    ldapmodify(
        &existing,
        "dn: olcDatabase={1}mdb,cn=config\nchangetype: modify\ndelete: olcAccess\n\
         olcAccess: {0}\n-\ndelete: olcLimits\nolcLimits: {0}\n-\n",
    );
    for block in [
        "replication recipe: account",
        "replication recipe: access",
        "replication recipe",
    ] {
        ldapmodify(
            &existing,
            &readme_recipe(block, 1, &url(ports[1]), secret, &hash),
        );
    }
    ldapmodify(
        &new,
        &readme_recipe("replication recipe", 2, &url(ports[0]), secret, &hash),
    );

    // The running server's entries fill the new one; a write at either
    // reaches the other.
    wait_for(&new, "cn=roleoutd,ou=roleout,dc=example,dc=org");
    writes_reach_every_provider(&[&new, &existing], "written");
}

#[test]
fn a_new_replication_secret_given_to_every_provider_replaces_the_old_one() {
    let top = tempfile::tempdir().unwrap();
    let ports = [free_port(), free_port()];
    let options = |index: usize, secret: &str| LocalOptions {
        port: Some(ports[index]),
        replication: Some(Replication {
            server_id: u16::try_from(index + 1).unwrap(),
            peers: vec![url(ports[1 - index])],
            secret: Secret::new(secret),
            join_credentials: (index == 1).then(|| top.path().join("0/credentials")),
        }),
        ..LocalOptions::default()
    };
    let replicator = "cn=replicator,ou=roleout,dc=example,dc=org";
    let mut first =
        LocalDirectory::persistent_with(top.path().join("0"), options(0, "old")).unwrap();
    let mut second =
        LocalDirectory::persistent_with(top.path().join("1"), options(1, "old")).unwrap();
    let (before, ldif) = organisational_unit("before-the-change");
    ldapadd(&first, &ldif);
    wait_for(&second, &before);
    first.stop().unwrap();
    second.stop().unwrap();
    drop((first, second));
    // As a state of an older Roleout, whose providers bound as the root
    // DN, the first's root DN has the old secret as its password.
    let hash = slappasswd("old");
    crate::slapd::modify_offline(
        &top.path().join("0"),
        &format!(
            "dn: olcDatabase={{1}}mdb,cn=config\nchangetype: modify\nreplace: olcRootPW\nolcRootPW: {hash}\n-\n"
        ),
    );

    // Both start again with the new secret: the account takes it, the old
    // one binds no more, and writes flow both ways again.
    let first = LocalDirectory::persistent_with(top.path().join("0"), options(0, "new")).unwrap();
    let second = LocalDirectory::persistent_with(top.path().join("1"), options(1, "new")).unwrap();
    for port in ports {
        assert_eq!(bind(port, replicator, "old"), Err(49));
        assert_eq!(bind(port, "cn=admin,dc=example,dc=org", "old"), Err(49));
    }
    writes_reach_every_provider(&[&second, &first], "after-the-change");
    for port in ports {
        assert_eq!(bind(port, replicator, "new"), Ok(()));
    }
}
