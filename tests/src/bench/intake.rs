//! B13: status reports taken per second by a roleoutd over a replicated
//! directory (two managed slapd, multi-provider syncrepl), from machines
//! reporting at once, against `ldapadd` loading the very entries they
//! became into the same provider.

use std::time::Instant;

use anyhow::Context;
use serde_json::{Value, json};

use crate::bench::server::{Machine, Server, replicated_pair};
use crate::bench::{Row, in_parallel, median};

/// Machines reporting.
const MACHINES: usize = 40;
/// Reports each machine sends per run.
const REPORTS: usize = 25;
/// Client threads.
const CLIENTS: usize = 8;

/// The first `build-digest` string anywhere in `value`.
pub(crate) fn build_digest(value: &Value) -> Option<String> {
    match value {
        Value::Object(map) => map
            .get("build-digest")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| map.values().find_map(build_digest)),
        Value::Array(items) => items.iter().find_map(build_digest),
        Value::String(text) if text.starts_with('{') => serde_json::from_str(text)
            .ok()
            .as_ref()
            .and_then(build_digest),
        _ => None,
    }
}

/// The row B13.
pub(crate) fn run(runs: usize) -> anyhow::Result<Row> {
    let (near, far) = replicated_pair("bench-intake")?;
    let server = Server::start_on(near, vec![far])?;
    let agent = server.agent()?;
    let mut reporters = Vec::new();
    for index in 0..MACHINES {
        let machine = Machine::enroll(&server, &agent, &format!("intake-{index:03}"))?;
        server.grant(&machine.name, "end-user")?;
        let session = machine.session(&server, &agent)?;
        let mut response = agent
            .get(format!("{}/v1/suites/domino", server.base_url))
            .header("Authorization", format!("Bearer {session}"))
            .call()?;
        let envelope: Value = serde_json::from_slice(&response.body_mut().read_to_vec()?)?;
        let digest = build_digest(&envelope).context("the suite's build digest")?;
        reporters.push((session, digest));
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for run in 0..runs {
        a.push(send_all(&server, &agent, &reporters, run)?);
        b.push(load_copy(&server, run)?);
    }
    let (a, b) = (median(&a), median(&b));
    Ok(Row {
        id: "B13".to_owned(),
        label: "reports/s into a replicated directory".to_owned(),
        a,
        b: Some(b),
        unit: "/s",
        figure: a / b,
        target: "A/B >= 0.3".to_owned(),
        met: a / b >= 0.3,
        notes: format!(
            "{MACHINES} machines x {REPORTS} reports, {CLIENTS} client threads; B = ldapadd of the entries they became, one connection"
        ),
    })
}

/// Every machine sends its reports, [`CLIENTS`] at a time; reports per
/// second.
fn send_all(
    server: &Server,
    agent: &ureq::Agent,
    reporters: &[(String, String)],
    run: usize,
) -> anyhow::Result<f64> {
    let components = ["jre", "notes-client", "notes-help"];
    let total = reporters.len() * REPORTS;
    let (rate, failed) = in_parallel(total, CLIENTS, "B13", |index| {
        let (session, digest) = &reporters[index % reporters.len()];
        let body = json!({
            "id": format!("r{run}-{index}"), "suite": "domino", "build-digest": digest,
            "component": components[index % components.len()],
            "step": "install", "outcome": "success", "exit-code": 0, "duration-ms": 1200,
            "evidence": ["exit code 0"], "log": format!("run {run} report {index}\nInstallation complete\n"),
            "started-at": "2026-12-05T12:00:00Z", "finished-at": "2026-12-05T12:00:01Z"
        });
        match server.post(agent, "/v1/reports", &body, Some(session))? {
            (200, answer) if answer["status"] == "recorded" => Ok(()),
            other => anyhow::bail!("a report was not recorded: {other:?}"),
        }
    });
    anyhow::ensure!(failed == 0, "{failed} report(s) were not recorded");
    Ok(rate)
}

/// The reports of run `run` as slapd holds them, added again under a
/// container of their own by one `ldapadd`; entries per second.
fn load_copy(server: &Server, run: usize) -> anyhow::Result<f64> {
    let reports = format!("ou=reports,{}", server.base_dn);
    let found = std::process::Command::new("ldapsearch")
        .args([
            "-Q",
            "-LLL",
            "-o",
            "ldif-wrap=no",
            "-Y",
            "EXTERNAL",
            "-H",
            &server.ldapi_url,
        ])
        .args(["-b", &reports, &format!("(roleoutReportId=r{run}-*)")])
        .output()?;
    anyhow::ensure!(found.status.success(), "ldapsearch of the reports failed");
    let text = String::from_utf8(found.stdout)?;
    let copy = format!("ou=copy-{run},{}", server.base_dn);
    let mut ldif = format!("dn: {copy}\nobjectClass: organizationalUnit\nou: copy-{run}\n\n");
    let mut entries = 0;
    for entry in text.split("\n\n").filter(|entry| entry.starts_with("dn:")) {
        entries += 1;
        ldif.push_str(&entry.replacen(&format!(",{reports}"), &format!(",{copy}"), 1));
        ldif.push_str("\n\n");
    }
    anyhow::ensure!(entries > 0, "no report of run {run} was found");
    let path = std::env::temp_dir().join(format!(
        "roleout-bench-intake-{}-{run}.ldif",
        std::process::id()
    ));
    std::fs::write(&path, &ldif)?;
    let started = Instant::now();
    let loaded = std::process::Command::new("ldapadd")
        .args(["-Q", "-Y", "EXTERNAL", "-H", &server.ldapi_url, "-f"])
        .arg(&path)
        .output()?;
    let elapsed = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    anyhow::ensure!(
        loaded.status.success(),
        "ldapadd failed: {}",
        String::from_utf8_lossy(&loaded.stderr)
    );
    Ok(entries as f64 / elapsed)
}
