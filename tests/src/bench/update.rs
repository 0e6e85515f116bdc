//! B5: reinstall after 5% of a product's payload changed. The product
//! ships 500 files, 200 MB in all; a new version changes 25 of them. The
//! figure is the bytes the installer fetched for the update over the bytes
//! of the changed files: unchanged files must come from the payload cache.
//!
//! Fetched bytes are read from the cache: an entry that is new after the
//! update, or was written again (another inode: fetches are renamed into
//! place), was
//! fetched; every fetched byte is verified into the cache before use.
//! Modification times are not compared: a cache hit touches its entry.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::Context;

use crate::bench::install::{Mirror, product_model, suite};
use crate::bench::server::sibling;
use crate::bench::{Row, millis, time};

const FILES: usize = 500;
const TOTAL_BYTES: usize = 200 * 1024 * 1024;
const CHANGED: usize = FILES / 20;
const SUITE: &str = "bench-update";

/// Deterministic filler (SplitMix64), so the payload does not compress
/// and runs are comparable.
pub(crate) fn fill(seed: u64, length: usize) -> Vec<u8> {
    let mut state = seed;
    let mut bytes = Vec::with_capacity(length + 8);
    while bytes.len() < length {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        bytes.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    bytes.truncate(length);
    bytes
}

/// Publishes version `version` of the product whose file `index` holds
/// `seeds[index]`'s bytes.
fn publish(mirror: &Mirror, version: &str, seeds: &[u64], serial: u64) -> anyhow::Result<()> {
    let size = TOTAL_BYTES / FILES;
    let mut files = String::new();
    for (index, seed) in seeds.iter().enumerate() {
        let bytes = fill(*seed, size);
        let digest = mirror.payload(&bytes)?;
        files.push_str(&format!(
            "<file path=\"part-{index:03}.bin\" sha256=\"{digest}\" size=\"{size}\"/>"
        ));
    }
    let product = product_model(&format!(
        r#"<product xmlns="urn:roleout:descriptor:1" id="bench-payload" version="{version}">
  <description vendor="Roleout"><name lang="en">payload</name><summary lang="en">500 files</summary></description>
  <fileset>{files}</fileset>
  <install kind="script" timeout="600"><arg>true</arg></install>
</product>"#
    ))?;
    mirror.publish(&suite(SUITE, version, vec![product])?, serial)
}

/// Cache entries: name to (size, inode).
fn cache_entries(cache: &Path) -> anyhow::Result<BTreeMap<String, (u64, u64)>> {
    let mut entries = BTreeMap::new();
    let mut pending = vec![cache.to_owned()];
    while let Some(directory) = pending.pop() {
        let Ok(listing) = fs::read_dir(&directory) else {
            continue;
        };
        for entry in listing {
            let entry = entry?;
            let metadata = entry.metadata()?;
            if metadata.is_dir() {
                pending.push(entry.path());
            } else {
                entries.insert(
                    entry.path().display().to_string(),
                    (metadata.len(), metadata.ino()),
                );
            }
        }
    }
    Ok(entries)
}

/// The B5 row.
pub(crate) fn run() -> anyhow::Result<Row> {
    let roleout = sibling("roleout")?;
    let mirror = Mirror::new()?;
    let mut seeds: Vec<u64> = (0..FILES as u64).map(|index| index + 1).collect();
    publish(&mirror, "1.0", &seeds, 1)?;
    let state = mirror.state("state")?;
    let (first, ()) = time(|| mirror.install(&roleout, &state, SUITE))?;
    let cache = state.join("cache");
    let before = cache_entries(&cache)?;
    if before.is_empty() {
        anyhow::bail!("no payload cache found under {}", cache.display());
    }
    // Every 20th file changes.
    let size = (TOTAL_BYTES / FILES) as u64;
    for index in (0..FILES).step_by(FILES / CHANGED) {
        seeds[index] += 1_000_000;
    }
    let changed_bytes = CHANGED as u64 * size;
    publish(&mirror, "1.1", &seeds, 2)?;
    let (update, ()) =
        time(|| mirror.install(&roleout, &state, SUITE)).context("the update install")?;
    let after = cache_entries(&cache)?;
    let fetched: u64 = after
        .iter()
        .filter(|(name, now)| before.get(*name) != Some(*now))
        .map(|(_, (length, _))| *length)
        .sum();
    let new = after
        .keys()
        .filter(|name| !before.contains_key(*name))
        .count();
    let rewritten = after
        .iter()
        .filter(|(name, now)| before.get(*name).is_some_and(|then| then != *now))
        .count();
    let figure = fetched as f64 / changed_bytes as f64;
    Ok(Row {
        id: "B5".to_owned(),
        label: format!("update after {CHANGED} of {FILES} files (200 MB) changed"),
        a: fetched as f64 / 1_048_576.0,
        b: Some(changed_bytes as f64 / 1_048_576.0),
        unit: "MB",
        figure,
        target: "A/B <= 1.05".to_owned(),
        met: figure <= 1.05,
        notes: format!(
            "A = bytes fetched into the cache ({new} new entries, {rewritten} rewritten of {} before), B = bytes of changed files; first install {:.0} ms, update {:.0} ms",
            before.len(),
            millis(first),
            millis(update)
        ),
    })
}
