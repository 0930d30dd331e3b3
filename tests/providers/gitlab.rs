//! GitLab: signing tokens follow Standard Webhooks (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature`), and an old or future timestamp is a replay.

use baler::hooks::verify::standard_webhook_signature;

use super::json_type;
use crate::support::git::GitRepo;
use crate::support::{ProjectSpec, TestApp, fixture};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_signing_tokens_follow_standard_webhooks() {
    const KEY: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let repo = GitRepo::standard();
    let app = TestApp::builder()
        .project(ProjectSpec::gitlab("widget", repo.url()).secrets(&[KEY]))
        .start()
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
    assert_eq!(app.item_count().await, 1);
}
