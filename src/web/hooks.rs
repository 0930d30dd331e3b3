//! `POST /hooks/{project}`: verify, interpret, queue. Answers well within the hosts' 10 s:
//! nothing here waits on git or the network.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tracing::instrument;

use super::AppState;
use crate::error::{ApiError, AppError};
use crate::hooks::{self, HookError, HookOutcome};
use crate::projects;

/// The largest body a host may send (GitHub caps deliveries at 25 MB).
pub const MAX_BODY: usize = 25 * 1024 * 1024;

#[instrument(skip_all, fields(project = %project, delivery = tracing::field::Empty))]
pub async fn receive(
    State(state): State<AppState>,
    Path(project): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if let Some(id) = [
        "x-github-delivery",
        "idempotency-key",
        "x-gitlab-event-uuid",
    ]
    .iter()
    .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
    {
        tracing::Span::current().record("delivery", id);
    }
    let project = projects::find(&state.db, &project)
        .await
        .map_err(|e| AppError::Unavailable(e.into()))?
        .ok_or_else(|| AppError::NotFound(format!("no project named {project:?}")))?;

    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/json") {
        return Err(AppError::UnsupportedMediaType(format!(
            "webhooks must be sent as application/json, not {media:?}"
        ))
        .into());
    }

    let outcome = hooks::interpret(&project, &headers, &body).map_err(|e| match e {
        HookError::Signature(e) => AppError::Unauthorized(e.to_string()),
        other => AppError::BadRequest(other.to_string()),
    })?;
    match outcome {
        HookOutcome::Ping => {
            Ok((StatusCode::OK, Json(json!({ "ok": true, "event": "ping" }))).into_response())
        }
        HookOutcome::Nothing(reason) => {
            tracing::info!(%reason, "delivery releases nothing");
            Ok((
                StatusCode::OK,
                Json(json!({ "queued": false, "reason": reason })),
            )
                .into_response())
        }
        HookOutcome::Release(refs) => {
            let queued = state
                .queue
                .enqueue(project.id, &refs)
                .await
                .map_err(|e| AppError::Unavailable(e.into()))?;
            tracing::info!(
                item = queued.item,
                position = queued.position,
                merged = queued.merged,
                "queued"
            );
            Ok((StatusCode::ACCEPTED, Json(queued)).into_response())
        }
    }
}
