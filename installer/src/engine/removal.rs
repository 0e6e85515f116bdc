//! Removing what this machine installed: `roleout uninstall`, and the
//! products a run finds no longer assigned.
//!
//! To remove a product the agent needs its uninstall command, the values
//! that command was rendered with and the files it was shipped with, and
//! the server may no longer have any of them (the product left the suite,
//! the machine's role or its group's choice). So when a product is
//! installed the agent keeps, per suite and product, under
//! `STATE/installed/SUITE/PRODUCT/`: `model.json` (the suite's variables and
//! linkage with that one product as installed, and the customized values
//! served with it) and, when the product has an uninstall command,
//! `payload/` (its files, hard links into the payload cache where it can).
//! Both go when the product is removed.
//!
//! A product is removed only when nothing still installed needs it: an
//! installed product whose kept model requires it (prerequisite or
//! co-requisite) holds it back, named, unless forced. A run removes an
//! unassigned product only when its uninstall command says
//! `remove-when-unassigned`; otherwise it is left and the run says so.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use roleout_model::command::Phase;
use roleout_model::ids::{ProductId, Sha256, SuiteId, VariableName};
use roleout_model::product::ProductModel;
use roleout_model::protocol::{ReportOutcome, ReportStep, SuiteDelivery};
use roleout_model::suite::Suite;
use roleout_model::validate::{Validators, resolve_values};
use serde::{Deserialize, Serialize};

use super::{
    EngineError, STATUS_KIND, Settings, prepare_command, queue, render_context, report_kind,
    run_step, state_error, status_report, step_result,
};
use crate::progress::{Event, Reporter};
use crate::state::atomic::{self, PRIVATE_DIR_MODE};
use crate::state::cache::PayloadCache;
use crate::state::journal::{self, Journal, RunId};
use crate::state::outbox::{Outbox, ReportId};

/// What the agent keeps of an installed product (see the module
/// documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct KeptProduct {
    /// The suite as it was installed from, holding only this product.
    pub suite: Suite,
    /// The customized suite values served with it.
    #[serde(default)]
    pub customization: BTreeMap<VariableName, String>,
    /// The build it was installed from.
    pub build: Sha256,
}

impl KeptProduct {
    /// The product.
    pub fn product(&self) -> Option<&ProductModel> {
        self.suite.products.first()
    }
}

fn folder(state_dir: &Path, suite: &SuiteId, product: &ProductId) -> PathBuf {
    state_dir
        .join("installed")
        .join(suite.as_str())
        .join(product.as_str())
}

/// Where the kept files of `product` (of `suite`) are.
pub fn kept_payload_dir(state_dir: &Path, suite: &SuiteId, product: &ProductId) -> PathBuf {
    folder(state_dir, suite, product).join("payload")
}

/// The kept model of `product` of `suite`, if any.
pub fn read_kept(
    state_dir: &Path,
    suite: &SuiteId,
    product: &ProductId,
) -> Result<Option<KeptProduct>, EngineError> {
    let path = folder(state_dir, suite, product).join("model.json");
    match atomic::read_optional(&path).map_err(state_error)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|error| {
            EngineError::Config(format!("{} is not a kept product: {error}", path.display()))
        }),
    }
}

/// Keeps what removing `product` of `delivery` will need (see the module
/// documentation); nothing is written when the same model is kept already.
pub fn keep(
    state_dir: &Path,
    delivery: &SuiteDelivery,
    product: &ProductModel,
    cache: &PayloadCache,
) -> Result<(), EngineError> {
    let suite = &delivery.suite;
    let kept = KeptProduct {
        suite: Suite {
            products: vec![product.clone()],
            pulled_in: Vec::new(),
            ..suite.clone()
        },
        customization: delivery.customization.values.clone(),
        build: delivery.build_digest.clone(),
    };
    if read_kept(state_dir, &suite.id, &product.id)?.is_some_and(|old| old == kept) {
        return Ok(());
    }
    let folder = folder(state_dir, &suite.id, &product.id);
    atomic::ensure_directory(&folder, PRIVATE_DIR_MODE).map_err(state_error)?;
    let payload = folder.join("payload");
    if payload.exists() {
        fs::remove_dir_all(&payload).map_err(|error| {
            EngineError::Config(format!("cannot replace {}: {error}", payload.display()))
        })?;
    }
    if product.commands.contains_key(&Phase::Uninstall) {
        // A product installed before its files were kept (or whose files
        // left the cache since) is kept without them: its uninstall runs
        // with an empty payload folder, as it always did.
        let kept_files = product.fileset.files.iter().try_for_each(|file| {
            let destination = payload.join(&file.path);
            if let Some(parent) = destination.parent() {
                fs::create_dir_all(parent).map_err(|error| error.to_string())?;
            }
            cache
                .materialize(
                    &file.sha256,
                    &destination,
                    file.mode.unwrap_or(crate::state::cache::ENTRY_MODE),
                )
                .map(drop)
                .map_err(|error| error.to_string())
        });
        if kept_files.is_err() {
            let _ = fs::remove_dir_all(&payload);
        }
    }
    let bytes = serde_json::to_vec_pretty(&kept)
        .map_err(|error| EngineError::Config(format!("cannot keep {}: {error}", product.id)))?;
    atomic::write_atomic(&folder.join("model.json"), &bytes, 0o600).map_err(state_error)
}

/// Forgets what was kept of `product` of `suite`.
pub fn forget(state_dir: &Path, suite: &SuiteId, product: &ProductId) {
    let _ = fs::remove_dir_all(folder(state_dir, suite, product));
}

/// Every kept product still recorded installed, with its suite: read once
/// and given to [`needed_by`] for every product about to go.
pub fn installed_models(state_dir: &Path) -> Vec<(SuiteId, KeptProduct)> {
    let mut models = Vec::new();
    for suite in journal::suites(state_dir).unwrap_or_default() {
        let Ok(Some(record)) = journal::read(state_dir, &suite) else {
            continue;
        };
        for product in record.installed.keys() {
            if let Ok(Some(kept)) = read_kept(state_dir, &suite, product) {
                models.push((suite.clone(), kept));
            }
        }
    }
    models
}

/// The installed products (their kept `models`, from
/// [`installed_models`]) that require `product`, leaving out those in
/// `leaving` (removed in the same breath).
pub fn needed_by(
    models: &[(SuiteId, KeptProduct)],
    product: &ProductId,
    leaving: &BTreeSet<ProductId>,
) -> Vec<ProductId> {
    let mut needing: Vec<ProductId> = models
        .iter()
        .filter_map(|(_, kept)| kept.product().cloned())
        .filter(|model| &model.id != product && !leaving.contains(&model.id))
        .filter(|model| {
            model
                .dependencies
                .prerequisites
                .iter()
                .chain(&model.dependencies.corequisites)
                .any(|requirement| &requirement.product == product)
        })
        .map(|model| model.id)
        .collect();
    needing.sort();
    needing.dedup();
    needing
}

/// Runs the uninstall command of `product` (from `suite`, rendered with the
/// response file over `customization`) with `payload_dir` as its payload,
/// queues its report, and on success forgets the product in `journal` and
/// what was kept of it. Returns the outcome.
#[allow(clippy::too_many_arguments)]
pub fn remove(
    settings: &Settings,
    journal: &mut Journal,
    suite: &Suite,
    customization: &BTreeMap<VariableName, String>,
    product: &ProductModel,
    build: &Sha256,
    outbox: &mut Outbox,
    reporter: &dyn Reporter,
) -> Result<ReportOutcome, EngineError> {
    let suite_id = journal.suite().clone();
    let Some(command) = product.commands.get(&Phase::Uninstall) else {
        return Err(EngineError::Config(format!(
            "product {} has no uninstall command",
            product.id
        )));
    };
    let values = resolve_values(
        suite,
        product,
        &settings.given.over_customized(customization),
        &Validators::builtin(),
    )
    .map_err(|errors| EngineError::Config(errors.to_string()))?;
    let kept_payload = kept_payload_dir(&settings.state_dir, &suite_id, &product.id);
    let payload_dir = if kept_payload.is_dir() {
        kept_payload
    } else {
        let dir = settings
            .state_dir
            .join("runs")
            .join("uninstall")
            .join(product.id.as_str());
        atomic::ensure_directory(&dir, PRIVATE_DIR_MODE).map_err(state_error)?;
        dir
    };
    let context = render_context(settings, product, &payload_dir);
    let started = SystemTime::now();
    let result = prepare_command(
        command,
        Phase::Uninstall,
        product,
        &values,
        &context,
        &payload_dir,
    )
    .and_then(|spec| {
        reporter.event(&Event::StepStarted {
            product: product.id.clone(),
            phase: Phase::Uninstall,
            command: spec.command_line(),
        });
        run_step(
            spec,
            command,
            Phase::Uninstall,
            product,
            &values,
            &context,
            &payload_dir,
            // An uninstall is not resumed from records: it is not journaled
            // step by step.
            None,
            reporter,
        )
    });
    let (outcome, detail, report) = step_result(&result);
    reporter.event(&Event::ComponentOutcome {
        product: product.id.clone(),
        phase: Some(Phase::Uninstall),
        outcome,
        detail: detail.clone(),
        output_tail: Vec::new(),
    });
    // An uninstall is a run of its own: a fresh run id keeps the report id
    // unique at the server however often the product is installed and
    // removed again.
    let run = RunId::generate().map_err(state_error)?;
    let id = ReportId::for_step(
        &run,
        &product.id,
        Phase::Uninstall,
        1,
        &report_kind(STATUS_KIND)?,
    )
    .map_err(state_error)?;
    let status = status_report(
        &id,
        &suite_id,
        build,
        &product.id,
        ReportStep::Uninstall,
        outcome,
        report,
        &detail,
        started,
    )?;
    // The report is queued before the journal forgets the product, so a
    // crash between the two loses no report (a new run removes it again).
    queue(outbox, STATUS_KIND, &id, &status)?;
    if outcome == ReportOutcome::Success {
        journal
            .record_uninstalled(&product.id)
            .map_err(state_error)?;
        journal.sync().map_err(state_error)?;
        forget(&settings.state_dir, &suite_id, &product.id);
    }
    Ok(outcome)
}
