//! Administration: who may act (admin tokens), how often a wrong token may be tried (the
//! throttle), what admins do (the audited actions that the API, the admin page and `baler
//! queue`/`baler token` share), and the record of it (the audit log).

pub mod actions;
pub mod audit;
pub mod keys;
pub mod throttle;
pub mod tokens;

use sea_orm::DbErr;

use crate::queue::QueueError;

pub use actions::AdminActions;
pub use throttle::{AuthThrottle, FailureKind, RetryAfter};
pub use tokens::AdminTokens;

/// Who did an admin action, as the audit log names them: a token's name (`admin_token` for
/// the configured token) or `cli:USER` for the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(String);

impl Actor {
    /// The holder of a named token, or of the configured one ([`tokens::CONFIGURED_NAME`]).
    pub fn token(name: &str) -> Actor {
        Actor(name.to_string())
    }

    /// Whoever runs `baler` on the command line (they can read the config, so the database).
    pub fn cli() -> Actor {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".into());
        Actor(format!("cli:{user}"))
    }

    /// The retention curator, which removes what its settings say.
    pub fn curator() -> Actor {
        Actor("curator".to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("database: {0}")]
    Db(#[from] DbErr),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the system's random source failed: {0}")]
    Random(getrandom::Error),
    /// The publish-time documents could not be rendered for the change (it rolled back).
    #[error("publishing documents: {0}")]
    Documents(String),
}

impl From<crate::projects::ChangeRefused> for AdminError {
    fn from(e: crate::projects::ChangeRefused) -> Self {
        use crate::projects::ChangeRefused;
        match e {
            ChangeRefused::Db(e) => AdminError::Db(e),
            unknown @ ChangeRefused::Unknown(_) => AdminError::NotFound(unknown.to_string()),
            in_config @ ChangeRefused::InConfig(_) => AdminError::Conflict(in_config.to_string()),
        }
    }
}

impl From<crate::notify::subscribers::NotifyError> for AdminError {
    fn from(e: crate::notify::subscribers::NotifyError) -> Self {
        use crate::notify::subscribers::NotifyError;
        match e {
            NotifyError::Db(e) => AdminError::Db(e),
            NotifyError::NotFound(m) => AdminError::NotFound(m),
            NotifyError::Conflict(m) => AdminError::Conflict(m),
            invalid @ NotifyError::Invalid { .. } => AdminError::Invalid(invalid.to_string()),
        }
    }
}

/// `N` bytes from the operating system's random source.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], AdminError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(AdminError::Random)?;
    Ok(bytes)
}

/// A time of an admin table (Unix milliseconds) as pages, the API and the CLI show it: RFC 3339
/// to the second.
pub fn rfc3339(millis: i64) -> String {
    crate::time::rfc3339(crate::time::from_millis(millis))
}
