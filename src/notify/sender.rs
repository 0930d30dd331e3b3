//! The sender: claims due outbox messages, posts each to its subscriber signed as a Standard
//! Webhook, and records the attempt. Every process runs one; a claim (`claimed_until`) keeps
//! two from sending the same message at once, and a sender that dies mid-send leaves a claim
//! that runs out, after which another sends the message again under the same `webhook-id`.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use entities::{notification_attempt, notification_message, notification_subscriber};
use futures::StreamExt;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};

use super::MessageState;
use super::guard::{GuardedResolver, refused_literal};
use super::sign::WebhookSecret;

/// The waits after the first attempt fails, then after each retry (the Standard Webhooks
/// example schedule, about a day and a half in all); each is spread by ±20 % so that
/// messages that failed together are not retried together. After the last, the message
/// is given up.
pub const RETRY_SCHEDULE: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(24 * 3600),
];

/// The longest a `Retry-After` may put a retry off.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Messages sent at once by one process.
const IN_FLIGHT: usize = 8;

/// How the sender runs.
#[derive(Debug, Clone)]
pub struct SenderSettings {
    /// One attempt's limit, connection included.
    pub timeout: Duration,
    /// How often it looks for due messages.
    pub poll: Duration,
}

impl Default for SenderSettings {
    fn default() -> Self {
        SenderSettings {
            timeout: Duration::from_secs(15),
            poll: Duration::from_secs(1),
        }
    }
}

pub struct Sender {
    db: DatabaseConnection,
    settings: SenderSettings,
    /// For subscribers on the public internet: the resolver drops private addresses.
    guarded: reqwest::Client,
    /// For subscribers with `allow_private_network = true`.
    open: reqwest::Client,
}

/// How one attempt ended.
enum Outcome {
    Delivered(u16),
    /// 410 Gone: the subscriber is disabled.
    Gone,
    Failed {
        status: Option<u16>,
        error: String,
        retry_after: Option<Duration>,
    },
}

/// A message this sender holds, with what sending it needs.
struct Claimed {
    message: notification_message::Model,
    url: String,
    secret: WebhookSecret,
    allow_private_network: bool,
    /// The claim's own value of `claimed_until`: the attempt's result is written only while it
    /// is still there.
    claimed_until: i64,
}

impl Sender {
    pub fn new(db: DatabaseConnection, settings: SenderSettings) -> Result<Sender, reqwest::Error> {
        let client = |guarded: bool| {
            let builder = reqwest::Client::builder()
                .user_agent(concat!("baler/", env!("CARGO_PKG_VERSION")))
                .redirect(reqwest::redirect::Policy::none())
                // A proxy would connect on baler's behalf, past the guard.
                .no_proxy()
                .timeout(settings.timeout);
            if guarded {
                builder.dns_resolver(Arc::new(GuardedResolver)).build()
            } else {
                builder.build()
            }
        };
        Ok(Sender {
            guarded: client(true)?,
            open: client(false)?,
            db,
            settings,
        })
    }

    /// Sends due messages every `poll` until `stop`. A send under way when `stop` comes is
    /// dropped; its claim runs out and another process (or the next start) sends it.
    pub async fn run_until(self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                sent = self.send_due() => {
                    if let Err(e) = sent {
                        tracing::warn!(error = %e, "could not send notifications; trying again");
                    }
                }
            }
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(self.settings.poll) => {}
            }
        }
    }

    /// One round: claims what is due and sends it. Returns how many attempts were made.
    pub async fn send_due(&self) -> Result<usize, DbErr> {
        let mut claimed = Vec::new();
        for (message, subscriber) in self.due().await? {
            if let Some(claim) = self.claim(message, subscriber).await? {
                claimed.push(claim);
            }
        }
        let attempts = claimed.len();
        let results: Vec<Result<(), DbErr>> = futures::stream::iter(claimed)
            .map(|claim| self.attempt(claim))
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        results.into_iter().collect::<Result<Vec<()>, DbErr>>()?;
        Ok(attempts)
    }

    /// Pending messages whose time has come, unclaimed or with a claim run out, of enabled
    /// subscribers; the longest-waiting first.
    async fn due(
        &self,
    ) -> Result<Vec<(notification_message::Model, notification_subscriber::Model)>, DbErr> {
        let now = crate::time::now_millis();
        let rows = notification_message::Entity::find()
            .find_also_related(notification_subscriber::Entity)
            .filter(notification_message::Column::State.eq(MessageState::Pending.to_string()))
            .filter(notification_message::Column::NextAttemptAt.lte(now))
            .filter(free_at(now))
            .filter(notification_subscriber::Column::DisabledAt.is_null())
            .order_by_asc(notification_message::Column::NextAttemptAt)
            // No more than are sent at once: every claim is sent well within its time.
            .limit(IN_FLIGHT as u64)
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(m, s)| s.map(|s| (m, s)))
            .collect())
    }

    /// Takes a message for this sender, unless another took it first.
    async fn claim(
        &self,
        message: notification_message::Model,
        subscriber: notification_subscriber::Model,
    ) -> Result<Option<Claimed>, DbErr> {
        let now = crate::time::now_millis();
        let lease = self.settings.timeout + Duration::from_secs(5);
        let claimed_until = now + lease.as_millis() as i64;
        let taken = notification_message::Entity::update_many()
            .col_expr(
                notification_message::Column::ClaimedUntil,
                Expr::value(claimed_until),
            )
            .filter(notification_message::Column::Id.eq(message.id))
            .filter(notification_message::Column::State.eq(MessageState::Pending.to_string()))
            .filter(free_at(now))
            .exec(&self.db)
            .await?;
        if taken.rows_affected != 1 {
            return Ok(None);
        }
        let secret = match WebhookSecret::parse(&subscriber.secret) {
            Ok(secret) => secret,
            Err(why) => {
                tracing::warn!(
                    subscriber = subscriber.id,
                    why,
                    "a stored secret is unusable"
                );
                return Ok(None);
            }
        };
        Ok(Some(Claimed {
            message,
            url: subscriber.url,
            secret,
            allow_private_network: subscriber.allow_private_network,
            claimed_until,
        }))
    }

    #[tracing::instrument(skip_all, fields(message = %claim.message.message_id, event = %claim.message.event))]
    async fn attempt(&self, claim: Claimed) -> Result<(), DbErr> {
        let started = Instant::now();
        let outcome = self.post(&claim).await;
        let latency = started.elapsed();
        self.record(&claim, outcome, latency).await
    }

    async fn post(&self, claim: &Claimed) -> Outcome {
        let failed = |error: String| Outcome::Failed {
            status: None,
            error,
            retry_after: None,
        };
        let url = match reqwest::Url::parse(&claim.url) {
            Ok(url) => url,
            Err(e) => return failed(format!("the URL does not parse: {e}")),
        };
        let client = if claim.allow_private_network {
            &self.open
        } else {
            if let Some(refused) = refused_literal(&url) {
                return failed(refused);
            }
            &self.guarded
        };
        let timestamp = crate::time::now_millis() / 1000;
        let body = claim.message.body.clone().into_bytes();
        let signature = claim
            .secret
            .sign(&claim.message.message_id, timestamp, &body);
        let sent = client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &claim.message.message_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => {
                Outcome::Delivered(response.status().as_u16())
            }
            Ok(response) if response.status() == reqwest::StatusCode::GONE => Outcome::Gone,
            Ok(response) => Outcome::Failed {
                status: Some(response.status().as_u16()),
                error: format!("the receiver answered {}", response.status()),
                retry_after: retry_after(response.headers()),
            },
            Err(e) if e.is_timeout() => failed(format!(
                "no answer within {} s",
                self.settings.timeout.as_secs()
            )),
            Err(e) => failed(describe(&e)),
        }
    }

    /// Writes the attempt and where the message goes next, in one transaction, while the
    /// claim is still this sender's (else another sender's attempt is the one on record).
    async fn record(
        &self,
        claim: &Claimed,
        outcome: Outcome,
        latency: Duration,
    ) -> Result<(), DbErr> {
        let now = crate::time::now_millis();
        let attempts = claim.message.attempts + 1;
        let (status, error) = match &outcome {
            Outcome::Delivered(status) => (Some(*status), None),
            Outcome::Gone => (
                Some(410),
                Some("the receiver answered 410 Gone".to_string()),
            ),
            Outcome::Failed { status, error, .. } => (*status, Some(error.clone())),
        };
        let next = match &outcome {
            Outcome::Delivered(_) => Next::Done(MessageState::Delivered),
            Outcome::Gone => Next::Done(MessageState::Failed),
            Outcome::Failed { retry_after, .. } => match retry_delay(attempts, *retry_after) {
                Some(delay) => Next::Retry(now + delay.as_millis() as i64),
                None => Next::Done(MessageState::Failed),
            },
        };
        let txn = crate::db::begin_write(&self.db).await?;
        let mut update = notification_message::Entity::update_many()
            .col_expr(
                notification_message::Column::Attempts,
                Expr::value(attempts),
            )
            .col_expr(
                notification_message::Column::ClaimedUntil,
                Expr::value(Option::<i64>::None),
            )
            .col_expr(
                notification_message::Column::LastStatus,
                Expr::value(status.map(i32::from)),
            )
            .col_expr(
                notification_message::Column::LastError,
                Expr::value(error.clone()),
            );
        update = match next {
            Next::Done(state) => update
                .col_expr(
                    notification_message::Column::State,
                    Expr::value(state.to_string()),
                )
                .col_expr(
                    notification_message::Column::FinishedAt,
                    Expr::value(Some(now)),
                ),
            Next::Retry(at) => {
                update.col_expr(notification_message::Column::NextAttemptAt, Expr::value(at))
            }
        };
        let written = update
            .filter(notification_message::Column::Id.eq(claim.message.id))
            .filter(notification_message::Column::ClaimedUntil.eq(claim.claimed_until))
            .exec(&txn)
            .await?;
        if written.rows_affected != 1 {
            tracing::warn!("the claim ran out before the attempt ended; not recorded");
            return txn.rollback().await;
        }
        notification_attempt::Entity::insert(notification_attempt::ActiveModel {
            message_id: Set(claim.message.id),
            at: Set(now),
            status: Set(status.map(i32::from)),
            error: Set(error.clone()),
            latency_ms: Set(latency.as_millis() as i64),
            ..Default::default()
        })
        .exec(&txn)
        .await?;
        if matches!(outcome, Outcome::Gone) {
            notification_subscriber::Entity::update_many()
                .col_expr(
                    notification_subscriber::Column::DisabledAt,
                    Expr::value(Some(now)),
                )
                .col_expr(
                    notification_subscriber::Column::DisabledReason,
                    Expr::value(Some("the receiver answered 410 Gone".to_string())),
                )
                .filter(notification_subscriber::Column::Id.eq(claim.message.subscriber_id))
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        match (&outcome, &next) {
            (Outcome::Delivered(status), _) => tracing::info!(url = %claim.url, status, "notified"),
            (Outcome::Gone, _) => {
                tracing::warn!(url = %claim.url, "the receiver answered 410 Gone; subscriber disabled")
            }
            (_, Next::Retry(at)) => {
                tracing::warn!(url = %claim.url, error = error.as_deref().unwrap_or(""), retry_at = %crate::time::rfc3339(crate::time::from_millis(*at)), "notification failed; will retry")
            }
            (_, Next::Done(_)) => {
                tracing::warn!(url = %claim.url, error = error.as_deref().unwrap_or(""), "notification failed; retries used up")
            }
        }
        Ok(())
    }
}

enum Next {
    Done(MessageState),
    Retry(i64),
}

/// Unclaimed, or its claim has run out.
fn free_at(now: i64) -> Condition {
    Condition::any()
        .add(notification_message::Column::ClaimedUntil.is_null())
        .add(notification_message::Column::ClaimedUntil.lt(now))
}

/// The wait before the next attempt once `attempts` have failed, or none when they are used
/// up. The receiver's `Retry-After` wins over the schedule (at most a day).
fn retry_delay(attempts: i32, retry_after: Option<Duration>) -> Option<Duration> {
    let scheduled = *RETRY_SCHEDULE.get(usize::try_from(attempts - 1).ok()?)?;
    Some(match retry_after {
        Some(wait) => wait.clamp(Duration::from_secs(1), MAX_RETRY_AFTER),
        None => jittered(scheduled),
    })
}

/// `wait` spread by up to 20 % either way.
fn jittered(wait: Duration) -> Duration {
    let mut byte = [0u8; 2];
    let spread = match getrandom::fill(&mut byte) {
        Ok(()) => f64::from(u16::from_le_bytes(byte)) / f64::from(u16::MAX),
        Err(_) => 0.5,
    };
    wait.mul_f64(0.8 + 0.4 * spread)
}

/// `Retry-After` in seconds or as an HTTP date.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// An error with its causes: reqwest's own message says only "error sending request".
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_follow_the_schedule_with_jitter_then_stop() {
        for (attempts, scheduled) in (1..).zip(RETRY_SCHEDULE) {
            let delay = retry_delay(attempts, None).unwrap();
            assert!(
                delay >= scheduled.mul_f64(0.8) && delay <= scheduled.mul_f64(1.2),
                "{attempts}: {delay:?}"
            );
        }
        assert_eq!(retry_delay(RETRY_SCHEDULE.len() as i32 + 1, None), None);
    }

    #[test]
    fn retry_after_wins_within_a_day() {
        assert_eq!(
            retry_delay(1, Some(Duration::from_secs(120))),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            retry_delay(2, Some(Duration::from_secs(90 * 3600))),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(retry_delay(8, Some(Duration::from_secs(1))), None);
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("retry-after", "30".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(30)));
        headers.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
    }
}
