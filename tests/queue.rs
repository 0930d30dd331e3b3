//! Queue semantics through the webhook endpoint.

use std::collections::HashSet;

use crate::on_both_databases;
use crate::support::git::GitRepo;
use crate::support::{ProjectSpec, TestApp, TestDb};

async fn concurrent_pushes_merge_into_one_pending_item(db: TestDb) {
    let repo = GitRepo::standard();
    let app = TestApp::spawn_on(db.clone(), &[ProjectSpec::github("widget", repo.url())]).await;
    app.queue.set_paused(true).await.unwrap();

    // 100 deliveries at once: 50 tags, and 50 pushes to main.
    let mut requests = Vec::new();
    for i in 0..100 {
        let app = &app;
        requests.push(async move {
            let (git_ref, after) = if i % 2 == 0 {
                (format!("refs/tags/t{i}"), format!("{:040}", i + 1))
            } else {
                ("refs/heads/main".to_string(), format!("{:040}", i + 1))
            };
            let response = app.github_push("widget", &git_ref, &after).await;
            assert_eq!(response.status(), 202);
            response.json::<serde_json::Value>().await.unwrap()
        });
    }
    let answers = futures::future::join_all(requests).await;
    let items: HashSet<i64> = answers
        .iter()
        .map(|a| a["item"].as_i64().unwrap())
        .collect();
    assert_eq!(items.len(), 1, "all deliveries share one item");
    assert_eq!(answers.iter().filter(|a| a["merged"] == false).count(), 1);
    assert!(answers.iter().all(|a| a["position"] == 1));

    assert_eq!(
        app.count("SELECT COUNT(*) FROM queue_items WHERE state = 'pending'")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT CAST(MAX(revision) AS BIGINT) FROM queue_items")
            .await,
        100
    );
    let tags = app.count("SELECT COUNT(*) FROM queue_items").await;
    assert_eq!(tags, 1);
    // Every tag accumulated; main holds one commit.
    let refs: String = {
        use sea_orm::ConnectionTrait;
        let row = app
            .db
            .query_one_raw(sea_orm::Statement::from_string(
                app.db.get_database_backend(),
                "SELECT tags FROM queue_items",
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get_by_index(0).unwrap()
    };
    let tags: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&refs).unwrap();
    assert_eq!(tags.len(), 50);
}

async fn a_second_project_waits_behind_the_first(db: TestDb) {
    let repo = GitRepo::standard();
    let app = TestApp::spawn_on(
        db.clone(),
        &[
            ProjectSpec::github("first", repo.url()),
            ProjectSpec::github("second", repo.url()),
        ],
    )
    .await;
    app.queue.set_paused(true).await.unwrap();
    let a = app
        .github_push("first", "refs/tags/v1.0.0", &repo.rev("v1.0.0"))
        .await;
    let b = app
        .github_push("second", "refs/tags/v1.0.0", &repo.rev("v1.0.0"))
        .await;
    let again = app
        .github_push("first", "refs/heads/main", &repo.head())
        .await;
    let a: serde_json::Value = a.json().await.unwrap();
    let b: serde_json::Value = b.json().await.unwrap();
    let again: serde_json::Value = again.json().await.unwrap();
    assert_eq!(a["position"], 1);
    assert_eq!(b["position"], 2);
    // A later push for the first project keeps its item and its place.
    assert_eq!(again["item"], a["item"]);
    assert_eq!(again["position"], 1);
    assert_eq!(again["merged"], true);

    app.queue.set_paused(false).await.unwrap();
    app.run_queue_until_idle().await;
    assert_eq!(app.versions("first").await, ["1.1.0", "1.0.0", "main-dev"]);
}

on_both_databases!(
    concurrent_pushes_merge_into_one_pending_item,
    a_second_project_waits_behind_the_first,
);
