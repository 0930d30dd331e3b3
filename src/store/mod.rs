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

pub use local::LocalStore;
pub use s3::{ObjectFile, S3Store};
use staging::TEMP_PREFIX;
pub use staging::{StagedFile, Staging};

use crate::config::{Config, StorageSettings};

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
}

/// The store as the processes share it.
pub type Store = Arc<dyn ArtifactStore>;

/// Opens the store `config` names, without checking it (see [`ArtifactStore::check`]).
pub fn open(config: &Config) -> Result<Store, StoreError> {
    Ok(match &config.storage {
        StorageSettings::Local => Arc::new(LocalStore::new(config.files_dir())),
        StorageSettings::S3(settings) => {
            Arc::new(S3Store::new(settings, config.data_dir.join("staging"))?)
        }
    })
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
