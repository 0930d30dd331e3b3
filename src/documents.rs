//! Publish-time documents: what readers fetch most (Composer metadata, Drupal update feeds,
//! Atom feeds, the project JSON and pages), rendered once when releases change and stored in
//! the database, one row per URL path, with the `ETag` and `Last-Modified` a request answers
//! with. `web::documents` renders them and serves them; this module only keeps them.
//!
//! A refresh writes its documents in the transaction that changed the releases, so a reader
//! sees the new documents exactly when it sees the new rows: never older, never half-written.
//! Only documents whose bytes changed are written, so an unchanged document keeps its
//! `Last-Modified` and a client's copy stays valid.

use std::collections::HashMap;

use entities::document;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait, QuerySelect, Statement,
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

/// What [`replace_all_on`] changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Changes {
    pub written: usize,
    pub removed: usize,
    pub unchanged: usize,
}

/// Makes the stored documents exactly `rendered`: a document whose bytes (or `Link`) changed is
/// written with a new `ETag` and `Last-Modified`, a new one is added, and one no longer
/// rendered (a project disabled, a feed with no release left) is removed. Call it inside the
/// transaction that changed what they show, after [`lock_on`].
pub async fn replace_all_on<C: ConnectionTrait>(
    db: &C,
    rendered: Vec<Rendered>,
) -> Result<Changes, DbErr> {
    let stored: HashMap<String, (String, Option<String>)> = document::Entity::find()
        .select_only()
        .column(document::Column::Key)
        .column(document::Column::Etag)
        .column(document::Column::Link)
        .into_tuple::<(String, String, Option<String>)>()
        .all(db)
        .await?
        .into_iter()
        .map(|(key, etag, link)| (key, (etag, link)))
        .collect();
    let now = chrono::Utc::now().timestamp();
    let mut changes = Changes::default();
    let mut kept: Vec<String> = Vec::with_capacity(rendered.len());
    for document in rendered {
        let etag = etag_of(&document.body);
        kept.push(document.key.clone());
        if stored.get(&document.key) == Some(&(etag.clone(), document.link.clone())) {
            changes.unchanged += 1;
            continue;
        }
        document::Entity::insert(document::ActiveModel {
            key: Set(document.key),
            project_id: Set(document.project_id),
            content_type: Set(document.content_type.to_string()),
            body: Set(document.body),
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

/// The advisory lock's key: "baler-documents" in a number.
const DOCUMENTS_LOCK: i64 = 0x6261_6c65_7264_6f63;

/// The name under which the serving process records its public URL in `server_keys`, so that
/// every process (a `baler worker` has no URL of its own) renders the same links.
const PUBLIC_URL: &str = "public_url";

/// Records the URL the web server is reached at; documents rendered from now on link there.
pub async fn set_public_url<C: ConnectionTrait>(db: &C, url: &str) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        "INSERT INTO server_keys (name, value, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value, created_at = excluded.created_at",
        vec![
            PUBLIC_URL.into(),
            url.into(),
            crate::time::now_millis().into(),
        ],
    ))
    .await?;
    Ok(())
}

/// The URL the web server last said it is reached at; none before any server has run.
pub async fn public_url<C: ConnectionTrait>(db: &C) -> Result<Option<String>, DbErr> {
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            "SELECT value FROM server_keys WHERE name = $1",
            vec![PUBLIC_URL.into()],
        ))
        .await?;
    row.map(|row| row.try_get::<String>("", "value"))
        .transpose()
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
