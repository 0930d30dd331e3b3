//! The maintainers' pages: home, project, release. Typed templates, no JavaScript.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};

use super::AppState;
use super::views::{ProjectView, ReleaseView, human_size};
use crate::error::AppError;
use crate::projects::{self, Project};
use crate::queue::QueueCounts;
use crate::releases::{self, ReleaseWithFiles};

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

#[derive(Template)]
#[template(path = "index.html")]
pub struct IndexPage {
    projects: Vec<ProjectView>,
    counts: QueueCounts,
}

/// Every project with its releases, for the home page and `GET /api/v1/projects`.
pub async fn all_projects(state: &AppState) -> Result<Vec<ProjectView>, AppError> {
    let mut views = Vec::new();
    for project in projects::list(&state.db).await? {
        let releases = releases::for_project(&state.db, project.id).await?;
        views.push(ProjectView::new(&project, &releases, &state.public_url));
    }
    Ok(views)
}

pub async fn index(State(state): State<AppState>) -> Result<Page<IndexPage>, AppError> {
    let projects = all_projects(&state).await?;
    let counts = state.queue.counts().await.map_err(anyhow::Error::from)?;
    Ok(Page(IndexPage { projects, counts }))
}

#[derive(Template)]
#[template(path = "project.html")]
pub struct ProjectPage {
    project: ProjectView,
}

pub async fn find_project(state: &AppState, name: &str) -> Result<Project, AppError> {
    projects::find(&state.db, name)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no project named {name:?}")))
}

/// A project with every release (unpublished ones too, marked), newest first.
pub async fn project_view(state: &AppState, name: &str) -> Result<ProjectView, AppError> {
    let project = find_project(state, name).await?;
    let releases = releases::for_project(&state.db, project.id).await?;
    Ok(ProjectView::new(&project, &releases, &state.public_url))
}

pub async fn project(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Page<ProjectPage>, AppError> {
    Ok(Page(ProjectPage {
        project: project_view(&state, &name).await?,
    }))
}

#[derive(Template)]
#[template(path = "release.html")]
pub struct ReleasePage {
    name: String,
    title: String,
    release: ReleaseView,
}

/// One release's rows, unpublished or not; 404 for an unknown project or version.
pub async fn find_release(
    state: &AppState,
    name: &str,
    version: &str,
) -> Result<(Project, ReleaseWithFiles), AppError> {
    let project = find_project(state, name).await?;
    let release = releases::find(&state.db, project.id, version)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("{name} has no release {version:?}")))?;
    Ok((project, release))
}

/// One release as the public sees it, unpublished or not.
pub async fn release_view(
    state: &AppState,
    name: &str,
    version: &str,
) -> Result<(Project, ReleaseView), AppError> {
    let (project, release) = find_release(state, name, version).await?;
    let view = ReleaseView::new(&project.name, &release, &state.public_url);
    Ok((project, view))
}

pub async fn release(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Page<ReleasePage>, AppError> {
    let (project, release) = release_view(&state, &name, &version).await?;
    Ok(Page(ReleasePage {
        release,
        name: project.name,
        title: project.title,
    }))
}
