//! Bitbucket: `X-Hub-Signature` with sha256, and several changes in one delivery.

use super::{hex_hmac, json_type};
use crate::on_both_databases;
use crate::support::git::GitRepo;
use crate::support::{ProjectSpec, SECRET, TestApp, TestDb, fixture};

async fn a_bitbucket_push_with_several_changes_queues_them_all(db: TestDb) {
    let repo = GitRepo::standard();
    let app = TestApp::builder()
        .database(&db)
        .project(ProjectSpec::bitbucket("widget", repo.url()))
        .start()
        .await;
    app.queue.set_paused(true).await.unwrap();
    let mut payload = fixture("webhooks/bitbucket/push.json");
    payload["repository"]["links"]["html"]["href"] = repo.url().into();
    payload["push"]["changes"][0]["new"]["target"]["hash"] = repo.head().into();
    let body = serde_json::to_vec(&payload).unwrap();
    let headers = vec![
        json_type(),
        ("x-event-key", "repo:push".to_string()),
        ("x-request-uuid", "r-1".to_string()),
        (
            "x-hub-signature",
            format!("sha256={}", hex_hmac(SECRET, &body)),
        ),
    ];
    assert_eq!(app.post_hook("widget", &headers, body).await.status(), 202);
    let listing = app.queue.list().await.unwrap();
    assert_eq!(listing.items.len(), 1);
    assert_eq!(listing.items[0].refs.branches["main"], repo.head());
    assert!(listing.items[0].refs.tags.contains_key("v1.0.0"));
    app.queue.set_paused(false).await.unwrap();
    app.run_queue_until_idle().await;
    assert!(
        app.versions("widget")
            .await
            .contains(&"main-dev".to_string())
    );
}

on_both_databases!(a_bitbucket_push_with_several_changes_queues_them_all);
