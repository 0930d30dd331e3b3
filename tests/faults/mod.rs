//! A bad day: odd refs, hung hosts, stalled workers, replayed deletions. Each fault stays
//! with its ref, its item or its process, and every other release goes on.

mod deletions;
mod export_subst;
mod hung_hosts;
mod odd_refs;
mod stalled_worker;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::git::{GitRepo, run};
use crate::support::tree::assert_same_tree;
use crate::support::{BalerProcess, ItemState, TestApp};

const TOKEN: &str = "faults-admin-token-7c1f0e9b2a4d6e8f0a1b3c5d7e9f";

async fn problems(app: &TestApp, project: &str) -> Vec<Value> {
    app.admin_json(&format!("/api/v1/projects/{project}/problems"))
        .await
        .as_array()
        .unwrap()
        .clone()
}

fn problem<'a>(problems: &'a [Value], git_ref: &str) -> Option<&'a Value> {
    problems.iter().find(|p| p["ref"] == git_ref)
}

/// Downloads `version`'s tar.gz and checks it unpacks to what `git archive` writes for `rev`.
async fn assert_equal_to_git_archive(app: &TestApp, repo: &GitRepo, project: &str, version: &str) {
    let release = app.release(project, version).await;
    let file = release["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["format"] == "tar.gz")
        .unwrap()
        .clone();
    let (_, bytes) = app.download(file["url"].as_str().unwrap()).await;
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("release.tar.gz");
    std::fs::write(&archive, bytes).unwrap();
    let unpacked = work.path().join("baler");
    std::fs::create_dir_all(&unpacked).unwrap();
    run(Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(&unpacked));
    let expected = work.path().join("git");
    std::fs::create_dir_all(&expected).unwrap();
    let prefix = format!("{project}-{version}");
    repo.archive_into(release["commit"].as_str().unwrap(), &prefix, &expected);
    assert_same_tree(&expected.join(&prefix), &unpacked.join(&prefix));
}

/// Every item ended done: `done` of them, and none pending, running or failed.
async fn assert_all_done(app: &TestApp, done: u64) {
    let queue = app.admin_json("/api/v1/queue").await;
    assert_eq!(queue["items"], serde_json::json!([]), "items not done");
    assert_eq!(app.items_in(&[ItemState::Done]).await, done);
}

fn signal(child: &BalerProcess, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.process.id().to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name}");
}

fn building_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with(".building-"))
                .collect()
        })
        .unwrap_or_default()
}
