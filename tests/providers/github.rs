//! GitHub: form bodies, the legacy sha1 header where a project allows it, and both secrets
//! of a rotation.

use baler::hooks::verify::github_signature;

use super::json_type;
use crate::support::git::GitRepo;
use crate::support::{ProjectSpec, SECRET, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_form_bodies_and_the_legacy_sha1_header() {
    let repo = GitRepo::standard();
    let app = TestApp::builder()
        .project(ProjectSpec::github("widget", repo.url()))
        .project(ProjectSpec::github("legacy", repo.url()).allow_sha1())
        .start()
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
async fn during_a_rotation_both_secrets_are_accepted() {
    let repo = GitRepo::standard();
    let app = TestApp::builder()
        .project(ProjectSpec::github("widget", repo.url()).secrets(&["new-secret", "old-secret"]))
        .start()
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
