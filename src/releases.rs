//! Release rows: written by the worker in one transaction once the files are in place, read by
//! the pages, the API and downloads.

use chrono::Utc;
use entities::release::ReleaseStatus;
use entities::{release, release_file};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait, ModelTrait, QueryFilter, QueryOrder, TryIntoModel,
};

use crate::package::{Checksums, ReleaseKind, ReleaseVersion};

/// A release with its files, as pages and the API show it.
#[derive(Debug, Clone)]
pub struct ReleaseWithFiles {
    pub release: release::Model,
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
    pub fn of(release: &release::Model) -> Option<ReleaseNotes> {
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
}

pub struct NewFile {
    pub format: &'static str,
    pub name: String,
    pub checksums: Checksums,
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
    let saved = model.save(txn).await?.try_into_model()?;
    for file in new.files {
        release_file::ActiveModel {
            release_id: Set(saved.id),
            format: Set(file.format.to_string()),
            name: Set(file.name),
            size: Set(file.checksums.size as i64),
            sha256: Set(file.checksums.sha256),
            sha1: Set(file.checksums.sha1),
            md5: Set(file.checksums.md5),
            created_at: Set(now),
            ..Default::default()
        }
        .insert(txn)
        .await?;
    }
    Ok(saved)
}

/// Every release of a project: tag releases first, newest commit first, then dev snapshots.
pub async fn for_project(
    db: &DatabaseConnection,
    project_id: i64,
) -> Result<Vec<ReleaseWithFiles>, DbErr> {
    let rows = release::Entity::find()
        .filter(release::Column::ProjectId.eq(project_id))
        .order_by_desc(release::Column::CommitTime)
        .order_by_desc(release::Column::Id)
        .find_with_related(release_file::Entity)
        .all(db)
        .await?;
    let mut releases: Vec<ReleaseWithFiles> = rows
        .into_iter()
        .map(|(release, mut files)| {
            files.sort_by(|a, b| a.format.cmp(&b.format));
            ReleaseWithFiles { release, files }
        })
        .collect();
    // Stable: keeps newest-first within each kind.
    releases.sort_by_key(|r| r.release.kind != ReleaseKind::Tag);
    Ok(releases)
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
pub async fn find(
    db: &DatabaseConnection,
    project_id: i64,
    version: &str,
) -> Result<Option<ReleaseWithFiles>, DbErr> {
    if !plausible_name(version) {
        return Ok(None);
    }
    let Some(release) = release::Entity::find()
        .filter(release::Column::ProjectId.eq(project_id))
        .filter(release::Column::Version.eq(version))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let files = release.find_related(release_file::Entity).all(db).await?;
    Ok(Some(ReleaseWithFiles { release, files }))
}

/// A published file of a project, by file name.
pub async fn find_file(
    db: &DatabaseConnection,
    project_id: i64,
    name: &str,
) -> Result<Option<(release_file::Model, release::Model)>, DbErr> {
    if !plausible_name(name) {
        return Ok(None);
    }
    let found = release_file::Entity::find()
        .filter(release_file::Column::Name.eq(name))
        .find_also_related(release::Entity)
        .filter(release::Column::ProjectId.eq(project_id))
        .one(db)
        .await?;
    Ok(found.and_then(|(file, release)| release.map(|r| (file, r))))
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
