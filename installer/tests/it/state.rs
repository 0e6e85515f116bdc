//! The installer's durable state: atomic writes, the state lock, the journal,
//! the outbox and the payload cache, on real files with real fsync.
//!
//! Crashes are real too: the tests that need one start this test binary again
//! as a child process (the ignored test `state::child_process`, told what to
//! do through environment variables), let it work on a state directory and
//! kill it with SIGKILL, then open the same directory here.

use std::collections::{BTreeMap, HashSet};
use std::env;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, SystemTime};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use roleout_installer::state::atomic::{self, PRIVATE_FILE_MODE};
use roleout_installer::state::cache::{ENTRY_MODE, Materialized, PayloadCache, hash_reader};
use roleout_installer::state::journal::{
    self, BootCheck, Journal, NextStep, PlannedComponent, Resume, StepRef, StepResult, StepState,
};
use roleout_installer::state::outbox::{Outbox, Report, ReportId, ReportKind};
use roleout_installer::state::{StateError, StateLock};
use roleout_model::command::Phase;
use roleout_model::ids::{ProductId, Sha256, SuiteId};
use roleout_model::version::Version;
use serde_json::json;

// ---------------------------------------------------------------------------
// Child processes

const CHILD_MODE: &str = "ROLEOUT_STATE_TEST_CHILD";
const CHILD_DIR: &str = "ROLEOUT_STATE_TEST_DIR";
const CHILD_STOP_AFTER: &str = "ROLEOUT_STATE_TEST_STOP_AFTER";
const CHILD_LINE_PREFIX: &str = "roleout-child: ";

/// Components in the plan the journal child works through.
const CHILD_COMPONENTS: usize = 40;

/// The child's side: runs only when started by [`spawn_child`].
#[test]
#[ignore = "runs only as the child process of other tests in this module"]
fn child_process() {
    let mode = env::var(CHILD_MODE).expect("the child mode is set by spawn_child");
    let directory =
        PathBuf::from(env::var(CHILD_DIR).expect("the directory is set by spawn_child"));
    match mode.as_str() {
        "hold-lock" => {
            let _lock = StateLock::acquire(&directory).expect("the lock is free");
            say("locked");
            wait_for_parent();
        }
        "rewrite" => {
            let target = directory.join("target");
            let mut round: u64 = 0;
            loop {
                atomic::write_atomic(&target, &versioned_content(round), PRIVATE_FILE_MODE)
                    .expect("write");
                if round == 0 {
                    say("written");
                }
                round += 1;
            }
        }
        "journal" => {
            let stop_after: Option<usize> = env::var(CHILD_STOP_AFTER)
                .ok()
                .map(|text| text.parse().expect("a number of steps"));
            let lock = StateLock::acquire(&directory).expect("the lock is free");
            let mut journal = Journal::open(&lock, &suite()).expect("open the journal");
            journal
                .start_run(digest_of_text("build"), child_plan())
                .expect("start the run");
            let mut finished = 0;
            loop {
                let step = match journal.next_step() {
                    NextStep::Run(step) => step,
                    NextStep::Settled => break,
                    other => panic!("unexpected {other:?}"),
                };
                journal
                    .begin_step(&step.product, step.phase)
                    .expect("begin");
                record_execution(&directory, &step);
                if stop_after == Some(finished) {
                    say(&format!("began {} {}", step.product, step.phase));
                    wait_for_parent();
                }
                journal
                    .finish_step(
                        &step.product,
                        step.phase,
                        StepResult::Success { exit_code: Some(0) },
                    )
                    .expect("finish");
                finished += 1;
                say(&format!("finished {} {}", step.product, step.phase));
            }
            say("settled");
            wait_for_parent();
        }
        other => panic!("unknown child mode {other}"),
    }
}

/// Writes a line for the parent on stdout, marked so the parent can tell it
/// from libtest's own output.
fn say(line: &str) {
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{CHILD_LINE_PREFIX}{line}").expect("stdout");
    stdout.flush().expect("stdout");
}

/// Blocks until the parent closes stdin (it kills the child long before).
fn wait_for_parent() {
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
}

/// A running child and the reader of its stdout.
struct ChildProcess {
    child: Child,
    lines: BufReader<ChildStdout>,
}

impl ChildProcess {
    /// The next line the child said, or `None` once it exited.
    fn next_line(&mut self) -> Option<String> {
        loop {
            let mut line = String::new();
            if self
                .lines
                .read_line(&mut line)
                .expect("read the child's stdout")
                == 0
            {
                return None;
            }
            // Searched anywhere in the line: libtest writes "test NAME ... "
            // without a line end before the test runs, so the child's first
            // line follows it.
            if let Some(start) = line.find(CHILD_LINE_PREFIX) {
                return Some(
                    line[start + CHILD_LINE_PREFIX.len()..]
                        .trim_end()
                        .to_owned(),
                );
            }
        }
    }

    /// Reads until the child says `expected`.
    fn wait_for(&mut self, expected: &str) {
        while let Some(line) = self.next_line() {
            if line == expected {
                return;
            }
        }
        panic!("the child exited before saying {expected:?}");
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the child with SIGKILL and reaps it.
    fn kill(mut self) {
        let pid = i32::try_from(self.child.id()).expect("pids fit in i32");
        kill(Pid::from_raw(pid), Signal::SIGKILL).expect("send SIGKILL");
        let status = self.child.wait().expect("reap the child");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(libc_sigkill()),
            "the child died of SIGKILL"
        );
    }
}

fn libc_sigkill() -> i32 {
    Signal::SIGKILL as i32
}

fn spawn_child(mode: &str, directory: &Path, extra: &[(&str, String)]) -> ChildProcess {
    let mut command = Command::new(env::current_exe().expect("the test binary's path"));
    command
        .args([
            "state::child_process",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_MODE, mode)
        .env(CHILD_DIR, directory)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (name, value) in extra {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("start the child process");
    let stdout = child.stdout.take().expect("stdout is piped");
    ChildProcess {
        child,
        lines: BufReader::new(stdout),
    }
}

// ---------------------------------------------------------------------------
// Shared fixtures

fn suite() -> SuiteId {
    SuiteId::new("office").expect("valid")
}

fn product(name: &str) -> ProductId {
    ProductId::new(name).expect("valid")
}

fn digest_of_text(text: &str) -> Sha256 {
    hash_reader(text.as_bytes()).expect("in memory").0
}

fn planned(name: &str, phases: &[Phase]) -> PlannedComponent {
    PlannedComponent {
        product: product(name),
        version: Version::new("2.1").expect("valid"),
        model: digest_of_text(&format!("model of {name}")),
        phases: phases.to_vec(),
    }
}

fn child_plan() -> Vec<PlannedComponent> {
    (0..CHILD_COMPONENTS)
        .map(|index| planned(&format!("p{index:02}"), &Phase::INSTALL_ORDER))
        .collect()
}

fn record_execution(directory: &Path, step: &StepRef) {
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(directory.join("executions.log"))
        .expect("open the executions log");
    // One write per line, in append mode: lines never interleave.
    log.write_all(format!("{} {}\n", step.product, step.phase).as_bytes())
        .expect("append");
}

fn executions(directory: &Path) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    let text = fs::read_to_string(directory.join("executions.log")).unwrap_or_default();
    for line in text.lines() {
        *counts.entry(line.to_owned()).or_insert(0) += 1;
    }
    counts
}

/// 64 KiB naming its round on every line, so a mix of two rounds shows.
fn versioned_content(round: u64) -> Vec<u8> {
    let line = format!("round {round:016}\n");
    line.repeat(65536 / line.len()).into_bytes()
}

fn is_whole_round(bytes: &[u8]) -> bool {
    let Some(first_line) = bytes.split(|byte| *byte == b'\n').next() else {
        return false;
    };
    let text = String::from_utf8_lossy(first_line);
    let Some(round) = text
        .strip_prefix("round ")
        .and_then(|round| round.parse::<u64>().ok())
    else {
        return false;
    };
    bytes == versioned_content(round).as_slice()
}

fn leftover_temporaries(directory: &Path) -> Vec<String> {
    fs::read_dir(directory)
        .expect("list")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with('.'))
        .collect()
}

// ---------------------------------------------------------------------------
// Atomic writes

#[test]
fn atomic_write_sets_the_mode_and_replaces_the_content() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let target = directory.path().join("journal.json");
    atomic::write_atomic(&target, b"first", PRIVATE_FILE_MODE).expect("write");
    assert_eq!(fs::read(&target).expect("read"), b"first");
    assert_eq!(
        fs::metadata(&target).expect("stat").permissions().mode() & 0o777,
        0o600
    );
    atomic::write_atomic(&target, b"second", 0o644).expect("write");
    assert_eq!(fs::read(&target).expect("read"), b"second");
    assert_eq!(
        fs::metadata(&target).expect("stat").permissions().mode() & 0o777,
        0o644
    );
    assert!(leftover_temporaries(directory.path()).is_empty());
}

#[test]
fn a_crash_before_the_rename_leaves_the_old_content_and_the_next_write_cleans_up() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let target = directory.path().join("journal.json");
    atomic::write_atomic(&target, b"old", PRIVATE_FILE_MODE).expect("write");
    // What a crash between writing the temporary file and the rename leaves.
    let leftover = directory.path().join(".journal.json.tmp.4242.0");
    fs::write(&leftover, b"new, half writ").expect("write the leftover");

    assert_eq!(
        atomic::read_optional(&target).expect("read"),
        Some(b"old".to_vec())
    );
    atomic::write_atomic(&target, b"new", PRIVATE_FILE_MODE).expect("write");
    assert_eq!(fs::read(&target).expect("read"), b"new");
    assert!(!leftover.exists(), "the next write removes the leftover");
    assert!(leftover_temporaries(directory.path()).is_empty());
}

#[test]
fn readers_and_a_killed_writer_never_see_a_torn_file() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let target = directory.path().join("target");
    let mut child = spawn_child("rewrite", directory.path(), &[]);
    child.wait_for("written");
    // Read while the child replaces the file as fast as it can.
    for _ in 0..200 {
        let bytes = fs::read(&target).expect("the target always exists");
        assert!(
            is_whole_round(&bytes),
            "a reader saw a torn file of {} bytes",
            bytes.len()
        );
    }
    child.kill();
    let bytes = fs::read(&target).expect("the target survives the kill");
    assert!(is_whole_round(&bytes), "the kill left a torn file");
    // Whatever temporary the kill left behind goes with the next write.
    atomic::write_atomic(&target, b"after", PRIVATE_FILE_MODE).expect("write");
    assert!(leftover_temporaries(directory.path()).is_empty());
}

// ---------------------------------------------------------------------------
// The state lock

#[test]
fn the_lock_refuses_a_second_process_and_names_the_holder() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let mut holder = spawn_child("hold-lock", directory.path(), &[]);
    holder.wait_for("locked");

    let error = StateLock::acquire(directory.path()).expect_err("the child holds the lock");
    match &error {
        StateError::Locked { pid, path } => {
            assert_eq!(*pid, Some(holder.pid()));
            assert_eq!(path, &directory.path().join("lock"));
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    assert!(
        error
            .to_string()
            .contains(&format!("process {}", holder.pid())),
        "{error}"
    );

    // The kernel releases the lock of a killed holder: no stale lock.
    holder.kill();
    let lock = StateLock::acquire(directory.path()).expect("free after the holder died");
    assert_eq!(
        roleout_installer::state::lock::recorded_holder(lock.state_dir()),
        Some(std::process::id())
    );
}

// ---------------------------------------------------------------------------
// The journal

#[test]
fn steps_are_recorded_before_and_after_and_survive_reopening() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let lock = StateLock::acquire(directory.path()).expect("lock");
    let mut journal = Journal::open(&lock, &suite()).expect("open");
    let build = digest_of_text("build 1");
    let run = journal
        .start_run(
            build.clone(),
            vec![planned("editor", &[Phase::Install, Phase::PostInstall])],
        )
        .expect("start");
    let editor = product("editor");

    assert_eq!(
        journal.begin_step(&editor, Phase::Install).expect("begin"),
        1
    );
    // What is on disk, read without the lock as `roleout status` would.
    let on_disk = journal::read(directory.path(), &suite())
        .expect("read")
        .expect("present");
    let step = on_disk
        .run
        .as_ref()
        .and_then(|run| run.step(&editor, Phase::Install))
        .expect("step");
    assert!(matches!(step.state, StepState::Running { .. }), "{step:?}");
    assert_eq!(step.attempts, 1);

    journal
        .finish_step(
            &editor,
            Phase::Install,
            StepResult::Success { exit_code: Some(0) },
        )
        .expect("finish");
    journal
        .begin_step(&editor, Phase::PostInstall)
        .expect("begin");
    journal
        .finish_step(
            &editor,
            Phase::PostInstall,
            StepResult::Success { exit_code: Some(0) },
        )
        .expect("finish");
    journal.finish_run().expect("finish the run");
    drop(journal);

    let journal = Journal::open(&lock, &suite()).expect("reopen");
    let record = journal.record();
    let recorded_run = record.run.as_ref().expect("the run is kept");
    assert_eq!(recorded_run.id, run);
    assert!(!recorded_run.in_progress());
    assert!(matches!(
        recorded_run
            .step(&editor, Phase::Install)
            .map(|step| &step.state),
        Some(StepState::Done {
            exit_code: Some(0),
            ..
        })
    ));
    let installed = journal
        .installed()
        .get(&editor)
        .expect("editor is installed");
    assert_eq!(installed.version, Version::new("2.1").expect("valid"));
    assert_eq!(installed.build, build);
    assert_eq!(installed.model, digest_of_text("model of editor"));
    assert_eq!(installed.run, run);
    assert!(journal.installed_matches(&planned("editor", &[])));
    let mut newer = planned("editor", &[]);
    newer.version = Version::new("2.2").expect("valid");
    assert!(!journal.installed_matches(&newer));
    assert_eq!(
        journal::suites(directory.path()).expect("list"),
        vec![suite()]
    );
    let mode = fs::metadata(journal.path())
        .expect("stat")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn an_interrupted_step_is_resumed_and_done_steps_are_never_run_again() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let lock = StateLock::acquire(directory.path()).expect("lock");
    let editor = product("editor");
    {
        let mut journal = Journal::open(&lock, &suite()).expect("open");
        journal
            .start_run(
                digest_of_text("build"),
                vec![planned("editor", &Phase::INSTALL_ORDER)],
            )
            .expect("start");
        journal
            .begin_step(&editor, Phase::PreInstall)
            .expect("begin");
        journal
            .finish_step(
                &editor,
                Phase::PreInstall,
                StepResult::Success { exit_code: Some(0) },
            )
            .expect("finish");
        journal.begin_step(&editor, Phase::Install).expect("begin");
        // The process stops here: nothing more is written.
    }
    let mut journal = Journal::open(&lock, &suite()).expect("reopen");
    let interrupted = journal.interrupted_step().expect("install was running");
    assert_eq!(
        interrupted.step,
        StepRef {
            product: editor.clone(),
            phase: Phase::Install
        }
    );
    assert_eq!(interrupted.attempt, 1);
    assert_eq!(
        journal.next_step(),
        NextStep::Interrupted(interrupted.clone())
    );

    // Not before the caller decided.
    assert!(matches!(
        journal.begin_step(&editor, Phase::Install),
        Err(StateError::StepTransition {
            state: "running",
            ..
        })
    ));
    // A done step is refused, whatever the caller asks.
    let error = journal
        .begin_step(&editor, Phase::PreInstall)
        .expect_err("done");
    assert!(
        error
            .to_string()
            .contains("pre-install step of editor: it is done"),
        "{error}"
    );

    journal
        .resume_interrupted(Resume::RunAgain)
        .expect("resume");
    assert_eq!(
        journal.next_step(),
        NextStep::Run(StepRef {
            product: editor.clone(),
            phase: Phase::Install
        })
    );
    assert_eq!(
        journal.begin_step(&editor, Phase::Install).expect("begin"),
        2,
        "the second attempt"
    );
}

#[test]
fn an_interrupted_step_that_may_not_run_twice_is_recorded_failed() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let lock = StateLock::acquire(directory.path()).expect("lock");
    let editor = product("editor");
    let mut journal = Journal::open(&lock, &suite()).expect("open");
    journal
        .start_run(
            digest_of_text("build"),
            vec![
                planned("editor", &[Phase::Install]),
                planned("viewer", &[Phase::Install]),
            ],
        )
        .expect("start");
    journal.begin_step(&editor, Phase::Install).expect("begin");
    drop(journal);

    let mut journal = Journal::open(&lock, &suite()).expect("reopen");
    journal
        .resume_interrupted(Resume::MarkFailed)
        .expect("resolve");
    let state = &journal
        .run_in_progress()
        .and_then(|run| run.step(&editor, Phase::Install))
        .expect("step")
        .state;
    match state {
        StepState::Failed { reason, .. } => {
            assert!(reason.contains("interrupted during attempt 1"), "{reason}")
        }
        other => panic!("expected failed, got {other:?}"),
    }
    assert_eq!(
        journal.next_step(),
        NextStep::Run(StepRef {
            product: product("viewer"),
            phase: Phase::Install
        })
    );
    journal
        .block_component(&product("viewer"), &editor)
        .expect("block");
    assert_eq!(journal.next_step(), NextStep::Settled);
    journal.finish_run().expect("finish");
    assert!(journal.installed().is_empty());
}

/// Kills the child after it recorded `running` for one step and before it
/// recorded the end: exactly the steps before are done.
#[test]
fn a_run_killed_during_a_step_shows_that_step_running_and_the_rest_untouched() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let mut child = spawn_child(
        "journal",
        directory.path(),
        &[(CHILD_STOP_AFTER, "7".to_owned())],
    );
    // Seven steps: the two components p00, p01 and the pre-install of p02.
    child.wait_for("began p02 install");
    child.kill();

    let lock = StateLock::acquire(directory.path()).expect("free after the kill");
    let journal = Journal::open(&lock, &suite()).expect("the journal is consistent");
    let run = journal.run_in_progress().expect("the run is in progress");
    let mut states = Vec::new();
    for component in &run.components {
        for step in &component.steps {
            states.push(step.state.name());
        }
    }
    assert_eq!(&states[..7], &["done"; 7]);
    assert_eq!(states[7], "running");
    assert!(states[8..].iter().all(|state| *state == "pending"));
    assert_eq!(journal.installed().len(), 2, "p00 and p01 are installed");
    let interrupted = journal.interrupted_step().expect("interrupted");
    assert_eq!(
        interrupted.step,
        StepRef {
            product: product("p02"),
            phase: Phase::Install
        }
    );
    assert_eq!(interrupted.attempt, 1);
}

/// Kills the child while it works freely (possibly in the middle of a
/// journal write), then finishes the run here: every step ends up done, and
/// only the interrupted one ever ran twice.
#[test]
fn a_run_killed_at_any_moment_resumes_without_running_done_steps_again() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let mut child = spawn_child("journal", directory.path(), &[]);
    let mut finished_seen = 0;
    while finished_seen < 10 {
        let line = child.next_line().expect("the child works");
        if line.starts_with("finished ") {
            finished_seen += 1;
        }
    }
    child.kill();

    let lock = StateLock::acquire(directory.path()).expect("free after the kill");
    let mut journal = Journal::open(&lock, &suite()).expect("the journal is consistent");
    // Done steps, then at most one running step, then pending steps.
    let mut states = Vec::new();
    for component in &journal.run_in_progress().expect("in progress").components {
        for step in &component.steps {
            states.push(step.state.name());
        }
    }
    let done = states.iter().take_while(|state| **state == "done").count();
    assert!(
        done >= 10,
        "the child reported 10 finished steps, the journal has {done}"
    );
    let rest: Vec<_> = states[done..]
        .iter()
        .copied()
        .filter(|state| *state != "pending")
        .collect();
    assert!(
        rest.is_empty() || rest == ["running"],
        "after the done steps: {rest:?}"
    );
    if rest == ["running"] {
        assert_eq!(
            states[done], "running",
            "the running step comes right after the done ones"
        );
    }

    let interrupted = journal
        .resume_interrupted(Resume::RunAgain)
        .expect("resume");
    loop {
        match journal.next_step() {
            NextStep::Run(step) => {
                journal
                    .begin_step(&step.product, step.phase)
                    .expect("begin");
                record_execution(directory.path(), &step);
                journal
                    .finish_step(
                        &step.product,
                        step.phase,
                        StepResult::Success { exit_code: Some(0) },
                    )
                    .expect("finish");
            }
            NextStep::Settled => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    journal.finish_run().expect("finish");
    assert_eq!(journal.installed().len(), CHILD_COMPONENTS);

    let counts = executions(directory.path());
    assert_eq!(counts.len(), CHILD_COMPONENTS * 3, "every step ran");
    for (step, count) in counts {
        let is_interrupted = interrupted.as_ref().is_some_and(|interrupted| {
            step == format!("{} {}", interrupted.step.product, interrupted.step.phase)
        });
        if is_interrupted {
            assert!(count <= 2, "{step} ran {count} times");
        } else {
            assert_eq!(count, 1, "{step} ran {count} times");
        }
    }
}

#[test]
fn a_reboot_request_waits_for_a_new_boot_id_and_the_run_goes_on() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let lock = StateLock::acquire(directory.path()).expect("lock");
    let driver = product("driver");
    {
        let mut journal = Journal::open(&lock, &suite()).expect("open");
        journal
            .start_run(
                digest_of_text("build"),
                vec![
                    planned("driver", &[Phase::Install, Phase::PostInstall]),
                    planned("tool", &[Phase::Install]),
                ],
            )
            .expect("start");
        journal.begin_step(&driver, Phase::Install).expect("begin");
        journal
            .finish_step(
                &driver,
                Phase::Install,
                StepResult::RebootRequired {
                    exit_code: Some(3010),
                    boot_id: "boot-one".to_owned(),
                },
            )
            .expect("finish");
        assert!(
            matches!(journal.next_step(), NextStep::WaitingForReboot { ref boot_id, .. } if boot_id == "boot-one")
        );
        assert!(
            journal.installed().is_empty(),
            "not installed before the reboot"
        );
        // The installer exits; the machine is asked to reboot.
    }
    let mut journal = Journal::open(&lock, &suite()).expect("reopen");
    assert_eq!(
        journal.check_reboot("boot-one").expect("check"),
        BootCheck::StillWaiting(StepRef {
            product: driver.clone(),
            phase: Phase::Install
        })
    );
    assert!(matches!(
        journal.finish_run(),
        Err(StateError::StepTransition { .. })
    ));
    drop(journal);

    // After the reboot, with a new boot id.
    let mut journal = Journal::open(&lock, &suite()).expect("reopen after reboot");
    assert_eq!(
        journal.check_reboot("boot-two\n").expect("check"),
        BootCheck::Rebooted(vec![StepRef {
            product: driver.clone(),
            phase: Phase::Install
        }])
    );
    assert!(matches!(
        journal
            .run_in_progress()
            .and_then(|run| run.step(&driver, Phase::Install))
            .map(|step| &step.state),
        Some(StepState::Done {
            after_reboot: true,
            exit_code: Some(3010),
            ..
        })
    ));
    assert_eq!(
        journal.next_step(),
        NextStep::Run(StepRef {
            product: driver.clone(),
            phase: Phase::PostInstall
        })
    );
    assert_eq!(
        journal.check_reboot("boot-two").expect("check"),
        BootCheck::NothingWaiting
    );
}

#[test]
fn a_corrupt_journal_is_named_kept_aside_and_never_silently_replaced() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let lock = StateLock::acquire(directory.path()).expect("lock");
    let path = directory.path().join("journal").join("office.json");
    fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
    let garbage = b"{\"format\": 1, \"suite\": \"office\", \"run\": {\"id\": tru";
    fs::write(&path, garbage).expect("write garbage");

    // A reader without the lock reports it and moves nothing.
    assert!(matches!(
        journal::read(directory.path(), &suite()),
        Err(StateError::CorruptJournal { .. })
    ));
    assert!(path.exists());

    let error = Journal::open(&lock, &suite()).expect_err("corrupt");
    let StateError::CorruptJournal {
        path: named,
        kept_as,
        reason,
    } = &error
    else {
        panic!("expected CorruptJournal, got {error:?}");
    };
    assert_eq!(named, &path);
    assert!(
        reason.contains("line 1"),
        "the parser's position is kept: {reason}"
    );
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "{error}"
    );
    assert!(
        kept_as
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with("office.json.corrupt-"))
    );
    assert_eq!(
        fs::read(kept_as).expect("the corrupt copy is kept"),
        garbage
    );
    assert!(!path.exists());

    // Opening again does not start over silently.
    match Journal::open(&lock, &suite()) {
        Err(StateError::JournalSetAside { kept_as: again, .. }) => assert_eq!(&again, kept_as),
        other => panic!("expected JournalSetAside, got {other:?}"),
    }
    // Only an explicit start over does, and it keeps the corrupt copy.
    let journal = Journal::start_over(&lock, &suite()).expect("start over");
    assert!(journal.run_in_progress().is_none());
    assert!(kept_as.exists());
    drop(journal);
    Journal::open(&lock, &suite()).expect("the new journal opens");
}

#[test]
fn a_journal_from_a_newer_format_is_refused_and_left_in_place() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let lock = StateLock::acquire(directory.path()).expect("lock");
    let path = directory.path().join("journal").join("office.json");
    fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
    fs::write(
        &path,
        br#"{"format": 3, "suite": "office", "something-new": true}"#,
    )
    .expect("write");
    match Journal::open(&lock, &suite()) {
        Err(StateError::UnsupportedFormat {
            path: named,
            found: 3,
            supported: 2,
        }) => assert_eq!(named, path),
        other => panic!("expected UnsupportedFormat, got {other:?}"),
    }
    assert!(path.exists());
}

/// The journal file holds a snapshot and then one line per change: a step
/// costs an append, not a rewrite of the whole suite.
#[test]
fn changes_are_appended_after_one_snapshot() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let lock = StateLock::acquire(directory.path()).expect("lock");
    let path = directory.path().join("journal").join("office.json");
    let mut journal = Journal::open(&lock, &suite()).expect("open");
    journal
        .start_run(
            digest_of_text("build"),
            vec![
                planned("editor", &[Phase::Install]),
                planned("viewer", &[Phase::Install]),
            ],
        )
        .expect("start");
    let lines = |path: &Path| fs::read_to_string(path).expect("read").lines().count();
    assert_eq!(lines(&path), 1, "a new run is one snapshot");
    let snapshot: serde_json::Value = serde_json::from_str(
        fs::read_to_string(&path)
            .expect("read")
            .lines()
            .next()
            .expect("a line"),
    )
    .expect("the snapshot is JSON");
    assert_eq!(snapshot["format"], 2);

    journal
        .begin_step(&product("editor"), Phase::Install)
        .expect("begin");
    journal
        .finish_step(
            &product("editor"),
            Phase::Install,
            StepResult::Success { exit_code: Some(0) },
        )
        .expect("finish");
    assert_eq!(lines(&path), 3, "one line per change");
    // Asking for what is already recorded writes nothing.
    journal.accept_serial(1).expect("serial");
    journal.accept_serial(1).expect("the same serial");
    assert_eq!(lines(&path), 4);

    let record = journal.record().clone();
    drop(journal);
    assert_eq!(
        journal::read(directory.path(), &suite())
            .expect("read")
            .expect("present"),
        record,
        "the snapshot with its changes applied is the record"
    );
    assert_eq!(
        Journal::open(&lock, &suite()).expect("reopen").record(),
        &record
    );
}

/// A change being appended when the machine stopped leaves a partial last
/// line: it is dropped (its writer never returned) and the file is
/// rewritten clean before anything follows it.
#[test]
fn a_torn_last_change_is_dropped_and_the_file_rewritten() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let lock = StateLock::acquire(directory.path()).expect("lock");
    let path = directory.path().join("journal").join("office.json");
    let editor = product("editor");
    let mut journal = Journal::open(&lock, &suite()).expect("open");
    journal
        .start_run(
            digest_of_text("build"),
            vec![planned("editor", &[Phase::Install, Phase::PostInstall])],
        )
        .expect("start");
    journal.begin_step(&editor, Phase::Install).expect("begin");
    drop(journal);
    let whole = fs::read(&path).expect("read");
    let mut torn = whole.clone();
    torn.extend_from_slice(br#"{"components":[{"index":0,"comp"#);
    fs::write(&path, &torn).expect("tear");

    let on_disk = journal::read(directory.path(), &suite())
        .expect("a reader drops the torn line")
        .expect("present");
    assert_eq!(on_disk.run.as_ref().expect("run").components.len(), 1);
    let mut journal = Journal::open(&lock, &suite()).expect("the journal opens");
    assert_eq!(journal.interrupted_step().expect("running").attempt, 1);
    let rewritten = fs::read_to_string(&path).expect("read");
    assert_eq!(
        rewritten.lines().count(),
        1,
        "a clean snapshot: {rewritten}"
    );
    journal
        .finish_step(
            &editor,
            Phase::Install,
            StepResult::Success { exit_code: Some(0) },
        )
        .expect("finish");
    drop(journal);
    let journal = Journal::open(&lock, &suite()).expect("reopen");
    assert!(matches!(
        journal
            .run_in_progress()
            .and_then(|run| run.step(&editor, Phase::Install))
            .map(|step| &step.state),
        Some(StepState::Done { .. })
    ));
}

/// A change that does not fit in the middle of the file is no torn write:
/// the journal is corrupt, named with the line.
#[test]
fn a_bad_change_before_the_last_line_makes_the_journal_corrupt() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let lock = StateLock::acquire(directory.path()).expect("lock");
    let path = directory.path().join("journal").join("office.json");
    let editor = product("editor");
    let mut journal = Journal::open(&lock, &suite()).expect("open");
    journal
        .start_run(
            digest_of_text("build"),
            vec![planned("editor", &[Phase::Install])],
        )
        .expect("start");
    journal.begin_step(&editor, Phase::Install).expect("begin");
    drop(journal);
    let text = fs::read_to_string(&path).expect("read");
    let mut lines: Vec<&str> = text.lines().collect();
    let bad = lines[1].replace(r#""index":0"#, r#""index":7"#);
    lines.insert(1, &bad);
    fs::write(&path, lines.join("\n") + "\n").expect("damage");

    let error = Journal::open(&lock, &suite()).expect_err("corrupt");
    let StateError::CorruptJournal { reason, .. } = &error else {
        panic!("expected CorruptJournal, got {error:?}");
    };
    assert!(
        reason.contains("line 2") && reason.contains("component 7"),
        "{reason}"
    );
}

/// A journal written by the Roleout before appends (format 1: the whole
/// record, pretty-printed) is read as it is and rewritten as format 2.
#[test]
fn a_format_1_journal_is_read_and_rewritten() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let lock = StateLock::acquire(directory.path()).expect("lock");
    let path = directory.path().join("journal").join("office.json");
    let editor = product("editor");
    let mut journal = Journal::open(&lock, &suite()).expect("open");
    journal
        .start_run(
            digest_of_text("build"),
            vec![planned("editor", &[Phase::Install, Phase::PostInstall])],
        )
        .expect("start");
    journal.begin_step(&editor, Phase::Install).expect("begin");
    journal
        .finish_step(
            &editor,
            Phase::Install,
            StepResult::Success { exit_code: Some(0) },
        )
        .expect("finish");
    let mut old = serde_json::to_value(journal.record()).expect("JSON");
    drop(journal);
    old["format"] = json!(1);
    fs::write(
        &path,
        serde_json::to_string_pretty(&old).expect("JSON") + "\n",
    )
    .expect("write format 1");

    let mut journal = Journal::open(&lock, &suite()).expect("format 1 opens");
    assert_eq!(
        journal.next_step(),
        NextStep::Run(StepRef {
            product: editor.clone(),
            phase: Phase::PostInstall
        }),
        "the done step stays done"
    );
    let first: serde_json::Value = serde_json::from_str(
        fs::read_to_string(&path)
            .expect("read")
            .lines()
            .next()
            .expect("a line"),
    )
    .expect("JSON");
    assert_eq!(first["format"], 2, "rewritten as format 2");
    journal
        .begin_step(&editor, Phase::PostInstall)
        .expect("begin");
    drop(journal);
    assert_eq!(
        Journal::open(&lock, &suite())
            .expect("reopen")
            .interrupted_step()
            .expect("running")
            .step
            .phase,
        Phase::PostInstall
    );
}

/// A deferred end is on disk once the next durable record (or a sync) is,
/// and a `kill -9` before that loses nothing: the write is in the file.
#[test]
fn a_deferred_end_is_written_at_once_and_synced_with_the_next_record() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let lock = StateLock::acquire(directory.path()).expect("lock");
    let editor = product("editor");
    let viewer = product("viewer");
    let mut journal = Journal::open(&lock, &suite()).expect("open");
    journal
        .start_run(
            digest_of_text("build"),
            vec![
                planned("editor", &[Phase::Install]),
                planned("viewer", &[Phase::Install]),
            ],
        )
        .expect("start");
    journal.begin_step(&editor, Phase::Install).expect("begin");
    journal
        .finish_step_deferred(
            &editor,
            Phase::Install,
            StepResult::Success { exit_code: Some(0) },
        )
        .expect("finish");
    let on_disk = journal::read(directory.path(), &suite())
        .expect("read")
        .expect("present");
    assert!(on_disk.installed.contains_key(&editor), "written at once");
    journal.begin_step(&viewer, Phase::Install).expect("begin");
    journal.sync().expect("nothing left to sync");
    drop(journal);
    let journal = Journal::open(&lock, &suite()).expect("reopen");
    assert!(journal.installed().contains_key(&editor));
    assert_eq!(
        journal.interrupted_step().expect("running").step.product,
        viewer
    );
}

#[test]
fn the_last_accepted_serial_survives_reopening_and_refuses_a_rollback() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let lock = StateLock::acquire(directory.path()).expect("lock");
    let mut journal = Journal::open(&lock, &suite()).expect("open");
    assert_eq!(journal.last_accepted_serial(), None);
    journal.accept_serial(5).expect("first serial");
    drop(journal);

    let mut journal = Journal::open(&lock, &suite()).expect("reopen");
    assert_eq!(journal.last_accepted_serial(), Some(5));
    let error = journal.accept_serial(4).expect_err("older");
    assert!(matches!(
        error,
        StateError::Rollback {
            offered: 4,
            accepted: 5,
            ..
        }
    ));
    assert!(error.to_string().contains("suite office"), "{error}");
    journal.accept_serial(5).expect("the same metadata again");
    journal.accept_serial(6).expect("newer");
    drop(journal);
    let journal = Journal::open(&lock, &suite()).expect("reopen");
    assert_eq!(journal.last_accepted_serial(), Some(6));
}

#[test]
fn a_second_run_waits_for_the_first_to_end() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let lock = StateLock::acquire(directory.path()).expect("lock");
    let mut journal = Journal::open(&lock, &suite()).expect("open");
    journal
        .start_run(digest_of_text("one"), vec![planned("a", &[Phase::Install])])
        .expect("start");
    assert!(matches!(
        journal.start_run(digest_of_text("two"), vec![]),
        Err(StateError::RunInProgress { .. })
    ));
    journal
        .abandon_run("build two replaces build one")
        .expect("abandon");
    journal
        .start_run(digest_of_text("two"), vec![planned("a", &[Phase::Install])])
        .expect("start");
    assert!(matches!(
        journal.start_run(
            digest_of_text("three"),
            vec![planned("a", &[]), planned("a", &[])]
        ),
        Err(StateError::RunInProgress { .. })
    ));
    journal.abandon_run("test").expect("abandon");
    assert!(matches!(
        journal.start_run(
            digest_of_text("three"),
            vec![planned("a", &[]), planned("a", &[])]
        ),
        Err(StateError::DuplicateComponent { .. })
    ));
}

// ---------------------------------------------------------------------------
// The outbox

fn report(id: &str) -> Report {
    Report::new(
        ReportId::new(id).expect("valid"),
        ReportKind::new("step-status").expect("valid"),
        json!({ "about": id }),
    )
}

#[test]
fn the_outbox_delivers_in_order_keeps_the_rest_after_a_failure_and_never_twice() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let lock = StateLock::acquire(directory.path()).expect("lock");
    let mut outbox = Outbox::open(&lock).expect("open");
    for id in ["first", "second", "third"] {
        assert!(outbox.push(&report(id)).expect("push"));
    }
    assert!(
        !outbox.push(&report("second")).expect("push"),
        "same id: kept once"
    );
    drop(outbox);

    // roleoutd takes the first report, then becomes unreachable.
    let mut outbox = Outbox::open(&lock).expect("reopen");
    let mut sent = Vec::new();
    let delivery = outbox
        .deliver_all(|report| {
            if sent.is_empty() {
                sent.push(report.id.to_string());
                Ok(())
            } else {
                Err("connection refused")
            }
        })
        .expect("deliver");
    assert_eq!(delivery.delivered, 1);
    let (stopped_id, error) = delivery.stopped_at.expect("stopped at the second");
    assert_eq!(stopped_id.as_str(), "second");
    assert_eq!(error, "connection refused");
    drop(outbox);

    let mut outbox = Outbox::open(&lock).expect("reopen");
    let pending: Vec<_> = outbox
        .pending()
        .expect("read")
        .into_iter()
        .map(|report| report.id.to_string())
        .collect();
    assert_eq!(pending, ["second", "third"]);
    assert_eq!(
        outbox.pending().expect("read")[1].payload,
        json!({ "about": "third" })
    );
    // A report made after the failure goes after the ones waiting.
    outbox.push(&report("fourth")).expect("push");
    let delivery = outbox
        .deliver_all(|report| {
            sent.push(report.id.to_string());
            Ok::<(), ()>(())
        })
        .expect("deliver");
    assert_eq!(delivery.delivered, 3);
    assert!(delivery.stopped_at.is_none());
    drop(outbox);

    let mut outbox = Outbox::open(&lock).expect("reopen");
    assert!(outbox.is_empty());
    let delivery = outbox
        .deliver_all(|report| {
            sent.push(report.id.to_string());
            Ok::<(), ()>(())
        })
        .expect("deliver");
    assert_eq!(delivery.delivered, 0);
    assert_eq!(
        sent,
        ["first", "second", "third", "fourth"],
        "each report sent once, in order"
    );
}

#[test]
fn a_corrupt_report_is_set_aside_and_the_others_go_on() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let lock = StateLock::acquire(directory.path()).expect("lock");
    let mut outbox = Outbox::open(&lock).expect("open");
    outbox.push(&report("first")).expect("push");
    outbox.push(&report("second")).expect("push");
    drop(outbox);
    let log = directory.path().join("outbox").join("reports.log");
    let text = fs::read_to_string(&log).expect("read the log");
    let second_line = text.lines().nth(1).expect("two lines");
    fs::write(&log, format!("{{ not json\n{second_line}\n")).expect("damage");

    let mut outbox = Outbox::open(&lock).expect("reopen");
    let error = outbox.pending().expect_err("corrupt");
    let StateError::CorruptReport {
        path,
        kept_as,
        reason,
    } = &error
    else {
        panic!("expected CorruptReport, got {error:?}");
    };
    assert_eq!(path, &log);
    assert!(reason.contains("line 1"), "{reason}");
    assert_eq!(
        fs::read(kept_as).expect("the damaged line is kept"),
        b"{ not json\n"
    );
    let pending: Vec<_> = outbox
        .pending()
        .expect("read")
        .into_iter()
        .map(|report| report.id.to_string())
        .collect();
    assert_eq!(pending, ["second"]);
    drop(outbox);
    assert_eq!(Outbox::open(&lock).expect("reopen").pending_ids().len(), 1);
}

/// A report being appended when the machine stopped leaves a partial last
/// line: its push never returned, so it is dropped, and what follows is
/// appended cleanly.
#[test]
fn a_torn_last_report_is_dropped() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let lock = StateLock::acquire(directory.path()).expect("lock");
    let mut outbox = Outbox::open(&lock).expect("open");
    outbox.push(&report("first")).expect("push");
    drop(outbox);
    let log = directory.path().join("outbox").join("reports.log");
    let mut file = OpenOptions::new().append(true).open(&log).expect("open");
    file.write_all(br#"{"report":{"format":1,"id":"sec"#)
        .expect("tear");
    drop(file);

    let mut outbox = Outbox::open(&lock).expect("reopen");
    assert_eq!(
        outbox.pending_ids(),
        [ReportId::new("first").expect("valid")]
    );
    outbox.push(&report("third")).expect("push");
    drop(outbox);
    let ids: Vec<String> = roleout_installer::state::outbox::waiting_ids(directory.path())
        .expect("read")
        .into_iter()
        .map(|id| id.to_string())
        .collect();
    assert_eq!(ids, ["first", "third"]);
}

/// Reports kept one file each by an older Roleout move into the log, in
/// their order, ahead of anything newer.
#[test]
fn reports_kept_as_files_by_an_older_roleout_move_into_the_log() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let outbox_dir = directory.path().join("outbox");
    fs::create_dir_all(&outbox_dir).expect("mkdir");
    for (sequence, id) in [(0, "older"), (1, "newer")] {
        fs::write(
            outbox_dir.join(format!("{sequence:020}.{id}.json")),
            serde_json::to_vec(&report(id)).expect("JSON"),
        )
        .expect("write");
    }
    let lock = StateLock::acquire(directory.path()).expect("lock");
    let mut outbox = Outbox::open(&lock).expect("open");
    outbox.push(&report("latest")).expect("push");
    let ids: Vec<String> = outbox
        .pending()
        .expect("read")
        .into_iter()
        .map(|report| report.id.to_string())
        .collect();
    assert_eq!(ids, ["older", "newer", "latest"]);
    let files: Vec<String> = fs::read_dir(&outbox_dir)
        .expect("list")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(files, ["reports.log"]);
}

// ---------------------------------------------------------------------------
// The payload cache

fn open_cache(directory: &Path, lock: &StateLock) -> PayloadCache {
    PayloadCache::open(lock, directory.join("cache")).expect("open the cache")
}

#[test]
fn the_cache_verifies_what_enters_and_refuses_a_mismatch() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let lock = StateLock::acquire(directory.path().join("state")).expect("lock");
    let cache = open_cache(directory.path(), &lock);
    let payload = b"#!/bin/sh\necho installed\n".repeat(10_000);
    let (digest, size) = hash_reader(&payload[..]).expect("in memory");

    assert_eq!(cache.get(&digest, size).expect("get"), None);
    let path = cache
        .insert_from_reader(&digest, size, &payload[..])
        .expect("insert");
    assert_eq!(
        path,
        directory
            .path()
            .join("cache/sha256")
            .join(&digest.as_str()[..2])
            .join(digest.as_str())
    );
    assert_eq!(fs::read(&path).expect("read"), payload);
    assert_eq!(
        fs::metadata(&path).expect("stat").permissions().mode() & 0o777,
        ENTRY_MODE
    );
    assert_eq!(cache.get(&digest, size).expect("get"), Some(path.clone()));
    assert_eq!(cache.get_verified(&digest, size).expect("get"), Some(path));

    // Other bytes than the manifest promises: refused, nothing cached.
    let other = b"#!/bin/sh\nrm -rf /\n".to_vec();
    let promised = digest_of_text("the real payload");
    let error = cache
        .insert_from_reader(&promised, other.len() as u64, &other[..])
        .expect_err("mismatch");
    let actual = hash_reader(&other[..]).expect("in memory").0;
    match &error {
        StateError::DigestMismatch {
            expected,
            actual: got,
        } => {
            assert_eq!(expected, &promised);
            assert_eq!(got, &actual);
        }
        other => panic!("expected DigestMismatch, got {other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.contains(promised.as_str()) && message.contains(actual.as_str()),
        "{message}"
    );
    assert_eq!(cache.get(&promised, other.len() as u64).expect("get"), None);
    assert!(!cache.entry_path(&actual).exists());
    assert_eq!(cache.entries().expect("list").len(), 1);
    assert!(
        fs::read_dir(directory.path().join("cache/tmp"))
            .expect("list")
            .next()
            .is_none()
    );

    // A source sending more, or less, than promised.
    let (long_digest, _) = hash_reader(&b"12345"[..]).expect("in memory");
    assert!(matches!(
        cache.insert_from_reader(&long_digest, 4, &b"12345"[..]),
        Err(StateError::SizeMismatch {
            expected: 4,
            actual: None,
            ..
        })
    ));
    assert!(matches!(
        cache.insert_from_reader(&long_digest, 6, &b"12345"[..]),
        Err(StateError::SizeMismatch {
            expected: 6,
            actual: Some(5),
            ..
        })
    ));
    assert_eq!(cache.entries().expect("list").len(), 1);
}

#[test]
fn a_damaged_entry_is_dropped_so_it_is_fetched_again() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let lock = StateLock::acquire(directory.path().join("state")).expect("lock");
    let cache = open_cache(directory.path(), &lock);
    let payload = b"payload bytes".to_vec();
    let (digest, size) = hash_reader(&payload[..]).expect("in memory");
    let path = cache
        .insert_from_reader(&digest, size, &payload[..])
        .expect("insert");

    // Same size, other bytes: only the digest check sees it.
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
    fs::write(&path, b"PAYLOAD BYTES").expect("tamper");
    assert_eq!(cache.get(&digest, size).expect("get"), Some(path.clone()));
    assert_eq!(cache.get_verified(&digest, size).expect("get"), None);
    assert!(!path.exists());

    // Another size: the cheap check sees it.
    cache
        .insert_from_reader(&digest, size, &payload[..])
        .expect("insert");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
    fs::write(&path, b"short").expect("truncate");
    assert_eq!(cache.get(&digest, size).expect("get"), None);
    assert!(!path.exists());
}

#[test]
fn materialize_links_read_only_payloads_and_copies_the_others() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let lock = StateLock::acquire(directory.path().join("state")).expect("lock");
    let cache = open_cache(directory.path(), &lock);
    let payload = b"setup data".to_vec();
    let (digest, size) = hash_reader(&payload[..]).expect("in memory");
    let entry = cache
        .insert_from_reader(&digest, size, &payload[..])
        .expect("insert");
    let run_directory = directory.path().join("payloads");
    fs::create_dir(&run_directory).expect("mkdir");

    let linked = run_directory.join("setup.dat");
    assert_eq!(
        cache
            .materialize(&digest, &linked, ENTRY_MODE)
            .expect("link"),
        Materialized::Linked
    );
    assert_eq!(
        fs::metadata(&linked).expect("stat").ino(),
        fs::metadata(&entry).expect("stat").ino()
    );

    let copied = run_directory.join("setup.sh");
    assert_eq!(
        cache.materialize(&digest, &copied, 0o700).expect("copy"),
        Materialized::Copied
    );
    assert_eq!(fs::read(&copied).expect("read"), payload);
    assert_eq!(
        fs::metadata(&copied).expect("stat").permissions().mode() & 0o777,
        0o700
    );
    assert_ne!(
        fs::metadata(&copied).expect("stat").ino(),
        fs::metadata(&entry).expect("stat").ino()
    );
    assert_eq!(
        fs::metadata(&entry).expect("stat").permissions().mode() & 0o777,
        ENTRY_MODE
    );

    // Materializing again replaces the file in place.
    cache.materialize(&digest, &copied, 0o700).expect("again");
    assert!(leftover_temporaries(&run_directory).is_empty());

    let missing = digest_of_text("never cached");
    assert!(matches!(
        cache.materialize(&missing, &run_directory.join("x"), 0o600),
        Err(StateError::NotCached { .. })
    ));
}

#[test]
fn retain_and_trim_evict_what_the_plan_does_not_need() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let lock = StateLock::acquire(directory.path().join("state")).expect("lock");
    let cache = open_cache(directory.path(), &lock).with_max_bytes(250);
    let mut digests = Vec::new();
    for index in 0..4u8 {
        let payload = [index; 100];
        let (digest, size) = hash_reader(&payload[..]).expect("in memory");
        let path = cache
            .insert_from_reader(&digest, size, &payload[..])
            .expect("insert");
        // Last use: entry 0 oldest, entry 3 newest (set, not waited for).
        File::open(&path)
            .and_then(|file| {
                file.set_modified(
                    SystemTime::UNIX_EPOCH + Duration::from_secs(1_000 + u64::from(index)),
                )
            })
            .expect("set the time of last use");
        digests.push(digest);
    }
    assert_eq!(cache.total_bytes().expect("size"), 400);

    // Over the bound of 250: the oldest unprotected entries go first. Entry 0
    // is the oldest but protected by the plan.
    let protect: HashSet<Sha256> = [digests[0].clone()].into();
    let eviction = cache.trim(&protect).expect("trim");
    assert_eq!(eviction.removed, 2);
    assert_eq!(eviction.freed_bytes, 200);
    assert_eq!(eviction.remaining_bytes, 200);
    let left: HashSet<Sha256> = cache
        .entries()
        .expect("list")
        .into_iter()
        .map(|entry| entry.digest)
        .collect();
    assert_eq!(left, [digests[0].clone(), digests[3].clone()].into());

    // The new plan needs only entry 3.
    let eviction = cache.retain(&[digests[3].clone()].into()).expect("retain");
    assert_eq!(eviction.removed, 1);
    assert_eq!(eviction.remaining_bytes, 100);
    assert_eq!(cache.get(&digests[0], 100).expect("get"), None);
    assert!(cache.get(&digests[3], 100).expect("get").is_some());

    // A payload larger than the whole bound is refused before reading.
    let big = vec![9u8; 300];
    let (big_digest, big_size) = hash_reader(&big[..]).expect("in memory");
    assert!(matches!(
        cache.insert_from_reader(&big_digest, big_size, &big[..]),
        Err(StateError::TooLarge {
            size: 300,
            limit: 250,
            ..
        })
    ));
}

#[test]
fn opening_the_cache_removes_unfinished_downloads() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let lock = StateLock::acquire(directory.path().join("state")).expect("lock");
    drop(open_cache(directory.path(), &lock));
    let unfinished = directory.path().join("cache/tmp/.tmpabc123");
    fs::write(&unfinished, b"half a download").expect("write");
    // Where an older roleout left its unfinished downloads.
    let older = directory.path().join("cache/incoming/abc.1.0");
    fs::create_dir_all(older.parent().expect("a folder")).expect("mkdir");
    fs::write(&older, b"half a download").expect("write");
    let cache = open_cache(directory.path(), &lock);
    assert!(!unfinished.exists());
    assert!(!older.exists());
    assert!(cache.entries().expect("list").is_empty());
}
