//! The real `baler` binary as child processes: workers and servers sharing a test app's data
//! and database, and one-shot CLI commands.

use std::path::{Path, PathBuf};

use super::app::TestApp;
use super::wait_until;

/// A `baler` child process (the real binary), killed when dropped.
pub struct BalerProcess {
    pub process: std::process::Child,
    log_path: PathBuf,
}

impl BalerProcess {
    /// Runs `baler ARGS --config CONFIG`, logging to a file beside the config.
    pub fn start(args: &[&str], config: &Path) -> BalerProcess {
        BalerProcess::start_with_env(args, config, &[])
    }

    /// The same, with `env` added to its environment (the S3 keys).
    pub fn start_with_env(args: &[&str], config: &Path, env: &[(String, String)]) -> BalerProcess {
        let log_path = config.with_extension(format!("{}.log", uuid::Uuid::new_v4().simple()));
        let log = std::fs::File::create(&log_path).unwrap();
        let process = std::process::Command::new(env!("CARGO_BIN_EXE_baler"))
            .args(args)
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .envs(env.iter().cloned())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("baler starts");
        BalerProcess { process, log_path }
    }

    /// What the process has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// SIGKILL: no shutdown, no cleanup, as when a machine dies.
    pub fn kill(&mut self) {
        self.process.kill().unwrap();
        self.process.wait().unwrap();
    }
}

impl Drop for BalerProcess {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// A config for a child server: the app's own, listening on a port of its own.
pub struct ChildConfig {
    pub path: PathBuf,
    pub url: String,
}

/// A `baler serve` child that answers on `url`.
pub struct ChildServer {
    pub process: BalerProcess,
    pub url: String,
}

impl TestApp {
    /// The app's config as a child process would take it (to change before writing).
    pub fn child_config_file(&self) -> super::ConfigFile {
        self.config.clone()
    }

    /// The app's config with a free port of its own, written beside the app's config.
    pub fn child_config(&self) -> ChildConfig {
        let port = super::free_port();
        let mut config = self.config.clone();
        config.listen = Some(format!("127.0.0.1:{port}"));
        let path = self
            .config_path
            .with_file_name(format!("child-{port}.toml"));
        config.write_to(&path);
        ChildConfig {
            path,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// `baler ARGS` (e.g. `serve --no-worker`) as a child process with this app's data and
    /// database, listening on a port of its own; returns once it answers.
    pub async fn serve_child(&self, args: &[&str]) -> ChildServer {
        let config = self.child_config();
        let process = BalerProcess::start_with_env(args, &config.path, &self.config.env);
        let client = reqwest::Client::new();
        wait_until(30, "the child server to answer", || {
            is_healthy(&client, &config.url)
        })
        .await;
        ChildServer {
            process,
            url: config.url,
        }
    }

    /// Runs the real `baler ARGS --config CONFIG` to completion, as user `tester`.
    pub fn baler_cli(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_baler"))
            .args(args)
            .arg("--config")
            .arg(&self.config_path)
            .env("RUST_LOG", "warn")
            .env("USER", "tester")
            .envs(self.config.env.iter().cloned())
            .output()
            .unwrap()
    }
}

/// Whether the server at `url` answers `/healthz` with 200.
pub async fn is_healthy(client: &reqwest::Client, url: &str) -> bool {
    client
        .get(format!("{url}/healthz"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
}
