//! Webhook hardening: a second secret during rotation, GitHub's legacy sha1 signature as an
//! opt-in, the host's repository id once seen, and the deliveries log (also the basis of
//! idempotency: an accepted delivery is replayed, not processed twice).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Projects {
    Table,
    Id,
    PreviousSecret,
    AllowSha1,
    HostRepositoryId,
}

#[derive(DeriveIden)]
enum Deliveries {
    Table,
    Id,
    ProjectId,
    ProjectName,
    Provider,
    Event,
    DeliveryId,
    ReplayKey,
    Status,
    Reason,
    ItemId,
    Response,
    ReceivedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            text_null(Projects::PreviousSecret),
            boolean(Projects::AllowSha1).default(false).to_owned(),
            string_null(Projects::HostRepositoryId),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Projects::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(Deliveries::Table)
                    .col(big_pk_auto(Deliveries::Id))
                    .col(big_integer_null(Deliveries::ProjectId))
                    .col(string(Deliveries::ProjectName))
                    .col(string_null(Deliveries::Provider))
                    .col(string_null(Deliveries::Event))
                    .col(string_null(Deliveries::DeliveryId))
                    .col(string_null(Deliveries::ReplayKey))
                    .col(integer(Deliveries::Status))
                    .col(text(Deliveries::Reason))
                    .col(big_integer_null(Deliveries::ItemId))
                    .col(text(Deliveries::Response))
                    .col(big_integer(Deliveries::ReceivedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Deliveries::Table, Deliveries::ProjectId)
                            .to(Projects::Table, Projects::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Accepted deliveries carry a replay key (delivery id + body hash): one answer each.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX deliveries_replay ON deliveries (project_id, replay_key) \
                 WHERE replay_key IS NOT NULL",
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("deliveries_received")
                    .table(Deliveries::Table)
                    .col(Deliveries::ReceivedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Deliveries::Table).to_owned())
            .await?;
        for column in [
            Projects::HostRepositoryId,
            Projects::AllowSha1,
            Projects::PreviousSecret,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Projects::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
