//! Opening the database and applying migrations. SQLite runs in WAL mode with synchronous at
//! NORMAL (a committed transaction survives a process crash; apalis-sqlite's `synchronous=OFF`
//! is never used) and a busy timeout so concurrent writers wait instead of failing. Hot
//! writes go through [`GroupCommit`] and this process's [`WriteGate`].

mod group_commit;

use std::time::Duration;

use migrations::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

pub use group_commit::{BatchWriter, GroupCommit, Reply, Submission, WriterStopped};

pub async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    if let Some(path) = sqlite_file(url)
        && let Some(dir) = std::path::Path::new(&path).parent()
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| DbErr::Custom(format!("cannot create the directory of {path}: {e}")))?;
    }
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(if url.starts_with("sqlite:") { 8 } else { 16 })
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            o.create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
        });
    Database::connect(options).await
}

/// The file of a `sqlite://PATH?...` URL, to create its directory first.
fn sqlite_file(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| path.to_string())
}

pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

/// Begins a transaction that will write. On SQLite it takes the write lock at `BEGIN`
/// (`BEGIN IMMEDIATE`): a deferred transaction that reads first fails at once with
/// `SQLITE_BUSY_SNAPSHOT` when another writer commits in between, which the busy timeout
/// cannot help. Other databases ignore the option.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    })
    .await
}

/// Lines up this process's hot writes on SQLite (webhook upserts, the deliveries log) before
/// they reach the database. SQLite lets one writer in at a time and makes the others poll on
/// the busy timeout with sleeps of up to 100 ms; queueing here instead hands the write lock
/// on in arrival order with no sleep, which is what keeps webhook latency flat under load.
/// Writers in other processes still meet the busy timeout. PostgreSQL needs no gate.
#[derive(Clone, Default)]
pub struct WriteGate(Option<std::sync::Arc<tokio::sync::Mutex<()>>>);

impl WriteGate {
    pub fn for_database(db: &DatabaseConnection) -> WriteGate {
        match db.get_database_backend() {
            sea_orm::DatabaseBackend::Sqlite => WriteGate(Some(Default::default())),
            _ => WriteGate(None),
        }
    }

    /// Waits for this process's turn to write; the turn ends when the guard drops.
    pub async fn enter(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.0 {
            Some(gate) => Some(gate.lock().await),
            None => None,
        }
    }
}
