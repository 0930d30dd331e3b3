//! Queue semantics through the webhook endpoint.

use std::collections::HashSet;

use crate::on_both_databases;
use crate::support::git::GitRepo;
use crate::support::{BalerProcess, ItemState, ProjectSpec, QueueSettings, TestApp, TestDb};

async fn concurrent_pushes_merge_into_one_pending_item(db: TestDb) {
    let repo = GitRepo::standard();
    let app = TestApp::builder()
        .database(&db)
        .project(ProjectSpec::github("widget", repo.url()))
        .start()
        .await;
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

    assert_eq!(app.items_in(&[ItemState::Pending]).await, 1);
    let rows = app.queue_rows().await;
    assert_eq!(rows.iter().map(|row| row.revision).max(), Some(100));
    assert_eq!(rows.len(), 1);
    // Every tag accumulated; main holds one commit.
    let tags: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&rows[0].tags).unwrap();
    assert_eq!(tags.len(), 50);
}

async fn a_second_project_waits_behind_the_first(db: TestDb) {
    let repo = GitRepo::standard();
    let app = TestApp::builder()
        .database(&db)
        .project(ProjectSpec::github("first", repo.url()))
        .project(ProjectSpec::github("second", repo.url()))
        .start()
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

async fn a_waiting_item_updated_still_runs_first_with_the_merged_refs(db: TestDb) {
    let repo = GitRepo::standard();
    let app = TestApp::builder()
        .database(&db)
        .workers(1)
        .project(ProjectSpec::github("alpha", repo.url()))
        .project(ProjectSpec::github("beta", repo.url()))
        .start()
        .await;
    app.queue.set_paused(true).await.unwrap();
    let a: serde_json::Value = app
        .github_push("alpha", "refs/tags/v1.0.0", "")
        .await
        .json()
        .await
        .unwrap();
    app.github_push("beta", "refs/tags/v1.0.0", "").await;
    let merged: serde_json::Value = app
        .github_push("alpha", "refs/heads/1.x", &repo.rev("1.x"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (merged["item"].clone(), merged["position"].clone()),
        (a["item"].clone(), 1.into())
    );

    app.queue.set_paused(false).await.unwrap();
    app.run_queue_until_idle().await;
    // One worker: alpha's item was claimed first, and it carried the merged branch.
    assert_eq!(app.first_claimed_project().await, "alpha");
    assert!(app.versions("alpha").await.contains(&"1.x-dev".to_string()));
    assert!(!app.versions("beta").await.contains(&"1.x-dev".to_string()));
}

async fn a_push_while_the_job_runs_makes_exactly_one_follow_up(db: TestDb) {
    let mut repo = GitRepo::heavy(24);
    let app = TestApp::builder()
        .database(&db)
        .project(ProjectSpec::github("heavy", repo.url()))
        .start()
        .await;
    let first = repo.head();
    let started: serde_json::Value = app
        .github_push("heavy", "refs/heads/main", &first)
        .await
        .json()
        .await
        .unwrap();
    crate::support::wait_until(60, "the job to start", || async {
        app.items_in(&[ItemState::Running]).await == 1
    })
    .await;
    repo.write("README.md", b"second\n");
    let second = repo.commit("Second");
    let follow_up: serde_json::Value = app
        .github_push("heavy", "refs/heads/main", &second)
        .await
        .json()
        .await
        .unwrap();
    // Not merged into the running job: a new item, first in line.
    assert_ne!(follow_up["item"], started["item"]);
    assert_eq!(follow_up["merged"], false);
    assert_eq!(follow_up["position"], 1);
    assert_eq!(
        app.items_in(&[ItemState::Running]).await,
        1,
        "the push arrived while the first job still ran"
    );

    app.run_queue_until_idle().await;
    // The running job's ack did not remove the follow-up: both ran, the snapshot is current.
    assert_eq!(app.items_in(&[ItemState::Done]).await, 2);
    assert_eq!(app.item_count().await, 2);
    assert_eq!(
        app.release("heavy", "main-dev").await["commit"],
        second.as_str()
    );
}

async fn retries_back_off_then_fail_and_a_later_push_starts_fresh(db: TestDb) {
    let repo = GitRepo::standard();
    let missing = tempfile::tempdir().unwrap();
    let moved = missing.path().join("repo");
    let app = TestApp::builder()
        .database(&db)
        .max_attempts(3)
        .project(ProjectSpec::github(
            "flaky",
            format!("file://{}", moved.display()),
        ))
        .start()
        .await;
    app.github_push("flaky", "refs/tags/v1.0.0", "").await;
    app.run_queue_until_idle().await;
    assert_eq!(app.items_in(&[ItemState::Failed]).await, 1);
    let failed = app.the_queue_row().await;
    assert_eq!(failed.attempts, 3);
    // Backoff: 200 ms, then 400 ms between the three attempts.
    let spent = failed.finished_at.unwrap() - failed.enqueued_at;
    assert!(spent >= 600, "three attempts took only {spent} ms");

    // The repository appears; a new push is new work, not the failed item's fourth attempt.
    crate::support::git::run(
        std::process::Command::new("git")
            .args(["clone", "-q", "--bare"])
            .arg(&repo.dir)
            .arg(&moved),
    );
    let again: serde_json::Value = app
        .github_push("flaky", "refs/tags/v1.0.0", "")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["merged"], false);
    app.run_queue_until_idle().await;
    assert_eq!(app.items_in(&[ItemState::Failed]).await, 1);
    assert_eq!(app.items_in(&[ItemState::Done]).await, 1);
    assert_eq!(
        app.release("flaky", "1.0.0").await["commit"],
        repo.rev("v1.0.0").as_str()
    );
}

on_both_databases!(
    a_waiting_item_updated_still_runs_first_with_the_merged_refs,
    a_push_while_the_job_runs_makes_exactly_one_follow_up,
    retries_back_off_then_fail_and_a_later_push_starts_fresh,
);

/// A worker whose lease expired acknowledges its old revision after a newer push merged into
/// the requeued item: the ack is refused, and the merged work stays queued in its place.
///
/// Long on purpose: one stale claim against every queue operation, in the order a real race
/// runs them.
async fn an_old_revisions_ack_after_a_merge_changes_nothing(db: TestDb) {
    let repo = GitRepo::standard();
    let app = TestApp::builder()
        .database(&db)
        .role(baler::startup::Role::Web)
        .project(ProjectSpec::github("widget", repo.url()))
        .start()
        .await;
    let queue = baler::queue::Queue::new(
        app.db.clone(),
        baler::queue::QueueTuning {
            lease: std::time::Duration::from_millis(100),
            heartbeat: std::time::Duration::from_millis(25),
            idle_poll: std::time::Duration::from_millis(50),
            backoff: std::time::Duration::from_millis(50),
            max_attempts: 5,
        },
    );
    let first: serde_json::Value = app
        .github_push("widget", "refs/heads/main", "c1")
        .await
        .json()
        .await
        .unwrap();
    // Both claims come from one owner (one process): fencing is per claim, not per owner.
    let claimed = queue.claim("worker").await.unwrap().unwrap();
    assert_eq!(
        (claimed.id, claimed.revision),
        (first["item"].as_i64().unwrap(), 1)
    );

    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    assert_eq!(queue.reclaim_expired().await.unwrap(), 1);
    let merged: serde_json::Value = app
        .github_push("widget", "refs/heads/1.x", "c2")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        merged["item"], first["item"],
        "the requeued item keeps its id"
    );
    assert_eq!(merged["merged"], true);
    assert_eq!(merged["position"], 1);

    assert!(
        !queue.ack(claimed.id, &claimed.token, 1).await.unwrap(),
        "a stale ack is refused"
    );
    assert!(!queue.heartbeat(claimed.id, &claimed.token).await.unwrap());
    let again = queue.claim("worker").await.unwrap().unwrap();
    assert_eq!(again.id, claimed.id);
    assert_ne!(again.token, claimed.token, "each claim has its own token");
    // The stale claim can neither renew, fail nor end the new one.
    assert!(!queue.heartbeat(claimed.id, &claimed.token).await.unwrap());
    queue
        .fail(claimed.id, &claimed.token, "stale failure")
        .await
        .unwrap();
    assert!(
        !queue
            .ack(claimed.id, &claimed.token, again.revision)
            .await
            .unwrap()
    );
    assert!(queue.heartbeat(again.id, &again.token).await.unwrap());
    // The fence every write of a job passes: only the current claim holds the row.
    let txn = baler::db::begin_write(&app.db).await.unwrap();
    assert!(
        !queue
            .holds_claim_on(&txn, claimed.id, &claimed.token)
            .await
            .unwrap(),
        "a stale claim passes the fence"
    );
    assert!(
        queue
            .holds_claim_on(&txn, again.id, &again.token)
            .await
            .unwrap()
    );
    txn.rollback().await.unwrap();
    assert!(again.revision > 1);
    assert_eq!(
        again.refs.branches.len(),
        2,
        "both pushes are in the item: {:?}",
        again.refs
    );
    assert!(
        queue
            .ack(again.id, &again.token, again.revision)
            .await
            .unwrap()
    );
}

on_both_databases!(an_old_revisions_ack_after_a_merge_changes_nothing);

/// On PostgreSQL a `baler worker` process is woken by NOTIFY when another process queues
/// work: with a 60 s poll interval, the release still starts at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_processes_on_postgres_wake_on_new_work() {
    let Some(db) = TestDb::postgres() else {
        eprintln!("not run: set BALER_TEST_POSTGRES to a PostgreSQL URL");
        return;
    };
    let repo = GitRepo::standard();
    let app = TestApp::builder()
        .database(&db)
        .role(baler::startup::Role::Web)
        .project(ProjectSpec::github("widget", repo.url()))
        .queue(QueueSettings {
            poll_interval_ms: Some(60000),
            ..QueueSettings::default()
        })
        .start()
        .await;
    let worker = BalerProcess::start(&["worker"], &app.config_path);
    // Started, found nothing, and is now idle until its next poll in a minute.
    crate::support::wait_until(60, "the worker to start", || async {
        worker.log().contains("Worker release started")
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    let started = std::time::Instant::now();
    assert_eq!(
        app.github_push("widget", "refs/tags/v1.0.0", "")
            .await
            .status(),
        202
    );
    crate::support::wait_until(20, "the woken worker to release", || async {
        app.items_in(&[ItemState::Done]).await == 1
    })
    .await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "released by a notification, not by the 60 s poll"
    );
    assert!(app.versions("widget").await.contains(&"1.0.0".to_string()));
}
