//! Refusals: each asserts the status and that nothing was queued.

use baler::hooks::verify::github_signature;

use crate::support::{ProjectSpec, SECRET, TestApp, github_push_body};

async fn queued(app: &TestApp) -> i64 {
    app.count("SELECT COUNT(*) FROM queue_items").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_refusals_queue_nothing() {
    let app = TestApp::spawn(&[ProjectSpec::github("widget", "file:///nowhere".into())]).await;
    let body = github_push_body("refs/tags/v1.0.0", "abc");
    let good = github_signature(SECRET, &body);
    let wrong = github_signature("not the secret", &body);
    let json = ("content-type", "application/json".to_string());
    let push = ("x-github-event", "push".to_string());

    let cases: Vec<(&str, &str, Vec<(&str, String)>, Vec<u8>, u16)> = vec![
        (
            "missing signature",
            "widget",
            vec![json.clone(), push.clone()],
            body.clone(),
            401,
        ),
        (
            "wrong secret",
            "widget",
            vec![json.clone(), push.clone(), ("x-hub-signature-256", wrong)],
            body.clone(),
            401,
        ),
        (
            "garbled signature",
            "widget",
            vec![
                json.clone(),
                push.clone(),
                ("x-hub-signature-256", "sha256=zz".into()),
            ],
            body.clone(),
            401,
        ),
        (
            "body changed after signing",
            "widget",
            vec![
                json.clone(),
                push.clone(),
                ("x-hub-signature-256", good.clone()),
            ],
            github_push_body("refs/tags/v6.6.6", "abc"),
            401,
        ),
        (
            "unknown project",
            "nope",
            vec![
                json.clone(),
                push.clone(),
                ("x-hub-signature-256", good.clone()),
            ],
            body.clone(),
            404,
        ),
        (
            "not json",
            "widget",
            vec![
                ("content-type", "text/plain".into()),
                push.clone(),
                ("x-hub-signature-256", good.clone()),
            ],
            body.clone(),
            415,
        ),
        (
            "no event header",
            "widget",
            vec![json.clone(), ("x-hub-signature-256", good.clone())],
            body.clone(),
            400,
        ),
    ];
    for (what, project, headers, body, status) in cases {
        let response = app.post_hook(project, &headers, body).await;
        assert_eq!(response.status().as_u16(), status, "{what}");
        let answer: serde_json::Value = response.json().await.unwrap();
        assert!(answer["error"].is_string(), "{what}: {answer}");
        assert_eq!(queued(&app).await, 0, "{what} queued something");
    }

    // Malformed JSON, correctly signed.
    let broken = b"{\"ref\": \"refs/tags/v1\", ".to_vec();
    let signature = github_signature(SECRET, &broken);
    let response = app
        .post_hook(
            "widget",
            &[
                json.clone(),
                push.clone(),
                ("x-hub-signature-256", signature),
            ],
            broken,
        )
        .await;
    assert_eq!(response.status(), 400);
    assert_eq!(queued(&app).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_and_pushes_that_release_nothing_answer_200() {
    let app = TestApp::spawn(&[ProjectSpec::github("widget", "file:///nowhere".into())]).await;
    let ping = br#"{"zen":"Keep it logically awesome.","hook_id":1}"#.to_vec();
    let response = app
        .post_hook(
            "widget",
            &[
                ("content-type", "application/json".into()),
                ("x-github-event", "ping".into()),
                ("x-hub-signature-256", github_signature(SECRET, &ping)),
            ],
            ping,
        )
        .await;
    assert_eq!(response.status(), 200);

    for (git_ref, after, reason) in [
        ("refs/heads/feature/x", "abc", "patterns"),
        (
            "refs/heads/main",
            "0000000000000000000000000000000000000000",
            "deleted",
        ),
    ] {
        let body = github_push_body(git_ref, after);
        let mut body_json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        if reason == "deleted" {
            body_json["deleted"] = true.into();
            body_json["head_commit"] = serde_json::Value::Null;
        }
        let body = serde_json::to_vec(&body_json).unwrap();
        let response = app
            .post_hook(
                "widget",
                &[
                    ("content-type", "application/json".into()),
                    ("x-github-event", "push".into()),
                    ("x-hub-signature-256", github_signature(SECRET, &body)),
                ],
                body,
            )
            .await;
        assert_eq!(response.status(), 200, "{git_ref}");
        let answer: serde_json::Value = response.json().await.unwrap();
        assert_eq!(answer["queued"], false);
        assert!(
            answer["reason"].as_str().unwrap().contains(reason),
            "{answer}"
        );
    }
    assert_eq!(queued(&app).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_token_is_checked() {
    let app = TestApp::spawn(&[ProjectSpec::gitlab("widget", "file:///nowhere".into())]).await;
    let body =
        br#"{"object_kind":"push","ref":"refs/heads/main","after":"abc","checkout_sha":"abc"}"#
            .to_vec();
    for token in [None, Some("wrong")] {
        let mut headers = vec![
            ("content-type", "application/json".to_string()),
            ("x-gitlab-event", "Push Hook".to_string()),
        ];
        if let Some(token) = token {
            headers.push(("x-gitlab-token", token.to_string()));
        }
        let response = app.post_hook("widget", &headers, body.clone()).await;
        assert_eq!(response.status(), 401, "token {token:?}");
    }
    assert_eq!(queued(&app).await, 0);
}
