//! The project registry: projects from the config file are synced into the database at start;
//! `baler project add` writes the same rows. Everything else reads [`Project`].
//!
//! A config project that leaves the config file is disabled, not deleted: its releases and
//! files stay (lock files point at them), and it comes back with its history when the config
//! names it again. [`find`], [`list`] and [`ProjectCache`] see enabled projects only: they
//! serve webhooks, public pages, feeds and the Composer repository. Admin views and the CLI use
//! [`find_including_disabled`] and [`list_all`]; the worker reads by id ([`find_by_id`]) and
//! checks [`Project::disabled_at`] itself.

use chrono::{DateTime, Utc};
use entities::project;
use globset::{Glob, GlobSet, GlobSetBuilder};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait, QueryFilter, QueryOrder, TryIntoModel,
};

use crate::config::ProjectSettings;
use crate::package::{ArchiveFormat, Layout};
use crate::provider::Provider;

#[derive(Clone)]
pub struct Project {
    pub id: i64,
    pub name: String,
    pub title: String,
    pub repo: String,
    pub provider: Provider,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub allow_sha1: bool,
    /// The host's repository id, once a delivery matching the configured URL carried one.
    pub host_repository_id: Option<String>,
    /// Branches that get dev releases, compiled once when the row is read.
    pub branches: GlobSet,
    /// Tags that get releases.
    pub tags: GlobSet,
    pub formats: Vec<ArchiveFormat>,
    pub layout: Layout,
    pub composer: Option<String>,
    /// The `type` of the Drupal update feed (`project_module`, `project_theme`, …).
    pub drupal_type: String,
    /// The feed's `supported_branches`; `None` supports every release line.
    pub supported_branches: Option<Vec<String>>,
    /// When the project left the config file; `None` while it is enabled. Only the lookups
    /// that include disabled projects return one with it set.
    pub disabled_at: Option<DateTime<Utc>>,
    /// When the row last changed (every start rewrites the config's projects).
    pub updated_at: DateTime<Utc>,
}

/// Secrets are left out, so a stray `{:?}` never writes one to a log.
impl std::fmt::Debug for Project {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Project")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("repo", &self.repo)
            .field("provider", &self.provider)
            .field("disabled_at", &self.disabled_at)
            .finish_non_exhaustive()
    }
}

/// The project's patterns as one matcher (the config already refused bad patterns).
fn compile(patterns: &[String]) -> Result<GlobSet, globset::Error> {
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        set.add(Glob::new(pattern)?);
    }
    set.build()
}

impl Project {
    /// The secrets deliveries may be signed with: the current one, then the one rotated out.
    /// None at all while the project has no secret (none configured, not connected yet): every
    /// delivery is refused then, since an empty HMAC key is no secret.
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.secret.as_str())
            .chain(self.previous_secret.as_deref())
            .filter(|secret| !secret.is_empty())
    }

    /// Whether deliveries can be verified at all.
    pub fn has_secret(&self) -> bool {
        !self.secret.is_empty()
    }

    pub fn is_disabled(&self) -> bool {
        self.disabled_at.is_some()
    }

    pub fn releases_branch(&self, branch: &str) -> bool {
        self.branches.is_match(branch)
    }

    pub fn releases_tag(&self, tag: &str) -> bool {
        self.tags.is_match(tag)
    }

    fn from_model(m: project::Model) -> Result<Project, DbErr> {
        let corrupt =
            |what: &str| DbErr::Custom(format!("project {}: bad {what} in database", m.name));
        let list = |text: &str, what: &str| -> Result<Vec<String>, DbErr> {
            serde_json::from_str(text).map_err(|_| corrupt(what))
        };
        let patterns = |text: &str, what: &str| -> Result<GlobSet, DbErr> {
            compile(&list(text, what)?).map_err(|_| corrupt(what))
        };
        let formats = list(&m.formats, "formats")?
            .iter()
            .map(|f| f.parse::<ArchiveFormat>().map_err(|_| corrupt("formats")))
            .collect::<Result<Vec<_>, _>>()?;
        let supported_branches = m
            .supported_branches
            .as_deref()
            .map(|text| list(text, "supported_branches"))
            .transpose()?;
        Ok(Project {
            id: m.id,
            provider: m.provider.parse().map_err(|_| corrupt("provider"))?,
            layout: m.layout.parse().map_err(|_| corrupt("layout"))?,
            branches: patterns(&m.branches, "branches")?,
            tags: patterns(&m.tags, "tags")?,
            formats,
            name: m.name,
            title: m.title,
            repo: m.repo,
            secret: m.secret,
            previous_secret: m.previous_secret,
            allow_sha1: m.allow_sha1,
            host_repository_id: m.host_repository_id,
            composer: m.composer,
            supported_branches,
            drupal_type: m.drupal_type,
            disabled_at: m.disabled_at,
            updated_at: m.updated_at,
        })
    }
}

fn json_list<T: AsRef<str>>(items: &[T]) -> String {
    serde_json::to_string(&items.iter().map(AsRef::as_ref).collect::<Vec<&str>>())
        .expect("strings serialise")
}

/// Where a project was defined: the config file (synced at start; it wins on a conflict), or
/// added through the admin API or `baler project add` (kept in the database).
pub const FROM_CONFIG: &str = "config";
pub const ADDED: &str = "api";

/// Inserts or updates one project by name. `source` is [`FROM_CONFIG`] or [`ADDED`]. A
/// disabled project is enabled again: adding it back brings back its releases.
pub async fn upsert<C: ConnectionTrait>(
    db: &C,
    settings: &ProjectSettings,
    source: &str,
) -> Result<Project, DbErr> {
    let existing = project::Entity::find()
        .filter(project::Column::Name.eq(&settings.name))
        .one(db)
        .await?;
    let now = Utc::now();
    let formats: Vec<&str> = settings.formats.iter().map(|f| f.extension()).collect();
    let mut model = match existing {
        Some(m) => m.into(),
        None => project::ActiveModel {
            name: Set(settings.name.clone()),
            created_at: Set(now),
            ..Default::default()
        },
    };
    model.title = Set(settings.title.clone());
    model.repo = Set(settings.repo.clone());
    model.provider = Set(settings.provider.as_str().to_string());
    // A project the config gives no secret keeps the one `baler project connect` stored.
    let keeps_stored = settings.secret.is_empty() && model.secret.is_unchanged();
    if !keeps_stored {
        model.secret = Set(settings.secret.clone());
    }
    model.previous_secret = Set(settings.previous_secret.clone());
    model.allow_sha1 = Set(settings.allow_sha1);
    model.branches = Set(json_list(&settings.branches));
    model.tags = Set(json_list(&settings.tags));
    model.formats = Set(json_list(&formats));
    model.layout = Set(settings.layout.as_str().to_string());
    model.composer = Set(settings.composer.clone());
    model.drupal_type = Set(settings.drupal_type.clone());
    model.supported_branches = Set(settings.supported_branches.as_deref().map(json_list));
    let rescan_every_ms = settings.rescan_every.map(|every| every.as_millis() as i64);
    let same_interval = matches!(&model.rescan_every_ms,
        sea_orm::ActiveValue::Unchanged(was) | sea_orm::ActiveValue::Set(was) if *was == rescan_every_ms);
    if !same_interval {
        // A new interval is spread again from scratch.
        model.rescan_every_ms = Set(rescan_every_ms);
        model.rescan_due_at = Set(None);
    }
    model.source = Set(source.to_string());
    model.disabled_at = Set(None);
    model.updated_at = Set(now);
    Project::from_model(model.save(db).await?.try_into_model()?)
}

/// What a config sync does with config projects the file no longer names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departures {
    /// Disable them (the web server and `baler project list`: the config they read decides
    /// which projects exist).
    Disable,
    /// Leave them as they are (`baler worker`: a worker's config may list fewer projects, and
    /// must not take the others off the web).
    Keep,
}

/// Brings the database in line with the config file's projects: each is written (and enabled
/// again if it had left), and, with [`Departures::Disable`], config projects the file no
/// longer names are disabled, keeping their rows. Projects added with the CLI are left alone.
pub async fn sync_from_config(
    db: &DatabaseConnection,
    projects: &[ProjectSettings],
    departures: Departures,
) -> Result<(), DbErr> {
    for settings in projects {
        upsert(db, settings, FROM_CONFIG).await?;
    }
    for project in list(db).await?.iter().filter(|p| !p.has_secret()) {
        tracing::warn!(
            project = %project.name,
            "the project has no webhook secret: its deliveries are refused until \
             `baler project connect {}` makes one (or the config sets one)",
            project.name
        );
    }
    if departures == Departures::Keep {
        return Ok(());
    }
    let named: Vec<&str> = projects.iter().map(|p| p.name.as_str()).collect();
    let now = Utc::now();
    // Only those not disabled yet: "disabled since" stays the first start without them.
    let left = project::Entity::update_many()
        .col_expr(project::Column::DisabledAt, Expr::value(now))
        .col_expr(project::Column::UpdatedAt, Expr::value(now))
        .filter(project::Column::Source.eq(FROM_CONFIG))
        .filter(project::Column::Name.is_not_in(named))
        .filter(project::Column::DisabledAt.is_null())
        .exec(db)
        .await?;
    if left.rows_affected > 0 {
        tracing::info!(
            projects = left.rows_affected,
            "projects that left the config file are disabled; their releases and files are kept"
        );
    }
    Ok(())
}

/// Why a project cannot be added or removed through the API.
#[derive(Debug, thiserror::Error)]
pub enum ChangeRefused {
    #[error("database: {0}")]
    Db(#[from] DbErr),
    #[error("no project named {0:?}")]
    Unknown(String),
    #[error("project {0} is in the config file, which wins: change it there")]
    InConfig(String),
}

/// Adds (or updates, and enables again) a project that lives in the database, in the caller's
/// transaction. A name the config file owns is refused.
pub async fn add_on<C: ConnectionTrait>(
    conn: &C,
    settings: &ProjectSettings,
) -> Result<Project, ChangeRefused> {
    let existing = project::Entity::find()
        .filter(project::Column::Name.eq(&settings.name))
        .one(conn)
        .await?;
    if existing.is_some_and(|p| p.source == FROM_CONFIG) {
        return Err(ChangeRefused::InConfig(settings.name.clone()));
    }
    Ok(upsert(conn, settings, ADDED).await?)
}

/// Stores `secret`, made by `baler project connect`, for a project that has none (on `conn`,
/// the action's transaction). Returns the secret the project has afterwards: `secret`, or
/// the one another connect stored first.
pub async fn store_generated_secret_on<C: ConnectionTrait>(
    conn: &C,
    id: i64,
    secret: &str,
) -> Result<String, DbErr> {
    project::Entity::update_many()
        .col_expr(project::Column::Secret, Expr::value(secret))
        .filter(project::Column::Id.eq(id))
        .filter(project::Column::Secret.eq(""))
        .exec(conn)
        .await?;
    let row = project::Entity::find_by_id(id)
        .one(conn)
        .await?
        .ok_or(DbErr::RecordNotFound(format!("project {id}")))?;
    Ok(row.secret)
}

/// Disables a project added through the API (its releases and files are kept, as for a
/// project that left the config file), in the caller's transaction.
pub async fn remove_on<C: ConnectionTrait>(conn: &C, name: &str) -> Result<Project, ChangeRefused> {
    let found = project::Entity::find()
        .filter(project::Column::Name.eq(name))
        .one(conn)
        .await?
        .ok_or_else(|| ChangeRefused::Unknown(name.to_string()))?;
    if found.source == FROM_CONFIG {
        return Err(ChangeRefused::InConfig(found.name));
    }
    let now = Utc::now();
    project::Entity::update_many()
        .col_expr(project::Column::DisabledAt, Expr::value(now))
        .col_expr(project::Column::UpdatedAt, Expr::value(now))
        .filter(project::Column::Id.eq(found.id))
        .filter(project::Column::DisabledAt.is_null())
        .exec(conn)
        .await?;
    let mut found = found;
    found.disabled_at = found.disabled_at.or(Some(now));
    Ok(Project::from_model(found)?)
}

/// Whether a lookup sees disabled projects too.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Disabled {
    Hidden,
    Included,
}

/// The enabled project called `name`: what webhooks, public pages and feeds may serve.
pub async fn find(db: &DatabaseConnection, name: &str) -> Result<Option<Project>, DbErr> {
    find_by_name(db, name, Disabled::Hidden).await
}

/// The project called `name`, disabled or not: for admin views, the CLI and downloads.
pub async fn find_including_disabled<C: ConnectionTrait>(
    db: &C,
    name: &str,
) -> Result<Option<Project>, DbErr> {
    find_by_name(db, name, Disabled::Included).await
}

/// A name no project can have (a NUL byte from a URL, say) is not looked up at all.
async fn find_by_name<C: ConnectionTrait>(
    db: &C,
    name: &str,
    disabled: Disabled,
) -> Result<Option<Project>, DbErr> {
    if crate::config::validate_project_name(name).is_err() {
        return Ok(None);
    }
    let mut query = project::Entity::find().filter(project::Column::Name.eq(name));
    if disabled == Disabled::Hidden {
        query = query.filter(project::Column::DisabledAt.is_null());
    }
    query.one(db).await?.map(Project::from_model).transpose()
}

/// The project with this id, disabled or not (the worker checks, and says why it stops).
pub async fn find_by_id(db: &DatabaseConnection, id: i64) -> Result<Option<Project>, DbErr> {
    project::Entity::find_by_id(id)
        .one(db)
        .await?
        .map(Project::from_model)
        .transpose()
}

/// Every enabled project, by name: what listings, feeds and the Composer repository show.
pub async fn list(db: &DatabaseConnection) -> Result<Vec<Project>, DbErr> {
    list_where(db, Disabled::Hidden).await
}

/// Every project, disabled ones too, by name: for admin views and `baler project list`.
pub async fn list_all<C: ConnectionTrait>(db: &C) -> Result<Vec<Project>, DbErr> {
    list_where(db, Disabled::Included).await
}

async fn list_where<C: ConnectionTrait>(db: &C, disabled: Disabled) -> Result<Vec<Project>, DbErr> {
    let mut query = project::Entity::find().order_by_asc(project::Column::Name);
    if disabled == Disabled::Hidden {
        query = query.filter(project::Column::DisabledAt.is_null());
    }
    query
        .all(db)
        .await?
        .into_iter()
        .map(Project::from_model)
        .collect()
}

/// Records the host's repository id the first time a matching delivery carries one.
pub async fn remember_host_repository_id(
    db: &DatabaseConnection,
    project_id: i64,
    id: &str,
) -> Result<(), DbErr> {
    project::Entity::update_many()
        .col_expr(project::Column::HostRepositoryId, Expr::value(id))
        .filter(project::Column::Id.eq(project_id))
        .filter(project::Column::HostRepositoryId.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// Project lookups for the webhook path, kept for a moment: a burst of deliveries for one
/// project reads its row once per `ttl` instead of once per delivery. Changes (a project added
/// with the CLI, a new secret) are seen within `ttl`. Like [`find`], it sees enabled projects
/// only, so a disabled project's webhooks answer 404.
/// A cached lookup: when it was read, and what (None: no such project).
type CachedProject = (std::time::Instant, Option<Project>);

#[derive(Clone)]
pub struct ProjectCache {
    entries: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, CachedProject>>>,
    ttl: std::time::Duration,
}

impl ProjectCache {
    pub fn new(ttl: std::time::Duration) -> ProjectCache {
        ProjectCache {
            entries: Default::default(),
            ttl,
        }
    }

    pub async fn find(
        &self,
        db: &DatabaseConnection,
        name: &str,
    ) -> Result<Option<Project>, DbErr> {
        if let Some((at, project)) = self.entries.lock().expect("cache lock").get(name)
            && at.elapsed() < self.ttl
        {
            return Ok(project.clone());
        }
        let project = find(db, name).await?;
        // A project with no secret yet is read every time: `baler project connect`, in any
        // process, stores one just before the host's ping comes.
        if project.as_ref().is_some_and(|p| !p.has_secret()) {
            return Ok(project);
        }
        let mut entries = self.entries.lock().expect("cache lock");
        // Unknown names are cached too (a misconfigured hook retrying), but the map is bounded.
        if entries.len() > 10_000 {
            entries.clear();
        }
        entries.insert(
            name.to_string(),
            (std::time::Instant::now(), project.clone()),
        );
        Ok(project)
    }

    /// Forgets `name`, so the next lookup reads the database (after baler changed the row).
    pub fn forget(&self, name: &str) {
        self.entries.lock().expect("cache lock").remove(name);
    }
}
