//! `GET /admin/storage`: what each project keeps (files and bytes), what the retention
//! curator's next run will remove under the current settings, and what its last run removed.

use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::pages::Page;
use super::session::AdminSession;
use crate::error::AppError;
use crate::retention::{self, Plan, ProjectStorage, Removed};

/// The settings as the page shows them: `"30d"` or `"off"`.
pub struct Setting {
    name: &'static str,
    value: String,
}

/// The last run as the page shows it.
pub struct LastRun {
    started_at: String,
    finished_at: Option<String>,
    removed: Option<Removed>,
}

#[derive(Template)]
#[template(path = "admin-storage.html")]
pub struct StoragePage {
    actor: String,
    csrf: String,
    projects: Vec<ProjectStorage>,
    total_files: i64,
    total_bytes: i64,
    settings: Vec<Setting>,
    plan: Plan,
    next_run: Option<String>,
    last_run: Option<LastRun>,
}

fn shown(setting: Option<std::time::Duration>) -> String {
    match setting {
        Some(every) => humantime::format_duration(every).to_string(),
        None => "off".to_string(),
    }
}

fn at(millis: i64) -> String {
    crate::time::rfc3339(crate::time::from_millis(millis))
}

pub async fn storage(
    State(state): State<AppState>,
    AdminSession { session, actor }: AdminSession,
) -> Result<Response, AppError> {
    let policy = &state.retention;
    let projects = retention::storage_by_project(&state.db).await?;
    let plan = retention::plan(&state.db, &state.queue, policy)
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    let last = retention::last_run(&state.db).await?;
    let next_run = policy.interval.map(|every| {
        let every = (every.as_millis() as i64).max(1);
        at((crate::time::now_millis() / every + 1) * every)
    });
    let page = StoragePage {
        actor: actor.to_string(),
        csrf: session.csrf(),
        total_files: projects.iter().map(|p| p.files).sum(),
        total_bytes: projects.iter().map(|p| p.bytes).sum(),
        projects,
        settings: vec![
            Setting {
                name: "interval",
                value: shown(policy.interval),
            },
            Setting {
                name: "deleted_branches_after",
                value: shown(policy.deleted_branches_after),
            },
            Setting {
                name: "unpublished_after",
                value: shown(policy.unpublished_after),
            },
            Setting {
                name: "finished_items_after",
                value: shown(policy.finished_items_after),
            },
            Setting {
                name: "audit_after",
                value: shown(policy.audit_after),
            },
        ],
        plan,
        next_run,
        last_run: last.map(|run| LastRun {
            started_at: at(run.started_at),
            finished_at: run.finished_at.map(at),
            removed: run
                .removed
                .and_then(|json| serde_json::from_str(&json).ok()),
        }),
    };
    Ok((session.into_jar(), Page(page)).into_response())
}
