//! `GET /admin/projects`: every project, disabled ones too, with its state and where it stands
//! in the Composer repository (published, or in conflict with the project that owns its name).

use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::pages::Page;
use super::session::AdminSession;
use crate::error::AppError;
use crate::publish::composer::{Repository, Standing};
use crate::time::rfc3339;

/// One project as the page lists it.
pub struct ProjectRow {
    name: String,
    title: String,
    /// When it left the config file (RFC 3339); `None` while enabled.
    disabled_since: Option<String>,
    /// The Composer name it claims, published or not.
    composer: Option<String>,
    published: bool,
    /// Why a claimed name is not published.
    composer_problem: Option<String>,
}

#[derive(Template)]
#[template(path = "admin-projects.html")]
pub struct ProjectsPage {
    actor: String,
    csrf: String,
    projects: Vec<ProjectRow>,
    disabled: usize,
}

pub async fn projects(
    State(state): State<AppState>,
    AdminSession { session, actor }: AdminSession,
) -> Result<Response, AppError> {
    let repository = Repository::load(&state.db).await?;
    let projects: Vec<ProjectRow> = repository
        .entries()
        .iter()
        .map(|entry| ProjectRow {
            name: entry.project.name.clone(),
            title: entry.project.title.clone(),
            disabled_since: entry.project.disabled_at.map(rfc3339),
            composer: entry.standing.claimed_name().map(str::to_string),
            published: matches!(entry.standing, Standing::Published(_)),
            composer_problem: entry.standing.problem(),
        })
        .collect();
    let page = ProjectsPage {
        actor: actor.to_string(),
        csrf: session.csrf(),
        disabled: projects
            .iter()
            .filter(|p| p.disabled_since.is_some())
            .count(),
        projects,
    };
    Ok((session.into_jar(), Page(page)).into_response())
}
