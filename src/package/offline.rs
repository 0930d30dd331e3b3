//! `baler package`: package one ref of a local repository or a URL, with no server and no
//! database, through the same [`build_archives`](super::build_archives) the worker uses.

use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use tempfile::TempDir;

use super::{ArchiveFormat, Layout, PackageSpec, Progress, ReleaseVersion, build_archives};
use crate::git::{CommitInfo, Mirror, RefKind, RemoteAuth};
use crate::store::Staging;

pub struct OfflineRequest {
    /// A local repository (bare or not), or a URL to clone.
    pub source: String,
    pub reference: String,
    pub out: PathBuf,
    /// The project name, already checked as a configured one would be (the caller words the
    /// error); [`default_name`] tells one from the source.
    pub name: String,
    pub layout: Layout,
    /// Empty for [`ArchiveFormat::DEFAULTS`].
    pub formats: Vec<ArchiveFormat>,
    pub auth: RemoteAuth,
    /// Draw a progress bar (on a terminal only; elsewhere it stays hidden).
    pub progress: bool,
}

/// One written archive, as `baler package` prints it.
pub struct Written {
    pub path: PathBuf,
    pub size: u64,
    pub sha256: String,
}

/// What `package` built: from which commit, as which version, and the files.
pub struct Packaged {
    pub commit: String,
    pub version: String,
    pub files: Vec<Written>,
}

pub fn package(request: &OfflineRequest) -> anyhow::Result<Packaged> {
    let source = Source::open(request)?;
    let (kind, commit) = source.mirror.resolve(&request.reference)?.ok_or_else(|| {
        anyhow::anyhow!(
            "{:?} is not a tag, branch or commit of {}",
            request.reference,
            request.source
        )
    })?;
    let version = version_of(kind, &request.reference, &commit)?;
    let formats = if request.formats.is_empty() {
        ArchiveFormat::DEFAULTS.to_vec()
    } else {
        request.formats.clone()
    };
    let spec = PackageSpec {
        project: &request.name,
        version: &version,
        layout: request.layout,
        formats: &formats,
    };

    std::fs::create_dir_all(&request.out)?;
    let bar = progress_bar(
        request.progress,
        format!("{} {}", request.name, version.version),
    );
    let on_progress = |p: Progress| {
        bar.set_length(p.entries_total);
        bar.set_position(p.entries_done);
    };
    let staging = Staging::in_dir(request.out.clone());
    let archives = build_archives(&source.mirror, &commit, &spec, &staging, &on_progress)?;
    bar.finish_and_clear();

    let mut written = Vec::new();
    for archive in archives {
        let path = archive.file.commit(&archive.name).map_err(|e| {
            let path = request.out.join(&archive.name);
            anyhow::anyhow!("writing {}: {e}", path.display())
        })?;
        written.push(Written {
            path,
            size: archive.checksums.size,
            sha256: archive.checksums.sha256,
        });
    }
    Ok(Packaged {
        commit: commit.id,
        version: version.version,
        files: written,
    })
}

/// The repository to package: read in place, or cloned into a temporary mirror that goes
/// when this does.
struct Source {
    mirror: Mirror,
    _clone_dir: Option<TempDir>,
}

impl Source {
    fn open(request: &OfflineRequest) -> anyhow::Result<Source> {
        if Path::new(&request.source).exists() {
            return Ok(Source {
                mirror: Mirror::open(Path::new(&request.source))?,
                _clone_dir: None,
            });
        }
        let clone_dir = tempfile::tempdir()?;
        let (mirror, _) = Mirror::open_or_clone(
            &clone_dir.path().join("mirror.git"),
            &request.source,
            &request.auth,
        )
        .map_err(|e| anyhow::anyhow!("cloning {}: {e}", crate::redact::redact(&request.source)))?;
        Ok(Source {
            mirror,
            _clone_dir: Some(clone_dir),
        })
    }
}

fn version_of(
    kind: RefKind,
    reference: &str,
    commit: &CommitInfo,
) -> anyhow::Result<ReleaseVersion> {
    Ok(match kind {
        RefKind::Tag => ReleaseVersion::from_tag(reference)?,
        RefKind::Branch => ReleaseVersion::from_branch(reference)?,
        // A bare commit is a snapshot named after it.
        RefKind::Commit => ReleaseVersion::from_branch(&commit.id[..12])?,
    })
}

/// A bar drawn on a terminal when `visible`; hidden otherwise.
fn progress_bar(visible: bool, message: String) -> ProgressBar {
    let bar = if visible {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} entries, {elapsed}")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    bar.set_message(message);
    bar
}

/// `/src/webform/.git` and `https://host/acme/webform.git` both give `webform`.
pub fn default_name(source: &str) -> anyhow::Result<String> {
    let trimmed = source.trim_end_matches('/');
    let trimmed = trimmed.strip_suffix("/.git").unwrap_or(trimmed);
    let last = trimmed.rsplit(['/', ':']).next().unwrap_or(trimmed);
    let name = last.strip_suffix(".git").unwrap_or(last);
    if name.is_empty() {
        anyhow::bail!("cannot tell a project name from {source:?}; pass --name");
    }
    Ok(name.to_lowercase().replace('-', "_"))
}

#[cfg(test)]
mod tests {
    use super::{OfflineRequest, default_name, package};
    use crate::package::Layout;

    #[test]
    fn names_come_from_the_last_path_part() {
        assert_eq!(default_name("/src/webform/.git").unwrap(), "webform");
        assert_eq!(default_name("/src/webform/").unwrap(), "webform");
        assert_eq!(
            default_name("https://h/acme/My-Module.git").unwrap(),
            "my_module"
        );
        assert_eq!(default_name("git@h:acme/views.git").unwrap(), "views");
        assert!(default_name("/").is_err());
    }

    /// A web server or a mirror in front of `--out` can read what was written: the files get
    /// the mode any new file gets, not their temporary file's 0600.
    #[cfg(unix)]
    #[test]
    fn written_files_are_readable_by_others() {
        use std::os::unix::fs::PermissionsExt;

        let mode =
            |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("demo.git");
        let tag = crate::git::demo::create_demo_repository(&repo).unwrap();
        let out = dir.path().join("out");
        let written = package(&OfflineRequest {
            source: repo.to_str().unwrap().to_string(),
            reference: tag.to_string(),
            out: out.clone(),
            name: "demo".into(),
            layout: Layout::Plain,
            formats: Vec::new(),
            auth: Default::default(),
            progress: false,
        })
        .unwrap()
        .files;
        let reference = dir.path().join("reference");
        std::fs::File::create(&reference).unwrap();
        assert_eq!(written.len(), 2);
        for file in &written {
            assert_eq!(
                mode(&file.path),
                mode(&reference) & 0o644,
                "{:?}",
                file.path
            );
            if mode(&reference) & 0o044 == 0o044 {
                assert_eq!(mode(&file.path) & 0o044, 0o044);
            }
        }
        // Nothing staged is left behind.
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 2);
    }
}
