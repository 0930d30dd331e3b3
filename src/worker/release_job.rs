//! The release job: sync the project's mirror, resolve each queued ref, build the archives of
//! what is new, move them into the store and record the release. Idempotent: a ref already
//! released at the same commit is skipped, so a retry never duplicates a release.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::time::Instant;

use apalis::prelude::Data;
use sea_orm::DbErr;
use tracing::instrument;

use super::JobContext;
use crate::git::{CommitInfo, GitError, Mirror};
use crate::package::{BuiltArchive, PackageError, PackageSpec, ReleaseKind, ReleaseVersion};
use crate::projects::{self, Project};
use crate::publish::LineVersion;
use crate::queue::ClaimedItem;
use crate::releases::{self, NewFile, NewRelease, ReleaseNotes};

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("project {0} no longer exists")]
    ProjectGone(i64),
    #[error("database: {0}")]
    Db(#[from] DbErr),
    #[error("fetching {repo}: {source}")]
    Fetch { repo: String, source: GitError },
    #[error("{version}: {source}")]
    Package {
        version: String,
        source: PackageError,
    },
    #[error("storing {file}: {source}")]
    Store {
        file: String,
        source: std::io::Error,
    },
    #[error("the packaging thread stopped: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// A version already released, at which commit, and whether it is still published.
struct Released {
    commit: String,
    published: bool,
}

/// What the blocking part did: releases built, and unpublished versions whose tag is back.
struct Outcome {
    built: Vec<Built>,
    republish: Vec<String>,
}

/// One release built in this job, waiting to be stored and recorded.
struct Built {
    version: ReleaseVersion,
    /// No release of this version existed when the job started (so a failure removes its files).
    is_new: bool,
    ref_name: String,
    commit: CommitInfo,
    archives: Vec<BuiltArchive>,
    log: String,
    composer_json: Option<String>,
    notes: ReleaseNotes,
}

#[instrument(skip_all, fields(item = item.id, revision = item.revision, project = tracing::field::Empty))]
pub async fn release_job(item: ClaimedItem, ctx: Data<JobContext>) -> Result<(), ReleaseError> {
    let project = projects::find_by_id(&ctx.db, item.project_id)
        .await?
        .ok_or(ReleaseError::ProjectGone(item.project_id))?;
    tracing::Span::current().record("project", project.name.as_str());
    let started = Instant::now();
    // This job holds the project's only claim, so any half-built archive is a dead worker's.
    match ctx.store.remove_stale_temp_files(&project.name) {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            files = n,
            "removed archives a stopped worker left half-written"
        ),
        Err(e) => tracing::warn!(error = %e, "could not clear half-written archives"),
    }

    // What is released already, so the blocking part can skip it without the database.
    let released: HashMap<String, Released> = releases::for_project(&ctx.db, project.id)
        .await?
        .into_iter()
        .map(|r| {
            let published = r.release.status == "published";
            (
                r.release.version,
                Released {
                    commit: r.release.commit,
                    published,
                },
            )
        })
        .collect();

    let Outcome { built, republish } = {
        let ctx = ctx.clone();
        let project = project.clone();
        tokio::task::spawn_blocking(move || build(&ctx, &project, &item, &released)).await??
    };

    for release in built {
        store_and_record(&ctx, &project, release).await?;
    }
    if releases::republish(&ctx.db, project.id, &republish).await? > 0 {
        tracing::info!(versions = ?republish, "tags pushed again; releases published again");
    }
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "release job finished"
    );
    Ok(())
}

/// The blocking part: git and compression.
fn build(
    ctx: &JobContext,
    project: &Project,
    item: &ClaimedItem,
    released: &HashMap<String, Released>,
) -> Result<Outcome, ReleaseError> {
    let fetch_started = Instant::now();
    let mirror_path = ctx.mirrors_dir.join(format!("{}.git", project.name));
    // Errors and logs name the repository without any credentials in its URL.
    let shown_repo = crate::startup::redact(&project.repo);
    let fetch_error = |source| ReleaseError::Fetch {
        repo: shown_repo.clone(),
        source,
    };
    let (mirror, fetched) =
        Mirror::open_or_clone(&mirror_path, &project.repo, &ctx.auth_for(&project.name))
            .map_err(fetch_error)?;
    let fetch_ms = fetch_started.elapsed().as_millis();

    let mut built = Vec::new();
    let mut republish = Vec::new();
    // Each wanted ref is resolved once; the notes need every tag's commit before the loop.
    let mut wanted = Vec::new();
    for (kind, ref_name) in wanted_refs(&mirror, project, item).map_err(fetch_error)? {
        let (version, commit) = match kind {
            ReleaseKind::Tag => (
                ReleaseVersion::from_tag(&ref_name),
                mirror.tag_commit(&ref_name),
            ),
            ReleaseKind::Dev => (
                ReleaseVersion::from_branch(&ref_name),
                mirror.branch_commit(&ref_name),
            ),
        };
        wanted.push((kind, ref_name, version, commit.map_err(fetch_error)?));
    }
    let tags = tag_releases(released, &wanted);
    for (kind, ref_name, version, commit) in wanted {
        let ref_name = &ref_name;
        let version = match version {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "skipped");
                continue;
            }
        };
        let Some(commit) = commit else {
            tracing::warn!(%ref_name, "the ref is gone from the repository; nothing to release");
            continue;
        };
        match released.get(&version.version) {
            Some(done) if done.commit == commit.id => {
                if !done.published {
                    republish.push(version.version.clone());
                }
                continue;
            }
            Some(other) if kind == ReleaseKind::Tag => {
                tracing::warn!(version = %version.version, released = %other.commit, now = %commit.id,
                    "the tag moved; a published release never changes, so it is kept");
                continue;
            }
            _ => {}
        }

        let package_started = Instant::now();
        let spec = PackageSpec {
            project: &project.name,
            version: &version,
            layout: project.layout,
            formats: &project.formats,
        };
        let staging = ctx.store.project_dir(&project.name);
        let archives = crate::package::build_archives(&mirror, &commit, &spec, &staging, &|_| {})
            .map_err(|source| ReleaseError::Package {
            version: version.version.clone(),
            source,
        })?;
        let mut log = String::new();
        let _ = writeln!(
            log,
            "mirror synced from {shown_repo} in {fetch_ms} ms ({} objects, {} bytes received)",
            fetched.received_objects, fetched.received_bytes
        );
        let package_error = |e: GitError| ReleaseError::Package {
            version: version.version.clone(),
            source: e.into(),
        };
        let composer_json =
            composer_manifest(&mirror, &commit.id, &mut log).map_err(package_error)?;
        let since = previous_release(&tags, &version);
        let (commits, total) = mirror
            .log_between(
                since.map(|(_, c)| c.as_str()),
                &commit.id,
                ReleaseNotes::LIMIT,
            )
            .map_err(package_error)?;
        let notes = ReleaseNotes {
            since: since.map(|(v, _)| v.clone()),
            more: total - commits.len(),
            commits,
        };
        let _ = writeln!(
            log,
            "{} {ref_name} at {} ({})",
            if kind == ReleaseKind::Tag {
                "tag"
            } else {
                "branch"
            },
            commit.id,
            commit.summary
        );
        for archive in &archives {
            let _ = writeln!(
                log,
                "wrote {} ({} bytes, sha256 {})",
                archive.name, archive.checksums.size, archive.checksums.sha256
            );
        }
        let _ = writeln!(
            log,
            "packaged in {} ms",
            package_started.elapsed().as_millis()
        );
        built.push(Built {
            is_new: !released.contains_key(&version.version),
            version,
            ref_name: ref_name.clone(),
            commit,
            archives,
            log,
            composer_json,
            notes,
        });
    }
    Ok(Outcome { built, republish })
}

/// A ref this job looks at: its kind, name, version, and the commit it points at (if it
/// still exists).
type WantedRef = (
    ReleaseKind,
    String,
    Result<ReleaseVersion, crate::package::version::VersionError>,
    Option<CommitInfo>,
);

/// Every tag release by version with its commit: those recorded, and those this job is about
/// to build (so a release's notes start at the right tag even when several arrive at once).
fn tag_releases(
    released: &HashMap<String, Released>,
    wanted: &[WantedRef],
) -> Vec<(String, LineVersion, String)> {
    let recorded = released
        .iter()
        .filter(|(_, r)| r.published)
        .map(|(version, r)| (version.clone(), r.commit.clone()));
    let coming = wanted.iter().filter_map(|(kind, _, version, commit)| {
        let version = version
            .as_ref()
            .ok()
            .filter(|_| *kind == ReleaseKind::Tag)?;
        Some((version.version.clone(), commit.as_ref()?.id.clone()))
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
    version: &ReleaseVersion,
) -> Option<(&'t String, &'t String)> {
    let line = LineVersion::parse(&version.version);
    let older: Vec<&(String, LineVersion, String)> = tags
        .iter()
        .filter(|(v, tag, _)| {
            *v != version.version
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
    log: &mut String,
) -> Result<Option<String>, GitError> {
    let Some(bytes) = mirror.read_file(commit, "composer.json")? else {
        return Ok(None);
    };
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(manifest @ serde_json::Value::Object(_)) => Ok(Some(manifest.to_string())),
        Ok(_) => {
            let _ = writeln!(
                log,
                "composer.json is not a JSON object; left out of the Composer repository"
            );
            Ok(None)
        }
        Err(e) => {
            let _ = writeln!(
                log,
                "composer.json is not valid JSON ({e}); left out of the Composer repository"
            );
            Ok(None)
        }
    }
}

/// The refs this job looks at: the queued ones; every tag matching the project's patterns
/// (hosts send no event when more than three tags are pushed at once, and a lost delivery must
/// not lose a release; released tags are skipped cheaply); and, for a rebuild, every matching
/// branch.
fn wanted_refs(
    mirror: &Mirror,
    project: &Project,
    item: &ClaimedItem,
) -> Result<Vec<(ReleaseKind, String)>, GitError> {
    let mut tags: BTreeSet<String> = item.refs.tags.keys().cloned().collect();
    tags.extend(
        mirror
            .tags()?
            .into_iter()
            .filter(|t| project.releases_tag(t)),
    );
    let mut branches: BTreeSet<String> = item.refs.branches.keys().cloned().collect();
    if item.scan_all {
        branches.extend(
            mirror
                .branches()?
                .into_iter()
                .filter(|b| project.releases_branch(b)),
        );
    }
    Ok(tags
        .into_iter()
        .map(|t| (ReleaseKind::Tag, t))
        .chain(branches.into_iter().map(|b| (ReleaseKind::Dev, b)))
        .collect())
}

/// Moves the files into place, then records the release; if recording fails, a new release's
/// files are removed again so nothing unrecorded stays visible.
async fn store_and_record(
    ctx: &JobContext,
    project: &Project,
    release: Built,
) -> Result<(), ReleaseError> {
    let is_new = release.is_new;
    let mut files = Vec::new();
    let mut published = Vec::new();
    for archive in release.archives {
        let name = archive.name.clone();
        let format = archive.format.extension();
        let checksums = archive.checksums.clone();
        let store = ctx.store.clone();
        let project_name = project.name.clone();
        let result =
            tokio::task::spawn_blocking(move || store.publish(&project_name, archive)).await?;
        if let Err(source) = result {
            remove_files(ctx, project, &published, is_new);
            return Err(ReleaseError::Store { file: name, source });
        }
        published.push(name.clone());
        files.push(NewFile {
            format,
            name,
            checksums,
        });
    }
    let recorded = releases::record(
        &ctx.db,
        NewRelease {
            project_id: project.id,
            version: &release.version,
            ref_name: &release.ref_name,
            commit: &release.commit.id,
            commit_time: release.commit.time,
            build_log: &release.log,
            composer_json: release.composer_json.as_deref(),
            notes: &release.notes,
            files,
        },
    )
    .await;
    if let Err(e) = recorded {
        remove_files(ctx, project, &published, is_new);
        return Err(e.into());
    }
    tracing::info!(version = %release.version.version, commit = %release.commit.id, "released");
    Ok(())
}

fn remove_files(ctx: &JobContext, project: &Project, names: &[String], is_new: bool) {
    if !is_new {
        return;
    }
    for name in names {
        if let Err(e) = ctx.store.remove(&project.name, name) {
            tracing::warn!(file = %name, error = %e, "could not remove an unrecorded file");
        }
    }
}
