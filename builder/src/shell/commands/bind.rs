//! `bind [DN]`: sets the credentials of the session. Typing the password at
//! a hidden prompt keeps it out of the shell's history and of `ps`, which a
//! password option on the command line would not.

use clap::{Args, ValueHint};

use super::{CommandError, Context, Flow, Run};
use crate::shell::session::Secret;

/// Set the DN and password the session binds to the directory with.
///
/// Asks the password without echoing it, and asks the DN too when none
/// is given here or with --bind-dn. The password stays in memory only.
///
/// Example: bind cn=admin,dc=example,dc=org
#[derive(Debug, Args)]
pub struct Bind {
    /// DN to bind as (default: the one of --bind-dn, else asked).
    #[arg(value_name = "DN", value_hint = ValueHint::Other)]
    pub dn: Option<String>,
}

impl Run for Bind {
    fn run(&self, context: &mut Context<'_>) -> Result<Flow, CommandError> {
        let dn = match &self.dn {
            Some(dn) => dn.clone(),
            None => {
                let default = context.session.bind_dn().map(str::to_owned);
                context
                    .prompter
                    .ask("Bind DN", default.as_deref())
                    .ok_or_else(|| CommandError::Failed(String::from("bind: cancelled")))?
            }
        };
        let dn = dn.trim().to_owned();
        if dn.is_empty() {
            return Err(CommandError::Usage(String::from(
                "bind: the DN is empty; give one, e.g. bind cn=admin,dc=example,dc=org",
            )));
        }
        let password = context
            .prompter
            .ask_secret(&format!("Password for {dn}"))
            .ok_or_else(|| CommandError::Failed(String::from("bind: cancelled")))?;
        let message = format!("bind: the next connection binds as {dn}");
        context.session.set_credentials(dn, Secret::new(password));
        writeln!(context.output.out, "{message}")
            .map_err(|error| super::write_failed("bind", error))?;
        Ok(Flow::Continue)
    }
}
