//! Retention: what Djinn CI's curator removes, and what it keeps. Once per `[retention]
//! interval`, across all processes, the curator (`worker::curator`, which carries out what
//! this module decides) removes what the settings say has been kept long enough, and audits
//! each removal:
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

use std::time::Duration;

use entities::release::ReleaseStatus;
use entities::{curator_run, release, release_file};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    RelationTrait,
};
use serde::Serialize;

use crate::admin::audit;
pub use crate::config::RetentionPolicy;
use crate::package::ReleaseKind;
use crate::queue::{Queue, QueueError};

#[derive(Debug, thiserror::Error)]
pub enum CuratorError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("database: {0}")]
    Db(#[from] DbErr),
    /// The documents could not be published again after a removal (the removal rolled back).
    #[error("publishing documents: {0}")]
    Documents(String),
}

/// A release the next run removes (a dev snapshot) or strips of its files (a deleted tag).
#[derive(Debug, Clone, Serialize)]
pub struct Doomed {
    pub project: String,
    #[serde(skip)]
    pub(crate) project_id: i64,
    #[serde(skip)]
    pub(crate) release_id: i64,
    pub version: String,
    pub files: usize,
    pub bytes: i64,
    #[serde(skip)]
    pub(crate) names: Vec<String>,
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
    /// Why the run stopped part-way, if it did (what it removed before stays removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The time before which a release was unpublished long enough.
pub fn cutoff(age: Duration) -> chrono::DateTime<chrono::Utc> {
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
