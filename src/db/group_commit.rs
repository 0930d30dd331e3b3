//! Group commit: writes that arrive together are written together, by one task, in one batch,
//! and each submitter is answered once its batch has been written. The webhook upserts on
//! SQLite (`queue/intake.rs`) and the deliveries log (`deliveries.rs`) both write this way: it
//! spares a commit per request and, on SQLite, the busy-timeout polling (sleeps of up to
//! 100 ms) of connections racing for the one write lock, which is what made webhook latency's
//! tail long under load.
//!
//! The machinery (the channel, the batching, the write gate, the answers) lives here once;
//! what a batch is and how it is written is the [`BatchWriter`]'s.

use std::future::Future;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::WriteGate;

/// How one kind of job is written in batches.
pub trait BatchWriter: Send + Sync + 'static {
    /// One submitted write.
    type Job: Send + 'static;
    /// What a submitter waiting for its job is told once the batch is written.
    type Answer: Send + 'static;
    /// The most jobs one batch carries.
    const MAX_BATCH: usize;

    /// Writes one batch, in arrival order, and answers each submission. This process's write
    /// gate is held meanwhile.
    fn write(
        &self,
        batch: Vec<Submission<Self::Job, Self::Answer>>,
    ) -> impl Future<Output = ()> + Send;
}

/// A job in a batch, and the way back to whoever submitted it.
pub struct Submission<J, A> {
    pub job: J,
    pub reply: Reply<A>,
}

/// Where a job's answer goes: its submitter, or nobody (a job handed over without waiting).
pub struct Reply<A>(Option<oneshot::Sender<A>>);

impl<A> Reply<A> {
    /// Whether the submitter stopped waiting (it gave up at its own deadline). A job nobody
    /// waits for is never abandoned: it is written all the same.
    pub fn abandoned(&self) -> bool {
        self.0.as_ref().is_some_and(oneshot::Sender::is_closed)
    }

    /// Answers the submitter, if it still waits.
    pub fn send(self, answer: A) {
        if let Some(sender) = self.0 {
            let _ = sender.send(answer);
        }
    }
}

/// The writer has stopped (its task ended or panicked); nothing submitted now is written.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the writer has stopped")]
pub struct WriterStopped;

/// A group-commit writer's handle; cheap to clone. The writer task ends when the last handle is
/// dropped, after writing what was already submitted.
pub struct GroupCommit<W: BatchWriter> {
    sender: mpsc::Sender<Submission<W::Job, W::Answer>>,
}

impl<W: BatchWriter> Clone for GroupCommit<W> {
    fn clone(&self) -> Self {
        GroupCommit {
            sender: self.sender.clone(),
        }
    }
}

impl<W: BatchWriter> GroupCommit<W> {
    /// Starts the writer task. Each batch is what has arrived by the time the previous batch
    /// is written, up to [`BatchWriter::MAX_BATCH`], and is written holding `gate`. Up to four
    /// batches wait in line; past that, submitters wait for room.
    pub fn start(writer: W, gate: WriteGate) -> GroupCommit<W> {
        let (sender, mut receiver) = mpsc::channel(4 * W::MAX_BATCH);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(W::MAX_BATCH);
            while receiver.recv_many(&mut batch, W::MAX_BATCH).await > 0 {
                let _turn = gate.enter().await;
                writer.write(std::mem::take(&mut batch)).await;
            }
        });
        GroupCommit { sender }
    }

    /// Submits `job` and waits until its batch has been written.
    pub async fn submit(&self, job: W::Job) -> Result<W::Answer, WriterStopped> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Submission {
                job,
                reply: Reply(Some(reply)),
            })
            .await
            .map_err(|_| WriterStopped)?;
        answer.await.map_err(|_| WriterStopped)
    }

    /// Hands `job` to the writer without waiting for its write. When the writer is far behind
    /// (storage that cannot commit) and has no room for `room`, the job is dropped rather than
    /// held in memory: false.
    pub async fn submit_detached(&self, job: W::Job, room: Duration) -> bool {
        let submission = Submission {
            job,
            reply: Reply(None),
        };
        matches!(
            tokio::time::timeout(room, self.sender.send(submission)).await,
            Ok(Ok(()))
        )
    }
}
