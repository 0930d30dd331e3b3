//! The tree at a commit, as archives see it: every entry in git's order, and the bytes of each
//! file. Packaging reads trees only through this listing.
//!
//! Paths are bytes, as git stores them: a name may hold a backslash or bytes that are not
//! UTF-8, and `git archive` packages it as it is, so baler does too. Only a name that could
//! step out of the archive's top directory is refused (see [`check_name`]).

use git2::{ErrorClass, ErrorCode, ObjectType, Oid};

use super::{GitError, Mirror};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Directory,
    File { executable: bool },
    Symlink,
}

/// One entry of a tree listing.
#[derive(Debug, Clone)]
pub struct TreeItem {
    /// Path relative to the tree root, `/`-separated, without a trailing slash; the bytes git
    /// stores (not necessarily UTF-8).
    pub path: Vec<u8>,
    pub kind: EntryKind,
    /// Read the content with [`Mirror::blob`] (not for directories).
    pub blob: BlobId,
}

/// A blob of the mirror, opaque outside this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobId(Oid);

/// A path of the tree for messages and logs: as it is when it is UTF-8, otherwise with the
/// other bytes escaped (`\xff`), so a message never carries raw bytes.
pub fn display_path(path: &[u8]) -> String {
    match std::str::from_utf8(path) {
        Ok(text) => text.to_string(),
        Err(_) => path.escape_ascii().to_string(),
    }
}

/// Refuses a tree entry name that would not stay one path component below its directory:
/// empty, `.`, `..`, or holding a `/` or a NUL. git itself never writes these, but a crafted
/// tree object can hold them, and an archive must never let them escape its top directory.
/// Everything else (a backslash, bytes that are not UTF-8, spaces, newlines) is a name like any
/// other, as it is to `git archive`.
pub fn check_name(name: &[u8]) -> bool {
    !(name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0))
}

impl GitError {
    /// Whether the same commit would fail the same way again: the tree itself is bad (an
    /// unsafe path, an object that is missing or does not parse), so retrying cannot help
    /// until the ref moves. Everything else (I/O, the network, memory) may pass: transient.
    ///
    /// (Kept beside the tree listing, whose failures are the permanent ones.)
    pub fn is_permanent(&self) -> bool {
        match self {
            GitError::UnsafePath(_) => true,
            GitError::Git(e) => matches!(
                (e.class(), e.code()),
                (
                    ErrorClass::Object | ErrorClass::Tree | ErrorClass::Zlib | ErrorClass::Invalid,
                    _
                ) | (ErrorClass::Odb, ErrorCode::NotFound)
            ),
            // I/O, time limits, a failed fetch, a stop: another attempt may pass.
            _ => false,
        }
    }
}

impl TreeItem {
    /// [`TreeItem::path`] for messages (see [`display_path`]).
    pub fn display_path(&self) -> String {
        display_path(&self.path)
    }
}

impl Mirror {
    /// Every entry of `commit`'s tree in git's order (a directory before its contents, names
    /// sorted as git sorts them), without reading any file: a submodule (gitlink) is an empty
    /// directory, as `git archive` writes it, and a name that could escape the archive's top
    /// directory (see [`check_name`]) fails the listing with [`GitError::UnsafePath`].
    pub fn list_tree(&self, commit: &str) -> Result<Vec<TreeItem>, GitError> {
        let tree = self.repo.find_commit(Oid::from_str(commit)?)?.tree()?;
        let mut items = Vec::new();
        self.list(&tree, &mut Vec::new(), &mut items)?;
        Ok(items)
    }

    fn list(
        &self,
        tree: &git2::Tree<'_>,
        path: &mut Vec<u8>,
        items: &mut Vec<TreeItem>,
    ) -> Result<(), GitError> {
        for entry in tree.iter() {
            let name = entry.name_bytes();
            let parent_len = path.len();
            path.extend_from_slice(name);
            if !check_name(name) {
                return Err(GitError::UnsafePath(display_path(path)));
            }
            let mode = entry.filemode();
            match entry.kind() {
                Some(ObjectType::Tree) => {
                    items.push(TreeItem {
                        path: path.clone(),
                        kind: EntryKind::Directory,
                        blob: BlobId(entry.id()),
                    });
                    let subtree = self.repo.find_tree(entry.id())?;
                    path.push(b'/');
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
    ///
    /// libgit2 inflates the whole blob into its own buffer, and the copy returned here must
    /// outlive it (the buffer belongs to this thread's repository): for a moment a blob is
    /// held twice. The object cache is off, so the buffer is freed on return.
    pub fn blob(&self, id: BlobId) -> Result<Vec<u8>, GitError> {
        Ok(self.repo.find_blob(id.0)?.content().to_vec())
    }

    /// Lends the bytes of a blob to `read`, without a copy: for a large file, the only whole
    /// copy is libgit2's own buffer, freed when `read` returns.
    pub fn with_blob<R>(&self, id: BlobId, read: impl FnOnce(&[u8]) -> R) -> Result<R, GitError> {
        let blob = self.repo.find_blob(id.0)?;
        Ok(read(blob.content()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_stay_inside_pass() {
        for good in [
            &b"a"[..],
            b"a\\b",
            b"\xff\xfe",
            b"...",
            b".git",
            b" ",
            b"a\nb",
            "é".as_bytes(),
        ] {
            assert!(check_name(good), "{good:?}");
        }
        for bad in [&b""[..], b".", b"..", b"a/b", b"/", b"a\0b"] {
            assert!(!check_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn paths_display_without_raw_bytes() {
        assert_eq!(display_path("naïve/a\\b".as_bytes()), "naïve/a\\b");
        assert_eq!(display_path(b"bad\xff/x"), "bad\\xff/x");
    }
}
