//! Gitea and Forgejo: a hex HMAC header of their own, JSON and form bodies.

use serde_json::Value;

use super::{gitea_payload, hex_hmac, json_type};
use crate::on_both_databases;
use crate::support::git::GitRepo;
use crate::support::{ProjectSpec, SECRET, TestApp, TestDb};

async fn gitea_and_forgejo_deliveries_release(db: TestDb) {
    let repo = GitRepo::standard();
    let app = TestApp::builder()
        .database(&db)
        .project(ProjectSpec::gitea("widget", repo.url()))
        .start()
        .await;
    app.queue.set_paused(true).await.unwrap();

    // Gitea, JSON body.
    let body = gitea_payload(&repo.url(), "refs/heads/main", &repo.head());
    let headers = vec![
        json_type(),
        ("x-gitea-event", "push".to_string()),
        ("x-gitea-delivery", "d-1".to_string()),
        ("x-gitea-signature", hex_hmac(SECRET, &body)),
    ];
    let answer = app.post_hook("widget", &headers, body).await;
    assert_eq!(answer.status(), 202);

    // Forgejo, form body: the signature covers the JSON inside `payload`.
    let json = gitea_payload(&repo.url(), "refs/tags/v1.0.0", &repo.rev("v1.0.0"));
    let form: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", std::str::from_utf8(&json).unwrap())
        .finish();
    let headers = vec![
        (
            "content-type",
            "application/x-www-form-urlencoded".to_string(),
        ),
        ("x-forgejo-event", "push".to_string()),
        ("x-forgejo-delivery", "d-2".to_string()),
        ("x-forgejo-signature", hex_hmac(SECRET, &json)),
    ];
    let answer: Value = app
        .post_hook("widget", &headers, form.into_bytes())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(answer["merged"], true, "{answer}");

    app.queue.set_paused(false).await.unwrap();
    app.run_queue_until_idle().await;
    assert_eq!(
        app.release("widget", "main-dev").await["commit"],
        repo.head().as_str()
    );
    assert_eq!(
        app.release("widget", "1.0.0").await["commit"],
        repo.rev("v1.0.0").as_str()
    );
}

on_both_databases!(gitea_and_forgejo_deliveries_release);
