//! Prometheus metrics: what this process did, counted through the `metrics` facade and
//! rendered in the text format by `metrics-exporter-prometheus`, at `GET /metrics` on the web
//! listener and, with `metrics_listen`, on an address of its own (how a `baler worker` is
//! scraped). Labels are bounded: route templates, never raw paths; providers, statuses,
//! formats and outcomes, never project names.
//!
//! `baler_queue_items{state}` is read from the database when scraped, so every process
//! reports the same queue.

use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const WEBHOOK_DELIVERIES: &str = "baler_webhook_deliveries_total";
pub const WEBHOOK_DURATION: &str = "baler_webhook_duration_seconds";
pub const QUEUE_ITEMS: &str = "baler_queue_items";
pub const JOBS: &str = "baler_jobs_total";
pub const JOB_DURATION: &str = "baler_job_duration_seconds";
pub const FETCH_DURATION: &str = "baler_fetch_duration_seconds";
pub const ARCHIVE_BYTES: &str = "baler_archive_bytes_total";
pub const DOWNLOADS: &str = "baler_downloads_total";
pub const HTTP_REQUESTS: &str = "baler_http_requests_total";

/// Histogram buckets for requests (seconds).
const FAST: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Histogram buckets for jobs and fetches (seconds).
const SLOW: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];

/// The process's recorder, installed on first use (one per process: the facade is global).
fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(WEBHOOK_DURATION.into()), FAST)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full(JOB_DURATION.into()), SLOW))
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full(FETCH_DURATION.into()), SLOW))
            .expect("bucket lists are not empty")
            .install_recorder()
            .expect("baler installs the only metrics recorder");
        describe();
        handle
    })
}

fn describe() {
    describe_counter!(
        WEBHOOK_DELIVERIES,
        "Webhook deliveries answered, by the project's provider and the HTTP status."
    );
    describe_histogram!(
        WEBHOOK_DURATION,
        metrics::Unit::Seconds,
        "Time to answer a webhook delivery."
    );
    describe_gauge!(
        QUEUE_ITEMS,
        "Queue items by state, read from the database when scraped."
    );
    describe_counter!(JOBS, "Release jobs this process ran, by outcome.");
    describe_histogram!(
        JOB_DURATION,
        metrics::Unit::Seconds,
        "Time a release job ran."
    );
    describe_histogram!(
        FETCH_DURATION,
        metrics::Unit::Seconds,
        "Time to bring a project's mirror up to date."
    );
    describe_counter!(
        ARCHIVE_BYTES,
        metrics::Unit::Bytes,
        "Bytes of archives published, by format."
    );
    describe_counter!(
        DOWNLOADS,
        "Archive downloads served (whole files or first pieces)."
    );
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by route template and status."
    );
    // Present from the start, so a rate over them is defined before the first event.
    counter!(DOWNLOADS).absolute(0);
}

/// Installs the recorder now (a process calls this when it starts, so that what it does is
/// counted from the start).
pub fn install() {
    handle();
}

pub fn webhook_delivery(provider: &'static str, status: u16, took: Duration) {
    counter!(WEBHOOK_DELIVERIES, "provider" => provider, "status" => status.to_string())
        .increment(1);
    histogram!(WEBHOOK_DURATION).record(took.as_secs_f64());
}

/// How a release job ended.
#[derive(Debug, Clone, Copy)]
pub enum JobOutcome {
    Succeeded,
    Failed,
    TimedOut,
}

pub fn job_finished(outcome: JobOutcome, took: Duration) {
    let outcome = match outcome {
        JobOutcome::Succeeded => "succeeded",
        JobOutcome::Failed => "failed",
        JobOutcome::TimedOut => "timed_out",
    };
    counter!(JOBS, "outcome" => outcome).increment(1);
    histogram!(JOB_DURATION).record(took.as_secs_f64());
}

pub fn fetch_finished(took: Duration) {
    histogram!(FETCH_DURATION).record(took.as_secs_f64());
}

pub fn archive_published(format: &'static str, bytes: u64) {
    counter!(ARCHIVE_BYTES, "format" => format).increment(bytes);
}

pub fn download_served() {
    counter!(DOWNLOADS).increment(1);
}

/// Middleware: counts every answer by its route template (`/files/{project}/{file}`), or
/// `unmatched` when no route matched, never by the raw path.
pub async fn count_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let response = next.run(request).await;
    counter!(HTTP_REQUESTS, "route" => route, "status" => response.status().as_str().to_string())
        .increment(1);
    response
}

/// The Prometheus text, with `baler_queue_items` set from `queue_items` (each state and its
/// count, read from the database by the caller just before).
pub fn render(queue_items: &[(String, i64)]) -> Response {
    let handle = handle();
    for (state, count) in queue_items {
        gauge!(QUEUE_ITEMS, "state" => state.clone()).set(*count as f64);
    }
    handle.run_upkeep();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response()
}
