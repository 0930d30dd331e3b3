//! The scale-out topology, run for real: PostgreSQL, the S3 server (s3s-fs), 2 web processes
//! (`baler serve --no-worker`) and 3 `baler worker` processes, each process with a `data_dir`
//! of its own. A burst of webhooks is split across both web processes, and one worker is
//! killed with SIGKILL in the middle of a job. Then every release is there once with its
//! objects in the bucket, both web processes serve the same bytes, each process's `/metrics`
//! counts what that process did, and the queue is empty.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Instant;

use baler::hooks::verify::github_signature;
use sea_orm::{ConnectionTrait, Database};
use sha2::{Digest, Sha256};

use crate::support::config::{QueueSettings, WorkerSettings};
use crate::support::git::GitRepo;
use crate::support::hung::{HungPrivateHost, hung_private_host};
use crate::support::metrics::Metrics;
use crate::support::s3::S3Bucket;
use crate::support::{
    BalerProcess, ConfigFile, ProjectSpec, SECRET, TestDb, free_port, github_push_body, wait_until,
};

/// Standard repositories released by the burst; a tenth project sits behind a host that hangs
/// until the worker fetching it has been killed.
const PROJECTS: usize = 8;
const PUSHES_PER_PROJECT: usize = 5;

/// One child process and where it is reached.
struct Node {
    process: BalerProcess,
    url: String,
}

/// A signed GitHub push of `git_ref` for `project` (whose repository is `repo`) to `web`.
async fn push(client: &reqwest::Client, web: &str, project: &str, repo: &str, rev: &str) -> u16 {
    let body = github_push_body(repo, "refs/tags/v1.0.0", rev);
    client
        .post(format!("{web}/hooks/{project}"))
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .header("x-github-delivery", uuid::Uuid::new_v4().to_string())
        .header("x-hub-signature-256", github_signature(SECRET, &body))
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_web_and_three_worker_processes_share_postgres_and_s3() {
    let Some(db) = TestDb::postgres() else {
        eprintln!("not run: set BALER_TEST_POSTGRES to a PostgreSQL URL");
        return;
    };
    let database_url = db.fresh_database_url().await.unwrap();
    let bucket = S3Bucket::new();
    let HungPrivateHost {
        repo: slow_repo,
        _root,
        server,
        hung,
    } = hung_private_host().await;
    let repos: Vec<GitRepo> = (0..PROJECTS).map(|_| GitRepo::standard()).collect();
    let mut projects =
        vec![ProjectSpec::github("slow", hung.url("widget.git")).git_token("s3cret-token")];
    projects.extend(
        repos
            .iter()
            .enumerate()
            .map(|(i, repo)| ProjectSpec::github(format!("p{i}"), repo.url())),
    );
    let root = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    // Every process: its own data_dir (and port), the same database, bucket and projects.
    let node = |name: &str, args: &[&str], metrics_listen: bool| {
        let port = free_port();
        let config = ConfigFile {
            listen: Some(format!("127.0.0.1:{port}")),
            metrics_listen: metrics_listen.then(|| format!("127.0.0.1:{port}")),
            data_dir: Some(root.path().join(name)),
            database_url: Some(database_url.clone()),
            workers: Some(2),
            max_attempts: Some(3),
            queue: Some(QueueSettings {
                lease_seconds: Some(3),
                poll_interval_ms: Some(100),
            }),
            worker: Some(WorkerSettings {
                fetch_timeout_seconds: Some(120),
                ..WorkerSettings::default()
            }),
            storage: Some(bucket.settings()),
            projects: projects.clone(),
            ..ConfigFile::default()
        };
        let path: PathBuf = root.path().join(format!("{name}.toml"));
        config.write_to(&path);
        Node {
            process: BalerProcess::start_with_env(args, &path, &bucket.env()),
            url: format!("http://127.0.0.1:{port}"),
        }
    };
    let healthy = async |node: &mut Node| {
        wait_until(60, "a process to answer", || async {
            client
                .get(format!("{}/metrics", node.url))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await;
        // Its own answer, not another process's on the same port.
        assert!(
            node.process.process.try_wait().unwrap().is_none(),
            "{} exited: {}",
            node.url,
            node.process.log()
        );
    };
    // The first web process migrates the database; the others start on it.
    let mut web = [node("web-1", &["serve", "--no-worker"], false)];
    healthy(&mut web[0]).await;
    let mut web = [
        web.into_iter().next().unwrap(),
        node("web-2", &["serve", "--no-worker"], false),
    ];
    healthy(&mut web[1]).await;
    let mut workers: Vec<Node> = (1..=3)
        .map(|i| node(&format!("worker-{i}"), &["worker"], true))
        .collect();
    for worker in &mut workers {
        healthy(worker).await;
    }

    // The slow project's job hangs in its fetch; its worker is killed there.
    let started = Instant::now();
    assert_eq!(
        push(
            &client,
            &web[0].url,
            "slow",
            &hung.url("widget.git"),
            &slow_repo.rev("v1.0.0")
        )
        .await,
        202
    );
    wait_until(30, "a worker's fetch to hang", || async {
        hung.held() >= 1
    })
    .await;
    let db = Database::connect(&database_url).await.unwrap();
    let owner: String = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT lease_owner FROM queue_items WHERE state = 'running'",
        ))
        .await
        .unwrap()
        .expect("the slow project's item is running")
        .try_get("", "lease_owner")
        .unwrap();
    let pid: u32 = owner.split(':').nth(1).unwrap().parse().unwrap();
    let killed = workers
        .iter()
        .position(|w| w.process.process.id() == pid)
        .expect("the lease names one of the worker processes");
    let mut dead = workers.remove(killed);
    dead.process.kill();
    hung.forward_to(server.addr);

    // The burst: every project pushed several times, split across both web processes.
    let mut sent = [0u32; 2];
    for round in 0..PUSHES_PER_PROJECT {
        for (i, repo) in repos.iter().enumerate() {
            let to = (round + i) % 2;
            let status = push(
                &client,
                &web[to].url,
                &format!("p{i}"),
                &repo.url(),
                &repo.rev("v1.0.0"),
            )
            .await;
            assert_eq!(status, 202);
            sent[to] += 1;
        }
    }
    let queue_idle = async |url: &str| {
        let metrics = Metrics::scrape(&client, url).await;
        ["pending", "running", "failed"]
            .iter()
            .all(|state| metrics.value("baler_queue_items", &[("state", state)]) == 0.0)
    };
    wait_until(120, "the workers to drain the queue", || async {
        queue_idle(&web[0].url).await
    })
    .await;
    let drained = started.elapsed();

    // Every release once, its objects in the bucket and nothing else there.
    let mut expected_keys = BTreeSet::new();
    let mut files = Vec::new();
    for name in std::iter::once("slow".to_string()).chain((0..PROJECTS).map(|i| format!("p{i}"))) {
        let listing: serde_json::Value = client
            .get(format!("{}/api/v1/projects/{name}/releases", web[1].url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let versions: Vec<&str> = listing
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["version"].as_str().unwrap())
            .collect();
        assert_eq!(versions, ["1.1.0", "1.0.0"], "{name}");
        for release in listing.as_array().unwrap() {
            for file in release["files"].as_array().unwrap() {
                let file_name = file["name"].as_str().unwrap().to_string();
                expected_keys.insert(format!("baler/{name}/{file_name}"));
                files.push((
                    name.clone(),
                    file_name,
                    file["sha256"].as_str().unwrap().to_string(),
                ));
            }
        }
    }
    // Beside the documents (under `.documents/`): every file once, and nothing else.
    let keys: BTreeSet<String> = bucket
        .keys()
        .await
        .into_iter()
        .filter(|key| !key.starts_with("baler/.documents/"))
        .collect();
    assert_eq!(keys, expected_keys);
    assert!(!bucket.keys_under("baler/.documents/").await.is_empty());

    // Either web process: the same bytes, the recorded checksum.
    let mut served = [0u32; 2];
    for (i, (project, name, sha256)) in files.iter().enumerate() {
        let mut bodies = Vec::new();
        for (w, node) in web.iter().enumerate() {
            let answer = client
                .get(format!("{}/files/{project}/{name}", node.url))
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), 200);
            bodies.push(answer.bytes().await.unwrap());
            served[w] += 1;
            // The second process serves each file twice, so the counts differ by process.
            if w == 1 && i % 2 == 0 {
                client
                    .get(format!("{}/files/{project}/{name}", node.url))
                    .send()
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap();
                served[w] += 1;
            }
        }
        assert_eq!(bodies[0], bodies[1], "{name}");
        assert_eq!(&hex::encode(Sha256::digest(&bodies[0])), sha256, "{name}");
    }

    // Each process's /metrics counts what that process did.
    let done: i64 = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM queue_items WHERE state = 'done'",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "n")
        .unwrap();
    let github_202 = [("provider", "github"), ("status", "202")];
    for (w, node) in web.iter().enumerate() {
        let metrics = Metrics::scrape(&client, &node.url).await;
        let expected = sent[w] + u32::from(w == 0);
        assert_eq!(
            metrics.value("baler_webhook_deliveries_total", &github_202),
            f64::from(expected),
            "web-{}",
            w + 1
        );
        assert_eq!(
            metrics.value("baler_downloads_total", &[]),
            f64::from(served[w]),
            "web-{}",
            w + 1
        );
        assert!(
            !metrics.has("baler_jobs_total"),
            "a web process runs no job"
        );
        assert!(queue_idle(&node.url).await);
    }
    let mut jobs = 0.0;
    for worker in &workers {
        let metrics = Metrics::scrape(&client, &worker.url).await;
        jobs += metrics.value("baler_jobs_total", &[("outcome", "succeeded")]);
        assert!(
            !metrics.has("baler_webhook_deliveries_total"),
            "a worker receives no webhook"
        );
        assert!(queue_idle(&worker.url).await);
    }
    assert_eq!(
        jobs, done as f64,
        "the live workers' jobs are the done items (the killed worker's job was taken over)"
    );

    // What each process keeps on its own disk: no archive anywhere.
    for entry in std::fs::read_dir(root.path()).unwrap().flatten() {
        if entry.path().is_dir() {
            assert!(
                !entry.path().join("files").exists(),
                "{} holds archives",
                entry.path().display()
            );
        }
    }
    println!(
        "multi-node: {} deliveries over 2 web processes, {} done items over 3 workers (one killed \
         mid-job), {} objects; queue drained {:.1} s after the first delivery",
        sent[0] + sent[1] + 1,
        done,
        keys.len(),
        drained.as_secs_f64()
    );
    drop(dead);
}
