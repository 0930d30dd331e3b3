//! Packaging: one walk of the git tree at a commit feeds every archive writer, with the top
//! directory of the project's layout and drupal.org's `.info` rewrite applied on the way.

pub mod archive;
pub mod attributes;
pub mod deflate;
pub mod drupal;
pub mod offline;
pub mod subst;
pub mod version;

use std::path::Path;

use chrono::DateTime;
use rayon::prelude::*;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::config::{ArchiveFormat, Layout};
use crate::git::{CommitInfo, EntryKind, GitError, Mirror, TreeItem};
use archive::PackedEntry;
use attributes::ExportAttributes;
pub use version::{ReleaseKind, ReleaseVersion};

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("writing the archive: {0}")]
    Io(#[from] std::io::Error),
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

/// A finished archive in a temporary file beside its final place; the store renames it in.
pub struct BuiltArchive {
    pub format: ArchiveFormat,
    pub name: String,
    pub file: tempfile::TempPath,
    pub checksums: Checksums,
}

/// How far a build is, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub entries_done: u64,
    pub entries_total: u64,
    pub bytes_done: u64,
}

/// Raw entries go to the compressing stage in batches of about this many bytes; with the
/// batch being compressed and the one being written, at most three are in memory.
const BATCH_BYTES: usize = 2 << 20;

/// An entry read from git, transformed, not yet compressed.
struct RawEntry {
    path: String,
    kind: EntryKind,
    data: Vec<u8>,
}

/// Builds every requested format of `commit` into temporary files in `staging_dir`.
/// Nothing is left behind on error: the temporary files are removed when dropped.
///
/// Three stages run at once: this thread lists the tree and reads blobs (git2 stays on it),
/// a second compresses each batch of entries on all cores (rayon), and a third writes both
/// archives and their checksums. Each file is deflated once; the zip and the tar.gz share the
/// pieces.
pub fn build_archives(
    mirror: &Mirror,
    commit: &CommitInfo,
    spec: &PackageSpec<'_>,
    staging_dir: &Path,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Vec<BuiltArchive>, PackageError> {
    std::fs::create_dir_all(staging_dir)?;
    let plan = plan_entries(mirror, commit)?;
    let entries_total = plan.len() as u64 + 1;

    let mut outputs = Vec::new();
    let mut files = Vec::new();
    for format in spec.formats {
        let temp = tempfile::Builder::new()
            .prefix(crate::store::TEMP_PREFIX)
            .tempfile_in(staging_dir)?;
        files.push(temp.reopen()?);
        outputs.push((*format, temp.into_temp_path()));
    }
    let want_tar = spec.formats.contains(&ArchiveFormat::TarGz);
    let want_zip = spec.formats.contains(&ArchiveFormat::Zip);

    let top = spec.top_dir();
    let date = DateTime::from_timestamp(commit.time, 0)
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string();
    let details = if plan.iter().any(|entry| entry.subst) {
        Some(mirror.commit_details(&commit.id)?)
    } else {
        None
    };
    let mtime = commit.time;

    let (raw_tx, raw_rx) = std::sync::mpsc::sync_channel::<Vec<RawEntry>>(0);
    let (packed_tx, packed_rx) = std::sync::mpsc::sync_channel::<Vec<PackedEntry>>(0);
    let formats: Vec<ArchiveFormat> = spec.formats.to_vec();

    let (read_result, compress_result, write_result) = std::thread::scope(|scope| {
        let compressor = scope.spawn(move || -> std::io::Result<()> {
            let mut tar = TarState::default();
            for batch in raw_rx {
                let packed = pack_batch(batch, &mut tar, mtime, want_tar, want_zip)?;
                if packed_tx.send(packed).is_err() {
                    break;
                }
            }
            Ok(())
        });
        let writer = scope.spawn(move || -> std::io::Result<Vec<Checksums>> {
            write_archives(files, &formats, mtime, packed_rx, entries_total, progress)
        });

        let read = (|| -> Result<(), PackageError> {
            let mut batch = Vec::new();
            let mut batch_bytes = 0;
            let send = |batch: Vec<RawEntry>| raw_tx.send(batch).is_ok();
            batch.push(RawEntry {
                path: top.clone(),
                kind: EntryKind::Directory,
                data: Vec::new(),
            });
            for PlannedEntry { item, subst } in &plan {
                let mut data = match item.kind {
                    EntryKind::Directory => Vec::new(),
                    _ => mirror.blob(item.blob)?,
                };
                if let (true, Some(details)) = (*subst, &details) {
                    data = subst::expand(&data, details);
                }
                if spec.layout == Layout::Drupal
                    && matches!(item.kind, EntryKind::File { .. })
                    && drupal::is_info_file(&item.path)
                {
                    data = drupal::rewrite_info(
                        &item.path,
                        &data,
                        spec.project,
                        &spec.version.version,
                        &date,
                        commit.time,
                    );
                }
                batch_bytes += data.len() + item.path.len() + 512;
                batch.push(RawEntry {
                    path: format!("{top}/{}", item.path),
                    kind: item.kind,
                    data,
                });
                if batch_bytes >= BATCH_BYTES {
                    if !send(std::mem::take(&mut batch)) {
                        return Ok(());
                    }
                    batch_bytes = 0;
                }
            }
            if !batch.is_empty() {
                send(batch);
            }
            Ok(())
        })();
        drop(raw_tx);
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

    Ok(outputs
        .into_iter()
        .zip(checksums)
        .map(|((format, file), checksums)| BuiltArchive {
            format,
            name: spec.version.file_name(spec.project, format.extension()),
            checksums,
            file,
        })
        .collect())
}

/// An entry that goes into archives, and whether its `$Format:…$` are expanded.
struct PlannedEntry {
    item: TreeItem,
    subst: bool,
}

/// Lists the tree and applies `export-ignore` (an ignored directory takes everything under it
/// along) and `export-subst`, reading the attributes from the tree's `.gitattributes` files.
fn plan_entries(mirror: &Mirror, commit: &CommitInfo) -> Result<Vec<PlannedEntry>, PackageError> {
    let listed = mirror.list_tree(&commit.id)?;
    let mut attribute_files = Vec::new();
    for item in &listed {
        if matches!(item.kind, EntryKind::File { .. })
            && let Some(dir) = item.path.strip_suffix(".gitattributes")
            && (dir.is_empty() || dir.ends_with('/'))
        {
            attribute_files.push((dir.to_string(), mirror.blob(item.blob)?));
        }
    }
    let attributes = ExportAttributes::parse(
        attribute_files
            .iter()
            .map(|(dir, content)| (dir.as_str(), content.as_slice())),
    );
    let mut plan = Vec::with_capacity(listed.len());
    let mut skipped_dir: Option<String> = None;
    for item in listed {
        if let Some(dir) = &skipped_dir {
            if item.path.starts_with(dir.as_str()) {
                continue;
            }
            skipped_dir = None;
        }
        let is_dir = item.kind == EntryKind::Directory;
        if attributes.export_ignore(&item.path, is_dir) {
            if is_dir {
                skipped_dir = Some(format!("{}/", item.path));
            }
            continue;
        }
        let subst =
            matches!(item.kind, EntryKind::File { .. }) && attributes.export_subst(&item.path);
        plan.push(PlannedEntry { item, subst });
    }
    Ok(plan)
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

/// The tar stream's recent bytes, carried from one batch to the next.
#[derive(Default)]
struct TarState {
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
fn pack_batch(
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
        let start = stream.len();
        stream.resize(start + tar.padding, 0);
        stream.extend(archive::tar_headers(
            &entry.path,
            entry.kind,
            entry.data.len() as u64,
            &entry.data,
            mtime,
        )?);
        let head_end = stream.len();
        if is_file {
            stream.extend_from_slice(&entry.data);
            tar.padding = archive::tar_padding(entry.data.len() as u64);
        } else {
            tar.padding = 0;
        }
        let joined = is_file && entry.data.len() <= JOIN_LIMIT;
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
        let mut deflated = Vec::new();
        let mut crc = 0;
        for _ in 0..pieces {
            let (piece, piece_crc, len) = done.next().expect("one result per task");
            deflated.extend(piece);
            crc = deflate::crc32_combine(crc, piece_crc, len);
        }
        if pieces == 0 {
            crc = deflate::crc32(&entry.data);
        }
        // The raw bytes are kept only for what is stored rather than deflated.
        let size = entry.data.len() as u64;
        let mut data = entry.data;
        if archive::zip_deflates(entry.kind, data.len(), deflated.len()) {
            data = Vec::new();
        }
        packed.push(PackedEntry {
            path: entry.path,
            kind: entry.kind,
            size,
            data,
            deflated,
            crc,
            tar_unit: tar_unit.0,
            tar_unit_crc: tar_unit.1,
            tar_unit_len: tar_unit.2,
            tar_unit_has_data: joined,
        });
    }
    Ok(packed)
}

/// Writes both archives from the packed batches, hashing each file as it is written.
fn write_archives(
    files: Vec<std::fs::File>,
    formats: &[ArchiveFormat],
    mtime: i64,
    batches: std::sync::mpsc::Receiver<Vec<PackedEntry>>,
    entries_total: u64,
    progress: &(dyn Fn(Progress) + Sync),
) -> std::io::Result<Vec<Checksums>> {
    let mut sinks = files
        .into_iter()
        .zip(formats)
        .map(|(file, format)| {
            let out = HashingWriter::new(file);
            Ok(match format {
                ArchiveFormat::Zip => Sink::Zip(archive::ZipSink::new(out, mtime)),
                ArchiveFormat::TarGz => Sink::TarGz(archive::TarGzSink::new(out)?),
            })
        })
        .collect::<std::io::Result<Vec<Sink>>>()?;
    let mut state = Progress {
        entries_done: 0,
        entries_total,
        bytes_done: 0,
    };
    let mut last_padding = 0;
    for batch in batches {
        for entry in &batch {
            for sink in &mut sinks {
                match sink {
                    Sink::Zip(zip) => zip.add(entry)?,
                    Sink::TarGz(tar) => tar.add(entry)?,
                }
            }
            last_padding = if matches!(entry.kind, EntryKind::File { .. }) {
                archive::tar_padding(entry.size)
            } else {
                0
            };
            state.entries_done += 1;
            state.bytes_done += entry.size;
        }
        progress(state);
    }
    if state.entries_done != entries_total {
        return Err(std::io::Error::other(
            "packaging stopped before the last entry",
        ));
    }
    // tar ends with the last entry's padding and two zero blocks.
    let trailer = vec![0u8; last_padding + 1024];
    sinks
        .into_iter()
        .map(|sink| match sink {
            Sink::Zip(zip) => zip.finish()?.finish(),
            Sink::TarGz(tar) => tar
                .finish(
                    &deflate::piece(&trailer, &[]),
                    deflate::crc32(&trailer),
                    trailer.len() as u64,
                )?
                .finish(),
        })
        .collect()
}

/// One archive being written, in the order of the requested formats.
enum Sink {
    Zip(archive::ZipSink<HashingWriter>),
    TarGz(archive::TarGzSink<HashingWriter>),
}

/// A buffered file that feeds every digest as bytes go by, so checksums need no second read.
struct HashingWriter {
    file: std::io::BufWriter<std::fs::File>,
    sha256: Sha256,
    sha1: Sha1,
    md5: md5::Md5,
    size: u64,
}

impl HashingWriter {
    fn new(file: std::fs::File) -> HashingWriter {
        HashingWriter {
            file: std::io::BufWriter::with_capacity(1 << 20, file),
            sha256: Sha256::new(),
            sha1: Sha1::new(),
            md5: md5::Md5::new(),
            size: 0,
        }
    }

    /// Flushes and syncs the file, and returns its checksums.
    fn finish(self) -> std::io::Result<Checksums> {
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

impl std::io::Write for HashingWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(bytes)?;
        self.sha256.update(&bytes[..n]);
        self.sha1.update(&bytes[..n]);
        self.md5.update(&bytes[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}
