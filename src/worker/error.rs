//! How a release job fails. A ref's own failure is not among these: it becomes a problem row
//! and the job goes on; these end the job, and the queue retries the item.

use sea_orm::DbErr;

use crate::git::GitError;
use crate::package::PackageError;

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("project {0} no longer exists")]
    ProjectGone(i64),
    #[error("database: {0}")]
    Db(#[from] DbErr),
    #[error("queue: {0}")]
    Queue(#[from] crate::queue::QueueError),
    #[error("fetching {repo}: {source}")]
    Fetch { repo: String, source: GitError },
    #[error("{version}: {source}")]
    Package {
        version: String,
        source: PackageError,
    },
    #[error("signing {version}: {source}")]
    Signing {
        version: String,
        source: crate::signing::SigningError,
    },
    #[error("storing {file}: {source}")]
    Store {
        file: String,
        source: crate::store::StoreError,
    },
    #[error("the claim was handed to another worker; this job writes nothing more")]
    ClaimLost,
    #[error("version {0} is already a release that this build may not replace")]
    VersionTaken(String),
    #[error("publishing documents: {0}")]
    Documents(#[from] crate::web::documents::RefreshError),
    #[error("the packaging thread stopped: {0}")]
    Join(#[from] tokio::task::JoinError),
}
