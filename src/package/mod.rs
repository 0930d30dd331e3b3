//! Packaging: one walk of the git tree at a commit feeds every archive writer, with the top
//! directory of the project's layout and drupal.org's `.info` rewrite applied on the way.

pub mod archive;
pub mod attributes;
mod compress;
pub mod deflate;
pub mod drupal;
pub mod offline;
pub mod subst;
pub mod version;

use chrono::DateTime;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::config::{ArchiveFormat, Layout};
use crate::git::{CommitInfo, EntryKind, GitError, Mirror, TreeItem};
use crate::store::Staging;
use attributes::ExportAttributes;
use compress::{Compressor, PackedMessage, RawEntry, RawMessage};
pub use version::{ReleaseKind, ReleaseVersion};

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error(transparent)]
    Git(#[from] GitError),
    /// A file's `$Format:…$` expansion would pass [`subst::MAX_EXPANDED`].
    #[error("export-subst output of {path} exceeds {} MiB", limit >> 20)]
    SubstTooLarge { path: String, limit: usize },
    #[error("writing the archive: {0}")]
    Io(#[from] std::io::Error),
}

impl PackageError {
    /// Whether building the same commit again would fail the same way: the tree holds what
    /// cannot be packaged (an unsafe path, an expansion over the cap, a missing or corrupt
    /// object). Such a ref waits until it moves; anything else (a full disk, I/O) may pass
    /// on a retry.
    pub fn is_permanent(&self) -> bool {
        match self {
            PackageError::Git(e) => e.is_permanent(),
            PackageError::SubstTooLarge { .. } => true,
            // `InvalidData` is content tar cannot hold (see `archive::tar_headers`).
            PackageError::Io(e) => e.kind() == std::io::ErrorKind::InvalidData,
        }
    }
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

/// Builds every requested format of `commit` into temporary files that `staging` hands out.
/// Nothing is left behind on error: the temporary files are removed when dropped.
///
/// Three stages run at once: this thread lists the tree and reads blobs (git2 stays on it),
/// a second compresses each batch of entries on all cores (rayon), and a third writes both
/// archives and their checksums. Each file is deflated once; the zip and the tar.gz share the
/// pieces.
///
/// Memory stays bounded whatever the tree holds: batches of small files, and a file larger
/// than [`compress::STREAM_ABOVE`] is read from git once and passed on in chunks (twice when
/// the zip is wanted: its local header needs the compressed size first), so it is held whole
/// only in libgit2's buffer. `export-subst` output is capped at [`subst::MAX_EXPANDED`].
pub fn build_archives(
    mirror: &Mirror,
    commit: &CommitInfo,
    spec: &PackageSpec<'_>,
    staging: &Staging,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Vec<BuiltArchive>, PackageError> {
    let plan = plan_entries(mirror, commit)?;
    let entries_total = plan.len() as u64 + 1;

    let mut outputs = Vec::new();
    let mut files = Vec::new();
    for format in spec.formats {
        let temp = staging.temp_file()?;
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

    let (raw_tx, raw_rx) = std::sync::mpsc::sync_channel::<RawMessage>(0);
    let (packed_tx, packed_rx) = std::sync::mpsc::sync_channel::<PackedMessage>(0);
    let formats: Vec<ArchiveFormat> = spec.formats.to_vec();

    let (read_result, compress_result, write_result) = std::thread::scope(|scope| {
        let compressor = scope.spawn(move || -> std::io::Result<()> {
            let mut compressor = Compressor::new(mtime, want_tar, want_zip);
            for message in raw_rx {
                if let Some(packed) = compressor.handle(message)?
                    && packed_tx.send(packed).is_err()
                {
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
            let send = |message: RawMessage| raw_tx.send(message).is_ok();
            batch.push(RawEntry {
                path: top.clone().into_bytes(),
                kind: EntryKind::Directory,
                data: Vec::new(),
                streamed_size: None,
            });
            for PlannedEntry { item, subst } in &plan {
                let path = [top.as_bytes(), b"/", &item.path].concat();
                let is_file = matches!(item.kind, EntryKind::File { .. });
                let rewrite =
                    spec.layout == Layout::Drupal && is_file && drupal::is_info_file(&item.path);
                let mut data = match item.kind {
                    EntryKind::Directory => Vec::new(),
                    // A file that goes out as it is: read in place, and streamed if large.
                    EntryKind::File { .. } if !*subst && !rewrite => {
                        let read = mirror.with_blob(item.blob, |content| {
                            if content.len() <= compress::STREAM_ABOVE {
                                return Read::Whole(content.to_vec());
                            }
                            batch.push(RawEntry {
                                path: path.clone(),
                                kind: item.kind,
                                data: Vec::new(),
                                streamed_size: Some(content.len() as u64),
                            });
                            batch_bytes = 0;
                            if stream_file(content, want_zip, &send, std::mem::take(&mut batch)) {
                                Read::Streamed
                            } else {
                                Read::Stopped
                            }
                        })?;
                        match read {
                            Read::Whole(data) => data,
                            Read::Streamed => continue,
                            Read::Stopped => return Ok(()),
                        }
                    }
                    _ => mirror.blob(item.blob)?,
                };
                if let (true, Some(details)) = (*subst, &details) {
                    data = subst::expand(&data, details, subst::MAX_EXPANDED).map_err(|e| {
                        PackageError::SubstTooLarge {
                            path: item.display_path(),
                            limit: e.limit,
                        }
                    })?;
                }
                if rewrite {
                    data = drupal::rewrite_info(
                        &item.path,
                        &data,
                        spec.project,
                        &spec.version.version,
                        &date,
                        commit.time,
                    );
                }
                batch_bytes += data.len() + path.len() + 512;
                batch.push(RawEntry {
                    path,
                    kind: item.kind,
                    data,
                    streamed_size: None,
                });
                if batch_bytes >= BATCH_BYTES {
                    if !send(RawMessage::Batch(std::mem::take(&mut batch))) {
                        return Ok(());
                    }
                    batch_bytes = 0;
                }
            }
            if !batch.is_empty() {
                send(RawMessage::Batch(batch));
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

/// What reading a file in place gave.
enum Read {
    Whole(Vec<u8>),
    Streamed,
    /// A later stage stopped; its error explains why.
    Stopped,
}

/// Sends `batch` (whose last entry is the large file `content`), then the file in chunks: once
/// for the tar.gz and the zip's sizes, once more for the zip. Only one chunk at a time is
/// copied out of libgit2's buffer. False if a later stage stopped.
fn stream_file(
    content: &[u8],
    want_zip: bool,
    send: &impl Fn(RawMessage) -> bool,
    batch: Vec<RawEntry>,
) -> bool {
    let pass = || {
        content
            .chunks(compress::CHUNK)
            .all(|chunk| send(RawMessage::Chunk(chunk.to_vec())))
    };
    send(RawMessage::Batch(batch))
        && pass()
        && send(RawMessage::FirstPassDone)
        && (!want_zip || pass())
        && send(RawMessage::StreamEnd)
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
            && let Some(dir) = item.path.strip_suffix(b".gitattributes")
            && (dir.is_empty() || dir.ends_with(b"/"))
        {
            attribute_files.push((dir.to_vec(), mirror.blob(item.blob)?));
        }
    }
    let attributes = ExportAttributes::parse(
        attribute_files
            .iter()
            .map(|(dir, content)| (dir.as_slice(), content.as_slice())),
    );
    let mut plan = Vec::with_capacity(listed.len());
    let mut skipped_dir: Option<Vec<u8>> = None;
    for item in listed {
        if let Some(dir) = &skipped_dir {
            if item.path.starts_with(dir) {
                continue;
            }
            skipped_dir = None;
        }
        let is_dir = item.kind == EntryKind::Directory;
        if attributes.export_ignore(&item.path, is_dir) {
            if is_dir {
                skipped_dir = Some([item.path.as_slice(), b"/"].concat());
            }
            continue;
        }
        let subst =
            matches!(item.kind, EntryKind::File { .. }) && attributes.export_subst(&item.path);
        plan.push(PlannedEntry { item, subst });
    }
    Ok(plan)
}

/// Writes both archives from the packed messages, hashing each file as it is written.
fn write_archives(
    files: Vec<std::fs::File>,
    formats: &[ArchiveFormat],
    mtime: i64,
    messages: std::sync::mpsc::Receiver<PackedMessage>,
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
    // The streamed file under way: its path, kind and size.
    let mut streamed: Option<(Vec<u8>, EntryKind, u64)> = None;
    for message in messages {
        match message {
            PackedMessage::Batch(batch) => {
                for entry in &batch {
                    for sink in &mut sinks {
                        match sink {
                            Sink::Zip(zip) => zip.add(entry)?,
                            Sink::TarGz(tar) => tar.add(entry)?,
                        }
                    }
                    if entry.streamed {
                        // Counted when its last chunk is written.
                        streamed = Some((entry.path.clone(), entry.kind, entry.size));
                        continue;
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
            PackedMessage::TarPieces { pieces, crc, len } => {
                for sink in &mut sinks {
                    if let Sink::TarGz(tar) = sink {
                        tar.pieces(&pieces, crc, len)?;
                    }
                }
            }
            PackedMessage::ZipBegin { crc, deflated } => {
                let (path, kind, size) = streamed.as_ref().ok_or_else(out_of_order)?;
                for sink in &mut sinks {
                    if let Sink::Zip(zip) = sink {
                        zip.begin(path, *kind, *size, crc, deflated)?;
                    }
                }
            }
            PackedMessage::ZipData(parts) => {
                for sink in &mut sinks {
                    if let Sink::Zip(zip) = sink {
                        for part in &parts {
                            zip.data(part)?;
                        }
                    }
                }
            }
            PackedMessage::StreamEnd { deflated } => {
                let (_, _, size) = streamed.take().ok_or_else(out_of_order)?;
                for sink in &mut sinks {
                    if let (Sink::Zip(zip), true) = (&mut *sink, deflated) {
                        zip.data(&deflate::FINAL_BLOCK)?;
                    }
                }
                last_padding = archive::tar_padding(size);
                state.entries_done += 1;
                state.bytes_done += size;
                progress(state);
            }
        }
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

fn out_of_order() -> std::io::Error {
    std::io::Error::other("a streamed file's content came without its entry")
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
