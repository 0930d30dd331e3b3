//! A worker stopped with SIGSTOP past its lease, then resumed, writes nothing once another
//! worker holds its item.

use std::time::Duration;

use baler::startup::Role;

use super::{TOKEN, assert_all_done, assert_equal_to_git_archive, building_files, signal};
use crate::on_both_databases;
use crate::support::git::GitRepo;
use crate::support::{
    BalerProcess, ItemState, ProjectSpec, QueueSettings, TestApp, TestDb, wait_until,
};

async fn a_stalled_worker_writes_nothing_after_its_claim_moves_on(db: TestDb) {
    let mut repo = GitRepo::heavy(24);
    let app = TestApp::builder()
        .database(&db)
        .role(Role::Web)
        .max_attempts(3)
        .admin_token(TOKEN)
        .queue(QueueSettings {
            lease_seconds: Some(2),
            poll_interval_ms: Some(100),
        })
        .project(ProjectSpec::github("heavy", repo.url()))
        .start()
        .await;
    let first = BalerProcess::start(&["worker"], &app.config_path);
    let old = repo.rev("main");
    app.github_push("heavy", "refs/heads/main", &old).await;
    let files = app.data_dir.join("files/heavy");
    wait_until(60, "the first worker to start writing archives", || {
        let files = files.clone();
        async move { !building_files(&files).is_empty() }
    })
    .await;
    signal(&first, "STOP");

    // main moves while the first worker is stopped; the second worker gets the item once
    // the first one's lease has run out, and builds the new commit.
    repo.write("README.md", b"heavy, and newer\n");
    let new = repo.commit("Newer");
    let second = BalerProcess::start(&["worker"], &app.config_path);
    wait_until(60, "the second worker to claim the item", || async {
        let rows = app.queue_rows().await;
        rows.iter().filter(|row| row.attempts == 2).count() == 1
    })
    .await;
    // The stale job now runs alongside the retry.
    signal(&first, "CONT");
    wait_until(120, "the second worker to finish", || async {
        app.items_in(&[ItemState::Done]).await == 1
    })
    .await;
    wait_until(60, "the stale job to stop", || async {
        first.log().contains("the claim was")
    })
    .await;
    // Give the stale job the time to do anything it still would.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let release = app.release("heavy", "main-dev").await;
    assert_eq!(release["commit"], new.as_str(), "the finishing job's rows");
    assert_equal_to_git_archive(&app, &repo, "heavy", "main-dev").await;
    assert_equal_to_git_archive(&app, &repo, "heavy", "1.0.0").await;
    assert!(
        building_files(&files).is_empty(),
        "no temp files remain: {:?}",
        building_files(&files)
    );
    assert_all_done(&app, 1).await;
    assert!(
        !second.log().contains("not acknowledged"),
        "the second worker's claim was ended by the stale one:\n{}",
        second.log()
    );
    assert_ne!(old, new);
}

on_both_databases!(a_stalled_worker_writes_nothing_after_its_claim_moves_on);
