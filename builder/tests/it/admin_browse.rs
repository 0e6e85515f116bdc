//! Browsing and authoring with `roleout-admin` against a real slapd (the
//! managed one of a state directory, started here as roleoutd would, and
//! attached to by each run of the real binary): `ls`, `cd`, `show`,
//! `show --ldif` (checked against `ldapsearch`), `find` and `tree` on the
//! example catalog; `diff` of role versions; `version create`, `delete`
//! and `edit` (with a scripted editor: a valid edit, a broken one that is
//! kept and resumed, an edit outside the slot); roles and their member
//! machines; and one-line errors for unknown objects.

// Tests fail loudly by design.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use roleout_directory::{Directory, LocalDirectory};
use roleout_model::ids::MachineId;
use roleout_model::machine::Machine;

const BINARY: &str = env!("CARGO_BIN_EXE_roleout-admin");

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// A state directory with its slapd running, the example catalog imported
/// and the roles the examples use defined.
struct Fixture {
    state: tempfile::TempDir,
    local: LocalDirectory,
}

/// What one run of `roleout-admin` did.
struct Run {
    status: i32,
    stdout: String,
    stderr: String,
}

impl Fixture {
    fn new() -> Fixture {
        let state = tempfile::tempdir().unwrap();
        let local = LocalDirectory::persistent(state.path().join("ldap")).unwrap();
        let fixture = Fixture { state, local };
        let run = fixture.admin(&format!(
            "import {}; role create developer --rank 10; \
             role create administrator --rank 20 --description 'Server administrators'",
            examples().display()
        ));
        assert_eq!(run.status, 0, "{}{}", run.stdout, run.stderr);
        fixture
    }

    fn admin(&self, script: &str) -> Run {
        self.admin_with_editor(script, "false")
    }

    /// Runs `script` with `editor` as $EDITOR (and no $VISUAL).
    fn admin_with_editor(&self, script: &str, editor: &str) -> Run {
        let output = Command::new(BINARY)
            .arg("--state-dir")
            .arg(self.state.path())
            .args(["-c", script])
            .env("HOME", self.state.path())
            .env("XDG_DATA_HOME", self.state.path().join("data"))
            .env("EDITOR", editor)
            .env_remove("VISUAL")
            .env_remove("ROLEOUT_STATE_DIR")
            .output()
            .unwrap();
        Run {
            status: output.status.code().unwrap(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Writes an editor script that runs `body` with the file as $1.
    fn editor(&self, name: &str, body: &str) -> String {
        let path = self.state.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\nset -e\n{body}\n")).unwrap();
        let status = Command::new("chmod").arg("+x").arg(&path).status().unwrap();
        assert!(status.success());
        path.display().to_string()
    }
}

fn ok(run: &Run) -> &str {
    assert_eq!(
        run.status, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    &run.stdout
}

/// Asserts that the run failed with status 1 and one line on stderr that
/// contains `needle`.
fn one_line_failure(run: &Run, needle: &str) {
    assert_eq!(run.status, 1, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains(needle), "{}", run.stderr);
}

#[test]
fn ls_cd_show_find_and_tree_show_the_example_catalog() {
    let fixture = Fixture::new();

    let root = fixture.admin("ls");
    let root = ok(&root);
    assert!(root.contains("products/  6\n"), "{root}");
    assert!(root.contains("suites/  1\n"), "{root}");
    assert!(root.contains("roles/  2\n"), "{root}");

    let products = fixture.admin("ls /products");
    let products = ok(&products);
    assert!(
        products.contains(
            "notes-client  9.0.1  11 slot(s), role versions: administrator 2, developer 3"
        ),
        "{products}"
    );
    assert!(
        products.contains("jre  1.8.0_401  8 slot(s), default versions only"),
        "{products}"
    );

    // cd moves, relative paths and .. follow it.
    let product = fixture.admin("cd /suites; cd ../products/notes-client; ls");
    let product = ok(&product);
    assert!(
        product.contains("fileset: default, developer\n"),
        "{product}"
    );
    assert!(
        product.contains("variables: default, administrator\n"),
        "{product}"
    );
    assert!(
        product.contains("post-install: developer, administrator\n"),
        "{product}"
    );
    assert!(product.contains("install: default\n"), "{product}");
    let up = fixture.admin("cd /products/notes-client; cd ..; ls");
    assert_eq!(ok(&up), products);
    let suite = fixture.admin("cd /suites; ls domino");
    let suite = ok(&suite);
    assert!(
        suite.contains("member notes-designer (roles: developer)"),
        "{suite}"
    );
    assert!(
        suite.contains("member domino-admin (roles: administrator)"),
        "{suite}"
    );

    // show: the descriptor with every role version; the same from inside.
    let shown = fixture.admin("show /products/notes-client");
    let shown = ok(&shown);
    assert!(shown.contains("<fileset role=\"developer\">"), "{shown}");
    assert!(shown.contains("notes-sdk.tar.gz"), "{shown}");
    assert!(
        shown.contains("<variables role=\"administrator\">"),
        "{shown}"
    );
    let cat = fixture.admin("cd /products/notes-client; cat");
    assert_eq!(ok(&cat), shown);
    let role = fixture.admin("show /roles/administrator");
    let role = ok(&role);
    assert!(role.contains("rank: 20\n"), "{role}");
    assert!(
        role.contains("description: Server administrators\n"),
        "{role}"
    );

    let found = fixture.admin("find --kind product --role developer");
    assert_eq!(ok(&found), "/products/notes-client\n");
    let found = fixture.admin("find 'notes-*'");
    assert_eq!(
        ok(&found),
        "/products/notes-client\n/products/notes-designer\n/products/notes-help\n"
    );
    let found = fixture.admin("find --role administrator");
    assert_eq!(
        ok(&found),
        "/products/notes-client\n/suites/domino\n/roles/administrator\n"
    );

    let tree = fixture.admin("tree domino");
    let tree = ok(&tree);
    assert!(tree.starts_with("suite domino 9.0.1\n"), "{tree}");
    assert!(
        tree.contains(
            "  member notes-client >=9.0\n    product notes-client 9.0.1\n      description: default\n      size: default, developer\n"
        ),
        "{tree}"
    );
    assert!(
        tree.contains("      fileset: default, developer\n"),
        "{tree}"
    );
    assert!(
        tree.contains(
            "  member domino-admin (roles: administrator)\n    product domino-admin 9.0.1\n"
        ),
        "{tree}"
    );
}

#[test]
fn show_ldif_gives_the_entries_ldapsearch_finds() {
    let fixture = Fixture::new();
    let run = fixture.admin("show --ldif /products/notes-client");
    let ldif = ok(&run);
    assert!(ldif.contains("roleoutForRole: developer"), "{ldif}");
    assert!(ldif.contains("roleoutForRole: administrator"), "{ldif}");
    let shown_dns: Vec<String> = ldif
        .lines()
        .filter_map(|line| line.strip_prefix("dn: "))
        .map(str::to_lowercase)
        .collect();
    let search = Command::new("ldapsearch")
        .args([
            "-Q",
            "-LLL",
            "-o",
            "ldif-wrap=no",
            "-Y",
            "EXTERNAL",
            "-H",
            &fixture.local.ldapi_url(),
            "-b",
        ])
        .arg(format!(
            "cn=notes-client,ou=products,ou=roleout,{}",
            fixture.local.suffix()
        ))
        .args(["(objectClass=*)", "1.1"])
        .output()
        .unwrap();
    assert!(
        search.status.success(),
        "{}",
        String::from_utf8_lossy(&search.stderr)
    );
    let mut searched: Vec<String> = String::from_utf8_lossy(&search.stdout)
        .lines()
        .filter_map(|line| line.strip_prefix("dn: "))
        .map(str::to_lowercase)
        .collect();
    let mut shown_sorted = shown_dns.clone();
    shown_sorted.sort();
    searched.sort();
    assert_eq!(shown_sorted, searched);
    assert_eq!(shown_dns.len(), 16);

    let role = fixture.admin("show --ldif /roles/developer");
    let role = ok(&role);
    assert!(
        role.starts_with("dn: cn=developer,ou=roles,ou=roleout,dc=example,dc=org\n"),
        "{role}"
    );
    assert!(role.contains("roleoutRank: 10\n"), "{role}");
}

#[test]
fn diff_compares_slot_versions_and_whole_products_by_role() {
    let fixture = Fixture::new();
    let run = fixture.admin("diff notes-client --slot fileset --role developer");
    let diff = ok(&run);
    assert!(
        diff.starts_with(
            "--- notes-client fileset (default)\n+++ notes-client fileset (developer)\n"
        ),
        "{diff}"
    );
    let added: Vec<&str> = diff.lines().filter(|line| line.starts_with("+ ")).collect();
    assert_eq!(added.len(), 1, "{diff}");
    assert!(
        added[0].contains("<file path=\"notes-sdk.tar.gz\""),
        "{diff}"
    );
    assert!(!diff.lines().any(|line| line.starts_with("- ")), "{diff}");

    let run = fixture.admin("diff notes-client --slot fileset --role default --against developer");
    let reverse = ok(&run);
    assert!(
        reverse.contains("-    <file path=\"notes-sdk.tar.gz\""),
        "{reverse}"
    );

    let run = fixture.admin("diff notes-client --role default --role developer");
    let whole = ok(&run);
    assert!(
        whole.contains("-  <size installed=\"4096\"/>\n+  <size installed=\"8192\"/>\n"),
        "{whole}"
    );
    assert!(
        whole.contains("+    <file path=\"notes-sdk.tar.gz\""),
        "{whole}"
    );
    assert!(
        whole.contains("+  <post-install kind=\"tarball\""),
        "{whole}"
    );
    assert!(!whole.contains("admin_password"), "{whole}");

    let same = fixture.admin("diff jre --slot fileset --role default");
    assert_eq!(ok(&same), "jre fileset: default and default are the same\n");
}

#[test]
fn version_create_and_delete_round_trip_and_import_restores() {
    let fixture = Fixture::new();
    let created =
        fixture.admin("version create notes-client install --role developer --from default");
    let created = ok(&created);
    assert!(
        created.contains(
            "product notes-client: install version for role developer created from default"
        ),
        "{created}"
    );
    let listed = fixture.admin("ls /products/notes-client; show /products/notes-client");
    let listed = ok(&listed);
    assert!(listed.contains("install: default, developer\n"), "{listed}");
    assert!(listed.contains("<install role=\"developer\""), "{listed}");

    // A second copy for the same role is refused; nothing changes.
    let again = fixture.admin("version create notes-client install --role developer");
    one_line_failure(
        &again,
        "already has a version of install for role developer",
    );

    let deleted = fixture
        .admin("version delete notes-client install --role developer; ls /products/notes-client");
    let deleted = ok(&deleted);
    assert!(deleted.contains("install: default\n"), "{deleted}");
    // The only version of a slot stays.
    let last = fixture.admin("version delete notes-client post-install --role developer; version delete notes-client post-install --role administrator");
    one_line_failure(&last, "is the slot's only version");

    // A change made here is undone by importing the descriptors again.
    let changed = fixture.admin("version create notes-client uninstall --role administrator");
    ok(&changed);
    let import = fixture.admin(&format!("import {}", examples().display()));
    let import = ok(&import);
    assert!(
        import.contains("product notes-client 9.0.1: updated"),
        "{import}"
    );
    let restored = fixture.admin("ls /products/notes-client");
    let restored = ok(&restored);
    assert!(restored.contains("uninstall: default\n"), "{restored}");
    // The developer's post-install, deleted above, is back.
    assert!(
        restored.contains("post-install: developer, administrator\n"),
        "{restored}"
    );
}

#[test]
fn version_edit_stores_valid_edits_and_keeps_refused_ones() {
    let fixture = Fixture::new();
    let valid = fixture.editor(
        "valid-editor",
        "grep -q 'fileset role=\"developer\"' \"$1\"\nsed -i 's/size=\"224\"/size=\"225\"/' \"$1\"",
    );
    let run =
        fixture.admin_with_editor("version edit notes-client fileset --role developer", &valid);
    let stored = ok(&run);
    assert!(
        stored.contains("product notes-client: fileset version for developer stored"),
        "{stored}"
    );
    let shown = fixture.admin("show /products/notes-client");
    let shown = ok(&shown);
    assert!(shown.contains("size=\"225\""), "{shown}");
    assert!(!shown.contains("size=\"224\""), "{shown}");

    // A broken edit: refused, nothing stored, the text kept where it says.
    let saved = fixture.state.path().join("before-breaking.xml");
    let broken = fixture.editor(
        "broken-editor",
        &format!(
            "cp \"$1\" '{}'\nprintf '<product id=\"notes-client\"' > \"$1\"",
            saved.display()
        ),
    );
    let run = fixture.admin_with_editor(
        "version edit notes-client fileset --role developer",
        &broken,
    );
    assert_eq!(run.status, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("error: malformed XML"),
        "{}",
        run.stderr
    );
    let message = run.stderr.lines().last().unwrap();
    assert!(message.contains("nothing was stored"), "{message}");
    let kept = message
        .split("the edit is kept in ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .unwrap()
        .to_owned();
    assert_eq!(
        std::fs::read_to_string(&kept).unwrap(),
        "<product id=\"notes-client\""
    );
    let unchanged = fixture.admin("show /products/notes-client");
    assert_eq!(ok(&unchanged), shown);

    // --resume continues from the kept file.
    let fixing = fixture.editor(
        "fixing-editor",
        &format!(
            "grep -q '<product id=\"notes-client\"' \"$1\"\nsed 's/size=\"225\"/size=\"226\"/' '{}' > \"$1\"",
            saved.display()
        ),
    );
    let run = fixture.admin_with_editor(
        &format!("version edit notes-client fileset --role developer --resume {kept}"),
        &fixing,
    );
    ok(&run);
    assert!(
        !Path::new(&kept).exists(),
        "a stored edit leaves no file behind"
    );
    let shown = fixture.admin("diff notes-client --slot fileset --role developer");
    assert!(ok(&shown).contains("size=\"226\""));

    // Changes outside the slot are refused.
    let outside = fixture.editor(
        "outside-editor",
        "sed -i 's/priority=\"20\"/priority=\"21\"/' \"$1\"",
    );
    let run = fixture.admin_with_editor(
        "version edit notes-client fileset --role developer",
        &outside,
    );
    assert_eq!(run.status, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("only the fileset element may change"),
        "{}",
        run.stderr
    );
    let priority = fixture.admin("show /products/notes-client");
    assert!(ok(&priority).contains("priority=\"20\""));
}

#[test]
fn roles_are_created_listed_and_given_machines() {
    let fixture = Fixture::new();
    // A machine as enrolment would make it, through the directory crate.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let directory = Directory::connect(&fixture.local.settings()).await.unwrap();
        let mut facts = std::collections::BTreeMap::new();
        facts.insert("site".to_owned(), "berlin".to_owned());
        directory
            .create_machine(&Machine {
                name: MachineId::new("ws-001").unwrap(),
                ip: Some("192.0.2.10".to_owned()),
                os: Some("linux".to_owned()),
                arch: Some("x86_64".to_owned()),
                facts,
                products: Vec::new(),
            })
            .await
            .unwrap();
    });

    let run = fixture.admin(
        "role create senior-developer --rank 15 --parent developer --description 'Leads'; role list",
    );
    let listed = ok(&run);
    assert!(
        listed.contains("role senior-developer created (cn=senior-developer,"),
        "{listed}"
    );
    assert!(
        listed.contains("senior-developer  rank 15  parent developer  0 member(s)  Leads\n"),
        "{listed}"
    );
    assert!(
        listed.contains("developer  rank 10  0 member(s)\n"),
        "{listed}"
    );

    let run = fixture
        .admin("role add-member developer ws-001; show /roles/developer; show /machines/ws-001");
    let shown = ok(&run);
    assert!(shown.contains("members: ws-001\n"), "{shown}");
    assert!(shown.contains("roles: developer\n"), "{shown}");
    assert!(shown.contains("fact site: berlin\n"), "{shown}");
    assert!(shown.contains("ip: 192.0.2.10\n"), "{shown}");
    let found =
        fixture.admin("find --kind machine --role developer; find --kind role --role developer");
    assert_eq!(
        ok(&found),
        "/machines/ws-001\n/roles/developer\n/roles/senior-developer\n"
    );

    let run = fixture.admin("role remove-member developer ws-001; show /roles/developer");
    let removed = ok(&run);
    assert!(removed.contains("members: \n"), "{removed}");

    let duplicate = fixture.admin("role create developer --rank 3");
    one_line_failure(&duplicate, "role developer exists already");
    let orphan = fixture.admin("role create tester --rank 3 --parent nobody");
    one_line_failure(&orphan, "no parent role \"nobody\"");
}

#[test]
fn unknown_objects_fail_with_one_line() {
    let fixture = Fixture::new();
    for (script, needle) in [
        ("show /products/nope", "no product \"nope\" in the catalog"),
        ("cd /suites/nope", "no suite \"nope\" in the catalog"),
        ("ls /builds", "no such place /builds"),
        ("show /roles/nobody", "no role \"nobody\" in the directory"),
        (
            "show /machines/ghost",
            "no machine \"ghost\" in the directory",
        ),
        ("tree nope", "nope"),
        (
            "diff nope --slot fileset --role developer",
            "no product or suite \"nope\"",
        ),
        (
            "diff notes-client --slot fileset --role tester",
            "has no fileset version for tester",
        ),
        (
            "diff notes-client --slot bogus --role developer",
            "has no slot \"bogus\"",
        ),
        (
            "diff notes-client --role default --role nobody",
            "role nobody is not defined",
        ),
        (
            "version create nope fileset --role developer",
            "no product or suite \"nope\"",
        ),
        (
            "version delete notes-client fileset --role administrator",
            "no fileset version for role administrator",
        ),
        (
            "role add-member nobody ws-001",
            "no role \"nobody\" in the directory",
        ),
        (
            "role add-member developer ghost",
            "no machine \"ghost\" in the directory",
        ),
        ("find --role nobody", "no role \"nobody\""),
    ] {
        let run = fixture.admin(script);
        one_line_failure(&run, needle);
    }
}
