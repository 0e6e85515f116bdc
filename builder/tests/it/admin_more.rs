//! Customizing, grouping, planning and watching with `roleout-admin`
//! against a real slapd (the managed one of a state directory, started
//! here as roleoutd would, and attached to by each run of the real
//! binary): `customize` from a script on standard input (a wrong answer
//! fails naming the rule; good answers are stored and shown back; a
//! password is checked, never echoed and never stored), `group`
//! create/add-machine/choose/export and import of the `.ini` file into a
//! fresh directory (and an import refused whole), `plan` for a developer
//! machine, `status` and `status --machine` from reports stored with the
//! directory API with their logs in the content store, and `machine list`.

// Tests fail loudly by design.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use roleout_builder::content::ContentStore;
use roleout_directory::{Directory, LocalDirectory};
use roleout_model::ids::{MachineId, ProductId, Sha256, SuiteId};
use roleout_model::machine::Machine;
use roleout_model::protocol::{
    AckStatus, ReportOutcome, ReportStep, RunSummary, StatusReport, SuiteComplete, Timestamp,
};

const BINARY: &str = env!("CARGO_BIN_EXE_roleout-admin");

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// A suite with a password variable, beside the examples.
const KIOSK: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<suite xmlns="urn:roleout:descriptor:1" id="kiosk" version="1.0">
  <variables>
    <string name="greeting" default="Welcome" max-length="20"/>
    <password name="kiosk_pin" min-length="4"/>
    <integer name="screens" default="1" min="1" max="4"/>
  </variables>
  <presentation>
    <variable name="screens" order="1">
      <label lang="en">Screens</label>
      <help lang="en">How many screens the kiosk drives.</help>
    </variable>
    <variable name="kiosk_pin" order="2" widget="password">
      <label lang="en">Kiosk PIN</label>
    </variable>
  </presentation>
  <products>
    <product ref="mail-lite"/>
  </products>
</suite>
"#;

/// A state directory with its slapd running, the example catalog imported
/// and the developer role defined.
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
        let kiosk = fixture.state.path().join("kiosk.xml");
        std::fs::write(&kiosk, KIOSK).unwrap();
        let run = fixture.admin(&format!(
            "import {} {}; role create developer --rank 10",
            examples().display(),
            kiosk.display()
        ));
        assert_eq!(run.status, 0, "{}{}", run.stdout, run.stderr);
        fixture
    }

    fn admin(&self, script: &str) -> Run {
        self.admin_stdin(&["-c", script], "")
    }

    /// Runs the binary with `arguments` and `stdin` as standard input.
    fn admin_stdin(&self, arguments: &[&str], stdin: &str) -> Run {
        let mut child = Command::new(BINARY)
            .arg("--state-dir")
            .arg(self.state.path())
            .args(arguments)
            .env("HOME", self.state.path())
            .env("XDG_DATA_HOME", self.state.path().join("data"))
            .env_remove("ROLEOUT_STATE_DIR")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        // A failed script may stop reading early.
        let _ = input.write_all(stdin.as_bytes());
        drop(input);
        let output = child.wait_with_output().unwrap();
        Run {
            status: output.status.code().unwrap(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs `body` with a directory handle bound as the admin.
    fn with_directory<T>(&self, body: impl AsyncFnOnce(&Directory) -> T) -> T {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let directory = Directory::connect(&self.local.settings()).await.unwrap();
            body(&directory).await
        })
    }

    /// Everything under `ou=groups`, as `ldapsearch` over ldapi shows it.
    fn ldapsearch_groups(&self) -> String {
        let base = self.with_directory(async |directory| directory.groups_container());
        let output = Command::new("ldapsearch")
            .args([
                "-Q",
                "-LLL",
                "-Y",
                "EXTERNAL",
                "-H",
                &self.local.ldapi_url(),
                "-b",
            ])
            .arg(&base)
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
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

fn machine(name: &str, os: Option<&str>) -> Machine {
    Machine {
        name: MachineId::new(name).unwrap(),
        ip: Some("10.1.2.3".to_owned()),
        os: os.map(str::to_owned),
        arch: os.map(|_| "x86_64".to_owned()),
        facts: [("memory-mb".to_owned(), "8192".to_owned())].into(),
        products: Vec::new(),
    }
}

#[test]
fn customize_refuses_a_bad_answer_in_a_script_and_stores_good_ones() {
    let fixture = Fixture::new();

    // The script and its answers on standard input: a host name the
    // hostname validator refuses fails the command, naming the rule.
    let bad = fixture.admin_stdin(&[], "customize domino --group nobody\n");
    assert_eq!(bad.status, 1, "{}{}", bad.stdout, bad.stderr);
    assert!(bad.stderr.contains("no group nobody"), "{}", bad.stderr);
    let bad = fixture.admin_stdin(&[], "customize domino\nmail_server_!\nlarge\n");
    assert_eq!(bad.status, 1, "{}{}", bad.stdout, bad.stderr);
    assert!(bad.stderr.contains("Mail server"), "{}", bad.stderr);
    assert!(bad.stderr.contains("rule: "), "{}", bad.stderr);
    assert!(bad.stderr.contains("mail_server"), "{}", bad.stderr);
    // The questions show label, help and default.
    assert!(
        bad.stderr
            .contains("Mail server (mail_server, string): The host name of your Domino mail server. [default: mail.example.org]"),
        "{}",
        bad.stderr
    );
    // Nothing was stored.
    let shown = fixture.admin("customize domino --show");
    assert_eq!(ok(&shown), "suite domino (suite-wide): not customized\n");
    // A choice outside its list fails too, naming the kind.
    let bad = fixture.admin_stdin(&[], "customize domino\nmx.example.org\nhuge\n");
    assert_eq!(bad.status, 1);
    assert!(bad.stderr.contains("rule: kind choice"), "{}", bad.stderr);

    // A separate run with good answers stores them, for a group.
    ok(&fixture.admin("group create developers --suite domino"));
    let good = fixture.admin_stdin(
        &[],
        "customize domino --group developers\nmx.example.org\nlarge\ncustomize domino --group developers --show\n",
    );
    let good = ok(&good);
    assert!(
        good.contains("stored 2 value(s) for suite domino for group developers\n"),
        "{good}"
    );
    assert!(
        good.ends_with(
            "suite domino for group developers:\n  mail_quota = large\n  mail_server = mx.example.org\n"
        ),
        "{good}"
    );
    // An empty answer keeps what is stored; the suite-wide values are apart.
    let again = fixture.admin_stdin(&[], "customize domino --group developers\n\nstandard\n");
    assert!(
        ok(&again).ends_with("  mail_quota = standard\n  mail_server = mx.example.org\n"),
        "{}",
        again.stdout
    );
    let suite_wide = fixture.admin("customize domino --show");
    assert!(ok(&suite_wide).contains("not customized"));
    let entries = fixture.ldapsearch_groups();
    assert!(
        entries.contains("roleoutCustomValue: mail_server=mx.example.org"),
        "{entries}"
    );
    assert!(
        entries.contains("roleoutCustomValue: mail_quota=standard"),
        "{entries}"
    );

    // A password: a short one fails naming min-length without quoting it;
    // a good one is accepted, never printed and never stored.
    let short = fixture.admin_stdin(&[], "customize kiosk\n2\n123\n");
    assert_eq!(short.status, 1);
    assert!(
        short.stderr.contains("rule: min-length"),
        "{}",
        short.stderr
    );
    assert!(!short.stderr.contains("123"), "{}", short.stderr);
    let pin = "s3cr3t-pin";
    let kiosk = fixture.admin_stdin(&[], &format!("customize kiosk\n3\n{pin}\nHello\n"));
    let stored = ok(&kiosk);
    assert!(
        kiosk.stderr.contains("Kiosk PIN: accepted, and not stored"),
        "{}",
        kiosk.stderr
    );
    assert!(
        stored.contains(
            "stored 2 value(s) for suite kiosk (suite-wide)\n  greeting = Hello\n  screens = 3\n"
        ),
        "{stored}"
    );
    assert!(!stored.contains(pin) && !kiosk.stderr.contains(pin));
    let entries = fixture.ldapsearch_groups();
    assert!(
        entries.contains("roleoutCustomValue: screens=3"),
        "{entries}"
    );
    assert!(
        !entries.contains("kiosk_pin") && !entries.contains(pin),
        "{entries}"
    );
}

#[test]
fn groups_export_to_ini_and_import_into_a_fresh_directory() {
    let fixture = Fixture::new();
    fixture.with_directory(async |directory| {
        for name in ["ws-dev-01", "ws-dev-02"] {
            directory
                .create_machine(&machine(name, Some("linux")))
                .await
                .unwrap();
        }
    });
    ok(&fixture.admin(
        "group create developers --suite domino; \
         group add-machine developers ws-dev-01; group add-machine developers ws-dev-02; \
         group choose developers notes-client notes-designer; group create spare",
    ));
    // Choices are checked against the suite and the catalog.
    let refused = fixture.admin("group choose developers mail-lite");
    assert_eq!(refused.status, 1);
    assert!(
        refused
            .stderr
            .contains("product mail-lite is not a member of suite domino"),
        "{}",
        refused.stderr
    );
    let twice = fixture.admin("group add-machine spare ws-dev-01");
    assert_eq!(twice.status, 1);
    assert!(
        twice.stderr.contains("in group developers already"),
        "{}",
        twice.stderr
    );
    let listed = fixture.admin("group list");
    assert_eq!(
        ok(&listed),
        "developers  suite domino  products: notes-client, notes-designer  machines: ws-dev-01, ws-dev-02\n\
         spare  products: (none)  machines: (none)\n"
    );

    let file = fixture.state.path().join("groups.ini");
    let exported = fixture.admin(&format!("group export {}", file.display()));
    assert!(
        ok(&exported).contains("wrote 2 group(s) with 2 machine(s)"),
        "{}",
        exported.stdout
    );
    let ini = std::fs::read_to_string(&file).unwrap();
    assert!(
        ini.contains(
            "[group developers]\nsuite = domino\nproducts = notes-client, notes-designer\n"
        ),
        "{ini}"
    );
    assert!(ini.contains("[group spare]\n"), "{ini}");
    assert!(
        ini.contains("[machine ws-dev-01]\ngroup = developers\nip = 10.1.2.3\nos = linux\narch = x86_64\nfact.memory-mb = 8192\n"),
        "{ini}"
    );

    // A fresh directory: the import creates the machines and the groups.
    let fresh = Fixture::new();
    let imported = fresh.admin(&format!("group import {}", file.display()));
    assert!(
        ok(&imported).contains("imported 2 group(s) with 2 machine(s)"),
        "{}",
        imported.stdout
    );
    assert_eq!(ok(&fresh.admin("group list")), listed.stdout);
    let again = fresh.state.path().join("again.ini");
    ok(&fresh.admin(&format!("group export {}", again.display())));
    assert_eq!(std::fs::read_to_string(&again).unwrap(), ini);

    // All or nothing: a file whose second group names an unknown product
    // changes nothing, not even the first group's machines.
    let broken = fresh.state.path().join("broken.ini");
    std::fs::write(
        &broken,
        "[group testers]\nsuite = domino\n[machine ws-test-01]\ngroup = testers\n\
         [group others]\nsuite = domino\nproducts = no-such-product\n",
    )
    .unwrap();
    let refused = fresh.admin(&format!("group import {}", broken.display()));
    assert_eq!(refused.status, 1);
    assert!(
        refused.stderr.contains("no-such-product"),
        "{}",
        refused.stderr
    );
    assert_eq!(ok(&fresh.admin("group list")), listed.stdout);
    let machines = fresh.admin("machine list");
    assert!(!ok(&machines).contains("ws-test-01"), "{}", machines.stdout);
    // A syntax error names file and line.
    std::fs::write(&broken, "[group ok]\nsuite domino\n").unwrap();
    let refused = fresh.admin(&format!("group import {}", broken.display()));
    assert_eq!(refused.status, 1);
    assert!(
        refused.stderr.contains("broken.ini:2"),
        "{}",
        refused.stderr
    );
}

#[test]
fn plan_shows_order_reasons_and_role_versions_for_a_developer_machine() {
    let fixture = Fixture::new();
    fixture.with_directory(async |directory| {
        directory
            .create_machine(&machine("ws-dev-01", Some("linux")))
            .await
            .unwrap();
    });
    ok(&fixture.admin("role add-member developer ws-dev-01"));
    let plan = fixture.admin("plan ws-dev-01 domino");
    let plan = ok(&plan);
    assert!(
        plan.starts_with(
            "machine ws-dev-01: roles developer (role set developer), platform linux/x86_64\n"
        ),
        "{plan}"
    );
    let lines: Vec<&str> = plan.lines().collect();
    let position = |product: &str| {
        lines
            .iter()
            .position(|line| line.contains(&format!(". {product} ")))
            .unwrap_or_else(|| panic!("{product} is not in the plan:\n{plan}"))
    };
    // The designer needs the client first, the client needs the runtime.
    assert!(position("jre") < position("notes-client"), "{plan}");
    assert!(
        position("notes-client") < position("notes-designer"),
        "{plan}"
    );
    let designer = lines[position("notes-designer")];
    assert!(
        designer.contains("why: member of suite domino"),
        "{designer}"
    );
    assert!(designer.contains("fileset: default"), "{designer}");
    let client = lines[position("notes-client")];
    assert!(client.contains("fileset: developer"), "{client}");
    assert!(client.contains("install: default"), "{client}");
    assert!(client.contains("prerequisite"), "{client}");
    // Without the role, no designer.
    fixture.with_directory(async |directory| {
        directory
            .create_machine(&machine("ws-plain", None))
            .await
            .unwrap();
    });
    let plain = fixture.admin("plan ws-plain domino");
    let plain = ok(&plain);
    assert!(!plain.contains("notes-designer"), "{plain}");
    assert!(plain.contains("fileset: default"), "{plain}");
    let unknown = fixture.admin("plan ws-nowhere");
    assert_eq!(unknown.status, 1);
    assert!(
        unknown.stderr.contains("no machine \"ws-nowhere\""),
        "{}",
        unknown.stderr
    );
}

fn report(id: &str, component: &str, outcome: ReportOutcome, finished: u64) -> StatusReport {
    StatusReport {
        id: id.to_owned(),
        suite: SuiteId::new("domino").unwrap(),
        build_digest: Sha256::new("ab".repeat(32)).unwrap(),
        component: ProductId::new(component).unwrap(),
        step: ReportStep::Install,
        outcome,
        exit_code: Some(if outcome == ReportOutcome::Failed {
            2
        } else {
            0
        }),
        signal: None,
        duration_ms: 1500,
        evidence: vec![format!("matched: evidence of {id}")],
        log: String::new(),
        started_at: Timestamp::from_unix_seconds(finished - 2).unwrap(),
        finished_at: Timestamp::from_unix_seconds(finished).unwrap(),
    }
}

#[test]
fn status_shows_the_table_and_the_tail_of_failed_logs() {
    let fixture = Fixture::new();
    let store = ContentStore::new(fixture.state.path().join("content")).unwrap();
    // A long failed log: only its last 20 lines are shown.
    let failed_log: String = (1..=30).map(|n| format!("log line {n}\n")).collect();
    let failed_digest = store.put_bytes(failed_log.as_bytes()).unwrap();
    let good_digest = store.put_bytes(b"all went well\n").unwrap();
    fixture.with_directory(async |directory| {
        for name in ["ws-001", "ws-002"] {
            directory
                .create_machine(&machine(name, Some("linux")))
                .await
                .unwrap();
        }
        let one = MachineId::new("ws-001").unwrap();
        let two = MachineId::new("ws-002").unwrap();
        let stored = [
            (
                &one,
                report("r1:jre", "jre", ReportOutcome::Success, 1_714_564_800),
                &good_digest,
            ),
            // An earlier failure of the client, then a later one that stands.
            (
                &one,
                report(
                    "r1:client",
                    "notes-client",
                    ReportOutcome::Success,
                    1_714_564_700,
                ),
                &good_digest,
            ),
            (
                &one,
                report(
                    "r2:client",
                    "notes-client",
                    ReportOutcome::Failed,
                    1_714_564_900,
                ),
                &failed_digest,
            ),
            (
                &two,
                report("r1:jre", "jre", ReportOutcome::Success, 1_714_564_800),
                &good_digest,
            ),
        ];
        for (machine, report, digest) in stored {
            let ack = directory
                .store_report(machine, &report, Some(digest))
                .await
                .unwrap();
            assert_eq!(ack, AckStatus::Recorded);
        }
        let complete = SuiteComplete {
            id: "run-2".to_owned(),
            suite: SuiteId::new("domino").unwrap(),
            build_digest: Sha256::new("ab".repeat(32)).unwrap(),
            summary: RunSummary {
                installed: 1,
                failed: 1,
                ..RunSummary::default()
            },
        };
        directory.store_completion(&one, &complete).await.unwrap();
    });

    let table = fixture.admin("status domino");
    assert_eq!(
        ok(&table),
        "suite domino: 2 machine(s), 1 with a complete run\n\
         machine  jre      notes-client  run\n\
         ws-001   success  failed        complete: 1 installed, 1 failed\n\
         ws-002   success  -             not complete\n"
    );

    let detail = fixture.admin("status --machine ws-001");
    let detail = ok(&detail);
    assert!(
        detail.contains("domino/notes-client: install failed, exit code 2, 1500 ms"),
        "{detail}"
    );
    assert!(
        detail.contains("  evidence: matched: evidence of r2:client\n"),
        "{detail}"
    );
    assert!(!detail.contains("evidence of r1:client"), "{detail}");
    assert!(
        detail.contains("(last 20 line(s)):\n  | log line 11\n"),
        "{detail}"
    );
    assert!(detail.contains("  | log line 30\n"), "{detail}");
    assert!(!detail.contains("log line 10\n"), "{detail}");
    // A successful step's log is not shown.
    assert!(!detail.contains("all went well"), "{detail}");
    assert!(
        detail.contains("domino/jre: install success, exit code 0"),
        "{detail}"
    );

    ok(&fixture.admin("role add-member developer ws-001; approve ws-001"));
    let machines = fixture.admin("machine list");
    let machines = ok(&machines);
    let lines: Vec<&str> = machines.lines().collect();
    assert!(
        lines[0].starts_with("machine  roles      enrolment  enabled  last seen  last report"),
        "{machines}"
    );
    assert!(
        lines[1].starts_with(
            "ws-001   developer  approved   yes      never      failed domino/notes-client "
        ),
        "{machines}"
    );
    assert!(
        lines[2]
            .starts_with("ws-002   -          pending    no       never      success domino/jre "),
        "{machines}"
    );
}

#[test]
fn delete_refuses_what_is_still_used_and_forced_takes_references_away() {
    let fixture = Fixture::new();
    fixture.with_directory(async |directory| {
        directory
            .create_machine(&machine("ws-del-01", Some("linux")))
            .await
            .unwrap();
    });
    ok(&fixture.admin(
        "role add-member developer ws-del-01; group create floor --suite domino; \
         group add-machine floor ws-del-01; group choose floor notes-client notes-help; \
         build domino",
    ));
    ok(&fixture.admin_stdin(
        &[],
        "customize domino --group floor\nmx.example.org\nlarge\n",
    ));

    // A product a suite lists and another requires: refused, naming both,
    // and nothing deleted.
    let refused = fixture.admin("delete product notes-help");
    assert_eq!(refused.status, 1, "{}", refused.stdout);
    for dependent in [
        "suite domino lists it",
        "product notes-client requires it",
        "group floor chose it",
    ] {
        assert!(refused.stderr.contains(dependent), "{}", refused.stderr);
    }
    ok(&fixture.admin("show /products/notes-help"));
    // Once the only suite listing it is gone, nothing uses it.
    assert!(
        fixture
            .admin("delete product mail-lite")
            .stderr
            .contains("suite kiosk lists it")
    );
    let deleted = fixture.admin("delete suite kiosk; delete product mail-lite");
    assert!(
        ok(&deleted).ends_with("product mail-lite deleted\n"),
        "{}",
        deleted.stdout
    );
    assert_eq!(fixture.admin("show /products/mail-lite").status, 1);

    // A suite a group draws from: refused, then forced; its builds and
    // customizations go with it and the group draws from no suite.
    let refused = fixture.admin("delete suite domino");
    assert!(
        refused
            .stderr
            .contains("group floor draws its products from it"),
        "{}",
        refused.stderr
    );
    let forced = fixture.admin("delete suite domino --force");
    assert!(
        ok(&forced).contains("suite domino: 1 customization(s) and"),
        "{}",
        forced.stdout
    );
    assert!(
        forced.stderr.contains("reference taken away"),
        "{}",
        forced.stderr
    );
    assert!(
        !fixture
            .ldapsearch_groups()
            .contains("roleoutSuiteName: domino")
    );
    fixture.with_directory(async |directory| {
        let domino = SuiteId::new("domino").unwrap();
        assert!(directory.builds(Some(&domino)).await.unwrap().is_empty());
        let floor = directory
            .group(&roleout_model::ids::GroupName::new("floor").unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(floor.record.suite, None);
    });

    // A machine that holds a role and is in a group.
    let refused = fixture.admin("delete machine ws-del-01");
    assert!(
        refused.stderr.contains("it holds role developer"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("it is in group floor"),
        "{}",
        refused.stderr
    );
    ok(&fixture.admin("delete machine ws-del-01 --force"));
    let roles = ok(&fixture.admin("role list")).to_owned();
    assert!(!roles.contains("ws-del-01"), "{roles}");
    assert_eq!(fixture.admin("show /machines/ws-del-01").status, 1);

    // Unknown names are named.
    let unknown = fixture.admin("delete group nobody");
    assert!(
        unknown.stderr.contains("no group \"nobody\""),
        "{}",
        unknown.stderr
    );
}

#[test]
fn what_machines_send_cannot_drive_the_terminal_or_fake_a_line() {
    let fixture = Fixture::new();
    let store = ContentStore::new(fixture.state.path().join("content")).unwrap();
    let hostile = "\u{1b}[2J\u{1b}]0;owned\u{7}\nmachine ws-666: approved\r\u{202e}";
    let log = store
        .put_bytes(format!("step one\n{hostile}\n").as_bytes())
        .unwrap();
    fixture.with_directory(async |directory| {
        let mut evil = machine("ws-666", Some("linux"));
        evil.facts.insert("note".to_owned(), hostile.to_owned());
        directory.create_machine(&evil).await.unwrap();
        let mut failed = report(
            "r1:client",
            "notes-client",
            ReportOutcome::Failed,
            1_714_564_900,
        );
        failed.evidence = vec![hostile.to_owned()];
        directory
            .store_report(&MachineId::new("ws-666").unwrap(), &failed, Some(&log))
            .await
            .unwrap();
    });
    let shown = fixture.admin("show /machines/ws-666; status --machine ws-666");
    let stdout = ok(&shown);
    for control in ['\u{1b}', '\u{7}', '\r', '\u{202e}'] {
        assert!(
            !stdout.contains(control),
            "{control:?} reached the terminal: {stdout:?}"
        );
    }
    assert!(
        !stdout
            .lines()
            .any(|line| line.starts_with("machine ws-666: approved")),
        "a machine faked a line: {stdout}"
    );
    // What was sent is still readable, escaped.
    assert!(stdout.contains("\\u{1b}[2J"), "{stdout}");
    assert!(stdout.contains("fact note: "), "{stdout}");
}
