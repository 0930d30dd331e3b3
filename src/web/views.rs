//! What pages and the API show of a release: one view built from the rows, used by both.

use serde::Serialize;

use super::PublicUrl;
use crate::releases::ReleaseWithFiles;

#[derive(Debug, Clone, Serialize)]
pub struct FileView {
    pub format: String,
    pub name: String,
    pub url: String,
    pub size: i64,
    pub sha256: String,
    pub sha1: String,
    pub md5: String,
}

/// The release JSON of DESIGN.md; pages use the same fields.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseView {
    pub version: String,
    pub kind: String,
    #[serde(rename = "ref")]
    pub ref_name: String,
    pub commit: String,
    pub created_at: String,
    pub files: Vec<FileView>,
    #[serde(skip)]
    pub status: String,
    #[serde(skip)]
    pub commit_date: String,
    #[serde(skip)]
    pub build_log: String,
}

impl ReleaseView {
    pub fn new(project: &str, r: &ReleaseWithFiles, public_url: &PublicUrl) -> ReleaseView {
        ReleaseView {
            version: r.release.version.clone(),
            kind: r.release.kind.clone(),
            ref_name: r.release.ref_name.clone(),
            commit: r.release.commit.clone(),
            created_at: r
                .release
                .created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
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
                })
                .collect(),
            status: r.release.status.clone(),
            commit_date: chrono::DateTime::from_timestamp(r.release.commit_time, 0)
                .unwrap_or_default()
                .format("%Y-%m-%d %H:%M UTC")
                .to_string(),
            build_log: r.release.build_log.clone(),
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
