//! `TestApp`: the real baler server on port 0 with its own temporary data dir and SQLite file.

pub mod archive_listing;
pub mod browser;
pub mod chromium;
pub mod git;
pub mod hung;
pub mod smart_http;
pub mod tree;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use baler::config::Config;
use baler::hooks::verify::github_signature;
use baler::queue::{Queue, QueueTuning};
use baler::startup::{Application, Role};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

use serde_json::Value;
use tokio::sync::oneshot;

pub const SECRET: &str = "test-secret";

/// A project as a test configures it.
pub struct ProjectSpec {
    pub name: &'static str,
    pub repo: String,
    pub provider: &'static str,
    pub layout: &'static str,
    pub branches: &'static [&'static str],
    /// More TOML lines for this project (`allow_sha1 = true`, `secrets = [...]`).
    pub extra: &'static str,
}

impl ProjectSpec {
    pub fn github(name: &'static str, repo: String) -> ProjectSpec {
        ProjectSpec {
            name,
            repo,
            provider: "github",
            layout: "plain",
            branches: &["main", "*.x"],
            extra: "",
        }
    }

    pub fn gitlab(name: &'static str, repo: String) -> ProjectSpec {
        ProjectSpec {
            provider: "gitlab",
            ..ProjectSpec::github(name, repo)
        }
    }

    pub fn provider(provider: &'static str, name: &'static str, repo: String) -> ProjectSpec {
        ProjectSpec {
            provider,
            ..ProjectSpec::github(name, repo)
        }
    }
}

/// Which database a test app runs on.
#[derive(Debug, Clone)]
pub enum TestDb {
    Sqlite,
    /// A server URL; each app gets a fresh database on it.
    Postgres(String),
}

impl TestDb {
    /// PostgreSQL when `BALER_TEST_POSTGRES` names a server (CI starts one).
    pub fn postgres() -> Option<TestDb> {
        std::env::var("BALER_TEST_POSTGRES")
            .ok()
            .filter(|u| !u.is_empty())
            .map(TestDb::Postgres)
    }

    /// The `database_url` line for an app, creating a fresh PostgreSQL database if needed.
    async fn config_line(&self) -> String {
        match self {
            TestDb::Sqlite => String::new(),
            TestDb::Postgres(server) => {
                let name = format!("baler_test_{}", uuid::Uuid::new_v4().simple());
                let admin = sea_orm::Database::connect(server.as_str())
                    .await
                    .expect("BALER_TEST_POSTGRES is reachable");
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .unwrap();
                admin.close().await.unwrap();
                format!("database_url = \"{}\"\n", with_database(server, &name))
            }
        }
    }
}

/// `postgres://u@h/db?x` with `db` replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let after_scheme = url.find("://").map(|i| i + 3).unwrap_or(0);
    let path_start = url[after_scheme..]
        .find('/')
        .map(|i| i + after_scheme)
        .unwrap_or(url.len());
    let query_start = url[path_start..]
        .find('?')
        .map(|i| i + path_start)
        .unwrap_or(url.len());
    format!("{}/{name}{}", &url[..path_start], &url[query_start..])
}

/// Runs each named `async fn(TestDb)` as two tests: on SQLite, and on PostgreSQL when
/// `BALER_TEST_POSTGRES` is set (CI sets it; without it the PostgreSQL variant says so).
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => { $(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::support::TestDb::Sqlite).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                match $crate::support::TestDb::postgres() {
                    Some(db) => super::$name(db).await,
                    None => eprintln!("not run: set BALER_TEST_POSTGRES to a PostgreSQL URL"),
                }
            }
        }
    )* };
}

pub struct TestApp {
    pub url: String,
    pub client: reqwest::Client,
    pub queue: Queue,
    pub db: DatabaseConnection,
    pub data_dir: PathBuf,
    pub config_path: PathBuf,
    /// Each project's configured repository URL, which the payloads name.
    pub repos: std::collections::HashMap<String, String>,
    _temp: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
}

impl TestApp {
    pub async fn spawn(projects: &[ProjectSpec]) -> TestApp {
        TestApp::spawn_on(TestDb::Sqlite, projects).await
    }

    pub async fn spawn_on(db: TestDb, projects: &[ProjectSpec]) -> TestApp {
        let database = db.config_line().await;
        TestApp::spawn_with(projects, &format!("max_attempts = 1\n{database}")).await
    }

    /// A database line for `db` (a fresh PostgreSQL database, or nothing for SQLite).
    pub async fn database_line(db: &TestDb) -> String {
        db.config_line().await
    }

    /// Starts baler with `projects` and `extra` TOML lines.
    pub async fn spawn_with(projects: &[ProjectSpec], extra: &str) -> TestApp {
        TestApp::start(Role::Serve, projects, extra).await
    }

    /// Starts baler in `role`. The config is also written to `config_path`, so child
    /// processes (`baler worker --config …`) share the app's database and data dir.
    pub async fn start(role: Role, projects: &[ProjectSpec], extra: &str) -> TestApp {
        baler::telemetry::init();
        let temp = tempfile::tempdir().unwrap();
        // `extra` may name its own data_dir (to restart an app on the same data).
        let data_line = if extra.contains("data_dir =") {
            String::new()
        } else {
            format!("data_dir = \"{}\"\n", temp.path().join("data").display())
        };
        let workers_line = if extra.contains("workers =") {
            ""
        } else {
            "workers = 2\n"
        };
        let mut toml = format!("listen = \"127.0.0.1:0\"\n{workers_line}{data_line}{extra}\n");
        for p in projects {
            let branches: Vec<String> = p.branches.iter().map(|b| format!("{b:?}")).collect();
            let secret = if p.extra.contains("secrets =") {
                String::new()
            } else {
                format!("secret = \"{SECRET}\"\n")
            };
            toml.push_str(&format!(
                "[[projects]]\nname = \"{}\"\nrepo = \"{}\"\nprovider = \"{}\"\n{secret}\
                 layout = \"{}\"\nbranches = [{}]\n{}\n",
                p.name,
                p.repo,
                p.provider,
                p.layout,
                branches.join(", "),
                p.extra
            ));
        }
        let config_path = temp.path().join("baler.toml");
        std::fs::write(&config_path, &toml).unwrap();
        let config = Config::from_toml(&toml, &[]).expect("test config is valid");
        let data_dir = config.data_dir.clone();
        let repos = projects
            .iter()
            .map(|p| (p.name.to_string(), p.repo.clone()))
            .collect();
        let tuning = QueueTuning {
            idle_poll: Duration::from_millis(100),
            backoff: Duration::from_millis(200),
            ..config.queue_tuning()
        };
        let app = Application::build_with(config, role, tuning)
            .await
            .expect("baler starts")
            .with_fetch_program(env!("CARGO_BIN_EXE_baler").into());
        let addr = app.local_addr().unwrap();
        let queue = app.queue().clone();
        let db = app.db().clone();
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(app.run_until(async {
            let _ = stopped.await;
        }));
        TestApp {
            url: format!("http://{addr}"),
            client: reqwest::Client::new(),
            queue,
            db,
            data_dir,
            config_path,
            repos,
            _temp: temp,
            stop: Some(stop),
        }
    }

    /// The release `version` of `project`, from the API.
    pub async fn release(&self, project: &str, version: &str) -> Value {
        let releases = self
            .get_json(&format!("/api/v1/projects/{project}/releases"))
            .await;
        releases
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["version"] == version)
            .unwrap_or_else(|| panic!("{project} has no release {version}: {releases}"))
            .clone()
    }

    /// The versions of `project`'s releases, in the API's order.
    pub async fn versions(&self, project: &str) -> Vec<String> {
        let releases = self
            .get_json(&format!("/api/v1/projects/{project}/releases"))
            .await;
        releases
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["version"].as_str().unwrap().to_string())
            .collect()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    /// Posts a raw delivery.
    pub async fn post_hook(
        &self,
        project: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> reqwest::Response {
        let mut request = self.client.post(format!("{}/hooks/{project}", self.url));
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        request.body(body).send().await.unwrap()
    }

    /// A GitHub push delivery for `git_ref` (`refs/heads/…` or `refs/tags/…`), signed as GitHub
    /// signs it. (GitHub's servers cannot be reached from here; the payload has their shape.)
    pub async fn github_push(
        &self,
        project: &str,
        git_ref: &str,
        after: &str,
    ) -> reqwest::Response {
        let body = github_push_body(self.repo_of(project), git_ref, after);
        let signature = github_signature(SECRET, &body);
        self.post_hook(
            project,
            &[
                ("content-type", "application/json".into()),
                ("x-github-event", "push".into()),
                ("x-github-delivery", uuid::Uuid::new_v4().to_string()),
                ("x-hub-signature-256", signature),
            ],
            body,
        )
        .await
    }

    /// A GitLab push delivery (from `fixtures/webhooks/gitlab/push.json`) with GitLab's token.
    pub async fn gitlab_push(
        &self,
        project: &str,
        git_ref: &str,
        after: &str,
    ) -> reqwest::Response {
        let tag = git_ref.starts_with("refs/tags/");
        let mut payload = fixture("webhooks/gitlab/push.json");
        payload["object_kind"] = if tag { "tag_push" } else { "push" }.into();
        payload["ref"] = git_ref.into();
        payload["after"] = after.into();
        payload["checkout_sha"] = after.into();
        payload["project"]["git_http_url"] = self.repo_of(project).into();
        let body = serde_json::to_vec(&payload).unwrap();
        self.post_hook(
            project,
            &[
                ("content-type", "application/json".into()),
                (
                    "x-gitlab-event",
                    if tag { "Tag Push Hook" } else { "Push Hook" }.into(),
                ),
                ("x-gitlab-token", SECRET.into()),
            ],
            body,
        )
        .await
    }

    /// The repository URL `project` is configured with (payloads must name it).
    pub fn repo_of(&self, project: &str) -> &str {
        self.repos
            .get(project)
            .map(String::as_str)
            .unwrap_or("file:///unknown")
    }

    /// Waits until nothing is pending or running.
    pub async fn run_queue_until_idle(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let counts = self.queue.counts().await.unwrap();
            if counts.pending == 0 && counts.running == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the queue did not drain: {counts:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn count(&self, sql: &str) -> i64 {
        let row = self
            .db
            .query_one_raw(Statement::from_string(self.db.get_database_backend(), sql))
            .await
            .unwrap()
            .unwrap();
        row.try_get_by_index::<i64>(0).unwrap()
    }

    /// `baler ARGS` (e.g. `serve --no-worker`) as a child process with this app's data and
    /// database, listening on a port of its own; returns it and its URL once it answers.
    pub async fn serve_child(&self, args: &[&str]) -> (Child, String) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = std::fs::read_to_string(&self.config_path).unwrap().replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{port}\""),
        );
        let child_config = self
            .config_path
            .with_file_name(format!("child-{port}.toml"));
        std::fs::write(&child_config, config).unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let child = Child::baler(args, &child_config);
        let client = reqwest::Client::new();
        wait_until(30, "the child server to answer", || async {
            client
                .get(format!("{url}/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await;
        (child, url)
    }

    /// Runs the real `baler ARGS --config CONFIG` to completion, as user `tester`.
    pub fn baler_cli(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_baler"))
            .args(args)
            .arg("--config")
            .arg(&self.config_path)
            .env("RUST_LOG", "warn")
            .env("USER", "tester")
            .output()
            .unwrap()
    }

    pub async fn download(&self, url: &str) -> (reqwest::header::HeaderMap, Vec<u8>) {
        let response = self.client.get(url).send().await.unwrap();
        assert_eq!(response.status(), 200, "GET {url}");
        let headers = response.headers().clone();
        (headers, response.bytes().await.unwrap().to_vec())
    }
}

/// A `baler` child process (the real binary), killed when dropped.
pub struct Child(pub std::process::Child, pub PathBuf);

impl Child {
    /// Runs `baler ARGS --config CONFIG`, logging to a file beside the config.
    pub fn baler(args: &[&str], config: &std::path::Path) -> Child {
        let log_path = config.with_extension(format!("{}.log", uuid::Uuid::new_v4().simple()));
        let log = std::fs::File::create(&log_path).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_baler"))
            .args(args)
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("baler starts");
        Child(child, log_path)
    }

    /// What the process has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.1).unwrap_or_default()
    }

    /// SIGKILL: no shutdown, no cleanup, as when a machine dies.
    pub fn kill(&mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `check` every 10 ms until it holds, failing after `seconds`.
pub async fn wait_until<F, Fut>(seconds: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A JSON fixture from `fixtures/`.
pub fn fixture(path: &str) -> Value {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(path);
    serde_json::from_slice(&std::fs::read(&full).unwrap()).unwrap()
}

/// GitHub's push payload (`fixtures/webhooks/github/push-tag.json`) for repository `repo`,
/// pointed at `git_ref`.
pub fn github_push_body(repo: &str, git_ref: &str, after: &str) -> Vec<u8> {
    let mut payload = fixture("webhooks/github/push-tag.json");
    payload["repository"]["clone_url"] = repo.into();
    payload["ref"] = git_ref.into();
    payload["after"] = after.into();
    payload["head_commit"]["id"] = after.into();
    serde_json::to_vec(&payload).unwrap()
}

/// A GitHub push deleting `git_ref` of repository `repo`, as GitHub sends it, with `delivery`
/// as its id: the headers and the body.
pub fn github_deletion(
    repo: &str,
    git_ref: &str,
    delivery: &str,
) -> (Vec<(&'static str, String)>, Vec<u8>) {
    let mut payload: Value = serde_json::from_slice(&github_push_body(
        repo,
        git_ref,
        "0000000000000000000000000000000000000000",
    ))
    .unwrap();
    payload["deleted"] = true.into();
    payload["head_commit"] = Value::Null;
    let body = serde_json::to_vec(&payload).unwrap();
    let headers = vec![
        ("content-type", "application/json".to_string()),
        ("x-github-event", "push".to_string()),
        ("x-github-delivery", delivery.to_string()),
        ("x-hub-signature-256", github_signature(SECRET, &body)),
    ];
    (headers, body)
}
