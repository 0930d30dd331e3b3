//! Time from a signed webhook to a downloadable release, on the real server, for a small and a
//! larger repository, without and with release signing (`[signing]`: each archive and
//! `SHA256SUMS` signed, provenance DSSE-signed); and, as the peer, `git archive` writing the
//! same two formats of the same commit. Prints figures; asserts nothing about speed (only that
//! a signed release's `.minisig` is served).
//!
//!     cargo bench --bench release_latency
//!
//! `BALER_BENCH_FILES` sets the larger repository's file count (default 4000, ~26 MB).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use baler::config::Config;
use baler::hooks::verify::github_signature;
use baler::queue::QueueTuning;
use baler::startup::{Application, Role};

const SECRET: &str = "bench-secret";
const RUNS: usize = 5;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.org")
        .env("GIT_COMMITTER_NAME", "Bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.org")
        .env("GIT_AUTHOR_DATE", "@1700000000 +0000")
        .env("GIT_COMMITTER_DATE", "@1700000000 +0000")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A repository of `files` files of mixed, compressible text in nested directories.
fn make_repo(dir: &Path, files: usize) -> String {
    std::fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "-q", "-b", "main"]);
    let mut seed = 0x2545F4914F6CDD1Du64;
    for i in 0..files {
        let path = dir.join(format!("src/m{}/d{}/file{i}.php", i % 17, i % 5));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut content = String::new();
        for line in 0..(80 + i % 160) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            content.push_str(&format!(
                "    $value_{line} = compute_{}($input, {});\n",
                seed % 997,
                seed % 100_000
            ));
        }
        std::fs::write(path, content).unwrap();
    }
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "Bench content"]);
    git(dir, &["rev-parse", "HEAD"])
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

async fn bench_repo(label: &str, files: usize, signed: bool) {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    let commit = make_repo(&repo, files);
    let size: u64 = walk_size(&repo.join("src"));
    let mut toml = format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nworkers = 2\n\
         [[projects]]\nname = \"bench\"\nrepo = \"file://{}\"\nprovider = \"github\"\nsecret = \"{SECRET}\"\n",
        temp.path().join("data").display(),
        repo.display()
    );
    let label = if signed {
        let key = baler::signing::generate(&temp.path().join("key"), None).unwrap();
        toml.push_str(&format!(
            "[signing]\nminisign_key_file = \"{}\"\n",
            key.secret_path.display()
        ));
        format!("{label}, signed")
    } else {
        label.to_string()
    };
    let config = Config::from_toml(&toml, &[]).unwrap();
    let tuning = QueueTuning {
        idle_poll: Duration::from_millis(50),
        ..config.queue_tuning()
    };
    let app = Application::build_with(config, Role::Serve, tuning)
        .await
        .unwrap()
        .with_fetch_program(env!("CARGO_BIN_EXE_baler").into());
    let base = format!("http://{}", app.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();

    let mut latencies = Vec::new();
    for run in 0..=RUNS {
        let tag = format!("v1.0.{run}");
        git(&repo, &["tag", &tag, &commit]);
        let body = format!(
            "{{\"ref\":\"refs/tags/{tag}\",\"after\":\"{commit}\",\"deleted\":false,\"head_commit\":{{\"id\":\"{commit}\"}},\"repository\":{{\"clone_url\":\"file://{}\"}}}}",
            repo.display()
        );
        let started = Instant::now();
        let response = client
            .post(format!("{base}/hooks/bench"))
            .header("content-type", "application/json")
            .header("x-github-event", "push")
            .header(
                "x-hub-signature-256",
                github_signature(SECRET, body.as_bytes()),
            )
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let file = format!("{base}/files/bench/bench-1.0.{run}.zip");
        loop {
            if client.head(&file).send().await.unwrap().status() == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if signed {
            let signature = client.get(format!("{file}.minisig")).send().await.unwrap();
            assert_eq!(signature.status(), 200, "a signed release has its .minisig");
        }
        // The first run also clones the mirror; it is reported apart.
        if run == 0 {
            println!(
                "{label}: first release (clone + package): {}",
                ms(started.elapsed())
            );
        } else {
            latencies.push(started.elapsed());
        }
    }

    let mut peer = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        for (format, file) in [("tar.gz", "peer.tar.gz"), ("zip", "peer.zip")] {
            git(
                &repo,
                &[
                    "archive",
                    &format!("--format={format}"),
                    "--prefix=bench-1.0.0/",
                    "-o",
                    temp.path().join(file).to_str().unwrap(),
                    &commit,
                ],
            );
        }
        peer.push(started.elapsed());
    }
    println!(
        "{label}: {files} files, {:.1} MB; webhook → downloadable (fetch + tar.gz + zip + record), median of {RUNS}: {}",
        size as f64 / 1e6,
        ms(median(latencies))
    );
    println!(
        "{label}: peer `git archive` tar.gz + zip of the same commit, median of {RUNS}: {}",
        ms(median(peer))
    );
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

fn walk_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                walk_size(&p)
            } else {
                e.metadata().unwrap().len()
            }
        })
        .sum()
}

fn main() {
    let files = std::env::var("BALER_BENCH_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        for signed in [false, true] {
            bench_repo("small", 20, signed).await;
            bench_repo("large", files, signed).await;
        }
    });
}
