//! What pages and the API show of a release: one view built from the rows, used by both.

use entities::release::{ReleaseKind, ReleaseStatus};
use serde::Serialize;

use super::PublicUrl;
use crate::publish::LineVersion;
use crate::publish::composer::Entry;
use crate::releases::{ReleaseNotes, ReleaseWithFiles};
use crate::time::{from_seconds, rfc3339};

#[derive(Debug, Clone, Serialize)]
pub struct FileView {
    pub format: String,
    pub name: String,
    pub url: String,
    pub size: i64,
    pub sha256: String,
    pub sha1: String,
    pub md5: String,
    /// Its minisign signature, when the release is signed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minisig: Option<String>,
}

/// The release JSON of DESIGN.md; pages use the same fields.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseView {
    pub version: String,
    pub kind: ReleaseKind,
    #[serde(rename = "ref")]
    pub ref_name: String,
    pub commit: String,
    pub created_at: String,
    pub files: Vec<FileView>,
    /// `published`, or `unpublished` once its tag was deleted (files stay downloadable).
    pub status: ReleaseStatus,
    /// The commit's date (the archives' mtimes and the Drupal feed's `date`), RFC 3339.
    pub date: String,
    pub page: String,
    pub sha256sums: String,
    /// The minisign public key that signed the release, when it is signed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<String>,
    /// The signature of `SHA256SUMS`, when the release is signed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256sums_minisig: Option<String>,
    /// The provenance: a DSSE envelope holding an in-toto Statement (SLSA Provenance v1).
    pub provenance: String,
    pub notes: Option<ReleaseNotes>,
    #[serde(skip)]
    pub commit_date: String,
}

impl ReleaseView {
    /// A branch's dev snapshot, not a tag's release.
    pub fn is_dev(&self) -> bool {
        self.kind == ReleaseKind::Dev
    }

    /// Listed and in the feeds (its tag or branch still exists).
    pub fn is_published(&self) -> bool {
        self.status == ReleaseStatus::Published
    }

    /// The shell lines that download every file and check it against `SHA256SUMS`.
    pub fn verify_command(&self) -> String {
        let mut lines: Vec<String> = self
            .files
            .iter()
            .map(|f| format!("curl -fsSLO {}", f.url))
            .collect();
        lines.push(format!("curl -fsSL {} | sha256sum -c -", self.sha256sums));
        lines.join("\n")
    }

    /// The shell lines that check each file's signature with `minisign`, when it is signed.
    pub fn minisign_command(&self) -> Option<String> {
        let key = self.signing_key.as_ref()?;
        let mut lines = Vec::new();
        for file in &self.files {
            lines.push(format!("curl -fsSLO {}.minisig", file.url));
            lines.push(format!("minisign -Vm {} -P {key}", file.name));
        }
        Some(lines.join("\n"))
    }

    pub fn new(project: &str, r: &ReleaseWithFiles, public_url: &PublicUrl) -> ReleaseView {
        ReleaseView {
            version: r.release.version.clone(),
            kind: r.release.kind,
            ref_name: r.release.ref_name.clone(),
            commit: r.release.commit.clone(),
            created_at: rfc3339(r.release.created_at),
            files: r
                .files
                .iter()
                .map(|f| FileView {
                    format: f.format.clone(),
                    name: f.name.clone(),
                    url: public_url.file(project, &f.name),
                    size: f.size,
                    sha256: f.sha256.clone(),
                    sha1: f.sha1.clone(),
                    md5: f.md5.clone(),
                    minisig: f
                        .minisig
                        .is_some()
                        .then(|| format!("{}.minisig", public_url.file(project, &f.name))),
                })
                .collect(),
            status: r.release.status,
            date: rfc3339(from_seconds(r.release.commit_time)),
            page: public_url.release(project, &r.release.version),
            sha256sums: format!(
                "{}/SHA256SUMS",
                public_url.release(project, &r.release.version)
            ),
            signing_key: r.release.signing_key.clone(),
            sha256sums_minisig: r.release.signing_key.is_some().then(|| {
                format!(
                    "{}/SHA256SUMS.minisig",
                    public_url.release(project, &r.release.version)
                )
            }),
            provenance: format!(
                "{}/provenance.intoto.jsonl",
                public_url.release(project, &r.release.version)
            ),
            notes: ReleaseNotes::of(&r.release),
            commit_date: from_seconds(r.release.commit_time)
                .format("%Y-%m-%d %H:%M UTC")
                .to_string(),
        }
    }
}

/// `1234567` → `1.2 MiB`.
pub fn human_size(bytes: &i64) -> String {
    let bytes = *bytes as f64;
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024.0 {
        return format!("{bytes} B");
    }
    let mut value = bytes / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::human_size(&512), "512 B");
        assert_eq!(super::human_size(&2048), "2.0 KiB");
        assert_eq!(super::human_size(&(5 * 1024 * 1024 + 300_000)), "5.3 MiB");
    }
}

/// A project as the home page, its own page and the API show it: its releases newest first
/// (tags by version, then dev snapshots) and where its feeds are.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectView {
    pub name: String,
    pub title: String,
    pub provider: &'static str,
    pub url: String,
    /// The newest published tag release's version (else the newest dev snapshot's).
    pub latest: Option<String>,
    pub atom: String,
    /// Drupal's update-status feed (`/release-history/{project}/current`).
    pub update_feed: String,
    /// The package name in the Composer repository, when the project is published there.
    pub composer: Option<String>,
    #[serde(skip)]
    pub releases: Vec<ReleaseView>,
    /// For admins: why the name it claims is not published (another project owns it).
    #[serde(skip)]
    pub composer_problem: Option<String>,
    /// For admins: when it left the config file (RFC 3339); public views never show a
    /// disabled project.
    #[serde(skip)]
    pub disabled_since: Option<String>,
}

impl ProjectView {
    pub fn new(entry: &Entry, url: &PublicUrl) -> ProjectView {
        let Entry {
            project,
            releases: rows,
            standing,
        } = entry;
        let mut ordered: Vec<&ReleaseWithFiles> = rows.iter().collect();
        crate::publish::sort_newest_first(&mut ordered);
        let releases: Vec<ReleaseView> = ordered
            .iter()
            .map(|r| ReleaseView::new(&project.name, r, url))
            .collect();
        ProjectView {
            name: project.name.clone(),
            title: project.title.clone(),
            provider: project.provider.as_str(),
            url: url.project(&project.name),
            latest: releases
                .iter()
                .find(|r| r.status == ReleaseStatus::Published)
                .map(|r| r.version.clone()),
            atom: format!("{}/releases.atom", url.project(&project.name)),
            update_feed: format!("{}/release-history/{}/current", url.0, project.name),
            composer: standing.published_name().map(str::to_string),
            releases,
            composer_problem: standing.problem(),
            disabled_since: project.disabled_at.map(rfc3339),
        }
    }

    pub fn latest_release(&self) -> Option<&ReleaseView> {
        let version = self.latest.as_deref()?;
        self.releases.iter().find(|r| r.version == version)
    }

    pub fn tags(&self) -> impl Iterator<Item = &ReleaseView> {
        self.releases.iter().filter(|r| r.kind == ReleaseKind::Tag)
    }

    /// The newest published tag release of each line (`2.x`, `8.x-1.x`), newest line first;
    /// versions of no recognisable shape have no line and show only in the history.
    pub fn latest_of_each_line(&self) -> Vec<&ReleaseView> {
        let mut seen = std::collections::HashSet::new();
        self.tags()
            .filter(|r| r.is_published())
            .filter(|r| {
                LineVersion::parse(&r.version).is_some_and(|line| seen.insert(line.line_name()))
            })
            .collect()
    }

    pub fn snapshots(&self) -> impl Iterator<Item = &ReleaseView> {
        self.releases.iter().filter(|r| r.kind != ReleaseKind::Tag)
    }
}
