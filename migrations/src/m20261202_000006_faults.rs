//! Faults: refs that failed on their own (one row per project and ref, replaced when the ref
//! fails again and removed when it releases), and the token each queue claim carries, so that
//! a stale job's heartbeat, ack or fail cannot touch a newer claim.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Projects {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum RefProblems {
    Table,
    Id,
    ProjectId,
    RefName,
    Commit,
    Reason,
    At,
}

#[derive(DeriveIden)]
enum QueueItems {
    Table,
    ClaimToken,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RefProblems::Table)
                    .col(big_pk_auto(RefProblems::Id))
                    .col(big_integer(RefProblems::ProjectId))
                    .col(text(RefProblems::RefName))
                    .col(text(RefProblems::Commit))
                    .col(text(RefProblems::Reason))
                    .col(timestamp_with_time_zone(RefProblems::At))
                    .foreign_key(
                        ForeignKey::create()
                            .from(RefProblems::Table, RefProblems::ProjectId)
                            .to(Projects::Table, Projects::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // One problem per ref: a ref that fails again replaces its row (an upsert on this).
        manager
            .create_index(
                Index::create()
                    .name("ref_problems_project_ref")
                    .table(RefProblems::Table)
                    .col(RefProblems::ProjectId)
                    .col(RefProblems::RefName)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(QueueItems::Table)
                    .add_column(text_null(QueueItems::ClaimToken))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(QueueItems::Table)
                    .drop_column(QueueItems::ClaimToken)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(RefProblems::Table).to_owned())
            .await
    }
}
