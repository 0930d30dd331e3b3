//! Release rows: written by the worker in one transaction once the files are in place, read by
//! the pages, the API and downloads.

use std::collections::HashMap;

use chrono::Utc;
use entities::release::ReleaseStatus;
use entities::{release, release_file};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait,
    DatabaseConnection, DbErr, DerivePartialModel, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Select, TryIntoModel,
};

use crate::package::{Checksums, ReleaseKind, ReleaseVersion};

/// A release row as listings read it: every column but the build log, which only the
/// release's own page reads ([`build_log`]).
#[derive(Debug, Clone, PartialEq, Eq, DerivePartialModel)]
#[sea_orm(entity = "release::Entity")]
pub struct ListedRelease {
    pub id: i64,
    pub project_id: i64,
    pub version: String,
    pub kind: ReleaseKind,
    pub ref_name: String,
    pub commit: String,
    pub commit_time: i64,
    pub status: ReleaseStatus,
    pub created_at: chrono::DateTime<Utc>,
    pub updated_at: chrono::DateTime<Utc>,
    pub composer_json: Option<String>,
    pub notes: Option<String>,
    /// The minisign public key that signed the release; `None` when it is unsigned.
    pub signing_key: Option<String>,
}

/// A release with its files, as pages and the API show it.
#[derive(Debug, Clone)]
pub struct ReleaseWithFiles {
    pub release: ListedRelease,
    pub files: Vec<release_file::Model>,
}

/// A release's notes: the commits since the previous release of its line (`since`), newest
/// first, at most [`ReleaseNotes::LIMIT`] of them; `more` counts those left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReleaseNotes {
    pub since: Option<String>,
    pub commits: Vec<crate::git::LogEntry>,
    pub more: usize,
}

impl ReleaseNotes {
    pub const LIMIT: usize = 100;

    /// The notes stored with a release (none for releases built before notes existed).
    pub fn of(release: &ListedRelease) -> Option<ReleaseNotes> {
        serde_json::from_str(release.notes.as_deref()?).ok()
    }
}

/// Build-log lines that start with this are for admins only: they name the repository's
/// location (a private host, a local path). Public pages and the public API show
/// [`public_log`]; the admin API and the admin page show the whole log.
pub const ADMIN_ONLY: &str = "[admin] ";

/// The build log as the public sees it: without the admin-only lines.
pub fn public_log(build_log: &str) -> String {
    build_log
        .lines()
        .filter(|line| !line.starts_with(ADMIN_ONLY))
        .flat_map(|line| [line, "\n"])
        .collect()
}

/// What the worker built, ready to record.
pub struct NewRelease<'a> {
    pub project_id: i64,
    pub version: &'a ReleaseVersion,
    pub ref_name: &'a str,
    pub commit: &'a str,
    pub commit_time: i64,
    pub build_log: &'a str,
    /// The `composer.json` at the commit, if it has one that parses.
    pub composer_json: Option<&'a str>,
    pub notes: &'a ReleaseNotes,
    pub files: Vec<NewFile>,
    /// The queue item whose job builds it (none outside a job).
    pub item: Option<i64>,
    /// The signature of its `SHA256SUMS` ([`sha256sums`]), with signing on.
    pub sums_minisig: Option<String>,
    /// Its provenance: a DSSE envelope, one JSON line.
    pub provenance: Option<String>,
    /// The minisign public key that signed it.
    pub signing_key: Option<String>,
}

pub struct NewFile {
    pub format: &'static str,
    pub name: String,
    pub checksums: Checksums,
    /// Its `.minisig`, with signing on.
    pub minisig: Option<String>,
}

/// A release's `SHA256SUMS`: `HASH  NAME` lines, as `sha256sum -c` reads them, in name order.
/// The one text both served and signed, so its signature holds for the bytes served.
pub fn sha256sums<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut lines: Vec<(&str, &str)> = files.into_iter().collect();
    lines.sort_by_key(|(_, name)| *name);
    lines
        .iter()
        .map(|(hash, name)| format!("{hash}  {name}\n"))
        .collect()
}

/// Writes a release and its files in the caller's transaction, replacing the files of an
/// earlier build of the same version (a dev snapshot whose branch moved). A tag release is
/// never replaced: its files were served as immutable.
pub async fn record_on<C: ConnectionTrait>(
    txn: &C,
    new: NewRelease<'_>,
) -> Result<release::Model, DbErr> {
    let now = Utc::now();
    let existing = release::Entity::find()
        .filter(release::Column::ProjectId.eq(new.project_id))
        .filter(release::Column::Version.eq(&new.version.version))
        .one(txn)
        .await?;
    let mut model: release::ActiveModel = match existing {
        Some(old) if old.kind == ReleaseKind::Tag => {
            return Err(DbErr::Custom(format!(
                "version {} is a tag release, which never changes",
                old.version
            )));
        }
        Some(old) => {
            release_file::Entity::delete_many()
                .filter(release_file::Column::ReleaseId.eq(old.id))
                .exec(txn)
                .await?;
            old.into()
        }
        None => release::ActiveModel {
            project_id: Set(new.project_id),
            version: Set(new.version.version.clone()),
            created_at: Set(now),
            ..Default::default()
        },
    };
    model.kind = Set(new.version.kind);
    model.ref_name = Set(new.ref_name.to_string());
    model.commit = Set(new.commit.to_string());
    model.commit_time = Set(new.commit_time);
    model.status = Set(ReleaseStatus::Published);
    model.build_log = Set(new.build_log.to_string());
    model.composer_json = Set(new.composer_json.map(str::to_string));
    model.notes = Set(Some(
        serde_json::to_string(new.notes).expect("notes serialise"),
    ));
    model.updated_at = Set(now);
    model.item_id = Set(new.item);
    model.sums_minisig = Set(new.sums_minisig);
    model.provenance = Set(new.provenance);
    model.signing_key = Set(new.signing_key);
    let saved = model.save(txn).await?.try_into_model()?;
    for file in new.files {
        release_file::ActiveModel {
            release_id: Set(saved.id),
            project_id: Set(saved.project_id),
            format: Set(file.format.to_string()),
            name: Set(file.name),
            size: Set(file.checksums.size as i64),
            sha256: Set(file.checksums.sha256),
            sha1: Set(file.checksums.sha1),
            md5: Set(file.checksums.md5),
            minisig: Set(file.minisig),
            created_at: Set(now),
            ..Default::default()
        }
        .insert(txn)
        .await?;
    }
    Ok(saved)
}

/// Every release of a project: tag releases first, newest commit first, then dev snapshots.
/// Two indexed reads (the releases, then the project's files); no build log.
pub async fn for_project<C: ConnectionTrait>(
    db: &C,
    project_id: i64,
) -> Result<Vec<ReleaseWithFiles>, DbErr> {
    let mut by_project = read_with_files(db, Some(project_id)).await?;
    Ok(by_project.remove(&project_id).unwrap_or_default())
}

/// Every project's releases, ordered as [`for_project`] orders them, by project id: two
/// reads in all, however many projects there are.
pub async fn by_project<C: ConnectionTrait>(
    db: &C,
) -> Result<HashMap<i64, Vec<ReleaseWithFiles>>, DbErr> {
    read_with_files(db, None).await
}

async fn read_with_files<C: ConnectionTrait>(
    db: &C,
    project_id: Option<i64>,
) -> Result<HashMap<i64, Vec<ReleaseWithFiles>>, DbErr> {
    let mut rows = release::Entity::find();
    let mut file_rows = release_file::Entity::find();
    if let Some(id) = project_id {
        rows = rows.filter(release::Column::ProjectId.eq(id));
        file_rows = file_rows.filter(release_file::Column::ProjectId.eq(id));
    }
    let rows: Vec<ListedRelease> = rows
        .order_by_desc(release::Column::CommitTime)
        .order_by_desc(release::Column::Id)
        .into_partial_model()
        .all(db)
        .await?;
    let mut files: HashMap<i64, Vec<release_file::Model>> = HashMap::new();
    for file in file_rows
        .order_by_asc(release_file::Column::Format)
        .all(db)
        .await?
    {
        files.entry(file.release_id).or_default().push(file);
    }
    let mut by_project: HashMap<i64, Vec<ReleaseWithFiles>> = HashMap::new();
    for release in rows {
        by_project
            .entry(release.project_id)
            .or_default()
            .push(ReleaseWithFiles {
                files: files.remove(&release.id).unwrap_or_default(),
                release,
            });
    }
    for releases in by_project.values_mut() {
        // Stable: keeps newest-first within each kind.
        releases.sort_by_key(|r| r.release.kind != ReleaseKind::Tag);
    }
    Ok(by_project)
}

/// A release's whole build log, admin-only lines included (see [`public_log`]).
pub async fn build_log(db: &DatabaseConnection, release_id: i64) -> Result<String, DbErr> {
    release::Entity::find_by_id(release_id)
        .select_only()
        .column(release::Column::BuildLog)
        .into_tuple::<String>()
        .one(db)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("release {release_id}")))
}

/// Versions and file names hold only these characters (see `ReleaseVersion`); anything else
/// from a URL names nothing and is not looked up.
fn plausible_name(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'))
}

/// The release a version names, with its files.
pub async fn find<C: ConnectionTrait>(
    db: &C,
    project_id: i64,
    version: &str,
) -> Result<Option<ReleaseWithFiles>, DbErr> {
    if !plausible_name(version) {
        return Ok(None);
    }
    let Some(release) = release::Entity::find()
        .filter(release::Column::ProjectId.eq(project_id))
        .filter(release::Column::Version.eq(version))
        .into_partial_model::<ListedRelease>()
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let files = release_file::Entity::find()
        .filter(release_file::Column::ReleaseId.eq(release.id))
        .all(db)
        .await?;
    Ok(Some(ReleaseWithFiles { release, files }))
}

/// What a queue item built: the published releases its job recorded (`item_id`) and, with
/// `named`, the published release of each branch and tag it named, which an earlier item
/// built when the ref had not moved since. Version order.
pub async fn of_item<C: ConnectionTrait>(
    db: &C,
    project_id: i64,
    item: i64,
    named: Option<&crate::queue::PendingRefs>,
) -> Result<Vec<ReleaseWithFiles>, DbErr> {
    let mut which = Condition::any().add(release::Column::ItemId.eq(item));
    if let Some(refs) = named {
        which = which
            .add(
                Condition::all()
                    .add(release::Column::Kind.eq(ReleaseKind::Tag))
                    .add(release::Column::RefName.is_in(refs.tags.keys())),
            )
            .add(
                Condition::all()
                    .add(release::Column::Kind.eq(ReleaseKind::Dev))
                    .add(release::Column::RefName.is_in(refs.branches.keys())),
            );
    }
    let found = release::Entity::find()
        .filter(release::Column::ProjectId.eq(project_id))
        .filter(release::Column::Status.eq(ReleaseStatus::Published))
        .filter(which)
        .order_by_asc(release::Column::Version)
        .into_partial_model::<ListedRelease>()
        .all(db)
        .await?;
    let mut files: HashMap<i64, Vec<release_file::Model>> = HashMap::new();
    for file in release_file::Entity::find()
        .filter(release_file::Column::ReleaseId.is_in(found.iter().map(|r| r.id)))
        .order_by_asc(release_file::Column::Name)
        .all(db)
        .await?
    {
        files.entry(file.release_id).or_default().push(file);
    }
    Ok(found
        .into_iter()
        .map(|release| ReleaseWithFiles {
            files: files.remove(&release.id).unwrap_or_default(),
            release,
        })
        .collect())
}

/// What a download needs of a file: its name, format and checksum, and whether its release is
/// a tag's (whose files never change). No other release column is read, build logs least.
#[derive(Debug, Clone, PartialEq, Eq, DerivePartialModel)]
#[sea_orm(entity = "release_file::Entity")]
pub struct Download {
    pub name: String,
    pub format: String,
    pub sha256: String,
    #[sea_orm(from_expr = "release::Column::Kind")]
    pub kind: ReleaseKind,
    /// Its `.minisig`, when its release is signed.
    pub minisig: Option<String>,
}

/// The query behind [`find_download`]: the file by project and name (the unique
/// `release_files_project_name` index), then its release by primary key.
fn download_query(project_id: i64, name: &str) -> Select<release_file::Entity> {
    release_file::Entity::find()
        .inner_join(release::Entity)
        .filter(release_file::Column::ProjectId.eq(project_id))
        .filter(release_file::Column::Name.eq(name))
}

/// A published file of a project, by file name.
pub async fn find_download(
    db: &DatabaseConnection,
    project_id: i64,
    name: &str,
) -> Result<Option<Download>, DbErr> {
    if !plausible_name(name) {
        return Ok(None);
    }
    download_query(project_id, name)
        .into_partial_model::<Download>()
        .one(db)
        .await
}

/// What proves a release: the signature of its `SHA256SUMS` and its provenance. Read only by
/// the routes that serve them.
#[derive(Debug, Clone, PartialEq, Eq, DerivePartialModel)]
#[sea_orm(entity = "release::Entity")]
pub struct ReleaseProofs {
    pub sums_minisig: Option<String>,
    pub provenance: Option<String>,
}

/// The [`ReleaseProofs`] of a release, by id.
pub async fn proofs<C: ConnectionTrait>(
    db: &C,
    release_id: i64,
) -> Result<Option<ReleaseProofs>, DbErr> {
    release::Entity::find_by_id(release_id)
        .into_partial_model::<ReleaseProofs>()
        .one(db)
        .await
}

/// The kind (`tag` or `dev`) of `project_id`'s release `version`, if it has one.
pub async fn kind_of_on<C: ConnectionTrait>(
    conn: &C,
    project_id: i64,
    version: &str,
) -> Result<Option<ReleaseKind>, DbErr> {
    let found = release::Entity::find()
        .filter(release::Column::ProjectId.eq(project_id))
        .filter(release::Column::Version.eq(version))
        .one(conn)
        .await?;
    Ok(found.map(|r| r.kind))
}

/// Sets a release's [`ReleaseStatus`] in the caller's transaction.
pub async fn set_status_on<C: ConnectionTrait>(
    conn: &C,
    project_id: i64,
    version: &str,
    published: bool,
) -> Result<u64, DbErr> {
    let status = if published {
        ReleaseStatus::Published
    } else {
        ReleaseStatus::Unpublished
    };
    let result = release::Entity::update_many()
        .col_expr(
            release::Column::Status,
            sea_orm::sea_query::Expr::value(status),
        )
        .col_expr(
            release::Column::UpdatedAt,
            sea_orm::sea_query::Expr::value(Utc::now()),
        )
        .filter(release::Column::ProjectId.eq(project_id))
        .filter(release::Column::Version.eq(version))
        .exec(conn)
        .await?;
    Ok(result.rows_affected)
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, DbBackend, QueryTrait, Statement};

    use super::{download_query, find_download};
    use crate::package::ReleaseKind;

    /// SQLite's plan for a download: the file found through `release_files_project_name`, its
    /// release by primary key; no table is scanned.
    #[tokio::test]
    async fn a_download_is_an_indexed_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/plan.db?mode=rwc", dir.path().display());
        let db = crate::db::connect(&url).await.unwrap();
        crate::db::migrate(&db).await.unwrap();
        // A fresh pool: a connection opened before the migrations keeps the schema it read
        // then for EXPLAIN (a real query would be prepared again).
        db.close().await.unwrap();
        let db = crate::db::connect(&url).await.unwrap();
        let query = download_query(7, "demo-1.0.0.zip").build(DbBackend::Sqlite);
        let plan: Vec<String> = db
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                format!("EXPLAIN QUERY PLAN {}", query.sql),
                query.values.map(|values| values.0).unwrap_or_default(),
            ))
            .await
            .unwrap()
            .iter()
            .map(|row| row.try_get::<String>("", "detail").unwrap())
            .collect();
        assert!(
            plan.iter().any(|step| step
                .contains("USING INDEX release_files_project_name (project_id=? AND name=?)")),
            "{plan:?}"
        );
        assert!(
            plan.iter().all(|step| !step.starts_with("SCAN")),
            "{plan:?}"
        );
    }

    /// Files recorded before `release_files` had a `project_id` get their release's, and a
    /// download then finds them in their own project only.
    #[tokio::test]
    async fn the_reads_migration_gives_old_files_their_project() {
        use migrations::{Migrator, MigratorTrait};
        struct Project {
            id: i64,
        }

        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/old.db?mode=rwc", dir.path().display());
        let db = crate::db::connect(&url).await.unwrap();
        // The schema as it was before the reads migration.
        Migrator::up(&db, Some(7)).await.unwrap();
        // Raw SQL: the entity has columns of later migrations that this schema lacks.
        for name in ["demo", "other"] {
            db.execute_unprepared(&format!(
                "INSERT INTO projects (name, title, repo, provider, secret, branches, tags, \
                 formats, layout, source, created_at, updated_at) VALUES ('{name}', '{name}', \
                 'https://example.org/{name}.git', 'github', 's', '[]', '[\"*\"]', \
                 '[\"zip\"]', 'plain', 'config', '2026-12-01T00:00:00Z', '2026-12-01T00:00:00Z')"
            ))
            .await
            .unwrap();
        }
        let (demo, other) = (Project { id: 1 }, Project { id: 2 });
        // Raw SQL too: a release and a file as that schema held them.
        db.execute_unprepared(
            "INSERT INTO releases (project_id, version, kind, ref_name, \"commit\", commit_time, \
             status, build_log, created_at, updated_at) VALUES (1, '1.0.0', 'tag', '1.0.0', \
             'c100', 1, 'published', '', '2026-12-01T00:00:00Z', '2026-12-01T00:00:00Z')",
        )
        .await
        .unwrap();
        db.execute_unprepared(
            "INSERT INTO release_files (release_id, format, name, size, sha256, sha1, md5, created_at) \
             VALUES (1, 'zip', 'demo-1.0.0.zip', 3, 'ab', 'cd', 'ef', '2026-12-01T00:00:00Z')",
        )
        .await
        .unwrap();

        Migrator::up(&db, None).await.unwrap();
        let found = find_download(&db, demo.id, "demo-1.0.0.zip")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (found.name.as_str(), found.sha256.as_str(), found.kind),
            ("demo-1.0.0.zip", "ab", ReleaseKind::Tag)
        );
        assert_eq!(
            find_download(&db, other.id, "demo-1.0.0.zip")
                .await
                .unwrap(),
            None
        );
    }
}
