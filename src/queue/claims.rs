//! Claims: a worker takes the oldest pending item of a project with nothing running, holds
//! it with a lease renewed by heartbeats, and ends it by ack (of the revision it claimed) or
//! by fail. Each claim carries its own token, and every one of these calls, and the fence
//! that every write of a job passes, holds that token.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseBackend, SqlErr, Statement, Value};

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
        let branches: String = row.try_get("", "branches")?;
        let tags: String = row.try_get("", "tags")?;
        Ok(Some(ClaimedItem {
            id,
            token,
            project_id: row.try_get("", "project_id")?,
            revision: row.try_get("", "revision")?,
            attempts: row.try_get("", "attempts")?,
            refs: PendingRefs::from_json(&branches, &tags)
                .map_err(|e| QueueError::BadRefs(id, e))?,
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
    /// the claim is already gone.
    pub async fn fail(&self, item: i64, token: &str, error: &str) -> Result<(), QueueError> {
        self.release_claim(item, Some(token), error, true).await
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
            // The worker died, not the job: retry at once (the attempt still counts, so a job
            // that keeps killing its worker ends as failed).
            self.release_claim(
                id,
                None,
                "the worker's lease expired (worker stopped or crashed)",
                false,
            )
            .await?;
            count += 1;
        }
        Ok(count)
    }

    /// Ends a claim that did not succeed. If a newer push queued a pending item for the same
    /// project meanwhile, its refs merge into this older item, which keeps its earlier place,
    /// and the newer row goes away: one pending item per project, nothing lost.
    async fn release_claim(
        &self,
        item: i64,
        token: Option<&str>,
        error: &str,
        backoff: bool,
    ) -> Result<(), QueueError> {
        let txn = crate::db::begin_write(&self.db).await?;
        if self.backend() == DatabaseBackend::Postgres {
            // A fenced write of the claim holds the row: wait briefly, then let the next
            // round try again rather than stall this worker's claiming.
            txn.execute_unprepared("SET LOCAL lock_timeout = '2s'")
                .await?;
        }
        // Without a token this is the reclaim of an expired lease, which must still be
        // expired: a heartbeat may have renewed it since the reclaim looked.
        let token_check = if token.is_some() {
            "AND claim_token = $2"
        } else {
            "AND lease_expires_at < {now}"
        };
        let mut values: Vec<Value> = vec![item.into()];
        if let Some(token) = token {
            values.push(token.into());
        }
        let claimed = txn
            .query_one_raw(self.statement(
                &format!(
                    "UPDATE queue_items SET state = 'releasing', updated_at = {{now}}, \
                       lease_owner = NULL, lease_expires_at = NULL, claim_token = NULL \
                     WHERE id = $1 AND state = 'running' {token_check} \
                     RETURNING project_id, branches, tags, scan_all, revision, attempts"
                ),
                values,
            ))
            .await?;
        let Some(claimed) = claimed else {
            // The claim was already lost (lease expired and handled elsewhere).
            return Ok(());
        };
        let project_id: i64 = claimed.try_get("", "project_id")?;
        let attempts: i32 = claimed.try_get("", "attempts")?;
        let mut revision: i32 = claimed.try_get("", "revision")?;
        let branches: String = claimed.try_get("", "branches")?;
        let tags: String = claimed.try_get("", "tags")?;
        let mut refs =
            PendingRefs::from_json(&branches, &tags).map_err(|e| QueueError::BadRefs(item, e))?;
        let mut scan_all: bool = claimed.try_get("", "scan_all")?;

        let newer = txn
            .query_one_raw(Statement::from_sql_and_values(
                self.backend(),
                "DELETE FROM queue_items WHERE project_id = $1 AND state = 'pending' \
                 RETURNING id, branches, tags, scan_all, revision",
                vec![project_id.into()],
            ))
            .await?;
        let mut fresh_push = false;
        if let Some(newer) = newer {
            let newer_id: i64 = newer.try_get("", "id")?;
            let branches: String = newer.try_get("", "branches")?;
            let tags: String = newer.try_get("", "tags")?;
            refs.merge(
                PendingRefs::from_json(&branches, &tags)
                    .map_err(|e| QueueError::BadRefs(newer_id, e))?,
            );
            revision = revision.max(newer.try_get("", "revision")?) + 1;
            scan_all |= newer.try_get::<bool>("", "scan_all")?;
            fresh_push = true;
        }

        let out_of_attempts = attempts >= self.tuning.max_attempts as i32;
        // A push that arrived meanwhile is new work: it is queued even if this attempt was the
        // last, and without waiting for a backoff.
        let (state, delay_ms, attempts) = if fresh_push {
            ("pending", 0, if out_of_attempts { 0 } else { attempts })
        } else if out_of_attempts {
            ("failed", 0, attempts)
        } else if !backoff {
            ("pending", 0, attempts)
        } else {
            let factor = 1u32 << (attempts.max(1) as u32 - 1).min(20);
            let delay = self
                .tuning
                .backoff
                .saturating_mul(factor)
                .min(Duration::from_secs(3600));
            ("pending", delay.as_millis() as i64, attempts)
        };
        txn.execute_raw(self.statement(
            "UPDATE queue_items SET state = $1, available_at = {now} + $2, attempts = $3, \
               revision = $4, branches = $5, tags = $6, last_error = $7, updated_at = {now}, \
               scan_all = $9, finished_at = CASE WHEN $1 = 'failed' THEN {now} ELSE NULL END \
             WHERE id = $8",
            vec![
                state.into(),
                delay_ms.into(),
                attempts.into(),
                revision.into(),
                refs.branches_json().into(),
                refs.tags_json().into(),
                error.into(),
                item.into(),
                scan_all.into(),
            ],
        ))
        .await?;
        txn.commit().await?;
        self.announce().await;
        Ok(())
    }
}
