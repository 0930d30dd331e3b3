//! The release job: bring the project's mirror up to date (in a child process with a time
//! limit), resolve each ref, let [`plan`](super::plan) decide what each one needs, build each
//! ref alone, then carry every decision out behind the claim's fence
//! ([`carry_out`](super::carry_out)).
//!
//! - A ref that cannot be resolved, named or packaged fails by itself, as a problem; the job
//!   goes on. Transient errors (network, disk, database) fail the job, and the queue retries.
//! - The repository is the truth: after the fetch, a release whose ref is gone is
//!   unpublished, and one whose ref is back at the same commit is published again.
//! - Idempotent: a ref already released at its commit is skipped, so a retry never
//!   duplicates a release.

use entities::release::ReleaseStatus;
use std::collections::HashMap;
use std::time::Instant;

use apalis::prelude::Data;
use tokio::sync::mpsc;
use tracing::instrument;

use super::JobContext;
use super::build_log::BuildLog;
use super::build_ref::{TagRelease, package, prove, tag_releases};
use super::carry_out::{Decision, carry_out, fenced};
pub use super::error::ReleaseError;
use super::plan::{self, Build, Failure, Released, Step};
use super::refs::resolve_refs;
use crate::git::{self, FetchRequest, GitError, Mirror};
use crate::projects::{self, Project};
use crate::queue::ClaimedItem;
use crate::queue::backend::Lease;
use crate::releases;
use crate::store::Staging;

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
            disabled_since = %crate::time::rfc3339(since),
            "the project is disabled (it left the config file); nothing built, nothing changed"
        );
        return Ok(());
    }
    let started = Instant::now();
    // The claim this job holds: its item, its token (the fence) and its stop signal.
    let claim: Lease = (*lease).clone();
    let staging = ctx.store.staging(&project.name, &item.token);
    remove_stopped_workers_files(&ctx, &claim, &project, &staging).await?;
    let input = BuildInput {
        released: released(&ctx, project.id).await?,
        problems: crate::problems::known(&ctx.db, project.id).await?,
        ctx: (*ctx).clone(),
        project,
        item,
        claim,
        staging,
    };
    build_and_carry_out(input).await?;
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "release job finished"
    );
    Ok(())
}

/// Removes the temp files of other claims on this project (a worker killed mid-packaging),
/// behind the fence: once another job holds the project, those files may be its own.
async fn remove_stopped_workers_files(
    ctx: &JobContext,
    claim: &Lease,
    project: &Project,
    staging: &Staging,
) -> Result<(), ReleaseError> {
    let removed = fenced(ctx, claim, async |_| {
        ctx.store
            .remove_temp_files_except(&project.name, staging)
            .await
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
    Ok(())
}

async fn released(ctx: &JobContext, project_id: i64) -> Result<Vec<Released>, ReleaseError> {
    Ok(releases::for_project(&ctx.db, project_id)
        .await?
        .into_iter()
        .map(|r| Released {
            kind: r.release.kind,
            published: r.release.status == ReleaseStatus::Published,
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

/// Runs the blocking part on a thread of its own, inside this job's span, and carries out
/// each decision it sends as it arrives.
async fn build_and_carry_out(input: BuildInput) -> Result<(), ReleaseError> {
    let (decisions_tx, mut decisions) = mpsc::channel(1);
    let (ctx, project, claim) = (
        input.ctx.clone(),
        input.project.clone(),
        input.claim.clone(),
    );
    let span = tracing::Span::current();
    let building = tokio::task::spawn_blocking(move || {
        let _in_job = span.enter();
        build(&input, decisions_tx)
    });
    while let Some(decision) = decisions.recv().await {
        // On an error the receiver is dropped, and the building stops at its next send.
        carry_out(&ctx, &project, &claim, decision).await?;
    }
    building.await??;
    Ok(())
}

/// The blocking part: the fetch, the plan, then git and compression for each ref. Each
/// decision goes to the async side as soon as it is made, and is carried out there while the
/// next ref builds: a job cut off later keeps what it finished.
fn build(input: &BuildInput, decisions: mpsc::Sender<Decision>) -> Result<(), ReleaseError> {
    let SyncedMirror {
        mirror,
        shown_repo,
        mut job_log,
    } = sync_mirror(input)?;
    let refs = resolve_refs(&mirror, &input.project, &input.item, &input.released)
        .map_err(|source| fetch_error(&shown_repo, source))?;
    let steps = plan::plan(&input.released, &input.problems, &refs, input.item.scan_all);
    let tags = tag_releases(&input.released, &steps);
    let steps = log_notes(steps, &mut job_log);
    for step in steps {
        let decision = match step {
            Step::Note(_) => continue, // already in the job's log
            Step::Fail(failure) => Decision::Fail(failure),
            Step::Republish { version } => Decision::Republish(version),
            Step::Unpublish { version } => Decision::Unpublish(version),
            Step::ClearProblem { ref_name } => Decision::ClearProblem(ref_name),
            Step::Build(build) => build_one(input, &mirror, &build, &tags, &job_log)?,
        };
        decisions
            .blocking_send(decision)
            .map_err(|_| ReleaseError::ClaimLost)?;
    }
    Ok(())
}

/// The project's mirror after the fetch, with the job's first log lines.
struct SyncedMirror {
    mirror: Mirror,
    /// The repository as errors and logs name it: without any credentials in its URL.
    shown_repo: String,
    job_log: BuildLog,
}

/// Fetches the project's repository into its mirror, in a child process that stops when
/// the claim is lost or the host goes quiet for the fetch timeout.
fn sync_mirror(input: &BuildInput) -> Result<SyncedMirror, ReleaseError> {
    let BuildInput {
        ctx,
        project,
        claim,
        ..
    } = input;
    let started = Instant::now();
    let mirror_path = ctx.mirrors_dir.join(format!("{}.git", project.name));
    let shown_repo = crate::redact::redact(&project.repo);
    let request = FetchRequest {
        mirror: mirror_path.clone(),
        url: project.repo.clone(),
        auth: ctx.auth_for(&project.name),
        idle_timeout_ms: ctx.fetch_timeout.as_millis() as u64,
    };
    let fetched = git::fetch_in_child(&ctx.fetch_program, &request, &|| claim.stopped());
    crate::metrics::fetch_finished(started.elapsed());
    let fetched = match fetched {
        Ok(fetched) => fetched,
        Err(GitError::Stopped) => return Err(ReleaseError::ClaimLost),
        Err(e) => return Err(fetch_error(&shown_repo, e)),
    };
    let fetch_failed = |source| fetch_error(&shown_repo, source);
    let mirror = Mirror::open(&mirror_path).map_err(fetch_failed)?;
    let mut job_log = BuildLog::default();
    job_log.admin_line(format_args!("fetched from {shown_repo}"));
    job_log.line(format_args!(
        "mirror synced in {} ms ({} objects, {} bytes received)",
        started.elapsed().as_millis(),
        fetched.received_objects,
        fetched.received_bytes
    ));
    // An empty answer (a wrong URL, a host having a bad day) must not unpublish everything.
    let no_tags = mirror.tags().map_err(fetch_failed)?.is_empty();
    if no_tags && mirror.branches().map_err(fetch_failed)?.is_empty() {
        return Err(fetch_failed(GitError::Fetch(
            "the repository has no branches and no tags; nothing was changed".into(),
        )));
    }
    Ok(SyncedMirror {
        mirror,
        shown_repo,
        job_log,
    })
}

fn fetch_error(shown_repo: &str, source: GitError) -> ReleaseError {
    ReleaseError::Fetch {
        repo: shown_repo.to_string(),
        source,
    }
}

/// Writes the plan's notes to the job's log and trace, and returns the other steps. The
/// notes come first, so every release's log carries all of them.
fn log_notes(steps: Vec<Step>, job_log: &mut BuildLog) -> Vec<Step> {
    let mut rest = Vec::with_capacity(steps.len());
    for step in steps {
        match step {
            Step::Note(note) => {
                tracing::info!("{note}");
                job_log.line(note);
            }
            step => rest.push(step),
        }
    }
    rest
}

/// Packages one ref, unless the claim is gone. A permanent failure fails the ref alone; a
/// transient one fails the job after what it already sent is carried out, and the queue
/// retries the item.
fn build_one(
    input: &BuildInput,
    mirror: &Mirror,
    build: &Build,
    tags: &[TagRelease],
    job_log: &BuildLog,
) -> Result<Decision, ReleaseError> {
    if input.claim.stopped() {
        return Err(ReleaseError::ClaimLost);
    }
    match package(mirror, &input.project, build, &input.staging, tags, job_log) {
        Ok(mut built) => {
            let signer = input.ctx.signer.as_deref();
            prove(&mut built, mirror, &input.project, signer, input.claim.item).map_err(
                |source| ReleaseError::Signing {
                    version: build.version.version.clone(),
                    source,
                },
            )?;
            Ok(Decision::Built(Box::new(built)))
        }
        Err(e) if e.is_permanent() => Ok(Decision::Fail(Failure {
            ref_name: build.full_name(),
            commit: build.commit.id.clone(),
            reason: e.to_string(),
        })),
        Err(source) => Err(ReleaseError::Package {
            version: build.version.version.clone(),
            source,
        }),
    }
}
