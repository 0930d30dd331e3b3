//! Webhooks from the open internet: what unauthenticated input may store, replays of signed
//! deliveries, numbers that would overflow, and a database that cannot commit.

use std::time::{Duration, Instant};

use baler::hooks::verify::standard_webhook_signature;
use futures::StreamExt;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement, TransactionTrait};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::on_both_databases;
use crate::support::browser::AdminBrowser;
use crate::support::git::GitRepo;
use crate::support::{ProjectSpec, TestApp, TestDb, fixture};

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ADMIN_TOKEN: &str = "abuse-admin-token-5e1d9c0b7a3f";

/// How much the database holds, in bytes: SQLite's pages (the WAL's included), or
/// PostgreSQL's database size.
async fn database_bytes(app: &TestApp) -> i64 {
    match app.db.get_database_backend() {
        sea_orm::DatabaseBackend::Sqlite => {
            app.count("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()")
                .await
        }
        _ => {
            app.count("SELECT pg_database_size(current_database())")
                .await
        }
    }
}

async fn refused_burst(db: TestDb) {
    let database = TestApp::database_line(&db).await;
    let app = TestApp::spawn_with(
        &[ProjectSpec::github("widget", "file:///nowhere".into())],
        &format!("max_attempts = 1\nadmin_token = \"{ADMIN_TOKEN}\"\n{database}"),
    )
    .await;
    let before = database_bytes(&app).await;
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
        let kept = app
            .count("SELECT COUNT(*) FROM deliveries WHERE project_name = 'widget'")
            .await;
        let counted = app
            .count("SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM refusal_counts")
            .await;
        kept + counted == 1000
    })
    .await;
    let kept = app.count("SELECT COUNT(*) FROM deliveries").await;
    assert!(
        (1..=60).contains(&kept),
        "one address keeps at most its hourly budget of rows: {kept}"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM deliveries WHERE project_id IS NULL")
            .await,
        0,
        "unknown projects are counted, never kept"
    );
    assert_eq!(
        app.count(
            "SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM refusal_counts WHERE reason = 'unknown project'"
        )
        .await,
        500
    );
    assert_eq!(
        app.count(
            "SELECT COUNT(*) FROM deliveries WHERE LENGTH(delivery_id) > 128 \
             OR LENGTH(project_name) > 64 OR LENGTH(COALESCE(event, '')) > 64 \
             OR reason <> 'signature does not match'"
        )
        .await,
        0,
        "kept refusals hold only bounded fields and a fixed reason"
    );
    assert_eq!(
        app.count("SELECT CAST(MAX(LENGTH(last_name)) AS BIGINT) FROM refusal_counts")
            .await,
        64
    );
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
    let grown = database_bytes(&app).await - before;
    eprintln!("1,000 refused requests grew the database by {grown} bytes");
    assert!(
        grown < 1024 * 1024,
        "1,000 refused requests grew the database by {grown} bytes"
    );
}

/// Project `widget` on GitLab with a signing token (Standard Webhooks), and its repository.
async fn gitlab_with_signing_token(db: &TestDb) -> (GitRepo, TestApp) {
    let repo = GitRepo::standard();
    let database = TestApp::database_line(db).await;
    let app = TestApp::spawn_with(
        &[ProjectSpec {
            extra: "secrets = [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]",
            ..ProjectSpec::gitlab("widget", repo.url())
        }],
        &format!("max_attempts = 1\n{database}"),
    )
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
    assert_eq!(
        app.count("SELECT CAST(MAX(revision) AS BIGINT) FROM queue_items")
            .await,
        1,
        "the replay changed nothing"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM deliveries WHERE reason LIKE 'redelivery of delivery%'")
            .await,
        1
    );
    assert_eq!(
        app.count(&format!(
            "SELECT COUNT(*) FROM deliveries WHERE delivery_id = '{id}'"
        ))
        .await,
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
    assert_eq!(app.count("SELECT COUNT(*) FROM queue_items").await, 0);
}

/// The app's own database, opened separately to hold its write lock.
async fn second_connection(db: &TestDb, app: &TestApp, database_line: &str) -> DatabaseConnection {
    let url = match db {
        TestDb::Sqlite => format!("sqlite://{}/baler.db", app.data_dir.display()),
        TestDb::Postgres(_) => database_line
            .trim()
            .trim_start_matches("database_url = \"")
            .trim_end_matches('"')
            .to_string(),
    };
    let mut options = sea_orm::ConnectOptions::new(url);
    options.max_connections(1).sqlx_logging(false);
    sea_orm::Database::connect(options).await.unwrap()
}

async fn locked_database(db: TestDb) {
    let repo = GitRepo::standard();
    let database = TestApp::database_line(&db).await;
    let app = TestApp::spawn_with(
        &[ProjectSpec::github("widget", repo.url())],
        &format!("max_attempts = 1\n{database}\n[http]\ncommit_timeout_seconds = 2\n"),
    )
    .await;
    app.queue.set_paused(true).await.unwrap();
    let locker = second_connection(&db, &app, &database).await;
    let lock = locker.begin().await.unwrap();
    match db {
        // A write takes SQLite's one write lock until the transaction ends.
        TestDb::Sqlite => lock
            .execute_raw(Statement::from_string(
                sea_orm::DatabaseBackend::Sqlite,
                "UPDATE queue_control SET paused = paused",
            ))
            .await
            .map(|_| ())
            .unwrap(),
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
        app.count("SELECT COUNT(*) FROM deliveries WHERE status = 503")
            .await
            == 1
    })
    .await;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM queue_items").await,
        0,
        "a 503 leaves nothing queued"
    );

    // With the lock gone, the host's retry is queued.
    let retry = app
        .github_push("widget", "refs/heads/main", &repo.head())
        .await;
    assert_eq!(retry.status(), 202);
    assert_eq!(app.count("SELECT COUNT(*) FROM queue_items").await, 1);
}

/// The login form is open to anyone: its body is read whole before its CSRF token is checked,
/// so it must be small. (axum's default let it buffer 2 MiB per connection.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_form_takes_small_bodies_only() {
    let app = TestApp::spawn_with(&[], &format!("admin_token = \"{ADMIN_TOKEN}\"\n")).await;
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
