//! The local store: files under `data_dir/files/{project}/`. They are staged beside their final
//! place and renamed in, so a reader sees either the old file or the whole new one, never a
//! half-written one.

use std::path::PathBuf;

use super::{
    ArtifactStore, Located, StagedFile, Staging, StoreError, TEMP_PREFIX, Upload, UploadKind,
    is_plain_name,
};

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
        Staging::for_claim(self.project_dir(project), claim)
    }

    /// Moves a file staged for `project` to its final `name`, replacing an older file of that
    /// name; see [`StagedFile::commit`].
    pub fn publish(&self, project: &str, name: &str, file: StagedFile) -> std::io::Result<PathBuf> {
        debug_assert_eq!(
            file.dir(),
            self.project_dir(project),
            "staged for {project}"
        );
        file.commit(name)
    }

    /// The path of a published file, if `name` is a plain file name.
    pub fn path_of(&self, project: &str, name: &str) -> Option<PathBuf> {
        is_plain_name(name).then(|| self.project_dir(project).join(name))
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
            if name.starts_with(TEMP_PREFIX) && !keep.holds(&name) {
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

#[async_trait::async_trait]
impl ArtifactStore for LocalStore {
    fn describe(&self) -> String {
        format!("local directory {}", self.root.display())
    }

    async fn check(&self) -> Result<(), StoreError> {
        std::fs::create_dir_all(&self.root).map_err(StoreError::io(format!(
            "cannot create the files directory {}",
            self.root.display()
        )))
    }

    fn staging(&self, project: &str, claim: &str) -> Staging {
        LocalStore::staging(self, project, claim)
    }

    async fn upload(&self, _project: &str, file: StagedFile) -> Result<Upload, StoreError> {
        // Already beside its final place: publishing is a rename.
        Ok(Upload(UploadKind::Staged(file)))
    }

    async fn publish(&self, project: &str, name: &str, upload: Upload) -> Result<(), StoreError> {
        let Upload(UploadKind::Staged(file)) = upload else {
            unreachable!("the local store makes only staged uploads")
        };
        // A rename and a directory sync, done here rather than on a blocking thread of its
        // own: if the job is dropped, no rename can land after the fence is gone.
        LocalStore::publish(self, project, name, file)
            .map(drop)
            .map_err(StoreError::io(format!("publishing {name}")))
    }

    async fn discard(&self, upload: Upload) {
        // Dropping a staged file removes it.
        drop(upload);
    }

    async fn remove(&self, project: &str, name: &str) -> Result<(), StoreError> {
        LocalStore::remove(self, project, name).map_err(StoreError::io(format!("removing {name}")))
    }

    async fn remove_temp_files_except(
        &self,
        project: &str,
        keep: &Staging,
    ) -> Result<usize, StoreError> {
        LocalStore::remove_temp_files_except(self, project, keep).map_err(StoreError::io(
            "removing half-written archives of stopped workers",
        ))
    }

    fn locate(&self, project: &str, name: &str) -> Option<Located> {
        self.path_of(project, name).map(Located::File)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::LocalStore;

    fn publish(store: &LocalStore, claim: &str, name: &str) -> std::path::PathBuf {
        let staged = store.staging("widget", claim).stage().unwrap();
        staged.writer().unwrap().write_all(name.as_bytes()).unwrap();
        store.publish("widget", name, staged).unwrap()
    }

    /// A web server or an rsync mirror in front of `data_dir` can read what is published:
    /// the file gets the mode any new file gets, not its temporary file's 0600.
    #[cfg(unix)]
    #[test]
    fn a_published_file_is_readable_by_others() {
        use std::os::unix::fs::PermissionsExt;

        let mode =
            |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        let root = tempfile::tempdir().unwrap();
        let store = LocalStore::new(root.path().join("files"));
        let path = publish(&store, "claim", "widget-1.0.0.zip");
        assert_eq!(
            Some(path.clone()),
            store.path_of("widget", "widget-1.0.0.zip")
        );
        let reference = root.path().join("reference");
        std::fs::File::create(&reference).unwrap();
        assert_eq!(mode(&path), mode(&reference) & 0o644);
        if mode(&reference) & 0o044 == 0o044 {
            assert_eq!(mode(&path) & 0o044, 0o044, "under the usual umask");
        }
    }

    #[test]
    fn cleanup_removes_only_other_claims_staged_files() {
        let root = tempfile::tempdir().unwrap();
        let store = LocalStore::new(root.path().join("files"));
        assert_eq!(
            store
                .remove_temp_files_except("widget", &store.staging("widget", "mine"))
                .unwrap(),
            0,
            "no directory yet"
        );
        let published = publish(&store, "mine", "widget-1.0.0.zip");
        let mine = store.staging("widget", "mine");
        let own = mine.stage().unwrap();
        // What a dead worker leaves: a staged file nobody drops.
        let stalled_path = store.project_dir("widget").join(".building-stalled-x1y2z3");
        std::fs::write(&stalled_path, b"half").unwrap();
        assert_eq!(store.remove_temp_files_except("widget", &mine).unwrap(), 1);
        assert!(!stalled_path.exists());
        assert!(own.path().exists() && published.exists());
    }
}
