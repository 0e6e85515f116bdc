//! The kill-point harness: a suite of components whose commands write to a
//! ledger is installed by the real agent against a real roleoutd and slapd,
//! the agent is killed with SIGKILL at random moments (during downloads,
//! commands, journal writes and reports; once a round roleoutd is killed
//! instead, and started again, and once a round its slapd, which roleoutd
//! starts again), and run again until a run ends; then the ledger and the
//! directory are counted.
//!
//! Counted, per round (a fresh machine):
//! - **runs that never converge**: must be 0 (a run after the kills ends
//!   with every component installed);
//! - **lost reports**: a component without its install report in the
//!   directory; must be 0;
//! - **duplicated reports**: a component with more than one successful
//!   install report; must be 0;
//! - **re-runs of interrupted commands** (started again without having
//!   finished): allowed, and 0 while supervisors survive the agent;
//! - **re-runs of finished commands** (started again after they finished):
//!   must be 0. Each command runs under a supervisor that outlives the
//!   agent and records how the command ended, so a resumed agent reads the
//!   end (or waits for the command) rather than starting it again.
//!
//! The size is bounded in CI (`ROLEOUT_KILL_ROUNDS`, 2 rounds of
//! `ROLEOUT_KILLS_PER_ROUND`, 5, kill points); by hand:
//! `ROLEOUT_KILL_ROUNDS=100 ROLEOUT_KILLS_PER_ROUND=10 cargo test -p roleout-tests --test killpoints -- --nocapture`.

#![allow(clippy::unwrap_used)] // Tests fail loudly by design.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use roleout_model::protocol::{ReportOutcome, ReportStep};
use roleout_tests::{Machine, World, binary};

const COMPONENTS: usize = 30;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// A small generator for the kill moments (xorshift64*).
struct Random(u64);

impl Random {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % bound.max(1)
    }
}

/// Writes the suite `kp` of [`COMPONENTS`] products, each after the one
/// before it, whose install writes `start ID` and `done ID` to `ledger`.
fn write_catalog(directory: &Path, ledger: &Path) {
    fs::create_dir_all(directory).unwrap();
    let mut members = String::new();
    for index in 1..=COMPONENTS {
        let id = format!("kp-{index:02}");
        let after = if index > 1 {
            format!(
                r#"<dependencies><prerequisite product="kp-{:02}"/></dependencies>"#,
                index - 1
            )
        } else {
            String::new()
        };
        let script = format!(
            "echo start {id} >> {ledger}; sleep 0.0$((RANDOM % 5 + 1)) 2>/dev/null || sleep 0.02; echo done {id} >> {ledger}",
            ledger = ledger.display()
        );
        fs::write(
            directory.join(format!("{id}.xml")),
            format!(
                r#"<product xmlns="urn:roleout:descriptor:1" id="{id}" version="1.0">{after}<install><arg>bash</arg><arg>-c</arg><arg>{script}</arg></install></product>"#
            ),
        )
        .unwrap();
        members.push_str(&format!(r#"<product ref="{id}"/>"#));
    }
    fs::write(
        directory.join("suite-kp.xml"),
        format!(
            r#"<suite xmlns="urn:roleout:descriptor:1" id="kp" version="1"><products>{members}</products></suite>"#
        ),
    )
    .unwrap();
}

/// `roleout install kp` on `machine`, started, not waited for.
fn agent(machine: &Machine) -> std::process::Child {
    Command::new(binary("roleout"))
        .arg("--state-dir")
        .arg(&machine.state)
        .args(["--json", "install", "kp", "--root"])
        .arg(&machine.root)
        .arg("--default-response-file")
        .arg(&machine.default_response_file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// What one round's ledger says, per component: how often its command
/// started again after finishing, and after not finishing.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Ledger {
    finished_rerun: usize,
    interrupted_rerun: usize,
    never_finished: usize,
}

fn read_ledger(ledger: &Path) -> Ledger {
    let text = fs::read_to_string(ledger).unwrap_or_default();
    let mut events: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for line in text.lines() {
        if let Some((event, id)) = line.split_once(' ') {
            events.entry(id).or_default().push(event);
        }
    }
    let mut counted = Ledger::default();
    for index in 1..=COMPONENTS {
        let id = format!("kp-{index:02}");
        let list = events.get(id.as_str()).cloned().unwrap_or_default();
        let mut finished = false;
        let mut running = false;
        for event in &list {
            match *event {
                "start" => {
                    if finished {
                        counted.finished_rerun += 1;
                    } else if running {
                        counted.interrupted_rerun += 1;
                    }
                    running = true;
                }
                _ => {
                    finished = true;
                    running = false;
                }
            }
        }
        if !finished {
            counted.never_finished += 1;
        }
    }
    counted
}

#[test]
fn killed_agents_converge_and_lose_no_report() {
    let rounds = setting("ROLEOUT_KILL_ROUNDS", 2);
    let kills = setting("ROLEOUT_KILLS_PER_ROUND", 5);
    // Every report is kept (retention would otherwise prune the install
    // reports of a machine that ran more than ten times since).
    let mut world = World::start_with(&["--report-history-runs", "1000000"]);
    let ledgers = world.top().join("ledgers");
    fs::create_dir_all(&ledgers).unwrap();
    let ledger_of = |round: usize| ledgers.join(format!("round-{round}"));
    // One catalog whose commands write to the ledger named by the round
    // (a file per round, through a symlink the round points at itself).
    let current = ledgers.join("current");
    write_catalog(&world.top().join("kp"), &current);
    world.import(&world.top().join("kp"), None);
    world.admin("build kp");
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(7, |elapsed| elapsed.as_nanos() as u64)
        | 1;
    let mut random = Random(seed);
    let mut total = Ledger::default();
    let mut lost_reports = 0;
    let mut duplicated_reports = 0;
    let mut kill_points = 0;
    let mut roleoutd_kills = 0;
    let mut slapd_kills = 0;
    let started = Instant::now();
    for round in 0..rounds {
        let _ = fs::remove_file(&current);
        std::os::unix::fs::symlink(ledger_of(round), &current).unwrap();
        let machine = world.enroll(&format!("kp-{round:03}"), "end-user");
        for kill_point in 0..kills {
            let mut child = agent(&machine);
            std::thread::sleep(Duration::from_millis(random.below(1500)));
            if kill_point == kills / 2 {
                // roleoutd (not the agent) crashes under a running agent,
                // and comes back; the agent runs on or gives up and is run
                // again.
                world.crash_roleoutd();
                roleoutd_kills += 1;
            } else if kill_point == kills - 1 && kills > 2 {
                // The directory crashes under roleoutd, which starts it
                // again; meanwhile the agent is answered 503 and waits.
                assert!(world.crash_slapd(), "no managed slapd to kill");
                slapd_kills += 1;
            } else {
                let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            }
            let _ = child.wait();
            kill_points += 1;
        }
        // Runs until one ends; a run that does not converge in ten is a
        // failure.
        let mut converged = false;
        for _ in 0..10 {
            let mut child = agent(&machine);
            let status = child.wait().unwrap();
            if status.success() {
                converged = true;
                break;
            }
        }
        assert!(
            converged,
            "round {round}: no run ended after the kills (seed {seed})"
        );
        let counted = read_ledger(&ledger_of(round));
        assert_eq!(
            counted.never_finished, 0,
            "round {round}: a component never ran to its end (seed {seed})"
        );
        total.finished_rerun += counted.finished_rerun;
        total.interrupted_rerun += counted.interrupted_rerun;
        let reports = world.reports(&machine);
        for index in 1..=COMPONENTS {
            let id = format!("kp-{index:02}");
            let reported = reports
                .iter()
                .filter(|report| {
                    report.component.as_str() == id
                        && report.step == ReportStep::Install
                        && report.outcome == ReportOutcome::Success
                })
                .count();
            match reported {
                0 => lost_reports += 1,
                1 => {}
                _ => duplicated_reports += 1,
            }
        }
    }
    eprintln!(
        "kill points: {kill_points} ({roleoutd_kills} of roleoutd, {slapd_kills} of slapd) in {rounds} round(s) of {COMPONENTS} components, {:.0} s, seed {seed}; \
         runs that never converged: 0; lost reports: {lost_reports}; duplicated reports: {duplicated_reports}; \
         re-runs of interrupted commands: {}; re-runs of finished commands: {}",
        started.elapsed().as_secs_f64(),
        total.interrupted_rerun,
        total.finished_rerun
    );
    assert_eq!(lost_reports, 0, "reports were lost (seed {seed})");
    assert_eq!(
        duplicated_reports, 0,
        "steps were reported twice (seed {seed})"
    );
    assert_eq!(
        total.finished_rerun, 0,
        "commands that had finished ran again (seed {seed})"
    );
}
