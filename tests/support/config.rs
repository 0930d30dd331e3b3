//! `baler.toml` as tests write it: typed, and serialised by the `toml` crate, so that a test
//! names the settings it needs and never glues TOML lines together. A setting left `None` is
//! not written, and baler's own default applies.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// The webhook secret every test project has unless it names its own `secrets`.
pub const SECRET: &str = "test-secret";

/// The admin token of the apps that admin tests start (`.admin_token(ADMIN_TOKEN)`).
pub const ADMIN_TOKEN: &str = "admin-secret-token";

/// A config file's top level: the keys `FileConfig` reads, in the file's own names.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ConfigFile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueSettings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<WorkerSettings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpSettings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSettings>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub projects: Vec<ProjectSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionSettings>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notifications: Vec<NotificationSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing: Option<SigningSettings>,
    /// The environment baler is given beside the file (the S3 keys), not written to it.
    #[serde(skip)]
    pub env: Vec<(String, String)>,
}

/// `[signing]`: the minisign key that signs releases.
#[derive(Debug, Clone, Serialize)]
pub struct SigningSettings {
    pub minisign_key_file: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
}

/// `[retention]`: humantime durations or `"off"`; unset keys keep baler's defaults.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RetentionSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_branches_after: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unpublished_after: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_items_after: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_after: Option<String>,
}

/// A `[[notifications]]` entry.
#[derive(Debug, Clone, Serialize)]
pub struct NotificationSpec {
    pub url: String,
    pub secret: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub projects: Option<Vec<String>>,
    pub allow_private_network: bool,
}

impl NotificationSpec {
    /// Every event of every project, to a receiver on loopback (so private networks allowed).
    pub fn to(url: &str) -> NotificationSpec {
        NotificationSpec {
            url: url.to_string(),
            secret: super::receiver::NOTIFY_SECRET.to_string(),
            events: None,
            projects: None,
            allow_private_network: true,
        }
    }
}

impl ConfigFile {
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a test config serialises")
    }

    /// Writes the file for the real `baler` binary (`--config PATH`).
    pub fn write_to(&self, path: &Path) {
        std::fs::write(path, self.to_toml()).unwrap();
    }
}

/// `[queue]`: lease and polling.
#[derive(Debug, Clone, Default, Serialize)]
pub struct QueueSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub poll_interval_ms: Option<u64>,
}

/// `[worker]`: the release jobs' time limits.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WorkerSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fetch_timeout_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_timeout_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_seconds: Option<u64>,
}

/// `[storage]`: where releases' files live.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StorageSettings {
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub downloads: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presign_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_env: Option<String>,
}

/// `[http]`: the server's limits and the proxies it trusts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HttpSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_read_timeout_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_idle_timeout_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_timeout_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit_timeout_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_buffer_mib: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_failures_per_minute: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub downloads_flush_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files_in_memory_mib: Option<u64>,
}

impl HttpSettings {
    /// Trusts 127.0.0.1, the test's own address, as a proxy: a test then plays several
    /// clients by sending `X-Forwarded-For`.
    pub fn trusting_the_test() -> HttpSettings {
        HttpSettings {
            trusted_proxies: vec!["127.0.0.1".into()],
            ..HttpSettings::default()
        }
    }
}

/// One `[[projects]]` entry. The constructors name the host; the other methods add what a
/// test needs (`ProjectSpec::github("widget", url).allow_sha1()`).
#[derive(Debug, Clone, Serialize)]
pub struct ProjectSpec {
    name: String,
    repo: String,
    provider: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secrets: Option<Vec<String>>,
    layout: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    branches: Option<Vec<String>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    allow_sha1: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    composer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rescan_every: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_token_env: Option<String>,
}

impl ProjectSpec {
    fn on(provider: &'static str, name: impl Into<String>, repo: impl Into<String>) -> ProjectSpec {
        ProjectSpec {
            name: name.into(),
            repo: repo.into(),
            provider,
            secret: Some(SECRET.into()),
            secrets: None,
            layout: "plain",
            branches: Some(vec!["main".into(), "*.x".into()]),
            allow_sha1: false,
            token: None,
            composer: None,
            rescan_every: None,
            api_url: None,
            api_token_env: None,
        }
    }

    /// No secret in the config: `baler project connect` makes one.
    pub fn no_secret(mut self) -> ProjectSpec {
        self.secret = None;
        self.secrets = None;
        self
    }

    /// The host API `baler project connect` talks to, and the variable holding its token.
    pub fn host_api(mut self, url: &str, token_env: &str) -> ProjectSpec {
        self.api_url = Some(url.into());
        self.api_token_env = Some(token_env.into());
        self
    }

    pub fn github(name: impl Into<String>, repo: impl Into<String>) -> ProjectSpec {
        ProjectSpec::on("github", name, repo)
    }

    pub fn gitlab(name: impl Into<String>, repo: impl Into<String>) -> ProjectSpec {
        ProjectSpec::on("gitlab", name, repo)
    }

    pub fn gitea(name: impl Into<String>, repo: impl Into<String>) -> ProjectSpec {
        ProjectSpec::on("gitea", name, repo)
    }

    pub fn bitbucket(name: impl Into<String>, repo: impl Into<String>) -> ProjectSpec {
        ProjectSpec::on("bitbucket", name, repo)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn repo(&self) -> &str {
        &self.repo
    }

    /// Another webhook secret than [`SECRET`].
    pub fn secret(mut self, secret: &str) -> ProjectSpec {
        self.secret = Some(secret.into());
        self
    }

    /// Several secrets (a rotation, or a GitLab signing token) instead of [`SECRET`].
    pub fn secrets(mut self, secrets: &[&str]) -> ProjectSpec {
        self.secret = None;
        self.secrets = Some(secrets.iter().map(|s| s.to_string()).collect());
        self
    }

    /// Drupal's layout: the archive's top directory is the bare project name.
    pub fn drupal_layout(mut self) -> ProjectSpec {
        self.layout = "drupal";
        self
    }

    /// `rescan_every`: how often the schedule rescans the project (`"1s"`, `"off"`).
    pub fn rescan_every(mut self, every: &str) -> ProjectSpec {
        self.rescan_every = Some(every.into());
        self
    }

    /// The branch patterns released (`main` and `*.x` unless a test says otherwise).
    pub fn branches(mut self, patterns: &[&str]) -> ProjectSpec {
        self.branches = Some(patterns.iter().map(|p| p.to_string()).collect());
        self
    }

    /// No `branches` key: baler's default applies.
    pub fn default_branches(mut self) -> ProjectSpec {
        self.branches = None;
        self
    }

    /// Accepts GitHub's legacy sha1 signature header.
    pub fn allow_sha1(mut self) -> ProjectSpec {
        self.allow_sha1 = true;
        self
    }

    /// The token baler fetches the repository with.
    pub fn git_token(mut self, token: &str) -> ProjectSpec {
        self.token = Some(token.into());
        self
    }

    /// The Composer name the project claims in the config.
    pub fn composer(mut self, package: &str) -> ProjectSpec {
        self.composer = Some(package.into());
        self
    }
}
