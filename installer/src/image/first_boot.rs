//! The first start of a system a deployment made.
//!
//! When a target's disk is made (`image deploy`), the system on it gets a
//! Roleout identity of its own and a note of its job: its state folder
//! (`/var/lib/roleout` on the target) holds the enrolment, the pinned
//! keys and a new machine key that the deploying agent's key vouched for
//! (the key rotation roleoutd already accepts: no token, no secret in the
//! directory, and the deploying key is no longer the machine's), plus
//! `first-boot.json` naming the job. A systemd unit,
//! `roleout-first-boot.service`, runs `roleout first-boot` at the first
//! start.
//!
//! `roleout first-boot` runs the image's first-start scripts
//! (`/etc/roleout/first-boot.d/*`, executable files, in name order) once,
//! then reports the job `complete` (which releases the target's lease),
//! and only then removes `first-boot.json`: a start cut short runs again
//! at the next one; a finished one never does. A failing script is
//! reported as the job's failure, with its name and status.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use roleout_model::job::{JobId, Phase};
use roleout_model::protocol::JobProgress;
use serde::{Deserialize, Serialize};

use crate::client::HttpSource;
use crate::engine::EngineError;
use crate::engine::identity::{
    BUILDER_KEY_FILE, ENDORSED_KEYS_FILE, ENROLMENT_FILE, MACHINE_CERTIFICATE_FILE,
    MACHINE_KEY_FILE, SERVER_CERTIFICATE_FILE,
};
use crate::state::atomic;

/// The note of the job, in the made system's state folder.
pub const FIRST_BOOT_FILE: &str = "first-boot.json";

/// Where the made system keeps its Roleout state.
pub const TARGET_STATE_DIR: &str = "var/lib/roleout";

/// Where the made system's first-start scripts are.
pub const SCRIPTS_DIR: &str = "etc/roleout/first-boot.d";

/// The systemd unit that runs `roleout first-boot` once.
pub const UNIT: &str = "etc/systemd/system/roleout-first-boot.service";

/// What `first-boot.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FirstBootNote {
    /// The job that made this system.
    pub job: JobId,
}

fn config(message: impl Into<String>) -> EngineError {
    EngineError::Config(message.into())
}

/// The path of the `roleout` the system at `root` carries, as the system
/// names it, if it carries one.
pub fn roleout_in(root: &Path) -> Option<String> {
    [
        "usr/bin/roleout",
        "usr/sbin/roleout",
        "usr/local/bin/roleout",
    ]
    .into_iter()
    .find(|path| root.join(path).is_file())
    .map(|path| format!("/{path}"))
}

/// Gives the system made at `root` a Roleout identity of its own, from the
/// deploying agent's (`state_dir`): the enrolment and pinned keys copied,
/// then a new key pair presented to roleoutd with the deploying key's
/// proof; the note of `job`, and the unit that runs the first start.
/// Returns where its `roleout` is (`None`: the image has none, and its
/// first start cannot report).
pub fn hand_over(
    state_dir: &Path,
    root: &Path,
    job: &JobId,
    facts: &roleout_model::protocol::MachineFacts,
) -> Result<Option<String>, EngineError> {
    // The folders that get new entries keep the image's times.
    let times = super::target::FolderTimes::record(
        ["etc", "etc/systemd", "etc/systemd/system", "var", "var/lib"]
            .map(|folder| root.join(folder)),
    );
    let roleout = give_identity(state_dir, root, job, facts)?;
    times.restore().map_err(|error| config(error.to_string()))?;
    Ok(roleout)
}

fn give_identity(
    state_dir: &Path,
    root: &Path,
    job: &JobId,
    facts: &roleout_model::protocol::MachineFacts,
) -> Result<Option<String>, EngineError> {
    let target = root.join(TARGET_STATE_DIR);
    fs::create_dir_all(&target)
        .and_then(|()| fs::set_permissions(&target, fs::Permissions::from_mode(0o700)))
        .map_err(|error| config(format!("{}: {error}", target.display())))?;
    for name in [
        ENROLMENT_FILE,
        SERVER_CERTIFICATE_FILE,
        BUILDER_KEY_FILE,
        ENDORSED_KEYS_FILE,
        MACHINE_KEY_FILE,
        MACHINE_CERTIFICATE_FILE,
    ] {
        let from = state_dir.join(name);
        if !from.exists() {
            continue;
        }
        fs::copy(&from, target.join(name)).map_err(|error| {
            config(format!(
                "{} to {}: {error}",
                from.display(),
                target.display()
            ))
        })?;
    }
    let algorithm = roleout_store::keys::read_machine_key(&state_dir.join(MACHINE_KEY_FILE))
        .map_err(|error| config(error.to_string()))?
        .algorithm();
    if let Err(error) = crate::rotation::rotate_key(&target, algorithm, facts) {
        // The deploying key stays with the deploying agent only.
        for name in [MACHINE_KEY_FILE, MACHINE_CERTIFICATE_FILE] {
            let _ = fs::remove_file(target.join(name));
        }
        return Err(error);
    }
    let note = serde_json::to_vec_pretty(&FirstBootNote { job: job.clone() })
        .map_err(|error| config(error.to_string()))?;
    atomic::write_atomic(&target.join(FIRST_BOOT_FILE), &note, 0o600)
        .map_err(|error| config(error.to_string()))?;
    let roleout = roleout_in(root);
    if let Some(roleout) = &roleout {
        let unit = format!(
            "[Unit]\nDescription=Roleout: the first start of a deployed system\n\
             ConditionPathExists=/{TARGET_STATE_DIR}/{FIRST_BOOT_FILE}\n\
             Wants=network-online.target\nAfter=network-online.target\n\n\
             [Service]\nType=oneshot\nExecStart={roleout} --state-dir /{TARGET_STATE_DIR} first-boot\n\n\
             [Install]\nWantedBy=multi-user.target\n"
        );
        let path = root.join(UNIT);
        if let Some(folder) = path.parent() {
            fs::create_dir_all(folder)
                .map_err(|error| config(format!("{}: {error}", folder.display())))?;
        }
        fs::write(&path, unit).map_err(|error| config(format!("{}: {error}", path.display())))?;
        let wants = root.join("etc/systemd/system/multi-user.target.wants");
        fs::create_dir_all(&wants)
            .map_err(|error| config(format!("{}: {error}", wants.display())))?;
        let link = wants.join("roleout-first-boot.service");
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(format!("/{UNIT}"), &link)
            .map_err(|error| config(format!("{}: {error}", link.display())))?;
    }
    Ok(roleout)
}

/// Adds the admin's `scripts` (name, bytes) to the first-start scripts of
/// the system at `root`, after the image's own (`50-NAME`), keeping the
/// folders' times.
pub fn add_scripts(root: &Path, scripts: &[(String, Vec<u8>)]) -> Result<(), EngineError> {
    if scripts.is_empty() {
        return Ok(());
    }
    let folder = root.join(SCRIPTS_DIR);
    let times = super::target::FolderTimes::record(
        ["etc", "etc/roleout", SCRIPTS_DIR].map(|path| root.join(path)),
    );
    fs::create_dir_all(&folder)
        .map_err(|error| config(format!("{}: {error}", folder.display())))?;
    for (name, bytes) in scripts {
        let path = folder.join(format!("50-{name}"));
        atomic::write_atomic(&path, bytes, 0o755).map_err(|error| config(error.to_string()))?;
    }
    times.restore().map_err(|error| config(error.to_string()))
}

/// The first-start scripts of the system at `root`, in name order.
fn scripts(root: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(root.join(SCRIPTS_DIR))
        .map(|listing| {
            listing
                .flatten()
                .map(|entry| entry.path())
                .filter(|path| {
                    fs::metadata(path).is_ok_and(|metadata| {
                        metadata.is_file() && metadata.permissions().mode() & 0o111 != 0
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// `roleout first-boot`: runs the first start of this system (see the
/// module documentation). Returns the job it finished, or `None` when
/// there is nothing to do (not a deployed system, or done already).
pub fn run(
    state_dir: &Path,
    root: &Path,
    server: &mut HttpSource,
    say: &mut dyn FnMut(&str),
) -> Result<Option<JobId>, EngineError> {
    let note_path = state_dir.join(FIRST_BOOT_FILE);
    let note: FirstBootNote = match fs::read(&note_path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|error| config(format!("{}: {error}", note_path.display())))?,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(config(format!("{}: {error}", note_path.display()))),
    };
    for script in scripts(root) {
        say(&format!("running {}", script.display()));
        let status = Command::new(&script)
            .status()
            .map_err(|error| config(format!("{}: {error}", script.display())));
        let failure = match status {
            Ok(status) if status.success() => None,
            Ok(status) => Some(format!(
                "first-start script {} ended with {status}",
                script.display()
            )),
            Err(error) => Some(error.to_string()),
        };
        if let Some(failure) = failure {
            server.job_progress(
                &note.job,
                &JobProgress {
                    phase: Phase::Failed,
                    message: Some(failure.clone()),
                },
            )?;
            fs::remove_file(&note_path)
                .map_err(|error| config(format!("{}: {error}", note_path.display())))?;
            return Err(config(failure));
        }
    }
    server.job_progress(
        &note.job,
        &JobProgress {
            phase: Phase::Complete,
            message: Some("first start done".to_owned()),
        },
    )?;
    fs::remove_file(&note_path)
        .map_err(|error| config(format!("{}: {error}", note_path.display())))?;
    say(&format!("job {}: complete", note.job));
    Ok(Some(note.job))
}
