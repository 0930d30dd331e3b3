//! The maintainers' pages: home, project, release. Typed templates, no JavaScript.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};

use super::AppState;
use super::views::{ReleaseView, human_size};
use crate::error::AppError;
use crate::projects::{self, Project};
use crate::queue::QueueCounts;
use crate::releases;

/// Renders any page; a template error becomes a logged 500.
pub struct Page<T>(pub T);

impl<T: Template> IntoResponse for Page<T> {
    fn into_response(self) -> Response {
        match self.0.render() {
            Ok(html) => Html(html).into_response(),
            Err(e) => AppError::Internal(e.into()).into_response(),
        }
    }
}

pub struct ProjectRow {
    name: String,
    title: String,
    latest: Option<ReleaseView>,
}

#[derive(Template)]
#[template(path = "index.html")]
pub struct IndexPage {
    projects: Vec<ProjectRow>,
    counts: QueueCounts,
}

pub async fn index(State(state): State<AppState>) -> Result<Page<IndexPage>, AppError> {
    let mut rows = Vec::new();
    for project in projects::list(&state.db).await? {
        let latest = releases::for_project(&state.db, project.id)
            .await?
            .iter()
            .find(|r| r.release.status == "published")
            .map(|r| ReleaseView::new(&project.name, r, &state.public_url));
        rows.push(ProjectRow {
            name: project.name,
            title: project.title,
            latest,
        });
    }
    let counts = state.queue.counts().await.map_err(anyhow::Error::from)?;
    Ok(Page(IndexPage {
        projects: rows,
        counts,
    }))
}

#[derive(Template)]
#[template(path = "project.html")]
pub struct ProjectPage {
    name: String,
    title: String,
    releases: Vec<ReleaseView>,
}

pub async fn find_project(state: &AppState, name: &str) -> Result<Project, AppError> {
    projects::find(&state.db, name)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no project named {name:?}")))
}

pub async fn project(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Page<ProjectPage>, AppError> {
    let project = find_project(&state, &name).await?;
    let releases = releases::for_project(&state.db, project.id)
        .await?
        .iter()
        .map(|r| ReleaseView::new(&project.name, r, &state.public_url))
        .collect();
    Ok(Page(ProjectPage {
        name: project.name,
        title: project.title,
        releases,
    }))
}

#[derive(Template)]
#[template(path = "release.html")]
pub struct ReleasePage {
    name: String,
    title: String,
    release: ReleaseView,
}

pub async fn release(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Page<ReleasePage>, AppError> {
    let project = find_project(&state, &name).await?;
    let release = releases::find(&state.db, project.id, &version)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("{name} has no release {version:?}")))?;
    Ok(Page(ReleasePage {
        release: ReleaseView::new(&project.name, &release, &state.public_url),
        name: project.name,
        title: project.title,
    }))
}
