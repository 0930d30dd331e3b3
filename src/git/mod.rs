//! Everything that touches git2 lives here, behind a small synchronous API. Callers run it on a
//! blocking thread (`spawn_blocking`); nothing else in baler imports git2.

pub mod demo;
mod fetch;
mod tree;

pub use fetch::{FetchRequest, fetch_in_child, run_fetch_child};

pub use tree::{BlobId, EntryKind, TreeItem, check_name, display_path};

use std::path::Path;

use std::path::PathBuf;

use git2::{
    AutotagOption, Cred, CredentialType, FetchOptions, FetchPrune, ObjectType, Oid,
    RemoteCallbacks, Repository,
};

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("the repository has an entry with an unsafe path: {0:?}")]
    UnsafePath(String),
    /// The fetch child connected to nothing, or received nothing, for the fetch time limit.
    #[error("{0}")]
    Timeout(String),
    /// The fetch child failed; its message says why.
    #[error("{0}")]
    Fetch(String),
    /// The job was told to stop (its claim is gone, or it ran out of time).
    #[error("stopped: the job's claim was given up")]
    Stopped,
}

/// A commit as packaging needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    pub id: String,
    /// Committer time, Unix seconds: the mtime of every archive entry and the release date.
    pub time: i64,
    pub summary: String,
}

/// One commit of a release's notes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogEntry {
    pub id: String,
    pub short: String,
    pub subject: String,
    pub author: String,
}

/// A commit's author or committer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub name: String,
    pub email: String,
    pub time: i64,
    /// The person's UTC offset, as git records it.
    pub offset_minutes: i32,
}

/// A commit as `git log --format` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitDetails {
    pub id: String,
    /// The shortest unique abbreviation (at least 7 characters).
    pub short: String,
    pub tree: String,
    pub tree_short: String,
    pub parents: Vec<String>,
    pub parents_short: Vec<String>,
    pub author: Person,
    pub committer: Person,
    pub message: String,
    /// `tag: v1.0`, `main`: the branches and tags at this commit, sorted.
    pub decorations: Vec<String>,
}

/// What a fetch transferred: a fresh clone receives every object, a later fetch only the new ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FetchStats {
    pub received_objects: usize,
    pub received_bytes: usize,
}

/// What a ref points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefTarget {
    Commit(CommitInfo),
    /// The ref does not exist (any more).
    Missing,
    /// The ref names a blob or a tree: nothing to release.
    NotACommit {
        kind: &'static str,
        id: String,
    },
}

/// What a resolved `--ref` turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefKind {
    Tag,
    Branch,
    Commit,
}

/// Credentials for a private repository. Nothing set: anonymous, as for public repositories.
/// (Serialised only to hand them to the fetch child on its standard input.)
#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct RemoteAuth {
    /// Smart HTTP: the user name sent with the token (hosts name their own; see the README).
    pub http_user: String,
    /// Smart HTTP: an access token, sent as the basic-auth password.
    pub token: Option<String>,
    /// SSH: a private key file; the user name comes from the URL (`git` when it has none).
    pub ssh_key: Option<PathBuf>,
    pub ssh_passphrase: Option<String>,
}

impl std::fmt::Debug for RemoteAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteAuth")
            .field("http_user", &self.http_user)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("ssh_key", &self.ssh_key)
            .finish()
    }
}

impl RemoteAuth {
    /// libgit2 asks for credentials each time the server refuses; each kind is offered once,
    /// so wrong credentials end in an authentication error instead of a loop. `activity` is
    /// called whenever the server says something (the fetch child's idle clock).
    fn callbacks<'a>(&'a self, activity: &'a (dyn Fn() + 'a)) -> RemoteCallbacks<'a> {
        let mut callbacks = RemoteCallbacks::new();
        let mut offered = CredentialType::empty();
        callbacks.transfer_progress(move |_| {
            activity();
            true
        });
        callbacks.sideband_progress(move |_| {
            activity();
            true
        });
        callbacks.update_tips(move |_, _, _| {
            activity();
            true
        });
        callbacks.credentials(move |_url, url_user, allowed| {
            activity();
            if allowed.contains(CredentialType::USER_PASS_PLAINTEXT)
                && !offered.contains(CredentialType::USER_PASS_PLAINTEXT)
                && let Some(token) = &self.token
            {
                offered |= CredentialType::USER_PASS_PLAINTEXT;
                return Cred::userpass_plaintext(&self.http_user, token);
            }
            if allowed.contains(CredentialType::SSH_KEY)
                && !offered.contains(CredentialType::SSH_KEY)
                && let Some(key) = &self.ssh_key
            {
                offered |= CredentialType::SSH_KEY;
                return Cred::ssh_key(
                    url_user.unwrap_or("git"),
                    None,
                    key,
                    self.ssh_passphrase.as_deref(),
                );
            }
            if allowed.contains(CredentialType::USERNAME) {
                return Cred::username(url_user.unwrap_or("git"));
            }
            Err(git2::Error::from_str(if offered.is_empty() {
                "the repository asks for credentials; set the project's `token` (HTTP) or `ssh_key` (SSH)"
            } else {
                "the repository refused the configured credentials"
            }))
        });
        callbacks
    }
}

/// Whether git accepts `name` (a full name such as `refs/tags/v1.0`) as a reference name, as
/// `git check-ref-format` does.
pub fn valid_ref_name(name: &str) -> bool {
    git2::Reference::is_valid_name(name)
}

/// A bare mirror of a project's repository under `data_dir/mirrors/`.
pub struct Mirror {
    repo: Repository,
}

/// libgit2's object cache keeps every tree and commit read, up to 256 MB per process. baler
/// reads each tree of a release once, so the cache would only cost memory (about 30 MB on
/// the 21,000-file benchmark); it is turned off before the first repository is opened.
fn configure_libgit2() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| git2::opts::enable_caching(false));
}

impl Mirror {
    /// Opens the mirror at `path`, or clones `url` into it the first time. The first clone goes
    /// to a temporary directory that is renamed into place, so a failed clone leaves nothing.
    /// Either way the mirror is then up to date; the figures say what the fetch cost.
    pub fn open_or_clone(
        path: &Path,
        url: &str,
        auth: &RemoteAuth,
    ) -> Result<(Mirror, FetchStats), GitError> {
        Mirror::open_or_clone_observed(path, url, auth, &|| {})
    }

    /// [`Mirror::open_or_clone`], calling `activity` whenever the server says something.
    pub fn open_or_clone_observed(
        path: &Path,
        url: &str,
        auth: &RemoteAuth,
        activity: &dyn Fn(),
    ) -> Result<(Mirror, FetchStats), GitError> {
        configure_libgit2();
        if path.join("HEAD").is_file() {
            let repo = Repository::open_bare(path)?;
            if repo.find_remote("origin")?.url().ok() != Some(url) {
                repo.remote_set_url("origin", url)?;
            }
            let mirror = Mirror { repo };
            let stats = mirror.fetch_observed(auth, activity)?;
            return Ok((mirror, stats));
        }
        let parent = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent)?;
        let staging = tempfile::Builder::new()
            .prefix(".clone-")
            .tempdir_in(parent)?;
        let stats = {
            let repo = Repository::init_bare(staging.path())?;
            repo.remote("origin", url)?;
            Mirror { repo }.fetch_observed(auth, activity)?
        };
        std::fs::rename(staging.keep(), path)?;
        let mirror = Mirror {
            repo: Repository::open_bare(path)?,
        };
        Ok((mirror, stats))
    }

    /// Opens an existing repository (bare or with a work tree) without fetching: what
    /// `baler package PATH` packages from.
    pub fn open(path: &Path) -> Result<Mirror, GitError> {
        configure_libgit2();
        Ok(Mirror {
            repo: Repository::open(path)?,
        })
    }

    /// Fetches all branches and tags, pruning refs the remote no longer has. Only objects the
    /// mirror lacks are transferred.
    pub fn fetch(&self, auth: &RemoteAuth) -> Result<FetchStats, GitError> {
        self.fetch_observed(auth, &|| {})
    }

    fn fetch_observed(
        &self,
        auth: &RemoteAuth,
        activity: &dyn Fn(),
    ) -> Result<FetchStats, GitError> {
        self.drop_refs_to_non_commits()?;
        let mut remote = self.repo.find_remote("origin")?;
        let mut options = FetchOptions::new();
        options
            .prune(FetchPrune::On)
            .download_tags(AutotagOption::None)
            .update_fetchhead(false)
            .remote_callbacks(auth.callbacks(activity));
        remote.fetch(
            &["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"],
            Some(&mut options),
            None,
        )?;
        let stats = remote.stats();
        Ok(FetchStats {
            received_objects: stats.received_objects(),
            received_bytes: stats.received_bytes(),
        })
    }

    /// Deletes the mirror's refs that name a blob or a tree. libgit2's local transport (file://
    /// and plain paths) hides every local ref from the pack it builds and fails on one that
    /// does not peel to a commit ("object is not a committish": `local.c` compares the error
    /// code with an error class), so one such tag would fail every later fetch. The fetch
    /// that follows writes them again, so the mirror still holds them for the job to see.
    fn drop_refs_to_non_commits(&self) -> Result<(), GitError> {
        let mut doomed: Vec<String> = Vec::new();
        for reference in self.repo.references()? {
            let reference = reference?;
            if reference.kind() != Some(git2::ReferenceType::Direct) {
                continue;
            }
            let names_a_commit = reference
                .peel(ObjectType::Any)
                .is_ok_and(|o| o.kind() == Some(ObjectType::Commit));
            if !names_a_commit && let Ok(name) = reference.name() {
                doomed.push(name.to_string());
            }
        }
        for name in doomed {
            self.repo.find_reference(&name)?.delete()?;
        }
        Ok(())
    }

    /// Resolves what `baler package --ref` names: a tag, then a branch, then any revision
    /// git understands (a commit id, `HEAD~2`).
    pub fn resolve(&self, name: &str) -> Result<Option<(RefKind, CommitInfo)>, GitError> {
        if let Some(commit) = self.tag_commit(name)? {
            return Ok(Some((RefKind::Tag, commit)));
        }
        if let Some(commit) = self.branch_commit(name)? {
            return Ok(Some((RefKind::Branch, commit)));
        }
        match self.repo.revparse_single(name) {
            Ok(object) => Ok(Some((
                RefKind::Commit,
                commit_info(&object.peel_to_commit()?),
            ))),
            Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Names of all tags in the mirror.
    pub fn tags(&self) -> Result<Vec<String>, GitError> {
        self.ref_names("refs/tags/")
    }

    /// Names of all branches in the mirror.
    pub fn branches(&self) -> Result<Vec<String>, GitError> {
        self.ref_names("refs/heads/")
    }

    fn ref_names(&self, prefix: &str) -> Result<Vec<String>, GitError> {
        let mut names = Vec::new();
        for reference in self.repo.references_glob(&format!("{prefix}*"))? {
            let reference = reference?;
            // Names that are not UTF-8 cannot name a release; they are left out.
            if let Some(name) = reference.name().ok().and_then(|n| n.strip_prefix(prefix)) {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    /// What the ref `full_name` (`refs/tags/v1.0`) points at, peeling annotated tags. A ref on
    /// a blob or a tree (git.git's `junio-gpg-pub`, Linux's `v2.6.11-tree`) is not an error:
    /// it is a ref that names no commit.
    pub fn ref_target(&self, full_name: &str) -> Result<RefTarget, GitError> {
        let reference = match self.repo.find_reference(full_name) {
            Ok(r) => r,
            Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(RefTarget::Missing),
            Err(e) => return Err(e.into()),
        };
        let object = reference.peel(ObjectType::Any)?;
        Ok(match object.kind() {
            Some(ObjectType::Commit) => RefTarget::Commit(commit_info(
                object.as_commit().expect("a commit object is a commit"),
            )),
            kind => RefTarget::NotACommit {
                kind: kind.map_or("unknown object", |k| k.str()),
                id: object.id().to_string(),
            },
        })
    }

    /// The commit at the tip of `branch`, if the branch exists.
    pub fn branch_commit(&self, branch: &str) -> Result<Option<CommitInfo>, GitError> {
        self.commit_of_ref(&format!("refs/heads/{branch}"))
    }

    /// The commit `tag` points at (annotated tags are peeled), if the tag exists.
    pub fn tag_commit(&self, tag: &str) -> Result<Option<CommitInfo>, GitError> {
        self.commit_of_ref(&format!("refs/tags/{tag}"))
    }

    fn commit_of_ref(&self, name: &str) -> Result<Option<CommitInfo>, GitError> {
        match self.ref_target(name)? {
            RefTarget::Commit(commit) => Ok(Some(commit)),
            RefTarget::Missing => Ok(None),
            RefTarget::NotACommit { kind, .. } => Err(GitError::Git(git2::Error::from_str(
                &format!("{name} points at a {kind}, not a commit"),
            ))),
        }
    }

    /// The commits reachable from `head` but not from `base` (all of `head`'s history when
    /// there is no base), newest first, at most `limit`; and how many there are in all.
    pub fn log_between(
        &self,
        base: Option<&str>,
        head: &str,
        limit: usize,
    ) -> Result<(Vec<LogEntry>, usize), GitError> {
        let mut walk = self.repo.revwalk()?;
        walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::TIME)?;
        walk.push(Oid::from_str(head)?)?;
        if let Some(base) = base {
            walk.hide(Oid::from_str(base)?)?;
        }
        let mut entries = Vec::new();
        let mut total = 0;
        for oid in walk {
            let oid = oid?;
            total += 1;
            if entries.len() < limit {
                let commit = self.repo.find_commit(oid)?;
                let id = oid.to_string();
                entries.push(LogEntry {
                    short: id[..10].to_string(),
                    id,
                    subject: String::from_utf8_lossy(commit.summary_bytes().unwrap_or_default())
                        .into_owned(),
                    author: String::from_utf8_lossy(commit.author().name_bytes()).into_owned(),
                });
            }
        }
        Ok((entries, total))
    }

    /// The content of the file at `path` in `commit`'s tree; `None` when there is no such
    /// file (or it is not a regular file).
    pub fn read_file(&self, commit: &str, path: &str) -> Result<Option<Vec<u8>>, GitError> {
        let tree = self.repo.find_commit(Oid::from_str(commit)?)?.tree()?;
        let entry = match tree.get_path(Path::new(path)) {
            Ok(entry) => entry,
            Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if entry.kind() != Some(ObjectType::Blob) || entry.filemode() == 0o120000 {
            return Ok(None);
        }
        Ok(Some(self.repo.find_blob(entry.id())?.content().to_vec()))
    }

    /// The id of `commit`'s tree: what provenance records beside the commit.
    pub fn tree_id(&self, commit: &str) -> Result<String, GitError> {
        Ok(self
            .repo
            .find_commit(Oid::from_str(commit)?)?
            .tree_id()
            .to_string())
    }

    /// What `$Format:…$` placeholders (the `export-subst` attribute) can expand to.
    pub fn commit_details(&self, commit: &str) -> Result<CommitDetails, GitError> {
        let oid = Oid::from_str(commit)?;
        let found = self.repo.find_commit(oid)?;
        let short = |object: git2::Object<'_>| -> Result<String, GitError> {
            Ok(String::from_utf8_lossy(&object.short_id()?).into_owned())
        };
        let mut decorations = Vec::new();
        for reference in self.repo.references()? {
            let reference = reference?;
            if reference.peel_to_commit().map(|c| c.id()).ok() != Some(oid) {
                continue;
            }
            if let Ok(name) = reference.name() {
                if let Some(tag) = name.strip_prefix("refs/tags/") {
                    decorations.push(format!("tag: {tag}"));
                } else if let Some(branch) = name.strip_prefix("refs/heads/") {
                    decorations.push(branch.to_string());
                }
            }
        }
        decorations.sort();
        let signature = |s: git2::Signature<'_>| Person {
            name: String::from_utf8_lossy(s.name_bytes()).into_owned(),
            email: String::from_utf8_lossy(s.email_bytes()).into_owned(),
            time: s.when().seconds(),
            offset_minutes: s.when().offset_minutes(),
        };
        Ok(CommitDetails {
            id: commit.to_string(),
            short: short(found.as_object().clone())?,
            tree: found.tree_id().to_string(),
            tree_short: short(found.tree()?.into_object())?,
            parents: found.parent_ids().map(|p| p.to_string()).collect(),
            parents_short: found
                .parents()
                .map(|p| short(p.into_object()))
                .collect::<Result<_, _>>()?,
            author: signature(found.author()),
            committer: signature(found.committer()),
            message: String::from_utf8_lossy(found.message_bytes()).into_owned(),
            decorations,
        })
    }
}

fn commit_info(commit: &git2::Commit<'_>) -> CommitInfo {
    CommitInfo {
        id: commit.id().to_string(),
        time: commit.committer().when().seconds(),
        summary: String::from_utf8_lossy(commit.summary_bytes().unwrap_or_default()).into_owned(),
    }
}
