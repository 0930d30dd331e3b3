//! The maintainers' pages: home, project, release. Typed templates, no JavaScript.
//!
//! Public pages, the API and feeds show enabled projects only ([`find_public_project`]): a
//! project that left the config file is gone from them (404 where the URL names it). Admin
//! views and downloads find disabled projects too ([`find_project`]).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};

use super::AppState;
use super::paging::PageQuery;
use super::views::{ProjectView, ReleaseView, human_size};
use crate::error::{AppError, Missing};
use crate::projects::{self, Project};
use crate::publish::composer::{Entry, Repository};
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

/// Every enabled project with its releases, for the home page and `GET /api/v1/projects`.
pub async fn all_projects(state: &AppState) -> Result<Vec<ProjectView>, AppError> {
    // Read with every project: a project's Composer name depends on the others'.
    let repository = Repository::load(&state.db).await?;
    Ok(repository
        .entries()
        .iter()
        .filter(|entry| !entry.project.is_disabled())
        .map(|entry| ProjectView::new(entry, &state.public_url))
        .collect())
}

pub async fn index(State(state): State<AppState>) -> Result<Page<IndexPage>, AppError> {
    let projects = all_projects(&state).await?;
    let counts = state.queue.counts().await.map_err(anyhow::Error::from)?;
    Ok(Page(IndexPage { projects, counts }))
}

/// Tag releases on one page of a project's history.
const HISTORY_PER_PAGE: usize = 50;

/// A project's page stays small at any release count: the newest release of each line, the dev
/// snapshots, and one page of the whole history (`?page=N`, [`HISTORY_PER_PAGE`] a page).
#[derive(Template)]
#[template(path = "project.html")]
pub struct ProjectPage {
    project: ProjectView,
    latest: Vec<ReleaseView>,
    snapshots: Vec<ReleaseView>,
    history: Vec<ReleaseView>,
    page: usize,
    pages: usize,
}

fn no_project(name: &str) -> AppError {
    Missing::Project(name.to_string()).into()
}

/// The enabled project called `name`, for public pages, the API and feeds.
pub async fn find_public_project(state: &AppState, name: &str) -> Result<Project, AppError> {
    projects::find(&state.db, name)
        .await?
        .ok_or_else(|| no_project(name))
}

/// The project called `name`, disabled or not: for admin views, and for downloads, which
/// outlive the project's leaving (lock files point at its files, which are kept).
pub async fn find_project(state: &AppState, name: &str) -> Result<Project, AppError> {
    projects::find_including_disabled(&state.db, name)
        .await?
        .ok_or_else(|| no_project(name))
}

/// A project already found, with its releases and Composer standing.
async fn project_entry(state: &AppState, project: &Project) -> Result<Entry, AppError> {
    Repository::load(&state.db)
        .await?
        .into_entry(project.id)
        .ok_or_else(|| no_project(&project.name))
}

/// An enabled project with every release (unpublished ones too, marked), newest first.
pub async fn project_view(state: &AppState, name: &str) -> Result<ProjectView, AppError> {
    let project = find_public_project(state, name).await?;
    let entry = project_entry(state, &project).await?;
    Ok(ProjectView::new(&entry, &state.public_url))
}

pub async fn project(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Page<ProjectPage>, AppError> {
    let paging = query.check(HISTORY_PER_PAGE)?;
    let project = project_view(&state, &name).await?;
    let tags: Vec<&ReleaseView> = project.tags().collect();
    Ok(Page(ProjectPage {
        latest: project.latest_of_each_line().into_iter().cloned().collect(),
        snapshots: project.snapshots().cloned().collect(),
        history: paging.slice(&tags).iter().copied().cloned().collect(),
        page: paging.page,
        pages: tags.len().div_ceil(paging.per_page).max(1),
        project,
    }))
}

#[derive(Template)]
#[template(path = "release.html")]
pub struct ReleasePage {
    name: String,
    title: String,
    release: ReleaseView,
    /// Without the admin-only lines that name the repository's location.
    build_log: String,
}

/// One release's rows, unpublished or not, of a project disabled or not (for admins); 404
/// for an unknown project or version.
pub async fn find_release(
    state: &AppState,
    name: &str,
    version: &str,
) -> Result<(Project, ReleaseWithFiles), AppError> {
    let project = find_project(state, name).await?;
    let release = release_of(state, &project, version).await?;
    Ok((project, release))
}

async fn release_of(
    state: &AppState,
    project: &Project,
    version: &str,
) -> Result<ReleaseWithFiles, AppError> {
    releases::find(&state.db, project.id, version)
        .await?
        .ok_or_else(|| {
            AppError::from(Missing::Release {
                project: project.name.clone(),
                version: version.to_string(),
            })
        })
}

/// One release of an enabled project as the public sees it, unpublished or not.
pub struct PublicRelease {
    pub project: Project,
    pub view: ReleaseView,
    /// The build log without its admin-only lines (`releases::public_log`).
    pub build_log: String,
}

/// The release `version` of the enabled project `name`, with its public build log; 404 for an
/// unknown or disabled project or an unknown version.
pub async fn release_view(
    state: &AppState,
    name: &str,
    version: &str,
) -> Result<PublicRelease, AppError> {
    let project = find_public_project(state, name).await?;
    let release = release_of(state, &project, version).await?;
    let build_log = releases::build_log(&state.db, release.release.id).await?;
    Ok(PublicRelease {
        view: ReleaseView::new(&project.name, &release, &state.public_url),
        build_log: releases::public_log(&build_log),
        project,
    })
}

pub async fn release(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Page<ReleasePage>, AppError> {
    let found = release_view(&state, &name, &version).await?;
    Ok(Page(ReleasePage {
        release: found.view,
        build_log: found.build_log,
        name: found.project.name,
        title: found.project.title,
    }))
}
