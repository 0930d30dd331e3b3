//! Every route in one place, grouped by who asks.

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use tower_http::trace::TraceLayer;

use super::{
    AppState, admin, admin_notifications, admin_projects, admin_storage, api, feeds, files, hooks,
    items_api, notifications_api, pages, projects_api, queue_api, stats,
};
use crate::queue::Queue;

/// The largest body of any request but a webhook: admin forms and JSON actions.
pub const MAX_FORM_BODY: usize = 64 * 1024;

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(webhook_routes())
        .merge(page_routes())
        .merge(download_routes())
        .merge(feed_routes())
        .merge(public_api_routes())
        .merge(admin_api_routes())
        .merge(admin_page_routes())
        .merge(operator_routes())
        // Everything but the webhook (which reads its body under its own limits) takes small
        // bodies only: forms and JSON actions. The login form is open to anyone, so without
        // this a stranger could make it buffer axum's default of 2 MiB per connection.
        .layer(DefaultBodyLimit::max(MAX_FORM_BODY))
        .layer(axum::middleware::from_fn(crate::metrics::count_requests))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Repository hosts.
fn webhook_routes() -> Router<AppState> {
    // The handler reads the body itself, with its own limit, so that a refusal for size is
    // logged like any other.
    Router::new().route(
        "/hooks/{project}",
        post(hooks::receive).layer(DefaultBodyLimit::disable()),
    )
}

/// Maintainers' pages.
fn page_routes() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::index))
        .route("/projects/{project}", get(pages::project))
        .route(
            "/projects/{project}/releases/{version}",
            get(pages::release),
        )
        .route("/projects/{project}/downloads.svg", get(stats::chart))
}

/// Consumers: archives and their checksums.
fn download_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/projects/{project}/releases/{version}/SHA256SUMS",
            get(files::sha256sums),
        )
        .route(
            "/projects/{project}/releases/{version}/SHA256SUMS.minisig",
            get(files::sha256sums_signature),
        )
        .route(
            "/projects/{project}/releases/{version}/provenance.intoto.jsonl",
            get(files::provenance),
        )
        .route("/.well-known/baler/minisign.pub", get(files::public_key))
        .route("/files/{project}/{file}", get(files::download))
}

/// Feeds: Atom, Drupal update status, the Composer repository.
fn feed_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/projects/{project}/releases.atom",
            get(feeds::project_atom),
        )
        .route("/releases.atom", get(feeds::all_atom))
        .route(
            "/release-history/{project}/{api}",
            get(feeds::release_history),
        )
        .route("/packages.json", get(feeds::composer_root))
        .route("/p2/{vendor}/{file}", get(feeds::composer_metadata))
}

/// The JSON API anyone may read.
fn public_api_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/projects",
            get(api::projects).post(projects_api::add),
        )
        .route(
            "/api/v1/projects/{project}",
            get(api::project).delete(projects_api::remove),
        )
        .route(
            "/api/v1/projects/{project}/releases",
            // POST: a release request, with a `release` or `admin` token.
            get(api::releases).post(items_api::request_release),
        )
        .route(
            "/api/v1/projects/{project}/releases/{version}",
            get(api::release),
        )
        .route(
            "/api/v1/projects/{project}/stats",
            get(stats::project_stats),
        )
        .route("/api/v1/status", get(api::status))
}

/// The admin API (Bearer tokens).
fn admin_api_routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/queue", get(queue_api::list))
        .route("/api/v1/queue/pause", post(queue_api::pause))
        .route("/api/v1/queue/resume", post(queue_api::resume))
        .route("/api/v1/queue/flush", post(queue_api::flush))
        .route("/api/v1/queue/{id}", delete(queue_api::delete))
        .route("/api/v1/queue/{id}/retry", post(queue_api::retry))
        .route(
            "/api/v1/projects/{project}/rebuild",
            post(queue_api::rebuild),
        )
        .route(
            "/api/v1/projects/{project}/connect",
            post(projects_api::connect).delete(projects_api::disconnect),
        )
        .route("/api/v1/deliveries", get(queue_api::deliveries))
        // Scoped tokens too: the handler checks scope and project.
        .route("/api/v1/items/{id}", get(items_api::item))
        .route(
            "/api/v1/notifications",
            get(notifications_api::list).post(notifications_api::add),
        )
        .route(
            "/api/v1/notifications/{id}",
            delete(notifications_api::remove),
        )
        .route(
            "/api/v1/notifications/messages/{id}/resend",
            post(notifications_api::resend),
        )
        .route("/api/v1/audit", get(queue_api::audit))
        .route(
            "/api/v1/projects/{project}/problems",
            get(queue_api::problems),
        )
        .route(
            "/api/v1/projects/{project}/releases/{version}/log",
            get(queue_api::release_log),
        )
}

/// The admin pages (a session cookie; forms carry a CSRF token).
fn admin_page_routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(admin::home))
        .route("/admin/login", get(admin::login_form).post(admin::login))
        .route("/admin/logout", post(admin::logout))
        .route("/admin/queue", get(admin::queue))
        .route("/admin/queue/pause", post(admin::pause))
        .route("/admin/queue/resume", post(admin::resume))
        .route("/admin/queue/flush", post(admin::flush))
        .route("/admin/queue/rebuild", post(admin::rebuild))
        .route("/admin/queue/{id}/delete", post(admin::delete))
        .route("/admin/queue/{id}/retry", post(admin::retry))
        .route("/admin/deliveries", get(admin::deliveries))
        .route(
            "/admin/notifications",
            get(admin_notifications::notifications),
        )
        .route(
            "/admin/notifications/{id}/resend",
            post(admin_notifications::resend),
        )
        .route("/admin/projects", get(admin_projects::projects))
        .route("/admin/storage", get(admin_storage::storage))
        .route("/admin/projects/{project}", get(admin::project))
        .route(
            "/admin/projects/{project}/connect",
            post(admin::connect_project),
        )
        .route(
            "/admin/projects/{project}/releases/{version}",
            get(admin::release),
        )
}

/// Operators: liveness, readiness and metrics.
fn operator_routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(|State(state): State<AppState>| async move { metrics(&state.queue).await }),
        )
        .route("/favicon.svg", get(favicon))
        // Asked for by pages that cannot link to an icon (an SVG opened on its own).
        .route("/favicon.ico", get(favicon))
        .route("/readyz", get(readyz))
}

/// `GET /metrics` on the web listener and on `metrics_listen`: the queue gauge is read from
/// the database, so every process reports the same queue.
pub async fn metrics(queue: &Queue) -> axum::response::Response {
    let queue_items = match queue.counts_by_state().await {
        Ok(counts) => counts
            .into_iter()
            .map(|(state, count)| (state.to_string(), count))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "reading the queue for /metrics failed");
            Vec::new()
        }
    };
    crate::metrics::render(&queue_items)
}

/// What `metrics_listen` serves: `/metrics` alone.
pub fn metrics_router(queue: Queue) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(queue): State<Queue>| async move { metrics(&queue).await }),
        )
        .with_state(queue)
}

/// The icon every page links to (browsers ask for one; without it, `/favicon.ico` is a 404
/// in every page's console): a bale, in the pages' colours.
async fn favicon() -> impl axum::response::IntoResponse {
    (
        [
            (axum::http::header::CONTENT_TYPE, "image/svg+xml"),
            (axum::http::header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        FAVICON,
    )
}

const FAVICON: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 16 16\">\
<rect x=\"1\" y=\"3\" width=\"14\" height=\"10\" rx=\"2\" fill=\"#c9a227\"/>\
<path d=\"M5 3v10M11 3v10\" stroke=\"#222\" stroke-width=\"1.2\"/></svg>";

/// Ready when the database answers.
async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match state.db.ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database unreachable"),
    }
}
