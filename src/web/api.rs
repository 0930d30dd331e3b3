//! The public JSON API.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;

use super::AppState;
use super::pages::find_project;
use super::views::ReleaseView;
use crate::error::ApiError;
use crate::{projects, releases};

#[derive(Serialize)]
pub struct ProjectJson {
    name: String,
    title: String,
    provider: &'static str,
    url: String,
    latest: Option<String>,
}

pub async fn projects(State(state): State<AppState>) -> Result<Json<Vec<ProjectJson>>, ApiError> {
    let mut out = Vec::new();
    for project in projects::list(&state.db).await? {
        let latest = releases::for_project(&state.db, project.id)
            .await?
            .into_iter()
            .find(|r| r.release.status == "published")
            .map(|r| r.release.version);
        out.push(ProjectJson {
            url: format!("{}/projects/{}", state.public_url.0, project.name),
            provider: project.provider.as_str(),
            name: project.name,
            title: project.title,
            latest,
        });
    }
    Ok(Json(out))
}

/// Published releases newest first: tags by commit date, then dev snapshots. Releases of
/// deleted tags are unpublished and left out (their pages and files remain).
pub async fn releases(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Vec<ReleaseView>>, ApiError> {
    let project = find_project(&state, &name).await?;
    let releases = releases::for_project(&state.db, project.id)
        .await?
        .iter()
        .filter(|r| r.release.status == "published")
        .map(|r| ReleaseView::new(&project.name, r, &state.public_url))
        .collect();
    Ok(Json(releases))
}
