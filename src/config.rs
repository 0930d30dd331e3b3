//! Settings: a TOML file overlaid by `BALER_*` environment variables, over defaults that let
//! `baler serve` start with nothing given (127.0.0.1:8080, SQLite under `./baler-data`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use globset::Glob;
use serde::Deserialize;

use crate::git::RemoteAuth;

mod http;
pub use http::{HttpConfig, HttpLimits};

/// Errors say which file or variable and which key is wrong, so a user can fix it at once.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{origin}: `{key}` {message}")]
    Invalid {
        origin: String,
        key: String,
        message: String,
    },
}

/// The host a project's webhooks come from; `gitea` covers Forgejo too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Github,
    Gitlab,
    Gitea,
    Bitbucket,
}

impl Provider {
    /// The basic-auth user name the host expects with an access token as the password.
    pub fn token_user(self) -> &'static str {
        match self {
            Provider::Github => "x-access-token",
            Provider::Gitlab => "oauth2",
            Provider::Gitea => "oauth2",
            Provider::Bitbucket => "x-token-auth",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Github => "github",
            Provider::Gitlab => "gitlab",
            Provider::Gitea => "gitea",
            Provider::Bitbucket => "bitbucket",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "github" => Some(Provider::Github),
            "gitlab" => Some(Provider::Gitlab),
            "gitea" => Some(Provider::Gitea),
            "bitbucket" => Some(Provider::Bitbucket),
            _ => None,
        }
    }
}

/// Where the top directory of an archive comes from and whether `.info` files are rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// Top directory `NAME/`, `.info` and `.info.yml` files get drupal.org's version block.
    Drupal,
    /// Top directory `NAME-VERSION/`, files exactly as in git.
    Plain,
}

impl Layout {
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::Drupal => "drupal",
            Layout::Plain => "plain",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "drupal" => Some(Layout::Drupal),
            "plain" => Some(Layout::Plain),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
pub enum ArchiveFormat {
    #[serde(rename = "tar.gz")]
    TarGz,
    #[serde(rename = "zip")]
    Zip,
}

impl ArchiveFormat {
    pub fn extension(self) -> &'static str {
        match self {
            ArchiveFormat::TarGz => "tar.gz",
            ArchiveFormat::Zip => "zip",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "tar.gz" => Some(ArchiveFormat::TarGz),
            "zip" => Some(ArchiveFormat::Zip),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ArchiveFormat::TarGz => "application/gzip",
            ArchiveFormat::Zip => "application/zip",
        }
    }
}

/// Queue timing: `[queue]` in the config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// A claim not renewed for this long is handed out again (its worker is presumed dead).
    pub lease_seconds: u64,
    /// The first retry of a failed job waits this long; each further retry doubles it.
    pub retry_backoff_seconds: u64,
    /// How often idle workers look for work queued by other processes.
    pub poll_interval_ms: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            lease_seconds: 60,
            retry_backoff_seconds: 10,
            poll_interval_ms: 2000,
        }
    }
}

/// Time limits of the release jobs: `[worker]` in the config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// A fetch that cannot connect, or receives nothing for this long, fails (transient: the
    /// item is retried with backoff).
    pub fetch_timeout_seconds: u64,
    /// A job running longer is abandoned and its claim given back; it counts as an attempt.
    pub job_timeout_seconds: u64,
    /// After SIGTERM or SIGINT: stop claiming, give running jobs this long, then exit.
    pub drain_seconds: u64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            fetch_timeout_seconds: 300,
            job_timeout_seconds: 3600,
            drain_seconds: 30,
        }
    }
}

impl WorkerConfig {
    pub fn fetch_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.fetch_timeout_seconds)
    }

    pub fn job_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.job_timeout_seconds)
    }

    pub fn drain(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.drain_seconds)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "lowercase")]
pub enum StorageConfig {
    Local,
}

/// One project as written in the config file.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectConfig {
    pub name: String,
    pub title: Option<String>,
    pub repo: String,
    pub provider: Provider,
    pub secret: Option<String>,
    pub secret_env: Option<String>,
    /// During a secret rotation: `[new, old]`, both accepted.
    pub secrets: Option<Vec<String>>,
    /// Accept GitHub's legacy `X-Hub-Signature: sha1=…` header.
    #[serde(default)]
    pub allow_sha1: bool,
    #[serde(default = "default_branches")]
    pub branches: Vec<String>,
    #[serde(default = "default_tags")]
    pub tags: Vec<String>,
    #[serde(default = "default_formats")]
    pub formats: Vec<ArchiveFormat>,
    #[serde(default = "default_layout")]
    pub layout: Layout,
    pub composer: Option<String>,
    /// The project's `type` in the Drupal update feed.
    pub drupal_type: Option<String>,
    /// The feed's `supported_branches`: version prefixes ending in a dot (`8.x-1.`, `2.0.`).
    pub supported_branches: Option<Vec<String>>,
    /// A private repository over HTTPS: an access token, sent as the basic-auth password.
    pub token: Option<String>,
    pub token_env: Option<String>,
    /// The basic-auth user name sent with the token (default: what the provider expects).
    pub http_user: Option<String>,
    /// A private repository over SSH: the private key file.
    pub ssh_key: Option<PathBuf>,
    pub ssh_passphrase_env: Option<String>,
}

pub fn default_branches() -> Vec<String> {
    vec!["main".into(), "master".into(), "*.x".into()]
}

pub fn default_tags() -> Vec<String> {
    vec!["*".into()]
}

pub fn default_formats() -> Vec<ArchiveFormat> {
    vec![ArchiveFormat::TarGz, ArchiveFormat::Zip]
}

fn default_layout() -> Layout {
    Layout::Plain
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    public_url: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    admin_token: Option<String>,
    workers: Option<usize>,
    max_attempts: Option<u32>,
    queue: Option<QueueConfig>,
    worker: Option<WorkerConfig>,
    http: Option<HttpConfig>,
    storage: Option<StorageConfig>,
    #[serde(default)]
    projects: Vec<ProjectConfig>,
}

/// A project with its secret resolved and its settings checked.
#[derive(Clone)]
pub struct ProjectSettings {
    pub name: String,
    pub title: String,
    pub repo: String,
    pub provider: Provider,
    pub secret: String,
    /// The secret being rotated out, still accepted.
    pub previous_secret: Option<String>,
    pub allow_sha1: bool,
    pub branches: Vec<String>,
    pub tags: Vec<String>,
    pub formats: Vec<ArchiveFormat>,
    pub layout: Layout,
    pub composer: Option<String>,
    pub drupal_type: String,
    /// `None`: every release line is supported.
    pub supported_branches: Option<Vec<String>>,
    /// Credentials for fetching the repository (none for public ones).
    pub auth: RemoteAuth,
}

/// The project types Drupal's update module knows.
pub const DRUPAL_TYPES: &[&str] = &[
    "project_module",
    "project_theme",
    "project_theme_engine",
    "project_distribution",
    "project_profile",
    "project_core",
];

#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Base of absolute links; when unset, `http://` + the address actually bound.
    pub public_url: Option<String>,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub admin_token: Option<String>,
    pub workers: usize,
    pub max_attempts: u32,
    pub queue: QueueConfig,
    pub worker: WorkerConfig,
    pub http: HttpLimits,
    pub storage: StorageConfig,
    pub projects: Vec<ProjectSettings>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("data_dir", &self.data_dir)
            .field("database_url", &crate::startup::redact(&self.database_url))
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .field("workers", &self.workers)
            .field("projects", &self.projects)
            .finish_non_exhaustive()
    }
}

pub const DEFAULT_CONFIG_FILE: &str = "baler.toml";

impl Config {
    /// Loads `path` if given, else `./baler.toml` if it exists, else nothing; then the environment.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        let chosen = match path {
            Some(p) => Some(p.to_path_buf()),
            None => Some(PathBuf::from(DEFAULT_CONFIG_FILE)).filter(|p| p.is_file()),
        };
        let (file, origin) = match &chosen {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.clone(),
                    source,
                })?;
                (
                    parse_file(p, &text)?,
                    format!("config file {}", p.display()),
                )
            }
            None => (FileConfig::default(), "defaults".to_string()),
        };
        Config::resolve(file, &origin, &env)
    }

    /// Builds a config from TOML text, as if read from `origin` (used by tests and `--demo`).
    pub fn from_toml(text: &str, env: &[(String, String)]) -> Result<Config, ConfigError> {
        let path = PathBuf::from("<inline>");
        Config::resolve(parse_file(&path, text)?, "config <inline>", env)
    }

    fn resolve(
        file: FileConfig,
        origin: &str,
        env: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let var = |name: &str| {
            env.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty())
        };
        let invalid = |origin: &str, key: &str, message: String| ConfigError::Invalid {
            origin: origin.to_string(),
            key: key.to_string(),
            message,
        };
        // A value from the environment wins; errors name where the value came from.
        let pick = |env_name: &str, file_value: Option<String>| match var(env_name) {
            Some(v) => (Some(v), format!("environment variable {env_name}")),
            None => (file_value, origin.to_string()),
        };

        let (listen, listen_origin) = pick("BALER_LISTEN", file.listen);
        let listen_text = listen.unwrap_or_else(|| "127.0.0.1:8080".to_string());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            invalid(
                &listen_origin,
                "listen",
                format!("must be an address like 127.0.0.1:8080, not {listen_text:?}"),
            )
        })?;

        let data_dir = var("BALER_DATA_DIR")
            .map(PathBuf::from)
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./baler-data"));

        let (public_url, public_origin) = pick("BALER_PUBLIC_URL", file.public_url);
        if let Some(url) = &public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(invalid(
                &public_origin,
                "public_url",
                format!("must start with http:// or https://, not {url:?}"),
            ));
        }
        let public_url = public_url.map(|u| u.trim_end_matches('/').to_string());

        let (database_url, db_origin) = pick("BALER_DATABASE_URL", file.database_url);
        let database_url = database_url
            .unwrap_or_else(|| format!("sqlite://{}/baler.db?mode=rwc", data_dir.display()));
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(invalid(
                &db_origin,
                "database_url",
                "must be a sqlite:// or postgres:// URL".into(),
            ));
        }

        let admin_token = var("BALER_ADMIN_TOKEN")
            .or(file.admin_token)
            .filter(|t| !t.is_empty());

        let workers = match var("BALER_WORKERS") {
            Some(v) => v.parse::<usize>().map_err(|_| {
                invalid(
                    "environment variable BALER_WORKERS",
                    "workers",
                    format!("must be a whole number, not {v:?}"),
                )
            })?,
            None => file.workers.unwrap_or(2),
        };
        if workers == 0 {
            return Err(invalid(origin, "workers", "must be at least 1".into()));
        }
        let max_attempts = file.max_attempts.unwrap_or(5);
        if max_attempts == 0 {
            return Err(invalid(origin, "max_attempts", "must be at least 1".into()));
        }

        let queue = file.queue.unwrap_or_default();
        if queue.lease_seconds < 2 {
            return Err(invalid(
                origin,
                "queue.lease_seconds",
                "must be at least 2".into(),
            ));
        }
        if queue.poll_interval_ms == 0 {
            return Err(invalid(
                origin,
                "queue.poll_interval_ms",
                "must be at least 1".into(),
            ));
        }

        let worker = file.worker.unwrap_or_default();
        for (key, value) in [
            ("worker.fetch_timeout_seconds", worker.fetch_timeout_seconds),
            ("worker.job_timeout_seconds", worker.job_timeout_seconds),
        ] {
            if value == 0 {
                return Err(invalid(origin, key, "must be at least 1".into()));
            }
        }

        let http = file
            .http
            .unwrap_or_default()
            .check()
            .map_err(|(key, message)| invalid(origin, &key, message))?;

        let mut projects: Vec<ProjectSettings> = Vec::new();
        for (index, project) in file.projects.into_iter().enumerate() {
            let settings = project_settings(project, index, origin, &var)?;
            if projects.iter().any(|p| p.name == settings.name) {
                return Err(invalid(
                    origin,
                    &format!("projects[{index}].name"),
                    format!("{:?} is used by two projects", settings.name),
                ));
            }
            if let Some(name) = &settings.composer
                && let Some(other) = projects.iter().find(|p| p.composer.as_ref() == Some(name))
            {
                return Err(invalid(
                    origin,
                    &format!("projects[{index}].composer"),
                    format!(
                        "{name:?} is already the Composer name of project {:?}; a name has one owner",
                        other.name
                    ),
                ));
            }
            projects.push(settings);
        }

        Ok(Config {
            listen,
            public_url,
            data_dir,
            database_url,
            admin_token,
            workers,
            max_attempts,
            queue,
            worker,
            http,
            storage: file.storage.unwrap_or(StorageConfig::Local),
            projects,
        })
    }

    /// The queue's timing as the workers use it.
    pub fn queue_tuning(&self) -> crate::queue::QueueTuning {
        let lease = std::time::Duration::from_secs(self.queue.lease_seconds);
        crate::queue::QueueTuning {
            lease,
            heartbeat: lease / 4,
            idle_poll: std::time::Duration::from_millis(self.queue.poll_interval_ms),
            backoff: std::time::Duration::from_secs(self.queue.retry_backoff_seconds),
            max_attempts: self.max_attempts,
        }
    }

    pub fn files_dir(&self) -> PathBuf {
        self.data_dir.join("files")
    }

    pub fn mirrors_dir(&self) -> PathBuf {
        self.data_dir.join("mirrors")
    }
}

fn parse_file(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().to_string(),
    })
}

fn project_settings(
    project: ProjectConfig,
    index: usize,
    origin: &str,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<ProjectSettings, ConfigError> {
    let key = |field: &str| format!("projects[{index}].{field}");
    let invalid = |field: &str, message: String| ConfigError::Invalid {
        origin: origin.to_string(),
        key: key(field),
        message,
    };
    validate_project_name(&project.name).map_err(|m| invalid("name", m))?;
    if project.repo.trim().is_empty() {
        return Err(invalid("repo", "must not be empty".into()));
    }
    let (secret, previous_secret) = match (project.secret, project.secret_env, project.secrets) {
        (Some(s), None, None) if !s.is_empty() => (s, None),
        (None, Some(env_name), None) => (
            var(&env_name).ok_or_else(|| {
                invalid(
                    "secret_env",
                    format!("names the environment variable {env_name}, which is not set"),
                )
            })?,
            None,
        ),
        (None, None, Some(list)) => match list.as_slice() {
            [new] if !new.is_empty() => (new.clone(), None),
            [new, old] if !new.is_empty() && !old.is_empty() => (new.clone(), Some(old.clone())),
            _ => {
                return Err(invalid(
                    "secrets",
                    "must list one or two non-empty secrets: [new, old]".into(),
                ));
            }
        },
        (None, None, None) => {
            return Err(invalid(
                "secret",
                "is required (or `secret_env` naming a variable that holds it, or `secrets`)"
                    .into(),
            ));
        }
        (Some(s), None, None) if s.is_empty() => {
            return Err(invalid("secret", "must not be empty".into()));
        }
        _ => {
            return Err(invalid(
                "secret",
                "set one of `secret`, `secret_env` or `secrets`".into(),
            ));
        }
    };
    for (field, patterns) in [("branches", &project.branches), ("tags", &project.tags)] {
        for pattern in patterns {
            Glob::new(pattern)
                .map_err(|e| invalid(field, format!("has a bad pattern {pattern:?}: {e}")))?;
        }
    }
    if project.formats.is_empty() {
        return Err(invalid(
            "formats",
            "must list at least one of \"tar.gz\", \"zip\"".into(),
        ));
    }
    let mut formats = project.formats;
    formats.dedup();
    if let Some(name) = &project.composer
        && !valid_composer_name(name)
    {
        return Err(invalid(
            "composer",
            format!(
                "must be a Composer package name like \"vendor/package\" (lowercase), not {name:?}"
            ),
        ));
    }
    let drupal_type = project
        .drupal_type
        .unwrap_or_else(|| "project_module".to_string());
    if !DRUPAL_TYPES.contains(&drupal_type.as_str()) {
        return Err(invalid(
            "drupal_type",
            format!(
                "must be one of {}, not {drupal_type:?}",
                DRUPAL_TYPES.join(", ")
            ),
        ));
    }
    if let Some(prefix) = project
        .supported_branches
        .iter()
        .flatten()
        .find(|p| p.is_empty() || !p.ends_with('.') || p.contains(','))
    {
        return Err(invalid(
            "supported_branches",
            format!(
                "lists version prefixes ending in a dot, like \"8.x-1.\" or \"2.0.\"; not {prefix:?}"
            ),
        ));
    }
    let env_value = |field: &str, name: &Option<String>| -> Result<Option<String>, ConfigError> {
        name.as_ref()
            .map(|env_name| {
                var(env_name).ok_or_else(|| {
                    invalid(
                        field,
                        format!("names the environment variable {env_name}, which is not set"),
                    )
                })
            })
            .transpose()
    };
    let token = match (project.token, env_value("token_env", &project.token_env)?) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "token",
                "set `token` or `token_env`, not both".into(),
            ));
        }
        (Some(t), None) if t.is_empty() => {
            return Err(invalid("token", "must not be empty".into()));
        }
        (token, from_env) => token.or(from_env),
    };
    let auth = RemoteAuth {
        http_user: project
            .http_user
            .unwrap_or_else(|| project.provider.token_user().to_string()),
        token,
        ssh_key: project.ssh_key,
        ssh_passphrase: env_value("ssh_passphrase_env", &project.ssh_passphrase_env)?,
    };
    Ok(ProjectSettings {
        auth,
        title: project.title.unwrap_or_else(|| project.name.clone()),
        name: project.name,
        repo: project.repo,
        provider: project.provider,
        secret,
        previous_secret,
        allow_sha1: project.allow_sha1,
        branches: project.branches,
        tags: project.tags,
        formats,
        layout: project.layout,
        composer: project.composer,
        drupal_type,
        supported_branches: project.supported_branches,
    })
}

/// `vendor/package`, each part as Composer allows: lowercase letters, digits and `._-`
/// between them.
pub fn valid_composer_name(name: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && p.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && p.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && p.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            })
    };
    matches!(name.split_once('/'), Some((vendor, package)) if part(vendor) && part(package))
}

/// Secrets are left out, so a stray `{:?}` never writes one to a log.
impl std::fmt::Debug for ProjectSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectSettings")
            .field("name", &self.name)
            .field("repo", &self.repo)
            .field("provider", &self.provider)
            .field("secret", &"<redacted>")
            .field("branches", &self.branches)
            .field("tags", &self.tags)
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

/// The longest project name.
pub const MAX_PROJECT_NAME: usize = 64;

/// Project names end up in URLs and file names, so they are kept to `[a-z0-9_]+`, at most
/// 64 characters.
pub fn validate_project_name(name: &str) -> Result<(), String> {
    if name.len() > MAX_PROJECT_NAME {
        return Err(format!(
            "must be at most {MAX_PROJECT_NAME} characters, not {}",
            name.len()
        ));
    }
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(format!("must match [a-z0-9_]+, not {name:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_need_nothing() {
        let config = Config::from_toml("", &[]).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.data_dir, PathBuf::from("./baler-data"));
        assert_eq!(
            config.database_url,
            "sqlite://./baler-data/baler.db?mode=rwc"
        );
        assert_eq!(config.public_url, None);
        assert_eq!(config.workers, 2);
    }

    #[test]
    fn environment_overrides_file() {
        let config = Config::from_toml(
            "workers = 3\nlisten = \"127.0.0.1:9000\"",
            &env(&[("BALER_WORKERS", "7"), ("BALER_DATA_DIR", "/srv/baler")]),
        )
        .unwrap();
        assert_eq!(config.workers, 7);
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.database_url, "sqlite:///srv/baler/baler.db?mode=rwc");
    }

    #[test]
    fn unknown_key_names_the_key_and_file() {
        let err = Config::from_toml("listne = \"x\"", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("<inline>") && err.contains("listne"), "{err}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = Config::from_toml("[[projects]]\nname = \"Bad-Name\"\nrepo = \"r\"\nprovider = \"github\"\nsecret = \"s\"", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("projects[0].name"), "{err}");
        let err = Config::from_toml(
            "[[projects]]\nname = \"a\"\nrepo = \"r\"\nprovider = \"svn\"\nsecret = \"s\"",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("svn"), "{err}");
        let err = Config::from_toml("", &env(&[("BALER_WORKERS", "many")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("BALER_WORKERS"), "{err}");
        let err = Config::from_toml("[[projects]]\nname = \"a\"\nrepo = \"r\"\nprovider = \"github\"\nsecret_env = \"NOPE_UNSET\"", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("NOPE_UNSET"), "{err}");
        let err = Config::from_toml("[worker]\nfetch_timeout_seconds = 0", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("worker.fetch_timeout_seconds"), "{err}");
        let err = Config::from_toml("[worker]\njob_timeout = 5", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("job_timeout"), "{err}");
        let config = Config::from_toml("[worker]\ndrain_seconds = 5", &[]).unwrap();
        assert_eq!(config.worker.drain_seconds, 5);
        assert_eq!(config.worker.fetch_timeout_seconds, 300);
    }

    #[test]
    fn debug_output_hides_secrets() {
        let config = Config::from_toml(
            "admin_token = \"tok-123\"\n[[projects]]\nname = \"a\"\nrepo = \"r\"\nprovider = \"github\"\nsecrets = [\"s3cr3t-new\", \"s3cr3t-old\"]",
            &[],
        )
        .unwrap();
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("tok-123"),
            "{shown}"
        );
        assert_eq!(
            config.projects[0].previous_secret.as_deref(),
            Some("s3cr3t-old")
        );
    }

    #[test]
    fn secret_from_environment() {
        let config = Config::from_toml(
            "[[projects]]\nname = \"a\"\nrepo = \"r\"\nprovider = \"gitlab\"\nsecret_env = \"A_SECRET\"",
            &env(&[("A_SECRET", "s3")]),
        )
        .unwrap();
        assert_eq!(config.projects[0].secret, "s3");
        assert_eq!(config.projects[0].formats, default_formats());
    }
}
