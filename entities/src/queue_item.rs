use sea_orm::entity::prelude::*;

/// One unit of work for a project. The queue module is its only writer; a unique index over
/// `project_id` where `state = 'pending'` keeps one waiting item per project.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "queue_items")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub project_id: i64,
    /// `pending`, `running`, `done` or `failed`.
    pub state: String,
    /// JSON object branch → commit; the latest push per branch wins on merge.
    pub branches: String,
    /// JSON object tag → commit; tags accumulate on merge.
    pub tags: String,
    /// Rises by one on every merge; a worker acknowledges only the revision it processed.
    pub revision: i32,
    pub claimed_revision: Option<i32>,
    pub attempts: i32,
    pub enqueued_at: i64,
    pub updated_at: i64,
    /// Not claimed before this time (retry backoff).
    pub available_at: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub last_error: Option<String>,
    pub finished_at: Option<i64>,
    /// When the current or last claim began.
    pub claimed_at: Option<i64>,
    /// Package every branch and tag that matches the project's patterns (an admin's rebuild).
    pub scan_all: bool,
    /// Random, written when the row is claimed: heartbeat, ack and fail hold it, so a stale
    /// job (its lease expired, the item claimed again) writes nothing.
    pub claim_token: Option<String>,
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
