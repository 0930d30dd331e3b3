//! The reading stage: lists the tree at a commit, applies `export-ignore` and `export-subst`,
//! reads each blob (git2 stays on this thread), applies the layout's `.info` rewrite, and
//! hands the compressing stage batches of entries, or a large file in chunks.

use std::ops::ControlFlow;
use std::sync::mpsc::SyncSender;

use chrono::DateTime;

use super::attributes::ExportAttributes;
use super::compress::{self, RawEntry, RawMessage};
use super::{ArchiveFormat, Layout, PackageError, PackageSpec, drupal, subst};
use crate::git::{CommitDetails, CommitInfo, EntryKind, Mirror, TreeItem};

/// Raw entries go to the compressing stage in batches of about this many bytes; with the
/// batch being compressed and the one being written, at most three are in memory.
const BATCH_BYTES: usize = 2 << 20;

/// An entry that goes into archives, and whether its `$Format:…$` are expanded.
pub(super) struct PlannedEntry {
    item: TreeItem,
    subst: bool,
}

/// Lists the tree and applies `export-ignore` (an ignored directory takes everything under it
/// along) and `export-subst`, reading the attributes from the tree's `.gitattributes` files.
pub(super) fn plan_entries(
    mirror: &Mirror,
    commit: &CommitInfo,
) -> Result<Vec<PlannedEntry>, PackageError> {
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

/// The reading stage's state: what it reads for, and the batch it is filling.
pub(super) struct Reader<'a> {
    mirror: &'a Mirror,
    commit: &'a CommitInfo,
    spec: &'a PackageSpec<'a>,
    /// The commit's date (YYYY-MM-DD), for drupal's `.info` rewrite.
    date: String,
    /// What `$Format:…$` expands to; read only when some file asks for it.
    details: Option<CommitDetails>,
    want_zip: bool,
    out: SyncSender<RawMessage>,
    batch: Vec<RawEntry>,
    /// About how much the batch holds, to cut it at [`BATCH_BYTES`].
    batch_bytes: usize,
}

/// What reading a file in place gave.
enum InPlace {
    Whole(Vec<u8>),
    Streamed,
    /// A later stage stopped; its error explains why.
    Stopped,
}

impl<'a> Reader<'a> {
    pub fn new(
        mirror: &'a Mirror,
        commit: &'a CommitInfo,
        spec: &'a PackageSpec<'a>,
        plan: &[PlannedEntry],
        out: SyncSender<RawMessage>,
    ) -> Result<Reader<'a>, PackageError> {
        let details = if plan.iter().any(|entry| entry.subst) {
            Some(mirror.commit_details(&commit.id)?)
        } else {
            None
        };
        Ok(Reader {
            mirror,
            commit,
            spec,
            date: DateTime::from_timestamp(commit.time, 0)
                .unwrap_or_default()
                .format("%Y-%m-%d")
                .to_string(),
            details,
            want_zip: spec.formats.contains(&ArchiveFormat::Zip),
            out,
            batch: Vec::new(),
            batch_bytes: 0,
        })
    }

    /// Sends the top directory, then every planned entry under it. Returns early, and
    /// without an error, when a later stage stopped: that stage's error explains why.
    pub fn run(mut self, plan: &[PlannedEntry]) -> Result<(), PackageError> {
        let top = self.spec.top_dir();
        self.batch.push(RawEntry {
            path: top.clone().into_bytes(),
            kind: EntryKind::Directory,
            data: Vec::new(),
            streamed_size: None,
        });
        for entry in plan {
            let path = [top.as_bytes(), b"/", &entry.item.path].concat();
            if self.read(entry, path)?.is_break() {
                return Ok(());
            }
        }
        if !self.batch.is_empty() {
            let batch = std::mem::take(&mut self.batch);
            self.send(RawMessage::Batch(batch));
        }
        Ok(())
    }

    /// Reads one entry, transforms it as the attributes and the layout say, and adds it to
    /// the batch; a large file that goes out as it is leaves at once, in chunks.
    fn read(
        &mut self,
        PlannedEntry { item, subst }: &PlannedEntry,
        path: Vec<u8>,
    ) -> Result<ControlFlow<()>, PackageError> {
        let is_file = matches!(item.kind, EntryKind::File { .. });
        let rewrite =
            self.spec.layout == Layout::Drupal && is_file && drupal::is_info_file(&item.path);
        let mut data = match item.kind {
            EntryKind::Directory => Vec::new(),
            // A file that goes out as it is: read in place, and streamed if large.
            EntryKind::File { .. } if !*subst && !rewrite => {
                match self.read_in_place(item, &path)? {
                    InPlace::Whole(data) => data,
                    InPlace::Streamed => return Ok(ControlFlow::Continue(())),
                    InPlace::Stopped => return Ok(ControlFlow::Break(())),
                }
            }
            _ => self.mirror.blob(item.blob)?,
        };
        if *subst && let Some(details) = &self.details {
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
                self.spec.project,
                &self.spec.version.version,
                &self.date,
                self.commit.time,
            );
        }
        Ok(self.push(RawEntry {
            path,
            kind: item.kind,
            data,
            streamed_size: None,
        }))
    }

    /// Copies a small file out of libgit2's buffer; sends a large one from it, in chunks,
    /// after the batch it ends.
    fn read_in_place(&mut self, item: &TreeItem, path: &[u8]) -> Result<InPlace, PackageError> {
        let mirror = self.mirror;
        let read = mirror.with_blob(item.blob, |content| {
            if content.len() <= compress::STREAM_ABOVE {
                return InPlace::Whole(content.to_vec());
            }
            self.batch.push(RawEntry {
                path: path.to_vec(),
                kind: item.kind,
                data: Vec::new(),
                streamed_size: Some(content.len() as u64),
            });
            self.batch_bytes = 0;
            if self.stream_file(content) {
                InPlace::Streamed
            } else {
                InPlace::Stopped
            }
        })?;
        Ok(read)
    }

    /// Sends the batch (whose last entry is the large file `content`), then the file in
    /// chunks: once for the tar.gz and the zip's sizes, once more for the zip. Only one chunk
    /// at a time is copied out of libgit2's buffer. False if a later stage stopped.
    fn stream_file(&mut self, content: &[u8]) -> bool {
        let batch = std::mem::take(&mut self.batch);
        let pass = || {
            content
                .chunks(compress::CHUNK)
                .all(|chunk| self.send(RawMessage::Chunk(chunk.to_vec())))
        };
        self.send(RawMessage::Batch(batch))
            && pass()
            && self.send(RawMessage::FirstPassDone)
            && (!self.want_zip || pass())
            && self.send(RawMessage::StreamEnd)
    }

    /// Adds an entry to the batch, and sends the batch once it holds [`BATCH_BYTES`].
    fn push(&mut self, entry: RawEntry) -> ControlFlow<()> {
        self.batch_bytes += entry.data.len() + entry.path.len() + 512;
        self.batch.push(entry);
        if self.batch_bytes >= BATCH_BYTES {
            let batch = std::mem::take(&mut self.batch);
            if !self.send(RawMessage::Batch(batch)) {
                return ControlFlow::Break(());
            }
            self.batch_bytes = 0;
        }
        ControlFlow::Continue(())
    }

    /// False if a later stage stopped.
    fn send(&self, message: RawMessage) -> bool {
        self.out.send(message).is_ok()
    }
}
