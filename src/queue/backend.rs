//! apalis over baler's own queue table. apalis runs the workers (concurrency, shutdown, the
//! handler); this backend feeds it claimed rows and, in its own middleware, keeps each claim's
//! lease alive and acknowledges or fails exactly the revision that was claimed. apalis keeps no
//! tables and no copy of the queue, and it does not retry: the table decides that.

use std::task::{Context, Poll};
use std::time::Duration;

use apalis::prelude::*;
use apalis_core::backend::{BackendConfig, finalize::Ephemeral};
use futures::{FutureExt, StreamExt, TryFutureExt, future::BoxFuture, stream::BoxStream};
use tokio_util::sync::CancellationToken;
use tower::{Layer, Service};

use super::{ClaimedItem, Queue, QueueError};

/// Which claim a running task holds; the ack layer and the handler both read it.
#[derive(Debug, Clone)]
pub struct Lease {
    pub item: i64,
    pub revision: i32,
    /// The claim's own token (see [`ClaimedItem::token`]).
    pub token: String,
    /// Cancelled when the job must stop at its next step: its claim is gone (another worker
    /// has the item now), or it ran past the job time limit.
    pub stop: CancellationToken,
}

impl Lease {
    /// Whether the job must stop at its next step.
    pub fn stopped(&self) -> bool {
        self.stop.is_cancelled()
    }
}

pub struct TableBackend {
    queue: Queue,
    owner: String,
    job_timeout: Duration,
    claims: Option<BoxStream<'static, Result<Task<ClaimedItem>, QueueError>>>,
}

impl TableBackend {
    /// `owner` names this worker in lease rows (host, process and worker); a job running
    /// longer than `job_timeout` is abandoned and its claim given back as a failed attempt.
    pub fn new(queue: Queue, owner: String, job_timeout: Duration) -> TableBackend {
        TableBackend {
            queue,
            owner,
            job_timeout,
            claims: None,
        }
    }
}

/// A stream that never ends: apalis takes the end of a backend's stream as "no more work,
/// ever". It is polled only when the worker has a free slot, so it never claims more than it
/// can run. Database errors are logged and retried here; returned, they would stop the worker.
fn claim_stream(
    queue: Queue,
    owner: String,
) -> BoxStream<'static, Result<Task<ClaimedItem>, QueueError>> {
    futures::stream::unfold((queue, owner), |(queue, owner)| async move {
        loop {
            if let Err(e) = queue.reclaim_expired().await {
                tracing::warn!(error = %e, "could not reclaim expired leases");
            }
            match queue.claim(&owner).await {
                Ok(Some(item)) => {
                    let lease = Lease {
                        item: item.id,
                        revision: item.revision,
                        token: item.token.clone(),
                        stop: CancellationToken::new(),
                    };
                    let task = TaskBuilder::new(item.clone())
                        .task_id(TaskId::Int(item.id as u64))
                        .attempt(item.attempts.max(1) as usize - 1)
                        .data(lease)
                        .build();
                    return Some((Ok(task), (queue, owner)));
                }
                Ok(None) => {
                    let idle = queue.tuning().idle_poll;
                    let _ = tokio::time::timeout(idle, queue.woken()).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, "claiming from the queue failed; retrying");
                    tokio::time::sleep(queue.tuning().idle_poll).await;
                }
            }
        }
    })
    .boxed()
}

impl Backend for TableBackend {
    type Task = Task<ClaimedItem>;
    type Error = QueueError;

    fn poll_ready(
        &mut self,
        _cx: &mut Context<'_>,
        _w: &WorkerContext,
    ) -> Poll<Result<(), QueueError>> {
        Poll::Ready(Ok(()))
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        _w: &WorkerContext,
    ) -> Poll<Option<Result<Task<ClaimedItem>, QueueError>>> {
        let (queue, owner) = (&self.queue, &self.owner);
        self.claims
            .get_or_insert_with(|| claim_stream(queue.clone(), owner.clone()))
            .poll_next_unpin(cx)
    }

    fn poll_close(
        &mut self,
        _cx: &mut Context<'_>,
        _w: &WorkerContext,
    ) -> Poll<Result<(), QueueError>> {
        // In-flight tasks and their acks are done by now; dropping the stream cancels a claim
        // in progress (an UPDATE not yet sent, or one whose lease will simply expire).
        self.claims = None;
        Poll::Ready(Ok(()))
    }
}

impl BackendConfig for TableBackend {
    type Args = ClaimedItem;
    type Id = i64;
    type Kind = Ephemeral;
    type Config = ();
    type Layer = AckLayer;

    fn config(&self) -> &() {
        &()
    }

    fn middleware(&mut self, _w: &mut WorkerContext) -> AckLayer {
        AckLayer {
            queue: self.queue.clone(),
            job_timeout: self.job_timeout,
        }
    }
}

#[derive(Clone)]
pub struct AckLayer {
    queue: Queue,
    job_timeout: Duration,
}

impl<S> Layer<S> for AckLayer {
    type Service = AckService<S>;
    fn layer(&self, inner: S) -> AckService<S> {
        AckService {
            inner,
            queue: self.queue.clone(),
            job_timeout: self.job_timeout,
        }
    }
}

#[derive(Clone)]
pub struct AckService<S> {
    inner: S,
    queue: Queue,
    job_timeout: Duration,
}

impl<S, Args> Service<Task<Args>> for AckService<S>
where
    S: Service<Task<Args>>,
    S::Future: Send + 'static,
    S::Error: Into<BoxDynError> + Send + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxDynError;
    type Future = BoxFuture<'static, Result<S::Response, BoxDynError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxDynError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, task: Task<Args>) -> Self::Future {
        let lease = task.data().get::<Lease>().cloned();
        let queue = self.queue.clone();
        let job_timeout = self.job_timeout;
        let job = self.inner.call(task).map_err(Into::<BoxDynError>::into);
        async move {
            let lease = lease.ok_or("a task reached the worker without its lease")?;
            // The heartbeat runs on its own task: the job's fenced transactions lock the queue
            // row, so a heartbeat waiting on that lock must never keep the job from committing.
            let heartbeat = tokio::spawn(beat(queue.clone(), lease.clone()));
            let started = std::time::Instant::now();
            let mut job = Box::pin(job);
            let result = match tokio::time::timeout(job_timeout, &mut job).await {
                Ok(result) => Some(result),
                Err(_) => {
                    // Told to stop, the job ends at its next step: a fenced write in progress
                    // commits or rolls back whole, and nothing after it is written. A job
                    // stuck in blocking work is dropped after a short grace.
                    lease.stop.cancel();
                    tokio::time::timeout(STOP_GRACE, &mut job).await.ok();
                    None
                }
            };
            drop(job);
            heartbeat.abort();
            let outcome = match &result {
                Some(Ok(_)) => crate::metrics::JobOutcome::Succeeded,
                Some(Err(_)) => crate::metrics::JobOutcome::Failed,
                None => crate::metrics::JobOutcome::TimedOut,
            };
            crate::metrics::job_finished(outcome, started.elapsed());
            let Some(result) = result else {
                let error = format!(
                    "the job ran past the {} s time limit (worker.job_timeout_seconds) and was abandoned",
                    job_timeout.as_secs()
                );
                tracing::warn!(item = lease.item, "{error}");
                queue
                    .fail(lease.item, &lease.token, &error)
                    .await
                    .map_err(|e| Box::new(e) as BoxDynError)?;
                return Err(error.into());
            };
            let recorded = match &result {
                Ok(_) => queue
                    .ack(lease.item, &lease.token, lease.revision)
                    .await
                    .map(|held| {
                        if !held {
                            tracing::warn!(item = lease.item, "finished after losing the claim; not acknowledged");
                        }
                    }),
                Err(e) => queue.fail(lease.item, &lease.token, &format!("{e}")).await,
            };
            // If the outcome could not be recorded, the lease expires and the item is retried.
            recorded.map_err(|e| Box::new(e) as BoxDynError)?;
            result
        }
        .boxed()
    }
}

/// How long a job told to stop (its time is up) gets to reach its next step before it is
/// dropped.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Renews the lease of `lease`'s claim until the job ends (the task is aborted) or the claim
/// is gone, which tells the job to stop.
async fn beat(queue: Queue, lease: Lease) {
    let every = queue.tuning().heartbeat;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    // A process resumed after a long stop beats once, not once per missed tick.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match queue.heartbeat(lease.item, &lease.token).await {
            Ok(true) => {}
            Ok(false) => {
                // Another worker holds the item now: this job stops at its next step, and
                // the fence refuses its writes anyway.
                tracing::warn!(
                    item = lease.item,
                    "the claim was lost while the job ran; stopping it"
                );
                lease.stop.cancel();
                return;
            }
            Err(e) => tracing::warn!(item = lease.item, error = %e, "heartbeat failed"),
        }
    }
}
