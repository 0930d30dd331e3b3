use sea_orm::entity::prelude::*;

/// Where notifications go: a URL, its Standard Webhooks secret (`whsec_…`), the events and
/// project globs it takes (JSON arrays of strings), and whether it may be on a private network.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "notification_subscribers")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub url: String,
    pub secret: String,
    pub events: String,
    pub projects: String,
    pub allow_private_network: bool,
    /// `config` when the config file names it (synced at start), `api` when an admin added it.
    pub source: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Set (Unix milliseconds) when nothing more is sent: the receiver answered 410 Gone, or
    /// the subscriber left the config file.
    pub disabled_at: Option<i64>,
    pub disabled_reason: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::notification_message::Entity")]
    NotificationMessage,
}

impl Related<super::notification_message::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::NotificationMessage.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
