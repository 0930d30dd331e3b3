//! The writing stage: both archives from the packed messages, in order, each file hashed as
//! it is written.

use std::io::{self, Write};
use std::sync::mpsc::Receiver;

use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::archive::{PackedEntry, TarGzSink, ZipSink};
use super::compress::PackedMessage;
use super::{ArchiveFormat, Checksums, Progress, deflate};
use crate::git::EntryKind;

/// Writes each archive into its file, in the order of `formats`, and returns their checksums.
pub(super) fn write_archives(
    files: Vec<std::fs::File>,
    formats: &[ArchiveFormat],
    mtime: i64,
    messages: Receiver<PackedMessage>,
    entries_total: u64,
    progress: &(dyn Fn(Progress) + Sync),
) -> io::Result<Vec<Checksums>> {
    let mut sinks = files
        .into_iter()
        .zip(formats)
        .map(|(file, format)| Sink::new(*format, HashingWriter::new(file), mtime))
        .collect::<io::Result<Vec<Sink>>>()?;
    let mut state = Progress {
        entries_done: 0,
        entries_total,
        bytes_done: 0,
    };
    let mut streamed: Option<StreamedEntry> = None;
    for message in messages {
        match message {
            PackedMessage::Batch(batch) => {
                for entry in &batch {
                    for sink in &mut sinks {
                        sink.add(entry)?;
                    }
                    if entry.streamed {
                        // Counted when its last chunk is written.
                        streamed = Some(StreamedEntry::of(entry));
                        continue;
                    }
                    state.entries_done += 1;
                    state.bytes_done += entry.size;
                }
                progress(state);
            }
            PackedMessage::TarPieces { pieces, crc, len } => {
                for tar in sinks.iter_mut().filter_map(Sink::tar_gz) {
                    tar.pieces(&pieces, crc, len)?;
                }
            }
            PackedMessage::ZipBegin { crc, deflated } => {
                let file = streamed.as_ref().ok_or_else(out_of_order)?;
                for zip in sinks.iter_mut().filter_map(Sink::zip) {
                    zip.begin(&file.path, file.kind, file.size, crc, deflated)?;
                }
            }
            PackedMessage::ZipData(parts) => {
                for zip in sinks.iter_mut().filter_map(Sink::zip) {
                    for part in &parts {
                        zip.data(part)?;
                    }
                }
            }
            PackedMessage::StreamEnd { deflated } => {
                let file = streamed.take().ok_or_else(out_of_order)?;
                for zip in sinks.iter_mut().filter_map(Sink::zip) {
                    if deflated {
                        zip.data(&deflate::FINAL_BLOCK)?;
                    }
                }
                state.entries_done += 1;
                state.bytes_done += file.size;
                progress(state);
            }
        }
    }
    if state.entries_done != entries_total {
        return Err(io::Error::other("packaging stopped before the last entry"));
    }
    sinks.into_iter().map(Sink::finish).collect()
}

fn out_of_order() -> io::Error {
    io::Error::other("a streamed file's content came without its entry")
}

/// The streamed file under way: what the zip's header and the progress need of its entry.
struct StreamedEntry {
    path: Vec<u8>,
    kind: EntryKind,
    size: u64,
}

impl StreamedEntry {
    fn of(entry: &PackedEntry) -> StreamedEntry {
        StreamedEntry {
            path: entry.path.clone(),
            kind: entry.kind,
            size: entry.size,
        }
    }
}

/// One archive being written, in the order of the requested formats.
enum Sink {
    Zip(ZipSink<HashingWriter>),
    TarGz(TarGzSink<HashingWriter>),
}

impl Sink {
    fn new(format: ArchiveFormat, out: HashingWriter, mtime: i64) -> io::Result<Sink> {
        Ok(match format {
            ArchiveFormat::Zip => Sink::Zip(ZipSink::new(out, mtime)),
            ArchiveFormat::TarGz => Sink::TarGz(TarGzSink::new(out)?),
        })
    }

    fn add(&mut self, entry: &PackedEntry) -> io::Result<()> {
        match self {
            Sink::Zip(zip) => zip.add(entry),
            Sink::TarGz(tar) => tar.add(entry),
        }
    }

    fn zip(&mut self) -> Option<&mut ZipSink<HashingWriter>> {
        match self {
            Sink::Zip(zip) => Some(zip),
            Sink::TarGz(_) => None,
        }
    }

    fn tar_gz(&mut self) -> Option<&mut TarGzSink<HashingWriter>> {
        match self {
            Sink::TarGz(tar) => Some(tar),
            Sink::Zip(_) => None,
        }
    }

    /// Ends the archive, syncs its file and returns its checksums.
    fn finish(self) -> io::Result<Checksums> {
        match self {
            Sink::Zip(zip) => zip.finish()?.finish(),
            Sink::TarGz(tar) => tar.finish()?.finish(),
        }
    }
}

/// A buffered file that feeds every digest as bytes go by, so checksums need no second read.
struct HashingWriter {
    file: io::BufWriter<std::fs::File>,
    sha256: Sha256,
    sha1: Sha1,
    md5: md5::Md5,
    size: u64,
}

impl HashingWriter {
    fn new(file: std::fs::File) -> HashingWriter {
        HashingWriter {
            file: io::BufWriter::with_capacity(1 << 20, file),
            sha256: Sha256::new(),
            sha1: Sha1::new(),
            md5: md5::Md5::new(),
            size: 0,
        }
    }

    /// Flushes and syncs the file, and returns its checksums.
    fn finish(self) -> io::Result<Checksums> {
        let file = self.file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(Checksums {
            size: self.size,
            sha256: hex::encode(self.sha256.finalize()),
            sha1: hex::encode(self.sha1.finalize()),
            md5: hex::encode(self.md5.finalize()),
        })
    }
}

impl Write for HashingWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let n = self.file.write(bytes)?;
        self.sha256.update(&bytes[..n]);
        self.sha1.update(&bytes[..n]);
        self.md5.update(&bytes[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}
