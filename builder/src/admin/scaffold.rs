//! `new-product`: a starting descriptor written from what an author already
//! has (a Debian package, a tarball, a script), checked before it is
//! written.
//!
//! A `.deb` gives its name, version, architecture, maintainer, summary and
//! dependencies (read with `dpkg-deb --field`). A dependency on a package
//! given in the same command becomes a `<prerequisite>` (so a program and
//! its libraries are scaffolded, and pulled in, together); any other becomes
//! a `<requires-system>` on the system's dpkg. A tarball gives its name and
//! version from the file name (`app-1.2.3.tar.gz`), a script its name and
//! the version given. File digests and sizes are left out: import and check
//! fill them from the payload folder.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use roleout_model::descriptor::{self, Descriptor, Severity, roleout_arch};
use roleout_model::ids::ProductId;
use roleout_model::version::Version;

use crate::admin::{CommandFailed, Output};
use crate::content::PayloadDir;

/// What kind of payload a scaffold starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadKind {
    /// A Debian package.
    Deb,
    /// A tar archive (plain or compressed).
    Tarball,
    /// A shell script.
    Script,
}

impl PayloadKind {
    /// The kind of `file`, by its name.
    pub fn of(file: &Path) -> Result<Self, CommandFailed> {
        let name = file_name(file)?;
        if name.ends_with(".deb") {
            Ok(PayloadKind::Deb)
        } else if TAR_SUFFIXES.iter().any(|suffix| name.ends_with(suffix)) {
            Ok(PayloadKind::Tarball)
        } else if name.ends_with(".sh") {
            Ok(PayloadKind::Script)
        } else {
            Err(CommandFailed(format!(
                "new-product: {name}: not a .deb, a tarball ({}) or a script (.sh)",
                TAR_SUFFIXES.join(", ")
            )))
        }
    }
}

const TAR_SUFFIXES: [&str; 8] = [
    ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.zst", ".tar.bz2", ".tbz2", ".tar",
];

fn file_name(file: &Path) -> Result<&str, CommandFailed> {
    file.file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(|| {
            CommandFailed(format!(
                "new-product: {} has no file name in UTF-8",
                file.display()
            ))
        })
}

/// What the scaffold learnt of one payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Learnt {
    /// The payload file.
    pub file: PathBuf,
    /// Its kind.
    pub kind: PayloadKind,
    /// The product id.
    pub id: String,
    /// The version.
    pub version: String,
    /// The architecture, Roleout's spelling; `None` for every one.
    pub arch: Option<String>,
    /// The maintainer or vendor.
    pub vendor: Option<String>,
    /// The one-line summary.
    pub summary: Option<String>,
    /// Dependencies: package name and Debian relation (`>= 2.34`), each
    /// alternative group as its first choice.
    pub depends: Vec<(String, Option<String>)>,
    /// Alternatives left out, in words, for the header comment.
    pub notes: Vec<String>,
}

/// Reads what `file` says about itself; `version` overrides (and, for a
/// script, supplies) the version.
pub fn learn(file: &Path, version: Option<&str>) -> Result<Learnt, CommandFailed> {
    let kind = PayloadKind::of(file)?;
    let name = file_name(file)?.to_owned();
    let mut learnt = match kind {
        PayloadKind::Deb => learn_deb(file)?,
        PayloadKind::Tarball => {
            let stem = TAR_SUFFIXES
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(&name);
            let (id, found) = split_name_version(stem);
            Learnt {
                file: file.to_owned(),
                kind,
                id,
                version: found.unwrap_or_default(),
                arch: None,
                vendor: None,
                summary: None,
                depends: Vec::new(),
                notes: Vec::new(),
            }
        }
        PayloadKind::Script => {
            let stem = name.strip_suffix(".sh").unwrap_or(&name);
            let (id, found) = split_name_version(stem);
            Learnt {
                file: file.to_owned(),
                kind,
                id,
                version: found.unwrap_or_default(),
                arch: None,
                vendor: None,
                summary: None,
                depends: Vec::new(),
                notes: Vec::new(),
            }
        }
    };
    if let Some(version) = version {
        learnt.version = version.to_owned();
    }
    if learnt.version.is_empty() {
        return Err(CommandFailed(format!(
            "new-product: {name} does not say its version: give it with --version"
        )));
    }
    Version::new(&learnt.version).map_err(|error| {
        CommandFailed(format!(
            "new-product: {name}: version {:?}: {error}",
            learnt.version
        ))
    })?;
    learnt.id = product_id(&learnt.id);
    ProductId::new(&learnt.id).map_err(|error| {
        CommandFailed(format!(
            "new-product: {name}: no product id can be made of {:?}: {error}",
            learnt.id
        ))
    })?;
    Ok(learnt)
}

/// `name-1.2.3` or `name_1.2.3` split at the last `-`/`_` before a digit.
fn split_name_version(stem: &str) -> (String, Option<String>) {
    let cut = stem
        .char_indices()
        .filter(|(index, c)| {
            (*c == '-' || *c == '_')
                && stem[index + 1..]
                    .trim_start_matches('v')
                    .starts_with(|c: char| c.is_ascii_digit())
        })
        .map(|(index, _)| index)
        .next();
    match cut {
        Some(index) => (
            stem[..index].to_owned(),
            Some(stem[index + 1..].trim_start_matches('v').to_owned()),
        ),
        None => (stem.to_owned(), None),
    }
}

/// A product id from a package or file name: lower case, anything but
/// letters, digits, `-`, `_` and `.` made `-`.
fn product_id(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

fn learn_deb(file: &Path) -> Result<Learnt, CommandFailed> {
    let fields = [
        "Package",
        "Version",
        "Architecture",
        "Maintainer",
        "Description",
        "Depends",
        "Pre-Depends",
    ];
    let output = Command::new("dpkg-deb")
        .arg("--field")
        .arg(file)
        .args(fields)
        .output()
        .map_err(|error| {
            CommandFailed(format!(
                "new-product: reading {} needs dpkg-deb (Debian's dpkg package): {error}",
                file.display()
            ))
        })?;
    if !output.status.success() {
        return Err(CommandFailed(format!(
            "new-product: {} is not a Debian package dpkg-deb can read: {}",
            file.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let field = |name: &str| -> Option<String> {
        let prefix = format!("{name}:");
        text.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    };
    let mut notes = Vec::new();
    let arch = match field("Architecture") {
        None => None,
        Some(arch) if arch == "all" => None,
        Some(arch) => match roleout_arch(&arch) {
            Some(known) => Some(known.to_owned()),
            None => {
                notes.push(format!(
                    "architecture {arch} has no Roleout name; platform left open"
                ));
                None
            }
        },
    };
    let mut depends = Vec::new();
    for list in [field("Pre-Depends"), field("Depends")]
        .into_iter()
        .flatten()
    {
        for group in list.split(',').map(str::trim).filter(|g| !g.is_empty()) {
            let mut choices = group.split('|').map(str::trim);
            let Some(first) = choices.next() else {
                continue;
            };
            let others: Vec<&str> = choices.collect();
            if !others.is_empty() {
                notes.push(format!(
                    "\"{group}\": only the first choice is required here; a product of the catalog that provides the others can stand in"
                ));
            }
            depends.push(parse_relation(first));
        }
    }
    Ok(Learnt {
        file: file.to_owned(),
        kind: PayloadKind::Deb,
        id: field("Package").unwrap_or_default(),
        version: field("Version").unwrap_or_default(),
        arch,
        vendor: field("Maintainer"),
        summary: field("Description"),
        depends,
        notes,
    })
}

/// `libc6 (>= 2.34)` or `libfoo:any` as name and Roleout range.
fn parse_relation(text: &str) -> (String, Option<String>) {
    let (name, relation) = match text.split_once('(') {
        Some((name, rest)) => (name.trim(), Some(rest.trim_end_matches(')').trim())),
        None => (text.trim(), None),
    };
    let name = name.split(':').next().unwrap_or(name).to_owned();
    let range = relation.map(|relation| {
        let (operator, version) = relation.split_at(
            relation
                .find(|c: char| c.is_ascii_alphanumeric())
                .unwrap_or(relation.len()),
        );
        let operator = match operator.trim() {
            "<<" => "<",
            ">>" => ">",
            "=" => "=",
            other => other,
        };
        format!("{operator}{}", version.trim())
    });
    (name, range)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The descriptor text for `learnt`; `siblings` are the product ids
/// scaffolded with it (dependencies on them become prerequisites).
pub fn descriptor_text(learnt: &Learnt, siblings: &BTreeSet<String>) -> String {
    let file = file_name(&learnt.file).unwrap_or("payload").to_owned();
    let id = &learnt.id;
    // XML comments cannot hold `--`.
    let mut text = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        text,
        "<!-- A starting descriptor written by roleout-admin new-product from {}.\n     \
         Review every element, then check and import it with its payload folder. -->",
        escape(&file).replace("--", "- -")
    );
    for note in &learnt.notes {
        let _ = writeln!(text, "<!-- {} -->", escape(note).replace("--", "- -"));
    }
    let _ = writeln!(
        text,
        "<product xmlns=\"urn:roleout:descriptor:1\" id=\"{}\" version=\"{}\">",
        escape(id),
        escape(&learnt.version)
    );
    let _ = match (&learnt.kind, &learnt.arch) {
        (PayloadKind::Deb, Some(arch)) => {
            writeln!(text, "  <platform os=\"linux\" arch=\"{}\"/>", escape(arch))
        }
        _ => writeln!(text, "  <platform os=\"linux\"/>"),
    };
    let mut description = String::new();
    let _ = write!(description, "  <description");
    if let Some(vendor) = &learnt.vendor {
        let _ = write!(description, " vendor=\"{}\"", escape(vendor));
    }
    let _ = write!(description, "><name>{}</name>", escape(id));
    if let Some(summary) = &learnt.summary {
        let _ = write!(description, "<summary>{}</summary>", escape(summary));
    }
    let _ = writeln!(text, "{description}</description>");
    if !learnt.depends.is_empty() {
        let _ = writeln!(text, "  <dependencies>");
        for (name, range) in &learnt.depends {
            let version = range
                .as_ref()
                .map(|range| format!(" version=\"{}\"", escape(range)))
                .unwrap_or_default();
            let product = product_id(name);
            if siblings.contains(&product) {
                let _ = writeln!(
                    text,
                    "    <prerequisite product=\"{}\"{version}/>",
                    escape(&product)
                );
            } else {
                let _ = writeln!(
                    text,
                    "    <requires-system package=\"{}\" manager=\"dpkg\"{version}/>",
                    escape(name)
                );
            }
        }
        let _ = writeln!(text, "  </dependencies>");
    }
    let payload = escape(&file);
    let _ = writeln!(text, "  <fileset><file path=\"{payload}\"/></fileset>");
    match learnt.kind {
        PayloadKind::Deb => {
            let package = escape(&learnt.id);
            let _ = writeln!(
                text,
                "  <version-check><package manager=\"dpkg\" name=\"{package}\" version=\"&gt;={{{{ version }}}}\"/></version-check>"
            );
            let _ = writeln!(
                text,
                "  <install kind=\"deb\" timeout=\"600\">\n    \
                 <arg>dpkg</arg><arg>--root={{{{ root }}}}</arg><arg>--force-not-root</arg><arg>--install</arg><arg>{{{{ payload }}}}/{payload}</arg>\n    \
                 <outcome failure-pattern=\"^dpkg: error\"/>\n  </install>"
            );
            let _ = writeln!(
                text,
                "  <uninstall kind=\"deb\">\n    \
                 <arg>dpkg</arg><arg>--root={{{{ root }}}}</arg><arg>--force-not-root</arg><arg>--remove</arg><arg>{package}</arg>\n  </uninstall>"
            );
        }
        PayloadKind::Tarball => {
            let _ = writeln!(
                text,
                "  <variables><path name=\"install_dir\" default=\"/opt/{}\"/></variables>",
                escape(id)
            );
            let _ = writeln!(
                text,
                "  <version-check><file-exists path=\"{{{{ root }}}}{{{{ install_dir }}}}/.roleout-{{{{ version }}}}\"/></version-check>"
            );
            let _ = writeln!(
                text,
                "  <pre-install kind=\"tarball\"><arg>mkdir</arg><arg>-p</arg><arg>{{{{ root }}}}{{{{ install_dir }}}}</arg></pre-install>"
            );
            let _ = writeln!(
                text,
                "  <install kind=\"tarball\" timeout=\"600\">\n    \
                 <arg>tar</arg><arg>-xf</arg><arg>{{{{ payload }}}}/{payload}</arg><arg>-C</arg><arg>{{{{ root }}}}{{{{ install_dir }}}}</arg>\n  </install>"
            );
            let _ = writeln!(
                text,
                "  <post-install kind=\"tarball\"><arg>touch</arg><arg>{{{{ root }}}}{{{{ install_dir }}}}/.roleout-{{{{ version }}}}</arg></post-install>"
            );
            let _ = writeln!(
                text,
                "  <uninstall kind=\"tarball\"><arg>rm</arg><arg>-rf</arg><arg>--</arg><arg>{{{{ root }}}}{{{{ install_dir }}}}</arg></uninstall>"
            );
        }
        PayloadKind::Script => {
            let _ = writeln!(
                text,
                "  <install kind=\"script\" timeout=\"600\">\n    \
                 <arg>/bin/sh</arg><arg>{{{{ payload }}}}/{payload}</arg><arg>{{{{ root }}}}</arg>\n  </install>"
            );
        }
    }
    text.push_str("</product>\n");
    text
}

/// `new-product FILE...`: writes `ID.xml` into `output_dir` for each file,
/// after checking it as import would (with the files' folders as payload
/// folders); refuses to overwrite a descriptor unless `force`.
pub fn new_products(
    files: &[PathBuf],
    version: Option<&str>,
    output_dir: &Path,
    force: bool,
    output: &mut Output<'_>,
) -> Result<Vec<PathBuf>, CommandFailed> {
    if files.is_empty() {
        return Err(CommandFailed(
            "new-product: name at least one .deb, tarball or script".to_owned(),
        ));
    }
    if version.is_some() && files.len() > 1 {
        return Err(CommandFailed(
            "new-product: --version applies to one file; scaffold the others separately".to_owned(),
        ));
    }
    let learnt: Vec<Learnt> = files
        .iter()
        .map(|file| learn(file, version))
        .collect::<Result<_, _>>()?;
    let siblings: BTreeSet<String> = learnt.iter().map(|learnt| learnt.id.clone()).collect();
    let mut written = Vec::new();
    for learnt in &learnt {
        let text = descriptor_text(learnt, &siblings);
        let target = output_dir.join(format!("{}.xml", learnt.id));
        let folder = PayloadDir(
            learnt
                .file
                .parent()
                .map(Path::to_owned)
                .unwrap_or_else(|| PathBuf::from(".")),
        );
        let name = target.display().to_string();
        let parsed = descriptor::parse_with(&name, text.as_bytes(), Some(&folder));
        if parsed.has_errors() || !matches!(parsed.descriptor, Some(Descriptor::Product(_))) {
            let problems: Vec<String> = parsed
                .diagnostics
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .map(ToString::to_string)
                .collect();
            return Err(CommandFailed(format!(
                "new-product: the descriptor for {} does not check (a bug): {}",
                learnt.file.display(),
                problems.join("; ")
            )));
        }
        if target.exists() && !force {
            return Err(CommandFailed(format!(
                "new-product: {name} exists; remove it or give --force"
            )));
        }
        std::fs::write(&target, &text)
            .map_err(|error| CommandFailed(format!("new-product: cannot write {name}: {error}")))?;
        let _ = writeln!(
            output.out,
            "{name}: product {} {} from {}",
            learnt.id,
            learnt.version,
            learnt.file.display()
        );
        written.push(target);
    }
    Ok(written)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests fail loudly by design.
mod tests {
    use super::*;

    #[test]
    fn names_and_versions_come_apart() {
        assert_eq!(
            split_name_version("node-exporter-1.8.2"),
            ("node-exporter".to_owned(), Some("1.8.2".to_owned()))
        );
        assert_eq!(
            split_name_version("tool_v2.0"),
            ("tool".to_owned(), Some("2.0".to_owned()))
        );
        assert_eq!(split_name_version("setup"), ("setup".to_owned(), None));
    }

    #[test]
    fn debian_relations_become_ranges() {
        assert_eq!(
            parse_relation("libc6 (>= 2.34)"),
            ("libc6".to_owned(), Some(">=2.34".to_owned()))
        );
        assert_eq!(
            parse_relation("libfoo:any (<< 3)"),
            ("libfoo".to_owned(), Some("<3".to_owned()))
        );
        assert_eq!(parse_relation("perl"), ("perl".to_owned(), None));
    }

    /// A tarball and a script give checked descriptors whose file sets
    /// the payload folder fills; a script without a version is refused
    /// with what to do.
    #[test]
    fn tarballs_and_scripts_give_descriptors_that_check() {
        let folder = tempfile::tempdir().unwrap();
        let tarball = folder.path().join("node-exporter-1.8.2.tar.gz");
        std::fs::write(&tarball, b"not really gzip, but bytes").unwrap();
        let script = folder.path().join("setup.sh");
        std::fs::write(&script, b"#!/bin/sh\necho set up\n").unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut output = Output {
            out: &mut out,
            err: &mut err,
        };
        let refused = new_products(
            std::slice::from_ref(&script),
            None,
            folder.path(),
            false,
            &mut output,
        )
        .unwrap_err();
        assert!(
            refused.0.contains("give it with --version"),
            "{}",
            refused.0
        );
        let written = new_products(
            std::slice::from_ref(&script),
            Some("2.0"),
            folder.path(),
            false,
            &mut output,
        )
        .unwrap();
        let written_tarball =
            new_products(&[tarball], None, folder.path(), false, &mut output).unwrap();
        for (path, id, version) in [
            (&written[0], "setup", "2.0"),
            (&written_tarball[0], "node-exporter", "1.8.2"),
        ] {
            let text = std::fs::read(path).unwrap();
            let folder = PayloadDir(folder.path().to_owned());
            let parsed = descriptor::parse_with("x.xml", &text, Some(&folder));
            assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
            let Some(Descriptor::Product(product)) = parsed.descriptor else {
                panic!("a product");
            };
            assert_eq!(
                (product.id.as_str(), product.version.to_string().as_str()),
                (id, version)
            );
            let files = &product.fileset.versions[0].value.files;
            assert_eq!(files.len(), 1);
            assert!(files[0].size > 0);
        }
        // Written once; again only with --force.
        let again = new_products(&written[..0], None, folder.path(), false, &mut output);
        assert!(again.is_err(), "no files");
        let clash = new_products(
            std::slice::from_ref(&script),
            Some("2.0"),
            folder.path(),
            false,
            &mut output,
        )
        .unwrap_err();
        assert!(clash.0.contains("--force"), "{}", clash.0);
    }
}
