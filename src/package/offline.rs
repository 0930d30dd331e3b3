//! `baler package`: package one ref of a local repository or a URL, with no server and no
//! database, through the same [`build_archives`](super::build_archives) the worker uses.

use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};

use super::{PackageSpec, Progress, ReleaseVersion, build_archives};
use crate::config::{ArchiveFormat, Layout, default_formats, validate_project_name};
use crate::git::{Mirror, RefKind, RemoteAuth};
use crate::store::Staging;

pub struct OfflineRequest {
    /// A local repository (bare or not), or a URL to clone.
    pub source: String,
    pub reference: String,
    pub out: PathBuf,
    /// Default: the repository's directory name without `.git`.
    pub name: Option<String>,
    pub layout: Layout,
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

pub fn package(request: &OfflineRequest) -> anyhow::Result<Vec<Written>> {
    let name = match &request.name {
        Some(name) => name.clone(),
        None => default_name(&request.source)?,
    };
    validate_project_name(&name).map_err(|e| anyhow::anyhow!("--name {name:?}: {e}"))?;

    // A URL is cloned into a temporary mirror, removed afterwards; a path is read in place.
    let clone_dir;
    let mirror = if Path::new(&request.source).exists() {
        Mirror::open(Path::new(&request.source))?
    } else {
        clone_dir = tempfile::tempdir()?;
        Mirror::open_or_clone(
            &clone_dir.path().join("mirror.git"),
            &request.source,
            &request.auth,
        )
        .map_err(|e| anyhow::anyhow!("cloning {}: {e}", crate::startup::redact(&request.source)))?
        .0
    };
    let (kind, commit) = mirror.resolve(&request.reference)?.ok_or_else(|| {
        anyhow::anyhow!(
            "{:?} is not a tag, branch or commit of {}",
            request.reference,
            request.source
        )
    })?;
    let version = match kind {
        RefKind::Tag => ReleaseVersion::from_tag(&request.reference)?,
        RefKind::Branch => ReleaseVersion::from_branch(&request.reference)?,
        // A bare commit is a snapshot named after it.
        RefKind::Commit => ReleaseVersion::from_branch(&commit.id[..12])?,
    };
    let formats = if request.formats.is_empty() {
        default_formats()
    } else {
        request.formats.clone()
    };
    let spec = PackageSpec {
        project: &name,
        version: &version,
        layout: request.layout,
        formats: &formats,
    };

    std::fs::create_dir_all(&request.out)?;
    let bar = if request.progress {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} entries, {elapsed}")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    bar.set_message(format!("{name} {}", version.version));
    let on_progress = |p: Progress| {
        bar.set_length(p.entries_total);
        bar.set_position(p.entries_done);
    };
    let archives = build_archives(
        &mirror,
        &commit,
        &spec,
        &Staging::in_dir(request.out.clone()),
        &on_progress,
    )?;
    bar.finish_and_clear();

    let mut written = Vec::new();
    for archive in archives {
        let path = request.out.join(&archive.name);
        archive
            .file
            .persist(&path)
            .map_err(|e| anyhow::anyhow!("writing {}: {}", path.display(), e.error))?;
        written.push(Written {
            path,
            size: archive.checksums.size,
            sha256: archive.checksums.sha256,
        });
    }
    Ok(written)
}

/// `/src/webform/.git` and `https://host/acme/webform.git` both give `webform`.
fn default_name(source: &str) -> anyhow::Result<String> {
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
    use super::default_name;

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
}
