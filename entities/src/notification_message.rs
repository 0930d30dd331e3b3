use sea_orm::entity::prelude::*;

/// One notification to one subscriber: the outbox row, written in the same transaction as its
/// event. `body` is the exact JSON sent on every attempt, under the same `message_id` (the
/// `webhook-id` header). Times are Unix milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "notification_messages")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub subscriber_id: i64,
    /// `msg_` and a random id; the same on every retry.
    pub message_id: String,
    /// `release.published`, `release.unpublished`, `release.failed` or `item.failed`.
    pub event: String,
    pub project: String,
    pub body: String,
    pub created_at: i64,
    /// `pending` (waiting for its next attempt), `delivered` or `failed` (given up).
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: i64,
    /// A sender holds the message until then; past it, another may take it over.
    pub claimed_until: Option<i64>,
    pub finished_at: Option<i64>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::notification_subscriber::Entity",
        from = "Column::SubscriberId",
        to = "super::notification_subscriber::Column::Id",
        on_delete = "Cascade"
    )]
    NotificationSubscriber,
    #[sea_orm(has_many = "super::notification_attempt::Entity")]
    NotificationAttempt,
}

impl Related<super::notification_subscriber::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::NotificationSubscriber.def()
    }
}

impl Related<super::notification_attempt::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::NotificationAttempt.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
