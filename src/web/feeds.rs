//! What other programs read: Drupal's update-status XML, the Composer repository and Atom
//! feeds. Each handler loads the rows, calls `crate::publish` and sets the caching headers;
//! everything is computed on read, so a release appears or leaves the moment its row changes.
//! Disabled projects (gone from the config file) are in none of them.

use askama::Template;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::pages::find_public_project;
use crate::error::{AppError, Missing};
use crate::projects::{self, Project};
use crate::publish::{atom, composer, drupal};
use crate::releases::{self, ReleaseWithFiles};

const XML: &str = "application/xml; charset=utf-8";

/// `GET /release-history/{project}/{api}`: `current`, or a core API like `7.x`.
pub async fn release_history(
    State(state): State<AppState>,
    Path((name, api_text)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let xml = |status: StatusCode, body: String| {
        (status, [(header::CONTENT_TYPE, XML)], body).into_response()
    };
    // Enabled projects only: a disabled one is unknown here.
    let Some(project) = projects::find(&state.db, &name).await? else {
        return Ok(xml(StatusCode::NOT_FOUND, drupal::unknown_project(&name)));
    };
    let Some(api) = drupal::Api::parse(&api_text) else {
        return Ok(xml(
            StatusCode::NOT_FOUND,
            drupal::no_releases(&name, &api_text),
        ));
    };
    let releases = releases::for_project(&state.db, project.id).await?;
    let url = &state.public_url;
    let release_link = |version: &str| url.release(&project.name, version);
    let file_link = |file: &str| url.file(&project.name, file);
    let links = drupal::Links {
        release: &release_link,
        file: &file_link,
        project: url.project(&project.name),
    };
    match drupal::feed(&project, &releases, api, &links) {
        Some(feed) => Ok(xml(
            StatusCode::OK,
            feed.render().map_err(anyhow::Error::from)?,
        )),
        None => Ok(xml(
            StatusCode::NOT_FOUND,
            drupal::no_releases(&name, &api_text),
        )),
    }
}

/// `GET /packages.json`: where Composer finds each package's metadata, and which exist.
pub async fn composer_root(State(state): State<AppState>) -> Result<Response, AppError> {
    let names: Vec<String> = composer::all_packages(&state.db)
        .await?
        .into_iter()
        .map(|p| p.name)
        .collect();
    Ok(Json(json!({
        "packages": [],
        "metadata-url": format!("{}/p2/%package%.json", state.public_url.0),
        "available-packages": names,
    }))
    .into_response())
}

/// `GET /p2/{vendor}/{package}.json` and `~dev.json`, with `Last-Modified`; a client's
/// `If-Modified-Since` that is not older gets 304.
pub async fn composer_metadata(
    State(state): State<AppState>,
    Path((vendor, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let not_found = || {
        AppError::from(Missing::Package {
            vendor: vendor.clone(),
            file: file.clone(),
        })
    };
    let stem = file.strip_suffix(".json").ok_or_else(not_found)?;
    let (package, dev) = match stem.strip_suffix("~dev") {
        Some(package) => (package, true),
        None => (stem, false),
    };
    let name = format!("{vendor}/{package}");
    let package = composer::find_package(&state.db, &name)
        .await?
        .ok_or_else(not_found)?;
    let last_modified = composer::last_modified(&package);
    if let (Some(changed), Some(since)) = (last_modified, if_modified_since(&headers))
        && changed.timestamp() <= since.timestamp()
    {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    let url = &state.public_url;
    let file_url = |f: &str| url.file(&package.project.name, f);
    let body = composer::metadata(&package, dev, &file_url);
    let mut response = Json(body).into_response();
    if let Some(changed) = last_modified {
        let value = httpdate::fmt_http_date(changed.into());
        response.headers_mut().insert(
            header::LAST_MODIFIED,
            HeaderValue::from_str(&value).map_err(anyhow::Error::from)?,
        );
    }
    Ok(response)
}

fn if_modified_since(headers: &HeaderMap) -> Option<chrono::DateTime<chrono::Utc>> {
    let text = headers.get(header::IF_MODIFIED_SINCE)?.to_str().ok()?;
    Some(httpdate::parse_http_date(text).ok()?.into())
}

/// `GET /projects/{project}/releases.atom`.
pub async fn project_atom(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, AppError> {
    let project = find_public_project(&state, &name).await?;
    let releases = releases::for_project(&state.db, project.id).await?;
    let pairs: Vec<(&Project, &ReleaseWithFiles)> =
        releases.iter().map(|r| (&project, r)).collect();
    let url = &state.public_url;
    atom_response(
        &format!("{} releases", project.title),
        &pairs,
        format!("{}/releases.atom", url.project(&project.name)),
        url.project(&project.name),
        &state,
    )
}

/// `GET /releases.atom`: every project's releases.
pub async fn all_atom(State(state): State<AppState>) -> Result<Response, AppError> {
    let mut loaded = Vec::new();
    for project in projects::list(&state.db).await? {
        let releases = releases::for_project(&state.db, project.id).await?;
        loaded.push((project, releases));
    }
    let pairs: Vec<(&Project, &ReleaseWithFiles)> = loaded
        .iter()
        .flat_map(|(p, rs)| rs.iter().map(move |r| (p, r)))
        .collect();
    let url = &state.public_url;
    atom_response(
        "All releases",
        &pairs,
        format!("{}/releases.atom", url.0),
        format!("{}/", url.0),
        &state,
    )
}

fn atom_response(
    title: &str,
    pairs: &[(&Project, &ReleaseWithFiles)],
    this: String,
    page: String,
    state: &AppState,
) -> Result<Response, AppError> {
    let url = &state.public_url;
    let release = |p: &Project, version: &str| url.release(&p.name, version);
    let file = |p: &Project, name: &str| url.file(&p.name, name);
    let links = atom::FeedLinks {
        this,
        page,
        release: &release,
        file: &file,
    };
    let feed = atom::feed(title, pairs, &links);
    Ok((
        [(header::CONTENT_TYPE, "application/atom+xml; charset=utf-8")],
        feed.to_string(),
    )
        .into_response())
}
