//! The notifications admin API: `GET|POST /api/v1/notifications` (subscribers, and the recent
//! messages with every attempt), `DELETE /api/v1/notifications/{id}`, and
//! `POST /api/v1/notifications/messages/{id}/resend`. Changes go through
//! `admin::AdminActions`, audited under the token's name.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::Admin;
use crate::error::{ApiError, AppError};
use crate::notify::SubscriberView;
use crate::notify::subscribers::{self, MessageView, SubscriberInput};

/// How many messages the listing shows, newest first.
pub const LISTED_MESSAGES: u64 = 100;

#[derive(Serialize)]
pub struct Listing {
    subscribers: Vec<SubscriberView>,
    messages: Vec<MessageView>,
}

pub async fn list(_: Admin, State(state): State<AppState>) -> Result<Json<Listing>, ApiError> {
    Ok(Json(Listing {
        subscribers: subscribers::list(&state.db).await?,
        messages: subscribers::recent_messages(&state.db, LISTED_MESSAGES).await?,
    }))
}

/// The subscriber as stored; its secret only when baler made it (the one time it is shown).
#[derive(Serialize)]
pub struct Added {
    #[serde(flatten)]
    subscriber: SubscriberView,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

pub async fn add(
    admin: Admin,
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Added>), ApiError> {
    let input: SubscriberInput = serde_json::from_slice(&body)
        .map_err(|e| AppError::BadRequest(format!("the body must be a subscriber: {e}")))?;
    let generated = input.secret.is_none();
    let spec = input
        .check(true)
        .map_err(|e| AppError::BadRequest(e.to_string()))?;
    let row = state.actions.add_subscriber(&admin.actor, &spec).await?;
    Ok((
        StatusCode::CREATED,
        Json(Added {
            subscriber: SubscriberView::of(&row),
            secret: generated.then(|| spec.secret.reveal()),
        }),
    ))
}

pub async fn remove(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let url = state.actions.remove_subscriber(&admin.actor, id).await?;
    Ok(Json(json!({ "removed": id, "url": url })))
}

pub async fn resend(
    admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    state.actions.resend_notification(&admin.actor, id).await?;
    Ok(Json(json!({ "message": id, "state": "pending" })))
}
