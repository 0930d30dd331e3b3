use sea_orm::entity::prelude::*;

/// A ref that failed on its own (it could not be resolved, named as a version or packaged),
/// while the job went on with the other refs. One row per project and ref: a new failure
/// replaces it, a release of the ref removes it.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ref_problems")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub project_id: i64,
    /// The full ref name, e.g. `refs/tags/0.9.0`.
    pub ref_name: String,
    /// The commit the ref pointed at; empty when it could not be resolved.
    pub commit: String,
    pub reason: String,
    /// When it last failed.
    pub at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::project::Entity",
        from = "Column::ProjectId",
        to = "super::project::Column::Id",
        on_delete = "Cascade"
    )]
    Project,
}

impl Related<super::project::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Project.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
