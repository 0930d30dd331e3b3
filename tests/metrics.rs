//! `/metrics`: the Prometheus text of what each process did, linted by `promtool check
//! metrics` (Debian's `prometheus` package, Prometheus's own parser) and read back with the
//! official Python client's parser (`prometheus_client.parser`, pinned by `.ci/run`). Routes
//! are labelled by template, never by raw path; the queue gauge is read from the database, so
//! the web process and a worker process report the same queue.

use baler::startup::Role;

use crate::on_both_databases;
use crate::support::git::GitRepo;
use crate::support::metrics::Metrics;
use crate::support::{BalerProcess, ProjectSpec, TestApp, TestDb, free_port, wait_until};

/// One process that serves and works: deliveries, a job, downloads and pages, each counted.
async fn metrics_count_what_the_process_did(db: TestDb) {
    let repo = GitRepo::standard();
    let app = TestApp::builder()
        .database(&db)
        .project(ProjectSpec::github("widget", repo.url()))
        .start()
        .await;
    assert_eq!(
        app.github_push("widget", "refs/tags/v1.0.0", &repo.rev("v1.0.0"))
            .await
            .status(),
        202
    );
    let unknown = app
        .post_hook(
            "no-such-project-4711",
            &[("x-github-event", "push".into())],
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(unknown.status(), 404);
    app.run_queue_until_idle().await;
    let release = app.release("widget", "1.0.0").await;
    let zip = &release["files"][1];
    assert_eq!(zip["format"], "zip");
    for _ in 0..2 {
        app.download(zip["url"].as_str().unwrap()).await;
    }
    assert_eq!(app.get("/projects/widget").await.status(), 200);
    assert_eq!(app.get("/no/such/page-4711").await.status(), 404);

    let metrics = Metrics::scrape(&app.client, &app.url).await;
    let m = |name: &str, labels: &[(&str, &str)]| metrics.value(name, labels);
    assert_eq!(
        m(
            "baler_webhook_deliveries_total",
            &[("provider", "github"), ("status", "202")]
        ),
        1.0
    );
    assert_eq!(
        m(
            "baler_webhook_deliveries_total",
            &[("provider", "unknown"), ("status", "404")]
        ),
        1.0
    );
    assert_eq!(metrics.observations("baler_webhook_duration_seconds"), 2.0);
    assert_eq!(m("baler_queue_items", &[("state", "done")]), 1.0);
    assert_eq!(m("baler_queue_items", &[("state", "pending")]), 0.0);
    assert_eq!(m("baler_queue_items", &[("state", "failed")]), 0.0);
    assert_eq!(m("baler_jobs_total", &[("outcome", "succeeded")]), 1.0);
    assert_eq!(metrics.observations("baler_job_duration_seconds"), 1.0);
    assert_eq!(metrics.observations("baler_fetch_duration_seconds"), 1.0);
    // Both tags are released by the one job: their archives' bytes, by format.
    for format in ["zip", "tar.gz"] {
        let mut bytes = 0.0;
        for version in ["1.0.0", "1.1.0"] {
            let release = app.release("widget", version).await;
            for file in release["files"].as_array().unwrap() {
                if file["format"] == format {
                    bytes += file["size"].as_f64().unwrap();
                }
            }
        }
        assert!(bytes > 0.0);
        assert_eq!(
            m("baler_archive_bytes_total", &[("format", format)]),
            bytes,
            "{format}"
        );
    }
    assert_eq!(m("baler_downloads_total", &[]), 2.0);
    assert_eq!(
        m(
            "baler_http_requests_total",
            &[("route", "/files/{project}/{file}"), ("status", "200")]
        ),
        2.0,
        "{}",
        metrics.text
    );
    assert_eq!(
        m(
            "baler_http_requests_total",
            &[("route", "/projects/{project}"), ("status", "200")]
        ),
        1.0
    );
    assert!(
        m(
            "baler_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        ) >= 1.0
    );
    // Labels never carry what a client sent.
    for raw in ["4711", "widget-1.0.0", "/projects/widget"] {
        assert!(!metrics.text.contains(raw), "{raw} in:\n{}", metrics.text);
    }
}

on_both_databases!(metrics_count_what_the_process_did);

/// A web process and a `baler worker` process: each one's `/metrics` counts what it did (the
/// worker is scraped on `metrics_listen`), and both read the same queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_is_scraped_on_metrics_listen() {
    let repo = GitRepo::standard();
    let app = TestApp::builder()
        .role(Role::Web)
        .project(ProjectSpec::github("widget", repo.url()))
        .start()
        .await;
    let port = free_port();
    let mut config = app.child_config_file();
    config.metrics_listen = Some(format!("127.0.0.1:{port}"));
    let config_path = app.config_path.with_file_name("worker.toml");
    config.write_to(&config_path);
    let worker = BalerProcess::start(&["worker"], &config_path);
    let worker_url = format!("http://127.0.0.1:{port}");

    app.github_push("widget", "refs/tags/v1.0.0", &repo.rev("v1.0.0"))
        .await;
    wait_until(60, "the worker to release 1.0.0", || async {
        app.get("/api/v1/projects/widget/releases/1.0.0")
            .await
            .status()
            == 200
    })
    .await;
    wait_until(30, "the worker's /metrics to count its job", || async {
        let Ok(answer) = app.client.get(format!("{worker_url}/metrics")).send().await else {
            return false;
        };
        answer
            .text()
            .await
            .is_ok_and(|text| text.contains("baler_jobs_total{outcome=\"succeeded\"} 1"))
    })
    .await;

    let from_worker = Metrics::scrape(&app.client, &worker_url).await;
    let from_web = Metrics::scrape(&app.client, &app.url).await;
    assert_eq!(
        from_worker.value("baler_jobs_total", &[("outcome", "succeeded")]),
        1.0
    );
    assert_eq!(
        from_worker.observations("baler_fetch_duration_seconds"),
        1.0
    );
    assert!(
        !from_worker.has("baler_webhook_deliveries_total"),
        "the worker received no webhook:\n{}",
        from_worker.text
    );
    assert!(
        !from_web.has("baler_jobs_total"),
        "the web process ran no job:\n{}",
        from_web.text
    );
    assert_eq!(
        from_web.value(
            "baler_webhook_deliveries_total",
            &[("provider", "github"), ("status", "202")]
        ),
        1.0
    );
    for metrics in [&from_worker, &from_web] {
        assert_eq!(
            metrics.value("baler_queue_items", &[("state", "done")]),
            1.0
        );
    }
    drop(worker);
}
