//! Everything that touches git2 lives here, behind a small synchronous API. Callers run it on a
//! blocking thread (`spawn_blocking`); nothing else in baler imports git2.

pub mod demo;

use std::path::Path;

use git2::{AutotagOption, FetchOptions, FetchPrune, ObjectType, Oid, Repository};

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

/// One entry of a tree walk. `data` is the blob (the link target for symlinks, empty for dirs).
pub struct TreeEntry<'a> {
    /// Path relative to the tree root, `/`-separated, without a trailing slash.
    pub path: &'a str,
    pub kind: EntryKind,
    pub data: &'a [u8],
}

/// A bare mirror of a project's repository under `data_dir/mirrors/`.
pub struct Mirror {
    repo: Repository,
}

impl Mirror {
    /// Opens the mirror at `path`, or clones `url` into it the first time. The first clone goes
    /// to a temporary directory that is renamed into place, so a failed clone leaves nothing.
    pub fn open_or_clone(path: &Path, url: &str) -> Result<Mirror, GitError> {
        if path.join("HEAD").is_file() {
            let repo = Repository::open_bare(path)?;
            if repo.find_remote("origin")?.url().ok() != Some(url) {
                repo.remote_set_url("origin", url)?;
            }
            let mirror = Mirror { repo };
            mirror.fetch()?;
            return Ok(mirror);
        }
        let parent = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent)?;
        let staging = tempfile::Builder::new()
            .prefix(".clone-")
            .tempdir_in(parent)?;
        {
            let repo = Repository::init_bare(staging.path())?;
            repo.remote("origin", url)?;
            Mirror { repo }.fetch()?;
        }
        std::fs::rename(staging.keep(), path)?;
        Ok(Mirror {
            repo: Repository::open_bare(path)?,
        })
    }

    /// Fetches all branches and tags, pruning refs the remote no longer has.
    pub fn fetch(&self) -> Result<(), GitError> {
        let mut remote = self.repo.find_remote("origin")?;
        let mut options = FetchOptions::new();
        options
            .prune(FetchPrune::On)
            .download_tags(AutotagOption::None)
            .update_fetchhead(false);
        remote.fetch(
            &["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"],
            Some(&mut options),
            None,
        )?;
        Ok(())
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

    /// Walks the tree of `commit` in git's order (a directory before its contents, names
    /// sorted as git sorts them), skipping submodules as `git archive` does.
    pub fn walk_tree(
        &self,
        commit: &str,
        visit: &mut dyn FnMut(TreeEntry<'_>) -> Result<(), GitError>,
    ) -> Result<(), GitError> {
        let commit = self.repo.find_commit(Oid::from_str(commit)?)?;
        let tree = commit.tree()?;
        let mut path = String::new();
        self.walk(&tree, &mut path, visit)
    }

    fn walk(
        &self,
        tree: &git2::Tree<'_>,
        path: &mut String,
        visit: &mut dyn FnMut(TreeEntry<'_>) -> Result<(), GitError>,
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
                    visit(TreeEntry {
                        path,
                        kind: EntryKind::Directory,
                        data: &[],
                    })?;
                    let subtree = self.repo.find_tree(entry.id())?;
                    path.push('/');
                    self.walk(&subtree, path, visit)?;
                }
                Some(ObjectType::Blob) => {
                    let blob = self.repo.find_blob(entry.id())?;
                    let kind = if mode == 0o120000 {
                        EntryKind::Symlink
                    } else {
                        EntryKind::File {
                            executable: mode & 0o111 != 0,
                        }
                    };
                    visit(TreeEntry {
                        path,
                        kind,
                        data: blob.content(),
                    })?;
                }
                // Gitlinks (submodules) have no content in this repository.
                _ => {}
            }
            path.truncate(parent_len);
        }
        Ok(())
    }
}

fn commit_info(commit: &git2::Commit<'_>) -> CommitInfo {
    CommitInfo {
        id: commit.id().to_string(),
        time: commit.committer().when().seconds(),
        summary: String::from_utf8_lossy(commit.summary_bytes().unwrap_or_default()).into_owned(),
    }
}
