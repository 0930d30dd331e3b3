//! The public JSON API: everything the pages show, as JSON.

use axum::Json;
use axum::extract::{Path, State};
use entities::release::ReleaseStatus;
use serde::Serialize;

use super::AppState;
use super::pages::{all_projects, project_view, release_view};
use super::views::{ProjectView, ReleaseView};
use crate::error::ApiError;

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

/// Published releases newest first: tags by version, then dev snapshots. Releases of deleted
/// tags are unpublished and left out (their pages and files remain).
pub async fn releases(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Vec<ReleaseView>>, ApiError> {
    let project = project_view(&state, &name).await?;
    Ok(Json(
        project
            .releases
            .into_iter()
            .filter(|r| r.status == ReleaseStatus::Published)
            .collect(),
    ))
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
