//! Reads at scale, against nginx serving the same bytes from files. Prints figures; asserts
//! nothing about speed.
//!
//!     cargo bench --bench reads [-- WORD]   (WORD: only the endpoints whose label has it)
//!
//! Setup: one project (`big`) with 500 tag releases, one (`few`) with 5, and 50 more with 10
//! each, recorded straight into a fresh SQLite database with an archive file per release (a
//! 450-byte zip, and a 30 MB one for each project's 1.0.0); then the real `baler serve`
//! (this build's binary) and nginx (Debian's `nginx-light`, two worker processes) with a root
//! holding the same bytes: every document as baler serves it, and the archive files.
//!
//! Each endpoint is loaded with `wrk` at 64 connections (`BALER_BENCH_SECONDS` each, default
//! 5), first on `big` and then on `few`. The table gives req/s and p99 for baler and nginx,
//! the baler/nginx ratio, and baler's rate at 500 releases against its rate at 5. Last, small
//! downloads with download counting off, to show what counting costs.
//!
//! Needs `wrk` and `nginx` (`apt-get install wrk nginx-light`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use baler::config::Config;
use baler::package::{Checksums, ReleaseVersion};
use baler::releases::{NewFile, NewRelease, ReleaseNotes, record_on};
use sea_orm::TransactionTrait;

const CONNECTIONS: usize = 64;
const SMALL_ZIP: usize = 450;
const LARGE_ZIP: usize = 30 * 1024 * 1024;

/// The endpoints, with `{p}` for the project.
const ENDPOINTS: &[(&str, &str)] = &[
    ("project page", "/projects/{p}"),
    ("project JSON", "/api/v1/projects/{p}"),
    ("releases JSON", "/api/v1/projects/{p}/releases"),
    ("Composer p2", "/p2/acme/{p}.json"),
    ("packages.json", "/packages.json"),
    ("Drupal feed", "/release-history/{p}/current"),
    ("project Atom", "/projects/{p}/releases.atom"),
    ("all Atom", "/releases.atom"),
    ("small download", "/files/{p}/{p}-1.0.1.zip"),
    ("30 MB download", "/files/{p}/{p}-1.0.0.zip"),
];

fn config_toml(data: &Path, listen: &str, count_downloads: bool) -> String {
    let mut toml = format!(
        "listen = \"{listen}\"\npublic_url = \"http://{listen}\"\ndata_dir = \"{}\"\nworkers = 1\n\
         [http]\nmax_connections = 4096\ncount_downloads = {count_downloads}\n",
        data.display()
    );
    let names = ["big".to_string(), "few".to_string()]
        .into_iter()
        .chain((0..50).map(|n| format!("p{n:02}")));
    for name in names {
        toml.push_str(&format!(
            "[[projects]]\nname = \"{name}\"\nrepo = \"file:///nowhere/{name}\"\nprovider = \"github\"\n\
             secret = \"bench-secret\"\ncomposer = \"acme/{name}\"\n"
        ));
    }
    toml
}

/// Records `count` tag releases of `name`, each with a zip in the store.
async fn record(
    db: &sea_orm::DatabaseConnection,
    files: &Path,
    name: &str,
    project_id: i64,
    count: usize,
) {
    let dir = files.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let txn = db.begin().await.unwrap();
    for n in 0..count {
        let tag = format!("1.{}.{}", n / 100, n % 100);
        let version = ReleaseVersion::from_tag(&tag).unwrap();
        let file = format!("{name}-{}.zip", version.version);
        let size = if n == 0 { LARGE_ZIP } else { SMALL_ZIP };
        let bytes: Vec<u8> = (0..size).map(|i| (i * 7 + n) as u8).collect();
        std::fs::write(dir.join(&file), &bytes).unwrap();
        let checksums = Checksums {
            size: size as u64,
            sha256: baler::package::sha256_hex(&bytes),
            sha1: format!("{:040x}", n),
            md5: format!("{:032x}", n),
        };
        record_on(
            &txn,
            NewRelease {
                project_id,
                version: &version,
                ref_name: &tag,
                commit: &format!("{n:040x}"),
                commit_time: 1_700_000_000 + n as i64,
                build_log: &"a build log line\n".repeat(200),
                composer_json: Some(&format!(
                    "{{\"name\":\"acme/{name}\",\"type\":\"library\",\"require\":{{\"php\":\">=8.1\"}}}}"
                )),
                notes: &ReleaseNotes::default(),
                item: None,
                sums_minisig: None,
                provenance: None,
                signing_key: None,
                files: vec![NewFile {
                    format: "zip",
                    name: file,
                    checksums,
                    minisig: None,
                }],
            },
        )
        .await
        .unwrap();
    }
    txn.commit().await.unwrap();
}

async fn populate(config: &Config) {
    let db = baler::db::connect(&config.database_url).await.unwrap();
    baler::db::migrate(&db).await.unwrap();
    baler::projects::sync_from_config(&db, &config.projects, baler::projects::Departures::Disable)
        .await
        .unwrap();
    for project in baler::projects::list(&db).await.unwrap() {
        let count = match project.name.as_str() {
            "big" => 500,
            "few" => 5,
            _ => 10,
        };
        record(&db, &config.files_dir(), &project.name, project.id, count).await;
    }
    db.close().await.unwrap();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the child when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if Command::new("curl")
            .args(["-fs", "-o", "/dev/null", url])
            .status()
            .is_ok_and(|s| s.success())
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{url} does not answer");
}

fn start_baler(dir: &Path, count_downloads: bool) -> (Running, String) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let config = dir.join(format!("baler-{count_downloads}.toml"));
    std::fs::write(
        &config,
        config_toml(&dir.join("data"), &listen, count_downloads),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("baler.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_baler"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("baler starts");
    let url = format!("http://{listen}");
    wait_for(&format!("{url}/healthz"));
    (Running(child), url)
}

/// nginx with two worker processes, serving `root`.
fn start_nginx(dir: &Path, root: &Path) -> (Running, String) {
    let port = free_port();
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "worker_processes 2;\ndaemon off;\npid {dir}/nginx.pid;\nerror_log {dir}/nginx-error.log;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  default_type application/octet-stream;\n\
               client_body_temp_path {dir}/tmp;\n  proxy_temp_path {dir}/tmp;\n  fastcgi_temp_path {dir}/tmp;\n\
               uwsgi_temp_path {dir}/tmp;\n  scgi_temp_path {dir}/tmp;\n\
               types {{ text/html html; application/json json; application/zip zip; }}\n\
               server {{\n    listen 127.0.0.1:{port};\n    root {root};\n    index index.html index.json;\n    etag on;\n  }}\n}}\n",
            dir = dir.display(),
            root = root.display(),
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    let child = Command::new("nginx")
        .args(["-c"])
        .arg(&conf)
        .args(["-e", &format!("{}/nginx-error.log", dir.display())])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx starts (apt-get install nginx-light)");
    let url = format!("http://127.0.0.1:{port}");
    wait_for(&format!("{url}/packages.json"));
    (Running(child), url)
}

/// Where nginx keeps `path`, and the path it serves it at: a path that is also a directory
/// of others (`/projects/big` beside `/projects/big/releases.atom`) is its index file.
fn nginx_file(path: &str) -> (String, String) {
    let file = path.trim_start_matches('/').to_string();
    if path.starts_with("/projects/") && path.matches('/').count() == 2 {
        (format!("{file}/index.html"), format!("{path}/"))
    } else if path.starts_with("/api/v1/projects/") && path.matches('/').count() == 4 {
        (format!("{file}/index.json"), format!("{path}/"))
    } else {
        (file, path.to_string())
    }
}

/// nginx's root: each document as baler serves it, and links to the archive files.
fn nginx_root(dir: &Path, baler: &str, files: &Path) -> PathBuf {
    let root = dir.join("root");
    for project in ["big", "few"] {
        for (_, path) in ENDPOINTS {
            let path = path.replace("{p}", project);
            let target = root.join(nginx_file(&path).0);
            if target.exists() {
                continue; // `/packages.json` and `/releases.atom` belong to no project
            }
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            if let Some(file) = path.strip_prefix("/files/") {
                std::fs::hard_link(files.join(file), &target)
                    .or_else(|_| std::fs::copy(files.join(file), &target).map(|_| ()))
                    .unwrap();
                continue;
            }
            let status = Command::new("curl")
                .args(["-fs", "-o"])
                .arg(&target)
                .arg(format!("{baler}{path}"))
                .status()
                .unwrap();
            assert!(status.success(), "{path} from baler");
        }
    }
    root
}

#[derive(Clone, Copy)]
struct Load {
    rate: f64,
    p99_ms: f64,
}

/// `wrk` at [`CONNECTIONS`] connections for `seconds`.
fn load(url: &str, seconds: u64) -> Load {
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{CONNECTIONS}"),
            &format!("-d{seconds}s"),
            "--latency",
        ])
        .arg(url)
        .output()
        .expect("wrk runs (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout);
    let rate = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("wrk output: {text}"));
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(|v| duration_ms(v.trim()))
        .unwrap_or(f64::NAN);
    if text.contains("Non-2xx") {
        panic!("{url} answered errors under load: {text}");
    }
    Load { rate, p99_ms: p99 }
}

/// wrk's `1.23ms`, `456.00us`, `1.20s`.
fn duration_ms(text: &str) -> f64 {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => number / 1000.0,
        "ms" => number,
        "s" => number * 1000.0,
        "m" => number * 60_000.0,
        _ => f64::NAN,
    }
}

fn main() {
    let seconds: u64 = std::env::var("BALER_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let started = Instant::now();
    let setup_config =
        Config::from_toml(&config_toml(&dir.join("data"), "127.0.0.1:1", true), &[]).unwrap();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(populate(&setup_config));
    let (baler, baler_url) = start_baler(dir, true);
    println!(
        "setup: 52 projects, 1005 releases recorded and baler started in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let root = nginx_root(dir, &baler_url, &setup_config.files_dir());
    let (_nginx, nginx_url) = start_nginx(dir, &root);

    println!(
        "\n{CONNECTIONS} connections, {seconds} s each (wrk -t2); ratio = baler / nginx; flat = baler at 500 releases / baler at 5\n"
    );
    println!(
        "| endpoint | releases | baler req/s | baler p99 | nginx req/s | nginx p99 | ratio | flat |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut small_download = 0.0;
    // `cargo bench --bench reads -- WORD`: only the endpoints whose label contains WORD.
    let only: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    for (label, path) in ENDPOINTS
        .iter()
        .filter(|(label, _)| only.as_deref().is_none_or(|word| label.contains(word)))
    {
        let mut at = Vec::new();
        for (project, releases) in [("big", 500), ("few", 5)] {
            let path = path.replace("{p}", project);
            let ours = load(&format!("{baler_url}{path}"), seconds);
            let peer = load(&format!("{nginx_url}{}", nginx_file(&path).1), seconds);
            at.push(ours.rate);
            if *label == "small download" && project == "big" {
                small_download = ours.rate;
            }
            let flat = if at.len() == 2 {
                format!("{:.2}", at[0] / at[1])
            } else {
                String::new()
            };
            println!(
                "| {label} | {releases} | {:.0} | {:.1} ms | {:.0} | {:.1} ms | {:.2} | {flat} |",
                ours.rate,
                ours.p99_ms,
                peer.rate,
                peer.p99_ms,
                ours.rate / peer.rate
            );
        }
    }
    drop(baler);

    let (_uncounted, uncounted_url) = start_baler(dir, false);
    let path = "/files/big/big-1.0.1.zip";
    let without = load(&format!("{uncounted_url}{path}"), seconds);
    println!(
        "\nsmall download, counting off: {:.0} req/s; counting on (above): {:.0} req/s; counting costs {:.1}%",
        without.rate,
        small_download,
        (1.0 - small_download / without.rate) * 100.0
    );
}
