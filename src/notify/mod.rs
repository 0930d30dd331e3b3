//! Outbound notifications: DeployDB's "the artifact is ready", sent as Standard Webhooks.
//!
//! - **Events** ([`Event`]) are written to an outbox ([`enqueue_on`]) in the same transaction
//!   as the change they tell of: a release and its notifications commit together, or neither
//!   does.
//! - **Subscribers** ([`subscribers`]) come from the config file (synced at start) and the
//!   admin API; each takes some events for some projects (globs).
//! - **The sender** ([`Sender`]) runs in every process. It claims due messages, signs and
//!   posts each (no redirects, a 15 s limit, the SSRF [`guard`] at connect time), records the
//!   attempt, and retries with backoff and jitter for about a day; a 410 Gone disables the
//!   subscriber.

mod guard;
mod sender;
mod sign;
pub mod subscribers;

use entities::{notification_message, notification_subscriber};
use globset::{Glob, GlobSetBuilder};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use serde::Serialize;
use strum::{Display, EnumString, IntoStaticStr, VariantArray, VariantNames};

use crate::names::UnknownName;

pub use guard::refusal;
pub use sender::{RETRY_SCHEDULE, Sender, SenderSettings};
pub use sign::WebhookSecret;
pub use subscribers::{SubscriberSpec, SubscriberView};

/// What a notification tells of.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Display,
    EnumString,
    IntoStaticStr,
    VariantArray,
    VariantNames,
    serde_with::DeserializeFromStr,
    serde_with::SerializeDisplay,
)]
#[strum(parse_err_ty = UnknownName, parse_err_fn = unknown_event)]
pub enum EventKind {
    /// A release was recorded, or published again when its ref came back.
    #[strum(serialize = "release.published")]
    ReleasePublished,
    /// A release's ref left the repository: the release is no longer listed.
    #[strum(serialize = "release.unpublished")]
    ReleaseUnpublished,
    /// One ref could not be released (the job went on with the others).
    #[strum(serialize = "release.failed")]
    ReleaseFailed,
    /// A queue item used up its attempts.
    #[strum(serialize = "item.failed")]
    ItemFailed,
}

fn unknown_event(value: &str) -> UnknownName {
    UnknownName::new("event", value, <EventKind as VariantNames>::VARIANTS)
}

/// One file of a release, as a notification describes it.
#[derive(Debug, Clone, Serialize)]
pub struct FileData {
    pub name: String,
    pub url: String,
    pub size: i64,
    pub sha256: String,
}

/// `data` of `release.published` and `release.unpublished`.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseData {
    pub project: String,
    pub version: String,
    pub kind: String,
    #[serde(rename = "ref")]
    pub ref_name: String,
    pub commit: String,
    pub page: String,
    pub files: Vec<FileData>,
}

/// `data` of `release.failed`.
#[derive(Debug, Clone, Serialize)]
pub struct RefFailureData {
    pub project: String,
    #[serde(rename = "ref")]
    pub ref_name: String,
    /// Empty when the ref could not be resolved.
    pub commit: String,
    pub reason: String,
}

/// `data` of `item.failed`.
#[derive(Debug, Clone, Serialize)]
pub struct ItemFailureData {
    pub project: String,
    pub item: i64,
    pub attempts: i32,
    pub last_error: String,
}

/// An event, with what its notification carries.
#[derive(Debug, Clone)]
pub enum Event {
    ReleasePublished(ReleaseData),
    ReleaseUnpublished(ReleaseData),
    ReleaseFailed(RefFailureData),
    ItemFailed(ItemFailureData),
}

impl Event {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::ReleasePublished(_) => EventKind::ReleasePublished,
            Event::ReleaseUnpublished(_) => EventKind::ReleaseUnpublished,
            Event::ReleaseFailed(_) => EventKind::ReleaseFailed,
            Event::ItemFailed(_) => EventKind::ItemFailed,
        }
    }

    pub fn project(&self) -> &str {
        match self {
            Event::ReleasePublished(d) | Event::ReleaseUnpublished(d) => &d.project,
            Event::ReleaseFailed(d) => &d.project,
            Event::ItemFailed(d) => &d.project,
        }
    }

    /// The body every attempt sends: `{"type","timestamp","data"}`.
    fn body(&self, timestamp: &str) -> String {
        #[derive(Serialize)]
        struct Body<'a, D: Serialize> {
            #[serde(rename = "type")]
            kind: EventKind,
            timestamp: &'a str,
            data: &'a D,
        }
        let kind = self.kind();
        let json = match self {
            Event::ReleasePublished(data) | Event::ReleaseUnpublished(data) => {
                serde_json::to_string(&Body {
                    kind,
                    timestamp,
                    data,
                })
            }
            Event::ReleaseFailed(data) => serde_json::to_string(&Body {
                kind,
                timestamp,
                data,
            }),
            Event::ItemFailed(data) => serde_json::to_string(&Body {
                kind,
                timestamp,
                data,
            }),
        };
        json.expect("notification bodies are plain data")
    }
}

/// Whether a subscriber's project globs take `project`. Globs were checked when the
/// subscriber was saved; one that no longer compiles takes nothing.
fn takes_project(patterns: &[String], project: &str) -> bool {
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        match Glob::new(pattern) {
            Ok(glob) => {
                set.add(glob);
            }
            Err(_) => return false,
        }
    }
    set.build().is_ok_and(|set| set.is_match(project))
}

/// Writes one outbox message per enabled subscriber that takes `event`, on `conn` (the
/// transaction of the change the event tells of). Returns how many.
pub async fn enqueue_on<C: ConnectionTrait>(conn: &C, event: &Event) -> Result<usize, DbErr> {
    let subscribers = notification_subscriber::Entity::find()
        .filter(notification_subscriber::Column::DisabledAt.is_null())
        .all(conn)
        .await?;
    let kind = event.kind();
    let now = crate::time::now_millis();
    let body = event.body(&crate::time::rfc3339(crate::time::from_millis(now)));
    let mut written = 0;
    for subscriber in subscribers {
        let spec = subscribers::stored_lists(&subscriber);
        if !spec.events.contains(&kind) || !takes_project(&spec.projects, event.project()) {
            continue;
        }
        notification_message::Entity::insert(notification_message::ActiveModel {
            subscriber_id: Set(subscriber.id),
            message_id: Set(format!("msg_{}", uuid::Uuid::new_v4().simple())),
            event: Set(kind.to_string()),
            project: Set(event.project().to_string()),
            body: Set(body.clone()),
            created_at: Set(now),
            state: Set(MessageState::Pending.to_string()),
            attempts: Set(0),
            next_attempt_at: Set(now),
            ..Default::default()
        })
        .exec(conn)
        .await?;
        written += 1;
    }
    Ok(written)
}

/// Where an outbox message is.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Display,
    EnumString,
    IntoStaticStr,
    VariantArray,
    VariantNames,
    serde_with::DeserializeFromStr,
    serde_with::SerializeDisplay,
)]
#[strum(
    serialize_all = "lowercase",
    parse_err_ty = UnknownName,
    parse_err_fn = unknown_state
)]
pub enum MessageState {
    /// Waiting for its next attempt (or being sent).
    Pending,
    /// A 2xx came back.
    Delivered,
    /// Given up: the retries ran out, or the subscriber is gone (410).
    Failed,
}

fn unknown_state(value: &str) -> UnknownName {
    UnknownName::new(
        "message state",
        value,
        <MessageState as VariantNames>::VARIANTS,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_spelled_once() {
        crate::names::assert_one_spelling::<EventKind>();
        crate::names::assert_one_spelling::<MessageState>();
    }

    #[test]
    fn project_globs() {
        let globs = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(takes_project(&globs(&["*"]), "webform"));
        assert!(takes_project(&globs(&["web*", "other"]), "webform"));
        assert!(!takes_project(&globs(&["other"]), "webform"));
        assert!(!takes_project(&[], "webform"));
    }

    #[test]
    fn the_body_has_type_timestamp_and_data() {
        let event = Event::ReleaseFailed(RefFailureData {
            project: "demo".into(),
            ref_name: "refs/tags/bad".into(),
            commit: String::new(),
            reason: "not a version".into(),
        });
        let body: serde_json::Value =
            serde_json::from_str(&event.body("2026-12-03T10:00:00Z")).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"type": "release.failed", "timestamp": "2026-12-03T10:00:00Z",
                "data": {"project": "demo", "ref": "refs/tags/bad", "commit": "", "reason": "not a version"}})
        );
    }
}
