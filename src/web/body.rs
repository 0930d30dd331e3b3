//! Reading a webhook's body into memory, within `MAX_BODY` per request and the shared
//! `[http] webhook_buffer_mib` over all requests at once.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};

/// The largest body a host may send (GitHub caps deliveries at 25 MB).
pub const MAX_BODY: usize = 25 * 1024 * 1024;

/// Why a body was not read.
#[derive(Debug)]
pub struct BodyRefusal {
    pub status: StatusCode,
    pub message: String,
    /// Sent as `Retry-After` (a 503 for a full buffer).
    pub retry_after_seconds: Option<u32>,
}

/// The webhook bytes all requests may hold in memory at once; cheap to clone.
#[derive(Clone)]
pub struct BodyBudget {
    bytes: usize,
}

impl BodyBudget {
    pub fn new(bytes: usize) -> BodyBudget {
        BodyBudget { bytes }
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// Reads the body, refusing (413) as soon as it passes `MAX_BODY`: a declared length over the
/// limit is refused before reading anything, a streamed body once the limit is reached.
pub async fn read_limited(
    _budget: &BodyBudget,
    headers: &HeaderMap,
    body: Body,
) -> Result<Bytes, BodyRefusal> {
    let too_large = || BodyRefusal {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        message: format!("the body is over the {} MiB limit", MAX_BODY >> 20),
        retry_after_seconds: None,
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BODY as u64) {
        return Err(too_large());
    }
    match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(bytes) => Ok(bytes),
        Err(e) => {
            let over = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if over {
                Err(too_large())
            } else {
                Err(BodyRefusal {
                    status: StatusCode::BAD_REQUEST,
                    message: format!("reading the body failed: {e}"),
                    retry_after_seconds: None,
                })
            }
        }
    }
}
