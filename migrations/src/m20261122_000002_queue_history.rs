//! Queue items remember when they were claimed (so overlapping runs of one project can be
//! ruled out after the fact), and can ask for a full rescan of the project's refs (rebuild).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum QueueItems {
    Table,
    ClaimedAt,
    ScanAll,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite takes one column per ALTER TABLE.
        manager
            .alter_table(
                Table::alter()
                    .table(QueueItems::Table)
                    .add_column(big_integer_null(QueueItems::ClaimedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(QueueItems::Table)
                    .add_column(boolean(QueueItems::ScanAll).default(false))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [QueueItems::ScanAll, QueueItems::ClaimedAt] {
            manager
                .alter_table(
                    Table::alter()
                        .table(QueueItems::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
