//! The Composer v2 repository: `/packages.json` points Composer at
//! `/p2/{vendor}/{package}.json` (tag releases) and `~dev.json` (branch snapshots). Each
//! version is the release's own `composer.json` (so `require`, `autoload` and `type` are the
//! package's), with baler's `name`, `version`, `time` and a `dist` pointing at the zip: its
//! `shasum` is the file's sha1 and its `reference` the commit.
//!
//! A name has one owner: the project that configures it with `composer =`, else the one that
//! published it first ([`owners`] has the whole rule). `/packages.json` and every `/p2/…` file
//! are rendered together from one [`Repository::packages`], so they cannot disagree.

pub mod owners;

use entities::release::ReleaseKind;
use serde_json::{Map, Value, json};

pub use owners::{Entry, Repository, Standing};

use super::{LineVersion, published_newest_first};
use crate::projects::Project;
use crate::releases::{ListedRelease, ReleaseWithFiles};

/// A project as a Composer package: its name and releases.
pub struct Package {
    pub name: String,
    pub project: Project,
    pub releases: Vec<ReleaseWithFiles>,
}

/// The version Composer sees: `8.x-1.2` → `1.2.0`, `2.0.3` stays; branch `1.x` → `1.x-dev`,
/// `8.x-1.x` → `1.x-dev`, any other branch → `dev-BRANCH`. `None` for a tag Composer could not
/// parse (`nightly`, `1.2-custom`), which would otherwise break the whole package for it.
pub fn composer_version(release: &ListedRelease) -> Option<String> {
    let line = LineVersion::parse(&release.version);
    if release.kind != ReleaseKind::Tag {
        return Some(match line {
            Some(line) if line.dev => {
                let numbers: Vec<String> = line.numbers.iter().map(u32::to_string).collect();
                format!("{}.x-dev", numbers.join("."))
            }
            _ => format!("dev-{}", release.ref_name),
        });
    }
    let line = line.filter(|l| !l.dev)?;
    if line
        .extra
        .as_deref()
        .is_some_and(|extra| !composer_stability(extra))
    {
        return None;
    }
    let mut numbers: Vec<String> = line.numbers.iter().map(u32::to_string).collect();
    if line.core.is_some() {
        // Drupal's `8.x-1.2` is semantic `1.2.0`.
        while numbers.len() < 3 {
            numbers.push("0".into());
        }
    }
    let mut version = numbers.join(".");
    if let Some(extra) = &line.extra {
        version = format!("{version}-{extra}");
    }
    Some(version)
}

/// The pre-release suffixes Composer's version parser accepts: `beta1`, `RC2`, `alpha.3`, …
fn composer_stability(extra: &str) -> bool {
    let lower = extra.to_ascii_lowercase();
    [
        "stable", "beta", "b", "rc", "alpha", "a", "patch", "pl", "p",
    ]
    .iter()
    .any(|label| {
        lower.strip_prefix(label).is_some_and(|rest| {
            let rest = rest.strip_prefix('.').unwrap_or(rest);
            rest.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        })
    })
}

/// `/p2/{name}.json` (`dev` false) or `~dev.json` (`dev` true).
pub fn metadata(package: &Package, dev: bool, file_url: &dyn Fn(&str) -> String) -> Value {
    let versions: Vec<Value> = published_newest_first(&package.releases)
        .into_iter()
        .filter(|r| (r.release.kind != ReleaseKind::Tag) == dev)
        .filter_map(|r| version_entry(package, r, file_url))
        .collect();
    json!({ "packages": { &package.name: versions } })
}

fn version_entry(
    package: &Package,
    r: &ReleaseWithFiles,
    file_url: &dyn Fn(&str) -> String,
) -> Option<Value> {
    let version = composer_version(&r.release)?;
    let (dist_type, file) = match r.files.iter().find(|f| f.format == "zip") {
        Some(zip) => ("zip", zip),
        None => ("tar", r.files.iter().find(|f| f.format == "tar.gz")?),
    };
    let mut entry: Map<String, Value> = r
        .release
        .composer_json
        .as_deref()
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default();
    // What Composer derives from the repository, never from the package's own file.
    entry.remove("version");
    entry.entry("type").or_insert_with(|| json!("library"));
    entry.insert("name".into(), json!(package.name));
    entry.insert("version".into(), json!(version));
    entry.insert(
        "time".into(),
        json!(crate::time::rfc3339(crate::time::from_seconds(
            r.release.commit_time
        ))),
    );
    entry.insert(
        "dist".into(),
        json!({
            "type": dist_type,
            "url": file_url(&file.name),
            "shasum": file.sha1,
            "reference": r.release.commit,
        }),
    );
    Some(Value::Object(entry))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(version: &str, kind: &str, ref_name: &str) -> ListedRelease {
        ListedRelease {
            id: 1,
            project_id: 1,
            version: version.into(),
            kind: kind.parse().unwrap(),
            ref_name: ref_name.into(),
            commit: "c".repeat(40),
            commit_time: 0,
            status: entities::release::ReleaseStatus::Published,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
            composer_json: None,
            notes: None,
            signing_key: None,
        }
    }

    #[test]
    fn versions_as_composer_reads_them() {
        let cases = [
            ("8.x-1.2", "tag", "8.x-1.2", Some("1.2.0")),
            ("8.x-2.0-beta3", "tag", "8.x-2.0-beta3", Some("2.0.0-beta3")),
            ("1.4.2", "tag", "v1.4.2", Some("1.4.2")),
            ("2.0.0-RC1", "tag", "2.0.0-RC1", Some("2.0.0-RC1")),
            ("nightly", "tag", "nightly", None),
            ("1.2.0-custom", "tag", "1.2.0-custom", None),
            ("1.x-dev", "dev", "1.x", Some("1.x-dev")),
            ("8.x-1.x-dev", "dev", "8.x-1.x", Some("1.x-dev")),
            ("2.0.x-dev", "dev", "2.0.x", Some("2.0.x-dev")),
            ("main-dev", "dev", "main", Some("dev-main")),
        ];
        for (version, kind, ref_name, expected) in cases {
            assert_eq!(
                composer_version(&release(version, kind, ref_name)).as_deref(),
                expected,
                "{version}"
            );
        }
    }
}
