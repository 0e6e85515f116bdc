//! The benchmark rows of `roleout-bench`: each pits a Roleout operation (A)
//! against a baseline doing the least work that gives the same result (B),
//! measured alternately in the same run so both see the same machine load.
//!
//! Figures are medians over the runs; a row passes when its ratio meets
//! its target. Nothing here is part of the test suite: timings vary with
//! the machine, so they are printed, never asserted by tests.

pub(crate) mod auth;
pub(crate) mod blob;
pub(crate) mod build;
pub(crate) mod checkin;
pub(crate) mod engine;
pub(crate) mod fleet;
pub(crate) mod image;
pub(crate) mod install;
pub(crate) mod intake;
pub(crate) mod peer;
pub(crate) mod replication;
pub(crate) mod serve;
pub(crate) mod server;
pub(crate) mod targets;
pub(crate) mod update;

use std::time::{Duration, Instant};

/// A row's outcome.
pub(crate) struct Row {
    /// `B1`, `B3`, ...
    pub(crate) id: String,
    /// What was measured.
    pub(crate) label: String,
    /// Median of A, in `unit`.
    pub(crate) a: f64,
    /// Median of B, in `unit` (`None` for rows without a baseline).
    pub(crate) b: Option<f64>,
    /// The unit of `a` and `b`.
    pub(crate) unit: &'static str,
    /// The compared figure (A/B, or whatever the row defines).
    pub(crate) figure: f64,
    /// The target in words, e.g. `A/B <= 1.5`.
    pub(crate) target: String,
    /// Whether the figure meets the target.
    pub(crate) met: bool,
    /// Extra facts (searches per build, failures, ...).
    pub(crate) notes: String,
}

impl Row {
    /// The row as one printed line.
    pub(crate) fn line(&self) -> String {
        let b = match self.b {
            Some(b) => format!("{b:.3}"),
            None => "-".to_owned(),
        };
        format!(
            "{:<4} {:<44} A {:>10.3} {:<5} B {:>10} {:<5} figure {:>8.3}  target {:<14} {:<6} {}",
            self.id,
            self.label,
            self.a,
            self.unit,
            b,
            self.unit,
            self.figure,
            self.target,
            if self.met { "met" } else { "MISSED" },
            self.notes
        )
    }
}

/// Runs `work` for each index below `total`, `threads` at a time (each
/// thread takes the next index until none is left): the rate per second
/// and how many failed. The first failure is printed with `what`.
pub(crate) fn in_parallel(
    total: usize,
    threads: usize,
    what: &str,
    work: impl Fn(usize) -> anyhow::Result<()> + Sync,
) -> (f64, usize) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let failures = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= total {
                        break;
                    }
                    if let Err(error) = work(index)
                        && failures.fetch_add(1, Ordering::Relaxed) == 0
                    {
                        eprintln!("{what}: first failure: {error:#}");
                    }
                }
            });
        }
    });
    (
        total as f64 / started.elapsed().as_secs_f64(),
        failures.load(Ordering::Relaxed),
    )
}

/// The median of `values` (mean of the two middle ones for an even count).
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let count = sorted.len();
    if count == 0 {
        return f64::NAN;
    }
    if count % 2 == 1 {
        sorted[count / 2]
    } else {
        (sorted[count / 2 - 1] + sorted[count / 2]) / 2.0
    }
}

/// The `quantile` (0..=1) of `values`, nearest rank.
pub(crate) fn quantile(values: &[f64], quantile: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((quantile * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Times `f` once.
pub(crate) fn time<T>(f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<(Duration, T)> {
    let start = Instant::now();
    let value = f()?;
    Ok((start.elapsed(), value))
}

/// Milliseconds of a duration.
pub(crate) fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Loads `ldif` into the stopped-then-restarted `local` slapd offline with
/// `slapadd`, the bulk path (adding thousands of entries one operation at
/// a time would take minutes); `what` names it in errors.
pub(crate) fn slapadd(
    local: &mut roleout_directory::LocalDirectory,
    ldif: &str,
    what: &str,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let path = local.state_dir().join(format!("{what}.ldif"));
    std::fs::write(&path, ldif).with_context(|| format!("writing {}", path.display()))?;
    local.stop()?;
    let output = std::process::Command::new("slapadd")
        .arg("-F")
        .arg(local.config_dir())
        .args(["-b", local.suffix(), "-q", "-l"])
        .arg(&path)
        .output()
        .context("running slapadd")?;
    if !output.status.success() {
        anyhow::bail!(
            "slapadd of the synthetic {what} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    local.start()?;
    Ok(())
}

/// The repository root (the tests crate sits in it).
pub(crate) fn repository() -> std::path::PathBuf {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_owned()
}
