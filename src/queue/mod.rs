//! The deduplicated, persistent queue: one pending item per project, merged in place by later
//! pushes, claimed with leases, acknowledged by revision. This module is the only writer of
//! queue rows; apalis drives the workers over it through [`backend::TableBackend`].

pub mod backend;
mod claims;
mod intake;
mod operations;
mod refs;
mod requeue;
mod state;

use std::sync::Arc;
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, Statement, Value};
use tokio::sync::Notify;

use crate::db::WriteGate;

pub use claims::ClaimedItem;
pub use operations::{QueueItemView, QueueListing};
pub use refs::PendingRefs;
pub use state::QueueState;

/// How long a claim holds without a heartbeat, how often workers renew it, and the retry
/// backoff. `Config::queue_tuning` makes it from the `[queue]` settings; tests shorten it.
#[derive(Debug, Clone)]
pub struct QueueTuning {
    pub lease: Duration,
    pub heartbeat: Duration,
    /// How often an idle worker looks at the table for work queued by other processes.
    pub idle_poll: Duration,
    /// The first retry waits this long; each further attempt doubles it, up to an hour.
    pub backoff: Duration,
    pub max_attempts: u32,
}

/// The answer to a webhook that queued work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Enqueued {
    pub item: i64,
    /// 1-based place among pending items.
    pub position: i64,
    /// True when the push merged into an item that was already waiting.
    pub merged: bool,
}

/// Counts for the home page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounts {
    pub pending: i64,
    pub running: i64,
    pub failed: i64,
    pub paused: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("database: {0}")]
    Db(#[from] DbErr),
    #[error("queue item {0} holds refs that are not valid JSON: {1}")]
    BadRefs(i64, serde_json::Error),
    #[error("no queue item {0}")]
    NotFound(i64),
    #[error("{0}")]
    Conflict(String),
    #[error("queue_items: {0}")]
    UnknownState(#[from] crate::names::UnknownName),
}

/// The database's clock in Unix milliseconds, as SQL. Queue timestamps come from the
/// database, read inside the statement that writes them, so leases and claim times agree
/// across worker hosts whatever their clocks say, and follow the order of commits.
fn now_sql(backend: DatabaseBackend) -> &'static str {
    match backend {
        DatabaseBackend::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        _ => "CAST(ROUND((julianday('now') - 2440587.5) * 86400000) AS INTEGER)",
    }
}

#[derive(Clone)]
pub struct Queue {
    db: DatabaseConnection,
    wake: Arc<Notify>,
    tuning: QueueTuning,
    gate: WriteGate,
    /// SQLite's group-commit writer for webhook upserts, started on first use.
    intake: Arc<std::sync::OnceLock<intake::IntakeWriter>>,
}

impl Queue {
    pub fn new(db: DatabaseConnection, tuning: QueueTuning) -> Queue {
        Queue {
            gate: WriteGate::for_database(&db),
            db,
            wake: Arc::new(Notify::new()),
            tuning,
            intake: Arc::default(),
        }
    }

    pub fn tuning(&self) -> &QueueTuning {
        &self.tuning
    }

    /// The gate this queue's webhook upserts pass; the deliveries log shares it.
    pub fn write_gate(&self) -> WriteGate {
        self.gate.clone()
    }

    fn backend(&self) -> DatabaseBackend {
        self.db.get_database_backend()
    }

    /// A statement; `{now}` in `sql` becomes the database's clock.
    fn statement(&self, sql: &str, values: Vec<Value>) -> Statement {
        Statement::from_sql_and_values(
            self.backend(),
            sql.replace("{now}", now_sql(self.backend())),
            values,
        )
    }

    /// Queues `refs` for a project in one atomic statement: a new pending item, or a merge into
    /// the project's pending item (latest commit per branch wins, tags accumulate, revision
    /// rises; id, position and enqueue time stay). The unique index over pending items makes
    /// the insert and the merge a single decision of the database, with no read before it.
    pub async fn enqueue(
        &self,
        project_id: i64,
        refs: &PendingRefs,
    ) -> Result<Enqueued, QueueError> {
        let queued = self
            .enqueue_with(&self.db, project_id, refs, false, None)
            .await?
            .ok_or(DbErr::RecordNotInserted)?;
        self.wake_for(queued).await;
        Ok(queued)
    }

    /// [`Queue::enqueue`] for a webhook delivery: `None`, with nothing changed, when the
    /// deliveries log already holds an accepted delivery with `replay_key` (a redelivery).
    /// The check is part of the upsert statement, which spares the hot path a round trip.
    pub async fn enqueue_delivery(
        &self,
        project_id: i64,
        refs: &PendingRefs,
        replay_key: Option<&str>,
        commit_timeout: std::time::Duration,
    ) -> Result<Option<Enqueued>, QueueError> {
        let queued = match self.backend() {
            DatabaseBackend::Sqlite => {
                let upsert = intake::Upsert {
                    project_id,
                    refs: refs.clone(),
                    replay_key: replay_key.map(str::to_string),
                };
                self.intake_writer().submit(upsert).await.map_err(|_| {
                    QueueError::Db(DbErr::Custom("the intake writer stopped".into()))
                })??
            }
            // The upsert waits for row locks at most `commit_timeout`: the server gives up on
            // it, so an upsert whose webhook was already answered 503 cannot commit later.
            _ => {
                let txn = crate::db::begin_write(&self.db).await?;
                txn.execute_unprepared(&format!(
                    "SET LOCAL statement_timeout = {}",
                    commit_timeout.as_millis().max(1)
                ))
                .await?;
                let queued = self
                    .enqueue_with(&txn, project_id, refs, false, replay_key)
                    .await?;
                txn.commit().await?;
                queued
            }
        };
        if let Some(queued) = queued {
            self.wake_for(queued).await;
        }
        Ok(queued)
    }

    fn intake_writer(&self) -> &intake::IntakeWriter {
        self.intake.get_or_init(|| {
            intake::start(Queue {
                intake: Arc::default(),
                ..self.clone()
            })
        })
    }

    async fn wake_for(&self, queued: Enqueued) {
        if queued.merged {
            // The item was already waiting and was announced when it was queued; this spares
            // PostgreSQL a NOTIFY per push in a burst. (A merge into an item waiting out a
            // retry backoff makes it claimable at once; other processes see that at their
            // next poll.)
            self.wake.notify_one();
        } else {
            self.announce().await;
        }
    }

    /// [`Queue::enqueue`] inside the caller's transaction; the caller announces the work once
    /// it has committed.
    pub(crate) async fn enqueue_on<C: ConnectionTrait>(
        &self,
        conn: &C,
        project_id: i64,
        refs: &PendingRefs,
    ) -> Result<Enqueued, QueueError> {
        Ok(self
            .enqueue_with(conn, project_id, refs, false, None)
            .await?
            .ok_or(DbErr::RecordNotInserted)?)
    }

    /// Queues a full rescan of a project: every branch and tag matching its patterns.
    pub async fn rebuild(&self, project_id: i64) -> Result<Enqueued, QueueError> {
        let queued = self.rebuild_on(&self.db, project_id).await?;
        self.announce().await;
        Ok(queued)
    }

    /// [`Queue::rebuild`] inside the caller's transaction; the caller announces the work once
    /// it has committed.
    pub(crate) async fn rebuild_on<C: ConnectionTrait>(
        &self,
        conn: &C,
        project_id: i64,
    ) -> Result<Enqueued, QueueError> {
        Ok(self
            .enqueue_with(conn, project_id, &PendingRefs::default(), true, None)
            .await?
            .ok_or(DbErr::RecordNotInserted)?)
    }

    /// The upsert. Its position comes back with it: pending items before it, plus one (on
    /// PostgreSQL the subquery sees the table as it was before the statement, on SQLite as it
    /// is after; counting only earlier ids gives the same answer either way).
    pub(super) async fn enqueue_with<C: ConnectionTrait>(
        &self,
        conn: &C,
        project_id: i64,
        refs: &PendingRefs,
        scan_all: bool,
        replay_key: Option<&str>,
    ) -> Result<Option<Enqueued>, QueueError> {
        let merge = match self.backend() {
            DatabaseBackend::Postgres => {
                "branches = (queue_items.branches::jsonb || excluded.branches::jsonb)::text, \
                 tags = (queue_items.tags::jsonb || excluded.tags::jsonb)::text"
            }
            _ => {
                "branches = json_patch(queue_items.branches, excluded.branches), \
                 tags = json_patch(queue_items.tags, excluded.tags)"
            }
        };
        // `replay_key = NULL` is never true: without a key the row is always written.
        let sql = format!(
            "INSERT INTO queue_items \
               (project_id, state, branches, tags, scan_all, revision, attempts, enqueued_at, updated_at, available_at) \
             SELECT $1, 'pending', $2, $3, $4, 1, 0, {{now}}, {{now}}, {{now}} \
             WHERE NOT EXISTS (SELECT 1 FROM deliveries d \
                               WHERE d.project_id = $1 AND d.replay_key = $5) \
             ON CONFLICT (project_id) WHERE state = 'pending' DO UPDATE SET {merge}, \
               scan_all = queue_items.scan_all OR excluded.scan_all, \
               revision = queue_items.revision + 1, \
               updated_at = excluded.updated_at, \
               available_at = excluded.available_at \
             RETURNING id, revision, \
               (SELECT COUNT(*) FROM queue_items p \
                WHERE p.state = 'pending' AND p.id < queue_items.id) + 1 AS position"
        );
        let row = conn
            .query_one_raw(self.statement(
                &sql,
                vec![
                    project_id.into(),
                    refs.branches_json().into(),
                    refs.tags_json().into(),
                    scan_all.into(),
                    replay_key.map(str::to_string).into(),
                ],
            ))
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let revision: i32 = row.try_get("", "revision")?;
        Ok(Some(Enqueued {
            item: row.try_get("", "id")?,
            position: row.try_get("", "position")?,
            merged: revision > 1,
        }))
    }

    /// How many items are in each state a committed item can be in (0 for a state with none).
    pub async fn counts_by_state(&self) -> Result<Vec<(QueueState, i64)>, QueueError> {
        let rows = self
            .db
            .query_all_raw(self.statement(
                "SELECT state, COUNT(*) AS n FROM queue_items GROUP BY state",
                vec![],
            ))
            .await?;
        let mut counts: Vec<(QueueState, i64)> = [
            QueueState::Pending,
            QueueState::Running,
            QueueState::Done,
            QueueState::Failed,
        ]
        .into_iter()
        .map(|state| (state, 0))
        .collect();
        for row in rows {
            let state = QueueState::of_row(&row)?;
            let n: i64 = row.try_get("", "n")?;
            match counts.iter_mut().find(|(known, _)| *known == state) {
                Some((_, count)) => *count = n,
                None => counts.push((state, n)),
            }
        }
        Ok(counts)
    }

    /// Pending, running and failed counts, and whether claiming is paused.
    pub async fn counts(&self) -> Result<QueueCounts, QueueError> {
        let rows = self
            .db
            .query_all_raw(self.statement(
                "SELECT state, COUNT(*) AS n FROM queue_items \
                 WHERE state IN ('pending', 'running', 'failed') GROUP BY state",
                vec![],
            ))
            .await?;
        let mut counts = QueueCounts::default();
        for row in rows {
            let n: i64 = row.try_get("", "n")?;
            match QueueState::of_row(&row)? {
                QueueState::Pending => counts.pending = n,
                QueueState::Running => counts.running = n,
                _ => counts.failed = n,
            }
        }
        let paused = self
            .db
            .query_one_raw(self.statement("SELECT paused FROM queue_control WHERE id = 1", vec![]))
            .await?;
        counts.paused = match paused {
            Some(row) => row.try_get("", "paused")?,
            None => false,
        };
        Ok(counts)
    }

    /// Stops (or resumes) claiming; webhooks still queue. The switch is a row, so it survives
    /// a restart and holds for every worker process.
    pub async fn set_paused(&self, paused: bool) -> Result<(), QueueError> {
        self.set_paused_on(&self.db, paused).await?;
        self.announce().await;
        Ok(())
    }

    /// [`Queue::set_paused`] inside the caller's transaction; the caller announces the change
    /// once it has committed.
    pub(crate) async fn set_paused_on<C: ConnectionTrait>(
        &self,
        conn: &C,
        paused: bool,
    ) -> Result<(), QueueError> {
        conn.execute_raw(self.statement(
            "UPDATE queue_control SET paused = $1, updated_at = {now} WHERE id = 1",
            vec![paused.into()],
        ))
        .await?;
        Ok(())
    }

    /// Resolves when work may be waiting: after an enqueue, an ack or a requeue in this
    /// process, or (PostgreSQL) a notification from another one.
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    /// Says work may be waiting: to this process's claim loop, and on PostgreSQL to every
    /// worker process listening on the channel. SQLite workers in other processes poll.
    pub(crate) async fn announce(&self) {
        self.wake.notify_one();
        if self.backend() == DatabaseBackend::Postgres
            && let Err(e) = self
                .db
                .execute_unprepared(&format!("NOTIFY {NOTIFY_CHANNEL}"))
                .await
        {
            tracing::warn!(error = %e, "could not notify other processes; they will poll");
        }
    }

    /// On PostgreSQL, wakes this process's claim loop whenever another process announces
    /// work, so `baler worker` processes start new jobs at once instead of at their next poll.
    /// Runs until the returned task is aborted; reconnects after errors.
    pub fn listen_for_other_processes(&self) -> Option<tokio::task::JoinHandle<()>> {
        if self.backend() != DatabaseBackend::Postgres {
            return None;
        }
        let queue = self.clone();
        Some(tokio::spawn(async move {
            let pool = queue.db.get_postgres_connection_pool().clone();
            loop {
                match sea_orm::sqlx::postgres::PgListener::connect_with(&pool).await {
                    Ok(mut listener) => match listener.listen(NOTIFY_CHANNEL).await {
                        Ok(()) => {
                            // `recv` reconnects by itself when the connection drops.
                            while listener.recv().await.is_ok() {
                                queue.wake.notify_one();
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "LISTEN failed"),
                    },
                    Err(e) => tracing::warn!(error = %e, "could not open a listening connection"),
                }
                tokio::time::sleep(queue.tuning.idle_poll).await;
            }
        }))
    }
}

/// The PostgreSQL channel on which processes announce queue work.
const NOTIFY_CHANNEL: &str = "baler_queue";
