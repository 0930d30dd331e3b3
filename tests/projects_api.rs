//! Projects that live in the database: added and removed through the admin API and with the
//! real CLI, released by webhooks like any other, kept across restarts; the config file wins
//! on a name it also has; every change audited.

use reqwest::Method;
use serde_json::json;

use crate::on_both_databases;
use crate::support::git::GitRepo;
use crate::support::{
    ADMIN_TOKEN, AuditRow, Installation, ProjectSpec, SECRET, TestApp, TestDb, wait_until,
};

async fn start_on(install: &Installation, repo: &GitRepo) -> TestApp {
    TestApp::builder()
        .installation(install)
        .admin_token(ADMIN_TOKEN)
        .project(ProjectSpec::github("configured", repo.url()))
        .start()
        .await
}

async fn names(app: &TestApp) -> Vec<String> {
    app.get_json("/api/v1/projects")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

async fn a_project_added_through_the_api_releases_and_stays(db: TestDb) {
    let repo = GitRepo::standard();
    let install = Installation::new(&db).await;
    let app = start_on(&install, &repo).await;

    for (body, field) in [
        (json!({"name": "widget", "repo": repo.url()}), "provider"),
        (
            json!({"name": "Bad Name", "repo": repo.url(), "provider": "github", "secret": SECRET}),
            "name",
        ),
        (
            json!({"name": "widget", "repo": repo.url(), "provider": "github", "secret": ""}),
            "secret",
        ),
        (
            json!({"name": "widget", "repo": repo.url(), "provider": "github", "api_token_env": "X"}),
            "api_token_env",
        ),
        (
            json!({"name": "widget", "repo": repo.url(), "provider": "github", "secret": SECRET, "token": "t"}),
            "token",
        ),
        (
            json!({"name": "widget", "repo": repo.url(), "provider": "github", "secret": SECRET, "colour": 1}),
            "colour",
        ),
    ] {
        let (status, answer) = app
            .admin_send(Method::POST, "/api/v1/projects", &body)
            .await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(field),
            "{field}: {answer}"
        );
    }
    let (status, answer) = app
        .admin_send(
            Method::POST,
            "/api/v1/projects",
            &json!({"name": "configured", "repo": repo.url(), "provider": "github", "secret": SECRET}),
        )
        .await;
    assert_eq!(status, 409, "the config file owns it: {answer}");

    let entry = json!({"name": "widget", "title": "Widget", "repo": repo.url(),
        "provider": "github", "secret": SECRET, "branches": ["main"], "layout": "plain"});
    let (status, added) = app
        .admin_send(Method::POST, "/api/v1/projects", &entry)
        .await;
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["hook"], format!("{}/hooks/widget", app.url).as_str());
    assert_eq!(
        names(&app).await,
        ["configured", "widget"],
        "in the published list at once"
    );

    let pushed = app
        .github_push_of(
            "widget",
            &repo.url(),
            "refs/tags/v1.0.0",
            &repo.rev("v1.0.0"),
        )
        .await;
    assert_eq!(pushed.status(), 202);
    app.run_queue_until_idle().await;
    assert_eq!(app.versions("widget").await, ["1.1.0", "1.0.0"]);
    let unauthorised = app
        .client
        .post(format!("{}/api/v1/projects", app.url))
        .json(&entry)
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorised.status(), 401);
    app.stop().await;

    // A restart syncs the config; the added project is kept.
    let app = start_on(&install, &repo).await;
    assert_eq!(names(&app).await, ["configured", "widget"]);

    // Removed: disabled, its webhooks refused, its releases kept.
    let (status, removed) = app
        .admin_call(Method::DELETE, "/api/v1/projects/widget")
        .await;
    assert_eq!(status, 200, "{removed}");
    assert!(removed["disabled_at"].is_string());
    assert_eq!(names(&app).await, ["configured"]);
    let refused = app
        .github_push_of(
            "widget",
            &repo.url(),
            "refs/tags/v1.0.0",
            &repo.rev("v1.0.0"),
        )
        .await;
    assert_eq!(refused.status(), 404);
    assert_eq!(app.release_rows().await.len(), 2, "its releases are kept");
    let (status, _) = app
        .admin_call(Method::DELETE, "/api/v1/projects/configured")
        .await;
    assert_eq!(status, 409);
    let (status, _) = app
        .admin_call(Method::DELETE, "/api/v1/projects/nothing")
        .await;
    assert_eq!(status, 404);

    // Added again: enabled, with its releases.
    let (status, _) = app
        .admin_send(Method::POST, "/api/v1/projects", &entry)
        .await;
    assert_eq!(status, 201);
    assert_eq!(app.versions("widget").await, ["1.1.0", "1.0.0"]);
    let trail = app.audit_trail().await;
    for action in ["project.add", "project.remove"] {
        assert!(
            trail.contains(&AuditRow::new("admin_token", action, "project widget")),
            "{action}: {trail:?}"
        );
    }
}

/// `baler project add FILE` and `baler project remove NAME`, the real binary against the
/// running server's database.
async fn the_cli_adds_and_removes_projects(db: TestDb) {
    let repo = GitRepo::standard();
    let install = Installation::new(&db).await;
    let app = start_on(&install, &repo).await;
    let file = install.root().join("gadget.toml");
    std::fs::write(
        &file,
        format!(
            "name = \"gadget\"\nrepo = \"{}\"\nprovider = \"gitlab\"\nsecret = \"{SECRET}\"\n",
            repo.url()
        ),
    )
    .unwrap();
    let added = app.baler_cli(&["project", "add", file.to_str().unwrap()]);
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    // Another process changed the documents: the server sees it within its poll (SQLite) or
    // at once (PostgreSQL's NOTIFY).
    wait_until(10, "the server to list the added project", || async {
        names(&app).await == ["configured", "gadget"]
    })
    .await;
    let listed = app.baler_cli(&["project", "list"]);
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(listed.contains("gadget"), "{listed}");

    let wrong = install.root().join("wrong.toml");
    std::fs::write(
        &wrong,
        "name = \"x\"\nrepo = \"r\"\nprovider = \"github\"\nsecret = \"\"\n",
    )
    .unwrap();
    let refused = app.baler_cli(&["project", "add", wrong.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("`secret`"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    let removed = app.baler_cli(&["project", "remove", "gadget"]);
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
    wait_until(10, "the server to drop the removed project", || async {
        names(&app).await == ["configured"]
    })
    .await;
    let trail = app.audit_trail().await;
    assert!(trail.contains(&AuditRow::new(
        "cli:tester",
        "project.add",
        "project gadget"
    )));
    assert!(trail.contains(&AuditRow::new(
        "cli:tester",
        "project.remove",
        "project gadget"
    )));
}

on_both_databases!(
    a_project_added_through_the_api_releases_and_stays,
    the_cli_adds_and_removes_projects,
);
