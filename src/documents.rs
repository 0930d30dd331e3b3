//! Publish-time documents: what readers fetch most (Composer metadata, Drupal update feeds,
//! Atom feeds, the project JSON and pages), rendered once when releases change and stored in
//! the database, one row per URL path, with the `ETag` and `Last-Modified` a request answers
//! with. `web::documents` renders them and serves them; this module only keeps them.
//!
//! A refresh writes its documents in the transaction that changed the releases, so a reader
//! sees the new documents exactly when it sees the new rows: never older, never half-written.
//! Only documents whose bytes changed are written, so an unchanged document keeps its
//! `Last-Modified` and a client's copy stays valid.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use entities::document;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, DatabaseConnection,
    DbErr, EntityTrait, QueryFilter, QuerySelect, Statement,
};
use sha2::{Digest, Sha256};

/// A document as rendered, before it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The URL path it is served at, with its query when it has one (`/projects/p?page=2`).
    pub key: String,
    pub project_id: Option<i64>,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// The `Link` header of a paginated list's first page.
    pub link: Option<String>,
}

/// The strong `ETag` of these bytes: the first 128 bits of their sha256, quoted.
pub fn etag_of(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    format!("\"{}\"", hex::encode(&digest[..16]))
}

/// The stored document at `key`.
pub async fn find<C: ConnectionTrait>(db: &C, key: &str) -> Result<Option<document::Model>, DbErr> {
    document::Entity::find_by_id(key.to_string()).one(db).await
}

/// What [`replace_on`] changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Changes {
    pub written: usize,
    pub removed: usize,
    pub unchanged: usize,
}

/// Why documents could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreDocumentsError {
    #[error("database: {0}")]
    Db(#[from] DbErr),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// The name a document's bytes are kept under in a store that keeps documents: its ETag's hex.
pub fn stored_name(etag: &str) -> &str {
    etag.trim_matches('"')
}

/// Makes the stored documents exactly `rendered`: a document whose bytes (or `Link`) changed is
/// written with a new `ETag` and `Last-Modified`, a new one is added, and one no longer
/// rendered (a project disabled, a feed with no release left) is removed. With `only`, the
/// documents of other projects are left as they are. Call it inside the transaction that
/// changed what they show, after [`lock_on`].
///
/// When `store` keeps documents (S3), a changed document's bytes are put there first, under
/// its ETag, and its row holds no bytes; otherwise the row holds them.
pub async fn replace_on<C: ConnectionTrait>(
    db: &C,
    rendered: Vec<Rendered>,
    only: Option<&HashSet<i64>>,
    store: &dyn crate::store::ArtifactStore,
) -> Result<Changes, StoreDocumentsError> {
    let in_store = store.keeps_documents();
    let mut query = document::Entity::find();
    if let Some(ids) = only {
        query = query.filter(
            Condition::any()
                .add(document::Column::ProjectId.is_null())
                .add(document::Column::ProjectId.is_in(ids.iter().copied())),
        );
    }
    // Each row's ETag and link, and where its bytes are (an empty body: in the store).
    let stored: HashMap<String, (String, Option<String>, bool)> = query
        .select_only()
        .column(document::Column::Key)
        .column(document::Column::Etag)
        .column(document::Column::Link)
        .column_as(
            sea_orm::sea_query::Expr::cust("CAST(LENGTH(body) AS BIGINT)"),
            "body_length",
        )
        .into_tuple::<(String, String, Option<String>, i64)>()
        .all(db)
        .await?
        .into_iter()
        .map(|(key, etag, link, length)| (key, (etag, link, length == 0)))
        .collect();
    let now = chrono::Utc::now().timestamp();
    let mut changes = Changes::default();
    let mut kept: Vec<String> = Vec::with_capacity(rendered.len());
    for document in rendered {
        let etag = etag_of(&document.body);
        kept.push(document.key.clone());
        if stored.get(&document.key) == Some(&(etag.clone(), document.link.clone(), in_store)) {
            changes.unchanged += 1;
            continue;
        }
        let body = if in_store {
            store
                .put_document(stored_name(&etag), &document.body)
                .await?;
            Vec::new()
        } else {
            document.body
        };
        document::Entity::insert(document::ActiveModel {
            key: Set(document.key),
            project_id: Set(document.project_id),
            content_type: Set(document.content_type.to_string()),
            body: Set(body),
            etag: Set(etag),
            modified_at: Set(now),
            link: Set(document.link),
        })
        .on_conflict(
            OnConflict::column(document::Column::Key)
                .update_columns([
                    document::Column::ProjectId,
                    document::Column::ContentType,
                    document::Column::Body,
                    document::Column::Etag,
                    document::Column::ModifiedAt,
                    document::Column::Link,
                ])
                .to_owned(),
        )
        .exec(db)
        .await?;
        changes.written += 1;
    }
    let kept: std::collections::HashSet<&String> = kept.iter().collect();
    let gone: Vec<&String> = stored.keys().filter(|key| !kept.contains(key)).collect();
    for key in gone {
        document::Entity::delete_by_id(key.clone()).exec(db).await?;
        changes.removed += 1;
    }
    Ok(changes)
}

/// Removes from `store` the documents' bytes no row names any more, once they are an hour
/// old (maintenance; a no-op for a store that keeps no documents).
pub async fn remove_unreferenced(
    db: &DatabaseConnection,
    store: &dyn crate::store::ArtifactStore,
) -> Result<usize, StoreDocumentsError> {
    if !store.keeps_documents() {
        return Ok(0);
    }
    let referenced: HashSet<String> = document::Entity::find()
        .select_only()
        .column(document::Column::Etag)
        .into_tuple::<String>()
        .all(db)
        .await?
        .iter()
        .map(|etag| stored_name(etag).to_string())
        .collect();
    Ok(store
        .remove_unreferenced_documents(&referenced, std::time::Duration::from_secs(3600))
        .await?)
}

/// Lets one refresh at a time read and write the documents. On PostgreSQL two transactions
/// could otherwise each render from rows that lack the other's release, and the later commit
/// would store documents without the earlier release. An advisory lock held to the end of the
/// transaction orders them; reads after it see every refresh committed before. SQLite's write
/// transactions are one at a time already.
pub async fn lock_on<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    if db.get_database_backend() == DatabaseBackend::Postgres {
        db.execute_raw(Statement::from_string(
            DatabaseBackend::Postgres,
            format!("SELECT pg_advisory_xact_lock({DOCUMENTS_LOCK})"),
        ))
        .await?;
    }
    Ok(())
}

/// Tells other processes the documents changed, in the transaction that changed them: a new
/// random version in `server_keys` (which web servers poll), and on PostgreSQL a
/// notification on [`NOTIFY_CHANNEL`], delivered when the transaction commits.
pub async fn announce_on<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    set_server_value(db, VERSION, &uuid::Uuid::new_v4().simple().to_string()).await?;
    if db.get_database_backend() == DatabaseBackend::Postgres {
        db.execute_unprepared(&format!("NOTIFY {NOTIFY_CHANNEL}"))
            .await?;
    }
    Ok(())
}

/// The PostgreSQL channel on which a refresh announces itself.
pub const NOTIFY_CHANNEL: &str = "baler_documents";

/// The `server_keys` row that changes with every refresh.
const VERSION: &str = "documents_version";

/// The documents' current version (see [`announce_on`]); none before the first change.
pub async fn version<C: ConnectionTrait>(db: &C) -> Result<Option<String>, DbErr> {
    server_value(db, VERSION).await
}

/// Writes the `server_keys` row `name`.
async fn set_server_value<C: ConnectionTrait>(
    db: &C,
    name: &str,
    value: &str,
) -> Result<(), DbErr> {
    db.execute_raw(Statement::from_sql_and_values(
        db.get_database_backend(),
        "INSERT INTO server_keys (name, value, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value, created_at = excluded.created_at",
        vec![name.into(), value.into(), crate::time::now_millis().into()],
    ))
    .await?;
    Ok(())
}

async fn server_value<C: ConnectionTrait>(db: &C, name: &str) -> Result<Option<String>, DbErr> {
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            "SELECT value FROM server_keys WHERE name = $1",
            vec![name.into()],
        ))
        .await?;
    row.map(|row| row.try_get::<String>("", "value"))
        .transpose()
}

/// The advisory lock's key: "baler-documents" in a number.
const DOCUMENTS_LOCK: i64 = 0x6261_6c65_7264_6f63;

/// The name under which the serving process records its public URL in `server_keys`, so that
/// every process (a `baler worker` has no URL of its own) renders the same links.
const PUBLIC_URL: &str = "public_url";

/// Records the URL the web server is reached at; documents rendered from now on link there.
pub async fn set_public_url<C: ConnectionTrait>(db: &C, url: &str) -> Result<(), DbErr> {
    set_server_value(db, PUBLIC_URL, url).await
}

/// The URL the web server last said it is reached at; none before any server has run.
pub async fn public_url<C: ConnectionTrait>(db: &C) -> Result<Option<String>, DbErr> {
    server_value(db, PUBLIC_URL).await
}

/// The name under which processes that sign releases record the public key they sign with,
/// so that web servers (which never hold the secret key) serve it.
const SIGNING_KEY: &str = "minisign_public_key";

/// Records the `minisign.pub` of the key this process signs releases with; `None` (a process
/// that builds releases without signing) removes it: new releases are then unsigned.
pub async fn set_signing_key<C: ConnectionTrait>(db: &C, key: Option<&str>) -> Result<(), DbErr> {
    match key {
        Some(key) => set_server_value(db, SIGNING_KEY, key).await,
        None => {
            db.execute_raw(Statement::from_sql_and_values(
                db.get_database_backend(),
                "DELETE FROM server_keys WHERE name = $1",
                vec![SIGNING_KEY.into()],
            ))
            .await?;
            Ok(())
        }
    }
}

/// The public key new releases are signed with (see [`set_signing_key`]).
pub async fn signing_key<C: ConnectionTrait>(db: &C) -> Result<Option<String>, DbErr> {
    server_value(db, SIGNING_KEY).await
}

/// How readers in this process know their in-memory copies are current. Every change to the
/// documents in this process runs inside a [`Changing`] from before its transaction commits
/// to after; a change in another process is reported with [`changed_elsewhere`] (a PostgreSQL
/// notification, or the version row a web server polls). Copies are tagged with the
/// generation they were read at and used only while no change is under way and the
/// generation has not moved; otherwise the reader reads the database.
static GENERATION: AtomicU64 = AtomicU64::new(0);
static CHANGING: AtomicU64 = AtomicU64::new(0);

/// A change to the documents under way in this process, from before its commit to after.
#[must_use = "hold it until the transaction has committed (or failed)"]
pub struct Changing(());

impl Changing {
    pub fn begin() -> Changing {
        CHANGING.fetch_add(1, Ordering::SeqCst);
        GENERATION.fetch_add(1, Ordering::SeqCst);
        Changing(())
    }
}

impl Drop for Changing {
    fn drop(&mut self) {
        GENERATION.fetch_add(1, Ordering::SeqCst);
        CHANGING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Another process changed the documents: copies read before now are not used again.
pub fn changed_elsewhere() {
    GENERATION.fetch_add(1, Ordering::SeqCst);
}

/// The generation copies may be tagged with now; `None` while a change is under way.
fn settled_generation() -> Option<u64> {
    if CHANGING.load(Ordering::SeqCst) > 0 {
        return None;
    }
    Some(GENERATION.load(Ordering::SeqCst))
}

/// Copies of what readers fetch (documents, the file a download names), each used while it
/// is current (see [`Changing`]). Only what exists is kept, so the keys are bounded by the
/// documents and files there are, not by what strangers ask for; and the first copy read at
/// a new generation drops every older one.
pub struct ReadCache<V> {
    entries: RwLock<Entries<V>>,
}

/// Copies by key, all of them read at `generation`.
struct Entries<V> {
    generation: u64,
    by_key: HashMap<String, V>,
}

impl<V> Default for ReadCache<V> {
    fn default() -> Self {
        ReadCache {
            entries: RwLock::new(Entries {
                generation: 0,
                by_key: HashMap::new(),
            }),
        }
    }
}

impl<V: Clone> ReadCache<V> {
    /// The current copy of `key`, else what `load` reads (kept when nothing changed meanwhile).
    pub async fn get_or_load<E, F>(&self, key: &str, load: F) -> Result<Option<V>, E>
    where
        F: AsyncFnOnce() -> Result<Option<V>, E>,
    {
        let Some(generation) = settled_generation() else {
            return load().await;
        };
        {
            let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
            if entries.generation == generation
                && let Some(value) = entries.by_key.get(key)
            {
                return Ok(Some(value.clone()));
            }
        }
        let loaded = load().await?;
        if let Some(value) = &loaded
            && settled_generation() == Some(generation)
        {
            let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
            if entries.generation != generation {
                entries.by_key.clear();
                entries.generation = generation;
            }
            entries.by_key.insert(key.to_string(), value.clone());
        }
        Ok(loaded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_quoted_and_follow_the_bytes() {
        let a = etag_of(b"one");
        assert_eq!(a.len(), 34);
        assert!(a.starts_with('"') && a.ends_with('"'));
        assert_eq!(a, etag_of(b"one"));
        assert_ne!(a, etag_of(b"two"));
    }
}
