//! The audit log: one row per admin action, written in the same transaction as the action
//! itself (see [`super::AdminActions`]), so an action is never done unrecorded or recorded
//! undone.

use entities::audit_entry;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
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
    ProjectAdd,
    ProjectRemove,
    ProjectSecret,
    ProjectConnect,
    ProjectDisconnect,
    ReleaseRequest,
    ReleaseSign,
    TokenCreate,
    TokenRevoke,
    NotificationAdd,
    NotificationRemove,
    NotificationResend,
    RetentionRelease,
    RetentionFiles,
    RetentionItems,
    RetentionAudit,
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
            AuditAction::ProjectAdd => "project.add",
            AuditAction::ProjectRemove => "project.remove",
            AuditAction::ProjectSecret => "project.secret",
            AuditAction::ProjectConnect => "project.connect",
            AuditAction::ProjectDisconnect => "project.disconnect",
            AuditAction::ReleaseRequest => "release.request",
            AuditAction::ReleaseSign => "release.sign",
            AuditAction::TokenCreate => "token.create",
            AuditAction::TokenRevoke => "token.revoke",
            AuditAction::NotificationAdd => "notification.add",
            AuditAction::NotificationRemove => "notification.remove",
            AuditAction::NotificationResend => "notification.resend",
            AuditAction::RetentionRelease => "retention.release",
            AuditAction::RetentionFiles => "retention.files",
            AuditAction::RetentionItems => "retention.items",
            AuditAction::RetentionAudit => "retention.audit",
            AuditAction::Login => "session.login",
            AuditAction::Logout => "session.logout",
        }
    }
}

/// Removes the rows older than `before` (Unix milliseconds), for retention. Returns how many.
pub async fn prune_on<C: ConnectionTrait>(conn: &C, before: i64) -> Result<u64, DbErr> {
    Ok(audit_entry::Entity::delete_many()
        .filter(audit_entry::Column::At.lt(before))
        .exec(conn)
        .await?
        .rows_affected)
}

/// How many rows are older than `before`: what [`prune_on`] would remove.
pub async fn count_before(db: &DatabaseConnection, before: i64) -> Result<u64, DbErr> {
    audit_entry::Entity::find()
        .filter(audit_entry::Column::At.lt(before))
        .count(db)
        .await
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
