//! `approve`, `disable` and `enroll-token`: the shell's face of
//! `crate::admin::machines`, and `build`: of `crate::admin::build`.

use clap::{Args, ValueHint};

use roleout_model::ids::{MachineId, RoleName, SuiteId};

use crate::admin::{build, machines};

use super::{CommandError, Context, Flow, Run};

/// What an admin does to one machine.
#[derive(Clone, Copy)]
enum MachineAction<'a> {
    /// With the fingerprint the key must have, if given.
    Approve(Option<&'a str>),
    Disable,
    EnrollToken,
}

/// Runs `action` on the machine named `machine`: the three machine
/// commands differ only in which admin function they call.
fn on_machine(
    context: &mut Context<'_>,
    machine: &str,
    action: MachineAction<'_>,
) -> Result<Flow, CommandError> {
    let name = MachineId::new(machine).map_err(|error| CommandError::Usage(error.to_string()))?;
    let connection = context.session.connection()?;
    let directory = connection.directory();
    let output = &mut context.output;
    connection.block_on(async {
        match action {
            MachineAction::Approve(fingerprint) => {
                machines::approve(directory, &name, fingerprint, output).await
            }
            MachineAction::Disable => machines::disable(directory, &name, output).await,
            MachineAction::EnrollToken => machines::enroll_token(directory, &name, output)
                .await
                .map(|_| ()),
        }
    })?;
    Ok(Flow::Continue)
}

/// Approve a machine's key so that it may authenticate.
///
/// Approving also enables the machine, and prints the SHA-256 of the key
/// approved (`show /machines/NAME` shows it before). With --fingerprint,
/// the key is approved only if it has that SHA-256: compare it with the
/// one `roleout enroll` printed on the machine. Approving a machine that
/// has not enrolled yet approves the first key enrolled under its name;
/// `enroll-token` approves only the machine given the token.
///
/// Example: approve pc-042 --fingerprint 3fa9c1...
#[derive(Debug, Args)]
pub struct Approve {
    /// The machine.
    #[arg(value_name = "MACHINE", value_hint = ValueHint::Other)]
    pub machine: String,
    /// The SHA-256 the machine's key must have (64 hex digits).
    #[arg(long, value_name = "SHA256", value_hint = ValueHint::Other)]
    pub fingerprint: Option<String>,
}

impl Run for Approve {
    fn run(&self, context: &mut Context<'_>) -> Result<Flow, CommandError> {
        on_machine(
            context,
            &self.machine,
            MachineAction::Approve(self.fingerprint.as_deref()),
        )
    }
}

/// Disable a machine: it can no longer authenticate, from its next request.
///
/// Example: disable pc-042
#[derive(Debug, Args)]
pub struct Disable {
    /// The machine.
    #[arg(value_name = "MACHINE", value_hint = ValueHint::Other)]
    pub machine: String,
}

impl Run for Disable {
    fn run(&self, context: &mut Context<'_>) -> Result<Flow, CommandError> {
        on_machine(context, &self.machine, MachineAction::Disable)
    }
}

/// Issue a one-time enrolment token for a machine.
///
/// Prints the token once; `roleout enroll --token TOKEN` on the machine
/// then approves its key without another admin step. Issuing the token
/// enables the machine (creating its entry if there is none).
///
/// Example: enroll-token pc-042
#[derive(Debug, Args)]
pub struct EnrollToken {
    /// The machine.
    #[arg(value_name = "MACHINE", value_hint = ValueHint::Other)]
    pub machine: String,
}

impl Run for EnrollToken {
    fn run(&self, context: &mut Context<'_>) -> Result<Flow, CommandError> {
        on_machine(context, &self.machine, MachineAction::EnrollToken)
    }
}

/// Build suites for every role (or one) and store the builds.
///
/// For each role (with its ancestors) and for machines with no role,
/// assembles the suite, checks conflicts and requirements, and stores the
/// canonical build with its digest. Prints one line per role set, and
/// every ambiguity and conflict; fails if any role set cannot be built.
///
/// Example: build domino --role developer
#[derive(Debug, Args)]
pub struct Build {
    /// The suite (every suite when left out).
    #[arg(value_name = "SUITE", value_hint = ValueHint::Other)]
    pub suite: Option<String>,
    /// Only this role (with its ancestors).
    #[arg(long, value_name = "ROLE", value_hint = ValueHint::Other)]
    pub role: Option<String>,
}

impl Run for Build {
    fn run(&self, context: &mut Context<'_>) -> Result<Flow, CommandError> {
        let suite = self
            .suite
            .as_deref()
            .map(SuiteId::new)
            .transpose()
            .map_err(|error| CommandError::Usage(error.to_string()))?;
        let role = self
            .role
            .as_deref()
            .map(RoleName::new)
            .transpose()
            .map_err(|error| CommandError::Usage(error.to_string()))?;
        let connection = context.session.connection()?;
        connection.block_on(build::build(
            connection.directory(),
            suite,
            role,
            &mut context.output,
        ))?;
        Ok(Flow::Continue)
    }
}
