//! Choosing an image's targets and starting its deployment: `targets`
//! lists every machine with whether it may take the image now (and each
//! reason it may not), grouped by the installation engine it is reached
//! through; `deploy` checks the chosen targets the same way, shows the
//! plan (`--dry-run` stops there), takes a lease on every target, all or
//! nothing, and records the job; `job list|show` follow it.
//!
//! Every machine is judged from one search of the machines (with their
//! hardware and leases) and one read of the image, whatever their number.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::SystemTime;

use roleout_directory::Directory;
use roleout_directory::images::ImageEntry;
use roleout_directory::machines::TargetCandidate;
use roleout_model::ids::MachineId;
use roleout_model::image::{DriverAliases, ImageName, InterfaceAddress, TargetConfiguration};
use roleout_model::job::{Candidate, Deployment, JobId, JobTarget, Verdict, verdict};

use super::images::bytes_text;
use super::{CommandFailed, Output};

/// The holder of a lease taken for a target no engine reaches.
const NO_ENGINE: &str = "roleout-admin";

/// The image `name` and its kept module aliases.
async fn read_image(
    directory: &Directory,
    name: &str,
) -> Result<(ImageEntry, String), CommandFailed> {
    let id = ImageName::new(name).map_err(CommandFailed)?;
    directory
        .image_with_aliases(&id)
        .await
        .map_err(|error| CommandFailed(format!("cannot read image {name}: {error}")))?
        .ok_or_else(|| CommandFailed(format!("no image {name:?} in the directory")))
}

/// Whether `candidate` may take `image` now.
fn judge(
    image: &ImageEntry,
    aliases: &DriverAliases<'_>,
    candidate: &TargetCandidate,
    now: u64,
) -> Verdict {
    let judged = verdict(
        &image.description,
        aliases,
        Candidate {
            hardware: candidate.hardware.as_ref(),
            usable: candidate.machine.may_authenticate(),
            lease: candidate.lease.as_ref(),
        },
        now,
    );
    if candidate.problems.is_empty() {
        return judged;
    }
    let mut reasons: Vec<String> = candidate
        .problems
        .iter()
        .map(|problem| format!("its entry does not read ({problem})"))
        .collect();
    if let Verdict::Excluded(more) = judged {
        reasons.extend(more);
    }
    Verdict::Excluded(reasons)
}

fn engine_of(candidate: &TargetCandidate) -> String {
    candidate
        .machine
        .engine
        .clone()
        .unwrap_or_else(|| "(no engine)".to_owned())
}

/// `targets IMAGE [--engine NAME]`: every machine (of one engine) with
/// its verdict, grouped by engine.
pub async fn targets(
    directory: &Directory,
    image: &str,
    engine: Option<&str>,
    output: &mut Output<'_>,
) -> Result<(), CommandFailed> {
    let (image, alias_text) = read_image(directory, image).await?;
    let aliases = DriverAliases::parse(&alias_text);
    let candidates = directory
        .target_candidates()
        .await
        .map_err(|error| CommandFailed(format!("cannot read the machines: {error}")))?;
    let now = roleout_model::keys::unix_seconds(SystemTime::now());
    let mut by_engine: BTreeMap<String, Vec<(String, Verdict)>> = BTreeMap::new();
    for candidate in &candidates {
        let engine_name = engine_of(candidate);
        if engine.is_some_and(|wanted| wanted != engine_name) {
            continue;
        }
        by_engine.entry(engine_name).or_default().push((
            candidate.machine.machine.name.to_string(),
            judge(&image, &aliases, candidate, now),
        ));
    }
    let available = by_engine
        .values()
        .flatten()
        .filter(|(_, verdict)| *verdict == Verdict::Available)
        .count();
    let total: usize = by_engine.values().map(Vec::len).sum();
    let mut text = format!(
        "image {}: {available} of {total} machine(s) available\n",
        image.description.name
    );
    for (engine_name, mut machines) in by_engine {
        machines.sort_by(|a, b| a.0.cmp(&b.0));
        let _ = writeln!(text, "engine {engine_name}:");
        for (machine, verdict) in machines {
            let _ = writeln!(text, "  {machine}\t{verdict}");
        }
    }
    output.write_text(&text)
}

/// What `deploy` is asked.
#[derive(Debug, Clone)]
pub struct DeployRequest {
    /// The image.
    pub image: String,
    /// The targets, each with its interfaces' addresses.
    pub targets: Vec<(String, Vec<InterfaceAddress>)>,
    /// How long the leases hold unless the engines renew them.
    pub lease_minutes: u64,
    /// Show the plan and stop.
    pub dry_run: bool,
    /// Who asks (recorded in the job).
    pub started_by: String,
    /// Scripts run once at each target's first start, pinned by digest.
    pub scripts: Vec<roleout_model::job::JobScript>,
}

/// `deploy`: checks every target, shows the plan, then (unless a dry run)
/// takes every target's lease, all or nothing, and records the job.
/// Returns the job's id (none for a dry run).
pub async fn deploy(
    directory: &Directory,
    request: &DeployRequest,
    output: &mut Output<'_>,
) -> Result<Option<JobId>, CommandFailed> {
    if request.targets.is_empty() {
        return Err(CommandFailed(
            "name at least one target (--target MACHINE)".to_owned(),
        ));
    }
    for script in &request.scripts {
        script.check().map_err(CommandFailed)?;
    }
    let (image, alias_text) = read_image(directory, &request.image).await?;
    let aliases = DriverAliases::parse(&alias_text);
    let candidates = directory
        .target_candidates()
        .await
        .map_err(|error| CommandFailed(format!("cannot read the machines: {error}")))?;
    let now = roleout_model::keys::unix_seconds(SystemTime::now());
    let mut refused = Vec::new();
    let mut chosen = Vec::new();
    for (name, interfaces) in &request.targets {
        let Some(candidate) = candidates
            .iter()
            .find(|candidate| candidate.machine.machine.name.as_str() == name)
        else {
            refused.push(format!("{name}: no such machine"));
            continue;
        };
        let configuration = TargetConfiguration {
            hostname: name.clone(),
            interfaces: interfaces.clone(),
        };
        if let Err(reason) = configuration.check() {
            refused.push(format!("{name}: {reason}"));
            continue;
        }
        match judge(&image, &aliases, candidate, now) {
            Verdict::Available => chosen.push((candidate, configuration)),
            other => refused.push(format!("{name}: {other}")),
        }
    }
    if !refused.is_empty() {
        return Err(CommandFailed(format!(
            "nothing was locked; these targets cannot take image {} now:\n  {}",
            image.description.name,
            refused.join("\n  ")
        )));
    }
    let description = &image.description;
    let mut text = format!(
        "image {} ({} entries, {} of data) onto {} target(s):\n",
        description.name,
        description.entries,
        bytes_text(description.data_bytes),
        chosen.len()
    );
    for (candidate, configuration) in &chosen {
        let largest = candidate
            .hardware
            .as_ref()
            .and_then(|hardware| hardware.disks.iter().max_by_key(|disk| disk.size_bytes));
        let plan = largest.map(|disk| {
            (
                disk.name.clone(),
                roleout_model::disk::plan(
                    &description.partitions,
                    &description.data_by_mount_point(),
                    disk.size_bytes,
                ),
            )
        });
        let _ = writeln!(
            text,
            "  {} (engine {}): host name {}{}",
            candidate.machine.machine.name,
            engine_of(candidate),
            configuration.hostname,
            configuration
                .interfaces
                .iter()
                .map(|interface| format!(", {} {}", interface.name, interface.address))
                .collect::<String>()
        );
        if let Some((disk, Ok(plan))) = plan {
            for partition in &plan.partitions {
                let _ = writeln!(
                    text,
                    "    {disk} partition {} {} {} {} (needs {})",
                    partition.number,
                    partition.name,
                    partition.fs_type,
                    bytes_text(partition.size_bytes),
                    bytes_text(partition.needed_bytes)
                );
            }
        }
    }
    for script in &request.scripts {
        let _ = writeln!(
            text,
            "  first-start script {} (SHA-256 {}){}",
            script.name,
            script.sha256,
            match &script.source {
                roleout_model::job::ScriptSource::Inline { .. } => String::new(),
                roleout_model::job::ScriptSource::Url { url } => format!(" from {url}"),
            }
        );
    }
    if request.dry_run {
        text.push_str("dry run: nothing was locked or written\n");
        output.write_text(&text)?;
        return Ok(None);
    }
    let salt = {
        let mut bytes = [0u8; 2];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
            .map_err(|_| CommandFailed("no randomness for the job's id".to_owned()))?;
        u16::from_be_bytes(bytes)
    };
    let id = JobId::generate("image", now, salt);
    let lease_until = now + request.lease_minutes.max(1) * 60;
    // The leases, all or nothing: per engine (its holder), and what was
    // taken is given back when a later engine's targets are refused.
    let mut by_holder: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (candidate, _) in &chosen {
        let holder = candidate
            .machine
            .engine
            .clone()
            .unwrap_or_else(|| NO_ENGINE.to_owned());
        by_holder
            .entry(holder)
            .or_default()
            .push(candidate.machine.dn.clone());
    }
    let mut taken = Vec::new();
    for (holder, dns) in &by_holder {
        let acquired = directory
            .acquire_leases(dns, holder, id.as_str(), lease_until, now)
            .await;
        match acquired {
            Ok(Ok(leases)) => taken.extend(dns.iter().cloned().zip(leases)),
            Ok(Err(refusal)) => {
                let _ = directory.release_leases(&taken).await;
                return Err(CommandFailed(format!(
                    "nothing was locked: {refusal} (another job took it first)"
                )));
            }
            Err(error) => {
                let _ = directory.release_leases(&taken).await;
                return Err(CommandFailed(format!(
                    "nothing was locked: cannot take the leases: {error}"
                )));
            }
        }
    }
    let deployment = Deployment {
        id: id.clone(),
        image: description.name.clone(),
        manifest: description.manifest.clone(),
        started_by: request.started_by.clone(),
        started_at: now,
        lease_until,
        targets: chosen
            .iter()
            .map(|(candidate, configuration)| JobTarget {
                machine: candidate.machine.machine.name.clone(),
                engine: candidate.machine.engine.clone(),
                configuration: configuration.clone(),
            })
            .collect(),
        scripts: request.scripts.clone(),
    };
    if let Err(error) = directory.create_deployment(&deployment).await {
        let _ = directory.release_leases(&taken).await;
        return Err(CommandFailed(format!(
            "nothing was locked: cannot record job {id}: {error}"
        )));
    }
    let _ = writeln!(
        text,
        "job {id}: {} target(s) locked until {lease_until} (Unix seconds); follow it with `job show {id}`",
        chosen.len()
    );
    output.write_text(&text)?;
    Ok(Some(id))
}

/// `job list`: every job, with how many targets stand in each phase.
pub async fn list_jobs(
    directory: &Directory,
    output: &mut Output<'_>,
) -> Result<(), CommandFailed> {
    let jobs = directory
        .deployments()
        .await
        .map_err(|error| CommandFailed(format!("cannot read the jobs: {error}")))?;
    let mut text = String::new();
    if jobs.is_empty() {
        text.push_str("no jobs: start one with `deploy IMAGE --target MACHINE`\n");
    }
    for job in &jobs {
        let mut phases: BTreeMap<&str, usize> = BTreeMap::new();
        for target in &job.targets {
            *phases.entry(target.phase.as_str()).or_default() += 1;
        }
        let _ = writeln!(
            text,
            "{}\timage {}\tby {}\t{}",
            job.deployment.id,
            job.deployment.image,
            job.deployment.started_by,
            phases
                .iter()
                .map(|(phase, count)| format!("{count} {phase}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    output.write_text(&text)
}

/// `job show ID`: where each target of the job stands.
pub async fn show_job(
    directory: &Directory,
    id: &str,
    output: &mut Output<'_>,
) -> Result<(), CommandFailed> {
    let id = JobId::new(id).map_err(CommandFailed)?;
    let job = directory
        .deployment(&id)
        .await
        .map_err(|error| CommandFailed(format!("cannot read job {id}: {error}")))?
        .ok_or_else(|| CommandFailed(format!("no job {id:?} in the directory")))?;
    let deployment = &job.deployment;
    let mut text = format!(
        "job {}: image {} (manifest {}), started by {} at {} (Unix seconds), leases until {}\n",
        deployment.id,
        deployment.image,
        &deployment.manifest.as_str()[..12],
        deployment.started_by,
        deployment.started_at,
        deployment.lease_until
    );
    for target in &job.targets {
        let _ = writeln!(
            text,
            "  {}\t{}\t{}{}",
            target.machine,
            target.phase,
            target.updated.as_deref().unwrap_or("-"),
            target
                .message
                .as_deref()
                .map(|message| format!("\t{message}"))
                .unwrap_or_default()
        );
    }
    output.write_text(&text)
}

/// `job watch ID`: each change of a target's phase as it reaches the
/// directory, until every target is done (complete or failed) or
/// `timeout` passes; fails when it passed, naming the targets still
/// running, or when a target failed.
pub async fn watch_job(
    directory: &Directory,
    id: &str,
    timeout: std::time::Duration,
    output: &mut Output<'_>,
) -> Result<(), CommandFailed> {
    let id = JobId::new(id).map_err(CommandFailed)?;
    let deadline = std::time::Instant::now() + timeout;
    let mut seen: BTreeMap<String, (String, Option<String>)> = BTreeMap::new();
    loop {
        let job = directory
            .deployment(&id)
            .await
            .map_err(|error| CommandFailed(format!("cannot read job {id}: {error}")))?
            .ok_or_else(|| CommandFailed(format!("no job {id:?} in the directory")))?;
        let mut text = String::new();
        for target in &job.targets {
            let now = (target.phase.to_string(), target.message.clone());
            if seen.get(target.machine.as_str()) != Some(&now) {
                let _ = writeln!(
                    text,
                    "{}\t{}{}",
                    target.machine,
                    target.phase,
                    target
                        .message
                        .as_deref()
                        .map(|message| format!("\t{message}"))
                        .unwrap_or_default()
                );
                seen.insert(target.machine.to_string(), now);
            }
        }
        output.write_text(&text)?;
        let running: Vec<&str> = job
            .targets
            .iter()
            .filter(|target| !target.phase.is_final())
            .map(|target| target.machine.as_str())
            .collect();
        if running.is_empty() {
            let failed: Vec<&str> = job
                .targets
                .iter()
                .filter(|target| target.phase == roleout_model::job::Phase::Failed)
                .map(|target| target.machine.as_str())
                .collect();
            if failed.is_empty() {
                output.write_text(&format!("job {id}: every target complete\n"))?;
                return Ok(());
            }
            return Err(CommandFailed(format!(
                "job {id} is over; failed on {}",
                failed.join(", ")
            )));
        }
        if std::time::Instant::now() >= deadline {
            return Err(CommandFailed(format!(
                "job {id}: still running after {} s on {}",
                timeout.as_secs(),
                running.join(", ")
            )));
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// A script from the admin's file at `path`, pinned by its digest.
pub fn script_from_file(
    path: &std::path::Path,
) -> Result<roleout_model::job::JobScript, CommandFailed> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| CommandFailed(format!("--script {}: {error}", path.display())))?;
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(roleout_model::job::JobScript {
        name,
        sha256: roleout_model::ids::Sha256::of(text.as_bytes()),
        source: roleout_model::job::ScriptSource::Inline { text },
    })
}

/// A script fetched by each target from `URL=SHA256`, pinned by that
/// digest; named after the URL's last segment.
pub fn script_from_url(given: &str) -> Result<roleout_model::job::JobScript, CommandFailed> {
    let bad = || {
        CommandFailed(format!(
            "--script-url {given}: write it as URL=SHA256 (the script's SHA-256 in hex)"
        ))
    };
    let (url, digest) = given.rsplit_once('=').ok_or_else(bad)?;
    let sha256 = roleout_model::ids::Sha256::new(digest).map_err(|_| bad())?;
    let name = url
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    Ok(roleout_model::job::JobScript {
        name,
        sha256,
        source: roleout_model::job::ScriptSource::Url {
            url: url.to_owned(),
        },
    })
}

/// Reads `MACHINE:IFACE=ADDRESS/PREFIX` (`web-3:eth0=198.18.1.13/24`).
pub fn parse_address(text: &str) -> Result<(MachineId, InterfaceAddress), CommandFailed> {
    let bad = || {
        CommandFailed(format!(
            "--address {text}: write it as MACHINE:IFACE=ADDRESS/PREFIX (web-3:eth0=198.18.1.13/24)"
        ))
    };
    let (machine, rest) = text.split_once(':').ok_or_else(bad)?;
    let (interface, address) = rest.split_once('=').ok_or_else(bad)?;
    let machine = MachineId::new(machine).map_err(|_| bad())?;
    Ok((
        machine,
        InterfaceAddress {
            name: interface.to_owned(),
            address: address.to_owned(),
            gateway: None,
            dns: Vec::new(),
        },
    ))
}
