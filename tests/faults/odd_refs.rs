//! Odd refs fail alone, each as a problem of its own, and the rest release; a tag's release
//! never changes.

use super::{TOKEN, assert_all_done, assert_equal_to_git_archive, problem, problems};
use crate::on_both_databases;
use crate::support::git::GitRepo;
use crate::support::{ProjectSpec, TestApp, TestDb};

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

/// Long on purpose: one repository of odd refs: what released, what failed and why, the logs,
/// and when a failed ref is tried again.
async fn odd_refs_fail_alone_and_the_rest_release(db: TestDb) {
    let mut repo = odd_repository();
    let app = TestApp::builder()
        .database(&db)
        .admin_token(TOKEN)
        .project(ProjectSpec::github("odd", repo.url()))
        .start()
        .await;

    // A push of main: the job also scans every tag, and no odd tag stops it.
    let response = app
        .github_push("odd", "refs/heads/main", &repo.rev("main"))
        .await;
    assert_eq!(response.status(), 202);
    // Drained first, so that the second push makes an item of its own rather than merging
    // into this one while it still waits.
    app.run_queue_until_idle().await;
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

async fn tag_releases_never_change(db: TestDb) {
    let mut repo = GitRepo::standard();
    repo.git(&["tag", "main-dev", "v1.0.0"]);
    let app = TestApp::builder()
        .database(&db)
        .admin_token(TOKEN)
        .project(ProjectSpec::github("widget", repo.url()))
        .start()
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

on_both_databases!(
    odd_refs_fail_alone_and_the_rest_release,
    tag_releases_never_change,
);
