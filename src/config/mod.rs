//! Settings: a TOML file overlaid by `BALER_*` environment variables, over defaults that let
//! `baler serve` start with nothing given (127.0.0.1:8080, SQLite under `./baler-data`).
//!
//! The parts: [`file`] (the file as written), [`env`] (the environment), [`project`] (one
//! `[[projects]]` entry, checked into [`ProjectSettings`]) and [`http`] (`[http]` limits). This
//! module puts them together into one checked [`Config`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

mod env;
mod file;
mod http;
mod notifications;
mod project;
mod schedule;
mod signing;
mod storage;

use env::Environment;
use file::FileConfig;
pub use file::{DEFAULT_CONFIG_FILE, QueueConfig, WorkerConfig};
pub use http::{HttpConfig, HttpLimits};
pub use project::{
    DRUPAL_TYPES, MAX_PROJECT_NAME, ProjectConfig, ProjectSettings, default_branches,
    default_formats, default_tags, valid_composer_name, validate_project_name,
};
pub use schedule::RetentionPolicy;
pub use signing::{SigningConfig, SigningSettings};
pub use storage::{S3Downloads, S3Settings, StorageConfig, StorageKind, StorageSettings};

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

/// What is wrong with one setting, before the caller says where it came from: `field` is the
/// key (`queue.lease_seconds`, `http.trusted_proxies`, or a project's own field).
#[derive(Debug)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

fn invalid(origin: &str, key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        origin: origin.to_string(),
        key: key.to_string(),
        message: message.into(),
    }
}

#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Where `/metrics` is served on its own too (how a `baler worker` is scraped).
    pub metrics_listen: Option<SocketAddr>,
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
    pub storage: StorageSettings,
    pub projects: Vec<ProjectSettings>,
    /// `[schedule] rescan_every`: how often projects that set no interval are rescanned.
    pub rescan_every: Option<std::time::Duration>,
    /// `[retention]`: what the curator removes, and how often it runs.
    pub retention: RetentionPolicy,
    /// `[[notifications]]`: subscribers synced into the database at start.
    pub notifications: Vec<crate::notify::SubscriberSpec>,
    /// `[signing]`: the key that signs releases; `None` when signing is off.
    pub signing: Option<SigningSettings>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("data_dir", &self.data_dir)
            .field("database_url", &crate::redact::redact(&self.database_url))
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .field("workers", &self.workers)
            .field("storage", &self.storage)
            .field("projects", &self.projects)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Loads `path` if given, else `./baler.toml` if it exists, else nothing; then the environment.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        let (file, origin) = FileConfig::read(path)?;
        Config::resolve(file, &origin, &Environment::new(&vars))
    }

    /// Builds a config from TOML text, as if read from `origin` (used by tests and `--demo`).
    pub fn from_toml(text: &str, vars: &[(String, String)]) -> Result<Config, ConfigError> {
        let file = FileConfig::parse(Path::new("<inline>"), text)?;
        Config::resolve(file, "config <inline>", &Environment::new(vars))
    }

    /// The file overlaid by the environment, every value checked. A value from the environment
    /// wins; errors name where the value came from.
    fn resolve(file: FileConfig, origin: &str, env: &Environment) -> Result<Config, ConfigError> {
        let listen = listen(env.or_file("BALER_LISTEN", file.listen, origin))?;
        let metrics_listen =
            metrics_listen(env.or_file("BALER_METRICS_LISTEN", file.metrics_listen, origin))?;
        let data_dir = env
            .var("BALER_DATA_DIR")
            .map(PathBuf::from)
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./baler-data"));
        let public_url = public_url(env.or_file("BALER_PUBLIC_URL", file.public_url, origin))?;
        let database_url = database_url(
            env.or_file("BALER_DATABASE_URL", file.database_url, origin),
            &data_dir,
        )?;
        let admin_token = env
            .var("BALER_ADMIN_TOKEN")
            .or(file.admin_token)
            .filter(|t| !t.is_empty());
        let workers = workers(env, file.workers, origin)?;
        let max_attempts = file.max_attempts.unwrap_or(5);
        if max_attempts == 0 {
            return Err(invalid(origin, "max_attempts", "must be at least 1"));
        }
        let queue = file.queue.unwrap_or_default();
        queue
            .check()
            .map_err(|e| invalid(origin, &e.field, e.message))?;
        let worker = file.worker.unwrap_or_default();
        worker
            .check()
            .map_err(|e| invalid(origin, &e.field, e.message))?;
        let rescan_every = file
            .schedule
            .unwrap_or_default()
            .rescan_every()
            .map_err(|e| invalid(origin, &e.field, e.message))?;
        let http = file
            .http
            .unwrap_or_default()
            .check()
            .map_err(|e| invalid(origin, &e.field, e.message))?;
        Ok(Config {
            listen,
            metrics_listen,
            public_url,
            data_dir,
            database_url,
            admin_token,
            workers,
            max_attempts,
            queue,
            worker,
            http,
            storage: file
                .storage
                .unwrap_or_default()
                .check(env)
                .map_err(|e| invalid(origin, &e.field, e.message))?,
            projects: projects(file.projects, origin, env, rescan_every)?,
            rescan_every,
            retention: file
                .retention
                .unwrap_or_default()
                .check()
                .map_err(|e| invalid(origin, &e.field, e.message))?,
            notifications: notifications(file.notifications, origin, env)?,
            signing: file
                .signing
                .unwrap_or_default()
                .check(env)
                .map_err(|e| invalid(origin, &e.field, e.message))?,
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

    /// Opens the store `[storage]` names, without checking it (see
    /// [`ArtifactStore::check`](crate::store::ArtifactStore::check)).
    pub fn open_store(&self) -> Result<crate::store::Store, crate::store::StoreError> {
        Ok(match &self.storage {
            StorageSettings::Local => {
                std::sync::Arc::new(crate::store::LocalStore::new(self.files_dir()))
            }
            StorageSettings::S3(settings) => std::sync::Arc::new(crate::store::S3Store::new(
                settings,
                self.data_dir.join("staging"),
            )?),
        })
    }

    pub fn files_dir(&self) -> PathBuf {
        self.data_dir.join("files")
    }

    pub fn mirrors_dir(&self) -> PathBuf {
        self.data_dir.join("mirrors")
    }
}

fn listen(given: env::Sourced) -> Result<SocketAddr, ConfigError> {
    let text = given.value.unwrap_or_else(|| "127.0.0.1:8080".to_string());
    text.parse().map_err(|_| {
        invalid(
            &given.origin,
            "listen",
            format!("must be an address like 127.0.0.1:8080, not {text:?}"),
        )
    })
}

fn metrics_listen(given: env::Sourced) -> Result<Option<SocketAddr>, ConfigError> {
    given
        .value
        .map(|text| {
            text.parse().map_err(|_| {
                invalid(
                    &given.origin,
                    "metrics_listen",
                    format!("must be an address like 0.0.0.0:9464, not {text:?}"),
                )
            })
        })
        .transpose()
}

fn public_url(given: env::Sourced) -> Result<Option<String>, ConfigError> {
    match given.value {
        Some(url) if !(url.starts_with("http://") || url.starts_with("https://")) => Err(invalid(
            &given.origin,
            "public_url",
            format!("must start with http:// or https://, not {url:?}"),
        )),
        url => Ok(url.map(|u| u.trim_end_matches('/').to_string())),
    }
}

fn database_url(given: env::Sourced, data_dir: &Path) -> Result<String, ConfigError> {
    let url = given
        .value
        .unwrap_or_else(|| format!("sqlite://{}/baler.db?mode=rwc", data_dir.display()));
    if !(url.starts_with("sqlite:")
        || url.starts_with("postgres://")
        || url.starts_with("postgresql://"))
    {
        return Err(invalid(
            &given.origin,
            "database_url",
            "must be a sqlite:// or postgres:// URL",
        ));
    }
    Ok(url)
}

fn workers(
    env: &Environment,
    file_value: Option<usize>,
    origin: &str,
) -> Result<usize, ConfigError> {
    let workers = match env.var("BALER_WORKERS") {
        Some(v) => v.parse::<usize>().map_err(|_| {
            invalid(
                "environment variable BALER_WORKERS",
                "workers",
                format!("must be a whole number, not {v:?}"),
            )
        })?,
        None => file_value.unwrap_or(2),
    };
    if workers == 0 {
        return Err(invalid(origin, "workers", "must be at least 1"));
    }
    Ok(workers)
}

/// Every `[[projects]]` entry checked; names and Composer names are each used once.
fn notifications(
    entries: Vec<notifications::NotificationConfig>,
    origin: &str,
    env: &Environment,
) -> Result<Vec<crate::notify::SubscriberSpec>, ConfigError> {
    let mut specs: Vec<crate::notify::SubscriberSpec> = Vec::with_capacity(entries.len());
    for (index, entry) in entries.into_iter().enumerate() {
        let key = |field: &str| format!("notifications[{index}].{field}");
        let spec = entry
            .resolve(env)
            .map_err(|e| invalid(origin, &key(&e.field), e.message))?;
        if specs.iter().any(|s| s.url == spec.url) {
            return Err(invalid(
                origin,
                &key("url"),
                format!("{} is named by two entries", spec.url),
            ));
        }
        specs.push(spec);
    }
    Ok(specs)
}

fn projects(
    entries: Vec<ProjectConfig>,
    origin: &str,
    env: &Environment,
    default_rescan: Option<std::time::Duration>,
) -> Result<Vec<ProjectSettings>, ConfigError> {
    let mut projects: Vec<ProjectSettings> = Vec::with_capacity(entries.len());
    for (index, entry) in entries.into_iter().enumerate() {
        let key = |field: &str| format!("projects[{index}].{field}");
        let settings = entry
            .resolve(env, default_rescan)
            .map_err(|e| invalid(origin, &key(&e.field), e.message))?;
        if projects.iter().any(|p| p.name == settings.name) {
            return Err(invalid(
                origin,
                &key("name"),
                format!("{:?} is used by two projects", settings.name),
            ));
        }
        if let Some(name) = &settings.composer
            && let Some(other) = projects.iter().find(|p| p.composer.as_ref() == Some(name))
        {
            return Err(invalid(
                origin,
                &key("composer"),
                format!(
                    "{name:?} is already the Composer name of project {:?}; a name has one owner",
                    other.name
                ),
            ));
        }
        projects.push(settings);
    }
    Ok(projects)
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
