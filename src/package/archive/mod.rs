//! The two archive formats, written from entries whose data is already deflated (see
//! [`super::deflate`]). Both follow the same reproducibility rules, written down in the
//! README: entries in git's tree order, every mtime the commit time, owner 0/0 named root,
//! modes 0755 for directories and executables, 0644 for other files, 0777 for symlinks, and
//! no host-dependent fields (gzip carries no name and no time).
//!
//! The zip container is written here rather than with the `zip` crate because the crate
//! compresses each entry itself: it cannot take data deflated on other cores, nor share it
//! with the tar.gz. What is written follows PKWARE's APPNOTE: local headers with known sizes
//! (no data descriptors), Unix modes in the external attributes, the extended-timestamp
//! field, the UTF-8 flag for names that are UTF-8 and not ASCII, and zip64 fields when sizes,
//! offsets or the entry count need them. tar headers (GNU, with long-name entries) come from
//! the `tar` crate.
//!
//! Paths are the bytes git stores, written as they are in both formats, as `git archive`
//! writes them: a backslash is an ordinary byte, and a name that is not UTF-8 goes into the
//! zip without the UTF-8 flag (git's archive-zip.c sets it only for valid UTF-8 that is not
//! ASCII). The tree listing has already refused names that could leave the top directory.

mod tar_gz;
mod zip;

use super::deflate::{DeflatedPiece, FINAL_BLOCK};
use crate::git::EntryKind;
pub use tar_gz::{TarGzSink, TarLayout};
pub use zip::ZipSink;

pub const DIR_MODE: u32 = 0o755;
pub const EXEC_MODE: u32 = 0o755;
pub const FILE_MODE: u32 = 0o644;
pub const LINK_MODE: u32 = 0o777;

pub fn mode_of(kind: EntryKind) -> u32 {
    match kind {
        EntryKind::Directory => DIR_MODE,
        EntryKind::File { executable: true } => EXEC_MODE,
        EntryKind::File { executable: false } => FILE_MODE,
        EntryKind::Symlink => LINK_MODE,
    }
}

/// One entry, ready for both writers.
pub struct PackedEntry {
    /// The full path inside the archive (top directory included), without a trailing slash.
    pub path: Vec<u8>,
    pub kind: EntryKind,
    /// The content's length.
    pub size: u64,
    /// The content (a symlink's target), kept only for entries the zip stores rather than
    /// deflates; empty otherwise.
    pub data: Vec<u8>,
    /// The content as deflate pieces, in order (files only; each ends with a sync flush).
    /// Kept apart rather than joined, so a large file is never held twice while joining.
    pub deflated: Vec<Vec<u8>>,
    /// The pieces' total length.
    pub deflated_len: usize,
    pub crc: u32,
    /// The tar stream's bytes from this entry on (the previous entry's padding, the headers
    /// and, for small files, the data; then as many following entries' as are compressed
    /// with it), deflated as one piece. `None` when an earlier entry's piece holds this
    /// entry's unit, or when no tar.gz is wanted.
    pub tar_unit: Option<DeflatedPiece>,
    /// Whether the unit holds the data; if not, the data's pieces in `deflated` follow it.
    pub tar_unit_has_data: bool,
    /// A large file whose content follows in chunks, after this entry (see `package`): the
    /// writers take only its tar unit from here.
    pub streamed: bool,
}

/// Whether the zip deflates an entry: files that deflate to less than they are, as git
/// archive decides; empty files, links and directories are stored.
pub fn zip_deflates(kind: EntryKind, size: usize, deflated: usize) -> bool {
    matches!(kind, EntryKind::File { .. }) && size > 0 && deflated + FINAL_BLOCK.len() < size
}

#[cfg(test)]
impl PackedEntry {
    /// A small file the zip stores as it is, with no tar unit.
    fn stored(path: &[u8], data: &[u8]) -> PackedEntry {
        PackedEntry {
            path: path.to_vec(),
            kind: EntryKind::File { executable: false },
            size: data.len() as u64,
            data: data.to_vec(),
            deflated: Vec::new(),
            deflated_len: 0,
            crc: super::deflate::crc32(data),
            tar_unit: None,
            tar_unit_has_data: false,
            streamed: false,
        }
    }
}
