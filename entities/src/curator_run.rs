use sea_orm::entity::prelude::*;

/// One run of the retention curator. `slot` (unique) is the interval it ran for: the claim
/// that keeps processes from running it twice. Times are Unix milliseconds; `removed` is what
/// it removed, as JSON.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "curator_runs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub slot: i64,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub removed: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
