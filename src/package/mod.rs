//! Packaging: one walk of the git tree at a commit feeds every archive writer, with the top
//! directory of the project's layout and drupal.org's `.info` rewrite applied on the way.

pub mod archive;
pub mod drupal;
pub mod version;

use std::io::Read;
use std::path::Path;

use chrono::DateTime;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::config::{ArchiveFormat, Layout};
use crate::git::{CommitInfo, EntryKind, GitError, Mirror};
use archive::{ArchiveEntry, ArchiveWriter, TarGzWriter, ZipArchiveWriter};
pub use version::{ReleaseKind, ReleaseVersion};

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("writing the archive: {0}")]
    Io(#[from] std::io::Error),
}

/// What to build: whose archives, which version, which layout and formats.
pub struct PackageSpec<'a> {
    pub project: &'a str,
    pub version: &'a ReleaseVersion,
    pub layout: Layout,
    pub formats: &'a [ArchiveFormat],
}

impl PackageSpec<'_> {
    /// `NAME/` for the drupal layout, `NAME-VERSION/` for plain.
    pub fn top_dir(&self) -> String {
        match self.layout {
            Layout::Drupal => self.project.to_string(),
            Layout::Plain => format!("{}-{}", self.project, self.version.version),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksums {
    pub size: u64,
    pub sha256: String,
    pub sha1: String,
    pub md5: String,
}

impl Checksums {
    /// Reads `path` once, feeding all three digests.
    pub fn of_file(path: &Path) -> std::io::Result<Checksums> {
        let mut file = std::fs::File::open(path)?;
        let (mut sha256, mut sha1, mut md5) = (Sha256::new(), Sha1::new(), md5::Md5::new());
        let mut size = 0u64;
        let mut buffer = vec![0u8; 256 * 1024];
        loop {
            let n = file.read(&mut buffer)?;
            if n == 0 {
                break;
            }
            size += n as u64;
            sha256.update(&buffer[..n]);
            sha1.update(&buffer[..n]);
            md5.update(&buffer[..n]);
        }
        Ok(Checksums {
            size,
            sha256: hex::encode(sha256.finalize()),
            sha1: hex::encode(sha1.finalize()),
            md5: hex::encode(md5.finalize()),
        })
    }
}

/// A finished archive in a temporary file beside its final place; the store renames it in.
pub struct BuiltArchive {
    pub format: ArchiveFormat,
    pub name: String,
    pub file: tempfile::TempPath,
    pub checksums: Checksums,
}

/// Builds every requested format of `commit` into temporary files in `staging_dir`.
/// Nothing is left behind on error: the temporary files are removed when dropped.
pub fn build_archives(
    mirror: &Mirror,
    commit: &CommitInfo,
    spec: &PackageSpec<'_>,
    staging_dir: &Path,
) -> Result<Vec<BuiltArchive>, PackageError> {
    std::fs::create_dir_all(staging_dir)?;
    let mut temps = Vec::new();
    let mut writers: Vec<Box<dyn ArchiveWriter>> = Vec::new();
    for format in spec.formats {
        let temp = tempfile::Builder::new()
            .prefix(crate::store::TEMP_PREFIX)
            .tempfile_in(staging_dir)?;
        let file = temp.reopen()?;
        writers.push(match format {
            ArchiveFormat::TarGz => Box::new(TarGzWriter::new(file, commit.time)),
            ArchiveFormat::Zip => Box::new(ZipArchiveWriter::new(file, commit.time)),
        });
        temps.push((*format, temp.into_temp_path()));
    }

    let top = spec.top_dir();
    let date = DateTime::from_timestamp(commit.time, 0)
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string();
    let mut add = |path: &str, kind: EntryKind, data: &[u8]| -> std::io::Result<()> {
        let entry = ArchiveEntry { path, kind, data };
        writers.iter_mut().try_for_each(|w| w.add(&entry))
    };
    add(&top, EntryKind::Directory, &[])?;
    let mut full = String::new();
    mirror.walk_tree(&commit.id, &mut |entry| {
        full.clear();
        full.push_str(&top);
        full.push('/');
        full.push_str(entry.path);
        let rewritten;
        let data = if spec.layout == Layout::Drupal
            && matches!(entry.kind, EntryKind::File { .. })
            && drupal::is_info_file(entry.path)
        {
            rewritten = drupal::rewrite_info(
                entry.path,
                entry.data,
                spec.project,
                &spec.version.version,
                &date,
                commit.time,
            );
            &rewritten[..]
        } else {
            entry.data
        };
        add(&full, entry.kind, data).map_err(GitError::Io)
    })?;
    for writer in writers {
        writer.finish()?;
    }

    temps
        .into_iter()
        .map(|(format, file)| {
            Ok(BuiltArchive {
                format,
                name: spec.version.file_name(spec.project, format.extension()),
                checksums: Checksums::of_file(&file)?,
                file,
            })
        })
        .collect()
}
