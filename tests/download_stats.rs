//! Download statistics: counted per file and day in memory, flushed in batches, read by the
//! stats API and drawn on the project page's chart; counts survive a restart.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::on_both_databases;
use crate::support::config::HttpSettings;
use crate::support::git::GitRepo;
use crate::support::{Installation, ProjectSpec, TestApp, TestDb};

fn counting_every(seconds: u64) -> HttpSettings {
    HttpSettings {
        downloads_flush_seconds: Some(seconds),
        ..HttpSettings::default()
    }
}

/// The stats API once its total reaches `total` (a flush is due within a second).
async fn stats_once_total_is(app: &TestApp, total: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let stats = app.get_json("/api/v1/projects/widget/stats").await;
        if stats["total"] == total {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "the total stays {} (want {total})",
            stats["total"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Long on purpose: one installation through counting, reading, charting and two restarts.
async fn downloads_are_counted_charted_and_kept(db: TestDb) {
    let repo = GitRepo::standard();
    let installation = Installation::new(&db).await;
    let start = |flush: u64| {
        TestApp::builder()
            .installation(&installation)
            .project(ProjectSpec::github("widget", repo.url()))
            .http(counting_every(flush))
            .start()
    };
    let app = start(1).await;
    app.github_push("widget", "refs/tags/v1.0.0", &repo.rev("v1.0.0"))
        .await;
    app.run_queue_until_idle().await;
    let release = app.release("widget", "1.0.0").await;
    let url = release["files"][1]["url"].as_str().unwrap().to_string();
    // Each start listens on a port of its own.
    let path = url.strip_prefix(&app.url).unwrap().to_string();
    let etag = format!("\"{}\"", release["files"][1]["sha256"].as_str().unwrap());

    // Counted: three whole GETs and a GET of the first piece. Not counted: HEAD, a resumed
    // download's later piece, a 304, the checksum file.
    for _ in 0..3 {
        assert_eq!(app.client.get(&url).send().await.unwrap().status(), 200);
    }
    let send = |request: reqwest::RequestBuilder| async move {
        request.send().await.unwrap().status().as_u16()
    };
    assert_eq!(
        send(app.client.get(&url).header("range", "bytes=0-9")).await,
        206
    );
    assert_eq!(send(app.client.head(&url)).await, 200);
    assert_eq!(
        send(app.client.get(&url).header("range", "bytes=10-19")).await,
        206
    );
    assert_eq!(
        send(app.client.get(&url).header("if-none-match", &etag)).await,
        304
    );
    assert_eq!(send(app.client.get(format!("{url}.sha256"))).await, 200);

    let stats = stats_once_total_is(&app, 4).await;
    let days = stats["days"].as_array().unwrap();
    assert_eq!(days.len(), 90, "every day of the last 90, today last");
    let today = chrono::Utc::now().date_naive().to_string();
    assert_eq!(days[89]["date"], today.as_str());
    assert_eq!(days[89]["downloads"], 4);
    assert!(days[..89].iter().all(|d| d["downloads"] == 0));
    // Every release, newest first (the push released the repository's other tag too).
    assert_eq!(
        stats["releases"],
        serde_json::json!([
            { "version": "1.1.0", "downloads": 0 },
            { "version": "1.0.0", "downloads": 4 },
        ])
    );

    // The chart: a well-formed SVG with a bar a day, today's the tallest.
    let chart = app.get("/projects/widget/downloads.svg").await;
    assert_eq!(chart.status(), 200);
    assert_eq!(chart.headers()["content-type"], "image/svg+xml");
    let text = chart.text().await.unwrap();
    let svg = roxmltree::Document::parse(&text).unwrap();
    let bars: Vec<f64> = svg
        .descendants()
        .filter(|n| n.has_tag_name("rect"))
        .map(|n| n.attribute("height").unwrap().parse().unwrap())
        .collect();
    assert_eq!(bars.len(), 90);
    assert!(
        bars[89] > 0.0 && bars[..89].iter().all(|h| *h == 0.0),
        "{bars:?}"
    );
    assert!(text.contains("4 downloads in the last 90 days"), "{text}");
    let page = app.get("/projects/widget").await.text().await.unwrap();
    assert!(page.contains("src=\"/projects/widget/downloads.svg\""));
    assert_eq!(app.get("/api/v1/projects/nobody/stats").await.status(), 404);
    app.stop().await;

    // Restarted with flushes an hour apart: the written counts are there, and a download
    // just before a graceful stop is written by the stop's own flush.
    let app = start(3600).await;
    stats_once_total_is(&app, 4).await;
    let url = format!("{}{path}", app.url);
    assert_eq!(app.client.get(&url).send().await.unwrap().status(), 200);
    app.stop().await;
    let app = start(3600).await;
    stats_once_total_is(&app, 5).await;
}

on_both_databases!(downloads_are_counted_charted_and_kept);
