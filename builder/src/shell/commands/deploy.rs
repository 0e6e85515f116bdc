//! `targets`, `deploy` and `job list|show`: the shell's face of
//! `crate::admin::deploy`.

use clap::{Args, Subcommand, ValueHint};

use crate::admin::deploy;

use super::{CommandError, Context, Flow, Run};

/// List the machines an image may go to now, and why each other may not.
///
/// Every machine is judged, grouped by the installation engine it is
/// reached through: available (compatible and free), busy (another job
/// holds its lease, until when), or excluded with every reason: its
/// hardware against the image's rule, its largest disk against what the
/// image's file systems need, a storage or network controller the image's
/// kernels have no driver for, no hardware known, not approved.
///
/// Example: targets web-2026.12 --engine site-a
#[derive(Debug, Args)]
pub struct Targets {
    /// The image.
    #[arg(value_name = "IMAGE", value_hint = ValueHint::Other)]
    pub image: String,
    /// Only the machines reached through this engine.
    #[arg(long, value_name = "ENGINE", value_hint = ValueHint::Other)]
    pub engine: Option<String>,
}

impl Run for Targets {
    fn run(&self, context: &mut Context<'_>) -> Result<Flow, CommandError> {
        let connection = context.session.connection()?;
        connection.block_on(deploy::targets(
            connection.directory(),
            &self.image,
            self.engine.as_deref(),
            &mut context.output,
        ))?;
        Ok(Flow::Continue)
    }
}

/// Deploy an image onto target machines.
///
/// Each target is checked as `targets` does; if any cannot take the image
/// now, nothing happens and each is named with why. Then the plan is shown
/// (each target's host name, addresses and partitions on its largest
/// disk), and unless --dry-run, every target's lease is taken for the new
/// job, all or nothing (a target another admin took first stops it, and
/// what was taken is given back), and the job is recorded under ou=jobs.
/// A target's host name is its machine name.
///
/// Example: deploy web-2026.12 --target web-3 --address web-3:eth0=198.18.1.13/24 --gateway 198.18.1.1 --dry-run
#[derive(Debug, Args)]
pub struct Deploy {
    /// The image.
    #[arg(value_name = "IMAGE", value_hint = ValueHint::Other)]
    pub image: String,
    /// A target machine; repeatable.
    #[arg(long = "target", value_name = "MACHINE", value_hint = ValueHint::Other, required = true)]
    pub targets: Vec<String>,
    /// An address for one target's interface, MACHINE:IFACE=ADDRESS/PREFIX; repeatable.
    #[arg(long = "address", value_name = "MACHINE:IFACE=ADDRESS")]
    pub addresses: Vec<String>,
    /// The default gateway, given to each target's first interface.
    #[arg(long, value_name = "ADDRESS")]
    pub gateway: Option<String>,
    /// A name server for each target's first interface; repeatable.
    #[arg(long, value_name = "ADDRESS")]
    pub dns: Vec<String>,
    /// A script (a file here) each target runs once at its first start, after the image's own;
    /// its SHA-256 is pinned in the job. Repeatable.
    #[arg(long = "script", value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub scripts: Vec<std::path::PathBuf>,
    /// A script each target fetches, URL=SHA256: refused unless its bytes have that SHA-256.
    /// Repeatable.
    #[arg(long = "script-url", value_name = "URL=SHA256")]
    pub script_urls: Vec<String>,
    /// How long the targets stay locked unless their engines renew the leases.
    #[arg(long, value_name = "MINUTES", default_value_t = 60)]
    pub lease_minutes: u64,
    /// Check and show the plan; lock and write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl Run for Deploy {
    fn run(&self, context: &mut Context<'_>) -> Result<Flow, CommandError> {
        let mut targets: Vec<(String, Vec<roleout_model::image::InterfaceAddress>)> = self
            .targets
            .iter()
            .map(|target| (target.clone(), Vec::new()))
            .collect();
        for text in &self.addresses {
            let (machine, address) =
                deploy::parse_address(text).map_err(|error| CommandError::Usage(error.0))?;
            let Some((_, interfaces)) = targets
                .iter_mut()
                .find(|(name, _)| name == machine.as_str())
            else {
                return Err(CommandError::Usage(format!(
                    "--address {text}: {machine} is not one of the --target machines"
                )));
            };
            interfaces.push(address);
        }
        for (_, interfaces) in &mut targets {
            if let Some(first) = interfaces.first_mut() {
                first.gateway = self.gateway.clone();
                first.dns = self.dns.clone();
            }
        }
        let started_by = context
            .session
            .bind_dn()
            .unwrap_or("the directory's local administrator")
            .to_owned();
        let mut scripts = Vec::new();
        for path in &self.scripts {
            scripts.push(deploy::script_from_file(path)?);
        }
        for given in &self.script_urls {
            scripts.push(
                deploy::script_from_url(given).map_err(|error| CommandError::Usage(error.0))?,
            );
        }
        let request = deploy::DeployRequest {
            image: self.image.clone(),
            targets,
            lease_minutes: self.lease_minutes,
            dry_run: self.dry_run,
            started_by,
            scripts,
        };
        let connection = context.session.connection()?;
        connection.block_on(deploy::deploy(
            connection.directory(),
            &request,
            &mut context.output,
        ))?;
        Ok(Flow::Continue)
    }
}

/// Follow jobs: where each of their targets stands.
///
/// `job list` lists every job with how many targets stand in each phase;
/// `job show ID` shows each target's phase (locked, transfer, partition,
/// copy, configure, first-boot, complete or failed), when it last changed
/// and what its last step said; `job watch ID` prints each change as the
/// targets report it, until every target is done (it fails when one
/// failed, or after --timeout seconds).
///
/// Example: job show image-20261205-081000-beef
#[derive(Debug, Args)]
pub struct JobCommand {
    /// What to do.
    #[command(subcommand)]
    pub action: JobAction,
}

/// The `job` actions.
#[derive(Debug, Subcommand)]
pub enum JobAction {
    /// List every job.
    List,
    /// Show where each target of a job stands.
    Show {
        /// The job.
        #[arg(value_name = "JOB", value_hint = ValueHint::Other)]
        id: String,
    },
    /// Follow a job: each target's phase as it changes, until every target is done.
    Watch {
        /// The job.
        #[arg(value_name = "JOB", value_hint = ValueHint::Other)]
        id: String,
        /// Stop (failing) after this many seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
        timeout: u64,
    },
}

impl Run for JobCommand {
    fn run(&self, context: &mut Context<'_>) -> Result<Flow, CommandError> {
        let connection = context.session.connection()?;
        let directory = connection.directory();
        let output = &mut context.output;
        match &self.action {
            JobAction::List => connection.block_on(deploy::list_jobs(directory, output))?,
            JobAction::Show { id } => {
                connection.block_on(deploy::show_job(directory, id, output))?
            }
            JobAction::Watch { id, timeout } => connection.block_on(deploy::watch_job(
                directory,
                id,
                std::time::Duration::from_secs(*timeout),
                output,
            ))?,
        }
        Ok(Flow::Continue)
    }
}
