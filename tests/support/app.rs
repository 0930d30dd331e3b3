//! `TestApp`: the real baler server on port 0 with its own temporary data dir and database,
//! configured through `TestApp::builder()`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use baler::config::Config;
use baler::queue::{Queue, QueueTuning};
use baler::startup::{Application, Role};
use sea_orm::DatabaseConnection;
use serde_json::Value;
use tokio::sync::oneshot;

use super::config::{ConfigFile, HttpSettings, ProjectSpec, QueueSettings, WorkerSettings};
use super::database::TestDb;
use super::s3::S3Bucket;

pub struct TestApp {
    pub url: String,
    pub client: reqwest::Client,
    pub queue: Queue,
    pub db: DatabaseConnection,
    pub data_dir: PathBuf,
    /// The config file the app was started with, for child processes (`baler worker
    /// --config …`) that share its database and data dir.
    pub config_path: PathBuf,
    pub(super) config: ConfigFile,
    _temp: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    running: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// What a test app is started with. Beyond what a test sets, an app listens on port 0, runs 2
/// workers, keeps its data in a temporary directory, and tries a job once (`max_attempts =
/// 1`), so that no test waits out retries it did not ask for.
pub struct TestAppBuilder {
    role: Role,
    database: TestDb,
    config: ConfigFile,
}

impl TestApp {
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder {
            role: Role::Serve,
            database: TestDb::Sqlite,
            config: ConfigFile {
                listen: Some("127.0.0.1:0".into()),
                workers: Some(2),
                max_attempts: Some(1),
                ..ConfigFile::default()
            },
        }
    }
}

impl TestAppBuilder {
    /// SQLite (the default), or a fresh PostgreSQL database.
    pub fn database(mut self, db: &TestDb) -> TestAppBuilder {
        self.database = db.clone();
        self
    }

    pub fn project(mut self, project: ProjectSpec) -> TestAppBuilder {
        self.config.projects.push(project);
        self
    }

    /// `[retention]`.
    pub fn retention(mut self, retention: super::config::RetentionSettings) -> TestAppBuilder {
        self.config.retention = Some(retention);
        self
    }

    /// A `[[notifications]]` subscriber.
    /// Signs releases with the minisign key in `key_file` (its password, if any, in the
    /// environment variable `password_env`, set with [`env`](Self::env)).
    pub fn signing(mut self, key_file: &Path, password_env: Option<&str>) -> TestAppBuilder {
        self.config.signing = Some(super::config::SigningSettings {
            minisign_key_file: key_file.to_path_buf(),
            password_env: password_env.map(str::to_string),
        });
        self
    }

    pub fn notify(mut self, subscriber: super::config::NotificationSpec) -> TestAppBuilder {
        self.config.notifications.push(subscriber);
        self
    }

    pub fn projects(mut self, projects: impl IntoIterator<Item = ProjectSpec>) -> TestAppBuilder {
        self.config.projects.extend(projects);
        self
    }

    /// What runs in the app's process: web and workers (the default), or one of them.
    pub fn role(mut self, role: Role) -> TestAppBuilder {
        self.role = role;
        self
    }

    /// Listens on a port picked now, with `public_url` set to it, so that other processes
    /// (the CLI) know the server's address from the config, as in production.
    pub fn own_port(mut self) -> TestAppBuilder {
        let port = super::free_port();
        self.config.listen = Some(format!("127.0.0.1:{port}"));
        self.config.public_url = Some(format!("http://127.0.0.1:{port}"));
        self
    }

    /// An environment variable the config may name (`api_token_env`, `secret_env`).
    pub fn env(mut self, name: &str, value: &str) -> TestAppBuilder {
        self.config.env.push((name.into(), value.into()));
        self
    }

    pub fn workers(mut self, workers: usize) -> TestAppBuilder {
        self.config.workers = Some(workers);
        self
    }

    pub fn max_attempts(mut self, attempts: u32) -> TestAppBuilder {
        self.config.max_attempts = Some(attempts);
        self
    }

    pub fn admin_token(mut self, token: &str) -> TestAppBuilder {
        self.config.admin_token = Some(token.into());
        self
    }

    pub fn queue(mut self, queue: QueueSettings) -> TestAppBuilder {
        self.config.queue = Some(queue);
        self
    }

    pub fn job_limits(mut self, worker: WorkerSettings) -> TestAppBuilder {
        self.config.worker = Some(worker);
        self
    }

    pub fn http(mut self, http: HttpSettings) -> TestAppBuilder {
        self.config.http = Some(http);
        self
    }

    /// Stores release files in `bucket`, with its keys in the environment.
    pub fn s3(mut self, bucket: &S3Bucket) -> TestAppBuilder {
        self.config.storage = Some(bucket.settings());
        self.config.env.extend(bucket.env());
        self
    }

    /// `[storage]` as given (after [`s3`](Self::s3), to change its settings).
    pub fn storage(mut self, storage: super::config::StorageSettings) -> TestAppBuilder {
        self.config.storage = Some(storage);
        self
    }

    /// Runs on `installation`'s data dir and database (a restart of the same baler), instead
    /// of a fresh one.
    pub fn installation(mut self, installation: &Installation) -> TestAppBuilder {
        self.config.data_dir = Some(installation.data_dir());
        self.config.database_url = installation.database_url.clone();
        self
    }

    /// Writes the config, starts baler in this process and returns once it listens.
    pub async fn start(self) -> TestApp {
        baler::telemetry::init();
        let temp = tempfile::tempdir().unwrap();
        let mut file = self.config;
        if file.data_dir.is_none() {
            file.data_dir = Some(temp.path().join("data"));
            file.database_url = self.database.fresh_database_url().await;
        }
        let toml = file.to_toml();
        let config_path = temp.path().join("baler.toml");
        std::fs::write(&config_path, &toml).unwrap();
        let config = Config::from_toml(&toml, &file.env).expect("test config is valid");
        let data_dir = config.data_dir.clone();
        // Short waits: a test's queue polls and backs off in milliseconds, not seconds.
        let tuning = QueueTuning {
            idle_poll: Duration::from_millis(100),
            backoff: Duration::from_millis(200),
            ..config.queue_tuning()
        };
        let app = Application::build_with(config, self.role, tuning)
            .await
            .expect("baler starts")
            .with_fetch_program(env!("CARGO_BIN_EXE_baler").into());
        let addr = app.local_addr().unwrap();
        let queue = app.queue().clone();
        let db = app.db().clone();
        let (stop, stopped) = oneshot::channel();
        let running = tokio::spawn(app.run_until(async {
            let _ = stopped.await;
        }));
        TestApp {
            url: format!("http://{addr}"),
            client: reqwest::Client::new(),
            queue,
            db,
            data_dir,
            config_path,
            config: file,
            _temp: temp,
            stop: Some(stop),
            running: Some(running),
        }
    }
}

/// One baler's data dir and database, kept across restarts: each `TestApp` started on it
/// (`.installation(&it)`) finds what the one before left.
pub struct Installation {
    root: tempfile::TempDir,
    database_url: Option<String>,
}

impl Installation {
    pub async fn new(db: &TestDb) -> Installation {
        Installation {
            root: tempfile::tempdir().unwrap(),
            database_url: db.fresh_database_url().await,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// A directory beside the data dir, for files such as another process's config.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// A config with this data dir and database and nothing else (no projects).
    pub fn bare_config(&self) -> ConfigFile {
        ConfigFile {
            data_dir: Some(self.data_dir()),
            database_url: self.database_url.clone(),
            ..ConfigFile::default()
        }
    }
}

impl TestApp {
    /// The app's local store (for tests that write releases without a worker).
    pub fn store(&self) -> baler::store::LocalStore {
        baler::store::LocalStore::new(self.data_dir.join("files"))
    }

    /// Stops as on SIGTERM, and returns once everything has shut down.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(running) = self.running.take() {
            running.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Reading the app over HTTP, as a client does.
impl TestApp {
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

    /// A file by its full URL: the headers and the bytes.
    pub async fn download(&self, url: &str) -> (reqwest::header::HeaderMap, Vec<u8>) {
        let response = self.client.get(url).send().await.unwrap();
        assert_eq!(response.status(), 200, "GET {url}");
        let headers = response.headers().clone();
        (headers, response.bytes().await.unwrap().to_vec())
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

    /// An admin API call with the configured `admin_token`: the status and the JSON body
    /// (`null` when there is none).
    pub async fn admin_call(&self, method: reqwest::Method, path: &str) -> (u16, Value) {
        let response = self.admin_request(method, path).await;
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// An admin API call with a JSON body: the status and the JSON answer.
    pub async fn admin_send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> (u16, Value) {
        let response = self
            .client
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(self.admin_token())
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// An admin API GET that must answer 200 with JSON, with the configured `admin_token`.
    pub async fn admin_json(&self, path: &str) -> Value {
        let response = self.admin_request(reqwest::Method::GET, path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    async fn admin_request(&self, method: reqwest::Method, path: &str) -> reqwest::Response {
        self.client
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(self.admin_token())
            .send()
            .await
            .unwrap()
    }

    fn admin_token(&self) -> &str {
        self.config
            .admin_token
            .as_deref()
            .expect("the app was built with an admin_token")
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
}
