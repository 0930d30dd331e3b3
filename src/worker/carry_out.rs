//! Carrying out a job's decisions on the async side: each one in its own write transaction
//! behind the claim's fence, so a stale job (its lease expired and the item handed out
//! again) writes nothing. A decision that changes what readers see (a release recorded,
//! unpublished or published again) refreshes the publish-time documents in its transaction,
//! and writes the notifications it calls for in the same transaction (`notify::enqueue_on`):
//! a release and the word of it commit together, or neither does.

use sea_orm::DatabaseTransaction;

use super::JobContext;
use super::build_ref::Built;
use super::error::ReleaseError;
use super::plan::{Build, Failure};
use crate::notify::{Event, FileData, RefFailureData, ReleaseData};
use crate::package::{BuiltArchive, ReleaseKind};
use crate::projects::Project;
use crate::queue::backend::Lease;
use crate::releases::{self, NewFile, NewRelease};
use crate::store::Upload;
use crate::web::documents::{Scope, refresh_on};

/// What the blocking part decided and built, sent in plan order.
pub(super) enum Decision {
    Built(Box<Built>),
    Fail(Failure),
    Republish(String),
    Unpublish(String),
    ClearProblem(String),
}

/// Runs `write` in a write transaction that first checks the claim still holds the item,
/// and keeps it held until the transaction ends: a stale job writes nothing.
pub(super) async fn fenced<T>(
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

/// Carries out one decision behind the claim's fence.
pub(super) async fn carry_out(
    ctx: &JobContext,
    project: &Project,
    claim: &Lease,
    decision: Decision,
) -> Result<(), ReleaseError> {
    match decision {
        Decision::Built(built) => store_and_record(ctx, project, claim, *built).await,
        Decision::Fail(failure) => record_problem(ctx, project, claim, failure).await,
        Decision::ClearProblem(ref_name) => {
            fenced(ctx, claim, async |txn| {
                crate::problems::clear_on(txn, project.id, &ref_name)
                    .await
                    .map_err(ReleaseError::from)
            })
            .await
        }
        Decision::Republish(version) => set_published(ctx, project, claim, &version, true).await,
        Decision::Unpublish(version) => set_published(ctx, project, claim, &version, false).await,
    }
}

async fn record_problem(
    ctx: &JobContext,
    project: &Project,
    claim: &Lease,
    failure: Failure,
) -> Result<(), ReleaseError> {
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
        .await?;
        let event = Event::ReleaseFailed(RefFailureData {
            project: project.name.clone(),
            ref_name: failure.ref_name.clone(),
            commit: failure.commit.clone(),
            reason: failure.reason.clone(),
        });
        crate::notify::enqueue_on(txn, &event).await?;
        Ok(())
    })
    .await
}

async fn set_published(
    ctx: &JobContext,
    project: &Project,
    claim: &Lease,
    version: &str,
    published: bool,
) -> Result<(), ReleaseError> {
    let changing = fenced(ctx, claim, async |txn| {
        releases::set_status_on(txn, project.id, version, published).await?;
        notify_release_on(txn, project, version, published).await?;
        Ok(refresh_on(txn, Scope::Project(project.id), ctx.store.as_ref()).await?)
    })
    .await?;
    drop(changing);
    if published {
        tracing::info!(%version, "its ref is back at the same commit; published again");
    } else {
        tracing::info!(%version, "its ref is gone from the repository; unpublished");
    }
    Ok(())
}

/// Uploads the files (before the fence: an upload may take long), then publishes them and
/// records the release in one fenced transaction. If that fails, a new release's files are
/// removed again, so nothing unrecorded stays visible.
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
        proofs,
        started: _,
    } = built;
    let signatures = &proofs.signatures;
    // Taken when the fence holds; left here if it does not (or the version is taken), and
    // then discarded below.
    let mut uploaded = Some(upload_all(ctx, project, archives).await?);
    // Filled as each file lands, so a failure part-way knows which ones to take back.
    let mut published: Vec<String> = Vec::new();
    let recorded = fenced(ctx, claim, async |txn| {
        refuse_a_taken_version(txn, project, &build).await?;
        let uploads = uploaded.take().unwrap_or_default();
        let mut files = publish_files(ctx, project, uploads, &mut published).await?;
        for file in &mut files {
            file.minisig = signatures.of_file(&file.name);
        }
        // Counted once the release commits.
        let sizes: Vec<(&'static str, u64)> =
            files.iter().map(|f| (f.format, f.checksums.size)).collect();
        let release = NewRelease {
            project_id: project.id,
            version: &build.version,
            ref_name: &build.name,
            commit: &build.commit.id,
            commit_time: build.commit.time,
            build_log: log.as_str(),
            composer_json: composer_json.as_deref(),
            notes: &notes,
            files,
            item: Some(claim.item),
            sums_minisig: signatures.sums.clone(),
            provenance: proofs.provenance.clone(),
            signing_key: signatures.key.clone(),
        };
        releases::record_on(txn, release).await?;
        crate::problems::clear_on(txn, project.id, &build.full_name()).await?;
        notify_release_on(txn, project, &build.version.version, true).await?;
        let changing = refresh_on(txn, Scope::Project(project.id), ctx.store.as_ref()).await?;
        Ok((changing, sizes))
    })
    .await;
    for never_published in uploaded.into_iter().flatten() {
        ctx.store.discard(never_published.upload).await;
    }
    let (changing, sizes) = match recorded {
        Ok(recorded) => recorded,
        Err(e) => {
            if build.is_new && !published.is_empty() {
                remove_unrecorded(ctx, project, claim, &published).await;
            }
            return Err(e);
        }
    };
    // Committed: readers may keep copies again.
    drop(changing);
    for (format, bytes) in sizes {
        crate::metrics::archive_published(format, bytes);
    }
    tracing::info!(version = %build.version.version, commit = %build.commit.id, "released");
    Ok(())
}

/// Writes `release.published` or `release.unpublished` for `version`, as its rows now are, to
/// the outbox in the caller's transaction.
async fn notify_release_on(
    txn: &DatabaseTransaction,
    project: &Project,
    version: &str,
    published: bool,
) -> Result<(), ReleaseError> {
    let Some(found) = releases::find(txn, project.id, version).await? else {
        return Ok(());
    };
    let base = crate::documents::public_url(txn).await?.unwrap_or_default();
    let url = crate::web::PublicUrl(base.into());
    let data = ReleaseData {
        project: project.name.clone(),
        version: found.release.version.clone(),
        kind: found.release.kind.to_string(),
        ref_name: found.release.ref_name.clone(),
        commit: found.release.commit.clone(),
        page: url.release(&project.name, version),
        files: found
            .files
            .iter()
            .map(|file| FileData {
                name: file.name.clone(),
                url: url.file(&project.name, &file.name),
                size: file.size,
                sha256: file.sha256.clone(),
            })
            .collect(),
    };
    let event = if published {
        Event::ReleasePublished(data)
    } else {
        Event::ReleaseUnpublished(data)
    };
    crate::notify::enqueue_on(txn, &event).await?;
    Ok(())
}

/// The plan saw no tag release of this version; nor may the database now, before any file
/// moves (a tag release's files never change).
async fn refuse_a_taken_version(
    txn: &DatabaseTransaction,
    project: &Project,
    build: &Build,
) -> Result<(), ReleaseError> {
    if let Some(kind) = releases::kind_of_on(txn, project.id, &build.version.version).await?
        && (kind == ReleaseKind::Tag || build.kind == ReleaseKind::Tag)
    {
        return Err(ReleaseError::VersionTaken(build.version.version.clone()));
    }
    Ok(())
}

/// An archive uploaded, not yet published.
struct Uploaded {
    name: String,
    format: &'static str,
    checksums: crate::package::Checksums,
    upload: Upload,
}

/// Puts each archive where publishing is one quick step
/// ([`ArtifactStore::upload`](crate::store::ArtifactStore::upload)); on a failure, what was
/// already uploaded is discarded.
async fn upload_all(
    ctx: &JobContext,
    project: &Project,
    archives: Vec<BuiltArchive>,
) -> Result<Vec<Uploaded>, ReleaseError> {
    let mut uploaded = Vec::with_capacity(archives.len());
    for archive in archives {
        match ctx.store.upload(&project.name, archive.file).await {
            Ok(upload) => uploaded.push(Uploaded {
                name: archive.name,
                format: archive.format.extension(),
                checksums: archive.checksums,
                upload,
            }),
            Err(source) => {
                for done in uploaded {
                    ctx.store.discard(done.upload).await;
                }
                return Err(ReleaseError::Store {
                    file: archive.name,
                    source,
                });
            }
        }
    }
    Ok(uploaded)
}

/// Gives each uploaded archive its final name, noting it in `published` as it lands, and
/// returns the rows that describe them. Runs inside the fence: a stale job publishes nothing.
async fn publish_files(
    ctx: &JobContext,
    project: &Project,
    uploaded: Vec<Uploaded>,
    published: &mut Vec<String>,
) -> Result<Vec<NewFile>, ReleaseError> {
    let mut files = Vec::new();
    let mut uploaded = uploaded.into_iter();
    while let Some(archive) = uploaded.next() {
        if let Err(source) = ctx
            .store
            .publish(&project.name, &archive.name, archive.upload)
            .await
        {
            for rest in uploaded {
                ctx.store.discard(rest.upload).await;
            }
            return Err(ReleaseError::Store {
                file: archive.name,
                source,
            });
        }
        published.push(archive.name.clone());
        files.push(NewFile {
            format: archive.format,
            name: archive.name,
            checksums: archive.checksums,
            minisig: None,
        });
    }
    Ok(files)
}

/// Removes the files of a release that was not recorded. Only while this claim still holds
/// the project: once another job has it, the files under these names may be that job's.
async fn remove_unrecorded(ctx: &JobContext, project: &Project, claim: &Lease, names: &[String]) {
    let removed = fenced(ctx, claim, async |_| {
        for name in names {
            if let Err(e) = ctx.store.remove(&project.name, name).await {
                tracing::warn!(file = %name, error = %e, "could not remove an unrecorded file");
            }
        }
        Ok(())
    })
    .await;
    if removed.is_err() {
        tracing::warn!(files = ?names, "left unrecorded files: the claim is gone");
    }
}
