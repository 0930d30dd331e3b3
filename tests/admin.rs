//! The admin queue API and `baler queue …`: one implementation behind both, audited; flushing
//! while a job runs; the deliveries log on the API and the admin page.

use serde_json::Value;

use crate::on_both_databases;
use crate::support::browser::AdminBrowser;
use crate::support::git::GitRepo;
use crate::support::{
    ADMIN_TOKEN, AuditRow, ConfigFile, Installation, ItemState, ProjectSpec, TestApp, TestDb,
};

/// Long on purpose: one queue through every action in turn, each step starting from the state
/// the one before left, which the audit log at the end replays.
async fn queue_operations_through_the_api(db: TestDb) {
    let repo = GitRepo::standard();
    let missing = format!("file://{}/gone", repo.dir.display());
    let app = TestApp::builder()
        .database(&db)
        .admin_token(ADMIN_TOKEN)
        .project(ProjectSpec::github("widget", repo.url()))
        .project(ProjectSpec::github("other", repo.url()))
        .project(ProjectSpec::github("broken", missing))
        .start()
        .await;

    // Pause: webhooks still queue, nothing is claimed.
    let (status, answer) = app
        .admin_call(reqwest::Method::POST, "/api/v1/queue/pause")
        .await;
    assert_eq!((status, answer["paused"].clone()), (200, Value::Bool(true)));
    let a: Value = app
        .github_push("widget", "refs/heads/main", &repo.head())
        .await
        .json()
        .await
        .unwrap();
    let b: Value = app
        .github_push("other", "refs/heads/main", &repo.head())
        .await
        .json()
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (_, listing) = app.admin_call(reqwest::Method::GET, "/api/v1/queue").await;
    assert_eq!(listing["paused"], true);
    let items = listing["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], a["item"]);
    assert_eq!(items[0]["position"], 1);
    assert_eq!(items[0]["project"], "widget");
    assert_eq!(items[0]["state"], "pending");
    assert_eq!(items[0]["refs"]["branches"]["main"], repo.head().as_str());
    assert_eq!(items[1]["id"], b["item"]);
    assert_eq!(items[1]["position"], 2);

    // Delete one, flush the rest; the answer says how many went.
    let (status, _) = app
        .admin_call(
            reqwest::Method::DELETE,
            &format!("/api/v1/queue/{}", b["item"]),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .admin_call(
            reqwest::Method::DELETE,
            &format!("/api/v1/queue/{}", b["item"]),
        )
        .await;
    assert_eq!(status, 404);
    let (_, flushed) = app
        .admin_call(reqwest::Method::POST, "/api/v1/queue/flush")
        .await;
    assert_eq!(flushed["removed"], 1);
    assert_eq!(app.item_count().await, 0);

    // A failed item can be retried; a pending one cannot.
    app.github_push("broken", "refs/tags/v1.0.0", &repo.rev("v1.0.0"))
        .await;
    app.admin_call(reqwest::Method::POST, "/api/v1/queue/resume")
        .await;
    app.run_queue_until_idle().await;
    let (_, listing) = app.admin_call(reqwest::Method::GET, "/api/v1/queue").await;
    let failed = &listing["items"][0];
    assert_eq!(failed["state"], "failed");
    assert!(
        failed["last_error"].as_str().unwrap().contains("gone"),
        "{failed}"
    );
    app.admin_call(reqwest::Method::POST, "/api/v1/queue/pause")
        .await;
    let (status, retried) = app
        .admin_call(
            reqwest::Method::POST,
            &format!("/api/v1/queue/{}/retry", failed["id"]),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(retried["position"], 1);
    let (status, _) = app
        .admin_call(
            reqwest::Method::POST,
            &format!("/api/v1/queue/{}/retry", retried["item"]),
        )
        .await;
    assert_eq!(status, 409, "only failed items can be retried");
    let (_, listing) = app.admin_call(reqwest::Method::GET, "/api/v1/queue").await;
    assert_eq!(listing["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        listing["items"][0]["refs"]["tags"]["v1.0.0"],
        repo.rev("v1.0.0").as_str()
    );
    app.admin_call(reqwest::Method::POST, "/api/v1/queue/flush")
        .await;

    // Rebuild: every matching branch and tag of the repository, with no push at all.
    let (status, _) = app
        .admin_call(reqwest::Method::POST, "/api/v1/projects/widget/rebuild")
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .admin_call(reqwest::Method::POST, "/api/v1/projects/nope/rebuild")
        .await;
    assert_eq!(status, 404);
    app.admin_call(reqwest::Method::POST, "/api/v1/queue/resume")
        .await;
    app.run_queue_until_idle().await;
    // Both branches sit at the same commit, so only the tags' order is fixed.
    let mut versions = app.versions("widget").await;
    versions[2..].sort();
    assert_eq!(versions, ["1.1.0", "1.0.0", "1.x-dev", "main-dev"]);

    // Every action is audited under the token's name; refused ones (404, 409) are not.
    let (_, audit) = app
        .admin_call(reqwest::Method::GET, "/api/v1/audit?limit=100")
        .await;
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|entry| {
            assert_eq!(entry["actor"], "admin_token", "{entry}");
            entry["action"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        actions,
        [
            "queue.pause",
            "item.delete",
            "queue.flush",
            "queue.resume",
            "queue.pause",
            "item.retry",
            "queue.flush",
            "project.rebuild",
            "queue.resume",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_survives_a_restart() {
    let installation = Installation::new(&TestDb::Sqlite).await;
    {
        let app = TestApp::builder().installation(&installation).start().await;
        app.queue.set_paused(true).await.unwrap();
    }
    let app = TestApp::builder().installation(&installation).start().await;
    assert!(app.queue.counts().await.unwrap().paused);
}

on_both_databases!(queue_operations_through_the_api);

/// Runs `baler queue ARGS` against the app's config and returns what it printed.
fn baler_queue(app: &TestApp, args: &[&str]) -> String {
    let out = app.baler_cli(&[&["queue"], args].concat());
    assert!(
        out.status.success(),
        "baler queue {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_cli_acts_on_the_same_queue() {
    let repo = GitRepo::standard();
    let app = TestApp::builder()
        .role(baler::startup::Role::Web)
        .project(ProjectSpec::github("widget", repo.url()))
        .project(ProjectSpec::github("other", repo.url()))
        .start()
        .await;
    assert!(baler_queue(&app, &["pause"]).contains("paused"));
    assert!(app.queue.counts().await.unwrap().paused);
    let a: Value = app
        .github_push("widget", "refs/tags/v1.0.0", "")
        .await
        .json()
        .await
        .unwrap();
    app.github_push("other", "refs/heads/main", "").await;

    let listing = baler_queue(&app, &["list"]);
    assert!(listing.starts_with("queue paused"), "{listing}");
    let widget_line = listing.lines().find(|l| l.contains("widget")).unwrap();
    assert!(
        widget_line.contains("pending") && widget_line.contains("tag:v1.0.0"),
        "{widget_line}"
    );

    assert!(baler_queue(&app, &["delete", &a["item"].to_string()]).contains("deleted"));
    assert_eq!(
        baler_queue(&app, &["flush"]).trim(),
        "removed 1 pending items"
    );
    assert_eq!(app.item_count().await, 0);
    baler_queue(&app, &["resume"]);
    assert!(!app.queue.counts().await.unwrap().paused);

    // Errors are clear and the exit status says so.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_baler"))
        .args(["queue", "retry", "999"])
        .arg("--config")
        .arg(&app.config_path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no queue item 999"));

    // Each action is in the audit log under the CLI's user; a refused one is not.
    let item = format!("item {}", a["item"]);
    assert_eq!(
        app.audit_trail().await,
        [
            AuditRow::new("cli:tester", "queue.pause", "queue"),
            AuditRow::new("cli:tester", "item.delete", &item),
            AuditRow::new("cli:tester", "queue.flush", "queue"),
            AuditRow::new("cli:tester", "queue.resume", "queue"),
        ]
    );
}

#[test]
fn migrate_and_project_list_work_on_a_fresh_data_dir() {
    let temp = tempfile::tempdir().unwrap();
    let config = temp.path().join("baler.toml");
    let webform = ProjectSpec::gitlab(
        "webform",
        "https://ghp_secret@git.example.org/acme/webform.git",
    )
    .secret("s")
    .drupal_layout()
    .default_branches();
    ConfigFile {
        data_dir: Some(temp.path().join("data")),
        projects: vec![webform],
        ..ConfigFile::default()
    }
    .write_to(&config);
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_baler"))
            .args(args)
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(run(&["migrate"]).contains("migrations applied"));
    assert!(temp.path().join("data/baler.db").is_file());
    let listing = run(&["project", "list"]);
    let line = listing.lines().find(|l| l.starts_with("webform")).unwrap();
    assert!(line.contains("gitlab") && line.contains("drupal"), "{line}");
    assert!(
        !line.contains("ghp_secret"),
        "credentials are not printed: {line}"
    );
}

/// Long on purpose: the same deliveries seen on the API, with `?per_project`, and on the admin
/// page.
async fn the_deliveries_log_shows_why_a_push_did_not_release(db: TestDb) {
    let repo = GitRepo::standard();
    let app = TestApp::builder()
        .database(&db)
        .admin_token(ADMIN_TOKEN)
        .project(ProjectSpec::github("widget", repo.url()))
        .project(ProjectSpec::github("other", repo.url()))
        .start()
        .await;
    app.queue.set_paused(true).await.unwrap();
    let accepted: Value = app
        .github_push("widget", "refs/heads/main", "abc")
        .await
        .json()
        .await
        .unwrap();
    let headers = vec![
        ("content-type", "application/json".to_string()),
        ("x-github-event", "push".to_string()),
        ("x-github-delivery", "bad-one".to_string()),
        ("x-hub-signature-256", "sha256=00".to_string()),
    ];
    let body = crate::support::github_push_body(&repo.url(), "refs/heads/main", "def");
    assert_eq!(app.post_hook("widget", &headers, body).await.status(), 401);

    let (status, list) = app
        .admin_call(reqwest::Method::GET, "/api/v1/deliveries?project=widget")
        .await;
    assert_eq!(status, 200);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["status"], 401, "newest first");
    assert_eq!(list[0]["delivery_id"], "bad-one");
    assert!(list[0]["reason"].as_str().unwrap().contains("signature"));
    assert_eq!(list[1]["status"], 202);
    assert_eq!(list[1]["event"], "push");
    assert_eq!(list[1]["item"], accepted["item"]);

    // The latest of each project: `?per_project=1` gives one per project, by project name.
    app.github_push("other", "refs/heads/main", "abc").await;
    let (_, latest) = app
        .admin_call(reqwest::Method::GET, "/api/v1/deliveries?per_project=1")
        .await;
    let latest: Vec<(&str, &str)> = latest
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["project"].as_str().unwrap(),
                d["delivery_id"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(latest.len(), 2);
    assert_eq!(latest[0].0, "other");
    assert_eq!(latest[1], ("widget", "bad-one"));

    // The admin page shows the same, per project, with the reason.
    let mut browser = AdminBrowser::logged_in(&app, ADMIN_TOKEN).await;
    let page = browser.get("/admin/deliveries").await;
    assert_eq!(page.status, 200);
    let html = scraper::Html::parse_document(&page.body);
    let heading = scraper::Selector::parse("h2").unwrap();
    let projects: Vec<String> = html
        .select(&heading)
        .map(|h| h.text().collect::<String>())
        .collect();
    assert_eq!(projects, ["other", "widget"]);
    let refused = page.rows(".deliveries");
    assert!(
        refused.iter().any(|row| row.contains("bad-one")
            && row.contains("401")
            && row.contains("signature")
            && row.contains("github")),
        "{refused:?}"
    );
    assert!(
        refused
            .iter()
            .any(|row| row.contains("202") && row.contains(&accepted["item"].to_string())),
        "the accepted delivery names its item: {refused:?}"
    );
    let one = browser.get("/admin/deliveries?project=widget").await;
    assert_eq!(one.status, 200);
    assert!(one.body.contains("bad-one") && !one.body.contains(">other<"));
}

/// Flushing while a job runs: the pending items go, the count comes back, and the running job
/// is left to finish.
async fn flush_while_a_job_runs_removes_only_the_pending_items(db: TestDb) {
    let heavy = GitRepo::heavy(24);
    let repo = GitRepo::standard();
    let app = TestApp::builder()
        .database(&db)
        .workers(1)
        .admin_token(ADMIN_TOKEN)
        .project(ProjectSpec::github("heavy", heavy.url()))
        .project(ProjectSpec::github("widget", repo.url()))
        .project(ProjectSpec::github("other", repo.url()))
        .start()
        .await;
    let running: Value = app
        .github_push("heavy", "refs/tags/v1.0.0", &heavy.rev("v1.0.0"))
        .await
        .json()
        .await
        .unwrap();
    crate::support::wait_until(60, "the job to start", || async {
        app.items_in(&[ItemState::Running]).await == 1
    })
    .await;
    // One worker, busy: these wait.
    app.github_push("widget", "refs/heads/main", &repo.head())
        .await;
    app.github_push("other", "refs/tags/v1.0.0", &repo.rev("v1.0.0"))
        .await;

    let (status, flushed) = app
        .admin_call(reqwest::Method::POST, "/api/v1/queue/flush")
        .await;
    assert_eq!(
        (status, flushed),
        (200, serde_json::json!({ "removed": 2 }))
    );
    let (_, listing) = app.admin_call(reqwest::Method::GET, "/api/v1/queue").await;
    let items = listing["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{listing}");
    assert_eq!(items[0]["id"], running["item"]);
    assert_eq!(items[0]["state"], "running", "the job was still under way");
    assert!(items[0]["lease_owner"].is_string());

    app.run_queue_until_idle().await;
    assert_eq!(app.items_in(&[ItemState::Done]).await, 1);
    assert_eq!(app.item_count().await, 1);
    assert_eq!(app.versions("heavy").await, ["1.0.0"]);
    assert!(app.versions("widget").await.is_empty());
    assert!(app.versions("other").await.is_empty());
    let (_, audit) = app.admin_call(reqwest::Method::GET, "/api/v1/audit").await;
    assert_eq!(audit[0]["actor"], "admin_token");
    assert_eq!(audit[0]["action"], "queue.flush");
    assert_eq!(audit[0]["detail"], "removed 2 pending items");
}

on_both_databases!(
    the_deliveries_log_shows_why_a_push_did_not_release,
    flush_while_a_job_runs_removes_only_the_pending_items,
);
