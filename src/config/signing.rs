//! `[signing]`: the minisign key that signs every release, and where its password is.

use std::path::PathBuf;

use serde::Deserialize;

use super::FieldError;
use super::env::Environment;

/// `[signing]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningConfig {
    /// A minisign secret key file (`baler key generate` writes one). Signing is on when set.
    pub minisign_key_file: Option<PathBuf>,
    /// The environment variable holding the key's password, when the key is encrypted.
    pub password_env: Option<String>,
}

/// `[signing]`, checked: the key file to load and its password, read from the environment.
#[derive(Clone)]
pub struct SigningSettings {
    pub key_file: PathBuf,
    pub password: Option<String>,
}

/// The password is left out, so a stray `{:?}` never writes it to a log.
impl std::fmt::Debug for SigningSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningSettings")
            .field("key_file", &self.key_file)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl SigningConfig {
    /// `None` when signing is off. The key itself is read and checked when the process starts
    /// (`crate::signing::Signer::load`), so that a bad key stops it there.
    pub(super) fn check(self, env: &Environment) -> Result<Option<SigningSettings>, FieldError> {
        let Some(key_file) = self.minisign_key_file else {
            if self.password_env.is_some() {
                return Err(FieldError::new(
                    "signing.password_env",
                    "is set without signing.minisign_key_file",
                ));
            }
            return Ok(None);
        };
        if key_file.as_os_str().is_empty() {
            return Err(FieldError::new(
                "signing.minisign_key_file",
                "must name a minisign secret key file",
            ));
        }
        let password = match self.password_env {
            Some(var) => Some(env.var(&var).ok_or_else(|| {
                FieldError::new(
                    "signing.password_env",
                    format!("names the environment variable {var}, which is not set"),
                )
            })?),
            None => None,
        };
        Ok(Some(SigningSettings { key_file, password }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_unless_a_key_file_is_named() {
        let env = Environment::new(&[]);
        assert!(SigningConfig::default().check(&env).unwrap().is_none());
        let orphan = SigningConfig {
            minisign_key_file: None,
            password_env: Some("PW".into()),
        };
        assert_eq!(
            orphan.check(&env).unwrap_err().field,
            "signing.password_env"
        );
    }

    #[test]
    fn the_password_comes_from_the_named_variable() {
        let vars = [("BALER_KEY_PW".to_string(), "hunter2".to_string())];
        let env = Environment::new(&vars);
        let config = SigningConfig {
            minisign_key_file: Some("/etc/baler/baler.key".into()),
            password_env: Some("BALER_KEY_PW".into()),
        };
        let settings = config.clone().check(&env).unwrap().unwrap();
        assert_eq!(settings.password.as_deref(), Some("hunter2"));
        assert!(!format!("{settings:?}").contains("hunter2"));
        let unset = config.check(&Environment::new(&[])).unwrap_err();
        assert_eq!(unset.field, "signing.password_env");
        assert!(unset.message.contains("BALER_KEY_PW"), "{}", unset.message);
    }
}
