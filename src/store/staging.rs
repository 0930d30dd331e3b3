//! Staging: a file is written under a temporary name beside its final place and committed by
//! a rename, so a reader sees either the old file or the whole new one, never a half-written
//! one.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// Files are staged under this prefix and renamed to their final name when complete.
pub(super) const TEMP_PREFIX: &str = ".building-";

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

    /// Stages in `dir` under the prefix of the job holding `claim`.
    pub(super) fn for_claim(dir: PathBuf, claim: &str) -> Staging {
        Staging {
            dir,
            prefix: format!("{TEMP_PREFIX}{claim}-"),
        }
    }

    /// Whether `file_name` is a file staged here (as opposed to by another claim).
    pub(super) fn holds(&self, file_name: &str) -> bool {
        file_name.starts_with(&self.prefix)
    }

    /// A new, empty staged file, removed when dropped unless it is committed.
    pub fn stage(&self) -> io::Result<StagedFile> {
        std::fs::create_dir_all(&self.dir)?;
        let mut builder = tempfile::Builder::new();
        builder.prefix(&self.prefix);
        // tempfile creates files 0600, and a rename keeps the mode: without this, published
        // files could not be read by a web server or an rsync mirror in front of `data_dir`.
        // The mode goes to open(2), so the umask applies as it does to any new file.
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
        let temp = builder.tempfile_in(&self.dir)?;
        Ok(StagedFile {
            dir: self.dir.clone(),
            temp,
        })
    }
}

/// A file being written under a temporary name in its final directory. Dropped, it is
/// removed; committed, it takes its final name.
#[derive(Debug)]
pub struct StagedFile {
    dir: PathBuf,
    temp: tempfile::NamedTempFile,
}

impl StagedFile {
    /// A handle to write the file through, which can go to another thread while this one
    /// stays to commit or remove it.
    pub fn writer(&self) -> io::Result<File> {
        self.temp.as_file().try_clone()
    }

    /// The directory the file is staged in, and takes its final name in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file's temporary path.
    pub fn path(&self) -> &Path {
        self.temp.path()
    }

    /// Renames the file to `name` in its directory, replacing an older file of that name, and
    /// makes the rename durable before returning the final path (the database may say next
    /// that the file exists).
    pub fn commit(self, name: &str) -> io::Result<PathBuf> {
        let target = self.dir.join(name);
        self.temp.persist(&target).map_err(|e| e.error)?;
        File::open(&self.dir)?.sync_all()?;
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::Staging;

    #[test]
    fn a_committed_file_takes_its_name_with_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let staged = Staging::in_dir(dir.path().join("out")).stage().unwrap();
        let temp_path = staged.path().to_path_buf();
        staged.writer().unwrap().write_all(b"archive").unwrap();
        let path = staged.commit("widget-1.0.0.zip").unwrap();
        assert_eq!(path, dir.path().join("out/widget-1.0.0.zip"));
        assert_eq!(std::fs::read(&path).unwrap(), b"archive");
        assert!(!temp_path.exists());
    }

    #[test]
    fn a_dropped_file_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let staging = Staging::for_claim(dir.path().to_path_buf(), "token");
        let staged = staging.stage().unwrap();
        let name = staged
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(name.starts_with(".building-token-") && staging.holds(&name));
        drop(staged);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
