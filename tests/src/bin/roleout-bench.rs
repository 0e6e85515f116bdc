//! `roleout-bench`: Roleout's benchmarks, each against a baseline measured
//! in the same run. Prints one row per benchmark; `--check` exits non-zero
//! when a figure misses its target. Run through `scripts/bench.sh`, which
//! builds in release mode and installs what the baselines need.

// A command-line report: printing is its purpose.
#![allow(clippy::print_stdout, clippy::print_stderr)]

#[path = "../bench/mod.rs"]
mod bench;

use std::process::ExitCode;

use bench::Row;

const USAGE: &str =
    "usage: roleout-bench [--check] [--runs N] [--only ID[,ID...]] [--sizes N[,N...]]
  --check   exit 1 when a figure misses its target
  --runs    alternating runs of A and B per row (default 5)
  --only    run only these rows (B1,B2,B3,B4,B5,B6,B7,B8,B9,B10,B11,B12,B13,B14,B15;
              S1 runs the fleet day of SCALE.md)
  --sizes   catalog sizes for B1 (default 100,1000,10000)";

struct Options {
    check: bool,
    runs: usize,
    only: Option<Vec<String>>,
    sizes: Vec<usize>,
}

fn parse(arguments: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        check: false,
        runs: 5,
        only: None,
        sizes: vec![100, 1000, 10_000],
    };
    let mut arguments = arguments;
    while let Some(argument) = arguments.next() {
        let mut value = |name: &str| {
            arguments
                .next()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        match argument.as_str() {
            "--check" => options.check = true,
            "--runs" => {
                let text = value("--runs")?;
                options.runs = text
                    .parse()
                    .ok()
                    .filter(|runs| *runs > 0)
                    .ok_or_else(|| format!("--runs {text}: not a positive number"))?;
            }
            "--only" => {
                options.only = Some(
                    value("--only")?
                        .split(',')
                        .map(|id| id.trim().to_ascii_uppercase())
                        .collect(),
                );
            }
            "--sizes" => {
                let text = value("--sizes")?;
                options.sizes = text
                    .split(',')
                    .map(|size| {
                        size.trim()
                            .parse()
                            .map_err(|_| format!("--sizes: {size:?} is not a number"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(options)
}

/// Runs the rows and prints each as soon as it is known.
struct Report {
    options: Options,
    missed: usize,
    failed: usize,
}

impl Report {
    fn wanted(&self, id: &str) -> bool {
        self.options
            .only
            .as_ref()
            .is_none_or(|only| only.iter().any(|wanted| wanted == id))
    }

    fn row(&mut self, id: &str, label: &str, result: anyhow::Result<Row>) {
        match result {
            Ok(row) => {
                if !row.met {
                    self.missed += 1;
                }
                println!("{}", row.line());
            }
            Err(error) => {
                self.failed += 1;
                println!("{id:<4} {label:<44} not run: {error:#}");
            }
        }
    }
}

fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let runs = options.runs;
    let sizes = options.sizes.clone();
    let mut report = Report {
        options,
        missed: 0,
        failed: 0,
    };
    println!("roleout-bench: {runs} alternating runs per row, medians; figure = A/B unless noted");
    if report.wanted("B1") {
        for size in sizes {
            match bench::build::run(size, runs) {
                Ok(rows) => {
                    for row in rows {
                        report.row(&row.id.clone(), "", Ok(row));
                    }
                }
                Err(error) => {
                    let label = format!("build one role's suite, {size} products");
                    report.row("B1", &label, Err(error));
                }
            }
        }
    }
    if report.wanted("B3") || report.wanted("B6") {
        match bench::auth::run(2000, runs) {
            Ok(rows) => {
                for row in rows {
                    report.row(&row.id.clone(), "", Ok(row));
                }
            }
            Err(error) => report.row("B3", "authentications per second", Err(error)),
        }
    }
    if report.wanted("B4") {
        report.row("B4", "install 200 components", bench::install::run(runs));
    }
    if report.wanted("B2") {
        match bench::serve::run(runs) {
            Ok(rows) => {
                for row in rows {
                    report.row("B2", "", Ok(row));
                }
            }
            Err(error) => report.row("B2", "authenticated GET of a built suite", Err(error)),
        }
    }
    if report.wanted("B5") {
        report.row(
            "B5",
            "update after 5% of a 200 MB payload changed",
            bench::update::run(),
        );
    }
    if report.wanted("B7") || report.wanted("B8") {
        match bench::image::run(runs) {
            Ok(rows) => {
                for row in rows {
                    report.row(&row.id.clone(), "", Ok(row));
                }
            }
            Err(error) => report.row("B7", "capture and apply an image of 1 GiB", Err(error)),
        }
    }
    if report.wanted("B10") {
        report.row(
            "B10",
            "roleoutd peak RSS, 2 GiB image archive",
            bench::blob::run(),
        );
    }
    if report.wanted("B12") {
        report.row(
            "B12",
            "a change at another provider, in effect",
            bench::replication::run(runs),
        );
    }
    if report.wanted("B13") {
        report.row(
            "B13",
            "reports/s into a replicated directory",
            bench::intake::run(runs),
        );
    }
    if report.wanted("B14") {
        report.row(
            "B14",
            "check-ins/s, nothing changed",
            bench::checkin::run(10_000, runs),
        );
    }
    // The fleet day takes minutes: only when asked for by name.
    if report
        .options
        .only
        .as_ref()
        .is_some_and(|only| only.iter().any(|wanted| wanted == "S1"))
    {
        match bench::fleet::run(10_000) {
            Ok(rows) => {
                for row in rows {
                    report.row(&row.id.clone(), "", Ok(row));
                }
            }
            Err(error) => report.row("S1", "a day of a 10,000-machine fleet", Err(error)),
        }
    }
    if report.wanted("B15") {
        report.row(
            "B15",
            "512 MiB payload through a peer lacking it",
            bench::peer::run(runs),
        );
    }
    if report.wanted("B11") {
        report.row(
            "B11",
            "deploy through an engine holding 90% of it",
            bench::engine::run(),
        );
    }
    if report.wanted("B9") {
        for machines in [1_000, 10_000] {
            report.row(
                "B9",
                &format!("judge {machines} machines as targets"),
                bench::targets::run(machines, runs),
            );
        }
    }
    let check = report.options.check;
    if report.failed > 0 {
        eprintln!("{} row(s) could not run", report.failed);
    }
    if check && (report.missed > 0 || report.failed > 0) {
        eprintln!("{} target(s) missed", report.missed);
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
