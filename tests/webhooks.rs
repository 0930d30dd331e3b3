//! Refusals: each asserts the status and that nothing was queued.

use baler::hooks::verify::github_signature;

use crate::on_both_databases;
use crate::support::{ProjectSpec, SECRET, TestApp, TestDb, github_push_body};

async fn queued(app: &TestApp) -> i64 {
    app.count("SELECT COUNT(*) FROM queue_items").await
}

/// One delivery that must be refused with `status`.
struct Refusal {
    what: &'static str,
    project: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: u16,
}

impl Refusal {
    fn new(
        what: &'static str,
        headers: Vec<(&'static str, String)>,
        body: &[u8],
        status: u16,
    ) -> Refusal {
        Refusal {
            what,
            project: "widget",
            headers,
            body: body.to_vec(),
            status,
        }
    }
}

async fn github_refusals_queue_nothing(db: TestDb) {
    let app = TestApp::spawn_on(
        db.clone(),
        &[ProjectSpec::github("widget", "file:///nowhere".into())],
    )
    .await;
    let body = github_push_body("file:///nowhere", "refs/tags/v1.0.0", "abc");
    let good = github_signature(SECRET, &body);
    let wrong = github_signature("not the secret", &body);
    let json = ("content-type", "application/json".to_string());
    let push = ("x-github-event", "push".to_string());

    let signed = |signature: &str| {
        vec![
            json.clone(),
            push.clone(),
            ("x-hub-signature-256", signature.to_string()),
        ]
    };
    let cases = [
        Refusal::new(
            "missing signature",
            vec![json.clone(), push.clone()],
            &body,
            401,
        ),
        Refusal::new("wrong secret", signed(&wrong), &body, 401),
        Refusal::new("garbled signature", signed("sha256=zz"), &body, 401),
        Refusal::new(
            "body changed after signing",
            signed(&good),
            &github_push_body("file:///nowhere", "refs/tags/v6.6.6", "abc"),
            401,
        ),
        Refusal {
            project: "nope",
            ..Refusal::new("unknown project", signed(&good), &body, 404)
        },
        Refusal::new(
            "not json",
            vec![
                ("content-type", "text/plain".into()),
                push.clone(),
                ("x-hub-signature-256", good.clone()),
            ],
            &body,
            415,
        ),
        Refusal::new(
            "no event header",
            vec![json.clone(), ("x-hub-signature-256", good.clone())],
            &body,
            400,
        ),
    ];
    for case in cases {
        let response = app.post_hook(case.project, &case.headers, case.body).await;
        assert_eq!(response.status().as_u16(), case.status, "{}", case.what);
        let answer: serde_json::Value = response.json().await.unwrap();
        assert!(answer["error"].is_string(), "{}: {answer}", case.what);
        assert_eq!(queued(&app).await, 0, "{} queued something", case.what);
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
        let body = github_push_body("file:///nowhere", git_ref, after);
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
        br#"{"object_kind":"push","ref":"refs/heads/main","after":"abc","checkout_sha":"abc","project":{"git_http_url":"file:///nowhere"}}"#
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

on_both_databases!(github_refusals_queue_nothing,);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signature_covers_the_raw_bytes_not_reserialised_json() {
    let app = TestApp::spawn(&[ProjectSpec::github("widget", "file:///nowhere".into())]).await;
    app.queue.set_paused(true).await.unwrap();
    // Escaped non-ASCII and odd spacing: re-serialising this JSON would change the bytes.
    let body = "{ \"ref\" : \"refs/tags/v1.0.0\", \"after\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\n  \"repository\": {\"clone_url\": \"file:///nowhere\"},\n  \"head_commit\": {\"id\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\", \"message\": \"caf\\u00e9 ✓\"} }"
        .as_bytes()
        .to_vec();
    let response = app
        .post_hook(
            "widget",
            &[
                ("content-type", "application/json; charset=utf-8".into()),
                ("x-github-event", "push".into()),
                ("x-hub-signature-256", github_signature(SECRET, &body)),
            ],
            body,
        )
        .await;
    assert_eq!(response.status(), 202);
    assert_eq!(queued(&app).await, 1);
}

#[test]
fn the_example_config_is_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/baler.example.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let env = [
        ("WEBFORM_HOOK_SECRET".to_string(), "s".to_string()),
        ("WEBFORM_GIT_TOKEN".to_string(), "t".to_string()),
    ];
    let config = baler::config::Config::from_toml(&text, &env).unwrap();
    assert_eq!(config.projects.len(), 3);
    assert_eq!(config.projects[0].auth.token.as_deref(), Some("t"));
    assert_eq!(config.projects[0].auth.http_user, "x-access-token");
    assert_eq!(config.projects[1].auth.http_user, "oauth2");
    assert!(config.projects[2].auth.ssh_key.is_some());
    // A token variable that is not set is an error naming it, not an anonymous fetch.
    let err = baler::config::Config::from_toml(&text, &env[..1])
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("WEBFORM_GIT_TOKEN"), "{err}");
    assert_eq!(config.projects[0].layout, baler::config::Layout::Drupal);
    assert_eq!(
        config.projects[1].previous_secret.as_deref(),
        Some("the-old-plain-token")
    );
    assert_eq!(config.queue.lease_seconds, 60);
    assert_eq!(config.admin_token.as_deref(), Some("change-me"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_baler_does_not_use_answer_200_with_a_reason() {
    // A hook set to "send me everything": an issues event is verified, then answered 200.
    let app = TestApp::spawn(&[ProjectSpec::github("widget", "file:///nowhere".into())]).await;
    let body =
        br#"{"action":"opened","issue":{"number":1},"repository":{"clone_url":"file:///nowhere"}}"#
            .to_vec();
    let response = app
        .post_hook(
            "widget",
            &[
                ("content-type", "application/json".into()),
                ("x-github-event", "issues".into()),
                ("x-hub-signature-256", github_signature(SECRET, &body)),
            ],
            body,
        )
        .await;
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert!(
        answer["reason"].as_str().unwrap().contains("issues"),
        "{answer}"
    );
    assert_eq!(queued(&app).await, 0);
}
