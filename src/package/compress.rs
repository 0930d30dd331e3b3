//! The compressing stage: batches of entries, and large files streamed in chunks, become
//! deflate pieces on all cores (rayon), ready for both writers.

use rayon::prelude::*;

use super::archive::{self, PackedEntry};
use super::deflate;
use crate::git::EntryKind;

/// An entry read from git, transformed, not yet compressed.
pub(super) struct RawEntry {
    pub path: Vec<u8>,
    pub kind: EntryKind,
    pub data: Vec<u8>,
    /// A large file whose content follows in [`RawMessage::Chunk`]s (`data` is empty): its
    /// size. Such an entry ends its batch.
    pub streamed_size: Option<u64>,
}

/// What the reading stage hands the compressing stage, in archive order.
pub(super) enum RawMessage {
    Batch(Vec<RawEntry>),
    /// The next part of the streamed file that ended the last batch: [`CHUNK`] bytes, or
    /// fewer for the last. The file is sent twice: once for the tar.gz and to learn how the
    /// zip takes it (deflated or stored), then once more for the zip, if the zip is wanted.
    Chunk(Vec<u8>),
    /// The first pass over the streamed file is complete.
    FirstPassDone,
    /// The streamed file is complete.
    StreamEnd,
}

/// What the compressing stage hands the writing stage, in archive order.
pub(super) enum PackedMessage {
    Batch(Vec<PackedEntry>),
    /// The streamed file's deflate pieces for the tar.gz, with the CRC and length of what
    /// they hold.
    TarPieces {
        pieces: Vec<Vec<u8>>,
        crc: u32,
        len: u64,
    },
    /// The zip entry of the streamed file starts: its CRC, and the pieces' total length if
    /// the zip deflates it (else it is stored).
    ZipBegin {
        crc: u32,
        deflated: Option<u64>,
    },
    /// Content of the streamed file for the zip: deflate pieces, or stored bytes.
    ZipData(Vec<Vec<u8>>),
    /// The streamed file is complete; whether the zip deflated it.
    StreamEnd {
        deflated: bool,
    },
}

/// Files larger than this are streamed: read from git once, sent on in [`CHUNK`]s, never
/// copied whole. Smaller ones travel in batches, whole.
pub(super) const STREAM_ABOVE: usize = CHUNK;

/// The part of a streamed file in flight between two stages: a whole number of deflate
/// pieces, so the pieces are cut where a whole file's would be and the bytes do not change.
pub(super) const CHUNK: usize = 8 * deflate::PIECE;

/// The compressing stage's state between messages.
pub(super) struct Compressor {
    tar: TarState,
    mtime: i64,
    want_tar: bool,
    want_zip: bool,
    streamed: Option<Streamed>,
}

/// A streamed file being compressed.
struct Streamed {
    size: u64,
    second_pass: bool,
    /// The last bytes of the previous chunk: the next piece's dictionary.
    previous: Vec<u8>,
    crc: u32,
    deflated_len: u64,
    /// Whether the zip deflates the file (known after the first pass).
    zip_deflates: bool,
    /// The file's last bytes, for the tar stream's window once the file is done.
    tail: Vec<u8>,
}

impl Compressor {
    pub fn new(mtime: i64, want_tar: bool, want_zip: bool) -> Compressor {
        Compressor {
            tar: TarState::default(),
            mtime,
            want_tar,
            want_zip,
            streamed: None,
        }
    }

    /// Turns one message into what the writers need; `None` when it has nothing for them.
    pub fn handle(&mut self, message: RawMessage) -> std::io::Result<Option<PackedMessage>> {
        Ok(match message {
            RawMessage::Batch(batch) => {
                if let Some(size) = batch.last().and_then(|entry| entry.streamed_size) {
                    self.streamed = Some(Streamed {
                        size,
                        second_pass: false,
                        previous: Vec::new(),
                        crc: 0,
                        deflated_len: 0,
                        zip_deflates: false,
                        tail: Vec::new(),
                    });
                }
                let packed = pack_batch(
                    batch,
                    &mut self.tar,
                    self.mtime,
                    self.want_tar,
                    self.want_zip,
                )?;
                Some(PackedMessage::Batch(packed))
            }
            RawMessage::Chunk(chunk) => {
                let streamed = self.streamed.as_mut().ok_or_else(out_of_order)?;
                let message = if !streamed.second_pass {
                    let (pieces, crc, deflated_len) = compress_chunk(&chunk, &streamed.previous);
                    streamed.crc = deflate::crc32_combine(streamed.crc, crc, chunk.len() as u64);
                    streamed.deflated_len += deflated_len as u64;
                    streamed.tail = last(&chunk, TAR_DICTIONARY).to_vec();
                    self.want_tar.then_some(PackedMessage::TarPieces {
                        pieces,
                        crc,
                        len: chunk.len() as u64,
                    })
                } else if streamed.zip_deflates {
                    let (pieces, _, _) = compress_chunk(&chunk, &streamed.previous);
                    Some(PackedMessage::ZipData(pieces))
                } else {
                    streamed.previous = last(&chunk, deflate::WINDOW).to_vec();
                    return Ok(Some(PackedMessage::ZipData(vec![chunk])));
                };
                streamed.previous = last(&chunk, deflate::WINDOW).to_vec();
                message
            }
            RawMessage::FirstPassDone => {
                let streamed = self.streamed.as_mut().ok_or_else(out_of_order)?;
                streamed.second_pass = true;
                streamed.previous.clear();
                streamed.zip_deflates = archive::zip_deflates(
                    EntryKind::File { executable: false },
                    streamed.size as usize,
                    streamed.deflated_len as usize,
                );
                self.want_zip.then_some(PackedMessage::ZipBegin {
                    crc: streamed.crc,
                    deflated: streamed.zip_deflates.then_some(streamed.deflated_len),
                })
            }
            RawMessage::StreamEnd => {
                let streamed = self.streamed.take().ok_or_else(out_of_order)?;
                // The tar stream goes on after the file's data, as if it had passed through.
                self.tar.window = streamed.tail;
                self.tar.padding = archive::tar_padding(streamed.size);
                Some(PackedMessage::StreamEnd {
                    deflated: streamed.zip_deflates,
                })
            }
        })
    }
}

fn out_of_order() -> std::io::Error {
    std::io::Error::other("a streamed file's chunks came without its entry")
}

fn last(bytes: &[u8], n: usize) -> &[u8] {
    &bytes[bytes.len().saturating_sub(n)..]
}

/// A chunk of a streamed file as deflate pieces (cut as [`deflate::cuts`] cuts the whole
/// file), their CRC, and their total length. `previous` is what precedes the chunk.
fn compress_chunk(chunk: &[u8], previous: &[u8]) -> (Vec<Vec<u8>>, u32, usize) {
    let done: Vec<(Vec<u8>, u32, u64)> = deflate::cuts(chunk.len())
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|range| {
            let dictionary = if range.start == 0 {
                previous
            } else {
                deflate::dictionary_for(chunk, &range)
            };
            let input = &chunk[range];
            (
                deflate::piece(input, dictionary),
                deflate::crc32(input),
                input.len() as u64,
            )
        })
        .collect();
    let mut crc = 0;
    let mut total = 0;
    let mut pieces = Vec::with_capacity(done.len());
    for (piece, piece_crc, len) in done {
        crc = deflate::crc32_combine(crc, piece_crc, len);
        total += piece.len();
        pieces.push(piece);
    }
    (pieces, crc, total)
}

/// Files up to this size go into the tar.gz stream together with their header, compressed
/// with what precedes them as the dictionary, as one gzip stream would see them; larger
/// files share their zip pieces with the tar.gz. Small files are where a shared piece loses
/// most (every piece starts with an empty window), and they are cheap to compress twice.
pub(super) const JOIN_LIMIT: usize = 64 * 1024;

/// How much of what precedes a tar unit primes its compression. Priming costs time in
/// proportion (zlib indexes the whole dictionary), and a few previous files hold most of
/// what helps.
pub(super) const TAR_DICTIONARY: usize = 16 * 1024;

/// The most stream bytes compressed as one tar piece: small enough that a batch still
/// splits into enough pieces to keep every core busy.
const RUN_LIMIT: usize = 256 * 1024;

/// The tar stream's recent bytes, carried from one batch to the next.
#[derive(Default)]
pub(super) struct TarState {
    /// The previous entry's padding opens the next entry's unit.
    padding: usize,
    /// The last [`TAR_DICTIONARY`] bytes of the stream: exactly what precedes the next unit,
    /// since the reader's window holds just that.
    window: Vec<u8>,
}

/// One compression task: a piece of an entry's content, or an entry's tar unit (the
/// previous padding and the entry's headers, and for small files its data).
struct Task<'a> {
    input: &'a [u8],
    dictionary: &'a [u8],
}

/// Compresses a batch on all cores and returns its entries ready to write.
pub(super) fn pack_batch(
    batch: Vec<RawEntry>,
    tar: &mut TarState,
    mtime: i64,
    want_tar: bool,
    want_zip: bool,
) -> std::io::Result<Vec<PackedEntry>> {
    // The batch's part of the uncompressed tar stream, after the previous batch's window:
    // tar units and their dictionaries are slices of it, so nothing is copied per entry.
    let mut stream = std::mem::take(&mut tar.window);
    let mut units = Vec::with_capacity(batch.len());
    for entry in batch.iter().filter(|_| want_tar) {
        let is_file = matches!(entry.kind, EntryKind::File { .. });
        let size = entry.streamed_size.unwrap_or(entry.data.len() as u64);
        let start = stream.len();
        stream.resize(start + tar.padding, 0);
        stream.extend(archive::tar_headers(
            &entry.path,
            entry.kind,
            size,
            &entry.data,
            mtime,
        )?);
        let head_end = stream.len();
        let joined = is_file && entry.streamed_size.is_none() && entry.data.len() <= JOIN_LIMIT;
        if joined {
            stream.extend_from_slice(&entry.data);
        } else if is_file {
            // The data is compressed in its own pieces; of it, the stream needs only what
            // the next unit's dictionary reads (a streamed file's comes after its chunks).
            stream.extend_from_slice(last(&entry.data, TAR_DICTIONARY));
        }
        tar.padding = if is_file {
            archive::tar_padding(size)
        } else {
            0
        };
        units.push((start, if joined { stream.len() } else { head_end }, joined));
    }
    tar.window = stream[stream.len().saturating_sub(TAR_DICTIONARY)..].to_vec();
    // Units that follow each other in the stream (a joined file's unit ends where the next
    // begins) are compressed together, up to RUN_LIMIT: one deflate block per run instead of
    // one per entry, so small files cost what they cost in one gzip stream.
    let mut runs: Vec<(usize, usize, usize)> = Vec::new();
    for (i, &(start, end, _)) in units.iter().enumerate() {
        match runs.last_mut() {
            Some(run) if run.2 == start && end - run.1 <= RUN_LIMIT => run.2 = end,
            _ => runs.push((i, start, end)),
        }
    }
    let mut runs = runs.into_iter().peekable();

    // Tasks in entry order: the tar run starting at the entry (when tar.gz is wanted), then
    // the content's pieces (when the zip wants them, or the tar.gz shares them).
    let mut tasks = Vec::new();
    let mut shapes = Vec::with_capacity(batch.len());
    for (i, entry) in batch.iter().enumerate() {
        let joined = units.get(i).is_some_and(|unit| unit.2);
        let starts_run = match runs.next_if(|run| run.0 == i) {
            Some((_, start, end)) => {
                tasks.push(Task {
                    input: &stream[start..end],
                    dictionary: &stream[start.saturating_sub(TAR_DICTIONARY)..start],
                });
                true
            }
            None => false,
        };
        let is_file = matches!(entry.kind, EntryKind::File { .. });
        let pieces = if is_file && !entry.data.is_empty() && (want_zip || !joined) {
            let before = tasks.len();
            for range in deflate::cuts(entry.data.len()) {
                tasks.push(Task {
                    input: &entry.data[range.clone()],
                    dictionary: deflate::dictionary_for(&entry.data, &range),
                });
            }
            tasks.len() - before
        } else {
            0
        };
        shapes.push((joined, starts_run, pieces));
    }
    let mut done = tasks
        .into_par_iter()
        .map(|task| {
            (
                deflate::piece(task.input, task.dictionary),
                deflate::crc32(task.input),
                task.input.len() as u64,
            )
        })
        .collect::<Vec<_>>()
        .into_iter();

    let mut packed = Vec::with_capacity(batch.len());
    for (entry, (joined, starts_run, pieces)) in batch.into_iter().zip(shapes) {
        let tar_unit = if starts_run {
            done.next().expect("one result per task")
        } else {
            (Vec::new(), 0, 0)
        };
        let mut deflated = Vec::with_capacity(pieces);
        let mut deflated_len = 0;
        let mut crc = 0;
        for _ in 0..pieces {
            let (piece, piece_crc, len) = done.next().expect("one result per task");
            deflated_len += piece.len();
            deflated.push(piece);
            crc = deflate::crc32_combine(crc, piece_crc, len);
        }
        if pieces == 0 {
            crc = deflate::crc32(&entry.data);
        }
        // The raw bytes are kept only for what is stored rather than deflated.
        let size = entry.streamed_size.unwrap_or(entry.data.len() as u64);
        let mut data = entry.data;
        if archive::zip_deflates(entry.kind, data.len(), deflated_len) {
            data = Vec::new();
        }
        packed.push(PackedEntry {
            path: entry.path,
            kind: entry.kind,
            size,
            data,
            deflated,
            deflated_len,
            streamed: entry.streamed_size.is_some(),
            crc,
            tar_unit: tar_unit.0,
            tar_unit_crc: tar_unit.1,
            tar_unit_len: tar_unit.2,
            tar_unit_has_data: joined,
        });
    }
    Ok(packed)
}
