//! The real `baler serve`: it refuses weak admin tokens (while commands that serve nothing
//! still run), and survives running out of file descriptors.

use std::time::Duration;

use tokio::net::TcpStream;

use crate::support::{BalerProcess, ConfigFile};

/// A config for the real `baler` binary with `admin_token = token`, in `dir`.
fn config_with_token(dir: &std::path::Path, token: &str) -> std::path::PathBuf {
    let path = dir.join(format!("baler-{}.toml", token.len()));
    ConfigFile {
        listen: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.join("data")),
        admin_token: Some(token.into()),
        ..ConfigFile::default()
    }
    .write_to(&path);
    path
}

/// `baler ARGS --config CONFIG`, with nothing from the environment overriding the file; fails
/// if it has not ended within 30 s (a server that started).
async fn run_baler(args: &[&str], config: &std::path::Path) -> std::process::Output {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_baler"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("BALER_ADMIN_TOKEN")
        .env_remove("BALER_LISTEN")
        .env_remove("BALER_DATA_DIR")
        .env_remove("BALER_DATABASE_URL")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("baler {args:?} still runs after 30 s"))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_a_weak_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    for weak in ["change-me", "0123456789"] {
        let config = config_with_token(dir.path(), weak);
        let output = run_baler(&["serve"], &config).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{weak}: {stderr}");
        assert!(
            stderr.contains("admin_token")
                && stderr.contains("baler token create")
                && stderr.contains("openssl rand -hex 32"),
            "{weak}: {stderr}"
        );

        // Commands that serve nothing still run with it, so the config can be fixed.
        let created = run_baler(&["token", "create", "--name", "x"], &config).await;
        assert!(
            created.status.success(),
            "{}",
            String::from_utf8_lossy(&created.stderr)
        );
        assert!(!created.stdout.is_empty());
        std::fs::remove_dir_all(dir.path().join("data")).unwrap();
    }

    // A good token serves.
    let config = config_with_token(dir.path(), "8d3c0f5e9a7b41d2b6e0c4a8f1d3e5b7");
    let server = BalerProcess::start(&["serve"], &config);
    crate::support::wait_until(30, "baler serve to listen", || async {
        server.log().contains("listening")
    })
    .await;
}

/// Accept errors are not fatal: with its file descriptors used up (EMFILE), the server
/// logs, pauses and accepts again once connections close. (A regression guard for
/// `web::server`'s accept loop; `axum::serve` behaved the same.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_file_descriptors_does_not_end_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("baler.toml");
    ConfigFile {
        listen: Some(format!("127.0.0.1:{port}")),
        data_dir: Some(dir.path().join("data")),
        admin_token: Some("8d3c0f5e9a7b41d2b6e0c4a8f1d3e5b7".into()),
        ..ConfigFile::default()
    }
    .write_to(&config);
    let log_path = dir.path().join("baler.log");
    let log = std::fs::File::create(&log_path).unwrap();
    // 128 descriptors: enough to start (about 30 are open when idle), not for 200 clients.
    let _server = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -n 128 && exec "$0" serve --config "$1""#)
        .arg(env!("CARGO_BIN_EXE_baler"))
        .arg(&config)
        .env_remove("BALER_ADMIN_TOKEN")
        .env_remove("BALER_LISTEN")
        .env("RUST_LOG", "info")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/healthz");
    // A new connection for every check: one kept alive would answer without an accept.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let healthy = || async {
        client
            .get(&url)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    };
    crate::support::wait_until(30, "baler serve to answer", healthy).await;

    let mut clients = Vec::new();
    for _ in 0..200 {
        clients.push(
            TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("the kernel's backlog takes it"),
        );
    }
    crate::support::wait_until(10, "the server to run out of descriptors", || async {
        std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .contains("Too many open files")
    })
    .await;
    drop(clients);
    crate::support::wait_until(10, "the server to answer again", healthy).await;
}
