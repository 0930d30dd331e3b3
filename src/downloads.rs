//! Download statistics, as Packagist and drupal.org keep them: downloads per file and UTC day.
//!
//! A download adds one to a count in memory ([`DownloadCounter::count`], a lock held for one
//! map update); [`DownloadCounter::run_until`] adds the counts to `download_counts` in one
//! transaction every `http.downloads_flush_seconds` (10 s by default) and when the server
//! stops. A flush that fails puts its counts back, to go with the next one. A process killed
//! with SIGKILL loses the counts since the last flush, at most one interval.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use entities::download_count;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    AccessMode, ActiveValue::Set, ColumnTrait, DatabaseBackend, DatabaseConnection, DbErr,
    EntityTrait, IsolationLevel, QueryFilter, QuerySelect, TransactionTrait,
};

/// What one count is of: a project's file on a day.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    project_id: i64,
    file: String,
    day: NaiveDate,
}

/// Counts not written yet, shared by every request of this process.
#[derive(Clone, Default)]
pub struct DownloadCounter {
    pending: Arc<Mutex<HashMap<Key, i64>>>,
    /// Off (`http.count_downloads = false`): nothing is counted.
    off: bool,
}

impl DownloadCounter {
    pub fn new(enabled: bool) -> DownloadCounter {
        DownloadCounter {
            pending: Arc::default(),
            off: !enabled,
        }
    }

    /// One download of `file` of the project, today (UTC).
    pub fn count(&self, project_id: i64, file: &str) {
        if self.off {
            return;
        }
        let key = Key {
            project_id,
            file: file.to_string(),
            day: Utc::now().date_naive(),
        };
        *self.lock().entry(key).or_default() += 1;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, i64>> {
        // A panic while holding the lock leaves a map that is still whole.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the counts so far in one transaction; on failure they are kept for the next.
    pub async fn flush(&self, db: &DatabaseConnection) -> Result<usize, DbErr> {
        let batch = std::mem::take(&mut *self.lock());
        if batch.is_empty() {
            return Ok(0);
        }
        match write(db, &batch).await {
            Ok(()) => Ok(batch.len()),
            Err(e) => {
                let mut pending = self.lock();
                for (key, n) in batch {
                    *pending.entry(key).or_default() += n;
                }
                Err(e)
            }
        }
    }

    /// Flushes every `interval` until `stop`, then once more.
    pub async fn run_until(
        self,
        db: DatabaseConnection,
        interval: Duration,
        stop: impl std::future::Future<Output = ()>,
    ) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = &mut stop => break,
            }
            if let Err(e) = self.flush(&db).await {
                tracing::warn!(error = %e, "download counts not written; kept for the next flush");
            }
        }
        if let Err(e) = self.flush(&db).await {
            tracing::warn!(error = %e, "download counts lost at shutdown");
        }
    }
}

async fn write(db: &DatabaseConnection, batch: &HashMap<Key, i64>) -> Result<(), DbErr> {
    // In key order: two web processes flushing the same files lock their rows in the same
    // order, so PostgreSQL never finds them waiting on each other (a deadlock it had to break).
    let mut rows: Vec<(&Key, &i64)> = batch.iter().collect();
    rows.sort_by(|a, b| a.0.cmp(b.0));
    let txn = crate::db::begin_write(db).await?;
    for (key, n) in rows {
        download_count::Entity::insert(download_count::ActiveModel {
            project_id: Set(key.project_id),
            file: Set(key.file.clone()),
            day: Set(key.day.to_string()),
            downloads: Set(*n),
        })
        .on_conflict(
            OnConflict::columns([
                download_count::Column::ProjectId,
                download_count::Column::File,
                download_count::Column::Day,
            ])
            .value(
                download_count::Column::Downloads,
                Expr::col((download_count::Entity, download_count::Column::Downloads)).add(*n),
            )
            .to_owned(),
        )
        .exec(&txn)
        .await?;
    }
    txn.commit().await
}

/// PostgreSQL sums `BIGINT`s as `NUMERIC`; both databases read this back as an `i64`.
const SUM_OF_DOWNLOADS: &str = "CAST(SUM(downloads) AS BIGINT)";

/// A project's written counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectCounts {
    pub total: i64,
    /// Downloads per day on the days asked for, oldest first; days without any are 0.
    pub days: Vec<(NaiveDate, i64)>,
    /// All-time downloads per file name.
    pub files: HashMap<String, i64>,
}

/// The counts of `project_id`: all-time per file, and per day over the `days` days up to and
/// including today (UTC).
pub async fn project_counts(
    db: &DatabaseConnection,
    project_id: i64,
    days: u32,
) -> Result<ProjectCounts, DbErr> {
    let today = Utc::now().date_naive();
    let first = today - chrono::Days::new(u64::from(days.saturating_sub(1)));
    // Both reads from one snapshot, so a flush between them cannot make the days disagree
    // with the total: PostgreSQL needs REPEATABLE READ for that; SQLite's deferred
    // transaction keeps the snapshot of its first read.
    let db = &match db.get_database_backend() {
        DatabaseBackend::Postgres => {
            db.begin_with_config(
                Some(IsolationLevel::RepeatableRead),
                Some(AccessMode::ReadOnly),
            )
            .await?
        }
        _ => db.begin().await?,
    };
    let by_day: HashMap<String, i64> = download_count::Entity::find()
        .select_only()
        .column(download_count::Column::Day)
        .column_as(Expr::cust(SUM_OF_DOWNLOADS), "downloads")
        .filter(download_count::Column::ProjectId.eq(project_id))
        .filter(download_count::Column::Day.gte(first.to_string()))
        .group_by(download_count::Column::Day)
        .into_tuple::<(String, Option<i64>)>()
        .all(db)
        .await?
        .into_iter()
        .map(|(day, n)| (day, n.unwrap_or(0)))
        .collect();
    let files: HashMap<String, i64> = download_count::Entity::find()
        .select_only()
        .column(download_count::Column::File)
        .column_as(Expr::cust(SUM_OF_DOWNLOADS), "downloads")
        .filter(download_count::Column::ProjectId.eq(project_id))
        .group_by(download_count::Column::File)
        .into_tuple::<(String, Option<i64>)>()
        .all(db)
        .await?
        .into_iter()
        .map(|(file, n)| (file, n.unwrap_or(0)))
        .collect();
    let days = first
        .iter_days()
        .take_while(|day| *day <= today)
        .map(|day| (day, by_day.get(&day.to_string()).copied().unwrap_or(0)))
        .collect();
    Ok(ProjectCounts {
        total: files.values().sum(),
        days,
        files,
    })
}
