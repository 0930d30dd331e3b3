//! What a CI job does with a scoped token (`baler token create --project P --scope release`):
//! `POST /api/v1/projects/{project}/releases` asks for a release of one branch or tag, and
//! `GET /api/v1/items/{id}` follows the queue item until it is done, long-polling with
//! `?wait=N`. An admin token may do both for every project; a `release` token for its own
//! project; a `read` token may only follow its own project's items.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::auth::Caller;
use crate::admin::tokens::Scope;
use crate::error::{ApiError, AppError, Missing};
use crate::queue::{PendingRefs, QueueItemView, QueueState};
use crate::{projects, releases};

/// The longest `?wait=` honoured, in seconds: a long poll holds a connection slot.
pub const MAX_WAIT_SECS: u64 = 60;

/// How often a long poll reads the item again. Other processes' workers change it, so a
/// local wake-up would not do; one primary-key read per poll is cheap.
const POLL_EVERY: Duration = Duration::from_millis(250);

#[derive(Deserialize)]
pub struct ReleaseRequest {
    /// `refs/tags/v2.0.0` or `refs/heads/main`.
    #[serde(rename = "ref")]
    ref_name: String,
}

/// The answer to a release request (202).
#[derive(Serialize)]
pub struct Requested {
    item: i64,
    /// Place among pending items.
    position: i64,
    /// The request merged into an item of the project that was already waiting.
    merged: bool,
    /// Where to follow the item.
    status_url: String,
}

/// `POST /api/v1/projects/{project}/releases`: queues the ref like a push naming it. The ref
/// must be a branch or tag the project's patterns release; whether it exists, and at which
/// commit, the worker finds out in its freshly fetched mirror (the request is not trusted).
pub async fn request_release(
    caller: Caller,
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Requested>), ApiError> {
    caller.may(Scope::Release, &name)?;
    let request: ReleaseRequest = serde_json::from_slice(&body).map_err(|e| {
        AppError::BadRequest(format!(
            r#"the body must be {{"ref": "refs/tags/NAME"}} or {{"ref": "refs/heads/NAME"}}: {e}"#
        ))
    })?;
    let project = projects::find_including_disabled(&state.db, &name)
        .await?
        .ok_or_else(|| Missing::Project(name.clone()))?;
    let refs: PendingRefs =
        crate::hooks::requested_refs(&project, &request.ref_name).map_err(AppError::BadRequest)?;
    let queued = state
        .actions
        .request_release(&caller.0.actor, &project, &refs, &request.ref_name)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Requested {
            item: queued.item,
            position: queued.position,
            merged: queued.merged,
            status_url: format!("{}/api/v1/items/{}", state.public_url.0, queued.item),
        }),
    ))
}

#[derive(Deserialize)]
pub struct Wait {
    /// Seconds to wait for the item's state to change (at most [`MAX_WAIT_SECS`]).
    #[serde(default)]
    wait: u64,
}

/// One release an item built, with its files.
#[derive(Serialize)]
pub struct BuiltRelease {
    version: String,
    page: String,
    files: Vec<crate::notify::FileData>,
}

/// `GET /api/v1/items/{id}`.
#[derive(Serialize)]
pub struct ItemStatus {
    id: i64,
    project: String,
    state: QueueState,
    /// Place among pending items; null unless pending.
    position: Option<i64>,
    refs: PendingRefs,
    /// A full rescan (a rebuild or a scheduled rescan), not only `refs`.
    scan_all: bool,
    attempts: i32,
    last_error: Option<String>,
    /// What the item's jobs published; once it is done, also the release of each ref it
    /// named that an earlier item had built at the same commit.
    releases: Vec<BuiltRelease>,
}

/// `GET /api/v1/items/{id}[?wait=N]` (404 once the item is gone: flushed, deleted, merged into
/// an older waiting item of its project, or removed by retention): the item now, or, with `wait`, once its state differs
/// from the state it had when the request came (or after N seconds, whichever is first; a
/// done or failed item is answered at once, it will not change).
pub async fn item(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(wait): Query<Wait>,
) -> Result<Json<ItemStatus>, ApiError> {
    let first = find_item(&state, id).await?;
    caller.may(Scope::Read, &first.project)?;
    let mut now = first;
    let settled =
        |item: &QueueItemView| matches!(item.state, QueueState::Done | QueueState::Failed);
    if wait.wait > 0 && !settled(&now) {
        // Well inside `request_timeout_seconds`, which would answer 408 instead.
        let bound = Duration::from_secs(wait.wait.min(MAX_WAIT_SECS)).min(
            state
                .http
                .request_timeout
                .saturating_sub(Duration::from_secs(1)),
        );
        let deadline = tokio::time::Instant::now() + bound;
        let started_as = now.state;
        while now.state == started_as {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            tokio::time::sleep(left.min(POLL_EVERY)).await;
            now = find_item(&state, id).await?;
        }
    }
    Ok(Json(status_of(&state, now).await?))
}

async fn find_item(state: &AppState, id: i64) -> Result<QueueItemView, AppError> {
    Ok(state.queue.item(id).await?.ok_or(Missing::QueueItem(id))?)
}

async fn status_of(state: &AppState, item: QueueItemView) -> Result<ItemStatus, AppError> {
    let project = projects::find_including_disabled(&state.db, &item.project)
        .await?
        .ok_or_else(|| Missing::Project(item.project.clone()))?;
    let named = (item.state == QueueState::Done).then_some(&item.refs);
    let built = releases::of_item(&state.db, project.id, item.id, named).await?;
    let releases = built
        .into_iter()
        .map(|found| BuiltRelease {
            page: state
                .public_url
                .release(&project.name, &found.release.version),
            files: found
                .files
                .iter()
                .map(|file| crate::notify::FileData {
                    name: file.name.clone(),
                    url: state.public_url.file(&project.name, &file.name),
                    size: file.size,
                    sha256: file.sha256.clone(),
                })
                .collect(),
            version: found.release.version,
        })
        .collect();
    Ok(ItemStatus {
        id: item.id,
        project: item.project,
        state: item.state,
        position: item.position,
        refs: item.refs,
        scan_all: item.scan_all,
        attempts: item.attempts,
        last_error: item.last_error,
        releases,
    })
}
