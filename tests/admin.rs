//! The admin queue API and `baler queue …`: one implementation behind both.

use serde_json::Value;

use crate::on_both_databases;
use crate::support::git::GitRepo;
use crate::support::{ProjectSpec, TestApp, TestDb};

const TOKEN: &str = "admin-secret-token";

async fn admin_app(db: &TestDb, projects: &[ProjectSpec]) -> TestApp {
    let database = TestApp::database_line(db).await;
    TestApp::spawn_with(
        projects,
        &format!("max_attempts = 1\nadmin_token = \"{TOKEN}\"\n{database}"),
    )
    .await
}

async fn admin(app: &TestApp, method: reqwest::Method, path: &str) -> (u16, Value) {
    let response = app
        .client
        .request(method, format!("{}{path}", app.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

const ROUTES: [(&str, &str); 8] = [
    ("GET", "/api/v1/deliveries"),
    ("GET", "/api/v1/queue"),
    ("POST", "/api/v1/queue/pause"),
    ("POST", "/api/v1/queue/resume"),
    ("POST", "/api/v1/queue/flush"),
    ("DELETE", "/api/v1/queue/1"),
    ("POST", "/api/v1/queue/1/retry"),
    ("POST", "/api/v1/projects/widget/rebuild"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_route_refuses_a_missing_or_wrong_token() {
    let repo = GitRepo::standard();
    let app = admin_app(
        &TestDb::Sqlite,
        &[ProjectSpec::github("widget", repo.url())],
    )
    .await;
    app.queue.set_paused(true).await.unwrap();
    for (method, path) in ROUTES {
        let method: reqwest::Method = method.parse().unwrap();
        for token in [None, Some("wrong"), Some("admin-secret-tokenX")] {
            let mut request = app
                .client
                .request(method.clone(), format!("{}{path}", app.url));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 401, "{method} {path} with {token:?}");
        }
    }
    // Nothing was done: still paused, nothing queued.
    assert!(app.queue.counts().await.unwrap().paused);
    assert_eq!(app.count("SELECT COUNT(*) FROM queue_items").await, 0);

    // With no admin token configured at all, the routes are closed too.
    let open = TestApp::spawn(&[ProjectSpec::github("widget", repo.url())]).await;
    let response = open
        .client
        .post(format!("{}/api/v1/queue/pause", open.url))
        .bearer_auth("")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

async fn queue_operations_through_the_api(db: TestDb) {
    let repo = GitRepo::standard();
    let missing = format!("file://{}/gone", repo.dir.display());
    let app = admin_app(
        &db,
        &[
            ProjectSpec::github("widget", repo.url()),
            ProjectSpec::github("other", repo.url()),
            ProjectSpec::github("broken", missing),
        ],
    )
    .await;

    // Pause: webhooks still queue, nothing is claimed.
    let (status, answer) = admin(&app, reqwest::Method::POST, "/api/v1/queue/pause").await;
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
    let (_, listing) = admin(&app, reqwest::Method::GET, "/api/v1/queue").await;
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
    let (status, _) = admin(
        &app,
        reqwest::Method::DELETE,
        &format!("/api/v1/queue/{}", b["item"]),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = admin(
        &app,
        reqwest::Method::DELETE,
        &format!("/api/v1/queue/{}", b["item"]),
    )
    .await;
    assert_eq!(status, 404);
    let (_, flushed) = admin(&app, reqwest::Method::POST, "/api/v1/queue/flush").await;
    assert_eq!(flushed["removed"], 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM queue_items").await, 0);

    // A failed item can be retried; a pending one cannot.
    app.github_push("broken", "refs/tags/v1.0.0", &repo.rev("v1.0.0"))
        .await;
    admin(&app, reqwest::Method::POST, "/api/v1/queue/resume").await;
    app.run_queue_until_idle().await;
    let (_, listing) = admin(&app, reqwest::Method::GET, "/api/v1/queue").await;
    let failed = &listing["items"][0];
    assert_eq!(failed["state"], "failed");
    assert!(
        failed["last_error"].as_str().unwrap().contains("gone"),
        "{failed}"
    );
    admin(&app, reqwest::Method::POST, "/api/v1/queue/pause").await;
    let (status, retried) = admin(
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/queue/{}/retry", failed["id"]),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(retried["position"], 1);
    let (status, _) = admin(
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/queue/{}/retry", retried["item"]),
    )
    .await;
    assert_eq!(status, 409, "only failed items can be retried");
    let (_, listing) = admin(&app, reqwest::Method::GET, "/api/v1/queue").await;
    assert_eq!(listing["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        listing["items"][0]["refs"]["tags"]["v1.0.0"],
        repo.rev("v1.0.0").as_str()
    );
    admin(&app, reqwest::Method::POST, "/api/v1/queue/flush").await;

    // Rebuild: every matching branch and tag of the repository, with no push at all.
    let (status, _) = admin(
        &app,
        reqwest::Method::POST,
        "/api/v1/projects/widget/rebuild",
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = admin(&app, reqwest::Method::POST, "/api/v1/projects/nope/rebuild").await;
    assert_eq!(status, 404);
    admin(&app, reqwest::Method::POST, "/api/v1/queue/resume").await;
    app.run_queue_until_idle().await;
    // Both branches sit at the same commit, so only the tags' order is fixed.
    let mut versions = app.versions("widget").await;
    versions[2..].sort();
    assert_eq!(versions, ["1.1.0", "1.0.0", "1.x-dev", "main-dev"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_survives_a_restart() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    let extra = format!("data_dir = \"{}\"\n", data.display());
    {
        let app = TestApp::spawn_with(&[], &extra).await;
        app.queue.set_paused(true).await.unwrap();
    }
    let app = TestApp::spawn_with(&[], &extra).await;
    assert!(app.queue.counts().await.unwrap().paused);
}

on_both_databases!(queue_operations_through_the_api);

/// Runs `baler queue ARGS` against the app's config and returns what it printed.
fn baler_queue(app: &TestApp, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_baler"))
        .arg("queue")
        .args(args)
        .arg("--config")
        .arg(&app.config_path)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
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
    let app = TestApp::start(
        baler::startup::Role::Web,
        &[
            ProjectSpec::github("widget", repo.url()),
            ProjectSpec::github("other", repo.url()),
        ],
        "max_attempts = 1\n",
    )
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
    assert_eq!(app.count("SELECT COUNT(*) FROM queue_items").await, 0);
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
}

#[test]
fn migrate_and_project_list_work_on_a_fresh_data_dir() {
    let temp = tempfile::tempdir().unwrap();
    let config = temp.path().join("baler.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n[[projects]]\nname = \"webform\"\nrepo = \"https://ghp_secret@git.example.org/acme/webform.git\"\nprovider = \"gitlab\"\nsecret = \"s\"\nlayout = \"drupal\"\n",
            temp.path().join("data").display()
        ),
    )
    .unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deliveries_api_shows_why_a_push_did_not_release() {
    let repo = GitRepo::standard();
    let app = admin_app(
        &TestDb::Sqlite,
        &[ProjectSpec::github("widget", repo.url())],
    )
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

    let (status, list) = admin(
        &app,
        reqwest::Method::GET,
        "/api/v1/deliveries?project=widget",
    )
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
}
