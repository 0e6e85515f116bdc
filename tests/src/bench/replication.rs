//! B12: how long a change made at one provider of a replicated directory
//! takes to be in effect at a roleoutd that reads another provider, against
//! the same change made at roleoutd's own provider.
//!
//! The change is a machine's roles: it joins the role `developer`, then
//! leaves it. roleoutd refuses the machine's session once it has heard of
//! the change (its change feed drops the cached roles), so the time is
//! taken from the write until roleoutd's answer to the machine's next
//! `GET /v1/suites/domino` differs.

use std::time::{Duration, Instant};

use anyhow::Context;
use roleout_directory::Directory;
use roleout_model::ids::RoleName;

use crate::bench::server::{Machine, Server, replicated_pair};
use crate::bench::{Row, median};

/// How long one change may take to show before the run fails.
const PATIENCE: Duration = Duration::from_secs(30);

/// The row B12.
pub(crate) fn run(runs: usize) -> anyhow::Result<Row> {
    let (near, far) = replicated_pair("bench-replication")?;
    let far_settings = far.settings();
    let server = Server::start_on(near, vec![far])?;
    let far_directory = server
        .runtime
        .block_on(Directory::connect(&far_settings))
        .context("connecting to the far provider")?;
    let agent = server.agent()?;
    let machine = Machine::enroll(&server, &agent, "bench-replica")?;
    server.grant(&machine.name, "end-user")?;
    let dn = server
        .runtime
        .block_on(server.directory.machine(&machine.name))?
        .context("the machine's entry")?
        .dn;
    // The far provider has the machine before the runs begin.
    let deadline = Instant::now() + PATIENCE;
    while server
        .runtime
        .block_on(far_directory.machine(&machine.name))?
        .is_none()
    {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the machine never reached the far provider"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let developer = RoleName::new("developer")?;
    let mut member = false;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        for (at, times) in [(&far_directory, &mut a), (&server.directory, &mut b)] {
            let session = machine.session(&server, &agent)?;
            let before = suite(&server, &agent, &session)?;
            let started = Instant::now();
            member = !member;
            let changed = if member {
                server.runtime.block_on(at.add_role_member(&developer, &dn))
            } else {
                server
                    .runtime
                    .block_on(at.remove_role_member(&developer, &dn))
            };
            changed.context("changing the machine's roles")?;
            loop {
                if suite(&server, &agent, &session)? != before {
                    break;
                }
                anyhow::ensure!(
                    started.elapsed() < PATIENCE,
                    "roleoutd did not see a change of roles in {PATIENCE:?}"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let (a, b) = (median(&a), median(&b));
    Ok(Row {
        id: "B12".to_owned(),
        label: "a change at another provider, in effect".to_owned(),
        a,
        b: Some(b),
        unit: "ms",
        figure: a,
        target: "A <= 1000 ms".to_owned(),
        met: a <= 1000.0,
        notes: "figure = A in ms; A = role change written at the provider roleoutd does not read, B = at the one it reads; until the machine's next request sees it".to_owned(),
    })
}

/// Status and body of the machine's `GET /v1/suites/domino`.
fn suite(server: &Server, agent: &ureq::Agent, session: &str) -> anyhow::Result<(u16, Vec<u8>)> {
    let mut response = agent
        .get(format!("{}/v1/suites/domino", server.base_url))
        .header("Authorization", format!("Bearer {session}"))
        .call()?;
    let status = response.status().as_u16();
    Ok((status, response.body_mut().read_to_vec()?))
}
