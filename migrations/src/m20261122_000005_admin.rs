//! Administration: named API tokens (only their sha256 is stored), the audit log of admin
//! actions, server keys (the key admin session cookies are signed with, made once and
//! shared by every web process), and the admin page sessions ended by logging out.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ApiTokens {
    Table,
    Id,
    Name,
    TokenHash,
    CreatedAt,
    LastUsedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    At,
    Actor,
    Action,
    Target,
    Detail,
}

#[derive(DeriveIden)]
enum ServerKeys {
    Table,
    Name,
    Value,
    CreatedAt,
}

#[derive(DeriveIden)]
enum EndedSessions {
    Table,
    Sid,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // A revoked token keeps its name, so a name in the audit log means one token only.
        manager
            .create_table(
                Table::create()
                    .table(ApiTokens::Table)
                    .col(big_pk_auto(ApiTokens::Id))
                    .col(string_uniq(ApiTokens::Name))
                    .col(string_uniq(ApiTokens::TokenHash))
                    .col(big_integer(ApiTokens::CreatedAt))
                    .col(big_integer_null(ApiTokens::LastUsedAt))
                    .col(big_integer_null(ApiTokens::RevokedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuditLog::Table)
                    .col(big_pk_auto(AuditLog::Id))
                    .col(big_integer(AuditLog::At))
                    .col(string(AuditLog::Actor))
                    .col(string(AuditLog::Action))
                    .col(string(AuditLog::Target))
                    .col(text_null(AuditLog::Detail))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ServerKeys::Table)
                    .col(string(ServerKeys::Name).primary_key())
                    .col(text(ServerKeys::Value))
                    .col(big_integer(ServerKeys::CreatedAt))
                    .to_owned(),
            )
            .await?;
        // A session cookie is valid until it expires unless its id is here; rows are pruned
        // once their cookie would have expired anyway.
        manager
            .create_table(
                Table::create()
                    .table(EndedSessions::Table)
                    .col(string(EndedSessions::Sid).primary_key())
                    .col(big_integer(EndedSessions::ExpiresAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            EndedSessions::Table.into_iden(),
            ServerKeys::Table.into_iden(),
            AuditLog::Table.into_iden(),
            ApiTokens::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
