//! zip: local headers with known sizes, then the central directory and its end records, as
//! PKWARE's APPNOTE describes them (the module above says which features and why).

use std::io::{self, Write};

use chrono::{DateTime, Datelike, Timelike};

use super::{DIR_MODE, LINK_MODE, PackedEntry, mode_of, zip_deflates};
use crate::git::EntryKind;
use crate::package::deflate::FINAL_BLOCK;

const STORED: u16 = 0;
const DEFLATED: u16 = 8;
const UTF8_NAMES: u16 = 1 << 11;
const ZIP64_LIMIT: u64 = 0xFFFF_FFFF;

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

/// A time as MS-DOS wrote it, which is what a zip header holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DosTime {
    time: u16,
    date: u16,
}

/// The DOS date-time of a Unix time, clamped to the range a zip can hold.
fn dos_time(unix: i64) -> DosTime {
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
    DosTime {
        time: time as u16,
        date: date as u16,
    }
}

pub struct ZipSink<W: Write> {
    out: W,
    offset: u64,
    /// The commit time as DOS writes it, and as Unix time for the extended-timestamp field.
    dos: DosTime,
    mtime: u32,
    entries: Vec<CentralEntry>,
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
        let header = self.local_header(&central);
        self.write(&header)?;
        self.entries.push(central);
        Ok(())
    }

    /// Content of the entry begun last.
    pub fn data(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write(bytes)
    }

    fn local_header(&self, entry: &CentralEntry) -> Vec<u8> {
        let zip64 = entry.size >= ZIP64_LIMIT || entry.compressed >= ZIP64_LIMIT;
        let mut header = Vec::with_capacity(30 + entry.name.len() + 29);
        header.extend(0x0403_4b50u32.to_le_bytes());
        header.extend(version_needed(zip64).to_le_bytes());
        header.extend(flags(&entry.name).to_le_bytes());
        header.extend(entry.method.to_le_bytes());
        header.extend(self.dos.time.to_le_bytes());
        header.extend(self.dos.date.to_le_bytes());
        header.extend(entry.crc.to_le_bytes());
        let mut extra = self.timestamp_extra();
        if zip64 {
            header.extend(u32::MAX.to_le_bytes());
            header.extend(u32::MAX.to_le_bytes());
            extra.extend(1u16.to_le_bytes());
            extra.extend(16u16.to_le_bytes());
            extra.extend(entry.size.to_le_bytes());
            extra.extend(entry.compressed.to_le_bytes());
        } else {
            header.extend((entry.compressed as u32).to_le_bytes());
            header.extend((entry.size as u32).to_le_bytes());
        }
        header.extend((entry.name.len() as u16).to_le_bytes());
        header.extend((extra.len() as u16).to_le_bytes());
        header.extend(&entry.name);
        header.extend(extra);
        header
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
            let header = self.central_header(entry);
            self.write(&header)?;
        }
        let end = end_records(start, self.offset, entries.len() as u64);
        self.write(&end)?;
        Ok(self.out)
    }

    /// An entry's header in the central directory; sizes and the offset that do not fit in
    /// 32 bits go to its zip64 field.
    fn central_header(&self, entry: &CentralEntry) -> Vec<u8> {
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
        header.extend(self.dos.time.to_le_bytes());
        header.extend(self.dos.date.to_le_bytes());
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
        header
    }
}

/// The records after a central directory of `count` entries from `start` to `end`: the
/// zip64 end record and its locator when a count or an offset needs them, then the classic
/// end record.
fn end_records(start: u64, end: u64, count: u64) -> Vec<u8> {
    let size = end - start;
    let mut records = Vec::with_capacity(98);
    if count >= 0xFFFF || size >= ZIP64_LIMIT || start >= ZIP64_LIMIT {
        // The zip64 end record starts where the directory ends.
        let record = end;
        records.extend(0x0606_4b50u32.to_le_bytes());
        records.extend(44u64.to_le_bytes());
        records.extend((0x0300 | 45u16).to_le_bytes());
        records.extend(45u16.to_le_bytes());
        records.extend(0u32.to_le_bytes()); // this disk
        records.extend(0u32.to_le_bytes()); // disk with the directory
        records.extend(count.to_le_bytes());
        records.extend(count.to_le_bytes());
        records.extend(size.to_le_bytes());
        records.extend(start.to_le_bytes());
        records.extend(0x0706_4b50u32.to_le_bytes());
        records.extend(0u32.to_le_bytes());
        records.extend(record.to_le_bytes());
        records.extend(1u32.to_le_bytes());
    }
    records.extend(0x0605_4b50u32.to_le_bytes());
    records.extend(0u16.to_le_bytes());
    records.extend(0u16.to_le_bytes());
    records.extend((count.min(0xFFFF) as u16).to_le_bytes());
    records.extend((count.min(0xFFFF) as u16).to_le_bytes());
    records.extend((size.min(ZIP64_LIMIT) as u32).to_le_bytes());
    records.extend((start.min(ZIP64_LIMIT) as u32).to_le_bytes());
    records.extend(0u16.to_le_bytes()); // comment length
    records
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
        let DosTime { time, date } = dos_time(1_709_296_497);
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
            sink.add(&PackedEntry::stored(format!("top/f{i}").as_bytes(), b"x"))
                .unwrap();
        }
        let bytes = sink.finish().unwrap();
        let mut zip = ::zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        assert_eq!(zip.len(), count);
        let mut last = zip.by_name("top/f69999").unwrap();
        let mut content = String::new();
        std::io::Read::read_to_string(&mut last, &mut content).unwrap();
        assert_eq!(content, "x");
        assert_eq!(last.unix_mode(), Some(0o100644));
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
            sink.add(&PackedEntry::stored(name, b"x")).unwrap();
        }
        let bytes = sink.finish().unwrap();
        let mut zip = ::zip::ZipArchive::new(std::io::Cursor::new(bytes.clone())).unwrap();
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
}
