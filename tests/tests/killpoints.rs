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
use roleout_directory::catalog::reports::StoredReport;
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

/// How many reports say component `id` installed.
fn successful_installs(reports: &[StoredReport], id: &str) -> usize {
    reports
        .iter()
        .filter(|report| {
            report.component.as_str() == id
                && report.step == ReportStep::Install
                && report.outcome == ReportOutcome::Success
        })
        .count()
}

/// `roleout install kp` on `machine`, started, not waited for.
fn agent(machine: &Machine) -> std::process::Child {
    agent_command(machine).spawn().unwrap()
}

/// The command line of `roleout install kp` on `machine`, output dropped.
fn agent_command(machine: &Machine) -> Command {
    let mut command = Command::new(binary("roleout"));
    command
        .arg("--state-dir")
        .arg(&machine.state)
        .args(["--json", "install", "kp", "--root"])
        .arg(&machine.root)
        .arg("--default-response-file")
        .arg(&machine.default_response_file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
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
        if kills > 2 {
            // The directory came back through roleoutd's watchdog, not a
            // restart of roleoutd.
            let restarts = world
                .roleoutd_log()
                .matches("the managed directory stopped; starting it again")
                .count();
            assert!(
                restarts >= slapd_kills,
                "round {round}: roleoutd restarted its slapd {restarts} time(s) for {slapd_kills} kill(s)"
            );
        }
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
            let reported = successful_installs(&reports, &id);
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

/// A TCP relay on 127.0.0.1 that makes the network between the agent and
/// roleoutd slow and lossy: every chunk waits `delay` in each direction,
/// and one connection in `cut_one_in` is cut after a random number of
/// bytes (as a connection is lost when too many of its packets are). It
/// stops accepting, and its threads end, when dropped.
struct LossyLink {
    address: std::net::SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    cut: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    accepter: Option<std::thread::JoinHandle<()>>,
}

impl LossyLink {
    fn start(target: &str, delay: Duration, cut_one_in: u64, seed: u64) -> LossyLink {
        use std::io::{Read, Write};
        use std::net::{Shutdown, TcpListener, TcpStream};
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let address = listener.local_addr().unwrap();
        let target = target.to_owned();
        let stop = Arc::new(AtomicBool::new(false));
        let cut = Arc::new(AtomicUsize::new(0));
        let (stopping, cutting) = (stop.clone(), cut.clone());
        let accepter = std::thread::spawn(move || {
            let mut random = Random(seed);
            while !stopping.load(Ordering::Relaxed) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                client.set_nonblocking(false).unwrap();
                // Bytes until the cut, or none.
                let budget = if random.below(cut_one_in) == 0 {
                    cutting.fetch_add(1, Ordering::Relaxed);
                    1024 + random.below(128 * 1024) as usize
                } else {
                    usize::MAX
                };
                let left = Arc::new(AtomicUsize::new(budget));
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let left = left.clone();
                    let stopping = stopping.clone();
                    std::thread::spawn(move || {
                        let _ = from.set_read_timeout(Some(Duration::from_millis(200)));
                        let mut chunk = [0_u8; 16 * 1024];
                        while !stopping.load(Ordering::Relaxed) {
                            let count = match from.read(&mut chunk) {
                                Ok(0) => break,
                                Ok(count) => count,
                                Err(error)
                                    if matches!(
                                        error.kind(),
                                        std::io::ErrorKind::WouldBlock
                                            | std::io::ErrorKind::TimedOut
                                    ) =>
                                {
                                    continue;
                                }
                                Err(_) => break,
                            };
                            std::thread::sleep(delay);
                            let allowed = left.load(Ordering::Relaxed).min(count);
                            left.fetch_sub(allowed, Ordering::Relaxed);
                            if to.write_all(&chunk[..allowed]).is_err() || allowed < count {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Both);
                        let _ = from.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        LossyLink {
            address,
            stop,
            cut,
            accepter: Some(accepter),
        }
    }
}

impl Drop for LossyLink {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(accepter) = self.accepter.take() {
            let _ = accepter.join();
        }
    }
}

/// The agent reaches roleoutd over a slow, lossy link (60 ms per chunk each
/// way, one connection in two cut partway): runs fail and are run again,
/// and in the end every component is installed once and reported once.
#[test]
fn a_slow_lossy_network_delays_runs_but_loses_and_repeats_nothing() {
    let world = World::start_with(&["--report-history-runs", "1000000"]);
    let ledger = world.top().join("ledger");
    write_catalog(&world.top().join("kp"), &ledger);
    world.import(&world.top().join("kp"), None);
    world.admin("build kp");
    let machine = world.enroll("lossy-1", "end-user");
    let target = world.url.strip_prefix("https://").unwrap().to_owned();
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(7, |elapsed| elapsed.as_nanos() as u64)
        | 1;
    let link = LossyLink::start(&target, Duration::from_millis(60), 2, seed);
    // The machine now reaches roleoutd only through the link.
    let enrolment = machine.state.join("enrolment.json");
    let text = fs::read_to_string(&enrolment).unwrap();
    fs::write(
        &enrolment,
        text.replace(&world.url, &format!("https://{}", link.address)),
    )
    .unwrap();
    let started = Instant::now();
    let mut runs = 0;
    let mut said = Vec::new();
    let converged = loop {
        runs += 1;
        let mut command = agent_command(&machine);
        let run = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        if run.status.success() {
            break true;
        }
        // What a failed run tells its user: the request that failed and why.
        let told = format!(
            "exit {:?}; stderr: {}; last event: {}",
            run.status.code(),
            String::from_utf8_lossy(&run.stderr).trim(),
            String::from_utf8_lossy(&run.stdout)
                .lines()
                .last()
                .unwrap_or("")
        );
        said.push(told);
        if runs == 20 {
            break false;
        }
    };
    for told in &said {
        eprintln!("a failed run said: {told}");
    }
    let cut = link.cut.load(std::sync::atomic::Ordering::Relaxed);
    drop(link);
    assert!(converged, "no run ended in {runs} (seed {seed})");
    let counted = read_ledger(&ledger);
    assert_eq!(counted.never_finished, 0, "seed {seed}");
    assert_eq!(
        counted.finished_rerun, 0,
        "a finished command ran again (seed {seed})"
    );
    let reports = world.reports(&machine);
    for index in 1..=COMPONENTS {
        let id = format!("kp-{index:02}");
        let installs = successful_installs(&reports, &id);
        assert_eq!(
            installs, 1,
            "{id}: {installs} install reports (seed {seed})"
        );
    }
    eprintln!(
        "lossy link: {runs} run(s), {cut} connection(s) cut, {:.0} s, seed {seed}; \
         re-runs of interrupted commands: {}; re-runs of finished commands: 0; lost reports: 0",
        started.elapsed().as_secs_f64(),
        counted.interrupted_rerun
    );
}
