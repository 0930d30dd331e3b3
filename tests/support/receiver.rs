//! A notification receiver: a real HTTP server in the test that checks every delivery's
//! Standard Webhooks signature with the spec's reference crate (`standardwebhooks`), answers
//! as the test scripts it (a status, or never), and keeps what it saw.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

/// A fixed Standard Webhooks secret for the tests' subscribers.
pub const NOTIFY_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwbGlmZWJhbGVy";

/// How the receiver answers one delivery.
#[derive(Debug, Clone, Copy)]
pub enum Reply {
    Status(u16),
    /// Holds the request open and never answers.
    Hang,
}

/// One delivery as it arrived.
#[derive(Debug, Clone)]
pub struct Seen {
    pub id: String,
    pub body: Value,
    /// The reference crate accepted its signature and timestamp.
    pub verified: bool,
    /// What the receiver answered (`None`: it hung).
    pub answered: Option<u16>,
}

#[derive(Default)]
struct Inner {
    script: VecDeque<Reply>,
    /// The reply once the script has run out.
    then: Option<Reply>,
    seen: Vec<Seen>,
}

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl Receiver {
    /// Listens on a port of its own; answers 200 unless scripted.
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Receiver::serve(listener)
    }

    /// Listens on `port` (one a test kept free while the receiver was "down").
    pub async fn start_on(port: u16) -> Receiver {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        Receiver::serve(listener)
    }

    fn serve(listener: tokio::net::TcpListener) -> Receiver {
        let address: SocketAddr = listener.local_addr().unwrap();
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(inner.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver {
            url: format!("http://{address}/hook"),
            inner,
        }
    }

    /// Answers the next deliveries with `replies`, in order, then with `then`.
    pub fn script(&self, replies: &[Reply], then: Reply) {
        let mut inner = self.inner.lock().unwrap();
        inner.script = replies.iter().copied().collect();
        inner.then = Some(then);
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.inner.lock().unwrap().seen.clone()
    }

    /// Deliveries answered with a 2xx.
    pub fn accepted(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| {
                s.answered
                    .is_some_and(|status| (200..300).contains(&status))
            })
            .collect()
    }
}

async fn receive(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let verified = standardwebhooks::Webhook::new(NOTIFY_SECRET)
        .unwrap()
        .verify(&body, &headers)
        .is_ok();
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let reply = {
        let mut inner = inner.lock().unwrap();
        let reply = inner
            .script
            .pop_front()
            .or(inner.then)
            .unwrap_or(Reply::Status(200));
        let answered = match reply {
            // An unverified delivery is refused whatever the script says.
            Reply::Status(status) if !verified => Some(status.max(400)),
            Reply::Status(status) => Some(status),
            Reply::Hang => None,
        };
        inner.seen.push(Seen {
            id,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            verified,
            answered,
        });
        answered
    };
    match reply {
        Some(status) => StatusCode::from_u16(status).unwrap(),
        None => std::future::pending().await,
    }
}
