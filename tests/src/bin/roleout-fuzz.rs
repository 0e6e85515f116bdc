//! `roleout-fuzz`: mutation fuzzing of what Roleout reads from others, on
//! stable Rust, for a fixed time.
//!
//! Targets:
//! - `descriptor`: the XML descriptor reader, from the example catalog and
//!   the corpus of broken descriptors; an input it accepts must also write
//!   back and read back to the same descriptor;
//! - `api`: every body roleoutd and the agent decode (`Message::decode`),
//!   from one valid body of each;
//! - `groups`: the machine-groups file (`group import`);
//! - `versions`: version and range parsing and comparison.
//!
//! Inputs are mutations of the seeds (bytes flipped, inserted, deleted,
//! repeated, spliced between seeds, tokens that parsers care about). A
//! panic is a finding: the input is written to `--crashes DIR` and the run
//! exits 1 once the time is up. Every finding becomes a regression input:
//! copied into `tests/fuzz-regressions/` (named `TARGET-...`), it is
//! replayed first by every run given `--replay DIR` (as the test script
//! does), and fails the run while it still panics.
//!
//! Usage: `roleout-fuzz [--seconds N] [--seed S] [--crashes DIR] [--replay DIR] [TARGET...]`

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use roleout_model::descriptor::{self, Descriptor};
use roleout_model::machine::Groups;
use roleout_model::protocol::{
    ChallengeRequest, ChallengeResponse, Close, EnrollRequest, EnrollResponse, ErrorBody, Health,
    Message, ReportAck, SessionRequest, SessionResponse, SignedEnvelope, StatusReport,
    SuiteComplete, SuiteDelivery, SuiteList, TrustAnnouncement,
};
use roleout_model::version::{Version, VersionReq};

/// A small, fast generator (xorshift64*): the runs are reproducible from
/// their seed, and no crate is needed for it.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, bound: usize) -> usize {
        if bound == 0 {
            0
        } else {
            (self.next() % bound as u64) as usize
        }
    }
}

/// Byte strings parsers treat specially.
const TOKENS: &[&[u8]] = &[
    b"<",
    b">",
    b"&",
    b"&#",
    b"&#x",
    b";",
    b"\"",
    b"'",
    b"</",
    b"/>",
    b"<!--",
    b"-->",
    b"<![CDATA[",
    b"]]>",
    b"<?xml",
    b"<!DOCTYPE",
    b"{{",
    b"}}",
    b"{%",
    b"%}",
    b"\\",
    b"\\u0000",
    b"\0",
    b"\xff",
    b"\xc3",
    b"\xe2\x80\xa8",
    b"\r\n",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b",",
    b"null",
    b"true",
    b"-1",
    b"0",
    b"99999999999999999999",
    b"1e308",
    b"-0",
    b"=",
    b">=",
    b"<=",
    b"!=",
    b"*",
    b"~",
    b"1.0~rc1",
    b"role=\"\"",
    b" role=\"a b\"",
    b"xmlns:x=\"y\"",
];

fn mutate(seed: &[u8], others: &[Vec<u8>], random: &mut Random) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for _ in 0..=random.below(4) {
        let at = random.below(bytes.len() + 1);
        match random.below(7) {
            0 if !bytes.is_empty() => {
                let at = at.min(bytes.len() - 1);
                bytes[at] ^= 1 << random.below(8);
            }
            1 => {
                let token = TOKENS[random.below(TOKENS.len())];
                bytes.splice(at..at, token.iter().copied());
            }
            2 if !bytes.is_empty() => {
                let end = (at + 1 + random.below(64)).min(bytes.len());
                let start = at.min(end);
                bytes.drain(start..end);
            }
            3 if !bytes.is_empty() => {
                // A stretch repeated (deep nesting, long values).
                let start = at.min(bytes.len() - 1);
                let end = (start + 1 + random.below(32)).min(bytes.len());
                let piece = bytes[start..end].to_vec();
                for _ in 0..=random.below(16) {
                    bytes.splice(start..start, piece.iter().copied());
                }
            }
            4 if !others.is_empty() => {
                let other = &others[random.below(others.len())];
                if !other.is_empty() {
                    let start = random.below(other.len());
                    let end = (start + 1 + random.below(256)).min(other.len());
                    bytes.splice(at..at, other[start..end].iter().copied());
                }
            }
            5 => bytes.insert(at, random.next() as u8),
            _ => {
                let at = at.min(bytes.len());
                bytes.truncate(at.max(bytes.len() / 2));
            }
        }
        // Bounded: the parsers refuse large inputs before reading them, and
        // the fuzzer is about what they read.
        bytes.truncate(256 * 1024);
    }
    bytes
}

/// One thing Roleout reads: its seeds and what it must not do with any input.
struct Target {
    name: &'static str,
    seeds: Vec<Vec<u8>>,
    /// Reads an input; whether it was accepted (so a run shows how many
    /// inputs reached past the first refusal).
    check: fn(&[u8]) -> bool,
}

fn check_descriptor(bytes: &[u8]) -> bool {
    let parsed = descriptor::parse("fuzz.xml", bytes);
    let accepted = parsed.descriptor.is_some();
    if let Some(descriptor) = parsed.descriptor {
        // Accepted: it writes back and reads back to itself.
        let text = descriptor::to_xml(&descriptor);
        let again = descriptor::parse("fuzz.xml", text.as_bytes());
        assert!(
            again.descriptor.as_ref() == Some(&descriptor),
            "an accepted descriptor does not read back to itself: {:?}",
            again.diagnostics
        );
        if let Descriptor::Product(product) = &descriptor {
            let _ = product.tagged_roles();
        }
    }
    accepted
}

fn check_api(bytes: &[u8]) -> bool {
    [
        EnrollRequest::decode(bytes).is_ok(),
        EnrollResponse::decode(bytes).is_ok(),
        ChallengeRequest::decode(bytes).is_ok(),
        ChallengeResponse::decode(bytes).is_ok(),
        SessionRequest::decode(bytes).is_ok(),
        SessionResponse::decode(bytes).is_ok(),
        SignedEnvelope::decode(bytes).is_ok(),
        SuiteList::decode(bytes).is_ok(),
        SuiteDelivery::decode(bytes).is_ok(),
        StatusReport::decode(bytes).is_ok(),
        ReportAck::decode(bytes).is_ok(),
        SuiteComplete::decode(bytes).is_ok(),
        Close::decode(bytes).is_ok(),
        TrustAnnouncement::decode(bytes).is_ok(),
        Health::decode(bytes).is_ok(),
        ErrorBody::decode(bytes).is_ok(),
    ]
    .contains(&true)
}

fn check_groups(bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    let Ok(groups) = Groups::from_ini("fuzz.ini", text) else {
        return false;
    };
    if let Ok(written) = groups.to_ini() {
        let again = Groups::from_ini("fuzz.ini", &written);
        assert!(
            again.as_ref().ok() == Some(&groups),
            "a groups file read does not write back to itself: {written:?}"
        );
    }
    true
}

fn check_versions(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    let mut accepted = false;
    let (left, right) = text.split_once('|').unwrap_or((&text, "1.0"));
    if let (Ok(a), Ok(b)) = (Version::new(left), Version::new(right)) {
        accepted = true;
        // A total order: antisymmetric and consistent with equality.
        assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
        let _ = VersionReq::parse(&format!(">={a}, <{b}")).map(|range| range.matches(&a));
    }
    if let Ok(range) = VersionReq::parse(&text) {
        accepted = true;
        let shown = range.to_string();
        assert!(
            VersionReq::parse(&shown).is_ok(),
            "range {text:?} shows as {shown:?}, which does not parse"
        );
    }
    accepted
}

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn files(directory: &Path, extension: &str) -> Vec<Vec<u8>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(directory)
        .map(|entries| entries.flatten().map(|entry| entry.path()).collect())
        .unwrap_or_default();
    paths.retain(|path| path.extension().is_some_and(|ext| ext == extension));
    paths.sort();
    paths
        .into_iter()
        .filter_map(|path| std::fs::read(path).ok())
        .collect()
}

fn targets() -> Vec<Target> {
    let root = repository();
    let mut descriptors = files(&root.join("examples"), "xml");
    descriptors.extend(files(&root.join("model/tests/corpus"), "xml"));
    descriptors.extend(files(&root.join("tests/fixtures/office"), "xml"));
    let api: Vec<Vec<u8>> = [
        r#"{"machine":"pc-1"}"#,
        r#"{"machine":"pc-1","token":"t.o.k","signature":"AAAA"}"#,
        r#"{"machine":"pc-1","certificate":"MIIB","facts":{"os":"linux","arch":"x86_64","extra":{"memory-mb":"8"}}}"#,
        r#"{"id":"r-1","suite":"domino","build-digest":"0000000000000000000000000000000000000000000000000000000000000000","component":"notes","step":"install","outcome":"success","exit-code":0,"duration-ms":1,"evidence":["e"],"log":"l","started-at":"2024-05-01T12:00:00Z","finished-at":"2024-05-01T12:00:01Z"}"#,
        r#"{"id":"c-1","suite":"domino","build-digest":"0000000000000000000000000000000000000000000000000000000000000000","summary":{"installed":1,"skipped":0,"failed":0,"blocked":0,"reboot-required":false}}"#,
        r#"{"status":"recorded"}"#,
        r#"{"error":"invalid-body","message":"m"}"#,
        r#"{"session":"s","expires-at":"2024-05-01T12:00:00Z","roles":["a"]}"#,
    ]
    .iter()
    .map(|text| text.as_bytes().to_vec())
    .collect();
    let groups = vec![
        b"[group accounting]\nsuite = office\nproducts = spreadsheet printer\nmachines = pc-1 pc-2\n\n[machine pc-1]\nproducts = browser\n".to_vec(),
        b"; comment\n[group lab]\nsuite = s\n".to_vec(),
    ];
    let versions = [
        "1.0|1.0-1",
        "1:2.3~rc1|2.3",
        "10.0 FP3|10.1",
        ">=1.8, <2",
        "*",
        "==1.2.3",
        "!=0",
    ]
    .iter()
    .map(|text| text.as_bytes().to_vec())
    .collect();
    vec![
        Target {
            name: "descriptor",
            seeds: descriptors,
            check: check_descriptor,
        },
        Target {
            name: "api",
            seeds: api,
            check: check_api,
        },
        Target {
            name: "groups",
            seeds: groups,
            check: check_groups,
        },
        Target {
            name: "versions",
            seeds: versions,
            check: check_versions,
        },
    ]
}

/// Runs every `TARGET-*` file of `directory` through its target; the
/// number that still panic.
fn replay_regressions(directory: &Path, targets: &[Target]) -> usize {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(directory)
        .map(|entries| entries.flatten().map(|entry| entry.path()).collect())
        .unwrap_or_default();
    paths.sort();
    let mut replayed = 0;
    let mut failed = 0;
    for path in paths {
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default()
            .to_owned();
        let Some(target) = targets
            .iter()
            .find(|target| name.starts_with(&format!("{}-", target.name)))
        else {
            continue;
        };
        let Ok(input) = std::fs::read(&path) else {
            continue;
        };
        replayed += 1;
        let check = target.check;
        if catch_unwind(AssertUnwindSafe(|| check(&input))).is_err() {
            eprintln!("roleout-fuzz: regression {} panics", path.display());
            failed += 1;
        }
    }
    println!(
        "roleout-fuzz: {replayed} regression input(s) replayed from {}",
        directory.display()
    );
    failed
}

fn main() {
    let mut seconds = 60u64;
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |elapsed| elapsed.as_nanos() as u64)
        | 1;
    let mut crashes = PathBuf::from("fuzz-crashes");
    let mut replay: Option<PathBuf> = None;
    let mut wanted: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next().unwrap_or_else(|| {
                eprintln!("roleout-fuzz: {name} needs a value");
                std::process::exit(2)
            })
        };
        match arg.as_str() {
            "--seconds" => seconds = value("--seconds").parse().unwrap_or(60),
            "--seed" => seed = value("--seed").parse::<u64>().unwrap_or(1) | 1,
            "--crashes" => crashes = PathBuf::from(value("--crashes")),
            "--replay" => replay = Some(PathBuf::from(value("--replay"))),
            "-h" | "--help" => {
                println!(
                    "roleout-fuzz [--seconds N] [--seed S] [--crashes DIR] [descriptor|api|groups|versions...]"
                );
                return;
            }
            other => wanted.push(other.to_owned()),
        }
    }
    // Findings are reported once, not as a panic message per input.
    std::panic::set_hook(Box::new(|_| {}));
    let targets: Vec<Target> = targets()
        .into_iter()
        .filter(|target| wanted.is_empty() || wanted.iter().any(|name| name == target.name))
        .collect();
    if targets.is_empty() {
        eprintln!("roleout-fuzz: no such target (descriptor, api, groups, versions)");
        std::process::exit(2);
    }
    if let Some(directory) = &replay {
        let failed = replay_regressions(directory, &targets);
        if failed > 0 {
            eprintln!("roleout-fuzz: {failed} regression input(s) still panic");
            std::process::exit(1);
        }
    }
    println!(
        "roleout-fuzz: seed {seed}, {seconds} s over {} target(s)",
        targets.len()
    );
    let share = Duration::from_secs(seconds) / targets.len() as u32;
    let mut random = Random(seed);
    let mut findings: BTreeMap<&str, usize> = BTreeMap::new();
    for target in &targets {
        let started = Instant::now();
        let mut executions = 0u64;
        let mut accepted = 0u64;
        while started.elapsed() < share {
            let seed_input = &target.seeds[random.below(target.seeds.len())];
            let input = mutate(seed_input, &target.seeds, &mut random);
            executions += 1;
            let check = target.check;
            let outcome = catch_unwind(AssertUnwindSafe(|| check(&input)));
            if matches!(outcome, Ok(true)) {
                accepted += 1;
            }
            if outcome.is_err() {
                *findings.entry(target.name).or_default() += 1;
                let digest = ring::digest::digest(&ring::digest::SHA256, &input);
                let name: String = digest.as_ref()[..8]
                    .iter()
                    .map(|byte| format!("{byte:02x}"))
                    .collect();
                let path = crashes.join(format!("{}-{name}.bin", target.name));
                if std::fs::create_dir_all(&crashes)
                    .and_then(|()| std::fs::write(&path, &input))
                    .is_ok()
                {
                    eprintln!(
                        "roleout-fuzz: {} panicked on {}",
                        target.name,
                        path.display()
                    );
                }
            }
        }
        let elapsed = started.elapsed().as_secs_f64();
        println!(
            "{:<11} {executions:>9} executions in {elapsed:.1} s ({:.0}/s), {accepted} accepted, {} finding(s)",
            target.name,
            executions as f64 / elapsed.max(0.001),
            findings.get(target.name).copied().unwrap_or(0)
        );
    }
    if !findings.is_empty() {
        std::process::exit(1);
    }
}
