//! Abuse: projects removed from the config are disabled (their rows and files kept); refused
//! deliveries keep the client's address; refusals that are not kept one row each (unknown
//! projects, an address over its budget) are counted per minute, address and reason; failed
//! admin sign-ins are counted per address.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Projects {
    Table,
    DisabledAt,
}

#[derive(DeriveIden)]
enum Deliveries {
    Table,
    ClientAddress,
}

#[derive(DeriveIden)]
enum RefusalCounts {
    Table,
    Id,
    Minute,
    ClientAddress,
    Reason,
    Count,
    LastName,
}

#[derive(DeriveIden)]
enum AuthFailures {
    Table,
    Id,
    ClientAddress,
    Count,
    FirstAt,
    LastAt,
    LastKind,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Projects::Table)
                    .add_column(timestamp_with_time_zone_null(Projects::DisabledAt))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Deliveries::Table)
                    .add_column(text_null(Deliveries::ClientAddress))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RefusalCounts::Table)
                    .col(big_pk_auto(RefusalCounts::Id))
                    .col(big_integer(RefusalCounts::Minute))
                    .col(text(RefusalCounts::ClientAddress))
                    .col(text(RefusalCounts::Reason))
                    .col(big_integer(RefusalCounts::Count))
                    .col(text(RefusalCounts::LastName))
                    .to_owned(),
            )
            .await?;
        // One row per minute, address and reason: a refusal is an upsert adding one.
        manager
            .create_index(
                Index::create()
                    .name("refusal_counts_minute_address_reason")
                    .table(RefusalCounts::Table)
                    .col(RefusalCounts::Minute)
                    .col(RefusalCounts::ClientAddress)
                    .col(RefusalCounts::Reason)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuthFailures::Table)
                    .col(big_pk_auto(AuthFailures::Id))
                    .col(text_uniq(AuthFailures::ClientAddress))
                    .col(big_integer(AuthFailures::Count))
                    .col(big_integer(AuthFailures::FirstAt))
                    .col(big_integer(AuthFailures::LastAt))
                    .col(text(AuthFailures::LastKind))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuthFailures::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(RefusalCounts::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Deliveries::Table)
                    .drop_column(Deliveries::ClientAddress)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Projects::Table)
                    .drop_column(Projects::DisabledAt)
                    .to_owned(),
            )
            .await
    }
}
