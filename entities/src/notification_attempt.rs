use sea_orm::entity::prelude::*;

/// One attempt to send a notification: when (Unix milliseconds), the receiver's status (none
/// when no answer came), the error, and how long it took.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "notification_attempts")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The `notification_messages` row (not the `webhook-id`).
    pub message_id: i64,
    pub at: i64,
    pub status: Option<i32>,
    pub error: Option<String>,
    pub latency_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::notification_message::Entity",
        from = "Column::MessageId",
        to = "super::notification_message::Column::Id",
        on_delete = "Cascade"
    )]
    NotificationMessage,
}

impl Related<super::notification_message::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::NotificationMessage.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
