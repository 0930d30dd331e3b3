//! Group commit for webhook upserts on SQLite. SQLite has one writer at a time; upserts that
//! arrive together are written in one `BEGIN IMMEDIATE` transaction by [`db::GroupCommit`],
//! and each webhook is answered once that transaction has committed.
//!
//! PostgreSQL does not come here: its row locks let upserts of different projects run side by
//! side.
//!
//! [`db::GroupCommit`]: crate::db::GroupCommit

use sea_orm::DatabaseConnection;

use super::{Enqueued, PendingRefs, Queue, QueueError};
use crate::db::{BatchWriter, GroupCommit, Submission};

/// One webhook's upsert (see [`Queue::enqueue_delivery`]).
pub(super) struct Upsert {
    pub project_id: i64,
    pub refs: PendingRefs,
    pub replay_key: Option<String>,
}

/// What the webhook is told: its item, or `None` for a redelivery (or an upsert written for
/// nobody, its webhook having given up).
pub(super) type UpsertAnswer = Result<Option<Enqueued>, QueueError>;

pub(super) type IntakeWriter = GroupCommit<Intake>;

/// Writes upserts with its own queue handle, which must not route its upserts here.
pub(super) struct Intake {
    queue: Queue,
}

/// Starts the writer; it ends when the last handle is dropped.
pub(super) fn start(queue: Queue) -> IntakeWriter {
    let gate = queue.gate.clone();
    GroupCommit::start(Intake { queue }, gate)
}

type Batch = Vec<Submission<Upsert, UpsertAnswer>>;

impl BatchWriter for Intake {
    type Job = Upsert;
    type Answer = UpsertAnswer;
    const MAX_BATCH: usize = 128;

    async fn write(&self, mut batch: Batch) {
        // A webhook that gave up waiting (it answered 503 at its commit timeout) is not
        // written: its host retries, and the retry is what gets queued.
        batch.retain(|upsert| !upsert.reply.abandoned());
        if batch.is_empty() {
            return;
        }
        let queue = &self.queue;
        match in_one_transaction(queue, &queue.db, &batch).await {
            Ok(answers) => {
                for (upsert, answer) in batch.into_iter().zip(answers) {
                    upsert.reply.send(Ok(answer));
                }
            }
            // Nothing of the batch was committed: each upsert on its own, so one bad request
            // cannot fail the others.
            Err(_) => {
                for Submission { job, reply } in batch {
                    if reply.abandoned() {
                        continue;
                    }
                    reply.send(upsert_with(queue, &queue.db, &job).await);
                }
            }
        }
    }
}

async fn in_one_transaction(
    queue: &Queue,
    db: &DatabaseConnection,
    batch: &Batch,
) -> Result<Vec<Option<Enqueued>>, QueueError> {
    let txn = crate::db::begin_write(db).await?;
    let mut answers = Vec::with_capacity(batch.len());
    for upsert in batch {
        // Checked again with the write lock held: waiting for it may have outlasted the
        // webhook's commit timeout.
        if upsert.reply.abandoned() {
            answers.push(None);
            continue;
        }
        answers.push(upsert_with(queue, &txn, &upsert.job).await?);
    }
    txn.commit().await?;
    Ok(answers)
}

async fn upsert_with<C: sea_orm::ConnectionTrait>(
    queue: &Queue,
    conn: &C,
    upsert: &Upsert,
) -> UpsertAnswer {
    queue
        .enqueue_with(
            conn,
            upsert.project_id,
            &upsert.refs,
            false,
            upsert.replay_key.as_deref(),
        )
        .await
}
