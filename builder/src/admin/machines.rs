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
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::admin::{CommandFailed, Output};

async fn existing(directory: &Directory, name: &MachineId) -> Result<MachineEntry, CommandFailed> {
    directory
        .machine(name)
        .await
        .map_err(|error| CommandFailed(format!("machine {name}: {error}")))?
        .ok_or_else(|| CommandFailed(format!("no machine called {name} in the directory")))
}

/// The key a machine entry holds, for an admin to compare with what the
/// machine shows (`roleout status` prints the same fingerprint): the
/// certificate's SHA-256, algorithm and validity, or that there is none.
pub fn key_summary(entry: &MachineEntry) -> String {
    let Some(der) = entry.certificate.as_deref() else {
        return "none enrolled yet".to_owned();
    };
    let fingerprint = entry
        .certificate_fingerprint
        .clone()
        .unwrap_or_else(|| Sha256::of(der));
    let details = match X509Certificate::from_der(der) {
        Ok((_, certificate)) => {
            let algorithm = match certificate
                .public_key()
                .algorithm
                .algorithm
                .to_id_string()
                .as_str()
            {
                "1.3.101.112" => "ed25519",
                "1.2.840.10045.2.1" => "ecdsa-p256",
                _ => "another algorithm",
            };
            let validity = certificate.validity();
            format!(
                "{algorithm}, valid {} to {}",
                validity.not_before, validity.not_after
            )
        }
        Err(_) => "not a readable certificate".to_owned(),
    };
    format!("SHA-256 {fingerprint} ({details})")
}

/// Approves machine `name`'s key and enables it. With `fingerprint`, only
/// if the key the entry holds has that SHA-256 (what the machine showed
/// the admin); the key approved is always printed.
pub async fn approve(
    directory: &Directory,
    name: &MachineId,
    fingerprint: Option<&str>,
    output: &mut Output<'_>,
) -> Result<(), CommandFailed> {
    let entry = existing(directory, name).await?;
    if let Some(expected) = fingerprint {
        let expected = Sha256::new(expected.trim_start_matches("SHA-256").trim())
            .map_err(|error| CommandFailed(format!("approve {name}: --fingerprint: {error}")))?;
        let held = entry.certificate.as_deref().map(|der| {
            entry
                .certificate_fingerprint
                .clone()
                .unwrap_or_else(|| Sha256::of(der))
        });
        if held.as_ref() != Some(&expected) {
            return Err(CommandFailed(format!(
                "approve {name}: the key it holds is not {expected} (it holds {}); nothing approved",
                key_summary(&entry)
            )));
        }
    }
    if entry.certificate.is_none() {
        let _ = writeln!(
            output.err,
            "warning: machine {name} has not enrolled a key yet: the first key enrolled under this name will be approved; `enroll-token {name}` approves only the machine given the token"
        );
    }
    directory
        .approve_machine(&entry.dn)
        .await
        .map_err(|error| CommandFailed(format!("approve {name}: {error}")))?;
    let _ = writeln!(
        output.out,
        "machine {name}: approved, key {}",
        key_summary(&entry)
    );
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
