//! `[[notifications]]`: where baler sends Standard Webhooks when releases change. Checked into
//! [`SubscriberSpec`]s, with the secret read from `secret_env` when the entry names one.

use serde::Deserialize;

use super::FieldError;
use super::env::Environment;
use crate::notify::SubscriberSpec;
use crate::notify::subscribers::{NotifyError, SubscriberInput};

/// A `[[notifications]]` entry as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationConfig {
    pub url: String,
    /// `whsec_…`; or `secret_env` naming a variable that holds it.
    pub secret: Option<String>,
    pub secret_env: Option<String>,
    /// Default: all of `release.published`, `release.unpublished`, `release.failed`,
    /// `item.failed`.
    pub events: Option<Vec<String>>,
    /// Globs over project names; default `["*"]`.
    pub projects: Option<Vec<String>>,
    #[serde(default)]
    pub allow_private_network: bool,
}

impl NotificationConfig {
    pub(super) fn resolve(self, env: &Environment) -> Result<SubscriberSpec, FieldError> {
        let secret = match (self.secret, self.secret_env) {
            (Some(secret), None) => secret,
            (None, Some(name)) => env.var(&name).ok_or_else(|| {
                FieldError::new(
                    "secret_env",
                    format!("names {name}, which is not set in the environment"),
                )
            })?,
            (None, None) => {
                return Err(FieldError::new(
                    "secret",
                    "is required: `secret = \"whsec_…\"` or `secret_env`",
                ));
            }
            (Some(_), Some(_)) => {
                return Err(FieldError::new(
                    "secret",
                    "set `secret` or `secret_env`, not both",
                ));
            }
        };
        SubscriberInput {
            url: self.url,
            secret: Some(secret),
            events: self.events,
            projects: self.projects,
            allow_private_network: self.allow_private_network,
        }
        .check(false)
        .map_err(|e| match e {
            NotifyError::Invalid { field, message } => FieldError::new(field, message),
            other => FieldError::new("url", other.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(text: &str) -> NotificationConfig {
        toml::from_str(text).unwrap()
    }

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn reads_the_secret_from_the_environment() {
        let vars = vec![("NOTIFY".to_string(), SECRET.to_string())];
        let env = Environment::new(&vars);
        let spec = entry("url = \"https://ci.example.org/hook\"\nsecret_env = \"NOTIFY\"")
            .resolve(&env)
            .unwrap();
        assert_eq!(spec.secret.reveal(), SECRET);
        assert_eq!(spec.events.len(), 4);
        assert_eq!(spec.projects, ["*"]);
        assert!(!spec.allow_private_network);
    }

    #[test]
    fn errors_name_the_field() {
        let env = Environment::new(&[]);
        let field = |text: &str| entry(text).resolve(&env).unwrap_err().field;
        assert_eq!(
            field("url = \"https://x.org/\"\nsecret_env = \"UNSET\""),
            "secret_env"
        );
        assert_eq!(field("url = \"https://x.org/\""), "secret");
        assert_eq!(
            field("url = \"https://x.org/\"\nsecret = \"plain\""),
            "secret"
        );
        assert_eq!(
            field(&format!("url = \"ftp://x.org/\"\nsecret = \"{SECRET}\"")),
            "url"
        );
        assert_eq!(
            field(&format!(
                "url = \"https://x.org/\"\nsecret = \"{SECRET}\"\nevents = [\"release.done\"]"
            )),
            "events"
        );
        assert_eq!(
            field(&format!(
                "url = \"https://x.org/\"\nsecret = \"{SECRET}\"\nprojects = [\"a[\"]"
            )),
            "projects"
        );
    }
}
