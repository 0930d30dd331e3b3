//! The deliveries log: webhook deliveries, accepted or refused, with the answer they got.
//! Accepted deliveries carry a replay key (the host's delivery id plus a hash of the body):
//! a redelivery is answered with the first answer and changes nothing. Delivery ids are
//! mostly not signed, so the key always includes the body's hash, and it is only consulted
//! after the signature holds. Admins read it through `GET /api/v1/deliveries` and
//! `/admin/deliveries`.
//!
//! Refusals come from anyone on the internet, so what they store is bounded: a reason from a
//! fixed set ([`Refusal`]), a delivery id of at most 128 characters, names of at most 64.
//! Refusals for unknown projects are only counted, per minute, client address and reason
//! (`refusal_counts`); refusals for a known project are kept one row each within the
//! client address's budget ([`RefusalBudget`]) and counted past it.

use entities::{delivery, refusal_count};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect, SqlErr, Statement,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::db::{BatchWriter, GroupCommit, Reply, Submission, WriteGate};
use crate::time::{from_millis, from_seconds, now_millis, rfc3339, rfc3339_millis};

/// How long deliveries are kept.
pub const RETENTION_DAYS: i64 = 30;

/// The longest delivery id kept (hosts send UUIDs; GitLab's `webhook-id` is shorter still).
pub const MAX_DELIVERY_ID: usize = 128;
/// The longest project or event name kept.
pub const MAX_NAME: usize = 64;

/// `text` cut to at most `max` characters.
pub fn bounded(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => text[..end].to_string(),
        None => text.to_string(),
    }
}

/// Why a delivery was refused: a fixed set, so that a refused request stores no text of its
/// own choosing. The client's answer carries the details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    UnknownProject,
    TooLarge,
    BufferFull,
    UnreadableBody,
    UnsupportedMediaType,
    MissingSignature,
    BadSignature,
    StaleTimestamp,
    MissingEvent,
    MalformedPayload,
    RepositoryMismatch,
    StorageUnavailable,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::UnknownProject => "unknown project",
            Refusal::TooLarge => "body too large",
            Refusal::BufferFull => "webhook buffer full",
            Refusal::UnreadableBody => "body could not be read",
            Refusal::UnsupportedMediaType => "unsupported content type",
            Refusal::MissingSignature => "missing signature",
            Refusal::BadSignature => "signature does not match",
            Refusal::StaleTimestamp => "stale or future timestamp",
            Refusal::MissingEvent => "missing event header",
            Refusal::MalformedPayload => "malformed payload",
            Refusal::RepositoryMismatch => "payload names another repository",
            Refusal::StorageUnavailable => "storage unavailable",
        }
    }
}

/// One delivery as the handler saw it.
#[derive(Debug, Clone, Default)]
pub struct DeliveryRecord {
    pub project_id: Option<i64>,
    pub project_name: String,
    pub provider: Option<&'static str>,
    pub event: Option<String>,
    pub delivery_id: Option<String>,
    pub replay_key: Option<String>,
    pub status: u16,
    pub reason: String,
    pub item_id: Option<i64>,
    pub response: String,
    pub client_address: Option<String>,
}

/// A refusal that is counted, not kept: one more in its minute's row.
#[derive(Debug, Clone)]
pub struct CountedRefusal {
    /// The client's address as budgets see it (an IPv6 client as its /64).
    pub address: String,
    pub reason: Refusal,
    /// The project name from the URL (cut to [`MAX_NAME`]).
    pub name: String,
}

/// How many refused deliveries each client address may have kept one row each; past it they
/// are only counted (`refusal_counts`). In memory, per process: a restart refills it.
#[derive(Clone)]
pub struct RefusalBudget {
    limiter: Option<std::sync::Arc<governor::DefaultKeyedRateLimiter<std::net::IpAddr>>>,
    calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl RefusalBudget {
    /// `per_hour` rows per address, refilled evenly over the hour; 0 keeps none.
    pub fn new(per_hour: u32) -> RefusalBudget {
        let limiter = std::num::NonZeroU32::new(per_hour).map(|n| {
            std::sync::Arc::new(governor::RateLimiter::keyed(governor::Quota::per_hour(n)))
        });
        RefusalBudget {
            limiter,
            calls: Default::default(),
        }
    }

    /// Takes one kept row from `address`'s budget (pass an IPv6 client's /64, which one host
    /// can fill with addresses); false when it is spent.
    pub fn keep(&self, address: std::net::IpAddr) -> bool {
        let Some(limiter) = &self.limiter else {
            return false;
        };
        // Once the map is large, it is trimmed of full buckets every 1,024th call, so that
        // many addresses cannot grow it for ever, nor make every call scan it.
        let calls = self
            .calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if calls.is_multiple_of(1024) && limiter.len() > 10_000 {
            limiter.retain_recent();
        }
        limiter.check_key(&address).is_ok()
    }
}

/// `delivery-id:sha256(body)`.
pub fn replay_key(delivery_id: &str, body: &[u8]) -> String {
    format!("{delivery_id}:{}", hex::encode(Sha256::digest(body)))
}

/// Why a delivery could not be logged.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryLogError {
    #[error("the deliveries log has stopped")]
    Stopped,
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// What the deliveries log's writer is handed.
pub enum LogEntry {
    /// A delivery row; its handler waits for the commit.
    Delivery(DeliveryRecord),
    /// A refusal to count; nobody waits for it.
    Counted(CountedRefusal),
}

/// The deliveries log's writer, shared by all handlers. Each handler waits until its record is
/// committed before answering the host, but records arriving together are written together:
/// one multi-row INSERT per batch ([`GroupCommit`]), so the log does not halve webhook
/// throughput on SQLite's single writer.
#[derive(Clone)]
pub struct DeliveryLog {
    writer: GroupCommit<LogWriter>,
}

impl DeliveryLog {
    /// Starts the writer task; it ends when the last `DeliveryLog` clone is dropped.
    pub fn start(db: DatabaseConnection, gate: WriteGate) -> DeliveryLog {
        DeliveryLog {
            writer: GroupCommit::start(LogWriter { db }, gate),
        }
    }

    /// Records a delivery and waits until it is committed.
    pub async fn record(&self, record: DeliveryRecord) -> Result<(), DeliveryLogError> {
        self.writer
            .submit(LogEntry::Delivery(record))
            .await
            .map_err(|_| DeliveryLogError::Stopped)?
    }

    /// Counts a refusal in its minute's row, without waiting for its commit. When the writer
    /// is far behind (storage that cannot commit) the count is dropped after a moment rather
    /// than held in memory.
    pub async fn count_refused(&self, refusal: CountedRefusal) {
        let handed = self
            .writer
            .submit_detached(LogEntry::Counted(refusal), REFUSAL_WAIT)
            .await;
        if !handed {
            tracing::warn!("the deliveries log is behind; a refusal is not counted");
        }
    }
}

/// How long a refusal waits for room in the writer's queue before it is dropped.
const REFUSAL_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Writes the deliveries log in batches: the batch's refusal counts first, then its delivery
/// rows.
struct LogWriter {
    db: DatabaseConnection,
}

impl BatchWriter for LogWriter {
    type Job = LogEntry;
    type Answer = Result<(), DeliveryLogError>;
    /// The most records one INSERT carries.
    const MAX_BATCH: usize = 256;

    async fn write(&self, batch: Vec<Submission<LogEntry, Self::Answer>>) {
        let mut counted = Vec::new();
        let mut deliveries = Vec::new();
        for Submission { job, reply } in batch {
            match job {
                LogEntry::Delivery(record) => deliveries.push(WaitingRow { record, reply }),
                LogEntry::Counted(refusal) => counted.push(refusal),
            }
        }
        write_counts(&self.db, counted).await;
        if !deliveries.is_empty() {
            write_deliveries(&self.db, deliveries).await;
        }
    }
}

/// A delivery row waiting to be written, and the way back to its handler.
struct WaitingRow {
    record: DeliveryRecord,
    reply: Reply<Result<(), DeliveryLogError>>,
}

/// One minute's refusals from one address for one reason, as its `refusal_counts` row grows.
struct RefusalTally {
    count: i64,
    /// The project name of the latest of them.
    last_name: String,
}

/// Adds each minute's, address's and reason's refusals to its row in one upsert per row.
async fn write_counts(db: &DatabaseConnection, counted: Vec<CountedRefusal>) {
    if counted.is_empty() {
        return;
    }
    let minute = chrono::Utc::now().timestamp() / 60;
    let mut tallies: std::collections::HashMap<(String, Refusal), RefusalTally> =
        std::collections::HashMap::new();
    for refusal in counted {
        let tally = tallies
            .entry((refusal.address, refusal.reason))
            .or_insert(RefusalTally {
                count: 0,
                last_name: String::new(),
            });
        tally.count += 1;
        tally.last_name = refusal.name;
    }
    // One transaction for the batch: one commit, however many addresses it names.
    let txn = match crate::db::begin_write(db).await {
        Ok(txn) => txn,
        Err(e) => {
            tracing::warn!(error = %e, "could not count refused deliveries");
            return;
        }
    };
    for ((address, reason), tally) in tallies {
        let statement = Statement::from_sql_and_values(
            db.get_database_backend(),
            "INSERT INTO refusal_counts (minute, client_address, reason, count, last_name) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (minute, client_address, reason) DO UPDATE SET \
               count = refusal_counts.count + excluded.count, last_name = excluded.last_name",
            vec![
                minute.into(),
                address.into(),
                reason.as_str().into(),
                tally.count.into(),
                tally.last_name.into(),
            ],
        );
        if let Err(e) = txn.execute_raw(statement).await {
            tracing::warn!(error = %e, "could not count refused deliveries");
            return;
        }
    }
    if let Err(e) = txn.commit().await {
        tracing::warn!(error = %e, "could not count refused deliveries");
    }
}

async fn write_deliveries(db: &DatabaseConnection, batch: Vec<WaitingRow>) {
    let models: Vec<delivery::ActiveModel> = batch
        .iter()
        .map(|row| model(&row.record, row.record.replay_key.clone()))
        .collect();
    let result = delivery::Entity::insert_many(models).exec(db).await;
    match result {
        Ok(_) => {
            for row in batch {
                row.reply.send(Ok(()));
            }
        }
        // A replay key already taken (redeliveries racing) fails the whole statement: fall
        // back to one row at a time, where the conflict is handled row by row.
        Err(_) => {
            for WaitingRow { record, reply } in batch {
                reply.send(
                    insert_one(db, &record)
                        .await
                        .map_err(DeliveryLogError::from),
                );
            }
        }
    }
}

fn model(record: &DeliveryRecord, replay_key: Option<String>) -> delivery::ActiveModel {
    delivery::ActiveModel {
        project_id: Set(record.project_id),
        project_name: Set(record.project_name.clone()),
        provider: Set(record.provider.map(str::to_string)),
        event: Set(record.event.clone()),
        delivery_id: Set(record.delivery_id.clone()),
        replay_key: Set(replay_key),
        status: Set(i32::from(record.status)),
        reason: Set(record.reason.clone()),
        item_id: Set(record.item_id),
        response: Set(record.response.clone()),
        received_at: Set(now_millis()),
        client_address: Set(record.client_address.clone()),
        ..Default::default()
    }
}

/// Stores one delivery. A second accepted delivery with the same replay key (two redeliveries
/// racing) is stored without the key, so the first answer stays the one replayed.
async fn insert_one(db: &DatabaseConnection, record: &DeliveryRecord) -> Result<(), DbErr> {
    match model(record, record.replay_key.clone()).insert(db).await {
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            model(record, None).insert(db).await.map(|_| ())
        }
        other => other.map(|_| ()),
    }
}

/// The first answer to an accepted delivery with this key, if there was one.
pub async fn replay(
    db: &DatabaseConnection,
    project_id: i64,
    replay_key: &str,
) -> Result<Option<delivery::Model>, DbErr> {
    delivery::Entity::find()
        .filter(delivery::Column::ProjectId.eq(project_id))
        .filter(delivery::Column::ReplayKey.eq(replay_key))
        .one(db)
        .await
}

/// Removes deliveries and refusal counts older than the retention window; returns how many.
pub async fn prune(db: &DatabaseConnection) -> Result<u64, DbErr> {
    let cutoff = now_millis() - RETENTION_DAYS * 24 * 3600 * 1000;
    let result = delivery::Entity::delete_many()
        .filter(delivery::Column::ReceivedAt.lt(cutoff))
        .exec(db)
        .await?;
    let counts = refusal_count::Entity::delete_many()
        .filter(refusal_count::Column::Minute.lt(cutoff / 60_000))
        .exec(db)
        .await?;
    Ok(result.rows_affected + counts.rows_affected)
}

/// One row of the counted refusals on `/admin/deliveries`.
#[derive(Debug, Clone, Serialize)]
pub struct RefusalCountView {
    /// The minute's start, RFC 3339.
    pub minute: String,
    pub client_address: String,
    pub reason: String,
    pub count: i64,
    pub last_name: String,
}

/// The latest `limit` rows of counted refusals, newest first.
pub async fn recent_counts(
    db: &DatabaseConnection,
    limit: u64,
) -> Result<Vec<RefusalCountView>, DbErr> {
    Ok(refusal_count::Entity::find()
        .order_by_desc(refusal_count::Column::Minute)
        .order_by_desc(refusal_count::Column::Count)
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(|r| RefusalCountView {
            minute: rfc3339(from_seconds(r.minute * 60)),
            client_address: r.client_address,
            reason: r.reason,
            count: r.count,
            last_name: r.last_name,
        })
        .collect())
}

/// One row of `GET /api/v1/deliveries`, like a host's "recent deliveries" view.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryView {
    pub id: i64,
    pub project: String,
    pub provider: Option<String>,
    pub event: Option<String>,
    pub delivery_id: Option<String>,
    pub status: i32,
    pub reason: String,
    pub item: Option<i64>,
    pub received_at: String,
}

impl From<delivery::Model> for DeliveryView {
    fn from(d: delivery::Model) -> DeliveryView {
        DeliveryView {
            id: d.id,
            project: d.project_name,
            provider: d.provider,
            event: d.event,
            delivery_id: d.delivery_id,
            status: d.status,
            reason: d.reason,
            item: d.item_id,
            received_at: rfc3339_millis(from_millis(d.received_at)),
        }
    }
}

/// The most recent deliveries, newest first, optionally of one project.
pub async fn recent(
    db: &DatabaseConnection,
    project: Option<&str>,
    limit: u64,
) -> Result<Vec<DeliveryView>, DbErr> {
    let mut query = delivery::Entity::find()
        .order_by_desc(delivery::Column::Id)
        .limit(limit);
    if let Some(project) = project {
        query = query.filter(delivery::Column::ProjectName.eq(project));
    }
    Ok(query.all(db).await?.into_iter().map(Into::into).collect())
}

/// The `per_project` most recent deliveries of every project (as named in the hook URL, known
/// or not), by project name, newest first within each: a host's "recent deliveries" view for
/// every hook at once, where one busy project cannot push the others out.
pub async fn recent_per_project(
    db: &DatabaseConnection,
    per_project: u64,
) -> Result<Vec<DeliveryView>, DbErr> {
    let statement = Statement::from_sql_and_values(
        db.get_database_backend(),
        "SELECT * FROM ( \
           SELECT d.*, ROW_NUMBER() OVER (PARTITION BY d.project_name ORDER BY d.id DESC) AS nth \
           FROM deliveries d) ranked \
         WHERE nth <= $1 ORDER BY project_name, id DESC",
        vec![(per_project as i64).into()],
    );
    Ok(delivery::Entity::find()
        .from_raw_sql(statement)
        .all(db)
        .await?
        .into_iter()
        .map(Into::into)
        .collect())
}
