use sea_orm::entity::prelude::*;

/// One archive of a release, with the checksums consumers verify.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "release_files")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub release_id: i64,
    /// The release's project, so that a download finds its file by `(project_id, name)`.
    pub project_id: i64,
    /// `tar.gz` or `zip`.
    pub format: String,
    /// `NAME-VERSION.EXT`, unique within the project's files (`release_files_project_name`).
    pub name: String,
    pub size: i64,
    pub sha256: String,
    pub sha1: String,
    pub md5: String,
    pub created_at: DateTimeUtc,
    /// The file's minisign signature (a `.minisig` file's text), when signing was on.
    pub minisig: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::release::Entity",
        from = "Column::ReleaseId",
        to = "super::release::Column::Id",
        on_delete = "Cascade"
    )]
    Release,
}

impl Related<super::release::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Release.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
