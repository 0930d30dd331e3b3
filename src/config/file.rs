//! The file part of the settings: `baler.toml` as written, before the environment and the
//! checks. Unknown keys are errors, so a typo never passes silently.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::http::HttpConfig;
use super::notifications::NotificationConfig;
use super::project::ProjectConfig;
use super::schedule::{RetentionConfig, ScheduleConfig};
use super::signing::SigningConfig;
use super::storage::StorageConfig;
use super::{ConfigError, FieldError};

pub const DEFAULT_CONFIG_FILE: &str = "baler.toml";

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    pub listen: Option<String>,
    pub public_url: Option<String>,
    pub metrics_listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub admin_token: Option<String>,
    pub workers: Option<usize>,
    pub max_attempts: Option<u32>,
    pub queue: Option<QueueConfig>,
    pub worker: Option<WorkerConfig>,
    pub http: Option<HttpConfig>,
    pub storage: Option<StorageConfig>,
    pub schedule: Option<ScheduleConfig>,
    pub retention: Option<RetentionConfig>,
    pub signing: Option<SigningConfig>,
    #[serde(default)]
    pub projects: Vec<ProjectConfig>,
    #[serde(default)]
    pub notifications: Vec<NotificationConfig>,
}

impl FileConfig {
    /// Reads `path` if given, else `./baler.toml` if it exists, else nothing. Returns the file
    /// and the origin that errors name.
    pub fn read(path: Option<&Path>) -> Result<(FileConfig, String), ConfigError> {
        let chosen = match path {
            Some(p) => Some(p.to_path_buf()),
            None => Some(PathBuf::from(DEFAULT_CONFIG_FILE)).filter(|p| p.is_file()),
        };
        let Some(path) = chosen else {
            return Ok((FileConfig::default(), "defaults".to_string()));
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let origin = format!("config file {}", path.display());
        Ok((FileConfig::parse(&path, &text)?, origin))
    }

    pub fn parse(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })
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

impl QueueConfig {
    /// The setting that is out of range, if any.
    pub(super) fn check(&self) -> Result<(), FieldError> {
        if self.lease_seconds < 2 {
            return Err(FieldError::new("queue.lease_seconds", "must be at least 2"));
        }
        if self.poll_interval_ms == 0 {
            return Err(FieldError::new(
                "queue.poll_interval_ms",
                "must be at least 1",
            ));
        }
        Ok(())
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

    /// The setting that is out of range, if any.
    pub(super) fn check(&self) -> Result<(), FieldError> {
        for (key, value) in [
            ("worker.fetch_timeout_seconds", self.fetch_timeout_seconds),
            ("worker.job_timeout_seconds", self.job_timeout_seconds),
        ] {
            if value == 0 {
                return Err(FieldError::new(key, "must be at least 1"));
            }
        }
        Ok(())
    }
}
