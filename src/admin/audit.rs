//! The audit log: one row per admin action, written in the same transaction as the action
//! itself (see [`super::AdminActions`]), so an action is never done unrecorded or recorded
//! undone.

use entities::audit_entry;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryOrder, QuerySelect,
};
use serde::Serialize;

use super::Actor;

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    QueuePause,
    QueueResume,
    QueueFlush,
    ItemDelete,
    ItemRetry,
    ProjectRebuild,
    TokenCreate,
    TokenRevoke,
    NotificationAdd,
    NotificationRemove,
    NotificationResend,
    Login,
    Logout,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::QueuePause => "queue.pause",
            AuditAction::QueueResume => "queue.resume",
            AuditAction::QueueFlush => "queue.flush",
            AuditAction::ItemDelete => "item.delete",
            AuditAction::ItemRetry => "item.retry",
            AuditAction::ProjectRebuild => "project.rebuild",
            AuditAction::TokenCreate => "token.create",
            AuditAction::TokenRevoke => "token.revoke",
            AuditAction::NotificationAdd => "notification.add",
            AuditAction::NotificationRemove => "notification.remove",
            AuditAction::NotificationResend => "notification.resend",
            AuditAction::Login => "session.login",
            AuditAction::Logout => "session.logout",
        }
    }
}

/// Writes one row (on `conn`, usually the action's own transaction).
pub async fn record<C: ConnectionTrait>(
    conn: &C,
    actor: &Actor,
    action: AuditAction,
    target: &str,
    detail: Option<String>,
) -> Result<(), DbErr> {
    audit_entry::ActiveModel {
        at: Set(crate::time::now_millis()),
        actor: Set(actor.as_str().to_string()),
        action: Set(action.as_str().to_string()),
        target: Set(target.to_string()),
        detail: Set(detail),
        ..Default::default()
    }
    .insert(conn)
    .await?;
    Ok(())
}

/// One row of `GET /api/v1/audit` and of the admin page's log.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntryView {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: Option<String>,
}

/// The latest `limit` entries, newest first.
pub async fn recent(db: &DatabaseConnection, limit: u64) -> Result<Vec<AuditEntryView>, DbErr> {
    Ok(audit_entry::Entity::find()
        .order_by_desc(audit_entry::Column::Id)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(|e| AuditEntryView {
            id: e.id,
            at: super::rfc3339(e.at),
            actor: e.actor,
            action: e.action,
            target: e.target,
            detail: e.detail,
        })
        .collect())
}
