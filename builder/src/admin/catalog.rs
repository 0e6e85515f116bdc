//! `import` and `export`: descriptors into the directory and back.
//!
//! Import reads and checks every file before it writes anything, so a
//! typo in one file never leaves the catalog half imported; then it stores
//! products before suites (a suite names products, and a reader that sees
//! the new suite should find its products). Each store is idempotent and
//! touches only what changed (see roleout-directory's catalog module), so
//! importing the same files twice reports every object as unchanged.

use std::path::{Path, PathBuf};

use roleout_directory::Directory;
use roleout_directory::catalog::WriteSummary;
use roleout_model::descriptor::{self, Descriptor, Severity};

use super::{CommandFailed, Output};

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    /// Objects that were new.
    pub added: usize,
    /// Objects that changed.
    pub updated: usize,
    /// Objects that were already as described.
    pub unchanged: usize,
}

/// Lists the descriptor files named by `paths`: files as given, folders
/// searched (not recursively) for `*.xml`, sorted by name.
pub fn descriptor_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, CommandFailed> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let entries = std::fs::read_dir(path).map_err(|error| {
                CommandFailed(format!(
                    "cannot read the folder {}: {error}",
                    path.display()
                ))
            })?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .filter(|file| file.extension().is_some_and(|ext| ext == "xml") && file.is_file())
                .collect();
            found.sort();
            if found.is_empty() {
                return Err(CommandFailed(format!(
                    "the folder {} holds no .xml descriptor",
                    path.display()
                )));
            }
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    if files.is_empty() {
        return Err(CommandFailed(
            "name at least one descriptor file or folder".to_owned(),
        ));
    }
    Ok(files)
}

/// Parses every file; fails, listing every problem, if any has an error.
pub fn read_descriptors(
    files: &[PathBuf],
    payloads: Option<&Path>,
    output: &mut Output<'_>,
) -> Result<Vec<(PathBuf, Descriptor)>, CommandFailed> {
    let folder = payloads.map(|payloads| crate::content::PayloadDir(payloads.to_owned()));
    let mut descriptors = Vec::new();
    let mut broken = 0;
    for file in files {
        let name = file.display().to_string();
        let bytes = std::fs::read(file)
            .map_err(|error| CommandFailed(format!("cannot read {name}: {error}")))?;
        let parsed = descriptor::parse_with(
            &name,
            &bytes,
            folder
                .as_ref()
                .map(|folder| folder as &dyn descriptor::PayloadFolder),
        );
        for diagnostic in &parsed.diagnostics {
            let _ = writeln!(output.err, "{diagnostic}");
        }
        match parsed.descriptor {
            Some(descriptor)
                if !parsed
                    .diagnostics
                    .iter()
                    .any(|d| d.severity == Severity::Error) =>
            {
                descriptors.push((file.clone(), descriptor));
            }
            _ => broken += 1,
        }
    }
    if broken > 0 {
        return Err(CommandFailed(format!(
            "{broken} of {} file(s) have errors; nothing was imported",
            files.len()
        )));
    }
    Ok(descriptors)
}

fn describe(summary: &WriteSummary) -> String {
    format!(
        "{} entr{} added, {} modified, {} deleted",
        summary.added,
        if summary.added == 1 { "y" } else { "ies" },
        summary.modified,
        summary.deleted
    )
}

/// Puts the payload files of every product among `descriptors` from
/// `payloads` into the content store at `content_dir`, each checked
/// against the size and SHA-256 its descriptor gives; fails, naming every
/// bad file, before anything reaches the directory.
pub fn import_payloads(
    descriptors: &[(PathBuf, Descriptor)],
    payloads: &Path,
    content_dir: &Path,
    output: &mut Output<'_>,
) -> Result<(), CommandFailed> {
    let products: Vec<_> = descriptors
        .iter()
        .filter_map(|(_, descriptor)| match descriptor {
            Descriptor::Product(product) => Some(product.clone()),
            Descriptor::Suite(_) => None,
        })
        .collect();
    let store = crate::content::ContentStore::new(content_dir)
        .map_err(|error| CommandFailed(format!("import: payloads: {error}")))?;
    let imported = crate::content::import_payloads(&store, &products, payloads)
        .map_err(|error| CommandFailed(format!("import: payloads: {error}")))?;
    let _ = writeln!(
        output.out,
        "payloads: {} stored, {} already in {}",
        imported.stored.len(),
        imported.present.len(),
        content_dir.display()
    );
    Ok(())
}

/// A version as part of a file name: anything but letters, digits, `.`,
/// `-`, `+` and `~` becomes `_`.
fn file_safe(version: &str) -> String {
    version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '~') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Imports descriptor files and folders into the directory.
pub async fn import(
    directory: &Directory,
    paths: &[PathBuf],
    output: &mut Output<'_>,
) -> Result<ImportSummary, CommandFailed> {
    let files = descriptor_files(paths)?;
    let descriptors = read_descriptors(&files, None, output)?;
    store(directory, &descriptors, output).await
}

/// Stores descriptors already read and checked: products, then suites.
pub async fn store(
    directory: &Directory,
    descriptors: &[(PathBuf, Descriptor)],
    output: &mut Output<'_>,
) -> Result<ImportSummary, CommandFailed> {
    let mut summary = ImportSummary::default();
    // Products first: a suite is only useful once its products are there.
    let (products, suites): (Vec<_>, Vec<_>) = descriptors
        .iter()
        .partition(|(_, descriptor)| matches!(descriptor, Descriptor::Product(_)));
    for (file, descriptor) in products.into_iter().chain(suites) {
        let mut note = String::new();
        let (what, existed, result) = match descriptor {
            Descriptor::Product(product) => {
                let head = directory.load_product(&product.id).await.ok();
                // An older version joins the catalog beside the newer one;
                // what suites get does not change unless one names it.
                if let Some(head) = head.as_ref().filter(|head| head.version > product.version) {
                    note = format!(
                        "; {} {} stays what suites without a version range get",
                        head.id, head.version
                    );
                }
                (
                    format!("product {} {}", product.id, product.version),
                    head.is_some(),
                    directory.store_product(product).await,
                )
            }
            Descriptor::Suite(suite) => {
                let existed = directory.load_suite(&suite.id).await.is_ok();
                (
                    format!("suite {} {}", suite.id, suite.version),
                    existed,
                    directory.store_suite(suite).await,
                )
            }
        };
        let written = result.map_err(|error| {
            CommandFailed(format!("import {}: {what}: {error}", file.display()))
        })?;
        let state = if written.is_unchanged() {
            summary.unchanged += 1;
            "unchanged".to_owned()
        } else if existed {
            summary.updated += 1;
            format!("updated ({})", describe(&written))
        } else {
            summary.added += 1;
            format!("added ({})", describe(&written))
        };
        let _ = writeln!(output.out, "{what}: {state}{note}");
    }
    let _ = writeln!(
        output.out,
        "imported {} object(s): {} added, {} updated, {} unchanged",
        summary.added + summary.updated + summary.unchanged,
        summary.added,
        summary.updated,
        summary.unchanged
    );
    Ok(summary)
}

/// Exports the whole catalog as descriptors into `folder` (one
/// `ID.xml` per product and `suite-ID.xml` per suite) and, with `ldif`,
/// as `catalog.ldif` that `ldapadd` accepts.
pub async fn export(
    directory: &Directory,
    folder: &Path,
    ldif: bool,
    output: &mut Output<'_>,
) -> Result<usize, CommandFailed> {
    let (suites, products) = directory
        .export_catalog()
        .await
        .map_err(|error| CommandFailed(format!("export: {error}")))?;
    std::fs::create_dir_all(folder).map_err(|error| {
        CommandFailed(format!(
            "export: cannot create {}: {error}",
            folder.display()
        ))
    })?;
    let write = |name: String, text: String| -> Result<(), CommandFailed> {
        let path = folder.join(name);
        std::fs::write(&path, text).map_err(|error| {
            CommandFailed(format!("export: cannot write {}: {error}", path.display()))
        })
    };
    // The highest release of a product is ID.xml, the others ID-VERSION.xml
    // (importing them all gives the catalog back).
    let mut previous: Option<&roleout_model::ids::ProductId> = None;
    for product in &products {
        let name = if previous == Some(&product.id) {
            format!("{}-{}.xml", product.id, file_safe(product.version.as_str()))
        } else {
            format!("{}.xml", product.id)
        };
        previous = Some(&product.id);
        write(
            name,
            descriptor::to_xml(&Descriptor::Product(product.clone())),
        )?;
    }
    for suite in &suites {
        write(
            format!("suite-{}.xml", suite.id),
            descriptor::to_xml(&Descriptor::Suite(suite.clone())),
        )?;
    }
    if ldif {
        let text = directory
            .export_ldif()
            .await
            .map_err(|error| CommandFailed(format!("export: {error}")))?;
        write("catalog.ldif".to_owned(), text)?;
    }
    let count = products.len() + suites.len();
    let _ = writeln!(
        output.out,
        "exported {} product(s) and {} suite(s) to {}",
        products.len(),
        suites.len(),
        folder.display()
    );
    Ok(count)
}
