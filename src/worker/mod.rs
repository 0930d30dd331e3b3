//! The workers: apalis runs `workers` concurrent release jobs over the queue table.

mod build_log;
mod build_ref;
mod carry_out;
pub mod curator;
mod error;
pub mod plan;
mod refs;
pub mod release_job;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::*;
use sea_orm::DatabaseConnection;

use crate::git::RemoteAuth;
use crate::queue::Queue;
use crate::queue::backend::TableBackend;
use crate::store::Store;

/// What a release job needs besides its item.
#[derive(Clone)]
pub struct JobContext {
    pub db: DatabaseConnection,
    /// The queue, for the fence every write of a job passes.
    pub queue: Queue,
    pub store: Store,
    pub mirrors_dir: PathBuf,
    /// The binary run as the fetch child (`baler fetch-mirror`), and its idle limit.
    pub fetch_program: PathBuf,
    pub fetch_timeout: Duration,
    /// Fetch credentials by project name, from the config (never stored in the database).
    pub auth: Arc<HashMap<String, RemoteAuth>>,
    /// The key that signs every release, with `[signing]` on.
    pub signer: Option<Arc<crate::signing::Signer>>,
}

impl JobContext {
    pub fn signing_with(mut self, signer: Option<Arc<crate::signing::Signer>>) -> JobContext {
        self.signer = signer;
        self
    }

    /// The project's credentials; anonymous when the config gives none.
    pub fn auth_for(&self, project: &str) -> RemoteAuth {
        self.auth.get(project).cloned().unwrap_or_default()
    }
}

/// A name for this process's claims in lease rows: host, process id and a random part.
pub fn worker_owner() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}:{}:{}", std::process::id(), &random[..8])
}

/// How many jobs run at once, and their time limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub workers: usize,
    /// A job running longer is abandoned and its claim given back (a failed attempt).
    pub job_timeout: Duration,
    /// After shutdown, how long running jobs get to finish.
    pub drain: Duration,
}

/// Runs the workers until `shutdown` resolves, then lets running jobs finish (up to
/// `drain` long; a job cut off there keeps its lease until it expires and is retried).
pub async fn run(
    queue: Queue,
    context: JobContext,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let Limits {
        workers,
        job_timeout,
        drain,
    } = limits;
    let owner = worker_owner();
    tracing::info!(%owner, workers, "workers started");
    let listening = queue.listen_for_other_processes();
    let result = Monitor::new()
        .register(move |_restarts| {
            WorkerBuilder::new("release")
                .backend(TableBackend::new(queue.clone(), owner.clone(), job_timeout))
                .data(context.clone())
                .concurrency(workers)
                .build(release_job::release_job)
        })
        .shutdown_timeout(drain)
        .run_with_signal(async move {
            shutdown.await;
            Ok(())
        })
        .await
        .map_err(std::io::Error::other);
    if let Some(listening) = listening {
        listening.abort();
    }
    result
}
