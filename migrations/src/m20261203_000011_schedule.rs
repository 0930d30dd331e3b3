//! Scheduled rescans.
//!
//! - `projects.rescan_every_ms`: the project's rescan interval as its config gives it (none:
//!   off), written at each config sync so that every process reads the same one.
//! - `projects.rescan_due_at`: when its next rescan is due (Unix milliseconds); none until the
//!   scheduler first spreads it over the interval.
//! - `project_rescans`: one row per due time that was claimed, with the queue item it
//!   queued. Its unique index over (project, due time) is the claim: across processes, each
//!   due time gives one rescan.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Projects {
    Table,
    RescanEveryMs,
    RescanDueAt,
}

#[derive(DeriveIden)]
enum ProjectRescans {
    Table,
    Id,
    ProjectId,
    DueAt,
    ClaimedAt,
    Item,
}

const ONE_PER_DUE_TIME: &str = "project_rescans_project_due";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per statement.
        manager
            .alter_table(
                Table::alter()
                    .table(Projects::Table)
                    .add_column(big_integer_null(Projects::RescanEveryMs))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Projects::Table)
                    .add_column(big_integer_null(Projects::RescanDueAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ProjectRescans::Table)
                    .col(big_pk_auto(ProjectRescans::Id))
                    .col(big_integer(ProjectRescans::ProjectId))
                    .col(big_integer(ProjectRescans::DueAt))
                    .col(big_integer(ProjectRescans::ClaimedAt))
                    .col(big_integer_null(ProjectRescans::Item))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(ONE_PER_DUE_TIME)
                    .table(ProjectRescans::Table)
                    .col(ProjectRescans::ProjectId)
                    .col(ProjectRescans::DueAt)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ProjectRescans::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Projects::Table)
                    .drop_column(Projects::RescanDueAt)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Projects::Table)
                    .drop_column(Projects::RescanEveryMs)
                    .to_owned(),
            )
            .await
    }
}
