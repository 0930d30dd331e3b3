//! `POST /hooks/{project}`: verify, interpret, queue, and log the delivery with its answer.
//! Answers well within the hosts' 10 s: nothing here waits on git or the network. Queueing is
//! the only state a delivery changes: a deletion is queued for the worker to check against the
//! repository, never acted on here, so a replayed payload cannot unpublish a release.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tracing::instrument;

use super::{AppState, body};
use crate::deliveries::{self, DeliveryRecord};
use crate::hooks::{self, Decision, HookError, HookOutcome};
use crate::projects::{self, Project};

/// An answer: status and JSON body, kept in the deliveries log as they were sent.
struct Answer {
    status: StatusCode,
    body: serde_json::Value,
    reason: String,
    item: Option<i64>,
}

impl Answer {
    fn error(status: StatusCode, message: String) -> Answer {
        Answer {
            status,
            body: json!({ "error": message }),
            reason: message,
            item: None,
        }
    }

    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}

#[instrument(skip_all, fields(project = %name, delivery = tracing::field::Empty))]
pub async fn receive(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut record = DeliveryRecord {
        project_name: name.clone(),
        ..DeliveryRecord::default()
    };
    let answer = handle(&state, &name, &headers, body, &mut record).await;
    record.status = answer.status.as_u16();
    record.reason = answer.reason.clone();
    record.item_id = answer.item;
    record.response = answer.body.to_string();
    if !answer.status.is_success() {
        record.replay_key = None;
    }
    tracing::info!(status = record.status, reason = %record.reason, "delivery");
    if let Err(e) = state.deliveries.record(record).await {
        tracing::warn!(error = %e, "could not log the delivery");
    }
    answer.into_response()
}

async fn handle(
    state: &AppState,
    name: &str,
    headers: &HeaderMap,
    body: Body,
    record: &mut DeliveryRecord,
) -> Answer {
    let project = match state.projects.find(&state.db, name).await {
        Ok(Some(project)) => project,
        Ok(None) => {
            return Answer::error(StatusCode::NOT_FOUND, format!("no project named {name:?}"));
        }
        Err(e) => return unavailable(e.into()),
    };
    record.project_id = Some(project.id);
    record.provider = Some(project.provider.as_str());
    record.delivery_id = hooks::delivery_id(project.provider, headers);
    if let Some(id) = &record.delivery_id {
        tracing::Span::current().record("delivery", id.as_str());
    }

    let raw = match body::read_limited(&state.body_budget, headers, body).await {
        Ok(raw) => raw,
        Err(refused) => return Answer::error(refused.status, refused.message),
    };
    let now = chrono::Utc::now().timestamp();
    let interpreted = match hooks::interpret(&project, headers, &raw, now) {
        Ok(interpreted) => interpreted,
        Err(e) => return refusal(e),
    };
    record.event = Some(interpreted.event.clone());

    // Only now, with the signature checked, is the (unsigned) delivery id worth trusting. A
    // delivery that queues (a push, or a deletion for the worker to check) looks for a
    // redelivery inside its upsert (`Queue::enqueue_delivery`), which is all it changes;
    // anything else checks here, so that it too answers as it first did.
    record.replay_key = record
        .delivery_id
        .as_deref()
        .map(|id| deliveries::replay_key(id, &raw));
    let checked_in_upsert = matches!(
        &interpreted.outcome,
        HookOutcome::Push(d) if !d.refs.is_empty()
    );
    if !checked_in_upsert && let Some(answer) = earlier_answer(state, &project, record).await {
        return answer;
    }
    if let Some(id) = &interpreted.learned_repository_id {
        if let Err(e) = projects::remember_host_repository_id(&state.db, project.id, id).await {
            return unavailable(e.into());
        }
        state.projects.forget(name);
    }
    match interpreted.outcome {
        HookOutcome::Ping => Answer {
            status: StatusCode::OK,
            body: json!({ "ok": true, "event": "ping" }),
            reason: "ping".into(),
            item: None,
        },
        HookOutcome::Push(decision) => act(state, &project, decision, record).await,
    }
}

async fn act(
    state: &AppState,
    project: &Project,
    decision: Decision,
    record: &mut DeliveryRecord,
) -> Answer {
    let reason = decision.reasons.join("; ");
    if decision.refs.is_empty() {
        return Answer {
            status: StatusCode::OK,
            body: json!({ "queued": false, "reason": reason }),
            reason,
            item: None,
        };
    }
    let queued = state
        .queue
        .enqueue_delivery(project.id, &decision.refs, record.replay_key.as_deref())
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
    let status = match &error {
        HookError::Signature(_) => StatusCode::UNAUTHORIZED,
        HookError::MissingEvent(_) | HookError::Payload(_) => StatusCode::BAD_REQUEST,
        HookError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        HookError::RepositoryMismatch(_) => StatusCode::FORBIDDEN,
    };
    Answer::error(status, error.to_string())
}

fn unavailable(error: anyhow::Error) -> Answer {
    tracing::error!(error = format!("{error:#}"), "storage cannot commit");
    Answer::error(
        StatusCode::SERVICE_UNAVAILABLE,
        "storage is unavailable; try again later".into(),
    )
}

/// A redelivery: the first answer again, and nothing else happens.
fn replayed(first: entities::delivery::Model) -> Answer {
    Answer {
        status: StatusCode::from_u16(first.status as u16).unwrap_or(StatusCode::OK),
        body: serde_json::from_str(&first.response).unwrap_or_default(),
        reason: format!("redelivery of delivery {}; first answer replayed", first.id),
        item: first.item_id,
    }
}
