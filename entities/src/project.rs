use sea_orm::entity::prelude::*;

/// A project baler releases. `branches`, `tags` and `formats` hold JSON arrays of strings.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "projects")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub name: String,
    pub title: String,
    pub repo: String,
    pub provider: String,
    pub secret: String,
    pub branches: String,
    pub tags: String,
    pub formats: String,
    pub layout: String,
    pub composer: Option<String>,
    /// `config` when the config file owns the project, `api` when the admin API or `baler
    /// project add` added it (it lives in the database; the config wins on a conflict).
    pub source: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// The secret being rotated out: deliveries signed with it are still accepted.
    pub previous_secret: Option<String>,
    /// Accept GitHub's legacy `X-Hub-Signature: sha1=…` (only when the project opts in).
    pub allow_sha1: bool,
    /// The host's id for the repository, recorded from the first delivery that matched the
    /// configured URL; later deliveries must carry the same id (survives renames).
    pub host_repository_id: Option<String>,
    pub drupal_type: String,
    pub supported_branches: Option<String>,
    /// Set when the project left the config file: it takes no webhooks and is in no listing,
    /// feed or Composer repository, but its releases and files are kept. Cleared when the
    /// project comes back.
    pub disabled_at: Option<DateTimeUtc>,
    /// How often the project is rescanned (milliseconds), as its config says; none: never.
    pub rescan_every_ms: Option<i64>,
    /// When its next rescan is due (Unix milliseconds); none until the scheduler spreads it.
    pub rescan_due_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::release::Entity")]
    Release,
    #[sea_orm(has_many = "super::queue_item::Entity")]
    QueueItem,
}

impl Related<super::release::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Release.def()
    }
}

impl Related<super::queue_item::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::QueueItem.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
