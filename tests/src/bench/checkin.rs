//! B14: the check-in of a fleet where nothing changed. Each of 10,000
//! enrolled machines (distinct Ed25519 keys, all in the `developer` role)
//! does what `roleout install` does before it finds nothing to do: asks
//! for a challenge, answers it for a session (the nonce claimed in the
//! directory), and fetches its signed suite. 8 client threads over one
//! pooled TLS agent; against nginx serving a file of the very size of that
//! suite over TLS with the same certificate, 10,000 times, by as many
//! threads.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::bench::serve::Nginx;
use crate::bench::server::{Machine, Server};
use crate::bench::{Row, in_parallel, median, quantile};

/// Client threads.
const CLIENTS: usize = 8;

/// The rate 100,000 machines need to check in within 30 minutes.
const FLEET_RATE: f64 = 100_000.0 / 1800.0;

/// The row B14.
pub(crate) fn run(machines: usize, runs: usize) -> anyhow::Result<Row> {
    let server = Server::start()?;
    let agent = server.agent()?;
    let setup = Instant::now();
    let mut enrolled = Vec::with_capacity(machines);
    for index in 0..machines {
        enrolled.push(
            Machine::enroll(&server, &agent, &format!("fleet-{index:05}"))
                .with_context(|| format!("enrolling machine {index}"))?,
        );
    }
    grant_all(&server, &enrolled)?;
    let setup = setup.elapsed();

    let suite_url = format!("{}/v1/suites/domino", server.base_url);
    let first = enrolled.first().context("no machines")?;
    let session = first.session(&server, &agent)?;
    let body = get(&agent, &suite_url, Some(&session))?;
    let nginx = Nginx::start(&server.state.path().join("tls"), &body)?;

    let (mut a, mut b, mut a_p99, mut b_p99) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut failures = 0;
    for _ in 0..runs {
        let latencies = Mutex::new(Vec::with_capacity(machines));
        let (rate, failed) = in_parallel(machines, CLIENTS, "B14", |index| {
            let start = Instant::now();
            let session = enrolled[index].session(&server, &agent)?;
            let suite = get(&agent, &suite_url, Some(&session))?;
            // The envelope names the machine and when it was signed; its
            // size moves by a few bytes, not more.
            if suite.len().abs_diff(body.len()) > 64 {
                bail!(
                    "the suite is {} bytes, not about {}",
                    suite.len(),
                    body.len()
                );
            }
            record(&latencies, start);
            Ok(())
        });
        failures += failed;
        a.push(rate);
        a_p99.push(quantile(&latencies.into_inner().unwrap_or_default(), 0.99));

        let latencies = Mutex::new(Vec::with_capacity(machines));
        let (rate, failed) = in_parallel(machines, CLIENTS, "B14 nginx", |_| {
            let start = Instant::now();
            get(&agent, &nginx.url, None)?;
            record(&latencies, start);
            Ok(())
        });
        failures += failed;
        b.push(rate);
        b_p99.push(quantile(&latencies.into_inner().unwrap_or_default(), 0.99));
    }
    let (a, b) = (median(&a), median(&b));
    Ok(Row {
        id: "B14".to_owned(),
        label: format!("check-ins/s, {machines} machines, nothing changed"),
        a,
        b: Some(b),
        unit: "/s",
        figure: a / b,
        target: format!("A >= {FLEET_RATE:.0}/s"),
        met: a >= FLEET_RATE && failures == 0,
        notes: format!(
            "p99 A {:.2} ms, B {:.2} ms; {failures} failures; {CLIENTS} client threads; a check-in = challenge, session, GET of the signed suite ({} bytes); B = nginx GET of a file that size; target = 100,000 machines in 30 min; enrolment took {:.0} s",
            median(&a_p99),
            median(&b_p99),
            body.len(),
            setup.as_secs_f64()
        ),
    })
}

fn record(latencies: &Mutex<Vec<f64>>, start: Instant) {
    let elapsed = start.elapsed().as_secs_f64() * 1000.0;
    if let Ok(mut latencies) = latencies.lock() {
        latencies.push(elapsed);
    }
}

/// The body of a GET that must answer 200.
pub(crate) fn get(
    agent: &ureq::Agent,
    url: &str,
    session: Option<&str>,
) -> anyhow::Result<Vec<u8>> {
    let mut request = agent.get(url);
    if let Some(session) = session {
        request = request.header("Authorization", format!("Bearer {session}"));
    }
    let mut response = request.call()?;
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_vec()?;
    if status != 200 {
        bail!(
            "{url} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(body)
}

/// Puts every machine in `developer` with one modify (one member value
/// each), as an admin would load a fleet's memberships.
pub(crate) fn grant_all(server: &Server, machines: &[Machine]) -> anyhow::Result<()> {
    let mut ldif = format!(
        "dn: cn=developer,ou=roles,{}\nchangetype: modify\nadd: member\n",
        server.base_dn
    );
    for machine in machines {
        let entry = server
            .runtime
            .block_on(server.directory.machine(&machine.name))?
            .with_context(|| format!("machine {} is not in the directory", machine.name))?;
        ldif.push_str(&format!("member: {}\n", entry.dn));
    }
    let mut child = Command::new("ldapmodify")
        .args(["-Q", "-Y", "EXTERNAL", "-H", &server.ldapi_url])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running ldapmodify")?;
    child
        .stdin
        .take()
        .context("ldapmodify's input")?
        .write_all(ldif.as_bytes())?;
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!(
            "ldapmodify of the memberships failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
