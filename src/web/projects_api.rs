//! Projects that live in the database: `POST /api/v1/projects` adds one (the body is a
//! `[[projects]]` entry as JSON) and `DELETE /api/v1/projects/{project}` disables one, keeping
//! its releases. Both go through `admin::AdminActions`, audited under the token's name, and
//! publish the project's documents in the same transaction. The config file's projects are
//! changed only in the file (409). `POST|DELETE /api/v1/projects/{project}/connect` connect
//! and disconnect a project's webhook on its host (`connect`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::auth::Admin;
use super::documents::refresh_project_on;
use crate::config::ProjectConfig;
use crate::connect::{Connected, Credentials};
use crate::error::{ApiError, AppError};

/// A project added, as the answer shows it.
#[derive(Serialize)]
pub struct Added {
    name: String,
    title: String,
    provider: &'static str,
    repo: String,
    /// Where the host sends its webhooks.
    hook: String,
    page: String,
}

pub async fn add(
    admin: Admin,
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Added>), ApiError> {
    let entry: ProjectConfig = serde_json::from_slice(&body).map_err(|e| {
        AppError::BadRequest(format!(
            "the body must be a [[projects]] entry as JSON: {e}"
        ))
    })?;
    let settings = entry
        .resolve_added(state.rescan_every)
        .map_err(|e| AppError::BadRequest(format!("`{}` {}", e.field, e.message)))?;
    let store = state.store.clone();
    let (project, changing) = state
        .actions
        .add_project(&admin.actor, &settings, async |txn, id| {
            refresh_project_on(txn, id, store.as_ref()).await
        })
        .await?;
    drop(changing);
    Ok((
        StatusCode::CREATED,
        Json(Added {
            hook: format!("{}/hooks/{}", state.public_url.0, project.name),
            page: state.public_url.project(&project.name),
            provider: project.provider.as_str(),
            repo: crate::redact::redact(&project.repo),
            name: project.name,
            title: project.title,
        }),
    ))
}

pub async fn remove(
    admin: Admin,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let store = state.store.clone();
    let (project, changing) = state
        .actions
        .remove_project(&admin.actor, &name, async |txn, id| {
            refresh_project_on(txn, id, store.as_ref()).await
        })
        .await?;
    drop(changing);
    Ok(Json(serde_json::json!({
        "removed": project.name,
        "disabled_at": project.disabled_at.map(crate::time::rfc3339),
    })))
}

/// `POST /api/v1/projects/{project}/connect`'s optional body: for a project the config file
/// does not hold (or to use another token), the host API's base and a token, used for this
/// request only and never stored.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ConnectBody {
    api_url: Option<String>,
    api_token: Option<String>,
}

impl ConnectBody {
    fn read(body: &[u8]) -> Result<Credentials, AppError> {
        let given: ConnectBody = if body.iter().all(u8::is_ascii_whitespace) {
            ConnectBody::default()
        } else {
            serde_json::from_slice(body).map_err(|e| {
                AppError::BadRequest(format!(
                    r#"the body is empty or {{"api_url"?, "api_token"?}}: {e}"#
                ))
            })?
        };
        Ok(Credentials {
            api_url: given.api_url,
            token: given.api_token,
        })
    }
}

/// `POST /api/v1/projects/{project}/connect`: baler's webhook created or updated on the host,
/// then pinged (see `connect`). 200 with what was done; 400 when a token or API base is
/// missing; 502 with the host's words when it refuses.
pub async fn connect(
    admin: Admin,
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Connected>, ApiError> {
    let credentials = state
        .credentials(&name)
        .overridden_by(ConnectBody::read(&body)?);
    Ok(Json(
        state
            .connector
            .connect(&admin.actor, &name, &credentials)
            .await?,
    ))
}

/// `DELETE /api/v1/projects/{project}/connect`: baler's webhook removed from the host.
pub async fn disconnect(
    admin: Admin,
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let credentials = state
        .credentials(&name)
        .overridden_by(ConnectBody::read(&body)?);
    let removed = state
        .connector
        .disconnect(&admin.actor, &name, &credentials)
        .await?;
    Ok(Json(
        serde_json::json!({ "project": name, "removed": removed }),
    ))
}
