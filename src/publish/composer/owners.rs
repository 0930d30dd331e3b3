//! Who owns a Composer name. A project claims the name it sets with
//! `composer = "vendor/package"`, or else the `name` in the `composer.json` of its newest
//! published release. A name has one owner, decided on read from the rows alone (nothing is
//! written, so every reader decides the same way):
//!
//! 1. Disabled projects claim nothing and are not published.
//! 2. A name configured with `composer =` belongs to the project that configures it. (The
//!    config refuses two projects configuring one name; should two rows still do, the lower
//!    project id owns it.)
//! 3. Otherwise the name belongs to the claimer that published it first: the one whose latest
//!    unbroken run of releases naming it (newest first, back to the first release that named
//!    something else) began earliest, ties by project id. So a project that named the package
//!    long ago, then another, cannot come back and take it. A tag release counts from when it was
//!    recorded (`created_at`: a tag release and its `composer.json` never change). A dev
//!    snapshot counts from its last build (`updated_at`): a rebuild replaces its
//!    `composer.json` but keeps its first date, which must not let a project that renames its
//!    branch's package inherit that date. Releases unpublished since still count: the name was
//!    published then.
//! 4. Every other claimer is in conflict: it is in neither `/packages.json` nor `/p2/…`, and
//!    the admin pages say whose name it is.
//!
//! [`Repository::resolve`] is that rule; the Composer repository, the pages and the admin pages
//! all read it.

use entities::release::ReleaseKind;
use std::collections::hash_map::Entry as Slot;
use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};
use serde_json::Value;

use super::Package;
use crate::projects::{self, Project};
use crate::publish::published_newest_first;
use crate::releases::{self, ListedRelease, ReleaseWithFiles};

/// Where a project stands in the Composer repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// It claims no name: no `composer =`, and no `name` in its newest release's
    /// `composer.json`.
    NotAPackage,
    /// Published under this name.
    Published(String),
    /// It claims a name another project owns, so it is not published.
    Conflict {
        name: String,
        owner: String,
        /// The name is this project's `composer =` setting (else its `composer.json`'s).
        configured: bool,
    },
    /// Disabled projects own nothing; the name is the one it would claim.
    Disabled(Option<String>),
}

impl Standing {
    /// The name it is published under, if it is.
    pub fn published_name(&self) -> Option<&str> {
        match self {
            Standing::Published(name) => Some(name),
            _ => None,
        }
    }

    /// The name it claims, published or not.
    pub fn claimed_name(&self) -> Option<&str> {
        match self {
            Standing::NotAPackage | Standing::Disabled(None) => None,
            Standing::Published(name)
            | Standing::Conflict { name, .. }
            | Standing::Disabled(Some(name)) => Some(name),
        }
    }

    /// Why it is not published although it claims a name, for the admin pages.
    pub fn problem(&self) -> Option<String> {
        match self {
            Standing::Conflict {
                name,
                owner,
                configured: false,
            } => Some(format!(
                "composer.json names {name}, which belongs to project {owner}"
            )),
            Standing::Conflict {
                name,
                owner,
                configured: true,
            } => Some(format!(
                "composer = \"{name}\" is configured by project {owner} too, which owns it"
            )),
            Standing::Disabled(Some(_)) => Some("the project is disabled".into()),
            _ => None,
        }
    }
}

/// One project with its releases and where it stands.
pub struct Entry {
    pub project: Project,
    pub releases: Vec<ReleaseWithFiles>,
    pub standing: Standing,
}

/// Every project, disabled ones too, with its standing: the one decision that the Composer
/// repository, the pages and the admin pages all read.
pub struct Repository {
    /// By project name.
    entries: Vec<Entry>,
}

impl Repository {
    /// Reads every project and its releases, and decides.
    pub async fn load<C: ConnectionTrait>(db: &C) -> Result<Repository, DbErr> {
        let mut releases = releases::by_project(db).await?;
        let loaded = projects::list_all(db)
            .await?
            .into_iter()
            .map(|project| {
                let rows = releases.remove(&project.id).unwrap_or_default();
                (project, rows)
            })
            .collect();
        Ok(Repository::resolve(loaded))
    }

    /// The rule of the module documentation, on rows already read.
    pub fn resolve(loaded: Vec<(Project, Vec<ReleaseWithFiles>)>) -> Repository {
        let claims: Vec<Option<Claim>> = loaded
            .iter()
            .map(|(project, releases)| claim(project, releases))
            .collect();
        // Name → its owner so far: index and rank.
        let mut owners: HashMap<&str, (usize, Rank)> = HashMap::new();
        for (index, found) in claims.iter().enumerate() {
            let project = &loaded[index].0;
            let Some(found) = found.as_ref().filter(|_| !project.is_disabled()) else {
                continue;
            };
            let rank = found.rank(project);
            match owners.entry(found.name.as_str()) {
                Slot::Vacant(slot) => {
                    slot.insert((index, rank));
                }
                Slot::Occupied(mut slot) if rank < slot.get().1 => {
                    slot.insert((index, rank));
                }
                Slot::Occupied(_) => {}
            }
        }
        let standings: Vec<Standing> = claims
            .iter()
            .enumerate()
            .map(|(index, found)| {
                let Some(found) = found else {
                    return if loaded[index].0.is_disabled() {
                        Standing::Disabled(None)
                    } else {
                        Standing::NotAPackage
                    };
                };
                if loaded[index].0.is_disabled() {
                    return Standing::Disabled(Some(found.name.clone()));
                }
                match owners.get(found.name.as_str()) {
                    Some(&(owner, _)) if owner != index => Standing::Conflict {
                        name: found.name.clone(),
                        owner: loaded[owner].0.name.clone(),
                        configured: found.configured,
                    },
                    _ => Standing::Published(found.name.clone()),
                }
            })
            .collect();
        let entries = loaded
            .into_iter()
            .zip(standings)
            .map(|((project, releases), standing)| Entry {
                project,
                releases,
                standing,
            })
            .collect();
        Repository { entries }
    }

    /// Every project, disabled ones too, by name.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Where the project with this id stands; a project not read (made since) claims nothing.
    pub fn standing_of(&self, project_id: i64) -> Standing {
        self.entries
            .iter()
            .find(|e| e.project.id == project_id)
            .map_or(Standing::NotAPackage, |e| e.standing.clone())
    }

    /// The project with this id, if it was read.
    pub fn into_entry(self, project_id: i64) -> Option<Entry> {
        self.entries
            .into_iter()
            .find(|e| e.project.id == project_id)
    }

    /// The projects whose documents a change to `project_id`'s releases can change: itself, and
    /// every project claiming a Composer name it claims or any of its releases names (a name
    /// it gives up passes to another claimer; one it takes leaves another in conflict).
    pub fn touched_by(&self, project_id: i64) -> HashSet<i64> {
        let mut touched = HashSet::from([project_id]);
        let Some(entry) = self.entries.iter().find(|e| e.project.id == project_id) else {
            return touched;
        };
        let mut names: HashSet<String> = entry
            .releases
            .iter()
            .filter_map(|r| manifest_name(&r.release))
            .collect();
        names.extend(entry.standing.claimed_name().map(str::to_string));
        names.extend(entry.project.composer.clone());
        touched.extend(
            self.entries
                .iter()
                .filter(|e| e.standing.claimed_name().is_some_and(|n| names.contains(n)))
                .map(|e| e.project.id),
        );
        touched
    }

    /// The published packages, by name; each name once, since each has one owner.
    pub fn packages(&self) -> Vec<Package> {
        let mut packages: Vec<Package> = self
            .entries
            .iter()
            .filter_map(|entry| {
                let Standing::Published(name) = &entry.standing else {
                    return None;
                };
                Some(Package {
                    name: name.clone(),
                    project: entry.project.clone(),
                    releases: entry.releases.clone(),
                })
            })
            .collect();
        packages.sort_by(|a, b| a.name.cmp(&b.name));
        packages
    }
}

/// A name a project claims, and since when it has published it.
struct Claim {
    name: String,
    configured: bool,
    /// The oldest release naming it (see the module documentation); `None` when configured.
    since: Option<DateTime<Utc>>,
}

/// Lower ranks first: configured names, then the oldest publication, then the lower id.
type Rank = (bool, Option<DateTime<Utc>>, i64);

impl Claim {
    fn rank(&self, project: &Project) -> Rank {
        (!self.configured, self.since, project.id)
    }
}

/// The configured name, else the `name` of the newest published release's `composer.json`.
fn claim(project: &Project, releases: &[ReleaseWithFiles]) -> Option<Claim> {
    if let Some(name) = &project.composer {
        return Some(Claim {
            name: name.clone(),
            configured: true,
            since: None,
        });
    }
    let newest = published_newest_first(releases).into_iter().next()?;
    let name = manifest_name(&newest.release)?;
    // The claim dates from the start of the project's latest unbroken run of releases naming
    // the package: a project that named it once long ago and then something else cannot come
    // back and take it from the project that owned it meanwhile.
    let written = |r: &ReleaseWithFiles| {
        if r.release.kind == ReleaseKind::Tag {
            r.release.created_at
        } else {
            r.release.updated_at
        }
    };
    let mut by_time: Vec<&ReleaseWithFiles> = releases.iter().collect();
    by_time.sort_by_key(|r| std::cmp::Reverse(written(r)));
    let since = by_time
        .iter()
        .take_while(|r| manifest_name(&r.release).as_deref() == Some(name.as_str()))
        .map(|r| written(r))
        .last()
        .or(Some(written(newest)));
    Some(Claim {
        name,
        configured: false,
        since,
    })
}

/// The package name a release's `composer.json` gives, lowercased, if it is a valid one.
fn manifest_name(release: &ListedRelease) -> Option<String> {
    let manifest: Value = serde_json::from_str(release.composer_json.as_deref()?).ok()?;
    let name = manifest.get("name")?.as_str()?.to_ascii_lowercase();
    crate::config::valid_composer_name(&name).then_some(name)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).expect("a valid time")
    }

    fn project(id: i64, name: &str, composer: Option<&str>) -> Project {
        Project {
            id,
            name: name.into(),
            title: name.into(),
            repo: format!("https://example.org/{name}.git"),
            provider: crate::provider::Provider::Github,
            secret: "s".into(),
            previous_secret: None,
            allow_sha1: false,
            host_repository_id: None,
            branches: globset::GlobSet::empty(),
            tags: globset::GlobSet::empty(),
            formats: vec![crate::package::ArchiveFormat::Zip],
            layout: crate::package::Layout::Plain,
            composer: composer.map(str::to_string),
            drupal_type: "project_module".into(),
            supported_branches: None,
            disabled_at: None,
            updated_at: at(0),
        }
    }

    /// A release whose composer.json names `package`, recorded at `created` and last
    /// written at `updated`.
    fn naming(
        version: &str,
        kind: &str,
        package: &str,
        created: i64,
        updated: i64,
    ) -> ReleaseWithFiles {
        let release = ListedRelease {
            id: 1,
            project_id: 1,
            version: version.into(),
            kind: kind.parse().unwrap(),
            ref_name: version.into(),
            commit: "c".repeat(40),
            commit_time: 0,
            status: entities::release::ReleaseStatus::Published,
            created_at: at(created),
            updated_at: at(updated),
            composer_json: Some(json!({ "name": package }).to_string()),
            notes: None,
            signing_key: None,
        };
        ReleaseWithFiles {
            release,
            files: Vec::new(),
        }
    }

    fn standings(loaded: Vec<(Project, Vec<ReleaseWithFiles>)>) -> Vec<Standing> {
        Repository::resolve(loaded)
            .entries()
            .iter()
            .map(|e| e.standing.clone())
            .collect()
    }

    fn conflict(name: &str, owner: &str) -> Standing {
        Standing::Conflict {
            name: name.into(),
            owner: owner.into(),
            configured: false,
        }
    }

    #[test]
    fn a_name_named_again_after_a_break_dates_from_its_return() {
        // old named the package at 10, then something else at 20, then the package again at
        // 40; owner has named it without a break since 30, so it keeps it.
        let old = vec![
            naming("1.0.0", "tag", "acme/widget", 10, 10),
            naming("2.0.0", "tag", "acme/other", 20, 20),
            naming("3.0.0", "tag", "acme/widget", 40, 40),
        ];
        let owner = vec![naming("1.0.0", "tag", "acme/widget", 30, 30)];
        let loaded = vec![
            (project(1, "old", None), old),
            (project(2, "owner", None), owner),
        ];
        assert_eq!(
            standings(loaded),
            [
                conflict("acme/widget", "owner"),
                Standing::Published("acme/widget".into())
            ]
        );
    }

    #[test]
    fn a_configured_name_belongs_to_its_project() {
        // alpha named the package first, but widget configures it.
        let loaded = vec![
            (
                project(1, "alpha", None),
                vec![naming("9.9.9", "tag", "Acme/Widget", 10, 10)],
            ),
            (project(2, "widget", Some("acme/widget")), vec![]),
        ];
        assert_eq!(
            standings(loaded),
            [
                conflict("acme/widget", "widget"),
                Standing::Published("acme/widget".into())
            ]
        );
    }

    #[test]
    fn an_unconfigured_name_belongs_to_who_published_it_first() {
        let first = vec![naming("1.0.0", "tag", "acme/widget", 10, 50)];
        let later = vec![naming("2.0.0", "tag", "acme/widget", 20, 20)];
        let loaded = vec![
            (project(1, "copycat", None), later.clone()),
            (project(2, "widget", None), first.clone()),
        ];
        assert_eq!(
            standings(loaded),
            [
                conflict("acme/widget", "widget"),
                Standing::Published("acme/widget".into())
            ]
        );
        // Published at the same moment: the lower project id.
        let loaded = vec![
            (project(7, "seven", None), first.clone()),
            (project(3, "three", None), first),
        ];
        assert_eq!(
            standings(loaded),
            [
                conflict("acme/widget", "three"),
                Standing::Published("acme/widget".into())
            ]
        );
    }

    #[test]
    fn a_dev_snapshot_counts_from_its_last_build() {
        // copycat's main-dev was first built at 5, but only its rebuild at 30 names the
        // package: widget's tag of 20 came first.
        let loaded = vec![
            (
                project(1, "copycat", None),
                vec![naming("main-dev", "dev", "acme/widget", 5, 30)],
            ),
            (
                project(2, "widget", None),
                vec![naming("1.0.0", "tag", "acme/widget", 20, 20)],
            ),
        ];
        assert_eq!(standings(loaded)[0], conflict("acme/widget", "widget"));
    }

    #[test]
    fn disabled_projects_own_nothing() {
        let mut widget = project(2, "widget", Some("acme/widget"));
        // Disabling writes the row (see `projects::sync_from_config`).
        widget.disabled_at = Some(at(100));
        widget.updated_at = at(100);
        let loaded = vec![
            (
                project(1, "alpha", None),
                vec![naming("1.0.0", "tag", "acme/widget", 10, 10)],
            ),
            (widget, vec![]),
        ];
        let repository = Repository::resolve(loaded);
        assert_eq!(
            repository.standing_of(2),
            Standing::Disabled(Some("acme/widget".into()))
        );
        let packages = repository.packages();
        assert_eq!(packages.len(), 1);
        assert_eq!(
            (packages[0].name.as_str(), packages[0].project.name.as_str()),
            ("acme/widget", "alpha")
        );
    }

    #[test]
    fn each_name_is_listed_once() {
        let loaded = (1..=4)
            .map(|id| {
                (
                    project(id, &format!("p{id}"), None),
                    vec![naming("1.0.0", "tag", "acme/widget", 10 * id, 10 * id)],
                )
            })
            .chain([(project(9, "other", Some("acme/other")), vec![])])
            .collect();
        let names: Vec<String> = Repository::resolve(loaded)
            .packages()
            .into_iter()
            .map(|p| format!("{} {}", p.name, p.project.name))
            .collect();
        assert_eq!(names, ["acme/other other", "acme/widget p1"]);
    }

    #[test]
    fn a_release_touches_the_projects_that_claim_the_names_it_has_named() {
        // taker renamed its package from acme/old to acme/new; keeper still claims acme/old
        // (it owns it now, and would own it less or more as taker's releases change), rival
        // claims acme/new, and other claims nothing of taker's.
        let repository = Repository::resolve(vec![
            (
                project(1, "taker", None),
                vec![
                    naming("2.0.0", "tag", "acme/new", 20, 20),
                    naming("1.0.0", "tag", "acme/old", 10, 10),
                ],
            ),
            (
                project(2, "keeper", None),
                vec![naming("1.0.0", "tag", "acme/old", 15, 15)],
            ),
            (project(3, "rival", Some("acme/new")), vec![]),
            (
                project(4, "other", None),
                vec![naming("1.0.0", "tag", "acme/other", 5, 5)],
            ),
        ]);
        let mut touched: Vec<i64> = repository.touched_by(1).into_iter().collect();
        touched.sort();
        assert_eq!(touched, [1, 2, 3]);
        // A project with no claims touches only itself; an unknown id, only that id.
        let mut alone: Vec<i64> = repository.touched_by(4).into_iter().collect();
        alone.sort();
        assert_eq!(alone, [4]);
        assert_eq!(repository.touched_by(99), HashSet::from([99]));
    }
}
