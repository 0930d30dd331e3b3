//! Everything that touches git2 lives here, behind a small synchronous API. Callers run it on a
//! blocking thread (`spawn_blocking`); nothing else in baler imports git2.

pub mod demo;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Directory,
    File { executable: bool },
    Symlink,
}

/// One entry of a tree listing.
#[derive(Debug, Clone)]
pub struct TreeItem {
    /// Path relative to the tree root, `/`-separated, without a trailing slash.
    pub path: String,
    pub kind: EntryKind,
    /// Read the content with [`Mirror::blob`] (not for directories).
    pub blob: BlobId,
}

/// A blob of the mirror, opaque outside this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobId(Oid);

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchStats {
    pub received_objects: usize,
    pub received_bytes: usize,
}

/// What a resolved `--ref` turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefKind {
    Tag,
    Branch,
    Commit,
}

/// Credentials for a private repository. Nothing set: anonymous, as for public repositories.
#[derive(Clone, Default)]
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
    /// so wrong credentials end in an authentication error instead of a loop.
    fn callbacks(&self) -> RemoteCallbacks<'_> {
        let mut callbacks = RemoteCallbacks::new();
        let mut offered = CredentialType::empty();
        callbacks.credentials(move |_url, url_user, allowed| {
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
        configure_libgit2();
        if path.join("HEAD").is_file() {
            let repo = Repository::open_bare(path)?;
            if repo.find_remote("origin")?.url().ok() != Some(url) {
                repo.remote_set_url("origin", url)?;
            }
            let mirror = Mirror { repo };
            let stats = mirror.fetch(auth)?;
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
            Mirror { repo }.fetch(auth)?
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
        let mut remote = self.repo.find_remote("origin")?;
        let mut options = FetchOptions::new();
        options
            .prune(FetchPrune::On)
            .download_tags(AutotagOption::None)
            .update_fetchhead(false)
            .remote_callbacks(auth.callbacks());
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

    /// The commit at the tip of `branch`, if the branch exists.
    pub fn branch_commit(&self, branch: &str) -> Result<Option<CommitInfo>, GitError> {
        self.commit_of_ref(&format!("refs/heads/{branch}"))
    }

    /// The commit `tag` points at (annotated tags are peeled), if the tag exists.
    pub fn tag_commit(&self, tag: &str) -> Result<Option<CommitInfo>, GitError> {
        self.commit_of_ref(&format!("refs/tags/{tag}"))
    }

    fn commit_of_ref(&self, name: &str) -> Result<Option<CommitInfo>, GitError> {
        let reference = match self.repo.find_reference(name) {
            Ok(r) => r,
            Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let commit = reference.peel_to_commit()?;
        Ok(Some(commit_info(&commit)))
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

    /// Every entry of `commit`'s tree in git's order (a directory before its contents, names
    /// sorted as git sorts them), without reading any file: a submodule (gitlink) is an empty
    /// directory, as `git archive` writes it, and a name that could escape the archive's top
    /// directory (`..`, a slash, a NUL) fails the listing.
    pub fn list_tree(&self, commit: &str) -> Result<Vec<TreeItem>, GitError> {
        let tree = self.repo.find_commit(Oid::from_str(commit)?)?.tree()?;
        let mut items = Vec::new();
        self.list(&tree, &mut String::new(), &mut items)?;
        Ok(items)
    }

    fn list(
        &self,
        tree: &git2::Tree<'_>,
        path: &mut String,
        items: &mut Vec<TreeItem>,
    ) -> Result<(), GitError> {
        for entry in tree.iter() {
            let name = std::str::from_utf8(entry.name_bytes()).map_err(|_| {
                GitError::UnsafePath(String::from_utf8_lossy(entry.name_bytes()).into())
            })?;
            if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
                return Err(GitError::UnsafePath(format!("{path}{name}")));
            }
            let parent_len = path.len();
            path.push_str(name);
            let mode = entry.filemode();
            match entry.kind() {
                Some(ObjectType::Tree) => {
                    items.push(TreeItem {
                        path: path.clone(),
                        kind: EntryKind::Directory,
                        blob: BlobId(entry.id()),
                    });
                    let subtree = self.repo.find_tree(entry.id())?;
                    path.push('/');
                    self.list(&subtree, path, items)?;
                }
                Some(ObjectType::Blob) => items.push(TreeItem {
                    path: path.clone(),
                    kind: if mode == 0o120000 {
                        EntryKind::Symlink
                    } else {
                        EntryKind::File {
                            executable: mode & 0o111 != 0,
                        }
                    },
                    blob: BlobId(entry.id()),
                }),
                // A gitlink (submodule) has no content in this repository; `git archive`
                // writes it as an empty directory, and so does baler.
                Some(ObjectType::Commit) => items.push(TreeItem {
                    path: path.clone(),
                    kind: EntryKind::Directory,
                    blob: BlobId(entry.id()),
                }),
                _ => {}
            }
            path.truncate(parent_len);
        }
        Ok(())
    }

    /// The bytes of a file (or a symlink's target) listed by [`Mirror::list_tree`].
    pub fn blob(&self, id: BlobId) -> Result<Vec<u8>, GitError> {
        Ok(self.repo.find_blob(id.0)?.content().to_vec())
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
