//! The S3-compatible store, through `object_store`'s `AmazonS3`: objects under
//! `{prefix}{project}/{name}` in one bucket. Archives are staged on the local disk, streamed by
//! multipart upload to a temporary key (`{project}/.building-{claim}-…`), and copied to their
//! final key behind the job's fence. An upload that fails is aborted; one a killed worker left
//! is invisible (an incomplete multipart upload) or a temporary key the next job removes.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path;
use object_store::signer::{SignedUrlOptions, Signer};
use object_store::{
    ClientOptions, GetOptions, GetRange, ObjectMeta, ObjectStore, ObjectStoreExt, RetryConfig,
    WriteMultipart,
};
use tokio::io::AsyncReadExt;

use super::{
    ArtifactStore, Located, StagedFile, Staging, StoreError, TEMP_PREFIX, Upload, UploadKind,
    is_plain_name,
};
use super::{S3Downloads, S3Settings};

/// The folder of publish-time documents, under the prefix.
const DOCUMENTS: &str = ".documents";

/// Parts of a multipart upload: S3 wants at least 5 MiB but for the last.
const PART_SIZE: usize = 8 << 20;
/// Parts in flight at once, per upload: the memory an upload holds is this many parts.
const PARTS_IN_FLIGHT: usize = 2;

#[derive(Debug, Clone)]
pub struct S3Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: AmazonS3,
    bucket: String,
    endpoint: Option<String>,
    /// The key prefix's segments (`baler/` → `["baler"]`).
    prefix: Vec<String>,
    /// Where jobs stage archives before uploading them (`data_dir/staging`).
    staging_root: PathBuf,
    downloads: S3Downloads,
    presign: Duration,
}

impl S3Store {
    pub fn new(settings: &S3Settings, staging_root: PathBuf) -> Result<S3Store, StoreError> {
        let mut builder = AmazonS3Builder::new();
        // The usual AWS variables (session token, web identity, container credentials…), as
        // `AmazonS3Builder::from_env` reads them, but from the environment the config saw.
        for (name, value) in &settings.aws_env {
            if let Ok(key) = name.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
                builder = builder.with_config(key, value);
            }
        }
        builder = builder
            .with_bucket_name(&settings.bucket)
            .with_region(&settings.region)
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(5))
                    // No limit on a whole request: a proxied download of a large archive to a
                    // slow client takes as long as it takes. A stalled server is caught by the
                    // read timeout.
                    .with_timeout_disabled()
                    .with_read_timeout(Duration::from_secs(60))
                    .with_allow_http(
                        settings
                            .endpoint
                            .as_deref()
                            .is_some_and(|e| e.starts_with("http://")),
                    ),
            )
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(30),
                ..RetryConfig::default()
            });
        if let Some(endpoint) = &settings.endpoint {
            // Path-style requests (object_store's default): other servers than AWS rarely
            // have a DNS name per bucket.
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(key) = &settings.access_key {
            builder = builder.with_access_key_id(key);
        }
        if let Some(key) = &settings.secret_key {
            builder = builder.with_secret_access_key(key);
        }
        let client = builder
            .build()
            .map_err(StoreError::object("the [storage] settings"))?;
        Ok(S3Store {
            inner: Arc::new(Inner {
                client,
                bucket: settings.bucket.clone(),
                endpoint: settings.endpoint.clone(),
                prefix: settings
                    .prefix
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
                staging_root,
                downloads: settings.downloads,
                presign: settings.presign,
            }),
        })
    }

    /// The key of `name` in `project`'s folder.
    fn key(&self, project: &str, name: &str) -> Path {
        Path::from_iter(
            self.inner
                .prefix
                .iter()
                .map(String::as_str)
                .chain([project, name]),
        )
    }

    /// Where a document's bytes are kept: `{prefix}.documents/{name}`, a folder no project can
    /// have (project names are `[a-z0-9_]+`).
    fn document_key(&self, name: &str) -> Path {
        self.key(DOCUMENTS, name)
    }

    /// `project`'s folder (or the prefix itself).
    fn folder(&self, project: Option<&str>) -> Path {
        Path::from_iter(self.inner.prefix.iter().map(String::as_str).chain(project))
    }

    fn what(&self, doing: &str) -> String {
        format!("{doing} in {}", self.describe())
    }

    /// Streams the staged file to `key` by multipart upload; aborts the upload on error.
    async fn put_file(&self, file: &StagedFile, key: &Path) -> Result<(), StoreError> {
        let what = || self.what(&format!("uploading {key}"));
        let upload = self
            .inner
            .client
            .put_multipart(key)
            .await
            .map_err(StoreError::object(what()))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut source = tokio::fs::File::open(file.path())
            .await
            .map_err(StoreError::io(what()))?;
        let mut buffer = vec![0u8; 1 << 20];
        let sent: Result<(), StoreError> = async {
            loop {
                let read = source
                    .read(&mut buffer)
                    .await
                    .map_err(StoreError::io(what()))?;
                if read == 0 {
                    return Ok(());
                }
                writer
                    .wait_for_capacity(PARTS_IN_FLIGHT)
                    .await
                    .map_err(StoreError::object(what()))?;
                writer.write(&buffer[..read]);
            }
        }
        .await;
        match sent {
            Ok(()) => writer
                .finish()
                .await
                .map(drop)
                .map_err(StoreError::object(what())),
            Err(e) => {
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(%key, error = %abort, "could not abort a failed upload");
                }
                Err(e)
            }
        }
    }
}

#[async_trait::async_trait]
impl ArtifactStore for S3Store {
    fn describe(&self) -> String {
        let prefix: String = self.inner.prefix.iter().map(|s| format!("{s}/")).collect();
        match &self.inner.endpoint {
            Some(endpoint) => format!("s3://{}/{prefix} at {endpoint}", self.inner.bucket),
            None => format!("s3://{}/{prefix}", self.inner.bucket),
        }
    }

    async fn check(&self) -> Result<(), StoreError> {
        // A listing needs the bucket to exist and the keys to be accepted, and changes nothing.
        let listed = self
            .inner
            .client
            .list_with_delimiter(Some(&self.folder(None)))
            .await;
        let Err(source) = listed else {
            return Ok(());
        };
        // object_store keeps the status inside its error; the text carries it and S3's code.
        let text = error_chain(&source);
        let said = |codes: &[&str]| codes.iter().any(|code| text.contains(code));
        let what =
            if matches!(source, object_store::Error::NotFound { .. }) || said(&["NoSuchBucket"]) {
                "the bucket does not exist"
            } else if matches!(
                source,
                object_store::Error::PermissionDenied { .. }
                    | object_store::Error::Unauthenticated { .. }
            ) || said(&[
                "403 Forbidden",
                "401 Unauthorized",
                "SignatureDoesNotMatch",
                "InvalidAccessKeyId",
                "AccessDenied",
            ]) {
                "the server refused the keys (check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
             or the variables access_key_env and secret_key_env name)"
            } else {
                "cannot list the bucket"
            };
        Err(StoreError::Object {
            what: format!("{}: {what}", self.describe()),
            cause: source,
        })
    }

    fn staging(&self, project: &str, claim: &str) -> Staging {
        Staging::for_claim(self.inner.staging_root.join(project), claim)
    }

    async fn upload(&self, project: &str, file: StagedFile) -> Result<Upload, StoreError> {
        // The temporary key carries the staged file's name, and so the claim.
        let temp_name = file
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("{TEMP_PREFIX}unnamed"));
        let key = self.key(project, &temp_name);
        self.put_file(&file, &key).await?;
        // Uploaded: the local copy goes now (dropping a staged file removes it).
        drop(file);
        Ok(Upload(UploadKind::Object(key)))
    }

    async fn publish(&self, project: &str, name: &str, upload: Upload) -> Result<(), StoreError> {
        let Upload(UploadKind::Object(temp)) = upload else {
            unreachable!("the S3 store makes only object uploads")
        };
        let target = self.key(project, name);
        self.inner
            .client
            .copy(&temp, &target)
            .await
            .map_err(StoreError::object(
                self.what(&format!("publishing {target}")),
            ))?;
        if let Err(e) = self.inner.client.delete(&temp).await {
            tracing::warn!(key = %temp, error = %e, "could not remove an upload's temporary key; the project's next job will");
        }
        Ok(())
    }

    async fn discard(&self, upload: Upload) {
        if let Upload(UploadKind::Object(temp)) = upload
            && let Err(e) = self.inner.client.delete(&temp).await
        {
            tracing::warn!(key = %temp, error = %e, "could not remove an upload's temporary key; the project's next job will");
        }
    }

    async fn remove(&self, project: &str, name: &str) -> Result<(), StoreError> {
        if !is_plain_name(name) {
            return Ok(());
        }
        match self.inner.client.delete(&self.key(project, name)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(StoreError::object(self.what(&format!("removing {name}")))(
                e,
            )),
        }
    }

    async fn remove_temp_files_except(
        &self,
        project: &str,
        keep: &Staging,
    ) -> Result<usize, StoreError> {
        let what = || self.what("removing what stopped workers uploaded");
        // Local staged files of other claims (a killed job's), then their temporary keys.
        let local = super::LocalStore::new(self.inner.staging_root.clone())
            .remove_temp_files_except(project, keep)
            .map_err(StoreError::io(what()))?;
        let listed = self
            .inner
            .client
            .list_with_delimiter(Some(&self.folder(Some(project))))
            .await
            .map_err(StoreError::object(what()))?;
        let mut removed = local;
        for object in listed.objects {
            let Some(name) = object.location.filename() else {
                continue;
            };
            if name.starts_with(TEMP_PREFIX) && !keep.holds(name) {
                match self.inner.client.delete(&object.location).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => removed += 1,
                    Err(e) => return Err(StoreError::object(what())(e)),
                }
            }
        }
        Ok(removed)
    }

    fn keeps_documents(&self) -> bool {
        true
    }

    async fn put_document(&self, name: &str, body: &[u8]) -> Result<(), StoreError> {
        let key = self.document_key(name);
        self.inner
            .client
            .put(&key, body.to_vec().into())
            .await
            .map(drop)
            .map_err(StoreError::object(self.what(&format!("writing {key}"))))
    }

    async fn get_document(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        let key = self.document_key(name);
        let what = || self.what(&format!("reading {key}"));
        let found = self
            .inner
            .client
            .get(&key)
            .await
            .map_err(StoreError::object(what()))?;
        Ok(found
            .bytes()
            .await
            .map_err(StoreError::object(what()))?
            .to_vec())
    }

    async fn remove_unreferenced_documents(
        &self,
        referenced: &std::collections::HashSet<String>,
        older_than: Duration,
    ) -> Result<usize, StoreError> {
        use futures::TryStreamExt;
        let what = || self.what("removing documents no row names");
        let folder = self.folder(Some(DOCUMENTS));
        let objects: Vec<ObjectMeta> = self
            .inner
            .client
            .list(Some(&folder))
            .try_collect()
            .await
            .map_err(StoreError::object(what()))?;
        let cutoff = chrono::Utc::now() - older_than;
        let mut removed = 0;
        for object in objects {
            let named = object
                .location
                .filename()
                .is_some_and(|name| referenced.contains(name));
            if named || object.last_modified > cutoff {
                continue;
            }
            match self.inner.client.delete(&object.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => removed += 1,
                Err(e) => return Err(StoreError::object(what())(e)),
            }
        }
        Ok(removed)
    }

    fn locate(&self, project: &str, name: &str) -> Option<Located> {
        is_plain_name(name).then(|| {
            Located::Object(ObjectFile {
                store: self.clone(),
                key: self.key(project, name),
            })
        })
    }
}

/// An error and its causes, as one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        text.push_str(": ");
        text.push_str(&next.to_string());
        cause = next.source();
    }
    text
}

/// One object to download: read whole, in a range, or through a presigned URL.
pub struct ObjectFile {
    store: S3Store,
    key: Path,
}

impl ObjectFile {
    /// Whether downloads are redirected to a presigned URL rather than proxied.
    pub fn redirects(&self) -> bool {
        self.store.inner.downloads == S3Downloads::Redirect
    }

    fn what(&self, doing: &str) -> String {
        self.store.what(&format!("{doing} {}", self.key))
    }

    /// Its size and modification time.
    pub async fn meta(&self) -> Result<ObjectMeta, StoreError> {
        self.store
            .inner
            .client
            .head(&self.key)
            .await
            .map_err(StoreError::object(self.what("reading")))
    }

    /// Its bytes (for small objects kept in memory).
    pub async fn bytes(&self) -> Result<Bytes, StoreError> {
        let what = || self.what("reading");
        self.store
            .inner
            .client
            .get(&self.key)
            .await
            .map_err(StoreError::object(what()))?
            .bytes()
            .await
            .map_err(StoreError::object(what()))
    }

    /// Its bytes in `range` (or all of them), as they arrive.
    pub async fn stream(
        &self,
        range: Option<Range<u64>>,
    ) -> Result<BoxStream<'static, std::io::Result<Bytes>>, StoreError> {
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let found = self
            .store
            .inner
            .client
            .get_opts(&self.key, options)
            .await
            .map_err(StoreError::object(self.what("reading")))?;
        Ok(found
            .into_stream()
            .map(|chunk| chunk.map_err(std::io::Error::other))
            .boxed())
    }

    /// A presigned GET valid for `[storage] presign_seconds`, which saves the file under
    /// `file_name`.
    pub async fn presigned_get(&self, file_name: &str) -> Result<String, StoreError> {
        let options = SignedUrlOptions::default().with_query([(
            "response-content-disposition",
            format!("attachment; filename=\"{file_name}\""),
        )]);
        self.store
            .inner
            .client
            .signed_url_opts(
                object_store::signer::Method::GET,
                &self.key,
                self.store.inner.presign,
                &options,
            )
            .await
            .map(|url| url.to_string())
            .map_err(StoreError::object(self.what("signing a URL for")))
    }
}
