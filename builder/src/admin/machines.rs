//! The machine commands of `roleout-admin`: approve a machine's key,
//! disable a machine, and hand out a one-time enrolment token.
//!
//! An enrolment token lets a machine be approved at the moment it enrols,
//! without an admin watching: only its SHA-256 is stored on the machine's
//! entry, the token itself is shown once, here, and roleoutd clears the
//! digest when the token is used.

use ring::rand::{SecureRandom, SystemRandom};
use roleout_directory::Directory;
use roleout_directory::machines::MachineEntry;
use roleout_model::ids::{MachineId, Sha256};
use roleout_model::machine::Machine;

use crate::admin::{CommandFailed, Output};

async fn existing(directory: &Directory, name: &MachineId) -> Result<MachineEntry, CommandFailed> {
    directory
        .machine(name)
        .await
        .map_err(|error| CommandFailed(format!("machine {name}: {error}")))?
        .ok_or_else(|| CommandFailed(format!("no machine called {name} in the directory")))
}

/// Approves machine `name`'s key and enables it.
pub async fn approve(
    directory: &Directory,
    name: &MachineId,
    output: &mut Output<'_>,
) -> Result<(), CommandFailed> {
    let entry = existing(directory, name).await?;
    if entry.certificate.is_none() {
        let _ = writeln!(
            output.err,
            "warning: machine {name} has not enrolled a key yet; it is approved for the first one it enrols"
        );
    }
    directory
        .approve_machine(&entry.dn)
        .await
        .map_err(|error| CommandFailed(format!("approve {name}: {error}")))?;
    let _ = writeln!(output.out, "machine {name}: approved");
    Ok(())
}

/// Disables machine `name`: it can no longer authenticate, from its next
/// request on.
pub async fn disable(
    directory: &Directory,
    name: &MachineId,
    output: &mut Output<'_>,
) -> Result<(), CommandFailed> {
    let entry = existing(directory, name).await?;
    directory
        .disable_machine(&entry.dn)
        .await
        .map_err(|error| CommandFailed(format!("disable {name}: {error}")))?;
    let _ = writeln!(output.out, "machine {name}: disabled");
    Ok(())
}

/// Makes a one-time enrolment token for machine `name` (creating its entry
/// when there is none), stores its digest and writes the token to the
/// output; returns it too.
pub async fn enroll_token(
    directory: &Directory,
    name: &MachineId,
    output: &mut Output<'_>,
) -> Result<String, CommandFailed> {
    let failed =
        |error: &dyn std::fmt::Display| CommandFailed(format!("enroll-token {name}: {error}"));
    let dn = match directory.machine(name).await.map_err(|e| failed(&e))? {
        Some(entry) => entry.dn,
        None => {
            let machine = Machine {
                name: name.clone(),
                ip: None,
                os: None,
                arch: None,
                facts: Default::default(),
                products: Vec::new(),
            };
            directory
                .create_machine(&machine)
                .await
                .map_err(|e| failed(&e))?
        }
    };
    let mut random = [0_u8; 32];
    SystemRandom::new()
        .fill(&mut random)
        .map_err(|_| failed(&"no randomness available from the system"))?;
    let token = hex::encode(random);
    directory
        .set_enrolment_token(&dn, Some(&Sha256::of(token.as_bytes())))
        .await
        .map_err(|e| failed(&e))?;
    // Issuing a token is the admin's approval in advance: the machine is
    // enabled now, and roleoutd marks its key approved when it presents the
    // token (roleoutd itself may never enable a machine).
    directory
        .enable_machine(&dn)
        .await
        .map_err(|e| failed(&e))?;
    let _ = writeln!(output.out, "{token}");
    let _ = writeln!(
        output.err,
        "one-time enrolment token for machine {name}: pass it to `roleout enroll`; it is shown only now"
    );
    Ok(token)
}
