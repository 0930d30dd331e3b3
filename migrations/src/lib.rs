//! baler's schema, as sea-orm migrations. `baler migrate`, `baler serve` and `baler worker` run
//! them; this crate's own binary (`cargo run -p migrations -- up`) does too.

pub use sea_orm_migration::prelude::*;

mod m20261122_000001_initial;
mod m20261122_000002_queue_history;
mod m20261122_000003_deliveries;
mod m20261122_000004_publishing;
mod m20261122_000005_admin;
mod m20261202_000006_faults;
mod m20261202_000007_abuse;
mod m20261202_000008_reads;
mod m20261203_000009_documents;
mod m20261203_000010_notifications;
mod m20261203_000011_schedule;
mod m20261203_000012_retention;
mod m20261203_000013_scoped_tokens;
mod m20261204_000014_signing;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_initial::Migration),
            Box::new(m20261122_000002_queue_history::Migration),
            Box::new(m20261122_000003_deliveries::Migration),
            Box::new(m20261122_000004_publishing::Migration),
            Box::new(m20261122_000005_admin::Migration),
            Box::new(m20261202_000006_faults::Migration),
            Box::new(m20261202_000007_abuse::Migration),
            Box::new(m20261202_000008_reads::Migration),
            Box::new(m20261203_000009_documents::Migration),
            Box::new(m20261203_000010_notifications::Migration),
            Box::new(m20261203_000011_schedule::Migration),
            Box::new(m20261203_000012_retention::Migration),
            Box::new(m20261203_000013_scoped_tokens::Migration),
            Box::new(m20261204_000014_signing::Migration),
        ]
    }
}
