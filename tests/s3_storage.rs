//! S3-compatible storage against a real S3 server (`s3s-fs`, which checks SigV4 signatures):
//! releases' files live in the bucket and nowhere else, downloads are proxied (with ranges) or
//! redirected to presigned URLs, what failed or killed jobs left is invisible or removed, and
//! a wrong key, a missing bucket or an unreachable endpoint stop `baler serve` at once with
//! the store's own words.

use std::path::Path;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::on_both_databases;
use crate::support::config::{HttpSettings, StorageSettings};
use crate::support::git::GitRepo;
use crate::support::s3::S3Bucket;
use crate::support::{ConfigFile, Installation, ItemState, ProjectSpec, TestApp, TestDb};

/// Every file under `dir` (none when it does not exist).
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|entry| {
            let path = entry.path();
            if path.is_dir() {
                files_under(&path)
            } else {
                vec![path]
            }
        })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// One tag released into the bucket, then downloaded through two web servers on the same
/// data: one that streams every object (no copies in memory), one that keeps small ones.
async fn releases_live_in_the_bucket_and_download_through_baler(db: TestDb) {
    let bucket = S3Bucket::new();
    let repo = GitRepo::standard();
    let installation = Installation::new(&db).await;
    let start = |memory_mib: u64| {
        TestApp::builder()
            .installation(&installation)
            .s3(&bucket)
            .project(ProjectSpec::github("widget", repo.url()))
            .http(HttpSettings {
                files_in_memory_mib: Some(memory_mib),
                ..HttpSettings::default()
            })
            .start()
    };
    let app = start(0).await;
    app.github_push("widget", "refs/tags/v1.0.0", &repo.rev("v1.0.0"))
        .await;
    app.run_queue_until_idle().await;
    let release = app.release("widget", "1.0.0").await;

    // The repository's two tags are released (the repository is the truth).
    assert_eq!(
        bucket.keys_under("baler/widget/").await,
        [
            "baler/widget/widget-1.0.0.tar.gz",
            "baler/widget/widget-1.0.0.zip",
            "baler/widget/widget-1.1.0.tar.gz",
            "baler/widget/widget-1.1.0.zip",
        ],
        "the archives under the prefix, and no temporary key left"
    );
    // The publish-time documents too: their rows hold no bytes, the bucket does, under each
    // one's ETag, and the web server serves them from there.
    let composer = app.get("/packages.json").await;
    assert_eq!(composer.status(), 200);
    let etag = composer.headers()["etag"].to_str().unwrap().to_string();
    let served = composer.bytes().await.unwrap();
    let stored = bucket
        .read(&format!("baler/.documents/{}", etag.trim_matches('"')))
        .await;
    assert_eq!(served, stored);
    assert!(bucket.keys_under("baler/.documents/").await.len() > 5);
    assert_eq!(app.document_bytes_in_rows().await, 0);

    // Upkeep removes the documents no row names once they are an hour old, and only those.
    let referenced = format!("baler/.documents/{}", etag.trim_matches('"'));
    let stale = "baler/.documents/00000000000000000000000000000000";
    let fresh = "baler/.documents/11111111111111111111111111111111";
    bucket.put(stale, b"a document no row names").await;
    bucket.put(fresh, b"a document about to be named").await;
    bucket.backdate(stale);
    bucket.backdate(&referenced);
    let config = baler::config::Config::from_toml(
        &std::fs::read_to_string(&app.config_path).unwrap(),
        &bucket.env(),
    )
    .unwrap();
    baler::maintenance::Maintenance::new(app.db.clone(), config.open_store().unwrap())
        .run_once()
        .await;
    let documents = bucket.keys_under("baler/.documents/").await;
    assert!(!documents.contains(&stale.to_string()), "{documents:?}");
    assert!(documents.contains(&fresh.to_string()) && documents.contains(&referenced));

    let data_files = files_under(&installation.data_dir());
    assert!(
        data_files.iter().all(|path| {
            let relative = path.strip_prefix(installation.data_dir()).unwrap();
            relative.starts_with("mirrors") || relative.to_string_lossy().starts_with("baler.db")
        }),
        "with S3, data_dir holds only mirrors and the database: {data_files:?}"
    );

    let files = release["files"].as_array().unwrap().clone();
    assert_eq!(files.len(), 2);
    let mut whole = Vec::new();
    for file in &files {
        let name = file["name"].as_str().unwrap();
        let stored = bucket.read(&format!("baler/widget/{name}")).await;
        assert_eq!(sha256_hex(&stored), file["sha256"].as_str().unwrap());
        whole.push((file.clone(), stored));
    }
    for memory_mib in [0, 64] {
        // The second server: the same data, small objects kept in memory.
        let app = if memory_mib == 0 {
            &app
        } else {
            &start(memory_mib).await
        };
        for (file, stored) in &whole {
            let path = file["url"]
                .as_str()
                .unwrap()
                .split_once("/files/")
                .map(|(_, rest)| format!("/files/{rest}"))
                .unwrap();
            let url = format!("{}{path}", app.url);
            let (headers, body) = app.download(&url).await;
            assert_eq!(&body, stored, "{path} with {memory_mib} MiB in memory");
            let etag = headers["etag"].to_str().unwrap().to_string();
            assert_eq!(etag, format!("\"{}\"", file["sha256"].as_str().unwrap()));

            let piece = app
                .client
                .get(&url)
                .header("Range", "bytes=10-19")
                .send()
                .await
                .unwrap();
            assert_eq!(piece.status(), 206, "{path}");
            assert_eq!(
                piece.headers()["content-range"].to_str().unwrap(),
                format!("bytes 10-19/{}", stored.len())
            );
            assert_eq!(&piece.bytes().await.unwrap()[..], &stored[10..20]);

            let past_the_end = app
                .client
                .get(&url)
                .header("Range", format!("bytes={}-", stored.len() + 5))
                .send()
                .await
                .unwrap();
            assert_eq!(past_the_end.status(), 416, "{path}");

            let head = app.client.head(&url).send().await.unwrap();
            assert_eq!(head.status(), 200);
            assert_eq!(
                head.headers()["content-length"].to_str().unwrap(),
                stored.len().to_string()
            );
            assert!(head.bytes().await.unwrap().is_empty());

            let unchanged = app
                .client
                .get(&url)
                .header("If-None-Match", &etag)
                .send()
                .await
                .unwrap();
            assert_eq!(unchanged.status(), 304);
        }
    }
}

/// `downloads = "redirect"`: a 302 to a presigned GET that the S3 server honours (and saves
/// under the file's name), and refuses once the URL is altered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_redirect_to_a_presigned_url() {
    let bucket = S3Bucket::new();
    let repo = GitRepo::standard();
    let mut builder = TestApp::builder()
        .s3(&bucket)
        .project(ProjectSpec::github("widget", repo.url()));
    builder = builder.storage(StorageSettings {
        downloads: Some("redirect".into()),
        presign_seconds: Some(120),
        ..bucket.settings()
    });
    let app = builder.start().await;
    app.github_push("widget", "refs/tags/v1.0.0", &repo.rev("v1.0.0"))
        .await;
    app.run_queue_until_idle().await;
    let release = app.release("widget", "1.0.0").await;
    let file = &release["files"][0];
    let name = file["name"].as_str().unwrap();

    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = no_redirects
        .get(file["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 302);
    let location = answer.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with(&format!(
            "{}/{}/baler/widget/",
            bucket.endpoint, bucket.bucket
        )) && location.contains("X-Amz-Signature=")
            && location.contains("X-Amz-Expires=120"),
        "{location}"
    );

    let signed = no_redirects.get(&location).send().await.unwrap();
    assert_eq!(signed.status(), 200, "the server accepts the signature");
    assert_eq!(
        signed.headers()["content-disposition"].to_str().unwrap(),
        format!("attachment; filename=\"{name}\"")
    );
    let body = signed.bytes().await.unwrap();
    assert_eq!(sha256_hex(&body), file["sha256"].as_str().unwrap());

    // The same signature for another object: refused.
    let other = release["files"][1]["name"].as_str().unwrap();
    let altered = location.replacen(name, other, 1);
    let refused = no_redirects.get(&altered).send().await.unwrap();
    assert_eq!(refused.status(), 403, "{altered}");
}

/// A job whose bucket is gone fails with the store's words and leaves no row; once the bucket
/// is back, the next push releases. A temporary key a killed worker left is removed by the
/// project's next job.
async fn a_job_without_its_bucket_fails_clearly_and_leaves_nothing(db: TestDb) {
    let bucket = S3Bucket::new();
    let repo = GitRepo::standard();
    let app = TestApp::builder()
        .database(&db)
        .s3(&bucket)
        .project(ProjectSpec::github("widget", repo.url()))
        .start()
        .await;
    bucket.remove();
    app.github_push("widget", "refs/tags/v1.0.0", &repo.rev("v1.0.0"))
        .await;
    app.run_queue_until_idle().await;
    assert_eq!(app.items_in(&[ItemState::Failed]).await, 1);
    assert_eq!(app.release_count().await, 0);
    assert_eq!(app.release_file_count().await, 0);
    let failed = app.the_queue_row().await.last_error.unwrap();
    assert!(
        failed.contains(&format!("s3://{}/baler/", bucket.bucket))
            && failed.contains("NoSuchBucket"),
        "{failed}"
    );

    bucket.recreate();
    // What a worker killed in mid-upload leaves: a temporary key of another claim.
    let stale = "baler/widget/.building-dead-claim-x1y2z3";
    bucket.put(stale, b"half an archive").await;
    app.github_push("widget", "refs/tags/v1.0.0", &repo.rev("v1.0.0"))
        .await;
    app.run_queue_until_idle().await;
    assert_eq!(app.versions("widget").await, ["1.1.0", "1.0.0"]);
    assert_eq!(
        bucket.keys_under("baler/widget/").await,
        [
            "baler/widget/widget-1.0.0.tar.gz",
            "baler/widget/widget-1.0.0.zip",
            "baler/widget/widget-1.1.0.tar.gz",
            "baler/widget/widget-1.1.0.zip",
        ]
    );
}

on_both_databases!(
    releases_live_in_the_bucket_and_download_through_baler,
    a_job_without_its_bucket_fails_clearly_and_leaves_nothing,
);

/// Runs `baler serve` on `storage` with `env`, and returns what it printed once it exits
/// (it must, within 20 seconds, and with a failure status).
fn serve_fails(storage: StorageSettings, env: &[(String, String)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config = ConfigFile {
        listen: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.path().join("data")),
        storage: Some(storage),
        ..ConfigFile::default()
    };
    let path = dir.path().join("baler.toml");
    config.write_to(&path);
    let started = Instant::now();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_baler"))
        .args(["serve", "--config"])
        .arg(&path)
        .env("RUST_LOG", "warn")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .envs(env.iter().cloned())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let output = child.wait_with_output().unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            assert!(!status.success(), "serve started: {text}");
            return text;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("baler serve still runs after 20 s on a store it cannot use");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_wrong_key_a_missing_bucket_and_an_unreachable_endpoint_stop_the_start() {
    let bucket = S3Bucket::new();
    let wrong_secret = vec![
        (
            "AWS_ACCESS_KEY_ID".to_string(),
            crate::support::s3::ACCESS_KEY.to_string(),
        ),
        (
            "AWS_SECRET_ACCESS_KEY".to_string(),
            "not-the-secret".to_string(),
        ),
    ];
    let said = serve_fails(bucket.settings(), &wrong_secret);
    assert!(said.contains("refused the keys"), "{said}");

    let said = serve_fails(
        StorageSettings {
            bucket: Some("no-such-bucket".into()),
            ..bucket.settings()
        },
        &bucket.env(),
    );
    assert!(
        said.contains("s3://no-such-bucket/") && said.contains("does not exist"),
        "{said}"
    );

    // A port nothing listens on.
    let endpoint = format!("http://127.0.0.1:{}", crate::support::free_port());
    let said = serve_fails(
        StorageSettings {
            endpoint: Some(endpoint.clone()),
            ..bucket.settings()
        },
        &bucket.env(),
    );
    assert!(
        said.contains(&endpoint) && said.contains("cannot list the bucket"),
        "{said}"
    );

    // A variable the config names, unset: refused before anything is reached.
    let said = serve_fails(
        StorageSettings {
            access_key_env: Some("BALER_TEST_UNSET_KEY".into()),
            ..bucket.settings()
        },
        &bucket.env(),
    );
    assert!(
        said.contains("storage.access_key_env") && said.contains("BALER_TEST_UNSET_KEY"),
        "{said}"
    );
}
