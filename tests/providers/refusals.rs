//! Refusals on every host: the status, nothing queued, and the delivery logged with a reason
//! from a fixed set; bodies past the size limit; storage that cannot commit.

use baler::hooks::verify::github_signature;
use serde_json::Value;

use super::{gitea_payload, hex_hmac, json_type};
use crate::support::git::GitRepo;
use crate::support::{ProjectSpec, SECRET, TestApp, fixture};

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
    let app = TestApp::builder()
        .project(ProjectSpec::github("gh", url.clone()))
        .project(ProjectSpec::gitlab("gl", url.clone()))
        .project(ProjectSpec::gitea("gt", url.clone()))
        .project(ProjectSpec::bitbucket("bb", url.clone()))
        .start()
        .await;
    let cases = refusal_cases(&url);
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
            let kept = app.delivery_rows().await;
            assert_eq!(
                kept.iter().filter(|d| d.project_name == "nope").count(),
                0,
                "an unknown project's refusal is counted, not kept"
            );
        } else {
            let logged = app.last_delivery().await;
            assert_eq!(
                i64::from(logged.status),
                i64::from(status),
                "{project}: {what}"
            );
            assert_eq!(
                logged.reason,
                logged_reason_of(what),
                "{project}: {what}: {}",
                logged.reason
            );
        }
        assert_eq!(
            app.item_count().await,
            0,
            "{project}: {what} queued something"
        );
    }
    // Counted without waiting for the commit.
    crate::support::wait_until(
        10,
        "the unknown project's refusal to be counted",
        || async {
            let counted: i64 = app
                .refusal_count_rows()
                .await
                .iter()
                .filter(|row| row.reason == "unknown project" && row.last_name == "nope")
                .map(|row| row.count)
                .sum();
            counted == 1
        },
    )
    .await;
}

/// The table of refused deliveries, signed (or not) for the projects `gh`, `gl`, `gt` and `bb`
/// on repository `url`. (One long list: a case per entry reads better than a case per
/// function.)
fn refusal_cases(url: &str) -> Vec<Refusal> {
    let github = crate::support::github_push_body(url, "refs/heads/main", "abc");
    let gitea = gitea_payload(url, "refs/heads/main", "abc");
    let mut bitbucket = fixture("webhooks/bitbucket/push.json");
    bitbucket["repository"]["links"]["html"]["href"] = url.into();
    let bitbucket = serde_json::to_vec(&bitbucket).unwrap();
    let mut gitlab = fixture("webhooks/gitlab/push.json");
    gitlab["project"]["git_http_url"] = url.into();
    let gitlab = serde_json::to_vec(&gitlab).unwrap();

    let h = |pairs: &[(&'static str, String)]| -> Vec<(&'static str, String)> {
        let mut headers = vec![json_type()];
        headers.extend(pairs.iter().cloned());
        headers
    };
    let s = |v: &str| v.to_string();
    vec![
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
    ]
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_25_mib_is_refused_with_413() {
    let repo = GitRepo::standard();
    let app = TestApp::builder()
        .project(ProjectSpec::github("widget", repo.url()))
        .start()
        .await;
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
    assert_eq!(app.item_count().await, 0);
}

/// The answer to an oversized delivery. The server answers before it has read the body and
/// closes the connection, so a client still sending may get a broken pipe instead of the
/// answer; then the deliveries log, written before the answer is sent, says what it was.
async fn oversized_status(app: &TestApp, request: reqwest::RequestBuilder) -> i64 {
    let logged = || app.delivery_count();
    let before = logged().await;
    let status = match request.send().await {
        Ok(response) => i64::from(response.status().as_u16()),
        Err(e) => {
            assert!(e.is_request(), "{e}");
            i64::from(app.last_delivery().await.status)
        }
    };
    assert_eq!(logged().await, before + 1, "the delivery was logged");
    assert_eq!(i64::from(app.last_delivery().await.status), status);
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_storage_cannot_commit_the_answer_is_503() {
    use sea_orm::ConnectionTrait;
    let repo = GitRepo::standard();
    let app = TestApp::builder()
        .project(ProjectSpec::github("widget", repo.url()))
        .start()
        .await;
    // The queue's table goes away under the running server: no delivery can be committed.
    // Raw SQL on purpose: breaking the schema is nothing the app or its entities can do.
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
    assert_eq!(app.last_delivery().await.status, 503);
}
