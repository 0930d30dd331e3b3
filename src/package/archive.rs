//! Archive writers. Both formats follow the same reproducibility rules, written down in the
//! README: entries in git's tree order, every mtime the commit time, owner 0/0 named root,
//! modes 0755 for directories and executables, 0644 for other files, 0777 for symlinks, and no
//! host-dependent fields (gzip carries no name and no time).

use std::fs::File;
use std::io::{BufWriter, Write};

use chrono::{DateTime, Datelike, Timelike};
use flate2::{Compression, GzBuilder, write::GzEncoder};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use crate::git::EntryKind;

pub const DIR_MODE: u32 = 0o755;
pub const EXEC_MODE: u32 = 0o755;
pub const FILE_MODE: u32 = 0o644;
pub const LINK_MODE: u32 = 0o777;

/// An entry as both writers receive it: the full path inside the archive (top directory
/// included), its kind and its bytes.
pub struct ArchiveEntry<'a> {
    pub path: &'a str,
    pub kind: EntryKind,
    pub data: &'a [u8],
}

pub trait ArchiveWriter {
    fn add(&mut self, entry: &ArchiveEntry<'_>) -> std::io::Result<()>;
    /// Writes the trailer and flushes everything to the file.
    fn finish(self: Box<Self>) -> std::io::Result<()>;
}

fn mode_of(kind: EntryKind) -> u32 {
    match kind {
        EntryKind::Directory => DIR_MODE,
        EntryKind::File { executable: true } => EXEC_MODE,
        EntryKind::File { executable: false } => FILE_MODE,
        EntryKind::Symlink => LINK_MODE,
    }
}

/// tar.gz as drupal.org makes them: `gzip -9 --no-name`, owner 0.
pub struct TarGzWriter {
    builder: tar::Builder<GzEncoder<BufWriter<File>>>,
    mtime: u64,
}

impl TarGzWriter {
    pub fn new(file: File, mtime: i64) -> TarGzWriter {
        let gzip = GzBuilder::new().mtime(0).operating_system(3).write(
            BufWriter::with_capacity(256 * 1024, file),
            Compression::best(),
        );
        let mut builder = tar::Builder::new(gzip);
        builder.follow_symlinks(false);
        TarGzWriter {
            builder,
            mtime: mtime.max(0) as u64,
        }
    }
}

impl ArchiveWriter for TarGzWriter {
    fn add(&mut self, entry: &ArchiveEntry<'_>) -> std::io::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_mode(mode_of(entry.kind));
        header.set_uid(0);
        header.set_gid(0);
        header.set_username("root")?;
        header.set_groupname("root")?;
        header.set_mtime(self.mtime);
        match entry.kind {
            EntryKind::Directory => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                self.builder
                    .append_data(&mut header, format!("{}/", entry.path), std::io::empty())
            }
            EntryKind::File { .. } => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(entry.data.len() as u64);
                self.builder
                    .append_data(&mut header, entry.path, entry.data)
            }
            EntryKind::Symlink => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                let target = std::str::from_utf8(entry.data).map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("symlink {} has a target that is not UTF-8", entry.path),
                    )
                })?;
                self.builder.append_link(&mut header, entry.path, target)
            }
        }
    }

    fn finish(self: Box<Self>) -> std::io::Result<()> {
        let gzip = self.builder.into_inner()?;
        let mut file = gzip.finish()?;
        file.flush()?;
        file.into_inner().map_err(|e| e.into_error())?.sync_all()
    }
}

pub struct ZipArchiveWriter {
    zip: ZipWriter<BufWriter<File>>,
    modified: zip::DateTime,
}

/// The DOS date-time of a Unix time, clamped to the range a zip can hold.
fn zip_time(unix: i64) -> zip::DateTime {
    let at = DateTime::from_timestamp(unix, 0).unwrap_or_default();
    let year = at.year().clamp(1980, 2107) as u16;
    zip::DateTime::from_date_and_time(
        year,
        at.month() as u8,
        at.day() as u8,
        at.hour() as u8,
        at.minute() as u8,
        at.second() as u8,
    )
    .unwrap_or_default()
}

impl ZipArchiveWriter {
    pub fn new(file: File, mtime: i64) -> ZipArchiveWriter {
        ZipArchiveWriter {
            zip: ZipWriter::new(BufWriter::with_capacity(256 * 1024, file)),
            modified: zip_time(mtime),
        }
    }
}

impl ArchiveWriter for ZipArchiveWriter {
    fn add(&mut self, entry: &ArchiveEntry<'_>) -> std::io::Result<()> {
        let options = SimpleFileOptions::default()
            .last_modified_time(self.modified)
            .unix_permissions(mode_of(entry.kind));
        match entry.kind {
            EntryKind::Directory => self
                .zip
                .add_directory(format!("{}/", entry.path), options)?,
            EntryKind::File { .. } => {
                let options = options
                    .compression_method(CompressionMethod::Deflated)
                    .large_file(entry.data.len() as u64 >= u32::MAX as u64);
                self.zip.start_file(entry.path, options)?;
                self.zip.write_all(entry.data)?;
            }
            EntryKind::Symlink => {
                let target = String::from_utf8_lossy(entry.data);
                self.zip.add_symlink(entry.path, target, options)?;
            }
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> std::io::Result<()> {
        let mut file = self.zip.finish()?;
        file.flush()?;
        file.into_inner().map_err(|e| e.into_error())?.sync_all()
    }
}
