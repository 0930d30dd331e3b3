//! Redeliveries get their first answer back and change nothing; deletions are hints the
//! worker checks, so a replayed one unpublishes nothing.

use baler::hooks::verify::github_signature;
use serde_json::Value;

use super::{hex_hmac, json_type};
use crate::on_both_databases;
use crate::support::git::GitRepo;
use crate::support::{ItemState, ProjectSpec, SECRET, TestApp, TestDb, fixture};

async fn a_redelivery_gets_the_first_answer_and_changes_nothing(db: TestDb) {
    let repo = GitRepo::standard();
    let app = TestApp::builder()
        .database(&db)
        .project(ProjectSpec::github("widget", repo.url()))
        .start()
        .await;
    app.queue.set_paused(true).await.unwrap();
    let send = |delivery: &'static str, git_ref: &'static str| {
        let (app, url) = (&app, repo.url());
        async move {
            let body = crate::support::github_push_body(&url, git_ref, "abc");
            let headers = vec![
                json_type(),
                ("x-github-event", "push".to_string()),
                ("x-github-delivery", delivery.to_string()),
                ("x-hub-signature-256", github_signature(SECRET, &body)),
            ];
            let response = app.post_hook("widget", &headers, body).await;
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let first = send("delivery-1", "refs/heads/main").await;
    app.github_push("widget", "refs/heads/1.x", "def").await;
    let again = send("delivery-1", "refs/heads/main").await;
    assert_eq!(first, again, "the same answer, word for word");
    let revision = app.the_queue_row().await.revision;
    assert_eq!(revision, 2, "the redelivery was not merged again");
    assert!(
        app.last_delivery()
            .await
            .reason
            .contains("first answer replayed")
    );
    // The same delivery id with another body is another delivery (ids are not signed).
    let other = send("delivery-1", "refs/tags/v1.0.0").await;
    assert_eq!(other.0, 202);
    assert_eq!(app.the_queue_row().await.revision, 3);
}

/// Whether `project`'s release `version` is listed (unpublished ones are not).
async fn published(app: &TestApp, project: &str, version: &str) -> bool {
    app.versions(project).await.iter().any(|v| v == version)
}

/// A deletion in a payload is a hint: it queues the project for the worker to look at the
/// repository, and unpublishes nothing at intake. A captured deletion replayed with new
/// delivery ids, for a tag that still exists, therefore changes no release.
///
/// Long on purpose: one deletion delivered, redelivered and replayed, each step checking the
/// item the one before left.
async fn a_deletion_is_queued_and_unpublishes_nothing_at_intake(db: TestDb) {
    let repo = GitRepo::standard();
    let app = TestApp::builder()
        .database(&db)
        .project(ProjectSpec::github("widget", repo.url()))
        .project(ProjectSpec::gitea("gt", repo.url()))
        .start()
        .await;
    app.github_push("widget", "refs/tags/v1.0.0", &repo.rev("v1.0.0"))
        .await;
    app.run_queue_until_idle().await;
    let release = app.release("widget", "1.0.0").await;

    app.queue.set_paused(true).await.unwrap();
    let send = |delivery: &'static str| {
        let (app, url) = (&app, repo.url());
        async move {
            let deletion = crate::support::github_deletion(&url, "refs/tags/v1.0.0", delivery);
            let response = app.deliver("widget", deletion).await;
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let first = send("deletion-1").await;
    assert_eq!(first.0, 202, "queued like a push: {}", first.1);
    assert_eq!(first.1["merged"], false);
    assert_eq!(
        app.last_delivery().await.reason,
        r#"queued; tag "v1.0.0" was deleted: the worker checks the repository"#
    );
    assert!(
        published(&app, "widget", "1.0.0").await,
        "nothing is unpublished at intake"
    );
    let listing = app.queue.list().await.unwrap();
    assert_eq!(listing.items.len(), 1);
    assert_eq!(
        listing.items[0].refs.tags["v1.0.0"], "",
        "no commit to trust"
    );

    // The same delivery again is a redelivery: its first answer, nothing merged.
    assert_eq!(send("deletion-1").await, first, "the same answer");
    let revision = || async { app.queue_rows_in(ItemState::Pending).await[0].revision };
    assert_eq!(revision().await, 1);
    assert!(
        app.last_delivery()
            .await
            .reason
            .contains("first answer replayed")
    );

    // Replayed with a new delivery id: a new delivery, merged into the item, and still
    // nothing unpublished.
    let replayed = send("deletion-2").await;
    assert_eq!(
        (replayed.0, &replayed.1["merged"]),
        (202, &Value::Bool(true))
    );
    assert_eq!(revision().await, 2);
    assert!(published(&app, "widget", "1.0.0").await);

    // Gitea's `delete` event names the short ref; it is a hint the same way.
    let mut payload = fixture("webhooks/gitea/push.json");
    payload["repository"]["clone_url"] = repo.url().into();
    let deletion = serde_json::json!({
        "ref": "1.x",
        "ref_type": "branch",
        "repository": payload["repository"],
    });
    let body = serde_json::to_vec(&deletion).unwrap();
    let headers = vec![
        json_type(),
        ("x-gitea-event", "delete".to_string()),
        ("x-gitea-delivery", "g-1".to_string()),
        ("x-gitea-signature", hex_hmac(SECRET, &body)),
    ];
    assert_eq!(app.post_hook("gt", &headers, body).await.status(), 202);
    let listing = app.queue.list().await.unwrap();
    let gitea = listing.items.iter().find(|i| i.project == "gt").unwrap();
    assert_eq!(gitea.refs.branches["1.x"], "");

    // The tag is still in the repository: the worker finds it and the release stays, with
    // the same files.
    app.queue.set_paused(false).await.unwrap();
    app.run_queue_until_idle().await;
    assert_eq!(app.release("widget", "1.0.0").await, release);
    let page = app.get("/projects/widget").await.text().await.unwrap();
    assert!(
        !page.contains("unpublished"),
        "not marked on the project page"
    );

    // Once the tag is really gone, a deletion is still only queued: whether the release goes
    // is for the worker to decide after its fetch.
    app.queue.set_paused(true).await.unwrap();
    repo.git(&["tag", "-d", "v1.0.0"]);
    assert_eq!(send("deletion-3").await.0, 202);
    assert!(
        published(&app, "widget", "1.0.0").await,
        "nothing is unpublished at intake"
    );
}

on_both_databases!(
    a_redelivery_gets_the_first_answer_and_changes_nothing,
    a_deletion_is_queued_and_unpublishes_nothing_at_intake,
);
