//! Periodic upkeep: the one place that keeps what baler stores from growing for ever. Today it
//! prunes old deliveries and their refusal counts, and the failed admin sign-ins of addresses
//! quiet for a month; other upkeep rounds (such as a retention policy) belong here too.
//! (Ended admin sessions are pruned when the next one ends: see `AdminActions::logout`.)
//!
//! It runs in every process that receives webhooks, once at start and then every hour, and is
//! started and drained with the web server and the workers (`startup`).
//!
//! Why a timer and not apalis: apalis-cron 1.0 would run upkeep as an apalis worker, but
//! upkeep has none of what apalis brings to release jobs (no queue rows, leases, retries or
//! concurrency: a round that fails is simply the next round), cron schedules fire on the
//! clock's boundaries where upkeep wants intervals and a restarted process should catch up at
//! once, and it would add the `cron` and `chrono-tz` crates for one timer.

use std::future::Future;
use std::time::Duration;

use sea_orm::DatabaseConnection;

use crate::{admin, deliveries};

/// How often upkeep runs.
pub const INTERVAL: Duration = Duration::from_secs(3600);

/// The upkeep task: what it needs to run every round.
pub struct Maintenance {
    db: DatabaseConnection,
    store: crate::store::Store,
}

impl Maintenance {
    pub fn new(db: DatabaseConnection, store: crate::store::Store) -> Maintenance {
        Maintenance { db, store }
    }

    /// Runs a round at once and then every [`INTERVAL`], until `stop` resolves. A round under
    /// way is dropped there: each delete is a statement of its own, which commits whole or not
    /// at all, and the next process's first round does the rest.
    pub async fn run_until(self, stop: impl Future<Output = ()>) {
        let rounds = async {
            let mut every = tokio::time::interval(INTERVAL);
            loop {
                every.tick().await;
                self.run_once().await;
            }
        };
        tokio::select! {
            () = rounds => {},
            () = stop => {},
        }
    }

    /// One round: every prune, each on its own; a failure is logged and waits for the next.
    pub async fn run_once(&self) {
        self.prune_deliveries().await;
        self.prune_failed_sign_ins().await;
        self.remove_unreferenced_documents().await;
    }

    /// Documents' bytes in the store that no row names any more (S3 storage only).
    async fn remove_unreferenced_documents(&self) {
        match crate::documents::remove_unreferenced(&self.db, self.store.as_ref()).await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(removed, "removed stored documents no row names"),
            Err(e) => tracing::warn!(error = %e, "removing unreferenced documents failed"),
        }
    }

    /// Deliveries and refusal counts past `deliveries::RETENTION_DAYS`.
    async fn prune_deliveries(&self) {
        match deliveries::prune(&self.db).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deliveries = n, "pruned old deliveries"),
            Err(e) => tracing::warn!(error = %e, "pruning deliveries failed"),
        }
    }

    /// Addresses whose last failed admin authentication is past `throttle::RETENTION_DAYS`.
    async fn prune_failed_sign_ins(&self) {
        match admin::throttle::prune(&self.db).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(addresses = n, "pruned old failed sign-ins"),
            Err(e) => tracing::warn!(error = %e, "pruning failed sign-ins failed"),
        }
    }
}
