//! Every admin action, once. The API, the admin page and the command line call these, and
//! each writes its audit row in the same transaction as the change, so no front end can act
//! without leaving a record.

use entities::ended_session;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use super::audit::{self, AuditAction};
use super::tokens::{self, NewToken};
use super::{Actor, AdminError};
use crate::db::begin_write;
use crate::projects;
use crate::queue::{Enqueued, Queue};

#[derive(Clone)]
pub struct AdminActions {
    db: DatabaseConnection,
    queue: Queue,
}

impl AdminActions {
    pub fn new(db: DatabaseConnection, queue: Queue) -> AdminActions {
        AdminActions { db, queue }
    }

    /// Stops claiming new items (running jobs finish; webhooks still queue).
    pub async fn pause(&self, actor: &Actor) -> Result<(), AdminError> {
        self.set_paused(actor, true).await
    }

    pub async fn resume(&self, actor: &Actor) -> Result<(), AdminError> {
        self.set_paused(actor, false).await
    }

    async fn set_paused(&self, actor: &Actor, paused: bool) -> Result<(), AdminError> {
        let action = if paused {
            AuditAction::QueuePause
        } else {
            AuditAction::QueueResume
        };
        let txn = begin_write(&self.db).await?;
        self.queue.set_paused_on(&txn, paused).await?;
        audit::record(&txn, actor, action, "queue", None).await?;
        txn.commit().await?;
        self.queue.announce().await;
        Ok(())
    }

    /// Removes every pending item; running and failed ones stay. Returns how many went.
    pub async fn flush(&self, actor: &Actor) -> Result<u64, AdminError> {
        let txn = begin_write(&self.db).await?;
        let removed = self.queue.flush_on(&txn).await?;
        let detail = format!("removed {removed} pending items");
        audit::record(&txn, actor, AuditAction::QueueFlush, "queue", Some(detail)).await?;
        txn.commit().await?;
        Ok(removed)
    }

    /// Removes one item that is not running.
    pub async fn delete(&self, actor: &Actor, id: i64) -> Result<(), AdminError> {
        let txn = begin_write(&self.db).await?;
        self.queue.delete_on(&txn, id).await?;
        audit::record(&txn, actor, AuditAction::ItemDelete, &item(id), None).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Queues a failed item's refs again, with fresh attempts.
    pub async fn retry(&self, actor: &Actor, id: i64) -> Result<Enqueued, AdminError> {
        let txn = begin_write(&self.db).await?;
        let queued = self.queue.retry_on(&txn, id).await?;
        let detail = format!(
            "queued as item {} at position {}",
            queued.item, queued.position
        );
        audit::record(&txn, actor, AuditAction::ItemRetry, &item(id), Some(detail)).await?;
        txn.commit().await?;
        self.queue.announce().await;
        Ok(queued)
    }

    /// Queues a rescan of every branch and tag of `project` that its patterns match. A
    /// disabled project is refused: nothing builds for a project that left the config.
    pub async fn rebuild(&self, actor: &Actor, project: &str) -> Result<Enqueued, AdminError> {
        let found = projects::find_including_disabled(&self.db, project)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("no project named {project:?}")))?;
        if let Some(since) = found.disabled_at {
            return Err(AdminError::Conflict(format!(
                "project {} is disabled (it left the config file on {}); add it back to the \
                 config and restart baler to build it again",
                found.name,
                since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )));
        }
        let txn = begin_write(&self.db).await?;
        let queued = self.queue.rebuild_on(&txn, found.id).await?;
        let detail = format!("item {} at position {}", queued.item, queued.position);
        let target = format!("project {}", found.name);
        audit::record(
            &txn,
            actor,
            AuditAction::ProjectRebuild,
            &target,
            Some(detail),
        )
        .await?;
        txn.commit().await?;
        self.queue.announce().await;
        Ok(queued)
    }

    /// Makes a named token; its secret is in the answer and nowhere else.
    pub async fn create_token(&self, actor: &Actor, name: &str) -> Result<NewToken, AdminError> {
        let txn = begin_write(&self.db).await?;
        let token = tokens::create(&txn, name).await?;
        let target = format!("token {} ({})", token.id, token.name);
        audit::record(&txn, actor, AuditAction::TokenCreate, &target, None).await?;
        txn.commit().await?;
        Ok(token)
    }

    /// Revokes a named token: from the next request on, it is refused everywhere, and so are
    /// admin page sessions opened with it. Returns its name.
    pub async fn revoke_token(&self, actor: &Actor, id: i64) -> Result<String, AdminError> {
        let txn = begin_write(&self.db).await?;
        let name = tokens::revoke(&txn, id).await?;
        let target = format!("token {id} ({name})");
        audit::record(&txn, actor, AuditAction::TokenRevoke, &target, None).await?;
        txn.commit().await?;
        Ok(name)
    }

    /// Records an admin page login (nothing else changes).
    pub async fn record_login(&self, actor: &Actor) -> Result<(), AdminError> {
        audit::record(&self.db, actor, AuditAction::Login, "admin page", None).await?;
        Ok(())
    }

    /// Ends an admin page session for good: its cookie, copied or not, is refused from now
    /// on. `expires` is when the cookie would have expired (Unix seconds); ended sessions
    /// whose cookies have expired anyway are pruned on the way.
    pub async fn logout(&self, actor: &Actor, sid: &str, expires: i64) -> Result<(), AdminError> {
        let txn = begin_write(&self.db).await?;
        ended_session::Entity::delete_many()
            .filter(ended_session::Column::ExpiresAt.lt(chrono::Utc::now().timestamp()))
            .exec(&txn)
            .await?;
        ended_session::Entity::insert(ended_session::ActiveModel {
            sid: Set(sid.to_string()),
            expires_at: Set(expires),
        })
        .on_conflict(
            OnConflict::column(ended_session::Column::Sid)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
        audit::record(&txn, actor, AuditAction::Logout, "admin page", None).await?;
        txn.commit().await?;
        Ok(())
    }
}

fn item(id: i64) -> String {
    format!("item {id}")
}
