//! The command runner against real child processes and real log files:
//! exit codes and their table, retries, timeouts that kill the whole
//! process tree, bounded output, log failure and success lines (after exit
//! and while the command runs), redaction of secrets and the errors of a
//! command that cannot start.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use roleout_installer::run::{
    CaptureLimit, CommandReport, CommandSpec, Exit, LogWatch, MASK, Outcome, RunError,
    RunningCommand, Secrets, StopReason, run,
};
use roleout_model::command::{ExitCodeTable, OutputRules};
use roleout_model::pattern::Pattern;

/// A shell script to run, with a short kill grace so stopped tests end
/// soon, and no pause between retries.
fn script(text: &str, args: &[&Path]) -> CommandSpec {
    let args = args.iter().map(|arg| arg.display().to_string()).collect();
    let mut spec = CommandSpec::shell(text, args);
    spec.kill_grace = Duration::from_millis(300);
    spec.retry_delay = Duration::ZERO;
    spec
}

fn log_watch(path: &Path, success: &[&str], failure: &[&str]) -> LogWatch {
    let compile = |sources: &[&str]| {
        sources
            .iter()
            .map(|source| Pattern::new(*source).unwrap())
            .collect()
    };
    LogWatch {
        path: path.to_owned(),
        success: compile(success),
        failure: compile(failure),
    }
}

fn failure_reason(report: &CommandReport) -> &str {
    match &report.outcome {
        Outcome::Failed { reason } => reason,
        other => panic!("expected a failure, got {other:?}\n{report}"),
    }
}

/// Whether process `pid` no longer runs. A killed process whose parent is
/// gone may linger as a zombie until something reaps it; a zombie runs no
/// more, so it counts as gone.
pub(crate) fn is_gone(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            // The state follows the command name, which is in parentheses.
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            state.starts_with('Z') || state.starts_with('X')
        }
    }
}

/// Waits until process `pid` is gone. A `SIGKILL` is delivered
/// asynchronously, so the kernel may need a moment; a process still there
/// after a minute was not killed.
pub(crate) fn wait_until_gone(pid: u32) -> bool {
    let give_up = Instant::now() + Duration::from_secs(60);
    while Instant::now() < give_up {
        if is_gone(pid) {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Reads a pid the test's command wrote to `path`.
fn read_pid(path: &Path) -> u32 {
    let text = fs::read_to_string(path).unwrap();
    text.trim().parse().unwrap()
}

#[test]
fn success_captures_both_streams() {
    let report = run(&script("echo hello; echo warning >&2", &[])).unwrap();
    assert_eq!(report.outcome, Outcome::Success);
    assert_eq!(report.exit, Exit::Code(0));
    assert_eq!(report.stopped, None);
    assert_eq!(report.stdout.text, "hello\n");
    assert_eq!(report.stderr.text, "warning\n");
    assert_eq!(report.attempt, 1);
    assert_eq!(
        report.evidence,
        vec!["exit code 0 means success (success codes: 0)".to_owned()]
    );
}

#[test]
fn a_program_runs_without_a_shell_and_with_its_environment() {
    let directory = tempfile::tempdir().unwrap();
    // `printenv` prints the variable only if it reached the program; the
    // `$` argument shows that no shell expanded anything.
    let mut spec = CommandSpec::new(vec!["printenv".into(), "ROLEOUT_TEST_VALUE".into()]).unwrap();
    spec.env
        .insert("ROLEOUT_TEST_VALUE".into(), "$HOME stays literal".into());
    spec.working_dir = Some(directory.path().to_owned());
    let report = run(&spec).unwrap();
    assert_eq!(report.outcome, Outcome::Success, "{report}");
    assert_eq!(report.stdout.text, "$HOME stays literal\n");

    let report = run(&CommandSpec::new(vec!["pwd".into()])
        .map(|mut spec| {
            spec.working_dir = Some(directory.path().to_owned());
            spec
        })
        .unwrap())
    .unwrap();
    assert_eq!(
        Path::new(report.stdout.text.trim()).canonicalize().unwrap(),
        directory.path().canonicalize().unwrap()
    );
}

#[test]
fn a_failure_exit_code_fails() {
    let report = run(&script("echo 'disk full' >&2; exit 3", &[])).unwrap();
    assert_eq!(report.exit, Exit::Code(3));
    assert_eq!(
        failure_reason(&report),
        "exit code 3 is not a success code (success codes: 0)"
    );
    // The report shown to a person includes what the command said.
    assert!(report.to_string().contains("disk full"), "{report}");
}

#[test]
fn a_reboot_code_is_success_with_a_reboot_required() {
    // Windows Installer says 3010; Unix exit codes are 8 bits, so the test
    // uses a code a Unix tool can return. The table takes any code.
    let mut spec = script("exit 194", &[]);
    spec.exit_codes = ExitCodeTable {
        success: vec![0],
        reboot: vec![194],
        retry: Vec::new(),
    };
    let report = run(&spec).unwrap();
    assert_eq!(report.outcome, Outcome::SuccessRebootRequired);
    assert!(report.outcome.is_success());
}

#[test]
fn a_retry_code_runs_the_command_again() {
    let directory = tempfile::tempdir().unwrap();
    let counter = directory.path().join("counter");
    let mut spec = script(
        r#"count=$(cat "$1" 2>/dev/null || echo 0)
count=$((count + 1))
echo "$count" > "$1"
[ "$count" -ge 2 ] && exit 0
exit 75"#,
        &[&counter],
    );
    spec.retries = 3;
    spec.exit_codes.retry = vec![75];
    let report = run(&spec).unwrap();
    assert_eq!(report.outcome, Outcome::Success, "{report}");
    assert_eq!(report.attempt, 2);
    assert_eq!(report.earlier_attempts.len(), 1);
    assert_eq!(report.earlier_attempts[0].exit, Exit::Code(75));
    assert_eq!(fs::read_to_string(&counter).unwrap().trim(), "2");
}

#[test]
fn retries_that_run_out_fail() {
    let directory = tempfile::tempdir().unwrap();
    let counter = directory.path().join("counter");
    let mut spec = script(r#"echo run >> "$1"; exit 75"#, &[&counter]);
    spec.retries = 2;
    spec.exit_codes.retry = vec![75];
    let report = run(&spec).unwrap();
    assert_eq!(
        failure_reason(&report),
        "exit code 75 asks to try again, but all 3 attempts asked the same"
    );
    assert_eq!(report.attempt, 3);
    assert_eq!(fs::read_to_string(&counter).unwrap(), "run\nrun\nrun\n");
}

#[test]
fn a_timeout_kills_the_whole_process_group() {
    let directory = tempfile::tempdir().unwrap();
    let pid_file = directory.path().join("helper.pid");
    // The helper ignores SIGTERM (an ignored signal stays ignored across
    // exec), so only the SIGKILL that follows the grace period ends it.
    let mut spec = script(
        r#"(trap '' TERM; exec sleep 1000) &
echo $! > "$1"
wait"#,
        &[&pid_file],
    );
    spec.timeout = Duration::from_secs(2);
    let report = run(&spec).unwrap();
    assert!(report.timed_out());
    assert_eq!(report.stopped, Some(StopReason::Timeout));
    assert!(
        failure_reason(&report).starts_with("it did not finish within its timeout of 2.0 s"),
        "{report}"
    );
    let helper = read_pid(&pid_file);
    assert!(
        wait_until_gone(helper),
        "helper {helper} survived the timeout"
    );
}

#[test]
fn a_timeout_kills_a_helper_that_left_the_process_group() {
    let directory = tempfile::tempdir().unwrap();
    let pid_file = directory.path().join("helper.pid");
    // setsid: a new session, so a new process group; a daemonizing
    // installer helper does the same.
    let mut spec = script(
        r#"setsid sh -c 'echo $$ > "$1.tmp"; mv "$1.tmp" "$1"; exec sleep 1000' helper "$1" &
while [ ! -e "$1" ]; do sleep 0.05; done
sleep 1000"#,
        &[&pid_file],
    );
    spec.timeout = Duration::from_secs(2);
    let report = run(&spec).unwrap();
    assert!(report.timed_out(), "{report}");
    let helper = read_pid(&pid_file);
    assert!(
        wait_until_gone(helper),
        "helper {helper}, in a session of its own, survived the timeout"
    );
}

#[test]
fn dropping_a_running_command_kills_its_process_group() {
    let directory = tempfile::tempdir().unwrap();
    let pid_file = directory.path().join("helper.pid");
    let spec = script(
        r#"sleep 1000 & echo $! > "$1.tmp"; mv "$1.tmp" "$1"; wait"#,
        &[&pid_file],
    );
    let running = RunningCommand::start(&spec).unwrap();
    let command = running.id();
    // The pid file appears whole (written aside, then renamed).
    let give_up = Instant::now() + Duration::from_secs(60);
    while !pid_file.exists() && Instant::now() < give_up {
        thread::sleep(Duration::from_millis(10));
    }
    let helper = read_pid(&pid_file);
    drop(running);
    // The command itself was reaped by the drop.
    assert!(is_gone(command));
    assert!(wait_until_gone(helper), "helper {helper} survived the drop");
}

#[test]
fn output_stays_bounded_for_a_command_that_prints_a_gigabyte() {
    let spec = script("yes | head -c 1073741824", &[]);
    let limit = CaptureLimit::default();
    assert_eq!(spec.capture, limit);
    let report = run(&spec).unwrap();
    assert_eq!(report.outcome, Outcome::Success, "{report}");
    assert_eq!(report.stdout.total_bytes, 1 << 30);
    let kept = (limit.head + limit.tail) as u64;
    assert_eq!(report.stdout.omitted_bytes, (1 << 30) - kept);
    let marker = format!("\n… {} bytes omitted …\n", (1u64 << 30) - kept);
    assert_eq!(
        report.stdout.text.len(),
        limit.head + marker.len() + limit.tail
    );
    assert!(report.stdout.text.contains(&marker));
    assert!(report.stdout.text.starts_with("y\ny\n"));
    assert!(report.stdout.text.ends_with("y\ny\n"));
}

#[test]
fn a_failure_line_fails_an_exit_code_of_zero() {
    let directory = tempfile::tempdir().unwrap();
    let log = directory.path().join("setup.log");
    let mut spec = script(
        r#"printf 'starting\nERROR: could not write /opt/app\nfinished\n' >> "$1""#,
        &[&log],
    );
    spec.log = Some(log_watch(&log, &[], &["^ERROR"]));
    let report = run(&spec).unwrap();
    assert_eq!(report.exit, Exit::Code(0));
    assert_eq!(
        failure_reason(&report),
        format!(
            "exit code 0 but the log {} says it failed: line 2: ERROR: could not write /opt/app",
            log.display()
        )
    );
    let findings = report.log.as_ref().unwrap();
    assert_eq!(findings.failure_lines[0].number, 2);
}

#[test]
fn lines_already_in_the_log_do_not_count() {
    let directory = tempfile::tempdir().unwrap();
    let log = directory.path().join("setup.log");
    fs::write(&log, "ERROR: last year's install failed\n").unwrap();
    let mut spec = script(r#"echo 'Installation complete' >> "$1""#, &[&log]);
    spec.log = Some(log_watch(&log, &["^Installation complete$"], &["^ERROR"]));
    let report = run(&spec).unwrap();
    assert_eq!(report.outcome, Outcome::Success, "{report}");
    let findings = report.log.unwrap();
    assert_eq!(findings.success_lines[0].number, 2);
    assert_eq!(findings.failure_count, 0);
}

#[test]
fn a_failure_line_while_running_stops_the_command_early() {
    let directory = tempfile::tempdir().unwrap();
    let log = directory.path().join("setup.log");
    let pid_file = directory.path().join("helper.pid");
    let mut spec = script(
        r#"sleep 1000 & echo $! > "$2"
echo 'ERROR: license server unreachable' >> "$1"
wait"#,
        &[&log, &pid_file],
    );
    // Far longer than the test could wait: only the failure line ends it.
    spec.timeout = Duration::from_secs(3600);
    spec.check_interval = Some(Duration::from_millis(50));
    spec.log = Some(log_watch(&log, &["done"], &["^ERROR"]));
    let report = run(&spec).unwrap();
    assert_eq!(report.stopped, Some(StopReason::FailureInLog));
    assert_eq!(report.exit, Exit::Signal(15), "{report}");
    assert_eq!(
        failure_reason(&report),
        format!(
            "the log {} says it failed while it ran: line 1: ERROR: license server unreachable; \
             its process group was killed",
            log.display()
        )
    );
    let helper = read_pid(&pid_file);
    assert!(wait_until_gone(helper), "helper {helper} survived");
}

/// Without a log file the patterns read what the command prints: every
/// line of both streams, beyond what is kept of them.
#[test]
fn output_patterns_decide_from_what_the_command_prints() {
    let compile = |sources: &[&str]| {
        sources
            .iter()
            .map(|source| Pattern::new(*source).unwrap())
            .collect()
    };
    // A failure line on standard error, in the middle of 200 KiB that the
    // capture does not keep.
    let mut spec = script(
        r#"yes filler | head -c 100000; echo 'E: Sub-process /usr/bin/dpkg returned an error code (1)' >&2; yes filler | head -c 100000"#,
        &[],
    );
    spec.output = Some(OutputRules {
        success: Vec::new(),
        failure: compile(&["^E: "]),
    });
    let report = run(&spec).unwrap();
    assert_eq!(report.exit, Exit::Code(0));
    assert_eq!(
        failure_reason(&report),
        "exit code 0 but its output says it failed: line 1: (stderr) E: Sub-process /usr/bin/dpkg returned an error code (1)"
    );
    // A required success line, absent and then present.
    let mut spec = script("echo 'Setting up app (1.0)'", &[]);
    spec.output = Some(OutputRules {
        success: compile(&["^Setting up app "]),
        failure: Vec::new(),
    });
    assert_eq!(run(&spec).unwrap().outcome, Outcome::Success);
    spec.output = Some(OutputRules {
        success: compile(&["^Installation complete"]),
        failure: Vec::new(),
    });
    assert_eq!(
        failure_reason(&run(&spec).unwrap()),
        "exit code 0 but no success line found in its output"
    );
}

#[test]
fn a_required_success_line_that_is_absent_fails() {
    let directory = tempfile::tempdir().unwrap();
    let log = directory.path().join("setup.log");
    let mut spec = script(r#"echo 'copying files' >> "$1""#, &[&log]);
    spec.log = Some(log_watch(&log, &["^Installation complete"], &["^ERROR"]));
    let report = run(&spec).unwrap();
    assert_eq!(
        failure_reason(&report),
        format!("exit code 0 but no success line found in {}", log.display())
    );
}

#[test]
fn a_missing_log_fails_when_it_has_patterns() {
    let directory = tempfile::tempdir().unwrap();
    // A relative log path is taken from the working directory.
    let mut spec = script("true", &[]);
    spec.working_dir = Some(directory.path().to_owned());
    spec.log = Some(log_watch(
        Path::new("never-written.log"),
        &["complete"],
        &[],
    ));
    let report = run(&spec).unwrap();
    assert_eq!(
        failure_reason(&report),
        format!(
            "exit code 0 but the log file {} does not exist",
            directory.path().join("never-written.log").display()
        )
    );
}

#[test]
fn secrets_never_reach_the_report() {
    let directory = tempfile::tempdir().unwrap();
    let log = directory.path().join("setup.log");
    let secret = "Pa55-w0rd'x";
    let mut spec = CommandSpec::shell(
        r#"echo "connecting as admin/$1"
echo "bad password $DB_PASSWORD" >&2
printf 'ERROR: login failed for %s\n' "$1" >> "$2""#,
        vec![secret.to_owned(), log.display().to_string()],
    );
    spec.env.insert("DB_PASSWORD".into(), secret.into());
    spec.log = Some(log_watch(&log, &[], &["^ERROR"]));
    spec.secrets = Secrets::new([secret]);

    let report = run(&spec).unwrap();
    assert_eq!(report.stdout.text, format!("connecting as admin/{MASK}\n"));
    assert_eq!(report.stderr.text, format!("bad password {MASK}\n"));
    assert!(failure_reason(&report).ends_with(&format!("line 1: ERROR: login failed for {MASK}")));
    let shown = [
        format!("{report}"),
        format!("{report:?}"),
        serde_json::to_string(&report).unwrap(),
        format!("{spec:?}"),
    ];
    for text in shown {
        assert!(!text.contains(secret), "the secret leaked: {text}");
        assert!(!text.contains("Pa55"), "part of the secret leaked: {text}");
    }
}

#[test]
fn a_program_that_does_not_exist_is_named() {
    let error =
        run(&CommandSpec::new(vec!["roleout-no-such-program".into()]).unwrap()).unwrap_err();
    assert!(
        matches!(&error, RunError::ProgramNotFound { program } if program == "roleout-no-such-program")
    );
    assert!(
        error
            .to_string()
            .starts_with("program `roleout-no-such-program` not found"),
        "{error}"
    );
}

#[test]
fn a_program_that_may_not_run_is_named() {
    let directory = tempfile::tempdir().unwrap();
    let program = directory.path().join("setup.sh");
    fs::write(&program, "#!/bin/sh\nexit 0\n").unwrap();
    fs::set_permissions(&program, fs::Permissions::from_mode(0o644)).unwrap();
    let program = program.display().to_string();
    let error = run(&CommandSpec::new(vec![program.clone()]).unwrap()).unwrap_err();
    assert!(matches!(&error, RunError::PermissionDenied { program: named } if *named == program));
    assert!(error.to_string().contains(&program), "{error}");
}

#[test]
fn a_missing_working_directory_is_named() {
    let directory = tempfile::tempdir().unwrap();
    let missing = directory.path().join("not-unpacked-yet");
    let mut spec = CommandSpec::new(vec!["true".into()]).unwrap();
    spec.working_dir = Some(missing.clone());
    let error = run(&spec).unwrap_err();
    assert!(matches!(&error, RunError::WorkingDirMissing { path } if *path == missing));
    assert_eq!(
        error.to_string(),
        format!(
            "working directory {} does not exist or is not a directory",
            missing.display()
        )
    );
}

#[test]
fn a_process_left_holding_the_output_does_not_hold_the_runner() {
    let directory = tempfile::tempdir().unwrap();
    let pid_file = directory.path().join("helper.pid");
    // The helper keeps stdout open after the command exits; the runner
    // waits for the pipe only `drain_grace`, and leaves a process that
    // outlives a successful command alone (it may be a service started on
    // purpose).
    let mut spec = script(r#"sleep 1000 & echo $! > "$1"; echo done"#, &[&pid_file]);
    spec.drain_grace = Duration::from_millis(100);
    let report = run(&spec).unwrap();
    let helper = read_pid(&pid_file);
    let still_running = !is_gone(helper);
    // The test's own cleanup of the helper it made.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(helper as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    assert_eq!(report.outcome, Outcome::Success, "{report}");
    assert_eq!(report.stdout.text, "done\n");
    assert!(still_running);
}

/// A command run under its supervisor (the real `roleout supervise-step`)
/// reports as one run directly would, and what the supervisor keeps on
/// disk of its output has the secrets masked: they reach it on its
/// standard input, and nothing it writes holds them.
#[test]
fn a_supervised_command_reports_the_same_and_its_records_hold_no_secret() {
    let folder = tempfile::tempdir().unwrap();
    let mut spec = script("echo \"the password is $1\"; echo warned >&2; exit 3", &[]);
    if let roleout_installer::run::Invocation::Shell { args, .. } = &mut spec.invocation {
        args.push("hunter2-secret".to_owned());
    }
    spec.secrets = Secrets::new(["hunter2-secret"]);
    spec.supervision = Some(roleout_installer::run::Supervision {
        program: env!("CARGO_BIN_EXE_roleout").into(),
        dir: folder.path().join("command-1"),
    });
    let report = run(&spec).unwrap();
    assert_eq!(report.exit, Exit::Code(3));
    assert!(matches!(report.outcome, Outcome::Failed { .. }), "{report}");
    assert_eq!(report.stdout.text, format!("the password is {MASK}\n"));
    assert_eq!(report.stderr.text, "warned\n");
    let end = fs::read_to_string(folder.path().join("command-1/attempt-1/end.json")).unwrap();
    assert!(end.contains("the password is"), "{end}");
    for entry in fs::read_dir(folder.path().join("command-1/attempt-1")).unwrap() {
        let bytes = fs::read(entry.unwrap().path()).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains("hunter2-secret"),
            "a record holds the secret"
        );
    }
}
