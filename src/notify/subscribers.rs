//! Who notifications go to: subscribers from the config file (synced at start; the config wins)
//! and from the admin API, and the outbox as admins see it (messages with their attempts).

use std::collections::HashMap;

use entities::{notification_attempt, notification_message, notification_subscriber};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr,
    EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect,
};
use serde::Serialize;

use super::{EventKind, MessageState, WebhookSecret};

/// Where a subscriber was defined.
pub const FROM_CONFIG: &str = "config";
pub const FROM_API: &str = "api";
/// The reason a subscriber that left the config file is disabled with.
const LEFT_CONFIG: &str = "left the config file";

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("database: {0}")]
    Db(#[from] DbErr),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A field of a subscriber is wrong: `field` names it.
    #[error("`{field}` {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

/// A subscriber, checked: an http(s) URL, a Standard Webhooks secret, known events, project
/// globs that compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberSpec {
    pub url: String,
    pub secret: WebhookSecret,
    pub events: Vec<EventKind>,
    pub projects: Vec<String>,
    pub allow_private_network: bool,
}

/// A subscriber as written (a `[[notifications]]` entry once its `secret_env` is read, or the
/// admin API's JSON), before [`SubscriberInput::check`].
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriberInput {
    pub url: String,
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub events: Option<Vec<String>>,
    #[serde(default)]
    pub projects: Option<Vec<String>>,
    #[serde(default)]
    pub allow_private_network: bool,
}

fn invalid(field: &'static str, message: impl Into<String>) -> NotifyError {
    NotifyError::Invalid {
        field,
        message: message.into(),
    }
}

impl SubscriberInput {
    /// Checks every field. Events default to all four and projects to `["*"]`; a missing
    /// secret is generated when `generate_secret` (the admin API), else an error.
    pub fn check(self, generate_secret: bool) -> Result<SubscriberSpec, NotifyError> {
        let url =
            url::Url::parse(&self.url).map_err(|e| invalid("url", format!("is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(invalid(
                "url",
                "must be an http:// or https:// URL with a host",
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                "url",
                "must not carry credentials (the signature authenticates baler)",
            ));
        }
        let secret = match self.secret {
            Some(text) => WebhookSecret::parse(&text).map_err(|m| invalid("secret", m))?,
            None if generate_secret => WebhookSecret::generate(),
            None => return Err(invalid("secret", "is required (or `secret_env`)")),
        };
        let events = match self.events {
            None => <EventKind as strum::VariantArray>::VARIANTS.to_vec(),
            Some(names) if names.is_empty() => {
                return Err(invalid("events", "must name at least one event"));
            }
            Some(names) => {
                let mut events = Vec::new();
                for name in names {
                    let event: EventKind = name
                        .parse()
                        .map_err(|e| invalid("events", format!("{e}")))?;
                    if !events.contains(&event) {
                        events.push(event);
                    }
                }
                events
            }
        };
        let projects = self.projects.unwrap_or_else(|| vec!["*".to_string()]);
        if projects.is_empty() {
            return Err(invalid(
                "projects",
                "must list at least one glob (\"*\" for all)",
            ));
        }
        for pattern in &projects {
            globset::Glob::new(pattern)
                .map_err(|e| invalid("projects", format!("{pattern:?} is not a glob: {e}")))?;
        }
        Ok(SubscriberSpec {
            url: url.to_string(),
            secret,
            events,
            projects,
            allow_private_network: self.allow_private_network,
        })
    }
}

/// The events and project globs a stored subscriber takes (JSON arrays in its row). Names this
/// version does not know are left out.
pub(super) struct StoredLists {
    pub events: Vec<EventKind>,
    pub projects: Vec<String>,
}

pub(super) fn stored_lists(row: &notification_subscriber::Model) -> StoredLists {
    let names: Vec<String> = serde_json::from_str(&row.events).unwrap_or_default();
    StoredLists {
        events: names.iter().filter_map(|n| n.parse().ok()).collect(),
        projects: serde_json::from_str(&row.projects).unwrap_or_default(),
    }
}

/// A stored time (Unix milliseconds) as the admin API and page show it.
fn shown(millis: i64) -> String {
    crate::time::rfc3339(crate::time::from_millis(millis))
}

fn json_list<T: Serialize>(items: &[T]) -> String {
    serde_json::to_string(items).expect("lists of names serialise")
}

fn write_spec(row: &mut notification_subscriber::ActiveModel, spec: &SubscriberSpec) {
    row.secret = Set(spec.secret.reveal());
    row.events = Set(json_list(&spec.events));
    row.projects = Set(json_list(&spec.projects));
    row.allow_private_network = Set(spec.allow_private_network);
}

/// Makes the stored subscribers match the config file's: each is written (and enabled: a
/// start reasserts the config); with `disable_departed`, config subscribers the file no longer
/// names are disabled. Subscribers added through the API are left alone, unless the config now
/// names their URL: then the config owns them.
pub async fn sync_from_config<C: ConnectionTrait>(
    conn: &C,
    specs: &[SubscriberSpec],
    disable_departed: bool,
) -> Result<(), DbErr> {
    let existing: HashMap<String, notification_subscriber::Model> =
        notification_subscriber::Entity::find()
            .all(conn)
            .await?
            .into_iter()
            .map(|row| (row.url.clone(), row))
            .collect();
    let now = crate::time::now_millis();
    for spec in specs {
        let mut row = match existing.get(&spec.url) {
            Some(row) => row.clone().into_active_model(),
            None => notification_subscriber::ActiveModel {
                url: Set(spec.url.clone()),
                created_at: Set(now),
                ..Default::default()
            },
        };
        write_spec(&mut row, spec);
        row.source = Set(FROM_CONFIG.to_string());
        row.disabled_at = Set(None);
        row.disabled_reason = Set(None);
        row.save(conn).await?;
    }
    if disable_departed {
        for row in existing.values() {
            let named = specs.iter().any(|s| s.url == row.url);
            if row.source == FROM_CONFIG && !named && row.disabled_at.is_none() {
                let mut row = row.clone().into_active_model();
                row.disabled_at = Set(Some(now));
                row.disabled_reason = Set(Some(LEFT_CONFIG.to_string()));
                row.update(conn).await?;
            }
        }
    }
    Ok(())
}

/// Adds a subscriber through the admin API, or updates (and enables again) the one the API
/// added at the same URL. A URL the config file owns is refused: edit the file instead.
pub async fn add_on<C: ConnectionTrait>(
    conn: &C,
    spec: &SubscriberSpec,
) -> Result<notification_subscriber::Model, NotifyError> {
    let found = notification_subscriber::Entity::find()
        .filter(notification_subscriber::Column::Url.eq(&spec.url))
        .one(conn)
        .await?;
    let mut row = match found {
        Some(row) if row.source == FROM_CONFIG => {
            return Err(NotifyError::Conflict(format!(
                "{} is a subscriber of the config file; change it there",
                spec.url
            )));
        }
        Some(row) => row.into_active_model(),
        None => notification_subscriber::ActiveModel {
            url: Set(spec.url.clone()),
            created_at: Set(crate::time::now_millis()),
            source: Set(FROM_API.to_string()),
            ..Default::default()
        },
    };
    write_spec(&mut row, spec);
    row.disabled_at = Set(None);
    row.disabled_reason = Set(None);
    Ok(sea_orm::TryIntoModel::try_into_model(
        row.save(conn).await?,
    )?)
}

/// Removes a subscriber the API added, with its messages and their attempts. Returns its URL.
pub async fn remove_on<C: ConnectionTrait>(conn: &C, id: i64) -> Result<String, NotifyError> {
    let row = notification_subscriber::Entity::find_by_id(id)
        .one(conn)
        .await?
        .ok_or_else(|| NotifyError::NotFound(format!("no subscriber {id}")))?;
    if row.source == FROM_CONFIG {
        return Err(NotifyError::Conflict(format!(
            "subscriber {id} ({}) is in the config file; remove it there",
            row.url
        )));
    }
    // Attempts, then messages, then the subscriber, each named: the removal does not rest on
    // the foreign keys' cascade, and reads the same on both databases.
    let messages: Vec<i64> = notification_message::Entity::find()
        .select_only()
        .column(notification_message::Column::Id)
        .filter(notification_message::Column::SubscriberId.eq(id))
        .into_tuple()
        .all(conn)
        .await?;
    notification_attempt::Entity::delete_many()
        .filter(notification_attempt::Column::MessageId.is_in(messages))
        .exec(conn)
        .await?;
    notification_message::Entity::delete_many()
        .filter(notification_message::Column::SubscriberId.eq(id))
        .exec(conn)
        .await?;
    notification_subscriber::Entity::delete_by_id(id)
        .exec(conn)
        .await?;
    Ok(row.url)
}

/// Sends a message again: pending at once, with a fresh retry schedule (its attempts so far
/// stay on record). A subscriber disabled by a 410 is enabled again; one that left the config
/// file is not, and the message cannot be sent. Returns what the audit row says.
pub async fn resend_on<C: ConnectionTrait>(conn: &C, id: i64) -> Result<String, NotifyError> {
    let message = notification_message::Entity::find_by_id(id)
        .one(conn)
        .await?
        .ok_or_else(|| NotifyError::NotFound(format!("no notification {id}")))?;
    let subscriber = notification_subscriber::Entity::find_by_id(message.subscriber_id)
        .one(conn)
        .await?
        .ok_or_else(|| NotifyError::NotFound(format!("no subscriber for notification {id}")))?;
    if subscriber.disabled_reason.as_deref() == Some(LEFT_CONFIG) {
        return Err(NotifyError::Conflict(format!(
            "{} left the config file; nothing is sent to it",
            subscriber.url
        )));
    }
    let mut detail = format!(
        "{} {} to {}",
        message.event, message.message_id, subscriber.url
    );
    if subscriber.disabled_at.is_some() {
        let mut enabled = subscriber.into_active_model();
        enabled.disabled_at = Set(None);
        enabled.disabled_reason = Set(None);
        enabled.update(conn).await?;
        detail.push_str("; the subscriber is enabled again");
    }
    let mut row = message.into_active_model();
    row.state = Set(MessageState::Pending.to_string());
    row.attempts = Set(0);
    row.next_attempt_at = Set(crate::time::now_millis());
    row.claimed_until = Set(None);
    row.finished_at = Set(None);
    row.update(conn).await?;
    Ok(detail)
}

/// A subscriber as the admin API and page show it (never its secret).
#[derive(Debug, Clone, Serialize)]
pub struct SubscriberView {
    pub id: i64,
    pub url: String,
    pub events: Vec<EventKind>,
    pub projects: Vec<String>,
    pub allow_private_network: bool,
    pub source: String,
    pub created_at: String,
    pub disabled_at: Option<String>,
    pub disabled_reason: Option<String>,
}

impl SubscriberView {
    pub fn of(row: &notification_subscriber::Model) -> SubscriberView {
        let lists = stored_lists(row);
        SubscriberView {
            id: row.id,
            url: row.url.clone(),
            events: lists.events,
            projects: lists.projects,
            allow_private_network: row.allow_private_network,
            source: row.source.clone(),
            created_at: shown(row.created_at),
            disabled_at: row.disabled_at.map(shown),
            disabled_reason: row.disabled_reason.clone(),
        }
    }
}

pub async fn list(db: &DatabaseConnection) -> Result<Vec<SubscriberView>, DbErr> {
    Ok(notification_subscriber::Entity::find()
        .order_by_asc(notification_subscriber::Column::Id)
        .all(db)
        .await?
        .iter()
        .map(SubscriberView::of)
        .collect())
}

/// One attempt, as listed.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptView {
    pub at: String,
    pub status: Option<i32>,
    pub error: Option<String>,
    pub latency_ms: i64,
}

/// One message with its attempts, as listed.
#[derive(Debug, Clone, Serialize)]
pub struct MessageView {
    pub id: i64,
    /// The `webhook-id` the receiver sees on every attempt.
    pub message_id: String,
    pub subscriber: i64,
    pub url: String,
    pub event: String,
    pub project: String,
    pub state: String,
    pub created_at: String,
    /// When the next attempt is due (pending messages only).
    pub next_attempt_at: Option<String>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub attempts: Vec<AttemptView>,
}

/// The newest `limit` messages, newest first, with their attempts in order.
pub async fn recent_messages(
    db: &DatabaseConnection,
    limit: u64,
) -> Result<Vec<MessageView>, DbErr> {
    let messages = notification_message::Entity::find()
        .order_by_desc(notification_message::Column::Id)
        .limit(limit)
        .all(db)
        .await?;
    let ids: Vec<i64> = messages.iter().map(|m| m.id).collect();
    let mut attempts: HashMap<i64, Vec<AttemptView>> = HashMap::new();
    for attempt in notification_attempt::Entity::find()
        .filter(notification_attempt::Column::MessageId.is_in(ids))
        .order_by_asc(notification_attempt::Column::Id)
        .all(db)
        .await?
    {
        attempts
            .entry(attempt.message_id)
            .or_default()
            .push(AttemptView {
                at: shown(attempt.at),
                status: attempt.status,
                error: attempt.error,
                latency_ms: attempt.latency_ms,
            });
    }
    let urls: HashMap<i64, String> = notification_subscriber::Entity::find()
        .all(db)
        .await?
        .into_iter()
        .map(|s| (s.id, s.url))
        .collect();
    Ok(messages
        .into_iter()
        .map(|m| MessageView {
            id: m.id,
            url: urls.get(&m.subscriber_id).cloned().unwrap_or_default(),
            subscriber: m.subscriber_id,
            message_id: m.message_id,
            event: m.event,
            project: m.project,
            next_attempt_at: (m.state == MessageState::Pending.to_string())
                .then(|| shown(m.next_attempt_at)),
            state: m.state,
            created_at: shown(m.created_at),
            last_status: m.last_status,
            last_error: m.last_error,
            attempts: attempts.remove(&m.id).unwrap_or_default(),
        })
        .collect())
}
