//! B7 and B8: capturing and applying an image of a tree of 2,000 files,
//! about 1 GiB (incompressible contents, in 20 folders), each against GNU
//! tar doing the least that gives the same result:
//!
//! - B7: `roleout image capture --root TREE --output FILE` (every file
//!   hashed for the manifest, then packed, checked again and compressed)
//!   against `tar -c --xattrs -C TREE . | sha256sum` (every byte read and
//!   hashed once);
//! - B8: `roleout image apply FILE --root EMPTY --store NEW` (every blob
//!   decompressed, checked into a fresh content store, then the tree made)
//!   against `tar -x --xattrs -f TREE.tar -C EMPTY` of an uncompressed
//!   archive of the same tree.
//!
//! The page cache is warm for both sides; each run writes to a new folder
//! and the folders of the run before are removed untimed.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

use crate::bench::server::sibling;
use crate::bench::update::fill;
use crate::bench::{Row, median, millis, time};

const FILES: usize = 2000;
const TOTAL_BYTES: usize = 1 << 30;

fn succeed(command: &mut Command) -> anyhow::Result<()> {
    let output = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// The tree: file `index` holds `fill(index + 1, …)`, sizes from half to
/// one and a half times the mean.
fn make_tree(tree: &Path) -> anyhow::Result<u64> {
    let mean = TOTAL_BYTES / FILES;
    let mut total = 0;
    for index in 0..FILES {
        let folder = tree.join(format!("d{:02}", index % 20));
        fs::create_dir_all(&folder)?;
        let size = mean / 2 + (index * 7919) % mean;
        fs::write(
            folder.join(format!("f{index:04}.bin")),
            fill(index as u64 + 1, size),
        )?;
        total += size as u64;
    }
    Ok(total)
}

/// The B7 and B8 rows.
pub(crate) fn run(runs: usize) -> anyhow::Result<Vec<Row>> {
    let roleout = sibling("roleout")?;
    let top = tempfile::tempdir()?;
    let tree = top.path().join("tree");
    let total = make_tree(&tree)?;
    let state = top.path().join("state");
    let image = top.path().join("tree.rimg");
    let archive = top.path().join("tree.tar");
    succeed(
        Command::new("tar")
            .args(["-c", "--xattrs", "-f"])
            .arg(&archive)
            .arg("-C")
            .arg(&tree)
            .arg("."),
    )?;
    let (mut capture, mut hashed, mut apply, mut untar) = (vec![], vec![], vec![], vec![]);
    for run in 0..runs {
        let (elapsed, ()) = time(|| {
            succeed(
                Command::new(&roleout)
                    .arg("--state-dir")
                    .arg(&state)
                    .args(["image", "capture", "--name", "bench", "--root"])
                    .arg(&tree)
                    .arg("--output")
                    .arg(&image),
            )
        })?;
        capture.push(millis(elapsed));
        let (elapsed, ()) = time(|| {
            succeed(
                Command::new("sh")
                    .arg("-c")
                    .arg("tar -c --xattrs -C \"$1\" . | sha256sum > /dev/null")
                    .arg("sh")
                    .arg(&tree),
            )
        })?;
        hashed.push(millis(elapsed));

        let (target, store) = (
            top.path().join(format!("a-{run}")),
            top.path().join(format!("store-{run}")),
        );
        fs::create_dir(&target)?;
        let (elapsed, ()) = time(|| {
            succeed(
                Command::new(&roleout)
                    .arg("--state-dir")
                    .arg(&state)
                    .args(["image", "apply"])
                    .arg(&image)
                    .arg("--root")
                    .arg(&target)
                    .arg("--store")
                    .arg(&store),
            )
        })?;
        apply.push(millis(elapsed));
        let plain = top.path().join(format!("b-{run}"));
        fs::create_dir(&plain)?;
        let (elapsed, ()) = time(|| {
            succeed(
                Command::new("tar")
                    .args(["-x", "--xattrs", "-f"])
                    .arg(&archive)
                    .arg("-C")
                    .arg(&plain),
            )
        })?;
        untar.push(millis(elapsed));
        for folder in [&target, &store, &plain] {
            fs::remove_dir_all(folder)?;
        }
    }
    let image_bytes = fs::metadata(&image)?.len();
    let row = |id: &str, label: &str, a: &[f64], b: &[f64], limit: f64, notes: String| {
        let (a, b) = (median(a), median(b));
        Row {
            id: id.to_owned(),
            label: label.to_owned(),
            a,
            b: Some(b),
            unit: "ms",
            figure: a / b,
            target: format!("A/B <= {limit}"),
            met: a / b <= limit,
            notes,
        }
    };
    let megabytes = total as f64 / 1_048_576.0;
    Ok(vec![
        row(
            "B7",
            "capture a 2,000-file tree of 1 GiB",
            &capture,
            &hashed,
            3.0,
            format!(
                "B = tar -c --xattrs | sha256sum; {megabytes:.0} MB of data, image file {:.0} MB",
                image_bytes as f64 / 1_048_576.0
            ),
        ),
        row(
            "B8",
            "apply that image to an empty folder",
            &apply,
            &untar,
            3.0,
            "B = tar -x --xattrs of an uncompressed archive; A checks every blob into a fresh store first"
                .to_owned(),
        ),
    ])
}
