//! `GET /files/{project}/{file}`: archives streamed from the store. Only files a recorded
//! release names are served, so nothing half-written or unrecorded is ever handed out.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use tokio_util::io::ReaderStream;

use super::AppState;
use super::pages::find_project;
use crate::config::ArchiveFormat;
use crate::error::AppError;
use crate::releases;

pub async fn download(
    State(state): State<AppState>,
    Path((name, file)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let project = find_project(&state, &name).await?;
    let not_found = || AppError::NotFound(format!("{name} has no file {file:?}"));
    let (record, _release) = releases::find_file(&state.db, project.id, &file)
        .await?
        .ok_or_else(not_found)?;
    let path = state
        .store
        .path_of(&project.name, &record.name)
        .ok_or_else(not_found)?;
    let handle = tokio::fs::File::open(&path)
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("opening {}: {e}", path.display())))?;
    let length = handle.metadata().await.map_err(anyhow::Error::from)?.len();
    let content_type = ArchiveFormat::parse(&record.format)
        .map(ArchiveFormat::content_type)
        .unwrap_or("application/octet-stream");
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{}\"", record.name))
        .map_err(anyhow::Error::from)?;
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CONTENT_LENGTH, HeaderValue::from(length)),
        (header::CONTENT_DISPOSITION, disposition),
    ];
    Ok((headers, Body::from_stream(ReaderStream::new(handle))).into_response())
}
