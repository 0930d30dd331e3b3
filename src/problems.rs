//! Refs that failed on their own: a ref that could not be resolved, named as a version or
//! packaged fails alone, with its commit and reason, while the job goes on with the other
//! refs. One row per project and ref: failing again replaces it, releasing the ref clears it.
//! The worker writes them inside its own write transaction (hence `…_on(conn)`); the admin
//! API and the admin page read them.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entities::{project, ref_problem};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::Serialize;

/// A ref that failed, as the admin API shows it: `{"ref","commit","reason","at"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The full ref name, e.g. `refs/tags/0.9.0`.
    #[serde(rename = "ref")]
    pub ref_name: String,
    /// The commit the ref pointed at; empty when it could not be resolved.
    pub commit: String,
    pub reason: String,
    /// When it last failed (RFC 3339 in JSON).
    #[serde(serialize_with = "crate::time::serialize_rfc3339")]
    pub at: DateTime<Utc>,
}

impl Problem {
    /// The commit as people read it: its first 10 hex digits.
    pub fn short_commit(&self) -> &str {
        self.commit.get(..10).unwrap_or(&self.commit)
    }

    /// `at` as the admin page shows it.
    pub fn at_text(&self) -> String {
        self.at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
    }
}

impl From<ref_problem::Model> for Problem {
    fn from(row: ref_problem::Model) -> Problem {
        Problem {
            ref_name: row.ref_name,
            commit: row.commit,
            reason: row.reason,
            at: row.at,
        }
    }
}

/// Records that `ref_name` failed at `commit` (empty if unresolved) for `reason`, now; an
/// earlier problem of the same ref is replaced. One statement, so it is safe in any
/// transaction and against concurrent writers.
pub async fn record_on<C: ConnectionTrait>(
    conn: &C,
    project_id: i64,
    ref_name: &str,
    commit: &str,
    reason: &str,
) -> Result<(), DbErr> {
    ref_problem::Entity::insert(ref_problem::ActiveModel {
        project_id: Set(project_id),
        ref_name: Set(ref_name.to_string()),
        commit: Set(commit.to_string()),
        reason: Set(reason.to_string()),
        at: Set(Utc::now()),
        ..Default::default()
    })
    .on_conflict(
        OnConflict::columns([ref_problem::Column::ProjectId, ref_problem::Column::RefName])
            .update_columns([
                ref_problem::Column::Commit,
                ref_problem::Column::Reason,
                ref_problem::Column::At,
            ])
            .to_owned(),
    )
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

/// Forgets the problem of `ref_name`, if it has one (it released, or it is gone).
pub async fn clear_on<C: ConnectionTrait>(
    conn: &C,
    project_id: i64,
    ref_name: &str,
) -> Result<(), DbErr> {
    ref_problem::Entity::delete_many()
        .filter(ref_problem::Column::ProjectId.eq(project_id))
        .filter(ref_problem::Column::RefName.eq(ref_name))
        .exec(conn)
        .await?;
    Ok(())
}

/// A project's problems, newest first.
pub async fn for_project<C: ConnectionTrait>(
    db: &C,
    project_id: i64,
) -> Result<Vec<Problem>, DbErr> {
    Ok(ref_problem::Entity::find()
        .filter(ref_problem::Column::ProjectId.eq(project_id))
        .order_by_desc(ref_problem::Column::At)
        .order_by_desc(ref_problem::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(Problem::from)
        .collect())
}

/// Every failed ref of a project and the commit it failed at: a ref whose commit has not
/// moved would fail the same way again, so the worker skips it until it moves.
pub async fn known<C: ConnectionTrait>(
    db: &C,
    project_id: i64,
) -> Result<HashMap<String, String>, DbErr> {
    Ok(ref_problem::Entity::find()
        .filter(ref_problem::Column::ProjectId.eq(project_id))
        .all(db)
        .await?
        .into_iter()
        .map(|row| (row.ref_name, row.commit))
        .collect())
}

/// The `limit` newest problems of every project, with the project's name, for the admin page.
pub async fn recent<C: ConnectionTrait>(
    db: &C,
    limit: u64,
) -> Result<Vec<(String, Problem)>, DbErr> {
    Ok(ref_problem::Entity::find()
        .find_also_related(project::Entity)
        .order_by_desc(ref_problem::Column::At)
        .order_by_desc(ref_problem::Column::Id)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(|(row, project)| {
            let name = project.map(|p| p.name).unwrap_or_default();
            (name, Problem::from(row))
        })
        .collect())
}
