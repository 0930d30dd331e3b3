//! The maintainers' pages: home, project, release. Typed templates, no JavaScript.
//!
//! Public pages, the API and feeds show enabled projects only ([`find_public_project`]): a
//! project that left the config file is gone from them (404 where the URL names it). Admin
//! views and downloads find disabled projects too ([`find_project`]).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};

use super::AppState;
use super::documents;
use super::paging::PageQuery;
use super::views::{ProjectView, ReleaseView, human_size};
use crate::error::{AppError, Missing};
use crate::projects::{self, Project};
use crate::publish::composer::Repository;
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

/// `GET /projects/{project}`: the stored page (`?page=N` for older history).
pub async fn project(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let paging = query.check(HISTORY_PER_PAGE)?;
    let key = match paging.page {
        1 => format!("/projects/{name}"),
        n => format!("/projects/{name}?page={n}"),
    };
    if let Some(page) = documents::serve(&state, &key, &headers).await? {
        return Ok(page);
    }
    let project = find_public_project(&state, &name).await?;
    Err(Missing::Page {
        project: project.name,
        page: paging.page,
    }
    .into())
}

/// A project's page and its older history pages, in order: the newest release of each line
/// and the dev snapshots on every one, the history [`HISTORY_PER_PAGE`] tags a page.
pub fn project_pages(project: &ProjectView) -> Result<Vec<String>, askama::Error> {
    let tags: Vec<&ReleaseView> = project.tags().collect();
    let pages = tags.len().div_ceil(HISTORY_PER_PAGE).max(1);
    let latest: Vec<ReleaseView> = project.latest_of_each_line().into_iter().cloned().collect();
    let snapshots: Vec<ReleaseView> = project.snapshots().cloned().collect();
    (1..=pages)
        .map(|page| {
            let paging = super::paging::Paging {
                page,
                per_page: HISTORY_PER_PAGE,
            };
            ProjectPage {
                latest: latest.clone(),
                snapshots: snapshots.clone(),
                history: paging.slice(&tags).iter().copied().cloned().collect(),
                page,
                pages,
                project: project.clone(),
            }
            .render()
        })
        .collect()
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
