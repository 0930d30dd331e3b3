//! The `auth_failures` table: one row per address with a count and the first and last time,
//! written off the request path by [`FailureLog`], read by the admin page, pruned by
//! maintenance.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use entities::auth_failure;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::Serialize;
use tokio::sync::mpsc;

use super::{AddressKey, FailureKind, lock};
use crate::db::WriteGate;

/// Addresses whose failures wait to be written; past it (the database is stuck and very many
/// addresses fail) new addresses go unrecorded, which the writer logs. The limit holds anyway.
const MAX_PENDING: usize = 10_000;
/// The writer waits this long after each write, so that a flood of refused attempts costs at
/// most one upsert per address per interval, not one per attempt.
const WRITE_SPACING: Duration = Duration::from_millis(250);

/// Failures not yet written, per address.
#[derive(Default)]
struct Pending {
    rows: HashMap<AddressKey, PendingRow>,
    /// Failures not recorded because too many addresses were waiting.
    dropped: u64,
}

struct PendingRow {
    count: i64,
    first_at: i64,
    last_at: i64,
    last_kind: FailureKind,
}

/// Writes `auth_failures` off the request path: a failure is answered at once, a slow or
/// failing database never turns a 401 into a 500 or holds it, and failures that arrive while
/// a write is under way are summed into one upsert per address.
pub(super) struct FailureLog {
    pending: Arc<Mutex<Pending>>,
    /// Holds at most one wake-up: the writer takes everything pending when it wakes.
    wake: mpsc::Sender<()>,
}

impl FailureLog {
    pub(super) fn start(db: DatabaseConnection, gate: WriteGate) -> FailureLog {
        let (wake, mut woken) = mpsc::channel::<()>(1);
        let pending = Arc::new(Mutex::new(Pending::default()));
        let writing = pending.clone();
        tokio::spawn(async move {
            while woken.recv().await.is_some() {
                let batch = std::mem::take(&mut *lock(&writing));
                if batch.dropped > 0 {
                    tracing::warn!(
                        attempts = batch.dropped,
                        "failed admin authentications not recorded: too many addresses waiting"
                    );
                }
                {
                    let _turn = gate.enter().await;
                    for (key, row) in batch.rows {
                        if let Err(e) = upsert(&db, key, &row).await {
                            tracing::warn!(
                                error = %e, address = %key, count = row.count,
                                "could not record failed admin authentications"
                            );
                        }
                    }
                }
                tokio::time::sleep(WRITE_SPACING).await;
            }
        });
        FailureLog { pending, wake }
    }

    pub(super) fn record(&self, key: AddressKey, kind: FailureKind) {
        let now = crate::time::now_millis();
        {
            let mut pending = lock(&self.pending);
            if pending.rows.len() >= MAX_PENDING && !pending.rows.contains_key(&key) {
                pending.dropped += 1;
                return;
            }
            let row = pending.rows.entry(key).or_insert(PendingRow {
                count: 0,
                first_at: now,
                last_at: now,
                last_kind: kind,
            });
            row.count += 1;
            row.last_at = now;
            row.last_kind = kind;
        }
        // Full: a wake-up is pending already, and it will take this row too.
        let _ = self.wake.try_send(());
    }
}

/// One statement: a new address gets its row; a known one has its count raised and its
/// last time and kind replaced (`first_at` stays). Works alike on SQLite and PostgreSQL.
async fn upsert(db: &DatabaseConnection, key: AddressKey, row: &PendingRow) -> Result<(), DbErr> {
    use auth_failure::{Column, Entity};
    use sea_orm::sea_query::ExprTrait;
    Entity::insert(auth_failure::ActiveModel {
        client_address: Set(key.to_string()),
        count: Set(row.count),
        first_at: Set(row.first_at),
        last_at: Set(row.last_at),
        last_kind: Set(row.last_kind.as_str().to_string()),
        ..Default::default()
    })
    .on_conflict(
        OnConflict::column(Column::ClientAddress)
            .value(
                Column::Count,
                Expr::col((Entity, Column::Count)).add(row.count),
            )
            .update_columns([Column::LastAt, Column::LastKind])
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// One row of the admin page's "Failed sign-ins".
#[derive(Debug, Clone, Serialize)]
pub struct AuthFailureView {
    /// An IPv4 address or an IPv6 /64.
    pub address: String,
    pub count: i64,
    pub first_at: String,
    pub last_at: String,
    /// `bearer` or `login`: where the latest attempt was made.
    pub last_kind: String,
}

/// The `limit` addresses that failed most recently, newest first.
pub async fn recent_failures(
    db: &DatabaseConnection,
    limit: u64,
) -> Result<Vec<AuthFailureView>, DbErr> {
    Ok(auth_failure::Entity::find()
        .order_by_desc(auth_failure::Column::LastAt)
        .order_by_desc(auth_failure::Column::Id)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(|row| AuthFailureView {
            address: row.client_address,
            count: row.count,
            first_at: crate::admin::rfc3339(row.first_at),
            last_at: crate::admin::rfc3339(row.last_at),
            last_kind: row.last_kind,
        })
        .collect())
}

/// How long an address's failures are kept after its last one.
pub const RETENTION_DAYS: i64 = 30;

/// Removes addresses whose last failure is older than [`RETENTION_DAYS`]; returns how many.
pub async fn prune(db: &DatabaseConnection) -> Result<u64, DbErr> {
    let cutoff = crate::time::now_millis() - RETENTION_DAYS * 24 * 3600 * 1000;
    let result = auth_failure::Entity::delete_many()
        .filter(auth_failure::Column::LastAt.lt(cutoff))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}
