//! HTTP: routes, pages, downloads, the API and the webhook endpoint. Handlers extract, call the
//! domain and render; they never touch git.

mod admin;
mod admin_notifications;
mod admin_projects;
mod admin_storage;
mod api;
pub mod auth;
pub mod body;
pub mod client;
pub mod documents;
mod feeds;
mod files;
mod headers;
mod hooks;
mod items_api;
mod notifications_api;
mod pages;
mod paging;
mod projects_api;
mod queue_api;
pub mod router;
pub mod server;
pub mod session;
mod stats;
mod views;

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::queue::Queue;
use crate::store::Store;

/// Everything a handler may need. Cloned for every request, so it is one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct Shared {
    pub db: DatabaseConnection,
    pub queue: Queue,
    pub store: Store,
    pub public_url: PublicUrl,
    pub tokens: crate::admin::AdminTokens,
    pub actions: crate::admin::AdminActions,
    pub sessions: session::Sessions,
    /// Webhook deliveries: what they change and how they are answered.
    pub intake: crate::intake::Intake,
    pub http: Arc<crate::config::HttpLimits>,
    pub body_budget: body::BodyBudget,
    pub auth_throttle: crate::admin::AuthThrottle,
    /// This process's copies of the stored documents.
    pub documents: documents::DocumentCache,
    /// This process's copies of what a download needs to know of its file.
    pub files: files::FileCache,
    /// The budget for small archives kept in memory.
    pub file_memory: files::FileMemory,
    /// Downloads counted in memory until the next flush.
    pub downloads: crate::downloads::DownloadCounter,
    /// `[schedule] rescan_every`: the rescans of projects added through the API.
    pub rescan_every: Option<std::time::Duration>,
    /// `[retention]`, for the storage page's forecast of the next run.
    pub retention: crate::retention::RetentionPolicy,
    /// Connects projects' webhooks on their hosts.
    pub connector: crate::connect::Connector,
    /// What the config file says about reaching each of its projects' host APIs.
    pub connect_credentials: Arc<std::collections::HashMap<String, crate::connect::Credentials>>,
}

impl AppState {
    /// How to reach project `name`'s host API, as the config file says (nothing for a project
    /// it does not hold).
    pub fn credentials(&self, name: &str) -> crate::connect::Credentials {
        self.connect_credentials
            .get(name)
            .cloned()
            .unwrap_or_default()
    }

    /// The web server's state for `config`, its links based at `public_url`.
    pub async fn new(
        config: &crate::config::Config,
        db: DatabaseConnection,
        queue: Queue,
        store: Store,
        public_url: &str,
    ) -> anyhow::Result<AppState> {
        use anyhow::Context;
        let session_key = crate::admin::keys::session_key(&db)
            .await
            .context("reading the admin session key")?;
        let actions = crate::admin::AdminActions::new(db.clone(), queue.clone());
        let connector = crate::connect::Connector::new(
            db.clone(),
            actions.clone(),
            config.public_url.as_deref(),
            crate::connect::PING_WAIT,
        )?;
        let connect_credentials = config
            .projects
            .iter()
            .map(|p| (p.name.clone(), crate::connect::Credentials::of(p)))
            .collect();
        Ok(AppState(Arc::new(Shared {
            connector,
            connect_credentials: Arc::new(connect_credentials),
            tokens: crate::admin::AdminTokens::new(db.clone(), config.admin_token.as_deref()),
            actions,
            sessions: session::Sessions::new(&session_key, public_url.starts_with("https://"))?,
            intake: crate::intake::Intake::new(db.clone(), queue.clone(), &config.http),
            http: Arc::new(config.http.clone()),
            retention: config.retention.clone(),
            rescan_every: config.rescan_every,
            body_budget: body::BodyBudget::new(config.http.webhook_buffer_bytes),
            auth_throttle: crate::admin::AuthThrottle::new(
                db.clone(),
                queue.write_gate(),
                std::num::NonZeroU32::new(config.http.auth_failures_per_minute)
                    .context("http.auth_failures_per_minute must be at least 1")?,
            ),
            downloads: crate::downloads::DownloadCounter::new(config.http.count_downloads),
            documents: documents::DocumentCache::default(),
            files: files::FileCache::default(),
            file_memory: files::FileMemory::new(config.http.files_in_memory_bytes),
            public_url: PublicUrl(Arc::from(public_url)),
            db,
            queue,
            store,
        })))
    }
}

/// The base of absolute links in the API and feeds (`public_url`).
#[derive(Clone)]
pub struct PublicUrl(pub Arc<str>);

impl PublicUrl {
    pub fn file(&self, project: &str, name: &str) -> String {
        format!("{}/files/{project}/{name}", self.0)
    }

    pub fn project(&self, project: &str) -> String {
        format!("{}/projects/{project}", self.0)
    }

    pub fn release(&self, project: &str, version: &str) -> String {
        format!("{}/projects/{project}/releases/{version}", self.0)
    }
}
