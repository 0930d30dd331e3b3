//! What the app has stored, read through the `entities` crate: the checks the HTTP API does
//! not show (queue rows after their items are done, the deliveries log, audit rows, hashes).
//! Each helper is named for the question it answers.

use entities::{
    api_token, audit_entry, delivery, document, ended_session, project, project_rescan, queue_item,
    ref_problem, refusal_count, release, release_file,
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, Statement,
};

use super::app::TestApp;

/// A queue item's state, as the `queue_items.state` column holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemState {
    Pending,
    Running,
    Done,
    Failed,
}

impl ItemState {
    fn column_value(self) -> &'static str {
        match self {
            ItemState::Pending => "pending",
            ItemState::Running => "running",
            ItemState::Done => "done",
            ItemState::Failed => "failed",
        }
    }
}

/// One row of the audit log: who did what to what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub actor: String,
    pub action: String,
    pub target: String,
}

impl AuditRow {
    pub fn new(actor: &str, action: &str, target: &str) -> AuditRow {
        AuditRow {
            actor: actor.into(),
            action: action.into(),
            target: target.into(),
        }
    }
}

/// The queue's rows, done and failed ones included.
impl TestApp {
    /// How many queue items there are, in any state.
    pub async fn item_count(&self) -> u64 {
        queue_item::Entity::find().count(&self.db).await.unwrap()
    }

    /// How many queue items are in one of `states`.
    pub async fn items_in(&self, states: &[ItemState]) -> u64 {
        queue_item::Entity::find()
            .filter(queue_item::Column::State.is_in(states.iter().map(|s| s.column_value())))
            .count(&self.db)
            .await
            .unwrap()
    }

    /// How many queue items are in any state but `state`.
    pub async fn items_not_in(&self, state: ItemState) -> u64 {
        queue_item::Entity::find()
            .filter(queue_item::Column::State.ne(state.column_value()))
            .count(&self.db)
            .await
            .unwrap()
    }

    /// Every queue item's row, by id.
    pub async fn queue_rows(&self) -> Vec<queue_item::Model> {
        queue_item::Entity::find()
            .order_by_asc(queue_item::Column::Id)
            .all(&self.db)
            .await
            .unwrap()
    }

    /// The rows of the queue items in `state`, by id.
    pub async fn queue_rows_in(&self, state: ItemState) -> Vec<queue_item::Model> {
        queue_item::Entity::find()
            .filter(queue_item::Column::State.eq(state.column_value()))
            .order_by_asc(queue_item::Column::Id)
            .all(&self.db)
            .await
            .unwrap()
    }

    /// The queue's one row, in a test whose pushes all went into one item.
    pub async fn the_queue_row(&self) -> queue_item::Model {
        let mut rows = self.queue_rows().await;
        assert_eq!(rows.len(), 1, "one queue item: {rows:?}");
        rows.remove(0)
    }

    /// The project whose item was claimed first.
    pub async fn first_claimed_project(&self) -> String {
        let first = queue_item::Entity::find()
            .order_by_asc(queue_item::Column::ClaimedAt)
            .order_by_asc(queue_item::Column::Id)
            .one(&self.db)
            .await
            .unwrap()
            .expect("a queue item");
        project::Entity::find_by_id(first.project_id)
            .one(&self.db)
            .await
            .unwrap()
            .expect("the item's project")
            .name
    }
}

/// Projects and what was released.
impl TestApp {
    /// The id of project `name`'s row.
    pub async fn project_id(&self, name: &str) -> i64 {
        project::Entity::find()
            .filter(project::Column::Name.eq(name))
            .one(&self.db)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no project {name}"))
            .id
    }

    /// How many projects are disabled (gone from the serving config).
    /// The due times (Unix milliseconds) of a project's scheduled rescans, oldest first, and
    /// the items they queued.
    pub async fn rescans_of(&self, name: &str) -> Vec<(i64, Option<i64>)> {
        let id = self.project_id(name).await;
        project_rescan::Entity::find()
            .filter(project_rescan::Column::ProjectId.eq(id))
            .order_by_asc(project_rescan::Column::DueAt)
            .all(&self.db)
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.due_at, r.item))
            .collect()
    }

    pub async fn disabled_project_count(&self) -> u64 {
        project::Entity::find()
            .filter(project::Column::DisabledAt.is_not_null())
            .count(&self.db)
            .await
            .unwrap()
    }

    /// How many releases are recorded, unpublished ones included.
    /// How many bytes the documents' rows hold in all (none when the store keeps them).
    pub async fn document_bytes_in_rows(&self) -> usize {
        document::Entity::find()
            .all(&self.db)
            .await
            .unwrap()
            .iter()
            .map(|row| row.body.len())
            .sum()
    }

    pub async fn release_count(&self) -> u64 {
        release::Entity::find().count(&self.db).await.unwrap()
    }

    /// Every release row, unpublished ones included.
    pub async fn release_rows(&self) -> Vec<release::Model> {
        release::Entity::find().all(&self.db).await.unwrap()
    }

    /// How many release files are recorded, over every release.
    pub async fn release_file_count(&self) -> u64 {
        release_file::Entity::find().count(&self.db).await.unwrap()
    }

    /// Every failed ref's row, over every project.
    pub async fn ref_problem_rows(&self) -> Vec<ref_problem::Model> {
        ref_problem::Entity::find().all(&self.db).await.unwrap()
    }
}

/// The deliveries log, and refusals that were only counted.
impl TestApp {
    /// Every logged delivery, oldest first.
    pub async fn delivery_rows(&self) -> Vec<delivery::Model> {
        delivery::Entity::find()
            .order_by_asc(delivery::Column::Id)
            .all(&self.db)
            .await
            .unwrap()
    }

    /// How many deliveries are logged.
    pub async fn delivery_count(&self) -> u64 {
        delivery::Entity::find().count(&self.db).await.unwrap()
    }

    /// The last logged delivery.
    pub async fn last_delivery(&self) -> delivery::Model {
        delivery::Entity::find()
            .order_by_desc(delivery::Column::Id)
            .one(&self.db)
            .await
            .unwrap()
            .expect("a logged delivery")
    }

    /// Every per-minute count of refusals that were counted, not kept.
    pub async fn refusal_count_rows(&self) -> Vec<refusal_count::Model> {
        refusal_count::Entity::find().all(&self.db).await.unwrap()
    }
}

/// Admin tokens, sessions and the audit log.
impl TestApp {
    /// Every audit row, oldest first.
    pub async fn audit_trail(&self) -> Vec<AuditRow> {
        audit_entry::Entity::find()
            .order_by_asc(audit_entry::Column::Id)
            .all(&self.db)
            .await
            .unwrap()
            .into_iter()
            .map(|row| AuditRow {
                actor: row.actor,
                action: row.action,
                target: row.target,
            })
            .collect()
    }

    /// Every named token's row, revoked ones included.
    pub async fn api_token_rows(&self) -> Vec<api_token::Model> {
        api_token::Entity::find().all(&self.db).await.unwrap()
    }

    /// How many admin sessions were ended by logging out.
    pub async fn ended_session_count(&self) -> u64 {
        ended_session::Entity::find().count(&self.db).await.unwrap()
    }
}

/// The database itself.
impl TestApp {
    /// How much the database holds, in bytes: SQLite's pages (the WAL's included), or
    /// PostgreSQL's database size. Raw SQL: no table holds this, only the engines' own
    /// functions know it.
    pub async fn database_bytes(&self) -> i64 {
        let sql = match self.db.get_database_backend() {
            sea_orm::DatabaseBackend::Sqlite => {
                "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()"
            }
            _ => "SELECT pg_database_size(current_database())",
        };
        let row = self
            .db
            .query_one_raw(Statement::from_string(self.db.get_database_backend(), sql))
            .await
            .unwrap()
            .unwrap();
        row.try_get_by_index::<i64>(0).unwrap()
    }

    /// The app's own database on a connection of its own (one connection), e.g. to hold a
    /// lock while the app runs.
    pub async fn second_connection(&self) -> DatabaseConnection {
        let url = self
            .config
            .database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}/baler.db", self.data_dir.display()));
        let mut options = sea_orm::ConnectOptions::new(url);
        options.max_connections(1).sqlx_logging(false);
        sea_orm::Database::connect(options).await.unwrap()
    }
}
