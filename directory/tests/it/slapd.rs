//! The embedded slapd: it starts with the base DIT that the real
//! `ldapsearch` sees, enforces the access rules, survives restarts in
//! persistent mode and explains what is missing when slapd is not installed;
//! the access rules hold for the admin, builder and anonymous accounts.

use std::process::Command;

use roleout_directory::local::LocalOptions;
use roleout_directory::{Directory, DirectoryError, LocalDirectory};

use crate::{certificate, ldap_tool_as, ldapadd, ldapsearch, machine, role, role_name};

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
    ldapadd(
        &first,
        "dn: ou=kept,ou=roleout,dc=example,dc=org\nobjectClass: organizationalUnit\nou: kept\n",
    );
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

#[tokio::test]
async fn access_rules_separate_admins_builder_and_anonymous() {
    let local = LocalDirectory::temporary().unwrap();
    let admin = Directory::connect(&local.admin_settings()).await.unwrap();
    let builder = Directory::connect(&local.builder_settings()).await.unwrap();
    let anonymous = Directory::connect(&local.anonymous_settings())
        .await
        .unwrap();

    // Admins write roles and machines.
    admin
        .create_role(&role("developer", 20, None))
        .await
        .unwrap();
    let machine_dn = admin.create_machine(&machine("pc-1")).await.unwrap();
    admin
        .add_role_member(&role_name("developer"), &machine_dn)
        .await
        .unwrap();

    // The builder reads them ...
    assert_eq!(
        builder.machine_roles(&machine_dn).await.unwrap(),
        vec![role_name("developer")]
    );
    assert!(builder.machine_at(&machine_dn).await.unwrap().is_some());
    // ... records enrolment data ...
    builder
        .set_machine_certificate(&machine_dn, &certificate("pc-1"))
        .await
        .unwrap();
    builder.mark_machine_pending(&machine_dn).await.unwrap();
    // ... but neither enables machines nor changes roles.
    let error = builder.approve_machine(&machine_dn).await.unwrap_err();
    assert!(error.is_insufficient_access(), "{error}");
    let error = builder
        .create_role(&role("intruder", 99, None))
        .await
        .unwrap_err();
    assert!(error.is_insufficient_access(), "{error}");
    let error = builder
        .add_role_member(&role_name("developer"), "cn=other,dc=example,dc=org")
        .await
        .unwrap_err();
    assert!(error.is_insufficient_access(), "{error}");

    // The builder writes builds and reports, not the catalog.
    let build = "dn: cn=probe,ou=builds,ou=roleout,dc=example,dc=org\nobjectClass: applicationProcess\ncn: probe\n";
    let added = ldap_tool_as(&local, "ldapadd", "roleoutd", &[], build);
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let report = "dn: cn=probe,ou=reports,ou=roleout,dc=example,dc=org\nobjectClass: applicationProcess\ncn: probe\n";
    assert!(
        ldap_tool_as(&local, "ldapadd", "roleoutd", &[], report)
            .status
            .success()
    );
    let product = "dn: cn=probe,ou=products,ou=roleout,dc=example,dc=org\nobjectClass: applicationProcess\ncn: probe\n";
    let refused = ldap_tool_as(&local, "ldapadd", "roleoutd", &[], product);
    assert_eq!(
        refused.status.code(),
        Some(50),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(
        ldap_tool_as(&local, "ldapadd", "admin", &[], product)
            .status
            .success()
    );
    assert_eq!(
        builder
            .subtree_dns("ou=builds,ou=roleout,dc=example,dc=org")
            .await
            .unwrap()
            .len(),
        2
    );

    // Anonymous sees nothing at all.
    for base in [
        "ou=roles,ou=roleout,dc=example,dc=org",
        "ou=machines,ou=roleout,dc=example,dc=org",
        "dc=example,dc=org",
    ] {
        let seen = anonymous.subtree_dns(base).await;
        assert!(
            matches!(seen, Ok(ref dns) if dns.is_empty())
                || seen.as_ref().is_err_and(DirectoryError::is_no_such_object),
            "anonymous saw {seen:?} under {base}"
        );
    }
    assert!(
        anonymous
            .machine_roles(&machine_dn)
            .await
            .unwrap_or_default()
            .is_empty()
    );
    // Password hashes are readable by nobody but the root, not even by
    // their owner.
    for account in ["roleoutd", "admin"] {
        let read = ldap_tool_as(
            &local,
            "ldapsearch",
            account,
            &[
                "-LLL",
                "-b",
                "ou=roleout,dc=example,dc=org",
                "(cn=*)",
                "userPassword",
            ],
            "",
        );
        assert!(
            read.status.success(),
            "{}",
            String::from_utf8_lossy(&read.stderr)
        );
        let text = String::from_utf8_lossy(&read.stdout);
        assert!(
            text.contains("dn: cn=roleoutd,ou=roleout,dc=example,dc=org"),
            "{text}"
        );
        assert!(!text.contains("userPassword"), "{text}");
    }
    let root = ldapsearch(
        &local,
        "cn=roleoutd,ou=roleout,dc=example,dc=org",
        &["-s", "base", "userPassword"],
    );
    assert!(root.contains("userPassword"), "{root}");
}

#[tokio::test]
async fn another_suffix_moves_the_whole_layout() {
    let local = LocalDirectory::temporary_with(LocalOptions {
        suffix: "dc=corp,dc=test".to_owned(),
        ..LocalOptions::default()
    })
    .unwrap();
    assert_eq!(local.base(), "ou=roleout,dc=corp,dc=test");
    let builder = Directory::connect(&local.builder_settings()).await.unwrap();
    assert_eq!(
        builder.layout().roles(),
        "ou=roles,ou=roleout,dc=corp,dc=test"
    );
    let dns = builder.subtree_dns("dc=corp,dc=test").await.unwrap();
    assert!(
        dns.contains(&"ou=reports,ou=roleout,dc=corp,dc=test".to_owned()),
        "{dns:?}"
    );
    let admin = Directory::connect(&local.admin_settings()).await.unwrap();
    admin.create_role(&role("end-user", 1, None)).await.unwrap();
    assert!(
        builder
            .role(&role_name("end-user"))
            .await
            .unwrap()
            .is_some()
    );
}

#[test]
fn slapd_failing_at_start_reports_the_tail_of_its_log() {
    let state = tempfile::tempdir().unwrap();
    drop(LocalDirectory::persistent(state.path()).unwrap());
    // Point the database at a directory that does not exist.
    let database = state
        .path()
        .join("slapd.d/cn=config/olcDatabase={1}mdb.ldif");
    let text = std::fs::read_to_string(&database).unwrap();
    let broken: String = text
        .lines()
        .map(|line| {
            if line.starts_with("olcDbDirectory:") {
                "olcDbDirectory: /nonexistent/roleout-data".to_owned()
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&database, broken + "\n").unwrap();
    let error = LocalDirectory::persistent(state.path()).unwrap_err();
    let DirectoryError::Slapd { message, log_tail } = &error else {
        panic!("expected a slapd error, got {error}");
    };
    assert!(message.contains("exited during start-up"), "{message}");
    assert!(
        log_tail.contains("olcDbDirectory: value #0: invalid path"),
        "{log_tail}"
    );
    assert!(error.to_string().contains(log_tail.as_str()));
}

/// `schema` (an LDIF, folded) unfolded, without comment lines.
fn unfolded(schema: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for line in schema.lines().filter(|line| !line.starts_with('#')) {
        match (line.strip_prefix(' '), lines.last_mut()) {
            (Some(continued), Some(last)) => last.push_str(continued),
            _ => lines.push(line.to_owned()),
        }
    }
    lines
}

/// Applies `ldif` to the configuration of the stopped directory at
/// `path` with the real `slapmodify`, as an older Roleout's state would
/// have it.
pub(crate) fn modify_offline(path: &std::path::Path, ldif: &str) {
    let change = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(change.path(), ldif).unwrap();
    let slapmodify = Command::new("/usr/sbin/slapmodify")
        .args(["-n0", "-F"])
        .arg(path.join("slapd.d"))
        .arg("-l")
        .arg(change.path())
        .output()
        .unwrap();
    assert!(slapmodify.status.success(), "{slapmodify:?}");
}

#[test]
fn a_state_made_with_an_older_schema_gets_the_current_one() {
    let state = tempfile::tempdir().unwrap();
    let path = state.path().join("directory");
    drop(LocalDirectory::persistent(&path).unwrap());
    // Make it a state of a Roleout from before roleoutRemoveWhenUnassigned.
    let older: String = unfolded(roleout_directory::schema::ROLEOUT_LDIF)
        .into_iter()
        .filter(|line| !line.contains("NAME 'roleoutRemoveWhenUnassigned'"))
        .map(|line| line.replace(" $ roleoutRemoveWhenUnassigned", ""))
        .map(|line| line + "\n")
        .collect();
    assert!(!older.contains("roleoutRemoveWhenUnassigned"));
    let schemas = path.join("slapd.d/cn=config/cn=schema");
    let rdn = std::fs::read_dir(&schemas)
        .unwrap()
        .filter_map(|entry| entry.unwrap().file_name().into_string().ok())
        .find(|name| name.ends_with("}roleout.ldif"))
        .unwrap()
        .trim_end_matches(".ldif")
        .to_owned();
    modify_offline(
        &path,
        &roleout_directory::local::schema_replacement(&rdn, &older),
    );
    std::fs::write(path.join("roleout.ldif"), &older).unwrap();
    let in_config = |path: &std::path::Path| {
        std::fs::read_to_string(schemas.join(format!("{rdn}.ldif")))
            .unwrap()
            .contains("roleoutRemoveWhenUnassigned")
            && path.exists()
    };
    assert!(!in_config(&path), "the state is older now");

    // Reopened by today's Roleout: the schema is brought up to date, and a
    // command that says remove-when-unassigned is stored and read back.
    let reopened = LocalDirectory::persistent(&path).unwrap();
    assert!(in_config(&path));
    let parsed = roleout_model::descriptor::parse(
        "tool.xml",
        br#"<product xmlns="urn:roleout:descriptor:1" id="tool" version="1.0">
  <install><arg>/bin/true</arg></install>
  <uninstall remove-when-unassigned="true"><arg>/bin/true</arg></uninstall>
</product>"#,
    );
    let Some(roleout_model::descriptor::Descriptor::Product(product)) = parsed.descriptor else {
        panic!("{:?}", parsed.diagnostics);
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let admin = Directory::connect(&reopened.admin_settings())
            .await
            .unwrap();
        admin.store_product(&product).await.unwrap();
        let read = admin.load_product(&product.id).await.unwrap();
        let uninstall = read
            .commands
            .get(&roleout_model::command::Phase::Uninstall)
            .and_then(|versions| versions.default_version())
            .unwrap();
        assert!(uninstall.remove_when_unassigned);
    });
}

/// A state made by a Roleout whose access rules did not let roleoutd write
/// a machine's hardware gets today's rules when it is opened, and roleoutd
/// may then write it.
#[test]
fn a_state_made_with_older_access_rules_gets_the_current_ones() {
    let state = tempfile::tempdir().unwrap();
    let path = state.path().join("directory");
    drop(LocalDirectory::persistent(&path).unwrap());
    let current = std::fs::read_to_string(path.join("access.ldif")).unwrap();
    // An older Roleout's rules: no hardware or leases for roleoutd to
    // write, no replicator, and one limit for everyone.
    let older: String = current
        .lines()
        .filter(|line| line.starts_with("olcAccess:") && !line.contains("cn=replicator"))
        .enumerate()
        .map(|(index, line)| {
            let rule = line.split_once('}').unwrap().1;
            format!("olcAccess: {{{index}}}{rule}\n")
        })
        .collect::<String>()
        .replace(",roleoutHardware,roleoutHardwareKey,roleoutLease", "");
    assert_ne!(older, current);
    modify_offline(
        &path,
        &format!(
            "dn: olcDatabase={{1}}mdb,cn=config\nchangetype: modify\nreplace: olcAccess\n{older}-\n\
             replace: olcLimits\nolcLimits: {{0}}* size=unlimited\n-\n"
        ),
    );
    std::fs::write(path.join("access.ldif"), &older).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let hardware: roleout_model::inventory::Inventory = serde_json::from_str(
        r#"{"arch":"x86_64","firmware":"bios","cpu":{"model":"m","vendor":"v","logical":1,"sockets":1},"memory-bytes":1024,"disks":[],"nics":[],"pci":[]}"#,
    )
    .unwrap();
    let database = path.join("slapd.d/cn=config/olcDatabase={1}mdb.ldif");
    let lets_roleoutd_write_hardware = || {
        unfolded(&std::fs::read_to_string(&database).unwrap())
            .iter()
            .any(|line| line.contains("roleoutArch,roleoutHardware"))
    };
    let limits_the_replicator = || {
        unfolded(&std::fs::read_to_string(&database).unwrap())
            .iter()
            .any(|line| {
                line.starts_with("olcLimits: {0}dn.exact=\"cn=replicator,")
                    && line.ends_with("size=unlimited time=unlimited")
            })
    };
    assert!(!lets_roleoutd_write_hardware(), "the state is older now");
    assert!(!limits_the_replicator(), "the state is older now");
    let reopened = LocalDirectory::persistent(&path).unwrap();
    assert!(lets_roleoutd_write_hardware());
    assert!(limits_the_replicator());
    assert_eq!(
        std::fs::read_to_string(path.join("access.ldif")).unwrap(),
        current
    );
    runtime.block_on(async {
        let admin = Directory::connect(&reopened.admin_settings())
            .await
            .unwrap();
        let dn = admin.create_machine(&machine("hw-upgrade")).await.unwrap();
        let builder = Directory::connect(&reopened.builder_settings())
            .await
            .unwrap();
        builder
            .set_machine_hardware(&dn, Some(&hardware))
            .await
            .unwrap();
        assert_eq!(admin.machine_hardware(&dn).await.unwrap(), Some(hardware));
    });
}

/// A state made before the database indexed `entryUUID` and `entryCSN`
/// (which replication looks entries up by), with a 1 GiB size limit, gets
/// both indexes, built over the entries it already holds, and the larger
/// limit when reopened: an equality search by `entryUUID`
/// finds an entry added before the upgrade.
#[test]
fn a_state_made_with_fewer_indexes_gains_and_builds_them_when_reopened() {
    let state = tempfile::tempdir().unwrap();
    let path = state.path().join("directory");
    let old_indexes = "olcDbIndex: objectClass eq\nolcDbIndex: cn eq\n";
    let old_settings = format!("olcDbMaxSize: 1073741824\n{old_indexes}");
    {
        let mut local = LocalDirectory::persistent(&path).unwrap();
        local.stop().unwrap();
        // What an older Roleout left: fewer indexes, and its copy of them.
        let change = path.join("old-indexes.ldif");
        std::fs::write(
            &change,
            format!(
                "dn: olcDatabase={{1}}mdb,cn=config\nchangetype: modify\n\
                 replace: olcDbMaxSize\nolcDbMaxSize: 1073741824\n-\n\
                 replace: olcDbIndex\n{old_indexes}-\n"
            ),
        )
        .unwrap();
        let output = Command::new("slapmodify")
            .arg("-n0")
            .arg("-F")
            .arg(local.config_dir())
            .arg("-l")
            .arg(&change)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        // An entry stored while entryUUID was not indexed.
        local.start().unwrap();
        ldapadd(
            &local,
            "dn: ou=later,dc=example,dc=org\nobjectClass: organizationalUnit\nou: later\n",
        );
        local.stop().unwrap();
        std::fs::write(path.join("indexes.ldif"), old_settings).unwrap();
    }
    let reopened = LocalDirectory::persistent(&path).unwrap();
    let config = ldapsearch(
        &reopened,
        "olcDatabase={1}mdb,cn=config",
        &["-s", "base", "olcDbIndex", "olcDbMaxSize"],
    );
    assert!(config.contains("olcDbMaxSize: 68719476736"), "{config}");
    for attribute in ["entryUUID", "entryCSN", "member", "roleoutHardwareKey"] {
        assert!(
            config.contains(&format!("olcDbIndex: {attribute} eq")),
            "{config}"
        );
    }
    let later = "ou=later,dc=example,dc=org";
    let uuid = ldapsearch(&reopened, later, &["-s", "base", "entryUUID"]);
    let uuid = uuid
        .lines()
        .find_map(|line| line.strip_prefix("entryUUID: "))
        .unwrap()
        .to_owned();
    let found = ldapsearch(
        &reopened,
        "dc=example,dc=org",
        &[&format!("(entryUUID={uuid})"), "1.1"],
    );
    assert!(found.contains(&format!("dn: {later}")), "{found}");
}
