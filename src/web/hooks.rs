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
    let started = tokio::time::Instant::now();
    let answer = handle(&state, &name, &headers, body, &mut record).await;
    tracing::info!(status = answer.status.as_u16(), reason = %answer.reason, "delivery");
    log(&state, client, &name, record, &answer, started).await;
    answer.into_response()
}

/// Logs the delivery, committed before the host is answered, within what is left of the
/// commit timeout. A refusal is kept (bounded) while the client's address has budget left,
/// and otherwise only counted; refusals for unknown projects are always only counted.
async fn log(
    state: &AppState,
    client: ClientAddress,
    name: &str,
    mut record: DeliveryRecord,
    answer: &Answer,
    started: tokio::time::Instant,
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
        if refusal == Refusal::UnknownProject || !state.refusals.keep(client.0) {
            let counted = CountedRefusal {
                address: client.0,
                reason: refusal,
                name: deliveries::bounded(name, MAX_NAME),
            };
            state.deliveries.count_refused(counted).await;
            return;
        }
    }
    let deadline = started + state.http.commit_timeout;
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
) -> Answer {
    let commit_timeout = state.http.commit_timeout;
    // A name no project can have (too long, say) is not looked up, nor kept in the cache.
    let found = if name.chars().count() > MAX_NAME {
        Ok(Ok(None))
    } else {
        tokio::time::timeout(commit_timeout, state.projects.find(&state.db, name)).await
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
    // Storage gets the commit timeout from here: the body's own time does not count.
    let deadline = tokio::time::Instant::now() + commit_timeout;
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
    let stored = tokio::time::timeout_at(
        deadline,
        store(state, &project, interpreted, commit_timeout, record),
    )
    .await;
    // A timed-out transaction is rolled back when dropped (and a queued upsert that has not
    // begun is skipped by the writer), so a 503 leaves nothing behind; one that commits in
    // the last instant is merged into by the host's retry, which changes nothing twice.
    stored.unwrap_or_else(|_| unavailable(anyhow::anyhow!("storage did not commit in time")))
}

/// What a verified delivery changes: its redelivery check, the host's repository id, and the
/// queue.
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
    if let Some(id) = &interpreted.learned_repository_id {
        if let Err(e) = projects::remember_host_repository_id(&state.db, project.id, id).await {
            return unavailable(e.into());
        }
        state.projects.forget(&project.name);
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
