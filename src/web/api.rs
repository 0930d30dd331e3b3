//! The public JSON API: everything the pages show, as JSON.

use axum::Json;
use axum::extract::FromRequestParts;
use axum::extract::{Path, Query, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, LINK};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::AppState;
use super::auth::Admin;
use super::documents;
use super::pages::{all_projects, find_public_project, release_view};
use super::paging::PageQuery;
use super::views::{ProjectView, ReleaseView};
use crate::error::{ApiError, AppError, Missing};
use crate::releases;

/// `GET /api/v1/projects`: every project, its latest release and its feeds.
pub async fn projects(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    match documents::serve(&state, "/api/v1/projects", &headers).await? {
        Some(document) => Ok(document),
        // Before the web server's first refresh: read the rows.
        None => Ok(Json(all_projects(&state).await?).into_response()),
    }
}

/// `GET /api/v1/projects/{project}`: the project page's content.
#[derive(Serialize)]
pub struct ProjectDetail {
    #[serde(flatten)]
    pub project: ProjectView,
    pub releases: Vec<ReleaseView>,
}

/// The stored document (`web::documents`). With an admin token (`Authorization: Bearer`),
/// the admin fields too: `rescan` (the schedule and the last rescan's result), never cached.
pub async fn project(
    State(state): State<AppState>,
    Path(name): Path<String>,
    mut parts: Parts,
) -> Result<Response, ApiError> {
    let key = format!("/api/v1/projects/{name}");
    if parts.headers.contains_key(AUTHORIZATION) {
        // A wrong token is refused as on any admin route.
        Admin::from_request_parts(&mut parts, &state).await?;
        return with_admin_fields(&state, &name, &key).await;
    }
    match documents::serve(&state, &key, &parts.headers).await? {
        Some(document) => Ok(document),
        None => Err(AppError::from(Missing::Project(name)).into()),
    }
}

async fn with_admin_fields(state: &AppState, name: &str, key: &str) -> Result<Response, ApiError> {
    let missing = || ApiError::from(AppError::from(Missing::Project(name.to_string())));
    let body = documents::body_of(state, key).await?.ok_or_else(missing)?;
    let mut detail: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| AppError::Internal(e.into()))?;
    let project = find_public_project(state, name).await?;
    let rescan = crate::schedule::status(&state.db, project.id)
        .await?
        .ok_or_else(missing)?;
    detail["rescan"] = serde_json::to_value(rescan).map_err(|e| AppError::Internal(e.into()))?;
    let mut response = Json(detail).into_response();
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The most releases one page of the releases list holds; with no `per_page`, a page holds
/// this many, so a client that does not paginate sees the newest 100.
pub const MAX_RELEASES_PER_PAGE: usize = 100;

/// Published releases newest first: tags by version, then dev snapshots. Releases of deleted
/// tags are unpublished and left out (their pages and files remain). Paginated as GitHub's API
/// is (`?page=N&per_page=M`, a `Link` header when there is more than one page).
pub async fn releases(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let asks_for_a_page = query.asks_for_a_page();
    let paging = query.check(MAX_RELEASES_PER_PAGE)?;
    if !asks_for_a_page {
        let key = format!("/api/v1/projects/{name}/releases");
        if let Some(document) = documents::serve(&state, &key, &headers).await? {
            return Ok(document);
        }
    }
    let project = find_public_project(&state, &name).await?;
    let all = releases::for_project(&state.db, project.id).await?;
    let (views, link) = documents::releases_page(&project, &all, &state.public_url, Some(paging));
    let mut response = Json(views).into_response();
    if let Some(link) = link {
        let link = HeaderValue::from_str(&link).map_err(anyhow::Error::from)?;
        response.headers_mut().insert(LINK, link);
    }
    Ok(response)
}

/// `GET /api/v1/projects/{project}/releases/{version}`: the release page's content.
#[derive(Serialize)]
pub struct ReleaseDetail {
    #[serde(flatten)]
    release: ReleaseView,
    /// The public build log (no admin-only lines); admins read the whole one at
    /// `GET /api/v1/projects/{project}/releases/{version}/log`.
    build_log: String,
}

pub async fn release(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<ReleaseDetail>, ApiError> {
    let found = release_view(&state, &name, &version).await?;
    Ok(Json(ReleaseDetail {
        release: found.view,
        build_log: found.build_log,
    }))
}

/// `GET /api/v1/status`: the queue counts the home page shows.
#[derive(Serialize)]
pub struct Status {
    pending: i64,
    running: i64,
    failed: i64,
    paused: bool,
}

pub async fn status(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    let counts = state.queue.counts().await.map_err(anyhow::Error::from)?;
    Ok(Json(Status {
        pending: counts.pending,
        running: counts.running,
        failed: counts.failed,
        paused: counts.paused,
    }))
}
