//! B3 and B6: full machine authentications per second against a real
//! roleoutd (challenge, signature, verification, nonce claimed in the
//! directory, session) by machines with distinct keys over a pool of
//! reused TLS connections, against what the server cannot avoid: the
//! signature verifications, and the claims of the nonces in the directory
//! (an add each, made durable by slapd), by as many threads as clients;
//! the cost of a TLS handshake on its own; and roleoutd's peak memory
//! while serving it all.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use ring::signature::{ED25519, UnparsedPublicKey};

use roleout_model::keys::challenge_message;

use crate::bench::server::{Machine, Server};
use crate::bench::{Row, in_parallel, median};

/// Client threads sharing the connection pool.
const CLIENTS: usize = 8;

/// Handshakes measured for the TLS row.
const HANDSHAKES: usize = 200;

/// The rows B3, B3 TLS and B6.
pub(crate) fn run(machines: usize, runs: usize) -> anyhow::Result<Vec<Row>> {
    let server = Server::start()?;
    let agent = server.agent()?;
    let setup = Instant::now();
    let enrolled = enroll_all(&server, &agent, machines)?;
    let setup = setup.elapsed();

    let (mut a, mut b, mut bare) = (Vec::new(), Vec::new(), Vec::new());
    let mut failures = 0;
    for _ in 0..runs {
        let (rate, failed) = authenticate_all(&server, &agent, &enrolled);
        failures += failed;
        a.push(rate);
        b.push(floor(&server, &enrolled)?);
        bare.push(verifications(&enrolled)?);
    }
    let (a, b, bare) = (median(&a), median(&b), median(&bare));
    let figure = a / b;
    let mut rows = vec![Row {
        id: "B3".to_owned(),
        label: format!("authentications/s, {machines} machines"),
        a,
        b: Some(b),
        unit: "/s",
        figure,
        target: "A/B >= 0.25".to_owned(),
        met: figure >= 0.25 && failures == 0,
        notes: format!(
            "{failures} failures; {CLIENTS} client threads on this machine; B = a verification and a nonce add each; bare verifications {bare:.0}/s in one thread; enrolment of all took {:.1} s",
            setup.as_secs_f64()
        ),
    }];

    // The handshake row: a fresh client per request, so every request
    // pays a full TLS handshake; against the same request on a reused
    // connection.
    let (mut fresh, mut reused) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        fresh.push(health_rate(&server, None)?);
        reused.push(health_rate(&server, Some(&agent))?);
    }
    let (fresh, reused) = (median(&fresh), median(&reused));
    rows.push(Row {
        id: "B3t".to_owned(),
        label: "GET /v1/health/s, new TLS connection each".to_owned(),
        a: fresh,
        b: Some(reused),
        unit: "/s",
        figure: fresh / reused,
        target: "(informative)".to_owned(),
        met: true,
        notes: format!(
            "B = same request on a reused connection; a handshake costs about {:.2} ms",
            1000.0 / fresh - 1000.0 / reused
        ),
    });

    let peak = peak_rss_megabytes(server.pid())?;
    rows.push(Row {
        id: "B6".to_owned(),
        label: "roleoutd peak RSS serving B3".to_owned(),
        a: peak,
        b: None,
        unit: "MB",
        figure: peak,
        target: "<= 150 MB".to_owned(),
        met: peak <= 150.0,
        notes: "VmHWM from /proc/PID/status after B3".to_owned(),
    });
    Ok(rows)
}

/// Enrols `count` machines one after the other (setup, not measured).
fn enroll_all(server: &Server, agent: &ureq::Agent, count: usize) -> anyhow::Result<Vec<Machine>> {
    let mut machines = Vec::with_capacity(count);
    for index in 0..count {
        machines.push(
            Machine::enroll(server, agent, &format!("bench-{index:05}"))
                .with_context(|| format!("enrolling machine {index}"))?,
        );
    }
    Ok(machines)
}

/// Every machine authenticates once, [`CLIENTS`] at a time: the rate per
/// second and the number of failures.
fn authenticate_all(server: &Server, agent: &ureq::Agent, machines: &[Machine]) -> (f64, usize) {
    in_parallel(machines.len(), CLIENTS, "B3", |index| {
        machines[index].session(server, agent).map(|_| ())
    })
}

/// A public key, a message, and the signature over it.
type Signed = (Vec<u8>, Vec<u8>, Vec<u8>);

/// For each machine: its public key, a challenge-sized message and its
/// signature over it.
fn signed_challenges(machines: &[Machine]) -> anyhow::Result<Vec<Signed>> {
    machines
        .iter()
        .enumerate()
        .map(|(index, machine)| {
            let message = challenge_message(&format!("{index:0>180}"));
            let signature = machine.key.sign(&message)?;
            Ok((machine.key.public_key().to_vec(), message, signature))
        })
        .collect()
}

/// The floor of an authentication shared by several roleoutd, per second:
/// for each machine, a bare Ed25519 verification and the claim of a fresh
/// nonce in the directory (the add roleoutd makes), [`CLIENTS`] at a
/// time over one directory connection.
fn floor(server: &Server, machines: &[Machine]) -> anyhow::Result<f64> {
    let signed = signed_challenges(machines)?;
    let next = std::sync::Arc::new(AtomicUsize::new(0));
    let signed = std::sync::Arc::new(signed);
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let not_after = std::time::SystemTime::now() + Duration::from_secs(60);
    let start = Instant::now();
    server.runtime.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..CLIENTS {
            let (next, signed, directory) =
                (next.clone(), signed.clone(), server.directory.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some((public, message, signature)) = signed.get(index) else {
                        return Ok::<_, anyhow::Error>(());
                    };
                    UnparsedPublicKey::new(&ED25519, public)
                        .verify(message, signature)
                        .map_err(|_| anyhow::anyhow!("a signature made just now did not verify"))?;
                    let claimed = directory
                        .claim_nonce(&format!("floor-{run}-{index}"), not_after)
                        .await?;
                    anyhow::ensure!(claimed, "a fresh nonce was claimed before");
                }
            }));
        }
        for task in tasks {
            task.await??;
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(signed.len() as f64 / start.elapsed().as_secs_f64())
}

/// Bare Ed25519 verifications per second in one thread: one per machine,
/// each with its own key over a challenge-sized message.
fn verifications(machines: &[Machine]) -> anyhow::Result<f64> {
    let signed = signed_challenges(machines)?;
    let start = Instant::now();
    for (public, message, signature) in &signed {
        UnparsedPublicKey::new(&ED25519, public)
            .verify(message, signature)
            .map_err(|_| anyhow::anyhow!("a signature made just now did not verify"))?;
    }
    Ok(signed.len() as f64 / start.elapsed().as_secs_f64())
}

/// `GET /v1/health` per second over `agent`'s pooled connection, or over
/// a new connection each time when `agent` is `None`.
fn health_rate(server: &Server, agent: Option<&ureq::Agent>) -> anyhow::Result<f64> {
    let start = Instant::now();
    for _ in 0..HANDSHAKES {
        let fresh;
        let agent = match agent {
            Some(agent) => agent,
            None => {
                fresh = server.agent()?;
                &fresh
            }
        };
        let mut response = agent.get(format!("{}/v1/health", server.base_url)).call()?;
        response.body_mut().read_to_vec()?;
    }
    let elapsed = start.elapsed().max(Duration::from_nanos(1));
    Ok(HANDSHAKES as f64 / elapsed.as_secs_f64())
}

/// VmHWM of process `pid`, in MB.
pub(crate) fn peak_rss_megabytes(pid: u32) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .with_context(|| format!("{path} has no VmHWM line"))?;
    let kilobytes: f64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|value| value.parse().ok())
        .with_context(|| format!("{path}: cannot read {line:?}"))?;
    Ok(kilobytes / 1024.0)
}
