//! The answer a delivery gets: the status, JSON body and `Retry-After` the host reads, and what
//! the deliveries log keeps of it. Every answer intake gives is built here, so the words a host
//! reads for each case are in one place.

use axum::http::StatusCode;
use serde_json::json;

use crate::deliveries::Refusal;
use crate::hooks::HookError;
use crate::hooks::verify::SignatureError;
use crate::queue::Enqueued;

/// How long a host is asked to wait after a 503 from storage.
const RETRY_AFTER_SECONDS: u32 = 30;

/// An answer to a delivery, kept in the deliveries log as it was sent (a refusal keeps only
/// its fixed reason).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: serde_json::Value,
    /// Sent as `Retry-After`.
    pub retry_after_seconds: Option<u32>,
    /// What the log says happened.
    pub(super) reason: String,
    /// The queue item the delivery went into.
    pub(super) item: Option<i64>,
    /// Set on refusals: what the log keeps instead of the message.
    pub(super) refusal: Option<Refusal>,
}

/// Why the web layer could not read a delivery's body (it reads it within its byte budget).
#[derive(Debug)]
pub struct BodyRefusal {
    pub status: StatusCode,
    pub message: String,
    /// Sent as `Retry-After` (a 503 for a full buffer).
    pub retry_after_seconds: Option<u32>,
}

impl Answer {
    /// A refusal: the client reads `message`, the log keeps only `refusal`.
    pub(super) fn refused(status: StatusCode, refusal: Refusal, message: String) -> Answer {
        Answer {
            status,
            body: json!({ "error": message }),
            retry_after_seconds: None,
            reason: refusal.as_str().to_string(),
            item: None,
            refusal: Some(refusal),
        }
    }

    pub(super) fn unknown_project() -> Answer {
        Answer::refused(
            StatusCode::NOT_FOUND,
            Refusal::UnknownProject,
            "no such project".into(),
        )
    }

    /// Storage could not commit (or read) in time: the host retries later, and the error is
    /// logged here, once.
    pub(super) fn unavailable(error: anyhow::Error) -> Answer {
        tracing::error!(error = format!("{error:#}"), "storage cannot commit");
        let mut answer = Answer::refused(
            StatusCode::SERVICE_UNAVAILABLE,
            Refusal::StorageUnavailable,
            "storage is unavailable; try again later".into(),
        );
        answer.retry_after_seconds = Some(RETRY_AFTER_SECONDS);
        answer
    }

    fn accepted(status: StatusCode, body: serde_json::Value, reason: String) -> Answer {
        Answer {
            status,
            body,
            retry_after_seconds: None,
            reason,
            item: None,
            refusal: None,
        }
    }

    pub(super) fn ping() -> Answer {
        Answer::accepted(
            StatusCode::OK,
            json!({ "ok": true, "event": "ping" }),
            "ping".into(),
        )
    }

    /// A verified delivery that releases nothing, and why.
    pub(super) fn ignored(reason: String) -> Answer {
        Answer::accepted(
            StatusCode::OK,
            json!({ "queued": false, "reason": reason }),
            reason,
        )
    }

    /// Queued; `reason` says what else the delivery named and left alone.
    pub(super) fn queued(queued: Enqueued, reason: &str) -> Answer {
        let reason = if reason.is_empty() {
            "queued".into()
        } else {
            format!("queued; {reason}")
        };
        let mut answer = Answer::accepted(
            StatusCode::ACCEPTED,
            serde_json::to_value(queued).unwrap_or_default(),
            reason,
        );
        answer.item = Some(queued.item);
        answer
    }

    /// A redelivery: the first answer again, and nothing else happens.
    pub(super) fn replayed(first: entities::delivery::Model) -> Answer {
        let mut answer = Answer::accepted(
            StatusCode::from_u16(first.status as u16).unwrap_or(StatusCode::OK),
            serde_json::from_str(&first.response).unwrap_or_default(),
            format!("redelivery of delivery {}; first answer replayed", first.id),
        );
        answer.item = first.item_id;
        answer
    }
}

/// A body that was not read: a refusal with the reader's own status and words.
impl From<BodyRefusal> for Answer {
    fn from(refused: BodyRefusal) -> Answer {
        let refusal = match refused.status {
            StatusCode::PAYLOAD_TOO_LARGE => Refusal::TooLarge,
            StatusCode::SERVICE_UNAVAILABLE => Refusal::BufferFull,
            _ => Refusal::UnreadableBody,
        };
        let mut answer = Answer::refused(refused.status, refusal, refused.message);
        answer.retry_after_seconds = refused.retry_after_seconds;
        answer
    }
}

/// A delivery that failed a check of `hooks::interpret`.
impl From<HookError> for Answer {
    fn from(error: HookError) -> Answer {
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
            HookError::RepositoryMismatch(_) => {
                (StatusCode::FORBIDDEN, Refusal::RepositoryMismatch)
            }
        };
        Answer::refused(status, refusal, error.to_string())
    }
}
