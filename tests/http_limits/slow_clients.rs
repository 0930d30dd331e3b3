//! Clients on raw sockets that stall bodies or heads, fill the webhook buffer, hold every
//! connection, or trickle a body.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{ADMIN_TOKEN, HttpSettings, ProjectSpec, TestApp};

/// An app with project `widget` (whose pushes queue and are never built: the queue is paused)
/// and `http` as its `[http]` table.
async fn app_with(http: HttpSettings) -> TestApp {
    let app = TestApp::builder()
        .admin_token(ADMIN_TOKEN)
        .http(http)
        .project(ProjectSpec::github("widget", "file:///nowhere"))
        .start()
        .await;
    app.queue.set_paused(true).await.unwrap();
    app
}

async fn connect(app: &TestApp) -> TcpStream {
    let stream = TcpStream::connect(app.url.trim_start_matches("http://"))
        .await
        .unwrap();
    // Each write leaves at once: a byte every 300 ms must arrive every 300 ms.
    stream.set_nodelay(true).unwrap();
    stream
}

/// A webhook's head declaring `length` body bytes. Not signed: no test here lets a body
/// finish, and the server reads a body before it checks the signature.
fn webhook_head(length: usize) -> String {
    format!(
        "POST /hooks/widget HTTP/1.1\r\nHost: baler\r\nContent-Type: application/json\r\n\
         X-GitHub-Event: push\r\nX-GitHub-Delivery: {}\r\n\
         X-Hub-Signature-256: sha256=00\r\nContent-Length: {length}\r\n\r\n",
        uuid::Uuid::new_v4()
    )
}

/// Reads until the server closes the connection (or resets it), failing if it is still open
/// after `seconds`; returns whatever was answered before.
async fn closed_within(stream: &mut TcpStream, seconds: u64) -> Vec<u8> {
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(seconds), async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the connection is still open after {seconds} s; answered so far: {:?}",
        String::from_utf8_lossy(&answer)
    );
    answer
}

/// Reads an answer's head, failing if none comes within `seconds`.
async fn head_within(stream: &mut TcpStream, seconds: u64) -> String {
    let mut head = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(seconds), async {
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte).await {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer within {seconds} s");
    String::from_utf8_lossy(&head).to_lowercase()
}

/// The status of an HTTP/1.1 answer (`None` for no answer).
fn status(answer: &[u8]) -> Option<u16> {
    std::str::from_utf8(answer.get(..12)?)
        .ok()?
        .strip_prefix("HTTP/1.1 ")?
        .parse()
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_bodies_are_closed_while_others_are_served() {
    let app = app_with(HttpSettings {
        body_idle_timeout_seconds: Some(1),
        ..HttpSettings::default()
    })
    .await;
    // Bodies of 8 MiB that stop after 64 KiB (four fit the default 64 MiB buffer together).
    let mut stalled = Vec::new();
    for _ in 0..4 {
        let mut stream = connect(&app).await;
        stream
            .write_all(webhook_head(8 << 20).as_bytes())
            .await
            .unwrap();
        stream.write_all(&[b' '; 64 * 1024]).await.unwrap();
        stalled.push(stream);
    }
    let started = Instant::now();

    // Meanwhile everyone else is answered at once.
    let health = tokio::time::timeout(Duration::from_secs(2), app.get("/healthz"))
        .await
        .expect("/healthz is answered while bodies stall");
    assert_eq!(health.status(), 200);
    let push = tokio::time::timeout(
        Duration::from_secs(2),
        app.github_push("widget", "refs/heads/main", &"a".repeat(40)),
    )
    .await
    .expect("a webhook is answered while bodies stall");
    assert_eq!(push.status(), 202);

    for stream in &mut stalled {
        let answer = closed_within(stream, 5).await;
        assert!(
            matches!(status(&answer), None | Some(408)),
            "{:?}",
            String::from_utf8_lossy(&answer)
        );
    }
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_and_idle_headers_are_closed() {
    let app = app_with(HttpSettings {
        header_read_timeout_seconds: Some(1),
        ..HttpSettings::default()
    })
    .await;
    let started = Instant::now();
    let mut half = connect(&app).await;
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: baler\r\nX-Slow: ")
        .await
        .unwrap();
    // One that never says anything, and one kept alive after its answer: the same timer
    // waits for every request head (see `web::server`).
    let mut silent = connect(&app).await;
    let mut kept = connect(&app).await;
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: baler\r\n\r\n")
        .await
        .unwrap();
    assert!(head_within(&mut kept, 2).await.starts_with("http/1.1 200"));

    for stream in [&mut half, &mut silent] {
        let answer = closed_within(stream, 5).await;
        assert_eq!(status(&answer), None, "closed without an answer");
    }
    // The tail of /healthz's body ("ok") is all the kept-alive connection still reads.
    let rest = closed_within(&mut kept, 5).await;
    assert_eq!(rest, b"ok");
    // Closed by the limit, not at once as if the head were malformed.
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_webhook_buffer_answers_503_without_reading() {
    let app = app_with(HttpSettings {
        webhook_buffer_mib: Some(1),
        body_idle_timeout_seconds: Some(10),
        ..HttpSettings::default()
    })
    .await;
    let mut first = connect(&app).await;
    first
        .write_all(webhook_head(900 * 1024).as_bytes())
        .await
        .unwrap();
    first.write_all(&[b' '; 600 * 1024]).await.unwrap();
    // A head with no body holds nothing: it cannot shut the others out.
    let mut idle = connect(&app).await;
    idle.write_all(webhook_head(900 * 1024).as_bytes())
        .await
        .unwrap();
    // The first body holds what has arrived once its handler has read it (milliseconds).
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Only the head of the second: the answer must not wait for its body.
    let mut second = connect(&app).await;
    second
        .write_all(webhook_head(500 * 1024).as_bytes())
        .await
        .unwrap();
    let head = head_within(&mut second, 2).await;
    assert!(head.starts_with("http/1.1 503"), "{head}");
    assert!(head.contains("\r\nretry-after: "), "{head}");

    // Once the first is gone, its share is back.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let push = app
            .github_push("widget", "refs/heads/main", &"b".repeat(40))
            .await;
        if push.status() == 202 {
            break;
        }
        assert_eq!(push.status(), 503);
        assert!(Instant::now() < deadline, "the budget did not come back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_limit_wait_for_a_free_one() {
    let app = app_with(HttpSettings {
        max_connections: Some(2),
        header_read_timeout_seconds: Some(30),
        ..HttpSettings::default()
    })
    .await;
    let first = connect(&app).await;
    let _second = connect(&app).await;
    let mut third = connect(&app).await;
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: baler\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_secs(1), third.read(&mut byte)).await;
    assert!(
        early.is_err(),
        "answered while two connections held the slots"
    );

    drop(first);
    let head = head_within(&mut third, 5).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_that_never_stalls_ends_at_the_request_timeout() {
    let app = app_with(HttpSettings {
        body_idle_timeout_seconds: Some(1),
        request_timeout_seconds: Some(2),
        ..HttpSettings::default()
    })
    .await;
    let stream = connect(&app).await;
    let (mut reader, mut writer) = stream.into_split();
    writer
        .write_all(webhook_head(1000).as_bytes())
        .await
        .unwrap();
    let started = Instant::now();
    let trickle = tokio::spawn(async move {
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if writer.write_all(b" ").await.is_err() {
                return;
            }
        }
    });
    let mut answer = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(6), async {
        let mut buf = [0u8; 1024];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    trickle.abort();
    assert!(ended.is_ok(), "the request was still open after 6 s");
    assert!(
        matches!(status(&answer), None | Some(408)),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    // Not the idle limit (1 s): the body kept arriving.
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "ended after {:?}",
        started.elapsed()
    );
}
