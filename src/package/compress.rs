//! The compressing stage: batches of entries, and large files streamed in chunks, become
//! deflate pieces on all cores (rayon), ready for both writers.

use rayon::prelude::*;

use super::archive::{self, PackedEntry, TarLayout};
use super::deflate::{self, DeflatedPiece};
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
    tar: TarStream,
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
            tar: TarStream::default(),
            mtime,
            want_tar,
            want_zip,
            streamed: None,
        }
    }

    /// Turns one message into what the writers need; `None` when it has nothing for them.
    pub fn handle(&mut self, message: RawMessage) -> std::io::Result<Option<PackedMessage>> {
        match message {
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
                Ok(Some(PackedMessage::Batch(self.pack_batch(batch)?)))
            }
            RawMessage::Chunk(chunk) => self.chunk(chunk),
            RawMessage::FirstPassDone => {
                let streamed = self.streamed.as_mut().ok_or_else(out_of_order)?;
                streamed.second_pass = true;
                streamed.previous.clear();
                streamed.zip_deflates = archive::zip_deflates(
                    EntryKind::File { executable: false },
                    streamed.size as usize,
                    streamed.deflated_len as usize,
                );
                Ok(self.want_zip.then_some(PackedMessage::ZipBegin {
                    crc: streamed.crc,
                    deflated: streamed.zip_deflates.then_some(streamed.deflated_len),
                }))
            }
            RawMessage::StreamEnd => {
                let streamed = self.streamed.take().ok_or_else(out_of_order)?;
                // The tar stream goes on after the file's data, as if it had passed through
                // (the layout counted the file's padding when it wrote its headers).
                self.tar.window = streamed.tail;
                Ok(Some(PackedMessage::StreamEnd {
                    deflated: streamed.zip_deflates,
                }))
            }
        }
    }

    /// A chunk of the streamed file: on the first pass deflated for the tar.gz, and counted
    /// for the zip's header; on the second, deflated or passed on as it is for the zip.
    fn chunk(&mut self, chunk: Vec<u8>) -> std::io::Result<Option<PackedMessage>> {
        let streamed = self.streamed.as_mut().ok_or_else(out_of_order)?;
        let message = if !streamed.second_pass {
            let deflated = compress_chunk(&chunk, &streamed.previous);
            streamed.crc = deflate::crc32_combine(streamed.crc, deflated.crc, chunk.len() as u64);
            streamed.deflated_len += deflated.len as u64;
            streamed.tail = last(&chunk, TAR_DICTIONARY).to_vec();
            self.want_tar.then_some(PackedMessage::TarPieces {
                pieces: deflated.pieces,
                crc: deflated.crc,
                len: chunk.len() as u64,
            })
        } else if streamed.zip_deflates {
            let deflated = compress_chunk(&chunk, &streamed.previous);
            Some(PackedMessage::ZipData(deflated.pieces))
        } else {
            streamed.previous = last(&chunk, deflate::WINDOW).to_vec();
            return Ok(Some(PackedMessage::ZipData(vec![chunk])));
        };
        streamed.previous = last(&chunk, deflate::WINDOW).to_vec();
        Ok(message)
    }

    /// Compresses a batch on all cores and returns its entries ready to write.
    fn pack_batch(&mut self, batch: Vec<RawEntry>) -> std::io::Result<Vec<PackedEntry>> {
        let tar_entries = if self.want_tar { &batch[..] } else { &[] };
        let tar = TarBatch::lay_out(tar_entries, &mut self.tar, self.mtime)?;
        let BatchWork { tasks, entries } = BatchWork::plan(&batch, &tar, self.want_zip);
        let done = tasks
            .into_par_iter()
            .map(|task| DeflatedPiece::of(task.input, task.dictionary))
            .collect::<Vec<_>>();
        Ok(assemble(batch, entries, done))
    }
}

fn out_of_order() -> std::io::Error {
    std::io::Error::other("a streamed file's chunks came without its entry")
}

fn last(bytes: &[u8], n: usize) -> &[u8] {
    &bytes[bytes.len().saturating_sub(n)..]
}

/// Deflate pieces compressed apart and joined in order, the CRC-32 of what they hold, and
/// their total length.
struct Deflated {
    pieces: Vec<Vec<u8>>,
    crc: u32,
    len: usize,
}

impl Deflated {
    fn join(pieces: impl IntoIterator<Item = DeflatedPiece>) -> Deflated {
        let pieces = pieces.into_iter();
        let mut joined = Deflated {
            pieces: Vec::with_capacity(pieces.size_hint().0),
            crc: 0,
            len: 0,
        };
        for piece in pieces {
            joined.crc = deflate::crc32_combine(joined.crc, piece.crc, piece.input_len);
            joined.len += piece.bytes.len();
            joined.pieces.push(piece.bytes);
        }
        joined
    }
}

/// A chunk of a streamed file as deflate pieces, cut as [`deflate::cuts`] cuts the whole
/// file. `previous` is what precedes the chunk.
fn compress_chunk(chunk: &[u8], previous: &[u8]) -> Deflated {
    let done: Vec<DeflatedPiece> = deflate::cuts(chunk.len())
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|range| {
            let dictionary = if range.start == 0 {
                previous
            } else {
                deflate::dictionary_for(chunk, &range)
            };
            DeflatedPiece::of(&chunk[range], dictionary)
        })
        .collect();
    Deflated::join(done)
}

/// Files up to this size go into the tar.gz stream together with their header, compressed
/// with what precedes them as the dictionary, as one gzip stream would see them; larger
/// files share their zip pieces with the tar.gz. Small files are where a shared piece loses
/// most (every piece starts with an empty window), and they are cheap to compress twice.
const JOIN_LIMIT: usize = 64 * 1024;

/// How much of what precedes a tar unit primes its compression. Priming costs time in
/// proportion (zlib indexes the whole dictionary), and a few previous files hold most of
/// what helps.
const TAR_DICTIONARY: usize = 16 * 1024;

/// The most stream bytes compressed as one tar piece: small enough that a batch still
/// splits into enough pieces to keep every core busy.
const RUN_LIMIT: usize = 256 * 1024;

/// The uncompressed tar stream, carried from one batch to the next.
#[derive(Default)]
struct TarStream {
    layout: TarLayout,
    /// The last [`TAR_DICTIONARY`] bytes of the stream: exactly what precedes the next unit,
    /// since the reader's window holds just that.
    window: Vec<u8>,
}

/// A batch's part of the uncompressed tar stream, after the previous batch's window: tar
/// units and their dictionaries are slices of it, so nothing is copied per entry.
struct TarBatch {
    stream: Vec<u8>,
    /// One per entry, in order.
    units: Vec<TarUnit>,
}

/// An entry's unit, `stream[start..end]`: the previous entry's padding and the entry's
/// headers, and the entry's data when `has_data` (a small file, joined to its headers).
struct TarUnit {
    start: usize,
    end: usize,
    has_data: bool,
}

/// Units that follow each other in the stream, compressed as one piece; the first is
/// `first_entry`'s.
struct TarRun {
    first_entry: usize,
    start: usize,
    end: usize,
}

impl TarBatch {
    fn lay_out(entries: &[RawEntry], tar: &mut TarStream, mtime: i64) -> std::io::Result<TarBatch> {
        let mut stream = std::mem::take(&mut tar.window);
        let mut units = Vec::with_capacity(entries.len());
        for entry in entries {
            let is_file = matches!(entry.kind, EntryKind::File { .. });
            let size = entry.streamed_size.unwrap_or(entry.data.len() as u64);
            let start = stream.len();
            let (path, kind, data) = (&entry.path, entry.kind, &entry.data);
            tar.layout
                .append_head(&mut stream, path, kind, size, data, mtime)?;
            let head_end = stream.len();
            let has_data = is_file && entry.streamed_size.is_none() && data.len() <= JOIN_LIMIT;
            if has_data {
                stream.extend_from_slice(data);
            } else if is_file {
                // The data is compressed in its own pieces; of it, the stream needs only what
                // the next unit's dictionary reads (a streamed file's comes after its chunks).
                stream.extend_from_slice(last(data, TAR_DICTIONARY));
            }
            let end = if has_data { stream.len() } else { head_end };
            units.push(TarUnit {
                start,
                end,
                has_data,
            });
        }
        tar.window = last(&stream, TAR_DICTIONARY).to_vec();
        Ok(TarBatch { stream, units })
    }

    /// Units that follow each other in the stream (a joined file's unit ends where the next
    /// begins) are compressed together, up to [`RUN_LIMIT`]: one deflate block per run
    /// instead of one per entry, so small files cost what they cost in one gzip stream.
    fn runs(&self) -> Vec<TarRun> {
        let mut runs: Vec<TarRun> = Vec::new();
        for (i, unit) in self.units.iter().enumerate() {
            match runs.last_mut() {
                Some(run) if run.end == unit.start && unit.end - run.start <= RUN_LIMIT => {
                    run.end = unit.end;
                }
                _ => runs.push(TarRun {
                    first_entry: i,
                    start: unit.start,
                    end: unit.end,
                }),
            }
        }
        runs
    }
}

/// One compression task: a piece of an entry's content, or a run of tar units.
struct Task<'a> {
    input: &'a [u8],
    dictionary: &'a [u8],
}

/// What a batch asks of the cores: the tasks, in entry order, and which results are whose.
struct BatchWork<'a> {
    tasks: Vec<Task<'a>>,
    entries: Vec<EntryResults>,
}

/// An entry's share of the results, in task order: the tar run that starts at it (if one
/// does), then its content's pieces.
struct EntryResults {
    starts_run: bool,
    pieces: usize,
    tar_unit_has_data: bool,
}

impl<'a> BatchWork<'a> {
    /// For each entry: the tar run starting at it (when tar.gz is wanted), then the content's
    /// pieces (when the zip wants them, or the tar.gz shares them).
    fn plan(batch: &'a [RawEntry], tar: &'a TarBatch, want_zip: bool) -> BatchWork<'a> {
        let mut runs = tar.runs().into_iter().peekable();
        let mut tasks = Vec::new();
        let mut entries = Vec::with_capacity(batch.len());
        for (i, entry) in batch.iter().enumerate() {
            let tar_unit_has_data = tar.units.get(i).is_some_and(|unit| unit.has_data);
            let run = runs.next_if(|run| run.first_entry == i);
            if let Some(TarRun { start, end, .. }) = run {
                tasks.push(Task {
                    input: &tar.stream[start..end],
                    dictionary: &tar.stream[start.saturating_sub(TAR_DICTIONARY)..start],
                });
            }
            let is_file = matches!(entry.kind, EntryKind::File { .. });
            let before = tasks.len();
            if is_file && !entry.data.is_empty() && (want_zip || !tar_unit_has_data) {
                tasks.extend(deflate::cuts(entry.data.len()).map(|range| Task {
                    input: &entry.data[range.clone()],
                    dictionary: deflate::dictionary_for(&entry.data, &range),
                }));
            }
            entries.push(EntryResults {
                starts_run: run.is_some(),
                pieces: tasks.len() - before,
                tar_unit_has_data,
            });
        }
        BatchWork { tasks, entries }
    }
}

/// Gives each entry its results (`done`, in task order) and keeps its raw bytes only if the
/// zip stores rather than deflates it.
fn assemble(
    batch: Vec<RawEntry>,
    entries: Vec<EntryResults>,
    done: Vec<DeflatedPiece>,
) -> Vec<PackedEntry> {
    let mut done = done.into_iter();
    batch
        .into_iter()
        .zip(entries)
        .map(|(entry, results)| {
            let tar_unit = results
                .starts_run
                .then(|| done.next().expect("one result per task"));
            let content = Deflated::join(done.by_ref().take(results.pieces));
            let crc = if results.pieces == 0 {
                deflate::crc32(&entry.data)
            } else {
                content.crc
            };
            let size = entry.streamed_size.unwrap_or(entry.data.len() as u64);
            let mut data = entry.data;
            if archive::zip_deflates(entry.kind, data.len(), content.len) {
                data = Vec::new();
            }
            PackedEntry {
                path: entry.path,
                kind: entry.kind,
                size,
                data,
                deflated: content.pieces,
                deflated_len: content.len,
                streamed: entry.streamed_size.is_some(),
                crc,
                tar_unit,
                tar_unit_has_data: results.tar_unit_has_data,
            }
        })
        .collect()
}
