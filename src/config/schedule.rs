//! `[schedule]` (rescans) and durations as settings write them: humantime (`"6h"`, `"90s"`,
//! `"30d"`), or `"off"`.

use std::time::Duration;

use serde::Deserialize;

use super::FieldError;

/// The default of `[schedule] rescan_every`.
pub const DEFAULT_RESCAN_EVERY: Duration = Duration::from_secs(6 * 3600);

/// A duration setting: `Some` for a humantime value of at least a second, `None` for `"off"`.
pub fn every(field: &str, text: &str) -> Result<Option<Duration>, FieldError> {
    if text.trim() == "off" {
        return Ok(None);
    }
    let duration = humantime::parse_duration(text).map_err(|e| {
        FieldError::new(
            field,
            format!("must be a duration like \"6h\" or \"90s\", or \"off\": {text:?}: {e}"),
        )
    })?;
    if duration < Duration::from_secs(1) {
        return Err(FieldError::new(field, "must be at least 1s (or \"off\")"));
    }
    Ok(Some(duration))
}

/// `[schedule]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    pub rescan_every: Option<String>,
}

impl ScheduleConfig {
    /// The default rescan interval of projects that set none (`None`: off).
    pub(super) fn rescan_every(&self) -> Result<Option<Duration>, FieldError> {
        match &self.rescan_every {
            Some(text) => every("schedule.rescan_every", text),
            None => Ok(Some(DEFAULT_RESCAN_EVERY)),
        }
    }
}

/// `[retention]`, checked: each `None` is `"off"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// How often the curator runs (`None`: never).
    pub interval: Option<Duration>,
    pub deleted_branches_after: Option<Duration>,
    pub unpublished_after: Option<Duration>,
    pub finished_items_after: Option<Duration>,
    pub audit_after: Option<Duration>,
}

const DAY: Duration = Duration::from_secs(86_400);

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            interval: Some(Duration::from_secs(3600)),
            deleted_branches_after: Some(30 * DAY),
            unpublished_after: None,
            finished_items_after: Some(30 * DAY),
            audit_after: None,
        }
    }
}

/// `[retention]` as written: each a humantime duration or `"off"`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    pub interval: Option<String>,
    pub deleted_branches_after: Option<String>,
    pub unpublished_after: Option<String>,
    pub finished_items_after: Option<String>,
    pub audit_after: Option<String>,
}

impl RetentionConfig {
    /// Each setting checked; a missing one takes its default.
    pub(super) fn check(self) -> Result<RetentionPolicy, FieldError> {
        let defaults = RetentionPolicy::default();
        let given = |key: &str, text: Option<String>, default: Option<Duration>| match text {
            Some(text) => every(&format!("retention.{key}"), &text),
            None => Ok(default),
        };
        Ok(RetentionPolicy {
            interval: given("interval", self.interval, defaults.interval)?,
            deleted_branches_after: given(
                "deleted_branches_after",
                self.deleted_branches_after,
                defaults.deleted_branches_after,
            )?,
            unpublished_after: given(
                "unpublished_after",
                self.unpublished_after,
                defaults.unpublished_after,
            )?,
            finished_items_after: given(
                "finished_items_after",
                self.finished_items_after,
                defaults.finished_items_after,
            )?,
            audit_after: given("audit_after", self.audit_after, defaults.audit_after)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_humantime_or_off() {
        assert_eq!(every("k", "6h").unwrap(), Some(Duration::from_secs(21600)));
        assert_eq!(every("k", "90s").unwrap(), Some(Duration::from_secs(90)));
        assert_eq!(
            every("k", "30d").unwrap(),
            Some(Duration::from_secs(30 * 86400))
        );
        assert_eq!(every("k", "off").unwrap(), None);
        assert_eq!(every("k", "soon").unwrap_err().field, "k");
        assert!(every("k", "10ms").is_err());
        let schedule = ScheduleConfig::default();
        assert_eq!(schedule.rescan_every().unwrap(), Some(DEFAULT_RESCAN_EVERY));
    }

    #[test]
    fn retention_defaults_and_errors() {
        let policy = RetentionConfig::default().check().unwrap();
        assert_eq!(policy, RetentionPolicy::default());
        assert_eq!(policy.interval, Some(Duration::from_secs(3600)));
        assert_eq!(
            policy.deleted_branches_after,
            Some(Duration::from_secs(30 * 86400))
        );
        assert_eq!(policy.unpublished_after, None);
        let off = RetentionConfig {
            interval: Some("off".into()),
            audit_after: Some("90d".into()),
            ..RetentionConfig::default()
        }
        .check()
        .unwrap();
        assert_eq!(off.interval, None);
        assert_eq!(off.audit_after, Some(Duration::from_secs(90 * 86400)));
        let wrong = RetentionConfig {
            unpublished_after: Some("forever".into()),
            ..RetentionConfig::default()
        }
        .check()
        .unwrap_err();
        assert_eq!(wrong.field, "retention.unpublished_after");
    }
}
