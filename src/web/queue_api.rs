//! The admin API: inspect, pause, resume, flush, delete, retry, rebuild; the deliveries log,
//! the audit log, a project's failed refs and a release's whole build log. Actions go through
//! `admin::AdminActions`, like the admin page's and the CLI's, and are audited under the
//! token's name.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Admin;
use super::pages::{find_project, find_release};
use crate::admin::audit::{self, AuditEntryView};
use crate::deliveries::{self, DeliveryView};
use crate::error::ApiError;
use crate::problems::{self, Problem};
use crate::queue::{Enqueued, QueueListing};
use crate::releases;

pub async fn list(_: Admin, State(state): State<AppState>) -> Result<Json<QueueListing>, ApiError> {
    Ok(Json(state.queue.list().await?))
}

pub async fn pause(admin: Admin, State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state.actions.pause(&admin.actor).await?;
    Ok(Json(json!({ "paused": true })))
}

pub async fn resume(admin: Admin, State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state.actions.resume(&admin.actor).await?;
    Ok(Json(json!({ "paused": false })))
}

pub async fn flush(admin: Admin, State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let removed = state.actions.flush(&admin.actor).await?;
    Ok(Json(json!({ "removed": removed })))
}

pub async fn delete(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    state.actions.delete(&admin.actor, id).await?;
    Ok(Json(json!({ "deleted": id })))
}

pub async fn retry(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Enqueued>, ApiError> {
    Ok(Json(state.actions.retry(&admin.actor, id).await?))
}

pub async fn rebuild(
    admin: Admin,
    State(state): State<AppState>,
    Path(project): Path<String>,
) -> Result<Json<Enqueued>, ApiError> {
    Ok(Json(state.actions.rebuild(&admin.actor, &project).await?))
}

#[derive(serde::Deserialize)]
pub struct DeliveriesQuery {
    project: Option<String>,
    limit: Option<u64>,
    per_project: Option<u64>,
}

/// Recent webhook deliveries, newest first (`?project=NAME`, `?limit=N`, at most 500), or the
/// latest N of every project (`?per_project=N`, at most 100), as the admin page shows them.
pub async fn deliveries(
    _: Admin,
    State(state): State<AppState>,
    Query(query): Query<DeliveriesQuery>,
) -> Result<Json<Vec<DeliveryView>>, ApiError> {
    if let Some(per_project) = query.per_project {
        let per_project = per_project.clamp(1, 100);
        return Ok(Json(
            deliveries::recent_per_project(&state.db, per_project).await?,
        ));
    }
    let limit = query.limit.unwrap_or(100).clamp(1, 500);
    Ok(Json(
        deliveries::recent(&state.db, query.project.as_deref(), limit).await?,
    ))
}

#[derive(serde::Deserialize)]
pub struct AuditQuery {
    limit: Option<u64>,
}

/// The audit log, newest first (`?limit=N`, default 100, at most 1000).
pub async fn audit(
    _: Admin,
    State(state): State<AppState>,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Vec<AuditEntryView>>, ApiError> {
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    Ok(Json(audit::recent(&state.db, limit).await?))
}

/// The refs of a project that failed on their own, newest first.
pub async fn problems(
    _: Admin,
    State(state): State<AppState>,
    Path(project): Path<String>,
) -> Result<Json<Vec<Problem>>, ApiError> {
    let project = find_project(&state, &project).await?;
    Ok(Json(problems::for_project(&state.db, project.id).await?))
}

/// A release's whole build log, the admin-only lines included, as plain text.
pub async fn release_log(
    _: Admin,
    State(state): State<AppState>,
    Path((project, version)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let (_, found) = find_release(&state, &project, &version).await?;
    Ok((
        [(CONTENT_TYPE, "text/plain; charset=utf-8")],
        releases::build_log(&state.db, found.release.id).await?,
    ))
}
