//! Downloads: `GET|HEAD /files/{project}/{file}` streams an archive from the store, and
//! `{file}.sha256` and a release's `SHA256SUMS` give its checksums in `sha256sum` format.
//! Only files a recorded release names are served: the name is looked up in the database
//! (then kept in memory until releases change), never joined to a path as given, so `..`,
//! encoded slashes and absolute paths find nothing.
//!
//! Ranges (206/416), `HEAD` and `If-Modified-Since` are tower-http's `ServeFile` for files on
//! disk; small files in memory and objects in an S3 bucket are answered the same way (one
//! range passed through to the bucket as a ranged GET). With `[storage] downloads =
//! "redirect"`, a download is a 302 to a presigned GET instead. baler adds the strong `ETag`
//! (the file's sha256, so it changes exactly when the bytes do), answers `If-None-Match` with
//! 304, and honours `If-Range` only when it names the current `ETag`. Each `GET` of a whole
//! file (or of its first piece) is counted (`crate::downloads`).

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use entities::release::ReleaseKind;
use tower::ServiceExt;
use tower_http::services::ServeFile;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::AppState;
use super::pages::{find_project, find_public_project};
use crate::documents::ReadCache;
use crate::error::{AppError, Missing};
use crate::package::ArchiveFormat;
use crate::projects;
use crate::releases::{self, Download, ReleaseWithFiles};
use crate::store::{Located, ObjectFile};

/// What serving one file needs, read once and kept while releases do not change (see
/// `crate::documents::ReadCache`): downloads repeat, and then cost no database read.
pub struct Servable {
    project_id: i64,
    record: Download,
    source: Source,
    /// The file's bytes, when it is small and the budget allows.
    in_memory: Option<InMemory>,
    etag: HeaderValue,
    content_type: &'static str,
    disposition: HeaderValue,
    cache_control: &'static str,
}

/// Where a file's bytes come from when they are not in memory.
enum Source {
    Disk(PathBuf),
    /// Proxied from the bucket; its size and date read once, with its entry.
    Object {
        file: ObjectFile,
        size: u64,
        last_modified: httpdate::HttpDate,
    },
    /// Answered with a presigned URL.
    Redirect(ObjectFile),
}

/// This process's [`Servable`]s, by `{project}/{file}`.
pub type FileCache = Arc<ReadCache<Arc<Servable>>>;

/// The file `file` of project `name` (disabled projects' too: their releases are kept, and
/// lock files still point here), from the cache or else the database.
async fn servable(state: &AppState, name: &str, file: &str) -> Result<Arc<Servable>, AppError> {
    let key = format!("{name}/{file}");
    let found = state
        .files
        .get_or_load(&key, async || {
            let Some(project) = projects::find_including_disabled(&state.db, name).await? else {
                return Ok::<_, AppError>(None);
            };
            let Some(record) = releases::find_download(&state.db, project.id, file).await? else {
                return Ok(None);
            };
            let Some(located) = state.store.locate(&project.name, &record.name) else {
                return Ok(None);
            };
            let (source, in_memory) = match located {
                Located::File(path) => {
                    let in_memory = state.file_memory.read(path.clone()).await;
                    (Source::Disk(path), in_memory)
                }
                Located::Object(file) if file.redirects() => (Source::Redirect(file), None),
                Located::Object(file) => {
                    let meta = file.meta().await.map_err(anyhow::Error::from)?;
                    let last_modified =
                        httpdate::HttpDate::from(std::time::SystemTime::from(meta.last_modified));
                    let in_memory = state
                        .file_memory
                        .read_object(&file, meta.size, last_modified)
                        .await;
                    let source = Source::Object {
                        file,
                        size: meta.size,
                        last_modified,
                    };
                    (source, in_memory)
                }
            };
            let header = |text: String| HeaderValue::from_str(&text).map_err(anyhow::Error::from);
            Ok(Some(Arc::new(Servable {
                in_memory,
                source,
                project_id: project.id,
                etag: header(format!("\"{}\"", record.sha256))?,
                content_type: record
                    .format
                    .parse::<ArchiveFormat>()
                    .ok()
                    .map(ArchiveFormat::content_type)
                    .unwrap_or("application/octet-stream"),
                disposition: header(format!("attachment; filename=\"{}\"", record.name))?,
                // A tag's files never change; a dev snapshot's are rebuilt under the same name.
                cache_control: if record.kind == ReleaseKind::Tag {
                    "public, max-age=31536000, immutable"
                } else {
                    "public, no-cache"
                },
                record,
            })))
        })
        .await?;
    match found {
        Some(servable) => Ok(servable),
        None => {
            // Which is missing, the project or the file, in the error's words.
            find_project(state, name).await?;
            Err(Missing::File {
                project: name.to_string(),
                file: file.to_string(),
            }
            .into())
        }
    }
}

pub async fn download(
    State(state): State<AppState>,
    Path((name, file)): Path<(String, String)>,
    request: Request,
) -> Result<Response, AppError> {
    if let Some(archive) = file.strip_suffix(".sha256") {
        let record = &servable(&state, &name, archive).await?.record;
        return Ok(plain_text(releases::sha256sums([(
            record.sha256.as_str(),
            record.name.as_str(),
        )])));
    }
    if let Some(archive) = file.strip_suffix(".minisig") {
        let record = &servable(&state, &name, archive).await?.record;
        return match &record.minisig {
            Some(signature) => Ok(plain_text(signature.clone())),
            None => Err(Missing::Signature {
                what: record.name.clone(),
            }
            .into()),
        };
    }
    let servable = servable(&state, &name, &file).await?;
    let Servable {
        project_id,
        record,
        source,
        etag,
        ..
    } = &*servable;
    let etag = etag.clone();

    let (mut parts, body) = request.into_parts();
    let is_get = parts.method == axum::http::Method::GET;
    if let Some(tags) = parts.headers.get(header::IF_NONE_MATCH)
        && super::headers::lists_etag(tags, etag.to_str().unwrap_or_default())
    {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    if let Some(if_range) = parts.headers.remove(header::IF_RANGE)
        && if_range != etag
    {
        // The client's copy is another version (or it sent a date): the whole file, not a
        // piece of the new one to splice onto the old.
        parts.headers.remove(header::RANGE);
    }
    let served = match (&servable.in_memory, source) {
        (Some(file), _) => file.respond(&parts, servable.content_type),
        (None, Source::Disk(path)) => ServeFile::new(path)
            .with_buf_chunk_size(DISK_CHUNK)
            .oneshot(Request::from_parts(parts, body))
            .await
            .map_err(|e| AppError::Internal(anyhow::anyhow!("serving {}: {e}", path.display())))?
            .map(Body::new),
        (
            None,
            Source::Object {
                file,
                size,
                last_modified,
            },
        ) => {
            let stream = async |range| {
                let chunks = file.stream(range).await.map_err(anyhow::Error::from)?;
                Ok::<_, AppError>(Body::from_stream(chunks))
            };
            respond(&parts, *size, *last_modified, servable.content_type, stream).await?
        }
        (None, Source::Redirect(file)) => {
            let url = file
                .presigned_get(&record.name)
                .await
                .map_err(anyhow::Error::from)?;
            if is_get && !parts.headers.contains_key(header::RANGE) {
                state.downloads.count(*project_id, &record.name);
                crate::metrics::download_served();
            }
            let mut response = Redirect::to(&url).into_response();
            *response.status_mut() = StatusCode::FOUND;
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            return Ok(response);
        }
    };
    let (mut head, body) = served.into_parts();
    if is_get && is_whole_download(&head) {
        state.downloads.count(*project_id, &record.name);
        crate::metrics::download_served();
    }
    if head.status.is_success() || head.status == StatusCode::NOT_MODIFIED {
        let headers = &mut head.headers;
        headers.insert(header::ETAG, etag);
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(servable.cache_control),
        );
        if head.status != StatusCode::NOT_MODIFIED {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(servable.content_type),
            );
            headers.insert(header::CONTENT_DISPOSITION, servable.disposition.clone());
        }
    }
    Ok(Response::from_parts(head, body))
}

/// How much of a file on disk is read at once: larger than `ServeFile`'s 64 KiB, so a large
/// download costs fewer hops to a blocking thread (at most this much per download in flight).
const DISK_CHUNK: usize = 256 << 10;

/// Archives up to this size may be answered from memory.
const IN_MEMORY_MAX: u64 = 1 << 20;

/// The bytes of small archives, held within `[http] files_in_memory_mib`: answering them
/// costs no file system call and no hop to a blocking thread. Copies go with the
/// [`FileCache`] entry that holds them, and give their bytes back to the budget then.
#[derive(Clone)]
pub struct FileMemory {
    limit: usize,
    used: Arc<AtomicUsize>,
}

impl FileMemory {
    pub fn new(limit: usize) -> FileMemory {
        FileMemory {
            limit,
            used: Arc::default(),
        }
    }

    /// The file at `path` in memory, when it is small and fits in what is left of the budget;
    /// else (or when it cannot be read) `None`, and it is served from disk.
    async fn read(&self, path: PathBuf) -> Option<InMemory> {
        let budget = self.clone();
        tokio::task::spawn_blocking(move || {
            let size = std::fs::metadata(&path).ok()?.len();
            if size > IN_MEMORY_MAX {
                return None;
            }
            let held = budget.hold(size as usize)?;
            let bytes = std::fs::read(&path).ok()?;
            // Modified between the two calls (a snapshot rebuilt): serve it from disk.
            let modified = std::fs::metadata(&path).ok()?.modified().ok()?;
            (bytes.len() as u64 == size).then(|| InMemory {
                bytes: bytes.into(),
                last_modified: httpdate::HttpDate::from(modified),
                _held: held,
            })
        })
        .await
        .ok()
        .flatten()
    }

    /// An object in memory, on the same terms as [`read`](Self::read).
    async fn read_object(
        &self,
        file: &ObjectFile,
        size: u64,
        last_modified: httpdate::HttpDate,
    ) -> Option<InMemory> {
        if size > IN_MEMORY_MAX {
            return None;
        }
        let held = self.hold(size as usize)?;
        let bytes = file.bytes().await.ok()?;
        // Replaced between the two requests (a snapshot rebuilt): stream it instead.
        (bytes.len() as u64 == size).then(|| InMemory {
            bytes,
            last_modified,
            _held: held,
        })
    }

    fn hold(&self, bytes: usize) -> Option<Held> {
        self.used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.limit)
            })
            .ok()?;
        Some(Held {
            bytes,
            used: self.used.clone(),
        })
    }
}

/// Bytes taken from a [`FileMemory`] budget, given back when dropped.
struct Held {
    bytes: usize,
    used: Arc<AtomicUsize>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.used.fetch_sub(self.bytes, Ordering::SeqCst);
    }
}

/// A small archive's bytes, answered as tower-http's `ServeFile` answers from disk (the same
/// statuses and headers, so a client cannot tell): `If-Unmodified-Since` → 412,
/// `If-Modified-Since` → 304, one range → 206, several or none satisfiable → 416, `HEAD`
/// without the body.
struct InMemory {
    bytes: bytes::Bytes,
    last_modified: httpdate::HttpDate,
    _held: Held,
}

impl InMemory {
    fn respond(
        &self,
        request: &axum::http::request::Parts,
        content_type: &'static str,
    ) -> Response {
        let bytes = &self.bytes;
        let body = async |range: Option<std::ops::Range<u64>>| {
            Ok::<_, std::convert::Infallible>(Body::from(match range {
                Some(range) => bytes.slice(range.start as usize..range.end as usize),
                None => bytes.clone(),
            }))
        };
        let answer = respond(
            request,
            bytes.len() as u64,
            self.last_modified,
            content_type,
            body,
        );
        // Nothing in the answer waits: the body is already in memory.
        match futures::FutureExt::now_or_never(answer) {
            Some(Ok(response)) => response,
            Some(Err(never)) => match never {},
            None => unreachable!("an in-memory body is ready at once"),
        }
    }
}

/// Answers a request for a file of `size` bytes, last modified at `last_modified`, as
/// tower-http's `ServeFile` answers from disk (the same statuses and headers, so a client
/// cannot tell): `If-Unmodified-Since` → 412, `If-Modified-Since` → 304, one range → 206,
/// several or none satisfiable → 416, `HEAD` without the body. `body` gives the bytes of a
/// range, or of the whole file (`None`).
async fn respond<E>(
    request: &axum::http::request::Parts,
    size: u64,
    last_modified: httpdate::HttpDate,
    content_type: &'static str,
    body: impl AsyncFnOnce(Option<std::ops::Range<u64>>) -> Result<Body, E>,
) -> Result<Response, E> {
    let date = |name| {
        request
            .headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .map(httpdate::HttpDate::from)
    };
    if date(header::IF_UNMODIFIED_SINCE).is_some_and(|since| since < last_modified) {
        return Ok(StatusCode::PRECONDITION_FAILED.into_response());
    }
    if date(header::IF_MODIFIED_SINCE).is_some_and(|since| since >= last_modified) {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    let head = request.method == axum::http::Method::HEAD;
    let mut response = match request
        .headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|range| http_range_header::parse_range_header(range)?.validate(size))
    {
        None => {
            let mut response = Response::new(if head {
                Body::empty()
            } else {
                body(None).await?
            });
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(size));
            response
        }
        Some(Ok(ranges)) if ranges.len() == 1 => {
            let (start, end) = (*ranges[0].start(), *ranges[0].end());
            let length = if size == 0 { 0 } else { end - start + 1 };
            let content = if head || length == 0 {
                Body::empty()
            } else {
                body(Some(start..end + 1)).await?
            };
            let mut response = Response::new(content);
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes {start}-{end}/{size}"))
                    .expect("digits are a header value"),
            );
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
            response
        }
        Some(found) => {
            let text = if found.is_ok() {
                "Cannot serve multipart range requests"
            } else {
                ""
            };
            let mut response = Response::new(Body::from(text));
            *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            response.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{size}"))
                    .expect("digits are a header value"),
            );
            response
        }
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(
        header::LAST_MODIFIED,
        HeaderValue::from_str(&last_modified.to_string()).expect("an HTTP date is a header value"),
    );
    Ok(response)
}

/// A download to count: the whole file, or the first piece of one fetched in pieces; not a
/// resumed download's later piece, a `HEAD` or a 304.
fn is_whole_download(head: &axum::http::response::Parts) -> bool {
    match head.status {
        StatusCode::OK => true,
        StatusCode::PARTIAL_CONTENT => head
            .headers
            .get(header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|range| range.starts_with("bytes 0-")),
        _ => false,
    }
}

/// `GET /projects/{project}/releases/{version}/SHA256SUMS`.
pub async fn sha256sums(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, AppError> {
    // Beside the release page, and gone with it when the project is disabled; the files and
    // their `.sha256` stay under `/files/`.
    let project = find_public_project(&state, &name).await?;
    let ReleaseWithFiles { files, .. } = releases::find(&state.db, project.id, &version)
        .await?
        .ok_or_else(|| Missing::Release {
            project: name.clone(),
            version: version.clone(),
        })?;
    Ok(plain_text(releases::sha256sums(
        files.iter().map(|f| (f.sha256.as_str(), f.name.as_str())),
    )))
}

fn plain_text(text: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
}

/// `GET /projects/{p}/releases/{v}/SHA256SUMS.minisig`: the signature of exactly the bytes
/// [`sha256sums`] serves.
pub async fn sha256sums_signature(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let proofs = release_proofs(&state, &name, &version).await?;
    let signature = proofs.sums_minisig.ok_or_else(|| Missing::Signature {
        what: format!("{name} {version}'s SHA256SUMS"),
    })?;
    Ok(plain_text(signature))
}

/// `GET /projects/{p}/releases/{v}/provenance.intoto.jsonl`: the release's DSSE envelope, one
/// line.
pub async fn provenance(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let proofs = release_proofs(&state, &name, &version).await?;
    let envelope = proofs.provenance.ok_or(Missing::Provenance {
        project: name,
        version,
    })?;
    Ok((
        [(header::CONTENT_TYPE, "application/jsonl; charset=utf-8")],
        envelope,
    )
        .into_response())
}

/// `GET /.well-known/baler/minisign.pub`: the key that signs new releases, as the processes
/// that sign recorded it (web servers never hold the secret key). A release's own page names
/// the key that signed it, which differs after a rotation.
pub async fn public_key(State(state): State<AppState>) -> Result<Response, AppError> {
    let key = crate::documents::signing_key(&state.db)
        .await?
        .ok_or(Missing::SigningKey)?;
    Ok(plain_text(key))
}

async fn release_proofs(
    state: &AppState,
    name: &str,
    version: &str,
) -> Result<releases::ReleaseProofs, AppError> {
    let project = find_public_project(state, name).await?;
    let missing = || Missing::Release {
        project: name.to_string(),
        version: version.to_string(),
    };
    let found = releases::find(&state.db, project.id, version)
        .await?
        .ok_or_else(missing)?;
    Ok(releases::proofs(&state.db, found.release.id)
        .await?
        .ok_or_else(missing)?)
}
