//! A bad day: odd refs, hung hosts, stalled workers, replayed deletions. Each fault stays
//! with its ref, its item or its process, and every other release goes on.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use baler::startup::Role;
use serde_json::Value;

use crate::on_both_databases;
use crate::support::git::{GitRepo, run};
use crate::support::hung::HungHost;
use crate::support::smart_http::SmartHttpServer;
use crate::support::tree::assert_same_tree;
use crate::support::{Child, ProjectSpec, TestApp, TestDb, wait_until};

const TOKEN: &str = "faults-admin-token-7c1f0e9b2a4d6e8f0a1b3c5d7e9f";

async fn admin_json(app: &TestApp, path: &str) -> Value {
    let response = app
        .client
        .get(format!("{}{path}", app.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "GET {path}");
    response.json().await.unwrap()
}

async fn problems(app: &TestApp, project: &str) -> Vec<Value> {
    admin_json(app, &format!("/api/v1/projects/{project}/problems"))
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
async fn assert_all_done(app: &TestApp, done: i64) {
    let queue = admin_json(app, "/api/v1/queue").await;
    assert_eq!(queue["items"], serde_json::json!([]), "items not done");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM queue_items WHERE state = 'done'")
            .await,
        done
    );
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.0.id().to_string())
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

/// A repository with every kind of odd tag: on a blob, on a tree, an old tag whose tree holds
/// a backslash name, names that cannot be versions, and good tags and a branch.
fn odd_repository() -> GitRepo {
    let mut repo = GitRepo::new();
    repo.write("README.md", b"odd\n");
    repo.write(
        "weird\\name.txt",
        b"a backslash in a name, as git stores it\n",
    );
    repo.commit("An old layout");
    repo.git(&["tag", "0.9.0"]);
    repo.git(&["rm", "-q", "weird\\name.txt"]);
    repo.write("src/lib.php", b"<?php\n");
    repo.commit("Tidy up");
    repo.git(&["tag", "v1.0.0"]);
    // A second tag of the same version: the first one in the job releases, this one fails.
    repo.git(&["tag", "1.0.0"]);
    let blob = repo.git(&["hash-object", "-w", "README.md"]);
    repo.git(&["tag", "junk-blob", &blob]);
    repo.git(&["tag", "tree-tag", "HEAD^{tree}"]);
    repo.git(&["tag", "release!1"]);
    repo.git(&["tag", "main-dev"]);
    repo
}

async fn odd_refs_fail_alone_and_the_rest_release(db: TestDb) {
    let mut repo = odd_repository();
    let database = TestApp::database_line(&db).await;
    let app = TestApp::spawn_with(
        &[ProjectSpec::github("odd", repo.url())],
        &format!("max_attempts = 1\nadmin_token = \"{TOKEN}\"\n{database}"),
    )
    .await;

    // A push of main: the job also scans every tag, and no odd tag stops it.
    let response = app
        .github_push("odd", "refs/heads/main", &repo.rev("main"))
        .await;
    assert_eq!(response.status(), 202);
    // A push that names the tree tag itself: that one is the push's problem to show.
    let response = app.github_push("odd", "refs/tags/tree-tag", "").await;
    assert_eq!(response.status(), 202);
    app.run_queue_until_idle().await;

    let mut versions = app.versions("odd").await;
    versions.sort();
    assert_eq!(versions, ["0.9.0", "1.0.0", "main-dev"]);
    assert_all_done(&app, 2).await;
    assert_equal_to_git_archive(&app, &repo, "odd", "0.9.0").await;
    assert_equal_to_git_archive(&app, &repo, "odd", "1.0.0").await;

    let found = problems(&app, "odd").await;
    let tree_commit = repo.git(&["rev-parse", "HEAD^{tree}"]);
    let tree = problem(&found, "refs/tags/tree-tag").expect("the queued tree tag is a problem");
    assert_eq!(tree["commit"], tree_commit.as_str());
    assert!(tree["reason"].as_str().unwrap().contains("tree"), "{tree}");
    let bad_name = problem(&found, "refs/tags/release!1").expect("release!1 is a problem");
    assert_eq!(bad_name["commit"], repo.rev("release!1").as_str());
    assert!(
        bad_name["reason"]
            .as_str()
            .unwrap()
            .contains("cannot name a release"),
        "{bad_name}"
    );
    let reserved = problem(&found, "refs/tags/main-dev").expect("the main-dev tag is a problem");
    assert!(
        reserved["reason"]
            .as_str()
            .unwrap()
            .contains("dev snapshot"),
        "{reserved}"
    );
    assert!(
        problem(&found, "refs/tags/junk-blob").is_none(),
        "a blob tag found by the scan is skipped, not a problem: {found:?}"
    );
    let twin = problem(&found, "refs/tags/v1.0.0").expect("the second tag of 1.0.0 fails");
    assert!(
        twin["reason"]
            .as_str()
            .unwrap()
            .contains("also the version of tag \"1.0.0\""),
        "{twin}"
    );
    assert_eq!(found.len(), 4, "{found:?}");

    // The build log says what was skipped; the public one never names the repository.
    let release = app.release("odd", "main-dev").await;
    let public_log = app.get_json("/api/v1/projects/odd/releases/main-dev").await["build_log"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(public_log.contains("junk-blob"), "{public_log}");
    let repo_path = repo.dir.display().to_string();
    assert!(!public_log.contains(&repo_path), "{public_log}");
    let page = app.get("/projects/odd/releases/main-dev").await;
    assert!(!page.text().await.unwrap().contains(&repo_path));
    let admin_log = app
        .client
        .get(format!(
            "{}/api/v1/projects/odd/releases/main-dev/log",
            app.url
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(admin_log.contains(&repo_path), "{admin_log}");
    assert_eq!(release["kind"], "dev");

    // Failed refs wait for their ref to move: another push does not try them again...
    let before = problem(&found, "refs/tags/release!1").unwrap()["at"].clone();
    repo.write("more.txt", b"more\n");
    repo.commit("More");
    app.github_push("odd", "refs/heads/main", &repo.rev("main"))
        .await;
    app.run_queue_until_idle().await;
    let again = problems(&app, "odd").await;
    assert_eq!(
        problem(&again, "refs/tags/release!1").unwrap()["at"],
        before
    );
    // ...and one that moves is tried again (and here fails again, at its new commit).
    repo.git(&["tag", "-f", "release!1", "HEAD"]);
    let response = app
        .github_push("odd", "refs/tags/release!1", &repo.rev("main"))
        .await;
    assert_eq!(response.status(), 202, "{:?}", response.text().await);
    app.run_queue_until_idle().await;
    let moved = problems(&app, "odd").await;
    assert_eq!(
        problem(&moved, "refs/tags/release!1").unwrap()["commit"],
        repo.rev("main").as_str()
    );
    assert_all_done(&app, 4).await;
}

async fn hung_hosts_hold_no_slot_past_the_fetch_limit(db: TestDb) {
    let hung = HungHost::start().await;
    let good = GitRepo::standard();
    let database = TestApp::database_line(&db).await;
    let app = TestApp::spawn_with(
        &[
            ProjectSpec::github("stuck_one", hung.url("one.git")),
            ProjectSpec::github("stuck_two", hung.url("two.git")),
            ProjectSpec::github("fine", good.url()),
        ],
        &format!(
            "workers = 2\nmax_attempts = 1\nadmin_token = \"{TOKEN}\"\n{database}\
             [worker]\nfetch_timeout_seconds = 3\n"
        ),
    )
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
        app.count("SELECT COUNT(*) FROM queue_items WHERE state = 'failed'")
            .await
            == 2
    })
    .await;
    let queue = admin_json(&app, "/api/v1/queue").await;
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
    let database = TestApp::database_line(&db).await;
    let app = TestApp::spawn_with(
        &[
            ProjectSpec::github("stuck", hung.url("stuck.git")),
            ProjectSpec::github("fine", good.url()),
        ],
        &format!(
            "workers = 1\nmax_attempts = 1\nadmin_token = \"{TOKEN}\"\n{database}\
             [worker]\nfetch_timeout_seconds = 600\njob_timeout_seconds = 2\n"
        ),
    )
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
    let queue = admin_json(&app, "/api/v1/queue").await;
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

/// A repository served over smart HTTP (with a token), reached through a host that hangs
/// until it is told to forward.
async fn hung_private_host() -> (GitRepo, tempfile::TempDir, SmartHttpServer, HungHost) {
    let repo = GitRepo::standard();
    let root = tempfile::tempdir().unwrap();
    run(Command::new("git")
        .args(["clone", "-q", "--bare"])
        .arg(&repo.dir)
        .arg(root.path().join("widget.git")));
    let server =
        SmartHttpServer::start(root.path().to_path_buf(), "x-access-token", "s3cret-token").await;
    (repo, root, server, HungHost::start().await)
}

async fn sigterm_during_a_hung_fetch_exits_after_the_drain(db: TestDb) {
    let (repo, _root, server, hung) = hung_private_host().await;
    let database = TestApp::database_line(&db).await;
    let spec = ProjectSpec {
        extra: "token = \"s3cret-token\"",
        ..ProjectSpec::github("widget", hung.url("widget.git"))
    };
    let app = TestApp::start(
        Role::Web,
        &[spec],
        &format!(
            "max_attempts = 5\n{database}[queue]\nlease_seconds = 2\npoll_interval_ms = 100\n\
             [worker]\ndrain_seconds = 2\nfetch_timeout_seconds = 120\n"
        ),
    )
    .await;
    let mut first = Child::baler(&["worker"], &app.config_path);
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
        if let Some(status) = first.0.try_wait().unwrap() {
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
    let _second = Child::baler(&["worker"], &app.config_path);
    wait_until(60, "the next process to release the tag", || async {
        app.get("/api/v1/projects/widget/releases/1.0.0")
            .await
            .status()
            == 200
    })
    .await;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM queue_items WHERE state = 'done'")
            .await,
        1
    );
}

async fn a_stalled_worker_writes_nothing_after_its_claim_moves_on(db: TestDb) {
    let mut repo = GitRepo::heavy(24);
    let database = TestApp::database_line(&db).await;
    let app = TestApp::start(
        Role::Web,
        &[ProjectSpec::github("heavy", repo.url())],
        &format!(
            "max_attempts = 3\nadmin_token = \"{TOKEN}\"\n{database}\
             [queue]\nlease_seconds = 2\npoll_interval_ms = 100\n"
        ),
    )
    .await;
    let first = Child::baler(&["worker"], &app.config_path);
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
    let second = Child::baler(&["worker"], &app.config_path);
    wait_until(60, "the second worker to claim the item", || async {
        app.count("SELECT COUNT(*) FROM queue_items WHERE attempts = 2")
            .await
            == 1
    })
    .await;
    // The stale job now runs alongside the retry.
    signal(&first, "CONT");
    wait_until(120, "the second worker to finish", || async {
        app.count("SELECT COUNT(*) FROM queue_items WHERE state = 'done'")
            .await
            == 1
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

async fn tag_releases_never_change(db: TestDb) {
    let mut repo = GitRepo::standard();
    repo.git(&["tag", "main-dev", "v1.0.0"]);
    let database = TestApp::database_line(&db).await;
    let app = TestApp::spawn_with(
        &[ProjectSpec::github("widget", repo.url())],
        &format!("max_attempts = 1\nadmin_token = \"{TOKEN}\"\n{database}"),
    )
    .await;
    app.github_push("widget", "refs/tags/v1.0.0", &repo.rev("v1.0.0"))
        .await;
    app.run_queue_until_idle().await;
    let tag = app.release("widget", "1.0.0").await;
    let mut bytes = Vec::new();
    for file in tag["files"].as_array().unwrap() {
        bytes.push(app.download(file["url"].as_str().unwrap()).await.1);
    }
    assert!(
        problem(&problems(&app, "widget").await, "refs/tags/main-dev").is_some(),
        "a tag named like a dev snapshot fails as a ref"
    );

    // A push to main makes the dev snapshot main-dev; the tag of that name never becomes one.
    repo.write("next.txt", b"next\n");
    let head = repo.commit("Next");
    app.github_push("widget", "refs/heads/main", &head).await;
    // The tag v1.0.0 is moved by force: its release keeps the old commit and bytes.
    repo.git(&["tag", "-f", "v1.0.0", "HEAD"]);
    app.github_push("widget", "refs/tags/v1.0.0", &head).await;
    app.run_queue_until_idle().await;

    let dev = app.release("widget", "main-dev").await;
    assert_eq!(dev["kind"], "dev");
    assert_eq!(dev["commit"], head.as_str());
    let again = app.release("widget", "1.0.0").await;
    assert_eq!(again["commit"], tag["commit"]);
    assert_eq!(again["files"], tag["files"]);
    for (file, before) in again["files"].as_array().unwrap().iter().zip(&bytes) {
        assert_eq!(&app.download(file["url"].as_str().unwrap()).await.1, before);
    }
    let moved = problems(&app, "widget").await;
    let moved = problem(&moved, "refs/tags/v1.0.0").expect("the moved tag is a problem");
    assert!(
        moved["reason"].as_str().unwrap().contains("moved"),
        "{moved}"
    );
}

/// A GitHub deletion of `widget`'s tag, with its own delivery id.
async fn github_deletion(app: &TestApp, tag: &str, delivery: &str) -> reqwest::Response {
    let (headers, body) = crate::support::github_deletion(
        app.repo_of("widget"),
        &format!("refs/tags/{tag}"),
        delivery,
    );
    app.post_hook("widget", &headers, body).await
}

async fn a_replayed_deletion_changes_nothing(db: TestDb) {
    let repo = GitRepo::standard();
    let database = TestApp::database_line(&db).await;
    let app = TestApp::spawn_with(
        &[ProjectSpec::github("widget", repo.url())],
        &format!("max_attempts = 1\n{database}"),
    )
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

on_both_databases!(
    odd_refs_fail_alone_and_the_rest_release,
    hung_hosts_hold_no_slot_past_the_fetch_limit,
    a_job_past_its_time_limit_is_abandoned,
    sigterm_during_a_hung_fetch_exits_after_the_drain,
    a_stalled_worker_writes_nothing_after_its_claim_moves_on,
    tag_releases_never_change,
    a_replayed_deletion_changes_nothing,
);

/// The process's peak resident memory, in bytes (Linux's `VmHWM`).
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status");
    kb * 1024
}

async fn an_export_subst_bomb_fails_its_ref_in_bounded_memory(db: TestDb) {
    // 180 KB of `$Format:%B$` with a 32 KB commit message would expand to about 540 MB.
    let mut repo = GitRepo::new();
    repo.write(".gitattributes", b"bomb.txt export-subst\n");
    repo.write("bomb.txt", &b"$Format:%B$".repeat(180 * 1024 / 11));
    repo.write("README.md", b"bomb\n");
    repo.git(&["add", "-A"]);
    let message = format!("Bomb\n\n{}", "x".repeat(32 * 1024));
    repo.git(&["commit", "-q", "-m", &message]);
    repo.git(&["tag", "bomb"]);
    repo.git(&["rm", "-q", "bomb.txt"]);
    repo.commit("Defused");
    repo.git(&["tag", "v1.0.0"]);
    let database = TestApp::database_line(&db).await;
    let app = TestApp::start(
        Role::Web,
        &[ProjectSpec::github("bomb", repo.url())],
        &format!("max_attempts = 1\nadmin_token = \"{TOKEN}\"\n{database}"),
    )
    .await;
    // The real server process (web and workers), whose memory the test reads.
    let (server, _) = app.serve_child(&["serve"]).await;
    let before = peak_rss(server.0.id());
    // One push; the job's scan of every tag finds the bomb too.
    app.github_push("bomb", "refs/tags/v1.0.0", &repo.rev("v1.0.0"))
        .await;
    wait_until(120, "the job to finish", || async {
        app.count("SELECT COUNT(*) FROM queue_items WHERE state IN ('done', 'failed')")
            .await
            == 1
    })
    .await;
    assert_all_done(&app, 1).await;
    assert_eq!(app.versions("bomb").await, ["1.0.0"]);
    let found = problems(&app, "bomb").await;
    let bomb = problem(&found, "refs/tags/bomb").expect("the bomb is a problem");
    let reason = bomb["reason"].as_str().unwrap();
    assert!(
        reason.contains("export-subst") && reason.contains("bomb.txt"),
        "{reason}"
    );
    let peak = peak_rss(server.0.id());
    assert!(
        peak < 200 << 20,
        "the server's peak RSS was {} MB (before the job: {} MB)",
        peak >> 20,
        before >> 20
    );
}

on_both_databases!(an_export_subst_bomb_fails_its_ref_in_bounded_memory);
