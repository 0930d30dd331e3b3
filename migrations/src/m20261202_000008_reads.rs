//! Reads: a download finds its file by project and name through a unique index, not by
//! scanning the project's files. `release_files` gets its release's `project_id` (filled in
//! from `releases` for the rows already there), and a file name is unique within a project.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ReleaseFiles {
    Table,
    ProjectId,
    Name,
}

/// `GET /files/{project}/{file}`'s lookup.
const FILES_BY_PROJECT_AND_NAME: &str = "release_files_project_name";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ReleaseFiles::Table)
                    .add_column(big_integer(ReleaseFiles::ProjectId).default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE release_files SET project_id = \
                 (SELECT project_id FROM releases WHERE releases.id = release_files.release_id)",
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(FILES_BY_PROJECT_AND_NAME)
                    .table(ReleaseFiles::Table)
                    .col(ReleaseFiles::ProjectId)
                    .col(ReleaseFiles::Name)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(FILES_BY_PROJECT_AND_NAME)
                    .table(ReleaseFiles::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ReleaseFiles::Table)
                    .drop_column(ReleaseFiles::ProjectId)
                    .to_owned(),
            )
            .await
    }
}
