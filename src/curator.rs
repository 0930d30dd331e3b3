//! Retention: Djinn CI's curator. Once per `[retention] interval`, across all processes, it
//! removes what the settings say has been kept long enough, and audits each removal:
//!
//! - dev snapshots of branches that no longer exist (`deleted_branches_after`): rows and files;
//! - the files of deleted tags (`unpublished_after`, off by default: lock files hold their
//!   checksums); the release row stays, so its version stays taken;
//! - `done` queue items (`finished_items_after`);
//! - audit rows (`audit_after`).
//!
//! It never touches a published release: only releases whose ref left the repository are
//! unpublished, and each removal checks that again in its own transaction, so a ref that came
//! back meanwhile wins. Rows go first, then files, and only files no row names any more: a
//! download never finds a row without its file.

use std::future::Future;
use std::time::Duration;

use entities::{curator_run, release, release_file};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, RelationTrait,
};
use serde::Serialize;

use crate::admin::Actor;
use crate::admin::audit::{self, AuditAction};
use crate::package::ReleaseKind;
use crate::queue::{Queue, QueueError};
use crate::store::Store;
use crate::web::documents::{Scope, refresh_on};
use entities::release::ReleaseStatus;

/// `[retention]`, checked: each `None` is `"off"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// How often the curator runs (`None`: never).
    pub interval: Option<Duration>,
    pub deleted_branches_after: Option<Duration>,
    pub unpublished_after: Option<Duration>,
    pub finished_items_after: Option<Duration>,
    pub audit_after: Option<Duration>,
}

const DAY: Duration = Duration::from_secs(86_400);

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            interval: Some(Duration::from_secs(3600)),
            deleted_branches_after: Some(30 * DAY),
            unpublished_after: None,
            finished_items_after: Some(30 * DAY),
            audit_after: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CuratorError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("database: {0}")]
    Db(#[from] DbErr),
    #[error("publishing documents: {0}")]
    Documents(#[from] crate::web::documents::RefreshError),
}

/// A release the next run removes (a dev snapshot) or strips of its files (a deleted tag).
#[derive(Debug, Clone, Serialize)]
pub struct Doomed {
    pub project: String,
    #[serde(skip)]
    project_id: i64,
    #[serde(skip)]
    release_id: i64,
    pub version: String,
    pub files: usize,
    pub bytes: i64,
    #[serde(skip)]
    names: Vec<String>,
}

/// What a run would remove now.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    pub dev_releases: Vec<Doomed>,
    pub tag_files: Vec<Doomed>,
    pub finished_items: u64,
    pub audit_rows: u64,
}

impl Plan {
    pub fn files(&self) -> usize {
        self.doomed().map(|d| d.files).sum()
    }

    pub fn bytes(&self) -> i64 {
        self.doomed().map(|d| d.bytes).sum()
    }

    fn doomed(&self) -> impl Iterator<Item = &Doomed> {
        self.dev_releases.iter().chain(&self.tag_files)
    }
}

/// What a run removed, as its `curator_runs` row records it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Removed {
    pub dev_releases: u64,
    pub tag_releases_stripped: u64,
    pub files: u64,
    pub bytes: i64,
    pub queue_items: u64,
    pub audit_rows: u64,
}

pub struct Curator {
    db: DatabaseConnection,
    queue: Queue,
    store: Store,
    policy: RetentionPolicy,
}

/// How often a curator looks whether a new interval has begun.
const POLL: Duration = Duration::from_secs(5);

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
                    Ok(_) => last_slot = Some(slot),
                    Err(e) => tracing::warn!(error = %e, "the retention run failed; trying again"),
                }
            }
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(POLL.min(interval)) => {}
            }
        }
    }

    /// Runs for `slot` unless another process claimed it; the run's record, if this one ran.
    pub async fn run_for_slot(&self, slot: i64) -> Result<Option<Removed>, CuratorError> {
        let claimed = curator_run::Entity::insert(curator_run::ActiveModel {
            slot: Set(slot),
            started_at: Set(crate::time::now_millis()),
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
            return Ok(None);
        }
        let removed = self.run().await?;
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
        Ok(Some(removed))
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
        let changing =
            refresh_on(&txn, Scope::Project(doomed.project_id), self.store.as_ref()).await?;
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

fn cutoff(age: Duration) -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now() - chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX)
}

/// What a run would remove now, by the policy.
pub async fn plan(
    db: &DatabaseConnection,
    queue: &Queue,
    policy: &RetentionPolicy,
) -> Result<Plan, CuratorError> {
    let mut plan = Plan::default();
    if let Some(age) = policy.deleted_branches_after {
        plan.dev_releases = unpublished(db, ReleaseKind::Dev, age).await?;
    }
    if let Some(age) = policy.unpublished_after {
        plan.tag_files = unpublished(db, ReleaseKind::Tag, age)
            .await?
            .into_iter()
            .filter(|d| d.files > 0)
            .collect();
    }
    if let Some(age) = policy.finished_items_after {
        plan.finished_items = queue.count_finished(age).await?;
    }
    if let Some(age) = policy.audit_after {
        plan.audit_rows =
            audit::count_before(db, crate::time::now_millis() - age.as_millis() as i64).await?;
    }
    Ok(plan)
}

/// Unpublished releases of `kind` unpublished more than `age` ago, with their files.
async fn unpublished(
    db: &DatabaseConnection,
    kind: ReleaseKind,
    age: Duration,
) -> Result<Vec<Doomed>, DbErr> {
    let releases: Vec<(i64, i64, String, String)> = release::Entity::find()
        .select_only()
        .column(release::Column::Id)
        .column(release::Column::ProjectId)
        .column(release::Column::Version)
        .column_as(entities::project::Column::Name, "project")
        .inner_join(entities::project::Entity)
        .filter(release::Column::Kind.eq(kind))
        .filter(release::Column::Status.eq(ReleaseStatus::Unpublished))
        .filter(release::Column::UpdatedAt.lt(cutoff(age)))
        .order_by_asc(release::Column::Id)
        .into_tuple()
        .all(db)
        .await?;
    let ids: Vec<i64> = releases.iter().map(|r| r.0).collect();
    let files = release_file::Entity::find()
        .filter(release_file::Column::ReleaseId.is_in(ids))
        .all(db)
        .await?;
    Ok(releases
        .into_iter()
        .map(|(release_id, project_id, version, project)| {
            let own: Vec<&release_file::Model> = files
                .iter()
                .filter(|f| f.release_id == release_id)
                .collect();
            Doomed {
                project,
                project_id,
                release_id,
                version,
                files: own.len(),
                bytes: own.iter().map(|f| f.size).sum(),
                names: own.iter().map(|f| f.name.clone()).collect(),
            }
        })
        .collect())
}

/// Files and bytes each project keeps, as the admin page shows them.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectStorage {
    pub project: String,
    pub files: i64,
    pub bytes: i64,
}

pub async fn storage_by_project(db: &DatabaseConnection) -> Result<Vec<ProjectStorage>, DbErr> {
    let files: Vec<(String, i64)> = release_file::Entity::find()
        .select_only()
        .column_as(entities::project::Column::Name, "project")
        .column(release_file::Column::Size)
        .join(
            sea_orm::JoinType::InnerJoin,
            release_file::Relation::Release.def(),
        )
        .join(
            sea_orm::JoinType::InnerJoin,
            release::Relation::Project.def(),
        )
        .into_tuple()
        .all(db)
        .await?;
    let mut by_project: std::collections::BTreeMap<String, ProjectStorage> = Default::default();
    for (project, size) in files {
        let entry = by_project.entry(project.clone()).or_insert(ProjectStorage {
            project,
            files: 0,
            bytes: 0,
        });
        entry.files += 1;
        entry.bytes += size;
    }
    Ok(by_project.into_values().collect())
}

/// The last run, as recorded.
pub async fn last_run(db: &DatabaseConnection) -> Result<Option<curator_run::Model>, DbErr> {
    curator_run::Entity::find()
        .order_by_desc(curator_run::Column::Slot)
        .one(db)
        .await
}
