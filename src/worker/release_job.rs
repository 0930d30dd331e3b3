//! The release job: bring the project's mirror up to date (in a child process with a time
//! limit), resolve each ref, let [`plan`](super::plan) decide what each one needs, build each
//! ref alone, then carry every decision out behind the claim's fence.
//!
//! - A ref that cannot be resolved, named or packaged fails by itself, as a problem; the job
//!   goes on. Transient errors (network, disk, database) fail the job, and the queue retries.
//! - The repository is the truth: after the fetch, a release whose ref is gone is
//!   unpublished, and one whose ref is back at the same commit is published again.
//! - Idempotent: a ref already released at its commit is skipped, so a retry never
//!   duplicates a release.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use apalis::prelude::Data;
use sea_orm::{DatabaseTransaction, DbErr};
use tracing::instrument;

use super::JobContext;
use super::build_log::BuildLog;
use super::build_ref::{Built, package, tag_releases};
use super::plan::{self, Failure, Released, ResolvedRef, Step, Target};
use crate::git::{self, FetchRequest, GitError, Mirror, RefTarget};
use crate::package::{PackageError, ReleaseKind};
use crate::projects::{self, Project};
use crate::queue::ClaimedItem;
use crate::queue::backend::Lease;
use crate::releases::{self, NewFile, NewRelease};
use crate::store::Staging;

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("project {0} no longer exists")]
    ProjectGone(i64),
    #[error("database: {0}")]
    Db(#[from] DbErr),
    #[error("queue: {0}")]
    Queue(#[from] crate::queue::QueueError),
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
    #[error("the claim was handed to another worker; this job writes nothing more")]
    ClaimLost,
    #[error("version {0} is already a release that this build may not replace")]
    VersionTaken(String),
    #[error("the packaging thread stopped: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// What the blocking part decided and built, in plan order.
enum Done {
    Built(Box<Built>),
    Fail(Failure),
    Republish(String),
    Unpublish(String),
    ClearProblem(String),
}

#[instrument(skip_all, fields(item = item.id, revision = item.revision, project = tracing::field::Empty))]
pub async fn release_job(
    item: ClaimedItem,
    ctx: Data<JobContext>,
    lease: Data<Lease>,
) -> Result<(), ReleaseError> {
    let project = projects::find_by_id(&ctx.db, item.project_id)
        .await?
        .ok_or(ReleaseError::ProjectGone(item.project_id))?;
    tracing::Span::current().record("project", project.name.as_str());
    // Queued before its project left the config: nothing is built for a disabled project.
    // Acknowledged (not failed), so it is not retried; its releases stay as they are.
    if let Some(since) = project.disabled_at {
        tracing::info!(
            disabled_since = %since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "the project is disabled (it left the config file); nothing built, nothing changed"
        );
        return Ok(());
    }
    let started = Instant::now();
    // The claim this job holds: its item, its token (the fence) and its stop signal.
    let claim: Lease = (*lease).clone();
    let staging = ctx.store.staging(&project.name, &item.token);
    let removed = fenced(&ctx, &claim, async |_| {
        ctx.store
            .remove_temp_files_except(&project.name, &staging)
            .map_err(|source| ReleaseError::Store {
                file: "half-written archives of stopped workers".into(),
                source,
            })
    })
    .await?;
    if removed > 0 {
        tracing::warn!(
            files = removed,
            "removed archives a stopped worker left half-written"
        );
    }

    let released = released(&ctx, project.id).await?;
    let problems = crate::problems::known(&ctx.db, project.id).await?;
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel(1);
    let building = {
        let input = BuildInput {
            ctx: (*ctx).clone(),
            project: project.clone(),
            item,
            claim: claim.clone(),
            staging: staging.clone(),
            released,
            problems,
        };
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _in_job = span.enter();
            build(&input, done_tx)
        })
    };
    while let Some(done) = done_rx.recv().await {
        // On an error the receiver is dropped, and the building stops at its next send.
        carry_out(&ctx, &project, &claim, done).await?;
    }
    building.await??;
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "release job finished"
    );
    Ok(())
}

/// Runs `write` in a write transaction that first checks the claim still holds the item,
/// and keeps it held until the transaction ends: a stale job (its lease expired and the
/// item handed out again) writes nothing.
async fn fenced<T>(
    ctx: &JobContext,
    claim: &Lease,
    write: impl AsyncFnOnce(&DatabaseTransaction) -> Result<T, ReleaseError>,
) -> Result<T, ReleaseError> {
    if claim.stopped() {
        return Err(ReleaseError::ClaimLost);
    }
    let txn = crate::db::begin_write(&ctx.db).await?;
    if !ctx
        .queue
        .holds_claim_on(&txn, claim.item, &claim.token)
        .await?
    {
        claim.stop.cancel();
        return Err(ReleaseError::ClaimLost);
    }
    let value = write(&txn).await?;
    txn.commit().await?;
    Ok(value)
}

async fn released(ctx: &JobContext, project_id: i64) -> Result<Vec<Released>, ReleaseError> {
    Ok(releases::for_project(&ctx.db, project_id)
        .await?
        .into_iter()
        .map(|r| Released {
            kind: releases::kind_of(&r.release),
            published: r.release.status == "published",
            version: r.release.version,
            ref_name: r.release.ref_name,
            commit: r.release.commit,
        })
        .collect())
}

/// What the blocking part works from.
struct BuildInput {
    ctx: JobContext,
    project: Project,
    item: ClaimedItem,
    claim: Lease,
    staging: Staging,
    released: Vec<Released>,
    problems: HashMap<String, String>,
}

/// The blocking part: the fetch, git and compression.
fn build(input: &BuildInput, done_tx: tokio::sync::mpsc::Sender<Done>) -> Result<(), ReleaseError> {
    let BuildInput {
        ctx,
        project,
        item,
        claim,
        staging,
        released,
        problems,
    } = input;
    let fetch_started = Instant::now();
    let mirror_path = ctx.mirrors_dir.join(format!("{}.git", project.name));
    // Errors and logs name the repository without any credentials in its URL.
    let shown_repo = crate::startup::redact(&project.repo);
    let fetch_error = |source| ReleaseError::Fetch {
        repo: shown_repo.clone(),
        source,
    };
    let request = FetchRequest {
        mirror: mirror_path.clone(),
        url: project.repo.clone(),
        auth: ctx.auth_for(&project.name),
        idle_timeout_ms: ctx.fetch_timeout.as_millis() as u64,
    };
    let fetched = match git::fetch_in_child(&ctx.fetch_program, &request, &|| claim.stopped()) {
        Ok(fetched) => fetched,
        Err(GitError::Stopped) => return Err(ReleaseError::ClaimLost),
        Err(e) => return Err(fetch_error(e)),
    };
    let mirror = Mirror::open(&mirror_path).map_err(fetch_error)?;
    let mut job_log = BuildLog::default();
    job_log.admin_line(format_args!("fetched from {shown_repo}"));
    job_log.line(format_args!(
        "mirror synced in {} ms ({} objects, {} bytes received)",
        fetch_started.elapsed().as_millis(),
        fetched.received_objects,
        fetched.received_bytes
    ));

    // An empty answer (a wrong URL, a host having a bad day) must not unpublish everything.
    if mirror.tags().map_err(fetch_error)?.is_empty()
        && mirror.branches().map_err(fetch_error)?.is_empty()
    {
        return Err(fetch_error(GitError::Fetch(
            "the repository has no branches and no tags; nothing was changed".into(),
        )));
    }
    let refs = resolve_refs(&mirror, project, item, released).map_err(fetch_error)?;
    let steps = plan::plan(released, problems, &refs, item.scan_all);
    let tags = tag_releases(released, &steps);
    // The notes first, so every release's log carries all of them.
    let (notes, steps): (Vec<Step>, Vec<Step>) =
        steps.into_iter().partition(|s| matches!(s, Step::Note(_)));
    for note in notes {
        if let Step::Note(note) = note {
            tracing::info!("{note}");
            job_log.line(note);
        }
    }
    // Each decision goes to the async side as soon as it is made, and is carried out there
    // while the next ref builds: a job cut off later keeps what it finished.
    let send = |done: Done| {
        done_tx
            .blocking_send(done)
            .map_err(|_| ReleaseError::ClaimLost)
    };
    for step in steps {
        match step {
            Step::Note(_) => {}
            Step::Fail(failure) => send(Done::Fail(failure))?,
            Step::Republish { version } => send(Done::Republish(version))?,
            Step::Unpublish { version } => send(Done::Unpublish(version))?,
            Step::ClearProblem { ref_name } => send(Done::ClearProblem(ref_name))?,
            Step::Build(build) => {
                if claim.stopped() {
                    return Err(ReleaseError::ClaimLost);
                }
                match package(&mirror, project, &build, staging, &tags, &job_log) {
                    Ok(built) => send(Done::Built(Box::new(built)))?,
                    Err(e) if e.is_permanent() => send(Done::Fail(Failure {
                        ref_name: build.full_name(),
                        commit: build.commit.id.clone(),
                        reason: e.to_string(),
                    }))?,
                    // Transient: the job fails after what it already sent is carried out,
                    // and the queue retries the item.
                    Err(source) => {
                        return Err(ReleaseError::Package {
                            version: build.version.version.clone(),
                            source,
                        });
                    }
                }
            }
        }
    }
    Ok(())
}

/// Every ref this job looks at, resolved in the mirror:
/// - the queued ones (a push, or a deletion, which is only a hint to look);
/// - every tag matching the project's patterns (hosts send no event when more than three tags
///   are pushed at once, and a lost delivery must not lose a release; released tags are
///   skipped cheaply);
/// - the refs of the project's releases, so that one whose ref is gone is unpublished and
///   one whose ref is back is published again;
/// - for a rebuild, every matching branch.
fn resolve_refs(
    mirror: &Mirror,
    project: &Project,
    item: &ClaimedItem,
    released: &[Released],
) -> Result<Vec<ResolvedRef>, GitError> {
    // Short name → queued by the item.
    let mut tags: BTreeMap<String, bool> = BTreeMap::new();
    let mut branches: BTreeMap<String, bool> = BTreeMap::new();
    for tag in mirror
        .tags()?
        .into_iter()
        .filter(|t| project.releases_tag(t))
    {
        tags.insert(tag, false);
    }
    if item.scan_all {
        for branch in mirror
            .branches()?
            .into_iter()
            .filter(|b| project.releases_branch(b))
        {
            branches.insert(branch, false);
        }
    }
    for release in released {
        match release.kind {
            ReleaseKind::Tag if project.releases_tag(&release.ref_name) => {
                tags.entry(release.ref_name.clone()).or_insert(false);
            }
            ReleaseKind::Dev if project.releases_branch(&release.ref_name) => {
                branches.entry(release.ref_name.clone()).or_insert(false);
            }
            _ => {}
        }
    }
    tags.extend(item.refs.tags.keys().map(|t| (t.clone(), true)));
    branches.extend(item.refs.branches.keys().map(|b| (b.clone(), true)));

    let resolve = |kind: ReleaseKind, name: String, queued: bool| {
        let target = match mirror.ref_target(&plan::full_name(kind, &name)) {
            Ok(RefTarget::Commit(commit)) => Target::Commit(commit),
            Ok(RefTarget::Missing) => Target::Missing,
            Ok(RefTarget::NotACommit { kind, id }) => Target::NotACommit { kind, id },
            // A broken object fails this ref; a failing disk fails the job (and is retried).
            Err(e) if e.is_permanent() => Target::Unreadable(e.to_string()),
            Err(e) => return Err(e),
        };
        Ok(ResolvedRef {
            kind,
            name,
            queued,
            target,
        })
    };
    tags.into_iter()
        .map(|(name, queued)| resolve(ReleaseKind::Tag, name, queued))
        .chain(
            branches
                .into_iter()
                .map(|(name, queued)| resolve(ReleaseKind::Dev, name, queued)),
        )
        .collect()
}

/// Carries out one decision behind the claim's fence.
async fn carry_out(
    ctx: &JobContext,
    project: &Project,
    claim: &Lease,
    done: Done,
) -> Result<(), ReleaseError> {
    match done {
        Done::Built(built) => store_and_record(ctx, project, claim, *built).await,
        Done::Fail(failure) => {
            tracing::warn!(r#ref = %failure.ref_name, commit = %failure.commit, reason = %failure.reason,
                "the ref failed on its own; the job goes on");
            fenced(ctx, claim, async |txn| {
                crate::problems::record_on(
                    txn,
                    project.id,
                    &failure.ref_name,
                    &failure.commit,
                    &failure.reason,
                )
                .await
                .map_err(ReleaseError::from)
            })
            .await
        }
        Done::ClearProblem(ref_name) => {
            fenced(ctx, claim, async |txn| {
                crate::problems::clear_on(txn, project.id, &ref_name)
                    .await
                    .map_err(ReleaseError::from)
            })
            .await
        }
        Done::Republish(version) => set_published(ctx, project, claim, &version, true).await,
        Done::Unpublish(version) => set_published(ctx, project, claim, &version, false).await,
    }
}

async fn set_published(
    ctx: &JobContext,
    project: &Project,
    claim: &Lease,
    version: &str,
    published: bool,
) -> Result<(), ReleaseError> {
    fenced(ctx, claim, async |txn| {
        releases::set_status_on(txn, project.id, version, published)
            .await
            .map_err(ReleaseError::from)
    })
    .await?;
    if published {
        tracing::info!(%version, "its ref is back at the same commit; published again");
    } else {
        tracing::info!(%version, "its ref is gone from the repository; unpublished");
    }
    Ok(())
}

/// Moves the files into place and records the release, in one fenced transaction; if that
/// fails, a new release's files are removed again so nothing unrecorded stays visible.
async fn store_and_record(
    ctx: &JobContext,
    project: &Project,
    claim: &Lease,
    built: Built,
) -> Result<(), ReleaseError> {
    let Built {
        build,
        archives,
        log,
        composer_json,
        notes,
    } = built;
    let mut published: Vec<String> = Vec::new();
    let recorded = fenced(ctx, claim, async |txn| {
        // The plan saw no tag release of this version; nor may the database now, before any
        // file moves (a tag release's files never change).
        if let Some(kind) = releases::kind_of_on(txn, project.id, &build.version.version).await?
            && (kind == ReleaseKind::Tag || build.kind == ReleaseKind::Tag)
        {
            return Err(ReleaseError::VersionTaken(build.version.version.clone()));
        }
        let mut files = Vec::new();
        for archive in archives {
            let name = archive.name.clone();
            let format = archive.format.extension();
            let checksums = archive.checksums.clone();
            // A rename and a directory sync, done here rather than on a blocking thread of
            // its own: if the job is dropped, no rename can land after the fence is gone.
            ctx.store
                .publish(&project.name, archive)
                .map_err(|source| ReleaseError::Store {
                    file: name.clone(),
                    source,
                })?;
            published.push(name.clone());
            files.push(NewFile {
                format,
                name,
                checksums,
            });
        }
        releases::record_on(
            txn,
            NewRelease {
                project_id: project.id,
                version: &build.version,
                ref_name: &build.name,
                commit: &build.commit.id,
                commit_time: build.commit.time,
                build_log: log.as_str(),
                composer_json: composer_json.as_deref(),
                notes: &notes,
                files,
            },
        )
        .await?;
        crate::problems::clear_on(txn, project.id, &build.full_name()).await?;
        Ok(())
    })
    .await;
    if let Err(e) = recorded {
        // Only while this claim still holds the project: once another job has it, the files
        // under these names may be that job's.
        if build.is_new && !published.is_empty() {
            let removed = fenced(ctx, claim, async |_| {
                remove_files(ctx, project, &published);
                Ok(())
            })
            .await;
            if removed.is_err() {
                tracing::warn!(files = ?published, "left unrecorded files: the claim is gone");
            }
        }
        return Err(e);
    }
    tracing::info!(version = %build.version.version, commit = %build.commit.id, "released");
    Ok(())
}

fn remove_files(ctx: &JobContext, project: &Project, names: &[String]) {
    for name in names {
        if let Err(e) = ctx.store.remove(&project.name, name) {
            tracing::warn!(file = %name, error = %e, "could not remove an unrecorded file");
        }
    }
}
