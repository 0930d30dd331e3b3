//! Release versions from refs, as DESIGN.md fixes them.

/// A release's version and whether it is a tag release or a branch's dev snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseVersion {
    pub version: String,
    pub kind: ReleaseKind,
}

/// Tag release or dev snapshot: the persisted enum, one definition for the rows and the code.
pub use entities::release::ReleaseKind;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "{ref_kind} {name:?} cannot name a release: versions may hold only letters, digits, '.', '_', '+' and '-'"
)]
pub struct VersionError {
    ref_kind: &'static str,
    name: String,
}

fn checked(version: String, ref_kind: &'static str, name: &str) -> Result<String, VersionError> {
    let ok = !version.is_empty()
        && !version.starts_with(['.', '-'])
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'));
    if ok {
        Ok(version)
    } else {
        Err(VersionError {
            ref_kind,
            name: name.to_string(),
        })
    }
}

impl ReleaseVersion {
    /// `v1.2.3` → `1.2.3` (a leading `v` before a digit is dropped); `8.x-1.2` stays.
    pub fn from_tag(tag: &str) -> Result<ReleaseVersion, VersionError> {
        let version = match tag.strip_prefix('v') {
            Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => rest,
            _ => tag,
        };
        Ok(ReleaseVersion {
            version: checked(version.to_string(), "tag", tag)?,
            kind: ReleaseKind::Tag,
        })
    }

    /// `1.x` → `1.x-dev`, `main` → `main-dev`.
    pub fn from_branch(branch: &str) -> Result<ReleaseVersion, VersionError> {
        Ok(ReleaseVersion {
            version: checked(format!("{branch}-dev"), "branch", branch)?,
            kind: ReleaseKind::Dev,
        })
    }

    /// The archive's file name: `NAME-VERSION.EXT`.
    pub fn file_name(&self, project: &str, extension: &str) -> String {
        format!("{project}-{}.{extension}", self.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags() {
        assert_eq!(ReleaseVersion::from_tag("v1.2.3").unwrap().version, "1.2.3");
        assert_eq!(
            ReleaseVersion::from_tag("8.x-1.2").unwrap().version,
            "8.x-1.2"
        );
        assert_eq!(
            ReleaseVersion::from_tag("version").unwrap().version,
            "version"
        );
        assert_eq!(
            ReleaseVersion::from_tag("2.0.3").unwrap().kind,
            ReleaseKind::Tag
        );
        assert!(ReleaseVersion::from_tag("release/1.0").is_err());
        assert!(ReleaseVersion::from_tag("..").is_err());
    }

    #[test]
    fn branches() {
        let dev = ReleaseVersion::from_branch("1.x").unwrap();
        assert_eq!(dev.version, "1.x-dev");
        assert_eq!(dev.kind, ReleaseKind::Dev);
        assert_eq!(
            ReleaseVersion::from_branch("main").unwrap().version,
            "main-dev"
        );
        assert_eq!(
            ReleaseVersion::from_branch("8.x-1.x")
                .unwrap()
                .file_name("webform", "tar.gz"),
            "webform-8.x-1.x-dev.tar.gz"
        );
        assert!(ReleaseVersion::from_branch("feature/x").is_err());
    }
}
