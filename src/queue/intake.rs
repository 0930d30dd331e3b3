//! Group commit for webhook upserts on SQLite. SQLite has one writer at a time; upserts that
//! arrive together are written by one task in one `BEGIN IMMEDIATE` transaction, and each
//! webhook is answered once that transaction has committed. This removes both the commit per
//! delivery and the busy-timeout polling (sleeps of up to 100 ms) of connections racing for
//! the write lock, which is what made webhook latency's tail long under load.
//!
//! PostgreSQL does not come here: its row locks let upserts of different projects run side by
//! side.

use sea_orm::DatabaseConnection;
use tokio::sync::{mpsc, oneshot};

use super::{Enqueued, PendingRefs, Queue, QueueError};

/// The most upserts one transaction carries.
const BATCH: usize = 128;

type Answer = Result<Option<Enqueued>, QueueError>;

pub(super) struct Request {
    pub project_id: i64,
    pub refs: PendingRefs,
    pub replay_key: Option<String>,
    pub done: oneshot::Sender<Answer>,
}

/// Starts the writer; it ends when the last sender is dropped. `queue` must not route its
/// upserts here (it is the writer's own handle).
pub(super) fn start(queue: Queue) -> mpsc::Sender<Request> {
    let (sender, mut receiver) = mpsc::channel::<Request>(4 * BATCH);
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(BATCH);
        while receiver.recv_many(&mut batch, BATCH).await > 0 {
            write_batch(&queue, std::mem::take(&mut batch)).await;
        }
    });
    sender
}

async fn write_batch(queue: &Queue, mut batch: Vec<Request>) {
    let _turn = queue.gate.enter().await;
    // A webhook that gave up waiting (it answered 503 at its commit timeout) is not written:
    // its host retries, and the retry is what gets queued.
    batch.retain(|request| !request.done.is_closed());
    if batch.is_empty() {
        return;
    }
    match in_one_transaction(queue, &queue.db, &batch).await {
        Ok(answers) => {
            for (request, answer) in batch.into_iter().zip(answers) {
                let _ = request.done.send(Ok(answer));
            }
        }
        // Nothing of the batch was committed: each upsert on its own, so one bad request
        // cannot fail the others.
        Err(_) => {
            for request in batch {
                if request.done.is_closed() {
                    continue;
                }
                let answer = queue
                    .enqueue_with(
                        &queue.db,
                        request.project_id,
                        &request.refs,
                        false,
                        request.replay_key.as_deref(),
                    )
                    .await;
                let _ = request.done.send(answer);
            }
        }
    }
}

async fn in_one_transaction(
    queue: &Queue,
    db: &DatabaseConnection,
    batch: &[Request],
) -> Result<Vec<Option<Enqueued>>, QueueError> {
    let txn = crate::db::begin_write(db).await?;
    let mut answers = Vec::with_capacity(batch.len());
    for request in batch {
        // Checked again with the write lock held: waiting for it may have outlasted the
        // webhook's commit timeout.
        if request.done.is_closed() {
            answers.push(None);
            continue;
        }
        answers.push(
            queue
                .enqueue_with(
                    &txn,
                    request.project_id,
                    &request.refs,
                    false,
                    request.replay_key.as_deref(),
                )
                .await?,
        );
    }
    txn.commit().await?;
    Ok(answers)
}
