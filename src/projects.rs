//! The project registry: projects from the config file are synced into the database at start;
//! `baler project add` writes the same rows. Everything else reads [`Project`].

use chrono::Utc;
use entities::project;
use globset::{Glob, GlobSet, GlobSetBuilder};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, TryIntoModel,
};

use crate::config::{ArchiveFormat, Layout, ProjectSettings, Provider};

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
}

/// Secrets are left out, so a stray `{:?}` never writes one to a log.
impl std::fmt::Debug for Project {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Project")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("repo", &self.repo)
            .field("provider", &self.provider)
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
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.secret.as_str()).chain(self.previous_secret.as_deref())
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
            .map(|f| ArchiveFormat::parse(f).ok_or_else(|| corrupt("formats")))
            .collect::<Result<Vec<_>, _>>()?;
        let supported_branches = m
            .supported_branches
            .as_deref()
            .map(|text| list(text, "supported_branches"))
            .transpose()?;
        Ok(Project {
            id: m.id,
            provider: Provider::parse(&m.provider).ok_or_else(|| corrupt("provider"))?,
            layout: Layout::parse(&m.layout).ok_or_else(|| corrupt("layout"))?,
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
        })
    }
}

fn json_list<T: AsRef<str>>(items: &[T]) -> String {
    serde_json::to_string(&items.iter().map(AsRef::as_ref).collect::<Vec<&str>>())
        .expect("strings serialise")
}

/// Inserts or updates one project by name. `source` is `config` or `cli`.
pub async fn upsert(
    db: &DatabaseConnection,
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
    model.secret = Set(settings.secret.clone());
    model.previous_secret = Set(settings.previous_secret.clone());
    model.allow_sha1 = Set(settings.allow_sha1);
    model.branches = Set(json_list(&settings.branches));
    model.tags = Set(json_list(&settings.tags));
    model.formats = Set(json_list(&formats));
    model.layout = Set(settings.layout.as_str().to_string());
    model.composer = Set(settings.composer.clone());
    model.drupal_type = Set(settings.drupal_type.clone());
    model.supported_branches = Set(settings.supported_branches.as_deref().map(json_list));
    model.source = Set(source.to_string());
    model.updated_at = Set(now);
    Project::from_model(model.save(db).await?.try_into_model()?)
}

/// Brings the database in line with the config file's projects. Projects added with the CLI
/// are left alone.
pub async fn sync_from_config(
    db: &DatabaseConnection,
    projects: &[ProjectSettings],
) -> Result<(), DbErr> {
    for settings in projects {
        upsert(db, settings, "config").await?;
    }
    Ok(())
}

/// The project called `name`. A name no project can have (a NUL byte from a URL, say) is
/// not looked up at all.
pub async fn find(db: &DatabaseConnection, name: &str) -> Result<Option<Project>, DbErr> {
    if crate::config::validate_project_name(name).is_err() {
        return Ok(None);
    }
    project::Entity::find()
        .filter(project::Column::Name.eq(name))
        .one(db)
        .await?
        .map(Project::from_model)
        .transpose()
}

pub async fn find_by_id(db: &DatabaseConnection, id: i64) -> Result<Option<Project>, DbErr> {
    project::Entity::find_by_id(id)
        .one(db)
        .await?
        .map(Project::from_model)
        .transpose()
}

pub async fn list(db: &DatabaseConnection) -> Result<Vec<Project>, DbErr> {
    project::Entity::find()
        .order_by_asc(project::Column::Name)
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
        .col_expr(
            project::Column::HostRepositoryId,
            sea_orm::sea_query::Expr::value(id),
        )
        .filter(project::Column::Id.eq(project_id))
        .filter(project::Column::HostRepositoryId.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// Project lookups for the webhook path, kept for a moment: a burst of deliveries for one
/// project reads its row once per `ttl` instead of once per delivery. Changes (a project added
/// with the CLI, a new secret) are seen within `ttl`.
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
