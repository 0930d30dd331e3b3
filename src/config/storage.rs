//! `[storage]`: where releases' files live. `kind = "local"` (the default) keeps them under
//! `data_dir/files`; `kind = "s3"` puts them in an S3-compatible bucket, with the keys read
//! from the environment, never from the file.

use std::time::Duration;

use serde::Deserialize;

use super::FieldError;
use super::env::Environment;
pub use crate::store::{S3Downloads, S3Settings};

/// `[storage]` as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    #[serde(default)]
    pub kind: StorageKind,
    pub bucket: Option<String>,
    /// Omitted for AWS; other servers get path-style requests.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Prepended to every key (`baler/`).
    pub prefix: Option<String>,
    pub downloads: Option<S3Downloads>,
    pub presign_seconds: Option<u64>,
    /// The variables that hold the keys, when not `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY`.
    pub access_key_env: Option<String>,
    pub secret_key_env: Option<String>,
    // Named only to be refused with a useful message: keys never go in the file.
    access_key: Option<toml::Value>,
    secret_key: Option<toml::Value>,
    access_key_id: Option<toml::Value>,
    secret_access_key: Option<toml::Value>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    #[default]
    Local,
    S3,
}

/// `[storage]` checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageSettings {
    Local,
    S3(S3Settings),
}

/// The longest a presigned URL may be valid (SigV4's own limit).
const MAX_PRESIGN: u64 = 7 * 24 * 3600;

impl StorageConfig {
    pub fn check(self, env: &Environment) -> Result<StorageSettings, FieldError> {
        for (given, name) in [
            (&self.access_key, "access_key"),
            (&self.secret_key, "secret_key"),
            (&self.access_key_id, "access_key_id"),
            (&self.secret_access_key, "secret_access_key"),
        ] {
            if given.is_some() {
                return Err(FieldError::new(
                    format!("storage.{name}"),
                    "is not read from the file: keys come from AWS_ACCESS_KEY_ID and \
                     AWS_SECRET_ACCESS_KEY, or from the variables access_key_env and \
                     secret_key_env name",
                ));
            }
        }
        if self.kind == StorageKind::Local {
            let s3_only = [
                ("bucket", self.bucket.is_some()),
                ("endpoint", self.endpoint.is_some()),
                ("region", self.region.is_some()),
                ("prefix", self.prefix.is_some()),
                ("downloads", self.downloads.is_some()),
                ("presign_seconds", self.presign_seconds.is_some()),
                ("access_key_env", self.access_key_env.is_some()),
                ("secret_key_env", self.secret_key_env.is_some()),
            ];
            if let Some((key, _)) = s3_only.iter().find(|(_, given)| *given) {
                return Err(FieldError::new(
                    format!("storage.{key}"),
                    "applies only with kind = \"s3\"",
                ));
            }
            return Ok(StorageSettings::Local);
        }
        let bucket = self
            .bucket
            .filter(|b| !b.is_empty())
            .ok_or_else(|| FieldError::new("storage.bucket", "is required with kind = \"s3\""))?;
        if let Some(endpoint) = &self.endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(FieldError::new(
                "storage.endpoint",
                format!("must start with http:// or https://, not {endpoint:?}"),
            ));
        }
        let presign_seconds = self.presign_seconds.unwrap_or(300);
        if !(1..=MAX_PRESIGN).contains(&presign_seconds) {
            return Err(FieldError::new(
                "storage.presign_seconds",
                format!("must be between 1 and {MAX_PRESIGN} (7 days)"),
            ));
        }
        let key = |setting: &str, named: Option<String>, default: &str| match named {
            Some(name) => env.var(&name).map(Some).ok_or_else(|| {
                FieldError::new(
                    format!("storage.{setting}"),
                    format!("names the variable {name}, which is not set"),
                )
            }),
            None => Ok(env.var(default)),
        };
        let access_key = key("access_key_env", self.access_key_env, "AWS_ACCESS_KEY_ID")?;
        let secret_key = key(
            "secret_key_env",
            self.secret_key_env,
            "AWS_SECRET_ACCESS_KEY",
        )?;
        let region = self
            .region
            .or_else(|| env.var("AWS_REGION"))
            .or_else(|| env.var("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".to_string());
        Ok(StorageSettings::S3(S3Settings {
            bucket,
            endpoint: self.endpoint.map(|e| e.trim_end_matches('/').to_string()),
            region,
            prefix: self.prefix.unwrap_or_default(),
            downloads: self.downloads.unwrap_or_default(),
            presign: Duration::from_secs(presign_seconds),
            access_key,
            secret_key,
            aws_env: env.with_prefix("AWS_"),
        }))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, S3Downloads, StorageSettings};

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn s3_settings_take_keys_from_the_environment() {
        let config = Config::from_toml(
            "[storage]\nkind = \"s3\"\nbucket = \"releases\"\nendpoint = \"http://127.0.0.1:9000/\"\nprefix = \"baler/\"\ndownloads = \"redirect\"\naccess_key_env = \"MY_KEY\"",
            &vars(&[("MY_KEY", "id-1"), ("AWS_SECRET_ACCESS_KEY", "secret-1")]),
        )
        .unwrap();
        let StorageSettings::S3(s3) = &config.storage else {
            panic!("{:?}", config.storage)
        };
        assert_eq!(s3.bucket, "releases");
        assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(s3.region, "us-east-1");
        assert_eq!(s3.downloads, S3Downloads::Redirect);
        assert_eq!(s3.presign.as_secs(), 300);
        assert_eq!(s3.access_key.as_deref(), Some("id-1"));
        assert_eq!(s3.secret_key.as_deref(), Some("secret-1"));
        let shown = format!("{config:?} {s3:?}");
        assert!(
            !shown.contains("secret-1") && !shown.contains("id-1"),
            "{shown}"
        );
    }

    #[test]
    fn bad_storage_settings_name_their_key() {
        let error = |text: &str, env: &[(&str, &str)]| {
            Config::from_toml(text, &vars(env)).unwrap_err().to_string()
        };
        let err = error("[storage]\nkind = \"s3\"", &[]);
        assert!(err.contains("storage.bucket"), "{err}");
        let err = error(
            "[storage]\nkind = \"s3\"\nbucket = \"b\"\nsecret_access_key = \"x\"",
            &[],
        );
        assert!(
            err.contains("storage.secret_access_key") && err.contains("access_key_env"),
            "{err}"
        );
        let err = error(
            "[storage]\nkind = \"s3\"\nbucket = \"b\"\naccess_key_env = \"UNSET_KEY\"",
            &[],
        );
        assert!(err.contains("UNSET_KEY"), "{err}");
        let err = error("[storage]\nbucket = \"b\"", &[]);
        assert!(
            err.contains("storage.bucket") && err.contains("s3"),
            "{err}"
        );
        let err = error("[storage]\nkind = \"ftp\"", &[]);
        assert!(err.contains("ftp"), "{err}");
        let err = error(
            "[storage]\nkind = \"s3\"\nbucket = \"b\"\nendpoint = \"127.0.0.1:9000\"",
            &[],
        );
        assert!(err.contains("storage.endpoint"), "{err}");
        let err = error(
            "[storage]\nkind = \"s3\"\nbucket = \"b\"\npresign_seconds = 0",
            &[],
        );
        assert!(err.contains("storage.presign_seconds"), "{err}");
    }
}
