//! `GET /admin/notifications`: the subscribers, and the recent notifications with every
//! attempt (status, time, latency), each with a button that sends it again.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::admin::done_at;
use super::notifications_api::LISTED_MESSAGES;
use super::pages::Page;
use super::session::{AdminForm, AdminSession, Flash};
use crate::error::AppError;
use crate::notify::SubscriberView;
use crate::notify::subscribers::{self, MessageView};

#[derive(Template)]
#[template(path = "admin-notifications.html")]
pub struct NotificationsPage {
    actor: String,
    csrf: String,
    flash: Option<Flash>,
    subscribers: Vec<SubscriberView>,
    messages: Vec<MessageView>,
}

pub async fn notifications(
    State(state): State<AppState>,
    AdminSession { mut session, actor }: AdminSession,
) -> Result<Response, AppError> {
    let page = NotificationsPage {
        actor: actor.to_string(),
        csrf: session.csrf(),
        flash: session.take_flash(),
        subscribers: subscribers::list(&state.db).await?,
        messages: subscribers::recent_messages(&state.db, LISTED_MESSAGES).await?,
    };
    Ok((session.into_jar(), Page(page)).into_response())
}

pub async fn resend(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    form: AdminForm,
) -> Result<Response, AppError> {
    let outcome = state
        .actions
        .resend_notification(&form.actor, id)
        .await
        .map(|()| format!("Notification {id} will be sent again at once."));
    done_at(form, outcome, "/admin/notifications")
}
