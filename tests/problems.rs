//! Refs that failed on their own: recorded, replaced and cleared by ref; shown to admins by
//! `GET /api/v1/projects/{project}/problems` and the admin pages. Build logs: the public pages
//! and API leave out the admin-only lines that name the repository's location; the admin log
//! route and the admin release page show the whole log.

use std::time::Duration;

use baler::problems;
use entities::release;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::Value;

use crate::on_both_databases;
use crate::support::browser::AdminBrowser;
use crate::support::git::GitRepo;
use crate::support::{ADMIN_TOKEN, ProjectSpec, TestApp, TestDb};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// GET `path` with `token` (none: no Authorization header): status and body.
async fn get_as(app: &TestApp, path: &str, token: Option<&str>) -> (u16, String) {
    let mut request = app.client.get(format!("{}{path}", app.url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// One entry of `/problems`, without its time.
#[derive(Debug, PartialEq, Eq)]
struct Listed {
    git_ref: String,
    commit: String,
    reason: String,
}

/// The `/problems` array, checking every entry's `at`.
async fn listed(app: &TestApp, project: &str) -> Vec<Listed> {
    let (status, body) = get_as(
        app,
        &format!("/api/v1/projects/{project}/problems"),
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let problems: Value = serde_json::from_str(&body).unwrap();
    problems
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let fields: Vec<&str> = p.as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(fields.len(), 4, "{p}");
            let at = p["at"].as_str().unwrap();
            let at = chrono::DateTime::parse_from_rfc3339(at).expect("at is RFC 3339");
            let age = chrono::Utc::now() - at.with_timezone(&chrono::Utc);
            assert!(age.num_seconds().abs() < 120, "{p}: recorded just now");
            Listed {
                git_ref: p["ref"].as_str().unwrap().to_string(),
                commit: p["commit"].as_str().unwrap().to_string(),
                reason: p["reason"].as_str().unwrap().to_string(),
            }
        })
        .collect()
}

fn entry(git_ref: &str, commit: &str, reason: &str) -> Listed {
    Listed {
        git_ref: git_ref.to_string(),
        commit: commit.to_string(),
        reason: reason.to_string(),
    }
}

/// Long on purpose: one project's problems through their whole life: recorded, replaced, shown,
/// cleared, rolled back.
async fn failed_refs_are_recorded_replaced_cleared_and_shown_to_admins(db: TestDb) {
    let repo = GitRepo::standard();
    let app = TestApp::builder()
        .database(&db)
        .admin_token(ADMIN_TOKEN)
        .project(ProjectSpec::github("widget", repo.url()))
        .project(ProjectSpec::github("other", repo.url()))
        .start()
        .await;
    let widget = app.project_id("widget").await;
    let other = app.project_id("other").await;

    // Admins only, and only for projects that exist.
    for token in [None, Some("wrong"), Some("admin-secret-tokenX")] {
        let (status, _) = get_as(&app, "/api/v1/projects/widget/problems", token).await;
        assert_eq!(status, 401, "{token:?}");
    }
    let (status, body) = get_as(&app, "/api/v1/projects/nope/problems", Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 404);
    let error: Value = serde_json::from_str(&body).unwrap();
    assert!(error["error"].as_str().unwrap().contains("nope"), "{body}");
    assert_eq!(listed(&app, "widget").await, []);

    problems::record_on(
        &app.db,
        widget,
        "refs/tags/0.9.0",
        COMMIT,
        "unsafe path <b>../x</b>",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    problems::record_on(
        &app.db,
        widget,
        "refs/tags/junio-gpg-pub",
        "",
        "not a commit",
    )
    .await
    .unwrap();
    problems::record_on(&app.db, other, "refs/heads/main", COMMIT, "other's problem")
        .await
        .unwrap();

    // Newest first, this project's only.
    assert_eq!(
        listed(&app, "widget").await,
        [
            entry("refs/tags/junio-gpg-pub", "", "not a commit"),
            entry("refs/tags/0.9.0", COMMIT, "unsafe path <b>../x</b>"),
        ]
    );
    assert_eq!(
        listed(&app, "other").await,
        [entry("refs/heads/main", COMMIT, "other's problem")]
    );

    // Failing again replaces the ref's row (one row, new commit and reason) and makes it the
    // newest.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let moved = "89abcdef0123456789abcdef0123456789abcdef";
    problems::record_on(&app.db, widget, "refs/tags/0.9.0", moved, "still unsafe")
        .await
        .unwrap();
    assert_eq!(
        listed(&app, "widget").await,
        [
            entry("refs/tags/0.9.0", moved, "still unsafe"),
            entry("refs/tags/junio-gpg-pub", "", "not a commit"),
        ]
    );
    let rows = app.ref_problem_rows().await;
    assert_eq!(
        rows.iter().filter(|row| row.project_id == widget).count(),
        2
    );
    let known = problems::known(&app.db, widget).await.unwrap();
    assert_eq!(known.len(), 2);
    assert_eq!(known["refs/tags/0.9.0"], moved);
    assert_eq!(known["refs/tags/junio-gpg-pub"], "");

    // The admin pages show them; the reason is text, not markup.
    let mut browser = AdminBrowser::logged_in(&app, ADMIN_TOKEN).await;
    let page = browser.get("/admin/queue").await;
    assert_eq!(page.status, 200);
    let rows = page.rows("#problems");
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(
        rows[0].starts_with("widget | refs/tags/0.9.0 | 89abcdef01 | still unsafe | "),
        "{rows:?}"
    );
    assert!(
        rows[1].starts_with("other | refs/heads/main | 0123456789 | other's problem | "),
        "{rows:?}"
    );
    assert!(
        rows[2].starts_with("widget | refs/tags/junio-gpg-pub |  | not a commit | "),
        "{rows:?}"
    );
    assert!(page.body.contains(r#"href="/admin/projects/widget""#));
    let project_page = browser.get("/admin/projects/widget").await;
    assert_eq!(project_page.status, 200);
    let rows = project_page.rows("#problems");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows[0].starts_with("refs/tags/0.9.0 | 89abcdef01 | still unsafe"));
    problems::record_on(&app.db, widget, "refs/tags/0.9.0", moved, "<b>bold</b>")
        .await
        .unwrap();
    let project_page = browser.get("/admin/projects/widget").await;
    assert!(!project_page.body.contains("<b>bold"), "escaped");
    assert!(
        project_page.rows("#problems")[0]
            .starts_with("refs/tags/0.9.0 | 89abcdef01 | <b>bold</b> | "),
        "{:?}",
        project_page.rows("#problems")
    );
    let answer = browser.get("/admin/projects/nope").await;
    assert_eq!(answer.status, 404);

    // Clearing removes the ref's problem only.
    problems::clear_on(&app.db, widget, "refs/tags/0.9.0")
        .await
        .unwrap();
    problems::clear_on(&app.db, widget, "refs/tags/never-failed")
        .await
        .unwrap();
    assert_eq!(
        listed(&app, "widget").await,
        [entry("refs/tags/junio-gpg-pub", "", "not a commit")]
    );
    assert_eq!(listed(&app, "other").await.len(), 1);
    let page = browser.get("/admin/queue").await;
    assert_eq!(page.rows("#problems").len(), 2);

    // Inside a caller's write transaction, like the worker's: nothing until it commits.
    let txn = baler::db::begin_write(&app.db).await.unwrap();
    problems::record_on(&txn, other, "refs/tags/v9", COMMIT, "rolled back")
        .await
        .unwrap();
    problems::clear_on(&txn, other, "refs/heads/main")
        .await
        .unwrap();
    txn.rollback().await.unwrap();
    assert_eq!(
        listed(&app, "other").await,
        [entry("refs/heads/main", COMMIT, "other's problem")]
    );
}

const ADMIN_LINE: &str = "[admin] mirror synced from /srv/private/widget.git in 12 ms";

/// Long on purpose: one release's log, seen from every public face and every admin face.
async fn public_build_logs_leave_out_admin_lines_admins_see_them(db: TestDb) {
    let repo = GitRepo::standard();
    let app = TestApp::builder()
        .database(&db)
        .admin_token(ADMIN_TOKEN)
        .project(ProjectSpec::github("widget", repo.url()))
        .start()
        .await;
    let response = app
        .github_push("widget", "refs/tags/v1.0.0", &repo.rev("v1.0.0"))
        .await;
    assert_eq!(response.status(), 202);
    app.run_queue_until_idle().await;

    // As the worker wrote it: where the repository is, for admins only.
    let location = repo.dir.display().to_string();
    let public_page = app
        .get("/projects/widget/releases/1.0.0")
        .await
        .text()
        .await
        .unwrap();
    let detail = app.get_json("/api/v1/projects/widget/releases/1.0.0").await;
    assert!(
        detail["build_log"]
            .as_str()
            .unwrap()
            .contains("mirror synced"),
        "{detail}"
    );
    for public in [public_page, detail.to_string()] {
        assert!(!public.contains(&location), "{public}");
    }
    let (status, whole) = get_as(
        &app,
        "/api/v1/projects/widget/releases/1.0.0/log",
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        whole
            .lines()
            .any(|l| l.starts_with("[admin] ") && l.contains(&location)),
        "{whole}"
    );

    let log = format!("fetched 18 objects\n{ADMIN_LINE}\ntag v1.0.0 at abc\npackaged in 3 ms\n");
    let public = "fetched 18 objects\ntag v1.0.0 at abc\npackaged in 3 ms\n";
    // A log with a known admin line, written where the worker writes it.
    release::Entity::update_many()
        .col_expr(release::Column::BuildLog, Expr::value(log.clone()))
        .filter(release::Column::Version.eq("1.0.0"))
        .exec(&app.db)
        .await
        .unwrap();

    // Public: the release page and every JSON face, without the admin line.
    let page = app.get("/projects/widget/releases/1.0.0").await;
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(
        page.contains("tag v1.0.0 at abc\npackaged in 3 ms"),
        "{page}"
    );
    let detail = app.get_json("/api/v1/projects/widget/releases/1.0.0").await;
    assert_eq!(detail["build_log"], public);
    for path in [
        "/",
        "/projects/widget",
        "/api/v1/projects",
        "/api/v1/projects/widget",
        "/api/v1/projects/widget/releases",
        "/projects/widget/releases.atom",
        "/releases.atom",
    ] {
        let body = app.get(path).await.text().await.unwrap();
        assert!(!body.contains("/srv/private"), "GET {path}: {body}");
        assert!(!body.contains("[admin]"), "GET {path}");
    }
    assert!(!page.contains("/srv/private") && !page.contains("[admin]"));

    // Admins: the whole log as plain text, and on the admin release page.
    let path = "/api/v1/projects/widget/releases/1.0.0/log";
    for token in [None, Some("wrong")] {
        assert_eq!(get_as(&app, path, token).await.0, 401, "{token:?}");
    }
    let response = app
        .client
        .get(format!("{}{path}", app.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; charset=utf-8"
    );
    assert_eq!(response.text().await.unwrap(), log);
    for missing in [
        "/api/v1/projects/widget/releases/9.9.9/log",
        "/api/v1/projects/nope/releases/1.0.0/log",
    ] {
        let (status, body) = get_as(&app, missing, Some(ADMIN_TOKEN)).await;
        assert_eq!(status, 404, "{missing}");
        let error: Value = serde_json::from_str(&body).unwrap();
        assert!(error["error"].is_string(), "{body}");
    }

    let mut browser = AdminBrowser::logged_in(&app, ADMIN_TOKEN).await;
    let project = browser.get("/admin/projects/widget").await;
    assert_eq!(project.status, 200);
    let releases = project.rows("#releases");
    assert!(
        releases
            .iter()
            .any(|r| r.starts_with("1.0.0 | tag | v1.0.0 | ")),
        "{releases:?}"
    );
    assert!(
        project
            .body
            .contains(r#"href="/admin/projects/widget/releases/1.0.0""#)
    );
    let release = browser.get("/admin/projects/widget/releases/1.0.0").await;
    assert_eq!(release.status, 200);
    let html = scraper::Html::parse_document(&release.body);
    let shown: String = html
        .select(&scraper::Selector::parse("#build-log").unwrap())
        .flat_map(|e| e.text())
        .collect();
    assert_eq!(shown, log);
    let answer = browser.get("/admin/projects/widget/releases/9.9.9").await;
    assert_eq!(answer.status, 404);
}

on_both_databases!(
    failed_refs_are_recorded_replaced_cleared_and_shown_to_admins,
    public_build_logs_leave_out_admin_lines_admins_see_them,
);
