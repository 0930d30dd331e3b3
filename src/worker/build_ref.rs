//! Building one ref: its archives, its release notes (the commits since the previous tag of
//! its line), its `composer.json` and its build log; then what proves it ([`prove`]): the
//! archives' signatures and its provenance.

use std::cmp::Ordering;
use std::time::Instant;

use chrono::{DateTime, Utc};

use super::build_log::BuildLog;
use super::plan::{Build, Released, Step, ref_noun};
use crate::git::{GitError, Mirror};
use crate::package::{BuiltArchive, PackageError, PackageSpec, ReleaseKind};
use crate::projects::Project;
use crate::publish::LineVersion;
use crate::releases::ReleaseNotes;
use crate::signing::provenance::{BuildFacts, Envelope, Statement};
use crate::signing::{ReleaseSignatures, Signer, ToSign};
use crate::store::Staging;

/// A ref built in this job, waiting to be stored and recorded.
pub(super) struct Built {
    pub build: Build,
    pub archives: Vec<BuiltArchive>,
    pub log: BuildLog,
    pub composer_json: Option<String>,
    pub notes: ReleaseNotes,
    /// When packaging began: provenance's `startedOn`.
    pub started: DateTime<Utc>,
    /// Filled by [`prove`] before the release is stored.
    pub proofs: Proofs,
}

/// What proves a release: the signatures (none with signing off) and the provenance (a DSSE
/// envelope, unsigned with signing off).
#[derive(Default)]
pub(super) struct Proofs {
    pub signatures: ReleaseSignatures,
    pub provenance: Option<String>,
}

/// Builds one ref's archives, notes and log. The release's log starts with the job's lines.
pub(super) fn package(
    mirror: &Mirror,
    project: &Project,
    build: &Build,
    staging: &Staging,
    tags: &[TagRelease],
    job_log: &BuildLog,
) -> Result<Built, PackageError> {
    let started = Instant::now();
    let started_at = Utc::now();
    let spec = PackageSpec {
        project: &project.name,
        version: &build.version,
        layout: project.layout,
        formats: &project.formats,
    };
    let archives = crate::package::build_archives(mirror, &build.commit, &spec, staging, &|_| {})?;
    let mut log = job_log.clone();
    let composer_json = composer_manifest(mirror, &build.commit.id, &mut log)?;
    let notes = release_notes(mirror, tags, build)?;
    log_packaged(&mut log, build, &archives, started);
    Ok(Built {
        build: build.clone(),
        archives,
        log,
        composer_json,
        notes,
        started: started_at,
        proofs: Proofs::default(),
    })
}

/// Signs `built`'s archives and its `SHA256SUMS` with `signer`, and writes its provenance
/// (signed by the same key). Runs after packaging and before anything is stored: the
/// signatures are recorded in the release's own transaction, so with signing on a release is
/// never visible unsigned.
pub(super) fn prove(
    built: &mut Built,
    mirror: &Mirror,
    project: &Project,
    signer: Option<&Signer>,
    item: i64,
) -> Result<(), crate::signing::SigningError> {
    let build = &built.build;
    let tree = mirror
        .tree_id(&build.commit.id)
        .map_err(|e| crate::signing::SigningError::Sign(format!("reading the tree: {e}")))?;
    let signatures = match signer {
        Some(signer) => {
            let archives: Vec<ToSign<'_>> = built
                .archives
                .iter()
                .map(|a| ToSign {
                    name: &a.name,
                    sha256: &a.checksums.sha256,
                    path: a.file.path(),
                })
                .collect();
            crate::signing::sign_release(
                signer,
                &project.name,
                &build.version.version,
                &build.commit.id,
                &archives,
            )?
        }
        None => ReleaseSignatures::default(),
    };
    let statement = Statement::new(&BuildFacts {
        project: &project.name,
        version: &build.version.version,
        ref_name: &build.full_name(),
        repository: &project.repo,
        commit: &build.commit.id,
        tree: &tree,
        layout: project.layout.into(),
        formats: built
            .archives
            .iter()
            .map(|a| a.format.to_string())
            .collect(),
        item: Some(item),
        started: built.started,
        finished: Utc::now(),
        archives: built
            .archives
            .iter()
            .map(|a| (a.name.as_str(), a.checksums.sha256.as_str()))
            .collect(),
    });
    let provenance = Envelope::new(&statement, signer).to_line();
    if let Some(key) = &signatures.key {
        built.log.line(format_args!(
            "signed with minisign key {} ({key})",
            signer.map(Signer::key_id).unwrap_or_default()
        ));
    }
    built.proofs = Proofs {
        signatures,
        provenance: Some(provenance),
    };
    Ok(())
}

/// The build log's account of one ref: what it was built from, each file and the time taken.
fn log_packaged(log: &mut BuildLog, build: &Build, archives: &[BuiltArchive], started: Instant) {
    log.line(format_args!(
        "{} {} at {} ({})",
        ref_noun(build.kind),
        build.name,
        build.commit.id,
        build.commit.summary
    ));
    for archive in archives {
        log.line(format_args!(
            "wrote {} ({} bytes, sha256 {})",
            archive.name, archive.checksums.size, archive.checksums.sha256
        ));
    }
    log.line(format_args!(
        "packaged in {} ms",
        started.elapsed().as_millis()
    ));
}

/// A tag release, recorded or about to be built: where another release's notes may start.
pub(super) struct TagRelease {
    version: String,
    /// The version read as a release line, to order tags and tell which line each is on.
    line: LineVersion,
    commit: String,
}

/// Every tag release by version with its commit, newest first: those recorded, and those this
/// job is about to build (so a release's notes start at the right tag even when several
/// arrive at once).
pub(super) fn tag_releases(released: &[Released], steps: &[Step]) -> Vec<TagRelease> {
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
    let mut tags: Vec<TagRelease> = recorded
        .chain(coming)
        .filter_map(|(version, commit)| {
            let line = LineVersion::parse(&version).filter(|l| !l.dev)?;
            Some(TagRelease {
                version,
                line,
                commit,
            })
        })
        .collect();
    tags.sort_by(|a, b| a.line.newest_first(&b.line));
    tags.dedup_by(|a, b| a.version == b.version);
    tags
}

/// The commits since the previous release (at most [`ReleaseNotes::LIMIT`], and how many more).
fn release_notes(
    mirror: &Mirror,
    tags: &[TagRelease],
    build: &Build,
) -> Result<ReleaseNotes, GitError> {
    let since = previous_release(tags, &build.version.version);
    let (commits, total) = mirror.log_between(
        since.map(|tag| tag.commit.as_str()),
        &build.commit.id,
        ReleaseNotes::LIMIT,
    )?;
    Ok(ReleaseNotes {
        since: since.map(|tag| tag.version.clone()),
        more: total - commits.len(),
        commits,
    })
}

/// The release whose commits a new release's notes start after: the newest older tag of the
/// same line (`8.x-1.`, `2.0.`), else the newest older tag of any line. A dev snapshot starts
/// after the newest tag of its line. `None` for a project's first release.
fn previous_release<'t>(tags: &'t [TagRelease], version: &str) -> Option<&'t TagRelease> {
    let line = LineVersion::parse(version);
    let older: Vec<&TagRelease> = tags
        .iter()
        .filter(|tag| {
            tag.version != version
                && line
                    .as_ref()
                    .is_none_or(|l| l.dev || tag.line.newest_first(l) == Ordering::Greater)
        })
        .collect();
    let same_line = older
        .iter()
        .find(|tag| line.as_ref().is_some_and(|l| l.holds(&tag.line)));
    same_line.or(older.first()).copied()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::CommitInfo;
    use crate::package::ReleaseVersion;

    fn recorded(version: &str, kind: ReleaseKind, commit: &str, published: bool) -> Released {
        Released {
            version: version.into(),
            kind,
            ref_name: version.into(),
            commit: commit.into(),
            published,
        }
    }

    fn coming(tag: &str, commit: &str) -> Step {
        Step::Build(Build {
            kind: ReleaseKind::Tag,
            name: tag.into(),
            version: ReleaseVersion::from_tag(tag).unwrap(),
            commit: CommitInfo {
                id: commit.into(),
                time: 1,
                summary: "s".into(),
            },
            is_new: true,
        })
    }

    fn since(tags: &[TagRelease], version: &str) -> Option<String> {
        previous_release(tags, version).map(|tag| format!("{}@{}", tag.version, tag.commit))
    }

    #[test]
    fn tag_releases_are_the_published_and_the_coming_tags_newest_first() {
        let released = [
            recorded("1.5.0", ReleaseKind::Tag, "c150", true),
            recorded("2.0.0", ReleaseKind::Tag, "c200", true),
            recorded("0.9.0", ReleaseKind::Tag, "c090", false),
            recorded("main-dev", ReleaseKind::Dev, "cmain", true),
        ];
        let steps = [coming("v2.0.1", "c201"), coming("2.0.0", "c200")];
        let versions: Vec<String> = tag_releases(&released, &steps)
            .into_iter()
            .map(|tag| tag.version)
            .collect();
        assert_eq!(versions, ["2.0.1", "2.0.0", "1.5.0"]);
    }

    #[test]
    fn notes_start_at_the_newest_older_tag_of_the_same_line() {
        let released = [
            recorded("1.5.0", ReleaseKind::Tag, "c150", true),
            recorded("2.0.0", ReleaseKind::Tag, "c200", true),
            recorded("2.0.1", ReleaseKind::Tag, "c201", true),
        ];
        let tags = tag_releases(&released, &[]);
        assert_eq!(since(&tags, "2.0.2").as_deref(), Some("2.0.1@c201"));
        assert_eq!(since(&tags, "1.5.1").as_deref(), Some("1.5.0@c150"));
        // No older tag on its line: the newest older tag of any line.
        assert_eq!(since(&tags, "2.1.0").as_deref(), Some("2.0.1@c201"));
        assert_eq!(since(&tags, "2.0.x-dev").as_deref(), Some("2.0.1@c201"));
        assert_eq!(since(&tags, "main-dev").as_deref(), Some("2.0.1@c201"));
        assert_eq!(since(&tags, "1.0.0"), None);
        assert_eq!(since(&[], "1.0.0"), None);
    }
}
