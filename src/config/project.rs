//! The project part of the settings: a `[[projects]]` entry as written, and the checked
//! [`ProjectSettings`] the rest of baler uses.

use std::path::PathBuf;

use globset::Glob;
use serde::Deserialize;

use super::FieldError;
use super::env::Environment;
use crate::git::RemoteAuth;
use crate::package::{ArchiveFormat, Layout};
use crate::provider::Provider;

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
    /// How often the project is rescanned: humantime or `"off"`; default `[schedule]`'s.
    pub rescan_every: Option<String>,
    /// The host's API for `baler project connect`: default from the provider
    /// (`https://api.github.com`, `https://gitlab.com/api/v4`, the repository's host for Gitea,
    /// `https://api.bitbucket.org/2.0`); GitHub Enterprise and self-managed GitLab set it.
    pub api_url: Option<String>,
    /// The variable holding a host API token for `baler project connect` (else the fetch
    /// token is used).
    pub api_token_env: Option<String>,
}

pub fn default_branches() -> Vec<String> {
    vec!["main".into(), "master".into(), "*.x".into()]
}

pub fn default_tags() -> Vec<String> {
    vec!["*".into()]
}

pub fn default_formats() -> Vec<ArchiveFormat> {
    ArchiveFormat::DEFAULTS.to_vec()
}

fn default_layout() -> Layout {
    Layout::Plain
}

/// A project with its secret resolved and its settings checked.
#[derive(Clone)]
pub struct ProjectSettings {
    pub name: String,
    pub title: String,
    pub repo: String,
    pub provider: Provider,
    /// Empty when the entry sets none: every delivery is refused until
    /// `baler project connect` makes one and keeps it in the database.
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
    /// How often the project is rescanned without a webhook; `None`: never.
    pub rescan_every: Option<std::time::Duration>,
    /// For `baler project connect`: the host's API base, when not the provider's default.
    pub api_url: Option<String>,
    /// For `baler project connect`: the token from `api_token_env`.
    pub api_token: Option<String>,
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

fn invalid(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError::new(field, message)
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

impl ProjectConfig {
    /// Checks every field and reads the secrets the entry names from `env`. Not a `TryFrom`:
    /// `secret_env`, `token_env` and `ssh_passphrase_env` need the environment.
    pub fn resolve(
        self,
        env: &Environment,
        default_rescan: Option<std::time::Duration>,
    ) -> Result<ProjectSettings, FieldError> {
        validate_project_name(&self.name).map_err(|m| invalid("name", m))?;
        if self.repo.trim().is_empty() {
            return Err(invalid("repo", "must not be empty"));
        }
        let (secret, previous_secret) = self.webhook_secrets(env)?;
        self.check_patterns()?;
        let formats = self.checked_formats()?;
        self.check_composer()?;
        let drupal_type = self.checked_drupal_type()?;
        self.check_supported_branches()?;
        let auth = self.auth(env)?;
        let api_token = optional_var(env, "api_token_env", &self.api_token_env)?;
        if let Some(url) = &self.api_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(invalid(
                "api_url",
                format!("must be an http(s) URL, not {url:?}"),
            ));
        }
        let rescan_every = match &self.rescan_every {
            Some(text) => super::schedule::every("rescan_every", text)?,
            None => default_rescan,
        };
        Ok(ProjectSettings {
            auth,
            rescan_every,
            api_token,
            api_url: self.api_url.map(|u| u.trim_end_matches('/').to_string()),
            title: self.title.unwrap_or_else(|| self.name.clone()),
            name: self.name,
            repo: self.repo,
            provider: self.provider,
            secret,
            previous_secret,
            allow_sha1: self.allow_sha1,
            branches: self.branches,
            tags: self.tags,
            formats,
            layout: self.layout,
            composer: self.composer,
            drupal_type,
            supported_branches: self.supported_branches,
        })
    }

    /// A project added through the admin API or `baler project add`: checked as a config entry
    /// is, its `secret_env` read from this process's environment. Fetch credentials are the
    /// config file's alone (workers read them from their own config), so a project added this
    /// way must be a public repository: `token`, `token_env`, `http_user`, `ssh_key` and
    /// `ssh_passphrase_env` are refused. So are `api_url` and `api_token_env`, which the
    /// database does not keep: a connect request for such a project carries them.
    pub fn resolve_added(
        self,
        default_rescan: Option<std::time::Duration>,
    ) -> Result<ProjectSettings, FieldError> {
        let private = [
            ("token", self.token.is_some()),
            ("token_env", self.token_env.is_some()),
            ("http_user", self.http_user.is_some()),
            ("ssh_key", self.ssh_key.is_some()),
            ("ssh_passphrase_env", self.ssh_passphrase_env.is_some()),
        ];
        if let Some((field, _)) = private.iter().find(|(_, given)| *given) {
            return Err(invalid(
                field,
                "is for private repositories, whose credentials only the config file holds: \
                 add such a project there",
            ));
        }
        let host_api = [
            ("api_url", self.api_url.is_some()),
            ("api_token_env", self.api_token_env.is_some()),
        ];
        if let Some((field, _)) = host_api.iter().find(|(_, given)| *given) {
            return Err(invalid(
                field,
                "is not kept in the database: send `api_url` and `api_token` with \
                 POST /api/v1/projects/NAME/connect, or add the project to the config file",
            ));
        }
        let vars: Vec<(String, String)> = std::env::vars().collect();
        self.resolve(&Environment::new(&vars), default_rescan)
    }

    /// The webhook secret and, during a rotation, the one being rotated out: from at most one
    /// of `secret`, `secret_env` or `secrets` (none: an empty secret, see
    /// [`ProjectSettings::secret`]).
    fn webhook_secrets(&self, env: &Environment) -> Result<(String, Option<String>), FieldError> {
        match (&self.secret, &self.secret_env, &self.secrets) {
            (Some(s), None, None) if s.is_empty() => Err(invalid("secret", "must not be empty")),
            (Some(s), None, None) => Ok((s.clone(), None)),
            (None, Some(name), None) => match env.var(name) {
                Some(secret) => Ok((secret, None)),
                None => Err(unset("secret_env", name)),
            },
            (None, None, Some(list)) => match list.as_slice() {
                [new] if !new.is_empty() => Ok((new.clone(), None)),
                [new, old] if !new.is_empty() && !old.is_empty() => {
                    Ok((new.clone(), Some(old.clone())))
                }
                _ => Err(invalid(
                    "secrets",
                    "must list one or two non-empty secrets: [new, old]",
                )),
            },
            // None yet: `baler project connect` makes one.
            (None, None, None) => Ok((String::new(), None)),
            _ => Err(invalid(
                "secret",
                "set one of `secret`, `secret_env` or `secrets`",
            )),
        }
    }

    fn check_patterns(&self) -> Result<(), FieldError> {
        for (field, patterns) in [("branches", &self.branches), ("tags", &self.tags)] {
            for pattern in patterns {
                Glob::new(pattern)
                    .map_err(|e| invalid(field, format!("has a bad pattern {pattern:?}: {e}")))?;
            }
        }
        Ok(())
    }

    /// The formats in the order given, each once.
    fn checked_formats(&self) -> Result<Vec<ArchiveFormat>, FieldError> {
        if self.formats.is_empty() {
            return Err(invalid(
                "formats",
                "must list at least one of \"tar.gz\", \"zip\"",
            ));
        }
        let mut formats: Vec<ArchiveFormat> = Vec::with_capacity(self.formats.len());
        for format in &self.formats {
            if !formats.contains(format) {
                formats.push(*format);
            }
        }
        Ok(formats)
    }

    fn check_composer(&self) -> Result<(), FieldError> {
        match &self.composer {
            Some(name) if !valid_composer_name(name) => Err(invalid(
                "composer",
                format!(
                    "must be a Composer package name like \"vendor/package\" (lowercase), not {name:?}"
                ),
            )),
            _ => Ok(()),
        }
    }

    fn checked_drupal_type(&self) -> Result<String, FieldError> {
        let drupal_type = self.drupal_type.as_deref().unwrap_or("project_module");
        if !DRUPAL_TYPES.contains(&drupal_type) {
            return Err(invalid(
                "drupal_type",
                format!(
                    "must be one of {}, not {drupal_type:?}",
                    DRUPAL_TYPES.join(", ")
                ),
            ));
        }
        Ok(drupal_type.to_string())
    }

    fn check_supported_branches(&self) -> Result<(), FieldError> {
        let bad = self
            .supported_branches
            .iter()
            .flatten()
            .find(|p| p.is_empty() || !p.ends_with('.') || p.contains(','));
        match bad {
            Some(prefix) => Err(invalid(
                "supported_branches",
                format!(
                    "lists version prefixes ending in a dot, like \"8.x-1.\" or \"2.0.\"; not {prefix:?}"
                ),
            )),
            None => Ok(()),
        }
    }

    /// The credentials for fetching the repository.
    fn auth(&self, env: &Environment) -> Result<RemoteAuth, FieldError> {
        let token = match (
            &self.token,
            optional_var(env, "token_env", &self.token_env)?,
        ) {
            (Some(_), Some(_)) => {
                return Err(invalid("token", "set `token` or `token_env`, not both"));
            }
            (Some(t), None) if t.is_empty() => return Err(invalid("token", "must not be empty")),
            (token, from_env) => token.clone().or(from_env),
        };
        Ok(RemoteAuth {
            http_user: self
                .http_user
                .clone()
                .unwrap_or_else(|| self.provider.token_user().to_string()),
            token,
            ssh_key: self.ssh_key.clone(),
            ssh_passphrase: optional_var(env, "ssh_passphrase_env", &self.ssh_passphrase_env)?,
        })
    }
}

/// The value of the variable that `field` names, if it names one; naming an unset one is an
/// error.
fn optional_var(
    env: &Environment,
    field: &'static str,
    name: &Option<String>,
) -> Result<Option<String>, FieldError> {
    name.as_ref()
        .map(|name| env.var(name).ok_or_else(|| unset(field, name)))
        .transpose()
}

fn unset(field: &'static str, name: &str) -> FieldError {
    invalid(
        field,
        format!("names the environment variable {name}, which is not set"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(formats: &[ArchiveFormat]) -> ProjectConfig {
        let mut config: ProjectConfig =
            toml::from_str("name = \"a\"\nrepo = \"r\"\nprovider = \"github\"\nsecret = \"s\"")
                .unwrap();
        config.formats = formats.to_vec();
        config
    }

    #[test]
    fn formats_are_kept_once_in_their_order() {
        use ArchiveFormat::{TarGz, Zip};
        let none = Environment::new(&[]);
        for (given, kept) in [
            (vec![Zip, TarGz, Zip], vec![Zip, TarGz]),
            (vec![TarGz, Zip, TarGz, TarGz], vec![TarGz, Zip]),
            (vec![Zip, Zip], vec![Zip]),
        ] {
            let settings = entry(&given).resolve(&none, None).unwrap();
            assert_eq!(settings.formats, kept, "{given:?}");
        }
        assert_eq!(
            entry(&[]).resolve(&none, None).unwrap_err().field,
            "formats"
        );
    }
}
