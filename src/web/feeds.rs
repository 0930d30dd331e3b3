//! What other programs read: Drupal's update-status XML, the Composer repository and Atom
//! feeds. Each is a document rendered when releases change (`web::documents`) and served as
//! stored, with its `ETag` and `Last-Modified`. Disabled projects (gone from the config file)
//! are in none of them.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::documents;
use super::pages::find_public_project;
use crate::error::{AppError, Missing};
use crate::projects;
use crate::publish::drupal;
use crate::releases;

const XML: &str = "application/xml; charset=utf-8";

/// `GET /release-history/{project}/{api}`: `current`, or a core API like `7.x`.
pub async fn release_history(
    State(state): State<AppState>,
    Path((name, api_text)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let key = format!("/release-history/{name}/{api_text}");
    if let Some(feed) = documents::serve(&state, &key, &headers).await? {
        return Ok(feed);
    }
    let xml = |status: StatusCode, body: String| {
        (status, [(header::CONTENT_TYPE, XML)], body).into_response()
    };
    // Enabled projects only: a disabled one is unknown here.
    let Some(project) = projects::find(&state.db, &name).await? else {
        return Ok(xml(StatusCode::NOT_FOUND, drupal::unknown_project(&name)));
    };
    let no_releases = || xml(StatusCode::NOT_FOUND, drupal::no_releases(&name, &api_text));
    // `current` and the cores its versions name are stored; another `N.x` (`10.x` of a project
    // with semantic versions) is rendered now.
    let Some(api @ drupal::Api::Core(_)) = drupal::Api::parse(&api_text) else {
        return Ok(no_releases());
    };
    let releases = releases::for_project(&state.db, project.id).await?;
    match documents::drupal_xml(&project, &releases, api, &state.public_url)
        .map_err(anyhow::Error::from)?
    {
        Some(feed) => Ok(xml(StatusCode::OK, feed)),
        None => Ok(no_releases()),
    }
}

/// `GET /packages.json`: where Composer finds each package's metadata, and which exist.
pub async fn composer_root(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    stored(&state, "/packages.json", &headers, || {
        Missing::Document("/packages.json".into())
    })
    .await
}

/// `GET /p2/{vendor}/{package}.json` and `~dev.json`.
pub async fn composer_metadata(
    State(state): State<AppState>,
    Path((vendor, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let key = format!("/p2/{vendor}/{file}");
    stored(&state, &key, &headers, || Missing::Package { vendor, file }).await
}

/// `GET /projects/{project}/releases.atom`.
pub async fn project_atom(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let key = format!("/projects/{name}/releases.atom");
    if let Some(feed) = documents::serve(&state, &key, &headers).await? {
        return Ok(feed);
    }
    find_public_project(&state, &name).await?;
    Err(Missing::Document(key).into())
}

/// `GET /releases.atom`: every project's releases.
pub async fn all_atom(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    stored(&state, "/releases.atom", &headers, || {
        Missing::Document("/releases.atom".into())
    })
    .await
}

/// The stored document at `key`, or the 404 that `missing` describes.
async fn stored(
    state: &AppState,
    key: &str,
    headers: &HeaderMap,
    missing: impl FnOnce() -> Missing,
) -> Result<Response, AppError> {
    documents::serve(state, key, headers)
        .await?
        .ok_or_else(|| missing().into())
}
