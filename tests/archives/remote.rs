//! Repositories behind a host: a private one over smart HTTP with a token (offline
//! packaging and the worker), and incremental fetches into an existing mirror.

use std::process::Command;

use baler::git::{Mirror, RemoteAuth};

use super::{baler_package, succeeded, unpack};
use crate::support::git::{GitRepo, run};
use crate::support::smart_http::SmartHttpServer;
use crate::support::tree::assert_same_tree;
use crate::support::{ProjectSpec, TestApp};

/// A private repository served by `git http-backend` behind basic auth, as hosts serve them.
fn private_host_repo() -> (GitRepo, tempfile::TempDir) {
    let mut repo = GitRepo::standard();
    repo.write("src/private.php", b"<?php // private\n");
    repo.commit("Private code");
    let root = tempfile::tempdir().unwrap();
    run(Command::new("git")
        .args(["clone", "-q", "--bare"])
        .arg(&repo.dir)
        .arg(root.path().join("widget.git")));
    (repo, root)
}

/// Long on purpose: one private host, reached by the CLI with a right, a wrong and no token,
/// then by the worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_repositories_over_smart_http_with_a_token() {
    let (repo, root) = private_host_repo();
    let server =
        SmartHttpServer::start(root.path().to_path_buf(), "x-access-token", "s3cret-token").await;
    let url = server.url("widget.git");
    let out = tempfile::tempdir().unwrap();
    let out_arg = out.path().to_str().unwrap().to_string();

    // Offline packaging by URL: with the token it works; without or with a wrong one it
    // fails with a message that says which.
    let ok = {
        let (url, out_arg) = (url.clone(), out_arg.clone());
        tokio::task::spawn_blocking(move || {
            baler_package(
                &[
                    &url,
                    "--ref",
                    "1.1.0",
                    "--name",
                    "widget",
                    "--out",
                    &out_arg,
                    "--token-env",
                    "WIDGET_TOKEN",
                ],
                &[("WIDGET_TOKEN", "s3cret-token")],
            )
        })
        .await
        .unwrap()
    };
    succeeded(&ok);
    let expected = out.path().join("git");
    repo.archive_into(&repo.rev("1.1.0"), "widget-1.1.0", &expected);
    let unpacked = out.path().join("unpacked");
    unpack(&out.path().join("widget-1.1.0.zip"), &unpacked);
    assert_same_tree(&expected, &unpacked);

    for (envs, message) in [
        (vec![], "asks for credentials"),
        (
            vec![("WIDGET_TOKEN", "wrong")],
            "refused the configured credentials",
        ),
    ] {
        let (url, out_arg) = (url.clone(), out_arg.clone());
        let uses_token = !envs.is_empty();
        let failed = tokio::task::spawn_blocking(move || {
            let mut args = vec![url.as_str(), "--ref", "1.1.0", "--out", out_arg.as_str()];
            if uses_token {
                args.extend(["--token-env", "WIDGET_TOKEN"]);
            }
            baler_package(&args, &envs)
        })
        .await
        .unwrap();
        assert!(!failed.status.success());
        let stderr = String::from_utf8_lossy(&failed.stderr);
        assert!(stderr.contains(message), "{stderr}");
        assert!(
            !stderr.contains("wrong"),
            "the token must not be printed: {stderr}"
        );
    }

    // The worker: a project whose token comes from the config releases from the private
    // host; the build log says what the fetch transferred.
    let app = TestApp::builder()
        .project(ProjectSpec::github("widget", url.clone()).git_token("s3cret-token"))
        .start()
        .await;
    let response = app
        .github_push("widget", "refs/tags/1.1.0", &repo.rev("1.1.0"))
        .await;
    assert_eq!(response.status(), 202);
    app.run_queue_until_idle().await;
    let release = app.get_json("/api/v1/projects/widget/releases/1.1.0").await;
    assert_eq!(release["version"], "1.1.0", "{release}");
    assert!(
        release["build_log"]
            .as_str()
            .unwrap_or_default()
            .contains("objects"),
        "{release}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_into_an_existing_mirror_transfers_only_what_is_new() {
    let (mut repo, root) = private_host_repo();
    let server = SmartHttpServer::start(root.path().to_path_buf(), "u", "p").await;
    let url = server.url("widget.git");
    let mirrors = tempfile::tempdir().unwrap();
    let mirror_path = mirrors.path().join("widget.git");
    let auth = RemoteAuth {
        http_user: "u".into(),
        token: Some("p".into()),
        ..RemoteAuth::default()
    };

    let cloned = {
        let (url, mirror_path, auth) = (url.clone(), mirror_path.clone(), auth.clone());
        tokio::task::spawn_blocking(move || {
            Mirror::open_or_clone(&mirror_path, &url, &auth).unwrap().1
        })
        .await
        .unwrap()
    };

    repo.write("src/lib/deep/nested/module.txt", b"changed\n");
    let head = repo.commit("One more commit");
    run(Command::new("git")
        .args(["push", "-q"])
        .arg(root.path().join("widget.git"))
        .arg("HEAD:refs/heads/main")
        .current_dir(&repo.dir));

    let fetched = tokio::task::spawn_blocking(move || {
        let (mirror, fetched) = Mirror::open_or_clone(&mirror_path, &url, &auth).unwrap();
        assert_eq!(mirror.branch_commit("main").unwrap().unwrap().id, head);
        fetched
    })
    .await
    .unwrap();
    // The clone received every object; the fetch the commit, the trees on the changed path
    // and the one changed file.
    assert!(cloned.received_objects >= 15, "{cloned:?}");
    assert!(fetched.received_objects <= 7, "{fetched:?}");
}
