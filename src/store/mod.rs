//! Artifact storage. Files are built beside their final place and renamed in, so a reader sees
//! either the old file or the whole new one, never a half-written one.

use std::path::PathBuf;

use crate::package::BuiltArchive;

/// Archives are built under this prefix and renamed to their final name when complete.
pub const TEMP_PREFIX: &str = ".building-";

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

    /// Removes archives a dead worker left half-written in `project`'s directory. Only call it
    /// while holding the project's claim: no other job of the project can be writing then.
    pub fn remove_stale_temp_files(&self, project: &str) -> std::io::Result<usize> {
        let mut removed = 0;
        let entries = match std::fs::read_dir(self.project_dir(project)) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                std::fs::remove_file(entry.path())?;
                removed += 1;
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
