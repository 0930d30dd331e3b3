use sea_orm::entity::prelude::*;

/// A scheduled rescan: the due time it was for (unique per project: the claim that makes each
/// due time one rescan across processes), when it was claimed, and the queue item it queued
/// or merged into. Times are Unix milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "project_rescans")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub project_id: i64,
    pub due_at: i64,
    pub claimed_at: i64,
    pub item: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
