//! Every admin action, once. The API, the admin page and the command line call these, and
//! each writes its audit row in the same transaction as the change ([`AdminActions::audited`]),
//! so no front end can act without leaving a record.

use entities::{ended_session, notification_subscriber};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    QueryFilter,
};

use super::audit::{self, AuditAction};
use super::tokens::{self, NewToken, Scope};
use super::{Actor, AdminError};
use crate::config::ProjectSettings;
use crate::db::begin_write;
use crate::notify::SubscriberSpec;
use crate::notify::subscribers;
use crate::projects;
use crate::queue::{Enqueued, PendingRefs, Queue};

#[derive(Clone)]
pub struct AdminActions {
    db: DatabaseConnection,
    queue: Queue,
}

/// What an action did, and what its audit row says about it.
struct Audited<T> {
    outcome: T,
    /// What was acted on: `queue`, `item 7`, `token 3 (ci)`, ...
    target: String,
    detail: Option<String>,
}

impl<T> Audited<T> {
    fn new(outcome: T, target: impl Into<String>) -> Audited<T> {
        Audited {
            outcome,
            target: target.into(),
            detail: None,
        }
    }

    fn detail(self, detail: String) -> Audited<T> {
        Audited {
            detail: Some(detail),
            ..self
        }
    }
}

/// Whether workers must hear of an action once it has committed: the queue's claimable work
/// changed (a resume, new work), or claim loops must look again (a pause). Removing items
/// needs no wake-up, nor do tokens and sessions.
fn wakes_workers(action: AuditAction) -> bool {
    matches!(
        action,
        AuditAction::QueuePause
            | AuditAction::QueueResume
            | AuditAction::ItemRetry
            | AuditAction::ProjectRebuild
            | AuditAction::ReleaseRequest
    )
}

impl AdminActions {
    pub fn new(db: DatabaseConnection, queue: Queue) -> AdminActions {
        AdminActions { db, queue }
    }

    /// The sequence every action follows: begin a write transaction, act in it, write the
    /// audit row in it, commit, then wake the workers if the action calls for it. An action
    /// that fails leaves neither its change nor an audit row.
    async fn audited<T>(
        &self,
        actor: &Actor,
        action: AuditAction,
        act: impl AsyncFnOnce(&DatabaseTransaction) -> Result<Audited<T>, AdminError>,
    ) -> Result<T, AdminError> {
        let txn = begin_write(&self.db).await?;
        let done = act(&txn).await?;
        audit::record(&txn, actor, action, &done.target, done.detail).await?;
        txn.commit().await?;
        if wakes_workers(action) {
            self.queue.announce().await;
        }
        Ok(done.outcome)
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
        self.audited(actor, action, async |txn| {
            self.queue.set_paused_on(txn, paused).await?;
            Ok(Audited::new((), "queue"))
        })
        .await
    }

    /// Removes every pending item; running and failed ones stay. Returns how many went.
    pub async fn flush(&self, actor: &Actor) -> Result<u64, AdminError> {
        self.audited(actor, AuditAction::QueueFlush, async |txn| {
            let removed = self.queue.flush_on(txn).await?;
            Ok(Audited::new(removed, "queue").detail(format!("removed {removed} pending items")))
        })
        .await
    }

    /// Removes one item that is not running.
    pub async fn delete(&self, actor: &Actor, id: i64) -> Result<(), AdminError> {
        self.audited(actor, AuditAction::ItemDelete, async |txn| {
            self.queue.delete_on(txn, id).await?;
            Ok(Audited::new((), item(id)))
        })
        .await
    }

    /// Queues a failed item's refs again, with fresh attempts.
    pub async fn retry(&self, actor: &Actor, id: i64) -> Result<Enqueued, AdminError> {
        self.audited(actor, AuditAction::ItemRetry, async |txn| {
            let queued = self.queue.retry_on(txn, id).await?;
            let detail = format!(
                "queued as item {} at position {}",
                queued.item, queued.position
            );
            Ok(Audited::new(queued, item(id)).detail(detail))
        })
        .await
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
                crate::time::rfc3339(since)
            )));
        }
        self.audited(actor, AuditAction::ProjectRebuild, async |txn| {
            let queued = self.queue.rebuild_on(txn, found.id).await?;
            let detail = format!("item {} at position {}", queued.item, queued.position);
            Ok(Audited::new(queued, format!("project {}", found.name)).detail(detail))
        })
        .await
    }

    /// Queues `refs` of `project` (one ref a CI job asked for, checked by
    /// `hooks::requested_refs`) like a push naming it: merged into the project's waiting item,
    /// if it has one. `asked` is the ref as requested, for the audit row. A disabled project is
    /// refused, as for [`AdminActions::rebuild`].
    pub async fn request_release(
        &self,
        actor: &Actor,
        project: &projects::Project,
        refs: &PendingRefs,
        asked: &str,
    ) -> Result<Enqueued, AdminError> {
        if let Some(since) = project.disabled_at {
            return Err(AdminError::Conflict(format!(
                "project {} is disabled (since {}): nothing builds for it",
                project.name,
                crate::time::rfc3339(since)
            )));
        }
        self.audited(actor, AuditAction::ReleaseRequest, async |txn| {
            let queued = self.queue.enqueue_on(txn, project.id, refs).await?;
            let detail = format!(
                "{asked}: item {} at position {}{}",
                queued.item,
                queued.position,
                if queued.merged { " (merged)" } else { "" }
            );
            Ok(Audited::new(queued, format!("project {}", project.name)).detail(detail))
        })
        .await
    }

    /// Keeps `secret`, made by `baler project connect`, as the webhook secret of project `id`
    /// (`name`), which has none; returns the secret it has afterwards (another connect's, if
    /// one stored its own first).
    pub async fn store_webhook_secret(
        &self,
        actor: &Actor,
        id: i64,
        name: &str,
        secret: &str,
    ) -> Result<String, AdminError> {
        self.audited(actor, AuditAction::ProjectSecret, async |txn| {
            let kept = projects::store_generated_secret_on(txn, id, secret).await?;
            Ok(Audited::new(kept, format!("project {name}"))
                .detail("webhook secret generated for connect".into()))
        })
        .await
    }

    /// Records that the project's webhook was connected on its host (or disconnected); the
    /// change itself is the host's, made before.
    pub async fn record_connection(
        &self,
        actor: &Actor,
        name: &str,
        connected: bool,
        detail: String,
    ) -> Result<(), AdminError> {
        let action = if connected {
            AuditAction::ProjectConnect
        } else {
            AuditAction::ProjectDisconnect
        };
        self.audited(actor, action, async |_| {
            Ok(Audited::new((), format!("project {name}")).detail(detail))
        })
        .await
    }

    /// Adds a project that lives in the database (or updates and enables again one added
    /// before). `documents` publishes its documents in the action's transaction (they are
    /// rendered by `web`, which this module cannot import) and returns a guard that the caller
    /// holds until after the commit.
    pub async fn add_project<G>(
        &self,
        actor: &Actor,
        settings: &ProjectSettings,
        documents: impl AsyncFnOnce(&DatabaseTransaction, i64) -> Result<G, AdminError>,
    ) -> Result<(projects::Project, G), AdminError> {
        self.audited(actor, AuditAction::ProjectAdd, async |txn| {
            let project = projects::add_on(txn, settings).await?;
            let guard = documents(txn, project.id).await?;
            let target = format!("project {}", project.name);
            let detail = crate::redact::redact(&project.repo);
            Ok(Audited::new((project, guard), target).detail(detail))
        })
        .await
    }

    /// Disables a project added through the API or the CLI; its releases and files are kept.
    /// `documents` as for [`AdminActions::add_project`].
    pub async fn remove_project<G>(
        &self,
        actor: &Actor,
        name: &str,
        documents: impl AsyncFnOnce(&DatabaseTransaction, i64) -> Result<G, AdminError>,
    ) -> Result<(projects::Project, G), AdminError> {
        self.audited(actor, AuditAction::ProjectRemove, async |txn| {
            let project = projects::remove_on(txn, name).await?;
            let guard = documents(txn, project.id).await?;
            let target = format!("project {}", project.name);
            Ok(Audited::new((project, guard), target))
        })
        .await
    }

    /// Makes a named token with `scope` (over `project`, for `release` and `read`); its secret
    /// is in the answer and nowhere else.
    pub async fn create_token(
        &self,
        actor: &Actor,
        name: &str,
        scope: Scope,
        project: Option<&str>,
    ) -> Result<NewToken, AdminError> {
        self.audited(actor, AuditAction::TokenCreate, async |txn| {
            let token = tokens::create(txn, name, scope, project).await?;
            let target = format!("token {} ({})", token.id, token.name);
            let detail = match project {
                Some(project) => format!("scope {scope}, project {project}"),
                None => format!("scope {scope}"),
            };
            Ok(Audited::new(token, target).detail(detail))
        })
        .await
    }

    /// Revokes a named token: from the next request on, it is refused everywhere, and so are
    /// admin page sessions opened with it. Returns its name.
    pub async fn revoke_token(&self, actor: &Actor, id: i64) -> Result<String, AdminError> {
        self.audited(actor, AuditAction::TokenRevoke, async |txn| {
            let name = tokens::revoke(txn, id).await?;
            let target = format!("token {id} ({name})");
            Ok(Audited::new(name, target))
        })
        .await
    }

    /// Adds a subscriber for notifications (or updates the one the API added at its URL).
    pub async fn add_subscriber(
        &self,
        actor: &Actor,
        spec: &SubscriberSpec,
    ) -> Result<notification_subscriber::Model, AdminError> {
        self.audited(actor, AuditAction::NotificationAdd, async |txn| {
            let row = subscribers::add_on(txn, spec).await?;
            let target = format!("subscriber {} ({})", row.id, row.url);
            let events: Vec<String> = spec.events.iter().map(|e| e.to_string()).collect();
            let detail = format!(
                "events {}; projects {}",
                events.join(", "),
                spec.projects.join(", ")
            );
            Ok(Audited::new(row, target).detail(detail))
        })
        .await
    }

    /// Removes a subscriber the API added, with its messages. Returns its URL.
    pub async fn remove_subscriber(&self, actor: &Actor, id: i64) -> Result<String, AdminError> {
        self.audited(actor, AuditAction::NotificationRemove, async |txn| {
            let url = subscribers::remove_on(txn, id).await?;
            let target = format!("subscriber {id} ({url})");
            Ok(Audited::new(url, target))
        })
        .await
    }

    /// Sends a notification again, at once and with a fresh retry schedule.
    pub async fn resend_notification(&self, actor: &Actor, id: i64) -> Result<(), AdminError> {
        self.audited(actor, AuditAction::NotificationResend, async |txn| {
            let detail = subscribers::resend_on(txn, id).await?;
            Ok(Audited::new((), format!("notification {id}")).detail(detail))
        })
        .await
    }

    /// Records an admin page login (nothing else changes, so no transaction of its own).
    pub async fn record_login(&self, actor: &Actor) -> Result<(), AdminError> {
        audit::record(&self.db, actor, AuditAction::Login, "admin page", None).await?;
        Ok(())
    }

    /// Ends an admin page session for good: its cookie, copied or not, is refused from now
    /// on. `expires` is when the cookie would have expired (Unix seconds); ended sessions
    /// whose cookies have expired anyway are pruned on the way.
    pub async fn logout(&self, actor: &Actor, sid: &str, expires: i64) -> Result<(), AdminError> {
        self.audited(actor, AuditAction::Logout, async |txn| {
            ended_session::Entity::delete_many()
                .filter(ended_session::Column::ExpiresAt.lt(chrono::Utc::now().timestamp()))
                .exec(txn)
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
            .exec_without_returning(txn)
            .await?;
            Ok(Audited::new((), "admin page"))
        })
        .await
    }
}

fn item(id: i64) -> String {
    format!("item {id}")
}
