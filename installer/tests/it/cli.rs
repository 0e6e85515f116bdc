//! The `roleout` command line: documented exit codes, usage errors, an
//! unenrolled machine, and the state lock held by another process.

use std::process::Command;

use roleout_installer::state::StateLock;

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
