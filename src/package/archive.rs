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

use std::io::{self, Write};
use std::path::Path;

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
    /// with it), deflated as a piece, and their CRC and length. Empty when an earlier
    /// entry's piece holds this entry's unit.
    pub tar_unit: Vec<u8>,
    pub tar_unit_crc: u32,
    pub tar_unit_len: u64,
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

/// The tar headers for an entry, uncompressed: GNU long-name entries when the path or link
/// target is long, then the header itself. A name or link target tar cannot hold (a NUL in
/// a symlink's target) is `InvalidData`: the tree's fault, not the disk's, so the ref fails
/// for good instead of being retried.
pub fn tar_headers(
    path: &[u8],
    kind: EntryKind,
    size: u64,
    data: &[u8],
    mtime: i64,
) -> io::Result<Vec<u8>> {
    headers(path, kind, size, data, mtime).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} cannot be written to a tar archive: {e}",
                crate::git::display_path(path)
            ),
        )
    })
}

fn headers(
    path: &[u8],
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
            let mut dir = path.to_vec();
            dir.push(b'/');
            builder.append_data(&mut header, bytes_path(&dir), io::empty())?;
        }
        EntryKind::File { .. } => {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(size);
            // The data follows separately; `append_data` writes only what it is given.
            builder.append_data(&mut header, bytes_path(path), io::empty())?;
        }
        EntryKind::Symlink => {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            builder.append_link(&mut header, bytes_path(path), bytes_path(data))?;
        }
    }
    // `into_inner` ends the archive with two zero blocks; this is one entry, not an archive.
    let mut bytes = builder.into_inner()?;
    bytes.truncate(bytes.len() - 1024);
    Ok(bytes)
}

/// A path of bytes as the `tar` crate takes it; on Unix it writes the same bytes back.
#[cfg(unix)]
fn bytes_path(bytes: &[u8]) -> &Path {
    use std::os::unix::ffi::OsStrExt;
    Path::new(std::ffi::OsStr::from_bytes(bytes))
}

#[cfg(not(unix))]
fn bytes_path(bytes: &[u8]) -> &Path {
    Path::new(std::str::from_utf8(bytes).unwrap_or("\u{fffd}"))
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
        self.pieces(&[deflated], crc, len)
    }

    /// Deflate pieces that follow each other, with the CRC and length of what they hold.
    pub fn pieces(&mut self, deflated: &[impl AsRef<[u8]>], crc: u32, len: u64) -> io::Result<()> {
        for piece in deflated {
            self.out.write_all(piece.as_ref())?;
        }
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
            && !entry.streamed
        {
            self.pieces(&entry.deflated, entry.crc, entry.size)?;
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
        if entry.streamed {
            return Ok(());
        }
        let deflate = zip_deflates(entry.kind, entry.size as usize, entry.deflated_len);
        let deflated = deflate.then_some(entry.deflated_len as u64);
        self.begin(&entry.path, entry.kind, entry.size, entry.crc, deflated)?;
        if deflate {
            for piece in &entry.deflated {
                self.data(piece)?;
            }
            self.data(&FINAL_BLOCK)?;
        } else if entry.kind != EntryKind::Directory {
            self.data(&entry.data)?;
        }
        Ok(())
    }

    /// Writes an entry's local header; its content follows through [`ZipSink::data`]: the
    /// deflate pieces then [`FINAL_BLOCK`] when `deflated` gives their length, else the bytes
    /// as they are.
    pub fn begin(
        &mut self,
        path: &[u8],
        kind: EntryKind,
        size: u64,
        crc: u32,
        deflated: Option<u64>,
    ) -> io::Result<()> {
        let (mut name, mode, is_dir) = match kind {
            EntryKind::Directory => (path.to_vec(), 0o040000 | DIR_MODE, true),
            EntryKind::Symlink => (path.to_vec(), 0o120000 | LINK_MODE, false),
            EntryKind::File { .. } => (path.to_vec(), 0o100000 | mode_of(kind), false),
        };
        if is_dir {
            name.push(b'/');
        }
        let (method, compressed, crc) = match (kind, deflated) {
            (EntryKind::Directory, _) => (STORED, 0, 0),
            (_, Some(len)) => (DEFLATED, len + FINAL_BLOCK.len() as u64, crc),
            (_, None) => (STORED, size, crc),
        };
        let central = CentralEntry {
            name,
            mode,
            method,
            crc,
            compressed,
            size,
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
        self.entries.push(central);
        Ok(())
    }

    /// Content of the entry begun last.
    pub fn data(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write(bytes)
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

/// git's rule: the UTF-8 flag for a name that is UTF-8 and not ASCII; a name that is not
/// UTF-8 is written as it is, without the flag (readers then take it as CP437 or raw bytes).
fn flags(name: &[u8]) -> u16 {
    if !name.is_ascii() && std::str::from_utf8(name).is_ok() {
        UTF8_NAMES
    } else {
        0
    }
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
                path: format!("top/f{i}").into_bytes(),
                kind: EntryKind::File { executable: false },
                size: 1,
                data: vec![b'x'],
                deflated: Vec::new(),
                deflated_len: 0,
                streamed: false,
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

    fn stored(path: &[u8], data: &[u8]) -> PackedEntry {
        PackedEntry {
            path: path.to_vec(),
            kind: EntryKind::File { executable: false },
            size: data.len() as u64,
            data: data.to_vec(),
            deflated: Vec::new(),
            deflated_len: 0,
            crc: crate::package::deflate::crc32(data),
            tar_unit: Vec::new(),
            tar_unit_crc: 0,
            tar_unit_len: 0,
            tar_unit_has_data: false,
            streamed: false,
        }
    }

    #[test]
    fn zip_names_are_raw_bytes_flagged_utf8_only_when_they_are() {
        let names: [&[u8]; 4] = [
            b"top/plain",
            b"top/back\\slash",
            "top/naïve".as_bytes(),
            b"top/caf\xe9",
        ];
        let mut sink = ZipSink::new(Vec::new(), 1_700_000_000);
        for name in names {
            sink.add(&stored(name, b"x")).unwrap();
        }
        let bytes = sink.finish().unwrap();
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.clone())).unwrap();
        for (i, name) in names.iter().enumerate() {
            assert_eq!(zip.by_index(i).unwrap().name_raw(), *name);
        }
        // The general-purpose flags of each local header, in order.
        let mut flags = Vec::new();
        let mut at = 0;
        while bytes[at..].starts_with(&0x0403_4b50u32.to_le_bytes()) {
            flags.push(u16::from_le_bytes([bytes[at + 6], bytes[at + 7]]));
            let name_len = u16::from_le_bytes([bytes[at + 26], bytes[at + 27]]) as usize;
            let extra_len = u16::from_le_bytes([bytes[at + 28], bytes[at + 29]]) as usize;
            at += 30 + name_len + extra_len + 1;
        }
        assert_eq!(flags, [0, 0, UTF8_NAMES, 0]);
    }

    #[test]
    fn tar_headers_carry_raw_bytes_and_long_names() {
        let long = [b"top/".as_slice(), &[0xffu8; 150], b"\\x"].concat();
        for (path, target) in [
            (&b"top/caf\xe9"[..], &b""[..]),
            (b"top/a\\b", b""),
            (&long[..], b""),
            (b"top/link", b"../t\xe9\\rget"),
        ] {
            let kind = if target.is_empty() {
                EntryKind::File { executable: false }
            } else {
                EntryKind::Symlink
            };
            let mut bytes = tar_headers(path, kind, 0, target, 1_700_000_000).unwrap();
            bytes.extend([0u8; 1024]);
            let mut archive = tar::Archive::new(bytes.as_slice());
            let entry = archive.entries().unwrap().next().unwrap().unwrap();
            assert_eq!(entry.path_bytes().as_ref(), path);
            if !target.is_empty() {
                assert_eq!(entry.link_name_bytes().unwrap().as_ref(), target);
            }
        }
    }

    #[test]
    fn tar_padding_fills_the_last_block() {
        assert_eq!(tar_padding(0), 0);
        assert_eq!(tar_padding(1), 511);
        assert_eq!(tar_padding(512), 0);
        assert_eq!(tar_padding(513), 511);
    }
}
