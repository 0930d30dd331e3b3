//! What admins do to the queue: list, flush, delete, retry. Each action has one implementation;
//! the `_on` forms run inside a caller's transaction, which is how `admin::AdminActions` (what
//! the API, the admin page and the CLI call) writes the audit row in the same commit.

use sea_orm::{ConnectionTrait, DbErr};
use serde::Serialize;

use super::{Enqueued, PendingRefs, Queue, QueueError, QueueState};
use crate::time::{from_millis, rfc3339_millis};

/// One row of `GET /api/v1/queue`.
#[derive(Debug, Clone, Serialize)]
pub struct QueueItemView {
    pub id: i64,
    /// Place among pending items; null for running and failed ones.
    pub position: Option<i64>,
    pub project: String,
    pub state: QueueState,
    pub refs: PendingRefs,
    pub scan_all: bool,
    pub revision: i32,
    pub attempts: i32,
    pub enqueued_at: String,
    pub updated_at: String,
    pub last_error: Option<String>,
    pub lease_owner: Option<String>,
    /// When the current (running) or last claim began.
    pub claimed_at: Option<String>,
    /// A running item's lease: its worker renews it while the job runs.
    pub lease_expires_at: Option<String>,
}

impl QueueItemView {
    /// `branch:main`, `tag:v1.0.0`, and `rebuild` for a full rescan, in that order.
    pub fn ref_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .refs
            .branches
            .keys()
            .map(|b| format!("branch:{b}"))
            .collect();
        names.extend(self.refs.tags.keys().map(|t| format!("tag:{t}")));
        if self.scan_all {
            names.push("rebuild".into());
        }
        names
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct QueueListing {
    pub paused: bool,
    pub items: Vec<QueueItemView>,
}

/// Queue times to the millisecond: claims, merges and acks often fall within one second.
fn queue_time(millis: i64) -> String {
    rfc3339_millis(from_millis(millis))
}

/// The columns of [`ITEM_COLUMNS`] as a view; `position` is worked out by the caller.
fn view_of_row(
    row: &sea_orm::QueryResult,
    state: QueueState,
    position: Option<i64>,
) -> Result<QueueItemView, QueueError> {
    let id: i64 = row.try_get("", "id")?;
    Ok(QueueItemView {
        id,
        position,
        project: row.try_get("", "project")?,
        state,
        refs: PendingRefs::of_row(row, id)?,
        scan_all: row.try_get("", "scan_all")?,
        revision: row.try_get("", "revision")?,
        attempts: row.try_get("", "attempts")?,
        enqueued_at: queue_time(row.try_get("", "enqueued_at")?),
        updated_at: queue_time(row.try_get("", "updated_at")?),
        last_error: row.try_get("", "last_error")?,
        lease_owner: row.try_get("", "lease_owner")?,
        claimed_at: row
            .try_get::<Option<i64>>("", "claimed_at")?
            .map(queue_time),
        lease_expires_at: row
            .try_get::<Option<i64>>("", "lease_expires_at")?
            .map(queue_time),
    })
}

/// What [`view_of_row`] reads, from `queue_items q JOIN projects p`.
const ITEM_COLUMNS: &str = "q.id, p.name AS project, q.state, q.branches, q.tags, q.scan_all, \
    q.revision, q.attempts, q.enqueued_at, q.updated_at, q.last_error, q.lease_owner, \
    q.claimed_at, q.lease_expires_at";

impl Queue {
    /// One item in any state, with its place among pending items if it is pending (running,
    /// done and failed items have none). `None` once it is gone: flushed, deleted, removed by
    /// retention, or merged into an older pending item of its project when that one's job
    /// was given back.
    pub async fn item(&self, id: i64) -> Result<Option<QueueItemView>, QueueError> {
        let row = self
            .db
            .query_one_raw(self.statement(
                &format!(
                    "SELECT {ITEM_COLUMNS}, \
                       (SELECT COUNT(*) FROM queue_items e \
                        WHERE e.state = 'pending' AND e.id < q.id) + 1 AS position \
                     FROM queue_items q JOIN projects p ON p.id = q.project_id \
                     WHERE q.id = $1"
                ),
                vec![id.into()],
            ))
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let state = QueueState::of_row(&row)?;
        let position = match state {
            QueueState::Pending => Some(row.try_get("", "position")?),
            _ => None,
        };
        Ok(Some(view_of_row(&row, state, position)?))
    }

    /// Running items, then pending ones in queue order, then failed ones.
    pub async fn list(&self) -> Result<QueueListing, QueueError> {
        let rows = self
            .db
            .query_all_raw(self.statement(
                &format!(
                    "SELECT {ITEM_COLUMNS} \
                     FROM queue_items q JOIN projects p ON p.id = q.project_id \
                     WHERE q.state IN ('running', 'pending', 'failed') \
                     ORDER BY CASE q.state WHEN 'running' THEN 0 WHEN 'pending' THEN 1 ELSE 2 END, q.id"
                ),
                vec![],
            ))
            .await?;
        let mut items = Vec::with_capacity(rows.len());
        let mut position = 0;
        for row in rows {
            let state = QueueState::of_row(&row)?;
            let place = (state == QueueState::Pending).then(|| {
                position += 1;
                position
            });
            items.push(view_of_row(&row, state, place)?);
        }
        Ok(QueueListing {
            paused: self.counts().await?.paused,
            items,
        })
    }

    /// Removes every pending item (running and failed ones stay); returns how many.
    pub async fn flush(&self) -> Result<u64, QueueError> {
        self.flush_on(&self.db).await
    }

    pub(crate) async fn flush_on<C: ConnectionTrait>(&self, conn: &C) -> Result<u64, QueueError> {
        let result = conn
            .execute_raw(self.statement("DELETE FROM queue_items WHERE state = 'pending'", vec![]))
            .await?;
        Ok(result.rows_affected())
    }

    /// Deletes the `done` items that finished more than `age` ago (by the database's clock),
    /// for retention. Returns how many.
    pub(crate) async fn remove_finished_on<C: ConnectionTrait>(
        &self,
        conn: &C,
        age: std::time::Duration,
    ) -> Result<u64, QueueError> {
        let result = conn
            .execute_raw(self.statement(
                "DELETE FROM queue_items WHERE state = 'done' AND finished_at < {now} - $1",
                vec![(age.as_millis() as i64).into()],
            ))
            .await?;
        Ok(result.rows_affected())
    }

    /// How many `done` items finished more than `age` ago: what
    /// [`Queue::remove_finished_on`] would remove now.
    pub async fn count_finished(&self, age: std::time::Duration) -> Result<u64, QueueError> {
        let row = self
            .db
            .query_one_raw(self.statement(
                "SELECT COUNT(*) AS n FROM queue_items WHERE state = 'done' AND finished_at < {now} - $1",
                vec![(age.as_millis() as i64).into()],
            ))
            .await?;
        Ok(row.map_or(Ok(0), |row| row.try_get::<i64>("", "n"))? as u64)
    }

    /// Deletes one item that is not running.
    pub async fn delete(&self, id: i64) -> Result<(), QueueError> {
        self.delete_on(&self.db, id).await
    }

    pub(crate) async fn delete_on<C: ConnectionTrait>(
        &self,
        conn: &C,
        id: i64,
    ) -> Result<(), QueueError> {
        let result = conn
            .execute_raw(self.statement(
                "DELETE FROM queue_items WHERE id = $1 AND state <> 'running'",
                vec![id.into()],
            ))
            .await?;
        if result.rows_affected() == 1 {
            return Ok(());
        }
        match self.state_of(conn, id).await? {
            Some(_) => Err(QueueError::Conflict(format!(
                "item {id} is running; it cannot be deleted until its job ends"
            ))),
            None => Err(QueueError::NotFound(id)),
        }
    }

    /// Queues a failed item's refs again with fresh attempts. If the project already has a
    /// pending item, the refs merge into it (one pending item per project still holds).
    pub async fn retry(&self, id: i64) -> Result<Enqueued, QueueError> {
        let txn = crate::db::begin_write(&self.db).await?;
        let queued = self.retry_on(&txn, id).await?;
        txn.commit().await?;
        self.announce().await;
        Ok(queued)
    }

    /// [`Queue::retry`] inside the caller's write transaction; the caller announces the work
    /// once it has committed.
    pub(crate) async fn retry_on<C: ConnectionTrait>(
        &self,
        conn: &C,
        id: i64,
    ) -> Result<Enqueued, QueueError> {
        let failed = conn
            .query_one_raw(self.statement(
                "DELETE FROM queue_items WHERE id = $1 AND state = 'failed' \
                 RETURNING project_id, branches, tags, scan_all",
                vec![id.into()],
            ))
            .await?;
        let Some(failed) = failed else {
            return match self.state_of(conn, id).await? {
                Some(state) => Err(QueueError::Conflict(format!(
                    "item {id} is {state}; only failed items can be retried"
                ))),
                None => Err(QueueError::NotFound(id)),
            };
        };
        let project_id: i64 = failed.try_get("", "project_id")?;
        let refs = PendingRefs::of_row(&failed, id)?;
        let scan_all: bool = failed.try_get("", "scan_all")?;
        Ok(self
            .enqueue_with(conn, project_id, &refs, scan_all, None)
            .await?
            .ok_or(DbErr::RecordNotInserted)?)
    }

    async fn state_of<C: ConnectionTrait>(
        &self,
        conn: &C,
        id: i64,
    ) -> Result<Option<QueueState>, QueueError> {
        let row = conn
            .query_one_raw(self.statement(
                "SELECT state FROM queue_items WHERE id = $1",
                vec![id.into()],
            ))
            .await?;
        row.as_ref().map(QueueState::of_row).transpose()
    }
}
