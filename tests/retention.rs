//! Retention end to end, on both databases and both storage kinds: the curator removes the
//! dev snapshot of a deleted branch (rows and files), the files of a deleted tag (its row
//! stays), finished queue items and old audit rows, each audited; published releases keep
//! every byte; the storage page shows what each project keeps and what the next run removes.

use std::time::Duration;

use reqwest::Method;

use crate::on_both_databases;
use crate::support::browser::AdminBrowser;
use crate::support::config::RetentionSettings;
use crate::support::git::GitRepo;
use crate::support::s3::S3Bucket;
use crate::support::{
    ADMIN_TOKEN, AuditRow, ItemState, ProjectSpec, TestApp, TestAppBuilder, TestDb,
    github_deletion, wait_until,
};

/// `main` and `feature`, tags `v1.0.0` and `v2.0.0`.
fn repository() -> GitRepo {
    let mut repo = GitRepo::new();
    repo.write("README.md", b"kept\n");
    repo.commit("First");
    repo.git(&["tag", "v1.0.0"]);
    repo.git(&["branch", "feature"]);
    repo.write("CHANGELOG", b"2\n");
    repo.commit("Second");
    repo.git(&["tag", "v2.0.0"]);
    repo
}

fn project(repo: &GitRepo) -> ProjectSpec {
    ProjectSpec::github("widget", repo.url())
        .branches(&["main", "feature"])
        .rescan_every("off")
}

/// Releases everything, then deletes the branch and the tag as the host would tell it.
async fn release_then_delete(app: &TestApp, repo: &GitRepo) {
    let (status, _) = app
        .admin_call(Method::POST, "/api/v1/projects/widget/rebuild")
        .await;
    assert_eq!(status, 200);
    app.run_queue_until_idle().await;
    assert_eq!(
        app.versions("widget").await,
        ["2.0.0", "1.0.0", "main-dev", "feature-dev"]
    );
    repo.git(&["branch", "-D", "feature"]);
    repo.git(&["tag", "-d", "v2.0.0"]);
    for (n, gone) in ["refs/heads/feature", "refs/tags/v2.0.0"]
        .iter()
        .enumerate()
    {
        let deletion = github_deletion(app.repo_of("widget"), gone, &format!("gone-{n}"));
        assert!(app.deliver("widget", deletion).await.status().is_success());
    }
    app.run_queue_until_idle().await;
    assert_eq!(app.versions("widget").await, ["1.0.0", "main-dev"]);
}

fn file_names(release: &serde_json::Value) -> Vec<String> {
    release["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect()
}

/// Where the store keeps a project's files: names under `data_dir/files/widget`, or keys
/// under the bucket's prefix.
enum Kept<'a> {
    Disk,
    Bucket(&'a S3Bucket),
}

impl Kept<'_> {
    async fn names(&self, app: &TestApp) -> Vec<String> {
        match self {
            Kept::Disk => {
                let mut names: Vec<String> =
                    std::fs::read_dir(app.data_dir.join("files").join("widget"))
                        .unwrap()
                        .map(|e| e.unwrap().file_name().into_string().unwrap())
                        .collect();
                names.sort();
                names
            }
            Kept::Bucket(bucket) => bucket
                .keys_under("baler/widget/")
                .await
                .into_iter()
                .map(|key| key.trim_start_matches("baler/widget/").to_string())
                .collect(),
        }
    }
}

async fn curator_removes_what_retention_says(builder: TestAppBuilder, kept: Kept<'_>) {
    let repo = repository();
    let app = builder
        .admin_token(ADMIN_TOKEN)
        .project(project(&repo))
        .retention(RetentionSettings {
            interval: Some("1s".into()),
            deleted_branches_after: Some("2s".into()),
            unpublished_after: Some("2s".into()),
            finished_items_after: Some("2s".into()),
            audit_after: Some("off".into()),
        })
        .start()
        .await;
    release_then_delete(&app, &repo).await;
    let tag_files = file_names(&app.get_json("/api/v1/projects/widget/releases/2.0.0").await);
    let kept_before = kept.names(&app).await;
    assert_eq!(kept_before.len(), 8, "{kept_before:?}");

    wait_until(
        30,
        "the curator to remove the deleted refs' files",
        || async { kept.names(&app).await.len() == 4 },
    )
    .await;
    let names = kept.names(&app).await;
    assert_eq!(
        names,
        [
            "widget-1.0.0.tar.gz",
            "widget-1.0.0.zip",
            "widget-main-dev.tar.gz",
            "widget-main-dev.zip"
        ]
    );
    // The dev snapshot is gone whole; the deleted tag keeps its row (its version stays
    // taken) without files; published releases keep every byte.
    let snapshot = app
        .get("/api/v1/projects/widget/releases/feature-dev")
        .await;
    assert_eq!(snapshot.status(), 404);
    let tag = app.get_json("/api/v1/projects/widget/releases/2.0.0").await;
    assert_eq!(tag["status"], "unpublished");
    assert!(file_names(&tag).is_empty(), "{tag}");
    for name in &tag_files {
        let download = app.get(&format!("/files/widget/{name}")).await;
        assert_eq!(download.status(), 404, "{name}");
    }
    let mut kept_bytes = 0;
    for version in ["1.0.0", "main-dev"] {
        let release = app.release("widget", version).await;
        for file in release["files"].as_array().unwrap() {
            let (_, bytes) = app.download(file["url"].as_str().unwrap()).await;
            assert_eq!(file["size"], bytes.len(), "{version}");
            kept_bytes += bytes.len();
        }
    }
    // Finished items go once two seconds old.
    wait_until(30, "the finished items to be removed", || async {
        app.items_in(&[ItemState::Done]).await == 0
    })
    .await;

    let trail = app.audit_trail().await;
    for (action, target) in [
        ("retention.release", "release widget feature-dev"),
        ("retention.files", "release widget 2.0.0"),
        ("retention.items", "queue"),
    ] {
        assert!(
            trail.contains(&AuditRow::new("curator", action, target)),
            "{action}: {trail:?}"
        );
    }
    // Each run is recorded.
    let mut browser = AdminBrowser::logged_in(&app, ADMIN_TOKEN).await;
    let page = browser.get("/admin/storage").await;
    let rows = page.rows("#storage");
    assert_eq!(rows[0], format!("widget | 4 | {kept_bytes}"), "{rows:?}");
    assert!(
        page.body.contains("id=\"last-run\">Started"),
        "{}",
        page.body
    );
}

async fn curator_on_local_storage(db: TestDb) {
    curator_removes_what_retention_says(TestApp::builder().database(&db), Kept::Disk).await;
}

async fn curator_on_s3_storage(db: TestDb) {
    let bucket = S3Bucket::new();
    curator_removes_what_retention_says(
        TestApp::builder().database(&db).s3(&bucket),
        Kept::Bucket(&bucket),
    )
    .await;
}

/// With the defaults, nothing published is due and a deleted tag's files are kept; the
/// storage page shows what each project keeps and what the next run would remove with
/// shorter settings. Old audit rows go when `audit_after` says.
async fn the_storage_page_forecasts_the_next_run(db: TestDb) {
    let repo = repository();
    let app = TestApp::builder()
        .database(&db)
        .admin_token(ADMIN_TOKEN)
        .project(project(&repo))
        .retention(RetentionSettings {
            interval: Some("1h".into()),
            deleted_branches_after: Some("1s".into()),
            audit_after: Some("2s".into()),
            ..RetentionSettings::default()
        })
        .start()
        .await;
    release_then_delete(&app, &repo).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;

    let mut browser = AdminBrowser::logged_in(&app, ADMIN_TOKEN).await;
    let page = browser.get("/admin/storage").await;
    let storage = page.rows("#storage");
    assert_eq!(storage.len(), 2, "{storage:?}");
    assert!(storage[0].starts_with("widget | 8 | "), "{storage:?}");
    let doomed = page.rows("#doomed");
    assert_eq!(doomed.len(), 1, "only the deleted branch: {doomed:?}");
    assert!(
        doomed[0].starts_with("widget | feature-dev | release and files | 2 | "),
        "{doomed:?}"
    );
    let next = page.rows("#retention-settings");
    assert_eq!(next, ["1h | 1s | off | 30days | 2s"]);
    let forecast: String = page
        .body
        .split("id=\"next-run\"")
        .nth(1)
        .unwrap()
        .to_string();
    assert!(
        forecast.contains("1 dev snapshots of deleted branches, 0 deleted tags"),
        "{forecast}"
    );
    // The rebuild's audit row is over two seconds old: the next run removes it.
    assert!(!forecast.contains(">0 audit rows"), "{forecast}");
    // The first run came at start, before anything was old enough.
    assert!(
        page.body.contains("Removed 0 dev snapshots"),
        "{}",
        page.body
    );
}

/// Audit rows older than `audit_after` go, and the removal is itself audited.
async fn old_audit_rows_are_pruned(db: TestDb) {
    let app = TestApp::builder()
        .database(&db)
        .admin_token(ADMIN_TOKEN)
        .retention(RetentionSettings {
            interval: Some("1s".into()),
            audit_after: Some("2s".into()),
            ..RetentionSettings::default()
        })
        .start()
        .await;
    let (status, _) = app.admin_call(Method::POST, "/api/v1/queue/pause").await;
    assert_eq!(status, 200);
    let paused = AuditRow::new("admin_token", "queue.pause", "queue");
    assert!(app.audit_trail().await.contains(&paused));
    let pruned = AuditRow::new("curator", "retention.audit", "audit log");
    wait_until(
        30,
        "the pause to be pruned, and the pruning audited",
        || async {
            let trail = app.audit_trail().await;
            !trail.contains(&paused) && trail.contains(&pruned)
        },
    )
    .await;
}

on_both_databases!(
    old_audit_rows_are_pruned,
    curator_on_local_storage,
    curator_on_s3_storage,
    the_storage_page_forecasts_the_next_run,
);
