//! Scheduled rescans: with no webhook at all, a new tag and a moved branch are released by the
//! schedule; two processes on one database give each due time one rescan; the admin API and
//! page show the schedule and the last rescan's result.

use std::time::{Duration, Instant};

use crate::on_both_databases;
use crate::support::browser::AdminBrowser;
use crate::support::git::GitRepo;
use crate::support::{
    ADMIN_TOKEN, BalerProcess, Installation, ProjectSpec, TestApp, TestDb, wait_until,
};

async fn dev_commit(app: &TestApp) -> Option<String> {
    let releases = app.get_json("/api/v1/projects/widget/releases").await;
    releases
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["version"] == "main-dev")
        .map(|r| r["commit"].as_str().unwrap().to_string())
}

async fn a_new_tag_and_a_moved_branch_are_released_without_a_webhook(db: TestDb) {
    let mut repo = GitRepo::new();
    repo.write("README.md", b"scheduled\n");
    repo.commit("First");
    repo.git(&["tag", "v1.0.0"]);
    let app = TestApp::builder()
        .database(&db)
        .admin_token(ADMIN_TOKEN)
        .project(
            ProjectSpec::github("widget", repo.url())
                .branches(&["main"])
                .rescan_every("1s"),
        )
        .start()
        .await;
    // The first rescan comes within the first interval.
    wait_until(30, "the first rescan to release", || async {
        app.versions("widget").await == ["1.0.0", "main-dev"]
    })
    .await;

    repo.write("CHANGELOG", b"2.0.0\n");
    let moved = repo.commit("Second");
    repo.git(&["tag", "v2.0.0"]);
    wait_until(
        30,
        "the schedule to release the new tag and the moved branch",
        || async {
            app.versions("widget").await == ["2.0.0", "1.0.0", "main-dev"]
                && dev_commit(&app).await.as_deref() == Some(moved.as_str())
        },
    )
    .await;
    assert_eq!(app.delivery_count().await, 0, "no webhook was sent");
    assert!(app.rescans_of("widget").await.len() >= 2);

    // Admins see the schedule and the last result; the public document has no such field.
    let public = app.get_json("/api/v1/projects/widget").await;
    assert!(public.get("rescan").is_none(), "{public}");
    let detail = app.admin_json("/api/v1/projects/widget").await;
    let rescan = &detail["rescan"];
    assert_eq!(rescan["every"], "1s", "{detail}");
    assert!(rescan["next_due_at"].is_string(), "{detail}");
    let state = rescan["last"]["state"].as_str().unwrap();
    assert!(["pending", "running", "done"].contains(&state), "{detail}");
    assert!(rescan["last"]["item"].as_i64().unwrap() > 0);
    assert_eq!(detail["name"], "widget", "the public fields are there too");
    let wrong = app
        .client
        .get(format!("{}/api/v1/projects/widget", app.url))
        .bearer_auth("not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    let mut browser = AdminBrowser::logged_in(&app, ADMIN_TOKEN).await;
    let page = browser.get("/admin/projects/widget").await;
    let rows = page.rows("#rescans");
    assert_eq!(rows.len(), 1, "{}", page.body);
    assert!(rows[0].starts_with("1s | "), "{rows:?}");
    assert!(rows[0].contains("as item"), "{rows:?}");
}

/// A `baler worker` and `baler serve` on one database, both scheduling: every due time is
/// claimed once, at whole intervals, however the two race.
async fn two_processes_give_each_due_time_one_rescan(db: TestDb) {
    let repo = GitRepo::standard();
    let install = Installation::new(&db).await;
    let spec = ProjectSpec::github("widget", repo.url()).rescan_every("1s");
    let app = TestApp::builder()
        .installation(&install)
        .project(spec.clone())
        .start()
        .await;
    let mut worker_config = install.bare_config();
    worker_config.projects = vec![spec];
    let path = install.root().join("worker.toml");
    worker_config.write_to(&path);
    let worker = BalerProcess::start(&["worker"], &path);
    wait_until(60, "the worker to start", || async {
        worker.log().contains("workers started")
    })
    .await;
    let watching = Instant::now();
    let before = app.rescans_of("widget").await.len();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let rescans = app.rescans_of("widget").await;
    let elapsed = watching.elapsed().as_millis() as i64;

    let due: Vec<i64> = rescans.iter().map(|(due, _)| *due).collect();
    for pair in due.windows(2) {
        assert_eq!(pair[1] - pair[0], 1000, "one rescan per interval: {due:?}");
    }
    let during = (rescans.len() - before) as i64;
    assert!(
        during >= elapsed / 1000 - 2 && during <= elapsed / 1000 + 1,
        "{during} rescans in {elapsed} ms: {due:?}"
    );
    assert!(rescans.iter().all(|(_, item)| item.is_some()));
    // Rescans keep coming, so the queue is never idle for long: wait for what they release.
    wait_until(30, "the rescans to release the repository", || async {
        app.versions("widget").await == ["1.1.0", "1.0.0", "1.x-dev", "main-dev"]
    })
    .await;
    drop(worker);
}

on_both_databases!(
    a_new_tag_and_a_moved_branch_are_released_without_a_webhook,
    two_processes_give_each_due_time_one_rescan,
);
