//! Bursts: many deliveries at once, across processes and restarts. Nothing acknowledged with a
//! 2xx is ever lost, and no project is packaged twice at once.

use std::collections::{BTreeMap, HashSet};

use baler::startup::Role;
use futures::StreamExt;
use serde_json::Value;

use crate::on_both_databases;
use crate::support::child::is_healthy;
use crate::support::git::GitRepo;
use crate::support::{
    BalerProcess, ItemState, ProjectSpec, QueueSettings, TestApp, TestDb, wait_until,
};

const PROJECTS: usize = 100;
const PER_PROJECT: usize = 100;
/// Deliveries at these indexes push a tag; all others push `main`.
const TAG_AT: [(usize, &str); 3] = [(10, "r1"), (50, "r2"), (90, "r3")];

fn project_name(p: usize) -> &'static str {
    Box::leak(format!("p{p:03}").into_boxed_str())
}

fn commit_of(p: usize, i: usize) -> String {
    format!("{:040x}", p * 1000 + i + 1)
}

/// A repository with the three tags the burst pushes.
fn tagged_repo() -> GitRepo {
    let mut repo = GitRepo::new();
    for tag in ["r1", "r2", "r3"] {
        repo.write("VERSION", tag.as_bytes());
        repo.commit(tag);
        repo.git(&["tag", tag]);
    }
    repo
}

async fn deliver(app: &TestApp, p: usize, i: usize) -> Value {
    let project = project_name(p);
    let response = match TAG_AT.iter().find(|(at, _)| *at == i) {
        Some((_, tag)) => {
            app.github_push(project, &format!("refs/tags/{tag}"), "")
                .await
        }
        None => {
            app.github_push(project, "refs/heads/main", &commit_of(p, i))
                .await
        }
    };
    assert_eq!(response.status(), 202, "{project} delivery {i}");
    response.json().await.unwrap()
}

async fn ten_thousand_deliveries_over_a_hundred_projects(db: TestDb) {
    let repo = tagged_repo();
    let projects: Vec<ProjectSpec> = (0..PROJECTS)
        .map(|p| ProjectSpec::github(project_name(p), repo.url()))
        .collect();
    let app = TestApp::builder()
        .database(&db)
        .projects(projects)
        .start()
        .await;
    app.queue.set_paused(true).await.unwrap();

    // Each project's first delivery, in project order; then every project's remaining
    // deliveries in order per project, all projects at once (64 requests in flight).
    for p in 0..PROJECTS {
        deliver(&app, p, 0).await;
    }
    let app_ref = &app;
    futures::stream::iter(0..PROJECTS)
        .map(|p| async move {
            for i in 1..PER_PROJECT {
                deliver(app_ref, p, i).await;
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<()>>()
        .await;

    let listing = app.queue.list().await.unwrap();
    assert_eq!(
        listing.items.len(),
        PROJECTS,
        "exactly one pending item per project"
    );
    for (p, item) in listing.items.iter().enumerate() {
        assert_eq!(item.project, project_name(p), "first-arrival order");
        assert_eq!(item.state, "pending");
        assert_eq!(item.position, Some(p as i64 + 1));
        assert_eq!(item.revision as usize, PER_PROJECT, "{}", item.project);
        let newest = BTreeMap::from([("main".to_string(), commit_of(p, PER_PROJECT - 1))]);
        assert_eq!(item.refs.branches, newest, "the newest commit wins");
        let tags: Vec<&str> = item.refs.tags.keys().map(String::as_str).collect();
        assert_eq!(tags, ["r1", "r2", "r3"], "no tag is dropped");
    }

    app.queue.set_paused(false).await.unwrap();
    app.run_queue_until_idle().await;
    assert_eq!(app.items_in(&[ItemState::Done]).await, PROJECTS as u64);
    assert_eq!(app.items_not_in(ItemState::Done).await, 0);
    assert_eq!(app.release_count().await, PROJECTS as u64 * 4);
    // Built once: no release was written twice.
    let rewritten: Vec<_> = app
        .release_rows()
        .await
        .into_iter()
        .filter(|release| release.created_at != release.updated_at)
        .collect();
    assert_eq!(rewritten.len(), 0);
    assert_eq!(app.release_file_count().await, PROJECTS as u64 * 8);
}

/// Web process and two `baler worker` processes on one database: pushes keep arriving while
/// jobs run, and still no project ever has two jobs running at once.
async fn two_worker_processes_never_package_a_project_twice_at_once(db: TestDb) {
    let repo = tagged_repo();
    let projects: Vec<ProjectSpec> = (0..20)
        .map(|p| ProjectSpec::github(project_name(p), repo.url()))
        .collect();
    let app = TestApp::builder()
        .database(&db)
        .role(Role::Web)
        .workers(2)
        .queue(QueueSettings {
            poll_interval_ms: Some(20),
            ..QueueSettings::default()
        })
        .projects(projects)
        .start()
        .await;
    let _workers = [
        BalerProcess::start(&["worker"], &app.config_path),
        BalerProcess::start(&["worker"], &app.config_path),
    ];
    // One push per project, then wait until the worker processes are claiming (they may be
    // slow to start on a loaded machine); the rest arrives while jobs run.
    for p in 0..20 {
        deliver(&app, p, 1).await;
    }
    wait_until(60, "the worker processes to claim", || async {
        app.items_not_in(ItemState::Pending).await > 0
    })
    .await;
    let app_ref = &app;
    futures::stream::iter(0..20)
        .map(|p| async move {
            for i in 1..30 {
                deliver(app_ref, p, i % 10 + 1).await;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
        .buffer_unordered(20)
        .collect::<Vec<()>>()
        .await;
    wait_until(120, "the workers to drain the queue", || async {
        app.items_in(&[ItemState::Pending, ItemState::Running])
            .await
            == 0
    })
    .await;

    assert_eq!(app.items_in(&[ItemState::Failed]).await, 0);
    let jobs = app.queue_rows().await;
    let overlaps = overlapping_jobs(&jobs);
    assert_eq!(overlaps, 0, "two jobs of one project ran at the same time");
    let jobs = jobs.len();
    assert!(
        jobs > 20,
        "pushes arrived while jobs ran, so some projects ran twice: {jobs}"
    );
    assert_eq!(app.release_count().await, 20 * 4);
}

/// How many pairs of one project's jobs ran at the same time: each claimed before the other
/// finished. (A time not set compares as SQL's NULL does: never earlier.)
fn overlapping_jobs(jobs: &[entities::queue_item::Model]) -> usize {
    let earlier = |a: Option<i64>, b: Option<i64>| matches!((a, b), (Some(a), Some(b)) if a < b);
    let mut overlaps = 0;
    for (index, a) in jobs.iter().enumerate() {
        for b in &jobs[index + 1..] {
            let ran_together =
                earlier(a.claimed_at, b.finished_at) && earlier(b.claimed_at, a.finished_at);
            if a.project_id == b.project_id && ran_together {
                overlaps += 1;
            }
        }
    }
    overlaps
}

/// `baler serve --no-worker` is killed with SIGKILL in the middle of a burst and started
/// again: every delivery that was answered 2xx is in the queue afterwards.
async fn a_restart_during_a_burst_loses_no_acknowledged_delivery(db: TestDb) {
    let repo = tagged_repo();
    let app = TestApp::builder()
        .database(&db)
        .role(Role::Web)
        .project(ProjectSpec::github("burst", repo.url()))
        .start()
        .await;
    // The child serves on a port of its own, with the same data and database.
    let child = app.child_config();
    let (child_config, url) = (&child.path, &child.url);
    let client = reqwest::Client::new();
    let up = || is_healthy(&client, url);

    let mut server = BalerProcess::start(&["serve", "--no-worker"], child_config);
    wait_until(30, "the server to start", up).await;

    let acknowledged = std::sync::Mutex::new(HashSet::new());
    let repo_url = repo.url();
    let send = |n: usize| {
        let (client, acknowledged, repo_url) = (&client, &acknowledged, &repo_url);
        async move {
            let body = crate::support::github_push_body(repo_url, &format!("refs/tags/t{n}"), "");
            let signature = baler::hooks::verify::github_signature(crate::support::SECRET, &body);
            let response = client
                .post(format!("{url}/hooks/burst"))
                .header("content-type", "application/json")
                .header("x-github-event", "push")
                .header("x-hub-signature-256", signature)
                .body(body)
                .send()
                .await;
            if response.is_ok_and(|r| r.status().is_success()) {
                acknowledged.lock().unwrap().insert(format!("t{n}"));
            }
        }
    };
    let burst = futures::stream::iter(0..3000)
        .map(send)
        .buffer_unordered(32)
        .collect::<Vec<()>>();
    let killer = async {
        wait_until(30, "part of the burst to land", || async {
            acknowledged.lock().unwrap().len() >= 500
        })
        .await;
        server.kill();
        let restarted = BalerProcess::start(&["serve", "--no-worker"], child_config);
        wait_until(30, "the server to restart", up).await;
        restarted
    };
    let ((), restarted) = futures::join!(
        async {
            burst.await;
        },
        killer
    );
    let acknowledged = acknowledged.into_inner().unwrap();
    drop(restarted);

    assert!(
        acknowledged.len() > 500 && acknowledged.len() < 3000,
        "the kill hit the middle: {}",
        acknowledged.len()
    );
    let listing = app.queue.list().await.unwrap();
    assert_eq!(listing.items.len(), 1);
    let queued: HashSet<String> = listing.items[0].refs.tags.keys().cloned().collect();
    let lost: Vec<_> = acknowledged.difference(&queued).collect();
    assert!(lost.is_empty(), "acknowledged but not queued: {lost:?}");
}

on_both_databases!(
    ten_thousand_deliveries_over_a_hundred_projects,
    two_worker_processes_never_package_a_project_twice_at_once,
    a_restart_during_a_burst_loses_no_acknowledged_delivery,
);
