//! Downloads: `GET|HEAD /files/{project}/{file}` streams an archive from the store, and
//! `{file}.sha256` and a release's `SHA256SUMS` give its checksums in `sha256sum` format.
//! Only files a recorded release names are served: the name is looked up in the database,
//! never joined to a path as given, so `..`, encoded slashes and absolute paths find nothing.
//!
//! Ranges (206/416), `HEAD` and `If-Modified-Since` are tower-http's `ServeFile`; baler adds
//! the strong `ETag` (the file's sha256, so it changes exactly when the bytes do), answers
//! `If-None-Match` with 304, and honours `If-Range` only when it names the current `ETag`.
//! Each `GET` of a whole file (or of its first piece) is counted (`crate::downloads`).

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use entities::release::ReleaseKind;
use tower::ServiceExt;
use tower_http::services::ServeFile;

use super::AppState;
use super::pages::{find_project, find_public_project};
use crate::error::{AppError, Missing};
use crate::package::ArchiveFormat;
use crate::releases::{self, ReleaseWithFiles};

pub async fn download(
    State(state): State<AppState>,
    Path((name, file)): Path<(String, String)>,
    request: Request,
) -> Result<Response, AppError> {
    // A disabled project's files too: its releases are kept, and lock files still point here.
    let project = find_project(&state, &name).await?;
    let not_found = || {
        AppError::from(Missing::File {
            project: name.clone(),
            file: file.clone(),
        })
    };
    if let Some(archive) = file.strip_suffix(".sha256") {
        let record = releases::find_download(&state.db, project.id, archive)
            .await?
            .ok_or_else(not_found)?;
        return Ok(checksum_list(&[(&record.sha256, &record.name)]));
    }
    let record = releases::find_download(&state.db, project.id, &file)
        .await?
        .ok_or_else(not_found)?;
    let path = state
        .store
        .path_of(&project.name, &record.name)
        .ok_or_else(not_found)?;
    let etag =
        HeaderValue::from_str(&format!("\"{}\"", record.sha256)).map_err(anyhow::Error::from)?;

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
    let served = ServeFile::new(&path)
        .oneshot(Request::from_parts(parts, body))
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("serving {}: {e}", path.display())))?;
    let (mut head, body) = served.into_parts();
    if is_get && is_whole_download(&head) {
        state.downloads.count(project.id, &record.name);
    }
    if head.status.is_success() || head.status == StatusCode::NOT_MODIFIED {
        let content_type = record
            .format
            .parse::<ArchiveFormat>()
            .ok()
            .map(ArchiveFormat::content_type)
            .unwrap_or("application/octet-stream");
        let disposition =
            HeaderValue::from_str(&format!("attachment; filename=\"{}\"", record.name))
                .map_err(anyhow::Error::from)?;
        // A tag's files never change; a dev snapshot's are rebuilt under the same name.
        let cache = if record.kind == ReleaseKind::Tag {
            "public, max-age=31536000, immutable"
        } else {
            "public, no-cache"
        };
        let headers = &mut head.headers;
        headers.insert(header::ETAG, etag);
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
        if head.status != StatusCode::NOT_MODIFIED {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            headers.insert(header::CONTENT_DISPOSITION, disposition);
        }
    }
    Ok(Response::from_parts(head, Body::new(body)))
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
    let lines: Vec<(&str, &str)> = files
        .iter()
        .map(|f| (f.sha256.as_str(), f.name.as_str()))
        .collect();
    Ok(checksum_list(&lines))
}

/// `HASH  NAME` lines, as `sha256sum -c` reads them.
fn checksum_list<S: AsRef<str>>(lines: &[(S, S)]) -> Response {
    let text: String = lines
        .iter()
        .map(|(hash, name)| format!("{}  {}\n", hash.as_ref(), name.as_ref()))
        .collect();
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
}
