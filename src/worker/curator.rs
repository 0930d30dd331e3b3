//! The retention curator: once per `[retention] interval`, across all processes, carries out
//! what [`crate::retention::plan`] finds, each removal in its own audited transaction. A run
//! claims its interval with a `curator_runs` row (unique per interval), so processes never run
//! it twice for one interval, and waits while another run is under way, so runs never overlap.

use std::future::Future;
use std::time::Duration;

use entities::release::ReleaseStatus;
use entities::{curator_run, release, release_file};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use crate::admin::Actor;
use crate::admin::audit::{self, AuditAction};
use crate::package::ReleaseKind;
use crate::queue::Queue;
use crate::retention::{CuratorError, Doomed, Removed, RetentionPolicy, cutoff, plan};
use crate::store::Store;
use crate::web::documents::{Scope, refresh_on};

/// How often a curator looks whether a new interval has begun.
const POLL: Duration = Duration::from_secs(5);

pub struct Curator {
    db: DatabaseConnection,
    queue: Queue,
    store: Store,
    policy: RetentionPolicy,
}

/// A run that has not finished after this long is taken for dead (its process stopped), and
/// no longer keeps the next one from starting.
const RUN_LEASE: Duration = Duration::from_secs(15 * 60);

/// What a curator did with an interval.
#[derive(Debug)]
pub enum Turn {
    Ran(Removed),
    /// Another process claimed the interval.
    Taken,
    /// A run is still under way: asked again at the next look.
    Busy,
}

impl Curator {
    pub fn new(
        db: DatabaseConnection,
        queue: Queue,
        store: Store,
        policy: RetentionPolicy,
    ) -> Self {
        Curator {
            db,
            queue,
            store,
            policy,
        }
    }

    /// Runs once per interval (the first at start) until `stop`; with `interval = "off"`,
    /// never.
    pub async fn run_until(self, stop: impl Future<Output = ()>) {
        let Some(interval) = self.policy.interval else {
            return stop.await;
        };
        let interval_ms = (interval.as_millis() as i64).max(1);
        tokio::pin!(stop);
        let mut last_slot = None;
        loop {
            let slot = crate::time::now_millis() / interval_ms;
            if last_slot != Some(slot) {
                match self.run_for_slot(slot).await {
                    Ok(Turn::Busy) => {}
                    Ok(Turn::Ran(_) | Turn::Taken) => last_slot = Some(slot),
                    Err(e) => {
                        // Recorded with its run; the next interval tries again.
                        tracing::warn!(error = %e, "the retention run failed");
                        last_slot = Some(slot);
                    }
                }
            }
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(POLL.min(interval)) => {}
            }
        }
    }

    /// Runs for `slot` unless another process claimed it, or a run is still under way (one
    /// at a time, even when a run outlasts its interval). The run's record is written whether
    /// it succeeds or fails; a failed run is tried again in the next interval.
    pub async fn run_for_slot(&self, slot: i64) -> Result<Turn, CuratorError> {
        let now = crate::time::now_millis();
        let under_way = curator_run::Entity::find()
            .filter(curator_run::Column::FinishedAt.is_null())
            .filter(curator_run::Column::StartedAt.gt(now - RUN_LEASE.as_millis() as i64))
            .one(&self.db)
            .await?;
        if under_way.is_some() {
            return Ok(Turn::Busy);
        }
        let claimed = curator_run::Entity::insert(curator_run::ActiveModel {
            slot: Set(slot),
            started_at: Set(now),
            ..Default::default()
        })
        .on_conflict(
            OnConflict::column(curator_run::Column::Slot)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await?;
        if claimed == 0 {
            return Ok(Turn::Taken);
        }
        let outcome = self.run().await;
        let removed = match &outcome {
            Ok(removed) => removed.clone(),
            Err(e) => Removed {
                error: Some(e.to_string()),
                ..Removed::default()
            },
        };
        curator_run::Entity::update_many()
            .col_expr(
                curator_run::Column::FinishedAt,
                sea_orm::sea_query::Expr::value(Some(crate::time::now_millis())),
            )
            .col_expr(
                curator_run::Column::Removed,
                sea_orm::sea_query::Expr::value(Some(
                    serde_json::to_string(&removed).expect("counts serialise"),
                )),
            )
            .filter(curator_run::Column::Slot.eq(slot))
            .exec(&self.db)
            .await?;
        tracing::info!(?removed, "retention run finished");
        outcome.map(Turn::Ran)
    }

    /// One run: what [`plan`] finds, removed, each part audited.
    pub async fn run(&self) -> Result<Removed, CuratorError> {
        let plan = plan(&self.db, &self.queue, &self.policy).await?;
        let mut removed = Removed::default();
        for doomed in &plan.dev_releases {
            if self.remove_release(doomed, ReleaseKind::Dev).await? {
                removed.dev_releases += 1;
                removed.files += doomed.files as u64;
                removed.bytes += doomed.bytes;
            }
        }
        for doomed in &plan.tag_files {
            if self.remove_release(doomed, ReleaseKind::Tag).await? {
                removed.tag_releases_stripped += 1;
                removed.files += doomed.files as u64;
                removed.bytes += doomed.bytes;
            }
        }
        if let Some(age) = self.policy.finished_items_after
            && plan.finished_items > 0
        {
            removed.queue_items = self.prune_items(age).await?;
        }
        if let Some(age) = self.policy.audit_after
            && plan.audit_rows > 0
        {
            removed.audit_rows = self.prune_audit(age).await?;
        }
        Ok(removed)
    }

    /// Removes a dev snapshot (rows and files) or a deleted tag's files (the row stays), if
    /// it is still unpublished and old enough; false if it came back meanwhile.
    async fn remove_release(
        &self,
        doomed: &Doomed,
        kind: ReleaseKind,
    ) -> Result<bool, CuratorError> {
        let age = match kind {
            ReleaseKind::Dev => self.policy.deleted_branches_after,
            ReleaseKind::Tag => self.policy.unpublished_after,
        };
        let Some(age) = age else {
            return Ok(false);
        };
        let txn = crate::db::begin_write(&self.db).await?;
        let still_doomed = release::Entity::find_by_id(doomed.release_id)
            .filter(release::Column::Status.eq(ReleaseStatus::Unpublished))
            .filter(release::Column::UpdatedAt.lt(cutoff(age)))
            .one(&txn)
            .await?
            .is_some();
        if !still_doomed {
            txn.rollback().await?;
            return Ok(false);
        }
        release_file::Entity::delete_many()
            .filter(release_file::Column::ReleaseId.eq(doomed.release_id))
            .exec(&txn)
            .await?;
        let action = match kind {
            ReleaseKind::Dev => {
                release::Entity::delete_by_id(doomed.release_id)
                    .exec(&txn)
                    .await?;
                AuditAction::RetentionRelease
            }
            ReleaseKind::Tag => AuditAction::RetentionFiles,
        };
        let changing = refresh_on(&txn, Scope::Project(doomed.project_id), self.store.as_ref())
            .await
            .map_err(|e| CuratorError::Documents(e.to_string()))?;
        audit::record(
            &txn,
            &Actor::curator(),
            action,
            &format!("release {} {}", doomed.project, doomed.version),
            Some(format!("{} files, {} bytes", doomed.files, doomed.bytes)),
        )
        .await?;
        txn.commit().await?;
        drop(changing);
        for name in &doomed.names {
            // A job may have recorded a new file under the same name meanwhile.
            if crate::releases::find_download(&self.db, doomed.project_id, name)
                .await?
                .is_some()
            {
                continue;
            }
            if let Err(e) = self.store.remove(&doomed.project, name).await {
                tracing::warn!(file = %name, error = %e, "retention could not remove a file");
            }
        }
        tracing::info!(project = %doomed.project, version = %doomed.version, ?kind,
            "retention removed a release's files");
        Ok(true)
    }

    async fn prune_items(&self, age: Duration) -> Result<u64, CuratorError> {
        let txn = crate::db::begin_write(&self.db).await?;
        let removed = self.queue.remove_finished_on(&txn, age).await?;
        if removed > 0 {
            audit::record(
                &txn,
                &Actor::curator(),
                AuditAction::RetentionItems,
                "queue",
                Some(format!("removed {removed} done items")),
            )
            .await?;
        }
        txn.commit().await?;
        Ok(removed)
    }

    async fn prune_audit(&self, age: Duration) -> Result<u64, CuratorError> {
        let txn = crate::db::begin_write(&self.db).await?;
        let removed =
            audit::prune_on(&txn, crate::time::now_millis() - age.as_millis() as i64).await?;
        if removed > 0 {
            audit::record(
                &txn,
                &Actor::curator(),
                AuditAction::RetentionAudit,
                "audit log",
                Some(format!("removed {removed} rows")),
            )
            .await?;
        }
        txn.commit().await?;
        Ok(removed)
    }
}
