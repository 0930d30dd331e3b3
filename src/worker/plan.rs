//! What a release job does with each ref, decided without git or the database: the job
//! resolves refs in the mirror, this module decides, and the job carries the decisions out.
//! Each ref is decided alone, so one odd ref never stops the others.

use std::collections::HashMap;

use crate::git::CommitInfo;
use crate::package::{ReleaseKind, ReleaseVersion};

/// A release the project already has.
#[derive(Debug, Clone)]
pub struct Released {
    pub version: String,
    pub kind: ReleaseKind,
    /// The tag or branch it was built from (short name).
    pub ref_name: String,
    pub commit: String,
    pub published: bool,
}

/// A ref as the mirror has it after the fetch.
#[derive(Debug, Clone)]
pub struct ResolvedRef {
    pub kind: ReleaseKind,
    /// The short name: `v1.0`, `main`.
    pub name: String,
    /// Named by the queue item (a push), not only found by the job's own scan.
    pub queued: bool,
    pub target: Target,
}

#[derive(Debug, Clone)]
pub enum Target {
    Commit(CommitInfo),
    /// Gone from the repository.
    Missing,
    /// A blob or a tree: `kind` says which, `id` is its object id.
    NotACommit {
        kind: &'static str,
        id: String,
    },
    /// git could not read what the ref points at.
    Unreadable(String),
}

impl ResolvedRef {
    /// `refs/tags/v1.0`, `refs/heads/main`: how problems name the ref.
    pub fn full_name(&self) -> String {
        full_name(self.kind, &self.name)
    }

    /// `tag "v1.0"`, `branch "main"`: how build logs and reasons name the ref.
    fn describe(&self) -> String {
        format!("{} {:?}", ref_noun(self.kind), self.name)
    }
}

pub fn full_name(kind: ReleaseKind, name: &str) -> String {
    match kind {
        ReleaseKind::Tag => format!("refs/tags/{name}"),
        ReleaseKind::Dev => format!("refs/heads/{name}"),
    }
}

/// What a release of `kind` is built from, in words: `tag` or `branch`.
pub fn ref_noun(kind: ReleaseKind) -> &'static str {
    match kind {
        ReleaseKind::Tag => "tag",
        ReleaseKind::Dev => "branch",
    }
}

/// A ref to package.
#[derive(Debug, Clone)]
pub struct Build {
    pub kind: ReleaseKind,
    pub name: String,
    pub version: ReleaseVersion,
    pub commit: CommitInfo,
    /// No release of this version existed when the job started (so a failure removes its files).
    pub is_new: bool,
}

impl Build {
    pub fn full_name(&self) -> String {
        full_name(self.kind, &self.name)
    }
}

/// A ref that failed on its own, for good at this commit: recorded as a problem, and not
/// tried again until the ref moves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub ref_name: String,
    pub commit: String,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub enum Step {
    Build(Build),
    /// An unpublished release whose ref is back at the same commit.
    Republish {
        version: String,
    },
    /// A published release whose ref is gone from the repository.
    Unpublish {
        version: String,
    },
    Fail(Failure),
    /// The ref's earlier problem no longer holds (it moved, or it is gone).
    ClearProblem {
        ref_name: String,
    },
    /// Nothing to do; a line for the build log.
    Note(String),
}

/// Decides each ref, in order. `problems` maps a ref's full name to the commit it failed at;
/// such a ref is skipped while it stays there, unless `retry_problems` (an admin's rebuild).
pub fn plan(
    released: &[Released],
    problems: &HashMap<String, String>,
    refs: &[ResolvedRef],
    retry_problems: bool,
) -> Vec<Step> {
    let mut planner = Planner {
        released,
        problems,
        retry_problems,
        claimed_versions: HashMap::new(),
        steps: Vec::new(),
    };
    for r in refs {
        planner.decide(r);
    }
    planner.steps
}

/// One job's decisions so far, and what they are made from.
struct Planner<'a> {
    released: &'a [Released],
    problems: &'a HashMap<String, String>,
    retry_problems: bool,
    /// Each version a ref of this job already builds, with that ref (`tag "1.0"`).
    claimed_versions: HashMap<String, String>,
    steps: Vec<Step>,
}

impl Planner<'_> {
    fn decide(&mut self, r: &ResolvedRef) {
        match &r.target {
            Target::Missing => self.gone(r),
            Target::NotACommit { kind, id } => {
                let reason = format!("{} points at a {kind}, not a commit", r.describe());
                // Found by the scan, such a tag (git.git's `junio-gpg-pub`) is simply not a
                // release; named by a push, it is the push's problem to show.
                let step = if r.queued {
                    self.fail(r, id, reason)
                } else {
                    Step::Note(format!("skipped: {reason}"))
                };
                self.steps.push(step);
            }
            Target::Unreadable(error) => {
                let reason = format!("{} cannot be read: {error}", r.describe());
                let step = self.fail(r, "", reason);
                self.steps.push(step);
            }
            Target::Commit(commit) => self.at_commit(r, commit),
        }
    }

    /// The commit `r` failed at in an earlier job, if it did.
    fn failed_at(&self, r: &ResolvedRef) -> Option<&str> {
        self.problems.get(&r.full_name()).map(String::as_str)
    }

    /// `r` failed before at `commit` and waits for the ref to move (a rebuild tries it anyway).
    fn waits_at(&self, r: &ResolvedRef, commit: &str) -> bool {
        !self.retry_problems && self.failed_at(r) == Some(commit)
    }

    /// `r` fails at `commit`: a problem to record, or only a note when it failed there before.
    fn fail(&self, r: &ResolvedRef, commit: &str, reason: String) -> Step {
        if self.waits_at(r, commit) {
            // The reason is for admins (`/problems`); a public log only names the ref.
            Step::Note(format!(
                "{} failed before at this commit; it is tried again when it moves",
                r.describe()
            ))
        } else {
            Step::Fail(Failure {
                ref_name: r.full_name(),
                commit: commit.to_string(),
                reason,
            })
        }
    }

    /// A ref gone from the repository: its problem no longer holds, and its published
    /// releases are unpublished.
    fn gone(&mut self, r: &ResolvedRef) {
        if self.failed_at(r).is_some() {
            self.steps.push(Step::ClearProblem {
                ref_name: r.full_name(),
            });
        }
        let gone: Vec<String> = self
            .released
            .iter()
            .filter(|x| x.kind == r.kind && x.ref_name == r.name && x.published)
            .map(|release| release.version.clone())
            .collect();
        let had_releases = !gone.is_empty();
        self.steps
            .extend(gone.into_iter().map(|version| Step::Unpublish { version }));
        if r.queued || had_releases {
            self.steps.push(Step::Note(format!(
                "{} is not in the repository; nothing to release",
                r.describe()
            )));
        }
    }

    /// A ref at a commit: named as a version, then weighed against the project's releases.
    fn at_commit(&mut self, r: &ResolvedRef, commit: &CommitInfo) {
        if self.waits_at(r, &commit.id) {
            self.steps.push(Step::Note(format!(
                "{} failed before at {}; it is tried again when it moves",
                r.describe(),
                commit.id
            )));
            return;
        }
        let version = match r.kind {
            ReleaseKind::Tag => ReleaseVersion::from_tag(&r.name),
            ReleaseKind::Dev => ReleaseVersion::from_branch(&r.name),
        };
        let version = match version {
            Ok(version) => version,
            Err(e) => {
                let step = self.fail(r, &commit.id, e.to_string());
                self.steps.push(step);
                return;
            }
        };
        if let Some(reason) = self.version_refused(r, &version) {
            let step = self.fail(r, &commit.id, reason);
            self.steps.push(step);
            return;
        }
        self.claimed_versions
            .insert(version.version.clone(), r.describe());
        self.against_release(r, commit, version);
    }

    /// Why `r` may not be released as `version` in this job, if it may not.
    fn version_refused(&self, r: &ResolvedRef, version: &ReleaseVersion) -> Option<String> {
        if r.kind == ReleaseKind::Tag
            && let Some(branch) = version.version.strip_suffix("-dev")
        {
            return Some(format!(
                "tag {:?} would be version {}, the name of branch {branch:?}'s dev snapshot; \
                 versions ending in -dev are kept for dev snapshots",
                r.name, version.version
            ));
        }
        // Two refs of one job may name one version (`v1.0` and `1.0`): the first one builds,
        // the second fails, so a job never writes one version's files twice.
        self.claimed_versions.get(&version.version).map(|first| {
            format!(
                "version {} is also the version of {first} in this job; a version has one ref",
                version.version
            )
        })
    }

    /// A ref whose version is its own in this job, against the project's release of that
    /// version, if there is one: build, republish, keep, or fail.
    fn against_release(&mut self, r: &ResolvedRef, commit: &CommitInfo, version: ReleaseVersion) {
        let released = self.released;
        let existing = released.iter().find(|x| x.version == version.version);
        let step = match existing {
            Some(done) if done.kind != r.kind => self.fail(
                r,
                &commit.id,
                format!(
                    "version {} is already the {} release of {} {:?}; a tag release and a dev \
                     snapshot never share a version",
                    version.version,
                    done.kind.as_str(),
                    ref_noun(done.kind),
                    done.ref_name
                ),
            ),
            Some(done) if done.commit == commit.id => {
                if self.failed_at(r).is_some() {
                    self.steps.push(Step::ClearProblem {
                        ref_name: r.full_name(),
                    });
                }
                if done.published {
                    return;
                }
                Step::Republish {
                    version: version.version,
                }
            }
            Some(done) if r.kind == ReleaseKind::Tag => self.fail(
                r,
                &commit.id,
                format!(
                    "tag {:?} moved from {} to {}; its published release never changes, so it is kept",
                    r.name, done.commit, commit.id
                ),
            ),
            _ => Step::Build(Build {
                kind: r.kind,
                name: r.name.clone(),
                is_new: existing.is_none(),
                version,
                commit: commit.clone(),
            }),
        };
        self.steps.push(step);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(id: &str) -> CommitInfo {
        CommitInfo {
            id: id.into(),
            time: 1,
            summary: "s".into(),
        }
    }

    fn at(kind: ReleaseKind, name: &str, queued: bool, target: Target) -> ResolvedRef {
        ResolvedRef {
            kind,
            name: name.into(),
            queued,
            target,
        }
    }

    fn tag(name: &str, id: &str) -> ResolvedRef {
        at(ReleaseKind::Tag, name, false, Target::Commit(commit(id)))
    }

    fn released(version: &str, kind: ReleaseKind, ref_name: &str, id: &str) -> Released {
        Released {
            version: version.into(),
            kind,
            ref_name: ref_name.into(),
            commit: id.into(),
            published: true,
        }
    }

    fn builds(steps: &[Step]) -> Vec<String> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Build(b) => Some(b.version.version.clone()),
                _ => None,
            })
            .collect()
    }

    fn failures(steps: &[Step]) -> Vec<Failure> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Fail(f) => Some(f.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn odd_refs_fail_alone_and_the_others_build() {
        let refs = [
            tag("v1.0", "a"),
            at(
                ReleaseKind::Tag,
                "junio-gpg-pub",
                false,
                Target::NotACommit {
                    kind: "blob",
                    id: "b".into(),
                },
            ),
            tag("bad name!", "c"),
            tag("main-dev", "d"),
            at(ReleaseKind::Dev, "main", true, Target::Commit(commit("e"))),
        ];
        let steps = plan(&[], &HashMap::new(), &refs, false);
        assert_eq!(builds(&steps), ["1.0", "main-dev"]);
        let failed: Vec<String> = failures(&steps).into_iter().map(|f| f.ref_name).collect();
        assert_eq!(failed, ["refs/tags/bad name!", "refs/tags/main-dev"]);
        assert!(steps.iter().any(
            |s| matches!(s, Step::Note(n) if n.contains("junio-gpg-pub") && n.contains("blob"))
        ));
    }

    #[test]
    fn a_queued_tag_on_a_tree_is_a_problem() {
        let refs = [at(
            ReleaseKind::Tag,
            "v2.6.11-tree",
            true,
            Target::NotACommit {
                kind: "tree",
                id: "t".into(),
            },
        )];
        let failed = failures(&plan(&[], &HashMap::new(), &refs, false));
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].commit, "t");
    }

    #[test]
    fn a_problem_waits_for_its_ref_to_move() {
        let problems = HashMap::from([("refs/tags/0.9.0".to_string(), "a".to_string())]);
        let still = plan(&[], &problems, &[tag("0.9.0", "a")], false);
        assert!(builds(&still).is_empty() && failures(&still).is_empty());
        let moved = plan(&[], &problems, &[tag("0.9.0", "b")], false);
        assert_eq!(builds(&moved), ["0.9.0"]);
        let rebuild = plan(&[], &problems, &[tag("0.9.0", "a")], true);
        assert_eq!(builds(&rebuild), ["0.9.0"]);
    }

    #[test]
    fn a_dev_snapshot_never_replaces_a_tag_release() {
        let have = [released("main-dev", ReleaseKind::Tag, "main-dev", "a")];
        let refs = [at(
            ReleaseKind::Dev,
            "main",
            true,
            Target::Commit(commit("b")),
        )];
        let steps = plan(&have, &HashMap::new(), &refs, false);
        assert!(builds(&steps).is_empty());
        assert!(failures(&steps)[0].reason.contains("never share a version"));
    }

    #[test]
    fn a_moved_tag_keeps_its_release() {
        let have = [released("1.0", ReleaseKind::Tag, "v1.0", "a")];
        let steps = plan(&have, &HashMap::new(), &[tag("v1.0", "b")], false);
        assert!(builds(&steps).is_empty());
        assert!(failures(&steps)[0].reason.contains("moved from a to b"));
    }

    #[test]
    fn the_repository_decides_what_is_published() {
        let mut gone = released("1.0", ReleaseKind::Tag, "v1.0", "a");
        let mut back = released("2.0", ReleaseKind::Tag, "v2.0", "b");
        back.published = false;
        let dev = released("old-dev", ReleaseKind::Dev, "old", "c");
        gone.published = true;
        let refs = [
            at(ReleaseKind::Tag, "v1.0", true, Target::Missing),
            tag("v2.0", "b"),
            at(ReleaseKind::Dev, "old", false, Target::Missing),
        ];
        let steps = plan(&[gone, back, dev], &HashMap::new(), &refs, false);
        let changes: Vec<String> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Unpublish { version } => Some(format!("-{version}")),
                Step::Republish { version } => Some(format!("+{version}")),
                _ => None,
            })
            .collect();
        assert_eq!(changes, ["-1.0", "+2.0", "-old-dev"]);
    }

    #[test]
    fn two_refs_of_one_version_build_once() {
        let steps = plan(
            &[],
            &HashMap::new(),
            &[tag("1.0", "a"), tag("v1.0", "b")],
            false,
        );
        assert_eq!(builds(&steps), ["1.0"]);
        let failed = failures(&steps);
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].ref_name, "refs/tags/v1.0");
        assert!(failed[0].reason.contains("also the version of tag \"1.0\""));
    }

    #[test]
    fn released_refs_at_the_same_commit_do_nothing() {
        let have = [released("1.0", ReleaseKind::Tag, "v1.0", "a")];
        let steps = plan(&have, &HashMap::new(), &[tag("v1.0", "a")], false);
        assert!(steps.is_empty(), "{steps:?}");
    }

    /// Each step in a word or two, to assert the order of a plan.
    fn outline(steps: &[Step]) -> Vec<String> {
        steps
            .iter()
            .map(|s| match s {
                Step::Build(b) => format!("build {}", b.version.version),
                Step::Republish { version } => format!("+{version}"),
                Step::Unpublish { version } => format!("-{version}"),
                Step::Fail(f) => format!("fail {}", f.ref_name),
                Step::ClearProblem { ref_name } => format!("clear {ref_name}"),
                Step::Note(_) => "note".to_string(),
            })
            .collect()
    }

    #[test]
    fn a_gone_ref_clears_its_problem_and_unpublishes_its_release() {
        let problems = HashMap::from([("refs/tags/v1.0".to_string(), "a".to_string())]);
        let have = [released("1.0", ReleaseKind::Tag, "v1.0", "a")];
        let refs = [at(ReleaseKind::Tag, "v1.0", false, Target::Missing)];
        let steps = plan(&have, &problems, &refs, false);
        assert_eq!(outline(&steps), ["clear refs/tags/v1.0", "-1.0", "note"]);
    }

    #[test]
    fn a_scanned_ref_gone_without_releases_says_nothing() {
        let refs = [at(ReleaseKind::Dev, "old", false, Target::Missing)];
        assert!(plan(&[], &HashMap::new(), &refs, false).is_empty());
    }

    #[test]
    fn an_unreadable_ref_fails_alone() {
        let refs = [
            at(
                ReleaseKind::Tag,
                "v1.0",
                false,
                Target::Unreadable("object not found".into()),
            ),
            tag("v2.0", "b"),
        ];
        let steps = plan(&[], &HashMap::new(), &refs, false);
        assert_eq!(outline(&steps), ["fail refs/tags/v1.0", "build 2.0"]);
        let failed = failures(&steps);
        assert_eq!(failed[0].commit, "");
        assert!(
            failed[0]
                .reason
                .contains("cannot be read: object not found")
        );
    }

    #[test]
    fn a_released_ref_back_from_its_problem_only_clears_it() {
        let problems = HashMap::from([("refs/tags/v1.0".to_string(), "x".to_string())]);
        let have = [released("1.0", ReleaseKind::Tag, "v1.0", "a")];
        let steps = plan(&have, &problems, &[tag("v1.0", "a")], false);
        assert_eq!(outline(&steps), ["clear refs/tags/v1.0"]);
    }

    #[test]
    fn a_rebuild_of_a_failed_ref_fails_it_again_as_a_problem() {
        let problems = HashMap::from([("refs/tags/v1.0-dev".to_string(), "a".to_string())]);
        let refs = [tag("v1.0-dev", "a")];
        let waiting = plan(&[], &problems, &refs, false);
        assert_eq!(outline(&waiting), ["note"]);
        let rebuild = plan(&[], &problems, &refs, true);
        assert_eq!(outline(&rebuild), ["fail refs/tags/v1.0-dev"]);
    }
}
