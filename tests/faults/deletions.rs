//! Deletions: a replayed one changes nothing, a real one unpublishes, and the tag's return
//! publishes again.

use crate::on_both_databases;
use crate::support::git::GitRepo;
use crate::support::{ProjectSpec, TestApp, TestDb};

/// A GitHub deletion of `widget`'s tag, with its own delivery id.
async fn github_deletion(app: &TestApp, tag: &str, delivery: &str) -> reqwest::Response {
    let deletion = crate::support::github_deletion(
        app.repo_of("widget"),
        &format!("refs/tags/{tag}"),
        delivery,
    );
    app.deliver("widget", deletion).await
}

async fn a_replayed_deletion_changes_nothing(db: TestDb) {
    let repo = GitRepo::standard();
    let app = TestApp::builder()
        .database(&db)
        .project(ProjectSpec::github("widget", repo.url()))
        .start()
        .await;
    app.github_push("widget", "refs/tags/v1.0.0", &repo.rev("v1.0.0"))
        .await;
    app.run_queue_until_idle().await;
    assert!(app.versions("widget").await.contains(&"1.0.0".to_string()));

    // A captured deletion, replayed with new delivery ids: the tag is still there.
    for delivery in ["replay-1", "replay-2"] {
        let response = github_deletion(&app, "v1.0.0", delivery).await;
        assert!(response.status().is_success(), "{}", response.status());
        app.run_queue_until_idle().await;
        assert!(
            app.versions("widget").await.contains(&"1.0.0".to_string()),
            "a deletion of a tag that still exists unpublished its release"
        );
    }

    // A real deletion: the tag is gone from the repository, so the release is unpublished...
    repo.git(&["tag", "-d", "v1.0.0"]);
    github_deletion(&app, "v1.0.0", "real-deletion").await;
    app.run_queue_until_idle().await;
    assert!(!app.versions("widget").await.contains(&"1.0.0".to_string()));
    let page = app.get_json("/api/v1/projects/widget/releases/1.0.0").await;
    assert_eq!(page["version"], "1.0.0", "its page stays");

    // ...and published again when the tag comes back at the same commit.
    repo.git(&["tag", "v1.0.0", page["commit"].as_str().unwrap()]);
    app.github_push(
        "widget",
        "refs/tags/v1.0.0",
        page["commit"].as_str().unwrap(),
    )
    .await;
    app.run_queue_until_idle().await;
    assert!(app.versions("widget").await.contains(&"1.0.0".to_string()));
}

on_both_databases!(a_replayed_deletion_changes_nothing);
