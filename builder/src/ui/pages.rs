//! The dashboard's pages: what each reads (as the signed-in admin) and
//! the tables and charts it shows. Every table of a page is also served
//! as CSV (`?format=csv&table=NAME`) and every page's tables as JSON
//! (`?format=json`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use roleout_directory::Directory;
use roleout_directory::catalog::builds::parse_generalized_time;
use roleout_directory::catalog::{StoredCompletion, StoredReport};
use roleout_directory::machines::{Enrolment, MachineEntry};
use roleout_directory::roles::RoleEntry;
use roleout_model::ids::{MachineId, Sha256, SuiteId};
use roleout_model::protocol::ReportOutcome;
use roleout_model::suite::Suite;
use serde::Serialize;

use super::table::{Action, Cell, Chart, Table};
use super::{Admin, UiSession, checked_post, html_response, plain, secure_headers};
use crate::admin::Output;
use crate::admin::status::{outcome_name, step_name};
use crate::content::ContentStore;
use crate::server::state::ServerState;

/// A machine not seen for this long is listed as not seen lately.
const NOT_SEEN: Duration = Duration::from_secs(24 * 60 * 60);
/// Days the outcomes-over-time chart covers.
const CHART_DAYS: u64 = 14;
/// Days the success rate covers.
const RATE_DAYS: u64 = 7;
/// At most this much of a log is shown (its end).
const LOG_SHOWN: u64 = 1024 * 1024;
/// Reports listed in a machine's history.
const HISTORY: usize = 200;

type Shared = State<Arc<ServerState>>;
type Params = Query<HashMap<String, String>>;

/// A page: its facts, charts and tables.
#[derive(Default)]
struct Page {
    title: String,
    /// Which navigation entry is current.
    section: &'static str,
    facts: Vec<(String, String)>,
    charts: Vec<Chart>,
    tables: Vec<Table>,
    notice: Option<String>,
}

#[derive(Serialize)]
struct ChartView {
    title: String,
    svg: String,
}

#[derive(Serialize)]
struct PageView<'a> {
    title: &'a str,
    section: &'a str,
    user: &'a str,
    csrf: &'a str,
    notice: Option<&'a str>,
    facts: &'a [(String, String)],
    charts: Vec<ChartView>,
    tables: &'a [Table],
}

/// The page as HTML, or one of its tables as CSV, or all as JSON.
fn respond(
    state: &ServerState,
    session: &UiSession,
    params: &HashMap<String, String>,
    page: Page,
) -> Response {
    match params.get("format").map(String::as_str) {
        Some("json") => {
            let object: serde_json::Map<String, serde_json::Value> = page
                .tables
                .iter()
                .map(|table| (table.name.clone(), table.to_json()))
                .collect();
            let mut response = axum::Json(serde_json::Value::Object(object)).into_response();
            secure_headers(&mut response);
            response
        }
        Some("csv") => {
            let wanted = params.get("table");
            let Some(table) = page
                .tables
                .iter()
                .find(|table| wanted.is_none_or(|name| &table.name == name))
            else {
                return plain(StatusCode::NOT_FOUND, "This page has no such table.");
            };
            match table.to_csv() {
                Ok(text) => {
                    let mut response = text.into_response();
                    let headers = response.headers_mut();
                    headers.insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/csv; charset=utf-8"),
                    );
                    if let Ok(value) = HeaderValue::from_str(&format!(
                        "attachment; filename=\"{}.csv\"",
                        table.name
                    )) {
                        headers.insert(header::CONTENT_DISPOSITION, value);
                    }
                    secure_headers(&mut response);
                    response
                }
                Err(_) => plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "The table cannot be written as CSV.",
                ),
            }
        }
        Some(other) => plain(
            StatusCode::BAD_REQUEST,
            &format!("Unknown format {other:?}: csv or json."),
        ),
        None => {
            let view = PageView {
                title: &page.title,
                section: page.section,
                user: &session.user,
                csrf: &session.csrf,
                notice: page.notice.as_deref(),
                facts: &page.facts,
                charts: page
                    .charts
                    .iter()
                    .map(|chart| ChartView {
                        title: chart.title.clone(),
                        svg: chart.svg(),
                    })
                    .collect(),
                tables: &page.tables,
            };
            match tera::Context::from_serialize(&view) {
                Ok(context) => state.dashboard.render("page.html", &context),
                Err(_) => plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "The page cannot be shown.",
                ),
            }
        }
    }
}

/// A page that could not be read: the reason, as the admin may read it.
fn failed(what: &str, error: impl std::fmt::Display) -> Response {
    tracing::warn!(%error, "dashboard: cannot read {what}");
    plain(
        StatusCode::BAD_GATEWAY,
        &format!("Cannot read {what} from the directory: {error}"),
    )
}

fn outcome_cell(outcome: ReportOutcome) -> Cell {
    let name = outcome_name(outcome);
    let class = match outcome {
        ReportOutcome::Success | ReportOutcome::SuccessRebootRequired => "success",
        ReportOutcome::Failed | ReportOutcome::Blocked => "failed",
        _ => "other",
    };
    Cell::text(name).class(class)
}

fn is_failure(outcome: ReportOutcome) -> bool {
    matches!(outcome, ReportOutcome::Failed | ReportOutcome::Blocked)
}

/// Why a report failed, in one line: its first evidence line, else how
/// its command ended.
fn reason(report: &StoredReport) -> String {
    if let Some(line) = report.evidence.first() {
        return crate::admin::shown(line);
    }
    match (report.exit_code, report.signal, report.outcome) {
        (_, _, ReportOutcome::Blocked) => "blocked by a failed requirement".to_owned(),
        (Some(code), _, _) => format!("exit code {code}"),
        (None, Some(signal), _) => format!("signal {signal}"),
        _ => "no exit code".to_owned(),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|since| since.as_secs())
        .unwrap_or(0)
}

/// `3 h ago` for a Unix time.
fn age(seconds: u64, now: u64) -> String {
    let ago = now.saturating_sub(seconds);
    match ago {
        0..60 => format!("{ago} s ago"),
        60..3600 => format!("{} min ago", ago / 60),
        3600..86400 => format!("{} h ago", ago / 3600),
        _ => format!("{} d ago", ago / 86400),
    }
}

fn last_seen_seconds(entry: &MachineEntry) -> Option<u64> {
    entry
        .last_seen
        .as_deref()
        .and_then(parse_generalized_time)
        .map(|time| time.unix_seconds())
}

/// A machine's enrolment state, or `-`.
fn enrolment_text(entry: &MachineEntry) -> String {
    entry
        .enrolment
        .map(|state| state.to_string())
        .unwrap_or_else(|| "-".to_owned())
}

fn machine_link(name: &MachineId) -> Cell {
    Cell::link(name.to_string(), format!("/ui/machines/{name}"))
}

/// The names of the roles whose group lists `dn`, sorted.
fn roles_of(roles: &[RoleEntry], dn: &str) -> Vec<String> {
    let mut held: Vec<String> = roles
        .iter()
        .filter(|role| role.has_member(dn))
        .map(|role| role.role.name.to_string())
        .collect();
    held.sort_unstable();
    held
}

/// The latest report per machine, suite and component.
fn latest(reports: &[StoredReport]) -> BTreeMap<(MachineId, SuiteId, String), &StoredReport> {
    // Oldest first: the last one kept per key is its latest.
    let mut latest = BTreeMap::new();
    for report in reports {
        latest.insert(
            (
                report.machine.clone(),
                report.suite.clone(),
                report.component.to_string(),
            ),
            report,
        );
    }
    latest
}

/// The machines, roles and reports of the whole fleet: three searches.
struct Fleet {
    machines: Vec<MachineEntry>,
    roles: Vec<RoleEntry>,
    reports: Vec<StoredReport>,
    completions: Vec<StoredCompletion>,
}

impl Fleet {
    /// The machines, the roles, and the reports finished since `since`
    /// (every report when `None`).
    async fn read(
        directory: &Directory,
        since: Option<roleout_model::protocol::Timestamp>,
    ) -> Result<Fleet, Response> {
        let machines = directory
            .machines()
            .await
            .map_err(|error| failed("the machines", error))?;
        let roles = directory
            .role_entries()
            .await
            .map_err(|error| failed("the roles", error))?;
        let (reports, completions) = match since {
            Some(since) => directory.reports_since(since).await,
            None => directory.all_reports().await,
        }
        .map_err(|error| failed("the reports", error))?;
        Ok(Fleet {
            machines,
            roles,
            reports,
            completions,
        })
    }
}

/// `GET /ui/`: what is going on.
pub(super) async fn overview(
    State(state): Shared,
    Admin(session): Admin,
    Query(params): Params,
) -> Response {
    let directory = &session.directory;
    let Fleet {
        machines,
        roles,
        reports,
        completions,
    } = match Fleet::read(
        directory,
        roleout_model::protocol::Timestamp::from_unix_seconds(
            unix_now().saturating_sub(CHART_DAYS * 86400),
        ),
    )
    .await
    {
        Ok(fleet) => fleet,
        Err(answer) => return answer,
    };
    let deployments = match directory.deployments().await {
        Ok(deployments) => deployments,
        Err(error) => return failed("the deployments", error),
    };
    let now = unix_now();
    let mut page = Page {
        title: "Overview".to_owned(),
        section: "overview",
        ..Page::default()
    };

    // Runs in flight: a machine whose latest reports for a suite are for a
    // build its last run summary is not about.
    let completed: HashMap<(&MachineId, &SuiteId), &StoredCompletion> = completions
        .iter()
        .map(|completion| ((&completion.machine, &completion.suite), completion))
        .collect();
    let mut last_per_run: BTreeMap<(&MachineId, &SuiteId), &StoredReport> = BTreeMap::new();
    for report in &reports {
        last_per_run.insert((&report.machine, &report.suite), report);
    }
    let mut in_flight = Table::new(
        "runs",
        "Runs in flight",
        &["machine", "suite", "build", "last step", "last report"],
        "No run is in flight.",
    );
    for ((machine, suite), report) in &last_per_run {
        let done = completed
            .get(&(*machine, *suite))
            .is_some_and(|completion| completion.build_digest == report.build_digest);
        if !done {
            in_flight.push(vec![
                machine_link(machine),
                Cell::text(suite.to_string()),
                Cell::text(report.build_digest.as_str()[..12].to_owned()),
                Cell::text(format!("{} {}", report.component, step_name(report))),
                Cell::text(age(report.finished_at.unix_seconds(), now)),
            ]);
        }
    }
    let mut jobs = Table::new(
        "deployments",
        "Deployments in flight",
        &["job", "image", "targets", "where they stand", "started by"],
        "No deployment is in flight.",
    );
    for job in &deployments {
        if job.targets.iter().all(|target| target.phase.is_final()) {
            continue;
        }
        let mut phases: BTreeMap<String, usize> = BTreeMap::new();
        for target in &job.targets {
            *phases.entry(target.phase.to_string()).or_default() += 1;
        }
        jobs.push(vec![
            Cell::text(job.deployment.id.as_str().to_owned()),
            Cell::text(job.deployment.image.to_string()),
            Cell::text(job.targets.len().to_string()),
            Cell::text(
                phases
                    .iter()
                    .map(|(phase, count)| format!("{count} {phase}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            Cell::text(job.deployment.started_by.clone()),
        ]);
    }

    // Success rate of install steps over the last days.
    let rate_since = now.saturating_sub(RATE_DAYS * 86400);
    let (mut succeeded, mut failed_steps) = (0u64, 0u64);
    for report in reports
        .iter()
        .filter(|report| report.finished_at.unix_seconds() >= rate_since)
    {
        match report.outcome {
            ReportOutcome::Success | ReportOutcome::SuccessRebootRequired => succeeded += 1,
            ReportOutcome::Failed | ReportOutcome::Blocked => failed_steps += 1,
            _ => {}
        }
    }
    let rate = if succeeded + failed_steps == 0 {
        "no steps ran".to_owned()
    } else {
        format!(
            "{:.1}% ({succeeded} of {} steps)",
            100.0 * succeeded as f64 / (succeeded + failed_steps) as f64,
            succeeded + failed_steps
        )
    };

    // Failures now: each component's latest report of the window, grouped.
    let latest = latest(&reports);
    let mut groups: BTreeMap<(String, String, String), BTreeSet<MachineId>> = BTreeMap::new();
    for report in latest.values().filter(|report| is_failure(report.outcome)) {
        groups
            .entry((
                report.component.to_string(),
                step_name(report),
                reason(report),
            ))
            .or_default()
            .insert(report.machine.clone());
    }
    let mut failures = Table::new(
        "failures",
        "Failures by product, step and reason",
        &["product", "step", "reason", "machines", "which"],
        "No component is failing.",
    );
    let mut sorted: Vec<_> = groups.into_iter().collect();
    sorted.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
    for ((product, step, why), failing) in sorted {
        let which: Vec<String> = failing.iter().map(ToString::to_string).collect();
        let mut cell = Cell::text(which.join(", "));
        if let Some(first) = failing.iter().next() {
            cell.link = Some(format!("/ui/machines/{first}"));
        }
        failures.push(vec![
            Cell::text(product),
            Cell::text(step),
            Cell::text(why).class("failed"),
            Cell::text(failing.len().to_string()),
            cell,
        ]);
    }

    let mut unseen = Table::new(
        "unseen",
        "Machines not seen lately (24 h)",
        &["machine", "roles", "enrolment", "last seen"],
        "Every enabled machine was seen in the last 24 hours.",
    );
    let mut pending = 0;
    let mut enabled = 0;
    for entry in &machines {
        if entry.enrolment == Some(Enrolment::Pending) {
            pending += 1;
        }
        if !entry.enabled {
            continue;
        }
        enabled += 1;
        let seen = last_seen_seconds(entry);
        if seen.is_none_or(|seen| now.saturating_sub(seen) >= NOT_SEEN.as_secs()) {
            unseen.push(vec![
                machine_link(&entry.machine.name),
                Cell::text(roles_of(&roles, &entry.dn).join(", ")),
                Cell::text(enrolment_text(entry)),
                Cell::text(
                    seen.map(|seen| age(seen, now))
                        .unwrap_or_else(|| "never".to_owned()),
                ),
            ]);
        }
    }

    // Charts: outcomes per day, per product (latest), per role (latest).
    let mut over_time = Chart::new(&format!("Step outcomes per day, last {CHART_DAYS} days"));
    let today = now / 86400;
    for day in (0..CHART_DAYS).rev() {
        over_time.category(&day_label(today.saturating_sub(day)));
    }
    let chart_since = (today + 1).saturating_sub(CHART_DAYS) * 86400;
    for report in reports
        .iter()
        .filter(|report| report.finished_at.unix_seconds() >= chart_since)
    {
        over_time.add(
            &day_label(report.finished_at.unix_seconds() / 86400),
            &outcome_name(report.outcome),
        );
    }
    let mut per_product = Chart::new("Latest outcome per product");
    let mut per_role = Chart::new("Latest outcome per role");
    let dn_of: HashMap<&MachineId, &str> = machines
        .iter()
        .map(|entry| (&entry.machine.name, entry.dn.as_str()))
        .collect();
    for ((machine, _, component), report) in &latest {
        let outcome = outcome_name(report.outcome);
        per_product.add(component, &outcome);
        let held = dn_of
            .get(machine)
            .map(|dn| roles_of(&roles, dn))
            .unwrap_or_default();
        if held.is_empty() {
            per_role.add("(no role)", &outcome);
        }
        for role in held {
            per_role.add(&role, &outcome);
        }
    }

    page.facts = vec![
        ("Machines".to_owned(), machines.len().to_string()),
        ("Enabled".to_owned(), enabled.to_string()),
        ("Pending enrolments".to_owned(), pending.to_string()),
        (format!("Success rate, last {RATE_DAYS} days"), rate),
        (
            "Runs in flight".to_owned(),
            in_flight.rows.len().to_string(),
        ),
        (
            "Deployments in flight".to_owned(),
            jobs.rows.len().to_string(),
        ),
        (
            "Failing components".to_owned(),
            failures.rows.len().to_string(),
        ),
        ("Not seen lately".to_owned(), unseen.rows.len().to_string()),
    ];
    page.charts = vec![over_time, per_product, per_role];
    page.tables = vec![failures, in_flight, jobs, unseen];
    respond(&state, &session, &params, page)
}

/// `2026-12-05` for a day number since the epoch.
fn day_label(day: u64) -> String {
    roleout_model::protocol::Timestamp::from_unix_seconds(day * 86400)
        .map(|time| time.to_string().chars().take(10).collect())
        .unwrap_or_else(|| day.to_string())
}

/// `GET /ui/suites`: per suite and role set, the build and what each
/// product gets.
pub(super) async fn suites(
    State(state): Shared,
    Admin(session): Admin,
    Query(params): Params,
) -> Response {
    let directory = &session.directory;
    let builds = match directory.builds(None).await {
        Ok(builds) => builds,
        Err(error) => return failed("the builds", error),
    };
    let hierarchy = match directory.roles().await {
        Ok(hierarchy) => hierarchy,
        Err(error) => return failed("the roles", error),
    };
    let now = unix_now();
    let mut summary = Table::new(
        "builds",
        "Builds",
        &[
            "suite", "role set", "version", "serial", "digest", "built", "products",
        ],
        "Nothing is built yet: builds are made when machines ask, or with `build`.",
    );
    let mut contents = Table::new(
        "contents",
        "What each role set gets",
        &[
            "suite",
            "role set",
            "product",
            "version",
            "objects (slot: role)",
        ],
        "No build holds a product.",
    );
    let mut sources = HashMap::new();
    for build in &builds {
        let suite: Option<Suite> = serde_json::from_slice(&build.canonical).ok();
        summary.push(vec![
            Cell::text(build.suite.to_string()),
            Cell::text(build.role_set.clone()),
            Cell::text(
                suite
                    .as_ref()
                    .map(|suite| suite.version.to_string())
                    .unwrap_or_else(|| "unreadable".to_owned()),
            ),
            Cell::text(build.serial.to_string()),
            Cell::text(build.digest.as_str()[..12].to_owned()),
            Cell::text(age(build.built_at.unix_seconds(), now)),
            Cell::text(
                suite
                    .as_ref()
                    .map(|suite| suite.products.len().to_string())
                    .unwrap_or_default(),
            ),
        ]);
        let Some(suite) = suite else {
            continue;
        };
        // Which role's version of each object: the same assembly from the
        // same sources gives it (a build holds only the result).
        let names: Vec<_> = build
            .role_set
            .split('+')
            .filter_map(|name| roleout_model::ids::RoleName::new(name).ok())
            .collect();
        // Each suite's sources are read once (two searches), whatever the
        // number of its role sets.
        if !sources.contains_key(&build.suite) {
            let read = directory.load_suite_sources(&build.suite).await.ok();
            sources.insert(build.suite.clone(), read);
        }
        let loaded = sources.get(&build.suite).and_then(Option::as_ref);
        let provenance = match (hierarchy.effective(names), loaded) {
            (Ok(roles), Some((source, products))) => {
                roleout_directory::catalog::read::assemble(source, products, &roles)
                    .ok()
                    .map(|assembled| {
                        assembled
                            .product_provenance
                            .iter()
                            .map(|(product, provenance)| {
                                (
                                    product.to_string(),
                                    crate::admin::plan::provenance_line(provenance),
                                )
                            })
                            .collect::<HashMap<_, _>>()
                    })
            }
            _ => None,
        };
        for product in &suite.products {
            let objects = provenance
                .as_ref()
                .and_then(|lines| lines.get(product.id.as_str()).cloned())
                .unwrap_or_else(|| "-".to_owned());
            contents.push(vec![
                Cell::text(build.suite.to_string()),
                Cell::text(build.role_set.clone()),
                Cell::text(product.id.to_string()),
                Cell::text(product.version.to_string()),
                Cell::text(objects),
            ]);
        }
    }
    let page = Page {
        title: "Suites and roles".to_owned(),
        section: "suites",
        facts: vec![("Builds".to_owned(), builds.len().to_string())],
        tables: vec![summary, contents],
        ..Page::default()
    };
    respond(&state, &session, &params, page)
}

/// `GET /ui/machines`: every machine.
pub(super) async fn machines(
    State(state): Shared,
    Admin(session): Admin,
    Query(params): Params,
) -> Response {
    let Fleet {
        machines,
        roles,
        reports,
        ..
    } = match Fleet::read(&session.directory, None).await {
        Ok(fleet) => fleet,
        Err(answer) => return answer,
    };
    let mut last: HashMap<&MachineId, &StoredReport> = HashMap::new();
    for report in &reports {
        last.insert(&report.machine, report);
    }
    let now = unix_now();
    let mut table = Table::new(
        "machines",
        "Machines",
        &[
            "machine",
            "roles",
            "enrolment",
            "enabled",
            "last seen",
            "last report",
            "outcome",
        ],
        "No machine is in the directory.",
    );
    let mut sorted: Vec<&MachineEntry> = machines.iter().collect();
    sorted.sort_by(|a, b| a.machine.name.cmp(&b.machine.name));
    for entry in sorted {
        let report = last.get(&entry.machine.name);
        table.push(vec![
            machine_link(&entry.machine.name),
            Cell::text(roles_of(&roles, &entry.dn).join(", ")),
            Cell::text(enrolment_text(entry)),
            Cell::text(if entry.enabled { "yes" } else { "no" }),
            Cell::text(
                last_seen_seconds(entry)
                    .map(|seen| age(seen, now))
                    .unwrap_or_else(|| "never".to_owned()),
            ),
            Cell::text(
                report
                    .map(|report| {
                        format!(
                            "{}/{} {}",
                            report.suite,
                            report.component,
                            step_name(report)
                        )
                    })
                    .unwrap_or_else(|| "-".to_owned()),
            ),
            report
                .map(|report| outcome_cell(report.outcome))
                .unwrap_or_else(|| Cell::text("-")),
        ]);
    }
    let page = Page {
        title: "Machines".to_owned(),
        section: "machines",
        facts: vec![("Machines".to_owned(), machines.len().to_string())],
        tables: vec![table],
        ..Page::default()
    };
    respond(&state, &session, &params, page)
}

async fn machine_entry(directory: &Directory, name: &str) -> Result<MachineEntry, Response> {
    let missing = || plain(StatusCode::NOT_FOUND, "There is no such machine.");
    let name = MachineId::new(name).map_err(|_| missing())?;
    match directory.machine(&name).await {
        Ok(Some(entry)) => Ok(entry),
        Ok(None) => Err(missing()),
        Err(error) => Err(failed("the machine", error)),
    }
}

/// `GET /ui/machines/{name}`: a machine, its runs and each component's
/// evidence.
pub(super) async fn machine(
    State(state): Shared,
    Admin(session): Admin,
    Path(name): Path<String>,
    Query(params): Params,
) -> Response {
    let directory = &session.directory;
    let entry = match machine_entry(directory, &name).await {
        Ok(entry) => entry,
        Err(answer) => return answer,
    };
    let name = entry.machine.name.clone();
    let roles = match directory.machine_roles(&entry.dn).await {
        Ok(roles) => roles,
        Err(error) => return failed("the machine's roles", error),
    };
    // Its reports and run summaries, in one search.
    let (reports, mut completions) = match directory.machine_history(&name).await {
        Ok(found) => found,
        Err(error) => return failed("the machine's reports", error),
    };
    completions.sort_by(|a, b| a.suite.cmp(&b.suite));
    let mut runs = Table::new(
        "runs",
        "Last runs",
        &[
            "suite",
            "build",
            "installed",
            "skipped",
            "failed",
            "blocked",
            "reboot required",
        ],
        "No run has ended yet.",
    );
    for completion in &completions {
        let summary = &completion.summary;
        runs.push(vec![
            Cell::text(completion.suite.to_string()),
            Cell::text(completion.build_digest.as_str()[..12].to_owned()),
            Cell::text(summary.installed.to_string()),
            Cell::text(summary.skipped.to_string()),
            Cell::text(summary.failed.to_string()).class(if summary.failed > 0 {
                "failed"
            } else {
                "success"
            }),
            Cell::text(summary.blocked.to_string()),
            Cell::text(if summary.reboot_required { "yes" } else { "no" }),
        ]);
    }
    let now = unix_now();
    let mut components = Table::new(
        "components",
        "Components (latest step of each)",
        &[
            "suite",
            "component",
            "step",
            "outcome",
            "ended",
            "evidence",
            "finished",
            "log",
        ],
        "This machine has not reported yet.",
    );
    for ((_, suite, component), report) in latest(&reports) {
        let ended = match (report.exit_code, report.signal) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(signal)) => format!("signal {signal}"),
            (None, None) => "-".to_owned(),
        };
        let evidence: Vec<String> = report
            .evidence
            .iter()
            .map(|line| crate::admin::shown(line))
            .collect();
        components.push(vec![
            Cell::text(suite.to_string()),
            Cell::text(component),
            Cell::text(step_name(report)),
            outcome_cell(report.outcome),
            Cell::text(ended),
            Cell::text(if evidence.is_empty() {
                "-".to_owned()
            } else {
                evidence.join(" | ")
            }),
            Cell::text(age(report.finished_at.unix_seconds(), now)),
            match &report.log_digest {
                Some(digest) => Cell::link("log", format!("/ui/machines/{name}/logs/{digest}")),
                None => Cell::text("-"),
            },
        ]);
    }
    let mut history = Table::new(
        "history",
        "Reports, newest first",
        &[
            "finished",
            "suite",
            "component",
            "step",
            "outcome",
            "duration (ms)",
        ],
        "No report is kept.",
    );
    for report in reports.iter().rev().take(HISTORY) {
        history.push(vec![
            Cell::text(report.finished_at.to_string()),
            Cell::text(report.suite.to_string()),
            Cell::text(report.component.to_string()),
            Cell::text(step_name(report)),
            outcome_cell(report.outcome),
            Cell::text(report.duration_ms.to_string()),
        ]);
    }
    let mut facts = vec![
        (
            "Roles".to_owned(),
            if roles.is_empty() {
                "none".to_owned()
            } else {
                roles
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        ),
        ("Enrolment".to_owned(), enrolment_text(&entry)),
        (
            "Enabled".to_owned(),
            if entry.enabled { "yes" } else { "no" }.to_owned(),
        ),
        (
            "Last seen".to_owned(),
            last_seen_seconds(&entry)
                .map(|seen| age(seen, now))
                .unwrap_or_else(|| "never".to_owned()),
        ),
        (
            "Key".to_owned(),
            entry
                .certificate_fingerprint
                .as_ref()
                .map(|digest| format!("SHA-256 {digest}"))
                .unwrap_or_else(|| "none enrolled".to_owned()),
        ),
    ];
    if let Some(address) = &entry.machine.ip {
        facts.push(("Address".to_owned(), address.clone()));
    }
    let page = Page {
        title: format!("Machine {name}"),
        section: "machines",
        facts,
        tables: vec![components, runs, history],
        ..Page::default()
    };
    respond(&state, &session, &params, page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_line_is_evidence_when_quoted_with_its_number() {
        let evidence = "failed: exit code 0 but its output says it failed: line 2: ERROR: refused (exit code 0)";
        assert!(quotes_line(evidence, "ERROR: refused"));
        assert!(!quotes_line(evidence, "2: ERROR: refused"));
        assert!(!quotes_line(evidence, "exit code 0"));
        assert!(!quotes_line(evidence, ""));
    }
}

#[derive(Serialize)]
struct LogView<'a> {
    title: String,
    section: &'a str,
    user: &'a str,
    csrf: &'a str,
    machine: &'a str,
    component: String,
    outcome: String,
    evidence: Vec<String>,
    lines: Vec<LogLine>,
    truncated: bool,
}

#[derive(Serialize)]
struct LogLine {
    number: usize,
    text: String,
    evidence: bool,
}

/// `GET /ui/machines/{name}/logs/{digest}`: a log a report of the machine
/// names, with the lines that decided its outcome marked. Logs arrive
/// redacted: the agent replaces every password value with `********`
/// before a log leaves the machine, and roleoutd never knows the values.
pub(super) async fn log(
    State(state): Shared,
    Admin(session): Admin,
    Path((name, digest)): Path<(String, String)>,
) -> Response {
    let directory = &session.directory;
    let entry = match machine_entry(directory, &name).await {
        Ok(entry) => entry,
        Err(answer) => return answer,
    };
    let missing = || {
        plain(
            StatusCode::NOT_FOUND,
            "No report of this machine names such a log.",
        )
    };
    let Ok(digest) = Sha256::new(&digest) else {
        return missing();
    };
    let reports = match directory.reports_for_machine(&entry.machine.name).await {
        Ok(reports) => reports,
        Err(error) => return failed("the machine's reports", error),
    };
    // Only a log one of this machine's reports names is shown.
    let Some(report) = reports
        .iter()
        .rev()
        .find(|report| report.log_digest.as_ref() == Some(&digest))
    else {
        return missing();
    };
    let store = match ContentStore::new(state.content_dir.clone()) {
        Ok(store) => store,
        Err(error) => return failed("the content store", error),
    };
    let (mut file, length) = match store.open(&digest) {
        Ok(Some(found)) => found,
        Ok(None) => {
            return plain(
                StatusCode::NOT_FOUND,
                "The log is no longer in the content store.",
            );
        }
        Err(error) => return failed("the log", error),
    };
    let truncated = length > LOG_SHOWN;
    if truncated {
        use std::io::Seek;
        if file
            .seek(std::io::SeekFrom::Start(length - LOG_SHOWN))
            .is_err()
        {
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "The log cannot be read.");
        }
    }
    let mut bytes = Vec::new();
    if file.take(LOG_SHOWN).read_to_end(&mut bytes).is_err() {
        return plain(StatusCode::INTERNAL_SERVER_ERROR, "The log cannot be read.");
    }
    let text = String::from_utf8_lossy(&bytes);
    let evidence: Vec<String> = report
        .evidence
        .iter()
        .map(|line| crate::admin::shown(line))
        .collect();
    let lines = text
        .lines()
        .enumerate()
        .map(|(index, line)| {
            let shown = crate::admin::shown(line);
            LogLine {
                number: index + 1,
                evidence: report
                    .evidence
                    .iter()
                    .any(|evidence| quotes_line(evidence, line)),
                text: shown,
            }
        })
        .collect();
    let view = LogView {
        title: format!("Log of {} on {}", report.component, entry.machine.name),
        section: "machines",
        user: &session.user,
        csrf: &session.csrf,
        machine: entry.machine.name.as_str(),
        component: format!(
            "{}/{} {}",
            report.suite,
            report.component,
            step_name(report)
        ),
        outcome: outcome_name(report.outcome),
        evidence,
        lines,
        truncated,
    };
    match tera::Context::from_serialize(&view) {
        Ok(context) => state.dashboard.render("log.html", &context),
        Err(_) => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The page cannot be shown.",
        ),
    }
}

/// Whether `evidence` quotes `line` as the agent quotes a matched line
/// (`... line 2: TEXT`).
fn quotes_line(evidence: &str, line: &str) -> bool {
    if line.trim().is_empty() {
        return false;
    }
    evidence.match_indices(line).any(|(at, _)| {
        evidence[..at]
            .strip_suffix(": ")
            .map(|before| before.trim_end_matches(|c: char| c.is_ascii_digit()))
            .is_some_and(|before| before.ends_with("line "))
    })
}

/// `GET /ui/enrolments`: machines waiting for an admin, each with its
/// key's fingerprint and buttons to approve or deny it.
pub(super) async fn enrolments(
    State(state): Shared,
    Admin(session): Admin,
    Query(params): Params,
) -> Response {
    let machines = match session.directory.machines().await {
        Ok(machines) => machines,
        Err(error) => return failed("the machines", error),
    };
    let now = unix_now();
    let mut table = Table::new(
        "pending",
        "Waiting for approval",
        &["machine", "address", "key", "enrolled", "decision"],
        "No machine is waiting for approval.",
    );
    let mut pending: Vec<&MachineEntry> = machines
        .iter()
        .filter(|entry| entry.enrolment == Some(Enrolment::Pending))
        .collect();
    pending.sort_by(|a, b| a.machine.name.cmp(&b.machine.name));
    for entry in pending {
        let name = &entry.machine.name;
        let fingerprint = entry
            .certificate_fingerprint
            .clone()
            .or_else(|| entry.certificate.as_deref().map(Sha256::of));
        let mut decision = Cell::text("");
        if let Some(fingerprint) = &fingerprint {
            decision = decision.action(Action {
                url: format!("/ui/enrolments/{name}/approve"),
                label: "Approve".to_owned(),
                description: format!("Approve {name} with key {}", &fingerprint.as_str()[..16]),
                fields: vec![("fingerprint".to_owned(), fingerprint.to_string())],
            });
        }
        decision = decision.action(Action {
            url: format!("/ui/enrolments/{name}/deny"),
            label: "Deny".to_owned(),
            description: format!("Deny {name}"),
            fields: Vec::new(),
        });
        table.push(vec![
            machine_link(name),
            Cell::text(entry.machine.ip.clone().unwrap_or_else(|| "-".to_owned())),
            Cell::text(
                fingerprint
                    .map(|digest| format!("SHA-256 {digest}"))
                    .unwrap_or_else(|| "no key yet".to_owned()),
            ),
            Cell::text(
                last_seen_seconds(entry)
                    .map(|seen| age(seen, now))
                    .unwrap_or_else(|| "-".to_owned()),
            ),
            decision,
        ]);
    }
    let page = Page {
        title: "Enrolments".to_owned(),
        section: "enrolments",
        notice: params
            .get("done")
            .map(|done| match done.as_str() {
                "approved" => {
                    "The machine is approved: it may authenticate from its next request.".to_owned()
                }
                "denied" => "The machine is denied: it cannot authenticate.".to_owned(),
                _ => String::new(),
            })
            .filter(|notice| !notice.is_empty()),
        facts: vec![("Waiting".to_owned(), table.rows.len().to_string())],
        tables: vec![table],
        ..Page::default()
    };
    respond(&state, &session, &params, page)
}

/// Runs an admin command as the session's account and says what it said.
async fn decide(
    state: &ServerState,
    headers: &HeaderMap,
    name: &str,
    form: &HashMap<String, String>,
    approve: bool,
) -> Response {
    let session = match checked_post(state, headers, form) {
        Ok(session) => session,
        Err(refused) => return refused,
    };
    let Ok(machine) = MachineId::new(name) else {
        return plain(StatusCode::NOT_FOUND, "There is no such machine.");
    };
    // The admin commands themselves, as the session's account.
    let mut out = Vec::new();
    let mut err = Vec::new();
    let mut output = Output {
        out: &mut out,
        err: &mut err,
    };
    let done = if approve {
        // Only the key the admin saw is approved: a key swapped in since
        // the page was shown is refused.
        let fingerprint = form.get("fingerprint").map(String::as_str);
        crate::admin::machines::approve(&session.directory, &machine, fingerprint, &mut output)
            .await
    } else {
        crate::admin::machines::disable(&session.directory, &machine, &mut output).await
    };
    match done {
        Ok(()) => {
            tracing::info!(user = %session.user, machine = %machine, approved = approve, "dashboard enrolment decision");
            let mut response = Redirect::to(if approve {
                "/ui/enrolments?done=approved"
            } else {
                "/ui/enrolments?done=denied"
            })
            .into_response();
            secure_headers(&mut response);
            response
        }
        Err(problem) => html_response(
            StatusCode::CONFLICT,
            format!(
                "<!doctype html><title>Not done</title><p>{}</p><p><a href=\"/ui/enrolments\">Back to enrolments</a></p>",
                tera::escape_html(&problem.0)
            ),
        ),
    }
}

/// `POST /ui/enrolments/{name}/approve`.
pub(super) async fn approve_enrolment(
    State(state): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    decide(&state, &headers, &name, &form, true).await
}

/// `POST /ui/enrolments/{name}/deny`.
pub(super) async fn deny_enrolment(
    State(state): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    decide(&state, &headers, &name, &form, false).await
}
