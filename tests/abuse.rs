//! Webhooks from the open internet: what unauthenticated input may store, replays of signed
//! deliveries, numbers that would overflow, and a database that cannot commit.

use std::time::{Duration, Instant};

use baler::hooks::verify::standard_webhook_signature;
use entities::queue_control;
use futures::StreamExt;
use sea_orm::sea_query::Expr;
use sea_orm::{ConnectionTrait, EntityTrait, TransactionTrait};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::on_both_databases;
use crate::support::browser::AdminBrowser;
use crate::support::git::GitRepo;
use crate::support::{HttpSettings, ProjectSpec, TestApp, TestDb, fixture};

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ADMIN_TOKEN: &str = "abuse-admin-token-5e1d9c0b7a3f";

/// Long on purpose: one burst, then every question about what it left behind.
async fn refused_burst(db: TestDb) {
    let app = TestApp::builder()
        .database(&db)
        .admin_token(ADMIN_TOKEN)
        .project(ProjectSpec::github("widget", "file:///nowhere"))
        .start()
        .await;
    let before = app.database_bytes().await;
    let huge_id = "d".repeat(300 * 1024);
    let huge_name = "x".repeat(60 * 1024);
    let sent = futures::stream::iter(0..1000)
        .map(|n| {
            let (app, huge_id, huge_name) = (&app, &huge_id, &huge_name);
            async move {
                if n % 2 == 0 {
                    // An unknown project with a 60 KB name, unsigned.
                    app.post_hook(&format!("{huge_name}{n}"), &[], b"{}".to_vec())
                        .await
                        .status()
                } else {
                    // A known project, a 300 KB delivery id, a 20 KB event, a wrong signature.
                    app.post_hook(
                        "widget",
                        &[
                            ("content-type", "application/json".into()),
                            ("x-github-event", format!("push{}", &huge_id[..20 * 1024])),
                            ("x-github-delivery", format!("{huge_id}{n}")),
                            ("x-hub-signature-256", format!("sha256={}", "00".repeat(32))),
                        ],
                        b"{}".to_vec(),
                    )
                    .await
                    .status()
                }
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    assert_eq!(sent.iter().filter(|s| s.as_u16() == 404).count(), 500);
    assert_eq!(sent.iter().filter(|s| s.as_u16() == 401).count(), 500);

    // Every refusal is either kept (bounded) or counted; none is lost, none is kept whole.
    crate::support::wait_until(10, "the refusals to be written", || async {
        let kept = app.delivery_rows().await;
        let kept = kept.iter().filter(|d| d.project_name == "widget").count();
        let counted: i64 = app.refusal_count_rows().await.iter().map(|r| r.count).sum();
        kept as i64 + counted == 1000
    })
    .await;
    let deliveries = app.delivery_rows().await;
    let kept = deliveries.len();
    assert!(
        (1..=60).contains(&kept),
        "one address keeps at most its hourly budget of rows: {kept}"
    );
    assert_eq!(
        deliveries.iter().filter(|d| d.project_id.is_none()).count(),
        0,
        "unknown projects are counted, never kept"
    );
    let counted = app.refusal_count_rows().await;
    let unknown_projects: i64 = counted
        .iter()
        .filter(|r| r.reason == "unknown project")
        .map(|r| r.count)
        .sum();
    assert_eq!(unknown_projects, 500);
    let chars = |text: &str| text.chars().count();
    let unbounded = deliveries.iter().filter(|d| {
        d.delivery_id.as_deref().is_some_and(|id| chars(id) > 128)
            || chars(&d.project_name) > 64
            || chars(d.event.as_deref().unwrap_or_default()) > 64
            || d.reason != "signature does not match"
    });
    assert_eq!(
        unbounded.count(),
        0,
        "kept refusals hold only bounded fields and a fixed reason"
    );
    assert_eq!(counted.iter().map(|r| chars(&r.last_name)).max(), Some(64));
    // Admins see the counts; the page stays small.
    let mut browser = AdminBrowser::logged_in(&app, ADMIN_TOKEN).await;
    let page = browser.get("/admin/deliveries").await;
    assert_eq!(page.status, 200);
    assert!(page.body.len() < 200 * 1024, "{} bytes", page.body.len());
    let counted: i64 = page
        .rows("#counted-refusals")
        .iter()
        .filter(|row| row.contains("127.0.0.1 | unknown project"))
        .map(|row| row.split(" | ").nth(3).unwrap().parse::<i64>().unwrap())
        .sum();
    assert_eq!(counted, 500);
    let grown = app.database_bytes().await - before;
    eprintln!("1,000 refused requests grew the database by {grown} bytes");
    assert!(
        grown < 1024 * 1024,
        "1,000 refused requests grew the database by {grown} bytes"
    );
}

/// Project `widget` on GitLab with a signing token (Standard Webhooks), and its repository.
async fn gitlab_with_signing_token(db: &TestDb) -> (GitRepo, TestApp) {
    let repo = GitRepo::standard();
    let app = TestApp::builder()
        .database(db)
        .project(ProjectSpec::gitlab("widget", repo.url()).secrets(&[WHSEC]))
        .start()
        .await;
    (repo, app)
}

async fn signed_gitlab_replay(db: TestDb) {
    let (repo, app) = gitlab_with_signing_token(&db).await;
    app.queue.set_paused(true).await.unwrap();
    let mut payload = fixture("webhooks/gitlab/push.json");
    payload["project"]["git_http_url"] = repo.url().into();
    let body = serde_json::to_vec(&payload).unwrap();
    let timestamp = chrono::Utc::now().timestamp();
    let id = "msg_2hX7a9";
    let signature = standard_webhook_signature(WHSEC, id, timestamp, &body);
    // The same signed request twice, with a different unsigned Idempotency-Key each time.
    let mut answers = Vec::new();
    for key in ["first-key", "second-key"] {
        let response = app
            .post_hook(
                "widget",
                &[
                    ("content-type", "application/json".into()),
                    ("x-gitlab-event", "Push Hook".into()),
                    ("idempotency-key", key.into()),
                    ("webhook-id", id.into()),
                    ("webhook-timestamp", timestamp.to_string()),
                    ("webhook-signature", signature.clone()),
                ],
                body.clone(),
            )
            .await;
        answers.push((response.status().as_u16(), response.text().await.unwrap()));
    }
    assert_eq!(answers[0].0, 202, "{answers:?}");
    assert_eq!(answers[1], answers[0], "the replay gets the first answer");
    let revisions = app.queue_rows().await.iter().map(|row| row.revision).max();
    assert_eq!(revisions, Some(1), "the replay changed nothing");
    let deliveries = app.delivery_rows().await;
    let redeliveries = deliveries
        .iter()
        .filter(|d| d.reason.starts_with("redelivery of delivery"));
    assert_eq!(redeliveries.count(), 1);
    assert_eq!(
        deliveries
            .iter()
            .filter(|d| d.delivery_id.as_deref() == Some(id))
            .count(),
        2,
        "both are logged under the signed id"
    );
}

async fn extreme_timestamps(db: TestDb) {
    let (_repo, app) = gitlab_with_signing_token(&db).await;
    let body = b"{}".to_vec();
    // A debug build (this one) panics on an overflowing subtraction: before the fix the
    // handler died and the connection closed with no answer.
    for timestamp in [i64::MIN, i64::MIN + 1, i64::MAX] {
        let response = app
            .post_hook(
                "widget",
                &[
                    ("content-type", "application/json".into()),
                    ("x-gitlab-event", "Push Hook".into()),
                    ("webhook-id", "msg_1".into()),
                    ("webhook-timestamp", timestamp.to_string()),
                    (
                        "webhook-signature",
                        standard_webhook_signature(WHSEC, "msg_1", timestamp, &body),
                    ),
                ],
                body.clone(),
            )
            .await;
        assert_eq!(response.status(), 401, "timestamp {timestamp}");
        let answer: serde_json::Value = response.json().await.unwrap();
        assert!(
            answer["error"]
                .as_str()
                .unwrap()
                .contains("webhook-timestamp"),
            "{answer}"
        );
    }
    assert_eq!(app.item_count().await, 0);
}

async fn locked_database(db: TestDb) {
    let repo = GitRepo::standard();
    let app = TestApp::builder()
        .database(&db)
        .http(HttpSettings {
            commit_timeout_seconds: Some(2),
            ..HttpSettings::default()
        })
        .project(ProjectSpec::github("widget", repo.url()))
        .start()
        .await;
    app.queue.set_paused(true).await.unwrap();
    // The app's own database, opened separately to hold its write lock.
    let locker = app.second_connection().await;
    let lock = locker.begin().await.unwrap();
    match db {
        // A write that changes nothing takes SQLite's one write lock until the transaction
        // ends.
        TestDb::Sqlite => queue_control::Entity::update_many()
            .col_expr(
                queue_control::Column::Paused,
                Expr::col(queue_control::Column::Paused),
            )
            .exec(&lock)
            .await
            .map(|_| ())
            .unwrap(),
        // No API takes a table lock: raw SQL on purpose.
        TestDb::Postgres(_) => lock
            .execute_unprepared("LOCK TABLE queue_items IN ACCESS EXCLUSIVE MODE")
            .await
            .map(|_| ())
            .unwrap(),
    }

    let started = Instant::now();
    // Bounded here too: before the fix, PostgreSQL's upsert waited for the lock for ever.
    let response = tokio::time::timeout(
        Duration::from_secs(20),
        app.github_push("widget", "refs/heads/main", &repo.head()),
    )
    .await
    .expect("the webhook answered while the database was locked");
    let waited = started.elapsed();
    assert_eq!(response.status(), 503);
    assert!(
        response.headers().contains_key("retry-after"),
        "{:?}",
        response.headers()
    );
    assert!(
        waited < Duration::from_secs(8),
        "answered after {waited:?}; hosts give up at 10 s"
    );
    lock.rollback().await.unwrap();
    // Whatever was waiting for the lock gets it now, and must write nothing of the refused
    // delivery. (SQLite's writer waits out its busy timeout before giving up.)
    tokio::time::sleep(Duration::from_secs(1)).await;
    crate::support::wait_until(15, "the refused delivery to be logged", || async {
        let deliveries = app.delivery_rows().await;
        deliveries.iter().filter(|d| d.status == 503).count() == 1
    })
    .await;
    assert_eq!(app.item_count().await, 0, "a 503 leaves nothing queued");

    // With the lock gone, the host's retry is queued.
    let retry = app
        .github_push("widget", "refs/heads/main", &repo.head())
        .await;
    assert_eq!(retry.status(), 202);
    assert_eq!(app.item_count().await, 1);
}

/// The login form is open to anyone: its body is read whole before its CSRF token is checked,
/// so it must be small. (axum's default let it buffer 2 MiB per connection.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_form_takes_small_bodies_only() {
    let app = TestApp::builder().admin_token(ADMIN_TOKEN).start().await;
    // A head declaring 1 MiB and 100 KiB of it, then nothing: the answer must come once the
    // small limit is passed, without the rest (before, the server waited for all of it, up to
    // its 2 MiB default). A connection of its own, since the server closes it after refusing.
    let address = app.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /admin/login HTTP/1.1\r\nHost: {address}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        1024 * 1024
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&[b'a'; 100 * 1024]).await.unwrap();
    let mut answer = vec![0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer))
        .await
        .expect("answered without the rest of the body")
        .unwrap();
    let status_line = String::from_utf8_lossy(&answer[..read]).to_string();
    assert!(status_line.starts_with("HTTP/1.1 413"), "{status_line}");
    // A form of the right size is read (and refused for its CSRF token, as always).
    let small = app
        .client
        .post(format!("{}/admin/login", app.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("csrf=x&token=y")
        .send()
        .await
        .unwrap();
    assert_eq!(small.status(), 403);
}

on_both_databases!(
    refused_burst,
    signed_gitlab_replay,
    extreme_timestamps,
    locked_database
);
