//! HTTP: routes, pages, downloads, the API and the webhook endpoint. Handlers extract, call the
//! domain and render; they never touch git.

mod admin;
mod api;
pub mod auth;
mod feeds;
mod files;
mod hooks;
mod pages;
mod queue_api;
pub mod router;
pub mod session;
mod views;

use std::sync::Arc;

use axum::extract::FromRef;
use sea_orm::DatabaseConnection;

use crate::queue::Queue;
use crate::store::LocalStore;

/// Everything a handler may need; cheap to clone.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub queue: Queue,
    pub store: LocalStore,
    pub public_url: PublicUrl,
    pub tokens: crate::admin::AdminTokens,
    pub actions: crate::admin::AdminActions,
    pub sessions: session::Sessions,
    pub deliveries: crate::deliveries::DeliveryLog,
    pub projects: crate::projects::ProjectCache,
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
