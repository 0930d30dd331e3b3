//! Leases: a worker killed in the middle of packaging loses its claim; the item returns to
//! pending in its place and another worker finishes it, with one set of files and no debris.

use baler::startup::Role;

use crate::on_both_databases;
use crate::support::git::GitRepo;
use crate::support::{
    BalerProcess, ItemState, ProjectSpec, QueueSettings, TestApp, TestDb, wait_until,
};

fn building_files(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn a_worker_killed_mid_packaging_is_replaced_after_its_lease(db: TestDb) {
    let repo = GitRepo::heavy(24);
    // The web process queues; real `baler worker` processes do the work.
    let app = TestApp::builder()
        .database(&db)
        .role(Role::Web)
        .max_attempts(3)
        .queue(QueueSettings {
            lease_seconds: Some(2),
            poll_interval_ms: Some(100),
        })
        .project(ProjectSpec::github("heavy", repo.url()))
        .start()
        .await;
    let mut first = BalerProcess::start(&["worker"], &app.config_path);

    let commit = repo.rev("v1.0.0");
    assert_eq!(
        app.github_push("heavy", "refs/tags/v1.0.0", &commit)
            .await
            .status(),
        202
    );
    let files = app.data_dir.join("files/heavy");
    wait_until(60, "the first worker to start writing archives", || {
        let files = files.clone();
        async move {
            building_files(&files)
                .iter()
                .any(|f| f.starts_with(".building-"))
        }
    })
    .await;
    first.kill();
    assert_eq!(
        app.items_in(&[ItemState::Running]).await,
        1,
        "the dead worker's claim is still held until its lease expires"
    );

    let _second = BalerProcess::start(&["worker"], &app.config_path);
    wait_until(90, "the second worker to finish the release", || async {
        app.items_in(&[ItemState::Done]).await == 1
    })
    .await;

    assert_eq!(app.release_count().await, 1);
    assert_eq!(app.release_file_count().await, 2);
    let mut names = building_files(&files);
    names.sort();
    assert_eq!(
        names,
        ["heavy-1.0.0.tar.gz", "heavy-1.0.0.zip"],
        "exactly one set of files, no debris"
    );
    assert_eq!(
        app.the_queue_row().await.attempts,
        2,
        "the killed attempt counts"
    );
    let release = app.release("heavy", "1.0.0").await;
    let (_, bytes) = app
        .download(release["files"][0]["url"].as_str().unwrap())
        .await;
    assert_eq!(release["files"][0]["size"], bytes.len() as u64);
}

on_both_databases!(a_worker_killed_mid_packaging_is_replaced_after_its_lease);
