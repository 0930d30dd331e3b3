use sea_orm::entity::prelude::*;

/// A published release: a tag's, or a branch's dev snapshot (rebuilt when the branch moves).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "releases")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub project_id: i64,
    pub version: String,
    /// `tag` or `dev`.
    pub kind: String,
    /// The tag or branch name the release comes from.
    pub ref_name: String,
    pub commit: String,
    /// Committer time of `commit`, Unix seconds: the archives' mtime and the release date.
    pub commit_time: i64,
    /// `published` or `unpublished`.
    pub status: String,
    pub build_log: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub composer_json: Option<String>,
    pub notes: Option<String>,
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
    #[sea_orm(has_many = "super::release_file::Entity")]
    ReleaseFile,
}

impl Related<super::project::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Project.def()
    }
}

impl Related<super::release_file::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ReleaseFile.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
