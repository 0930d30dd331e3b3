//! Publish-time documents and download counts.
//!
//! - `documents`: what readers fetch (Composer metadata, Drupal update feeds, Atom feeds, the
//!   project JSON and pages), rendered when releases change and stored with their `ETag`,
//!   `Last-Modified` and (for a paginated list) `Link` header, one row per URL (`key`). A
//!   project's rows carry its id.
//! - `download_counts`: downloads per project, file name and UTC day, added to in batches. By
//!   name, not file row: a dev snapshot's rebuild replaces its file rows but keeps the names,
//!   and its count goes on.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Documents {
    Table,
    Key,
    ProjectId,
    ContentType,
    Body,
    Etag,
    ModifiedAt,
    Link,
}

#[derive(DeriveIden)]
enum DownloadCounts {
    Table,
    ProjectId,
    File,
    Day,
    Downloads,
}

/// The stats endpoint's lookup: one project's counts by day.
const COUNTS_BY_PROJECT_AND_DAY: &str = "download_counts_project_day";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Documents::Table)
                    .col(string(Documents::Key).primary_key())
                    .col(big_integer_null(Documents::ProjectId))
                    .col(string(Documents::ContentType))
                    .col(blob(Documents::Body))
                    .col(string(Documents::Etag))
                    .col(big_integer(Documents::ModifiedAt))
                    .col(text_null(Documents::Link))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(DownloadCounts::Table)
                    .col(big_integer(DownloadCounts::ProjectId))
                    .col(string(DownloadCounts::File))
                    .col(string_len(DownloadCounts::Day, 10))
                    .col(big_integer(DownloadCounts::Downloads))
                    .primary_key(
                        Index::create()
                            .col(DownloadCounts::ProjectId)
                            .col(DownloadCounts::File)
                            .col(DownloadCounts::Day),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(COUNTS_BY_PROJECT_AND_DAY)
                    .table(DownloadCounts::Table)
                    .col(DownloadCounts::ProjectId)
                    .col(DownloadCounts::Day)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(DownloadCounts::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Documents::Table).to_owned())
            .await
    }
}
