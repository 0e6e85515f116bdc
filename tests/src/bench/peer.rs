//! B15: a large payload through a peer that lacks it. A machine asks a
//! second roleoutd behind the same name (its own content store, the first
//! as its upstream) for a 512 MiB payload of its suite; the peer brings it
//! from the first by digest, checks it, stores it and serves it. The
//! baseline is the same GET from the first roleoutd, which holds it. The
//! peer's store loses the payload before each run, so every run is a first
//! ask. The peer's VmHWM after the runs shows the payload streamed rather
//! than held in memory.

use std::io::Write;
use std::time::Instant;

use anyhow::{Context, bail};
use ring::rand::SecureRandom;

use crate::bench::Row;
use crate::bench::server::{Engine, Machine, Server};

/// The payload's size.
const PAYLOAD_BYTES: u64 = 512 << 20;

/// The B15 row.
pub(crate) fn run(runs: usize) -> anyhow::Result<Row> {
    let server = Server::start()?;
    let agent = server.agent()?;
    let machine = Machine::enroll(&server, &agent, "bench-bulk-machine")?;
    server.grant(&machine.name, "end-user")?;

    // The payload, in the first roleoutd's store, and a suite that has it.
    let folder = tempfile::tempdir()?;
    let payload = folder.path().join("bulk.bin");
    {
        let random = ring::rand::SystemRandom::new();
        let mut file = std::io::BufWriter::new(std::fs::File::create(&payload)?);
        let mut piece = vec![0u8; 1 << 20];
        for _ in 0..(PAYLOAD_BYTES >> 20) {
            random
                .fill(&mut piece)
                .map_err(|_| anyhow::anyhow!("no randomness"))?;
            file.write_all(&piece)?;
        }
        file.flush()?;
    }
    let upstream_store =
        roleout_builder::content::ContentStore::new(server.state.path().join("content"))?;
    let (digest, _) = upstream_store.put_file(&payload, None)?;
    std::fs::remove_file(&payload)?;
    let descriptors = folder.path().join("descriptors");
    std::fs::create_dir_all(&descriptors)?;
    std::fs::write(
        descriptors.join("bench-bulk.xml"),
        format!(
            r#"<product xmlns="urn:roleout:descriptor:1" id="bench-bulk" version="1.0">
  <description vendor="Roleout"><name lang="en">bulk</name><summary lang="en">512 MiB</summary></description>
  <fileset><file path="bulk.bin" sha256="{digest}" size="{PAYLOAD_BYTES}"/></fileset>
  <install timeout="60"><arg>true</arg></install>
</product>
"#
        ),
    )?;
    std::fs::write(
        descriptors.join("bench-bulk-suite.xml"),
        r#"<suite xmlns="urn:roleout:descriptor:1" id="bench-bulk" version="1.0">
  <description vendor="Roleout"><name lang="en">bulk</name></description>
  <products><product ref="bench-bulk"/></products>
</suite>
"#,
    )?;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut output = roleout_builder::admin::Output {
        out: &mut out,
        err: &mut err,
    };
    server
        .runtime
        .block_on(roleout_builder::admin::catalog::import(
            &server.directory,
            &[descriptors],
            &mut output,
        ))
        .map_err(|error| {
            anyhow::anyhow!(
                "importing the bulk product: {error}: {}",
                String::from_utf8_lossy(&err)
            )
        })?;

    let peer = Engine::start_peer(&server)?;
    let peer_store =
        roleout_builder::content::ContentStore::new(peer.state.path().join("content"))?;
    let fetch = |base_url: &str| -> anyhow::Result<f64> {
        let session = machine.session_at(base_url, &agent)?;
        let started = Instant::now();
        let response = agent
            .get(format!("{base_url}/v1/payloads/{digest}"))
            .header("Authorization", format!("Bearer {session}"))
            .call()
            .with_context(|| format!("GET of the payload at {base_url}"))?;
        if response.status().as_u16() != 200 {
            bail!("{base_url} answered {}", response.status());
        }
        let mut body = response
            .into_body()
            .into_with_config()
            .limit(u64::MAX)
            .reader();
        let received = std::io::copy(&mut body, &mut std::io::sink())?;
        let seconds = started.elapsed().as_secs_f64();
        if received != PAYLOAD_BYTES {
            bail!("{base_url} sent {received} bytes of {PAYLOAD_BYTES}");
        }
        Ok(PAYLOAD_BYTES as f64 / 1e6 / seconds)
    };
    let (mut through_peer, mut direct) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let kept = peer_store.path_of(&digest);
        if kept.exists() {
            std::fs::remove_file(&kept)?;
        }
        through_peer.push(fetch(&peer.base_url)?);
        direct.push(fetch(&server.base_url)?);
    }
    let peak = crate::bench::auth::peak_rss_megabytes(peer.pid())?;
    let (a, b) = (
        crate::bench::median(&through_peer),
        crate::bench::median(&direct),
    );
    let figure = a / b;
    // The peer sends nothing before the payload is whole and checked: a
    // first ask costs the upstream's send, the peer's check and write, and
    // its own send, so at most a quarter of the direct rate; streamed,
    // whatever the payload's size, within the memory B10 allows.
    let met = figure >= 0.25 && peak <= 150.0;
    Ok(Row {
        id: "B15".to_owned(),
        label: "512 MiB payload through a peer lacking it".to_owned(),
        a,
        b: Some(b),
        unit: "MB/s",
        figure,
        target: "A/B >= 0.25".to_owned(),
        met,
        notes: format!(
            "A = GET at a peer that brings it from upstream first (digest checked, stored, then served), B = GET at the roleoutd holding it; peer VmHWM {peak:.0} MB (target <= 150 MB)"
        ),
    })
}
