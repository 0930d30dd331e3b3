//! Every public page and every admin page in headless Chromium (Debian's `chromium` and
//! `chromium-driver`, driven with `fantoccini`): each loads with no console error and no
//! failed resource, the project page's download chart draws, and the admin sign-in → queue →
//! pause → resume flow works by clicking. A screenshot of each page is written under
//! `target/screenshots/` for review.

use std::path::PathBuf;
use std::time::Duration;

use fantoccini::Locator;
use serde_json::Value;

use crate::support::chromium::Chromium;
use crate::support::config::HttpSettings;
use crate::support::git::GitRepo;
use crate::support::{ADMIN_TOKEN, ProjectSpec, TestApp};

/// `target/screenshots`, beside the build (`CARGO_TARGET_DIR` when set).
fn screenshots() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Opens `path`, waits for it to finish loading, saves its screenshot as `name.png`, and
/// returns the browser log's errors for it.
async fn visit(browser: &Chromium, base: &str, path: &str, name: &str) -> Vec<Value> {
    browser.client.goto(&format!("{base}{path}")).await.unwrap();
    browser.wait_for("document.readyState === 'complete'").await;
    // Every image has loaded (or failed, which the log then says).
    browser
        .wait_for("Array.from(document.images).every(i => i.complete)")
        .await;
    let png = browser.client.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
    errors(browser.browser_log().await)
}

/// Console errors and failed loads: the log's `SEVERE` entries.
fn errors(log: Vec<Value>) -> Vec<Value> {
    log.into_iter().filter(|e| e["level"] == "SEVERE").collect()
}

async fn click(browser: &Chromium, css: &str) {
    browser
        .client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap();
}

/// Long on purpose: one browser session over every page, then the admin flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_loads_cleanly_and_the_admin_flow_works_by_clicking() {
    let repo = GitRepo::standard();
    let app = TestApp::builder()
        .admin_token(ADMIN_TOKEN)
        .project(ProjectSpec::github("widget", repo.url()).composer("acme/widget"))
        .http(HttpSettings {
            downloads_flush_seconds: Some(1),
            ..HttpSettings::default()
        })
        .start()
        .await;
    app.github_push("widget", "refs/tags/v1.0.0", &repo.rev("v1.0.0"))
        .await;
    app.run_queue_until_idle().await;
    let download = app.release("widget", "1.0.0").await["files"][0]["url"]
        .as_str()
        .unwrap()
        .to_string();
    app.client.get(&download).send().await.unwrap();
    // Counted once the next flush (within a second) has run: the chart then has a bar.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while app.get_json("/api/v1/projects/widget/stats").await["total"] != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the download was counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let browser = Chromium::launch().await;
    let base = app.url.clone();
    let session = async {
        let mut found = Vec::new();
        for (path, name) in [
            ("/", "home"),
            ("/projects/widget", "project"),
            ("/projects/widget/releases/1.0.0", "release"),
            ("/projects/widget/downloads.svg", "downloads-chart"),
        ] {
            found.push((path, visit(&browser, &base, path, name).await));
        }
        let drawn = browser
            .eval(
                "const bars = document.querySelectorAll('svg rect'); \
                 return [document.querySelector('svg > text').textContent, \
                 bars.length, Number(bars[bars.length - 1].getAttribute('height'))]",
            )
            .await;
        // The chart is drawn on the project page: the image loaded and has its size.
        visit(&browser, &base, "/projects/widget", "project").await;
        let chart = browser
            .eval(
                "const chart = document.querySelector('img[src$=\"downloads.svg\"]'); \
                 return chart.naturalWidth",
            )
            .await;

        found.push((
            "/admin/login",
            visit(&browser, &base, "/admin/login", "admin-login").await,
        ));
        browser
            .client
            .find(Locator::Css("input[name=token]"))
            .await
            .unwrap()
            .send_keys(ADMIN_TOKEN)
            .await
            .unwrap();
        click(&browser, r#"form[action="/admin/login"] button"#).await;
        browser
            .wait_for("location.pathname === '/admin/queue'")
            .await;
        click(&browser, r#"form[action="/admin/queue/pause"] button"#).await;
        browser
            .wait_for("document.querySelector('p.flash')?.textContent.includes('Paused')")
            .await;
        let paused = app.queue.counts().await.unwrap().paused;
        found.push((
            "/admin/queue",
            visit(&browser, &base, "/admin/queue", "admin-queue-paused").await,
        ));
        click(&browser, r#"form[action="/admin/queue/resume"] button"#).await;
        browser
            .wait_for("document.querySelector('p.flash')?.textContent.includes('Resumed')")
            .await;
        let resumed = !app.queue.counts().await.unwrap().paused;
        for (path, name) in [
            ("/admin/deliveries", "admin-deliveries"),
            ("/admin/notifications", "admin-notifications"),
            ("/admin/storage", "admin-storage"),
            ("/admin/projects", "admin-projects"),
            ("/admin/projects/widget", "admin-project"),
            ("/admin/projects/widget/releases/1.0.0", "admin-release"),
        ] {
            found.push((path, visit(&browser, &base, path, name).await));
        }
        (found, drawn, chart, paused, resumed)
    };
    let (found, drawn, chart, paused, resumed) =
        tokio::time::timeout(Duration::from_secs(120), session)
            .await
            .expect("the browser session ends within 120 s");
    browser.close().await;

    for (path, errors) in &found {
        assert!(errors.is_empty(), "{path}: {errors:?}");
    }
    assert_eq!(chart, 720, "the chart image loaded");
    assert_eq!(
        drawn[0], "1 download in the last 90 days (busiest day: 1)",
        "the chart counts the download"
    );
    assert_eq!(drawn[1], 90, "a bar a day");
    assert!(
        drawn[2].as_f64().unwrap() > 0.0,
        "today's bar has a height: {drawn}"
    );
    assert!(paused, "clicking Pause paused the queue");
    assert!(resumed, "clicking Resume resumed it");
    for name in [
        "home",
        "project",
        "release",
        "admin-queue-paused",
        "admin-release",
    ] {
        let png = std::fs::read(screenshots().join(format!("{name}.png"))).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{name}.png is a PNG");
    }
}
