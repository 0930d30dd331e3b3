//! Every host, signed the way it signs, and every way a delivery is refused. The hosts' own
//! servers cannot be reached from here: their deliveries are reproduced from the documented
//! payload shapes in `fixtures/webhooks/` and signed with their algorithms.

use baler::hooks::verify::{github_signature, standard_webhook_signature};
use serde_json::Value;

use crate::on_both_databases;
use crate::support::git::GitRepo;
use crate::support::{ProjectSpec, SECRET, TestApp, TestDb, fixture};

fn hex_hmac(secret: &str, body: &[u8]) -> String {
    github_signature(secret, body)
        .trim_start_matches("sha256=")
        .to_string()
}

fn json_type() -> (&'static str, String) {
    ("content-type", "application/json".into())
}

async fn queued(app: &TestApp) -> i64 {
    app.count("SELECT COUNT(*) FROM queue_items").await
}

/// The last logged delivery: status and reason.
pub(crate) async fn last_delivery(app: &TestApp) -> (i64, String) {
    use sea_orm::ConnectionTrait;
    let row = app
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            app.db.get_database_backend(),
            "SELECT CAST(status AS BIGINT) AS status, reason FROM deliveries ORDER BY id DESC LIMIT 1",
        ))
        .await
        .unwrap()
        .unwrap();
    (
        row.try_get("", "status").unwrap(),
        row.try_get("", "reason").unwrap(),
    )
}

fn gitea_payload(repo: &str, git_ref: &str, commit: &str) -> Vec<u8> {
    let mut payload = fixture("webhooks/gitea/push.json");
    payload["ref"] = git_ref.into();
    payload["after"] = commit.into();
    payload["head_commit"]["id"] = commit.into();
    payload["repository"]["clone_url"] = repo.into();
    serde_json::to_vec(&payload).unwrap()
}

async fn gitea_and_forgejo_deliveries_release(db: TestDb) {
    let repo = GitRepo::standard();
    let database = TestApp::database_line(&db).await;
    let app = TestApp::spawn_with(
        &[ProjectSpec::provider("gitea", "widget", repo.url())],
        &format!("max_attempts = 1\n{database}"),
    )
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

async fn a_bitbucket_push_with_several_changes_queues_them_all(db: TestDb) {
    let repo = GitRepo::standard();
    let database = TestApp::database_line(&db).await;
    let app = TestApp::spawn_with(
        &[ProjectSpec::provider("bitbucket", "widget", repo.url())],
        &format!("max_attempts = 1\n{database}"),
    )
    .await;
    app.queue.set_paused(true).await.unwrap();
    let mut payload = fixture("webhooks/bitbucket/push.json");
    payload["repository"]["links"]["html"]["href"] = repo.url().into();
    payload["push"]["changes"][0]["new"]["target"]["hash"] = repo.head().into();
    let body = serde_json::to_vec(&payload).unwrap();
    let headers = vec![
        json_type(),
        ("x-event-key", "repo:push".to_string()),
        ("x-request-uuid", "r-1".to_string()),
        (
            "x-hub-signature",
            format!("sha256={}", hex_hmac(SECRET, &body)),
        ),
    ];
    assert_eq!(app.post_hook("widget", &headers, body).await.status(), 202);
    let listing = app.queue.list().await.unwrap();
    assert_eq!(listing.items.len(), 1);
    assert_eq!(listing.items[0].refs.branches["main"], repo.head());
    assert!(listing.items[0].refs.tags.contains_key("v1.0.0"));
    app.queue.set_paused(false).await.unwrap();
    app.run_queue_until_idle().await;
    assert!(
        app.versions("widget")
            .await
            .contains(&"main-dev".to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_form_bodies_and_the_legacy_sha1_header() {
    let repo = GitRepo::standard();
    let app = TestApp::spawn(&[
        ProjectSpec::github("widget", repo.url()),
        ProjectSpec {
            extra: "allow_sha1 = true",
            ..ProjectSpec::github("legacy", repo.url())
        },
    ])
    .await;
    app.queue.set_paused(true).await.unwrap();
    let json = crate::support::github_push_body(&repo.url(), "refs/heads/main", &repo.head());
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", std::str::from_utf8(&json).unwrap())
        .finish()
        .into_bytes();
    // The signature covers the raw form body.
    let headers = vec![
        (
            "content-type",
            "application/x-www-form-urlencoded".to_string(),
        ),
        ("x-github-event", "push".to_string()),
        ("x-hub-signature-256", github_signature(SECRET, &form)),
    ];
    assert_eq!(
        app.post_hook("widget", &headers, form.clone())
            .await
            .status(),
        202
    );

    let sha1 = {
        use hmac::{KeyInit, Mac};
        let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(&json);
        format!("sha1={}", hex::encode(mac.finalize().into_bytes()))
    };
    let legacy = |project: &str| {
        let (app, json, sha1) = (&app, json.clone(), sha1.clone());
        let project = project.to_string();
        async move {
            let headers = vec![
                json_type(),
                ("x-github-event", "push".to_string()),
                ("x-hub-signature", sha1),
            ];
            app.post_hook(&project, &headers, json)
                .await
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        legacy("widget").await,
        401,
        "sha1 only where the project allows it"
    );
    assert_eq!(legacy("legacy").await, 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_signing_tokens_follow_standard_webhooks() {
    const KEY: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let repo = GitRepo::standard();
    let app = TestApp::spawn(&[ProjectSpec {
        extra: "secrets = [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]",
        ..ProjectSpec::gitlab("widget", repo.url())
    }])
    .await;
    app.queue.set_paused(true).await.unwrap();
    let mut payload = fixture("webhooks/gitlab/push.json");
    payload["project"]["git_http_url"] = repo.url().into();
    let body = serde_json::to_vec(&payload).unwrap();
    let send = |timestamp: i64, id: &'static str| {
        let (app, body) = (&app, body.clone());
        async move {
            let headers = vec![
                json_type(),
                ("x-gitlab-event", "Push Hook".to_string()),
                ("webhook-id", id.to_string()),
                ("webhook-timestamp", timestamp.to_string()),
                (
                    "webhook-signature",
                    standard_webhook_signature(KEY, id, timestamp, &body),
                ),
            ];
            app.post_hook("widget", &headers, body)
                .await
                .status()
                .as_u16()
        }
    };
    let now = chrono::Utc::now().timestamp();
    assert_eq!(send(now, "msg_1").await, 202);
    assert_eq!(
        send(now - 600, "msg_2").await,
        401,
        "an old timestamp is a replay"
    );
    assert_eq!(send(now + 600, "msg_3").await, 401);
    assert_eq!(queued(&app).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_rotation_both_secrets_are_accepted() {
    let repo = GitRepo::standard();
    let app = TestApp::spawn(&[ProjectSpec {
        extra: "secrets = [\"new-secret\", \"old-secret\"]",
        ..ProjectSpec::github("widget", repo.url())
    }])
    .await;
    app.queue.set_paused(true).await.unwrap();
    let body = crate::support::github_push_body(&repo.url(), "refs/heads/main", &repo.head());
    for (secret, status) in [
        ("new-secret", 202),
        ("old-secret", 202),
        ("older-secret", 401),
    ] {
        let headers = vec![
            json_type(),
            ("x-github-event", "push".to_string()),
            ("x-hub-signature-256", github_signature(secret, &body)),
        ];
        assert_eq!(
            app.post_hook("widget", &headers, body.clone())
                .await
                .status(),
            status,
            "{secret}"
        );
    }
}

async fn a_payload_for_another_repository_is_refused(db: TestDb) {
    let repo = GitRepo::standard();
    let database = TestApp::database_line(&db).await;
    let app = TestApp::spawn_with(
        &[ProjectSpec::github("widget", repo.url())],
        &format!("max_attempts = 1\n{database}"),
    )
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
    assert_eq!(queued(&app).await, 0);
    assert_eq!(
        last_delivery(&app).await.1,
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

async fn a_redelivery_gets_the_first_answer_and_changes_nothing(db: TestDb) {
    let repo = GitRepo::standard();
    let database = TestApp::database_line(&db).await;
    let app = TestApp::spawn_with(
        &[ProjectSpec::github("widget", repo.url())],
        &format!("max_attempts = 1\n{database}"),
    )
    .await;
    app.queue.set_paused(true).await.unwrap();
    let send = |delivery: &'static str, git_ref: &'static str| {
        let (app, url) = (&app, repo.url());
        async move {
            let body = crate::support::github_push_body(&url, git_ref, "abc");
            let headers = vec![
                json_type(),
                ("x-github-event", "push".to_string()),
                ("x-github-delivery", delivery.to_string()),
                ("x-hub-signature-256", github_signature(SECRET, &body)),
            ];
            let response = app.post_hook("widget", &headers, body).await;
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let first = send("delivery-1", "refs/heads/main").await;
    app.github_push("widget", "refs/heads/1.x", "def").await;
    let again = send("delivery-1", "refs/heads/main").await;
    assert_eq!(first, again, "the same answer, word for word");
    let revision = app
        .count("SELECT CAST(revision AS BIGINT) FROM queue_items")
        .await;
    assert_eq!(revision, 2, "the redelivery was not merged again");
    assert!(
        last_delivery(&app)
            .await
            .1
            .contains("first answer replayed")
    );
    // The same delivery id with another body is another delivery (ids are not signed).
    let other = send("delivery-1", "refs/tags/v1.0.0").await;
    assert_eq!(other.0, 202);
    assert_eq!(
        app.count("SELECT CAST(revision AS BIGINT) FROM queue_items")
            .await,
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_25_mib_is_refused_with_413() {
    let repo = GitRepo::standard();
    let app = TestApp::spawn(&[ProjectSpec::github("widget", repo.url())]).await;
    let body = vec![b' '; 25 * 1024 * 1024 + 1];
    let request = app
        .client
        .post(format!("{}/hooks/widget", app.url))
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .header("x-hub-signature-256", "sha256=00")
        .body(body);
    assert_eq!(oversized_status(&app, request).await, 413);
    // A streamed body without a length is cut off at the limit too.
    let chunks =
        futures::stream::iter((0..27).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1024 * 1024])));
    let request = app
        .client
        .post(format!("{}/hooks/widget", app.url))
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .body(reqwest::Body::wrap_stream(chunks));
    assert_eq!(oversized_status(&app, request).await, 413);
    assert_eq!(queued(&app).await, 0);
}

/// The answer to an oversized delivery. The server answers before it has read the body and
/// closes the connection, so a client still sending may get a broken pipe instead of the
/// answer; then the deliveries log, written before the answer is sent, says what it was.
async fn oversized_status(app: &TestApp, request: reqwest::RequestBuilder) -> i64 {
    let logged = || app.count("SELECT COUNT(*) FROM deliveries");
    let before = logged().await;
    let status = match request.send().await {
        Ok(response) => i64::from(response.status().as_u16()),
        Err(e) => {
            assert!(e.is_request(), "{e}");
            last_delivery(app).await.0
        }
    };
    assert_eq!(logged().await, before + 1, "the delivery was logged");
    assert_eq!(last_delivery(app).await.0, status);
    status
}

/// Whether `project`'s release `version` is listed (unpublished ones are not).
async fn published(app: &TestApp, project: &str, version: &str) -> bool {
    app.versions(project).await.iter().any(|v| v == version)
}

/// A deletion in a payload is a hint: it queues the project for the worker to look at the
/// repository, and unpublishes nothing at intake. A captured deletion replayed with new
/// delivery ids, for a tag that still exists, therefore changes no release.
async fn a_deletion_is_queued_and_unpublishes_nothing_at_intake(db: TestDb) {
    let repo = GitRepo::standard();
    let database = TestApp::database_line(&db).await;
    let app = TestApp::spawn_with(
        &[
            ProjectSpec::github("widget", repo.url()),
            ProjectSpec::provider("gitea", "gt", repo.url()),
        ],
        &format!("max_attempts = 1\n{database}"),
    )
    .await;
    app.github_push("widget", "refs/tags/v1.0.0", &repo.rev("v1.0.0"))
        .await;
    app.run_queue_until_idle().await;
    let release = app.release("widget", "1.0.0").await;

    app.queue.set_paused(true).await.unwrap();
    let send = |delivery: &'static str| {
        let (app, url) = (&app, repo.url());
        async move {
            let (headers, body) =
                crate::support::github_deletion(&url, "refs/tags/v1.0.0", delivery);
            let response = app.post_hook("widget", &headers, body).await;
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let first = send("deletion-1").await;
    assert_eq!(first.0, 202, "queued like a push: {}", first.1);
    assert_eq!(first.1["merged"], false);
    assert_eq!(
        last_delivery(&app).await.1,
        r#"queued; tag "v1.0.0" was deleted: the worker checks the repository"#
    );
    assert!(
        published(&app, "widget", "1.0.0").await,
        "nothing is unpublished at intake"
    );
    let listing = app.queue.list().await.unwrap();
    assert_eq!(listing.items.len(), 1);
    assert_eq!(
        listing.items[0].refs.tags["v1.0.0"], "",
        "no commit to trust"
    );

    // The same delivery again is a redelivery: its first answer, nothing merged.
    assert_eq!(send("deletion-1").await, first, "the same answer");
    let revision =
        || app.count("SELECT CAST(revision AS BIGINT) FROM queue_items WHERE state = 'pending'");
    assert_eq!(revision().await, 1);
    assert!(
        last_delivery(&app)
            .await
            .1
            .contains("first answer replayed")
    );

    // Replayed with a new delivery id: a new delivery, merged into the item, and still
    // nothing unpublished.
    let replayed = send("deletion-2").await;
    assert_eq!(
        (replayed.0, &replayed.1["merged"]),
        (202, &Value::Bool(true))
    );
    assert_eq!(revision().await, 2);
    assert!(published(&app, "widget", "1.0.0").await);

    // Gitea's `delete` event names the short ref; it is a hint the same way.
    let mut payload = fixture("webhooks/gitea/push.json");
    payload["repository"]["clone_url"] = repo.url().into();
    let deletion = serde_json::json!({
        "ref": "1.x",
        "ref_type": "branch",
        "repository": payload["repository"],
    });
    let body = serde_json::to_vec(&deletion).unwrap();
    let headers = vec![
        json_type(),
        ("x-gitea-event", "delete".to_string()),
        ("x-gitea-delivery", "g-1".to_string()),
        ("x-gitea-signature", hex_hmac(SECRET, &body)),
    ];
    assert_eq!(app.post_hook("gt", &headers, body).await.status(), 202);
    let listing = app.queue.list().await.unwrap();
    let gitea = listing.items.iter().find(|i| i.project == "gt").unwrap();
    assert_eq!(gitea.refs.branches["1.x"], "");

    // The tag is still in the repository: the worker finds it and the release stays, with
    // the same files.
    app.queue.set_paused(false).await.unwrap();
    app.run_queue_until_idle().await;
    assert_eq!(app.release("widget", "1.0.0").await, release);
    let page = app.get("/projects/widget").await.text().await.unwrap();
    assert!(
        !page.contains("unpublished"),
        "not marked on the project page"
    );

    // Once the tag is really gone, a deletion is still only queued: whether the release goes
    // is for the worker to decide after its fetch.
    app.queue.set_paused(true).await.unwrap();
    repo.git(&["tag", "-d", "v1.0.0"]);
    assert_eq!(send("deletion-3").await.0, 202);
    assert!(
        published(&app, "widget", "1.0.0").await,
        "nothing is unpublished at intake"
    );
}

/// One delivery that must be refused: with `status`, and `reason` in the log.
struct Refusal {
    project: &'static str,
    what: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: u16,
    reason: &'static str,
}

impl Refusal {
    fn new(
        project: &'static str,
        what: &'static str,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
        status: u16,
        reason: &'static str,
    ) -> Refusal {
        Refusal {
            project,
            what,
            headers,
            body,
            status,
            reason,
        }
    }
}

/// Every refusal, on every host: the status, nothing queued, and the delivery logged with
/// its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_on_every_host_are_logged_and_queue_nothing() {
    let repo = GitRepo::standard();
    let url = repo.url();
    let app = TestApp::spawn(&[
        ProjectSpec::github("gh", url.clone()),
        ProjectSpec::gitlab("gl", url.clone()),
        ProjectSpec::provider("gitea", "gt", url.clone()),
        ProjectSpec::provider("bitbucket", "bb", url.clone()),
    ])
    .await;
    let github = crate::support::github_push_body(&url, "refs/heads/main", "abc");
    let gitea = gitea_payload(&url, "refs/heads/main", "abc");
    let mut bitbucket = fixture("webhooks/bitbucket/push.json");
    bitbucket["repository"]["links"]["html"]["href"] = url.clone().into();
    let bitbucket = serde_json::to_vec(&bitbucket).unwrap();
    let mut gitlab = fixture("webhooks/gitlab/push.json");
    gitlab["project"]["git_http_url"] = url.clone().into();
    let gitlab = serde_json::to_vec(&gitlab).unwrap();

    let h = |pairs: &[(&'static str, String)]| -> Vec<(&'static str, String)> {
        let mut headers = vec![json_type()];
        headers.extend(pairs.iter().cloned());
        headers
    };
    let s = |v: &str| v.to_string();
    let cases = vec![
        Refusal::new(
            "gh",
            "bad signature",
            h(&[
                ("x-github-event", s("push")),
                ("x-hub-signature-256", github_signature("x", &github)),
            ]),
            github.clone(),
            401,
            "signature",
        ),
        Refusal::new(
            "gh",
            "no event",
            h(&[("x-hub-signature-256", github_signature(SECRET, &github))]),
            github.clone(),
            400,
            "X-GitHub-Event",
        ),
        Refusal::new(
            "gl",
            "no token",
            h(&[("x-gitlab-event", s("Push Hook"))]),
            gitlab.clone(),
            401,
            "X-Gitlab-Token",
        ),
        Refusal::new(
            "gl",
            "wrong token",
            h(&[
                ("x-gitlab-event", s("Push Hook")),
                ("x-gitlab-token", s("nope")),
            ]),
            gitlab.clone(),
            401,
            "signature",
        ),
        Refusal::new(
            "gl",
            "form body",
            vec![
                ("content-type", s("application/x-www-form-urlencoded")),
                ("x-gitlab-token", s(SECRET)),
                ("x-gitlab-event", s("Push Hook")),
            ],
            gitlab.clone(),
            415,
            "application/json",
        ),
        Refusal::new(
            "gt",
            "no signature",
            h(&[("x-gitea-event", s("push"))]),
            gitea.clone(),
            401,
            "X-Gitea-Signature",
        ),
        Refusal::new(
            "gt",
            "prefixed signature",
            h(&[
                ("x-gitea-event", s("push")),
                (
                    "x-gitea-signature",
                    format!("sha256={}", hex_hmac(SECRET, &gitea)),
                ),
            ]),
            gitea.clone(),
            401,
            "malformed",
        ),
        Refusal::new(
            "gt",
            "no event",
            h(&[("x-gitea-signature", hex_hmac(SECRET, &gitea))]),
            gitea.clone(),
            400,
            "X-Gitea-Event",
        ),
        Refusal::new(
            "bb",
            "github's sha256 header",
            h(&[
                ("x-event-key", s("repo:push")),
                ("x-hub-signature-256", github_signature(SECRET, &bitbucket)),
            ]),
            bitbucket.clone(),
            401,
            "X-Hub-Signature",
        ),
        Refusal::new(
            "bb",
            "no event key",
            h(&[("x-hub-signature", github_signature(SECRET, &bitbucket))]),
            bitbucket.clone(),
            400,
            "X-Event-Key",
        ),
        Refusal::new(
            "bb",
            "not json",
            h(&[
                ("x-event-key", s("repo:push")),
                ("x-hub-signature", github_signature(SECRET, b"{")),
            ]),
            b"{".to_vec(),
            400,
            "malformed",
        ),
        Refusal::new(
            "nope",
            "unknown project",
            h(&[("x-github-event", s("push"))]),
            github.clone(),
            404,
            "no such project",
        ),
    ];
    for Refusal {
        project,
        what,
        headers,
        body,
        status,
        reason,
    } in cases
    {
        let response = app.post_hook(project, &headers, body).await;
        assert_eq!(response.status().as_u16(), status, "{project}: {what}");
        // The client is told what is wrong; the log keeps only a reason from a fixed set.
        let answer: Value = response.json().await.unwrap();
        let message = answer["error"].as_str().unwrap_or_default();
        assert!(message.contains(reason), "{project}: {what}: {answer}");
        if status == 404 {
            assert_eq!(
                app.count("SELECT COUNT(*) FROM deliveries WHERE project_name = 'nope'")
                    .await,
                0,
                "an unknown project's refusal is counted, not kept"
            );
        } else {
            let (logged_status, logged_reason) = last_delivery(&app).await;
            assert_eq!(logged_status, i64::from(status), "{project}: {what}");
            assert_eq!(
                logged_reason,
                logged_reason_of(what),
                "{project}: {what}: {logged_reason}"
            );
        }
        assert_eq!(queued(&app).await, 0, "{project}: {what} queued something");
    }
    // Counted without waiting for the commit.
    crate::support::wait_until(
        10,
        "the unknown project's refusal to be counted",
        || async {
            app.count(
                "SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM refusal_counts \
             WHERE reason = 'unknown project' AND last_name = 'nope'",
            )
            .await
                == 1
        },
    )
    .await;
}

/// What each case's log row says: a reason from the fixed set.
fn logged_reason_of(what: &str) -> &'static str {
    match what {
        "bad signature" | "wrong token" | "prefixed signature" => "signature does not match",
        "no token" | "no signature" | "github's sha256 header" => "missing signature",
        "no event" | "no event key" => "missing event header",
        "form body" => "unsupported content type",
        "not json" => "malformed payload",
        other => panic!("no logged reason for the case {other:?}"),
    }
}
on_both_databases!(
    gitea_and_forgejo_deliveries_release,
    a_bitbucket_push_with_several_changes_queues_them_all,
    a_payload_for_another_repository_is_refused,
    a_redelivery_gets_the_first_answer_and_changes_nothing,
    a_deletion_is_queued_and_unpublishes_nothing_at_intake,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_older_than_the_retention_window_are_pruned() {
    use sea_orm::ConnectionTrait;
    let repo = GitRepo::standard();
    let app = TestApp::spawn(&[ProjectSpec::github("widget", repo.url())]).await;
    app.github_push("widget", "refs/heads/main", "abc").await;
    app.github_push("widget", "refs/heads/main", "def").await;
    let old = chrono::Utc::now().timestamp_millis()
        - (baler::deliveries::RETENTION_DAYS + 1) * 24 * 3600 * 1000;
    app.db
        .execute_raw(sea_orm::Statement::from_sql_and_values(
            app.db.get_database_backend(),
            "UPDATE deliveries SET received_at = $1 WHERE id = (SELECT MIN(id) FROM deliveries)",
            [old.into()],
        ))
        .await
        .unwrap();
    assert_eq!(baler::deliveries::prune(&app.db).await.unwrap(), 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM deliveries").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_storage_cannot_commit_the_answer_is_503() {
    use sea_orm::ConnectionTrait;
    let repo = GitRepo::standard();
    let app = TestApp::spawn(&[ProjectSpec::github("widget", repo.url())]).await;
    // The queue's table goes away under the running server: no delivery can be committed.
    app.db
        .execute_unprepared("ALTER TABLE queue_items RENAME TO queue_items_gone")
        .await
        .unwrap();
    let response = app.github_push("widget", "refs/heads/main", "abc").await;
    assert_eq!(response.status(), 503);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        answer["error"], "storage is unavailable; try again later",
        "no internals leak"
    );
    assert_eq!(last_delivery(&app).await.0, 503);
}
