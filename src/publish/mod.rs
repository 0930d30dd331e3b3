//! What release data looks like to the clients that read it: Drupal's update module
//! ([`drupal`]), Composer ([`composer`]) and feed readers ([`atom`]). Everything here is
//! computed on read from the release rows, so a release shows up (or leaves, when unpublished)
//! the moment its row changes; nothing is cached that could go stale.
//!
//! [`LineVersion`] reads a version the way both ecosystems do, and orders releases newest
//! first for every listing.

pub mod atom;
pub mod composer;
pub mod drupal;

use entities::release::{ReleaseKind, ReleaseStatus};
use std::cmp::Ordering;

use crate::releases::ReleaseWithFiles;

/// A version split into its release line and numbers: `8.x-1.2`, `2.0.3-beta1`, `8.x-1.x-dev`,
/// `2.0.x-dev`. Versions of other shapes (`main-dev`, `nightly`) have none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineVersion {
    /// The Drupal core prefix: `Some(8)` for `8.x-1.2`.
    pub core: Option<u32>,
    /// `[1, 2]` for `8.x-1.2`, `[2, 0, 3]` for `2.0.3`; a dev snapshot's numbers stop before
    /// its `x` (`[2, 0]` for `2.0.x-dev`).
    pub numbers: Vec<u32>,
    /// What follows the numbers of a tag: `beta1` in `2.0.3-beta1`.
    pub extra: Option<String>,
    /// A branch snapshot (`…x-dev`).
    pub dev: bool,
}

impl LineVersion {
    pub fn parse(version: &str) -> Option<LineVersion> {
        let (core, rest) = match version.split_once(".x-") {
            Some((core, rest))
                if !core.is_empty()
                    && core.bytes().all(|b| b.is_ascii_digit())
                    && rest.starts_with(|c: char| c.is_ascii_digit()) =>
            {
                (Some(core.parse().ok()?), rest)
            }
            _ => (None, version),
        };
        if let Some(line) = rest.strip_suffix(".x-dev") {
            let numbers = numbers(line)?;
            return (numbers.len() <= 2).then_some(LineVersion {
                core,
                numbers,
                extra: None,
                dev: true,
            });
        }
        let (plain, extra) = match rest.split_once('-') {
            Some((plain, extra)) => (plain, Some(extra)),
            None => (rest, None),
        };
        let extra_ok = extra.is_none_or(|e| {
            !e.is_empty() && e.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')
        });
        let numbers = numbers(plain)?;
        (extra_ok && numbers.len() <= 4).then(|| LineVersion {
            core,
            numbers,
            extra: extra.map(str::to_string),
            dev: false,
        })
    }

    /// The major version: `1` for `8.x-1.2` and for `1.4.0`.
    pub fn major(&self) -> u32 {
        self.numbers[0]
    }

    /// The major line a project page groups releases by: `8.x-1.x` for `8.x-1.2`, `2.x` for
    /// `2.0.3`.
    pub fn line_name(&self) -> String {
        let core = self.core.map(|c| format!("{c}.x-")).unwrap_or_default();
        format!("{core}{}.x", self.major())
    }

    /// The release line as Drupal's `supported_branches` names it: `8.x-1.` for `8.x-1.2`,
    /// `2.0.` for `2.0.3` and `2.0.x-dev`.
    pub fn branch_prefix(&self) -> String {
        let mut prefix = self.core.map(|c| format!("{c}.x-")).unwrap_or_default();
        let kept = if self.core.is_some() { 1 } else { 2 };
        for n in self.numbers.iter().take(kept) {
            prefix.push_str(&format!("{n}."));
        }
        prefix
    }

    /// True when `tag` belongs to this version's line: the same core and the same major (for
    /// `8.x-` versions) or major.minor (semantic versions); a dev snapshot's line is the
    /// numbers before its `x`.
    pub fn holds(&self, tag: &LineVersion) -> bool {
        let kept = match (self.dev, self.core) {
            (true, _) => self.numbers.len(),
            (false, Some(_)) => 1,
            (false, None) => 2.min(self.numbers.len()),
        };
        self.core == tag.core && tag.numbers.starts_with(&self.numbers[..kept])
    }

    /// Newest first: higher numbers first; a stable release before its pre-releases; dev
    /// snapshots after every tag.
    pub fn newest_first(&self, other: &LineVersion) -> Ordering {
        self.dev
            .cmp(&other.dev)
            .then_with(|| other.numbers.cmp(&self.numbers))
            .then_with(|| self.extra.is_some().cmp(&other.extra.is_some()))
            .then_with(|| other.extra.cmp(&self.extra))
    }
}

fn numbers(text: &str) -> Option<Vec<u32>> {
    let numbers = text
        .split('.')
        .map(|n| {
            (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .then(|| n.parse().ok())
                .flatten()
        })
        .collect::<Option<Vec<u32>>>()?;
    (!numbers.is_empty()).then_some(numbers)
}

/// Published releases, newest first: tags by version (then by commit date), dev snapshots
/// after them; versions of no recognisable shape last, by commit date.
pub fn published_newest_first(releases: &[ReleaseWithFiles]) -> Vec<&ReleaseWithFiles> {
    let mut published: Vec<&ReleaseWithFiles> = releases
        .iter()
        .filter(|r| r.release.status == ReleaseStatus::Published)
        .collect();
    sort_newest_first(&mut published);
    published
}

/// Sorts releases newest first, as [`published_newest_first`] describes.
pub fn sort_newest_first(releases: &mut [&ReleaseWithFiles]) {
    releases.sort_by(|a, b| {
        let (va, vb) = (
            LineVersion::parse(&a.release.version),
            LineVersion::parse(&b.release.version),
        );
        let by_kind =
            (a.release.kind != ReleaseKind::Tag).cmp(&(b.release.kind != ReleaseKind::Tag));
        let by_version = match (&va, &vb) {
            (Some(va), Some(vb)) => va.newest_first(vb),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        by_kind
            .then(by_version)
            .then_with(|| b.release.commit_time.cmp(&a.release.commit_time))
            .then_with(|| b.release.id.cmp(&a.release.id))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> LineVersion {
        LineVersion::parse(text).unwrap_or_else(|| panic!("{text} parses"))
    }

    #[test]
    fn versions_of_both_ecosystems() {
        assert_eq!(
            v("8.x-1.2"),
            LineVersion {
                core: Some(8),
                numbers: vec![1, 2],
                extra: None,
                dev: false
            }
        );
        assert_eq!(v("2.0.3-beta1").extra.as_deref(), Some("beta1"));
        assert_eq!(v("8.x-1.x-dev").numbers, vec![1]);
        assert!(v("2.0.x-dev").dev);
        assert_eq!(v("2.0.x-dev").numbers, vec![2, 0]);
        assert_eq!(v("2.x-dev").core, None);
        assert_eq!(v("2.x-dev").numbers, vec![2]);
        for odd in ["main-dev", "nightly", "1..2", "8.x-", "1.2.3-", "1.2-b/1"] {
            assert_eq!(LineVersion::parse(odd), None, "{odd}");
        }
    }

    #[test]
    fn line_names() {
        assert_eq!(v("8.x-1.2").line_name(), "8.x-1.x");
        assert_eq!(v("8.x-2.0-beta3").line_name(), "8.x-2.x");
        assert_eq!(v("2.0.3").line_name(), "2.x");
        assert_eq!(v("2.10.0-RC1").line_name(), "2.x");
    }

    #[test]
    fn branch_prefixes() {
        assert_eq!(v("8.x-1.2").branch_prefix(), "8.x-1.");
        assert_eq!(v("8.x-1.x-dev").branch_prefix(), "8.x-1.");
        assert_eq!(v("2.0.3").branch_prefix(), "2.0.");
        assert_eq!(v("2.0.x-dev").branch_prefix(), "2.0.");
        assert_eq!(v("3.x-dev").branch_prefix(), "3.");
    }

    #[test]
    fn lines() {
        assert!(v("1.x-dev").holds(&v("1.4.0")));
        assert!(!v("1.x-dev").holds(&v("2.0.0")));
        assert!(v("2.0.x-dev").holds(&v("2.0.3")));
        assert!(v("2.0.4").holds(&v("2.0.3")));
        assert!(!v("2.1.0").holds(&v("2.0.3")));
        assert!(v("8.x-1.x-dev").holds(&v("8.x-1.2")));
        assert!(!v("8.x-1.3").holds(&v("7.x-1.2")));
    }

    #[test]
    fn newest_first() {
        let mut versions = vec![
            "1.9.0",
            "2.0.0-beta1",
            "2.0.x-dev",
            "1.10.0",
            "2.0.0",
            "2.0.0-rc1",
        ];
        versions.sort_by(|a, b| v(a).newest_first(&v(b)));
        assert_eq!(
            versions,
            [
                "2.0.0",
                "2.0.0-rc1",
                "2.0.0-beta1",
                "1.10.0",
                "1.9.0",
                "2.0.x-dev"
            ]
        );
    }
}
