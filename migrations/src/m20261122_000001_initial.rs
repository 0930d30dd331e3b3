//! Projects, the queue (with its one-pending-item-per-project index), releases and their files.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Projects {
    Table,
    Id,
    Name,
    Title,
    Repo,
    Provider,
    Secret,
    Branches,
    Tags,
    Formats,
    Layout,
    Composer,
    Source,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum QueueItems {
    Table,
    Id,
    ProjectId,
    State,
    Branches,
    Tags,
    Revision,
    ClaimedRevision,
    Attempts,
    EnqueuedAt,
    UpdatedAt,
    AvailableAt,
    LeaseOwner,
    LeaseExpiresAt,
    LastError,
    FinishedAt,
}

#[derive(DeriveIden)]
enum QueueControl {
    Table,
    Id,
    Paused,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Releases {
    Table,
    Id,
    ProjectId,
    Version,
    Kind,
    RefName,
    Commit,
    CommitTime,
    Status,
    BuildLog,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ReleaseFiles {
    Table,
    Id,
    ReleaseId,
    Format,
    Name,
    Size,
    Sha256,
    Sha1,
    Md5,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Projects::Table)
                    .col(big_pk_auto(Projects::Id))
                    .col(string_uniq(Projects::Name))
                    .col(string(Projects::Title))
                    .col(text(Projects::Repo))
                    .col(string(Projects::Provider))
                    .col(text(Projects::Secret))
                    .col(text(Projects::Branches))
                    .col(text(Projects::Tags))
                    .col(text(Projects::Formats))
                    .col(string(Projects::Layout))
                    .col(string_null(Projects::Composer))
                    .col(string(Projects::Source))
                    .col(timestamp_with_time_zone(Projects::CreatedAt))
                    .col(timestamp_with_time_zone(Projects::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(QueueItems::Table)
                    .col(big_pk_auto(QueueItems::Id))
                    .col(big_integer(QueueItems::ProjectId))
                    .col(string(QueueItems::State))
                    .col(text(QueueItems::Branches))
                    .col(text(QueueItems::Tags))
                    .col(integer(QueueItems::Revision))
                    .col(integer_null(QueueItems::ClaimedRevision))
                    .col(integer(QueueItems::Attempts))
                    .col(big_integer(QueueItems::EnqueuedAt))
                    .col(big_integer(QueueItems::UpdatedAt))
                    .col(big_integer(QueueItems::AvailableAt))
                    .col(string_null(QueueItems::LeaseOwner))
                    .col(big_integer_null(QueueItems::LeaseExpiresAt))
                    .col(text_null(QueueItems::LastError))
                    .col(big_integer_null(QueueItems::FinishedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(QueueItems::Table, QueueItems::ProjectId)
                            .to(Projects::Table, Projects::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // The heart of the queue: at most one pending and one running item per project, kept by
        // the database itself so no race between processes can break it. Partial indexes read
        // the same on SQLite and PostgreSQL.
        let db = manager.get_connection();
        db.execute_unprepared(
            "CREATE UNIQUE INDEX queue_items_one_pending ON queue_items (project_id) WHERE state = 'pending'",
        )
        .await?;
        db.execute_unprepared(
            "CREATE UNIQUE INDEX queue_items_one_running ON queue_items (project_id) WHERE state = 'running'",
        )
        .await?;
        manager
            .create_index(
                Index::create()
                    .name("queue_items_state_id")
                    .table(QueueItems::Table)
                    .col(QueueItems::State)
                    .col(QueueItems::Id)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(QueueControl::Table)
                    .col(integer(QueueControl::Id).primary_key())
                    .col(boolean(QueueControl::Paused))
                    .col(big_integer(QueueControl::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        db.execute_unprepared(
            "INSERT INTO queue_control (id, paused, updated_at) VALUES (1, FALSE, 0)",
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(Releases::Table)
                    .col(big_pk_auto(Releases::Id))
                    .col(big_integer(Releases::ProjectId))
                    .col(string(Releases::Version))
                    .col(string(Releases::Kind))
                    .col(string(Releases::RefName))
                    .col(string(Releases::Commit))
                    .col(big_integer(Releases::CommitTime))
                    .col(string(Releases::Status))
                    .col(text(Releases::BuildLog))
                    .col(timestamp_with_time_zone(Releases::CreatedAt))
                    .col(timestamp_with_time_zone(Releases::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Releases::Table, Releases::ProjectId)
                            .to(Projects::Table, Projects::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("releases_project_version")
                    .table(Releases::Table)
                    .col(Releases::ProjectId)
                    .col(Releases::Version)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ReleaseFiles::Table)
                    .col(big_pk_auto(ReleaseFiles::Id))
                    .col(big_integer(ReleaseFiles::ReleaseId))
                    .col(string(ReleaseFiles::Format))
                    .col(string(ReleaseFiles::Name))
                    .col(big_integer(ReleaseFiles::Size))
                    .col(string(ReleaseFiles::Sha256))
                    .col(string(ReleaseFiles::Sha1))
                    .col(string(ReleaseFiles::Md5))
                    .col(timestamp_with_time_zone(ReleaseFiles::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ReleaseFiles::Table, ReleaseFiles::ReleaseId)
                            .to(Releases::Table, Releases::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("release_files_release_format")
                    .table(ReleaseFiles::Table)
                    .col(ReleaseFiles::ReleaseId)
                    .col(ReleaseFiles::Format)
                    .unique()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            ReleaseFiles::Table.into_iden(),
            Releases::Table.into_iden(),
            QueueControl::Table.into_iden(),
            QueueItems::Table.into_iden(),
            Projects::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
