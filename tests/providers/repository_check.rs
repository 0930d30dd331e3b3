//! The repository check: a payload must name the project's repository, or, once baler has
//! learnt it, the host's id for it.

use baler::hooks::verify::github_signature;
use serde_json::Value;

use super::json_type;
use crate::on_both_databases;
use crate::support::git::GitRepo;
use crate::support::{ProjectSpec, SECRET, TestApp, TestDb};

async fn a_payload_for_another_repository_is_refused(db: TestDb) {
    let repo = GitRepo::standard();
    let app = TestApp::builder()
        .database(&db)
        .project(ProjectSpec::github("widget", repo.url()))
        .start()
        .await;
    app.queue.set_paused(true).await.unwrap();
    let post = |mutate: Box<dyn Fn(&mut Value) + Send>| {
        let (app, url) = (&app, repo.url());
        async move {
            let mut payload: Value = serde_json::from_slice(&crate::support::github_push_body(
                &url,
                "refs/heads/main",
                "abc",
            ))
            .unwrap();
            mutate(&mut payload);
            let body = serde_json::to_vec(&payload).unwrap();
            let headers = vec![
                json_type(),
                ("x-github-event", "push".to_string()),
                ("x-hub-signature-256", github_signature(SECRET, &body)),
            ];
            app.post_hook("widget", &headers, body)
                .await
                .status()
                .as_u16()
        }
    };
    let other =
        |p: &mut Value| p["repository"]["clone_url"] = "https://github.com/evil/widget.git".into();
    assert_eq!(post(Box::new(other)).await, 403);
    let none = |p: &mut Value| p["repository"] = Value::Null;
    assert_eq!(post(Box::new(none)).await, 403);
    assert_eq!(app.item_count().await, 0);
    assert_eq!(
        app.last_delivery().await.reason,
        "payload names another repository"
    );

    // The first matching delivery teaches baler the host's id (123456789 in the fixture); a
    // renamed repository is then still recognised, and another id is not.
    assert_eq!(post(Box::new(|_| {})).await, 202);
    let renamed =
        |p: &mut Value| p["repository"]["clone_url"] = "https://github.com/acme/renamed.git".into();
    assert_eq!(post(Box::new(renamed)).await, 202);
    let impostor = |p: &mut Value| p["repository"]["id"] = 42.into();
    assert_eq!(post(Box::new(impostor)).await, 403);
}

on_both_databases!(a_payload_for_another_repository_is_refused);
