//! S1-S7: a day of a synthetic fleet, the figures SCALE.md carries to
//! 100,000 machines. A roleoutd over one provider of a replicated
//! directory (two managed slapd, multi-provider syncrepl) enrols N
//! machines (real Ed25519 keys and certificates) into `developer`, then
//! plays their day through its HTTP API: every machine checks in
//! [`CHECK_INS`] times (challenge, session, signed suite), and at one of
//! them installs the suite's three components and reports each. Measured:
//! the directory's entries and bytes before and after, the bytes the other
//! provider read to follow each kind of write (its `rchar` in
//! `/proc/PID/io`: every byte syncrepl brought it), and the check-in and
//! report rates. The day is played compressed, so the writes it would
//! spread over hours (a last-seen time per check-in, the sweep of the
//! day's nonces) are made and measured on their own.

use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use serde_json::{Value, json};

use crate::bench::Row;
use crate::bench::in_parallel;
use crate::bench::server::{Machine, Server, replicated_pair};

/// Check-ins of each machine in the day (every four hours).
const CHECK_INS: usize = 6;
/// Client threads.
const CLIENTS: usize = 8;
/// The components of `domino` a `developer` machine installs.
const COMPONENTS: [&str; 3] = ["jre", "notes-client", "notes-help"];

/// Entries and LDIF bytes under the suffix, read as the root.
fn census(server: &Server) -> anyhow::Result<(usize, usize)> {
    let suffix = server
        .base_dn
        .split_once(',')
        .map_or(server.base_dn.as_str(), |(_, suffix)| suffix);
    let output = Command::new("ldapsearch")
        .args(["-Q", "-LLL", "-o", "ldif-wrap=no", "-Y", "EXTERNAL", "-H"])
        .arg(&server.ldapi_url)
        .args(["-b", suffix, "*", "+"])
        .output()?;
    anyhow::ensure!(output.status.success(), "ldapsearch of the suffix failed");
    let entries = output
        .stdout
        .split(|byte| *byte == b'\n')
        .filter(|line| line.starts_with(b"dn: ") || line.starts_with(b"dn:: "))
        .count();
    Ok((entries, output.stdout.len()))
}

/// Entries under the suffix at the slapd of `ldapi_url`.
fn count_at(ldapi_url: &str) -> anyhow::Result<usize> {
    let output = Command::new("ldapsearch")
        .args([
            "-Q",
            "-LLL",
            "-Y",
            "EXTERNAL",
            "-H",
            ldapi_url,
            "-b",
            "dc=example,dc=org",
            "1.1",
        ])
        .output()?;
    Ok(output
        .stdout
        .split(|byte| *byte == b'\n')
        .filter(|line| line.starts_with(b"dn:"))
        .count())
}

/// Bytes process `pid` has read with read(2) and its kin, sockets
/// included.
fn bytes_read(pid: u32) -> anyhow::Result<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io"))?;
    io.lines()
        .find_map(|line| line.strip_prefix("rchar: "))
        .and_then(|value| value.trim().parse().ok())
        .context("no rchar in /proc/PID/io")
}

fn informative(id: &str, label: String, a: f64, unit: &'static str, notes: String) -> Row {
    Row {
        id: id.to_owned(),
        label,
        a,
        b: None,
        unit,
        figure: a,
        target: "(informative)".to_owned(),
        met: true,
        notes,
    }
}

/// Bytes the other provider read while `phase` ran, waiting (at most
/// 120 s) until it holds as many entries as the first and reads nothing
/// more for a second.
fn replicated_by<T>(
    server: &Server,
    far: (u32, &str),
    phase: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<(T, u64)> {
    let before = bytes_read(far.0)?;
    let result = phase()?;
    let (entries, _) = census(server)?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = bytes_read(far.0)?;
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = bytes_read(far.0)?;
        if (now == last && count_at(far.1)? == entries) || Instant::now() > deadline {
            return Ok((result, now - before));
        }
        last = now;
    }
}

/// The rows S1-S7 for a fleet of `machines`.
pub(crate) fn run(machines: usize) -> anyhow::Result<Vec<Row>> {
    let (near, far) = replicated_pair("bench-fleet")?;
    let far_pid = far.pid().context("the second provider runs")?;
    let far_data = far.state_dir().join("data").join("data.mdb");
    let far_url = far.ldapi_url();
    let server = Server::start_on(near, vec![far])?;
    let far = (far_pid, far_url.as_str());
    let agent = server.agent()?;
    let (entries_empty, bytes_empty) = census(&server)?;

    // Enrolment: each machine's entry, certificate and membership.
    let started = Instant::now();
    let (fleet, enrolment_bytes) = replicated_by(&server, far, || {
        let mut fleet = Vec::with_capacity(machines);
        for index in 0..machines {
            fleet.push(
                Machine::enroll(&server, &agent, &format!("fleet-{index:05}"))
                    .with_context(|| format!("enrolling machine {index}"))?,
            );
        }
        crate::bench::checkin::grant_all(&server, &fleet)?;
        Ok(fleet)
    })?;
    let enrolment = started.elapsed();
    let (entries_enrolled, bytes_enrolled) = census(&server)?;

    // The first check-in of each machine installs the suite's components
    // and reports each.
    let suite_url = format!("{}/v1/suites/domino", server.base_url);
    let reports = machines * COMPONENTS.len();
    let ((install_seconds, failed), install_bytes) = replicated_by(&server, far, || {
        let started = Instant::now();
        let (_, failed) = in_parallel(machines, CLIENTS, "S5", |index| {
            let machine = &fleet[index];
            let session = machine.session(&server, &agent)?;
            let suite = crate::bench::checkin::get(&agent, &suite_url, Some(&session))?;
            let envelope: Value = serde_json::from_slice(&suite)?;
            let digest = crate::bench::intake::build_digest(&envelope)
                .context("the suite's build digest")?;
            for component in COMPONENTS {
                let body = json!({
                    "id": format!("{}-{component}", machine.name), "suite": "domino",
                    "build-digest": digest, "component": component,
                    "step": "install", "outcome": "success", "exit-code": 0, "duration-ms": 41000,
                    "evidence": ["exit code 0"],
                    "log": format!("Installing {component}\nInstallation complete\n"),
                    "started-at": "2026-12-05T12:00:00Z", "finished-at": "2026-12-05T12:00:41Z"
                });
                match server.post(&agent, "/v1/reports", &body, Some(&session))? {
                    (200, answer) if answer["status"] == "recorded" => {}
                    other => anyhow::bail!("a report was not recorded: {other:?}"),
                }
            }
            Ok(())
        });
        Ok((started.elapsed().as_secs_f64(), failed))
    })?;
    anyhow::ensure!(failed == 0, "{failed} installing check-ins failed");
    let (entries_day, bytes_day) = census(&server)?;

    // The other check-ins of the day find nothing to do: a challenge
    // answered (its nonce claimed) and the suite fetched.
    let check_ins = machines * (CHECK_INS - 1);
    let ((check_in_rate, failed), check_in_bytes) = replicated_by(&server, far, || {
        Ok(in_parallel(check_ins, CLIENTS, "S4", |index| {
            let session = fleet[index % machines].session(&server, &agent)?;
            crate::bench::checkin::get(&agent, &suite_url, Some(&session)).map(|_| ())
        }))
    })?;
    anyhow::ensure!(failed == 0, "{failed} check-ins failed");

    // What the compressed day leaves out, written as roleoutd writes it: a
    // last-seen time per check-in (roleoutd records one at most every
    // hour, so a real day has one per check-in four hours apart), and the
    // sweep of the day's nonces.
    let later = SystemTime::now() + Duration::from_secs(4 * 3600);
    let (_, seen_bytes) = replicated_by(&server, far, || {
        for machine in &fleet {
            let entry = server
                .runtime
                .block_on(server.directory.machine(&machine.name))?
                .context("a machine left the directory")?;
            server
                .runtime
                .block_on(server.directory.record_machine_seen(&entry.dn, later))?;
        }
        Ok(())
    })?;
    let (swept, sweep_bytes) = replicated_by(&server, far, || {
        Ok(server.runtime.block_on(
            server
                .directory
                .forget_lapsed_nonces(SystemTime::now() + Duration::from_secs(86_400)),
        )?)
    })?;
    let far_mdb = std::fs::metadata(&far_data).map_or(0, |metadata| metadata.len());

    let per = |value: usize| value as f64 / machines as f64;
    let bytes_per = |bytes: u64, count: usize| bytes as f64 / count.max(1) as f64;
    Ok(vec![
        informative(
            "S1",
            format!("entries per machine, {machines} machines after their installs"),
            per(entries_day - entries_empty),
            "",
            format!(
                "{entries_empty} entries empty, {entries_enrolled} enrolled, {entries_day} with {reports} reports and the live nonces"
            ),
        ),
        informative(
            "S2",
            "directory LDIF bytes per machine, operational attributes included".to_owned(),
            per(bytes_day - bytes_empty),
            "B",
            format!(
                "{:.0} B per machine enrolled; {:.1} MB LDIF in all; the other provider's data.mdb {:.1} MB",
                per(bytes_enrolled - bytes_empty),
                bytes_day as f64 / 1e6,
                far_mdb as f64 / 1e6
            ),
        ),
        informative(
            "S3",
            "replication bytes per enrolment".to_owned(),
            bytes_per(enrolment_bytes, machines),
            "B",
            format!(
                "read by the other provider (rchar); enrolment of {machines} took {:.0} s",
                enrolment.as_secs_f64()
            ),
        ),
        informative(
            "S4",
            "check-ins/s, nothing changed, replicated directory".to_owned(),
            check_in_rate,
            "/s",
            format!(
                "{check_ins} check-ins, {CLIENTS} client threads; replication {:.0} B per check-in (its nonce)",
                bytes_per(check_in_bytes, check_ins)
            ),
        ),
        informative(
            "S5",
            "installing check-ins/s (3 reports each), replicated directory".to_owned(),
            machines as f64 / install_seconds,
            "/s",
            format!(
                "{:.0} reports/s; replication {:.0} B per installing check-in (nonce, last seen, 3 reports)",
                reports as f64 / install_seconds,
                bytes_per(install_bytes, machines)
            ),
        ),
        informative(
            "S6",
            "replication bytes per last-seen time recorded".to_owned(),
            bytes_per(seen_bytes, machines),
            "B",
            format!("{machines} modifies of roleoutLastSeen"),
        ),
        informative(
            "S7",
            "replication bytes per nonce swept".to_owned(),
            bytes_per(sweep_bytes, swept),
            "B",
            format!("{swept} nonces deleted"),
        ),
    ])
}
