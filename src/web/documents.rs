//! Publish-time documents, rendered and served. [`refresh_on`] renders every document readers
//! fetch most from the rows, in the transaction that changed them, and `crate::documents`
//! stores those whose bytes changed. A request for one ([`serve`]) is then one read by primary
//! key, answered with the stored bytes, `ETag` and `Last-Modified`, or 304.
//!
//! The documents (keys are their URL paths):
//! - `/packages.json`, and each package's `/p2/{name}.json` and `/p2/{name}~dev.json`;
//! - `/releases.atom`, and each project's `/projects/{p}/releases.atom`;
//! - each project's Drupal feeds `/release-history/{p}/current` and `…/{N}.x` for every core
//!   its versions name;
//! - `/api/v1/projects`, each `/api/v1/projects/{p}` and `/api/v1/projects/{p}/releases`
//!   (the newest 100, with its `Link`);
//! - each project page `/projects/{p}` and its history pages `/projects/{p}?page=N`.
//!
//! A refresh reads every project's rows (two queries: who owns a Composer name depends on
//! every project, and so do the documents about all projects). After a release it renders the
//! documents of that project, of the projects whose Composer standing it can change, and the
//! documents about all projects ([`Scope::Project`]); at start and after the config's projects
//! sync, everything ([`Scope::All`]). Only what changed is written.

use std::collections::{BTreeSet, HashSet};

use askama::Template;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use entities::document;
use sea_orm::ConnectionTrait;
use serde_json::json;

use super::PublicUrl;
use super::api::{MAX_RELEASES_PER_PAGE, ProjectDetail};
use super::pages::project_pages;
use super::paging::Paging;
use super::views::{ProjectView, ReleaseView};
use crate::documents::{self, Changing, Rendered};
use crate::projects::Project;
use crate::publish::composer::{self, Entry, Repository};
use crate::publish::{LineVersion, atom, drupal, published_newest_first};
use crate::releases::ReleaseWithFiles;
use crate::store::ArtifactStore;

const JSON: &str = "application/json";
const HTML: &str = "text/html; charset=utf-8";
const XML: &str = "application/xml; charset=utf-8";
const ATOM: &str = "application/atom+xml; charset=utf-8";

/// What may hold a document: any cache, a CDN's included, as long as it asks again before
/// each use (`no-cache`); asking again costs a 304 from the stored `ETag`, and a reader never
/// gets a document older than the releases.
pub const CACHE_CONTROL: &str = "public, no-cache";

/// Why a refresh failed.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("rendering: {0}")]
    Render(#[from] askama::Error),
    #[error("rendering JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("storing documents: {0}")]
    Store(#[from] documents::StoreDocumentsError),
}

/// [`refresh_on`] for project `id`, as an admin action that adds or removes a project calls
/// it (`AdminActions::add_project`, `remove_project`): a failure is the action's, which then
/// rolls back.
pub async fn refresh_project_on<C: ConnectionTrait>(
    db: &C,
    id: i64,
    store: &dyn ArtifactStore,
) -> Result<Changing, crate::admin::AdminError> {
    refresh_on(db, Scope::Project(id), store)
        .await
        .map_err(|e| crate::admin::AdminError::Documents(e.to_string()))
}

/// Renders the documents `scope` names from the rows as `db` (a transaction) sees them and
/// stores what changed. Documents link to the URL the web server recorded; before any server has run
/// there is no reader and nothing to render. Call it in the transaction that changed
/// releases or projects, after the change.
///
/// Hold the returned [`Changing`] until the transaction has committed: until then, readers in
/// this process read the database rather than their copies.
pub async fn refresh_on<C: ConnectionTrait>(
    db: &C,
    scope: Scope,
    store: &dyn ArtifactStore,
) -> Result<Changing, RefreshError> {
    let changing = Changing::begin();
    let started = std::time::Instant::now();
    documents::lock_on(db).await?;
    let locked_ms = started.elapsed().as_millis() as u64;
    let Some(url) = documents::public_url(db).await? else {
        return Ok(changing);
    };
    let url = PublicUrl(url.into());
    let repository = Repository::load(db).await?;
    let loaded_ms = started.elapsed().as_millis() as u64;
    let only = match scope {
        Scope::All => None,
        Scope::Project(id) => Some(repository.touched_by(id)),
    };
    let rendered = render(&repository, &url, only.as_ref())?;
    let rendered_ms = started.elapsed().as_millis() as u64;
    let changes = documents::replace_on(db, rendered, only.as_ref(), store).await?;
    // Always, not only when a document changed: what a download finds (a rebuilt snapshot's
    // checksum, a disabled project) is read through the same copies.
    documents::announce_on(db).await?;
    tracing::debug!(
        written = changes.written,
        removed = changes.removed,
        unchanged = changes.unchanged,
        locked_ms,
        loaded_ms,
        rendered_ms,
        total_ms = started.elapsed().as_millis() as u64,
        "documents refreshed"
    );
    Ok(changing)
}

/// What a refresh renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every document.
    All,
    /// After a change to this project's releases: its documents, those of the projects its
    /// Composer claims touch, and those about all projects.
    Project(i64),
}

/// [`refresh_on`] in a transaction of its own: after a change made outside one (projects
/// synced from the config file).
pub async fn refresh(
    db: &sea_orm::DatabaseConnection,
    store: &dyn ArtifactStore,
) -> anyhow::Result<()> {
    let txn = crate::db::begin_write(db).await?;
    let changing = refresh_on(&txn, Scope::All, store).await?;
    txn.commit().await?;
    drop(changing);
    Ok(())
}

/// Records `url` as where readers reach baler and renders every document for it, in one
/// transaction (the web server, when it starts: its URL, its templates or the projects may
/// have changed since the documents were written).
pub async fn publish_all(
    db: &sea_orm::DatabaseConnection,
    url: &str,
    store: &dyn ArtifactStore,
) -> anyhow::Result<()> {
    let txn = crate::db::begin_write(db).await?;
    documents::set_public_url(&txn, url).await?;
    let changing = refresh_on(&txn, Scope::All, store).await?;
    txn.commit().await?;
    drop(changing);
    Ok(())
}

/// The documents about all projects, and those of the projects in `only` (all when `None`).
pub fn render(
    repository: &Repository,
    url: &PublicUrl,
    only: Option<&HashSet<i64>>,
) -> Result<Vec<Rendered>, RefreshError> {
    let chosen = |id: i64| only.is_none_or(|ids| ids.contains(&id));
    let mut rendered = Vec::new();
    let enabled: Vec<&Entry> = repository
        .entries()
        .iter()
        .filter(|entry| !entry.project.is_disabled())
        .collect();
    let mut views = Vec::with_capacity(enabled.len());
    for entry in &enabled {
        let view = ProjectView::new(entry, url);
        if chosen(entry.project.id) {
            project_documents(entry, &view, url, &mut rendered)?;
        }
        views.push(view);
    }
    rendered.push(json_document("/api/v1/projects".into(), None, &views)?);
    composer_documents(repository, url, &chosen, &mut rendered)?;
    let pairs: Vec<(&Project, &ReleaseWithFiles)> = enabled
        .iter()
        .flat_map(|entry| entry.releases.iter().map(move |r| (&entry.project, r)))
        .collect();
    rendered.push(Rendered {
        key: "/releases.atom".into(),
        project_id: None,
        content_type: ATOM,
        body: atom_text(
            "All releases",
            &pairs,
            format!("{}/releases.atom", url.0),
            format!("{}/", url.0),
            url,
        )
        .into_bytes(),
        link: None,
    });
    Ok(rendered)
}

/// One project's pages, JSON, Drupal feeds and Atom feed.
fn project_documents(
    entry: &Entry,
    view: &ProjectView,
    url: &PublicUrl,
    rendered: &mut Vec<Rendered>,
) -> Result<(), RefreshError> {
    let project = &entry.project;
    let id = Some(project.id);
    let base = format!("/projects/{}", project.name);
    for (page, html) in project_pages(view)?.into_iter().enumerate() {
        let key = match page {
            0 => base.clone(),
            n => format!("{base}?page={}", n + 1),
        };
        rendered.push(Rendered {
            key,
            project_id: id,
            content_type: HTML,
            body: html.into_bytes(),
            link: None,
        });
    }
    let detail = ProjectDetail {
        releases: view.releases.clone(),
        project: view.clone(),
    };
    rendered.push(json_document(
        format!("/api/v1/projects/{}", project.name),
        id,
        &detail,
    )?);
    let (first_page, link) = releases_page(project, &entry.releases, url, None);
    let mut list = json_document(
        format!("/api/v1/projects/{}/releases", project.name),
        id,
        &first_page,
    )?;
    list.link = link;
    rendered.push(list);
    for api in drupal_apis(&entry.releases) {
        if let Some(xml) = drupal_xml(project, &entry.releases, api, url)? {
            let name = match api {
                drupal::Api::Current => "current".to_string(),
                drupal::Api::Core(core) => format!("{core}.x"),
            };
            rendered.push(Rendered {
                key: format!("/release-history/{}/{name}", project.name),
                project_id: id,
                content_type: XML,
                body: xml.into_bytes(),
                link: None,
            });
        }
    }
    let pairs: Vec<(&Project, &ReleaseWithFiles)> =
        entry.releases.iter().map(|r| (project, r)).collect();
    rendered.push(Rendered {
        key: format!("{base}/releases.atom"),
        project_id: id,
        content_type: ATOM,
        body: atom_text(
            &format!("{} releases", project.title),
            &pairs,
            format!("{}/releases.atom", url.project(&project.name)),
            url.project(&project.name),
            url,
        )
        .into_bytes(),
        link: None,
    });
    Ok(())
}

/// One page of a project's published releases, newest first, and its `Link` header; `None`
/// is the first page of [`MAX_RELEASES_PER_PAGE`].
pub fn releases_page(
    project: &Project,
    releases: &[ReleaseWithFiles],
    url: &PublicUrl,
    paging: Option<Paging>,
) -> (Vec<ReleaseView>, Option<String>) {
    let paging = paging.unwrap_or(Paging {
        page: 1,
        per_page: MAX_RELEASES_PER_PAGE,
    });
    let published = published_newest_first(releases);
    let views = paging
        .slice(&published)
        .iter()
        .map(|r| ReleaseView::new(&project.name, r, url))
        .collect();
    let base = format!("{}/api/v1/projects/{}/releases", url.0, project.name);
    (views, paging.link(&base, published.len()))
}

/// The feeds worth rendering ahead: `current`, and each core a version names (`7.x` for
/// `7.x-1.0`). Other `N.x` feeds are rendered on request.
fn drupal_apis(releases: &[ReleaseWithFiles]) -> BTreeSet<drupal::Api> {
    let mut apis: BTreeSet<drupal::Api> = releases
        .iter()
        .filter_map(|r| LineVersion::parse(&r.release.version)?.core)
        .map(drupal::Api::Core)
        .collect();
    apis.insert(drupal::Api::Current);
    apis
}

/// The Drupal update feed of `project` for `api`, or `None` when no release is in it.
pub fn drupal_xml(
    project: &Project,
    releases: &[ReleaseWithFiles],
    api: drupal::Api,
    url: &PublicUrl,
) -> Result<Option<String>, askama::Error> {
    let release_link = |version: &str| url.release(&project.name, version);
    let file_link = |file: &str| url.file(&project.name, file);
    let links = drupal::Links {
        release: &release_link,
        file: &file_link,
        project: url.project(&project.name),
    };
    drupal::feed(project, releases, api, &links)
        .map(|feed| feed.render())
        .transpose()
}

/// `/packages.json` and each published package's two metadata files.
fn composer_documents(
    repository: &Repository,
    url: &PublicUrl,
    chosen: &dyn Fn(i64) -> bool,
    rendered: &mut Vec<Rendered>,
) -> Result<(), RefreshError> {
    let packages = repository.packages();
    let names: Vec<&str> = packages.iter().map(|p| p.name.as_str()).collect();
    let root = json!({
        "packages": [],
        "metadata-url": format!("{}/p2/%package%.json", url.0),
        "available-packages": names,
    });
    rendered.push(json_document("/packages.json".into(), None, &root)?);
    for package in packages.iter().filter(|p| chosen(p.project.id)) {
        let file_url = |f: &str| url.file(&package.project.name, f);
        for (suffix, dev) in [("", false), ("~dev", true)] {
            rendered.push(json_document(
                format!("/p2/{}{suffix}.json", package.name),
                Some(package.project.id),
                &composer::metadata(package, dev, &file_url),
            )?);
        }
    }
    Ok(())
}

fn json_document<T: serde::Serialize>(
    key: String,
    project_id: Option<i64>,
    value: &T,
) -> Result<Rendered, serde_json::Error> {
    Ok(Rendered {
        key,
        project_id,
        content_type: JSON,
        body: serde_json::to_vec(value)?,
        link: None,
    })
}

/// An Atom feed of `pairs`' published releases (the newest [`atom::ENTRIES`]).
fn atom_text(
    title: &str,
    pairs: &[(&Project, &ReleaseWithFiles)],
    this: String,
    page: String,
    url: &PublicUrl,
) -> String {
    let release = |p: &Project, version: &str| url.release(&p.name, version);
    let file = |p: &Project, name: &str| url.file(&p.name, name);
    let links = atom::FeedLinks {
        this,
        page,
        release: &release,
        file: &file,
    };
    atom::feed(title, pairs, &links).to_string()
}

/// A stored document as requests are answered from it, headers ready.
pub struct Served {
    body: bytes::Bytes,
    etag: HeaderValue,
    last_modified: HeaderValue,
    modified_at: i64,
    content_type: HeaderValue,
    link: Option<HeaderValue>,
}

impl Served {
    /// A stored document as served; its bytes from `store` when its row holds none.
    async fn load(document: document::Model, store: &dyn ArtifactStore) -> anyhow::Result<Served> {
        let mut document = document;
        if document.body.is_empty() && store.keeps_documents() {
            document.body = store
                .get_document(documents::stored_name(&document.etag))
                .await?;
        }
        Ok(Served::new(document))
    }

    fn new(document: document::Model) -> Served {
        let header = |text: &str| {
            HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
        };
        let modified = crate::time::from_seconds(document.modified_at);
        Served {
            etag: header(&document.etag),
            last_modified: header(&httpdate::fmt_http_date(modified.into())),
            modified_at: document.modified_at,
            content_type: header(&document.content_type),
            link: document.link.as_deref().map(header),
            body: document.body.into(),
        }
    }
}

/// This process's copies of stored documents (`crate::documents::ReadCache`).
pub type DocumentCache = std::sync::Arc<documents::ReadCache<std::sync::Arc<Served>>>;

/// The stored document at `key`, answered as its request asks: 304 when the client's copy
/// (`If-None-Match`, else `If-Modified-Since`) is current, else the bytes. `None` when there
/// is no such document.
pub async fn serve(
    state: &super::AppState,
    key: &str,
    request: &HeaderMap,
) -> anyhow::Result<Option<Response>> {
    Ok(load(state, key)
        .await?
        .map(|document| respond(&document, request)))
}

/// This process's copy of the document stored under `key`, or the stored one.
async fn load(
    state: &super::AppState,
    key: &str,
) -> anyhow::Result<Option<std::sync::Arc<Served>>> {
    state
        .documents
        .get_or_load(key, async || {
            let Some(document) = documents::find(&state.db, key).await? else {
                return Ok::<_, anyhow::Error>(None);
            };
            let served = Served::load(document, state.store.as_ref()).await?;
            Ok(Some(std::sync::Arc::new(served)))
        })
        .await
}

/// The bytes of the document stored under `key`, read as [`serve`] reads them.
pub async fn body_of(state: &super::AppState, key: &str) -> anyhow::Result<Option<bytes::Bytes>> {
    Ok(load(state, key)
        .await?
        .map(|document| document.body.clone()))
}

fn respond(document: &Served, request: &HeaderMap) -> Response {
    let current = match request.get(header::IF_NONE_MATCH) {
        Some(tags) => super::headers::lists_etag(tags, document.etag.to_str().unwrap_or_default()),
        None => super::headers::if_modified_since(request)
            .is_some_and(|since| document.modified_at <= since.timestamp()),
    };
    let mut response = Response::new(if current {
        Body::empty()
    } else {
        Body::from(document.body.clone())
    });
    if current {
        *response.status_mut() = StatusCode::NOT_MODIFIED;
    }
    let headers = response.headers_mut();
    headers.insert(header::ETAG, document.etag.clone());
    headers.insert(header::LAST_MODIFIED, document.last_modified.clone());
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    if !current {
        headers.insert(header::CONTENT_TYPE, document.content_type.clone());
        if let Some(link) = &document.link {
            headers.insert(header::LINK, link.clone());
        }
    }
    response
}

/// How often a web server looks for refreshes made by other processes (on PostgreSQL it is
/// also told at once, by a notification).
pub const WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// Watches for refreshes made by other processes (`baler worker`, another server's start)
/// until `stop`: each one ends this process's copies. On PostgreSQL a `LISTEN` hears of them
/// as they commit; on both databases the version row is polled every [`WATCH_INTERVAL`].
pub async fn watch_other_processes(
    db: sea_orm::DatabaseConnection,
    stop: impl std::future::Future<Output = ()>,
) {
    let listening = listen_for_refreshes(&db);
    let polling = async {
        let mut seen = documents::version(&db).await.ok().flatten();
        loop {
            tokio::time::sleep(WATCH_INTERVAL).await;
            match documents::version(&db).await {
                Ok(now) if now != seen => {
                    documents::changed_elsewhere();
                    seen = now;
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "could not read the documents' version"),
            }
        }
    };
    tokio::select! {
        _ = stop => {}
        _ = polling => {}
        _ = listening => {}
    }
}

/// On PostgreSQL, ends this process's copies whenever a refresh commits anywhere; elsewhere
/// never resolves.
async fn listen_for_refreshes(db: &sea_orm::DatabaseConnection) {
    if db.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
        return std::future::pending().await;
    }
    let pool = db.get_postgres_connection_pool().clone();
    loop {
        match sea_orm::sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(mut listener) => match listener.listen(documents::NOTIFY_CHANNEL).await {
                Ok(()) => {
                    // `recv` reconnects by itself; what was missed meanwhile, the poll sees.
                    while listener.recv().await.is_ok() {
                        documents::changed_elsewhere();
                    }
                }
                Err(e) => tracing::warn!(error = %e, "LISTEN for document refreshes failed"),
            },
            Err(e) => tracing::warn!(error = %e, "could not open a listening connection"),
        }
        tokio::time::sleep(WATCH_INTERVAL).await;
    }
}
