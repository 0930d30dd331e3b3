//! Retention: `curator_runs`, one row per run of the curator. Its unique `slot` (the run's
//! interval: Unix milliseconds divided by the interval) is the claim: across processes, one
//! run per interval. The row says when it started and finished and what it removed.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum CuratorRuns {
    Table,
    Id,
    Slot,
    StartedAt,
    FinishedAt,
    Removed,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(CuratorRuns::Table)
                    .col(big_pk_auto(CuratorRuns::Id))
                    .col(big_integer(CuratorRuns::Slot).unique_key())
                    .col(big_integer(CuratorRuns::StartedAt))
                    .col(big_integer_null(CuratorRuns::FinishedAt))
                    .col(text_null(CuratorRuns::Removed))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(CuratorRuns::Table).to_owned())
            .await
    }
}
