//! The release path end to end: signed push → queue → apalis worker → git2 mirror → archives
//! → release pages, API and downloads.

use std::path::Path;
use std::process::Command;

use crate::on_both_databases;
use crate::support::git::{GitRepo, run};
use crate::support::tree::assert_same_tree;
use crate::support::{ItemState, ProjectSpec, TestApp, TestDb};

fn unpack_tar_gz(bytes: &[u8], into: &Path) {
    std::fs::create_dir_all(into).unwrap();
    let file = into.with_extension("tar.gz");
    std::fs::write(&file, bytes).unwrap();
    run(Command::new("tar")
        .arg("-xzf")
        .arg(&file)
        .arg("-C")
        .arg(into));
}

fn unpack_zip(bytes: &[u8], into: &Path) {
    std::fs::create_dir_all(into).unwrap();
    let file = into.with_extension("zip");
    std::fs::write(&file, bytes).unwrap();
    run(Command::new("unzip")
        .arg("-q")
        .arg(&file)
        .arg("-d")
        .arg(into));
}

async fn signed_github_tag_push_releases_archives_equal_to_git_archive(db: TestDb) {
    let repo = GitRepo::standard();
    let app = TestApp::builder()
        .database(&db)
        .project(ProjectSpec::github("widget", repo.url()))
        .start()
        .await;
    let commit = repo.rev("v1.0.0");

    let response = app.github_push("widget", "refs/tags/v1.0.0", &commit).await;
    assert_eq!(response.status(), 202);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["position"], 1);
    assert_eq!(answer["merged"], false);
    assert!(answer["item"].as_i64().unwrap() > 0);
    app.run_queue_until_idle().await;

    // The pushed tag, and the repository's other tag too (tags heal themselves).
    assert_eq!(app.versions("widget").await, ["1.1.0", "1.0.0"]);
    let release = &app.release("widget", "1.0.0").await;
    assert_eq!(release["kind"], "tag");
    assert_eq!(release["ref"], "v1.0.0");
    assert_eq!(release["commit"], commit.as_str());
    let files = release["files"].as_array().unwrap();
    let names: Vec<&str> = files.iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["widget-1.0.0.tar.gz", "widget-1.0.0.zip"]);

    let work = tempfile::tempdir().unwrap();
    let expected = work.path().join("git-archive");
    repo.archive_into(&commit, "widget-1.0.0", &expected);
    for (index, file) in files.iter().enumerate() {
        let (headers, bytes) = app.download(file["url"].as_str().unwrap()).await;
        assert_eq!(headers["content-length"], bytes.len().to_string().as_str());
        assert_eq!(file["size"], bytes.len() as u64);
        let sha256 = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(&bytes))
        };
        assert_eq!(file["sha256"], sha256.as_str());
        let unpacked = work.path().join(format!("download-{index}"));
        match file["format"].as_str().unwrap() {
            "tar.gz" => {
                assert_eq!(headers["content-type"], "application/gzip");
                unpack_tar_gz(&bytes, &unpacked);
            }
            "zip" => {
                assert_eq!(headers["content-type"], "application/zip");
                unpack_zip(&bytes, &unpacked);
            }
            other => panic!("unexpected format {other}"),
        }
        assert_same_tree(&expected, &unpacked);
    }

    // The maintainer's pages show it.
    let page = app.get("/projects/widget").await.text().await.unwrap();
    assert!(
        page.contains("widget-1.0.0.tar.gz")
            && page.contains(&files[0]["sha256"].as_str().unwrap()[..16])
    );
    let page = app
        .get("/projects/widget/releases/1.0.0")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains(&commit), "release page names the commit");
    let home = app.get("/").await.text().await.unwrap();
    assert!(
        home.contains("/projects/widget/releases/1.1.0"),
        "home links the latest release"
    );
}

async fn gitlab_branch_push_makes_a_dev_release_at_the_pushed_commit(db: TestDb) {
    let mut repo = GitRepo::standard();
    repo.git(&["checkout", "-q", "1.x"]);
    repo.write("feature.txt", b"only on 1.x\n");
    let pushed = repo.commit("Work on 1.x");
    repo.git(&["checkout", "-q", "main"]);
    let app = TestApp::builder()
        .database(&db)
        .project(ProjectSpec::gitlab("widget", repo.url()))
        .start()
        .await;

    let response = app.gitlab_push("widget", "refs/heads/1.x", &pushed).await;
    assert_eq!(response.status(), 202);
    app.run_queue_until_idle().await;

    let release = &app.release("widget", "1.x-dev").await;
    assert_eq!(release["kind"], "dev");
    assert_eq!(release["commit"], pushed.as_str());
    let names: Vec<&str> = release["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["widget-1.x-dev.tar.gz", "widget-1.x-dev.zip"]);

    // The branch moves: the dev release is rebuilt at the new commit, not duplicated.
    repo.git(&["checkout", "-q", "1.x"]);
    repo.write("feature.txt", b"changed on 1.x\n");
    let moved = repo.commit("More work on 1.x");
    let response = app.gitlab_push("widget", "refs/heads/1.x", &moved).await;
    assert_eq!(response.status(), 202);
    app.run_queue_until_idle().await;
    // Rebuilt in place: still one 1.x-dev, now at the new commit.
    assert_eq!(app.versions("widget").await, ["1.1.0", "1.0.0", "1.x-dev"]);
    let release = app.release("widget", "1.x-dev").await;
    assert_eq!(release["commit"], moved.as_str());
    let (_, bytes) = app
        .download(release["files"][0]["url"].as_str().unwrap())
        .await;
    let work = tempfile::tempdir().unwrap();
    unpack_tar_gz(&bytes, &work.path().join("x"));
    let feature = std::fs::read(work.path().join("x/widget-1.x-dev/feature.txt")).unwrap();
    assert_eq!(feature, b"changed on 1.x\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lightweight_tag_and_the_drupal_layout() {
    let repo = GitRepo::standard();
    let app = TestApp::builder()
        .project(ProjectSpec::github("widget", repo.url()).drupal_layout())
        .start()
        .await;
    let commit = repo.rev("1.1.0");
    assert_eq!(
        app.github_push("widget", "refs/tags/1.1.0", &commit)
            .await
            .status(),
        202
    );
    app.run_queue_until_idle().await;
    let release = app.release("widget", "1.1.0").await;
    assert_eq!(release["commit"], commit.as_str());
    let zip_url = release["files"][1]["url"].as_str().unwrap().to_string();
    let (_, bytes) = app.download(&zip_url).await;
    let work = tempfile::tempdir().unwrap();
    let unpacked = work.path().join("zip");
    unpack_zip(&bytes, &unpacked);
    // The drupal layout's top directory is the bare project name.
    let expected = work.path().join("expected");
    repo.archive_into(&commit, "widget", &expected);
    assert_same_tree(&expected, &unpacked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archives_are_byte_identical_across_runs_and_data_dirs() {
    let repo = GitRepo::standard();
    let commit = repo.rev("v1.0.0");
    let mut sums = Vec::new();
    for _ in 0..2 {
        let app = TestApp::builder()
            .project(ProjectSpec::github("widget", repo.url()))
            .start()
            .await;
        assert_eq!(
            app.github_push("widget", "refs/tags/v1.0.0", &commit)
                .await
                .status(),
            202
        );
        app.run_queue_until_idle().await;
        let release = app.release("widget", "1.0.0").await;
        let files: Vec<String> = release["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["sha256"].as_str().unwrap().to_string())
            .collect();
        sums.push(files);
    }
    assert_eq!(sums[0], sums[1]);
}

async fn a_failed_release_leaves_no_row_and_no_file(db: TestDb) {
    let missing = tempfile::tempdir().unwrap();
    let url = format!("file://{}/does-not-exist", missing.path().display());
    let app = TestApp::builder()
        .database(&db)
        .project(ProjectSpec::github("ghost", url))
        .start()
        .await;
    let response = app
        .github_push(
            "ghost",
            "refs/tags/v1.0.0",
            "1111111111111111111111111111111111111111",
        )
        .await;
    assert_eq!(response.status(), 202);
    app.run_queue_until_idle().await;

    assert_eq!(app.release_count().await, 0);
    assert_eq!(app.release_file_count().await, 0);
    assert_eq!(app.items_in(&[ItemState::Failed]).await, 1);
    let files_dir = app.data_dir.join("files");
    let leftovers: Vec<_> = walk_files(&files_dir);
    assert!(leftovers.is_empty(), "files left behind: {leftovers:?}");
    let mirrors: Vec<_> = walk_files(&app.data_dir.join("mirrors"));
    assert!(
        mirrors.is_empty(),
        "a failed clone left a mirror behind: {mirrors:?}"
    );
    let failed = app.the_queue_row().await.last_error.unwrap();
    assert!(failed.contains("does-not-exist"), "{failed}");
}

fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(walk_files(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_files_and_projects_are_404() {
    let repo = GitRepo::standard();
    let app = TestApp::builder()
        .project(ProjectSpec::github("widget", repo.url()))
        .start()
        .await;
    assert_eq!(
        app.get("/files/widget/widget-9.9.9.zip").await.status(),
        404
    );
    assert_eq!(app.get("/files/widget/..%2Fbaler.db").await.status(), 404);
    assert_eq!(app.get("/projects/nope").await.status(), 404);
    assert_eq!(
        app.get("/api/v1/projects/nope/releases").await.status(),
        404
    );
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(app.get("/readyz").await.status(), 200);
    let projects = app.get_json("/api/v1/projects").await;
    assert_eq!(projects[0]["name"], "widget");
}

on_both_databases!(
    signed_github_tag_push_releases_archives_equal_to_git_archive,
    gitlab_branch_push_makes_a_dev_release_at_the_pushed_commit,
    a_failed_release_leaves_no_row_and_no_file,
);
