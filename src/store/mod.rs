//! Artifact storage behind one trait, [`ArtifactStore`], with two implementations: a local
//! directory ([`LocalStore`], the embedded default) and an S3-compatible bucket ([`S3Store`],
//! through the `object_store` crate), chosen by `[storage] kind`.
//!
//! Either way a job writes each archive to a local staged file first (its checksums and a
//! zip's central directory need the whole file), then:
//! 1. [`ArtifactStore::upload`] puts it where publishing is one cheap step: the local store
//!    leaves it staged beside its final place; the S3 store streams it by multipart upload to a
//!    temporary key.
//! 2. [`ArtifactStore::publish`], behind the job's fence, gives it its final name: a rename,
//!    or a server-side copy and the temporary key's removal.
//!
//! A reader never sees a half-written file or object, and nothing is published before its job
//! still holds the project. What a killed job leaves (a staged file, a temporary key) carries
//! its claim in its name, and the next job of the project removes it
//! ([`ArtifactStore::remove_temp_files_except`]).

mod local;
mod s3;
mod staging;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use local::LocalStore;
pub use s3::{ObjectFile, S3Store};
use staging::TEMP_PREFIX;
pub use staging::{StagedFile, Staging};

use serde::Deserialize;

/// Where releases' files live. Names are always plain file names (no `/`), under a directory
/// or key prefix per project.
#[async_trait::async_trait]
pub trait ArtifactStore: Send + Sync + std::fmt::Debug {
    /// Where the store is, for logs and errors (`local directory …`, `s3://bucket/prefix …`).
    fn describe(&self) -> String;

    /// Checks that the store can be used: the directory can be created, or the bucket exists
    /// and the keys are accepted. `baler serve` and `baler worker` call it when they start.
    async fn check(&self) -> Result<(), StoreError>;

    /// Where a job holding `claim` stages `project`'s files on the local disk.
    fn staging(&self, project: &str, claim: &str) -> Staging;

    /// Makes a complete staged file ready to publish, before the job's fence (this may take
    /// long: an upload). Dropping or [`discard`](Self::discard)ing the result leaves nothing
    /// visible.
    async fn upload(&self, project: &str, file: StagedFile) -> Result<Upload, StoreError>;

    /// Gives an uploaded file its final `name`, replacing an older file of that name. Quick:
    /// it runs inside the job's fence.
    async fn publish(&self, project: &str, name: &str, upload: Upload) -> Result<(), StoreError>;

    /// Removes an upload that will not be published.
    async fn discard(&self, upload: Upload);

    /// Removes a published file; a file that is not there is not an error.
    async fn remove(&self, project: &str, name: &str) -> Result<(), StoreError>;

    /// Removes what jobs of other claims left half-done in `project` (a worker killed while
    /// packaging or uploading). Only call it while the claim that owns `keep` holds the project
    /// (inside its fence): no other job of the project can be writing then.
    async fn remove_temp_files_except(
        &self,
        project: &str,
        keep: &Staging,
    ) -> Result<usize, StoreError>;

    /// Where a published file is read from, if `name` is a plain file name.
    fn locate(&self, project: &str, name: &str) -> Option<Located>;

    /// Whether publish-time documents' bytes live here (the S3 store) rather than in their
    /// database rows (the local store, where the database is on the same disk anyway).
    fn keeps_documents(&self) -> bool {
        false
    }

    /// Puts a document's bytes under `name` (its ETag's hex: the same bytes, the same name, so
    /// writing one again is harmless). Before the row that names it commits.
    async fn put_document(&self, name: &str, _body: &[u8]) -> Result<(), StoreError> {
        Err(StoreError::Config(format!(
            "{} keeps no documents (asked to put {name})",
            self.describe()
        )))
    }

    /// A document's bytes, by the name [`put_document`](Self::put_document) gave them.
    async fn get_document(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        Err(StoreError::Config(format!(
            "{} keeps no documents (asked for {name})",
            self.describe()
        )))
    }

    /// Removes the documents no row names (`referenced`) that were last written more than
    /// `older_than` ago: a refresh puts its documents before its rows commit, so a younger
    /// one may be about to be named.
    async fn remove_unreferenced_documents(
        &self,
        _referenced: &std::collections::HashSet<String>,
        _older_than: std::time::Duration,
    ) -> Result<usize, StoreError> {
        Ok(0)
    }
}

/// The store as the processes share it.
pub type Store = Arc<dyn ArtifactStore>;

/// How downloads of objects are answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum S3Downloads {
    /// baler streams the object, passing `Range` through.
    #[default]
    Proxy,
    /// 302 to a presigned GET valid for `presign_seconds`.
    Redirect,
}

/// An S3-compatible bucket and how to reach it.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Settings {
    pub bucket: String,
    pub endpoint: Option<String>,
    pub region: String,
    pub prefix: String,
    pub downloads: S3Downloads,
    pub presign: Duration,
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
    /// The environment's other `AWS_*` variables (session token, web identity…).
    pub aws_env: Vec<(String, String)>,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("prefix", &self.prefix)
            .field("downloads", &self.downloads)
            .finish_non_exhaustive()
    }
}

/// A file ready to publish: still staged on the local disk, or uploaded under a temporary key.
#[derive(Debug)]
pub struct Upload(UploadKind);

#[derive(Debug)]
enum UploadKind {
    Staged(StagedFile),
    Object(object_store::path::Path),
}

/// Where a download is read from.
pub enum Located {
    /// A file on the local disk.
    File(PathBuf),
    /// An object in a bucket.
    Object(ObjectFile),
}

/// What went wrong, with the cause's own words in the message (object_store's errors already
/// carry their causes in theirs, so they are not repeated as a source chain).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what}: {cause}")]
    Io { what: String, cause: std::io::Error },
    #[error("{what}: {cause}")]
    Object {
        what: String,
        cause: object_store::Error,
    },
    #[error("{0}")]
    Config(String),
}

impl StoreError {
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StoreError {
        let what = what.into();
        move |cause| StoreError::Io { what, cause }
    }

    fn object(what: impl Into<String>) -> impl FnOnce(object_store::Error) -> StoreError {
        let what = what.into();
        move |cause| StoreError::Object { what, cause }
    }
}

/// Whether `name` may be a published file's name: one plain path segment, not hidden.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\', '\0'])
}
