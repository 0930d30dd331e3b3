use sea_orm::entity::prelude::*;

/// Refused webhook deliveries that are counted rather than kept one row each (for unknown
/// projects, or from an address past its budget of kept refusals): one row per minute, client
/// address and reason.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "refusal_counts")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Unix minutes.
    pub minute: i64,
    pub client_address: String,
    /// One of a fixed set (`deliveries::Refusal`).
    pub reason: String,
    pub count: i64,
    /// The project name in the last such URL, cut to 64 characters.
    pub last_name: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
