//! Images as admins manage them: which machines may upload images of
//! themselves (`source add|remove|list`), the images kept
//! (`image list|show|remove`) and the installation engines
//! (`engine list`).

use std::fmt::Write as _;

use roleout_directory::Directory;
use roleout_model::image::{Compatibility, ImageName};

use super::{CommandFailed, Output};

/// A value's name as the image's JSON spells it (`bios`, `systemd-networkd`).
fn wire_name(value: &impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn image_name(name: &str) -> Result<ImageName, CommandFailed> {
    ImageName::new(name).map_err(CommandFailed)
}

/// Bytes in the largest unit that keeps a whole number above 1.
pub fn bytes_text(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `source add|remove`: makes machine `name` an imaging source, or no
/// longer one.
pub async fn set_source(
    directory: &Directory,
    name: &str,
    source: bool,
    output: &mut Output<'_>,
) -> Result<(), CommandFailed> {
    let dn = super::roles::machine_dn(directory, name).await?;
    directory
        .set_imaging_source(&dn, source)
        .await
        .map_err(|error| CommandFailed(format!("cannot change machine {name}: {error}")))?;
    let text = if source {
        format!(
            "{name} is an imaging source: `roleout image capture --name NAME` on it uploads an image of it\n"
        )
    } else {
        format!("{name} is no longer an imaging source; the images it uploaded stay\n")
    };
    output.write_text(&text)
}

/// `source list`: the imaging sources, with their address and when they
/// were last seen.
pub async fn list_sources(
    directory: &Directory,
    output: &mut Output<'_>,
) -> Result<(), CommandFailed> {
    let sources = directory
        .imaging_sources()
        .await
        .map_err(|error| CommandFailed(format!("cannot read the machines: {error}")))?;
    let mut text = String::new();
    if sources.is_empty() {
        text.push_str("no imaging sources: make one with `source add MACHINE`\n");
    }
    for source in &sources {
        let _ = writeln!(
            text,
            "{}\t{}\t{}\tlast seen {}",
            source.machine.name,
            source.machine.ip.as_deref().unwrap_or("-"),
            if source.may_authenticate() {
                "enabled"
            } else {
                "cannot authenticate"
            },
            source.last_seen.as_deref().unwrap_or("never")
        );
    }
    output.write_text(&text)
}

/// `image list`: every image, one line each.
pub async fn list(directory: &Directory, output: &mut Output<'_>) -> Result<(), CommandFailed> {
    let images = directory
        .images()
        .await
        .map_err(|error| CommandFailed(format!("cannot read the images: {error}")))?;
    let mut text = String::new();
    if images.is_empty() {
        text.push_str("no images: run `roleout image capture --name NAME` on an imaging source\n");
    }
    for image in &images {
        let description = &image.description;
        let os = description
            .os
            .os_release
            .get("PRETTY_NAME")
            .cloned()
            .unwrap_or_else(|| "unknown OS".to_owned());
        let _ = writeln!(
            text,
            "{}\tfrom {}\t{} entries\t{}\t{}\tmanifest {}",
            description.name,
            image.source.as_deref().unwrap_or("a file"),
            description.entries,
            bytes_text(description.data_bytes),
            os,
            &description.manifest.as_str()[..12],
        );
    }
    output.write_text(&text)
}

/// `image show NAME`: what an image holds and what a target must share
/// with its source.
pub async fn show(
    directory: &Directory,
    name: &str,
    output: &mut Output<'_>,
) -> Result<(), CommandFailed> {
    let id = image_name(name)?;
    let image = directory
        .image(&id)
        .await
        .map_err(|error| CommandFailed(format!("cannot read image {name}: {error}")))?
        .ok_or_else(|| CommandFailed(format!("no image {name:?} in the directory")))?;
    let description = &image.description;
    let hardware = &description.hardware;
    let mut text = String::new();
    let _ = writeln!(text, "image {}", description.name);
    let _ = writeln!(text, "  dn: {}", image.dn);
    let _ = writeln!(
        text,
        "  source: {}",
        image.source.as_deref().unwrap_or("uploaded from a file")
    );
    let _ = writeln!(
        text,
        "  captured at: {} (Unix seconds)",
        description.captured_at
    );
    let _ = writeln!(text, "  manifest: {}", description.manifest);
    let _ = writeln!(
        text,
        "  tree: {} entries, {} of data",
        description.entries,
        bytes_text(description.data_bytes)
    );
    let _ = writeln!(
        text,
        "  hardware: {} {}, {} ({} logical CPUs), {} memory, hardware key {}",
        hardware.arch,
        wire_name(&hardware.firmware),
        hardware.cpu.model,
        hardware.cpu.logical,
        bytes_text(hardware.memory_bytes),
        &hardware.key().as_str()[..12]
    );
    for disk in &hardware.disks {
        let _ = writeln!(
            text,
            "    disk {}: {}{}",
            disk.name,
            bytes_text(disk.size_bytes),
            disk.model
                .as_deref()
                .map(|model| format!(", {model}"))
                .unwrap_or_default()
        );
    }
    let os = &description.os;
    let _ = writeln!(
        text,
        "  os: {}, {} package(s), network {}, kernel(s) {}",
        os.os_release
            .get("PRETTY_NAME")
            .map_or("unknown", String::as_str),
        os.packages.len(),
        if os.network.is_empty() {
            "unconfigured".to_owned()
        } else {
            os.network
                .iter()
                .map(wire_name)
                .collect::<Vec<_>>()
                .join(", ")
        },
        if os.kernels.is_empty() {
            "none".to_owned()
        } else {
            os.kernels.join(", ")
        }
    );
    for partition in &description.partitions {
        let _ = writeln!(
            text,
            "    file system {} ({}): the image's {} of files; on the source {} used of {}{}",
            partition.mount_point,
            partition.fs_type,
            bytes_text(partition.data_bytes),
            bytes_text(partition.used_bytes),
            bytes_text(partition.size_bytes),
            if partition.growable { ", growable" } else { "" }
        );
    }
    let _ = writeln!(
        text,
        "  compatibility: {}",
        match &description.compatibility {
            Compatibility::Strict => "strict (the same hardware key)".to_owned(),
            Compatibility::Facts { facts } => format!("the same {}", facts.join(", ")),
        }
    );
    output.write_text(&text)
}

/// `image rule NAME RULE`: `strict` (the same hardware key, the source
/// document's rule) or the facts that must be equal (`arch,firmware`:
/// then disk capacity and driver coverage decide the rest).
pub async fn set_rule(
    directory: &Directory,
    name: &str,
    rule: &str,
    output: &mut Output<'_>,
) -> Result<(), CommandFailed> {
    let id = image_name(name)?;
    let compatibility = if rule == "strict" {
        Compatibility::Strict
    } else {
        let facts: Vec<String> = rule
            .split(',')
            .map(str::trim)
            .filter(|fact| !fact.is_empty())
            .map(str::to_owned)
            .collect();
        let unknown: Vec<&String> = facts
            .iter()
            .filter(|fact| !roleout_model::inventory::FACT_NAMES.contains(&fact.as_str()))
            .collect();
        if facts.is_empty() || !unknown.is_empty() {
            return Err(CommandFailed(format!(
                "rule {rule:?}: say `strict`, or the hardware facts a target must share, comma-separated, from: {}",
                roleout_model::inventory::FACT_NAMES.join(", ")
            )));
        }
        Compatibility::Facts { facts }
    };
    let changed = directory
        .set_image_compatibility(&id, &compatibility)
        .await
        .map_err(|error| CommandFailed(format!("cannot change image {name}: {error}")))?;
    if !changed {
        return Err(CommandFailed(format!("no image {name:?} in the directory")));
    }
    output.write_text(&format!(
        "image {name}: {}\n",
        match &compatibility {
            Compatibility::Strict => "a target must have the source's hardware key".to_owned(),
            Compatibility::Facts { facts } => format!(
                "a target must share {} with the source; its disk and drivers decide the rest",
                facts.join(", ")
            ),
        }
    ))
}

/// `image remove NAME`: the entry goes now, its files with roleoutd's next
/// collection of the content store (unless another image names them).
pub async fn remove(
    directory: &Directory,
    name: &str,
    output: &mut Output<'_>,
) -> Result<(), CommandFailed> {
    let id = image_name(name)?;
    let removed = directory
        .delete_image(&id)
        .await
        .map_err(|error| CommandFailed(format!("cannot remove image {name}: {error}")))?;
    if !removed {
        return Err(CommandFailed(format!("no image {name:?} in the directory")));
    }
    output.write_text(&format!(
            "image {name} removed; its files leave roleoutd's content store at its next collection unless another image names them\n"
        ),
    )
}

/// `engine list`: the installation engines that registered.
pub async fn list_engines(
    directory: &Directory,
    output: &mut Output<'_>,
) -> Result<(), CommandFailed> {
    let engines = directory
        .engines()
        .await
        .map_err(|error| CommandFailed(format!("cannot read the engines: {error}")))?;
    let mut text = String::new();
    if engines.is_empty() {
        text.push_str("no installation engines: start roleoutd with --engine NAME at each site\n");
    }
    for engine in &engines {
        let _ = writeln!(
            text,
            "{}\t{}\tlast registered {}",
            engine.name,
            engine.url.as_deref().unwrap_or("-"),
            engine.last_seen.as_deref().unwrap_or("never")
        );
    }
    output.write_text(&text)
}
