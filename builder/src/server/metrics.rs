//! What roleoutd counts, served at `GET /metrics` in the Prometheus text
//! format (version 0.0.4): requests by route and status with their
//! durations, authentications (machines' and the dashboard's sign-ins) by
//! outcome, builds with their durations, reports by outcome, and the
//! directory's round trips.
//!
//! Every request passes [`track`], which labels it with the route template
//! it matched (`/v1/suites/{id}`, never the path itself), so the number of
//! series stays bounded whatever callers ask for; paths no route matched
//! share the label `unmatched`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
    TextEncoder,
};
use roleout_directory::Directory;

use crate::server::state::ServerState;

/// Bucket bounds of request durations, in seconds: from a cached answer
/// (a millisecond) to a large payload or a cold build (a minute).
const REQUEST_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Bucket bounds of build durations, in seconds.
const BUILD_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// roleoutd's counters and histograms.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_seconds: HistogramVec,
    authentications: IntCounterVec,
    builds: IntCounterVec,
    build_seconds: Histogram,
    reports: IntCounterVec,
    directory_operations: IntCounter,
    directory_searches: IntCounter,
}

/// What became of an authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    /// A machine's signed challenge (`POST /v1/session`).
    Machine,
    /// An admin signing in to the dashboard.
    Dashboard,
}

impl AuthKind {
    fn label(self) -> &'static str {
        match self {
            AuthKind::Machine => "machine",
            AuthKind::Dashboard => "dashboard",
        }
    }
}

impl Metrics {
    /// Every metric, registered and at zero.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        // The names, labels and buckets are constants: registering them
        // cannot fail, and a failure would be a defect found by every test.
        let requests = IntCounterVec::new(
            Opts::new(
                "roleoutd_http_requests_total",
                "HTTP requests answered, by method, route template and status.",
            ),
            &["method", "route", "status"],
        )
        .expect("a valid counter");
        let request_seconds = HistogramVec::new(
            HistogramOpts::new(
                "roleoutd_http_request_duration_seconds",
                "Time from a request's head to its response's head, by method and route template.",
            )
            .buckets(REQUEST_BUCKETS.to_vec()),
            &["method", "route"],
        )
        .expect("a valid histogram");
        let authentications = IntCounterVec::new(
            Opts::new(
                "roleoutd_authentications_total",
                "Authentications by kind (machine, dashboard) and outcome (accepted or why refused).",
            ),
            &["kind", "outcome"],
        )
        .expect("a valid counter");
        let builds = IntCounterVec::new(
            Opts::new(
                "roleoutd_builds_total",
                "Suite builds asked for while serving, by outcome (built, current, failed).",
            ),
            &["outcome"],
        )
        .expect("a valid counter");
        let build_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "roleoutd_build_duration_seconds",
                "Time to find or make the current build of a suite for a role set.",
            )
            .buckets(BUILD_BUCKETS.to_vec()),
        )
        .expect("a valid histogram");
        let reports = IntCounterVec::new(
            Opts::new(
                "roleoutd_reports_total",
                "Step reports received from machines, by outcome (a resent one counts as duplicate).",
            ),
            &["outcome"],
        )
        .expect("a valid counter");
        let directory_operations = IntCounter::new(
            "roleoutd_directory_operations_total",
            "Operations sent to the directory (searches, reads, adds, modifies, deletes, renames).",
        )
        .expect("a valid counter");
        let directory_searches = IntCounter::new(
            "roleoutd_directory_search_requests_total",
            "Search requests sent to the directory, each page of a paged search counted.",
        )
        .expect("a valid counter");
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(request_seconds.clone()),
            Box::new(authentications.clone()),
            Box::new(builds.clone()),
            Box::new(build_seconds.clone()),
            Box::new(reports.clone()),
            Box::new(directory_operations.clone()),
            Box::new(directory_searches.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric names are distinct");
        }
        Metrics {
            registry,
            requests,
            request_seconds,
            authentications,
            builds,
            build_seconds,
            reports,
            directory_operations,
            directory_searches,
        }
    }

    /// Counts an authentication of `kind` that ended with `outcome`
    /// (`accepted`, or a short reason such as `bad-signature`).
    pub fn authentication(&self, kind: AuthKind, outcome: &str) {
        self.authentications
            .with_label_values(&[kind.label(), outcome])
            .inc();
    }

    /// Counts a build asked for that ended with `outcome` after `seconds`.
    pub fn build(&self, outcome: &str, seconds: f64) {
        self.builds.with_label_values(&[outcome]).inc();
        self.build_seconds.observe(seconds);
    }

    /// Counts a report with `outcome` (its wire name, or `duplicate`).
    pub fn report(&self, outcome: &str) {
        self.reports.with_label_values(&[outcome]).inc();
    }

    /// The text exposition of every metric, with the directory's counters
    /// brought up to date first.
    pub fn render(&self, directory: &Directory) -> String {
        level(&self.directory_operations, directory.operation_count());
        level(&self.directory_searches, directory.search_count());
        let mut buffer = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::warn!(%error, "cannot encode the metrics");
        }
        String::from_utf8_lossy(&buffer).into_owned()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Raises `counter` to `total` (counters only go up; the directory's own
/// count is the truth).
fn level(counter: &IntCounter, total: u64) {
    let current = counter.get();
    if total > current {
        counter.inc_by(total - current);
    }
}

/// `GET /metrics`.
pub async fn metrics(State(state): State<Arc<ServerState>>) -> Response {
    let body = state.metrics.render(&state.directory);
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// Middleware counting and timing every request by its route template.
pub async fn track(
    State(state): State<Arc<ServerState>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|matched| matched.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    state
        .metrics
        .requests
        .with_label_values(&[method.as_str(), route.as_str(), status.as_str()])
        .inc();
    state
        .metrics
        .request_seconds
        .with_label_values(&[method.as_str(), route.as_str()])
        .observe(started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_only_go_up_to_the_directory_count() {
        let counter = IntCounter::new("x_total", "x").expect("counter");
        level(&counter, 5);
        level(&counter, 3);
        assert_eq!(counter.get(), 5);
        level(&counter, 9);
        assert_eq!(counter.get(), 9);
    }

    #[test]
    fn the_exposition_names_each_metric_with_help_and_type() {
        let metrics = Metrics::new();
        metrics.authentication(AuthKind::Machine, "accepted");
        metrics.report("failed");
        metrics.build("built", 0.02);
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&metrics.registry.gather(), &mut buffer)
            .expect("encodes");
        let text = String::from_utf8(buffer).expect("utf-8");
        assert!(text.contains("# TYPE roleoutd_reports_total counter"));
        assert!(text.contains("roleoutd_reports_total{outcome=\"failed\"} 1"));
        assert!(
            text.contains(
                "roleoutd_authentications_total{kind=\"machine\",outcome=\"accepted\"} 1"
            )
        );
        assert!(text.contains("roleoutd_build_duration_seconds_bucket{le=\"0.025\"} 1"));
    }
}
