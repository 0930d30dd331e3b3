//! Webhook deliveries as the hosts send them: payloads from `fixtures/webhooks/`, signed with
//! the hosts' algorithms. (The hosts' servers cannot be reached from here; the payloads have
//! their documented shapes.)

use baler::hooks::verify::github_signature;
use serde_json::Value;

use super::app::TestApp;
use super::config::SECRET;

/// A JSON fixture from `fixtures/`.
pub fn fixture(path: &str) -> Value {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(path);
    serde_json::from_slice(&std::fs::read(&full).unwrap()).unwrap()
}

/// GitHub's push payload (`fixtures/webhooks/github/push-tag.json`) for repository `repo`,
/// pointed at `git_ref`.
pub fn github_push_body(repo: &str, git_ref: &str, after: &str) -> Vec<u8> {
    let mut payload = fixture("webhooks/github/push-tag.json");
    payload["repository"]["clone_url"] = repo.into();
    payload["ref"] = git_ref.into();
    payload["after"] = after.into();
    payload["head_commit"]["id"] = after.into();
    serde_json::to_vec(&payload).unwrap()
}

/// A delivery ready to post: its headers and its body.
pub struct Delivery {
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// A GitHub push deleting `git_ref` of repository `repo`, as GitHub sends it, with `delivery`
/// as its id.
pub fn github_deletion(repo: &str, git_ref: &str, delivery: &str) -> Delivery {
    let mut payload: Value = serde_json::from_slice(&github_push_body(
        repo,
        git_ref,
        "0000000000000000000000000000000000000000",
    ))
    .unwrap();
    payload["deleted"] = true.into();
    payload["head_commit"] = Value::Null;
    let body = serde_json::to_vec(&payload).unwrap();
    let headers = vec![
        ("content-type", "application/json".to_string()),
        ("x-github-event", "push".to_string()),
        ("x-github-delivery", delivery.to_string()),
        ("x-hub-signature-256", github_signature(SECRET, &body)),
    ];
    Delivery { headers, body }
}

impl TestApp {
    /// Posts a raw delivery.
    pub async fn post_hook(
        &self,
        project: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> reqwest::Response {
        let mut request = self.client.post(format!("{}/hooks/{project}", self.url));
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        request.body(body).send().await.unwrap()
    }

    pub async fn deliver(&self, project: &str, delivery: Delivery) -> reqwest::Response {
        self.post_hook(project, &delivery.headers, delivery.body)
            .await
    }

    /// A GitHub push delivery for `git_ref` (`refs/heads/…` or `refs/tags/…`), signed as GitHub
    /// signs it.
    pub async fn github_push(
        &self,
        project: &str,
        git_ref: &str,
        after: &str,
    ) -> reqwest::Response {
        self.github_push_of(project, self.repo_of(project), git_ref, after)
            .await
    }

    /// The same for a project the config file does not name (one added through the API), whose
    /// repository is `repo`.
    pub async fn github_push_of(
        &self,
        project: &str,
        repo: &str,
        git_ref: &str,
        after: &str,
    ) -> reqwest::Response {
        let body = github_push_body(repo, git_ref, after);
        let signature = github_signature(SECRET, &body);
        self.post_hook(
            project,
            &[
                ("content-type", "application/json".into()),
                ("x-github-event", "push".into()),
                ("x-github-delivery", uuid::Uuid::new_v4().to_string()),
                ("x-hub-signature-256", signature),
            ],
            body,
        )
        .await
    }

    /// A GitLab push delivery (from `fixtures/webhooks/gitlab/push.json`) with GitLab's token.
    pub async fn gitlab_push(
        &self,
        project: &str,
        git_ref: &str,
        after: &str,
    ) -> reqwest::Response {
        let tag = git_ref.starts_with("refs/tags/");
        let mut payload = fixture("webhooks/gitlab/push.json");
        payload["object_kind"] = if tag { "tag_push" } else { "push" }.into();
        payload["ref"] = git_ref.into();
        payload["after"] = after.into();
        payload["checkout_sha"] = after.into();
        payload["project"]["git_http_url"] = self.repo_of(project).into();
        let body = serde_json::to_vec(&payload).unwrap();
        self.post_hook(
            project,
            &[
                ("content-type", "application/json".into()),
                (
                    "x-gitlab-event",
                    if tag { "Tag Push Hook" } else { "Push Hook" }.into(),
                ),
                ("x-gitlab-token", SECRET.into()),
            ],
            body,
        )
        .await
    }

    /// The repository URL `project` is configured with (payloads must name it).
    pub fn repo_of(&self, project: &str) -> &str {
        self.config
            .projects
            .iter()
            .find(|p| p.name() == project)
            .map(|p| p.repo())
            .unwrap_or("file:///unknown")
    }
}
