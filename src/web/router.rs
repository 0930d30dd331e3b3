//! Every route in one place.

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use tower_http::trace::TraceLayer;

use super::{AppState, admin, admin_projects, api, feeds, files, hooks, pages, queue_api};

/// The largest body of any request but a webhook: admin forms and JSON actions.
pub const MAX_FORM_BODY: usize = 64 * 1024;

pub fn router(state: AppState) -> Router {
    Router::new()
        // The handler reads the body itself, with its own limit, so that a refusal for size
        // is logged like any other.
        .route(
            "/hooks/{project}",
            post(hooks::receive).layer(DefaultBodyLimit::disable()),
        )
        .route("/", get(pages::index))
        .route("/projects/{project}", get(pages::project))
        .route(
            "/projects/{project}/releases/{version}",
            get(pages::release),
        )
        .route(
            "/projects/{project}/releases/{version}/SHA256SUMS",
            get(files::sha256sums),
        )
        .route(
            "/projects/{project}/releases.atom",
            get(feeds::project_atom),
        )
        .route("/releases.atom", get(feeds::all_atom))
        .route("/files/{project}/{file}", get(files::download))
        .route(
            "/release-history/{project}/{api}",
            get(feeds::release_history),
        )
        .route("/packages.json", get(feeds::composer_root))
        .route("/p2/{vendor}/{file}", get(feeds::composer_metadata))
        .route("/api/v1/projects", get(api::projects))
        .route("/api/v1/projects/{project}", get(api::project))
        .route("/api/v1/projects/{project}/releases", get(api::releases))
        .route(
            "/api/v1/projects/{project}/releases/{version}",
            get(api::release),
        )
        .route("/api/v1/status", get(api::status))
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
        .route("/api/v1/deliveries", get(queue_api::deliveries))
        .route("/api/v1/audit", get(queue_api::audit))
        .route(
            "/api/v1/projects/{project}/problems",
            get(queue_api::problems),
        )
        .route(
            "/api/v1/projects/{project}/releases/{version}/log",
            get(queue_api::release_log),
        )
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
        .route("/admin/projects", get(admin_projects::projects))
        .route("/admin/projects/{project}", get(admin::project))
        .route(
            "/admin/projects/{project}/releases/{version}",
            get(admin::release),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        // Everything but the webhook (which reads its body under its own limits) takes small
        // bodies only: forms and JSON actions. The login form is open to anyone, so without
        // this a stranger could make it buffer axum's default of 2 MiB per connection.
        .layer(DefaultBodyLimit::max(MAX_FORM_BODY))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Ready when the database answers.
async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    match state.db.ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database unreachable"),
    }
}
