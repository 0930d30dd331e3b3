//! apalis over baler's own queue table. apalis runs the workers (concurrency, shutdown, the
//! handler); this backend feeds it claimed rows and, in its own middleware, keeps each claim's
//! lease alive and acknowledges or fails exactly the revision that was claimed. apalis keeps no
//! tables and no copy of the queue, and it does not retry: the table decides that.

use std::task::{Context, Poll};

use apalis::prelude::*;
use apalis_core::backend::{BackendConfig, finalize::Ephemeral};
use futures::{FutureExt, StreamExt, TryFutureExt, future::BoxFuture, stream::BoxStream};
use tower::{Layer, Service};

use super::{ClaimedItem, Queue, QueueError};

/// Which claim a running task holds; the ack layer and the handler both read it.
#[derive(Debug, Clone)]
pub struct Lease {
    pub item: i64,
    pub revision: i32,
    pub owner: String,
}

pub struct TableBackend {
    queue: Queue,
    owner: String,
    claims: Option<BoxStream<'static, Result<Task<ClaimedItem>, QueueError>>>,
}

impl TableBackend {
    /// `owner` names this worker in lease rows (host, process and worker).
    pub fn new(queue: Queue, owner: String) -> TableBackend {
        TableBackend {
            queue,
            owner,
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
                        owner: owner.clone(),
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
        }
    }
}

#[derive(Clone)]
pub struct AckLayer {
    queue: Queue,
}

impl<S> Layer<S> for AckLayer {
    type Service = AckService<S>;
    fn layer(&self, inner: S) -> AckService<S> {
        AckService {
            inner,
            queue: self.queue.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AckService<S> {
    inner: S,
    queue: Queue,
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
        let job = self.inner.call(task).map_err(Into::<BoxDynError>::into);
        async move {
            let lease = lease.ok_or("a task reached the worker without its lease")?;
            let every = queue.tuning().heartbeat;
            let mut job = std::pin::pin!(job);
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            let result = loop {
                tokio::select! {
                    result = &mut job => break result,
                    _ = tick.tick() => match queue.heartbeat(lease.item, &lease.owner).await {
                        Ok(true) => {}
                        Ok(false) => tracing::warn!(item = lease.item, "lease lost while the job ran"),
                        Err(e) => tracing::warn!(item = lease.item, error = %e, "heartbeat failed"),
                    },
                }
            };
            let recorded = match &result {
                Ok(_) => queue
                    .ack(lease.item, &lease.owner, lease.revision)
                    .await
                    .map(|held| {
                        if !held {
                            tracing::warn!(item = lease.item, "finished after losing the lease; not acknowledged");
                        }
                    }),
                Err(e) => queue.fail(lease.item, &lease.owner, &format!("{e}")).await,
            };
            // If the outcome could not be recorded, the lease expires and the item is retried.
            recorded.map_err(|e| Box::new(e) as BoxDynError)?;
            result
        }
        .boxed()
    }
}
