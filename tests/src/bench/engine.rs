//! B11: a deployment through an installation engine that holds 90% of the
//! image's files already: the bytes the engine brings from the capturing
//! roleoutd, against the bytes it lacked (the other 10% and the manifest).
//!
//! The image is 2,000 files of 4 to 124 KiB of random bytes put into the
//! capturing roleoutd's store by a manifest scan; the engine (a second
//! roleoutd on the same directory, sharing the token secret, builder key
//! and certificate) gets nine files in ten copied into its own store
//! before the target asks it for the job.

use std::io::Write;

use anyhow::Context;
use ring::rand::SecureRandom;

use crate::bench::Row;
use crate::bench::server::{Machine, Server};

/// Files in the image.
const FILES: usize = 2000;

/// The B11 row.
pub(crate) fn run() -> anyhow::Result<Row> {
    let server = Server::start()?;
    let agent = server.agent()?;
    let machine = Machine::enroll(&server, &agent, "bench-site-target")?;
    server.grant(&machine.name, "end-user")?;

    // The image, in the capturing roleoutd's store.
    let tree = tempfile::tempdir()?;
    let random = ring::rand::SystemRandom::new();
    for index in 0..FILES {
        let mut bytes = vec![0u8; 4096 * (1 + index % 31)];
        random
            .fill(&mut bytes)
            .map_err(|_| anyhow::anyhow!("no randomness"))?;
        let folder = tree.path().join(format!("d{:02}", index % 20));
        std::fs::create_dir_all(&folder)?;
        std::fs::File::create(folder.join(format!("f{index:04}")))?.write_all(&bytes)?;
    }
    let upstream_store =
        roleout_builder::content::ContentStore::new(server.state.path().join("content"))?;
    let scanned =
        roleout_store::tree::scan(tree.path(), &Default::default(), Some(&upstream_store))
            .context("scanning the image's tree")?;
    let manifest = upstream_store.put_bytes(&scanned.manifest.to_bytes())?;

    // The engine, with nine files in ten of the image already.
    let engine = crate::bench::server::Engine::start(&server, "bench-site")?;
    let engine_store =
        roleout_builder::content::ContentStore::new(engine.state.path().join("content"))?;
    let mut missing_bytes = scanned.manifest.to_bytes().len() as u64;
    for (index, digest) in scanned.manifest.contents().iter().enumerate() {
        let (file, size) = upstream_store
            .open(digest)?
            .context("a content of the image")?;
        if index % 10 == 0 {
            missing_bytes += size;
        } else {
            engine_store.put_expecting("seed", file, digest, size)?;
        }
    }

    server.stage_deployment(
        &machine.name,
        "site",
        &manifest,
        (scanned.manifest.entries().len() as u64, 0),
        Some("bench-site"),
    )?;

    // The target asks the engine for its job: the engine brings what it
    // lacks, then packs.
    let session = machine.session_at(&engine.base_url, &agent)?;
    let mut response = agent
        .get(format!("{}/v1/jobs/current", engine.base_url))
        .header("Authorization", format!("Bearer {session}"))
        .call()?;
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_vec()?;
    if status != 200 {
        anyhow::bail!(
            "the engine answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let moved = engine.fetched_bytes()?;
    let figure = moved as f64 / missing_bytes as f64;
    Ok(Row {
        id: "B11".to_owned(),
        label: "deploy through an engine holding 90% of it".to_owned(),
        a: moved as f64 / 1e6,
        b: Some(missing_bytes as f64 / 1e6),
        unit: "MB",
        figure,
        target: "A/B <= 1.05".to_owned(),
        met: figure <= 1.05,
        notes: format!(
            "A = bytes the engine brought, B = bytes of the files it lacked and the manifest; {FILES} files"
        ),
    })
}
