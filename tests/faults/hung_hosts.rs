//! Hosts that never answer: no slot is held past the fetch limit, a job past its time limit
//! is abandoned, and SIGTERM during a hung fetch exits within the drain.

use std::time::{Duration, Instant};

use baler::startup::Role;

use super::{TOKEN, signal};
use crate::on_both_databases;
use crate::support::git::GitRepo;
use crate::support::hung::{HungHost, HungPrivateHost, hung_private_host};
use crate::support::{
    BalerProcess, ItemState, ProjectSpec, QueueSettings, TestApp, TestDb, WorkerSettings,
    wait_until,
};

async fn hung_hosts_hold_no_slot_past_the_fetch_limit(db: TestDb) {
    let hung = HungHost::start().await;
    let good = GitRepo::standard();
    let app = TestApp::builder()
        .database(&db)
        .workers(2)
        .admin_token(TOKEN)
        .job_limits(WorkerSettings {
            fetch_timeout_seconds: Some(3),
            ..WorkerSettings::default()
        })
        .project(ProjectSpec::github("stuck_one", hung.url("one.git")))
        .project(ProjectSpec::github("stuck_two", hung.url("two.git")))
        .project(ProjectSpec::github("fine", good.url()))
        .start()
        .await;
    for project in ["stuck_one", "stuck_two"] {
        let response = app.github_push(project, "refs/tags/v1.0.0", "").await;
        assert_eq!(response.status(), 202);
    }
    wait_until(30, "both hung fetches to take both slots", || async {
        hung.held() >= 2
    })
    .await;
    let pushed = Instant::now();
    let response = app
        .github_push("fine", "refs/tags/v1.0.0", &good.rev("v1.0.0"))
        .await;
    assert_eq!(response.status(), 202);
    wait_until(30, "the third project to release", || async {
        app.get("/api/v1/projects/fine/releases/1.0.0")
            .await
            .status()
            == 200
    })
    .await;
    let took = pushed.elapsed();
    assert!(
        took < Duration::from_secs(3 + 10),
        "released {took:?} after its push, past the fetch limit plus a little"
    );
    wait_until(30, "the hung items to fail", || async {
        app.items_in(&[ItemState::Failed]).await == 2
    })
    .await;
    let queue = app.admin_json("/api/v1/queue").await;
    for item in queue["items"].as_array().unwrap() {
        if item["project"] == "fine" {
            continue;
        }
        let error = item["last_error"].as_str().unwrap_or_default();
        assert!(
            error.contains("sent nothing for 3 s") && error.contains("fetch_timeout_seconds"),
            "{item}"
        );
    }
}

async fn a_job_past_its_time_limit_is_abandoned(db: TestDb) {
    let hung = HungHost::start().await;
    let good = GitRepo::standard();
    let app = TestApp::builder()
        .database(&db)
        .workers(1)
        .admin_token(TOKEN)
        .job_limits(WorkerSettings {
            fetch_timeout_seconds: Some(600),
            job_timeout_seconds: Some(2),
            ..WorkerSettings::default()
        })
        .project(ProjectSpec::github("stuck", hung.url("stuck.git")))
        .project(ProjectSpec::github("fine", good.url()))
        .start()
        .await;
    app.github_push("stuck", "refs/tags/v1.0.0", "").await;
    wait_until(30, "the hung fetch to take the only slot", || async {
        hung.held() >= 1
    })
    .await;
    let pushed = Instant::now();
    app.github_push("fine", "refs/tags/v1.0.0", &good.rev("v1.0.0"))
        .await;
    wait_until(30, "the other project to release", || async {
        app.get("/api/v1/projects/fine/releases/1.0.0")
            .await
            .status()
            == 200
    })
    .await;
    assert!(pushed.elapsed() < Duration::from_secs(2 + 10));
    let queue = app.admin_json("/api/v1/queue").await;
    let stuck = queue["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["project"] == "stuck")
        .unwrap()
        .clone();
    assert_eq!(stuck["state"], "failed", "{stuck}");
    assert!(
        stuck["last_error"]
            .as_str()
            .unwrap()
            .contains("job_timeout_seconds"),
        "{stuck}"
    );
}

async fn sigterm_during_a_hung_fetch_exits_after_the_drain(db: TestDb) {
    let HungPrivateHost {
        repo,
        _root,
        server,
        hung,
    } = hung_private_host().await;
    let app = TestApp::builder()
        .database(&db)
        .role(Role::Web)
        .max_attempts(5)
        .queue(QueueSettings {
            lease_seconds: Some(2),
            poll_interval_ms: Some(100),
        })
        .job_limits(WorkerSettings {
            drain_seconds: Some(2),
            fetch_timeout_seconds: Some(120),
            ..WorkerSettings::default()
        })
        .project(ProjectSpec::github("widget", hung.url("widget.git")).git_token("s3cret-token"))
        .start()
        .await;
    let mut first = BalerProcess::start(&["worker"], &app.config_path);
    let response = app
        .github_push("widget", "refs/tags/v1.0.0", &repo.rev("v1.0.0"))
        .await;
    assert_eq!(response.status(), 202);
    wait_until(30, "the first worker's fetch to hang", || async {
        hung.held() >= 1
    })
    .await;

    signal(&first, "TERM");
    let asked = Instant::now();
    let exited = loop {
        if let Some(status) = first.process.try_wait().unwrap() {
            break Some(status);
        }
        if asked.elapsed() > Duration::from_secs(2 + 5) {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        exited.is_some(),
        "still running {:?} after SIGTERM, past drain_seconds + 5 s:\n{}",
        asked.elapsed(),
        first.log()
    );

    // The host recovers; the next process retries the item once the lease has expired.
    hung.forward_to(server.addr);
    let _second = BalerProcess::start(&["worker"], &app.config_path);
    wait_until(60, "the next process to release the tag", || async {
        app.get("/api/v1/projects/widget/releases/1.0.0")
            .await
            .status()
            == 200
    })
    .await;
    assert_eq!(app.items_in(&[ItemState::Done]).await, 1);
}

on_both_databases!(
    hung_hosts_hold_no_slot_past_the_fetch_limit,
    a_job_past_its_time_limit_is_abandoned,
    sigterm_during_a_hung_fetch_exits_after_the_drain,
);
