//! `roleout image deploy --disk DISK`: this machine as the target of an
//! image deployment, the part that runs where the disk is (a thin agent
//! before the OS, or, in tests, a namespace machine).
//!
//! It asks its engine for the signed instruction (`GET /v1/jobs/current`:
//! an `image-job` envelope for this machine and this job, checked against
//! the pinned builder key), fits the image's file systems to the disk,
//! and with `--dry-run` stops there, having written nothing. Otherwise,
//! reporting each phase (which renews its lease):
//!
//! 1. **transfer**: the imaging archive, resumed where a previous try
//!    stopped, checked against the size and SHA-256 the instruction gives;
//! 2. **partition**: the GPT, then each file system made with its `mkfs`
//!    through an offset loop device (the kernel need not read the table),
//!    detached at once;
//! 3. **copy**: the file systems mounted in a mount namespace of this
//!    process's own, through loop devices the kernel frees with the mounts
//!    (so neither outlives the process, however it ends), and the archive
//!    unpacked by GNU tar
//!    with extended attributes, ACLs and numeric owners;
//! 4. **configure**: the target made itself (host name, addresses, machine
//!    id, SSH host keys, no Roleout identity of the source) and its
//!    `/etc/fstab` pointed at the new file systems' UUIDs;
//! 5. **first-boot**: the made system gets a Roleout identity of its own
//!    (a new key the deploying key vouches for) and a note of the job,
//!    which its first start (`roleout first-boot`) finishes.
//!
//! A step that fails reports `failed` with the reason, which frees the
//! target's lease; nothing half-made is reported as done.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

use roleout_model::disk::{DiskPlan, PlannedPartition};
use roleout_model::ids::MachineId;
use roleout_model::job::Phase;
use roleout_model::protocol::signing::{PinnedKey, verify_envelope};
use roleout_model::protocol::{ImageJob, JobProgress, Message, SignedEnvelope};

use crate::client::HttpSource;
use crate::engine::SourceError;

/// Why a deployment stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeployError {
    /// The engine could not be asked, or refused.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The instruction did not verify.
    #[error("the job's instruction is refused: {0}")]
    Instruction(String),
    /// The disk cannot take the image; nothing was written.
    #[error("{0}")]
    Plan(String),
    /// A step on the disk failed.
    #[error("{phase}: {reason}")]
    Step {
        /// The phase it failed in.
        phase: Phase,
        /// Why.
        reason: String,
    },
}

/// What `image deploy` is told.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// The target disk (a block device, or a disk file).
    pub disk: PathBuf,
    /// Fit and show the plan; write nothing.
    pub dry_run: bool,
    /// Where the archive is downloaded and the file systems mounted
    /// (`STATE/images/jobs`).
    pub work: PathBuf,
    /// The deploying agent's state folder: its identity vouches for the
    /// made system's.
    pub state_dir: PathBuf,
    /// What this machine says of itself when the made system's key is
    /// presented.
    pub facts: roleout_model::protocol::MachineFacts,
}

/// What a deployment did.
#[derive(Debug, Clone)]
pub struct Deployed {
    /// The job.
    pub job: ImageJob,
    /// The disk's plan.
    pub plan: DiskPlan,
    /// The last phase reached (none for a dry run).
    pub reached: Option<Phase>,
}

/// The verified instruction of the job this machine is a target of.
pub fn instruction(
    server: &mut HttpSource,
    keys: &[PinnedKey],
    machine: &MachineId,
) -> Result<ImageJob, DeployError> {
    let envelope: SignedEnvelope = server.current_job()?;
    let pinned = keys
        .iter()
        .find(|key| key.key_id() == envelope.key_id)
        .or_else(|| keys.first())
        .ok_or_else(|| DeployError::Instruction("no builder key is pinned".to_owned()))?;
    let signed = verify_envelope(&envelope, pinned, machine, None, SystemTime::now())
        .map_err(|error| DeployError::Instruction(error.to_string()))?;
    if signed.kind != roleout_model::protocol::EnvelopeKind::ImageJob {
        return Err(DeployError::Instruction(format!(
            "it is a {} envelope, not an image job",
            signed.kind.as_str()
        )));
    }
    ImageJob::from_value(signed.payload.clone())
        .map_err(|error| DeployError::Instruction(error.to_string()))
}

/// The size of `disk`: a file's length, or a block device's end.
fn disk_size(disk: &Path) -> Result<u64, DeployError> {
    let plan_error = |error: io::Error| {
        DeployError::Plan(format!("cannot read the disk {}: {error}", disk.display()))
    };
    let mut file = File::open(disk).map_err(plan_error)?;
    let length = file.metadata().map_err(plan_error)?.len();
    if length > 0 {
        return Ok(length);
    }
    file.seek(SeekFrom::End(0)).map_err(plan_error)
}

/// Runs the deployment (see the module documentation); `say` is told
/// each step as it starts.
pub fn run(
    server: &mut HttpSource,
    keys: &[PinnedKey],
    machine: &MachineId,
    options: &DeployOptions,
    say: &mut dyn FnMut(&str),
) -> Result<Deployed, DeployError> {
    let job = instruction(server, keys, machine)?;
    let image = &job.image;
    let disk_bytes = disk_size(&options.disk)?;
    let plan =
        roleout_model::disk::plan(&image.partitions, &image.data_by_mount_point(), disk_bytes)
            .map_err(|error| DeployError::Plan(format!("{}: {error}", options.disk.display())))?;
    for partition in &plan.partitions {
        let mkfs = format!("mkfs.{}", partition.fs_type);
        if !program_exists(&mkfs) {
            return Err(DeployError::Plan(format!(
                "the image's {} is {}, and this machine has no {mkfs}; nothing was written",
                partition.mount_point, partition.fs_type
            )));
        }
    }
    say(&format!(
        "job {}: image {} onto {} ({} bytes) as {}",
        job.job,
        image.name,
        options.disk.display(),
        disk_bytes,
        job.configuration.hostname
    ));
    for partition in &plan.partitions {
        say(&format!(
            "  partition {} {} {} at {} for {} bytes ({} needed)",
            partition.number,
            partition.name,
            partition.fs_type,
            partition.start_bytes,
            partition.size_bytes,
            partition.needed_bytes
        ));
    }
    if options.dry_run {
        say(&format!(
            "dry run: {} was not written",
            options.disk.display()
        ));
        return Ok(Deployed {
            job,
            plan,
            reached: None,
        });
    }
    let mut reached = None;
    let outcome = steps(server, &job, &plan, options, say, &mut reached);
    if let Err(error) = &outcome {
        let failed = JobProgress {
            phase: Phase::Failed,
            message: Some(error.to_string()),
        };
        // The engine frees the target; what the disk holds is not
        // reported as done.
        let _ = server.job_progress(&job.job, &failed);
    }
    outcome?;
    Ok(Deployed { job, plan, reached })
}

fn program_exists(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|folder| folder.join(name).is_file())
    })
}

/// Reports `phase` and remembers it as reached.
fn enter(
    server: &mut HttpSource,
    job: &ImageJob,
    phase: Phase,
    message: &str,
    reached: &mut Option<Phase>,
    say: &mut dyn FnMut(&str),
) -> Result<(), DeployError> {
    say(&format!("{phase}: {message}"));
    server.job_progress(
        &job.job,
        &JobProgress {
            phase,
            message: Some(message.to_owned()),
        },
    )?;
    *reached = Some(phase);
    Ok(())
}

fn step_error(phase: Phase) -> impl Fn(String) -> DeployError {
    move |reason| DeployError::Step { phase, reason }
}

fn steps(
    server: &mut HttpSource,
    job: &ImageJob,
    plan: &DiskPlan,
    options: &DeployOptions,
    say: &mut dyn FnMut(&str),
    reached: &mut Option<Phase>,
) -> Result<(), DeployError> {
    fs::create_dir_all(&options.work).map_err(|error| {
        step_error(Phase::Transfer)(format!("{}: {error}", options.work.display()))
    })?;
    enter(
        server,
        job,
        Phase::Transfer,
        &format!("the imaging archive, {} bytes", job.archive.size),
        reached,
        say,
    )?;
    let archive = options.work.join(format!("{}.tar.zst", job.job));
    download(server, job, &archive).map_err(step_error(Phase::Transfer))?;
    // The admin's scripts, each checked against its pinned digest before
    // the disk is touched.
    let scripts = job
        .scripts
        .iter()
        .map(fetch_script)
        .collect::<Result<Vec<_>, _>>()
        .map_err(step_error(Phase::Transfer))?;

    enter(
        server,
        job,
        Phase::Partition,
        &format!(
            "{} partition(s) on {}",
            plan.partitions.len(),
            options.disk.display()
        ),
        reached,
        say,
    )?;
    private_mounts().map_err(step_error(Phase::Partition))?;
    roleout_store::disk::write_partition_table(&options.disk, plan)
        .map_err(|error| step_error(Phase::Partition)(error.to_string()))?;
    // Each file system is made through a loop device attached for mkfs
    // only; it is mounted later through one the kernel frees as soon as
    // the mount goes (with this process's namespace, whatever ends it).
    let mut made = Vec::new();
    for partition in &plan.partitions {
        let device = Loop::over(&options.disk, partition.start_bytes, partition.size_bytes)
            .map_err(step_error(Phase::Partition))?;
        make_file_system(&device.0, &partition.fs_type).map_err(step_error(Phase::Partition))?;
        let uuid = run_tool(Command::new("blkid").args(["-s", "UUID", "-o", "value", &device.0]))
            .map_err(step_error(Phase::Partition))?;
        made.push((partition, uuid.trim().to_owned()));
    }

    let root = options.work.join(format!("{}.root", job.job));
    enter(
        server,
        job,
        Phase::Copy,
        &format!(
            "{} entries, {} bytes of data",
            job.image.entries, job.image.data_bytes
        ),
        reached,
        say,
    )?;
    let _mounted = mount_all(&root, &options.disk, &made).map_err(step_error(Phase::Copy))?;
    unpack(&archive, &root).map_err(step_error(Phase::Copy))?;

    enter(
        server,
        job,
        Phase::Configure,
        &format!("host name {}", job.configuration.hostname),
        reached,
        say,
    )?;
    let fstab = fstab_for(&root, &made);
    super::target::configure(&root, &job.image.os, &job.configuration, Some(&fstab))
        .map_err(|error| step_error(Phase::Configure)(error.to_string()))?;
    // The made system's own identity: from here on the deploying key is
    // no longer this machine's (the session open now still reports).
    let roleout = super::first_boot::hand_over(&options.state_dir, &root, &job.job, &options.facts)
        .map_err(|error| step_error(Phase::Configure)(error.to_string()))?;
    super::first_boot::add_scripts(&root, &scripts)
        .map_err(|error| step_error(Phase::Configure)(error.to_string()))?;

    enter(
        server,
        job,
        Phase::FirstBoot,
        match roleout {
            Some(_) => "made; its first start reports",
            None => {
                "made; the image has no roleout, so its first start cannot report: the lease ends on its own"
            }
        },
        reached,
        say,
    )?;
    let _ = fs::remove_file(&archive);
    Ok(())
}

/// The bytes of `script`: carried in the job, or fetched from its URL;
/// refused unless they have its pinned SHA-256.
fn fetch_script(script: &roleout_model::job::JobScript) -> Result<(String, Vec<u8>), String> {
    use roleout_model::job::ScriptSource;
    let bytes = match &script.source {
        ScriptSource::Inline { text } => text.clone().into_bytes(),
        ScriptSource::Url { url } => {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .timeout_global(Some(std::time::Duration::from_secs(120)))
                .http_status_as_error(false)
                .build()
                .into();
            let response = agent
                .get(url)
                .call()
                .map_err(|error| format!("script {} from {url}: {error}", script.name))?;
            let status = response.status().as_u16();
            if status != 200 {
                return Err(format!(
                    "script {} from {url}: HTTP status {status}",
                    script.name
                ));
            }
            response
                .into_body()
                .with_config()
                .limit(16 << 20)
                .read_to_vec()
                .map_err(|error| format!("script {} from {url}: {error}", script.name))?
        }
    };
    let digest = roleout_model::ids::Sha256::of(&bytes);
    if digest != script.sha256 {
        return Err(format!(
            "script {} is not the one pinned: its SHA-256 is {digest}, the job pins {}",
            script.name, script.sha256
        ));
    }
    Ok((script.name.clone(), bytes))
}

/// Downloads the job's archive to `path`, going on from what a previous
/// try left there, and checks its size and digest.
fn download(server: &mut HttpSource, job: &ImageJob, path: &Path) -> Result<(), String> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|error| format!("{}: {error}", path.display()))?;
    let mut have = file
        .metadata()
        .map_err(|error| format!("{}: {error}", path.display()))?
        .len();
    if have > job.archive.size {
        // Not a start of this archive: begin again.
        file.set_len(0)
            .map_err(|error| format!("{}: {error}", path.display()))?;
        have = 0;
    }
    if have < job.archive.size {
        let mut body = server
            .job_archive(&job.job, have)
            .map_err(|error| error.to_string())?;
        let wanted = job.archive.size - have;
        let copied = io::copy(&mut (&mut body).take(wanted), &mut file)
            .map_err(|error| format!("{}: {error}", path.display()))?;
        if copied != wanted {
            return Err(format!(
                "the archive ended after {} of {} bytes; the next try goes on from there",
                have + copied,
                job.archive.size
            ));
        }
        file.sync_all()
            .map_err(|error| format!("{}: {error}", path.display()))?;
    }
    let (digest, length) = roleout_store::content::file_digest(path)
        .map_err(|error| format!("{}: {error}", path.display()))?;
    if digest != job.archive.sha256 || length != job.archive.size {
        let _ = fs::remove_file(path);
        return Err(format!(
            "the archive is not the one the job names (SHA-256 {digest}, {length} bytes; the job says {}, {} bytes); it was removed",
            job.archive.sha256, job.archive.size
        ));
    }
    Ok(())
}

/// Puts this process in a mount namespace of its own, private, so what it
/// mounts is seen by no one else and goes when it ends.
fn private_mounts() -> Result<(), String> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|error| format!("cannot make a private mount namespace: {error}"))?;
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|error| format!("cannot make the mounts private: {error}"))
}

/// A loop device over one partition of a disk, detached when dropped.
#[derive(Debug)]
pub struct Loop(pub String);

impl Loop {
    /// Attaches a loop device over `size` bytes of `disk` from `offset`.
    pub fn over(disk: &Path, offset: u64, size: u64) -> Result<Loop, String> {
        let output = Command::new("losetup")
            .args(["--find", "--show", "--offset"])
            .arg(offset.to_string())
            .arg("--sizelimit")
            .arg(size.to_string())
            .arg(disk)
            .output()
            .map_err(|error| format!("losetup: {error}"))?;
        if !output.status.success() {
            return Err(format!(
                "losetup over {} at {offset}: {}",
                disk.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(Loop(
            String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        ))
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.0]).status();
    }
}

fn run_tool(command: &mut Command) -> Result<String, String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("{command:?}: {error}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

fn make_file_system(device: &str, fs_type: &str) -> Result<(), String> {
    let mut command = Command::new(format!("mkfs.{fs_type}"));
    match fs_type {
        "ext2" | "ext3" | "ext4" => {
            command.args(["-q", "-F"]);
        }
        "xfs" | "btrfs" => {
            command.args(["-q", "-f"]);
        }
        _ => {}
    }
    run_tool(command.arg(device)).map(|_| ())
}

/// The file systems mounted under a root, unmounted (deepest first) when
/// dropped.
struct Mounted(Vec<PathBuf>);

impl Drop for Mounted {
    fn drop(&mut self) {
        for point in self.0.iter().rev() {
            let _ = nix::mount::umount2(point, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// Mounts each made file system (`/` first) under `root`, each through a
/// loop device over its part of `disk` that the kernel detaches when the
/// mount is released (`mount -o loop`, which asks for autoclear).
fn mount_all(
    root: &Path,
    disk: &Path,
    made: &[(&PlannedPartition, String)],
) -> Result<Mounted, String> {
    let mut ordered: Vec<&(&PlannedPartition, String)> = made.iter().collect();
    ordered.sort_by_key(|(partition, _)| {
        partition.mount_point.matches('/').count() + usize::from(partition.mount_point != "/")
    });
    let mut mounted = Mounted(Vec::new());
    for (partition, _) in ordered {
        let point = root.join(partition.mount_point.trim_start_matches('/'));
        fs::create_dir_all(&point).map_err(|error| format!("{}: {error}", point.display()))?;
        run_tool(
            Command::new("mount")
                .arg("-t")
                .arg(&partition.fs_type)
                .arg("-o")
                .arg(format!(
                    "loop,offset={},sizelimit={}",
                    partition.start_bytes, partition.size_bytes
                ))
                .arg(disk)
                .arg(&point),
        )
        .map_err(|error| {
            format!(
                "cannot mount {} at {}: {error}",
                partition.name,
                point.display()
            )
        })?;
        mounted.0.push(point);
    }
    Ok(mounted)
}

/// Unpacks the zstd tar at `archive` into `root` with GNU tar: extended
/// attributes, ACLs, numeric owners, modes as recorded.
fn unpack(archive: &Path, root: &Path) -> Result<(), String> {
    let file = File::open(archive).map_err(|error| format!("{}: {error}", archive.display()))?;
    let mut decoder = roleout_store::archive::decompressed(file)
        .map_err(|error| format!("{}: {error}", archive.display()))?;
    let mut tar = Command::new("tar")
        .args([
            "--extract",
            "--xattrs",
            "--xattrs-include=*",
            "--acls",
            "--numeric-owner",
            "--same-permissions",
            "--file=-",
            "--directory",
        ])
        .arg(root)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("tar: {error}"))?;
    let fed = match tar.stdin.take() {
        Some(mut stdin) => io::copy(&mut decoder, &mut stdin)
            .and_then(|_| stdin.flush())
            .map_err(|error| format!("feeding tar: {error}")),
        None => Err("tar has no input".to_owned()),
    };
    let output = tar
        .wait_with_output()
        .map_err(|error| format!("tar: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "tar: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    fed
}

/// The made system's `/etc/fstab`, pointed at the new file systems: each
/// line for one of the image's mount points names its new UUID; other
/// lines (swap, tmpfs, network) stay as they were.
fn fstab_for(root: &Path, made: &[(&PlannedPartition, String)]) -> String {
    let path = root.join("etc/fstab");
    let old = fs::read_to_string(&path).unwrap_or_default();
    let ours = made;
    let mut lines: Vec<String> = old
        .lines()
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let is_ours = !line.trim_start().starts_with('#')
                && fields.len() >= 2
                && ours
                    .iter()
                    .any(|(partition, _)| partition.mount_point == fields[1]);
            !is_ours
        })
        .map(str::to_owned)
        .collect();
    for (partition, uuid) in ours {
        let pass = if partition.mount_point == "/" { 1 } else { 2 };
        lines.push(format!(
            "UUID={uuid} {} {} defaults 0 {pass}",
            partition.mount_point, partition.fs_type
        ));
    }
    lines.join("\n") + "\n"
}
