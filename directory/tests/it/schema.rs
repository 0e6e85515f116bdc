//! The generated schema files load into stock OpenLDAP: the LDIF with
//! `slapadd -n0` beside core, cosine and inetorgperson (with and without
//! nis) and with `ldapadd` into a running server's cn=config; the
//! slapd.conf form with `slaptest`. Entries using the classes are then
//! accepted.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use roleout_directory::schema::{ROLEOUT_LDIF, ROLEOUT_SCHEMA};

fn schema_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../schemas")
        .join(name)
}

/// A minimal cn=config: the given stock schemas, maybe Roleout's, an mdb
/// database, and root access over ldapi for the current user.
fn config(directory: &Path, stock: &[&str], with_roleout: bool) -> String {
    let uid = nix::unistd::getuid();
    let gid = nix::unistd::getgid();
    let mut text = format!(
        "dn: cn=config\nobjectClass: olcGlobal\ncn: config\n\
         olcAuthzRegexp: {{0}}\"gidNumber={gid}\\+uidNumber={uid},cn=peercred,cn=external,cn=auth\" \"cn=root,dc=example,dc=org\"\n\n\
         dn: cn=module{{0}},cn=config\nobjectClass: olcModuleList\ncn: module{{0}}\n\
         olcModulePath: /usr/lib/ldap\nolcModuleLoad: back_mdb\n\n\
         dn: cn=schema,cn=config\nobjectClass: olcSchemaConfig\ncn: schema\n\n"
    );
    for name in stock {
        text.push_str(&format!("include: file:///etc/ldap/schema/{name}.ldif\n\n"));
    }
    if with_roleout {
        text.push_str(&format!(
            "include: file://{}\n\n",
            schema_file("roleout.ldif").display()
        ));
    }
    text.push_str(&format!(
        "dn: olcDatabase={{0}}config,cn=config\nobjectClass: olcDatabaseConfig\nolcDatabase: {{0}}config\n\
         olcAccess: {{0}}to * by dn.exact=\"cn=root,dc=example,dc=org\" manage by * none\n\n\
         dn: olcDatabase={{1}}mdb,cn=config\nobjectClass: olcDatabaseConfig\nobjectClass: olcMdbConfig\n\
         olcDatabase: {{1}}mdb\nolcSuffix: dc=example,dc=org\nolcRootDN: cn=root,dc=example,dc=org\n\
         olcDbDirectory: {}\n",
        directory.join("data").display()
    ));
    text
}

/// Builds slapd.d with slapadd -n0; returns slapadd's output on failure.
fn slapadd_config(directory: &Path, config_text: &str) -> Result<(), String> {
    std::fs::create_dir_all(directory.join("slapd.d")).unwrap();
    std::fs::create_dir_all(directory.join("data")).unwrap();
    let config_path = directory.join("config.ldif");
    std::fs::write(&config_path, config_text).unwrap();
    let output = Command::new("slapadd")
        .args(["-n0", "-F"])
        .arg(directory.join("slapd.d"))
        .arg("-l")
        .arg(&config_path)
        .output()
        .unwrap();
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// The suffix entry, valid with the stock schemas alone.
const SUFFIX_ENTRY: &str = "dn: dc=example,dc=org\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: x\n\n";

/// A machine and a role that only load with Roleout's schema.
const ROLEOUT_ENTRIES: &str = "dn: cn=pc-1,dc=example,dc=org\nobjectClass: device\nobjectClass: pkiUser\n\
objectClass: roleoutMachine\ncn: pc-1\nroleoutEnabled: TRUE\nroleoutEnrolment: pending\nroleoutFact: cores=8\n\
roleoutLastSeen: 20260101120000Z\n\n\
dn: cn=dev,dc=example,dc=org\nobjectClass: groupOfNames\nobjectClass: roleoutRole\ncn: dev\n\
member: cn=pc-1,dc=example,dc=org\nroleoutRank: 20\n";

/// Loads the suffix and Roleout's entries offline with slapadd, the
/// configuration given by `configuration` (`-F DIR -n1` or `-f FILE -b SUFFIX`).
fn slapadd_entries(directory: &Path, configuration: &[&std::ffi::OsStr]) -> Result<(), String> {
    let path = directory.join("entries.ldif");
    std::fs::write(&path, format!("{SUFFIX_ENTRY}{ROLEOUT_ENTRIES}")).unwrap();
    let output = Command::new("slapadd")
        .args(configuration)
        .arg("-l")
        .arg(&path)
        .output()
        .unwrap();
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

fn config_directory(directory: &Path) -> Vec<std::ffi::OsString> {
    vec![
        "-n1".into(),
        "-F".into(),
        directory.join("slapd.d").into_os_string(),
    ]
}

fn as_args(arguments: &[std::ffi::OsString]) -> Vec<&std::ffi::OsStr> {
    arguments
        .iter()
        .map(|argument| argument.as_os_str())
        .collect()
}

#[test]
fn checked_in_files_are_the_ones_compiled_in() {
    assert_eq!(
        std::fs::read_to_string(schema_file("roleout.ldif")).unwrap(),
        ROLEOUT_LDIF
    );
    assert_eq!(
        std::fs::read_to_string(schema_file("roleout.schema")).unwrap(),
        ROLEOUT_SCHEMA
    );
}

#[test]
fn the_ldif_loads_with_slapadd_beside_the_stock_schemas() {
    for stock in [
        &["core", "cosine", "inetorgperson"][..],
        &["core", "cosine", "inetorgperson", "nis"][..],
    ] {
        let directory = tempfile::tempdir().unwrap();
        slapadd_config(directory.path(), &config(directory.path(), stock, true))
            .unwrap_or_else(|log| panic!("with {stock:?}: {log}"));
        slapadd_entries(
            directory.path(),
            &as_args(&config_directory(directory.path())),
        )
        .unwrap_or_else(|log| panic!("entries with {stock:?}: {log}"));
    }
    // Without Roleout's schema the same entries are refused: the test
    // above is not vacuous.
    let directory = tempfile::tempdir().unwrap();
    slapadd_config(
        directory.path(),
        &config(
            directory.path(),
            &["core", "cosine", "inetorgperson"],
            false,
        ),
    )
    .unwrap();
    assert!(
        slapadd_entries(
            directory.path(),
            &as_args(&config_directory(directory.path()))
        )
        .is_err()
    );
}

#[test]
fn the_slapd_conf_form_passes_slaptest() {
    let directory = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(directory.path().join("data")).unwrap();
    let conf = format!(
        "include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\n\
         include /etc/ldap/schema/inetorgperson.schema\ninclude {}\n\
         modulepath /usr/lib/ldap\nmoduleload back_mdb\n\
         database mdb\nsuffix \"dc=example,dc=org\"\nrootdn \"cn=root,dc=example,dc=org\"\ndirectory {}\n",
        schema_file("roleout.schema").display(),
        directory.path().join("data").display()
    );
    let conf_path = directory.path().join("slapd.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let output = Command::new("slaptest")
        .arg("-u")
        .arg("-f")
        .arg(&conf_path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The same configuration takes entries using Roleout's classes.
    let arguments: Vec<std::ffi::OsString> = vec![
        "-f".into(),
        conf_path.into_os_string(),
        "-b".into(),
        "dc=example,dc=org".into(),
    ];
    slapadd_entries(directory.path(), &as_args(&arguments)).unwrap();
}

/// A slapd child killed on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_ldif_loads_into_a_running_server_with_ldapadd() {
    let directory = tempfile::tempdir().unwrap();
    slapadd_config(
        directory.path(),
        &config(
            directory.path(),
            &["core", "cosine", "inetorgperson", "nis"],
            false,
        ),
    )
    .unwrap();
    let socket = directory.path().join("ldapi");
    let url = format!(
        "ldapi://{}",
        socket.display().to_string().replace('/', "%2F")
    );
    let _server = Server(
        Command::new("slapd")
            .arg("-F")
            .arg(directory.path().join("slapd.d"))
            .args(["-h", &url, "-d", "none"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let ldap = |tool: &str, input: &str| {
        let mut child = Command::new(tool)
            .args(["-Q", "-Y", "EXTERNAL", "-H", &url])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !socket.exists()
        || !Command::new("ldapwhoami")
            .args(["-Q", "-Y", "EXTERNAL", "-H", &url])
            .output()
            .unwrap()
            .status
            .success()
    {
        assert!(Instant::now() < deadline, "slapd did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let suffix = ldap("ldapadd", SUFFIX_ENTRY);
    assert!(
        suffix.status.success(),
        "{}",
        String::from_utf8_lossy(&suffix.stderr)
    );
    // Before: Roleout's entries are refused.
    let refused = ldap("ldapadd", ROLEOUT_ENTRIES);
    assert!(!refused.status.success());
    let added = ldap("ldapadd", ROLEOUT_LDIF);
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    // After: they load over the wire.
    let accepted = ldap("ldapadd", ROLEOUT_ENTRIES);
    assert!(
        accepted.status.success(),
        "{}",
        String::from_utf8_lossy(&accepted.stderr)
    );
}
