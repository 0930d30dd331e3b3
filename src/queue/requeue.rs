//! Giving a claim back when it did not succeed: its job failed, or its worker's lease ran out.
//! The item returns to pending in its old place (after a backoff for a failed job), or ends as
//! `failed` once its attempts are used up. If a newer push queued a pending item for the same
//! project meanwhile, that item's refs merge into this older one, which keeps its earlier
//! place, and the newer row goes away: one pending item per project, nothing lost.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseTransaction, EntityTrait, Value};

use super::{PendingRefs, Queue, QueueError, QueueState, QueueTuning};

/// Why a claim is given back.
#[derive(Debug, Clone, Copy)]
pub(super) enum GiveBack<'a> {
    /// The job failed. Its claim's token fences the write, and the retry waits out a backoff.
    JobFailed { token: &'a str },
    /// The worker died, not the job: the retry comes at once (the attempt still counts, so a
    /// job that keeps killing its worker ends as failed).
    LeaseExpired,
}

/// The claimed row as the first statement of a give-back left it (`releasing`).
struct GivenBack {
    project_id: i64,
    attempts: i32,
    revision: i32,
    refs: PendingRefs,
    scan_all: bool,
}

/// Where a given-back item goes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct NextStep {
    state: QueueState,
    /// How long until it may be claimed again.
    delay_ms: i64,
    attempts: i32,
}

impl Queue {
    /// Gives the claim on `item` back, recording `error`. Nothing changes when the claim is
    /// already gone (its lease expired and was handled elsewhere).
    pub(super) async fn give_back(
        &self,
        item: i64,
        why: GiveBack<'_>,
        error: &str,
    ) -> Result<(), QueueError> {
        let txn = crate::db::begin_write(&self.db).await?;
        if self.backend() == DatabaseBackend::Postgres {
            // A fenced write of the claim holds the row: wait briefly, then let the next
            // round try again rather than stall this worker's claiming.
            txn.execute_unprepared("SET LOCAL lock_timeout = '2s'")
                .await?;
        }
        let Some(mut claim) = self.mark_releasing(&txn, item, why).await? else {
            return Ok(());
        };
        let fresh_push = self.absorb_newer_push(&txn, &mut claim).await?;
        let backoff = matches!(why, GiveBack::JobFailed { .. });
        let next = next_step(&self.tuning, claim.attempts, fresh_push, backoff);
        self.write_next_step(&txn, item, &claim, next, error)
            .await?;
        if next.state == QueueState::Failed {
            notify_failed_on(&txn, item, &claim, error).await?;
        }
        txn.commit().await?;
        self.announce().await;
        Ok(())
    }

    /// Takes the item out of `running` if this give-back may: the failing job still holds
    /// its claim, or the lease is still expired (a heartbeat may have renewed it since the
    /// reclaim looked).
    async fn mark_releasing(
        &self,
        txn: &DatabaseTransaction,
        item: i64,
        why: GiveBack<'_>,
    ) -> Result<Option<GivenBack>, QueueError> {
        let mut values: Vec<Value> = vec![item.into()];
        let claim_check = match why {
            GiveBack::JobFailed { token } => {
                values.push(token.into());
                "AND claim_token = $2"
            }
            GiveBack::LeaseExpired => "AND lease_expires_at < {now}",
        };
        let row = txn
            .query_one_raw(self.statement(
                &format!(
                    "UPDATE queue_items SET state = 'releasing', updated_at = {{now}}, \
                       lease_owner = NULL, lease_expires_at = NULL, claim_token = NULL \
                     WHERE id = $1 AND state = 'running' {claim_check} \
                     RETURNING project_id, branches, tags, scan_all, revision, attempts"
                ),
                values,
            ))
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(GivenBack {
            project_id: row.try_get("", "project_id")?,
            attempts: row.try_get("", "attempts")?,
            revision: row.try_get("", "revision")?,
            refs: PendingRefs::of_row(&row, item)?,
            scan_all: row.try_get("", "scan_all")?,
        }))
    }

    /// Merges a pending item that a push queued for the project meanwhile into `claim`, and
    /// deletes it; true if there was one.
    async fn absorb_newer_push(
        &self,
        txn: &DatabaseTransaction,
        claim: &mut GivenBack,
    ) -> Result<bool, QueueError> {
        let newer = txn
            .query_one_raw(self.statement(
                "DELETE FROM queue_items WHERE project_id = $1 AND state = 'pending' \
                 RETURNING id, branches, tags, scan_all, revision",
                vec![claim.project_id.into()],
            ))
            .await?;
        let Some(newer) = newer else {
            return Ok(false);
        };
        let newer_id: i64 = newer.try_get("", "id")?;
        claim.refs.merge(PendingRefs::of_row(&newer, newer_id)?);
        claim.revision = claim.revision.max(newer.try_get("", "revision")?) + 1;
        claim.scan_all |= newer.try_get::<bool>("", "scan_all")?;
        Ok(true)
    }

    async fn write_next_step(
        &self,
        txn: &DatabaseTransaction,
        item: i64,
        claim: &GivenBack,
        next: NextStep,
        error: &str,
    ) -> Result<(), QueueError> {
        txn.execute_raw(self.statement(
            "UPDATE queue_items SET state = $1, available_at = {now} + $2, attempts = $3, \
               revision = $4, branches = $5, tags = $6, last_error = $7, updated_at = {now}, \
               scan_all = $9, finished_at = CASE WHEN $1 = 'failed' THEN {now} ELSE NULL END \
             WHERE id = $8",
            vec![
                next.state.as_str().into(),
                next.delay_ms.into(),
                next.attempts.into(),
                claim.revision.into(),
                claim.refs.branches_json().into(),
                claim.refs.tags_json().into(),
                error.into(),
                item.into(),
                claim.scan_all.into(),
            ],
        ))
        .await?;
        Ok(())
    }
}

/// Writes `item.failed` to the outbox, in the transaction that fails the item.
async fn notify_failed_on(
    txn: &DatabaseTransaction,
    item: i64,
    claim: &GivenBack,
    error: &str,
) -> Result<(), QueueError> {
    let Some(project) = entities::project::Entity::find_by_id(claim.project_id)
        .one(txn)
        .await?
    else {
        return Ok(());
    };
    let event = crate::notify::Event::ItemFailed(crate::notify::ItemFailureData {
        project: project.name,
        item,
        attempts: claim.attempts,
        last_error: error.to_string(),
    });
    crate::notify::enqueue_on(txn, &event).await?;
    Ok(())
}

/// The decision, without I/O. A push that arrived meanwhile is new work: it is queued even if
/// this attempt was the last (with fresh attempts), and without waiting for a backoff.
/// Otherwise the item fails once its attempts are used up, or waits `backoff` doubled per
/// attempt (at most an hour) when `backoff` is asked for.
fn next_step(tuning: &QueueTuning, attempts: i32, fresh_push: bool, backoff: bool) -> NextStep {
    let out_of_attempts = attempts >= tuning.max_attempts as i32;
    let pending = |delay_ms, attempts| NextStep {
        state: QueueState::Pending,
        delay_ms,
        attempts,
    };
    if fresh_push {
        pending(0, if out_of_attempts { 0 } else { attempts })
    } else if out_of_attempts {
        NextStep {
            state: QueueState::Failed,
            delay_ms: 0,
            attempts,
        }
    } else if !backoff {
        pending(0, attempts)
    } else {
        let factor = 1u32 << (attempts.max(1) as u32 - 1).min(20);
        let delay = tuning
            .backoff
            .saturating_mul(factor)
            .min(Duration::from_secs(3600));
        pending(delay.as_millis() as i64, attempts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuning() -> QueueTuning {
        QueueTuning {
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(10),
            idle_poll: Duration::from_secs(1),
            backoff: Duration::from_secs(10),
            max_attempts: 3,
        }
    }

    fn pending(delay_ms: i64, attempts: i32) -> NextStep {
        NextStep {
            state: QueueState::Pending,
            delay_ms,
            attempts,
        }
    }

    #[test]
    fn failed_jobs_back_off_doubling_then_fail() {
        let tuning = tuning();
        assert_eq!(next_step(&tuning, 1, false, true), pending(10_000, 1));
        assert_eq!(next_step(&tuning, 2, false, true), pending(20_000, 2));
        let failed = NextStep {
            state: QueueState::Failed,
            delay_ms: 0,
            attempts: 3,
        };
        assert_eq!(next_step(&tuning, 3, false, true), failed);
        // An expired lease retries at once, until the attempts are used up all the same.
        assert_eq!(next_step(&tuning, 2, false, false), pending(0, 2));
        assert_eq!(next_step(&tuning, 3, false, false), failed);
    }

    #[test]
    fn the_backoff_stops_at_an_hour() {
        let tuning = QueueTuning {
            max_attempts: 100,
            ..tuning()
        };
        assert_eq!(next_step(&tuning, 40, false, true), pending(3_600_000, 40));
    }

    #[test]
    fn a_newer_push_is_queued_at_once_with_fresh_attempts_if_needed() {
        let tuning = tuning();
        assert_eq!(next_step(&tuning, 1, true, true), pending(0, 1));
        assert_eq!(next_step(&tuning, 3, true, true), pending(0, 0));
    }
}
