use sea_orm::entity::prelude::*;

/// A published release: a tag's, or a branch's dev snapshot (rebuilt when the branch moves).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "releases")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub project_id: i64,
    pub version: String,
    pub kind: ReleaseKind,
    /// The tag or branch name the release comes from.
    pub ref_name: String,
    pub commit: String,
    /// Committer time of `commit`, Unix seconds: the archives' mtime and the release date.
    pub commit_time: i64,
    pub status: ReleaseStatus,
    pub build_log: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub composer_json: Option<String>,
    pub notes: Option<String>,
    /// The queue item whose job last recorded this release.
    pub item_id: Option<i64>,
    /// The minisign signature of the release's `SHA256SUMS`, when signing was on.
    pub sums_minisig: Option<String>,
    /// The release's provenance: a DSSE envelope holding an in-toto Statement, one JSON line
    /// (its `signatures` empty when signing was off).
    pub provenance: Option<String>,
    /// The minisign public key (its base64 line) that signed the release.
    pub signing_key: Option<String>,
}

/// What a release is built from. The `kind` column holds the lower-case name.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    strum::Display,
    strum::EnumString,
    strum::IntoStaticStr,
    serde_with::SerializeDisplay,
    serde_with::DeserializeFromStr,
)]
#[sea_orm(rs_type = "String", db_type = "Text", rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum ReleaseKind {
    /// A tag's release: never rebuilt once published.
    Tag,
    /// A branch's dev snapshot, rebuilt when the branch moves.
    Dev,
}

/// Whether a release is listed. The `status` column holds the lower-case name. An unpublished
/// release (its tag was deleted) leaves the listings and feeds; its page and files stay for
/// anyone who pinned them.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    strum::Display,
    strum::EnumString,
    strum::IntoStaticStr,
    serde_with::SerializeDisplay,
    serde_with::DeserializeFromStr,
)]
#[sea_orm(rs_type = "String", db_type = "Text", rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum ReleaseStatus {
    Published,
    /// Kept, with its files, but listed and served to no one (its tag or branch is gone).
    Unpublished,
}

impl ReleaseKind {
    /// The name the `kind` column, the API and the feeds use.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
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

#[cfg(test)]
mod tests {
    use super::{ReleaseKind, ReleaseStatus};
    use sea_orm::{ActiveEnum, Iterable};

    /// The column (sea-orm's `rename_all`) and the API and pages (strum's `serialize_all`)
    /// spell each name the same, and parsing gives it back.
    #[test]
    fn the_column_and_the_api_spell_names_alike() {
        for kind in ReleaseKind::iter() {
            assert_eq!(kind.to_value(), kind.to_string());
            assert_eq!(kind.to_string().parse::<ReleaseKind>().unwrap(), kind);
        }
        for status in ReleaseStatus::iter() {
            assert_eq!(status.to_value(), status.to_string());
            assert_eq!(status.to_string().parse::<ReleaseStatus>().unwrap(), status);
        }
        assert_eq!(ReleaseKind::Tag.as_str(), "tag");
        assert_eq!(ReleaseStatus::Unpublished.to_string(), "unpublished");
    }
}
