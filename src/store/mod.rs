//! Artifact storage. Files are built beside their final place and renamed in, so a reader sees
//! either the old file or the whole new one, never a half-written one.

use std::path::PathBuf;

use crate::package::BuiltArchive;

/// Archives are built under this prefix and renamed to their final name when complete.
pub const TEMP_PREFIX: &str = ".building-";

/// Where a build writes its files before they are published: a directory beside their final
/// place (so the rename is atomic) and a name prefix. The worker's prefix names its claim,
/// so the cleanup of one claim never touches another claim's files.
#[derive(Debug, Clone)]
pub struct Staging {
    dir: PathBuf,
    prefix: String,
}

impl Staging {
    /// Stages in `dir` under the plain prefix (`baler package --out`).
    pub fn in_dir(dir: PathBuf) -> Staging {
        Staging {
            dir,
            prefix: TEMP_PREFIX.to_string(),
        }
    }

    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// A new temporary file, removed when dropped unless it is persisted.
    pub fn temp_file(&self) -> std::io::Result<tempfile::NamedTempFile> {
        std::fs::create_dir_all(&self.dir)?;
        tempfile::Builder::new()
            .prefix(&self.prefix)
            .tempfile_in(&self.dir)
    }
}

#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// A store rooted at `data_dir/files`.
    pub fn new(root: PathBuf) -> LocalStore {
        LocalStore { root }
    }

    /// The directory of `project`'s files; archives are staged here so the rename is atomic.
    pub fn project_dir(&self, project: &str) -> PathBuf {
        self.root.join(project)
    }

    /// Where a job holding `claim` stages `project`'s files.
    pub fn staging(&self, project: &str, claim: &str) -> Staging {
        Staging {
            dir: self.project_dir(project),
            prefix: format!("{TEMP_PREFIX}{claim}-"),
        }
    }

    /// Moves a built archive to its final name, replacing an older file of the same name.
    pub fn publish(&self, project: &str, archive: BuiltArchive) -> std::io::Result<PathBuf> {
        let dir = self.project_dir(project);
        std::fs::create_dir_all(&dir)?;
        let target = dir.join(&archive.name);
        archive.file.persist(&target).map_err(|e| e.error)?;
        // Make the rename itself durable before the database says the file exists.
        std::fs::File::open(&dir)?.sync_all()?;
        Ok(target)
    }

    /// The path of a published file, if `name` is a plain file name.
    pub fn path_of(&self, project: &str, name: &str) -> Option<PathBuf> {
        let plain = !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\', '\0']);
        plain.then(|| self.project_dir(project).join(name))
    }

    /// Removes the half-written files of every other claim in `project`'s directory: those a
    /// dead or stalled worker left. Only call it while the claim that owns `keep` holds the
    /// project (inside its fence): no other job of the project can be writing then.
    pub fn remove_temp_files_except(
        &self,
        project: &str,
        keep: &Staging,
    ) -> std::io::Result<usize> {
        let mut removed = 0;
        let entries = match std::fs::read_dir(self.project_dir(project)) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(TEMP_PREFIX) && !name.starts_with(&keep.prefix) {
                match std::fs::remove_file(entry.path()) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => removed += 1,
                }
            }
        }
        Ok(removed)
    }

    pub fn remove(&self, project: &str, name: &str) -> std::io::Result<()> {
        match self.path_of(project, name) {
            Some(path) => match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
            None => Ok(()),
        }
    }
}
