//! Times as baler stores and shows them. Tables of the queue, the deliveries log and the admin
//! side keep Unix milliseconds (`i64`); release and project rows keep `DateTime<Utc>`. What
//! people and clients read is RFC 3339 in UTC with a `Z`: to the second everywhere, except
//! where a listing orders events that happen within one second (the queue, the deliveries
//! log), which show milliseconds ([`rfc3339_millis`]).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serializer;

/// Now, in Unix milliseconds (the way the admin and deliveries tables store times).
pub fn now_millis() -> i64 {
    Utc::now().timestamp_millis()
}

/// Unix milliseconds as a time; out of range (never written by baler) is the epoch.
pub fn from_millis(millis: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(millis).unwrap_or_default()
}

/// Unix seconds (commit times, the deliveries log's minutes) as a time; out of range is the
/// epoch.
pub fn from_seconds(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).unwrap_or_default()
}

/// `2024-05-01T12:00:00Z`: to the second, for pages, feeds, the API and the command line.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `2024-05-01T12:00:00.123Z`: to the millisecond, for the queue and the deliveries log, whose
/// rows are often written within one second of each other.
pub fn rfc3339_millis(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// [`rfc3339`] for serde: `#[serde(serialize_with = "crate::time::serialize_rfc3339")]`.
pub fn serialize_rfc3339<S: Serializer>(
    at: &DateTime<Utc>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&rfc3339(*at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precisions() {
        let at = from_millis(1_714_564_800_123);
        assert_eq!(rfc3339(at), "2024-05-01T12:00:00Z");
        assert_eq!(rfc3339_millis(at), "2024-05-01T12:00:00.123Z");
        assert_eq!(rfc3339(from_seconds(1_714_564_800)), "2024-05-01T12:00:00Z");
        assert_eq!(
            rfc3339_millis(from_millis(i64::MAX)),
            "1970-01-01T00:00:00.000Z"
        );
    }
}
