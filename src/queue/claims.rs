//! Claims: a worker takes the oldest pending item of a project with nothing running, holds
//! it with a lease renewed by heartbeats, and ends it by ack (of the revision it claimed) or
//! by fail. Each claim carries its own token, and every one of these calls, and the fence
//! that every write of a job passes, holds that token.

use sea_orm::{ConnectionTrait, DatabaseBackend, SqlErr};

use super::requeue::GiveBack;
use super::{PendingRefs, Queue, QueueError};

/// A claimed item, as the worker receives it.
#[derive(Debug, Clone)]
pub struct ClaimedItem {
    pub id: i64,
    /// This claim's own token, written when the row was claimed. Heartbeat, ack and fail hold
    /// it, and every write of the job checks it (a fence): once the claim has been handed to
    /// another worker, a stale job can change nothing.
    pub token: String,
    pub project_id: i64,
    pub revision: i32,
    pub attempts: i32,
    pub refs: PendingRefs,
    /// Package every matching branch and tag, not only `refs` (an admin's rebuild).
    pub scan_all: bool,
}

impl Queue {
    /// Claims the oldest pending item whose project has nothing running, unless the queue is
    /// paused. A claim that races another worker for the same project loses on the unique
    /// index over running items and simply claims nothing this time.
    pub async fn claim(&self, owner: &str) -> Result<Option<ClaimedItem>, QueueError> {
        let token = uuid::Uuid::new_v4().simple().to_string();
        let skip_locked = match self.backend() {
            DatabaseBackend::Postgres => "FOR UPDATE SKIP LOCKED",
            _ => "",
        };
        let sql = format!(
            "UPDATE queue_items SET state = 'running', attempts = attempts + 1, \
               claimed_revision = revision, lease_owner = $1, lease_expires_at = {{now}} + $2, \
               claim_token = $3, \
               updated_at = {{now}}, claimed_at = {{now}} \
             WHERE id = ( \
               SELECT q.id FROM queue_items q \
               WHERE q.state = 'pending' AND q.available_at <= {{now}} \
                 AND NOT EXISTS (SELECT 1 FROM queue_items r \
                                 WHERE r.project_id = q.project_id AND r.state = 'running') \
                 AND NOT EXISTS (SELECT 1 FROM queue_control c WHERE c.id = 1 AND c.paused) \
               ORDER BY q.id LIMIT 1 {skip_locked}) \
             AND state = 'pending' \
             RETURNING id, project_id, branches, tags, scan_all, revision, attempts"
        );
        let lease = self.tuning.lease.as_millis() as i64;
        let result = self
            .db
            .query_one_raw(self.statement(
                &sql,
                vec![owner.into(), lease.into(), token.as_str().into()],
            ))
            .await;
        let row = match result {
            Ok(Some(row)) => row,
            Ok(None) => return Ok(None),
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        let id: i64 = row.try_get("", "id")?;
        Ok(Some(ClaimedItem {
            id,
            token,
            project_id: row.try_get("", "project_id")?,
            revision: row.try_get("", "revision")?,
            attempts: row.try_get("", "attempts")?,
            refs: PendingRefs::of_row(&row, id)?,
            scan_all: row.try_get("", "scan_all")?,
        }))
    }

    /// Renews the lease of the claim `token`; false when that claim is gone (its lease expired
    /// and the item was handed out again, or it ended).
    pub async fn heartbeat(&self, item: i64, token: &str) -> Result<bool, QueueError> {
        let result = self
            .db
            .execute_raw(self.statement(
                "UPDATE queue_items SET lease_expires_at = {now} + $1 \
                 WHERE id = $2 AND state = 'running' AND claim_token = $3",
                vec![
                    (self.tuning.lease.as_millis() as i64).into(),
                    item.into(),
                    token.into(),
                ],
            ))
            .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Whether the claim `token` still holds `item`, inside the caller's write transaction.
    /// On PostgreSQL the row stays locked until that transaction ends, and on SQLite the
    /// transaction holds the write lock, so the claim cannot be handed out again before the
    /// caller's writes commit: this is the fence every write of a release job passes.
    pub async fn holds_claim_on<C: ConnectionTrait>(
        &self,
        conn: &C,
        item: i64,
        token: &str,
    ) -> Result<bool, QueueError> {
        let lock = match self.backend() {
            DatabaseBackend::Postgres => {
                // A worker frozen inside its fence (SIGSTOP, a paused VM) must not hold the
                // row, and with it every other worker's reclaim, for longer than a lease.
                conn.execute_unprepared(&format!(
                    "SET LOCAL idle_in_transaction_session_timeout = {}",
                    self.tuning.lease.as_millis().max(1)
                ))
                .await?;
                "FOR UPDATE"
            }
            _ => "",
        };
        let row = conn
            .query_one_raw(self.statement(
                &format!(
                    "SELECT id FROM queue_items \
                     WHERE id = $1 AND state = 'running' AND claim_token = $2 {lock}"
                ),
                vec![item.into(), token.into()],
            ))
            .await?;
        Ok(row.is_some())
    }

    /// Marks the item done, but only if the claim `token` still holds it at `revision`.
    pub async fn ack(&self, item: i64, token: &str, revision: i32) -> Result<bool, QueueError> {
        let result = self
            .db
            .execute_raw(self.statement(
                "UPDATE queue_items SET state = 'done', finished_at = {now}, updated_at = {now}, \
                   lease_owner = NULL, lease_expires_at = NULL, claim_token = NULL, \
                   last_error = NULL \
                 WHERE id = $1 AND state = 'running' AND claim_token = $2 \
                   AND claimed_revision = $3",
                vec![item.into(), token.into(), revision.into()],
            ))
            .await?;
        // The project's slot is free: its next item may be claimed, here or elsewhere.
        self.announce().await;
        Ok(result.rows_affected() == 1)
    }

    /// Records a failed attempt of the claim `token`: back to pending after a backoff while
    /// attempts remain, else `failed` with the error kept for the admin. Nothing changes when
    /// the claim is already gone. (See `requeue.rs`.)
    pub async fn fail(&self, item: i64, token: &str, error: &str) -> Result<(), QueueError> {
        self.give_back(item, GiveBack::JobFailed { token }, error)
            .await
    }

    /// Puts back items whose lease ran out (their worker died): each returns to pending in its
    /// old place, or fails once it has used up its attempts.
    pub async fn reclaim_expired(&self) -> Result<usize, QueueError> {
        let rows = self
            .db
            .query_all_raw(self.statement(
                "SELECT id FROM queue_items WHERE state = 'running' AND lease_expires_at < {now}",
                vec![],
            ))
            .await?;
        let mut count = 0;
        for row in rows {
            let id: i64 = row.try_get("", "id")?;
            self.give_back(
                id,
                GiveBack::LeaseExpired,
                "the worker's lease expired (worker stopped or crashed)",
            )
            .await?;
            count += 1;
        }
        Ok(count)
    }
}
