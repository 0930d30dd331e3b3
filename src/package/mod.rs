//! Packaging: one walk of the git tree at a commit feeds every archive writer, with the top
//! directory of the project's layout and drupal.org's `.info` rewrite applied on the way.
//!
//! [`build_archives`] runs three stages at once: `reader` (the tree, its blobs, the export
//! attributes and the rewrite), `compress` (deflate pieces on all cores) and `writer` (each
//! archive and its checksums, through the containers in [`archive`]). The files come from
//! the store's [`Staging`] and are published by committing them.

pub mod archive;
pub mod attributes;
mod compress;
pub mod deflate;
pub mod drupal;
mod format;
pub mod offline;
mod reader;
pub mod subst;
pub mod version;
mod writer;

use sha2::{Digest, Sha256};

use crate::git::{CommitInfo, GitError, Mirror};
use crate::store::{StagedFile, Staging};
use compress::{Compressor, PackedMessage, RawMessage};
pub use format::{ArchiveFormat, Layout};
use reader::Reader;
pub use version::{ReleaseKind, ReleaseVersion};

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error(transparent)]
    Git(#[from] GitError),
    /// A file's `$Format:…$` expansion would pass [`subst::MAX_EXPANDED`].
    #[error("export-subst output of {path} exceeds {} MiB", limit >> 20)]
    SubstTooLarge { path: String, limit: usize },
    #[error("writing the archive: {0}")]
    Io(#[from] std::io::Error),
}

impl PackageError {
    /// Whether building the same commit again would fail the same way: the tree holds what
    /// cannot be packaged (an unsafe path, an expansion over the cap, a missing or corrupt
    /// object). Such a ref waits until it moves; anything else (a full disk, I/O) may pass
    /// on a retry.
    pub fn is_permanent(&self) -> bool {
        match self {
            PackageError::Git(e) => e.is_permanent(),
            PackageError::SubstTooLarge { .. } => true,
            // `InvalidData` is content tar cannot hold (see `archive::TarLayout::append_head`).
            PackageError::Io(e) => e.kind() == std::io::ErrorKind::InvalidData,
        }
    }
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

/// The sha256 of `bytes`, in hex, as checksum files write it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A finished archive, staged beside its final place; committing the file publishes it.
pub struct BuiltArchive {
    pub format: ArchiveFormat,
    pub name: String,
    pub file: StagedFile,
    pub checksums: Checksums,
}

/// How far a build is, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub entries_done: u64,
    pub entries_total: u64,
    pub bytes_done: u64,
}

/// Builds every requested format of `commit` into files that `staging` hands out. Nothing is
/// left behind on error: a staged file is removed when dropped.
///
/// Three stages run at once: this thread lists the tree and reads blobs (git2 stays on it),
/// a second compresses each batch of entries on all cores (rayon), and a third writes both
/// archives and their checksums. Each file is deflated once; the zip and the tar.gz share the
/// pieces.
///
/// Memory stays bounded whatever the tree holds: batches of small files, and a file larger
/// than [`compress::STREAM_ABOVE`] is read from git once and passed on in chunks (twice when
/// the zip is wanted: its local header needs the compressed size first), so it is held whole
/// only in libgit2's buffer. `export-subst` output is capped at [`subst::MAX_EXPANDED`].
pub fn build_archives(
    mirror: &Mirror,
    commit: &CommitInfo,
    spec: &PackageSpec<'_>,
    staging: &Staging,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Vec<BuiltArchive>, PackageError> {
    let plan = reader::plan_entries(mirror, commit)?;
    // The top directory is an entry too.
    let entries_total = plan.len() as u64 + 1;
    let staged = spec
        .formats
        .iter()
        .map(|_| staging.stage())
        .collect::<std::io::Result<Vec<StagedFile>>>()?;
    let files = staged
        .iter()
        .map(StagedFile::writer)
        .collect::<std::io::Result<Vec<_>>>()?;

    let (raw_tx, raw_rx) = std::sync::mpsc::sync_channel::<RawMessage>(0);
    let (packed_tx, packed_rx) = std::sync::mpsc::sync_channel::<PackedMessage>(0);
    let reader = Reader::new(mirror, commit, spec, &plan, raw_tx)?;
    let mtime = commit.time;
    let want_tar = spec.formats.contains(&ArchiveFormat::TarGz);
    let want_zip = spec.formats.contains(&ArchiveFormat::Zip);

    let (read_result, compress_result, write_result) = std::thread::scope(|scope| {
        let compressor = scope.spawn(move || -> std::io::Result<()> {
            let mut compressor = Compressor::new(mtime, want_tar, want_zip);
            for message in raw_rx {
                if let Some(packed) = compressor.handle(message)?
                    && packed_tx.send(packed).is_err()
                {
                    break;
                }
            }
            Ok(())
        });
        let writer = scope.spawn(move || {
            writer::write_archives(
                files,
                spec.formats,
                mtime,
                packed_rx,
                entries_total,
                progress,
            )
        });
        // Returning drops the sender, which ends the compressing stage's loop.
        let read = reader.run(&plan);
        let compressed = compressor
            .join()
            .expect("the compressing thread does not panic");
        let written = writer.join().expect("the writing thread does not panic");
        (read, compressed, written)
    });
    // The first failure explains the others (a stage stops when its neighbour does).
    read_result?;
    compress_result?;
    let checksums = write_result?;

    Ok(spec
        .formats
        .iter()
        .zip(staged)
        .zip(checksums)
        .map(|((format, file), checksums)| BuiltArchive {
            format: *format,
            name: spec.version.file_name(spec.project, format.extension()),
            checksums,
            file,
        })
        .collect())
}
