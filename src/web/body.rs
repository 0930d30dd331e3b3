//! Reading a webhook's body into memory, within `MAX_BODY` per request and the shared
//! `[http] webhook_buffer_mib` over all requests at once.
//!
//! The shared budget is a semaphore of bytes. A body takes bytes from it as they arrive and is
//! refused (503) the moment the budget runs out; a declared `Content-Length` that does not fit
//! what is free is answered 503 at once, without reading the body. What a body holds is given
//! back when the handler drops the bytes.

use std::ops::Deref;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::intake::BodyRefusal;

/// The largest body a host may send (GitHub caps deliveries at 25 MB).
pub const MAX_BODY: usize = 25 * 1024 * 1024;

/// `Retry-After` for a full budget. Bodies are normally read in milliseconds, so a full budget
/// is a burst or clients that stall, and `[http] body_idle_timeout_seconds` closes those.
pub const FULL_RETRY_AFTER_SECONDS: u32 = 10;

/// The webhook bytes all requests may hold in memory at once; cheap to clone (clones share it).
#[derive(Clone)]
pub struct BodyBudget {
    bytes: usize,
    available: Arc<Semaphore>,
}

impl BodyBudget {
    pub fn new(bytes: usize) -> BodyBudget {
        // `[http]` allows at most 64 GiB, far below the semaphore's limit; the cap only keeps a
        // hand-built budget from panicking.
        let bytes = bytes.min(Semaphore::MAX_PERMITS);
        BodyBudget {
            bytes,
            available: Arc::new(Semaphore::new(bytes)),
        }
    }

    /// The whole budget.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Bytes no body holds right now.
    pub fn available(&self) -> usize {
        self.available.available_permits()
    }

    /// `bytes` more for `held`, or `None` (and `held` unchanged) when the budget has no room.
    fn hold(&self, held: &mut Option<OwnedSemaphorePermit>, bytes: usize) -> Option<()> {
        if bytes == 0 {
            return Some(());
        }
        // Never more than `MAX_BODY` at once, which fits the semaphore's u32.
        let count = u32::try_from(bytes).ok()?;
        let more = self.available.clone().try_acquire_many_owned(count).ok()?;
        match held {
            Some(permit) => permit.merge(more),
            None => *held = Some(more),
        }
        Some(())
    }
}

/// A body read into memory; it holds its share of the budget until dropped, so keep it for as
/// long as its bytes are in use.
#[derive(Debug)]
pub struct BufferedBody {
    bytes: Bytes,
    _held: Option<OwnedSemaphorePermit>,
}

impl Deref for BufferedBody {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

/// Reads the body within `budget`. Refused before reading anything: a declared length over
/// `MAX_BODY` or over the whole budget (413), or one the budget cannot hold now (503 with
/// `Retry-After`). Refused while reading: a body that passes `MAX_BODY` (413), outgrows the
/// budget (503), or stalls past `[http] body_idle_timeout_seconds` (408).
pub async fn read_limited(
    budget: &BodyBudget,
    headers: &HeaderMap,
    mut body: Body,
) -> Result<BufferedBody, BodyRefusal> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = declared {
        if len > MAX_BODY as u64 {
            return Err(too_large());
        }
        if len > budget.bytes() as u64 {
            return Err(refusal(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the body is over the server's webhook buffer of {} KiB \
                     ([http] webhook_buffer_mib)",
                    budget.bytes() >> 10
                ),
            ));
        }
    }
    // A declared length that does not fit what is free now is refused before reading. Nothing
    // is reserved for it, though: a body holds only the bytes that have arrived, so clients
    // that send heads and no bodies hold nothing (they could otherwise fill the budget for
    // everyone with a few headers).
    if let Some(len) = declared
        && len > budget.available() as u64
    {
        return Err(full());
    }
    let mut buffer = Vec::new();
    let mut held = None;
    if let Some(len) = declared {
        // hyper holds a body to its Content-Length, so a declared body never grows past it;
        // untouched capacity costs address space, not memory.
        buffer.reserve_exact(len as usize);
    }

    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(read_failed)?;
        let Ok(chunk) = frame.into_data() else {
            continue; // trailers carry nothing a webhook uses
        };
        let len = buffer.len() + chunk.len();
        if len > MAX_BODY {
            return Err(too_large());
        }
        if budget.hold(&mut held, chunk.len()).is_none() {
            return Err(full());
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(BufferedBody {
        bytes: Bytes::from(buffer),
        _held: held,
    })
}

fn refusal(status: StatusCode, message: String) -> BodyRefusal {
    BodyRefusal {
        status,
        message,
        retry_after_seconds: None,
    }
}

fn too_large() -> BodyRefusal {
    refusal(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the body is over the {} MiB limit", MAX_BODY >> 20),
    )
}

fn full() -> BodyRefusal {
    BodyRefusal {
        status: StatusCode::SERVICE_UNAVAILABLE,
        message: "too many webhook bodies are being received at once; try again later".into(),
        retry_after_seconds: Some(FULL_RETRY_AFTER_SECONDS),
    }
}

/// A stalled body (tower-http's `TimeoutBody`, see `web::server`) is 408; anything else, such
/// as a client that went away mid-body, 400.
fn read_failed(e: axum::Error) -> BodyRefusal {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(error) = source {
        if error.is::<tower_http::timeout::TimeoutError>() {
            return refusal(
                StatusCode::REQUEST_TIMEOUT,
                "the body stopped arriving ([http] body_idle_timeout_seconds)".into(),
            );
        }
        source = error.source();
    }
    refusal(
        StatusCode::BAD_REQUEST,
        format!("reading the body failed: {e}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use futures::StreamExt;
    use http_body_util::StreamBody;
    use hyper::body::Frame;

    fn declared(len: usize) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        headers
    }

    /// A chunked body: `chunks` pieces of `size` bytes.
    fn chunked(chunks: usize, size: usize) -> Body {
        let frames = futures::stream::iter(0..chunks)
            .map(move |_| Ok::<_, std::io::Error>(Frame::data(Bytes::from(vec![b'x'; size]))));
        Body::new(StreamBody::new(frames))
    }

    #[tokio::test]
    async fn a_head_without_its_body_holds_nothing() {
        let budget = BodyBudget::new(1000);
        let (frames, mut arriving) =
            tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(1);
        let body = Body::new(StreamBody::new(futures::stream::poll_fn(move |cx| {
            arriving.poll_recv(cx)
        })));
        let reading = tokio::spawn({
            let budget = budget.clone();
            async move { read_limited(&budget, &declared(900), body).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert_eq!(
            budget.available(),
            1000,
            "nothing has arrived, nothing is held"
        );
        frames
            .send(Ok(Frame::data(Bytes::from(vec![0u8; 300]))))
            .await
            .unwrap();
        // Held as it arrives: a second body of 800 no longer fits.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while budget.available() != 700 {
            assert!(
                std::time::Instant::now() < deadline,
                "300 bytes were not held"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let refused = read_limited(&budget, &declared(800), Body::empty())
            .await
            .unwrap_err();
        assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
        drop(frames);
        let read = reading.await.unwrap().unwrap();
        assert_eq!(read.len(), 300);
        drop(read);
        assert_eq!(budget.available(), 1000);
    }

    #[tokio::test]
    async fn a_declared_body_holds_its_length_until_dropped() {
        let budget = BodyBudget::new(1000);
        let first = read_limited(&budget, &declared(600), Body::from(vec![1u8; 600]))
            .await
            .unwrap();
        assert_eq!(first.len(), 600);
        assert_eq!(budget.available(), 400);

        // 500 does not fit beside it: refused before reading, with Retry-After.
        let refused = read_limited(&budget, &declared(500), Body::from(vec![2u8; 500]))
            .await
            .unwrap_err();
        assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.retry_after_seconds, Some(FULL_RETRY_AFTER_SECONDS));
        assert_eq!(budget.available(), 400, "a refusal holds nothing");

        drop(first);
        assert_eq!(budget.available(), 1000);
        let second = read_limited(&budget, &declared(500), Body::from(vec![2u8; 500]))
            .await
            .unwrap();
        assert_eq!(&second[..3], &[2, 2, 2]);
    }

    #[tokio::test]
    async fn a_chunked_body_is_refused_when_it_outgrows_the_budget() {
        let budget = BodyBudget::new(64 * 1024);
        let small = read_limited(&budget, &HeaderMap::new(), chunked(10, 1000))
            .await
            .unwrap();
        assert_eq!(small.len(), 10_000);
        assert!(budget.available() <= 64 * 1024 - 10_000);
        drop(small);
        assert_eq!(budget.available(), 64 * 1024);

        let refused = read_limited(&budget, &HeaderMap::new(), chunked(100, 1000))
            .await
            .unwrap_err();
        assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(refused.retry_after_seconds.is_some());
        assert_eq!(budget.available(), 64 * 1024, "what it took is given back");
    }

    #[tokio::test]
    async fn sizes_over_the_limits_are_413() {
        let budget = BodyBudget::new(64 * 1024 * 1024);
        let refused = read_limited(&budget, &declared(MAX_BODY + 1), Body::empty())
            .await
            .unwrap_err();
        assert_eq!(refused.status, StatusCode::PAYLOAD_TOO_LARGE);
        let refused = read_limited(&budget, &HeaderMap::new(), chunked(26, 1024 * 1024))
            .await
            .unwrap_err();
        assert_eq!(refused.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(budget.available(), 64 * 1024 * 1024);

        // A declared body the whole budget could never hold is not worth a retry.
        let small = BodyBudget::new(1024);
        let refused = read_limited(&small, &declared(2048), Body::empty())
            .await
            .unwrap_err();
        assert_eq!(refused.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(refused.retry_after_seconds, None);
    }

    #[tokio::test]
    async fn a_stalled_body_is_408() {
        let budget = BodyBudget::new(1024);
        let stalled = tower_http::timeout::TimeoutBody::new(
            std::time::Duration::from_millis(50),
            StreamBody::new(futures::stream::pending::<
                Result<Frame<Bytes>, std::io::Error>,
            >()),
        );
        let refused = read_limited(&budget, &HeaderMap::new(), Body::new(stalled))
            .await
            .unwrap_err();
        assert_eq!(refused.status, StatusCode::REQUEST_TIMEOUT);
    }
}
