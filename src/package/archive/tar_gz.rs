//! tar.gz: GNU tar headers (from the `tar` crate) in one gzip member whose deflate stream is
//! the entries' pieces in order. tar's layout, each entry's data padded to 512-byte blocks
//! and two zero blocks at the end, is decided here and nowhere else.

use std::io::{self, Write};
use std::path::Path;

use super::{PackedEntry, mode_of};
use crate::git::EntryKind;
use crate::package::deflate::{DeflatedPiece, FINAL_BLOCK, crc32_combine};

/// The tar headers for an entry, uncompressed: GNU long-name entries when the path or link
/// target is long, then the header itself. A name or link target tar cannot hold (a NUL in
/// a symlink's target) is `InvalidData`: the tree's fault, not the disk's, so the ref fails
/// for good instead of being retried.
fn tar_headers(
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
    bytes.truncate(bytes.len() - END_BLOCKS);
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

/// A tar archive ends with two zero blocks.
const END_BLOCKS: usize = 1024;

/// The zero bytes that pad `size` bytes of data to tar's 512-byte blocks.
fn tar_padding(size: u64) -> usize {
    ((512 - size % 512) % 512) as usize
}

/// The zero bytes that follow an entry: a file's data is padded to whole blocks; other
/// entries have no data.
fn padding_after(kind: EntryKind, size: u64) -> usize {
    if matches!(kind, EntryKind::File { .. }) {
        tar_padding(size)
    } else {
        0
    }
}

/// The uncompressed tar stream as the compressing stage lays it out. An entry's unit starts
/// with the previous entry's padding (known only once that entry's size is) and its own
/// headers; its data follows, in the stream or in pieces of its own.
#[derive(Default)]
pub struct TarLayout {
    /// The padding the last entry's data needs.
    padding: usize,
}

impl TarLayout {
    /// Appends the start of an entry's unit to `stream`: the previous entry's padding and
    /// this entry's headers. `size` is the length of the data that follows; `data` is the
    /// content when there is some at hand (a symlink's target is written into its header).
    pub fn append_head(
        &mut self,
        stream: &mut Vec<u8>,
        path: &[u8],
        kind: EntryKind,
        size: u64,
        data: &[u8],
        mtime: i64,
    ) -> io::Result<()> {
        stream.resize(stream.len() + self.padding, 0);
        stream.extend(tar_headers(path, kind, size, data, mtime)?);
        self.padding = padding_after(kind, size);
        Ok(())
    }
}

/// tar.gz: one gzip member (no name, no time, OS Unix) whose deflate stream is the entries'
/// pieces in order, ended by the last entry's padding and tar's end blocks.
pub struct TarGzSink<W: Write> {
    out: W,
    /// The CRC-32 and length of the uncompressed stream so far, for gzip's trailer.
    crc: u32,
    len: u64,
    /// The padding the last entry's data needs, written before the end blocks.
    padding: usize,
}

impl<W: Write> TarGzSink<W> {
    pub fn new(mut out: W) -> io::Result<TarGzSink<W>> {
        // ID, deflate, no flags, mtime 0, no extra flags, OS 3 (Unix).
        out.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3])?;
        Ok(TarGzSink {
            out,
            crc: 0,
            len: 0,
            padding: 0,
        })
    }

    fn piece(&mut self, piece: &DeflatedPiece) -> io::Result<()> {
        self.pieces(&[&piece.bytes], piece.crc, piece.input_len)
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

    /// Writes an entry's unit, if it starts a piece, and its data's pieces, unless the unit
    /// holds the data or the data is streamed after it (through [`TarGzSink::pieces`]).
    pub fn add(&mut self, entry: &PackedEntry) -> io::Result<()> {
        if let Some(unit) = &entry.tar_unit {
            self.piece(unit)?;
        }
        if matches!(entry.kind, EntryKind::File { .. })
            && entry.size > 0
            && !entry.tar_unit_has_data
            && !entry.streamed
        {
            self.pieces(&entry.deflated, entry.crc, entry.size)?;
        }
        self.padding = padding_after(entry.kind, entry.size);
        Ok(())
    }

    /// Ends the tar stream (the last entry's padding and the end blocks, deflated as a
    /// piece) and the gzip member.
    pub fn finish(mut self) -> io::Result<W> {
        let trailer = vec![0u8; self.padding + END_BLOCKS];
        self.piece(&DeflatedPiece::of(&trailer, &[]))?;
        self.out.write_all(&FINAL_BLOCK)?;
        self.out.write_all(&self.crc.to_le_bytes())?;
        // ISIZE is the length modulo 2^32.
        self.out.write_all(&(self.len as u32).to_le_bytes())?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_sink_pads_the_last_file_and_ends_the_archive() {
        let mut layout = TarLayout::default();
        let mut stream = Vec::new();
        let mut sink = TarGzSink::new(Vec::new()).unwrap();
        for (name, data) in [("top/a", &b"hello"[..]), ("top/b", b"world!")] {
            let start = stream.len();
            let kind = EntryKind::File { executable: false };
            let size = data.len() as u64;
            layout
                .append_head(&mut stream, name.as_bytes(), kind, size, data, 0)
                .unwrap();
            stream.extend_from_slice(data);
            let mut entry = PackedEntry::stored(name.as_bytes(), data);
            entry.tar_unit = Some(DeflatedPiece::of(&stream[start..], &[]));
            entry.tar_unit_has_data = true;
            sink.add(&entry).unwrap();
        }
        let gz = sink.finish().unwrap();
        let mut tar = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(gz.as_slice()), &mut tar)
            .unwrap();
        assert_eq!(
            tar.len(),
            4 * 512 + END_BLOCKS,
            "two headers, two padded blocks"
        );
        let mut archive = tar::Archive::new(tar.as_slice());
        let contents: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|entry| std::io::read_to_string(entry.unwrap()).unwrap())
            .collect();
        assert_eq!(contents, ["hello", "world!"]);
    }
}
