//! The command line of `roleout`: clap's raw arguments, turned into engine
//! settings, and the commands themselves. The binary only calls [`main`].

use std::fs;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand};
use roleout_model::ids::{MachineId, ProductId, SuiteId};
use roleout_model::protocol::{EnrollRequest, EnrolmentStatus, MachineFacts};

use crate::client::{self, HttpSource};
use crate::engine::identity::{
    Enrolment, Identity, MACHINE_CERTIFICATE_FILE, MACHINE_KEY_FILE, SERVER_CERTIFICATE_FILE,
};
use crate::engine::values::read_response_file;
use crate::engine::{
    self, BOOT_ID_PATH, DirectorySource, EngineError, InstallOutcome, Settings, Source, exit_code,
};
use crate::progress::{
    Event, JsonReporter, LineReporter, QuietReporter, Reporter, TerminalReporter,
};
use crate::rotation;
use crate::state::atomic;
use roleout_model::keys::{self, KeyAlgorithm};
use roleout_model::protocol::signing::PinnedKey;

/// The response file `install`, `plan` and `uninstall` read when none is
/// given and it exists: root's alone (mode 0600 in a 0700 directory), so
/// the scheduled run finds the values, secrets included, that the first
/// install was given.
pub const DEFAULT_RESPONSE_FILE: &str = "/etc/roleout/response.toml";

const EXIT_CODES: &str = "\
Exit codes:
  0  every component is installed or skipped
  1  a component failed or was blocked
  2  usage or configuration error
  3  authentication or verification refused (nothing from the refused suite ran)
  4  server unreachable (reports are kept in the outbox for the next run)
  5  a reboot is required to continue (run roleout install again after it)
  6  another roleout holds the state lock";

/// Raw arguments.
#[derive(Debug, Parser)]
#[command(name = "roleout", version = crate::VERSION, about = "Installs the software of this machine's roles", after_help = EXIT_CODES)]
pub struct Cli {
    /// The state directory (journal, outbox, keys, enrolment).
    #[arg(
        long,
        global = true,
        env = "ROLEOUT_STATE_DIR",
        default_value = "/var/lib/roleout"
    )]
    pub state_dir: PathBuf,
    /// Show only errors.
    #[arg(long, global = true, conflicts_with = "json")]
    pub quiet: bool,
    /// One JSON object per line on standard output.
    #[arg(long, global = true)]
    pub json: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make this machine's key pair and certificate, offer it to roleoutd and pin the builder key.
    Enroll(EnrollArgs),
    /// Install a suite (every suite of this machine when none is named).
    Install(RunArgs),
    /// Show what install would do, in order, and why. No install step runs, but the
    /// detection commands of version checks and conditions (<command> checks) do.
    Plan(RunArgs),
    /// What the journal says is installed, per suite.
    Status,
    /// Run a product's uninstall command, record and report it.
    Uninstall(UninstallArgs),
    /// Replace this machine's key pair; the current key vouches for the new one, which stays approved.
    RotateKey(RotateKeyArgs),
    /// A new certificate for this machine's key, valid for a year; the current key vouches for it.
    RenewCertificate,
    /// Capture this machine's whole software system as an image, or make one again.
    #[command(subcommand)]
    Image(ImageCommand),
    /// The first start of a system an image deployment made: run its first-start scripts once
    /// and report the job complete (started by roleout-first-boot.service).
    FirstBoot,
    /// Run one install command under a supervisor that outlives `install` (started by `install`
    /// itself, never by hand).
    #[command(name = "supervise-step", hide = true)]
    SuperviseStep(SuperviseStepArgs),
}

/// `roleout image …`.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Capture the system at --root (hardware, OS configuration, file systems, every file with
    /// its attributes and contents) and upload it to roleoutd, or write it to one file (--output).
    Capture(ImageCaptureArgs),
    /// Make the image in FILE again in --root, an empty folder: every file with its owner,
    /// mode, extended attributes, links, holes and times.
    Apply(ImageApplyArgs),
    /// As the target of an image deployment: partition and format --disk, unpack the image
    /// onto it and make it this machine, as the signed job from roleoutd says (ERASES the disk;
    /// --dry-run shows the plan and writes nothing).
    Deploy(ImageDeployArgs),
}

/// Arguments of `image deploy`.
#[derive(Debug, Args)]
pub struct ImageDeployArgs {
    /// The disk to erase and make the image on (a block device, or a disk file).
    #[arg(long)]
    pub disk: PathBuf,
    /// Check the job and fit the image to the disk; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The installation engine to take the job from, when not the roleoutd this machine
    /// enrolled with (an engine of the same installation: its certificate and builder key
    /// are the ones pinned).
    #[arg(long, value_name = "URL")]
    pub engine: Option<String>,
}

/// Arguments of `image capture`.
#[derive(Debug, Args)]
pub struct ImageCaptureArgs {
    /// The root of the system to capture.
    #[arg(long, default_value = "/")]
    pub root: PathBuf,
    /// The image's name.
    #[arg(long)]
    pub name: String,
    /// Write the image to this file instead of uploading it to the roleoutd this machine
    /// enrolled with (which sends only the files roleoutd does not hold yet).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Where the hardware is read from (`sys` and `proc` below it).
    #[arg(long, default_value = "/")]
    pub sysroot: PathBuf,
    /// A path inside --root to leave out (kept as an empty folder); repeatable.
    #[arg(long)]
    pub exclude: Vec<String>,
    /// A file system the targets get, MOUNT-POINT:TYPE (/:ext4, /var:xfs), instead of the ones
    /// the mount table shows under --root (for a snapshot or copy mounted elsewhere);
    /// repeatable.
    #[arg(long = "file-system", value_name = "MOUNT:TYPE")]
    pub file_systems: Vec<String>,
}

/// Arguments of `image apply`.
#[derive(Debug, Args)]
pub struct ImageApplyArgs {
    /// The image file.
    pub file: PathBuf,
    /// The empty folder to make the system in.
    #[arg(long)]
    pub root: PathBuf,
    /// The content store the image's files are kept in on the way (a folder; files it holds
    /// already are checked, not copied again). By default STATE_DIR/images/store.
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Make the copy a machine of its own with this host name: its addresses (--address),
    /// a new machine id, new SSH host keys, and none of the source's Roleout identity.
    #[arg(long)]
    pub hostname: Option<String>,
    /// An interface's address, `IFACE=ADDRESS/PREFIX` (`eth0=198.18.0.11/24`); repeatable.
    #[arg(long, requires = "hostname")]
    pub address: Vec<String>,
    /// The default gateway, through the first --address.
    #[arg(long, requires = "address")]
    pub gateway: Option<String>,
    /// A name server; repeatable.
    #[arg(long, requires = "address")]
    pub dns: Vec<String>,
}

/// Arguments of the hidden `supervise-step`.
#[derive(Debug, Args)]
pub struct SuperviseStepArgs {
    /// The command's folder of records.
    pub dir: PathBuf,
    /// The token recorded in the folder.
    #[arg(long)]
    pub token: String,
    /// How long to wait for the command's output pipes once it exited.
    #[arg(long)]
    pub drain_ms: u64,
    /// Bytes of output kept from the start.
    #[arg(long)]
    pub head: usize,
    /// Bytes of output kept from the end.
    #[arg(long)]
    pub tail: usize,
    /// The command.
    #[arg(last = true, required = true)]
    pub argv: Vec<std::ffi::OsString>,
}

/// Arguments of `rotate-key`.
#[derive(Debug, Args)]
pub struct RotateKeyArgs {
    /// The new key's algorithm.
    #[arg(long, default_value = "ed25519", value_parser = ["ed25519", "ecdsa-p256"])]
    pub algorithm: String,
}

/// Arguments of `enroll`.
#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// roleoutd's base URL; repeat (or separate with commas) for other
    /// roleoutd of the same installation, tried in order when one cannot
    /// be reached.
    #[arg(long, env = "ROLEOUT_SERVER", value_delimiter = ',', required = true)]
    pub server: Vec<String>,
    /// The server's TLS certificate (PEM); it is the only one trusted from now on.
    #[arg(long)]
    pub server_cert: PathBuf,
    /// A pre-approval token from an admin.
    #[arg(long, env = "ROLEOUT_ENROLMENT_TOKEN")]
    pub token: Option<String>,
    /// The machine key algorithm.
    #[arg(long, default_value = "ed25519", value_parser = ["ed25519", "ecdsa-p256"])]
    pub algorithm: String,
    /// The machine's name (its directory entry); the host name by default.
    #[arg(long)]
    pub name: Option<String>,
    /// How long the machine certificate made now stays valid, in days
    /// (`install` renews it when 30 days are left).
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u64).range(1..=3650))]
    pub certificate_days: u64,
    /// Where the hardware sent with the enrolment is read from (`sys` and `proc` below it).
    #[arg(long, default_value = "/")]
    pub sysroot: PathBuf,
}

/// Arguments of `install` and `plan`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The suite.
    pub suite: Option<String>,
    /// Options shared with the other commands.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Arguments of `uninstall`.
#[derive(Debug, Args)]
pub struct UninstallArgs {
    /// The product.
    pub product: String,
    /// Remove it although installed products still require it.
    #[arg(long)]
    pub force: bool,
    /// Options shared with the other commands.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// What install, plan and uninstall share.
/// `path` made absolute against the current directory (unchanged when it
/// already is, or when the current directory cannot be read).
fn absolute(path: &mut PathBuf) {
    if path.is_relative() {
        if let Ok(current) = std::env::current_dir() {
            *path = current.join(&*path);
        }
    }
}

impl Cli {
    fn make_paths_absolute(&mut self) {
        absolute(&mut self.state_dir);
        let common = match &mut self.command {
            Command::Install(run) | Command::Plan(run) => Some(&mut run.common),
            Command::Uninstall(uninstall) => Some(&mut uninstall.common),
            Command::Enroll(enroll) => {
                absolute(&mut enroll.server_cert);
                absolute(&mut enroll.sysroot);
                None
            }
            Command::Image(ImageCommand::Capture(capture)) => {
                absolute(&mut capture.root);
                if let Some(output) = &mut capture.output {
                    absolute(output);
                }
                absolute(&mut capture.sysroot);
                None
            }
            Command::Image(ImageCommand::Deploy(deploy)) => {
                absolute(&mut deploy.disk);
                None
            }
            Command::Image(ImageCommand::Apply(apply)) => {
                absolute(&mut apply.file);
                absolute(&mut apply.root);
                if let Some(store) = &mut apply.store {
                    absolute(store);
                }
                None
            }
            Command::Status
            | Command::RotateKey(_)
            | Command::RenewCertificate
            | Command::FirstBoot
            | Command::SuperviseStep(_) => None,
        };
        if let Some(common) = common {
            absolute(&mut common.root);
            for path in [
                &mut common.cache_dir,
                &mut common.from,
                &mut common.response_file,
            ]
            .into_iter()
            .flatten()
            {
                absolute(path);
            }
            absolute(&mut common.default_response_file);
        }
    }
}

/// Arguments shared by `install`, `plan` and `uninstall`.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Variable values (TOML: suite variables at the top, `[product]` tables), mode 0600.
    /// Without it, the default response file is read when it exists.
    #[arg(long, env = "ROLEOUT_RESPONSE_FILE")]
    pub response_file: Option<PathBuf>,
    /// The response file read when none is given, if it exists (scheduled runs use it).
    #[arg(
        long,
        env = "ROLEOUT_DEFAULT_RESPONSE_FILE",
        default_value = DEFAULT_RESPONSE_FILE,
        hide = true
    )]
    pub default_response_file: PathBuf,
    /// The install root: the `root` template variable, and where package databases are read.
    #[arg(long, env = "ROLEOUT_ROOT", default_value = "/")]
    pub root: PathBuf,
    /// The payload cache (STATE_DIR/cache by default).
    #[arg(long, env = "ROLEOUT_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// The payload cache is trimmed to this many MiB after each install (least recently used
    /// payloads go first).
    #[arg(long, env = "ROLEOUT_CACHE_MAX_MB", default_value_t = 2048)]
    pub cache_max_mb: u64,
    /// Read signed suites and payloads from an offline mirror directory instead of roleoutd
    /// (suites.json, suites/SUITE.json, payloads/SHA256; reports go to reports/).
    #[arg(long, env = "ROLEOUT_MIRROR")]
    pub from: Option<PathBuf>,
    /// Where the boot id is read.
    #[arg(long, env = "ROLEOUT_BOOT_ID_FILE", default_value = BOOT_ID_PATH, hide = true)]
    pub boot_id_file: PathBuf,
}

/// Runs `roleout` and returns its exit code.
pub fn main() -> i32 {
    // The supervisor of one command does nothing else: no reporter, no
    // state lock, no logging of its own.
    let arguments: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if arguments
        .get(1)
        .is_some_and(|first| first == crate::run::supervise::SUBCOMMAND)
    {
        return supervise_step(arguments);
    }
    let mut cli = match Cli::try_parse_from(arguments) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                exit_code::USAGE
            } else {
                exit_code::SUCCESS
            };
        }
    };
    // Paths end up in commands that run in other working directories (the
    // payload directory, a descriptor's working-dir): make them absolute
    // once, here, so a relative --root or --state-dir means what it says.
    cli.make_paths_absolute();
    let reporter: Box<dyn Reporter> = if cli.quiet {
        Box::new(QuietReporter)
    } else if cli.json {
        Box::new(JsonReporter::new(Box::new(std::io::stdout())))
    } else if std::io::stderr().is_terminal() {
        Box::new(TerminalReporter::new())
    } else {
        Box::new(LineReporter::new(Box::new(std::io::stdout())))
    };
    let result = match &cli.command {
        Command::Enroll(args) => enroll(&cli, args),
        Command::Install(args) => install(&cli, args, reporter.as_ref()),
        Command::Plan(args) => plan(&cli, args),
        Command::Status => status(&cli),
        Command::Uninstall(args) => uninstall(&cli, args, reporter.as_ref()),
        Command::RotateKey(args) => rotate_key(&cli, args),
        Command::RenewCertificate => renew_certificate(&cli),
        Command::Image(ImageCommand::Capture(args)) => image_capture(&cli, args),
        Command::Image(ImageCommand::Apply(args)) => image_apply(&cli, args),
        Command::Image(ImageCommand::Deploy(args)) => image_deploy(&cli, args),
        Command::FirstBoot => first_boot(&cli),
        Command::SuperviseStep(_) => Ok(exit_code::USAGE),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "roleout: {error}");
            error.exit_code()
        }
    }
}

fn image_capture(cli: &Cli, args: &ImageCaptureArgs) -> Result<i32, EngineError> {
    let name = roleout_model::image::ImageName::new(args.name.clone()).map_err(config)?;
    let mut exclude = args
        .exclude
        .iter()
        .map(|path| {
            roleout_model::tree::TreePath::from_bytes(path.trim_matches('/').as_bytes())
                .map_err(|reason| config(format!("--exclude {path}: {reason}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    // This machine's Roleout identity (its private key) is its own: it never
    // goes into an image.
    let root = args
        .root
        .canonicalize()
        .unwrap_or_else(|_| args.root.clone());
    let state = cli
        .state_dir
        .canonicalize()
        .unwrap_or_else(|_| cli.state_dir.clone());
    for own in [state.as_path(), Path::new("/var/lib/roleout")] {
        if let Ok(inside) = own.strip_prefix(&root)
            && let Ok(path) =
                roleout_model::tree::TreePath::from_bytes(inside.as_os_str().as_encoded_bytes())
        {
            exclude.push(path);
        }
    }
    let layout = args
        .file_systems
        .iter()
        .map(|given| {
            given
                .split_once(':')
                .map(|(point, kind)| (point.to_owned(), kind.to_owned()))
                .ok_or_else(|| {
                    config(format!(
                        "--file-system {given}: write it as MOUNT-POINT:TYPE (/var:ext4)"
                    ))
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let options = crate::image::CaptureOptions {
        root: args.root.clone(),
        name,
        sysroot: args.sysroot.clone(),
        exclude,
        layout,
    };
    let Some(output) = &args.output else {
        let mut server = http_source(cli)?;
        let captured =
            crate::image::capture(&options).map_err(|error| config(error.to_string()))?;
        let uploaded = crate::image::upload(&captured, &mut server)?;
        let _ = writeln!(
            std::io::stdout(),
            "{}\nuploaded: {} of {} contents sent ({} bytes), the rest held already; image {}",
            captured_summary(&captured.description),
            uploaded.sent,
            uploaded.offered,
            uploaded.sent_bytes,
            match uploaded.status {
                roleout_model::protocol::ImageStatus::Created => "created",
                roleout_model::protocol::ImageStatus::Replaced => "replaced",
                roleout_model::protocol::ImageStatus::Unchanged => "unchanged",
            }
        );
        return Ok(exit_code::SUCCESS);
    };
    let (captured, packed) = crate::image::capture_to_file(&options, output)
        .map_err(|error| config(error.to_string()))?;
    let _ = writeln!(
        std::io::stdout(),
        "{}; {} contents\nwritten to {} ({} bytes)",
        captured_summary(&captured.description),
        packed.blobs,
        output.display(),
        packed.file_bytes
    );
    Ok(exit_code::SUCCESS)
}

/// What a captured image holds, in one line.
fn captured_summary(description: &roleout_model::image::ImageDescription) -> String {
    format!(
        "image {}: {} entries, {} bytes of data, {} file system(s), {} package(s); manifest {}",
        description.name,
        description.entries,
        description.data_bytes,
        description.partitions.len(),
        description.os.packages.len(),
        description.manifest,
    )
}

fn image_deploy(cli: &Cli, args: &ImageDeployArgs) -> Result<i32, EngineError> {
    let identity = Identity::load(&cli.state_dir).map_err(|error| config(error.to_string()))?;
    let mut keys = vec![identity.builder_key];
    keys.extend(identity.endorsed_keys.iter().cloned());
    let mut server = http_source_at(cli, args.engine.as_deref())?;
    let options = crate::image::deploy::DeployOptions {
        disk: args.disk.clone(),
        dry_run: args.dry_run,
        work: cli.state_dir.join("images").join("jobs"),
        state_dir: cli.state_dir.clone(),
        facts: this_machine_facts(),
    };
    let mut out = std::io::stdout();
    let deployed = crate::image::deploy::run(
        &mut server,
        &keys,
        &identity.enrolment.machine,
        &options,
        &mut |line| {
            let _ = writeln!(out, "{line}");
        },
    )
    .map_err(|error| match error {
        crate::image::deploy::DeployError::Source(source) => EngineError::from(source),
        other => config(other.to_string()),
    })?;
    if let Some(phase) = deployed.reached {
        let _ = writeln!(
            std::io::stdout(),
            "job {}: {} reached {phase}",
            deployed.job.job,
            args.disk.display()
        );
    }
    Ok(exit_code::SUCCESS)
}

fn first_boot(cli: &Cli) -> Result<i32, EngineError> {
    let note = cli
        .state_dir
        .join(crate::image::first_boot::FIRST_BOOT_FILE);
    let mut out = std::io::stdout();
    if !note.exists() {
        let _ = writeln!(
            out,
            "nothing to do: this system's first start is done, or it was not made by a deployment"
        );
        return Ok(exit_code::SUCCESS);
    }
    let mut server = http_source(cli)?;
    crate::image::first_boot::run(&cli.state_dir, Path::new("/"), &mut server, &mut |line| {
        let _ = writeln!(out, "{line}");
    })?;
    Ok(exit_code::SUCCESS)
}

fn image_apply(cli: &Cli, args: &ImageApplyArgs) -> Result<i32, EngineError> {
    let store = args
        .store
        .clone()
        .unwrap_or_else(|| cli.state_dir.join("images").join("store"));
    let target = match &args.hostname {
        None => None,
        Some(hostname) => {
            let mut interfaces = Vec::new();
            for (index, given) in args.address.iter().enumerate() {
                let (name, address) = given.split_once('=').ok_or_else(|| {
                    config(format!(
                        "--address {given}: write it as IFACE=ADDRESS/PREFIX (eth0=198.18.0.11/24)"
                    ))
                })?;
                interfaces.push(roleout_model::image::InterfaceAddress {
                    name: name.to_owned(),
                    address: address.to_owned(),
                    gateway: args.gateway.clone().filter(|_| index == 0),
                    dns: if index == 0 {
                        args.dns.clone()
                    } else {
                        Vec::new()
                    },
                });
            }
            Some(roleout_model::image::TargetConfiguration {
                hostname: hostname.clone(),
                interfaces,
            })
        }
    };
    let applied = crate::image::apply_file(&args.file, &args.root, &store, target.as_ref())
        .map_err(|error| config(error.to_string()))?;
    let description = &applied.unpacked.description;
    let mut out = std::io::stdout();
    let _ = writeln!(
        out,
        "image {} made in {}: {} entries, {} bytes written; {} content(s) stored, {} already held",
        description.name,
        args.root.display(),
        applied.made.entries,
        applied.made.bytes,
        applied.unpacked.stored,
        applied.unpacked.present,
    );
    if applied.made.sockets_skipped > 0 {
        let _ = writeln!(
            out,
            "{} socket(s) not made: they belong to the processes that listen on them",
            applied.made.sockets_skipped
        );
    }
    if let Some(configured) = &applied.configured {
        let _ = writeln!(
            out,
            "made a machine of its own: wrote {}; removed {} of the source's file(s){}",
            configured.written.join(", "),
            configured.removed.len(),
            if configured.ssh_keys_made {
                ""
            } else {
                "; no SSH host keys were made (no etc/ssh, or no ssh-keygen here)"
            }
        );
    }
    Ok(exit_code::SUCCESS)
}

fn supervise_step(arguments: Vec<std::ffi::OsString>) -> i32 {
    let cli = match Cli::try_parse_from(arguments) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return exit_code::USAGE;
        }
    };
    let Command::SuperviseStep(args) = cli.command else {
        return exit_code::USAGE;
    };
    crate::run::supervise::supervise(&crate::run::supervise::SuperviseArgs {
        dir: args.dir,
        token: args.token,
        drain: std::time::Duration::from_millis(args.drain_ms),
        capture: crate::run::CaptureLimit {
            head: args.head,
            tail: args.tail,
        },
        argv: args.argv,
    })
}

fn config(message: impl Into<String>) -> EngineError {
    EngineError::Config(message.into())
}

fn settings(cli: &Cli, common: &CommonArgs) -> Result<Settings, EngineError> {
    let identity = Identity::load(&cli.state_dir).map_err(|error| config(error.to_string()))?;
    let mut settings = Settings::new(
        &cli.state_dir,
        identity.enrolment.machine.clone(),
        identity.builder_key,
    );
    settings.endorsed_keys = identity.endorsed_keys;
    // Install commands run under this same program as their supervisor.
    settings.supervisor = std::env::current_exe().ok();
    if let Some(cache_dir) = &common.cache_dir {
        settings.cache_dir = cache_dir.clone();
    }
    settings.root = common.root.clone();
    settings.cache_max_bytes = common.cache_max_mb.saturating_mul(1 << 20);
    settings.languages = roleout_model::text::languages_from(|name| std::env::var(name).ok());
    settings.boot_id_path = common.boot_id_file.clone();
    // A response file named on the command line must be there; the
    // default one is read only when it exists (a machine whose products
    // need no values has none).
    let response_file = common.response_file.as_ref().or_else(|| {
        common
            .default_response_file
            .exists()
            .then_some(&common.default_response_file)
    });
    if let Some(path) = response_file {
        settings.given = read_response_file(path).map_err(|error| config(error.to_string()))?;
    }
    Ok(settings)
}

fn source(cli: &Cli, common: &CommonArgs) -> Result<Box<dyn Source>, EngineError> {
    if let Some(directory) = &common.from {
        return Ok(Box::new(DirectorySource::new(directory)));
    }
    Ok(Box::new(http_source(cli)?))
}

/// roleoutd, as this machine enrolled with it.
fn http_source(cli: &Cli) -> Result<HttpSource, EngineError> {
    http_source_at(cli, None)
}

/// [`http_source`], at `server` instead of the enrolled URL when given.
fn http_source_at(cli: &Cli, server: Option<&str>) -> Result<HttpSource, EngineError> {
    let identity = Identity::load(&cli.state_dir).map_err(|error| config(error.to_string()))?;
    let pem_path = cli.state_dir.join(SERVER_CERTIFICATE_FILE);
    let pem = fs::read(&pem_path)
        .map_err(|error| config(format!("cannot read {}: {error}", pem_path.display())))?;
    let agent = client::pinned_agent(&pem)?;
    let key = roleout_store::keys::read_machine_key(&cli.state_dir.join(MACHINE_KEY_FILE))
        .map_err(|error| config(error.to_string()))?;
    let source = HttpSource::new(
        agent,
        server.unwrap_or(&identity.enrolment.server),
        identity.enrolment.machine,
        key,
    );
    // An explicit server is asked alone.
    Ok(match server {
        Some(_) => source,
        None => source.with_fallbacks(&identity.enrolment.fallbacks),
    })
}

fn suite_id(text: &str) -> Result<SuiteId, EngineError> {
    SuiteId::new(text).map_err(|error| config(format!("suite {text:?}: {error}")))
}

fn install(cli: &Cli, args: &RunArgs, reporter: &dyn Reporter) -> Result<i32, EngineError> {
    if args.common.from.is_none() {
        // A key or certificate rotation roleoutd announced is followed
        // before anything is verified with them.
        match rotation::follow_server_rotation(&cli.state_dir) {
            Ok(followed) if followed.keys + followed.certificates > 0 => {
                reporter.event(&Event::Note {
                    message: format!(
                        "roleoutd's announced rotation followed: {} builder key(s), {} TLS certificate(s) trusted from now on",
                        followed.keys, followed.certificates
                    ),
                });
            }
            Ok(_) => {}
            Err(error) => reporter.event(&Event::Note {
                message: format!("roleoutd's announcement of keys could not be read: {error}"),
            }),
        }
    }
    let settings = settings(cli, &args.common)?;
    if args.common.from.is_none() {
        // A machine whose certificate ran out can no longer authenticate:
        // it is renewed while the current one still vouches for it. A
        // failed renewal is said and the run goes on (it is tried again
        // on every run until the certificate ends).
        match rotation::renew_if_due(&cli.state_dir, SystemTime::now(), this_machine_facts) {
            Ok(Some(renewed)) => reporter.event(&Event::Note {
                message: format!(
                    "machine certificate renewed ({}), valid until {}",
                    &renewed.fingerprint.as_str()[..16],
                    describe_time(renewed.not_after)
                ),
            }),
            Ok(None) => {}
            Err(error) => reporter.event(&Event::Note {
                message: format!(
                    "the machine certificate is due for renewal and could not be renewed: {error}"
                ),
            }),
        }
    }
    let mut source = source(cli, &args.common)?;
    let suite = args.suite.as_deref().map(suite_id).transpose()?;
    let outcome = engine::install(&settings, source.as_mut(), suite.as_ref(), reporter)?;
    Ok(finish(&outcome))
}

fn finish(outcome: &InstallOutcome) -> i32 {
    outcome.exit_code()
}

fn plan(cli: &Cli, args: &RunArgs) -> Result<i32, EngineError> {
    let settings = settings(cli, &args.common)?;
    let mut source = source(cli, &args.common)?;
    let Some(suite) = args.suite.as_deref() else {
        return Err(config("plan needs a suite: roleout plan SUITE"));
    };
    let lines = engine::plan(&settings, source.as_mut(), &suite_id(suite)?)?;
    let mut out = std::io::stdout().lock();
    if !cli.json && !cli.quiet {
        let _ = writeln!(
            out,
            "(no install step runs; detection commands of version checks and conditions did)"
        );
    }
    for (index, line) in lines.iter().enumerate() {
        if cli.json {
            let _ = writeln!(out, "{}", serde_json::to_string(line).unwrap_or_default());
        } else {
            let after = if line.after.is_empty() {
                String::new()
            } else {
                let names: Vec<&str> = line.after.iter().map(|id| id.as_str()).collect();
                format!(" (after {})", names.join(", "))
            };
            let name = line
                .name
                .as_ref()
                .map(|name| format!(" ({name})"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "{:>3}. {} {}{name}{}: {}: {}",
                index + 1,
                line.product,
                line.version,
                after,
                if line.would_run {
                    "would install"
                } else {
                    "would skip"
                },
                line.reason
            );
        }
    }
    Ok(exit_code::SUCCESS)
}

fn status(cli: &Cli) -> Result<i32, EngineError> {
    let records = engine::status(&cli.state_dir)?;
    let mut out = std::io::stdout().lock();
    if cli.json {
        for record in &records {
            let _ = writeln!(out, "{}", serde_json::to_string(record).unwrap_or_default());
        }
        return Ok(exit_code::SUCCESS);
    }
    if records.is_empty() {
        let _ = writeln!(out, "no suite has been installed on this machine");
    }
    for record in &records {
        let _ = writeln!(out, "suite {}", record.suite);
        if let Some(run) = &record.run {
            let state = match &run.end {
                None => "in progress".to_owned(),
                Some(end) => format!("{end:?}").to_lowercase(),
            };
            let _ = writeln!(out, "  last run {} (build {}): {state}", run.id, run.build);
            for component in &run.components {
                let steps: Vec<String> = component
                    .steps
                    .iter()
                    .map(|step| format!("{} {}", step.phase, step.state.name()))
                    .collect();
                let _ = writeln!(
                    out,
                    "  {} {}: {}",
                    component.product,
                    component.version,
                    steps.join(", ")
                );
            }
        }
        for (product, installed) in &record.installed {
            let _ = writeln!(
                out,
                "  installed: {product} {} at {} (unix seconds) by run {}",
                installed.version, installed.installed_at, installed.run
            );
        }
    }
    Ok(exit_code::SUCCESS)
}

fn uninstall(cli: &Cli, args: &UninstallArgs, reporter: &dyn Reporter) -> Result<i32, EngineError> {
    let settings = settings(cli, &args.common)?;
    let mut source = source(cli, &args.common)?;
    let product = ProductId::new(&args.product)
        .map_err(|error| config(format!("product {:?}: {error}", args.product)))?;
    let outcome = engine::uninstall(&settings, source.as_mut(), &product, args.force, reporter)?;
    Ok(finish(&outcome))
}

fn enroll(cli: &Cli, args: &EnrollArgs) -> Result<i32, EngineError> {
    let algorithm: KeyAlgorithm = args
        .algorithm
        .parse()
        .map_err(|error: keys::UnknownAlgorithm| config(error.to_string()))?;
    let hostname = read_trimmed(Path::new("/proc/sys/kernel/hostname"));
    let name = args
        .name
        .clone()
        .or_else(|| hostname.clone())
        .ok_or_else(|| config("no machine name: pass --name"))?;
    let machine =
        MachineId::new(&name).map_err(|error| config(format!("machine name {name:?}: {error}")))?;
    let pem = fs::read(&args.server_cert).map_err(|error| {
        config(format!(
            "cannot read {}: {error}",
            args.server_cert.display()
        ))
    })?;
    let agent = client::pinned_agent(&pem)?;
    atomic::ensure_directory(&cli.state_dir, 0o700).map_err(|error| config(error.to_string()))?;
    // Keep an existing key: enrolling again must not orphan the
    // certificate an admin already approved.
    let key_path = cli.state_dir.join(MACHINE_KEY_FILE);
    let certificate_path = cli.state_dir.join(MACHINE_CERTIFICATE_FILE);
    let identity = keys::generate_identity(
        &machine,
        algorithm,
        SystemTime::now(),
        Duration::from_secs(args.certificate_days * 24 * 60 * 60),
    )
    .map_err(|error| config(error.to_string()))?;
    let certificate_der = if key_path.exists() && certificate_path.exists() {
        let text = fs::read(&certificate_path)
            .map_err(|error| config(format!("{}: {error}", certificate_path.display())))?;
        let parsed = ureq::tls::Certificate::from_pem(&text)
            .map_err(|error| config(format!("{}: {error}", certificate_path.display())))?;
        parsed.der().to_vec()
    } else {
        roleout_store::keys::write_private_key(&key_path, identity.private_key_pkcs8())
            .map_err(|error| config(error.to_string()))?;
        atomic::write_atomic(
            &certificate_path,
            identity.certificate_pem().as_bytes(),
            0o644,
        )
        .map_err(|error| config(error.to_string()))?;
        identity.certificate_der().to_vec()
    };
    let fingerprint = roleout_model::ids::Sha256::of(&certificate_der);
    let request = EnrollRequest {
        machine: machine.clone(),
        certificate: certificate_der.into(),
        enrolment_token: args.token.clone(),
        facts: machine_facts(hostname, &args.sysroot),
        proof: None,
    };
    // The first roleoutd that can be reached takes the enrolment.
    let response = client::first_reachable(&args.server, |server| {
        client::enroll(&agent, server, &request)
    })?;
    let builder_bytes: [u8; 32] = response
        .builder_key
        .public_key
        .as_bytes()
        .try_into()
        .map_err(|_| config("the server's builder key is not a 32-byte Ed25519 key"))?;
    let pinned = PinnedKey::from_bytes(builder_bytes);
    if pinned.key_id() != response.builder_key.key_id {
        return Err(EngineError::Refused {
            suite: "enrolment".to_owned(),
            reason: "the builder key id does not match the builder key".to_owned(),
        });
    }
    atomic::write_atomic(&cli.state_dir.join(SERVER_CERTIFICATE_FILE), &pem, 0o644)
        .map_err(|error| config(error.to_string()))?;
    Identity::save(
        &cli.state_dir,
        &Enrolment {
            server: args.server[0].clone(),
            fallbacks: args.server[1..].to_vec(),
            machine: machine.clone(),
        },
        &pinned,
    )
    .map_err(|error| config(error.to_string()))?;
    let status = match response.status {
        EnrolmentStatus::Approved => "approved",
        EnrolmentStatus::Pending => "pending (an admin must approve this machine's key)",
    };
    let mut out = std::io::stdout().lock();
    if cli.json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::json!({"machine": machine, "status": response.status, "key": fingerprint, "builder-key-id": pinned.key_id(), "message": response.message})
        );
    } else if !cli.quiet {
        let _ = writeln!(out, "machine {machine}: enrolment {status}");
        // What the admin compares before approving (`show /machines/NAME`,
        // `approve NAME --fingerprint`).
        let _ = writeln!(out, "machine key: SHA-256 {fingerprint}");
        let _ = writeln!(out, "builder key pinned: {}", pinned.key_id());
        let _ = writeln!(out, "{}", response.message);
    }
    Ok(exit_code::SUCCESS)
}

fn this_machine_facts() -> MachineFacts {
    machine_facts(
        read_trimmed(Path::new("/proc/sys/kernel/hostname")),
        Path::new("/"),
    )
}

/// `time` as RFC 3339 UTC, or seconds since the epoch if it cannot be.
fn describe_time(time: SystemTime) -> String {
    roleout_model::protocol::Timestamp::from_system_time(time)
        .map(|stamp| stamp.to_string())
        .unwrap_or_else(|| format!("{} (unix seconds)", keys::unix_seconds(time)))
}

fn print_presented(cli: &Cli, what: &str, presented: &rotation::Presented) {
    let mut out = std::io::stdout().lock();
    if cli.json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::json!({"done": what, "fingerprint": presented.fingerprint, "valid-until": describe_time(presented.not_after)})
        );
    } else if !cli.quiet {
        let _ = writeln!(
            out,
            "{what}: roleoutd holds certificate {} (valid until {}); the machine stays approved",
            presented.fingerprint,
            describe_time(presented.not_after)
        );
    }
}

fn rotate_key(cli: &Cli, args: &RotateKeyArgs) -> Result<i32, EngineError> {
    let algorithm: KeyAlgorithm = args
        .algorithm
        .parse()
        .map_err(|error: keys::UnknownAlgorithm| config(error.to_string()))?;
    let presented = rotation::rotate_key(&cli.state_dir, algorithm, &this_machine_facts())?;
    print_presented(cli, "key rotated", &presented);
    Ok(exit_code::SUCCESS)
}

fn renew_certificate(cli: &Cli) -> Result<i32, EngineError> {
    let presented = rotation::renew_certificate(&cli.state_dir, &this_machine_facts())?;
    print_presented(cli, "certificate renewed", &presented);
    Ok(exit_code::SUCCESS)
}

fn read_trimmed(path: &Path) -> Option<String> {
    fs::read_to_string(path)
        .ok()
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty())
}

fn machine_facts(hostname: Option<String>, sysroot: &Path) -> MachineFacts {
    let os = roleout_model::condition::OsFacts::from_os_release(
        std::env::consts::OS,
        &fs::read_to_string("/etc/os-release").unwrap_or_default(),
    );
    MachineFacts {
        os: os.family,
        arch: std::env::consts::ARCH.to_owned(),
        os_version: os.version,
        distribution: os.distribution,
        hostname,
        ip: None,
        extra: Default::default(),
        // A machine whose hardware cannot be read still enrols; its entry
        // then has no inventory, and images cannot target it.
        hardware: crate::inventory::read(sysroot).ok(),
    }
}
