//! The `roleout` command line: documented exit codes, usage errors, an
//! unenrolled machine, the state lock held by another process, and
//! `roleout uninstall` (runs, records and reports).

use std::process::Command;

use roleout_installer::state::StateLock;
use roleout_model::suite::OnFailure;

use crate::engine::{Fixture, text};

#[test]
fn help_documents_the_exit_codes() {
    let output = Command::new(env!("CARGO_BIN_EXE_roleout"))
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let help = String::from_utf8_lossy(&output.stdout);
    for code in [
        "0  every",
        "1  a component",
        "2  usage",
        "3  auth",
        "4  server",
        "5  a reboot",
        "6  another",
    ] {
        assert!(help.contains(code), "{help}");
    }
    let output = Command::new(env!("CARGO_BIN_EXE_roleout"))
        .arg("--no-such-flag")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
}

#[test]
fn an_unenrolled_machine_is_told_to_enroll() {
    let fixture = Fixture::new();
    std::fs::remove_file(fixture.state.join("enrolment.json")).unwrap();
    let output = fixture.roleout(&["install", "desktop"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("roleout enroll"));
}

#[test]
fn a_held_lock_ends_with_exit_code_6() {
    let fixture = Fixture::new();
    let _held = StateLock::acquire(&fixture.state).unwrap();
    let output = fixture.roleout(&["install", "desktop"]);
    assert_eq!(output.status.code(), Some(6), "{}", text(&output));
}

#[test]
fn uninstall_runs_the_uninstall_command_records_it_and_reports_it() {
    let mut fixture = Fixture::new();
    let product = fixture.product(
        r#"<product xmlns="urn:roleout:descriptor:1" id="tool" version="1.0">
  <description vendor="Test"><name lang="en">tool</name><summary lang="en">tool</summary></description>
  <install kind="script" shell="true"><arg>mkdir -p "$1/opt/tool" &amp;&amp; echo 1 > "$1/opt/tool/installed"</arg><arg>{{ root }}</arg></install>
  <uninstall><arg>rm</arg><arg>-r</arg><arg>{{ root }}/opt/tool</arg></uninstall>
</product>"#,
    );
    let suite = fixture.suite("tools", vec![product], OnFailure::Stop);
    fixture.publish(&suite);
    let installed = fixture.roleout(&["install", "tools"]);
    assert_eq!(installed.status.code(), Some(0), "{}", text(&installed));
    assert!(fixture.root.join("opt/tool/installed").exists());

    let removed = fixture.roleout(&["uninstall", "tool"]);
    assert_eq!(removed.status.code(), Some(0), "{}", text(&removed));
    assert!(!fixture.root.join("opt/tool").exists());
    // The journal no longer lists it as installed.
    let status = fixture.roleout(&["status"]);
    let out = String::from_utf8_lossy(&status.stdout);
    assert!(!out.contains("installed: tool"), "{out}");
    // One uninstall report, delivered once, with the command's outcome.
    let uninstall_reports: Vec<serde_json::Value> = fixture
        .reports()
        .into_iter()
        .filter(|report| report["step"] == "uninstall")
        .collect();
    assert_eq!(uninstall_reports.len(), 1, "{uninstall_reports:#?}");
    let report = &uninstall_reports[0];
    assert_eq!(report["component"], "tool");
    assert_eq!(report["outcome"], "success");
    assert_eq!(report["exit-code"], 0, "{report:#}");
    assert!(
        report["id"]
            .as_str()
            .unwrap()
            .ends_with(".tool.uninstall.1.status"),
        "{report:#}"
    );
    assert!(fixture.deliveries().values().all(|count| *count == 1));

    // Removed, it cannot be removed again; nothing runs and nothing is reported.
    let again = fixture.roleout(&["uninstall", "tool"]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("not recorded as installed"),
        "{}",
        text(&again)
    );
    let count = fixture
        .reports()
        .iter()
        .filter(|report| report["step"] == "uninstall")
        .count();
    assert_eq!(count, 1);
}
