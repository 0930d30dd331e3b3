//! Building one ref: its archives, its release notes (the commits since the previous tag of
//! its line), its `composer.json` and its build log.

use std::cmp::Ordering;
use std::time::Instant;

use super::build_log::BuildLog;
use super::plan::{Build, Released, Step};
use crate::git::{GitError, Mirror};
use crate::package::{BuiltArchive, PackageError, PackageSpec, ReleaseKind};
use crate::projects::Project;
use crate::publish::LineVersion;
use crate::releases::ReleaseNotes;
use crate::store::Staging;

/// A ref built in this job, waiting to be stored and recorded.
pub(super) struct Built {
    pub build: Build,
    pub archives: Vec<BuiltArchive>,
    pub log: BuildLog,
    pub composer_json: Option<String>,
    pub notes: ReleaseNotes,
}

/// Builds one ref's archives, notes and log.
pub(super) fn package(
    mirror: &Mirror,
    project: &Project,
    build: &Build,
    staging: &Staging,
    tags: &[(String, LineVersion, String)],
    job_log: &BuildLog,
) -> Result<Built, PackageError> {
    let started = Instant::now();
    let spec = PackageSpec {
        project: &project.name,
        version: &build.version,
        layout: project.layout,
        formats: &project.formats,
    };
    let archives = crate::package::build_archives(mirror, &build.commit, &spec, staging, &|_| {})?;
    let mut log = job_log.clone();
    let composer_json = composer_manifest(mirror, &build.commit.id, &mut log)?;
    let since = previous_release(tags, &build.version.version);
    let (commits, total) = mirror.log_between(
        since.map(|(_, c)| c.as_str()),
        &build.commit.id,
        ReleaseNotes::LIMIT,
    )?;
    let notes = ReleaseNotes {
        since: since.map(|(v, _)| v.clone()),
        more: total - commits.len(),
        commits,
    };
    log.line(format_args!(
        "{} {} at {} ({})",
        if build.kind == ReleaseKind::Tag {
            "tag"
        } else {
            "branch"
        },
        build.name,
        build.commit.id,
        build.commit.summary
    ));
    for archive in &archives {
        log.line(format_args!(
            "wrote {} ({} bytes, sha256 {})",
            archive.name, archive.checksums.size, archive.checksums.sha256
        ));
    }
    log.line(format_args!(
        "packaged in {} ms",
        started.elapsed().as_millis()
    ));
    Ok(Built {
        build: build.clone(),
        archives,
        log,
        composer_json,
        notes,
    })
}

/// Every tag release by version with its commit: those recorded, and those this job is about
/// to build (so a release's notes start at the right tag even when several arrive at once).
pub(super) fn tag_releases(
    released: &[Released],
    steps: &[Step],
) -> Vec<(String, LineVersion, String)> {
    let recorded = released
        .iter()
        .filter(|r| r.published && r.kind == ReleaseKind::Tag)
        .map(|r| (r.version.clone(), r.commit.clone()));
    let coming = steps.iter().filter_map(|step| match step {
        Step::Build(b) if b.kind == ReleaseKind::Tag => {
            Some((b.version.version.clone(), b.commit.id.clone()))
        }
        _ => None,
    });
    let mut tags: Vec<(String, LineVersion, String)> = recorded
        .chain(coming)
        .filter_map(|(version, commit)| {
            let line = LineVersion::parse(&version).filter(|l| !l.dev)?;
            Some((version, line, commit))
        })
        .collect();
    tags.sort_by(|a, b| a.1.newest_first(&b.1));
    tags.dedup_by(|a, b| a.0 == b.0);
    tags
}

/// The release whose commits a new release's notes start after: the newest older tag of the
/// same line (`8.x-1.`, `2.0.`), else the newest older tag of any line. A dev snapshot starts
/// after the newest tag of its line. `None` for a project's first release.
fn previous_release<'t>(
    tags: &'t [(String, LineVersion, String)],
    version: &str,
) -> Option<(&'t String, &'t String)> {
    let line = LineVersion::parse(version);
    let older: Vec<&(String, LineVersion, String)> = tags
        .iter()
        .filter(|(v, tag, _)| {
            v != version
                && line
                    .as_ref()
                    .is_none_or(|l| l.dev || tag.newest_first(l) == Ordering::Greater)
        })
        .collect();
    let same_line = older
        .iter()
        .find(|(_, tag, _)| line.as_ref().is_some_and(|l| l.holds(tag)));
    same_line
        .or(older.first())
        .map(|(v, _, commit)| (v, commit))
}

/// The release's `composer.json`, re-serialised compactly, when it holds a JSON object. A
/// broken one is noted in the build log and left out: the release itself is still good, and
/// the Composer repository then describes it from baler's own fields.
fn composer_manifest(
    mirror: &Mirror,
    commit: &str,
    log: &mut BuildLog,
) -> Result<Option<String>, GitError> {
    let Some(bytes) = mirror.read_file(commit, "composer.json")? else {
        return Ok(None);
    };
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(manifest @ serde_json::Value::Object(_)) => Ok(Some(manifest.to_string())),
        Ok(_) => {
            log.line("composer.json is not a JSON object; left out of the Composer repository");
            Ok(None)
        }
        Err(e) => {
            log.line(format_args!(
                "composer.json is not valid JSON ({e}); left out of the Composer repository"
            ));
            Ok(None)
        }
    }
}
