//! B10: roleoutd's peak memory while it packs and serves the imaging
//! archive of a 2 GiB image (one file of random bytes, so the archive is
//! as large as the image) to a target of a deployment.
//!
//! The image's file is put into roleoutd's content store with the
//! manifest scan (as an upload does), the image, the job and the target's
//! lease are written to the directory directly, and the target asks for
//! its instruction (roleoutd packs the archive from the store) and then
//! reads the whole archive, discarding it. A is roleoutd's VmHWM after.

use std::io::{Read, Write};

use anyhow::Context;
use ring::rand::SecureRandom;

use crate::bench::Row;
use crate::bench::auth::peak_rss_megabytes;
use crate::bench::server::{Machine, Server};

/// The image's size.
const SIZE: u64 = 2 << 30;

/// Writes `SIZE` random bytes to `path`.
fn random_file(path: &std::path::Path) -> anyhow::Result<()> {
    let random = ring::rand::SystemRandom::new();
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut chunk = vec![0u8; 1 << 20];
    for _ in 0..SIZE / chunk.len() as u64 {
        random
            .fill(&mut chunk)
            .map_err(|_| anyhow::anyhow!("no randomness"))?;
        file.write_all(&chunk)?;
    }
    file.flush()?;
    Ok(())
}

/// The B10 row.
pub(crate) fn run() -> anyhow::Result<Row> {
    let server = Server::start()?;
    let agent = server.agent()?;
    let machine = Machine::enroll(&server, &agent, "bench-target")?;
    server.grant(&machine.name, "end-user")?;

    let tree = tempfile::tempdir()?;
    random_file(&tree.path().join("big.bin"))?;
    let store = roleout_builder::content::ContentStore::new(server.state.path().join("content"))?;
    let scanned = roleout_store::tree::scan(tree.path(), &Default::default(), Some(&store))
        .context("scanning the image's tree")?;
    let manifest_bytes = scanned.manifest.to_bytes();
    let manifest = store.put_bytes(&manifest_bytes)?;
    drop(tree);
    let id = server.stage_deployment(
        &machine.name,
        "big",
        &manifest,
        (scanned.manifest.entries().len() as u64, SIZE),
        None,
    )?;

    let session = machine.session(&server, &agent)?;
    let started = std::time::Instant::now();
    let mut response = agent
        .get(format!("{}/v1/jobs/current", server.base_url))
        .header("Authorization", format!("Bearer {session}"))
        .config()
        .timeout_recv_response(Some(std::time::Duration::from_secs(900)))
        .build()
        .call()?;
    let status = response.status().as_u16();
    let instruction = response.body_mut().read_to_vec()?;
    if status != 200 {
        anyhow::bail!(
            "the instruction answered {status}: {}",
            String::from_utf8_lossy(&instruction)
        );
    }
    let packed = started.elapsed();
    let mut response = agent
        .get(format!("{}/v1/jobs/{id}/archive", server.base_url))
        .header("Authorization", format!("Bearer {session}"))
        .config()
        .timeout_recv_body(Some(std::time::Duration::from_secs(900)))
        .build()
        .call()?;
    let mut reader = response.body_mut().with_config().limit(u64::MAX).reader();
    let mut buffer = vec![0u8; 1 << 20];
    let mut received = 0u64;
    loop {
        let read = reader.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        received += read as u64;
    }
    let served = started.elapsed() - packed;
    let peak = peak_rss_megabytes(server.pid())?;
    Ok(Row {
        id: "B10".to_owned(),
        label: "roleoutd peak RSS, 2 GiB image archive".to_owned(),
        a: peak,
        b: None,
        unit: "MB",
        figure: peak,
        target: "<= 150 MB".to_owned(),
        met: peak <= 150.0 && received >= SIZE,
        notes: format!(
            "VmHWM after packing ({:.1} s) and serving ({:.1} s) {received} bytes",
            packed.as_secs_f64(),
            served.as_secs_f64()
        ),
    })
}
