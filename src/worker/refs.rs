//! Which refs a release job looks at, resolved in the freshly fetched mirror.

use std::collections::BTreeMap;

use super::plan::{self, Released, ResolvedRef, Target};
use crate::git::{GitError, Mirror, RefTarget};
use crate::package::ReleaseKind;
use crate::projects::Project;
use crate::queue::ClaimedItem;

/// Every ref this job looks at, resolved in the mirror:
/// - the queued ones (a push, or a deletion, which is only a hint to look);
/// - every tag matching the project's patterns (hosts send no event when more than three tags
///   are pushed at once, and a lost delivery must not lose a release; released tags are
///   skipped cheaply);
/// - the refs of the project's releases, so that one whose ref is gone is unpublished and
///   one whose ref is back is published again;
/// - for a rebuild, every matching branch.
pub(super) fn resolve_refs(
    mirror: &Mirror,
    project: &Project,
    item: &ClaimedItem,
    released: &[Released],
) -> Result<Vec<ResolvedRef>, GitError> {
    let wanted = WantedRefs::find(mirror, project, item, released)?;
    let tags = wanted
        .tags
        .into_iter()
        .map(|(name, queued)| resolve(mirror, ReleaseKind::Tag, name, queued));
    let branches = wanted
        .branches
        .into_iter()
        .map(|(name, queued)| resolve(mirror, ReleaseKind::Dev, name, queued));
    tags.chain(branches).collect()
}

/// The refs a job looks at, by short name and in name order: `true` where the queue item
/// names the ref, `false` where only the job's own scan found it.
struct WantedRefs {
    tags: BTreeMap<String, bool>,
    branches: BTreeMap<String, bool>,
}

impl WantedRefs {
    fn find(
        mirror: &Mirror,
        project: &Project,
        item: &ClaimedItem,
        released: &[Released],
    ) -> Result<WantedRefs, GitError> {
        let mut wanted = WantedRefs {
            tags: BTreeMap::new(),
            branches: BTreeMap::new(),
        };
        for tag in mirror
            .tags()?
            .into_iter()
            .filter(|t| project.releases_tag(t))
        {
            wanted.tags.insert(tag, false);
        }
        if item.scan_all {
            for branch in mirror
                .branches()?
                .into_iter()
                .filter(|b| project.releases_branch(b))
            {
                wanted.branches.insert(branch, false);
            }
        }
        for release in released {
            match release.kind {
                ReleaseKind::Tag if project.releases_tag(&release.ref_name) => {
                    wanted.tags.entry(release.ref_name.clone()).or_insert(false);
                }
                ReleaseKind::Dev if project.releases_branch(&release.ref_name) => {
                    wanted
                        .branches
                        .entry(release.ref_name.clone())
                        .or_insert(false);
                }
                _ => {}
            }
        }
        let queued = &item.refs;
        wanted
            .tags
            .extend(queued.tags.keys().map(|t| (t.clone(), true)));
        wanted
            .branches
            .extend(queued.branches.keys().map(|b| (b.clone(), true)));
        Ok(wanted)
    }
}

/// What one ref points at. A broken object fails this ref alone; a failing disk fails the
/// job (and the queue retries it).
fn resolve(
    mirror: &Mirror,
    kind: ReleaseKind,
    name: String,
    queued: bool,
) -> Result<ResolvedRef, GitError> {
    let target = match mirror.ref_target(&plan::full_name(kind, &name)) {
        Ok(RefTarget::Commit(commit)) => Target::Commit(commit),
        Ok(RefTarget::Missing) => Target::Missing,
        Ok(RefTarget::NotACommit { kind, id }) => Target::NotACommit { kind, id },
        Err(e) if e.is_permanent() => Target::Unreadable(e.to_string()),
        Err(e) => return Err(e),
    };
    Ok(ResolvedRef {
        kind,
        name,
        queued,
        target,
    })
}
