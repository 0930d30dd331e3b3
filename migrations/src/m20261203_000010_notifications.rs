//! Outbound notifications (Standard Webhooks): who is told, what waits to be sent, and every
//! attempt.
//!
//! - `notification_subscribers`: one row per target URL, from the config file (`source =
//!   config`, synced at start) or the admin API (`source = api`). `events` and `projects` hold
//!   JSON arrays; `disabled_at` is set when the receiver answered 410 Gone (or the subscriber
//!   left the config), and then nothing is sent to it.
//! - `notification_messages`: the outbox. A message is written in the same transaction as the
//!   event it tells of, with its body already serialised, so every attempt sends the same bytes
//!   under the same `webhook-id`. A sender claims a due message by setting `claimed_until`.
//! - `notification_attempts`: one row per attempt: when, the status (none when no answer came),
//!   the error, and how long it took.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum NotificationSubscribers {
    Table,
    Id,
    Url,
    Secret,
    Events,
    Projects,
    AllowPrivateNetwork,
    Source,
    CreatedAt,
    DisabledAt,
    DisabledReason,
}

#[derive(DeriveIden)]
enum NotificationMessages {
    Table,
    Id,
    SubscriberId,
    MessageId,
    Event,
    Project,
    Body,
    CreatedAt,
    State,
    Attempts,
    NextAttemptAt,
    ClaimedUntil,
    FinishedAt,
    LastStatus,
    LastError,
}

#[derive(DeriveIden)]
enum NotificationAttempts {
    Table,
    Id,
    MessageId,
    At,
    Status,
    Error,
    LatencyMs,
}

/// The sender's lookup: pending messages by due time.
const DUE: &str = "notification_messages_due";
/// The admin lists: a message's attempts.
const ATTEMPTS_BY_MESSAGE: &str = "notification_attempts_message";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(NotificationSubscribers::Table)
                    .col(big_pk_auto(NotificationSubscribers::Id))
                    .col(string(NotificationSubscribers::Url).unique_key())
                    .col(string(NotificationSubscribers::Secret))
                    .col(text(NotificationSubscribers::Events))
                    .col(text(NotificationSubscribers::Projects))
                    .col(boolean(NotificationSubscribers::AllowPrivateNetwork))
                    .col(string(NotificationSubscribers::Source))
                    .col(big_integer(NotificationSubscribers::CreatedAt))
                    .col(big_integer_null(NotificationSubscribers::DisabledAt))
                    .col(text_null(NotificationSubscribers::DisabledReason))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(NotificationMessages::Table)
                    .col(big_pk_auto(NotificationMessages::Id))
                    .col(big_integer(NotificationMessages::SubscriberId))
                    .col(string(NotificationMessages::MessageId))
                    .col(string(NotificationMessages::Event))
                    .col(string(NotificationMessages::Project))
                    .col(text(NotificationMessages::Body))
                    .col(big_integer(NotificationMessages::CreatedAt))
                    .col(string(NotificationMessages::State))
                    .col(integer(NotificationMessages::Attempts))
                    .col(big_integer(NotificationMessages::NextAttemptAt))
                    .col(big_integer_null(NotificationMessages::ClaimedUntil))
                    .col(big_integer_null(NotificationMessages::FinishedAt))
                    .col(integer_null(NotificationMessages::LastStatus))
                    .col(text_null(NotificationMessages::LastError))
                    .foreign_key(
                        ForeignKey::create()
                            .from(
                                NotificationMessages::Table,
                                NotificationMessages::SubscriberId,
                            )
                            .to(NotificationSubscribers::Table, NotificationSubscribers::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(DUE)
                    .table(NotificationMessages::Table)
                    .col(NotificationMessages::State)
                    .col(NotificationMessages::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(NotificationAttempts::Table)
                    .col(big_pk_auto(NotificationAttempts::Id))
                    .col(big_integer(NotificationAttempts::MessageId))
                    .col(big_integer(NotificationAttempts::At))
                    .col(integer_null(NotificationAttempts::Status))
                    .col(text_null(NotificationAttempts::Error))
                    .col(big_integer(NotificationAttempts::LatencyMs))
                    .foreign_key(
                        ForeignKey::create()
                            .from(NotificationAttempts::Table, NotificationAttempts::MessageId)
                            .to(NotificationMessages::Table, NotificationMessages::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(ATTEMPTS_BY_MESSAGE)
                    .table(NotificationAttempts::Table)
                    .col(NotificationAttempts::MessageId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(NotificationAttempts::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(NotificationMessages::Table).to_owned())
            .await?;
        manager
            .drop_table(
                Table::drop()
                    .table(NotificationSubscribers::Table)
                    .to_owned(),
            )
            .await
    }
}
