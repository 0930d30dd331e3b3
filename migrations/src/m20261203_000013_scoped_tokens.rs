//! Scoped tokens and what an item built.
//!
//! - `api_tokens.scope` (`admin`, the default and what every earlier token is; `release`;
//!   `read`) and `api_tokens.project` (the one project a `release` or `read` token may touch).
//! - `releases.item_id`: the queue item whose job last recorded the release, so that
//!   `GET /api/v1/items/{id}` can list what an item built.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ApiTokens {
    Table,
    Scope,
    Project,
}

#[derive(DeriveIden)]
enum Releases {
    Table,
    ItemId,
}

const BY_ITEM: &str = "releases_item";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per statement.
        manager
            .alter_table(
                Table::alter()
                    .table(ApiTokens::Table)
                    .add_column(string(ApiTokens::Scope).default("admin"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ApiTokens::Table)
                    .add_column(string_null(ApiTokens::Project))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Releases::Table)
                    .add_column(big_integer_null(Releases::ItemId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(BY_ITEM)
                    .table(Releases::Table)
                    .col(Releases::ItemId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(BY_ITEM)
                    .table(Releases::Table)
                    .to_owned(),
            )
            .await?;
        for (table, column) in [
            (Releases::Table.into_iden(), Releases::ItemId.into_iden()),
            (ApiTokens::Table.into_iden(), ApiTokens::Project.into_iden()),
            (ApiTokens::Table.into_iden(), ApiTokens::Scope.into_iden()),
        ] {
            manager
                .alter_table(Table::alter().table(table).drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}
