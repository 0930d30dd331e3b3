//! `POST /hooks/{project}`: verify, interpret, queue, and log the delivery with its answer.
//! Answers well within the hosts' 10 s: nothing here waits on git or the network. Queueing is
//! the only state a delivery changes: a deletion is queued for the worker to check against the
//! repository, never acted on here, so a replayed payload cannot unpublish a release.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tracing::instrument;

use super::client::ClientAddress;
use super::{AppState, body};
use crate::admin::throttle::AddressKey;
use crate::deliveries::{self, CountedRefusal, DeliveryRecord, MAX_NAME, Refusal};
use crate::hooks::verify::SignatureError;
use crate::hooks::{self, Decision, HookError, HookOutcome};
use crate::projects::{self, Project};

/// An answer: status and JSON body, kept in the deliveries log as they were sent (a
/// refusal keeps only its fixed reason).
struct Answer {
    status: StatusCode,
    body: serde_json::Value,
    reason: String,
    item: Option<i64>,
    /// Set on refusals: what the log keeps instead of the message.
    refusal: Option<Refusal>,
    retry_after_seconds: Option<u32>,
}

impl Answer {
    /// A refusal: the client reads `message`, the log keeps only `refusal`.
    fn refused(status: StatusCode, refusal: Refusal, message: String) -> Answer {
        Answer {
            status,
            body: json!({ "error": message }),
            reason: refusal.as_str().to_string(),
            item: None,
            refusal: Some(refusal),
            retry_after_seconds: None,
        }
    }

    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body)).into_response();
        if let Some(seconds) = self.retry_after_seconds {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// How long a host is asked to wait after a 503.
const RETRY_AFTER_SECONDS: u32 = 30;

#[instrument(skip_all, fields(project = %deliveries::bounded(&name, MAX_NAME), %client, delivery = tracing::field::Empty))]
pub async fn receive(
    State(state): State<AppState>,
    Path(name): Path<String>,
    client: ClientAddress,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut record = DeliveryRecord {
        project_name: deliveries::bounded(&name, MAX_NAME),
        client_address: Some(client.to_string()),
        ..DeliveryRecord::default()
    };
    // Storage gets `commit_timeout` in all for this delivery; the time its body takes to
    // arrive is added (that is the client's, not storage's).
    let mut deadline = tokio::time::Instant::now() + state.http.commit_timeout;
    let answer = handle(&state, &name, &headers, body, &mut record, &mut deadline).await;
    tracing::info!(status = answer.status.as_u16(), reason = %answer.reason, "delivery");
    log(&state, client, &name, record, &answer, deadline).await;
    answer.into_response()
}

/// A delivery's log row waits at least this long for its commit, even when queueing used up
/// the deadline: the row holds the replay key of an accepted delivery.
const LOG_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// Logs the delivery, committed before the host is answered when storage can commit it by
/// `deadline` (plus [`LOG_GRACE`]). A refusal is kept (bounded) while the client's address has
/// budget left, and otherwise only counted; refusals for unknown projects are always only
/// counted. Budgets and counts take an IPv6 client as its /64, which one host can fill.
async fn log(
    state: &AppState,
    client: ClientAddress,
    name: &str,
    mut record: DeliveryRecord,
    answer: &Answer,
    deadline: tokio::time::Instant,
) {
    record.status = answer.status.as_u16();
    record.reason = answer.reason.clone();
    record.item_id = answer.item;
    record.response = answer.body.to_string();
    if !answer.status.is_success() {
        record.replay_key = None;
    }
    if let Some(refusal) = answer.refusal {
        record.response = json!({ "error": refusal.as_str() }).to_string();
        let key = AddressKey::of(client.0);
        if refusal == Refusal::UnknownProject || !state.refusals.keep(key.network()) {
            let counted = CountedRefusal {
                address: key.to_string(),
                reason: refusal,
                name: deliveries::bounded(name, MAX_NAME),
            };
            state.deliveries.count_refused(counted).await;
            return;
        }
    }
    let deadline = deadline.max(tokio::time::Instant::now() + LOG_GRACE);
    match tokio::time::timeout_at(deadline, state.deliveries.record(record)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "could not log the delivery"),
        // The row is still on its way to storage; the host's answer does not wait for it.
        Err(_) => tracing::warn!("the delivery's log row is not committed yet; answering"),
    }
}

async fn handle(
    state: &AppState,
    name: &str,
    headers: &HeaderMap,
    body: Body,
    record: &mut DeliveryRecord,
    deadline: &mut tokio::time::Instant,
) -> Answer {
    // A name no project can have (too long, say) is not looked up, nor kept in the cache.
    let found = if name.chars().count() > MAX_NAME {
        Ok(Ok(None))
    } else {
        tokio::time::timeout_at(*deadline, state.projects.find(&state.db, name)).await
    };
    let project = match found {
        Ok(Ok(Some(project))) => project,
        Ok(Ok(None)) => {
            return Answer::refused(
                StatusCode::NOT_FOUND,
                Refusal::UnknownProject,
                "no such project".into(),
            );
        }
        Ok(Err(e)) => return unavailable(e.into()),
        Err(_) => return unavailable(anyhow::anyhow!("reading the project timed out")),
    };
    record.project_id = Some(project.id);
    record.provider = Some(project.provider.as_str());
    record.delivery_id = hooks::delivery_id(project.provider, headers)
        .map(|id| deliveries::bounded(&id, deliveries::MAX_DELIVERY_ID));
    if let Some(id) = &record.delivery_id {
        tracing::Span::current().record("delivery", id.as_str());
    }

    let reading = tokio::time::Instant::now();
    let raw = match body::read_limited(&state.body_budget, headers, body).await {
        Ok(raw) => raw,
        Err(refused) => {
            let refusal = match refused.status {
                StatusCode::PAYLOAD_TOO_LARGE => Refusal::TooLarge,
                StatusCode::SERVICE_UNAVAILABLE => Refusal::BufferFull,
                _ => Refusal::UnreadableBody,
            };
            let mut answer = Answer::refused(refused.status, refusal, refused.message);
            answer.retry_after_seconds = refused.retry_after_seconds;
            return answer;
        }
    };
    *deadline += reading.elapsed();
    let now = chrono::Utc::now().timestamp();
    let interpreted = match hooks::interpret(&project, headers, &raw, now) {
        Ok(interpreted) => interpreted,
        Err(e) => return refusal(e),
    };
    record.event = Some(deliveries::bounded(&interpreted.event, MAX_NAME));

    // Only now, with the signature checked, is the delivery id worth trusting. A
    // delivery that queues (a push, or a deletion for the worker to check) looks for a
    // redelivery inside its upsert (`Queue::enqueue_delivery`), which is all it changes;
    // anything else checks here, so that it too answers as it first did.
    record.replay_key = record
        .delivery_id
        .as_deref()
        .map(|id| deliveries::replay_key(id, &raw));
    let learned = interpreted.learned_repository_id.clone();
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    let stored =
        tokio::time::timeout_at(*deadline, store(state, &project, interpreted, left, record)).await;
    // A timed-out transaction is rolled back when dropped, PostgreSQL cancels the upsert at
    // the same moment, and SQLite's writer skips a webhook that stopped waiting; so a 503
    // leaves nothing queued, except an upsert that commits in the very last instant, which the
    // host's retry merges into without changing anything twice.
    let answer =
        stored.unwrap_or_else(|_| unavailable(anyhow::anyhow!("storage did not commit in time")));
    if answer.status.is_success()
        && let Some(id) = learned
    {
        remember_repository_id(state, &project, id).await;
    }
    answer
}

/// Records the host's repository id that a verified delivery carried, once the delivery has
/// been acted on: a 503 then learns nothing. It waits at most [`LOG_GRACE`] and then goes on
/// in the background, so a slow update never turns an accepted delivery into a 503. It only
/// ever fills an empty column, so a retry or a race writes the same.
async fn remember_repository_id(state: &AppState, project: &Project, id: String) {
    let (db, cache, project_id, name) = (
        state.db.clone(),
        state.projects.clone(),
        project.id,
        project.name.clone(),
    );
    let update = tokio::spawn(async move {
        match projects::remember_host_repository_id(&db, project_id, &id).await {
            Ok(()) => cache.forget(&name),
            Err(e) => tracing::warn!(error = %e, "could not remember the repository id"),
        }
    });
    let _ = tokio::time::timeout(LOG_GRACE, update).await;
}

/// What a verified delivery changes: its redelivery check and the queue.
async fn store(
    state: &AppState,
    project: &Project,
    interpreted: hooks::Interpreted,
    commit_timeout: std::time::Duration,
    record: &mut DeliveryRecord,
) -> Answer {
    let checked_in_upsert = matches!(
        &interpreted.outcome,
        HookOutcome::Push(d) if !d.refs.is_empty()
    );
    if !checked_in_upsert && let Some(answer) = earlier_answer(state, project, record).await {
        return answer;
    }
    match interpreted.outcome {
        HookOutcome::Ping => Answer {
            status: StatusCode::OK,
            body: json!({ "ok": true, "event": "ping" }),
            reason: "ping".into(),
            item: None,
            refusal: None,
            retry_after_seconds: None,
        },
        HookOutcome::Push(decision) => act(state, project, decision, commit_timeout, record).await,
    }
}

async fn act(
    state: &AppState,
    project: &Project,
    decision: Decision,
    commit_timeout: std::time::Duration,
    record: &mut DeliveryRecord,
) -> Answer {
    let reason = decision.reasons.join("; ");
    if decision.refs.is_empty() {
        return Answer {
            status: StatusCode::OK,
            body: json!({ "queued": false, "reason": reason }),
            reason,
            item: None,
            refusal: None,
            retry_after_seconds: None,
        };
    }
    let queued = state
        .queue
        .enqueue_delivery(
            project.id,
            &decision.refs,
            record.replay_key.as_deref(),
            commit_timeout,
        )
        .await;
    match queued {
        Ok(Some(queued)) => Answer {
            status: StatusCode::ACCEPTED,
            body: serde_json::to_value(queued).unwrap_or_default(),
            reason: if reason.is_empty() {
                "queued".into()
            } else {
                format!("queued; {reason}")
            },
            item: Some(queued.item),
            refusal: None,
            retry_after_seconds: None,
        },
        Ok(None) => earlier_answer(state, project, record)
            .await
            .unwrap_or_else(|| unavailable(anyhow::anyhow!("a replayed delivery vanished"))),
        Err(e) => unavailable(e.into()),
    }
}

/// The first answer to this delivery if it is a redelivery (which then changes nothing and
/// is logged without its key), or `None` to go on.
async fn earlier_answer(
    state: &AppState,
    project: &Project,
    record: &mut DeliveryRecord,
) -> Option<Answer> {
    let key = record.replay_key.as_deref()?;
    match deliveries::replay(&state.db, project.id, key).await {
        Ok(Some(first)) => {
            record.replay_key = None;
            Some(replayed(first))
        }
        Ok(None) => None,
        Err(e) => Some(unavailable(e.into())),
    }
}

fn refusal(error: HookError) -> Answer {
    let (status, refusal) = match &error {
        HookError::Signature(SignatureError::Missing(_)) => {
            (StatusCode::UNAUTHORIZED, Refusal::MissingSignature)
        }
        HookError::Signature(SignatureError::Stale(_)) => {
            (StatusCode::UNAUTHORIZED, Refusal::StaleTimestamp)
        }
        HookError::Signature(_) => (StatusCode::UNAUTHORIZED, Refusal::BadSignature),
        HookError::MissingEvent(_) => (StatusCode::BAD_REQUEST, Refusal::MissingEvent),
        HookError::Payload(_) => (StatusCode::BAD_REQUEST, Refusal::MalformedPayload),
        HookError::UnsupportedMediaType(_) => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Refusal::UnsupportedMediaType,
        ),
        HookError::RepositoryMismatch(_) => (StatusCode::FORBIDDEN, Refusal::RepositoryMismatch),
    };
    Answer::refused(status, refusal, error.to_string())
}

fn unavailable(error: anyhow::Error) -> Answer {
    tracing::error!(error = format!("{error:#}"), "storage cannot commit");
    let mut answer = Answer::refused(
        StatusCode::SERVICE_UNAVAILABLE,
        Refusal::StorageUnavailable,
        "storage is unavailable; try again later".into(),
    );
    answer.retry_after_seconds = Some(RETRY_AFTER_SECONDS);
    answer
}

/// A redelivery: the first answer again, and nothing else happens.
fn replayed(first: entities::delivery::Model) -> Answer {
    Answer {
        status: StatusCode::from_u16(first.status as u16).unwrap_or(StatusCode::OK),
        body: serde_json::from_str(&first.response).unwrap_or_default(),
        reason: format!("redelivery of delivery {}; first answer replayed", first.id),
        item: first.item_id,
        refusal: None,
        retry_after_seconds: None,
    }
}
