//! The public JSON API: everything the pages show, as JSON.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderValue;
use axum::http::header::LINK;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::AppState;
use super::pages::{all_projects, find_public_project, project_view, release_view};
use super::paging::PageQuery;
use super::views::{ProjectView, ReleaseView};
use crate::error::ApiError;
use crate::publish::published_newest_first;
use crate::releases;

/// `GET /api/v1/projects`: every project, its latest release and its feeds.
pub async fn projects(State(state): State<AppState>) -> Result<Json<Vec<ProjectView>>, ApiError> {
    Ok(Json(all_projects(&state).await?))
}

/// `GET /api/v1/projects/{project}`: the project page's content.
#[derive(Serialize)]
pub struct ProjectDetail {
    #[serde(flatten)]
    project: ProjectView,
    releases: Vec<ReleaseView>,
}

pub async fn project(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ProjectDetail>, ApiError> {
    let project = project_view(&state, &name).await?;
    Ok(Json(ProjectDetail {
        releases: project.releases.clone(),
        project,
    }))
}

/// The most releases one page of the releases list holds; with no `per_page`, a page holds
/// this many, so a client that does not paginate sees the newest 100.
const MAX_RELEASES_PER_PAGE: usize = 100;

/// Published releases newest first: tags by version, then dev snapshots. Releases of deleted
/// tags are unpublished and left out (their pages and files remain). Paginated as GitHub's API
/// is (`?page=N&per_page=M`, a `Link` header when there is more than one page).
pub async fn releases(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let paging = query.check(MAX_RELEASES_PER_PAGE)?;
    let project = find_public_project(&state, &name).await?;
    let all = releases::for_project(&state.db, project.id).await?;
    let published = published_newest_first(&all);
    let views: Vec<ReleaseView> = paging
        .slice(&published)
        .iter()
        .map(|r| ReleaseView::new(&project.name, r, &state.public_url))
        .collect();
    let base = format!(
        "{}/api/v1/projects/{}/releases",
        state.public_url.0, project.name
    );
    let mut response = Json(views).into_response();
    if let Some(link) = paging.link(&base, published.len()) {
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
