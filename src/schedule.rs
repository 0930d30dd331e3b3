//! Scheduled rescans: Djinn CI's scheduler, and the backstop for deliveries a host dropped.
//! Every project is rescanned every `rescan_every` (its own, or `[schedule]`'s): a queue item
//! like an admin's rebuild, which fetches and releases every matching branch and tag
//! idempotently, and merges into a waiting item like any push.
//!
//! - **Spread:** a project's first due time is its interval times a fraction taken from a hash
//!   of its name, so 1,000 projects on the same interval do not fire together; later ones
//!   follow at whole intervals from it.
//! - **Once across processes:** every process runs a [`Scheduler`]. A due time is claimed by
//!   moving `projects.rescan_due_at` past it with a compare-and-set, in the transaction that
//!   queues the rescan and writes its `project_rescans` row (unique per project and due
//!   time), so each due time gives one rescan.

use std::future::Future;
use std::time::Duration;

use entities::{project, project_rescan, queue_item};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::queue::{Queue, QueueError};

/// How often the scheduler looks for due rescans.
const POLL: Duration = Duration::from_secs(1);

pub struct Scheduler {
    db: DatabaseConnection,
    queue: Queue,
}

impl Scheduler {
    pub fn new(db: DatabaseConnection, queue: Queue) -> Scheduler {
        Scheduler { db, queue }
    }

    pub async fn run_until(self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            if let Err(e) = self.tick().await {
                tracing::warn!(error = %e, "could not queue scheduled rescans; trying again");
            }
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Spreads the projects that have no due time yet, then queues every rescan that is due.
    /// Returns how many this process queued.
    pub async fn tick(&self) -> Result<usize, QueueError> {
        let now = crate::time::now_millis();
        let scheduled = project::Entity::find()
            .filter(project::Column::DisabledAt.is_null())
            .filter(project::Column::RescanEveryMs.is_not_null())
            .filter(
                sea_orm::Condition::any()
                    .add(project::Column::RescanDueAt.is_null())
                    .add(project::Column::RescanDueAt.lte(now)),
            )
            .all(&self.db)
            .await?;
        let mut queued = 0;
        for found in scheduled {
            let Some(every) = found.rescan_every_ms.filter(|every| *every > 0) else {
                continue;
            };
            match found.rescan_due_at {
                None => self.spread(&found, now, every).await?,
                Some(due) => {
                    if self.claim_and_queue(&found, due, now, every).await? {
                        queued += 1;
                    }
                }
            }
        }
        if queued > 0 {
            self.queue.announce().await;
        }
        Ok(queued)
    }

    /// Gives a project its first due time, unless another process just did.
    async fn spread(&self, found: &project::Model, now: i64, every: i64) -> Result<(), QueueError> {
        let due = now + offset(&found.name, every);
        project::Entity::update_many()
            .col_expr(project::Column::RescanDueAt, Expr::value(due))
            .filter(project::Column::Id.eq(found.id))
            .filter(project::Column::RescanDueAt.is_null())
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Claims the due time `due` and queues its rescan, in one transaction; false when another
    /// process claimed it first.
    async fn claim_and_queue(
        &self,
        found: &project::Model,
        due: i64,
        now: i64,
        every: i64,
    ) -> Result<bool, QueueError> {
        let txn = crate::db::begin_write(&self.db).await?;
        let moved = project::Entity::update_many()
            .col_expr(
                project::Column::RescanDueAt,
                Expr::value(next_due(due, now, every)),
            )
            .filter(project::Column::Id.eq(found.id))
            .filter(project::Column::RescanDueAt.eq(due))
            .exec(&txn)
            .await?;
        if moved.rows_affected != 1 {
            txn.rollback().await?;
            return Ok(false);
        }
        let queued = self.queue.rebuild_on(&txn, found.id).await?;
        project_rescan::Entity::insert(project_rescan::ActiveModel {
            project_id: Set(found.id),
            due_at: Set(due),
            claimed_at: Set(now),
            item: Set(Some(queued.item)),
            ..Default::default()
        })
        .on_conflict(
            OnConflict::columns([
                project_rescan::Column::ProjectId,
                project_rescan::Column::DueAt,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
        txn.commit().await?;
        tracing::info!(project = %found.name, item = queued.item, merged = queued.merged,
            "scheduled rescan queued");
        Ok(true)
    }
}

/// Where in its interval a project's rescans fall: a fraction of `every` from a hash of its
/// name (stable across processes and restarts).
fn offset(name: &str, every: i64) -> i64 {
    let digest = Sha256::digest(name.as_bytes());
    let fraction = u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"));
    (fraction % every.max(1) as u64) as i64
}

/// The first due time after `now` at whole intervals from `due`: a process that was down for
/// several intervals queues one rescan, not one per interval missed.
fn next_due(due: i64, now: i64, every: i64) -> i64 {
    let missed = (now - due).max(0) / every + 1;
    due + missed * every
}

/// A project's rescans, as the admin page and the admin fields of the project API show them.
#[derive(Debug, Clone, Serialize)]
pub struct RescanStatus {
    /// `"6h"`, or `"off"`.
    pub every: String,
    /// When the next one is due (none when off, or before the scheduler first spread it).
    pub next_due_at: Option<String>,
    pub last: Option<LastRescan>,
}

/// The last rescan and what became of it.
#[derive(Debug, Clone, Serialize)]
pub struct LastRescan {
    pub due_at: String,
    pub queued_at: String,
    pub item: Option<i64>,
    /// The item's state (`pending`, `running`, `done`, `failed`), or `gone` when an admin
    /// removed it or it merged into another.
    pub state: String,
    pub error: Option<String>,
}

/// The rescans of project `project_id` (none if there is no such project).
pub async fn status(
    db: &DatabaseConnection,
    project_id: i64,
) -> Result<Option<RescanStatus>, sea_orm::DbErr> {
    let Some(found) = project::Entity::find_by_id(project_id).one(db).await? else {
        return Ok(None);
    };
    let shown = |millis: i64| crate::time::rfc3339(crate::time::from_millis(millis));
    let every = match found.rescan_every_ms {
        Some(ms) => humantime::format_duration(Duration::from_millis(ms as u64)).to_string(),
        None => "off".to_string(),
    };
    let latest = project_rescan::Entity::find()
        .filter(project_rescan::Column::ProjectId.eq(found.id))
        .order_by_desc(project_rescan::Column::DueAt)
        .one(db)
        .await?;
    let last = match latest {
        None => None,
        Some(row) => {
            let item = match row.item {
                Some(id) => queue_item::Entity::find_by_id(id).one(db).await?,
                None => None,
            };
            Some(LastRescan {
                due_at: shown(row.due_at),
                queued_at: shown(row.claimed_at),
                item: row.item,
                state: item
                    .as_ref()
                    .map_or_else(|| "gone".to_string(), |i| i.state.clone()),
                error: item.and_then(|i| i.last_error),
            })
        }
    };
    Ok(Some(RescanStatus {
        every,
        next_due_at: found.rescan_every_ms.and(found.rescan_due_at).map(shown),
        last,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_times_follow_whole_intervals_and_skip_what_was_missed() {
        assert_eq!(next_due(1_000, 1_000, 500), 1_500);
        assert_eq!(next_due(1_000, 1_499, 500), 1_500);
        assert_eq!(next_due(1_000, 1_500, 500), 2_000);
        assert_eq!(next_due(1_000, 9_999, 500), 10_000);
    }

    #[test]
    fn a_thousand_projects_spread_over_the_interval() {
        let every = 6 * 3600 * 1000;
        let mut per_hour = [0u32; 6];
        for n in 0..1000 {
            let at = offset(&format!("project_{n}"), every);
            assert!((0..every).contains(&at));
            per_hour[(at / (3600 * 1000)) as usize] += 1;
        }
        // About 167 an hour; none crowded, none empty.
        assert!(
            per_hour.iter().all(|&n| (120..220).contains(&n)),
            "{per_hour:?}"
        );
        assert_eq!(offset("webform", every), offset("webform", every));
    }
}
