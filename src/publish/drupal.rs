//! The Drupal update-status feed ("feature server" format), as Drupal core's update module
//! reads it (`UpdateProcessor::parseXml`, `ProjectRelease::validateReleaseData`): served at
//! `/release-history/{project}/current` and `/release-history/{project}/{api}`.
//!
//! Which releases a feed holds:
//! - `current` (Drupal 9 and later): `8.x-` releases and core-less semantic versions;
//! - `7.x`, `6.x`, …: releases of that core (`7.x-2.1`); `8.x` also takes core-less versions,
//!   as drupal.org's did.
//!
//! Versions Drupal cannot read (`main-dev` from a branch named `main`, a tag `nightly`) are
//! left out, since one unreadable version makes the update module discard the whole feed.

use askama::Template;
use entities::release::ReleaseKind;

use super::{LineVersion, published_newest_first};
use crate::projects::Project;
use crate::releases::ReleaseWithFiles;

/// Which feed: `current`, or a legacy core API such as `7.x`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Api {
    Current,
    Core(u32),
}

impl Api {
    /// `current` or `N.x`; anything else is not a feed.
    pub fn parse(text: &str) -> Option<Api> {
        if text == "current" {
            return Some(Api::Current);
        }
        let core = text.strip_suffix(".x")?;
        (!core.is_empty() && core.bytes().all(|b| b.is_ascii_digit()))
            .then(|| core.parse().ok().map(Api::Core))
            .flatten()
    }

    fn holds(self, version: &LineVersion) -> bool {
        match (self, version.core) {
            (Api::Current, None) => true,
            (Api::Current, Some(core)) => core >= 8,
            (Api::Core(api), Some(core)) => api == core,
            (Api::Core(api), None) => api >= 8,
        }
    }
}

#[derive(Template)]
#[template(path = "release-history.xml")]
pub struct UpdateFeed {
    pub title: String,
    pub short_name: String,
    pub creator: String,
    pub project_type: String,
    /// `Modules`, `Themes`, …: the value of the `Projects` term.
    pub projects_term: &'static str,
    /// Legacy feeds only: `7.x`, with the major-version fields.
    pub legacy: Option<Legacy>,
    pub supported_branches: String,
    pub link: String,
    pub releases: Vec<FeedRelease>,
}

pub struct Legacy {
    pub api_version: String,
    pub recommended_major: u32,
    pub supported_majors: String,
    pub default_major: u32,
}

pub struct FeedRelease {
    pub name: String,
    pub version: String,
    pub tag: String,
    pub release_link: String,
    pub download_link: String,
    pub date: i64,
    pub mdhash: String,
    pub filesize: i64,
    pub files: Vec<FeedFile>,
    /// The `Release type` term: `New features` for the first release of a line (`x.y.0`,
    /// `8.x-1.0`) and for dev snapshots, `Bug fixes` after it. baler cannot know a security
    /// release, so it never claims one.
    pub release_type: &'static str,
}

pub struct FeedFile {
    pub url: String,
    pub archive_type: String,
    pub md5: String,
    pub size: i64,
    pub filedate: i64,
}

/// Where the feed's links point.
pub struct Links<'a> {
    pub release: &'a dyn Fn(&str) -> String,
    pub file: &'a dyn Fn(&str) -> String,
    pub project: String,
}

/// The feed for `api`, or `None` when the project has no release in it.
pub fn feed(
    project: &Project,
    releases: &[ReleaseWithFiles],
    api: Api,
    links: &Links<'_>,
) -> Option<UpdateFeed> {
    let entries: Vec<(&ReleaseWithFiles, LineVersion)> = published_newest_first(releases)
        .into_iter()
        .filter(|r| !r.files.is_empty())
        .filter_map(|r| {
            let version = LineVersion::parse(&r.release.version)?;
            let readable = if r.release.kind == ReleaseKind::Tag {
                !version.dev && version.numbers.len() == if version.core.is_some() { 2 } else { 3 }
            } else {
                version.dev
            };
            (readable && api.holds(&version)).then_some((r, version))
        })
        .collect();
    if entries.is_empty() {
        return None;
    }
    let supported_branches = match &project.supported_branches {
        Some(configured) => configured.join(","),
        None => {
            let mut lines: Vec<&LineVersion> = entries.iter().map(|(_, v)| v).collect();
            lines.sort_by(|a, b| (a.core, &a.numbers).cmp(&(b.core, &b.numbers)));
            let mut prefixes: Vec<String> = Vec::new();
            for line in lines {
                let prefix = line.branch_prefix();
                if !prefixes.contains(&prefix) {
                    prefixes.push(prefix);
                }
            }
            prefixes.join(",")
        }
    };
    let legacy = match api {
        Api::Current => None,
        Api::Core(core) => Some(legacy_fields(core, &entries)),
    };
    Some(UpdateFeed {
        title: project.title.clone(),
        short_name: project.name.clone(),
        creator: creator(&project.repo, &project.name),
        project_type: project.drupal_type.clone(),
        projects_term: projects_term(&project.drupal_type),
        legacy,
        supported_branches,
        link: links.project.clone(),
        releases: entries
            .iter()
            .map(|(r, version)| feed_release(project, r, version, links))
            .collect(),
    })
}

fn feed_release(
    project: &Project,
    r: &ReleaseWithFiles,
    version: &LineVersion,
    links: &Links<'_>,
) -> FeedRelease {
    let release = &r.release;
    // drupal.org's download link is the tar.gz; a project that builds only zips offers that.
    let main = r
        .files
        .iter()
        .find(|f| f.format == "tar.gz")
        .or(r.files.first())
        .expect("releases without files are left out");
    let first_of_line = version.numbers.last() == Some(&0);
    FeedRelease {
        name: format!("{} {}", project.name, release.version),
        version: release.version.clone(),
        tag: release.ref_name.clone(),
        release_link: (links.release)(&release.version),
        download_link: (links.file)(&main.name),
        date: release.commit_time,
        mdhash: main.md5.clone(),
        filesize: main.size,
        files: r
            .files
            .iter()
            .map(|f| FeedFile {
                url: (links.file)(&f.name),
                archive_type: f.format.clone(),
                md5: f.md5.clone(),
                size: f.size,
                filedate: release.commit_time,
            })
            .collect(),
        release_type: if version.dev || first_of_line {
            "New features"
        } else {
            "Bug fixes"
        },
    }
}

/// `recommended_major` and `default_major`: the highest major with a stable release (else the
/// highest with any); `supported_majors`: every major with a release, ascending.
fn legacy_fields(core: u32, entries: &[(&ReleaseWithFiles, LineVersion)]) -> Legacy {
    let mut majors: Vec<u32> = entries.iter().map(|(_, v)| v.major()).collect();
    majors.sort_unstable();
    majors.dedup();
    let recommended = entries
        .iter()
        .filter(|(_, v)| !v.dev && v.extra.is_none())
        .map(|(_, v)| v.major())
        .max()
        .or(majors.last().copied())
        .unwrap_or(1);
    Legacy {
        api_version: format!("{core}.x"),
        recommended_major: recommended,
        supported_majors: majors
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(","),
        default_major: recommended,
    }
}

fn projects_term(drupal_type: &str) -> &'static str {
    match drupal_type {
        "project_theme" => "Themes",
        "project_theme_engine" => "Theme engines",
        "project_distribution" | "project_profile" => "Distributions",
        "project_core" => "Drupal core",
        _ => "Modules",
    }
}

/// `dc:creator`: the owner in the repository's URL (`acme` of
/// `https://git.example.org/acme/webform.git` or `git@host:acme/webform.git`), else the
/// project's name.
fn creator(repo: &str, project: &str) -> String {
    let path = if let Some((_, rest)) = repo.split_once("://") {
        rest.split_once('/').map(|(_, path)| path)
    } else {
        repo.split_once(':').map(|(_, path)| path)
    };
    let remote = repo.starts_with("http") || repo.starts_with("ssh") || repo.contains('@');
    path.filter(|_| remote)
        .and_then(|p| p.split('/').find(|s| !s.is_empty()))
        .filter(|owner| !owner.ends_with(".git"))
        .map(str::to_string)
        .unwrap_or_else(|| project.to_string())
}

/// The answer for a project baler does not have, worded as drupal.org worded it.
pub fn unknown_project(name: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<error>No release history was found for the requested project ({}).</error>\n",
        xml_escape(name)
    )
}

/// The answer for a known project with no release in the requested feed.
pub fn no_releases(name: &str, api: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<error>No release history available for {} {}.</error>\n",
        xml_escape(name),
        xml_escape(api)
    )
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apis() {
        assert_eq!(Api::parse("current"), Some(Api::Current));
        assert_eq!(Api::parse("7.x"), Some(Api::Core(7)));
        assert_eq!(Api::parse("x"), None);
        assert_eq!(Api::parse("7.y"), None);
        let v = |t| LineVersion::parse(t).unwrap();
        assert!(Api::Current.holds(&v("8.x-1.2")));
        assert!(Api::Current.holds(&v("2.0.1")));
        assert!(!Api::Current.holds(&v("7.x-1.2")));
        assert!(Api::Core(7).holds(&v("7.x-1.2")));
        assert!(!Api::Core(7).holds(&v("2.0.1")));
        assert!(Api::Core(8).holds(&v("2.0.1")));
    }

    #[test]
    fn creators() {
        assert_eq!(
            creator("https://git.example.org/acme/webform.git", "webform"),
            "acme"
        );
        assert_eq!(
            creator("git@github.com:acme/webform.git", "webform"),
            "acme"
        );
        assert_eq!(creator("file:///srv/git/webform.git", "webform"), "webform");
    }
}
