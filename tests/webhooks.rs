//! Refusals: each asserts the status and that nothing was queued; refs that git would not
//! accept are refused at intake, alone.

use baler::hooks::verify::github_signature;
use serde_json::{Value, json};

use crate::on_both_databases;
use crate::support::git::GitRepo;
use crate::support::{
    ADMIN_TOKEN, ItemState, ProjectSpec, SECRET, TestApp, TestDb, fixture, github_push_body,
};

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
    let app = TestApp::builder()
        .database(&db)
        .project(ProjectSpec::github("widget", "file:///nowhere"))
        .start()
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
        assert_eq!(app.item_count().await, 0, "{} queued something", case.what);
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
    assert_eq!(app.item_count().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_and_pushes_that_release_nothing_answer_200() {
    let app = TestApp::builder()
        .project(ProjectSpec::github("widget", "file:///nowhere"))
        .start()
        .await;
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
        // A deletion is queued only for a ref the project releases (the worker checks it).
        (
            "refs/heads/feature/y",
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
    assert_eq!(app.item_count().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_token_is_checked() {
    let app = TestApp::builder()
        .project(ProjectSpec::gitlab("widget", "file:///nowhere"))
        .start()
        .await;
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
    assert_eq!(app.item_count().await, 0);
}

on_both_databases!(github_refusals_queue_nothing,);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signature_covers_the_raw_bytes_not_reserialised_json() {
    let app = TestApp::builder()
        .project(ProjectSpec::github("widget", "file:///nowhere"))
        .start()
        .await;
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
    assert_eq!(app.item_count().await, 1);
}

#[test]
fn the_example_config_is_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/baler.example.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let env = [
        ("WEBFORM_HOOK_SECRET".to_string(), "s".to_string()),
        ("WEBFORM_GIT_TOKEN".to_string(), "t".to_string()),
        ("TOOLKIT_HOST_TOKEN".to_string(), "h".to_string()),
    ];
    let config = baler::config::Config::from_toml(&text, &env).unwrap();
    assert_eq!(config.projects.len(), 4);
    assert_eq!(config.projects[0].auth.token.as_deref(), Some("t"));
    assert_eq!(config.projects[0].auth.http_user, "x-access-token");
    assert_eq!(config.projects[1].auth.http_user, "oauth2");
    assert_eq!(config.projects[1].api_token.as_deref(), Some("h"));
    assert_eq!(
        config.projects[1].api_url.as_deref(),
        Some("https://gitlab.example.org/api/v4")
    );
    assert_eq!(config.projects[2].secret, "", "none: connect makes one");
    assert!(config.projects[3].auth.ssh_key.is_some());
    assert_eq!(config.http.files_in_memory_bytes, 64 << 20);
    assert_eq!(
        config.http.downloads_flush,
        std::time::Duration::from_secs(10)
    );
    // A token variable that is not set is an error naming it, not an anonymous fetch.
    let err = baler::config::Config::from_toml(&text, &env[..1])
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("WEBFORM_GIT_TOKEN"), "{err}");
    assert_eq!(config.projects[0].layout, baler::package::Layout::Drupal);
    assert_eq!(
        config.projects[1].previous_secret.as_deref(),
        Some("the-old-plain-token")
    );
    assert_eq!(config.queue.lease_seconds, 60);
    assert_eq!(config.worker, baler::config::WorkerConfig::default());
    assert_eq!(config.notifications.len(), 1);
    assert_eq!(config.notifications[0].events.len(), 4);
    assert_eq!(
        config.retention,
        baler::retention::RetentionPolicy::default()
    );
    let hour = std::time::Duration::from_secs(3600);
    assert_eq!(config.projects[0].rescan_every, Some(6 * hour));
    assert_eq!(config.projects[1].rescan_every, Some(hour));
    assert_eq!(config.admin_token.as_deref(), Some("change-me"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_baler_does_not_use_answer_200_with_a_reason() {
    // A hook set to "send me everything": an issues event is verified, then answered 200.
    let app = TestApp::builder()
        .project(ProjectSpec::github("widget", "file:///nowhere"))
        .start()
        .await;
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
    assert_eq!(app.item_count().await, 0);
}

/// A Bitbucket `repo:push` for `project` carrying `changes`, signed as Bitbucket signs it.
async fn bitbucket_push(app: &TestApp, project: &str, changes: Value) -> reqwest::Response {
    let mut payload = fixture("webhooks/bitbucket/push.json");
    payload["repository"]["links"]["html"]["href"] = app.repo_of(project).into();
    payload["push"]["changes"] = changes;
    let body = serde_json::to_vec(&payload).unwrap();
    let headers = vec![
        ("content-type", "application/json".to_string()),
        ("x-event-key", "repo:push".to_string()),
        ("x-request-uuid", uuid::Uuid::new_v4().to_string()),
        ("x-hub-signature", github_signature(SECRET, &body)),
    ];
    app.post_hook(project, &headers, body).await
}

/// One Bitbucket change: `name` created (or moved) at `hash`.
fn bitbucket_change(kind: &str, name: &str, hash: &str) -> Value {
    json!({"new": {"type": kind, "name": name, "target": {"type": "commit", "hash": hash}}, "old": null})
}

/// Signed payloads naming refs that git would not accept are answered 200 with the reason and
/// queue nothing (such a ref would fail its item, and every push merged into it); a later
/// good push still releases.
async fn refs_git_would_not_accept_are_refused_at_intake(db: TestDb) {
    let repo = GitRepo::standard();
    let url = repo.url();
    let app = TestApp::builder()
        .database(&db)
        .project(ProjectSpec::github("gh", url.clone()))
        .project(ProjectSpec::gitlab("gl", url.clone()))
        .project(ProjectSpec::bitbucket("bb", url.clone()))
        .start()
        .await;
    let head = repo.head();
    let bad = [
        ("gh", "refs/tags/../x", r#"tag "../x""#),
        ("gh", "refs/tags/a b", r#"tag "a b""#),
        ("gh", "refs/heads/x..y", r#"branch "x..y""#),
        (
            "gh",
            "refs/tags/v1\nERROR forged",
            r#"tag "v1\nERROR forged""#,
        ),
        ("gh", "refs/tags/v1.lock", r#"tag "v1.lock""#),
        ("gl", "refs/tags/../x", r#"tag "../x""#),
        ("gl", "refs/tags/a b", r#"tag "a b""#),
        ("gl", "refs/heads/x..y", r#"branch "x..y""#),
        ("bb", "tag ../x", r#"tag "../x""#),
        ("bb", "tag a b", r#"tag "a b""#),
        ("bb", "branch x..y", r#"branch "x..y""#),
    ];
    for (project, git_ref, named) in bad {
        let response = match project {
            "gh" => app.github_push(project, git_ref, &head).await,
            "gl" => app.gitlab_push(project, git_ref, &head).await,
            _ => {
                let (kind, name) = git_ref.split_once(' ').unwrap();
                bitbucket_push(&app, project, json!([bitbucket_change(kind, name, &head)])).await
            }
        };
        let what = format!("{project}: {git_ref:?}");
        assert_eq!(response.status(), 200, "{what}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["queued"], false, "{what}: {answer}");
        let expected = format!("{named} is not a valid git ref name");
        assert_eq!(answer["reason"], expected.as_str(), "{what}");
        assert_eq!(app.item_count().await, 0, "{what} queued something");
        let logged = app.last_delivery().await;
        assert_eq!(
            (logged.status, logged.reason.as_str()),
            (200, expected.as_str()),
            "{what}"
        );
        assert!(!logged.reason.contains('\n'), "{what}: a forged log line");
    }

    // Nothing was queued to fail: the next good push for each project releases.
    let v1 = repo.rev("v1.0.0");
    assert_eq!(
        app.github_push("gh", "refs/tags/v1.0.0", &v1)
            .await
            .status(),
        202
    );
    assert_eq!(
        app.gitlab_push("gl", "refs/tags/v1.0.0", &v1)
            .await
            .status(),
        202
    );
    let good = json!([bitbucket_change("tag", "v1.0.0", &v1)]);
    assert_eq!(bitbucket_push(&app, "bb", good).await.status(), 202);
    app.run_queue_until_idle().await;
    for project in ["gh", "gl", "bb"] {
        assert_eq!(
            app.release(project, "1.0.0").await["commit"],
            v1.as_str(),
            "{project}"
        );
    }
    let failed = app.items_not_in(ItemState::Done).await;
    assert_eq!(failed, 0, "every item ended done");
}

/// One delivery with a good ref and a bad one: the good one is queued (202), the bad one is
/// a reason and never reaches the item.
async fn a_bad_ref_beside_a_good_one_queues_only_the_good_one(db: TestDb) {
    let repo = GitRepo::standard();
    let app = TestApp::builder()
        .database(&db)
        .admin_token(ADMIN_TOKEN)
        .project(ProjectSpec::bitbucket("bb", repo.url()))
        .start()
        .await;
    app.queue.set_paused(true).await.unwrap();
    let v1 = repo.rev("v1.0.0");
    let changes = json!([
        bitbucket_change("tag", "v1.0.0", &v1),
        bitbucket_change("tag", "a b", &v1),
        bitbucket_change("branch", "1.x..main", &v1),
    ]);
    let response = bitbucket_push(&app, "bb", changes).await;
    assert_eq!(response.status(), 202);
    let answer: Value = response.json().await.unwrap();
    let logged = app.last_delivery().await;
    let reason = logged.reason;
    assert_eq!(logged.status, 202);
    assert!(
        reason.contains(r#"tag "a b" is not a valid git ref name"#),
        "{reason}"
    );
    assert!(reason.contains(r#"branch "1.x..main""#), "{reason}");

    let listing = app.admin_json("/api/v1/queue").await;
    let items = listing["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{listing}");
    assert_eq!(items[0]["id"], answer["item"]);
    assert_eq!(items[0]["refs"]["tags"], json!({"v1.0.0": v1}), "{listing}");
    assert_eq!(items[0]["refs"]["branches"], json!({}), "{listing}");
}

on_both_databases!(
    refs_git_would_not_accept_are_refused_at_intake,
    a_bad_ref_beside_a_good_one_queues_only_the_good_one,
);
