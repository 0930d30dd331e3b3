use sea_orm::entity::prelude::*;

/// One webhook delivery, accepted or refused, with the answer baler gave.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "deliveries")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// None when the URL named no known project.
    pub project_id: Option<i64>,
    pub project_name: String,
    pub provider: Option<String>,
    pub event: Option<String>,
    /// The host's delivery id (`X-GitHub-Delivery`, GitLab `Idempotency-Key`, …).
    pub delivery_id: Option<String>,
    /// Delivery id + sha256 of the body, set on accepted deliveries: a redelivery replays
    /// `response` instead of being processed again.
    pub replay_key: Option<String>,
    pub status: i32,
    pub reason: String,
    pub item_id: Option<i64>,
    pub response: String,
    pub received_at: i64,
    /// The client's address (see `[http] trusted_proxies`).
    pub client_address: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
