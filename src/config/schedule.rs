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
}
