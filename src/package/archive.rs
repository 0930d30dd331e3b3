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
//! field, the UTF-8 flag for non-ASCII names, and zip64 fields when sizes, offsets or the
//! entry count need them. tar headers (GNU, with long-name entries) come from the `tar` crate.

use std::io::{self, Write};

use chrono::{DateTime, Datelike, Timelike};

use super::deflate::{FINAL_BLOCK, crc32_combine};
use crate::git::EntryKind;

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
    pub path: String,
    pub kind: EntryKind,
    /// The content's length.
    pub size: u64,
    /// The content (a symlink's target), kept only for entries the zip stores rather than
    /// deflates; empty otherwise.
    pub data: Vec<u8>,
    /// The content as deflate pieces joined (files only; ends with a sync flush).
    pub deflated: Vec<u8>,
    pub crc: u32,
    /// The tar stream's bytes from this entry on (the previous entry's padding, the headers
    /// and, for small files, the data; then as many following entries' as are compressed
    /// with it), deflated as a piece, and their CRC and length. Empty when an earlier
    /// entry's piece holds this entry's unit.
    pub tar_unit: Vec<u8>,
    pub tar_unit_crc: u32,
    pub tar_unit_len: u64,
    /// Whether the unit holds the data; if not, the data's pieces in `deflated` follow it.
    pub tar_unit_has_data: bool,
}

/// Whether the zip deflates an entry: files that deflate to less than they are, as git
/// archive decides; empty files, links and directories are stored.
pub fn zip_deflates(kind: EntryKind, size: usize, deflated: usize) -> bool {
    matches!(kind, EntryKind::File { .. }) && size > 0 && deflated + FINAL_BLOCK.len() < size
}

/// The tar headers for an entry, uncompressed: GNU long-name entries when the path or link
/// target is long, then the header itself.
pub fn tar_headers(
    path: &str,
    kind: EntryKind,
    size: u64,
    data: &[u8],
    mtime: i64,
) -> io::Result<Vec<u8>> {
    let mut header = tar::Header::new_gnu();
    header.set_mode(mode_of(kind));
    header.set_uid(0);
    header.set_gid(0);
    header.set_username("root")?;
    header.set_groupname("root")?;
    header.set_mtime(mtime.max(0) as u64);
    let mut builder = tar::Builder::new(Vec::with_capacity(1536));
    builder.follow_symlinks(false);
    match kind {
        EntryKind::Directory => {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            builder.append_data(&mut header, format!("{path}/"), io::empty())?;
        }
        EntryKind::File { .. } => {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(size);
            // The data follows separately; `append_data` writes only what it is given.
            builder.append_data(&mut header, path, io::empty())?;
        }
        EntryKind::Symlink => {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            let target = std::str::from_utf8(data).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("symlink {path} has a target that is not UTF-8"),
                )
            })?;
            builder.append_link(&mut header, path, target)?;
        }
    }
    // `into_inner` ends the archive with two zero blocks; this is one entry, not an archive.
    let mut bytes = builder.into_inner()?;
    bytes.truncate(bytes.len() - 1024);
    Ok(bytes)
}

/// The zero bytes that pad `size` bytes of data to tar's 512-byte blocks.
pub fn tar_padding(size: u64) -> usize {
    ((512 - size % 512) % 512) as usize
}

/// tar.gz: one gzip member (no name, no time, OS Unix) whose deflate stream is the entries'
/// pieces in order.
pub struct TarGzSink<W: Write> {
    out: W,
    crc: u32,
    len: u64,
}

impl<W: Write> TarGzSink<W> {
    pub fn new(mut out: W) -> io::Result<TarGzSink<W>> {
        // ID, deflate, no flags, mtime 0, no extra flags, OS 3 (Unix).
        out.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3])?;
        Ok(TarGzSink {
            out,
            crc: 0,
            len: 0,
        })
    }

    fn piece(&mut self, deflated: &[u8], crc: u32, len: u64) -> io::Result<()> {
        self.out.write_all(deflated)?;
        self.crc = crc32_combine(self.crc, crc, len);
        self.len += len;
        Ok(())
    }

    pub fn add(&mut self, entry: &PackedEntry) -> io::Result<()> {
        if entry.tar_unit_len > 0 {
            self.piece(&entry.tar_unit, entry.tar_unit_crc, entry.tar_unit_len)?;
        }
        if matches!(entry.kind, EntryKind::File { .. })
            && entry.size > 0
            && !entry.tar_unit_has_data
        {
            self.piece(&entry.deflated, entry.crc, entry.size)?;
        }
        Ok(())
    }

    /// `trailer` is the last entry's padding and tar's two zero blocks, deflated as a piece.
    pub fn finish(mut self, trailer: &[u8], trailer_crc: u32, trailer_len: u64) -> io::Result<W> {
        self.piece(trailer, trailer_crc, trailer_len)?;
        self.out.write_all(&FINAL_BLOCK)?;
        self.out.write_all(&self.crc.to_le_bytes())?;
        // ISIZE is the length modulo 2^32.
        self.out.write_all(&(self.len as u32).to_le_bytes())?;
        Ok(self.out)
    }
}

/// What the central directory needs of an entry written earlier.
struct CentralEntry {
    name: Vec<u8>,
    mode: u32,
    method: u16,
    crc: u32,
    compressed: u64,
    size: u64,
    offset: u64,
    is_dir: bool,
}

pub struct ZipSink<W: Write> {
    out: W,
    offset: u64,
    /// DOS time and date of the commit, and its Unix time for the extended-timestamp field.
    dos: (u16, u16),
    mtime: u32,
    entries: Vec<CentralEntry>,
}

const STORED: u16 = 0;
const DEFLATED: u16 = 8;
const UTF8_NAMES: u16 = 1 << 11;
const ZIP64_LIMIT: u64 = 0xFFFF_FFFF;

/// The DOS date-time of a Unix time, clamped to the range a zip can hold.
fn dos_time(unix: i64) -> (u16, u16) {
    let at = DateTime::from_timestamp(unix, 0).unwrap_or_default();
    let (year, month, day, hour, minute, second) = if at.year() < 1980 {
        (1980, 1, 1, 0, 0, 0)
    } else if at.year() > 2107 {
        (2107, 12, 31, 23, 59, 58)
    } else {
        (
            at.year() as u32,
            at.month(),
            at.day(),
            at.hour(),
            at.minute(),
            at.second(),
        )
    };
    let time = (hour << 11) | (minute << 5) | (second / 2);
    let date = ((year - 1980) << 9) | (month << 5) | day;
    (time as u16, date as u16)
}

impl<W: Write> ZipSink<W> {
    pub fn new(out: W, mtime: i64) -> ZipSink<W> {
        ZipSink {
            out,
            offset: 0,
            dos: dos_time(mtime),
            mtime: mtime.clamp(0, u32::MAX as i64) as u32,
            entries: Vec::new(),
        }
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    pub fn add(&mut self, entry: &PackedEntry) -> io::Result<()> {
        let (name, mode, is_dir) = match entry.kind {
            EntryKind::Directory => (format!("{}/", entry.path), 0o040000 | DIR_MODE, true),
            EntryKind::Symlink => (entry.path.clone(), 0o120000 | LINK_MODE, false),
            EntryKind::File { .. } => (entry.path.clone(), 0o100000 | mode_of(entry.kind), false),
        };
        let deflate = zip_deflates(entry.kind, entry.size as usize, entry.deflated.len());
        let (method, compressed, crc) = match entry.kind {
            EntryKind::Directory => (STORED, 0, 0),
            _ if deflate => (
                DEFLATED,
                (entry.deflated.len() + FINAL_BLOCK.len()) as u64,
                entry.crc,
            ),
            _ => (STORED, entry.size, entry.crc),
        };
        let central = CentralEntry {
            name: name.into_bytes(),
            mode,
            method,
            crc,
            compressed,
            size: entry.size,
            offset: self.offset,
            is_dir,
        };
        let zip64 = central.size >= ZIP64_LIMIT || central.compressed >= ZIP64_LIMIT;
        let mut header = Vec::with_capacity(30 + central.name.len() + 29);
        header.extend(0x0403_4b50u32.to_le_bytes());
        header.extend(version_needed(zip64).to_le_bytes());
        header.extend(flags(&central.name).to_le_bytes());
        header.extend(method.to_le_bytes());
        header.extend(self.dos.0.to_le_bytes());
        header.extend(self.dos.1.to_le_bytes());
        header.extend(crc.to_le_bytes());
        let mut extra = self.timestamp_extra();
        if zip64 {
            header.extend(u32::MAX.to_le_bytes());
            header.extend(u32::MAX.to_le_bytes());
            extra.extend(1u16.to_le_bytes());
            extra.extend(16u16.to_le_bytes());
            extra.extend(central.size.to_le_bytes());
            extra.extend(central.compressed.to_le_bytes());
        } else {
            header.extend((compressed as u32).to_le_bytes());
            header.extend((central.size as u32).to_le_bytes());
        }
        header.extend((central.name.len() as u16).to_le_bytes());
        header.extend((extra.len() as u16).to_le_bytes());
        header.extend(&central.name);
        header.extend(extra);
        self.write(&header)?;
        if method == DEFLATED {
            self.write(&entry.deflated)?;
            self.write(&FINAL_BLOCK)?;
        } else if !is_dir {
            self.write(&entry.data)?;
        }
        self.entries.push(central);
        Ok(())
    }

    /// The extended-timestamp field: the exact modification time, in UTC.
    fn timestamp_extra(&self) -> Vec<u8> {
        let mut extra = Vec::with_capacity(9);
        extra.extend(0x5455u16.to_le_bytes());
        extra.extend(5u16.to_le_bytes());
        extra.push(1);
        extra.extend(self.mtime.to_le_bytes());
        extra
    }

    /// Writes the central directory and its end records.
    pub fn finish(mut self) -> io::Result<W> {
        let start = self.offset;
        let entries = std::mem::take(&mut self.entries);
        for entry in &entries {
            let mut zip64 = Vec::new();
            let mut field = |value: u64| -> u32 {
                if value >= ZIP64_LIMIT {
                    zip64.extend(value.to_le_bytes());
                    u32::MAX
                } else {
                    value as u32
                }
            };
            let size = field(entry.size);
            let compressed = field(entry.compressed);
            let offset = field(entry.offset);
            let mut extra = self.timestamp_extra();
            if !zip64.is_empty() {
                extra.extend(1u16.to_le_bytes());
                extra.extend((zip64.len() as u16).to_le_bytes());
                extra.extend(&zip64);
            }
            let needed = version_needed(!zip64.is_empty());
            let mut header = Vec::with_capacity(46 + entry.name.len() + extra.len());
            header.extend(0x0201_4b50u32.to_le_bytes());
            // Made by: Unix (3), so readers apply the mode in the external attributes.
            header.extend((0x0300 | needed).to_le_bytes());
            header.extend(needed.to_le_bytes());
            header.extend(flags(&entry.name).to_le_bytes());
            header.extend(entry.method.to_le_bytes());
            header.extend(self.dos.0.to_le_bytes());
            header.extend(self.dos.1.to_le_bytes());
            header.extend(entry.crc.to_le_bytes());
            header.extend(compressed.to_le_bytes());
            header.extend(size.to_le_bytes());
            header.extend((entry.name.len() as u16).to_le_bytes());
            header.extend((extra.len() as u16).to_le_bytes());
            header.extend(0u16.to_le_bytes()); // comment length
            header.extend(0u16.to_le_bytes()); // disk number
            header.extend(0u16.to_le_bytes()); // internal attributes
            let dos_dir = if entry.is_dir { 0x10 } else { 0 };
            header.extend(((entry.mode << 16) | dos_dir).to_le_bytes());
            header.extend(offset.to_le_bytes());
            header.extend(&entry.name);
            header.extend(extra);
            self.write(&header)?;
        }
        let size = self.offset - start;
        let count = entries.len() as u64;
        let mut end = Vec::with_capacity(98);
        if count >= 0xFFFF || size >= ZIP64_LIMIT || start >= ZIP64_LIMIT {
            let record = self.offset;
            end.extend(0x0606_4b50u32.to_le_bytes());
            end.extend(44u64.to_le_bytes());
            end.extend((0x0300 | 45u16).to_le_bytes());
            end.extend(45u16.to_le_bytes());
            end.extend(0u32.to_le_bytes()); // this disk
            end.extend(0u32.to_le_bytes()); // disk with the directory
            end.extend(count.to_le_bytes());
            end.extend(count.to_le_bytes());
            end.extend(size.to_le_bytes());
            end.extend(start.to_le_bytes());
            end.extend(0x0706_4b50u32.to_le_bytes());
            end.extend(0u32.to_le_bytes());
            end.extend(record.to_le_bytes());
            end.extend(1u32.to_le_bytes());
        }
        end.extend(0x0605_4b50u32.to_le_bytes());
        end.extend(0u16.to_le_bytes());
        end.extend(0u16.to_le_bytes());
        end.extend((count.min(0xFFFF) as u16).to_le_bytes());
        end.extend((count.min(0xFFFF) as u16).to_le_bytes());
        end.extend((size.min(ZIP64_LIMIT) as u32).to_le_bytes());
        end.extend((start.min(ZIP64_LIMIT) as u32).to_le_bytes());
        end.extend(0u16.to_le_bytes()); // comment length
        self.write(&end)?;
        Ok(self.out)
    }
}

fn version_needed(zip64: bool) -> u16 {
    if zip64 { 45 } else { 20 }
}

fn flags(name: &[u8]) -> u16 {
    if name.is_ascii() { 0 } else { UTF8_NAMES }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dos_times_round_down_to_even_seconds_and_clamp() {
        // 2024-03-01 12:34:57 UTC.
        let (time, date) = dos_time(1_709_296_497);
        assert_eq!(
            (time >> 11, (time >> 5) & 63, (time & 31) * 2),
            (12, 34, 56)
        );
        assert_eq!(
            ((date >> 9) + 1980, (date >> 5) & 15, date & 31),
            (2024, 3, 1)
        );
        assert_eq!(
            dos_time(0),
            dos_time(315_532_800),
            "before 1980 is 1980-01-01"
        );
    }

    #[test]
    fn more_than_65535_entries_take_zip64_end_records() {
        let mut sink = ZipSink::new(Vec::new(), 1_700_000_000);
        let count = 70_000;
        for i in 0..count {
            sink.add(&PackedEntry {
                path: format!("top/f{i}"),
                kind: EntryKind::File { executable: false },
                size: 1,
                data: vec![b'x'],
                deflated: Vec::new(),
                crc: crate::package::deflate::crc32(b"x"),
                tar_unit: Vec::new(),
                tar_unit_crc: 0,
                tar_unit_len: 0,
                tar_unit_has_data: false,
            })
            .unwrap();
        }
        let bytes = sink.finish().unwrap();
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        assert_eq!(zip.len(), count);
        let mut last = zip.by_name("top/f69999").unwrap();
        let mut content = String::new();
        std::io::Read::read_to_string(&mut last, &mut content).unwrap();
        assert_eq!(content, "x");
        assert_eq!(last.unix_mode(), Some(0o100644));
    }

    #[test]
    fn tar_padding_fills_the_last_block() {
        assert_eq!(tar_padding(0), 0);
        assert_eq!(tar_padding(1), 511);
        assert_eq!(tar_padding(512), 0);
        assert_eq!(tar_padding(513), 511);
    }
}
