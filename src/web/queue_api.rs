//! The admin queue API: inspect, pause, resume, flush, delete, retry, rebuild.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde_json::{Value, json};

use super::AppState;
use super::auth::Admin;
use super::pages::find_project;
use crate::deliveries::{self, DeliveryView};
use crate::error::{ApiError, AppError};
use crate::queue::{Enqueued, QueueError, QueueListing};

impl From<QueueError> for AppError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::NotFound(_) => AppError::NotFound(e.to_string()),
            QueueError::Conflict(_) => AppError::Conflict(e.to_string()),
            other => AppError::Internal(other.into()),
        }
    }
}

pub async fn list(_: Admin, State(state): State<AppState>) -> Result<Json<QueueListing>, ApiError> {
    Ok(Json(state.queue.list().await?))
}

pub async fn pause(_: Admin, State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state.queue.set_paused(true).await?;
    Ok(Json(json!({ "paused": true })))
}

pub async fn resume(_: Admin, State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state.queue.set_paused(false).await?;
    Ok(Json(json!({ "paused": false })))
}

pub async fn flush(_: Admin, State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let removed = state.queue.flush().await?;
    Ok(Json(json!({ "removed": removed })))
}

pub async fn delete(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    state.queue.delete(id).await?;
    Ok(Json(json!({ "deleted": id })))
}

pub async fn retry(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Enqueued>, ApiError> {
    Ok(Json(state.queue.retry(id).await?))
}

pub async fn rebuild(
    _: Admin,
    State(state): State<AppState>,
    Path(project): Path<String>,
) -> Result<Json<Enqueued>, ApiError> {
    let project = find_project(&state, &project).await?;
    Ok(Json(state.queue.rebuild(project.id).await?))
}

#[derive(serde::Deserialize)]
pub struct DeliveriesQuery {
    project: Option<String>,
    limit: Option<u64>,
}

/// Recent webhook deliveries, newest first (`?project=NAME`, `?limit=N`, at most 500).
pub async fn deliveries(
    _: Admin,
    State(state): State<AppState>,
    Query(query): Query<DeliveriesQuery>,
) -> Result<Json<Vec<DeliveryView>>, ApiError> {
    let limit = query.limit.unwrap_or(100).clamp(1, 500);
    Ok(Json(
        deliveries::recent(&state.db, query.project.as_deref(), limit).await?,
    ))
}
